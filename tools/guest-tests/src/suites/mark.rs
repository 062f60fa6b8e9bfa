//! Mark mounts: the host marks a directory; the mark shows it unshifted,
//! reports the real filesystem's figures, holds the module while mounted,
//! is recognised by a shifting mount, and goes away cleanly.

use crate::{
    container, ensure, ensure_eq,
    harness::{Context, Outcome},
    sys::{self, expect_logged_error, FsContext, FS_NAME},
    tests, Env,
};
use rustix::{
    fs::{stat, statfs},
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::path::{Path, PathBuf};

/// statfs's `f_type` for shiftfs.
const SHIFTFS_MAGIC: i64 = 0x6a65_6a62;

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_marks_a_directory,
    mark_is_listed_with_mark_option,
    mark_root_shows_real_attributes,
    statfs_reports_the_real_filesystem,
    rmmod_while_marked_is_refused,
    mark_inside_a_mark_is_einval,
    container_cannot_mark_a_marked_path,
    container_shifting_mount_recognises_the_mark,
    unmount_releases_the_mark,
    unload,
];

fn real(env: &Env) -> PathBuf {
    env.scratch.join("mark-real")
}

fn view(env: &Env) -> PathBuf {
    env.scratch.join("mark-view")
}

fn load(env: &Env) -> Outcome {
    sys::load_module(&env.module)
}

fn unload(_: &Env) -> Outcome {
    sys::unload_module(FS_NAME).ctx("delete_module(shiftfs)")
}

fn mark(src: &Path, dst: &Path) -> Result<(), Errno> {
    mount(src, dst, FS_NAME, MountFlags::empty(), c"mark")
}

fn host_marks_a_directory(env: &Env) -> Outcome {
    for d in [real(env), view(env)] {
        std::fs::create_dir_all(&d).ctx("mkdir")?;
    }
    std::fs::write(real(env).join("file"), b"data").ctx("create file")?;
    mark(&real(env), &view(env)).ctx("mount -t shiftfs -o mark")
}

fn mark_is_listed_with_mark_option(env: &Env) -> Outcome {
    let mounts = std::fs::read_to_string("/proc/mounts").ctx("read /proc/mounts")?;
    let view = view(env);
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == view.to_str())
        .ok_or("mark not in /proc/mounts")?;
    let fields: Vec<&str> = line.split(' ').collect();
    ensure_eq!(fields[2], "shiftfs", "filesystem type");
    ensure!(
        fields[3].split(',').any(|o| o == "mark"),
        "options {:?} lack 'mark'",
        fields[3]
    );
    Ok(())
}

fn mark_root_shows_real_attributes(env: &Env) -> Outcome {
    let (r, v) = (
        stat(real(env)).ctx("stat real")?,
        stat(view(env)).ctx("stat mark")?,
    );
    ensure_eq!(v.st_ino, r.st_ino, "st_ino");
    ensure_eq!(v.st_mode, r.st_mode, "st_mode");
    ensure_eq!(v.st_uid, r.st_uid, "st_uid");
    ensure_eq!(v.st_gid, r.st_gid, "st_gid");
    ensure_eq!(v.st_nlink, r.st_nlink, "st_nlink");
    ensure_eq!(v.st_mtime, r.st_mtime, "st_mtime");
    ensure!(v.st_dev != r.st_dev, "the mark has a device of its own");
    Ok(())
}

fn statfs_reports_the_real_filesystem(env: &Env) -> Outcome {
    let (r, v) = (
        statfs(real(env)).ctx("statfs real")?,
        statfs(view(env)).ctx("statfs mark")?,
    );
    ensure_eq!(v.f_type, SHIFTFS_MAGIC, "f_type");
    ensure_eq!(v.f_blocks, r.f_blocks, "f_blocks");
    ensure_eq!(v.f_bsize, r.f_bsize, "f_bsize");
    Ok(())
}

fn rmmod_while_marked_is_refused(_: &Env) -> Outcome {
    // delete_module(O_NONBLOCK), as rmmod(8) calls it, answers EWOULDBLOCK
    // for a module in use; rmmod reports it as "in use".
    ensure_eq!(
        sys::unload_module(FS_NAME),
        Err(nix::Error::EWOULDBLOCK),
        "rmmod while a mark is mounted"
    );
    // And the module still works.
    FsContext::open(FS_NAME).map(|_| ())
}

fn mark_inside_a_mark_is_einval(env: &Env) -> Outcome {
    let fc = FsContext::open(FS_NAME)?;
    fc.set_flag("mark").ctx("fsconfig(mark)")?;
    let src = view(env);
    fc.set_string("source", src.to_str().ok_or("path")?)
        .ctx("fsconfig(source)")?;
    let res = fc.create();
    expect_logged_error(&fc, res, Errno::INVAL, "inside a shiftfs mark")
}

fn container_cannot_mark_a_marked_path(env: &Env) -> Outcome {
    let view = view(env);
    container::run(move || {
        ensure_eq!(mark(&view, &view), Err(Errno::PERM), "mark in container");
        Ok(())
    })
}

fn container_shifting_mount_recognises_the_mark(env: &Env) -> Outcome {
    let view = view(env);
    let target = env.scratch.join("mark-target");
    std::fs::create_dir_all(&target).ctx("mkdir target")?;
    container::run(move || {
        // The source is marked: no longer EPERM. Shifting itself is next.
        let fc = FsContext::open(FS_NAME)?;
        fc.set_string("source", view.to_str().ok_or("path")?)
            .ctx("fsconfig(source)")?;
        let res = fc.create();
        expect_logged_error(
            &fc,
            res,
            Errno::OPNOTSUPP,
            "shifting mounts are not implemented",
        )?;
        let res = mount(&view, &target, FS_NAME, MountFlags::empty(), c"");
        ensure_eq!(res, Err(Errno::OPNOTSUPP), "mount(2) of a marked path");
        Ok(())
    })
}

fn unmount_releases_the_mark(env: &Env) -> Outcome {
    unmount(view(env), UnmountFlags::empty()).ctx("umount mark")?;
    let v = stat(view(env)).ctx("stat after umount")?;
    let r = stat(real(env)).ctx("stat real")?;
    ensure!(v.st_ino != r.st_ino, "mark still mounted after umount");
    Ok(())
}
