// SPDX-License-Identifier: GPL-2.0

//! User namespaces and kernel ids (`struct user_namespace`, `kuid_t`,
//! `kgid_t`; user_namespace.h, uidgid.h).

use super::bindings;
use core::sync::atomic::{fence, Ordering};
use kernel::{alloc::KVec, prelude::*, types::Opaque};

/// One extent of a user namespace's uid or gid map: ids `first` to
/// `first + count - 1` of the namespace are kernel ids `lower_first` on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IdExtent {
    pub(crate) first: u32,
    pub(crate) lower_first: u32,
    pub(crate) count: u32,
}

/// A kernel uid: a uid as the kernel sees it, above every user namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Kuid(pub(crate) u32);

/// A kernel gid.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Kgid(pub(crate) u32);

impl Kuid {
    /// `INVALID_UID`: no kernel uid.
    pub(crate) const INVALID: Self = Self(u32::MAX);
    /// Whether this is a valid kernel uid (`uid_valid()`).
    pub(crate) fn is_valid(self) -> bool {
        self != Self::INVALID
    }
}

impl Kgid {
    /// `INVALID_GID`: no kernel gid.
    pub(crate) const INVALID: Self = Self(u32::MAX);
    /// Whether this is a valid kernel gid (`gid_valid()`).
    pub(crate) fn is_valid(self) -> bool {
        self != Self::INVALID
    }
}

/// The overflow uid and gid (`overflowuid`, `overflowgid`): what an id
/// with no mapping is shown as, 65534 unless changed through
/// /proc/sys/kernel/overflow{u,g}id.
pub(crate) fn overflow_ids() -> (u32, u32) {
    // SAFETY: plain reads of two ints the kernel only changes by sysctl.
    unsafe { (bindings::overflowuid as u32, bindings::overflowgid as u32) }
}

/// A user namespace: a mapping between the ids its members use and kernel
/// ids.
///
/// # Invariants
///
/// The wrapped `struct user_namespace` is live while the handle is
/// (borrowed from what holds it: a superblock, a credential, a test).
#[repr(transparent)]
pub(crate) struct UserNamespace(Opaque<bindings::user_namespace>);

impl UserNamespace {
    /// The initial user namespace, where ids and kernel ids are the same.
    pub(crate) fn init() -> &'static Self {
        // SAFETY: `init_user_ns` is a static that lives forever; `Self` is
        // `repr(transparent)` over it.
        unsafe { &*core::ptr::addr_of!(bindings::init_user_ns).cast() }
    }

    /// # Safety
    ///
    /// `ptr` must point to a live user namespace that stays live for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::user_namespace) -> &'a Self {
        // SAFETY: `repr(transparent)`; liveness is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::user_namespace {
        self.0.get()
    }

    /// The kernel uid of `uid` in this namespace (`make_kuid()`), or
    /// [`Kuid::INVALID`] if the namespace does not map it.
    pub(crate) fn make_kuid(&self, uid: u32) -> Kuid {
        // SAFETY: `self` is a valid namespace; `make_kuid` only reads its map.
        Kuid(unsafe { bindings::make_kuid(self.as_raw(), uid) }.val)
    }

    /// The kernel gid of `gid` in this namespace (`make_kgid()`).
    pub(crate) fn make_kgid(&self, gid: u32) -> Kgid {
        // SAFETY: as for `make_kuid`.
        Kgid(unsafe { bindings::make_kgid(self.as_raw(), gid) }.val)
    }

    /// The uid that `kuid` has in this namespace (`from_kuid()`), if any.
    pub(crate) fn uid_of(&self, kuid: Kuid) -> Option<u32> {
        // SAFETY: `self` is a valid namespace; `from_kuid` only reads its map.
        let uid = unsafe { bindings::from_kuid(self.as_raw(), bindings::kuid_t { val: kuid.0 }) };
        (uid != u32::MAX).then_some(uid)
    }

    /// The extents of this namespace's uid map (`gids` false) or gid map:
    /// `(first, lower_first, count)` as /proc/PID/uid_map shows them, but
    /// with `lower_first` a kernel id. Empty for a namespace whose map is
    /// not written yet.
    pub(crate) fn extents(&self, gids: bool) -> Result<KVec<IdExtent>> {
        let raw = self.as_raw();
        // SAFETY: `self` is live; a map is written once (`map_write()`
        // publishes `nr_extents` after the extents, with a write barrier)
        // and never changed after, so after reading a non-zero count the
        // extents it counts are there (the acquire fence pairs with that
        // barrier, as `smp_rmb()` in `map_id_range_down()` does).
        unsafe {
            let map = if gids {
                &raw const (*raw).gid_map
            } else {
                &raw const (*raw).uid_map
            };
            let base = &raw const (*map).__bindgen_anon_1.__bindgen_anon_1;
            let n = core::ptr::read_volatile(&raw const (*base).nr_extents) as usize;
            fence(Ordering::Acquire);
            let first: *const bindings::uid_gid_extent =
                if n <= bindings::UID_GID_MAP_MAX_BASE_EXTENTS as usize {
                    (&raw const (*base).extent).cast()
                } else {
                    (*map).__bindgen_anon_1.__bindgen_anon_2.forward
                };
            let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
            for i in 0..n {
                let e = &*first.add(i);
                v.push(
                    IdExtent {
                        first: e.first,
                        lower_first: e.lower_first,
                        count: e.count,
                    },
                    GFP_KERNEL,
                )?;
            }
            Ok(v)
        }
    }

    /// The gid that `kgid` has in this namespace (`from_kgid()`), if any.
    pub(crate) fn gid_of(&self, kgid: Kgid) -> Option<u32> {
        // SAFETY: as for `from_kuid`.
        let gid = unsafe { bindings::from_kgid(self.as_raw(), bindings::kgid_t { val: kgid.0 }) };
        (gid != u32::MAX).then_some(gid)
    }
}

/// A user namespace made up for unit tests: only its uid and gid maps are
/// set, which is all `make_kuid()`/`from_kuid()` read. Each extent is
/// `(first, lower_first, count)` as in /proc/PID/uid_map, with `lower_first`
/// a kernel id (a nested namespace's map, composed with its parents').
#[cfg(shiftfs_kunit)]
pub(crate) struct TestUserNamespace(kernel::alloc::KBox<UserNamespace>);

#[cfg(shiftfs_kunit)]
impl TestUserNamespace {
    /// A namespace with the same map for uids and gids (at most 5 extents).
    pub(crate) fn new(map: &[(u32, u32, u32)]) -> kernel::error::Result<Self> {
        use kernel::alloc::{flags, KBox};
        if map.len() > bindings::UID_GID_MAP_MAX_BASE_EXTENTS as usize {
            return Err(kernel::error::code::EINVAL);
        }
        let ns = KBox::<UserNamespace>::new_uninit(flags::GFP_KERNEL | flags::__GFP_ZERO)?;
        // SAFETY: the allocation is zeroed, and any bytes are a valid `Opaque`.
        let ns = unsafe { ns.assume_init() };
        let raw = ns.as_raw();
        for m in [
            // SAFETY: `raw` points to the namespace we own and nobody else sees.
            unsafe { &mut (*raw).uid_map },
            // SAFETY: as above; a different field.
            unsafe { &mut (*raw).gid_map },
        ] {
            // SAFETY: the base-extents member of the union is the one that
            // `make_kuid()` reads while `nr_extents` is at most 5.
            let base = unsafe { &mut m.__bindgen_anon_1.__bindgen_anon_1 };
            for (i, &(first, lower_first, count)) in map.iter().enumerate() {
                base.extent[i] = bindings::uid_gid_extent {
                    first,
                    lower_first,
                    count,
                };
            }
            base.nr_extents = map.len() as u32;
        }
        Ok(Self(ns))
    }
}

#[cfg(shiftfs_kunit)]
impl core::ops::Deref for TestUserNamespace {
    type Target = UserNamespace;
    fn deref(&self) -> &UserNamespace {
        &self.0
    }
}
