// SPDX-License-Identifier: GPL-2.0

//! Superblocks (`struct super_block`): one mounted instance of a filesystem,
//! its filling in and its operations.

use super::{
    bindings,
    dentry::{self, Dentry},
    errno::to_result,
    fs_type::FileSystem,
    inode::{self, Inode},
    user_ns::UserNamespace,
    xattr, ARef, Real,
};
use core::{ffi::c_void, fmt, marker::PhantomData};
use kernel::{
    error::{code::ENOMEM, from_result},
    ffi::c_int,
    prelude::*,
    types::Opaque,
};

/// A superblock of a filesystem of kind `T`.
///
/// # Invariants
///
/// The wrapped `struct super_block` is live while the handle is (borrowed
/// from something that pins it: a mount, a dentry or inode of it, the VFS
/// during an operation). If `T` is a [`FileSystem`], it is a superblock of
/// `T` whose `s_fs_info` holds its `T::Info`, set before `fill_super` and
/// freed by `kill_sb`.
#[repr(transparent)]
pub(crate) struct SuperBlock<T>(Opaque<bindings::super_block>, PhantomData<T>);

impl<T> SuperBlock<T> {
    /// # Safety
    ///
    /// `ptr` must point to a live superblock of kind `T` (see the type's
    /// invariants) that stays live for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `repr(transparent)`; the rest is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// The user namespace that owns the filesystem (`s_user_ns`).
    pub(crate) fn user_ns(&self) -> &UserNamespace {
        // SAFETY: `s_user_ns` is set at creation, never changes, and is held
        // by the superblock for its lifetime.
        unsafe { UserNamespace::from_raw((*self.as_raw()).s_user_ns) }
    }

    /// How many filesystems are stacked under this one (`s_stack_depth`).
    pub(crate) fn stack_depth(&self) -> i32 {
        // SAFETY: set when the superblock is filled in, constant afterwards.
        unsafe { (*self.as_raw()).s_stack_depth }
    }

    /// The device number files on this superblock show (`s_dev`).
    pub(crate) fn dev(&self) -> u32 {
        // SAFETY: set when the superblock is created, constant afterwards.
        unsafe { (*self.as_raw()).s_dev }
    }
}

/// `s_magic` of btrfs.
pub(crate) const BTRFS_SUPER_MAGIC: u64 = bindings::SHIFTFS_BTRFS_SUPER_MAGIC as u64;

impl SuperBlock<Real> {
    /// The filesystem's magic number (`s_magic`).
    pub(crate) fn magic(&self) -> u64 {
        // SAFETY: set when the superblock is filled in, constant afterwards.
        unsafe { (*self.as_raw()).s_magic as u64 }
    }

    /// This superblock as one of `T`'s, if it is.
    pub(crate) fn downcast<T: FileSystem>(&self) -> Option<&SuperBlock<T>> {
        // SAFETY: `s_type` never changes.
        let ty = unsafe { (*self.as_raw()).s_type };
        if !core::ptr::eq(ty, T::fs_type().as_raw()) {
            return None;
        }
        // SAFETY: a live superblock of `T`'s registered type is a superblock
        // of `T`, filled in (a caller reached it through a mount).
        Some(unsafe { SuperBlock::from_raw(self.as_raw()) })
    }

    /// Writes everything back and waits (`sync_filesystem()`, under
    /// `s_umount` as it requires).
    pub(crate) fn sync(&self) -> Result {
        let sb = self.as_raw();
        // SAFETY: `self` is live; `s_umount` is taken for reading around the
        // call and released.
        unsafe {
            bindings::down_read(&mut (*sb).s_umount);
            let ret = bindings::sync_filesystem(sb);
            bindings::up_read(&mut (*sb).s_umount);
            to_result(ret)
        }
    }
}

impl<T: FileSystem> SuperBlock<T> {
    /// What the filesystem keeps for this superblock.
    pub(crate) fn info(&self) -> &T::Info {
        // SAFETY: per the type's invariants `s_fs_info` is a live `T::Info`
        // until `kill_sb`, which the caller's borrow precedes.
        unsafe { &*(*self.as_raw()).s_fs_info.cast::<T::Info>() }
    }
}

/// A superblock of `T` being filled in (`fill_super`): new and locked, seen
/// by nobody else yet.
pub(crate) struct NewSuperBlock<'a, T: FileSystem> {
    sb: &'a SuperBlock<T>,
}

impl<'a, T: FileSystem> NewSuperBlock<'a, T> {
    /// The superblock.
    pub(crate) fn super_block(&self) -> &'a SuperBlock<T> {
        self.sb
    }

    /// What the filesystem keeps for it, moved there by `get_tree`.
    pub(crate) fn info(&self) -> &'a T::Info {
        self.sb.info()
    }

    /// Sets how many filesystems are stacked under this one.
    pub(crate) fn set_stack_depth(&self, depth: i32) {
        // SAFETY: the superblock is new and locked; nobody else uses it yet.
        unsafe { (*self.sb.as_raw()).s_stack_depth = depth };
    }

    /// Takes the maximum file size, the timestamp granularity and range
    /// (the VFS truncates timestamps to them) and POSIX ACL support of
    /// `real`.
    pub(crate) fn inherit_limits(&self, real: &SuperBlock<Real>) {
        let (raw, real) = (self.sb.as_raw(), real.as_raw());
        // SAFETY: the superblock is new and locked; the real one's fields are
        // constant once it is mounted.
        unsafe {
            (*raw).s_maxbytes = (*real).s_maxbytes;
            (*raw).s_time_gran = (*real).s_time_gran;
            (*raw).s_time_min = (*real).s_time_min;
            (*raw).s_time_max = (*real).s_time_max;
            (*raw).s_flags |= (*real).s_flags & bindings::SHIFTFS_SB_POSIXACL;
        }
    }

    /// Makes the superblock read-only (`SB_RDONLY`).
    pub(crate) fn set_readonly(&self) {
        // SAFETY: the superblock is new and locked; nobody else uses it yet.
        unsafe { (*self.sb.as_raw()).s_flags |= bindings::SHIFTFS_SB_RDONLY };
    }

    /// Nothing on this superblock executes (`SB_I_NOEXEC`), whatever its
    /// mounts say.
    pub(crate) fn set_noexec(&self) {
        let raw = self.sb.as_raw();
        // SAFETY: the superblock is new and locked; nobody else uses it yet.
        unsafe {
            (*raw).s_iflags |= bindings::SHIFTFS_SB_I_NOEXEC;
            (*raw).s_flags |= bindings::SHIFTFS_SB_NOEXEC;
        }
    }

    /// No device node on this superblock opens (`SB_I_NODEV`), whatever its
    /// mounts say.
    pub(crate) fn set_nodev(&self) {
        let raw = self.sb.as_raw();
        // SAFETY: the superblock is new and locked; nobody else uses it yet.
        unsafe {
            (*raw).s_iflags |= bindings::SHIFTFS_SB_I_NODEV;
            (*raw).s_flags |= bindings::SHIFTFS_SB_NODEV;
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

    /// Makes `inode` the root (`d_make_root()`), standing on `real`.
    pub(crate) fn set_root(&self, inode: ARef<Inode<T>>, real: &Dentry<Real>) -> Result {
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
            Dentry::<T>::from_raw(root).check_real();
            (*self.sb.as_raw()).s_root = root;
        }
        Ok(())
    }
}

/// Filesystem statistics for `statfs()` (`struct kstatfs`).
#[repr(transparent)]
pub(crate) struct Kstatfs(bindings::kstatfs);

impl Kstatfs {
    /// Sets the filesystem type statfs reports (`f_type`).
    pub(crate) fn set_type(&mut self, magic: usize) {
        self.0.f_type = magic as isize;
    }

    pub(super) fn as_raw(&mut self) -> *mut bindings::kstatfs {
        &mut self.0
    }
}

/// A `/proc` file being written (`struct seq_file`), for `show_options`.
#[repr(transparent)]
pub(crate) struct SeqFile(Opaque<bindings::seq_file>);

impl SeqFile {
    /// Writes formatted text (`seq_printf("%pA")`).
    pub(crate) fn print(&mut self, args: fmt::Arguments<'_>) {
        // SAFETY: `self` is the seq_file being written; `%pA` formats a
        // `fmt::Arguments` that lives across the call.
        unsafe {
            bindings::seq_printf(
                self.0.get(),
                super::c_ptr(c"%pA"),
                core::ptr::from_ref(&args).cast::<c_void>(),
            )
        };
    }
}

/// The superblock operations of `T`.
struct Table<T>(PhantomData<T>);

impl<T: FileSystem> Table<T> {
    const OPS: bindings::super_operations = bindings::super_operations {
        evict_inode: Some(inode::evict),
        // Without it, the VFS keeps unused inodes cached until memory
        // pressure (`generic_drop_inode`).
        drop_inode: if T::KEEP_UNUSED_INODES {
            None
        } else {
            Some(drop_inode)
        },
        statfs: Some(statfs::<T>),
        show_options: Some(show_options::<T>),
        sync_fs: Some(sync_fs::<T>),
        // SAFETY: all-zero is a valid table: NULL operations are optional.
        ..unsafe { inode::zeroed() }
    };
}

/// `drop_inode` that evicts an inode as soon as nothing refers to it (what
/// `generic_delete_inode`, later `inode_just_drop`, does).
///
/// # Safety
///
/// Called by the VFS with an inode whose last reference is going.
unsafe extern "C" fn drop_inode(_inode: *mut bindings::inode) -> c_int {
    1
}

/// # Safety
///
/// Called by the VFS with a dentry of a live superblock of `T` and a buffer
/// to fill in.
unsafe extern "C" fn statfs<T: FileSystem>(
    dentry: *mut bindings::dentry,
    buf: *mut bindings::kstatfs,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (dentry, buf) = unsafe { (Dentry::<T>::from_raw(dentry), &mut *buf.cast::<Kstatfs>()) };
        T::statfs(dentry, buf)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS with a seq_file and the root of a live superblock of
/// `T`.
unsafe extern "C" fn show_options<T: FileSystem>(
    m: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (m, root) = unsafe { (&mut *m.cast::<SeqFile>(), Dentry::<T>::from_raw(root)) };
        T::show_options(root.super_block(), m)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS with a live superblock of `T`, its `s_umount` held.
unsafe extern "C" fn sync_fs<T: FileSystem>(sb: *mut bindings::super_block, wait: c_int) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::sync_fs(unsafe { SuperBlock::from_raw(sb) }, wait != 0)?;
        Ok(0)
    })
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
        // its info stays until `kill_sb`. The operations are `'static`.
        let sb = unsafe {
            (*sb).s_magic = T::MAGIC;
            (*sb).s_op = &Table::<T>::OPS;
            (*sb).s_xattr = xattr::handlers::<T>();
            set_dentry_operations(sb, dentry::operations::<T>());
            SuperBlock::<T>::from_raw(sb)
        };
        T::fill_super(&NewSuperBlock { sb })?;
        Ok(0)
    })
}

/// Sets the operations of the superblock's dentries (before any is made).
///
/// # Safety
///
/// `sb` must be a new superblock, seen by nobody else yet.
unsafe fn set_dentry_operations(
    sb: *mut bindings::super_block,
    ops: &'static bindings::dentry_operations,
) {
    #[cfg(not(shiftfs_kernel_7))]
    // SAFETY: per the contract.
    unsafe {
        (*sb).s_d_op = ops
    };
    #[cfg(shiftfs_kernel_7)]
    // SAFETY: per the contract; since 6.17 the dentry flags that say which
    // operations there are are set with the operations.
    unsafe {
        bindings::set_default_d_op(sb, ops)
    };
}

/// Frees a superblock's information.
///
/// # Safety
///
/// `sb` must be a superblock of `T` being killed, after `kill_anon_super`.
pub(super) unsafe fn drop_info<T: FileSystem>(sb: *mut bindings::super_block) {
    // SAFETY: per the contract, `s_fs_info` is NULL or the box leaked by
    // `FsContext::get_tree_nodev`, and nothing uses it any more.
    unsafe {
        let info = (*sb).s_fs_info.cast::<T::Info>();
        (*sb).s_fs_info = core::ptr::null_mut();
        if !info.is_null() {
            drop(KBox::from_raw(info));
        }
    }
}
