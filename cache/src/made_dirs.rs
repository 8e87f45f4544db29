//! Folders made here and not yet on the provider. `mkdir` only journals the folder (a
//! synced index transaction), so it works offline and costs no round trip; the
//! uploader creates it on the provider after the write-back delay, parents first, and
//! before anything inside it is uploaded.
//!
//! Nothing below a made folder is on the provider: the files in it are new ones whose
//! uploads wait for it, and whatever would put an object there at once (the rename of
//! an uploaded file or folder into it) creates it first.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use oxidrive_providers::{Error as ProviderError, ErrorKind as ProviderErrorKind, ObjectKind};

use crate::copies::is_below;
use crate::error::{Error, Result};
use crate::index::{Overlay, RemoteEntry, subtree_bounds};
use crate::store::{Entry, Store, merge, parent_of};
use crate::trash::TRASH_RETRY;
use crate::uploader::{PERMANENT_RETRY, backoff, is_temporary};

#[derive(Debug, Default)]
pub(crate) struct MadeDirs {
    /// Path → when to create it on the provider (made + write-back delay, or a retry).
    dirs: Mutex<BTreeMap<String, Due>>,
    /// Held while creating on the provider: an encrypted folder made twice would get a
    /// second id. Taken after any path lock, never before one.
    creating: tokio::sync::Mutex<()>,
    /// The uploader's creation task is running.
    running: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    attempts: u32,
}

impl MadeDirs {
    /// The made folders an earlier run journaled; they are due at once.
    pub(crate) fn load(paths: Vec<String>) -> Self {
        let now = Instant::now();
        let dirs = paths.into_iter().map(|p| (p, Due { at: now, attempts: 0 })).collect();
        Self { dirs: Mutex::new(dirs), ..Self::default() }
    }

    fn dirs(&self) -> MutexGuard<'_, BTreeMap<String, Due>> {
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn count(&self) -> usize {
        self.dirs().len()
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.dirs().contains_key(path)
    }

    /// Whether a folder above `path` is made here (so nothing at `path` is on the provider).
    pub(crate) fn above(&self, path: &str) -> bool {
        self.ancestor_due(path).is_some()
    }

    /// When the nearest made folder above `path` is due, if there is one.
    fn ancestor_due(&self, path: &str) -> Option<Instant> {
        let dirs = self.dirs();
        if dirs.is_empty() {
            return None;
        }
        let mut p = parent_of(path);
        while !p.is_empty() {
            if let Some(due) = dirs.get(p) {
                return Some(due.at);
            }
            p = parent_of(p);
        }
        None
    }

    /// Makes the folders in `paths` due no earlier than `at`.
    fn postpone<'a>(&self, paths: impl IntoIterator<Item = &'a String>, at: Instant) {
        let mut dirs = self.dirs();
        for path in paths {
            if let Some(due) = dirs.get_mut(path) {
                due.at = due.at.max(at);
            }
        }
    }

    /// The made folders directly in `dir`.
    pub(crate) fn children(&self, dir: &str) -> Vec<String> {
        below_in(&self.dirs(), dir).filter(|p| parent_of(p) == dir).cloned().collect()
    }

    /// The made folders below `dir`.
    pub(crate) fn below(&self, dir: &str) -> Vec<String> {
        below_in(&self.dirs(), dir).cloned().collect()
    }

    /// `sync --wait`: everything is due now.
    pub(crate) fn hurry(&self) {
        let now = Instant::now();
        for due in self.dirs().values_mut() {
            due.at = now;
        }
    }

    /// The made folders at and below `path` are due now (what they waited for is done).
    pub(crate) fn hurry_tree(&self, path: &str) {
        let now = Instant::now();
        for (_, due) in self.dirs().iter_mut().filter(|(p, _)| *p == path || is_below(p, path)) {
            due.at = due.at.min(now);
        }
    }

    /// Made folders follow a rename of themselves or of a folder above them; one
    /// replaced at `to` is gone.
    pub(crate) fn rename(&self, from: &str, to: &str) {
        let mut dirs = self.dirs();
        dirs.retain(|p, _| p != to && !is_below(p, to));
        let moved: Vec<String> = dirs.keys().filter(|p| *p == from || is_below(p, from)).cloned().collect();
        for old in moved {
            if let Some(due) = dirs.remove(&old) {
                dirs.insert(format!("{to}{}", &old[from.len()..]), due);
            }
        }
    }

    /// Adds made folders, due at `at`.
    pub(crate) fn add(&self, paths: &[String], at: Instant) {
        let mut dirs = self.dirs();
        for path in paths {
            dirs.insert(path.clone(), Due { at, attempts: 0 });
        }
    }

    /// Forgets the made folders at and below `path` (deleted for good).
    pub(crate) fn forget_tree(&self, path: &str) {
        self.dirs().retain(|p, _| p != path && !is_below(p, path));
    }
}

/// The paths of `dirs` below `dir`: a range of the map, not a walk over it (it is
/// read at every listing, and an untar makes thousands).
fn below_in<'a>(dirs: &'a BTreeMap<String, Due>, dir: &str) -> impl Iterator<Item = &'a String> {
    let range = if dir.is_empty() {
        dirs.range::<String, _>(..)
    } else {
        let (lo, hi) = subtree_bounds(dir);
        dirs.range::<String, _>((Bound::Included(lo), Bound::Excluded(hi)))
    };
    range.map(|(p, _)| p)
}

impl Store {
    /// Journals a new folder (see the module comment); its parent's mtime becomes now.
    pub async fn mkdir(&self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        let made = self.journal_new_dir(path, mode, uid, gid).await;
        if made.is_err() {
            // Made way for a folder that did not come: one deleted there is hidden again.
            self.mark_replaced(path, false)?;
        }
        made
    }

    async fn journal_new_dir(&self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        // A name the provider would refuse is refused now, not at upload.
        self.provider.check_name(path)?;
        let ov = Overlay {
            mode: Some(mode),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(SystemTime::now()),
            ..Overlay::default()
        };
        self.index.journal_mkdir(&self.root, path, &ov)?;
        // Synced before the reply, so files committed into it never outlive it.
        self.sync_index().await?;
        let at = Instant::now() + self.config.write_back;
        self.made.dirs().insert(path.to_owned(), Due { at, attempts: 0 });
        self.uploads.wake.notify_one();
        Ok(())
    }

    /// Deletes an (empty) made folder, which only the journal knows; false if it was
    /// created on the provider meanwhile, or if it holds deleted files that the
    /// provider holds elsewhere (renamed into it in the journal, so bound for the
    /// Trash): then it goes the usual way. (What was deleted in a folder it replaced
    /// stays, hidden again with that one.)
    pub(crate) async fn remove_made_dir(&self, path: &str) -> Result<bool> {
        let _lock = self.locks.lock(&[(path, true)]).await;
        if !self.made.contains(path) || self.deleted_below_new(path) {
            return Ok(false);
        }
        self.index.remove_tree(&self.root, path)?;
        self.made.forget_tree(path);
        // A folder deleted here before, still on the provider, is hidden again.
        self.mark_replaced(path, false)?;
        self.recent_gen.fetch_add(1, Ordering::AcqRel);
        self.uploads.changed.notify_waiters();
        Ok(true)
    }

    /// A made folder's entry: an empty folder with its recorded attributes.
    pub(crate) fn made_entry(&self, path: &str) -> Result<Entry> {
        let ov = self.index.get(&self.root, path)?;
        Ok(merge(&RemoteEntry { is_dir: true, size: 0, mtime: None }, ov.as_ref()))
    }

    /// Creates on the provider the made folders at (if `inclusive`) and above `path`,
    /// for a change that needs them there now. The caller holds path locks on `path`.
    pub(crate) async fn create_made_above(&self, path: &str, inclusive: bool) -> Result<()> {
        let wanted: Vec<String> = {
            let dirs = self.made.dirs();
            dirs.keys().filter(|d| is_below(path, d) || (inclusive && *d == path)).cloned().collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let _creating = self.made.creating.lock().await;
        for dir in wanted {
            self.create_made(&dir).await?;
        }
        Ok(())
    }

    /// Starts the creation of due made folders unless it is running; returns when the
    /// next one is due.
    pub(crate) fn dispatch_made(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        if self.made.running.load(Ordering::Acquire) {
            return None;
        }
        let first = self.made.dirs().values().map(|d| d.at).min()?;
        if first > now {
            return Some(first);
        }
        self.made.running.store(true, Ordering::Release);
        let store = self.clone();
        tokio::spawn(async move {
            store.create_made_all().await;
            store.made.running.store(false, Ordering::Release);
            // Files waiting for their folders can go now; `sync --wait` looks again.
            store.uploads.changed.notify_waiters();
            store.uploads.wake.notify_one();
        });
        None
    }

    /// Creates the due made folders, parents first. One below a folder still made here
    /// (which failed, or is not due) waits for it. A permanent failure (a name the
    /// provider refuses) lets the folders elsewhere go on; a temporary one (the provider
    /// down or throttling) ends the round. Whatever waits is due no earlier than the
    /// failed folder's retry, so the uploader does not come straight back to it.
    async fn create_made_all(&self) {
        let now = Instant::now();
        let due: Vec<String> = self.made.dirs().iter().filter(|(_, d)| d.at <= now).map(|(p, _)| p.clone()).collect();
        for (i, dir) in due.iter().enumerate() {
            if let Some(at) = self.made.ancestor_due(dir) {
                self.made.postpone([dir], at);
                continue;
            }
            if self.trash.is_replaced(dir) {
                // Made over a deleted folder while offline: that one goes to the Trash
                // first (`settle_replaced` then makes this one due).
                self.made.postpone([dir], Instant::now() + TRASH_RETRY);
                continue;
            }
            // Against a rename or delete of it (or above it) meanwhile.
            let _lock = self.locks.lock(&[(dir, false)]).await;
            let _creating = self.made.creating.lock().await;
            let Err(e) = self.create_made(dir).await else { continue };
            let Some((attempts, retry_at)) = self.made.dirs().get_mut(dir).map(|due| {
                due.attempts += 1;
                let wait = if is_temporary(&e) { backoff(due.attempts) } else { PERMANENT_RETRY };
                due.at = Instant::now() + wait;
                (due.attempts, due.at)
            }) else {
                continue;
            };
            match &e {
                Error::Provider(p) if p.is_unreachable() => self.unreachable(p),
                _ => self.note_error(&e.to_string()),
            }
            tracing::warn!(root = %self.root, path = %dir, error = %e, attempt = attempts, "could not create a folder on the provider; will retry");
            if is_temporary(&e) {
                self.made.postpone(&due[i + 1..], retry_at);
                return;
            }
        }
    }

    /// Creates one made folder on the provider, if it still is one. The caller holds
    /// `made.creating`.
    async fn create_made(&self, dir: &str) -> Result<()> {
        if !self.made.contains(dir) {
            return Ok(());
        }
        if self.trash.is_replaced(dir) {
            let what = format!("{dir}: the folder deleted here waits to be moved to Trash; the new one waits for it");
            return Err(ProviderError::new(ProviderErrorKind::Other, what).into());
        }
        // Another device may have made the same name meanwhile: then it is ours too
        // (creating over an encrypted folder would give it a new id).
        let created = match self.provider.stat(dir).await? {
            None => true,
            Some(meta) if meta.kind == ObjectKind::Dir => false,
            Some(_) => {
                let what = format!("{dir}: a file of this name is on the provider; the folder waits");
                return Err(ProviderError::new(ProviderErrorKind::NotADirectory, what).into());
            }
        };
        if created {
            self.provider.create_dir(dir).await?;
        }
        self.reached();
        self.index.made_dir_created(&self.root, dir, created)?;
        self.made.dirs().remove(dir);
        // A listing of its parent that overlapped this must not count as recent.
        self.recent_gen.fetch_add(1, Ordering::AcqRel);
        self.recent.insert(dir.to_owned(), Some(RemoteEntry { is_dir: true, size: 0, mtime: None }));
        if created {
            // Known empty on the provider: lookups in it need not ask for a moment.
            self.listed.insert(dir.to_owned(), ());
        }
        tracing::debug!(root = %self.root, path = dir, "created a folder on the provider");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_and_below_take_only_the_folders_under_the_path() {
        let made =
            MadeDirs::load(["a", "a/b", "a/b/c", "a-b", "a-b/x", "a0", "ab", "b", "b/a"].map(String::from).into());
        assert_eq!(made.below("a"), ["a/b", "a/b/c"]);
        assert_eq!(made.children("a"), ["a/b"]);
        assert_eq!(made.children("a/b"), ["a/b/c"]);
        assert_eq!(made.below("a/b/c"), Vec::<String>::new());
        assert_eq!(made.children(""), ["a", "a-b", "a0", "ab", "b"]);
        assert_eq!(made.below("").len(), 9);
    }
}
