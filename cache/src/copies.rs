//! The local copies area, shared by all stores: where copies live, the key they are
//! sealed under, and the read cache kept there within a size limit.
//!
//! A *cached* copy holds blocks of one provider version of a file (size and provider
//! mtime, checked against the last stat before use), fetched on demand; its row in the
//! index says which copy, its bytes on disk and whether it is pinned. Copies of pending
//! changes belong to the journal, never to the cache: a file has one or the other.
//! Eviction drops least recently used unpinned cached copies until the total is under
//! the limit; pending and pinned data is never evicted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::index::{CachedEntry, Index};
use crate::local_copy::{BLOCK, CopyId, LocalCopy, MemoryBudget};

/// Open cached copies kept at hand (each holds a file descriptor).
const OPEN_HANDLES: u64 = 256;
/// Bytes new small copies may hold in memory together (about a thousand small files
/// waiting for upload); past it new copies go to files at once.
const MEMORY_BUDGET: u64 = 64 << 20;
/// Eviction frees down to this share of the limit, so it does not run on every fill.
const EVICT_TO: f64 = 0.9;
/// Holes of an uploaded working copy up to this size are stored as zeros when it
/// becomes the cached copy (see `adopt`).
const ZERO_FILL_MAX: u64 = 8 << 20;

type Key = (String, String);

pub struct Copies {
    dir: PathBuf,
    key: [u8; 32],
    /// What new small copies may hold in memory together (see `create_small`).
    memory: Arc<MemoryBudget>,
    limit: u64,
    index: Arc<Index>,
    handles: moka::sync::Cache<Key, Arc<LocalCopy>>,
    evicting: Mutex<()>,
}

impl std::fmt::Debug for Copies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copies").field("dir", &self.dir).field("limit", &self.limit).finish_non_exhaustive()
    }
}

/// The version of a provider file: its size and provider mtime.
pub type Version = (u64, Option<SystemTime>);

impl Copies {
    /// `key` is the local-state key; `limit` bounds the read cache in bytes.
    pub fn new(dir: &Path, key: [u8; 32], limit: u64, index: Arc<Index>) -> Self {
        let handles = moka::sync::Cache::builder().max_capacity(OPEN_HANDLES).support_invalidation_closures().build();
        let memory = MemoryBudget::new(MEMORY_BUDGET);
        Self { dir: dir.to_owned(), key, memory, limit, index, handles, evicting: Mutex::new(()) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn create(&self) -> Result<LocalCopy> {
        LocalCopy::create(&self.dir, &self.key)
    }

    /// A new copy for contents written here (a new file, a rewrite): kept in memory
    /// while it is small, so most new files never make a file here at all.
    pub fn create_small(&self) -> Result<LocalCopy> {
        LocalCopy::create_in_memory(&self.dir, &self.key, self.memory.clone())
    }

    pub fn open(&self, id: &str, len: u64) -> Result<LocalCopy> {
        let id = CopyId::from_hex(id)
            .ok_or_else(|| Error::io("local copies", std::io::Error::other(format!("bad copy id {id:?}"))))?;
        LocalCopy::open(&self.dir, &self.key, id, len)
    }

    /// Rebuilds a copy from the contents its commit carried inline.
    pub fn restore(&self, id: &str, len: u64, image: &[u8]) -> Result<LocalCopy> {
        let id = CopyId::from_hex(id)
            .ok_or_else(|| Error::io("local copies", std::io::Error::other(format!("bad copy id {id:?}"))))?;
        LocalCopy::restore(&self.dir, &self.key, id, len, image)
    }

    /// The cached copy of `path` if it holds `version`; a stale one is dropped.
    pub fn cached(&self, root: &str, path: &str, version: Version) -> Result<Option<(Arc<LocalCopy>, CachedEntry)>> {
        let Some(entry) = self.index.cached_get(root, path)? else {
            self.handles.invalidate(&key(root, path));
            return Ok(None);
        };
        if (entry.size, entry.version) != version {
            tracing::debug!(root, path, "cached copy is of an older version; dropping it");
            self.forget(root, path)?;
            return Ok(None);
        }
        let k = key(root, path);
        if let Some(copy) = self.handles.get(&k) {
            return Ok(Some((copy, entry)));
        }
        match self.open(&entry.copy, entry.size) {
            Ok(copy) => {
                let copy = Arc::new(copy);
                self.handles.insert(k, copy.clone());
                Ok(Some((copy, entry)))
            }
            Err(e) => {
                tracing::warn!(root, path, error = %e, "cached copy is unusable; dropping it");
                self.forget(root, path)?;
                Ok(None)
            }
        }
    }

    /// The cached copy of `path` at `version`, made (empty) if there is none.
    pub fn cached_or_new(&self, root: &str, path: &str, version: Version) -> Result<Arc<LocalCopy>> {
        if let Some((copy, _)) = self.cached(root, path, version)? {
            return Ok(copy);
        }
        let copy = self.create()?;
        copy.set_len(version.0)?;
        copy.keep(true);
        let copy = Arc::new(copy);
        let pinned = self.index.under_pin(root, path)?;
        let entry = CachedEntry { copy: copy.id().hex(), size: version.0, version: version.1, bytes: 0, pinned };
        self.index.cached_put(root, path, &entry)?;
        self.handles.insert(key(root, path), copy.clone());
        Ok(copy)
    }

    /// Makes a copy holding all of `version` the cached copy of `path` (a file just
    /// uploaded from it).
    pub fn adopt(&self, root: &str, path: &str, copy: Arc<LocalCopy>, version: Version) -> Result<()> {
        // Blocks a working copy never had are holes (a write past the end): zeros. In
        // the cache a missing block is one not fetched yet, which a read offline could
        // not fetch: small holes are stored as the zeros they are (large ones are left
        // to fetch, zeros from the provider).
        let holes = copy.missing_blocks(0, version.0);
        if !holes.is_empty() && holes.len() as u64 * BLOCK <= ZERO_FILL_MAX {
            let zeros = vec![0u8; BLOCK as usize];
            for i in holes {
                copy.fill(i * BLOCK, &zeros[..(version.0 - i * BLOCK).min(BLOCK) as usize])?;
            }
        }
        let pinned = self.index.under_pin(root, path)?;
        let entry = CachedEntry {
            copy: copy.id().hex(),
            size: version.0,
            version: version.1,
            bytes: copy.stored_bytes(),
            pinned,
        };
        self.forget(root, path)?;
        // The cache opens its copies from their files.
        copy.persist()?;
        copy.keep(true);
        self.index.cached_put(root, path, &entry)?;
        self.handles.insert(key(root, path), copy);
        self.evict_if_needed()
    }

    /// Whether the cached copy of `path` holds all of `version`.
    pub fn has_complete(&self, root: &str, path: &str, version: Version) -> Result<bool> {
        Ok(self.cached(root, path, version)?.is_some_and(|(copy, entry)| copy.missing_blocks(0, entry.size).is_empty()))
    }

    /// Takes the cached copy of `path` out of the cache if it holds all of `version`,
    /// to become the working copy of a file opened for writing.
    pub fn take_complete(&self, root: &str, path: &str, version: Version) -> Result<Option<Arc<LocalCopy>>> {
        let Some((copy, entry)) = self.cached(root, path, version)? else { return Ok(None) };
        if !copy.missing_blocks(0, entry.size).is_empty() {
            return Ok(None);
        }
        self.index.cached_remove(root, path)?;
        self.handles.invalidate(&key(root, path));
        self.handles.run_pending_tasks();
        // A working copy lives as long as it is open, unless a commit keeps it.
        copy.keep(false);
        Ok(Some(copy))
    }

    /// Records the bytes a cached copy now takes, and makes room if the cache is full.
    pub fn filled(&self, root: &str, path: &str, copy: &LocalCopy) -> Result<()> {
        self.index.cached_touch(root, path, copy.stored_bytes())?;
        self.evict_if_needed()
    }

    /// Drops the cached copy of `path`, if any, with its blocks.
    pub fn forget(&self, root: &str, path: &str) -> Result<()> {
        let k = key(root, path);
        let open = self.handles.get(&k);
        self.handles.invalidate(&k);
        if let Some(id) = self.index.cached_remove(root, path)? {
            match open {
                // Readers holding it finish on the unlinked file.
                Some(copy) if copy.id().hex() == id => copy.keep(false),
                _ => {
                    let _ = std::fs::remove_file(self.dir.join(&id));
                }
            }
        }
        Ok(())
    }

    /// Forgets the open handles of `path` and everything below (renamed or removed:
    /// the index rows moved or went with it).
    pub fn invalidate_tree(&self, root: &str, path: &str) {
        let (root, path) = (root.to_owned(), path.to_owned());
        let _ = self.handles.invalidate_entries_if(move |(r, p), _| *r == root && (*p == path || is_below(p, &path)));
    }

    pub fn set_pinned(&self, root: &str, path: &str, pinned: bool) -> Result<()> {
        self.index.cached_set_pinned(root, path, pinned)
    }

    /// (bytes cached, of which pinned).
    pub fn totals(&self) -> Result<(u64, u64)> {
        self.index.cached_totals()
    }

    pub fn evict_if_needed(&self) -> Result<()> {
        let (total, _) = self.index.cached_totals()?;
        if total <= self.limit {
            return Ok(());
        }
        let Ok(_alone) = self.evicting.try_lock() else { return Ok(()) };
        let target = (self.limit as f64 * EVICT_TO) as u64;
        let mut total = total;
        while total > target {
            let batch = self.index.cached_lru(64)?;
            if batch.is_empty() {
                break;
            }
            for (root, path, bytes) in batch {
                self.forget(&root, &path)?;
                total = total.saturating_sub(bytes);
                tracing::debug!(root, path, bytes, "evicted from the cache");
                if total <= target {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Removes local copies nothing refers to (left by a crash, or evicted while open);
/// call before any store of this run makes new ones.
pub fn sweep_copies(dir: &Path, index: &Index) -> Result<usize> {
    let keep: std::collections::HashSet<String> = index.referenced_copies()?.into_iter().collect();
    let mut removed = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

fn key(root: &str, path: &str) -> Key {
    (root.to_owned(), path.to_owned())
}

/// Whether `path` is strictly inside directory `dir` ("" is the root).
pub(crate) fn is_below(path: &str, dir: &str) -> bool {
    if dir.is_empty() {
        return !path.is_empty();
    }
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}
