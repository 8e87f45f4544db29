//! `Vfs`: every filesystem operation, with POSIX rules, over the stores of all roots.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use oxidrive_cache::{Entry, EntryKind, FileState, Overlay, Store};
use oxidrive_providers::{META_DIR, join};

use crate::attr::{Allocate, Attr, Caller, DirEntry, FileKind, SetAttr, StatFs, killed_suidgid};
use crate::error::{Error, ErrorKind, Result};
use crate::inode::{Inodes, Located, Place};
use crate::layout::{MY_DRIVE_INO, RECENTS_INO, ROOT_INO, SHARED_INO, TRASH_INO, VIEWS};
use crate::name;
use crate::open_file::{DeferredAttrs, OpenFile};
use crate::recents::{Recent, display_names};
use crate::trash_names::{self, Trashed};

/// Extended attributes in this namespace are ours: computed, not stored.
const OUR_XATTR_PREFIX: &str = "user.oxidrive.";
/// Zeros written per step by `fallocate` (a punched hole reads as zeros).
const ZERO_CHUNK: u64 = 1 << 20;
/// The most one `copy_file_range` request copies (the caller asks again for the rest).
const COPY_CHUNK: u64 = 8 << 20;
const XATTR_PROVIDER: &str = "user.oxidrive.provider";
const XATTR_STATE: &str = "user.oxidrive.state";
/// "1" keeps a file (or every file under a folder) cached whole; "0" lets it go.
const XATTR_PINNED: &str = "user.oxidrive.pinned";
/// Setting it (any value) drops a file's cached blocks; never pending changes.
const XATTR_FREE: &str = "user.oxidrive.free";

/// Tells the kernel to forget what it cached of a name or a node (its attributes and
/// pages), when something changed behind its back. Implemented by the platform.
pub trait KernelNotify: Send + Sync {
    fn inval_entry(&self, parent: u64, name: &str);
    fn inval_inode(&self, ino: u64);
}

pub struct RootSpec {
    pub name: String,
    pub shared: bool,
    /// The store, or why the provider could not start: then its folder is empty and
    /// read-only, and the rest of the mount works.
    pub store: std::result::Result<Arc<Store>, String>,
}

/// Settings of the views.
#[derive(Debug, Clone, Copy)]
pub struct ViewConfig {
    /// How many files `Recents/` shows.
    pub recents: usize,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self { recents: 50 }
    }
}

/// One root: its folder name, inode and store (or why it has none).
pub(crate) struct Root {
    pub(crate) name: String,
    ino: u64,
    pub(crate) store: std::result::Result<Arc<Store>, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenMode {
    pub write: bool,
    pub truncate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMode {
    Replace,
    NoReplace,
    Exchange,
}

struct Handle {
    ino: u64,
    file: Arc<OpenFile>,
    write: bool,
}

pub struct Vfs {
    pub(crate) roots: Vec<Root>,
    views: ViewConfig,
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_fh: AtomicU64,
    owner: Caller,
    started: SystemTime,
    pub(crate) notify: std::sync::OnceLock<Box<dyn KernelNotify>>,
}

impl Vfs {
    /// `owner` owns the fixed folders and every file whose owner was never set.
    pub fn new(specs: Vec<RootSpec>, views: ViewConfig, owner: Caller) -> Result<Self> {
        let mut inodes = Inodes::new();
        inodes.add_fixed(ROOT_INO, ROOT_INO, "", Place::Virtual);
        for (ino, name) in VIEWS {
            inodes.add_fixed(ino, ROOT_INO, name, Place::Virtual);
        }
        let mut roots = Vec::new();
        for (i, root) in specs.into_iter().enumerate() {
            let parent = if root.shared { SHARED_INO } else { MY_DRIVE_INO };
            name::check(OsStr::new(&root.name))?;
            if inodes.child(parent, &root.name).is_some() {
                return Err(Error::new(ErrorKind::InvalidInput, format!("two providers are named {:?}", root.name)));
            }
            let ino = inodes.alloc();
            inodes.add_fixed(ino, parent, &root.name, Place::Root(i));
            roots.push(Root { name: root.name, ino, store: root.store });
        }
        Ok(Self {
            roots,
            views,
            inodes: Mutex::new(inodes),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            owner,
            started: SystemTime::now(),
            notify: std::sync::OnceLock::new(),
        })
    }

    /// Where to send invalidations (set once the kernel side is mounted).
    pub fn set_kernel_notify(&self, notify: Box<dyn KernelNotify>) {
        let _ = self.notify.set(notify);
    }

    /// `path` of root number `root` was changed by another device: the kernel must look
    /// it (and its folder's listing) up again.
    pub fn remote_changed(&self, root: usize, path: &str) {
        let Some(notify) = self.notify.get() else { return };
        let Some(root_ino) = self.roots.get(root).map(|r| r.ino) else { return };
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let (parent, child) = {
            let t = self.inodes();
            let mut ino = Some(root_ino);
            for part in dir.split('/').filter(|p| !p.is_empty()) {
                ino = ino.and_then(|i| t.child(i, part));
            }
            (ino, ino.and_then(|p| t.child(p, name)))
        };
        // Never while holding the table: the kernel may call back in.
        if let Some(p) = parent {
            notify.inval_entry(p, name);
            notify.inval_inode(p);
        }
        if let Some(c) = child {
            notify.inval_inode(c);
        }
    }

    pub(crate) fn inodes(&self) -> MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn locate(&self, ino: u64) -> Result<Located> {
        let mut loc = self.inodes().locate(ino)?;
        // A Trash node's place on the provider moves when its item reaches the trash area.
        if let Some(id) = &loc.item
            && let Some(Ok(store)) = loc.root().and_then(|r| self.roots.get(r)).map(|r| r.store.as_ref())
        {
            let base = store.trash_path(id);
            loc.path = if loc.path.is_empty() { base } else { join(&base, &loc.path) };
        }
        Ok(loc)
    }

    fn store(&self, loc: &Located) -> Result<&Arc<Store>> {
        let root = loc
            .root()
            .and_then(|r| self.roots.get(r))
            .ok_or_else(|| Error::new(ErrorKind::NotPermitted, "not inside a provider folder"))?;
        root.store
            .as_ref()
            .map_err(|why| Error::new(ErrorKind::ReadOnly, format!("provider {:?} is unavailable: {why}", root.name)))
    }

    pub(crate) fn stores(&self) -> impl Iterator<Item = (usize, &Arc<Store>)> {
        self.roots.iter().enumerate().filter_map(|(i, r)| r.store.as_ref().ok().map(|s| (i, s)))
    }

    /// The directory `parent` as a place new names can go, and the child's path.
    fn writable_dir(&self, parent: u64, name: &str) -> Result<(Arc<Store>, Located, String)> {
        let loc = self.locate(parent)?;
        if loc.kind != FileKind::Dir {
            return Err(Error::new(ErrorKind::NotADirectory, "parent is not a directory"));
        }
        match loc.place {
            Place::Virtual if parent == ROOT_INO || parent == MY_DRIVE_INO || parent == SHARED_INO => {
                return Err(Error::new(
                    ErrorKind::NotPermitted,
                    "the top folders are fixed; add providers in the config",
                ));
            }
            Place::Virtual => return Err(Error::new(ErrorKind::ReadOnly, "this view is read-only")),
            Place::Trash(_) => return Err(trash_read_only()),
            Place::Root(_) if name == META_DIR => {
                return Err(Error::new(ErrorKind::NotPermitted, format!("{META_DIR} is reserved for oxidrive")));
            }
            _ => {}
        }
        if loc.unlinked {
            return Err(Error::new(ErrorKind::NotFound, "directory was removed"));
        }
        let store = self.store(&loc)?.clone();
        let path = join(&loc.path, name);
        Ok((store, loc, path))
    }

    // ---- attributes -------------------------------------------------------------

    fn virtual_attr(&self, ino: u64) -> Attr {
        self.make_attr(ino, FileKind::Dir, 0, Some(self.started), Some(0o755), None, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn make_attr(
        &self,
        ino: u64,
        kind: FileKind,
        size: u64,
        mtime: Option<SystemTime>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Attr {
        let default_mode = match kind {
            FileKind::Dir => 0o755,
            FileKind::File => 0o644,
            FileKind::Symlink => 0o777,
        };
        let mtime = mtime.unwrap_or(self.started);
        Attr {
            ino,
            kind,
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            perm: (mode.unwrap_or(default_mode) & 0o7777) as u16,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            uid: uid.unwrap_or(self.owner.uid),
            gid: gid.unwrap_or(self.owner.gid),
            blksize: 64 * 1024,
        }
    }

    /// Attributes from a store entry, with what an open file knows better.
    fn entry_attr(&self, ino: u64, entry: &Entry, open: Option<&Arc<OpenFile>>) -> Result<Attr> {
        let mut attr =
            self.make_attr(ino, kind_of(entry.kind), entry.size, entry.mtime, entry.mode, entry.uid, entry.gid);
        let mut atime = entry.atime;
        if let Some(of) = open {
            if let Some(staging) = of.staging() {
                attr.size = staging.len().map_err(|e| Error::from_cache(e, "size of open file"))?;
                attr.blocks = attr.size.div_ceil(512);
            }
            if let Some(m) = of.mtime() {
                attr.mtime = m;
            }
            let deferred = of.deferred_attrs();
            atime = deferred.atime.or(atime);
            if let Some(mode) = deferred.mode {
                attr.perm = (mode & 0o7777) as u16;
            }
            attr.uid = deferred.uid.unwrap_or(attr.uid);
            attr.gid = deferred.gid.unwrap_or(attr.gid);
        }
        attr.atime = atime.unwrap_or(attr.mtime);
        // Changing contents changes both times; a later mtime (a write not committed
        // yet, or a change by another device) is the later change.
        attr.ctime = entry.ctime.map_or(attr.mtime, |c| c.max(attr.mtime));
        Ok(attr)
    }

    async fn stat_path(&self, store: &Store, path: &str) -> Result<Option<Entry>> {
        store.stat(path).await.map_err(|e| Error::from_cache(e, format!("stat {path}")))
    }

    /// `stat_path` for a located node: inside the Trash, deleted names are what is shown.
    async fn stat_loc(&self, store: &Store, loc: &Located, path: &str) -> Result<Option<Entry>> {
        if loc.in_trash() {
            return store.stat_any(path).await.map_err(|e| Error::from_cache(e, format!("stat {path}")));
        }
        self.stat_path(store, path).await
    }

    pub async fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let name = name::check(name)?;
        let loc = self.locate(parent)?;
        if loc.kind != FileKind::Dir {
            return Err(Error::new(ErrorKind::NotADirectory, "lookup in a non-directory"));
        }
        if parent == RECENTS_INO {
            let view = self.recent_view().await?;
            let (_, root, path, entry) = view
                .into_iter()
                .find(|(n, ..)| n == name)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, name.to_owned()))?;
            let ino = self.resolve_path(root, &path, FileKind::File, true)?;
            let open = self.inodes().get(ino)?.open.clone();
            return self.entry_attr(ino, &entry, open.as_ref());
        }
        if parent == TRASH_INO {
            let (root, item, entry) = self.trash_named(name).await?;
            let ino = self.inodes().trash_item(TRASH_INO, name, root, &item.id, kind_of(entry.kind), true);
            return self.entry_attr(ino, &entry, None);
        }
        if loc.place == Place::Virtual {
            let ino =
                self.inodes().child(parent, name).ok_or_else(|| Error::new(ErrorKind::NotFound, name.to_owned()))?;
            return self.getattr(ino).await;
        }
        if matches!(loc.place, Place::Root(_)) && name == META_DIR {
            return Err(Error::new(ErrorKind::NotFound, name.to_owned()));
        }
        let Ok(store) = self.store(&loc).cloned() else {
            return Err(Error::new(ErrorKind::NotFound, "provider unavailable"));
        };
        let path = join(&loc.path, name);
        let Some(entry) = self.stat_loc(&store, &loc, &path).await? else {
            // Gone (maybe removed by another device): a name we remembered goes too.
            self.inodes().detach(parent, name);
            return Err(Error::new(ErrorKind::NotFound, path));
        };
        let (ino, open) = {
            let mut t = self.inodes();
            let ino = t.get_or_insert(parent, name, kind_of(entry.kind), true)?;
            (ino, t.get(ino)?.open.clone())
        };
        self.entry_attr(ino, &entry, open.as_ref())
    }

    /// Adds one kernel reference, for entries handed out by readdirplus.
    /// Counts the kernel's reference to an entry of directory `dir`'s listing that a
    /// `readdirplus` reply is about to carry, and returns the inode number to send.
    /// It differs from the listing's when that node was let go since the listing (a
    /// forget racing it): the name then gets a node again, or the kernel would hold a
    /// number this table no longer knows (`ENOENT` for every use of it). Undo with
    /// `forget(ino, 1)` if the entry does not fit the reply.
    pub fn remember_entry(&self, dir: u64, name: &str, listed: &Attr) -> u64 {
        let mut t = self.inodes();
        if let Ok(node) = t.get_mut(listed.ino) {
            node.lookups = node.lookups.saturating_add(1);
            return listed.ino;
        }
        // The views' entries are not looked up by name; they keep the listing's number.
        t.get_or_insert(dir, name, listed.kind, true).unwrap_or(listed.ino)
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes().forget(ino, n);
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let loc = self.locate(ino)?;
        if loc.place == Place::Virtual {
            return Ok(self.virtual_attr(ino));
        }
        let store = match self.store(&loc) {
            Ok(s) => s.clone(),
            Err(_) if matches!(loc.place, Place::Root(_)) => {
                // An unavailable provider: an empty folder nobody can write to.
                let mut attr = self.virtual_attr(ino);
                attr.perm = 0o555;
                return Ok(attr);
            }
            Err(e) => return Err(e),
        };
        if loc.unlinked {
            // Only an open file survives unlinking; its staging copy has the truth.
            let of = loc.open.as_ref().ok_or_else(|| Error::new(ErrorKind::NotFound, "file was removed"))?;
            let fake = Entry {
                kind: EntryKind::File,
                size: 0,
                mtime: None,
                atime: None,
                ctime: None,
                mode: None,
                uid: None,
                gid: None,
            };
            let mut attr = self.entry_attr(ino, &fake, Some(of))?;
            attr.nlink = 0;
            return Ok(attr);
        }
        let entry = self
            .stat_loc(&store, &loc, &loc.path)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, loc.path.clone()))?;
        self.entry_attr(ino, &entry, loc.open.as_ref())
    }

    pub async fn setattr(&self, ino: u64, mut set: SetAttr, fh: Option<u64>) -> Result<Attr> {
        let loc = self.locate(ino)?;
        if loc.place == Place::Virtual {
            return Err(Error::new(ErrorKind::NotPermitted, "the top folders cannot be changed"));
        }
        if loc.in_trash() {
            return Err(trash_read_only());
        }
        let store = self.store(&loc)?.clone();
        if set.kill_suidgid && loc.kind == FileKind::File {
            let mode = match set.mode {
                Some(mode) => mode,
                None => u32::from(self.getattr(ino).await?.perm),
            };
            if killed_suidgid(mode) != mode {
                set.mode = Some(killed_suidgid(mode));
            }
        }
        if let Some(size) = set.size {
            if loc.kind != FileKind::File {
                return Err(Error::new(
                    if loc.kind == FileKind::Dir { ErrorKind::IsADirectory } else { ErrorKind::InvalidInput },
                    "truncate of a non-file",
                ));
            }
            let (of, alone) = self.open_file_for(ino, &store, &loc).await?;
            let result = async {
                let staging = self.ensure_staging(&of, &store, &loc.path, size == 0).await?;
                staging.set_len(size).map_err(|e| Error::from_cache(e, format!("truncate {}", loc.path)))?;
                of.mark_changed(set.mtime.map_or_else(SystemTime::now, |t| t.resolve()));
                // truncate(2) without an open file is durable when it returns.
                if fh.is_none() || alone { self.commit(ino, &of).await } else { Ok(()) }
            }
            .await;
            self.release_open_file(ino);
            result?;
        }
        if !loc.unlinked
            && (set.mode.is_some()
                || set.uid.is_some()
                || set.gid.is_some()
                || set.mtime.is_some()
                || set.atime.is_some())
        {
            let mtime = set.mtime.map(|t| t.resolve());
            let atime = set.atime.map(|t| t.resolve());
            // On a file with uncommitted writes (tar: write, futimens, fchown, fchmod,
            // close) the change goes into the commit that is sure to come, like the
            // writes: one journal transaction per file instead of one per call.
            let deferred = match &loc.open {
                Some(of) => {
                    let _commit = of.commit.lock().await;
                    if let Some(m) = mtime {
                        of.set_mtime(m);
                    }
                    let dirty = of.is_dirty();
                    if dirty {
                        of.defer_attrs(DeferredAttrs {
                            mode: set.mode.map(|m| m & 0o7777),
                            uid: set.uid,
                            gid: set.gid,
                            atime,
                        });
                    }
                    dirty
                }
                None => false,
            };
            if !deferred {
                let attrs = Overlay {
                    mode: set.mode.map(|m| m & 0o7777),
                    uid: set.uid,
                    gid: set.gid,
                    mtime,
                    atime,
                    ..Overlay::default()
                };
                store
                    .set_attrs(&loc.path, &attrs)
                    .map_err(|e| Error::from_cache(e, format!("setattr {}", loc.path)))?;
            }
        }
        self.getattr(ino).await
    }

    // ---- views --------------------------------------------------------------------

    /// The Recents view now, newest first: (display name, root, path, entry). Files that
    /// vanished are dropped from the record.
    async fn recent_view(&self) -> Result<Vec<(String, usize, String, Entry)>> {
        let mut all = Vec::new();
        for (i, store) in self.stores() {
            match store.recents(self.views.recents) {
                Ok(v) => all.extend(v.into_iter().map(|(path, at)| (at, i, path))),
                Err(e) => tracing::warn!(provider = store.name(), error = %e, "cannot read recent files"),
            }
        }
        all.sort_by_key(|r| std::cmp::Reverse(r.0));
        all.truncate(self.views.recents);
        let mut live = Vec::new();
        for (_, i, path) in all {
            let Ok(store) = self.roots[i].store.as_ref() else { continue };
            match self.stat_path(store, &path).await {
                Ok(Some(e)) if e.kind == EntryKind::File => live.push((i, path, e)),
                Ok(_) => {
                    let _ = store.forget_recent(&path);
                }
                Err(e) => tracing::warn!(path, error = %e, "recent file unreachable; not shown"),
            }
        }
        let keys: Vec<Recent> = live
            .iter()
            .map(|(i, p, _)| Recent { root: *i, path: p.clone(), root_name: self.roots[*i].name.clone() })
            .collect();
        let names = display_names(&keys);
        Ok(names.into_iter().zip(live).map(|(n, (i, p, e))| (n, i, p, e)).collect())
    }

    /// The inode of `path` in root `root`, numbering the folders on the way if needed.
    fn resolve_path(&self, root: usize, path: &str, kind: FileKind, count: bool) -> Result<u64> {
        let mut t = self.inodes();
        let mut cur = self.roots.get(root).ok_or_else(|| Error::new(ErrorKind::NotFound, "no such root"))?.ino;
        let parts: Vec<&str> = path.split('/').collect();
        for (k, part) in parts.iter().enumerate() {
            let last = k + 1 == parts.len();
            cur = t.get_or_insert(cur, part, if last { kind } else { FileKind::Dir }, last && count)?;
        }
        Ok(cur)
    }

    /// Records a file as recently changed; the view is a convenience, so failures only log.
    fn note_recent(&self, store: &Store, path: &str) {
        if let Err(e) = store.touch_recent(path) {
            tracing::warn!(path, error = %e, "cannot record recent file");
        }
    }

    /// `rm` in Recents forgets the entry; the file stays where it is.
    async fn forget_recent(&self, name: &str) -> Result<()> {
        let view = self.recent_view().await?;
        let (_, root, path, _) = view
            .into_iter()
            .find(|(n, ..)| n == name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, name.to_owned()))?;
        let store = self.roots[root].store.as_ref().map_err(|w| Error::new(ErrorKind::NotFound, w.clone()))?;
        store.forget_recent(&path).map_err(|e| Error::from_cache(e, "forget recent"))
    }

    /// The Trash view now, newest first: (display name, root, item). `refresh` reads
    /// the providers' trash areas first (what other devices did).
    pub(crate) async fn trash_items(&self, refresh: bool) -> Result<Vec<(String, usize, oxidrive_cache::TrashEntry)>> {
        let mut all = Vec::new();
        for (i, store) in self.stores() {
            match store.trash_entries(refresh).await {
                Ok(items) => all.extend(items.into_iter().map(|t| (i, t))),
                Err(e) => tracing::warn!(provider = store.name(), error = %e, "cannot read the Trash"),
            }
        }
        all.sort_by(|a, b| b.1.deleted.cmp(&a.1.deleted).then_with(|| a.1.id.cmp(&b.1.id)));
        let keys: Vec<Trashed<'_>> = all
            .iter()
            .map(|(i, t)| Trashed { orig: &t.orig, deleted: t.deleted, root_name: &self.roots[*i].name })
            .collect();
        let names = trash_names::display_names(&keys);
        Ok(names.into_iter().zip(all).map(|(n, (i, t))| (n, i, t)).collect())
    }

    /// What a trash item's contents look like now; `None` for an item whose contents
    /// are missing (being moved by another device) or unreachable.
    pub(crate) async fn trash_stat(&self, root: usize, item: &oxidrive_cache::TrashEntry) -> Option<Entry> {
        let store = self.roots[root].store.as_ref().ok()?;
        match store.stat_any(&item.path).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(path = %item.path, error = %e, "trash item unreachable; not shown");
                None
            }
        }
    }

    /// The trash item shown as `name` in the Trash view, with its attributes.
    pub(crate) async fn trash_named(&self, name: &str) -> Result<(usize, oxidrive_cache::TrashEntry, Entry)> {
        let not_found = || Error::new(ErrorKind::NotFound, format!("{name} is not in Trash"));
        let mut found = self.trash_items(false).await?.into_iter().find(|(n, ..)| n == name);
        if found.is_none() {
            // Maybe put there by another device since the Trash was last listed here.
            found = self.trash_items(true).await?.into_iter().find(|(n, ..)| n == name);
        }
        let (_, root, item) = found.ok_or_else(not_found)?;
        let entry = self.trash_stat(root, &item).await.ok_or_else(not_found)?;
        Ok((root, item, entry))
    }

    // ---- directories ------------------------------------------------------------

    /// `fsyncdir`: what was created, removed or renamed through the mount so far
    /// survives a power cut once this returns. (Removals and some renames are recorded
    /// unsynced; commits and `mkdir` are synced already.) Outside a provider's folder
    /// nothing is recorded.
    pub async fn fsyncdir(&self, ino: u64) -> Result<()> {
        let loc = self.locate(ino)?;
        let Ok(store) = self.store(&loc) else { return Ok(()) };
        store.sync_index().await.map_err(|e| Error::from_cache(e, "fsyncdir"))
    }

    /// Lists a directory once per open; readdir pages through this snapshot.
    pub async fn opendir(&self, ino: u64) -> Result<u64> {
        let loc = self.locate(ino)?;
        if loc.kind != FileKind::Dir {
            return Err(Error::new(ErrorKind::NotADirectory, "opendir of a non-directory"));
        }
        let parent = self.inodes().get(ino)?.parent;
        let mut out = vec![
            DirEntry { name: ".".into(), attr: self.getattr(ino).await? },
            DirEntry { name: "..".into(), attr: self.virtual_attr(parent) },
        ];
        if ino == RECENTS_INO {
            for (name, root, path, entry) in self.recent_view().await? {
                let ino = self.resolve_path(root, &path, FileKind::File, false)?;
                let open = self.inodes().get(ino)?.open.clone();
                out.push(DirEntry { attr: self.entry_attr(ino, &entry, open.as_ref())?, name });
            }
        } else if ino == TRASH_INO {
            for (name, root, item) in self.trash_items(true).await? {
                let Some(entry) = self.trash_stat(root, &item).await else { continue };
                let ino = self.inodes().trash_item(TRASH_INO, &name, root, &item.id, kind_of(entry.kind), false);
                out.push(DirEntry { attr: self.entry_attr(ino, &entry, None)?, name });
            }
        } else if loc.place == Place::Virtual {
            let kids = self.inodes().children_of(ino);
            for (name, child) in kids {
                let attr = self.getattr(child).await?;
                out.push(DirEntry { name, attr });
            }
        } else if let Ok(store) = self.store(&loc).cloned() {
            let list = if loc.in_trash() { store.list_any(&loc.path).await } else { store.list(&loc.path).await };
            let list = list.map_err(|e| Error::from_cache(e, format!("list {}", loc.path)))?;
            let mut t = self.inodes();
            for (name, entry) in list {
                let ino = t.get_or_insert(ino, &name, kind_of(entry.kind), false)?;
                let open = t.get(ino)?.open.clone();
                out.push(DirEntry { attr: self.entry_attr(ino, &entry, open.as_ref())?, name });
            }
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).insert(fh, Arc::new(out));
        Ok(fh)
    }

    pub fn readdir(&self, fh: u64) -> Result<Arc<Vec<DirEntry>>> {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::BadHandle, "unknown directory handle"))
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh);
    }

    pub async fn mkdir(&self, parent: u64, name: &OsStr, mode: u32, caller: Caller) -> Result<Attr> {
        let name = name::check(name)?;
        let (store, _, path) = self.writable_dir(parent, name)?;
        if self.stat_path(&store, &path).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, path));
        }
        self.settle_for_new(&store, &path, true).await?;
        // Also touches the parent's mtime.
        store
            .mkdir(&path, mode & 0o7777, caller.uid, caller.gid)
            .await
            .map_err(|e| Error::from_cache(e, format!("mkdir {path}")))?;
        self.lookup(parent, OsStr::new(name)).await
    }

    pub async fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = name::check(name)?;
        if let Some(done) = self.delete_in_trash(parent, name, FileKind::Dir).await? {
            return Ok(done);
        }
        let (store, _, path) = self.writable_dir(parent, name)?;
        let entry =
            self.stat_path(&store, &path).await?.ok_or_else(|| Error::new(ErrorKind::NotFound, path.clone()))?;
        if entry.kind != EntryKind::Dir {
            return Err(Error::new(ErrorKind::NotADirectory, path));
        }
        let list = store.list(&path).await.map_err(|e| Error::from_cache(e, format!("list {path}")))?;
        if !list.is_empty() {
            return Err(Error::new(ErrorKind::DirectoryNotEmpty, path));
        }
        store.delete(&path, EntryKind::Dir).await.map_err(|e| Error::from_cache(e, format!("rmdir {path}")))?;
        self.inodes().detach(parent, name);
        self.touch_dir(&store, parent);
        Ok(())
    }

    /// A new name is about to take the place of one deleted and not yet moved to
    /// Trash: move it there first (`for_file`: the new name is a file or symlink).
    async fn settle_deleted(&self, store: &Store, path: &str, for_file: bool) -> Result<()> {
        store
            .settle_path(path, for_file)
            .await
            .map_err(|e| Error::from_cache(e, format!("move the deleted {path} to Trash")))
    }

    /// `settle_deleted` for a new file or symlink (or, with `dir`, folder), which offline
    /// may take the place of a deleted file or folder at once (`Store::settle_for_new`).
    async fn settle_for_new(&self, store: &Store, path: &str, dir: bool) -> Result<()> {
        store
            .settle_for_new(path, dir)
            .await
            .map_err(|e| Error::from_cache(e, format!("move the deleted {path} to Trash")))
    }

    /// `unlink` and `rmdir` in the Trash view delete for good; elsewhere `None`.
    async fn delete_in_trash(&self, parent: u64, name: &str, kind: FileKind) -> Result<Option<()>> {
        let loc = self.locate(parent)?;
        if parent == TRASH_INO {
            let (root, item, entry) = self.trash_named(name).await?;
            let store = self.roots[root].store.as_ref().map_err(|w| Error::new(ErrorKind::NotFound, w.clone()))?;
            match (kind, kind_of(entry.kind)) {
                (FileKind::Dir, FileKind::Dir) => {
                    // As for any rmdir: `rm -rf` empties it first.
                    let list = store.list_any(&item.path).await.map_err(|e| Error::from_cache(e, "list"))?;
                    if !list.is_empty() {
                        return Err(Error::new(ErrorKind::DirectoryNotEmpty, name));
                    }
                }
                (FileKind::Dir, _) => return Err(Error::new(ErrorKind::NotADirectory, name)),
                (_, FileKind::Dir) => return Err(Error::new(ErrorKind::IsADirectory, name)),
                _ => {}
            }
            store
                .trash_delete(&item.id)
                .await
                .map_err(|e| Error::from_cache(e, format!("delete {name} from Trash")))?;
            self.inodes().detach(parent, name);
            return Ok(Some(()));
        }
        if !loc.in_trash() {
            return Ok(None);
        }
        let store = self.store(&loc)?.clone();
        let path = join(&loc.path, name);
        let entry = store
            .stat_any(&path)
            .await
            .map_err(|e| Error::from_cache(e, format!("stat {path}")))?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, path.clone()))?;
        match (kind, entry.kind) {
            (FileKind::Dir, EntryKind::Dir) => {
                let list = store.list_any(&path).await.map_err(|e| Error::from_cache(e, format!("list {path}")))?;
                if !list.is_empty() {
                    return Err(Error::new(ErrorKind::DirectoryNotEmpty, path));
                }
            }
            (FileKind::Dir, _) => return Err(Error::new(ErrorKind::NotADirectory, path)),
            (_, EntryKind::Dir) => return Err(Error::new(ErrorKind::IsADirectory, path)),
            _ => {}
        }
        store.delete_for_good(&path).await.map_err(|e| Error::from_cache(e, format!("delete {path} for good")))?;
        self.inodes().detach(parent, name);
        Ok(Some(()))
    }

    /// A directory's mtime changes when names in it do. It is kept in the index, not
    /// taken from the provider: with write-back, the provider's folder changes when
    /// uploads land, not when names change here.
    fn touch_dir(&self, store: &Store, dir: u64) {
        let Ok(loc) = self.locate(dir) else { return };
        if loc.place == Place::Virtual {
            return;
        }
        if let Err(e) = store.set_attrs(&loc.path, &Overlay { mtime: Some(SystemTime::now()), ..Overlay::default() }) {
            tracing::warn!(path = %loc.path, error = %e, "could not update directory mtime");
        }
    }

    // ---- files ------------------------------------------------------------------

    pub async fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        exclusive: bool,
        open: OpenMode,
        caller: Caller,
    ) -> Result<(Attr, u64)> {
        let name = name::check(name)?;
        let (store, _, path) = self.writable_dir(parent, name)?;
        if let Some(existing) = self.stat_path(&store, &path).await? {
            if exclusive {
                return Err(Error::new(ErrorKind::AlreadyExists, path));
            }
            if existing.kind == EntryKind::Dir {
                return Err(Error::new(ErrorKind::IsADirectory, path));
            }
            let attr = self.lookup(parent, OsStr::new(name)).await?;
            let fh = self.open(attr.ino, open).await?;
            return Ok((self.getattr(attr.ino).await?, fh));
        }
        self.settle_for_new(&store, &path, false).await?;
        // Also notes it as recent and touches the folder's mtime.
        store
            .create_file(&path, mode & 0o7777, caller.uid, caller.gid)
            .map_err(|e| Error::from_cache(e, format!("create {path}")))?;
        let attr = self.lookup(parent, OsStr::new(name)).await?;
        let fh = self.open_noted(attr.ino, OpenMode { write: true, truncate: false }, false).await?;
        // The new file is not durable yet; the first close commits it (even if still
        // empty), so close means "survives a crash".
        let (_, of, _) = self.handle(fh)?;
        of.mark_changed(SystemTime::now());
        // `create` with O_RDONLY still returns a read-only descriptor.
        if !open.write
            && let Some(h) = self.handles().get_mut(&fh)
        {
            h.write = false;
        }
        Ok((attr, fh))
    }

    pub async fn open(&self, ino: u64, mode: OpenMode) -> Result<u64> {
        self.open_noted(ino, mode, true).await
    }

    /// `open`; `note` records a write open in Recents (`create` did already).
    async fn open_noted(&self, ino: u64, mode: OpenMode, note: bool) -> Result<u64> {
        let loc = self.locate(ino)?;
        match loc.kind {
            FileKind::Dir => return Err(Error::new(ErrorKind::IsADirectory, "open of a directory")),
            FileKind::Symlink => return Err(Error::new(ErrorKind::InvalidInput, "open of a symlink")),
            FileKind::File => {}
        }
        if loc.in_trash() && (mode.write || mode.truncate) {
            return Err(trash_read_only());
        }
        let store = self.store(&loc)?.clone();
        let (of, _) = self.open_file_for(ino, &store, &loc).await?;
        // Count the handle before any await so a concurrent release keeps the file.
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, Handle { ino, file: of.clone(), write: mode.write });
        if note && mode.write && !loc.unlinked {
            self.note_recent(&store, &loc.path);
        }
        let result = async {
            if mode.write || mode.truncate {
                let staging = self.ensure_staging(&of, &store, &loc.path, mode.truncate).await?;
                if mode.truncate {
                    staging.set_len(0).map_err(|e| Error::from_cache(e, "truncate on open"))?;
                    of.mark_changed(SystemTime::now());
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.release(fh).await.ok();
            return Err(e);
        }
        Ok(fh)
    }

    /// The node's open-file state, created if needed, with one handle reserved that the
    /// caller gives back with `release_open_file`. Also says whether no other handle
    /// holds it.
    async fn open_file_for(&self, ino: u64, store: &Store, loc: &Located) -> Result<(Arc<OpenFile>, bool)> {
        // `loc` is a snapshot: the last handle may have been released since it was
        // taken (FUSE sends release without waiting for it). Only the node's open state
        // counts, or this handle would write to a state no one else sees.
        if loc.open.is_some() {
            let mut t = self.inodes();
            let node = t.get_mut(ino)?;
            if let Some(of) = node.open.clone() {
                node.handles += 1;
                return Ok((of, false));
            }
        }
        let size = if loc.unlinked {
            0
        } else {
            self.stat_loc(store, loc, &loc.path)
                .await?
                .ok_or_else(|| Error::new(ErrorKind::NotFound, loc.path.clone()))?
                .size
        };
        let mut t = self.inodes();
        let node = t.get_mut(ino)?;
        node.handles += 1;
        let of = node.open.get_or_insert_with(|| OpenFile::new(size)).clone();
        Ok((of, node.handles == 1))
    }

    /// Drops one reserved handle; the open state goes when the last one does.
    fn release_open_file(&self, ino: u64) {
        let mut t = self.inodes();
        if let Ok(node) = t.get_mut(ino) {
            node.handles = node.handles.saturating_sub(1);
            if node.handles == 0 {
                node.open = None;
            }
        }
        t.drop_if_unused(ino);
    }

    /// The file's staging copy, fetched from the provider on first use. `discard`
    /// means the caller is about to truncate it to zero, so nothing is fetched.
    async fn ensure_staging(
        &self,
        of: &OpenFile,
        store: &Store,
        path: &str,
        discard: bool,
    ) -> Result<Arc<oxidrive_cache::LocalCopy>> {
        if let Some(s) = of.staging() {
            return Ok(s);
        }
        let _guard = of.materialize.lock().await;
        if let Some(s) = of.staging() {
            return Ok(s);
        }
        let staging = if path.is_empty() {
            store.new_copy()
        } else if discard {
            store.replacement_copy(path)
        } else {
            store.open_copy(path).await
        };
        let staging = staging.map_err(|e| Error::from_cache(e, format!("fetch {path} for writing")))?;
        of.set_staging(staging.clone());
        Ok(staging)
    }

    fn handle(&self, fh: u64) -> Result<(u64, Arc<OpenFile>, bool)> {
        let h = self.handles();
        let h = h.get(&fh).ok_or_else(|| Error::new(ErrorKind::BadHandle, "unknown file handle"))?;
        Ok((h.ino, h.file.clone(), h.write))
    }

    pub async fn read(&self, fh: u64, offset: u64, len: u32) -> Result<Vec<u8>> {
        let (ino, of, _) = self.handle(fh)?;
        if let Some(staging) = of.staging() {
            return staging.read_at(offset, len as usize).map_err(|e| Error::from_cache(e, "read open file"));
        }
        let loc = self.locate(ino)?;
        let store = self.store(&loc)?.clone();
        let size = of.size_at_open.load(Ordering::Relaxed);
        if offset >= size {
            return Ok(Vec::new());
        }
        let len = (len as u64).min(size - offset);
        store.read(&loc.path, offset, len, size).await.map_err(|e| Error::from_cache(e, format!("read {}", loc.path)))
    }

    /// The open file of `fh` and the copy its writes go to (`EBADF` unless `fh` is open
    /// for writing).
    fn write_target(&self, fh: u64) -> Result<(Arc<OpenFile>, Arc<oxidrive_cache::LocalCopy>)> {
        let (_, of, write) = self.handle(fh)?;
        if !write {
            return Err(Error::new(ErrorKind::BadHandle, "file not open for writing"));
        }
        let staging = of.staging().ok_or_else(|| Error::new(ErrorKind::Io, "open file has no staging copy"))?;
        Ok((of, staging))
    }

    /// Writes go to the local staging copy: no provider I/O, so this never waits on one.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let (of, staging) = self.write_target(fh)?;
        staging.write_at(offset, data).map_err(|e| Error::from_cache(e, "write"))?;
        of.mark_changed(SystemTime::now());
        Ok(data.len() as u32)
    }

    /// `fallocate` on `fh` (open for writing): see [`Allocate`]. Like a write, the
    /// change is committed by the next `close` or `fsync`.
    pub fn fallocate(&self, fh: u64, offset: u64, len: u64, how: Allocate) -> Result<()> {
        let (of, staging) = self.write_target(fh)?;
        let failed = |e| Error::from_cache(e, "fallocate");
        let size = staging.len().map_err(failed)?;
        let end = offset.checked_add(len).ok_or_else(|| Error::new(ErrorKind::FileTooLarge, "fallocate"))?;
        let mut changed = false;
        if how.zero && offset < size.min(end) {
            let stop = size.min(end);
            let zeros = vec![0u8; (stop - offset).min(ZERO_CHUNK) as usize];
            let mut at = offset;
            while at < stop {
                let n = (stop - at).min(ZERO_CHUNK);
                staging.write_at(at, &zeros[..n as usize]).map_err(failed)?;
                at += n;
            }
            changed = true;
        }
        if !how.keep_size && end > size {
            staging.set_len(end).map_err(failed)?;
            changed = true;
        }
        if changed {
            of.mark_changed(SystemTime::now());
        }
        Ok(())
    }

    /// `copy_file_range`: up to `len` bytes of `fh_in` from `offset_in` written into
    /// `fh_out` (open for writing) at `offset_out`, without passing through the caller.
    /// Copies at most `COPY_CHUNK` per call and stops at the source's end, returning the
    /// bytes copied (callers repeat, as for a short write). The kernel has written
    /// back both ranges before, and refuses overlapping ranges of one file.
    pub async fn copy_range(&self, fh_in: u64, offset_in: u64, fh_out: u64, offset_out: u64, len: u64) -> Result<u64> {
        let (out, staging) = self.write_target(fh_out)?;
        let data = self.read(fh_in, offset_in, len.min(COPY_CHUNK) as u32).await?;
        if data.is_empty() {
            return Ok(0);
        }
        staging.write_at(offset_out, &data).map_err(|e| Error::from_cache(e, "copy_file_range"))?;
        out.mark_changed(SystemTime::now());
        Ok(data.len() as u64)
    }

    /// Whether `flush` of `fh` has a commit to make (and so waits for the disk).
    pub fn has_uncommitted(&self, fh: u64) -> bool {
        self.handle(fh).is_ok_and(|(_, of, _)| of.pending().is_some())
    }

    /// `close` and `fsync`: every byte written so far is committed to the journal (on
    /// local disk, uploaded later) when this returns.
    pub async fn flush(&self, fh: u64) -> Result<()> {
        let (ino, of, _) = self.handle(fh)?;
        self.commit(ino, &of).await
    }

    async fn commit(&self, ino: u64, of: &OpenFile) -> Result<()> {
        let _commit = of.commit.lock().await;
        let Some(generation) = of.pending() else { return Ok(()) };
        let loc = self.locate(ino)?;
        if loc.unlinked {
            of.committed_up_to(generation);
            return Ok(());
        }
        let store = self.store(&loc)?.clone();
        let staging = of.staging().ok_or_else(|| Error::new(ErrorKind::Io, "changed file has no staging copy"))?;
        let deferred = of.deferred_attrs();
        let attrs = Overlay {
            mtime: of.mtime(),
            atime: deferred.atime,
            mode: deferred.mode,
            uid: deferred.uid,
            gid: deferred.gid,
            ..Default::default()
        };
        let path = loc.path.clone();
        off_thread(move || store.commit(&path, &staging, &attrs)).await.map_err(|e| {
            tracing::error!(path = %loc.path, error = %e, "commit failed; the change is only in memory");
            Error::from_cache(e, format!("commit {}", loc.path))
        })?;
        of.attrs_committed();
        of.committed_up_to(generation);
        Ok(())
    }

    pub async fn release(&self, fh: u64) -> Result<()> {
        let Some(h) = self.handles().remove(&fh) else { return Ok(()) };
        let last = self.inodes().get(h.ino).map(|n| n.handles <= 1).unwrap_or(true);
        let result = if last && h.file.is_dirty() { self.commit(h.ino, &h.file).await } else { Ok(()) };
        // Opened for writing and closed unchanged: its copy (taken out of the cache, or
        // downloaded) still holds the version shown, so the cache keeps it. (A written
        // file's copy is its pending change already.)
        let unchanged = last && result.is_ok() && !h.file.ever_changed();
        let loc = unchanged.then(|| self.locate(h.ino));
        self.release_open_file(h.ino);
        if let Some(staging) = h.file.staging()
            && let Some(Ok(loc)) = loc
            && !loc.unlinked
            && loc.place != Place::Virtual
            && !loc.in_trash()
            && let Ok(store) = self.store(&loc)
            && let Err(e) = store.keep_clean_copy(&loc.path, staging)
        {
            tracing::debug!(path = %loc.path, error = %e, "could not keep an unchanged copy as cache");
        }
        result
    }

    pub async fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = name::check(name)?;
        if parent == RECENTS_INO {
            return self.forget_recent(name).await;
        }
        if let Some(done) = self.delete_in_trash(parent, name, FileKind::File).await? {
            return Ok(done);
        }
        let (store, _, path) = self.writable_dir(parent, name)?;
        let entry =
            self.stat_path(&store, &path).await?.ok_or_else(|| Error::new(ErrorKind::NotFound, path.clone()))?;
        if entry.kind == EntryKind::Dir {
            return Err(Error::new(ErrorKind::IsADirectory, path));
        }
        self.keep_open_copy(&store, parent, name, &path).await?;
        store.delete(&path, entry.kind).await.map_err(|e| Error::from_cache(e, format!("unlink {path}")))?;
        self.inodes().detach(parent, name);
        self.touch_dir(&store, parent);
        Ok(())
    }

    /// Before a name stops pointing at a file someone has open, keep its contents
    /// locally so the open descriptors still read (and write) them.
    async fn keep_open_copy(&self, store: &Store, parent: u64, name: &str, path: &str) -> Result<()> {
        let open = {
            let t = self.inodes();
            t.child(parent, name).and_then(|ino| t.get(ino).ok().and_then(|n| n.open.clone()))
        };
        if let Some(of) = open {
            self.ensure_staging(&of, store, path, false).await?;
        }
        Ok(())
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        mode: RenameMode,
    ) -> Result<()> {
        let name = name::check(name)?;
        let newname = name::check(newname)?;
        if newparent == TRASH_INO || self.locate(newparent)?.in_trash() {
            return Err(Error::new(ErrorKind::NotPermitted, "use rm to move things to Trash"));
        }
        // Out of the Trash view: a whole item is restored, or a part of one moved out.
        let from_loc = self.locate(parent)?;
        let (store, from_root, from, restoring) = if parent == TRASH_INO {
            let (root, item, _) = self.trash_named(name).await?;
            let store =
                self.roots[root].store.as_ref().map_err(|w| Error::new(ErrorKind::NotFound, w.clone()))?.clone();
            (store, Some(root), item.path, Some(item.id))
        } else if from_loc.in_trash() {
            (self.store(&from_loc)?.clone(), from_loc.root(), join(&from_loc.path, name), None)
        } else {
            let (store, from_dir, from) = self.writable_dir(parent, name)?;
            (store, from_dir.root(), from, None)
        };
        let from_trash = parent == TRASH_INO || from_loc.in_trash();
        let (_, to_dir, to) = self.writable_dir(newparent, newname)?;
        if from_root != to_dir.root() {
            return Err(Error::new(ErrorKind::CrossesDevices, "rename across providers"));
        }
        if mode == RenameMode::Exchange {
            return Err(Error::new(ErrorKind::InvalidInput, "RENAME_EXCHANGE is not supported"));
        }
        let src = if from_trash { store.stat_any(&from).await } else { store.stat(&from).await };
        let src = src
            .map_err(|e| Error::from_cache(e, format!("stat {from}")))?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, from.clone()))?;
        // Back to where a not yet moved item still is: only the deletion is undone.
        let undelete = restoring.is_some() && from == to;
        if from == to && !undelete {
            return Ok(());
        }
        if src.kind == EntryKind::Dir && to.starts_with(&format!("{from}/")) {
            return Err(Error::new(ErrorKind::InvalidInput, "cannot move a directory into itself"));
        }
        // Before anything at `to` is replaced: a name refused afterwards changes nothing.
        store.check_rename(&from, &to, src.kind).map_err(|e| Error::from_cache(e, format!("rename {from} -> {to}")))?;
        let dst = self.stat_path(&store, &to).await?;
        if let Some(dst) = &dst {
            if mode == RenameMode::NoReplace {
                return Err(Error::new(ErrorKind::AlreadyExists, to));
            }
            match (src.kind == EntryKind::Dir, dst.kind == EntryKind::Dir) {
                (true, false) => return Err(Error::new(ErrorKind::NotADirectory, to)),
                (false, true) => return Err(Error::new(ErrorKind::IsADirectory, to)),
                (true, true) => {
                    let list = store.list(&to).await.map_err(|e| Error::from_cache(e, format!("list {to}")))?;
                    if !list.is_empty() {
                        return Err(Error::new(ErrorKind::DirectoryNotEmpty, to));
                    }
                    // Offline, a rename the journal would refuse must not replace it.
                    store
                        .check_dir_rename_offline(&from, &to)
                        .await
                        .map_err(|e| Error::from_cache(e, format!("rename {from} -> {to}")))?;
                    // Whatever was deleted inside it goes to Trash; the folder itself is
                    // replaced. If it cannot go now (offline), it stays: nothing changes.
                    // A folder made over a deleted one first sends that one to the Trash,
                    // while the made folder still stands to take the deletion back to.
                    let replaced = async {
                        store.settle_path(&to, false).await?;
                        store.delete(&to, EntryKind::Dir).await?;
                        let settled = store.settle_path(&to, false).await;
                        if settled.is_err() {
                            store.undelete(&to)?;
                        }
                        settled
                    };
                    replaced.await.map_err(|e| Error::from_cache(e, format!("rmdir {to}")))?;
                }
                (false, false) => self.keep_open_copy(&store, newparent, newname, &to).await?,
            }
        } else if src.kind != EntryKind::Dir && restoring.is_none() {
            self.settle_for_new(&store, &to, false).await?;
        } else if !undelete {
            self.settle_deleted(&store, &to, src.kind != EntryKind::Dir).await?;
        }
        // A commit in flight for the source must land before the name moves.
        let src_open = {
            let t = self.inodes();
            t.child(parent, name).and_then(|ino| t.get(ino).ok().and_then(|n| n.open.clone()))
        };
        let _commit = match &src_open {
            Some(of) => Some(of.commit.lock().await),
            None => None,
        };
        let moved = match &restoring {
            Some(id) => store.trash_restore(id, Some(&to), dst.is_some()).await.map(|_| ()),
            None => store.rename(&from, &to, src.kind, dst.is_some()).await,
        };
        moved.map_err(|e| Error::from_cache(e, format!("rename {from} -> {to}")))?;
        if let Some(copy) = src_open.as_ref().and_then(|of| of.staging())
            && let Err(e) = store.follow_rename(&to, &copy)
        {
            tracing::warn!(path = %to, error = %e, "could not rebase the open copy of a renamed file");
        }
        if from_trash {
            self.inodes().rename_out_of_trash(parent, name, newparent, newname);
        } else {
            self.inodes().rename(parent, name, newparent, newname);
        }
        if src.kind == EntryKind::Dir {
            self.follow_folder_rename(&store, to_dir.root(), &to);
        }
        self.touch_dir(&store, parent);
        if newparent != parent {
            self.touch_dir(&store, newparent);
        }
        // A rename changes what moved's ctime, as on local filesystems.
        if let Err(e) = store.set_attrs(&to, &Overlay::default()) {
            tracing::warn!(path = %to, error = %e, "could not record the ctime of a rename");
        }
        Ok(())
    }

    /// After the rename of folder `to` (of root `root`), the copy of each file open
    /// below it follows its file as after a file's rename (`Store::follow_rename`): a
    /// provider that renames by copying rewrote every object there.
    fn follow_folder_rename(&self, store: &Store, root: Option<usize>, to: &str) {
        let open: Vec<(u64, Arc<OpenFile>)> = self.handles().values().map(|h| (h.ino, h.file.clone())).collect();
        let below = format!("{to}/");
        for (ino, of) in open {
            let Ok(loc) = self.locate(ino) else { continue };
            if loc.unlinked || loc.root() != root || !loc.path.starts_with(&below) {
                continue;
            }
            if let Some(copy) = of.staging()
                && let Err(e) = store.follow_rename(&loc.path, &copy)
            {
                tracing::warn!(path = %loc.path, error = %e, "could not rebase the open copy of a file in a renamed folder");
            }
        }
    }

    pub async fn symlink(&self, parent: u64, name: &OsStr, target: &OsStr, caller: Caller) -> Result<Attr> {
        let name = name::check(name)?;
        let target =
            target.to_str().ok_or_else(|| Error::new(ErrorKind::IllegalName, "symlink target is not UTF-8"))?;
        let (store, _, path) = self.writable_dir(parent, name)?;
        if self.stat_path(&store, &path).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, path));
        }
        self.settle_for_new(&store, &path, false).await?;
        let (s, p, t) = (store.clone(), path.clone(), target.to_owned());
        off_thread(move || s.symlink(&p, &t, caller.uid, caller.gid))
            .await
            .map_err(|e| Error::from_cache(e, format!("symlink {path}")))?;
        self.touch_dir(&store, parent);
        self.lookup(parent, OsStr::new(name)).await
    }

    pub async fn readlink(&self, ino: u64) -> Result<String> {
        let loc = self.locate(ino)?;
        if loc.kind != FileKind::Symlink {
            return Err(Error::new(ErrorKind::InvalidInput, "not a symlink"));
        }
        let store = self.store(&loc)?.clone();
        store.readlink(&loc.path).await.map_err(|e| Error::from_cache(e, format!("readlink {}", loc.path)))
    }

    /// Hard links cannot be represented on object stores, so none are made anywhere.
    pub fn link(&self) -> Result<Attr> {
        Err(Error::new(ErrorKind::NotPermitted, "hard links are not supported"))
    }

    pub fn statfs(&self) -> Result<StatFs> {
        let Some((_, store)) = self.stores().next() else {
            return Ok(StatFs {
                blocks: 0,
                bfree: 0,
                bavail: 0,
                files: 0,
                ffree: 0,
                bsize: 4096,
                namelen: name::NAME_MAX as u32,
            });
        };
        let s = store.statfs().map_err(|e| Error::from_cache(e, "statfs"))?;
        Ok(StatFs {
            blocks: s.blocks,
            bfree: s.bfree,
            bavail: s.bavail,
            files: s.files,
            ffree: s.ffree,
            bsize: s.bsize,
            namelen: name::NAME_MAX as u32,
        })
    }

    // ---- extended attributes ----------------------------------------------------

    fn xattr_target(&self, ino: u64) -> Result<(Arc<Store>, Located)> {
        let loc = self.locate(ino)?;
        if loc.place == Place::Virtual || loc.unlinked || loc.in_trash() {
            return Err(Error::new(ErrorKind::Unsupported, "no extended attributes here"));
        }
        Ok((self.store(&loc)?.clone(), loc))
    }

    pub fn getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        let name = name.to_str().ok_or_else(|| Error::new(ErrorKind::NoData, "non-UTF-8 attribute"))?;
        let Ok((store, loc)) = self.xattr_target(ino) else {
            return Err(Error::new(ErrorKind::NoData, name.to_owned()));
        };
        match name {
            XATTR_PROVIDER => return Ok(store.name().as_bytes().to_vec()),
            XATTR_STATE => return Ok(self.state_of(&store, &loc).as_bytes().to_vec()),
            XATTR_PINNED => {
                let pinned = match loc.kind {
                    FileKind::Dir => store.is_pinned_dir(&loc.path).map_err(|e| Error::from_cache(e, "getxattr"))?,
                    _ => self.state_of(&store, &loc) == FileState::Pinned.as_str(),
                };
                return Ok(if pinned { b"1".to_vec() } else { b"0".to_vec() });
            }
            _ => {}
        }
        if !name.starts_with("user.") {
            return Err(Error::new(ErrorKind::NoData, name.to_owned()));
        }
        store
            .xattr_get(&loc.path, name)
            .map_err(|e| Error::from_cache(e, "getxattr"))?
            .ok_or_else(|| Error::new(ErrorKind::NoData, name.to_owned()))
    }

    fn state_of(&self, store: &Store, loc: &Located) -> &'static str {
        match &loc.open {
            Some(of) if of.is_dirty() => "dirty",
            _ => store.file_state(&loc.path).as_str(),
        }
    }

    pub fn listxattr(&self, ino: u64) -> Result<Vec<String>> {
        let (store, loc) = self.xattr_target(ino)?;
        let mut names = vec![XATTR_PROVIDER.to_owned(), XATTR_STATE.to_owned(), XATTR_PINNED.to_owned()];
        names.extend(store.xattr_list(&loc.path).map_err(|e| Error::from_cache(e, "listxattr"))?);
        Ok(names)
    }

    pub async fn setxattr(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        create_only: bool,
        replace_only: bool,
    ) -> Result<()> {
        let name = name.to_str().ok_or_else(|| Error::new(ErrorKind::Unsupported, "non-UTF-8 attribute"))?;
        let (store, loc) = self.xattr_target(ino)?;
        match (name, loc.kind) {
            (XATTR_PINNED, FileKind::Dir) => {
                let pin = parse_flag(value)?;
                return store.pin_dir(&loc.path, pin).map_err(|e| Error::from_cache(e, format!("pin {}", loc.path)));
            }
            (XATTR_PINNED, FileKind::File) => {
                let pin = parse_flag(value)?;
                return store.pin_file(&loc.path, pin).await.map_err(|e| {
                    tracing::error!(path = %loc.path, error = %e, "pin failed");
                    Error::from_cache(e, format!("pin {}", loc.path))
                });
            }
            (XATTR_FREE, FileKind::File) => {
                return store.free(&loc.path).map_err(|e| Error::from_cache(e, format!("free {}", loc.path)));
            }
            (XATTR_FREE, FileKind::Dir) => return Ok(()),
            _ => {}
        }
        if name.starts_with(OUR_XATTR_PREFIX) {
            return Err(Error::new(ErrorKind::NotPermitted, format!("{name} is set by oxidrive")));
        }
        if !name.starts_with("user.") {
            return Err(Error::new(ErrorKind::Unsupported, format!("only user.* attributes are kept, not {name}")));
        }
        let exists = store.xattr_get(&loc.path, name).map_err(|e| Error::from_cache(e, "setxattr"))?.is_some();
        if create_only && exists {
            return Err(Error::new(ErrorKind::AlreadyExists, name.to_owned()));
        }
        if replace_only && !exists {
            return Err(Error::new(ErrorKind::NoData, name.to_owned()));
        }
        store.xattr_set(&loc.path, name, value).map_err(|e| Error::from_cache(e, "setxattr"))
    }

    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        let name = name.to_str().ok_or_else(|| Error::new(ErrorKind::NoData, "non-UTF-8 attribute"))?;
        let (store, loc) = self.xattr_target(ino)?;
        if name.starts_with(OUR_XATTR_PREFIX) {
            return Err(Error::new(ErrorKind::NotPermitted, format!("{name} is set by oxidrive")));
        }
        if store.xattr_remove(&loc.path, name).map_err(|e| Error::from_cache(e, "removexattr"))? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::NoData, name.to_owned()))
        }
    }

    /// Commits every changed open file; used before unmounting.
    pub async fn flush_all(&self) -> Result<()> {
        let open: Vec<(u64, Arc<OpenFile>)> = self.handles().values().map(|h| (h.ino, h.file.clone())).collect();
        let mut first_err = None;
        for (ino, of) in open {
            if let Err(e) = self.commit(ino, &of).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn trash_read_only() -> Error {
    Error::new(ErrorKind::ReadOnly, "Trash is read-only: move things out of it to restore them, rm to delete for good")
}

fn parse_flag(value: &[u8]) -> Result<bool> {
    match value {
        b"1" | b"1\n" => Ok(true),
        b"0" | b"0\n" => Ok(false),
        _ => Err(Error::new(ErrorKind::InvalidInput, "use 1 (pin) or 0 (unpin)")),
    }
}

fn kind_of(kind: EntryKind) -> FileKind {
    match kind {
        EntryKind::Dir => FileKind::Dir,
        EntryKind::File => FileKind::File,
        EntryKind::Symlink => FileKind::Symlink,
    }
}

/// Runs `f`, which waits for the disk (a commit's sync: seconds under heavy I/O), on a
/// blocking thread: the calling one may be one of the few serving every request of the
/// mount. On a thread of `block_on_blocking_thread` it runs right there.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> oxidrive_cache::Result<T> + Send + 'static,
) -> oxidrive_cache::Result<T> {
    if ON_BLOCKING_THREAD.get() {
        return f();
    }
    tokio::task::spawn_blocking(f).await.map_err(|e| oxidrive_cache::Error::io("commit", std::io::Error::other(e)))?
}

thread_local! {
    /// Set while `block_on_blocking_thread` runs on this thread.
    static ON_BLOCKING_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `fut` to its end on the calling thread, which must be free to wait for the disk
/// (one of tokio's blocking threads): work `off_thread` would hand to another thread
/// runs here, and whoever replies can do so from here too. A `close` that commits then
/// costs one thread hand-off instead of three.
pub fn block_on_blocking_thread<F: Future>(rt: &tokio::runtime::Handle, fut: F) -> F::Output {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ON_BLOCKING_THREAD.set(self.0);
        }
    }
    let _reset = Reset(ON_BLOCKING_THREAD.replace(true));
    rt.block_on(fut)
}
