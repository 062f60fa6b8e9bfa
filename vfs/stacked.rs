// SPDX-License-Identifier: GPL-2.0

//! Operations of a stacked filesystem `T`: each shiftfs dentry holds a
//! reference to the real dentry under it (`d_fsdata`), each inode to the
//! real inode (`i_private`), each open directory to a real open file
//! (`private_data`). Every call into the real filesystem runs inside
//! [`FileSystem::enter`], the credential override.

use super::{
    acl::PosixAcl,
    bindings,
    dentry::Dentry,
    fs_type::{self, FileSystem},
    inode::{iget_stacked, Inode},
    path::Path,
    super_block::SuperBlock,
    user_ns::{Kgid, Kuid},
};
use core::mem::MaybeUninit;
use kernel::{
    error::{code::ECHILD, from_result, to_result},
    ffi::{c_int, c_uint},
    prelude::*,
    types::ARef,
};

/// `ACL_DONT_CACHE`: tells the VFS not to cache an inode's ACLs.
const ACL_DONT_CACHE: *mut bindings::posix_acl = usize::MAX.wrapping_sub(2) as *mut _;

fn err_ptr<T>(e: Error) -> *mut T {
    e.to_errno() as isize as *mut T
}

/// The real dentry under a stacked one.
///
/// # Safety
///
/// `d` must be a live dentry of a superblock of `T`, made by `lookup` or
/// `set_root` (which set `d_fsdata`), and the result must not outlive it.
unsafe fn real_of<'a>(d: *mut bindings::dentry) -> &'a Dentry {
    // SAFETY: per the contract, `d_fsdata` holds a reference to a live
    // dentry until `d_release`.
    unsafe { Dentry::from_raw((*d).d_fsdata.cast()) }
}

/// A superblock of `T` and its information.
///
/// # Safety
///
/// `sb` must be a live superblock of `T`, and the results must not outlive it.
unsafe fn sb_info<'a, T: FileSystem>(
    sb: *mut bindings::super_block,
) -> (&'a SuperBlock, &'a T::SbInfo) {
    // SAFETY: per the contract; `s_fs_info` of a superblock of `T` is its
    // `T::SbInfo` until `kill_sb`.
    unsafe {
        (
            SuperBlock::from_raw(sb),
            &*(*sb).s_fs_info.cast::<T::SbInfo>(),
        )
    }
}

/// The real path (mount and dentry, no references) under stacked dentry `d`.
///
/// # Safety
///
/// As for [`real_of`], and `d` of a superblock of `T`.
unsafe fn real_path<T: FileSystem>(d: *mut bindings::dentry) -> bindings::path {
    // SAFETY: per the contract.
    let ((_, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
    bindings::path {
        // SAFETY: the real root path held by `info` keeps its mount.
        mnt: unsafe { (*T::real_root(info).as_raw()).mnt },
        dentry: real.as_raw(),
    }
}

/// The real path under `p`, a path on a superblock of `T` registered as
/// `ty`; `None` if `p` is on another filesystem.
pub(crate) fn real_below<T: FileSystem>(p: &Path, ty: &fs_type::Type) -> Option<Path> {
    let info = p.super_block().info::<T>(ty)?;
    // SAFETY: `p` is on a superblock of `T`, so its dentry carries its real
    // dentry, which lives on the real root's mount; both are live while we
    // hold `p`, and `Path::get` takes references of its own.
    Some(unsafe {
        Path::get(
            (*T::real_root(info).as_raw()).mnt,
            real_of(p.dentry().as_raw()).as_raw(),
        )
    })
}

/// The stacked inode in `sb` for `real`, with attributes copied (owner and
/// group as given) and the operations for its file type.
pub(crate) fn iget<T: FileSystem>(
    sb: &SuperBlock,
    real: &Inode,
    uid: Kuid,
    gid: Kgid,
) -> Result<ARef<Inode>> {
    iget_stacked(sb, real, |new| {
        new.copy_attrs(real, uid, gid);
        let raw = new.as_raw();
        // SAFETY: the inode is new and locked; the tables are `'static`.
        unsafe {
            // Ask `get_inode_acl` every time: the real ACL may change below.
            (*raw).i_acl = ACL_DONT_CACHE;
            (*raw).i_default_acl = ACL_DONT_CACHE;
            let mode = u32::from((*raw).i_mode) & bindings::S_IFMT;
            match mode {
                bindings::S_IFDIR => {
                    (*raw).i_op = &Tables::<T>::DIR_IOPS;
                    (*raw).__bindgen_anon_3.i_fop = &Tables::<T>::DIR_FOPS;
                }
                bindings::S_IFLNK => (*raw).i_op = &Tables::<T>::LINK_IOPS,
                bindings::S_IFREG => {
                    (*raw).i_op = &Tables::<T>::FILE_IOPS;
                    (*raw).__bindgen_anon_3.i_fop = &Tables::<T>::FILE_FOPS;
                }
                _ => {
                    (*raw).i_op = &Tables::<T>::FILE_IOPS;
                    bindings::init_special_inode(raw, (*raw).i_mode, (*raw).i_rdev);
                }
            }
        }
    })
}

struct Tables<T>(core::marker::PhantomData<T>);

// SAFETY (for every `..zeroed()` below): all-zero is a valid operations
// table, NULL operations being optional.
impl<T: FileSystem> Tables<T> {
    pub(super) const DENTRY_OPS: bindings::dentry_operations = bindings::dentry_operations {
        d_revalidate: Some(d_revalidate::<T>),
        d_weak_revalidate: Some(d_weak_revalidate),
        d_release: Some(d_release),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
    /// Every stacked inode's operations; directories and symlinks add theirs.
    const FILE_IOPS: bindings::inode_operations = bindings::inode_operations {
        getattr: Some(getattr::<T>),
        setattr: Some(setattr::<T>),
        permission: Some(permission::<T>),
        listxattr: Some(listxattr::<T>),
        get_acl: Some(get_acl::<T>),
        get_inode_acl: Some(get_inode_acl::<T>),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
    const DIR_IOPS: bindings::inode_operations = bindings::inode_operations {
        lookup: Some(lookup::<T>),
        ..Self::FILE_IOPS
    };
    const LINK_IOPS: bindings::inode_operations = bindings::inode_operations {
        get_link: Some(get_link::<T>),
        ..Self::FILE_IOPS
    };
    const DIR_FOPS: bindings::file_operations = bindings::file_operations {
        open: Some(dir_open::<T>),
        release: Some(dir_release),
        iterate_shared: Some(iterate_shared::<T>),
        llseek: Some(dir_llseek),
        read: Some(bindings::generic_read_dir),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
    const FILE_FOPS: bindings::file_operations = bindings::file_operations {
        open: Some(file_open::<T>),
        release: Some(file_release),
        read_iter: Some(read_iter),
        write_iter: Some(write_iter),
        splice_read: Some(splice_read),
        llseek: Some(file_llseek),
        fsync: Some(fsync),
        mmap: Some(mmap),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
}

impl<T: FileSystem> Tables<T> {
    /// One handler for every name: the real filesystem's own handlers decide.
    const XATTR: bindings::xattr_handler = bindings::xattr_handler {
        prefix: c"".as_ptr().cast(),
        get: Some(xattr_get::<T>),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
    const XATTR_HANDLERS: [*const bindings::xattr_handler; 2] =
        [&Self::XATTR as *const _, core::ptr::null()];
}

/// The xattr handlers of superblocks of `T` (`s_xattr`).
pub(crate) fn xattr_handlers<T: FileSystem>() -> *const *const bindings::xattr_handler {
    Tables::<T>::XATTR_HANDLERS.as_ptr()
}

/// The dentry operations of superblocks of `T` (`s_d_op`).
pub(crate) fn dentry_ops<T: FileSystem>() -> &'static bindings::dentry_operations {
    &Tables::<T>::DENTRY_OPS
}

/// `d_release`: drop the reference to the real dentry.
///
/// # Safety
///
/// Called by the VFS once, for a dentry being freed.
unsafe extern "C" fn d_release(d: *mut bindings::dentry) {
    // SAFETY: `d_fsdata` is NULL or holds the reference taken by `lookup`
    // or `set_root`; nothing uses it after `d_release`.
    unsafe {
        let real = (*d).d_fsdata.cast::<bindings::dentry>();
        (*d).d_fsdata = core::ptr::null_mut();
        if !real.is_null() {
            bindings::dput(real);
        }
    }
}

/// `d_revalidate`: a stacked dentry is valid while its real dentry is
/// hashed, agrees on being positive, and is valid for its own filesystem.
///
/// # Safety
///
/// Called by the VFS with a live dentry of a superblock of `T`.
unsafe extern "C" fn d_revalidate<T: FileSystem>(d: *mut bindings::dentry, flags: c_uint) -> c_int {
    if flags & bindings::LOOKUP_RCU != 0 {
        return ECHILD.to_errno();
    }
    // SAFETY: per the contract; a looked-up dentry has its real dentry.
    let (stacked, real) = unsafe { (Dentry::from_raw(d), real_of(d)) };
    if real.is_unhashed() || stacked.inode().is_some() != real.inode().is_some() {
        return 0;
    }
    if let (Some(inode), Some(ri)) = (stacked.inode(), real.inode()) {
        // Changes made below shiftfs (chmod on the real path, say) must
        // reach the attributes `permission` checks.
        // SAFETY: a live dentry of `T`; the copy is made as overlayfs makes
        // it, without the inode lock, of fields the VFS reads unlocked.
        unsafe { refresh::<T>((*d).d_sb, inode, ri) };
    }
    // SAFETY: `real` is live; its operations are its filesystem's.
    unsafe {
        let ops = (*real.as_raw()).d_op;
        match ops.as_ref().and_then(|o| o.d_revalidate) {
            Some(reval) => reval(real.as_raw(), flags),
            None => 1,
        }
    }
}

/// Copies the real inode's attributes up, owner and group shifted.
///
/// # Safety
///
/// `sb` must be the live superblock of `T` that `inode` belongs to.
unsafe fn refresh<T: FileSystem>(sb: *mut bindings::super_block, inode: &Inode, real: &Inode) {
    // SAFETY: per the contract.
    let sb = unsafe { SuperBlock::from_raw(sb) };
    let (uid, gid) = T::shift_ids(sb, real.super_block(), real.uid(), real.gid());
    // SAFETY: see `copy_attrs`: racing readers see old or new values of
    // word-sized fields, as with overlayfs's copy.
    unsafe { super::inode::copy_attrs(inode.as_raw(), real, uid, gid) };
}

/// `d_weak_revalidate`: delegated to the real dentry's, where it has one.
///
/// # Safety
///
/// Called by the VFS with a live, looked-up dentry of a stacked filesystem.
unsafe extern "C" fn d_weak_revalidate(d: *mut bindings::dentry, flags: c_uint) -> c_int {
    // SAFETY: per the contract; `real_of` needs only `d_fsdata`, set for
    // every looked-up dentry, and the real dentry's operations are its own.
    unsafe {
        let real = real_of(d);
        let ops = (*real.as_raw()).d_op;
        match ops.as_ref().and_then(|o| o.d_weak_revalidate) {
            Some(reval) => reval(real.as_raw(), flags),
            None => 1,
        }
    }
}

/// `lookup`: look the name up in the real directory and stack on the result.
///
/// # Safety
///
/// Called by the VFS with a directory of `T` and a new, unhashed dentry in it.
unsafe extern "C" fn lookup<T: FileSystem>(
    dir: *mut bindings::inode,
    d: *mut bindings::dentry,
    _flags: c_uint,
) -> *mut bindings::dentry {
    let res = (|| -> Result<*mut bindings::dentry> {
        // SAFETY: `dir` is a live inode of a superblock of `T`.
        let (sb, info) = unsafe { sb_info::<T>((*dir).i_sb) };
        // SAFETY: the parent of a dentry being looked up is a live,
        // looked-up dentry of `T` (the VFS holds it), and its name is stable.
        let (real_parent, name, len) = unsafe {
            let name = &(*d).d_name;
            (
                real_of((*d).d_parent),
                name.name,
                name.__bindgen_anon_1.__bindgen_anon_1.len,
            )
        };
        let real = {
            let _creds = T::enter(sb, info)?;
            // SAFETY: `real_parent` is live and `name`/`len` its child's name.
            kernel::error::from_err_ptr(unsafe {
                bindings::lookup_one_len_unlocked(name.cast(), real_parent.as_raw(), len as c_int)
            })?
        };
        // SAFETY: `d` is ours until it is spliced; `d_release` drops the
        // reference `lookup_one_len_unlocked` gave us.
        unsafe { (*d).d_fsdata = real.cast() };
        // SAFETY: `real` is live (we hold it).
        let inode = match unsafe { Dentry::from_raw(real) }.inode() {
            None => core::ptr::null_mut(),
            Some(ri) => {
                let (uid, gid) = T::shift_ids(sb, ri.super_block(), ri.uid(), ri.gid());
                ARef::into_raw(iget::<T>(sb, ri, uid, gid)?).as_ptr().cast()
            }
        };
        // SAFETY: `d_splice_alias` takes over our inode reference.
        Ok(unsafe { bindings::d_splice_alias(inode, d) })
    })();
    res.unwrap_or_else(err_ptr)
}

/// `getattr`: the real inode's attributes with owner and group shifted.
///
/// # Safety
///
/// Called by the VFS with a path on a superblock of `T`.
unsafe extern "C" fn getattr<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    path: *const bindings::path,
    stat: *mut bindings::kstat,
    mask: u32,
    flags: c_uint,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract, `path` is live and looked up.
        let (d, sb_raw) = unsafe { ((*path).dentry, (*(*path).dentry).d_sb) };
        // SAFETY: as above.
        let ((sb, info), real) = unsafe { (sb_info::<T>(sb_raw), real_path::<T>(d)) };
        {
            let _creds = T::enter(sb, info)?;
            // With AT_GETATTR_NOSEC the caller has done the security check
            // (and vfs_getattr() would refuse it).
            let getattr = if flags & bindings::AT_GETATTR_NOSEC != 0 {
                bindings::vfs_getattr_nosec
            } else {
                bindings::vfs_getattr
            };
            // SAFETY: `real` is a live path; `stat` is writable.
            to_result(unsafe { getattr(&real, stat, mask, flags) })?;
        }
        // SAFETY: the real dentry's superblock lives as long as it does.
        let real_sb = unsafe { SuperBlock::from_raw((*real.dentry).d_sb) };
        // SAFETY: `stat` was filled in above.
        unsafe {
            let (uid, gid) =
                T::shift_ids(sb, real_sb, Kuid((*stat).uid.val), Kgid((*stat).gid.val));
            (*stat).uid.val = uid.0;
            (*stat).gid.val = gid.0;
            (*stat).dev = (*sb_raw).s_dev;
        }
        Ok(0)
    })
}

/// `get_link`: the real symlink's target.
///
/// # Safety
///
/// Called by the VFS with a symlink of `T` (and its dentry, or NULL in RCU
/// walk) and a delayed call to fill in.
unsafe extern "C" fn get_link<T: FileSystem>(
    d: *mut bindings::dentry,
    _inode: *mut bindings::inode,
    done: *mut bindings::delayed_call,
) -> *const kernel::ffi::c_char {
    if d.is_null() {
        return err_ptr(ECHILD);
    }
    // SAFETY: per the contract, `d` is a live looked-up dentry of `T`.
    let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
    match T::enter(sb, info) {
        // SAFETY: `real` is live; `done` is the caller's delayed call.
        Ok(_creds) => unsafe { bindings::vfs_get_link(real.as_raw(), done) },
        Err(e) => err_ptr(e),
    }
}

/// `open` of a directory: open the real directory with the overridden
/// credentials, for `iterate_shared`.
///
/// # Safety
///
/// Called by the VFS with a directory of `T` being opened.
unsafe extern "C" fn dir_open<T: FileSystem>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (d, flags) = unsafe { ((*file).f_path.dentry, (*file).f_flags) };
        // SAFETY: as above.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_path::<T>(d)) };
        let _creds = T::enter(sb, info)?;
        // SAFETY: `real` is a live path; the file opened takes its own
        // references and the (overridden) credentials of this task.
        let real_file = kernel::error::from_err_ptr(unsafe {
            bindings::dentry_open(&real, flags as c_int, bindings::shiftfs_current_cred())
        })?;
        // SAFETY: `file` is being opened; `release` drops `real_file`.
        unsafe { (*file).private_data = real_file.cast() };
        Ok(0)
    })
}

/// `release` of a directory: close the real one.
///
/// # Safety
///
/// Called by the VFS once, for a directory file opened by `dir_open`.
unsafe extern "C" fn dir_release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `private_data` is the real file from `dir_open`, dropped once.
    unsafe { bindings::fput((*file).private_data.cast()) };
    0
}

/// `iterate_shared`: the real directory's entries, from the same position.
///
/// # Safety
///
/// Called by the VFS with a directory file opened by `dir_open`, holding
/// its position lock.
unsafe extern "C" fn iterate_shared<T: FileSystem>(
    file: *mut bindings::file,
    ctx: *mut bindings::dir_context,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract; the real file is private to this open
        // file, whose position lock serialises these calls.
        let (d, real_file) = unsafe {
            let real_file = (*file).private_data.cast::<bindings::file>();
            (*real_file).f_pos = (*ctx).pos;
            ((*file).f_path.dentry, real_file)
        };
        // SAFETY: as above.
        let (sb, info) = unsafe { sb_info::<T>((*d).d_sb) };
        let _creds = T::enter(sb, info)?;
        // SAFETY: `real_file` is an open directory and `ctx` the caller's.
        to_result(unsafe { bindings::iterate_dir(real_file, ctx) })?;
        Ok(0)
    })
}

/// `llseek` of a directory: seek the real one and follow it.
///
/// # Safety
///
/// Called by the VFS with a directory file opened by `dir_open`.
unsafe extern "C" fn dir_llseek(file: *mut bindings::file, offset: i64, whence: c_int) -> i64 {
    // SAFETY: `private_data` is the real file from `dir_open`.
    unsafe {
        let real_file = (*file).private_data.cast::<bindings::file>();
        let pos = bindings::vfs_llseek(real_file, offset, whence);
        if pos >= 0 {
            (*file).f_pos = pos;
        }
        pos
    }
}

/// `permission`: first the shiftfs inode, with the caller's credentials in
/// its namespace; then the real inode, with the overridden credentials.
///
/// # Safety
///
/// Called by the VFS with a live inode of `T`.
unsafe extern "C" fn permission<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    inode: *mut bindings::inode,
    mask: c_int,
) -> c_int {
    // SAFETY: per the contract.
    let err = unsafe { bindings::generic_permission(idmap, inode, mask) };
    if err != 0 {
        return err;
    }
    if mask & bindings::MAY_NOT_BLOCK as c_int != 0 {
        // Overriding credentials may sleep: not in an RCU walk.
        return ECHILD.to_errno();
    }
    from_result(|| {
        // SAFETY: per the contract; a stacked inode holds its real inode.
        let (sb, info) = unsafe { sb_info::<T>((*inode).i_sb) };
        let _creds = T::enter(sb, info)?;
        // SAFETY: as above.
        to_result(unsafe {
            bindings::inode_permission(
                core::ptr::addr_of_mut!(bindings::nop_mnt_idmap),
                (*inode).i_private.cast(),
                mask,
            )
        })?;
        Ok(0)
    })
}

/// `setattr`: checked against the shiftfs inode, applied to the real one
/// with owner and group shifted down, then copied back up.
///
/// # Safety
///
/// Called by the VFS with a live dentry of `T` whose inode it has locked.
unsafe extern "C" fn setattr<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    d: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        to_result(unsafe { bindings::setattr_prepare(idmap, d, attr) })?;
        // SAFETY: per the contract; `attr` is the caller's, read only here.
        let ((sb, info), real, mut a) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d), *attr) };
        let real_inode = real.inode().ok_or(kernel::error::code::ENOENT)?;
        // The real filesystem must not see the shiftfs file, nor change a
        // mode that killing set-id bits already accounts for.
        a.ia_valid &= !bindings::ATTR_FILE;
        if a.ia_valid & (bindings::ATTR_KILL_SUID | bindings::ATTR_KILL_SGID) != 0 {
            a.ia_valid &= !bindings::ATTR_MODE;
        }
        if a.ia_valid & (bindings::ATTR_UID | bindings::ATTR_GID) != 0 {
            let ids = &a;
            // SAFETY: the union holds kernel ids on a mount without idmapping,
            // which is all shiftfs allows.
            let uid = unsafe { ids.__bindgen_anon_1.ia_uid.val };
            // SAFETY: as above.
            let gid = unsafe { ids.__bindgen_anon_2.ia_gid.val };
            let (uid, gid) = T::shift_ids_down(sb, real_inode.super_block(), Kuid(uid), Kgid(gid))
                .ok_or(kernel::error::code::EINVAL)?;
            a.__bindgen_anon_1.ia_uid.val = uid.0;
            a.__bindgen_anon_2.ia_gid.val = gid.0;
        }
        {
            let _creds = T::enter(sb, info)?;
            // SAFETY: `real` is live; `notify_change` wants its inode locked.
            let err = unsafe {
                bindings::shiftfs_inode_lock(real_inode.as_raw());
                let err = bindings::notify_change(
                    core::ptr::addr_of_mut!(bindings::nop_mnt_idmap),
                    real.as_raw(),
                    &mut a,
                    core::ptr::null_mut(),
                );
                bindings::shiftfs_inode_unlock(real_inode.as_raw());
                err
            };
            to_result(err)?;
        }
        let (uid, gid) = T::shift_ids(
            sb,
            real_inode.super_block(),
            real_inode.uid(),
            real_inode.gid(),
        );
        // SAFETY: the VFS holds the shiftfs inode's lock.
        unsafe { super::inode::copy_attrs((*d).d_inode, real_inode, uid, gid) };
        Ok(0)
    })
}

/// The real file of an open shiftfs file.
///
/// # Safety
///
/// `file` must be a shiftfs file opened by `file_open` or `dir_open`.
unsafe fn real_file(file: *mut bindings::file) -> *mut bindings::file {
    // SAFETY: per the contract.
    unsafe { (*file).private_data.cast() }
}

/// Flags `fcntl(F_SETFL)` may change.
const SETFL_MASK: u32 =
    bindings::O_APPEND | bindings::O_NONBLOCK | bindings::O_NDELAY | bindings::O_DIRECT;

/// Carries `fcntl(F_SETFL)` changes of `file` over to its real file.
///
/// # Safety
///
/// As for [`real_file`].
unsafe fn sync_flags(file: *mut bindings::file) -> Result {
    // SAFETY: per the contract; `f_flags` is read as `fcntl` writes it.
    unsafe {
        let real = real_file(file);
        let flags = (*file).f_flags & SETFL_MASK;
        if ((*real).f_flags & SETFL_MASK) == flags {
            return Ok(());
        }
        if flags & bindings::O_DIRECT != 0
            && (*real).f_mode & bindings::SHIFTFS_FMODE_CAN_ODIRECT == 0
        {
            return Err(kernel::error::code::EINVAL);
        }
        bindings::shiftfs_spin_lock(&mut (*real).f_lock);
        (*real).f_flags = ((*real).f_flags & !SETFL_MASK) | flags;
        (*real).f_iocb_flags = bindings::shiftfs_iocb_flags(real) as _;
        bindings::shiftfs_spin_unlock(&mut (*real).f_lock);
    }
    Ok(())
}

/// The backing-file context for I/O on `file`: the credentials it was
/// opened with, and callbacks that bring the real inode's times and size
/// up after access and writes.
///
/// # Safety
///
/// As for [`real_file`].
unsafe fn io_ctx(file: *mut bindings::file) -> bindings::backing_file_ctx {
    bindings::backing_file_ctx {
        // SAFETY: per the contract; the real file keeps its credentials.
        cred: unsafe { (*real_file(file)).f_cred },
        user_file: file,
        accessed: Some(file_accessed),
        end_write: Some(file_end_write),
    }
}

/// `backing_file_ctx::accessed` and `end_write`: copy size and times up.
///
/// # Safety
///
/// Called by the backing-file helpers with a shiftfs file.
unsafe extern "C" fn file_accessed(file: *mut bindings::file) {
    // SAFETY: per the contract; a stacked inode holds its real inode.
    unsafe {
        let inode = (*file).f_inode;
        super::inode::copy_size_times(inode, Inode::from_raw((*inode).i_private.cast()));
    }
}

/// See [`file_accessed`].
///
/// # Safety
///
/// As for [`file_accessed`].
unsafe extern "C" fn file_end_write(file: *mut bindings::file, _pos: i64, _ret: isize) {
    // SAFETY: per the contract.
    unsafe { file_accessed(file) };
}

/// `open` of a regular file: the real inode must allow it to the overridden
/// credentials; the real file is opened as a backing file with them.
///
/// # Safety
///
/// Called by the VFS with a regular file of `T` being opened.
unsafe extern "C" fn file_open<T: FileSystem>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (d, flags) = unsafe { ((*file).f_path.dentry, (*file).f_flags) };
        // SAFETY: as above.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_path::<T>(d)) };
        let creds = T::creds(sb, info)?;
        let _as = creds.override_current();
        let mut access = match flags & bindings::O_ACCMODE {
            0 => bindings::MAY_READ,
            1 => bindings::MAY_WRITE,
            _ => bindings::MAY_READ | bindings::MAY_WRITE,
        };
        if flags & bindings::O_APPEND != 0 {
            access |= bindings::MAY_APPEND;
        }
        // SAFETY: `real` is a live path of a positive dentry.
        to_result(unsafe {
            bindings::inode_permission(
                core::ptr::addr_of_mut!(bindings::nop_mnt_idmap),
                (*real.dentry).d_inode,
                (bindings::MAY_OPEN | access) as c_int,
            )
        })?;
        // SAFETY: `file` is being opened; the backing file takes its own
        // references to `real` and `creds`; `release` drops it.
        let rf = kernel::error::from_err_ptr(unsafe {
            bindings::backing_file_open(file, flags as c_int, &real, creds.as_raw())
        })?;
        // SAFETY: as above.
        unsafe { (*file).private_data = rf.cast() };
        Ok(0)
    })
}

/// `release` of a regular file: close the real one.
///
/// # Safety
///
/// Called by the VFS once, for a file opened by `file_open`.
unsafe extern "C" fn file_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { bindings::fput(real_file(file)) };
    0
}

/// `read_iter`, through the real file.
///
/// # Safety
///
/// Called by the VFS with an I/O request on a file opened by `file_open`.
unsafe extern "C" fn read_iter(iocb: *mut bindings::kiocb, iter: *mut bindings::iov_iter) -> isize {
    // SAFETY: per the contract.
    unsafe {
        let file = (*iocb).ki_filp;
        if let Err(e) = sync_flags(file) {
            return e.to_errno() as isize;
        }
        let mut ctx = io_ctx(file);
        bindings::backing_file_read_iter(real_file(file), iter, iocb, (*iocb).ki_flags, &mut ctx)
    }
}

/// `write_iter`, through the real file, serialised on the shiftfs inode.
///
/// # Safety
///
/// Called by the VFS with an I/O request on a file opened by `file_open`.
unsafe extern "C" fn write_iter(
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: per the contract.
    unsafe {
        let file = (*iocb).ki_filp;
        if let Err(e) = sync_flags(file) {
            return e.to_errno() as isize;
        }
        let inode = (*file).f_inode;
        let mut ctx = io_ctx(file);
        bindings::shiftfs_inode_lock(inode);
        let ret = bindings::backing_file_write_iter(
            real_file(file),
            iter,
            iocb,
            (*iocb).ki_flags,
            &mut ctx,
        );
        bindings::shiftfs_inode_unlock(inode);
        ret
    }
}

/// `splice_read`, from the real file.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
unsafe extern "C" fn splice_read(
    file: *mut bindings::file,
    ppos: *mut i64,
    pipe: *mut bindings::pipe_inode_info,
    len: usize,
    flags: c_uint,
) -> isize {
    // SAFETY: per the contract.
    unsafe {
        let mut ctx = io_ctx(file);
        bindings::backing_file_splice_read(real_file(file), ppos, pipe, len, flags, &mut ctx)
    }
}

/// `mmap`: map the real file.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
unsafe extern "C" fn mmap(file: *mut bindings::file, vma: *mut bindings::vm_area_struct) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        let mut ctx = io_ctx(file);
        bindings::backing_file_mmap(real_file(file), vma, &mut ctx)
    }
}

/// `llseek`: seek the real file (SEEK_DATA and SEEK_HOLE included) from the
/// shiftfs file's position, under the shiftfs inode's lock.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
unsafe extern "C" fn file_llseek(file: *mut bindings::file, offset: i64, whence: c_int) -> i64 {
    // SAFETY: per the contract.
    unsafe {
        let (inode, real) = ((*file).f_inode, real_file(file));
        bindings::shiftfs_inode_lock(inode);
        (*real).f_pos = (*file).f_pos;
        let pos = bindings::vfs_llseek(real, offset, whence);
        (*file).f_pos = (*real).f_pos;
        bindings::shiftfs_inode_unlock(inode);
        pos
    }
}

/// `fsync`, of the real file with its credentials.
///
/// # Safety
///
/// Called by the VFS with a file opened by `file_open`.
unsafe extern "C" fn fsync(
    file: *mut bindings::file,
    start: i64,
    end: i64,
    datasync: c_int,
) -> c_int {
    // SAFETY: per the contract; the real file keeps the credentials it was
    // opened with, and `override_creds` takes a reference of its own.
    unsafe {
        let real = real_file(file);
        let old = bindings::override_creds((*real).f_cred);
        let ret = bindings::vfs_fsync_range(real, start, end, datasync);
        bindings::revert_creds(old);
        ret
    }
}

/// The `get` of the catch-all xattr handler: the real inode's value.
/// `trusted.*` reaches here only for callers the VFS let through.
///
/// # Safety
///
/// Called by the VFS with a dentry of `T`, a NUL-terminated name and a
/// buffer of `size` bytes (or NULL to ask the size).
unsafe extern "C" fn xattr_get<T: FileSystem>(
    _handler: *const bindings::xattr_handler,
    d: *mut bindings::dentry,
    _inode: *mut bindings::inode,
    name: *const kernel::ffi::c_char,
    buffer: *mut core::ffi::c_void,
    size: usize,
) -> c_int {
    if d.is_null() {
        return super::errno::eopnotsupp().to_errno();
    }
    from_result(|| {
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let _creds = T::enter(sb, info)?;
        // SAFETY: `real` is live; `name` and `buffer` are the caller's.
        let n = unsafe {
            bindings::vfs_getxattr(
                core::ptr::addr_of_mut!(bindings::nop_mnt_idmap),
                real.as_raw(),
                name,
                buffer,
                size,
            )
        };
        to_result(n as c_int)?;
        Ok(n as c_int)
    })
}

/// `listxattr`: the real names, without `trusted.*` for callers who could
/// not read them (the real filesystem lists them to the overridden
/// credentials).
///
/// # Safety
///
/// Called by the VFS with a dentry of `T` and a buffer of `size` bytes (or
/// NULL to ask the size).
unsafe extern "C" fn listxattr<T: FileSystem>(
    d: *mut bindings::dentry,
    list: *mut kernel::ffi::c_char,
    size: usize,
) -> isize {
    let res = (|| -> Result<isize> {
        // Checked with the caller's own credentials, before the override.
        // SAFETY: `capable` only reads the calling task's credentials.
        let trusted = unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) };
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let names = {
            let _creds = T::enter(sb, info)?;
            let mut buf: KVec<u8>;
            loop {
                let (dentry, none) = (real.as_raw(), core::ptr::null_mut());
                // SAFETY: `real` is live; a NULL buffer asks for the size.
                let want = unsafe { bindings::vfs_listxattr(dentry, none, 0) };
                let want = usize::try_from(want).map_err(|_| Error::from_errno(want as c_int))?;
                buf = KVec::with_capacity(want, GFP_KERNEL)?;
                // SAFETY: `buf` has room for `want` bytes.
                let got = unsafe {
                    bindings::vfs_listxattr(real.as_raw(), buf.as_mut_ptr().cast(), want)
                };
                match usize::try_from(got) {
                    // SAFETY: `vfs_listxattr` wrote `got <= want` bytes.
                    Ok(got) => break unsafe { buf.set_len(got) },
                    // A name was added in between: ask again.
                    Err(_) if got == kernel::error::code::ERANGE.to_errno() as isize => continue,
                    Err(_) => return Err(Error::from_errno(got as c_int)),
                }
            }
            buf
        };
        let mut out = KVec::<u8>::with_capacity(names.len(), GFP_KERNEL)?;
        for name in names.split_inclusive(|&b| b == 0) {
            if trusted || !name.starts_with(b"trusted.") {
                out.extend_from_slice(name, GFP_KERNEL)?;
            }
        }
        if size == 0 {
            return Ok(out.len() as isize);
        }
        if out.len() > size {
            return Err(kernel::error::code::ERANGE);
        }
        // SAFETY: the caller's buffer holds `size >= out.len()` bytes.
        unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), list.cast(), out.len()) };
        Ok(out.len() as isize)
    })();
    res.unwrap_or_else(|e| e.to_errno() as isize)
}

/// The `system.posix_acl_*` name of an ACL type.
fn acl_name(acl_type: c_int) -> Result<&'static core::ffi::CStr> {
    match acl_type as u32 {
        bindings::ACL_TYPE_ACCESS => Ok(c"system.posix_acl_access"),
        bindings::ACL_TYPE_DEFAULT => Ok(c"system.posix_acl_default"),
        _ => Err(kernel::error::code::EINVAL),
    }
}

/// Shifts an ACL the real filesystem returned up for `sb`; NULL stays NULL.
///
/// # Safety
///
/// `raw` must be NULL, an ERR_PTR, or an ACL with a reference we own, of
/// an inode of `real_sb`.
unsafe fn acl_result_up<T: FileSystem>(
    sb: &SuperBlock,
    real_sb: &SuperBlock,
    raw: *mut bindings::posix_acl,
) -> Result<*mut bindings::posix_acl> {
    let raw = kernel::error::from_err_ptr(raw)?;
    // SAFETY: per the contract.
    match unsafe { PosixAcl::from_raw_owned(raw) } {
        None => Ok(core::ptr::null_mut()),
        Some(acl) => Ok(PosixAcl::into_raw(T::acl_up(sb, real_sb, &acl)?)),
    }
}

/// `get_acl`: the real ACL, with its named entries shifted.
///
/// # Safety
///
/// Called by the VFS with a dentry of `T`.
unsafe extern "C" fn get_acl<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    d: *mut bindings::dentry,
    acl_type: c_int,
) -> *mut bindings::posix_acl {
    let res = (|| -> Result<*mut bindings::posix_acl> {
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let name = acl_name(acl_type)?;
        let raw = {
            let _creds = T::enter(sb, info)?;
            // SAFETY: `real` is live; `name` is NUL-terminated.
            unsafe {
                bindings::vfs_get_acl(
                    core::ptr::addr_of_mut!(bindings::nop_mnt_idmap),
                    real.as_raw(),
                    name.as_ptr().cast(),
                )
            }
        };
        if raw as isize == -(bindings::ENODATA as isize) {
            return Ok(core::ptr::null_mut());
        }
        let real_sb = real
            .inode()
            .ok_or(kernel::error::code::ENOENT)?
            .super_block();
        // SAFETY: `vfs_get_acl` returns an ACL reference, or an ERR_PTR.
        unsafe { acl_result_up::<T>(sb, real_sb, raw) }
    })();
    res.unwrap_or_else(err_ptr)
}

/// `get_inode_acl`, for permission checks: the real inode's ACL, shifted.
///
/// # Safety
///
/// Called by the VFS with an inode of `T`.
unsafe extern "C" fn get_inode_acl<T: FileSystem>(
    inode: *mut bindings::inode,
    acl_type: c_int,
    rcu: bool,
) -> *mut bindings::posix_acl {
    if rcu {
        return err_ptr(ECHILD);
    }
    let res = (|| -> Result<*mut bindings::posix_acl> {
        // SAFETY: per the contract; a stacked inode holds its real inode.
        let (sb, info) = unsafe { sb_info::<T>((*inode).i_sb) };
        // SAFETY: as above.
        let real = unsafe { Inode::from_raw((*inode).i_private.cast()) };
        let raw = {
            let _creds = T::enter(sb, info)?;
            // SAFETY: `real` is live.
            unsafe { bindings::get_inode_acl(real.as_raw(), acl_type) }
        };
        // SAFETY: `get_inode_acl` returns NULL, an ERR_PTR or a reference.
        unsafe { acl_result_up::<T>(sb, real.super_block(), raw) }
    })();
    res.unwrap_or_else(err_ptr)
}
