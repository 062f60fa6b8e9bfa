//! A container uses a shifted directory as a root filesystem would be used:
//! it unpacks a tar of a few thousand files with mixed owners (as its root,
//! preserving owners), the host checks every entry on disk (owner unshifted,
//! mode, bytes, link targets, hard links), then the container deletes it all
//! and the host finds nothing left.

use crate::{
    ensure, ensure_eq,
    fixture::{load, unload, walk, Tree},
    harness::{Context, Outcome},
    tests, Env,
};
use std::{
    collections::BTreeMap,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares_an_archive_and_marks,
    container_unpacks_with_owners,
    container_deletes_everything,
    container_runs_programs_from_the_shifted_mount,
    host_unmarks,
    unload,
];

const DIRS: usize = 20;
const FILES_PER_DIR: usize = 100;
const OWNERS: [u32; 8] = [0, 1, 33, 100, 1000, 1001, 65_534, 65_535];
const MODES: [u32; 4] = [0o644, 0o600, 0o755, 0o640];

fn tree(env: &Env) -> Tree {
    Tree::new(env, "workload")
}

fn source(env: &Env) -> PathBuf {
    env.scratch.join("workload-src")
}

fn archive(env: &Env) -> PathBuf {
    env.scratch.join("workload.tar")
}

fn content(i: usize) -> Vec<u8> {
    (0..(i * 37) % 9000)
        .map(|j| (j as u8).wrapping_mul(13).wrapping_add(i as u8))
        .collect()
}

fn host_prepares_an_archive_and_marks(env: &Env) -> Outcome {
    let src = source(env);
    for d in 0..DIRS {
        let dir = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).ctx("mkdir")?;
        let o = OWNERS[d % OWNERS.len()];
        std::os::unix::fs::chown(&dir, Some(o), Some(o)).ctx("chown dir")?;
        for f in 0..FILES_PER_DIR {
            let i = d * FILES_PER_DIR + f;
            let p = dir.join(format!("f{f:03}"));
            match f % 10 {
                // A symlink, and a hard link to the previous file.
                8 => std::os::unix::fs::symlink(format!("f{:03}", f - 1), &p).ctx("symlink")?,
                9 => std::fs::hard_link(dir.join(format!("f{:03}", f - 2)), &p).ctx("link")?,
                _ => {
                    std::fs::write(&p, content(i)).ctx("write")?;
                    let (o, m) = (OWNERS[i % OWNERS.len()], MODES[i % MODES.len()]);
                    std::os::unix::fs::chown(&p, Some(o), Some(OWNERS[(i + 3) % OWNERS.len()]))
                        .ctx("chown")?;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m))
                        .ctx("chmod")?;
                }
            }
            if f % 10 == 8 {
                std::os::unix::fs::lchown(&p, Some(OWNERS[(i + 1) % 8]), Some(0)).ctx("lchown")?;
            }
        }
    }
    let out = Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(archive(env))
        .arg("-C")
        .arg(&src)
        .arg(".")
        .output()
        .ctx("tar -c")?;
    ensure!(
        out.status.success(),
        "tar -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = tree(env);
    tree.create()?;
    tree.mark()
}

/// (type and permission bits, uid, gid, content or link target, inode
/// group) of every entry under `root`, by relative path. The inode group
/// is the relative path of the first name of a hard-linked inode.
type Listing = BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>, PathBuf)>;

fn listing(root: &Path) -> Result<Listing, String> {
    let mut out = Listing::new();
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    walk(root, |p, rel, md| {
        let data = if md.is_dir() {
            Vec::new()
        } else if md.file_type().is_symlink() {
            std::fs::read_link(p)
                .ctx("readlink")?
                .into_os_string()
                .into_encoded_bytes()
        } else {
            std::fs::read(p).ctx("read")?
        };
        let group = inodes
            .entry(md.ino())
            .or_insert_with(|| rel.to_path_buf())
            .clone();
        out.insert(
            rel.to_path_buf(),
            (md.mode(), md.uid(), md.gid(), data, group),
        );
        Ok(())
    })?;
    Ok(out)
}

fn container_unpacks_with_owners(env: &Env) -> Outcome {
    let ar = archive(env);
    tree(env).in_shifted(|t| {
        let out = Command::new("tar")
            .args(["--numeric-owner", "--same-owner", "-xpf"])
            .arg(&ar)
            .arg("-C")
            .arg(t)
            .output()
            .ctx("tar -x")?;
        ensure!(
            out.status.success(),
            "tar -x: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    })?;
    let (want, got) = (listing(&source(env))?, listing(&tree(env).real)?);
    ensure_eq!(got.len(), want.len(), "entries on disk");
    ensure!(
        want.len() >= DIRS * (FILES_PER_DIR + 1),
        "archive too small: {}",
        want.len()
    );
    for (path, w) in &want {
        let g = got
            .get(path)
            .ok_or_else(|| format!("{} missing on disk", path.display()))?;
        ensure_eq!(
            (g.0, g.1, g.2, &g.4),
            (w.0, w.1, w.2, &w.4),
            format!("mode, owner, group, inode of {}", path.display())
        );
        ensure!(g.3 == w.3, "bytes of {} differ", path.display());
    }
    Ok(())
}

fn container_deletes_everything(env: &Env) -> Outcome {
    tree(env).in_shifted(|t| {
        for e in std::fs::read_dir(t).ctx("readdir")? {
            let p = e.ctx("readdir")?.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).ctx(&format!("rm -r {}", p.display()))?;
            } else {
                std::fs::remove_file(&p).ctx("rm")?;
            }
        }
        Ok(())
    })?;
    let left = listing(&tree(env).real)?;
    ensure!(
        left.is_empty(),
        "left on disk: {:?}",
        left.keys().take(5).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(source(env)).ctx("clean up")?;
    std::fs::remove_file(archive(env)).ctx("clean up")
}

fn container_runs_programs_from_the_shifted_mount(env: &Env) -> Outcome {
    let bin = tree(env).real.join("bin");
    std::fs::create_dir_all(&bin).ctx("mkdir")?;
    std::fs::copy("/usr/bin/busybox", bin.join("busybox")).ctx("copy busybox")?;
    std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755))
        .ctx("chmod")?;
    tree(env).in_shifted(|t| {
        let run = |uid: u32| -> Result<String, String> {
            let out = Command::new("setpriv")
                .args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".into(),
                ])
                .arg(t.join("bin/busybox"))
                .args(["id", "-u"])
                .output()
                .ctx("run busybox")?;
            ensure!(
                out.status.success(),
                "busybox as {uid}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        ensure_eq!(run(0)?, "0", "id -u as container root");
        ensure_eq!(run(1000)?, "1000", "id -u as container 1000");
        Ok(())
    })?;
    // Through the mark, nothing executes.
    let err = Command::new(tree(env).mark.join("bin/busybox"))
        .arg("true")
        .status()
        .err()
        .and_then(|e| e.raw_os_error());
    ensure_eq!(err, Some(libc::EACCES), "exec through the mark");
    std::fs::remove_dir_all(&bin).ctx("clean up")
}

fn host_unmarks(env: &Env) -> Outcome {
    tree(env).unmark()
}
