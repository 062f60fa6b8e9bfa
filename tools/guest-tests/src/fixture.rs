//! What the suites share: loading the module, and a real directory, its
//! mark, and a target where a container mounts the mark shifted.

use crate::{
    container,
    harness::{Context, Outcome},
    sys::{self, FS_NAME},
    Env,
};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};
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
        let (src, dst) = (self.mark.clone(), self.target.clone());
        container::run(move || {
            mount(&src, &dst, FS_NAME, MountFlags::empty(), c"").ctx("shifting mount")?;
            f(&dst)
        })
    }
}
