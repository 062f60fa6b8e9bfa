// SPDX-License-Identifier: GPL-2.0

//! Revalidation: a shiftfs dentry stays valid while the real dentry under
//! it is hashed, agrees on being positive, has the same name, and is valid
//! for its own filesystem. Changes made below shiftfs (a chmod on the real
//! path, a rename) show through at the next walk.
//!
//! A walk with references checks all of it and keeps the real dentry's
//! sequence count; an RCU walk, the hot path, compares that count instead
//! of the name (a rename, an unhash or a change of inode below moves it)
//! and takes no lock.

use crate::{
    inode,
    superblock::Shiftfs,
    vfs::dentry::{Dentry, DentryOperations, LookupFlags},
    vfs::Rcu,
};
use kernel::{error::code::ECHILD, prelude::*};

#[vtable]
impl DentryOperations for Shiftfs {
    #[inline]
    fn revalidate(dentry: &Dentry<Self>, flags: LookupFlags) -> Result<bool> {
        let real = dentry.real();
        // Hashed and of the same name: renamed below (in place: a move to
        // another directory unhashes nothing either, but then the name
        // usually differs too) makes it invalid.
        if dentry.inode().is_some() != real.inode().is_some() || !dentry.check_real() {
            return Ok(false);
        }
        if let Some(inode) = dentry.inode() {
            // Changes made below must reach the attributes `permission`
            // checks.
            inode::refresh(inode);
        }
        real.revalidate(flags)
    }

    /// Valid only if nothing needs doing: the real dentry unchanged since a
    /// walk with references checked it (hashed, of the same name), of the
    /// same inode, its attributes those shown, and valid for its own
    /// filesystem; anything else goes back to a walk with references
    /// (ECHILD), which refreshes or invalidates.
    #[inline]
    fn revalidate_rcu(dentry: Rcu<'_, Dentry<Self>>, flags: LookupFlags) -> Result<bool> {
        // None once the dentry is being killed: the walk fails on it.
        let real = dentry.real().ok_or(ECHILD)?;
        let current = match (dentry.inode(), real.inode()) {
            (None, None) => true,
            // Owner and group changes below change ctime too, which
            // `attrs_match` compares: no id needs shifting here.
            (Some(inode), Some(ri)) => inode.stands_on(ri) && inode.attrs_match(ri),
            _ => false,
        };
        if !current || !dentry.real_unchanged(real) {
            return Err(ECHILD);
        }
        real.revalidate(flags)
    }

    /// The real dentry's, where its filesystem has one.
    fn weak_revalidate(dentry: &Dentry<Self>, flags: LookupFlags) -> Result<bool> {
        dentry.real().weak_revalidate(flags)
    }
}
