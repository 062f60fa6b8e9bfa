//! Thin syscall wrappers over libc: every call returns the errno it failed
//! with, so that a workload that fails reports "n/a (EACCES)" rather than
//! aborting the run.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An errno, printed by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    pub fn name(self) -> String {
        let n = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::EBADF => "EBADF",
            libc::ECHILD => "ECHILD",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::EXDEV => "EXDEV",
            libc::ENODEV => "ENODEV",
            libc::ENOTDIR => "ENOTDIR",
            libc::EISDIR => "EISDIR",
            libc::EINVAL => "EINVAL",
            libc::ENFILE => "ENFILE",
            libc::EMFILE => "EMFILE",
            libc::EFBIG => "EFBIG",
            libc::ENOSPC => "ENOSPC",
            libc::EROFS => "EROFS",
            libc::EMLINK => "EMLINK",
            libc::ERANGE => "ERANGE",
            libc::ENAMETOOLONG => "ENAMETOOLONG",
            libc::ENOSYS => "ENOSYS",
            libc::ENOTEMPTY => "ENOTEMPTY",
            libc::ELOOP => "ELOOP",
            libc::ENODATA => "ENODATA",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ESTALE => "ESTALE",
            libc::EDQUOT => "EDQUOT",
            libc::ENOTCONN => "ENOTCONN",
            libc::ECONNABORTED => "ECONNABORTED",
            n => return format!("errno {n}"),
        };
        n.to_owned()
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

pub type Sys<T> = Result<T, Errno>;

fn check(r: libc::c_int) -> Sys<libc::c_int> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

fn check_size(r: isize) -> Sys<usize> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("string without NUL")
}

/// The dirfd for paths relative to the working directory.
pub const CWD: RawFd = libc::AT_FDCWD;

pub fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> Sys<OwnedFd> {
    // SAFETY: `name` is a NUL-terminated string; the fd returned is new and
    // owned by nothing else.
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn open_dir(dir: RawFd, name: &CStr) -> Sys<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

pub fn open_path(p: &Path, flags: libc::c_int, mode: libc::mode_t) -> Sys<OwnedFd> {
    openat(CWD, &cpath(p), flags, mode)
}

pub fn fstatat(dir: RawFd, name: &CStr, flags: libc::c_int) -> Sys<libc::stat> {
    // SAFETY: all-zero bytes are a valid `struct stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` is a valid out-pointer.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> Sys<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    check_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

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

pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> Sys<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }).map(|_| ())
}

pub fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> Sys<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(|_| ())
}

pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> Sys<()> {
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(|_| ())
}

pub fn chown(p: &Path, uid: u32, gid: u32) -> Sys<()> {
    let c = cpath(p);
    // SAFETY: `c` is NUL-terminated.
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) }).map(|_| ())
}

/// Reads the entries of directory `fd` with getdents64, calling `f` with
/// each name (without "." and ".."). Returns the number of entries.
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

pub fn mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> Sys<()> {
    let (s, t, f, d) = (cstr(src), cpath(target), cstr(fstype), cstr(data));
    // SAFETY: all strings are NUL-terminated.
    check(unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr().cast()) })
        .map(|_| ())
}

pub fn umount(target: &Path, flags: libc::c_int) -> Sys<()> {
    let t = cpath(target);
    // SAFETY: `t` is NUL-terminated.
    check(unsafe { libc::umount2(t.as_ptr(), flags) }).map(|_| ())
}

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
/// X-mount.idmap=` does with util-linux 2.39).
pub fn idmapped_bind(src: &Path, target: &Path, userns: &OwnedFd) -> Sys<()> {
    let s = cpath(src);
    // SAFETY: `s` is NUL-terminated; the result is a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            s.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd owned by nothing else.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `attr` is a valid mount_attr of the size passed; "" is NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    let t = cpath(target);
    // SAFETY: both strings are NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

pub fn fork() -> Sys<libc::pid_t> {
    // SAFETY: the benchmark is single-threaded, so the child may run
    // arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(Errno::last())
    } else {
        Ok(pid)
    }
}

pub fn waitpid(pid: libc::pid_t) -> Sys<libc::c_int> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    check(unsafe { libc::waitpid(pid, &mut status, 0) })?;
    Ok(status)
}

pub fn unshare(flags: libc::c_int) -> Sys<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::unshare(flags) }).map(|_| ())
}

pub fn become_root() -> Sys<()> {
    // SAFETY: plain syscalls on the calling process.
    unsafe {
        check(libc::setresgid(0, 0, 0))?;
        check(libc::setresuid(0, 0, 0))?;
        // Changing ids made the process non-dumpable; keep /proc/self ours.
        check(libc::prctl(libc::PR_SET_DUMPABLE, 1))?;
    }
    Ok(())
}

pub fn socketpair() -> Sys<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: two new fds owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn umask(mask: libc::mode_t) {
    // SAFETY: plain syscall.
    unsafe { libc::umask(mask) };
}
