//! The kernel log of the whole run, checked last: no WARNING, BUG, Oops,
//! KASAN, lockdep, refcount or hung-task report (tools/splat-patterns).

use crate::{ensure, harness::Outcome, sys, tests, Env};

pub const TESTS: &[crate::harness::Test] = tests![kernel_log_has_no_splat];

fn kernel_log_has_no_splat(env: &Env) -> Outcome {
    let hits = sys::kernel_log_splats(&env.splat_patterns)?;
    ensure!(hits.is_empty(), "kernel log: {hits:?}");
    Ok(())
}
