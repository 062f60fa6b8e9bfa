// SPDX-License-Identifier: GPL-2.0

//! Regular files: each open shiftfs file reads and writes through a real
//! file opened as a backing file with the creator's credentials (which it
//! keeps), with the backing-file helpers; the other file operations run on
//! the real file with the credentials it was opened with.

use crate::{
    cred,
    superblock::Shiftfs,
    vfs::{
        cred::OverrideCurrent,
        file::{
            File, FileOperations, IovIter, Kiocb, OpenFlags, OpeningFile, Pipe, RemapFlags, Vma,
        },
        inode::Inode,
        ARef, Real,
    },
};
use kernel::{
    error::code::{EINVAL, ENOENT, EXDEV},
    prelude::*,
};

/// Flags `fcntl(F_SETFL)` may change.
const SETFL: OpenFlags = OpenFlags::APPEND
    .or(OpenFlags::NONBLOCK)
    .or(OpenFlags::NDELAY)
    .or(OpenFlags::DIRECT);

/// Carries `fcntl(F_SETFL)` changes of `file` over to its real file
/// (EINVAL for O_DIRECT where the real file cannot do it).
fn sync_flags(file: &File<Shiftfs>) -> Result {
    let real = file.real();
    let flags = file.flags().and(SETFL);
    if real.flags().and(SETFL) == flags {
        return Ok(());
    }
    if flags.any(OpenFlags::DIRECT) && !real.can_direct_io() {
        return Err(EINVAL);
    }
    real.set_flags(SETFL, flags);
    Ok(())
}

/// `fsync` of the real file (or directory), with the credentials it was
/// opened with.
pub(crate) fn fsync(file: &File<Shiftfs>, start: i64, end: i64, datasync: bool) -> Result {
    let real = file.real();
    let _as = cred::enter_as_opener(real);
    real.fsync_range(start, end, datasync)
}

/// Shows the real inode's size and times on `file`'s inode.
fn show_size(file: &File<Shiftfs>) {
    let inode = file.inode();
    inode.set_size_and_times(inode.real());
}

/// Runs `f` on the real files under two shiftfs files with the
/// destination's credentials, then shows the destination's size; EXDEV
/// across superblocks (the real files may be on other filesystems, with
/// other credentials: the caller copies by reading and writing).
fn on_real_pair<R>(
    file_in: &File<Shiftfs>,
    file_out: &File<Shiftfs>,
    f: impl FnOnce(&File<Real>, &File<Real>) -> Result<R>,
) -> Result<R> {
    if !core::ptr::eq(
        file_in.inode().super_block(),
        file_out.inode().super_block(),
    ) {
        return Err(EXDEV);
    }
    let ret = {
        let _as = cred::enter_as_opener(file_out.real());
        f(file_in.real(), file_out.real())
    };
    show_size(file_out);
    ret
}

#[vtable]
impl FileOperations for Shiftfs {
    /// The VFS has checked the open (MAY_OPEN and the access mode) with
    /// `permission`, which checks the real inode too.
    fn open(_inode: &Inode<Self>, file: &OpeningFile<'_, Self>) -> Result<ARef<File<Real>>> {
        let (sb, real) = (file.dentry().super_block(), file.dentry().real());
        if real.inode().is_none() {
            return Err(ENOENT);
        }
        let creds = cred::creds(sb)?;
        let _as = creds.clone().override_current();
        file.open_backing(sb.info().real.mount().path(real), &creds)
    }

    fn read_iter(iocb: &Kiocb<Self>, iter: &mut IovIter) -> Result<usize> {
        let file = iocb.file();
        sync_flags(file)?;
        file.read_backing(iocb, iter)
    }

    /// Serialised on the shiftfs inode, as the VFS serialises writes to a
    /// regular file.
    fn write_iter(iocb: &Kiocb<Self>, iter: &mut IovIter) -> Result<usize> {
        let file = iocb.file();
        sync_flags(file)?;
        let _locked = file.inode().lock();
        file.write_backing(iocb, iter)
    }

    fn splice_read(
        file: &File<Self>,
        pos: &mut i64,
        pipe: &Pipe,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        file.splice_read_backing(pos, pipe, len, flags)
    }

    fn splice_write(
        pipe: &Pipe,
        file: &File<Self>,
        pos: &mut i64,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        let _locked = file.inode().lock();
        file.splice_write_backing(pipe, pos, len, flags)
    }

    /// Seeks the real file (SEEK_DATA and SEEK_HOLE included) from the
    /// shiftfs file's position, under the shiftfs inode's lock.
    fn llseek(file: &File<Self>, offset: i64, whence: i32) -> Result<i64> {
        let _locked = file.inode().lock();
        let real = file.real();
        real.set_pos(file.pos());
        let pos = real.llseek(offset, whence);
        file.set_pos(real.pos());
        pos
    }

    fn fsync(file: &File<Self>, start: i64, end: i64, datasync: bool) -> Result {
        fsync(file, start, end, datasync)
    }

    /// Maps the real file.
    fn mmap(file: &File<Self>, vma: &Vma) -> Result {
        file.mmap_backing(vma)
    }

    /// Allocate, keep size, punch hole, ...: the real file's.
    fn fallocate(file: &File<Self>, mode: i32, offset: i64, len: i64) -> Result {
        let ret = {
            let _as = cred::enter_as_opener(file.real());
            file.real().fallocate(mode, offset, len)
        };
        show_size(file);
        ret
    }

    fn fadvise(file: &File<Self>, offset: i64, len: i64, advice: i32) -> Result {
        let _as = cred::enter_as_opener(file.real());
        file.real().fadvise(offset, len, advice)
    }

    /// Between the real files.
    fn copy_file_range(
        file_in: &File<Self>,
        pos_in: i64,
        file_out: &File<Self>,
        pos_out: i64,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        on_real_pair(file_in, file_out, |rin, rout| {
            rin.copy_range(pos_in, rout, pos_out, len, flags)
        })
    }

    /// `FICLONE`, `FICLONERANGE`, `FIDEDUPERANGE`: the real filesystem's,
    /// or its EOPNOTSUPP/EXDEV/EINVAL.
    fn remap_file_range(
        file_in: &File<Self>,
        pos_in: i64,
        file_out: &File<Self>,
        pos_out: i64,
        len: i64,
        flags: RemapFlags,
    ) -> Result<i64> {
        on_real_pair(file_in, file_out, |rin, rout| {
            rin.remap_range(pos_in, rout, pos_out, len, flags)
        })
    }

    /// After reads and writes through the backing-file helpers: the real
    /// inode's times and size show.
    fn after_io(file: &File<Self>) {
        show_size(file);
    }
}
