//! Syscall wrappers shared by the guest binaries, shiftfs-tests
//! (tools/guest-tests) and shiftfs-bench (tools/guest-bench), so that each
//! call is written once: files and directories, mounts and idmapped
//! mounts, processes and user namespaces, the containers' id map, module
//! loading, the new mount API's contexts, and the kernel log.
//!
//! The libc wrappers return [`Errno`], printed by its name; the module,
//! fsconfig and kernel log wrappers keep the errors of the nix and rustix
//! calls under them, which the tests compare against; wrappers of several
//! calls return a message that names the call that failed.

mod errno;
mod fs;
mod fscontext;
mod kmsg;
mod module;
mod mount;
mod process;
mod userns;

pub use errno::{Errno, Sys};
pub use fs::{
    chown, close, cpath, cstr, fstatat, linkat, mkdirat, open_dir, open_path, openat, pread, read,
    read_dir, setxattr, symlinkat, sync, umask, unlinkat, write_all, CWD,
};
pub use fscontext::FsContext;
pub use kmsg::{kernel_log_matching, KernelLogTail};
pub use module::{fs_registered, load_module, unload_module};
pub use mount::{idmapped_bind, idmapped_tree, make_mounts_private, mount, umount};
pub use process::{become_id, become_root, fork, socketpair, unshare, waitpid, FsIds};
pub use userns::{userns_fd, write_id_maps, CONTAINER_MAP, CONTAINER_ROOT};

/// The filesystem type, and the module's name.
pub const FS_NAME: &str = "shiftfs";
