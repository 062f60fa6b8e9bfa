//! What the reliability suites (`stress`, `lifecycle`, `faults`,
//! `hostile`) share: the short/long switch, a seeded random generator,
//! helper processes, a lock-step protocol between a container and the host,
//! slab counts, and scratch filesystems of their own.
//!
//! Short runs are the default (CI). `SHIFTFS_STRESS=long` in the guest's
//! environment (tools/vm-run passes it through) selects the long versions;
//! `SHIFTFS_SEED=N` replays a run's random choices.

use crate::harness::{Context, Outcome};
use nix::{
    sys::wait::{waitpid, WaitStatus},
    unistd::{fork, pipe, read, write, ForkResult, Pid},
};
use std::{
    collections::BTreeMap,
    io::Read,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// Whether the long versions run (`SHIFTFS_STRESS=long`).
pub fn long() -> bool {
    matches!(
        std::env::var("SHIFTFS_STRESS").as_deref(),
        Ok("long") | Ok("1")
    )
}

/// `short` in CI, `long` under `SHIFTFS_STRESS=long`.
pub fn pick<T>(short: T, long_: T) -> T {
    if long() {
        long_
    } else {
        short
    }
}

/// The seed of this run: `SHIFTFS_SEED` or the clock.
pub fn seed() -> u64 {
    std::env::var("SHIFTFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// A line of information for the run's log (not a test result).
pub fn info(what: &str) {
    println!("info   {what}");
}

/// xorshift64*: small, seeded, good enough to pick operations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len() as u64) as usize]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// FNV-1a, to compare contents by a short digest.
pub fn digest(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A forked helper process: its result (text on success, a reason on
/// failure) comes back through a pipe.
pub struct Child {
    pid: Pid,
    res: OwnedFd,
}

/// Forks a process that runs `f` and exits. The test binary is
/// single-threaded, so the child may allocate.
pub fn spawn(f: impl FnOnce() -> Result<String, String>) -> Result<Child, String> {
    let (r, w) = pipe().ctx("pipe")?;
    // SAFETY: the test binary is single-threaded.
    match unsafe { fork() }.ctx("fork")? {
        ForkResult::Child => {
            drop(r);
            let (code, msg) = match f() {
                Ok(s) => (0, s),
                Err(e) => (1, e),
            };
            let _ = write(&w, msg.as_bytes());
            // SAFETY: leaves without running the parent's destructors or
            // atexit handlers a second time.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            Ok(Child { pid: child, res: r })
        }
    }
}

impl Child {
    /// Waits for the child; its text, or why it failed.
    pub fn wait(self) -> Result<String, String> {
        let mut msg = String::new();
        let _ = std::fs::File::from(self.res).read_to_string(&mut msg);
        match waitpid(self.pid, None).ctx("waitpid")? {
            WaitStatus::Exited(_, 0) => Ok(msg),
            WaitStatus::Exited(_, c) => Err(format!("exit {c}: {msg}")),
            other => Err(format!("{other:?}: {msg}")),
        }
    }
}

/// One side of a lock-step exchange between a container and the host.
pub struct Turn {
    tx: OwnedFd,
    rx: OwnedFd,
}

impl Turn {
    /// Hands over to the other side and waits until it hands back.
    pub fn pass(&self) -> Outcome {
        write(&self.tx, b"t").ctx("hand over")?;
        self.wait()
    }

    /// Waits until the other side hands over (at most two minutes).
    pub fn wait(&self) -> Outcome {
        if !readable(&self.rx, 120_000)? {
            return Err("the other side did not hand over in 120 s".into());
        }
        let mut b = [0u8; 1];
        match read(&self.rx, &mut b) {
            Ok(1) => Ok(()),
            Ok(_) => Err("the other side ended".into()),
            Err(e) => Err(format!("wait for the other side: {e}")),
        }
    }
}

/// Whether `fd` is readable (or at end of file) within `ms` milliseconds.
pub fn readable(fd: &impl AsFd, ms: i32) -> Result<bool, String> {
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        return Err(format!("poll: {}", std::io::Error::last_os_error()));
    }
    Ok(r > 0)
}

/// truncate(2) of a path.
pub fn truncate(p: &Path, len: u64) -> Result<(), rustix::io::Errno> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::truncate(c.as_ptr(), len as i64) } == 0 {
        Ok(())
    } else {
        Err(rustix::io::Errno::from_raw_os_error(errno()))
    }
}

/// Runs `container` as root of a new container (container::run) and
/// `host` in a helper process of the host, in lock step: the container
/// starts; each `pass()` hands over to the other side. The host's first
/// call is `wait()`. Both outcomes are reported, the container's first.
pub fn lockstep(
    container: impl FnOnce(&Turn) -> Outcome,
    host: impl FnOnce(&Turn) -> Outcome,
) -> Outcome {
    let (c2h_r, c2h_w) = pipe().ctx("pipe")?;
    let (h2c_r, h2c_w) = pipe().ctx("pipe")?;
    let (cw, cr) = (c2h_w.as_raw_fd(), h2c_r.as_raw_fd());
    let host_turn = Turn {
        tx: h2c_w,
        rx: c2h_r,
    };
    let helper = spawn(move || {
        // SAFETY: the container's ends, this process's copies, owned by
        // nothing that runs here.
        unsafe {
            libc::close(cw);
            libc::close(cr);
        }
        host(&host_turn).map(|()| String::new())
    })?;
    // The parent keeps no copy of the host's ends: when the helper ends,
    // the container sees end of file.
    let cont_turn = Turn {
        tx: c2h_w,
        rx: h2c_r,
    };
    let c = crate::container::run(move || {
        let r = container(&cont_turn);
        drop(cont_turn);
        r
    });
    let h = helper.wait().map(drop).map_err(|e| format!("host: {e}"));
    match (c, h) {
        (Err(c), Err(h)) => Err(format!("{c}; {h}")),
        (c, h) => c.and(h),
    }
}

/// Writes to /proc/sys/vm/drop_caches (root of the initial namespace).
pub fn drop_caches(what: u8) -> Outcome {
    std::fs::write("/proc/sys/vm/drop_caches", [b'0' + what]).ctx("drop_caches")
}

/// Active objects per cache, from /proc/slabinfo.
pub fn slabinfo() -> Result<BTreeMap<String, i64>, String> {
    let text = std::fs::read_to_string("/proc/slabinfo").ctx("read /proc/slabinfo")?;
    Ok(text
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_owned();
            let active = w.next()?.parse().ok()?;
            Some((name, active))
        })
        .collect())
}

/// Lets RCU-freed objects go, drops the caches, and shrinks every slab
/// cache, before slab counts. Shrinking matters under KASAN: freed objects
/// wait in its quarantine, still counted as active, until their cache is
/// shrunk (kmem_cache_shrink() empties the cache's quarantine).
pub fn settle() -> Outcome {
    for _ in 0..3 {
        drop_caches(3)?;
        std::thread::sleep(Duration::from_millis(300));
    }
    if let Ok(dir) = std::fs::read_dir("/sys/kernel/slab") {
        for e in dir.flatten() {
            let _ = std::fs::write(e.path().join("shrink"), b"1");
        }
    }
    Ok(())
}

/// Fails if the kernel said it had busy inodes at an unmount.
pub fn no_busy_inodes() -> Outcome {
    let hits = crate::sys::kernel_log_matching(|m| m.contains("Busy inodes after unmount"))?;
    if hits.is_empty() {
        Ok(())
    } else {
        Err(format!("kernel log: {hits:?}"))
    }
}

/// Runs a command; its stdout, or why it failed.
pub fn sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .ctx(&format!("run {cmd}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An ext4 image of `mib` MiB on a loop device of its own, mounted at
/// `dir`. Dropped: nothing; call `release`.
pub struct Ext4 {
    pub dev: String,
    pub dir: PathBuf,
    pub image: PathBuf,
}

impl Ext4 {
    pub fn new(image: &Path, dir: &Path, mib: u64) -> Result<Self, String> {
        std::fs::create_dir_all(dir).ctx("mkdir")?;
        let f = std::fs::File::create(image).ctx("create image")?;
        f.set_len(mib << 20).ctx("size image")?;
        drop(f);
        let img = image.to_str().ok_or("path is not UTF-8")?;
        sh("mkfs.ext4", &["-q", "-F", img])?;
        let dev = sh("losetup", &["-f", "--show", img])?.trim().to_owned();
        let ext4 = Self {
            dev,
            dir: dir.to_path_buf(),
            image: image.to_path_buf(),
        };
        ext4.mount()?;
        Ok(ext4)
    }

    pub fn mount(&self) -> Outcome {
        rustix::mount::mount(
            &self.dev,
            &self.dir,
            "ext4",
            rustix::mount::MountFlags::empty(),
            c"",
        )
        .ctx("mount ext4")
    }

    /// Attaches an existing image (for instance a copy taken under a live
    /// mount) and mounts it on `dir`; mounting replays its journal.
    pub fn attach(image: &Path, dir: &Path) -> Result<Self, String> {
        let img = image.to_str().ok_or("path is not UTF-8")?;
        let dev = sh("losetup", &["-f", "--show", img])?.trim().to_owned();
        let ext4 = Self {
            dev,
            dir: dir.to_path_buf(),
            image: image.to_path_buf(),
        };
        if let Err(e) = ext4.mount() {
            ext4.release()?;
            return Err(e);
        }
        Ok(ext4)
    }

    /// `e2fsck -fn`: the filesystem is consistent (unmounted first).
    pub fn fsck(&self) -> Outcome {
        sh("e2fsck", &["-f", "-n", &self.dev]).map(drop)
    }

    /// Detaches the loop device and removes the image.
    pub fn release(self) -> Outcome {
        let _ = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH);
        sh("losetup", &["-d", &self.dev])?;
        let _ = std::fs::remove_file(&self.image);
        Ok(())
    }
}

/// Sysctls set for a test, put back as they were when dropped.
pub struct Sysctls(Vec<(PathBuf, String)>);

impl Sysctls {
    /// Sets each `/proc/sys/NAME` to its value.
    pub fn set(values: &[(&str, &str)]) -> Result<Self, String> {
        let mut saved = Self(Vec::new());
        for (name, value) in values {
            let p = Path::new("/proc/sys").join(name);
            let old = std::fs::read_to_string(&p).ctx(&format!("read {name}"))?;
            std::fs::write(&p, value).ctx(&format!("set {name}"))?;
            saved.0.push((p, old.trim().to_owned()));
        }
        Ok(saved)
    }
}

impl Drop for Sysctls {
    fn drop(&mut self) {
        for (p, old) in self.0.iter().rev() {
            let _ = std::fs::write(p, old);
        }
    }
}

/// The errno of a failed libc call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `ioctl(fd, req, arg)` as `Ok(ret)` or `Err(errno)`.
pub fn ioctl(fd: &impl AsFd, req: u64, arg: usize) -> Result<i32, i32> {
    // SAFETY: callers pass either a buffer at least as large as the
    // request's size, or a deliberately invalid address that the kernel
    // must refuse with EFAULT.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), req as libc::c_ulong, arg) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}
