//! Faults of the real filesystem under a live shifting mount: it fills up
//! mid-workload (ENOSPC; what was fsync'ed survives an unmount and fsck),
//! it is remounted read-only with files open (EBUSY while open for
//! writing, then EROFS, then writable again), the real directory is renamed
//! or removed under the mark (ENOENT, open files keep working, no ESTALE),
//! and the lower mount is lazily unmounted (the mark keeps it alive, data
//! fsync'ed after the detach is on disk afterwards), and the power is cut
//! (the device copied as it stands under a live shifting mount, with no
//! writeback and no journal commit but those fsync makes; the copy, once
//! its journal is replayed, holds everything fsync'ed and passes fsck).
//! Every step expects a clean errno; splats fail the run.
//!
//! `SHIFTFS_STRESS=long` repeats the ENOSPC workload 20 times and the power
//! cut 10 times, with more files.

use crate::{
    container, ensure, ensure_eq,
    fixture::{become_id, every_change_fails, load, unload, Tree},
    harness::{Context, Outcome},
    reliability::{self as rel, Ext4, Rng, Sysctls},
    sys::FS_NAME,
    tests, Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags, XattrFlags},
    io::Errno,
    mount::{mount, mount_remount, unmount, MountFlags, UnmountFlags},
};
use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::{FileExt, MetadataExt},
    path::Path,
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    enospc_mid_workload_keeps_what_was_fsynced,
    read_only_remount_under_a_live_mount,
    real_directory_renamed_or_removed_under_the_mark,
    lower_mount_unmounted_lazily,
    power_cut_keeps_what_was_fsynced,
    no_busy_inodes_reported,
    unload,
];

/// A tree whose real directory is on `base`.
fn tree_on(base: &Path, env: &Env, name: &str) -> Result<Tree, String> {
    let tree = Tree {
        real: base.join("real"),
        mark: env.scratch.join(format!("{name}-mark")),
        target: env.scratch.join(format!("{name}-target")),
    };
    tree.create()?;
    Ok(tree)
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The workload of one ENOSPC round: files of random sizes, each written,
/// fsync'ed and recorded, with directories and xattrs, until the
/// filesystem is full; then more attempts that must fail with ENOSPC (or
/// succeed), then removing some files makes room again. Returns the
/// fsync'ed files' digests by name.
fn fill_up(t: &Path, seed: u64) -> Result<BTreeMap<String, u64>, String> {
    let mut rng = Rng::new(seed);
    let mut synced = BTreeMap::new();
    let mut full = 0;
    for i in 0..10_000 {
        let dir = format!("d{}", i % 5);
        match rfs::mkdir(t.join(&dir), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(Errno::NOSPC) => {}
            Err(e) => return Err(format!("mkdir: {e}")),
        }
        let name = format!("{dir}/f{i}");
        let len = 1000 + rng.below(24_000) as usize;
        let data = rng.bytes(len);
        let r = (|| -> Result<(), Errno> {
            let mut f = std::fs::File::create(t.join(&name)).map_err(|e| errno_of(&e))?;
            f.write_all(&data).map_err(|e| errno_of(&e))?;
            f.sync_all().map_err(|e| errno_of(&e))?;
            let _ = rfs::setxattr(t.join(&name), "user.x", &data[..64], XattrFlags::empty());
            Ok(())
        })();
        match r {
            Ok(()) => {
                synced.insert(name, rel::digest(&data));
            }
            Err(Errno::NOSPC) => {
                full += 1;
                // Keep whatever an earlier write of this name left: it is
                // not in `synced` and may be partial.
                let _ = rfs::unlink(t.join(&name));
                if full == 4 {
                    break;
                }
            }
            Err(e) => return Err(format!("write {name}: {e} (expected ENOSPC)")),
        }
    }
    ensure!(full > 0, "never full");
    // Everything fsync'ed reads back, through the mount.
    for (name, d) in &synced {
        let got = std::fs::read(t.join(name)).ctx(&format!("read {name}"))?;
        ensure_eq!(rel::digest(&got), *d, format!("{name} through the mount"));
    }
    // Making room makes writes work again.
    let victims: Vec<String> = synced.keys().take(synced.len() / 2).cloned().collect();
    for v in &victims {
        rfs::unlink(t.join(v)).ctx("unlink to make room")?;
        synced.remove(v);
    }
    std::fs::write(t.join("after"), b"room again").ctx("write after making room")?;
    std::fs::File::open(t.join("after"))
        .and_then(|f| f.sync_all())
        .ctx("fsync")?;
    synced.insert("after".into(), rel::digest(b"room again"));
    Ok(synced)
}

fn enospc_mid_workload_keeps_what_was_fsynced(env: &Env) -> Outcome {
    let rounds = rel::pick(1, 20);
    let seed = rel::seed();
    for round in 0..rounds {
        let ext4 = Ext4::new(
            &env.scratch.join("faults-enospc.img"),
            &env.scratch.join("faults-enospc"),
            8,
        )?;
        let res = (|| {
            let tree = tree_on(&ext4.dir, env, "faults-enospc")?;
            std::os::unix::fs::chown(&tree.real, Some(1000), Some(1000)).ctx("chown")?;
            tree.mark()?;
            // The manifest comes back through a file the host opened.
            let manifest = env.scratch.join("faults-manifest");
            let mut out = std::fs::File::create(&manifest).ctx("manifest")?;
            let r = tree.in_shifted(|t| {
                become_id(1000)?;
                let synced = fill_up(t, seed.wrapping_add(round))?;
                for (k, v) in synced {
                    writeln!(out, "{k} {v}").ctx("write manifest")?;
                }
                Ok(())
            });
            tree.unmark()?;
            r?;
            // Unmounted, consistent, and everything fsync'ed is there.
            unmount(&ext4.dir, UnmountFlags::empty()).ctx("umount ext4")?;
            ext4.fsck()?;
            ext4.mount()?;
            let text = std::fs::read_to_string(&manifest).ctx("read manifest")?;
            let mut n = 0;
            for line in text.lines() {
                let (name, d) = line.split_once(' ').ok_or("manifest line")?;
                let got = std::fs::read(tree.real.join(name)).ctx(&format!("read {name}"))?;
                ensure_eq!(
                    rel::digest(&got).to_string(),
                    d,
                    format!("{name} on disk after remount")
                );
                n += 1;
            }
            if round == 0 {
                rel::info(&format!(
                    "faults: ENOSPC round: {n} fsync'ed files verified after umount+fsck"
                ));
            }
            ensure!(n > 5, "only {n} files fit");
            Ok(())
        })();
        ext4.release()?;
        res.map_err(|e| format!("seed {seed} round {round}: {e}"))?;
    }
    Ok(())
}

fn read_only_remount_under_a_live_mount(env: &Env) -> Outcome {
    let base = env.scratch.join("faults-ro");
    std::fs::create_dir_all(&base).ctx("mkdir")?;
    mount("faults-ro", &base, "tmpfs", MountFlags::empty(), c"size=4m").ctx("tmpfs")?;
    let tree = tree_on(&base, env, "faults-ro")?;
    std::fs::write(tree.real.join("a"), b"a-data").ctx("create")?;
    tree.mark()?;
    let (src, dst) = (tree.mark.clone(), tree.target.clone());
    let b2 = base.clone();
    let res = rel::lockstep(
        move |turn| {
            mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            let t = &dst;
            let w = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(t.join("w"))
                .ctx("open w")?;
            w.write_at(b"before", 0).ctx("write")?;
            w.sync_all().ctx("fsync")?;
            let r = std::fs::File::open(t.join("a")).ctx("open a")?;
            // Host: remount read-only while `w` is open for writing.
            turn.pass()?;
            w.write_at(b"during", 6)
                .ctx("write while the remount was refused")?;
            w.sync_all().ctx("fsync")?;
            drop(w);
            // Host: remount read-only again, now that nothing is open for
            // writing.
            turn.pass()?;
            let mut buf = [0u8; 6];
            r.read_at(&mut buf, 0).ctx("read an open file")?;
            ensure_eq!(&buf, b"a-data", "read on a read-only real fs");
            ensure_eq!(
                std::fs::read(t.join("w")).ctx("read w")?,
                b"beforeduring",
                "fsync'ed bytes"
            );
            every_change_fails(t, "a", Errno::ROFS)?;
            // Host: remount read-write.
            turn.pass()?;
            std::fs::write(t.join("after"), b"after").ctx("write after rw remount")?;
            Ok(())
        },
        move |turn| {
            turn.wait()?;
            ensure_eq!(
                mount_remount(&b2, MountFlags::RDONLY, c"").err(),
                Some(Errno::BUSY),
                "remount ro with a file open for writing"
            );
            turn.pass()?;
            mount_remount(&b2, MountFlags::RDONLY, c"").ctx("remount ro")?;
            turn.pass()?;
            mount_remount(&b2, MountFlags::empty(), c"").ctx("remount rw")?;
            turn.pass().or(Ok(()))
        },
    );
    let after = std::fs::read(tree.real.join("after"));
    tree.unmark()?;
    unmount(&base, UnmountFlags::DETACH).ctx("umount tmpfs")?;
    res?;
    ensure_eq!(after.ctx("read after")?, b"after", "on disk");
    Ok(())
}

fn real_directory_renamed_or_removed_under_the_mark(env: &Env) -> Outcome {
    let tree = Tree::new(env, "faults-gone");
    tree.create()?;
    let r = tree.real.clone();
    std::fs::create_dir_all(r.join("sub/deep")).ctx("mkdir")?;
    std::fs::write(r.join("sub/file"), b"x").ctx("create")?;
    tree.mark()?;
    let (src, dst) = (tree.mark.clone(), tree.target.clone());
    let moved_root = env.scratch.join("faults-gone-moved");
    let (r2, m2) = (r.clone(), moved_root.clone());
    let res = rel::lockstep(
        move |turn| {
            mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            let t = &dst;
            rfs::stat(t.join("sub/deep")).ctx("cache sub/deep")?;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(t.join("sub/file"))
                .ctx("open sub/file")?;
            f.write_at(b"synced", 0).ctx("write")?;
            f.sync_all().ctx("fsync")?;
            let sub = rfs::open(
                t.join("sub"),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .ctx("open sub")?;
            // Host: renames real/sub to real/sub2.
            turn.pass()?;
            ensure_eq!(
                rfs::stat(t.join("sub/deep")).err(),
                Some(Errno::NOENT),
                "old name after a rename below"
            );
            rfs::stat(t.join("sub2/deep")).ctx("new name after a rename below")?;
            f.write_at(b"moved!", 6)
                .ctx("write an open file after the rename")?;
            f.sync_all().ctx("fsync")?;
            // Host: removes real/sub2 and everything in it.
            turn.pass()?;
            for p in ["sub2", "sub2/deep", "sub2/file"] {
                ensure_eq!(
                    rfs::stat(t.join(p)).err(),
                    Some(Errno::NOENT),
                    format!("{p} after removal below")
                );
            }
            ensure_eq!(
                rfs::openat(
                    &sub,
                    "new",
                    OFlags::CREATE | OFlags::WRONLY,
                    Mode::from_raw_mode(0o644)
                )
                .err(),
                Some(Errno::NOENT),
                "create in a directory removed below"
            );
            ensure_eq!(
                rfs::mkdirat(&sub, "nd", Mode::from_raw_mode(0o755)).err(),
                Some(Errno::NOENT),
                "mkdir in a directory removed below"
            );
            let n = rfs::Dir::read_from(&sub)
                .ctx("readdir a removed directory")?
                .filter(|e| e.is_ok())
                .count();
            ensure!(n <= 2, "a removed directory lists {n} entries");
            let mut buf = [0u8; 12];
            f.read_at(&mut buf, 0).ctx("read an open, removed file")?;
            ensure_eq!(&buf, b"syncedmoved!", "bytes of the open removed file");
            // Host: renames the marked real directory itself away.
            turn.pass()?;
            std::fs::write(t.join("while-moved"), b"m").ctx("create after the root moved")?;
            ensure!(
                std::fs::read_dir(t).ctx("readdir root")?.count() >= 1,
                "root lists nothing"
            );
            // Host: removes the real root entirely.
            turn.pass()?;
            ensure_eq!(
                rfs::open(
                    t.join("x"),
                    OFlags::CREATE | OFlags::WRONLY,
                    Mode::from_raw_mode(0o644)
                )
                .err(),
                Some(Errno::NOENT),
                "create in a removed root"
            );
            ensure_eq!(
                rfs::stat(t.join("while-moved")).err(),
                Some(Errno::NOENT),
                "lookup in a removed root"
            );
            let n = std::fs::read_dir(t).ctx("readdir a removed root")?.count();
            ensure_eq!(n, 0, "entries in a removed root");
            rfs::stat(t).ctx("stat a removed root")?;
            Ok(())
        },
        move |turn| {
            turn.wait()?;
            std::fs::rename(r2.join("sub"), r2.join("sub2")).ctx("rename below")?;
            turn.pass()?;
            let data = std::fs::read(r2.join("sub2/file")).ctx("read below")?;
            ensure_eq!(data, b"syncedmoved!", "fsync'ed bytes below before removal");
            std::fs::remove_dir_all(r2.join("sub2")).ctx("remove below")?;
            turn.pass()?;
            std::fs::rename(&r2, &m2).ctx("rename the real root")?;
            turn.pass()?;
            ensure_eq!(
                std::fs::read(m2.join("while-moved")).ctx("read in the moved root")?,
                b"m",
                "file made after the root moved"
            );
            std::fs::remove_dir_all(&m2).ctx("remove the real root")?;
            turn.pass().or(Ok(()))
        },
    );
    tree.unmark()?;
    res
}

fn lower_mount_unmounted_lazily(env: &Env) -> Outcome {
    let ext4 = Ext4::new(
        &env.scratch.join("faults-lazy.img"),
        &env.scratch.join("faults-lazy"),
        16,
    )?;
    let res = (|| {
        let tree = tree_on(&ext4.dir, env, "faults-lazy")?;
        tree.mark()?;
        let (src, dst) = (tree.mark.clone(), tree.target.clone());
        let base = ext4.dir.clone();
        let r = rel::lockstep(
            move |turn| {
                mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
                let t = &dst;
                let f = std::fs::File::create(t.join("before")).ctx("create")?;
                f.write_all_at(&[7u8; 100_000], 0).ctx("write")?;
                f.sync_all().ctx("fsync")?;
                // Host: umount -l of the real filesystem.
                turn.pass()?;
                f.write_all_at(&[8u8; 1000], 100_000)
                    .ctx("write after the detach")?;
                f.sync_all().ctx("fsync after the detach")?;
                std::fs::write(t.join("after"), b"after the detach").ctx("create after")?;
                std::fs::File::open(t.join("after"))
                    .and_then(|f| f.sync_all())
                    .ctx("fsync")?;
                rfs::mkdir(t.join("dir"), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
                Ok(())
            },
            move |turn| {
                turn.wait()?;
                unmount(&base, UnmountFlags::DETACH).ctx("umount -l the real fs")?;
                turn.pass().or(Ok(()))
            },
        );
        // A new container mounts the mark of the detached filesystem.
        let r2 = tree.in_shifted(|t| {
            std::fs::write(t.join("third"), b"third").ctx("create in a new container")?;
            std::fs::File::open(t.join("third"))
                .and_then(|f| f.sync_all())
                .ctx("fsync")
        });
        tree.unmark()?;
        r?;
        r2?;
        // The last reference went with the mark: the filesystem is free to
        // mount again, consistent, with everything fsync'ed.
        std::thread::sleep(std::time::Duration::from_millis(200));
        ext4.fsck()?;
        ext4.mount()?;
        let before = std::fs::read(ext4.dir.join("real/before")).ctx("read before")?;
        ensure!(
            before.len() == 101_000
                && before[..100_000].iter().all(|&b| b == 7)
                && before[100_000..].iter().all(|&b| b == 8),
            "file written across the detach: {} bytes",
            before.len()
        );
        ensure_eq!(
            std::fs::read(ext4.dir.join("real/after")).ctx("read after")?,
            b"after the detach",
            "file made after the detach"
        );
        ensure_eq!(
            std::fs::read(ext4.dir.join("real/third")).ctx("read third")?,
            b"third",
            "file made by a new container"
        );
        ensure!(ext4.dir.join("real/dir").is_dir(), "directory lost");
        Ok(())
    })();
    ext4.release()?;
    res
}

/// fsync of a directory, through the mount.
fn fsync_dir(d: &Path) -> Outcome {
    let f = rfs::open(d, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ctx("open dir")?;
    rfs::fsync(&f).ctx(&format!("fsync {}", d.display()))
}

/// What a careful program does before a power cut: files written and
/// fsync'ed, their directories fsync'ed, a file replaced atomically
/// (written, fsync'ed, renamed over, directory fsync'ed) several times, a
/// hard link made durable; then files written and never synced. Returns
/// the digests of what must survive, and the names that need not.
fn durable_workload(
    t: &Path,
    seed: u64,
    files: u64,
) -> Result<(BTreeMap<String, u64>, Vec<String>), String> {
    let mut rng = Rng::new(seed);
    let mut synced = BTreeMap::new();
    for i in 0..files {
        let dir = format!("d{}", i % 4);
        std::fs::create_dir_all(t.join(&dir)).ctx("mkdir")?;
        let name = format!("{dir}/f{i}");
        let len = 1 + rng.below(40_000) as usize;
        let data = rng.bytes(len);
        let mut f = std::fs::File::create(t.join(&name)).ctx(&format!("create {name}"))?;
        f.write_all(&data).ctx("write")?;
        f.sync_all().ctx("fsync")?;
        synced.insert(name, rel::digest(&data));
    }
    for d in 0..4.min(files) {
        fsync_dir(&t.join(format!("d{d}")))?;
    }
    fsync_dir(t)?;
    for v in 0..5u8 {
        let data = rng.bytes(100 + usize::from(v) * 1000);
        let mut f = std::fs::File::create(t.join("cfg.tmp")).ctx("create cfg.tmp")?;
        f.write_all(&data).ctx("write cfg.tmp")?;
        f.sync_all().ctx("fsync cfg.tmp")?;
        rfs::rename(t.join("cfg.tmp"), t.join("cfg")).ctx("rename over cfg")?;
        fsync_dir(t)?;
        synced.insert("cfg".into(), rel::digest(&data));
    }
    rfs::link(t.join("d0/f0"), t.join("lnk")).ctx("link")?;
    fsync_dir(t)?;
    synced.insert("lnk".into(), synced["d0/f0"]);
    // Never synced: these live only in memory when the power goes.
    std::fs::create_dir(t.join("unsynced")).ctx("mkdir unsynced")?;
    let mut unsynced = Vec::new();
    for i in 0..20 {
        let name = format!("unsynced/u{i}");
        std::fs::write(t.join(&name), rng.bytes(5000)).ctx("write unsynced")?;
        unsynced.push(name);
    }
    Ok((synced, unsynced))
}

/// The device as it stands at the cut, taken while a container's shifting
/// mount is live (its unmount would sync the real filesystem), then
/// "booted": mounted (replaying the journal), checked, unmounted, fsck'ed.
fn power_cut_round(env: &Env, seed: u64, files: u64, first: bool) -> Outcome {
    let img = env.scratch.join("faults-cut.img");
    let crash = env.scratch.join("faults-cut-crash.img");
    let dir = env.scratch.join("faults-cut");
    let manifest = env.scratch.join("faults-cut-manifest");
    let ext4 = Ext4::new(&img, &dir, 32)?;
    let res = (|| {
        // The journal commits only when fsync asks for it.
        mount_remount(&ext4.dir, MountFlags::empty(), c"commit=3600").ctx("commit=3600")?;
        let tree = tree_on(&ext4.dir, env, "faults-cut")?;
        std::os::unix::fs::chown(&tree.real, Some(1000), Some(1000)).ctx("chown")?;
        tree.mark()?;
        let mut out = std::fs::File::create(&manifest).ctx("manifest")?;
        let (mark, target) = (tree.mark.clone(), tree.target.clone());
        let (img2, crash2) = (img.clone(), crash.clone());
        let r = container::with_host_mapped(
            container::MAP,
            move || {
                mount(&mark, &target, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
                become_id(1000)?;
                let (synced, unsynced) = durable_workload(&target, seed, files)?;
                for (k, v) in synced {
                    writeln!(out, "{k} {v}").ctx("write manifest")?;
                }
                for k in unsynced {
                    writeln!(out, "{k} -").ctx("write manifest")?;
                }
                Ok(())
            },
            move |_| {
                std::fs::copy(&img2, &crash2)
                    .map(drop)
                    .ctx("copy the device")
            },
        );
        tree.unmark()?;
        r
    })();
    ext4.release()?;
    res?;
    let after = Ext4::attach(&crash, &dir)?;
    let res = (|| {
        let real = after.dir.join("real");
        let text = std::fs::read_to_string(&manifest).ctx("read manifest")?;
        let (mut kept, mut unsynced, mut survived) = (0, 0, 0);
        for line in text.lines() {
            let (name, d) = line.split_once(' ').ok_or("manifest line")?;
            let p = real.join(name);
            if d == "-" {
                unsynced += 1;
                survived += u64::from(std::fs::metadata(&p).is_ok_and(|m| m.len() == 5000));
                continue;
            }
            let got = std::fs::read(&p).ctx(&format!("{name} after the power cut"))?;
            ensure_eq!(
                rel::digest(&got).to_string(),
                d,
                format!("{name} after the power cut")
            );
            let m = std::fs::metadata(&p).ctx("stat")?;
            ensure_eq!(
                (m.uid(), m.gid()),
                (1000, 1000),
                format!("{name}: owner on disk")
            );
            kept += 1;
        }
        ensure!(!real.join("cfg.tmp").exists(), "cfg.tmp is back");
        ensure_eq!(
            std::fs::metadata(real.join("lnk")).ctx("lnk")?.ino(),
            std::fs::metadata(real.join("d0/f0")).ctx("d0/f0")?.ino(),
            "hard link"
        );
        // Else the copy was no cut: writeback had already saved it all.
        ensure!(
            survived < unsynced,
            "all {unsynced} unsynced files survived: the cut came too late"
        );
        if first {
            rel::info(&format!(
                "faults: power cut: {kept} fsync'ed entries intact (contents, owners, link, \
                 last of 5 atomic replaces); {survived} of {unsynced} unsynced files survived"
            ));
        }
        unmount(&after.dir, UnmountFlags::empty()).ctx("umount the copy")?;
        after.fsck()
    })();
    after.release()?;
    let _ = std::fs::remove_file(&crash);
    res
}

/// The power goes off under a live shifting mount: everything fsync'ed
/// through it (file contents, owners, directory entries made durable by a
/// directory fsync, renames over) is on the device, and the filesystem
/// checks clean.
fn power_cut_keeps_what_was_fsynced(env: &Env) -> Outcome {
    let (rounds, files) = (rel::pick(1, 10), rel::pick(40, 400));
    let seed = rel::seed();
    // No background writeback while the device is copied: what is on it is
    // what fsync put there.
    let _writeback = Sysctls::set(&[
        ("vm/dirty_writeback_centisecs", "0"),
        ("vm/dirty_expire_centisecs", "360000"),
    ])?;
    for round in 0..rounds {
        power_cut_round(env, seed.wrapping_add(round), files, round == 0)
            .map_err(|e| format!("seed {seed} round {round}: {e}"))?;
    }
    Ok(())
}

fn no_busy_inodes_reported(_: &Env) -> Outcome {
    rel::no_busy_inodes()
}
