// SPDX-License-Identifier: GPL-2.0

//! Mount requests through the new mount API (`struct fs_context`,
//! fs_context.h): parameters, the fs_context log, `get_tree`.

use super::{
    bindings, errno::to_result, fs_type::FileSystem, super_block::SuperBlock,
    user_ns::UserNamespace,
};
use core::ffi::CStr;
use core::{ffi::c_void, fmt, marker::PhantomData, mem::MaybeUninit};
use kernel::{
    error::{code::EINVAL, from_result},
    ffi::{c_char, c_int},
    prelude::*,
    types::Opaque,
};

/// What a filesystem keeps about one mount request while it is configured.
///
/// Stored in `fs_context::fs_private` from `init_fs_context` until `free`.
pub(crate) trait Context<T: FileSystem>: Sized + Send {
    /// Starts a mount request (`init_fs_context`).
    fn new(fc: &FsContext<T>) -> Result<Self>;
    /// Takes one parameter (`fsconfig(FSCONFIG_SET_*)`, or one mount option).
    /// `ENOPARAM` passes it back to the VFS.
    fn parse_param(&mut self, fc: &FsContext<T>, param: &Parameter) -> Result;
    /// Creates or finds the superblock and sets `fc->root`
    /// (`fsconfig(FSCONFIG_CMD_CREATE)`).
    fn get_tree(&mut self, fc: &FsContext<T>) -> Result;
    /// Applies a remount to the superblock [`FsContext::reconfiguring`]
    /// names (`mount -o remount`, `fsconfig(FSCONFIG_CMD_RECONFIGURE)`);
    /// the VFS then applies the superblock flags.
    fn reconfigure(&mut self, fc: &FsContext<T>) -> Result;
}

/// A mount request of filesystem type `T`.
#[repr(transparent)]
pub(crate) struct FsContext<T: FileSystem>(Opaque<bindings::fs_context>, PhantomData<T>);

impl<T: FileSystem> FsContext<T> {
    /// # Safety
    ///
    /// `ptr` must point to a valid `fs_context` of type `T` that stays valid
    /// for `'a`; the VFS guarantees this during a context callback.
    unsafe fn from_raw<'a>(ptr: *mut bindings::fs_context) -> &'a Self {
        // SAFETY: `Self` is `repr(transparent)` over `fs_context`, and the
        // caller guarantees validity for `'a`.
        unsafe { &*ptr.cast() }
    }

    fn as_raw(&self) -> *mut bindings::fs_context {
        self.0.get()
    }

    /// Matches `param` against `T::PARAMS`: the option number of the entry
    /// it names, and its value. Unknown keys give `ENOPARAM`; a value of the
    /// wrong kind gives EINVAL with a message in the log.
    pub(crate) fn parse(&self, param: &Parameter) -> Result<Parsed> {
        let mut result = MaybeUninit::<bindings::fs_parse_result>::zeroed();
        // SAFETY: `self` and `param` are valid for the call, the table is a
        // `'static` terminated array, and `result` is writable.
        let opt = unsafe {
            bindings::shiftfs_fs_parse(
                self.as_raw(),
                T::PARAMS.as_ptr(),
                param.0.get(),
                result.as_mut_ptr(),
            )
        };
        to_result(opt)?;
        Ok(Parsed {
            // `__fs_parse` returns an entry's `opt`, a `u8`.
            opt: u8::try_from(opt).map_err(|_| EINVAL)?,
            // SAFETY: `__fs_parse` filled the result in; every member of
            // its union is plain data, and the `u32` one is what a
            // `Spec::u32` entry sets (a flag leaves the zeroes).
            uint_32: unsafe { result.assume_init().__bindgen_anon_1.uint_32 },
        })
    }

    /// The user namespace the new superblock will belong to
    /// (`fc->user_ns`): the caller's, for a mount made in a container.
    pub(crate) fn user_ns(&self) -> &UserNamespace {
        // SAFETY: the context holds a reference to its namespace for as
        // long as it lives, which outlives the borrow.
        unsafe { UserNamespace::from_raw((*self.as_raw()).user_ns) }
    }

    /// The superblock a remount (`reconfigure`) is for.
    pub(crate) fn reconfiguring(&self) -> Option<&SuperBlock<T>> {
        let raw = self.as_raw();
        // SAFETY: `raw` is valid; a context for reconfiguring holds its
        // root (`fc->root`), whose superblock is one of `T`'s.
        unsafe {
            if (*raw).purpose() != bindings::fs_context_purpose_FS_CONTEXT_FOR_RECONFIGURE {
                return None;
            }
            Some(SuperBlock::from_raw((*(*raw).root).d_sb))
        }
    }

    /// Whether the request makes the superblock writable (clears
    /// `SB_RDONLY`).
    pub(crate) fn makes_writable(&self) -> bool {
        let raw = self.as_raw();
        let ro = bindings::SHIFTFS_SB_RDONLY as u32;
        // SAFETY: plain reads of the context's fields.
        unsafe { (*raw).sb_flags_mask & ro != 0 && (*raw).sb_flags & ro == 0 }
    }

    /// Writes an error line to the context's log, which `fsopen()` users read
    /// from the fd and `mount(8)` prints, prefixed with the filesystem name.
    pub(crate) fn error(&self, args: fmt::Arguments<'_>) {
        let raw = self.as_raw();
        // SAFETY: `raw` is valid; `log` is the context's own prefix and log
        // buffer, set up by `alloc_fs_context()`. `%pA` formats a
        // `fmt::Arguments` that lives across the call.
        unsafe {
            bindings::logfc(
                (*raw).log.log,
                (*raw).log.prefix,
                b'e' as c_char,
                super::c_ptr(c"%pA"),
                core::ptr::from_ref(&args).cast::<c_void>(),
            )
        };
    }

    /// The `source` parameter (the path to mount), if one was given.
    pub(crate) fn source(&self) -> Option<&CStr> {
        // SAFETY: `source` is NULL or a NUL-terminated string owned by the
        // context, which outlives the returned borrow.
        unsafe {
            let src = (*self.as_raw()).source;
            (!src.is_null()).then(|| super::c_str(src))
        }
    }

    /// Creates a new anonymous superblock with private information `info`
    /// and fills it with `T::fill_super` (`get_tree_nodev()`).
    pub(crate) fn get_tree_nodev(&self, info: Pin<KBox<T::Info>>) -> Result {
        let raw = self.as_raw();
        // SAFETY: `raw` is a context in `get_tree`; `sget_fc` moves
        // `s_fs_info` to the new superblock (freed by `kill_sb`), or leaves
        // it here on failure (freed by `free`). Either frees it in place
        // with `KBox::from_raw`: the pinned information never moves.
        unsafe {
            (*raw).s_fs_info = KBox::into_raw(Pin::into_inner_unchecked(info)).cast();
            to_result(bindings::get_tree_nodev(
                raw,
                Some(super::super_block::fill_super::<T>),
            ))
        }
    }

    /// Logs `args` as an error and returns `err`, for `return Err(fc.fail(..))`.
    pub(crate) fn fail(&self, err: Error, args: fmt::Arguments<'_>) -> Error {
        self.error(args);
        err
    }
}

/// A parameter as the table names it: its option number and its value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parsed {
    /// The option number of the table entry.
    pub(crate) opt: u8,
    /// The value of a `Spec::u32` entry.
    pub(crate) uint_32: u32,
}

/// One mount parameter (`struct fs_parameter`).
#[repr(transparent)]
pub(crate) struct Parameter(Opaque<bindings::fs_parameter>);

impl Parameter {
    /// The value of a `key=VALUE` parameter given as a string (every
    /// mount(2) option and `FSCONFIG_SET_STRING`), without its NUL.
    pub(crate) fn string(&self) -> Option<&[u8]> {
        let p = self.0.get();
        // SAFETY: `p` is valid for the borrow; for a string value `string`
        // is a NUL-terminated string the parameter owns.
        unsafe {
            if (*p).type_() != bindings::fs_value_type_fs_value_is_string {
                return None;
            }
            let s = (*p).__bindgen_anon_1.string;
            (!s.is_null()).then(|| super::c_str(s).to_bytes())
        }
    }

    /// # Safety
    ///
    /// `ptr` must point to a valid `fs_parameter` that stays valid for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::fs_parameter) -> &'a Self {
        // SAFETY: `repr(transparent)`, and validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }
}

struct Ops<T>(PhantomData<T>);

impl<T: FileSystem> Ops<T> {
    const TABLE: bindings::fs_context_operations = bindings::fs_context_operations {
        free: Some(free::<T>),
        parse_param: Some(parse_param::<T>),
        get_tree: Some(get_tree::<T>),
        reconfigure: Some(reconfigure::<T>),
        // SAFETY: all-zero is a valid table: NULL callbacks are optional.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    };
}

/// The `Context` of a context whose `init_fs_context` succeeded.
///
/// # Safety
///
/// `fc` must be a valid context of type `T` set up by [`init_fs_context`],
/// whose private data nobody else uses for `'a` (the VFS calls context
/// operations one at a time, under `fc->uapi_mutex`).
unsafe fn private<'a, T: FileSystem>(fc: *mut bindings::fs_context) -> &'a mut T::Context {
    // SAFETY: per the contract, `fs_private` is the `KBox<T::Context>` leaked
    // by `init_fs_context` and is not aliased.
    unsafe { &mut *(*fc).fs_private.cast::<T::Context>() }
}

/// `file_system_type::init_fs_context`.
///
/// # Safety
///
/// Called by the VFS with a freshly allocated context of type `T`.
pub(super) unsafe extern "C" fn init_fs_context<T: FileSystem>(
    fc: *mut bindings::fs_context,
) -> c_int {
    from_result(|| {
        // SAFETY: `fc` is valid for the call, per the function's contract.
        let ctx = T::Context::new(unsafe { FsContext::<T>::from_raw(fc) })?;
        let ctx = KBox::new(ctx, GFP_KERNEL)?;
        // SAFETY: `fc` is valid and not yet shared; `free` reclaims the box.
        unsafe {
            (*fc).fs_private = KBox::into_raw(ctx).cast();
            (*fc).ops = &Ops::<T>::TABLE;
        }
        Ok(0)
    })
}

/// `fs_context_operations::free`.
///
/// # Safety
///
/// Called by the VFS once, when the context set up by `init_fs_context` dies.
unsafe extern "C" fn free<T: FileSystem>(fc: *mut bindings::fs_context) {
    // SAFETY: `fc` is valid; `fs_private` is the box from `init_fs_context`
    // (or NULL), `s_fs_info` the one `get_tree_nodev` did not hand to a
    // superblock (or NULL), and nothing uses either after `free`.
    unsafe {
        let info = (*fc).s_fs_info.cast::<T::Info>();
        if !info.is_null() {
            drop(KBox::from_raw(info));
            (*fc).s_fs_info = core::ptr::null_mut();
        }
        let ctx = (*fc).fs_private.cast::<T::Context>();
        if !ctx.is_null() {
            drop(KBox::from_raw(ctx));
            (*fc).fs_private = core::ptr::null_mut();
        }
    }
}

/// `fs_context_operations::parse_param`.
///
/// # Safety
///
/// Called by the VFS with a valid context set up by `init_fs_context` and a
/// valid parameter.
unsafe extern "C" fn parse_param<T: FileSystem>(
    fc: *mut bindings::fs_context,
    param: *mut bindings::fs_parameter,
) -> c_int {
    from_result(|| {
        // SAFETY: valid for the call, per the function's contract.
        let (ctx, fctx, param) = unsafe {
            (
                private::<T>(fc),
                FsContext::<T>::from_raw(fc),
                Parameter::from_raw(param),
            )
        };
        ctx.parse_param(fctx, param)?;
        Ok(0)
    })
}

/// `fs_context_operations::get_tree`.
///
/// # Safety
///
/// Called by the VFS with a valid context set up by `init_fs_context`.
unsafe extern "C" fn get_tree<T: FileSystem>(fc: *mut bindings::fs_context) -> c_int {
    from_result(|| {
        // SAFETY: valid for the call, per the function's contract.
        let (ctx, fctx) = unsafe { (private::<T>(fc), FsContext::<T>::from_raw(fc)) };
        ctx.get_tree(fctx)?;
        Ok(0)
    })
}

/// `fs_context_operations::reconfigure`.
///
/// # Safety
///
/// Called by the VFS with a valid context for reconfiguring, set up by
/// `init_fs_context`.
unsafe extern "C" fn reconfigure<T: FileSystem>(fc: *mut bindings::fs_context) -> c_int {
    from_result(|| {
        // SAFETY: valid for the call, per the function's contract.
        let (ctx, fctx) = unsafe { (private::<T>(fc), FsContext::<T>::from_raw(fc)) };
        ctx.reconfigure(fctx)?;
        Ok(0)
    })
}

/// A mount request made from inside the kernel, for unit tests of option
/// parsing: `fs_context_for_mount()`, then `vfs_parse_fs_string()` per option,
/// as mount(2) does. Released on drop.
#[cfg(shiftfs_kunit)]
pub(crate) struct OwnedFsContext<T: FileSystem> {
    raw: *mut bindings::fs_context,
    _fs: PhantomData<T>,
}

#[cfg(shiftfs_kunit)]
impl<T: FileSystem> OwnedFsContext<T> {
    /// A new mount request for `T`.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `T`'s type is registered (the module is loaded) and
        // outlives the context; `fs_context_for_mount` returns a context or
        // an ERR_PTR.
        let raw = unsafe { bindings::fs_context_for_mount(T::fs_type().as_raw(), 0) };
        let raw = kernel::error::from_err_ptr(raw)?;
        Ok(Self {
            raw,
            _fs: PhantomData,
        })
    }

    /// Passes `key[=value]` as mount(2) would.
    pub(crate) fn parse(&mut self, key: &CStr, value: Option<&[u8]>) -> Result {
        let (ptr, len) = value.map_or((core::ptr::null(), 0), |v| (v.as_ptr(), v.len()));
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: `raw` is a live context we own; `key` is NUL-terminated and
        // `ptr`/`len` describe a readable buffer (or NULL, for a flag).
        let ret = unsafe {
            bindings::vfs_parse_fs_string(self.raw, super::c_ptr(key), ptr.cast(), len as _)
        };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as above; since 6.18 the value is a `qstr` (none for a
        // flag).
        let ret = unsafe {
            let mut q = bindings::qstr::default();
            q.__bindgen_anon_1.__bindgen_anon_1.len = len as u32;
            q.name = ptr.cast();
            let q = if ptr.is_null() {
                core::ptr::null()
            } else {
                &raw const q
            };
            bindings::vfs_parse_fs_qstr(self.raw, super::c_ptr(key), q)
        };
        to_result(ret)
    }

    /// What the filesystem recorded so far.
    pub(crate) fn data(&self) -> &T::Context {
        // SAFETY: the context is ours and was set up by `init_fs_context`.
        unsafe { &*(*self.raw).fs_private.cast::<T::Context>() }
    }
}

#[cfg(shiftfs_kunit)]
impl<T: FileSystem> Drop for OwnedFsContext<T> {
    fn drop(&mut self) {
        // SAFETY: `raw` is a context we own and release once.
        unsafe { bindings::put_fs_context(self.raw) };
    }
}
