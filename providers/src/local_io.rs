//! The local side of uploads and downloads: plaintext bytes on this machine (a staging
//! copy, which may itself be encrypted at rest). Providers never see local file paths.

use std::io;

/// What an upload reads: a file's current plaintext.
pub trait LocalSource: Send + Sync {
    fn size(&self) -> io::Result<u64>;
    /// Up to `len` bytes at `offset`; shorter only at the end.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// Where a download writes a file's plaintext.
pub trait LocalSink: Send + Sync {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`, and nothing moved),
/// creating `to`'s parent folders when missing.
pub(crate) fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    match rename_noreplace_once(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && from.exists() => {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            rename_noreplace_once(from, to)
        }
        r => r,
    }
}

fn rename_noreplace_once(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &std::path::Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE: a hard link refuses an existing name too.
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        _ => Err(err),
    }
}
