"""What tools/vm-run and tools/bench share: where things are, whether KVM
really works here, the splat patterns, and booting a kernel under
virtme-ng while streaming its console to a log file."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
# The Cargo workspace of the guest binaries (tools/Cargo.toml), and where
# `cargo build --release` of it puts them.
WORKSPACE = TOOLS / "Cargo.toml"
GUEST_BIN = TOOLS / "target" / "release"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shiftfs"
VENV = CACHE / "venv"
VNG = VENV / "bin" / "vng"
DONE = re.compile(r"SHIFTFS-VM-DONE rc=(\d+)")


def kvm_usable(bzimage):
    """Whether KVM really runs a guest here: /dev/kvm can exist and hang.

    Boots the kernel with no root under KVM and waits for it to print; the
    answer is kept per host boot."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    stamp = CACHE / f"kvm-{boot_id}"
    if stamp.exists():
        return stamp.read_text() == "yes"
    cmd = ["qemu-system-x86_64", "-accel", "kvm", "-m", "256", "-nographic",
           "-no-reboot", "-kernel", str(bzimage),
           "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent"]
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, timeout=30).stdout
        ok = b"Linux version" in out
    except subprocess.TimeoutExpired as e:
        ok = b"Linux version" in (e.stdout or b"")
    stamp.write_text("yes" if ok else "no")
    return ok


def splat_patterns():
    lines = (TOOLS / "splat-patterns").read_text().splitlines()
    return [re.compile(l) for l in lines if l and not l.startswith("#")]


FAULT_START = "FAULT_INJECTION: forcing a failure"


def splat_lines(lines, pats):
    """The lines of `lines` that match a pattern of `pats`, except the
    "Call Trace:" of the stack dumps fault injection prints on purpose
    (from its "forcing a failure" line to the end of the dump)."""
    out = []
    in_dump = False
    for line in lines:
        if FAULT_START in line:
            in_dump = True
        elif in_dump and "</TASK>" in line:
            in_dump = False
        if in_dump and "Call Trace:" in line:
            continue
        if any(p.search(line) for p in pats):
            out.append(line)
    return out


def vng_command(bzimage, guest_cmd, memory, extra=(), cpus=2):
    """The vng command line that boots `bzimage` with the host's root shared
    read-only and runs `guest_cmd` in it; KVM only if it really works."""
    accel = [] if kvm_usable(bzimage) else ["--disable-kvm"]
    cmd = [str(VNG), "--run", str(bzimage), *accel, "--verbose", "--cpus", str(cpus),
           "--memory", memory, "--force-9p", *extra, "--exec", guest_cmd]
    return cmd, ("kvm" if not accel else "tcg (no usable KVM)")


# A kernel that has not started init this long after QEMU did has stalled:
# boots reach init in under a minute under TCG, but once in a while (seen
# on 2026-12-02 with 7.3, both vCPUs spinning while the console stopped in
# the middle of PCI enumeration) one never does. Such a boot is killed and
# started once more.
INIT_STARTED = "as init process"
BOOT_STALL_SECONDS = 300


def boot(cmd, logfile, timeout, echo=True):
    """Runs the vng command `cmd`, writing the console to `logfile` (and to
    stdout if `echo` is True, or the lines `echo(line)` picks) line by line;
    kills it after `timeout` seconds. A boot that stalls before init
    (BOOT_STALL_SECONDS) is started again, once; so is one whose kernel
    splats before init (seen once, on 2026-12-04 with 6.12: a KASAN
    wild-memory-access in an interrupt taken during identify_cpu, 4 ms
    into the boot): nothing of shiftfs's is in the guest yet, so the run
    would test nothing. Its console is kept beside the log and the splat
    is printed; a second such boot fails the run as any splat does.
    Returns (console lines, timed out, seconds taken)."""
    for attempt in (1, 2):
        lines, timed_out, elapsed, failed = boot_once(cmd, logfile, timeout, echo)
        if not failed:
            return lines, timed_out, elapsed
        if attempt == 2:
            break
        suffix, why = failed
        os.replace(logfile, f"{logfile}.{suffix}")
        print(f"vm: attempt {attempt}: {why} (console in {logfile}.{suffix}); "
              f"booting again", file=sys.stderr, flush=True)
    return lines, failed[0] == "stalled" or timed_out, elapsed


def boot_once(cmd, logfile, timeout, echo):
    """One boot for `boot`; also says why it failed before init, if it did:
    ("stalled", why) or ("boot-splat", why)."""
    start = time.monotonic()
    lines = []
    timed_out = False
    stalled = False
    init_started = False
    early_splat = None
    pats = splat_patterns()
    with open(logfile, "w") as out:
        env = dict(os.environ, PATH=f"{VNG.parent}:{os.environ['PATH']}")
        # A session of its own: killing it kills QEMU too, not only vng.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        os.set_blocking(proc.stdout.fileno(), False)
        buf = b""
        while True:
            chunk = proc.stdout.read()
            if chunk:
                buf += chunk
                *done, buf = buf.split(b"\n")
                for raw in done:
                    line = raw.decode(errors="replace").rstrip("\r")
                    init_started = init_started or INIT_STARTED in line
                    if not init_started and early_splat is None and any(
                            p.search(line) for p in pats):
                        early_splat = line
                    lines.append(line)
                    out.write(line + "\n")
                    if echo is True or (echo and echo(line)):
                        print(line, flush=True)
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.1)
            stalled = not init_started and time.monotonic() - start > BOOT_STALL_SECONDS
            # The rest of the report follows the splat's line: kill the
            # boot once init would have started.
            if stalled or (early_splat and init_started) or \
                    time.monotonic() - start > timeout:
                timed_out = not stalled and not early_splat
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
        if buf:
            lines.append(buf.decode(errors="replace"))
            out.write(lines[-1] + "\n")
    failed = None
    if stalled:
        failed = ("stalled", f"the kernel did not start init in {BOOT_STALL_SECONDS} s")
    elif early_splat:
        failed = ("boot-splat", f"the kernel splatted before init: {early_splat.strip()}")
    return lines, timed_out, time.monotonic() - start, failed


def done_rc(lines):
    """The guest's exit code from its SHIFTFS-VM-DONE line, or None."""
    rcs = [int(m.group(1)) for m in map(DONE.search, lines) if m]
    return rcs[-1] if rcs else None


if __name__ == "__main__":
    sys.exit("vmlib is a module for tools/vm-run and tools/bench")
