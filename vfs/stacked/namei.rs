// SPDX-License-Identifier: GPL-2.0

//! Namespace operations of stacked directories: create, mkdir, mknod,
//! symlink, link, unlink, rmdir, rename, tmpfile.
//!
//! The VFS has checked the caller against the stacked directory (with its
//! shifted owners) and holds its lock. Each operation then takes write
//! access to the real mount, locks the real directory, checks that the real
//! entry under the stacked dentry is still the one of that name in that
//! directory (`ESTALE` otherwise: something changed below, and the VFS
//! retries with revalidation), and calls the real filesystem's operation
//! with the overridden credentials. The new entry's inode is the hashed
//! stacked inode of the real one; directory attributes are copied up.

use super::{iget, nop_idmap, real_of, refresh, sb_info, FileSystem};
use crate::vfs::{bindings, dentry::Dentry, inode::Inode, super_block::SuperBlock};
use kernel::{
    error::{
        code::{EINVAL, EPERM},
        from_err_ptr, from_result, to_result,
    },
    ffi::{c_char, c_int, c_uint},
    prelude::*,
    types::ARef,
};

fn estale() -> Error {
    Error::from_errno(-(bindings::ESTALE as c_int))
}

/// Write access to a real mount (`mnt_want_write()`), dropped with the guard.
pub(super) struct WriteAccess(*mut bindings::vfsmount);

impl WriteAccess {
    /// # Safety
    ///
    /// `mnt` must be a mount that outlives the guard.
    pub(super) unsafe fn get(mnt: *mut bindings::vfsmount) -> Result<Self> {
        // SAFETY: per the contract.
        to_result(unsafe { bindings::mnt_want_write(mnt) })?;
        Ok(Self(mnt))
    }
}

impl Drop for WriteAccess {
    fn drop(&mut self) {
        // SAFETY: `get` took write access to this mount.
        unsafe { bindings::mnt_drop_write(self.0) };
    }
}

/// A real directory locked for a change of its entries.
struct LockedDir(*mut bindings::inode);

impl LockedDir {
    /// # Safety
    ///
    /// `dir` must be a live directory inode that outlives the guard.
    unsafe fn lock(dir: *mut bindings::inode) -> Self {
        // SAFETY: per the contract.
        unsafe { bindings::shiftfs_inode_lock_parent(dir) };
        Self(dir)
    }
}

impl Drop for LockedDir {
    fn drop(&mut self) {
        // SAFETY: `lock` locked it.
        unsafe { bindings::shiftfs_inode_unlock(self.0) };
    }
}

/// The real mount under superblock info `info` of `T`.
///
/// # Safety
///
/// The result must not outlive `info`.
pub(super) unsafe fn real_mnt<T: FileSystem>(info: &T::SbInfo) -> *mut bindings::vfsmount {
    // SAFETY: the real root path keeps its mount while `info` lives.
    unsafe { (*T::real_root(info).as_raw()).mnt }
}

/// Whether `real`, the real dentry under stacked `d`, is still the entry of
/// `d`'s name in `real_parent`, positive or negative as `d` is. Called with
/// both parents locked, so that names and parents are stable.
///
/// # Safety
///
/// `d` must be a live dentry whose parent's lock the caller holds.
unsafe fn check_real(real_parent: &Dentry, real: &Dentry, d: *mut bindings::dentry) -> Result {
    // SAFETY: per the contract; `real` is live and its name and parent do
    // not change while its parent is locked.
    let (same_parent, same_name, positive) = unsafe {
        let (r, s) = (&(*real.as_raw()).d_name, &(*d).d_name);
        let (rlen, slen) = (
            r.__bindgen_anon_1.__bindgen_anon_1.len,
            s.__bindgen_anon_1.__bindgen_anon_1.len,
        );
        (
            (*real.as_raw()).d_parent == real_parent.as_raw(),
            rlen == slen
                && core::slice::from_raw_parts(r.name, rlen as usize)
                    == core::slice::from_raw_parts(s.name, slen as usize),
            !(*d).d_inode.is_null(),
        )
    };
    if !same_parent || !same_name || real.is_unhashed() || real.inode().is_some() != positive {
        return Err(estale());
    }
    Ok(())
}

/// Copies the attributes of stacked directory `dir`'s real one up (times,
/// link count, size after an entry came or went).
///
/// # Safety
///
/// `dir` must be a live directory of `T` whose lock the caller holds.
unsafe fn refresh_inode<T: FileSystem>(inode: *mut bindings::inode) {
    // SAFETY: per the contract; a stacked inode holds its real inode.
    unsafe {
        let real = Inode::from_raw((*inode).i_private.cast());
        refresh::<T>((*inode).i_sb, Inode::from_raw(inode), real);
    }
}

/// Calls `op` with the real directory under `dir` (locked, with write
/// access to its mount) and the real dentry under `d`, checked to be still
/// `d`'s name in it, with the overridden credentials. Returns the real
/// dentry.
///
/// # Safety
///
/// Called from a namespace operation of `T` with directory `dir` locked by
/// the VFS and `d`, a looked-up dentry in it; the result must not outlive
/// `d`.
unsafe fn in_real_dir<'a, T: FileSystem>(
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    op: impl FnOnce(*mut bindings::inode, *mut bindings::dentry) -> c_int,
) -> Result<&'a Dentry> {
    // SAFETY: per the contract, `dir` and `d` are live dentries of `T`
    // that have their real dentries.
    let ((sb, info), real_parent, real) = unsafe {
        (
            sb_info::<T>((*dir).i_sb),
            real_of((*d).d_parent),
            real_of(d),
        )
    };
    let real_dir = real_parent.inode().ok_or(estale())?.as_raw();
    let _creds = T::enter(sb, info)?;
    // SAFETY: the real mount lives as long as `info`.
    let _write = unsafe { WriteAccess::get(real_mnt::<T>(info)) }?;
    // SAFETY: `real_dir` is the live inode of a live dentry.
    let _locked = unsafe { LockedDir::lock(real_dir) };
    // SAFETY: per the contract and the lock just taken.
    unsafe { check_real(real_parent, real, d) }?;
    // A reference of our own for the operation: with only the stacked
    // dentry's, `d_delete()` would turn the real dentry negative in place
    // under stacked dentries others still hold open (an unlinked file
    // must stay positive, unhashed, like any open-but-deleted file).
    let held: ARef<Dentry> = real.into();
    to_result(op(real_dir, held.as_raw()))?;
    Ok(real)
}

/// Makes a new entry with `make` (see [`in_real_dir`]), then instantiates
/// the stacked dentry `d` with the stacked inode of the result.
///
/// # Safety
///
/// As for [`in_real_dir`], with `d` negative.
unsafe fn make_entry<T: FileSystem>(
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    make: impl FnOnce(*mut bindings::inode, *mut bindings::dentry) -> c_int,
) -> Result {
    // SAFETY: per the contract.
    let real = unsafe { in_real_dir::<T>(dir, d, make) }?;
    // SAFETY: per the contract; `dir` is a live inode of `T`.
    unsafe { instantiate::<T>(sb_info::<T>((*dir).i_sb).0, dir, d, real) }
}

/// Gives stacked dentry `d` the stacked inode of `real`, just made.
///
/// # Safety
///
/// As for [`make_entry`].
unsafe fn instantiate<T: FileSystem>(
    sb: &SuperBlock,
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    real: &Dentry,
) -> Result {
    // SAFETY: per the contract, the VFS holds `dir`'s lock.
    unsafe { refresh_inode::<T>(dir) };
    match real.inode().filter(|_| !real.is_unhashed()) {
        // Some filesystems leave the new entry to be looked up again.
        // SAFETY: `d` is live.
        None => unsafe { bindings::d_drop(d) },
        Some(ri) => {
            let (uid, gid) = T::shift_ids(sb, ri.super_block(), ri.uid(), ri.gid());
            let inode = iget::<T>(sb, ri, uid, gid)?;
            // A hard link's inode was known already: its link count changed.
            // SAFETY: the stacked inode of the real one, under `sb`.
            unsafe { refresh::<T>(sb.as_raw(), &inode, ri) };
            // SAFETY: `d` is negative and ours; `d_instantiate` takes over
            // the inode reference.
            unsafe { bindings::d_instantiate(d, ARef::into_raw(inode).as_ptr().cast()) };
        }
    }
    Ok(())
}

/// Removes an entry with `remove` (see [`in_real_dir`]), then copies the
/// attributes of the directory and of the removed inode up.
///
/// # Safety
///
/// As for [`in_real_dir`], with `d` positive.
unsafe fn remove_entry<T: FileSystem>(
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    remove: impl FnOnce(*mut bindings::inode, *mut bindings::dentry) -> c_int,
) -> Result {
    // SAFETY: per the contract.
    unsafe { in_real_dir::<T>(dir, d, remove) }?;
    // SAFETY: the VFS holds `dir`'s lock and the victim's; `d` is positive
    // and referenced by the caller, and `d_drop` takes its own `d_lock`.
    unsafe {
        refresh_inode::<T>(dir);
        refresh_inode::<T>((*d).d_inode);
        // Unhashed, `d` goes away with its last user instead of staying as
        // a negative dentry that still holds the removed real dentry, and
        // with it the real inode and its blocks (the real dentry is
        // unhashed, not made negative: it had more than one user during
        // the removal).
        bindings::d_drop(d);
    }
    Ok(())
}

/// `create`.
///
/// # Safety
///
/// Called by the VFS as `inode_operations::create` of a directory of `T`.
pub(super) unsafe extern "C" fn create<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    mode: bindings::umode_t,
    excl: bool,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract; the closure gets the locked real
        // directory and a negative real dentry in it.
        unsafe {
            make_entry::<T>(dir, d, |rdir, rd| {
                bindings::vfs_create(nop_idmap(), rdir, rd, mode, excl)
            })
        }?;
        Ok(0)
    })
}

/// `mkdir`.
///
/// # Safety
///
/// Called by the VFS as `inode_operations::mkdir` of a directory of `T`.
pub(super) unsafe extern "C" fn mkdir<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> c_int {
    from_result(|| {
        // SAFETY: as for `create`.
        unsafe {
            make_entry::<T>(dir, d, |rdir, rd| {
                bindings::vfs_mkdir(nop_idmap(), rdir, rd, mode)
            })
        }?;
        Ok(0)
    })
}

/// `mknod`: fifos, sockets and whiteouts for anyone the VFS let through;
/// device nodes only for a caller with CAP_MKNOD in the initial namespace
/// (checked again here, before the override, as the real filesystem would).
///
/// # Safety
///
/// Called by the VFS as `inode_operations::mknod` of a directory of `T`.
pub(super) unsafe extern "C" fn mknod<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    mode: bindings::umode_t,
    dev: bindings::dev_t,
) -> c_int {
    from_result(|| {
        let fmt = u32::from(mode) & bindings::S_IFMT;
        let device = fmt == bindings::S_IFBLK || (fmt == bindings::S_IFCHR && dev != 0);
        // SAFETY: `capable` reads the calling task's own credentials.
        if device && !unsafe { bindings::capable(bindings::CAP_MKNOD as c_int) } {
            return Err(EPERM);
        }
        // SAFETY: as for `create`.
        unsafe {
            make_entry::<T>(dir, d, |rdir, rd| {
                bindings::vfs_mknod(nop_idmap(), rdir, rd, mode, dev)
            })
        }?;
        Ok(0)
    })
}

/// `symlink`.
///
/// # Safety
///
/// Called by the VFS as `inode_operations::symlink` of a directory of `T`,
/// with a NUL-terminated target.
pub(super) unsafe extern "C" fn symlink<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    target: *const c_char,
) -> c_int {
    from_result(|| {
        // SAFETY: as for `create`; `target` is the caller's.
        unsafe {
            make_entry::<T>(dir, d, |rdir, rd| {
                bindings::vfs_symlink(nop_idmap(), rdir, rd, target)
            })
        }?;
        Ok(0)
    })
}

/// `link`: a new name for the real inode under `old`.
///
/// # Safety
///
/// Called by the VFS as `inode_operations::link` of a directory of `T`,
/// `old` a positive dentry of the same superblock.
pub(super) unsafe extern "C" fn link<T: FileSystem>(
    old: *mut bindings::dentry,
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract `old` is a looked-up dentry of `T`.
        let real_old = unsafe { real_of(old) }.as_raw();
        // SAFETY: as for `create`.
        unsafe {
            make_entry::<T>(dir, d, |rdir, rd| {
                bindings::vfs_link(real_old, nop_idmap(), rdir, rd, core::ptr::null_mut())
            })
        }?;
        Ok(0)
    })
}

/// `unlink`.
///
/// # Safety
///
/// Called by the VFS as `inode_operations::unlink` of a directory of `T`.
pub(super) unsafe extern "C" fn unlink<T: FileSystem>(
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract; the closure gets the locked real
        // directory and the positive real dentry in it.
        unsafe {
            remove_entry::<T>(dir, d, |rdir, rd| {
                bindings::vfs_unlink(nop_idmap(), rdir, rd, core::ptr::null_mut())
            })
        }?;
        Ok(0)
    })
}

/// `rmdir`.
///
/// # Safety
///
/// Called by the VFS as `inode_operations::rmdir` of a directory of `T`.
pub(super) unsafe extern "C" fn rmdir<T: FileSystem>(
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
) -> c_int {
    from_result(|| {
        // SAFETY: as for `unlink`.
        unsafe {
            remove_entry::<T>(dir, d, |rdir, rd| {
                bindings::vfs_rmdir(nop_idmap(), rdir, rd)
            })
        }?;
        Ok(0)
    })
}

/// Both real directories of a rename, locked (`lock_rename()`).
struct LockedRename(*mut bindings::dentry, *mut bindings::dentry);

impl Drop for LockedRename {
    fn drop(&mut self) {
        // SAFETY: `lock_rename` succeeded on these two.
        unsafe { bindings::unlock_rename(self.0, self.1) };
    }
}

/// `rename`, with the flags the real filesystem supports
/// (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`, `RENAME_WHITEOUT`).
///
/// # Safety
///
/// Called by the VFS as `inode_operations::rename` of directories of `T`,
/// with both directories and the entries' inodes locked.
pub(super) unsafe extern "C" fn rename<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    old_dir: *mut bindings::inode,
    old: *mut bindings::dentry,
    new_dir: *mut bindings::inode,
    new: *mut bindings::dentry,
    flags: c_uint,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract, all four dentries are looked-up
        // dentries of `T` with their real dentries.
        let ((sb, info), real_old_parent, real_new_parent, real_old, real_new) = unsafe {
            (
                sb_info::<T>((*old_dir).i_sb),
                real_of((*old).d_parent),
                real_of((*new).d_parent),
                real_of(old),
                real_of(new),
            )
        };
        let old_rdir = real_old_parent.inode().ok_or(estale())?.as_raw();
        let new_rdir = real_new_parent.inode().ok_or(estale())?.as_raw();
        {
            let _creds = T::enter(sb, info)?;
            // SAFETY: the real mount lives as long as `info`.
            let _write = unsafe { WriteAccess::get(real_mnt::<T>(info)) }?;
            let (p1, p2) = (real_old_parent.as_raw(), real_new_parent.as_raw());
            // SAFETY: both are live directories on the real mount.
            let trap = from_err_ptr(unsafe { bindings::lock_rename(p1, p2) })?;
            let _locked = LockedRename(p1, p2);
            // SAFETY: per the contract and the locks just taken.
            unsafe {
                check_real(real_old_parent, real_old, old)?;
                check_real(real_new_parent, real_new, new)?;
            }
            if trap == real_old.as_raw() {
                return Err(EINVAL);
            }
            if trap == real_new.as_raw() {
                return Err(Error::from_errno(-(bindings::ENOTEMPTY as c_int)));
            }
            let mut rd = bindings::renamedata {
                old_mnt_idmap: nop_idmap(),
                old_dir: old_rdir,
                old_dentry: real_old.as_raw(),
                new_mnt_idmap: nop_idmap(),
                new_dir: new_rdir,
                new_dentry: real_new.as_raw(),
                delegated_inode: core::ptr::null_mut(),
                flags,
            };
            // SAFETY: the real directories are locked and the entries checked.
            to_result(unsafe { bindings::vfs_rename(&mut rd) })?;
        }
        // SAFETY: the VFS holds the directories' and entries' locks.
        unsafe {
            refresh_inode::<T>(old_dir);
            if new_dir != old_dir {
                refresh_inode::<T>(new_dir);
            }
            refresh_inode::<T>((*old).d_inode);
            if !(*new).d_inode.is_null() {
                refresh_inode::<T>((*new).d_inode);
            }
        }
        Ok(0)
    })
}

/// The `open` of a file made by `tmpfile`: its real file is open already.
///
/// # Safety
///
/// Called by `finish_open` only.
unsafe extern "C" fn tmpfile_opened(
    _inode: *mut bindings::inode,
    _file: *mut bindings::file,
) -> c_int {
    0
}

/// `tmpfile` (`O_TMPFILE`): an unnamed real file in the real directory,
/// opened as a backing file with the overridden credentials, under an
/// unnamed stacked dentry that `linkat()` can give a name later.
///
/// # Safety
///
/// Called by the VFS as `inode_operations::tmpfile` of a directory of `T`,
/// with `file` being opened on a new unhashed dentry in it.
pub(super) unsafe extern "C" fn tmpfile<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (d, flags) = unsafe { ((*file).f_path.dentry, (*file).f_flags) };
        // SAFETY: as above.
        let (sb, info) = unsafe { sb_info::<T>((*dir).i_sb) };
        // SAFETY: the parent is a looked-up dentry of `T`.
        let real_parent = unsafe { real_of((*d).d_parent) };
        // SAFETY: the real mount lives as long as `info`.
        let mnt = unsafe { real_mnt::<T>(info) };
        let parent = bindings::path {
            mnt,
            dentry: real_parent.as_raw(),
        };
        let creds = T::creds(sb, info)?;
        let real_file = {
            let _as = creds.override_current();
            // SAFETY: as above.
            let _write = unsafe { WriteAccess::get(mnt) }?;
            // SAFETY: `file` is being opened; the backing file keeps its
            // own references to the real parent's mount and to `creds`.
            from_err_ptr(unsafe {
                bindings::backing_tmpfile_open(file, flags as c_int, &parent, mode, creds.as_raw())
            })?
        };
        let res = (|| {
            // SAFETY: `real_file` was opened on a new real dentry with an inode.
            let real = unsafe { Dentry::from_raw((*real_file).f_path.dentry) };
            let real: ARef<Dentry> = real.into();
            let ri = real.inode().ok_or(EINVAL)?;
            let (uid, gid) = T::shift_ids(sb, ri.super_block(), ri.uid(), ri.gid());
            let inode = iget::<T>(sb, ri, uid, gid)?;
            // SAFETY: `d` is new and ours: it takes the reference to the real
            // dentry (dropped by `d_release`) and to the inode.
            unsafe {
                (*d).d_fsdata = ARef::into_raw(real).as_ptr().cast();
                let inode = ARef::into_raw(inode).as_ptr().cast();
                bindings::d_mark_tmpfile(file, inode);
                bindings::d_instantiate(d, inode);
                (*file).private_data = real_file.cast();
                to_result(bindings::finish_open(file, d, Some(tmpfile_opened)))
            }
        })();
        // SAFETY: without FMODE_OPENED, `release` is not called for `file`.
        unsafe {
            if (*file).f_mode & bindings::SHIFTFS_FMODE_OPENED == 0 {
                (*file).private_data = core::ptr::null_mut();
                bindings::fput(real_file);
            }
        }
        res?;
        Ok(0)
    })
}
