//! Lifecycle churn: cycles of mark, shifting mount in a container, I/O,
//! and unmount in four ways (plain umount; lazy umount with an open file
//! and a live inotify watch, used after the detach; container exit without
//! umount, watches live; the host lazily unmounting the mark under a live
//! shifting mount with open files and watches). Afterwards the generic
//! slab caches the module allocates from (shiftfs inodes come from
//! `inode_cache`; dentries, files, mounts, credentials, inotify marks,
//! the real filesystem's inodes) are back where they started, the kernel
//! reports no busy inodes, rmmod while anything is mounted is refused
//! (EWOULDBLOCK, rmmod's "in use"; the module has no dependents) and
//! leaves the module working, and the final rmmod succeeds (kmemleak is
//! scanned by the runner at the end).
//!
//! Short: 48 cycles; `SHIFTFS_STRESS=long`: 1,000.

use crate::{
    container, ensure, ensure_eq,
    fixture::{load, unload, Tree},
    harness::{Context, Outcome},
    reliability as rel,
    sys::{self, FS_NAME},
    tests, Env,
};
use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
use rustix::{
    fs::{self as rfs, Mode, OFlags},
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::{collections::BTreeMap, sync::Mutex};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares,
    slab_baseline,
    mark_mount_io_umount_cycles,
    slab_counts_are_back_after_the_cycles,
    rmmod_while_mounted_is_refused_and_the_module_keeps_working,
    unload,
    slab_counts_are_back_after_rmmod,
    real_filesystem_unmounts_cleanly,
    no_busy_inodes_reported,
];

/// Caches whose growth over the cycles fails the suite: a leak of one
/// object per cycle shows as a growth of at least the number of cycles.
const WATCHED: [&str; 9] = [
    "inode_cache",
    "dentry",
    "filp",
    "mnt_cache",
    "cred_jar",
    "inotify_inode_mark",
    "ext4_inode_cache",
    "shmem_inode_cache",
    "backing_file",
];

static BASELINE: Mutex<Option<BTreeMap<String, i64>>> = Mutex::new(None);

fn cycles() -> usize {
    rel::pick(48, 1000)
}

/// The real directory is on a tmpfs of its own, unmounted at the end:
/// a reference leaked on a real inode, dentry or mount shows there.
fn tree(env: &Env) -> Tree {
    Tree {
        real: real_fs(env).join("real"),
        mark: env.scratch.join("lifecycle-mark"),
        target: env.scratch.join("lifecycle-target"),
    }
}

fn real_fs(env: &Env) -> std::path::PathBuf {
    env.scratch.join("lifecycle-fs")
}

fn host_prepares(env: &Env) -> Outcome {
    std::fs::create_dir_all(real_fs(env)).ctx("mkdir")?;
    mount(
        "lifecycle",
        real_fs(env),
        "tmpfs",
        MountFlags::empty(),
        c"size=16m",
    )
    .ctx("tmpfs")?;
    let tree = tree(env);
    tree.create()?;
    std::fs::create_dir_all(tree.real.join("dir")).ctx("mkdir")?;
    std::fs::write(tree.real.join("dir/kept"), b"kept").ctx("create")
}

fn slab_baseline(_: &Env) -> Outcome {
    rel::settle()?;
    *BASELINE.lock().expect("lock") = Some(rel::slabinfo()?);
    Ok(())
}

/// I/O on a freshly mounted shifting mount at `t`, cycle `i`.
fn io(t: &std::path::Path, i: usize) -> Outcome {
    let name = t.join(format!("f{}", i % 7));
    std::fs::write(&name, format!("cycle {i}")).ctx("create")?;
    let f = std::fs::File::open(&name).ctx("open")?;
    f.sync_all().ctx("fsync")?;
    ensure_eq!(
        std::fs::read(&name).ctx("read")?,
        format!("cycle {i}").into_bytes(),
        "read back"
    );
    rfs::mkdir(t.join("sub"), Mode::from_raw_mode(0o755)).ctx("mkdir")?;
    rfs::rename(t.join("sub"), t.join("sub2")).ctx("rename")?;
    rfs::rmdir(t.join("sub2")).ctx("rmdir")?;
    ensure_eq!(
        std::fs::read(t.join("dir/kept")).ctx("read kept")?,
        b"kept",
        "kept"
    );
    Ok(())
}

/// The inotify watches and open files a cycle leaves behind on `t`.
fn leave_open(t: &std::path::Path) -> Result<(Inotify, std::fs::File, rfs::Dir), String> {
    let ino = Inotify::init(InitFlags::IN_NONBLOCK).ctx("inotify_init")?;
    ino.add_watch(t, W::IN_ALL_EVENTS).ctx("watch root")?;
    ino.add_watch(&t.join("dir/kept"), W::IN_ALL_EVENTS)
        .ctx("watch file")?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.join("dir/kept"))
        .ctx("open kept")?;
    let d = rfs::Dir::new(
        rfs::open(
            t.join("dir"),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .ctx("open dir")?,
    )
    .ctx("dir")?;
    Ok((ino, f, d))
}

fn one_cycle(tree: &Tree, i: usize) -> Outcome {
    tree.mark()?;
    let (src, dst) = (tree.mark.clone(), tree.target.clone());
    let res = match i % 4 {
        // Plain umount.
        0 => container::run(move || {
            mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            io(&dst, i)?;
            unmount(&dst, UnmountFlags::empty()).ctx("umount")
        }),
        // Lazy umount with an open file and live watches, used afterwards.
        1 => container::run(move || {
            mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            io(&dst, i)?;
            let (ino, f, mut d) = leave_open(&dst)?;
            unmount(&dst, UnmountFlags::DETACH).ctx("umount -l")?;
            use std::os::unix::fs::FileExt;
            let mut buf = [0u8; 4];
            f.read_at(&mut buf, 0).ctx("read after detach")?;
            ensure_eq!(&buf, b"kept", "read after detach");
            f.write_at(b"kept", 0).ctx("write after detach")?;
            let n = d.by_ref().count();
            ensure!(n >= 3, "readdir after detach: {n} entries");
            while ino.read_events().is_ok() {}
            Ok(())
        }),
        // The container exits with its mount, files and watches live.
        2 => container::run(move || {
            mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            io(&dst, i)?;
            std::mem::forget(leave_open(&dst)?);
            Ok(())
        }),
        // The host lazily unmounts the mark under a live shifting mount.
        _ => {
            let mark = tree.mark.clone();
            container::with_host_mapped(
                container::MAP,
                move || {
                    mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
                    io(&dst, i)?;
                    std::mem::forget(leave_open(&dst)?);
                    Ok(())
                },
                move |_| unmount(&mark, UnmountFlags::DETACH).ctx("host umount -l mark"),
            )
        }
    };
    if i % 4 != 3 {
        tree.unmark()?;
    }
    res.map_err(|e| format!("cycle {i}: {e}"))
}

/// What each way of ending a cycle left behind, by cache (objects over
/// the cycles of that way), filled by the cycles test.
type Growth = Vec<(String, i64)>;
static PER_WAY: Mutex<Vec<(usize, Growth)>> = Mutex::new(Vec::new());

const WAYS: [&str; 5] = [
    "plain umount",
    "lazy umount with open file and watches",
    "container exit with mount, files and watches live",
    "host lazily unmounts the mark under a live shifting mount",
    "control: a tmpfs instead of shiftfs, plain umount",
];

/// The same container work on a tmpfs: what the kernel keeps around
/// without shiftfs.
fn control_cycle(tree: &Tree, i: usize) -> Outcome {
    let dst = tree.target.clone();
    container::run(move || {
        mount("control", &dst, "tmpfs", MountFlags::empty(), c"").ctx("tmpfs")?;
        std::fs::create_dir(dst.join("dir")).ctx("mkdir")?;
        std::fs::write(dst.join("dir/kept"), b"kept").ctx("create")?;
        io(&dst, i)?;
        unmount(&dst, UnmountFlags::empty()).ctx("umount")
    })
    .map_err(|e| format!("control cycle {i}: {e}"))
}

fn mark_mount_io_umount_cycles(env: &Env) -> Outcome {
    let tree = tree(env);
    let n = cycles() / 4;
    let start = std::time::Instant::now();
    // The cycles of one way in a row, then the caches: what a way leaks
    // shows by itself.
    let mut last = BASELINE
        .lock()
        .expect("lock")
        .clone()
        .ok_or("no baseline")?;
    for (way, name) in WAYS.iter().enumerate() {
        for k in 0..n {
            if way == 4 {
                control_cycle(&tree, k)?;
            } else {
                one_cycle(&tree, way + 4 * k)?;
            }
        }
        rel::settle()?;
        let now = rel::slabinfo()?;
        let grown: Vec<(String, i64)> = WATCHED
            .iter()
            .map(|c| {
                let d = now.get(*c).copied().unwrap_or(0) - last.get(*c).copied().unwrap_or(0);
                (c.to_string(), d)
            })
            .filter(|(_, d)| *d > 0)
            .collect();
        rel::info(&format!(
            "lifecycle: {n} cycles of '{}': growth {grown:?}",
            name
        ));
        PER_WAY.lock().expect("lock").push((way, grown));
        last = now;
    }
    rel::info(&format!(
        "lifecycle: {} cycles in {} ms",
        4 * n,
        start.elapsed().as_millis()
    ));
    Ok(())
}

/// Compares the watched caches with the baseline; `slack` objects of
/// growth are tolerated.
fn compare_slabs(when: &str, slack: i64) -> Outcome {
    rel::settle()?;
    let now = rel::slabinfo()?;
    let base = BASELINE
        .lock()
        .expect("lock")
        .clone()
        .ok_or("no baseline")?;
    let mut grown: Vec<(String, i64)> = now
        .iter()
        .map(|(k, v)| (k.clone(), v - base.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect();
    grown.sort_by_key(|(_, d)| -d);
    rel::info(&format!(
        "lifecycle: slab growth {when}: {:?}",
        &grown[..grown.len().min(8)]
    ));
    let bad: Vec<_> = grown
        .iter()
        .filter(|(k, d)| WATCHED.contains(&k.as_str()) && *d >= slack)
        .collect();
    ensure!(
        bad.is_empty(),
        "caches grew {when} by at least {slack}: {bad:?}"
    );
    Ok(())
}

/// The growth a way may show beyond the tmpfs control's: one object per
/// cycle in the long run; in the short run (12 cycles per way) the
/// caches' noise between two settles (some 50 dentries or files) is
/// larger than that, and the unmount, busy-inode, rmmod and kmemleak
/// checks are what catch a leak.
fn slack() -> i64 {
    ((cycles() / 4) as i64).max(64)
}

fn slab_counts_are_back_after_the_cycles(_: &Env) -> Outcome {
    let per_way = PER_WAY.lock().expect("lock").clone();
    let control: BTreeMap<String, i64> = per_way
        .iter()
        .find(|(w, _)| *w == 4)
        .map(|(_, g)| g.iter().cloned().collect())
        .unwrap_or_default();
    let leaky: Vec<String> = per_way
        .iter()
        .filter(|(w, g)| {
            *w < 4
                && g.iter()
                    .any(|(c, d)| d - control.get(c).copied().unwrap_or(0) >= slack())
        })
        .map(|(w, g)| format!("'{}': {g:?}", WAYS[*w]))
        .collect();
    if leaky.is_empty() {
        return compare_slabs("after the cycles", slack() * 4);
    }
    // A way's count is taken right after its cycles; what a lazy unmount
    // or an exiting container leaves to deferred work (delayed fput and
    // mntput, RCU) may be freed after it. Leaked objects never are: the
    // caches must come back to the baseline.
    let n = slack();
    compare_slabs_settling("after the cycles and deferred frees", n)
        .map(|()| {
            rel::info(&format!(
                "lifecycle: per-way growth was deferred, not kept: {}",
                leaky.join("; ")
            ))
        })
        .map_err(|e| {
            format!(
                "objects left behind (at least {n} more than the control) by: {}; {e}",
                leaky.join("; ")
            )
        })
}

/// [`compare_slabs`], given up to ten seconds: deferred frees (delayed
/// fput, RCU) land late, and SLUB counts the free objects of per-CPU
/// slabs as in use, so one reading can be off by a slab or two of a
/// cache. A leak stays in every reading; noise does not.
fn compare_slabs_settling(when: &str, slack: i64) -> Outcome {
    let mut last = compare_slabs(when, slack);
    for _ in 0..10 {
        if last.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        last = compare_slabs(when, slack);
    }
    last
}

fn rmmod_while_mounted_is_refused_and_the_module_keeps_working(env: &Env) -> Outcome {
    let tree = tree(env);
    // delete_module(O_NONBLOCK), as rmmod(8) calls it, answers
    // EWOULDBLOCK (EAGAIN) for a module in use: rmmod's "is in use".
    let busy = |what: &str| -> Outcome {
        ensure_eq!(
            sys::unload_module(FS_NAME).err(),
            Some(nix::Error::EWOULDBLOCK),
            format!("rmmod with {what}")
        );
        ensure!(
            sys::fs_registered(FS_NAME)?,
            "shiftfs gone after the refusal"
        );
        Ok(())
    };
    // A mark alone.
    tree.mark()?;
    busy("a mark")?;
    // A shifting mount (the host's) over a lazily unmounted mark.
    mount(&tree.mark, &tree.target, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
    unmount(&tree.mark, UnmountFlags::DETACH).ctx("umount -l mark")?;
    busy("a shifting mount")?;
    // Only an open file on a lazily unmounted shifting mount.
    let f = std::fs::File::open(tree.target.join("dir/kept")).ctx("open")?;
    unmount(&tree.target, UnmountFlags::DETACH).ctx("umount -l shifting mount")?;
    busy("an open file on a detached mount")?;
    drop(f);
    // Only a created, never attached, superblock in an fs context.
    let fc = sys::FsContext::open(FS_NAME)?;
    fc.set_flag("mark").ctx("mark")?;
    fc.set_string("source", tree.real.to_str().ok_or("UTF-8")?)
        .ctx("source")?;
    fc.create().ctx("create")?;
    busy("an fs context holding a superblock")?;
    drop(fc);
    // Still working: a new mark and shifting mount in a container.
    one_cycle(&tree, 0)
}

fn slab_counts_are_back_after_rmmod(_: &Env) -> Outcome {
    compare_slabs_settling("after rmmod", slack())
}

fn real_filesystem_unmounts_cleanly(env: &Env) -> Outcome {
    unmount(real_fs(env), UnmountFlags::empty()).ctx("umount the real tmpfs (not lazily)")
}

fn no_busy_inodes_reported(_: &Env) -> Outcome {
    rel::no_busy_inodes()
}
