//! The mount kinds compared, all over the same image tree on the same lower
//! filesystem, and all presenting that tree (owned by host uid/gid 0 on
//! disk, like an unpacked image) to a container whose ids 0..65535 are host
//! 100000..165535, as owned by the container's root. Only `raw` does not
//! shift: it is the tree as it is, the baseline.

use crate::sys::{self, Sys};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The container's id map (container 0..65535 are host 100000..165535),
/// and the host id of the container's root.
pub use sys::{CONTAINER_MAP as MAP, CONTAINER_ROOT as HOST_BASE};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The lower directory itself.
    Raw,
    /// An idmapped bind mount of it (mount_setattr MOUNT_ATTR_IDMAP).
    Idmapped,
    /// Overlayfs, read-only: the idmapped mount as its (top) lower layer.
    Overlay,
    /// Overlayfs, the idmapped mount as lower, an upper layer on the same
    /// fs owned by the container's ids.
    OverlayUpper,
    /// bindfs --map=0/100000:@0/@100000 (FUSE).
    Bindfs,
    /// fuse-overlayfs with uidmapping/gidmapping, lower + upper (FUSE).
    FuseOverlayfs,
    /// A shiftfs mark made by the host, mounted shifted by the container.
    Shiftfs,
}

pub const ALL: [Kind; 7] = [
    Kind::Raw,
    Kind::Idmapped,
    Kind::Overlay,
    Kind::OverlayUpper,
    Kind::Bindfs,
    Kind::FuseOverlayfs,
    Kind::Shiftfs,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Idmapped => "idmapped",
            Kind::Overlay => "overlay",
            Kind::OverlayUpper => "overlay+upper",
            Kind::Bindfs => "bindfs",
            Kind::FuseOverlayfs => "fuse-overlayfs",
            Kind::Shiftfs => "shiftfs",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn is_fuse(self) -> bool {
        matches!(self, Kind::Bindfs | Kind::FuseOverlayfs)
    }

    /// A name usable in paths and mount options.
    fn dir(self) -> &'static str {
        match self {
            Kind::OverlayUpper => "overlay-upper",
            k => k.name(),
        }
    }
}

/// One lower filesystem and where each kind shows its image.
pub struct Lower {
    /// "tmpfs" or "ext4".
    pub fs: String,
    /// A directory on that filesystem holding the image and the upper dirs.
    pub base: PathBuf,
    /// Where this lower's mounts go.
    pub mnt: PathBuf,
}

impl Lower {
    /// The image tree, owned by host 0 (what `raw` shows).
    pub fn image(&self) -> PathBuf {
        self.base.join("img")
    }

    /// Where the host marks the image for shiftfs.
    pub fn mark(&self) -> PathBuf {
        self.mnt.join("shiftfs-mark")
    }

    /// The root of the image as kind `k` shows it to the container.
    pub fn root(&self, k: Kind) -> PathBuf {
        match k {
            Kind::Raw => self.image(),
            k => self.mnt.join(k.dir()),
        }
    }

    /// The directory, relative to `root(k)`, where kind `k`'s write
    /// workloads run: an empty directory of the image, owned by host 0 (for
    /// raw: by the container's root, host 100000, since raw does not shift).
    pub fn work_rel(k: Kind) -> String {
        format!("work/{}", k.dir())
    }
}

/// A user namespace with the container's map, kept open only for its fd:
/// the id mapping given to idmapped mounts.
pub fn mapping_userns() -> Result<OwnedFd, String> {
    sys::userns_fd(MAP)
}

/// Runs `cmd` to its end: an error names it, its exit status and stderr.
pub fn spawn(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn mkdirs(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

/// Sets up, as the host's root, every kind but the shifting mount of
/// shiftfs (which the container makes): records per kind what failed.
pub fn host_setup(l: &Lower, kinds: &[Kind], userns: &OwnedFd) -> Vec<(Kind, String)> {
    let mut failed = Vec::new();
    let img = l.image();
    let idmapped = l.root(Kind::Idmapped);
    // The idmapped mount is also the lower layer of both overlays.
    if kinds
        .iter()
        .any(|k| matches!(k, Kind::Idmapped | Kind::Overlay | Kind::OverlayUpper))
    {
        let r = mkdirs(&idmapped).and_then(|_| {
            sys::idmapped_bind(&img, &idmapped, userns).map_err(|e| format!("idmapped mount: {e}"))
        });
        if let Err(e) = r {
            failed.push((Kind::Idmapped, e));
        }
    }
    for &k in kinds {
        let r = (|| -> Result<(), String> {
            match k {
                Kind::Raw => Ok(()),
                Kind::Idmapped => Ok(()),
                Kind::Overlay => {
                    // Without an upper layer overlayfs wants two lower
                    // layers: the image on top of an empty one. Files are
                    // found in the top layer; only directories are looked
                    // up in the empty one too.
                    let empty = l.base.join("ovl-empty");
                    mkdirs(&empty)?;
                    let m = l.root(k);
                    mkdirs(&m)?;
                    sys::mount(
                        "overlay",
                        &m,
                        "overlay",
                        libc::MS_RDONLY,
                        &format!("lowerdir={}:{}", idmapped.display(), empty.display()),
                    )
                    .map_err(|e| format!("mount overlay: {e}"))
                }
                Kind::OverlayUpper => {
                    // As containerd does for a container with its own user
                    // namespace: idmapped lower, and an upper layer owned
                    // by the container's ids as the host sees them.
                    let up = l.base.join("ovl");
                    for d in [up.clone(), up.join("upper"), up.join("work")] {
                        mkdirs(&d)?;
                        sys::chown(&d, HOST_BASE, HOST_BASE).map_err(|e| format!("chown: {e}"))?;
                    }
                    let m = l.root(k);
                    mkdirs(&m)?;
                    sys::mount(
                        "overlay",
                        &m,
                        "overlay",
                        0,
                        &format!(
                            "lowerdir={},upperdir={},workdir={}",
                            idmapped.display(),
                            up.join("upper").display(),
                            up.join("work").display()
                        ),
                    )
                    .map_err(|e| format!("mount overlay: {e}"))
                }
                Kind::Bindfs => {
                    let m = l.root(k);
                    mkdirs(&m)?;
                    spawn(
                        Command::new("bindfs")
                            .arg(format!("--map=0/{HOST_BASE}:@0/@{HOST_BASE}"))
                            .arg(&img)
                            .arg(&m),
                    )
                }
                Kind::FuseOverlayfs => {
                    let up = l.base.join("fuse-ovl");
                    mkdirs(&up.join("upper"))?;
                    mkdirs(&up.join("work"))?;
                    let m = l.root(k);
                    mkdirs(&m)?;
                    spawn(Command::new("fuse-overlayfs").arg("-o").arg(format!(
                        "lowerdir={},upperdir={},workdir={},uidmapping=0:{HOST_BASE}:65536,gidmapping=0:{HOST_BASE}:65536,allow_other",
                        img.display(), up.join("upper").display(), up.join("work").display()))
                        .arg(&m))
                }
                Kind::Shiftfs => {
                    let m = l.mark();
                    mkdirs(&m)?;
                    mkdirs(&l.root(k))?;
                    sys::mount(&img.to_string_lossy(), &m, sys::FS_NAME, 0, "mark")
                        .map_err(|e| format!("mount -t shiftfs -o mark: {e}"))
                }
            }
        })();
        if let Err(e) = r {
            failed.push((k, e));
        }
    }
    failed
}

/// In the container: the shifting mount of the host's mark.
pub fn container_setup(l: &Lower) -> Sys<()> {
    sys::mount(
        &l.mark().to_string_lossy(),
        &l.root(Kind::Shiftfs),
        sys::FS_NAME,
        0,
        "",
    )
}

/// Unmounts what `host_setup` mounted (FUSE daemons exit on unmount).
pub fn host_teardown(l: &Lower) {
    for k in ALL.iter().rev() {
        if *k != Kind::Raw {
            let _ = sys::umount(&l.root(*k), libc::MNT_DETACH);
        }
    }
    let _ = sys::umount(&l.mark(), libc::MNT_DETACH);
}
