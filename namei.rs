// SPDX-License-Identifier: GPL-2.0

//! Names: lookup, and the namespace operations of directories (create,
//! mkdir, mknod, symlink, link, unlink, rmdir, rename, tmpfile).
//!
//! The VFS has checked the caller against the shiftfs directory (with its
//! shifted owners) and holds its lock. Each operation then runs with the
//! creator's credentials and write access to the real mount, locks the real
//! directory, checks that the real entry under the shiftfs dentry is still
//! the one of that name in that directory (`ESTALE` otherwise: something
//! changed below, and the VFS retries with revalidation), and calls the
//! real filesystem's operation. A new entry gets the shiftfs inode of the
//! real one; the directory's attributes are shown again.

use crate::{
    cred, file, inode,
    superblock::Shiftfs,
    vfs::{
        cred::Capability,
        dentry::{Dentry, LookupFlags, NewDentry},
        errno::estale,
        inode::{Inode, Mode},
        namei::{DirLock, Entry, NamespaceOperations, RenameFlags, RenameLock, TmpFile},
        ARef, Real,
    },
};
use core::ffi::CStr;
use kernel::{
    error::code::{EINVAL, EPERM},
    prelude::*,
};

/// Whether real dentry `real` still stands where shiftfs dentry `dentry`
/// does: `there` (the entry of its name in the locked real directory), and
/// positive or negative as `dentry` is. `ESTALE` if not.
fn still_there(there: bool, real: &Dentry<Real>, dentry: &Dentry<Shiftfs>) -> Result {
    if !there || real.inode().is_some() != dentry.inode().is_some() {
        return Err(estale());
    }
    Ok(())
}

/// Calls `op` with the real directory under `entry`'s (locked, with write
/// access to its mount) and the real dentry under `entry`, checked to be
/// still `entry`'s name in it, with the creator's credentials.
fn in_real_dir(
    entry: Entry<'_, Shiftfs>,
    op: impl FnOnce(DirLock<'_>, &Dentry<Real>) -> Result,
) -> Result {
    let real = entry.dentry().real();
    let _writing = cred::enter_to_write(entry.dir().super_block())?;
    let dir = entry.parent().real().lock_dir().ok_or_else(estale)?;
    still_there(dir.has_entry(real, entry.name()), real, entry.dentry())?;
    // A reference of our own for the operation: with only the shiftfs
    // dentry's, `d_delete()` would turn the real dentry negative in place
    // under shiftfs dentries others still hold open (an unlinked file must
    // stay positive, unhashed, like any open-but-deleted file).
    let held: ARef<Dentry<Real>> = real.into();
    op(dir, &held)
}

/// Makes a new entry with `make` (see [`in_real_dir`]), then gives the
/// shiftfs dentry the shiftfs inode of the result.
fn make_entry(
    entry: Entry<'_, Shiftfs>,
    make: impl FnOnce(DirLock<'_>, &Dentry<Real>) -> Result,
) -> Result {
    in_real_dir(entry, make)?;
    inode::refresh(entry.dir());
    let real = entry.dentry().real();
    match real.inode().filter(|_| !real.is_unhashed()) {
        // Some filesystems leave the new entry to be looked up again.
        None => entry.dentry().drop_from_cache(),
        Some(ri) => {
            let inode = inode::get(entry.dir().super_block(), ri)?;
            entry.instantiate(inode)?;
        }
    }
    Ok(())
}

/// Removes an entry with `remove` (see [`in_real_dir`]), then shows the
/// directory's and the removed inode's attributes again.
fn remove_entry(
    entry: Entry<'_, Shiftfs>,
    remove: impl FnOnce(DirLock<'_>, &Dentry<Real>) -> Result,
) -> Result {
    in_real_dir(entry, remove)?;
    inode::refresh(entry.dir());
    if let Some(inode) = entry.dentry().inode() {
        inode::refresh(inode);
    }
    // Unhashed, the dentry goes away with its last user instead of staying
    // as a negative dentry that still holds the removed real dentry, and
    // with it the real inode and its blocks (the real dentry is unhashed,
    // not made negative: it had more than one user during the removal).
    entry.dentry().drop_from_cache();
    Ok(())
}

#[vtable]
impl NamespaceOperations for Shiftfs {
    /// Looks the name up in the real directory and stands on the result.
    fn lookup(
        dir: &Inode<Self>,
        dentry: NewDentry<'_, Self>,
        _flags: LookupFlags,
    ) -> Result<Option<ARef<Dentry<Self>>>> {
        let sb = dir.super_block();
        let real = {
            let _creds = cred::enter(sb)?;
            dentry.parent().real().lookup_unlocked(dentry.name())?
        };
        let inode = real.inode().map(|ri| inode::get(sb, ri)).transpose()?;
        dentry.splice(real, inode)
    }

    fn create(entry: Entry<'_, Self>, mode: Mode, excl: bool) -> Result {
        make_entry(entry, |dir, real| dir.create(real, mode, excl))
    }

    fn mkdir(entry: Entry<'_, Self>, mode: Mode) -> Result {
        make_entry(entry, |dir, real| dir.mkdir(real, mode))
    }

    /// Fifos, sockets and whiteouts for anyone the VFS let through; device
    /// nodes only for a caller with CAP_MKNOD in the initial namespace
    /// (checked here, before the override, as the real filesystem would
    /// check the caller).
    fn mknod(entry: Entry<'_, Self>, mode: Mode, dev: u32) -> Result {
        if mode.is_device_node(dev) && !Capability::MKNOD.in_init_ns() {
            return Err(EPERM);
        }
        make_entry(entry, |dir, real| dir.mknod(real, mode, dev))
    }

    fn symlink(entry: Entry<'_, Self>, target: &CStr) -> Result {
        make_entry(entry, |dir, real| dir.symlink(real, target))
    }

    /// A new name for the real inode under `old`.
    fn link(old: &Dentry<Self>, entry: Entry<'_, Self>) -> Result {
        make_entry(entry, |dir, real| dir.link(old.real(), real))
    }

    fn unlink(entry: Entry<'_, Self>) -> Result {
        remove_entry(entry, |dir, real| dir.unlink(real))
    }

    fn rmdir(entry: Entry<'_, Self>) -> Result {
        remove_entry(entry, |dir, real| dir.rmdir(real))
    }

    /// With the flags the real filesystem supports (`RENAME_NOREPLACE`,
    /// `RENAME_EXCHANGE`, `RENAME_WHITEOUT`).
    fn rename(old: Entry<'_, Self>, new: Entry<'_, Self>, flags: RenameFlags) -> Result {
        let (old_parent, new_parent) = (old.parent().real(), new.parent().real());
        let (real_old, real_new) = (old.dentry().real(), new.dentry().real());
        if old_parent.inode().is_none() || new_parent.inode().is_none() {
            return Err(estale());
        }
        {
            let _writing = cred::enter_to_write(old.dir().super_block())?;
            // Moving a directory below itself, or over one of its
            // ancestors, is refused here.
            let locked = RenameLock::lock(old_parent, real_old, new_parent, real_new, flags)?;
            still_there(locked.has_old_entry(old.name()), real_old, old.dentry())?;
            still_there(locked.has_new_entry(new.name()), real_new, new.dentry())?;
            locked.rename()?;
        }
        inode::refresh(old.dir());
        if !core::ptr::eq(new.dir(), old.dir()) {
            inode::refresh(new.dir());
        }
        for inode in [old.dentry().inode(), new.dentry().inode()]
            .into_iter()
            .flatten()
        {
            inode::refresh(inode);
        }
        Ok(())
    }

    /// An unnamed real file in the real directory, opened as the backing
    /// file with the creator's credentials (fsuid shifted, so it is owned
    /// as the caller's would be), under an unnamed shiftfs dentry that
    /// `linkat()` can give a name later.
    fn tmpfile(dir: &Inode<Self>, file: TmpFile<'_, Self>, mode: Mode) -> Result {
        let sb = dir.super_block();
        let creds = cred::creds(sb)?;
        let real_file = {
            let _writing = cred::enter_to_write(sb)?;
            let parent = sb.info().real.mount().path(file.parent().real());
            file.open_real(parent, mode, file::real_flags(file.flags()), &creds)?
        };
        let ri = real_file.dentry().inode().ok_or(EINVAL)?;
        let inode = inode::get(sb, ri)?;
        file.finish(real_file, inode)
    }
}
