//! What a mount request is checked for before anything is mounted: the
//! source exists and is a directory, the caller may mark it, a shifting
//! mount's source is marked. From the host and from a real container.

use crate::{
    container, ensure, ensure_eq,
    fixture::{expect_logged_error, load, unload},
    harness::{Context, Outcome},
    sys::{FsContext, FS_NAME},
    tests, Env,
};
use rustix::{io::Errno, mount::MountFlags};
use std::path::Path;

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    container_is_a_real_container,
    mount_without_source_is_einval_with_message,
    mark_of_missing_source_is_enoent_with_message,
    mark_of_a_file_is_enotdir_with_message,
    mark_of_a_directory_creates_a_superblock,
    shifting_mount_of_unmarked_path_is_eperm_on_host,
    container_cannot_mark,
    container_cannot_mark_via_mount2,
    container_shifting_mount_of_unmarked_path_is_eperm,
    unload,
];

/// A request for `source`, with `mark` if asked, ready to create.
fn request(source: &Path, mark: bool) -> Result<FsContext, String> {
    let fc = FsContext::open(FS_NAME)?;
    if mark {
        fc.set_flag("mark").ctx("fsconfig(mark)")?;
    }
    let src = source.to_str().ok_or("path is not UTF-8")?;
    fc.set_string("source", src).ctx("fsconfig(source)")?;
    Ok(fc)
}

fn container_is_a_real_container(env: &Env) -> Outcome {
    let host_root_file = env.scratch.join("owned-by-host-root");
    std::fs::write(&host_root_file, b"x").ctx("create file")?;
    container::run(|| {
        ensure_eq!(rustix::process::getuid().as_raw(), 0, "uid in container");
        let map = std::fs::read_to_string("/proc/self/uid_map").ctx("read uid_map")?;
        let map: Vec<&str> = map.split_whitespace().collect();
        ensure_eq!(map, vec!["0", "100000", "65536"], "uid_map");
        // Host uid 0 has no mapping: the overflow uid.
        let st = rustix::fs::stat(&host_root_file).ctx("stat")?;
        ensure_eq!(
            st.st_uid,
            65534,
            "owner of a host-root file seen in container"
        );
        Ok(())
    })
}

fn mount_without_source_is_einval_with_message(_: &Env) -> Outcome {
    let fc = FsContext::open(FS_NAME)?;
    fc.set_flag("mark").ctx("fsconfig(mark)")?;
    let res = fc.create();
    expect_logged_error(&fc, res, Errno::INVAL, "no source")
}

fn mark_of_missing_source_is_enoent_with_message(env: &Env) -> Outcome {
    let fc = request(&env.scratch.join("does-not-exist"), true)?;
    let res = fc.create();
    expect_logged_error(&fc, res, Errno::NOENT, "cannot look up")
}

fn mark_of_a_file_is_enotdir_with_message(env: &Env) -> Outcome {
    let file = env.scratch.join("a-file");
    std::fs::write(&file, b"x").ctx("create file")?;
    let fc = request(&file, true)?;
    let res = fc.create();
    expect_logged_error(&fc, res, Errno::NOTDIR, "must be a directory")
}

fn mark_of_a_directory_creates_a_superblock(env: &Env) -> Outcome {
    // Created, never attached: closing the context releases it (the
    // module unloads at the end of the suite only if it did).
    let fc = request(&env.scratch, true)?;
    fc.create().ctx("fsconfig(FSCONFIG_CMD_CREATE) of a mark")?;
    ensure_eq!(fc.log(), Vec::<String>::new(), "log of a good mark");
    Ok(())
}

fn shifting_mount_of_unmarked_path_is_eperm_on_host(env: &Env) -> Outcome {
    let fc = request(&env.scratch, false)?;
    let res = fc.create();
    expect_logged_error(&fc, res, Errno::PERM, "not on a shiftfs mark")
}

fn container_cannot_mark(env: &Env) -> Outcome {
    let scratch = env.scratch.clone();
    container::run(move || {
        let fc = request(&scratch, true)?;
        let res = fc.create();
        expect_logged_error(&fc, res, Errno::PERM, "CAP_SYS_ADMIN")
    })
}

fn container_cannot_mark_via_mount2(env: &Env) -> Outcome {
    let scratch = env.scratch.clone();
    container::run(move || {
        let res = rustix::mount::mount(&scratch, &scratch, FS_NAME, MountFlags::empty(), c"mark");
        ensure_eq!(res, Err(Errno::PERM), "mount -o mark in container");
        Ok(())
    })
}

fn container_shifting_mount_of_unmarked_path_is_eperm(env: &Env) -> Outcome {
    let scratch = env.scratch.clone();
    let target = env.scratch.join("target");
    std::fs::create_dir_all(&target).ctx("mkdir target")?;
    container::run(move || {
        let fc = request(&scratch, false)?;
        let res = fc.create();
        expect_logged_error(&fc, res, Errno::PERM, "not on a shiftfs mark")?;
        let res = rustix::mount::mount(&scratch, &target, FS_NAME, MountFlags::empty(), c"");
        ensure!(res == Err(Errno::PERM), "mount(2) in container: {res:?}");
        Ok(())
    })
}
