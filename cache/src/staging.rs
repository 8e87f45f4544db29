//! A local file holding the current contents of a file open for writing.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static NEXT: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    file: File,
}

impl Staging {
    /// A new empty staging file in `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(format!("create staging file {}", path.display()), e))?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read staging file", e)),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.file.write_all_at(data, offset).map_err(|e| Error::io("write staging file", e))
    }

    pub fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| Error::io("truncate staging file", e))
    }

    pub fn len(&self) -> Result<u64> {
        self.file.metadata().map(|m| m.len()).map_err(|e| Error::io("stat staging file", e))
    }

    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|l| l == 0)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove staging file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_write_read_truncate_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let s = Staging::create(dir.path()).unwrap();
        s.write_at(10, b"hello").unwrap();
        assert_eq!(s.len().unwrap(), 15);
        assert_eq!(s.read_at(8, 10).unwrap(), b"\0\0hello");
        s.set_len(12).unwrap();
        assert_eq!(s.read_at(0, 100).unwrap(), b"\0\0\0\0\0\0\0\0\0\0he");
        let p = s.path().to_owned();
        drop(s);
        assert!(!p.exists());
    }
}
