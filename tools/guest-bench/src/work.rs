//! The workloads. Each runs in the container against one kind's view of
//! the image (a directory fd on its root) and returns one time per row it
//! reports, or the errno of the first call that failed.

use crate::sys::{self, Errno, Sys};
use crate::tarball;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

/// Sizes of the data set.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Files in `many/` (stat, open+read, readdir).
    pub files: usize,
    /// Bytes in each of them.
    pub file_bytes: usize,
    /// Files created then unlinked.
    pub creates: usize,
    /// MiB of the big file (sequential and random reads) and of the
    /// sequential write.
    pub big_mib: usize,
    /// 4 KiB random reads.
    pub rand_reads: usize,
    /// Files stat'ed for the memory figures.
    pub mem_files: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum W {
    StatCold,
    StatWarm,
    StatOther,
    StatAcl,
    OpenRead,
    Readdir,
    Walk,
    SeqRead,
    RandRead,
    CreateUnlink,
    SeqWrite,
    UntarRm,
    Fio,
    Dbench,
}

/// The order of a round: the one workload that drops caches first, then
/// reads of a warm cache, then writes, then the third-party programs.
pub const ALL: [W; 14] = [
    W::StatCold,
    W::StatWarm,
    W::StatOther,
    W::StatAcl,
    W::OpenRead,
    W::Readdir,
    W::Walk,
    W::SeqRead,
    W::RandRead,
    W::CreateUnlink,
    W::SeqWrite,
    W::UntarRm,
    W::Fio,
    W::Dbench,
];

/// fio's jobs (`--rw`, `--bs`), each on its own file of `fio_mib`
/// (a 1/div part of that for the FUSE kinds).
const FIO_JOBS: [(&str, &str, &str); 4] = [
    ("fio randread 4k", "randread", "4k"),
    ("fio randwrite 4k", "randwrite", "4k"),
    ("fio read 1M", "read", "1m"),
    ("fio write 1M", "write", "1m"),
];

/// The size of fio's file: an eighth of the big file's (32 MiB in a full
/// run). Its time comes from fio's bandwidth, so the size only sets how
/// long a sample takes: random 4 KiB writes to ext4 on a loop device are
/// about 2 MiB/s under TCG.
fn fio_mib(s: &Sizes) -> usize {
    (s.big_mib / 8).max(4)
}

/// The container's user that runs [`W::StatOther`].
const OTHER_ID: u32 = 1000;

/// The access ACL of `acl/` (`system.posix_acl_access`): user::rwx,
/// user [`OTHER_ID`] and user 100000 + [`OTHER_ID`] r-x, group::r-x,
/// mask::r-x, other::---. The first entry names [`OTHER_ID`] of the
/// container as the shifting kinds show it (on-disk id = container id),
/// the second as `raw` shows it (the container's id on the host).
pub fn acl_value() -> Vec<u8> {
    let entries: [(u16, u16, u32); 6] = [
        (0x01, 7, u32::MAX),
        (0x02, 5, OTHER_ID),
        (0x02, 5, 100_000 + OTHER_ID),
        (0x04, 5, u32::MAX),
        (0x10, 5, u32::MAX),
        (0x20, 0, u32::MAX),
    ];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// How long each dbench run lasts.
const DBENCH_SECS: u32 = 5;

impl W {
    pub fn name(self) -> &'static str {
        match self {
            W::StatCold => "stat-cold",
            W::StatWarm => "stat",
            W::StatOther => "stat-other",
            W::StatAcl => "stat-acl",
            W::OpenRead => "open-read",
            W::Readdir => "readdir",
            W::Walk => "walk",
            W::SeqRead => "seq-read",
            W::RandRead => "rand-read",
            W::CreateUnlink => "create",
            W::SeqWrite => "seq-write",
            W::UntarRm => "untar",
            W::Fio => "fio",
            W::Dbench => "dbench",
        }
    }

    /// How many passes a sample of the workload makes; it reports the
    /// time of one. The warm metadata rows take 10 to 100 ms a pass under
    /// TCG, where a timer tick or a stray wakeup on the shared host moves a
    /// single pass by a tenth; their samples are 0.2 to 0.5 s of passes,
    /// like the other rows. A FUSE kind makes one pass (of 1/div of the
    /// operations, see [`Ctx::div`]).
    fn passes(self) -> usize {
        match self {
            W::Readdir | W::Walk => 20,
            W::StatWarm | W::StatOther | W::StatAcl | W::OpenRead => 3,
            _ => 1,
        }
    }

    /// Whether the workload writes data (and leaves pages to write back).
    /// fio, whose jobs each write, writes back before each job itself.
    fn writes(self) -> bool {
        matches!(self, W::CreateUnlink | W::SeqWrite | W::UntarRm | W::Dbench)
    }

    pub fn from_name(s: &str) -> Option<W> {
        ALL.into_iter().find(|w| w.name() == s)
    }

    /// Whether `Ctx::div` applies: the workloads that are a number of like
    /// operations (not the tree-shaped ones, nor dbench's timed run).
    pub fn scales(self) -> bool {
        !matches!(self, W::Readdir | W::Walk | W::UntarRm | W::Dbench)
    }

    /// Whether it wants the kind's caches warm (primed) before it runs.
    pub fn wants_warm(self) -> bool {
        !matches!(self, W::StatCold)
    }

    /// The rows it reports: (name, what one sample does).
    pub fn rows(self, s: &Sizes, tar_entries: usize) -> Vec<(String, String)> {
        let mut rows = self.rows_of_one_pass(s, tar_entries);
        if self.passes() > 1 {
            for (_, what) in &mut rows {
                what.push_str(&format!("; a pass, mean of {}", self.passes()));
            }
        }
        rows
    }

    /// [`W::rows`] for one pass.
    fn rows_of_one_pass(self, s: &Sizes, tar_entries: usize) -> Vec<(String, String)> {
        let r = |a: &str, b: String| (a.to_owned(), b);
        match self {
            W::StatCold => vec![r(
                "stat, cold cache",
                format!("{} files, after drop_caches", s.files),
            )],
            W::StatWarm => vec![r("stat, warm", format!("{} files", s.files))],
            W::StatOther => vec![r(
                "stat, warm, not owner",
                format!("{} files, as container uid {OTHER_ID}", s.files),
            )],
            W::StatAcl => vec![r(
                "stat, warm, not owner, ACL",
                format!(
                    "{} files in a directory whose ACL lets uid {OTHER_ID} in",
                    s.files
                ),
            )],
            W::OpenRead => vec![r(
                "open+read+close",
                format!("{} files of {} B", s.files, s.file_bytes),
            )],
            W::Readdir => vec![r("readdir", format!("{} entries", s.files))],
            W::Walk => vec![r("find+stat walk", format!("{tar_entries} entries"))],
            W::SeqRead => vec![r(
                "sequential read",
                format!("{} MiB, 1 MiB reads", s.big_mib),
            )],
            W::RandRead => vec![r(
                "random 4 KiB read",
                format!("{} preads in {} MiB", s.rand_reads, s.big_mib),
            )],
            W::CreateUnlink => vec![
                r(
                    "create+write+close",
                    format!("{} files of 100 B", s.creates),
                ),
                r("unlink", format!("{} files", s.creates)),
            ],
            W::SeqWrite => vec![r(
                "sequential write",
                format!("{} MiB, 1 MiB writes, no fsync", s.big_mib),
            )],
            W::UntarRm => vec![
                r("untar", format!("{tar_entries} entries from memory")),
                r("rm -r", format!("{tar_entries} entries")),
            ],
            W::Fio => FIO_JOBS
                .iter()
                .map(|&(row, rw, bs)| {
                    r(
                        row,
                        format!(
                            "fio --rw={rw} --bs={bs} --size={}m, psync; time = size / bandwidth",
                            fio_mib(s)
                        ),
                    )
                })
                .collect(),
            W::Dbench => vec![r(
                "dbench, 1 client",
                format!("{DBENCH_SECS} s; time = 1 / throughput (s per MB)"),
            )],
        }
    }
}

/// A failure: the errno and the call that returned it.
#[derive(Clone, Debug)]
pub struct Fail {
    pub errno: Errno,
    pub op: &'static str,
}

trait Op<T> {
    fn op(self, op: &'static str) -> Result<T, Fail>;
}

impl<T> Op<T> for Sys<T> {
    fn op(self, op: &'static str) -> Result<T, Fail> {
        self.map_err(|errno| Fail { errno, op })
    }
}

pub type Sample = Result<f64, Fail>;

/// What the workloads share: the names they use and their buffers.
pub struct Ctx {
    pub sizes: Sizes,
    pub tar: Vec<tarball::Entry>,
    many: Vec<CString>,
    acl: Vec<CString>,
    creates: Vec<CString>,
    offsets: Vec<u64>,
    buf: Vec<u8>,
    dbuf: Vec<u8>,
    /// The kind at hand does 1/div of the operations of the workloads that
    /// scale (see `W::scales`) and its time is multiplied by div: the FUSE
    /// kinds, whose round trips under TCG would otherwise take most of the
    /// run.
    pub div: usize,
}

/// The find+stat walk of `src/` under `root`: every entry read from its
/// directory and stat'ed, every directory opened; how many entries.
pub fn walk_tree(root: &OwnedFd, buf: &mut [u8]) -> Result<usize, Fail> {
    fn go(dir: &OwnedFd, buf: &mut [u8]) -> Result<usize, Fail> {
        let mut names = Vec::new();
        sys::read_dir(dir, buf, |n, _| {
            names.push(n.to_owned());
            Ok(())
        })
        .op("getdents64")?;
        let mut count = names.len();
        for n in names {
            let st = sys::fstatat(dir.as_raw_fd(), &n, libc::AT_SYMLINK_NOFOLLOW).op("stat")?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let sub = sys::open_dir(dir.as_raw_fd(), &n).op("open dir")?;
                count += go(&sub, buf)?;
            }
        }
        Ok(count)
    }
    let top = sys::open_dir(root.as_raw_fd(), c"src").op("open dir")?;
    go(&top, buf)
}

pub fn many_name(i: usize) -> CString {
    sys::cstr(&format!("many/f{i:06}"))
}

/// File `i` of `many/` as linked from `acl/` (see [`W::StatAcl`]).
pub fn acl_name(i: usize) -> CString {
    sys::cstr(&format!("acl/f{i:06}"))
}

/// The first 1/div of `n` items (at least one).
fn part(n: usize, div: usize) -> usize {
    (n / div.max(1)).max(1).min(n)
}

impl Ctx {
    /// Elapsed time since `t`, scaled up to the whole workload.
    fn scaled(&self, t: Instant) -> f64 {
        t.elapsed().as_secs_f64() * self.div.max(1) as f64
    }

    pub fn new(sizes: Sizes, tar: Vec<tarball::Entry>) -> Self {
        let many = (0..sizes.files).map(many_name).collect();
        let acl = (0..sizes.files).map(acl_name).collect();
        let creates = (0..sizes.creates)
            .map(|i| sys::cstr(&format!("c{i:06}")))
            .collect();
        // Random 4 KiB-aligned offsets in the big file, the same every run.
        let pages = (sizes.big_mib as u64 * 256).max(1);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let offsets = (0..sizes.rand_reads)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % pages) * 4096
            })
            .collect();
        Ctx {
            sizes,
            tar,
            many,
            acl,
            creates,
            offsets,
            buf: vec![0; 1 << 20],
            dbuf: vec![0; 32 << 10],
            div: 1,
        }
    }

    /// Warms a kind's caches: every read workload once, untimed.
    pub fn prime(&mut self, root: &OwnedFd) -> Result<(), Fail> {
        self.stat(root)?;
        self.stat_other(root)?;
        self.stat_acl(root)?;
        self.open_read(root)?;
        self.readdir(root)?;
        self.walk(root)?;
        self.seq_read(root)?;
        Ok(())
    }

    /// Runs workload `w` once on the kind whose root is `root`; `work` is
    /// its empty writable directory, relative to `root`. `drop_caches` is
    /// called before a cold run.
    pub fn run(
        &mut self,
        w: W,
        root: &OwnedFd,
        work: &CStr,
        drop_caches: &mut dyn FnMut(),
    ) -> Vec<Sample> {
        if w.writes() {
            // What earlier samples (of any kind) left dirty is written
            // back now, not during this one: else a sample pays for its
            // predecessor's writeback, whichever kind that was.
            sys::sync();
        }
        match w {
            W::StatCold => {
                drop_caches();
                vec![self.stat(root)]
            }
            W::StatWarm => vec![self.mean_of(w, |c| c.stat(root))],
            W::StatOther => vec![self.mean_of(w, |c| c.stat_other(root))],
            W::StatAcl => vec![self.mean_of(w, |c| c.stat_acl(root))],
            W::OpenRead => vec![self.mean_of(w, |c| c.open_read(root))],
            W::Readdir => vec![self.mean_of(w, |c| c.readdir(root))],
            W::Walk => vec![self.mean_of(w, |c| c.walk(root))],
            W::SeqRead => vec![self.seq_read(root)],
            W::RandRead => vec![self.rand_read(root)],
            W::CreateUnlink => self.create_unlink(root, work),
            W::SeqWrite => vec![self.seq_write(root, work)],
            W::UntarRm => self.untar_rm(root, work),
            W::Fio => self.fio(root, work),
            W::Dbench => vec![self.dbench(root, work)],
        }
    }

    /// The mean time of [`W::passes`] passes of `one` (one pass for a FUSE
    /// kind).
    fn mean_of(&mut self, w: W, mut one: impl FnMut(&mut Self) -> Sample) -> Sample {
        let n = if self.div > 1 { 1 } else { w.passes() };
        let mut total = 0.0;
        for _ in 0..n {
            total += one(self)?;
        }
        Ok(total / n as f64)
    }

    /// Runs `program` with `args` in a fresh subdirectory of `work` (its
    /// path through /proc/self/fd, which the child resolves with the same
    /// descriptors); its standard output. The subdirectory is removed.
    fn run_in(
        &mut self,
        root: &OwnedFd,
        work: &CStr,
        program: &'static str,
        args: &[String],
    ) -> Result<String, Fail> {
        let (wd, d) = self.scratch_dir(root, work, c"prog")?;
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(format!("/proc/self/fd/{}", d.as_raw_fd()))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        self.cleanup(&wd, d, c"prog");
        let fail = |errno| Fail { errno, op: program };
        let out = out.map_err(|e| fail(Errno(e.raw_os_error().unwrap_or(libc::EIO))))?;
        if !out.status.success() {
            return Err(fail(Errno(libc::EIO)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// fio's jobs in turn: each one's time is the job's size over the
    /// bandwidth it measured (fio's own clock, without its start-up and
    /// file layout; a FUSE kind moves 1/div of the bytes, at its own
    /// bandwidth).
    fn fio(&mut self, root: &OwnedFd, work: &CStr) -> Vec<Sample> {
        let mib = fio_mib(&self.sizes);
        let run_mib = part(mib, self.div);
        FIO_JOBS
            .iter()
            .map(|&(_, rw, bs)| {
                // As before every writing workload (see [`Ctx::run`]), and
                // the job before this one left its file dirty.
                sys::sync();
                let args: Vec<String> = [
                    "--name=bench",
                    "--directory=.",
                    "--ioengine=psync",
                    // Reads from the page cache, as the built-in random
                    // read: the stacking layer's cost, not the disk's.
                    "--invalidate=0",
                    "--output-format=terse",
                    "--terse-version=3",
                ]
                .iter()
                .map(|a| a.to_string())
                .chain([
                    format!("--rw={rw}"),
                    format!("--bs={bs}"),
                    format!("--size={run_mib}m"),
                ])
                .collect();
                let out = self.run_in(root, work, "fio", &args)?;
                // Terse v3: read KiB and KiB/s are fields 6 and 7, write
                // KiB and KiB/s fields 47 and 48 (1-based).
                let f: Vec<&str> = out.lines().last().unwrap_or("").split(';').collect();
                let num = |i: usize| f.get(i - 1).and_then(|x| x.parse::<f64>().ok());
                let (kib, bw) = if rw.contains("read") {
                    (6, 7)
                } else {
                    (47, 48)
                };
                match (num(kib), num(bw)) {
                    (Some(k), Some(b)) if k > 0.0 && b > 0.0 => Ok((mib << 10) as f64 / b),
                    _ => Err(Fail {
                        errno: Errno(libc::EIO),
                        op: "fio output",
                    }),
                }
            })
            .collect()
    }

    /// dbench's default load, one client: seconds per MB of its reported
    /// throughput.
    fn dbench(&mut self, root: &OwnedFd, work: &CStr) -> Sample {
        let args = vec![
            "-D".to_owned(),
            ".".to_owned(),
            "-t".to_owned(),
            DBENCH_SECS.to_string(),
            "-c".to_owned(),
            "/usr/share/dbench/client.txt".to_owned(),
            "1".to_owned(),
        ];
        let out = self.run_in(root, work, "dbench", &args)?;
        // "Throughput 123.45 MB/sec  1 clients  1 procs  max_latency=..."
        out.lines()
            .filter_map(|l| l.trim().strip_prefix("Throughput "))
            .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .next_back()
            .filter(|&mb| mb > 0.0)
            .map(|mb| 1.0 / mb)
            .ok_or(Fail {
                errno: Errno(libc::EIO),
                op: "dbench output",
            })
    }

    fn stat(&self, root: &OwnedFd) -> Sample {
        self.stat_names(root, &self.many)
    }

    fn stat_names(&self, root: &OwnedFd, names: &[CString]) -> Sample {
        let k = part(names.len(), self.div);
        let t = Instant::now();
        for n in &names[..k] {
            sys::fstatat(root.as_raw_fd(), n, libc::AT_SYMLINK_NOFOLLOW).op("stat")?;
        }
        Ok(self.scaled(t))
    }

    /// [`Ctx::stat`] as a user of the container who owns nothing in the
    /// image and has no capability over it: each directory of the walk is
    /// checked by its group and other bits, and for an ACL, as it is for
    /// most callers in a container (the other rows run as its root, the
    /// owner through the shifting kinds).
    fn stat_other(&self, root: &OwnedFd) -> Sample {
        let _other = sys::FsIds::enter(OTHER_ID).op("setfsuid")?;
        self.stat(root)
    }

    /// [`Ctx::stat_other`] of the same files through `acl/`, a directory
    /// whose access ACL is what lets the user in (its other bits do not):
    /// the walk checks the ACL at every file.
    fn stat_acl(&self, root: &OwnedFd) -> Sample {
        let _other = sys::FsIds::enter(OTHER_ID).op("setfsuid")?;
        self.stat_names(root, &self.acl)
    }

    fn open_read(&mut self, root: &OwnedFd) -> Sample {
        let k = part(self.many.len(), self.div);
        let t = Instant::now();
        for n in &self.many[..k] {
            let fd = sys::openat(root.as_raw_fd(), n, libc::O_RDONLY, 0).op("open")?;
            sys::read(&fd, &mut self.buf[..4096]).op("read")?;
            sys::close(fd).op("close")?;
        }
        Ok(self.scaled(t))
    }

    fn readdir(&mut self, root: &OwnedFd) -> Sample {
        let t = Instant::now();
        let fd = sys::open_dir(root.as_raw_fd(), c"many").op("open dir")?;
        let n = sys::read_dir(&fd, &mut self.dbuf, |_, _| Ok(())).op("getdents64")?;
        drop(fd);
        let dt = t.elapsed().as_secs_f64();
        if n != self.sizes.files {
            return Err(Fail {
                errno: Errno(libc::EIO),
                op: "readdir count",
            });
        }
        Ok(dt)
    }

    fn walk(&mut self, root: &OwnedFd) -> Sample {
        let t = Instant::now();
        let n = walk_tree(root, &mut self.dbuf)?;
        let dt = t.elapsed().as_secs_f64();
        if n != self.tar.len() {
            return Err(Fail {
                errno: Errno(libc::EIO),
                op: "walk count",
            });
        }
        Ok(dt)
    }

    fn seq_read(&mut self, root: &OwnedFd) -> Sample {
        let t = Instant::now();
        let fd = sys::openat(root.as_raw_fd(), c"big", libc::O_RDONLY, 0).op("open")?;
        let want = part(self.sizes.big_mib, self.div) << 20;
        let mut total = 0;
        while total < want {
            let n = sys::read(&fd, &mut self.buf).op("read")?;
            if n == 0 {
                break;
            }
            total += n;
        }
        sys::close(fd).op("close")?;
        let dt = self.scaled(t);
        if total != want {
            return Err(Fail {
                errno: Errno(libc::EIO),
                op: "short read",
            });
        }
        Ok(dt)
    }

    fn rand_read(&mut self, root: &OwnedFd) -> Sample {
        let t = Instant::now();
        let fd = sys::openat(root.as_raw_fd(), c"big", libc::O_RDONLY, 0).op("open")?;
        let k = part(self.offsets.len(), self.div);
        for &off in &self.offsets[..k] {
            if sys::pread(&fd, &mut self.buf[..4096], off).op("pread")? != 4096 {
                return Err(Fail {
                    errno: Errno(libc::EIO),
                    op: "short pread",
                });
            }
        }
        sys::close(fd).op("close")?;
        Ok(self.scaled(t))
    }

    /// A fresh subdirectory `name` of `work`; on failure, what is left of
    /// it is removed.
    fn scratch_dir(
        &mut self,
        root: &OwnedFd,
        work: &CStr,
        name: &CStr,
    ) -> Result<(OwnedFd, OwnedFd), Fail> {
        let wd = sys::open_dir(root.as_raw_fd(), work).op("open work dir")?;
        sys::mkdirat(wd.as_raw_fd(), name, 0o755).op("mkdir")?;
        let d = sys::open_dir(wd.as_raw_fd(), name).op("open dir")?;
        Ok((wd, d))
    }

    fn cleanup(&mut self, wd: &OwnedFd, d: OwnedFd, name: &CStr) {
        let _ = tarball::remove_contents(&d, &mut self.dbuf);
        drop(d);
        let _ = sys::unlinkat(wd.as_raw_fd(), name, libc::AT_REMOVEDIR);
    }

    fn create_unlink(&mut self, root: &OwnedFd, work: &CStr) -> Vec<Sample> {
        let (wd, d) = match self.scratch_dir(root, work, c"cu") {
            Ok(x) => x,
            Err(e) => return vec![Err(e.clone()), Err(e)],
        };
        let data = [b'x'; 100];
        let k = part(self.creates.len(), self.div);
        let t = Instant::now();
        let created: Sample = (|| {
            for n in &self.creates[..k] {
                let fd = sys::openat(
                    d.as_raw_fd(),
                    n,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o644,
                )
                .op("create")?;
                sys::write_all(&fd, &data).op("write")?;
                sys::close(fd).op("close")?;
            }
            Ok(self.scaled(t))
        })();
        let unlinked = match &created {
            Ok(_) => {
                let t = Instant::now();
                (|| -> Sample {
                    for n in &self.creates[..k] {
                        sys::unlinkat(d.as_raw_fd(), n, 0).op("unlink")?;
                    }
                    Ok(self.scaled(t))
                })()
            }
            Err(e) => Err(e.clone()),
        };
        self.cleanup(&wd, d, c"cu");
        vec![created, unlinked]
    }

    fn seq_write(&mut self, root: &OwnedFd, work: &CStr) -> Sample {
        let wd = sys::open_dir(root.as_raw_fd(), work).op("open work dir")?;
        self.buf.fill(b'w');
        let t = Instant::now();
        let r = (|| -> Sample {
            let fd = sys::openat(
                wd.as_raw_fd(),
                c"seq",
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o644,
            )
            .op("create")?;
            for _ in 0..part(self.sizes.big_mib, self.div) {
                sys::write_all(&fd, &self.buf).op("write")?;
            }
            sys::close(fd).op("close")?;
            Ok(self.scaled(t))
        })();
        let _ = sys::unlinkat(wd.as_raw_fd(), c"seq", 0);
        r
    }

    fn untar_rm(&mut self, root: &OwnedFd, work: &CStr) -> Vec<Sample> {
        let (wd, d) = match self.scratch_dir(root, work, c"untar") {
            Ok(x) => x,
            Err(e) => return vec![Err(e.clone()), Err(e)],
        };
        let t = Instant::now();
        let unpacked = tarball::unpack(&self.tar, &d)
            .op("untar")
            .map(|_| t.elapsed().as_secs_f64());
        let removed = match &unpacked {
            Ok(_) => {
                let t = Instant::now();
                tarball::remove_contents(&d, &mut self.dbuf)
                    .op("rm -r")
                    .map(|_| t.elapsed().as_secs_f64())
            }
            Err(e) => Err(e.clone()),
        };
        self.cleanup(&wd, d, c"untar");
        vec![unpacked, removed]
    }
}

/// Stats every file of `mem/` below `root` (the memory figures).
pub fn stat_mem(root: &OwnedFd, files: usize) -> Result<(), Fail> {
    for i in 0..files {
        let n = sys::cstr(&mem_name(i));
        sys::fstatat(root.as_raw_fd(), &n, libc::AT_SYMLINK_NOFOLLOW).op("stat")?;
    }
    Ok(())
}

pub fn mem_name(i: usize) -> String {
    format!("mem/d{:03}/f{:04}", i / 1000, i % 1000)
}
