// SPDX-License-Identifier: GPL-2.0

//! Revalidation: a shiftfs dentry stays valid while the real dentry under
//! it is hashed, agrees on being positive, has the same name, and is valid
//! for its own filesystem. Changes made below shiftfs (a chmod on the real
//! path, a rename) show through at the next walk.

use crate::{
    inode,
    superblock::Shiftfs,
    vfs::dentry::{Dentry, DentryOperations, LookupFlags},
    vfs::Rcu,
};
use kernel::{error::code::ECHILD, prelude::*};

#[vtable]
impl DentryOperations for Shiftfs {
    fn revalidate(dentry: &Dentry<Self>, flags: LookupFlags) -> Result<bool> {
        let real = dentry.real();
        if real.is_unhashed() || dentry.inode().is_some() != real.inode().is_some() {
            return Ok(false);
        }
        // Renamed below (in place: a move to another directory unhashes
        // nothing either, but then the name usually differs too).
        if !dentry.same_name_as(real) {
            return Ok(false);
        }
        if let Some(inode) = dentry.inode() {
            // Changes made below must reach the attributes `permission`
            // checks.
            inode::refresh(inode);
        }
        real.revalidate(flags)
    }

    /// Valid only if nothing needs doing: the real dentry still hashed, of
    /// the same name and inode, its attributes those shown, and valid for
    /// its own filesystem; anything else goes back to a walk with
    /// references (ECHILD), which refreshes or invalidates.
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
        if !current || real.is_unhashed() || !dentry.same_name_as(real) {
            return Err(ECHILD);
        }
        real.revalidate(flags)
    }

    /// The real dentry's, where its filesystem has one.
    fn weak_revalidate(dentry: &Dentry<Self>, flags: LookupFlags) -> Result<bool> {
        dentry.real().weak_revalidate(flags)
    }
}
