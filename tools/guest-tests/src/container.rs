//! Real containers for tests: a child process in new user and mount
//! namespaces whose uid and gid maps, 0:100000:65536, are written by the
//! parent, as a container runtime does. Never init-namespace root pretending.

use crate::{
    harness::{Context, Outcome},
    sys,
};
use nix::{
    sched::{unshare, CloneFlags},
    sys::wait::{waitpid, WaitStatus},
    unistd::{fork, pipe, read, write, ForkResult},
};
use std::{io::Read, os::fd::OwnedFd};

/// The container's id map: container 0..65535 are host 100000..165535.
pub use sys::CONTAINER_MAP as MAP;
/// The container's root on the host (the start of [`MAP`]'s range).
pub use sys::CONTAINER_ROOT as ROOT;

fn child(ready: OwnedFd, go: OwnedFd, f: impl FnOnce() -> Outcome) -> Outcome {
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).ctx("unshare")?;
    write(&ready, b"u").ctx("signal parent")?;
    let mut b = [0u8; 1];
    ensure_one(read(&go, &mut b).ctx("wait for id maps")?)?;
    sys::become_root()?;
    // Mounts made in the test stay in the container.
    sys::make_mounts_private().ctx("make / private")?;
    f()
}

fn ensure_one(n: usize) -> Outcome {
    if n == 1 {
        Ok(())
    } else {
        Err("parent went away".into())
    }
}

/// Runs `f` as root of a new container and returns its outcome.
pub fn run(f: impl FnOnce() -> Outcome) -> Outcome {
    run_mapped(MAP, f)
}

/// Runs `inside` as root of a new container with uid and gid map `map`;
/// once it has returned `Ok`,
/// runs `host(pid)` in the calling process (the host, or the outer
/// container) while the container still lives, with its mounts reachable
/// at `/proc/PID/root`; then lets the container exit.
pub fn with_host_mapped(
    map: &str,
    inside: impl FnOnce() -> Outcome,
    host: impl FnOnce(i32) -> Outcome,
) -> Outcome {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (up_r, up_w) = pipe().ctx("pipe")?;
    let (done_r, done_w) = pipe().ctx("pipe")?;
    // The child uses its copies of `up_w` and `done_r` and closes the
    // others; the parent's closure owns all four and closes those two.
    let raw = (
        up_r.as_raw_fd(),
        up_w.as_raw_fd(),
        done_r.as_raw_fd(),
        done_w.as_raw_fd(),
    );
    let mut host_res: Option<Outcome> = None;
    let res = run_mapped_then(
        map,
        move || {
            // SAFETY: these are this process's copies of the pipe ends,
            // owned by nothing that runs here (the child exits without
            // dropping the parent's closure).
            let (up_w, done_r) = unsafe {
                libc::close(raw.0);
                libc::close(raw.3);
                (OwnedFd::from_raw_fd(raw.1), OwnedFd::from_raw_fd(raw.2))
            };
            inside()?;
            write(&up_w, b"m").ctx("signal host")?;
            let mut b = [0u8; 1];
            let _ = read(&done_r, &mut b);
            Ok(())
        },
        |pid| {
            drop((up_w, done_r));
            let mut b = [0u8; 1];
            if read(&up_r, &mut b).unwrap_or(0) == 1 {
                host_res = Some(host(pid));
            }
            drop(done_w);
        },
    );
    res?;
    host_res.unwrap_or_else(|| Err("container did not get ready".into()))
}

/// Runs `f` as root of a new container with uid and gid map `map` (lines
/// of "inside outside count", outside ids in the caller's namespace).
pub fn run_mapped(map: &str, f: impl FnOnce() -> Outcome) -> Outcome {
    run_mapped_then(map, f, |_| {})
}

fn run_mapped_then(map: &str, f: impl FnOnce() -> Outcome, meanwhile: impl FnOnce(i32)) -> Outcome {
    let (ready_r, ready_w) = pipe().ctx("pipe")?;
    let (go_r, go_w) = pipe().ctx("pipe")?;
    let (res_r, res_w) = pipe().ctx("pipe")?;
    // SAFETY: the test binary is single-threaded, so the child may allocate
    // and run arbitrary code after fork.
    match unsafe { fork() }.ctx("fork")? {
        ForkResult::Child => {
            drop((ready_r, go_w, res_r));
            let code = match child(ready_w, go_r, f) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = write(&res_w, e.as_bytes());
                    1
                }
            };
            // Rust flushes stdout at every line, so nothing of the parent's
            // output is written twice.
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop((ready_w, go_r, res_w));
            let mut b = [0u8; 1];
            let n = read(&ready_r, &mut b).ctx("wait for the child to unshare")?;
            if n == 1 {
                let pid = child.as_raw();
                sys::write_id_maps(pid, map)?;
                write(&go_w, b"g").ctx("signal child")?;
            }
            drop(go_w);
            meanwhile(child.as_raw());
            let status = waitpid(child, None).ctx("waitpid")?;
            let mut msg = String::new();
            std::fs::File::from(res_r)
                .read_to_string(&mut msg)
                .ctx("read child result")?;
            match status {
                WaitStatus::Exited(_, 0) => Ok(()),
                WaitStatus::Exited(_, _) => Err(format!("in container: {msg}")),
                other => Err(format!("container child: {other:?}")),
            }
        }
    }
}
