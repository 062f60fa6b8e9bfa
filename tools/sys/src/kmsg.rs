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
