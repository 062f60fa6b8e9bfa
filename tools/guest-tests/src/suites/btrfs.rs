//! `passthrough` bit 2 on a real btrfs: the subvolume ioctls Ubuntu's
//! shiftfs passed (for a nested LXD on btrfs), from a container through a
//! shifting mount, judged by btrfs as an unprivileged user's with the
//! container's ids shifted; snapshot creation, whose request names its
//! source by a file descriptor, is EOPNOTSUPP; every other btrfs request is
//! ENOTTY; and without bit 2 (or on another filesystem) all of them are.
//! Both with raw ioctls (exact errnos) and with btrfs-progs, as LXD runs
//! it.

use crate::{
    container, ensure, ensure_eq,
    fixture::{load, unload},
    harness::{Context, Outcome},
    reliability::{self as rel, sh},
    sys::FS_NAME,
    tests, Env,
};
use rustix::{
    fs::{self as rfs, stat, statfs, Mode, OFlags},
    mount::{mount, mount_remount, unmount, MountFlags, UnmountFlags},
};
use std::{
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_makes_a_btrfs,
    statfs_shows_btrfs_with_bit_1,
    fs_info_passes,
    subvolume_create_lands_owned_by_the_container,
    subvolume_create_v2_passes,
    read_only_flag_round_trips,
    other_subvolume_flags_are_eopnotsupp,
    snapshot_creation_is_eopnotsupp,
    snapshot_destroy_needs_user_subvol_rm_allowed,
    other_btrfs_ioctls_are_enotty,
    without_bit_2_nothing_passes,
    btrfs_progs_in_the_container,
    host_removes_the_btrfs,
    unload,
];

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;

/// `_IOC(dir, 0x94, nr, size)`.
const fn btrfs_ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (0x94 << 8) | nr
}
const W: u64 = 1;
const R: u64 = 2;
const VOL_ARGS: u64 = 4096;
const FS_INFO: u64 = btrfs_ioc(R, 31, 1024);
const SNAP_CREATE: u64 = btrfs_ioc(W, 1, VOL_ARGS);
const SUBVOL_CREATE: u64 = btrfs_ioc(W, 14, VOL_ARGS);
const SNAP_DESTROY: u64 = btrfs_ioc(W, 15, VOL_ARGS);
const SNAP_CREATE_V2: u64 = btrfs_ioc(W, 23, VOL_ARGS);
const SUBVOL_CREATE_V2: u64 = btrfs_ioc(W, 24, VOL_ARGS);
const SUBVOL_GETFLAGS: u64 = btrfs_ioc(R, 25, 8);
const SUBVOL_SETFLAGS: u64 = btrfs_ioc(W, 26, 8);
const SUBVOL_RDONLY: u64 = 1 << 1;
/// The subvolume root's inode number (BTRFS_FIRST_FREE_OBJECTID).
const SUBVOL_ROOT_INO: u64 = 256;

fn dir(env: &Env) -> PathBuf {
    env.scratch.join("btrfs")
}

/// The btrfs mount, and in it the tree LXD would mark: a container's
/// rootfs-to-be, owned by on-disk 0, with a file of on-disk 1000.
fn mnt(env: &Env) -> PathBuf {
    dir(env).join("mnt")
}

fn rootfs(env: &Env) -> PathBuf {
    mnt(env).join("rootfs")
}

fn device(env: &Env) -> Result<String, String> {
    std::fs::read_to_string(dir(env).join("device"))
        .map(|s| s.trim().to_owned())
        .ctx("read device")
}

fn host_makes_a_btrfs(env: &Env) -> Outcome {
    let d = dir(env);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(mnt(env)).ctx("mkdir")?;
    let image = d.join("image");
    // Sparse: only what mkfs and the tests write takes memory.
    let f = std::fs::File::create(&image).ctx("create image")?;
    f.set_len(256 << 20).ctx("size image")?;
    drop(f);
    let img = image.to_str().ok_or("path is not UTF-8")?;
    sh("mkfs.btrfs", &["-q", "-f", img])?;
    let dev = sh("losetup", &["-f", "--show", img])?.trim().to_owned();
    std::fs::write(d.join("device"), &dev).ctx("write device")?;
    // Without user_subvol_rm_allowed at first (see the destroy test).
    mount(&dev, mnt(env), "btrfs", MountFlags::empty(), c"").ctx("mount btrfs")?;
    let r = rootfs(env);
    std::fs::create_dir(&r).ctx("mkdir rootfs")?;
    std::fs::write(r.join("file"), b"data").ctx("write")?;
    std::os::unix::fs::chown(r.join("file"), Some(1000), Some(1000)).ctx("chown")
}

fn host_removes_the_btrfs(env: &Env) -> Outcome {
    unmount(mnt(env), UnmountFlags::empty()).ctx("umount btrfs")?;
    sh("losetup", &["-d", &device(env)?])?;
    std::fs::remove_dir_all(dir(env)).ctx("rm -r")
}

/// Runs `f` in a container on a shifting mount of the rootfs over itself
/// with `opts`, under a host mark with `mark,passthrough=3` (LXD's hooks).
fn in_container(env: &Env, opts: &std::ffi::CStr, f: impl FnOnce(&Path) -> Outcome) -> Outcome {
    let r = rootfs(env);
    mount(&r, &r, FS_NAME, MountFlags::empty(), c"mark,passthrough=3").ctx("mark")?;
    let res = container::run(|| {
        mount(&r, &r, FS_NAME, MountFlags::empty(), opts).ctx("shifting mount")?;
        f(&r)
    });
    unmount(&r, UnmountFlags::empty()).ctx("umount mark")?;
    res
}

fn open_dir(p: &Path) -> Result<OwnedFd, String> {
    rfs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ctx("open dir")
}

/// `struct btrfs_ioctl_vol_args` (and of `_v2`, whose name is at offset 56,
/// after the descriptor, transid, flags and a 32-byte union): a descriptor
/// and a name, 4096 bytes.
fn vol_args(fd: i64, name: &str, v2: bool) -> Vec<u8> {
    let mut a = vec![0u8; VOL_ARGS as usize];
    a[..8].copy_from_slice(&fd.to_le_bytes());
    let at = if v2 { 56 } else { 8 };
    a[at..at + name.len()].copy_from_slice(name.as_bytes());
    a
}

fn ioctl_buf(fd: &OwnedFd, req: u64, buf: &mut [u8]) -> Result<i32, i32> {
    rel::ioctl(fd, req, buf.as_mut_ptr() as usize)
}

fn get_flags(fd: &OwnedFd) -> Result<u64, i32> {
    let mut flags = 0u64;
    rel::ioctl(fd, SUBVOL_GETFLAGS, &raw mut flags as usize)?;
    Ok(flags)
}

fn set_flags(fd: &OwnedFd, mut flags: u64) -> Result<i32, i32> {
    rel::ioctl(fd, SUBVOL_SETFLAGS, &raw mut flags as usize)
}

fn statfs_shows_btrfs_with_bit_1(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        ensure_eq!(
            statfs(r).ctx("statfs")?.f_type,
            BTRFS_SUPER_MAGIC,
            "f_type (LXD's backend detection)"
        );
        Ok(())
    })
}

fn fs_info_passes(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let d = open_dir(r)?;
        let mut info = vec![0u8; 1024];
        ensure_eq!(
            ioctl_buf(&d, FS_INFO, &mut info),
            Ok(0),
            "BTRFS_IOC_FS_INFO"
        );
        // max_id (u64), then num_devices (u64).
        let devices = u64::from_le_bytes(info[8..16].try_into().expect("8 bytes"));
        ensure_eq!(devices, 1, "num_devices");
        Ok(())
    })
}

fn subvolume_create_lands_owned_by_the_container(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let d = open_dir(r)?;
        let mut a = vol_args(0, "sv", false);
        ensure_eq!(
            ioctl_buf(&d, SUBVOL_CREATE, &mut a),
            Ok(0),
            "BTRFS_IOC_SUBVOL_CREATE"
        );
        let st = stat(r.join("sv")).ctx("stat the subvolume")?;
        ensure_eq!((st.st_uid, st.st_gid), (0, 0), "its owner in the container");
        ensure_eq!(st.st_ino, SUBVOL_ROOT_INO, "a subvolume root");
        std::fs::write(r.join("sv/inside"), b"x").ctx("write in it")?;
        Ok(())
    })?;
    // On disk: the container's root is on-disk 0 (shiftfs's identity map
    // within the container), and it is a subvolume there too.
    let sv = rootfs(env).join("sv");
    let st = stat(&sv).ctx("stat on disk")?;
    ensure_eq!(
        (st.st_uid, st.st_ino),
        (0, SUBVOL_ROOT_INO),
        "owner and inode on disk"
    );
    ensure_eq!(
        stat(sv.join("inside")).ctx("stat")?.st_uid,
        0,
        "file in it on disk"
    );
    Ok(())
}

fn subvolume_create_v2_passes(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let d = open_dir(r)?;
        let mut a = vol_args(0, "sv2", true);
        ensure_eq!(
            ioctl_buf(&d, SUBVOL_CREATE_V2, &mut a),
            Ok(0),
            "BTRFS_IOC_SUBVOL_CREATE_V2"
        );
        ensure_eq!(
            stat(r.join("sv2")).ctx("stat")?.st_ino,
            SUBVOL_ROOT_INO,
            "a subvolume root"
        );
        Ok(())
    })
}

fn read_only_flag_round_trips(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let sv = open_dir(&r.join("sv"))?;
        ensure_eq!(get_flags(&sv), Ok(0), "flags of a new subvolume");
        ensure_eq!(set_flags(&sv, SUBVOL_RDONLY), Ok(0), "set read-only");
        ensure_eq!(get_flags(&sv), Ok(SUBVOL_RDONLY), "flags after");
        let w = std::fs::write(r.join("sv/new"), b"x").map_err(|e| e.raw_os_error());
        ensure_eq!(
            w,
            Err(Some(libc::EROFS)),
            "write into a read-only subvolume"
        );
        ensure_eq!(set_flags(&sv, 0), Ok(0), "clear read-only");
        std::fs::write(r.join("sv/new"), b"x").ctx("write after clearing")?;
        Ok(())
    })?;
    // The host's own view of the flag agrees.
    let sv = open_dir(&rootfs(env).join("sv"))?;
    ensure_eq!(get_flags(&sv), Ok(0), "flags on the host");
    Ok(())
}

fn other_subvolume_flags_are_eopnotsupp(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let sv = open_dir(&r.join("sv"))?;
        for flags in [1u64, 1 << 2, SUBVOL_RDONLY | 1 << 3, u64::MAX] {
            ensure_eq!(
                set_flags(&sv, flags),
                Err(libc::EOPNOTSUPP),
                format!("SUBVOL_SETFLAGS {flags:#x}")
            );
        }
        // A bad address is EFAULT, not a crash.
        ensure_eq!(
            rel::ioctl(&sv, SUBVOL_SETFLAGS, 0x10),
            Err(libc::EFAULT),
            "SUBVOL_SETFLAGS at a bad address"
        );
        ensure_eq!(get_flags(&sv), Ok(0), "flags unchanged");
        Ok(())
    })
}

fn snapshot_creation_is_eopnotsupp(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let d = open_dir(r)?;
        let src = open_dir(&r.join("sv"))?;
        let fd = i64::from(src.as_raw_fd());
        // Nothing is put in (or taken from) the caller's descriptor table.
        let before = open_fds()?;
        for (name, req, v2) in [
            ("SNAP_CREATE", SNAP_CREATE, false),
            ("SNAP_CREATE_V2", SNAP_CREATE_V2, true),
        ] {
            let mut a = vol_args(fd, "snap", v2);
            ensure_eq!(
                ioctl_buf(&d, req, &mut a),
                Err(libc::EOPNOTSUPP),
                format!("BTRFS_IOC_{name}")
            );
        }
        ensure!(!r.join("snap").exists(), "a snapshot was made");
        ensure_eq!(open_fds()?, before, "the caller's descriptors");
        Ok(())
    })
}

/// The calling process's open descriptors and what they are.
fn open_fds() -> Result<Vec<(String, PathBuf)>, String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").ctx("read /proc/self/fd")? {
        let e = e.ctx("entry")?;
        // The directory's own descriptor is gone by now.
        if let Ok(target) = std::fs::read_link(e.path()) {
            v.push((e.file_name().to_string_lossy().into_owned(), target));
        }
    }
    v.sort();
    Ok(v)
}

fn destroy(r: &Path, name: &str) -> Result<i32, i32> {
    let d = rfs::open(r, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| e.raw_os_error())?;
    let mut a = vol_args(0, name, false);
    ioctl_buf(&d, SNAP_DESTROY, &mut a)
}

fn snapshot_destroy_needs_user_subvol_rm_allowed(env: &Env) -> Outcome {
    // Judged as an unprivileged user's: without the mount option, EPERM
    // (root on the host could).
    in_container(env, c"passthrough=3", |r| {
        ensure_eq!(
            destroy(r, "sv2"),
            Err(libc::EPERM),
            "SNAP_DESTROY without user_subvol_rm_allowed"
        );
        ensure!(r.join("sv2").exists(), "sv2 went away");
        Ok(())
    })?;
    mount_remount(mnt(env), MountFlags::empty(), c"user_subvol_rm_allowed")
        .ctx("remount user_subvol_rm_allowed")?;
    in_container(env, c"passthrough=3", |r| {
        ensure_eq!(destroy(r, "sv2"), Ok(0), "SNAP_DESTROY");
        ensure_eq!(
            stat(r.join("sv2")).map(drop),
            Err(rustix::io::Errno::NOENT),
            "sv2 after destroy"
        );
        ensure_eq!(destroy(r, "sv2"), Err(libc::ENOENT), "SNAP_DESTROY again");
        // Not a subvolume root: EINVAL, as btrfs says.
        std::fs::create_dir(r.join("plain")).ctx("mkdir")?;
        ensure_eq!(
            destroy(r, "plain"),
            Err(libc::EINVAL),
            "SNAP_DESTROY of a directory"
        );
        Ok(())
    })?;
    ensure!(
        !rootfs(env).join("sv2").exists(),
        "sv2 still there on the host"
    );
    Ok(())
}

fn other_btrfs_ioctls_are_enotty(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let d = open_dir(r)?;
        let f = rfs::open(r.join("file"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        let allowed = [
            FS_INFO,
            SNAP_CREATE,
            SUBVOL_CREATE,
            SNAP_DESTROY,
            SNAP_CREATE_V2,
            SUBVOL_CREATE_V2,
            SUBVOL_GETFLAGS,
            SUBVOL_SETFLAGS,
        ];
        let mut buf = vec![0u8; 1 << 15];
        let mut bad = Vec::new();
        let mut tried = 0;
        for nr in 0..=63u64 {
            for (dir, size) in [(0, 0), (W, VOL_ARGS), (R, 8), (W | R, VOL_ARGS), (R, 1024)] {
                let req = btrfs_ioc(dir, nr, size);
                if allowed.contains(&req) {
                    continue;
                }
                for fd in [&d, &f] {
                    tried += 1;
                    let r = ioctl_buf(fd, req, &mut buf);
                    if r != Err(libc::ENOTTY) {
                        bad.push(format!("{req:#x}: {r:?}"));
                    }
                }
            }
        }
        rel::info(&format!("btrfs: {tried} other btrfs requests tried"));
        ensure!(bad.is_empty(), "not ENOTTY: {bad:?}");
        Ok(())
    })
}

fn without_bit_2_nothing_passes(env: &Env) -> Outcome {
    for opts in [c"passthrough=1", c""] {
        in_container(env, opts, |r| {
            let d = open_dir(r)?;
            let mut a = vol_args(0, "nope", false);
            ensure_eq!(
                ioctl_buf(&d, SUBVOL_CREATE, &mut a),
                Err(libc::ENOTTY),
                format!("SUBVOL_CREATE with {opts:?}")
            );
            let mut info = vec![0u8; 1024];
            ensure_eq!(
                ioctl_buf(&d, FS_INFO, &mut info),
                Err(libc::ENOTTY),
                format!("FS_INFO with {opts:?}")
            );
            let sv = open_dir(&r.join("sv"))?;
            ensure_eq!(
                get_flags(&sv),
                Err(libc::ENOTTY),
                format!("SUBVOL_GETFLAGS with {opts:?}")
            );
            ensure!(!r.join("nope").exists(), "a subvolume was made");
            Ok(())
        })?;
    }
    Ok(())
}

fn btrfs_progs_in_the_container(env: &Env) -> Outcome {
    in_container(env, c"passthrough=3", |r| {
        let p = |rel: &str| r.join(rel).to_string_lossy().into_owned();
        sh("btrfs", &["subvolume", "create", &p("progs")])?;
        sh("btrfs", &["property", "set", &p("progs"), "ro", "true"])?;
        let ro = sh("btrfs", &["property", "get", &p("progs"), "ro"])?;
        ensure!(ro.contains("ro=true"), "property get ro: {ro}");
        sh("btrfs", &["property", "set", &p("progs"), "ro", "false"])?;
        let snap = sh(
            "btrfs",
            &["subvolume", "snapshot", &p("progs"), &p("progs-snap")],
        );
        ensure!(
            matches!(&snap, Err(e) if e.contains("Operation not supported")),
            "btrfs subvolume snapshot: {snap:?}"
        );
        // btrfs-progs 6.2 looks the subvolume's id up first
        // (BTRFS_IOC_INO_LOOKUP, BTRFS_IOC_TREE_SEARCH), which is not in
        // the list: it fails; the ioctl it would then make works.
        let del = sh("btrfs", &["subvolume", "delete", &p("progs")]);
        ensure!(del.is_err(), "btrfs subvolume delete: {del:?}");
        ensure_eq!(destroy(r, "progs"), Ok(0), "SNAP_DESTROY of progs");
        ensure!(!r.join("progs").exists(), "progs still there");
        Ok(())
    })
}
