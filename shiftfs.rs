// SPDX-License-Identifier: GPL-2.0

//! shiftfs: a stacked filesystem that shifts uids and gids, so that an
//! unprivileged container can use a host directory as if it owned it.
//!
//! The host marks a directory (`mount -t shiftfs -o mark SRC SRC`); a user
//! namespace that owns its mount namespace can then mount a marked path
//! (`mount -t shiftfs SRC DST`) and sees on-disk ids as its own.
//! See Documentation/shiftfs.rst.
//!
//! The files beside this one are shiftfs's behaviour, in safe Rust; `vfs/`
//! is the typed layer over the kernel's C API they are written against.
//! Outside `vfs/` the crate is safe Rust: Kbuild's lint flags make anything
//! else a compile error.

use kernel::prelude::*;

mod cred;
mod dentry;
mod file;
mod inode;
mod mark;
mod namei;
mod readdir;
mod shift;
#[path = "super.rs"]
mod superblock;
mod vfs;
mod xattr;

module! {
    type: ShiftfsModule,
    name: "shiftfs",
    description: "uid/gid shifting stacked filesystem",
    license: "GPL",
    // `mount -t shiftfs` loads the module (`request_module("fs-shiftfs")`).
    alias: ["fs-shiftfs"],
}

/// The `shiftfs` filesystem type, as the VFS sees it.
static SHIFTFS_TYPE: vfs::fs_type::Type = vfs::fs_type::Type::new::<superblock::Shiftfs>();

struct ShiftfsModule {
    _registration: vfs::fs_type::Registration<superblock::Shiftfs>,
}

impl kernel::Module for ShiftfsModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let registration = vfs::fs_type::Registration::new(module)?;
        pr_info!("registered filesystem type shiftfs\n");
        Ok(Self {
            _registration: registration,
        })
    }
}
