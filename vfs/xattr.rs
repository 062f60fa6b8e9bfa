// SPDX-License-Identifier: GPL-2.0

//! Extended attributes and POSIX ACLs: the xattr handler and ACL
//! operations of a filesystem, and the calls on real dentries and inodes.

use super::{
    acl::PosixAcl,
    bindings,
    dentry::Dentry,
    errno::eopnotsupp,
    errno::to_result,
    fs_type::FileSystem,
    inode::{nop_idmap, Inode, MntIdmap},
    ARef, Rcu, Real,
};
use core::{ffi::CStr, marker::PhantomData};
use kernel::{
    error::{from_err_ptr, from_result},
    ffi::{c_char, c_int, c_void},
    prelude::*,
};

/// Which of an inode's two POSIX ACLs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AclType {
    /// `ACL_TYPE_ACCESS`: permissions of the inode.
    Access,
    /// `ACL_TYPE_DEFAULT`: inherited by entries made in a directory.
    Default,
}

impl AclType {
    fn from_raw(ty: c_int) -> Result<Self> {
        match ty as u32 {
            bindings::ACL_TYPE_ACCESS => Ok(Self::Access),
            bindings::ACL_TYPE_DEFAULT => Ok(Self::Default),
            _ => Err(EINVAL),
        }
    }

    fn as_raw(self) -> c_int {
        (match self {
            Self::Access => bindings::ACL_TYPE_ACCESS,
            Self::Default => bindings::ACL_TYPE_DEFAULT,
        }) as c_int
    }

    /// The xattr name of the ACL (`system.posix_acl_*`).
    fn name(self) -> &'static CStr {
        match self {
            Self::Access => c"system.posix_acl_access",
            Self::Default => c"system.posix_acl_default",
        }
    }
}

/// Extended attributes and ACLs of a filesystem's inodes. Implemented by
/// the filesystem type. Every name reaches one handler (prefix ""), after
/// the VFS's own checks for its namespace (`trusted.*` needs
/// `CAP_SYS_ADMIN` in the initial namespace, `security.capability` comes
/// converted for the superblock).
#[vtable]
pub(crate) trait XattrOperations: Sized {
    /// The handler's `get`: the value of `name` into `buf` (empty: its size
    /// only).
    fn xattr_get(
        _dentry: &Dentry<Self>,
        _inode: &Inode<Self>,
        _name: &CStr,
        _buf: &mut [u8],
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The handler's `set`: `value`, or removal with `None`; the VFS holds
    /// the inode's lock.
    fn xattr_set(
        _dentry: &Dentry<Self>,
        _inode: &Inode<Self>,
        _name: &CStr,
        _value: Option<&[u8]>,
        _flags: i32,
    ) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `listxattr`: the names, each NUL-terminated, into `buf` (empty: the
    /// size only).
    fn listxattr(_dentry: &Dentry<Self>, _buf: &mut [u8]) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `get_acl`: the ACL to show a reader (`None`: there is none).
    fn get_acl(
        _idmap: &MntIdmap,
        _dentry: &Dentry<Self>,
        _ty: AclType,
    ) -> Result<Option<ARef<PosixAcl>>> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `get_inode_acl`: the ACL for permission checks, in a walk with
    /// references.
    fn get_inode_acl(_inode: &Inode<Self>, _ty: AclType) -> Result<Option<ARef<PosixAcl>>> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `get_inode_acl` in an RCU walk, which can take no reference: the
    /// ACL (readable for the walk) or `None` for none, by which the
    /// permission check goes on. `ECHILD` sends the walk back to take
    /// references, where [`Self::get_inode_acl`] answers.
    fn get_inode_acl_rcu<'a>(
        _inode: Rcu<'a, Inode<Self>>,
        _ty: AclType,
    ) -> Result<Option<Rcu<'a, PosixAcl>>> {
        Err(ECHILD)
    }

    /// `set_acl`: `acl`, or removal with `None`; the VFS holds the inode's
    /// lock.
    fn set_acl(
        _idmap: &MntIdmap,
        _dentry: &Dentry<Self>,
        _acl: Option<&PosixAcl>,
        _ty: AclType,
    ) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The xattr and ACL members of the inode operations of `T`, the rest
/// unset.
pub(super) const fn inode_operations<T: FileSystem>() -> bindings::inode_operations {
    bindings::inode_operations {
        listxattr: if T::HAS_LISTXATTR {
            Some(listxattr::<T>)
        } else {
            None
        },
        get_acl: if T::HAS_GET_ACL {
            Some(get_acl::<T>)
        } else {
            None
        },
        get_inode_acl: if T::HAS_GET_INODE_ACL {
            Some(get_inode_acl::<T>)
        } else {
            None
        },
        set_acl: if T::HAS_SET_ACL {
            Some(set_acl::<T>)
        } else {
            None
        },
        // SAFETY: all-zero is a valid table: NULL operations are optional.
        ..unsafe { super::inode::zeroed() }
    }
}

/// The xattr handlers of superblocks of `T` (`s_xattr`).
pub(super) fn handlers<T: FileSystem>() -> *const *const bindings::xattr_handler {
    Handlers::<T>::LIST.as_ptr()
}

struct Handlers<T>(PhantomData<T>);

impl<T: FileSystem> Handlers<T> {
    /// One handler for every name.
    const ALL: bindings::xattr_handler = bindings::xattr_handler {
        prefix: super::c_ptr(c""),
        get: if T::HAS_XATTR_GET {
            Some(xattr_get::<T>)
        } else {
            None
        },
        set: if T::HAS_XATTR_SET {
            Some(xattr_set::<T>)
        } else {
            None
        },
        // SAFETY: all-zero is a valid handler: NULL members are optional.
        ..unsafe { super::inode::zeroed() }
    };
    const LIST: [*const bindings::xattr_handler; 2] = [&Self::ALL, core::ptr::null()];
}

/// The caller's buffer of `size` bytes at `buf` as a slice (empty for a
/// query of the size, when `buf` may be NULL).
///
/// # Safety
///
/// `buf` must be writable for `size` bytes if `size` is not 0, for `'a`.
unsafe fn buffer<'a>(buf: *mut c_void, size: usize) -> &'a mut [u8] {
    if size == 0 {
        return &mut [];
    }
    // SAFETY: per the contract.
    unsafe { core::slice::from_raw_parts_mut(buf.cast(), size) }
}

/// A caller's slice as a buffer for the kernel: NULL for a query.
fn raw_buffer(buf: &mut [u8]) -> *mut c_void {
    if buf.is_empty() {
        core::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    }
}

/// A byte count or an error.
fn count(ret: isize) -> Result<usize> {
    usize::try_from(ret).map_err(|_| Error::from_errno(ret as c_int))
}

/// # Safety
///
/// Called by the VFS as the handler's `get` with a dentry of `T` (or NULL),
/// its inode, a NUL-terminated name and a buffer of `size` bytes.
unsafe extern "C" fn xattr_get<T: FileSystem>(
    _handler: *const bindings::xattr_handler,
    dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    name: *const c_char,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    // The real inode is reached through the dentry: without one, there is
    // nothing to ask.
    if dentry.is_null() {
        return eopnotsupp().to_errno();
    }
    from_result(|| {
        // SAFETY: per the contract.
        let (dentry, inode, name, buf) = unsafe {
            (
                Dentry::from_raw(dentry),
                Inode::from_raw(inode),
                super::c_str(name),
                buffer(buf, size),
            )
        };
        let n = T::xattr_get(dentry, inode, name, buf)?;
        Ok(n as c_int)
    })
}

/// # Safety
///
/// Called by the VFS as the handler's `set` with a dentry of `T` whose
/// inode it has locked, a NUL-terminated name and a value of `size` bytes
/// (NULL to remove).
unsafe extern "C" fn xattr_set<T: FileSystem>(
    _handler: *const bindings::xattr_handler,
    _idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    name: *const c_char,
    value: *const c_void,
    size: usize,
    flags: c_int,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (dentry, inode, name) = unsafe {
            (
                Dentry::from_raw(dentry),
                Inode::from_raw(inode),
                super::c_str(name),
            )
        };
        let value = (!value.is_null()).then(|| {
            // SAFETY: a non-NULL value holds `size` bytes for the call.
            unsafe { core::slice::from_raw_parts(value.cast(), size) }
        });
        T::xattr_set(dentry, inode, name, value, flags)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `listxattr` with a dentry of `T` and a buffer of
/// `size` bytes (or NULL with 0).
unsafe extern "C" fn listxattr<T: FileSystem>(
    dentry: *mut bindings::dentry,
    list: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: per the contract.
    let (dentry, buf) = unsafe { (Dentry::from_raw(dentry), buffer(list.cast(), size)) };
    T::listxattr(dentry, buf).map_or_else(|e| e.to_errno() as isize, |n| n as isize)
}

/// An ACL result for C: NULL, a reference, or an ERR_PTR.
fn acl_ptr(r: Result<Option<ARef<PosixAcl>>>) -> *mut bindings::posix_acl {
    match r {
        Ok(None) => core::ptr::null_mut(),
        Ok(Some(acl)) => PosixAcl::into_raw(acl),
        Err(e) => e.to_ptr(),
    }
}

/// # Safety
///
/// Called by the VFS as `get_acl` with a dentry of `T`.
unsafe extern "C" fn get_acl<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    ty: c_int,
) -> *mut bindings::posix_acl {
    // SAFETY: per the contract.
    let (idmap, dentry) = unsafe { (MntIdmap::from_raw(idmap), Dentry::from_raw(dentry)) };
    acl_ptr(AclType::from_raw(ty).and_then(|ty| T::get_acl(idmap, dentry, ty)))
}

/// # Safety
///
/// Called by the VFS as `get_inode_acl` with an inode of `T`, in an RCU
/// walk if `rcu`.
unsafe extern "C" fn get_inode_acl<T: FileSystem>(
    inode: *mut bindings::inode,
    ty: c_int,
    rcu: bool,
) -> *mut bindings::posix_acl {
    if rcu {
        // SAFETY: per the contract, an RCU walk with this inode.
        let inode = unsafe { Rcu::<Inode<T>>::from_raw(inode) };
        return match AclType::from_raw(ty).and_then(|ty| T::get_inode_acl_rcu(inode, ty)) {
            Ok(None) => core::ptr::null_mut(),
            // Not a reference: RCU walks take none (`check_acl()`).
            Ok(Some(acl)) => acl.0.as_raw(),
            Err(e) => e.to_ptr(),
        };
    }
    // SAFETY: per the contract, outside an RCU walk the VFS holds the inode.
    let inode = unsafe { Inode::from_raw(inode) };
    acl_ptr(AclType::from_raw(ty).and_then(|ty| T::get_inode_acl(inode, ty)))
}

/// # Safety
///
/// Called by the VFS as `set_acl` with a dentry of `T` whose inode it has
/// locked, and an ACL it holds (or NULL).
unsafe extern "C" fn set_acl<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    acl: *mut bindings::posix_acl,
    ty: c_int,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (idmap, dentry, acl) = unsafe {
            (
                MntIdmap::from_raw(idmap),
                Dentry::from_raw(dentry),
                PosixAcl::from_raw(acl),
            )
        };
        T::set_acl(idmap, dentry, acl, AclType::from_raw(ty)?)?;
        Ok(0)
    })
}

/// An ACL a kernel function returned (NULL, a reference, or an ERR_PTR).
///
/// # Safety
///
/// `raw` must be NULL, an ERR_PTR, or an ACL with a reference the caller
/// owns.
unsafe fn acl_from(raw: *mut bindings::posix_acl) -> Result<Option<ARef<PosixAcl>>> {
    let raw = from_err_ptr(raw)?;
    // SAFETY: per the contract.
    Ok(unsafe { PosixAcl::from_raw_owned(raw) })
}

impl Dentry<Real> {
    /// The value of `name` into `buf` (empty: the size only), checked and
    /// converted for the caller as `getxattr()` does (`vfs_getxattr()`).
    pub(crate) fn getxattr(&self, name: &CStr, buf: &mut [u8]) -> Result<usize> {
        let size = buf.len();
        // SAFETY: `self` is live; `buf` is writable for `size` bytes.
        count(unsafe {
            bindings::vfs_getxattr(
                nop_idmap(),
                self.as_raw(),
                super::c_ptr(name),
                raw_buffer(buf),
                size,
            )
        })
    }

    /// The stored value of `name` into `buf`, as it is, without checks
    /// (`__vfs_getxattr()`).
    pub(crate) fn getxattr_stored(&self, name: &CStr, buf: &mut [u8]) -> Result<usize> {
        let inode = self.inode().ok_or(ENOENT)?;
        let size = buf.len();
        // SAFETY: `self` and its inode are live; `buf` is writable.
        count(unsafe {
            bindings::__vfs_getxattr(
                self.as_raw(),
                inode.as_raw(),
                super::c_ptr(name),
                raw_buffer(buf),
                size,
            )
        })
    }

    /// Sets `name` to `value` (`vfs_setxattr()`).
    pub(crate) fn setxattr(&self, name: &CStr, value: &[u8], flags: i32) -> Result {
        // SAFETY: `self` is live; `value` holds its length in bytes.
        to_result(unsafe {
            bindings::vfs_setxattr(
                nop_idmap(),
                self.as_raw(),
                super::c_ptr(name),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        })
    }

    /// Removes `name` (`vfs_removexattr()`).
    pub(crate) fn removexattr(&self, name: &CStr) -> Result {
        // SAFETY: `self` is live; `name` is NUL-terminated.
        to_result(unsafe {
            bindings::vfs_removexattr(nop_idmap(), self.as_raw(), super::c_ptr(name))
        })
    }

    /// The names, each NUL-terminated, into `buf` (empty: the size only)
    /// (`vfs_listxattr()`).
    pub(crate) fn listxattr(&self, buf: &mut [u8]) -> Result<usize> {
        let size = buf.len();
        // SAFETY: `self` is live; `buf` is writable for `size` bytes.
        count(unsafe { bindings::vfs_listxattr(self.as_raw(), raw_buffer(buf).cast(), size) })
    }

    /// The ACL (`vfs_get_acl()`: `ENODATA` if there is none).
    pub(crate) fn get_acl(&self, ty: AclType) -> Result<Option<ARef<PosixAcl>>> {
        // SAFETY: `self` is live; `vfs_get_acl` returns a reference, NULL
        // or an ERR_PTR.
        unsafe {
            acl_from(bindings::vfs_get_acl(
                nop_idmap(),
                self.as_raw(),
                super::c_ptr(ty.name()),
            ))
        }
    }

    /// Sets the ACL (`vfs_set_acl()`).
    pub(crate) fn set_acl(&self, ty: AclType, acl: &PosixAcl) -> Result {
        // SAFETY: `self` and `acl` are live; the VFS takes its own
        // reference to an ACL it keeps.
        to_result(unsafe {
            bindings::vfs_set_acl(
                nop_idmap(),
                self.as_raw(),
                super::c_ptr(ty.name()),
                acl.as_raw(),
            )
        })
    }

    /// Removes the ACL (`vfs_remove_acl()`).
    pub(crate) fn remove_acl(&self, ty: AclType) -> Result {
        // SAFETY: `self` is live.
        to_result(unsafe {
            bindings::vfs_remove_acl(nop_idmap(), self.as_raw(), super::c_ptr(ty.name()))
        })
    }
}

impl Inode<Real> {
    /// The ACL for permission checks (`get_inode_acl()`: `None` if there
    /// is none).
    pub(crate) fn get_inode_acl(&self, ty: AclType) -> Result<Option<ARef<PosixAcl>>> {
        // SAFETY: `self` is live; `get_inode_acl` returns a reference, NULL
        // or an ERR_PTR.
        unsafe { acl_from(bindings::get_inode_acl(self.as_raw(), ty.as_raw())) }
    }
}

impl<'a> Rcu<'a, Inode<Real>> {
    /// The real filesystem's cached ACL of type `ty` for this inode
    /// (`get_cached_acl_rcu()`), the one its own RCU permission checks go
    /// by: `Some(None)` for none, `None` if it is not cached (the next walk
    /// with references caches it).
    pub(crate) fn cached_acl(self, ty: AclType) -> Option<Option<Rcu<'a, PosixAcl>>> {
        // SAFETY: in an RCU walk (the `Rcu` invariant) the inode is
        // readable and `rcu_read_lock()` is held, which is all
        // `get_cached_acl_rcu()` needs; a stacked filesystem's own
        // `get_inode_acl` it may call is told the walk is RCU.
        let acl = unsafe { bindings::get_cached_acl_rcu(self.0.as_raw(), ty.as_raw()) };
        if super::acl::is_uncached(acl) {
            return None;
        }
        // SAFETY: a cached ACL is freed after a grace period
        // (`posix_acl_release()`), so it is readable for the walk.
        Some(unsafe { PosixAcl::from_raw(acl) }.map(Rcu))
    }
}
