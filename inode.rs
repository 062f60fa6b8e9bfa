// SPDX-License-Identifier: GPL-2.0

//! Hashed inodes: one shiftfs inode per real inode while either lives, found
//! by the real inode's address (`iget5_locked`), holding a reference to it
//! until eviction. So inotify watches survive dentry eviction, and hard
//! links share one inode.

use crate::{
    shift::Shift,
    super_::Shiftfs,
    vfs::{inode::Inode, stacked, super_block::SuperBlock},
};
use kernel::{prelude::*, types::ARef};

/// The shiftfs inode of `sb` for `real`, with its attributes copied and its
/// owner and group shifted from the real superblock's namespace to `sb`'s.
pub(crate) fn get(sb: &SuperBlock, real: &Inode) -> Result<ARef<Inode>> {
    let shift = Shift {
        real: real.super_block().user_ns(),
        shifted: sb.user_ns(),
    };
    stacked::iget::<Shiftfs>(sb, real, shift.uid_up(real.uid()), shift.gid_up(real.gid()))
}
