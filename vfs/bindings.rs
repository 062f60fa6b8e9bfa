// SPDX-License-Identifier: GPL-2.0

//! Module-local bindings to kernel headers that 6.12's `kernel::bindings`
//! lacks, generated at build time by Kbuild (see `bindgen_parameters`).
//!
//! Only the `vfs` layer uses these; the shiftfs logic goes through the typed
//! wrappers next to this file.

#![allow(
    clippy::all,
    clippy::pedantic,
    clippy::restriction,
    clippy::undocumented_unsafe_blocks,
    dead_code,
    improper_ctypes,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unsafe_op_in_unsafe_fn
)]

// Blocklisted in `bindgen_parameters`, as in the kernel's own bindings: these
// are `isize`/`usize`, not platform-dependent `long`s.
type __kernel_size_t = usize;
type __kernel_ssize_t = isize;
type __kernel_ptrdiff_t = isize;

include!("bindings_generated.rs");
