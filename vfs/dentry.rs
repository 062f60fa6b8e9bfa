// SPDX-License-Identifier: GPL-2.0

//! Directory entries (`struct dentry`).

use super::{bindings, inode::Inode};
use core::{mem::MaybeUninit, ptr::NonNull};
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

/// Whether `a` and `b` have the same name now (each read consistently,
/// `take_dentry_name_snapshot()`), for dentries whose names may change
/// under a concurrent rename.
pub(crate) fn same_name(a: &Dentry, b: &Dentry) -> bool {
    let mut sa = MaybeUninit::<bindings::name_snapshot>::uninit();
    let mut sb = MaybeUninit::<bindings::name_snapshot>::uninit();
    // SAFETY: both dentries are live; each snapshot is filled in by
    // `take_dentry_name_snapshot` before it is read, and released once.
    unsafe {
        bindings::take_dentry_name_snapshot(sa.as_mut_ptr(), a.as_raw());
        bindings::take_dentry_name_snapshot(sb.as_mut_ptr(), b.as_raw());
        let (na, nb) = (&(*sa.as_ptr()).name, &(*sb.as_ptr()).name);
        let (la, lb) = (
            na.__bindgen_anon_1.__bindgen_anon_1.len as usize,
            nb.__bindgen_anon_1.__bindgen_anon_1.len as usize,
        );
        let same = la == lb
            && core::slice::from_raw_parts(na.name, la) == core::slice::from_raw_parts(nb.name, lb);
        bindings::release_dentry_name_snapshot(sb.as_mut_ptr());
        bindings::release_dentry_name_snapshot(sa.as_mut_ptr());
        same
    }
}

/// [`same_name`] in an RCU walk: `real`'s name is compared as the RCU
/// dcache lookup compares names (`d_same_name()`), `stacked`'s is read
/// consistently.
///
/// # Safety
///
/// The caller must be in an RCU read-side section (an RCU path walk), in
/// which `real` and its parent stay readable.
pub(crate) unsafe fn same_name_rcu(stacked: &Dentry, real: &Dentry) -> bool {
    let mut snap = MaybeUninit::<bindings::name_snapshot>::uninit();
    // SAFETY: `stacked` is live; the snapshot is filled in before it is
    // read and released once; per the contract `real` and its parent are
    // readable, and `d_same_name` reads `real`'s name as RCU readers may.
    unsafe {
        bindings::take_dentry_name_snapshot(snap.as_mut_ptr(), stacked.as_raw());
        let real = real.as_raw();
        let same = bindings::d_same_name(real, (*real).d_parent, &(*snap.as_ptr()).name);
        bindings::release_dentry_name_snapshot(snap.as_mut_ptr());
        same
    }
}
