//! SQLite index of what providers cannot store: POSIX mode, owner, user-set mtime,
//! symlink targets and extended attributes, keyed by (root, path).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::recents::RecentTouches;
use crate::trash_index::{Tombstone, TrashItem, insert_item, tombstone_add_in};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS attrs(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    parent TEXT NOT NULL,
    mode INTEGER,
    uid INTEGER,
    gid INTEGER,
    mtime_ns INTEGER,
    symlink TEXT,
    remote_mtime_ns INTEGER,
    remote_size INTEGER,
    atime_ns INTEGER,
    ctime_ns INTEGER,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attrs_parent ON attrs(root, parent);
CREATE TABLE IF NOT EXISTS recents(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recents_at ON recents(at_ns);
CREATE TABLE IF NOT EXISTS journal(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    parent TEXT NOT NULL,
    seq INTEGER NOT NULL,
    copy TEXT NOT NULL,
    size INTEGER NOT NULL,
    is_new INTEGER NOT NULL,
    since_ns INTEGER NOT NULL,
    base_size INTEGER,
    base_mtime_ns INTEGER,
    inline_data BLOB,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS remote(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    parent TEXT NOT NULL,
    is_dir INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS remote_parent ON remote(root, parent);
CREATE TABLE IF NOT EXISTS listed(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cached(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    copy TEXT NOT NULL,
    size INTEGER NOT NULL,
    version_ns INTEGER,
    bytes INTEGER NOT NULL,
    pinned INTEGER NOT NULL,
    used_ns INTEGER NOT NULL,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cached_used ON cached(pinned, used_ns);
-- The sums of `cached`, kept by its triggers: every upload and cache fill asks for them,
-- and a scan of the whole table each time made an untar of n files cost n² row reads.
CREATE TABLE IF NOT EXISTS cached_sums(
    one INTEGER PRIMARY KEY CHECK (one = 1),
    bytes INTEGER NOT NULL,
    pinned_bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS cached_sums_insert AFTER INSERT ON cached BEGIN
    UPDATE cached_sums SET bytes = bytes + NEW.bytes,
        pinned_bytes = pinned_bytes + (CASE WHEN NEW.pinned THEN NEW.bytes ELSE 0 END);
END;
CREATE TRIGGER IF NOT EXISTS cached_sums_delete AFTER DELETE ON cached BEGIN
    UPDATE cached_sums SET bytes = bytes - OLD.bytes,
        pinned_bytes = pinned_bytes - (CASE WHEN OLD.pinned THEN OLD.bytes ELSE 0 END);
END;
CREATE TRIGGER IF NOT EXISTS cached_sums_update AFTER UPDATE OF bytes, pinned ON cached BEGIN
    UPDATE cached_sums SET bytes = bytes - OLD.bytes + NEW.bytes,
        pinned_bytes = pinned_bytes - (CASE WHEN OLD.pinned THEN OLD.bytes ELSE 0 END)
            + (CASE WHEN NEW.pinned THEN NEW.bytes ELSE 0 END);
END;
CREATE TABLE IF NOT EXISTS pins(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS renames(
    root TEXT NOT NULL,
    from_path TEXT NOT NULL,
    to_path TEXT NOT NULL,
    is_dir INTEGER NOT NULL,
    PRIMARY KEY(root, from_path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    id TEXT NOT NULL,
    orig TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    is_dir INTEGER NOT NULL,
    remote_size INTEGER,
    remote_mtime_ns INTEGER,
    moved_to TEXT,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trash(
    root TEXT NOT NULL,
    id TEXT NOT NULL,
    orig TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    is_dir INTEGER NOT NULL,
    PRIMARY KEY(root, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS made_dirs(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    parent TEXT NOT NULL,
    PRIMARY KEY(root, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS xattrs(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY(root, path, name)
) WITHOUT ROWID;
";

/// The `attrs` columns `row_to_overlay` reads (then `path`), for the rows matching `$filter`.
macro_rules! select_overlay {
    ($filter:literal) => {
        concat!(
            "SELECT mode, uid, gid, mtime_ns, symlink, remote_mtime_ns, remote_size, atime_ns, ctime_ns, path
             FROM attrs WHERE root = ?1 AND ",
            $filter
        )
    };
}

/// What the index adds on top of a provider object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
    /// Set by `utimens`; never by reads (like a `noatime` mount).
    pub atime: Option<SystemTime>,
    /// The last change of attributes or contents recorded here; what is shown is the
    /// later of this and the mtime (a change by another device moves only that).
    pub ctime: Option<SystemTime>,
    pub symlink: Option<String>,
    /// The provider's (mtime, size) right after our last upload: if the object no
    /// longer matches, another device changed it and our `mtime` no longer applies.
    pub remote: Option<(Option<SystemTime>, u64)>,
}

/// A file's contents waiting to be uploaded: the journal row of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Grows with every commit (across all paths), so an upload knows whether the row
    /// it uploaded is still the newest.
    pub seq: u64,
    /// The local copy holding the committed contents (`LocalCopy` file name).
    pub copy: String,
    /// The committed size in bytes.
    pub size: u64,
    /// True while the provider is known to hold nothing at this path (a new file never
    /// uploaded): then deleting or renaming it needs no provider call.
    pub is_new: bool,
    /// When the oldest change not yet uploaded was committed.
    pub since: SystemTime,
    /// The provider version (size, mtime) the local changes started from; if the
    /// provider shows another one at upload time, someone else changed it: a conflict.
    pub base: Option<(u64, Option<SystemTime>)>,
}

/// What the provider last showed at a path: the namespace while it is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteEntry {
    pub is_dir: bool,
    pub size: u64,
    pub mtime: Option<SystemTime>,
}

/// Cached contents of one provider file (clean: equal to the provider's version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEntry {
    /// The `LocalCopy` holding the blocks fetched so far.
    pub copy: String,
    pub size: u64,
    /// The provider mtime of the version cached (with `size`, what a stat must match).
    pub version: Option<SystemTime>,
    /// Bytes on local disk.
    pub bytes: u64,
    pub pinned: bool,
}

/// What a commit records: the copy holding the contents, their size, whether the
/// provider holds nothing at the path yet, and the file's mtime to keep.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub copy: &'a str,
    pub size: u64,
    pub is_new: bool,
    /// Kept from the first commit not yet uploaded.
    pub base: Option<(u64, Option<SystemTime>)>,
    /// Times, mode and owner changed since the last commit (`None` fields stay as
    /// recorded; the ctime is the commit's own).
    pub attrs: &'a Overlay,
    /// Notes the file in the recents table, at this time.
    pub recent: Option<SystemTime>,
    /// The contents themselves, sealed (`LocalCopy::inline_image`), for a small file
    /// whose copy file is not synced: this transaction makes them durable.
    pub inline: Option<&'a [u8]>,
    /// The file is new (`Store::create_file`): its attributes, recorded first, and the
    /// time its folder's mtime becomes.
    pub created: Option<&'a Overlay>,
}

/// Lock order: the connection mutex is a leaf; it is never held across an `.await`.
pub struct Index {
    conn: Mutex<Connection>,
    /// The next journal sequence number (kept here, not found by a scan of the journal
    /// at every commit). Only changed while the connection is locked.
    next_seq: AtomicU64,
    recents: RecentTouches,
    /// The write-ahead log, opened at the first `sync` that finds it.
    wal: OnceLock<std::fs::File>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Index")
    }
}

impl Drop for Index {
    /// A clean unmount keeps the Recents touches still waiting.
    fn drop(&mut self) {
        if let Err(e) = self.in_tx(|tx| self.recents.write_in(tx)) {
            tracing::warn!(error = %e, "recent files not recorded");
        }
    }
}

/// Held while a connection is opened (and keyed). The first open in a process
/// initializes SQLite, and SQLCipher's part of that runs after SQLite counts as
/// initialized: a keyed open on another thread meanwhile failed "An error occurred with
/// PRAGMA key or rekey" (SQLCipher not ready yet). A mount opens its index once, so this
/// costs nothing.
static OPENING: Mutex<()> = Mutex::new(());

impl Index {
    /// Opens (or creates) the index. With a key the whole database file is encrypted
    /// (SQLCipher, AES-256), so paths, names, symlink targets and xattrs stay unreadable
    /// without it.
    pub fn open(path: &Path, key: Option<&[u8; 32]>) -> Result<Self> {
        let _opening = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(code) = crate::index_cipher::register() {
            tracing::warn!(code, "index pages stay with SQLCipher's OpenSSL cryptography (slower)");
        }
        // Pages are authenticated with HMAC-SHA256, about three times faster here than
        // SQLCipher's default SHA512 (SHA extensions), and every page a commit writes
        // costs one. Indexes made before use SHA512, and are opened so.
        let conn = match Self::connect(path, key, true) {
            Err(_) if key.is_some() => Self::connect(path, key, false)?,
            opened => opened?,
        };
        Self::init(conn)
    }

    fn connect(path: &Path, key: Option<&[u8; 32]>, sha256: bool) -> Result<Connection> {
        let conn = Connection::open(path)?;
        if let Some(key) = key {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            conn.execute_batch(&format!("PRAGMA key = \"x'{hex}'\";"))?;
            if sha256 {
                conn.execute_batch("PRAGMA cipher_hmac_algorithm = HMAC_SHA256;")?;
            }
        }
        // One mount owns its index: exclusive locking spares the POSIX lock calls and the
        // shared-memory index SQLite makes for every transaction otherwise (about a
        // hundred fcntl calls per file untarred), and keeps a second mount of the same
        // state out. Set before the first read, so no shared memory is ever used.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        // Fails here ("file is not a database") when the key (or HMAC) does not match.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(conn)
    }

    pub fn in_memory() -> Result<Self> {
        // Opening may be the process's first use of SQLite (see `OPENING`).
        let conn = {
            let _opening = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
            Connection::open_in_memory()?
        };
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self> {
        // WAL with NORMAL sync: every change survives a crash of the process; a power
        // cut may lose the last moments of attribute changes (never file contents, which
        // live on the provider), in exchange for no fsync per metadata change. Journal
        // commits are synced by `sync`.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Room for every statement the index runs, those made per table included (the
        // default 16 is fewer: they would be parsed again each time).
        conn.set_prepared_statement_cache_capacity(256);
        // Small files' contents pass through the journal (inline commits); a page cache
        // larger than the default 2 MiB keeps the tables' pages in memory meanwhile, so
        // they are not read and decrypted again.
        conn.pragma_update(None, "cache_size", -8192)?;
        conn.execute_batch(SCHEMA)?;
        // Journals made before conflict detection lack the base columns; before inline
        // commits, the contents column; tombstones before renames in the journal, `moved_to`,
        // before new files over offline deletes, `replaced`; attributes before atime and
        // ctime were kept, those.
        for (table, column, kind) in [
            ("attrs", "atime_ns", "INTEGER"),
            ("attrs", "ctime_ns", "INTEGER"),
            ("journal", "base_size", "INTEGER"),
            ("journal", "base_mtime_ns", "INTEGER"),
            ("journal", "inline_data", "BLOB"),
            ("tombstones", "moved_to", "TEXT"),
            ("tombstones", "replaced", "INTEGER"),
        ] {
            let has: bool = conn
                .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?
                .exists(params![column])?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
        // Indexes made before the sums were kept: summed once (the triggers keep them
        // from here on).
        if !conn.prepare("SELECT 1 FROM cached_sums")?.exists([])? {
            conn.execute(
                "INSERT INTO cached_sums (one, bytes, pinned_bytes) SELECT 1, COALESCE(SUM(bytes), 0),
                 COALESCE(SUM(CASE WHEN pinned THEN bytes ELSE 0 END), 0) FROM cached",
                [],
            )?;
        }
        let max_seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM journal", [], |r| r.get(0))?;
        Ok(Self {
            conn: Mutex::new(conn),
            next_seq: AtomicU64::new(max_seq as u64 + 1),
            recents: RecentTouches::default(),
            wal: OnceLock::new(),
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, root: &str, path: &str) -> Result<Option<Overlay>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(select_overlay!("path = ?2"))?;
        Ok(stmt.query_row(params![root, path], row_to_overlay).optional()?)
    }

    /// Overlays of the direct children of `dir`, by name.
    pub fn children(&self, root: &str, dir: &str) -> Result<Vec<(String, Overlay)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(select_overlay!("parent = ?2"))?;
        let rows = stmt.query_map(params![root, dir], |row| {
            let path: String = row.get(9)?;
            Ok((name_of(&path).to_owned(), row_to_overlay(row)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Reads, changes and writes back one overlay in a single transaction.
    pub fn update(&self, root: &str, path: &str, change: impl FnOnce(&mut Overlay)) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        update_in(&tx, root, path, change)?;
        tx.commit()?;
        Ok(())
    }

    /// Puts a fresh overlay at `path`, dropping whatever was recorded at or below it.
    pub fn replace(&self, root: &str, path: &str, ov: &Overlay) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        self.delete_tree(&tx, root, path)?;
        insert(&tx, root, path, ov)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a folder made here and not yet on the provider, in one transaction: its
    /// attributes `ov` replacing whatever was recorded at or below `path`, its journal
    /// row, and its parent's new mtime. The caller syncs it (`sync`, off the threads
    /// serving requests).
    pub fn journal_mkdir(&self, root: &str, path: &str, ov: &Overlay) -> Result<()> {
        self.in_tx(|tx| {
            self.delete_tree(tx, root, path)?;
            insert(tx, root, path, ov)?;
            tx.prepare_cached("INSERT INTO made_dirs (root, path, parent) VALUES (?1, ?2, ?3)")?.execute(params![
                root,
                path,
                parent_of(path)
            ])?;
            set_mtime_in(tx, root, parent_of(path), ov.mtime)
        })
    }

    /// The folders made here that the provider does not have yet, parents first.
    pub fn made_dirs(&self, root: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT path FROM made_dirs WHERE root = ?1 ORDER BY path")?;
        let rows = stmt.query_map(params![root], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A made folder is on the provider now: its journal row goes, and the mirror has
    /// it; if we `created` it, the mirror also knows its listing (empty).
    pub fn made_dir_created(&self, root: &str, path: &str, created: bool) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached("DELETE FROM made_dirs WHERE root = ?1 AND path = ?2")?.execute(params![root, path])?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO remote (root, path, parent, is_dir, size, mtime_ns) VALUES (?1, ?2, ?3, 1, 0, NULL)",
        )?
        .execute(params![root, path, parent_of(path)])?;
        if created {
            tx.prepare_cached("INSERT OR IGNORE INTO listed (root, path) VALUES (?1, ?2)")?
                .execute(params![root, path])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a path and everything below it.
    pub fn remove_tree(&self, root: &str, path: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        self.delete_tree(&tx, root, path)?;
        tx.commit()?;
        Ok(())
    }

    /// Moves a path and everything below it; whatever was at `to` is dropped first.
    pub fn rename_tree(&self, root: &str, from: &str, to: &str) -> Result<()> {
        self.rename_tree_with(root, from, to, false, None)
    }

    /// `rename_tree`, in the same transaction marking the moved journal row as maybe on
    /// the provider (it replaced an uploaded file) and finishing a rename intent: a
    /// crash never leaves half of it.
    pub fn rename_tree_with(
        &self,
        root: &str,
        from: &str,
        to: &str,
        maybe_remote: bool,
        intent_done: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        self.recents.write_in(&tx)?;
        move_tree_in(&tx, root, from, to, &PATH_TABLES)?;
        if maybe_remote {
            tx.execute("UPDATE journal SET is_new = 0 WHERE root = ?1 AND path = ?2", params![root, to])?;
        }
        if let Some(intent) = intent_done {
            tx.execute("DELETE FROM renames WHERE root = ?1 AND from_path = ?2", params![root, intent])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A file the provider holds, renamed in the journal (see `journaled_rename.rs`),
    /// in one transaction (the caller syncs it, like `journal_mkdir`): what this device
    /// records of `from` (attributes, extended attributes, Recents, pin, pending change)
    /// moves to `to`, whose pending change becomes one of `to` (`is_new`, from `base`);
    /// the mirror of what the provider holds at both names stays as it is; `from` gets
    /// `tombstone`. `item`: `to` is the data of this new trash item, recorded too.
    #[allow(clippy::too_many_arguments)]
    pub fn journal_rename(
        &self,
        root: &str,
        from: &str,
        to: &str,
        is_new: bool,
        base: Option<(u64, Option<SystemTime>)>,
        tombstone: &Tombstone,
        item: Option<&TrashItem>,
    ) -> Result<()> {
        self.in_tx(|tx| {
            self.recents.write_in(tx)?;
            move_tree_in(tx, root, from, to, &LOCAL_TABLES)?;
            let (bs, bm) = base_cols(base);
            tx.execute(
                "UPDATE journal SET is_new = ?3, base_size = ?4, base_mtime_ns = ?5 WHERE root = ?1 AND path = ?2",
                params![root, to, is_new, bs, bm],
            )?;
            if let Some(item) = item {
                insert_item(tx, root, item)?;
            }
            tombstone_add_in(tx, root, tombstone)
        })
    }

    /// A folder the provider holds, renamed in the journal (see `folder_rename.rs`), in
    /// one transaction (the caller syncs it): what this device records at and below
    /// `from`, its made folders included, moves to `to`; every pending change there
    /// becomes a new file (the provider has nothing at `to`); `made` become folders to
    /// create; files renamed in the journal into the old folder follow to the new one;
    /// `tombstones` hide the old names. The mirror of the old folder stays as it is.
    pub fn journal_rename_dir(
        &self,
        root: &str,
        from: &str,
        to: &str,
        made: &[String],
        tombstones: &[Tombstone],
    ) -> Result<()> {
        self.in_tx(|tx| {
            self.recents.write_in(tx)?;
            move_tree_in(tx, root, from, to, &LOCAL_TABLES)?;
            move_tree_in(tx, root, from, to, &["made_dirs"])?;
            let (lo, hi) = subtree_bounds(to);
            tx.execute(
                "UPDATE journal SET is_new = 1, base_size = NULL, base_mtime_ns = NULL
                 WHERE root = ?1 AND path >= ?2 AND path < ?4 AND (path = ?2 OR path > ?3)",
                params![root, to, lo, hi],
            )?;
            for dir in made {
                tx.prepare_cached("INSERT OR REPLACE INTO made_dirs (root, path, parent) VALUES (?1, ?2, ?3)")?
                    .execute(params![root, dir, parent_of(dir)])?;
            }
            let (lo, hi) = subtree_bounds(from);
            tx.execute(
                "UPDATE tombstones SET moved_to = ?2 || substr(moved_to, length(?3) + 1)
                 WHERE root = ?1 AND moved_to >= ?3 AND moved_to < ?5 AND (moved_to = ?3 OR moved_to > ?4)",
                params![root, to, from, lo, hi],
            )?;
            for t in tombstones {
                tombstone_add_in(tx, root, t)?;
            }
            Ok(())
        })
    }

    /// Commits a file's new contents to the journal, with its mtime and changed
    /// attributes, in one transaction: it survives a crash of this process, and a
    /// power cut once the caller has synced (`sync`). Returns the new sequence number.
    pub fn journal_commit(&self, root: &str, path: &str, c: &Commit<'_>) -> Result<JournalEntry> {
        let body = |tx: &rusqlite::Transaction<'_>| {
            let a = c.attrs;
            let ctime = Some(SystemTime::now());
            if let Some(created) = c.created {
                // The commit's attributes folded in: one write of the new row.
                let ov = Overlay {
                    mtime: a.mtime.or(created.mtime),
                    atime: a.atime.or(created.atime),
                    ctime,
                    mode: a.mode.or(created.mode),
                    uid: a.uid.or(created.uid),
                    gid: a.gid.or(created.gid),
                    ..created.clone()
                };
                insert(tx, root, path, &ov)?;
                set_mtime_in(tx, root, parent_of(path), created.mtime)?;
            } else {
                set_attrs_in(tx, root, path, &Overlay { ctime, ..a.clone() })?;
            }
            let entry = self.journal_put(tx, root, path, c)?;
            if let Some(at) = c.recent {
                self.recents.touch(root, path, at);
            }
            Ok(entry)
        };
        self.in_tx(body)
    }

    /// Forgets everything recorded at and below `path` inside `tx` (waiting Recents
    /// touches there included).
    fn delete_tree(&self, tx: &rusqlite::Transaction<'_>, root: &str, path: &str) -> rusqlite::Result<()> {
        self.recents.write_in(tx)?;
        delete_tree_in(tx, root, path, &PATH_TABLES)
    }

    /// Runs `body` in one transaction (not synced: see `sync`), with the Recents touches
    /// waiting, if a batch is due.
    fn in_tx<T>(&self, body: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let value = body(&tx)?;
        if self.recents.due() {
            self.recents.write_in(&tx)?;
        }
        tx.commit()?;
        Ok(value)
    }

    /// Makes every transaction committed so far survive a power cut.
    ///
    /// It syncs the write-ahead log, which is what `synchronous = FULL` does at each
    /// commit. Here it runs with the connection unlocked: under heavy disk traffic a
    /// sync takes seconds, and lookups, listings and other commits must not wait for it
    /// (a sync covers every commit before it, so concurrent ones share the wait).
    /// SQLite's own syncs at checkpoints stay as they are.
    pub fn sync(&self) -> Result<()> {
        let wal = match self.wal.get() {
            Some(wal) => wal,
            None => {
                let Some(db) = self.conn().path().filter(|p| !p.is_empty()).map(str::to_owned) else {
                    return Ok(()); // in memory
                };
                // SQLite makes the log at the first write and keeps its inode until the
                // last connection closes (a checkpoint rewinds it in place): this handle
                // stays valid. No log (none written yet, or a file system without WAL
                // support, where commits go to the database file): that file is synced.
                match std::fs::File::open(format!("{db}-wal")) {
                    Ok(file) => self.wal.get_or_init(|| file),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return std::fs::File::open(&db)
                            .and_then(|f| f.sync_data())
                            .map_err(|e| Error::io("sync the metadata index", e));
                    }
                    Err(e) => return Err(Error::io("open the metadata index's log", e)),
                }
            }
        };
        wal.sync_data().map_err(|e| Error::io("sync the metadata index", e))
    }

    /// Records a new empty file in one transaction (not synced: see `journal_commit`):
    /// its attributes `ov` replacing whatever was recorded at or below `path`, its
    /// journal row naming `copy`, a recents entry, and its folder's new mtime.
    pub fn journal_create(&self, root: &str, path: &str, ov: &Overlay, copy: &str) -> Result<JournalEntry> {
        let now = SystemTime::now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        self.delete_tree(&tx, root, path)?;
        insert(&tx, root, path, ov)?;
        let new = Commit {
            copy,
            size: 0,
            is_new: true,
            base: None,
            attrs: &Overlay::default(),
            recent: None,
            // Empty, so a restart finds it even if its copy never reached a file.
            inline: Some(&[]),
            created: None,
        };
        let entry = self.journal_put(&tx, root, path, &new)?;
        self.recents.touch(root, path, now);
        set_mtime_in(&tx, root, parent_of(path), Some(now))?;
        if self.recents.due() {
            self.recents.write_in(&tx)?;
        }
        tx.commit()?;
        Ok(entry)
    }

    /// Writes the journal row of one commit inside `tx`.
    fn journal_put(
        &self,
        tx: &rusqlite::Transaction<'_>,
        root: &str,
        path: &str,
        c: &Commit<'_>,
    ) -> rusqlite::Result<JournalEntry> {
        type Old = (bool, i64, Option<(u64, Option<SystemTime>)>);
        let old: Option<Old> = tx
            .prepare_cached(
                "SELECT is_new, since_ns, base_size, base_mtime_ns FROM journal WHERE root = ?1 AND path = ?2",
            )?
            .query_row(params![root, path], |r| Ok((r.get(0)?, r.get(1)?, base_of(r.get(2)?, r.get(3)?))))
            .optional()?;
        // The caller holds the connection lock, so no other commit takes this number.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let entry = JournalEntry {
            seq,
            copy: c.copy.to_owned(),
            size: c.size,
            // Once something may be on the provider, it stays "maybe there".
            is_new: old.map_or(c.is_new, |(was_new, ..)| was_new && c.is_new),
            since: old.map_or_else(SystemTime::now, |(_, since, _)| from_ns(since)),
            base: old.map_or(c.base, |(.., b)| b),
        };
        let (bs, bm) = base_cols(entry.base);
        tx.prepare_cached(
            "INSERT OR REPLACE INTO journal
             (root, path, parent, seq, copy, size, is_new, since_ns, base_size, base_mtime_ns, inline_data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            root,
            path,
            parent_of(path),
            seq as i64,
            c.copy,
            c.size as i64,
            entry.is_new,
            to_ns(entry.since),
            bs,
            bm,
            c.inline
        ])?;
        Ok(entry)
    }

    /// Every journal row of one root, by path.
    pub fn journal(&self, root: &str) -> Result<Vec<(String, JournalEntry)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT path, seq, copy, size, is_new, since_ns, base_size, base_mtime_ns
             FROM journal WHERE root = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![root], |r| {
            Ok((
                r.get(0)?,
                JournalEntry {
                    seq: r.get::<_, i64>(1)? as u64,
                    copy: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    is_new: r.get(4)?,
                    since: from_ns(r.get(5)?),
                    base: base_of(r.get(6)?, r.get(7)?),
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The contents a commit of `path` carried inline, if it did.
    pub fn journal_inline(&self, root: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT inline_data FROM journal WHERE root = ?1 AND path = ?2")?;
        Ok(stmt.query_row(params![root, path], |r| r.get::<_, Option<Vec<u8>>>(0)).optional()?.flatten())
    }

    /// Every local copy a journal or cache row (of any root) refers to.
    pub fn referenced_copies(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT copy FROM journal UNION SELECT copy FROM cached")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// After an upload of row `seq`: drops the row unless a newer commit replaced it,
    /// and records the provider's (mtime, size) as ours. Returns whether it dropped it.
    pub fn journal_uploaded(
        &self,
        root: &str,
        path: &str,
        seq: u64,
        remote: Option<(Option<SystemTime>, u64)>,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx
            .prepare_cached("DELETE FROM journal WHERE root = ?1 AND path = ?2 AND seq = ?3")?
            .execute(params![root, path, seq as i64])?;
        if n == 0 {
            // A newer commit stays; its changes now start from what we just uploaded.
            let (bs, bm) = base_cols(remote.map(|(m, s)| (s, m)));
            tx.prepare_cached(
                "UPDATE journal SET is_new = 0, base_size = ?3, base_mtime_ns = ?4 WHERE root = ?1 AND path = ?2",
            )?
            .execute(params![root, path, bs, bm])?;
        }
        let (rm, rs) = match remote {
            Some((m, s)) => (m.map(to_ns), Some(s as i64)),
            None => (None, None),
        };
        tx.prepare_cached(
            "INSERT INTO attrs (root, path, parent, remote_mtime_ns, remote_size) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(root, path) DO UPDATE SET remote_mtime_ns = ?4, remote_size = ?5",
        )?
        .execute(params![root, path, parent_of(path), rm, rs])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Sets the provider version a pending change starts from (after our own rename
    /// rewrote the object, so it is not mistaken for someone else's change).
    pub fn journal_set_base(&self, root: &str, path: &str, base: Option<(u64, Option<SystemTime>)>) -> Result<()> {
        let (bs, bm) = base_cols(base);
        self.conn()
            .prepare_cached("UPDATE journal SET base_size = ?3, base_mtime_ns = ?4 WHERE root = ?1 AND path = ?2")?
            .execute(params![root, path, bs, bm])?;
        Ok(())
    }

    /// Sets both "nothing on the provider yet" and the base version of a pending row.
    pub fn journal_set_state(
        &self,
        root: &str,
        path: &str,
        is_new: bool,
        base: Option<(u64, Option<SystemTime>)>,
    ) -> Result<()> {
        let (bs, bm) = base_cols(base);
        self.conn()
            .prepare_cached(
                "UPDATE journal SET is_new = ?3, base_size = ?4, base_mtime_ns = ?5 WHERE root = ?1 AND path = ?2",
            )?
            .execute(params![root, path, is_new, bs, bm])?;
        Ok(())
    }

    /// Whether any row of any path table is at or below `path`.
    pub fn has_tree(&self, root: &str, path: &str) -> Result<bool> {
        // One statement for all tables: every new file asks, and ten queries took 40 us.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let any: Vec<String> = PATH_TABLES
                .iter()
                .map(|table| {
                    format!(
                        "EXISTS (SELECT 1 FROM {table} WHERE root = ?1 AND path >= ?2 AND path < ?4 \
                         AND (path = ?2 OR path > ?3))"
                    )
                })
                .collect();
            format!("SELECT {}", any.join(" OR "))
        });
        let (lo, hi) = subtree_bounds(path);
        Ok(self.conn().prepare_cached(&SQL)?.query_row(params![root, path, lo, hi], |r| r.get(0))?)
    }

    /// Records a rename about to happen on the provider (see `Store::recover_renames`).
    pub fn rename_intent(&self, root: &str, from: &str, to: &str, is_dir: bool) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO renames (root, from_path, to_path, is_dir) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![root, from, to, is_dir])?;
        Ok(())
    }

    pub fn rename_intent_done(&self, root: &str, from: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM renames WHERE root = ?1 AND from_path = ?2")?
            .execute(params![root, from])?;
        Ok(())
    }

    /// Renames recorded and not finished: (from, to, is_dir).
    pub fn rename_intents(&self, root: &str) -> Result<Vec<(String, String, bool)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT from_path, to_path, is_dir FROM renames WHERE root = ?1")?;
        let rows = stmt.query_map(params![root], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets the pending change of one path (the file was deleted before upload).
    pub fn journal_remove(&self, root: &str, path: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM journal WHERE root = ?1 AND path = ?2")?
            .execute(params![root, path])?;
        Ok(())
    }

    /// Records what the provider shows at `path` (`None`: nothing).
    pub fn remote_put(&self, root: &str, path: &str, entry: Option<RemoteEntry>) -> Result<()> {
        if path.is_empty() {
            // The top folder is nobody's child: no row, or it would list as one.
            return Ok(());
        }
        let conn = self.conn();
        match entry {
            Some(e) => conn.prepare_cached("INSERT OR REPLACE INTO remote (root, path, parent, is_dir, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![root, path, parent_of(path), e.is_dir, e.size as i64, e.mtime.map(to_ns)])?,
            None => conn.prepare_cached("DELETE FROM remote WHERE root = ?1 AND path = ?2")?.execute(params![root, path])?,
        };
        Ok(())
    }

    pub fn remote_get(&self, root: &str, path: &str) -> Result<Option<RemoteEntry>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT is_dir, size, mtime_ns FROM remote WHERE root = ?1 AND path = ?2")?;
        Ok(stmt.query_row(params![root, path], row_to_remote).optional()?)
    }

    /// Replaces what is recorded of a directory's children with a fresh listing.
    pub fn remote_set_children(&self, root: &str, dir: &str, children: &[(String, RemoteEntry)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Unchanged listings (the common case) write nothing.
        let old: std::collections::HashMap<String, RemoteEntry> = {
            let mut stmt =
                tx.prepare_cached("SELECT is_dir, size, mtime_ns, path FROM remote WHERE root = ?1 AND parent = ?2")?;
            let rows = stmt.query_map(params![root, dir], |r| {
                Ok((name_of(&r.get::<_, String>(3)?).to_owned(), row_to_remote(r)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let listed =
            tx.prepare_cached("SELECT 1 FROM listed WHERE root = ?1 AND path = ?2")?.exists(params![root, dir])?;
        let same = listed && old.len() == children.len() && children.iter().all(|(n, e)| old.get(n) == Some(e));
        if !same {
            tx.prepare_cached("DELETE FROM remote WHERE root = ?1 AND parent = ?2")?.execute(params![root, dir])?;
            // Parsed once for every row, not once per row.
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO remote (root, path, parent, is_dir, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (name, e) in children {
                let path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
                insert.execute(params![root, path, dir, e.is_dir, e.size as i64, e.mtime.map(to_ns)])?;
            }
            drop(insert);
            tx.prepare_cached("INSERT OR IGNORE INTO listed (root, path) VALUES (?1, ?2)")?
                .execute(params![root, dir])?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The recorded children of `dir`, or `None` if it was never listed completely.
    pub fn remote_children(&self, root: &str, dir: &str) -> Result<Option<Vec<(String, RemoteEntry)>>> {
        let conn = self.conn();
        if !conn.prepare_cached("SELECT 1 FROM listed WHERE root = ?1 AND path = ?2")?.exists(params![root, dir])? {
            return Ok(None);
        }
        // `path != ''`: a row for the top folder itself (older runs wrote one) is no child.
        let mut stmt = conn.prepare_cached(
            "SELECT is_dir, size, mtime_ns, path FROM remote WHERE root = ?1 AND parent = ?2 AND path != ''",
        )?;
        let rows = stmt
            .query_map(params![root, dir], |r| Ok((name_of(&r.get::<_, String>(3)?).to_owned(), row_to_remote(r)?)))?;
        Ok(Some(rows.collect::<rusqlite::Result<_>>()?))
    }

    /// The files recorded below `dir` (at any depth), with what the provider showed.
    pub fn remote_files_below(&self, root: &str, dir: &str) -> Result<Vec<(String, RemoteEntry)>> {
        let (lo, hi) = subtree_bounds(dir);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT is_dir, size, mtime_ns, path FROM remote
             WHERE root = ?1 AND path > ?2 AND path < ?3 AND is_dir = 0",
        )?;
        let rows = stmt.query_map(params![root, lo, hi], |r| Ok((r.get::<_, String>(3)?, row_to_remote(r)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The folders of one root whose listing is recorded (what the poller re-lists).
    pub fn remote_listed_dirs(&self, root: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT path FROM listed WHERE root = ?1 ORDER BY path")?;
        let rows = stmt.query_map(params![root], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets what the provider showed at and below `path` (it is gone there).
    pub fn remote_forget_tree(&self, root: &str, path: &str) -> Result<()> {
        Ok(forget_tree_in(&self.conn(), root, path, &["remote", "listed"])?)
    }

    /// Whether `dir`'s listing is recorded (so a name missing from it is known absent).
    pub fn remote_listed(&self, root: &str, dir: &str) -> Result<bool> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT 1 FROM listed WHERE root = ?1 AND path = ?2")?;
        Ok(stmt.query_row(params![root, dir], |_| Ok(())).optional()?.is_some())
    }

    pub fn cached_get(&self, root: &str, path: &str) -> Result<Option<CachedEntry>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT copy, size, version_ns, bytes, pinned FROM cached WHERE root = ?1 AND path = ?2")?;
        Ok(stmt.query_row(params![root, path], row_to_cached).optional()?)
    }

    pub fn cached_put(&self, root: &str, path: &str, e: &CachedEntry) -> Result<()> {
        // An upsert, not `INSERT OR REPLACE`: the row it replaces must leave the sums
        // (a replace's delete fires no trigger).
        self.conn()
            .prepare_cached(
                "INSERT INTO cached (root, path, copy, size, version_ns, bytes, pinned, used_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (root, path) DO UPDATE SET copy = excluded.copy, size = excluded.size,
             version_ns = excluded.version_ns, bytes = excluded.bytes, pinned = excluded.pinned,
             used_ns = excluded.used_ns",
            )?
            .execute(params![
                root,
                path,
                e.copy,
                e.size as i64,
                e.version.map(to_ns),
                e.bytes as i64,
                e.pinned,
                to_ns(SystemTime::now())
            ])?;
        Ok(())
    }

    /// Notes a use (for LRU eviction) and the bytes the copy now takes.
    pub fn cached_touch(&self, root: &str, path: &str, bytes: u64) -> Result<()> {
        self.conn()
            .prepare_cached("UPDATE cached SET used_ns = ?3, bytes = ?4 WHERE root = ?1 AND path = ?2")?
            .execute(params![root, path, to_ns(SystemTime::now()), bytes as i64])?;
        Ok(())
    }

    pub fn cached_set_pinned(&self, root: &str, path: &str, pinned: bool) -> Result<()> {
        self.conn()
            .prepare_cached("UPDATE cached SET pinned = ?3 WHERE root = ?1 AND path = ?2")?
            .execute(params![root, path, pinned])?;
        Ok(())
    }

    /// Drops a cache row; returns the copy it named.
    pub fn cached_remove(&self, root: &str, path: &str) -> Result<Option<String>> {
        let conn = self.conn();
        let copy: Option<String> = conn
            .prepare_cached("SELECT copy FROM cached WHERE root = ?1 AND path = ?2")?
            .query_row(params![root, path], |r| r.get(0))
            .optional()?;
        // Most commits are of files with no cached copy: no write transaction for them.
        if copy.is_some() {
            conn.prepare_cached("DELETE FROM cached WHERE root = ?1 AND path = ?2")?.execute(params![root, path])?;
        }
        Ok(copy)
    }

    /// Total bytes of all cached copies, and those of pinned ones.
    pub fn cached_totals(&self) -> Result<(u64, u64)> {
        let conn = self.conn();
        let (all, pinned): (i64, i64) = conn
            .prepare_cached("SELECT bytes, pinned_bytes FROM cached_sums")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((all as u64, pinned as u64))
    }

    /// Unpinned cache rows of all roots, least recently used first: (root, path, bytes).
    pub fn cached_lru(&self, limit: usize) -> Result<Vec<(String, String, u64)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT root, path, bytes FROM cached WHERE pinned = 0 ORDER BY used_ns LIMIT ?1")?;
        let rows = stmt.query_map(params![limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks a folder pinned (new files under it are kept too) or not.
    pub fn pin_dir(&self, root: &str, path: &str, pinned: bool) -> Result<()> {
        let conn = self.conn();
        if pinned {
            conn.execute("INSERT OR IGNORE INTO pins (root, path) VALUES (?1, ?2)", params![root, path])?;
        } else {
            conn.execute("DELETE FROM pins WHERE root = ?1 AND path = ?2", params![root, path])?;
        }
        Ok(())
    }

    /// Whether `path` is a pinned folder or lies below one.
    pub fn under_pin(&self, root: &str, path: &str) -> Result<bool> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT 1 FROM pins WHERE root = ?1 AND path = ?2")?;
        let mut p = path;
        loop {
            if stmt.query_row(params![root, p], |_| Ok(())).optional()?.is_some() {
                return Ok(true);
            }
            if p.is_empty() {
                return Ok(false);
            }
            p = parent_of(p);
        }
    }

    /// Records that a file was just created, written or opened (written to the table
    /// with the next batch: see `recents.rs`).
    pub fn recent_touch(&self, root: &str, path: &str, at: SystemTime) -> Result<()> {
        self.recents.touch(root, path, at);
        if self.recents.due() {
            self.in_tx(|_| Ok(()))?;
        }
        Ok(())
    }

    /// The newest `limit` recent paths of one root, newest first.
    pub fn recent_list(&self, root: &str, limit: usize) -> Result<Vec<(String, SystemTime)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        self.recents.write_in(&tx)?;
        let rows = tx
            .prepare_cached("SELECT path, at_ns FROM recents WHERE root = ?1 ORDER BY at_ns DESC LIMIT ?2")?
            .query_map(params![root, limit as i64], |r| Ok((r.get(0)?, from_ns(r.get(1)?))))?
            .collect::<rusqlite::Result<_>>()?;
        tx.commit()?;
        Ok(rows)
    }

    pub fn recent_remove(&self, root: &str, path: &str) -> Result<()> {
        self.in_tx(|tx| {
            self.recents.write_in(tx)?;
            tx.execute("DELETE FROM recents WHERE root = ?1 AND path = ?2", params![root, path])?;
            Ok(())
        })
    }

    pub fn xattr_get(&self, root: &str, path: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT value FROM xattrs WHERE root = ?1 AND path = ?2 AND name = ?3")?;
        Ok(stmt.query_row(params![root, path, name], |r| r.get(0)).optional()?)
    }

    pub fn xattr_list(&self, root: &str, path: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT name FROM xattrs WHERE root = ?1 AND path = ?2 ORDER BY name")?;
        let rows = stmt.query_map(params![root, path], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn xattr_set(&self, root: &str, path: &str, name: &str, value: &[u8]) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO xattrs (root, path, name, value) VALUES (?1, ?2, ?3, ?4)",
            params![root, path, name, value],
        )?;
        Ok(())
    }

    /// Returns whether the attribute existed.
    pub fn xattr_remove(&self, root: &str, path: &str, name: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM xattrs WHERE root = ?1 AND path = ?2 AND name = ?3", params![root, path, name])?;
        Ok(n > 0)
    }
}

/// Tables keyed by (root, path) that follow their paths through renames and deletes.
const PATH_TABLES: [&str; 10] =
    ["attrs", "xattrs", "recents", "journal", "made_dirs", "remote", "listed", "cached", "pins", "tombstones"];
/// Those of them that also record the parent directory.
const PARENT_TABLES: [&str; 4] = ["attrs", "journal", "made_dirs", "remote"];

/// The path tables that record this device's own state of a file, not the provider's:
/// what a rename in the journal moves.
const LOCAL_TABLES: [&str; 5] = ["attrs", "xattrs", "recents", "journal", "pins"];

/// Deletes the rows of `tables` at and below `path`, a replaced tombstone's included.
pub(crate) fn forget_tree_in(conn: &Connection, root: &str, path: &str, tables: &[&str]) -> rusqlite::Result<()> {
    let (lo, hi) = subtree_bounds(path);
    for table in tables {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE root = ?1 AND path >= ?2 AND path < ?4 AND (path = ?2 OR path > ?3)"
        ))?
        .execute(params![root, path, lo, hi])?;
    }
    Ok(())
}

fn delete_tree_in(tx: &rusqlite::Transaction<'_>, root: &str, path: &str, tables: &[&str]) -> rusqlite::Result<()> {
    let (lo, hi) = subtree_bounds(path);
    for table in tables {
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE root = ?1 AND path >= ?2 AND path < ?4 AND (path = ?2 OR path > ?3){}",
            kept_for_replaced(table, "?2")
        ))?
        .execute(params![root, path, lo, hi])?;
    }
    Ok(())
}

/// The rows of a path whose tombstone is `replaced` that belong to the deleted object,
/// not to the new file or folder: its tombstone and those of what was deleted inside it
/// (still on the provider, and moving to the Trash with it), and the mirror of it.
/// Operations on the new one's records leave them. A condition to append for `table`,
/// with `path` the placeholder of the path operated on.
fn kept_for_replaced(table: &str, path: &str) -> String {
    let replaced =
        format!("EXISTS (SELECT 1 FROM tombstones k WHERE k.root = ?1 AND k.path = {path} AND k.replaced = 1)");
    match table {
        "tombstones" => format!(" AND NOT {replaced}"),
        "remote" => format!(" AND NOT (path = {path} AND {replaced})"),
        _ => String::new(),
    }
}

/// Moves the rows of `tables` at and below `from` to `to`, dropping theirs at `to` first.
fn move_tree_in(
    tx: &rusqlite::Transaction<'_>,
    root: &str,
    from: &str,
    to: &str,
    tables: &[&str],
) -> rusqlite::Result<()> {
    delete_tree_in(tx, root, to, tables)?;
    let (flo, fhi) = subtree_bounds(from);
    for table in tables {
        // A tombstone at `from` itself is the provider's object there (one deleted, or
        // renamed away in the journal), which stays when what now stands there moves.
        let own = if *table == "tombstones" { " AND path != ?3" } else { "" };
        tx.execute(
            &format!(
                "UPDATE {table} SET path = ?2 || substr(path, length(?3) + 1)
                 WHERE root = ?1 AND path >= ?3 AND path < ?5 AND (path = ?3 OR path > ?4){}{own}",
                kept_for_replaced(table, "?3")
            ),
            params![root, to, from, flo, fhi],
        )?;
    }
    for table in PARENT_TABLES.iter().filter(|t| tables.contains(t)) {
        tx.execute(
            &format!(
                "UPDATE {table} SET parent = ?2 || substr(parent, length(?3) + 1)
                 WHERE root = ?1 AND parent >= ?3 AND parent < ?5 AND (parent = ?3 OR parent > ?4)"
            ),
            params![root, to, from, flo, fhi],
        )?;
        tx.execute(
            &format!("UPDATE {table} SET parent = ?3 WHERE root = ?1 AND path = ?2"),
            params![root, to, parent_of(to)],
        )?;
    }
    Ok(())
}

/// Sets the times, mode and owner `set` has of one path inside `tx` (`None` keeps what
/// is recorded), as `update_in` would, but in place: an `INSERT OR REPLACE` also
/// rewrites the row's `attrs_parent` entry, one more encrypted page in every commit's WAL.
fn set_attrs_in(tx: &rusqlite::Transaction<'_>, root: &str, path: &str, set: &Overlay) -> rusqlite::Result<()> {
    let changed = tx
        .prepare_cached(
            "UPDATE attrs SET mtime_ns = COALESCE(?3, mtime_ns), mode = COALESCE(?4, mode),
             uid = COALESCE(?5, uid), gid = COALESCE(?6, gid), atime_ns = COALESCE(?7, atime_ns),
             ctime_ns = COALESCE(?8, ctime_ns) WHERE root = ?1 AND path = ?2",
        )?
        .execute(params![
            root,
            path,
            set.mtime.map(to_ns),
            set.mode,
            set.uid,
            set.gid,
            set.atime.map(to_ns),
            set.ctime.map(to_ns)
        ])?;
    if changed == 0 {
        let Overlay { mtime, atime, ctime, mode, uid, gid, .. } = *set;
        insert(tx, root, path, &Overlay { mtime, atime, ctime, mode, uid, gid, ..Overlay::default() })?;
    }
    Ok(())
}

/// A folder's new mtime (something was added to it), in `tx`.
fn set_mtime_in(
    tx: &rusqlite::Transaction<'_>,
    root: &str,
    dir: &str,
    mtime: Option<SystemTime>,
) -> rusqlite::Result<()> {
    set_attrs_in(tx, root, dir, &Overlay { mtime, ..Overlay::default() })
}

/// Reads, changes and writes back one overlay inside `tx`.
fn update_in(
    tx: &rusqlite::Transaction<'_>,
    root: &str,
    path: &str,
    change: impl FnOnce(&mut Overlay),
) -> rusqlite::Result<()> {
    let mut ov = tx
        .prepare_cached(select_overlay!("path = ?2"))?
        .query_row(params![root, path], row_to_overlay)
        .optional()?
        .unwrap_or_default();
    change(&mut ov);
    insert(tx, root, path, &ov)
}

fn insert(tx: &rusqlite::Transaction<'_>, root: &str, path: &str, ov: &Overlay) -> rusqlite::Result<()> {
    let (rm, rs) = match ov.remote {
        Some((m, s)) => (m.map(to_ns), Some(s as i64)),
        None => (None, None),
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO attrs
         (root, path, parent, mode, uid, gid, mtime_ns, symlink, remote_mtime_ns, remote_size, atime_ns, ctime_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        root,
        path,
        parent_of(path),
        ov.mode,
        ov.uid,
        ov.gid,
        ov.mtime.map(to_ns),
        ov.symlink,
        rm,
        rs,
        ov.atime.map(to_ns),
        ov.ctime.map(to_ns)
    ])?;
    Ok(())
}

fn base_of(size: Option<i64>, mtime: Option<i64>) -> Option<(u64, Option<SystemTime>)> {
    size.map(|s| (s as u64, mtime.map(from_ns)))
}

fn base_cols(base: Option<(u64, Option<SystemTime>)>) -> (Option<i64>, Option<i64>) {
    match base {
        Some((s, m)) => (Some(s as i64), m.map(to_ns)),
        None => (None, None),
    }
}

fn row_to_remote(row: &rusqlite::Row<'_>) -> rusqlite::Result<RemoteEntry> {
    Ok(RemoteEntry {
        is_dir: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
        mtime: row.get::<_, Option<i64>>(2)?.map(from_ns),
    })
}

fn row_to_cached(row: &rusqlite::Row<'_>) -> rusqlite::Result<CachedEntry> {
    Ok(CachedEntry {
        copy: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
        version: row.get::<_, Option<i64>>(2)?.map(from_ns),
        bytes: row.get::<_, i64>(3)? as u64,
        pinned: row.get(4)?,
    })
}

fn row_to_overlay(row: &rusqlite::Row<'_>) -> rusqlite::Result<Overlay> {
    let remote_size: Option<i64> = row.get(6)?;
    let remote_mtime: Option<i64> = row.get(5)?;
    Ok(Overlay {
        mode: row.get(0)?,
        uid: row.get(1)?,
        gid: row.get(2)?,
        mtime: row.get::<_, Option<i64>>(3)?.map(from_ns),
        atime: row.get::<_, Option<i64>>(7)?.map(from_ns),
        ctime: row.get::<_, Option<i64>>(8)?.map(from_ns),
        symlink: row.get(4)?,
        remote: remote_size.map(|s| (remote_mtime.map(from_ns), s as u64)),
    })
}

/// Paths strictly below `path` sort between "path/" and "path0" ('0' follows '/').
pub(crate) fn subtree_bounds(path: &str) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

pub(crate) fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
    }
}

pub(crate) fn from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_get_and_children() {
        let ix = Index::in_memory().unwrap();
        ix.update("r", "a/b", |o| o.mode = Some(0o600)).unwrap();
        ix.update("r", "a/b", |o| o.uid = Some(7)).unwrap();
        ix.update("r", "a/b/c", |o| o.mode = Some(0o755)).unwrap();
        let o = ix.get("r", "a/b").unwrap().unwrap();
        assert_eq!((o.mode, o.uid), (Some(0o600), Some(7)));
        assert_eq!(ix.get("other", "a/b").unwrap(), None);
        let kids = ix.children("r", "a").unwrap();
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].0, "b");
    }

    /// The kept sums of the cache rows follow every way rows are written, renamed and
    /// dropped, and an index from before they were kept gets them at its next opening.
    #[test]
    fn cached_sums_match_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let summed = |ix: &Index| -> (u64, u64) {
            let (a, p): (i64, i64) = ix
                .conn()
                .query_row(
                    "SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(CASE WHEN pinned THEN bytes ELSE 0 END), 0) FROM cached",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            (a as u64, p as u64)
        };
        let entry = |bytes: u64, pinned: bool| CachedEntry {
            copy: format!("c{bytes}"),
            size: bytes,
            version: None,
            bytes,
            pinned,
        };
        {
            let ix = Index::open(&path, None).unwrap();
            ix.cached_put("r", "d/a", &entry(100, false)).unwrap();
            ix.cached_put("r", "d/b", &entry(20, true)).unwrap();
            ix.cached_put("r", "d/a", &entry(300, true)).unwrap(); // replaces 100 unpinned
            ix.cached_put("s", "x", &entry(7, false)).unwrap();
            ix.cached_touch("r", "d/b", 50).unwrap();
            ix.cached_set_pinned("r", "d/a", false).unwrap();
            assert_eq!(ix.cached_totals().unwrap(), (357, 50));
            ix.rename_tree("r", "d", "e").unwrap();
            assert_eq!(ix.cached_get("r", "e/b").unwrap().unwrap().bytes, 50);
            assert_eq!(ix.cached_totals().unwrap(), (357, 50));
            assert_eq!(ix.cached_remove("r", "e/a").unwrap(), Some("c300".to_owned()));
            assert_eq!(ix.cached_totals().unwrap(), (57, 50));
            ix.remove_tree("r", "e").unwrap();
            assert_eq!(ix.cached_totals().unwrap(), (7, 0));
            assert_eq!(ix.cached_totals().unwrap(), summed(&ix));
            ix.cached_put("r", "f", &entry(1000, true)).unwrap();
            // As an index made before the sums were kept.
            ix.conn()
                .execute_batch(
                    "DROP TRIGGER cached_sums_insert; DROP TRIGGER cached_sums_delete;
                     DROP TRIGGER cached_sums_update; DROP TABLE cached_sums;",
                )
                .unwrap();
        }
        let ix = Index::open(&path, None).unwrap();
        assert_eq!(ix.cached_totals().unwrap(), (1007, 1000));
        ix.cached_put("r", "g", &entry(3, false)).unwrap();
        assert_eq!(ix.cached_totals().unwrap(), (1010, 1000));
        assert_eq!(ix.cached_totals().unwrap(), summed(&ix));
    }

    /// An index written with SQLCipher's OpenSSL provider (before `index_cipher`) opens
    /// and reads, and one written now opens again: the pages are the same format.
    #[test]
    fn an_index_written_by_the_openssl_provider_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/index-openssl.db");
        std::fs::copy(&fixture, &path).unwrap();
        let key = [7u8; 32];
        let check = |ix: &Index| {
            for i in [0u32, 7, 150, 299] {
                assert_eq!(ix.get("r", &format!("dir/file-{i:04}")).unwrap().unwrap().mode, Some(0o600 + (i % 64)));
            }
            assert_eq!(ix.xattr_get("r", "dir/file-0007", "user.note").unwrap(), Some(vec![0xAB; 5000]));
        };
        let ix = Index::open(&path, Some(&key)).unwrap();
        let provider: String = ix.conn().query_row("PRAGMA cipher_provider", [], |r| r.get(0)).unwrap();
        assert_eq!(provider, "oxidrive-ring");
        check(&ix);
        ix.update("r", "dir/new", |o| o.mode = Some(0o640)).unwrap();
        drop(ix);
        let ix = Index::open(&path, Some(&key)).unwrap();
        check(&ix);
        assert_eq!(ix.get("r", "dir/new").unwrap().unwrap().mode, Some(0o640));
        drop(ix);
        assert!(Index::open(&path, Some(&[8u8; 32])).is_err(), "a wrong key must not open it");
        // Pages changed on disk fail their authentication instead of being read.
        let mut raw = std::fs::read(&path).unwrap();
        for page in raw.chunks_mut(4096).skip(1) {
            page[100] ^= 1;
        }
        std::fs::write(&path, raw).unwrap();
        let tampered = Index::open(&path, Some(&key));
        assert!(tampered.is_err(), "tampered pages were read");
    }

    /// The other way round: an index written here opens with SQLCipher's own (OpenSSL)
    /// cryptography, in a process of this test binary that never registers ours.
    #[test]
    fn an_index_written_here_opens_with_the_openssl_provider() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let ix = Index::open(&path, Some(&[7u8; 32])).unwrap();
        ix.update("r", "dir/a", |o| o.mode = Some(0o604)).unwrap();
        ix.xattr_set("r", "dir/a", "user.note", &[0xCD; 9000]).unwrap();
        drop(ix);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "index::tests::openssl_reader", "--ignored", "--nocapture"])
            .env("OXIDRIVE_TEST_INDEX", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run by the test above, alone in its own process.
    #[test]
    #[ignore]
    fn openssl_reader() {
        let path = std::env::var_os("OXIDRIVE_TEST_INDEX")
            .expect("run by an_index_written_here_opens_with_the_openssl_provider");
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA key = \"x'{}'\"; PRAGMA cipher_hmac_algorithm = HMAC_SHA256;",
            "07".repeat(32)
        ))
        .unwrap();
        let provider: String = conn.query_row("PRAGMA cipher_provider", [], |r| r.get(0)).unwrap();
        assert_eq!(provider, "openssl");
        let mode: i64 =
            conn.query_row("SELECT mode FROM attrs WHERE root = 'r' AND path = 'dir/a'", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, 0o604);
        let value: Vec<u8> = conn
            .query_row("SELECT value FROM xattrs WHERE root = 'r' AND path = 'dir/a' AND name = 'user.note'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(value, vec![0xCD; 9000]);
    }

    #[test]
    fn has_tree_finds_a_record_at_or_below_in_any_table() {
        let ix = Index::in_memory().unwrap();
        assert!(!ix.has_tree("r", "a").unwrap());
        ix.xattr_set("r", "a/b/c", "user.x", b"1").unwrap();
        ix.update("r", "s", |o| o.mode = Some(0o600)).unwrap();
        for (path, want) in [("a", true), ("a/b", true), ("a/b/c", true), ("a/b/c/d", false), ("a/bc", false)] {
            assert_eq!(ix.has_tree("r", path).unwrap(), want, "{path}");
        }
        assert!(ix.has_tree("r", "s").unwrap());
        assert!(!ix.has_tree("r", "s0").unwrap());
        assert!(!ix.has_tree("other", "a").unwrap());
    }

    #[test]
    fn rename_tree_moves_descendants_but_not_siblings() {
        let ix = Index::in_memory().unwrap();
        for p in ["d", "d/x", "d/x/y", "d0", "dd/z"] {
            ix.update("r", p, |o| o.mode = Some(0o700)).unwrap();
        }
        ix.xattr_set("r", "d/x/y", "user.k", b"v").unwrap();
        ix.update("r", "e", |o| o.mode = Some(0o711)).unwrap();
        ix.rename_tree("r", "d", "e").unwrap();
        assert!(ix.get("r", "d").unwrap().is_none());
        assert_eq!(ix.get("r", "e").unwrap().unwrap().mode, Some(0o700));
        assert!(ix.get("r", "e/x/y").unwrap().is_some());
        assert!(ix.get("r", "d0").unwrap().is_some());
        assert!(ix.get("r", "dd/z").unwrap().is_some());
        assert_eq!(ix.xattr_get("r", "e/x/y", "user.k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(ix.children("r", "e/x").unwrap()[0].0, "y");
        ix.remove_tree("r", "e").unwrap();
        assert!(ix.get("r", "e/x").unwrap().is_none());
        assert!(ix.xattr_get("r", "e/x/y", "user.k").unwrap().is_none());
    }

    #[test]
    fn a_folder_renamed_in_the_journal_moves_local_records_and_keeps_the_mirror() {
        let ix = Index::in_memory().unwrap();
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        let tomb = |path: &str, moved_to: Option<&str>, is_dir| Tombstone {
            id: format!("id-{path}"),
            path: path.to_owned(),
            orig: path.to_owned(),
            deleted: at(5),
            is_dir,
            version: None,
            moved_to: moved_to.map(str::to_owned),
            replaced: false,
        };
        ix.remote_put("r", "d", Some(RemoteEntry { is_dir: true, size: 0, mtime: Some(at(1)) })).unwrap();
        ix.remote_put("r", "d/f", Some(RemoteEntry { is_dir: false, size: 3, mtime: Some(at(2)) })).unwrap();
        ix.update("r", "d/f", |o| o.mode = Some(0o640)).unwrap();
        let commit = Commit {
            copy: "c1",
            size: 3,
            is_new: false,
            base: Some((3, Some(at(2)))),
            attrs: &Overlay::default(),
            recent: None,
            inline: Some(b"abc"),
            created: None,
        };
        ix.journal_commit("r", "d/f", &commit).unwrap();
        ix.journal_mkdir("r", "d/m", &Overlay::default()).unwrap();
        ix.tombstone_add("r", &tomb("x", Some("d/g"), false)).unwrap();
        ix.tombstone_add("r", &tomb("d/del", None, false)).unwrap();

        let moved = [tomb("d", Some("e"), true), tomb("d/f", Some("e/f"), false)];
        ix.journal_rename_dir("r", "d", "e", &["e".to_owned()], &moved).unwrap();

        assert_eq!(ix.get("r", "e/f").unwrap().unwrap().mode, Some(0o640));
        assert!(ix.get("r", "d/f").unwrap().is_none());
        assert_eq!(ix.remote_get("r", "d/f").unwrap().map(|r| r.size), Some(3), "the mirror of the old folder stays");
        assert!(ix.remote_get("r", "e/f").unwrap().is_none());
        let journal = ix.journal("r").unwrap();
        assert_eq!(journal.len(), 1);
        assert_eq!(journal[0].0, "e/f");
        assert!(journal[0].1.is_new, "nothing is at the new name on the provider");
        assert_eq!(journal[0].1.base, None);
        assert_eq!(ix.made_dirs("r").unwrap(), ["e", "e/m"]);
        let tombstones: Vec<(String, Option<String>)> =
            ix.tombstones("r").unwrap().into_iter().map(|t| (t.path, t.moved_to)).collect();
        let want = [("d", Some("e")), ("d/del", None), ("d/f", Some("e/f")), ("x", Some("e/g"))]
            .map(|(p, m)| (p.to_owned(), m.map(str::to_owned)));
        assert_eq!(tombstones, want);
    }

    #[test]
    fn keyed_index_is_unreadable_without_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let ix = Index::open(&path, Some(&[7u8; 32])).unwrap();
            ix.update("r", "secret-name-marker", |o| o.symlink = Some("target-marker".into())).unwrap();
        }
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            assert!(!bytes.windows(6).any(|w| w == b"marker"), "plaintext leaked into the index files");
        }
        assert!(Index::open(&path, Some(&[8u8; 32])).is_err());
        assert!(Index::open(&path, None).is_err());
        let ix = Index::open(&path, Some(&[7u8; 32])).unwrap();
        assert_eq!(ix.get("r", "secret-name-marker").unwrap().unwrap().symlink.as_deref(), Some("target-marker"));
    }

    #[test]
    fn sync_syncs_the_log_sqlite_writes_to() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let ix = Index::open(&path, Some(&[7u8; 32])).unwrap();
        ix.sync().unwrap();
        ix.update("r", "a", |o| o.mode = Some(0o600)).unwrap();
        ix.sync().unwrap();
        let wal = dir.path().join("index.sqlite-wal");
        let synced = ix.wal.get().expect("the log was found").metadata().unwrap().ino();
        assert_eq!(synced, std::fs::metadata(&wal).unwrap().ino());
        // Past several checkpoints (one per 1000 pages), it is still the same file.
        for i in 0..3000 {
            ix.update("r", &format!("f{i}-{}", "x".repeat(1500)), |o| o.mode = Some(0o600)).unwrap();
        }
        ix.sync().unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().ino(), synced);
        assert_eq!(ix.wal.get().unwrap().metadata().unwrap().nlink(), 1, "not a deleted log");
        assert!(Index::in_memory().unwrap().sync().is_ok());
    }

    #[test]
    fn index_made_with_sha512_hmac_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made.sqlite");
        let path = dir.path().join("index.sqlite");
        {
            let ix = Index::init(Index::connect(&made, Some(&[7u8; 32]), false).unwrap()).unwrap();
            ix.update("r", "old", |o| o.mode = Some(0o640)).unwrap();
            // Its files as a crash leaves them: the change only in the WAL.
            std::fs::copy(&made, &path).unwrap();
            std::fs::copy(dir.path().join("made.sqlite-wal"), dir.path().join("index.sqlite-wal")).unwrap();
        }
        assert!(std::fs::metadata(dir.path().join("index.sqlite-wal")).unwrap().len() > 0);
        assert!(Index::open(&path, Some(&[8u8; 32])).is_err());
        let ix = Index::open(&path, Some(&[7u8; 32])).unwrap();
        assert_eq!(ix.get("r", "old").unwrap().unwrap().mode, Some(0o640));
        ix.update("r", "new", |o| o.mode = Some(0o600)).unwrap();
        drop(ix);
        let ix = Index::open(&path, Some(&[7u8; 32])).unwrap();
        assert_eq!(ix.get("r", "new").unwrap().unwrap().mode, Some(0o600));
        // A new index uses SHA256: the SHA512 settings cannot read it.
        let fresh = dir.path().join("fresh.sqlite");
        Index::open(&fresh, Some(&[7u8; 32])).unwrap().update("r", "x", |o| o.mode = Some(1)).unwrap();
        assert!(Index::connect(&fresh, Some(&[7u8; 32]), false).is_err());
        assert!(Index::connect(&fresh, Some(&[7u8; 32]), true).is_ok());
    }

    #[test]
    fn recents_follow_renames_and_deletes() {
        let ix = Index::in_memory().unwrap();
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        ix.recent_touch("r", "d/a", t(1)).unwrap();
        ix.recent_touch("r", "b", t(2)).unwrap();
        ix.recent_touch("other", "c", t(3)).unwrap();
        ix.recent_touch("r", "d/a", t(4)).unwrap();
        let names = |ix: &Index| ix.recent_list("r", 10).unwrap().into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        assert_eq!(names(&ix), ["d/a", "b"]);
        ix.rename_tree("r", "d", "e").unwrap();
        assert_eq!(names(&ix), ["e/a", "b"]);
        ix.remove_tree("r", "e").unwrap();
        assert_eq!(names(&ix), ["b"]);
        assert_eq!(ix.recent_list("other", 10).unwrap().len(), 1);
    }

    /// Touches wait in memory (see `recents.rs`); whatever reads, renames or removes
    /// recents rows, or closes the index, takes them in first.
    #[test]
    fn waiting_recent_touches_follow_renames_and_deletes_and_outlive_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.sqlite");
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        let names = |ix: &Index| ix.recent_list("r", 10).unwrap().into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        {
            let ix = Index::open(&db, None).unwrap();
            ix.recent_touch("r", "d/a", t(1)).unwrap();
            ix.recent_touch("r", "d/gone", t(2)).unwrap();
            ix.recent_touch("r", "b", t(3)).unwrap();
            let rows =
                |ix: &Index| ix.conn().query_row("SELECT count(*) FROM recents", [], |r| r.get::<_, i64>(0)).unwrap();
            assert_eq!(rows(&ix), 0, "a touch waits for its batch");
            ix.remove_tree("r", "d/gone").unwrap();
            ix.rename_tree("r", "d", "e").unwrap();
            ix.recent_touch("r", "c", t(4)).unwrap();
            for i in 0..64 {
                ix.recent_touch("r", &format!("many/{i}"), t(5)).unwrap();
            }
            assert!(rows(&ix) >= 64, "a full batch is written without a read");
            ix.recent_touch("r", "last", t(6)).unwrap();
        }
        let ix = Index::open(&db, None).unwrap();
        let all = ix.recent_list("r", 100).unwrap().into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        assert_eq!(all.len(), 68);
        assert_eq!(&all[..1], ["last"], "kept when the index closed");
        assert_eq!(&all[65..], ["c", "b", "e/a"]);
        assert!(!all.iter().any(|p| p.starts_with("d/")));
        assert_eq!(names(&ix)[0], "last");
    }

    #[test]
    fn an_index_made_before_atime_and_ctime_keeps_its_attributes_and_gains_them() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE attrs(root TEXT NOT NULL, path TEXT NOT NULL, parent TEXT NOT NULL,
                 mode INTEGER, uid INTEGER, gid INTEGER, mtime_ns INTEGER, symlink TEXT,
                 remote_mtime_ns INTEGER, remote_size INTEGER, PRIMARY KEY(root, path)) WITHOUT ROWID;
                 INSERT INTO attrs (root, path, parent, mode, mtime_ns) VALUES ('r', 'd/f', 'd', 416, 5000000000);",
            )
            .unwrap();
        }
        let ix = Index::open(&path, None).unwrap();
        let ov = ix.get("r", "d/f").unwrap().unwrap();
        assert_eq!((ov.mode, ov.mtime, ov.atime, ov.ctime), (Some(0o640), Some(at(5)), None, None));
        ix.update("r", "d/f", |o| (o.atime, o.ctime) = (Some(at(7)), Some(at(9)))).unwrap();
        let (name, ov) = ix.children("r", "d").unwrap().remove(0);
        assert_eq!((name.as_str(), ov.mode, ov.atime, ov.ctime), ("f", Some(0o640), Some(at(7)), Some(at(9))));
    }

    #[test]
    fn times_round_trip_including_before_epoch() {
        for t in [UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789), UNIX_EPOCH - Duration::from_secs(86400)] {
            assert_eq!(from_ns(to_ns(t)), t);
        }
    }
}
