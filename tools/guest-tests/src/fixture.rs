//! What the suites share: loading the module, a real directory, its mark,
//! and a target where a container mounts the mark shifted; checks of a
//! refused mount request; the tools a suite copies in; and small helpers
//! (walking a tree, changing ids, ACL values).

use crate::{
    container,
    harness::{Context, Outcome},
    sys::{self, FsContext, FS_NAME},
    Env,
};
use rustix::{
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::path::{Path, PathBuf};

/// Loads the module under test (a suite's first test).
pub fn load(env: &Env) -> Outcome {
    sys::load_module(&env.module)
}

/// Unloads it (a suite's last test: fails if anything still holds it).
pub fn unload(_: &Env) -> Outcome {
    sys::unload_module(FS_NAME).ctx("delete_module(shiftfs)")
}

/// A suite's directories in the scratch area.
pub struct Tree {
    /// The real directory, written by the host.
    pub real: PathBuf,
    /// Where the host mounts the mark of `real`.
    pub mark: PathBuf,
    /// Where a container mounts `mark` shifted.
    pub target: PathBuf,
}

impl Tree {
    pub fn new(env: &Env, suite: &str) -> Self {
        Self {
            real: env.scratch.join(format!("{suite}-real")),
            mark: env.scratch.join(format!("{suite}-mark")),
            target: env.scratch.join(format!("{suite}-target")),
        }
    }

    /// Creates the three directories.
    pub fn create(&self) -> Outcome {
        for d in [&self.real, &self.mark, &self.target] {
            std::fs::create_dir_all(d).ctx(&format!("mkdir {}", d.display()))?;
        }
        Ok(())
    }

    /// The host marks `real` at `mark`.
    pub fn mark(&self) -> Outcome {
        mount(
            &self.real,
            &self.mark,
            FS_NAME,
            MountFlags::empty(),
            c"mark",
        )
        .ctx("mark")
    }

    /// The host removes the mark.
    pub fn unmark(&self) -> Outcome {
        unmount(&self.mark, UnmountFlags::empty()).ctx("umount mark")
    }

    /// Runs `f` in a new container that has mounted the mark shifted on
    /// `target` (passed to `f`).
    pub fn in_shifted(&self, f: impl FnOnce(&Path) -> Outcome) -> Outcome {
        self.in_shifted_with(MountFlags::empty(), f)
    }

    /// [`Tree::in_shifted`], the shifting mount made with mount `flags`.
    pub fn in_shifted_with(&self, flags: MountFlags, f: impl FnOnce(&Path) -> Outcome) -> Outcome {
        let (src, dst) = (self.mark.clone(), self.target.clone());
        container::run(move || {
            mount(&src, &dst, FS_NAME, flags, c"").ctx("shifting mount")?;
            f(&dst)
        })
    }
}

impl Tree {
    /// A suite's directories on the scratch ext4 rather than the tmpfs.
    pub fn on_ext4(env: &Env, suite: &str) -> Result<Self, String> {
        Ok(Self::new(
            &Env {
                scratch: scratch_ext4(env)?,
                ..env.clone()
            },
            suite,
        ))
    }

    /// The host's own shifting mount of `mark` on `target` (identity: the
    /// host's namespace), for tests that need the host's powers on it
    /// (drop_caches, RENAME_WHITEOUT).
    pub fn host_shifting_mount(&self) -> Outcome {
        mount(&self.mark, &self.target, FS_NAME, MountFlags::empty(), c"")
            .ctx("host shifting mount")
    }
}

/// The scratch ext4 (tools/guest/run mounts it beside the tmpfs scratch).
pub fn scratch_ext4(env: &Env) -> Result<PathBuf, String> {
    let d = env
        .scratch
        .parent()
        .map(|p| p.join("ext4"))
        .ok_or("scratch has no parent")?;
    crate::ensure!(
        d.join("lost+found").is_dir(),
        "no ext4 scratch at {} (tools/guest/run mounts it)",
        d.display()
    );
    Ok(d)
}

/// Every way of changing the tree at `t` fails with `want`: creating a
/// file, a directory, a symlink; and to the existing `file`: unlink,
/// rename, open for writing, chmod, truncate, setxattr.
pub fn every_change_fails(t: &Path, file: &str, want: rustix::io::Errno) -> Outcome {
    use rustix::fs::{self as rfs, Mode, OFlags, XattrFlags};
    let f = t.join(file);
    let changes: [(&str, Result<(), rustix::io::Errno>); 9] = [
        (
            "create",
            rfs::open(
                t.join("new"),
                OFlags::CREATE | OFlags::WRONLY,
                Mode::from_raw_mode(0o644),
            )
            .map(drop),
        ),
        (
            "mkdir",
            rfs::mkdir(t.join("newdir"), Mode::from_raw_mode(0o755)),
        ),
        ("symlink", rfs::symlink("x", t.join("newlink"))),
        ("unlink", rfs::unlink(&f)),
        ("rename", rfs::rename(&f, t.join("moved"))),
        (
            "open for writing",
            rfs::open(&f, OFlags::WRONLY, Mode::empty()).map(drop),
        ),
        ("chmod", rfs::chmod(&f, Mode::from_raw_mode(0o600))),
        ("truncate", crate::reliability::truncate(&f, 0)),
        (
            "setxattr",
            rfs::setxattr(&f, "user.x", b"x", XattrFlags::empty()),
        ),
    ];
    for (what, r) in changes {
        crate::ensure_eq!(r.err(), Some(want), what);
    }
    Ok(())
}

/// Checks that `res` failed with `want`, and that the context logged an
/// error line containing `msg`.
pub fn expect_logged_error(
    fc: &FsContext,
    res: Result<(), Errno>,
    want: Errno,
    msg: &str,
) -> Outcome {
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

/// A program installed with `cargo install` (tools/setup): on PATH, or in
/// the cargo home of root.
pub fn find_tool(name: &str) -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(h).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo/bin"));
    }
    dirs.push("/root/.cargo/bin".into());
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found on PATH nor in ~/.cargo/bin: run tools/setup"))
}

/// Copies `src` into `dir` with `mode`, so that a container (to which
/// root's home is closed) can read or run it.
pub fn copy_in(src: &Path, dir: &Path, mode: u32) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let dst = dir.join(src.file_name().ok_or("no file name")?);
    std::fs::copy(src, &dst).ctx(&format!("copy {}", src.display()))?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).ctx("chmod")?;
    Ok(dst)
}

/// Calls `f(path, relative path, lstat)` for every entry under `root`,
/// depth first, each directory's entries in name order.
pub fn walk(
    root: &Path,
    mut f: impl FnMut(&Path, &Path, &std::fs::Metadata) -> Outcome,
) -> Outcome {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .ctx(&format!("readdir {}", dir.display()))?
            .collect::<Result<_, _>>()
            .ctx("readdir")?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root");
            let md = std::fs::symlink_metadata(&p).ctx(&format!("lstat {}", rel.display()))?;
            f(&p, rel, &md)?;
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    Ok(())
}

/// Makes the calling process (in a container) its uid and gid `id`.
pub use sys::become_id;

/// Drops the dentry and inode caches (needs root of the initial namespace).
pub fn drop_caches() -> Outcome {
    std::fs::write("/proc/sys/vm/drop_caches", b"2").ctx("drop_caches")
}

/// Bytes that show an off-by-one or a torn write.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A `system.posix_acl_*` value from (tag, perm, id) entries.
pub fn acl_value(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// The (tag, perm, id) entries of a `system.posix_acl_*` value.
pub fn acl_entries(v: &[u8]) -> Vec<(u16, u16, u32)> {
    v[4..]
        .chunks(8)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]),
                u16::from_le_bytes([c[2], c[3]]),
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect()
}
