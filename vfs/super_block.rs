// SPDX-License-Identifier: GPL-2.0

//! Superblocks (`struct super_block`): one mounted instance of a filesystem.

use super::{
    bindings,
    dentry::Dentry,
    fs_type::{self, FileSystem},
    inode::{self, Inode},
    user_ns::UserNamespace,
};
use core::mem::MaybeUninit;
use kernel::{
    error::{code::ENOMEM, from_result},
    ffi::c_int,
    prelude::*,
    types::{ARef, Opaque},
};

/// A superblock.
#[repr(transparent)]
pub(crate) struct SuperBlock(Opaque<bindings::super_block>);

impl SuperBlock {
    /// # Safety
    ///
    /// `ptr` must point to a live superblock that stays live for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `repr(transparent)`; liveness is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// The user namespace that owns the filesystem (`s_user_ns`).
    pub(crate) fn user_ns(&self) -> &UserNamespace {
        // SAFETY: `s_user_ns` is set at creation, never changes, and is held
        // by the superblock for its lifetime.
        unsafe { &*(*self.as_raw()).s_user_ns.cast() }
    }

    /// How many filesystems are stacked under this one (`s_stack_depth`).
    pub(crate) fn stack_depth(&self) -> i32 {
        // SAFETY: set when the superblock is filled in, constant afterwards.
        unsafe { (*self.as_raw()).s_stack_depth }
    }

    /// Whether this superblock is of filesystem type `ty`.
    pub(crate) fn is_of_type(&self, ty: &fs_type::Type) -> bool {
        // SAFETY: `s_type` never changes.
        core::ptr::eq(unsafe { (*self.as_raw()).s_type }, ty.as_raw())
    }

    /// The private information of a superblock of `T`, if it is one
    /// (registered as `ty`).
    pub(crate) fn info<T: FileSystem>(&self, ty: &fs_type::Type) -> Option<&T::SbInfo> {
        if !self.is_of_type(ty) {
            return None;
        }
        // SAFETY: superblocks of `T` carry a `T::SbInfo` in `s_fs_info`
        // from `fill_super` until `kill_sb`, which the caller's reference
        // to the superblock outlives.
        unsafe { (*self.as_raw()).s_fs_info.cast::<T::SbInfo>().as_ref() }
    }
}

/// A superblock of `T` being filled in (`fill_super`).
pub(crate) struct NewSuperBlock<'a, T: FileSystem> {
    sb: &'a SuperBlock,
    info: &'a T::SbInfo,
}

impl<'a, T: FileSystem> NewSuperBlock<'a, T> {
    pub(crate) fn super_block(&self) -> &'a SuperBlock {
        self.sb
    }

    pub(crate) fn info(&self) -> &'a T::SbInfo {
        self.info
    }

    /// Sets the stacking depth, magic number and operations, and takes the
    /// maximum file size, timestamp granularity and range (the VFS truncates
    /// timestamps to ours) and POSIX ACL support of the real superblock.
    pub(crate) fn set_params(&self, depth: i32, real: &SuperBlock) {
        let (raw, real) = (self.sb.as_raw(), real.as_raw());
        // SAFETY: the superblock is new and locked; nobody else uses it yet.
        // The real one's fields are constant once it is mounted.
        unsafe {
            (*raw).s_stack_depth = depth;
            (*raw).s_magic = T::MAGIC;
            (*raw).s_maxbytes = (*real).s_maxbytes;
            (*raw).s_time_gran = (*real).s_time_gran;
            (*raw).s_time_min = (*real).s_time_min;
            (*raw).s_time_max = (*real).s_time_max;
            (*raw).s_flags |= (*real).s_flags & bindings::SHIFTFS_SB_POSIXACL;
            (*raw).s_xattr = super::stacked::xattr_handlers::<T>();
            (*raw).s_op = &Ops::<T>::TABLE;
            (*raw).s_d_op = super::stacked::dentry_ops::<T>();
        }
    }

    /// Nothing on this superblock executes, so no set-id bit or file
    /// capability takes effect, and device nodes do not open
    /// (`SB_I_NOEXEC`, `SB_I_NODEV`, which `path_noexec()` and
    /// `may_open_dev()` check; `SB_NOSUID|SB_NOEXEC` say it in `s_flags`).
    pub(crate) fn forbid_exec(&self) {
        let raw = self.sb.as_raw();
        // SAFETY: the superblock is new and locked; nobody else uses it yet.
        unsafe {
            (*raw).s_iflags |= bindings::SHIFTFS_SB_I_NOEXEC | bindings::SHIFTFS_SB_I_NODEV;
            (*raw).s_flags |= bindings::SHIFTFS_SB_NOSUID | bindings::SHIFTFS_SB_NOEXEC;
        }
    }

    /// Makes `inode` the root (`d_make_root()`), stacked on `real`.
    pub(crate) fn set_root(&self, inode: ARef<Inode>, real: &Dentry) -> Result {
        let raw = ARef::into_raw(inode);
        // SAFETY: `d_make_root` takes over our reference, also on failure.
        let root = unsafe { bindings::d_make_root(raw.as_ptr().cast()) };
        if root.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: the superblock is new and locked; the root is ours, and
        // `d_release` drops the reference to `real` taken here.
        unsafe {
            (*root).d_fsdata = ARef::into_raw(ARef::from(real)).as_ptr().cast();
            (*self.sb.as_raw()).s_root = root;
        }
        Ok(())
    }
}

struct Ops<T>(core::marker::PhantomData<T>);

impl<T: FileSystem> Ops<T> {
    const TABLE: bindings::super_operations = bindings::super_operations {
        evict_inode: Some(inode::evict_stacked),
        // A stacked inode nothing refers to is not kept: it would hold its
        // real inode, and with it the blocks of a file deleted below (or
        // replaced by a rename), until memory pressure. The real inode
        // has its own cache; a new lookup finds it there.
        drop_inode: Some(bindings::generic_delete_inode),
        statfs: Some(statfs::<T>),
        show_options: Some(show_options::<T>),
        sync_fs: Some(sync_fs::<T>),
        // SAFETY: all-zero is a valid table: NULL operations are optional.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
}

/// The `T::SbInfo` of a live superblock of `T`.
///
/// # Safety
///
/// `sb` must be a live superblock of `T` between `fill_super` and `kill_sb`.
unsafe fn info_of<'a, T: FileSystem>(sb: *mut bindings::super_block) -> &'a T::SbInfo {
    // SAFETY: per the contract, `s_fs_info` is a live `T::SbInfo`.
    unsafe { &*(*sb).s_fs_info.cast::<T::SbInfo>() }
}

/// `super_operations::statfs`: the real filesystem's figures.
///
/// # Safety
///
/// Called by the VFS with a dentry of a live superblock of `T`.
unsafe extern "C" fn statfs<T: FileSystem>(
    dentry: *mut bindings::dentry,
    buf: *mut bindings::kstatfs,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let info = unsafe { info_of::<T>((*dentry).d_sb) };
        // SAFETY: the real path is held by `info`; `buf` is writable.
        kernel::error::to_result(unsafe {
            bindings::vfs_statfs(T::real_root(info).as_raw(), buf)
        })?;
        // SAFETY: as above.
        unsafe { (*buf).f_type = T::MAGIC as _ };
        Ok(0)
    })
}

/// `super_operations::sync_fs` (`syncfs()`, `sync`): writes back the real
/// filesystem, whose pages and metadata all of a stacked file's are.
///
/// # Safety
///
/// Called by the VFS with a live superblock of `T`, its `s_umount` held.
unsafe extern "C" fn sync_fs<T: FileSystem>(sb: *mut bindings::super_block, wait: c_int) -> c_int {
    if wait == 0 {
        // The waiting pass that follows does the work.
        return 0;
    }
    // SAFETY: per the contract; the real path held by `info` keeps the real
    // superblock, whose `s_umount` we take as `sync_filesystem` requires.
    unsafe {
        let info = info_of::<T>(sb);
        let real = (*(*T::real_root(info).as_raw()).mnt).mnt_sb;
        bindings::down_read(&mut (*real).s_umount);
        let ret = bindings::sync_filesystem(real);
        bindings::up_read(&mut (*real).s_umount);
        ret
    }
}

/// `super_operations::show_options`: the options /proc/mounts shows.
///
/// # Safety
///
/// Called by the VFS with a seq_file and the root of a live superblock of `T`.
unsafe extern "C" fn show_options<T: FileSystem>(
    m: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> c_int {
    // SAFETY: per the contract.
    let info = unsafe { info_of::<T>((*root).d_sb) };
    let opts = T::show_options(info);
    if !opts.is_empty() {
        // SAFETY: `m` is the seq_file being written; `opts` is NUL-terminated.
        unsafe { bindings::shiftfs_seq_puts(m, opts.as_char_ptr()) };
    }
    0
}

/// `get_tree_nodev` callback: fills a new superblock of `T`.
///
/// # Safety
///
/// Called by `get_tree_nodev` with a new superblock whose `s_fs_info` was
/// moved there from the context by `sget_fc`.
pub(super) unsafe extern "C" fn fill_super<T: FileSystem>(
    sb: *mut bindings::super_block,
    _fc: *mut bindings::fs_context,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract; the superblock is live and locked, and
        // its info stays until `kill_sb`.
        let (sb, info) = unsafe { (SuperBlock::from_raw(sb), info_of::<T>(sb)) };
        T::fill_super(&NewSuperBlock { sb, info })?;
        Ok(0)
    })
}

/// Frees a superblock's private information.
///
/// # Safety
///
/// `sb` must be a superblock of `T` being killed, after `kill_anon_super`.
pub(super) unsafe fn drop_info<T: FileSystem>(sb: *mut bindings::super_block) {
    // SAFETY: per the contract, `s_fs_info` is NULL or the box leaked by
    // `FsContext::get_tree_nodev`, and nothing uses it any more.
    unsafe {
        let info = (*sb).s_fs_info.cast::<T::SbInfo>();
        (*sb).s_fs_info = core::ptr::null_mut();
        if !info.is_null() {
            drop(KBox::from_raw(info));
        }
    }
}
