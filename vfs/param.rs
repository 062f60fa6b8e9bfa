// SPDX-License-Identifier: GPL-2.0

//! Mount parameter tables (`struct fs_parameter_spec[]`, fs_parser.h).

use super::bindings;
use core::ffi::CStr;

/// One entry of a parameter table, as `fsparam_*()` builds it in C.
#[repr(transparent)]
pub(crate) struct Spec(bindings::fs_parameter_spec);

impl Spec {
    /// A flag: a key given without a value (`fsparam_flag()`). `opt` is what
    /// [`FsContext::parse`](super::fs_context::FsContext::parse) returns for it.
    pub(crate) const fn flag(name: &'static CStr, opt: u8) -> Self {
        Self(bindings::fs_parameter_spec {
            name: super::c_ptr(name),
            type_: None,
            opt,
            flags: 0,
            data: core::ptr::null(),
        })
    }

    /// An unsigned number: `key=N` (`fsparam_u32()`); its value is in
    /// [`Parsed::uint_32`](super::fs_context::Parsed).
    pub(crate) const fn u32(name: &'static CStr, opt: u8) -> Self {
        Self(bindings::fs_parameter_spec {
            name: super::c_ptr(name),
            type_: Some(bindings::fs_param_is_u32),
            opt,
            flags: 0,
            data: core::ptr::null(),
        })
    }

    /// A string: `key=VALUE` (`fsparam_string()`); its value is
    /// [`Parameter::string`](super::fs_context::Parameter::string).
    pub(crate) const fn string(name: &'static CStr, opt: u8) -> Self {
        Self(bindings::fs_parameter_spec {
            name: super::c_ptr(name),
            type_: Some(bindings::fs_param_is_string),
            opt,
            flags: 0,
            data: core::ptr::null(),
        })
    }

    /// The all-zero entry that ends a table.
    pub(crate) const END: Self = Self(bindings::fs_parameter_spec {
        name: core::ptr::null(),
        type_: None,
        opt: 0,
        flags: 0,
        data: core::ptr::null(),
    });
}

/// A complete parameter table: entries followed by [`Spec::END`].
///
/// # Invariants
///
/// The last entry is [`Spec::END`], so a table handed to the VFS is always
/// terminated.
#[derive(Clone, Copy)]
pub(crate) struct Table(&'static [Spec]);

impl Table {
    /// The table of `specs`, whose last entry must be [`Spec::END`]
    /// (checked when the constant is evaluated); built by
    /// [`param_table!`](crate::param_table), which appends it.
    // `<*const T>::is_null` is `const` since Rust 1.84; shiftfs needs 1.85
    // (Documentation/install.rst), above the kernel's own minimum.
    #[allow(clippy::incompatible_msrv)]
    pub(crate) const fn new(specs: &'static [Spec]) -> Self {
        assert!(
            matches!(specs.last(), Some(end) if end.0.name.is_null()),
            "a parameter table must end with Spec::END"
        );
        Self(specs)
    }

    /// The C view of the table.
    pub(crate) const fn as_ptr(self) -> *const bindings::fs_parameter_spec {
        self.0.as_ptr().cast()
    }
}

/// Builds a [`Table`] from its entries: `param_table![Spec::flag(..), ..]`.
#[macro_export]
macro_rules! param_table {
    ($($spec:expr),* $(,)?) => {{
        const SPECS: &[$crate::vfs::param::Spec] = &[$($spec,)* $crate::vfs::param::Spec::END];
        $crate::vfs::param::Table::new(SPECS)
    }};
}
