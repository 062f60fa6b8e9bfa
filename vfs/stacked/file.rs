// SPDX-License-Identifier: GPL-2.0

//! File operations of stacked regular files: each open stacked file holds
//! a real file opened as a backing file (`private_data`) with the
//! overridden credentials, which I/O goes through.

use super::{real_path, sb_info, FileSystem};
use crate::vfs::{bindings, inode::Inode};
use kernel::{
    error::{code::EXDEV, from_result},
    ffi::{c_int, c_uint},
    prelude::*,
};

/// The real file of an open shiftfs file.
///
/// # Safety
///
/// `file` must be a shiftfs file opened by `file_open` or `dir_open`.
unsafe fn real_file(file: *mut bindings::file) -> *mut bindings::file {
    // SAFETY: per the contract.
    unsafe { (*file).private_data.cast() }
}

/// Flags `fcntl(F_SETFL)` may change.
const SETFL_MASK: u32 =
    bindings::O_APPEND | bindings::O_NONBLOCK | bindings::O_NDELAY | bindings::O_DIRECT;

/// Carries `fcntl(F_SETFL)` changes of `file` over to its real file.
///
/// # Safety
///
/// As for [`real_file`].
unsafe fn sync_flags(file: *mut bindings::file) -> Result {
    // SAFETY: per the contract; `f_flags` is read as `fcntl` writes it.
    unsafe {
        let real = real_file(file);
        let flags = (*file).f_flags & SETFL_MASK;
        if ((*real).f_flags & SETFL_MASK) == flags {
            return Ok(());
        }
        if flags & bindings::O_DIRECT != 0
            && (*real).f_mode & bindings::SHIFTFS_FMODE_CAN_ODIRECT == 0
        {
            return Err(kernel::error::code::EINVAL);
        }
        bindings::shiftfs_spin_lock(&mut (*real).f_lock);
        (*real).f_flags = ((*real).f_flags & !SETFL_MASK) | flags;
        (*real).f_iocb_flags = bindings::shiftfs_iocb_flags(real) as _;
        bindings::shiftfs_spin_unlock(&mut (*real).f_lock);
    }
    Ok(())
}

/// The backing-file context for I/O on `file`: the credentials it was
/// opened with, and callbacks that bring the real inode's times and size
/// up after access and writes.
///
/// # Safety
///
/// As for [`real_file`].
unsafe fn io_ctx(file: *mut bindings::file) -> bindings::backing_file_ctx {
    bindings::backing_file_ctx {
        // SAFETY: per the contract; the real file keeps its credentials.
        cred: unsafe { (*real_file(file)).f_cred },
        user_file: file,
        accessed: Some(file_accessed),
        end_write: Some(file_end_write),
    }
}

/// `backing_file_ctx::accessed` and `end_write`: copy size and times up.
///
/// # Safety
///
/// Called by the backing-file helpers with a shiftfs file.
unsafe extern "C" fn file_accessed(file: *mut bindings::file) {
    // SAFETY: per the contract; a stacked inode holds its real inode.
    unsafe {
        let inode = (*file).f_inode;
        crate::vfs::inode::copy_size_times(inode, Inode::from_raw((*inode).i_private.cast()));
    }
}

/// See [`file_accessed`].
///
/// # Safety
///
/// As for [`file_accessed`].
unsafe extern "C" fn file_end_write(file: *mut bindings::file, _pos: i64, _ret: isize) {
    // SAFETY: per the contract.
    unsafe { file_accessed(file) };
}

/// `open` of a regular file: the real file is opened as a backing file
/// with the overridden credentials.
///
/// # Safety
///
/// Called by the VFS with a regular file of `T` being opened.
pub(super) unsafe extern "C" fn file_open<T: FileSystem>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (d, flags) = unsafe { ((*file).f_path.dentry, (*file).f_flags) };
        // SAFETY: as above.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_path::<T>(d)) };
        // The VFS has checked the open (MAY_OPEN and the access mode) with
        // `permission`, which checks the real inode too.
        // SAFETY: `real` is a live path.
        if unsafe { (*real.dentry).d_inode }.is_null() {
            return Err(kernel::error::code::ENOENT);
        }
        let creds = T::creds(sb, info)?;
        let _as = creds.override_current();
        // SAFETY: `file` is being opened; the backing file takes its own
        // references to `real` and `creds`; `release` drops it.
        let rf = kernel::error::from_err_ptr(unsafe {
            bindings::backing_file_open(file, flags as c_int, &real, creds.as_raw())
        })?;
        // SAFETY: as above.
        unsafe { (*file).private_data = rf.cast() };
        Ok(0)
    })
}

/// `release` of a regular file: close the real one.
///
/// # Safety
///
/// Called by the VFS once, for a file opened by `file_open`.
pub(super) unsafe extern "C" fn file_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { bindings::fput(real_file(file)) };
    0
}

/// `read_iter`, through the real file.
///
/// # Safety
///
/// Called by the VFS with an I/O request on a file opened by `file_open`.
pub(super) unsafe extern "C" fn read_iter(
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: per the contract.
    unsafe {
        let file = (*iocb).ki_filp;
        if let Err(e) = sync_flags(file) {
            return e.to_errno() as isize;
        }
        let mut ctx = io_ctx(file);
        bindings::backing_file_read_iter(real_file(file), iter, iocb, (*iocb).ki_flags, &mut ctx)
    }
}

/// `write_iter`, through the real file, serialised on the shiftfs inode.
///
/// # Safety
///
/// Called by the VFS with an I/O request on a file opened by `file_open`.
pub(super) unsafe extern "C" fn write_iter(
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: per the contract.
    unsafe {
        let file = (*iocb).ki_filp;
        if let Err(e) = sync_flags(file) {
            return e.to_errno() as isize;
        }
        let inode = (*file).f_inode;
        let mut ctx = io_ctx(file);
        bindings::shiftfs_inode_lock(inode);
        let ret = bindings::backing_file_write_iter(
            real_file(file),
            iter,
            iocb,
            (*iocb).ki_flags,
            &mut ctx,
        );
        bindings::shiftfs_inode_unlock(inode);
        ret
    }
}

/// `splice_read`, from the real file.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
pub(super) unsafe extern "C" fn splice_read(
    file: *mut bindings::file,
    ppos: *mut i64,
    pipe: *mut bindings::pipe_inode_info,
    len: usize,
    flags: c_uint,
) -> isize {
    // SAFETY: per the contract.
    unsafe {
        let mut ctx = io_ctx(file);
        bindings::backing_file_splice_read(real_file(file), ppos, pipe, len, flags, &mut ctx)
    }
}

/// `mmap`: map the real file.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
pub(super) unsafe extern "C" fn mmap(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        let mut ctx = io_ctx(file);
        bindings::backing_file_mmap(real_file(file), vma, &mut ctx)
    }
}

/// `llseek`: seek the real file (SEEK_DATA and SEEK_HOLE included) from the
/// shiftfs file's position, under the shiftfs inode's lock.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
pub(super) unsafe extern "C" fn file_llseek(
    file: *mut bindings::file,
    offset: i64,
    whence: c_int,
) -> i64 {
    // SAFETY: per the contract.
    unsafe {
        let (inode, real) = ((*file).f_inode, real_file(file));
        bindings::shiftfs_inode_lock(inode);
        (*real).f_pos = (*file).f_pos;
        let pos = bindings::vfs_llseek(real, offset, whence);
        (*file).f_pos = (*real).f_pos;
        bindings::shiftfs_inode_unlock(inode);
        pos
    }
}

/// `fsync`, of the real file (or directory) with its credentials.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open` or `dir_open`.
pub(super) unsafe extern "C" fn fsync(
    file: *mut bindings::file,
    start: i64,
    end: i64,
    datasync: c_int,
) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        with_real(file, |real| {
            bindings::vfs_fsync_range(real, start, end, datasync)
        })
    }
}

/// Runs `f` with the credentials `file`'s real file was opened with.
///
/// # Safety
///
/// As for [`real_file`].
unsafe fn with_real<R>(file: *mut bindings::file, f: impl FnOnce(*mut bindings::file) -> R) -> R {
    // SAFETY: per the contract; the real file keeps the credentials it was
    // opened with, and `override_creds` takes a reference of its own.
    unsafe {
        let real = real_file(file);
        let old = bindings::override_creds((*real).f_cred);
        let ret = f(real);
        bindings::revert_creds(old);
        ret
    }
}

/// Copies size and times of `file`'s real inode up to its stacked inode.
///
/// # Safety
///
/// As for [`real_file`].
unsafe fn copy_up_size(file: *mut bindings::file) {
    // SAFETY: per the contract.
    unsafe { file_accessed(file) };
}

/// `splice_write`, into the real file.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
pub(super) unsafe extern "C" fn splice_write(
    pipe: *mut bindings::pipe_inode_info,
    file: *mut bindings::file,
    ppos: *mut i64,
    len: usize,
    flags: c_uint,
) -> isize {
    // SAFETY: per the contract.
    unsafe {
        let inode = (*file).f_inode;
        let mut ctx = io_ctx(file);
        bindings::shiftfs_inode_lock(inode);
        let ret =
            bindings::backing_file_splice_write(pipe, real_file(file), ppos, len, flags, &mut ctx);
        bindings::shiftfs_inode_unlock(inode);
        ret
    }
}

/// `fallocate` (allocate, keep size, punch hole, ...), of the real file.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
pub(super) unsafe extern "C" fn fallocate(
    file: *mut bindings::file,
    mode: c_int,
    offset: i64,
    len: i64,
) -> kernel::ffi::c_long {
    // SAFETY: per the contract.
    unsafe {
        let ret = with_real(file, |real| {
            bindings::vfs_fallocate(real, mode, offset, len)
        });
        copy_up_size(file);
        ret as _
    }
}

/// `fadvise`, to the real file.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
pub(super) unsafe extern "C" fn fadvise(
    file: *mut bindings::file,
    offset: i64,
    len: i64,
    advice: c_int,
) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        with_real(file, |real| {
            bindings::vfs_fadvise(real, offset, len, advice)
        })
    }
}

/// Runs `f` on the real files under two stacked files of the same
/// superblock, with the destination's credentials, then copies the
/// destination's size and times up; EXDEV across superblocks (the real
/// files may be on other filesystems, with other credentials: the caller
/// copies by reading and writing).
///
/// # Safety
///
/// Both must be files opened by `file_open` (the VFS calls the copy and
/// remap operations only with regular files whose operations are ours).
unsafe fn on_real_pair<R>(
    file_in: *mut bindings::file,
    file_out: *mut bindings::file,
    f: impl FnOnce(*mut bindings::file, *mut bindings::file) -> R,
) -> Result<R> {
    // SAFETY: per the contract.
    unsafe {
        if (*(*file_in).f_inode).i_sb != (*(*file_out).f_inode).i_sb {
            return Err(EXDEV);
        }
        let real_in = real_file(file_in);
        let ret = with_real(file_out, |real_out| f(real_in, real_out));
        copy_up_size(file_out);
        Ok(ret)
    }
}

/// `copy_file_range`, between the real files.
///
/// # Safety
///
/// Called by the VFS with two regular files whose `copy_file_range` is
/// this function (stacked files of `T`, opened by `file_open`).
pub(super) unsafe extern "C" fn copy_file_range(
    file_in: *mut bindings::file,
    pos_in: i64,
    file_out: *mut bindings::file,
    pos_out: i64,
    len: usize,
    flags: c_uint,
) -> isize {
    // SAFETY: per the contract; both files are on the same stacked
    // superblock, so the destination's credentials serve for both.
    let ret = unsafe {
        on_real_pair(file_in, file_out, |real_in, real_out| {
            bindings::vfs_copy_file_range(real_in, pos_in, real_out, pos_out, len, flags)
        })
    };
    ret.unwrap_or_else(|e| e.to_errno() as isize)
}

/// `remap_file_range` (`FICLONE`, `FICLONERANGE`, `FIDEDUPERANGE`): the
/// real filesystem's, or its EOPNOTSUPP/EXDEV/EINVAL.
///
/// # Safety
///
/// Called by the VFS with two regular files of the same superblock of `T`,
/// opened by `file_open`.
pub(super) unsafe extern "C" fn remap_file_range(
    file_in: *mut bindings::file,
    pos_in: i64,
    file_out: *mut bindings::file,
    pos_out: i64,
    len: i64,
    remap_flags: c_uint,
) -> i64 {
    // SAFETY: per the contract.
    let ret = unsafe {
        on_real_pair(file_in, file_out, |real_in, real_out| {
            if remap_flags & bindings::REMAP_FILE_DEDUP != 0 {
                bindings::vfs_dedupe_file_range_one(
                    real_in,
                    pos_in,
                    real_out,
                    pos_out,
                    len,
                    remap_flags,
                )
            } else {
                bindings::vfs_clone_file_range(real_in, pos_in, real_out, pos_out, len, remap_flags)
            }
        })
    };
    ret.unwrap_or_else(|e| e.to_errno() as i64)
}
