//! POSIX conformance with pjdfstest (crates.io `pjdfstest`, the Rust
//! rewrite, installed by tools/setup), four configurations:
//!
//! - `raw-ext4`, `raw-tmpfs`: host root runs it on ext4 (the scratch loop
//!   mount) and on a fresh tmpfs: the baseline;
//! - `shifted-ext4`, `shifted-tmpfs`: root of a real container
//!   (0:100000:65536) runs it on a shifting mount of a marked directory on
//!   the same filesystems.
//!
//! Every test that passes on a raw filesystem must pass on its shifted
//! mount, except those listed in tools/pjdfstest/expected-differences.txt
//! with the reason; a listed test that passes makes the suite fail too, so
//! that the list stays true. A test that passed raw and failed shifted runs
//! once more before it counts (timestamp tests nap 50 ms, which a loaded
//! TCG guest sometimes misses). Each run prints its counts on `info` lines.
//!
//! pjdfstest switches to two unprivileged users it looks up by name
//! (tools/pjdfstest/pjdfstest.toml): every run bind-mounts copies of
//! /etc/passwd and /etc/group with `pjdtests` added, in a mount namespace
//! of its own, where it also mounts the tmpfs that the EXDEV tests use as
//! their second filesystem.

use crate::{
    container, ensure,
    fixture::{copy_in, find_tool, load, scratch_ext4, unload, Tree},
    harness::{Context, Outcome},
    reliability as rel, tests, Env,
};
use nix::{
    mount::{mount, MsFlags},
    sched::{unshare, CloneFlags},
    sys::wait::{waitpid, WaitStatus},
    unistd::{fork, ForkResult},
};
use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    raw_tmpfs,
    shifted_tmpfs,
    raw_ext4,
    shifted_ext4,
    link_limit_is_the_real_filesystems,
    host_unmarks,
    unload,
];

/// Tests that only the long run (`SHIFTFS_STRESS=long`) includes: 65,000
/// hard links take ten minutes on ext4 under TCG with KASAN, each way.
const LONG_ONLY: &[&str] = &["link::link_count_max"];

/// The second dummy user pjdfstest switches to (the first is nobody).
const PJD_USER: &str = "pjdtests:x:1001:1001:pjdfstest:/:/usr/sbin/nologin";
const PJD_GROUP: &str = "pjdtests:x:1001:";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Dirs {
    /// pjdfstest, its configuration, passwd and group: root's, world-readable.
    bin: PathBuf,
    /// Where runs leave their output: the container root's.
    out: PathBuf,
    /// Mount point of the EXDEV tests' second filesystem.
    second: PathBuf,
    /// Mount point of the raw tmpfs run's own tmpfs.
    raw_tmpfs: PathBuf,
}

fn dirs(env: &Env) -> Dirs {
    // Names as long as the shifting mounts' `pjd-target`, so that the
    // tests' socket paths (at most 107 bytes) are as long raw and shifted.
    let d = |n: &str| env.scratch.join(format!("pjd-{n}"));
    Dirs {
        bin: d("bin"),
        out: d("out"),
        second: d("second"),
        raw_tmpfs: d("rawtmp"),
    }
}

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let d = dirs(env);
    for p in [&d.bin, &d.out, &d.second, &d.raw_tmpfs] {
        std::fs::create_dir_all(p).ctx(&format!("mkdir {}", p.display()))?;
    }
    std::os::unix::fs::chown(&d.out, Some(container::ROOT), Some(container::ROOT))
        .ctx("chown out")?;
    copy_in(&find_tool("pjdfstest")?, &d.bin, 0o755)?;
    copy_in(
        &repo().join("tools/pjdfstest/pjdfstest.toml"),
        &d.bin,
        0o644,
    )?;
    for (f, extra) in [("passwd", PJD_USER), ("group", PJD_GROUP)] {
        let mut s = std::fs::read_to_string(format!("/etc/{f}")).ctx(&format!("read /etc/{f}"))?;
        s.push_str(extra);
        s.push('\n');
        let p = d.bin.join(f);
        std::fs::write(&p, s).ctx(&format!("write {f}"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).ctx("chmod")?;
    }
    for t in [Tree::on_ext4(env, "pjd")?, Tree::new(env, "pjd")] {
        t.create()?;
        t.mark()?;
    }
    Ok(())
}

fn host_unmarks(env: &Env) -> Outcome {
    Tree::on_ext4(env, "pjd")?.unmark()?;
    Tree::new(env, "pjd").unmark()
}

/// In the calling process's own mount namespace: puts the copies of passwd
/// and group in place, mounts the second filesystem, runs pjdfstest on
/// `path` (the tests named in `only`, if any) and writes its output to
/// `out`.
fn run_pjdfstest(d: &Dirs, path: &Path, only: &[String], out: &Path) -> Outcome {
    for f in ["passwd", "group"] {
        let etc = format!("/etc/{f}");
        mount(
            Some(&d.bin.join(f)),
            etc.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(&format!("bind {etc}"))?;
    }
    mount(
        Some("conformance-second"),
        &d.second,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .ctx("mount the second tmpfs")?;
    let res = Command::new(d.bin.join("pjdfstest"))
        .arg("-c")
        .arg(d.bin.join("pjdfstest.toml"))
        .arg("-p")
        .arg(path)
        .arg("-s")
        .arg(&d.second)
        .args(if only.is_empty() {
            &[][..]
        } else {
            &["-e"][..]
        })
        .args(only)
        .env("NO_COLOR", "1")
        .current_dir(path)
        .output()
        .ctx("run pjdfstest")?;
    let mut text = res.stdout;
    text.extend_from_slice(b"\n--- stderr ---\n");
    text.extend_from_slice(&res.stderr);
    std::fs::write(out, text).ctx(&format!("write {}", out.display()))
}

/// Runs `f` in a child process with a mount namespace of its own (host
/// root's privileges otherwise).
fn in_own_mount_ns(f: impl FnOnce() -> Outcome) -> Outcome {
    // SAFETY: the test binary is single-threaded; the child runs `f` and
    // exits.
    match unsafe { fork() }.ctx("fork")? {
        ForkResult::Child => {
            let res = unshare(CloneFlags::CLONE_NEWNS)
                .ctx("unshare(CLONE_NEWNS)")
                .and_then(|()| {
                    mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .ctx("make / private")
                })
                .and_then(|()| f());
            if let Err(e) = &res {
                println!("info   conformance child: {e}");
            }
            std::process::exit(i32::from(res.is_err()));
        }
        ForkResult::Parent { child } => match waitpid(child, None).ctx("waitpid")? {
            WaitStatus::Exited(_, 0) => Ok(()),
            other => Err(format!("run in its own mount namespace: {other:?}")),
        },
    }
}

/// One pjdfstest run: each test's status ("ok", "FAILED", "skipped", ...)
/// and, for failures, the first line of the reason.
#[derive(Default)]
struct Run {
    status: BTreeMap<String, String>,
    reason: BTreeMap<String, String>,
}

impl Run {
    fn count(&self, st: &str) -> usize {
        self.status.values().filter(|s| *s == st).count()
    }

    fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped ({} tests)",
            self.count("ok"),
            self.status.len() - self.count("ok") - self.count("skipped"),
            self.count("skipped"),
            self.status.len()
        )
    }
}

const STATUSES: &[&str] = &[
    "ok",
    "FAILED",
    "skipped",
    "PASSED UNEXPECTEDLY",
    "failed as expected",
];

/// Parses pjdfstest's output: a line `NAME   STATUS` per test, indented
/// lines after it with reasons, and a closing `Summary: ...` line.
fn parse(text: &str) -> Result<Run, String> {
    let mut run = Run::default();
    let mut last: Option<String> = None;
    let mut total = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Summary:") {
            total = rest
                .rsplit(',')
                .next()
                .and_then(|t| t.trim().strip_suffix(" total"))
                .and_then(|n| n.parse::<usize>().ok());
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(n) = &last {
                if run.status.get(n).map(String::as_str) == Some("FAILED") {
                    run.reason
                        .entry(n.clone())
                        .or_insert_with(|| line.trim().to_owned());
                }
            }
            continue;
        }
        let Some((name, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let st = rest.trim();
        if STATUSES.contains(&st) {
            run.status.insert(name.to_owned(), st.to_owned());
            last = Some(name.to_owned());
        }
    }
    match total {
        Some(0) => Err("pjdfstest ran no test".into()),
        Some(n) if n == run.status.len() => Ok(run),
        Some(n) => Err(format!(
            "pjdfstest reported {n} tests, the output has {}",
            run.status.len()
        )),
        None => Err("pjdfstest did not finish: no Summary line".into()),
    }
}

static RUNS: Mutex<BTreeMap<&'static str, Run>> = Mutex::new(BTreeMap::new());

fn record(config: &'static str, out: &Path) -> Outcome {
    let text = std::fs::read_to_string(out).ctx(&format!("read {}", out.display()))?;
    let run = parse(&text).map_err(|e| {
        let tail: Vec<_> = text.lines().rev().take(15).collect();
        format!(
            "{config}: {e}; output ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })?;
    println!("info   pjdfstest {config}: {}", run.summary());
    for (n, st) in run
        .status
        .iter()
        .filter(|(_, s)| *s != "ok" && *s != "skipped")
    {
        let why = run.reason.get(n).map_or("", String::as_str);
        println!("info   pjdfstest {config}: {st} {n}: {why}");
    }
    RUNS.lock().unwrap().insert(config, run);
    Ok(())
}

/// The tests to run on ext4: all of them in a long run; in a short one,
/// those that the raw tmpfs run listed, but the long-only ones.
fn ext4_selection() -> Vec<String> {
    if rel::long() {
        return Vec::new();
    }
    let runs = RUNS.lock().unwrap();
    runs.get("raw-tmpfs").map_or_else(Vec::new, |r| {
        r.status
            .keys()
            .filter(|n| !LONG_ONLY.contains(&n.as_str()))
            // `-e` matches the full names, which the output shortens.
            .map(|n| format!("pjdfstest::tests::{n}"))
            .collect()
    })
}

fn raw_ext4(env: &Env) -> Outcome {
    let d = dirs(env);
    let path = scratch_ext4(env)?.join("pjd-rawext");
    std::fs::create_dir_all(&path).ctx("mkdir")?;
    let out = d.out.join("raw-ext4.txt");
    let only = ext4_selection();
    in_own_mount_ns(|| run_pjdfstest(&d, &path, &only, &out))?;
    record("raw-ext4", &out)
}

fn raw_tmpfs(env: &Env) -> Outcome {
    let d = dirs(env);
    let out = d.out.join("raw-tmpfs.txt");
    in_own_mount_ns(|| {
        mount(
            Some("conformance-raw"),
            &d.raw_tmpfs,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .ctx("mount tmpfs")?;
        run_pjdfstest(&d, &d.raw_tmpfs, &[], &out)
    })?;
    record("raw-tmpfs", &out)
}

fn shifted(env: &Env, tree: Tree, fs: &'static str, config: &'static str) -> Outcome {
    let d = dirs(env);
    let out = d.out.join(format!("{config}.txt"));
    let _ = std::fs::remove_file(&out);
    let only = if fs == "ext4" {
        ext4_selection()
    } else {
        Vec::new()
    };
    let res = tree.in_shifted(|t| run_pjdfstest(&d, t, &only, &out));
    // The output tells more than a failed run's exit.
    if let Err(e) = res {
        if !out.exists() {
            return Err(e);
        }
    }
    record(config, &out)?;
    // Timestamp tests nap 50 ms between changes, which a loaded TCG guest
    // sometimes does not see on the coarse clock: what passed raw and not
    // shifted, and is not an expected difference, runs once more.
    let again = suspects(fs, config)?;
    if !again.is_empty() {
        let out2 = d.out.join(format!("{config}-again.txt"));
        let only: Vec<_> = again
            .iter()
            .map(|n| format!("pjdfstest::tests::{n}"))
            .collect();
        let res = tree.in_shifted(|t| run_pjdfstest(&d, t, &only, &out2));
        if let Err(e) = res {
            if !out2.exists() {
                return Err(e);
            }
        }
        let text = std::fs::read_to_string(&out2).ctx("read the second run")?;
        let second = parse(&text)?;
        let mut runs = RUNS.lock().unwrap();
        let first = runs.get_mut(config).ok_or("no shifted run")?;
        for (n, st) in second.status {
            if st == "ok" {
                println!("info   pjdfstest {config}: {n} passed when run again");
                first.status.insert(n, st);
            }
        }
    }
    compare(fs, config)
}

/// The tests that passed raw but not shifted and are not listed as
/// expected differences.
fn suspects(fs: &str, config: &str) -> Result<Vec<String>, String> {
    let runs = RUNS.lock().unwrap();
    let (Some(raw), Some(shifted)) = (runs.get(format!("raw-{fs}").as_str()), runs.get(config))
    else {
        return Ok(Vec::new());
    };
    let expected = expected_differences(fs)?;
    Ok(raw
        .status
        .iter()
        .filter(|(n, st)| {
            *st == "ok"
                && shifted.status.get(*n).map(String::as_str) != Some("ok")
                && !expected.iter().any(|(p, _)| matches(p, n))
        })
        .map(|(n, _)| n.clone())
        .collect())
}

fn shifted_ext4(env: &Env) -> Outcome {
    shifted(env, Tree::on_ext4(env, "pjd")?, "ext4", "shifted-ext4")
}

/// What pjdfstest's `link::link_count_max` would check, which it skips on
/// a shifting mount (see tools/pjdfstest/expected-differences.txt): a file
/// can be linked up to the real filesystem's limit (pathconf on the real
/// directory, 65,000 on ext4) through the mount, and one more is EMLINK.
/// Long run only, for the time the links take.
fn link_limit_is_the_real_filesystems(env: &Env) -> Outcome {
    if !rel::long() {
        rel::info("conformance: link limit: long run only (SHIFTFS_STRESS=long)");
        return Ok(());
    }
    let tree = Tree::on_ext4(env, "pjd")?;
    let max = nix::unistd::pathconf(&tree.real, nix::unistd::PathconfVar::LINK_MAX)
        .ctx("pathconf")?
        .ok_or("no LINK_MAX on the real ext4")?;
    ensure!(max == 65_000, "ext4's LINK_MAX is {max}");
    let dir = tree.real.join("links");
    std::fs::create_dir(&dir).ctx("mkdir")?;
    std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).ctx("chown")?;
    let res = tree.in_shifted(|t| {
        crate::fixture::become_id(1000)?;
        let d = t.join("links");
        std::fs::write(d.join("f"), b"linked").ctx("create")?;
        for i in 1..max {
            rustix::fs::link(d.join("f"), d.join(format!("l{i}")))
                .ctx(&format!("link {i} of {max}"))?;
        }
        let st = rustix::fs::stat(d.join("f")).ctx("stat")?;
        ensure!(
            st.st_nlink as i64 == max,
            "nlink {} through the mount",
            st.st_nlink
        );
        ensure!(
            rustix::fs::link(d.join("f"), d.join("over")).err() == Some(rustix::io::Errno::MLINK),
            "link number {} is not EMLINK",
            max + 1
        );
        Ok(())
    });
    let nlink = std::fs::metadata(dir.join("f")).map(|m| std::os::unix::fs::MetadataExt::nlink(&m));
    std::fs::remove_dir_all(&dir).ctx("remove the links")?;
    res?;
    ensure!(
        nlink.as_ref().ok() == Some(&(max as u64)),
        "nlink on disk: {nlink:?}"
    );
    rel::info(&format!(
        "conformance: {max} links through the mount, then EMLINK"
    ));
    Ok(())
}

fn shifted_tmpfs(env: &Env) -> Outcome {
    shifted(env, Tree::new(env, "pjd"), "tmpfs", "shifted-tmpfs")
}

/// Whether a test name matches an expected difference's pattern, where `*`
/// stands for any characters.
fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<_> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// tools/pjdfstest/expected-differences.txt: `TEST FS REASON...` lines,
/// TEST a name or a pattern with `*`, FS `ext4`, `tmpfs` or `all`.
fn expected_differences(fs: &str) -> Result<Vec<(String, String)>, String> {
    let p = repo().join("tools/pjdfstest/expected-differences.txt");
    let text = std::fs::read_to_string(&p).ctx(&format!("read {}", p.display()))?;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(name), Some(which)) = (f.next(), f.next()) else {
            return Err(format!("{}: bad line {line:?}", p.display()));
        };
        let why = f.collect::<Vec<_>>().join(" ");
        ensure!(!why.is_empty(), "{}: no reason in {line:?}", p.display());
        if which == "all" || which == fs {
            out.push((name.to_owned(), why));
        }
    }
    Ok(out)
}

/// Every test that passed on the raw filesystem passes on the shifting
/// mount, but the expected differences, which do not pass.
fn compare(fs: &str, config: &str) -> Outcome {
    let runs = RUNS.lock().unwrap();
    let raw = runs
        .get(format!("raw-{fs}").as_str())
        .ok_or_else(|| format!("no raw-{fs} baseline run"))?;
    let shifted = runs.get(config).ok_or("no shifted run")?;
    let expected = expected_differences(fs)?;
    let mut regressions = Vec::new();
    let mut stale = Vec::new();
    let mut differ = 0;
    for (name, st) in &raw.status {
        if st != "ok" {
            continue;
        }
        let got = shifted.status.get(name).map_or("missing", String::as_str);
        match (got == "ok", expected.iter().any(|(p, _)| matches(p, name))) {
            (true, true) => stale.push(name.clone()),
            (false, true) => differ += 1,
            (false, false) => regressions.push(format!(
                "{name}: {got} ({})",
                shifted.reason.get(name).map_or("", String::as_str)
            )),
            (true, false) => {}
        }
    }
    println!(
        "info   pjdfstest {config} against raw-{fs}: {} passed on both, {differ} expected \
         differences, {} regressions, {} stale expected differences",
        raw.count("ok") - differ - regressions.len(),
        regressions.len(),
        stale.len()
    );
    ensure!(
        regressions.is_empty() && stale.is_empty(),
        "passed on raw {fs}, not on the shifting mount: [{}]; listed as expected \
         differences but passed (remove them): [{}]",
        regressions.join("; "),
        stale.join(", ")
    );
    Ok(())
}
