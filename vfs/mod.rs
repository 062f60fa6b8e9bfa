// SPDX-License-Identifier: GPL-2.0

//! A typed layer over the VFS: the only place shiftfs touches the kernel's C
//! API, so that a change of that API is a change here alone.
//!
//! - Handles typed by filesystem: [`Inode<T>`](inode::Inode),
//!   [`Dentry<T>`](dentry::Dentry), [`SuperBlock<T>`](super_block::SuperBlock)
//!   and [`File<T>`](file::File) are `#[repr(transparent)]` over
//!   [`Opaque`] C structures. `T` is a [`FileSystem`](fs_type::FileSystem)
//!   of this module, whose objects carry what a stacked filesystem keeps
//!   (`.real()`, `.info()`), or [`Real`] for the objects of any other
//!   filesystem: the real one under a stacked one.
//! - Operation traits (`#[vtable]`) take typed references and return
//!   `Result`; the C operation tables are built from them by thin generic
//!   `unsafe extern "C"` trampolines that only convert pointers and cross
//!   the boundary with [`from_result`](kernel::error::from_result) or
//!   [`Error::to_ptr`](kernel::error::Error::to_ptr).
//! - Objects an RCU path walk hands over, which may be dying and must not
//!   be referenced, come as [`Rcu`] views.
//! - Locks, write access and credential overrides are guards that undo
//!   themselves on drop.
//!
//! Nothing here decides what shiftfs does; that is the top-level files'.

// Kbuild denies unsafe code in the whole crate; this layer is where it is
// allowed, each block with its SAFETY comment.
#![allow(unsafe_code)]

// Defined before the modules that use it (`macro_rules!` scope is textual).
/// What every typed handle of a reference-counted C object has:
/// `ARef` counting with `$get`/`$put`, `Send`/`Sync`, and the raw pointer
/// conversions of the layer. `$handle<T>` must be `#[repr(transparent)]`
/// over `Opaque<bindings::$c>` (and a `PhantomData<T>`).
macro_rules! typed_handle {
    ($handle:ident, $c:ident, $get:ident, $put:ident) => {
        // SAFETY: the C object is shared between threads with `$get` and
        // `$put`, which keep it alive while a reference is held.
        unsafe impl<T> $crate::vfs::AlwaysRefCounted for $handle<T> {
            fn inc_ref(&self) {
                // SAFETY: `self` is live and referenced, so its count is
                // non-zero.
                unsafe { $crate::vfs::bindings::$get(self.0.get()) };
            }

            /// Drops one reference.
            ///
            /// # Safety
            ///
            /// The caller must own a reference to `obj` and give it up.
            unsafe fn dec_ref(obj: core::ptr::NonNull<Self>) {
                // SAFETY: the caller gives up a reference it owns.
                unsafe { $crate::vfs::bindings::$put(obj.as_ptr().cast()) };
            }
        }

        // SAFETY: the C object is used from any thread; its fields are
        // guarded by its own locks, and references are counted atomically.
        unsafe impl<T> Send for $handle<T> {}
        // SAFETY: as above.
        unsafe impl<T> Sync for $handle<T> {}

        impl<T> $handle<T> {
            /// # Safety
            ///
            /// `ptr` must point to a live object of kind `T` (see the
            /// type's invariants) that stays live for `'a`.
            pub(super) unsafe fn from_raw<'a>(ptr: *mut $crate::vfs::bindings::$c) -> &'a Self {
                // SAFETY: `repr(transparent)`; the rest is the caller's
                // promise.
                unsafe { &*ptr.cast() }
            }

            pub(super) fn as_raw(&self) -> *mut $crate::vfs::bindings::$c {
                self.0.get()
            }
        }
    };
}

pub(crate) mod acl;
pub(crate) mod bindings;
pub(crate) mod cred;
pub(crate) mod dentry;
pub(crate) mod errno;
pub(crate) mod file;
pub(crate) mod fs_context;
pub(crate) mod fs_type;
pub(crate) mod inode;
#[cfg(shiftfs_kunit)]
pub(crate) mod kunit;
pub(crate) mod module_param;
pub(crate) mod namei;
pub(crate) mod once;
pub(crate) mod param;
pub(crate) mod path;
pub(crate) mod super_block;
pub(crate) mod user_ns;
pub(crate) mod xattr;

#[cfg(shiftfs_kernel_7)]
pub(crate) use kernel::sync::aref::{ARef, AlwaysRefCounted};
#[cfg(not(shiftfs_kernel_7))]
pub(crate) use kernel::types::{ARef, AlwaysRefCounted};

/// The objects of a filesystem this module does not implement (or does not
/// know to be one of its own): the real filesystem under a stacked one, or
/// the filesystem a mount source is on.
pub(crate) enum Real {}

/// An object handed over by an RCU path walk (`LOOKUP_RCU`,
/// `MAY_NOT_BLOCK`): readable for the call, but possibly being freed, so it
/// offers reads only and can never be given a reference of its own.
///
/// # Invariants
///
/// The object stays readable while the `Rcu` lives: the walk is an RCU
/// read-side section, and dentries and inodes are freed after a grace
/// period.
pub(crate) struct Rcu<'a, X>(&'a X);

impl<X> Clone for Rcu<'_, X> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<X> Copy for Rcu<'_, X> {}

/// A C string as the kernel's C functions take it (the kernel's `char` is
/// unsigned).
// The kernel crate's own conversions differ between the kernels (7.x's
// lints ask for them), so both pass through here.
#[allow(clippy::disallowed_methods)]
pub(super) const fn c_ptr(s: &core::ffi::CStr) -> *const kernel::ffi::c_char {
    s.as_ptr().cast()
}

/// A C string the kernel's C functions gave.
///
/// # Safety
///
/// `ptr` must be a NUL-terminated string that stays as it is for `'a`.
#[allow(clippy::disallowed_methods)]
pub(super) unsafe fn c_str<'a>(ptr: *const kernel::ffi::c_char) -> &'a core::ffi::CStr {
    // SAFETY: per the contract.
    unsafe { core::ffi::CStr::from_ptr(ptr.cast()) }
}

/// A C string shown in a message (`{}`): printable ASCII as it is, other
/// bytes escaped.
pub(crate) fn show(s: &core::ffi::CStr) -> Show<'_> {
    Show(s.to_bytes())
}

/// Bytes shown in a message, as [`show`] shows a C string.
pub(crate) fn show_bytes(s: &[u8]) -> Show<'_> {
    Show(s)
}

/// See [`show`].
pub(crate) struct Show<'a>(&'a [u8]);

impl core::fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) {
                core::fmt::Write::write_char(f, b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}
