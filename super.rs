// SPDX-License-Identifier: GPL-2.0

//! Mounting: the options, the two kinds of mount (a mark, by the host
//! admin, unshifted; a shifting mount, by a container, on a marked path),
//! what a superblock keeps, and the superblock operations.

use crate::{
    cred::CreatorCreds,
    inode,
    mark::{self, MarkSource, Refusal, Remount, ShiftSource, SourceFs, PASSTHROUGH_STATFS},
    param_table,
    vfs::{
        cred::{Capability, Credential},
        dentry::Dentry,
        fs_context::{self, FsContext, Parameter},
        fs_type::{FileSystem, Type, FS_USERNS_MOUNT},
        param::{self, Spec},
        path::Path,
        show,
        super_block::{Kstatfs, NewSuperBlock, SeqFile, SuperBlock},
        ARef,
    },
};
use core::{
    ffi::CStr,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{
    error::code::{EINVAL, ENOPARAM, EPERM},
    prelude::*,
};

/// The shiftfs filesystem type.
pub(crate) struct Shiftfs;

/// `SHIFTFS_MAGIC`: statfs's `f_type` of shiftfs, as Ubuntu's shiftfs
/// reports it (runtimes recognise shiftfs by it).
pub(crate) const SHIFTFS_MAGIC: usize = 0x6a65_6a62;

/// Option numbers of [`Shiftfs::PARAMS`].
const OPT_MARK: u8 = 0;
const OPT_PASSTHROUGH: u8 = 1;

impl FileSystem for Shiftfs {
    const NAME: &'static CStr = c"shiftfs";
    const FLAGS: i32 = FS_USERNS_MOUNT;
    const PARAMS: param::Table = param_table![
        Spec::flag(c"mark", OPT_MARK),
        Spec::u32(c"passthrough", OPT_PASSTHROUGH),
    ];
    type Context = MountRequest;
    const MAGIC: usize = SHIFTFS_MAGIC;
    type Info = Instance;
    // A shiftfs inode nothing refers to is not kept: it would hold its real
    // inode, and with it the blocks of a file deleted below (or replaced by
    // a rename), until memory pressure. The real inode has its own cache; a
    // new lookup finds it there.
    const KEEP_UNUSED_INODES: bool = false;

    fn fs_type() -> &'static Type {
        &crate::SHIFTFS_TYPE
    }

    fn fill_super(sb: &NewSuperBlock<'_, Self>) -> Result {
        let info = sb.info();
        sb.set_stack_depth(info.depth);
        sb.inherit_limits(info.real.super_block());
        if info.mark {
            // Nothing executes or gains privileges through a mark.
            sb.forbid_exec();
        } else {
            // What the real mount forbids, the shifting mount forbids too,
            // and its mounts cannot undo it.
            let (noexec, nodev) = info.real.mount_forbids();
            if info.real_readonly {
                sb.set_readonly();
            }
            if noexec {
                sb.set_noexec();
            }
            if nodev {
                sb.set_nodev();
            }
        }
        let root = inode::get(sb.super_block(), info.real.inode())?;
        sb.set_root(root, info.real.dentry())
    }

    /// The real filesystem's figures, with shiftfs's own type unless the
    /// mount passes the real one through.
    fn statfs(dentry: &Dentry<Self>, buf: &mut Kstatfs) -> Result {
        let info = dentry.super_block().info();
        info.real.statfs(buf)?;
        if info.passthrough() & PASSTHROUGH_STATFS == 0 {
            buf.set_type(SHIFTFS_MAGIC);
        }
        Ok(())
    }

    fn show_options(sb: &SuperBlock<Self>, m: &mut SeqFile) -> Result {
        let info = sb.info();
        if info.mark {
            m.print(format_args!(",mark"));
        }
        let passthrough = info.passthrough();
        if passthrough != 0 {
            m.print(format_args!(",passthrough={passthrough}"));
        }
        Ok(())
    }

    /// Writes back the real filesystem, whose pages and metadata all of a
    /// shiftfs file's are.
    fn sync_fs(sb: &SuperBlock<Self>, wait: bool) -> Result {
        if !wait {
            // The waiting pass that follows does the work.
            return Ok(());
        }
        sb.info().real.super_block().sync()
    }
}

/// What a shiftfs superblock keeps: one mark or shifting mount.
#[pin_data]
pub(crate) struct Instance {
    /// A mark (the tree unshifted, for the host) or a shifting mount.
    mark: bool,
    /// The real directory this superblock stands on.
    pub(crate) real: Path,
    /// The mark creator's credentials, without CAP_SYS_RESOURCE (no
    /// reserved space, no quota override), and their per-caller variants
    /// (cred.rs).
    #[pin]
    pub(crate) creds: CreatorCreds,
    /// `s_stack_depth`: the real filesystem's plus one.
    depth: i32,
    /// What the mount passes through (`passthrough=N`, mark.rs); a
    /// remount may change it.
    passthrough: AtomicU32,
    /// What the mark a shifting mount stands on passes through (a mark's
    /// own, for a mark).
    allowed: u32,
    /// The real mount or filesystem is read-only.
    real_readonly: bool,
}

impl Instance {
    fn new(
        mark: bool,
        real: Path,
        creator: ARef<Credential>,
        depth: i32,
        passthrough: u32,
        allowed: u32,
    ) -> Result<Pin<KBox<Self>>> {
        let real_readonly = real.is_readonly();
        KBox::pin_init(
            pin_init!(Self {
                mark,
                real,
                creds <- CreatorCreds::new(creator),
                depth,
                passthrough: AtomicU32::new(passthrough),
                allowed,
                real_readonly,
            }),
            GFP_KERNEL,
        )
    }

    /// What the mount passes through now.
    pub(crate) fn passthrough(&self) -> u32 {
        self.passthrough.load(Ordering::Relaxed)
    }
}

/// The real path under `path`, a path on shiftfs superblock `on`.
fn real_below(path: &Path, on: &SuperBlock<Shiftfs>) -> Result<Path> {
    let dentry = path.dentry().downcast::<Shiftfs>().ok_or(EINVAL)?;
    Path::new(on.info().real.mount(), dentry.real())
}

/// What a `mount -t shiftfs` request has asked for so far.
#[derive(Default)]
pub(crate) struct MountRequest {
    /// `-o mark`: mark the source as shiftable instead of shifting it.
    mark: bool,
    /// `-o passthrough=N`, checked to be 0 to 3.
    passthrough: Option<u32>,
}

impl fs_context::Context<Shiftfs> for MountRequest {
    fn new(_fc: &FsContext<Shiftfs>) -> Result<Self> {
        Ok(Self::default())
    }

    fn parse_param(&mut self, fc: &FsContext<Shiftfs>, param: &Parameter) -> Result {
        let parsed = fc.parse(param)?;
        match parsed.opt {
            // Giving `mark` twice asks for the same thing twice.
            OPT_MARK => self.mark = true,
            OPT_PASSTHROUGH => {
                let n = mark::check_passthrough(parsed.uint_32).map_err(|r| {
                    fc.fail(
                        r.err,
                        format_args!("passthrough={}: {}", parsed.uint_32, r.why),
                    )
                })?;
                self.passthrough = Some(n);
            }
            _ => return Err(ENOPARAM),
        }
        Ok(())
    }

    fn reconfigure(&mut self, fc: &FsContext<Shiftfs>) -> Result {
        // The VFS calls `reconfigure` only for a remount.
        let sb = fc.reconfiguring().ok_or(EINVAL)?;
        let info = sb.info();
        mark::check_remount(&Remount {
            of_mark: info.mark,
            mark: self.mark,
            passthrough: self.passthrough,
            allowed: info.allowed,
            writable: fc.makes_writable(),
            real_readonly: info.real_readonly,
        })
        .map_err(|r| fc.fail(r.err, format_args!("remount: {}", r.why)))?;
        if let Some(p) = self.passthrough {
            info.passthrough.store(p, Ordering::Relaxed);
        }
        Ok(())
    }

    fn get_tree(&mut self, fc: &FsContext<Shiftfs>) -> Result {
        let source = fc
            .source()
            .ok_or_else(|| fc.fail(EINVAL, format_args!("no source given")))?;
        let path = Path::lookup(source)
            .map_err(|e| fc.fail(e, format_args!("cannot look up {}", show(source))))?;
        let refused = |r: Refusal| fc.fail(r.err, format_args!("{}: {}", show(source), r.why));
        // Only a shiftfs root without a real directory under it would get
        // here, which fill_super never makes; say so rather than fail mute.
        let no_real = |e| {
            fc.fail(
                e,
                format_args!("{}: no real directory under it", show(source)),
            )
        };
        let requested = self.passthrough.unwrap_or(0);
        let within = |allowed| {
            mark::check_passthrough_within(requested, allowed).map_err(|r| {
                let why = r.why;
                fc.fail(
                    r.err,
                    format_args!(
                        "{}: passthrough={requested}: {why} ({allowed})",
                        show(source)
                    ),
                )
            })
        };
        let sb = path.super_block();
        let on = sb.downcast::<Shiftfs>();
        if self.mark {
            // A mark inside a shifting mount (root of a container marking
            // for a nested one) stands on the real directory under it, with
            // the outer mark creator's credentials: depth does not grow, and
            // the nested mount's ids are shifted from the real ones.
            let outer = on.filter(|o| !o.info().mark);
            let depth = mark::check_mark(&MarkSource {
                admin: Capability::SYS_ADMIN.over(sb.user_ns()),
                is_dir: path.is_dir(),
                fs: match on {
                    None => SourceFs::Other,
                    Some(o) if o.info().mark => SourceFs::ShiftfsMark,
                    Some(_) => SourceFs::ShiftfsShifting,
                },
                idmapped: path.is_idmapped(),
                real_depth: outer.map_or(sb.stack_depth(), |o| {
                    o.info().real.super_block().stack_depth()
                }),
            })
            .map_err(refused)?;
            let (real, creator) = match outer {
                None => (path, Credential::current_without(Capability::SYS_RESOURCE)?),
                Some(o) => {
                    // A nested mark passes through at most what the
                    // shifting mount it is made in does.
                    within(o.info().passthrough())?;
                    (
                        real_below(&path, o).map_err(no_real)?,
                        o.info().creds.base().clone(),
                    )
                }
            };
            let mark = Instance::new(true, real, creator, depth, requested, requested)?;
            return fc.get_tree_nodev(mark);
        }
        // A shifting mount stands on the real directory under the marked
        // source, with the mark creator's credentials: one stacking level,
        // whatever the depth of marks and shifting mounts above it.
        let marked = on.filter(|m| m.info().mark);
        let depth = mark::check_shift(&ShiftSource {
            marked: marked.is_some(),
            real_depth: marked.map_or(sb.stack_depth(), |m| {
                m.info().real.super_block().stack_depth()
            }),
        })
        .map_err(refused)?;
        // `check_shift` refused an unmarked source.
        let marked =
            marked.ok_or_else(|| fc.fail(EPERM, format_args!("{}: not marked", show(source))))?;
        let allowed = marked.info().passthrough();
        within(allowed)?;
        let real = real_below(&path, marked).map_err(no_real)?;
        let creator = marked.info().creds.base().clone();
        let passthrough = self.passthrough.unwrap_or(0);
        fc.get_tree_nodev(Instance::new(
            false,
            real,
            creator,
            depth,
            passthrough,
            allowed,
        )?)
    }
}

#[cfg(shiftfs_kunit)]
mod tests {
    use super::*;
    use crate::{
        kunit_expect, kunit_expect_eq, kunit_suite,
        vfs::{fs_context::OwnedFsContext, kunit::Test},
    };
    use kernel::error::code::EINVAL;

    fn request() -> OwnedFsContext<Shiftfs> {
        OwnedFsContext::new().expect("fs_context_for_mount(shiftfs)")
    }

    fn no_options_is_a_shifting_mount(t: &mut Test) {
        kunit_expect!(t, !request().data().mark);
    }

    fn mark_is_a_flag(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c"mark", None), Ok(()));
        kunit_expect!(t, fc.data().mark);
    }

    fn mark_twice_is_mark(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c"mark", None), Ok(()));
        kunit_expect_eq!(t, fc.parse(c"mark", None), Ok(()));
        kunit_expect!(t, fc.data().mark);
    }

    fn mark_with_a_value_is_einval(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c"mark", Some(b"1")), Err(EINVAL));
        kunit_expect!(t, !fc.data().mark);
    }

    fn unknown_key_is_einval(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c"bogus", None), Err(EINVAL));
        kunit_expect_eq!(t, fc.parse(c"bogus", Some(b"x")), Err(EINVAL));
        kunit_expect_eq!(t, fc.parse(c"marks", None), Err(EINVAL));
        kunit_expect_eq!(t, fc.parse(c"MARK", None), Err(EINVAL));
    }

    fn empty_key_is_einval(t: &mut Test) {
        kunit_expect_eq!(t, request().parse(c"", None), Err(EINVAL));
    }

    fn source_is_left_to_the_vfs(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c"source", Some(b"/srv")), Ok(()));
        // A second source is the VFS's "Multiple sources" error.
        kunit_expect_eq!(t, fc.parse(c"source", Some(b"/srv")), Err(EINVAL));
        kunit_expect!(t, !fc.data().mark);
    }

    fn unknown_key_leaves_mark_alone(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c"mark", None), Ok(()));
        kunit_expect_eq!(t, fc.parse(c"nomark", None), Err(EINVAL));
        kunit_expect!(t, fc.data().mark);
    }

    fn passthrough_takes_a_number_0_to_3(t: &mut Test) {
        let mut fc = request();
        kunit_expect_eq!(t, fc.parse(c"passthrough", Some(b"3")), Ok(()));
        kunit_expect_eq!(t, fc.data().passthrough, Some(3));
        kunit_expect_eq!(t, fc.parse(c"passthrough", Some(b"0")), Ok(()));
        kunit_expect_eq!(t, fc.data().passthrough, Some(0));
        for bad in [&b"4"[..], b"-1", b"x", b"", b"1x"] {
            kunit_expect_eq!(t, fc.parse(c"passthrough", Some(bad)), Err(EINVAL));
        }
        kunit_expect_eq!(t, fc.parse(c"passthrough", None), Err(EINVAL));
        // A refused value leaves the last good one.
        kunit_expect_eq!(t, fc.data().passthrough, Some(0));
    }

    kunit_suite!(
        "shiftfs_mount_options",
        [
            passthrough_takes_a_number_0_to_3,
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
