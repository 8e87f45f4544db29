//! SQLite index of what providers cannot store: POSIX mode, owner, user-set mtime,
//! symlink targets and extended attributes, keyed by (root, path).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

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
CREATE TABLE IF NOT EXISTS xattrs(
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY(root, path, name)
) WITHOUT ROWID;
";

/// What the index adds on top of a provider object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
    pub symlink: Option<String>,
    /// The provider's (mtime, size) right after our last upload: if the object no
    /// longer matches, another device changed it and our `mtime` no longer applies.
    pub remote: Option<(Option<SystemTime>, u64)>,
}

/// Rows kept in the recents table (the view shows fewer).
const RECENTS_KEPT: i64 = 1000;

/// Lock order: the connection mutex is a leaf; it is never held across an `.await`.
pub struct Index {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Index")
    }
}

impl Index {
    /// Opens (or creates) the index. With a key the whole database file is encrypted
    /// (SQLCipher, AES-256), so paths, names, symlink targets and xattrs stay unreadable
    /// without it.
    pub fn open(path: &Path, key: Option<&[u8; 32]>) -> Result<Self> {
        let conn = Connection::open(path)?;
        if let Some(key) = key {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            conn.execute_batch(&format!("PRAGMA key = \"x'{hex}'\";"))?;
        }
        // Fails here ("file is not a database") when the key does not match.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Self::init(conn)
    }

    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        // WAL with NORMAL sync: every change survives a crash of the process; a power
        // cut may lose the last moments of attribute changes (never file contents, which
        // live on the provider), in exchange for no fsync per metadata change.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, root: &str, path: &str) -> Result<Option<Overlay>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT mode, uid, gid, mtime_ns, symlink, remote_mtime_ns, remote_size
             FROM attrs WHERE root = ?1 AND path = ?2",
        )?;
        Ok(stmt.query_row(params![root, path], row_to_overlay).optional()?)
    }

    /// Overlays of the direct children of `dir`, by name.
    pub fn children(&self, root: &str, dir: &str) -> Result<Vec<(String, Overlay)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT mode, uid, gid, mtime_ns, symlink, remote_mtime_ns, remote_size, path
             FROM attrs WHERE root = ?1 AND parent = ?2",
        )?;
        let rows = stmt.query_map(params![root, dir], |row| {
            let path: String = row.get(7)?;
            Ok((name_of(&path).to_owned(), row_to_overlay(row)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Reads, changes and writes back one overlay in a single transaction.
    pub fn update(&self, root: &str, path: &str, change: impl FnOnce(&mut Overlay)) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut ov = tx
            .query_row(
                "SELECT mode, uid, gid, mtime_ns, symlink, remote_mtime_ns, remote_size
                 FROM attrs WHERE root = ?1 AND path = ?2",
                params![root, path],
                row_to_overlay,
            )
            .optional()?
            .unwrap_or_default();
        change(&mut ov);
        insert(&tx, root, path, &ov)?;
        tx.commit()?;
        Ok(())
    }

    /// Puts a fresh overlay at `path`, dropping whatever was recorded at or below it.
    pub fn replace(&self, root: &str, path: &str, ov: &Overlay) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        delete_tree(&tx, root, path)?;
        insert(&tx, root, path, ov)?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a path and everything below it.
    pub fn remove_tree(&self, root: &str, path: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        delete_tree(&tx, root, path)?;
        tx.commit()?;
        Ok(())
    }

    /// Moves a path and everything below it; whatever was at `to` is dropped first.
    pub fn rename_tree(&self, root: &str, from: &str, to: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        delete_tree(&tx, root, to)?;
        let (flo, fhi) = subtree_bounds(from);
        for table in PATH_TABLES {
            tx.execute(
                &format!(
                    "UPDATE {table} SET path = ?2 || substr(path, length(?3) + 1)
                     WHERE root = ?1 AND (path = ?3 OR (path > ?4 AND path < ?5))"
                ),
                params![root, to, from, flo, fhi],
            )?;
        }
        tx.execute(
            "UPDATE attrs SET parent = ?2 || substr(parent, length(?3) + 1)
             WHERE root = ?1 AND (parent = ?3 OR (parent > ?4 AND parent < ?5))",
            params![root, to, from, flo, fhi],
        )?;
        tx.execute("UPDATE attrs SET parent = ?3 WHERE root = ?1 AND path = ?2", params![root, to, parent_of(to)])?;
        tx.commit()?;
        Ok(())
    }

    /// Records that a file was just created or written.
    pub fn recent_touch(&self, root: &str, path: &str, at: SystemTime) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR REPLACE INTO recents (root, path, at_ns) VALUES (?1, ?2, ?3)",
            params![root, path, to_ns(at)],
        )?;
        // Keep the table small: far more rows than any Recents view shows.
        conn.execute(
            "DELETE FROM recents WHERE at_ns < (SELECT at_ns FROM recents ORDER BY at_ns DESC LIMIT 1 OFFSET ?1)",
            params![RECENTS_KEPT],
        )?;
        Ok(())
    }

    /// The newest `limit` recent paths of one root, newest first.
    pub fn recent_list(&self, root: &str, limit: usize) -> Result<Vec<(String, SystemTime)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT path, at_ns FROM recents WHERE root = ?1 ORDER BY at_ns DESC LIMIT ?2")?;
        let rows = stmt.query_map(params![root, limit as i64], |r| Ok((r.get(0)?, from_ns(r.get(1)?))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn recent_remove(&self, root: &str, path: &str) -> Result<()> {
        self.conn().execute("DELETE FROM recents WHERE root = ?1 AND path = ?2", params![root, path])?;
        Ok(())
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
const PATH_TABLES: [&str; 3] = ["attrs", "xattrs", "recents"];

fn delete_tree(tx: &rusqlite::Transaction<'_>, root: &str, path: &str) -> rusqlite::Result<()> {
    let (lo, hi) = subtree_bounds(path);
    for table in PATH_TABLES {
        tx.execute(
            &format!("DELETE FROM {table} WHERE root = ?1 AND (path = ?2 OR (path > ?3 AND path < ?4))"),
            params![root, path, lo, hi],
        )?;
    }
    Ok(())
}

fn insert(tx: &rusqlite::Transaction<'_>, root: &str, path: &str, ov: &Overlay) -> rusqlite::Result<()> {
    let (rm, rs) = match ov.remote {
        Some((m, s)) => (m.map(to_ns), Some(s as i64)),
        None => (None, None),
    };
    tx.execute(
        "INSERT OR REPLACE INTO attrs
         (root, path, parent, mode, uid, gid, mtime_ns, symlink, remote_mtime_ns, remote_size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![root, path, parent_of(path), ov.mode, ov.uid, ov.gid, ov.mtime.map(to_ns), ov.symlink, rm, rs],
    )?;
    Ok(())
}

fn row_to_overlay(row: &rusqlite::Row<'_>) -> rusqlite::Result<Overlay> {
    let remote_size: Option<i64> = row.get(6)?;
    let remote_mtime: Option<i64> = row.get(5)?;
    Ok(Overlay {
        mode: row.get(0)?,
        uid: row.get(1)?,
        gid: row.get(2)?,
        mtime: row.get::<_, Option<i64>>(3)?.map(from_ns),
        symlink: row.get(4)?,
        remote: remote_size.map(|s| (remote_mtime.map(from_ns), s as u64)),
    })
}

/// Paths strictly below `path` sort between "path/" and "path0" ('0' follows '/').
fn subtree_bounds(path: &str) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
    }
}

fn from_ns(ns: i64) -> SystemTime {
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

    #[test]
    fn times_round_trip_including_before_epoch() {
        for t in [UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789), UNIX_EPOCH - Duration::from_secs(86400)] {
            assert_eq!(from_ns(to_ns(t)), t);
        }
    }
}
