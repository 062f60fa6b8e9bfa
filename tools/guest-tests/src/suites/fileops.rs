//! File operations beyond read and write, through a shifting mount from a
//! real container, on tmpfs and on ext4: splice into a file, fallocate
//! (allocate, keep size, punch hole), fadvise, copy_file_range, clone
//! (refused as the real filesystem refuses it), O_DIRECT, syncfs, fsync of
//! a directory, and the
//! ioctl whitelist (file attribute flags; ENOTTY for anything else).

use crate::{
    ensure, ensure_eq,
    fixture::{load, pattern, unload, Tree},
    harness::{Context, Outcome},
    tests, Env,
};
use rustix::{
    fs::{self as rfs, FallocateFlags, Mode, OFlags},
    io::Errno,
};
use std::{
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    splice_into_a_file,
    fallocate_extends_keeps_size_and_punches_holes,
    fadvise_is_accepted,
    copy_file_range_copies_the_bytes,
    clone_is_refused_as_the_real_filesystem_refuses_it,
    clone_across_mounts_is_exdev,
    o_direct_reads_and_writes_on_ext4,
    syncfs_and_sync_file_range,
    directories_can_be_fsynced,
    getflags_and_setflags,
    append_only_flag_needs_cap_linux_immutable,
    fsgetxattr_and_fssetxattr,
    other_ioctls_are_enotty,
    host_unmarks,
    unload,
];

/// The suite runs on ext4 (scratch `../ext4`, a loop device) where
/// available, else on the tmpfs scratch.
fn tree(env: &Env) -> Tree {
    Tree::on_ext4(env, "fileops").unwrap_or_else(|_| Tree::new(env, "fileops"))
}

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    for f in ["src", "dst", "falloc", "flags", "direct", "spliced"] {
        let p = tree.real.join(f);
        std::fs::write(&p, pattern(if f == "src" { 300_000 } else { 0 }, 3)).ctx("create")?;
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).ctx("chown")?;
    }
    tree.mark()
}

fn real(env: &Env, name: &str) -> PathBuf {
    tree(env).real.join(name)
}

fn splice_into_a_file(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = rfs::open(t.join("spliced"), OFlags::WRONLY, Mode::empty()).ctx("open")?;
        let (r, w) = rustix::pipe::pipe().ctx("pipe")?;
        rustix::io::write(&w, &pattern(50_000, 1)).ctx("fill the pipe")?;
        let mut off = 0u64;
        let mut left = 50_000usize;
        while left > 0 {
            let n = rustix::pipe::splice(
                &r,
                None,
                &f,
                Some(&mut off),
                left,
                rustix::pipe::SpliceFlags::empty(),
            )
            .ctx("splice into the file")?;
            ensure!(n > 0, "splice wrote nothing");
            left -= n;
        }
        Ok(())
    })?;
    ensure!(
        std::fs::read(real(env, "spliced")).ctx("read")? == pattern(50_000, 1),
        "spliced bytes on disk differ"
    );
    Ok(())
}

fn fallocate_extends_keeps_size_and_punches_holes(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = rfs::open(t.join("falloc"), OFlags::RDWR, Mode::empty()).ctx("open")?;
        rfs::fallocate(&f, FallocateFlags::empty(), 0, 1 << 20).ctx("fallocate")?;
        ensure_eq!(
            rfs::fstat(&f).ctx("fstat")?.st_size,
            1 << 20,
            "size after fallocate"
        );
        rfs::fallocate(&f, FallocateFlags::KEEP_SIZE, 1 << 20, 1 << 20).ctx("KEEP_SIZE")?;
        ensure_eq!(
            rfs::fstat(&f).ctx("fstat")?.st_size,
            1 << 20,
            "size after KEEP_SIZE"
        );
        rustix::io::pwrite(&f, &[0xaa; 65536], 0).ctx("fill")?;
        rfs::fallocate(
            &f,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            4096,
            8192,
        )
        .ctx("PUNCH_HOLE")?;
        let mut buf = vec![0u8; 16384];
        rustix::io::pread(&f, &mut buf, 0).ctx("read back")?;
        ensure!(
            buf[..4096].iter().all(|&b| b == 0xaa),
            "bytes before the hole"
        );
        ensure!(
            buf[4096..12288].iter().all(|&b| b == 0),
            "the hole reads as zeros"
        );
        ensure!(
            buf[12288..].iter().all(|&b| b == 0xaa),
            "bytes after the hole"
        );
        Ok(())
    })?;
    let md = std::fs::metadata(real(env, "falloc")).ctx("stat")?;
    ensure_eq!(md.len(), 1 << 20, "size on disk");
    ensure!(
        md.blocks() * 512 >= (2 << 20) - 8192,
        "blocks kept on disk: {}",
        md.blocks()
    );
    Ok(())
}

fn fadvise_is_accepted(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = rfs::open(t.join("src"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        for a in [
            rfs::Advice::Sequential,
            rfs::Advice::WillNeed,
            rfs::Advice::DontNeed,
        ] {
            rfs::fadvise(&f, 0, None, a).ctx(&format!("fadvise {a:?}"))?;
        }
        let mut buf = vec![0u8; 300_000];
        let n = rustix::io::pread(&f, &mut buf, 0).ctx("read after DONTNEED")?;
        ensure!(
            n == 300_000 && buf == pattern(300_000, 3),
            "bytes after fadvise"
        );
        Ok(())
    })
}

fn copy_file_range_copies_the_bytes(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let src = rfs::open(t.join("src"), OFlags::RDONLY, Mode::empty()).ctx("open src")?;
        let dst = rfs::open(t.join("dst"), OFlags::WRONLY, Mode::empty()).ctx("open dst")?;
        let (mut off_in, mut off_out) = (1000u64, 5u64);
        let mut left = 200_000usize;
        while left > 0 {
            let n = rfs::copy_file_range(&src, Some(&mut off_in), &dst, Some(&mut off_out), left)
                .ctx("copy_file_range")?;
            ensure!(n > 0, "copy_file_range copied nothing");
            left -= n;
        }
        let st = rfs::fstat(&dst).ctx("fstat")?;
        ensure_eq!(st.st_size, 200_005, "size in the container");
        Ok(())
    })?;
    let data = std::fs::read(real(env, "dst")).ctx("read")?;
    ensure_eq!(data.len(), 200_005, "size on disk");
    ensure!(data[..5] == [0; 5], "leading hole");
    ensure!(
        data[5..] == pattern(300_000, 3)[1000..201_000],
        "copied bytes on disk differ"
    );
    Ok(())
}

/// `FICLONE`: _IOW(0x94, 9, int).
const FICLONE: libc::c_ulong = 0x4004_9409;

fn ficlone(dst: &impl AsRawFd, src: &impl AsRawFd) -> Result<(), Errno> {
    // SAFETY: FICLONE takes a file descriptor by value.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE, src.as_raw_fd()) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    }
}

fn clone_is_refused_as_the_real_filesystem_refuses_it(env: &Env) -> Outcome {
    // Neither tmpfs nor ext4 can share extents: EOPNOTSUPP, as on the real
    // filesystem, and the destination is untouched.
    let want = {
        let src = rfs::open(real(env, "src"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        let dst = rfs::open(real(env, "flags"), OFlags::WRONLY, Mode::empty()).ctx("open")?;
        ficlone(&dst, &src).err()
    };
    tree(env).in_shifted(|t| {
        let src = rfs::open(t.join("src"), OFlags::RDONLY, Mode::empty()).ctx("open src")?;
        let dst = rfs::open(t.join("flags"), OFlags::WRONLY, Mode::empty()).ctx("open dst")?;
        ensure_eq!(
            ficlone(&dst, &src).err(),
            want,
            "FICLONE through shiftfs vs on the real fs"
        );
        ensure!(
            want.is_some(),
            "the real filesystem clones: test needs updating"
        );
        Ok(())
    })?;
    ensure_eq!(
        std::fs::metadata(real(env, "flags")).ctx("stat")?.len(),
        0,
        "destination size"
    );
    Ok(())
}

fn clone_across_mounts_is_exdev(env: &Env) -> Outcome {
    let tree = tree(env);
    let other = tree.target.with_extension("other");
    std::fs::create_dir_all(&other).ctx("mkdir")?;
    let mark = tree.mark.clone();
    tree.in_shifted(move |t| {
        rustix::mount::mount(
            &mark,
            &other,
            crate::sys::FS_NAME,
            rustix::mount::MountFlags::empty(),
            c"",
        )
        .ctx("second shifting mount")?;
        let src = rfs::open(t.join("src"), OFlags::RDONLY, Mode::empty()).ctx("open src")?;
        let dst = rfs::open(other.join("dst"), OFlags::WRONLY, Mode::empty()).ctx("open dst")?;
        ensure_eq!(
            ficlone(&dst, &src).err(),
            Some(Errno::XDEV),
            "FICLONE across mounts"
        );
        let res = rfs::link(t.join("src"), other.join("src-link"));
        ensure_eq!(res.err(), Some(Errno::XDEV), "link across mounts");
        let res = rfs::rename(t.join("dst"), other.join("dst-moved"));
        ensure_eq!(res.err(), Some(Errno::XDEV), "rename across mounts");
        // Each shifting mount is a superblock of its own, with its own
        // credentials: copy_file_range leaves the copy to the caller.
        let mut off = 0u64;
        let res = rfs::copy_file_range(&src, None, &dst, Some(&mut off), 10);
        ensure_eq!(
            res.err(),
            Some(Errno::XDEV),
            "copy_file_range across mounts"
        );
        Ok(())
    })
}

fn o_direct_reads_and_writes_on_ext4(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = match rfs::open(
            t.join("direct"),
            OFlags::RDWR | OFlags::DIRECT,
            Mode::empty(),
        ) {
            Ok(f) => f,
            Err(e) => return Err(format!("open O_DIRECT: {e}")),
        };
        // O_DIRECT wants aligned buffers: carve one from a larger vector.
        let mut raw = vec![0u8; 3 * 4096];
        let off = raw.as_ptr().align_offset(4096);
        let buf = &mut raw[off..off + 8192];
        buf.copy_from_slice(&pattern(8192, 9));
        ensure_eq!(
            rustix::io::pwrite(&f, &*buf, 0).ctx("direct write")?,
            8192,
            "written"
        );
        buf.fill(0);
        ensure_eq!(
            rustix::io::pread(&f, &mut *buf, 0).ctx("direct read")?,
            8192,
            "read"
        );
        ensure!(*buf == pattern(8192, 9)[..], "direct read back differs");
        // And switched on with F_SETFL on a buffered file.
        let g = rfs::open(t.join("src"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        rfs::fcntl_setfl(&g, OFlags::DIRECT).ctx("F_SETFL O_DIRECT")?;
        ensure_eq!(
            rustix::io::pread(&g, &mut *buf, 4096).ctx("read after F_SETFL")?,
            8192,
            "read"
        );
        ensure!(
            *buf == pattern(300_000, 3)[4096..12288],
            "bytes after F_SETFL"
        );
        Ok(())
    })?;
    ensure!(
        std::fs::read(real(env, "direct")).ctx("read")? == pattern(8192, 9),
        "direct-written bytes on disk differ"
    );
    Ok(())
}

fn syncfs_and_sync_file_range(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = rfs::open(t.join("dst"), OFlags::RDWR, Mode::empty()).ctx("open")?;
        rustix::io::pwrite(&f, b"synced", 0).ctx("write")?;
        rfs::syncfs(&f).ctx("syncfs")?;
        // SAFETY: a plain syscall on an open descriptor.
        let r = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        ensure_eq!(r, 0, "sync_file_range");
        rustix::fs::sync();
        Ok(())
    })?;
    let data = std::fs::read(real(env, "dst")).ctx("read")?;
    ensure_eq!(&data[..6], b"synced", "on disk");
    Ok(())
}

/// Programs fsync the directory after a rename or create in it to make it
/// durable (rename-over for atomic replace, databases, package managers):
/// that must succeed, as on the real filesystem, not fail with EINVAL.
/// That the rename then survives a power cut is `faults::power_cut_*`.
fn directories_can_be_fsynced(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        std::fs::write(t.join("replace.tmp"), b"new").ctx("write")?;
        rfs::rename(t.join("replace.tmp"), t.join("replaced")).ctx("rename")?;
        for (what, d) in [
            ("mount root", t.to_path_buf()),
            ("subdirectory", t.join("sub")),
        ] {
            std::fs::create_dir_all(&d).ctx("mkdir")?;
            let f = rfs::open(&d, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
                .ctx("open directory")?;
            rfs::fsync(&f).ctx(&format!("fsync of the {what}"))?;
            rfs::fdatasync(&f).ctx(&format!("fdatasync of the {what}"))?;
        }
        // An O_PATH descriptor has no file operations: EBADF, as anywhere.
        let p = rfs::open(t, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).ctx("O_PATH")?;
        ensure_eq!(rfs::fsync(&p).err(), Some(Errno::BADF), "fsync of O_PATH");
        Ok(())
    })?;
    ensure_eq!(
        std::fs::read(real(env, "replaced")).ctx("read")?,
        b"new",
        "renamed on disk"
    );
    Ok(())
}

const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;
const FS_APPEND_FL: libc::c_int = 0x20;
const FS_NOATIME_FL: libc::c_int = 0x80;

fn ioctl_ptr<T>(fd: &impl AsRawFd, req: libc::c_ulong, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: `arg` is the structure the request reads or writes.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg as *mut T) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    }
}

fn getflags(path: &Path) -> Result<libc::c_int, String> {
    let f = rfs::open(path, OFlags::RDONLY, Mode::empty()).ctx("open")?;
    let mut flags: libc::c_int = 0;
    ioctl_ptr(&f, FS_IOC_GETFLAGS, &mut flags).ctx("FS_IOC_GETFLAGS")?;
    Ok(flags)
}

fn getflags_and_setflags(env: &Env) -> Outcome {
    let on_real = getflags(&real(env, "flags"));
    tree(env).in_shifted(|t| {
        let got = getflags(&t.join("flags"));
        ensure_eq!(got, on_real, "flags through shiftfs vs on disk");
        let f = rfs::open(t.join("flags"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        let mut flags = got? | FS_NOATIME_FL;
        // The owner may set noatime (the file is owned by container 1000;
        // root of the container owns it through CAP_FOWNER in its namespace).
        ioctl_ptr(&f, FS_IOC_SETFLAGS, &mut flags).ctx("FS_IOC_SETFLAGS noatime")?;
        Ok(())
    })?;
    ensure!(
        getflags(&real(env, "flags"))? & FS_NOATIME_FL != 0,
        "noatime on disk"
    );
    Ok(())
}

fn append_only_flag_needs_cap_linux_immutable(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = rfs::open(t.join("flags"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        let mut flags = getflags(&t.join("flags"))? | FS_APPEND_FL;
        let res = ioctl_ptr(&f, FS_IOC_SETFLAGS, &mut flags);
        ensure_eq!(
            res.err(),
            Some(Errno::PERM),
            "FS_APPEND_FL from the container"
        );
        Ok(())
    })?;
    ensure!(
        getflags(&real(env, "flags"))? & FS_APPEND_FL == 0,
        "append-only set on disk"
    );
    // The host may, and the container then cannot write the file.
    let f = rfs::open(real(env, "flags"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
    let mut flags = getflags(&real(env, "flags"))? | FS_APPEND_FL;
    ioctl_ptr(&f, FS_IOC_SETFLAGS, &mut flags).ctx("host sets FS_APPEND_FL")?;
    let res = tree(env).in_shifted(|t| {
        let r = rfs::open(
            t.join("flags"),
            OFlags::WRONLY | OFlags::TRUNC,
            Mode::empty(),
        );
        ensure_eq!(
            r.err(),
            Some(Errno::PERM),
            "truncating open of an append-only file"
        );
        let g = rfs::open(
            t.join("flags"),
            OFlags::WRONLY | OFlags::APPEND,
            Mode::empty(),
        )
        .ctx("append-open")?;
        rustix::io::write(&g, b"+").ctx("append")?;
        ensure_eq!(
            rfs::unlink(t.join("flags")).err(),
            Some(Errno::PERM),
            "unlink append-only"
        );
        Ok(())
    });
    let mut flags = getflags(&real(env, "flags"))? & !FS_APPEND_FL;
    ioctl_ptr(&f, FS_IOC_SETFLAGS, &mut flags).ctx("host clears FS_APPEND_FL")?;
    res
}

/// `struct fsxattr`.
#[repr(C)]
#[derive(Default, Debug, PartialEq, Clone, Copy)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

fn fsgetxattr_and_fssetxattr(env: &Env) -> Outcome {
    let on_real = {
        let f = rfs::open(real(env, "flags"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        let mut x = FsXattr::default();
        ioctl_ptr(&f, FS_IOC_FSGETXATTR, &mut x).ctx("FSGETXATTR on disk")?;
        x
    };
    tree(env).in_shifted(|t| {
        let f = rfs::open(t.join("flags"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        let mut x = FsXattr::default();
        ioctl_ptr(&f, FS_IOC_FSGETXATTR, &mut x).ctx("FSGETXATTR")?;
        ensure_eq!(x, on_real, "fsxattr through shiftfs vs on disk");
        // Setting it back unchanged is allowed; a new project id is not,
        // from a user namespace.
        ioctl_ptr(&f, FS_IOC_FSSETXATTR, &mut x).ctx("FSSETXATTR unchanged")?;
        let mut y = FsXattr {
            projid: x.projid + 7,
            ..x
        };
        ensure_eq!(
            ioctl_ptr(&f, FS_IOC_FSSETXATTR, &mut y).err(),
            Some(Errno::INVAL),
            "new project id from a container"
        );
        Ok(())
    })
}

fn other_ioctls_are_enotty(env: &Env) -> Outcome {
    let tree = tree(env);
    // FS_IOC_GETVERSION reaches the real file (as with Ubuntu's shiftfs):
    // its answer there, from the host.
    let real = rfs::open(tree.real.join("src"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
    let mut on_disk = 0u64;
    let want = ioctl_ptr(&real, FS_IOC_GETVERSION, &mut on_disk).map(|()| on_disk as u32);
    tree.in_shifted(|t| {
        let f = rfs::open(t.join("src"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        let d = rfs::open(t, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ctx("open dir")?;
        let mut got = 0u64;
        let got = ioctl_ptr(&f, FS_IOC_GETVERSION, &mut got).map(|()| got as u32);
        ensure_eq!(got, want, "FS_IOC_GETVERSION, against the real file's");
        // BTRFS_IOC_SNAP_CREATE (carries a file descriptor: CVE-2021-3492)
        // and BTRFS_IOC_SUBVOL_CREATE (not btrfs, no passthrough), and a
        // made-up one.
        let mut arg = [0u8; 4096];
        for (name, req) in [
            ("BTRFS_IOC_SNAP_CREATE", 0x5000_9401u64),
            ("BTRFS_IOC_SUBVOL_CREATE", 0x5000_940e),
            ("made-up", 0xdead_beef),
        ] {
            for (what, fd) in [("file", f.as_raw_fd()), ("directory", d.as_raw_fd())] {
                // SAFETY: `arg` is larger than any of these requests reads.
                let r = unsafe { libc::ioctl(fd, req as libc::c_ulong, arg.as_mut_ptr()) };
                let e = std::io::Error::last_os_error().raw_os_error();
                ensure!(
                    r == -1 && e == Some(libc::ENOTTY),
                    "{name} on a {what}: {r} ({e:?}), expected ENOTTY"
                );
            }
        }
        Ok(())
    })
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
