// SPDX-License-Identifier: GPL-2.0

//! Mount options, and the two kinds of mount: a mark (host admin, unshifted)
//! and a shifting mount (container, on a marked path).

use crate::{
    mark::{self, MarkSource, Refusal, ShiftSource, SourceFs},
    param_table,
    shift::Shift,
    vfs::{
        acl::PosixAcl,
        bindings::CAP_SYS_RESOURCE,
        cred::{Credential, FsidCache},
        fs_context::{self, FsContext, Parameter},
        fs_type::{FileSystem, FS_USERNS_MOUNT},
        param::{self, Spec},
        path::{capable_sys_admin, Path},
        stacked,
        super_block::{NewSuperBlock, SuperBlock},
        user_ns::{Kgid, Kuid},
    },
    xattr, SHIFTFS_TYPE,
};
use kernel::{
    c_str,
    error::code::{EINVAL, ENOPARAM, EPERM},
    prelude::*,
    str::CStr,
    types::ARef,
};

/// The shiftfs filesystem type.
pub(crate) struct Shiftfs;

/// Option numbers of [`Shiftfs::PARAMS`].
const OPT_MARK: u8 = 0;

impl FileSystem for Shiftfs {
    const NAME: &'static CStr = c_str!("shiftfs");
    const FLAGS: i32 = FS_USERNS_MOUNT;
    const PARAMS: param::Table = param_table![Spec::flag(c_str!("mark"), OPT_MARK)];
    type Context = MountRequest;
    const MAGIC: usize = 0x6a65_6a62;
    type SbInfo = SbInfo;

    fn fill_super(sb: &NewSuperBlock<'_, Self>) -> Result {
        let info = sb.info();
        sb.set_params(info.depth, info.real.super_block());
        if info.mark {
            // Nothing executes or gains privileges through a mark.
            sb.forbid_exec();
        }
        let root = crate::inode::get(sb.super_block(), info.real.inode())?;
        sb.set_root(root, info.real.dentry())
    }

    fn real_root(info: &SbInfo) -> &Path {
        &info.real
    }

    fn creds(sb: &SuperBlock, info: &SbInfo) -> Result<ARef<Credential>> {
        crate::cred::creds(sb, info)
    }

    fn made_creds(sb: &SuperBlock, info: &SbInfo) -> Option<ARef<Credential>> {
        crate::cred::made_creds(sb, info)
    }

    fn shift_ids(sb: &SuperBlock, real_sb: &SuperBlock, uid: Kuid, gid: Kgid) -> (Kuid, Kgid) {
        let shift = shift_of(sb, real_sb);
        (shift.uid_up(uid), shift.gid_up(gid))
    }

    fn acl_up(
        sb: &SuperBlock,
        real_sb: &SuperBlock,
        acl: &PosixAcl,
        for_permission: bool,
    ) -> Result<ARef<PosixAcl>> {
        let shift = shift_of(sb, real_sb);
        if for_permission {
            xattr::acl_up_for_permission(acl, &shift)
        } else {
            xattr::acl_up(acl, &shift)
        }
    }

    fn acl_down(sb: &SuperBlock, real_sb: &SuperBlock, acl: &PosixAcl) -> Result<ARef<PosixAcl>> {
        xattr::acl_down(acl, &shift_of(sb, real_sb))
    }

    fn xattr_translated(name: &CStr) -> bool {
        name.as_bytes() == xattr::CAPS.as_bytes()
    }

    fn xattr_up(
        sb: &SuperBlock,
        real_sb: &SuperBlock,
        _name: &CStr,
        value: &[u8],
    ) -> Result<KVec<u8>> {
        xattr::caps_value_up(value, &shift_of(sb, real_sb))
    }

    fn xattr_down(
        sb: &SuperBlock,
        real_sb: &SuperBlock,
        _name: &CStr,
        value: &[u8],
    ) -> Result<KVec<u8>> {
        xattr::caps_value_down(value, &shift_of(sb, real_sb))
    }

    fn uid_down(sb: &SuperBlock, real_sb: &SuperBlock, uid: Kuid) -> Option<Kuid> {
        shift_of(sb, real_sb).uid_down(uid)
    }

    fn gid_down(sb: &SuperBlock, real_sb: &SuperBlock, gid: Kgid) -> Option<Kgid> {
        shift_of(sb, real_sb).gid_down(gid)
    }

    fn show_options(info: &SbInfo) -> &'static CStr {
        if info.mark {
            c_str!(",mark")
        } else {
            c_str!("")
        }
    }
}

/// The shift between a shiftfs superblock and the real one under it.
fn shift_of<'a>(sb: &'a SuperBlock, real_sb: &'a SuperBlock) -> Shift<'a> {
    Shift {
        real: real_sb.user_ns(),
        shifted: sb.user_ns(),
    }
}

/// What a shiftfs superblock keeps.
#[pin_data]
pub(crate) struct SbInfo {
    /// A mark (the tree unshifted, for the host) or a shifting mount.
    mark: bool,
    /// The real directory this superblock stands on.
    pub(crate) real: Path,
    /// The mark creator's credentials, without CAP_SYS_RESOURCE (no reserved
    /// space, no quota override): every call into the real filesystem runs
    /// with these (cred.rs), fsuid and fsgid set per caller; the variants
    /// made are kept.
    #[pin]
    pub(crate) creator: FsidCache,
    /// `s_stack_depth`: the real filesystem's plus one.
    depth: i32,
}

impl SbInfo {
    fn new(
        mark: bool,
        real: Path,
        creator: ARef<Credential>,
        depth: i32,
    ) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(Self {
                mark,
                real,
                creator <- FsidCache::new(creator),
                depth,
            }),
            GFP_KERNEL,
        )
    }
}

/// What a `mount -t shiftfs` request has asked for so far.
#[derive(Default)]
pub(crate) struct MountRequest {
    /// `-o mark`: mark the source as shiftable instead of shifting it.
    mark: bool,
}

impl fs_context::Context<Shiftfs> for MountRequest {
    fn new(_fc: &FsContext<Shiftfs>) -> Result<Self> {
        Ok(Self::default())
    }

    fn parse_param(&mut self, fc: &FsContext<Shiftfs>, param: &Parameter) -> Result {
        match fc.parse(param)? {
            // Giving `mark` twice asks for the same thing twice.
            OPT_MARK => self.mark = true,
            _ => return Err(ENOPARAM),
        }
        Ok(())
    }

    fn get_tree(&mut self, fc: &FsContext<Shiftfs>) -> Result {
        let source = fc
            .source()
            .ok_or_else(|| fc.fail(EINVAL, format_args!("no source given")))?;
        let path = Path::lookup(source)
            .map_err(|e| fc.fail(e, format_args!("cannot look up {source}")))?;
        let refused = |r: Refusal| fc.fail(r.err, format_args!("{source}: {}", r.why));
        // Only a shiftfs root without a real directory under it would get
        // here, which fill_super never makes; say so rather than fail mute.
        let no_real = || fc.fail(EINVAL, format_args!("{source}: no real directory under it"));
        let sb = path.super_block();
        let on = sb.info::<Shiftfs>(&SHIFTFS_TYPE);
        if self.mark {
            // A mark inside a shifting mount (root of a container marking
            // for a nested one) stands on the real directory under it, with
            // the outer mark creator's credentials: depth does not grow, and
            // the nested mount's ids are shifted from the real ones.
            let outer = on.filter(|info| !info.mark);
            let depth = mark::check_mark(&MarkSource {
                admin: capable_sys_admin(sb.user_ns()),
                is_dir: path.is_dir(),
                fs: match on {
                    None => SourceFs::Other,
                    Some(info) if info.mark => SourceFs::ShiftfsMark,
                    Some(_) => SourceFs::ShiftfsShifting,
                },
                idmapped: path.is_idmapped(),
                real_depth: outer.map_or(sb.stack_depth(), |o| o.real.super_block().stack_depth()),
            })
            .map_err(refused)?;
            let (real, creator) = match outer {
                None => (path, Credential::current_without_cap(CAP_SYS_RESOURCE)?),
                Some(o) => (
                    stacked::real_below::<Shiftfs>(&path, &SHIFTFS_TYPE).ok_or_else(no_real)?,
                    o.creator.base().clone(),
                ),
            };
            return fc.get_tree_nodev(SbInfo::new(true, real, creator, depth)?);
        }
        // A shifting mount stands on the real directory under the marked
        // source, with the mark creator's credentials: one stacking level,
        // whatever the depth of marks and shifting mounts above it.
        let marked = on.filter(|info| info.mark);
        let depth = mark::check_shift(&ShiftSource {
            marked: marked.is_some(),
            real_depth: marked.map_or(sb.stack_depth(), |m| m.real.super_block().stack_depth()),
        })
        .map_err(refused)?;
        // `check_shift` refused an unmarked source.
        let mark_info =
            marked.ok_or_else(|| fc.fail(EPERM, format_args!("{source}: not marked")))?;
        let real = stacked::real_below::<Shiftfs>(&path, &SHIFTFS_TYPE).ok_or_else(no_real)?;
        let creator = mark_info.creator.base().clone();
        fc.get_tree_nodev(SbInfo::new(false, real, creator, depth)?)
    }
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{
        kunit_expect, kunit_expect_eq, kunit_suite,
        vfs::{fs_context::OwnedFsContext, kunit::Test},
        SHIFTFS_TYPE,
    };
    use kernel::error::code::EINVAL;

    fn request() -> OwnedFsContext<Shiftfs> {
        OwnedFsContext::new(&SHIFTFS_TYPE).expect("fs_context_for_mount(shiftfs)")
    }

    fn no_options_is_a_shifting_mount(t: &mut Test) {
        kunit_expect!(t, !request().data().mark);
    }

    fn mark_is_a_flag(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c_str!("mark"), None), Ok(()));
        kunit_expect!(t, fc.data().mark);
    }

    fn mark_twice_is_mark(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c_str!("mark"), None), Ok(()));
        kunit_expect_eq!(t, fc.parse(c_str!("mark"), None), Ok(()));
        kunit_expect!(t, fc.data().mark);
    }

    fn mark_with_a_value_is_einval(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c_str!("mark"), Some(b"1")), Err(EINVAL));
        kunit_expect!(t, !fc.data().mark);
    }

    fn unknown_key_is_einval(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c_str!("bogus"), None), Err(EINVAL));
        kunit_expect_eq!(t, fc.parse(c_str!("bogus"), Some(b"x")), Err(EINVAL));
        kunit_expect_eq!(t, fc.parse(c_str!("marks"), None), Err(EINVAL));
        kunit_expect_eq!(t, fc.parse(c_str!("MARK"), None), Err(EINVAL));
    }

    fn empty_key_is_einval(t: &mut Test) {
        kunit_expect_eq!(t, request().parse(c_str!(""), None), Err(EINVAL));
    }

    fn source_is_left_to_the_vfs(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c_str!("source"), Some(b"/srv")), Ok(()));
        // A second source is the VFS's "Multiple sources" error.
        kunit_expect_eq!(t, fc.parse(c_str!("source"), Some(b"/srv")), Err(EINVAL));
        kunit_expect!(t, !fc.data().mark);
    }

    fn unknown_key_leaves_mark_alone(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c_str!("mark"), None), Ok(()));
        kunit_expect_eq!(t, fc.parse(c_str!("nomark"), None), Err(EINVAL));
        kunit_expect!(t, fc.data().mark);
    }

    kunit_suite!(
        "shiftfs_mount_options",
        [
            no_options_is_a_shifting_mount,
            mark_is_a_flag,
            mark_twice_is_mark,
            mark_with_a_value_is_einval,
            unknown_key_is_einval,
            empty_key_is_einval,
            source_is_left_to_the_vfs,
            unknown_key_leaves_mark_alone,
        ]
    );
}
