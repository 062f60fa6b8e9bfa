//! Random file I/O checked byte for byte, in a real container
//! (0:100000:65536) on shifting mounts over ext4 and tmpfs:
//!
//! - fsx (crates.io `fsx`, installed by tools/setup) with
//!   tools/fsx/buffered.toml (pread, pwrite, truncate, posix_fallocate,
//!   punch hole, sendfile, copy_file_range, fadvise, fsync, close/open) and
//!   tools/fsx/mmap.toml (the same with mmap reads and writes, msync and
//!   MS_INVALIDATE);
//! - fsx has no O_DIRECT mode, so `o_direct_on_ext4` is an exerciser of
//!   this suite's own in the same spirit: one file open twice, with and
//!   without O_DIRECT, aligned direct reads and writes mixed with buffered
//!   and mmap reads and writes, truncates and hole punches, every read and
//!   the size after every operation checked against a model.
//!
//! Short runs (CI) do 2,000 operations per configuration;
//! `SHIFTFS_STRESS=long` does 100,000 (`SHIFTFS_FSX_OPS` overrides both).
//! `SHIFTFS_FSX_ONLY=NAME,...` runs only the configurations named (as in
//! the `info` lines: buffered-ext4, mmap-tmpfs, o-direct-ext4, ...), so
//! that long runs can be split across machines.
//! Seeds are fixed unless `SHIFTFS_SEED` is set, and printed with the
//! command that replays a run.

use crate::{
    container, ensure_eq,
    fixture::{copy_in, find_tool, load, unload, Tree},
    harness::{Context, Outcome},
    reliability as rel, tests, Env,
};
use rustix::{
    fs::{self as rfs, FallocateFlags, Mode, OFlags},
    io::{pread, pwrite, Errno},
    mm::{mmap, msync, munmap, MapFlags, MsyncFlags, ProtFlags},
};
use std::{
    collections::VecDeque,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    buffered_on_ext4,
    mmap_on_ext4,
    o_direct_on_ext4,
    buffered_on_tmpfs,
    mmap_on_tmpfs,
    host_unmarks,
    unload,
];

/// Operations per configuration.
fn ops() -> u64 {
    std::env::var("SHIFTFS_FSX_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if rel::long() { 100_000 } else { 2_000 })
}

/// Whether configuration `name` runs (`SHIFTFS_FSX_ONLY`, default all).
fn selected(name: &str) -> bool {
    let only = std::env::var("SHIFTFS_FSX_ONLY").unwrap_or_default();
    let run = only.is_empty() || only.split(',').any(|n| n == name);
    if !run {
        println!("info   fsx {name}: not selected by SHIFTFS_FSX_ONLY");
    }
    run
}

/// `SHIFTFS_SEED`, or a fixed seed per configuration.
fn seed(fixed: u64) -> u64 {
    std::env::var("SHIFTFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(fixed)
}

fn bin_dir(env: &Env) -> PathBuf {
    env.scratch.join("fsx-bin")
}

/// Where fsx leaves its artifacts (`*.fsxlog`, `*.fsxgood`) on failure:
/// the container root's.
fn out_dir(env: &Env) -> PathBuf {
    env.scratch.join("fsx-out")
}

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let (bin, out) = (bin_dir(env), out_dir(env));
    for d in [&bin, &out] {
        std::fs::create_dir_all(d).ctx(&format!("mkdir {}", d.display()))?;
    }
    std::os::unix::fs::chown(&out, Some(container::ROOT), Some(container::ROOT))
        .ctx("chown out")?;
    copy_in(&find_tool("fsx")?, &bin, 0o755)?;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for c in ["buffered.toml", "mmap.toml"] {
        copy_in(&repo.join("tools/fsx").join(c), &bin, 0o644)?;
    }
    for t in [Tree::on_ext4(env, "fsx")?, Tree::new(env, "fsx")] {
        t.create()?;
        t.mark()?;
    }
    Ok(())
}

fn host_unmarks(env: &Env) -> Outcome {
    Tree::on_ext4(env, "fsx")?.unmark()?;
    Tree::new(env, "fsx").unmark()
}

/// Runs fsx with `config` on a file of the shifting mount of `tree`.
fn fsx(env: &Env, tree: Tree, config: &str, name: &str, fixed_seed: u64) -> Outcome {
    let (n, s) = (ops(), seed(fixed_seed));
    if !selected(name) {
        return Ok(());
    }
    let (bin, out) = (bin_dir(env), out_dir(env));
    let start = Instant::now();
    tree.in_shifted(|t| {
        let file = t.join(format!("fsx-{name}"));
        let mut cmd = Command::new(bin.join("fsx"));
        cmd.arg("-N")
            .arg(n.to_string())
            .arg("-S")
            .arg(s.to_string())
            .arg("-f")
            .arg(bin.join(config))
            .arg("-P")
            .arg(&out)
            .arg(&file)
            .current_dir(&out);
        let res = cmd.output().ctx("run fsx")?;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr),
        );
        if res.status.success() && stdout.contains("All operations completed A-OK!") {
            return Ok(());
        }
        let log = out.join(format!("fsx-{name}.output"));
        let _ = std::fs::write(&log, format!("{stdout}\n--- stderr ---\n{stderr}"));
        let tail: Vec<_> = stderr.lines().rev().take(25).collect();
        Err(format!(
            "fsx {name} failed ({}), replay: fsx -N {n} -S {s} -f tools/fsx/{config} FILE; \
             output in {}; stderr ends:\n{}",
            res.status,
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    })?;
    println!(
        "info   fsx {name}: {n} operations, seed {s}, 0 mismatches, {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn buffered_on_ext4(env: &Env) -> Outcome {
    fsx(
        env,
        Tree::on_ext4(env, "fsx")?,
        "buffered.toml",
        "buffered-ext4",
        11,
    )
}

fn mmap_on_ext4(env: &Env) -> Outcome {
    fsx(
        env,
        Tree::on_ext4(env, "fsx")?,
        "mmap.toml",
        "mmap-ext4",
        12,
    )
}

fn buffered_on_tmpfs(env: &Env) -> Outcome {
    fsx(
        env,
        Tree::new(env, "fsx"),
        "buffered.toml",
        "buffered-tmpfs",
        13,
    )
}

fn mmap_on_tmpfs(env: &Env) -> Outcome {
    fsx(env, Tree::new(env, "fsx"), "mmap.toml", "mmap-tmpfs", 14)
}

fn o_direct_on_ext4(env: &Env) -> Outcome {
    if !selected("o-direct-ext4") {
        return Ok(());
    }
    let (n, s) = (ops(), seed(15));
    let start = Instant::now();
    Tree::on_ext4(env, "fsx")?
        .in_shifted(|t| DirectExerciser::new(&t.join("direct"), s)?.run(n))?;
    println!(
        "info   fsx o-direct-ext4: {n} operations, seed {s}, 0 mismatches, {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Direct I/O alignment (offsets, lengths and memory).
const BLK: usize = 4096;
/// Largest file the exerciser makes.
const MAX_SIZE: usize = 1 << 20;
/// Largest single read or write.
const MAX_OP: usize = 64 * 1024;

/// A buffer aligned for direct I/O.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, BLK).expect("layout");
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Self { ptr, layout }
    }

    fn slice(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.layout.size());
        // SAFETY: `ptr` is valid for `layout.size()` bytes, owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 16) as usize % n.max(1)
    }
}

struct DirectExerciser {
    buffered: OwnedFd,
    direct: OwnedFd,
    model: Vec<u8>,
    rng: Rng,
    seed: u64,
    buf: Aligned,
    /// The last operations, for a failure's report.
    log: VecDeque<String>,
}

impl DirectExerciser {
    fn new(path: &Path, seed: u64) -> Result<Self, String> {
        let buffered = rfs::open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC,
            Mode::from_raw_mode(0o644),
        )
        .ctx("open")?;
        let direct =
            rfs::open(path, OFlags::RDWR | OFlags::DIRECT, Mode::empty()).ctx("open O_DIRECT")?;
        Ok(Self {
            buffered,
            direct,
            model: Vec::new(),
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            seed,
            buf: Aligned::new(MAX_OP),
            log: VecDeque::new(),
        })
    }

    fn fail(&self, step: u64, what: String) -> String {
        format!(
            "O_DIRECT exerciser, seed {}, step {step}: {what}; last operations:\n{}",
            self.seed,
            self.log.iter().cloned().collect::<Vec<_>>().join("\n")
        )
    }

    fn note(&mut self, step: u64, op: String) {
        if self.log.len() == 20 {
            self.log.pop_front();
        }
        self.log.push_back(format!("{step:>7} {op}"));
    }

    /// What operation `step` writes at file offset `pos`.
    fn byte(step: u64, pos: usize) -> u8 {
        (step as u8).wrapping_mul(31) ^ (pos as u8).wrapping_mul(7) ^ ((pos >> 9) as u8)
    }

    fn put(&mut self, off: usize, data: &[u8]) {
        if self.model.len() < off + data.len() {
            self.model.resize(off + data.len(), 0);
        }
        self.model[off..off + data.len()].copy_from_slice(data);
    }

    /// Compares what a read at `off` returned with the model.
    fn check(&self, step: u64, how: &str, off: usize, want_len: usize, got: &[u8]) -> Outcome {
        let end = self.model.len().min(off + want_len).max(off);
        let want = if off < self.model.len() {
            &self.model[off..end]
        } else {
            &[][..]
        };
        if got.len() != want.len() {
            return Err(self.fail(
                step,
                format!(
                    "{how} at {off:#x} of {want_len:#x}: {:#x} bytes, expected {:#x}",
                    got.len(),
                    want.len()
                ),
            ));
        }
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            return Err(self.fail(
                step,
                format!(
                    "{how} at {off:#x}: byte {:#x} is {:#04x}, expected {:#04x}",
                    off + i,
                    got[i],
                    want[i]
                ),
            ));
        }
        Ok(())
    }

    fn run(mut self, ops: u64) -> Outcome {
        for step in 1..=ops {
            self.step(step)?;
            let size = rfs::fstat(&self.buffered).ctx("fstat")?.st_size as usize;
            if size != self.model.len() {
                return Err(self.fail(
                    step,
                    format!("size {size:#x}, expected {:#x}", self.model.len()),
                ));
            }
        }
        // The whole file, once more, through the page cache and directly.
        let size = self.model.len();
        let mut all = vec![0u8; size];
        let n = pread(&self.buffered, &mut all, 0).ctx("pread")?;
        self.check(ops, "final buffered read", 0, size, &all[..n])?;
        Ok(())
    }

    fn aligned_range(&mut self) -> (usize, usize) {
        let len = BLK * (1 + self.rng.below(MAX_OP / BLK));
        let off = BLK * self.rng.below((MAX_SIZE - len) / BLK + 1);
        (off, len)
    }

    /// A range starting below `within` (> 0) and ending at or below it.
    fn any_range(&mut self, within: usize) -> (usize, usize) {
        let off = self.rng.below(within);
        let len = 1 + self.rng.below(MAX_OP.min(within - off));
        (off, len)
    }

    fn step(&mut self, step: u64) -> Outcome {
        let size = self.model.len();
        match self.rng.below(100) {
            0..=24 => {
                let (off, len) = self.aligned_range();
                self.note(step, format!("direct write {off:#x} +{len:#x}"));
                let b = self.buf.slice(len);
                for (i, x) in b.iter_mut().enumerate() {
                    *x = Self::byte(step, off + i);
                }
                let n = pwrite(&self.direct, b, off as u64).ctx("direct pwrite")?;
                ensure_eq!(n, len, "direct write length");
                let data = self.buf.slice(len).to_vec();
                self.put(off, &data);
            }
            25..=49 => {
                let (off, len) = self.aligned_range();
                self.note(step, format!("direct read {off:#x} +{len:#x}"));
                let b = self.buf.slice(len);
                let n = pread(&self.direct, b, off as u64).ctx("direct pread")?;
                let got = self.buf.slice(n).to_vec();
                self.check(step, "direct read", off, len, &got)?;
            }
            50..=61 => {
                let (off, len) = self.any_range(MAX_SIZE);
                self.note(step, format!("buffered write {off:#x} +{len:#x}"));
                let data: Vec<u8> = (0..len).map(|i| Self::byte(step, off + i)).collect();
                let n = pwrite(&self.buffered, &data, off as u64).ctx("pwrite")?;
                ensure_eq!(n, len, "buffered write length");
                self.put(off, &data);
            }
            62..=73 => {
                let (off, len) = self.any_range(size + BLK);
                self.note(step, format!("buffered read {off:#x} +{len:#x}"));
                let mut data = vec![0u8; len];
                let n = pread(&self.buffered, &mut data, off as u64).ctx("pread")?;
                self.check(step, "buffered read", off, len, &data[..n])?;
            }
            74..=85 if size > 0 => {
                let write = self.rng.below(2) == 0;
                let (off, len) = self.any_range(size);
                let len = len.min(size - off);
                self.note(
                    step,
                    format!(
                        "mmap {} {off:#x} +{len:#x}",
                        if write { "write" } else { "read" }
                    ),
                );
                // SAFETY: a fresh shared mapping of the file, unmapped below;
                // nothing else maps it in this process.
                let p = unsafe {
                    mmap(
                        std::ptr::null_mut(),
                        size,
                        ProtFlags::READ | ProtFlags::WRITE,
                        MapFlags::SHARED,
                        &self.buffered,
                        0,
                    )
                }
                .ctx("mmap")?;
                // SAFETY: the mapping covers `size` bytes of the file.
                let m = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), size) };
                let res = if write {
                    let data: Vec<u8> = (0..len).map(|i| Self::byte(step, off + i)).collect();
                    m[off..off + len].copy_from_slice(&data);
                    self.put(off, &data);
                    // SAFETY: `p` is the mapping made above.
                    unsafe { msync(p, size, MsyncFlags::SYNC) }.ctx("msync")
                } else {
                    let got = m[off..off + len].to_vec();
                    self.check(step, "mmap read", off, len, &got)
                };
                // SAFETY: `p` is the mapping made above, no longer used.
                unsafe { munmap(p, size) }.ctx("munmap")?;
                res?;
            }
            86..=91 => {
                let new = if self.rng.below(2) == 0 {
                    BLK * self.rng.below(MAX_SIZE / BLK + 1)
                } else {
                    self.rng.below(MAX_SIZE + 1)
                };
                self.note(step, format!("truncate {size:#x} -> {new:#x}"));
                rfs::ftruncate(&self.buffered, new as u64).ctx("ftruncate")?;
                self.model.resize(new, 0);
            }
            92..=96 if size > 0 => {
                let (off, len) = self.any_range(size);
                self.note(step, format!("punch hole {off:#x} +{len:#x}"));
                match rfs::fallocate(
                    &self.buffered,
                    FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                    off as u64,
                    len as u64,
                ) {
                    Ok(()) => {
                        let end = (off + len).min(size);
                        self.model[off..end].fill(0);
                    }
                    Err(e) => return Err(self.fail(step, format!("punch hole: {e}"))),
                }
            }
            _ => {
                self.note(step, "fdatasync".into());
                match rfs::fdatasync(&self.direct) {
                    Ok(()) | Err(Errno::INTR) => {}
                    Err(e) => return Err(self.fail(step, format!("fdatasync: {e}"))),
                }
            }
        }
        Ok(())
    }
}
