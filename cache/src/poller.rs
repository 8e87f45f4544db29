//! Noticing what other devices changed: folders whose listing the mirror holds are
//! listed again now and then and compared with the mirror. Differences update the
//! mirror, drop stale answers and cached copies, and are reported to the namespace
//! (which tells the kernel to forget its cached names and pages).
//!
//! Cost stays low on trees that do not change: a folder found unchanged is listed
//! half as often each time (every 2, 4, 8, then 16 polls), and at the normal rate
//! again once it changes or someone looks at it. Looking itself asks the provider (a
//! lookup or listing the kernel no longer caches), so a quiet folder is never shown
//! stale for long; `oxidrive sync --now` lists every folder at once.
//!
//! A poll that would remove more than half of the entries it knew, and at least
//! [`MASS_DELETE_MIN`] of them, is held instead of applied: a wrong bucket, an expired
//! token or an unplugged disk must never look like "everything was deleted". Held
//! deletions show in `oxidrive status` until `oxidrive sync --accept-deletes`. A folder
//! that cannot be listed because the provider is unreachable ends the poll early.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use oxidrive_providers::{ErrorKind, join};

use crate::error::Result;
use crate::index::RemoteEntry;
use crate::store::{Store, parent_of, remote_entry};

/// Deletions fewer than this are always applied.
const MASS_DELETE_MIN: usize = 100;
/// A folder unchanged this many polls in a row is listed every 2^MAX_QUIET polls.
const MAX_QUIET: u32 = 4;
/// Folders listed at once (each is one request to the provider).
const CONCURRENT_LISTS: usize = 8;

/// Called with each path another device changed (added, changed or removed).
pub type ChangeHook = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, Default)]
pub(crate) struct PollState {
    /// Deletions seen by the last poll and not applied (see the module comment).
    pub held_deletes: usize,
    /// Apply them at the next poll.
    pub accept_deletes: bool,
    /// Background polls so far.
    round: u64,
    /// When each folder is next listed; a folder not here is listed at the next poll.
    schedule: HashMap<String, Schedule>,
}

#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// Polls in a row that found it unchanged (up to [`MAX_QUIET`]).
    quiet: u32,
    /// The first background round that lists it again.
    next: u64,
}

/// A folder whose listing changed: (folder, fresh listing, names removed from it).
type Relisted = (String, Vec<(String, RemoteEntry)>, Vec<String>);

/// What one poll found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollSummary {
    /// Folders listed.
    pub folders: usize,
    pub changed: usize,
    pub held_deletes: usize,
}

impl Store {
    /// Who to tell about remote changes (the namespace); set once.
    pub fn set_change_hook(&self, hook: ChangeHook) {
        let _ = self.change_hook.set(hook);
    }

    /// Polls every `every` until the store is dropped (`poll` runs one at once).
    pub fn start_poller(self: &Arc<Self>, every: Duration) {
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(s) = Weak::upgrade(&store) else { return };
                if let Err(e) = s.poll_due().await {
                    tracing::warn!(root = %s.root, error = %e, "poll for remote changes failed");
                }
            }
        });
    }

    /// Deletions the last poll held back.
    pub fn held_deletes(&self) -> usize {
        self.poll_state.lock().unwrap_or_else(PoisonError::into_inner).held_deletes
    }

    /// Someone looked at `dir` (or a name in it): list it at the normal rate again.
    pub(crate) fn touched(&self, dir: &str) {
        let mut st = self.poll_state.lock().unwrap_or_else(PoisonError::into_inner);
        let next = st.round + 1;
        if let Some(s) = st.schedule.get_mut(dir)
            && s.quiet > 0
        {
            *s = Schedule { quiet: 0, next };
        }
    }

    /// Lets the next poll apply deletions it would hold.
    pub fn accept_deletes(&self) {
        self.poll_state.lock().unwrap_or_else(PoisonError::into_inner).accept_deletes = true;
    }

    /// Lists every known folder again and applies what changed.
    pub async fn poll(&self) -> Result<PollSummary> {
        let _one = self.poll_running.lock().await;
        let dirs = self.index.remote_listed_dirs(&self.root)?;
        let round = self.poll_state.lock().unwrap_or_else(PoisonError::into_inner).round;
        self.poll_folders(dirs, round).await
    }

    /// One background poll: lists the folders that are due (see the module comment).
    pub async fn poll_due(&self) -> Result<PollSummary> {
        let _one = self.poll_running.lock().await;
        let listed = self.index.remote_listed_dirs(&self.root)?;
        let (dirs, round) = {
            let mut st = self.poll_state.lock().unwrap_or_else(PoisonError::into_inner);
            st.round += 1;
            let round = st.round;
            // Folders no longer in the mirror leave the schedule.
            let mut schedule = std::mem::take(&mut st.schedule);
            st.schedule = listed.iter().filter_map(|d| schedule.remove_entry(d)).collect();
            let due = listed.into_iter().filter(|d| st.schedule.get(d).is_none_or(|s| s.next <= round)).collect();
            (due, round)
        };
        self.poll_folders(dirs, round).await
    }

    /// Lists `dirs` again and applies what changed; `round` schedules their next turn.
    async fn poll_folders(&self, dirs: Vec<String>, round: u64) -> Result<PollSummary> {
        let mut summary = PollSummary::default();
        let mut known = 0usize;
        let mut fresh: Vec<Relisted> = Vec::new();
        let mut quiet = Vec::new();
        let mut gone_dirs = Vec::new();
        let mut listings = futures::stream::iter(dirs)
            .map(|dir| async move { (self.provider.list(&dir).await, dir) })
            .buffered(CONCURRENT_LISTS);
        while let Some((listing, dir)) = listings.next().await {
            if self.offline_now() {
                return Ok(summary);
            }
            let old: HashMap<String, RemoteEntry> =
                self.index.remote_children(&self.root, &dir)?.unwrap_or_default().into_iter().collect();
            let listing = match listing {
                Ok(l) => {
                    self.reached();
                    l
                }
                Err(e) if e.kind() == ErrorKind::NotFound && !dir.is_empty() => {
                    gone_dirs.push(dir);
                    continue;
                }
                Err(e) if e.is_unreachable() || dir.is_empty() => {
                    // The top folder vanishing is "unreachable", never "all deleted".
                    self.unreachable(&e);
                    return Ok(summary);
                }
                Err(e) => {
                    tracing::warn!(root = %self.root, dir, error = %e, "poll could not list a folder");
                    continue;
                }
            };
            summary.folders += 1;
            known += old.len();
            let new: Vec<(String, RemoteEntry)> = listing.into_iter().map(|(n, m)| (n, remote_entry(&m))).collect();
            let removed: Vec<String> = old.keys().filter(|n| !new.iter().any(|(m, _)| m == *n)).cloned().collect();
            let changed = new.iter().any(|(n, e)| old.get(n) != Some(e)) || !removed.is_empty();
            if changed {
                fresh.push((dir, new, removed));
            } else {
                quiet.push(dir);
            }
        }
        drop(listings);
        self.reschedule(round, &quiet, fresh.iter().map(|(d, _, _)| d));
        let removed: usize = fresh.iter().map(|(_, _, r)| r.len()).sum();
        let hold = {
            let mut st = self.poll_state.lock().unwrap_or_else(PoisonError::into_inner);
            let suspicious = removed >= MASS_DELETE_MIN && removed * 2 > known;
            let hold = suspicious && !st.accept_deletes;
            st.accept_deletes = false;
            st.held_deletes = if hold { removed } else { 0 };
            hold
        };
        if hold {
            tracing::error!(root = %self.root, removed, known,
                "a poll found most known files gone; holding these deletions (is the right bucket, folder or disk there?). \
                 `oxidrive sync --accept-deletes` applies them");
            summary.held_deletes = removed;
        }
        for (dir, mut new, removed) in fresh {
            let old: HashMap<String, RemoteEntry> =
                self.index.remote_children(&self.root, &dir)?.unwrap_or_default().into_iter().collect();
            let mut changed: Vec<String> =
                new.iter().filter(|(n, e)| old.get(n) != Some(e)).map(|(n, _)| n.clone()).collect();
            if hold {
                new.extend(removed.iter().filter_map(|n| old.get(n).map(|e| (n.clone(), *e))));
            } else {
                for name in &removed {
                    self.index.remote_forget_tree(&self.root, &join(&dir, name))?;
                }
                changed.extend(removed);
            }
            self.index.remote_set_children(&self.root, &dir, &new)?;
            for name in changed {
                tracing::debug!(root = %self.root, dir, name, "changed elsewhere");
                self.remote_changed(&join(&dir, &name));
                summary.changed += 1;
            }
        }
        if !hold {
            for dir in gone_dirs {
                tracing::debug!(root = %self.root, dir, "folder gone elsewhere");
                self.index.remote_forget_tree(&self.root, &dir)?;
                self.remote_changed(&dir);
                summary.changed += 1;
            }
        }
        if summary.changed > 0 {
            tracing::info!(root = %self.root, changed = summary.changed, "picked up changes made elsewhere");
        }
        Ok(summary)
    }

    /// Quiet folders wait twice as long as last time; changed ones come back next round.
    fn reschedule<'a>(&self, round: u64, quiet: &[String], changed: impl Iterator<Item = &'a String>) {
        let mut st = self.poll_state.lock().unwrap_or_else(PoisonError::into_inner);
        for dir in quiet {
            let s = st.schedule.entry(dir.clone()).or_insert(Schedule { quiet: 0, next: 0 });
            s.quiet = (s.quiet + 1).min(MAX_QUIET);
            s.next = round + (1 << s.quiet);
        }
        for dir in changed {
            st.schedule.insert(dir.clone(), Schedule { quiet: 0, next: round + 1 });
        }
    }

    /// Something at `path` changed on the provider, not through us.
    fn remote_changed(&self, path: &str) {
        // What was read of the version before must not answer for this one, even when
        // size and mtime (the version as the cache knows it) happen to be the same.
        self.streams.forget(path);
        if let Err(e) = self.config.copies.forget(&self.root, path) {
            tracing::warn!(root = %self.root, path, error = %e, "could not drop the cached copy of a changed file");
        }
        self.forget_recent_stat(path);
        self.forget_recent_stat(parent_of(path));
        if let Some(hook) = self.change_hook.get() {
            hook(path);
        }
    }
}
