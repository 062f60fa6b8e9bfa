//! Mounts through libc: mount(2) and umount2(2), making the mount tree
//! private, and idmapped bind mounts (open_tree, mount_setattr,
//! move_mount).

use crate::{
    errno::{check, check_long, Sys},
    fs::{cpath, cstr},
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// mount(2).
pub fn mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> Sys<()> {
    let (s, t, f, d) = (cstr(src), cpath(target), cstr(fstype), cstr(data));
    // SAFETY: all strings are NUL-terminated.
    check(unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr().cast()) })
        .map(|_| ())
}

/// umount2(2).
pub fn umount(target: &Path, flags: libc::c_int) -> Sys<()> {
    let t = cpath(target);
    // SAFETY: `t` is NUL-terminated.
    check(unsafe { libc::umount2(t.as_ptr(), flags) }).map(|_| ())
}

/// Makes every mount of the calling process's mount namespace private
/// (`mount --make-rprivate /`), so that the mounts it makes from now on
/// stay in it: what a container does first in its new mount namespace.
pub fn make_mounts_private() -> Sys<()> {
    // SAFETY: the target is NUL-terminated; a propagation change reads no
    // source, type or data.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map(|_| ())
}

/// `struct mount_attr` of mount_setattr(2) (uapi linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Attaches at `target` an idmapped bind mount of `src` whose id mapping is
/// that of the user namespace `userns` (what `mount --bind -o
/// X-mount.idmap=` does with util-linux 2.39). An error names the call
/// that failed.
pub fn idmapped_bind(src: &Path, target: &Path, userns: &OwnedFd) -> Result<(), String> {
    let tree = idmapped_tree(src, userns)?;
    let t = cpath(target);
    // SAFETY: both strings are NUL-terminated.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map_err(|e| format!("move_mount: {e}"))?;
    Ok(())
}

/// A detached idmapped bind mount of `src` (its fd: the mount lives while
/// the fd is open), id mapping that of the user namespace `userns`.
pub fn idmapped_tree(src: &Path, userns: &OwnedFd) -> Result<OwnedFd, String> {
    let s = cpath(src);
    // SAFETY: `s` is NUL-terminated; the result is a new fd.
    let fd = check_long(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            s.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    })
    .map_err(|e| format!("open_tree: {e}"))?;
    // SAFETY: a new fd owned by nothing else.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `attr` is a valid mount_attr of the size passed; "" is NUL-terminated.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map_err(|e| format!("mount_setattr(MOUNT_ATTR_IDMAP): {e}"))?;
    Ok(tree)
}
