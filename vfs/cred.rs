// SPDX-License-Identifier: GPL-2.0

//! Credentials (`struct cred`, cred.h).

use super::bindings;
use core::ptr::NonNull;
use kernel::{
    error::code::ENOMEM,
    prelude::*,
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

    /// Whether `cap` is in the effective set.
    #[cfg(shiftfs_kunit)]
    pub(crate) fn has_effective_cap(&self, cap: u32) -> bool {
        // SAFETY: published credentials are immutable.
        unsafe { (*self.0.get()).cap_effective.val & (1u64 << cap) != 0 }
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
