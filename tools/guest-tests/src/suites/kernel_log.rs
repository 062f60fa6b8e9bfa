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
    let all = sys::kernel_log_matching(|_| true)?;
    Ok(splats(&all, &pats))
}

/// The messages of `log` that match one of `pats`, except the "Call
/// Trace:" of each stack dump fault injection prints on purpose (from its
/// "forcing a failure" line to the end of the dump).
pub fn splats(log: &[String], pats: &[regex::Regex]) -> Vec<String> {
    let mut in_dump = false;
    let mut out = Vec::new();
    for msg in log {
        if msg.contains(FAULT_START) {
            in_dump = true;
        } else if in_dump && msg.contains("</TASK>") {
            in_dump = false;
        }
        if in_dump && msg.contains("Call Trace:") {
            continue;
        }
        if pats.iter().any(|p| p.is_match(msg)) {
            out.push(msg.clone());
        }
    }
    out
}

/// The line fault injection prints before each failure it forces.
pub const FAULT_START: &str = "FAULT_INJECTION: forcing a failure";
