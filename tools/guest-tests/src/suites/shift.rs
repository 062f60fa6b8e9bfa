//! Shifting mounts, from a real container (0:100000:65536): on-disk ids
//! appear as the same ids inside, unmapped ones as the overflow id, the
//! mount stands directly on the real filesystem under the mark, and a
//! chown of one id leaves the other alone.

use crate::{
    container, ensure, ensure_eq,
    fixture::{expect_logged_error, load, unload, Tree},
    harness::{Context, Outcome},
    sys::{FsContext, FS_NAME},
    tests, Env,
};
use rustix::{
    fs::{chown, chownat, stat, unlink, AtFlags, CWD},
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::path::{Path, PathBuf};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    container_sees_on_disk_ids_as_its_own,
    container_sees_unmapped_ids_as_overflow,
    container_lists_the_real_directory,
    container_mounts_below_the_mark_root,
    container_cannot_shift_a_shifting_mount,
    shifting_mount_is_one_level_deep,
    shiftfs_on_overlayfs,
    stacking_past_the_limit_is_einval,
    chown_of_one_id_leaves_the_other_alone,
    host_unmarks,
    unload,
];

/// (name, on-disk uid and gid, what the container sees)
const OWNERS: [(&str, u32, u32); 5] = [
    ("root", 0, 0),
    ("user", 1000, 1000),
    ("last", 65_535, 65_535),
    ("first-unmapped", 65_536, 65_534),
    ("far", 70_000, 65_534),
];

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    let r = tree.real.clone();
    std::fs::create_dir_all(r.join("sub")).ctx("mkdir sub")?;
    for (name, id, _) in OWNERS {
        let f = r.join(name);
        std::fs::write(&f, name).ctx("create")?;
        std::os::unix::fs::chown(&f, Some(id), Some(id)).ctx("chown")?;
    }
    std::os::unix::fs::chown(r.join("sub"), Some(1000), Some(1000)).ctx("chown sub")?;
    for i in 0..5000 {
        std::fs::write(r.join(format!("many-{i:04}")), b"").ctx("create entry")?;
    }
    tree.mark()
}

fn container_sees_on_disk_ids_as_its_own(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        for (name, id, seen) in OWNERS.iter().filter(|o| o.1 < 65_536) {
            let st = stat(t.join(name)).ctx(&format!("stat {name}"))?;
            ensure_eq!(
                (st.st_uid, st.st_gid),
                (*seen, *seen),
                format!("owner of {name} (on disk {id})")
            );
        }
        let st = stat(t.join("sub")).ctx("stat sub")?;
        ensure_eq!(st.st_uid, 1000, "owner of sub");
        Ok(())
    })
}

fn container_sees_unmapped_ids_as_overflow(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        for (name, id, seen) in OWNERS.iter().filter(|o| o.1 >= 65_536) {
            let st = stat(t.join(name)).ctx(&format!("stat {name}"))?;
            ensure_eq!(
                (st.st_uid, st.st_gid),
                (*seen, *seen),
                format!("owner of {name} (on disk {id})")
            );
        }
        Ok(())
    })
}

fn listing(dir: &Path) -> Result<Vec<String>, String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .ctx("readdir")?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .ctx("readdir entry")?;
    v.sort();
    Ok(v)
}

fn container_lists_the_real_directory(env: &Env) -> Outcome {
    let want = listing(&tree(env).real)?;
    tree(env).in_shifted(move |t| {
        let got = listing(t)?;
        ensure_eq!(got.len(), 5000 + OWNERS.len() + 1, "entries");
        ensure_eq!(got, want, "listing through the shifting mount");
        Ok(())
    })
}

fn container_mounts_below_the_mark_root(env: &Env) -> Outcome {
    let (src, dst) = (tree(env).mark.join("sub"), tree(env).target);
    container::run(move || {
        mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount of sub")?;
        let st = stat(&dst).ctx("stat")?;
        ensure_eq!(st.st_uid, 1000, "owner of the mounted sub");
        Ok(())
    })
}

fn container_cannot_shift_a_shifting_mount(env: &Env) -> Outcome {
    let other = env.scratch.join("shift-other");
    std::fs::create_dir_all(&other).ctx("mkdir")?;
    tree(env).in_shifted(move |t| {
        let fc = FsContext::open(FS_NAME)?;
        fc.set_string("source", t.to_str().ok_or("path")?)
            .ctx("source")?;
        let res = fc.create();
        expect_logged_error(&fc, res, Errno::PERM, "not on a shiftfs mark")?;
        ensure_eq!(
            mount(t, &other, FS_NAME, MountFlags::empty(), c""),
            Err(Errno::PERM),
            "mount(2) of a shifting mount"
        );
        Ok(())
    })
}

fn shifting_mount_is_one_level_deep(env: &Env) -> Outcome {
    // An overlayfs over the shifting mount works only if shiftfs stacks one
    // level over tmpfs (the limit is two). Checked from the host: the
    // container has no business with overlayfs here.
    let (src, dst) = (tree(env).mark, tree(env).target);
    let lower = env.scratch.join("shift-ovl");
    std::fs::create_dir_all(&lower).ctx("mkdir")?;
    mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("host shifting mount")?;
    let data = std::ffi::CString::new(format!("lowerdir={}:{}", dst.display(), lower.display()))
        .ctx("mount data")?;
    let res = mount(
        "overlay",
        &lower,
        "overlay",
        MountFlags::RDONLY,
        data.as_c_str(),
    );
    let ok = res.is_ok();
    if ok {
        let st = stat(lower.join("user")).ctx("stat through overlay")?;
        ensure_eq!(st.st_uid, 1000, "owner through overlay on shiftfs");
        unmount(&lower, UnmountFlags::empty()).ctx("umount overlay")?;
    }
    unmount(&dst, UnmountFlags::empty()).ctx("umount")?;
    ensure!(ok, "overlayfs on a shifting mount: {res:?}");
    Ok(())
}

/// An overlayfs at `dir`/merged over `dir`/lower, with a file owned by 1000.
fn overlay(dir: &Path, lowerdir: &Path) -> Result<PathBuf, String> {
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(dir.join(d)).ctx("mkdir")?;
    }
    let data = std::ffi::CString::new(format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.display(),
        dir.join("upper").display(),
        dir.join("work").display()
    ))
    .ctx("mount data")?;
    let merged = dir.join("merged");
    mount(
        "overlay",
        &merged,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .ctx("mount overlay")?;
    Ok(merged)
}

fn shiftfs_on_overlayfs(env: &Env) -> Outcome {
    let dir = env.scratch.join("ovl1");
    let lower = dir.join("lower");
    std::fs::create_dir_all(&lower).ctx("mkdir")?;
    std::fs::write(lower.join("f"), b"ovl").ctx("create")?;
    std::os::unix::fs::chown(lower.join("f"), Some(1000), Some(1000)).ctx("chown")?;
    let merged = overlay(&dir, &lower)?;
    mount(&merged, &merged, FS_NAME, MountFlags::empty(), c"mark").ctx("mark the overlay")?;
    let (src, dst) = (merged.clone(), tree(env).target);
    let res = container::run(move || {
        mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        let st = stat(dst.join("f")).ctx("stat")?;
        ensure_eq!(st.st_uid, 1000, "owner through shiftfs on overlayfs");
        ensure_eq!(
            std::fs::read(dst.join("f")).ctx("read")?,
            b"ovl".to_vec(),
            "contents"
        );
        Ok(())
    });
    unmount(&merged, UnmountFlags::empty()).ctx("umount mark")?;
    res
}

fn stacking_past_the_limit_is_einval(env: &Env) -> Outcome {
    // overlayfs over overlayfs is two levels deep: no room for shiftfs.
    let dir = env.scratch.join("ovl2");
    let first = env.scratch.join("ovl1/merged");
    std::fs::create_dir_all(&dir).ctx("mkdir")?;
    let merged = overlay(&dir, &first)?;
    let fc = crate::sys::FsContext::open(FS_NAME)?;
    fc.set_flag("mark").ctx("fsconfig(mark)")?;
    fc.set_string("source", merged.to_str().ok_or("path")?)
        .ctx("fsconfig(source)")?;
    let res = fc.create();
    let out = expect_logged_error(&fc, res, Errno::INVAL, "stacking depth");
    unmount(&merged, UnmountFlags::empty()).ctx("umount overlay 2")?;
    unmount(&first, UnmountFlags::empty()).ctx("umount overlay 1")?;
    out
}

/// chown(2) of only the uid (gid -1) or only the gid through a shifting
/// mount changes that id and leaves the other alone. Guards against
/// shifting the id that was not asked for: chown_common() leaves it
/// uninitialised, so a setattr that shifts both whenever ATTR_UID or
/// ATTR_GID is set fails with EINVAL or not depending on stack contents;
/// hence 50 rounds of each.
fn chown_of_one_id_leaves_the_other_alone(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = t.join("chown-one");
        let mut fails = Vec::new();
        for i in 0..50 {
            std::fs::write(&f, b"x").ctx("create")?;
            let uid = Some(rustix::process::Uid::from_raw(1000 + i));
            let gid = Some(rustix::process::Gid::from_raw(1000 + i));
            if let Err(e) = chown(&f, uid, None) {
                fails.push(format!("chown({}, -1): {e:?}", 1000 + i));
            }
            if let Err(e) = chown(&f, None, gid) {
                fails.push(format!("chown(-1, {}): {e:?}", 1000 + i));
            }
            if let Err(e) = chownat(CWD, &f, uid, None, AtFlags::SYMLINK_NOFOLLOW) {
                fails.push(format!("lchown({}, -1): {e:?}", 1000 + i));
            }
        }
        unlink(&f).ctx("unlink")?;
        ensure!(
            fails.is_empty(),
            "{} of 150 failed: {:?}",
            fails.len(),
            &fails[..fails.len().min(6)]
        );
        Ok(())
    })
}

fn tree(env: &Env) -> Tree {
    Tree::new(env, "shift")
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
