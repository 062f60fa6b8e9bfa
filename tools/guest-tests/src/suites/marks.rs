//! The kinds of marks: a mark mount that names whom it admits
//! (`allow=FIRST:COUNT`: the host id ranges a shifting mount's user
//! namespace must map into), and persistent marks (the `trusted.shiftfs`
//! xattr, when the `persistent_marks` module parameter is on), with the
//! errnos and log lines of every refusal.

use crate::{
    container, ensure, ensure_eq,
    fixture::{expect_logged_error, load, unload},
    harness::{Context, Outcome},
    reliability::{self as rel, sh, Ext4},
    sys::{FsContext, FS_NAME},
    tests, Env,
};
use rustix::{
    fs::{getxattr, listxattr, removexattr, setxattr, stat, Mode, OFlags, XattrFlags},
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::{
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares,
    restricted_mark_shows_its_ranges,
    restricted_mark_admits_the_namespaces_it_names,
    restricted_mark_refuses_other_namespaces_with_message,
    restricted_mark_refuses_the_host,
    allow_values_are_checked_with_message,
    allow_is_an_option_of_marks,
    nested_mark_inherits_the_restriction,
    nested_mark_narrows_in_its_own_ids,
    nested_mark_cannot_name_unmapped_ids,
    persistent_marks_are_off_by_default,
    persistent_mark_mounts_without_a_mark_mount,
    persistent_mark_covers_the_directories_below,
    persistent_mark_names_whom_it_admits,
    malformed_persistent_mark_is_einval_with_message,
    containers_cannot_see_or_change_the_mark,
    removing_the_mark_stops_new_mounts_only,
    persistent_mark_survives_remount_and_module_reload,
    shifting_composes_with_an_idmapped_mount,
    idmapped_composition_writes_acls_and_capabilities,
    host_cleans_up,
    unload,
];

fn base(env: &Env) -> PathBuf {
    env.scratch.join("marks")
}

/// A fresh directory `name` under the suite's base, with a file owned by
/// on-disk 1000.
fn fresh(env: &Env, name: &str) -> Result<PathBuf, String> {
    let d = base(env).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub/deeper")).ctx("mkdir")?;
    std::fs::write(d.join("file"), b"data").ctx("write")?;
    std::os::unix::fs::chown(d.join("file"), Some(1000), Some(1000)).ctx("chown")?;
    Ok(d)
}

/// A target directory for mounts made in containers.
fn target(env: &Env, name: &str) -> Result<PathBuf, String> {
    let t = base(env).join("targets").join(name);
    std::fs::create_dir_all(&t).ctx("mkdir target")?;
    Ok(t)
}

fn host_prepares(env: &Env) -> Outcome {
    let _ = std::fs::remove_dir_all(base(env));
    std::fs::create_dir_all(base(env)).ctx("mkdir")
}

fn host_cleans_up(env: &Env) -> Outcome {
    set_persistent(false)?;
    std::fs::remove_dir_all(base(env)).ctx("rm -r")
}

/// The options /proc/self/mounts shows for the top mount at `dir`.
fn options_of(dir: &Path) -> Result<String, String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ctx("read mounts")?;
    let d = dir.to_string_lossy();
    mounts
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(1) == Some(&d))
        .map(|l| l.split(' ').nth(3).unwrap_or("").to_owned())
        .ok_or_else(|| format!("no mount at {d}"))
}

/// The host marks `d` over itself with `opts`; `f` runs; the mark goes.
fn with_mark(d: &Path, opts: &std::ffi::CStr, f: impl FnOnce() -> Outcome) -> Outcome {
    mount(d, d, FS_NAME, MountFlags::empty(), opts).ctx("mark")?;
    let res = f();
    unmount(d, UnmountFlags::DETACH).ctx("umount mark")?;
    res
}

/// A shifting mount of `src` through the new mount API, so that a
/// refusal's log line can be read: the result and the context.
fn shift_with_log(src: &Path) -> Result<(Result<(), Errno>, FsContext), String> {
    let fc = FsContext::open(FS_NAME)?;
    fc.set_string("source", &src.to_string_lossy())
        .ctx("source")?;
    let r = fc.create();
    Ok((r, fc))
}

/// In a container with id map `map`, a shifting mount of `src` fails with
/// `want` and logs `msg`.
fn refused_in(map: &str, src: &Path, want: Errno, msg: &str) -> Outcome {
    let src = src.to_path_buf();
    container::run_mapped(map, move || {
        let fc = FsContext::open(FS_NAME)?;
        fc.set_string("source", &src.to_string_lossy())
            .ctx("source")?;
        expect_logged_error(&fc, fc.create(), want, msg)
    })
}

/// In a container with id map `map`, a shifting mount of `src` on `dst`
/// works: the file owned by on-disk 1000 shows as 1000 (65534 where the
/// map has no 1000), and a new file lands on disk owned by on-disk 0.
fn admitted_in(map: &str, src: &Path, dst: &Path, new: &str) -> Outcome {
    let (s, t, n) = (src.to_path_buf(), dst.to_path_buf(), new.to_owned());
    let maps_1000 = map.lines().any(|l| {
        let v: Vec<u32> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        v.len() == 3 && v[0] <= 1000 && 1000 < v[0] + v[2]
    });
    container::run_mapped(map, move || {
        mount(&s, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        ensure_eq!(
            stat(t.join("file")).ctx("stat")?.st_uid,
            if maps_1000 { 1000 } else { 65_534 },
            "on-disk 1000 in the container"
        );
        std::fs::write(t.join(&n), b"x").ctx("create")?;
        Ok(())
    })?;
    ensure_eq!(
        stat(src.join(new)).ctx("stat on disk")?.st_uid,
        0,
        "on-disk owner of the new file"
    );
    Ok(())
}

const CONTAINER: &str = "0 100000 65536";
const OTHER: &str = "0 200000 65536";

fn restricted_mark_shows_its_ranges(env: &Env) -> Outcome {
    let d = fresh(env, "shown")?;
    with_mark(&d, c"mark,allow=100000:65536,allow=300000:10", || {
        let o = options_of(&d)?;
        ensure!(
            o.contains(",mark,allow=100000:65536,allow=300000:10"),
            "options: {o}"
        );
        Ok(())
    })
}

fn restricted_mark_admits_the_namespaces_it_names(env: &Env) -> Outcome {
    let d = fresh(env, "admits")?;
    let t = target(env, "admits")?;
    with_mark(&d, c"mark,allow=100000:65536,allow=300000:10", || {
        admitted_in(CONTAINER, &d, &t, "by-container")?;
        // A map split over both ranges, and one inside the first.
        admitted_in("0 100000 1000\n1000 300000 10", &d, &t, "by-split")?;
        admitted_in("0 150000 10", &d, &t, "by-small")
    })
}

fn restricted_mark_refuses_other_namespaces_with_message(env: &Env) -> Outcome {
    let d = fresh(env, "refuses")?;
    with_mark(&d, c"mark,allow=100000:65536", || {
        let why = "the mark allows only user namespaces mapping into its allow= ranges";
        refused_in(OTHER, &d, Errno::PERM, why)?;
        refused_in(OTHER, &d, Errno::PERM, "its uid map has 0 200000 65536")?;
        // One id too many.
        refused_in("0 100000 65537", &d, Errno::PERM, "0 100000 65537")?;
        // Inside, and then one extent outside.
        refused_in("0 100000 10\n10 99990 5", &d, Errno::PERM, "10 99990 5")
    })
}

fn restricted_mark_refuses_the_host(env: &Env) -> Outcome {
    let d = fresh(env, "host")?;
    with_mark(&d, c"mark,allow=100000:65536", || {
        let (r, fc) = shift_with_log(&d)?;
        expect_logged_error(&fc, r, Errno::PERM, "its uid map has 0 0 4294967295")
    })
}

fn allow_values_are_checked_with_message(env: &Env) -> Outcome {
    let _ = env;
    for bad in ["1", "1:0", "x:1", "-5:5", "1:2:3", "4294967295:1", "0x10:1"] {
        let fc = FsContext::open(FS_NAME)?;
        let r = fc.set_string("allow", bad);
        expect_logged_error(&fc, r, Errno::INVAL, "allow takes FIRST:COUNT")
            .map_err(|e| format!("allow={bad}: {e}"))?;
    }
    // An empty value is the VFS's to refuse.
    let fc = FsContext::open(FS_NAME)?;
    let r = fc.set_string("allow", "");
    expect_logged_error(&fc, r, Errno::INVAL, "Bad value for 'allow'")?;
    let fc = FsContext::open(FS_NAME)?;
    for i in 0..8 {
        fc.set_string("allow", &format!("{}:1", i * 10))
            .ctx("allow")?;
    }
    let r = fc.set_string("allow", "100:1");
    expect_logged_error(&fc, r, Errno::INVAL, "at most 8 allow= ranges")
}

fn allow_is_an_option_of_marks(env: &Env) -> Outcome {
    let d = fresh(env, "shift-allow")?;
    with_mark(&d, c"mark", || {
        let src = d.clone();
        container::run(move || {
            let fc = FsContext::open(FS_NAME)?;
            fc.set_string("source", &src.to_string_lossy())
                .ctx("source")?;
            fc.set_string("allow", "0:10").ctx("allow")?;
            expect_logged_error(
                &fc,
                fc.create(),
                Errno::INVAL,
                "allow= is an option of marks",
            )
        })
    })
}

/// A container mounts `d` shifted on `t`, marks `t/sub` (with `opts`) at
/// `t/sub` and, while it lives, the host runs `host` with a path to that
/// nested mark that other namespaces can use.
fn with_nested_mark(
    d: &Path,
    t: &Path,
    opts: &'static std::ffi::CStr,
    host: impl FnOnce(&Path) -> Outcome,
) -> Outcome {
    // The container keeps the nested mark open as this descriptor.
    const FD: i32 = 100;
    let (s, tt) = (d.to_path_buf(), t.to_path_buf());
    container::with_host_mapped(
        CONTAINER,
        move || {
            mount(&s, &tt, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            let sub = tt.join("sub");
            mount(&sub, &sub, FS_NAME, MountFlags::empty(), opts).ctx("nested mark")?;
            let fd = rustix::fs::open(&sub, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
                .ctx("open the nested mark")?;
            // SAFETY: `FD` is not in use in this process; the copy stays
            // open until the container exits.
            if unsafe { libc::dup2(fd.as_raw_fd(), FD) } != FD {
                return Err("dup2".into());
            }
            Ok(())
        },
        move |pid| {
            // Walking to it through the container's shifting mount would
            // be the host's, which that mount cannot shift (EOVERFLOW);
            // its descriptor reaches it without a walk, and so does
            // /proc/self/fd in another container.
            let fd = rustix::fs::open(
                format!("/proc/{pid}/fd/{FD}"),
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .ctx("open the nested mark's descriptor")?;
            host(&PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())))
        },
    )
}

fn nested_mark_inherits_the_restriction(env: &Env) -> Outcome {
    let d = fresh(env, "inherit")?;
    let t = target(env, "inherit")?;
    with_mark(&d, c"mark,allow=100000:65536", || {
        with_nested_mark(&d, &t, c"mark", |nested| {
            // Another namespace, which the outer mark would not admit, is
            // not admitted by the nested one either.
            refused_in(OTHER, nested, Errno::PERM, "its uid map has 0 200000 65536")?;
            let t2 = base(env).join("targets/inherit2");
            std::fs::create_dir_all(&t2).ctx("mkdir")?;
            let (n, t2c) = (nested.to_path_buf(), t2.clone());
            container::run_mapped("0 100000 1000", move || {
                mount(&n, &t2c, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
                std::fs::write(t2c.join("by-inner"), b"x").ctx("create")
            })
        })
    })?;
    ensure_eq!(
        stat(d.join("sub/by-inner")).ctx("stat on disk")?.st_uid,
        0,
        "on-disk owner"
    );
    Ok(())
}

fn nested_mark_narrows_in_its_own_ids(env: &Env) -> Outcome {
    let d = fresh(env, "narrow")?;
    let t = target(env, "narrow")?;
    with_mark(&d, c"mark", || {
        // The container's ids 0 to 999: host 100000 to 100999.
        with_nested_mark(&d, &t, c"mark,allow=0:1000", |nested| {
            refused_in("0 101000 1000", nested, Errno::PERM, "0 101000 1000")?;
            let t2 = base(env).join("targets/narrow2");
            std::fs::create_dir_all(&t2).ctx("mkdir")?;
            let (n, t2c) = (nested.to_path_buf(), t2.clone());
            container::run_mapped("0 100000 1000", move || {
                mount(&n, &t2c, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")
            })
        })
    })
}

fn nested_mark_cannot_name_unmapped_ids(env: &Env) -> Outcome {
    let d = fresh(env, "unmapped")?;
    let t = target(env, "unmapped")?;
    with_mark(&d, c"mark", || {
        let (s, tt) = (d.clone(), t.clone());
        container::run(move || {
            mount(&s, &tt, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            let fc = FsContext::open(FS_NAME)?;
            fc.set_string("source", &tt.join("sub").to_string_lossy())
                .ctx("source")?;
            fc.set_flag("mark").ctx("mark")?;
            // The container maps 65536 ids: 70000 is not one of its.
            fc.set_string("allow", "70000:10").ctx("allow")?;
            expect_logged_error(
                &fc,
                fc.create(),
                Errno::INVAL,
                "allow= names ids the caller's user namespace does not map",
            )
        })
    })
}

/// Turns the `persistent_marks` module parameter on or off.
fn set_persistent(on: bool) -> Outcome {
    let p = "/sys/module/shiftfs/parameters/persistent_marks";
    if !Path::new(p).exists() && !on {
        return Ok(());
    }
    std::fs::write(p, if on { "1" } else { "0" }).ctx("write persistent_marks")
}

fn set_mark_xattr(d: &Path, value: &str) -> Outcome {
    setxattr(d, "trusted.shiftfs", value.as_bytes(), XattrFlags::empty()).ctx("set trusted.shiftfs")
}

fn persistent_marks_are_off_by_default(env: &Env) -> Outcome {
    let p = std::fs::read_to_string("/sys/module/shiftfs/parameters/persistent_marks")
        .ctx("read persistent_marks")?;
    ensure_eq!(p.trim(), "N", "persistent_marks after loading");
    let d = fresh(env, "off")?;
    set_mark_xattr(&d, "v1")?;
    refused_in(
        CONTAINER,
        &d,
        Errno::PERM,
        "the source is not on a shiftfs mark mount",
    )
}

fn persistent_mark_mounts_without_a_mark_mount(env: &Env) -> Outcome {
    set_persistent(true)?;
    let d = fresh(env, "persistent")?;
    set_mark_xattr(&d, "v1")?;
    let t = target(env, "persistent")?;
    admitted_in(CONTAINER, &d, &t, "by-container")?;
    // Root of the container gives a file to its 1000 and sets a file
    // capability: the credentials behind the mount can (CAP_CHOWN,
    // CAP_SETFCAP).
    let (s, tt) = (d.clone(), t.clone());
    container::run(move || {
        mount(&s, &tt, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        std::fs::write(tt.join("given"), b"x").ctx("create")?;
        std::os::unix::fs::chown(tt.join("given"), Some(1000), Some(1000)).ctx("chown")?;
        sh(
            "setcap",
            &["cap_net_raw+ep", &tt.join("given").to_string_lossy()],
        )?;
        let caps = sh("getcap", &[&tt.join("given").to_string_lossy()])?;
        ensure!(caps.contains("cap_net_raw=ep"), "getcap: {caps}");
        Ok(())
    })?;
    let st = stat(d.join("given")).ctx("stat on disk")?;
    ensure_eq!(
        (st.st_uid, st.st_gid),
        (1000, 1000),
        "on-disk owner of given"
    );
    Ok(())
}

fn persistent_mark_covers_the_directories_below(env: &Env) -> Outcome {
    set_persistent(true)?;
    let d = fresh(env, "below")?;
    set_mark_xattr(&d, "v1")?;
    std::fs::write(d.join("sub/deeper/file"), b"deep").ctx("write")?;
    std::os::unix::fs::chown(d.join("sub/deeper/file"), Some(1000), Some(1000)).ctx("chown")?;
    let t = target(env, "below")?;
    admitted_in(CONTAINER, &d.join("sub/deeper"), &t, "by-container")
}

fn persistent_mark_names_whom_it_admits(env: &Env) -> Outcome {
    set_persistent(true)?;
    let d = fresh(env, "persistent-allow")?;
    set_mark_xattr(&d, "v1 allow=100000:65536")?;
    refused_in(OTHER, &d, Errno::PERM, "its uid map has 0 200000 65536")?;
    let t = target(env, "persistent-allow")?;
    admitted_in(CONTAINER, &d, &t, "by-container")?;
    // passthrough: none unless the xattr says so.
    let src = d.clone();
    container::run(move || {
        let fc = FsContext::open(FS_NAME)?;
        fc.set_string("source", &src.to_string_lossy())
            .ctx("source")?;
        fc.set_string("passthrough", "1").ctx("passthrough")?;
        expect_logged_error(&fc, fc.create(), Errno::PERM, "passthrough may not exceed")
    })
}

fn malformed_persistent_mark_is_einval_with_message(env: &Env) -> Outcome {
    set_persistent(true)?;
    let d = fresh(env, "malformed")?;
    for (value, msg) in [
        ("v2", "its value must start with the version, v1"),
        ("v1 allow=5", "allow takes FIRST:COUNT"),
        ("v1 mark", "after v1 come only"),
        ("v1 passthrough=9", "passthrough= takes one of 0 to 3"),
    ] {
        set_mark_xattr(&d, value)?;
        refused_in(CONTAINER, &d, Errno::INVAL, msg).map_err(|e| format!("{value:?}: {e}"))?;
        refused_in(CONTAINER, &d, Errno::INVAL, "trusted.shiftfs: ")
            .map_err(|e| format!("{value:?}: {e}"))?;
    }
    Ok(())
}

fn containers_cannot_see_or_change_the_mark(env: &Env) -> Outcome {
    set_persistent(true)?;
    let d = fresh(env, "hidden")?;
    set_mark_xattr(&d, "v1")?;
    let t = target(env, "hidden")?;
    let (s, tt) = (d.clone(), t.clone());
    container::run(move || {
        mount(&s, &tt, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        // Through the shifting mount, and on the real path itself.
        for p in [&tt, &s] {
            let mut buf = [0u8; 64];
            ensure_eq!(
                getxattr(p, "trusted.shiftfs", &mut buf).map(drop),
                Err(Errno::NODATA),
                format!("getxattr at {}", p.display())
            );
            let mut list = [0u8; 1024];
            let n = listxattr(p, &mut list).ctx("listxattr")?;
            ensure!(
                !list[..n]
                    .split(|&c| c == 0)
                    .any(|name| name.starts_with(b"trusted.")),
                "trusted. names listed at {}",
                p.display()
            );
            ensure_eq!(
                setxattr(p, "trusted.shiftfs", b"v1", XattrFlags::empty()),
                Err(Errno::PERM),
                format!("setxattr at {}", p.display())
            );
            ensure_eq!(
                removexattr(p, "trusted.shiftfs"),
                Err(Errno::PERM),
                format!("removexattr at {}", p.display())
            );
            // Nor may it mark a directory of its own.
            ensure_eq!(
                setxattr(p.join("sub"), "trusted.shiftfs", b"v1", XattrFlags::empty()),
                Err(Errno::PERM),
                "setxattr on a subdirectory"
            );
        }
        Ok(())
    })?;
    let mut buf = [0u8; 64];
    let n = getxattr(&d, "trusted.shiftfs", &mut buf).ctx("host getxattr")?;
    ensure_eq!(&buf[..n], b"v1", "the mark's value on the host");
    Ok(())
}

fn removing_the_mark_stops_new_mounts_only(env: &Env) -> Outcome {
    set_persistent(true)?;
    let d = fresh(env, "removed")?;
    set_mark_xattr(&d, "v1")?;
    let t = target(env, "removed")?;
    let (s, tt, s2) = (d.clone(), t.clone(), d.clone());
    rel::lockstep(
        move |turn| {
            mount(&s, &tt, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            turn.pass()?;
            // The mark is gone: this mount keeps working.
            std::fs::write(tt.join("after-removal"), b"x").ctx("create after removal")?;
            ensure_eq!(
                std::fs::read(tt.join("file")).ctx("read")?,
                b"data".to_vec(),
                "read after removal"
            );
            Ok(())
        },
        move |turn| {
            turn.wait()?;
            removexattr(&s2, "trusted.shiftfs").ctx("remove trusted.shiftfs")?;
            refused_in(CONTAINER, &s2, Errno::PERM, "not on a shiftfs mark mount")?;
            turn.pass().or(Ok(()))
        },
    )?;
    ensure_eq!(
        stat(d.join("after-removal")).ctx("stat on disk")?.st_uid,
        0,
        "on-disk owner"
    );
    Ok(())
}

fn persistent_mark_survives_remount_and_module_reload(env: &Env) -> Outcome {
    let b = base(env);
    let mnt = b.join("ext4");
    let fs = Ext4::new(&b.join("ext4.img"), &mnt, 32)?;
    let res = (|| {
        let d = mnt.join("tree");
        std::fs::create_dir_all(&d).ctx("mkdir")?;
        std::fs::write(d.join("file"), b"data").ctx("write")?;
        std::os::unix::fs::chown(d.join("file"), Some(1000), Some(1000)).ctx("chown")?;
        set_mark_xattr(&d, "v1 allow=100000:65536")?;
        // Unmount the filesystem, unload shiftfs, load it again (the
        // parameter is off again), mount the filesystem again.
        unmount(&mnt, UnmountFlags::empty()).ctx("umount ext4")?;
        unload(env)?;
        load(env)?;
        fs.mount()?;
        refused_in(CONTAINER, &d, Errno::PERM, "not on a shiftfs mark mount")?;
        set_persistent(true)?;
        let t = target(env, "ext4")?;
        admitted_in(CONTAINER, &d, &t, "after-reload")?;
        unmount(&mnt, UnmountFlags::empty()).ctx("umount ext4")?;
        fs.fsck()
    })();
    fs.release()?;
    res
}

/// The host's idmapped bind mount of a tree (its 0:50000:65536: on-disk N
/// shows as 50000 + N), marked; `f` runs with the real tree and the mark.
/// The tree: `file` on-disk 1000, `root-file` 0, `far` 70000 (which the
/// idmapping cannot show), a directory `open` (0, mode 1777).
fn with_idmapped_mark(env: &Env, name: &str, f: impl FnOnce(&Path, &Path) -> Outcome) -> Outcome {
    let r = fresh(env, name)?;
    for (n, uid) in [("root-file", 0), ("far", 70_000)] {
        std::fs::write(r.join(n), n).ctx("write")?;
        std::os::unix::fs::chown(r.join(n), Some(uid), Some(uid)).ctx("chown")?;
    }
    std::fs::create_dir(r.join("open")).ctx("mkdir")?;
    rustix::fs::chmod(r.join("open"), Mode::from_raw_mode(0o1777)).ctx("chmod")?;
    let b = base(env).join(format!("{name}-idmapped"));
    std::fs::create_dir_all(&b).ctx("mkdir")?;
    let userns = crate::sys::userns_fd("0 50000 65536")?;
    crate::sys::idmapped_bind(&r, &b, &userns)?;
    let res = (|| {
        ensure_eq!(
            stat(b.join("file"))
                .ctx("stat through the idmapped mount")?
                .st_uid,
            51_000,
            "the idmapped mount shows on-disk 1000"
        );
        with_mark(&b, c"mark", || f(&r, &b))
    })();
    unmount(&b, UnmountFlags::DETACH).ctx("umount idmapped")?;
    res
}

/// Keeps the calling process's capabilities while its filesystem ids
/// become `id` (no setuid fixup): root of a container acting on files as
/// one of its users.
fn fs_ids_keeping_caps(id: u32) -> Outcome {
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    // SAFETY: plain calls on the calling process.
    unsafe {
        if libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0 {
            return Err(format!("PR_SET_SECUREBITS: errno {}", rel::errno()));
        }
        libc::setfsgid(id);
        libc::setfsuid(id);
        if libc::setfsuid(u32::MAX) as u32 != id {
            return Err("setfsuid did not take".into());
        }
    }
    Ok(())
}

fn shifting_composes_with_an_idmapped_mount(env: &Env) -> Outcome {
    let t = target(env, "idmapped")?;
    with_idmapped_mark(env, "idmapped", |r, b| {
        let (bb, tt) = (b.to_path_buf(), t.clone());
        container::run(move || {
            mount(&bb, &tt, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            // Root of the container (host 100000) is host 0 through the
            // idmapped mount's view, which it cannot write down: EOVERFLOW
            // for anything it does through the mount.
            ensure_eq!(
                stat(tt.join("file")).map(drop),
                Err(Errno::OVERFLOW),
                "stat as the container's root"
            );
            fs_ids_keeping_caps(50_000)?;
            for (n, uid) in [("file", 51_000), ("root-file", 50_000), ("far", 65_534)] {
                ensure_eq!(
                    stat(tt.join(n)).ctx("stat")?.st_uid,
                    uid,
                    format!("owner of {n} in the container")
                );
            }
            ensure_eq!(
                stat(&tt).ctx("stat root")?.st_uid,
                50_000,
                "owner of the root"
            );
            std::fs::write(tt.join("open/by-50000"), b"x").ctx("create as 50000")?;
            std::fs::write(tt.join("open/given"), b"x").ctx("create")?;
            std::os::unix::fs::chown(tt.join("open/given"), Some(51_002), Some(51_003))
                .ctx("chown to 51002:51003")?;
            // 10 is host 100010 in the container, host 10 through the
            // idmapping's view: not on its disk.
            ensure_eq!(
                rustix::fs::chown(
                    tt.join("open/given"),
                    Some(rustix::fs::Uid::from_raw(10)),
                    None
                ),
                Err(Errno::INVAL),
                "chown to an id the idmapping cannot write"
            );
            Ok(())
        })?;
        for (n, ids) in [("open/by-50000", (0, 0)), ("open/given", (1002, 1003))] {
            let st = stat(r.join(n)).ctx("stat on disk")?;
            ensure_eq!((st.st_uid, st.st_gid), ids, format!("on-disk owner of {n}"));
        }
        // (The host's view through the idmapped mount is under the mark now,
        // which cannot shift the host's ids: the disk says it.)
        Ok(())
    })
}

fn idmapped_composition_writes_acls_and_capabilities(env: &Env) -> Outcome {
    use crate::fixture::{acl_entries, acl_value};
    const USER: u16 = 0x02;
    const ACCESS: &str = "system.posix_acl_access";
    let t = target(env, "idmapped-acl")?;
    with_idmapped_mark(env, "idmapped-acl", |r, b| {
        // An ACL the host wrote, naming on-disk 2000 and 70000.
        std::fs::write(r.join("open/acl"), b"x").ctx("write")?;
        let host_acl = acl_value(&[
            (0x01, 6, u32::MAX),
            (USER, 4, 2000),
            (USER, 4, 70_000),
            (0x04, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ]);
        setxattr(r.join("open/acl"), ACCESS, &host_acl, XattrFlags::empty()).ctx("host ACL")?;
        std::fs::write(r.join("open/capped"), b"x").ctx("write")?;
        let (bb, tt) = (b.to_path_buf(), t.clone());
        container::run(move || {
            mount(&bb, &tt, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            fs_ids_keeping_caps(50_000)?;
            let mut buf = [0u8; 256];
            let n = getxattr(tt.join("open/acl"), ACCESS, &mut buf).ctx("get ACL")?;
            let users: Vec<u32> = acl_entries(&buf[..n])
                .into_iter()
                .filter(|e| e.0 == USER)
                .map(|e| e.2)
                .collect();
            ensure_eq!(users, vec![52_000, 65_534], "ACL users in the container");
            let mine = acl_value(&[
                (0x01, 6, u32::MAX),
                (USER, 4, 51_005),
                (0x04, 4, u32::MAX),
                (0x10, 4, u32::MAX),
                (0x20, 0, u32::MAX),
            ]);
            setxattr(tt.join("open/acl"), ACCESS, &mine, XattrFlags::empty()).ctx("set ACL")?;
            // setcap(8) would run with root's filesystem ids, which this
            // mount cannot write down: the same request, made here.
            // Revision 2, effective, permitted CAP_NET_RAW (13).
            let mut cap = vec![0x01, 0x00, 0x00, 0x02];
            cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
            cap.extend_from_slice(&[0; 12]);
            let capped = tt.join("open/capped");
            setxattr(&capped, "security.capability", &cap, XattrFlags::empty())
                .ctx("set a capability")?;
            let n = getxattr(&capped, "security.capability", &mut buf).ctx("get it back")?;
            ensure_eq!(&buf[..n], &cap[..], "the capability in the container");
            Ok(())
        })?;
        let mut buf = [0u8; 256];
        let n = getxattr(r.join("open/acl"), ACCESS, &mut buf).ctx("get ACL on disk")?;
        let users: Vec<u32> = acl_entries(&buf[..n])
            .into_iter()
            .filter(|e| e.0 == USER)
            .map(|e| e.2)
            .collect();
        ensure_eq!(users, vec![1005], "ACL user on disk");
        // The capability's root id: the container's root (host 100000),
        // as the idmapping writes it down: on-disk 50000.
        let n = getxattr(r.join("open/capped"), "security.capability", &mut buf)
            .ctx("get capability on disk")?;
        ensure_eq!(n, 24, "a revision 3 capability");
        let root = u32::from_le_bytes(buf[20..24].try_into().expect("4 bytes"));
        ensure_eq!(root, 50_000, "root id on disk");
        Ok(())
    })
}
