//! Concurrency stress, fsstress-like: worker processes inside a container
//! make random namespace and attribute changes (create, write, truncate,
//! rename, link, unlink, mkdir, rmdir, symlink, chmod, chown, utimes,
//! setxattr, removexattr, readdir, fsync) in one shared tree on a shifting
//! mount, one more worker adds and removes inotify watches in the
//! container, while a host process drops the caches and adds and removes
//! inotify watches on the container's mount (through /proc/PID/root) and on
//! the real tree. Then the tree as the container sees it is compared with
//! the real tree on disk: every entry both ways, type, mode, owner, group,
//! size, link count, hard-link groups, bytes, link targets, user xattrs.
//!
//! Short: 3 workers for 20 s. `SHIFTFS_STRESS=long`: 6 workers for 10
//! minutes (`SHIFTFS_STRESS_SECS` overrides the duration).

use crate::{
    ensure,
    fixture::{load, unload, walk, Tree},
    harness::{Context, Outcome},
    reliability::{self as rel, Rng},
    tests, Env,
};
use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify, WatchDescriptor};
use rustix::{
    fs::{self as rfs, AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps, XattrFlags, CWD},
    io::Errno,
};
use std::{
    collections::BTreeMap,
    io::{Seek, Write},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    concurrent_changes_agree_with_the_disk,
    host_unmarks,
    unload,
];

/// The suite runs on ext4 (scratch `../ext4`) where available: its inodes
/// are really evicted by drop_caches, tmpfs's are not.
fn tree(env: &Env) -> Tree {
    Tree::on_ext4(env, "stress").unwrap_or_else(|_| Tree::new(env, "stress"))
}

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    std::fs::create_dir_all(tree.real.join("w")).ctx("mkdir w")?;
    tree.mark()
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}

const DIRS: [&str; 4] = ["d0", "d1", "d2", "d3"];
const LEAVES: [&str; 14] = [
    "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "d0", "d1", "d2", "d3", "s0", "s1",
];
const OWNERS: [u32; 5] = [0, 1, 1000, 4242, 65_534];
const XATTRS: [&str; 3] = ["user.a", "user.b", "user.c"];

/// A random path under `w`: up to two directories, then a leaf.
fn path(rng: &mut Rng, w: &Path) -> PathBuf {
    let mut p = w.to_path_buf();
    for _ in 0..rng.below(3) {
        p.push(rng.pick(&DIRS));
    }
    p.push(rng.pick(&LEAVES));
    p
}

/// Errors a racing namespace operation may meet.
fn expected(e: Errno) -> bool {
    [
        Errno::NOENT,
        Errno::EXIST,
        Errno::NOTEMPTY,
        Errno::NOTDIR,
        Errno::ISDIR,
        Errno::INVAL,
        Errno::NODATA,
        Errno::LOOP,
        Errno::MLINK,
    ]
    .contains(&e)
}

type Tally = BTreeMap<String, u64>;

fn note(t: &mut Tally, key: String) {
    *t.entry(key).or_default() += 1;
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO))
}

/// One random operation; its name and result.
fn one_op(rng: &mut Rng, w: &Path) -> (&'static str, Result<(), Errno>) {
    let p = path(rng, w);
    let q = path(rng, w);
    let r = match rng.below(20) {
        0..=2 => (
            "create",
            (|| {
                let fd = rfs::open(
                    &p,
                    OFlags::CREATE | OFlags::WRONLY | OFlags::TRUNC,
                    Mode::from_raw_mode(0o644),
                )?;
                let len = rng.below(12_000) as usize;
                rustix::io::write(&fd, &rng.bytes(len))?;
                Ok(())
            })(),
        ),
        3 => (
            "pwrite",
            (|| {
                let fd = rfs::open(&p, OFlags::WRONLY, Mode::empty())?;
                let len = rng.below(8000) as usize;
                rustix::io::pwrite(&fd, &rng.bytes(len), rng.below(20_000))?;
                if rng.below(4) == 0 {
                    rfs::fsync(&fd)?;
                }
                Ok(())
            })(),
        ),
        4 => (
            "append",
            (|| {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&p)
                    .map_err(io_errno)?;
                f.write_all(&rng.bytes(100)).map_err(io_errno)?;
                f.seek(std::io::SeekFrom::Start(0)).map_err(io_errno)?;
                Ok(())
            })(),
        ),
        5 => ("truncate", rel::truncate(&p, rng.below(30_000))),
        6 => ("read", std::fs::read(&p).map(drop).map_err(io_errno)),
        7 => ("mkdir", rfs::mkdir(&p, Mode::from_raw_mode(0o755))),
        8 => ("rmdir", rfs::rmdir(&p)),
        9 => ("unlink", rfs::unlink(&p)),
        10 | 11 => {
            let flags = *rng.pick(&[
                RenameFlags::empty(),
                RenameFlags::empty(),
                RenameFlags::NOREPLACE,
                RenameFlags::EXCHANGE,
            ]);
            ("rename", rfs::renameat_with(CWD, &p, CWD, &q, flags))
        }
        12 => ("link", rfs::linkat(CWD, &p, CWD, &q, AtFlags::empty())),
        13 => {
            let target = format!("{}/{}", rng.pick(&["..", "."]), rng.pick(&LEAVES));
            ("symlink", rfs::symlink(target, &p))
        }
        14 => (
            "chmod",
            rfs::chmod(&p, Mode::from_raw_mode(0o600 + rng.below(0o200) as u32)),
        ),
        15 => {
            let (u, g) = (*rng.pick(&OWNERS), *rng.pick(&OWNERS));
            (
                "chown",
                rfs::chownat(
                    CWD,
                    &p,
                    Some(rustix::process::Uid::from_raw(u)),
                    Some(rustix::process::Gid::from_raw(g)),
                    AtFlags::SYMLINK_NOFOLLOW,
                ),
            )
        }
        16 => {
            let t = Timespec {
                tv_sec: rng.below(2_000_000_000) as i64,
                tv_nsec: rng.below(1_000_000_000) as i64,
            };
            (
                "utimes",
                rfs::utimensat(
                    CWD,
                    &p,
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                    AtFlags::empty(),
                ),
            )
        }
        17 => {
            let len = rng.below(64) as usize;
            (
                "setxattr",
                rfs::lsetxattr(&p, *rng.pick(&XATTRS), &rng.bytes(len), XattrFlags::empty()),
            )
        }
        18 => ("removexattr", rfs::lremovexattr(&p, *rng.pick(&XATTRS))),
        _ => (
            "readdir",
            std::fs::read_dir(&p)
                .map_err(io_errno)
                .and_then(|mut d| d.try_for_each(|e| e.map(drop)).map_err(io_errno)),
        ),
    };
    // EPERM is the VFS's rule for user xattrs on symlinks and for hard
    // links to directories, not a failure.
    match r {
        (op @ ("setxattr" | "removexattr" | "link"), Err(Errno::PERM)) => (op, Ok(())),
        other => other,
    }
}

/// A worker: random operations until `until`; "ops N" or the unexpected
/// errors it met.
fn worker(seed: u64, w: &Path, until: Instant) -> Result<String, String> {
    let mut rng = Rng::new(seed);
    let (mut ops, mut bad) = (0u64, Tally::new());
    while Instant::now() < until {
        let (op, r) = one_op(&mut rng, w);
        ops += 1;
        if let Err(e) = r {
            if !expected(e) {
                note(&mut bad, format!("{op}: {e:?}"));
            }
        }
    }
    if bad.is_empty() {
        Ok(format!("{ops}"))
    } else {
        Err(format!("unexpected errors after {ops} ops: {bad:?}"))
    }
}

/// Watches come and go on random directories, and their events are read.
fn watcher(seed: u64, dirs: Vec<PathBuf>, until: Instant) -> Result<String, String> {
    let mut rng = Rng::new(seed);
    let ino = Inotify::init(InitFlags::IN_NONBLOCK).ctx("inotify_init")?;
    let mut live: Vec<WatchDescriptor> = Vec::new();
    let (mut adds, mut events) = (0u64, 0u64);
    while Instant::now() < until {
        let d = rng.pick(&dirs);
        if let Ok(wd) = ino.add_watch(d, W::IN_ALL_EVENTS) {
            adds += 1;
            live.push(wd);
        }
        if (live.len() > 8 || rng.below(2) == 0) && !live.is_empty() {
            let wd = live.swap_remove(rng.below(live.len() as u64) as usize);
            // EINVAL: the watch went with its inode already.
            let _ = ino.rm_watch(wd);
        }
        while let Ok(evs) = ino.read_events() {
            events += evs.len() as u64;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(format!("{adds} watches, {events} events"))
}

/// The directories a watcher picks from, under `w`.
fn watch_dirs(w: &Path) -> Vec<PathBuf> {
    let mut v = vec![w.to_path_buf()];
    for a in DIRS {
        v.push(w.join(a));
        for b in DIRS {
            v.push(w.join(a).join(b));
        }
    }
    v
}

/// The host's helper: drops caches and churns watches on the container's
/// mount and on the real tree until `stop` is closed.
fn host_churn(
    seed: u64,
    pid_r: std::os::fd::OwnedFd,
    stop: std::os::fd::OwnedFd,
    target: PathBuf,
    real: PathBuf,
) -> Result<String, String> {
    let mut b = [0u8; 16];
    let n = nix::unistd::read(&pid_r, &mut b).ctx("read the container's pid")?;
    let pid: i32 = std::str::from_utf8(&b[..n])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("no pid from the container")?;
    let via_proc = PathBuf::from(format!("/proc/{pid}/root"))
        .join(target.strip_prefix("/").unwrap_or(&target));
    let mut dirs = watch_dirs(&via_proc.join("w"));
    dirs.extend(watch_dirs(&real.join("w")));
    let mut rng = Rng::new(seed);
    let ino = Inotify::init(InitFlags::IN_NONBLOCK).ctx("inotify_init")?;
    let mut live = Vec::new();
    let (mut drops, mut adds) = (0u64, 0u64);
    loop {
        if rel::readable(&stop, 25)? {
            break;
        }
        // Every 10th round: each drop_caches logs a console line.
        if rng.below(10) == 0 {
            rel::drop_caches(*rng.pick(&[2u8, 3]))?;
            drops += 1;
        }
        for _ in 0..4 {
            if let Ok(wd) = ino.add_watch(rng.pick(&dirs), W::IN_ALL_EVENTS) {
                adds += 1;
                live.push(wd);
            }
            if live.len() > 6 {
                let wd = live.swap_remove(rng.below(live.len() as u64) as usize);
                let _ = ino.rm_watch(wd);
            }
        }
        while ino.read_events().is_ok() {}
    }
    Ok(format!("{drops} drop_caches, {adds} host watches"))
}

/// Every entry under `root`: path → (type and mode, uid, gid, size, nlink,
/// hard-link group, digest of bytes or link target, user xattrs).
type Listing = BTreeMap<String, String>;

fn listing(root: &Path) -> Result<Listing, String> {
    let mut out = Listing::new();
    let mut groups: BTreeMap<u64, String> = BTreeMap::new();
    walk(root, |p, rel, md| {
        let rel = rel.display().to_string();
        let (data, size) = if md.is_dir() {
            (0, 0)
        } else if md.file_type().is_symlink() {
            let t = std::fs::read_link(p).ctx("readlink")?;
            (rel::digest(t.as_os_str().as_encoded_bytes()), md.size())
        } else {
            (
                rel::digest(&std::fs::read(p).ctx(&format!("read {rel}"))?),
                md.size(),
            )
        };
        let group = groups
            .entry(md.ino())
            .or_insert_with(|| rel.clone())
            .clone();
        let mut xattrs = Vec::new();
        if !md.file_type().is_symlink() {
            for name in XATTRS {
                let mut buf = [0u8; 128];
                if let Ok(n) = rfs::lgetxattr(p, name, &mut buf) {
                    xattrs.push(format!("{name}={:x}", rel::digest(&buf[..n])));
                }
            }
        }
        let nlink = if md.is_dir() { 0 } else { md.nlink() };
        let mtime = if md.is_file() { md.mtime() } else { 0 };
        out.insert(
            rel,
            format!(
                "mode {:o} owner {}:{} size {size} nlink {nlink} mtime {mtime} group {group} data {data:x} xattrs {xattrs:?}",
                md.mode(),
                md.uid(),
                md.gid(),
            ),
        );
        Ok(())
    })?;
    Ok(out)
}

fn concurrent_changes_agree_with_the_disk(env: &Env) -> Outcome {
    let tree = tree(env);
    let seed = rel::seed();
    let workers = rel::pick(3, 6);
    let secs: u64 = std::env::var("SHIFTFS_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(rel::pick(20, 600));
    // The container's listing comes back through a file the host opened.
    let out_path = env.scratch.join("stress-listing");
    let out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&out_path)
        .ctx("open listing file")?;
    let (pid_r, pid_w) = nix::unistd::pipe().ctx("pipe")?;
    let (stop_r, stop_w) = nix::unistd::pipe().ctx("pipe")?;
    let host = {
        let (target, real) = (tree.target.clone(), tree.real.clone());
        let (pw, sw) = (pid_w.as_raw_fd(), stop_w.as_raw_fd());
        rel::spawn(move || {
            // SAFETY: the helper's copies of the ends it must not hold
            // (or it would never see the container's or the test's end).
            unsafe {
                libc::close(pw);
                libc::close(sw);
            }
            host_churn(seed ^ 0x55, pid_r, stop_r, target, real)
        })?
    };

    let started = Instant::now();
    let mut out_c = out.try_clone().ctx("dup")?;
    let res = tree.in_shifted(move |t| {
        nix::unistd::write(&pid_w, std::process::id().to_string().as_bytes())
            .ctx("tell the host the pid")?;
        drop(pid_w);
        let w = t.join("w");
        let until = Instant::now() + Duration::from_secs(secs);
        let mut kids = Vec::new();
        for i in 0..workers {
            let w = w.clone();
            kids.push(rel::spawn(move || worker(seed.wrapping_add(i), &w, until))?);
        }
        let dirs = watch_dirs(&w);
        kids.push(rel::spawn(move || watcher(seed ^ 0xaa, dirs, until))?);
        let mut fails = Vec::new();
        let mut report = Vec::new();
        for (i, k) in kids.into_iter().enumerate() {
            match k.wait() {
                Ok(s) => report.push(s),
                Err(e) => fails.push(format!("worker {i}: {e}")),
            }
        }
        ensure!(fails.is_empty(), "seed {seed}: {fails:?}");
        let l = listing(&w)?;
        for (k, v) in &l {
            writeln!(out_c, "{k}\t{v}").ctx("write listing")?;
        }
        writeln!(out_c, "#ops\t{}", report.join(", ")).ctx("write")?;
        Ok(())
    });
    drop(stop_w);
    let host_report = host.wait();
    res?;
    let host_report = host_report.map_err(|e| format!("host helper: {e}"))?;
    let text = std::fs::read_to_string(&out_path).ctx("read listing")?;
    let mut container = Listing::new();
    let mut ops = String::new();
    for line in text.lines() {
        let (k, v) = line.split_once('\t').ok_or("bad listing line")?;
        if k == "#ops" {
            ops = v.to_owned();
        } else {
            container.insert(k.to_owned(), v.to_owned());
        }
    }
    let disk = listing(&tree.real.join("w"))?;
    let mut diffs = Vec::new();
    for (k, v) in &disk {
        match container.get(k) {
            None => diffs.push(format!("{k}: on disk only ({v})")),
            Some(c) if c != v => diffs.push(format!("{k}: container {c} / disk {v}")),
            _ => {}
        }
    }
    for k in container.keys().filter(|k| !disk.contains_key(*k)) {
        diffs.push(format!("{k}: in the container only"));
    }
    rel::info(&format!(
        "stress: seed {seed}, {workers} workers + 1 watcher for {} s; worker ops [{ops}]; {host_report}; {} entries compared",
        started.elapsed().as_secs(),
        disk.len()
    ));
    let _ = std::fs::remove_file(&out_path);
    ensure!(
        diffs.is_empty(),
        "seed {seed}: {} differences, first: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(5)]
    );
    ensure!(!disk.is_empty(), "seed {seed}: the tree ended empty");
    Ok(())
}
