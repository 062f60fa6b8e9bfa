//! Hostile input and isolation: what a container must not be able to do
//! with shiftfs, one test each, and regression tests shaped like the C
//! shiftfs CVEs (2019-15791 refcount underflow, 2019-15792 type confusion
//! of the lower file, 2019-15793 error-path refcounts, 2021-3492 ioctl
//! double free). The real tree is on an ext4 image of its own, so that an
//! ioctl wrongly passed down (EXT4_IOC_SHUTDOWN, FITRIM, RESIZE) hurts no
//! other suite.
//!
//! By theme: [`isolation`] (marks, paths, symlinks, mounts and unmapped
//! files out of the container's reach), [`privileges`] (set-id bits, file
//! capabilities, malformed ACLs and capabilities), [`ioctls`] (the
//! whitelist), [`options`] (the fsconfig option fuzzer) and [`cve`] (the
//! CVE-shaped regressions). This file holds the tree they share, prepared
//! and cleaned up by the host.
//!
//! `SHIFTFS_STRESS=long` multiplies the iterations of the fuzzer and the
//! CVE-shaped loops.

mod cve;
mod ioctls;
mod isolation;
mod options;
mod privileges;

use self::{
    cve::{
        cve_2019_15791_repeated_failing_lookups_and_vanishing_entries,
        cve_2019_15792_shiftfs_and_other_files_mixed, cve_2019_15793_operations_failing_midway,
        cve_2021_3492_enotty_ioctls_with_garbage_pointers,
    },
    ioctls::ioctls_outside_the_whitelist_are_enotty,
    isolation::{
        container_cannot_mark_what_it_does_not_own, container_cannot_shift_an_unmarked_path,
        dotdot_stays_inside_the_shifting_mount, host_mounts_below_the_mark_do_not_show,
        mark_credentials_do_not_reach_unmapped_files,
        symlinks_resolve_in_the_callers_view_with_its_ids,
    },
    options::option_fuzzer_answers_with_an_errno_and_a_log_message,
    privileges::{
        file_capabilities_work_only_where_they_were_set,
        malformed_acls_and_capabilities_are_einval, no_set_id_file_for_an_id_outside_the_mapping,
        writes_by_others_clear_set_id_bits,
    },
};
use crate::{
    fixture::{load, unload, Tree},
    harness::{Context, Outcome},
    reliability::{self as rel, Ext4},
    sys::FS_NAME,
    tests, Env,
};
use rustix::{
    fs::{self as rfs, XattrFlags},
    io::Errno,
    mount::{mount, mount_bind, unmount, MountFlags, UnmountFlags},
};
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    container_cannot_shift_an_unmarked_path,
    container_cannot_mark_what_it_does_not_own,
    dotdot_stays_inside_the_shifting_mount,
    symlinks_resolve_in_the_callers_view_with_its_ids,
    host_mounts_below_the_mark_do_not_show,
    no_set_id_file_for_an_id_outside_the_mapping,
    writes_by_others_clear_set_id_bits,
    file_capabilities_work_only_where_they_were_set,
    ioctls_outside_the_whitelist_are_enotty,
    mark_credentials_do_not_reach_unmapped_files,
    malformed_acls_and_capabilities_are_einval,
    option_fuzzer_answers_with_an_errno_and_a_log_message,
    cve_2019_15791_repeated_failing_lookups_and_vanishing_entries,
    cve_2019_15792_shiftfs_and_other_files_mixed,
    cve_2019_15793_operations_failing_midway,
    cve_2021_3492_enotty_ioctls_with_garbage_pointers,
    host_cleans_up,
    unload,
];

/// Where the suite's ext4 image is mounted.
fn base(env: &Env) -> PathBuf {
    env.scratch.join("hostile-ext4")
}

/// The real tree on that ext4, its mark, and the target inside a
/// directory of its own (`hostile-box`), so that `..` of the target has one
/// entry.
fn tree(env: &Env) -> Tree {
    Tree {
        real: base(env).join("real"),
        mark: env.scratch.join("hostile-mark"),
        target: env.scratch.join("hostile-box/target"),
    }
}

/// A host root's 0600 file next to the real tree.
fn secret(env: &Env) -> PathBuf {
    base(env).join("hostile-secret")
}

/// A host root's 0700 directory, bind-mounted below the mark.
fn secret_dir(env: &Env) -> PathBuf {
    env.scratch.join("hostile-secret-dir")
}

/// `short` iterations, or 25 times that under `SHIFTFS_STRESS=long`.
fn iterations(short: usize) -> usize {
    rel::pick(short, short * 25)
}

/// lchown of `p` to uid and gid `id`.
fn chown(p: &Path, id: u32) -> Outcome {
    std::os::unix::fs::lchown(p, Some(id), Some(id)).ctx(&format!("chown {}", p.display()))
}

/// chmod of `p`.
fn chmod(p: &Path, mode: u32) -> Outcome {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .ctx(&format!("chmod {}", p.display()))
}

/// A program to copy and give file capabilities to: grep prints its own
/// CapEff from /proc/self/status.
fn grep_binary() -> Result<PathBuf, String> {
    ["/usr/bin/grep", "/bin/grep"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "no grep binary".into())
}

/// Makes the ext4 image and the tree on it (own, unmapped and set-id files,
/// symlinks out of it, grep copies with and without capabilities), marks
/// it, and bind-mounts the secret directory below the mark.
fn host_prepares_and_marks(env: &Env) -> Outcome {
    let ext4 = Ext4::new(&env.scratch.join("hostile.img"), &base(env), 24)?;
    // Kept for host_cleans_up.
    std::fs::write(env.scratch.join("hostile-loopdev"), &ext4.dev).ctx("note loop device")?;
    let tree = tree(env);
    tree.create()?;
    let r = &tree.real;
    std::fs::write(secret(env), b"host secret").ctx("secret")?;
    chmod(&secret(env), 0o600)?;
    std::fs::create_dir_all(secret_dir(env)).ctx("secret dir")?;
    std::fs::write(secret_dir(env).join("s"), b"host secret").ctx("secret file")?;
    chmod(&secret_dir(env), 0o700)?;
    for d in [
        "own",
        "alien",
        "bindpoint",
        "ovl/l",
        "ovl/u",
        "ovl/w",
        "ovl/m",
        "locked",
    ] {
        std::fs::create_dir_all(r.join(d)).ctx("mkdir")?;
    }
    std::fs::write(r.join("own/file"), b"own file").ctx("create")?;
    std::fs::write(r.join("ovl/l/lower"), b"lower file").ctx("create")?;
    // Owned by on-disk 70000: outside the container's mapping.
    chown(&r.join("alien"), 70_000)?;
    for (f, mode) in [
        ("alien/file", 0o600),
        ("alien-top", 0o600),
        ("suid-alien", 0o4755),
    ] {
        std::fs::write(r.join(f), b"alien").ctx("create")?;
        chown(&r.join(f), 70_000)?;
        chmod(&r.join(f), mode)?;
    }
    rfs::setxattr(r.join("alien-top"), "user.k", b"v", XattrFlags::empty()).ctx("xattr")?;
    // Set-id files anyone may write to.
    for (f, mode) in [("suid-w", 0o4777), ("sgid-w", 0o2777), ("suid-t", 0o4777)] {
        std::fs::write(r.join(f), b"#!/bin/sh\n").ctx("create")?;
        chmod(&r.join(f), mode)?;
    }
    chmod(&r.join("locked"), 0o700)?;
    std::os::unix::fs::symlink(secret(env), r.join("abs-link")).ctx("symlink")?;
    std::os::unix::fs::symlink("../hostile-secret", r.join("rel-link")).ctx("symlink")?;
    std::os::unix::fs::symlink("../../hostile-secret-dir/s", r.join("rel-link2")).ctx("symlink")?;
    let grep = grep_binary()?;
    for f in ["capgrep-host", "capgrep-ct", "plaingrep"] {
        std::fs::copy(&grep, r.join(f)).ctx("copy grep")?;
        chmod(&r.join(f), 0o755)?;
    }
    rfs::setxattr(
        r.join("capgrep-host"),
        "security.capability",
        &caps(2, None),
        XattrFlags::empty(),
    )
    .ctx("host setcap")?;
    chmod(&tree.target.join(".."), 0o755)?;
    tree.mark()?;
    // The host mounts something of its own below the marked tree.
    mount_bind(secret_dir(env), r.join("bindpoint")).ctx("bind below the mark")
}

/// Undoes `host_prepares_and_marks`.
fn host_cleans_up(env: &Env) -> Outcome {
    let tree = tree(env);
    let _ = unmount(tree.real.join("bindpoint"), UnmountFlags::DETACH);
    tree.unmark()?;
    unmount(base(env), UnmountFlags::empty()).ctx("umount ext4")?;
    let dev = std::fs::read_to_string(env.scratch.join("hostile-loopdev")).ctx("loop dev")?;
    Ext4 {
        dev,
        dir: base(env),
        image: env.scratch.join("hostile.img"),
    }
    .release()
}

/// A `security.capability` value of revision 2 or 3: effective, with
/// CAP_NET_RAW (13) permitted.
fn caps(rev: u32, rootid: Option<u32>) -> Vec<u8> {
    let mut v = vec![(rev << 24) | 1, 1 << 13, 0, 0, 0];
    v.extend(rootid);
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The shifting mount of `src` (a mark) on `dst`.
fn shift_mount(src: &Path, dst: &Path) -> Result<(), Errno> {
    mount(src, dst, FS_NAME, MountFlags::empty(), c"")
}
