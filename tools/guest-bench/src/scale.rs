//! What shiftfs costs and saves at container scale, in the same boot as the
//! rounds and measured by the VM's root once the rounds are over:
//!
//! - making a tree usable by a container: a shiftfs mark and shifting
//!   mount, an idmapped bind mount, and `cp -a` then `chown -R` of a copy
//!   (on-disk shifting, as LXD did), for trees of several sizes: time, and
//!   the disk and page cache each adds;
//! - density: many containers, each its own user namespace and its own
//!   mount (a shifting mount of one mark, an idmapped bind mount, an
//!   overlayfs with an idmapped lower): time and slab per container;
//! - page cache: several containers reading one file, each through its own
//!   mount: how many copies the page cache holds, and how fast the first
//!   and the last reader read.
//!
//! The parallel path walks run in the container with the rounds
//! ([`parallel_walks`]).

use crate::mounts::{spawn, Kind, Lower, HOST_BASE, MAP};
use crate::work::{walk_tree, Fail};
use crate::{json_str, log};
use shiftfs_sys as sys;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct ScaleArgs {
    /// Tree sizes for the preparation table.
    pub prep_files: Vec<usize>,
    /// Container counts for the density table.
    pub density: Vec<usize>,
    /// Readers of the page-cache table, and the size of their file.
    pub readers: usize,
    pub pc_mib: usize,
}

/// A container: a child in new user (the containers' map) and mount
/// namespaces, root in them, that runs a job, answers, and waits until it
/// is dropped.
struct Container {
    pid: libc::pid_t,
    sock: OwnedFd,
}

impl Container {
    fn start(job: impl FnOnce() -> Result<String, String>) -> Result<Container, String> {
        let (parent, child) = sys::socketpair().map_err(|e| format!("socketpair: {e}"))?;
        // SAFETY: the host side of the benchmark is single-threaded.
        let pid = unsafe { sys::fork() }.map_err(|e| format!("fork: {e}"))?;
        if pid == 0 {
            drop(parent);
            let r = sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS);
            let _ = sys::write_all(&child, if r.is_ok() { b"u" } else { b"e" });
            let mut b = [0u8; 1];
            let _ = sys::read(&child, &mut b);
            let res = r
                .map_err(|e| format!("unshare: {e}"))
                .and_then(|_| sys::become_root())
                .and_then(|_| sys::make_mounts_private().map_err(|e| format!("private: {e}")))
                .and_then(|_| job());
            let msg = match res {
                Ok(s) => format!("o{s}"),
                Err(e) => format!("e{e}"),
            };
            let _ = sys::write_all(&child, msg.as_bytes());
            let _ = sys::read(&child, &mut b);
            std::process::exit(0);
        }
        drop(child);
        let c = Container { pid, sock: parent };
        let mut b = [0u8; 1];
        sys::read(&c.sock, &mut b).map_err(|e| format!("wait for unshare: {e}"))?;
        if b[0] != b'u' {
            return Err("unshare(CLONE_NEWUSER | CLONE_NEWNS) failed".into());
        }
        sys::write_id_maps(pid, MAP)?;
        sys::write_all(&c.sock, b"g").map_err(|e| format!("go: {e}"))?;
        Ok(c)
    }

    /// The job's answer (a short message: one read).
    fn answer(&self) -> Result<String, String> {
        let mut buf = [0u8; 4096];
        let n = sys::read(&self.sock, &mut buf).map_err(|e| format!("answer: {e}"))?;
        let s = String::from_utf8_lossy(&buf[..n]).into_owned();
        match s.split_at_checked(1) {
            Some(("o", rest)) => Ok(rest.to_owned()),
            Some(("e", rest)) => Err(rest.to_owned()),
            _ => Err("the container died".into()),
        }
    }

    /// A copy of the container's descriptor `fd` (pidfd_getfd(2)).
    fn take_fd(&self, fd: RawFd) -> Result<OwnedFd, String> {
        // SAFETY: plain syscalls; each result is a new fd owned by nothing
        // else.
        unsafe {
            let pidfd = libc::syscall(libc::SYS_pidfd_open, self.pid, 0);
            if pidfd < 0 {
                return Err(format!("pidfd_open: {}", sys::Errno::last()));
            }
            let pidfd = OwnedFd::from_raw_fd(pidfd as RawFd);
            let got = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
            if got < 0 {
                return Err(format!("pidfd_getfd: {}", sys::Errno::last()));
            }
            Ok(OwnedFd::from_raw_fd(got as RawFd))
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = sys::write_all(&self.sock, b"x");
        let _ = sys::waitpid(self.pid);
    }
}

fn meminfo(key: &str) -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Bytes used on the filesystem of `p`.
fn used_bytes(p: &Path) -> i64 {
    let c = sys::cpath(p);
    // SAFETY: all-zero is a valid statvfs, which the call fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated, `st` writable.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    ((st.f_blocks - st.f_bfree) * st.f_frsize) as i64
}

/// Writes back, drops every cache, and lets RCU free what it dropped.
fn settle() {
    sys::sync();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    std::thread::sleep(Duration::from_millis(1500));
}

fn mkdirs(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

fn opt_json(e: &Option<String>) -> String {
    e.as_ref().map_or("null".into(), |e| json_str(e))
}

/// The whole measurement, as the JSON value of "scale".
pub fn measure(a: &ScaleArgs, lowers: &[Lower], userns: &OwnedFd) -> String {
    // A thousand containers each hold a descriptor or two.
    let lim = libc::rlimit {
        rlim_cur: 65536,
        rlim_max: 65536,
    };
    // SAFETY: a plain syscall on the calling process.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    let t = Instant::now();
    let mut prep = Vec::new();
    let mut pagecache = Vec::new();
    for l in lowers {
        prep.extend(prepare(l, &a.prep_files));
    }
    // On a disk filesystem, whose pages drop_caches can free: a tmpfs file
    // is in the page cache from the start.
    if let Some(l) = lowers.iter().find(|l| l.fs == "ext4").or(lowers.first()) {
        pagecache.extend(page_cache(l, a.readers, a.pc_mib, userns));
    }
    // The lower filesystem is of no matter to a mount's memory.
    let density = lowers
        .first()
        .map_or_else(Vec::new, |l| density(l, &a.density));
    log(&format!("scale took {:.0} s", t.elapsed().as_secs_f64()));
    format!(
        "{{\"prep\": [\n{}\n], \"density\": [\n{}\n], \"pagecache\": [\n{}\n]}}",
        prep.join(",\n"),
        density.join(",\n"),
        pagecache.join(",\n")
    )
}

/// A tree of `n` files of 1 KiB, a hundred to a directory, owned by host
/// 0 as an unpacked image is.
fn make_tree(dir: &Path, n: usize) -> Result<(), String> {
    let data = [b't'; 1024];
    for i in 0..n {
        let d = dir.join(format!("d{:04}", i / 100));
        if i % 100 == 0 {
            mkdirs(&d)?;
        }
        std::fs::write(d.join(format!("f{:02}", i % 100)), data)
            .map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

/// The preparation rows of lower `l`.
fn prepare(l: &Lower, sizes: &[usize]) -> Vec<String> {
    let mut rows = Vec::new();
    let base = l.base.join("prep");
    let (mark, shifted, idmapped) = (
        l.mnt.join("prep-mark"),
        l.mnt.join("prep-shiftfs"),
        l.mnt.join("prep-idmapped"),
    );
    for &n in sizes {
        let src = base.join("src");
        let copy = base.join("copy");
        let made = mkdirs(&mark)
            .and_then(|_| mkdirs(&shifted))
            .and_then(|_| mkdirs(&idmapped))
            .and_then(|_| make_tree(&src, n));
        log(&format!("scale: {} tree of {n} files made", l.fs));
        for kind in ["shiftfs", "idmapped", "copy+chown"] {
            sys::sync();
            let (disk0, cache0) = (used_bytes(&l.base), meminfo("Cached"));
            let mut parts = (None, None);
            let t = Instant::now();
            let res = made.clone().and_then(|_| match kind {
                "shiftfs" => {
                    let r = sys::mount(&src.to_string_lossy(), &mark, sys::FS_NAME, 0, "mark")
                        .map_err(|e| format!("mark: {e}"))
                        .and_then(|_| {
                            let (m, s) = (mark.clone(), shifted.clone());
                            let c = Container::start(move || {
                                sys::mount(&m.to_string_lossy(), &s, sys::FS_NAME, 0, "")
                                    .map_err(|e| format!("shifting mount: {e}"))?;
                                std::fs::metadata(s.join("d0000/f00"))
                                    .map_err(|e| format!("stat: {e}"))?;
                                Ok(String::new())
                            })?;
                            c.answer()?;
                            Ok(c)
                        });
                    let secs = t.elapsed().as_secs_f64();
                    sys::sync();
                    let extra = (used_bytes(&l.base) - disk0, meminfo("Cached") - cache0);
                    // The container ends, with its shifting mount.
                    let r = r.map(drop);
                    let _ = sys::umount(&mark, libc::MNT_DETACH);
                    r.map(|()| (secs, extra))
                }
                "idmapped" => {
                    let r = sys::userns_fd(MAP)
                        .and_then(|u| sys::idmapped_bind(&src, &idmapped, &u))
                        .and_then(|_| {
                            std::fs::metadata(idmapped.join("d0000/f00"))
                                .map_err(|e| format!("stat: {e}"))
                        });
                    let secs = t.elapsed().as_secs_f64();
                    sys::sync();
                    let extra = (used_bytes(&l.base) - disk0, meminfo("Cached") - cache0);
                    let _ = sys::umount(&idmapped, libc::MNT_DETACH);
                    r.map(|_| (secs, extra))
                }
                _ => {
                    spawn(
                        std::process::Command::new("cp")
                            .arg("-a")
                            .arg(&src)
                            .arg(&copy),
                    )?;
                    let copied = t.elapsed().as_secs_f64();
                    spawn(
                        std::process::Command::new("chown")
                            .arg("-R")
                            .arg(format!("{HOST_BASE}:{HOST_BASE}"))
                            .arg(&copy),
                    )?;
                    let secs = t.elapsed().as_secs_f64();
                    parts = (Some(copied), Some(secs - copied));
                    sys::sync();
                    let extra = (used_bytes(&l.base) - disk0, meminfo("Cached") - cache0);
                    let _ = std::fs::remove_dir_all(&copy);
                    Ok((secs, extra))
                }
            });
            let (secs, (disk, cache), err) = match res {
                Ok((s, x)) => (s, x, None),
                Err(e) => (0.0, (0, 0), Some(e)),
            };
            log(&format!(
                "scale: {} {n} files {kind}: {secs:.3} s, {disk} B disk, {cache} B cache{}",
                l.fs,
                err.as_ref().map_or(String::new(), |e| format!(" ({e})"))
            ));
            let f = |x: Option<f64>| x.map_or("null".into(), |x| format!("{x:.4}"));
            rows.push(format!(
                "  {{\"fs\": {}, \"files\": {n}, \"kind\": {}, \"secs\": {secs:.4}, \"copy_secs\": {}, \"chown_secs\": {}, \"disk_bytes\": {disk}, \"cache_bytes\": {cache}, \"error\": {}}}",
                json_str(&l.fs), json_str(kind), f(parts.0), f(parts.1), opt_json(&err)
            ));
        }
        let _ = std::fs::remove_dir_all(&base);
    }
    rows
}

/// One container's mount of kind `kind` ("userns": none, the baseline):
/// the descriptors that keep it.
fn container_mount(l: &Lower, kind: &str, tmp: &Path) -> Result<Vec<OwnedFd>, String> {
    match kind {
        "userns" => Ok(vec![sys::userns_fd(MAP)?]),
        "shiftfs" => {
            let mark = l.mark().to_string_lossy().into_owned();
            let c = Container::start(move || {
                let fc = sys::FsContext::open(sys::FS_NAME)?;
                fc.set_string("source", &mark)
                    .and_then(|_| fc.create())
                    .map_err(|e| format!("shifting mount: {e}"))?;
                let m = fc.mount_detached().map_err(|e| format!("fsmount: {e}"))?;
                let fd = m.as_raw_fd();
                // Open until the container ends, for the host to copy.
                std::mem::forget(m);
                Ok(fd.to_string())
            })?;
            let fd: RawFd = c.answer()?.parse().map_err(|_| "bad answer")?;
            Ok(vec![c.take_fd(fd)?])
        }
        "idmapped" => {
            let u = sys::userns_fd(MAP)?;
            Ok(vec![sys::idmapped_tree(&l.image(), &u)?])
        }
        _ => {
            // As containerd does: the idmapped lower attached for the
            // overlay to find, then detached again.
            let u = sys::userns_fd(MAP)?;
            sys::idmapped_bind(&l.image(), tmp, &u)?;
            let empty = l.base.join("ovl-empty");
            let r = mkdirs(&empty).and_then(|_| {
                let fc = sys::FsContext::open("overlay")?;
                fc.set_string(
                    "lowerdir",
                    &format!("{}:{}", tmp.display(), empty.display()),
                )
                .and_then(|_| fc.create())
                .and_then(|_| fc.mount_detached())
                .map_err(|e| format!("overlay: {e}"))
            });
            let _ = sys::umount(tmp, libc::MNT_DETACH);
            Ok(vec![r?])
        }
    }
}

/// The density rows: per kind and count, time and slab per container.
fn density(l: &Lower, counts: &[usize]) -> Vec<String> {
    let mut rows = Vec::new();
    let tmp = l.mnt.join("density-lower");
    if let Err(e) = mkdirs(&tmp) {
        log(&format!("scale: density: {e}"));
        return rows;
    }
    for kind in ["userns", "shiftfs", "idmapped", "overlay"] {
        for &n in counts {
            settle();
            let slab0 = meminfo("Slab");
            let t = Instant::now();
            let mut held = Vec::new();
            let mut err = None;
            for _ in 0..n {
                match container_mount(l, kind, &tmp) {
                    Ok(fds) => held.extend(fds),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let per = t.elapsed().as_secs_f64() / n.max(1) as f64;
            // What the containers' processes left in the caches goes too.
            settle();
            let slab = (meminfo("Slab") - slab0) as f64 / n.max(1) as f64;
            drop(held);
            log(&format!(
                "scale: {n} containers {kind}: {:.2} ms and {slab:.0} B of slab each{}",
                per * 1e3,
                err.as_ref().map_or(String::new(), |e| format!(" ({e})"))
            ));
            rows.push(format!(
                "  {{\"kind\": {}, \"containers\": {n}, \"secs_per\": {per:.6}, \"slab_per\": {slab:.1}, \"error\": {}}}",
                json_str(kind), opt_json(&err)
            ));
        }
    }
    rows
}

/// Reads `p` to its end: the seconds it took.
fn read_all(p: &Path) -> Result<f64, String> {
    let t = Instant::now();
    let fd = sys::open_path(p, libc::O_RDONLY, 0).map_err(|e| format!("open: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    while sys::read(&fd, &mut buf).map_err(|e| format!("read: {e}"))? > 0 {}
    Ok(t.elapsed().as_secs_f64())
}

/// The page-cache rows of lower `l`: `readers` containers, each through
/// its own mount, read one file of `mib` MiB in turn.
fn page_cache(l: &Lower, readers: usize, mib: usize, userns: &OwnedFd) -> Vec<String> {
    const NAME: &str = "pagecache.bin";
    let mut rows = Vec::new();
    let file = l.image().join(NAME);
    let made = std::fs::File::create(&file)
        .and_then(|f| {
            use std::io::Write;
            let chunk = vec![b'p'; 1 << 20];
            let mut w = std::io::BufWriter::new(f);
            (0..mib).try_for_each(|_| w.write_all(&chunk))
        })
        .map_err(|e| format!("write {NAME}: {e}"));
    let size = (mib << 20) as f64;
    let kinds = [
        Kind::Raw,
        Kind::Shiftfs,
        Kind::Idmapped,
        Kind::Overlay,
        Kind::Bindfs,
    ];
    for k in kinds {
        settle();
        let cache0 = meminfo("Cached");
        let mut host_mounts: Vec<PathBuf> = Vec::new();
        let mut alive = Vec::new();
        let mut times = Vec::new();
        let mut res = made.clone();
        for r in 0..readers {
            if res.is_err() {
                break;
            }
            let dir = l.mnt.join(format!("pc-{}-{r}", k.name().replace('+', "-")));
            let lower = l.mnt.join(format!("pc-lower-{r}"));
            res = (|| {
                mkdirs(&dir)?;
                match k {
                    Kind::Idmapped => {
                        sys::idmapped_bind(&l.image(), &dir, userns)?;
                        host_mounts.push(dir.clone());
                    }
                    Kind::Overlay => {
                        mkdirs(&lower)?;
                        sys::idmapped_bind(&l.image(), &lower, userns)?;
                        host_mounts.push(lower.clone());
                        let empty = l.base.join("ovl-empty");
                        mkdirs(&empty)?;
                        sys::mount(
                            "overlay",
                            &dir,
                            "overlay",
                            libc::MS_RDONLY,
                            &format!("lowerdir={}:{}", lower.display(), empty.display()),
                        )
                        .map_err(|e| format!("overlay: {e}"))?;
                        host_mounts.push(dir.clone());
                    }
                    Kind::Bindfs => {
                        spawn(
                            std::process::Command::new("bindfs")
                                .arg(format!("--map=0/{HOST_BASE}:@0/@{HOST_BASE}"))
                                .arg(l.image())
                                .arg(&dir),
                        )?;
                        host_mounts.push(dir.clone());
                    }
                    _ => {}
                }
                let path = match k {
                    Kind::Raw => file.clone(),
                    _ => dir.join(NAME),
                };
                let (mark, shifted) = (l.mark(), dir.clone());
                let c = Container::start(move || {
                    if k == Kind::Shiftfs {
                        sys::mount(&mark.to_string_lossy(), &shifted, sys::FS_NAME, 0, "")
                            .map_err(|e| format!("shifting mount: {e}"))?;
                    }
                    Ok(format!("{}", read_all(&path)?))
                })?;
                let secs: f64 = c.answer()?.parse().map_err(|_| "bad answer")?;
                times.push(secs);
                // Each reader's mount stays until all have read.
                alive.push(c);
                Ok(())
            })();
        }
        sys::sync();
        let cache = meminfo("Cached") - cache0;
        drop(alive);
        for m in host_mounts.iter().rev() {
            let _ = sys::umount(m, 0).or_else(|_| sys::umount(m, libc::MNT_DETACH));
        }
        let err = res.err();
        let mib_s = |t: Option<&f64>| t.map_or("null".into(), |t| format!("{:.1}", mib as f64 / t));
        log(&format!(
            "scale: {} page cache {}: {:.1} copies, readers {:?} s{}",
            l.fs,
            k.name(),
            cache as f64 / size,
            times,
            err.as_ref().map_or(String::new(), |e| format!(" ({e})"))
        ));
        rows.push(format!(
            "  {{\"fs\": {}, \"kind\": {}, \"readers\": {readers}, \"mib\": {mib}, \"cache_bytes\": {cache}, \"copies\": {:.2}, \"first_mib_s\": {}, \"last_mib_s\": {}, \"reader_secs\": [{}], \"error\": {}}}",
            json_str(&l.fs), json_str(k.name()), cache as f64 / size,
            mib_s(times.first()), mib_s(if times.len() == readers { times.last() } else { None }),
            times.iter().map(|t| format!("{t:.4}")).collect::<Vec<_>>().join(", "),
            opt_json(&err)
        ));
    }
    let _ = std::fs::remove_file(&file);
    rows
}

/// Pins the calling thread to CPU `cpu`.
fn pin(cpu: usize) {
    // SAFETY: all-zero is an empty set, filled by CPU_SET; the call reads
    // it for the calling thread (0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Path walks of `src/` (readdir and stat of every entry, as the find+stat
/// walk row) by one worker per CPU of `workers`, each pinned to its own,
/// for `secs` seconds: entries per second, all workers together.
fn walks_per_second(root: &OwnedFd, workers: usize, secs: f64) -> Result<f64, Fail> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let counts: Vec<Result<usize, Fail>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    pin(w);
                    let mut buf = vec![0u8; 32 << 10];
                    let mut n = 0;
                    while Instant::now() < deadline {
                        n += walk_tree(root, &mut buf)?;
                    }
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / secs)
}

/// The parallel-walk rows, run in the container: for each kind's root, one
/// worker, then one per CPU (the VM has two).
pub fn parallel_walks(roots: &[(String, Kind, &OwnedFd)], secs: f64) -> String {
    // SAFETY: plain query.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let mut rows = Vec::new();
    for (fs, k, root) in roots {
        for workers in [1, cpus] {
            let r = walks_per_second(root, workers, secs);
            let mut row = format!(
                "  {{\"fs\": {}, \"kind\": {}, \"workers\": {workers}, ",
                json_str(fs),
                json_str(k.name())
            );
            match &r {
                Ok(ops) => {
                    let _ = write!(row, "\"ops_per_s\": {ops:.1}, \"error\": null}}");
                }
                Err(e) => {
                    let _ = write!(
                        row,
                        "\"ops_per_s\": null, \"error\": {}}}",
                        json_str(&format!("{} ({})", e.errno, e.op))
                    );
                }
            }
            log(&format!(
                "parallel walks {fs} {} x{workers}: {}",
                k.name(),
                r.as_ref().map_or_else(
                    |e| format!("{} ({})", e.errno, e.op),
                    |o| format!("{o:.0}/s")
                )
            ));
            rows.push(row);
            if cpus == 1 {
                break;
            }
        }
    }
    format!("[\n{}\n]", rows.join(",\n"))
}
