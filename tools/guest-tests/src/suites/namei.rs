//! Namespace operations through a shifting mount, from a real container
//! (0:100000:65536): each entry made, renamed or removed by the container is
//! checked on the host's real path (owner, mode, content, link count) and
//! in the container.

use crate::{
    ensure, ensure_eq,
    fixture::{acl_value, become_id, load, unload, Tree},
    harness::{Context, Outcome},
    tests, Env,
};
use rustix::{
    fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, CWD},
    io::Errno,
    process::umask,
};
use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    create_lands_with_the_container_ids,
    create_exclusive_of_an_existing_name_is_eexist,
    mkdir_and_rmdir,
    rmdir_of_a_non_empty_directory_is_enotempty,
    mknod_fifo_and_socket,
    mknod_device_is_eperm_in_the_container,
    host_makes_device_nodes_through_the_mark_but_cannot_open_them,
    symlink_lands_with_its_target,
    link_shares_the_inode_on_both_sides,
    unlink_removes_the_real_entry,
    rename_moves_the_real_entry,
    rename_over_an_existing_file_replaces_it,
    rename_noreplace_of_an_existing_target_is_eexist,
    rename_exchange_swaps_both_entries,
    rename_whiteout_leaves_a_whiteout,
    tmpfile_then_linkat_gives_it_a_name,
    tmpfile_excl_cannot_be_linked,
    setgid_directory_passes_its_group_on,
    umask_applies,
    default_acl_is_inherited,
    parent_times_follow_changes,
    entries_made_below_show_up_and_go,
    names_changed_below_show_through_cached_walks,
    host_unmarks,
    unload,
];

fn tree(env: &Env) -> Tree {
    Tree::new(env, "namei")
}

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    let r = &tree.real;
    for d in ["user", "sgid", "acl"] {
        std::fs::create_dir(r.join(d)).ctx("mkdir")?;
    }
    std::os::unix::fs::chown(r.join("user"), Some(1000), Some(1000)).ctx("chown user")?;
    std::os::unix::fs::chown(r.join("sgid"), Some(0), Some(2000)).ctx("chown sgid")?;
    std::fs::set_permissions(r.join("sgid"), std::fs::Permissions::from_mode(0o2777))
        .ctx("chmod sgid")?;
    tree.mark()
}

/// Owner, group, mode (permission bits and type) and link count on disk.
fn on_disk(path: &Path) -> Result<(u32, u32, u32, u64), String> {
    let md = std::fs::symlink_metadata(path).ctx(&format!("stat {}", path.display()))?;
    Ok((md.uid(), md.gid(), md.mode(), md.nlink()))
}

/// Runs `f` as uid/gid 1000 of the container (after the shifting mount).
fn as_user(f: impl FnOnce() -> Outcome) -> Outcome {
    become_id(1000)?;
    f()
}

fn create_lands_with_the_container_ids(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        std::fs::write(t.join("by-root"), b"root's").ctx("create as root")?;
        as_user(|| {
            let fd = rfs::open(
                t.join("user/by-user"),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY,
                Mode::from_raw_mode(0o640),
            )
            .ctx("open O_CREAT|O_EXCL as 1000")?;
            rustix::io::write(&fd, b"user's").ctx("write")?;
            let st = rfs::fstat(&fd).ctx("fstat")?;
            ensure_eq!(
                (st.st_uid, st.st_gid),
                (1000, 1000),
                "owner in the container"
            );
            Ok(())
        })
    })?;
    let r = &tree(env).real;
    let (uid, gid, mode, nlink) = on_disk(&r.join("by-root"))?;
    ensure_eq!((uid, gid, nlink), (0, 0, 1), "root's file on disk");
    ensure_eq!(mode & 0o170000, 0o100000, "a regular file");
    let (uid, gid, mode, _) = on_disk(&r.join("user/by-user"))?;
    ensure_eq!(
        (uid, gid, mode & 0o7777),
        (1000, 1000, 0o640),
        "user's file on disk"
    );
    ensure_eq!(
        std::fs::read(r.join("user/by-user")).ctx("read")?,
        b"user's",
        "content on disk"
    );
    Ok(())
}

fn create_exclusive_of_an_existing_name_is_eexist(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let r = rfs::open(
            t.join("by-root"),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY,
            Mode::from_raw_mode(0o600),
        );
        ensure_eq!(r.err(), Some(Errno::EXIST), "O_EXCL of an existing file");
        Ok(())
    })?;
    ensure_eq!(
        std::fs::read(tree(env).real.join("by-root")).ctx("read")?,
        b"root's",
        "content untouched"
    );
    Ok(())
}

fn mkdir_and_rmdir(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        as_user(|| {
            rfs::mkdir(t.join("user/d"), Mode::from_raw_mode(0o750)).ctx("mkdir")?;
            rfs::mkdir(t.join("user/gone"), Mode::from_raw_mode(0o700)).ctx("mkdir gone")?;
            let st = rfs::stat(t.join("user/d")).ctx("stat")?;
            ensure_eq!(
                (st.st_uid, st.st_nlink),
                (1000, 2),
                "new directory in the container"
            );
            let parent = rfs::stat(t.join("user")).ctx("stat parent")?;
            ensure_eq!(parent.st_nlink, 4, "parent link count after two mkdirs");
            rfs::rmdir(t.join("user/gone")).ctx("rmdir")?;
            let parent = rfs::stat(t.join("user")).ctx("stat parent")?;
            ensure_eq!(parent.st_nlink, 3, "parent link count after rmdir");
            ensure_eq!(
                rfs::stat(t.join("user/gone")).err(),
                Some(Errno::NOENT),
                "removed directory"
            );
            Ok(())
        })
    })?;
    let r = &tree(env).real;
    let (uid, gid, mode, _) = on_disk(&r.join("user/d"))?;
    ensure_eq!((uid, gid, mode), (1000, 1000, 0o40750), "directory on disk");
    ensure!(
        !r.join("user/gone").exists(),
        "removed directory still on disk"
    );
    Ok(())
}

fn rmdir_of_a_non_empty_directory_is_enotempty(env: &Env) -> Outcome {
    std::fs::create_dir_all(tree(env).real.join("full/sub")).ctx("mkdir")?;
    tree(env).in_shifted(|t| {
        ensure_eq!(
            rfs::rmdir(t.join("full")).err(),
            Some(Errno::NOTEMPTY),
            "rmdir"
        );
        Ok(())
    })?;
    ensure!(tree(env).real.join("full/sub").is_dir(), "contents lost");
    Ok(())
}

fn mknod_fifo_and_socket(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        as_user(|| {
            rfs::mknodat(
                CWD,
                t.join("user/fifo"),
                FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )
            .ctx("mkfifo")?;
            rfs::mknodat(
                CWD,
                t.join("user/sock"),
                FileType::Socket,
                Mode::from_raw_mode(0o600),
                0,
            )
            .ctx("mknod socket")?;
            Ok(())
        })
    })?;
    let r = &tree(env).real;
    ensure_eq!(
        on_disk(&r.join("user/fifo"))?,
        (1000, 1000, 0o10600, 1),
        "fifo on disk"
    );
    ensure_eq!(
        on_disk(&r.join("user/sock"))?,
        (1000, 1000, 0o140600, 1),
        "socket on disk"
    );
    Ok(())
}

fn mknod_device_is_eperm_in_the_container(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let null = rustix::fs::makedev(1, 3);
        let r = rfs::mknodat(
            CWD,
            t.join("null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            null,
        );
        ensure_eq!(r.err(), Some(Errno::PERM), "mknod c 1 3");
        let r = rfs::mknodat(
            CWD,
            t.join("blk"),
            FileType::BlockDevice,
            Mode::from_raw_mode(0o666),
            null,
        );
        ensure_eq!(r.err(), Some(Errno::PERM), "mknod b 1 3");
        Ok(())
    })?;
    ensure!(
        !tree(env).real.join("null").exists(),
        "device node made on disk"
    );
    ensure!(
        !tree(env).real.join("blk").exists(),
        "device node made on disk"
    );
    Ok(())
}

fn host_makes_device_nodes_through_the_mark_but_cannot_open_them(env: &Env) -> Outcome {
    let tree = tree(env);
    let null = rustix::fs::makedev(1, 3);
    let dev = tree.mark.join("host-null");
    rfs::mknodat(
        CWD,
        &dev,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        null,
    )
    .ctx("mknod c 1 3 through the mark")?;
    let md = std::fs::symlink_metadata(tree.real.join("host-null")).ctx("stat on disk")?;
    ensure_eq!(
        (md.mode() & 0o170000, md.rdev()),
        (0o020000, null),
        "device node on disk"
    );
    // The mark is nodev: the node does not open through it.
    let r = rfs::open(&dev, OFlags::RDONLY, Mode::empty());
    ensure_eq!(
        r.err(),
        Some(Errno::ACCESS),
        "open of a device through the mark"
    );
    std::fs::remove_file(tree.real.join("host-null")).ctx("clean up")
}

fn symlink_lands_with_its_target(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        as_user(|| {
            rfs::symlink("../by-root", t.join("user/link")).ctx("symlink")?;
            let data = std::fs::read(t.join("user/link")).ctx("read through the link")?;
            ensure_eq!(data, b"root's", "content through the new link");
            Ok(())
        })
    })?;
    let r = &tree(env).real;
    let (uid, gid, mode, _) = on_disk(&r.join("user/link"))?;
    ensure_eq!(
        (uid, gid, mode & 0o170000),
        (1000, 1000, 0o120000),
        "symlink on disk"
    );
    ensure_eq!(
        std::fs::read_link(r.join("user/link")).ctx("readlink")?,
        Path::new("../by-root"),
        "target on disk"
    );
    Ok(())
}

fn link_shares_the_inode_on_both_sides(env: &Env) -> Outcome {
    std::fs::write(tree(env).real.join("linked"), b"linked").ctx("create")?;
    tree(env).in_shifted(|t| {
        rfs::link(t.join("linked"), t.join("linked2")).ctx("link")?;
        let (a, b) = (
            rfs::stat(t.join("linked")).ctx("stat")?,
            rfs::stat(t.join("linked2")).ctx("stat")?,
        );
        ensure_eq!(a.st_ino, b.st_ino, "one inode in the container");
        ensure_eq!(
            (a.st_nlink, b.st_nlink),
            (2, 2),
            "link counts in the container"
        );
        Ok(())
    })?;
    let r = &tree(env).real;
    let (a, b) = (
        std::fs::metadata(r.join("linked")).ctx("stat")?,
        std::fs::metadata(r.join("linked2")).ctx("stat")?,
    );
    ensure_eq!(a.ino(), b.ino(), "one inode on disk");
    ensure_eq!(a.nlink(), 2, "link count on disk");
    Ok(())
}

fn unlink_removes_the_real_entry(env: &Env) -> Outcome {
    let r = tree(env).real.clone();
    std::fs::write(r.join("doomed"), b"x").ctx("create")?;
    tree(env).in_shifted(|t| {
        let keep = std::fs::File::open(t.join("linked2")).ctx("open")?;
        rfs::unlink(t.join("linked2")).ctx("unlink a link")?;
        let st = rfs::fstat(&keep).ctx("fstat")?;
        ensure_eq!(st.st_nlink, 1, "link count of the remaining name");
        rfs::unlink(t.join("doomed")).ctx("unlink")?;
        ensure_eq!(
            rfs::stat(t.join("doomed")).err(),
            Some(Errno::NOENT),
            "after unlink"
        );
        ensure_eq!(
            rfs::unlink(t.join("doomed")).err(),
            Some(Errno::NOENT),
            "unlink twice"
        );
        ensure_eq!(
            rfs::unlink(t.join("user")).err(),
            Some(Errno::ISDIR),
            "unlink a directory"
        );
        Ok(())
    })?;
    ensure!(!r.join("doomed").exists(), "still on disk");
    ensure!(!r.join("linked2").exists(), "link still on disk");
    ensure_eq!(
        std::fs::metadata(r.join("linked")).ctx("stat")?.nlink(),
        1,
        "nlink on disk"
    );
    Ok(())
}

fn rename_moves_the_real_entry(env: &Env) -> Outcome {
    let r = tree(env).real.clone();
    std::fs::write(r.join("moving"), b"moving").ctx("create")?;
    tree(env).in_shifted(|t| {
        rfs::rename(t.join("moving"), t.join("user/moved")).ctx("rename across directories")?;
        rfs::rename(t.join("user/d"), t.join("d-moved")).ctx("rename a directory")?;
        ensure_eq!(
            rfs::stat(t.join("moving")).err(),
            Some(Errno::NOENT),
            "old name"
        );
        ensure_eq!(
            std::fs::read(t.join("user/moved")).ctx("read")?,
            b"moving",
            "new name"
        );
        Ok(())
    })?;
    ensure!(!r.join("moving").exists(), "old name on disk");
    ensure_eq!(
        std::fs::read(r.join("user/moved")).ctx("read")?,
        b"moving",
        "new name on disk"
    );
    ensure!(
        r.join("d-moved").is_dir() && !r.join("user/d").exists(),
        "moved directory on disk"
    );
    Ok(())
}

fn rename_over_an_existing_file_replaces_it(env: &Env) -> Outcome {
    let r = tree(env).real.clone();
    std::fs::write(r.join("src"), b"new").ctx("create")?;
    std::fs::write(r.join("dst"), b"old").ctx("create")?;
    tree(env).in_shifted(|t| {
        let old = std::fs::File::open(t.join("dst")).ctx("open the victim")?;
        rfs::rename(t.join("src"), t.join("dst")).ctx("rename over")?;
        ensure_eq!(
            std::fs::read(t.join("dst")).ctx("read")?,
            b"new",
            "replaced"
        );
        ensure_eq!(
            rfs::fstat(&old).ctx("fstat")?.st_nlink,
            0,
            "victim's link count"
        );
        Ok(())
    })?;
    ensure_eq!(std::fs::read(r.join("dst")).ctx("read")?, b"new", "on disk");
    ensure!(!r.join("src").exists(), "old name on disk");
    Ok(())
}

fn rename_noreplace_of_an_existing_target_is_eexist(env: &Env) -> Outcome {
    let r = tree(env).real.clone();
    std::fs::write(r.join("nr-a"), b"a").ctx("create")?;
    std::fs::write(r.join("nr-b"), b"b").ctx("create")?;
    tree(env).in_shifted(|t| {
        let res = rfs::renameat_with(
            CWD,
            t.join("nr-a"),
            CWD,
            t.join("nr-b"),
            RenameFlags::NOREPLACE,
        );
        ensure_eq!(
            res.err(),
            Some(Errno::EXIST),
            "RENAME_NOREPLACE over a file"
        );
        rfs::renameat_with(
            CWD,
            t.join("nr-a"),
            CWD,
            t.join("nr-c"),
            RenameFlags::NOREPLACE,
        )
        .ctx("RENAME_NOREPLACE to a free name")?;
        Ok(())
    })?;
    ensure_eq!(
        std::fs::read(r.join("nr-b")).ctx("read")?,
        b"b",
        "target untouched"
    );
    ensure_eq!(std::fs::read(r.join("nr-c")).ctx("read")?, b"a", "renamed");
    Ok(())
}

fn rename_exchange_swaps_both_entries(env: &Env) -> Outcome {
    let r = tree(env).real.clone();
    std::fs::write(r.join("ex-file"), b"file").ctx("create")?;
    std::fs::create_dir(r.join("ex-dir")).ctx("mkdir")?;
    tree(env).in_shifted(|t| {
        rfs::renameat_with(
            CWD,
            t.join("ex-file"),
            CWD,
            t.join("ex-dir"),
            RenameFlags::EXCHANGE,
        )
        .ctx("RENAME_EXCHANGE")?;
        ensure!(
            rfs::stat(t.join("ex-file")).ctx("stat")?.st_mode & 0o170000 == 0o040000,
            "ex-file is the directory now"
        );
        ensure_eq!(
            std::fs::read(t.join("ex-dir")).ctx("read")?,
            b"file",
            "ex-dir is the file"
        );
        Ok(())
    })?;
    ensure!(r.join("ex-file").is_dir(), "exchanged on disk");
    ensure_eq!(
        std::fs::read(r.join("ex-dir")).ctx("read")?,
        b"file",
        "exchanged on disk"
    );
    Ok(())
}

fn rename_whiteout_leaves_a_whiteout(env: &Env) -> Outcome {
    // RENAME_WHITEOUT needs CAP_MKNOD from the syscall: the host uses it
    // here; overlayfs in a container uses it from the kernel (`stacking`).
    let tree = tree(env);
    std::fs::write(tree.real.join("wo"), b"wo").ctx("create")?;
    let target = tree.target.clone();
    tree.host_shifting_mount()?;
    let res = rfs::renameat_with(
        CWD,
        target.join("wo"),
        CWD,
        target.join("wo-moved"),
        RenameFlags::WHITEOUT,
    );
    rustix::mount::unmount(&target, rustix::mount::UnmountFlags::empty()).ctx("umount")?;
    res.ctx("RENAME_WHITEOUT")?;
    let md = std::fs::symlink_metadata(tree.real.join("wo")).ctx("stat the whiteout")?;
    ensure_eq!(
        (md.mode() & 0o170000, md.rdev()),
        (0o020000, 0),
        "a 0/0 character device"
    );
    ensure_eq!(
        std::fs::read(tree.real.join("wo-moved")).ctx("read")?,
        b"wo",
        "moved"
    );
    std::fs::remove_file(tree.real.join("wo")).ctx("remove the whiteout")
}

fn tmpfile_then_linkat_gives_it_a_name(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        as_user(|| {
            let fd = rfs::open(
                t.join("user"),
                OFlags::TMPFILE | OFlags::RDWR,
                Mode::from_raw_mode(0o600),
            )
            .ctx("O_TMPFILE")?;
            rustix::io::write(&fd, b"tmp").ctx("write")?;
            let st = rfs::fstat(&fd).ctx("fstat")?;
            ensure_eq!((st.st_uid, st.st_nlink), (1000, 0), "unnamed file");
            rfs::linkat(&fd, "", CWD, t.join("user/named"), AtFlags::EMPTY_PATH)
                .ctx("linkat AT_EMPTY_PATH")?;
            ensure_eq!(rfs::fstat(&fd).ctx("fstat")?.st_nlink, 1, "named now");
            Ok(())
        })
    })?;
    let p = tree(env).real.join("user/named");
    let (uid, gid, mode, nlink) = on_disk(&p)?;
    ensure_eq!(
        (uid, gid, mode, nlink),
        (1000, 1000, 0o100600, 1),
        "named file on disk"
    );
    ensure_eq!(std::fs::read(&p).ctx("read")?, b"tmp", "content on disk");
    Ok(())
}

fn tmpfile_excl_cannot_be_linked(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let fd = rfs::open(
            t,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::EXCL,
            Mode::from_raw_mode(0o600),
        )
        .ctx("O_TMPFILE|O_EXCL")?;
        let res = rfs::linkat(&fd, "", CWD, t.join("never"), AtFlags::EMPTY_PATH);
        ensure_eq!(res.err(), Some(Errno::NOENT), "linkat of an O_EXCL tmpfile");
        Ok(())
    })?;
    ensure!(!tree(env).real.join("never").exists(), "linked on disk");
    Ok(())
}

fn setgid_directory_passes_its_group_on(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        as_user(|| {
            std::fs::write(t.join("sgid/f"), b"").ctx("create")?;
            rfs::mkdir(t.join("sgid/d"), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
            Ok(())
        })
    })?;
    let r = &tree(env).real;
    let (uid, gid, _, _) = on_disk(&r.join("sgid/f"))?;
    ensure_eq!((uid, gid), (1000, 2000), "file in a setgid directory");
    let (uid, gid, mode, _) = on_disk(&r.join("sgid/d"))?;
    ensure_eq!(
        (uid, gid, mode & 0o2000),
        (1000, 2000, 0o2000),
        "directory inherits setgid"
    );
    Ok(())
}

fn umask_applies(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        umask(Mode::from_raw_mode(0o027));
        let fd = rfs::open(
            t.join("masked"),
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o666),
        )
        .ctx("create")?;
        drop(fd);
        rfs::mkdir(t.join("masked-dir"), Mode::from_raw_mode(0o777)).ctx("mkdir")?;
        Ok(())
    })?;
    let r = &tree(env).real;
    ensure_eq!(
        on_disk(&r.join("masked"))?.2 & 0o777,
        0o640,
        "file mode with umask 027"
    );
    ensure_eq!(
        on_disk(&r.join("masked-dir"))?.2 & 0o777,
        0o750,
        "directory mode with umask 027"
    );
    Ok(())
}

fn default_acl_is_inherited(env: &Env) -> Outcome {
    const U: u32 = u32::MAX;
    let r = tree(env).real.clone();
    // Default ACL: owner rwx, user 1000 r-x, group r-x, mask r-x, other ---.
    let def = acl_value(&[
        (1, 7, U),
        (2, 5, 1000),
        (4, 5, U),
        (0x10, 5, U),
        (0x20, 0, U),
    ]);
    rfs::setxattr(
        r.join("acl"),
        "system.posix_acl_default",
        &def,
        rfs::XattrFlags::empty(),
    )
    .ctx("set default ACL")?;
    tree(env).in_shifted(|t| {
        umask(Mode::from_raw_mode(0o077));
        let fd = rfs::open(
            t.join("acl/f"),
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o666),
        )
        .ctx("create")?;
        drop(fd);
        Ok(())
    })?;
    // The default ACL, not the umask, decides: rw- r-- (mask r--) ---.
    let mut buf = vec![0u8; 256];
    let n = rfs::getxattr(r.join("acl/f"), "system.posix_acl_access", &mut buf)
        .ctx("access ACL of the new file")?;
    ensure_eq!(
        &buf[..n],
        &acl_value(&[
            (1, 6, U),
            (2, 5, 1000),
            (4, 5, U),
            (0x10, 4, U),
            (0x20, 0, U)
        ])[..],
        "inherited ACL on disk"
    );
    ensure_eq!(
        on_disk(&r.join("acl/f"))?.2 & 0o777,
        0o640,
        "mode from the ACL"
    );
    Ok(())
}

fn parent_times_follow_changes(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        rfs::mkdir(t.join("times"), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
        let before = rfs::stat(t.join("times")).ctx("stat")?;
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(t.join("times/f"), b"").ctx("create")?;
        let after = rfs::stat(t.join("times")).ctx("stat")?;
        ensure!(
            (after.st_mtime, after.st_mtime_nsec) > (before.st_mtime, before.st_mtime_nsec),
            "directory mtime did not move on create"
        );
        Ok(())
    })?;
    let md = std::fs::metadata(tree(env).real.join("times")).ctx("stat")?;
    ensure!(md.mtime_nsec() != 0 || md.mtime() != 0, "no mtime on disk");
    Ok(())
}

fn entries_made_below_show_up_and_go(env: &Env) -> Outcome {
    // The host's own shifting mount (identity): the host writes below while
    // the stacked dentries are cached.
    let tree = tree(env);
    let (r, t) = (tree.real.clone(), tree.target.clone());
    tree.host_shifting_mount()?;
    let res = (|| {
        // Cache a negative entry, then create the name below.
        ensure_eq!(
            rfs::stat(t.join("later")).err(),
            Some(Errno::NOENT),
            "before"
        );
        std::fs::write(r.join("later"), b"below").ctx("host creates")?;
        ensure_eq!(
            std::fs::read(t.join("later")).ctx("read")?,
            b"below",
            "made below"
        );
        std::fs::remove_file(r.join("later")).ctx("host removes")?;
        ensure_eq!(
            rfs::stat(t.join("later")).err(),
            Some(Errno::NOENT),
            "removed below"
        );
        // A name made where one was removed below.
        std::fs::write(t.join("later"), b"again").ctx("create again")?;
        ensure_eq!(
            std::fs::read(r.join("later")).ctx("read")?,
            b"again",
            "on disk"
        );
        // Renamed below: the old name is gone, the new one there.
        std::fs::rename(r.join("later"), r.join("later2")).ctx("host renames")?;
        ensure_eq!(
            rfs::stat(t.join("later")).err(),
            Some(Errno::NOENT),
            "renamed below"
        );
        ensure_eq!(
            std::fs::read(t.join("later2")).ctx("read")?,
            b"again",
            "new name"
        );
        Ok(())
    })();
    rustix::mount::unmount(&t, rustix::mount::UnmountFlags::empty()).ctx("umount")?;
    res
}

/// RCU walks through cached dentries notice names changed below by the
/// real dentry's sequence count: an exchange (no name or hash changes),
/// a directory on the path replaced, an entry moved away and back.
fn names_changed_below_show_through_cached_walks(env: &Env) -> Outcome {
    let tree = tree(env);
    let (r, t) = (tree.real.clone(), tree.target.clone());
    std::fs::create_dir_all(r.join("walk/d")).ctx("mkdir")?;
    for (name, data) in [("walk/d/f", "one"), ("walk/a", "a"), ("walk/b", "b")] {
        std::fs::write(r.join(name), data).ctx("host writes")?;
    }
    tree.host_shifting_mount()?;
    let read = |p: &str| std::fs::read_to_string(t.join(p)).ctx(p);
    let res = (|| {
        // The second round walks dentries the first one cached.
        for _ in 0..2 {
            ensure_eq!(read("walk/d/f")?, "one", "cached");
            ensure_eq!(read("walk/a")?, "a", "cached");
            ensure_eq!(read("walk/b")?, "b", "cached");
        }
        rfs::renameat_with(
            CWD,
            r.join("walk/a"),
            CWD,
            r.join("walk/b"),
            RenameFlags::EXCHANGE,
        )
        .ctx("host exchanges")?;
        ensure_eq!(read("walk/a")?, "b", "exchanged below");
        ensure_eq!(read("walk/b")?, "a", "exchanged below");
        std::fs::rename(r.join("walk/d"), r.join("walk/d2")).ctx("host renames")?;
        std::fs::create_dir(r.join("walk/d")).ctx("host mkdir")?;
        std::fs::write(r.join("walk/d/f"), "two").ctx("host writes")?;
        ensure_eq!(read("walk/d/f")?, "two", "directory replaced below");
        ensure_eq!(read("walk/d2/f")?, "one", "directory moved below");
        std::fs::rename(r.join("walk/d2/f"), r.join("walk/g")).ctx("host renames")?;
        ensure_eq!(
            rfs::stat(t.join("walk/d2/f")).err(),
            Some(Errno::NOENT),
            "moved away"
        );
        ensure_eq!(read("walk/g")?, "one", "moved away");
        std::fs::rename(r.join("walk/g"), r.join("walk/d2/f")).ctx("host renames back")?;
        ensure_eq!(read("walk/d2/f")?, "one", "moved back");
        ensure_eq!(
            rfs::stat(t.join("walk/g")).err(),
            Some(Errno::NOENT),
            "moved back"
        );
        Ok(())
    })();
    rustix::mount::unmount(&t, rustix::mount::UnmountFlags::empty()).ctx("umount")?;
    res
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
