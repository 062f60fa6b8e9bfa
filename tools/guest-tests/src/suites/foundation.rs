//! The module loads, registers `shiftfs`, rejects what it does not know with
//! the right errno and a log message, and unloads cleanly.

use crate::{
    ensure, ensure_eq,
    fixture::expect_logged_error,
    harness::{Context, Outcome},
    sys::{self, FsContext, FS_NAME},
    tests, Env,
};
use rustix::{io::Errno, mount::MountFlags};

pub const TESTS: &[crate::harness::Test] = tests![
    module_loads,
    filesystem_registered,
    unknown_option_is_einval_with_message,
    unknown_option_via_mount2_is_einval,
    mark_with_value_is_einval_with_message,
    mark_flag_is_accepted_twice,
    source_is_accepted,
    module_unloads,
    module_reloads,
];

fn module_loads(env: &Env) -> Outcome {
    sys::load_module(&env.module)
}

fn filesystem_registered(_: &Env) -> Outcome {
    ensure!(
        sys::fs_registered(FS_NAME)?,
        "{FS_NAME} not in /proc/filesystems"
    );
    Ok(())
}

fn unknown_option_is_einval_with_message(_: &Env) -> Outcome {
    let fc = FsContext::open(FS_NAME)?;
    let res = fc.set_flag("nosuchoption");
    expect_logged_error(&fc, res, Errno::INVAL, "Unknown parameter 'nosuchoption'")?;
    let fc = FsContext::open(FS_NAME)?;
    let res = fc.set_string("nosuchoption", "1");
    expect_logged_error(&fc, res, Errno::INVAL, "Unknown parameter 'nosuchoption'")
}

fn unknown_option_via_mount2_is_einval(env: &Env) -> Outcome {
    let res = rustix::mount::mount(
        &env.scratch,
        &env.scratch,
        FS_NAME,
        MountFlags::empty(),
        c"mark,nosuchoption",
    );
    ensure_eq!(res, Err(Errno::INVAL), "mount -o mark,nosuchoption");
    Ok(())
}

fn mark_with_value_is_einval_with_message(_: &Env) -> Outcome {
    let fc = FsContext::open(FS_NAME)?;
    let res = fc.set_string("mark", "yes");
    expect_logged_error(&fc, res, Errno::INVAL, "mark")
}

fn mark_flag_is_accepted_twice(_: &Env) -> Outcome {
    let fc = FsContext::open(FS_NAME)?;
    fc.set_flag("mark").ctx("fsconfig(mark)")?;
    fc.set_flag("mark").ctx("fsconfig(mark) again")?;
    ensure_eq!(fc.log(), Vec::<String>::new(), "log after valid options");
    Ok(())
}

fn source_is_accepted(env: &Env) -> Outcome {
    let fc = FsContext::open(FS_NAME)?;
    let src = env.scratch.to_str().ok_or("scratch path is not UTF-8")?;
    fc.set_string("source", src).ctx("fsconfig(source)")
}

fn module_unloads(_: &Env) -> Outcome {
    sys::unload_module(FS_NAME).ctx("delete_module(shiftfs)")?;
    ensure!(
        !sys::fs_registered(FS_NAME)?,
        "{FS_NAME} still in /proc/filesystems"
    );
    let res = FsContext::open(FS_NAME).map(|_| ());
    ensure!(res.is_err(), "fsopen(shiftfs) works after unload");
    Ok(())
}

fn module_reloads(env: &Env) -> Outcome {
    sys::load_module(&env.module)?;
    ensure!(
        sys::fs_registered(FS_NAME)?,
        "{FS_NAME} not registered after reload"
    );
    sys::unload_module(FS_NAME).ctx("delete_module(shiftfs) after reload")?;
    ensure_eq!(
        sys::unload_module(FS_NAME),
        Err(nix::Error::ENOENT),
        "second unload"
    );
    Ok(())
}
