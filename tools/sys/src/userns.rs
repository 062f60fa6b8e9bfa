//! User namespaces: the containers' id map, writing a child's maps as a
//! container runtime does, and a namespace held only by its fd (the id
//! mapping of an idmapped mount).

use crate::{
    fs::{open_path, read, write_all},
    process::{fork, socketpair, unshare, waitpid},
};
use std::os::fd::OwnedFd;
use std::path::Path;

/// The containers' id map: container 0..65535 are host 100000..165535.
pub const CONTAINER_MAP: &str = "0 100000 65536";
/// A container's root on the host (the start of [`CONTAINER_MAP`]'s range).
pub const CONTAINER_ROOT: u32 = 100_000;

/// Writes `map` (lines of "inside outside count", outside ids in the
/// caller's namespace) as the uid and the gid map of process `pid`, which
/// has just made its user namespace.
pub fn write_id_maps(pid: libc::pid_t, map: &str) -> Result<(), String> {
    for file in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{file}"), map)
            .map_err(|e| format!("write {file}: {e}"))?;
    }
    Ok(())
}

/// A user namespace with id map `map`, held by an fd: the process that made
/// it is gone once the fd is open.
pub fn userns_fd(map: &str) -> Result<OwnedFd, String> {
    let (parent, child) = socketpair().map_err(|e| format!("socketpair: {e}"))?;
    // SAFETY: both guest binaries are single-threaded.
    let pid = unsafe { fork() }.map_err(|e| format!("fork: {e}"))?;
    if pid == 0 {
        drop(parent);
        let ok = unshare(libc::CLONE_NEWUSER).is_ok();
        let _ = write_all(&child, if ok { b"u" } else { b"e" });
        // Lives until the parent has opened the namespace and hangs up.
        let mut x = [0u8; 1];
        let _ = read(&child, &mut x);
        std::process::exit(0);
    }
    drop(child);
    let res = (|| {
        let mut x = [0u8; 1];
        read(&parent, &mut x).map_err(|e| format!("wait for unshare: {e}"))?;
        if x[0] != b'u' {
            return Err("unshare(CLONE_NEWUSER) failed in the helper".to_owned());
        }
        write_id_maps(pid, map)?;
        open_path(
            Path::new(&format!("/proc/{pid}/ns/user")),
            libc::O_RDONLY,
            0,
        )
        .map_err(|e| format!("open ns/user: {e}"))
    })();
    drop(parent);
    let _ = waitpid(pid);
    res
}
