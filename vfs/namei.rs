// SPDX-License-Identifier: GPL-2.0

//! Names: `lookup` and the namespace operations of directories (create,
//! mkdir, mknod, symlink, link, unlink, rmdir, rename, tmpfile), and the
//! calls that make and remove entries in real directories.

use super::{
    bindings,
    cred::Credential,
    dentry::{Dentry, LookupFlags, NewDentry},
    errno::to_result,
    file::{File, OpenFlags},
    fs_type::FileSystem,
    inode::{nop_idmap, Inode, Mode},
    path::PathRef,
    ARef, Real,
};
use core::{ffi::CStr, marker::PhantomData, ptr::NonNull};
use kernel::{
    error::{from_err_ptr, from_result},
    ffi::{c_char, c_int, c_uint},
    prelude::*,
};

/// The entry a namespace operation works on: a dentry of `T` in a
/// directory whose lock the VFS holds, so that its name and parent stay as
/// they are for the operation.
pub(crate) struct Entry<'a, T> {
    dir: &'a Inode<T>,
    dentry: &'a Dentry<T>,
}

impl<'a, T> Clone for Entry<'a, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Entry<'_, T> {}

impl<'a, T> Entry<'a, T> {
    /// # Safety
    ///
    /// `dir` must be a directory of `T` whose lock the VFS holds for `'a`,
    /// and `dentry` a looked-up dentry in it.
    unsafe fn from_raw(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> Self {
        // SAFETY: per the contract both live for `'a`.
        unsafe {
            Self {
                dir: Inode::from_raw(dir),
                dentry: Dentry::from_raw(dentry),
            }
        }
    }

    /// The directory's inode.
    pub(crate) fn dir(&self) -> &'a Inode<T> {
        self.dir
    }

    /// The entry's dentry.
    pub(crate) fn dentry(&self) -> &'a Dentry<T> {
        self.dentry
    }

    /// The directory's dentry.
    pub(crate) fn parent(&self) -> &'a Dentry<T> {
        // SAFETY: the VFS holds the directory's lock for `'a`.
        unsafe { self.dentry.parent_locked() }
    }

    /// The entry's name.
    pub(crate) fn name(&self) -> &'a [u8] {
        // SAFETY: the VFS holds the directory's lock for `'a`.
        unsafe { self.dentry.name_locked() }
    }
}

impl<T: FileSystem> Entry<'_, T> {
    /// Gives the entry, negative, `inode` (`d_instantiate()`).
    pub(crate) fn instantiate(&self, inode: ARef<Inode<T>>) -> Result {
        let d = self.dentry.as_raw();
        // SAFETY: the VFS holds the directory's lock, so nothing else gives
        // the entry an inode meanwhile; `d_instantiate` takes over the
        // inode reference.
        unsafe {
            if !(*d).d_inode.is_null() {
                return Err(EEXIST);
            }
            self.dentry.check_real();
            bindings::d_instantiate(d, ARef::into_raw(inode).as_ptr().cast());
        }
        Ok(())
    }
}

/// Flags of `renameat2()` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`,
/// `RENAME_WHITEOUT`), passed on as they are.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RenameFlags(c_uint);

/// The namespace operations of a filesystem's directories. Implemented by
/// the filesystem type.
#[vtable]
pub(crate) trait NamespaceOperations: Sized {
    /// `lookup`: gives `dentry`, a name in `dir`, its inode (or none); the
    /// dentry to use instead, if any.
    fn lookup(
        _dir: &Inode<Self>,
        _dentry: NewDentry<'_, Self>,
        _flags: LookupFlags,
    ) -> Result<Option<ARef<Dentry<Self>>>> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `create` of a regular file.
    fn create(_entry: Entry<'_, Self>, _mode: Mode, _excl: bool) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `mkdir`.
    fn mkdir(_entry: Entry<'_, Self>, _mode: Mode) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `mknod`: a device node, fifo, socket or whiteout.
    fn mknod(_entry: Entry<'_, Self>, _mode: Mode, _dev: u32) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `symlink` to `target`.
    fn symlink(_entry: Entry<'_, Self>, _target: &CStr) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `link`: a new name `entry` for `old`'s inode.
    fn link(_old: &Dentry<Self>, _entry: Entry<'_, Self>) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `unlink`.
    fn unlink(_entry: Entry<'_, Self>) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `rmdir`.
    fn rmdir(_entry: Entry<'_, Self>) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `rename`; the VFS holds both directories' locks and the entries'.
    fn rename(_old: Entry<'_, Self>, _new: Entry<'_, Self>, _flags: RenameFlags) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// `tmpfile` (`O_TMPFILE`): an unnamed file in `dir`, opened as `file`.
    fn tmpfile(_dir: &Inode<Self>, _file: TmpFile<'_, Self>, _mode: Mode) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The inode operations of directories of `T`: `common` and the namespace
/// operations.
pub(super) const fn dir_inode_operations<T: FileSystem>(
    common: bindings::inode_operations,
) -> bindings::inode_operations {
    bindings::inode_operations {
        lookup: if T::HAS_LOOKUP {
            Some(lookup::<T>)
        } else {
            None
        },
        create: if T::HAS_CREATE {
            Some(create::<T>)
        } else {
            None
        },
        mkdir: if T::HAS_MKDIR { Some(mkdir::<T>) } else { None },
        mknod: if T::HAS_MKNOD { Some(mknod::<T>) } else { None },
        symlink: if T::HAS_SYMLINK {
            Some(symlink::<T>)
        } else {
            None
        },
        link: if T::HAS_LINK { Some(link::<T>) } else { None },
        unlink: if T::HAS_UNLINK {
            Some(unlink::<T>)
        } else {
            None
        },
        rmdir: if T::HAS_RMDIR { Some(rmdir::<T>) } else { None },
        rename: if T::HAS_RENAME {
            Some(rename::<T>)
        } else {
            None
        },
        tmpfile: if T::HAS_TMPFILE {
            Some(tmpfile::<T>)
        } else {
            None
        },
        ..common
    }
}

/// # Safety
///
/// Called by the VFS as `lookup` of a directory of `T`, with a new,
/// unhashed dentry in it.
unsafe extern "C" fn lookup<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    flags: c_uint,
) -> *mut bindings::dentry {
    // SAFETY: per the contract.
    let (dir, dentry) = unsafe { (Inode::from_raw(dir), NewDentry::from_raw(dentry)) };
    match T::lookup(dir, dentry, LookupFlags::from_raw(flags)) {
        Ok(alias) => alias.map_or(core::ptr::null_mut(), |a| ARef::into_raw(a).as_ptr().cast()),
        Err(e) => e.to_ptr(),
    }
}

/// # Safety
///
/// Called by the VFS as `create` of a directory of `T`, locked, with a
/// negative looked-up dentry in it.
#[cfg(not(shiftfs_kernel_7))]
unsafe extern "C" fn create<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    excl: bool,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::create(unsafe { Entry::from_raw(dir, dentry) }, Mode(mode), excl)?;
        Ok(0)
    })
}

/// # Safety
///
/// As above; since 6.19 `create` must assume the file does not exist yet
/// (as `O_EXCL` says).
#[cfg(shiftfs_kernel_7)]
unsafe extern "C" fn create<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::create(unsafe { Entry::from_raw(dir, dentry) }, Mode(mode), true)?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`create`], as `mkdir`.
#[cfg(not(shiftfs_kernel_7))]
unsafe extern "C" fn mkdir<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::mkdir(unsafe { Entry::from_raw(dir, dentry) }, Mode(mode))?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`create`], as `mkdir`, which returns a dentry since 6.15: NULL
/// when it gave `dentry` its inode (or left it to a new lookup).
#[cfg(shiftfs_kernel_7)]
unsafe extern "C" fn mkdir<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> *mut bindings::dentry {
    // SAFETY: per the contract.
    match T::mkdir(unsafe { Entry::from_raw(dir, dentry) }, Mode(mode)) {
        Ok(()) => core::ptr::null_mut(),
        Err(e) => e.to_ptr(),
    }
}

/// # Safety
///
/// As for [`create`], as `mknod`.
unsafe extern "C" fn mknod<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    dev: bindings::dev_t,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::mknod(unsafe { Entry::from_raw(dir, dentry) }, Mode(mode), dev)?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`create`], as `symlink`, with a NUL-terminated target.
unsafe extern "C" fn symlink<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    target: *const c_char,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract; the target lives for the call.
        let (entry, target) = unsafe { (Entry::from_raw(dir, dentry), super::c_str(target)) };
        T::symlink(entry, target)?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`create`], as `link`, with `old` a positive dentry of `T`.
unsafe extern "C" fn link<T: FileSystem>(
    old: *mut bindings::dentry,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (old, entry) = unsafe { (Dentry::from_raw(old), Entry::from_raw(dir, dentry)) };
        T::link(old, entry)?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `unlink` of a locked directory of `T`, with a
/// positive dentry in it, also locked.
unsafe extern "C" fn unlink<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::unlink(unsafe { Entry::from_raw(dir, dentry) })?;
        Ok(0)
    })
}

/// # Safety
///
/// As for [`unlink`], as `rmdir`.
unsafe extern "C" fn rmdir<T: FileSystem>(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        T::rmdir(unsafe { Entry::from_raw(dir, dentry) })?;
        Ok(0)
    })
}

/// # Safety
///
/// Called by the VFS as `rename` of directories of `T`, with both
/// directories and the entries' inodes locked.
unsafe extern "C" fn rename<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    old_dir: *mut bindings::inode,
    old: *mut bindings::dentry,
    new_dir: *mut bindings::inode,
    new: *mut bindings::dentry,
    flags: c_uint,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract.
        let (old, new) = unsafe { (Entry::from_raw(old_dir, old), Entry::from_raw(new_dir, new)) };
        T::rename(old, new, RenameFlags(flags))?;
        Ok(0)
    })
}

/// A file being opened with `O_TMPFILE` on a new, unnamed dentry of `T`.
///
/// # Invariants
///
/// `file` is being opened (not `FMODE_OPENED`) on a new dentry of `T`
/// whose `d_fsdata` is not set yet, in a directory the VFS holds.
pub(crate) struct TmpFile<'a, T> {
    file: *mut bindings::file,
    _p: PhantomData<&'a T>,
}

impl<T: FileSystem> TmpFile<'_, T> {
    fn dentry(&self) -> *mut bindings::dentry {
        // SAFETY: per the type's invariants the file is live.
        unsafe { bindings::shiftfs_file_dentry(self.file) }
    }

    /// The open flags.
    pub(crate) fn flags(&self) -> OpenFlags {
        // SAFETY: per the type's invariants the file is live; a plain read
        // of a word-sized field.
        OpenFlags(unsafe { (*self.file).f_flags })
    }

    /// The directory's dentry.
    pub(crate) fn parent(&self) -> &Dentry<T> {
        // SAFETY: the new dentry is private to this open; its parent is a
        // looked-up dentry of `T` that the VFS holds.
        unsafe { Dentry::from_raw(self.dentry()).parent_locked() }
    }

    /// Opens an unnamed real file in `parent` as the real file of this one
    /// (`backing_tmpfile_open()`), with `flags` and `cred`, which it keeps.
    pub(crate) fn open_real(
        &self,
        parent: PathRef<'_>,
        mode: Mode,
        flags: OpenFlags,
        cred: &Credential,
    ) -> Result<ARef<File<Real>>> {
        // SAFETY: `file` is being opened; `parent` and `cred` are live, and
        // the backing file takes references of its own to them.
        let real = from_err_ptr(unsafe {
            bindings::backing_tmpfile_open(
                self.file,
                flags.0 as c_int,
                parent.as_raw(),
                mode.0,
                cred.as_raw(),
            )
        })?;
        // SAFETY: a new file with its reference, now ours.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(real).cast()) })
    }

    /// Names nothing yet, but makes the file's dentry stand on `real`'s and
    /// show `inode`, and finishes the open with `real` as its real file
    /// (`d_tmpfile()`'s parts and `finish_open()`).
    pub(crate) fn finish(self, real: ARef<File<Real>>, inode: ARef<Inode<T>>) -> Result {
        let (file, d) = (self.file, self.dentry());
        let real_dentry: ARef<Dentry<Real>> = real.dentry().into();
        // SAFETY: per the type's invariants `d` is new and ours: it takes
        // the reference to the real dentry (dropped by `d_release`) and to
        // the inode; the file takes the real one, dropped by `release` once
        // the open has finished, or below if it has not.
        unsafe {
            (*d).d_fsdata = ARef::into_raw(real_dentry).as_ptr().cast();
            Dentry::<T>::from_raw(d).check_real();
            let inode = ARef::into_raw(inode).as_ptr().cast();
            bindings::d_mark_tmpfile(file, inode);
            bindings::d_instantiate(d, inode);
            (*file).private_data = ARef::into_raw(real).as_ptr().cast();
            let ret = bindings::finish_open(file, d, Some(tmpfile_opened));
            if (*file).f_mode & bindings::SHIFTFS_FMODE_OPENED == 0 {
                // Without FMODE_OPENED, `release` is not called.
                bindings::fput((*file).private_data.cast());
                (*file).private_data = core::ptr::null_mut();
            }
            to_result(ret)
        }
    }
}

/// The `open` of a file made by `tmpfile`: its real file is open already.
///
/// # Safety
///
/// Called by `finish_open` only.
unsafe extern "C" fn tmpfile_opened(
    _inode: *mut bindings::inode,
    _file: *mut bindings::file,
) -> c_int {
    0
}

/// # Safety
///
/// Called by the VFS as `tmpfile` of a directory of `T`, with `file` being
/// opened on a new unhashed dentry in it.
unsafe extern "C" fn tmpfile<T: FileSystem>(
    _idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> c_int {
    from_result(|| {
        // SAFETY: per the contract (see `TmpFile`'s invariants).
        let dir = unsafe { Inode::from_raw(dir) };
        let file = TmpFile {
            file,
            _p: PhantomData,
        };
        T::tmpfile(dir, file, Mode(mode))?;
        Ok(0)
    })
}

impl Dentry<Real> {
    /// Looks `name` up in this directory without holding its lock
    /// (`lookup_one_len_unlocked()`), with the calling task's permission
    /// to search it.
    pub(crate) fn lookup_unlocked(&self, name: &[u8]) -> Result<ARef<Dentry<Real>>> {
        let len = c_int::try_from(name.len()).map_err(|_| EINVAL)?;
        #[cfg(not(shiftfs_kernel_7))]
        let (name, dir) = (name.as_ptr().cast(), self.as_raw());
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: `self` is live; `name` holds `len` bytes.
        let d = unsafe { bindings::lookup_one_len_unlocked(name, dir, len) };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as above; since 6.16 the name is a `qstr` of our own,
        // whose hash the lookup sets (`QSTR_LEN()`).
        let d = unsafe {
            let mut q = bindings::qstr::default();
            q.__bindgen_anon_1.__bindgen_anon_1.len = len as u32;
            q.name = name.as_ptr().cast();
            bindings::lookup_one_unlocked(nop_idmap(), &mut q, self.as_raw())
        };
        let d = from_err_ptr(d)?;
        // SAFETY: a referenced dentry, now ours.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(d).cast()) })
    }

    /// Locks this directory for a change of its entries (its inode's lock,
    /// nested as a parent's), if it is still positive.
    pub(crate) fn lock_dir(&self) -> Option<DirLock<'_>> {
        let inode = self.inode()?;
        // SAFETY: the inode of a dentry we hold is live; the guard unlocks it.
        unsafe { bindings::shiftfs_inode_lock_parent(inode.as_raw()) };
        Some(DirLock { dir: self, inode })
    }
}

/// Whether `child` is still the hashed entry `name` of `dir`, whose lock
/// the caller holds (so that `child`'s name and parent are stable).
fn is_entry(dir: &Dentry<Real>, child: &Dentry<Real>, name: &[u8]) -> bool {
    // SAFETY: `child` is live; with its parent's lock held (the caller's),
    // its parent and name do not change.
    let (parent, child_name) = unsafe { ((*child.as_raw()).d_parent, child.name_locked()) };
    parent == dir.as_raw() && child_name == name && !child.is_unhashed()
}

/// A real directory locked for a change of its entries; unlocked on drop.
pub(crate) struct DirLock<'a> {
    dir: &'a Dentry<Real>,
    inode: &'a Inode<Real>,
}

impl Drop for DirLock<'_> {
    fn drop(&mut self) {
        // SAFETY: `lock_dir` locked it.
        unsafe { bindings::shiftfs_inode_unlock(self.inode.as_raw()) };
    }
}

/// No delegation is broken by these calls (NULL: the caller would not wait
/// for one).
#[cfg(not(shiftfs_kernel_7))]
const NO_DELEGATION: *mut *mut bindings::inode = core::ptr::null_mut();
#[cfg(shiftfs_kernel_7)]
const NO_DELEGATION: *mut bindings::delegated_inode = core::ptr::null_mut();

/// Each operation ends the locked section: the lock goes with the guard.
impl DirLock<'_> {
    /// Whether `child` is still the hashed entry `name` of this directory.
    pub(crate) fn has_entry(&self, child: &Dentry<Real>, name: &[u8]) -> bool {
        is_entry(self.dir, child, name)
    }

    /// `vfs_create()` of a regular file at negative `child`.
    pub(crate) fn create(self, child: &Dentry<Real>, mode: Mode, excl: bool) -> Result {
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: the directory is locked and `child` a dentry in it.
        let ret = unsafe {
            bindings::vfs_create(
                nop_idmap(),
                self.inode.as_raw(),
                child.as_raw(),
                mode.0,
                excl,
            )
        };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as above; since 6.19 the directory is the child's parent,
        // and the file is created as with O_EXCL.
        let ret = unsafe {
            let _ = excl;
            bindings::vfs_create(nop_idmap(), child.as_raw(), mode.0, NO_DELEGATION)
        };
        to_result(ret)
    }

    /// `vfs_mkdir()` at negative `child`.
    #[cfg(not(shiftfs_kernel_7))]
    pub(crate) fn mkdir(self, child: &Dentry<Real>, mode: Mode) -> Result {
        // SAFETY: as for `create`.
        to_result(unsafe {
            bindings::vfs_mkdir(nop_idmap(), self.inode.as_raw(), child.as_raw(), mode.0)
        })
    }

    /// `vfs_mkdir()` at negative `child`. Since 6.15 it may leave `child`
    /// negative and return the dentry the directory got instead (a new
    /// lookup of `child`'s name finds it), and on failure it unlocks the
    /// directory and drops the dentry it was given.
    #[cfg(shiftfs_kernel_7)]
    pub(crate) fn mkdir(self, child: &Dentry<Real>, mode: Mode) -> Result {
        let given = ARef::into_raw(ARef::from(child));
        // SAFETY: as for `create`; `vfs_mkdir` takes over the reference in
        // `given` and returns one (or none, on failure).
        let made = unsafe {
            bindings::vfs_mkdir(
                nop_idmap(),
                self.inode.as_raw(),
                given.as_ptr().cast(),
                mode.0,
                NO_DELEGATION,
            )
        };
        match from_err_ptr(made) {
            Err(e) => {
                // Unlocked already.
                core::mem::forget(self);
                Err(e)
            }
            Ok(made) => {
                // SAFETY: the reference `vfs_mkdir` returned.
                drop(unsafe {
                    ARef::<Dentry<Real>>::from_raw(NonNull::new_unchecked(made).cast())
                });
                Ok(())
            }
        }
    }

    /// `vfs_mknod()` at negative `child`.
    pub(crate) fn mknod(self, child: &Dentry<Real>, mode: Mode, dev: u32) -> Result {
        let (dir, d) = (self.inode.as_raw(), child.as_raw());
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: as for `create`.
        let ret = unsafe { bindings::vfs_mknod(nop_idmap(), dir, d, mode.0, dev) };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as for `create`.
        let ret = unsafe { bindings::vfs_mknod(nop_idmap(), dir, d, mode.0, dev, NO_DELEGATION) };
        to_result(ret)
    }

    /// `vfs_symlink()` to `target` at negative `child`.
    pub(crate) fn symlink(self, child: &Dentry<Real>, target: &CStr) -> Result {
        let (dir, d, target) = (self.inode.as_raw(), child.as_raw(), super::c_ptr(target));
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: as for `create`; `target` is NUL-terminated.
        let ret = unsafe { bindings::vfs_symlink(nop_idmap(), dir, d, target) };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as for `create`; `target` is NUL-terminated.
        let ret = unsafe { bindings::vfs_symlink(nop_idmap(), dir, d, target, NO_DELEGATION) };
        to_result(ret)
    }

    /// `vfs_link()`: `child`, negative, becomes a name of `old`'s inode.
    pub(crate) fn link(self, old: &Dentry<Real>, child: &Dentry<Real>) -> Result {
        // SAFETY: as for `create`; `old` is live.
        to_result(unsafe {
            bindings::vfs_link(
                old.as_raw(),
                nop_idmap(),
                self.inode.as_raw(),
                child.as_raw(),
                NO_DELEGATION,
            )
        })
    }

    /// `vfs_unlink()` of positive `child`.
    pub(crate) fn unlink(self, child: &Dentry<Real>) -> Result {
        // SAFETY: as for `create`.
        to_result(unsafe {
            bindings::vfs_unlink(
                nop_idmap(),
                self.inode.as_raw(),
                child.as_raw(),
                NO_DELEGATION,
            )
        })
    }

    /// `vfs_rmdir()` of positive `child`.
    pub(crate) fn rmdir(self, child: &Dentry<Real>) -> Result {
        let (dir, d) = (self.inode.as_raw(), child.as_raw());
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: as for `create`.
        let ret = unsafe { bindings::vfs_rmdir(nop_idmap(), dir, d) };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: as for `create`.
        let ret = unsafe { bindings::vfs_rmdir(nop_idmap(), dir, d, NO_DELEGATION) };
        to_result(ret)
    }
}

/// The two real directories of a rename, locked; unlocked on drop.
pub(crate) struct RenameLock<'a> {
    old_dir: &'a Dentry<Real>,
    old: &'a Dentry<Real>,
    new_dir: &'a Dentry<Real>,
    new: &'a Dentry<Real>,
    flags: RenameFlags,
    /// What `start_renaming_two_dentries()` locked and referenced.
    #[cfg(shiftfs_kernel_7)]
    rd: bindings::renamedata,
}

impl<'a> RenameLock<'a> {
    /// Locks `old_dir` and `new_dir` for renaming `old` in the one to `new`
    /// in the other (`lock_rename()`). A directory moved below itself is
    /// EINVAL, one moved over an ancestor ENOTEMPTY.
    #[cfg(not(shiftfs_kernel_7))]
    pub(crate) fn lock(
        old_dir: &'a Dentry<Real>,
        old: &'a Dentry<Real>,
        new_dir: &'a Dentry<Real>,
        new: &'a Dentry<Real>,
        flags: RenameFlags,
    ) -> Result<Self> {
        let (od, nd) = (old_dir.as_raw(), new_dir.as_raw());
        // SAFETY: both are live directories; `Drop` unlocks them.
        let trap = from_err_ptr(unsafe { bindings::lock_rename(od, nd) })?;
        let locked = Self {
            old_dir,
            old,
            new_dir,
            new,
            flags,
        };
        if trap == old.as_raw() {
            return Err(EINVAL);
        }
        if trap == new.as_raw() {
            return Err(super::errno::enotempty());
        }
        Ok(locked)
    }

    /// Locks `old_dir` and `new_dir` for renaming `old` in the one to `new`
    /// in the other (`start_renaming_two_dentries()`, since 6.18). A
    /// directory moved below itself is EINVAL, one moved over an ancestor
    /// ENOTEMPTY, an entry no longer in its directory ESTALE.
    #[cfg(shiftfs_kernel_7)]
    pub(crate) fn lock(
        old_dir: &'a Dentry<Real>,
        old: &'a Dentry<Real>,
        new_dir: &'a Dentry<Real>,
        new: &'a Dentry<Real>,
        flags: RenameFlags,
    ) -> Result<Self> {
        let mut rd = bindings::renamedata {
            mnt_idmap: nop_idmap(),
            old_parent: old_dir.as_raw(),
            old_dentry: core::ptr::null_mut(),
            new_parent: new_dir.as_raw(),
            new_dentry: core::ptr::null_mut(),
            delegated_inode: NO_DELEGATION,
            flags: flags.0,
        };
        let (o, n) = (old.as_raw(), new.as_raw());
        // SAFETY: all four dentries are live; on success `Drop` ends what
        // this starts (`end_renaming()`).
        let ret = unsafe { bindings::start_renaming_two_dentries(&mut rd, o, n) };
        if ret == EINVAL.to_errno() && (moved(old_dir, old) || moved(new_dir, new)) {
            return Err(super::errno::estale());
        }
        to_result(ret)?;
        Ok(Self {
            old_dir,
            old,
            new_dir,
            new,
            flags,
            rd,
        })
    }

    /// Whether the source is still the hashed entry `name` of its
    /// directory.
    pub(crate) fn has_old_entry(&self, name: &[u8]) -> bool {
        is_entry(self.old_dir, self.old, name)
    }

    /// Whether the target is still the hashed entry `name` of its
    /// directory.
    pub(crate) fn has_new_entry(&self, name: &[u8]) -> bool {
        is_entry(self.new_dir, self.new, name)
    }

    /// `vfs_rename()`, with the flags given to [`RenameLock::lock`].
    #[cfg(not(shiftfs_kernel_7))]
    pub(crate) fn rename(self) -> Result {
        let (od, nd) = (
            self.old_dir.inode().ok_or(ENOENT)?,
            self.new_dir.inode().ok_or(ENOENT)?,
        );
        let mut rd = bindings::renamedata {
            old_mnt_idmap: nop_idmap(),
            old_dir: od.as_raw(),
            old_dentry: self.old.as_raw(),
            new_mnt_idmap: nop_idmap(),
            new_dir: nd.as_raw(),
            new_dentry: self.new.as_raw(),
            delegated_inode: NO_DELEGATION,
            flags: self.flags.0,
        };
        // SAFETY: both directories are locked and the entries live.
        to_result(unsafe { bindings::vfs_rename(&mut rd) })
    }

    /// `vfs_rename()`, with the flags given to [`RenameLock::lock`].
    #[cfg(shiftfs_kernel_7)]
    pub(crate) fn rename(mut self) -> Result {
        let _ = self.flags;
        // SAFETY: `start_renaming_two_dentries` locked the directories and
        // filled `rd` in.
        to_result(unsafe { bindings::vfs_rename(&mut self.rd) })
    }
}

/// Whether `child` is no longer a hashed entry of `dir` (read without the
/// directory's lock: only to tell why a rename could not start).
#[cfg(shiftfs_kernel_7)]
fn moved(dir: &Dentry<Real>, child: &Dentry<Real>) -> bool {
    // SAFETY: `child` is live; `d_parent` is read once.
    let parent = unsafe { core::ptr::read_volatile(&(*child.as_raw()).d_parent) };
    parent != dir.as_raw() || child.is_unhashed()
}

impl Drop for RenameLock<'_> {
    fn drop(&mut self) {
        #[cfg(not(shiftfs_kernel_7))]
        // SAFETY: `lock` locked these two.
        unsafe {
            bindings::unlock_rename(self.old_dir.as_raw(), self.new_dir.as_raw())
        };
        #[cfg(shiftfs_kernel_7)]
        // SAFETY: `lock` started the rename; this ends it.
        unsafe {
            bindings::end_renaming(&mut self.rd)
        };
    }
}
