//! Isolation: what stays out of a container's reach through shiftfs. It
//! may neither shift an unmarked path nor mark what it does not own; `..`,
//! symlinks and the host's mounts below the mark lead nowhere outside the
//! shifting mount; and the mark's credentials do not reach files whose
//! on-disk owner is outside the container's mapping.

use super::{caps, shift_mount, tree};
use crate::{
    container, ensure, ensure_eq,
    harness::{Context, Outcome},
    reliability as rel,
    sys::FS_NAME,
    Env,
};
use rustix::{
    fs::{self as rfs, AtFlags, Mode, OFlags, XattrFlags, CWD},
    io::Errno,
    mount::{mount, mount_bind, MountFlags},
};
use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

pub(super) fn container_cannot_shift_an_unmarked_path(env: &Env) -> Outcome {
    let tree = tree(env);
    let (real, mark, target, scratch) = (
        tree.real.clone(),
        tree.mark.clone(),
        tree.target.clone(),
        env.scratch.clone(),
    );
    container::run(move || {
        // The container's own tmpfs, and a bind mount of the real tree.
        let own = real.join("own");
        mount("ct", &own, "tmpfs", MountFlags::empty(), c"").ctx("own tmpfs")?;
        rfs::mkdir(own.join("d"), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
        let bind = real.join("ovl/m");
        rustix::mount::mount_bind_recursive(&real, &bind).ctx("bind of the real tree")?;
        shift_mount(&mark, &target).ctx("shifting mount of the mark")?;
        for src in [
            PathBuf::from("/"),
            scratch.clone(),
            real.clone(),
            real.join("alien"),
            own.join("d"),
            bind.join("own"),
            // Its own shifting mount is not a mark.
            target.clone(),
            target.join("own"),
            PathBuf::from("/proc"),
        ] {
            ensure_eq!(
                shift_mount(&src, &real.join("bindpoint")).err(),
                Some(Errno::PERM),
                format!("shifting mount of unmarked {}", src.display())
            );
        }
        Ok(())
    })
}

pub(super) fn container_cannot_mark_what_it_does_not_own(env: &Env) -> Outcome {
    let tree = tree(env);
    let (real, mark, scratch) = (tree.real.clone(), tree.mark.clone(), env.scratch.clone());
    container::run(move || {
        let bind = real.join("ovl/m");
        rustix::mount::mount_bind_recursive(&scratch, &bind).ctx("bind of the host scratch")?;
        let to = real.join("bindpoint");
        for src in [
            PathBuf::from("/"),
            scratch.clone(),
            real.clone(),
            real.join("own"),
            bind.clone(),
            PathBuf::from("/proc"),
            PathBuf::from("/sys"),
            PathBuf::from("/dev"),
        ] {
            let r = mount(&src, &to, FS_NAME, MountFlags::empty(), c"mark");
            ensure_eq!(
                r.err(),
                Some(Errno::PERM),
                format!("mark of {}", src.display())
            );
        }
        // The host's mark: not the container's either (or inside a mark).
        let r = mount(&mark, &to, FS_NAME, MountFlags::empty(), c"mark");
        ensure!(
            matches!(r, Err(Errno::PERM) | Err(Errno::INVAL)),
            "mark of the host's mark: {r:?}"
        );
        Ok(())
    })
}

fn names(dir: &Path) -> Result<Vec<String>, String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .ctx(&format!("readdir {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .ctx("readdir")?;
    v.sort();
    Ok(v)
}

pub(super) fn dotdot_stays_inside_the_shifting_mount(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        // A subdirectory of the mark, shifted: `..` of its root is the
        // target's parent, never the real or marked parent.
        shift_mount(&mark.join("own"), &target).ctx("shifting mount of mark/own")?;
        let box_ = target.parent().expect("parent").to_path_buf();
        ensure_eq!(names(&target.join(".."))?, vec!["target"], "target/..");
        ensure_eq!(
            names(&target.join("../../hostile-box"))?,
            vec!["target"],
            "target/../../hostile-box"
        );
        let root = rfs::open(&target, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .ctx("open target")?;
        let up = rfs::openat(
            &root,
            "..",
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .ctx("openat ..")?;
        let (a, b) = (rfs::fstat(&up).ctx("fstat")?, rfs::stat(&box_).ctx("stat")?);
        ensure_eq!(
            (a.st_dev, a.st_ino),
            (b.st_dev, b.st_ino),
            "openat(target, ..)"
        );
        for p in [
            "../alien",
            "../../real/alien",
            "../own/../alien",
            "./../../../alien",
        ] {
            ensure_eq!(
                rfs::statat(&root, p, AtFlags::empty()).err(),
                Some(Errno::NOENT),
                format!("{p} from the shifted root")
            );
        }
        // RESOLVE_BENEATH refuses `..` out of the root outright.
        let how = rfs::ResolveFlags::BENEATH;
        ensure_eq!(
            rfs::openat2(&root, "../target", OFlags::RDONLY, Mode::empty(), how).err(),
            Some(Errno::XDEV),
            "openat2 RESOLVE_BENEATH .."
        );
        Ok(())
    })
}

pub(super) fn symlinks_resolve_in_the_callers_view_with_its_ids(env: &Env) -> Outcome {
    let tree = tree(env);
    // On the host the links reach the secrets.
    ensure_eq!(
        std::fs::read(tree.real.join("rel-link")).ctx("host reads rel-link")?,
        b"host secret",
        "host view"
    );
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let t = &target;
        // Absolute: resolved in the container's root, with its ids: the
        // host root's 0600 file stays closed.
        ensure_eq!(
            rfs::open(t.join("abs-link"), OFlags::RDONLY, Mode::empty()).err(),
            Some(Errno::ACCESS),
            "absolute link to a host secret"
        );
        // Relative: resolved from where the link is seen (the target), not
        // from the real directory.
        ensure_eq!(
            rfs::open(t.join("rel-link"), OFlags::RDONLY, Mode::empty()).err(),
            Some(Errno::NOENT),
            "relative link pointing outside"
        );
        // This one reaches the host's 0700 directory from both places:
        // closed to the container.
        ensure_eq!(
            rfs::open(t.join("rel-link2"), OFlags::RDONLY, Mode::empty()).err(),
            Some(Errno::ACCESS),
            "relative link into a host directory"
        );
        // A link the container makes itself gets no further.
        rfs::symlink("../../hostile-ext4/hostile-secret", t.join("own/mine")).ctx("symlink")?;
        let r = rfs::open(t.join("own/mine"), OFlags::RDONLY, Mode::empty());
        ensure!(
            matches!(r, Err(Errno::NOENT) | Err(Errno::ACCESS)),
            "own relative link to the secret: {r:?}"
        );
        rfs::unlink(t.join("own/mine")).ctx("unlink")?;
        Ok(())
    })
}

pub(super) fn host_mounts_below_the_mark_do_not_show(env: &Env) -> Outcome {
    let tree = tree(env);
    ensure_eq!(
        names(&tree.real.join("bindpoint"))?,
        vec!["s"],
        "the host's bind mount on the real path"
    );
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        ensure_eq!(
            names(&target.join("bindpoint"))?,
            Vec::<String>::new(),
            "bindpoint through the shifting mount"
        );
        ensure_eq!(
            rfs::stat(target.join("bindpoint/s")).err(),
            Some(Errno::NOENT),
            "a file of the bind mount"
        );
        // Binding parts of its own mount elsewhere gives no way out either.
        mount_bind(target.join("own"), target.join("ovl/m")).ctx("bind")?;
        ensure_eq!(
            names(&target.join("ovl/m/.."))?,
            vec!["l", "m", "u", "w"],
            "`..` of a bind mount inside the shifting mount"
        );
        Ok(())
    })
}

fn xattrs_of(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = rfs::llistxattr(p, &mut buf).unwrap_or(0);
    let mut v: Vec<String> = buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    v.sort();
    v
}

/// Owner, group, mode, size and xattr names on disk of the files below
/// `r` whose owner is outside the container's mapping.
fn unmapped_on_disk(r: &Path) -> Vec<(u32, u32, u32, u64, Vec<String>)> {
    ["alien/file", "alien-top", "alien"]
        .iter()
        .map(|f| {
            let md = std::fs::symlink_metadata(r.join(f)).expect("stat");
            (
                md.uid(),
                md.gid(),
                md.mode(),
                md.size(),
                xattrs_of(&r.join(f)),
            )
        })
        .collect()
}

pub(super) fn mark_credentials_do_not_reach_unmapped_files(env: &Env) -> Outcome {
    let tree = tree(env);
    let r = tree.real.clone();
    let before = unmapped_on_disk(&r);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let t = &target;
        let st = rfs::stat(t.join("alien/file")).ctx("stat")?;
        ensure_eq!(
            (st.st_uid, st.st_gid),
            (65_534, 65_534),
            "shown as overflow ids"
        );
        let mut seen = BTreeMap::new();
        let file = t.join("alien/file");
        let top = t.join("alien-top");
        let uid = |n| Some(rustix::process::Uid::from_raw(n));
        let checks: Vec<(&str, Result<(), Errno>)> = vec![
            (
                "read",
                rfs::open(&file, OFlags::RDONLY, Mode::empty()).map(drop),
            ),
            (
                "write",
                rfs::open(&file, OFlags::WRONLY, Mode::empty()).map(drop),
            ),
            (
                "read top",
                rfs::open(&top, OFlags::RDONLY, Mode::empty()).map(drop),
            ),
            (
                "write top",
                rfs::open(&top, OFlags::WRONLY, Mode::empty()).map(drop),
            ),
            ("chmod", rfs::chmod(&file, Mode::from_raw_mode(0o666))),
            ("chmod top", rfs::chmod(&top, Mode::from_raw_mode(0o666))),
            ("chown to 0", rfs::chown(&top, uid(0), None)),
            ("chown to 70000", rfs::chown(&top, uid(70_000), None)),
            ("truncate", rel::truncate(&top, 0)),
            (
                "utimes",
                rfs::utimensat(
                    CWD,
                    &top,
                    &rfs::Timestamps {
                        last_access: rfs::Timespec {
                            tv_sec: 1,
                            tv_nsec: 0,
                        },
                        last_modification: rfs::Timespec {
                            tv_sec: 1,
                            tv_nsec: 0,
                        },
                    },
                    AtFlags::empty(),
                ),
            ),
            ("unlink in its dir", rfs::unlink(&file)),
            ("unlink in a mapped dir", rfs::unlink(&top)),
            ("rename", rfs::rename(&top, t.join("own/stolen"))),
            ("link", rfs::link(&top, t.join("own/linked"))),
            (
                "create in its dir",
                rfs::open(
                    t.join("alien/new"),
                    OFlags::CREATE | OFlags::WRONLY,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop),
            ),
            (
                "setxattr user",
                rfs::setxattr(&top, "user.x", b"x", XattrFlags::empty()),
            ),
            (
                "setxattr trusted",
                rfs::setxattr(&top, "trusted.x", b"x", XattrFlags::empty()),
            ),
            (
                "setxattr security",
                rfs::setxattr(&top, "security.x", b"x", XattrFlags::empty()),
            ),
            (
                "setcap",
                rfs::setxattr(
                    &top,
                    "security.capability",
                    &caps(2, None),
                    XattrFlags::empty(),
                ),
            ),
            ("removexattr", rfs::removexattr(&top, "user.k")),
            (
                "chmod dir",
                rfs::chmod(t.join("alien"), Mode::from_raw_mode(0o777)),
            ),
            ("rmdir", rfs::rmdir(t.join("alien"))),
        ];
        let mut allowed = Vec::new();
        for (what, r) in checks {
            match r {
                Ok(()) => allowed.push(what),
                Err(e) => {
                    seen.insert(what, e);
                }
            }
        }
        ensure!(
            allowed.is_empty(),
            "allowed on unmapped files: {allowed:?} (refused: {seen:?})"
        );
        Ok(())
    })?;
    let after = unmapped_on_disk(&r);
    ensure_eq!(after, before, "unmapped files on disk");
    ensure!(
        !r.join("own/stolen").exists() && !r.join("own/linked").exists(),
        "moved or linked"
    );
    Ok(())
}
