//! The tree for the unpack workload: a tar (ustar, or GNU with long names)
//! read into memory once, so that the timed part only creates files.

use crate::sys::{self, Sys};
use std::ffi::CString;
use std::os::fd::AsRawFd;

pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(CString),
}

pub struct Entry {
    pub path: CString,
    pub mode: libc::mode_t,
    pub kind: Kind,
}

fn field(h: &[u8]) -> &[u8] {
    let end = h.iter().position(|&b| b == 0).unwrap_or(h.len());
    &h[..end]
}

fn octal(h: &[u8]) -> u64 {
    field(h)
        .iter()
        .filter(|b| (b'0'..=b'7').contains(b))
        .fold(0, |n, &b| n * 8 + u64::from(b - b'0'))
}

/// Parses a tar image. Entries keep the archive's order (parents first).
pub fn parse(data: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut off = 0;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    while off + 512 <= data.len() {
        let h = &data[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let size = octal(&h[124..136]) as usize;
        let body = off + 512;
        let next = body + size.div_ceil(512) * 512;
        if body + size > data.len() {
            return Err(format!("truncated tar at offset {off}"));
        }
        let content = &data[body..body + size];
        let typ = h[156];
        match typ {
            b'L' => long_name = Some(field(content).to_vec()),
            b'K' => long_link = Some(field(content).to_vec()),
            b'x' | b'g' => {}
            _ => {
                let mut name = match long_name.take() {
                    Some(n) => n,
                    None => {
                        let prefix = field(&h[345..500]);
                        let n = field(&h[0..100]);
                        if prefix.is_empty() {
                            n.to_vec()
                        } else {
                            [prefix, b"/", n].concat()
                        }
                    }
                };
                while name.last() == Some(&b'/') {
                    name.pop();
                }
                while name.starts_with(b"./") {
                    name.drain(..2);
                }
                let link = long_link
                    .take()
                    .unwrap_or_else(|| field(&h[157..257]).to_vec());
                let mode = (octal(&h[100..108]) & 0o7777) as libc::mode_t;
                let kind = match typ {
                    b'5' => Kind::Dir,
                    b'0' | 0 | b'7' => Kind::File(content.to_vec()),
                    b'2' => Kind::Symlink(CString::new(link).map_err(|_| "NUL in link")?),
                    _ => {
                        off = next;
                        continue;
                    }
                };
                if !name.is_empty() && name != b"." {
                    out.push(Entry {
                        path: CString::new(name).map_err(|_| "NUL in name")?,
                        mode,
                        kind,
                    });
                }
            }
        }
        off = next;
    }
    Ok(out)
}

/// Creates the entries under directory `dir`: mkdir, open+write+close,
/// symlink, as `tar -x` does (without restoring owners or times).
pub fn unpack(entries: &[Entry], dir: &std::os::fd::OwnedFd) -> Sys<()> {
    let d = dir.as_raw_fd();
    for e in entries {
        match &e.kind {
            Kind::Dir => sys::mkdirat(d, &e.path, e.mode | 0o700)?,
            Kind::File(data) => {
                let fd = sys::openat(
                    d,
                    &e.path,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    e.mode,
                )?;
                sys::write_all(&fd, data)?;
                sys::close(fd)?;
            }
            Kind::Symlink(target) => sys::symlinkat(target, d, &e.path)?,
        }
    }
    Ok(())
}

/// Removes everything below directory `dir` (not `dir` itself), as
/// `rm -r` does: read each directory, unlink its entries, recurse.
pub fn remove_contents(dir: &std::os::fd::OwnedFd, buf: &mut Vec<u8>) -> Sys<()> {
    let mut names = Vec::new();
    sys::read_dir(dir, buf, |name, dtype| {
        names.push((name.to_owned(), dtype));
        Ok(())
    })?;
    for (name, dtype) in names {
        let is_dir = if dtype == libc::DT_UNKNOWN {
            let st = sys::fstatat(dir.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)?;
            st.st_mode & libc::S_IFMT == libc::S_IFDIR
        } else {
            dtype == libc::DT_DIR
        };
        if is_dir {
            let sub = sys::open_dir(dir.as_raw_fd(), &name)?;
            remove_contents(&sub, buf)?;
            drop(sub);
            sys::unlinkat(dir.as_raw_fd(), &name, libc::AT_REMOVEDIR)?;
        } else {
            sys::unlinkat(dir.as_raw_fd(), &name, 0)?;
        }
    }
    Ok(())
}
