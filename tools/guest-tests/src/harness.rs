//! A small test runner: named tests, run in order, one line each, and a
//! closing `N passed, N failed` line.

use std::time::Instant;

/// What a test returns: `Err` carries what was observed against what was
/// expected.
pub type Outcome = Result<(), String>;

/// One test case.
pub struct Test {
    pub name: &'static str,
    pub run: fn(&crate::Env) -> Outcome,
}

/// Declares a list of tests from function names: `tests![a, b, c]`.
#[macro_export]
macro_rules! tests {
    ($($f:ident),* $(,)?) => {
        &[$($crate::harness::Test { name: stringify!($f), run: $f }),*]
    };
}

/// Fails the test unless `cond` holds, with a formatted reason.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Fails the test unless `left == right`, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $what:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}: got {:?}, expected {:?}", $what, l, r));
        }
    }};
}

/// Counts of a run.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    /// Runs `tests` of `suite` in order and prints one line per test.
    pub fn run(&mut self, suite: &str, tests: &[Test], env: &crate::Env) {
        for t in tests {
            let start = Instant::now();
            let outcome = (t.run)(env);
            let ms = start.elapsed().as_millis();
            match outcome {
                Ok(()) => {
                    self.passed += 1;
                    println!("ok     {suite}::{} ({ms} ms)", t.name);
                }
                Err(why) => {
                    self.failed += 1;
                    println!("FAILED {suite}::{} ({ms} ms): {why}", t.name);
                }
            }
        }
    }
}

/// Turns a syscall result into a test outcome that names the call.
pub trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}
