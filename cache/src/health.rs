//! Whether a store's provider is reachable, and working offline when it is not.
//!
//! The first request that cannot reach the provider switches the store offline: from
//! then on names and attributes come from the mirror in the index and reads of data
//! not cached fail at once (EIO), instead of every request waiting out timeouts and
//! retries. A background probe asks the provider every few seconds (so no user
//! request pays for it); its first success, or a successful upload, switches the store
//! back online and resumes pending uploads at once.

use std::sync::PoisonError;
use std::time::{Duration, SystemTime};

use oxidrive_providers::ErrorKind;

use crate::copies::Version;
use crate::error::{Error, Result};
use crate::store::Store;

/// How often an unreachable provider is probed.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Health {
    pub online: bool,
    pub last_error: Option<(SystemTime, String)>,
}

impl Default for Health {
    /// A provider is assumed reachable until a request says otherwise.
    fn default() -> Self {
        Self { online: true, last_error: None }
    }
}

impl Store {
    pub(crate) fn health(&self) -> Health {
        self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// True while the provider is known unreachable (until a probe or upload succeeds).
    pub(crate) fn offline_now(&self) -> bool {
        !self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner).online
    }

    /// `offline_now`, or else whether a request about `path` finds the provider gone
    /// (marking it offline): for a change that must not start on the provider only to
    /// fail half-way, such as a folder's rename, right after the network dropped.
    pub(crate) async fn found_offline(&self, path: &str) -> bool {
        if self.offline_now() {
            return true;
        }
        match self.provider.stat(path).await {
            Err(e) if e.is_unreachable() => {
                self.unreachable(&e);
                true
            }
            _ => false,
        }
    }

    /// Asks the provider whether it answers again (a real request: a listing of the
    /// top folder), while offline.
    pub(crate) async fn probe(&self) {
        if !self.offline_now() {
            return;
        }
        match self.provider.list("").await {
            Ok(_) => self.reached(),
            Err(e) => {
                tracing::debug!(root = %self.root, error = %e, "still unreachable");
                self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner).last_error =
                    Some((SystemTime::now(), e.to_string()));
            }
        }
    }

    /// The provider answered.
    pub(crate) fn reached(&self) {
        let was_offline = {
            let mut h = self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner);
            let was = !h.online;
            h.online = true;
            was
        };
        if was_offline {
            tracing::info!(root = %self.root, "provider is reachable again; resuming uploads");
            for p in self.pending().values_mut() {
                p.retry_at = None;
            }
            self.uploads.wake.notify_one();
            self.resume_trash();
        }
    }

    /// The provider could not be reached: work offline for a while.
    pub(crate) fn unreachable(&self, e: &oxidrive_providers::Error) {
        let was_online = {
            let mut h = self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner);
            let was = h.online;
            h.online = false;
            h.last_error = Some((SystemTime::now(), e.to_string()));
            was
        };
        if was_online {
            tracing::warn!(root = %self.root, error = %e,
                "provider is unreachable; working offline (cached data reads, changes wait in the journal)");
        }
    }

    /// An error that is not about reachability (a refused upload), for `status`.
    pub(crate) fn note_error(&self, msg: &str) {
        let mut h = self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner);
        h.last_error = Some((SystemTime::now(), msg.to_owned()));
    }

    pub(crate) fn offline_error(&self, path: &str) -> Error {
        tracing::error!(root = %self.root, path, "provider is offline and this is not cached");
        Error::Provider(oxidrive_providers::Error::new(
            ErrorKind::Other,
            format!("{path}: provider {:?} is offline and this is not cached", self.root),
        ))
    }

    /// The version of `path` the provider last showed (size, mtime), if a file.
    pub(crate) fn current_version(&self, path: &str) -> Result<Option<Version>> {
        Ok(self.index.remote_get(&self.root, path)?.filter(|r| !r.is_dir).map(|r| (r.size, r.mtime)))
    }

    /// What the provider holds at `path` as far as we know: the version a pending
    /// change started from, else the last one seen (a pending file that replaces the
    /// object a file renamed away in the journal left may have no mirror record).
    /// Unknown (`None`) when a change meant to overwrite it unchecked (its upload was
    /// under way at a crash).
    pub(crate) fn held_version(&self, path: &str) -> Result<Option<Version>> {
        match self.pending().get(path).and_then(|p| p.entry.base) {
            Some(base) => Ok(Some(base)),
            None => self.current_version(path),
        }
    }

    /// The version of `path` that a file renamed over it must find there when it is
    /// uploaded: that of a pending change there (unknown stays unknown), else the last
    /// one seen.
    pub(crate) fn replaced_version(&self, path: &str) -> Result<Option<Version>> {
        match self.pending().get(path).map(|p| p.entry.base) {
            Some(base) => Ok(base),
            None => self.current_version(path),
        }
    }
}
