//! Whether a store's provider is reachable, and working offline when it is not.
//!
//! The first request that cannot reach the provider switches the store offline: for a
//! few seconds, names and attributes come from the mirror in the index and reads of
//! data not cached fail at once (EIO), instead of every request waiting out timeouts
//! and retries. After that, one request probes again; the first success (or a
//! successful upload) switches it back online and resumes pending uploads at once.

use std::sync::PoisonError;
use std::time::{Duration, Instant, SystemTime};

use oxidrive_providers::ErrorKind;

use crate::copies::Version;
use crate::error::{Error, Result};
use crate::store::Store;

/// How long an unreachable provider is not asked again.
const PROBE_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Health {
    pub online: bool,
    pub last_error: Option<(SystemTime, String)>,
    /// While offline: when to try the provider again.
    probe_at: Option<Instant>,
}

impl Default for Health {
    /// A provider is assumed reachable until a request says otherwise.
    fn default() -> Self {
        Self { online: true, last_error: None, probe_at: None }
    }
}

impl Store {
    pub(crate) fn health(&self) -> Health {
        self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// True while the provider is known unreachable and not due for another try.
    pub(crate) fn offline_now(&self) -> bool {
        let h = self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner);
        !h.online && h.probe_at.is_some_and(|at| Instant::now() < at)
    }

    /// The provider answered.
    pub(crate) fn reached(&self) {
        let was_offline = {
            let mut h = self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner);
            let was = !h.online;
            h.online = true;
            h.probe_at = None;
            was
        };
        if was_offline {
            tracing::info!(root = %self.root, "provider is reachable again; resuming uploads");
            for p in self.pending().values_mut() {
                p.retry_at = None;
            }
            self.uploads.wake.notify_one();
        }
    }

    /// The provider could not be reached: work offline for a while.
    pub(crate) fn unreachable(&self, e: &oxidrive_providers::Error) {
        let was_online = {
            let mut h = self.uploads.health.lock().unwrap_or_else(PoisonError::into_inner);
            let was = h.online;
            h.online = false;
            h.probe_at = Some(Instant::now() + PROBE_AFTER);
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
        tracing::error!(root = %self.root, path, "needs the provider, which is offline, and is not cached");
        Error::Provider(oxidrive_providers::Error::new(
            ErrorKind::Other,
            format!("{path}: provider {:?} is offline and this is not cached", self.root),
        ))
    }

    /// The version of `path` the provider last showed (size, mtime), if a file.
    pub(crate) fn current_version(&self, path: &str) -> Result<Option<Version>> {
        Ok(self.index.remote_get(&self.root, path)?.filter(|r| !r.is_dir).map(|r| (r.size, r.mtime)))
    }
}
