//! Sequential reads of files too big for the read cache (`Store::read` streams them past
//! it). Without help every kernel read (128 KiB) would be one provider request, one
//! round trip each. Instead a stream keeps a window of parts fetched ahead in memory,
//! all in flight at once. The window is twice what the stream has read so far, between
//! `FIRST_WINDOW` (a short look at a big file fetches little more than it reads) and
//! `MAX_WINDOW`, which with `STREAMS` bounds the memory this takes.
//! A read away from the window (a seek) drops it and is fetched alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::copies::Version;
use crate::error::Result;
use crate::reads::{NEAR, PART};
use crate::store::Store;

const FIRST_WINDOW: u64 = 1024 * 1024;
/// Two parts ahead (and one kept behind): with four, an encrypted 10 GiB stream peaked at
/// 123 MiB resident (parts are held as ciphertext and as plaintext while decrypted).
const MAX_WINDOW: u64 = 2 * PART;
/// Streams followed at once; the least recently read one beyond this starts over.
const STREAMS: u64 = 4;
/// A stream not read for this long is dropped with its parts.
const IDLE: Duration = Duration::from_secs(30);

/// A part's bytes once fetched; `None` if the fetch failed (the reader then fetches its
/// own range, which reports the error).
type PartData = Shared<BoxFuture<'static, Option<Bytes>>>;

struct Part {
    start: u64,
    end: u64,
    data: PartData,
}

#[derive(Default)]
struct Stream {
    version: Option<Version>,
    /// Where the stream's first read started.
    start: u64,
    /// Where the last read ended.
    next: u64,
    /// In file order, contiguous, the last one ending at the window's end.
    parts: VecDeque<Part>,
}

pub(crate) struct Streams(moka::sync::Cache<String, Arc<Mutex<Stream>>>);

impl Default for Streams {
    fn default() -> Self {
        Self(moka::sync::Cache::builder().max_capacity(STREAMS).time_to_idle(IDLE).build())
    }
}

impl Streams {
    /// Drops `path`'s stream (the file changed elsewhere).
    pub(crate) fn forget(&self, path: &str) {
        self.0.invalidate(path);
    }
}

impl Store {
    /// Bytes `[offset, end)` of `path` (of `version`, `size` bytes), from its stream's
    /// window when the read continues it.
    pub(crate) async fn stream_read(
        self: &Arc<Self>,
        path: &str,
        version: Option<Version>,
        offset: u64,
        end: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        let stream = self.streams.0.get_with(path.to_owned(), Default::default);
        let wanted = {
            let mut s = stream.lock().unwrap_or_else(PoisonError::into_inner);
            if s.version != version {
                *s = Stream { version, ..Default::default() };
            }
            // The kernel's reads of one stream may arrive a little out of order: a read
            // near the last one's end, or inside the window, continues it.
            let inside =
                s.parts.front().is_some_and(|p| p.start <= offset) && s.parts.back().is_some_and(|p| offset < p.end);
            if offset.abs_diff(s.next) > NEAR && !inside {
                s.parts.clear();
                (s.start, s.next) = (offset, end);
                None
            } else {
                s.next = s.next.max(end);
                self.advance(&mut s, path, offset, size);
                Some(
                    s.parts
                        .iter()
                        .filter(|p| p.start < end && offset < p.end)
                        .map(|p| (p.start, p.end, p.data.clone()))
                        .collect::<Vec<_>>(),
                )
            }
        };
        let Some(wanted) = wanted else { return self.fetch_range(path, offset, end, size).await };
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (start, part_end, data) in wanted {
            let Some(bytes) = data.await else {
                // Dropped, so the next read fetches it again.
                stream.lock().unwrap_or_else(PoisonError::into_inner).parts.retain(|p| p.start != start);
                return self.fetch_range(path, offset, end, size).await;
            };
            let from = (offset.max(start) - start) as usize;
            let to = (end.min(part_end) - start) as usize;
            out.extend_from_slice(bytes.get(from..to).unwrap_or_default());
        }
        if out.len() as u64 != end - offset {
            // A part came back short (the file changed under us): ask for the range itself.
            return self.fetch_range(path, offset, end, size).await;
        }
        Ok(out)
    }

    /// Drops the parts before the one holding `offset` (one behind is kept for late
    /// reads) and requests parts until the window after `offset` is covered, once the
    /// gap is worth a request.
    fn advance(self: &Arc<Self>, s: &mut Stream, path: &str, offset: u64, size: u64) {
        while s.parts.len() > 1 && s.parts[1].start <= offset {
            s.parts.pop_front();
        }
        if s.parts.front().is_some_and(|p| p.start > offset) {
            s.parts.clear();
        }
        let window = offset.saturating_sub(s.start).saturating_mul(2).clamp(FIRST_WINDOW, MAX_WINDOW);
        let target = offset.saturating_add(window).min(size);
        let mut at = s.parts.back().map_or(offset, |p| p.end);
        if at >= target || (target - at < PART.min(window / 2) && target < size) {
            return;
        }
        while at < target {
            let end = (at + PART).min(target);
            let (store, path) = (self.clone(), path.to_owned());
            let task = tokio::spawn(async move { store.fetch_range(&path, at, end, size).await });
            let data = async move {
                match task.await {
                    Ok(Ok(data)) => Some(Bytes::from(data)),
                    _ => None,
                }
            }
            .boxed()
            .shared();
            s.parts.push_back(Part { start: at, end, data });
            at = end;
        }
    }
}
