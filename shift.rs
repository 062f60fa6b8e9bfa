// SPDX-License-Identifier: GPL-2.0

//! The shifting rule.
//!
//! A real id is read in the real superblock's user namespace and made a
//! kernel id in the shiftfs superblock's: with a container mapping
//! 0:100000:65536, on-disk uid 1000 is kernel uid 101000, which the container
//! sees as 1000. On the way down the reverse. An id with no mapping shifts to
//! the invalid id (stat then shows the overflow id, 65534); one that cannot
//! be written down is refused.
//!
//! Where the mark stands on an idmapped mount, the real filesystem is seen
//! through that mount's idmapping first, as any user of the mount sees it,
//! and then shifted: the two mappings compose, and an id either cannot
//! represent is invalid up and refused down.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{
    superblock::Shiftfs,
    vfs::{
        inode::{Inode, MntIdmap},
        super_block::SuperBlock,
        user_ns::{Kgid, Kuid, UserNamespace},
        Real,
    },
};

/// Shifting between a real superblock's user namespace and a shiftfs
/// superblock's.
#[derive(Clone, Copy)]
pub(crate) struct Shift<'a> {
    /// The real superblock's user namespace (`s_user_ns`).
    pub(crate) real: &'a UserNamespace,
    /// The shiftfs superblock's user namespace: the container's.
    pub(crate) shifted: &'a UserNamespace,
    /// The idmapping of the real mount, if it is idmapped.
    pub(crate) idmap: Option<&'a MntIdmap>,
    /// Ids shifted up lately on this superblock.
    pub(crate) memo: Option<&'a UpMemos>,
}

/// How many ids of each kind [`UpMemo`] keeps.
const MEMO_SLOTS: usize = 16;

/// The ids a superblock shifted up lately: `getattr` and every refresh of
/// an inode shift an owner and a group up, which walks two namespaces'
/// maps, and a tree has few distinct owners. Direct-mapped by the id, one
/// word per slot (the id as the real mount shows it, and what it shifts
/// to), written only when an id is not there, so that walks in parallel
/// share it read-only.
pub(crate) struct UpMemo([AtomicU64; MEMO_SLOTS]);

impl UpMemo {
    fn new() -> Self {
        // Every slot says the invalid id shifts to the invalid id: true.
        Self(core::array::from_fn(|_| AtomicU64::new(u64::MAX)))
    }

    /// What `from` shifts to: kept, or `shift(from)` (kept if valid).
    fn get_or(&self, from: u32, shift: impl FnOnce(u32) -> u32) -> u32 {
        let slot = &self.0[from as usize % MEMO_SLOTS];
        // One word holds both ids: no ordering with anything else needed.
        let kept = slot.load(Ordering::Relaxed);
        if (kept >> 32) as u32 == from {
            return kept as u32;
        }
        let to = shift(from);
        // A namespace's map is written once, but perhaps not yet: an id
        // that does not shift now may later, so only valid ones are kept.
        if to != u32::MAX {
            slot.store((u64::from(from) << 32) | u64::from(to), Ordering::Relaxed);
        }
        to
    }
}

/// A superblock's [`UpMemo`] for uids and for gids.
pub(crate) struct UpMemos {
    uids: UpMemo,
    gids: UpMemo,
}

impl UpMemos {
    pub(crate) fn new() -> Self {
        Self {
            uids: UpMemo::new(),
            gids: UpMemo::new(),
        }
    }
}

impl<'a> Shift<'a> {
    /// The shift of shiftfs superblock `sb`: from the user namespace of
    /// the real filesystem under it (every real object it reaches is on
    /// that one superblock) to its own, the container's.
    pub(crate) fn of(sb: &'a SuperBlock<Shiftfs>) -> Self {
        let real = &sb.info().real;
        Shift {
            real: real.super_block().user_ns(),
            shifted: sb.user_ns(),
            idmap: real.mount().idmap(),
            memo: Some(&sb.info().up),
        }
    }

    /// The kernel uid the real mount shows for real owner `real`.
    pub(crate) fn vfs_uid(&self, real: Kuid) -> Kuid {
        self.idmap.map_or(real, |m| m.vfsuid(self.real, real))
    }

    /// The kernel gid the real mount shows for real group `real`.
    pub(crate) fn vfs_gid(&self, real: Kgid) -> Kgid {
        self.idmap.map_or(real, |m| m.vfsgid(self.real, real))
    }

    /// The real owner for `vfs`, a kernel uid as the real mount shows it.
    pub(crate) fn disk_uid(&self, vfs: Kuid) -> Option<Kuid> {
        let k = self.idmap.map_or(vfs, |m| m.kuid_of(self.real, vfs));
        Some(k).filter(|k| k.is_valid())
    }

    /// The real group for `vfs`, a kernel gid as the real mount shows it.
    pub(crate) fn disk_gid(&self, vfs: Kgid) -> Option<Kgid> {
        let k = self.idmap.map_or(vfs, |m| m.kgid_of(self.real, vfs));
        Some(k).filter(|k| k.is_valid())
    }

    /// The owner and group a shiftfs inode shows for `real`.
    pub(crate) fn owner_up(&self, real: &Inode<Real>) -> (Kuid, Kgid) {
        (self.uid_up(real.uid()), self.gid_up(real.gid()))
    }

    /// The owner a shiftfs inode shows for a real inode owned by `real`.
    pub(crate) fn uid_up(&self, real: Kuid) -> Kuid {
        self.view_uid_up(self.vfs_uid(real))
    }

    /// The owner a shiftfs inode shows for an owner as the real mount
    /// shows it (what `getattr` of the real path gives).
    pub(crate) fn view_uid_up(&self, vfs: Kuid) -> Kuid {
        let shift = |k| {
            self.real
                .uid_of(Kuid(k))
                .map_or(Kuid::INVALID, |id| self.shifted.make_kuid(id))
                .0
        };
        Kuid(match self.memo {
            Some(m) => m.uids.get_or(vfs.0, shift),
            None => shift(vfs.0),
        })
    }

    /// The group a shiftfs inode shows for a real inode's `real` group.
    pub(crate) fn gid_up(&self, real: Kgid) -> Kgid {
        self.view_gid_up(self.vfs_gid(real))
    }

    /// The group a shiftfs inode shows for a group as the real mount
    /// shows it.
    pub(crate) fn view_gid_up(&self, vfs: Kgid) -> Kgid {
        let shift = |k| {
            self.real
                .gid_of(Kgid(k))
                .map_or(Kgid::INVALID, |id| self.shifted.make_kgid(id))
                .0
        };
        Kgid(match self.memo {
            Some(m) => m.gids.get_or(vfs.0, shift),
            None => shift(vfs.0),
        })
    }

    /// The real owner to write for `shifted`, if the real filesystem can hold it.
    pub(crate) fn uid_down(&self, shifted: Kuid) -> Option<Kuid> {
        let id = self.shifted.uid_of(shifted)?;
        let vfs = self.real.make_kuid(id);
        if !vfs.is_valid() {
            return None;
        }
        self.disk_uid(vfs)
    }

    /// The real group to write for `shifted`, if the real filesystem can hold it.
    pub(crate) fn gid_down(&self, shifted: Kgid) -> Option<Kgid> {
        let id = self.shifted.gid_of(shifted)?;
        let vfs = self.real.make_kgid(id);
        if !vfs.is_valid() {
            return None;
        }
        self.disk_gid(vfs)
    }
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{kunit_expect_eq, kunit_suite, vfs::kunit::Test, vfs::user_ns::TestUserNamespace};

    /// The usual container: 0:100000:65536.
    fn container() -> TestUserNamespace {
        TestUserNamespace::new(&[(0, 100_000, 65_536)]).expect("test namespace")
    }

    fn with_container(f: impl FnOnce(Shift<'_>)) {
        let c = container();
        f(Shift {
            real: UserNamespace::init(),
            shifted: &c,
            idmap: None,
            memo: None,
        })
    }

    fn up_root_is_container_root(t: &mut Test) {
        with_container(|s| kunit_expect_eq!(t, s.uid_up(Kuid(0)), Kuid(100_000)));
    }

    fn up_1000_is_container_1000(t: &mut Test) {
        with_container(|s| kunit_expect_eq!(t, s.uid_up(Kuid(1000)), Kuid(101_000)));
    }

    fn up_last_mapped_id(t: &mut Test) {
        with_container(|s| kunit_expect_eq!(t, s.uid_up(Kuid(65_535)), Kuid(165_535)));
    }

    fn up_first_unmapped_id_is_invalid(t: &mut Test) {
        with_container(|s| kunit_expect_eq!(t, s.uid_up(Kuid(65_536)), Kuid::INVALID));
    }

    fn up_70000_is_invalid(t: &mut Test) {
        with_container(|s| kunit_expect_eq!(t, s.uid_up(Kuid(70_000)), Kuid::INVALID));
    }

    fn up_4294967294_is_invalid(t: &mut Test) {
        with_container(|s| kunit_expect_eq!(t, s.uid_up(Kuid(4_294_967_294)), Kuid::INVALID));
    }

    fn up_invalid_stays_invalid(t: &mut Test) {
        with_container(|s| {
            kunit_expect_eq!(t, s.uid_up(Kuid::INVALID), Kuid::INVALID);
            kunit_expect_eq!(t, s.gid_up(Kgid::INVALID), Kgid::INVALID);
        });
    }

    fn down_container_ids(t: &mut Test) {
        with_container(|s| {
            kunit_expect_eq!(t, s.uid_down(Kuid(100_000)), Some(Kuid(0)));
            kunit_expect_eq!(t, s.uid_down(Kuid(101_000)), Some(Kuid(1000)));
            kunit_expect_eq!(t, s.uid_down(Kuid(165_535)), Some(Kuid(65_535)));
        });
    }

    fn down_outside_the_container_is_refused(t: &mut Test) {
        with_container(|s| {
            kunit_expect_eq!(t, s.uid_down(Kuid(0)), None);
            kunit_expect_eq!(t, s.uid_down(Kuid(99_999)), None);
            kunit_expect_eq!(t, s.uid_down(Kuid(165_536)), None);
            kunit_expect_eq!(t, s.uid_down(Kuid::INVALID), None);
        });
    }

    fn gids_shift_like_uids(t: &mut Test) {
        with_container(|s| {
            kunit_expect_eq!(t, s.gid_up(Kgid(0)), Kgid(100_000));
            kunit_expect_eq!(t, s.gid_up(Kgid(1000)), Kgid(101_000));
            kunit_expect_eq!(t, s.gid_up(Kgid(70_000)), Kgid::INVALID);
            kunit_expect_eq!(t, s.gid_down(Kgid(101_000)), Some(Kgid(1000)));
            kunit_expect_eq!(t, s.gid_down(Kgid(5)), None);
        });
    }

    fn round_trip_of_mapped_ids(t: &mut Test) {
        with_container(|s| {
            for id in [0, 1, 1000, 65_534, 65_535] {
                kunit_expect_eq!(t, s.uid_down(s.uid_up(Kuid(id))), Some(Kuid(id)));
                kunit_expect_eq!(t, s.gid_down(s.gid_up(Kgid(id))), Some(Kgid(id)));
            }
        });
    }

    fn identity_in_the_initial_namespace(t: &mut Test) {
        let init = UserNamespace::init();
        let s = Shift {
            real: init,
            shifted: init,
            idmap: None,
            memo: None,
        };
        for id in [0, 1000, 65_536, 4_294_967_294] {
            kunit_expect_eq!(t, s.uid_up(Kuid(id)), Kuid(id));
            kunit_expect_eq!(t, s.uid_down(Kuid(id)), Some(Kuid(id)));
        }
        kunit_expect_eq!(t, s.uid_up(Kuid::INVALID), Kuid::INVALID);
    }

    /// A container nested in the usual one, mapping its 0:1000:1000
    /// (kernel ids 101000..101999).
    fn nested() -> TestUserNamespace {
        TestUserNamespace::new(&[(0, 101_000, 1000)]).expect("test namespace")
    }

    fn nested_mapping_composes(t: &mut Test) {
        let n = nested();
        let s = Shift {
            real: UserNamespace::init(),
            shifted: &n,
            idmap: None,
            memo: None,
        };
        kunit_expect_eq!(t, s.uid_up(Kuid(5)), Kuid(101_005));
        kunit_expect_eq!(t, s.uid_up(Kuid(999)), Kuid(101_999));
        kunit_expect_eq!(t, s.uid_up(Kuid(1000)), Kuid::INVALID);
        kunit_expect_eq!(t, s.uid_down(Kuid(101_005)), Some(Kuid(5)));
        kunit_expect_eq!(t, s.uid_down(Kuid(100_005)), None);
    }

    fn real_superblock_in_a_container(t: &mut Test) {
        // A filesystem mounted inside the usual container, shifted for the
        // nested one: container uid 5 is real kernel uid 100005.
        let (c, n) = (container(), nested());
        let s = Shift {
            real: &c,
            shifted: &n,
            idmap: None,
            memo: None,
        };
        kunit_expect_eq!(t, s.uid_up(Kuid(100_005)), Kuid(101_005));
        kunit_expect_eq!(t, s.uid_up(Kuid(101_005)), Kuid::INVALID);
        kunit_expect_eq!(t, s.uid_up(Kuid(5)), Kuid::INVALID);
        kunit_expect_eq!(t, s.uid_down(Kuid(101_005)), Some(Kuid(100_005)));
    }

    fn multi_extent_mapping(t: &mut Test) {
        let m = TestUserNamespace::new(&[(0, 100_000, 1000), (1000, 300_000, 1000)])
            .expect("test namespace");
        let s = Shift {
            real: UserNamespace::init(),
            shifted: &m,
            idmap: None,
            memo: None,
        };
        kunit_expect_eq!(t, s.uid_up(Kuid(999)), Kuid(100_999));
        kunit_expect_eq!(t, s.uid_up(Kuid(1500)), Kuid(300_500));
        kunit_expect_eq!(t, s.uid_up(Kuid(2000)), Kuid::INVALID);
        kunit_expect_eq!(t, s.uid_down(Kuid(300_500)), Some(Kuid(1500)));
        kunit_expect_eq!(t, s.uid_down(Kuid(200_000)), None);
    }

    fn memo_keeps_a_valid_shift(t: &mut Test) {
        let m = UpMemo::new();
        let calls = core::cell::Cell::new(0);
        let shift = |id| {
            calls.set(calls.get() + 1);
            id + 100_000
        };
        kunit_expect_eq!(t, m.get_or(1000, shift), 101_000);
        kunit_expect_eq!(t, m.get_or(1000, shift), 101_000);
        kunit_expect_eq!(t, calls.get(), 1);
    }

    fn memo_does_not_keep_an_invalid_shift(t: &mut Test) {
        // The namespace's map may be written later: ask again.
        let m = UpMemo::new();
        let calls = core::cell::Cell::new(0);
        let shift = |_| {
            calls.set(calls.get() + 1);
            u32::MAX
        };
        kunit_expect_eq!(t, m.get_or(7, shift), u32::MAX);
        kunit_expect_eq!(t, m.get_or(7, shift), u32::MAX);
        kunit_expect_eq!(t, calls.get(), 2);
        kunit_expect_eq!(t, m.get_or(7, |id| id + 1), 8);
    }

    fn memo_ids_sharing_a_slot_each_get_their_own(t: &mut Test) {
        let m = UpMemo::new();
        let a = 3;
        let b = a + MEMO_SLOTS as u32;
        for _ in 0..2 {
            kunit_expect_eq!(t, m.get_or(a, |id| id * 2), a * 2);
            kunit_expect_eq!(t, m.get_or(b, |id| id * 2), b * 2);
        }
        // An empty memo knows only the invalid id.
        kunit_expect_eq!(t, UpMemo::new().get_or(u32::MAX, |_| 0), u32::MAX);
    }

    fn memo_shifts_as_the_namespaces_do(t: &mut Test) {
        let c = container();
        let memos = UpMemos::new();
        let plain = Shift {
            real: UserNamespace::init(),
            shifted: &c,
            idmap: None,
            memo: None,
        };
        let memoized = Shift {
            memo: Some(&memos),
            ..plain
        };
        for _ in 0..2 {
            for id in [0, 1, 16, 1000, 65_535, 65_536, 70_000, u32::MAX] {
                kunit_expect_eq!(t, memoized.uid_up(Kuid(id)), plain.uid_up(Kuid(id)));
                kunit_expect_eq!(t, memoized.gid_up(Kgid(id)), plain.gid_up(Kgid(id)));
            }
        }
    }

    kunit_suite!(
        "shiftfs_shift",
        [
            memo_keeps_a_valid_shift,
            memo_does_not_keep_an_invalid_shift,
            memo_ids_sharing_a_slot_each_get_their_own,
            memo_shifts_as_the_namespaces_do,
            up_root_is_container_root,
            up_1000_is_container_1000,
            up_last_mapped_id,
            up_first_unmapped_id_is_invalid,
            up_70000_is_invalid,
            up_4294967294_is_invalid,
            up_invalid_stays_invalid,
            down_container_ids,
            down_outside_the_container_is_refused,
            gids_shift_like_uids,
            round_trip_of_mapped_ids,
            identity_in_the_initial_namespace,
            nested_mapping_composes,
            real_superblock_in_a_container,
            multi_extent_mapping,
        ]
    );
}
