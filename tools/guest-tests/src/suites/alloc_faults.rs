//! Allocation failures injected into every kind of shiftfs operation, for
//! the test task only (failslab and fail_page_alloc with `task-filter` and
//! /proc/PID/make-it-fail; fail_function on page-cache insertion, for I/O
//! through shiftfs to ext4), at several probabilities: marks and shifting
//! mounts through both mount APIs, then lookups, namespace operations,
//! attributes, xattrs and ACLs, file I/O and inotify from a container.
//! Every call must come back with a result or an errno (no crash, no
//! hang); afterwards nothing leaks, no splat, `e2fsck -fn` finds the ext4
//! under the mark clean, and a fresh shifting mount shows exactly the real
//! tree. Each injected failure's stack is read back from the kernel log,
//! to count those that happened inside shiftfs's own call paths.

use crate::{
    container, ensure, ensure_eq,
    fixture::{load, unload},
    harness::{Context, Outcome},
    reliability::{self as rel, Ext4, Rng},
    suites::kernel_log::FAULT_START,
    sys::{FsContext, KernelLogTail, FS_NAME},
    tests, Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags, XattrFlags},
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::{
    collections::BTreeMap,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares,
    marks_under_failing_allocations,
    shifting_mounts_under_failing_allocations,
    operations_under_failing_allocations,
    fresh_mount_shows_the_real_tree,
    ext4_operations_with_failures_in_shiftfs_paths,
    ext4_operations_with_page_cache_insertions_failing,
    fresh_mount_shows_the_real_ext4_tree,
    the_ext4_below_is_clean,
    ext4_alone_under_task_wide_failures,
    host_cleans_up,
    unload,
];

fn base(env: &Env) -> PathBuf {
    env.scratch.join("alloc-faults")
}

/// A lower filesystem for the suite: its real tree, the mark over it and
/// where containers mount that shifted.
#[derive(Clone)]
struct Lower {
    real: PathBuf,
    mark: PathBuf,
    target: PathBuf,
}

/// The tmpfs lower, for failures injected anywhere in the test task: tmpfs
/// turns a failed allocation into an errno and nothing else.
fn tmpfs_lower(env: &Env) -> Lower {
    let b = base(env);
    Lower {
        real: b.join("tree"),
        mark: b.join("mark"),
        target: b.join("target"),
    }
}

/// The ext4 lower, for failures injected where shiftfs is on the stack
/// and ext4 is not (ext4_alone_under_task_wide_failures says why).
fn ext4_lower(env: &Env) -> Lower {
    let b = base(env);
    Lower {
        real: ext4_dir(env).join("tree"),
        mark: b.join("mark-ext4"),
        target: b.join("target-ext4"),
    }
}

fn ext4_dir(env: &Env) -> PathBuf {
    base(env).join("ext4")
}

/// The tree of a lower: files of on-disk 0 and 1000, a subdirectory, and
/// its root open to everyone.
fn populate(r: &Path) -> Outcome {
    std::fs::create_dir_all(r.join("d/sub")).ctx("mkdir")?;
    for (f, uid) in [("a", 0), ("b", 1000), ("d/c", 1000), ("d/sub/e", 0)] {
        std::fs::write(r.join(f), f.repeat(100)).ctx("write")?;
        std::os::unix::fs::chown(r.join(f), Some(uid), Some(uid)).ctx("chown")?;
    }
    rustix::fs::chmod(r, Mode::from_raw_mode(0o777)).ctx("chmod")
}

fn host_prepares(env: &Env) -> Outcome {
    let b = base(env);
    let _ = std::fs::remove_dir_all(&b);
    let fs = Ext4::new(&b.join("ext4.img"), &ext4_dir(env), 64)?;
    // Kept for the fsck test: the loop device's name.
    std::fs::write(b.join("dev"), &fs.dev).ctx("write dev")?;
    for l in [tmpfs_lower(env), ext4_lower(env)] {
        for d in [&l.real, &l.mark, &l.target] {
            std::fs::create_dir_all(d).ctx("mkdir")?;
        }
        populate(&l.real)?;
        mount(&l.real, &l.mark, FS_NAME, MountFlags::empty(), c"mark").ctx("mark")?;
    }
    Ok(())
}

fn host_cleans_up(env: &Env) -> Outcome {
    let b = base(env);
    for l in [tmpfs_lower(env), ext4_lower(env)] {
        while unmount(&l.mark, UnmountFlags::DETACH).is_ok() {}
    }
    if let Ok(dev) = std::fs::read_to_string(b.join("dev")) {
        let fs = Ext4 {
            dev,
            dir: ext4_dir(env),
            image: b.join("ext4.img"),
        };
        fs.release()?;
    }
    std::fs::remove_dir_all(&b).ctx("rm -r")
}

/// Which fault injector, and how eagerly.
#[derive(Clone, Copy, Debug)]
struct Injection {
    /// `failslab`, `fail_page_alloc` or `fail_function`.
    kind: &'static str,
    /// Percent of the eligible allocations that fail.
    probability: u32,
    /// How many failures at most.
    times: u32,
}

const INJECTIONS: [Injection; 5] = [
    Injection {
        kind: "failslab",
        probability: 5,
        times: 60,
    },
    Injection {
        kind: "failslab",
        probability: 30,
        times: 60,
    },
    Injection {
        kind: "failslab",
        probability: 100,
        times: 30,
    },
    Injection {
        kind: "fail_page_alloc",
        probability: 20,
        times: 40,
    },
    Injection {
        kind: "fail_page_alloc",
        probability: 100,
        times: 20,
    },
];

/// The function fail_function makes fail: adding a folio to a file's page
/// cache (an ENOMEM in the kernel's own error-injection list), which every
/// read, write and fault of an uncached ext4 page goes through.
const PAGE_CACHE_INSERT: &str = "__filemap_add_folio";

/// fail_function on [`PAGE_CACHE_INSERT`], returning ENOMEM.
const PAGE_CACHE_INJECTIONS: [Injection; 2] = [
    Injection {
        kind: "fail_function",
        probability: 50,
        times: 40,
    },
    Injection {
        kind: "fail_function",
        probability: 100,
        times: 20,
    },
];

/// The injectors, each with its own debugfs directory of knobs.
const INJECTORS: [&str; 3] = ["failslab", "fail_page_alloc", "fail_function"];

fn knob(kind: &str, name: &str, value: &str) -> Outcome {
    let p = format!("/sys/kernel/debug/{kind}/{name}");
    std::fs::write(&p, value).ctx(&format!("write {p}"))
}

/// Sets injector `i` up for tasks that ask for it (task-filter), failures
/// of sleeping allocations too, each with its stack in the kernel log.
fn arm(i: Injection) -> Outcome {
    knob(i.kind, "task-filter", "Y")?;
    if i.kind == "fail_function" {
        // Registering the function puts a kprobe on it, which fires
        // through ftrace (KPROBES_ON_FTRACE): in task context, where the
        // task filter sees the failing task.
        knob(i.kind, "inject", PAGE_CACHE_INSERT)?;
        // The knob takes the return value as an unsigned number.
        let retval = -i64::from(Errno::NOMEM.raw_os_error()) as u64;
        knob(
            i.kind,
            &format!("{PAGE_CACHE_INSERT}/retval"),
            &format!("{retval:#x}"),
        )?;
        // Where the probe's ftrace trampolines are: in the module area,
        // beside the modules (see `module_text`).
        let syms = std::fs::read_to_string("/proc/kallsyms").ctx("read kallsyms")?;
        let tramps: Vec<&str> = syms
            .lines()
            .filter(|l| l.ends_with("[__builtin__ftrace]"))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        rel::info(&format!(
            "alloc_faults: ftrace trampolines at {}",
            tramps.join(", ")
        ));
    } else {
        knob(i.kind, "ignore-gfp-wait", "N")?;
    }
    if i.kind == "fail_page_alloc" {
        knob(i.kind, "ignore-gfp-highmem", "N")?;
        knob(i.kind, "min-order", "0")?;
    }
    knob(i.kind, "interval", "1")?;
    knob(i.kind, "space", "0")?;
    knob(i.kind, "verbose", "2")?;
    knob(i.kind, "probability", &i.probability.to_string())?;
    knob(i.kind, "times", &i.times.to_string())
}

fn disarm(i: Injection) -> Outcome {
    knob(i.kind, "probability", "0")?;
    knob(i.kind, "times", "0")?;
    if i.kind == "fail_function" {
        // Spaces alone remove every injection point (and its kprobe).
        knob(i.kind, "inject", " ")?;
    }
    Ok(())
}

/// Where on the stack a failure may be injected: only with an address in
/// `require` on it, and none in `reject` (the injectors' stack filter).
#[derive(Clone, Copy, Debug)]
struct StackFilter {
    require: (u64, u64),
    reject: (u64, u64),
}

impl StackFilter {
    /// Anywhere.
    const NONE: Self = Self {
        require: (0, u64::MAX),
        reject: (0, 0),
    };
}

fn set_filter(f: StackFilter) -> Outcome {
    if !Path::new("/sys/kernel/debug/failslab/require-start").exists() {
        return if f.require == StackFilter::NONE.require && f.reject == StackFilter::NONE.reject {
            Ok(())
        } else {
            Err("the kernel has no CONFIG_FAULT_INJECTION_STACKTRACE_FILTER".into())
        };
    }
    for kind in INJECTORS {
        // Widest first, so that start never exceeds end in between.
        knob(kind, "require-start", "0")?;
        knob(kind, "require-end", &f.require.1.to_string())?;
        knob(kind, "require-start", &f.require.0.to_string())?;
        knob(kind, "reject-start", "0")?;
        knob(kind, "reject-end", &f.reject.1.to_string())?;
        knob(kind, "reject-start", &f.reject.0.to_string())?;
        knob(kind, "stacktrace-depth", "64")?;
    }
    Ok(())
}

/// The span of shiftfs's functions: its `.text` where the kernel put it
/// (`/sys/module/shiftfs/sections`), as long as the module file's `.text`.
/// Exact, not padded: the module area is shared (other modules, ftrace
/// trampolines, BPF programs), and fail_function's own ftrace trampoline,
/// made when the injection point is registered, may sit right after the
/// module's text; an address of the trampoline on every injected stack must
/// not pass for shiftfs.
fn module_text(env: &Env) -> Result<(u64, u64), String> {
    let at = std::fs::read_to_string("/sys/module/shiftfs/sections/.text")
        .ctx("read the module's .text address")?;
    let start = u64::from_str_radix(at.trim().trim_start_matches("0x"), 16)
        .map_err(|_| format!("bad .text address {at:?}"))?;
    let size = elf_section_size(&env.module, ".text")?;
    if start == 0 || size == 0 {
        return Err(format!("no text of shiftfs at {start:#x} ({size} bytes)"));
    }
    Ok((start, start + size))
}

/// The size of section `name` of the ELF64 little-endian file at `path`.
fn elf_section_size(path: &Path, name: &str) -> Result<u64, String> {
    let f = std::fs::read(path).ctx(&format!("read {}", path.display()))?;
    let bad = || format!("{}: not an ELF64 file as expected", path.display());
    let int = |at: usize, n: usize| -> Result<u64, String> {
        let b = f.get(at..at + n).ok_or_else(bad)?;
        Ok(b.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x)))
    };
    if f.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(bad());
    }
    let (shoff, shentsize) = (int(0x28, 8)? as usize, int(0x3a, 2)? as usize);
    let (shnum, shstrndx) = (int(0x3c, 2)? as usize, int(0x3e, 2)? as usize);
    let header = |i: usize| shoff + i * shentsize;
    let strtab = int(header(shstrndx) + 0x18, 8)? as usize;
    for i in 0..shnum {
        let off = strtab + int(header(i), 4)? as usize;
        let s = f.get(off..).ok_or_else(bad)?;
        let s = &s[..s.iter().position(|&c| c == 0).ok_or_else(bad)?];
        if s == name.as_bytes() {
            return int(header(i) + 0x20, 8);
        }
    }
    Err(format!("{}: no section {name}", path.display()))
}

/// The text addresses of the kernel's functions `pick` accepts (by name
/// and module, "" for the kernel itself), from /proc/kallsyms: the span
/// of those around `anchor`, cut where a gap of more than 1 MiB shows
/// another part of the kernel between them.
fn text_span(pick: impl Fn(&str, &str) -> bool, anchor: &str) -> Result<(u64, u64), String> {
    let syms = std::fs::read_to_string("/proc/kallsyms").ctx("read kallsyms")?;
    let mut addrs = Vec::new();
    let mut at = None;
    for l in syms.lines() {
        let mut f = l.split_whitespace();
        let (Some(a), Some(t), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let module = f.next().unwrap_or("");
        if !matches!(t, "t" | "T") || !pick(name, module) {
            continue;
        }
        let a = u64::from_str_radix(a, 16).map_err(|_| "kallsyms address")?;
        if name == anchor {
            at = Some(a);
        }
        addrs.push(a);
    }
    let at = at.ok_or_else(|| format!("no {anchor} in kallsyms"))?;
    addrs.sort_unstable();
    let i = addrs.binary_search(&at).map_err(|_| "anchor")?;
    let (mut lo, mut hi) = (i, i);
    while lo > 0 && addrs[lo] - addrs[lo - 1] < 1 << 20 {
        lo -= 1;
    }
    while hi + 1 < addrs.len() && addrs[hi + 1] - addrs[hi] < 1 << 20 {
        hi += 1;
    }
    // The last function's length is not listed: a page covers it.
    Ok((addrs[lo], addrs[hi] + 4096))
}

/// Console log level 1 while `f` runs: the stack of every injected
/// failure goes to the log buffer, not the (slow) serial console.
fn quiet_console<R>(f: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
    let p = "/proc/sys/kernel/printk";
    let old = std::fs::read_to_string(p).ctx("read printk")?;
    std::fs::write(p, "1").ctx("write printk")?;
    let r = f();
    let level = old.split_whitespace().next().unwrap_or("7").to_owned();
    std::fs::write(p, level).ctx("restore printk")?;
    r
}

/// What the kernel log says about the failures injected while it was
/// tailed: how many, and how many of them had shiftfs on the stack.
#[derive(Default)]
struct Injected {
    total: usize,
    in_shiftfs: usize,
    lost_records: usize,
    /// Where in shiftfs: the innermost shiftfs function on each stack.
    sites: BTreeMap<String, usize>,
    /// What the real filesystem said of the failures (its error lines).
    fs_errors: Vec<String>,
    /// The frames of the first failure without shiftfs on its stack, to
    /// say which path it came by.
    first_elsewhere: Vec<String>,
}

impl Injected {
    /// One line for the run's log.
    fn report(&self, what: &str) -> Outcome {
        rel::info(&format!(
            "alloc_faults: {what}: {} failures injected, {} with shiftfs on the stack{}",
            self.total,
            self.in_shiftfs,
            if self.lost_records > 0 {
                format!(" ({} log records lost)", self.lost_records)
            } else {
                String::new()
            }
        ));
        let mut by_count: Vec<_> = self.sites.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let sites: Vec<String> = by_count.iter().map(|(s, n)| format!("{s} {n}")).collect();
        if !sites.is_empty() {
            rel::info(&format!(
                "alloc_faults: {what}: by site: {}",
                sites.join(", ")
            ));
        }
        Ok(())
    }

    /// Ends one failure's stack dump: counted as shiftfs's if a shiftfs
    /// function was on it.
    fn finish(&mut self, site: &mut Option<String>, frames: &mut Vec<String>) {
        if let Some(s) = site.take() {
            self.in_shiftfs += 1;
            *self.sites.entry(s).or_default() += 1;
        } else if self.first_elsewhere.is_empty() {
            self.first_elsewhere = std::mem::take(frames);
        }
        frames.clear();
    }

    /// The innermost frames of the first failure without shiftfs on its
    /// stack, one line.
    fn elsewhere(&self) -> String {
        let names: Vec<&str> = self
            .first_elsewhere
            .iter()
            .filter_map(|l| l.split_whitespace().find(|w| w.contains("+0x")))
            .take(24)
            .collect();
        names.join(" < ")
    }

    fn read(&mut self, tail: &mut KernelLogTail) -> Outcome {
        let (msgs, lost) = tail.drain()?;
        self.lost_records += lost;
        let mut in_dump = false;
        let mut site = None;
        let mut site_is_own = false;
        let mut frames = Vec::new();
        for m in &msgs {
            if m.contains("EXT4-fs error") || m.contains("EXT4-fs warning") {
                self.fs_errors.push(m.clone());
            }
            if m.contains(FAULT_START) {
                if in_dump {
                    self.finish(&mut site, &mut frames);
                }
                site_is_own = false;
                self.total += 1;
                in_dump = true;
                continue;
            }
            if in_dump {
                frames.push(m.clone());
            }
            if in_dump && m.contains("[shiftfs]") {
                // Innermost first: the first of shiftfs's own functions is
                // the site; a kernel-crate generic only if nothing else.
                let (name, own) = frame_name(m);
                if own && !site_is_own {
                    site = Some(name);
                    site_is_own = true;
                } else {
                    site.get_or_insert(name);
                }
            } else if in_dump && m.contains("</TASK>") {
                self.finish(&mut site, &mut frames);
                site_is_own = false;
                in_dump = false;
            }
        }
        if in_dump {
            self.finish(&mut site, &mut frames);
        }
        Ok(())
    }
}

/// The function of a stack frame line (`name+0x1/0x2 [shiftfs]`), a Rust
/// one as `module::function` (`file::read_iter`), and whether it is one of
/// shiftfs's own functions rather than a generic of the `kernel` crate
/// instantiated in the module (`_RI...`: `KBox::new`, `from_result`).
fn frame_name(line: &str) -> (String, bool) {
    let sym = line
        .split_whitespace()
        .find(|w| w.contains("+0x"))
        .and_then(|w| w.split('+').next())
        .unwrap_or("?");
    if !sym.starts_with("_R") {
        return (sym.to_owned(), true);
    }
    // v0 mangling: identifiers are length-prefixed; crate roots carry a
    // hash (`Cs<base62>_`), impls a disambiguator (`Xs<base62>_`), and
    // back-references (`B<base62>_`) point into the name: drop those so
    // that their digits are not read as lengths.
    let mut clean = String::new();
    let b = sym.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let skip = match b[i] {
            b'C' | b'X' | b'M' | b'N' if b.get(i + 1) == Some(&b's') => Some(i + 2),
            b'B' if b.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric()) => Some(i + 1),
            _ => None,
        };
        if let Some(from) = skip {
            if let Some(end) = sym[from..].find('_') {
                let hash = &sym[from..from + end];
                if hash.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    if b[i] != b'B' {
                        clean.push(b[i] as char);
                    }
                    i = from + end + 1;
                    continue;
                }
            }
        }
        clean.push(b[i] as char);
        i += 1;
    }
    let (c, mut idents, mut i) = (clean.as_bytes(), Vec::new(), 0);
    while i < c.len() {
        if c[i].is_ascii_digit() {
            let mut j = i;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = clean[i..j].parse().unwrap_or(0);
            if let Some(ident) = clean.get(j..j + n).filter(|_| n > 0) {
                idents.push(ident);
                i = j + n;
                continue;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    let own = !sym.starts_with("_RI") && idents.first() == Some(&"shiftfs_rs");
    let name = match (idents.get(1), idents.last()) {
        (Some(m), Some(f)) if idents.len() > 2 => format!("{m}::{f}"),
        _ => sym.to_owned(),
    };
    (name, own)
}

/// Errnos seen, by name, and calls that succeeded.
#[derive(Default)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn add<T>(&mut self, r: Result<T, Errno>) -> Option<T> {
        let key = match &r {
            Ok(_) => "ok".to_owned(),
            Err(e) => crate::sys::Errno(e.raw_os_error()).name(),
        };
        *self.0.entry(key).or_default() += 1;
        r.ok()
    }

    /// Counts `r` and forgets its value.
    fn note<T>(&mut self, r: Result<T, Errno>) {
        self.add(r);
    }

    fn line(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Readies the calling process to run with allocations failing: its heap
/// is grown and kept (no brk or mmap in malloc later), its stack grown, and
/// all of it faulted in and locked, so that the process's own memory does
/// not fail under it (stack growth that cannot allocate is a SIGSEGV).
fn prepare_for_faults() -> Outcome {
    // SAFETY: plain calls on the calling process.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
    drop(std::hint::black_box(vec![1u8; 32 << 20]));
    grow_stack(0);
    // SAFETY: as above.
    if unsafe { libc::mlockall(libc::MCL_CURRENT) } != 0 {
        return Err(format!("mlockall: errno {}", rel::errno()));
    }
    Ok(())
}

/// Touches 2 MiB of stack below the caller.
#[inline(never)]
fn grow_stack(depth: usize) {
    let mut page = [0u8; 64 << 10];
    std::hint::black_box(&mut page);
    if depth < 32 {
        grow_stack(depth + 1);
    }
}

/// Lets the test process and its children lock all their memory.
fn unlimited_memlock() -> Outcome {
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a plain call with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } != 0 {
        return Err(format!("setrlimit(MEMLOCK): errno {}", rel::errno()));
    }
    Ok(())
}

/// Makes the calling process (and what it forks) subject to the armed
/// injectors: only the initial namespace's root may, so a container is
/// armed by the host through its pid.
fn make_it_fail(pid: u32, on: bool) -> Outcome {
    std::fs::write(
        format!("/proc/{pid}/make-it-fail"),
        if on { "1" } else { "0" },
    )
    .ctx("make-it-fail")
}

fn marks_under_failing_allocations(env: &Env) -> Outcome {
    unlimited_memlock()?;
    set_filter(StackFilter::NONE)?;
    let r = tmpfs_lower(env).real;
    let t = base(env).join("host-marks");
    std::fs::create_dir_all(&t).ctx("mkdir")?;
    let mut injected = Injected::default();
    let mut tail = KernelLogTail::new()?;
    for i in INJECTIONS {
        arm(i)?;
        // A child of the host, failing, marks through both mount APIs.
        let (rr, tt) = (r.clone(), t.clone());
        let out = quiet_console(|| {
            rel::spawn(move || {
                prepare_for_faults()?;
                make_it_fail(std::process::id(), true)?;
                let mut tally = Tally::default();
                for _ in 0..20 {
                    if tally
                        .add(mount(&rr, &tt, FS_NAME, MountFlags::empty(), c"mark"))
                        .is_some()
                    {
                        unmount_hard(&tt);
                    }
                    let Ok(fc) = FsContext::open(FS_NAME) else {
                        *tally.0.entry("fsopen failed".into()).or_default() += 1;
                        continue;
                    };
                    let r = fc
                        .set_string("source", &rr.to_string_lossy())
                        .and_then(|()| fc.set_flag("mark"))
                        .and_then(|()| fc.create())
                        .and_then(|()| fc.mount_at(&tt));
                    if tally.add(r).is_some() {
                        unmount_hard(&tt);
                    }
                }
                Ok(tally.line())
            })?
            .wait()
        })?;
        disarm(i)?;
        injected.read(&mut tail)?;
        rel::info(&format!("alloc_faults: host marks under {i:?}: {out}"));
    }
    injected.report("marks")?;
    // Nothing is left mounted, and a mark still works.
    ensure!(
        unmount(&t, UnmountFlags::empty()) == Err(Errno::INVAL),
        "a mark was left mounted"
    );
    mount(&r, &t, FS_NAME, MountFlags::empty(), c"mark").ctx("mark after")?;
    unmount(&t, UnmountFlags::empty()).ctx("umount")
}

/// Unmounts `t`, retrying while an injected failure refuses it.
fn unmount_hard(t: &Path) {
    for _ in 0..1000 {
        match unmount(t, UnmountFlags::empty()) {
            Err(Errno::NOMEM) => continue,
            _ => return,
        }
    }
}

/// Runs `work` in a container that has first done `setup` unarmed, then
/// been armed with injector `i` by the host; disarms and reads the log.
fn armed_container(
    i: Injection,
    injected: &mut Injected,
    setup: impl FnOnce() -> Outcome,
    work: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    let pid_file = std::env::temp_dir().join("alloc-faults-pid");
    let out_file = std::env::temp_dir().join("alloc-faults-out");
    let (pf, of, pf2) = (pid_file.clone(), out_file.clone(), pid_file.clone());
    unlimited_memlock()?;
    let mut tail = KernelLogTail::new()?;
    arm(i)?;
    let res = quiet_console(|| {
        rel::lockstep(
            move |turn| {
                setup()?;
                prepare_for_faults()?;
                std::fs::write(&pf, std::process::id().to_string()).ctx("pid file")?;
                // The host arms this process.
                turn.pass()?;
                let line = work()?;
                // Still failing allocations: try until the write goes
                // through (the injector stops after `times` failures).
                let mut last = Ok(());
                for _ in 0..1000 {
                    last = std::fs::write(&of, &line);
                    if last.is_ok() {
                        break;
                    }
                }
                last.ctx("out file")
            },
            move |turn| {
                turn.wait()?;
                let pid = std::fs::read_to_string(&pf2).ctx("read pid")?;
                make_it_fail(pid.trim().parse().map_err(|_| "bad pid")?, true)?;
                turn.pass().or(Ok(()))
            },
        )
    });
    disarm(i)?;
    injected.read(&mut tail)?;
    res?;
    let line = std::fs::read_to_string(&out_file).ctx("read out file")?;
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(&out_file);
    Ok(line)
}

fn shifting_mounts_under_failing_allocations(env: &Env) -> Outcome {
    set_filter(StackFilter::NONE)?;
    let mut injected = Injected::default();
    for i in INJECTIONS {
        let l = tmpfs_lower(env);
        let (m, t) = (l.mark, l.target);
        let out = armed_container(
            i,
            &mut injected,
            || Ok(()),
            move || {
                let mut tally = Tally::default();
                for _ in 0..15 {
                    // mount(2), then the new API; a nested mark inside each.
                    if tally
                        .add(mount(&m, &t, FS_NAME, MountFlags::empty(), c""))
                        .is_some()
                    {
                        let sub = t.join("d");
                        if tally
                            .add(mount(&sub, &sub, FS_NAME, MountFlags::empty(), c"mark"))
                            .is_some()
                        {
                            let _ = unmount(&sub, UnmountFlags::empty());
                        }
                        let _ = unmount(&t, UnmountFlags::empty());
                    }
                    let fc = match FsContext::open(FS_NAME) {
                        Ok(fc) => fc,
                        Err(_) => continue,
                    };
                    let r = fc
                        .set_string("source", &m.to_string_lossy())
                        .and_then(|()| fc.create())
                        .and_then(|()| fc.mount_at(&t));
                    if tally.add(r).is_some() {
                        let _ = unmount(&t, UnmountFlags::empty());
                    }
                }
                Ok(tally.line())
            },
        )?;
        rel::info(&format!("alloc_faults: shifting mounts under {i:?}: {out}"));
    }
    injected.report("shifting mounts")
}

/// How the random operations change a file's size.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sizes {
    /// truncate(2) and ftruncate(2) among the others.
    Truncate,
    /// Writes and fallocate only. When the page cache refuses the EOF
    /// block a truncate must zero, ext4 (7.3) takes it as a filesystem
    /// error and leaves the inode on its on-disk orphan list (the shrink
    /// path of `ext4_setattr` removes only the in-memory entry), which
    /// e2fsck then reports; writes and fallocate return the ENOMEM clean.
    /// The ext4-alone control shows the same without shiftfs.
    Grow,
}

/// One random operation of every kind the mount offers, on a small set of
/// names under `t`.
fn random_op(rng: &mut Rng, t: &Path, sizes: Sizes, tally: &mut Tally, inotify: &OwnedFd) {
    const NAMES: [&str; 6] = ["n0", "n1", "d/n2", "d/n3", "d/sub/n4", "n5"];
    let p = t.join(rng.pick(&NAMES));
    let q = t.join(rng.pick(&NAMES));
    let file = || {
        rfs::open(
            &p,
            OFlags::RDWR | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
    };
    match rng.below(24) {
        0 => tally.note(file()),
        1 => tally.note(rfs::mkdir(&p, Mode::from_raw_mode(0o755))),
        2 => tally.note(rfs::mknodat(
            rfs::CWD,
            &p,
            rfs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )),
        3 => tally.note(rfs::symlink("target", &p)),
        4 => tally.note(rfs::link(&q, &p)),
        5 => tally.note(rfs::unlink(&p)),
        6 => tally.note(rfs::rmdir(&p)),
        7 => {
            let flags = *rng.pick(&[
                rfs::RenameFlags::empty(),
                rfs::RenameFlags::NOREPLACE,
                rfs::RenameFlags::EXCHANGE,
            ]);
            tally.note(rfs::renameat_with(rfs::CWD, &p, rfs::CWD, &q, flags));
        }
        8 => {
            let d = t.join("d");
            if let Some(fd) = tally.add(rfs::open(
                &d,
                OFlags::RDWR | OFlags::TMPFILE,
                Mode::from_raw_mode(0o600),
            )) {
                tally.note(rustix::io::write(&fd, b"tmp"));
                // As programs link an O_TMPFILE file in.
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                tally.note(rfs::linkat(
                    rfs::CWD,
                    proc.as_str(),
                    rfs::CWD,
                    &p,
                    rfs::AtFlags::SYMLINK_FOLLOW,
                ));
            }
        }
        9 => tally.note(rfs::chmod(&p, Mode::from_raw_mode(0o640))),
        10 => tally.note(rfs::chown(
            &p,
            Some(rfs::Uid::from_raw(1000)),
            Some(rfs::Gid::from_raw(1000)),
        )),
        11 if sizes == Sizes::Truncate => tally.note(rel::truncate(&p, rng.below(5000))),
        11 => {
            if let Some(fd) = tally.add(file()) {
                tally.note(rfs::fallocate(
                    &fd,
                    rfs::FallocateFlags::empty(),
                    0,
                    rng.below(5000) + 1,
                ));
            }
        }
        12 => tally.note(rfs::utimensat(
            rfs::CWD,
            &p,
            &rfs::Timestamps {
                last_access: rfs::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                },
                last_modification: rfs::Timespec {
                    tv_sec: 2,
                    tv_nsec: 0,
                },
            },
            rfs::AtFlags::empty(),
        )),
        13 => tally.note(rfs::setxattr(&p, "user.k", b"value", XattrFlags::empty())),
        14 => {
            let mut b = [0u8; 64];
            tally.note(rfs::getxattr(&p, "user.k", &mut b));
            let mut l = [0u8; 256];
            tally.note(rfs::listxattr(&p, &mut l));
        }
        15 => tally.note(rfs::removexattr(&p, "user.k")),
        16 => {
            let acl = crate::fixture::acl_value(&[
                (0x01, 6, u32::MAX),
                (0x02, 4, 1000),
                (0x04, 4, u32::MAX),
                (0x10, 4, u32::MAX),
                (0x20, 0, u32::MAX),
            ]);
            tally.note(rfs::setxattr(
                &p,
                "system.posix_acl_access",
                &acl,
                XattrFlags::empty(),
            ));
            let mut b = [0u8; 128];
            tally.note(rfs::getxattr(&p, "system.posix_acl_access", &mut b));
            if rng.below(2) == 0 {
                tally.note(rfs::removexattr(&p, "system.posix_acl_access"));
            }
        }
        17 => {
            if let Some(fd) = tally.add(file()) {
                let len = 1 + rng.below(9000) as usize;
                let data = rng.bytes(len);
                tally.note(rustix::io::pwrite(&fd, &data, rng.below(4096)));
                let mut b = vec![0u8; 4096];
                tally.note(rustix::io::pread(&fd, &mut b, 0));
                tally.note(rfs::fsync(&fd));
            }
        }
        18 => {
            if let Some(fd) = tally.add(file()) {
                tally.note(rfs::fallocate(&fd, rfs::FallocateFlags::empty(), 0, 8192));
                tally.note(rfs::fallocate(
                    &fd,
                    rfs::FallocateFlags::PUNCH_HOLE | rfs::FallocateFlags::KEEP_SIZE,
                    0,
                    4096,
                ));
            }
        }
        19 => {
            if let (Some(a), Some(b)) = (
                tally.add(file()),
                tally.add(rfs::open(
                    &q,
                    OFlags::RDWR | OFlags::CREATE,
                    Mode::from_raw_mode(0o644),
                )),
            ) {
                tally.note(rfs::copy_file_range(&a, None, &b, None, 4096));
            }
        }
        20 => {
            if let Some(fd) = tally.add(file()) {
                tally.note(match sizes {
                    Sizes::Truncate => rfs::ftruncate(&fd, 8192),
                    Sizes::Grow => rfs::fallocate(&fd, rfs::FallocateFlags::empty(), 0, 8192),
                });
                // SAFETY: a fresh shared mapping of the file, touched and
                // unmapped here.
                unsafe {
                    if let Some(m) = tally.add(rustix::mm::mmap(
                        core::ptr::null_mut(),
                        8192,
                        rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                        rustix::mm::MapFlags::SHARED,
                        &fd,
                        0,
                    )) {
                        // A write past the file's end (truncated below by
                        // another operation) would fault: stay at byte 0,
                        // which the size change above made.
                        let first = m.cast::<u8>();
                        if rfs::fstat(&fd).map(|s| s.st_size).unwrap_or(0) > 0 {
                            first.write_volatile(first.read_volatile().wrapping_add(1));
                        }
                        tally.note(rustix::mm::msync(m, 8192, rustix::mm::MsyncFlags::SYNC));
                        let _ = rustix::mm::munmap(m, 8192);
                    }
                }
            }
        }
        21 => {
            let d = t.join(rng.pick(&["", "d", "d/sub"]));
            if let Some(fd) = tally.add(rfs::open(
                &d,
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )) {
                if let Some(dir) = tally.add(rfs::Dir::read_from(&fd)) {
                    for e in dir {
                        if tally.add(e).is_none() {
                            break;
                        }
                    }
                }
            }
        }
        22 => {
            tally.note(rustix::fs::inotify::add_watch(
                inotify,
                &p,
                rustix::fs::inotify::WatchFlags::ALL_EVENTS,
            ));
            let mut buf = [0u8; 4096];
            let _ = rustix::io::read(inotify, &mut buf);
        }
        _ => tally.note(rfs::stat(&p).map(drop)),
    }
}

fn operations_under_failing_allocations(env: &Env) -> Outcome {
    set_filter(StackFilter::NONE)?;
    let injected = run_injections(&tmpfs_lower(env), "tmpfs", &INJECTIONS, Sizes::Truncate)?;
    ensure!(injected.total > 0, "no failure was injected");
    ensure!(
        injected.in_shiftfs > 0,
        "no failure had shiftfs on its stack"
    );
    Ok(())
}

fn ext4_operations_with_failures_in_shiftfs_paths(env: &Env) -> Outcome {
    // Only where shiftfs is on the stack, and ext4 is not.
    let shiftfs = module_text(env)?;
    let ext4 = text_span(
        |n, m| m.is_empty() && n.starts_with("ext4_"),
        "ext4_setattr",
    )?;
    rel::info(&format!(
        "alloc_faults: stack filter: shiftfs {:#x}..{:#x}, not ext4 {:#x}..{:#x}",
        shiftfs.0, shiftfs.1, ext4.0, ext4.1
    ));
    set_filter(StackFilter {
        require: shiftfs,
        reject: ext4,
    })?;
    let res = run_injections(&ext4_lower(env), "ext4", &INJECTIONS, Sizes::Truncate);
    set_filter(StackFilter::NONE)?;
    let injected = res?;
    ensure!(injected.total > 0, "no failure was injected");
    ensure!(
        injected.fs_errors.is_empty(),
        "ext4 reported errors: {:?}",
        injected.fs_errors
    );
    Ok(())
}

/// The span of one function of the kernel's: its address up to the next
/// function's, from /proc/kallsyms.
fn function_text(name: &str) -> Result<(u64, u64), String> {
    let syms = std::fs::read_to_string("/proc/kallsyms").ctx("read kallsyms")?;
    let mut text: Vec<(u64, &str)> = syms
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && matches!(f[1], "t" | "T"))
                .then(|| Some((u64::from_str_radix(f[0], 16).ok()?, f[2])))
                .flatten()
        })
        .collect();
    text.sort_unstable();
    let i = text
        .iter()
        .position(|&(_, n)| n == name)
        .ok_or_else(|| format!("no {name} in kallsyms"))?;
    let end = text[i + 1..]
        .iter()
        .find(|&&(a, _)| a > text[i].0)
        .map_or(text[i].0 + 4096, |&(a, _)| a);
    Ok((text[i].0, end))
}

/// fail_function makes page-cache insertion fail (ENOMEM) where shiftfs
/// is on the stack: I/O through a shifting mount to the ext4 below, whose
/// data pages go through the page cache (tmpfs's do not: shmem inserts its
/// own way). Buffer heads are left alone (the stack filter rejects
/// `bdev_getblk`): ext4 takes a metadata block it cannot get as a
/// filesystem error, which is the allocation-failure control's finding, not
/// shiftfs's. Sizes change by writes and fallocate, not truncates (see
/// [`Sizes::Grow`]). Every call gets a result or an errno, ext4 reports no
/// error, and the tests after this one compare the tree and fsck the
/// filesystem.
fn ext4_operations_with_page_cache_insertions_failing(env: &Env) -> Outcome {
    if !Path::new("/sys/kernel/debug/fail_function").exists() {
        return Err("the kernel has no CONFIG_FAIL_FUNCTION".into());
    }
    let shiftfs = module_text(env)?;
    let getblk = function_text("bdev_getblk")?;
    rel::info(&format!(
        "alloc_faults: stack filter: shiftfs {:#x}..{:#x}, not bdev_getblk {:#x}..{:#x}",
        shiftfs.0, shiftfs.1, getblk.0, getblk.1
    ));
    set_filter(StackFilter {
        require: shiftfs,
        reject: getblk,
    })?;
    let res = run_injections(
        &ext4_lower(env),
        "ext4 page cache",
        &PAGE_CACHE_INJECTIONS,
        Sizes::Grow,
    );
    set_filter(StackFilter::NONE)?;
    let injected = res?;
    ensure!(
        injected.total > 0,
        "no page-cache insertion was made to fail"
    );
    ensure!(
        injected.in_shiftfs == injected.total,
        "{} of {} failures without shiftfs on the stack, the first by {}",
        injected.total - injected.in_shiftfs,
        injected.total,
        injected.elsewhere()
    );
    ensure!(
        injected.fs_errors.is_empty(),
        "ext4 reported errors: {:?}",
        injected.fs_errors
    );
    Ok(())
}

/// `rounds` random operations under `dir`, seeded: the errnos they got.
fn random_ops(seed: u64, dir: &Path, sizes: Sizes, rounds: u64) -> Result<String, String> {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    // Allocations may fail here already: try until one goes through (the
    // injector stops after `times` failures).
    let inotify = (0..1000)
        .find_map(|_| {
            tally.add(rustix::fs::inotify::init(
                rustix::fs::inotify::CreateFlags::NONBLOCK,
            ))
        })
        .ok_or("inotify_init failed 1000 times")?;
    for _ in 0..rounds {
        random_op(&mut rng, dir, sizes, &mut tally, &inotify);
    }
    Ok(tally.line())
}

/// Random operations of every kind from a container on a shifting mount of
/// `lower`, under each of `injections` in turn; what was injected.
fn run_injections(
    lower: &Lower,
    label: &str,
    injections: &[Injection],
    sizes: Sizes,
) -> Result<Injected, String> {
    let mut injected = Injected::default();
    let seed = rel::seed();
    let rounds = rel::pick(300, 3000);
    for (n, &i) in injections.iter().enumerate() {
        let (m, t, t2) = (
            lower.mark.clone(),
            lower.target.clone(),
            lower.target.clone(),
        );
        let before = injected.total;
        let out = armed_container(
            i,
            &mut injected,
            move || mount(&m, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount"),
            move || random_ops(seed ^ n as u64, &t2, sizes, rounds),
        )?;
        rel::info(&format!(
            "alloc_faults: {label}: {rounds} operations under {i:?} (seed {seed:#x}): {} injected; {out}",
            injected.total - before
        ));
    }
    for e in &injected.fs_errors {
        rel::info(&format!("alloc_faults: {label}: the filesystem said: {e}"));
    }
    injected.report(&format!("{label} operations"))?;
    Ok(injected)
}

/// Names, types, modes, owners, sizes, contents and user xattrs of every
/// entry under `root`, by relative path.
fn snapshot(root: &Path) -> Result<BTreeMap<PathBuf, String>, String> {
    let mut out = BTreeMap::new();
    crate::fixture::walk(root, |p, rel, md| {
        use std::os::unix::fs::MetadataExt;
        let mut desc = format!(
            "mode {:o} uid {} gid {} nlink {}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.nlink()
        );
        if md.is_file() {
            let data = std::fs::read(p).ctx(&format!("read {}", p.display()))?;
            desc += &format!(" size {} digest {:x}", data.len(), rel::digest(&data));
        } else if md.file_type().is_symlink() {
            desc += &format!(" -> {:?}", std::fs::read_link(p).ctx("readlink")?);
        }
        if !md.file_type().is_symlink() {
            let mut b = [0u8; 64];
            if let Ok(n) = rfs::getxattr(p, "user.k", &mut b) {
                desc += &format!(" user.k {:?}", &b[..n]);
            }
            let mut a = [0u8; 128];
            if let Ok(n) = rfs::getxattr(p, "system.posix_acl_access", &mut a) {
                desc += &format!(" acl {:?}", crate::fixture::acl_entries(&a[..n]));
            }
        }
        out.insert(rel.to_path_buf(), desc);
        Ok(())
    })?;
    Ok(out)
}

fn fresh_mount_shows_the_real_tree(env: &Env) -> Outcome {
    fresh_mount_shows(&tmpfs_lower(env))
}

fn fresh_mount_shows_the_real_ext4_tree(env: &Env) -> Outcome {
    fresh_mount_shows(&ext4_lower(env))
}

/// The host's view of `lower`'s tree, in on-disk ids, equals a new
/// container's through a new shifting mount, whose ids for on-disk 0 to
/// 65535 are the same numbers (and 65534 for others, which the tree does
/// not have).
fn fresh_mount_shows(lower: &Lower) -> Outcome {
    let want = snapshot(&lower.real)?;
    let (m, t) = (lower.mark.clone(), lower.target.clone());
    let got_file = std::env::temp_dir().join("alloc-faults-seen");
    let gf = got_file.clone();
    container::run(move || {
        mount(&m, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        let got = snapshot(&t)?;
        std::fs::write(&gf, format!("{got:#?}")).ctx("write seen")
    })?;
    let got = std::fs::read_to_string(&got_file).ctx("read seen")?;
    ensure_eq!(
        got,
        format!("{want:#?}"),
        "the tree through a fresh shifting mount"
    );
    rel::info(&format!(
        "alloc_faults: {} entries compared through a fresh mount",
        want.len()
    ));
    Ok(())
}

fn the_ext4_below_is_clean(env: &Env) -> Outcome {
    unmount(&ext4_lower(env).mark, UnmountFlags::empty()).ctx("umount mark")?;
    let dev = std::fs::read_to_string(base(env).join("dev")).ctx("read dev")?;
    if let Err(e) = unmount(ext4_dir(env), UnmountFlags::empty()) {
        let mut seen = Vec::new();
        for p in std::fs::read_dir("/proc").ctx("proc")?.flatten() {
            let mi = std::fs::read_to_string(p.path().join("mountinfo")).unwrap_or_default();
            for l in mi
                .lines()
                .filter(|l| l.contains("shiftfs") || l.contains("alloc-faults"))
            {
                seen.push(format!("{:?}: {l}", p.file_name()));
            }
        }
        let slabs = rel::slabinfo().unwrap_or_default();
        let shiftfs: Vec<_> = slabs
            .iter()
            .filter(|(k, _)| k.contains("shiftfs"))
            .collect();
        return Err(format!(
            "umount ext4: {e}; mounts {seen:?}; slabs {shiftfs:?}"
        ));
    }
    rel::sh("e2fsck", &["-f", "-n", &dev]).map(drop)?;
    rel::no_busy_inodes()
}

/// The control: the same operations straight on an ext4 of its own (no
/// shiftfs), failing anywhere in the task. ext4 turns some allocation
/// failures into filesystem errors (an ENOMEM in ext4_setattr is one),
/// after which e2fsck finds the filesystem marked with errors: why the
/// ext4 run above injects failures only where ext4 is not on the stack.
/// Reported, not judged.
fn ext4_alone_under_task_wide_failures(env: &Env) -> Outcome {
    set_filter(StackFilter::NONE)?;
    let b = base(env);
    let fs = Ext4::new(&b.join("control.img"), &b.join("control"), 32)?;
    let res = (|| {
        let d = b.join("control/tree");
        populate(&d)?;
        let mut injected = Injected::default();
        let mut errors = 0;
        let seed = rel::seed();
        for (n, i) in INJECTIONS.into_iter().enumerate() {
            let mut tail = KernelLogTail::new()?;
            arm(i)?;
            let dd = d.clone();
            let out = quiet_console(|| {
                rel::spawn(move || {
                    prepare_for_faults()?;
                    make_it_fail(std::process::id(), true)?;
                    random_ops(seed ^ n as u64, &dd, Sizes::Truncate, rel::pick(300, 3000))
                })?
                .wait()
            });
            disarm(i)?;
            injected.read(&mut tail)?;
            out?;
            errors += injected.fs_errors.len();
            for e in injected.fs_errors.drain(..) {
                rel::info(&format!("alloc_faults: ext4 alone said: {e}"));
            }
        }
        unmount(&fs.dir, UnmountFlags::empty()).ctx("umount control")?;
        let fsck = rel::sh("e2fsck", &["-f", "-n", &fs.dev]);
        rel::info(&format!(
            "alloc_faults: ext4 alone: {} failures injected, {errors} ext4 errors, e2fsck {}",
            injected.total,
            if fsck.is_ok() {
                "clean"
            } else {
                "finds errors"
            }
        ));
        Ok(())
    })();
    fs.release()?;
    res
}
