//! A rename on a provider that copies objects (S3: copy and delete; an encrypted file
//! is rewritten for its new name) gives each moved object a new provider mtime, and a
//! version is (size, mtime). What this device recorded of the old objects follows them
//! here, or its own objects would look changed by another device: an edit's upload
//! would become a conflict copy, times set here would give way to the provider's, and
//! a file deleted or renamed away here would be kept as someone else's.

use std::collections::{BTreeMap, HashMap};

use oxidrive_providers::{ObjectKind, ObjectMeta};

use crate::copies::Version;
use crate::error::Result;
use crate::index::RemoteEntry;
use crate::local_copy::LocalCopy;
use crate::store::{Store, name_of, parent_of, remote_entry};

impl Store {
    /// After a file's rename on the provider: records what `to` is now, and rebases a
    /// pending change of it (still under `from`) on that. `ours_before`: the overlay's
    /// attributes applied to the object at `from`.
    pub(crate) async fn rebase_renamed(&self, from: &str, to: &str, ours_before: bool) -> Result<()> {
        let meta = self.provider.stat(to).await?;
        self.index.remote_put(&self.root, to, meta.as_ref().map(remote_entry))?;
        if let Some(meta) = meta {
            if ours_before {
                self.index.update(&self.root, to, |ov| ov.remote = Some((meta.mtime, meta.size)))?;
            }
            // A pending change of the file started from the object just renamed: the
            // rename rewrote it (new mtime), which is not someone else's change.
            let base = Some((meta.size, meta.mtime));
            let moved = self.pending().get_mut(from).map(|p| p.set_base(base));
            if moved.is_some() {
                self.index.journal_set_base(&self.root, to, base)?;
            }
        }
        Ok(())
    }

    /// After a file's rename, for its copy still open here (`copy`) with no pending
    /// change: the copy started from the object the rename moved; when the rename
    /// rewrote it (same size, new mtime, as `rebase_renamed` recorded), it now starts
    /// from the new one, or its next upload would take our own rename for another
    /// device's change.
    pub fn follow_rename(&self, to: &str, copy: &LocalCopy) -> Result<()> {
        if self.pending().contains_key(to) {
            return Ok(());
        }
        let (Some(base), Some(now)) = (copy.base(), self.current_version(to)?) else { return Ok(()) };
        if now.0 == base.0 && now.1 != base.1 {
            copy.set_base(Some(now));
        }
        Ok(())
    }

    /// After a folder's rename on a provider that renames by copying, once everything
    /// recorded below it moved to `to`: every file there the provider now shows with
    /// the size recorded but another mtime is taken for the same object, rewritten by
    /// the rename. One listing per folder that holds recorded files (the rename itself
    /// listed them all).
    pub(crate) async fn rebase_renamed_tree(&self, to: &str) -> Result<()> {
        let mut by_dir: BTreeMap<String, Vec<(String, RemoteEntry)>> = BTreeMap::new();
        for (path, was) in self.index.remote_files_below(&self.root, to)? {
            by_dir.entry(parent_of(&path).to_owned()).or_default().push((path, was));
        }
        let mut rebased = 0;
        for (dir, files) in by_dir {
            let now: HashMap<String, ObjectMeta> = self.provider.list(&dir).await?.into_iter().collect();
            for (path, was) in files {
                let Some(meta) = now.get(name_of(&path)) else { continue };
                if meta.kind == ObjectKind::File && meta.size == was.size && meta.mtime != was.mtime {
                    self.rebase_version(&path, (was.size, was.mtime), meta)?;
                    rebased += 1;
                }
            }
        }
        if rebased > 0 {
            tracing::debug!(root = %self.root, path = to, files = rebased, "the folder's rename rewrote its files; recorded their new versions");
        }
        Ok(())
    }

    /// `path`'s object, recorded as `old`, is now `meta`: the mirror, the overlay's
    /// object, a pending change's base and a tombstone's version follow where they
    /// named `old`.
    fn rebase_version(&self, path: &str, old: Version, meta: &ObjectMeta) -> Result<()> {
        let new = (meta.size, meta.mtime);
        self.index.remote_put(&self.root, path, Some(remote_entry(meta)))?;
        if self.index.get(&self.root, path)?.is_some_and(|ov| ov.remote == Some((old.1, old.0))) {
            self.index.update(&self.root, path, |ov| ov.remote = Some((meta.mtime, meta.size)))?;
        }
        let pending = self.pending().get_mut(path).filter(|p| p.entry.base == Some(old)).map(|p| p.set_base(Some(new)));
        if pending.is_some() {
            self.index.journal_set_base(&self.root, path, Some(new))?;
        }
        let tombstone = self.trash.tombstones().get_mut(path).filter(|t| t.version == Some(old)).map(|t| {
            t.version = Some(new);
            t.clone()
        });
        if let Some(t) = tombstone {
            self.index.tombstone_add(&self.root, &t)?;
        }
        Ok(())
    }
}
