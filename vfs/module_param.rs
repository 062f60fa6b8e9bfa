// SPDX-License-Identifier: GPL-2.0

//! Module parameters (`module_param()`, moduleparam.h): booleans the host
//! administrator sets when loading the module (`modprobe shiftfs NAME=1`,
//! a modprobe.d line) or later through /sys/module/shiftfs/parameters/NAME.
//!
//! [`bool_param!`](crate::bool_param) declares one: its value, its entry in
//! the module's `__param` section, which the module loader reads (and
//! sysfs shows), and its `parm`/`parmtype` lines for `modinfo`. The
//! kernel's own `param_ops_bool` parses and prints it.

use super::bindings;
use core::{
    ffi::{c_void, CStr},
    sync::atomic::{AtomicBool, Ordering},
};

/// The value of a boolean module parameter.
#[repr(transparent)]
pub(crate) struct BoolParam(AtomicBool);

impl BoolParam {
    /// A parameter that is `value` until set.
    pub(crate) const fn new(value: bool) -> Self {
        Self(AtomicBool::new(value))
    }

    /// Its value now. (`param_ops_bool` stores it with a plain byte
    /// write under the kernel's parameter lock; any value read is one it
    /// held.)
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

// Declared as the `module!` macro declares it (only its address is used;
// `struct module` is opaque here, hence the lint).
#[allow(improper_ctypes)]
extern "C" {
    /// This module (`THIS_MODULE`), made by modpost.
    static __this_module: kernel::types::Opaque<kernel::bindings::module>;
}

/// One `struct kernel_param` in the module's `__param` section.
#[repr(transparent)]
pub(crate) struct KernelParam(bindings::kernel_param);

// SAFETY: the entry is never changed; the module loader and sysfs read it,
// and write the value it points to (an atomic) under their own lock.
unsafe impl Sync for KernelParam {}

impl KernelParam {
    /// The entry of boolean parameter `name` with value `value`, readable by
    /// everyone and writable by root through sysfs (mode 0644).
    pub(crate) const fn bool(name: &'static CStr, value: &'static BoolParam) -> Self {
        Self(bindings::kernel_param {
            name: super::c_ptr(name),
            mod_: core::ptr::addr_of!(__this_module).cast_mut().cast(),
            ops: core::ptr::addr_of!(bindings::param_ops_bool),
            perm: 0o644,
            // Module parameters are set at load (level -1, no flags).
            level: -1,
            flags: 0,
            __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
                arg: value.0.as_ptr().cast::<c_void>(),
            },
        })
    }
}

/// A NUL-terminated `.modinfo` line of `N` bytes (`KEY=VALUE\0`).
#[repr(transparent)]
pub(crate) struct ModInfo<const N: usize>([u8; N]);

impl<const N: usize> ModInfo<N> {
    /// The line `s` (which must be `N - 1` bytes long) with its NUL.
    pub(crate) const fn new(s: &str) -> Self {
        let b = s.as_bytes();
        assert!(b.len() + 1 == N, "a .modinfo line is its text and a NUL");
        let mut out = [0u8; N];
        let mut i = 0;
        while i < b.len() {
            out[i] = b[i];
            i += 1;
        }
        Self(out)
    }
}

/// Declares boolean module parameter `$static` (a [`BoolParam`], false
/// until set), named `$name` for the loader and sysfs, with
/// `$description` for `modinfo`.
#[macro_export]
macro_rules! bool_param {
    ($(#[$doc:meta])* $static:ident, $name:literal, $description:literal) => {
        $(#[$doc])*
        pub(crate) static $static: $crate::vfs::module_param::BoolParam =
            $crate::vfs::module_param::BoolParam::new(false);

        // `link_section` counts as unsafe code: these statics are only
        // read by the module loader and modinfo, which find them by their
        // sections and expect exactly these layouts (checked by the types).
        #[allow(unsafe_code)]
        const _: () = {
            #[link_section = "__param"]
            #[used]
            static PARAM: $crate::vfs::module_param::KernelParam =
                $crate::vfs::module_param::KernelParam::bool(
                    match core::ffi::CStr::from_bytes_with_nul(concat!($name, "\0").as_bytes()) {
                        Ok(s) => s,
                        Err(_) => panic!("a parameter name has no NUL"),
                    },
                    &$static,
                );
            const DESC: &str = concat!("parm=", $name, ":", $description);
            #[link_section = ".modinfo"]
            #[used]
            static PARM: $crate::vfs::module_param::ModInfo<{ DESC.len() + 1 }> =
                $crate::vfs::module_param::ModInfo::new(DESC);
            const TYPE: &str = concat!("parmtype=", $name, ":bool");
            #[link_section = ".modinfo"]
            #[used]
            static PARMTYPE: $crate::vfs::module_param::ModInfo<{ TYPE.len() + 1 }> =
                $crate::vfs::module_param::ModInfo::new(TYPE);
        };
    };
}
