//! Mark mounts: the host marks a directory; the mark shows it unshifted,
//! reports the real filesystem's figures, holds the module while mounted,
//! is recognised by a shifting mount, and goes away cleanly.

use crate::{
    container, ensure, ensure_eq,
    fixture::{drop_caches, expect_logged_error, load, unload, Tree},
    harness::{Context, Outcome},
    sys::{self, FsContext, FS_NAME},
    tests, Env,
};
use rustix::{
    fs::{stat, statfs},
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// statfs's `f_type` for shiftfs.
const SHIFTFS_MAGIC: i64 = 0x6a65_6a62;

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_marks_a_directory,
    mark_is_listed_with_mark_option,
    mark_root_shows_real_attributes,
    statfs_reports_the_real_filesystem,
    rmmod_while_marked_is_refused,
    mark_lists_the_real_directory,
    mark_shows_files_as_they_are_on_disk,
    mark_follows_symlinks_and_deep_paths,
    hard_links_share_one_inode,
    inode_numbers_survive_drop_caches,
    lookup_sees_files_created_below_later,
    files_read_through_the_mark,
    permission_follows_chmod_below,
    nothing_executes_through_a_mark,
    mark_inside_a_mark_is_einval,
    container_cannot_mark_a_marked_path,
    container_shifting_mount_recognises_the_mark,
    unmount_releases_the_mark,
    unload,
];

fn mark(src: &Path, dst: &Path) -> Result<(), Errno> {
    mount(src, dst, FS_NAME, MountFlags::empty(), c"mark")
}

/// Entries made in the real directory before it is marked.
const ENTRIES: usize = 300;

fn host_marks_a_directory(env: &Env) -> Outcome {
    tree(env).create()?;
    let r = tree(env).real;
    std::fs::create_dir_all(r.join("sub/deeper")).ctx("mkdir")?;
    std::fs::write(r.join("file"), b"data").ctx("create file")?;
    std::fs::write(r.join("sub/deeper/leaf"), b"leaf").ctx("create leaf")?;
    std::os::unix::fs::chown(r.join("file"), Some(1000), Some(1001)).ctx("chown")?;
    std::os::unix::fs::symlink("sub/deeper/leaf", r.join("link")).ctx("symlink")?;
    std::fs::hard_link(r.join("file"), r.join("hardlink")).ctx("link")?;
    for i in 0..ENTRIES {
        std::fs::write(r.join(format!("entry-{i:04}")), b"").ctx("create entry")?;
    }
    mark(&r, &tree(env).mark).ctx("mount -t shiftfs -o mark")
}

fn names(dir: &Path) -> Result<Vec<(String, bool)>, String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).ctx(&format!("readdir {}", dir.display()))? {
        let e = e.ctx("readdir entry")?;
        let is_dir = e.file_type().ctx("d_type")?.is_dir();
        v.push((e.file_name().to_string_lossy().into_owned(), is_dir));
    }
    v.sort();
    Ok(v)
}

fn mark_lists_the_real_directory(env: &Env) -> Outcome {
    let (r, v) = (names(&tree(env).real)?, names(&tree(env).mark)?);
    ensure_eq!(v.len(), ENTRIES + 4, "entries through the mark");
    ensure!(v == r, "listing differs from the real directory");
    ensure!(
        v.contains(&("sub".to_string(), true)),
        "d_type of a directory not kept"
    );
    Ok(())
}

fn same_attrs(what: &str, v: &rustix::fs::Stat, r: &rustix::fs::Stat) -> Outcome {
    ensure_eq!(v.st_ino, r.st_ino, format!("{what}: st_ino"));
    ensure_eq!(v.st_mode, r.st_mode, format!("{what}: st_mode"));
    ensure_eq!(v.st_uid, r.st_uid, format!("{what}: st_uid"));
    ensure_eq!(v.st_gid, r.st_gid, format!("{what}: st_gid"));
    ensure_eq!(v.st_size, r.st_size, format!("{what}: st_size"));
    ensure_eq!(v.st_nlink, r.st_nlink, format!("{what}: st_nlink"));
    ensure_eq!(v.st_mtime, r.st_mtime, format!("{what}: st_mtime"));
    Ok(())
}

fn mark_shows_files_as_they_are_on_disk(env: &Env) -> Outcome {
    for name in ["file", "sub", "entry-0007"] {
        let v = stat(tree(env).mark.join(name)).ctx("stat through mark")?;
        let r = stat(tree(env).real.join(name)).ctx("stat real")?;
        same_attrs(name, &v, &r)?;
    }
    let v = stat(tree(env).mark.join("file")).ctx("stat")?;
    ensure_eq!((v.st_uid, v.st_gid), (1000, 1001), "owner of file");
    Ok(())
}

fn mark_follows_symlinks_and_deep_paths(env: &Env) -> Outcome {
    let target = std::fs::read_link(tree(env).mark.join("link")).ctx("readlink")?;
    ensure_eq!(target, PathBuf::from("sub/deeper/leaf"), "symlink target");
    let (v, r) = (
        stat(tree(env).mark.join("link")).ctx("stat via symlink")?,
        stat(tree(env).real.join("sub/deeper/leaf")).ctx("stat real leaf")?,
    );
    same_attrs("link", &v, &r)?;
    let v = rustix::fs::lstat(tree(env).mark.join("link")).ctx("lstat")?;
    ensure_eq!(v.st_mode & 0o170000, 0o120000, "lstat: a symlink");
    Ok(())
}

fn hard_links_share_one_inode(env: &Env) -> Outcome {
    let (a, b) = (
        stat(tree(env).mark.join("file")).ctx("stat file")?,
        stat(tree(env).mark.join("hardlink")).ctx("stat hardlink")?,
    );
    ensure_eq!(a.st_ino, b.st_ino, "st_ino of two links");
    ensure_eq!(a.st_nlink, 2, "st_nlink");
    Ok(())
}

fn inode_numbers_survive_drop_caches(env: &Env) -> Outcome {
    let before = stat(tree(env).mark.join("sub/deeper/leaf")).ctx("stat")?;
    drop_caches()?;
    let after = stat(tree(env).mark.join("sub/deeper/leaf")).ctx("stat after drop_caches")?;
    ensure_eq!(after.st_ino, before.st_ino, "st_ino after drop_caches");
    Ok(())
}

fn lookup_sees_files_created_below_later(env: &Env) -> Outcome {
    let (v, r) = (tree(env).mark.join("later"), tree(env).real.join("later"));
    ensure_eq!(
        stat(&v).map(|_| ()),
        Err(Errno::NOENT),
        "stat before it exists"
    );
    std::fs::write(&r, b"now").ctx("create on the real directory")?;
    let st = stat(&v).ctx("stat after it was created below")?;
    ensure_eq!(st.st_size, 3, "size");
    std::fs::remove_file(&r).ctx("remove below")?;
    ensure_eq!(
        stat(&v).map(|_| ()),
        Err(Errno::NOENT),
        "stat after removal"
    );
    Ok(())
}

/// Runs `cat PATH` as `uid`; its output if it succeeded.
fn cat_as(uid: u32, path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("cat")
        .arg(path)
        .uid(uid)
        .gid(uid)
        .output()
        .ctx("run cat")?;
    Ok(out.status.success().then_some(out.stdout))
}

fn permission_follows_chmod_below(env: &Env) -> Outcome {
    let (r, v) = (
        tree(env).real.join("guarded"),
        tree(env).mark.join("guarded"),
    );
    std::fs::write(&r, b"guarded").ctx("create")?;
    std::fs::set_permissions(&r, std::fs::Permissions::from_mode(0o600)).ctx("chmod 0600")?;
    ensure_eq!(
        cat_as(1000, &v)?,
        None,
        "read of a 0600 root file by uid 1000"
    );
    // Changed below shiftfs, through the real path: the next lookup must
    // see it.
    std::fs::set_permissions(&r, std::fs::Permissions::from_mode(0o644)).ctx("chmod 0644")?;
    ensure_eq!(
        cat_as(1000, &v)?,
        Some(b"guarded".to_vec()),
        "after chmod 0644 below"
    );
    Ok(())
}

fn nothing_executes_through_a_mark(env: &Env) -> Outcome {
    let prog = tree(env).real.join("true");
    std::fs::copy("/bin/true", &prog).ctx("copy /bin/true")?;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).ctx("chmod")?;
    let err = std::process::Command::new(tree(env).mark.join("true"))
        .status()
        .err()
        .and_then(|e| e.raw_os_error());
    ensure_eq!(
        err,
        Some(Errno::ACCESS.raw_os_error()),
        "exec through a mark"
    );
    let ok = std::process::Command::new(&prog)
        .status()
        .ctx("exec on the real path")?;
    ensure!(ok.success(), "the program itself runs");
    Ok(())
}

fn files_read_through_the_mark(env: &Env) -> Outcome {
    let data = std::fs::read(tree(env).mark.join("file")).ctx("read through the mark")?;
    ensure_eq!(data, b"data".to_vec(), "contents");
    Ok(())
}

fn mark_is_listed_with_mark_option(env: &Env) -> Outcome {
    let mounts = std::fs::read_to_string("/proc/mounts").ctx("read /proc/mounts")?;
    let view = tree(env).mark;
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
        stat(tree(env).real).ctx("stat real")?,
        stat(tree(env).mark).ctx("stat mark")?,
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
        statfs(tree(env).real).ctx("statfs real")?,
        statfs(tree(env).mark).ctx("statfs mark")?,
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
    let src = tree(env).mark;
    fc.set_string("source", src.to_str().ok_or("path")?)
        .ctx("fsconfig(source)")?;
    let res = fc.create();
    expect_logged_error(&fc, res, Errno::INVAL, "inside a shiftfs mark")
}

fn container_cannot_mark_a_marked_path(env: &Env) -> Outcome {
    let view = tree(env).mark;
    container::run(move || {
        ensure_eq!(mark(&view, &view), Err(Errno::PERM), "mark in container");
        Ok(())
    })
}

fn container_shifting_mount_recognises_the_mark(env: &Env) -> Outcome {
    let view = tree(env).mark;
    let target = tree(env).target;
    container::run(move || {
        mount(&view, &target, FS_NAME, MountFlags::empty(), c"")
            .ctx("shifting mount of a marked path")?;
        unmount(&target, UnmountFlags::empty()).ctx("umount")
    })
}

fn unmount_releases_the_mark(env: &Env) -> Outcome {
    unmount(tree(env).mark, UnmountFlags::empty()).ctx("umount mark")?;
    let v = stat(tree(env).mark).ctx("stat after umount")?;
    let r = stat(tree(env).real).ctx("stat real")?;
    ensure!(v.st_ino != r.st_ino, "mark still mounted after umount");
    Ok(())
}

/// `mark` is where the host mounts the mark of `real`.
fn tree(env: &Env) -> Tree {
    Tree::new(env, "mark")
}
