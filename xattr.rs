// SPDX-License-Identifier: GPL-2.0

//! Extended attributes and POSIX ACLs: the handlers, and the translation
//! of the values that carry ids.
//!
//! POSIX ACLs reach a 6.12 filesystem already parsed (`get_acl`/`set_acl`
//! with a `struct posix_acl`; malformed `system.posix_acl_*` values are
//! refused by the VFS before that): their named entries are shifted like
//! inode owners. Unmapped on the way up shows as the overflow id (as stat
//! shows owners; the VFS would otherwise print -1); an entry that cannot be
//! written down is EINVAL.
//!
//! `security.capability` (file capabilities) names the root id the
//! capabilities are valid for: implicitly 0 in revisions 1 and 2, explicitly
//! in revision 3 (namespaced capabilities). Passing one through shiftfs
//! translates that root id, converting between revisions as the kernel does:
//! a capability whose root id is 0 is written as v1/v2, any other as v3.

use crate::{
    cred, inode,
    shift::Shift,
    superblock::Shiftfs,
    vfs::{
        acl::{AclId, PosixAcl},
        cred::Capability,
        dentry::Dentry,
        errno::{enodata, eoverflow},
        inode::{Inode, MntIdmap},
        user_ns::{overflow_ids, Kgid, Kuid},
        xattr::{AclType, XattrOperations},
        ARef, Rcu, Real,
    },
};
use core::ffi::CStr;
use kernel::{
    error::code::{ECHILD, EINVAL, ENOENT, ERANGE},
    prelude::*,
};

/// Room for the values shiftfs translates (file capabilities: 24 bytes).
const TRANSLATED_MAX: usize = 64;

/// Copies `value` into a caller's buffer (empty: the caller asks for the
/// size).
fn copy_out(value: &[u8], buf: &mut [u8]) -> Result<usize> {
    if buf.is_empty() {
        return Ok(value.len());
    }
    buf.get_mut(..value.len())
        .ok_or(ERANGE)?
        .copy_from_slice(value);
    Ok(value.len())
}

/// The real names, NUL-terminated.
fn real_names(real: &Dentry<Real>) -> Result<KVec<u8>> {
    loop {
        let want = real.listxattr(&mut [])?;
        let mut buf = KVec::from_elem(0u8, want, GFP_KERNEL)?;
        match real.listxattr(&mut buf) {
            Ok(got) => {
                let mut names = KVec::with_capacity(got, GFP_KERNEL)?;
                names.extend_from_slice(&buf[..got], GFP_KERNEL)?;
                return Ok(names);
            }
            // A name was added in between: ask again.
            Err(e) if e == ERANGE => continue,
            Err(e) => return Err(e),
        }
    }
}

#[vtable]
impl XattrOperations for Shiftfs {
    /// The real inode's value, with ids translated for file capabilities.
    /// `trusted.*` reaches here only for callers the VFS let through.
    fn xattr_get(
        dentry: &Dentry<Self>,
        _inode: &Inode<Self>,
        name: &CStr,
        buf: &mut [u8],
    ) -> Result<usize> {
        let (sb, real) = (dentry.super_block(), dentry.real());
        real.inode().ok_or(ENOENT)?;
        let _creds = cred::enter(sb)?;
        if name != CAPS {
            return real.getxattr(name, buf);
        }
        // The stored value, as it is: translation may change its size.
        let mut stored = [0u8; TRANSLATED_MAX];
        let n = match real.getxattr_stored(name, &mut stored) {
            // Longer than any value we translate: malformed.
            Err(e) if e == ERANGE => return Err(EINVAL),
            n => n?,
        };
        copy_out(&caps_value_up(&stored[..n], &Shift::of(sb))?, buf)
    }

    /// On the real inode, ids translated for file capabilities (the VFS
    /// has converted the value for the shiftfs superblock), then shown:
    /// setting some xattrs changes the mode or ctime.
    fn xattr_set(
        dentry: &Dentry<Self>,
        inode: &Inode<Self>,
        name: &CStr,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result {
        let (sb, real) = (dentry.super_block(), dentry.real());
        real.inode().ok_or(ENOENT)?;
        let translated;
        let value = match value {
            Some(v) if name == CAPS => {
                translated = caps_value_down(v, &Shift::of(sb))?;
                Some(&translated[..])
            }
            v => v,
        };
        {
            let _writing = cred::enter_to_write(sb)?;
            match value {
                None => real.removexattr(name)?,
                Some(v) => real.setxattr(name, v, flags)?,
            }
        }
        inode::refresh(inode);
        Ok(())
    }

    /// The real names, without `trusted.*` for callers who could not read
    /// them (the real filesystem lists them to the creator's credentials).
    fn listxattr(dentry: &Dentry<Self>, buf: &mut [u8]) -> Result<usize> {
        // Checked with the caller's own credentials, before the override.
        let trusted = Capability::SYS_ADMIN.in_init_ns();
        let names = {
            let _creds = cred::enter(dentry.super_block())?;
            real_names(dentry.real())?
        };
        let mut shown = KVec::<u8>::with_capacity(names.len(), GFP_KERNEL)?;
        for name in names.split_inclusive(|&b| b == 0) {
            if trusted || !name.starts_with(b"trusted.") {
                shown.extend_from_slice(name, GFP_KERNEL)?;
            }
        }
        copy_out(&shown, buf)
    }

    /// The real ACL, its named entries shifted up.
    fn get_acl(
        _idmap: &MntIdmap,
        dentry: &Dentry<Self>,
        ty: AclType,
    ) -> Result<Option<ARef<PosixAcl>>> {
        let sb = dentry.super_block();
        let acl = {
            let _creds = cred::enter(sb)?;
            match dentry.real().get_acl(ty) {
                Err(e) if e == enodata() => return Ok(None),
                acl => acl?,
            }
        };
        acl.map(|acl| acl_up(&acl, &Shift::of(sb))).transpose()
    }

    /// The real inode's ACL for permission checks, shifted up. An access
    /// ACL is kept shifted for RCU walks (below).
    fn get_inode_acl(inode: &Inode<Self>, ty: AclType) -> Result<Option<ARef<PosixAcl>>> {
        let sb = inode.super_block();
        let real = {
            let _creds = cred::enter(sb)?;
            inode.real().get_inode_acl(ty)?
        };
        let Some(real) = real else {
            return Ok(None);
        };
        // Only access ACLs are checked in walks.
        let kept = (ty == AclType::Access).then(|| &sb.info().shifted_acls);
        if let Some(acl) = kept.and_then(|kept| kept.get(&real)) {
            return Ok(Some(acl));
        }
        let acl = acl_up_for_permission(&real, &Shift::of(sb))?;
        if let Some(kept) = kept {
            kept.insert(real, acl.clone());
        }
        Ok(Some(acl))
    }

    /// In an RCU walk, the real filesystem's cached ACL as the walk with
    /// references shifted it last; none where the real inode has none. A
    /// change below shows at once: the real filesystem caches a new ACL
    /// object as it sets one (or none as it removes it), and a new object
    /// is not found until a walk with references has shifted it. Shifting
    /// allocates, which an RCU walk cannot.
    fn get_inode_acl_rcu<'a>(
        inode: Rcu<'a, Inode<Self>>,
        ty: AclType,
    ) -> Result<Option<Rcu<'a, PosixAcl>>> {
        let real = inode.real().ok_or(ECHILD)?;
        match real.cached_acl(ty).ok_or(ECHILD)? {
            None => Ok(None),
            Some(acl) if ty == AclType::Access => inode
                .super_block()
                .info()
                .shifted_acls
                .get_rcu(acl)
                .map(Some)
                .ok_or(ECHILD),
            Some(_) => Err(ECHILD),
        }
    }

    /// The ACL with its named entries shifted down (EINVAL for an id the
    /// real filesystem cannot hold), set on the real inode; then shown:
    /// setting an access ACL may change the mode.
    fn set_acl(
        _idmap: &MntIdmap,
        dentry: &Dentry<Self>,
        acl: Option<&PosixAcl>,
        ty: AclType,
    ) -> Result {
        let (sb, real) = (dentry.super_block(), dentry.real());
        real.inode().ok_or(ENOENT)?;
        let down = acl.map(|acl| acl_down(acl, &Shift::of(sb))).transpose()?;
        {
            let _writing = cred::enter_to_write(sb)?;
            match &down {
                None => real.remove_acl(ty)?,
                Some(acl) => real.set_acl(ty, acl)?,
            }
        }
        inode::refresh(dentry.inode().ok_or(ENOENT)?);
        Ok(())
    }
}

const REVISION_MASK: u32 = 0xff00_0000;
const REVISION_1: u32 = 0x0100_0000;
const REVISION_2: u32 = 0x0200_0000;
const REVISION_3: u32 = 0x0300_0000;
/// Sizes of the three revisions: magic, (permitted, inheritable) pairs, and
/// for v3 the root id; little-endian 32-bit words.
const SIZE_1: usize = 4 * (1 + 2);
const SIZE_2: usize = 4 * (1 + 2 * 2);
const SIZE_3: usize = 4 * (2 + 2 * 2);

/// A parsed `security.capability` value.
struct FileCaps {
    revision: u32,
    /// Flag bits of the magic word (`VFS_CAP_FLAGS_EFFECTIVE`).
    flags: u32,
    /// Permitted and inheritable words, low and high halves; v1 has only the
    /// low pair.
    data: [u32; 4],
    rootid: u32,
}

fn word(value: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([
        value[4 * i],
        value[4 * i + 1],
        value[4 * i + 2],
        value[4 * i + 3],
    ])
}

impl FileCaps {
    /// Parses a value; any size or revision that is not one of the three
    /// well-formed layouts is EINVAL.
    fn parse(value: &[u8]) -> Result<Self> {
        if value.len() < 4 {
            return Err(EINVAL);
        }
        let magic = word(value, 0);
        let revision = magic & REVISION_MASK;
        let size = match revision {
            REVISION_1 => SIZE_1,
            REVISION_2 => SIZE_2,
            REVISION_3 => SIZE_3,
            _ => return Err(EINVAL),
        };
        if value.len() != size {
            return Err(EINVAL);
        }
        let mut data = [0; 4];
        let words = if revision == REVISION_1 { 2 } else { 4 };
        for (i, d) in data.iter_mut().take(words).enumerate() {
            *d = word(value, 1 + i);
        }
        let rootid = if revision == REVISION_3 {
            word(value, 5)
        } else {
            0
        };
        Ok(Self {
            revision,
            flags: magic & !REVISION_MASK,
            data,
            rootid,
        })
    }

    /// The value for this capability with root id `rootid`: v1 stays v1 and
    /// anything else becomes v2 when `rootid` is 0; otherwise v3.
    fn encode(&self, rootid: u32) -> Result<KVec<u8>> {
        let (revision, words) = match (rootid, self.revision) {
            (0, REVISION_1) => (REVISION_1, 2),
            (0, _) => (REVISION_2, 4),
            _ => (REVISION_3, 4),
        };
        let mut out = KVec::with_capacity(SIZE_3, GFP_KERNEL)?;
        out.extend_from_slice(&(revision | self.flags).to_le_bytes(), GFP_KERNEL)?;
        for d in &self.data[..words] {
            out.extend_from_slice(&d.to_le_bytes(), GFP_KERNEL)?;
        }
        if revision == REVISION_3 {
            out.extend_from_slice(&rootid.to_le_bytes(), GFP_KERNEL)?;
        }
        Ok(out)
    }
}

/// Translates a capability read from the real filesystem for shiftfs:
/// `map` takes a real root id to the shifted one. A root id with no mapping
/// is EOVERFLOW, as the kernel answers for a capability not valid in the
/// reader's namespace.
pub(crate) fn caps_up(value: &[u8], map: impl Fn(u32) -> Option<u32>) -> Result<KVec<u8>> {
    let caps = FileCaps::parse(value)?;
    caps.encode(map(caps.rootid).ok_or_else(eoverflow)?)
}

/// Translates a capability written through shiftfs for the real filesystem:
/// `map` takes a shifted root id to the real one. A root id the real
/// filesystem cannot hold is EINVAL.
pub(crate) fn caps_down(value: &[u8], map: impl Fn(u32) -> Option<u32>) -> Result<KVec<u8>> {
    let caps = FileCaps::parse(value)?;
    caps.encode(map(caps.rootid).ok_or(EINVAL)?)
}

/// The name of file capabilities.
const CAPS: &CStr = c"security.capability";

/// A capability read from the real filesystem, for shiftfs.
///
/// Capabilities follow kernel ids, not on-disk numbers: a capability is
/// valid for the root of the user namespaces that own its root id. So the
/// root id is read as a kernel id in the real superblock's namespace and
/// written in the shiftfs superblock's, unshifted: a capability set by a
/// container (root id its root, kernel uid 100000) reads as the container
/// root's (revision 2) in the container, and one set by the host (root id
/// 0) does not exist for the container (ENODATA, as the kernel treats a
/// capability not valid in the namespace at exec). Through an idmapped
/// real mount the root id is first the kernel uid that mount shows, as the
/// VFS shows it to users of that mount.
pub(crate) fn caps_value_up(value: &[u8], shift: &Shift<'_>) -> Result<KVec<u8>> {
    caps_up(value, |root| {
        shift
            .shifted
            .uid_of(shift.vfs_uid(shift.real.make_kuid(root)))
    })
    .map_err(|e| if e == eoverflow() { enodata() } else { e })
}

/// A capability written through shiftfs (already converted by the VFS for
/// the shiftfs superblock), for the real filesystem: the reverse of
/// [`caps_value_up`]. A container's root capability is written as revision
/// 3 naming its root's kernel uid, valid for the container and not for the
/// host.
pub(crate) fn caps_value_down(value: &[u8], shift: &Shift<'_>) -> Result<KVec<u8>> {
    caps_down(value, |root| {
        shift
            .disk_uid(shift.shifted.make_kuid(root))
            .and_then(|k| shift.real.uid_of(k))
    })
}

/// The ACL a shiftfs inode shows for a real inode's `acl`, to a reader:
/// entries naming unmapped ids show the overflow id (as owners do).
pub(crate) fn acl_up(acl: &PosixAcl, shift: &Shift<'_>) -> Result<ARef<PosixAcl>> {
    let (ouid, ogid) = overflow_ids();
    acl_up_as(
        acl,
        shift,
        shift.shifted.make_kuid(ouid),
        shift.shifted.make_kgid(ogid),
    )
}

/// The ACL a shiftfs inode has for permission checks: entries naming
/// unmapped ids name the invalid id, which matches no one (the overflow id
/// would grant the container's `nobody` what the real entry grants a
/// stranger).
pub(crate) fn acl_up_for_permission(acl: &PosixAcl, shift: &Shift<'_>) -> Result<ARef<PosixAcl>> {
    acl_up_as(acl, shift, Kuid::INVALID, Kgid::INVALID)
}

/// Shifts the named entries of `acl` up; unmapped ones become `ouid`/`ogid`.
fn acl_up_as(acl: &PosixAcl, shift: &Shift<'_>, ouid: Kuid, ogid: Kgid) -> Result<ARef<PosixAcl>> {
    acl.try_map(|mut e| {
        e.id = match e.id {
            AclId::User(k) => AclId::User(
                Some(shift.uid_up(k))
                    .filter(|k| k.is_valid())
                    .unwrap_or(ouid),
            ),
            AclId::Group(k) => AclId::Group(
                Some(shift.gid_up(k))
                    .filter(|k| k.is_valid())
                    .unwrap_or(ogid),
            ),
            AclId::None => AclId::None,
        };
        Ok(e)
    })
}

/// The ACL to set on the real inode for `acl` set through shiftfs.
pub(crate) fn acl_down(acl: &PosixAcl, shift: &Shift<'_>) -> Result<ARef<PosixAcl>> {
    acl.try_map(|mut e| {
        e.id = match e.id {
            AclId::User(k) => AclId::User(shift.uid_down(k).ok_or(EINVAL)?),
            AclId::Group(k) => AclId::Group(shift.gid_down(k).ok_or(EINVAL)?),
            AclId::None => AclId::None,
        };
        Ok(e)
    })
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{
        kunit_expect, kunit_expect_eq, kunit_suite,
        vfs::{
            acl::{AclEntry, DerivedAcls, ACL_GROUP, ACL_USER},
            kunit::Test,
            user_ns::{Kgid, Kuid, TestUserNamespace, UserNamespace},
        },
    };

    const EFFECTIVE: u32 = 1;

    /// Builds a value from words, as a test fixture.
    fn value(words: &[u32]) -> KVec<u8> {
        let mut v = KVec::new();
        for w in words {
            v.extend_from_slice(&w.to_le_bytes(), GFP_KERNEL)
                .expect("alloc");
        }
        v
    }

    /// The container 0:100000:65536, real to shifted.
    fn container_up(id: u32) -> Option<u32> {
        id.checked_sub(100_000).filter(|&i| i < 65_536)
    }

    /// The same container, shifted to real.
    fn container_down(id: u32) -> Option<u32> {
        (id < 65_536).then(|| id + 100_000)
    }

    fn same(id: u32) -> Option<u32> {
        Some(id)
    }

    fn v2_with_root_0_stays_v2(t: &mut Test) {
        let v = value(&[REVISION_2 | EFFECTIVE, 0x2000, 0, 0, 0]);
        kunit_expect_eq!(t, caps_up(&v, same).as_deref(), Ok(&v[..]));
    }

    fn v2_becomes_v3_when_root_moves(t: &mut Test) {
        let v = value(&[REVISION_2 | EFFECTIVE, 0x2000, 0x10, 0x1, 0x2]);
        let want = value(&[REVISION_3 | EFFECTIVE, 0x2000, 0x10, 0x1, 0x2, 100_000]);
        kunit_expect_eq!(t, caps_down(&v, container_down).as_deref(), Ok(&want[..]));
    }

    fn v3_becomes_v2_when_root_maps_to_0(t: &mut Test) {
        let v = value(&[REVISION_3, 0x2000, 0x10, 0x1, 0x2, 100_000]);
        let want = value(&[REVISION_2, 0x2000, 0x10, 0x1, 0x2]);
        kunit_expect_eq!(t, caps_up(&v, container_up).as_deref(), Ok(&want[..]));
    }

    fn v3_root_is_translated_up(t: &mut Test) {
        let v = value(&[REVISION_3 | EFFECTIVE, 0x400, 0, 0, 0, 101_000]);
        let want = value(&[REVISION_3 | EFFECTIVE, 0x400, 0, 0, 0, 1000]);
        kunit_expect_eq!(t, caps_up(&v, container_up).as_deref(), Ok(&want[..]));
    }

    fn v3_root_is_translated_down(t: &mut Test) {
        let v = value(&[REVISION_3, 0x400, 0, 0, 0, 5]);
        let want = value(&[REVISION_3, 0x400, 0, 0, 0, 100_005]);
        kunit_expect_eq!(t, caps_down(&v, container_down).as_deref(), Ok(&want[..]));
    }

    fn v1_with_root_0_stays_v1(t: &mut Test) {
        let v = value(&[REVISION_1 | EFFECTIVE, 0x3000, 0x1]);
        kunit_expect_eq!(t, caps_up(&v, same).as_deref(), Ok(&v[..]));
    }

    fn v1_becomes_v3_with_empty_high_words(t: &mut Test) {
        let v = value(&[REVISION_1, 0x3000, 0x1]);
        let want = value(&[REVISION_3, 0x3000, 0x1, 0, 0, 100_000]);
        kunit_expect_eq!(t, caps_down(&v, container_down).as_deref(), Ok(&want[..]));
    }

    fn unmapped_root_up_is_eoverflow(t: &mut Test) {
        let host_root = value(&[REVISION_2, 0x2000, 0, 0, 0]);
        kunit_expect_eq!(t, caps_up(&host_root, container_up), Err(eoverflow()));
        let other = value(&[REVISION_3, 0x2000, 0, 0, 0, 200_000]);
        kunit_expect_eq!(t, caps_up(&other, container_up), Err(eoverflow()));
    }

    fn unmappable_root_down_is_einval(t: &mut Test) {
        let v = value(&[REVISION_3, 0x2000, 0, 0, 0, 65_536]);
        kunit_expect_eq!(t, caps_down(&v, container_down), Err(EINVAL));
    }

    fn empty_and_truncated_values_are_einval(t: &mut Test) {
        kunit_expect_eq!(t, caps_up(&[], same), Err(EINVAL));
        kunit_expect_eq!(t, caps_up(&[0, 0, 0], same), Err(EINVAL));
        let v2 = value(&[REVISION_2, 1, 2, 3, 4]);
        for len in 0..v2.len() {
            kunit_expect_eq!(t, caps_up(&v2[..len], same), Err(EINVAL));
        }
        let v3 = value(&[REVISION_3, 1, 2, 3, 4, 0]);
        kunit_expect_eq!(t, caps_down(&v3[..SIZE_3 - 1], same), Err(EINVAL));
    }

    fn size_must_match_revision(t: &mut Test) {
        // A v2 magic on a v3-sized value, a v3 magic on a v2-sized one, a v1
        // magic with a trailing byte.
        let v = value(&[REVISION_2, 1, 2, 3, 4, 5]);
        kunit_expect_eq!(t, caps_up(&v, same), Err(EINVAL));
        let v = value(&[REVISION_3, 1, 2, 3, 4]);
        kunit_expect_eq!(t, caps_up(&v, same), Err(EINVAL));
        let mut v = value(&[REVISION_1, 1, 2]);
        v.push(0, GFP_KERNEL).expect("alloc");
        kunit_expect_eq!(t, caps_up(&v, same), Err(EINVAL));
    }

    fn unknown_revisions_are_einval(t: &mut Test) {
        for rev in [0, 0x0400_0000, 0xff00_0000] {
            let v = value(&[rev, 1, 2, 3, 4]);
            kunit_expect_eq!(t, caps_up(&v, same), Err(EINVAL));
            let v = value(&[rev, 1, 2, 3, 4, 0]);
            kunit_expect_eq!(t, caps_down(&v, same), Err(EINVAL));
        }
    }

    fn flags_and_data_are_kept_exactly(t: &mut Test) {
        let v = value(&[
            REVISION_2 | EFFECTIVE,
            0xdead_beef,
            0x1234_5678,
            0xffff_ffff,
            0x8000_0001,
        ]);
        let down = caps_down(&v, container_down).expect("down");
        kunit_expect_eq!(t, down.len(), SIZE_3);
        let back = caps_up(&down, container_up).expect("up");
        kunit_expect_eq!(t, &back[..], &v[..]);
    }

    fn round_trip_through_the_container(t: &mut Test) {
        for rootid in [0, 1, 1000, 65_535] {
            let v = value(&[REVISION_3, 0x1, 0x2, 0x3, 0x4, rootid]);
            let down = caps_down(&v, container_down).expect("down");
            kunit_expect_eq!(t, word(&down, 5), rootid + 100_000);
            let up = caps_up(&down, container_up).expect("up");
            if rootid == 0 {
                kunit_expect_eq!(t, up.len(), SIZE_2);
            } else {
                kunit_expect_eq!(t, &up[..], &v[..]);
            }
        }
    }

    fn every_short_prefix_is_rejected_without_reading_past_it(t: &mut Test) {
        // Each prefix is copied to an allocation of exactly its size, so a
        // read past the end would be caught by KASAN.
        let v3 = value(&[REVISION_3, 1, 2, 3, 4, 5]);
        for len in 0..v3.len() {
            let mut exact = KVec::with_capacity(len, GFP_KERNEL).expect("alloc");
            exact
                .extend_from_slice(&v3[..len], GFP_KERNEL)
                .expect("alloc");
            kunit_expect!(
                t,
                caps_up(&exact, same).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
    }

    // ACL tags besides ACL_USER and ACL_GROUP, and permission bits.
    const USER_OBJ: i16 = 0x01;
    const GROUP_OBJ: i16 = 0x04;
    const MASK: i16 = 0x10;
    const OTHER: i16 = 0x20;
    const RWX: u16 = 7;

    fn entry(tag: i16, perm: u16, id: AclId) -> AclEntry {
        AclEntry { tag, perm, id }
    }

    /// An access ACL naming real user 1000 and real group 70000.
    fn real_acl() -> ARef<PosixAcl> {
        PosixAcl::from_entries(&[
            entry(USER_OBJ, RWX, AclId::None),
            entry(ACL_USER, 5, AclId::User(Kuid(1000))),
            entry(GROUP_OBJ, 5, AclId::None),
            entry(ACL_GROUP, 4, AclId::Group(Kgid(70_000))),
            entry(MASK, 5, AclId::None),
            entry(OTHER, 0, AclId::None),
        ])
        .expect("acl")
    }

    fn with_container_shift(f: impl FnOnce(&Shift<'_>)) {
        let c = TestUserNamespace::new(&[(0, 100_000, 65_536)]).expect("test namespace");
        f(&Shift {
            real: UserNamespace::init(),
            shifted: &c,
            idmap: None,
            memo: None,
        })
    }

    fn entries(acl: &PosixAcl) -> KVec<AclEntry> {
        let mut v = KVec::new();
        for i in 0..acl.count() {
            v.push(acl.entry(i), GFP_KERNEL).expect("alloc");
        }
        v
    }

    fn acl_for_permission_names_no_one_for_unmapped_ids(t: &mut Test) {
        with_container_shift(|s| {
            let up = acl_up_for_permission(&real_acl(), s).expect("acl_up_for_permission");
            kunit_expect_eq!(t, up.entry(1).id, AclId::User(Kuid(101_000)));
            // Not the container's 65534: that would grant its nobody what
            // the real entry grants group 70000.
            kunit_expect_eq!(t, up.entry(3).id, AclId::Group(Kgid::INVALID));
        });
    }

    fn container_setcap_is_written_for_its_root_kernel_uid(t: &mut Test) {
        with_container_shift(|s| {
            let v = value(&[REVISION_2 | EFFECTIVE, 0x2000, 0, 0, 0]);
            let want = value(&[REVISION_3 | EFFECTIVE, 0x2000, 0, 0, 0, 100_000]);
            kunit_expect_eq!(t, caps_value_down(&v, s).as_deref(), Ok(&want[..]));
        });
    }

    fn container_capability_reads_back_as_its_roots(t: &mut Test) {
        with_container_shift(|s| {
            let v = value(&[REVISION_3 | EFFECTIVE, 0x2000, 0, 0, 0, 100_000]);
            let want = value(&[REVISION_2 | EFFECTIVE, 0x2000, 0, 0, 0]);
            kunit_expect_eq!(t, caps_value_up(&v, s).as_deref(), Ok(&want[..]));
        });
    }

    fn host_capability_does_not_exist_in_the_container(t: &mut Test) {
        with_container_shift(|s| {
            let v = value(&[REVISION_2 | EFFECTIVE, 0x2000, 0, 0, 0]);
            kunit_expect_eq!(t, caps_value_up(&v, s).err(), Some(enodata()));
            // Nor one for a user namespace the container's does not contain.
            let v = value(&[REVISION_3, 0x2000, 0, 0, 0, 200_000]);
            kunit_expect_eq!(t, caps_value_up(&v, s).err(), Some(enodata()));
        });
    }

    fn malformed_capability_stays_einval_both_ways(t: &mut Test) {
        with_container_shift(|s| {
            let v = value(&[REVISION_2, 0x2000, 0]);
            kunit_expect_eq!(t, caps_value_up(&v, s).err(), Some(EINVAL));
            kunit_expect_eq!(t, caps_value_down(&v, s).err(), Some(EINVAL));
        });
    }

    fn acl_up_shifts_named_entries(t: &mut Test) {
        with_container_shift(|s| {
            let up = acl_up(&real_acl(), s).expect("acl_up");
            kunit_expect_eq!(t, up.entry(1).id, AclId::User(Kuid(101_000)));
            // Real group 70000 has no container mapping: the overflow id,
            // container gid 65534.
            kunit_expect_eq!(t, up.entry(3).id, AclId::Group(Kgid(165_534)));
        });
    }

    fn acl_up_keeps_tags_permissions_and_order(t: &mut Test) {
        with_container_shift(|s| {
            let acl = real_acl();
            let up = acl_up(&acl, s).expect("acl_up");
            kunit_expect_eq!(t, up.count(), acl.count());
            for i in 0..acl.count() {
                kunit_expect_eq!(t, up.entry(i).tag, acl.entry(i).tag);
                kunit_expect_eq!(t, up.entry(i).perm, acl.entry(i).perm);
            }
            kunit_expect_eq!(t, up.entry(0).id, AclId::None);
            kunit_expect_eq!(t, up.entry(5).id, AclId::None);
        });
    }

    fn acl_up_leaves_the_real_acl_alone(t: &mut Test) {
        with_container_shift(|s| {
            let acl = real_acl();
            let before = entries(&acl);
            let _up = acl_up(&acl, s).expect("acl_up");
            kunit_expect_eq!(t, entries(&acl), before);
        });
    }

    fn acl_down_shifts_named_entries(t: &mut Test) {
        with_container_shift(|s| {
            let set = PosixAcl::from_entries(&[
                entry(USER_OBJ, RWX, AclId::None),
                entry(ACL_USER, RWX, AclId::User(Kuid(101_000))),
                entry(ACL_GROUP, 4, AclId::Group(Kgid(100_050))),
                entry(MASK, RWX, AclId::None),
            ])
            .expect("acl");
            let down = acl_down(&set, s).expect("acl_down");
            kunit_expect_eq!(t, down.entry(1).id, AclId::User(Kuid(1000)));
            kunit_expect_eq!(t, down.entry(2).id, AclId::Group(Kgid(50)));
        });
    }

    fn acl_down_unmappable_entry_is_einval(t: &mut Test) {
        with_container_shift(|s| {
            for id in [AclId::User(Kuid(5)), AclId::Group(Kgid(200_000))] {
                let set = PosixAcl::from_entries(&[
                    entry(USER_OBJ, RWX, AclId::None),
                    entry(
                        if matches!(id, AclId::User(_)) {
                            ACL_USER
                        } else {
                            ACL_GROUP
                        },
                        RWX,
                        id,
                    ),
                ])
                .expect("acl");
                kunit_expect_eq!(t, acl_down(&set, s).err(), Some(EINVAL));
            }
        });
    }

    fn empty_acl_stays_empty(t: &mut Test) {
        with_container_shift(|s| {
            let empty = PosixAcl::from_entries(&[]).expect("acl");
            kunit_expect_eq!(t, acl_up(&empty, s).map(|a| a.count()), Ok(0));
            kunit_expect_eq!(t, acl_down(&empty, s).map(|a| a.count()), Ok(0));
        });
    }

    fn acl_round_trip_through_the_container(t: &mut Test) {
        with_container_shift(|s| {
            let mut list = KVec::new();
            list.push(entry(USER_OBJ, RWX, AclId::None), GFP_KERNEL)
                .expect("alloc");
            for i in 0..30u32 {
                let e = if i % 2 == 0 {
                    entry(ACL_USER, (i % 8) as u16, AclId::User(Kuid(i * 2000)))
                } else {
                    entry(ACL_GROUP, (i % 8) as u16, AclId::Group(Kgid(i * 2000)))
                };
                list.push(e, GFP_KERNEL).expect("alloc");
            }
            let acl = PosixAcl::from_entries(&list).expect("acl");
            let up = acl_up(&acl, s).expect("acl_up");
            let back = acl_down(&up, s).expect("acl_down");
            kunit_expect_eq!(t, entries(&back), entries(&acl));
        });
    }

    fn acl_reference_counting(t: &mut Test) {
        let acl = real_acl();
        let other = acl.clone();
        drop(acl);
        kunit_expect_eq!(t, other.count(), 6);
        kunit_expect!(t, other.entry(1).id == AclId::User(Kuid(1000)));
    }

    /// The ACLs kept for RCU walks are found by the real ACL object, not
    /// by its entries: a new ACL below (a new object) is never answered
    /// with the one shifted from the ACL it replaced.
    fn shifted_acls_are_found_by_the_real_acl_object(t: &mut Test) {
        with_container_shift(|s| {
            let kept = DerivedAcls::new();
            let (real, same_entries) = (real_acl(), real_acl());
            kunit_expect!(t, kept.get(&real).is_none());
            let up = acl_up_for_permission(&real, s).expect("acl_up");
            kept.insert(real.clone(), up.clone());
            let found = kept.get(&real);
            kunit_expect!(t, found.is_some_and(|f| core::ptr::eq(&*f, &*up)));
            kunit_expect!(t, kept.get(&same_entries).is_none());
            // Replaced: the slot now answers for the new object only.
            let up2 = acl_up_for_permission(&same_entries, s).expect("acl_up");
            kept.insert(same_entries.clone(), up2.clone());
            let found = kept.get(&same_entries);
            kunit_expect!(t, found.is_some_and(|f| core::ptr::eq(&*f, &*up2)));
            // The first pair may share the slot (then it is gone) or not.
            if let Some(first) = kept.get(&real) {
                kunit_expect!(t, core::ptr::eq(&*first, &*up));
            }
        });
    }

    /// A `system.posix_acl_*` value from (tag, perm, id) entries, in an
    /// allocation of exactly its size (KASAN catches a read past it).
    fn acl_value(version: u32, entries: &[(u16, u16, u32)], extra: &[u8]) -> KVec<u8> {
        let mut v =
            KVec::with_capacity(4 + 8 * entries.len() + extra.len(), GFP_KERNEL).expect("alloc");
        v.extend_from_slice(&version.to_le_bytes(), GFP_KERNEL)
            .expect("alloc");
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes(), GFP_KERNEL)
                .expect("alloc");
            v.extend_from_slice(&perm.to_le_bytes(), GFP_KERNEL)
                .expect("alloc");
            v.extend_from_slice(&id.to_le_bytes(), GFP_KERNEL)
                .expect("alloc");
        }
        v.extend_from_slice(extra, GFP_KERNEL).expect("alloc");
        v
    }

    const V2: u32 = 2;
    /// What `setfacl -m u:1000:rwx,g:50:r` writes, as (tag, perm, id).
    const SETFACL: [(u16, u16, u32); 5] = [
        (USER_OBJ as u16, 7, u32::MAX),
        (ACL_USER as u16, 7, 1000),
        (GROUP_OBJ as u16, 5, u32::MAX),
        (ACL_GROUP as u16, 4, 50),
        (OTHER as u16, 0, u32::MAX),
    ];

    /// Runs `f` with the container namespace and the shift for it.
    fn with_container_ns(f: impl FnOnce(&UserNamespace, &Shift<'_>)) {
        let c = TestUserNamespace::new(&[(0, 100_000, 65_536)]).expect("test namespace");
        let s = Shift {
            real: UserNamespace::init(),
            shifted: &c,
            idmap: None,
            memo: None,
        };
        f(&c, &s)
    }

    fn acl_value_set_in_container_lands_shifted(t: &mut Test) {
        with_container_ns(|c, s| {
            let v = acl_value(V2, &SETFACL, &[]);
            let acl = PosixAcl::from_xattr(c, &v).expect("parse").expect("acl");
            let real = acl_down(&acl, s).expect("acl_down");
            kunit_expect_eq!(t, real.entry(1).id, AclId::User(Kuid(1000)));
            kunit_expect_eq!(t, real.entry(3).id, AclId::Group(Kgid(50)));
        });
    }

    fn acl_value_read_in_container_shows_its_ids(t: &mut Test) {
        with_container_ns(|c, s| {
            let up = acl_up(&real_acl(), s).expect("acl_up");
            let v = up.to_xattr(c).expect("to_xattr");
            // Entry 1 (ACL_USER) starts at byte 4 + 8; its id at + 4.
            kunit_expect_eq!(t, word(&v, 4), 1000);
        });
    }

    fn acl_value_round_trip_is_byte_exact(t: &mut Test) {
        with_container_ns(|c, s| {
            let v = acl_value(V2, &SETFACL, &[]);
            let acl = PosixAcl::from_xattr(c, &v).expect("parse").expect("acl");
            let real = acl_down(&acl, s).expect("acl_down");
            let back = acl_up(&real, s)
                .expect("acl_up")
                .to_xattr(c)
                .expect("to_xattr");
            // The ids of *_OBJ and OTHER entries are not kept by the VFS.
            kunit_expect_eq!(t, back.len(), v.len());
            for (i, (a, b)) in back.chunks(8).zip(v.chunks(8)).enumerate().skip(1) {
                kunit_expect_eq!(t, &a[..4], &b[..4]);
                if i == 2 || i == 4 {
                    kunit_expect_eq!(t, &a[4..], &b[4..]);
                }
            }
        });
    }

    fn acl_value_with_no_entries_is_no_acl(t: &mut Test) {
        with_container_ns(|c, _| {
            let v = acl_value(V2, &[], &[]);
            kunit_expect!(t, matches!(PosixAcl::from_xattr(c, &v), Ok(None)));
        });
    }

    fn truncated_acl_values_are_einval(t: &mut Test) {
        with_container_ns(|c, _| {
            let full = acl_value(V2, &SETFACL, &[]);
            for len in [1, 3, 4 + 7, full.len() - 1] {
                let mut v = KVec::with_capacity(len, GFP_KERNEL).expect("alloc");
                v.extend_from_slice(&full[..len], GFP_KERNEL)
                    .expect("alloc");
                kunit_expect_eq!(t, PosixAcl::from_xattr(c, &v).err(), Some(EINVAL));
            }
        });
    }

    fn acl_value_of_wrong_version_is_refused(t: &mut Test) {
        with_container_ns(|c, _| {
            for version in [0, 1, 3] {
                let v = acl_value(version, &SETFACL, &[]);
                kunit_expect_eq!(
                    t,
                    PosixAcl::from_xattr(c, &v).err(),
                    Some(crate::vfs::errno::eopnotsupp())
                );
            }
        });
    }

    fn acl_value_size_not_whole_entries_is_einval(t: &mut Test) {
        with_container_ns(|c, _| {
            let v = acl_value(V2, &SETFACL[..2], &[0; 4]);
            kunit_expect_eq!(t, PosixAcl::from_xattr(c, &v).err(), Some(EINVAL));
        });
    }

    fn acl_value_naming_an_unmapped_id_is_einval(t: &mut Test) {
        // The VFS reads ids in the writer's namespace: the container's uid
        // 70000 does not exist.
        with_container_ns(|c, _| {
            let v = acl_value(V2, &[(ACL_USER as u16, 7, 70_000)], &[]);
            kunit_expect_eq!(t, PosixAcl::from_xattr(c, &v).err(), Some(EINVAL));
            let v = acl_value(V2, &[(ACL_GROUP as u16, 7, 65_536)], &[]);
            kunit_expect_eq!(t, PosixAcl::from_xattr(c, &v).err(), Some(EINVAL));
        });
    }

    fn acl_value_with_unknown_tag_is_einval(t: &mut Test) {
        with_container_ns(|c, _| {
            let v = acl_value(V2, &[(0x40, 7, 0)], &[]);
            kunit_expect_eq!(t, PosixAcl::from_xattr(c, &v).err(), Some(EINVAL));
        });
    }

    kunit_suite!(
        "shiftfs_acl",
        [
            acl_value_set_in_container_lands_shifted,
            acl_value_read_in_container_shows_its_ids,
            acl_value_round_trip_is_byte_exact,
            acl_value_with_no_entries_is_no_acl,
            truncated_acl_values_are_einval,
            acl_value_of_wrong_version_is_refused,
            acl_value_size_not_whole_entries_is_einval,
            acl_value_naming_an_unmapped_id_is_einval,
            acl_value_with_unknown_tag_is_einval,
            acl_up_shifts_named_entries,
            acl_for_permission_names_no_one_for_unmapped_ids,
            acl_up_keeps_tags_permissions_and_order,
            acl_up_leaves_the_real_acl_alone,
            acl_down_shifts_named_entries,
            acl_down_unmappable_entry_is_einval,
            empty_acl_stays_empty,
            acl_round_trip_through_the_container,
            acl_reference_counting,
            shifted_acls_are_found_by_the_real_acl_object,
        ]
    );

    kunit_suite!(
        "shiftfs_caps_xattr",
        [
            v2_with_root_0_stays_v2,
            v2_becomes_v3_when_root_moves,
            v3_becomes_v2_when_root_maps_to_0,
            v3_root_is_translated_up,
            v3_root_is_translated_down,
            v1_with_root_0_stays_v1,
            v1_becomes_v3_with_empty_high_words,
            unmapped_root_up_is_eoverflow,
            unmappable_root_down_is_einval,
            empty_and_truncated_values_are_einval,
            size_must_match_revision,
            unknown_revisions_are_einval,
            flags_and_data_are_kept_exactly,
            round_trip_through_the_container,
            every_short_prefix_is_rejected_without_reading_past_it,
            container_setcap_is_written_for_its_root_kernel_uid,
            container_capability_reads_back_as_its_roots,
            host_capability_does_not_exist_in_the_container,
            malformed_capability_stays_einval_both_ways,
        ]
    );
}
