// SPDX-License-Identifier: GPL-2.0

//! Error codes that 6.12's `kernel::error::code` does not define.

use super::bindings;
use kernel::error::Error;

/// `ENOPARAM`: "not one of mine". From `parse_param`, hands a key back to the
/// VFS, which handles `source` itself and rejects anything else with EINVAL
/// and an "Unknown parameter" line in the log.
pub(crate) fn enoparam() -> Error {
    Error::from_errno(-(bindings::ENOPARAM as i32))
}

/// `EOPNOTSUPP`: operation not supported.
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}
