//! Extended attributes and POSIX ACLs read through a shifting mount from a
//! real container (0:100000:65536).

use crate::{
    ensure, ensure_eq,
    fixture::{load, unload, Tree},
    harness::{Context, Outcome},
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
    host_unmarks,
    unload,
];

const ACL_ACCESS: &str = "system.posix_acl_access";
const UNDEFINED: u32 = u32::MAX;

/// A `system.posix_acl_*` value from (tag, perm, id) entries.
fn acl_value(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// The (tag, perm, id) entries of a value.
fn acl_entries(v: &[u8]) -> Vec<(u16, u16, u32)> {
    v[4..]
        .chunks(8)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]),
                u16::from_le_bytes([c[2], c[3]]),
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect()
}

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

fn tree(env: &Env) -> Tree {
    Tree::new(env, "xattr")
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
