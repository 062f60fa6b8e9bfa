//! The new mount API's filesystem context: fsopen(2) and fsconfig(2), and
//! the log of messages the filesystem writes to the context.

use crate::errno::check_long;
use rustix::{
    fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    io::Errno as RustixErrno,
    mount::{
        fsconfig_create, fsconfig_reconfigure, fsconfig_set_flag, fsconfig_set_string, fsmount,
        fsopen, fspick, move_mount, FsMountFlags, FsOpenFlags, FsPickFlags, MountAttrFlags,
        MoveMountFlags,
    },
};

/// A mount request through `fsopen()`, with the messages the filesystem
/// logged for it.
pub struct FsContext {
    fd: OwnedFd,
}

impl FsContext {
    /// fsopen(2) of filesystem type `fs`; the error names the call.
    pub fn open(fs: &str) -> Result<Self, String> {
        let fd =
            fsopen(fs, FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| format!("fsopen({fs}): {e}"))?;
        Ok(Self { fd })
    }

    /// fspick(2) of the mount at `path`: a context to remount it with.
    pub fn pick(path: &std::path::Path) -> Result<Self, String> {
        let fd = fspick(rustix::fs::CWD, path, FsPickFlags::FSPICK_CLOEXEC)
            .map_err(|e| format!("fspick({}): {e}", path.display()))?;
        Ok(Self { fd })
    }

    /// FSCONFIG_CMD_RECONFIGURE: the remount of a picked mount.
    pub fn reconfigure(&self) -> Result<(), RustixErrno> {
        fsconfig_reconfigure(self.fd.as_fd())
    }

    /// FSCONFIG_SET_FLAG `key`.
    pub fn set_flag(&self, key: &str) -> Result<(), RustixErrno> {
        fsconfig_set_flag(self.fd.as_fd(), key)
    }

    /// FSCONFIG_SET_STRING `key` to `value`.
    pub fn set_string(&self, key: &str, value: &str) -> Result<(), RustixErrno> {
        fsconfig_set_string(self.fd.as_fd(), key, value)
    }

    /// FSCONFIG_CMD_CREATE: makes the superblock.
    pub fn create(&self) -> Result<(), RustixErrno> {
        fsconfig_create(self.fd.as_fd())
    }

    /// fsmount(2) of the created superblock: a detached mount, which lives
    /// while its fd is open.
    pub fn mount_detached(&self) -> Result<OwnedFd, RustixErrno> {
        fsmount(
            self.fd.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::empty(),
        )
    }

    /// fsmount(2) of the created superblock and move_mount(2) of it to
    /// `target`: the new mount API's way to finish a mount.
    pub fn mount_at(&self, target: &std::path::Path) -> Result<(), RustixErrno> {
        let m = self.mount_detached()?;
        move_mount(
            m.as_fd(),
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
    }

    /// fsconfig(2) with raw arguments, as a fuzzer passes them: any
    /// command, null or not, and any `aux`.
    ///
    /// # Safety
    ///
    /// `key` and `value` are null, or point to NUL-terminated strings (for
    /// FSCONFIG_SET_BINARY, `value` to at least `aux` bytes) that live for
    /// the call.
    pub unsafe fn config_raw(
        &self,
        cmd: u32,
        key: *const u8,
        value: *const u8,
        aux: i32,
    ) -> Result<(), RustixErrno> {
        // SAFETY: fsconfig(2) reads at most the NUL-terminated key and
        // value (or `aux` bytes of a binary value), which the caller
        // vouches for.
        check_long(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                cmd,
                key,
                value,
                aux,
            )
        })
        .map(drop)
        .map_err(|e| RustixErrno::from_raw_os_error(e.0))
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

impl AsFd for FsContext {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
