//! Reading files through the block cache, and pinning them there.
//!
//! A read serves the blocks it covers from the file's cached copy and fetches only the
//! missing ones, in one provider request for the whole missing range. A read that
//! continues (near) where the last one ended is sequential: then the fetch reaches a part
//! further ahead, and a window after it is fetched in the background while the caller
//! reads, `PARTS_AT_ONCE` requests at a time. The window starts at one part and doubles
//! with each read-ahead while reading stays sequential, its requests growing with it, so
//! a long stream is fetched in few large requests ahead of the reader (as mountpoint-s3
//! and rclone do) while a short one (`head`, a file type sniff) fetches little more than
//! it reads.
//! A cached block that fails authentication is dropped, logged and fetched again;
//! its bytes are never served.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::local_copy::{BLOCK, LocalCopy};
use crate::store::Store;

/// How far a sequential reader's own fetches reach, and the smallest read-ahead request.
pub(crate) const PART: u64 = 8 * 1024 * 1024;
/// The largest read-ahead request: fewer, larger requests once a stream is long (each
/// request costs a round trip, and some servers a pass over the whole object).
const BIG_PART: u64 = 2 * PART;
/// The largest read-ahead window (fetched into the cache on disk).
const MAX_WINDOW: u64 = 4 * PART;
/// Read-ahead requests in flight at once for one file; their parts are what a read-ahead
/// holds in memory.
const PARTS_AT_ONCE: usize = 1;
/// How far from where the last read ended a read still counts as sequential.
pub(crate) const NEAR: u64 = 1024 * 1024;
/// How far ahead of a sequential reader the cached blocks are read from local disk.
const LOCAL_AHEAD: u64 = 4 * 1024 * 1024;
/// A reader waits at most this long for a read-ahead before fetching itself.
const PREFETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Store {
    /// Reads from a file whose size (as last seen) is `size`.
    pub async fn read(self: &Arc<Self>, path: &str, offset: u64, len: u64, size: u64) -> Result<Vec<u8>> {
        if let Some(copy) = self.pending_copy(path) {
            return copy.read_at(offset, len as usize);
        }
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        // Only a version the provider showed can be cached; files larger than half the
        // cache stream past it (they would only push everything else out).
        let version = self.current_version(path)?.filter(|v| v.0 == size);
        let Some(version) = version.filter(|_| size <= self.config.copies.limit() / 2) else {
            return self.stream_read(path, version, offset, end, size).await;
        };
        let copy = self.config.copies.cached_or_new(&self.root, path, version)?;
        // The kernel sends a stream's reads a few at a time, and they may arrive out of
        // order: a read near where the last one ended still continues it.
        let sequential = copy.last_read_end().swap(end, Ordering::AcqRel).abs_diff(offset) <= NEAR;
        if !sequential {
            copy.read_ahead_window().store(0, Ordering::Relaxed);
        }
        for attempt in 0..2 {
            // A read-ahead running now most likely brings these blocks: wait for it
            // rather than fetching them a second time.
            while !copy.missing_blocks(offset, end).is_empty() {
                let done = copy.prefetched().notified();
                tokio::pin!(done);
                done.as_mut().enable();
                if !copy.prefetching().load(Ordering::Acquire) {
                    break;
                }
                let _ = tokio::time::timeout(PREFETCH_WAIT, done).await;
            }
            let missing = copy.missing_blocks(offset, end);
            if let (Some(&first), Some(&last)) = (missing.first(), missing.last()) {
                let reach = if sequential { (offset + PART).div_ceil(BLOCK) } else { last + 1 };
                self.fill(path, &copy, first, reach.max(last + 1), size).await?;
            }
            match copy.read_at(offset, (end - offset) as usize) {
                Ok(data) => {
                    if sequential {
                        copy.advise_ahead(end, LOCAL_AHEAD);
                        self.read_ahead(path, &copy, end, size);
                    }
                    return Ok(data);
                }
                Err(Error::Io { source, .. }) if attempt == 0 && source.kind() == std::io::ErrorKind::InvalidData => {
                    tracing::error!(root = %self.root, path, offset, "a cached block failed authentication; dropped, fetching it again");
                    copy.forget_blocks(offset, end);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::io(format!("read {path}"), std::io::ErrorKind::InvalidData.into()))
    }

    /// Fetches blocks `first..reach` (stopping before the first one already cached
    /// after the missing ones) into `copy`.
    async fn fill(&self, path: &str, copy: &LocalCopy, first: u64, reach: u64, size: u64) -> Result<()> {
        let last_block = size.div_ceil(BLOCK);
        let mut to = first + 1;
        let missing = copy.missing_blocks(first * BLOCK, reach.min(last_block) * BLOCK);
        for &i in &missing {
            if i > to {
                break;
            }
            to = i + 1;
        }
        let start = first * BLOCK;
        let end = (to * BLOCK).min(size);
        let data = self.fetch_range(path, start, end, size).await?;
        copy.fill(start, &data)?;
        self.config.copies.filled(&self.root, path, copy)
    }

    /// Bytes `[start, end)` straight from the provider.
    pub(crate) async fn fetch_range(&self, path: &str, start: u64, end: u64, size: u64) -> Result<Vec<u8>> {
        if self.offline_now() {
            return Err(self.offline_error(path));
        }
        match self.provider.read_range(path, start, end - start, size).await {
            Ok(data) => {
                self.reached();
                Ok(data)
            }
            Err(e) => {
                if e.is_unreachable() {
                    self.unreachable(&e);
                }
                Err(e.into())
            }
        }
    }

    /// Keeps a window ahead of a sequential reader: when a block within the window after
    /// `from` is missing, fetches the window from there in the background, up to
    /// `PARTS_AT_ONCE` parts at a time, waking waiting readers as each part lands. One
    /// read-ahead per file at a time; each one doubles the next one's window.
    fn read_ahead(self: &Arc<Self>, path: &str, copy: &Arc<LocalCopy>, from: u64, size: u64) {
        let window = copy.read_ahead_window().load(Ordering::Relaxed).max(PART);
        let horizon = from.saturating_add(window).min(size);
        let Some(&first) = copy.missing_blocks(from, horizon).first() else { return };
        if copy.prefetching().swap(true, Ordering::AcqRel) {
            return;
        }
        copy.read_ahead_window().store((window * 2).min(MAX_WINDOW), Ordering::Relaxed);
        let end = (first * BLOCK).saturating_add(window).min(size);
        let part = (window / PARTS_AT_ONCE as u64).clamp(PART, BIG_PART);
        let parts: Vec<(u64, u64)> = (first * BLOCK..end)
            .step_by(part as usize)
            .map(|start| (start / BLOCK, (start + part).min(end).div_ceil(BLOCK)))
            .collect();
        let (store, path, copy) = (self.clone(), path.to_owned(), copy.clone());
        tokio::spawn(async move {
            futures::stream::iter(parts)
                .for_each_concurrent(PARTS_AT_ONCE, |(from_block, to_block)| {
                    let (store, path, copy) = (&store, &path, &copy);
                    async move {
                        // Blocks a reader fetched itself meanwhile are not fetched again.
                        let missing = copy.missing_blocks(from_block * BLOCK, (to_block * BLOCK).min(size));
                        if let Some(&first) = missing.first()
                            && let Err(e) = store.fill(path, copy, first, to_block, size).await
                        {
                            tracing::debug!(root = %store.root, path, error = %e, "read-ahead failed");
                        }
                        copy.prefetched().notify_waiters();
                    }
                })
                .await;
            copy.prefetching().store(false, Ordering::Release);
            copy.prefetched().notify_waiters();
        });
    }

    /// Fetches every block of a file into the cache and keeps it there (`pin`), or
    /// lets eviction have it again. Pending files are local anyway.
    pub async fn pin_file(self: &Arc<Self>, path: &str, pinned: bool) -> Result<()> {
        // Recorded by path too, so the pin survives the file's next upload and re-caching.
        self.index.pin_dir(&self.root, path, pinned)?;
        if self.pending_copy(path).is_some() {
            return Ok(());
        }
        let Some(version) = self.current_version(path)? else {
            return Err(Error::io(format!("pin {path}"), std::io::ErrorKind::NotFound.into()));
        };
        if pinned {
            let copy = self.config.copies.cached_or_new(&self.root, path, version)?;
            let size = version.0;
            while let Some(&first) = copy.missing_blocks(0, size).first() {
                self.fill(path, &copy, first, first + PART / BLOCK, size).await?;
            }
        }
        self.config.copies.set_pinned(&self.root, path, pinned)
    }

    /// Marks a folder pinned: files uploaded into it later stay cached too.
    pub fn pin_dir(&self, path: &str, pinned: bool) -> Result<()> {
        self.index.pin_dir(&self.root, path, pinned)
    }

    pub fn is_pinned_dir(&self, path: &str) -> Result<bool> {
        self.index.under_pin(&self.root, path)
    }

    /// Drops the cached blocks of a file (never a pending change).
    pub fn free(&self, path: &str) -> Result<()> {
        self.config.copies.forget(&self.root, path)
    }
}
