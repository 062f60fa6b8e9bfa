//! inotify and fanotify on shiftfs, as LTP's inotify07/08/09 check them:
//! watches keep reporting after the dentry cache is dropped (one shiftfs
//! inode per real inode), events carry names, changes made on the real path
//! do not show on the shiftfs watch, and watches come and go under writes.
//!
//! drop_caches needs root of the initial namespace, so the shifting mount
//! here is made by the host; the shifting is tested from containers in the
//! `shift` and `io` suites.

use crate::{
    ensure, ensure_eq,
    fixture::{drop_caches, load, unload, Tree},
    harness::{Context, Outcome},
    sys::FS_NAME,
    tests, Env,
};
use nix::sys::{
    fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags},
    inotify::{AddWatchFlags as W, InitFlags as IFlags, Inotify},
};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};
use std::{io::Write, os::unix::fs::PermissionsExt, time::Duration};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_mounts,
    directory_watch_survives_drop_caches,
    file_watch_survives_drop_caches,
    namespace_events_after_drop_caches,
    real_path_changes_do_not_show,
    watches_come_and_go_under_writes,
    fanotify_inode_mark_reports_open_modify_close,
    unlinked_file_goes_with_its_last_close,
    host_unmounts,
    unload,
];

fn host_prepares_and_mounts(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    let r = tree.real.clone();
    std::fs::create_dir_all(r.join("dir")).ctx("mkdir")?;
    for f in [
        "dir/file",
        "watched",
        "churn",
        "fan",
        "gone-closed",
        "gone-mapped",
    ] {
        std::fs::write(r.join(f), b"x").ctx("create")?;
    }
    tree.mark()?;
    mount(&tree.mark, &tree.target, FS_NAME, MountFlags::empty(), c"").ctx("shift")
}

/// A file unlinked through shiftfs while open there goes with the last
/// reference to it: its shiftfs file's close, or the last mapping of it
/// (which holds the real file). A watch on the real path hears nothing
/// while either is there, and the file's end (IN_DELETE_SELF, then
/// IN_IGNORED as the real inode goes) by the time the close or the
/// `munmap()` returns.
fn unlinked_file_goes_with_its_last_close(env: &Env) -> Outcome {
    let t = tree(env);
    for (name, mapped) in [("gone-closed", false), ("gone-mapped", true)] {
        let ino = Inotify::init(IFlags::IN_NONBLOCK).ctx("inotify_init")?;
        ino.add_watch(&t.real.join(name), W::IN_DELETE_SELF)
            .ctx("add_watch on the real path")?;
        let f = std::fs::File::open(t.target.join(name)).ctx("open")?;
        let map = if mapped {
            // SAFETY: a fresh shared mapping of a file we hold open;
            // unmapped below, and read only while it is there.
            let p = unsafe {
                rustix::mm::mmap(
                    core::ptr::null_mut(),
                    4096,
                    rustix::mm::ProtFlags::READ,
                    rustix::mm::MapFlags::SHARED,
                    &f,
                    0,
                )
            };
            Some(p.ctx("mmap")?)
        } else {
            None
        };
        std::fs::remove_file(t.target.join(name)).ctx("unlink")?;
        ensure_eq!(events(&ino)?, vec![], format!("{name}: events while open"));
        drop(f);
        if let Some(p) = map {
            ensure_eq!(
                events(&ino)?,
                vec![],
                format!("{name}: events once closed, still mapped")
            );
            // SAFETY: the mapping is there, and one byte of the file is in it.
            let first = unsafe { *p.cast::<u8>() };
            ensure_eq!(
                first,
                b'x',
                format!("{name}: byte read through the mapping")
            );
            // SAFETY: the mapping made above, not used after.
            unsafe { rustix::mm::munmap(p, 4096) }.ctx("munmap")?;
        }
        let got: Vec<W> = events(&ino)?.into_iter().map(|(m, _)| m).collect();
        ensure_eq!(
            got,
            vec![W::IN_DELETE_SELF, W::IN_IGNORED],
            format!("{name}: events once the last reference went")
        );
    }
    Ok(())
}

fn host_unmounts(env: &Env) -> Outcome {
    unmount(tree(env).target, UnmountFlags::empty()).ctx("umount shifted")?;
    tree(env).unmark()
}

/// The events queued on `ino` now, as (mask, name).
fn events(ino: &Inotify) -> Result<Vec<(W, String)>, String> {
    let mut out = Vec::new();
    loop {
        match ino.read_events() {
            Ok(evs) => out.extend(evs.into_iter().map(|e| {
                let name = e.name.map(|n| n.to_string_lossy().into_owned());
                (e.mask, name.unwrap_or_default())
            })),
            Err(nix::Error::EAGAIN) => return Ok(out),
            Err(e) => return Err(format!("read inotify: {e}")),
        }
    }
}

fn directory_watch_survives_drop_caches(env: &Env) -> Outcome {
    let dir = tree(env).target.join("dir");
    let ino = Inotify::init(IFlags::IN_NONBLOCK).ctx("inotify_init")?;
    ino.add_watch(&dir, W::IN_ATTRIB | W::IN_OPEN | W::IN_CLOSE_WRITE)
        .ctx("add_watch dir")?;
    drop_caches()?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).ctx("chmod dir")?;
    let file = dir.join("file");
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .ctx("open file")?,
    );
    rustix::fs::utimensat(
        rustix::fs::CWD,
        &file,
        &rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
        },
        rustix::fs::AtFlags::empty(),
    )
    .ctx("touch file")?;
    let got = events(&ino)?;
    let want = vec![
        (W::IN_ATTRIB | W::IN_ISDIR, String::new()),
        (W::IN_OPEN, "file".to_string()),
        (W::IN_CLOSE_WRITE, "file".to_string()),
        (W::IN_ATTRIB, "file".to_string()),
    ];
    ensure_eq!(got, want, "events on the directory watch");
    Ok(())
}

fn namespace_events_after_drop_caches(env: &Env) -> Outcome {
    let dir = tree(env).target.join("ns");
    std::fs::create_dir(&dir).ctx("mkdir through shiftfs")?;
    let ino = Inotify::init(IFlags::IN_NONBLOCK).ctx("inotify_init")?;
    ino.add_watch(
        &dir,
        W::IN_CREATE | W::IN_DELETE | W::IN_MOVED_FROM | W::IN_MOVED_TO,
    )
    .ctx("add_watch")?;
    drop_caches()?;
    std::fs::write(dir.join("a"), b"a").ctx("create")?;
    std::fs::create_dir(dir.join("sub")).ctx("mkdir")?;
    std::fs::rename(dir.join("a"), dir.join("b")).ctx("rename")?;
    drop_caches()?;
    std::fs::remove_file(dir.join("b")).ctx("unlink")?;
    std::fs::remove_dir(dir.join("sub")).ctx("rmdir")?;
    let got: Vec<(W, String)> = events(&ino)?;
    let want = vec![
        (W::IN_CREATE, "a".to_string()),
        (W::IN_CREATE | W::IN_ISDIR, "sub".to_string()),
        (W::IN_MOVED_FROM, "a".to_string()),
        (W::IN_MOVED_TO, "b".to_string()),
        (W::IN_DELETE, "b".to_string()),
        (W::IN_DELETE | W::IN_ISDIR, "sub".to_string()),
    ];
    ensure_eq!(got, want, "events for operations through shiftfs");
    Ok(())
}

fn file_watch_survives_drop_caches(env: &Env) -> Outcome {
    let file = tree(env).target.join("watched");
    let ino = Inotify::init(IFlags::IN_NONBLOCK).ctx("inotify_init")?;
    ino.add_watch(
        &file,
        W::IN_ATTRIB | W::IN_OPEN | W::IN_MODIFY | W::IN_CLOSE_WRITE,
    )
    .ctx("add_watch file")?;
    drop_caches()?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).ctx("chmod")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .ctx("open")?;
    f.write_all(b"more").ctx("write")?;
    drop(f);
    let got: Vec<W> = events(&ino)?.into_iter().map(|(m, _)| m).collect();
    ensure_eq!(
        got,
        vec![W::IN_ATTRIB, W::IN_OPEN, W::IN_MODIFY, W::IN_CLOSE_WRITE],
        "events on the file watch"
    );
    Ok(())
}

fn real_path_changes_do_not_show(env: &Env) -> Outcome {
    let ino = Inotify::init(IFlags::IN_NONBLOCK).ctx("inotify_init")?;
    ino.add_watch(&tree(env).target.join("watched"), W::IN_ALL_EVENTS)
        .ctx("add_watch")?;
    std::fs::write(tree(env).real.join("watched"), b"below").ctx("write on the real path")?;
    std::fs::set_permissions(
        tree(env).real.join("watched"),
        std::fs::Permissions::from_mode(0o600),
    )
    .ctx("chmod on the real path")?;
    ensure_eq!(
        events(&ino)?,
        Vec::new(),
        "events for changes below shiftfs"
    );
    Ok(())
}

fn watches_come_and_go_under_writes(env: &Env) -> Outcome {
    let file = tree(env).target.join("churn");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (file, stop) = (file.clone(), stop.clone());
        std::thread::spawn(move || -> Result<u64, String> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .ctx("open")?;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"w").ctx("write")?;
                n += 1;
            }
            Ok(n)
        })
    };
    let ino = Inotify::init(IFlags::IN_NONBLOCK).ctx("inotify_init")?;
    let mut result = Ok(());
    for i in 0..3000 {
        let wd = match ino.add_watch(&file, W::IN_MODIFY | W::IN_ATTRIB) {
            Ok(wd) => wd,
            Err(e) => {
                result = Err(format!("add_watch #{i}: {e}"));
                break;
            }
        };
        if let Err(e) = ino.rm_watch(wd) {
            result = Err(format!("rm_watch #{i}: {e}"));
            break;
        }
        if i % 500 == 0 {
            let _ = events(&ino);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().map_err(|_| "writer panicked")??;
    result?;
    ensure!(writes > 0, "the writer never wrote");
    Ok(())
}

fn fanotify_inode_mark_reports_open_modify_close(env: &Env) -> Outcome {
    let file = tree(env).target.join("fan");
    let fan = Fanotify::init(
        InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY,
    )
    .ctx("fanotify_init")?;
    fan.mark(
        MarkFlags::FAN_MARK_ADD,
        MaskFlags::FAN_OPEN | MaskFlags::FAN_MODIFY | MaskFlags::FAN_CLOSE_WRITE,
        rustix::fs::CWD,
        Some(&file),
    )
    .ctx("fanotify_mark")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .ctx("open")?;
    f.write_all(b"fan").ctx("write")?;
    drop(f);
    std::thread::sleep(Duration::from_millis(10));
    let mut mask = MaskFlags::empty();
    loop {
        match fan.read_events() {
            Ok(evs) if !evs.is_empty() => evs.iter().for_each(|e| mask |= e.mask()),
            Ok(_) | Err(nix::Error::EAGAIN) => break,
            Err(e) => return Err(format!("read fanotify: {e}")),
        }
    }
    let want = MaskFlags::FAN_OPEN | MaskFlags::FAN_MODIFY | MaskFlags::FAN_CLOSE_WRITE;
    ensure_eq!(mask & want, want, "fanotify events");
    Ok(())
}

/// The shifting mount of this suite is the host's, on `target`.
fn tree(env: &Env) -> Tree {
    Tree::new(env, "notify")
}
