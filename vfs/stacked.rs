// SPDX-License-Identifier: GPL-2.0

//! Operations of a stacked filesystem `T`: each shiftfs dentry holds a
//! reference to the real dentry under it (`d_fsdata`), each inode to the
//! real inode (`i_private`), each open directory to a real open file
//! (`private_data`). Every call into the real filesystem runs inside
//! [`FileSystem::enter`], the credential override.

use super::{
    bindings,
    dentry::{same_name, same_name_rcu, Dentry},
    fs_type::{self, FileSystem},
    inode::{iget_stacked, Inode},
    path::Path,
    super_block::SuperBlock,
    user_ns::{Kgid, Kuid},
};
use core::mem::MaybeUninit;
use kernel::{
    error::{
        code::{ECHILD, EINVAL},
        from_result, to_result,
    },
    ffi::{c_int, c_uint},
    prelude::*,
    types::ARef,
};

/// `ACL_DONT_CACHE`: tells the VFS not to cache an inode's ACLs.
mod file;
mod namei;
mod xattr;

use file::{file_llseek, file_open, file_release, fsync, mmap, read_iter, splice_read, write_iter};
use xattr::{get_acl, get_inode_acl, listxattr, xattr_get};

/// The idmapping of mounts without one: the real filesystem is always
/// reached through such a mount's view.
fn nop_idmap() -> *mut bindings::mnt_idmap {
    // Taking the address of the static reads nothing.
    core::ptr::addr_of_mut!(bindings::nop_mnt_idmap)
}

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
                    (*(*raw).i_mapping).a_ops = &FILE_AOPS;
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
        set_acl: Some(xattr::set_acl::<T>),
        fileattr_get: Some(xattr::fileattr_get::<T>),
        fileattr_set: Some(xattr::fileattr_set::<T>),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
    const DIR_IOPS: bindings::inode_operations = bindings::inode_operations {
        lookup: Some(lookup::<T>),
        create: Some(namei::create::<T>),
        mkdir: Some(namei::mkdir::<T>),
        mknod: Some(namei::mknod::<T>),
        symlink: Some(namei::symlink::<T>),
        link: Some(namei::link::<T>),
        unlink: Some(namei::unlink::<T>),
        rmdir: Some(namei::rmdir::<T>),
        rename: Some(namei::rename::<T>),
        tmpfile: Some(namei::tmpfile::<T>),
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
        // Programs fsync a directory to make a rename or create in it
        // durable; `private_data` is the real directory's file, as for a
        // regular file.
        fsync: Some(fsync),
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
        splice_write: Some(file::splice_write),
        fallocate: Some(file::fallocate),
        fadvise: Some(file::fadvise),
        copy_file_range: Some(file::copy_file_range),
        remap_file_range: Some(file::remap_file_range),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
}

impl<T: FileSystem> Tables<T> {
    /// One handler for every name: the real filesystem's own handlers decide.
    const XATTR: bindings::xattr_handler = bindings::xattr_handler {
        prefix: c"".as_ptr().cast(),
        get: Some(xattr_get::<T>),
        set: Some(xattr::xattr_set::<T>),
        // SAFETY: see above.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
    const XATTR_HANDLERS: [*const bindings::xattr_handler; 2] =
        [&Self::XATTR as *const _, core::ptr::null()];
}

/// Address space operations of stacked regular files: I/O goes to the real
/// file, but `open(O_DIRECT)` looks for `direct_IO` here (and the real
/// file's open refuses O_DIRECT where the real filesystem does).
static FILE_AOPS: bindings::address_space_operations = bindings::address_space_operations {
    direct_IO: Some(bindings::noop_direct_IO),
    // SAFETY: all-zero is a valid operations table.
    ..unsafe { MaybeUninit::zeroed().assume_init() }
};

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
        // SAFETY: per the contract.
        return unsafe { d_revalidate_rcu::<T>(d, flags) };
    }
    // SAFETY: per the contract; a looked-up dentry has its real dentry.
    let (stacked, real) = unsafe { (Dentry::from_raw(d), real_of(d)) };
    if real.is_unhashed() || stacked.inode().is_some() != real.inode().is_some() {
        return 0;
    }
    // Renamed below (in place: a move to another directory unhashes nothing
    // either, but then the name usually differs too).
    if !same_name(stacked, real) {
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

/// `d_revalidate` in an RCU walk: valid only if nothing needs doing (the
/// real dentry still hashed, of the same name and inode, its attributes
/// those copied up, and valid for its own filesystem); anything else goes
/// back to a walk with references (ECHILD), which refreshes or invalidates.
///
/// # Safety
///
/// Called by the VFS in an RCU walk with a dentry of a superblock of `T`
/// (which may be being killed: then its sequence count fails the walk
/// afterwards, and everything read here is freed only after the walk).
unsafe fn d_revalidate_rcu<T: FileSystem>(d: *mut bindings::dentry, flags: c_uint) -> c_int {
    // SAFETY: per the contract; `d_fsdata` is NULL once `d_release` ran.
    let real = unsafe { (*d).d_fsdata.cast::<bindings::dentry>() };
    if real.is_null() {
        return ECHILD.to_errno();
    }
    // SAFETY: per the contract, both dentries stay readable in the walk.
    let (stacked, real) = unsafe { (Dentry::from_raw(d), Dentry::from_raw(real)) };
    let current = match (stacked.inode(), real.inode()) {
        (None, None) => true,
        // Owner and group changes below change ctime too, which
        // `attrs_match` compares: no id needs shifting here.
        (Some(inode), Some(ri)) => inode.stands_on(ri) && inode.attrs_match(ri),
        _ => false,
    };
    // SAFETY: an RCU walk is an RCU read-side section.
    if !current || real.is_unhashed() || !unsafe { same_name_rcu(stacked, real) } {
        return ECHILD.to_errno();
    }
    // SAFETY: `real` is readable; its operations are its filesystem's and
    // are told this is an RCU walk.
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
        // In an RCU walk nothing may sleep: only credentials made already
        // for these caller ids will do (overriding with them does not
        // sleep, and the real check honours MAY_NOT_BLOCK).
        // SAFETY: per the contract.
        let (sb, info) = unsafe { sb_info::<T>((*inode).i_sb) };
        let Some(creds) = T::made_creds(sb, info) else {
            return ECHILD.to_errno();
        };
        let _as = creds.override_current();
        // SAFETY: a stacked inode holds its real inode.
        return unsafe { bindings::inode_permission(nop_idmap(), (*inode).i_private.cast(), mask) };
    }
    from_result(|| {
        // SAFETY: per the contract; a stacked inode holds its real inode.
        let (sb, info) = unsafe { sb_info::<T>((*inode).i_sb) };
        let _creds = T::enter(sb, info)?;
        // SAFETY: as above.
        to_result(unsafe {
            bindings::inode_permission(nop_idmap(), (*inode).i_private.cast(), mask)
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
        // Only the ids asked for: the other one's field is not set.
        let real_sb = real_inode.super_block();
        if a.ia_valid & bindings::ATTR_UID != 0 {
            // SAFETY: with ATTR_UID the union holds a kernel uid (on a mount
            // without idmapping, which is all shiftfs allows).
            let uid = Kuid(unsafe { a.__bindgen_anon_1.ia_uid.val });
            a.__bindgen_anon_1.ia_uid.val = T::uid_down(sb, real_sb, uid).ok_or(EINVAL)?.0;
        }
        if a.ia_valid & bindings::ATTR_GID != 0 {
            // SAFETY: as above, with ATTR_GID.
            let gid = Kgid(unsafe { a.__bindgen_anon_2.ia_gid.val });
            a.__bindgen_anon_2.ia_gid.val = T::gid_down(sb, real_sb, gid).ok_or(EINVAL)?.0;
        }
        {
            let _creds = T::enter(sb, info)?;
            // SAFETY: the real mount lives as long as `info`.
            let _write = unsafe { namei::WriteAccess::get(namei::real_mnt::<T>(info)) }?;
            // SAFETY: `real` is live; `notify_change` wants its inode locked.
            let err = unsafe {
                bindings::shiftfs_inode_lock(real_inode.as_raw());
                let err = bindings::notify_change(
                    nop_idmap(),
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
