//! Extended attributes and POSIX ACLs read through a shifting mount from a
//! real container (0:100000:65536).

use crate::{
    ensure, ensure_eq,
    fixture::{acl_entries, acl_value, become_id, load, unload, Tree},
    harness::{Context, Outcome},
    reliability::lockstep,
    tests, Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags, XattrFlags},
    io::Errno,
};
use std::path::Path;

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    user_xattr_reads_back,
    trusted_xattrs_stay_hidden_from_the_container,
    acl_ids_read_shifted,
    acl_grants_access_to_the_shifted_user,
    acl_entry_of_an_unmapped_id_grants_nothing,
    container_sets_and_removes_user_xattrs,
    trusted_xattrs_are_set_only_by_the_host,
    container_sets_security_xattrs,
    acl_set_in_the_container_lands_shifted,
    acl_naming_an_id_outside_the_map_is_einval,
    removing_an_acl_removes_it_on_disk,
    setcap_in_the_container_is_valid_for_the_container_only,
    host_capability_does_not_exist_for_the_container,
    malformed_capability_is_einval,
    writes_remove_privileges_set_below_an_open_file,
    acl_changes_below_reach_cached_walks,
    walks_go_by_owner_group_and_other_bits,
    host_unmarks,
    unload,
];

const ACL_ACCESS: &str = "system.posix_acl_access";
const UNDEFINED: u32 = u32::MAX;

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    let r = tree.real.clone();
    let f = r.join("file");
    std::fs::write(&f, b"x").ctx("create")?;
    rfs::setxattr(&f, "user.test", b"hello", XattrFlags::empty()).ctx("set user.test")?;
    rfs::setxattr(&f, "trusted.secret", b"s", XattrFlags::empty()).ctx("set trusted.secret")?;
    // 0640 owned by root, plus read for users 1000 and 70000, group 1000.
    let acl = acl_value(&[
        (0x01, 6, UNDEFINED),
        (0x02, 4, 1000),
        (0x02, 4, 70_000),
        (0x04, 4, UNDEFINED),
        (0x08, 4, 1000),
        (0x10, 4, UNDEFINED),
        (0x20, 0, UNDEFINED),
    ]);
    let g = r.join("acl");
    std::fs::write(&g, b"acl").ctx("create acl file")?;
    rfs::setxattr(&g, ACL_ACCESS, &acl, XattrFlags::empty()).ctx("set ACL")?;
    tree.mark()
}

fn getxattr(path: &Path, name: &str) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 4096];
    let n = rfs::getxattr(path, name, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn user_xattr_reads_back(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        ensure_eq!(
            getxattr(&t.join("file"), "user.test"),
            Ok(b"hello".to_vec()),
            "user.test"
        );
        ensure_eq!(
            getxattr(&t.join("file"), "user.missing"),
            Err(Errno::NODATA),
            "a missing xattr"
        );
        Ok(())
    })
}

fn trusted_xattrs_stay_hidden_from_the_container(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let mut buf = vec![0u8; 4096];
        let n = rfs::listxattr(t.join("file"), &mut buf).ctx("listxattr")?;
        let names: Vec<&[u8]> = buf[..n]
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .collect();
        ensure!(
            names.contains(&&b"user.test"[..]),
            "user.test not listed: {names:?}"
        );
        ensure!(
            !names.iter().any(|n| n.starts_with(b"trusted.")),
            "trusted.* listed to the container: {names:?}"
        );
        ensure_eq!(
            getxattr(&t.join("file"), "trusted.secret"),
            Err(Errno::NODATA),
            "trusted.secret read by the container"
        );
        Ok(())
    })
}

fn acl_ids_read_shifted(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let v = getxattr(&t.join("acl"), ACL_ACCESS).map_err(|e| format!("getxattr ACL: {e}"))?;
        let named: Vec<(u16, u32)> = acl_entries(&v)
            .into_iter()
            .filter(|e| e.0 == 0x02 || e.0 == 0x08)
            .map(|e| (e.0, e.2))
            .collect();
        // On-disk 1000 is container 1000; 70000 has no mapping: overflow.
        ensure_eq!(
            named,
            vec![(0x02, 1000), (0x02, 65_534), (0x08, 1000)],
            "named ACL entries"
        );
        Ok(())
    })
}

fn acl_grants_access_to_the_shifted_user(env: &Env) -> Outcome {
    for (uid, want) in [(1000, Ok(())), (2000, Err(Errno::ACCESS))] {
        tree(env).in_shifted(move |t| {
            let id = rfs::Uid::from_raw(uid);
            let gid = rfs::Gid::from_raw(uid);
            rustix::thread::set_thread_res_gid(gid, gid, gid).ctx("setresgid")?;
            rustix::thread::set_thread_res_uid(id, id, id).ctx("setresuid")?;
            let res = rfs::open(t.join("acl"), OFlags::RDONLY, Mode::empty()).map(|_| ());
            ensure_eq!(
                res,
                want,
                format!("open of the ACL file by container uid {uid}")
            );
            Ok(())
        })?;
    }
    Ok(())
}

fn acl_entry_of_an_unmapped_id_grants_nothing(env: &Env) -> Outcome {
    // The file's ACL grants read to on-disk user 70000, which the container
    // cannot map and sees as 65534: its own nobody must not get that read.
    tree(env).in_shifted(|t| {
        become_id(65_534)?;
        let res = rfs::open(t.join("acl"), OFlags::RDONLY, Mode::empty()).map(|_| ());
        ensure_eq!(res, Err(Errno::ACCESS), "open by the container's nobody");
        Ok(())
    })
}

fn real_xattr(env: &Env, file: &str, name: &str) -> Result<Vec<u8>, Errno> {
    getxattr(&tree(env).real.join(file), name)
}

fn container_sets_and_removes_user_xattrs(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = t.join("file");
        rfs::setxattr(&f, "user.new", b"from the container", XattrFlags::CREATE).ctx("set")?;
        ensure_eq!(
            rfs::setxattr(&f, "user.new", b"again", XattrFlags::CREATE).err(),
            Some(Errno::EXIST),
            "XATTR_CREATE of an existing name"
        );
        ensure_eq!(
            rfs::setxattr(&f, "user.none", b"x", XattrFlags::REPLACE).err(),
            Some(Errno::NODATA),
            "XATTR_REPLACE of a missing name"
        );
        rfs::setxattr(&f, "user.gone", b"x", XattrFlags::empty()).ctx("set user.gone")?;
        rfs::removexattr(&f, "user.gone").ctx("remove")?;
        ensure_eq!(
            rfs::removexattr(&f, "user.gone").err(),
            Some(Errno::NODATA),
            "remove twice"
        );
        Ok(())
    })?;
    ensure_eq!(
        real_xattr(env, "file", "user.new"),
        Ok(b"from the container".to_vec()),
        "on disk"
    );
    ensure_eq!(
        real_xattr(env, "file", "user.gone"),
        Err(Errno::NODATA),
        "removed on disk"
    );
    Ok(())
}

fn trusted_xattrs_are_set_only_by_the_host(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let r = rfs::setxattr(t.join("file"), "trusted.evil", b"x", XattrFlags::empty());
        ensure_eq!(r.err(), Some(Errno::PERM), "trusted.* from the container");
        let r = rfs::removexattr(t.join("file"), "trusted.secret");
        ensure_eq!(
            r.err(),
            Some(Errno::PERM),
            "removing trusted.* from the container"
        );
        Ok(())
    })?;
    ensure_eq!(
        real_xattr(env, "file", "trusted.evil"),
        Err(Errno::NODATA),
        "on disk"
    );
    ensure_eq!(
        real_xattr(env, "file", "trusted.secret"),
        Ok(b"s".to_vec()),
        "kept"
    );
    // The host, through its mark, may.
    rfs::setxattr(
        tree(env).mark.join("file"),
        "trusted.host",
        b"h",
        XattrFlags::empty(),
    )
    .ctx("trusted.* through the mark")?;
    ensure_eq!(
        real_xattr(env, "file", "trusted.host"),
        Ok(b"h".to_vec()),
        "on disk"
    );
    Ok(())
}

fn container_sets_security_xattrs(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        rfs::setxattr(
            t.join("file"),
            "security.shiftfs-test",
            b"label",
            XattrFlags::empty(),
        )
        .ctx("set security.*")?;
        ensure_eq!(
            getxattr(&t.join("file"), "security.shiftfs-test"),
            Ok(b"label".to_vec()),
            "read back"
        );
        Ok(())
    })?;
    ensure_eq!(
        real_xattr(env, "file", "security.shiftfs-test"),
        Ok(b"label".to_vec()),
        "on disk"
    );
    Ok(())
}

fn acl_set_in_the_container_lands_shifted(env: &Env) -> Outcome {
    std::fs::write(tree(env).real.join("acl-set"), b"x").ctx("create")?;
    tree(env).in_shifted(|t| {
        let v = acl_value(&[
            (0x01, 6, UNDEFINED),
            (0x02, 4, 1000),
            (0x04, 4, UNDEFINED),
            (0x08, 6, 2000),
            (0x10, 6, UNDEFINED),
            (0x20, 0, UNDEFINED),
        ]);
        rfs::setxattr(t.join("acl-set"), ACL_ACCESS, &v, XattrFlags::empty()).ctx("set ACL")?;
        let back = getxattr(&t.join("acl-set"), ACL_ACCESS).ctx("read back")?;
        ensure_eq!(acl_entries(&back), acl_entries(&v), "ACL in the container");
        let mode = rfs::stat(t.join("acl-set")).ctx("stat")?.st_mode & 0o777;
        ensure_eq!(
            mode,
            0o660,
            "mode follows the ACL (group class is the mask)"
        );
        Ok(())
    })?;
    let v = real_xattr(env, "acl-set", ACL_ACCESS).map_err(|e| format!("ACL on disk: {e}"))?;
    let named: Vec<(u16, u16, u32)> = acl_entries(&v)
        .into_iter()
        .filter(|e| e.0 == 0x02 || e.0 == 0x08)
        .collect();
    ensure_eq!(
        named,
        vec![(0x02, 4, 1000), (0x08, 6, 2000)],
        "named entries on disk"
    );
    Ok(())
}

fn acl_naming_an_id_outside_the_map_is_einval(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let v = acl_value(&[
            (0x01, 6, UNDEFINED),
            (0x02, 4, 70_000),
            (0x04, 4, UNDEFINED),
            (0x10, 4, UNDEFINED),
            (0x20, 0, UNDEFINED),
        ]);
        let r = rfs::setxattr(t.join("acl-set"), ACL_ACCESS, &v, XattrFlags::empty());
        ensure_eq!(r.err(), Some(Errno::INVAL), "ACL naming uid 70000");
        let mut short = acl_value(&[(0x01, 6, UNDEFINED)]);
        short.pop();
        let r = rfs::setxattr(t.join("acl-set"), ACL_ACCESS, &short, XattrFlags::empty());
        ensure_eq!(r.err(), Some(Errno::INVAL), "truncated ACL");
        Ok(())
    })?;
    let v = real_xattr(env, "acl-set", ACL_ACCESS).map_err(|e| format!("ACL on disk: {e}"))?;
    ensure!(
        acl_entries(&v).iter().all(|e| e.2 != 70_000),
        "unmapped entry on disk"
    );
    Ok(())
}

fn removing_an_acl_removes_it_on_disk(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| rfs::removexattr(t.join("acl-set"), ACL_ACCESS).ctx("remove ACL"))?;
    ensure_eq!(
        real_xattr(env, "acl-set", ACL_ACCESS),
        Err(Errno::NODATA),
        "ACL on disk"
    );
    Ok(())
}

const CAPS: &str = "security.capability";
/// A revision-2 capability: effective, CAP_NET_RAW (13) permitted.
fn caps_v2() -> Vec<u8> {
    [0x0200_0001u32, 1 << 13, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

fn setcap_in_the_container_is_valid_for_the_container_only(env: &Env) -> Outcome {
    std::fs::write(tree(env).real.join("capped"), b"x").ctx("create")?;
    tree(env).in_shifted(|t| {
        rfs::setxattr(t.join("capped"), CAPS, &caps_v2(), XattrFlags::empty()).ctx("setcap")?;
        // Read back in the container: its own root's capability, revision 2.
        ensure_eq!(
            getxattr(&t.join("capped"), CAPS),
            Ok(caps_v2()),
            "in the container"
        );
        Ok(())
    })?;
    // On disk: revision 3, root id the container root's host uid.
    let want: Vec<u8> = [0x0300_0001u32, 1 << 13, 0, 0, 0, 100_000]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    ensure_eq!(real_xattr(env, "capped", CAPS), Ok(want), "on disk");
    // And `getcap` agrees, as it is the tool users reach for.
    let out = std::process::Command::new("getcap")
        .arg("-n")
        .arg(tree(env).real.join("capped"))
        .output()
        .ctx("getcap")?;
    let out = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.contains("cap_net_raw=ep") && out.contains("[rootid=100000]"),
        "getcap: {out}"
    );
    Ok(())
}

fn host_capability_does_not_exist_for_the_container(env: &Env) -> Outcome {
    let f = tree(env).real.join("host-capped");
    std::fs::write(&f, b"x").ctx("create")?;
    rfs::setxattr(&f, CAPS, &caps_v2(), XattrFlags::empty()).ctx("host setcap")?;
    tree(env).in_shifted(|t| {
        ensure_eq!(
            getxattr(&t.join("host-capped"), CAPS),
            Err(Errno::NODATA),
            "host capability seen by the container"
        );
        Ok(())
    })
}

fn malformed_capability_is_einval(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        for bad in [&caps_v2()[..7], &[0u8; 20][..], &[0xffu8; 24][..]] {
            let r = rfs::setxattr(t.join("capped"), CAPS, bad, XattrFlags::empty());
            ensure_eq!(r.err(), Some(Errno::INVAL), format!("capability {bad:?}"));
        }
        Ok(())
    })
}

/// A write clears set-uid and file capabilities that the host set on the
/// real file while the container held it open and had written to it
/// already, as a write by the container on its own filesystem would: it
/// lacks CAP_FSETID on the host, so the set-uid bit goes by the mode the
/// shiftfs inode shows (the real write runs with the mark creator's
/// CAP_FSETID), which must be the real one, as must the "nothing to
/// remove" state (`S_NOSEC`) shown after the earlier writes.
fn writes_remove_privileges_set_below_an_open_file(env: &Env) -> Outcome {
    let t = tree(env);
    let real = t.real.join("privileged");
    std::fs::write(&real, b"x").ctx("create")?;
    rfs::chmod(&real, Mode::from_raw_mode(0o755)).ctx("chmod")?;
    let (mark, target) = (t.mark.clone(), t.target.clone());
    let host_real = real.clone();
    lockstep(
        move |turn| {
            rustix::mount::mount(
                &mark,
                &target,
                crate::sys::FS_NAME,
                rustix::mount::MountFlags::empty(),
                c"",
            )
            .ctx("shifting mount")?;
            let fd =
                rfs::open(target.join("privileged"), OFlags::WRONLY, Mode::empty()).ctx("open")?;
            for at in [0u64, 1] {
                rustix::io::pwrite(&fd, b"y", at).ctx("write")?;
            }
            // The host makes it set-uid and capable.
            turn.pass()?;
            rustix::io::pwrite(&fd, b"z", 2).ctx("write after the host's change")?;
            let st = rfs::fstat(&fd).ctx("fstat")?;
            ensure_eq!(st.st_mode & 0o7777, 0o755, "mode through shiftfs");
            Ok(())
        },
        move |turn| {
            turn.wait()?;
            rfs::chmod(&host_real, Mode::from_raw_mode(0o4755)).ctx("host chmod")?;
            rfs::setxattr(&host_real, CAPS, &caps_v2(), XattrFlags::empty()).ctx("host setcap")?;
            let _ = turn.pass();
            Ok(())
        },
    )?;
    let mode = std::fs::metadata(&real).ctx("stat")?.permissions();
    ensure_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
        0o755,
        "mode on disk"
    );
    ensure_eq!(
        real_xattr(env, "privileged", CAPS),
        Err(Errno::NODATA),
        "on disk"
    );
    ensure_eq!(std::fs::read(&real).ctx("read")?, b"yyz", "bytes on disk");
    Ok(())
}

/// `stat` of `path` by a thread of user and group 1000 (not the owner):
/// what its walk through `path`'s directories was allowed.
fn stat_as_user_1000(path: &Path) -> Result<(), Errno> {
    stat_as(1000, 1000, path)
}

/// `stat` of `path` by a thread of user `uid` and group `gid` (and no
/// supplementary groups).
fn stat_as(uid: u32, gid: u32, path: &Path) -> Result<(), Errno> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let (uid, gid) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
            rustix::thread::set_thread_groups(&[])?;
            rustix::thread::set_thread_res_gid(gid, gid, gid)?;
            rustix::thread::set_thread_res_uid(uid, uid, uid)?;
            rfs::stat(path).map(drop)
        })
        .join()
        .unwrap_or(Err(Errno::FAULT))
    })
}

/// Without an ACL, a walk through a directory goes by its mode as the
/// VFS reads it: the owner by the owner's bits only, a member of its group
/// by the group's, anyone else by the other bits, and root past them all
/// (a shiftfs inode grants on the mode alone where the answer cannot
/// depend on groups or capabilities, and asks the VFS otherwise). Each
/// mode is set below, and each walk is made twice (the second through
/// what the first cached).
fn walks_go_by_owner_group_and_other_bits(env: &Env) -> Outcome {
    let tree = tree(env);
    let (r, t) = (tree.real.join("walkmode"), tree.target.join("walkmode"));
    std::fs::create_dir(&r).ctx("mkdir")?;
    std::fs::write(r.join("f"), b"x").ctx("host writes")?;
    rfs::chown(
        &r,
        Some(rfs::Uid::from_raw(1000)),
        Some(rfs::Gid::from_raw(2000)),
    )
    .ctx("chown")?;
    tree.host_shifting_mount()?;
    let f = t.join("f");
    let (owner, member, other) = ((1000, 1000), (3000, 2000), (3000, 3000));
    let acc = Err(Errno::ACCESS);
    let res = (|| {
        for (mode, want_owner, want_member, want_other) in [
            (0o755, Ok(()), Ok(()), Ok(())),
            (0o750, Ok(()), Ok(()), acc),
            (0o705, Ok(()), acc, Ok(())),
            (0o075, acc, Ok(()), Ok(())),
            (0o711, Ok(()), Ok(()), Ok(())),
            (0o700, Ok(()), acc, acc),
            (0o000, acc, acc, acc),
        ] {
            rfs::chmod(&r, Mode::from_raw_mode(mode)).ctx("host chmod")?;
            for round in ["first", "cached"] {
                for ((uid, gid), want, who) in [
                    (owner, want_owner, "owner"),
                    (member, want_member, "group member"),
                    (other, want_other, "other"),
                    ((0, 0), Ok(()), "root"),
                ] {
                    ensure_eq!(
                        stat_as(uid, gid, &f),
                        want,
                        format!("{round} walk by the {who} through mode {mode:04o}")
                    );
                }
            }
        }
        Ok(())
    })();
    rustix::mount::unmount(&tree.target, rustix::mount::UnmountFlags::empty()).ctx("umount")?;
    res
}

/// A walk by a user who does not own a directory asks for its ACL. Once
/// walks have cached the directory (an RCU walk asks the real
/// filesystem's ACL cache, and finds the ACL a walk with references
/// shifted), an ACL set, replaced or removed below, and a mode changed
/// below, decide the next walk through the shifting mount.
fn acl_changes_below_reach_cached_walks(env: &Env) -> Outcome {
    let tree = tree(env);
    let (r, t) = (tree.real.join("walkacl"), tree.target.join("walkacl"));
    std::fs::create_dir(&r).ctx("mkdir")?;
    rfs::chmod(&r, Mode::from_raw_mode(0o755)).ctx("chmod")?;
    std::fs::write(r.join("f"), b"x").ctx("host writes")?;
    // user::rwx, user 1000 none, group::r-x, mask::r-x, other::r-x.
    let deny = acl_value(&[
        (0x01, 7, UNDEFINED),
        (0x02, 0, 1000),
        (0x04, 5, UNDEFINED),
        (0x10, 5, UNDEFINED),
        (0x20, 5, UNDEFINED),
    ]);
    // user::rwx, user 1000 r-x, group::r-x, mask::r-x, other::---.
    let grant = acl_value(&[
        (0x01, 7, UNDEFINED),
        (0x02, 5, 1000),
        (0x04, 5, UNDEFINED),
        (0x10, 5, UNDEFINED),
        (0x20, 0, UNDEFINED),
    ]);
    tree.host_shifting_mount()?;
    let f = t.join("f");
    let res = (|| {
        // The second walk goes through what the first one cached.
        for round in ["first", "cached"] {
            ensure_eq!(stat_as_user_1000(&f), Ok(()), format!("{round} walk"));
        }
        rfs::setxattr(&r, ACL_ACCESS, &deny, XattrFlags::empty()).ctx("host sets ACL")?;
        for round in ["first", "cached"] {
            ensure_eq!(
                stat_as_user_1000(&f),
                Err(Errno::ACCESS),
                format!("{round} walk after an ACL denying user 1000 was set below")
            );
        }
        rfs::removexattr(&r, ACL_ACCESS).ctx("host removes ACL")?;
        ensure_eq!(
            stat_as_user_1000(&f),
            Ok(()),
            "walk after the ACL was removed below"
        );
        rfs::chmod(&r, Mode::from_raw_mode(0o750)).ctx("host chmod")?;
        ensure_eq!(
            stat_as_user_1000(&f),
            Err(Errno::ACCESS),
            "walk after mode 0750 below"
        );
        rfs::setxattr(&r, ACL_ACCESS, &grant, XattrFlags::empty()).ctx("host sets ACL")?;
        for round in ["first", "cached"] {
            ensure_eq!(
                stat_as_user_1000(&f),
                Ok(()),
                format!("{round} walk after an ACL granting user 1000 was set below")
            );
        }
        // One ACL replaced by another below, while walks keep the first
        // one shifted: the next walk goes by the new one, both ways.
        for (acl, want, what) in [
            (&deny, Err(Errno::ACCESS), "denying"),
            (&grant, Ok(()), "granting"),
            (&deny, Err(Errno::ACCESS), "denying"),
        ] {
            rfs::setxattr(&r, ACL_ACCESS, acl, XattrFlags::empty()).ctx("host replaces ACL")?;
            for round in ["first", "cached"] {
                ensure_eq!(
                    stat_as_user_1000(&f),
                    want,
                    format!(
                        "{round} walk after the ACL below was replaced by one {what} user 1000"
                    )
                );
            }
        }
        Ok(())
    })();
    rustix::mount::unmount(&tree.target, rustix::mount::UnmountFlags::empty()).ctx("umount")?;
    res
}

fn tree(env: &Env) -> Tree {
    Tree::new(env, "xattr")
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
