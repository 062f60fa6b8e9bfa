//! ioctls: only the whitelist (the inode flags and fsxattr requests,
//! answered by the VFS through shiftfs's file attribute operations; and
//! FS_IOC_GETVERSION, forwarded to the real file) passes through a shifting
//! mount of a tree that is not btrfs; every other request is ENOTTY,
//! unless the VFS answers it before any filesystem sees it.

use super::{shift_mount, tree};
use crate::{
    container, ensure, ensure_eq,
    harness::{Context, Outcome},
    reliability as rel, Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags},
    mount::{mount, MountFlags},
};
use std::os::fd::{AsRawFd, OwnedFd};

/// The requests that pass: four the VFS answers through shiftfs, and
/// FS_IOC_GETVERSION, forwarded to the real file (ext4 here answers it).
/// (FS_IOC32_GETFLAGS/SETFLAGS are translated only for 32-bit callers:
/// ENOTTY here, as on any filesystem.)
pub(super) const WHITELIST: [u64; 5] = [
    0x8008_6601, // FS_IOC_GETFLAGS
    0x4008_6602, // FS_IOC_SETFLAGS
    0x801c_581f, // FS_IOC_FSGETXATTR
    0x401c_5820, // FS_IOC_FSSETXATTR
    0x8008_7601, // FS_IOC_GETVERSION
];

/// Requests to try: every number of the 'f' (FS_IOC_*, EXT4_IOC_*), 'X'
/// (XFS, FIFREEZE), 0x94 (BTRFS_IOC_*, FICLONE), 'v' and 0x15 ranges in
/// each direction with a few sizes, and a few made-up ones.
pub(super) fn requests() -> Vec<u64> {
    let mut v = Vec::new();
    let dirs = [0u64, 1, 2, 3];
    for (ty, nrs, sizes) in [
        (0x66u64, 0..=255u64, &[0u64, 4, 8, 16, 24, 32, 56, 128][..]),
        (0x58, 0..=127, &[0, 4, 8, 28, 32, 48, 64, 112][..]),
        (0x94, 0..=63, &[0, 4, 8, 24, 32, 4096, 1024, 3072][..]),
        (0x76, 0..=15, &[0, 4, 8][..]),
        (0x15, 0..=3, &[0, 17, 129][..]),
    ] {
        for nr in nrs {
            for &size in sizes {
                for &d in &dirs {
                    if d == 0 && size != 0 {
                        continue;
                    }
                    v.push((d << 30) | (size << 16) | (ty << 8) | nr);
                }
            }
        }
    }
    v.extend([0xdead_beef, 0x1234, 0x5401, 0xc000_0000, 0xffff_ffff]);
    v
}

/// ioctl numbers handled by the VFS before any filesystem sees them: the
/// same answer on tmpfs (no ioctls of its own beyond the flags) says so.
fn vfs_answers(tmp_file: &OwnedFd, tmp_dir: &OwnedFd, req: u64, buf: usize) -> (bool, bool) {
    (
        rel::ioctl(tmp_file, req, buf) != Err(libc::ENOTTY),
        rel::ioctl(tmp_dir, req, buf) != Err(libc::ENOTTY),
    )
}

pub(super) fn ioctls_outside_the_whitelist_are_enotty(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let t = &target;
        // A tmpfs of the container's own as the reference for what the
        // VFS answers itself.
        let refdir = t.join("ovl/m");
        mount("ref", &refdir, "tmpfs", MountFlags::empty(), c"").ctx("tmpfs")?;
        std::fs::write(refdir.join("f"), b"reference").ctx("create")?;
        let tf = rfs::open(refdir.join("f"), OFlags::RDWR, Mode::empty()).ctx("open")?;
        let td =
            rfs::open(&refdir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ctx("open")?;
        let f = rfs::open(t.join("own/file"), OFlags::RDWR, Mode::empty()).ctx("open")?;
        let d = rfs::open(
            t.join("own"),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .ctx("open dir")?;
        // Room for the largest size a request can name; carries a valid
        // fd first, for requests that take one (BTRFS_IOC_SNAP_CREATE).
        let mut buf = vec![0u8; 1 << 15];
        buf[..8].copy_from_slice(&(d.as_raw_fd() as i64).to_le_bytes());
        let mut bad = Vec::new();
        let (mut tried, mut vfs) = (0, 0);
        for req in requests() {
            if WHITELIST.contains(&req) {
                continue;
            }
            let (vf, vd) = vfs_answers(&tf, &td, req, buf.as_mut_ptr() as usize);
            for (what, fd, by_vfs) in [("file", &f, vf), ("dir", &d, vd)] {
                tried += 1;
                // Reset the buffer's fd, which a request may have changed.
                buf[..8].copy_from_slice(&(d.as_raw_fd() as i64).to_le_bytes());
                let r = rel::ioctl(fd, req, buf.as_mut_ptr() as usize);
                if by_vfs {
                    vfs += 1;
                } else if r != Err(libc::ENOTTY) {
                    bad.push(format!("{req:#x} on a {what}: {r:?}"));
                }
            }
        }
        rel::info(&format!(
            "hostile: {tried} ioctl calls, {vfs} answered by the VFS (as on tmpfs), {} not ENOTTY",
            bad.len()
        ));
        ensure!(
            bad.is_empty(),
            "{} requests not ENOTTY: {:?}",
            bad.len(),
            &bad[..bad.len().min(10)]
        );
        // The mount and the fs beneath it are fine.
        ensure_eq!(
            std::fs::read(t.join("own/file")).ctx("read")?,
            b"own file",
            "file after the ioctls"
        );
        std::fs::write(t.join("own/after-ioctls"), b"x").ctx("write after the ioctls")?;
        rfs::unlink(t.join("own/after-ioctls")).ctx("unlink")?;
        Ok(())
    })
}
