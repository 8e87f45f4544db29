//! The index's record of the Trash: tombstones (names deleted here whose objects are
//! not yet moved into the provider's trash area) and trash items (moved, by this device
//! or another one).

use std::time::SystemTime;

use rusqlite::params;

use crate::error::Result;
use crate::index::{Index, forget_tree_in, from_ns, subtree_bounds, to_ns};

/// A deleted name whose object still sits at `path` on the provider. Renames of a
/// folder above it move `path`; `orig` stays where it was deleted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub id: String,
    pub path: String,
    pub orig: String,
    pub deleted: SystemTime,
    pub is_dir: bool,
    /// The provider's (size, mtime) of the file when it was deleted: another version
    /// found there later is another device's edit, which wins over the delete.
    pub version: Option<(u64, Option<SystemTime>)>,
    /// Set when the name was not deleted but renamed in the journal (offline, or a file
    /// cached whole on an encrypted provider): its contents live on as a pending file
    /// at this path, so the object is removed for good (not kept in the Trash) once
    /// that file is uploaded.
    pub moved_to: Option<String>,
    /// Set when a new file or folder took this path while the provider was out of reach
    /// (a deleted file qualifies only with no pending change of its own), or anywhere
    /// below a folder replaced so: the tombstone then stands for the provider's object
    /// alone. The path's local records, and what the provider holds there in the
    /// mirror, are the new one's or that object's (with the tombstones of what was
    /// deleted inside a folder); the new one reaches the provider once the object is
    /// in the Trash.
    pub replaced: bool,
}

/// An item in the provider's trash area (`.oxidrive/trash/<id>`).
impl Tombstone {
    /// The trash item this deletion becomes.
    pub(crate) fn item(&self) -> TrashItem {
        TrashItem { id: self.id.clone(), orig: self.orig.clone(), deleted: self.deleted, is_dir: self.is_dir }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashItem {
    pub id: String,
    pub orig: String,
    pub deleted: SystemTime,
    pub is_dir: bool,
}

impl Index {
    pub fn tombstone_add(&self, root: &str, t: &Tombstone) -> Result<()> {
        Ok(tombstone_add_in(&self.conn(), root, t)?)
    }

    pub fn tombstones(&self, root: &str) -> Result<Vec<Tombstone>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT path, id, orig, at_ns, is_dir, remote_size, remote_mtime_ns, moved_to, replaced
             FROM tombstones WHERE root = ?1 ORDER BY path",
        )?;
        let rows = stmt.query_map(params![root], |r| {
            let size: Option<i64> = r.get(5)?;
            let mtime: Option<i64> = r.get(6)?;
            Ok(Tombstone {
                path: r.get(0)?,
                id: r.get(1)?,
                orig: r.get(2)?,
                deleted: from_ns(r.get(3)?),
                is_dir: r.get(4)?,
                version: size.map(|s| (s as u64, mtime.map(from_ns))),
                moved_to: r.get(7)?,
                replaced: r.get::<_, Option<bool>>(8)?.unwrap_or(false),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Drops the tombstones at and below `path` (what one move to the trash settled,
    /// or what was deleted for good).
    pub fn tombstones_remove_tree(&self, root: &str, path: &str) -> Result<()> {
        Ok(forget_tree_in(&self.conn(), root, path, &["tombstones"])?)
    }

    /// Records an item as moved into the trash area and drops the tombstones that
    /// moved with it, in one transaction.
    pub fn trash_settled(&self, root: &str, item: &TrashItem, moved_to: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (lo, hi) = subtree_bounds(moved_to);
        tx.execute(
            "DELETE FROM tombstones WHERE root = ?1 AND (id = ?2 OR path = ?3 OR (path > ?4 AND path < ?5))",
            params![root, item.id, moved_to, lo, hi],
        )?;
        insert_item(&tx, root, item)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a replaced tombstone's object as moved into the trash area (`item`; `None`
    /// if it was gone), in one transaction: the tombstones `moved` go (they moved with
    /// it), and so does the mirror of what the provider held at and below `path`.
    pub fn replaced_settled(&self, root: &str, item: Option<&TrashItem>, path: &str, moved: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        forget_tree_in(&tx, root, path, &["remote", "listed"])?;
        for p in moved {
            tx.prepare_cached("DELETE FROM tombstones WHERE root = ?1 AND path = ?2")?.execute(params![root, p])?;
        }
        if let Some(item) = item {
            insert_item(&tx, root, item)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn trash_put(&self, root: &str, item: &TrashItem) -> Result<()> {
        Ok(insert_item(&self.conn(), root, item)?)
    }

    pub fn trash_items(&self, root: &str) -> Result<Vec<TrashItem>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT id, orig, at_ns, is_dir FROM trash WHERE root = ?1")?;
        let rows = stmt.query_map(params![root], |r| {
            Ok(TrashItem { id: r.get(0)?, orig: r.get(1)?, deleted: from_ns(r.get(2)?), is_dir: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn trash_remove(&self, root: &str, id: &str) -> Result<()> {
        self.conn().execute("DELETE FROM trash WHERE root = ?1 AND id = ?2", params![root, id])?;
        Ok(())
    }

    /// Drops the tombstone at `path` only (not those below it).
    pub fn tombstone_remove(&self, root: &str, path: &str) -> Result<()> {
        self.conn().execute("DELETE FROM tombstones WHERE root = ?1 AND path = ?2", params![root, path])?;
        Ok(())
    }
}

/// `Index::tombstone_add` on `conn` (or inside a transaction).
pub(crate) fn tombstone_add_in(conn: &rusqlite::Connection, root: &str, t: &Tombstone) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO tombstones
         (root, path, id, orig, at_ns, is_dir, remote_size, remote_mtime_ns, moved_to, replaced)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        root,
        t.path,
        t.id,
        t.orig,
        to_ns(t.deleted),
        t.is_dir,
        t.version.map(|v| v.0 as i64),
        t.version.and_then(|v| v.1).map(to_ns),
        t.moved_to,
        t.replaced
    ])?;
    Ok(())
}

pub(crate) fn insert_item(conn: &rusqlite::Connection, root: &str, item: &TrashItem) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO trash (root, id, orig, at_ns, is_dir) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![root, item.id, item.orig, to_ns(item.deleted), item.is_dir])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn tombstones_move_with_renames_and_settle_by_id() {
        let index = Index::in_memory().unwrap();
        let t = Tombstone {
            id: "i1".into(),
            path: "a/b/f".into(),
            orig: "a/b/f".into(),
            deleted: at(5),
            is_dir: false,
            version: Some((3, Some(at(4)))),
            moved_to: None,
            replaced: false,
        };
        index.tombstone_add("r", &t).unwrap();
        index.rename_tree("r", "a", "z").unwrap();
        let now = index.tombstones("r").unwrap();
        assert_eq!(now.len(), 1);
        assert_eq!((now[0].path.as_str(), now[0].orig.as_str()), ("z/b/f", "a/b/f"));
        assert_eq!(now[0].version, Some((3, Some(at(4)))));
        let item = TrashItem { id: "i1".into(), orig: "a/b/f".into(), deleted: at(5), is_dir: false };
        index.trash_settled("r", &item, ".oxidrive/trash/i1/data").unwrap();
        assert!(index.tombstones("r").unwrap().is_empty());
        assert_eq!(index.trash_items("r").unwrap(), vec![item]);
        assert!(index.trash_items("other").unwrap().is_empty());
        index.trash_remove("r", "i1").unwrap();
        assert!(index.trash_items("r").unwrap().is_empty());
    }

    #[test]
    fn a_replaced_tombstone_and_its_mirror_row_outlive_the_new_files_records() {
        use crate::index::{Overlay, RemoteEntry};
        let index = Index::in_memory().unwrap();
        let remote = RemoteEntry { is_dir: false, size: 3, mtime: Some(at(4)) };
        for (path, replaced) in [("d/new", true), ("d/old", false)] {
            let t = Tombstone {
                id: path.into(),
                path: path.into(),
                orig: path.into(),
                deleted: at(5),
                is_dir: false,
                version: Some((3, Some(at(4)))),
                moved_to: None,
                replaced,
            };
            index.tombstone_add("r", &t).unwrap();
            index.remote_put("r", path, Some(remote)).unwrap();
        }
        index.journal_create("r", "d/new", &Overlay { mode: Some(0o600), ..Default::default() }, "c").unwrap();
        index.update("r", "d/old", |o| o.mode = Some(0o600)).unwrap();
        let paths =
            |ix: &Index| ix.tombstones("r").unwrap().into_iter().map(|t| (t.path, t.replaced)).collect::<Vec<_>>();
        // Creating the new file kept its tombstone; moving and removing it keep it too.
        assert_eq!(paths(&index), [("d/new".to_owned(), true), ("d/old".to_owned(), false)]);
        index.rename_tree("r", "d/new", "d/moved").unwrap();
        index.rename_tree("r", "d/old", "d/gone").unwrap();
        // A tombstone is of the provider's object at its path, which a rename of what
        // stands there (or of the object, into the Trash) does not take along.
        assert_eq!(paths(&index), [("d/new".to_owned(), true), ("d/old".to_owned(), false)]);
        assert!(index.get("r", "d/moved").unwrap().is_some(), "the new file's records moved");
        assert!(index.get("r", "d/new").unwrap().is_none());
        assert_eq!(index.remote_get("r", "d/new").unwrap(), Some(remote), "the deleted object's mirror stays");
        index.remove_tree("r", "d/new").unwrap();
        index.remove_tree("r", "d/old").unwrap();
        assert_eq!(paths(&index), [("d/new".to_owned(), true)]);
        assert_eq!(index.remote_get("r", "d/new").unwrap(), Some(remote));
        assert!(index.tombstones("r").unwrap()[0].version == Some((3, Some(at(4)))));
    }

    /// A folder made over a deleted one: its records come and go without touching the
    /// tombstones of what was deleted inside the old one, until that moves to the Trash.
    #[test]
    fn a_replaced_folder_keeps_the_tombstones_inside_it() {
        use crate::index::{Overlay, RemoteEntry};
        let index = Index::in_memory().unwrap();
        let dir = RemoteEntry { is_dir: true, size: 0, mtime: None };
        let file = RemoteEntry { is_dir: false, size: 3, mtime: Some(at(4)) };
        let tombstone = |path: &str, is_dir: bool, replaced: bool| Tombstone {
            id: path.into(),
            path: path.into(),
            orig: path.into(),
            deleted: at(5),
            is_dir,
            version: None,
            moved_to: None,
            replaced,
        };
        // As `rm -rf b; mkdir b b/sub` offline leaves them.
        for (path, is_dir) in [("b", true), ("b/sub", true), ("b/sub/f", false)] {
            index.tombstone_add("r", &tombstone(path, is_dir, is_dir)).unwrap();
            index.remote_put("r", path, Some(if is_dir { dir } else { file })).unwrap();
        }
        let paths = |ix: &Index| ix.tombstones("r").unwrap().into_iter().map(|t| t.path).collect::<Vec<_>>();
        let all = ["b", "b/sub", "b/sub/f"];
        index.journal_mkdir("r", "b", &Overlay { mode: Some(0o700), ..Default::default() }).unwrap();
        index.journal_mkdir("r", "b/sub", &Overlay { mode: Some(0o700), ..Default::default() }).unwrap();
        assert_eq!(paths(&index), all, "made over it");
        assert_eq!(index.remote_get("r", "b").unwrap(), Some(dir), "the deleted folder's mirror stays");
        assert_eq!(index.remote_get("r", "b/sub/f").unwrap(), None, "what was in it is not the new one's");
        index.rename_tree("r", "x", "b/sub/y").unwrap();
        // `rm -rf b` again: the new b/sub goes, its deleted one is hidden again, then b.
        index.remove_tree("r", "b/sub").unwrap();
        index.tombstone_add("r", &tombstone("b/sub", true, false)).unwrap();
        index.remove_tree("r", "b").unwrap();
        assert_eq!(paths(&index), all, "the new one removed");
        assert!(index.made_dirs("r").unwrap().is_empty());
        let item = TrashItem { id: "b".into(), orig: "b".into(), deleted: at(5), is_dir: true };
        index.replaced_settled("r", Some(&item), "b", &all.map(String::from)).unwrap();
        assert!(paths(&index).is_empty());
        assert_eq!(index.remote_get("r", "b").unwrap(), None);
        assert_eq!(index.trash_items("r").unwrap(), vec![item]);
    }

    #[test]
    fn removing_a_tree_drops_its_tombstones_only() {
        let index = Index::in_memory().unwrap();
        for (id, path) in [("1", "d"), ("2", "d/x"), ("3", "dx")] {
            let t = Tombstone {
                id: id.into(),
                path: path.into(),
                orig: path.into(),
                deleted: at(1),
                is_dir: false,
                version: None,
                moved_to: None,
                replaced: false,
            };
            index.tombstone_add("r", &t).unwrap();
        }
        index.tombstones_remove_tree("r", "d").unwrap();
        let left: Vec<String> = index.tombstones("r").unwrap().into_iter().map(|t| t.path).collect();
        assert_eq!(left, ["dx"]);
    }
}
