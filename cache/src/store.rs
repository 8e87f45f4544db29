//! The one interface `vfs` uses to reach a provider root. Reads of files pass through
//! to the provider; file contents written locally are committed to the journal and
//! uploaded in the background (`uploader`), like new folders (`made_dirs`) and
//! symlinks; renames of what the provider holds reach it at once, deletes go through
//! the Trash (`trash`).

use std::collections::{HashMap, HashSet};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use oxidrive_providers::{ErrorKind, META_DIR, ObjectKind, ObjectMeta, Provider, join};

use crate::copies::{Copies, Version, is_below};
use crate::error::{Error, Result};
use crate::index::{Commit, Index, JournalEntry, Overlay, RemoteEntry};
use crate::local_copy::LocalCopy;
use crate::made_dirs::MadeDirs;
use crate::path_locks::PathLocks;
use crate::poller::{ChangeHook, PollState};
use crate::trash::{Clock, TrashState};
use crate::uploader::Uploads;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// A provider object seen through the index. `None` fields take the caller's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub size: u64,
    pub mtime: Option<SystemTime>,
    /// `None`: the mtime is shown.
    pub atime: Option<SystemTime>,
    /// `None` or earlier than the mtime: the mtime is shown.
    pub ctime: Option<SystemTime>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct FsStats {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
}

/// Where local copies live and how uploads are paced; shared by all roots.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub copies: Arc<Copies>,
    /// How long a committed change waits before upload, so repeated saves coalesce.
    pub write_back: Duration,
    /// Trash items older than this are deleted for good.
    pub trash_retention: Duration,
    pub clock: Clock,
}

/// A file whose newest contents are in a local copy, committed to the journal and not
/// yet (completely) on the provider.
#[derive(Debug)]
pub(crate) struct Pending {
    pub copy: Arc<LocalCopy>,
    pub entry: JournalEntry,
    /// `copy.generation()` when committed: a different value means it changed since.
    pub committed_gen: u64,
    pub committed_at: Instant,
    pub uploading: bool,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    /// A new file not in the index yet: its attributes, written with its first commit.
    /// Until then it is not in the journal either, and not uploaded.
    pub created: Option<Overlay>,
}

pub struct Store {
    pub(crate) root: String,
    pub(crate) provider: Provider,
    pub(crate) index: Arc<Index>,
    pub(crate) config: StoreConfig,
    /// Pending files by path. Lock order: a leaf, never held across an `.await`.
    pub(crate) pending: Mutex<HashMap<String, Pending>>,
    pub(crate) locks: PathLocks,
    pub(crate) uploads: Arc<Uploads>,
    /// What the provider said of a path in the last second (the kernel's attribute
    /// timeout): a listing answers the lookups of every name in it.
    pub(crate) recent: moka::sync::Cache<String, Option<RemoteEntry>>,
    /// Folders whose whole listing is that recent, or that we made that recently: a
    /// name missing from them is absent without asking (a `tar x` or `cp -r` looks up
    /// every name before creating it).
    pub(crate) listed: moka::sync::Cache<String, ()>,
    /// Bumped by every change of ours that `recent` must forget: a listing that
    /// overlapped one is not trusted for absent names.
    pub(crate) recent_gen: AtomicU64,
    pub(crate) change_hook: OnceLock<ChangeHook>,
    pub(crate) poll_state: Mutex<PollState>,
    pub(crate) poll_running: tokio::sync::Mutex<()>,
    /// Conflict copies made during this run (their state reads "conflict").
    pub(crate) conflicts: Mutex<std::collections::HashSet<String>>,
    pub(crate) trash: TrashState,
    /// Sequential readers of files too big for the read cache.
    pub(crate) streams: crate::streams::Streams,
    /// Folders made here, not yet on the provider (`made_dirs`).
    pub(crate) made: MadeDirs,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish_non_exhaustive()
    }
}

impl Store {
    /// `root` keys this store's rows in the shared index (the provider's configured name).
    /// Picks up the changes an earlier run committed and did not upload.
    pub fn new(root: &str, provider: Provider, index: Arc<Index>, config: StoreConfig) -> Result<Self> {
        let mut pending = HashMap::new();
        for (path, entry) in index.journal(root)? {
            // A small file's committed contents are in the journal (its copy file was
            // not synced, so it may be torn or gone): the copy is written again from them.
            let copy = match index.journal_inline(root, &path)? {
                Some(image) => config.copies.restore(&entry.copy, entry.size, &image),
                None => config.copies.open(&entry.copy, entry.size),
            };
            match copy {
                Ok(copy) => {
                    tracing::info!(root, path = %path, size = entry.size, "resuming upload of a change from an earlier run");
                    pending.insert(path, Pending::committed(Arc::new(copy), entry, config.write_back));
                }
                Err(e) => {
                    tracing::error!(root, path = %path, error = %e, "a committed change lost its local copy; it cannot be uploaded");
                    index.journal_remove(root, &path)?;
                }
            }
        }
        let made_dirs = index.made_dirs(root)?;
        let trash = TrashState::load(&index, root, |p| pending.contains_key(p) || made_dirs.iter().any(|d| d == p))?;
        let made = MadeDirs::load(made_dirs);
        Ok(Self {
            trash,
            made,
            root: root.to_owned(),
            provider,
            index,
            config,
            pending: Mutex::new(pending),
            locks: PathLocks::default(),
            uploads: Arc::new(Uploads::default()),
            recent: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(RECENT_TTL).build(),
            listed: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(RECENT_TTL).build(),
            recent_gen: Default::default(),
            change_hook: OnceLock::new(),
            poll_state: Mutex::new(PollState::default()),
            poll_running: tokio::sync::Mutex::new(()),
            conflicts: Mutex::new(Default::default()),
            streams: Default::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.root
    }

    /// While a poll's mass deletion is held, the provider's view is not trusted: names
    /// and attributes come from the mirror, as when offline.
    pub(crate) fn holding_deletes(&self) -> bool {
        self.held_deletes() > 0
    }

    /// Our own change of `path` makes the last answer about it stale.
    pub(crate) fn forget_recent_stat(&self, path: &str) {
        self.recent_gen.fetch_add(1, Ordering::AcqRel);
        self.recent.invalidate(path);
        self.listed.invalidate(parent_of(path));
        self.listed.invalidate(path);
    }

    /// After a change of a whole tree: answers about anything below it are stale too.
    pub(crate) fn forget_recent_stats(&self) {
        self.recent_gen.fetch_add(1, Ordering::AcqRel);
        self.recent.invalidate_all();
        self.listed.invalidate_all();
    }

    /// `Index::sync` on a blocking thread: the caller may be one of the few threads
    /// serving the mount's requests, and a sync can take seconds under heavy I/O.
    pub async fn sync_index(&self) -> Result<()> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.sync())
            .await
            .map_err(|e| Error::io("sync the metadata index", std::io::Error::other(e)))?
    }

    pub(crate) fn pending(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn pending_copy(&self, path: &str) -> Option<Arc<LocalCopy>> {
        self.pending().get(path).map(|p| p.copy.clone())
    }

    /// What is at `path`; nothing if it (or a folder above it) was deleted.
    pub async fn stat(&self, path: &str) -> Result<Option<Entry>> {
        if self.is_trashed(path) {
            return Ok(None);
        }
        self.stat_any(path).await
    }

    /// `stat`, deleted names included (the Trash view reads them).
    pub async fn stat_any(&self, path: &str) -> Result<Option<Entry>> {
        self.touched(parent_of(path));
        let pending = self.pending().get(path).map(|p| (p.copy.clone(), p.created.clone()));
        if let Some((copy, created)) = pending {
            let ov = match created {
                Some(ov) => Some(ov),
                None => self.index.get(&self.root, path)?,
            };
            return Ok(Some(pending_entry(&copy, ov.as_ref())?));
        }
        if self.made.contains(path) {
            return self.made_entry(path).map(Some);
        }
        let Some(meta) = self.remote_stat(path).await? else { return Ok(None) };
        let ov = self.index.get(&self.root, path)?;
        Ok(Some(merge(&meta, ov.as_ref())))
    }

    /// The provider's answer, recorded in the mirror; the mirror's while it is offline.
    async fn remote_stat(&self, path: &str) -> Result<Option<RemoteEntry>> {
        // The top folder always exists (a store whose folder vanished fails listings);
        // asking would prove nothing either: many services answer it without a request.
        if path.is_empty() {
            return Ok(Some(RemoteEntry { is_dir: true, size: 0, mtime: None }));
        }
        if let Some(entry) = self.recent.get(path) {
            return Ok(entry);
        }
        // Nothing in a folder made here is on the provider yet.
        if self.made.contains(parent_of(path)) {
            return Ok(None);
        }
        if self.listed.contains_key(parent_of(path)) {
            // The folder's listing is that recent (or the folder ours): the mirror has
            // every name in it, and those our own changes added since.
            return self.index.remote_get(&self.root, path);
        }
        if !self.offline_now() && !self.holding_deletes() {
            // With a recorded answer to fall back on, a slow or hung provider gets a
            // moment, not the full timeout: the record is at most one poll old.
            let known = self.mirror_stat(path)?;
            let asked = match known {
                Some(_) => tokio::time::timeout(PATIENCE, self.provider.stat(path)).await,
                None => Ok(self.provider.stat(path).await),
            };
            let Ok(answer) = asked else {
                tracing::debug!(root = %self.root, path, "provider slow to answer; using the recorded attributes");
                return Ok(known.flatten());
            };
            match answer {
                Ok(meta) => {
                    self.reached();
                    let entry = meta.map(|m| remote_entry(&m));
                    // `known` is the mirror's record: write only what changed.
                    if known.flatten() != entry {
                        self.index.remote_put(&self.root, path, entry)?;
                    }
                    self.recent.insert(path.to_owned(), entry);
                    return Ok(entry);
                }
                Err(e) if e.is_unreachable() => self.unreachable(&e),
                Err(e) => return Err(e.into()),
            }
        }
        self.mirror_stat(path)?.ok_or_else(|| self.offline_error(path))
    }

    /// What the mirror knows of `path`: `Some(None)` when it is known absent (its folder
    /// was listed without it), `None` when nothing is known.
    fn mirror_stat(&self, path: &str) -> Result<Option<Option<RemoteEntry>>> {
        Ok(match self.index.remote_get(&self.root, path)? {
            Some(entry) => Some(Some(entry)),
            None if self.index.remote_listed(&self.root, parent_of(path))? => Some(None),
            None => None,
        })
    }

    /// The provider's listing of `dir`, recorded in the mirror; the mirror's while it is
    /// offline (if `dir` was listed before).
    async fn remote_list(&self, dir: &str) -> Result<Vec<(String, RemoteEntry)>> {
        if !self.offline_now() && !self.holding_deletes() {
            let gen_before = self.recent_gen.load(Ordering::Acquire);
            let known = self.index.remote_children(&self.root, dir)?;
            let asked = match &known {
                Some(_) => tokio::time::timeout(PATIENCE * 2, self.provider.list(dir)).await,
                None => Ok(self.provider.list(dir).await),
            };
            let Ok(answer) = asked else {
                tracing::debug!(root = %self.root, dir, "provider slow to list; using the recorded listing");
                return Ok(known.unwrap_or_default());
            };
            match answer {
                Ok(objects) => {
                    self.reached();
                    let entries: Vec<(String, RemoteEntry)> =
                        objects.into_iter().map(|(n, m)| (n, remote_entry(&m))).collect();
                    self.index.remote_set_children(&self.root, dir, &entries)?;
                    self.remember_listing(dir, &entries, gen_before);
                    return Ok(entries);
                }
                Err(e) if e.is_unreachable() => self.unreachable(&e),
                Err(e) => return Err(e.into()),
            }
        }
        self.index.remote_children(&self.root, dir)?.ok_or_else(|| self.offline_error(dir))
    }

    /// Keeps a listing's answers for the stats and listings that follow, unless a change
    /// came while the provider was asked (`recent_gen` is no longer `asked_at`): a name
    /// deleted or renamed meanwhile must not come back from the older answer. Checked
    /// again after, for a change landing between the check and the inserts.
    fn remember_listing(&self, dir: &str, entries: &[(String, RemoteEntry)], asked_at: u64) {
        let unchanged = || self.recent_gen.load(Ordering::Acquire) == asked_at;
        if !unchanged() {
            return;
        }
        for (name, entry) in entries {
            self.recent.insert(join(dir, name), Some(*entry));
        }
        self.listed.insert(dir.to_owned(), ());
        if !unchanged() {
            for (name, _) in entries {
                self.recent.invalidate(&join(dir, name));
            }
            self.listed.invalidate(dir);
        }
    }

    /// Records the provider's listing of the top folder in the mirror (for working
    /// offline), without making it count as a recent listing.
    pub(crate) async fn record_top_listing(&self) -> Result<()> {
        let objects = self.provider.list("").await?;
        let entries: Vec<(String, RemoteEntry)> = objects.into_iter().map(|(n, m)| (n, remote_entry(&m))).collect();
        self.index.remote_set_children(&self.root, "", &entries)
    }

    /// The names in `dir`, deleted ones (and oxidrive's own folder) left out.
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, Entry)>> {
        let mut attempt = 1;
        loop {
            let seen = self.trash.dropped();
            let mut entries = self.list_any(dir).await?;
            if dir.is_empty() {
                entries.retain(|(name, _)| name != META_DIR);
            }
            if self.trash.count() > 0 {
                entries.retain(|(name, _)| !self.is_trashed(&join(dir, name)));
            }
            if self.trash.dropped() == seen {
                return Ok(entries);
            }
            // Tombstones went while the provider was asked: their objects were removed
            // or moved to the Trash first, so the older answer may show those names,
            // which nothing hides any more. They are left out (a new file or folder
            // made there since stays; one another device changed after it was deleted
            // here, and which stays, shows from the next listing on).
            match self.trash.dropped_since(seen) {
                Some(gone) => {
                    let gone: HashSet<String> = gone.into_iter().collect();
                    let mut above = dir;
                    let mut all_gone = false;
                    while !above.is_empty() && !all_gone {
                        all_gone = gone.contains(above);
                        above = parent_of(above);
                    }
                    entries.retain(|(name, _)| {
                        let path = join(dir, name);
                        !(all_gone || gone.contains(&path))
                            || self.pending().contains_key(&path)
                            || self.made.contains(&path)
                    });
                    return Ok(entries);
                }
                None if attempt < LIST_ATTEMPTS => attempt += 1,
                None => return Ok(entries),
            }
        }
    }

    /// `list`, deleted names included (the Trash view lists inside deleted folders).
    pub async fn list_any(&self, dir: &str) -> Result<Vec<(String, Entry)>> {
        self.touched(dir);
        // Taken before listing the provider: a file whose upload finishes meanwhile is
        // then in this snapshot or in the listing, never in neither.
        let pending: Vec<(String, Arc<LocalCopy>, Option<Overlay>)> = self
            .pending()
            .iter()
            .filter(|(path, _)| parent_of(path) == dir)
            .map(|(path, p)| (name_of(path).to_owned(), p.copy.clone(), p.created.clone()))
            .collect();
        let made = self.made.children(dir);
        let objects = if self.made.contains(dir) { Vec::new() } else { self.remote_list(dir).await? };
        let overlays: HashMap<String, Overlay> = self.index.children(&self.root, dir)?.into_iter().collect();
        let mut entries: Vec<(String, Entry)> = objects
            .into_iter()
            .map(|(name, meta)| {
                let entry = merge(&meta, overlays.get(&name));
                (name, entry)
            })
            .collect();
        // Files waiting for upload show with their local contents, new ones included.
        let pending_names: HashSet<String> = pending.iter().map(|(name, ..)| name.clone()).collect();
        for (name, copy, created) in pending {
            let entry = pending_entry(&copy, created.as_ref().or(overlays.get(&name)))?;
            match entries.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = entry,
                None => entries.push((name, entry)),
            }
        }
        // A made folder also stands over a deleted file the provider still shows; a
        // new file over a deleted made folder stands over it (as `stat_any` says).
        for path in made {
            let name = name_of(&path).to_owned();
            if pending_names.contains(&name) {
                continue;
            }
            let entry = self.made_entry(&path)?;
            match entries.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = entry,
                None => entries.push((name, entry)),
            }
        }
        Ok(entries)
    }

    /// A working copy closed without changes (opened for writing, nothing written): it
    /// still holds the version it started from, so it goes back to the cache instead
    /// of being dropped (offline, nothing could fetch it again). The caller's file was
    /// its last user.
    pub fn keep_clean_copy(&self, path: &str, copy: Arc<LocalCopy>) -> Result<()> {
        if self.pending().contains_key(path) {
            return Ok(());
        }
        let Some(version) = self.current_version(path)? else { return Ok(()) };
        if copy.base() != Some(version) || copy.len()? != version.0 {
            return Ok(());
        }
        if self.config.copies.cached(&self.root, path, version)?.is_some() {
            return Ok(());
        }
        self.config.copies.adopt(&self.root, path, copy, version)
    }

    /// A new empty local copy (for contents that are about to be replaced whole).
    pub fn new_copy(&self) -> Result<Arc<LocalCopy>> {
        Ok(Arc::new(self.config.copies.create_small()?))
    }

    /// A new empty local copy to replace `path`'s contents whole (a truncating open). It
    /// still starts from the version shown until now, so that a change made elsewhere
    /// meanwhile becomes a conflict instead of being overwritten.
    pub fn replacement_copy(&self, path: &str) -> Result<Arc<LocalCopy>> {
        let copy = self.new_copy()?;
        let base = match self.pending().get(path) {
            Some(p) => p.entry.base,
            None => self.current_version(path)?,
        };
        copy.set_base(base);
        Ok(copy)
    }

    /// A local copy holding the file's current contents, to change: the pending one if
    /// the newest contents are not uploaded yet, else the cached copy if it holds all
    /// of the current version, else a fresh download.
    pub async fn open_copy(&self, path: &str) -> Result<Arc<LocalCopy>> {
        if let Some(copy) = self.pending_copy(path) {
            return Ok(copy);
        }
        let version = self.current_version(path)?;
        if let Some(version) = version
            && let Some(copy) = self.config.copies.take_complete(&self.root, path, version)?
        {
            copy.set_base(Some(version));
            return Ok(copy);
        }
        if self.offline_now() {
            return Err(self.offline_error(path));
        }
        let copy = self.new_copy()?;
        let size = self.provider.download(path, &*copy).await.inspect_err(|e| {
            if e.is_unreachable() {
                self.unreachable(e);
            }
        })?;
        // A short download must not leave stale length: the copy is exactly the object.
        copy.set_len(size)?;
        copy.set_base(version);
        Ok(copy)
    }

    /// Makes `copy` the file's committed contents: synced to local disk and recorded in
    /// the journal before this returns (so it survives a crash or power cut), uploaded
    /// later. The `mtime`, `mode`, `uid` and `gid` set in `attrs` become the file's, in
    /// the same transaction (its other fields are ignored); the file counts as recent.
    pub fn commit(&self, path: &str, copy: &Arc<LocalCopy>, attrs: &Overlay) -> Result<()> {
        let generation = copy.generation();
        // A small file's contents go into the journal transaction below, which is
        // synced anyway: no second sync (of the copy file) on this close.
        let inline = copy.inline_image()?;
        let size = match &inline {
            Some((len, _)) => *len,
            None => {
                copy.sync()?;
                copy.len()?
            }
        };
        // From now on the journal has this file: it is not a clean cached copy any more.
        self.config.copies.forget(&self.root, path)?;
        // Its upload will touch the provider's folder; the folder's time shown here must
        // not jump then, so it is pinned to what it shows now.
        let parent = parent_of(path);
        if self.index.get(&self.root, parent)?.is_none_or(|ov| ov.mtime.is_none())
            && let Some(shown) = self.index.remote_get(&self.root, parent)?.and_then(|r| r.mtime)
        {
            self.index.update(&self.root, parent, |ov| ov.mtime = Some(shown))?;
        }
        let mut pending = self.pending();
        let is_new = pending.get(path).is_some_and(|p| p.entry.is_new);
        let created = pending.get(path).and_then(|p| p.created.clone());
        let id = copy.id().hex();
        let commit = Commit {
            copy: &id,
            size,
            is_new,
            base: copy.base(),
            attrs,
            recent: Some(SystemTime::now()),
            inline: inline.as_ref().map(|(_, image)| image.as_slice()),
            created: created.as_ref(),
        };
        // Synced below, once the pending set is unlocked: listings need it meanwhile.
        let entry = self.index.journal_commit(&self.root, path, &commit)?;
        copy.keep(true);
        let mut fresh = Pending::committed(copy.clone(), entry, Duration::ZERO);
        fresh.committed_gen = generation;
        if let Some(old) = pending.insert(path.to_owned(), fresh) {
            if !Arc::ptr_eq(&old.copy, copy) {
                old.copy.keep(false);
            }
            // An upload of the old copy may still be running; it will see the newer seq.
            if let Some(p) = pending.get_mut(path) {
                p.uploading = old.uploading;
            }
        }
        drop(pending);
        self.uploads.wake.notify_one();
        self.index.sync()
    }

    /// Creates an empty file, locally: the provider sees it with its first upload.
    /// Returns the copy that holds its contents.
    ///
    /// Nothing is written to the index before the file's first commit, which records
    /// its creation in the same transaction (an untar's file costs one transaction, not
    /// two): its attributes, its folder's mtime (the creation time) and its place in
    /// Recents. Until a close or fsync it may vanish in a crash, like its contents.
    /// Only when records of an earlier file or folder of that name remain are they
    /// replaced at once.
    pub fn create_file(&self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<Arc<LocalCopy>> {
        let ov = Overlay {
            mode: Some(mode),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(SystemTime::now()),
            ..Overlay::default()
        };
        self.create_with(path, ov)
    }

    /// `create_file` with the new file's attributes `ov`.
    fn create_with(&self, path: &str, ov: Overlay) -> Result<Arc<LocalCopy>> {
        self.provider.check_name(path)?;
        let copy = self.new_copy()?;
        let absorbed = self.trash.moved_tombstone(path).map(|t| t.version);
        if absorbed.is_some() {
            self.forget_moved_tombstone(path)?;
        }
        let (mut entry, created) = if self.index.has_tree(&self.root, path)? {
            // One transaction, not synced (see above).
            (self.index.journal_create(&self.root, path, &ov, &copy.id().hex())?, None)
        } else {
            let entry = JournalEntry {
                seq: 0,
                copy: copy.id().hex(),
                size: 0,
                is_new: true,
                since: SystemTime::now(),
                base: None,
            };
            (entry, Some(ov))
        };
        if let Some(base) = absorbed {
            // It replaces the object a file renamed away in the journal left here.
            entry.is_new = false;
            entry.base = base;
            copy.set_base(base);
            if created.is_none() {
                self.index.journal_set_state(&self.root, path, false, base)?;
            }
        }
        copy.keep(true);
        // Only a journaled file is the uploader's (each wake scans every pending file).
        let journaled = created.is_none();
        let mut pending = Pending::committed(copy.clone(), entry, Duration::ZERO);
        pending.created = created;
        if let Some(old) = self.pending().insert(path.to_owned(), pending) {
            old.copy.keep(false);
        }
        if journaled {
            self.uploads.wake.notify_one();
        }
        Ok(copy)
    }

    /// A symlink is stored as a small object holding its target, marked in the index.
    /// It is a new file committed at once: journaled, uploaded later like any other.
    pub fn symlink(&self, path: &str, target: &str, uid: u32, gid: u32) -> Result<()> {
        let ov = Overlay {
            mode: Some(0o777),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(SystemTime::now()),
            symlink: Some(target.to_owned()),
            ..Overlay::default()
        };
        let copy = self.create_with(path, ov)?;
        copy.write_at(0, target.as_bytes())?;
        self.commit(path, &copy, &Overlay::default())
    }

    pub async fn readlink(&self, path: &str) -> Result<String> {
        if let Some(target) = self.index.get(&self.root, path)?.and_then(|o| o.symlink) {
            return Ok(target);
        }
        let bytes = self.provider.read_all(path).await?;
        String::from_utf8(bytes)
            .map_err(|_| Error::io(format!("readlink {path}"), std::io::ErrorKind::InvalidData.into()))
    }

    /// Deletes a file for good (`delete` sends what the provider holds to the Trash
    /// instead). One never uploaded is only forgotten: the provider never sees it.
    pub(crate) async fn remove_file(&self, path: &str) -> Result<()> {
        let _lock = self.locks.lock(&[(path, false)]).await;
        let pending_new = self.pending().get(path).map(|p| p.entry.is_new);
        if pending_new != Some(true) {
            match self.provider.delete_file(path).await {
                Err(e) if pending_new.is_some() && e.kind() == ErrorKind::NotFound => {}
                other => other?,
            }
        }
        self.forget_recent_stat(path);
        if let Some(old) = self.pending().remove(path) {
            old.copy.keep(false);
        }
        self.config.copies.forget(&self.root, path)?;
        self.index.remove_tree(&self.root, path)?;
        // A file deleted here before, still on the provider, is hidden again.
        self.mark_replaced(path, false)?;
        self.uploads.changed.notify_waiters();
        Ok(())
    }

    /// Renames a file or directory. `replaces` says whether something is at `to`.
    pub async fn rename(&self, from: &str, to: &str, kind: EntryKind, replaces: bool) -> Result<()> {
        let renamed = self.rename_now(from, to, kind, replaces).await;
        if renamed.is_err() && !self.pending().contains_key(to) && !self.made.contains(to) {
            // Made way for a name that did not come: a file deleted there is hidden again.
            self.mark_replaced(to, false)?;
        }
        renamed
    }

    async fn rename_now(&self, from: &str, to: &str, kind: EntryKind, replaces: bool) -> Result<()> {
        // Onto a new file over a deleted one, into a new folder over a deleted one, or
        // of such a folder: the deleted one goes to the Trash first if it can (before
        // the path locks, which its settling takes after the Trash's own).
        Box::pin(self.settle_replaced_above(to, false)).await?;
        if kind == EntryKind::Dir {
            Box::pin(self.settle_replaced_above(from, false)).await?;
        }
        let _lock = self.locks.lock(&[(from, true), (to, true)]).await;
        if kind == EntryKind::Dir && self.trash.is_replaced(from) {
            return Err(self.replaced_dir_offline(from));
        }
        // Onto the old name of a file renamed away in the journal: replacing its object.
        let absorbed = if kind == EntryKind::Dir { None } else { self.trash.moved_tombstone(to).map(|t| t.version) };
        let replaces = replaces || absorbed.is_some();
        // A folder replaced the provider never had (a made one) or no longer has (moved
        // to the Trash just before) leaves the place free there.
        let to_free = !replaces
            || (kind == EntryKind::Dir
                && self.index.remote_get(&self.root, to)?.is_none()
                && !self.trash.tombstones().contains_key(to));
        // Nothing of a new file or of a made folder is on the provider: renaming them
        // is the journal's alone (a made folder over an old one waits for its creation).
        let pending_new = match kind {
            EntryKind::Dir => to_free && self.made.contains(from),
            _ => self.pending().get(from).is_some_and(|p| p.entry.is_new),
        };
        // Renamed over something the provider may hold: no longer "nothing there".
        let over_remote = replaces && self.pending().get(to).is_none_or(|p| !p.entry.is_new);
        if replaces && kind != EntryKind::Dir {
            self.config.copies.forget(&self.root, to)?;
        }
        if kind == EntryKind::Dir {
            self.check_names_below(from, to)?;
        }
        // A new file renamed over what the provider holds replaces that object: its
        // upload must find the version known here (or it would overwrite another
        // device's edit unchecked, and a later delete would not know what it deletes).
        let replaced = match absorbed {
            Some(version) => Some(version),
            None if pending_new && over_remote => Some(self.replaced_version(to)?),
            None => None,
        };
        let journaled = if pending_new {
            // Nothing of it is on the provider yet: the rename is the journal's alone.
            self.provider.check_name(to)?;
            self.index.rename_tree_with(&self.root, from, to, over_remote, None)?;
            None
        } else if kind == EntryKind::Dir && to_free && self.found_offline(from).await {
            // Asked first, not as a fallback when the provider fails during its own
            // rename: that may have moved part of the folder already.
            return self.rename_dir_in_journal(from, to).await;
        } else {
            self.rename_held(from, to, kind, over_remote, absorbed).await?
        };
        if absorbed.is_some() {
            self.forget_moved_tombstone(to)?;
        }
        self.move_pending(from, to, over_remote);
        match journaled {
            Some(moved) => self.journaled_moved(to, moved),
            None if pending_new && let Some(base) = replaced => {
                if let Some(p) = self.pending().get_mut(to) {
                    p.set_base(base);
                }
                self.index.journal_set_base(&self.root, to, base)?;
            }
            None => {}
        }
        self.made.rename(from, to);
        self.move_tombstones(from, to)?;
        if kind == EntryKind::Dir && !pending_new && self.provider.renames_folders_by_copy() {
            // Renamed on the provider (a journaled folder rename returned above), under
            // the rename's locks: no upload or deletion below runs meanwhile. If this
            // fails only the records lag (the folder is renamed), as after a crash.
            if let Err(e) = self.rebase_renamed_tree(to).await {
                tracing::warn!(root = %self.root, from, to, error = %e, "renamed the folder, but could not record its files' new versions");
            }
        }
        // A file deleted here before, still on the provider, is hidden again.
        self.mark_replaced(from, false)?;
        self.forget_recent_stats();
        self.config.copies.invalidate_tree(&self.root, from);
        self.config.copies.invalidate_tree(&self.root, to);
        self.uploads.wake.notify_one();
        Ok(())
    }

    /// A folder made over a deleted one cannot be renamed offline: what was deleted
    /// inside the old folder stays at its path on the provider.
    pub(crate) fn replaced_dir_offline(&self, from: &str) -> Error {
        tracing::error!(root = %self.root, from, "cannot rename a folder made over a deleted one while its provider is offline");
        crate::journaled_rename::offline(format!(
            "{from}: renaming a folder made where one was deleted needs provider {:?}, which is offline; \
             try again when it is back",
            self.root
        ))
    }

    /// Refuses, before anything changes, a rename to a name the provider refuses (for a
    /// folder, also one that would give what waits below it such a name). The caller
    /// may replace what is at `to` first, which a refusal afterwards could not undo.
    pub fn check_rename(&self, from: &str, to: &str, kind: EntryKind) -> Result<()> {
        self.provider.check_name(to)?;
        if kind == EntryKind::Dir {
            self.check_names_below(from, to)?;
        }
        Ok(())
    }

    /// Refuses a folder's rename that would give what waits below it here (pending
    /// files, made folders) a name the provider refuses (a path too long): their
    /// uploads would fail for good.
    fn check_names_below(&self, from: &str, to: &str) -> Result<()> {
        let mut below: Vec<String> = self.pending().keys().filter(|p| is_below(p, from)).cloned().collect();
        below.extend(self.made.below(from));
        for path in below {
            self.provider.check_name(&format!("{to}{}", &path[from.len()..]))?;
        }
        Ok(())
    }

    /// Moves the pending files at and below `from` to `to`, dropping those at `to`.
    pub(crate) fn move_pending(&self, from: &str, to: &str, over_remote: bool) {
        let mut pending = self.pending();
        let replaced: Vec<String> = pending.keys().filter(|p| *p == to || is_below(p, to)).cloned().collect();
        for path in replaced {
            if let Some(old) = pending.remove(&path) {
                old.copy.keep(false);
            }
        }
        let moved: Vec<String> = pending.keys().filter(|p| *p == from || is_below(p, from)).cloned().collect();
        for path in moved {
            if let Some(mut p) = pending.remove(&path) {
                // An upload that was waiting for this lock finds nothing at the old path.
                p.uploading = false;
                if path == from && over_remote {
                    p.entry.is_new = false;
                }
                pending.insert(format!("{to}{}", &path[from.len()..]), p);
            }
        }
    }

    /// Finishes or forgets renames a crash interrupted (recorded before they started):
    /// a rename the provider does as copy + delete may have left both names. Runs
    /// before any upload, which could otherwise go to the old name.
    pub(crate) async fn recover_renames(&self) -> Result<()> {
        for (from, to, is_dir) in self.index.rename_intents(&self.root)? {
            let (at_from, at_to) = (self.provider.stat(&from).await?, self.provider.stat(&to).await?);
            match (at_from.is_some(), at_to.is_some()) {
                // Copied, not yet deleted: the copy is complete (writes are atomic).
                (true, true) if !is_dir => {
                    self.provider.delete_file(&from).await?;
                    self.finish_rename(&from, &to)?;
                    self.rebase_renamed(&to, &to, false).await?;
                }
                (true, true) => tracing::warn!(root = %self.root, from, to,
                    "a folder rename was interrupted; both folders are kept, check them"),
                (false, true) => {
                    self.finish_rename(&from, &to)?;
                    if !is_dir {
                        self.rebase_renamed(&to, &to, false).await?;
                    }
                }
                // Never started (or nothing to move): the rename did not happen.
                _ => {}
            }
            tracing::info!(root = %self.root, from, to, "resolved a rename interrupted by a crash");
            self.index.rename_intent_done(&self.root, &from)?;
        }
        Ok(())
    }

    /// Moves the local records of a rename the provider finished. Nothing at `from`
    /// means they moved already (the crash came after): then `to` must stay as it is.
    fn finish_rename(&self, from: &str, to: &str) -> Result<()> {
        let pending_here = self.pending().keys().any(|p| p == from || is_below(p, from));
        if !pending_here && !self.index.has_tree(&self.root, from)? {
            return Ok(());
        }
        self.index.rename_tree(&self.root, from, to)?;
        self.move_pending(from, to, true);
        self.move_tombstones(from, to)?;
        Ok(())
    }

    pub(crate) async fn rename_on_provider(&self, from: &str, to: &str, kind: EntryKind) -> Result<()> {
        let object_kind = if kind == EntryKind::Dir { ObjectKind::Dir } else { ObjectKind::File };
        // Providers that rewrite a file to rename it (encrypted, or copy + delete) give
        // it a new provider mtime; keep recognising it as ours if it was before.
        let ours_before = match kind {
            EntryKind::Dir => false,
            _ => match (self.index.get(&self.root, from)?, self.provider.stat(from).await?) {
                (Some(ov), Some(meta)) => ov.remote == Some((meta.mtime, meta.size)),
                _ => false,
            },
        };
        // Recorded first: a crash in the middle is finished (or undone) at the next start.
        self.index.rename_intent(&self.root, from, to, kind == EntryKind::Dir)?;
        if let Err(e) = self.provider.rename(from, to, object_kind).await {
            self.index.rename_intent_done(&self.root, from)?;
            return Err(e.into());
        }
        if kind == EntryKind::Dir {
            return self.index.rename_tree_with(&self.root, from, to, false, Some(from));
        }
        self.index.rename_tree_with(&self.root, from, to, false, None)?;
        // The intent stays until the pending change is rebased on the renamed object: a
        // crash before that is finished at the next start (`recover_renames` rebases),
        // instead of leaving an old base that makes the upload see a conflict.
        let rebased = self.rebase_renamed(from, to, ours_before).await;
        self.index.rename_intent_done(&self.root, from)?;
        rebased
    }

    /// The recorded overlay of a path, if any.
    pub fn overlay(&self, path: &str) -> Result<Option<Overlay>> {
        self.index.get(&self.root, path)
    }

    /// Changes the mode, owner and times kept in the index (`None` fields stay as
    /// recorded); the ctime becomes now. Times set on a file apply to the provider's
    /// object as it is now, until someone else changes it (`merge`).
    pub fn set_attrs(&self, path: &str, set: &Overlay) -> Result<()> {
        // (A pending change's upload records the object it makes.)
        let object = match set.mtime.or(set.atime) {
            Some(_) if !self.pending().contains_key(path) => {
                self.index.remote_get(&self.root, path)?.filter(|r| !r.is_dir)
            }
            _ => None,
        };
        self.index.update(&self.root, path, |ov| {
            ov.mode = set.mode.or(ov.mode);
            ov.uid = set.uid.or(ov.uid);
            ov.gid = set.gid.or(ov.gid);
            ov.mtime = set.mtime.or(ov.mtime);
            ov.atime = set.atime.or(ov.atime);
            ov.ctime = Some(SystemTime::now());
            if let Some(r) = object {
                ov.remote = Some((r.mtime, r.size));
            }
        })
    }

    /// Notes that a file was just created or written (the Recents view).
    pub fn touch_recent(&self, path: &str) -> Result<()> {
        self.index.recent_touch(&self.root, path, SystemTime::now())
    }

    pub fn recents(&self, limit: usize) -> Result<Vec<(String, SystemTime)>> {
        self.index.recent_list(&self.root, limit)
    }

    pub fn forget_recent(&self, path: &str) -> Result<()> {
        self.index.recent_remove(&self.root, path)
    }

    pub fn xattr_get(&self, path: &str, name: &str) -> Result<Option<Vec<u8>>> {
        self.index.xattr_get(&self.root, path, name)
    }

    pub fn xattr_list(&self, path: &str) -> Result<Vec<String>> {
        self.index.xattr_list(&self.root, path)
    }

    pub fn xattr_set(&self, path: &str, name: &str, value: &[u8]) -> Result<()> {
        self.index.xattr_set(&self.root, path, name, value)
    }

    pub fn xattr_remove(&self, path: &str, name: &str) -> Result<bool> {
        self.index.xattr_remove(&self.root, path, name)
    }

    /// Space where local state lives (the local copies); what `df` on the mount shows.
    pub fn statfs(&self) -> Result<FsStats> {
        let st = nix::sys::statvfs::statvfs(self.config.copies.dir())
            .map_err(|e| Error::io("statvfs", std::io::Error::from_raw_os_error(e as i32)))?;
        Ok(FsStats {
            blocks: st.blocks(),
            bfree: st.blocks_free(),
            bavail: st.blocks_available(),
            files: st.files(),
            ffree: st.files_free(),
            bsize: st.fragment_size() as u32,
        })
    }
}

impl Pending {
    /// A row just committed (or found in the journal at start), due after `delay`.
    fn committed(copy: Arc<LocalCopy>, entry: JournalEntry, delay: Duration) -> Self {
        let now = Instant::now();
        Self {
            committed_gen: copy.generation(),
            copy,
            entry,
            committed_at: now.checked_sub(delay).unwrap_or(now),
            uploading: false,
            attempts: 0,
            retry_at: None,
            created: None,
        }
    }

    /// The provider version this change started from, kept by the row and its copy
    /// (which the conditional upload reads).
    pub(crate) fn set_base(&mut self, base: Option<Version>) {
        self.entry.base = base;
        self.copy.set_base(base);
    }
}

/// A pending file's entry: its local contents with the index's attributes.
fn pending_entry(copy: &LocalCopy, ov: Option<&Overlay>) -> Result<Entry> {
    Ok(Entry {
        kind: if ov.is_some_and(|o| o.symlink.is_some()) { EntryKind::Symlink } else { EntryKind::File },
        size: copy.len()?,
        mtime: ov.and_then(|o| o.mtime),
        atime: ov.and_then(|o| o.atime),
        ctime: ov.and_then(|o| o.ctime),
        mode: ov.and_then(|o| o.mode),
        uid: ov.and_then(|o| o.uid),
        gid: ov.and_then(|o| o.gid),
    })
}

pub(crate) fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

pub(crate) fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// How often `list` asks again when more tombstones went meanwhile than it can check
/// (a Trash move of thousands of items): then the last answer stands.
const LIST_ATTEMPTS: u32 = 3;

/// How long a stat waits for the provider when the mirror could answer instead.
const PATIENCE: Duration = Duration::from_millis(500);

/// How long a provider's answer about a path is reused: the kernel's attribute timeout.
const RECENT_TTL: Duration = Duration::from_secs(1);

pub(crate) fn remote_entry(meta: &ObjectMeta) -> RemoteEntry {
    RemoteEntry { is_dir: meta.kind == ObjectKind::Dir, size: meta.size, mtime: meta.mtime }
}

pub(crate) fn merge(meta: &RemoteEntry, ov: Option<&Overlay>) -> Entry {
    let kind = match (meta.is_dir, ov.and_then(|o| o.symlink.as_ref())) {
        (true, _) => EntryKind::Dir,
        (false, Some(_)) => EntryKind::Symlink,
        (false, None) => EntryKind::File,
    };
    // A file changed by someone else since our last upload keeps the provider's mtime.
    let ours = ov.is_some_and(|o| match (kind, o.remote) {
        (EntryKind::File, Some((m, s))) => s == meta.size && (m.is_none() || m == meta.mtime),
        (EntryKind::File, None) => false,
        _ => true,
    });
    let size = match (kind, ov.and_then(|o| o.symlink.as_ref())) {
        (EntryKind::Symlink, Some(t)) => t.len() as u64,
        _ => meta.size,
    };
    Entry {
        kind,
        size,
        mtime: if ours { ov.and_then(|o| o.mtime).or(meta.mtime) } else { meta.mtime },
        atime: if ours { ov.and_then(|o| o.atime) } else { None },
        ctime: ov.and_then(|o| o.ctime),
        mode: ov.and_then(|o| o.mode),
        uid: ov.and_then(|o| o.uid),
        gid: ov.and_then(|o| o.gid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(size: u64, secs: u64) -> RemoteEntry {
        RemoteEntry { is_dir: false, size, mtime: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)) }
    }

    #[test]
    fn overlay_times_apply_only_while_the_object_is_ours() {
        let mine = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        let (read, changed_at) = (SystemTime::UNIX_EPOCH + Duration::from_secs(6), Some(meta(0, 150).mtime.unwrap()));
        let ov = Overlay {
            mtime: Some(mine),
            atime: Some(read),
            ctime: changed_at,
            remote: Some((meta(3, 100).mtime, 3)),
            mode: Some(0o600),
            ..Default::default()
        };
        let same = merge(&meta(3, 100), Some(&ov));
        assert_eq!((same.mtime, same.atime, same.ctime), (Some(mine), Some(read), changed_at));
        let changed = merge(&meta(4, 200), Some(&ov));
        assert_eq!((changed.mtime, changed.atime), (meta(4, 200).mtime, None));
        assert_eq!(changed.ctime, changed_at, "shown as the later of it and the mtime");
        assert_eq!(changed.mode, Some(0o600));
    }

    #[test]
    fn symlink_marked_in_index() {
        let ov = Overlay { symlink: Some("../target".into()), ..Default::default() };
        let e = merge(&meta(9, 1), Some(&ov));
        assert_eq!((e.kind, e.size), (EntryKind::Symlink, 9));
    }
}
