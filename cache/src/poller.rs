//! Noticing what other devices changed: every folder whose listing the mirror holds is
//! listed again now and then and compared with the mirror. Differences update the
//! mirror, drop stale answers and cached copies, and are reported to the namespace
//! (which tells the kernel to forget its cached names and pages).
//!
//! A poll that would remove more than half of the entries it knew, and at least
//! [`MASS_DELETE_MIN`] of them, is held instead of applied: a wrong bucket, an expired
//! token or an unplugged disk must never look like "everything was deleted". Held
//! deletions show in `oxidrive status` until `oxidrive sync --accept-deletes`. A folder
//! that cannot be listed because the provider is unreachable ends the poll early.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use oxidrive_providers::{ErrorKind, join};

use crate::error::Result;
use crate::index::RemoteEntry;
use crate::store::{Store, parent_of, remote_entry};

/// Deletions fewer than this are always applied.
const MASS_DELETE_MIN: usize = 100;

/// Called with each path another device changed (added, changed or removed).
pub type ChangeHook = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, Default)]
pub(crate) struct PollState {
    /// Deletions seen by the last poll and not applied (see the module comment).
    pub held_deletes: usize,
    /// Apply them at the next poll.
    pub accept_deletes: bool,
}

/// A folder whose listing changed: (folder, fresh listing, names removed from it).
type Relisted = (String, Vec<(String, RemoteEntry)>, Vec<String>);

/// What one poll found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollSummary {
    pub folders: usize,
    pub changed: usize,
    pub held_deletes: usize,
}

impl Store {
    /// Who to tell about remote changes (the namespace); set once.
    pub fn set_change_hook(&self, hook: ChangeHook) {
        let _ = self.change_hook.set(hook);
    }

    /// Polls every `every` (and whenever `poll_soon` is called) until the store is dropped.
    pub fn start_poller(self: &Arc<Self>, every: Duration) {
        let store = Arc::downgrade(self);
        let wake = self.poll_wake.clone();
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(every, wake.notified()).await;
                let Some(s) = Weak::upgrade(&store) else { return };
                if let Err(e) = s.poll().await {
                    tracing::warn!(root = %s.root, error = %e, "poll for remote changes failed");
                }
            }
        });
    }

    /// Deletions the last poll held back.
    pub fn held_deletes(&self) -> usize {
        self.poll_state.lock().unwrap_or_else(PoisonError::into_inner).held_deletes
    }

    /// Polls now instead of at the next interval.
    pub fn poll_soon(&self) {
        self.poll_wake.notify_one();
    }

    /// Lets the next poll apply deletions it would hold.
    pub fn accept_deletes(&self) {
        self.poll_state.lock().unwrap_or_else(PoisonError::into_inner).accept_deletes = true;
    }

    /// Lists every known folder again and applies what changed.
    pub async fn poll(&self) -> Result<PollSummary> {
        let _one = self.poll_running.lock().await;
        let mut summary = PollSummary::default();
        let mut known = 0usize;
        let mut fresh: Vec<Relisted> = Vec::new();
        let mut gone_dirs = Vec::new();
        for dir in self.index.remote_listed_dirs(&self.root)? {
            if self.offline_now() {
                return Ok(summary);
            }
            let old: HashMap<String, RemoteEntry> =
                self.index.remote_children(&self.root, &dir)?.unwrap_or_default().into_iter().collect();
            let listing = match self.provider.list(&dir).await {
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
            }
        }
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
                self.remote_changed(&join(&dir, &name));
                summary.changed += 1;
            }
        }
        if !hold {
            for dir in gone_dirs {
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

    /// Something at `path` changed on the provider, not through us.
    fn remote_changed(&self, path: &str) {
        self.forget_recent_stat(path);
        self.forget_recent_stat(parent_of(path));
        if let Some(hook) = self.change_hook.get() {
            hook(path);
        }
    }
}
