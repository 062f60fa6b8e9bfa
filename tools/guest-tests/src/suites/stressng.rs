//! Debian's stress-ng: its filesystem stressors (and the file ones of
//! other classes) on the VM's two vCPUs, run by root
//! of a container on a shifting mount and, as the control, on a directory
//! of the container's own on the same filesystem, while the host renames,
//! unlinks and rewrites files beside them on the real filesystem and drops
//! the caches. A stressor may fail or be skipped through shiftfs only if
//! it does the same on the control; no splat (kernel_log, vm-run).
//!
//! Short in CI: fourteen stressors at a time, one instance each, small
//! working sets, 5 s per group and side; `SHIFTFS_STRESS=long`: one after the other, two instances each,
//! 60 s per stressor and side (`SHIFTFS_STRESSNG_SECS` overrides).

use crate::{
    container, ensure,
    fixture::{load, unload},
    harness::{Context, Outcome},
    reliability::{self as rel, Rng},
    sys::FS_NAME,
    tests, Env,
};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub const TESTS: &[crate::harness::Test] = tests![load, stressors_agree_with_the_control, unload];

/// The list, then the other file stressors stress-ng 0.15 has that
/// an unprivileged container can run.
const STRESSORS: &[&str] = &[
    "dentry",
    "dir",
    "dirdeep",
    "link",
    "symlink",
    "rename",
    "xattr",
    "flock",
    "lockf",
    "fcntl",
    "fallocate",
    "filename",
    "open",
    "mmap",
    "io",
    "inotify",
    "chown",
    "chmod",
    "utime",
    "getdent",
    "seek",
    "sendfile",
    "splice",
    "copy-file",
    "access",
    "chdir",
    "dirmany",
    "dnotify",
    "fiemap",
    "file-ioctl",
    "fpunch",
    "fsize",
    "fstat",
    "hdd",
    "iomix",
    "lease",
    "locka",
    "lockofd",
    "mknod",
    "sync-file",
    "touch",
];

/// How a stressor's run ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    Passed,
    Failed,
    /// No resources, or not supported here.
    Skipped,
    /// stress-ng itself ended otherwise (its exit status).
    Other(i32),
}

/// What one stress-ng run did, per stressor: how it ended, its bogo-ops.
struct Run {
    ends: Vec<(&'static str, End, u64)>,
    /// stress-ng's exit status.
    code: i32,
    /// The last lines stress-ng printed, for a failure's report.
    tail: String,
    secs: f64,
}

/// Smaller working sets for the short run, per stressor, so that each
/// gets past its setup in a few seconds of an emulated vCPU shared with
/// others (the defaults are sized for real machines: 1 GB files, 8192
/// directories).
const SMALL: &[(&str, &str, &str)] = &[
    ("dentry", "--dentries", "256"),
    ("dir", "--dir-dirs", "256"),
    ("dirdeep", "--dirdeep-inodes", "1000"),
    ("chdir", "--chdir-dirs", "256"),
    ("fallocate", "--fallocate-bytes", "4M"),
    ("fiemap", "--fiemap-bytes", "4M"),
    ("hdd", "--hdd-bytes", "4M"),
    ("iomix", "--iomix-bytes", "4M"),
    ("mmap", "--mmap-bytes", "1M"),
    ("open", "--open-max", "256"),
    ("seek", "--seek-size", "4M"),
];

/// Runs `stressors` together in `dir`, `instances` of each, for `secs`,
/// with the [`SMALL`] working sets if `small`.
fn stress(stressors: &[&'static str], instances: u32, small: bool, dir: &Path, secs: u64) -> Run {
    let mut cmd = Command::new("stress-ng");
    for s in stressors {
        cmd.args([format!("--{s}"), instances.to_string()]);
        for (_, opt, v) in SMALL.iter().filter(|x| small && x.0 == *s) {
            cmd.args([opt, v]);
        }
    }
    cmd.args(["--timeout", &secs.to_string(), "--temp-path"])
        .arg(dir)
        .args(["--metrics-brief", "--verify"]);
    let start = std::time::Instant::now();
    let out = cmd.output();
    let secs = start.elapsed().as_secs_f64();
    let Ok(out) = out else {
        let ends = stressors.iter().map(|s| (*s, End::Other(-1), 0)).collect();
        return Run {
            ends,
            code: -1,
            tail: "could not run stress-ng".into(),
            secs,
        };
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit status 2: a stressor failed; 3 and 4: no resources or not
    // supported. Which one, stress-ng says in lines naming it:
    // "stress-ng: fail:  [pid] NAME: ..." and "... NAME: ..., skipping".
    let code = out.status.code().unwrap_or(-2);
    let single = stressors.len() == 1;
    let ends = stressors
        .iter()
        .map(|s| {
            let tag = format!("] {s}: ");
            let named = |l: &&str| l.contains(&tag);
            let failed = text.lines().filter(named).any(|l| l.contains(" fail:"));
            let skipped = text.lines().filter(named).any(|l| l.contains("skipping"));
            let end = match code {
                _ if failed => End::Failed,
                _ if skipped => End::Skipped,
                0 => End::Passed,
                2 if single => End::Failed,
                3 | 4 if single => End::Skipped,
                // Others failed, or the whole run ended so: named below.
                2..=4 => End::Passed,
                c => End::Other(c),
            };
            // "stress-ng: metrc: [pid] NAME  12345  1.00 ...": bogo-ops
            // after the stressor's name.
            let ops = text
                .lines()
                .filter(|l| l.contains("metrc:"))
                .find_map(|l| {
                    let mut f = l.split_whitespace().skip_while(|w| w != s);
                    f.next()?;
                    f.next()?.parse::<u64>().ok()
                })
                .unwrap_or(0);
            (*s, end, ops)
        })
        .collect();
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    Run {
        ends,
        code,
        tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        secs,
    }
}

/// The host's churn beside the stressors: files created, rewritten,
/// renamed and unlinked in `dir` on the real filesystem, and the caches
/// dropped, until `stop` exists.
fn churn(dir: PathBuf, stop: PathBuf, seed: u64) -> Result<String, String> {
    std::fs::create_dir_all(&dir).ctx("mkdir churn")?;
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    while !stop.exists() {
        let a = dir.join(format!("f{}", rng.below(32)));
        let b = dir.join(format!("f{}", rng.below(32)));
        let _ = match rng.below(4) {
            0 => {
                let len = 1 + rng.below(8192) as usize;
                std::fs::write(&a, rng.bytes(len))
            }
            1 => std::fs::rename(&a, &b),
            2 => std::fs::remove_file(&a),
            _ => std::fs::create_dir_all(a.with_extension("d")),
        };
        n += 1;
        if n.is_multiple_of(200) {
            rel::drop_caches(3)?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Ok(format!("{n} host changes"))
}

fn stressors_agree_with_the_control(env: &Env) -> Outcome {
    let b = env.scratch.join("stressng");
    let _ = std::fs::remove_dir_all(&b);
    let (real, mark, target, control) = (
        b.join("real"),
        b.join("mark"),
        b.join("target"),
        b.join("control"),
    );
    for d in [&real, &mark, &target, &control] {
        std::fs::create_dir_all(d).ctx("mkdir")?;
    }
    // The container's root owns the control and, through shiftfs, the
    // real tree.
    std::os::unix::fs::chown(&control, Some(100_000), Some(100_000)).ctx("chown")?;
    mount(&real, &mark, FS_NAME, MountFlags::empty(), c"mark").ctx("mark")?;
    let secs: u64 = std::env::var("SHIFTFS_STRESSNG_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rel::pick(5, 60));
    let stop = b.join("stop");
    let churner = {
        let (c1, c2, s1, s2) = (
            real.join("churn"),
            control.join("churn"),
            stop.clone(),
            stop.clone(),
        );
        let seed = rel::seed();
        (
            rel::spawn(move || churn(c1, s1, seed))?,
            rel::spawn(move || churn(c2, s2, seed ^ 1))?,
        )
    };
    let report = b.join("report");
    let (m, t, c) = (mark.clone(), target.clone(), control.clone());
    let res = container::run(move || {
        mount(&m, &t, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
        let mut lines = Vec::new();
        let mut bad = Vec::new();
        // Short: fourteen stressors at a time, one instance each, small
        // working sets (stress-ng is slow to start and to clean up under
        // emulation); long: one after the other, two instances each, their
        // default sizes.
        let short = rel::pick(true, false);
        let groups: Vec<&[&'static str]> = STRESSORS.chunks(if short { 14 } else { 1 }).collect();
        let instances = rel::pick(1, 2);
        for g in groups {
            let control = stress(g, instances, short, &c, secs);
            let shifted = stress(g, instances, short, &t, secs);
            lines.push(format!(
                "run of {} stressor(s): shiftfs {:.1} s, control {:.1} s",
                g.len(),
                shifted.secs,
                control.secs
            ));
            for ((s, se, sops), (_, ce, cops)) in shifted.ends.iter().zip(&control.ends) {
                lines.push(format!(
                    "{s}: shiftfs {se:?} {sops} bogo-ops, control {ce:?} {cops}"
                ));
                if se != ce && *se != End::Passed {
                    bad.push(format!(
                        "{s}: shiftfs {se:?}, control {ce:?}: {}",
                        shifted.tail
                    ));
                }
            }
            // stress-ng must run at all: bad options are exit 1.
            if !(0..=4).contains(&control.code) || control.code == 1 {
                bad.push(format!(
                    "stress-ng exited {} on the control: {}",
                    control.code, control.tail
                ));
            }
            // A failing exit that no stressor's line explains.
            let named = shifted.ends.iter().any(|e| e.1 != End::Passed);
            if shifted.code != 0 && shifted.code != control.code && !named {
                bad.push(format!(
                    "stress-ng exited {} (control {}): {}",
                    shifted.code, control.code, shifted.tail
                ));
            }
        }
        // The report goes where the container may write: its own tree.
        std::fs::write(c.join("report"), lines.join("\n")).ctx("report")?;
        ensure!(
            bad.is_empty(),
            "stressors that fail only through shiftfs: {bad:?}"
        );
        Ok(())
    });
    std::fs::write(&stop, b"").ctx("stop churn")?;
    let c1 = churner.0.wait();
    let c2 = churner.1.wait();
    if let Ok(text) = std::fs::read_to_string(control.join("report")) {
        for l in text.lines() {
            rel::info(&format!("stressng: {l}"));
        }
    }
    let _ = std::fs::rename(control.join("report"), &report);
    rel::info(&format!("stressng: churn: real {c1:?}, control {c2:?}"));
    unmount(&mark, UnmountFlags::empty()).ctx("umount mark")?;
    let _ = std::fs::remove_dir_all(&b);
    res
}
