// SPDX-License-Identifier: GPL-2.0

//! Extended attributes, POSIX ACLs and file attributes (`FS_IOC_GETFLAGS`
//! and friends) of stacked inodes, read and written on the real ones with
//! the overridden credentials, ids translated by `T`.

use super::{
    err_ptr, namei::real_mnt, namei::WriteAccess, nop_idmap, real_of, refresh, sb_info, FileSystem,
};
use crate::vfs::{
    acl::PosixAcl, bindings, errno::eopnotsupp, inode::Inode, super_block::SuperBlock,
};
use core::ffi::c_void;
use kernel::{
    error::{
        code::{ECHILD, EINVAL, ENOENT, ERANGE},
        from_result, to_result,
    },
    ffi::{c_char, c_int},
    prelude::*,
    str::CStr,
};

/// Room for the values `T` translates (file capabilities: 24 bytes).
const TRANSLATED_MAX: usize = 64;

/// The `get` of the catch-all xattr handler: the real inode's value, with
/// ids translated for the names `T` translates. `trusted.*` reaches here
/// only for callers the VFS let through.
///
/// # Safety
///
/// Called by the VFS with a dentry of `T`, a NUL-terminated name and a
/// buffer of `size` bytes (or NULL to ask the size).
pub(super) unsafe extern "C" fn xattr_get<T: FileSystem>(
    _handler: *const bindings::xattr_handler,
    d: *mut bindings::dentry,
    _inode: *mut bindings::inode,
    name: *const c_char,
    buffer: *mut c_void,
    size: usize,
) -> c_int {
    if d.is_null() {
        return eopnotsupp().to_errno();
    }
    from_result(|| {
        // SAFETY: per the contract.
        let ((sb, info), real, cname) = unsafe {
            (
                sb_info::<T>((*d).d_sb),
                real_of(d),
                CStr::from_char_ptr(name),
            )
        };
        let ri = real.inode().ok_or(ENOENT)?;
        let _creds = T::enter(sb, info)?;
        if !T::xattr_translated(cname) {
            let rd = real.as_raw();
            // SAFETY: `real` is live; `name` and `buffer` are the caller's.
            let n = unsafe { bindings::vfs_getxattr(nop_idmap(), rd, name, buffer, size) };
            to_result(n as c_int)?;
            return Ok(n as c_int);
        }
        // The stored value, as it is: translation may change its size.
        let mut raw = [0u8; TRANSLATED_MAX];
        // SAFETY: `real` and its inode are live; `raw` has room for
        // `TRANSLATED_MAX` bytes.
        let n = unsafe {
            bindings::__vfs_getxattr(
                real.as_raw(),
                ri.as_raw(),
                name,
                raw.as_mut_ptr().cast(),
                raw.len(),
            )
        };
        if n == -(bindings::ERANGE as isize) {
            // Longer than any value we translate: malformed.
            return Err(EINVAL);
        }
        to_result(n as c_int)?;
        let value = T::xattr_up(sb, ri.super_block(), cname, &raw[..n as usize])?;
        // SAFETY: the caller's buffer holds `size` bytes.
        unsafe { copy_out(&value, buffer.cast(), size) }
    })
}

/// Copies `value` to a caller's buffer of `size` bytes; a size of 0 asks
/// for the length.
///
/// # Safety
///
/// `buffer` must be writable for `size` bytes.
unsafe fn copy_out(value: &[u8], buffer: *mut u8, size: usize) -> Result<c_int> {
    if size == 0 {
        return Ok(value.len() as c_int);
    }
    if value.len() > size {
        return Err(ERANGE);
    }
    // SAFETY: per the contract, `size >= value.len()`.
    unsafe { core::ptr::copy_nonoverlapping(value.as_ptr(), buffer, value.len()) };
    Ok(value.len() as c_int)
}

/// The `set` of the catch-all xattr handler (a NULL value removes): on the
/// real inode, with the overridden credentials, ids translated for the
/// names `T` translates. The VFS has checked the caller against the stacked
/// inode (`trusted.*` needs CAP_SYS_ADMIN in the initial namespace, and
/// `security.capability` has been converted for the stacked superblock).
///
/// # Safety
///
/// Called by the VFS with a dentry of `T` whose inode it has locked, a
/// NUL-terminated name and a value of `size` bytes or NULL.
pub(super) unsafe extern "C" fn xattr_set<T: FileSystem>(
    _handler: *const bindings::xattr_handler,
    _idmap: *mut bindings::mnt_idmap,
    d: *mut bindings::dentry,
    inode: *mut bindings::inode,
    name: *const c_char,
    value: *const c_void,
    size: usize,
    flags: c_int,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let ((sb, info), real, cname) = unsafe {
            (
                sb_info::<T>((*d).d_sb),
                real_of(d),
                CStr::from_char_ptr(name),
            )
        };
        let ri = real.inode().ok_or(ENOENT)?;
        let translated;
        let (value, size) = if !value.is_null() && T::xattr_translated(cname) {
            // SAFETY: the caller's value has `size` bytes.
            let v = unsafe { core::slice::from_raw_parts(value.cast::<u8>(), size) };
            translated = T::xattr_down(sb, ri.super_block(), cname, v)?;
            (translated.as_ptr().cast::<c_void>(), translated.len())
        } else {
            (value, size)
        };
        {
            let _creds = T::enter(sb, info)?;
            // SAFETY: the real mount lives as long as `info`.
            let _write = unsafe { WriteAccess::get(real_mnt::<T>(info)) }?;
            // SAFETY: `real` is live; name and value are the caller's or
            // ours, of `size` bytes.
            to_result(unsafe {
                if value.is_null() {
                    bindings::vfs_removexattr(nop_idmap(), real.as_raw(), name)
                } else {
                    bindings::vfs_setxattr(nop_idmap(), real.as_raw(), name, value, size, flags)
                }
            })?;
        }
        // Setting some xattrs changes the mode or ctime.
        // SAFETY: the VFS holds the stacked inode's lock.
        unsafe { refresh::<T>(sb.as_raw(), Inode::from_raw(inode), ri) };
        Ok(0)
    })
}

/// `listxattr`: the real names, without `trusted.*` for callers who could
/// not read them (the real filesystem lists them to the overridden
/// credentials).
///
/// # Safety
///
/// Called by the VFS with a dentry of `T` and a buffer of `size` bytes (or
/// NULL to ask the size).
pub(super) unsafe extern "C" fn listxattr<T: FileSystem>(
    d: *mut bindings::dentry,
    list: *mut kernel::ffi::c_char,
    size: usize,
) -> isize {
    let res = (|| -> Result<isize> {
        // Checked with the caller's own credentials, before the override.
        // SAFETY: `capable` only reads the calling task's credentials.
        let trusted = unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) };
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let names = {
            let _creds = T::enter(sb, info)?;
            let mut buf: KVec<u8>;
            loop {
                let (dentry, none) = (real.as_raw(), core::ptr::null_mut());
                // SAFETY: `real` is live; a NULL buffer asks for the size.
                let want = unsafe { bindings::vfs_listxattr(dentry, none, 0) };
                let want = usize::try_from(want).map_err(|_| Error::from_errno(want as c_int))?;
                buf = KVec::with_capacity(want, GFP_KERNEL)?;
                // SAFETY: `buf` has room for `want` bytes.
                let got = unsafe {
                    bindings::vfs_listxattr(real.as_raw(), buf.as_mut_ptr().cast(), want)
                };
                match usize::try_from(got) {
                    // SAFETY: `vfs_listxattr` wrote `got <= want` bytes.
                    Ok(got) => break unsafe { buf.set_len(got) },
                    // A name was added in between: ask again.
                    Err(_) if got == ERANGE.to_errno() as isize => continue,
                    Err(_) => return Err(Error::from_errno(got as c_int)),
                }
            }
            buf
        };
        let mut out = KVec::<u8>::with_capacity(names.len(), GFP_KERNEL)?;
        for name in names.split_inclusive(|&b| b == 0) {
            if trusted || !name.starts_with(b"trusted.") {
                out.extend_from_slice(name, GFP_KERNEL)?;
            }
        }
        if size == 0 {
            return Ok(out.len() as isize);
        }
        if out.len() > size {
            return Err(ERANGE);
        }
        // SAFETY: the caller's buffer holds `size >= out.len()` bytes.
        unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), list.cast(), out.len()) };
        Ok(out.len() as isize)
    })();
    res.unwrap_or_else(|e| e.to_errno() as isize)
}

/// The `system.posix_acl_*` name of an ACL type.
fn acl_name(acl_type: c_int) -> Result<&'static core::ffi::CStr> {
    match acl_type as u32 {
        bindings::ACL_TYPE_ACCESS => Ok(c"system.posix_acl_access"),
        bindings::ACL_TYPE_DEFAULT => Ok(c"system.posix_acl_default"),
        _ => Err(EINVAL),
    }
}

/// Shifts an ACL the real filesystem returned up for `sb`; NULL stays NULL.
///
/// # Safety
///
/// `raw` must be NULL, an ERR_PTR, or an ACL with a reference we own, of
/// an inode of `real_sb`.
unsafe fn acl_result_up<T: FileSystem>(
    sb: &SuperBlock,
    real_sb: &SuperBlock,
    raw: *mut bindings::posix_acl,
    for_permission: bool,
) -> Result<*mut bindings::posix_acl> {
    let raw = kernel::error::from_err_ptr(raw)?;
    // SAFETY: per the contract.
    match unsafe { PosixAcl::from_raw_owned(raw) } {
        None => Ok(core::ptr::null_mut()),
        Some(acl) => Ok(PosixAcl::into_raw(T::acl_up(
            sb,
            real_sb,
            &acl,
            for_permission,
        )?)),
    }
}

/// `get_acl`: the real ACL, with its named entries shifted.
///
/// # Safety
///
/// Called by the VFS with a dentry of `T`.
pub(super) unsafe extern "C" fn get_acl<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    d: *mut bindings::dentry,
    acl_type: c_int,
) -> *mut bindings::posix_acl {
    let res = (|| -> Result<*mut bindings::posix_acl> {
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let name = acl_name(acl_type)?;
        let raw = {
            let _creds = T::enter(sb, info)?;
            // SAFETY: `real` is live; `name` is NUL-terminated.
            unsafe { bindings::vfs_get_acl(nop_idmap(), real.as_raw(), name.as_ptr().cast()) }
        };
        if raw as isize == -(bindings::ENODATA as isize) {
            return Ok(core::ptr::null_mut());
        }
        let real_sb = real.inode().ok_or(ENOENT)?.super_block();
        // SAFETY: `vfs_get_acl` returns an ACL reference, or an ERR_PTR.
        unsafe { acl_result_up::<T>(sb, real_sb, raw, false) }
    })();
    res.unwrap_or_else(err_ptr)
}

/// `get_inode_acl`, for permission checks: the real inode's ACL, shifted.
///
/// # Safety
///
/// Called by the VFS with an inode of `T`.
pub(super) unsafe extern "C" fn get_inode_acl<T: FileSystem>(
    inode: *mut bindings::inode,
    acl_type: c_int,
    rcu: bool,
) -> *mut bindings::posix_acl {
    if rcu {
        return err_ptr(ECHILD);
    }
    let res = (|| -> Result<*mut bindings::posix_acl> {
        // SAFETY: per the contract; a stacked inode holds its real inode.
        let (sb, info) = unsafe { sb_info::<T>((*inode).i_sb) };
        // SAFETY: as above.
        let real = unsafe { Inode::from_raw((*inode).i_private.cast()) };
        let raw = {
            let _creds = T::enter(sb, info)?;
            // SAFETY: `real` is live.
            unsafe { bindings::get_inode_acl(real.as_raw(), acl_type) }
        };
        // SAFETY: `get_inode_acl` returns NULL, an ERR_PTR or a reference.
        unsafe { acl_result_up::<T>(sb, real.super_block(), raw, true) }
    })();
    res.unwrap_or_else(err_ptr)
}

/// `set_acl` (NULL removes): the ACL with its named entries shifted down
/// (an entry naming an id the real filesystem cannot hold is EINVAL), set
/// on the real inode with the overridden credentials.
///
/// # Safety
///
/// Called by the VFS with a dentry of `T` whose inode it has locked, and
/// an ACL it holds or NULL.
pub(super) unsafe extern "C" fn set_acl<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    d: *mut bindings::dentry,
    acl: *mut bindings::posix_acl,
    acl_type: c_int,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let ri = real.inode().ok_or(ENOENT)?;
        let name = acl_name(acl_type)?;
        // SAFETY: the caller holds `acl` for the duration of the call.
        let down = match unsafe { PosixAcl::from_raw(acl) } {
            None => None,
            Some(acl) => Some(T::acl_down(sb, ri.super_block(), acl)?),
        };
        {
            let _creds = T::enter(sb, info)?;
            // SAFETY: the real mount lives as long as `info`.
            let _write = unsafe { WriteAccess::get(real_mnt::<T>(info)) }?;
            // SAFETY: `real` is live; `name` is NUL-terminated; the VFS takes
            // its own reference to an ACL it keeps.
            to_result(unsafe {
                match &down {
                    None => {
                        bindings::vfs_remove_acl(nop_idmap(), real.as_raw(), name.as_ptr().cast())
                    }
                    Some(acl) => bindings::vfs_set_acl(
                        nop_idmap(),
                        real.as_raw(),
                        name.as_ptr().cast(),
                        acl.as_raw(),
                    ),
                }
            })?;
        }
        // Setting an access ACL may change the mode.
        // SAFETY: the VFS holds the stacked inode's lock.
        unsafe { refresh::<T>(sb.as_raw(), Inode::from_raw((*d).d_inode), ri) };
        Ok(0)
    })
}

/// `fileattr_get` (`FS_IOC_GETFLAGS`, `FS_IOC_FSGETXATTR`): the real
/// inode's.
///
/// # Safety
///
/// Called by the VFS with a dentry of `T` and an attribute set to fill in.
pub(super) unsafe extern "C" fn fileattr_get<T: FileSystem>(
    d: *mut bindings::dentry,
    fa: *mut bindings::fileattr,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let _creds = T::enter(sb, info)?;
        // SAFETY: `real` is live; `fa` is the caller's.
        to_result(unsafe { bindings::vfs_fileattr_get(real.as_raw(), fa) })?;
        Ok(0)
    })
}

/// `fileattr_set` (`FS_IOC_SETFLAGS`, `FS_IOC_FSSETXATTR`): the VFS has
/// checked the caller against the stacked inode (owner, CAP_LINUX_IMMUTABLE
/// in the initial namespace for append-only and immutable, project ids
/// unchanged from a user namespace); then set on the real inode.
///
/// # Safety
///
/// Called by the VFS with a dentry of `T` whose inode it has locked.
pub(super) unsafe extern "C" fn fileattr_set<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    d: *mut bindings::dentry,
    fa: *mut bindings::fileattr,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let ((sb, info), real) = unsafe { (sb_info::<T>((*d).d_sb), real_of(d)) };
        let ri = real.inode().ok_or(ENOENT)?;
        {
            let _creds = T::enter(sb, info)?;
            // SAFETY: the real mount lives as long as `info`.
            let _write = unsafe { WriteAccess::get(real_mnt::<T>(info)) }?;
            // SAFETY: `real` is live; `fa` is the caller's.
            to_result(unsafe { bindings::vfs_fileattr_set(nop_idmap(), real.as_raw(), fa) })?;
        }
        // The flags (append-only, immutable, ...) and ctime changed.
        // SAFETY: the VFS holds the stacked inode's lock.
        unsafe { refresh::<T>(sb.as_raw(), Inode::from_raw((*d).d_inode), ri) };
        Ok(0)
    })
}
