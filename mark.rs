// SPDX-License-Identifier: GPL-2.0

//! Mark rules: who may mark what, what may be mounted shifted, how deep
//! shiftfs stacks, what a mount may pass through, and what a remount may
//! change.
//!
//! These decide from facts the mount code has gathered (capabilities, the
//! source's filesystem, its stacking depth); each refusal carries the errno
//! and the line for the mount context's log.

use kernel::{
    error::code::{EINVAL, ENOTDIR, EPERM},
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
    /// The source is on an idmapped mount.
    pub(crate) idmapped: bool,
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
    if src.idmapped {
        return Err(refuse(EINVAL, "the source is on an idmapped mount"));
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
            idmapped: false,
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
            idmapped: true,
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

    fn mark_on_an_idmapped_mount_is_einval(t: &mut Test) {
        let src = MarkSource {
            idmapped: true,
            ..admin_dir()
        };
        kunit_expect_eq!(t, errno(check_mark(&src)), Err(EINVAL));
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
            check_mark(&MarkSource {
                idmapped: true,
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

    kunit_suite!(
        "shiftfs_mark_rules",
        [
            admin_marks_a_directory,
            mark_without_cap_sys_admin_is_eperm,
            mark_of_a_file_is_enotdir,
            permission_is_checked_before_anything_else,
            mark_inside_a_mark_is_einval,
            mark_inside_a_shifting_mount_nests,
            mark_on_an_idmapped_mount_is_einval,
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
