// SPDX-License-Identifier: GPL-2.0

//! POSIX ACLs (`struct posix_acl`, posix_acl.h).
//!
//! In 6.12 a filesystem never sees `system.posix_acl_*` values as bytes: the
//! VFS parses them (and rejects malformed ones) and hands `get_acl`/`set_acl`
//! a `struct posix_acl` whose named entries carry kernel ids.

use super::{
    bindings,
    user_ns::{Kgid, Kuid},
};
use super::{ARef, AlwaysRefCounted, Rcu};
use core::{
    ptr::NonNull,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{prelude::*, types::Opaque};

/// `ACL_USER`: an entry naming a user.
pub(crate) const ACL_USER: i16 = bindings::ACL_USER as i16;
/// `ACL_GROUP`: an entry naming a group.
pub(crate) const ACL_GROUP: i16 = bindings::ACL_GROUP as i16;

/// The id an ACL entry names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AclId {
    /// `ACL_USER_OBJ`, `ACL_GROUP_OBJ`, `ACL_MASK`, `ACL_OTHER`: no id.
    None,
    User(Kuid),
    Group(Kgid),
}

/// One ACL entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct AclEntry {
    pub(crate) tag: i16,
    pub(crate) perm: u16,
    pub(crate) id: AclId,
}

/// `ACL_DONT_CACHE` for `i_acl`/`i_default_acl`: the VFS asks
/// `get_inode_acl` every time instead of caching.
pub(super) fn dont_cache() -> *mut bindings::posix_acl {
    usize::MAX.wrapping_sub(2) as *mut bindings::posix_acl
}

/// Whether `acl` is one of the markers `i_acl` holds for an ACL not cached
/// (`is_uncached_acl()`: `ACL_NOT_CACHED`, `ACL_DONT_CACHE`, or the
/// marker of a task reading the ACL; all odd addresses).
pub(super) fn is_uncached(acl: *mut bindings::posix_acl) -> bool {
    (acl as usize) & 1 != 0
}

/// A reference-counted POSIX ACL.
///
/// # Invariants
///
/// The wrapped `struct posix_acl` is live while a reference is held, and
/// immutable once published (handed to the VFS or received from it).
#[repr(transparent)]
pub(crate) struct PosixAcl(Opaque<bindings::posix_acl>);

// SAFETY: ACLs are shared between threads with `posix_acl_dup()` and
// `posix_acl_release()`, which keep the object alive while a reference is
// held; an ACL is immutable once published.
unsafe impl AlwaysRefCounted for PosixAcl {
    fn inc_ref(&self) {
        // SAFETY: `self` is a live ACL, so its count is non-zero.
        unsafe { bindings::shiftfs_posix_acl_dup(self.0.get()) };
    }

    /// Drops one reference (`posix_acl_release()`).
    ///
    /// # Safety
    ///
    /// The caller must own a reference to `obj` and give it up.
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up a reference it owns.
        unsafe { bindings::shiftfs_posix_acl_release(obj.as_ptr().cast()) };
    }
}

impl PosixAcl {
    /// A new ACL of `count` entries, filled by `fill(i)`.
    fn build(count: usize, mut fill: impl FnMut(usize) -> Result<AclEntry>) -> Result<ARef<Self>> {
        let n = count.try_into().map_err(|_| kernel::error::code::EINVAL)?;
        // SAFETY: `posix_acl_alloc` returns a new ACL with one reference, or NULL.
        let raw = unsafe { bindings::posix_acl_alloc(n, bindings::SHIFTFS_GFP_KERNEL) };
        let raw = NonNull::new(raw).ok_or(kernel::error::code::ENOMEM)?;
        // SAFETY: the new ACL's reference is ours; dropping the `ARef` (also
        // on the error path below) releases it.
        let acl: ARef<Self> = unsafe { ARef::from_raw(raw.cast()) };
        for i in 0..count {
            let e = fill(i)?;
            // SAFETY: `i < a_count`; the ACL is not shared yet, so writing
            // its entries races with nothing.
            let slot = unsafe { &mut *(*raw.as_ptr()).a_entries.as_mut_ptr().add(i) };
            slot.e_tag = e.tag;
            slot.e_perm = e.perm;
            slot.__bindgen_anon_1.e_uid.val = match e.id {
                AclId::User(k) => k.0,
                AclId::Group(k) => k.0,
                AclId::None => u32::MAX,
            };
        }
        Ok(acl)
    }

    /// Takes over the reference a kernel function returned with an ACL:
    /// `None` for NULL.
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or an ACL carrying a reference the caller owns.
    pub(super) unsafe fn from_raw_owned(ptr: *mut bindings::posix_acl) -> Option<ARef<Self>> {
        // SAFETY: per the contract.
        NonNull::new(ptr).map(|p| unsafe { ARef::from_raw(p.cast()) })
    }

    /// An ACL a caller holds, borrowed: `None` for NULL.
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or a live ACL that stays live for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::posix_acl) -> Option<&'a Self> {
        // SAFETY: `repr(transparent)`; liveness is the caller's promise.
        (!ptr.is_null()).then(|| unsafe { &*ptr.cast::<Self>() })
    }

    pub(super) fn as_raw(&self) -> *mut bindings::posix_acl {
        self.0.get()
    }

    /// Hands the reference over to C.
    pub(super) fn into_raw(acl: ARef<Self>) -> *mut bindings::posix_acl {
        ARef::into_raw(acl).as_ptr().cast()
    }

    /// A new ACL with these entries.
    #[cfg(shiftfs_kunit)]
    pub(crate) fn from_entries(entries: &[AclEntry]) -> Result<ARef<Self>> {
        Self::build(entries.len(), |i| Ok(entries[i]))
    }

    /// A new ACL with `f` applied to each entry of this one, in order.
    pub(crate) fn try_map(
        &self,
        mut f: impl FnMut(AclEntry) -> Result<AclEntry>,
    ) -> Result<ARef<Self>> {
        Self::build(self.count(), |i| f(self.entry(i)))
    }

    /// The number of entries.
    pub(crate) fn count(&self) -> usize {
        // SAFETY: `a_count` of a live ACL never changes.
        unsafe { bindings::shiftfs_posix_acl_count(self.0.get()) as usize }
    }

    /// Entry `i`; panics if `i >= count()`.
    pub(crate) fn entry(&self, i: usize) -> AclEntry {
        assert!(i < self.count());
        // SAFETY: `i < a_count`, and published entries are immutable.
        let e = unsafe { &*(*self.0.get()).a_entries.as_ptr().add(i) };
        // SAFETY: the union holds a uid for ACL_USER and a gid for ACL_GROUP;
        // both are a `u32` wrapper.
        let raw = unsafe { e.__bindgen_anon_1.e_uid.val };
        let id = match e.e_tag {
            ACL_USER => AclId::User(Kuid(raw)),
            ACL_GROUP => AclId::Group(Kgid(raw)),
            _ => AclId::None,
        };
        AclEntry {
            tag: e.e_tag,
            perm: e.e_perm,
            id,
        }
    }
}

/// The VFS's own codec for `system.posix_acl_*` values, for unit tests of
/// the whole path a value takes through shiftfs.
#[cfg(shiftfs_kunit)]
impl PosixAcl {
    /// The ACL the VFS makes of a value written by a caller in `ns`
    /// (`posix_acl_from_xattr()`); `None` for a value with no entries.
    pub(crate) fn from_xattr(
        ns: &super::user_ns::UserNamespace,
        value: &[u8],
    ) -> Result<Option<ARef<Self>>> {
        // SAFETY: `ns` is a valid namespace and `value` a readable buffer of
        // `value.len()` bytes; the result is a new ACL, NULL or an ERR_PTR.
        let raw = unsafe {
            bindings::posix_acl_from_xattr(ns.as_raw(), value.as_ptr().cast(), value.len())
        };
        let raw = kernel::error::from_err_ptr(raw)?;
        // SAFETY: a non-NULL result carries one reference, now ours.
        Ok(NonNull::new(raw).map(|p| unsafe { ARef::from_raw(p.cast()) }))
    }

    /// The value the VFS gives a reader in `ns` (`posix_acl_to_xattr()`).
    #[cfg(not(shiftfs_kernel_7))]
    pub(crate) fn to_xattr(&self, ns: &super::user_ns::UserNamespace) -> Result<KVec<u8>> {
        // SAFETY: a NULL buffer asks for the size only.
        let size = unsafe {
            bindings::posix_acl_to_xattr(ns.as_raw(), self.0.get(), core::ptr::null_mut(), 0)
        };
        let size = usize::try_from(size).map_err(|_| kernel::error::code::EINVAL)?;
        let mut out = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        // SAFETY: `out` holds `size` bytes.
        let n = unsafe {
            bindings::posix_acl_to_xattr(ns.as_raw(), self.0.get(), out.as_mut_ptr().cast(), size)
        };
        super::errno::to_result(n)?;
        Ok(out)
    }

    /// The value the VFS gives a reader in `ns` (`posix_acl_to_xattr()`,
    /// which allocates it since 6.19).
    #[cfg(shiftfs_kernel_7)]
    pub(crate) fn to_xattr(&self, ns: &super::user_ns::UserNamespace) -> Result<KVec<u8>> {
        let mut size = 0usize;
        // SAFETY: `ns` and `self` are live; the result is NULL or a buffer of
        // `size` bytes that we free below.
        let buf = unsafe {
            bindings::posix_acl_to_xattr(
                ns.as_raw(),
                self.0.get(),
                &mut size,
                bindings::SHIFTFS_GFP_KERNEL,
            )
        };
        let buf = NonNull::new(buf.cast::<u8>()).ok_or(kernel::error::code::ENOMEM)?;
        // SAFETY: the buffer holds `size` bytes until it is freed below.
        let value = unsafe { core::slice::from_raw_parts(buf.as_ptr(), size) };
        let copy = KVec::with_capacity(size, GFP_KERNEL)
            .and_then(|mut out| out.extend_from_slice(value, GFP_KERNEL).map(|()| out));
        // SAFETY: allocated by `posix_acl_to_xattr`, freed once, after its
        // last use.
        unsafe { bindings::kfree(buf.as_ptr().cast()) };
        Ok(copy?)
    }
}

/// How many derived ACLs a [`DerivedAcls`] keeps.
const DERIVED_SLOTS: usize = 64;

/// A real ACL and the ACL derived from it, as a [`DerivedAcls`] slot keeps
/// them.
#[repr(C)]
struct Derived {
    /// For `call_rcu()`: RCU walks may still read a pair that left its slot.
    head: bindings::callback_head,
    from: ARef<PosixAcl>,
    acl: ARef<PosixAcl>,
}

/// ACLs a stacked filesystem derived from real ones (the real ACL with its
/// ids shifted), kept so that RCU walks, which cannot allocate, find them.
///
/// A slot is looked up by the real ACL object itself. That identifies the
/// real ACL exactly: ACLs do not change once published (a change below
/// publishes a new one), and the slot holds a reference to the real ACL,
/// so no later ACL can be at the same address while the pair is kept, nor
/// until the RCU walks that may have seen the pair have ended.
///
/// # Invariants
///
/// Each slot is NULL or a `Derived` from [`KBox::into_raw`] that it owns.
/// A pair that leaves its slot is freed after an RCU grace period.
pub(crate) struct DerivedAcls {
    slots: [AtomicPtr<Derived>; DERIVED_SLOTS],
}

impl DerivedAcls {
    pub(crate) fn new() -> Self {
        Self {
            slots: [const { AtomicPtr::new(core::ptr::null_mut()) }; DERIVED_SLOTS],
        }
    }

    /// The slot for the real ACL at `from` (a multiplicative hash of the
    /// address; ACLs are at least 16 bytes apart).
    fn slot(&self, from: *const bindings::posix_acl) -> &AtomicPtr<Derived> {
        let h = ((from as usize as u64) >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.slots[(h >> (u64::BITS - DERIVED_SLOTS.trailing_zeros())) as usize]
    }

    /// The ACL derived from `from`, if it is kept.
    pub(crate) fn get(&self, from: &PosixAcl) -> Option<ARef<PosixAcl>> {
        let slot = self.slot(from.as_raw());
        // SAFETY: a thin wrapper; unlocked below.
        unsafe { bindings::shiftfs_rcu_read_lock() };
        let p = slot.load(Ordering::Acquire);
        // SAFETY: per the type's invariants `p` is NULL or a pair freed no
        // earlier than a grace period after it left the slot, and we are in
        // an RCU read-side section that began before; it holds its ACLs.
        let acl = unsafe { p.as_ref() }
            .filter(|d| core::ptr::eq(d.from.as_raw(), from.as_raw()))
            .map(|d| d.acl.clone());
        // SAFETY: locked above.
        unsafe { bindings::shiftfs_rcu_read_unlock() };
        acl
    }

    /// In an RCU walk: the ACL derived from `from`, if it is kept,
    /// readable for the walk.
    pub(crate) fn get_rcu<'a>(&self, from: Rcu<'a, PosixAcl>) -> Option<Rcu<'a, PosixAcl>> {
        let p = self.slot(from.0.as_raw()).load(Ordering::Acquire);
        // SAFETY: in an RCU walk (the `Rcu` invariant, for `'a`), a pair
        // seen in its slot is freed no earlier than a grace period later.
        let d = unsafe { p.as_ref() }?;
        // The pair holds its ACLs, and ACLs are freed after a grace period
        // too (`posix_acl_release()`): readable for the walk.
        core::ptr::eq(d.from.as_raw(), from.0.as_raw())
            // SAFETY: as above; the reference does not outlive the walk.
            .then(|| Rcu(unsafe { &*d.acl.as_raw().cast::<PosixAcl>() }))
    }

    /// Keeps `acl`, derived from `from`, in place of whatever its slot
    /// held; without memory for it, keeps nothing (walks then ask again).
    pub(crate) fn insert(&self, from: ARef<PosixAcl>, acl: ARef<PosixAcl>) {
        let slot = self.slot(from.as_raw());
        let pair = Derived {
            head: bindings::callback_head {
                next: core::ptr::null_mut(),
                func: None,
            },
            from,
            acl,
        };
        let Ok(pair) = KBox::new(pair, GFP_KERNEL) else {
            return;
        };
        // Release: a walk that sees the pair sees it whole.
        let old = slot.swap(KBox::into_raw(pair), Ordering::AcqRel);
        // SAFETY: `old` left its slot just now.
        unsafe { free_after_grace_period(old) };
    }
}

impl Drop for DerivedAcls {
    fn drop(&mut self) {
        for slot in &self.slots {
            let old = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
            // SAFETY: `old` left its slot just now.
            unsafe { free_after_grace_period(old) };
        }
    }
}

/// Frees `pair` (if not NULL) once the RCU walks that may have seen it
/// have ended.
///
/// # Safety
///
/// `pair` must be NULL or a pair a [`DerivedAcls`] slot owned, just taken
/// out of it.
unsafe fn free_after_grace_period(pair: *mut Derived) {
    if pair.is_null() {
        return;
    }
    // SAFETY: `pair` is ours now and `head` is its first field; the
    // callback frees it, and module unload waits for pending callbacks
    // (`rcu_barrier()` in `Registration::drop`).
    unsafe { bindings::call_rcu(&raw mut (*pair).head, Some(free_derived)) };
}

/// `call_rcu()` callback of [`free_after_grace_period`].
///
/// # Safety
///
/// `head` must be the `head` of a pair given to `call_rcu` by
/// [`free_after_grace_period`].
unsafe extern "C" fn free_derived(head: *mut bindings::callback_head) {
    // SAFETY: `head` is the first field of a `repr(C)` pair from
    // `KBox::into_raw`, now unreachable; dropping it releases its ACLs.
    drop(unsafe { KBox::from_raw(head.cast::<Derived>()) });
}
