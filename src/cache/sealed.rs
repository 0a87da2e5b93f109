//! A cached segment's bytes in a sealed memory file.
//!
//! A segment hit is bytes in memory written to a socket. From the heap that is a
//! copy into the kernel per viewer (and, for Pingora's body writes, one `write`
//! per piece the socket accepts). From a file the kernel sends the same pages by
//! reference with `sendfile(2)` — how nginx serves `proxy_cache` — so a kept
//! segment is moved into a `memfd`, sealed against any change, and mapped
//! read-only: the mapping is the object's `Bytes` for every path that reads bytes
//! (ranges, TLS, HTTP/2, followers), and the file is what [`crate::sendfile`]
//! sends. One copy of the bytes lives in memory either way.
//!
//! Each sealed object holds a file descriptor while it is cached, so at most a
//! quarter of the process's open-files limit is spent on them: the rest stays
//! for connections. Sealing is an optimisation, never a condition: past that
//! budget, or if the kernel refuses a memfd, the object stays on the heap.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use memmap2::Mmap;
use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};

/// Objects below this stay on the heap: a small write costs less than the
/// file's descriptor and mapping, and `sendfile` gains on large bodies only.
pub const MIN: usize = 128 << 10;

/// Sealed files open now, against [`budget`].
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many sealed files may be open at once: a quarter of the open-files limit.
fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        (limit.unwrap_or(1 << 20).min(1 << 20) / 4) as usize
    })
}

/// A sealed memfd, counted against the budget while it is open.
pub struct SealedFile(File);

impl SealedFile {
    /// What `sendfile` reads.
    pub fn file(&self) -> &File {
        &self.0
    }
}

impl Drop for SealedFile {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A body moved into a sealed memfd: its bytes (the read-only mapping) and the
/// file `sendfile` reads.
pub struct Sealed {
    pub bytes: Bytes,
    pub file: Arc<SealedFile>,
}

/// Moves `body` into a sealed memfd. Errors are the kernel's (the caller keeps
/// the heap copy).
pub fn seal(body: &[u8]) -> io::Result<Sealed> {
    if OPEN.fetch_add(1, Ordering::Relaxed) >= budget() {
        OPEN.fetch_sub(1, Ordering::Relaxed);
        return Err(io::Error::other(
            "sealed segments already hold a quarter of the open-files limit",
        ));
    }
    let fd = match memfd_create(
        "livegate-segment",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            OPEN.fetch_sub(1, Ordering::Relaxed);
            return Err(e.into());
        }
    };
    // Counted from here: dropped (and uncounted) on any error below.
    let mut file = SealedFile(File::from(fd));
    file.0.write_all(body)?;
    // Nobody may write, grow, shrink or unseal it: the pages a socket holds by
    // reference are the bytes the object had, for as long as they are held.
    fcntl_add_seals(
        &file.0,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    // SAFETY: the file is sealed against writes and size changes, so the
    // mapping can never change under the `Bytes` that borrows it.
    let map = unsafe { Mmap::map(&file.0)? };
    Ok(Sealed {
        bytes: Bytes::from_owner(map),
        file: Arc::new(file),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    #[test]
    fn sealed_body_reads_back_and_refuses_writes() {
        let body: Vec<u8> = (0..MIN + 7).map(|i| (i % 251) as u8).collect();
        let sealed = seal(&body).unwrap();
        assert_eq!(&sealed.bytes[..], &body[..]);
        let f = sealed.file.file();
        let mut back = vec![0; body.len()];
        f.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, body);
        // The seals hold: no write, no truncation.
        assert!(rustix::io::pwrite(f.as_fd(), b"x", 0).is_err());
        assert!(f.set_len(1).is_err());
        assert!(f.set_len(body.len() as u64 + 1).is_err());
    }
}
