// SPDX-License-Identifier: GPL-2.0

//! KUnit registration glue: 6.12 has no `#[kunit_tests]` for Rust, so this
//! builds what `kunit_test_suites()` builds in C.
//!
//! [`kunit_suite!`](crate::kunit_suite) turns a list of functions
//! `fn(&mut Test)` into a `kunit_case` array, a `kunit_suite`, and a pointer
//! to it in the module's `.kunit_test_suites` section. The module loader
//! finds that section and KUnit runs the suites when the module goes live,
//! printing KTAP to the kernel log. Adding a case is adding its name to the
//! list. Compiled only in test builds (`make KUNIT=1`).

use super::bindings;
use core::{cell::UnsafeCell, fmt, mem::MaybeUninit};
use kernel::prelude::*;

/// The running test case, handed to each case function.
pub(crate) struct Test {
    raw: *mut bindings::kunit,
}

impl Test {
    /// Records a failure of the running case, with a diagnostic line in the
    /// KTAP output; the case goes on, so that every failed check is shown.
    pub(crate) fn fail(&mut self, file: &str, line: u32, args: fmt::Arguments<'_>) {
        // SAFETY: `raw` is the live `struct kunit` of the running case (see
        // `trampoline`); `name` is its NUL-terminated case name.
        let name = unsafe { kernel::str::CStr::from_char_ptr((*self.raw).name) };
        pr_err!("        # {}: {}:{}: {}\n", name, file, line, args);
        // SAFETY: as above; KUnit reads the status after the case returns.
        unsafe { bindings::shiftfs_kunit_set_failure(self.raw) };
    }
}

/// Checks a condition: `kunit_expect!(t, cond, "fmt", args..)`.
#[macro_export]
macro_rules! kunit_expect {
    ($t:expr, $cond:expr $(,)?) => {
        $crate::kunit_expect!($t, $cond, "{}", stringify!($cond))
    };
    ($t:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $t.fail(file!(), line!(), format_args!($($fmt)+));
        }
    };
}

/// Checks `left == right`: `kunit_expect_eq!(t, left, right)`.
#[macro_export]
macro_rules! kunit_expect_eq {
    ($t:expr, $left:expr, $right:expr $(,)?) => {
        // `match` keeps temporaries in the operands alive, as in `assert_eq!`.
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    $t.fail(
                        file!(),
                        line!(),
                        format_args!(
                            "{} == {}: got {:?}, expected {:?}",
                            stringify!($left),
                            stringify!($right),
                            l,
                            r
                        ),
                    );
                }
            }
        }
    };
}

/// A test case: implemented by [`kunit_suite!`](crate::kunit_suite) for a
/// type named after each case function.
pub(crate) trait CaseFn {
    /// Runs the case.
    fn run(t: &mut Test);
}

/// `kunit_case::run_case`.
///
/// # Safety
///
/// Called by KUnit only, with the live `struct kunit` of the case.
unsafe extern "C" fn trampoline<C: CaseFn>(raw: *mut bindings::kunit) {
    C::run(&mut Test { raw });
}

/// One `struct kunit_case`.
#[repr(transparent)]
pub(crate) struct Case(bindings::kunit_case);

impl Case {
    /// The case that runs `C`, reported under `name` (NUL-terminated).
    pub(crate) const fn new<C: CaseFn>(name: &'static [u8]) -> Self {
        assert!(!name.is_empty() && name[name.len() - 1] == 0);
        Self(bindings::kunit_case {
            run_case: Some(trampoline::<C>),
            name: name.as_ptr().cast(),
            // SAFETY: all-zero is what C's `KUNIT_CASE()` leaves in the
            // other fields: no generator, default attributes, private state.
            ..unsafe { MaybeUninit::zeroed().assume_init() }
        })
    }

    /// The all-zero entry that ends a case array.
    // SAFETY: an all-zero `kunit_case` is the terminator KUnit looks for.
    pub(crate) const END: Self = Self(unsafe { MaybeUninit::zeroed().assume_init() });
}

/// A case array, written by KUnit as it runs (status, log).
#[repr(transparent)]
pub(crate) struct Cases<const N: usize>(UnsafeCell<[Case; N]>);

// SAFETY: only KUnit touches the array once the module is live, and it runs
// a suite's cases one at a time.
unsafe impl<const N: usize> Sync for Cases<N> {}

impl<const N: usize> Cases<N> {
    /// `cases` must end with [`Case::END`]; [`kunit_suite!`] appends it.
    pub(crate) const fn new(cases: [Case; N]) -> Self {
        Self(UnsafeCell::new(cases))
    }
}

/// One `struct kunit_suite`, written by KUnit as it runs.
#[repr(transparent)]
pub(crate) struct Suite(UnsafeCell<bindings::kunit_suite>);

// SAFETY: as for `Cases`: only KUnit touches it, one run at a time.
unsafe impl Sync for Suite {}

impl Suite {
    /// A suite called `name` running `cases`.
    pub(crate) const fn new<const N: usize>(name: &str, cases: &'static Cases<N>) -> Self {
        // SAFETY: all-zero is what a C designated initializer leaves in the
        // other fields (no init/exit hooks, private state).
        let mut suite: bindings::kunit_suite = unsafe { MaybeUninit::zeroed().assume_init() };
        let bytes = name.as_bytes();
        assert!(bytes.len() < suite.name.len(), "suite name too long");
        let mut i = 0;
        while i < bytes.len() {
            suite.name[i] = bytes[i];
            i += 1;
        }
        suite.test_cases = cases.0.get().cast();
        Self(UnsafeCell::new(suite))
    }
}

/// The entry of `.kunit_test_suites` that points the module loader at a suite.
#[repr(transparent)]
pub(crate) struct SuiteEntry(*const Suite);

// SAFETY: the pointer is to a `'static` `Suite`, which is `Sync`.
unsafe impl Sync for SuiteEntry {}

impl SuiteEntry {
    /// The entry for `suite`.
    pub(crate) const fn new(suite: &'static Suite) -> Self {
        Self(suite)
    }
}

/// Declares a KUnit suite from case functions `fn(&mut Test)`:
///
/// ```ignore
/// kunit_suite!("shiftfs_params", [mark_is_a_flag, unknown_key_is_einval]);
/// ```
#[macro_export]
macro_rules! kunit_suite {
    ($name:literal, [$($case:ident),* $(,)?]) => {
        const _: () = {
            use $crate::vfs::kunit::{Case, CaseFn, Cases, Suite, SuiteEntry, Test};
            $(
                // A braced struct lives only in the type namespace, so the
                // function of the same name stays visible.
                #[allow(non_camel_case_types)]
                struct $case {}
                impl CaseFn for $case {
                    fn run(t: &mut Test) {
                        $case(t)
                    }
                }
            )*
            const N: usize = [$(stringify!($case)),*].len() + 1;
            static CASES: Cases<N> = Cases::new([
                $(Case::new::<$case>(concat!(stringify!($case), "\0").as_bytes()),)*
                Case::END,
            ]);
            static SUITE: Suite = Suite::new($name, &CASES);
            // The module loader finds suites in this section.
            #[allow(unsafe_code)]
            #[used]
            #[link_section = ".kunit_test_suites"]
            static ENTRY: SuiteEntry = SuiteEntry::new(&SUITE);
        };
    };
}
