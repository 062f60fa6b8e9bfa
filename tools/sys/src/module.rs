//! Kernel modules: loading one from its `.ko`, unloading it, and whether a
//! filesystem type is registered.

use nix::kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags};
use std::{ffi::CString, fs::File, path::Path};

/// Loads a module from a `.ko` file; the error names the call.
pub fn load_module(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    finit_module(&file, c"", ModuleInitFlags::empty()).map_err(|e| format!("finit_module: {e}"))
}

/// Unloads a module by name; returns the errno on failure.
pub fn unload_module(name: &str) -> Result<(), nix::Error> {
    let name = CString::new(name).expect("module name has no NUL");
    delete_module(&name, DeleteModuleFlags::O_NONBLOCK)
}

/// Whether /proc/filesystems lists `name`.
pub fn fs_registered(name: &str) -> Result<bool, String> {
    let list = std::fs::read_to_string("/proc/filesystems")
        .map_err(|e| format!("read /proc/filesystems: {e}"))?;
    Ok(list
        .lines()
        .any(|l| l.split_whitespace().last() == Some(name)))
}
