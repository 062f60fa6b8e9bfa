// SPDX-License-Identifier: GPL-2.0

//! Directory entries (`struct dentry`): typed handles, the dentry operations
//! (revalidation), and the calls a stacked filesystem makes on real
//! dentries.

use super::{
    bindings,
    errno::to_result,
    fs_type::FileSystem,
    inode::{nop_idmap, FileAttr, Iattr, Inode, MntIdmap},
    super_block::SuperBlock,
    ARef, Rcu, Real,
};
use core::{
    marker::PhantomData,
    mem::MaybeUninit,
    ptr::NonNull,
    sync::atomic::{fence, Ordering},
};
use kernel::{
    ffi::{c_char, c_int, c_uint, c_ulong},
    prelude::*,
    types::Opaque,
};

/// A directory entry of a filesystem of kind `T`.
///
/// # Invariants
///
/// The wrapped `struct dentry` is live while the handle is (an `ARef`
/// holds a reference; a `&Dentry` borrows from a holder). If `T` is a
/// [`FileSystem`], the dentry belongs to a superblock of `T` and its
/// `d_fsdata` holds a reference to the real dentry it stands on, set before
/// the dentry was made visible (by `lookup`, as the root, or for a
/// `tmpfile`) and dropped in `d_release`. A dentry the VFS allocated for a
/// lookup is not one yet: it comes as a [`NewDentry`].
#[repr(transparent)]
pub(crate) struct Dentry<T>(Opaque<bindings::dentry>, PhantomData<T>);

typed_handle!(Dentry, dentry, shiftfs_dget, dput);

impl<T> Dentry<T> {
    /// The inode, or `None` for a negative dentry.
    pub(crate) fn inode(&self) -> Option<&Inode<T>> {
        // SAFETY: `d_inode` of a dentry we hold is stable while we hold it
        // (a positive dentry stays positive until it is killed).
        let inode = unsafe { (*self.as_raw()).d_inode };
        // SAFETY: a non-NULL `d_inode` is live as long as the dentry, and of
        // the dentry's kind.
        (!inode.is_null()).then(|| unsafe { Inode::from_raw(inode) })
    }

    /// The superblock the dentry belongs to.
    pub(crate) fn super_block(&self) -> &SuperBlock<T> {
        // SAFETY: a dentry keeps its superblock alive; `d_sb` never changes.
        unsafe { SuperBlock::from_raw((*self.as_raw()).d_sb) }
    }

    /// Whether the dentry has been unhashed (deleted or invalidated).
    pub(crate) fn is_unhashed(&self) -> bool {
        // SAFETY: `self` is live.
        unsafe { bindings::shiftfs_d_unhashed(self.as_raw()) }
    }

    /// Unhashes the dentry (`d_drop()`): the next lookup of its name looks
    /// it up again, and it goes away with its last user.
    pub(crate) fn drop_from_cache(&self) {
        // SAFETY: `self` is live; `d_drop` takes the dentry's own lock.
        unsafe { bindings::d_drop(self.as_raw()) };
    }

    /// Whether this dentry and `other` have the same name now, each read
    /// consistently (`take_dentry_name_snapshot()`), for dentries whose
    /// names may change under a concurrent rename.
    fn same_name_as<U>(&self, other: &Dentry<U>) -> bool {
        let a = NameSnapshot::take(self.as_raw());
        let b = NameSnapshot::take(other.as_raw());
        a.name() == b.name()
    }

    /// The dentry's name, while its parent's lock keeps it stable.
    ///
    /// # Safety
    ///
    /// The caller must hold the lock of the dentry's parent directory (or
    /// know the dentry new and private), for `'a`.
    pub(super) unsafe fn name_locked<'a>(&'a self) -> &'a [u8] {
        // SAFETY: per the contract the name does not change for `'a`.
        unsafe { qstr_bytes(&*bindings::shiftfs_d_name(self.as_raw())) }
    }

    /// The parent dentry (`d_parent`), while its lock keeps it stable.
    ///
    /// # Safety
    ///
    /// The caller must hold the parent directory's lock for `'a` (or know
    /// the dentry new and private), so that the dentry is not moved.
    pub(super) unsafe fn parent_locked<'a>(&'a self) -> &'a Dentry<T> {
        // SAFETY: per the contract `d_parent` is stable for `'a`, and a
        // dentry holds a reference to its parent.
        unsafe { Dentry::from_raw((*self.as_raw()).d_parent) }
    }
}

/// The bytes of a `struct qstr`.
///
/// # Safety
///
/// The name must stay as it is for `'a`.
unsafe fn qstr_bytes<'a>(q: &bindings::qstr) -> &'a [u8] {
    // SAFETY: a qstr's `name` holds `len` bytes; per the contract they stay.
    unsafe { core::slice::from_raw_parts(q.name, q.__bindgen_anon_1.__bindgen_anon_1.len as usize) }
}

/// What `d_time` of a dentry of a [`FileSystem`] holds while its real
/// dentry is not known current: odd, unlike every `d_seq` kept there.
const UNCHECKED: c_ulong = 1;

/// A consistent copy of a dentry's name (`take_dentry_name_snapshot()`),
/// released on drop.
struct NameSnapshot(MaybeUninit<bindings::name_snapshot>);

impl NameSnapshot {
    fn take(dentry: *mut bindings::dentry) -> Self {
        let mut snap = Self(MaybeUninit::uninit());
        // SAFETY: the dentry is live (a caller's handle); the snapshot is
        // filled in here before it is read, and released once, on drop.
        unsafe { bindings::take_dentry_name_snapshot(snap.0.as_mut_ptr(), dentry) };
        snap
    }

    fn qstr(&self) -> &bindings::qstr {
        // SAFETY: filled in by `take`.
        unsafe { &(*self.0.as_ptr()).name }
    }

    fn name(&self) -> &[u8] {
        // SAFETY: the snapshot's name does not change until it is released.
        unsafe { qstr_bytes(self.qstr()) }
    }
}

impl Drop for NameSnapshot {
    fn drop(&mut self) {
        // SAFETY: taken by `take`, released once.
        unsafe { bindings::release_dentry_name_snapshot(self.0.as_mut_ptr()) };
    }
}

impl<T: FileSystem> Dentry<T> {
    /// The real dentry this one stands on.
    pub(crate) fn real(&self) -> &Dentry<Real> {
        // SAFETY: per the type's invariants `d_fsdata` holds a reference to
        // the real dentry, which lives at least as long as this one.
        unsafe { Dentry::from_raw((*self.as_raw()).d_fsdata.cast()) }
    }

    /// Whether the real dentry is hashed and has this dentry's name now.
    /// The answer is kept in `d_time` for RCU walks, which take it as
    /// still true until the real dentry's sequence count (`d_seq`) moves
    /// (see [`Rcu::real_unchanged`]).
    pub(crate) fn check_real(&self) -> bool {
        let real = self.real();
        // SAFETY: `real` is live. Its `d_seq` is read before the checks, so
        // that a change made after it was read moves it past what is kept.
        let seq = unsafe { bindings::shiftfs_raw_seqcount_begin(real.as_raw()) };
        let current = !real.is_unhashed() && self.same_name_as(real);
        let kept = if current { seq as c_ulong } else { UNCHECKED };
        // SAFETY: `d_time` is the filesystem's to use; RCU walks read it
        // concurrently, as one word.
        unsafe {
            core::ptr::write_volatile(core::ptr::addr_of_mut!((*self.as_raw()).d_time), kept)
        };
        current
    }

    /// Checks a change of attributes against this dentry's inode with the
    /// caller's credentials (`setattr_prepare()`).
    pub(crate) fn setattr_prepare(&self, idmap: &MntIdmap, attr: &Iattr) -> Result {
        let mut attr = *attr;
        // SAFETY: `self` and `idmap` are live; `setattr_prepare` only reads
        // the (copied) attributes.
        to_result(unsafe {
            bindings::setattr_prepare(idmap.as_raw(), self.as_raw(), attr.as_raw())
        })
    }
}

impl Dentry<Real> {
    /// This dentry as one of `T`'s, if it is on a superblock of `T`.
    pub(crate) fn downcast<T: FileSystem>(&self) -> Option<&Dentry<T>> {
        self.super_block().downcast::<T>()?;
        // SAFETY: the dentry is on a superblock of `T`. A dentry a caller
        // holds as `Dentry<Real>` comes from a path walk or a mount, so it
        // was looked up (or is a root) and carries its real dentry.
        Some(unsafe { Dentry::from_raw(self.as_raw()) })
    }

    /// Whether this dentry is still valid for its own filesystem
    /// (`d_revalidate`, if it has one).
    pub(crate) fn revalidate(&self, flags: LookupFlags) -> Result<bool> {
        // SAFETY: `self` is live and referenced by its holder.
        unsafe { revalidate_real(self.as_raw(), flags) }
    }

    /// Whether this dentry is still valid, as a path's last component
    /// (`d_weak_revalidate`, if its filesystem has one).
    pub(crate) fn weak_revalidate(&self, flags: LookupFlags) -> Result<bool> {
        let d = self.as_raw();
        // SAFETY: `self` is live; its operations are its filesystem's.
        let ret = unsafe {
            match (*d).d_op.as_ref().and_then(|o| o.d_weak_revalidate) {
                Some(reval) => reval(d, flags.0),
                None => 1,
            }
        };
        to_result(ret).map(|()| ret > 0)
    }

    /// Sets attributes (`notify_change()`), with the inode locked for the
    /// call.
    pub(crate) fn notify_change(&self, attr: &mut Iattr) -> Result {
        let inode = self.inode().ok_or(ENOENT)?;
        let _locked = inode.lock();
        // SAFETY: `self` is live and its inode locked, as `notify_change`
        // wants; no delegation is broken (NULL).
        to_result(unsafe {
            bindings::notify_change(
                nop_idmap(),
                self.as_raw(),
                attr.as_raw(),
                core::ptr::null_mut(),
            )
        })
    }

    /// The target of this symlink (`vfs_get_link()`); `done` frees it.
    pub(crate) fn get_link(&self, done: &mut DelayedCall) -> Result<LinkTarget> {
        // SAFETY: `self` is live; `done` is the caller's delayed call.
        let target = unsafe { bindings::vfs_get_link(self.as_raw(), done.as_raw()) };
        kernel::error::from_err_ptr(target.cast_mut()).map(|p| LinkTarget(p.cast_const()))
    }

    /// File attributes (`vfs_fileattr_get()`).
    pub(crate) fn fileattr_get(&self, fa: &mut FileAttr) -> Result {
        // SAFETY: `self` is live; `fa` is the caller's.
        to_result(unsafe { bindings::vfs_fileattr_get(self.as_raw(), fa.as_raw()) })
    }

    /// Sets file attributes (`vfs_fileattr_set()`).
    pub(crate) fn fileattr_set(&self, fa: &mut FileAttr) -> Result {
        // SAFETY: `self` is live; `fa` is the caller's.
        to_result(unsafe { bindings::vfs_fileattr_set(nop_idmap(), self.as_raw(), fa.as_raw()) })
    }
}

/// The real dentry's own `d_revalidate`, if it has one.
///
/// # Safety
///
/// `d` must be a live dentry, or readable in the RCU walk `flags` says.
#[cfg(not(shiftfs_kernel_7))]
unsafe fn revalidate_real(d: *mut bindings::dentry, flags: LookupFlags) -> Result<bool> {
    // SAFETY: per the contract; the operations are the dentry's
    // filesystem's, told whether this is an RCU walk.
    let ret = unsafe {
        match (*d).d_op.as_ref().and_then(|o| o.d_revalidate) {
            Some(reval) => reval(d, flags.0),
            None => 1,
        }
    };
    to_result(ret).map(|()| ret > 0)
}

/// The real dentry's own `d_revalidate`, if it has one, told its parent
/// directory and its name (since 6.14).
///
/// # Safety
///
/// `d` must be a live dentry, or readable in the RCU walk `flags` says.
#[cfg(shiftfs_kernel_7)]
unsafe fn revalidate_real(d: *mut bindings::dentry, flags: LookupFlags) -> Result<bool> {
    // SAFETY: per the contract.
    let Some(reval) = (unsafe { (*d).d_op.as_ref() }).and_then(|o| o.d_revalidate) else {
        return Ok(true);
    };
    let ret = if flags.rcu() {
        // SAFETY: in the walk the parent and its inode stay readable; a
        // parent that lost its inode sends the walk back (as overlayfs
        // does).
        let dir = unsafe {
            core::ptr::read_volatile(&(*core::ptr::read_volatile(&(*d).d_parent)).d_inode)
        };
        if dir.is_null() {
            return Err(ECHILD);
        }
        let name = NameSnapshot::take(d);
        // SAFETY: `dir` and `d` are readable; the name is stable while the
        // snapshot lives.
        unsafe { reval(dir, name.qstr(), d, flags.0) }
    } else {
        // SAFETY: `d` is live; `dget_parent` returns its parent with a
        // reference, which keeps the parent's inode.
        let parent = unsafe { NonNull::new_unchecked(bindings::dget_parent(d)) };
        // SAFETY: that reference, handed over.
        let parent: ARef<Dentry<Real>> = unsafe { ARef::from_raw(parent.cast()) };
        let name = NameSnapshot::take(d);
        // SAFETY: as above.
        unsafe { reval((*parent.as_raw()).d_inode, name.qstr(), d, flags.0) }
    };
    to_result(ret).map(|()| ret > 0)
}

impl<'a, T> Rcu<'a, Dentry<T>> {
    /// # Safety
    ///
    /// The caller must be in an RCU path walk, and `ptr` a live-or-dying
    /// dentry of kind `T` that the walk reached.
    unsafe fn from_raw(ptr: *mut bindings::dentry) -> Self {
        // SAFETY: per the contract the dentry is readable for the walk.
        Rcu(unsafe { Dentry::from_raw(ptr) })
    }

    /// The inode, read once (`d_inode_rcu()`); the walk rechecks it.
    pub(crate) fn inode(self) -> Option<Rcu<'a, Inode<T>>> {
        // SAFETY: the dentry is readable; `d_inode` is read once.
        let inode = unsafe { core::ptr::read_volatile(&(*self.0.as_raw()).d_inode) };
        // SAFETY: an inode a walk reaches is freed after a grace period.
        (!inode.is_null()).then(|| unsafe { Rcu::<Inode<T>>::from_raw(inode) })
    }
}

impl<'a, T: FileSystem> Rcu<'a, Dentry<T>> {
    /// The real dentry, unless the dentry is being killed (its
    /// `d_release` ran: `d_fsdata` is NULL).
    pub(crate) fn real(self) -> Option<Rcu<'a, Dentry<Real>>> {
        // SAFETY: the dentry is readable; `d_release` clears `d_fsdata`
        // before the real dentry's reference is dropped, and the real
        // dentry is freed an RCU grace period after that.
        let real = unsafe { core::ptr::read_volatile(&(*self.0.as_raw()).d_fsdata) };
        // SAFETY: as above.
        (!real.is_null()).then(|| unsafe { Rcu::<Dentry<Real>>::from_raw(real.cast()) })
    }

    /// Whether `real`, this dentry's real dentry, is as [`Dentry::check_real`]
    /// last found it current: not renamed, unhashed, or made positive or
    /// negative since, each of which moves its `d_seq`. Takes no lock.
    pub(crate) fn real_unchanged(self, real: Rcu<'_, Dentry<Real>>) -> bool {
        // SAFETY: the dentry is readable in the walk; `d_time` is written
        // as one word.
        let kept = unsafe { core::ptr::read_volatile(&raw const (*self.0.as_raw()).d_time) };
        // What the caller read of `real` (its inode) is read before the
        // count, as `read_seqcount_retry()` orders it (`smp_rmb()`).
        fence(Ordering::Acquire);
        // SAFETY: `real` is readable in the walk. The count's word, read
        // once (`raw_read_seqcount()`, here rather than through a C call
        // on the hot path).
        let seq = unsafe {
            core::ptr::read_volatile(&raw const (*real.0.as_raw()).d_seq.seqcount.sequence)
        };
        // Odd: a change is under way.
        seq & 1 == 0 && kept == seq as c_ulong
    }
}

impl Rcu<'_, Dentry<Real>> {
    /// [`Dentry::revalidate`] in the RCU walk (`flags` says so).
    pub(crate) fn revalidate(self, flags: LookupFlags) -> Result<bool> {
        // SAFETY: the dentry is readable in the walk, which `flags` says.
        unsafe { revalidate_real(self.0.as_raw(), flags) }
    }
}

/// How a path walk looks a name up (`LOOKUP_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LookupFlags(c_uint);

impl LookupFlags {
    pub(super) fn from_raw(flags: c_uint) -> Self {
        Self(flags)
    }

    /// Whether this is an RCU walk (`LOOKUP_RCU`).
    pub(crate) fn rcu(self) -> bool {
        self.0 & bindings::SHIFTFS_LOOKUP_RCU != 0
    }
}

/// A dentry the VFS allocated for `lookup`: hashed only once the filesystem
/// gives it an inode (or none) with [`NewDentry::splice`].
///
/// # Invariants
///
/// A live, unhashed dentry of `T` whose `d_fsdata` is not set yet, with a
/// looked-up parent that the VFS holds (locked) for the lookup.
pub(crate) struct NewDentry<'a, T>(&'a Dentry<T>);

impl<'a, T: FileSystem> NewDentry<'a, T> {
    /// # Safety
    ///
    /// `ptr` must be a dentry the VFS passes to `lookup` of `T`.
    pub(super) unsafe fn from_raw(ptr: *mut bindings::dentry) -> Self {
        // SAFETY: per the contract (see the type's invariants).
        NewDentry(unsafe { Dentry::from_raw(ptr) })
    }

    /// The name looked up.
    pub(crate) fn name(&self) -> &'a [u8] {
        // SAFETY: the dentry is new and private to the lookup.
        unsafe { self.0.name_locked() }
    }

    /// The directory it is looked up in.
    pub(crate) fn parent(&self) -> &'a Dentry<T> {
        // SAFETY: the dentry is new and private to the lookup; its parent
        // is a looked-up dentry of `T` that the VFS holds.
        unsafe { self.0.parent_locked() }
    }

    /// Makes the dentry stand on `real` and gives it `inode` (`None`:
    /// negative), or finds the dentry `inode` already has if it is a
    /// directory (`d_splice_alias()`): the dentry to use instead, if any.
    pub(crate) fn splice(
        self,
        real: ARef<Dentry<Real>>,
        inode: Option<ARef<Inode<T>>>,
    ) -> Result<Option<ARef<Dentry<T>>>> {
        let d = self.0.as_raw();
        // SAFETY: the dentry is ours until it is spliced; `d_release`
        // drops the reference to `real`, also if the splice fails.
        unsafe { (*d).d_fsdata = ARef::into_raw(real).as_ptr().cast() };
        self.0.check_real();
        let inode = inode.map_or(core::ptr::null_mut(), |i| ARef::into_raw(i).as_ptr().cast());
        // SAFETY: `d_splice_alias` takes over the inode reference; it
        // returns NULL (`d` used), another dentry with a reference, or an
        // ERR_PTR.
        let alias = kernel::error::from_err_ptr(unsafe { bindings::d_splice_alias(inode, d) })?;
        // SAFETY: a returned alias is a referenced, looked-up dentry of `T`.
        Ok(NonNull::new(alias).map(|a| unsafe { ARef::from_raw(a.cast()) }))
    }
}

/// A delayed call (`struct delayed_call`) that frees what `get_link`
/// returns once the caller is done with it.
#[repr(transparent)]
pub(crate) struct DelayedCall(Opaque<bindings::delayed_call>);

impl DelayedCall {
    /// # Safety
    ///
    /// `ptr` must be the caller's live delayed call, for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::delayed_call) -> &'a mut Self {
        // SAFETY: `repr(transparent)`; liveness is the caller's promise.
        unsafe { &mut *ptr.cast() }
    }

    fn as_raw(&mut self) -> *mut bindings::delayed_call {
        self.0.get()
    }
}

/// A symlink's target as `get_link` returns it: NUL-terminated, valid until
/// its [`DelayedCall`] runs.
pub(crate) struct LinkTarget(*const c_char);

impl LinkTarget {
    pub(super) fn into_raw(self) -> *const c_char {
        self.0
    }
}

/// The dentry operations of a filesystem. Implemented by the filesystem
/// type; `d_release` (dropping the real dentry) is the layer's own.
#[vtable]
pub(crate) trait DentryOperations: Sized {
    /// `d_revalidate` in a walk with references: whether `dentry` is still
    /// valid.
    fn revalidate(_dentry: &Dentry<Self>, _flags: LookupFlags) -> Result<bool> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `d_revalidate` in an RCU walk: must not sleep; `ECHILD` goes back to
    /// a walk with references.
    fn revalidate_rcu(_dentry: Rcu<'_, Dentry<Self>>, _flags: LookupFlags) -> Result<bool> {
        Err(ECHILD)
    }

    /// `d_weak_revalidate`: whether `dentry`, the last component of a
    /// path, is still valid.
    fn weak_revalidate(_dentry: &Dentry<Self>, _flags: LookupFlags) -> Result<bool> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The dentry operations of superblocks of `T` (`s_d_op`).
pub(super) fn operations<T: FileSystem>() -> &'static bindings::dentry_operations {
    &Table::<T>::OPS
}

struct Table<T>(PhantomData<T>);

impl<T: FileSystem> Table<T> {
    const OPS: bindings::dentry_operations = bindings::dentry_operations {
        d_revalidate: if T::HAS_REVALIDATE {
            Some(d_revalidate::<T>)
        } else {
            None
        },
        d_weak_revalidate: if T::HAS_WEAK_REVALIDATE {
            Some(d_weak_revalidate::<T>)
        } else {
            None
        },
        d_release: Some(d_release),
        // SAFETY: all-zero is a valid table: NULL operations are optional.
        ..unsafe { super::inode::zeroed() }
    };
}

/// Maps a revalidation result to what the VFS expects.
fn valid(r: Result<bool>) -> c_int {
    match r {
        Ok(valid) => c_int::from(valid),
        Err(e) => e.to_errno(),
    }
}

/// The revalidation of dentry `d` of `T`.
///
/// # Safety
///
/// `d` must be a dentry of `T` that the VFS holds, or readable in the RCU
/// walk `flags` says.
unsafe fn revalidate<T: FileSystem>(d: *mut bindings::dentry, flags: LookupFlags) -> c_int {
    if flags.rcu() {
        // SAFETY: per the contract, an RCU walk with this dentry.
        let dentry = unsafe { Rcu::<Dentry<T>>::from_raw(d) };
        return valid(T::revalidate_rcu(dentry, flags));
    }
    // SAFETY: per the contract the VFS holds a looked-up dentry of `T`.
    valid(T::revalidate(unsafe { Dentry::from_raw(d) }, flags))
}

/// # Safety
///
/// Called by the VFS as `d_revalidate` with a dentry of `T`: held, or
/// readable in the RCU walk `flags` says.
#[cfg(not(shiftfs_kernel_7))]
unsafe extern "C" fn d_revalidate<T: FileSystem>(d: *mut bindings::dentry, flags: c_uint) -> c_int {
    // SAFETY: per the contract.
    unsafe { revalidate::<T>(d, LookupFlags(flags)) }
}

/// # Safety
///
/// As above; the parent directory and the name the VFS passes since 6.14
/// are not needed (the dentry's own are read as it checks them).
#[cfg(shiftfs_kernel_7)]
unsafe extern "C" fn d_revalidate<T: FileSystem>(
    _dir: *mut bindings::inode,
    _name: *const bindings::qstr,
    d: *mut bindings::dentry,
    flags: c_uint,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { revalidate::<T>(d, LookupFlags(flags)) }
}

/// # Safety
///
/// Called by the VFS as `d_weak_revalidate` with a held, looked-up dentry
/// of `T`.
unsafe extern "C" fn d_weak_revalidate<T: FileSystem>(
    d: *mut bindings::dentry,
    flags: c_uint,
) -> c_int {
    // SAFETY: per the contract.
    let dentry = unsafe { Dentry::from_raw(d) };
    valid(T::weak_revalidate(dentry, LookupFlags(flags)))
}

/// `d_release`: drops the reference to the real dentry.
///
/// # Safety
///
/// Called by the VFS once, for a dentry of a stacked filesystem being
/// freed.
unsafe extern "C" fn d_release(d: *mut bindings::dentry) {
    // SAFETY: `d_fsdata` is NULL or holds the reference the dentry was
    // given (see `Dentry`'s invariants); RCU walkers read it once and see
    // NULL or a dentry freed only after a grace period.
    unsafe {
        let real = (*d).d_fsdata.cast::<bindings::dentry>();
        (*d).d_fsdata = core::ptr::null_mut();
        if !real.is_null() {
            bindings::dput(real);
        }
    }
}
