//! Real runtimes: an unprivileged (user-namespaced) container started by
//! Debian's `crun` from an OCI bundle whose config has a `shiftfs` mount
//! entry, and a shell in a user namespace made by LXC's `lxc-usernsexec`
//! (through newuidmap, from /etc/subuid) that mounts shiftfs in its own
//! mount namespace. Each writes through the mount, and the host checks the
//! owners on disk.

use crate::{
    ensure, ensure_eq,
    fixture::{load, unload},
    harness::{Context, Outcome},
    reliability::sh,
    sys::FS_NAME,
    tests, Env,
};
use rustix::{
    fs::{stat, statfs},
    mount::{mount, unmount, MountFlags, UnmountFlags},
};
use std::{
    os::unix::fs::{chown, symlink, PermissionsExt},
    path::{Path, PathBuf},
};

pub const TESTS: &[crate::harness::Test] = tests![
    load,
    host_prepares,
    crun_runs_a_container_with_a_shiftfs_mount,
    crun_without_a_mark_fails_to_start,
    lxc_usernsexec_mounts_shiftfs,
    host_cleans_up,
    unload,
];

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// The containers' id map: container 0 is host 100000.
const HOST_BASE: u32 = 100_000;

fn base(env: &Env) -> PathBuf {
    env.scratch.join("containers")
}

/// The host directory the containers get: on-disk 1000 owns `file`.
fn data(env: &Env) -> PathBuf {
    base(env).join("data")
}

fn bundle(env: &Env) -> PathBuf {
    base(env).join("bundle")
}

/// The script each container runs: its ids and what it sees through the
/// mount at `$1`, then a file, a directory given to its uid 1000, and a
/// rename, all through the mount.
const SCRIPT: &str = r#"d=$1
echo "uid=$(id -u)"
echo "file=$(stat -c %u:%g $d/file)"
echo "fstype=$(awk -v d=$d '$5 == d { for (i = 7; i < NF; i++) if ($i == "-") t = $(i + 1) } END { print t }' /proc/self/mountinfo)"
echo made > $d/made || exit 11
mkdir $d/dir || exit 12
chown 1000:1000 $d/dir || exit 13
echo moved > $d/tmp && mv $d/tmp $d/moved || exit 14
echo "made=$(stat -c %u:%g $d/made) dir=$(stat -c %u:%g $d/dir)"
"#;

fn busybox() -> PathBuf {
    sh("sh", &["-c", "command -v busybox"])
        .map(|s| PathBuf::from(s.trim()))
        .unwrap_or_else(|_| "/bin/busybox".into())
}

fn host_prepares(env: &Env) -> Outcome {
    let _ = std::fs::remove_dir_all(base(env));
    let d = data(env);
    std::fs::create_dir_all(&d).ctx("mkdir")?;
    std::fs::write(d.join("file"), b"data").ctx("write")?;
    chown(d.join("file"), Some(1000), Some(1000)).ctx("chown")?;
    // A root filesystem of busybox alone for crun.
    let rootfs = bundle(env).join("rootfs");
    for sub in ["bin", "proc", "dev", "data", "tmp"] {
        std::fs::create_dir_all(rootfs.join(sub)).ctx("mkdir rootfs")?;
    }
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).ctx("copy busybox")?;
    std::fs::set_permissions(
        rootfs.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .ctx("chmod")?;
    for applet in [
        "sh", "id", "stat", "awk", "echo", "mkdir", "chown", "mv", "cat",
    ] {
        symlink("busybox", rootfs.join("bin").join(applet)).ctx("applet link")?;
    }
    std::fs::write(rootfs.join("script"), SCRIPT).ctx("script")?;
    std::fs::write(base(env).join("script"), SCRIPT).ctx("script")?;
    // crun reads the cgroup filesystem's type even when told to manage no
    // cgroups.
    if statfs("/sys/fs/cgroup").map(|s| s.f_type) != Ok(CGROUP2_SUPER_MAGIC) {
        mount(
            "cgroup2",
            "/sys/fs/cgroup",
            "cgroup2",
            MountFlags::empty(),
            c"",
        )
        .ctx("mount cgroup2")?;
    }
    Ok(())
}

fn host_cleans_up(env: &Env) -> Outcome {
    std::fs::remove_dir_all(base(env)).ctx("rm -r")
}

/// The OCI config: a user namespace mapping 0:100000:65536, pid, ipc, uts
/// and mount namespaces, busybox running the script on `/data`, and the
/// `shiftfs` mount of `source` there.
fn oci_config(source: &Path) -> String {
    let caps = r#"["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID"]"#;
    format!(
        r#"{{
  "ociVersion": "1.0.0",
  "process": {{
    "terminal": false,
    "user": {{ "uid": 0, "gid": 0 }},
    "args": ["/bin/sh", "/script", "/data"],
    "env": ["PATH=/bin"],
    "cwd": "/",
    "capabilities": {{
      "bounding": {caps}, "effective": {caps}, "permitted": {caps}
    }},
    "noNewPrivileges": true
  }},
  "root": {{ "path": "rootfs", "readonly": true }},
  "hostname": "shiftfs-test",
  "mounts": [
    {{ "destination": "/proc", "type": "proc", "source": "proc" }},
    {{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
       "options": ["nosuid", "mode=755", "size=1m"] }},
    {{ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }},
    {{ "destination": "/data", "type": "shiftfs", "source": "{source}", "options": [] }}
  ],
  "linux": {{
    "uidMappings": [{{ "containerID": 0, "hostID": {HOST_BASE}, "size": 65536 }}],
    "gidMappings": [{{ "containerID": 0, "hostID": {HOST_BASE}, "size": 65536 }}],
    "namespaces": [
      {{ "type": "pid" }}, {{ "type": "ipc" }}, {{ "type": "uts" }},
      {{ "type": "mount" }}, {{ "type": "user" }}
    ]
  }}
}}
"#,
        source = source.display()
    )
}

/// Runs the bundle with crun as container `id`: its output, or why not.
fn crun_run(env: &Env, id: &str) -> Result<String, String> {
    let state = base(env).join("crun-state");
    std::fs::create_dir_all(&state).ctx("mkdir state")?;
    let b = bundle(env);
    let (state, b) = (state.to_string_lossy(), b.to_string_lossy());
    let out = sh(
        "crun",
        &[
            "--root",
            &state,
            "--cgroup-manager=disabled",
            "run",
            "--bundle",
            &b,
            id,
        ],
    );
    // A failed start can leave its state behind.
    let _ = sh("crun", &["--root", &state, "delete", "-f", id]);
    out
}

/// What the script printed is what a container should see, and what it
/// made is on disk with the ids it should have.
fn check_script(out: &str, d: &Path) -> Outcome {
    for want in [
        "uid=0",
        "file=1000:1000",
        "fstype=shiftfs",
        "made=0:0 dir=1000:1000",
    ] {
        ensure!(
            out.lines().any(|l| l == want),
            "container output lacks {want:?}: {out}"
        );
    }
    for (name, ids) in [("made", (0, 0)), ("dir", (1000, 1000)), ("moved", (0, 0))] {
        let st = stat(d.join(name)).ctx("stat on disk")?;
        ensure_eq!(
            (st.st_uid, st.st_gid),
            ids,
            format!("on-disk owner of {name}")
        );
    }
    ensure_eq!(
        std::fs::read(d.join("moved")).ctx("read")?,
        b"moved\n".to_vec(),
        "content on disk"
    );
    Ok(())
}

/// Empties what a previous container made in the data directory.
fn reset(d: &Path) -> Outcome {
    for name in ["made", "moved", "tmp"] {
        let _ = std::fs::remove_file(d.join(name));
    }
    let _ = std::fs::remove_dir(d.join("dir"));
    Ok(())
}

fn crun_runs_a_container_with_a_shiftfs_mount(env: &Env) -> Outcome {
    let d = data(env);
    reset(&d)?;
    std::fs::write(bundle(env).join("config.json"), oci_config(&d)).ctx("config")?;
    mount(&d, &d, FS_NAME, MountFlags::empty(), c"mark").ctx("mark")?;
    let out = crun_run(env, "shiftfs-crun");
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    check_script(&out?, &d)
}

fn crun_without_a_mark_fails_to_start(env: &Env) -> Outcome {
    let d = data(env);
    reset(&d)?;
    std::fs::write(bundle(env).join("config.json"), oci_config(&d)).ctx("config")?;
    let out = crun_run(env, "shiftfs-crun-nomark");
    ensure!(
        matches!(&out, Err(e) if e.contains("shiftfs") || e.contains("Operation not permitted")),
        "crun without a mark: {out:?}"
    );
    ensure!(!d.join("made").exists(), "the container ran");
    Ok(())
}

/// Gives root the subordinate ids LXC maps (newuidmap checks them).
fn subordinate_ids() -> Outcome {
    let line = format!("root:{HOST_BASE}:65536\n");
    for f in ["/etc/subuid", "/etc/subgid"] {
        let cur = std::fs::read_to_string(f).unwrap_or_default();
        if !cur.lines().any(|l| l.trim() == line.trim()) {
            std::fs::write(f, format!("{cur}{line}")).ctx(&format!("write {f}"))?;
        }
    }
    Ok(())
}

fn lxc_usernsexec_mounts_shiftfs(env: &Env) -> Outcome {
    subordinate_ids()?;
    let d = data(env);
    reset(&d)?;
    let mnt = base(env).join("lxc-mnt");
    std::fs::create_dir_all(&mnt).ctx("mkdir")?;
    mount(&d, &d, FS_NAME, MountFlags::empty(), c"mark").ctx("mark")?;
    let inner = format!(
        "mount -t shiftfs {d} {m} && exec sh {s} {m}",
        d = d.display(),
        m = mnt.display(),
        s = base(env).join("script").display()
    );
    let map = format!("b:0:{HOST_BASE}:65536");
    let out = sh(
        "lxc-usernsexec",
        &[
            "-m", &map, "--", "unshare", "--mount", "--", "sh", "-c", &inner,
        ],
    );
    unmount(&d, UnmountFlags::empty()).ctx("umount mark")?;
    check_script(&out?, &d)
}
