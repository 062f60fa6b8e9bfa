// SPDX-License-Identifier: GPL-2.0

//! Paths (`struct path`: a mount and a dentry on it) and mounts.

use super::{
    bindings,
    cred::Credential,
    dentry::Dentry,
    errno::to_result,
    file::{File, OpenFlags},
    inode::{nop_idmap, Inode, Kstat, MntIdmap},
    super_block::{Kstatfs, SuperBlock},
    ARef, Real,
};
use core::{ffi::CStr, marker::PhantomData, ptr::NonNull};
use kernel::{error::from_err_ptr, ffi::c_int, prelude::*, types::Opaque};

/// A mounted filesystem (`struct vfsmount`).
///
/// # Invariants
///
/// Live while the handle is: borrowed from a [`Path`] that holds it.
#[repr(transparent)]
pub(crate) struct Mount(Opaque<bindings::vfsmount>);

impl Mount {
    /// A path to `dentry` on this mount, without references of its own.
    pub(crate) fn path<'a>(&'a self, dentry: &'a Dentry<Real>) -> PathRef<'a> {
        PathRef {
            path: bindings::path {
                mnt: self.0.get(),
                dentry: dentry.as_raw(),
            },
            _p: PhantomData,
        }
    }

    /// The mount's idmapping (`mnt_idmap()`), if it is an idmapped mount.
    /// It is set before a mount is attached and never changes after.
    pub(crate) fn idmap(&self) -> Option<&MntIdmap> {
        let mnt = self.0.get();
        // SAFETY: `self` is live; the idmapping lives at least as long as
        // the mount that holds it. The acquire load pairs with the release
        // store that published it.
        unsafe {
            let idmap = core::ptr::read_volatile(&raw const (*mnt).mnt_idmap);
            core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
            (idmap != nop_idmap()).then(|| MntIdmap::from_raw(idmap))
        }
    }

    /// Write access to the mount (`mnt_want_write()`: not read-only, not
    /// frozen), until the guard is dropped.
    pub(crate) fn want_write(&self) -> Result<WriteAccess<'_>> {
        // SAFETY: `self` is live; the guard drops the access taken here.
        to_result(unsafe { bindings::mnt_want_write(self.0.get()) })?;
        Ok(WriteAccess(self))
    }
}

/// Write access to a mount (`mnt_want_write()`), dropped with the guard.
pub(crate) struct WriteAccess<'a>(&'a Mount);

impl Drop for WriteAccess<'_> {
    fn drop(&mut self) {
        // SAFETY: `want_write` took write access to this mount.
        unsafe { bindings::mnt_drop_write(self.0 .0.get()) };
    }
}

/// A looked-up path, holding a reference to its mount and its dentry
/// (`path_get()`), dropped with `path_put()`.
///
/// # Invariants
///
/// `mnt` and `dentry` are live and referenced; `dentry` is positive (a
/// looked-up path) and on `mnt`.
pub(crate) struct Path(bindings::path);

// SAFETY: a path holds counted references to a mount and a dentry, which
// may be used and dropped from any thread.
unsafe impl Send for Path {}
// SAFETY: `&Path` only reads the two pointers.
unsafe impl Sync for Path {}

impl Drop for Path {
    fn drop(&mut self) {
        // SAFETY: the references were taken by `lookup` or `new` and are
        // released once.
        unsafe { bindings::path_put(&self.0) };
    }
}

impl Path {
    /// Looks `name` up as the calling task would, following a final symlink
    /// (`kern_path(name, LOOKUP_FOLLOW)`).
    pub(crate) fn lookup(name: &CStr) -> Result<Self> {
        let mut path = bindings::path::default();
        // SAFETY: `name` is NUL-terminated; on success `kern_path` fills
        // `path` with references that `Drop` releases.
        to_result(unsafe {
            bindings::kern_path(
                super::c_ptr(name),
                bindings::SHIFTFS_LOOKUP_FOLLOW,
                &mut path,
            )
        })?;
        Ok(Self(path))
    }

    /// A path to positive `dentry` on `mnt`, taking references to both.
    pub(crate) fn new(mnt: &Mount, dentry: &Dentry<Real>) -> Result<Self> {
        dentry.inode().ok_or(ENOENT)?;
        let path = bindings::path {
            mnt: mnt.0.get(),
            dentry: dentry.as_raw(),
        };
        // SAFETY: both are live; `Drop` releases what this takes.
        unsafe { bindings::path_get(&path) };
        Ok(Self(path))
    }

    /// The parent directory on the same mount; `None` at the mount's root.
    pub(crate) fn parent(&self) -> Option<Self> {
        // SAFETY: the path's mount and dentry are live; `dget_parent`
        // returns a referenced dentry, whose reference is dropped once the
        // new path holds its own.
        unsafe {
            if self.0.dentry == (*self.0.mnt).mnt_root {
                return None;
            }
            let parent = bindings::dget_parent(self.0.dentry);
            let path = bindings::path {
                mnt: self.0.mnt,
                dentry: parent,
            };
            let up = (parent != self.0.dentry).then(|| {
                bindings::path_get(&path);
                Self(path)
            });
            bindings::dput(parent);
            up
        }
    }

    /// The mount.
    pub(crate) fn mount(&self) -> &Mount {
        // SAFETY: we hold a reference to the mount.
        unsafe { &*self.0.mnt.cast() }
    }

    /// The dentry the path leads to.
    pub(crate) fn dentry(&self) -> &Dentry<Real> {
        // SAFETY: we hold a reference to the dentry.
        unsafe { Dentry::from_raw(self.0.dentry) }
    }

    /// The inode the path leads to.
    pub(crate) fn inode(&self) -> &Inode<Real> {
        // SAFETY: a positive dentry we hold keeps its inode, which does not
        // change while it is referenced.
        unsafe { Inode::from_raw((*self.0.dentry).d_inode) }
    }

    /// The superblock of the filesystem the path is on.
    pub(crate) fn super_block(&self) -> &SuperBlock<Real> {
        // SAFETY: a mount we hold keeps its superblock alive, and `mnt_sb`
        // never changes.
        unsafe { SuperBlock::from_raw((*self.0.mnt).mnt_sb) }
    }

    /// Whether the path is a directory (`d_is_dir()`).
    pub(crate) fn is_dir(&self) -> bool {
        // SAFETY: `dentry` is a live dentry we hold a reference to.
        unsafe { bindings::shiftfs_d_is_dir(self.0.dentry) }
    }

    /// Whether the path is on a read-only mount or superblock
    /// (`__mnt_is_readonly()`).
    pub(crate) fn is_readonly(&self) -> bool {
        // SAFETY: `mnt` is a live mount we hold a reference to.
        unsafe { bindings::__mnt_is_readonly(self.0.mnt) }
    }

    /// The mount's `MNT_*` flags, read once (a remount may change them).
    fn mnt_flags(&self) -> u32 {
        // SAFETY: `mnt` is a live mount we hold a reference to; the read is
        // a single volatile load of an int.
        unsafe { core::ptr::read_volatile(&(*self.0.mnt).mnt_flags) as u32 }
    }

    /// Whether the path's mount forbids executing (`noexec`) and device
    /// nodes (`nodev`).
    pub(crate) fn mount_forbids(&self) -> (bool, bool) {
        let flags = self.mnt_flags();
        (
            flags & bindings::SHIFTFS_MNT_NOEXEC != 0,
            flags & bindings::SHIFTFS_MNT_NODEV != 0,
        )
    }

    /// Whether an access through this mount may record an atime at all:
    /// not on a `noatime` or read-only mount, nor for a directory on a
    /// `nodiratime` one. (`relatime` and the inode's own flags are left to
    /// `touch_atime()`.)
    pub(crate) fn records_atime(&self, dir: bool) -> bool {
        let flags = self.mnt_flags();
        let off = if dir {
            bindings::SHIFTFS_MNT_NOATIME | bindings::SHIFTFS_MNT_NODIRATIME
        } else {
            bindings::SHIFTFS_MNT_NOATIME
        };
        flags & off == 0 && !self.is_readonly()
    }

    /// Statistics of the filesystem the path is on (`vfs_statfs()`).
    pub(crate) fn statfs(&self, buf: &mut Kstatfs) -> Result {
        // SAFETY: the path is live; `buf` is writable.
        to_result(unsafe { bindings::vfs_statfs(&self.0, buf.as_raw()) })
    }
}

/// A path borrowed from references held elsewhere (a [`Path`]'s mount and
/// a dentry the caller holds).
pub(crate) struct PathRef<'a> {
    path: bindings::path,
    _p: PhantomData<&'a ()>,
}

impl PathRef<'_> {
    pub(super) fn as_raw(&self) -> *const bindings::path {
        &self.path
    }

    /// Attributes for `stat()` as the path's filesystem gives them, without
    /// a security check of their own (`vfs_getattr_nosec()`: the caller's
    /// was made on the stacked path).
    pub(crate) fn getattr(&self, stat: &mut Kstat, request_mask: u32, flags: u32) -> Result {
        // SAFETY: the path is live; `stat` is writable.
        to_result(unsafe {
            bindings::vfs_getattr_nosec(&self.path, stat.as_raw(), request_mask, flags)
        })
    }

    /// Updates the access time of the path's inode if its mount's flags and
    /// the inode's times say so (`touch_atime()`, which has write access
    /// to the mount for it; a failed update is ignored, as the VFS ignores
    /// it). May sleep.
    pub(crate) fn touch_atime(&self) {
        // SAFETY: the path is live.
        unsafe { bindings::touch_atime(&self.path) }
    }

    /// Opens the path (`dentry_open()`) with `flags` and `cred`, which the
    /// file keeps.
    pub(crate) fn open(&self, flags: OpenFlags, cred: &Credential) -> Result<ARef<File<Real>>> {
        // SAFETY: the path and `cred` are live; the file takes references
        // of its own to both.
        let file = from_err_ptr(unsafe {
            bindings::dentry_open(&self.path, flags.0 as c_int, cred.as_raw())
        })?;
        // SAFETY: a new file with its reference, now ours.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(file).cast()) })
    }
}
