// SPDX-License-Identifier: GPL-2.0

//! Inodes: one shiftfs inode per real inode while either lives, found by
//! the real inode (so inotify watches survive dentry eviction, and hard
//! links share one inode), showing its attributes with owner and group
//! shifted; and the inode operations every shiftfs inode has (getattr,
//! setattr, permission, get_link, file attributes, access times).

use crate::{
    cred,
    shift::Shift,
    superblock::Shiftfs,
    vfs::{
        cred::Caller,
        dentry::{DelayedCall, Dentry, LinkTarget},
        inode::{
            AttrMask, FileAttr, Iattr, Inode, InodeOperations, Kstat, Mask, MntIdmap, Mode, Stacked,
        },
        super_block::SuperBlock,
        user_ns::Kuid,
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

/// Whether the VFS's check of a shiftfs inode of owner `uid` and `mode`
/// (`generic_permission()`) would grant `mask` to `caller` on the mode
/// bits alone, which it then does whatever the caller's groups and
/// capabilities: the inode shows no ACL (its real inode is known to have
/// none, and a shiftfs inode shows the real one's), the mount shows owners
/// as they are (not idmapped), and [`mode_grants`] says yes. Where this
/// says no, the VFS decides.
fn granted_by_mode(
    idmap: &MntIdmap,
    caller: &Caller,
    (uid, mode): (Kuid, Mode),
    real_has_no_acl: bool,
    mask: Mask,
) -> bool {
    real_has_no_acl && idmap.is_nop() && mode_grants(mode.0, uid == caller.fsids().0, mask.rwx())
}

/// Whether permission bits `mode` grant the rights `want` (read 4, write
/// 2, execute 1) by themselves: to the owner, by the owner's bits; to
/// anyone else, by the other bits, where the group's say the same of
/// `want` (else membership of the group decides, which is left to the
/// VFS). No ACL is involved: with one, the group bits are its mask.
fn mode_grants(mode: u16, owner: bool, want: u16) -> bool {
    let bits = if owner {
        mode >> 6
    } else if want & (mode ^ (mode >> 3)) != 0 {
        return false;
    } else {
        mode
    };
    want & !bits & 7 == 0
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
    ///
    /// The first check is the VFS's (`generic_permission()`) unless the
    /// mode bits grant the request by themselves ([`granted_by_mode`]): the
    /// VFS would find the same, but only after asking for the ACL, which a
    /// shiftfs inode never keeps (it is asked of the real inode each time).
    #[inline]
    fn permission(idmap: &MntIdmap, inode: &Inode<Self>, mask: Mask) -> Result {
        let caller = Caller::get();
        let real = inode.real();
        let shown = (inode.uid(), inode.mode());
        if !granted_by_mode(idmap, &caller, shown, real.has_no_acl(), mask) {
            inode.generic_permission(idmap, mask)?;
        }
        let _creds = cred::enter_for(inode.super_block(), caller)?;
        real.permission(mask)
    }

    /// As [`Self::permission`]; in an RCU walk nothing may sleep: only
    /// credentials made already for the caller's ids will do (overriding
    /// with them does not sleep, and the real check honours
    /// `MAY_NOT_BLOCK`).
    #[inline]
    fn permission_rcu(idmap: &MntIdmap, inode: Rcu<'_, Inode<Self>>, mask: Mask) -> Result {
        // Evicted since the walk found it: the walk starts over, blocking.
        let real = inode.real().ok_or(ECHILD)?;
        let caller = Caller::get();
        let shown = (inode.uid(), inode.mode());
        if !granted_by_mode(idmap, &caller, shown, real.has_no_acl(), mask) {
            inode.generic_permission(idmap, mask)?;
        }
        let _creds = cred::enter_made_for(inode.super_block(), caller).ok_or(ECHILD)?;
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

    /// An access the shiftfs mount records (its flags and the times shown
    /// said so, and it is writable): the real inode's atime, through the
    /// real path under a dentry of the inode, as the real mount's flags
    /// say. The atime changes on disk only where both mounts let it.
    fn update_atime(inode: &Inode<Self>) -> Result {
        let sb = inode.super_block();
        // Where the real mount records no atime, asking it would only cost
        // a dentry search and a credential switch on every listing and
        // followed symlink (reads stop earlier, in `after_read`).
        if !sb.info().real.records_atime(inode.mode().is_dir()) {
            return Ok(());
        }
        // None: nothing reaches the inode by a path any more.
        let Some(dentry) = inode.any_dentry() else {
            return Ok(());
        };
        let real = dentry.real();
        // A hard link's dentry stands on the same real inode; one made
        // stale below is left to its next revalidation.
        if !real
            .inode()
            .is_some_and(|ri| core::ptr::eq(ri, inode.real()))
        {
            return Ok(());
        }
        {
            let _creds = cred::enter(sb)?;
            sb.info().real.mount().path(real).touch_atime();
        }
        inode.set_size_and_times(inode.real());
        Ok(())
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

#[cfg(shiftfs_kunit)]
mod tests {
    use super::mode_grants;
    use crate::{kunit_expect_eq, kunit_suite, vfs::kunit::Test};

    const R: u16 = 4;
    const W: u16 = 2;
    const X: u16 = 1;

    fn the_owner_goes_by_the_owner_bits(t: &mut Test) {
        kunit_expect_eq!(t, mode_grants(0o700, true, R | W | X), true);
        kunit_expect_eq!(t, mode_grants(0o500, true, W), false);
        // Not by the others' bits, even where they would grant.
        kunit_expect_eq!(t, mode_grants(0o077, true, R), false);
    }

    fn others_go_by_the_other_bits_where_the_group_agrees(t: &mut Test) {
        kunit_expect_eq!(t, mode_grants(0o755, false, R | X), true);
        kunit_expect_eq!(t, mode_grants(0o711, false, X), true);
        kunit_expect_eq!(t, mode_grants(0o755, false, W), false);
        kunit_expect_eq!(t, mode_grants(0o700, false, X), false);
    }

    fn where_the_group_differs_membership_decides_elsewhere(t: &mut Test) {
        // Group may, others may not: a member would be granted.
        kunit_expect_eq!(t, mode_grants(0o750, false, X), false);
        // Others may, group may not: a member would be refused.
        kunit_expect_eq!(t, mode_grants(0o705, false, R), false);
        // The group differs only in bits not asked for.
        kunit_expect_eq!(t, mode_grants(0o775, false, R | X), true);
    }

    fn nothing_asked_is_granted(t: &mut Test) {
        kunit_expect_eq!(t, mode_grants(0o000, false, 0), true);
        kunit_expect_eq!(t, mode_grants(0o000, true, 0), true);
    }

    kunit_suite!(
        "shiftfs_permission",
        [
            the_owner_goes_by_the_owner_bits,
            others_go_by_the_other_bits_where_the_group_agrees,
            where_the_group_differs_membership_decides_elsewhere,
            nothing_asked_is_granted,
        ]
    );
}
