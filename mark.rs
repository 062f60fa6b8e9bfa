// SPDX-License-Identifier: GPL-2.0

//! Mark rules: who may mark what, what may be mounted shifted, how deep
//! shiftfs stacks, what a mount may pass through, and what a remount may
//! change.
//!
//! These decide from facts the mount code has gathered (capabilities, the
//! source's filesystem, its stacking depth); each refusal carries the errno
//! and the line for the mount context's log.

use crate::vfs::user_ns::IdExtent;
use kernel::{
    error::code::{EINVAL, ENOMEM, ENOTDIR, EPERM},
    prelude::*,
};

/// `FILESYSTEM_MAX_STACK_DEPTH`: how many stacked filesystems may sit on a
/// real one.
pub(crate) const MAX_STACK_DEPTH: i32 = 2;

/// `passthrough` bit 1: statfs reports the real filesystem's type (as
/// Ubuntu's shiftfs; LXD detects its storage backend by it).
pub(crate) const PASSTHROUGH_STATFS: u32 = 1;
/// `passthrough` bit 2: the btrfs subvolume ioctls reach the real
/// filesystem.
pub(crate) const PASSTHROUGH_IOCTL: u32 = 2;

crate::bool_param!(
    /// Whether a directory may be marked by the `trusted.shiftfs` xattr
    /// (a persistent mark) as well as by a mark mount; off unless the host
    /// administrator turns it on.
    PERSISTENT_MARKS,
    "persistent_marks",
    "Let a directory's trusted.shiftfs xattr mark it for shifting mounts (default off)"
);

/// The xattr of a persistent mark. Only CAP_SYS_ADMIN in the initial user
/// namespace can set or read a `trusted.` xattr, and shiftfs hides them.
pub(crate) const PERSISTENT_XATTR: &core::ffi::CStr = c"trusted.shiftfs";

/// Why a mount is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) err: Error,
    /// The message for the mount context's log.
    pub(crate) why: &'static str,
}

/// What filesystem a source path is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SourceFs {
    /// Not shiftfs.
    Other,
    /// A shiftfs mark mount.
    ShiftfsMark,
    /// A shiftfs shifting mount (a container marking inside it: nesting).
    ShiftfsShifting,
}

/// What is known about the source of `mount -t shiftfs -o mark SRC DST`.
pub(crate) struct MarkSource {
    /// The caller has CAP_SYS_ADMIN over the user namespace of the
    /// superblock the source is on.
    pub(crate) admin: bool,
    pub(crate) is_dir: bool,
    pub(crate) fs: SourceFs,
    /// `s_stack_depth` of the real filesystem the mark will stand on (for a
    /// source on a shifting mount, the one under it).
    pub(crate) real_depth: i32,
}

/// What is known about the source of a shifting mount, `mount -t shiftfs SRC DST`.
pub(crate) struct ShiftSource {
    /// The source is on a shiftfs mark mount.
    pub(crate) marked: bool,
    /// `s_stack_depth` of the real filesystem under the mark.
    pub(crate) real_depth: i32,
}

fn refuse(err: Error, why: &'static str) -> Refusal {
    Refusal { err, why }
}

/// The stacking depth of a shiftfs superblock over a real one of `real_depth`.
fn stacked_depth(real_depth: i32) -> Result<i32, Refusal> {
    let depth = real_depth + 1;
    if depth > MAX_STACK_DEPTH {
        return Err(refuse(EINVAL, "maximum filesystem stacking depth exceeded"));
    }
    Ok(depth)
}

/// Whether the source may be marked; the mark's stacking depth if so.
///
/// Permission is checked first, so that an unprivileged caller learns
/// nothing about paths it may not mark.
pub(crate) fn check_mark(src: &MarkSource) -> Result<i32, Refusal> {
    if !src.admin {
        return Err(refuse(
            EPERM,
            "marking needs CAP_SYS_ADMIN over the source's user namespace",
        ));
    }
    if !src.is_dir {
        return Err(refuse(ENOTDIR, "the mark source must be a directory"));
    }
    if src.fs == SourceFs::ShiftfsMark {
        return Err(refuse(EINVAL, "the source is inside a shiftfs mark mount"));
    }
    stacked_depth(src.real_depth)
}

/// A `passthrough=N` value: the two bits, 0 to 3.
pub(crate) fn check_passthrough(n: u32) -> Result<u32, Refusal> {
    if n & !(PASSTHROUGH_STATFS | PASSTHROUGH_IOCTL) != 0 {
        return Err(refuse(
            EINVAL,
            "passthrough takes 0 to 3 (1: statfs type, 2: btrfs ioctls)",
        ));
    }
    Ok(n)
}

/// Whether a mount may pass `requested` through, standing on one that
/// passes `allowed` (a shifting mount on its mark, a nested mark on the
/// shifting mount it is made in): only a subset.
pub(crate) fn check_passthrough_within(requested: u32, allowed: u32) -> Result<(), Refusal> {
    if requested & !allowed != 0 {
        return Err(refuse(
            EPERM,
            "passthrough may not exceed the passthrough of the mount it stands on",
        ));
    }
    Ok(())
}

/// What a remount (`mount -o remount`) of a shiftfs superblock asks.
pub(crate) struct Remount {
    /// The superblock is a mark.
    pub(crate) of_mark: bool,
    /// `mark` is among the new options.
    pub(crate) mark: bool,
    /// The new `passthrough`, if given.
    pub(crate) passthrough: Option<u32>,
    /// The passthrough of the mark a shifting mount stands on.
    pub(crate) allowed: u32,
    /// The remount makes the superblock writable.
    pub(crate) writable: bool,
    /// The real tree under it is read-only.
    pub(crate) real_readonly: bool,
}

/// Whether a remount may happen: a mark is never remounted, a shifting
/// mount stays one, passes through only what its mark does, and stays
/// read-only over a read-only real tree.
pub(crate) fn check_remount(r: &Remount) -> Result<(), Refusal> {
    if r.of_mark {
        return Err(refuse(EPERM, "a mark cannot be remounted"));
    }
    if r.mark {
        return Err(refuse(
            EPERM,
            "a shifting mount cannot be remounted as a mark",
        ));
    }
    if let Some(p) = r.passthrough {
        check_passthrough_within(p, r.allowed)?;
    }
    if r.writable && r.real_readonly {
        return Err(refuse(EPERM, "the marked tree is read-only"));
    }
    Ok(())
}

/// A range of ids: `count` ids from `first`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IdRange {
    pub(crate) first: u32,
    pub(crate) count: u32,
}

impl IdRange {
    /// One past the last id.
    fn end(self) -> u64 {
        u64::from(self.first) + u64::from(self.count)
    }
}

/// How many `allow=` ranges a mark may name.
pub(crate) const MAX_ALLOW: usize = 8;

/// The value of `allow=FIRST:COUNT`: two decimal numbers, COUNT at least
/// 1, and the last id below 4294967295 (the invalid id).
pub(crate) fn parse_range(v: &[u8]) -> Result<IdRange, Refusal> {
    let bad = || {
        refuse(
            EINVAL,
            "allow takes FIRST:COUNT, two decimal numbers, COUNT at least 1, below 4294967295",
        )
    };
    let number = |s: &[u8]| -> Option<u32> {
        if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        s.iter()
            .try_fold(0u64, |n, d| Some(n * 10 + u64::from(d - b'0')))
            .and_then(|n| u32::try_from(n).ok())
    };
    let mut parts = v.splitn(2, |&c| c == b':');
    let (first, count) = match (parts.next(), parts.next()) {
        (Some(f), Some(c)) => (number(f).ok_or_else(bad)?, number(c).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let r = IdRange { first, count };
    if count == 0 || r.end() > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok(r)
}

/// Whether every id of `r` is in one of `allowed` (which may touch or
/// overlap).
fn covered(r: IdRange, allowed: &[IdRange]) -> bool {
    let (mut at, end) = (u64::from(r.first), r.end());
    while at < end {
        match allowed
            .iter()
            .find(|a| u64::from(a.first) <= at && at < a.end())
        {
            Some(a) => at = a.end(),
            None => return false,
        }
    }
    true
}

/// The kernel ids of range `r` of a namespace with map `extents`; EINVAL
/// unless the namespace maps every id of it.
pub(crate) fn to_kernel(r: IdRange, extents: &[IdExtent]) -> Result<KVec<IdRange>, Refusal> {
    let mut out = KVec::new();
    let mut mapped = 0u64;
    for e in extents {
        let lo = u64::from(r.first).max(u64::from(e.first));
        let hi = r.end().min(u64::from(e.first) + u64::from(e.count));
        if lo < hi {
            let first = u64::from(e.lower_first) + (lo - u64::from(e.first));
            out.push(
                IdRange {
                    first: first as u32,
                    count: (hi - lo) as u32,
                },
                GFP_KERNEL,
            )
            .map_err(|_| refuse(ENOMEM, "out of memory"))?;
            mapped += hi - lo;
        }
    }
    if mapped != u64::from(r.count) {
        return Err(refuse(
            EINVAL,
            "allow= names ids the caller's user namespace does not map",
        ));
    }
    Ok(out)
}

/// Whether a nested mark's `allow=` ranges (kernel ids) stay inside those
/// of the mount it is made in: a mark may only narrow.
pub(crate) fn check_narrowing(new: &[IdRange], outer: &[IdRange]) -> Result<(), Refusal> {
    if new.iter().all(|r| covered(*r, outer)) {
        Ok(())
    } else {
        Err(refuse(
            EPERM,
            "allow= may only narrow the ranges of the mount the mark is made in",
        ))
    }
}

/// Whether a user namespace whose map has `extents` may mount a mark
/// restricted to `allowed` (kernel ids) shifted: it must map ids, and
/// only ids inside them. The first extent outside, if any, for the log.
pub(crate) fn check_userns_within(
    extents: &[IdExtent],
    allowed: &[IdRange],
) -> Result<(), (Refusal, Option<IdExtent>)> {
    if extents.is_empty() {
        return Err((
            refuse(
                EPERM,
                "the mark is restricted and this user namespace maps no ids",
            ),
            None,
        ));
    }
    for e in extents {
        let r = IdRange {
            first: e.lower_first,
            count: e.count,
        };
        if !covered(r, allowed) {
            return Err((
                refuse(
                    EPERM,
                    "the mark allows only user namespaces mapping into its allow= ranges",
                ),
                Some(*e),
            ));
        }
    }
    Ok(())
}

/// What a persistent mark's xattr says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PersistentMark {
    /// The host id ranges a shifting mount's user namespace must map
    /// into; empty for any.
    pub(crate) allow: KVec<IdRange>,
    /// What shifting mounts of it may pass through.
    pub(crate) passthrough: u32,
}

/// The value of a persistent mark's xattr, parsed strictly: `v1`, then
/// each of ` allow=FIRST:COUNT` (up to eight) and ` passthrough=N` (once),
/// separated by single spaces, nothing else.
pub(crate) fn parse_persistent(v: &[u8]) -> Result<PersistentMark, Refusal> {
    let malformed = |why| refuse(EINVAL, why);
    let mut tokens = v.split(|&c| c == b' ');
    if tokens.next() != Some(&b"v1"[..]) {
        return Err(malformed("its value must start with the version, v1"));
    }
    let mut mark = PersistentMark {
        allow: KVec::new(),
        passthrough: 0,
    };
    let mut passthrough = None;
    for t in tokens {
        if let Some(r) = t.strip_prefix(b"allow=") {
            if mark.allow.len() == MAX_ALLOW {
                return Err(malformed("at most 8 allow= ranges"));
            }
            mark.allow
                .push(parse_range(r)?, GFP_KERNEL)
                .map_err(|_| refuse(ENOMEM, "out of memory"))?;
        } else if let Some(n) = t.strip_prefix(b"passthrough=") {
            let n = match n {
                [d @ b'0'..=b'3'] if passthrough.is_none() => u32::from(d - b'0'),
                _ => return Err(malformed("passthrough= takes one of 0 to 3, once")),
            };
            passthrough = Some(n);
        } else {
            return Err(malformed(
                "after v1 come only allow=FIRST:COUNT and passthrough=N, one space apart",
            ));
        }
    }
    mark.passthrough = passthrough.unwrap_or(0);
    Ok(mark)
}

/// Whether the source may be mounted shifted; the mount's stacking depth if so.
pub(crate) fn check_shift(src: &ShiftSource) -> Result<i32, Refusal> {
    if !src.marked {
        return Err(refuse(EPERM, "the source is not on a shiftfs mark mount"));
    }
    stacked_depth(src.real_depth)
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{kunit_expect, kunit_expect_eq, kunit_suite, vfs::kunit::Test};

    fn admin_dir() -> MarkSource {
        MarkSource {
            admin: true,
            is_dir: true,
            fs: SourceFs::Other,
            real_depth: 0,
        }
    }

    fn errno(r: Result<i32, Refusal>) -> Result<i32, Error> {
        r.map_err(|r| r.err)
    }

    fn admin_marks_a_directory(t: &mut Test) {
        kunit_expect_eq!(t, check_mark(&admin_dir()), Ok(1));
    }

    fn mark_without_cap_sys_admin_is_eperm(t: &mut Test) {
        let src = MarkSource {
            admin: false,
            ..admin_dir()
        };
        kunit_expect_eq!(t, errno(check_mark(&src)), Err(EPERM));
    }

    fn mark_of_a_file_is_enotdir(t: &mut Test) {
        let src = MarkSource {
            is_dir: false,
            ..admin_dir()
        };
        kunit_expect_eq!(t, errno(check_mark(&src)), Err(ENOTDIR));
    }

    fn permission_is_checked_before_anything_else(t: &mut Test) {
        let src = MarkSource {
            admin: false,
            is_dir: false,
            fs: SourceFs::ShiftfsMark,
            real_depth: 5,
        };
        kunit_expect_eq!(t, errno(check_mark(&src)), Err(EPERM));
    }

    fn mark_inside_a_mark_is_einval(t: &mut Test) {
        let src = MarkSource {
            fs: SourceFs::ShiftfsMark,
            ..admin_dir()
        };
        kunit_expect_eq!(t, errno(check_mark(&src)), Err(EINVAL));
    }

    fn mark_inside_a_shifting_mount_nests(t: &mut Test) {
        // The nested mark stands on the real filesystem under the outer
        // mark: depth does not grow.
        let src = MarkSource {
            fs: SourceFs::ShiftfsShifting,
            ..admin_dir()
        };
        kunit_expect_eq!(t, check_mark(&src), Ok(1));
    }

    fn mark_over_overlayfs_stacks_to_2(t: &mut Test) {
        let src = MarkSource {
            real_depth: 1,
            ..admin_dir()
        };
        kunit_expect_eq!(t, check_mark(&src), Ok(2));
        let src = MarkSource {
            real_depth: 2,
            ..admin_dir()
        };
        kunit_expect_eq!(t, errno(check_mark(&src)), Err(EINVAL));
    }

    fn shifting_a_marked_path(t: &mut Test) {
        let src = ShiftSource {
            marked: true,
            real_depth: 0,
        };
        kunit_expect_eq!(t, check_shift(&src), Ok(1));
    }

    fn shifting_an_unmarked_path_is_eperm(t: &mut Test) {
        for real_depth in [0, 1, 2] {
            let src = ShiftSource {
                marked: false,
                real_depth,
            };
            kunit_expect_eq!(t, errno(check_shift(&src)), Err(EPERM));
        }
    }

    fn shifting_past_the_stacking_limit_is_einval(t: &mut Test) {
        let ok = ShiftSource {
            marked: true,
            real_depth: MAX_STACK_DEPTH - 1,
        };
        kunit_expect_eq!(t, check_shift(&ok), Ok(MAX_STACK_DEPTH));
        let deep = ShiftSource {
            marked: true,
            real_depth: MAX_STACK_DEPTH,
        };
        kunit_expect_eq!(t, errno(check_shift(&deep)), Err(EINVAL));
    }

    fn every_refusal_explains_itself(t: &mut Test) {
        let refusals = [
            check_mark(&MarkSource {
                admin: false,
                ..admin_dir()
            }),
            check_mark(&MarkSource {
                is_dir: false,
                ..admin_dir()
            }),
            check_mark(&MarkSource {
                fs: SourceFs::ShiftfsMark,
                ..admin_dir()
            }),
            check_shift(&ShiftSource {
                marked: false,
                real_depth: 0,
            }),
            check_shift(&ShiftSource {
                marked: true,
                real_depth: 2,
            }),
        ];
        for (i, r) in refusals.iter().enumerate() {
            match r {
                Err(r) => kunit_expect!(t, !r.why.is_empty(), "refusal {i} has no message"),
                Ok(_) => kunit_expect!(t, false, "case {i} was not refused"),
            }
        }
    }

    fn passthrough_takes_0_to_3(t: &mut Test) {
        for n in 0..=3 {
            kunit_expect_eq!(t, check_passthrough(n), Ok(n));
        }
        for n in [4, 5, 7, 8, u32::MAX] {
            kunit_expect_eq!(t, errno(check_passthrough(n).map(|_| 0)), Err(EINVAL));
        }
    }

    fn passthrough_only_within_what_it_stands_on(t: &mut Test) {
        for allowed in 0..=3 {
            for requested in 0..=3 {
                let ok = requested & !allowed == 0;
                let r = check_passthrough_within(requested, allowed).map_err(|r| r.err);
                kunit_expect_eq!(t, r, if ok { Ok(()) } else { Err(EPERM) });
            }
        }
    }

    fn shifting(passthrough: Option<u32>) -> Remount {
        Remount {
            of_mark: false,
            mark: false,
            passthrough,
            allowed: 3,
            writable: false,
            real_readonly: false,
        }
    }

    fn a_mark_is_never_remounted(t: &mut Test) {
        let r = Remount {
            of_mark: true,
            ..shifting(None)
        };
        kunit_expect_eq!(t, check_remount(&r).map_err(|r| r.err), Err(EPERM));
        let r = Remount {
            of_mark: true,
            mark: true,
            ..shifting(None)
        };
        kunit_expect_eq!(t, check_remount(&r).map_err(|r| r.err), Err(EPERM));
    }

    fn a_shifting_mount_stays_one(t: &mut Test) {
        let r = Remount {
            mark: true,
            ..shifting(None)
        };
        kunit_expect_eq!(t, check_remount(&r).map_err(|r| r.err), Err(EPERM));
    }

    fn remount_passthrough_within_the_mark(t: &mut Test) {
        kunit_expect_eq!(t, check_remount(&shifting(Some(3))), Ok(()));
        kunit_expect_eq!(t, check_remount(&shifting(Some(0))), Ok(()));
        let r = Remount {
            allowed: 1,
            ..shifting(Some(2))
        };
        kunit_expect_eq!(t, check_remount(&r).map_err(|r| r.err), Err(EPERM));
    }

    fn remount_stays_read_only_over_a_read_only_tree(t: &mut Test) {
        let r = Remount {
            writable: true,
            real_readonly: true,
            ..shifting(None)
        };
        kunit_expect_eq!(t, check_remount(&r).map_err(|r| r.err), Err(EPERM));
        let r = Remount {
            writable: true,
            ..shifting(None)
        };
        kunit_expect_eq!(t, check_remount(&r), Ok(()));
    }

    fn range(first: u32, count: u32) -> IdRange {
        IdRange { first, count }
    }

    fn extent(first: u32, lower_first: u32, count: u32) -> IdExtent {
        IdExtent {
            first,
            lower_first,
            count,
        }
    }

    fn allow_parses_first_and_count(t: &mut Test) {
        kunit_expect_eq!(t, parse_range(b"100000:65536"), Ok(range(100_000, 65_536)));
        kunit_expect_eq!(t, parse_range(b"0:1"), Ok(range(0, 1)));
        kunit_expect_eq!(t, parse_range(b"4294967293:1"), Ok(range(4_294_967_293, 1)));
    }

    fn allow_is_parsed_strictly(t: &mut Test) {
        for bad in [
            &b""[..],
            b":",
            b"1",
            b"1:",
            b":1",
            b"1:0",
            b"-1:5",
            b"+1:5",
            b" 1:5",
            b"1:5 ",
            b"1:5:6",
            b"0x10:5",
            b"1e3:5",
            b"4294967295:1",
            b"4294967294:2",
            b"99999999999:1",
            b"1:4294967296",
            b"00000000001:1",
        ] {
            kunit_expect_eq!(t, parse_range(bad).map_err(|r| r.err), Err(EINVAL));
        }
    }

    fn covered_by_touching_ranges(t: &mut Test) {
        let allowed = [range(100, 10), range(110, 5), range(200, 1)];
        kunit_expect!(t, covered(range(100, 15), &allowed));
        kunit_expect!(t, covered(range(105, 10), &allowed));
        kunit_expect!(t, covered(range(200, 1), &allowed));
        kunit_expect!(t, !covered(range(99, 2), &allowed));
        kunit_expect!(t, !covered(range(114, 2), &allowed));
        kunit_expect!(t, !covered(range(150, 1), &allowed));
        kunit_expect!(t, !covered(range(0, u32::MAX), &allowed));
    }

    fn ranges_become_kernel_ids_through_the_map(t: &mut Test) {
        let init = [extent(0, 0, u32::MAX)];
        kunit_expect_eq!(
            t,
            to_kernel(range(100_000, 65_536), &init).as_deref(),
            Ok(&[range(100_000, 65_536)][..])
        );
        // A container's own ids, split over two extents.
        let split = [extent(0, 100_000, 1000), extent(1000, 300_000, 1000)];
        kunit_expect_eq!(
            t,
            to_kernel(range(500, 1000), &split).as_deref(),
            Ok(&[range(100_500, 500), range(300_000, 500)][..])
        );
        kunit_expect_eq!(
            t,
            to_kernel(range(1500, 1000), &split).map_err(|r| r.err),
            Err(EINVAL)
        );
        kunit_expect_eq!(
            t,
            to_kernel(range(0, 1), &[]).map_err(|r| r.err),
            Err(EINVAL)
        );
    }

    fn a_nested_mark_may_only_narrow(t: &mut Test) {
        let outer = [range(100_000, 65_536)];
        kunit_expect_eq!(t, check_narrowing(&[range(101_000, 1000)], &outer), Ok(()));
        kunit_expect_eq!(t, check_narrowing(&outer, &outer), Ok(()));
        kunit_expect_eq!(
            t,
            check_narrowing(&[range(165_000, 1000)], &outer).map_err(|r| r.err),
            Err(EPERM)
        );
        kunit_expect_eq!(
            t,
            check_narrowing(&[range(101_000, 10), range(0, 1)], &outer).map_err(|r| r.err),
            Err(EPERM)
        );
    }

    fn a_user_namespace_must_map_inside_the_ranges(t: &mut Test) {
        let allowed = [range(100_000, 65_536)];
        let ok = [extent(0, 100_000, 65_536)];
        kunit_expect_eq!(
            t,
            check_userns_within(&ok, &allowed).map_err(|_| ()),
            Ok(())
        );
        let nested = [extent(0, 101_000, 1000)];
        kunit_expect_eq!(
            t,
            check_userns_within(&nested, &allowed).map_err(|_| ()),
            Ok(())
        );
        let wider = [extent(0, 100_000, 65_537)];
        let r = check_userns_within(&wider, &allowed);
        kunit_expect_eq!(
            t,
            r.map_err(|(r, e)| (r.err, e)),
            Err((EPERM, Some(wider[0])))
        );
        let host = [extent(0, 0, u32::MAX)];
        kunit_expect!(t, check_userns_within(&host, &allowed).is_err());
        let second = [extent(0, 100_000, 1), extent(1, 0, 1)];
        kunit_expect_eq!(
            t,
            check_userns_within(&second, &allowed).map_err(|(r, e)| (r.err, e)),
            Err((EPERM, Some(second[1])))
        );
        kunit_expect_eq!(
            t,
            check_userns_within(&[], &allowed).map_err(|(r, e)| (r.err, e)),
            Err((EPERM, None))
        );
    }

    fn persistent_mark_values(t: &mut Test) {
        let m = parse_persistent(b"v1").expect("v1");
        kunit_expect!(t, m.allow.is_empty());
        kunit_expect_eq!(t, m.passthrough, 0);
        let m =
            parse_persistent(b"v1 allow=100000:65536 allow=300000:10 passthrough=3").expect("full");
        kunit_expect_eq!(
            t,
            &m.allow[..],
            &[range(100_000, 65_536), range(300_000, 10)][..]
        );
        kunit_expect_eq!(t, m.passthrough, 3);
    }

    fn malformed_persistent_marks_are_einval(t: &mut Test) {
        for bad in [
            &b""[..],
            b"v2",
            b"V1",
            b"v1 ",
            b" v1",
            b"v1  allow=1:1",
            b"v1\0",
            b"v1\n",
            b"v1 allow=1",
            b"v1 allow=0:0",
            b"v1 allow=1:1,allow=2:2",
            b"v1 passthrough=4",
            b"v1 passthrough=1 passthrough=1",
            b"v1 mark",
            b"v1 allow=1:1 allow=2:1 allow=3:1 allow=4:1 allow=5:1 allow=6:1 allow=7:1 allow=8:1 allow=9:1",
        ] {
            kunit_expect_eq!(t, parse_persistent(bad).map_err(|r| r.err), Err(EINVAL));
        }
    }

    kunit_suite!(
        "shiftfs_mark_rules",
        [
            persistent_mark_values,
            malformed_persistent_marks_are_einval,
            allow_parses_first_and_count,
            allow_is_parsed_strictly,
            covered_by_touching_ranges,
            ranges_become_kernel_ids_through_the_map,
            a_nested_mark_may_only_narrow,
            a_user_namespace_must_map_inside_the_ranges,
            admin_marks_a_directory,
            mark_without_cap_sys_admin_is_eperm,
            mark_of_a_file_is_enotdir,
            permission_is_checked_before_anything_else,
            mark_inside_a_mark_is_einval,
            mark_inside_a_shifting_mount_nests,
            mark_over_overlayfs_stacks_to_2,
            shifting_a_marked_path,
            shifting_an_unmarked_path_is_eperm,
            shifting_past_the_stacking_limit_is_einval,
            every_refusal_explains_itself,
            passthrough_takes_0_to_3,
            passthrough_only_within_what_it_stands_on,
            a_mark_is_never_remounted,
            a_shifting_mount_stays_one,
            remount_passthrough_within_the_mark,
            remount_stays_read_only_over_a_read_only_tree,
        ]
    );
}
