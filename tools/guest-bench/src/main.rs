//! shiftfs benchmarks. Run as root inside the bench VM (tools/bench boots it
//! and runs tools/guest/bench, which runs this):
//!
//!   shiftfs-bench --lower tmpfs=DIR --lower ext4=DIR --mnt DIR --tar FILE
//!                 --out FILE.json [--reps N] [--files N] [--creates N]
//!                 [--big-mib N] [--rand-reads N] [--mem-files N]
//!                 [--kinds a,b] [--workloads a,b] [--mem-kinds a,b]
//!
//! The host part (this process, the VM's root) builds the image tree on
//! each lower filesystem and mounts every kind but shiftfs's shifting
//! mount. It then starts a container, a child in new user and mount
//! namespaces mapped 0:100000:65536, which mounts shiftfs and runs every
//! workload on every kind as the container's root, in interleaved rounds.
//! What needs the host's root (drop_caches, /proc/slabinfo) the container
//! asks of the host over a socket, which also carries the results back.
//! The host writes them as JSON to --out.

mod mounts;
mod scale;
mod tarball;
mod work;

use mounts::{Kind, Lower};
use shiftfs_sys as sys;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;
use sys::Errno;
use work::{Sizes, W};

struct Args {
    lowers: Vec<Lower>,
    tar: PathBuf,
    out: PathBuf,
    reps: usize,
    sizes: Sizes,
    kinds: Vec<Kind>,
    workloads: Vec<W>,
    mem_kinds: Vec<Kind>,
    /// (kind, workload) pairs to run again under `perf record`.
    profile: Vec<(Kind, W)>,
    /// Where perf writes (the host's shared directory).
    perf_dir: PathBuf,
    /// The FUSE kinds do 1/fuse_div of the operations (`Ctx::div`).
    fuse_div: usize,
    /// The tables at container scale (`scale`), unless --no-scale.
    scale: Option<scale::ScaleArgs>,
    /// Seconds of each parallel-walk measurement (0: none).
    walk_secs: f64,
}

fn usage(msg: &str) -> ! {
    eprintln!("shiftfs-bench: {msg}");
    eprintln!("usage: shiftfs-bench --lower NAME=DIR... --mnt DIR --tar FILE --out FILE [--reps N] [--files N] [--creates N] [--big-mib N] [--rand-reads N] [--mem-files N] [--kinds a,b] [--workloads a,b] [--mem-kinds a,b] [--fuse-div N] [--profile KIND:WORKLOAD,... --perf-dir DIR]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut lowers = Vec::new();
    let mut mnt = PathBuf::from("/tmp/bench-mnt");
    let mut tar = None;
    let mut out = None;
    let mut reps = 5;
    let mut sizes = Sizes {
        files: 20000,
        file_bytes: 512,
        creates: 10000,
        big_mib: 256,
        rand_reads: 20000,
        mem_files: 100000,
    };
    let mut kinds = mounts::ALL.to_vec();
    let mut workloads = work::ALL.to_vec();
    let mut mem_kinds = mounts::ALL.to_vec();
    let mut profile = Vec::new();
    let mut perf_dir = PathBuf::from("/tmp");
    let mut fuse_div = 1;
    let mut scale = Some(scale::ScaleArgs {
        prep_files: vec![1000, 10000, 100000],
        density: vec![1, 10, 100, 1000],
        readers: 10,
        pc_mib: 256,
    });
    let mut walk_secs = 5.0;
    let mut it = std::env::args().skip(1);
    let kind_list = |s: String| -> Vec<Kind> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(|x| Kind::from_name(x).unwrap_or_else(|| usage(&format!("no kind {x}"))))
            .collect()
    };
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        let num = |v: String| {
            v.parse::<usize>()
                .unwrap_or_else(|_| usage(&format!("not a number: {v}")))
        };
        let nums = |v: String| -> Vec<usize> {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(|x| num(x.to_owned()))
                .collect()
        };
        match a.as_str() {
            "--lower" => {
                let v = val();
                let (fs, dir) = v
                    .split_once('=')
                    .unwrap_or_else(|| usage("--lower NAME=DIR"));
                lowers.push((fs.to_owned(), PathBuf::from(dir)));
            }
            "--mnt" => mnt = val().into(),
            "--tar" => tar = Some(PathBuf::from(val())),
            "--out" => out = Some(PathBuf::from(val())),
            "--reps" => reps = num(val()),
            "--files" => sizes.files = num(val()),
            "--creates" => sizes.creates = num(val()),
            "--big-mib" => sizes.big_mib = num(val()),
            "--rand-reads" => sizes.rand_reads = num(val()),
            "--mem-files" => sizes.mem_files = num(val()),
            "--kinds" => kinds = kind_list(val()),
            "--mem-kinds" => mem_kinds = kind_list(val()),
            "--perf-dir" => perf_dir = val().into(),
            "--fuse-div" => fuse_div = num(val()).max(1),
            "--no-scale" => {
                scale = None;
                walk_secs = 0.0;
            }
            "--prep-files" | "--density" | "--pagecache-readers" | "--pagecache-mib" => {
                let v = val();
                if let Some(sc) = scale.as_mut() {
                    match a.as_str() {
                        "--prep-files" => sc.prep_files = nums(v),
                        "--density" => sc.density = nums(v),
                        "--pagecache-readers" => sc.readers = num(v).max(1),
                        _ => sc.pc_mib = num(v).max(1),
                    }
                }
            }
            "--walk-secs" => {
                let v = val();
                if scale.is_some() {
                    walk_secs = v
                        .parse()
                        .unwrap_or_else(|_| usage(&format!("not a number: {v}")));
                }
            }
            "--profile" => {
                for p in val().split(',').filter(|x| !x.is_empty()) {
                    let (k, w) = p
                        .split_once(':')
                        .unwrap_or_else(|| usage("--profile KIND:WORKLOAD"));
                    profile.push((
                        Kind::from_name(k).unwrap_or_else(|| usage(&format!("no kind {k}"))),
                        W::from_name(w).unwrap_or_else(|| usage(&format!("no workload {w}"))),
                    ));
                }
            }
            "--workloads" => {
                workloads = val()
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(|x| W::from_name(x).unwrap_or_else(|| usage(&format!("no workload {x}"))))
                    .collect()
            }
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    if lowers.is_empty() {
        usage("no --lower");
    }
    // Raw is the baseline of every ratio.
    if !kinds.contains(&Kind::Raw) {
        kinds.insert(0, Kind::Raw);
    }
    mem_kinds.retain(|k| kinds.contains(k));
    let lowers = lowers
        .into_iter()
        .map(|(fs, base)| Lower {
            mnt: mnt.join(&fs),
            fs,
            base,
        })
        .collect();
    Args {
        lowers,
        tar: tar.unwrap_or_else(|| usage("no --tar")),
        out: out.unwrap_or_else(|| usage("no --out")),
        reps,
        sizes,
        kinds,
        workloads,
        mem_kinds,
        profile,
        perf_dir,
        fuse_div,
        scale,
        walk_secs,
    }
}

fn log(msg: &str) {
    println!("bench: {msg}");
}

/// Builds the image tree on one lower filesystem, as the host's root: the
/// files belong to host 0, like an image unpacked by root.
fn populate(l: &Lower, a: &Args, tar: &[tarball::Entry]) -> Result<(), String> {
    let ctx = |what: &str, e: Errno| format!("{}: {what}: {e}", l.fs);
    let img = l.image();
    for d in ["many", "acl", "src", "work"] {
        std::fs::create_dir_all(img.join(d)).map_err(|e| format!("mkdir: {e}"))?;
    }
    let root = sys::open_path(&img, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| ctx("open img", e))?;
    let data = vec![b'r'; a.sizes.file_bytes];
    for i in 0..a.sizes.files {
        let fd = sys::openat(
            root.as_raw_fd(),
            &work::many_name(i),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        )
        .map_err(|e| ctx("create many/", e))?;
        sys::write_all(&fd, &data).map_err(|e| ctx("write many/", e))?;
        sys::linkat(root.as_raw_fd(), &work::many_name(i), &work::acl_name(i))
            .map_err(|e| ctx("link acl/", e))?;
    }
    sys::setxattr(
        &img.join("acl"),
        c"system.posix_acl_access",
        &work::acl_value(),
    )
    .map_err(|e| ctx("set ACL of acl/", e))?;
    let fd = sys::openat(
        root.as_raw_fd(),
        c"big",
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        0o644,
    )
    .map_err(|e| ctx("create big", e))?;
    let mut chunk = vec![0u8; 1 << 20];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    for _ in 0..a.sizes.big_mib {
        sys::write_all(&fd, &chunk).map_err(|e| ctx("write big", e))?;
    }
    drop(fd);
    let src = sys::open_dir(root.as_raw_fd(), c"src").map_err(|e| ctx("open src", e))?;
    tarball::unpack(tar, &src).map_err(|e| ctx("unpack src", e))?;
    for i in 0..a.sizes.mem_files {
        if i % 1000 == 0 {
            std::fs::create_dir_all(img.join(format!("mem/d{:03}", i / 1000)))
                .map_err(|e| format!("mkdir: {e}"))?;
        }
        sys::openat(
            root.as_raw_fd(),
            &sys::cstr(&work::mem_name(i)),
            libc::O_WRONLY | libc::O_CREAT,
            0o644,
        )
        .map_err(|e| ctx("create mem/", e))?;
    }
    for k in &a.kinds {
        let d = img.join(Lower::work_rel(*k));
        std::fs::create_dir_all(&d).map_err(|e| format!("mkdir: {e}"))?;
        if *k == Kind::Raw {
            // Raw does not shift: its writable directory belongs to the
            // container's root as the host sees it.
            sys::chown(&d, mounts::HOST_BASE, mounts::HOST_BASE).map_err(|e| ctx("chown", e))?;
        }
    }
    Ok(())
}

// The socket between container and host: messages are a tag byte, a
// 4-byte length and a payload.
fn send(fd: &OwnedFd, tag: u8, payload: &[u8]) {
    let mut m = vec![tag];
    m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    m.extend_from_slice(payload);
    sys::write_all(fd, &m).expect("socket write");
}

fn recv(fd: &OwnedFd) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 5];
    read_exact(fd, &mut h)?;
    let mut p = vec![0u8; u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize];
    read_exact(fd, &mut p)?;
    Some((h[0], p))
}

fn read_exact(fd: &OwnedFd, mut buf: &mut [u8]) -> Option<()> {
    while !buf.is_empty() {
        let n = sys::read(fd, buf).ok()?;
        if n == 0 {
            return None;
        }
        buf = &mut buf[n..];
    }
    Some(())
}

/// The host's side: does what the container asks until it hangs up.
fn serve(sock: &OwnedFd, perf_dir: &Path) -> Option<Vec<u8>> {
    let mut result = None;
    let mut perf: Option<std::process::Child> = None;
    while let Some((tag, payload)) = recv(sock) {
        match tag {
            b'P' => {
                // perf record of the whole system (cpu-clock: a software
                // event, which TCG has), call graphs through the kernel's
                // unwinder.
                let name = String::from_utf8_lossy(&payload).into_owned();
                match std::process::Command::new("perf")
                    .args([
                        "record",
                        "-q",
                        "-N",
                        "-a",
                        "-g",
                        "-e",
                        "cpu-clock",
                        "-c",
                        "4000000",
                        "-o",
                    ])
                    .env("HOME", "/tmp")
                    .arg(perf_dir.join(&name))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                {
                    Ok(c) => {
                        perf = Some(c);
                        std::thread::sleep(std::time::Duration::from_secs(2));
                    }
                    Err(e) => log(&format!("perf record: {e}")),
                }
                send(sock, b'k', b"");
            }
            b'Q' => {
                if let Some(mut c) = perf.take() {
                    // SAFETY: plain syscall on our child.
                    unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGINT) };
                    let _ = c.wait();
                }
                send(sock, b'k', b"");
            }
            b'D' => {
                sys::sync();
                let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
                // Dentries and inodes are freed after an RCU grace period:
                // let that pass before the caller measures.
                let ms = payload.first().copied().unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(u64::from(ms) * 10));
                send(sock, b'k', b"");
            }
            b'S' => {
                let slab = std::fs::read_to_string("/proc/slabinfo").unwrap_or_default();
                let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
                send(sock, b's', format!("{slab}\0{mem}").as_bytes());
            }
            b'R' => result = Some(payload),
            _ => log(&format!("unknown request {tag}")),
        }
    }
    result
}

/// Slab usage: bytes in active objects per cache, and the Slab: line of
/// /proc/meminfo in bytes.
struct Slab {
    caches: Vec<(String, i64)>,
    total: i64,
}

fn parse_slab(text: &str) -> Slab {
    let (slab, mem) = text.split_once('\0').unwrap_or((text, ""));
    let caches = slab
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("slabinfo"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let active: i64 = f.get(1)?.parse().ok()?;
            let size: i64 = f.get(3)?.parse().ok()?;
            Some((f[0].to_owned(), active * size))
        })
        .collect();
    let total = mem
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .unwrap_or(0)
        * 1024;
    Slab { caches, total }
}

struct Client<'a> {
    sock: &'a OwnedFd,
}

impl Client<'_> {
    /// Drops the page cache, dentries and inodes, then waits `settle_ms`
    /// (rounded to 10 ms, at most 2.5 s) for RCU to free them.
    fn drop_caches(&self, settle_ms: u32) {
        send(self.sock, b'D', &[(settle_ms / 10).min(255) as u8]);
        recv(self.sock).expect("host went away");
    }

    fn perf_start(&self, name: &str) {
        send(self.sock, b'P', name.as_bytes());
        recv(self.sock).expect("host went away");
    }

    fn perf_stop(&self) {
        send(self.sock, b'Q', b"");
        recv(self.sock).expect("host went away");
    }

    fn slab(&self) -> Slab {
        send(self.sock, b'S', b"");
        let (_, p) = recv(self.sock).expect("host went away");
        parse_slab(&String::from_utf8_lossy(&p))
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// One (filesystem, kind, row): its samples in seconds, or its failure.
struct Series {
    fs: String,
    kind: Kind,
    workload: W,
    row: String,
    what: String,
    /// The kind did 1/scale of the operations, its times are scaled up.
    scale: usize,
    times: Vec<f64>,
    error: Option<work::Fail>,
}

/// The container's side: every workload on every kind, in rounds.
fn container(
    a: &Args,
    tar: Vec<tarball::Entry>,
    sock: &OwnedFd,
    setup_failed: &[(String, Kind, String)],
) -> String {
    let client = Client { sock };
    let mut json = String::from("{\n");
    let mut broken: Vec<(String, Kind, String)> = setup_failed.to_vec();
    for l in &a.lowers {
        if a.kinds.contains(&Kind::Shiftfs)
            && !broken
                .iter()
                .any(|(f, k, _)| f == &l.fs && *k == Kind::Shiftfs)
        {
            if let Err(e) = mounts::container_setup(l) {
                broken.push((l.fs.clone(), Kind::Shiftfs, format!("shifting mount: {e}")));
            }
        }
    }
    // Every kind's root, and what it shows as the owner of the image.
    let mut roots: Vec<(String, Kind, OwnedFd)> = Vec::new();
    let _ = writeln!(json, "\"views\": [");
    let mut first = true;
    for l in &a.lowers {
        for &k in &a.kinds {
            let mut note = broken
                .iter()
                .find(|(f, kk, _)| f == &l.fs && *kk == k)
                .map(|x| x.2.clone());
            let (mut uid, mut gid) = (-1i64, -1i64);
            if note.is_none() {
                match sys::open_path(&l.root(k), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .and_then(|fd| sys::fstatat(fd.as_raw_fd(), c"many", 0).map(|st| (fd, st)))
                {
                    Ok((fd, st)) => {
                        uid = st.st_uid as i64;
                        gid = st.st_gid as i64;
                        roots.push((l.fs.clone(), k, fd));
                    }
                    Err(e) => note = Some(format!("open root: {e}")),
                }
            }
            if let Some(n) = &note {
                log(&format!("{} {}: unusable: {n}", l.fs, k.name()));
            } else {
                log(&format!(
                    "{} {}: image owned by {uid}:{gid} as the container sees it",
                    l.fs,
                    k.name()
                ));
            }
            let _ = write!(
                json,
                "{}  {{\"fs\": {}, \"kind\": {}, \"uid\": {uid}, \"gid\": {gid}, \"error\": {}}}",
                if first { "" } else { ",\n" },
                json_str(&l.fs),
                json_str(k.name()),
                note.map_or("null".into(), |n| json_str(&n))
            );
            first = false;
        }
    }
    let _ = writeln!(json, "\n],");

    let root = |fs: &str, k: Kind| {
        roots
            .iter()
            .find(|(f, kk, _)| f == fs && *kk == k)
            .map(|x| &x.2)
    };

    // Memory: kernel memory that caching mem_files inodes costs per kind.
    let t0 = Instant::now();
    let _ = writeln!(json, "\"memory\": [");
    let mut first = true;
    for l in &a.lowers {
        let Some(raw) = root(&l.fs, Kind::Raw) else {
            continue;
        };
        for &k in &a.mem_kinds {
            let Some(r) = root(&l.fs, k) else { continue };
            client.drop_caches(1000);
            client.drop_caches(1000);
            // The lower filesystem's own inodes and dentries are cached
            // first, so that the difference is the stacking layer's.
            let warm = if k == Kind::Raw {
                Ok(())
            } else {
                work::stat_mem(raw, a.sizes.mem_files)
            };
            let before = client.slab();
            let res = warm.and_then(|_| work::stat_mem(r, a.sizes.mem_files));
            let after = client.slab();
            let n = a.sizes.mem_files.max(1) as f64;
            let mut deltas: Vec<(String, i64)> = after
                .caches
                .iter()
                .map(|(name, b)| {
                    let old = before
                        .caches
                        .iter()
                        .find(|(n2, _)| n2 == name)
                        .map_or(0, |x| x.1);
                    (name.clone(), b - old)
                })
                .filter(|(_, d)| *d != 0)
                .collect();
            deltas.sort_by_key(|(_, d)| -d.abs());
            deltas.truncate(6);
            let obj: i64 = after.caches.iter().map(|x| x.1).sum::<i64>()
                - before.caches.iter().map(|x| x.1).sum::<i64>();
            let top: Vec<String> = deltas
                .iter()
                .map(|(name, d)| format!("[{}, {:.1}]", json_str(name), *d as f64 / n))
                .collect();
            let err = res
                .as_ref()
                .err()
                .map(|e| format!("{} ({})", e.errno, e.op));
            log(&format!(
                "memory {} {}: {:.0} B/file in slab objects, {:.0} B/file of slab pages{}",
                l.fs,
                k.name(),
                obj as f64 / n,
                (after.total - before.total) as f64 / n,
                err.as_ref().map_or(String::new(), |e| format!(" ({e})"))
            ));
            let _ = write!(json, "{}  {{\"fs\": {}, \"kind\": {}, \"files\": {}, \"objects_per_file\": {:.1}, \"slab_per_file\": {:.1}, \"top\": [{}], \"error\": {}}}",
                if first { "" } else { ",\n" }, json_str(&l.fs), json_str(k.name()), a.sizes.mem_files,
                obj as f64 / n, (after.total - before.total) as f64 / n, top.join(", "),
                err.map_or("null".into(), |e| json_str(&e)));
            first = false;
        }
    }
    let _ = writeln!(json, "\n],");
    log(&format!(
        "memory figures took {:.0} s",
        t0.elapsed().as_secs_f64()
    ));

    // The rounds.
    let tar_len = tar.len();
    let mut ctx = work::Ctx::new(a.sizes.clone(), tar);
    let div_of = |k: Kind| if k.is_fuse() { a.fuse_div } else { 1 };
    let mut series: Vec<Series> = Vec::new();
    for l in &a.lowers {
        for &w in &a.workloads {
            for (row, what) in w.rows(&a.sizes, tar_len) {
                for &k in &a.kinds {
                    if root(&l.fs, k).is_some() {
                        series.push(Series {
                            fs: l.fs.clone(),
                            kind: k,
                            workload: w,
                            row: row.clone(),
                            what: what.clone(),
                            scale: if w.scales() { div_of(k) } else { 1 },
                            times: vec![],
                            error: None,
                        });
                    }
                }
            }
        }
    }
    let mut warm: Vec<(String, Kind)> = Vec::new();
    let t0 = Instant::now();
    for round in 0..a.reps {
        for l in &a.lowers {
            for &w in &a.workloads {
                let mut order: Vec<Kind> = a.kinds.clone();
                let n = order.len();
                order.rotate_left(round % n);
                for k in order {
                    let Some(r) = root(&l.fs, k) else { continue };
                    let idx: Vec<usize> = (0..series.len())
                        .filter(|&i| {
                            series[i].fs == l.fs && series[i].kind == k && series[i].workload == w
                        })
                        .collect();
                    // A workload that failed on a kind is not tried again.
                    if idx.iter().any(|&i| series[i].error.is_some()) {
                        continue;
                    }
                    ctx.div = div_of(k);
                    if w.wants_warm() && !warm.iter().any(|(f, kk)| f == &l.fs && *kk == k) {
                        if let Err(e) = ctx.prime(r) {
                            log(&format!(
                                "{} {}: priming failed: {} ({})",
                                l.fs,
                                k.name(),
                                e.errno,
                                e.op
                            ));
                        }
                        warm.push((l.fs.clone(), k));
                    }
                    let work_dir = sys::cstr(&Lower::work_rel(k));
                    let mut dropped = false;
                    let samples = ctx.run(w, r, &work_dir, &mut || {
                        client.drop_caches(500);
                        dropped = true;
                    });
                    if dropped {
                        warm.clear();
                    }
                    for (&i, s) in idx.iter().zip(samples) {
                        let s_ = &mut series[i];
                        match s {
                            Ok(t) => {
                                s_.times.push(t);
                                log(&format!(
                                    "round {} {} {} {}: {:.4} s",
                                    round + 1,
                                    l.fs,
                                    s_.row,
                                    k.name(),
                                    t
                                ));
                            }
                            Err(e) => {
                                log(&format!(
                                    "round {} {} {} {}: n/a ({} in {})",
                                    round + 1,
                                    l.fs,
                                    s_.row,
                                    k.name(),
                                    e.errno,
                                    e.op
                                ));
                                s_.error = Some(e);
                            }
                        }
                    }
                }
            }
        }
        log(&format!(
            "round {} done after {:.0} s",
            round + 1,
            t0.elapsed().as_secs_f64()
        ));
    }

    // Profiles: the workload again, for 20 s at least, under perf.
    for &(k, w) in &a.profile {
        for l in &a.lowers {
            let Some(r) = root(&l.fs, k) else { continue };
            let work_dir = sys::cstr(&Lower::work_rel(k));
            ctx.div = div_of(k);
            if w.wants_warm() {
                let _ = ctx.prime(r);
            }
            let name = format!(
                "perf-{}-{}-{}.data",
                l.fs,
                k.name().replace('+', "-"),
                w.name()
            );
            client.perf_start(&name);
            let t = Instant::now();
            let mut failed = None;
            // At least 20 s of samples (cpu-clock every 4 ms).
            let mut n = 0;
            while n < a.reps || t.elapsed().as_secs() < 20 {
                n += 1;
                let samples = ctx.run(w, r, &work_dir, &mut || client.drop_caches(500));
                if let Some(Err(e)) = samples.into_iter().find(|s| s.is_err()) {
                    failed = Some(e);
                    break;
                }
            }
            client.perf_stop();
            log(&format!(
                "profiled {} {} {} in {:.1} s: {name}{}",
                l.fs,
                k.name(),
                w.name(),
                t.elapsed().as_secs_f64(),
                failed.map_or(String::new(), |e| format!(
                    " (failed: {} in {})",
                    e.errno, e.op
                ))
            ));
        }
    }

    // Parallel path walks: one worker, then one per CPU.
    if a.walk_secs > 0.0 {
        let walk_roots: Vec<(String, Kind, &OwnedFd)> = a
            .lowers
            .iter()
            .flat_map(|l| {
                [Kind::Raw, Kind::Idmapped, Kind::Overlay, Kind::Shiftfs]
                    .into_iter()
                    .filter_map(|k| root(&l.fs, k).map(|r| (l.fs.clone(), k, r)))
            })
            .collect();
        let _ = writeln!(
            json,
            "\"parallel\": {},",
            scale::parallel_walks(&walk_roots, a.walk_secs)
        );
    }

    let _ = writeln!(json, "\"series\": [");
    for (i, s) in series.iter().enumerate() {
        let times: Vec<String> = s.times.iter().map(|t| format!("{t:.6}")).collect();
        let _ = write!(json, "{}  {{\"fs\": {}, \"kind\": {}, \"workload\": {}, \"row\": {}, \"what\": {}, \"scale\": {}, \"times\": [{}], \"error\": {}, \"op\": {}}}",
            if i == 0 { "" } else { ",\n" }, json_str(&s.fs), json_str(s.kind.name()), json_str(s.workload.name()),
            json_str(&s.row), json_str(&s.what), s.scale, times.join(", "),
            s.error.as_ref().map_or("null".into(), |e| json_str(&e.errno.name())),
            s.error.as_ref().map_or("null".into(), |e| json_str(e.op)));
    }
    let _ = writeln!(json, "\n],");
    let _ = writeln!(
        json,
        "\"reps\": {}, \"seconds\": {:.1}",
        a.reps,
        t0.elapsed().as_secs_f64()
    );
    json.push('}');
    json
}

fn main() {
    let a = parse_args();
    sys::umask(0o022);
    let tar_data =
        std::fs::read(&a.tar).unwrap_or_else(|e| usage(&format!("{}: {e}", a.tar.display())));
    let tar = tarball::parse(&tar_data).unwrap_or_else(|e| usage(&e));
    drop(tar_data);
    log(&format!(
        "{} entries in {}; sizes {:?}",
        tar.len(),
        a.tar.display(),
        a.sizes
    ));

    let t = Instant::now();
    for l in &a.lowers {
        if let Err(e) = populate(l, &a, &tar) {
            log(&format!("populating {} failed: {e}", l.fs));
            std::process::exit(1);
        }
    }
    log(&format!("populated in {:.0} s", t.elapsed().as_secs_f64()));

    let userns = mounts::mapping_userns().unwrap_or_else(|e| {
        log(&format!("no mapping user namespace: {e}"));
        std::process::exit(1);
    });
    let mut setup_failed = Vec::new();
    for l in &a.lowers {
        for (k, e) in mounts::host_setup(l, &a.kinds, &userns) {
            log(&format!("{} {}: setup failed: {e}", l.fs, k.name()));
            setup_failed.push((l.fs.clone(), k, e));
        }
    }

    let (host_sock, cont_sock) = sys::socketpair().expect("socketpair");
    let (ready_r, ready_w) = sys::socketpair().expect("socketpair");
    // SAFETY: the benchmark is single-threaded.
    let pid = unsafe { sys::fork() }.expect("fork");
    if pid == 0 {
        drop((host_sock, ready_r));
        let r = sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS);
        let _ = sys::write_all(&ready_w, if r.is_ok() { b"u" } else { b"e" });
        let mut b = [0u8; 1];
        let _ = sys::read(&ready_w, &mut b);
        if let Err(e) = r
            .map_err(|e| format!("unshare: {e}"))
            .and_then(|_| sys::become_root())
        {
            log(&format!("container: {e}"));
            std::process::exit(1);
        }
        // Mounts made in the container stay in it.
        if let Err(e) = sys::make_mounts_private() {
            log(&format!("container: make / private: {e}"));
        }
        let json = container(&a, tar, &cont_sock, &setup_failed);
        send(&cont_sock, b'R', json.as_bytes());
        std::process::exit(0);
    }
    drop((cont_sock, ready_w));
    let mut b = [0u8; 1];
    let _ = sys::read(&ready_r, &mut b);
    if b[0] == b'u' {
        sys::write_id_maps(pid, mounts::MAP).expect("id maps");
    }
    let _ = sys::write_all(&ready_r, b"g");
    let result = serve(&host_sock, &a.perf_dir);
    let status = sys::waitpid(pid).unwrap_or(-1);
    // The container's results, and the tables at scale after them.
    let ok = result.is_some_and(|r| {
        let mut json = String::from_utf8_lossy(&r).into_owned();
        if let Some(sc) = &a.scale {
            let scale = scale::measure(sc, &a.lowers, &userns);
            if json.ends_with('}') {
                json.pop();
                json.push_str(&format!(",\n\"scale\": {scale}\n}}"));
            }
        }
        std::fs::write(&a.out, json)
            .map_err(|e| log(&format!("writing {}: {e}", a.out.display())))
            .is_ok()
    });
    for l in &a.lowers {
        mounts::host_teardown(l);
    }
    if !ok || status != 0 {
        log(&format!(
            "container failed (status {status}); results written: {ok}"
        ));
        std::process::exit(1);
    }
    log(&format!("results in {}", a.out.display()));
}
