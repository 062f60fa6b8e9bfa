// SPDX-License-Identifier: GPL-2.0

//! Filesystem types (`struct file_system_type`) and their registration.

use super::{
    bindings,
    dentry::{Dentry, DentryOperations},
    errno::to_result,
    file::{DirOperations, FileOperations},
    fs_context,
    inode::InodeOperations,
    namei::NamespaceOperations,
    param,
    super_block::{self, Kstatfs, NewSuperBlock, SeqFile, SuperBlock},
    xattr::XattrOperations,
};
use core::{ffi::CStr, marker::PhantomData};
use kernel::{prelude::*, types::Opaque};

/// A stacked filesystem implemented in Rust: its type, its mount requests,
/// its superblocks, and (through the supertraits, implemented in the files
/// of each concern) the operations of its inodes, dentries and files.
pub(crate) trait FileSystem:
    Sized
    + Send
    + Sync
    + 'static
    + InodeOperations
    + NamespaceOperations
    + DentryOperations
    + FileOperations
    + DirOperations
    + XattrOperations
{
    /// The name that `mount -t` and /proc/filesystems know it by.
    const NAME: &'static CStr;
    /// `FS_*` flags of `struct file_system_type`.
    const FLAGS: i32;
    /// The mount parameters it accepts.
    const PARAMS: param::Table;
    /// What a mount request collects while it is being configured.
    type Context: fs_context::Context<Self>;
    /// The magic number of its superblocks (`s_magic`).
    const MAGIC: usize;
    /// What a superblock keeps (`s_fs_info`), from `get_tree` to `kill_sb`.
    type Info: Send + Sync;
    /// Whether inodes nothing refers to stay cached (`drop_inode`).
    const KEEP_UNUSED_INODES: bool;

    /// The registered type (a `static` of the module).
    fn fs_type() -> &'static Type;

    /// Fills in a new superblock: its parameters and root.
    fn fill_super(sb: &NewSuperBlock<'_, Self>) -> Result;

    /// `statfs` of the filesystem `dentry` is on.
    fn statfs(dentry: &Dentry<Self>, buf: &mut Kstatfs) -> Result;

    /// The mount options /proc/mounts shows, each with a leading comma.
    fn show_options(sb: &SuperBlock<Self>, m: &mut SeqFile) -> Result;

    /// Writes the superblock back (`syncfs()`, `sync`): a pass that starts
    /// writeback, then one that waits (`wait`).
    fn sync_fs(sb: &SuperBlock<Self>, wait: bool) -> Result;
}

/// `FS_USERNS_MOUNT`: can be mounted by root of a user namespace.
pub(crate) const FS_USERNS_MOUNT: i32 = bindings::FS_USERNS_MOUNT as i32;

/// A filesystem type, handed to the VFS while a [`Registration`] lives.
///
/// Lives in a `static` of the module, as in C: the VFS links it into its list
/// and lockdep uses its embedded lock class keys, which must not move.
#[repr(transparent)]
pub(crate) struct Type(Opaque<bindings::file_system_type>);

// SAFETY: Rust only writes the C structure before registering it (see
// `Registration::new`); once registered, the VFS serialises its own accesses
// under `file_systems_lock`.
unsafe impl Sync for Type {}

impl Type {
    /// The type of `T`, with its callbacks filled in.
    pub(crate) const fn new<T: FileSystem>() -> Self {
        Self(Opaque::new(bindings::file_system_type {
            name: super::c_ptr(T::NAME),
            fs_flags: T::FLAGS,
            init_fs_context: Some(fs_context::init_fs_context::<T>),
            parameters: T::PARAMS.as_ptr(),
            kill_sb: Some(kill_sb::<T>),
            // SAFETY: all-zero is the valid "unset" value of every other
            // field (NULL pointers, empty lists, unregistered lock class keys).
            ..unsafe { super::inode::zeroed() }
        }))
    }
}

impl Type {
    /// The C structure, for the VFS.
    pub(super) fn as_raw(&self) -> *mut bindings::file_system_type {
        self.0.get()
    }
}

/// `kill_sb`: tear down a superblock of `T`.
///
/// # Safety
///
/// Called by the VFS only, with a superblock of this filesystem type that it
/// is done with.
unsafe extern "C" fn kill_sb<T: FileSystem>(sb: *mut bindings::super_block) {
    // SAFETY: per the function's contract `sb` is a live superblock being
    // killed; our superblocks are anonymous (`get_tree_nodev`). Its inodes
    // are evicted by `kill_anon_super`, before the info they may use goes.
    unsafe {
        bindings::kill_anon_super(sb);
        super_block::drop_info::<T>(sb);
    }
}

/// Keeps a filesystem type registered; unregisters it on drop.
pub(crate) struct Registration<T: FileSystem> {
    ty: &'static Type,
    _fs: PhantomData<T>,
}

impl<T: FileSystem> Registration<T> {
    /// Registers `T::fs_type()`, owned by `module`.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let ty = T::fs_type();
        let raw = ty.0.get();
        // SAFETY: `raw` points to a valid `file_system_type`. It is not
        // registered yet (registering the same type twice fails below before
        // the VFS looks at it), so nothing else reads `owner` concurrently:
        // module init runs once.
        unsafe { (*raw).owner = module.as_ptr().cast() };
        // SAFETY: `raw` is valid and lives for `'static`, as the VFS requires.
        to_result(unsafe { bindings::register_filesystem(raw) })?;
        Ok(Self {
            ty,
            _fs: PhantomData,
        })
    }
}

impl<T: FileSystem> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: `self.ty` was registered by `new`. Module unload (the only
        // place a registration is dropped) cannot happen while a superblock
        // of this type holds a module reference.
        unsafe { bindings::unregister_filesystem(self.ty.0.get()) };
        // The module's RCU callbacks (vfs/acl.rs) run before its code goes.
        // SAFETY: may sleep, as module unload may.
        unsafe { bindings::rcu_barrier() };
    }
}
