// SPDX-License-Identifier: GPL-2.0

//! Directory entries (`struct dentry`).

use super::{bindings, inode::Inode};
use core::ptr::NonNull;
use kernel::types::{AlwaysRefCounted, Opaque};

/// A reference-counted dentry.
#[repr(transparent)]
pub(crate) struct Dentry(Opaque<bindings::dentry>);

// SAFETY: dentries are shared between threads with `dget()`/`dput()`.
unsafe impl AlwaysRefCounted for Dentry {
    fn inc_ref(&self) {
        // SAFETY: `self` is live, so its count is non-zero.
        unsafe { bindings::shiftfs_dget(self.0.get()) };
    }

    /// Drops one reference (`dput()`).
    ///
    /// # Safety
    ///
    /// The caller must own a reference to `obj` and give it up.
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up a reference it owns.
        unsafe { bindings::dput(obj.as_ptr().cast()) };
    }
}

impl Dentry {
    /// # Safety
    ///
    /// `ptr` must point to a live dentry that stays live for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dentry) -> &'a Self {
        // SAFETY: `repr(transparent)`; liveness is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::dentry {
        self.0.get()
    }

    /// The inode, or `None` for a negative dentry.
    pub(crate) fn inode(&self) -> Option<&Inode> {
        // SAFETY: `d_inode` of a dentry we hold is stable while we hold it
        // (a positive dentry stays positive until it is killed).
        let inode = unsafe { (*self.as_raw()).d_inode };
        // SAFETY: a non-NULL `d_inode` is live as long as the dentry.
        (!inode.is_null()).then(|| unsafe { Inode::from_raw(inode) })
    }

    /// Whether the dentry has been unhashed (deleted or invalidated).
    pub(crate) fn is_unhashed(&self) -> bool {
        // SAFETY: `self` is live.
        unsafe { bindings::shiftfs_d_unhashed(self.as_raw()) }
    }
}
