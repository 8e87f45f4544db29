//! The state of a file while it is open or being changed: its local copy and whether
//! that copy holds changes not yet committed to the store's journal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use oxidrive_cache::LocalCopy;

/// Lock order: `materialize` and `commit` (async, per file) may be held across store
/// calls for this one file only; `staging` and `mtime` are leaves held for a moment.
#[derive(Debug, Default)]
pub(crate) struct OpenFile {
    staging: Mutex<Option<Arc<LocalCopy>>>,
    /// Serialises creating the staging copy, so two opens download once.
    pub materialize: tokio::sync::Mutex<()>,
    /// Serialises commits (and renames) of this file so an older commit never lands last.
    pub commit: tokio::sync::Mutex<()>,
    /// Bumped by every change; equal to `committed` when the journal is up to date.
    changed: AtomicU64,
    committed: AtomicU64,
    /// The mtime to record with the next commit: the last write, or what utimens set.
    mtime: Mutex<Option<SystemTime>>,
    /// Size when opened without a local copy, to clamp reads from the provider.
    pub size_at_open: AtomicU64,
    /// chmod / chown / atime set while the file had uncommitted changes: recorded with them
    /// by the next commit (one journal transaction, not one per call), shown meanwhile.
    attrs: Mutex<DeferredAttrs>,
}

/// Attribute changes waiting for the next commit; `None` leaves a field as recorded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeferredAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<SystemTime>,
}

impl OpenFile {
    pub fn new(size: u64) -> Arc<Self> {
        let of = Self::default();
        of.size_at_open.store(size, Ordering::Relaxed);
        Arc::new(of)
    }

    pub fn staging(&self) -> Option<Arc<LocalCopy>> {
        self.staging.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_staging(&self, staging: Arc<LocalCopy>) {
        *self.staging.lock().unwrap_or_else(|p| p.into_inner()) = Some(staging);
    }

    pub fn mark_changed(&self, mtime: SystemTime) {
        self.changed.fetch_add(1, Ordering::AcqRel);
        self.set_mtime(mtime);
    }

    pub fn set_mtime(&self, mtime: SystemTime) {
        *self.mtime.lock().unwrap_or_else(|p| p.into_inner()) = Some(mtime);
    }

    pub fn mtime(&self) -> Option<SystemTime> {
        *self.mtime.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The change counter to pass to [`Self::committed_up_to`] after a successful
    /// commit, or `None` when there is nothing to commit.
    pub fn pending(&self) -> Option<u64> {
        let changed = self.changed.load(Ordering::Acquire);
        (changed != self.committed.load(Ordering::Acquire)).then_some(changed)
    }

    pub fn committed_up_to(&self, generation: u64) {
        self.committed.store(generation, Ordering::Release);
    }

    /// Only with the `commit` lock held and the file dirty, so a commit is sure to
    /// come and cannot be half-way.
    pub fn defer_attrs(&self, set: DeferredAttrs) {
        let mut a = self.attrs.lock().unwrap_or_else(|p| p.into_inner());
        a.mode = set.mode.or(a.mode);
        a.uid = set.uid.or(a.uid);
        a.gid = set.gid.or(a.gid);
        a.atime = set.atime.or(a.atime);
    }

    pub fn deferred_attrs(&self) -> DeferredAttrs {
        *self.attrs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a commit recorded them (the `commit` lock held since it read them).
    pub fn attrs_committed(&self) {
        *self.attrs.lock().unwrap_or_else(|p| p.into_inner()) = DeferredAttrs::default();
    }

    pub fn is_dirty(&self) -> bool {
        self.pending().is_some()
    }

    /// Whether anything changed it since it was opened (committed or not).
    pub fn ever_changed(&self) -> bool {
        self.changed.load(Ordering::Acquire) != 0
    }
}
