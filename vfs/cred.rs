// SPDX-License-Identifier: GPL-2.0

//! Credentials (`struct cred`, cred.h).

use super::{
    bindings,
    user_ns::{Kgid, Kuid},
};
use core::ptr::NonNull;
use kernel::{
    error::code::ENOMEM,
    new_spinlock,
    prelude::*,
    sync::SpinLock,
    types::{ARef, AlwaysRefCounted, Opaque},
};

/// A reference-counted, immutable set of credentials.
#[repr(transparent)]
pub(crate) struct Credential(Opaque<bindings::cred>);

// SAFETY: published credentials are immutable and reference counted
// atomically, so they may be used and dropped from any thread.
unsafe impl Send for Credential {}
// SAFETY: as above.
unsafe impl Sync for Credential {}

// SAFETY: credentials are shared between threads with `get_cred()` and
// `put_cred()`, and never change once published.
unsafe impl AlwaysRefCounted for Credential {
    fn inc_ref(&self) {
        // SAFETY: `self` is live, so its usage count is non-zero.
        unsafe { bindings::shiftfs_get_cred(self.0.get()) };
    }

    /// Drops one reference (`put_cred()`).
    ///
    /// # Safety
    ///
    /// The caller must own a reference to `obj` and give it up.
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up a reference it owns.
        unsafe { bindings::shiftfs_put_cred(obj.as_ptr().cast()) };
    }
}

/// The calling task's filesystem uid and gid (`current_fsuid()`,
/// `current_fsgid()`).
pub(crate) fn current_fsids() -> (Kuid, Kgid) {
    // SAFETY: reads the calling task's own credentials.
    unsafe {
        (
            Kuid(bindings::shiftfs_current_fsuid().val),
            Kgid(bindings::shiftfs_current_fsgid().val),
        )
    }
}

/// Overridden credentials of the calling task; reverted on drop. Not `Send`:
/// it must be dropped by the task that made it.
pub(crate) struct Override {
    old: *const bindings::cred,
}

impl Drop for Override {
    fn drop(&mut self) {
        // SAFETY: `old` is what `override_creds` returned on this task, and
        // overrides are undone in reverse order (guards drop in scope order).
        unsafe { bindings::revert_creds(self.old) };
    }
}

impl Credential {
    /// A copy of the calling task's credentials without capability `cap` in
    /// any of its sets (`prepare_creds()` and `cap_lower()`).
    pub(crate) fn current_without_cap(cap: u32) -> Result<ARef<Self>> {
        // SAFETY: `prepare_creds` returns a new, unshared copy or NULL.
        let new = NonNull::new(unsafe { bindings::prepare_creds() }).ok_or(ENOMEM)?;
        let bit = !(1u64 << cap);
        // SAFETY: the copy is ours alone until it is wrapped below.
        unsafe {
            let c = new.as_ptr();
            (*c).cap_effective.val &= bit;
            (*c).cap_permitted.val &= bit;
            (*c).cap_inheritable.val &= bit;
            (*c).cap_bset.val &= bit;
            (*c).cap_ambient.val &= bit;
        }
        // SAFETY: the new credentials carry one reference, now ours.
        Ok(unsafe { ARef::from_raw(new.cast()) })
    }

    /// A copy of these credentials with the filesystem ids set (for calls
    /// into a lower filesystem on behalf of a caller).
    pub(crate) fn with_fsids(&self, fsuid: Kuid, fsgid: Kgid) -> Result<ARef<Self>> {
        let new = {
            // `prepare_creds()` copies the task's credentials: make them
            // these, for the copy only.
            let _as = self.override_current();
            // SAFETY: returns a new, unshared copy or NULL.
            NonNull::new(unsafe { bindings::prepare_creds() }).ok_or(ENOMEM)?
        };
        // SAFETY: the copy is ours alone until it is wrapped below.
        unsafe {
            (*new.as_ptr()).fsuid.val = fsuid.0;
            (*new.as_ptr()).fsgid.val = fsgid.0;
        }
        // SAFETY: the new credentials carry one reference, now ours.
        Ok(unsafe { ARef::from_raw(new.cast()) })
    }

    /// Makes these the calling task's credentials until the guard is
    /// dropped (`override_creds()`/`revert_creds()`).
    pub(crate) fn override_current(&self) -> Override {
        // SAFETY: `override_creds` takes its own reference to `self`, which
        // `revert_creds` drops.
        let old = unsafe { bindings::override_creds(self.0.get()) };
        Override { old }
    }

    pub(crate) fn as_raw(&self) -> *const bindings::cred {
        self.0.get()
    }

    /// Whether `cap` is in the effective set.
    #[cfg(shiftfs_kunit)]
    pub(crate) fn has_effective_cap(&self, cap: u32) -> bool {
        // SAFETY: published credentials are immutable.
        unsafe { (*self.0.get()).cap_effective.val & (1u64 << cap) != 0 }
    }
}

/// How many fsuid/fsgid variants of a credential [`FsidCache`] keeps.
const FSID_SLOTS: usize = 8;

/// The kept variants, most recently made first to be replaced last.
#[derive(Default)]
struct Slots {
    next: usize,
    entries: [Option<(Kuid, Kgid, ARef<Credential>)>; FSID_SLOTS],
}

/// A credential and its copies with other fsuid/fsgid, made once and kept,
/// so that calls on behalf of the same caller ids do not allocate.
#[pin_data]
pub(crate) struct FsidCache {
    base: ARef<Credential>,
    #[pin]
    slots: SpinLock<Slots>,
}

impl FsidCache {
    pub(crate) fn new(base: ARef<Credential>) -> impl PinInit<Self> {
        pin_init!(Self {
            base,
            slots <- new_spinlock!(Slots::default(), "shiftfs_fsid_cache"),
        })
    }

    /// The credential the variants are made from.
    pub(crate) fn base(&self) -> &ARef<Credential> {
        &self.base
    }

    /// The variant kept for `key` (the caller's own fsuid and fsgid), if
    /// it was made already: never sleeps (for RCU path walks).
    pub(crate) fn get_made(&self, key: (Kuid, Kgid)) -> Option<ARef<Credential>> {
        let s = self.slots.lock();
        s.entries
            .iter()
            .flatten()
            .find(|(u, g, _)| (*u, *g) == key)
            .map(|(_, _, c)| c.clone())
    }

    /// The variant for `key` (the caller's own fsuid and fsgid): the base
    /// credential with the filesystem ids `fsids` computes, made and kept
    /// the first time.
    pub(crate) fn get(
        &self,
        key: (Kuid, Kgid),
        fsids: impl FnOnce() -> Result<(Kuid, Kgid)>,
    ) -> Result<ARef<Credential>> {
        if let Some(c) = self.get_made(key) {
            return Ok(c);
        }
        let (fsuid, fsgid) = fsids()?;
        // Made without the lock held: `prepare_creds()` may sleep. Two
        // callers racing here both insert; the older copy ages out.
        let new = self.base.with_fsids(fsuid, fsgid)?;
        let mut s = self.slots.lock();
        let i = s.next;
        s.next = (i + 1) % FSID_SLOTS;
        // A replaced variant is freed after an RCU grace period
        // (`put_cred()`), which is allowed under a spinlock.
        s.entries[i] = Some((key.0, key.1, new.clone()));
        Ok(new)
    }
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{kunit_expect, kunit_suite, vfs::kunit::Test};

    // KUnit runs the cases in the task loading the module: root, with
    // every capability.
    fn mark_credentials_lose_cap_sys_resource(t: &mut Test) {
        let c = Credential::current_without_cap(bindings::CAP_SYS_RESOURCE).expect("creds");
        kunit_expect!(t, !c.has_effective_cap(bindings::CAP_SYS_RESOURCE));
        kunit_expect!(t, c.has_effective_cap(bindings::CAP_SYS_ADMIN));
        kunit_expect!(t, c.has_effective_cap(bindings::CAP_DAC_OVERRIDE));
    }

    fn credentials_are_reference_counted(t: &mut Test) {
        let c = Credential::current_without_cap(bindings::CAP_SYS_RESOURCE).expect("creds");
        let d = c.clone();
        drop(c);
        kunit_expect!(t, !d.has_effective_cap(bindings::CAP_SYS_RESOURCE));
    }

    kunit_suite!(
        "shiftfs_cred",
        [
            mark_credentials_lose_cap_sys_resource,
            credentials_are_reference_counted,
        ]
    );
}
