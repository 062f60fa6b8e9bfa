//! A differential namespace fuzzer: random sequences of namespace and
//! attribute operations (create, mkdir, symlink, link, unlink, rmdir,
//! rename with NOREPLACE and EXCHANGE, chmod, chown, truncate, write,
//! user xattrs and ACLs), applied by a container both to a shifting mount
//! and to a control tree of its own on the same filesystem type. After
//! every step the two must agree: the errno of the call, and the names,
//! types, modes, owners (as the container sees each), sizes, contents,
//! xattrs and link counts of the entries it touched; the whole trees every
//! 64 steps and at the end. The host drops the caches every 50 steps.
//!
//! Seeded (`SHIFTFS_SEED` replays a run) and shrunk: a divergence is
//! reported with the seed and the shortest sequence found that still
//! diverges. Short in CI on tmpfs, then ext4 (2,000 operations each);
//! `SHIFTFS_STRESS=long` does 1,000,000 on each, both at once (one per
//! vCPU; `SHIFTFS_NSFUZZ_OPS` overrides the count).

use crate::{
    ensure,
    fixture::{acl_entries, acl_value, load, scratch_ext4, unload},
    harness::{Context, Outcome},
    reliability::{self as rel, Rng},
    sys::FS_NAME,
    tests, Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags, RenameFlags, XattrFlags},
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::{
    collections::BTreeMap,
    fmt,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![load, on_tmpfs_and_ext4, unload];

/// The names operations pick from: three levels, so that renames move
/// directories into and out of each other.
const NAMES: [&str; 8] = ["a", "b", "c", "d/a", "d/b", "d/e", "d/e/a", "f"];

/// One operation, on relative paths.
#[derive(Clone, Debug)]
enum Op {
    Create(&'static str),
    Mkdir(&'static str),
    Symlink(&'static str),
    Link(&'static str, &'static str),
    Unlink(&'static str),
    Rmdir(&'static str),
    Rename(&'static str, &'static str, u8),
    Chmod(&'static str, u32),
    Chown(&'static str, u32, u32),
    Truncate(&'static str, u64),
    Write(&'static str, u64, u8, u16),
    SetXattr(&'static str, u8),
    RemoveXattr(&'static str),
    SetAcl(&'static str, u32),
    RemoveAcl(&'static str),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Rename(a, b, 1) => write!(f, "rename {a} {b} NOREPLACE"),
            Op::Rename(a, b, 2) => write!(f, "rename {a} {b} EXCHANGE"),
            Op::Rename(a, b, _) => write!(f, "rename {a} {b}"),
            Op::Write(p, off, byte, len) => write!(f, "write {p} at {off}: {len} x {byte:#x}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Ids the container chowns to: its root, a user, the overflow id, and
/// one its map does not have (EINVAL on both).
const IDS: [u32; 4] = [0, 1000, 65_534, 70_000];

fn random_op(rng: &mut Rng) -> Op {
    let p = *rng.pick(&NAMES);
    let q = *rng.pick(&NAMES);
    match rng.below(16) {
        0 | 1 => Op::Create(p),
        2 => Op::Mkdir(p),
        3 => Op::Symlink(p),
        4 => Op::Link(p, q),
        5 => Op::Unlink(p),
        6 => Op::Rmdir(p),
        7 | 8 => Op::Rename(p, q, rng.below(3) as u8),
        9 => Op::Chmod(p, *rng.pick(&[0o644, 0o600, 0o755, 0o1777, 0o2755, 0o000])),
        10 => Op::Chown(p, *rng.pick(&IDS), *rng.pick(&IDS)),
        11 => Op::Truncate(p, rng.below(10_000)),
        12 => Op::Write(
            p,
            rng.below(8192),
            rng.next() as u8,
            1 + rng.below(5000) as u16,
        ),
        13 => Op::SetXattr(p, rng.next() as u8),
        14 => {
            if rng.below(2) == 0 {
                Op::RemoveXattr(p)
            } else {
                Op::RemoveAcl(p)
            }
        }
        _ => Op::SetAcl(p, *rng.pick(&IDS)),
    }
}

/// Applies `op` under `root`: its errno, if it failed.
fn apply(root: &Path, op: &Op) -> Option<Errno> {
    let at = |p: &str| root.join(p);
    let r: Result<(), Errno> = match *op {
        Op::Create(p) => rfs::open(
            at(p),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o644),
        )
        .map(drop),
        Op::Mkdir(p) => rfs::mkdir(at(p), Mode::from_raw_mode(0o755)),
        Op::Symlink(p) => rfs::symlink("target/of/link", at(p)),
        Op::Link(p, q) => rfs::link(at(p), at(q)),
        Op::Unlink(p) => rfs::unlink(at(p)),
        Op::Rmdir(p) => rfs::rmdir(at(p)),
        Op::Rename(p, q, how) => {
            let flags = match how {
                1 => RenameFlags::NOREPLACE,
                2 => RenameFlags::EXCHANGE,
                _ => RenameFlags::empty(),
            };
            rfs::renameat_with(rfs::CWD, at(p), rfs::CWD, at(q), flags)
        }
        Op::Chmod(p, m) => rfs::chmod(at(p), Mode::from_raw_mode(m)),
        Op::Chown(p, u, g) => rfs::chownat(
            rfs::CWD,
            at(p),
            Some(rfs::Uid::from_raw(u)),
            Some(rfs::Gid::from_raw(g)),
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        ),
        Op::Truncate(p, len) => rel::truncate(&at(p), len),
        Op::Write(p, off, byte, len) => rfs::open(at(p), OFlags::WRONLY, Mode::empty())
            .and_then(|fd| rustix::io::pwrite(&fd, &vec![byte; usize::from(len)], off))
            .map(drop),
        Op::SetXattr(p, v) => rfs::lsetxattr(at(p), "user.fuzz", &[v; 3], XattrFlags::empty()),
        Op::RemoveXattr(p) => rfs::lremovexattr(at(p), "user.fuzz"),
        Op::SetAcl(p, id) => {
            let acl = acl_value(&[
                (0x01, 6, u32::MAX),
                (0x02, 5, id),
                (0x04, 4, u32::MAX),
                (0x10, 7, u32::MAX),
                (0x20, 0, u32::MAX),
            ]);
            rfs::setxattr(at(p), "system.posix_acl_access", &acl, XattrFlags::empty())
        }
        Op::RemoveAcl(p) => rfs::removexattr(at(p), "system.posix_acl_access"),
    };
    r.err()
}

/// What the container sees of the entry at `p` (None if there is none).
fn describe(p: &Path) -> Result<Option<String>, String> {
    let md = match std::fs::symlink_metadata(p) {
        Ok(md) => md,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
        Err(e) => return Err(format!("lstat {}: {e}", p.display())),
    };
    let mut d = format!(
        "mode {:o} uid {} gid {} nlink {}",
        md.mode(),
        md.uid(),
        md.gid(),
        if md.is_dir() { 0 } else { md.nlink() }
    );
    if md.is_file() {
        let data = std::fs::read(p).ctx(&format!("read {}", p.display()))?;
        d += &format!(" size {} digest {:x}", data.len(), rel::digest(&data));
    } else if md.file_type().is_symlink() {
        d += &format!(" -> {:?}", std::fs::read_link(p).ctx("readlink")?);
    }
    let mut b = [0u8; 64];
    if let Ok(n) = rfs::lgetxattr(p, "user.fuzz", &mut b) {
        d += &format!(" user.fuzz {:?}", &b[..n]);
    }
    if !md.file_type().is_symlink() {
        let mut a = [0u8; 128];
        if let Ok(n) = rfs::getxattr(p, "system.posix_acl_access", &mut a) {
            d += &format!(" acl {:?}", acl_entries(&a[..n]));
        }
    }
    Ok(Some(d))
}

/// Every entry under `root`, described.
fn snapshot(root: &Path) -> Result<BTreeMap<PathBuf, String>, String> {
    let mut out = BTreeMap::new();
    out.insert(PathBuf::from("."), describe(root)?.unwrap_or_default());
    crate::fixture::walk(root, |p, rel, _| {
        out.insert(rel.to_path_buf(), describe(p)?.unwrap_or_default());
        Ok(())
    })?;
    Ok(out)
}

/// Where the two trees first differ, if they do.
fn first_difference(
    a: &BTreeMap<PathBuf, String>,
    b: &BTreeMap<PathBuf, String>,
) -> Option<String> {
    for (k, v) in a {
        match b.get(k) {
            Some(w) if w == v => {}
            Some(w) => return Some(format!("{}: shifted {v}, control {w}", k.display())),
            None => return Some(format!("{}: only through shiftfs ({v})", k.display())),
        }
    }
    b.keys()
        .find(|k| !a.contains_key(*k))
        .map(|k| format!("{}: only in the control tree", k.display()))
}

/// Empties `root` (as the container sees it) for a new run.
fn reset(root: &Path) -> Outcome {
    for e in std::fs::read_dir(root).ctx("readdir")? {
        let p = e.ctx("entry")?.path();
        let md = std::fs::symlink_metadata(&p).ctx("lstat")?;
        // A directory made unreadable or unsearchable by a chmod first
        // gets its permissions back.
        if md.is_dir() {
            let _ = rfs::chmod(&p, Mode::from_raw_mode(0o755));
            reset(&p)?;
            std::fs::remove_dir(&p).ctx("rmdir")?;
        } else {
            std::fs::remove_file(&p).ctx("unlink")?;
        }
    }
    Ok(())
}

/// Runs `ops` on both trees; the step and the divergence, if any.
/// `between(step)` runs before each step (the host's cache drops).
fn run(
    ops: &[Op],
    shifted: &Path,
    control: &Path,
    mut between: impl FnMut(usize) -> Outcome,
) -> Result<Option<(usize, String)>, String> {
    reset(shifted)?;
    reset(control)?;
    for (i, op) in ops.iter().enumerate() {
        between(i)?;
        let (es, ec) = (apply(shifted, op), apply(control, op));
        if es != ec {
            return Ok(Some((i, format!("errno: shifted {es:?}, control {ec:?}"))));
        }
        // What the step touched, and every 64 steps the whole trees.
        let touched: Vec<&str> = match op {
            Op::Link(p, q) | Op::Rename(p, q, _) => vec![p, q],
            Op::Create(p)
            | Op::Mkdir(p)
            | Op::Symlink(p)
            | Op::Unlink(p)
            | Op::Rmdir(p)
            | Op::Chmod(p, _)
            | Op::Chown(p, ..)
            | Op::Truncate(p, _)
            | Op::Write(p, ..)
            | Op::SetXattr(p, _)
            | Op::RemoveXattr(p)
            | Op::SetAcl(p, _)
            | Op::RemoveAcl(p) => vec![p],
        };
        for p in touched {
            let (a, b) = (describe(&shifted.join(p))?, describe(&control.join(p))?);
            if a != b {
                return Ok(Some((i, format!("{p}: shifted {a:?}, control {b:?}"))));
            }
        }
        if i % 64 == 63 || i + 1 == ops.len() {
            if let Some(d) = first_difference(&snapshot(shifted)?, &snapshot(control)?) {
                return Ok(Some((i, d)));
            }
        }
    }
    Ok(None)
}

/// The shortest prefix-and-removal of `ops` that still diverges (greedy:
/// drop one operation at a time, keep the drop while it still fails).
fn shrink(ops: &[Op], shifted: &Path, control: &Path) -> Result<Vec<Op>, String> {
    let mut cur = ops.to_vec();
    let mut i = cur.len();
    while i > 0 {
        i -= 1;
        let mut tryit = cur.clone();
        tryit.remove(i);
        if run(&tryit, shifted, control, |_| Ok(()))?.is_some() {
            cur = tryit;
            i = i.min(cur.len());
        }
    }
    Ok(cur)
}

/// The fuzzer on filesystem `dir` (tmpfs or ext4): the host makes a real
/// tree (on-disk root's) and marks it, and a control tree owned by the
/// container's root; the container mounts the mark shifted and runs.
fn fuzz(dir: &Path, label: &str) -> Outcome {
    let b = dir.join("nsfuzz");
    let _ = std::fs::remove_dir_all(&b);
    let (real, control, mark, target) = (
        b.join("real"),
        b.join("control"),
        b.join("mark"),
        b.join("target"),
    );
    for d in [&real, &control, &mark, &target] {
        std::fs::create_dir_all(d).ctx("mkdir")?;
    }
    // The container's root owns both roots, as it sees them.
    std::os::unix::fs::chown(&control, Some(100_000), Some(100_000)).ctx("chown")?;
    mount(&real, &mark, FS_NAME, MountFlags::empty(), c"mark").ctx("mark")?;
    let n: usize = std::env::var("SHIFTFS_NSFUZZ_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rel::pick(2000, 1_000_000));
    // The host drops caches every `every` steps: often in a short run; in
    // a long one less often, as a drop (of the whole guest's caches) costs
    // more than hundreds of steps under TCG.
    let every: usize = std::env::var("SHIFTFS_NSFUZZ_DROP_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&e| e > 0)
        .unwrap_or_else(|| rel::pick(50, 500));
    let seed = rel::seed();
    let label = label.to_owned();
    let (m, t, c) = (mark.clone(), target.clone(), control.clone());
    let res = rel::lockstep(
        move |turn| {
            mount(&m, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            let mut rng = Rng::new(seed);
            let ops: Vec<Op> = (0..n).map(|_| random_op(&mut rng)).collect();
            let start = std::time::Instant::now();
            let found = run(&ops, &t, &c, |i| {
                if i % every == every - 1 {
                    turn.pass()
                } else {
                    Ok(())
                }
            })?;
            let Some((step, why)) = found else {
                let secs = start.elapsed().as_secs_f64();
                rel::info(&format!(
                    "nsfuzz {label}: {n} operations agree (seed {seed}), {secs:.0} s, \
                     {:.0} a second, caches dropped every {every}",
                    n as f64 / secs.max(0.001)
                ));
                return Ok(());
            };
            let min = shrink(&ops[..=step], &t, &c)?;
            let seq: Vec<String> = min.iter().map(|o| o.to_string()).collect();
            Err(format!(
                "{label}: step {step} ({}) diverges: {why}; SHIFTFS_SEED={seed}; \
                 shortest failing sequence ({} operations): {seq:?}",
                ops[step],
                min.len()
            ))
        },
        |turn| {
            if turn.wait().is_err() {
                // The container finished before its first hand-over.
                return Ok(());
            }
            loop {
                rel::drop_caches(3)?;
                if turn.pass().is_err() {
                    return Ok(());
                }
            }
        },
    );
    unmount(&mark, UnmountFlags::empty()).ctx("umount mark")?;
    let _ = std::fs::remove_dir_all(&b);
    res
}

/// The fuzzer on tmpfs and on ext4: one after the other in a short run;
/// in a long one at the same time, each in a process of its own, so that
/// the VM's two vCPUs halve the time of the million operations.
fn on_tmpfs_and_ext4(env: &Env) -> Outcome {
    let ext4 = scratch_ext4(env)?;
    ensure!(ext4.is_dir(), "no ext4 scratch");
    let tmpfs = env.scratch.clone();
    if !rel::long() {
        fuzz(&tmpfs, "tmpfs")?;
        return fuzz(&ext4, "ext4");
    }
    let on_tmpfs = rel::spawn(move || fuzz(&tmpfs, "tmpfs").map(|()| String::new()))?;
    let on_ext4 = rel::spawn(move || fuzz(&ext4, "ext4").map(|()| String::new()))?;
    match (on_tmpfs.wait(), on_ext4.wait()) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(a), Err(b)) => Err(format!("tmpfs: {a}; ext4: {b}")),
        (Err(a), Ok(_)) => Err(format!("tmpfs: {a}")),
        (Ok(_), Err(b)) => Err(format!("ext4: {b}")),
    }
}
