// SPDX-License-Identifier: GPL-2.0

//! Credentials (`struct cred`, cred.h) and capabilities.

use super::{
    bindings,
    user_ns::{Kgid, Kuid, UserNamespace},
    ARef, AlwaysRefCounted,
};
use core::{
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{error::code::ENOMEM, prelude::*, types::Opaque};

/// A capability (`CAP_*`, capability.h).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Capability(u32);

impl Capability {
    /// `CAP_SYS_ADMIN`.
    pub(crate) const SYS_ADMIN: Self = Self(bindings::CAP_SYS_ADMIN);
    /// `CAP_SYS_RESOURCE`: reserved space, quota and limit overrides.
    pub(crate) const SYS_RESOURCE: Self = Self(bindings::CAP_SYS_RESOURCE);
    /// `CAP_MKNOD`: making device nodes.
    pub(crate) const MKNOD: Self = Self(bindings::CAP_MKNOD);
    /// `CAP_DAC_OVERRIDE`.
    pub(crate) const DAC_OVERRIDE: Self = Self(bindings::CAP_DAC_OVERRIDE);
    /// `CAP_DAC_READ_SEARCH`.
    pub(crate) const DAC_READ_SEARCH: Self = Self(bindings::CAP_DAC_READ_SEARCH);
    /// `CAP_CHOWN`.
    pub(crate) const CHOWN: Self = Self(bindings::CAP_CHOWN);
    /// `CAP_FOWNER`.
    pub(crate) const FOWNER: Self = Self(bindings::CAP_FOWNER);
    /// `CAP_FSETID`.
    pub(crate) const FSETID: Self = Self(bindings::CAP_FSETID);
    /// `CAP_SETFCAP`: writing file capabilities.
    pub(crate) const SETFCAP: Self = Self(bindings::CAP_SETFCAP);

    /// Whether the calling task has this capability in the initial user
    /// namespace (`capable()`).
    pub(crate) fn in_init_ns(self) -> bool {
        // SAFETY: `capable` only reads the calling task's credentials.
        unsafe { bindings::capable(self.0 as i32) }
    }

    /// Whether the calling task has this capability over `ns`
    /// (`ns_capable()`).
    pub(crate) fn over(self, ns: &UserNamespace) -> bool {
        // SAFETY: `ns` is a valid namespace for the duration of the call.
        unsafe { bindings::ns_capable(ns.as_raw(), self.0 as i32) }
    }
}

/// A reference-counted, immutable set of credentials.
///
/// # Invariants
///
/// The wrapped `struct cred` is published (immutable) and live while a
/// reference is held.
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

/// The calling task's subjective credentials pointer (`current->cred`).
///
/// # Invariants
///
/// Points at the `cred` field of the task that made it, which only that
/// task writes, and which holds live credentials whenever the task runs.
/// Not `Send` (a raw pointer): it stays with that task.
struct CredSlot(NonNull<*const bindings::cred>);

impl CredSlot {
    fn current() -> Self {
        // SAFETY: returns the address of the calling task's field, never
        // NULL; the task outlives everything it runs.
        Self(unsafe { NonNull::new_unchecked(bindings::shiftfs_current_cred_slot().cast()) })
    }

    /// The credentials in force.
    fn get(&self) -> *const bindings::cred {
        // SAFETY: per the invariants only this task writes the field, so a
        // plain read sees its last write.
        unsafe { *self.0.as_ptr() }
    }

    /// Puts `new` in force and returns what was: `override_creds()` and
    /// `revert_creds()` as they are since 6.14, a pointer swap that takes
    /// and drops no reference. (6.12's take one and drop one, two atomic
    /// operations on a counter every task with the same ids shares, at
    /// every component of a path walk.)
    ///
    /// # Safety
    ///
    /// `new` must stay live while it is in force, and swaps must be undone
    /// in reverse order.
    unsafe fn replace(&self, new: *const bindings::cred) -> *const bindings::cred {
        let old = self.get();
        // SAFETY: the field is a pointer-sized, aligned word; other tasks
        // read it only atomically (under RCU), and the release store
        // publishes `new` to them as `rcu_assign_pointer()` does.
        unsafe { AtomicPtr::from_ptr(self.0.as_ptr().cast::<*mut bindings::cred>()) }
            .store(new.cast_mut(), Ordering::Release);
        old
    }
}

/// The calling task, whose credentials are read and then overridden: found
/// once for both (a C call).
pub(crate) struct Caller(CredSlot);

impl Caller {
    pub(crate) fn get() -> Self {
        Self(CredSlot::current())
    }

    /// The task's filesystem uid and gid (`current_fsuid()`,
    /// `current_fsgid()`).
    pub(crate) fn fsids(&self) -> (Kuid, Kgid) {
        let cred = self.0.get();
        // SAFETY: the task's credentials in force are live, and published
        // credentials do not change.
        unsafe { (Kuid((*cred).fsuid.val), Kgid((*cred).fsgid.val)) }
    }
}

/// The calling task's filesystem uid and gid.
pub(crate) fn current_fsids() -> (Kuid, Kgid) {
    Caller::get().fsids()
}

/// Credentials the calling task runs with until the guard is dropped
/// (`override_creds()`/`revert_creds()`). Not `Send`: it must be dropped by
/// the task that made it, and overrides are undone in reverse order, which
/// scoped guards ensure.
pub(crate) struct Override<'a> {
    /// The credentials in force, kept alive for as long as they are: by
    /// this reference, or by their holder for `'a`.
    _cred: Option<ARef<Credential>>,
    slot: CredSlot,
    old: *const bindings::cred,
    _borrowed: PhantomData<&'a Credential>,
}

impl Drop for Override<'_> {
    fn drop(&mut self) {
        // SAFETY: `old` was in force before this override, on this task,
        // and is live (the task's own, or kept by an outer guard); overrides
        // are undone in reverse order (guards drop in scope order).
        unsafe { self.slot.replace(self.old) };
    }
}

/// Overrides with `cred`, which the guard keeps live: by `keep` (a
/// reference to `cred`), or by borrowing its holder for `'a`.
fn override_with<'a>(
    caller: Caller,
    cred: &'a Credential,
    keep: Option<ARef<Credential>>,
) -> Override<'a> {
    let slot = caller.0;
    // SAFETY: `cred` is live, and stays so while the guard lives, which
    // undoes the override when dropped.
    let old = unsafe { slot.replace(cred.as_raw()) };
    Override {
        _cred: keep,
        slot,
        old,
        _borrowed: PhantomData,
    }
}

impl Credential {
    /// A copy of the calling task's credentials without capability `cap` in
    /// any of its sets (`prepare_creds()` and `cap_lower()`).
    pub(crate) fn current_without(cap: Capability) -> Result<ARef<Self>> {
        // SAFETY: `prepare_creds` returns a new, unshared copy or NULL.
        let new = NonNull::new(unsafe { bindings::prepare_creds() }).ok_or(ENOMEM)?;
        // SAFETY: the copy is ours alone until it is wrapped below.
        unsafe {
            let c = new.as_ptr();
            for set in [
                &raw mut (*c).cap_effective,
                &raw mut (*c).cap_permitted,
                &raw mut (*c).cap_inheritable,
                &raw mut (*c).cap_bset,
                &raw mut (*c).cap_ambient,
            ] {
                bindings::shiftfs_cap_lower(set, cap.0 as i32);
            }
        }
        // SAFETY: the new credentials carry one reference, now ours.
        Ok(unsafe { ARef::from_raw(new.cast()) })
    }

    /// Credentials of the kernel's own (root of the initial user
    /// namespace, as `prepare_kernel_cred(&init_task)` makes them) with no
    /// capability but `caps`.
    pub(crate) fn kernel_with(caps: &[Capability]) -> Result<ARef<Self>> {
        // SAFETY: `init_task` is a static task that lives forever;
        // `prepare_kernel_cred` returns a new, unshared copy or NULL.
        let new = NonNull::new(unsafe {
            bindings::prepare_kernel_cred(core::ptr::addr_of_mut!(bindings::init_task))
        })
        .ok_or(ENOMEM)?;
        // SAFETY: the copy is ours alone until it is wrapped below.
        unsafe {
            let c = new.as_ptr();
            for (set, keep) in [
                (&raw mut (*c).cap_effective, true),
                (&raw mut (*c).cap_permitted, true),
                (&raw mut (*c).cap_bset, true),
                (&raw mut (*c).cap_inheritable, false),
                (&raw mut (*c).cap_ambient, false),
            ] {
                for cap in 0..=bindings::SHIFTFS_CAP_LAST_CAP {
                    if !(keep && caps.contains(&Capability(cap as u32))) {
                        bindings::shiftfs_cap_lower(set, cap);
                    }
                }
            }
        }
        // SAFETY: the new credentials carry one reference, now ours.
        Ok(unsafe { ARef::from_raw(new.cast()) })
    }

    /// A copy of these credentials, changed by `edit` before it is
    /// published.
    fn edited_copy(&self, edit: impl FnOnce(&mut bindings::cred)) -> Result<ARef<Self>> {
        let new = {
            // `prepare_creds()` copies the task's credentials: make them
            // these, for the copy only.
            let _as = ARef::from(self).override_current();
            // SAFETY: returns a new, unshared copy or NULL.
            NonNull::new(unsafe { bindings::prepare_creds() }).ok_or(ENOMEM)?
        };
        // SAFETY: the copy is ours alone until it is wrapped below.
        edit(unsafe { &mut *new.as_ptr() });
        // SAFETY: the new credentials carry one reference, now ours.
        Ok(unsafe { ARef::from_raw(new.cast()) })
    }

    /// A copy of these credentials with the filesystem ids set (for calls
    /// into a lower filesystem on behalf of a caller).
    pub(crate) fn with_fsids(&self, fsuid: Kuid, fsgid: Kgid) -> Result<ARef<Self>> {
        self.edited_copy(|c| {
            c.fsuid.val = fsuid.0;
            c.fsgid.val = fsgid.0;
        })
    }

    /// A copy of these credentials whose effective capabilities are only
    /// `keep`, if these have it: a call made with them is judged as an
    /// unprivileged user's (by ownership and permission bits alone).
    pub(crate) fn with_only(&self, keep: Option<Capability>) -> Result<ARef<Self>> {
        self.edited_copy(|c| {
            let set = &raw mut c.cap_effective;
            for cap in 0..=bindings::SHIFTFS_CAP_LAST_CAP {
                if keep != Some(Capability(cap as u32)) {
                    // SAFETY: `set` is a capability set of the unshared copy.
                    unsafe { bindings::shiftfs_cap_lower(set, cap) };
                }
            }
        })
    }

    pub(super) fn as_raw(&self) -> *const bindings::cred {
        self.0.get()
    }

    /// Whether `cap` is in the effective set.
    #[cfg(shiftfs_kunit)]
    pub(crate) fn has_effective(&self, cap: Capability) -> bool {
        // SAFETY: published credentials are immutable.
        unsafe { bindings::shiftfs_cap_raised(&(*self.0.get()).cap_effective, cap.0 as i32) }
    }
}

/// Overriding the calling task's credentials.
pub(crate) trait OverrideCurrent<'a>: Sized {
    /// Makes these the calling task's credentials until the guard is
    /// dropped.
    fn override_current(self) -> Override<'a> {
        self.override_for(Caller::get())
    }

    /// [`Self::override_current`], for a caller found already.
    fn override_for(self, caller: Caller) -> Override<'a>;
}

/// Counted credentials: the guard keeps the reference.
impl OverrideCurrent<'static> for ARef<Credential> {
    fn override_for(self, caller: Caller) -> Override<'static> {
        let cred: *const Credential = &*self;
        // SAFETY: the reference `self` is kept by the guard, so `cred`
        // lives as long as it.
        override_with(caller, unsafe { &*cred }, Some(self))
    }
}

/// Borrowed credentials: no reference is taken (the hot path), and the
/// guard cannot outlive their holder.
impl<'a> OverrideCurrent<'a> for &'a Credential {
    fn override_for(self, caller: Caller) -> Override<'a> {
        override_with(caller, self, None)
    }
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{kunit_expect, kunit_suite, vfs::kunit::Test};

    // KUnit runs the cases in the task loading the module: root, with
    // every capability.
    fn copy_without_a_capability_keeps_the_others(t: &mut Test) {
        let c = Credential::current_without(Capability::SYS_RESOURCE).expect("creds");
        kunit_expect!(t, !c.has_effective(Capability::SYS_RESOURCE));
        kunit_expect!(t, c.has_effective(Capability::SYS_ADMIN));
        kunit_expect!(t, c.has_effective(Capability::DAC_OVERRIDE));
    }

    fn credentials_are_reference_counted(t: &mut Test) {
        let c = Credential::current_without(Capability::SYS_RESOURCE).expect("creds");
        let d = c.clone();
        drop(c);
        kunit_expect!(t, !d.has_effective(Capability::SYS_RESOURCE));
    }

    fn fsids_copy_keeps_the_capabilities(t: &mut Test) {
        let c = Credential::current_without(Capability::SYS_RESOURCE).expect("creds");
        let d = c.with_fsids(Kuid(1000), Kgid(1000)).expect("with_fsids");
        kunit_expect!(t, !d.has_effective(Capability::SYS_RESOURCE));
        kunit_expect!(t, d.has_effective(Capability::SYS_ADMIN));
        let _as = d.override_current();
        kunit_expect!(t, current_fsids() == (Kuid(1000), Kgid(1000)));
    }

    fn a_copy_with_only_one_capability_has_no_other(t: &mut Test) {
        let c = Credential::current_without(Capability::SYS_RESOURCE).expect("creds");
        let d = c
            .with_only(Some(Capability::DAC_OVERRIDE))
            .expect("with_only");
        kunit_expect!(t, d.has_effective(Capability::DAC_OVERRIDE));
        kunit_expect!(t, !d.has_effective(Capability::SYS_ADMIN));
        kunit_expect!(t, !d.has_effective(Capability::MKNOD));
        let e = c.with_only(None).expect("with_only");
        kunit_expect!(t, !e.has_effective(Capability::DAC_OVERRIDE));
        // One the original lacks is not granted.
        let f = c
            .with_only(Some(Capability::SYS_RESOURCE))
            .expect("with_only");
        kunit_expect!(t, !f.has_effective(Capability::SYS_RESOURCE));
        kunit_expect!(t, c.has_effective(Capability::SYS_ADMIN));
    }

    fn kernel_credentials_with_a_few_capabilities(t: &mut Test) {
        let c =
            Credential::kernel_with(&[Capability::CHOWN, Capability::FOWNER]).expect("kernel_with");
        kunit_expect!(t, c.has_effective(Capability::CHOWN));
        kunit_expect!(t, c.has_effective(Capability::FOWNER));
        kunit_expect!(t, !c.has_effective(Capability::SYS_ADMIN));
        kunit_expect!(t, !c.has_effective(Capability::SYS_RESOURCE));
        kunit_expect!(t, !c.has_effective(Capability::DAC_OVERRIDE));
        let _as = c.override_current();
        kunit_expect!(t, current_fsids() == (Kuid(0), Kgid(0)));
    }

    kunit_suite!(
        "shiftfs_cred",
        [
            kernel_credentials_with_a_few_capabilities,
            a_copy_with_only_one_capability_has_no_other,
            copy_without_a_capability_keeps_the_others,
            credentials_are_reference_counted,
            fsids_copy_keeps_the_capabilities,
        ]
    );
}
