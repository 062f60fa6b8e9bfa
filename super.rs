// SPDX-License-Identifier: GPL-2.0

//! Mount options, and the two kinds of mount: a mark (host admin, unshifted)
//! and a shifting mount (container, on a marked path).

use crate::param_table;
use crate::vfs::{
    errno::{enoparam, eopnotsupp},
    fs_context::{self, FsContext, Parameter},
    fs_type::{FileSystem, FS_USERNS_MOUNT},
    param::{self, Spec},
};
use kernel::{c_str, prelude::*, str::CStr};

/// The shiftfs filesystem type.
pub(crate) struct Shiftfs;

/// Option numbers of [`Shiftfs::PARAMS`].
const OPT_MARK: u8 = 0;

impl FileSystem for Shiftfs {
    const NAME: &'static CStr = c_str!("shiftfs");
    const FLAGS: i32 = FS_USERNS_MOUNT;
    const PARAMS: param::Table = param_table![Spec::flag(c_str!("mark"), OPT_MARK)];
    type Context = MountRequest;
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
            _ => return Err(enoparam()),
        }
        Ok(())
    }

    fn get_tree(&mut self, fc: &FsContext<Shiftfs>) -> Result {
        let kind = if self.mark { "mark" } else { "shifting" };
        Err(fc.fail(
            eopnotsupp(),
            format_args!("{kind} mounts are not implemented yet"),
        ))
    }
}
