// SPDX-License-Identifier: GPL-2.0

//! Mounting: the options, the two kinds of mount (a mark, by the host
//! admin, unshifted; a shifting mount, by a container, on a marked path),
//! what a superblock keeps, and the superblock operations.

use crate::{
    cred::{self, CreatorCreds},
    inode,
    mark::{
        self, IdRange, MarkSource, Refusal, Remount, ShiftSource, SourceFs, MAX_ALLOW,
        PASSTHROUGH_STATFS,
    },
    param_table,
    shift::UpMemos,
    vfs::{
        acl::DerivedAcls,
        cred::{Capability, Credential},
        dentry::Dentry,
        fs_context::{self, FsContext, Parameter},
        fs_type::{FileSystem, Type, FS_USERNS_MOUNT},
        param::{self, Spec},
        path::Path,
        show, show_bytes,
        super_block::{Kstatfs, NewSuperBlock, SeqFile, SuperBlock},
        user_ns::UserNamespace,
        ARef,
    },
};
use core::{
    ffi::CStr,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{
    error::code::{EINVAL, ENOPARAM, ENOTDIR, EPERM, ERANGE},
    prelude::*,
    sync::Arc,
};

/// The shiftfs filesystem type.
pub(crate) struct Shiftfs;

/// `SHIFTFS_MAGIC`: statfs's `f_type` of shiftfs, as Ubuntu's shiftfs
/// reports it (runtimes recognise shiftfs by it).
pub(crate) const SHIFTFS_MAGIC: usize = 0x6a65_6a62;

/// Option numbers of [`Shiftfs::PARAMS`].
const OPT_MARK: u8 = 0;
const OPT_PASSTHROUGH: u8 = 1;
const OPT_ALLOW: u8 = 2;

impl FileSystem for Shiftfs {
    const NAME: &'static CStr = c"shiftfs";
    const FLAGS: i32 = FS_USERNS_MOUNT;
    const PARAMS: param::Table = param_table![
        Spec::flag(c"mark", OPT_MARK),
        Spec::u32(c"passthrough", OPT_PASSTHROUGH),
        Spec::string(c"allow", OPT_ALLOW),
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
        if info.mark {
            for r in info.allow.iter().flat_map(|a| a.given.iter()) {
                m.print(format_args!(",allow={}:{}", r.first, r.count));
            }
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

/// Whose user namespaces may mount a mark shifted (`allow=`): those that
/// map only ids in these ranges.
pub(crate) struct Allow {
    /// The ranges as the mark's creator gave them, in its ids (shown in
    /// /proc/mounts); empty where a nested mark inherits them.
    given: KVec<IdRange>,
    /// The ranges as kernel uids and gids.
    uids: KVec<IdRange>,
    gids: KVec<IdRange>,
}

impl Allow {
    /// The ranges `given` in the ids of namespace `ns`, as kernel ids; or
    /// why not.
    fn new(given: KVec<IdRange>, ns: &UserNamespace) -> Result<Self, Refusal> {
        let (uid_map, gid_map) = (extents(ns, false)?, extents(ns, true)?);
        let (mut uids, mut gids) = (KVec::new(), KVec::new());
        for r in given.iter() {
            for (map, out) in [(&uid_map, &mut uids), (&gid_map, &mut gids)] {
                for k in mark::to_kernel(*r, map)?.iter() {
                    out.push(*k, GFP_KERNEL).map_err(|_| oom())?;
                }
            }
        }
        Ok(Self { given, uids, gids })
    }
}

fn oom() -> Refusal {
    Refusal {
        err: kernel::error::code::ENOMEM,
        why: "out of memory",
    }
}

/// The extents of `ns`'s uid or gid map.
fn extents(ns: &UserNamespace, gids: bool) -> Result<KVec<crate::vfs::user_ns::IdExtent>, Refusal> {
    ns.extents(gids).map_err(|_| oom())
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
    /// The mark's restriction (a shifting mount keeps its mark's, for
    /// marks made in it).
    allow: Option<Arc<Allow>>,
    /// Real access ACLs shifted for permission checks, for RCU walks
    /// (xattr.rs).
    pub(crate) shifted_acls: DerivedAcls,
    /// Ids shifted up lately (shift.rs).
    pub(crate) up: UpMemos,
}

impl Instance {
    fn new(
        mark: bool,
        real: Path,
        creator: ARef<Credential>,
        depth: i32,
        passthrough: u32,
        allowed: u32,
        allow: Option<Arc<Allow>>,
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
                allow,
                shifted_acls: DerivedAcls::new(),
                up: UpMemos::new(),
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
    /// `-o allow=FIRST:COUNT`, each checked.
    allow: KVec<IdRange>,
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
            OPT_ALLOW => {
                let v = param.string().ok_or(EINVAL)?;
                let r = mark::parse_range(v).map_err(|r| {
                    fc.fail(r.err, format_args!("allow={}: {}", show_bytes(v), r.why))
                })?;
                if self.allow.len() == MAX_ALLOW {
                    return Err(fc.fail(EINVAL, format_args!("at most {MAX_ALLOW} allow= ranges")));
                }
                self.allow.push(r, GFP_KERNEL)?;
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
        if !self.mark && !self.allow.is_empty() {
            return Err(fc.fail(EINVAL, format_args!("allow= is an option of marks")));
        }
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
                real_depth: outer.map_or(sb.stack_depth(), |o| {
                    o.info().real.super_block().stack_depth()
                }),
            })
            .map_err(refused)?;
            let given = core::mem::take(&mut self.allow);
            let allow = if given.is_empty() {
                None
            } else {
                Some(Allow::new(given, fc.user_ns()).map_err(refused)?)
            };
            let (real, creator, allow) = match outer {
                None => (
                    path,
                    Credential::current_without(Capability::SYS_RESOURCE)?,
                    allow.map(|a| Arc::new(a, GFP_KERNEL)).transpose()?,
                ),
                Some(o) => {
                    // A nested mark passes through at most what the
                    // shifting mount it is made in does, and allows at
                    // most whom its mark allows (all of them, unless it
                    // narrows).
                    within(o.info().passthrough())?;
                    let allow = match (allow, &o.info().allow) {
                        (None, outer) => outer.clone(),
                        (Some(a), None) => Some(Arc::new(a, GFP_KERNEL)?),
                        (Some(a), Some(outer)) => {
                            mark::check_narrowing(&a.uids, &outer.uids).map_err(refused)?;
                            mark::check_narrowing(&a.gids, &outer.gids).map_err(refused)?;
                            Some(Arc::new(a, GFP_KERNEL)?)
                        }
                    };
                    (
                        real_below(&path, o).map_err(no_real)?,
                        o.info().creds.base().clone(),
                        allow,
                    )
                }
            };
            let mark = Instance::new(true, real, creator, depth, requested, requested, allow)?;
            return fc.get_tree_nodev(mark);
        }
        // A shifting mount stands on the real directory under the marked
        // source, with the mark creator's credentials: one stacking level,
        // whatever the depth of marks and shifting mounts above it.
        let marked = on.filter(|m| m.info().mark);
        if marked.is_none() && on.is_none() && mark::PERSISTENT_MARKS.get() {
            let found = persistent_mark(&path).map_err(|r| {
                fc.fail(
                    r.err,
                    format_args!(
                        "{}: {}: {}",
                        show(source),
                        show(mark::PERSISTENT_XATTR),
                        r.why
                    ),
                )
            })?;
            if let Some(pm) = found {
                return shift_persistent(fc, source, path, pm, requested);
            }
        }
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
        let allow = marked.info().allow.clone();
        check_allowed(fc, source, allow.as_deref())?;
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
            allow,
        )?)
    }
}

/// Whether the user namespace of request `fc` may mount shifted a mark
/// restricted by `allow`; the refusal, logged, if not.
fn check_allowed(fc: &FsContext<Shiftfs>, source: &CStr, allow: Option<&Allow>) -> Result {
    let Some(a) = allow else {
        return Ok(());
    };
    let ns = fc.user_ns();
    for (gids, ranges, what) in [(false, &a.uids, "uid"), (true, &a.gids, "gid")] {
        let map = extents(ns, gids).map_err(|r| fc.fail(r.err, format_args!("{}", r.why)))?;
        mark::check_userns_within(&map, ranges).map_err(|(r, e)| match e {
            Some(e) => fc.fail(
                r.err,
                format_args!(
                    "{}: {}: its {what} map has {} {} {}",
                    show(source),
                    r.why,
                    e.first,
                    e.lower_first,
                    e.count
                ),
            ),
            None => fc.fail(r.err, format_args!("{}: {}", show(source), r.why)),
        })?;
    }
    Ok(())
}

/// The persistent mark on `path` or the nearest directory above it on
/// its mount (its `trusted.shiftfs` xattr), if there is one.
fn persistent_mark(path: &Path) -> Result<Option<mark::PersistentMark>, Refusal> {
    let mut buf = [0u8; 256];
    let mut up: Option<Path> = None;
    loop {
        let at = up.as_ref().unwrap_or(path);
        match at
            .dentry()
            .getxattr_stored(mark::PERSISTENT_XATTR, &mut buf)
        {
            Ok(n) => return mark::parse_persistent(&buf[..n]).map(Some),
            Err(e) if e == ERANGE => {
                return Err(Refusal {
                    err: EINVAL,
                    why: "its value is too long",
                })
            }
            // ENODATA, or no xattrs on this filesystem: not marked here.
            Err(_) => {}
        }
        match at.parent() {
            Some(p) => up = Some(p),
            None => return Ok(None),
        }
    }
}

/// A shifting mount of `path`, under persistent mark `pm`: it stands on
/// the source itself and reaches it with the persistent mark's
/// credentials (cred.rs), as any shifting mount stands on its mark's
/// real directory with the mark creator's.
fn shift_persistent(
    fc: &FsContext<Shiftfs>,
    source: &CStr,
    path: Path,
    pm: mark::PersistentMark,
    requested: u32,
) -> Result {
    let refused = |r: Refusal| fc.fail(r.err, format_args!("{}: {}", show(source), r.why));
    if !path.is_dir() {
        return Err(refused(Refusal {
            err: ENOTDIR,
            why: "the source must be a directory",
        }));
    }
    let depth = mark::check_shift(&ShiftSource {
        marked: true,
        real_depth: path.super_block().stack_depth(),
    })
    .map_err(refused)?;
    mark::check_passthrough_within(requested, pm.passthrough).map_err(refused)?;
    let allow = if pm.allow.is_empty() {
        None
    } else {
        // Only root of the initial namespace sets the xattr: its ids are
        // kernel ids.
        let a = Allow::new(pm.allow, UserNamespace::init()).map_err(refused)?;
        Some(Arc::new(a, GFP_KERNEL)?)
    };
    check_allowed(fc, source, allow.as_deref())?;
    let creator = cred::persistent_mark_creds()?;
    fc.get_tree_nodev(Instance::new(
        false,
        path,
        creator,
        depth,
        requested,
        pm.passthrough,
        allow,
    )?)
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
