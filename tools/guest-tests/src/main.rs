//! shiftfs integration tests. Run as root inside the test VM (tools/vm-run):
//!
//!   shiftfs-tests --module PATH/shiftfs.ko [--scratch DIR] SUITE|all ...
//!
//! Prints one line per test and ends with `N passed, N failed`; exits 1 if
//! any test failed.

mod container;
mod fixture;
mod harness;
mod reliability;
mod suites;

use shiftfs_sys as sys;
use std::path::PathBuf;

/// What every test may use.
#[derive(Clone)]
pub struct Env {
    /// The shiftfs.ko under test.
    pub module: PathBuf,
    /// A writable directory for the filesystems under test.
    pub scratch: PathBuf,
    /// tools/splat-patterns: kernel log lines that fail a run.
    pub splat_patterns: PathBuf,
}

fn usage() -> ! {
    let names: Vec<_> = suites::SUITES.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "usage: shiftfs-tests --module KO [--scratch DIR] [--patterns FILE] SUITE|all ...\n\
         suites: {}",
        names.join(" ")
    );
    std::process::exit(2);
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut env = Env {
        module: repo.join("shiftfs.ko"),
        scratch: std::env::temp_dir(),
        splat_patterns: repo.join("tools/splat-patterns"),
    };
    let mut wanted = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--module" => env.module = args.next().unwrap_or_else(|| usage()).into(),
            "--scratch" => env.scratch = args.next().unwrap_or_else(|| usage()).into(),
            "--patterns" => env.splat_patterns = args.next().unwrap_or_else(|| usage()).into(),
            "-h" | "--help" => usage(),
            _ => wanted.push(a),
        }
    }
    if wanted.is_empty() {
        usage();
    }
    let mut tally = harness::Tally::default();
    for (name, tests) in suites::SUITES {
        if wanted.iter().any(|w| w == "all" || w == name) {
            tally.run(name, tests, &env);
        }
    }
    for w in &wanted {
        if w != "all" && !suites::SUITES.iter().any(|(n, _)| n == w) {
            eprintln!("shiftfs-tests: no suite '{w}'");
            tally.failed += 1;
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    std::process::exit(i32::from(tally.failed > 0));
}
