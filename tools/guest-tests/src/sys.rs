//! Thin conveniences over the syscalls the tests make (module loading, the
//! new mount API, the kernel log), so that tests read as what they check.

use crate::harness::Context;
use nix::kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags};
use rustix::{
    fd::{AsFd, OwnedFd},
    io::Errno,
    mount::{fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsopen, FsOpenFlags},
};
use std::{ffi::CString, fs::File, path::Path};

pub const FS_NAME: &str = "shiftfs";

/// Loads a module from a `.ko` file.
pub fn load_module(path: &Path) -> Result<(), String> {
    let file = File::open(path).ctx(&format!("open {}", path.display()))?;
    finit_module(&file, c"", ModuleInitFlags::empty()).ctx("finit_module")
}

/// Unloads a module by name; returns the errno on failure.
pub fn unload_module(name: &str) -> Result<(), nix::Error> {
    let name = CString::new(name).expect("module name has no NUL");
    delete_module(&name, DeleteModuleFlags::O_NONBLOCK)
}

/// Whether /proc/filesystems lists `name`.
pub fn fs_registered(name: &str) -> Result<bool, String> {
    let list = std::fs::read_to_string("/proc/filesystems").ctx("read /proc/filesystems")?;
    Ok(list
        .lines()
        .any(|l| l.split_whitespace().last() == Some(name)))
}

/// A mount request through `fsopen()`, with the messages the filesystem
/// logged for it.
pub struct FsContext {
    fd: OwnedFd,
}

impl FsContext {
    pub fn open(fs: &str) -> Result<Self, String> {
        let fd = fsopen(fs, FsOpenFlags::FSOPEN_CLOEXEC).ctx(&format!("fsopen({fs})"))?;
        Ok(Self { fd })
    }

    pub fn set_flag(&self, key: &str) -> Result<(), Errno> {
        fsconfig_set_flag(self.fd.as_fd(), key)
    }

    pub fn set_string(&self, key: &str, value: &str) -> Result<(), Errno> {
        fsconfig_set_string(self.fd.as_fd(), key, value)
    }

    pub fn create(&self) -> Result<(), Errno> {
        fsconfig_create(self.fd.as_fd())
    }

    /// Drains the context's log: one message per read, until ENODATA.
    pub fn log(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = rustix::io::read(self.fd.as_fd(), &mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

/// Checks that `res` failed with `want`, and that the context logged an
/// error line containing `msg`.
pub fn expect_logged_error(
    fc: &FsContext,
    res: Result<(), Errno>,
    want: Errno,
    msg: &str,
) -> Result<(), String> {
    match res {
        Ok(()) => return Err(format!("succeeded, expected {want:?}")),
        Err(e) if e != want => return Err(format!("got {e:?}, expected {want:?}")),
        Err(_) => {}
    }
    let log = fc.log();
    if log.iter().any(|l| l.starts_with("e ") && l.contains(msg)) {
        Ok(())
    } else {
        Err(format!(
            "no error line containing {msg:?} in the log: {log:?}"
        ))
    }
}

/// The kernel log lines (from /dev/kmsg) that match a splat pattern.
pub fn kernel_log_splats(patterns_file: &Path) -> Result<Vec<String>, String> {
    let pats =
        std::fs::read_to_string(patterns_file).ctx(&format!("read {}", patterns_file.display()))?;
    let pats: Vec<regex::Regex> = pats
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| regex::Regex::new(l).map_err(|e| format!("pattern {l:?}: {e}")))
        .collect::<Result<_, _>>()?;
    kernel_log_matching(|msg| pats.iter().any(|p| p.is_match(msg)))
}

/// The messages of the kernel log (the whole of /dev/kmsg) for which
/// `keep` is true.
pub fn kernel_log_matching(keep: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
    let kmsg = rustix::fs::open(
        "/dev/kmsg",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .ctx("open /dev/kmsg")?;
    let mut hits = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match rustix::io::read(&kmsg, &mut buf) {
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                // A record is "prio,seq,time,flags;message".
                let msg = rec.split_once(';').map_or(&*rec, |(_, m)| m).trim_end();
                if keep(msg) {
                    hits.push(msg.to_owned());
                }
            }
            // EPIPE: a record was overwritten while reading; go on.
            Err(Errno::PIPE) => continue,
            Err(Errno::AGAIN) => break,
            Err(e) => return Err(format!("read /dev/kmsg: {e}")),
        }
    }
    Ok(hits)
}
