// SPDX-License-Identifier: GPL-2.0

//! Error codes that `kernel::error::code` does not define, and the
//! conversion of C return values the hot paths use.

use super::bindings;
use kernel::{ffi::c_int, prelude::*};

/// `Err` of a negative errno, `Ok` otherwise: `kernel::error::to_result`,
/// but inlined (the kernel crate's is a call of its own, about 1% of a
/// warm `stat` through shiftfs, which converts several returns per path
/// component).
#[inline]
pub(crate) fn to_result(ret: c_int) -> Result {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(())
    }
}

macro_rules! errno {
    ($($(#[$doc:meta])* $name:ident = $code:ident;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $name() -> Error {
            Error::from_errno(-(bindings::$code as i32))
        }
    )*};
}

errno! {
    /// `EOPNOTSUPP`: operation not supported.
    eopnotsupp = EOPNOTSUPP;
    /// `EOVERFLOW`: a value does not fit, such as an id with no mapping.
    eoverflow = EOVERFLOW;
    /// `ENODATA`: no such attribute.
    enodata = ENODATA;
    /// `ESTALE`: the object changed under us; the VFS looks it up again.
    estale = ESTALE;
    /// `ENOTEMPTY`: a directory has entries (7.3's rename start says it
    /// itself).
    #[cfg(not(shiftfs_kernel_7))]
    enotempty = ENOTEMPTY;
}
