//! Privileges a container could try to grant itself through shiftfs:
//! set-id files for ids outside its mapping, set-id bits kept across
//! writes by other users, file capabilities honoured outside the namespace
//! that set them, and malformed ACL and capability values.

use super::{caps, chmod, shift_mount, tree};
use crate::{
    container, ensure, ensure_eq,
    fixture::become_id,
    harness::{Context, Outcome},
    reliability::{self as rel, Rng},
    Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags, XattrFlags},
    io::Errno,
};
use std::{os::unix::fs::MetadataExt, path::Path, process::Command};

pub(super) fn no_set_id_file_for_an_id_outside_the_mapping(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let t = &target;
        let f = t.join("own/mine-suid");
        std::fs::write(&f, b"x").ctx("create")?;
        chmod(&f, 0o4755)?;
        ensure_eq!(
            rfs::chown(
                &f,
                Some(rustix::process::Uid::from_raw(70_000)),
                Some(rustix::process::Gid::from_raw(0))
            )
            .err(),
            Some(Errno::INVAL),
            "chown to an unmappable uid"
        );
        ensure_eq!(
            rfs::chmod(t.join("suid-alien"), Mode::from_raw_mode(0o6755)).err(),
            Some(Errno::OVERFLOW),
            "chmod of an unmapped set-uid file"
        );
        ensure_eq!(
            rfs::chown(
                t.join("suid-alien"),
                Some(rustix::process::Uid::from_raw(0)),
                None
            )
            .err(),
            Some(Errno::OVERFLOW),
            "chown of an unmapped set-uid file"
        );
        // Chown to a mapped user clears set-uid.
        // (Both ids: see shift::chown_of_one_id_leaves_the_other_alone.)
        rfs::chown(
            &f,
            Some(rustix::process::Uid::from_raw(1000)),
            Some(rustix::process::Gid::from_raw(0)),
        )
        .ctx("chown")?;
        Ok(())
    })?;
    let md = std::fs::metadata(tree.real.join("own/mine-suid")).ctx("stat")?;
    ensure_eq!(
        (md.uid(), md.mode() & 0o7000),
        (1000, 0),
        "owner and set-id bits on disk after chown"
    );
    let md = std::fs::metadata(tree.real.join("suid-alien")).ctx("stat")?;
    ensure_eq!(
        (md.uid(), md.mode() & 0o7777),
        (70_000, 0o4755),
        "unmapped set-uid file on disk"
    );
    std::fs::remove_file(tree.real.join("own/mine-suid")).ctx("rm")
}

pub(super) fn writes_by_others_clear_set_id_bits(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        become_id(1000)?;
        for f in ["suid-w", "sgid-w"] {
            let fd = rfs::open(
                target.join(f),
                OFlags::WRONLY | OFlags::APPEND,
                Mode::empty(),
            )
            .ctx("open")?;
            rustix::io::write(&fd, b"echo owned\n").ctx("write")?;
        }
        rel::truncate(&target.join("suid-t"), 3).ctx("truncate")?;
        Ok(())
    })?;
    // A write or truncate by someone else removes set-uid (and set-gid
    // with group exec), as on any filesystem: else container user 1000
    // would put its code into a set-uid-root file.
    let mut bad = Vec::new();
    for f in ["suid-w", "sgid-w", "suid-t"] {
        let mode = std::fs::metadata(tree.real.join(f)).ctx("stat")?.mode();
        if mode & 0o6000 != 0 {
            bad.push(format!("{f}: {:o}", mode & 0o7777));
        }
    }
    ensure!(
        bad.is_empty(),
        "set-id bits kept on disk after a write by another user: {bad:?}"
    );
    Ok(())
}

/// CapEff of a `grep` copy run as `uid` (in the current namespace).
fn cap_eff_of(binary: &Path, uid: u32) -> Result<u64, String> {
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(binary)
            .args(["CapEff", "/proc/self/status"])
            .uid(uid)
            .gid(uid)
            .output()
            .ctx(&format!("exec {}", binary.display()))?
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("{}: {text:?} {:?}", binary.display(), out.status))?;
    u64::from_str_radix(hex, 16).map_err(|e| format!("{hex}: {e}"))
}

pub(super) fn file_capabilities_work_only_where_they_were_set(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let t = &target;
        rfs::setxattr(
            t.join("capgrep-ct"),
            "security.capability",
            &caps(2, None),
            XattrFlags::empty(),
        )
        .ctx("setcap in the container")?;
        ensure_eq!(
            cap_eff_of(&t.join("plaingrep"), 1000)?,
            0,
            "CapEff of plain grep"
        );
        ensure_eq!(
            cap_eff_of(&t.join("capgrep-host"), 1000)?,
            0,
            "CapEff from the host's file capability, in the container"
        );
        ensure_eq!(
            cap_eff_of(&t.join("capgrep-ct"), 1000)?,
            1 << 13,
            "CapEff from the container's own file capability"
        );
        Ok(())
    })?;
    let r = &tree.real;
    ensure_eq!(
        cap_eff_of(&r.join("capgrep-host"), 1000)?,
        1 << 13,
        "CapEff from the host's capability on the host"
    );
    ensure_eq!(
        cap_eff_of(&r.join("capgrep-ct"), 1000)?,
        0,
        "CapEff on the host from the container's capability"
    );
    Ok(())
}

/// A `system.posix_acl_*` value from (tag, perm, id) entries.
fn acl(version: u32, entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = version.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

pub(super) fn malformed_acls_and_capabilities_are_einval(env: &Env) -> Outcome {
    const U: u32 = u32::MAX;
    let good = [(1u16, 6u16, U), (4, 4, U), (0x20, 4, U)];
    let mut bad_acls: Vec<(&str, Vec<u8>)> = vec![
        ("version 1", acl(1, &good)),
        ("version 3", acl(3, &good)),
        ("truncated entry", acl(2, &good)[..4 + 8 * 3 - 3].to_vec()),
        ("header only, short", vec![2, 0]),
        (
            "unknown tag",
            acl(2, &[(1, 6, U), (0x40, 4, U), (4, 4, U), (0x20, 4, U)]),
        ),
        (
            "perm bits beyond rwx",
            acl(2, &[(1, 0xff, U), (4, 4, U), (0x20, 4, U)]),
        ),
        (
            "two owners",
            acl(2, &[(1, 6, U), (1, 6, U), (4, 4, U), (0x20, 4, U)]),
        ),
        ("no other", acl(2, &[(1, 6, U), (4, 4, U)])),
        (
            "named user, no mask",
            acl(2, &[(1, 6, U), (2, 4, 1000), (4, 4, U), (0x20, 4, U)]),
        ),
        (
            "unmapped user",
            acl(
                2,
                &[
                    (1, 6, U),
                    (2, 4, 70_000),
                    (4, 4, U),
                    (0x10, 4, U),
                    (0x20, 4, U),
                ],
            ),
        ),
        (
            "unmapped group",
            acl(
                2,
                &[
                    (1, 6, U),
                    (4, 4, U),
                    (8, 4, 70_000),
                    (0x10, 4, U),
                    (0x20, 4, U),
                ],
            ),
        ),
        (
            "id -1 for a named user",
            acl(
                2,
                &[(1, 6, U), (2, 4, U), (4, 4, U), (0x10, 4, U), (0x20, 4, U)],
            ),
        ),
    ];
    let mut garbage = Rng::new(rel::seed());
    for _ in 0..20 {
        let n = 4 + garbage.below(60) as usize;
        let mut v = garbage.bytes(n);
        v[..4].copy_from_slice(&2u32.to_le_bytes());
        if (n - 4).is_multiple_of(8) {
            v.push(0);
        }
        bad_acls.push(("random bytes", v));
    }
    let bad_caps: Vec<(&str, Vec<u8>)> = vec![
        ("7 bytes", caps(2, None)[..7].to_vec()),
        ("zeros", vec![0; 20]),
        ("all ones", vec![0xff; 24]),
        ("empty", vec![]),
        ("revision 1", caps(1, None)[..12].to_vec()),
        ("revision 2, v3 size", caps(2, Some(0))),
        ("revision 3, v2 size", caps(3, None)),
        ("revision 3, unmapped root", caps(3, Some(70_000))),
        ("revision 4", caps(4, None)),
        ("too long", [caps(3, Some(0)), vec![0; 8]].concat()),
    ];
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let f = target.join("own/file");
        let d = target.join("own");
        let mut wrong = Vec::new();
        for (what, v) in &bad_acls {
            for (p, name) in [
                (&f, "system.posix_acl_access"),
                (&d, "system.posix_acl_default"),
            ] {
                let r = rfs::setxattr(p, name, v, XattrFlags::empty());
                // A version other than 2 is the VFS's EOPNOTSUPP
                // (posix_acl_from_xattr), before any filesystem sees it.
                let vfs_version = what.starts_with("version") && r == Err(Errno::OPNOTSUPP);
                if r != Err(Errno::INVAL) && !vfs_version {
                    wrong.push(format!("{name} {what} ({v:02x?}): {r:?}"));
                }
            }
        }
        for (what, v) in &bad_caps {
            let r = rfs::setxattr(&f, "security.capability", v, XattrFlags::empty());
            if r != Err(Errno::INVAL) {
                wrong.push(format!("security.capability {what}: {r:?}"));
            }
        }
        ensure!(wrong.is_empty(), "not EINVAL: {wrong:?}");
        let mut buf = [0u8; 256];
        for (p, name) in [
            (&f, "system.posix_acl_access"),
            (&d, "system.posix_acl_default"),
            (&f, "security.capability"),
        ] {
            ensure_eq!(
                rfs::getxattr(p, name, &mut buf).err(),
                Some(Errno::NODATA),
                format!("{name} after the refusals")
            );
        }
        Ok(())
    })
}
