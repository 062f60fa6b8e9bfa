// SPDX-License-Identifier: GPL-2.0

//! A slot set at most once and read without a lock, for what hot paths
//! (RCU walks) look up and nothing replaces: the value lives as long as the
//! slot.

use core::{
    marker::PhantomData,
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::prelude::*;

/// Empty, or holding a value for as long as it lives.
///
/// # Invariants
///
/// `ptr` is NULL or comes from [`KBox::into_raw`]; once set it does not
/// change until the slot is dropped, which frees the value.
pub(crate) struct SetOnce<T> {
    ptr: AtomicPtr<T>,
    /// Owns a `T` (for drop checking); `Send` and `Sync` are below.
    _owns: PhantomData<(KBox<T>, *const ())>,
}

// SAFETY: the slot owns its value, which goes with it.
unsafe impl<T: Send> Send for SetOnce<T> {}
// SAFETY: a shared slot gives out shared references to the value (`Sync`),
// and takes values from any thread that are dropped with the slot,
// wherever that is (`Send`).
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    pub(crate) fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// The value, if the slot is set.
    pub(crate) fn get(&self) -> Option<&T> {
        // Acquire: pairs with the release in `set`, so the value is seen
        // whole.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: per the type's invariants a set value lives and stays
        // unchanged as long as the slot, which `&self` borrows.
        unsafe { p.as_ref() }
    }

    /// Sets the slot to `value` if it is empty: the value now in the slot,
    /// or `value` back if another was set first.
    pub(crate) fn set(&self, value: KBox<T>) -> core::result::Result<&T, KBox<T>> {
        let p = KBox::into_raw(value);
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: `p` is in the slot now, which keeps it as long as
            // `&self` borrows.
            Ok(_) => Ok(unsafe { &*p }),
            // SAFETY: `p` came from `into_raw` above and was not stored.
            Err(_) => Err(unsafe { KBox::from_raw(p) }),
        }
    }
}

impl<T> Drop for SetOnce<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: per the type's invariants `p` came from `into_raw`,
            // and nothing borrows the value any more (`&mut self`).
            drop(unsafe { KBox::from_raw(p) });
        }
    }
}
