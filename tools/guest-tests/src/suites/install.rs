//! Installed like a module: `make install` puts shiftfs.ko in
//! /lib/modules/<release>/updates with depmod's index; `modprobe shiftfs`
//! loads it (what LXD and Sysbox run, before looking in /proc/filesystems or
//! /proc/modules), `modprobe -r` unloads it, and `mount -t shiftfs` loads it
//! by itself: the kernel asks modprobe for `fs-shiftfs`, the module's alias.
//!
//! The host (`tools/test`) runs `make install INSTALL_MOD_PATH=DIR` for the
//! guest's kernel and passes DIR as `SHIFTFS_MODROOT`; this suite puts
//! DIR/lib/modules over /lib/modules while it runs, as if installed.

use crate::{
    ensure, ensure_eq,
    harness::{Context, Outcome},
    sys::{self, FS_NAME},
    tests, Env,
};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub const TESTS: &[crate::harness::Test] = tests![
    make_install_put_the_module_in_updates,
    modprobe_loads_the_installed_module,
    modprobe_r_unloads_it,
    mount_loads_the_module_by_itself,
    without_the_install_mount_is_enodev,
    lib_modules_is_restored,
];

const LIB_MODULES: &str = "/lib/modules";

/// The `INSTALL_MOD_PATH` the host installed into.
fn modroot() -> Result<PathBuf, String> {
    std::env::var_os("SHIFTFS_MODROOT")
        .map(PathBuf::from)
        .ok_or_else(|| "SHIFTFS_MODROOT is not set: run through tools/test (make install INSTALL_MOD_PATH=DIR, then SHIFTFS_MODROOT=DIR)".into())
}

/// The running kernel's release (`uname -r`).
fn release() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_owned())
        .ctx("read the kernel release")
}

/// Whether /proc/modules lists shiftfs (Sysbox's check).
fn loaded() -> Result<bool, String> {
    let list = std::fs::read_to_string("/proc/modules").ctx("read /proc/modules")?;
    Ok(list.lines().any(|l| l.split(' ').next() == Some("shiftfs")))
}

/// Runs a command; its exit status and output.
fn run(cmd: &str, args: &[&str]) -> Result<(bool, String), String> {
    let out = Command::new(cmd).args(args).output().ctx(cmd)?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

/// Unloads shiftfs if it is loaded (by another suite).
fn unload_if_loaded() -> Outcome {
    if loaded()? {
        sys::unload_module("shiftfs").map_err(|e| format!("rmmod shiftfs: {e}"))?;
    }
    Ok(())
}

/// Puts `dir` over /lib/modules (a bind mount, in the initial mount
/// namespace: the kernel's modprobe helper runs there).
fn cover_lib_modules(dir: &Path) -> Outcome {
    sys::mount(
        &dir.to_string_lossy(),
        Path::new(LIB_MODULES),
        "",
        libc::MS_BIND,
        "",
    )
    .map_err(|e| format!("bind {} over {LIB_MODULES}: {e}", dir.display()))
}

fn uncover_lib_modules() -> Outcome {
    sys::umount(Path::new(LIB_MODULES), libc::MNT_DETACH)
        .map_err(|e| format!("umount {LIB_MODULES}: {e}"))
}

fn make_install_put_the_module_in_updates(_: &Env) -> Outcome {
    let dir = modroot()?.join("lib/modules").join(release()?);
    let ko = dir.join("updates/shiftfs.ko");
    ensure!(ko.is_file(), "{} is not there", ko.display());
    let aliases = std::fs::read_to_string(dir.join("modules.alias")).ctx("read modules.alias")?;
    ensure!(
        aliases.lines().any(|l| l == "alias fs-shiftfs shiftfs"),
        "modules.alias has no fs-shiftfs alias: {aliases:?}"
    );
    let dep = std::fs::read_to_string(dir.join("modules.dep")).ctx("read modules.dep")?;
    ensure!(
        dep.lines().any(|l| l.starts_with("updates/shiftfs.ko:")),
        "modules.dep does not list updates/shiftfs.ko: {dep:?}"
    );
    // The installed module is the production one: no KUnit suites in it.
    let (ok, info) = run("modinfo", &[&ko.to_string_lossy()])?;
    ensure!(ok, "modinfo: {info}");
    ensure!(
        info.lines()
            .any(|l| l.starts_with("alias:") && l.ends_with("fs-shiftfs")),
        "modinfo shows no alias: {info}"
    );
    Ok(())
}

fn modprobe_loads_the_installed_module(_: &Env) -> Outcome {
    unload_if_loaded()?;
    cover_lib_modules(&modroot()?.join("lib/modules"))?;
    let (ok, out) = run("modprobe", &["shiftfs"])?;
    ensure!(ok, "modprobe shiftfs: {out}");
    ensure!(loaded()?, "shiftfs not in /proc/modules after modprobe");
    ensure!(
        sys::fs_registered(FS_NAME)?,
        "shiftfs not in /proc/filesystems after modprobe"
    );
    Ok(())
}

fn modprobe_r_unloads_it(_: &Env) -> Outcome {
    let (ok, out) = run("modprobe", &["-r", "shiftfs"])?;
    ensure!(ok, "modprobe -r shiftfs: {out}");
    ensure!(
        !loaded()?,
        "shiftfs still in /proc/modules after modprobe -r"
    );
    Ok(())
}

fn mount_loads_the_module_by_itself(env: &Env) -> Outcome {
    ensure!(!loaded()?, "shiftfs is loaded before the mount");
    let src = env.scratch.join("install-mark");
    std::fs::create_dir_all(&src).ctx("mkdir")?;
    sys::mount(&src.to_string_lossy(), &src, FS_NAME, 0, "mark")
        .map_err(|e| format!("mount -t shiftfs -o mark: {e}"))?;
    let was_loaded = loaded()?;
    sys::umount(&src, 0).map_err(|e| format!("umount the mark: {e}"))?;
    ensure!(
        was_loaded,
        "the mount worked, but shiftfs is not in /proc/modules"
    );
    sys::unload_module("shiftfs").map_err(|e| format!("rmmod shiftfs after the mark: {e}"))
}

fn without_the_install_mount_is_enodev(env: &Env) -> Outcome {
    uncover_lib_modules()?;
    let empty = env.scratch.join("install-empty");
    std::fs::create_dir_all(&empty).ctx("mkdir")?;
    cover_lib_modules(&empty)?;
    let src = env.scratch.join("install-mark");
    let res = sys::mount(&src.to_string_lossy(), &src, FS_NAME, 0, "mark");
    let still_unloaded = !loaded()?;
    uncover_lib_modules()?;
    ensure_eq!(
        res,
        Err(sys::Errno(libc::ENODEV)),
        "mount -t shiftfs with nothing installed"
    );
    ensure!(still_unloaded, "shiftfs got loaded with nothing installed");
    Ok(())
}

fn lib_modules_is_restored(_: &Env) -> Outcome {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ctx("read mountinfo")?;
    let covered = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(LIB_MODULES))
        .count();
    // What vng put there (if anything) is back; none of ours is left.
    ensure!(covered <= 1, "{covered} mounts on {LIB_MODULES}");
    ensure!(!loaded()?, "shiftfs left loaded");
    Ok(())
}
