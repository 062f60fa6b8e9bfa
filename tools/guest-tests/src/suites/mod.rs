//! Test suites, by name.

use crate::harness::Test;

pub mod foundation;

/// Every suite, in the order `all` runs them.
pub const SUITES: &[(&str, &[Test])] = &[("foundation", foundation::TESTS)];
