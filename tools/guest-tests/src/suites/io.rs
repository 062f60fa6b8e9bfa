//! File I/O and attribute changes through a shifting mount, from a real
//! container (0:100000:65536), checked byte for byte and id for id against
//! what the host sees on disk.

use crate::{
    ensure, ensure_eq,
    fixture::{load, pattern, unload, Tree},
    harness::{Context, Outcome},
    tests, Env,
};
use rustix::{
    fs::{self as rfs, stat, Mode, OFlags, SeekFrom, Timespec, Timestamps, UTIME_NOW},
    io::Errno,
};
use std::{
    io::{Read, Seek, Write},
    os::unix::fs::{MetadataExt, PermissionsExt},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_and_marks,
    container_reads_what_the_host_wrote,
    host_reads_what_the_container_wrote,
    append_and_setfl_reach_the_real_file,
    sparse_file_and_seek_hole,
    shared_mmap_is_coherent_with_read,
    fsync_and_fdatasync,
    private_mmap_and_sendfile_read_the_file,
    seekdir_resumes_a_listing,
    chmod_chown_seen_on_disk,
    chown_to_an_id_the_container_cannot_map_is_einval,
    chown_of_one_id_keeps_the_other_on_disk,
    lchown_of_a_symlink_reaches_the_disk,
    truncate_and_utimes_seen_on_disk,
    reads_update_atime_on_disk,
    noatime_shifting_mount_keeps_atime_on_disk,
    read_only_shifting_mount_keeps_atime_on_disk,
    o_noatime_keeps_atime_on_disk,
    noatime_real_mount_keeps_atime_on_disk,
    nodiratime_real_mount_keeps_dir_atime_on_disk,
    permission_follows_the_shifted_owner,
    host_unmarks,
    unload,
];

fn host_prepares_and_marks(env: &Env) -> Outcome {
    let tree = tree(env);
    tree.create()?;
    let r = tree.real.clone();
    for name in [
        "host-written",
        "container-written",
        "append",
        "mapped",
        "attrs",
        "private",
    ] {
        let f = r.join(name);
        std::fs::write(&f, pattern(100_000, 7)).ctx("create")?;
        std::os::unix::fs::chown(&f, Some(1000), Some(1000)).ctx("chown")?;
    }
    std::fs::set_permissions(r.join("private"), std::fs::Permissions::from_mode(0o600))
        .ctx("chmod private")?;
    tree.mark()
}

fn container_reads_what_the_host_wrote(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let data = std::fs::read(t.join("host-written")).ctx("read")?;
        ensure!(
            data == pattern(100_000, 7),
            "contents differ ({} bytes)",
            data.len()
        );
        Ok(())
    })
}

fn host_reads_what_the_container_wrote(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(t.join("container-written"))
            .ctx("open for writing")?;
        f.seek(std::io::SeekFrom::Start(4096 - 3)).ctx("seek")?;
        f.write_all(&pattern(70_001, 99)).ctx("write")?;
        Ok(())
    })?;
    let data = std::fs::read(tree(env).real.join("container-written")).ctx("read on host")?;
    let mut want = pattern(100_000, 7);
    want[4093..4093 + 70_001].copy_from_slice(&pattern(70_001, 99));
    ensure!(data == want, "bytes on disk differ");
    let md = std::fs::metadata(tree(env).real.join("container-written")).ctx("stat")?;
    ensure_eq!(
        (md.uid(), md.gid()),
        (1000, 1000),
        "on-disk owner after write"
    );
    Ok(())
}

fn append_and_setfl_reach_the_real_file(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let path = t.join("append");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .ctx("open O_APPEND")?;
        f.write_all(b"one").ctx("append")?;
        drop(f);
        // A file opened without O_APPEND, then switched with F_SETFL.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .ctx("open")?;
        rfs::fcntl_setfl(&f, OFlags::APPEND).ctx("F_SETFL O_APPEND")?;
        rustix::io::write(&f, b"two").ctx("write after F_SETFL")?;
        let size = stat(&path).ctx("stat")?.st_size;
        ensure_eq!(size, 100_006, "size after two appends");
        Ok(())
    })?;
    let data = std::fs::read(tree(env).real.join("append")).ctx("read on host")?;
    ensure_eq!(&data[100_000..], b"onetwo", "appended bytes on disk");
    Ok(())
}

fn sparse_file_and_seek_hole(env: &Env) -> Outcome {
    let sparse = tree(env).real.join("sparse");
    {
        let f = std::fs::File::create(&sparse).ctx("create sparse")?;
        rustix::io::pwrite(&f, b"data", 1 << 20).ctx("pwrite at 1 MiB")?;
    }
    tree(env).in_shifted(|t| {
        let f = std::fs::File::open(t.join("sparse")).ctx("open")?;
        let data = rfs::seek(&f, SeekFrom::Data(0)).ctx("SEEK_DATA")?;
        ensure_eq!(data, 1 << 20, "first data");
        let hole = rfs::seek(&f, SeekFrom::Hole(0)).ctx("SEEK_HOLE")?;
        ensure_eq!(hole, 0, "first hole");
        let mut buf = [1u8; 8];
        let n = rustix::io::pread(&f, &mut buf, 4096).ctx("pread in the hole")?;
        ensure_eq!((n, buf), (8, [0u8; 8]), "bytes in the hole");
        let mut tail = Vec::new();
        let mut f = f;
        f.seek(std::io::SeekFrom::Start(1 << 20)).ctx("seek")?;
        f.read_to_end(&mut tail).ctx("read tail")?;
        ensure_eq!(tail, b"data".to_vec(), "data after the hole");
        Ok(())
    })
}

fn shared_mmap_is_coherent_with_read(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let path = t.join("mapped");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .ctx("open")?;
        // SAFETY: a fresh shared mapping of a file we hold open, unmapped below.
        let p = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                8192,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &f,
                0,
            )
        }
        .ctx("mmap shared")?;
        // SAFETY: the mapping is 8192 bytes long and writable.
        unsafe { core::ptr::copy_nonoverlapping(b"MAPPED".as_ptr(), p.cast::<u8>().add(100), 6) };
        let mut buf = [0u8; 6];
        rustix::io::pread(&f, &mut buf, 100).ctx("pread")?;
        // SAFETY: unmapping what we mapped.
        unsafe { rustix::mm::munmap(p, 8192) }.ctx("munmap")?;
        ensure_eq!(
            &buf,
            b"MAPPED",
            "read() after a store to the shared mapping"
        );
        Ok(())
    })?;
    let data = std::fs::read(tree(env).real.join("mapped")).ctx("read on host")?;
    ensure_eq!(&data[100..106], b"MAPPED", "bytes on disk");
    Ok(())
}

fn private_mmap_and_sendfile_read_the_file(env: &Env) -> Outcome {
    let out = env.scratch.join("io-sendfile-out");
    // Made by the host: the container may not create in the scratch area.
    std::fs::write(&out, b"").ctx("create sendfile target")?;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o666)).ctx("chmod")?;
    tree(env).in_shifted(move |t| {
        let f = std::fs::File::open(t.join("host-written")).ctx("open")?;
        // SAFETY: a fresh private read-only mapping, unmapped below.
        let p = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                100_000,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::PRIVATE,
                &f,
                0,
            )
        }
        .ctx("mmap private")?;
        // SAFETY: the mapping is 100000 bytes long.
        let mapped = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), 100_000) }.to_vec();
        // SAFETY: unmapping what we mapped.
        unsafe { rustix::mm::munmap(p, 100_000) }.ctx("munmap")?;
        ensure!(
            mapped == pattern(100_000, 7),
            "privately mapped bytes differ"
        );
        // sendfile reads the shiftfs file through splice_read.
        let dst = std::fs::OpenOptions::new()
            .write(true)
            .open(&out)
            .ctx("open sendfile target")?;
        let mut sent = 0;
        while sent < 100_000 {
            let n = rfs::sendfile(&dst, &f, None, 100_000 - sent).ctx("sendfile")?;
            ensure!(n > 0, "sendfile stopped at {sent}");
            sent += n;
        }
        ensure!(
            std::fs::read(&out).ctx("read back")? == pattern(100_000, 7),
            "sent bytes differ"
        );
        Ok(())
    })
}

fn seekdir_resumes_a_listing(env: &Env) -> Outcome {
    for i in 0..50 {
        std::fs::write(tree(env).real.join(format!("dirent-{i:02}")), b"").ctx("create")?;
    }
    tree(env).in_shifted(|t| {
        let fd = rfs::open(t, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ctx("open dir")?;
        // Every entry with the position (telldir) after it.
        let mut all = Vec::new();
        let mut buf = vec![std::mem::MaybeUninit::uninit(); 512];
        let mut dir = rfs::RawDir::new(&fd, &mut buf);
        while let Some(e) = dir.next() {
            let e = e.ctx("getdents")?;
            all.push((e.file_name().to_owned(), e.next_entry_cookie()));
        }
        ensure!(all.len() > 50, "only {} entries", all.len());
        for k in [0, 10, all.len() / 2, all.len() - 2] {
            // seekdir to the position after entry k: the next entry is k+1.
            rfs::seek(&fd, SeekFrom::Start(all[k].1)).ctx("seekdir")?;
            let mut buf = vec![std::mem::MaybeUninit::uninit(); 512];
            let mut dir = rfs::RawDir::new(&fd, &mut buf);
            let next = dir
                .next()
                .ok_or("no entry after seekdir")?
                .ctx("getdents")?;
            ensure_eq!(
                next.file_name(),
                all[k + 1].0.as_c_str(),
                format!("entry after seekdir({k})")
            );
        }
        Ok(())
    })
}

fn fsync_and_fdatasync(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(t.join("attrs"))
            .ctx("open")?;
        f.sync_all().ctx("fsync")?;
        f.sync_data().ctx("fdatasync")
    })
}

fn chmod_chown_seen_on_disk(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let p = t.join("attrs");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).ctx("chmod")?;
        std::os::unix::fs::chown(&p, Some(2000), Some(3000)).ctx("chown 2000:3000")?;
        let st = stat(&p).ctx("stat")?;
        ensure_eq!(
            (st.st_uid, st.st_gid, st.st_mode & 0o7777),
            (2000, 3000, 0o640),
            "in container"
        );
        Ok(())
    })?;
    let md = std::fs::metadata(tree(env).real.join("attrs")).ctx("stat on host")?;
    ensure_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (2000, 3000, 0o640),
        "on disk"
    );
    Ok(())
}

fn chown_to_an_id_the_container_cannot_map_is_einval(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let res = rfs::chown(t.join("attrs"), Some(rfs::Uid::from_raw(70_000)), None);
        ensure_eq!(res, Err(Errno::INVAL), "chown to 70000 in the container");
        Ok(())
    })
}

fn chown_of_one_id_keeps_the_other_on_disk(env: &Env) -> Outcome {
    let f = tree(env).real.join("one-id");
    std::fs::write(&f, b"x").ctx("create")?;
    std::os::unix::fs::chown(&f, Some(1000), Some(2000)).ctx("chown")?;
    tree(env).in_shifted(|t| {
        let p = t.join("one-id");
        std::os::unix::fs::chown(&p, Some(3000), None).ctx("chown uid only")?;
        std::os::unix::fs::chown(&p, None, Some(4000)).ctx("chgrp only")?;
        std::os::unix::fs::lchown(&p, Some(5000), None).ctx("lchown uid only")?;
        Ok(())
    })?;
    let md = std::fs::metadata(&f).ctx("stat")?;
    ensure_eq!(
        (md.uid(), md.gid()),
        (5000, 4000),
        "on-disk owner after one-id chowns"
    );
    Ok(())
}

fn lchown_of_a_symlink_reaches_the_disk(env: &Env) -> Outcome {
    std::os::unix::fs::symlink("attrs", tree(env).real.join("link")).ctx("symlink")?;
    tree(env).in_shifted(|t| {
        let id = (
            Some(rfs::Uid::from_raw(2000)),
            Some(rfs::Gid::from_raw(2000)),
        );
        rfs::chownat(
            rfs::CWD,
            t.join("link"),
            id.0,
            id.1,
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx("lchown")
    })?;
    let st = rfs::lstat(tree(env).real.join("link")).ctx("lstat on host")?;
    ensure_eq!(
        (st.st_uid, st.st_gid),
        (2000, 2000),
        "owner of the symlink on disk"
    );
    Ok(())
}

fn truncate_and_utimes_seen_on_disk(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        let p = t.join("attrs");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .ctx("open")?
            .set_len(12_345)
            .ctx("truncate")?;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: 2_000_000,
                tv_nsec: 500,
            },
        };
        rfs::utimensat(rfs::CWD, &p, &times, rfs::AtFlags::empty()).ctx("utimensat")?;
        Ok(())
    })?;
    let st = stat(tree(env).real.join("attrs")).ctx("stat on host")?;
    ensure_eq!(st.st_size, 12_345, "size on disk");
    ensure_eq!(
        (st.st_mtime, st.st_mtime_nsec),
        (2_000_000, 500),
        "mtime on disk"
    );
    ensure_eq!(st.st_atime, 1_000_000, "atime on disk");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    tree(env).in_shifted(|t| {
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        };
        let times = Timestamps {
            last_access: now,
            last_modification: now,
        };
        rfs::utimensat(rfs::CWD, t.join("attrs"), &times, rfs::AtFlags::empty()).ctx("UTIME_NOW")
    })?;
    let st = stat(tree(env).real.join("attrs")).ctx("stat on host")?;
    ensure!(
        st.st_mtime >= before,
        "UTIME_NOW mtime {} < {before}",
        st.st_mtime
    );
    Ok(())
}

/// An access time long past: any read under `relatime` (the default) or
/// `strictatime` updates it.
const OLD_ATIME: i64 = 1_000_000;

/// A file, a directory with an entry and a symlink to the file in `real`,
/// all with atime [`OLD_ATIME`] on disk.
fn old_atimes(real: &std::path::Path) -> Outcome {
    let (file, dir, link) = (
        real.join("atime"),
        real.join("atime-dir"),
        real.join("atime-link"),
    );
    std::fs::write(&file, b"read me").ctx("create")?;
    std::fs::create_dir_all(&dir).ctx("mkdir")?;
    std::fs::write(dir.join("entry"), b"").ctx("create entry")?;
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("atime", &link).ctx("symlink")?;
    }
    let old = Timestamps {
        last_access: Timespec {
            tv_sec: OLD_ATIME,
            tv_nsec: 0,
        },
        last_modification: Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
    };
    for p in [&file, &dir, &link] {
        rfs::utimensat(rfs::CWD, p, &old, rfs::AtFlags::SYMLINK_NOFOLLOW).ctx("utimensat")?;
    }
    Ok(())
}

/// Reads the file (through the symlink) and lists the directory
/// [`old_atimes`] made, under `t`.
fn read_both(t: &std::path::Path) -> Outcome {
    ensure_eq!(
        std::fs::read(t.join("atime-link")).ctx("read")?,
        b"read me",
        "content"
    );
    let names: Vec<_> = std::fs::read_dir(t.join("atime-dir"))
        .ctx("opendir")?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .ctx("readdir")?;
    ensure_eq!(names, vec![std::ffi::OsString::from("entry")], "entries");
    Ok(())
}

/// The on-disk atimes of the file, the directory and the symlink, seen by
/// the host.
fn disk_atimes(real: &std::path::Path) -> Result<(i64, i64, i64), String> {
    let file = stat(real.join("atime")).ctx("stat file on host")?;
    let dir = stat(real.join("atime-dir")).ctx("stat dir on host")?;
    let link = rfs::lstat(real.join("atime-link")).ctx("lstat symlink on host")?;
    Ok((file.st_atime, dir.st_atime, link.st_atime))
}

fn reads_update_atime_on_disk(env: &Env) -> Outcome {
    let tree = tree(env);
    old_atimes(&tree.real)?;
    tree.in_shifted(read_both)?;
    let (file, dir, link) = disk_atimes(&tree.real)?;
    ensure!(
        file > OLD_ATIME && dir > OLD_ATIME && link > OLD_ATIME,
        "atimes on disk after a read through a symlink and a listing: file {file}, \
         directory {dir}, symlink {link}"
    );
    Ok(())
}

/// Reads under a shifting mount with `flags` and checks that no atime
/// reached the disk.
fn reads_keep_atimes(tree: &Tree, flags: rustix::mount::MountFlags, what: &str) -> Outcome {
    old_atimes(&tree.real)?;
    tree.in_shifted_with(flags, read_both)?;
    ensure_eq!(
        disk_atimes(&tree.real)?,
        (OLD_ATIME, OLD_ATIME, OLD_ATIME),
        format!("atimes on disk after reading through a {what} shifting mount")
    );
    Ok(())
}

fn noatime_shifting_mount_keeps_atime_on_disk(env: &Env) -> Outcome {
    let tree = tree(env);
    reads_keep_atimes(&tree, rustix::mount::MountFlags::NOATIME, "noatime")?;
    // A mapping records its access as a read does.
    tree.in_shifted_with(rustix::mount::MountFlags::NOATIME, |t| {
        let f = std::fs::File::open(t.join("atime")).ctx("open")?;
        let map = mmap_first_page(&f)?;
        unmap(map)
    })?;
    ensure_eq!(
        disk_atimes(&tree.real)?.0,
        OLD_ATIME,
        "atime on disk after mapping through a noatime shifting mount"
    );
    Ok(())
}

fn read_only_shifting_mount_keeps_atime_on_disk(env: &Env) -> Outcome {
    reads_keep_atimes(&tree(env), rustix::mount::MountFlags::RDONLY, "read-only")
}

fn o_noatime_keeps_atime_on_disk(env: &Env) -> Outcome {
    let tree = tree(env);
    old_atimes(&tree.real)?;
    tree.in_shifted(|t| {
        let mut buf = [0u8; 7];
        // Opened so.
        let fd = rfs::open(
            t.join("atime"),
            OFlags::RDONLY | OFlags::NOATIME,
            Mode::empty(),
        )
        .ctx("open O_NOATIME")?;
        ensure_eq!(rustix::io::read(&fd, &mut buf).ctx("read")?, 7, "read");
        // Set later (fcntl(F_SETFL)).
        let fd = rfs::open(t.join("atime"), OFlags::RDONLY, Mode::empty()).ctx("open")?;
        rustix::fs::fcntl_setfl(&fd, OFlags::NOATIME).ctx("F_SETFL O_NOATIME")?;
        ensure_eq!(rustix::io::read(&fd, &mut buf).ctx("read")?, 7, "read");
        Ok(())
    })?;
    ensure_eq!(
        disk_atimes(&tree.real)?.0,
        OLD_ATIME,
        "atime on disk after O_NOATIME reads"
    );
    Ok(())
}

/// Marks a bind mount of the io tree remounted with `flags`, reads through
/// a shifting mount of that mark, checks that the shifting mount shows the
/// atimes the disk has, and returns those.
fn read_through_real_mount(
    env: &Env,
    flags: rustix::mount::MountFlags,
) -> Result<(i64, i64, i64), String> {
    use rustix::mount::{mount, mount_bind, mount_remount, unmount, MountFlags, UnmountFlags};
    let tree = Tree::new(env, "io-real-flags");
    tree.create()?;
    let io = tree_real(env);
    old_atimes(&io)?;
    mount_bind(&io, &tree.real).ctx("bind")?;
    rustix::mount::mount_change(&tree.real, rustix::mount::MountPropagationFlags::PRIVATE)
        .ctx("private")?;
    mount_remount(&tree.real, MountFlags::BIND | flags, c"").ctx("remount bind")?;
    mount(
        &tree.real,
        &tree.mark,
        crate::sys::FS_NAME,
        MountFlags::empty(),
        c"mark",
    )
    .ctx("mark")?;
    let disk = io.clone();
    let res = tree.in_shifted(move |t| {
        read_both(t)?;
        ensure_eq!(
            disk_atimes(t)?,
            disk_atimes(&disk)?,
            "atimes seen through the shifting mount, and on disk"
        );
        Ok(())
    });
    tree.unmark()?;
    unmount(&tree.real, UnmountFlags::empty()).ctx("umount bind")?;
    res?;
    disk_atimes(&io)
}

fn noatime_real_mount_keeps_atime_on_disk(env: &Env) -> Outcome {
    ensure_eq!(
        read_through_real_mount(env, rustix::mount::MountFlags::NOATIME)?,
        (OLD_ATIME, OLD_ATIME, OLD_ATIME),
        "atimes on disk after reading through a shifting mount of a noatime real mount"
    );
    Ok(())
}

fn nodiratime_real_mount_keeps_dir_atime_on_disk(env: &Env) -> Outcome {
    let (file, dir, link) = read_through_real_mount(env, rustix::mount::MountFlags::NODIRATIME)?;
    ensure!(
        file > OLD_ATIME && link > OLD_ATIME && dir == OLD_ATIME,
        "atimes on disk after reading through a shifting mount of a nodiratime real \
         mount: file {file}, directory {dir}, symlink {link}"
    );
    Ok(())
}

/// Maps the first page of `f`, shared and read-only.
fn mmap_first_page(f: &std::fs::File) -> Result<*mut libc::c_void, String> {
    use std::os::fd::AsRawFd;
    // SAFETY: a new mapping of an open file; nothing else refers to it.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    ensure!(
        map != libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    Ok(map)
}

/// Unmaps what [`mmap_first_page`] mapped.
fn unmap(map: *mut libc::c_void) -> Outcome {
    // SAFETY: `map` is a mapping of one page that nothing uses any more.
    let rc = unsafe { libc::munmap(map, 4096) };
    ensure!(rc == 0, "munmap: {}", std::io::Error::last_os_error());
    Ok(())
}

fn tree_real(env: &Env) -> std::path::PathBuf {
    tree(env).real
}

fn permission_follows_the_shifted_owner(env: &Env) -> Outcome {
    // "private" is 0600, owned by on-disk 1000: container uid 1000 may read
    // it, container uid 2000 may not.
    tree(env).in_shifted(|t| {
        let p = t.join("private");
        rustix::thread::set_thread_res_gid(
            rfs::Gid::from_raw(1000),
            rfs::Gid::from_raw(1000),
            rfs::Gid::from_raw(1000),
        )
        .ctx("setresgid 1000")?;
        rustix::thread::set_thread_res_uid(
            rfs::Uid::from_raw(1000),
            rfs::Uid::from_raw(1000),
            rfs::Uid::from_raw(1000),
        )
        .ctx("setresuid 1000")?;
        let owner = rfs::open(&p, OFlags::RDONLY, Mode::empty()).map(|_| ());
        ensure_eq!(owner, Ok(()), "open by its owner");
        Ok(())
    })?;
    tree(env).in_shifted(|t| {
        let p = t.join("private");
        rustix::thread::set_thread_res_uid(
            rfs::Uid::from_raw(2000),
            rfs::Uid::from_raw(2000),
            rfs::Uid::from_raw(2000),
        )
        .ctx("setresuid 2000")?;
        let other = rfs::open(&p, OFlags::RDONLY, Mode::empty()).map(|_| ());
        ensure_eq!(other, Err(Errno::ACCESS), "open by another user");
        Ok(())
    })
}

fn tree(env: &Env) -> Tree {
    Tree::new(env, "io")
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
