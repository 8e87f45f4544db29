//! Renaming a file the provider holds while the provider is offline.
//!
//! Nothing can move on the provider then, so the rename is journaled: the file's whole
//! contents must be here (a pending change, a complete cached copy, or a symlink's
//! target), and they become a pending file at the new name, uploaded when the provider
//! is back. The old name gets a tombstone marked `moved_to`: hidden at once, its object
//! is removed for good (not kept in the Trash) once the new name is uploaded. Folders
//! still need the provider: their contents are mostly not here.

use crate::copies::Version;
use crate::error::{Error, Result};
use crate::index::Overlay;
use crate::store::{EntryKind, Store};
use crate::trash::new_id;
use crate::trash_index::Tombstone;

/// What an offline rename leaves to do once the pending files moved to the new name.
pub(crate) struct OfflineMove {
    is_new: bool,
    base: Option<Version>,
    tombstone: Tombstone,
}

impl Store {
    /// Journals the rename of provider-held `from` (a file or symlink) to `to`, in one
    /// synced transaction. `over_remote` says whether the provider may hold something
    /// at `to`; `absorbed` is the version of an object there that a file renamed away
    /// offline left behind (see `forget_moved_tombstone`).
    pub(crate) async fn rename_offline(
        &self,
        from: &str,
        to: &str,
        kind: EntryKind,
        over_remote: bool,
        absorbed: Option<Option<Version>>,
    ) -> Result<OfflineMove> {
        if kind == EntryKind::Dir {
            tracing::error!(root = %self.root, from, to, "cannot rename a folder while its provider is offline");
            return Err(offline(format!(
                "{from}: renaming a folder needs provider {:?}, which is offline; try again when it is back",
                self.root
            )));
        }
        self.provider.check_name(to)?;
        // The version of `to` an upload there must find, or nothing at all.
        let base = match absorbed {
            Some(version) => version,
            None if !over_remote => None,
            None => match self.pending().get(to).map(|p| p.entry.base) {
                Some(base) => base,
                None => self.current_version(to)?,
            },
        };
        let version = match self.pending().get(from).map(|p| p.entry.base) {
            Some(base) => base,
            None => self.current_version(from)?,
        };
        self.hold_locally(from, kind).await?;
        let tombstone = Tombstone {
            id: new_id()?,
            path: from.to_owned(),
            orig: from.to_owned(),
            deleted: self.config.clock.now(),
            is_dir: false,
            version,
            moved_to: Some(to.to_owned()),
        };
        self.index.journal_rename_offline(&self.root, from, to, !over_remote, base, &tombstone)?;
        tracing::info!(root = %self.root, from, to, "renamed while the provider is offline; the provider follows when it is back");
        Ok(OfflineMove { is_new: !over_remote, base, tombstone })
    }

    /// Makes sure the whole contents of `path` are here as a committed pending change
    /// (which survives a crash): an unchanged cached copy, or a symlink's target, is
    /// committed as it is.
    async fn hold_locally(&self, path: &str, kind: EntryKind) -> Result<()> {
        if self.pending().contains_key(path) {
            return Ok(());
        }
        let version = self.current_version(path)?;
        let shown = self.stat(path).await?;
        let copy = match (kind, version) {
            (EntryKind::Symlink, _) => {
                let target = self.index.get(&self.root, path)?.and_then(|ov| ov.symlink);
                let Some(target) = target else { return Err(self.not_here(path)) };
                let copy = self.new_copy()?;
                copy.write_at(0, target.as_bytes())?;
                copy
            }
            (_, Some(version)) => match self.config.copies.take_complete(&self.root, path, version)? {
                Some(copy) => copy,
                None => return Err(self.not_here(path)),
            },
            (_, None) => return Err(self.not_here(path)),
        };
        copy.set_base(version);
        let attrs = Overlay { mtime: shown.and_then(|e| e.mtime), ..Overlay::default() };
        self.commit(path, &copy, &attrs)
    }

    fn not_here(&self, path: &str) -> Error {
        tracing::error!(root = %self.root, path, "cannot rename while the provider is offline: not cached");
        offline(format!(
            "{path}: provider {:?} is offline and this is not cached, so it cannot be renamed now (pin what you \
             want to rename offline)",
            self.root
        ))
    }

    /// After the pending files moved: the one at `to` is a change of `to` now, and the
    /// old name is hidden.
    pub(crate) fn offline_moved(&self, to: &str, moved: OfflineMove) {
        if let Some(p) = self.pending().get_mut(to) {
            p.entry.is_new = moved.is_new;
            p.entry.base = moved.base;
            p.copy.set_base(moved.base);
        }
        self.trash.insert(moved.tombstone);
        self.uploads.changed.notify_waiters();
    }

    /// A file takes the name `path`, where a file renamed away offline left its
    /// object: the new file replaces that object on the provider (its upload must find
    /// the tombstone's version there), so the tombstone goes.
    pub(crate) fn forget_moved_tombstone(&self, path: &str) -> Result<()> {
        self.index.tombstones_remove_tree(&self.root, path)?;
        self.trash.remove(path);
        Ok(())
    }
}

fn offline(msg: String) -> Error {
    Error::Provider(oxidrive_providers::Error::new(oxidrive_providers::ErrorKind::Other, msg))
}
