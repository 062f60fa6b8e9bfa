//! Coherent with the host: what a process on the host and one in a
//! container do to the same file through the real path and a shifting
//! mount must work as on one filesystem.
//!
//! - `flock`, POSIX (`fcntl`) and OFD locks exclude each other both ways,
//!   a blocking lock waits for the other side, and a container's locks go
//!   with its close or its exit.
//! - `/proc/PID/maps` and `/proc/PID/fd` show the shiftfs path.
//! - File handles: fids (`AT_HANDLE_FID`, fanotify `FAN_REPORT_FID`) work
//!   through a shifting mount; decodable handles are EOPNOTSUPP (no export
//!   operations: Documentation/shiftfs.rst says why).
//! - Unix sockets: bound and connected on one side they work; across the
//!   two (host binds on the real path, the container connects through the
//!   shifting mount, or the other way) the connect is ECONNREFUSED, a
//!   documented limit: af_unix finds a bound socket by the inode of the
//!   path's own dentry, a different inode on each side of a stacked
//!   filesystem.

use crate::{
    container, ensure, ensure_eq,
    fixture::{load, unload, Tree},
    harness::{Context, Outcome},
    reliability, tests, Env,
};
use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::{
        fd::{AsRawFd, RawFd},
        unix::net::{UnixListener, UnixStream},
    },
    path::Path,
    time::{Duration, Instant},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    host_flock_holds_off_the_container,
    container_flock_holds_off_the_host,
    host_posix_lock_holds_off_the_container,
    container_posix_lock_holds_off_the_host,
    closing_any_descriptor_drops_the_containers_posix_locks,
    ofd_locks_exclude_both_ways,
    blocking_lock_waits_for_the_host,
    an_exited_containers_locks_are_gone,
    directory_flock_excludes_both_ways,
    maps_and_fd_show_the_shiftfs_path,
    fids_work_and_decodable_handles_are_eopnotsupp,
    unix_sockets_connect_on_one_side_only,
    host_unmarks,
    unload,
];

fn tree(env: &Env) -> Tree {
    Tree::new(env, "coherence")
}

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    for name in ["locked", "mapped", "handle"] {
        let f = tree.real.join(name);
        std::fs::write(&f, vec![7u8; 8192]).ctx("create")?;
        std::os::unix::fs::chown(&f, Some(1000), Some(1000)).ctx("chown")?;
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .ctx("chmod")?;
    }
    std::fs::create_dir_all(tree.real.join("lockdir")).ctx("mkdir")?;
    tree.mark()
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}

fn open_rw(p: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .ctx(&format!("open {}", p.display()))
}

/// `flock(fd, op)`: Ok or the errno.
fn flock(fd: RawFd, op: i32) -> Result<(), i32> {
    // SAFETY: a plain syscall on a descriptor the caller holds.
    match unsafe { libc::flock(fd, op) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

/// A byte-range lock command (`F_SETLK`, `F_OFD_GETLK`, ...) on
/// `[start, start + len)`: the lock `F_GETLK` found, or the errno.
fn range_lock(fd: RawFd, cmd: i32, ty: i32, start: i64, len: i64) -> Result<libc::flock, i32> {
    let mut fl = libc::flock {
        l_type: ty as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: start,
        l_len: len,
        l_pid: 0,
    };
    // SAFETY: a plain syscall with a lock description that lives across it.
    match unsafe { libc::fcntl(fd, cmd, &mut fl) } {
        0 => Ok(fl),
        _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

fn host_flock_holds_off_the_container(env: &Env) -> Outcome {
    let tree = tree(env);
    let host = open_rw(&tree.real.join("locked"))?;
    flock(host.as_raw_fd(), libc::LOCK_EX).map_err(|e| format!("host flock: errno {e}"))?;
    tree.in_shifted(|t| {
        let f = open_rw(&t.join("locked"))?;
        let fd = f.as_raw_fd();
        ensure_eq!(
            flock(fd, libc::LOCK_EX | libc::LOCK_NB),
            Err(libc::EWOULDBLOCK),
            "container flock while the host holds it"
        );
        ensure_eq!(
            flock(fd, libc::LOCK_SH | libc::LOCK_NB),
            Err(libc::EWOULDBLOCK),
            "shared flock while the host holds it"
        );
        Ok(())
    })?;
    drop(host);
    tree.in_shifted(|t| {
        let f = open_rw(&t.join("locked"))?;
        ensure_eq!(
            flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
            Ok(()),
            "container flock once the host closed"
        );
        Ok(())
    })
}

fn container_flock_holds_off_the_host(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    let real = tree.real.join("locked");
    container::with_host_mapped(
        container::MAP,
        move || {
            mount_shifted(&mark, &target)?;
            let f = open_rw(&target.join("locked"))?;
            flock(f.as_raw_fd(), libc::LOCK_EX)
                .map_err(|e| format!("container flock: errno {e}"))?;
            // Held until the container exits.
            std::mem::forget(f);
            Ok(())
        },
        |_| {
            let host = open_rw(&real)?;
            ensure_eq!(
                flock(host.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
                Err(libc::EWOULDBLOCK),
                "host flock while the container holds it"
            );
            Ok(())
        },
    )?;
    let host = open_rw(&tree.real.join("locked"))?;
    ensure_eq!(
        flock(host.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
        Ok(()),
        "host flock after the container exited"
    );
    Ok(())
}

fn mount_shifted(mark: &Path, target: &Path) -> Outcome {
    rustix::mount::mount(
        mark,
        target,
        "shiftfs",
        rustix::mount::MountFlags::empty(),
        c"",
    )
    .ctx("shifting mount")
}

fn host_posix_lock_holds_off_the_container(env: &Env) -> Outcome {
    let tree = tree(env);
    let host = open_rw(&tree.real.join("locked"))?;
    range_lock(host.as_raw_fd(), libc::F_SETLK, libc::F_WRLCK, 0, 100)
        .map_err(|e| format!("host lock: errno {e}"))?;
    tree.in_shifted(|t| {
        let f = open_rw(&t.join("locked"))?;
        let fd = f.as_raw_fd();
        ensure_eq!(
            range_lock(fd, libc::F_SETLK, libc::F_WRLCK, 50, 10).map(|_| ()),
            Err(libc::EAGAIN),
            "container lock over the host's range"
        );
        let found = range_lock(fd, libc::F_GETLK, libc::F_WRLCK, 50, 10)
            .map_err(|e| format!("F_GETLK: errno {e}"))?;
        ensure_eq!(
            (found.l_type as i32, found.l_start, found.l_len),
            (libc::F_WRLCK, 0, 100),
            "the lock F_GETLK reports"
        );
        ensure_eq!(
            range_lock(fd, libc::F_SETLK, libc::F_WRLCK, 100, 100).map(|_| ()),
            Ok(()),
            "container lock beside the host's range"
        );
        Ok(())
    })
}

fn container_posix_lock_holds_off_the_host(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    let real = tree.real.join("locked");
    container::with_host_mapped(
        container::MAP,
        move || {
            mount_shifted(&mark, &target)?;
            let f = open_rw(&target.join("locked"))?;
            range_lock(f.as_raw_fd(), libc::F_SETLK, libc::F_RDLCK, 10, 10)
                .map_err(|e| format!("container lock: errno {e}"))?;
            std::mem::forget(f);
            Ok(())
        },
        |_| {
            let host = open_rw(&real)?;
            let fd = host.as_raw_fd();
            ensure_eq!(
                range_lock(fd, libc::F_SETLK, libc::F_WRLCK, 0, 0).map(|_| ()),
                Err(libc::EAGAIN),
                "host write lock over the container's read lock"
            );
            ensure_eq!(
                range_lock(fd, libc::F_SETLK, libc::F_RDLCK, 0, 0).map(|_| ()),
                Ok(()),
                "host read lock beside the container's read lock"
            );
            Ok(())
        },
    )
}

fn closing_any_descriptor_drops_the_containers_posix_locks(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    let real = tree.real.join("locked");
    container::with_host_mapped(
        container::MAP,
        move || {
            mount_shifted(&mark, &target)?;
            let f = open_rw(&target.join("locked"))?;
            range_lock(f.as_raw_fd(), libc::F_SETLK, libc::F_WRLCK, 0, 0)
                .map_err(|e| format!("container lock: errno {e}"))?;
            // POSIX: closing any descriptor of the file drops the
            // process's locks on it, though `f` stays open.
            drop(open_rw(&target.join("locked"))?);
            std::mem::forget(f);
            Ok(())
        },
        |_| {
            let host = open_rw(&real)?;
            ensure_eq!(
                range_lock(host.as_raw_fd(), libc::F_SETLK, libc::F_WRLCK, 0, 0).map(|_| ()),
                Ok(()),
                "host lock after the container closed another descriptor"
            );
            Ok(())
        },
    )
}

fn ofd_locks_exclude_both_ways(env: &Env) -> Outcome {
    let tree = tree(env);
    let host = open_rw(&tree.real.join("locked"))?;
    range_lock(host.as_raw_fd(), libc::F_OFD_SETLK, libc::F_WRLCK, 0, 10)
        .map_err(|e| format!("host OFD lock: errno {e}"))?;
    tree.in_shifted(|t| {
        let f = open_rw(&t.join("locked"))?;
        ensure_eq!(
            range_lock(f.as_raw_fd(), libc::F_OFD_SETLK, libc::F_RDLCK, 5, 1).map(|_| ()),
            Err(libc::EAGAIN),
            "container OFD lock over the host's"
        );
        let found = range_lock(f.as_raw_fd(), libc::F_OFD_GETLK, libc::F_RDLCK, 5, 1)
            .map_err(|e| format!("F_OFD_GETLK: errno {e}"))?;
        ensure_eq!(
            (found.l_type as i32, found.l_pid),
            (libc::F_WRLCK, -1),
            "the OFD lock F_OFD_GETLK reports"
        );
        Ok(())
    })?;
    drop(host);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    let real = tree.real.join("locked");
    container::with_host_mapped(
        container::MAP,
        move || {
            mount_shifted(&mark, &target)?;
            let f = open_rw(&target.join("locked"))?;
            range_lock(f.as_raw_fd(), libc::F_OFD_SETLK, libc::F_WRLCK, 0, 10)
                .map_err(|e| format!("container OFD lock: errno {e}"))?;
            std::mem::forget(f);
            Ok(())
        },
        |_| {
            let host = open_rw(&real)?;
            ensure_eq!(
                range_lock(host.as_raw_fd(), libc::F_OFD_SETLK, libc::F_RDLCK, 0, 1).map(|_| ()),
                Err(libc::EAGAIN),
                "host OFD lock over the container's"
            );
            Ok(())
        },
    )?;
    let host = open_rw(&tree.real.join("locked"))?;
    ensure_eq!(
        range_lock(host.as_raw_fd(), libc::F_OFD_SETLK, libc::F_WRLCK, 0, 10).map(|_| ()),
        Ok(()),
        "host OFD lock after the container exited"
    );
    Ok(())
}

fn blocking_lock_waits_for_the_host(env: &Env) -> Outcome {
    let tree = tree(env);
    let real = tree.real.join("locked");
    let hold = Duration::from_millis(800);
    // The host's lock is held by a helper process (the test binary forks
    // containers, so it stays single-threaded), which exits after `hold`.
    let (locked_r, locked_w) = nix::unistd::pipe().ctx("pipe")?;
    // The child writes to its copy of the pipe by number: the closure is
    // dropped in the parent, which must keep its own ends.
    let signal = locked_w.as_raw_fd();
    let holder = reliability::spawn(move || {
        let f = open_rw(&real)?;
        range_lock(f.as_raw_fd(), libc::F_SETLK, libc::F_WRLCK, 0, 0)
            .map_err(|e| format!("host lock: errno {e}"))?;
        // SAFETY: a one-byte write to the pipe inherited from the parent.
        let _ = unsafe { libc::write(signal, b"l".as_ptr().cast(), 1) };
        std::thread::sleep(hold);
        Ok(String::new())
    })?;
    drop(locked_w);
    let mut b = [0u8; 1];
    nix::unistd::read(&locked_r, &mut b).ctx("wait for the host's lock")?;
    let res = tree.in_shifted(|t| {
        let f = open_rw(&t.join("locked"))?;
        let start = Instant::now();
        range_lock(f.as_raw_fd(), libc::F_SETLKW, libc::F_WRLCK, 0, 0)
            .map_err(|e| format!("F_SETLKW: errno {e}"))?;
        let waited = start.elapsed();
        ensure!(
            waited >= hold / 2,
            "F_SETLKW returned after {waited:?}, before the host let go"
        );
        Ok(())
    });
    holder.wait()?;
    res
}

fn an_exited_containers_locks_are_gone(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.in_shifted(|t| {
        for (name, fd) in [
            ("posix", open_rw(&t.join("locked"))?),
            ("ofd", open_rw(&t.join("locked"))?),
            ("flock", open_rw(&t.join("locked"))?),
        ] {
            let r = match name {
                "posix" => {
                    range_lock(fd.as_raw_fd(), libc::F_SETLK, libc::F_WRLCK, 0, 1).map(|_| ())
                }
                "ofd" => {
                    range_lock(fd.as_raw_fd(), libc::F_OFD_SETLK, libc::F_WRLCK, 1, 1).map(|_| ())
                }
                _ => flock(fd.as_raw_fd(), libc::LOCK_EX),
            };
            r.map_err(|e| format!("container {name} lock: errno {e}"))?;
            // Never unlocked, never closed: the exit must drop it.
            std::mem::forget(fd);
        }
        Ok(())
    })?;
    let host = open_rw(&tree.real.join("locked"))?;
    let fd = host.as_raw_fd();
    // Byte 0 (the container's POSIX lock), then byte 1 (its OFD lock) by
    // another open file: POSIX and OFD locks of one process conflict.
    ensure_eq!(
        range_lock(fd, libc::F_SETLK, libc::F_WRLCK, 0, 1).map(|_| ()),
        Ok(()),
        "host POSIX lock"
    );
    ensure_eq!(
        flock(fd, libc::LOCK_EX | libc::LOCK_NB),
        Ok(()),
        "host flock"
    );
    let other = open_rw(&tree.real.join("locked"))?;
    ensure_eq!(
        range_lock(other.as_raw_fd(), libc::F_OFD_SETLK, libc::F_RDLCK, 1, 1).map(|_| ()),
        Ok(()),
        "host OFD lock"
    );
    Ok(())
}

fn directory_flock_excludes_both_ways(env: &Env) -> Outcome {
    let tree = tree(env);
    let host = File::open(tree.real.join("lockdir")).ctx("open dir")?;
    flock(host.as_raw_fd(), libc::LOCK_EX).map_err(|e| format!("host flock dir: errno {e}"))?;
    tree.in_shifted(|t| {
        let d = File::open(t.join("lockdir")).ctx("open dir")?;
        ensure_eq!(
            flock(d.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB),
            Err(libc::EWOULDBLOCK),
            "container flock of the directory"
        );
        Ok(())
    })?;
    drop(host);
    tree.in_shifted(|t| {
        let d = File::open(t.join("lockdir")).ctx("open dir")?;
        ensure_eq!(
            flock(d.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
            Ok(()),
            "container flock of the directory once free"
        );
        Ok(())
    })
}

fn maps_and_fd_show_the_shiftfs_path(env: &Env) -> Outcome {
    let tree = tree(env);
    let real = tree.real.to_string_lossy().into_owned();
    tree.in_shifted(move |t| {
        let path = t.join("mapped");
        let f = open_rw(&path)?;
        // SAFETY: a fresh mapping of a file we hold, unmapped below.
        let map = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                4096,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &f,
                0,
            )
        }
        .ctx("mmap")?;
        let maps = std::fs::read_to_string("/proc/self/maps").ctx("read maps")?;
        let fd_link =
            std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ctx("readlink fd")?;
        // SAFETY: unmapping the mapping made above.
        unsafe { rustix::mm::munmap(map, 4096) }.ctx("munmap")?;
        let shown = path.to_string_lossy();
        ensure!(
            maps.lines().any(|l| l.ends_with(&*shown)),
            "no mapping of {shown} in /proc/self/maps:\n{maps}"
        );
        ensure!(
            !maps.contains(&real),
            "/proc/self/maps shows the real path {real}"
        );
        ensure_eq!(fd_link, path, "/proc/self/fd link");
        Ok(())
    })
}

/// `name_to_handle_at(path, flags)`: the handle's type and bytes, or the
/// errno.
fn handle(path: &Path, flags: i32) -> Result<(i32, Vec<u8>), i32> {
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        f: [u8; 128],
    }
    let mut h = Handle {
        bytes: 128,
        kind: 0,
        f: [0; 128],
    };
    let mut mount_id = 0;
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: `h` is a file_handle with room for 128 bytes of handle.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            p.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            flags,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok((h.kind, h.f[..h.bytes as usize].to_vec()))
}

/// `AT_HANDLE_FID`: a handle to compare objects by, not to open them.
const AT_HANDLE_FID: i32 = 0x200;

fn fids_work_and_decodable_handles_are_eopnotsupp(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let path = t.join("handle");
        ensure_eq!(
            handle(&path, 0).map(|_| ()),
            Err(libc::EOPNOTSUPP),
            "decodable handle through a shifting mount"
        );
        let (_, fid) = handle(&path, AT_HANDLE_FID)
            .map_err(|e| format!("name_to_handle_at(AT_HANDLE_FID): errno {e}"))?;
        ensure!(!fid.is_empty(), "empty fid");
        ensure_eq!(
            handle(&path, AT_HANDLE_FID).map(|(_, f)| f),
            Ok(fid.clone()),
            "the same fid twice"
        );
        ensure!(
            handle(&t.join("mapped"), AT_HANDLE_FID).map(|(_, f)| f) != Ok(fid.clone()),
            "two files with one fid"
        );
        // fanotify with FAN_REPORT_FID (allowed unprivileged) reports the
        // same fid for a change to the file.
        // SAFETY: plain syscalls; the path is NUL-terminated and lives
        // across the call; the descriptor is owned below.
        let fan = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_FID,
                libc::O_RDONLY as u32,
            )
        };
        ensure!(
            fan >= 0,
            "fanotify_init(FAN_REPORT_FID): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fan` is a new descriptor, owned from here on.
        let fan = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fan) };
        let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
        // SAFETY: as above.
        let r = unsafe {
            libc::fanotify_mark(
                fan.as_raw_fd(),
                libc::FAN_MARK_ADD,
                libc::FAN_MODIFY,
                libc::AT_FDCWD,
                p.as_ptr(),
            )
        };
        ensure!(r == 0, "fanotify_mark: {}", std::io::Error::last_os_error());
        open_rw(&path)?.write_all(b"changed").ctx("write")?;
        let mut buf = [0u8; 4096];
        let n = nix::unistd::read(&fan, &mut buf).ctx("read fanotify")?;
        // fanotify_event_metadata (24 bytes), then an info header
        // (type u8, pad u8, len u16), fsid (8), then a file_handle
        // (bytes u32, type i32, f[bytes]).
        ensure!(n >= 24 + 4 + 8 + 8, "short fanotify event: {n} bytes");
        let info = &buf[24..n];
        ensure_eq!(info[0], 1, "info record type (FAN_EVENT_INFO_TYPE_FID)");
        let h = &info[4 + 8..];
        let bytes = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        ensure_eq!(&h[8..8 + bytes], &fid[..], "the fid fanotify reports");
        Ok(())
    })
}

fn unix_sockets_connect_on_one_side_only(env: &Env) -> Outcome {
    let tree = tree(env);
    let host_sock = tree.real.join("host.sock");
    let _ = std::fs::remove_file(&host_sock);
    let _host = UnixListener::bind(&host_sock).ctx("host bind")?;
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    let real_container_sock = tree.real.join("container.sock");
    container::with_host_mapped(
        container::MAP,
        move || {
            mount_shifted(&mark, &target)?;
            let sock = target.join("container.sock");
            let _ = std::fs::remove_file(&sock);
            let listener = UnixListener::bind(&sock).ctx("container bind")?;
            // Within the container, through the mount: connects.
            let _c = UnixStream::connect(&sock).ctx("container connect to its own socket")?;
            listener.accept().ctx("accept")?;
            // The host's socket through the mount: a different inode.
            let r = UnixStream::connect(target.join("host.sock")).map_err(|e| e.raw_os_error());
            ensure_eq!(
                r.map(|_| ()),
                Err(Some(libc::ECONNREFUSED)),
                "container connect to the host's socket"
            );
            std::mem::forget(listener);
            Ok(())
        },
        move |_| {
            let r = UnixStream::connect(&real_container_sock).map_err(|e| e.raw_os_error());
            ensure_eq!(
                r.map(|_| ()),
                Err(Some(libc::ECONNREFUSED)),
                "host connect to the container's socket"
            );
            Ok(())
        },
    )
}
