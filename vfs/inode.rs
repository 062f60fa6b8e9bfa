// SPDX-License-Identifier: GPL-2.0

//! Inodes (`struct inode`): typed handles, stacked inodes hashed by the real
//! inode they stand on, the inode operations and the C tables built from
//! the operation traits.

use super::{
    acl, bindings,
    dentry::{DelayedCall, Dentry, LinkTarget},
    errno::to_result,
    fs_type::FileSystem,
    namei,
    super_block::SuperBlock,
    user_ns::{Kgid, Kuid, UserNamespace},
    xattr, ARef, Rcu, Real,
};
use core::{ffi::c_void, marker::PhantomData, mem::MaybeUninit, ptr::NonNull};
use kernel::{
    error::{code::ENOMEM, from_result},
    ffi::{c_char, c_int, c_uint},
    prelude::*,
    types::Opaque,
};

/// A file mode: type and permission bits (`umode_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Mode(pub(crate) u16);

impl Mode {
    fn format(self) -> u32 {
        u32::from(self.0) & bindings::S_IFMT
    }

    /// A directory.
    pub(crate) fn is_dir(self) -> bool {
        self.format() == bindings::S_IFDIR
    }

    /// A block or character device (a whiteout, `S_IFCHR` with device
    /// number 0, is not one: see [`Mode::is_device_node`]).
    fn is_device(self) -> bool {
        self.format() == bindings::S_IFBLK || self.format() == bindings::S_IFCHR
    }

    /// Whether `mknod(mode, dev)` makes a device node: a block device, or a
    /// character device other than a whiteout (`S_IFCHR`, device 0).
    pub(crate) fn is_device_node(self, dev: u32) -> bool {
        self.is_device() && !(self.format() == bindings::S_IFCHR && dev == 0)
    }
}

/// An inode of a filesystem of kind `T`.
///
/// # Invariants
///
/// The wrapped `struct inode` is live while the handle is: an `ARef` holds
/// a reference, a `&Inode` borrows from a holder (the VFS for the duration
/// of an operation, a dentry, another handle). If `T` is a [`FileSystem`],
/// the inode belongs to a superblock of `T` and was made by
/// [`SuperBlock::stacked_inode`]: its `i_private` holds a reference to the
/// real inode it stands on, set before the inode was published and dropped
/// only when it is evicted.
#[repr(transparent)]
pub(crate) struct Inode<T>(Opaque<bindings::inode>, PhantomData<T>);

typed_handle!(Inode, inode, ihold, iput);

/// The flags that change what may be done to a file and how it is written,
/// which a stacked inode shows as its real inode has them (as overlayfs
/// copies them); and `S_NOSEC`, which the real filesystem's VFS sets once
/// it found the real inode without set-id bits and security xattrs, and
/// clears when either is set there. Shown on the stacked inode, it spares
/// each write through it the check for privileges to remove (a lookup of
/// `security.capability` through the stacked inode): the mode that check
/// reads is the one copied with it, and the real write still checks the
/// real inode itself.
const COPIED_FLAGS: u32 = bindings::S_SYNC
    | bindings::S_NOATIME
    | bindings::S_APPEND
    | bindings::S_IMMUTABLE
    | bindings::S_NOSEC;

impl<T> Inode<T> {
    /// The owner.
    pub(crate) fn uid(&self) -> Kuid {
        // SAFETY: a plain read of a word-sized field of a live inode.
        Kuid(unsafe { (*self.as_raw()).i_uid.val })
    }

    /// The group.
    pub(crate) fn gid(&self) -> Kgid {
        // SAFETY: as for `uid`.
        Kgid(unsafe { (*self.as_raw()).i_gid.val })
    }

    /// The file type and permission bits.
    pub(crate) fn mode(&self) -> Mode {
        // SAFETY: as for `uid` (a 16-bit field).
        Mode(unsafe { (*self.as_raw()).i_mode })
    }

    /// The superblock the inode belongs to.
    pub(crate) fn super_block(&self) -> &SuperBlock<T> {
        // SAFETY: an inode keeps its superblock alive, `i_sb` never changes,
        // and an inode of kind `T` is on a superblock of kind `T`.
        unsafe { SuperBlock::from_raw((*self.as_raw()).i_sb) }
    }

    /// Locks the inode (`inode_lock()`, its `i_rwsem` for writing) until
    /// the guard is dropped.
    pub(crate) fn lock(&self) -> InodeLock<'_, T> {
        // SAFETY: `self` is live; the guard unlocks it.
        unsafe { bindings::shiftfs_inode_lock(self.as_raw()) };
        InodeLock(self)
    }

    /// The check of `mask` against mode, owner and ACLs of this inode with
    /// the caller's credentials, seen through `idmap`
    /// (`generic_permission()`).
    pub(crate) fn generic_permission(&self, idmap: &MntIdmap, mask: Mask) -> Result {
        // SAFETY: `self` and `idmap` are live for the call.
        to_result(unsafe { bindings::generic_permission(idmap.as_raw(), self.as_raw(), mask.0) })
    }
}

/// A locked inode (`inode_lock()`); unlocked on drop.
pub(crate) struct InodeLock<'a, T>(&'a Inode<T>);

impl<T> Drop for InodeLock<'_, T> {
    fn drop(&mut self) {
        // SAFETY: `Inode::lock` locked it.
        unsafe { bindings::shiftfs_inode_unlock(self.0.as_raw()) };
    }
}

impl Inode<Real> {
    /// Whether the real filesystem knows this inode to have no access ACL
    /// (`i_acl` is NULL, not one or "not cached"), as its own permission
    /// checks find it without asking further.
    pub(crate) fn has_no_acl(&self) -> bool {
        // SAFETY: the pointer is read once, as READ_ONCE does, and only
        // compared: what it points to is not read.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).i_acl) }.is_null()
    }

    /// The check of `mask` by the real filesystem with the task's current
    /// credentials (`inode_permission()`, no idmapping: stacked
    /// filesystems reach real inodes through mounts without one).
    pub(crate) fn permission(&self, mask: Mask) -> Result {
        // SAFETY: `self` is live; `nop_mnt_idmap` is a static.
        to_result(unsafe { bindings::inode_permission(nop_idmap(), self.as_raw(), mask.0) })
    }
}

impl<T: FileSystem> Inode<T> {
    /// A dentry of the inode (`d_find_any_alias()`), if it has one.
    pub(crate) fn any_dentry(&self) -> Option<ARef<Dentry<T>>> {
        // SAFETY: the inode is live.
        let dentry = NonNull::new(unsafe { bindings::d_find_any_alias(self.as_raw()) })?;
        // SAFETY: a dentry of an inode of `T` (on its superblock), with a
        // reference that is now ours.
        Some(unsafe { ARef::from_raw(dentry.cast()) })
    }

    /// The real inode this one stands on.
    pub(crate) fn real(&self) -> &Inode<Real> {
        // SAFETY: per the type's invariants `i_private` holds a reference to
        // the real inode, which lives at least as long as this one.
        unsafe { Inode::from_raw((*self.as_raw()).i_private.cast()) }
    }

    /// Shows the attributes of `from` (its real inode, or a real inode it
    /// is about to stand on), with owner and group as given: file type and
    /// permissions, link count, size, times, device number and the flags in
    /// [`COPIED_FLAGS`].
    ///
    /// Racing readers see each word-sized field old or new, as with
    /// overlayfs's own copy; the VFS writes these fields the same way.
    pub(crate) fn set_attrs(&self, from: &Inode<Real>, uid: Kuid, gid: Kgid) {
        let (dst, src) = (self.as_raw(), from.as_raw());
        // SAFETY: both inodes are live; these are plain writes of fields
        // readers take one word at a time (see above), and `set_nlink` is
        // the kernel's own setter.
        unsafe {
            (*dst).i_ino = (*src).i_ino;
            (*dst).i_generation = (*src).i_generation;
            (*dst).i_mode = (*src).i_mode;
            (*dst).i_uid.val = uid.0;
            (*dst).i_gid.val = gid.0;
            (*dst).i_rdev = (*src).i_rdev;
            (*dst).i_flags = ((*dst).i_flags & !COPIED_FLAGS) | ((*src).i_flags & COPIED_FLAGS);
            bindings::set_nlink(dst, (*src).__bindgen_anon_1.i_nlink);
        }
        self.set_size_and_times(from);
    }

    /// Shows the size, block count and times of `from` (after I/O or a
    /// change of the real inode's size), and its `S_NOSEC` (which the real
    /// filesystem sets at the first write that found nothing to remove).
    pub(crate) fn set_size_and_times(&self, from: &Inode<Real>) {
        let (dst, src) = (self.as_raw(), from.as_raw());
        // SAFETY: as for `set_attrs`; `i_size` goes through the kernel's
        // accessors, which make it consistent on every architecture. Each
        // field is written only when it differs: after a read (the common
        // case, and atime moves once a day under relatime) nothing does,
        // and readers on other CPUs keep the inode's cache lines shared.
        // Only the flags' write can put a racing refresh's other flags
        // back as they were (the next refresh shows them again).
        unsafe {
            let nosec = (*src).i_flags & bindings::S_NOSEC;
            if (*dst).i_flags & bindings::S_NOSEC != nosec {
                (*dst).i_flags = ((*dst).i_flags & !bindings::S_NOSEC) | nosec;
            }
            let size = bindings::shiftfs_i_size_read(src);
            if bindings::shiftfs_i_size_read(dst) != size {
                bindings::shiftfs_i_size_write(dst, size);
            }
            set_if_differs(&raw mut (*dst).i_blocks, (*src).i_blocks);
            set_if_differs(&raw mut (*dst).i_atime_sec, (*src).i_atime_sec);
            set_if_differs(&raw mut (*dst).i_atime_nsec, (*src).i_atime_nsec);
            set_if_differs(&raw mut (*dst).i_mtime_sec, (*src).i_mtime_sec);
            set_if_differs(&raw mut (*dst).i_mtime_nsec, (*src).i_mtime_nsec);
            set_if_differs(&raw mut (*dst).i_ctime_sec, (*src).i_ctime_sec);
            set_if_differs(&raw mut (*dst).i_ctime_nsec, (*src).i_ctime_nsec);
        }
    }
}

/// Writes `value` to `*field` unless it holds that already.
///
/// # Safety
///
/// `field` must be valid for reads and writes, as the inode fields
/// [`Inode::set_size_and_times`] copies are.
#[inline(always)]
unsafe fn set_if_differs<V: PartialEq + Copy>(field: *mut V, value: V) {
    // SAFETY: per the contract.
    unsafe {
        if *field != value {
            *field = value;
        }
    }
}

impl<'a, T> Rcu<'a, Inode<T>> {
    /// # Safety
    ///
    /// The caller must be in an RCU path walk, and `ptr` a live-or-dying
    /// inode of kind `T` that the walk reached.
    pub(super) unsafe fn from_raw(ptr: *mut bindings::inode) -> Self {
        // SAFETY: per the contract the inode is readable for the walk.
        Rcu(unsafe { Inode::from_raw(ptr) })
    }

    /// [`Inode::generic_permission`], which does not sleep with
    /// `MAY_NOT_BLOCK` in `mask`.
    pub(crate) fn generic_permission(self, idmap: &MntIdmap, mask: Mask) -> Result {
        self.0.generic_permission(idmap, mask)
    }

    /// The superblock, which the walk's mount pins.
    pub(crate) fn super_block(self) -> &'a SuperBlock<T> {
        self.0.super_block()
    }

    /// [`Inode::uid`] as the walk reads it.
    pub(crate) fn uid(self) -> Kuid {
        self.0.uid()
    }

    /// [`Inode::mode`] as the walk reads it.
    pub(crate) fn mode(self) -> Mode {
        self.0.mode()
    }
}

impl Rcu<'_, Inode<Real>> {
    /// [`Inode::permission`] in an RCU walk (`mask` carries
    /// `MAY_NOT_BLOCK`).
    pub(crate) fn permission(self, mask: Mask) -> Result {
        self.0.permission(mask)
    }

    /// [`Inode::has_no_acl`] in an RCU walk.
    pub(crate) fn has_no_acl(self) -> bool {
        self.0.has_no_acl()
    }
}

impl<'a, T: FileSystem> Rcu<'a, Inode<T>> {
    /// The real inode, unless the stacked inode has been evicted since the
    /// walk reached it: [`evict`] drops the real inode and clears the
    /// pointer, while the walk may still hold the stacked inode (found by
    /// the stress-ng symlink stressor: a NULL real inode in
    /// `permission_rcu`). A real inode read here before that stays readable
    /// for the walk: it is freed an RCU grace period after its last `iput`.
    pub(crate) fn real(self) -> Option<Rcu<'a, Inode<Real>>> {
        // SAFETY: the stacked inode is readable for the walk; `i_private`
        // is set before the inode is published and cleared once by
        // `evict`, so it is read once, as READ_ONCE does.
        let real = unsafe { core::ptr::read_volatile(&raw const (*self.0.as_raw()).i_private) };
        // SAFETY: non-NULL, it is a real inode readable for the walk (see
        // above).
        (!real.is_null()).then(|| unsafe { Rcu::<Inode<Real>>::from_raw(real.cast()) })
    }

    /// Whether this inode stands on `real` (not if it has been evicted).
    pub(crate) fn stands_on(self, real: Rcu<'_, Inode<Real>>) -> bool {
        self.real().is_some_and(|r| core::ptr::eq(r.0, real.0))
    }

    /// Whether the attributes [`Inode::set_attrs`] shows are those of
    /// `real`, but for owner and group (whose changes change ctime too);
    /// read without locks, as the VFS reads them.
    pub(crate) fn attrs_match(self, real: Rcu<'_, Inode<Real>>) -> bool {
        // SAFETY: both inodes are readable in the walk.
        unsafe { attrs_match(self.0.as_raw(), real.0.as_raw()) }
    }
}

impl<T> Inode<T> {
    /// [`Rcu::attrs_match`] outside a walk.
    pub(crate) fn shows(&self, real: &Inode<Real>) -> bool {
        // SAFETY: both inodes are live.
        unsafe { attrs_match(self.as_raw(), real.as_raw()) }
    }
}

/// Whether `a` shows the attributes of `b` that [`Inode::set_attrs`]
/// copies, but for owner and group.
///
/// # Safety
///
/// Both must be inodes readable for the call.
unsafe fn attrs_match(a: *const bindings::inode, b: *const bindings::inode) -> bool {
    // SAFETY: per the contract; these are plain reads of fields that
    // writers update one word at a time.
    unsafe {
        (*a).i_mode == (*b).i_mode
            && (*a).__bindgen_anon_1.i_nlink == (*b).__bindgen_anon_1.i_nlink
            && (*a).i_size == (*b).i_size
            && (*a).i_mtime_sec == (*b).i_mtime_sec
            && (*a).i_mtime_nsec == (*b).i_mtime_nsec
            && (*a).i_ctime_sec == (*b).i_ctime_sec
            && (*a).i_ctime_nsec == (*b).i_ctime_nsec
            && ((*a).i_flags & COPIED_FLAGS) == ((*b).i_flags & COPIED_FLAGS)
    }
}

/// The idmapping of the mount an operation came through (`struct
/// mnt_idmap`).
#[repr(transparent)]
pub(crate) struct MntIdmap(Opaque<bindings::mnt_idmap>);

impl MntIdmap {
    /// # Safety
    ///
    /// `ptr` must be a live idmapping that stays live for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::mnt_idmap) -> &'a Self {
        // SAFETY: `repr(transparent)`; liveness is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::mnt_idmap {
        self.0.get()
    }

    /// Whether this is the idmapping of mounts without one
    /// (`nop_mnt_idmap`), which shows every id as it is.
    pub(crate) fn is_nop(&self) -> bool {
        core::ptr::eq(self.as_raw(), nop_idmap())
    }

    /// The kernel uid this mount shows for `kuid`, an owner on a filesystem
    /// of user namespace `fs_ns` (`make_vfsuid()`); invalid where the
    /// idmapping has no mapping for it.
    pub(crate) fn vfsuid(&self, fs_ns: &UserNamespace, kuid: Kuid) -> Kuid {
        // SAFETY: both are live; the call only reads their maps.
        let id = unsafe {
            bindings::make_vfsuid(
                self.as_raw(),
                fs_ns.as_raw(),
                bindings::kuid_t { val: kuid.0 },
            )
        };
        Kuid(id.val)
    }

    /// The kernel gid this mount shows for `kgid` (`make_vfsgid()`).
    pub(crate) fn vfsgid(&self, fs_ns: &UserNamespace, kgid: Kgid) -> Kgid {
        // SAFETY: as for `vfsuid`.
        let id = unsafe {
            bindings::make_vfsgid(
                self.as_raw(),
                fs_ns.as_raw(),
                bindings::kgid_t { val: kgid.0 },
            )
        };
        Kgid(id.val)
    }

    /// The owner to write on the filesystem for `vfsuid`, a kernel uid as
    /// this mount shows it (`from_vfsuid()`); invalid where there is none.
    pub(crate) fn kuid_of(&self, fs_ns: &UserNamespace, vfsuid: Kuid) -> Kuid {
        // SAFETY: as for `vfsuid`.
        let id = unsafe {
            bindings::from_vfsuid(
                self.as_raw(),
                fs_ns.as_raw(),
                bindings::vfsuid_t { val: vfsuid.0 },
            )
        };
        Kuid(id.val)
    }

    /// The group to write for `vfsgid` (`from_vfsgid()`).
    pub(crate) fn kgid_of(&self, fs_ns: &UserNamespace, vfsgid: Kgid) -> Kgid {
        // SAFETY: as for `vfsuid`.
        let id = unsafe {
            bindings::from_vfsgid(
                self.as_raw(),
                fs_ns.as_raw(),
                bindings::vfsgid_t { val: vfsgid.0 },
            )
        };
        Kgid(id.val)
    }
}

/// The idmapping of mounts without one: the real filesystem is always
/// reached through such a mount's view.
pub(super) fn nop_idmap() -> *mut bindings::mnt_idmap {
    // Taking the address of the static reads nothing.
    core::ptr::addr_of_mut!(bindings::nop_mnt_idmap)
}

/// What a permission check asks for (`MAY_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Mask(c_int);

impl Mask {
    /// Whether the check comes from an RCU walk and must not sleep
    /// (`MAY_NOT_BLOCK`).
    pub(crate) fn may_not_block(self) -> bool {
        self.0 & bindings::MAY_NOT_BLOCK as c_int != 0
    }

    /// The read, write and execute rights asked for (`MAY_READ` 4,
    /// `MAY_WRITE` 2, `MAY_EXEC` 1: the order of a mode's permission bits).
    pub(crate) fn rwx(self) -> u16 {
        (self.0 & 7) as u16
    }
}

/// File attributes for `stat()` (`struct kstat`), filled in by `getattr`.
#[repr(transparent)]
pub(crate) struct Kstat(bindings::kstat);

impl Kstat {
    /// The owner and group.
    pub(crate) fn owner(&self) -> (Kuid, Kgid) {
        (Kuid(self.0.uid.val), Kgid(self.0.gid.val))
    }

    /// Sets the owner and group.
    pub(crate) fn set_owner(&mut self, uid: Kuid, gid: Kgid) {
        self.0.uid.val = uid.0;
        self.0.gid.val = gid.0;
    }

    /// Sets the device the file is shown on.
    pub(crate) fn set_dev(&mut self, dev: u32) {
        self.0.dev = dev;
    }

    pub(super) fn as_raw(&mut self) -> *mut bindings::kstat {
        &mut self.0
    }
}

/// Which attributes a `setattr` changes (`ATTR_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct AttrMask(c_uint);

impl AttrMask {
    /// `ATTR_MODE`.
    pub(crate) const MODE: Self = Self(bindings::ATTR_MODE);
    /// `ATTR_UID`.
    pub(crate) const UID: Self = Self(bindings::ATTR_UID);
    /// `ATTR_GID`.
    pub(crate) const GID: Self = Self(bindings::ATTR_GID);
    /// `ATTR_FILE`: the change comes through an open file, `ia_file`.
    pub(crate) const FILE: Self = Self(bindings::ATTR_FILE);
    /// `ATTR_KILL_SUID | ATTR_KILL_SGID`: set-id bits are dropped.
    pub(crate) const KILL_SETID: Self = Self(bindings::ATTR_KILL_SUID | bindings::ATTR_KILL_SGID);

    /// Whether any of `other` is in this mask.
    pub(crate) fn any(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

/// A change of attributes (`struct iattr`).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct Iattr(bindings::iattr);

impl Iattr {
    /// The attributes that change.
    pub(crate) fn valid(&self) -> AttrMask {
        AttrMask(self.0.ia_valid)
    }

    /// No longer change `mask`.
    pub(crate) fn remove(&mut self, mask: AttrMask) {
        self.0.ia_valid &= !mask.0;
    }

    /// The new owner, with [`AttrMask::UID`] (a kernel uid: on a mount
    /// without idmapping, the only kind a stacked filesystem is reached
    /// through here).
    pub(crate) fn uid(&self) -> Option<Kuid> {
        if !self.valid().any(AttrMask::UID) {
            return None;
        }
        // SAFETY: with ATTR_UID the union is set; it holds a kernel uid or
        // a vfsuid, both a `u32`.
        Some(Kuid(unsafe { self.0.__bindgen_anon_1.ia_uid.val }))
    }

    /// The new group, with [`AttrMask::GID`].
    pub(crate) fn gid(&self) -> Option<Kgid> {
        if !self.valid().any(AttrMask::GID) {
            return None;
        }
        // SAFETY: as for `uid`, with ATTR_GID.
        Some(Kgid(unsafe { self.0.__bindgen_anon_2.ia_gid.val }))
    }

    /// Sets the new owner (with [`AttrMask::UID`] already in the mask).
    pub(crate) fn set_uid(&mut self, uid: Kuid) {
        self.0.__bindgen_anon_1.ia_uid.val = uid.0;
    }

    /// Sets the new group (with [`AttrMask::GID`] already in the mask).
    pub(crate) fn set_gid(&mut self, gid: Kgid) {
        self.0.__bindgen_anon_2.ia_gid.val = gid.0;
    }

    pub(super) fn as_raw(&mut self) -> *mut bindings::iattr {
        &mut self.0
    }
}

/// `struct fileattr`, renamed `struct file_kattr` in 6.17.
#[cfg(not(shiftfs_kernel_7))]
type RawFileAttr = bindings::fileattr;
#[cfg(shiftfs_kernel_7)]
type RawFileAttr = bindings::file_kattr;

/// File attributes of `FS_IOC_GETFLAGS`/`FS_IOC_FSGETXATTR` and their
/// setters.
#[repr(transparent)]
pub(crate) struct FileAttr(RawFileAttr);

impl FileAttr {
    pub(super) fn as_raw(&mut self) -> *mut RawFileAttr {
        &mut self.0
    }
}

/// The inode operations of every inode of a filesystem, whatever its type
/// (directories and symlinks add theirs: see
/// [`NamespaceOperations`](namei::NamespaceOperations) and
/// [`InodeOperations::get_link`]). Implemented by the filesystem type.
#[vtable]
pub(crate) trait InodeOperations: Sized {
    /// `getattr`: attributes for `stat()` of `dentry`'s inode.
    fn getattr(
        _idmap: &MntIdmap,
        _dentry: &Dentry<Self>,
        _stat: &mut Kstat,
        _request_mask: u32,
        _flags: u32,
    ) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `setattr`: change `dentry`'s inode as `attr` says; the VFS holds
    /// its lock.
    fn setattr(_idmap: &MntIdmap, _dentry: &Dentry<Self>, _attr: &Iattr) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `permission` in a walk with references.
    fn permission(_idmap: &MntIdmap, _inode: &Inode<Self>, _mask: Mask) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `permission` in an RCU walk (`MAY_NOT_BLOCK`): must not sleep;
    /// `ECHILD` goes back to a walk with references.
    fn permission_rcu(_idmap: &MntIdmap, _inode: Rcu<'_, Inode<Self>>, _mask: Mask) -> Result {
        Err(ECHILD)
    }

    /// `get_link` of a symlink, in a walk with references (an RCU walk
    /// gets `ECHILD` and comes back).
    fn get_link(
        _dentry: &Dentry<Self>,
        _inode: &Inode<Self>,
        _done: &mut DelayedCall,
    ) -> Result<LinkTarget> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `fileattr_get` (`FS_IOC_GETFLAGS`, `FS_IOC_FSGETXATTR`).
    fn fileattr_get(_dentry: &Dentry<Self>, _fa: &mut FileAttr) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `fileattr_set` (`FS_IOC_SETFLAGS`, `FS_IOC_FSSETXATTR`); the VFS
    /// has checked the caller and holds the inode's lock.
    fn fileattr_set(_idmap: &MntIdmap, _dentry: &Dentry<Self>, _fa: &mut FileAttr) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `update_time` of the access time: `touch_atime()` found an update
    /// due by the flags of the mount it came through and the inode's
    /// times, and has write access to that mount. May sleep. The other
    /// time updates stay the VFS's own (`generic_update_time()`).
    fn update_atime(_inode: &Inode<Self>) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// `iget5_locked_rcu` test: is `inode` the stacked inode of real inode
/// `data`? The lookup holds no lock, so `inode` may be being evicted:
/// `evict` clears `i_private`, and the VFS then waits for the inode to go
/// and looks again.
///
/// # Safety
///
/// Called by `iget5_locked_rcu` with an inode of a stacked superblock,
/// readable (an RCU read-side section; inodes are freed after a grace
/// period).
unsafe extern "C" fn stacked_test(inode: *mut bindings::inode, data: *mut c_void) -> c_int {
    // SAFETY: per the contract `inode` is readable; `i_private` is set by
    // `stacked_set` before the inode is hashed and cleared by `evict`
    // (WRITE_ONCE there, READ_ONCE here).
    c_int::from(unsafe { core::ptr::read_volatile(&raw const (*inode).i_private) } == data)
}

/// `iget5_locked_rcu` set: make the new `inode` stand on real inode
/// `data`.
///
/// # Safety
///
/// Called by `iget5_locked_rcu` with a new inode and the `data` given to
/// it, a live real inode.
unsafe extern "C" fn stacked_set(inode: *mut bindings::inode, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the live real inode passed to `iget5_locked_rcu`; the
    // reference taken here is dropped by `evict`.
    unsafe {
        bindings::ihold(data.cast());
        (*inode).i_private = data;
    }
    0
}

/// Whether `inode` is new and locked (`I_NEW`).
///
/// # Safety
///
/// `inode` must be live.
unsafe fn is_new(inode: *mut bindings::inode) -> bool {
    #[cfg(shiftfs_kernel_7)]
    // SAFETY: per the contract; the state is read once, without a lock.
    let state = unsafe { bindings::shiftfs_inode_state_read_once(inode) };
    #[cfg(not(shiftfs_kernel_7))]
    // SAFETY: as above.
    let state = unsafe { (*inode).i_state };
    state & bindings::SHIFTFS_I_NEW != 0
}

/// What [`SuperBlock::stacked_inode`] found.
pub(crate) enum Stacked<T: FileSystem> {
    /// The stacked inode that lives for the real inode.
    Cached(ARef<Inode<T>>),
    /// A new one, to be initialised and published.
    New(NewInode<T>),
}

impl<T: FileSystem> SuperBlock<T> {
    /// The stacked inode of this superblock for `real`: the one that lives
    /// for it, or a new one standing on it (`iget5_locked_rcu()` keyed by
    /// the real inode), so that there is one stacked inode per real inode.
    /// The lookup takes no lock (`iget5_locked()` takes the global inode
    /// hash lock for it, then again to insert a new inode).
    pub(crate) fn stacked_inode(&self, real: &Inode<Real>) -> Result<Stacked<T>> {
        let key = real.as_raw();
        // The hash value is the real inode's address: `unsigned long` before
        // 7.x, `u64` since.
        #[allow(clippy::as_underscore)]
        let hash = key as usize as _;
        // SAFETY: `self` is live; the callbacks match `iget5_locked_rcu`'s
        // contract and `key` is a live inode for the duration of the call.
        let raw = unsafe {
            bindings::iget5_locked_rcu(
                self.as_raw(),
                hash,
                Some(stacked_test),
                Some(stacked_set),
                key.cast(),
            )
        };
        let raw = NonNull::new(raw).ok_or(ENOMEM)?;
        // SAFETY: `I_NEW` is read as `iget5_locked_rcu` returned the inode; it
        // is cleared only by `NewInode::publish` (or on its drop).
        if unsafe { is_new(raw.as_ptr()) } {
            return Ok(Stacked::New(NewInode(raw.cast())));
        }
        // SAFETY: `iget5_locked_rcu` returned a referenced inode of this
        // superblock standing on `real` (set by `stacked_set`), now ours.
        Ok(Stacked::Cached(unsafe { ARef::from_raw(raw.cast()) }))
    }
}

/// A new stacked inode, locked (`I_NEW`): the only time nothing else sees
/// it. Published by [`NewInode::publish`]; dropped unpublished, it is
/// discarded (`iget_failed()`).
///
/// # Invariants
///
/// Holds a reference to a new inode of `T`, locked (`I_NEW`), standing on
/// its real inode.
pub(crate) struct NewInode<T: FileSystem>(NonNull<Inode<T>>);

impl<T: FileSystem> NewInode<T> {
    /// The inode, to set its attributes ([`Inode::set_attrs`]).
    pub(crate) fn inode(&self) -> &Inode<T> {
        // SAFETY: per the type's invariants we hold a reference.
        unsafe { self.0.as_ref() }
    }

    /// Makes the VFS ask `get_inode_acl` every time instead of caching the
    /// ACLs (`ACL_DONT_CACHE`).
    pub(crate) fn uncache_acls(&self) {
        let raw = self.inode().as_raw();
        let dont_cache = acl::dont_cache();
        // SAFETY: the inode is new and locked: nobody else uses it.
        unsafe {
            (*raw).i_acl = dont_cache;
            (*raw).i_default_acl = dont_cache;
        }
    }

    /// Gives the inode the operations of its file type, as set by
    /// [`Inode::set_attrs`], and publishes it (`unlock_new_inode()`).
    pub(crate) fn publish(self) -> ARef<Inode<T>> {
        let raw = self.inode().as_raw();
        // SAFETY: the inode is new and locked; the tables are `'static`.
        unsafe {
            match u32::from((*raw).i_mode) & bindings::S_IFMT {
                bindings::S_IFDIR => {
                    (*raw).i_op = &Tables::<T>::DIR_IOPS;
                    (*raw).__bindgen_anon_3.i_fop = super::file::dir_operations::<T>();
                }
                bindings::S_IFLNK => (*raw).i_op = &Tables::<T>::LINK_IOPS,
                bindings::S_IFREG => {
                    (*raw).i_op = &Tables::<T>::FILE_IOPS;
                    (*raw).__bindgen_anon_3.i_fop = super::file::file_operations::<T>();
                    (*(*raw).i_mapping).a_ops = super::file::address_space_operations();
                }
                _ => {
                    (*raw).i_op = &Tables::<T>::FILE_IOPS;
                    bindings::init_special_inode(raw, (*raw).i_mode, (*raw).i_rdev);
                }
            }
            bindings::unlock_new_inode(raw);
        }
        let inode = self.0;
        core::mem::forget(self);
        // SAFETY: the reference this held, now handed over.
        unsafe { ARef::from_raw(inode) }
    }
}

impl<T: FileSystem> Drop for NewInode<T> {
    fn drop(&mut self) {
        // SAFETY: the inode is new and locked; `iget_failed` marks it bad,
        // unlocks it and drops the reference this held.
        unsafe { bindings::iget_failed(self.inode().as_raw()) };
    }
}

/// `super_operations::evict_inode` of stacked inodes: drops the page cache
/// and the reference to the real inode.
///
/// # Safety
///
/// Called by the VFS once, for a stacked inode being evicted.
pub(super) unsafe extern "C" fn evict(inode: *mut bindings::inode) {
    // SAFETY: per the contract; `i_private` holds the reference taken by
    // `stacked_set`, released exactly once here.
    unsafe {
        bindings::truncate_inode_pages_final(&mut (*inode).i_data);
        bindings::clear_inode(inode);
        let real = (*inode).i_private.cast::<bindings::inode>();
        // An RCU walk may read it concurrently (`Rcu::real`): WRITE_ONCE.
        core::ptr::write_volatile(&raw mut (*inode).i_private, core::ptr::null_mut());
        if !real.is_null() {
            bindings::iput(real);
        }
    }
}

/// The inode operation tables of filesystem `T`, one per kind of inode.
struct Tables<T>(PhantomData<T>);

// SAFETY (for every `..zeroed()` below): all-zero is a valid operations
// table, NULL operations being optional.
impl<T: FileSystem> Tables<T> {
    /// The operations of every inode.
    const FILE_IOPS: bindings::inode_operations = bindings::inode_operations {
        getattr: if T::HAS_GETATTR {
            Some(getattr::<T>)
        } else {
            None
        },
        setattr: if T::HAS_SETATTR {
            Some(setattr::<T>)
        } else {
            None
        },
        permission: if <T as InodeOperations>::HAS_PERMISSION {
            Some(permission::<T>)
        } else {
            None
        },
        fileattr_get: if T::HAS_FILEATTR_GET {
            Some(fileattr_get::<T>)
        } else {
            None
        },
        fileattr_set: if T::HAS_FILEATTR_SET {
            Some(fileattr_set::<T>)
        } else {
            None
        },
        update_time: if T::HAS_UPDATE_ATIME {
            Some(update_time::<T>)
        } else {
            None
        },
        ..xattr::inode_operations::<T>()
    };
    /// Directories: the above and the namespace operations.
    const DIR_IOPS: bindings::inode_operations = namei::dir_inode_operations::<T>(Self::FILE_IOPS);
    /// Symlinks: the above and `get_link`.
    const LINK_IOPS: bindings::inode_operations = bindings::inode_operations {
        get_link: if T::HAS_GET_LINK {
            Some(get_link::<T>)
        } else {
            None
        },
        ..Self::FILE_IOPS
    };
}

/// An all-zero C structure, for the fields an operation table (or a
/// filesystem type) leaves unset.
///
/// # Safety
///
/// All-zero must be a valid `O`: as it is for operation tables, whose NULL
/// operations are optional.
pub(super) const unsafe fn zeroed<O>() -> O {
    // SAFETY: per the contract.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

/// # Safety
///
/// Called by the VFS as `inode_operations::getattr` of an inode of `T`.
unsafe extern "C" fn getattr<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    path: *const bindings::path,
    stat: *mut bindings::kstat,
    request_mask: u32,
    flags: c_uint,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract, `path` is a live path to a looked-up
        // dentry of `T`, `idmap` the mount's and `stat` writable.
        let (idmap, dentry, stat) = unsafe {
            (
                MntIdmap::from_raw(idmap),
                Dentry::<T>::from_raw((*path).dentry),
                &mut *stat.cast::<Kstat>(),
            )
        };
        T::getattr(idmap, dentry, stat, request_mask, flags)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `inode_operations::setattr` with a dentry of `T`
/// whose inode it has locked.
unsafe extern "C" fn setattr<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (idmap, dentry, attr) = unsafe {
            (
                MntIdmap::from_raw(idmap),
                Dentry::<T>::from_raw(dentry),
                &*attr.cast::<Iattr>(),
            )
        };
        T::setattr(idmap, dentry, attr)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `inode_operations::update_time` with a live inode
/// of `T`.
#[cfg(not(shiftfs_kernel_7))]
unsafe extern "C" fn update_time<T: FileSystem>(
    inode: *mut bindings::inode,
    flags: c_int,
) -> c_int {
    const ATIME: c_int = bindings::file_time_flags_S_ATIME as c_int;
    let others = flags & !ATIME;
    let ret = if others != 0 {
        // SAFETY: per the contract.
        unsafe { bindings::generic_update_time(inode, others) }
    } else {
        0
    };
    if flags & ATIME == 0 || ret != 0 {
        return ret;
    }
    from_result(|| {
        // SAFETY: per the contract; the VFS holds the inode for the call.
        T::update_atime(unsafe { Inode::from_raw(inode) })?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `inode_operations::update_time` with a live inode
/// of `T`.
#[cfg(shiftfs_kernel_7)]
unsafe extern "C" fn update_time<T: FileSystem>(
    inode: *mut bindings::inode,
    what: bindings::fs_update_time,
    flags: c_uint,
) -> c_int {
    if what != bindings::fs_update_time_FS_UPD_ATIME {
        // SAFETY: per the contract.
        return unsafe { bindings::generic_update_time(inode, what, flags) };
    }
    from_result(|| {
        // The update may sleep: not for a request that must not wait.
        if flags & bindings::SHIFTFS_IOCB_NOWAIT as c_uint != 0 {
            return Err(kernel::error::code::EAGAIN);
        }
        // SAFETY: per the contract; the VFS holds the inode for the call.
        T::update_atime(unsafe { Inode::from_raw(inode) })?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `inode_operations::permission` with an inode of
/// `T`, in an RCU walk if `mask` has `MAY_NOT_BLOCK`.
unsafe extern "C" fn permission<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    inode: *mut bindings::inode,
    mask: c_int,
) -> c_int {
    from_result(|| {
        let mask = Mask(mask);
        // SAFETY: per the contract.
        let idmap = unsafe { MntIdmap::from_raw(idmap) };
        if mask.may_not_block() {
            // SAFETY: per the contract, an RCU walk with this inode.
            T::permission_rcu(idmap, unsafe { Rcu::from_raw(inode) }, mask)?;
        } else {
            // SAFETY: the VFS holds the inode for the call.
            T::permission(idmap, unsafe { Inode::from_raw(inode) }, mask)?;
        }
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `inode_operations::get_link` of a symlink of `T`,
/// with its dentry (NULL in an RCU walk) and a delayed call to fill in.
unsafe extern "C" fn get_link<T: FileSystem>(
    dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    done: *mut bindings::delayed_call,
) -> *const c_char {
    if dentry.is_null() {
        return ECHILD.to_ptr();
    }
    // SAFETY: per the contract, all three are live for the call.
    let (dentry, inode, done) = unsafe {
        (
            Dentry::<T>::from_raw(dentry),
            Inode::from_raw(inode),
            DelayedCall::from_raw(done),
        )
    };
    match T::get_link(dentry, inode, done) {
        Ok(target) => target.into_raw(),
        Err(e) => e.to_ptr(),
    }
}

/// # Safety
///
/// Called by the VFS as `inode_operations::fileattr_get` with a dentry of
/// `T` and attributes to fill in.
unsafe extern "C" fn fileattr_get<T: FileSystem>(
    dentry: *mut bindings::dentry,
    fa: *mut RawFileAttr,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (dentry, fa) = unsafe { (Dentry::<T>::from_raw(dentry), &mut *fa.cast::<FileAttr>()) };
        T::fileattr_get(dentry, fa)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `inode_operations::fileattr_set` with a dentry of
/// `T` whose inode it has locked.
unsafe extern "C" fn fileattr_set<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    fa: *mut RawFileAttr,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (idmap, dentry, fa) = unsafe {
            (
                MntIdmap::from_raw(idmap),
                Dentry::<T>::from_raw(dentry),
                &mut *fa.cast::<FileAttr>(),
            )
        };
        T::fileattr_set(idmap, dentry, fa)?;
        Ok(0)
    })
}
