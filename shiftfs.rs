// SPDX-License-Identifier: GPL-2.0

//! shiftfs: a stacked filesystem that shifts uids and gids, so that an
//! unprivileged container can use a host directory as if it owned it.
//!
//! The host marks a directory (`mount -t shiftfs -o mark SRC SRC`); a user
//! namespace that owns its mount namespace can then mount a marked path
//! (`mount -t shiftfs SRC DST`) and sees on-disk ids as its own.
//! See Documentation/shiftfs.rst.

use kernel::prelude::*;

mod cred;
mod inode;
mod mark;
mod shift;
#[path = "super.rs"]
mod super_;
mod vfs;
// The capability translation is unit-tested (KUnit) ahead of the xattr
// handlers of core II that will call it.
#[cfg_attr(not(shiftfs_kunit), allow(dead_code, reason = "caps_*: core II"))]
mod xattr;

module! {
    type: ShiftfsModule,
    name: "shiftfs",
    author: "shiftfs developers",
    description: "uid/gid shifting stacked filesystem",
    license: "GPL",
}

/// The `shiftfs` filesystem type, as the VFS sees it.
static SHIFTFS_TYPE: vfs::fs_type::Type = vfs::fs_type::Type::new::<super_::Shiftfs>();

struct ShiftfsModule {
    _registration: vfs::fs_type::Registration<super_::Shiftfs>,
}

impl kernel::Module for ShiftfsModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let registration = vfs::fs_type::Registration::new(&SHIFTFS_TYPE, module)?;
        pr_info!("registered filesystem type shiftfs\n");
        Ok(Self {
            _registration: registration,
        })
    }
}
