//! The background uploader of one store: takes committed changes from the journal to
//! the provider after the write-back delay, retries with backoff, and reports health.
//!
//! A row leaves the journal only when an upload read exactly the committed contents:
//! the copy's generation was the committed one when the upload started and still was
//! when it ended, and no newer commit replaced the row meanwhile. Anything else keeps
//! the row, and the file is uploaded again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use oxidrive_providers::{ErrorKind, Precondition};
use tokio::sync::{Notify, Semaphore};

use crate::error::Error;
use crate::health::{Health, PROBE_EVERY};
use crate::store::{Pending, Store, remote_entry};

/// Uploads running at once per store.
const CONCURRENT_UPLOADS: usize = 4;
/// A file still being written after its last commit is uploaded anyway after this long
/// (a database that stays open and fsyncs now and then must still reach the provider).
const MAX_DEFER: Duration = Duration::from_secs(30);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Temporary uploads older than this were interrupted (a crash, a lost connection).
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);
/// Errors that retrying will not fix wait this long before the next attempt.
pub(crate) const PERMANENT_RETRY: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub(crate) struct Uploads {
    /// New work, or a retry time changed.
    pub wake: Notify,
    /// The pending set changed (an upload finished, a file was deleted).
    pub changed: Notify,
    /// Callers waiting for everything to upload: while nonzero, skip the delay.
    pub urgent: AtomicUsize,
    pub health: Mutex<Health>,
    limit: Semaphore,
}

impl Default for Uploads {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            changed: Notify::new(),
            urgent: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
            limit: Semaphore::new(CONCURRENT_UPLOADS),
        }
    }
}

/// What `oxidrive status` shows of one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub name: String,
    /// False while the last attempt to reach the provider failed with a temporary error.
    pub online: bool,
    pub last_error: Option<(SystemTime, String)>,
    pub pending_files: usize,
    pub pending_bytes: u64,
    pub uploading: usize,
    /// When the oldest change not yet uploaded was committed.
    pub oldest_pending: Option<SystemTime>,
    /// Deleted items not yet moved into the provider's Trash.
    pub deleting: usize,
    /// Items renamed in the journal whose old names are still on the provider (they
    /// go once the new names are uploaded).
    pub renaming: usize,
}

/// The state of one file, as `user.oxidrive.state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Committed locally, waiting for upload.
    Dirty,
    Uploading,
    /// A conflict copy made by this run (our version of a file changed elsewhere too).
    Conflict,
    /// Some or all blocks are in the read cache.
    Cached,
    /// Kept whole in the cache, never evicted.
    Pinned,
    /// On the provider; nothing of it is kept locally.
    CloudOnly,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Dirty => "dirty",
            FileState::Uploading => "uploading",
            FileState::Conflict => "conflict",
            FileState::Cached => "cached",
            FileState::Pinned => "pinned",
            FileState::CloudOnly => "cloud-only",
        }
    }
}

impl Store {
    /// Starts this store's uploader on the current tokio runtime. It ends when the store
    /// is dropped.
    pub fn start_uploads(self: &Arc<Self>) {
        let uploads = self.uploads.clone();
        let store = Arc::downgrade(self);
        tokio::spawn(run(store, uploads));
        let probe = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                match probe.upgrade() {
                    Some(store) => store.probe().await,
                    None => return,
                }
            }
        });
        let store = self.clone();
        tokio::spawn(async move {
            match store.provider.sweep_tmp(STALE_TMP).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(root = %store.root, removed = n, "removed interrupted uploads"),
                Err(e) => tracing::debug!(root = %store.root, error = %e, "could not sweep interrupted uploads"),
            }
            // The top folder lists offline only if its listing was recorded once: a
            // user who went straight into a subfolder never listed it. Recorded for
            // offline use only: lookups keep asking the provider as before.
            if !store.offline_now()
                && matches!(store.index.remote_listed(&store.root, ""), Ok(false))
                && let Err(e) = store.record_top_listing().await
            {
                tracing::debug!(root = %store.root, error = %e, "could not list the top folder");
            }
        });
    }

    /// Returns once every change committed so far (and any committed meanwhile) is on
    /// the provider, retrying failed uploads at once. Without a deadline it waits for as
    /// long as that takes; with one it returns `false` if it passed first.
    pub async fn wait_uploaded(&self, deadline: Option<tokio::time::Instant>) -> bool {
        self.uploads.urgent.fetch_add(1, Ordering::AcqRel);
        for p in self.pending().values_mut() {
            p.retry_at = None;
        }
        self.made.hurry();
        self.uploads.wake.notify_one();
        self.wake_trash();
        let done = loop {
            let changed = self.uploads.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.pending().values().all(|p| p.created.is_some()) && self.made.count() == 0 && self.trash.count() == 0
            {
                break true;
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, changed).await.is_err() {
                        break false;
                    }
                }
                None => changed.await,
            }
        };
        self.uploads.urgent.fetch_sub(1, Ordering::AcqRel);
        done
    }

    pub fn status(&self) -> StoreStatus {
        let health = self.health();
        let all = self.pending();
        let pending: Vec<&Pending> = all.values().filter(|p| p.created.is_none()).collect();
        let (deleting, renaming) = self.trash.counts();
        StoreStatus {
            name: self.root.clone(),
            online: health.online,
            last_error: health.last_error,
            // Folders made here count as pending uploads of no bytes.
            pending_files: pending.len() + self.made.count(),
            pending_bytes: pending.iter().map(|p| p.copy.len().unwrap_or(p.entry.size)).sum(),
            uploading: pending.iter().filter(|p| p.uploading).count(),
            oldest_pending: pending.iter().map(|p| p.entry.since).min(),
            deleting,
            renaming,
        }
    }

    pub fn file_state(&self, path: &str) -> FileState {
        match self.pending().get(path) {
            Some(p) if p.uploading => return FileState::Uploading,
            Some(_) => return FileState::Dirty,
            None if self.made.contains(path) => return FileState::Dirty,
            None => {}
        }
        if self.is_conflict_copy(path) {
            return FileState::Conflict;
        }
        match self.index.cached_get(&self.root, path) {
            Ok(Some(c)) if c.pinned => FileState::Pinned,
            Ok(Some(c)) if c.bytes > 0 => FileState::Cached,
            _ => FileState::CloudOnly,
        }
    }

    /// Starts the uploads that are due; returns when the next one will be.
    fn dispatch(self: &Arc<Self>) -> Option<Instant> {
        // While offline the probe decides when to try again (and wakes us).
        if self.offline_now() && self.uploads.urgent.load(Ordering::Acquire) == 0 {
            return None;
        }
        let now = Instant::now();
        let urgent = self.uploads.urgent.load(Ordering::Acquire) > 0;
        let delay = if urgent { Duration::ZERO } else { self.config.write_back };
        let mut next: Option<Instant> = None;
        let mut due = Vec::new();
        if self.made.count() > 0 {
            next = self.dispatch_made(now);
        }
        for (path, p) in self.pending().iter_mut() {
            // A new file never closed or synced is not committed: nothing to upload yet.
            if p.uploading || p.created.is_some() {
                continue;
            }
            let mut at = (p.committed_at + delay).max(p.retry_at.unwrap_or(now));
            if p.copy.generation() != p.committed_gen && !self.is_deleted(path) {
                // Still being written: its next commit (close, fsync) is coming.
                at = at.max(p.committed_at + MAX_DEFER);
            }
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
            } else if !self.made.above(path) && !self.trash.is_replaced(path) {
                // (Checked only when due: every commit wakes this loop over all pending
                // files.) One in a folder made here waits for that folder, one over a
                // deleted file for that file to reach the Trash; either wakes us.
                p.uploading = true;
                due.push(path.clone());
            }
        }
        for path in due {
            let store = self.clone();
            tokio::spawn(async move { store.upload_one(path).await });
        }
        next
    }

    async fn upload_one(self: Arc<Self>, path: String) {
        let _permit = self.uploads.limit.acquire().await;
        let _lock = self.locks.lock(&[(&path, false)]).await;
        let (copy, seq, committed_gen) = match self.pending().get(&path) {
            Some(p) if p.uploading => (p.copy.clone(), p.entry.seq, p.committed_gen),
            // Renamed or deleted while this waited for the lock.
            _ => return,
        };
        let (is_new, base) = match self.pending().get(&path) {
            Some(p) => (p.entry.is_new, p.entry.base),
            None => return,
        };
        let start_gen = copy.generation();
        let started = Instant::now();
        let result = async {
            let mut attempt = 1;
            self.ensure_trash_item(&path).await?;
            loop {
                let remote = self.provider.stat(&path).await?;
                if Self::is_conflict(remote.as_ref(), is_new, base) {
                    let kept = self.upload_conflict_copy(&path, &copy).await?;
                    return Ok(Uploaded::Conflict(kept));
                }
                // From here the provider may hold our version at any moment: a crash
                // before the row is cleared must not make the next run see "changed
                // elsewhere".
                self.index.journal_set_state(&self.root, &path, false, None)?;
                match self.provider.upload(&path, &*copy, &precondition(remote.as_ref())).await {
                    Ok(()) => return Ok::<_, Error>(Uploaded::Done(self.provider.stat(&path).await?)),
                    Err(e) => {
                        // Nothing was published (uploads are atomic): the row is as it was.
                        self.index.journal_set_state(&self.root, &path, is_new, base)?;
                        // Changed between our look and our write: look again, which
                        // now sees the change (a conflict) or its undoing.
                        if e.kind() == ErrorKind::ConditionNotMatch && attempt < 3 {
                            tracing::info!(root = %self.root, path, "changed on the provider while uploading; checking again");
                            attempt += 1;
                            continue;
                        }
                        return Err(e.into());
                    }
                }
            }
        }
        .await;
        let result = match result {
            Ok(Uploaded::Conflict(kept)) => {
                self.after_conflict(&path, seq, &kept);
                return;
            }
            Ok(Uploaded::Done(meta)) => Ok(meta),
            Err(e) => Err(e),
        };
        // A deleted file gets no more commits (its descriptors write to nothing that
        // is ever committed): what was read is final.
        let exact = self.is_deleted(&path) || (start_gen == committed_gen && copy.generation() == start_gen);
        match result {
            Ok(meta) => {
                self.reached();
                let remote = meta.as_ref().map(|m| (m.mtime, m.size));
                self.forget_recent_stat(&path);
                if let Err(e) = self.index.remote_put(&self.root, &path, meta.as_ref().map(remote_entry)) {
                    tracing::warn!(root = %self.root, path, error = %e, "could not record the uploaded object");
                }
                copy.set_base(meta.as_ref().map(|m| (m.size, m.mtime)));
                let mut pending = self.pending();
                // A row of another seq (or an inexact read) must not be dropped.
                let done_seq = if exact { seq } else { 0 };
                match self.index.journal_uploaded(&self.root, &path, done_seq, remote) {
                    Ok(true) => {
                        if let Some(p) = pending.remove(&path) {
                            p.copy.keep(false);
                            // Now a clean copy of the provider's version: the read cache
                            // keeps it, unless a writer still has it open.
                            let holders = Arc::strong_count(&p.copy);
                            if let Some(m) = &meta
                                && holders <= 2
                                && let Err(e) = self.config.copies.adopt(&self.root, &path, p.copy, (m.size, m.mtime))
                            {
                                tracing::warn!(root = %self.root, path, error = %e, "could not keep the uploaded copy as cache");
                            } else if holders > 2 {
                                tracing::debug!(root = %self.root, path, holders, "uploaded copy still open; not kept as cache");
                            }
                        }
                        tracing::debug!(root = %self.root, path, ms = started.elapsed().as_millis() as u64, "uploaded");
                    }
                    Ok(false) => {
                        if let Some(p) = pending.get_mut(&path) {
                            p.uploading = false;
                            p.entry.is_new = false;
                            // Later changes now start from what we just uploaded.
                            p.entry.base = meta.as_ref().map(|m| (m.size, m.mtime));
                        }
                    }
                    Err(e) => {
                        tracing::error!(root = %self.root, path, error = %e, "could not record an upload in the journal");
                        if let Some(p) = pending.get_mut(&path) {
                            p.uploading = false;
                            p.retry_at = Some(Instant::now() + FIRST_RETRY);
                        }
                    }
                }
            }
            Err(e) => {
                let temporary = is_temporary(&e);
                let mut pending = self.pending();
                if let Some(p) = pending.get_mut(&path) {
                    p.uploading = false;
                    p.attempts += 1;
                    let wait = if temporary { backoff(p.attempts) } else { PERMANENT_RETRY };
                    p.retry_at = Some(Instant::now() + wait);
                    if temporary {
                        tracing::warn!(root = %self.root, path, error = %e, attempt = p.attempts, retry_in_s = wait.as_secs(), "upload failed; will retry");
                    } else {
                        tracing::error!(root = %self.root, path, error = %e, retry_in_s = wait.as_secs(), "upload refused by the provider; the change stays in the journal");
                    }
                }
                drop(pending);
                match &e {
                    Error::Provider(p) if p.is_unreachable() => self.unreachable(p),
                    _ => self.note_error(&e.to_string()),
                }
            }
        }
        if !self.pending().values().any(|p| p.uploading) {
            release_freed_memory();
        }
        self.uploads.changed.notify_waiters();
        self.uploads.wake.notify_one();
    }
}

enum Uploaded {
    Done(Option<oxidrive_providers::ObjectMeta>),
    /// Someone else changed the file: ours went to this conflict copy instead.
    Conflict(String),
}

impl Store {
    /// Ours is safe under `kept`; the name shows the provider's version again. A commit
    /// made meanwhile stays pending (and will conflict again, never overwrite).
    fn after_conflict(&self, path: &str, seq: u64, kept: &str) {
        let mut pending = self.pending();
        match pending.get(path).map(|p| p.entry.seq) {
            Some(s) if s == seq => {
                if let Err(e) = self.index.journal_remove(&self.root, path) {
                    tracing::error!(root = %self.root, path, error = %e, "could not clear a conflicted change from the journal");
                }
                if let Some(p) = pending.remove(path) {
                    p.copy.keep(false);
                }
            }
            Some(_) => {
                if let Some(p) = pending.get_mut(path) {
                    p.uploading = false;
                }
            }
            None => {}
        }
        drop(pending);
        self.forget_recent_stat(path);
        if let Some(hook) = self.change_hook.get() {
            hook(path);
            hook(kept);
        }
        self.uploads.changed.notify_waiters();
        self.uploads.wake.notify_one();
    }
}

/// The most time between two rounds of `dispatch` when woken more often (see `run`).
const MAX_DISPATCH_GAP: Duration = Duration::from_millis(50);

async fn run(store: Weak<Store>, uploads: Arc<Uploads>) {
    // Renames a crash interrupted decide where pending files go: settle them first.
    let mut wait = FIRST_RETRY;
    loop {
        let Some(s) = store.upgrade() else { return };
        match s.recover_renames().await {
            Ok(()) => break,
            Err(e) => tracing::warn!(root = %s.root, error = %e, "cannot settle interrupted renames yet; retrying"),
        }
        drop(s);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RETRY);
    }
    tokio::spawn(crate::trash::trash_loop(store.clone()));
    loop {
        let wake = uploads.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let (next, gap) = match store.upgrade() {
            Some(store) => (store.dispatch(), (store.config.write_back / 10).min(MAX_DISPATCH_GAP)),
            None => return,
        };
        let round = Instant::now();
        match next {
            Some(at) => {
                let _ = tokio::time::timeout_at(at.into(), wake).await;
            }
            // Wake up now and then to notice the store is gone.
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(5), wake).await;
            }
        }
        // Every commit wakes this loop, and each round walks all pending files: an
        // untar of n files would cost n² steps. Rounds are spaced (a tenth of the
        // write-back delay at most), unless `sync --wait` is waiting.
        if uploads.urgent.load(Ordering::Acquire) == 0 {
            tokio::time::sleep_until((round + gap).into()).await;
        }
    }
}

/// The provider must still show what the conflict check saw when the upload lands.
fn precondition(remote: Option<&oxidrive_providers::ObjectMeta>) -> Precondition {
    match remote {
        None => Precondition::Absent,
        Some(m) => m.etag.clone().map_or(Precondition::Any, Precondition::Etag),
    }
}

/// Whether retrying soon may help: everything but a refusal of this very request.
pub(crate) fn is_temporary(e: &Error) -> bool {
    match e {
        Error::Provider(p) => !matches!(
            p.kind(),
            ErrorKind::InvalidName
                | ErrorKind::PathTooLong
                | ErrorKind::PermissionDenied
                | ErrorKind::ConfigInvalid
                | ErrorKind::IsADirectory
                | ErrorKind::NotADirectory
                | ErrorKind::Unsupported
        ),
        Error::Io { .. } | Error::Index(_) => false,
    }
}

/// Uploads move large buffers (8 MiB parts) through many threads; the allocator keeps
/// what they freed in per-thread arenas. Handing it back when uploads go idle keeps the
/// daemon's resident memory near its idle size.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub(crate) fn backoff(attempts: u32) -> Duration {
    FIRST_RETRY.saturating_mul(1 << attempts.saturating_sub(1).min(16)).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), MAX_RETRY);
    }
}
