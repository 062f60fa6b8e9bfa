// SPDX-License-Identifier: GPL-2.0

//! Inodes: one shiftfs inode per real inode while either lives, found by
//! the real inode (so inotify watches survive dentry eviction, and hard
//! links share one inode), showing its attributes with owner and group
//! shifted; and the inode operations every shiftfs inode has (getattr,
//! setattr, permission, get_link, file attributes).

use crate::{
    cred,
    shift::Shift,
    superblock::Shiftfs,
    vfs::{
        dentry::{DelayedCall, Dentry, LinkTarget},
        inode::{
            AttrMask, FileAttr, Iattr, Inode, InodeOperations, Kstat, Mask, MntIdmap, Stacked,
        },
        super_block::SuperBlock,
        ARef, Rcu, Real,
    },
};
use kernel::{
    error::code::{ECHILD, EINVAL, ENOENT},
    prelude::*,
};

/// The shiftfs inode of `sb` for `real`, showing `real`'s attributes,
/// owner and group shifted: the one that lives (shown again: a hard link
/// changed its link count, or the real inode changed while no dentry
/// stood on it), or a new one.
pub(crate) fn get(sb: &SuperBlock<Shiftfs>, real: &Inode<Real>) -> Result<ARef<Inode<Shiftfs>>> {
    match sb.stacked_inode(real)? {
        Stacked::Cached(inode) => {
            refresh(&inode);
            Ok(inode)
        }
        Stacked::New(new) => {
            let (uid, gid) = Shift::of(sb).owner_up(real);
            new.inode().set_attrs(real, uid, gid);
            // The real ACLs may change below: ask every time.
            new.uncache_acls();
            Ok(new.publish())
        }
    }
}

/// Shows the real inode's attributes again (after a change through
/// shiftfs, or one below it), owner and group shifted.
pub(crate) fn refresh(inode: &Inode<Shiftfs>) {
    let real = inode.real();
    let (uid, gid) = Shift::of(inode.super_block()).owner_up(real);
    inode.set_attrs(real, uid, gid);
}

#[vtable]
impl InodeOperations for Shiftfs {
    /// The real inode's attributes with owner and group shifted, on
    /// shiftfs's device.
    #[inline]
    fn getattr(
        _idmap: &MntIdmap,
        dentry: &Dentry<Self>,
        stat: &mut Kstat,
        request_mask: u32,
        flags: u32,
    ) -> Result {
        let sb = dentry.super_block();
        {
            let _creds = cred::enter(sb)?;
            let real = sb.info().real.mount().path(dentry.real());
            real.getattr(stat, request_mask, flags)?;
        }
        // The real path's attributes: its owner as the real mount shows it.
        let (uid, gid) = stat.owner();
        let shift = Shift::of(sb);
        stat.set_owner(shift.view_uid_up(uid), shift.view_gid_up(gid));
        stat.set_dev(sb.dev());
        Ok(())
    }

    /// Checked against the shiftfs inode, applied to the real one with
    /// owner and group shifted down (EINVAL for ids the real filesystem
    /// cannot hold), then shown.
    fn setattr(idmap: &MntIdmap, dentry: &Dentry<Self>, attr: &Iattr) -> Result {
        dentry.setattr_prepare(idmap, attr)?;
        let (sb, real) = (dentry.super_block(), dentry.real());
        let inode = dentry.inode().ok_or(ENOENT)?;
        let mut real_attr = *attr;
        // The real filesystem must not see the shiftfs file, nor change a
        // mode that killing set-id bits already accounts for.
        real_attr.remove(AttrMask::FILE);
        if real_attr.valid().any(AttrMask::KILL_SETID) {
            real_attr.remove(AttrMask::MODE);
        }
        // Only the ids asked for: the other one's field is not set.
        let shift = Shift::of(sb);
        if let Some(uid) = real_attr.uid() {
            real_attr.set_uid(shift.uid_down(uid).ok_or(EINVAL)?);
        }
        if let Some(gid) = real_attr.gid() {
            real_attr.set_gid(shift.gid_down(gid).ok_or(EINVAL)?);
        }
        {
            let _writing = cred::enter_to_write(sb)?;
            real.notify_change(&mut real_attr)?;
        }
        refresh(inode);
        Ok(())
    }

    /// First the shiftfs inode, with the caller's own credentials in its
    /// namespace (mode, shifted owners, ACLs); then the real inode, with
    /// the creator's (the real filesystem's own rules, and its ACLs).
    #[inline]
    fn permission(idmap: &MntIdmap, inode: &Inode<Self>, mask: Mask) -> Result {
        inode.generic_permission(idmap, mask)?;
        let _creds = cred::enter(inode.super_block())?;
        inode.real().permission(mask)
    }

    /// As [`Self::permission`]; in an RCU walk nothing may sleep: only
    /// credentials made already for the caller's ids will do (overriding
    /// with them does not sleep, and the real check honours
    /// `MAY_NOT_BLOCK`).
    #[inline]
    fn permission_rcu(idmap: &MntIdmap, inode: Rcu<'_, Inode<Self>>, mask: Mask) -> Result {
        inode.generic_permission(idmap, mask)?;
        // Evicted since the walk found it: the walk starts over, blocking.
        let real = inode.real().ok_or(ECHILD)?;
        let _creds = cred::enter_made(inode.super_block()).ok_or(ECHILD)?;
        real.permission(mask)
    }

    /// The real symlink's target.
    fn get_link(
        dentry: &Dentry<Self>,
        _inode: &Inode<Self>,
        done: &mut DelayedCall,
    ) -> Result<LinkTarget> {
        let _creds = cred::enter(dentry.super_block())?;
        dentry.real().get_link(done)
    }

    /// The real inode's.
    fn fileattr_get(dentry: &Dentry<Self>, fa: &mut FileAttr) -> Result {
        let _creds = cred::enter(dentry.super_block())?;
        dentry.real().fileattr_get(fa)
    }

    /// The VFS has checked the caller against the shiftfs inode (owner,
    /// CAP_LINUX_IMMUTABLE in the initial namespace for append-only and
    /// immutable, project ids unchanged from a user namespace); set on the
    /// real inode, then shown (flags and ctime changed).
    fn fileattr_set(_idmap: &MntIdmap, dentry: &Dentry<Self>, fa: &mut FileAttr) -> Result {
        let inode = dentry.inode().ok_or(ENOENT)?;
        {
            let _writing = cred::enter_to_write(dentry.super_block())?;
            dentry.real().fileattr_set(fa)?;
        }
        refresh(inode);
        Ok(())
    }
}
