// SPDX-License-Identifier: GPL-2.0

//! A typed layer over the VFS structures shiftfs uses.
//!
//! Every `unsafe` in shiftfs lives here or at the C boundary: the wrappers are
//! `#[repr(transparent)]` over [`Opaque`](kernel::types::Opaque) C structures,
//! operation tables are `const`s filled with generic `unsafe extern "C"`
//! trampolines, and errors cross the boundary through
//! [`from_result`](kernel::error::from_result).

#[cfg_attr(not(shiftfs_kunit), allow(dead_code, reason = "used by core I"))]
pub(crate) mod acl;
pub(crate) mod bindings;
pub(crate) mod cred;
pub(crate) mod dentry;
pub(crate) mod errno;
pub(crate) mod fs_context;
pub(crate) mod fs_type;
pub(crate) mod inode;
#[cfg(shiftfs_kunit)]
pub(crate) mod kunit;
pub(crate) mod param;
pub(crate) mod path;
pub(crate) mod stacked;
pub(crate) mod super_block;
pub(crate) mod user_ns;
