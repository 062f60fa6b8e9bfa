// SPDX-License-Identifier: GPL-2.0

//! Credential override: every call into the real filesystem runs with the
//! mark creator's credentials (recorded at mark time, without
//! CAP_SYS_RESOURCE), with fsuid and fsgid shifted down from the caller's,
//! through one guard that reverts on drop (`FileSystem::enter`, made of
//! [`creds`]).
//!
//! Call points (all in `vfs/stacked.rs` and `vfs/stacked/` unless noted):
//! - `lookup`: `lookup_one_len_unlocked()` in the real parent;
//! - `getattr`: `vfs_getattr()` on the real path;
//! - `get_link`: `vfs_get_link()` on the real dentry;
//! - directory `open`: `dentry_open()` of the real directory (the real file
//!   keeps these credentials for its lifetime);
//! - `iterate_shared`: `iterate_dir()` on the real directory;
//! - `permission`: `inode_permission()` of the real inode, after the check
//!   of the shiftfs inode with the caller's own credentials;
//! - `setattr`: `notify_change()` on the real dentry;
//! - namespace operations (`namei.rs`): `vfs_create()`, `vfs_mkdir()`,
//!   `vfs_mknod()`, `vfs_symlink()`, `vfs_link()`, `vfs_unlink()`,
//!   `vfs_rmdir()`, `vfs_rename()` in the real directories, and
//!   `backing_tmpfile_open()`; a device node's CAP_MKNOD is checked before,
//!   with the caller's credentials;
//! - xattrs and ACLs (`xattr.rs`): `vfs_getxattr()`, `vfs_setxattr()`,
//!   `vfs_removexattr()`, `vfs_listxattr()`, `vfs_get_acl()`,
//!   `get_inode_acl()`, `vfs_set_acl()`, `vfs_remove_acl()`,
//!   `vfs_fileattr_get()`, `vfs_fileattr_set()`;
//! - file `open`: `backing_file_open()`, which keeps these credentials in
//!   the real file; `read_iter`, `write_iter`, `splice_read`,
//!   `splice_write` and `mmap` go through the backing-file helpers with
//!   them, and `fsync`, `fallocate`, `fadvise`, `copy_file_range` and
//!   `remap_file_range` (`file.rs`) run with them too.
//!
//! Not overridden: `statfs` (`vfs_statfs()` reads no file), `llseek` of the
//! real directory file, and dropping references.

use crate::{
    shift::Shift,
    super_::SbInfo,
    vfs::{
        cred::{current_fsids, Credential},
        errno::eoverflow,
        super_block::SuperBlock,
        user_ns::{Kgid, Kuid},
    },
};
use kernel::{prelude::*, types::ARef};

/// The credentials for calls into the real filesystem of `sb` on behalf of
/// the calling task, if they were made already (in an RCU path walk nothing
/// may sleep, so nothing is made there).
pub(crate) fn made_creds(_sb: &SuperBlock, info: &SbInfo) -> Option<ARef<Credential>> {
    info.creator.get_made(current_fsids())
}

/// `fsids`, the caller's fsuid and fsgid, shifted down to the real
/// filesystem's (EOVERFLOW if it cannot hold them).
fn shifted_fsids(sb: &SuperBlock, info: &SbInfo, fsids: (Kuid, Kgid)) -> Result<(Kuid, Kgid)> {
    let shift = Shift {
        real: info.real.super_block().user_ns(),
        shifted: sb.user_ns(),
    };
    let (fsuid, fsgid) = fsids;
    Ok((
        shift.uid_down(fsuid).ok_or_else(eoverflow)?,
        shift.gid_down(fsgid).ok_or_else(eoverflow)?,
    ))
}

/// The credentials for calls into the real filesystem of `sb` on behalf of
/// the calling task.
///
/// The variants are kept by the caller's own ids: the shift of one
/// superblock never changes, so it is computed once per variant.
pub(crate) fn creds(sb: &SuperBlock, info: &SbInfo) -> Result<ARef<Credential>> {
    let key = current_fsids();
    info.creator.get(key, || shifted_fsids(sb, info, key))
}
