// SPDX-License-Identifier: GPL-2.0

//! Regular files: each open shiftfs file reads and writes through a real
//! file opened as a backing file with the creator's credentials (which it
//! keeps), with the backing-file helpers; the other file operations run on
//! the real file with the credentials it was opened with.
//!
//! Locks (`fcntl` POSIX and OFD locks, `flock`) are taken on the real file,
//! so that a process on the host and one in the container that lock the
//! same file exclude each other, as on one filesystem; a close drops the
//! POSIX locks its owner holds there, the last close the others.
//!
//! ioctls: the VFS answers the inode flag requests itself (through
//! `fileattr_get`/`fileattr_set`); of the rest, `FS_IOC_GETVERSION` and,
//! where the mount passes them through (`passthrough` bit 2) and the real
//! filesystem is btrfs, the btrfs subvolume requests Ubuntu's shiftfs
//! passed reach the real file, unchanged, with the creator's credentials
//! (the caller's fsuid/fsgid, shifted) without capabilities: the real
//! filesystem judges them as it would an unprivileged user's. No file or
//! descriptor is ever handed across, so snapshot creation, whose request
//! names its source by a descriptor, is EOPNOTSUPP. Everything else is
//! ENOTTY.

use crate::{
    cred, inode,
    mark::PASSTHROUGH_IOCTL,
    superblock::Shiftfs,
    vfs::{
        cred::{Capability, OverrideCurrent},
        errno::eopnotsupp,
        file::{
            File, FileLock, FileOperations, IoctlArg, IoctlCmd, IovIter, Kiocb, LockCmd, LockOwner,
            OpenFlags, OpeningFile, Pipe, RemapFlags, Vma, BTRFS_SUBVOL_RDONLY,
        },
        inode::Inode,
        super_block::BTRFS_SUPER_MAGIC,
        ARef, Real,
    },
};
use kernel::{
    error::code::{EINVAL, ENOENT, ENOTTY, EXDEV},
    ffi::c_long,
    prelude::*,
};

/// Flags `fcntl(F_SETFL)` may change.
const SETFL: OpenFlags = OpenFlags::APPEND
    .or(OpenFlags::NONBLOCK)
    .or(OpenFlags::NDELAY)
    .or(OpenFlags::DIRECT);

/// The flags a real file or directory is opened with for a shiftfs one
/// opened with `flags`: the same, and `O_NOATIME`. Whether an access
/// updates the atime is decided through the shiftfs file, by the shiftfs
/// mount's flags, then by the real mount's (`update_atime`); the real
/// file's own reads must not update it past the shiftfs mount.
pub(crate) fn real_flags(flags: OpenFlags) -> OpenFlags {
    flags.or(OpenFlags::NOATIME)
}

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

/// What becomes of an ioctl request that reaches shiftfs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IoctlRule {
    /// Run by the real file with the creator's credentials, shifted, and
    /// no capability but `keep`.
    Forward { keep: Option<Capability> },
    /// `BTRFS_IOC_SUBVOL_SETFLAGS`: forwarded if the flags it sets are
    /// only the read-only flag, EOPNOTSUPP otherwise.
    ForwardReadOnlyFlag,
    /// Refused with this errno.
    Refuse(Error),
}

/// The rule for request `cmd`, on a file whose real file is on btrfs or
/// not, through a mount that passes `passthrough`.
pub(crate) fn ioctl_rule(cmd: IoctlCmd, on_btrfs: bool, passthrough: u32) -> IoctlRule {
    use IoctlRule::*;
    if cmd == IoctlCmd::FS_GETVERSION {
        return Forward { keep: None };
    }
    if !on_btrfs || passthrough & PASSTHROUGH_IOCTL == 0 {
        return Refuse(ENOTTY);
    }
    match cmd {
        IoctlCmd::BTRFS_FS_INFO
        | IoctlCmd::BTRFS_SUBVOL_CREATE
        | IoctlCmd::BTRFS_SUBVOL_CREATE_V2
        | IoctlCmd::BTRFS_SUBVOL_GETFLAGS => Forward { keep: None },
        IoctlCmd::BTRFS_SUBVOL_SETFLAGS => ForwardReadOnlyFlag,
        // btrfs lets an unprivileged user destroy a subvolume only where
        // the filesystem is mounted `user_subvol_rm_allowed`, and then
        // like `rmdir` of its root; Ubuntu's shiftfs kept the override of
        // permission bits for it.
        IoctlCmd::BTRFS_SNAP_DESTROY => Forward {
            keep: Some(Capability::DAC_OVERRIDE),
        },
        // The source subvolume is a descriptor of the caller's: btrfs
        // would find a shiftfs file there, and the real file must never
        // be put in a descriptor table (CVE-2019-15791, CVE-2021-3492).
        IoctlCmd::BTRFS_SNAP_CREATE | IoctlCmd::BTRFS_SNAP_CREATE_V2 => Refuse(eopnotsupp()),
        _ => Refuse(ENOTTY),
    }
}

/// An ioctl on an open shiftfs file or directory, by [`ioctl_rule`].
pub(crate) fn ioctl(file: &File<Shiftfs>, cmd: IoctlCmd, arg: &IoctlArg) -> Result<c_long> {
    let sb = file.inode().super_block();
    let real = file.real();
    let on_btrfs = real.inode().super_block().magic() == BTRFS_SUPER_MAGIC;
    let keep = match ioctl_rule(cmd, on_btrfs, sb.info().passthrough()) {
        IoctlRule::Refuse(err) => return Err(err),
        IoctlRule::Forward { keep } => keep,
        IoctlRule::ForwardReadOnlyFlag => {
            // btrfs reads the flags again and refuses any other itself.
            if arg.read_u64()? & !BTRFS_SUBVOL_RDONLY != 0 {
                return Err(eopnotsupp());
            }
            None
        }
    };
    let _as = cred::creds(sb)?.with_only(keep)?.override_current();
    real.ioctl(cmd, arg)
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

/// Before a write through `file` (under its inode's lock): its inode shows
/// the real inode's mode, owner and `S_NOSEC` again. The write first
/// removes set-id bits and capabilities on the caller's behalf (who may
/// lack CAP_FSETID, which the creator's credentials the real write runs
/// with have) by what the shiftfs inode shows, and the host may have
/// changed them below since the file was opened or last written.
/// Anything changed below changed ctime, which the comparison reads.
fn before_write(file: &File<Shiftfs>) {
    let inode = file.inode();
    if !inode.shows(inode.real()) {
        inode::refresh(inode);
    }
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
    /// `permission`, which checks the real inode too. The real file is
    /// `O_NOATIME`: reads record their access through the shiftfs file
    /// (see [`Self::after_read`]).
    fn open(_inode: &Inode<Self>, file: &OpeningFile<'_, Self>) -> Result<ARef<File<Real>>> {
        let (sb, real) = (file.dentry().super_block(), file.dentry().real());
        if real.inode().is_none() {
            return Err(ENOENT);
        }
        let flags = real_flags(file.flags());
        // Borrowed: the backing file takes its own reference.
        cred::with_made(sb, |cred| {
            file.open_backing(sb.info().real.mount().path(real), flags, cred)
        })
    }

    fn read_iter(iocb: &Kiocb<Self>, iter: &mut IovIter) -> Result<usize> {
        let file = iocb.file();
        sync_flags(file)?;
        file.read_backing(iocb, iter)
    }

    /// Serialised on the shiftfs inode, as the VFS serialises writes to a
    /// regular file; see [`before_write`].
    fn write_iter(iocb: &Kiocb<Self>, iter: &mut IovIter) -> Result<usize> {
        let file = iocb.file();
        sync_flags(file)?;
        let _locked = file.inode().lock();
        before_write(file);
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
        before_write(file);
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

    /// After a read, a splice read or a mapping: the real inode's times and
    /// size show, and the access is recorded as a read through the shiftfs
    /// mount (its `noatime`, `relatime`, `ro`; the file's `O_NOATIME`),
    /// which updates the real inode's atime where the real mount lets it
    /// too (`update_atime`).
    fn after_read(file: &File<Self>) {
        show_size(file);
        // Where the real mount records no atime, the shiftfs atime would
        // stay due, and each read would take write access to the shifting
        // mount only for `update_atime` to return at once.
        if file.inode().super_block().info().real.records_atime(false) {
            file.accessed();
        }
    }

    /// After a write: the real inode's times and size show.
    fn after_write(file: &File<Self>) {
        show_size(file);
    }

    fn lock(file: &File<Self>, cmd: LockCmd, fl: &mut FileLock) -> Result {
        file.lock_real(cmd, fl)
    }

    fn flock(file: &File<Self>, cmd: LockCmd, fl: &mut FileLock) -> Result {
        file.flock_real(cmd, fl)
    }

    fn flush(file: &File<Self>, owner: LockOwner) -> Result {
        file.flush_real(owner)
    }

    fn ioctl(file: &File<Self>, cmd: IoctlCmd, arg: &IoctlArg) -> Result<c_long> {
        ioctl(file, cmd, arg)
    }
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{kunit_expect_eq, kunit_suite, mark::PASSTHROUGH_STATFS, vfs::kunit::Test};

    const ALL: u32 = PASSTHROUGH_STATFS | PASSTHROUGH_IOCTL;
    const FORWARD: IoctlRule = IoctlRule::Forward { keep: None };

    fn the_generation_is_always_asked_of_the_real_file(t: &mut Test) {
        for (btrfs, pass) in [(false, 0), (true, 0), (true, ALL)] {
            kunit_expect_eq!(t, ioctl_rule(IoctlCmd::FS_GETVERSION, btrfs, pass), FORWARD);
        }
    }

    fn btrfs_requests_need_btrfs_and_bit_2(t: &mut Test) {
        let cmd = IoctlCmd::BTRFS_SUBVOL_CREATE;
        kunit_expect_eq!(t, ioctl_rule(cmd, true, ALL), FORWARD);
        kunit_expect_eq!(t, ioctl_rule(cmd, true, PASSTHROUGH_IOCTL), FORWARD);
        kunit_expect_eq!(
            t,
            ioctl_rule(cmd, true, PASSTHROUGH_STATFS),
            IoctlRule::Refuse(ENOTTY)
        );
        kunit_expect_eq!(t, ioctl_rule(cmd, false, ALL), IoctlRule::Refuse(ENOTTY));
    }

    fn the_subvolume_list_is_ubuntus(t: &mut Test) {
        for cmd in [
            IoctlCmd::BTRFS_FS_INFO,
            IoctlCmd::BTRFS_SUBVOL_CREATE,
            IoctlCmd::BTRFS_SUBVOL_CREATE_V2,
            IoctlCmd::BTRFS_SUBVOL_GETFLAGS,
        ] {
            kunit_expect_eq!(t, ioctl_rule(cmd, true, ALL), FORWARD);
        }
        kunit_expect_eq!(
            t,
            ioctl_rule(IoctlCmd::BTRFS_SUBVOL_SETFLAGS, true, ALL),
            IoctlRule::ForwardReadOnlyFlag
        );
        kunit_expect_eq!(
            t,
            ioctl_rule(IoctlCmd::BTRFS_SNAP_DESTROY, true, ALL),
            IoctlRule::Forward {
                keep: Some(Capability::DAC_OVERRIDE)
            }
        );
    }

    fn snapshots_are_refused_not_handed_a_descriptor(t: &mut Test) {
        for cmd in [IoctlCmd::BTRFS_SNAP_CREATE, IoctlCmd::BTRFS_SNAP_CREATE_V2] {
            kunit_expect_eq!(
                t,
                ioctl_rule(cmd, true, ALL),
                IoctlRule::Refuse(eopnotsupp())
            );
        }
    }

    fn other_requests_are_enotty(t: &mut Test) {
        // BTRFS_IOC_DEFRAG, BTRFS_IOC_SYNC, BTRFS_IOC_INO_LOOKUP, FICLONE's
        // number, and nonsense.
        for n in [0x5000_9402u32, 0x0000_9408, 0xd000_9412, 0x4004_9409, 0] {
            kunit_expect_eq!(
                t,
                ioctl_rule(IoctlCmd(n), true, ALL),
                IoctlRule::Refuse(ENOTTY)
            );
        }
    }

    kunit_suite!(
        "shiftfs_ioctl",
        [
            the_generation_is_always_asked_of_the_real_file,
            btrfs_requests_need_btrfs_and_bit_2,
            the_subvolume_list_is_ubuntus,
            snapshots_are_refused_not_handed_a_descriptor,
            other_requests_are_enotty,
        ]
    );
}
