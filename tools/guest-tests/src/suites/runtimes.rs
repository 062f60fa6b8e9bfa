//! Drop-in for the runtimes that drove Ubuntu's shiftfs: its options
//! (`passthrough=N` and the remount rules), and the exact sequences LXD and
//! Sysbox issue, replayed call for call.
//!
//! - LXD: detection (a test mark in a private mount namespace, shiftfs in
//!   /proc/filesystems), then its hooks: the host marks the rootfs over
//!   itself with `mark,passthrough=3`, the container mounts it over itself
//!   with `passthrough=3`, the host drops the mark with `umount -l`.
//! - Sysbox: the functional precheck (mark a test directory, a child in a
//!   user namespace 0:165536:65536 mounts it over itself, creates a file
//!   and renames it), plain and on an overlay mount; `mount(".", ".",
//!   "shiftfs", 0, "")` for the rootfs and `mount(p, p, ...)` for bind
//!   sources; a single-file bind through a marked parent; recognising
//!   shiftfs by statfs's f_type.

use crate::{
    container, ensure, ensure_eq,
    fixture::{expect_logged_error, load, unload},
    harness::{Context, Outcome},
    reliability,
    sys::{self, FsContext, FS_NAME},
    tests, Env,
};
use rustix::{
    fs::{stat, statfs},
    io::Errno,
    mount::{mount, mount_bind, mount_remount, unmount, MountFlags, UnmountFlags},
};
use std::path::{Path, PathBuf};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares,
    passthrough_is_shown_in_proc_mounts,
    passthrough_above_3_is_einval_with_message,
    shifting_passthrough_beyond_the_marks_is_eperm_with_message,
    statfs_passes_the_real_type_through_with_bit_1,
    a_mark_cannot_be_remounted,
    shifting_remount_changes_passthrough_within_the_mark,
    shifting_remount_as_a_mark_is_eperm,
    read_only_real_mount_gives_a_read_only_shifting_mount,
    noexec_real_mount_forbids_exec_through_the_shifting_mount,
    lxd_detects_shiftfs,
    lxd_hooks_with_passthrough_3,
    sysbox_precheck,
    sysbox_precheck_on_overlay,
    sysbox_mounts_the_rootfs_over_dot,
    sysbox_mounts_a_bind_source_over_itself,
    sysbox_binds_a_single_file_through_a_marked_parent,
    host_cleans_up,
    unload,
];

/// statfs's `f_type` of shiftfs, and of a tmpfs.
const SHIFTFS_MAGIC: i64 = 0x6a65_6a62;
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn base(env: &Env) -> PathBuf {
    env.scratch.join("runtimes")
}

/// A fresh directory `name` under the suite's base, with a file owned by
/// on-disk 1000 and a subdirectory owned by 0.
fn fresh(env: &Env, name: &str) -> Result<PathBuf, String> {
    let d = base(env).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub")).ctx("mkdir")?;
    std::fs::write(d.join("file"), b"data").ctx("write")?;
    std::os::unix::fs::chown(d.join("file"), Some(1000), Some(1000)).ctx("chown")?;
    Ok(d)
}

fn host_prepares(env: &Env) -> Outcome {
    std::fs::create_dir_all(base(env)).ctx("mkdir")
}

fn host_cleans_up(env: &Env) -> Outcome {
    std::fs::remove_dir_all(base(env)).ctx("rm -r")
}

/// The options /proc/self/mounts shows for the mount at `dir` (the top one).
fn options_of(dir: &Path) -> Result<String, String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ctx("read mounts")?;
    let d = dir.to_string_lossy();
    mounts
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(1) == Some(&d) && l.split(' ').nth(2) == Some(FS_NAME))
        .map(|l| l.split(' ').nth(3).unwrap_or("").to_owned())
        .ok_or_else(|| format!("no shiftfs mount at {d}"))
}

/// The host marks `d` over itself with `opts`.
fn mark_over_itself(d: &Path, opts: &std::ffi::CStr) -> Outcome {
    mount(d, d, FS_NAME, MountFlags::empty(), opts).ctx("mark")
}

fn passthrough_is_shown_in_proc_mounts(env: &Env) -> Outcome {
    let d = fresh(env, "shown")?;
    mark_over_itself(&d, c"mark,passthrough=3")?;
    let host = options_of(&d)?;
    let res = container::run(|| {
        let o1 = options_of(&d)?;
        let t = std::env::temp_dir().join("runtimes-shown");
        std::fs::create_dir_all(&t).ctx("mkdir")?;
        mount(&d, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount, passthrough=0")?;
        let o3 = options_of(&t)?;
        mount(&d, &d, FS_NAME, MountFlags::empty(), c"passthrough=1").ctx("shifting mount")?;
        let o2 = options_of(&d)?;
        ensure!(
            o1.contains(",mark,passthrough=3"),
            "the mark's options in the container: {o1}"
        );
        ensure!(
            o2.contains(",passthrough=1") && !o2.contains("mark"),
            "the shifting mount's: {o2}"
        );
        ensure!(
            !o3.contains("passthrough"),
            "passthrough=0 is not shown: {o3}"
        );
        Ok(())
    });
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    ensure!(
        host.contains(",mark,passthrough=3"),
        "the mark's options: {host}"
    );
    res
}

fn passthrough_above_3_is_einval_with_message(env: &Env) -> Outcome {
    let d = fresh(env, "above3")?;
    for v in ["4", "7", "-1", "x"] {
        let fc = FsContext::open(FS_NAME)?;
        let r = fc.set_string("passthrough", v);
        if v == "4" || v == "7" {
            expect_logged_error(&fc, r, Errno::INVAL, "passthrough takes 0 to 3")?;
        } else {
            ensure_eq!(r, Err(Errno::INVAL), format!("passthrough={v}"));
        }
    }
    let r = mount(&d, &d, FS_NAME, MountFlags::empty(), c"mark,passthrough=4");
    ensure_eq!(r, Err(Errno::INVAL), "mount -o mark,passthrough=4");
    Ok(())
}

fn shifting_passthrough_beyond_the_marks_is_eperm_with_message(env: &Env) -> Outcome {
    let d = fresh(env, "beyond")?;
    mark_over_itself(&d, c"mark,passthrough=1")?;
    let src = d.to_string_lossy().into_owned();
    let res = container::run(|| {
        for (p, ok) in [("2", false), ("3", false), ("1", true), ("0", true)] {
            let fc = FsContext::open(FS_NAME)?;
            fc.set_string("source", &src).ctx("source")?;
            fc.set_string("passthrough", p).ctx("passthrough")?;
            let r = fc.create();
            if ok {
                ensure_eq!(r, Ok(()), format!("passthrough={p} under passthrough=1"));
            } else {
                expect_logged_error(&fc, r, Errno::PERM, "passthrough may not exceed")?;
            }
        }
        Ok(())
    });
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    res
}

fn statfs_passes_the_real_type_through_with_bit_1(env: &Env) -> Outcome {
    let d = fresh(env, "statfs")?;
    mark_over_itself(&d, c"mark,passthrough=3")?;
    let res = container::run(|| {
        for (opts, want) in [
            (c"passthrough=0", SHIFTFS_MAGIC),
            (c"passthrough=2", SHIFTFS_MAGIC),
            (c"passthrough=1", TMPFS_MAGIC),
            (c"passthrough=3", TMPFS_MAGIC),
        ] {
            mount(&d, &d, FS_NAME, MountFlags::empty(), opts).ctx("shifting mount")?;
            let t = statfs(&d).ctx("statfs")?.f_type;
            ensure_eq!(t, want, format!("f_type with {opts:?}"));
            unmount(&d, UnmountFlags::empty()).ctx("umount")?;
        }
        Ok(())
    });
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    res
}

fn a_mark_cannot_be_remounted(env: &Env) -> Outcome {
    let d = fresh(env, "remount-mark")?;
    mark_over_itself(&d, c"mark")?;
    let fc = FsContext::pick(&d)?;
    let r = fc.reconfigure();
    let logged = expect_logged_error(&fc, r, Errno::PERM, "a mark cannot be remounted");
    let legacy = mount_remount(&d, MountFlags::empty(), c"mark");
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    logged?;
    ensure_eq!(legacy, Err(Errno::PERM), "mount -o remount of a mark");
    Ok(())
}

fn shifting_remount_changes_passthrough_within_the_mark(env: &Env) -> Outcome {
    let d = fresh(env, "remount-shift")?;
    mark_over_itself(&d, c"mark,passthrough=1")?;
    let res = container::run(|| {
        mount(&d, &d, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        mount_remount(&d, MountFlags::empty(), c"passthrough=1").ctx("remount passthrough=1")?;
        ensure!(
            options_of(&d)?.contains(",passthrough=1"),
            "after remount: {}",
            options_of(&d)?
        );
        ensure_eq!(
            statfs(&d).ctx("statfs")?.f_type,
            TMPFS_MAGIC,
            "f_type after remount"
        );
        let fc = FsContext::pick(&d)?;
        fc.set_string("passthrough", "3").ctx("passthrough")?;
        expect_logged_error(
            &fc,
            fc.reconfigure(),
            Errno::PERM,
            "passthrough may not exceed",
        )?;
        mount_remount(&d, MountFlags::empty(), c"passthrough=0").ctx("remount passthrough=0")?;
        ensure!(
            !options_of(&d)?.contains("passthrough"),
            "after remount to 0: {}",
            options_of(&d)?
        );
        Ok(())
    });
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    res
}

fn shifting_remount_as_a_mark_is_eperm(env: &Env) -> Outcome {
    let d = fresh(env, "remount-as-mark")?;
    mark_over_itself(&d, c"mark")?;
    let res = container::run(|| {
        mount(&d, &d, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        let fc = FsContext::pick(&d)?;
        fc.set_flag("mark").ctx("mark")?;
        expect_logged_error(
            &fc,
            fc.reconfigure(),
            Errno::PERM,
            "cannot be remounted as a mark",
        )
    });
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    res
}

/// The host's bind mount of `d` at `b` with `flags` (read-only, noexec),
/// marked.
fn marked_bind(d: &Path, b: &Path, flags: MountFlags) -> Outcome {
    std::fs::create_dir_all(b).ctx("mkdir")?;
    mount_bind(d, b).ctx("bind")?;
    mount_remount(b, MountFlags::BIND | flags, c"").ctx("remount bind")?;
    mount(b, b, FS_NAME, MountFlags::empty(), c"mark").ctx("mark")
}

fn unmark_bind(b: &Path) -> Outcome {
    unmount(b, UnmountFlags::empty()).ctx("umount mark")?;
    unmount(b, UnmountFlags::empty()).ctx("umount bind")
}

fn read_only_real_mount_gives_a_read_only_shifting_mount(env: &Env) -> Outcome {
    let d = fresh(env, "ro")?;
    let b = base(env).join("ro-bind");
    marked_bind(&d, &b, MountFlags::RDONLY)?;
    let res = container::run(|| {
        let t = std::env::temp_dir().join("runtimes-ro");
        std::fs::create_dir_all(&t).ctx("mkdir")?;
        mount(&b, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        let w = std::fs::write(t.join("new"), b"x").map_err(|e| e.raw_os_error());
        ensure_eq!(
            w,
            Err(Some(libc::EROFS)),
            "write through a shifting mount of a read-only tree"
        );
        let fc = FsContext::pick(&t)?;
        fc.set_flag("rw").ctx("rw")?;
        expect_logged_error(
            &fc,
            fc.reconfigure(),
            Errno::PERM,
            "the marked tree is read-only",
        )?;
        ensure_eq!(
            std::fs::read(t.join("file")).ctx("read")?,
            b"data".to_vec(),
            "reads still work"
        );
        Ok(())
    });
    unmark_bind(&b)?;
    res
}

fn noexec_real_mount_forbids_exec_through_the_shifting_mount(env: &Env) -> Outcome {
    let d = fresh(env, "noexec")?;
    let sh = reliability::sh("sh", &["-c", "command -v busybox"]).map(|s| s.trim().to_owned());
    let busybox = PathBuf::from(sh.unwrap_or_else(|_| "/bin/busybox".into()));
    std::fs::copy(&busybox, d.join("busybox")).ctx("copy busybox")?;
    let b = base(env).join("noexec-bind");
    marked_bind(&d, &b, MountFlags::NOEXEC)?;
    let res = container::run(|| {
        let t = std::env::temp_dir().join("runtimes-noexec");
        std::fs::create_dir_all(&t).ctx("mkdir")?;
        mount(&b, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        let r = std::process::Command::new(t.join("busybox"))
            .arg("true")
            .status()
            .map_err(|e| e.raw_os_error());
        ensure_eq!(
            r.map(|_| ()),
            Err(Some(libc::EACCES)),
            "exec through the shifting mount of a noexec tree"
        );
        Ok(())
    });
    unmark_bind(&b)?;
    res
}

fn lxd_detects_shiftfs(env: &Env) -> Outcome {
    // LXD: in a private mount namespace, a mark of its var path over
    // itself; and shiftfs in /proc/filesystems.
    let var = fresh(env, "lxd-var")?;
    reliability::spawn(move || {
        sys::unshare(libc::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
        sys::make_mounts_private().map_err(|e| format!("make private: {e}"))?;
        mount(&var, &var, FS_NAME, MountFlags::empty(), c"mark").ctx("test mark")?;
        unmount(&var, UnmountFlags::empty()).ctx("umount test mark")?;
        Ok(String::new())
    })?
    .wait()?;
    ensure!(
        sys::fs_registered(FS_NAME)?,
        "shiftfs not in /proc/filesystems"
    );
    Ok(())
}

fn lxd_hooks_with_passthrough_3(env: &Env) -> Outcome {
    let root = fresh(env, "lxd-rootfs")?;
    // pre-start (host): mark the rootfs over itself.
    mark_over_itself(&root, c"mark,passthrough=3")?;
    let (r1, r2) = (root.clone(), root.clone());
    reliability::lockstep(
        move |turn| {
            // pre-mount (in the container): the rootfs over itself.
            mount(&r1, &r1, FS_NAME, MountFlags::empty(), c"passthrough=3")
                .ctx("shifting mount")?;
            ensure!(
                options_of(&r1)?.contains(",passthrough=3"),
                "options: {}",
                options_of(&r1)?
            );
            ensure_eq!(
                statfs(&r1).ctx("statfs")?.f_type,
                TMPFS_MAGIC,
                "f_type (LXD's backend detection)"
            );
            ensure_eq!(
                stat(r1.join("file")).ctx("stat")?.st_uid,
                1000,
                "on-disk 1000 in the container"
            );
            std::fs::write(r1.join("before"), b"1").ctx("create before the host's umount")?;
            // start-host: the host drops the mark.
            turn.pass()?;
            std::fs::write(r1.join("after"), b"2").ctx("create after the host's umount")?;
            std::fs::rename(r1.join("after"), r1.join("renamed")).ctx("rename")?;
            ensure_eq!(
                std::fs::read(r1.join("renamed")).ctx("read")?,
                b"2".to_vec(),
                "content"
            );
            Ok(())
        },
        move |turn| {
            turn.wait()?;
            unmount(&r2, UnmountFlags::DETACH).ctx("umount -l the mark")?;
            ensure!(
                options_of(&r2).is_err(),
                "a shiftfs mount is left at the rootfs on the host"
            );
            // Back to the container, until it ends.
            turn.pass().or(Ok(()))
        },
    )?;
    for (name, uid) in [("before", 0), ("renamed", 0), ("file", 1000)] {
        ensure_eq!(
            stat(root.join(name)).ctx("stat on disk")?.st_uid,
            uid,
            format!("on-disk owner of {name}")
        );
    }
    Ok(())
}

/// Sysbox's functional precheck on `dir`: mark it, then a child in a user
/// namespace 0:165536:65536 mounts it shifted over itself, creates a file
/// and renames it (EOVERFLOW there was its sign of a broken shiftfs).
fn sysbox_precheck_on(dir: &Path) -> Outcome {
    mark_over_itself(dir, c"mark")?;
    let res = container::run_mapped("0 165536 65536", || {
        mount(dir, dir, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        std::fs::write(dir.join("precheck"), b"x").ctx("create")?;
        std::fs::rename(dir.join("precheck"), dir.join("precheck2")).ctx("rename")?;
        ensure_eq!(
            statfs(dir).ctx("statfs")?.f_type,
            SHIFTFS_MAGIC,
            "f_type (how Sysbox recognises shiftfs)"
        );
        Ok(())
    });
    unmount(dir, UnmountFlags::empty()).ctx("umount mark")?;
    res?;
    ensure_eq!(
        stat(dir.join("precheck2")).ctx("stat on disk")?.st_uid,
        0,
        "on-disk owner"
    );
    Ok(())
}

fn sysbox_precheck(env: &Env) -> Outcome {
    let d = fresh(env, "sysbox-precheck")?;
    sysbox_precheck_on(&d)
}

fn sysbox_precheck_on_overlay(env: &Env) -> Outcome {
    let b = base(env).join("sysbox-overlay");
    let _ = std::fs::remove_dir_all(&b);
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(b.join(d)).ctx("mkdir")?;
    }
    std::fs::write(b.join("lower/file"), b"lower").ctx("write")?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        b.join("lower").display(),
        b.join("upper").display(),
        b.join("work").display()
    );
    let opts = std::ffi::CString::new(opts).expect("no NUL");
    let merged = b.join("merged");
    mount(
        "overlay",
        &merged,
        "overlay",
        MountFlags::empty(),
        opts.as_c_str(),
    )
    .ctx("overlay")?;
    let res = sysbox_precheck_on(&merged);
    unmount(&merged, UnmountFlags::empty()).ctx("umount overlay")?;
    res?;
    ensure!(
        b.join("upper/precheck2").exists(),
        "the renamed file is not in the overlay's upper"
    );
    Ok(())
}

fn sysbox_mounts_the_rootfs_over_dot(env: &Env) -> Outcome {
    let root = fresh(env, "sysbox-rootfs")?;
    mark_over_itself(&root, c"mark")?;
    let res = container::run_mapped("0 165536 65536", || {
        std::env::set_current_dir(&root).ctx("chdir")?;
        // A relative source, the source equal to the target.
        mount(".", ".", FS_NAME, MountFlags::empty(), c"").ctx("mount(\".\", \".\")")?;
        std::env::set_current_dir(&root).ctx("chdir again")?;
        ensure_eq!(
            statfs(".").ctx("statfs")?.f_type,
            SHIFTFS_MAGIC,
            "f_type of ."
        );
        ensure!(
            !options_of(&root)?.contains("mark"),
            "the top mount at the rootfs is a mark"
        );
        ensure_eq!(
            stat("file").ctx("stat")?.st_uid,
            1000,
            "on-disk 1000 in the container"
        );
        std::fs::write("new", b"x").ctx("create")?;
        std::fs::rename("new", "sub/new").ctx("rename")?;
        Ok(())
    });
    unmount(&root, UnmountFlags::empty()).ctx("umount mark")?;
    res?;
    ensure_eq!(
        stat(root.join("sub/new")).ctx("stat on disk")?.st_uid,
        0,
        "on-disk owner"
    );
    Ok(())
}

fn sysbox_mounts_a_bind_source_over_itself(env: &Env) -> Outcome {
    let root = fresh(env, "sysbox-bindsrc")?;
    mark_over_itself(&root, c"mark")?;
    let sub = root.join("sub");
    let res = container::run_mapped("0 165536 65536", || {
        // A directory inside the mark, mounted over itself.
        mount(&sub, &sub, FS_NAME, MountFlags::empty(), c"").ctx("mount(p, p)")?;
        std::fs::write(sub.join("x"), b"x").ctx("create")?;
        ensure_eq!(
            stat(sub.join("x")).ctx("stat")?.st_uid,
            0,
            "owner in the container"
        );
        Ok(())
    });
    unmount(&root, UnmountFlags::empty()).ctx("umount mark")?;
    res?;
    ensure_eq!(
        stat(sub.join("x")).ctx("stat on disk")?.st_uid,
        0,
        "on-disk owner"
    );
    Ok(())
}

fn sysbox_binds_a_single_file_through_a_marked_parent(env: &Env) -> Outcome {
    let parent = fresh(env, "sysbox-file")?;
    mark_over_itself(&parent, c"mark")?;
    let res = container::run_mapped("0 165536 65536", || {
        mount(&parent, &parent, FS_NAME, MountFlags::empty(), c"")
            .ctx("shifting mount of the parent")?;
        let target = std::env::temp_dir().join("runtimes-bound-file");
        std::fs::write(&target, b"").ctx("bind target")?;
        mount_bind(parent.join("file"), &target).ctx("bind the file")?;
        ensure_eq!(
            stat(&target).ctx("stat")?.st_uid,
            1000,
            "owner through the bind"
        );
        std::fs::write(&target, b"written in the container").ctx("write through the bind")?;
        Ok(())
    });
    unmount(&parent, UnmountFlags::empty()).ctx("umount mark")?;
    res?;
    ensure_eq!(
        std::fs::read(parent.join("file")).ctx("read on disk")?,
        b"written in the container".to_vec(),
        "content on disk"
    );
    ensure_eq!(
        stat(parent.join("file")).ctx("stat on disk")?.st_uid,
        1000,
        "on-disk owner kept"
    );
    Ok(())
}
