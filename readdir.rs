// SPDX-License-Identifier: GPL-2.0

//! Directories as open files: each open shiftfs directory reads the
//! entries of a real directory file, opened with the creator's credentials
//! (which it keeps), from the same position.

use crate::{
    cred, file,
    superblock::Shiftfs,
    vfs::{
        file::{
            DirContext, DirOperations, File, FileLock, IoctlArg, IoctlCmd, LockCmd, LockOwner,
            OpeningFile,
        },
        inode::Inode,
        ARef, Real,
    },
};
use kernel::{ffi::c_long, prelude::*};

#[vtable]
impl DirOperations for Shiftfs {
    fn open(_inode: &Inode<Self>, file: &OpeningFile<'_, Self>) -> Result<ARef<File<Real>>> {
        let sb = file.dentry().super_block();
        // Borrowed: the real file takes its own reference.
        cred::with_made(sb, |cred| {
            sb.info()
                .real
                .mount()
                .path(file.dentry().real())
                .open(file::real_flags(file.flags()), cred)
        })
    }

    /// The real directory's entries, from the shiftfs file's position (the
    /// VFS holds the position lock, and the real file is this one's alone).
    fn iterate(file: &File<Self>, ctx: &mut DirContext) -> Result {
        let real = file.real();
        real.set_pos(ctx.pos());
        let _creds = cred::enter(file.inode().super_block())?;
        real.iterate_dir(ctx)
    }

    /// Seeks the real directory file and follows it.
    fn llseek(file: &File<Self>, offset: i64, whence: i32) -> Result<i64> {
        let pos = file.real().llseek(offset, whence)?;
        file.set_pos(pos);
        Ok(pos)
    }

    /// Programs fsync a directory to make a rename or create in it durable.
    fn fsync(file: &File<Self>, start: i64, end: i64, datasync: bool) -> Result {
        file::fsync(file, start, end, datasync)
    }

    /// Locks on directories are the real directory's, as for files.
    fn lock(file: &File<Self>, cmd: LockCmd, fl: &mut FileLock) -> Result {
        file.lock_real(cmd, fl)
    }

    fn flock(file: &File<Self>, cmd: LockCmd, fl: &mut FileLock) -> Result {
        file.flock_real(cmd, fl)
    }

    fn flush(file: &File<Self>, owner: LockOwner) -> Result {
        file.flush_real(owner)
    }

    /// Subvolume requests are made on directories (file.rs).
    fn ioctl(file: &File<Self>, cmd: IoctlCmd, arg: &IoctlArg) -> Result<c_long> {
        file::ioctl(file, cmd, arg)
    }
}
