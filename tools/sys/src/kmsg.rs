//! The kernel log, as /dev/kmsg gives it: one record per read.

use rustix::io::Errno;

/// The messages of the kernel log (the whole of /dev/kmsg) for which
/// `keep` is true.
pub fn kernel_log_matching(keep: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
    let kmsg = rustix::fs::open(
        "/dev/kmsg",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("open /dev/kmsg: {e}"))?;
    let mut hits = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match rustix::io::read(&kmsg, &mut buf) {
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                // A record is "prio,seq,time,flags;message".
                let msg = rec.split_once(';').map_or(&*rec, |(_, m)| m).trim_end();
                if keep(msg) {
                    hits.push(msg.to_owned());
                }
            }
            // EPIPE: a record was overwritten while reading; go on.
            Err(Errno::PIPE) => continue,
            Err(Errno::AGAIN) => break,
            Err(e) => return Err(format!("read /dev/kmsg: {e}")),
        }
    }
    Ok(hits)
}

/// The kernel log from now on: each `drain` gives the messages logged
/// since the last (or since `new`).
pub struct KernelLogTail {
    fd: rustix::fd::OwnedFd,
}

impl KernelLogTail {
    /// Opens /dev/kmsg at its end.
    pub fn new() -> Result<Self, String> {
        let fd = rustix::fs::open(
            "/dev/kmsg",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("open /dev/kmsg: {e}"))?;
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0))
            .map_err(|e| format!("seek /dev/kmsg: {e}"))?;
        Ok(Self { fd })
    }

    /// The messages logged since the last call, and how many records were
    /// overwritten before they could be read.
    pub fn drain(&mut self) -> Result<(Vec<String>, usize), String> {
        let mut out = Vec::new();
        let mut lost = 0;
        let mut buf = vec![0u8; 8192];
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let msg = rec.split_once(';').map_or(&*rec, |(_, m)| m).trim_end();
                    out.push(msg.to_owned());
                }
                Err(Errno::PIPE) => lost += 1,
                Err(Errno::AGAIN) => break,
                Err(e) => return Err(format!("read /dev/kmsg: {e}")),
            }
        }
        Ok((out, lost))
    }
}
