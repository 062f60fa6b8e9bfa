//! Test suites, by name.

use crate::harness::Test;

pub mod alloc_faults;
pub mod btrfs;
pub mod coherence;
pub mod conformance;
pub mod containers;
pub mod errors;
pub mod faults;
pub mod fileops;
pub mod foundation;
pub mod fsx;
pub mod hostile;
pub mod install;
pub mod io;
pub mod kernel_log;
pub mod lifecycle;
pub mod mark;
pub mod marks;
pub mod mount_checks;
pub mod namei;
pub mod notify;
pub mod nsfuzz;
pub mod runtimes;
pub mod shift;
pub mod stacking;
pub mod stress;
pub mod stressng;
pub mod workload;
pub mod xattr;

/// Every suite, in the order `all` runs them.
pub const SUITES: &[(&str, &[Test])] = &[
    ("foundation", foundation::TESTS),
    ("mount_checks", mount_checks::TESTS),
    ("mark", mark::TESTS),
    ("marks", marks::TESTS),
    ("shift", shift::TESTS),
    ("io", io::TESTS),
    ("notify", notify::TESTS),
    ("xattr", xattr::TESTS),
    ("namei", namei::TESTS),
    ("fileops", fileops::TESTS),
    ("coherence", coherence::TESTS),
    ("runtimes", runtimes::TESTS),
    ("btrfs", btrfs::TESTS),
    ("containers", containers::TESTS),
    ("errors", errors::TESTS),
    ("stacking", stacking::TESTS),
    ("workload", workload::TESTS),
    ("conformance", conformance::TESTS),
    ("fsx", fsx::TESTS),
    ("stress", stress::TESTS),
    ("nsfuzz", nsfuzz::TESTS),
    ("stressng", stressng::TESTS),
    ("lifecycle", lifecycle::TESTS),
    ("faults", faults::TESTS),
    ("alloc_faults", alloc_faults::TESTS),
    ("hostile", hostile::TESTS),
    ("install", install::TESTS),
    // Last, so that it sees what every suite before it did.
    ("kernel_log", kernel_log::TESTS),
];
