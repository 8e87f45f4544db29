//! The Trash of one store.
//!
//! Deleting something the provider holds leaves a tombstone: the name is gone at once
//! (`stat` and `list` skip it), and the object moves into the provider's trash area
//! later, as one item per deleted name: `.oxidrive/trash/<id>/data` with an `info`
//! object beside it (original path, deletion time). Moving late is what makes
//! `rm -rf dir` one item: the files' tombstones wait, the folder's comes last, and
//! only the folder moves. The trash area is encrypted like everything else and seen by
//! every device using the provider.
//!
//! A file never uploaded has nothing to keep and is simply forgotten. A folder deleted
//! with no file in it, or a symlink deleted on its own, is removed for good; inside a
//! deleted folder with files both go along, so a restored tree is whole.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oxidrive_providers::{ErrorKind, META_DIR, ObjectKind, join};
use ring::rand::SecureRandom;
use tokio::sync::Notify;

use crate::copies::is_below;
use crate::error::{Error, Result};
use crate::index::{Index, Overlay, RemoteEntry};
use crate::store::{EntryKind, Store, parent_of};
use crate::trash_index::{Tombstone, TrashItem};

/// Where trash items live on each provider (a plaintext path above the encryption).
pub const TRASH_DIR: &str = ".oxidrive/trash";
/// Deleted things move to the trash area once no delete happened for the write-back
/// delay (so a whole `rm -rf` groups), but never wait longer than this.
const MAX_TRASH_DEFER: Duration = Duration::from_secs(120);
/// After a failed move, wait this long before trying again (unless someone waits).
pub(crate) const TRASH_RETRY: Duration = Duration::from_secs(30);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// "Now", for deletion times and retention: injectable so a test can age the Trash.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(SystemTime::now))
    }

    /// The system clock moved by `secs` (negative: into the past).
    pub fn shifted(secs: i64) -> Self {
        let by = Duration::from_secs(secs.unsigned_abs());
        Self(Arc::new(move || if secs >= 0 { SystemTime::now() + by } else { SystemTime::now() - by }))
    }

    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({:?})", self.now())
    }
}

/// One thing in the Trash, as the Trash view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry {
    pub id: String,
    /// Where it was deleted from.
    pub orig: String,
    pub deleted: SystemTime,
    pub is_dir: bool,
    /// Where its contents are now (still the original place until moved).
    pub path: String,
}

#[derive(Debug, Default)]
pub(crate) struct TrashState {
    /// Tombstones by current path.
    tombstones: Mutex<BTreeMap<String, Tombstone>>,
    last_delete: Mutex<Option<Instant>>,
    retry_at: Mutex<Option<Instant>>,
    /// One mover at a time: the background loop, a settle before a create, a restore.
    running: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    /// Counts removals of tombstones.
    dropped: AtomicU64,
    /// The paths of the latest removals (at most `DROPPED_KEPT`), by count: a listing
    /// that asked the provider before one may show what it hid (see `Store::list`).
    dropped_log: Mutex<VecDeque<(u64, String)>>,
}

/// How many removals of tombstones `TrashState::dropped_log` keeps.
const DROPPED_KEPT: usize = 4096;

impl TrashState {
    /// The tombstones an earlier run left; `stands(path)` says whether something new
    /// stands at `path` (a pending file or a made folder).
    pub(crate) fn load(index: &Index, root: &str, stands: impl Fn(&str) -> bool) -> Result<Self> {
        let state = Self::default();
        {
            let mut map = state.tombstones();
            for mut t in index.tombstones(root)? {
                if t.replaced && !stands(&t.path) {
                    // A crash came between removing the new one and hiding this again.
                    tracing::info!(root, path = %t.path, "nothing replaces a deleted item any more; it is hidden again");
                    t.replaced = false;
                    index.tombstone_add(root, &t)?;
                }
                if t.path.starts_with(&format!("{TRASH_DIR}/")) {
                    // Moved with its object (indexes of earlier versions), then a crash
                    // before it was recorded: record it now.
                    index.trash_settled(root, &t.item(), &t.path)?;
                    continue;
                }
                map.insert(t.path.clone(), t);
            }
        }
        Ok(state)
    }

    pub(crate) fn tombstones(&self) -> MutexGuard<'_, BTreeMap<String, Tombstone>> {
        self.tombstones.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tombstones, for removing those at (and below) `paths`: logged first, under
    /// the lock, so a listing that finds one gone also finds it in the log.
    fn tombstones_dropping(&self, paths: &[&str]) -> MutexGuard<'_, BTreeMap<String, Tombstone>> {
        let map = self.tombstones();
        let seq = self.dropped.fetch_add(1, Ordering::AcqRel) + 1;
        let mut log = self.dropped_log.lock().unwrap_or_else(PoisonError::into_inner);
        log.extend(paths.iter().map(|p| (seq, (*p).to_owned())));
        while log.len() > DROPPED_KEPT {
            log.pop_front();
        }
        map
    }

    /// How many times tombstones were removed so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }

    /// The paths whose tombstones (with those below them) were removed after `seen`
    /// removals; `None` if the log no longer goes back that far.
    pub(crate) fn dropped_since(&self, seen: u64) -> Option<Vec<String>> {
        let log = self.dropped_log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.front().is_none_or(|(seq, _)| *seq > seen + 1) {
            return None;
        }
        Some(log.iter().filter(|(seq, _)| *seq > seen).map(|(_, p)| p.clone()).collect())
    }

    /// Drops the tombstones at and below `path`.
    pub(crate) fn drop_tree(&self, path: &str) {
        self.tombstones_dropping(&[path]).retain(|k, _| k != path && !is_below(k, path));
    }

    /// Drops the tombstones at `paths`.
    pub(crate) fn drop_paths(&self, paths: &[String]) {
        let logged: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.tombstones_dropping(&logged).retain(|k, _| !paths.contains(k));
    }

    pub(crate) fn count(&self) -> usize {
        self.tombstones().len()
    }

    /// How many tombstones are deletions, and how many old names of renames.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let map = self.tombstones();
        let moved = map.values().filter(|t| t.moved_to.is_some()).count();
        (map.len() - moved, moved)
    }

    pub(crate) fn insert(&self, t: Tombstone) {
        self.tombstones().insert(t.path.clone(), t);
    }

    pub(crate) fn remove(&self, path: &str) {
        self.tombstones_dropping(&[path]).remove(path);
    }

    /// The tombstone at `path` if a file's rename (not a delete) left it.
    pub(crate) fn moved_tombstone(&self, path: &str) -> Option<Tombstone> {
        self.tombstones().get(path).filter(|t| t.moved_to.is_some() && !t.is_dir).cloned()
    }

    /// Whether a tombstone lies strictly below `path`.
    pub(crate) fn any_below(&self, path: &str) -> bool {
        let (lo, hi) = crate::index::subtree_bounds(path);
        self.tombstones().range(lo..hi).next().is_some()
    }

    /// Whether a new file stands at `path` over a deleted one still on the provider
    /// (its upload waits for that object to reach the Trash).
    pub(crate) fn is_replaced(&self, path: &str) -> bool {
        self.tombstones().get(path).is_some_and(|t| t.replaced)
    }

    /// The paths at and above `path` (top first) where a new name stands over a deleted
    /// one still on the provider.
    pub(crate) fn replaced_at_or_above(&self, path: &str) -> Vec<String> {
        let map = self.tombstones();
        let mut found = Vec::new();
        let mut p = path;
        while !p.is_empty() && !map.is_empty() {
            if map.get(p).is_some_and(|t| t.replaced) {
                found.push(p.to_owned());
            }
            p = parent_of(p);
        }
        found.reverse();
        found
    }

    /// Whether `path` holds the contents of a file renamed in the journal whose old object is
    /// still on the provider.
    fn is_moved_here(&self, path: &str) -> bool {
        self.tombstones().values().any(|t| t.moved_to.as_deref() == Some(path))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Info {
    path: String,
    deleted_ns: i64,
    kind: String,
}

impl Store {
    fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// Whether `path` or a folder above it was deleted (and not yet moved away).
    pub fn is_trashed(&self, path: &str) -> bool {
        let t = self.trash.tombstones();
        if t.is_empty() {
            return false;
        }
        let mut p = path;
        while !p.is_empty() {
            // A replaced tombstone hides only the provider's object: the new file shows.
            if t.get(p).is_some_and(|t| !t.replaced) {
                return true;
            }
            p = parent_of(p);
        }
        false
    }

    /// Whether `path` was deleted: still at its place, or already in the trash area.
    pub(crate) fn is_deleted(&self, path: &str) -> bool {
        is_below(path, TRASH_DIR) || self.is_trashed(path)
    }

    /// Deletes `path` (a folder must look empty): what the provider holds goes to the
    /// Trash; a file never uploaded is simply removed.
    pub async fn delete(&self, path: &str, kind: EntryKind) -> Result<()> {
        // A file renamed in the journal is new at its name, yet it is what the provider holds
        // at the old one: deleted, it goes to the Trash like any other.
        if kind != EntryKind::Dir
            && self.pending().get(path).is_some_and(|p| p.entry.is_new)
            && !self.trash.is_moved_here(path)
        {
            return self.remove_file(path).await;
        }
        if kind == EntryKind::Dir && self.made.contains(path) && self.remove_made_dir(path).await? {
            return Ok(());
        }
        // Something the provider holds elsewhere (a file renamed here in the journal, a
        // folder made here holding such files deleted since) over a name deleted
        // before, whose object still waits for the Trash: one tombstone cannot stand for
        // both, so that one goes first (offline this deletion waits for the provider).
        if self.trash.is_replaced(path) {
            self.settle_path(path, false).await?;
        }
        // Against a rename of a folder above (a tree lock there); an upload of this very
        // file may go on: it lands under the deleted name and moves with it.
        let _lock = self.locks.lock(&[(parent_of(path), false)]).await;
        let version = match kind {
            EntryKind::Dir => None,
            _ => self.held_version(path)?,
        };
        let t = Tombstone {
            id: new_id()?,
            path: path.to_owned(),
            orig: path.to_owned(),
            deleted: self.now(),
            is_dir: kind == EntryKind::Dir,
            version,
            moved_to: None,
            replaced: false,
        };
        self.index.tombstone_add(&self.root, &t)?;
        self.trash.tombstones().insert(path.to_owned(), t);
        *self.trash.last_delete.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.forget_recent_stat(path);
        self.trash.wake.notify_one();
        Ok(())
    }

    /// Moves what was deleted at `path` into the trash area now, because a new name is
    /// about to take its place. A new file (`for_file`) takes the place of a file
    /// renamed away in the journal by replacing its object instead: nothing to do first.
    pub async fn settle_path(&self, path: &str, for_file: bool) -> Result<()> {
        if !self.trash.tombstones().contains_key(path) || (for_file && self.trash.moved_tombstone(path).is_some()) {
            return Ok(());
        }
        let _running = self.trash.running.lock().await;
        let Some(t) = self.trash.tombstones().get(path).cloned() else { return Ok(()) };
        self.settle_one(&t, true).await.inspect_err(|e| {
            tracing::error!(root = %self.root, path, error = %e, "cannot move the deleted item to Trash; the new name must wait");
        })
    }

    /// Makes way for a new file (or, with `dir`, folder) at `path` where a file or
    /// folder was deleted: the deleted one goes to the Trash first when the provider is
    /// reachable. When it is not (and a deleted file had no pending change of its own),
    /// the tombstone becomes `replaced` and the new one may be made at once; it reaches
    /// the provider once the old object is in the Trash (`settle_replaced`), so that
    /// version is never overwritten.
    ///
    /// Below a folder replaced so, nothing needs the provider: what was deleted there
    /// moves to the Trash with that folder.
    pub async fn settle_for_new(&self, path: &str, dir: bool) -> Result<()> {
        let in_replaced = !self.trash.replaced_at_or_above(parent_of(path)).is_empty();
        // Below a replaced folder, the old name of a folder renamed away in the journal
        // belongs to the deleted tree (it reaches the Trash with it): taken like a
        // deleted one's.
        let deleted =
            || self.trash.tombstones().get(path).is_some_and(|t| t.moved_to.is_none() || (in_replaced && t.is_dir));
        // A deleted made folder still here holds deleted files renamed into it in the
        // journal, bound for the Trash with it: it cannot share its name (both would be
        // made at that path), so it goes first.
        let replaceable = || deleted() && !self.pending().contains_key(path) && !self.made.contains(path);
        // A deleted file whose last changes were never uploaded, made way for by a file.
        let trashable = || !dir && !in_replaced && deleted() && self.pending().contains_key(path);
        if (self.offline_now() || in_replaced) && replaceable() {
            return self.mark_replaced(path, true);
        }
        if self.offline_now() && trashable() {
            return self.trash_in_journal(path).await;
        }
        match self.settle_path(path, !dir).await {
            Err(Error::Provider(e)) if e.is_unreachable() && replaceable() => {
                self.unreachable(&e);
                self.mark_replaced(path, true)
            }
            Err(Error::Provider(e)) if e.is_unreachable() && trashable() => {
                self.unreachable(&e);
                self.trash_in_journal(path).await
            }
            other => other,
        }
    }

    /// Takes back the deletion of `path` just made (its own tombstone; what was deleted
    /// inside it stays deleted): a rename over an empty folder that cannot go on.
    pub fn undelete(&self, path: &str) -> Result<()> {
        let plain = self.trash.tombstones().get(path).is_some_and(|t| t.moved_to.is_none() && !t.replaced);
        if plain {
            self.index.tombstone_remove(&self.root, path)?;
            self.trash.remove(path);
            self.forget_recent_stat(path);
        }
        Ok(())
    }

    /// Sets or clears `replaced` on the tombstone at `path`, if there is one to change.
    /// (Not synced: the new file's commit, or the new folder's, later in the same log,
    /// syncs it.)
    pub(crate) fn mark_replaced(&self, path: &str, replaced: bool) -> Result<()> {
        let changed = {
            let mut map = self.trash.tombstones();
            match map.get_mut(path) {
                Some(t) if t.replaced != replaced => {
                    t.replaced = replaced;
                    Some(t.clone())
                }
                _ => None,
            }
        };
        if let Some(t) = changed {
            self.index.tombstone_add(&self.root, &t)?;
            if replaced {
                let what = if t.is_dir { "folder" } else { "file" };
                tracing::info!(root = %self.root, path, "a new {what} replaces one deleted while the provider is offline; it is uploaded once the deleted one is in Trash");
            }
        }
        Ok(())
    }

    /// Moves every deleted top-level item into the trash area.
    pub(crate) async fn settle_all(&self) {
        let _running = self.trash.running.lock().await;
        for t in self.top_tombstones() {
            if let Err(e) = self.settle_one(&t, false).await {
                if let Error::Provider(pe) = &e
                    && pe.is_unreachable()
                {
                    self.unreachable(pe);
                }
                tracing::warn!(root = %self.root, path = %t.path, error = %e, "could not move a deleted item to Trash; will retry");
                *self.trash.retry_at.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Instant::now() + TRASH_RETRY);
                return;
            }
        }
    }

    /// Tombstones with no deleted folder above them: each becomes one trash item. A
    /// folder renamed in the journal does not count: what was deleted in it, and the
    /// old names of its files, settle on their own before it does.
    pub(crate) fn top_tombstones(&self) -> Vec<Tombstone> {
        let map = self.trash.tombstones();
        map.values()
            .filter(|t| {
                let mut p = parent_of(&t.path);
                while !p.is_empty() {
                    if map.get(p).is_some_and(|a| !(a.is_dir && a.moved_to.is_some())) {
                        return false;
                    }
                    p = parent_of(p);
                }
                true
            })
            .cloned()
            .collect()
    }

    /// Deleted on its own, a folder holding only folders (no file deleted below it) or
    /// a symlink (`git init` makes and drops one to probe the filesystem) holds nothing
    /// to keep.
    fn nothing_to_keep(&self, t: &Tombstone) -> bool {
        if t.is_dir {
            // A file renamed away in the journal lives on at its new name.
            return !self
                .trash
                .tombstones()
                .values()
                .any(|x| !x.is_dir && x.moved_to.is_none() && is_below(&x.path, &t.path));
        }
        matches!(self.index.get(&self.root, &t.path), Ok(Some(ov)) if ov.symlink.is_some())
    }

    /// Moves one deleted item into the trash area; `forced` when a new name waits for
    /// its place.
    pub(crate) async fn settle_one(&self, t: &Tombstone, forced: bool) -> Result<()> {
        if t.replaced {
            return self.settle_replaced(t).await;
        }
        if t.is_dir && t.moved_to.is_some() {
            return self.settle_moved_dir(t, forced).await;
        }
        if !forced && t.moved_to.as_ref().is_some_and(|to| self.pending().contains_key(to)) {
            // Renamed in the journal: the old name goes once the new one is uploaded, so
            // other devices never see neither.
            return Ok(());
        }
        if self.nothing_to_keep(t) {
            self.delete_for_good(&t.path).await?;
            self.index.tombstones_remove_tree(&self.root, &t.path)?;
            self.drop_tombstones(&t.path);
            self.uploads.changed.notify_waiters();
            return Ok(());
        }
        // A deleted folder made here holds files renamed into it in the journal (else
        // it would have been dropped as empty): they go to the Trash with it.
        let pending_here = self.pending().contains_key(&t.path) || self.made.contains(&t.path);
        let meta = self.provider.stat(&t.path).await?;
        if let Some(m) = &meta
            && !t.is_dir
            && !pending_here
        {
            let now = Some((m.size, m.mtime));
            // A file renamed while the version there was unknown: its contents would
            // have overwritten whatever is there, unchecked.
            let ours = t.version == now
                || (t.moved_to.is_some() && t.version.is_none())
                || self.index.get(&self.root, &t.path)?.is_some_and(|ov| ov.remote == Some((m.mtime, m.size)));
            if !ours {
                // Edited on another device after it was deleted here: the edit wins.
                tracing::info!(root = %self.root, path = %t.path, deleted_version = ?t.version, found = ?now, "deleted here but changed on another device since; keeping that version");
                self.index.tombstones_remove_tree(&self.root, &t.path)?;
                self.drop_tombstones(&t.path);
                self.forget_recent_stat(&t.path);
                if let Some(hook) = self.change_hook.get() {
                    hook(&t.path);
                }
                self.uploads.changed.notify_waiters();
                return Ok(());
            }
        }
        if let Some(to) = &t.moved_to {
            // Renamed, not deleted: its contents live on at the new name.
            self.delete_for_good(&t.path).await?;
            self.index.tombstones_remove_tree(&self.root, &t.path)?;
            self.drop_tombstones(&t.path);
            tracing::debug!(root = %self.root, from = %t.path, to, "the provider followed a rename made in the journal");
            self.uploads.changed.notify_waiters();
            return Ok(());
        }
        self.move_into_trash(t, pending_here || meta.is_some()).await
    }

    /// Moves the deleted item of `t` into the trash area; `here` says whether anything
    /// of it is left to move (on the provider, or pending here).
    pub(crate) async fn move_into_trash(&self, t: &Tombstone, here: bool) -> Result<()> {
        let item = t.item();
        let data = self.make_item(&item).await?;
        if here {
            let kind = if t.is_dir { EntryKind::Dir } else { EntryKind::File };
            self.rename(&t.path, &data, kind, false).await?;
        } else if self.provider.stat(&data).await?.is_none() {
            tracing::info!(root = %self.root, path = %t.path, "a deleted item vanished before it reached Trash (deleted elsewhere)");
            self.delete_for_good(&join(TRASH_DIR, &t.id)).await?;
            self.index.tombstones_remove_tree(&self.root, &t.path)?;
            self.drop_tombstones(&t.path);
            return Ok(());
        }
        self.index.trash_settled(&self.root, &item, &data)?;
        self.drop_tombstones(&t.path);
        self.drop_tombstones(&data);
        tracing::debug!(root = %self.root, path = %t.orig, id = %t.id, "moved to Trash");
        self.uploads.changed.notify_waiters();
        Ok(())
    }

    /// `settle_one` for a tombstone a new file or folder replaced: only the provider's
    /// object moves (the path's local records and pending change are the new one's).
    async fn settle_replaced(&self, t: &Tombstone) -> Result<()> {
        // Against the new one's removal meanwhile, which would hide the old one again.
        let _lock = self.locks.lock(&[(t.path.as_str(), true)]).await;
        let moved = self.old_tree(t);
        let meta = self.provider.stat(&t.path).await?;
        let ours = match &meta {
            Some(m) if t.is_dir => m.kind == ObjectKind::Dir,
            Some(m) => t.version == Some((m.size, m.mtime)),
            None => false,
        };
        if !ours {
            if let Some(m) = meta {
                // Changed on another device after it was deleted here: that stays, and
                // the new file's upload becomes a conflict copy (a new folder's creation
                // waits, saying why, if a file stands there).
                tracing::info!(root = %self.root, path = %t.path, deleted_version = ?t.version, found = ?(m.size, m.mtime), "deleted here but changed on another device since; keeping that version");
            }
            self.index.replaced_settled(&self.root, None, &t.path, &moved)?;
        } else if t.is_dir && self.nothing_to_keep(t) {
            self.delete_objects(&t.path).await?;
            self.index.replaced_settled(&self.root, None, &t.path, &moved)?;
            tracing::debug!(root = %self.root, path = %t.path, "removed a deleted folder holding only folders; the new one there can be created");
        } else {
            let item = t.item();
            let data = self.make_item(&item).await?;
            let kind = if t.is_dir { ObjectKind::Dir } else { ObjectKind::File };
            self.provider.rename(&t.path, &data, kind).await?;
            self.index.replaced_settled(&self.root, Some(&item), &t.path, &moved)?;
            tracing::debug!(root = %self.root, path = %t.orig, id = %t.id, "moved to Trash; the new one there can be uploaded");
        }
        self.trash.drop_paths(&moved);
        self.forget_recent_stats();
        self.made.hurry_tree(&t.path);
        self.uploads.changed.notify_waiters();
        self.uploads.wake.notify_one();
        Ok(())
    }

    /// Whether a tombstone lies below `path` that is not of the deleted tree a new
    /// folder there replaced (those go to the Trash with that one's object).
    pub(crate) fn deleted_below_new(&self, path: &str) -> bool {
        let replaced = self.trash.tombstones().get(path).filter(|t| t.replaced).cloned();
        let Some(t) = replaced else { return self.trash.any_below(path) };
        let old: HashSet<String> = self.old_tree(&t).into_iter().collect();
        let (lo, hi) = crate::index::subtree_bounds(path);
        self.trash.tombstones().range(lo..hi).any(|(k, _)| !old.contains(k))
    }

    /// The tombstones that go with replaced `t`'s object: its own and, for a folder,
    /// those of what was deleted in it before it was. Those deleted later, or moved in
    /// from elsewhere, belong to the new one at its place and stay.
    fn old_tree(&self, t: &Tombstone) -> Vec<String> {
        let (lo, hi) = crate::index::subtree_bounds(&t.path);
        let mut old = vec![t.path.clone()];
        if t.is_dir {
            let below = self.trash.tombstones();
            let inside = |b: &Tombstone| is_below(&b.orig, &t.orig) && b.deleted <= t.deleted;
            old.extend(below.range(lo..hi).filter(|(_, b)| inside(b)).map(|(k, _)| k.clone()));
        }
        old
    }

    /// Before an upload into the trash area: makes the item it belongs to unless it is
    /// on the provider already (one made in the journal, `trash_in_journal`).
    pub(crate) async fn ensure_trash_item(&self, path: &str) -> Result<()> {
        let Some(id) = path.strip_prefix(&format!("{TRASH_DIR}/")).and_then(|rest| rest.split('/').next()) else {
            return Ok(());
        };
        if self.provider.stat(&join(&join(TRASH_DIR, id), "info")).await?.is_some() {
            return Ok(());
        }
        let Some(item) = self.index.trash_items(&self.root)?.into_iter().find(|i| i.id == id) else {
            return Ok(());
        };
        self.make_item(&item).await?;
        Ok(())
    }

    /// Makes trash item `item` with its `info` (written first: an item that has data
    /// always says where it came from). Returns where its data goes.
    async fn make_item(&self, item: &TrashItem) -> Result<String> {
        let item_dir = join(TRASH_DIR, &item.id);
        for dir in [META_DIR, TRASH_DIR, item_dir.as_str()] {
            self.ensure_dir(dir).await?;
        }
        let info = Info {
            path: item.orig.clone(),
            deleted_ns: crate::index::to_ns(item.deleted),
            kind: if item.is_dir { "dir" } else { "file" }.to_owned(),
        };
        let json = serde_json::to_vec(&info).map_err(|e| Error::io("trash info", e.into()))?;
        self.provider.write_all(&join(&item_dir, "info"), json).await?;
        Ok(join(&item_dir, "data"))
    }

    pub(crate) fn drop_tombstones(&self, path: &str) {
        self.trash.drop_tree(path);
    }

    /// Tombstones follow a rename of a folder above them, and those of files renamed
    /// in the journal follow their contents to the new name.
    pub(crate) fn move_tombstones(&self, from: &str, to: &str) -> Result<()> {
        {
            let mut map = self.trash.tombstones();
            let moved: Vec<String> = map.keys().filter(|k| is_below(k, from)).cloned().collect();
            for old in moved {
                if let Some(mut t) = map.remove(&old) {
                    t.path = format!("{to}{}", &old[from.len()..]);
                    map.insert(t.path.clone(), t);
                }
            }
        }
        for t in self.retarget_moved(from, to) {
            self.index.tombstone_add(&self.root, &t)?;
        }
        Ok(())
    }

    /// Files renamed in the journal to `from` or below it now live at `to`: their
    /// tombstones follow (in memory; returns the changed ones, for the index).
    pub(crate) fn retarget_moved(&self, from: &str, to: &str) -> Vec<Tombstone> {
        let mut changed = Vec::new();
        for t in self.trash.tombstones().values_mut() {
            if let Some(dest) = t.moved_to.as_mut()
                && (dest == from || is_below(dest, from))
            {
                *dest = format!("{to}{}", &dest[from.len()..]);
                changed.push(t.clone());
            }
        }
        changed
    }

    async fn ensure_dir(&self, path: &str) -> Result<()> {
        // Never create over an existing folder: an encrypted one would get a new id.
        if self.provider.stat(path).await?.is_none() {
            self.provider.create_dir(path).await?;
            self.forget_recent_stat(path);
        }
        Ok(())
    }

    /// What the Trash holds: deleted items still at their place, and moved ones.
    /// `refresh` first reads the provider's trash area (items another device added
    /// or removed).
    pub async fn trash_entries(&self, refresh: bool) -> Result<Vec<TrashEntry>> {
        if refresh
            && !self.offline_now()
            && let Err(e) = self.refresh_trash().await
        {
            tracing::warn!(root = %self.root, error = %e, "cannot read the provider's Trash; showing what is known");
        }
        let mut tops = self.top_tombstones();
        // A replaced one shows once in the trash area: its path serves the new file.
        tops.retain(|t| t.moved_to.is_none() && !t.replaced && !self.nothing_to_keep(t));
        let pending: HashSet<String> = tops.iter().map(|t| t.id.clone()).collect();
        let mut out: Vec<TrashEntry> = tops
            .into_iter()
            .map(|t| TrashEntry { id: t.id, orig: t.orig, deleted: t.deleted, is_dir: t.is_dir, path: t.path })
            .collect();
        for item in self.index.trash_items(&self.root)? {
            if pending.contains(&item.id) {
                continue;
            }
            let path = join(&join(TRASH_DIR, &item.id), "data");
            out.push(TrashEntry { id: item.id, orig: item.orig, deleted: item.deleted, is_dir: item.is_dir, path });
        }
        Ok(out)
    }

    /// Where the contents of trash item `id` are now.
    pub fn trash_path(&self, id: &str) -> String {
        match self.trash.tombstones().values().find(|t| t.id == id) {
            Some(t) => t.path.clone(),
            None => join(&join(TRASH_DIR, id), "data"),
        }
    }

    async fn refresh_trash(&self) -> Result<()> {
        let listed = match self.provider.list(TRASH_DIR).await {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let known: HashMap<String, TrashItem> =
            self.index.trash_items(&self.root)?.into_iter().map(|i| (i.id.clone(), i)).collect();
        let on_provider: HashSet<&str> =
            listed.iter().filter(|(_, m)| m.kind == ObjectKind::Dir).map(|(n, _)| n.as_str()).collect();
        // An item whose data waits here for its upload (`trash_in_journal`) stays.
        let waiting = |id: &str| self.pending().keys().any(|p| is_below(p, &join(TRASH_DIR, id)));
        for id in known.keys().filter(|id| !on_provider.contains(id.as_str()) && !waiting(id)) {
            self.index.trash_remove(&self.root, id)?;
        }
        for id in on_provider.iter().filter(|id| !known.contains_key(**id)) {
            let info_path = join(&join(TRASH_DIR, id), "info");
            let info = match self.provider.read_all(&info_path).await {
                Ok(bytes) => bytes,
                // Being written by a device right now, or emptied meanwhile.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            match serde_json::from_slice::<Info>(&info) {
                Ok(info) => {
                    let item = TrashItem {
                        id: (*id).to_owned(),
                        orig: info.path,
                        deleted: crate::index::from_ns(info.deleted_ns),
                        is_dir: info.kind == "dir",
                    };
                    self.index.trash_put(&self.root, &item)?;
                }
                Err(e) => {
                    tracing::warn!(root = %self.root, id, error = %e, "unreadable trash item info; item not shown")
                }
            }
        }
        Ok(())
    }

    /// Deletes trash item `id` for good.
    pub async fn trash_delete(&self, id: &str) -> Result<()> {
        let _running = self.trash.running.lock().await;
        self.trash_delete_locked(id).await
    }

    async fn trash_delete_locked(&self, id: &str) -> Result<()> {
        let pending = self.trash.tombstones().values().find(|t| t.id == id).cloned();
        match pending {
            Some(t) => {
                self.delete_for_good(&t.path).await?;
                self.index.tombstones_remove_tree(&self.root, &t.path)?;
                self.drop_tombstones(&t.path);
            }
            None => {
                self.delete_for_good(&join(TRASH_DIR, id)).await?;
                self.index.trash_remove(&self.root, id)?;
            }
        }
        self.uploads.changed.notify_waiters();
        Ok(())
    }

    /// Moves trash item `id` back: to `to`, or where it was deleted from (recreating
    /// missing folders). `replaces` says whether something is at the destination (a
    /// `mv` over it). Returns where it went.
    pub async fn trash_restore(&self, id: &str, to: Option<&str>, replaces: bool) -> Result<String> {
        let _running = self.trash.running.lock().await;
        let pending = self.trash.tombstones().values().find(|t| t.id == id).cloned();
        if let Some(t) = pending {
            // Not moved yet: restoring to where it is just forgets the deletion.
            self.index.tombstones_remove_tree(&self.root, &t.path)?;
            self.drop_tombstones(&t.path);
            let dest = to.unwrap_or(&t.path).to_owned();
            if dest != t.path {
                let kind = if t.is_dir { EntryKind::Dir } else { EntryKind::File };
                self.settle_replaced_above(&dest, true).await?;
                self.rename(&t.path, &dest, kind, replaces).await?;
            }
            self.uploads.changed.notify_waiters();
            return Ok(dest);
        }
        let item = self
            .index
            .trash_items(&self.root)?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| not_found(format!("no item {id} in Trash")))?;
        if self.offline_now() {
            // (Even an item still in the journal: its folder must go from the provider.)
            return Err(crate::journaled_rename::offline(format!(
                "{}: restoring from Trash needs provider {:?}, which is offline; try again when it is back",
                item.orig, self.root
            )));
        }
        let dest = to.unwrap_or(&item.orig).to_owned();
        if to.is_none() {
            if self.stat(&dest).await?.is_some() {
                return Err(Error::Provider(oxidrive_providers::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{dest} exists; move it away first, or restore elsewhere with mv"),
                )));
            }
            self.make_parents(&dest).await?;
        }
        let item_dir = join(TRASH_DIR, id);
        let kind = if item.is_dir { EntryKind::Dir } else { EntryKind::File };
        self.settle_replaced_above(&dest, true).await?;
        self.rename(&join(&item_dir, "data"), &dest, kind, replaces).await?;
        self.delete_for_good(&item_dir).await?;
        self.index.trash_remove(&self.root, id)?;
        if let Some(hook) = self.change_hook.get() {
            hook(&dest);
        }
        Ok(dest)
    }

    /// Creates the missing folders above `path`.
    async fn make_parents(&self, path: &str) -> Result<()> {
        let mut at = String::new();
        let parent = parent_of(path);
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            at = join(&at, part);
            if self.stat(&at).await?.is_none() {
                if self.trash.tombstones().contains_key(&at) {
                    let _ = self.settle_path_locked(&at).await;
                }
                self.provider.create_dir(&at).await?;
                self.forget_recent_stat(&at);
                let ov = Overlay { mtime: Some(SystemTime::now()), ..Overlay::default() };
                self.index.replace(&self.root, &at, &ov)?;
                self.index.remote_put(&self.root, &at, Some(RemoteEntry { is_dir: true, size: 0, mtime: None }))?;
                self.index.remote_set_children(&self.root, &at, &[])?;
                if let Some(hook) = self.change_hook.get() {
                    hook(&at);
                }
            }
        }
        Ok(())
    }

    /// Moves what new names at and above `path` replaced into the trash area, before
    /// something lands there on the provider. `held`: the caller holds the Trash's lock.
    /// Offline (or found unreachable) they wait: the change stays in the journal, or
    /// fails as offline.
    pub(crate) async fn settle_replaced_above(&self, path: &str, held: bool) -> Result<()> {
        for at in self.trash.replaced_at_or_above(path) {
            if self.offline_now() {
                break;
            }
            let settled = if held { self.settle_path_locked(&at).await } else { self.settle_path(&at, false).await };
            match settled {
                Err(Error::Provider(e)) if e.is_unreachable() => self.unreachable(&e),
                other => other?,
            }
        }
        Ok(())
    }

    async fn settle_path_locked(&self, path: &str) -> Result<()> {
        let Some(t) = self.trash.tombstones().get(path).cloned() else { return Ok(()) };
        self.settle_one(&t, true).await
    }

    /// Removes `path` and everything below it from the provider and every local record.
    pub async fn delete_for_good(&self, path: &str) -> Result<()> {
        let _lock = self.locks.lock(&[(path, true)]).await;
        // The pending changes there are discarded whatever the provider says: from
        // memory and from the journal together. (When the provider call below failed,
        // offline, their journal rows stayed, moved with later renames of folders above,
        // and came back at the next mount.) The tombstone stays until the provider has
        // deleted its objects too.
        let gone: Vec<String> = {
            let mut pending = self.pending();
            let gone: Vec<String> = pending.keys().filter(|p| *p == path || is_below(p, path)).cloned().collect();
            for p in &gone {
                if let Some(old) = pending.remove(p) {
                    old.copy.keep(false);
                }
            }
            gone
        };
        for p in &gone {
            self.index.journal_remove(&self.root, p)?;
        }
        // A made folder (and all below it) is not on the provider yet.
        if !self.made.contains(path) {
            self.delete_objects(path).await?;
        }
        self.made.forget_tree(path);
        self.config.copies.invalidate_tree(&self.root, path);
        self.index.remove_tree(&self.root, path)?;
        self.forget_recent_stats();
        self.uploads.changed.notify_waiters();
        Ok(())
    }

    async fn delete_objects(&self, path: &str) -> Result<()> {
        let Some(meta) = self.provider.stat(path).await? else { return Ok(()) };
        if meta.kind != ObjectKind::Dir {
            return Ok(self.provider.delete_file(path).await?);
        }
        for (name, _) in self.provider.list(path).await? {
            Box::pin(self.delete_objects(&join(path, &name))).await?;
        }
        match self.provider.delete_dir(path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Deletes trash items older than the retention.
    async fn purge_expired(&self) -> Result<usize> {
        let Some(cutoff) = self.now().checked_sub(self.config.trash_retention) else { return Ok(0) };
        let _running = self.trash.running.lock().await;
        let mut n = 0;
        for item in self.index.trash_items(&self.root)? {
            if item.deleted < cutoff {
                self.trash_delete_locked(&item.id).await?;
                tracing::info!(root = %self.root, path = %item.orig, "purged from Trash after the retention period");
                n += 1;
            }
        }
        Ok(n)
    }

    /// One round of the background mover: moves deleted items when deletions paused
    /// (or someone waits), purges expired ones now and then.
    async fn trash_tick(&self, last_purge: &mut Option<Instant>) {
        if self.offline_now() {
            return;
        }
        let urgent = self.uploads.urgent.load(Ordering::Acquire) > 0;
        let retry_ok =
            self.trash.retry_at.lock().unwrap_or_else(PoisonError::into_inner).is_none_or(|t| t <= Instant::now());
        let quiet = self
            .trash
            .last_delete
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|t| t.elapsed() >= self.config.write_back);
        let now = self.now();
        let overdue = self
            .trash
            .tombstones()
            .values()
            .any(|t| now.duration_since(t.deleted).is_ok_and(|age| age >= MAX_TRASH_DEFER));
        if self.trash.count() > 0 && (urgent || (retry_ok && (quiet || overdue))) {
            self.settle_all().await;
        }
        if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            match self.purge_expired().await {
                Ok(_) => *last_purge = Some(Instant::now()),
                Err(e) => tracing::warn!(root = %self.root, error = %e, "could not purge expired Trash items"),
            }
        }
    }

    /// The provider answers again: deleted items move as soon as deletions pause, not
    /// after the retry delay of a failure while it was away.
    pub(crate) fn resume_trash(&self) {
        *self.trash.retry_at.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.wake_trash();
    }

    pub(crate) fn wake_trash(&self) {
        self.trash.wake.notify_one();
    }
}

/// The background mover of one store; ends when the store is dropped.
pub(crate) async fn trash_loop(store: std::sync::Weak<Store>) {
    let mut last_purge = None;
    loop {
        let wake = {
            let Some(s) = store.upgrade() else { return };
            s.trash_tick(&mut last_purge).await;
            s.trash.wake.clone()
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
    }
}

pub(crate) fn new_id() -> Result<String> {
    let mut bytes = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::io("trash item id", std::io::Error::other("no randomness")))?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(format!("{stamp:x}-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn not_found(msg: String) -> Error {
    Error::Provider(oxidrive_providers::Error::new(ErrorKind::NotFound, msg))
}
