// SPDX-License-Identifier: GPL-2.0

//! Credential override: every call into the real filesystem runs with the
//! mark creator's credentials (recorded at mark time, without
//! CAP_SYS_RESOURCE), with fsuid and fsgid shifted down from the caller's,
//! through one guard that reverts on drop: [`enter`].
//!
//! Call points (all in `vfs/stacked.rs` unless noted):
//! - `lookup`: `lookup_one_len_unlocked()` in the real parent;
//! - `getattr`: `vfs_getattr()` on the real path;
//! - `get_link`: `vfs_get_link()` on the real dentry;
//! - directory `open`: `dentry_open()` of the real directory (the real file
//!   keeps these credentials for its lifetime);
//! - `iterate_shared`: `iterate_dir()` on the real directory.
//!
//! Not overridden: `statfs` (`vfs_statfs()` reads no file), `llseek` of the
//! real directory file, and dropping references.

use crate::{
    shift::Shift,
    super_::SbInfo,
    vfs::{
        cred::{current_fsids, Override},
        errno::eoverflow,
        super_block::SuperBlock,
    },
};
use kernel::prelude::*;

/// Overrides the calling task's credentials for a call into the real
/// filesystem of `sb`, until the guard is dropped.
pub(crate) fn enter(sb: &SuperBlock, info: &SbInfo) -> Result<Override> {
    let shift = Shift {
        real: info.real.super_block().user_ns(),
        shifted: sb.user_ns(),
    };
    let (fsuid, fsgid) = current_fsids();
    let fsuid = shift.uid_down(fsuid).ok_or_else(eoverflow)?;
    let fsgid = shift.gid_down(fsgid).ok_or_else(eoverflow)?;
    let creds = info.creator.with_fsids(fsuid, fsgid)?;
    Ok(creds.override_current())
}
