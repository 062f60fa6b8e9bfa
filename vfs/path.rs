// SPDX-License-Identifier: GPL-2.0

//! Paths (`struct path`: a mount and a dentry on it) and the superblocks
//! they lead to.

use super::{
    bindings, dentry::Dentry, inode::Inode, super_block::SuperBlock, user_ns::UserNamespace,
};
use kernel::{error::to_result, prelude::*, str::CStr};

/// A looked-up path, holding a reference to its mount and its dentry
/// (`path_get()`), dropped with `path_put()`.
pub(crate) struct Path(bindings::path);

impl Path {
    /// Looks `name` up as the calling task would, following a final symlink
    /// (`kern_path(name, LOOKUP_FOLLOW)`).
    pub(crate) fn lookup(name: &CStr) -> Result<Self> {
        let mut path = bindings::path::default();
        // SAFETY: `name` is NUL-terminated; on success `kern_path` fills
        // `path` with references that `Drop` releases.
        to_result(unsafe {
            bindings::kern_path(name.as_char_ptr(), bindings::LOOKUP_FOLLOW, &mut path)
        })?;
        Ok(Self(path))
    }

    /// A path to `dentry` on `mnt`, taking references to both (`path_get()`).
    ///
    /// # Safety
    ///
    /// `mnt` and `dentry` must be live, and `dentry` on `mnt`'s filesystem.
    pub(crate) unsafe fn get(mnt: *mut bindings::vfsmount, dentry: *mut bindings::dentry) -> Self {
        let path = bindings::path { mnt, dentry };
        // SAFETY: per the contract; `Drop` releases what this takes.
        unsafe { bindings::path_get(&path) };
        Self(path)
    }

    /// Whether the path is a directory (`d_is_dir()`).
    pub(crate) fn is_dir(&self) -> bool {
        // SAFETY: `dentry` is a live dentry we hold a reference to.
        unsafe { bindings::shiftfs_d_is_dir(self.0.dentry) }
    }

    /// Whether the path is on an idmapped mount (`is_idmapped_mnt()`).
    pub(crate) fn is_idmapped(&self) -> bool {
        // SAFETY: `mnt` is a live mount we hold a reference to.
        unsafe { bindings::shiftfs_is_idmapped_mnt(self.0.mnt) }
    }

    /// The superblock of the filesystem the path is on.
    pub(crate) fn super_block(&self) -> &SuperBlock {
        // SAFETY: a mount we hold keeps its superblock alive, and `mnt_sb`
        // never changes.
        unsafe { SuperBlock::from_raw((*self.0.mnt).mnt_sb) }
    }

    /// The dentry the path leads to.
    pub(crate) fn dentry(&self) -> &Dentry {
        // SAFETY: we hold a reference to the dentry.
        unsafe { Dentry::from_raw(self.0.dentry) }
    }

    /// The inode the path leads to.
    pub(crate) fn inode(&self) -> &Inode {
        // SAFETY: a positive dentry we hold keeps its inode, which does not
        // change while it is referenced (`kern_path` returns positive ones).
        unsafe { Inode::from_raw((*self.0.dentry).d_inode) }
    }

    pub(crate) fn as_raw(&self) -> *const bindings::path {
        &self.0
    }
}

// SAFETY: a path holds counted references to a mount and a dentry, which
// may be used and dropped from any thread.
unsafe impl Send for Path {}
// SAFETY: `&Path` only reads the two pointers.
unsafe impl Sync for Path {}

impl Drop for Path {
    fn drop(&mut self) {
        // SAFETY: the references were taken by `lookup` and are released once.
        unsafe { bindings::path_put(&self.0) };
    }
}

/// Whether the calling task has `CAP_SYS_ADMIN` over `ns` (`ns_capable()`).
pub(crate) fn capable_sys_admin(ns: &UserNamespace) -> bool {
    // SAFETY: `ns` is a valid namespace for the duration of the call.
    unsafe { bindings::ns_capable(ns.as_raw(), bindings::CAP_SYS_ADMIN as i32) }
}
