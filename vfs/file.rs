// SPDX-License-Identifier: GPL-2.0

//! Open files (`struct file`): typed handles, the file operations of
//! regular files and of directories, I/O through a real file with the
//! backing-file helpers, and the calls a stacked filesystem makes on real
//! files.

use super::{
    bindings, cred::Credential, dentry::Dentry, errno::to_result, fs_type::FileSystem,
    inode::Inode, path::PathRef, ARef, Real,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    error::{code::ENOTTY, from_err_ptr, from_result},
    ffi::{c_int, c_long, c_uint, c_ulong, c_void},
    prelude::*,
    types::Opaque,
};

/// An open file of a filesystem of kind `T`.
///
/// # Invariants
///
/// The wrapped `struct file` is live while the handle is (an `ARef` holds a
/// reference; a `&File` borrows from a holder, the VFS during an
/// operation). If `T` is a [`FileSystem`], the file was opened by `T`'s
/// `open` and its `private_data` holds a reference to its real file until
/// `release`.
#[repr(transparent)]
pub(crate) struct File<T>(Opaque<bindings::file>, PhantomData<T>);

typed_handle!(File, file, shiftfs_get_file, fput);

/// Open flags (`O_*`, `f_flags`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OpenFlags(pub(crate) u32);

impl OpenFlags {
    /// `O_APPEND`.
    pub(crate) const APPEND: Self = Self(bindings::O_APPEND);
    /// `O_NONBLOCK`.
    pub(crate) const NONBLOCK: Self = Self(bindings::O_NONBLOCK);
    /// `O_NDELAY`.
    pub(crate) const NDELAY: Self = Self(bindings::O_NDELAY);
    /// `O_DIRECT`.
    pub(crate) const DIRECT: Self = Self(bindings::O_DIRECT);
    /// `O_NOATIME`.
    pub(crate) const NOATIME: Self = Self(bindings::O_NOATIME);

    /// The flags in both.
    pub(crate) const fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The flags in either.
    pub(crate) const fn or(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether any of `other` is set.
    pub(crate) fn any(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

impl<T> File<T> {
    /// The open flags, as `fcntl(F_SETFL)` last left them.
    pub(crate) fn flags(&self) -> OpenFlags {
        // SAFETY: a plain read of a word-sized field of a live file.
        OpenFlags(unsafe { (*self.as_raw()).f_flags })
    }

    /// The file position.
    pub(crate) fn pos(&self) -> i64 {
        // SAFETY: as for `flags`.
        unsafe { (*self.as_raw()).f_pos }
    }

    /// Sets the file position: by the file's `llseek`, or for a file only
    /// its caller uses (a real file under a stacked one), as the VFS writes
    /// it.
    pub(crate) fn set_pos(&self, pos: i64) {
        // SAFETY: a plain write of a word-sized field of a live file.
        unsafe { (*self.as_raw()).f_pos = pos };
    }

    /// The inode the file is open on.
    pub(crate) fn inode(&self) -> &Inode<T> {
        // SAFETY: an open file holds its inode; it is of the file's kind.
        unsafe { Inode::from_raw((*self.as_raw()).f_inode) }
    }

    /// The dentry the file is open on.
    pub(crate) fn dentry(&self) -> &Dentry<T> {
        // SAFETY: an open file holds its path; `f_path` never changes.
        unsafe { Dentry::from_raw(bindings::shiftfs_file_dentry(self.as_raw())) }
    }

    /// Records a read of the file (`file_accessed()`): unless it is
    /// `O_NOATIME`, `touch_atime()` of its path, which updates the access
    /// time if the mount's flags and the inode's times say so. May sleep.
    pub(crate) fn accessed(&self) {
        // SAFETY: the file is live, and holds its path.
        unsafe { bindings::shiftfs_file_accessed(self.as_raw()) }
    }
}

impl<T: FileSystem> File<T> {
    /// The real file this one reads and writes through.
    pub(crate) fn real(&self) -> &File<Real> {
        // SAFETY: per the type's invariants `private_data` holds a
        // reference to the real file until `release`.
        unsafe { File::from_raw((*self.as_raw()).private_data.cast()) }
    }

    /// The backing-file context: the real file's credentials, and the
    /// callbacks that let `T` follow its real inode after I/O.
    fn io_ctx(&self) -> bindings::backing_file_ctx {
        bindings::backing_file_ctx {
            cred: self.real().cred().as_raw(),
            // Since 6.17 the helpers find the user file in the request.
            #[cfg(not(shiftfs_kernel_7))]
            user_file: self.as_raw(),
            accessed: Some(accessed::<T>),
            end_write: Some(end_write::<T>),
        }
    }

    /// `read_iter` through the real file (`backing_file_read_iter()`).
    pub(crate) fn read_backing(&self, iocb: &Kiocb<T>, iter: &mut IovIter) -> Result<usize> {
        let mut ctx = self.io_ctx();
        // SAFETY: the real file and the caller's request are live.
        ssize(unsafe {
            bindings::backing_file_read_iter(
                self.real().as_raw(),
                iter.0.get(),
                iocb.0.get(),
                (*iocb.0.get()).ki_flags,
                &mut ctx,
            )
        })
    }

    /// `write_iter` through the real file (`backing_file_write_iter()`).
    pub(crate) fn write_backing(&self, iocb: &Kiocb<T>, iter: &mut IovIter) -> Result<usize> {
        let mut ctx = self.io_ctx();
        // SAFETY: as for `read_backing`.
        ssize(unsafe {
            bindings::backing_file_write_iter(
                self.real().as_raw(),
                iter.0.get(),
                iocb.0.get(),
                (*iocb.0.get()).ki_flags,
                &mut ctx,
            )
        })
    }

    /// `splice_read` from the real file (`backing_file_splice_read()`).
    pub(crate) fn splice_read_backing(
        &self,
        pos: &mut i64,
        pipe: &Pipe,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        let mut ctx = self.io_ctx();
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: the real file, `pos` and the pipe are live.
        let ret = unsafe {
            bindings::backing_file_splice_read(
                self.real().as_raw(),
                pos,
                pipe.0.get(),
                len,
                flags,
                &mut ctx,
            )
        };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as above; since 6.17 the position travels in a request.
        let ret = self.with_sync_kiocb(pos, |iocb| unsafe {
            bindings::backing_file_splice_read(
                self.real().as_raw(),
                iocb,
                pipe.0.get(),
                len,
                flags,
                &mut ctx,
            )
        });
        ssize(ret)
    }

    /// `splice_write` into the real file (`backing_file_splice_write()`).
    pub(crate) fn splice_write_backing(
        &self,
        pipe: &Pipe,
        pos: &mut i64,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        let mut ctx = self.io_ctx();
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: as for `splice_read_backing`.
        let ret = unsafe {
            bindings::backing_file_splice_write(
                pipe.0.get(),
                self.real().as_raw(),
                pos,
                len,
                flags,
                &mut ctx,
            )
        };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as for `splice_read_backing`.
        let ret = self.with_sync_kiocb(pos, |iocb| unsafe {
            bindings::backing_file_splice_write(
                pipe.0.get(),
                self.real().as_raw(),
                iocb,
                len,
                flags,
                &mut ctx,
            )
        });
        ssize(ret)
    }

    /// Runs `f` with a synchronous request on this file at `*pos`
    /// (`init_sync_kiocb()`), and moves `*pos` to where it ended.
    #[cfg(shiftfs_kernel_7)]
    fn with_sync_kiocb(
        &self,
        pos: &mut i64,
        f: impl FnOnce(*mut bindings::kiocb) -> isize,
    ) -> isize {
        let mut iocb = core::mem::MaybeUninit::<bindings::kiocb>::uninit();
        // SAFETY: `init_sync_kiocb` fills the whole request in, for a live
        // file; it is read only after that.
        unsafe {
            bindings::shiftfs_init_sync_kiocb(iocb.as_mut_ptr(), self.as_raw());
            (*iocb.as_mut_ptr()).ki_pos = *pos;
        }
        let ret = f(iocb.as_mut_ptr());
        // SAFETY: initialised above.
        *pos = unsafe { (*iocb.as_ptr()).ki_pos };
        ret
    }

    /// `mmap` of the real file (`backing_file_mmap()`).
    pub(crate) fn mmap_backing(&self, vma: &Vma) -> Result {
        let mut ctx = self.io_ctx();
        // SAFETY: the real file and the mapping being set up are live.
        to_result(unsafe {
            bindings::backing_file_mmap(self.real().as_raw(), vma.0.get(), &mut ctx)
        })
    }
}

/// A byte count or an error, as `ssize_t` carries them.
fn ssize(ret: isize) -> Result<usize> {
    usize::try_from(ret).map_err(|_| Error::from_errno(ret as c_int))
}

impl File<Real> {
    /// The credentials the file was opened with (`f_cred`).
    pub(crate) fn cred(&self) -> &Credential {
        // SAFETY: an open file holds its credentials; `f_cred` never
        // changes.
        unsafe { &*(*self.as_raw()).f_cred.cast() }
    }

    /// Whether the file can do direct I/O (`FMODE_CAN_ODIRECT`).
    pub(crate) fn can_direct_io(&self) -> bool {
        // SAFETY: a plain read of a field of a live file.
        unsafe { (*self.as_raw()).f_mode & bindings::SHIFTFS_FMODE_CAN_ODIRECT != 0 }
    }

    /// Sets the flags in `mask` to those of `flags` (as `fcntl(F_SETFL)`
    /// does, under `f_lock`, with the I/O flags that follow from them).
    pub(crate) fn set_flags(&self, mask: OpenFlags, flags: OpenFlags) {
        let f = self.as_raw();
        // SAFETY: `f` is live; `f_flags` and `f_iocb_flags` are written
        // under `f_lock`, as `fcntl` writes them.
        unsafe {
            bindings::shiftfs_spin_lock(&mut (*f).f_lock);
            (*f).f_flags = ((*f).f_flags & !mask.0) | (flags.0 & mask.0);
            (*f).f_iocb_flags = bindings::shiftfs_iocb_flags(f);
            bindings::shiftfs_spin_unlock(&mut (*f).f_lock);
        }
    }

    /// `vfs_llseek()`.
    pub(crate) fn llseek(&self, offset: i64, whence: i32) -> Result<i64> {
        // SAFETY: `self` is live.
        let pos = unsafe { bindings::vfs_llseek(self.as_raw(), offset, whence) };
        if pos < 0 {
            return Err(Error::from_errno(pos as c_int));
        }
        Ok(pos)
    }

    /// The real file's own ioctl `cmd` with argument `arg` (its
    /// `unlocked_ioctl`, as `vfs_ioctl()` calls it: ENOTTY where it has
    /// none or does not know `cmd`). The argument reaches it unchanged, as
    /// the calling task's.
    pub(crate) fn ioctl(&self, cmd: IoctlCmd, arg: &IoctlArg) -> Result<c_long> {
        let f = self.as_raw();
        // SAFETY: `f` is live and its operations with it; `arg` is the
        // value (or address in the calling task's memory) the calling task
        // gave, which the real file's ioctl reads and writes as user memory.
        let ret = unsafe {
            match (*(*f).f_op).unlocked_ioctl {
                Some(ioctl) => ioctl(f, cmd.0, arg.0),
                None => return Err(ENOTTY),
            }
        };
        if ret == -(bindings::ENOIOCTLCMD as c_long) {
            return Err(ENOTTY);
        }
        if ret < 0 {
            return Err(Error::from_errno(ret as c_int));
        }
        Ok(ret)
    }

    /// Reads directory entries into `ctx` from the file position
    /// (`iterate_dir()`).
    pub(crate) fn iterate_dir(&self, ctx: &mut DirContext) -> Result {
        // SAFETY: `self` is an open directory and `ctx` the caller's.
        to_result(unsafe { bindings::iterate_dir(self.as_raw(), ctx.0.get()) })
    }

    /// `vfs_fsync_range()`.
    pub(crate) fn fsync_range(&self, start: i64, end: i64, datasync: bool) -> Result {
        // SAFETY: `self` is live.
        to_result(unsafe {
            bindings::vfs_fsync_range(self.as_raw(), start, end, c_int::from(datasync))
        })
    }

    /// `vfs_fallocate()`.
    pub(crate) fn fallocate(&self, mode: i32, offset: i64, len: i64) -> Result {
        // SAFETY: `self` is live.
        to_result(unsafe { bindings::vfs_fallocate(self.as_raw(), mode, offset, len) } as c_int)
    }

    /// `vfs_fadvise()`.
    pub(crate) fn fadvise(&self, offset: i64, len: i64, advice: i32) -> Result {
        // SAFETY: `self` is live.
        to_result(unsafe { bindings::vfs_fadvise(self.as_raw(), offset, len, advice) })
    }

    /// `vfs_copy_file_range()` from this file to `out`.
    pub(crate) fn copy_range(
        &self,
        pos_in: i64,
        out: &File<Real>,
        pos_out: i64,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        // SAFETY: both files are live.
        ssize(unsafe {
            bindings::vfs_copy_file_range(self.as_raw(), pos_in, out.as_raw(), pos_out, len, flags)
        })
    }

    /// `vfs_clone_file_range()` (or `vfs_dedupe_file_range_one()` with
    /// [`RemapFlags::dedup`]) from this file to `out`.
    pub(crate) fn remap_range(
        &self,
        pos_in: i64,
        out: &File<Real>,
        pos_out: i64,
        len: i64,
        flags: RemapFlags,
    ) -> Result<i64> {
        // SAFETY: both files are live.
        let ret = unsafe {
            if flags.dedup() {
                bindings::vfs_dedupe_file_range_one(
                    self.as_raw(),
                    pos_in,
                    out.as_raw(),
                    pos_out,
                    len,
                    flags.0,
                )
            } else {
                bindings::vfs_clone_file_range(
                    self.as_raw(),
                    pos_in,
                    out.as_raw(),
                    pos_out,
                    len,
                    flags.0,
                )
            }
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as c_int));
        }
        Ok(ret)
    }
}

/// A lock request on a file (`struct file_lock`): a POSIX or OFD
/// byte-range lock (`fcntl`), or a whole-file `flock`.
#[repr(transparent)]
pub(crate) struct FileLock(Opaque<bindings::file_lock>);

/// What a `lock` operation is asked to do (its `cmd`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LockCmd(c_int);

/// An ioctl request number (`cmd`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IoctlCmd(pub(crate) c_uint);

impl IoctlCmd {
    /// `FS_IOC_GETVERSION`: the inode's generation.
    pub(crate) const FS_GETVERSION: Self = Self(bindings::SHIFTFS_FS_IOC_GETVERSION);
    /// `BTRFS_IOC_FS_INFO`.
    pub(crate) const BTRFS_FS_INFO: Self = Self(bindings::SHIFTFS_BTRFS_IOC_FS_INFO);
    /// `BTRFS_IOC_SNAP_CREATE`: its argument names the source by a file
    /// descriptor.
    pub(crate) const BTRFS_SNAP_CREATE: Self = Self(bindings::SHIFTFS_BTRFS_IOC_SNAP_CREATE);
    /// `BTRFS_IOC_SNAP_CREATE_V2`: as `BTRFS_SNAP_CREATE`.
    pub(crate) const BTRFS_SNAP_CREATE_V2: Self = Self(bindings::SHIFTFS_BTRFS_IOC_SNAP_CREATE_V2);
    /// `BTRFS_IOC_SUBVOL_CREATE`.
    pub(crate) const BTRFS_SUBVOL_CREATE: Self = Self(bindings::SHIFTFS_BTRFS_IOC_SUBVOL_CREATE);
    /// `BTRFS_IOC_SUBVOL_CREATE_V2`.
    pub(crate) const BTRFS_SUBVOL_CREATE_V2: Self =
        Self(bindings::SHIFTFS_BTRFS_IOC_SUBVOL_CREATE_V2);
    /// `BTRFS_IOC_SUBVOL_GETFLAGS`.
    pub(crate) const BTRFS_SUBVOL_GETFLAGS: Self =
        Self(bindings::SHIFTFS_BTRFS_IOC_SUBVOL_GETFLAGS);
    /// `BTRFS_IOC_SUBVOL_SETFLAGS`: its argument points at the flags.
    pub(crate) const BTRFS_SUBVOL_SETFLAGS: Self =
        Self(bindings::SHIFTFS_BTRFS_IOC_SUBVOL_SETFLAGS);
    /// `BTRFS_IOC_SNAP_DESTROY`.
    pub(crate) const BTRFS_SNAP_DESTROY: Self = Self(bindings::SHIFTFS_BTRFS_IOC_SNAP_DESTROY);
}

/// `BTRFS_SUBVOL_RDONLY`: the one flag of `BTRFS_IOC_SUBVOL_SETFLAGS`.
pub(crate) const BTRFS_SUBVOL_RDONLY: u64 = bindings::SHIFTFS_BTRFS_SUBVOL_RDONLY;

/// The argument of an ioctl: a value, or an address in the calling task's
/// memory. Only the calling task's own ioctl gives one, and it is only
/// read as user memory (`copy_from_user()`) or handed on unchanged.
pub(crate) struct IoctlArg(c_ulong);

impl IoctlArg {
    /// The `u64` at the address (EFAULT where there is none).
    pub(crate) fn read_u64(&self) -> Result<u64> {
        #[cfg(not(shiftfs_kernel_7))]
        let ptr = self.0;
        #[cfg(shiftfs_kernel_7)]
        let ptr = kernel::uaccess::UserPtr::from_addr(self.0);
        kernel::uaccess::UserSlice::new(ptr, core::mem::size_of::<u64>())
            .reader()
            .read::<u64>()
    }
}

/// Who owns POSIX locks (`fl_owner_t`: the process's file table), as
/// `flush` is told on every close of a file descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LockOwner(*mut c_void);

/// The owner of a lock on this file's real file for a lock `fl` on it:
/// the same, unless this file itself owns `fl` (OFD locks and `flock`,
/// owned by the open file), when the real file does, so that the real
/// file's last close releases it.
fn real_owner<T>(file: &File<T>, real: &File<Real>, owner: *mut c_void) -> *mut c_void {
    if owner == file.as_raw().cast() {
        real.as_raw().cast()
    } else {
        owner
    }
}

impl<T: FileSystem> File<T> {
    /// Runs `f` with a copy of request `fl` on this file as a request on
    /// its real file, then releases what the copy holds. The copy is made
    /// in place and never moved: a request's list heads point at
    /// themselves, and a blocked request is linked into the blocker's list
    /// until it is woken.
    fn with_real_lock<R>(&self, fl: &FileLock, f: impl FnOnce(*mut bindings::file_lock) -> R) -> R {
        let real = self.real();
        let mut rl = core::mem::MaybeUninit::<bindings::file_lock>::uninit();
        let r = rl.as_mut_ptr();
        // SAFETY: `locks_init_lock` initialises the whole request in
        // place; then plain copies of the caller's request's fields (read
        // under no lock: the request is the caller's alone).
        unsafe {
            bindings::locks_init_lock(r);
            let f = &*fl.0.get();
            (*r).c.flc_flags = f.c.flc_flags;
            (*r).c.flc_type = f.c.flc_type;
            (*r).c.flc_pid = f.c.flc_pid;
            (*r).c.flc_owner = real_owner(self, real, f.c.flc_owner);
            (*r).c.flc_file = real.as_raw();
            (*r).fl_start = f.fl_start;
            (*r).fl_end = f.fl_end;
        }
        let ret = f(r);
        // SAFETY: the request is initialised, no longer blocked nor
        // linked anywhere (every lock call unlinks it before returning),
        // and released once; it is not used after.
        unsafe { bindings::locks_release_private(r) };
        ret
    }

    /// Applies, tests or cancels the POSIX or OFD lock request `fl` (on
    /// this file) on the real file instead (`->lock`): locks taken
    /// through either file then conflict. A blocking request waits here.
    pub(crate) fn lock_real(&self, cmd: LockCmd, fl: &mut FileLock) -> Result {
        let real = self.real();
        let (rf, ri) = (real.as_raw(), real.inode().as_raw());
        let ret = self.with_real_lock(fl, |rl| {
            // SAFETY: `rl` is a request on the live real file; the real
            // file's own `lock` (a network filesystem) or the local lock
            // table of the real inode takes it.
            unsafe {
                let has_lock = (*(*rf).f_op).lock.is_some();
                match cmd.0 as u32 {
                    bindings::F_GETLK => {
                        let ret = bindings::vfs_test_lock(rf, rl);
                        let f = &mut *fl.0.get();
                        f.c.flc_type = (*rl).c.flc_type;
                        f.c.flc_flags = (*rl).c.flc_flags;
                        f.c.flc_pid = (*rl).c.flc_pid;
                        f.fl_start = (*rl).fl_start;
                        f.fl_end = (*rl).fl_end;
                        ret
                    }
                    bindings::F_CANCELLK => bindings::vfs_cancel_lock(rf, rl),
                    _ if has_lock => {
                        bindings::vfs_lock_file(rf, cmd.0 as u32, rl, core::ptr::null_mut())
                    }
                    _ => bindings::locks_lock_inode_wait(ri, rl),
                }
            }
        });
        to_result(ret)
    }

    /// Applies the `flock` request `fl` (on this file) on the real file
    /// instead (`->flock`), owned by the real file: locks taken through
    /// either file then conflict, and the real file's last close (this
    /// file's) releases it.
    pub(crate) fn flock_real(&self, cmd: LockCmd, fl: &mut FileLock) -> Result {
        let real = self.real();
        let (rf, ri) = (real.as_raw(), real.inode().as_raw());
        let ret = self.with_real_lock(fl, |rl| {
            // SAFETY: as for `lock_real`.
            unsafe {
                match (*(*rf).f_op).flock {
                    Some(flock) => flock(rf, cmd.0, rl),
                    None => bindings::locks_lock_inode_wait(ri, rl),
                }
            }
        });
        to_result(ret)
    }

    /// On a close of a descriptor of this file (`->flush`): drops the POSIX
    /// locks `owner` holds on the real file, as closing the real file
    /// would (`locks_remove_posix()`), after the real file's own `flush`.
    pub(crate) fn flush_real(&self, owner: LockOwner) -> Result {
        let rf = self.real().as_raw();
        // SAFETY: the real file is live; its own `flush`, if any, is told
        // the same owner; removing locks of an owner with none is a no-op.
        unsafe {
            let ret = match (*(*rf).f_op).flush {
                Some(flush) => flush(rf, owner.0),
                None => 0,
            };
            bindings::locks_remove_posix(rf, owner.0);
            to_result(ret)
        }
    }
}

/// Flags of `remap_file_range` (`REMAP_FILE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RemapFlags(c_uint);

impl RemapFlags {
    /// Deduplication (`REMAP_FILE_DEDUP`) rather than a clone.
    pub(crate) fn dedup(self) -> bool {
        self.0 & bindings::REMAP_FILE_DEDUP != 0
    }
}

/// An I/O request (`struct kiocb`) on a file of `T`; the helpers that
/// carry it out update it.
#[repr(transparent)]
pub(crate) struct Kiocb<T>(Opaque<bindings::kiocb>, PhantomData<T>);

impl<T> Kiocb<T> {
    /// The file the request is on.
    pub(crate) fn file(&self) -> &File<T> {
        // SAFETY: a request holds its file, which is of kind `T`.
        unsafe { File::from_raw((*self.0.get()).ki_filp) }
    }
}

/// The data of an I/O request (`struct iov_iter`).
#[repr(transparent)]
pub(crate) struct IovIter(Opaque<bindings::iov_iter>);

/// A pipe (`struct pipe_inode_info`), for splice.
#[repr(transparent)]
pub(crate) struct Pipe(Opaque<bindings::pipe_inode_info>);

/// A memory mapping being set up (`struct vm_area_struct`).
#[repr(transparent)]
pub(crate) struct Vma(Opaque<bindings::vm_area_struct>);

/// Where `readdir` puts entries (`struct dir_context`).
#[repr(transparent)]
pub(crate) struct DirContext(Opaque<bindings::dir_context>);

impl DirContext {
    /// The position to read from.
    pub(crate) fn pos(&self) -> i64 {
        // SAFETY: a plain read of the caller's live context.
        unsafe { (*self.0.get()).pos }
    }
}

/// A file of `T` being opened: the filesystem gives it its real file.
pub(crate) struct OpeningFile<'a, T>(&'a File<T>);

impl<T> OpeningFile<'_, T> {
    /// The open flags.
    pub(crate) fn flags(&self) -> OpenFlags {
        self.0.flags()
    }

    /// The dentry being opened.
    pub(crate) fn dentry(&self) -> &Dentry<T> {
        self.0.dentry()
    }

    /// Opens `real` as the real file of this one (`backing_file_open()`),
    /// with `flags` and `cred`, which it keeps.
    pub(crate) fn open_backing(
        &self,
        real: PathRef<'_>,
        flags: OpenFlags,
        cred: &Credential,
    ) -> Result<ARef<File<Real>>> {
        let user = self.0.as_raw();
        // SAFETY: `user` is being opened; `real` and `cred` are live, and
        // the backing file takes references of its own to them.
        let file = from_err_ptr(unsafe {
            bindings::backing_file_open(user, flags.0 as c_int, real.as_raw(), cred.as_raw())
        })?;
        // SAFETY: a new file with its reference, now ours.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(file).cast()) })
    }
}

/// The file operations of a filesystem's regular files. Implemented by the
/// filesystem type; `release` (dropping the real file) is the layer's own.
#[vtable]
pub(crate) trait FileOperations: Sized {
    /// `open`: the real file to read and write through.
    fn open(_inode: &Inode<Self>, _file: &OpeningFile<'_, Self>) -> Result<ARef<File<Real>>> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `read_iter`.
    fn read_iter(_iocb: &Kiocb<Self>, _iter: &mut IovIter) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `write_iter`.
    fn write_iter(_iocb: &Kiocb<Self>, _iter: &mut IovIter) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `splice_read`.
    fn splice_read(
        _file: &File<Self>,
        _pos: &mut i64,
        _pipe: &Pipe,
        _len: usize,
        _flags: u32,
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `splice_write`.
    fn splice_write(
        _pipe: &Pipe,
        _file: &File<Self>,
        _pos: &mut i64,
        _len: usize,
        _flags: u32,
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `llseek`.
    fn llseek(_file: &File<Self>, _offset: i64, _whence: i32) -> Result<i64> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `fsync`.
    fn fsync(_file: &File<Self>, _start: i64, _end: i64, _datasync: bool) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `mmap`.
    fn mmap(_file: &File<Self>, _vma: &Vma) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `fallocate`.
    fn fallocate(_file: &File<Self>, _mode: i32, _offset: i64, _len: i64) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `fadvise`.
    fn fadvise(_file: &File<Self>, _offset: i64, _len: i64, _advice: i32) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `copy_file_range` between two files of this filesystem.
    fn copy_file_range(
        _file_in: &File<Self>,
        _pos_in: i64,
        _file_out: &File<Self>,
        _pos_out: i64,
        _len: usize,
        _flags: u32,
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `remap_file_range` (clone, dedupe) between two files of one
    /// superblock of this filesystem.
    fn remap_file_range(
        _file_in: &File<Self>,
        _pos_in: i64,
        _file_out: &File<Self>,
        _pos_out: i64,
        _len: i64,
        _flags: RemapFlags,
    ) -> Result<i64> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// After a read, a splice read or a mapping through the backing-file
    /// helpers on `file` (`accessed`).
    fn after_read(_file: &File<Self>) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// After a write through the backing-file helpers on `file`
    /// (`end_write`).
    fn after_write(_file: &File<Self>) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `lock`: a POSIX or OFD lock request (`fcntl`); a blocking one
    /// waits here.
    fn lock(_file: &File<Self>, _cmd: LockCmd, _fl: &mut FileLock) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `flock`.
    fn flock(_file: &File<Self>, _cmd: LockCmd, _fl: &mut FileLock) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `flush`: a file descriptor of `file` is closed by `owner`.
    fn flush(_file: &File<Self>, _owner: LockOwner) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `unlocked_ioctl`, for requests the VFS does not answer itself
    /// (ENOTTY for those it does not know).
    fn ioctl(_file: &File<Self>, _cmd: IoctlCmd, _arg: &IoctlArg) -> Result<c_long> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The file operations of a filesystem's directories. Implemented by the
/// filesystem type; `release` (dropping the real file) is the layer's own,
/// and `read` is `EISDIR` (`generic_read_dir`).
#[vtable]
pub(crate) trait DirOperations: Sized {
    /// `open`: the real directory file to read entries from.
    fn open(_inode: &Inode<Self>, _file: &OpeningFile<'_, Self>) -> Result<ARef<File<Real>>> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `iterate_shared`: entries into `ctx`; the VFS holds the position
    /// lock.
    fn iterate(_file: &File<Self>, _ctx: &mut DirContext) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `llseek`.
    fn llseek(_file: &File<Self>, _offset: i64, _whence: i32) -> Result<i64> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `fsync`.
    fn fsync(_file: &File<Self>, _start: i64, _end: i64, _datasync: bool) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `lock`, as for regular files.
    fn lock(_file: &File<Self>, _cmd: LockCmd, _fl: &mut FileLock) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `flock`.
    fn flock(_file: &File<Self>, _cmd: LockCmd, _fl: &mut FileLock) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `flush`: a file descriptor of `file` is closed by `owner`.
    fn flush(_file: &File<Self>, _owner: LockOwner) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `unlocked_ioctl`, for requests the VFS does not answer itself
    /// (ENOTTY for those it does not know).
    fn ioctl(_file: &File<Self>, _cmd: IoctlCmd, _arg: &IoctlArg) -> Result<c_long> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The file operations of regular files of `T`.
pub(super) fn file_operations<T: FileSystem>() -> &'static bindings::file_operations {
    &Tables::<T>::FILE
}

/// The file operations of directories of `T`.
pub(super) fn dir_operations<T: FileSystem>() -> &'static bindings::file_operations {
    &Tables::<T>::DIR
}

/// Address space operations of stacked regular files: I/O goes to the real
/// file, but `open(O_DIRECT)` looks for `direct_IO` here (and the real
/// file's open refuses O_DIRECT where the real filesystem does).
pub(super) fn address_space_operations() -> &'static bindings::address_space_operations {
    &AOPS
}

static AOPS: bindings::address_space_operations = bindings::address_space_operations {
    direct_IO: Some(bindings::noop_direct_IO),
    // SAFETY: all-zero is a valid table: NULL operations are optional.
    ..unsafe { super::inode::zeroed() }
};

struct Tables<T>(PhantomData<T>);

impl<T: FileSystem> Tables<T> {
    const FILE: bindings::file_operations = bindings::file_operations {
        open: if <T as FileOperations>::HAS_OPEN {
            Some(open_file::<T>)
        } else {
            None
        },
        release: Some(release),
        read_iter: if T::HAS_READ_ITER {
            Some(read_iter::<T>)
        } else {
            None
        },
        write_iter: if T::HAS_WRITE_ITER {
            Some(write_iter::<T>)
        } else {
            None
        },
        splice_read: if T::HAS_SPLICE_READ {
            Some(splice_read::<T>)
        } else {
            None
        },
        splice_write: if T::HAS_SPLICE_WRITE {
            Some(splice_write::<T>)
        } else {
            None
        },
        llseek: if <T as FileOperations>::HAS_LLSEEK {
            Some(llseek_file::<T>)
        } else {
            None
        },
        fsync: if <T as FileOperations>::HAS_FSYNC {
            Some(fsync_file::<T>)
        } else {
            None
        },
        mmap: if T::HAS_MMAP { Some(mmap::<T>) } else { None },
        fallocate: if T::HAS_FALLOCATE {
            Some(fallocate::<T>)
        } else {
            None
        },
        fadvise: if T::HAS_FADVISE {
            Some(fadvise::<T>)
        } else {
            None
        },
        copy_file_range: if T::HAS_COPY_FILE_RANGE {
            Some(copy_file_range::<T>)
        } else {
            None
        },
        remap_file_range: if T::HAS_REMAP_FILE_RANGE {
            Some(remap_file_range::<T>)
        } else {
            None
        },
        lock: if <T as FileOperations>::HAS_LOCK {
            Some(lock_file::<T>)
        } else {
            None
        },
        flock: if <T as FileOperations>::HAS_FLOCK {
            Some(flock_file::<T>)
        } else {
            None
        },
        flush: if <T as FileOperations>::HAS_FLUSH {
            Some(flush_file::<T>)
        } else {
            None
        },
        unlocked_ioctl: if <T as FileOperations>::HAS_IOCTL {
            Some(ioctl_file::<T>)
        } else {
            None
        },
        // Leases as on any file (the kernel's default before 6.18: a NULL
        // `setlease` refuses them now).
        setlease: Some(bindings::generic_setlease),
        // SAFETY: all-zero is a valid table: NULL operations are optional.
        ..unsafe { super::inode::zeroed() }
    };
    const DIR: bindings::file_operations = bindings::file_operations {
        open: if <T as DirOperations>::HAS_OPEN {
            Some(open_dir::<T>)
        } else {
            None
        },
        release: Some(release),
        iterate_shared: if T::HAS_ITERATE {
            Some(iterate_shared::<T>)
        } else {
            None
        },
        llseek: if <T as DirOperations>::HAS_LLSEEK {
            Some(llseek_dir::<T>)
        } else {
            None
        },
        read: Some(bindings::generic_read_dir),
        fsync: if <T as DirOperations>::HAS_FSYNC {
            Some(fsync_dir::<T>)
        } else {
            None
        },
        setlease: Some(bindings::generic_setlease),
        lock: if <T as DirOperations>::HAS_LOCK {
            Some(lock_dir::<T>)
        } else {
            None
        },
        flock: if <T as DirOperations>::HAS_FLOCK {
            Some(flock_dir::<T>)
        } else {
            None
        },
        flush: if <T as DirOperations>::HAS_FLUSH {
            Some(flush_dir::<T>)
        } else {
            None
        },
        unlocked_ioctl: if <T as DirOperations>::HAS_IOCTL {
            Some(ioctl_dir::<T>)
        } else {
            None
        },
        // SAFETY: all-zero is a valid table: NULL operations are optional.
        ..unsafe { super::inode::zeroed() }
    };
}

/// Opens `file` with `open`, keeping the real file it gives.
///
/// # Safety
///
/// `file` must be a file of `T` being opened on `inode`.
unsafe fn open_with<T>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
    open: impl FnOnce(&Inode<T>, &OpeningFile<'_, T>) -> Result<ARef<File<Real>>>,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract; the file is not a `File<T>` by the
        // type's invariants yet, so it is only handed out as opening.
        let (inode, file_) = unsafe { (Inode::from_raw(inode), File::from_raw(file)) };
        let opening = OpeningFile(file_);
        let real = open(inode, &opening)?;
        // SAFETY: the file is being opened; `release` drops the reference.
        unsafe { (*file).private_data = ARef::into_raw(real).as_ptr().cast() };
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `open` of a regular file of `T`.
unsafe extern "C" fn open_file<T: FileSystem>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { open_with(inode, file, <T as FileOperations>::open) }
}

/// # Safety
///
/// Called by the VFS as `open` of a directory of `T`.
unsafe extern "C" fn open_dir<T: FileSystem>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { open_with(inode, file, <T as DirOperations>::open) }
}

/// `release`: drops the real file, at once (`__fput_sync()`).
///
/// The real file is part of this one, and this one is being released
/// where the VFS chose to (`close()` releases at once, as it would the
/// real file without shiftfs over it; an exiting task's files in task
/// work; a kernel thread's in a worker), with no lock held. Deferred
/// (`fput()`), each close would queue the real file's release as task
/// work and take the slow way back to user space for it.
///
/// # Safety
///
/// Called by the VFS once, for a file opened by `open_with`.
unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `private_data` holds the real file's reference, dropped once;
    // `release` runs in process context without locks, where the VFS
    // itself may release a file synchronously.
    unsafe { bindings::__fput_sync((*file).private_data.cast()) };
    0
}

/// A byte count or an error as `ssize_t`.
fn to_ssize(r: Result<usize>) -> isize {
    r.map_or_else(|e| e.to_errno() as isize, |n| n as isize)
}

/// An offset or an error as `loff_t`.
fn to_loff(r: Result<i64>) -> i64 {
    r.unwrap_or_else(|e| e.to_errno().into())
}

/// # Safety
///
/// Called by the VFS with a request on a file of `T` opened by `open_file`.
unsafe extern "C" fn read_iter<T: FileSystem>(
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: per the contract.
    let (iocb, iter) = unsafe { (&*iocb.cast::<Kiocb<T>>(), &mut *iter.cast::<IovIter>()) };
    to_ssize(T::read_iter(iocb, iter))
}

/// # Safety
///
/// As for [`read_iter`].
unsafe extern "C" fn write_iter<T: FileSystem>(
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: per the contract.
    let (iocb, iter) = unsafe { (&*iocb.cast::<Kiocb<T>>(), &mut *iter.cast::<IovIter>()) };
    to_ssize(T::write_iter(iocb, iter))
}

/// # Safety
///
/// Called by the VFS with a file of `T` opened by `open_file`.
unsafe extern "C" fn splice_read<T: FileSystem>(
    file: *mut bindings::file,
    ppos: *mut i64,
    pipe: *mut bindings::pipe_inode_info,
    len: usize,
    flags: c_uint,
) -> isize {
    // SAFETY: per the contract.
    let (file, pos, pipe) = unsafe { (File::from_raw(file), &mut *ppos, &*pipe.cast::<Pipe>()) };
    to_ssize(T::splice_read(file, pos, pipe, len, flags))
}

/// # Safety
///
/// As for [`splice_read`].
unsafe extern "C" fn splice_write<T: FileSystem>(
    pipe: *mut bindings::pipe_inode_info,
    file: *mut bindings::file,
    ppos: *mut i64,
    len: usize,
    flags: c_uint,
) -> isize {
    // SAFETY: per the contract.
    let (pipe, file, pos) = unsafe { (&*pipe.cast::<Pipe>(), File::from_raw(file), &mut *ppos) };
    to_ssize(T::splice_write(pipe, file, pos, len, flags))
}

/// # Safety
///
/// As for [`splice_read`].
unsafe extern "C" fn llseek_file<T: FileSystem>(
    file: *mut bindings::file,
    offset: i64,
    whence: c_int,
) -> i64 {
    // SAFETY: per the contract.
    let file = unsafe { File::from_raw(file) };
    to_loff(<T as FileOperations>::llseek(file, offset, whence))
}

/// # Safety
///
/// Called by the VFS with a directory of `T` opened by `open_dir`.
unsafe extern "C" fn llseek_dir<T: FileSystem>(
    file: *mut bindings::file,
    offset: i64,
    whence: c_int,
) -> i64 {
    // SAFETY: per the contract.
    let file = unsafe { File::from_raw(file) };
    to_loff(<T as DirOperations>::llseek(file, offset, whence))
}

/// # Safety
///
/// As for [`splice_read`].
unsafe extern "C" fn fsync_file<T: FileSystem>(
    file: *mut bindings::file,
    start: i64,
    end: i64,
    datasync: c_int,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        <T as FileOperations>::fsync(unsafe { File::from_raw(file) }, start, end, datasync != 0)?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`llseek_dir`].
unsafe extern "C" fn fsync_dir<T: FileSystem>(
    file: *mut bindings::file,
    start: i64,
    end: i64,
    datasync: c_int,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        <T as DirOperations>::fsync(unsafe { File::from_raw(file) }, start, end, datasync != 0)?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`llseek_dir`], with the position lock held.
unsafe extern "C" fn iterate_shared<T: FileSystem>(
    file: *mut bindings::file,
    ctx: *mut bindings::dir_context,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (file, ctx) = unsafe { (File::from_raw(file), &mut *ctx.cast::<DirContext>()) };
        T::iterate(file, ctx)?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`splice_read`], with a mapping being set up.
unsafe extern "C" fn mmap<T: FileSystem>(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::mmap(unsafe { File::from_raw(file) }, unsafe {
            &*vma.cast::<Vma>()
        })?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`splice_read`].
unsafe extern "C" fn fallocate<T: FileSystem>(
    file: *mut bindings::file,
    mode: c_int,
    offset: i64,
    len: i64,
) -> c_long {
    from_result(|| {
        // SAFETY: per the contract.
        T::fallocate(unsafe { File::from_raw(file) }, mode, offset, len)?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`splice_read`].
unsafe extern "C" fn fadvise<T: FileSystem>(
    file: *mut bindings::file,
    offset: i64,
    len: i64,
    advice: c_int,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::fadvise(unsafe { File::from_raw(file) }, offset, len, advice)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS with two regular files whose `copy_file_range` is
/// this function: both are files of `T` opened by `open_file`.
unsafe extern "C" fn copy_file_range<T: FileSystem>(
    file_in: *mut bindings::file,
    pos_in: i64,
    file_out: *mut bindings::file,
    pos_out: i64,
    len: usize,
    flags: c_uint,
) -> isize {
    // SAFETY: per the contract.
    let (fin, fout) = unsafe { (File::from_raw(file_in), File::from_raw(file_out)) };
    to_ssize(T::copy_file_range(fin, pos_in, fout, pos_out, len, flags))
}

/// # Safety
///
/// Called by the VFS with two regular files of one superblock whose
/// `remap_file_range` is this function: files of `T` opened by
/// `open_file`.
unsafe extern "C" fn remap_file_range<T: FileSystem>(
    file_in: *mut bindings::file,
    pos_in: i64,
    file_out: *mut bindings::file,
    pos_out: i64,
    len: i64,
    flags: c_uint,
) -> i64 {
    // SAFETY: per the contract.
    let (fin, fout) = unsafe { (File::from_raw(file_in), File::from_raw(file_out)) };
    to_loff(T::remap_file_range(
        fin,
        pos_in,
        fout,
        pos_out,
        len,
        RemapFlags(flags),
    ))
}

/// Declares the `lock`, `flock`, `flush` and `unlocked_ioctl` trampolines
/// of one of the two file operation traits.
macro_rules! shared_trampolines {
    ($trait:ident, $lock:ident, $flock:ident, $flush:ident, $ioctl:ident) => {
        /// # Safety
        ///
        /// Called by the VFS as `lock` with a file of `T` opened by `open`
        /// and a lock request on it.
        unsafe extern "C" fn $lock<T: FileSystem>(
            file: *mut bindings::file,
            cmd: c_int,
            fl: *mut bindings::file_lock,
        ) -> c_int {
            from_result(|| {
                // SAFETY: per the contract.
                let (file, fl) = unsafe { (File::from_raw(file), &mut *fl.cast::<FileLock>()) };
                <T as $trait>::lock(file, LockCmd(cmd), fl)?;
                Ok(0)
            })
        }

        /// # Safety
        ///
        /// As for the `lock` trampoline, as `flock`.
        unsafe extern "C" fn $flock<T: FileSystem>(
            file: *mut bindings::file,
            cmd: c_int,
            fl: *mut bindings::file_lock,
        ) -> c_int {
            from_result(|| {
                // SAFETY: per the contract.
                let (file, fl) = unsafe { (File::from_raw(file), &mut *fl.cast::<FileLock>()) };
                <T as $trait>::flock(file, LockCmd(cmd), fl)?;
                Ok(0)
            })
        }

        /// # Safety
        ///
        /// Called by the VFS as `flush` with a file of `T` opened by `open`.
        unsafe extern "C" fn $flush<T: FileSystem>(
            file: *mut bindings::file,
            owner: *mut c_void,
        ) -> c_int {
            from_result(|| {
                // SAFETY: per the contract.
                <T as $trait>::flush(unsafe { File::from_raw(file) }, LockOwner(owner))?;
                Ok(0)
            })
        }

        /// # Safety
        ///
        /// Called by the VFS as `unlocked_ioctl` with a file of `T` opened
        /// by `open`, and the calling task's request and argument.
        unsafe extern "C" fn $ioctl<T: FileSystem>(
            file: *mut bindings::file,
            cmd: c_uint,
            arg: c_ulong,
        ) -> c_long {
            from_result(|| {
                // SAFETY: per the contract.
                let file = unsafe { File::from_raw(file) };
                <T as $trait>::ioctl(file, IoctlCmd(cmd), &IoctlArg(arg))
            })
        }
    };
}

shared_trampolines!(
    FileOperations,
    lock_file,
    flock_file,
    flush_file,
    ioctl_file
);
shared_trampolines!(DirOperations, lock_dir, flock_dir, flush_dir, ioctl_dir);

/// `backing_file_ctx::accessed`.
///
/// # Safety
///
/// Called by the backing-file helpers with the file of `T` whose I/O they
/// did.
unsafe extern "C" fn accessed<T: FileSystem>(file: *mut bindings::file) {
    // SAFETY: per the contract.
    T::after_read(unsafe { File::from_raw(file) });
}

/// `backing_file_ctx::end_write`.
///
/// # Safety
///
/// As for [`accessed`].
#[cfg(not(shiftfs_kernel_7))]
unsafe extern "C" fn end_write<T: FileSystem>(file: *mut bindings::file, _pos: i64, _ret: isize) {
    // SAFETY: per the contract.
    T::after_write(unsafe { File::from_raw(file) });
}

/// `backing_file_ctx::end_write`, with the request (since 6.17).
///
/// # Safety
///
/// Called by the backing-file helpers with the request on a file of `T`
/// whose write they did.
#[cfg(shiftfs_kernel_7)]
unsafe extern "C" fn end_write<T: FileSystem>(iocb: *mut bindings::kiocb, _ret: isize) {
    // SAFETY: per the contract; a request holds its file.
    T::after_write(unsafe { File::from_raw((*iocb).ki_filp) });
}
