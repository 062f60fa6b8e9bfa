//! Stacking inside the container: overlayfs mounted by the container with
//! lower, upper and work directories on its shifting mount; and nested
//! containers: root of the container marks a path inside its shifting
//! mount and a nested user namespace mounts it shifted again.

use crate::{
    container, ensure, ensure_eq,
    fixture::{become_id, load, unload, Tree},
    harness::{Context, Outcome},
    sys::FS_NAME,
    tests, Env,
};
use rustix::{
    fs::{self as rfs, Mode},
    io::Errno,
    mount::{mount, MountFlags},
};
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    overlay_in_the_container_creates_modifies_and_deletes,
    docker_overlay2_shape_in_the_container,
    nested_container_sees_and_writes_on_disk_ids,
    nested_mark_does_not_deepen_the_stack,
    caller_outside_the_nested_mapping_is_eoverflow,
    host_unmarks,
    unload,
];

fn tree(env: &Env) -> Tree {
    Tree::new(env, "stacking")
}

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    let r = &tree.real;
    for d in [
        "ovl/lower/dir",
        "ovl/upper",
        "ovl/work",
        "ovl/merged",
        "nest",
        "nest-mnt",
    ] {
        std::fs::create_dir_all(r.join(d)).ctx("mkdir")?;
    }
    for (f, uid) in [
        ("ovl/lower/kept", 0),
        ("ovl/lower/modified", 1000),
        ("ovl/lower/deleted", 1000),
        ("ovl/lower/dir/inner", 1000),
        ("nest/f5", 5),
        ("nest/f1500", 1500),
    ] {
        std::fs::write(r.join(f), f.as_bytes()).ctx("create")?;
        std::os::unix::fs::chown(r.join(f), Some(uid), Some(uid)).ctx("chown")?;
    }
    std::os::unix::fs::chown(r.join("ovl/lower/dir"), Some(1000), Some(1000)).ctx("chown")?;
    docker_layers(&r.join("d2"))?;
    tree.mark()
}

/// Docker's overlay2 layout on the host (image layers as a runtime unpacks
/// them): five lower layers (`l1` the top), files owned by 0, 1000 and 33,
/// a file shadowed by a higher layer, hard links, and an upper and work
/// directory.
fn docker_layers(d: &Path) -> Outcome {
    for dir in [
        "l5/etc",
        "l5/olddir/deep",
        "l4/home/user",
        "l3/var/www",
        "l2/app",
        "l1/etc",
        "upper",
        "work",
        "merged",
    ] {
        std::fs::create_dir_all(d.join(dir)).ctx("mkdir")?;
    }
    for (f, uid) in [
        ("l5/etc/passwd", 0),
        ("l5/etc/shadowed", 0),
        ("l5/olddir/deep/f", 1000),
        ("l4/home/user/notes", 1000),
        ("l3/var/www/index", 33),
        ("l3/var/www/other", 33),
        ("l2/app/a", 1000),
        ("l1/etc/shadowed", 0),
    ] {
        std::fs::write(d.join(f), f.as_bytes()).ctx("create")?;
        std::os::unix::fs::chown(d.join(f), Some(uid), Some(uid)).ctx("chown")?;
    }
    std::fs::hard_link(d.join("l2/app/a"), d.join("l2/app/b")).ctx("hard link")?;
    for (dir, uid) in [("l4/home/user", 1000), ("l3/var/www", 33), ("l2/app", 1000)] {
        std::os::unix::fs::chown(d.join(dir), Some(uid), Some(uid)).ctx("chown")?;
    }
    Ok(())
}

fn on_disk(p: &Path) -> Result<(u32, u32, u32, u64), String> {
    let md = std::fs::symlink_metadata(p).ctx(&format!("stat {}", p.display()))?;
    Ok((md.uid(), md.gid(), md.mode() & 0o170000, md.rdev()))
}

fn overlay_in_the_container_creates_modifies_and_deletes(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let o = t.join("ovl");
        let opts = format!(
            "userxattr,lowerdir={},upperdir={},workdir={}",
            o.join("lower").display(),
            o.join("upper").display(),
            o.join("work").display()
        );
        let opts = std::ffi::CString::new(opts).expect("no NUL");
        mount(
            "overlay",
            o.join("merged"),
            "overlay",
            MountFlags::empty(),
            &*opts,
        )
        .ctx("mount overlay on the shifting mount")?;
        let m = o.join("merged");
        // Create, as root and as user 1000 of the container.
        std::fs::write(m.join("new"), b"new").ctx("create")?;
        // Modify a lower file (copy-up).
        let mut data = std::fs::read(m.join("modified")).ctx("read lower")?;
        data.extend_from_slice(b"+changed");
        std::fs::write(m.join("modified"), &data).ctx("modify")?;
        let st = rfs::stat(m.join("modified")).ctx("stat")?;
        ensure_eq!(st.st_uid, 1000, "owner after copy-up, in the container");
        // Delete a lower file and a lower directory (whiteouts), then make a
        // new directory where the old one was (opaque).
        std::fs::remove_file(m.join("deleted")).ctx("delete")?;
        std::fs::remove_file(m.join("dir/inner")).ctx("delete inner")?;
        rfs::rmdir(m.join("dir")).ctx("rmdir")?;
        rfs::mkdir(m.join("dir"), Mode::from_raw_mode(0o755)).ctx("mkdir over a whiteout")?;
        ensure_eq!(
            rfs::stat(m.join("deleted")).err(),
            Some(Errno::NOENT),
            "deleted"
        );
        ensure_eq!(
            rfs::stat(m.join("dir/inner")).err(),
            Some(Errno::NOENT),
            "opaque dir"
        );
        // A file made by user 1000 of the container.
        rfs::chmod(m.join("dir"), Mode::from_raw_mode(0o777)).ctx("chmod")?;
        become_id(1000)?;
        std::fs::write(m.join("dir/by-user"), b"u").ctx("create as 1000")?;
        let mut names: Vec<String> = std::fs::read_dir(&m)
            .ctx("readdir")?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .ctx("readdir")?;
        names.sort();
        ensure_eq!(names, ["dir", "kept", "modified", "new"], "merged listing");
        Ok(())
    })?;
    let u = tree(env).real.join("ovl/upper");
    let l = tree(env).real.join("ovl/lower");
    ensure_eq!(
        on_disk(&u.join("new"))?.0,
        0,
        "created file's owner on disk"
    );
    ensure_eq!(
        on_disk(&u.join("modified"))?.0,
        1000,
        "copied-up file's owner on disk"
    );
    ensure_eq!(
        std::fs::read(u.join("modified")).ctx("read")?,
        b"ovl/lower/modified+changed",
        "copied-up content"
    );
    ensure_eq!(
        std::fs::read(l.join("modified")).ctx("read")?,
        b"ovl/lower/modified",
        "lower untouched"
    );
    ensure_eq!(
        on_disk(&u.join("deleted"))?,
        (0, 0, 0o020000, 0),
        "whiteout on disk"
    );
    ensure!(l.join("deleted").exists(), "lower file removed");
    let mut buf = [0u8; 8];
    let n = rfs::getxattr(u.join("dir"), "user.overlay.opaque", &mut buf)
        .ctx("opaque xattr on disk")?;
    ensure_eq!(&buf[..n], b"y", "opaque xattr");
    ensure_eq!(
        on_disk(&u.join("dir/by-user"))?.0,
        1000,
        "user's file on disk"
    );
    Ok(())
}

/// The nested container's map inside the outer one: its 0..999 are the
/// outer container's 1000..1999 (host 101000..101999).
const NESTED_MAP: &str = "0 1000 1000";

/// In the outer container, with its shifting mount at `t`: marks `t/nest`.
/// Docker's overlay2 shape inside the container on its shifting mount:
/// overlayfs with five lower layers and an upper (`userxattr`), copy-up of
/// files owned by several ids, whiteouts and opaque directories, renaming a
/// lower directory (EXDEV, which tools answer by copying), hard links
/// across copy-up; no EIO anywhere, and the owners right on disk.
fn docker_overlay2_shape_in_the_container(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let d = t.join("d2");
        let lowers: Vec<String> = ["l1", "l2", "l3", "l4", "l5"]
            .iter()
            .map(|l| d.join(l).display().to_string())
            .collect();
        let opts = format!(
            "userxattr,lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            d.join("upper").display(),
            d.join("work").display()
        );
        let opts = std::ffi::CString::new(opts).expect("no NUL");
        let m = d.join("merged");
        mount("overlay", &m, "overlay", MountFlags::empty(), &*opts)
            .ctx("mount overlay, five lowers")?;
        // The higher layer wins.
        ensure_eq!(
            std::fs::read(m.join("etc/shadowed")).ctx("read")?,
            b"l1/etc/shadowed".to_vec(),
            "shadowed file"
        );
        // Copy-up of files owned by 0, 1000 and 33.
        for (f, uid) in [
            ("etc/passwd", 0),
            ("home/user/notes", 1000),
            ("var/www/other", 33),
        ] {
            let mut data = std::fs::read(m.join(f)).ctx("read lower")?;
            data.extend_from_slice(b"+changed");
            std::fs::write(m.join(f), &data).ctx("modify (copy-up)")?;
            ensure_eq!(
                rfs::stat(m.join(f)).ctx("stat")?.st_uid,
                uid,
                format!("owner of {f} after copy-up")
            );
        }
        // Hard links across copy-up: each name stays readable.
        std::fs::write(m.join("app/a"), b"new a").ctx("modify a hard link")?;
        ensure_eq!(
            std::fs::read(m.join("app/a")).ctx("read a")?,
            b"new a".to_vec(),
            "the changed link"
        );
        ensure_eq!(
            std::fs::read(m.join("app/b")).ctx("read b")?,
            b"l2/app/a".to_vec(),
            "the other link"
        );
        // A whiteout, and an opaque directory where a lower one was.
        std::fs::remove_file(m.join("var/www/index")).ctx("unlink a lower file")?;
        std::fs::remove_dir_all(m.join("etc")).ctx("rm -r a lower directory")?;
        rfs::mkdir(m.join("etc"), Mode::from_raw_mode(0o755)).ctx("mkdir where it was")?;
        ensure_eq!(
            std::fs::read_dir(m.join("etc")).ctx("readdir")?.count(),
            0,
            "the new directory is opaque"
        );
        // Renaming a lower directory: EXDEV (no redirect_dir for an
        // unprivileged overlay); a copy and a removal do what mv does.
        ensure_eq!(
            rfs::rename(m.join("olddir"), m.join("newdir")),
            Err(Errno::XDEV),
            "rename of a lower directory"
        );
        rfs::mkdir(m.join("newdir"), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
        rfs::mkdir(m.join("newdir/deep"), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
        std::fs::copy(m.join("olddir/deep/f"), m.join("newdir/deep/f")).ctx("copy")?;
        std::fs::remove_dir_all(m.join("olddir")).ctx("remove the old directory")?;
        // No EIO anywhere: every file of the merged tree reads.
        let mut files = 0;
        crate::fixture::walk(&m, |p, _, md| {
            if md.is_file() {
                std::fs::read(p).ctx(&format!("read {}", p.display()))?;
                files += 1;
            }
            Ok(())
        })?;
        // notes, other, a, b and the copied f.
        ensure_eq!(files, 5, "files in the merged tree");
        Ok(())
    })?;
    let u = tree(env).real.join("d2/upper");
    for (f, uid) in [
        ("etc", 0),
        ("home/user/notes", 1000),
        ("var/www/other", 33),
        ("app/a", 1000),
        ("newdir/deep/f", 0),
    ] {
        ensure_eq!(
            on_disk(&u.join(f))?.0,
            uid,
            format!("on-disk owner of upper/{f}")
        );
    }
    let wh = rfs::stat(u.join("var/www/index")).ctx("stat whiteout")?;
    ensure_eq!(
        (wh.st_mode & libc::S_IFMT, wh.st_rdev),
        (libc::S_IFCHR, 0),
        "the whiteout on disk"
    );
    let opaque = xattr(&u.join("etc"), "user.overlay.opaque")?;
    ensure_eq!(
        opaque.as_deref(),
        Some(&b"y"[..]),
        "user.overlay.opaque of the new directory"
    );
    Ok(())
}

/// The value of xattr `name` of `p` on the host, if it has one.
fn xattr(p: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::getxattr(p, name, &mut buf) {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(Errno::NODATA) => Ok(None),
        Err(e) => Err(format!("getxattr {name}: {e}")),
    }
}

fn outer_marks(t: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (nest, mnt) = (t.join("nest"), t.join("nest-mnt"));
    mount(&nest, &nest, FS_NAME, MountFlags::empty(), c"mark").ctx("nested mark")?;
    Ok((nest, mnt))
}

fn nested_container_sees_and_writes_on_disk_ids(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let (nest, mnt) = outer_marks(t)?;
        container::run_mapped(NESTED_MAP, move || {
            mount(&nest, &mnt, FS_NAME, MountFlags::empty(), c"").ctx("nested shifting mount")?;
            let st = rfs::stat(mnt.join("f5")).ctx("stat")?;
            ensure_eq!(
                (st.st_uid, st.st_gid),
                (5, 5),
                "on-disk 5 in the nested container"
            );
            let st = rfs::stat(mnt.join("f1500")).ctx("stat")?;
            ensure_eq!(st.st_uid, 65_534, "on-disk 1500, outside the nested map");
            std::fs::write(mnt.join("by-nested-root"), b"r").ctx("create as nested root")?;
            rfs::chmod(&mnt, Mode::from_raw_mode(0o777)).ctx("chmod")?;
            become_id(7)?;
            std::fs::write(mnt.join("by-nested-7"), b"7").ctx("create as nested 7")?;
            Ok(())
        })
    })?;
    let r = tree(env).real.join("nest");
    ensure_eq!(
        on_disk(&r.join("by-nested-root"))?.0,
        0,
        "nested root's file on disk"
    );
    ensure_eq!(
        on_disk(&r.join("by-nested-7"))?.0,
        7,
        "nested 7's file on disk"
    );
    Ok(())
}

fn nested_mark_does_not_deepen_the_stack(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let (nest, mnt) = outer_marks(t)?;
        container::run_mapped(NESTED_MAP, move || {
            mount(&nest, &mnt, FS_NAME, MountFlags::empty(), c"").ctx("nested shifting mount")?;
            // overlayfs on the nested shifting mount: depth 2 is allowed
            // only if the nested mount is at depth 1, like the outer one.
            for d in ["l", "u", "w", "m"] {
                rfs::mkdir(mnt.join(d), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
            }
            let opts = format!(
                "userxattr,lowerdir={},upperdir={},workdir={}",
                mnt.join("l").display(),
                mnt.join("u").display(),
                mnt.join("w").display()
            );
            let opts = std::ffi::CString::new(opts).expect("no NUL");
            mount(
                "overlay",
                mnt.join("m"),
                "overlay",
                MountFlags::empty(),
                &*opts,
            )
            .ctx("overlayfs on the nested shifting mount")?;
            std::fs::write(mnt.join("m/x"), b"x").ctx("write through all three")?;
            // A mark inside the nested mount again, and a shifting mount of it.
            let (n2, m2) = (mnt.join("l"), mnt.join("w"));
            mount(&n2, &n2, FS_NAME, MountFlags::empty(), c"mark")
                .ctx("mark in the nested mount")?;
            container::run_mapped("0 0 100", move || {
                mount(&n2, &m2, FS_NAME, MountFlags::empty(), c"").ctx("third-level shifting mount")
            })
        })
    })?;
    let r = tree(env).real.join("nest");
    ensure_eq!(
        std::fs::read(r.join("u/x")).ctx("read")?,
        b"x",
        "overlay upper on disk"
    );
    ensure_eq!(on_disk(&r.join("u/x"))?.0, 0, "owner on disk");
    Ok(())
}

fn caller_outside_the_nested_mapping_is_eoverflow(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let (nest, mnt) = outer_marks(t)?;
        let m2 = mnt.clone();
        container::with_host_mapped(
            NESTED_MAP,
            move || {
                mount(&nest, &mnt, FS_NAME, MountFlags::empty(), c"").ctx("nested mount")?;
                rfs::stat(mnt.join("f5")).ctx("stat")?;
                Ok(())
            },
            move |pid| {
                // Root of the outer container is not in the nested map: it
                // cannot act through the nested mount.
                let p = PathBuf::from(format!("/proc/{pid}/root"))
                    .join(m2.strip_prefix("/").unwrap_or(&m2));
                let r = rfs::open(
                    p.join("new"),
                    rfs::OFlags::CREATE | rfs::OFlags::WRONLY,
                    Mode::from_raw_mode(0o644),
                );
                ensure_eq!(
                    r.err(),
                    Some(Errno::OVERFLOW),
                    "create by an unmapped caller"
                );
                Ok(())
            },
        )
    })?;
    ensure!(!tree(env).real.join("nest/new").exists(), "created on disk");
    Ok(())
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
