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
