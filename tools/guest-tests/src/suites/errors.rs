//! Errors from the real filesystem surface unchanged through a shifting
//! mount, and leave nothing half made: EROFS (read-only real filesystem,
//! read-only real mount, read-only shifting mount), ENOSPC (blocks and
//! inodes), EDQUOT (tmpfs quota limits: the mark's credentials carry no
//! CAP_SYS_RESOURCE, so limits hold for the container's root too). The
//! space of a file removed through the mount (unlinked, renamed over,
//! closed after unlink) or below it comes back at once.

use crate::{
    ensure, ensure_eq,
    fixture::{become_id, every_change_fails, load, unload, Tree},
    harness::{Context, Outcome},
    sys::FS_NAME,
    tests, Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags},
    io::Errno,
    mount::{mount, mount_remount, unmount, MountFlags, UnmountFlags},
};
use std::{io::Write, path::Path};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    read_only_real_filesystem_is_erofs,
    read_only_real_mount_is_erofs,
    read_only_shifting_mount_is_erofs,
    full_filesystem_is_enospc_and_keeps_what_was_written,
    no_free_inodes_is_enospc_and_leaves_no_entry,
    quota_limits_are_edquot_for_users_and_root,
    space_of_removed_files_comes_back,
    unload,
];

/// A tree on a tmpfs of its own, mounted with `opts`, marked by the host.
fn own_tmpfs(env: &Env, name: &str, opts: &std::ffi::CStr) -> Result<Tree, String> {
    let base = env.scratch.join(name);
    std::fs::create_dir_all(&base).ctx("mkdir")?;
    mount(name, &base, "tmpfs", MountFlags::empty(), opts).ctx("mount tmpfs")?;
    let tree = Tree::new(
        &Env {
            scratch: base,
            ..env.clone()
        },
        name,
    );
    tree.create()?;
    std::os::unix::fs::chown(&tree.real, Some(1000), Some(1000)).ctx("chown")?;
    Ok(tree)
}

fn drop_tmpfs(env: &Env, name: &str, tree: &Tree) -> Outcome {
    let _ = unmount(&tree.mark, UnmountFlags::empty());
    unmount(env.scratch.join(name), UnmountFlags::DETACH).ctx("umount tmpfs")
}

/// Every change fails with `want`, and the file keeps its content.
fn all_changes_fail(t: &Path, want: Errno) -> Outcome {
    every_change_fails(t, "file", want)?;
    ensure_eq!(
        std::fs::read(t.join("file")).ctx("read")?,
        b"kept",
        "content"
    );
    Ok(())
}

fn read_only_real_filesystem_is_erofs(env: &Env) -> Outcome {
    let tree = own_tmpfs(env, "erofs-sb", c"size=1m")?;
    std::fs::write(tree.real.join("file"), b"kept").ctx("create")?;
    tree.mark()?;
    // The real filesystem goes read-only under the mark.
    let base = env.scratch.join("erofs-sb");
    mount_remount(&base, MountFlags::RDONLY, c"").ctx("remount ro")?;
    let res = tree.in_shifted(|t| all_changes_fail(t, Errno::ROFS));
    drop_tmpfs(env, "erofs-sb", &tree)?;
    res
}

fn read_only_real_mount_is_erofs(env: &Env) -> Outcome {
    let tree = Tree::new(env, "erofs-mnt");
    tree.create()?;
    std::fs::write(tree.real.join("file"), b"kept").ctx("create")?;
    // The mark stands on a read-only bind mount of the real directory.
    let ro = env.scratch.join("erofs-mnt-ro");
    std::fs::create_dir_all(&ro).ctx("mkdir")?;
    rustix::mount::mount_bind(&tree.real, &ro).ctx("bind")?;
    rustix::mount::mount_change(&ro, rustix::mount::MountPropagationFlags::PRIVATE)
        .ctx("private")?;
    mount_remount(&ro, MountFlags::RDONLY | MountFlags::BIND, c"").ctx("bind ro")?;
    mount(&ro, &tree.mark, FS_NAME, MountFlags::empty(), c"mark").ctx("mark")?;
    let res = tree.in_shifted(|t| all_changes_fail(t, Errno::ROFS));
    tree.unmark()?;
    unmount(&ro, UnmountFlags::empty()).ctx("umount bind")?;
    res
}

fn read_only_shifting_mount_is_erofs(env: &Env) -> Outcome {
    let tree = Tree::new(env, "erofs-shift");
    tree.create()?;
    std::fs::write(tree.real.join("file"), b"kept").ctx("create")?;
    tree.mark()?;
    let (src, dst) = (tree.mark.clone(), tree.target.clone());
    let res = crate::container::run(move || {
        mount(&src, &dst, FS_NAME, MountFlags::RDONLY, c"").ctx("ro shifting mount")?;
        all_changes_fail(&dst, Errno::ROFS)
    });
    tree.unmark()?;
    res
}

fn full_filesystem_is_enospc_and_keeps_what_was_written(env: &Env) -> Outcome {
    let tree = own_tmpfs(env, "enospc", c"size=256k")?;
    tree.mark()?;
    let res = tree.in_shifted(|t| {
        become_id(1000)?;
        let mut f = std::fs::File::create(t.join("big")).ctx("create")?;
        let chunk = vec![0x5au8; 4096];
        let mut written = 0usize;
        let err = loop {
            match f.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            if written > 1 << 20 {
                return Err("wrote 1 MiB to a 256 KiB filesystem".into());
            }
        };
        ensure_eq!(err.raw_os_error(), Some(libc::ENOSPC), "error when full");
        f.sync_all().ctx("fsync")?;
        let st = rfs::stat(t.join("big")).ctx("stat")?;
        ensure_eq!(st.st_size as usize, written, "size = what was written");
        Ok(())
    });
    let on_disk = std::fs::read(tree.real.join("big")).ctx("read on disk");
    drop_tmpfs(env, "enospc", &tree)?;
    res?;
    let data = on_disk?;
    ensure!(
        !data.is_empty() && data.iter().all(|&b| b == 0x5a),
        "written data lost or damaged ({} bytes)",
        data.len()
    );
    Ok(())
}

fn no_free_inodes_is_enospc_and_leaves_no_entry(env: &Env) -> Outcome {
    let tree = own_tmpfs(env, "noinodes", c"nr_inodes=8")?;
    tree.mark()?;
    let res = tree.in_shifted(|t| {
        become_id(1000)?;
        let mut made = 0;
        let err = loop {
            match rfs::mkdir(t.join(format!("d{made}")), Mode::from_raw_mode(0o755)) {
                Ok(()) => made += 1,
                Err(e) => break e,
            }
            ensure!(made < 100, "made 100 entries with 8 inodes");
        };
        ensure_eq!(err, Errno::NOSPC, "error without inodes");
        ensure_eq!(
            rfs::stat(t.join(format!("d{made}"))).err(),
            Some(Errno::NOENT),
            "the failed entry"
        );
        let r = rfs::open(
            t.join("f"),
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o600),
        );
        ensure_eq!(r.err(), Some(Errno::NOSPC), "create without inodes");
        ensure_eq!(
            rfs::stat(t.join("f")).err(),
            Some(Errno::NOENT),
            "the failed file"
        );
        Ok(())
    });
    let leftovers: Vec<String> = std::fs::read_dir(&tree.real)
        .ctx("readdir")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| !n.starts_with('d'))
        .collect();
    drop_tmpfs(env, "noinodes", &tree)?;
    res?;
    ensure!(
        leftovers.is_empty(),
        "half-made entries on disk: {leftovers:?}"
    );
    Ok(())
}

fn quota_limits_are_edquot_for_users_and_root(env: &Env) -> Outcome {
    let tree = own_tmpfs(
        env,
        "quota",
        c"usrquota,usrquota_inode_hardlimit=4,usrquota_block_hardlimit=64k",
    )?;
    std::fs::set_permissions(
        &tree.real,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .ctx("chmod")?;
    // Nothing of the host's charged to the users under test.
    let base = env.scratch.join("quota");
    for d in [&base, &tree.real, &tree.mark, &tree.target] {
        std::os::unix::fs::chown(d, Some(2000), Some(2000)).ctx("chown")?;
    }
    tree.mark()?;
    let res = (|| {
        for (who, uid) in [("container user 1000", 1000u32), ("container root", 0)] {
            tree.in_shifted(|t| {
                if uid != 0 {
                    become_id(1000)?;
                }
                let mut made = 0;
                let err = loop {
                    let name = t.join(format!("q{uid}-{made}"));
                    match rfs::open(
                        &name,
                        OFlags::CREATE | OFlags::WRONLY,
                        Mode::from_raw_mode(0o600),
                    ) {
                        Ok(_) => made += 1,
                        Err(e) => break e,
                    }
                    ensure!(made < 20, "{who}: 20 files under an inode limit of 4");
                };
                ensure_eq!(
                    err,
                    Errno::DQUOT,
                    format!("{who}: error at the inode limit")
                );
                ensure_eq!(
                    rfs::stat(t.join(format!("q{uid}-{made}"))).err(),
                    Some(Errno::NOENT),
                    format!("{who}: the refused file")
                );
                // Blocks: 64 KiB.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(t.join(format!("q{uid}-0")))
                    .ctx("open")?;
                let chunk = vec![1u8; 4096];
                let mut written = 0;
                let err = loop {
                    match f.write(&chunk) {
                        Ok(n) => written += n,
                        Err(e) => break e,
                    }
                    ensure!(written <= 1 << 20, "{who}: 1 MiB under a 64 KiB limit");
                };
                ensure_eq!(
                    err.raw_os_error(),
                    Some(libc::EDQUOT),
                    format!("{who}: write")
                );
                Ok(())
            })?;
        }
        Ok(())
    })();
    drop_tmpfs(env, "quota", &tree)?;
    res
}

const MIB: u64 = 1 << 20;

/// Free bytes of the filesystem under `p`.
fn free(p: &Path) -> Result<u64, String> {
    let st = rfs::statvfs(p).ctx("statvfs")?;
    Ok(st.f_bavail * st.f_frsize)
}

/// Writes a 3 MiB file (of a 4 MiB filesystem), which fits only if the
/// space of every earlier one has come back.
fn write_3mib(p: &Path) -> Outcome {
    std::fs::write(p, vec![0x33u8; 3 * MIB as usize]).ctx(&format!("write {}", p.display()))
}

/// Once a file is gone from the tree, nothing of shiftfs's keeps its real
/// inode, and so its blocks: not the unhashed stacked dentry of the name
/// (an unlink), not a cached stacked inode (a rename over it), not a stale
/// dentry of a name removed below the mount once a lookup has seen it gone.
fn space_of_removed_files_comes_back(env: &Env) -> Outcome {
    let tree = own_tmpfs(env, "space", c"size=4m")?;
    tree.mark()?;
    let res = tree
        .in_shifted(|t| {
            become_id(1000)?;
            let ok = |what: &str| -> Outcome {
                let f = free(t)?;
                ensure!(f >= 3 * MIB, "{what}: only {f} bytes free");
                Ok(())
            };
            write_3mib(&t.join("a"))?;
            rfs::unlink(t.join("a")).ctx("unlink")?;
            ok("after unlink")?;
            write_3mib(&t.join("b"))?;
            std::fs::write(t.join("small"), b"s").ctx("write small")?;
            rfs::rename(t.join("small"), t.join("b")).ctx("rename over")?;
            ok("after a rename over the file")?;
            write_3mib(&t.join("c"))?;
            let open = std::fs::File::open(t.join("c")).ctx("open")?;
            rfs::unlink(t.join("c")).ctx("unlink an open file")?;
            ensure!(free(t)? < 3 * MIB, "an open unlinked file has no blocks");
            drop(open);
            ok("after the last close")?;
            std::fs::create_dir(t.join("d")).ctx("mkdir")?;
            write_3mib(&t.join("d/f"))?;
            rfs::unlink(t.join("d/f")).ctx("unlink in d")?;
            rfs::rmdir(t.join("d")).ctx("rmdir")?;
            ok("after rmdir")?;
            write_3mib(&t.join("e"))
        })
        .and_then(|()| {
            // Below the mount: the host removes a file its own shifting
            // mount has looked up; a lookup that finds it gone lets it go.
            tree.host_shifting_mount()?;
            let r = (|| {
                rfs::stat(tree.target.join("e")).ctx("stat e")?;
                std::fs::remove_file(tree.real.join("e")).ctx("host rm")?;
                ensure_eq!(
                    rfs::stat(tree.target.join("e")).err(),
                    Some(Errno::NOENT),
                    "stat after the host's rm"
                );
                let f = free(&tree.target)?;
                ensure!(f >= 3 * MIB, "after rm below: only {f} bytes free");
                Ok(())
            })();
            unmount(&tree.target, UnmountFlags::empty()).ctx("umount")?;
            r
        });
    drop_tmpfs(env, "space", &tree)?;
    res
}
