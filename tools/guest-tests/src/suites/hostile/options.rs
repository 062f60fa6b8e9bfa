//! The fsconfig option fuzzer: random fsconfig(2) sequences on shiftfs
//! contexts, from the host and from a container. Every refusal that comes
//! from the filesystem is explained in the context's log, and no option it
//! does not know is taken.

use super::{iterations, shift_mount, tree};
use crate::{
    container,
    harness::{Context, Outcome},
    reliability::{self as rel, Rng},
    sys::{FsContext, FS_NAME},
    Env,
};
use rustix::fs::{self as rfs, Mode, OFlags};
use std::{
    collections::BTreeMap,
    os::fd::{AsFd, AsRawFd},
    path::PathBuf,
};

// fsconfig(2) commands.
const SET_FLAG: u32 = 0;
const SET_STRING: u32 = 1;
const SET_BINARY: u32 = 2;
const SET_PATH: u32 = 3;
const SET_PATH_EMPTY: u32 = 4;
const SET_FD: u32 = 5;
const CMD_CREATE: u32 = 6;
const CMD_CREATE_EXCL: u32 = 8;

/// Where a fuzzed context stands: fsconfig(2) passes parameters on only
/// while it takes them, and a create is tried once.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Params,
    Created,
    Failed,
}

/// Whether an fsconfig call gets past the syscall's own checks (argument
/// shape, copying the key and value in, the context's phase) to the
/// parameter parser or get_tree. Those checks return an errno before any
/// filesystem code runs and have no log to write to; from there on every
/// refusal must be explained in the context's log.
fn reaches_filesystem(
    cmd: u32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    aux: i32,
    phase: Phase,
) -> bool {
    // SAFETY: F_GETFD only asks whether `fd` is open; nothing is changed.
    let fd_open = |fd: i32| fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    // Lengths without the NUL; strndup_user takes at most 255 bytes.
    let shape = match cmd {
        SET_FLAG => key.is_some() && value.is_none() && aux == 0,
        SET_STRING => key.is_some() && value.is_some_and(|v| v.len() <= 255) && aux == 0,
        SET_BINARY => key.is_some() && value.is_some() && aux > 0 && aux <= 1 << 20,
        SET_PATH | SET_PATH_EMPTY => {
            key.is_some()
                && value.is_some_and(|v| v.len() < 4096 && (cmd == SET_PATH_EMPTY || !v.is_empty()))
                && (aux == libc::AT_FDCWD || aux >= 0)
        }
        SET_FD => key.is_some() && value.is_none() && fd_open(aux),
        CMD_CREATE | CMD_CREATE_EXCL => key.is_none() && value.is_none() && aux == 0,
        _ => false,
    };
    shape && key.is_none_or(|k| k.len() <= 255) && phase == Phase::Params
}

/// Random fsconfig sequences on shiftfs contexts. Fails on an unknown
/// option taken, or an error from the filesystem's side of fsconfig (see
/// [`reaches_filesystem`]) without a log message; reports the counts.
fn fuzz_options(seed: u64, rounds: usize, paths: &[PathBuf]) -> Result<String, String> {
    let mut rng = Rng::new(seed);
    let dirfd =
        rfs::open(&paths[0], OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ctx("open")?;
    let (mut calls, mut errors, mut reached, mut fs_errors) = (0u64, 0u64, 0u64, 0u64);
    let mut syscall_checks: BTreeMap<String, u64> = BTreeMap::new();
    let mut problems = Vec::new();
    let keys: Vec<Vec<u8>> = vec![
        b"mark".to_vec(),
        b"source".to_vec(),
        b"mark=1".to_vec(),
        b"".to_vec(),
        b"nomark".to_vec(),
        b"uid".to_vec(),
        b"ro".to_vec(),
        vec![b'k'; 255],
        vec![b'k'; 256],
        vec![b'k'; 5000],
        vec![0xff, 0xfe, b'x'],
        b"mark,source".to_vec(),
    ];
    for round in 0..rounds {
        let fc = FsContext::open(FS_NAME)?;
        let mut phase = Phase::Params;
        for _ in 0..1 + rng.below(6) {
            let mut key = if rng.below(4) == 0 {
                let n = rng.below(40) as usize;
                (0..n).map(|_| b'a' + (rng.below(26) as u8)).collect()
            } else {
                rng.pick(&keys).clone()
            };
            key.push(0);
            let vlen = *rng.pick(&[0usize, 1, 10, 200, 255, 300, 4095, 5000, 70_000]);
            let mut value: Vec<u8> = if rng.below(2) == 0 {
                let p = rng.pick(paths).to_string_lossy().into_owned().into_bytes();
                p
            } else {
                rng.bytes(vlen).into_iter().map(|b| b.max(1)).collect()
            };
            value.push(0);
            let cmd = if rng.below(10) == 0 {
                rng.below(12) as u32
            } else {
                *rng.pick(&[
                    SET_FLAG,
                    SET_STRING,
                    SET_BINARY,
                    SET_PATH,
                    SET_PATH_EMPTY,
                    SET_FD,
                    CMD_CREATE,
                ])
            };
            // Half the calls have the shape fsconfig(2) asks of their
            // command (a key for the sets, a value only where one is
            // taken), so that most reach the filesystem's parser.
            let shaped = rng.below(2) == 0;
            let takes_value = matches!(cmd, SET_STRING | SET_BINARY | SET_PATH | SET_PATH_EMPTY);
            let null_key = if shaped {
                cmd > SET_FD
            } else {
                rng.below(20) == 0
            };
            let null_value = if shaped {
                !takes_value
            } else {
                rng.below(10) == 0
            };
            let aux = match cmd {
                SET_FLAG | SET_STRING | CMD_CREATE if shaped => 0,
                SET_BINARY => *rng.pick(&[0, -1, 1, 16, vlen as i32, 1 << 20, (1 << 20) + 1]),
                SET_PATH | SET_PATH_EMPTY => {
                    *rng.pick(&[libc::AT_FDCWD, dirfd.as_raw_fd(), -1, 9999])
                }
                SET_FD => *rng.pick(&[dirfd.as_raw_fd(), fc.as_fd().as_raw_fd(), -1, 0, 9999]),
                _ => *rng.pick(&[0, 0, 0, 1, -1]),
            };
            // A binary value must be at least `aux` bytes.
            if cmd == SET_BINARY && aux > 0 && (aux as usize) > value.len() {
                value.resize(aux as usize, 0x41);
            }
            let reaches = reaches_filesystem(
                cmd,
                (!null_key).then(|| &key[..key.len() - 1]),
                (!null_value).then(|| &value[..value.len() - 1]),
                aux,
                phase,
            );
            // SAFETY: the key and value are null or NUL-terminated buffers
            // that live for the call, a binary value at least `aux` bytes
            // long (made so above).
            let r = unsafe {
                fc.config_raw(
                    cmd,
                    if null_key {
                        std::ptr::null()
                    } else {
                        key.as_ptr()
                    },
                    if null_value {
                        std::ptr::null()
                    } else {
                        value.as_ptr()
                    },
                    aux,
                )
            }
            .map_err(|e| e.raw_os_error());
            calls += 1;
            reached += u64::from(reaches);
            if reaches && (cmd == CMD_CREATE || cmd == CMD_CREATE_EXCL) {
                phase = if r.is_ok() {
                    Phase::Created
                } else {
                    Phase::Failed
                };
            }
            let log = fc.log();
            if let Err(e) = r {
                errors += 1;
                if !reaches {
                    *syscall_checks
                        .entry(format!("cmd {cmd} errno {e}"))
                        .or_default() += 1;
                } else if log.is_empty() {
                    problems.push(format!(
                        "round {round}: key {:?} cmd {cmd} aux {aux}: errno {e} without a log message",
                        String::from_utf8_lossy(&key[..key.len().min(40)])
                    ));
                } else {
                    fs_errors += 1;
                }
                // An option the filesystem does not know is never taken.
            } else if cmd <= SET_FD && !null_key {
                let k = String::from_utf8_lossy(&key[..key.len() - 1]).into_owned();
                // The VFS takes the superblock flags itself, of any type.
                let vfs = [
                    "ro",
                    "rw",
                    "sync",
                    "async",
                    "dirsync",
                    "lazytime",
                    "nolazytime",
                    "mand",
                    "nomand",
                    "silent",
                ];
                if k != "mark" && k != "source" && !vfs.contains(&k.as_str()) {
                    problems.push(format!("round {round}: key {k:?} cmd {cmd} accepted"));
                }
            }
        }
        drop(fc);
    }
    if reached < rounds as u64 / 2 {
        problems.push(format!(
            "only {reached} calls got past fsconfig's own checks"
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "{} problems: {:?}",
            problems.len(),
            &problems[..problems.len().min(5)]
        ));
    }
    Ok(format!(
        "{rounds} contexts, {calls} fsconfig calls, {errors} errors; {reached} calls reached \
         the filesystem, {fs_errors} of them failed, each with a log message; refused by \
         fsconfig's own checks before that (no log there): {syscall_checks:?}"
    ))
}

pub(super) fn option_fuzzer_answers_with_an_errno_and_a_log_message(env: &Env) -> Outcome {
    let tree = tree(env);
    let seed = rel::seed();
    let rounds = iterations(400);
    let paths = vec![
        tree.real.clone(),
        tree.mark.clone(),
        tree.real.join("own/file"),
        PathBuf::from("/"),
        PathBuf::from("/nonexistent"),
        tree.mark.join("own"),
    ];
    let host = fuzz_options(seed, rounds, &paths).map_err(|e| format!("seed {seed}, host: {e}"))?;
    rel::info(&format!("hostile: option fuzzer, host: {host}"));
    let (mark, target) = (tree.mark.clone(), tree.target.clone());
    let (out_r, out_w) = nix::unistd::pipe().ctx("pipe")?;
    container::run(move || {
        shift_mount(&mark, &target).ctx("shifting mount")?;
        let mut paths = paths;
        paths.push(target.clone());
        let s = fuzz_options(seed ^ 1, rounds, &paths)
            .map_err(|e| format!("seed {seed}, container: {e}"))?;
        nix::unistd::write(&out_w, s.as_bytes()).ctx("write")?;
        Ok(())
    })?;
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(out_r), &mut s).ctx("read")?;
    rel::info(&format!("hostile: option fuzzer, container: {s}"));
    Ok(())
}
