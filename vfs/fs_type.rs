// SPDX-License-Identifier: GPL-2.0

//! Filesystem types (`struct file_system_type`) and their registration.

use super::{
    acl::PosixAcl,
    bindings,
    cred::{Credential, Override},
    fs_context, param,
    path::Path,
    super_block::{self, NewSuperBlock, SuperBlock},
    user_ns::{Kgid, Kuid},
};
use core::{marker::PhantomData, mem::MaybeUninit};
use kernel::{
    error::to_result,
    prelude::*,
    str::CStr,
    types::{ARef, Opaque},
};

/// A filesystem implemented in Rust.
pub(crate) trait FileSystem: Sized + Send + Sync + 'static {
    /// The name that `mount -t` and /proc/filesystems know it by.
    const NAME: &'static CStr;
    /// `FS_*` flags of `struct file_system_type`.
    const FLAGS: i32;
    /// The mount parameters it accepts.
    const PARAMS: param::Table;
    /// What a mount request collects while it is being configured.
    type Context: fs_context::Context<Self>;
    /// The magic number of its superblocks (`s_magic`, statfs's `f_type`).
    const MAGIC: usize;
    /// What a superblock keeps (`s_fs_info`), from `fill_super` to `kill_sb`.
    type SbInfo: Send + Sync;
    /// Fills in a new superblock: parameters and root.
    fn fill_super(sb: &NewSuperBlock<'_, Self>) -> Result;
    /// The real directory a superblock stands on.
    fn real_root(info: &Self::SbInfo) -> &Path;
    /// The credentials for calls into the real filesystem on behalf of the
    /// calling task.
    fn creds(sb: &SuperBlock, info: &Self::SbInfo) -> Result<ARef<Credential>>;
    /// [`Self::creds`] if they were made already (never sleeps).
    fn made_creds(sb: &SuperBlock, info: &Self::SbInfo) -> Option<ARef<Credential>>;
    /// Overrides the calling task's credentials with [`Self::creds`] until
    /// the guard is dropped.
    fn enter(sb: &SuperBlock, info: &Self::SbInfo) -> Result<Override> {
        Ok(Self::creds(sb, info)?.override_current())
    }
    /// The owner and group a stacked inode of `sb` shows for a real inode
    /// of `real_sb` owned by `uid`/`gid`.
    fn shift_ids(sb: &SuperBlock, real_sb: &SuperBlock, uid: Kuid, gid: Kgid) -> (Kuid, Kgid);
    /// The ACL a stacked inode of `sb` has for a real inode's `acl` (on a
    /// superblock `real_sb`): to show to a reader, or `for_permission`
    /// checks.
    fn acl_up(
        sb: &SuperBlock,
        real_sb: &SuperBlock,
        acl: &PosixAcl,
        for_permission: bool,
    ) -> Result<ARef<PosixAcl>>;
    /// The ACL to set on a real inode for `acl` set through `sb`.
    fn acl_down(sb: &SuperBlock, real_sb: &SuperBlock, acl: &PosixAcl) -> Result<ARef<PosixAcl>>;
    /// Whether the values of xattr `name` carry ids to translate.
    fn xattr_translated(name: &CStr) -> bool;
    /// The value a stacked inode of `sb` shows for `value` of xattr `name`
    /// (one of [`Self::xattr_translated`]) of a real inode of `real_sb`.
    fn xattr_up(
        sb: &SuperBlock,
        real_sb: &SuperBlock,
        name: &CStr,
        value: &[u8],
    ) -> Result<KVec<u8>>;
    /// The value to write on a real inode of `real_sb` for `value` of xattr
    /// `name` (one of [`Self::xattr_translated`]) set through `sb`.
    fn xattr_down(
        sb: &SuperBlock,
        real_sb: &SuperBlock,
        name: &CStr,
        value: &[u8],
    ) -> Result<KVec<u8>>;
    /// The real owner to write for `uid` set through `sb`, if the real
    /// filesystem can hold it.
    fn uid_down(sb: &SuperBlock, real_sb: &SuperBlock, uid: Kuid) -> Option<Kuid>;
    /// The real group to write for `gid` set through `sb`, if the real
    /// filesystem can hold it.
    fn gid_down(sb: &SuperBlock, real_sb: &SuperBlock, gid: Kgid) -> Option<Kgid>;
    /// Options for /proc/mounts, each with a leading comma.
    fn show_options(info: &Self::SbInfo) -> &'static CStr;
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
            name: T::NAME.as_char_ptr(),
            fs_flags: T::FLAGS,
            init_fs_context: Some(fs_context::init_fs_context::<T>),
            parameters: T::PARAMS.as_ptr(),
            kill_sb: Some(kill_sb::<T>),
            // SAFETY: all-zero is the valid "unset" value of every other field
            // (NULL pointers, empty lists, unregistered lock class keys).
            ..unsafe { MaybeUninit::zeroed().assume_init() }
        }))
    }
}

impl Type {
    /// The C structure, for the VFS.
    pub(crate) fn as_raw(&self) -> *mut bindings::file_system_type {
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
    /// Registers `ty`, owned by `module`.
    pub(crate) fn new(ty: &'static Type, module: &'static ThisModule) -> Result<Self> {
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
    }
}
