//! Regressions shaped like the C shiftfs CVEs: 2019-15791 (refcount
//! underflow: repeated failing lookups, entries vanishing below cached
//! dentries and open files), 2019-15792 (type confusion of the lower file:
//! shiftfs files mixed with other filesystems' in the calls that take two),
//! 2019-15793 (refcounts on error paths: operations failing midway) and
//! 2021-3492 (ioctl double free: ENOTTY ioctls with garbage pointers).

use super::{
    ioctls::{requests, WHITELIST},
    iterations, shift_mount, tree,
};
use crate::{
    container, ensure, ensure_eq,
    fixture::{become_id, Tree},
    harness::{Context, Outcome},
    reliability::{self as rel, Rng},
    Env,
};
use rustix::{
    fs::{self as rfs, Mode, OFlags, XattrFlags},
    io::Errno,
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::{
    collections::BTreeMap,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

pub(super) fn cve_2019_15791_repeated_failing_lookups_and_vanishing_entries(env: &Env) -> Outcome {
    let tree = tree(env);
    let n = iterations(150);
    let rounds = iterations(20);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    let real = tree.real.clone();
    std::fs::write(real.join("own/victim"), b"v0").ctx("create victim")?;
    rel::lockstep(
        move |turn| {
            shift_mount(&mark, &target).ctx("shifting mount")?;
            let o = target.join("own");
            let file = o.join("file");
            let ck = |what: &str, r: Result<(), Errno>, want: Errno| -> Outcome {
                ensure_eq!(r.err(), Some(want), what);
                Ok(())
            };
            for _ in 0..n {
                ck(
                    "stat missing",
                    rfs::stat(o.join("missing")).map(drop),
                    Errno::NOENT,
                )?;
                ck(
                    "open missing",
                    rfs::open(o.join("missing"), OFlags::RDONLY, Mode::empty()).map(drop),
                    Errno::NOENT,
                )?;
                ck(
                    "unlink missing",
                    rfs::unlink(o.join("missing")),
                    Errno::NOENT,
                )?;
                ck("rmdir missing", rfs::rmdir(o.join("missing")), Errno::NOENT)?;
                ck(
                    "rename missing",
                    rfs::rename(o.join("missing"), o.join("m2")),
                    Errno::NOENT,
                )?;
                ck(
                    "readlink of a file",
                    rfs::readlink(&file, Vec::new()).map(drop),
                    Errno::INVAL,
                )?;
                ck(
                    "O_DIRECTORY of a file",
                    rfs::open(&file, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).map(drop),
                    Errno::NOTDIR,
                )?;
                ck(
                    "directory for writing",
                    rfs::open(&o, OFlags::WRONLY, Mode::empty()).map(drop),
                    Errno::ISDIR,
                )?;
                ck(
                    "O_EXCL of an existing file",
                    rfs::open(
                        &file,
                        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY,
                        Mode::from_raw_mode(0o644),
                    )
                    .map(drop),
                    Errno::EXIST,
                )?;
                ck(
                    "mkdir of an existing name",
                    rfs::mkdir(&file, Mode::from_raw_mode(0o755)),
                    Errno::EXIST,
                )?;
                ck(
                    "link over an existing name",
                    rfs::link(&file, &file),
                    Errno::EXIST,
                )?;
                ck(
                    "lookup through a file",
                    rfs::stat(file.join("x")).map(drop),
                    Errno::NOTDIR,
                )?;
                ck(
                    "getxattr missing",
                    rfs::getxattr(&file, "user.none", &mut [0u8; 8]).map(drop),
                    Errno::NODATA,
                )?;
                ck("rmdir of a file", rfs::rmdir(&file), Errno::NOTDIR)?;
                ck("unlink of a directory", rfs::unlink(&o), Errno::ISDIR)?;
            }
            // The real entry goes and comes back under cached dentries and
            // open files.
            let v = o.join("victim");
            for i in 0..rounds {
                let st = rfs::stat(&v).ctx("stat victim")?;
                ensure!(st.st_nlink == 1, "victim nlink");
                let fd = rfs::open(&v, OFlags::RDWR, Mode::empty()).ctx("open victim")?;
                // Host: removes the real entry.
                turn.pass()?;
                ck(
                    "stat of a vanished entry",
                    rfs::stat(&v).map(drop),
                    Errno::NOENT,
                )?;
                ck(
                    "open of a vanished entry",
                    rfs::open(&v, OFlags::RDONLY, Mode::empty()).map(drop),
                    Errno::NOENT,
                )?;
                ck(
                    "chmod of a vanished entry",
                    rfs::chmod(&v, Mode::from_raw_mode(0o600)),
                    Errno::NOENT,
                )?;
                ck("unlink of a vanished entry", rfs::unlink(&v), Errno::NOENT)?;
                rustix::io::pwrite(&fd, b"on the open file", 0)
                    .ctx("write to the open, vanished file")?;
                drop(fd);
                // Host: makes it again.
                turn.pass()?;
                let data = std::fs::read(&v).ctx("read the new victim")?;
                ensure_eq!(data, format!("v{}", i + 1).into_bytes(), "the new victim");
            }
            Ok(())
        },
        move |turn| {
            turn.wait()?;
            for i in 0..rounds {
                std::fs::remove_file(real.join("own/victim")).ctx("remove below")?;
                turn.pass()?;
                std::fs::write(real.join("own/victim"), format!("v{}", i + 1))
                    .ctx("create below")?;
                turn.pass()
                    .or_else(|e| if i + 1 == rounds { Ok(()) } else { Err(e) })?;
            }
            Ok(())
        },
    )
}

/// Every pairing of `files` by copy_file_range, FICLONE, FICLONERANGE,
/// FIDEDUPERANGE, sendfile, and splice through a pipe; an answer is either
/// success with the right bytes or a clean errno.
fn mix(files: &[(&str, &OwnedFd)]) -> Result<usize, String> {
    let clean = [
        Errno::XDEV,
        Errno::OPNOTSUPP,
        Errno::INVAL,
        Errno::BADF,
        Errno::ISDIR,
        Errno::PERM,
        Errno::TXTBSY,
    ];
    let mut n = 0;
    let mut bad = Vec::new();
    for (a, fa) in files {
        for (b, fb) in files {
            let want = {
                let mut buf = vec![0u8; 64];
                let k = rustix::io::pread(fa, &mut buf, 0).unwrap_or(0);
                buf.truncate(k);
                buf
            };
            let (pr, pw) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
            let mut check = |op: &str, r: Result<usize, Errno>| {
                n += 1;
                match r {
                    Ok(k) if k > 0 && !want.is_empty() => {
                        let mut got = vec![0u8; k.min(want.len())];
                        let m = rustix::io::pread(fb, &mut got, 0).unwrap_or(0);
                        if got[..m] != want[..m] {
                            bad.push(format!("{op} {a} -> {b}: wrong bytes"));
                        }
                    }
                    Ok(_) => {}
                    Err(e) if clean.contains(&e) => {}
                    Err(e) => bad.push(format!("{op} {a} -> {b}: {e:?}")),
                }
            };
            let (mut oi, mut oo) = (0u64, 0u64);
            check(
                "copy_file_range",
                rfs::copy_file_range(fa, Some(&mut oi), fb, Some(&mut oo), 64),
            );
            check(
                "FICLONE",
                rel::ioctl(fb, 0x4004_9409, fa.as_raw_fd() as usize)
                    .map(|_| 0)
                    .map_err(Errno::from_raw_os_error),
            );
            // struct file_clone_range { s64 src_fd; u64 src_offset, src_length, dest_offset }.
            let range: [u64; 4] = [fa.as_raw_fd() as u64, 0, 0, 0];
            check(
                "FICLONERANGE",
                rel::ioctl(fb, 0x4020_940d, range.as_ptr() as usize)
                    .map(|_| 0)
                    .map_err(Errno::from_raw_os_error),
            );
            // struct file_dedupe_range with one destination.
            let mut dedupe = [0u64; 3 + 4];
            dedupe[1] = 4096;
            dedupe[2] = 1; // dest_count = 1, reserved = 0
            dedupe[3] = fb.as_raw_fd() as u64;
            check(
                "FIDEDUPERANGE",
                rel::ioctl(fa, 0xc018_9436, dedupe.as_mut_ptr() as usize)
                    .map(|_| 0)
                    .map_err(Errno::from_raw_os_error),
            );
            let mut off = 0u64;
            check(
                "sendfile",
                rfs::sendfile(fb, fa, Some(&mut off), 64).map(|_| 0),
            );
            let mut o1 = 0u64;
            let r = rustix::pipe::splice(
                fa,
                Some(&mut o1),
                &pw,
                None,
                64,
                rustix::pipe::SpliceFlags::NONBLOCK,
            );
            let k = r.unwrap_or(0);
            check("splice in", r.map(|_| 0));
            if k > 0 {
                let mut o2 = 0u64;
                check(
                    "splice out",
                    rustix::pipe::splice(
                        &pr,
                        None,
                        fb,
                        Some(&mut o2),
                        k,
                        rustix::pipe::SpliceFlags::NONBLOCK,
                    )
                    .map(|_| 0),
                );
            }
        }
    }
    if bad.is_empty() {
        Ok(n)
    } else {
        Err(format!("{bad:?}"))
    }
}

pub(super) fn cve_2019_15792_shiftfs_and_other_files_mixed(env: &Env) -> Outcome {
    let tree = tree(env);
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let t = &target;
        // The container's tmpfs, and overlayfs on the shifting mount.
        let tmp = t.join("ovl/m");
        mount("tmp", &tmp, "tmpfs", MountFlags::empty(), c"").ctx("tmpfs")?;
        let merged = tmp.join("merged");
        std::fs::create_dir(&merged).ctx("mkdir")?;
        let opts = format!(
            "userxattr,lowerdir={},upperdir={},workdir={}",
            t.join("ovl/l").display(),
            t.join("ovl/u").display(),
            t.join("ovl/w").display()
        );
        let opts = std::ffi::CString::new(opts).expect("no NUL");
        mount("overlay", &merged, "overlay", MountFlags::empty(), &*opts)
            .ctx("overlay on shiftfs")?;
        let open = |p: PathBuf, flags: OFlags| {
            rfs::open(&p, flags, Mode::from_raw_mode(0o644)).ctx(&format!("open {}", p.display()))
        };
        let rw = OFlags::RDWR | OFlags::CREATE;
        std::fs::write(t.join("own/mix-src"), b"shiftfs bytes").ctx("create")?;
        std::fs::write(tmp.join("src"), b"tmpfs bytes").ctx("create")?;
        let files = [
            ("shiftfs", open(t.join("own/mix-src"), OFlags::RDWR)?),
            ("shiftfs-2", open(t.join("own/mix-dst"), rw)?),
            ("tmpfs", open(tmp.join("src"), OFlags::RDWR)?),
            ("overlay-lower", open(merged.join("lower"), OFlags::RDONLY)?),
            ("overlay-upper", open(merged.join("new"), rw)?),
            (
                "mark (read-only view)",
                open(mark.join("own/file"), OFlags::RDONLY)?,
            ),
            (
                "shiftfs dir",
                open(t.join("own"), OFlags::RDONLY | OFlags::DIRECTORY)?,
            ),
            (
                "overlay dir",
                open(merged.clone(), OFlags::RDONLY | OFlags::DIRECTORY)?,
            ),
            ("O_PATH shiftfs", open(t.join("own/file"), OFlags::PATH)?),
        ];
        let refs: Vec<(&str, &OwnedFd)> = files.iter().map(|(n, f)| (*n, f)).collect();
        let n = mix(&refs)?;
        // The flags requests on overlayfs files and directories reach
        // shiftfs's fileattr underneath.
        let mut buf = [0u8; 64];
        for (what, f) in &files[3..8] {
            for req in [0x8008_6601u64, 0x801c_581f] {
                let r = rel::ioctl(f, req, buf.as_mut_ptr() as usize);
                ensure!(
                    r.is_ok() || r == Err(libc::ENOTTY) || r == Err(libc::EBADF),
                    "{req:#x} on {what}: {r:?}"
                );
            }
        }
        rel::info(&format!("hostile: {n} mixed-file operations"));
        drop(files);
        unmount(&merged, UnmountFlags::empty()).ctx("umount overlay")?;
        Ok(())
    })
}

pub(super) fn cve_2019_15793_operations_failing_midway(env: &Env) -> Outcome {
    let n = iterations(150);
    // Small filesystems of their own: one without free inodes, one
    // read-only; each marked.
    let mut trees = Vec::new();
    for (name, opts) in [
        ("hostile-full", c"nr_inodes=8,size=64k"),
        ("hostile-ro", c"size=64k"),
    ] {
        let b = env.scratch.join(name);
        std::fs::create_dir_all(&b).ctx("mkdir")?;
        mount(name, &b, "tmpfs", MountFlags::empty(), opts).ctx("tmpfs")?;
        let t = Tree {
            real: b.join("real"),
            mark: env.scratch.join(format!("{name}-mark")),
            target: env.scratch.join(format!("{name}-target")),
        };
        t.create()?;
        std::fs::write(t.real.join("file"), b"file").ctx("create")?;
        std::fs::create_dir_all(t.real.join("dir")).ctx("mkdir")?;
        t.mark()?;
        trees.push((b, t));
    }
    // Use up the inodes; make the other read-only.
    for i in 0.. {
        if std::fs::write(trees[0].1.real.join(format!("fill{i}")), b"").is_err() {
            break;
        }
    }
    rustix::mount::mount_remount(&trees[1].0, MountFlags::RDONLY, c"").ctx("remount ro")?;
    let main = tree(env);
    let targets: Vec<(PathBuf, PathBuf)> = trees
        .iter()
        .map(|(_, t)| (t.mark.clone(), t.target.clone()))
        .collect();
    let (mark, target) = (main.mark.clone(), main.target.clone());
    let res = container::run(move || {
        for (m, t) in &targets {
            shift_mount(m, t).ctx("shifting mount")?;
        }
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let mut tally: BTreeMap<String, u64> = BTreeMap::new();
        let mut ck = |what: &str, r: Result<(), Errno>, want: &[Errno]| -> Outcome {
            match r {
                Err(e) if want.contains(&e) => {
                    *tally.entry(format!("{e:?}")).or_default() += 1;
                    Ok(())
                }
                other => Err(format!("{what}: {other:?}, expected one of {want:?}")),
            }
        };
        let (full, ro) = (&targets[0].1, &targets[1].1);
        let ns = [Errno::NOSPC];
        let rofs = [Errno::ROFS];
        for i in 0..n {
            let c = |p: &Path| {
                rfs::open(
                    p,
                    OFlags::CREATE | OFlags::WRONLY,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            };
            ck("create, no inodes", c(&full.join(format!("n{i}"))), &ns)?;
            ck(
                "mkdir, no inodes",
                rfs::mkdir(full.join("d"), Mode::from_raw_mode(0o755)),
                &ns,
            )?;
            ck("symlink, no inodes", rfs::symlink("x", full.join("s")), &ns)?;
            ck(
                "tmpfile, no inodes",
                rfs::open(
                    full,
                    OFlags::TMPFILE | OFlags::RDWR,
                    Mode::from_raw_mode(0o600),
                )
                .map(drop),
                &ns,
            )?;
            ck("create, read-only", c(&ro.join("n")), &rofs)?;
            ck(
                "open for writing, read-only",
                rfs::open(ro.join("file"), OFlags::WRONLY, Mode::empty()).map(drop),
                &rofs,
            )?;
            ck("unlink, read-only", rfs::unlink(ro.join("file")), &rofs)?;
            ck(
                "rename, read-only",
                rfs::rename(ro.join("file"), ro.join("f2")),
                &rofs,
            )?;
            ck("rmdir, read-only", rfs::rmdir(ro.join("dir")), &rofs)?;
            ck(
                "chmod, read-only",
                rfs::chmod(ro.join("file"), Mode::from_raw_mode(0o600)),
                &rofs,
            )?;
            ck(
                "setxattr, read-only",
                rfs::setxattr(ro.join("file"), "user.x", b"x", XattrFlags::empty()),
                &rofs,
            )?;
            ck(
                "tmpfile, read-only",
                rfs::open(
                    ro,
                    OFlags::TMPFILE | OFlags::RDWR,
                    Mode::from_raw_mode(0o600),
                )
                .map(drop),
                &rofs,
            )?;
        }
        // EACCES, as container user 1000 on a 0700 root directory.
        let locked = target.join("locked");
        let r = rel::spawn(move || {
            become_id(1000)?;
            let mut k = 0u64;
            for i in 0..n {
                for (what, r) in [
                    (
                        "create",
                        rfs::open(
                            locked.join(format!("n{i}")),
                            OFlags::CREATE | OFlags::WRONLY,
                            Mode::from_raw_mode(0o644),
                        )
                        .map(drop),
                    ),
                    (
                        "mkdir",
                        rfs::mkdir(locked.join("d"), Mode::from_raw_mode(0o755)),
                    ),
                    ("stat", rfs::stat(locked.join("x")).map(drop)),
                    (
                        "readdir",
                        rfs::open(&locked, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
                            .map(drop),
                    ),
                    ("chmod", rfs::chmod(&locked, Mode::from_raw_mode(0o777))),
                ] {
                    match r {
                        Err(Errno::ACCESS) | Err(Errno::PERM) => k += 1,
                        other => {
                            return Err(format!("{what} in a 0700 directory as 1000: {other:?}"))
                        }
                    }
                }
            }
            Ok(k.to_string())
        })?
        .wait()?;
        rel::info(&format!(
            "hostile: failing-midway errors {tally:?}, EACCES/EPERM {r}"
        ));
        Ok(())
    });
    for (b, t) in &trees {
        t.unmark()?;
        unmount(b, UnmountFlags::DETACH).ctx("umount tmpfs")?;
    }
    res
}

pub(super) fn cve_2021_3492_enotty_ioctls_with_garbage_pointers(env: &Env) -> Outcome {
    let tree = tree(env);
    let n = iterations(4000);
    let seed = rel::seed();
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let f = rfs::open(target.join("own/file"), OFlags::RDWR, Mode::empty()).ctx("open")?;
        let d = rfs::open(
            target.join("own"),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .ctx("open dir")?;
        let reqs: Vec<u64> = requests()
            .into_iter()
            .filter(|r| !WHITELIST.contains(r))
            .collect();
        let pointers = [
            0usize,
            1,
            0x10,
            0xdead_0000_0000,
            0x7fff_ffff_f000,
            0xffff_8880_0000_0000,
            0xffff_ffff_8100_0000,
            usize::MAX,
        ];
        let mut rng = Rng::new(seed);
        let mut tally: BTreeMap<i32, u64> = BTreeMap::new();
        let mut bad = Vec::new();
        for i in 0..n {
            let (req, ptr) = if i % 8 == 0 {
                // The whitelist with garbage: EFAULT, not a crash.
                (*rng.pick(&WHITELIST), *rng.pick(&pointers))
            } else {
                (*rng.pick(&reqs), *rng.pick(&pointers))
            };
            for fd in [&f, &d] {
                let r = rel::ioctl(fd, req, ptr);
                let e = r.err().unwrap_or(0);
                *tally.entry(e).or_default() += 1;
                // The VFS's own requests answer what they answer (the
                // range test checks the rest is ENOTTY); the whitelist
                // faults on every one of these addresses.
                if WHITELIST.contains(&req) && r != Err(libc::EFAULT) {
                    bad.push(format!("{req:#x} at {ptr:#x}: {r:?}"));
                }
            }
        }
        rel::info(&format!(
            "hostile: {} ioctls with garbage pointers, errnos {tally:?}",
            2 * n
        ));
        ensure!(bad.is_empty(), "{bad:?}");
        ensure_eq!(
            std::fs::read(target.join("own/file")).ctx("read")?,
            b"own file",
            "file after the ioctls"
        );
        Ok(())
    })
}
