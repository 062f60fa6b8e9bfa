// SPDX-License-Identifier: GPL-2.0

//! Inodes (`struct inode`), and stacked inodes hashed by the inode they
//! stand on.

use super::{
    bindings,
    super_block::SuperBlock,
    user_ns::{Kgid, Kuid},
};
use core::{ffi::c_void, ptr::NonNull};
use kernel::{
    error::code::ENOMEM,
    ffi::c_int,
    prelude::*,
    types::{ARef, AlwaysRefCounted, Opaque},
};

/// A reference-counted inode.
#[repr(transparent)]
pub(crate) struct Inode(Opaque<bindings::inode>);

// SAFETY: inodes are shared between threads with `ihold()`/`iput()`, which
// keep them alive while a reference is held.
unsafe impl AlwaysRefCounted for Inode {
    fn inc_ref(&self) {
        // SAFETY: `self` is live, so its count is non-zero.
        unsafe { bindings::ihold(self.0.get()) };
    }

    /// Drops one reference (`iput()`).
    ///
    /// # Safety
    ///
    /// The caller must own a reference to `obj` and give it up.
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up a reference it owns.
        unsafe { bindings::iput(obj.as_ptr().cast()) };
    }
}

impl Inode {
    /// # Safety
    ///
    /// `ptr` must point to a live inode that stays live for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::inode) -> &'a Self {
        // SAFETY: `repr(transparent)`; liveness is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// The owner.
    pub(crate) fn uid(&self) -> Kuid {
        // SAFETY: a plain read of a word-sized field of a live inode.
        Kuid(unsafe { (*self.as_raw()).i_uid.val })
    }

    /// The group.
    pub(crate) fn gid(&self) -> Kgid {
        // SAFETY: as for `uid`.
        Kgid(unsafe { (*self.as_raw()).i_gid.val })
    }

    /// The superblock the inode belongs to.
    pub(crate) fn super_block(&self) -> &SuperBlock {
        // SAFETY: an inode keeps its superblock alive; `i_sb` never changes.
        unsafe { SuperBlock::from_raw((*self.as_raw()).i_sb) }
    }
}

/// A new stacked inode, locked (`I_NEW`) until it is returned: the only
/// time its attributes are written without further locking.
pub(crate) struct NewInode<'a>(&'a Inode);

impl NewInode<'_> {
    pub(crate) fn as_raw(&self) -> *mut bindings::inode {
        self.0.as_raw()
    }

    /// Copies the attributes of `real`, with owner and group as given.
    pub(crate) fn copy_attrs(&self, real: &Inode, uid: Kuid, gid: Kgid) {
        // SAFETY: the inode is new and locked: nobody else uses it.
        unsafe { copy_attrs(self.0.as_raw(), real, uid, gid) }
    }
}

impl Inode {
    /// Whether this stacked inode stands on `real` (`i_private`).
    pub(crate) fn stands_on(&self, real: &Inode) -> bool {
        // SAFETY: `i_private` of a stacked inode never changes.
        unsafe { (*self.as_raw()).i_private == real.as_raw().cast() }
    }

    /// Whether the attributes [`copy_attrs`] copies are those of `real`,
    /// but for owner and group (whose changes change ctime too); read
    /// without locks, as the VFS reads them.
    pub(crate) fn attrs_match(&self, real: &Inode) -> bool {
        let (a, b) = (self.as_raw(), real.as_raw());
        let flags =
            bindings::S_SYNC | bindings::S_NOATIME | bindings::S_APPEND | bindings::S_IMMUTABLE;
        // SAFETY: both inodes are live; these are plain reads of fields
        // that writers update one word at a time.
        unsafe {
            (*a).i_mode == (*b).i_mode
                && (*a).__bindgen_anon_1.i_nlink == (*b).__bindgen_anon_1.i_nlink
                && (*a).i_size == (*b).i_size
                && (*a).i_mtime_sec == (*b).i_mtime_sec
                && (*a).i_mtime_nsec == (*b).i_mtime_nsec
                && (*a).i_ctime_sec == (*b).i_ctime_sec
                && (*a).i_ctime_nsec == (*b).i_ctime_nsec
                && ((*a).i_flags & flags) == ((*b).i_flags & flags)
        }
    }
}

/// Copies the attributes of `real` into `dst`, with owner and group as given.
///
/// # Safety
///
/// `dst` must be a live inode that is new (`I_NEW`), or whose lock
/// (`i_rwsem`) the caller holds, or one whose attributes the caller accepts
/// to be seen half-updated for a moment (as overlayfs's own copy is).
pub(crate) unsafe fn copy_attrs(dst: *mut bindings::inode, real: &Inode, uid: Kuid, gid: Kgid) {
    let src = real.as_raw();
    // SAFETY: per the contract nobody else writes `dst`; `src` is live and
    // these are plain reads of its fields, as overlayfs makes them.
    unsafe {
        (*dst).i_ino = (*src).i_ino;
        (*dst).i_mode = (*src).i_mode;
        (*dst).i_uid.val = uid.0;
        (*dst).i_gid.val = gid.0;
        (*dst).i_rdev = (*src).i_rdev;
        // The flags that change what may be done to the file and how it
        // is written (as overlayfs copies them).
        let flags =
            bindings::S_SYNC | bindings::S_NOATIME | bindings::S_APPEND | bindings::S_IMMUTABLE;
        (*dst).i_flags = ((*dst).i_flags & !flags) | ((*src).i_flags & flags);
        copy_size_times(dst, real);
        bindings::set_nlink(dst, (*src).__bindgen_anon_1.i_nlink);
    }
}

/// Copies size and times of `real` into `dst` (after a write).
///
/// # Safety
///
/// `dst` must be a live inode; the fields are written as overlayfs writes
/// them after I/O, without the inode lock.
pub(crate) unsafe fn copy_size_times(dst: *mut bindings::inode, real: &Inode) {
    let src = real.as_raw();
    // SAFETY: per the contract; `src` is live.
    unsafe {
        bindings::shiftfs_i_size_write(dst, bindings::shiftfs_i_size_read(src));
        (*dst).i_blocks = (*src).i_blocks;
        (*dst).i_atime_sec = (*src).i_atime_sec;
        (*dst).i_atime_nsec = (*src).i_atime_nsec;
        (*dst).i_mtime_sec = (*src).i_mtime_sec;
        (*dst).i_mtime_nsec = (*src).i_mtime_nsec;
        (*dst).i_ctime_sec = (*src).i_ctime_sec;
        (*dst).i_ctime_nsec = (*src).i_ctime_nsec;
    }
}

/// `iget5_locked` test: is `inode` the stacked inode of real inode `data`?
///
/// # Safety
///
/// Called by `iget5_locked` with a live inode of our superblock.
unsafe extern "C" fn stacked_test(inode: *mut bindings::inode, data: *mut c_void) -> c_int {
    // SAFETY: per the contract `inode` is live; `i_private` was set by
    // `stacked_set` and never changes.
    c_int::from(unsafe { (*inode).i_private } == data)
}

/// `iget5_locked` set: make the new `inode` stand on real inode `data`.
///
/// # Safety
///
/// Called by `iget5_locked` with a new inode and the `data` given to it,
/// a live real inode.
unsafe extern "C" fn stacked_set(inode: *mut bindings::inode, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the live real inode passed to `iget5_locked`; the
    // reference taken here is dropped by `evict_stacked`.
    unsafe {
        bindings::ihold(data.cast());
        (*inode).i_private = data;
    }
    0
}

/// The stacked inode in `sb` for `real`: found if one lives, else created
/// and initialised by `init` (`iget5_locked()` keyed by the real inode), so
/// that there is one stacked inode per real inode.
pub(crate) fn iget_stacked(
    sb: &SuperBlock,
    real: &Inode,
    init: impl FnOnce(&NewInode<'_>),
) -> Result<ARef<Inode>> {
    let key = real.as_raw();
    // SAFETY: `sb` is live; the callbacks match the contract above and `key`
    // is a live inode for the duration of the call.
    let raw = unsafe {
        bindings::iget5_locked(
            sb.as_raw(),
            key as usize,
            Some(stacked_test),
            Some(stacked_set),
            key.cast(),
        )
    };
    let raw = NonNull::new(raw).ok_or(ENOMEM)?;
    // SAFETY: `iget5_locked` returned a referenced inode, now ours.
    let inode: ARef<Inode> = unsafe { ARef::from_raw(raw.cast()) };
    // SAFETY: `i_state` is read as `iget5_locked` returned it; `I_NEW` is
    // only cleared by us below.
    if unsafe { (*raw.as_ptr()).i_state } & bindings::SHIFTFS_I_NEW != 0 {
        init(&NewInode(&inode));
        // SAFETY: the inode is new and locked; this publishes it.
        unsafe { bindings::unlock_new_inode(raw.as_ptr()) };
    }
    Ok(inode)
}

/// `super_operations::evict_inode` for stacked inodes: drops the page cache
/// and the reference to the real inode.
///
/// # Safety
///
/// Called by the VFS once, for a stacked inode being evicted.
pub(crate) unsafe extern "C" fn evict_stacked(inode: *mut bindings::inode) {
    // SAFETY: per the contract; `i_private` holds the reference taken by
    // `stacked_set`, released exactly once here.
    unsafe {
        bindings::truncate_inode_pages_final(&mut (*inode).i_data);
        bindings::clear_inode(inode);
        let real = (*inode).i_private.cast::<bindings::inode>();
        (*inode).i_private = core::ptr::null_mut();
        if !real.is_null() {
            bindings::iput(real);
        }
    }
}
