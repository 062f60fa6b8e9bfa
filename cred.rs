// SPDX-License-Identifier: GPL-2.0

//! Credential override: every call into the real filesystem runs with the
//! mark creator's credentials (recorded at mark time, without
//! CAP_SYS_RESOURCE), with fsuid and fsgid shifted down from the caller's.
//!
//! The calls get them from here, as a guard that reverts on drop:
//! - [`enter`]: lookups, getattr, get_link, readdir, permission,
//!   xattr/ACL reads, file attributes;
//! - [`enter_made_for`]: permission in an RCU walk, where nothing may
//!   sleep;
//! - [`enter_to_write`]: every change (namespace operations, setattr,
//!   xattrs and ACLs, file attributes), with write access to the real
//!   mount;
//! - [`made`]: opening real files and directories, which take references
//!   of their own and keep them for their lifetime (I/O through the
//!   backing-file helpers then runs with them);
//! - [`enter_as_opener`]: what runs on an open real file (fsync,
//!   fallocate, fadvise, copy and remap), with the credentials it was
//!   opened with.
//!
//! Not overridden: `statfs` (`vfs_statfs()` reads no file), `llseek` of the
//! real directory file, and dropping references.

use crate::{
    shift::Shift,
    superblock::Shiftfs,
    vfs::{
        cred::{current_fsids, Caller, Capability, Credential, Override, OverrideCurrent},
        errno::eoverflow,
        file::File,
        once::SetOnce,
        path::WriteAccess,
        super_block::SuperBlock,
        user_ns::{Kgid, Kuid},
        ARef, Real,
    },
};
use kernel::prelude::*;

/// How many fsuid/fsgid variants of the creator's credentials are kept; a
/// caller with other ids gets a copy made for the call.
const VARIANTS: usize = 32;

/// The creator's credentials with the filesystem ids for a caller's.
struct Variant {
    /// The caller's own fsuid and fsgid.
    key: (Kuid, Kgid),
    cred: ARef<Credential>,
}

/// The mark creator's credentials and their copies with other fsuid/fsgid,
/// made once per caller's ids and kept as long as the superblock, so that
/// calls on behalf of the same caller ids do not allocate, and path walks
/// find them without a lock or a reference count (a shared cache line on
/// every path component).
#[pin_data]
pub(crate) struct CreatorCreds {
    base: ARef<Credential>,
    /// Filled from the front, each slot once.
    variants: [SetOnce<Variant>; VARIANTS],
}

/// Credentials for a call: kept for the superblock, or made for this call
/// once all the slots are taken.
pub(crate) enum Made<'a> {
    Kept(&'a Credential),
    ForCall(ARef<Credential>),
}

impl<'a> Made<'a> {
    /// Borrowed, for a call that takes references of its own if it keeps
    /// them (opening a real file).
    pub(crate) fn as_cred(&self) -> &Credential {
        match self {
            Made::Kept(c) => c,
            Made::ForCall(c) => c,
        }
    }

    /// A reference of the caller's own.
    pub(crate) fn to_owned(&self) -> ARef<Credential> {
        ARef::from(self.as_cred())
    }

    /// Runs `caller`, the calling task, with them until the guard is
    /// dropped.
    fn override_for(self, caller: Caller) -> Override<'a> {
        match self {
            Made::Kept(c) => c.override_for(caller),
            Made::ForCall(c) => c.override_for(caller),
        }
    }
}

impl CreatorCreds {
    pub(crate) fn new(base: ARef<Credential>) -> impl PinInit<Self> {
        pin_init!(Self {
            base,
            variants: core::array::from_fn(|_| SetOnce::new()),
        })
    }

    /// The creator's own credentials, which the variants are made from.
    pub(crate) fn base(&self) -> &ARef<Credential> {
        &self.base
    }

    /// The variant kept for `key` (the caller's own fsuid and fsgid), if
    /// it was made already: never sleeps, takes no lock (for RCU path
    /// walks).
    fn get_made(&self, key: (Kuid, Kgid)) -> Option<&Credential> {
        self.variants
            .iter()
            .map_while(SetOnce::get)
            .find(|v| v.key == key)
            .map(|v| &*v.cred)
    }

    /// The variant for `key` (the caller's own fsuid and fsgid): the base
    /// credentials with the filesystem ids `fsids` computes, made and kept
    /// the first time while a slot is free.
    fn get(
        &self,
        key: (Kuid, Kgid),
        fsids: impl FnOnce() -> Result<(Kuid, Kgid)>,
    ) -> Result<Made<'_>> {
        if let Some(c) = self.get_made(key) {
            return Ok(Made::Kept(c));
        }
        let (fsuid, fsgid) = fsids()?;
        // Made without a lock: `prepare_creds()` may sleep.
        let mut new = KBox::new(
            Variant {
                key,
                cred: self.base.with_fsids(fsuid, fsgid)?,
            },
            GFP_KERNEL,
        )?;
        for slot in &self.variants {
            new = match slot.set(new) {
                Ok(v) => return Ok(Made::Kept(&v.cred)),
                // Taken: by a caller racing for the same ids, whose copy
                // serves as well, or by other ids.
                Err(new) => match slot.get() {
                    Some(v) if v.key == key => return Ok(Made::Kept(&v.cred)),
                    _ => new,
                },
            };
        }
        Ok(Made::ForCall(KBox::into_inner(new).cred))
    }
}

/// What a persistent mark's shifting mounts reach the real filesystem
/// with, in place of a mark creator's credentials: root of the initial
/// user namespace with only the capabilities root of a container has over
/// its own files (owners, permission bits, set-id bits, file
/// capabilities), and none over anything else (no CAP_SYS_ADMIN, no
/// CAP_SYS_RESOURCE, no CAP_MKNOD, no CAP_LINUX_IMMUTABLE). Every call
/// through the mount is within the marked tree, and the caller's fsuid
/// and fsgid, shifted, replace root's.
pub(crate) const PERSISTENT_MARK_CAPS: [Capability; 6] = [
    Capability::CHOWN,
    Capability::DAC_OVERRIDE,
    Capability::DAC_READ_SEARCH,
    Capability::FOWNER,
    Capability::FSETID,
    Capability::SETFCAP,
];

/// The credentials of [`PERSISTENT_MARK_CAPS`].
pub(crate) fn persistent_mark_creds() -> Result<ARef<Credential>> {
    Credential::kernel_with(&PERSISTENT_MARK_CAPS)
}

/// `fsids`, the caller's fsuid and fsgid, shifted down to the real
/// filesystem's (EOVERFLOW if it cannot hold them).
fn shifted_fsids(sb: &SuperBlock<Shiftfs>, (fsuid, fsgid): (Kuid, Kgid)) -> Result<(Kuid, Kgid)> {
    let shift = Shift::of(sb);
    Ok((
        shift.uid_down(fsuid).ok_or_else(eoverflow)?,
        shift.gid_down(fsgid).ok_or_else(eoverflow)?,
    ))
}

/// The credentials for calls into the real filesystem of `sb` on behalf of
/// the calling task.
pub(crate) fn made(sb: &SuperBlock<Shiftfs>) -> Result<Made<'_>> {
    made_for(sb, current_fsids())
}

/// [`made`] for a caller whose fsuid and fsgid are `key`.
fn made_for(sb: &SuperBlock<Shiftfs>, key: (Kuid, Kgid)) -> Result<Made<'_>> {
    sb.info().creds.get(key, || shifted_fsids(sb, key))
}

/// Runs `f` with [`made`] credentials in force, and hands them to it
/// borrowed: for calls that take references of their own if they keep them
/// (opening a real file or directory).
pub(crate) fn with_made<R>(
    sb: &SuperBlock<Shiftfs>,
    f: impl FnOnce(&Credential) -> Result<R>,
) -> Result<R> {
    let caller = Caller::get();
    let made = made_for(sb, caller.fsids())?;
    let cred = made.as_cred();
    let _as = cred.override_for(caller);
    f(cred)
}

/// [`made`], as a reference of the caller's (for what keeps them: open
/// files).
pub(crate) fn creds(sb: &SuperBlock<Shiftfs>) -> Result<ARef<Credential>> {
    Ok(made(sb)?.to_owned())
}

/// Runs the calling task with [`creds`] until the guard is dropped.
pub(crate) fn enter(sb: &SuperBlock<Shiftfs>) -> Result<Override<'_>> {
    enter_for(sb, Caller::get())
}

/// [`enter`] for a caller found already (whose ids were read first).
pub(crate) fn enter_for(sb: &SuperBlock<Shiftfs>, caller: Caller) -> Result<Override<'_>> {
    Ok(made_for(sb, caller.fsids())?.override_for(caller))
}

/// [`enter_for`] with credentials made already for the caller's ids, if
/// they were: in an RCU walk nothing may sleep, so nothing is made there.
pub(crate) fn enter_made_for(sb: &SuperBlock<Shiftfs>, caller: Caller) -> Option<Override<'_>> {
    Some(
        sb.info()
            .creds
            .get_made(caller.fsids())?
            .override_for(caller),
    )
}

/// For a change of the real filesystem: [`enter`], and write access to the
/// real mount; both end with the guard.
pub(crate) struct Writing<'a> {
    // Fields drop in order: write access goes before the credentials.
    _write: WriteAccess<'a>,
    _creds: Override<'a>,
}

/// [`enter`] and write access to the real mount of `sb`.
pub(crate) fn enter_to_write(sb: &SuperBlock<Shiftfs>) -> Result<Writing<'_>> {
    let creds = enter(sb)?;
    let write = sb.info().real.mount().want_write()?;
    Ok(Writing {
        _write: write,
        _creds: creds,
    })
}

/// Runs the calling task with the credentials `real` was opened with until
/// the guard is dropped.
pub(crate) fn enter_as_opener(real: &File<Real>) -> Override<'_> {
    real.cred().override_current()
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{kunit_expect, kunit_expect_eq, kunit_suite, vfs::kunit::Test};

    fn cache() -> Pin<KBox<CreatorCreds>> {
        let base = Credential::current_without(Capability::SYS_RESOURCE).expect("creds");
        KBox::pin_init(CreatorCreds::new(base), GFP_KERNEL).expect("cache")
    }

    fn ids(n: u32) -> (Kuid, Kgid) {
        (Kuid(n), Kgid(n))
    }

    fn nothing_is_made_before_it_is_asked_for(t: &mut Test) {
        kunit_expect!(t, cache().get_made(ids(0)).is_none());
    }

    fn a_variant_is_made_once_and_kept(t: &mut Test) {
        let c = cache();
        let a = c.get(ids(0), || Ok(ids(100_000))).expect("get");
        kunit_expect!(t, matches!(a, Made::Kept(_)));
        let made = c.get_made(ids(0)).expect("kept");
        kunit_expect!(t, core::ptr::eq(a.as_cred(), made));
        // Asked again, the shift is not computed again.
        let b = c.get(ids(0), || Err(EINVAL)).expect("kept");
        kunit_expect!(t, core::ptr::eq(a.as_cred(), b.as_cred()));
    }

    fn a_refused_shift_makes_nothing(t: &mut Test) {
        let c = cache();
        kunit_expect_eq!(
            t,
            c.get(ids(5), || Err(eoverflow())).err(),
            Some(eoverflow())
        );
        kunit_expect!(t, c.get_made(ids(5)).is_none());
    }

    fn a_full_cache_keeps_its_variants_and_makes_others_per_call(t: &mut Test) {
        let c = cache();
        for n in 0..VARIANTS as u32 {
            c.get(ids(n), || Ok(ids(n))).expect("get");
        }
        let extra = c.get(ids(VARIANTS as u32), || Ok(ids(7))).expect("get");
        kunit_expect!(t, matches!(extra, Made::ForCall(_)));
        kunit_expect!(t, c.get_made(ids(VARIANTS as u32)).is_none());
        for n in 0..VARIANTS as u32 {
            kunit_expect!(t, c.get_made(ids(n)).is_some(), "variant {n} was dropped");
        }
    }

    fn variants_keep_the_base_capabilities(t: &mut Test) {
        let c = cache();
        let v = c.get(ids(1000), || Ok(ids(101_000))).expect("get");
        kunit_expect!(t, !v.as_cred().has_effective(Capability::SYS_RESOURCE));
        kunit_expect!(t, v.as_cred().has_effective(Capability::SYS_ADMIN));
        kunit_expect!(t, !c.base().has_effective(Capability::SYS_RESOURCE));
    }

    fn persistent_marks_reach_the_disk_as_a_container_root(t: &mut Test) {
        let c = persistent_mark_creds().expect("creds");
        for cap in PERSISTENT_MARK_CAPS {
            kunit_expect!(t, c.has_effective(cap));
        }
        for cap in [
            Capability::SYS_ADMIN,
            Capability::SYS_RESOURCE,
            Capability::MKNOD,
        ] {
            kunit_expect!(t, !c.has_effective(cap));
        }
    }

    kunit_suite!(
        "shiftfs_creator_creds",
        [
            persistent_marks_reach_the_disk_as_a_container_root,
            nothing_is_made_before_it_is_asked_for,
            a_variant_is_made_once_and_kept,
            a_refused_shift_makes_nothing,
            a_full_cache_keeps_its_variants_and_makes_others_per_call,
            variants_keep_the_base_capabilities,
        ]
    );
}
