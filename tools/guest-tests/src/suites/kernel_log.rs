//! The kernel log of the whole run, checked last: no WARNING, BUG, Oops,
//! KASAN, lockdep, refcount or hung-task report (tools/splat-patterns).

use crate::{
    ensure,
    harness::{Context, Outcome},
    sys, tests, Env,
};
use std::path::Path;

pub const TESTS: &[crate::harness::Test] = tests![kernel_log_has_no_splat];

fn kernel_log_has_no_splat(env: &Env) -> Outcome {
    let hits = kernel_log_splats(&env.splat_patterns)?;
    ensure!(hits.is_empty(), "kernel log: {hits:?}");
    Ok(())
}

/// The kernel log lines (from /dev/kmsg) that match a splat pattern.
fn kernel_log_splats(patterns_file: &Path) -> Result<Vec<String>, String> {
    let pats =
        std::fs::read_to_string(patterns_file).ctx(&format!("read {}", patterns_file.display()))?;
    let pats: Vec<regex::Regex> = pats
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| regex::Regex::new(l).map_err(|e| format!("pattern {l:?}: {e}")))
        .collect::<Result<_, _>>()?;
    sys::kernel_log_matching(|msg| pats.iter().any(|p| p.is_match(msg)))
}
