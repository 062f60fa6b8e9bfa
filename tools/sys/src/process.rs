//! Processes and their credentials: fork, wait, namespaces, and becoming
//! a given id (root of a container, or one of its users).

use crate::errno::{check, Errno, Sys};
use std::os::fd::{FromRawFd, OwnedFd};

/// fork(2): the child's pid in the parent, 0 in the child.
///
/// # Safety
///
/// The calling process must be single-threaded (both guest binaries are),
/// so that the child may allocate and run arbitrary code.
pub unsafe fn fork() -> Sys<libc::pid_t> {
    // SAFETY: the caller is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(Errno::last())
    } else {
        Ok(pid)
    }
}

/// Waits for child `pid` to end: its wait status.
pub fn waitpid(pid: libc::pid_t) -> Sys<libc::c_int> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    check(unsafe { libc::waitpid(pid, &mut status, 0) })?;
    Ok(status)
}

/// unshare(2) of the namespaces in `flags` (`libc::CLONE_NEW*`).
pub fn unshare(flags: libc::c_int) -> Sys<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::unshare(flags) }).map(|_| ())
}

/// A connected pair of Unix stream sockets (close-on-exec).
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

/// Makes the calling process's real, effective and saved uid and gid `id`
/// (in its user namespace): gid first, while it may still change it.
pub fn become_id(id: u32) -> Result<(), String> {
    // SAFETY: plain syscalls on the calling process.
    check(unsafe { libc::setresgid(id, id, id) }).map_err(|e| format!("setresgid({id}): {e}"))?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(id, id, id) }).map_err(|e| format!("setresuid({id}): {e}"))?;
    Ok(())
}

/// The calling thread's filesystem uid and gid made `id` (which drops the
/// capabilities over files that a fsuid of 0 had) until the guard is
/// dropped, when both go back to 0 and the capabilities return.
pub struct FsIds(());

impl FsIds {
    /// EPERM if the ids did not take (`id` unmapped, or no CAP_SETUID).
    pub fn enter(id: u32) -> Sys<FsIds> {
        // SAFETY: plain syscalls on the calling thread; they return the
        // old id, and the current one when asked for the invalid id -1.
        let took = unsafe {
            libc::setfsgid(id);
            libc::setfsuid(id);
            libc::setfsuid(u32::MAX) as u32 == id && libc::setfsgid(u32::MAX) as u32 == id
        };
        let guard = FsIds(());
        if took {
            Ok(guard)
        } else {
            Err(Errno(libc::EPERM))
        }
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
    }
}

/// Makes the calling process root of its user namespace (a container just
/// made, whose id maps are written), and dumpable again.
pub fn become_root() -> Result<(), String> {
    become_id(0)?;
    // Changing ids made the process non-dumpable, which makes its /proc
    // files root's of the host: a container runtime inside this container
    // could not write its children's id maps.
    // SAFETY: a plain prctl on the calling process.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) })
        .map_err(|e| format!("prctl(PR_SET_DUMPABLE): {e}"))?;
    Ok(())
}
