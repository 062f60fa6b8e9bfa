//! Files and directories through libc, by directory fd and C string, as a
//! benchmark wants them: no allocation or conversion in the timed loops.

use crate::errno::{check, check_size, Errno, Sys};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `p` as a C string.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// `s` as a C string.
pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("string without NUL")
}

/// The dirfd for paths relative to the working directory.
pub const CWD: RawFd = libc::AT_FDCWD;

/// openat(2), always with O_CLOEXEC.
pub fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> Sys<OwnedFd> {
    // SAFETY: `name` is a NUL-terminated string; the fd returned is new and
    // owned by nothing else.
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens directory `name` of `dir` for reading.
pub fn open_dir(dir: RawFd, name: &CStr) -> Sys<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// open(2) of a path.
pub fn open_path(p: &Path, flags: libc::c_int, mode: libc::mode_t) -> Sys<OwnedFd> {
    openat(CWD, &cpath(p), flags, mode)
}

/// fstatat(2).
pub fn fstatat(dir: RawFd, name: &CStr, flags: libc::c_int) -> Sys<libc::stat> {
    // SAFETY: all-zero bytes are a valid `struct stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` is a valid out-pointer.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

/// read(2): the number of bytes read.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> Sys<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    check_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// pread(2) at `off`: the number of bytes read.
pub fn pread(fd: &OwnedFd, buf: &mut [u8], off: u64) -> Sys<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    check_size(unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            off as libc::off_t,
        )
    })
}

/// Writes all of `buf`, in as many write(2) calls as it takes.
pub fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Sys<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of its length.
        let n = check_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Closes `fd` and returns close()'s own error (a FUSE flush can fail).
pub fn close(fd: OwnedFd) -> Sys<()> {
    use std::os::fd::IntoRawFd;
    // SAFETY: we own the descriptor and give it up here.
    check(unsafe { libc::close(fd.into_raw_fd()) }).map(|_| ())
}

/// mkdirat(2).
pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> Sys<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }).map(|_| ())
}

/// sync(2): writes back every filesystem's dirty data.
pub fn sync() {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::sync() }
}

/// unlinkat(2).
pub fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> Sys<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(|_| ())
}

/// symlinkat(2).
pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> Sys<()> {
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(|_| ())
}

/// linkat(2) within one directory tree: `new` becomes a hard link to `old`.
pub fn linkat(dir: RawFd, old: &CStr, new: &CStr) -> Sys<()> {
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::linkat(dir, old.as_ptr(), dir, new.as_ptr(), 0) }).map(|_| ())
}

/// setxattr(2) of `name` on `p` (following a symlink), created or replaced.
pub fn setxattr(p: &Path, name: &CStr, value: &[u8]) -> Sys<()> {
    let c = cpath(p);
    // SAFETY: `c` and `name` are NUL-terminated; `value` is readable for
    // its length.
    check(unsafe {
        libc::setxattr(
            c.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(|_| ())
}

/// lchown(2): the owner of `p` itself, not of what a symlink points to.
pub fn chown(p: &Path, uid: u32, gid: u32) -> Sys<()> {
    let c = cpath(p);
    // SAFETY: `c` is NUL-terminated.
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) }).map(|_| ())
}

/// Reads the entries of directory `fd` with getdents64, calling `f` with
/// each name (without "." and "..") and its d_type. Returns the number of
/// entries.
pub fn read_dir(
    fd: &OwnedFd,
    buf: &mut [u8],
    mut f: impl FnMut(&CStr, u8) -> Sys<()>,
) -> Sys<usize> {
    let mut count = 0;
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(Errno::last());
        }
        if n == 0 {
            return Ok(count);
        }
        let mut off = 0usize;
        while off < n as usize {
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let dtype = buf[off + 18];
            let name = CStr::from_bytes_until_nul(&buf[off + 19..off + reclen])
                .map_err(|_| Errno(libc::EIO))?;
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                count += 1;
                f(name, dtype)?;
            }
            off += reclen;
        }
    }
}

/// Sets the process's file mode creation mask.
pub fn umask(mask: libc::mode_t) {
    // SAFETY: plain syscall.
    unsafe { libc::umask(mask) };
}
