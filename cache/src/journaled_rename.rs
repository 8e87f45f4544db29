//! Renaming a file the provider holds in the journal, not on the provider: while the
//! provider is offline (nothing can move there then), and on an encrypted provider,
//! where a file's rename rewrites its whole object through here anyway (the name is
//! bound into it): uploading the contents under the new name later costs less (no
//! download), and `mv` returns at once.
//!
//! The file's whole contents must be here (a pending change, a complete cached copy,
//! or a symlink's target); they become a pending file at the new name. The old name
//! gets a tombstone marked `moved_to`: hidden at once, its object is removed for good
//! (not kept in the Trash) once the new name is uploaded. Folders are renamed in the
//! journal only offline (`folder_rename.rs`); oxidrive's own folder (the Trash area)
//! always needs the provider.

use oxidrive_providers::{META_DIR, join};

use crate::copies::{Version, is_below};
use crate::error::{Error, Result};
use crate::index::Overlay;
use crate::store::{EntryKind, Store};
use crate::trash::{TRASH_DIR, new_id};
use crate::trash_index::{Tombstone, TrashItem};

/// What a journaled rename leaves to do once the pending files moved to the new name.
pub(crate) struct JournaledMove {
    is_new: bool,
    base: Option<Version>,
    tombstone: Tombstone,
}

impl Store {
    /// Renames provider-held `from` to `to`: in the journal if `journals_rename` says
    /// so and its contents are here, else on the provider; a provider found
    /// unreachable on the way makes it the journal's after all. Returns what is left
    /// to do of a journaled rename.
    pub(crate) async fn rename_held(
        &self,
        from: &str,
        to: &str,
        kind: EntryKind,
        over_remote: bool,
        absorbed: Option<Option<Version>>,
    ) -> Result<Option<JournaledMove>> {
        if self.journals_rename(from, to, kind) {
            if let Some(moved) = self.rename_in_journal(from, to, kind, over_remote, absorbed).await? {
                return Ok(Some(moved));
            }
            if self.offline_now() {
                return Err(self.not_here(from));
            }
        }
        self.create_made_above(from, true).await?;
        self.create_made_above(to, false).await?;
        match self.rename_on_provider(from, to, kind).await {
            Err(Error::Provider(e)) if e.is_unreachable() && kind != EntryKind::Dir => {
                self.unreachable(&e);
                match self.rename_in_journal(from, to, kind, over_remote, absorbed).await? {
                    Some(moved) => Ok(Some(moved)),
                    None => Err(self.not_here(from)),
                }
            }
            other => other.map(|()| None),
        }
    }

    /// Whether the rename of provider-held `from` to `to` is tried in the journal (see
    /// the module comment); `hold_locally` then says whether its contents are here.
    /// Offline, always: the journal's own checks refuse what it cannot do, with a
    /// clear error.
    fn journals_rename(&self, from: &str, to: &str, kind: EntryKind) -> bool {
        self.offline_now() || (kind != EntryKind::Dir && self.provider.is_encrypted() && !in_meta(from) && !in_meta(to))
    }

    /// Journals the rename of provider-held `from` (a file or symlink) to `to`, in one
    /// synced transaction. `over_remote` says whether the provider may hold something
    /// at `to`; `absorbed` is the version of an object there that a file renamed away
    /// in the journal left behind (see `forget_moved_tombstone`). `None`: the contents are
    /// not all here, and nothing changed.
    async fn rename_in_journal(
        &self,
        from: &str,
        to: &str,
        kind: EntryKind,
        over_remote: bool,
        absorbed: Option<Option<Version>>,
    ) -> Result<Option<JournaledMove>> {
        if kind == EntryKind::Dir || in_meta(from) || in_meta(to) {
            let what = if kind == EntryKind::Dir { "a folder" } else { "this" };
            tracing::error!(root = %self.root, from, to, "cannot rename {what} while its provider is offline");
            return Err(offline(format!(
                "{from}: renaming {what} needs provider {:?}, which is offline; try again when it is back",
                self.root
            )));
        }
        self.provider.check_name(to)?;
        // The version of `to` an upload there must find, or nothing at all.
        let base = match absorbed {
            Some(version) => version,
            None if !over_remote => None,
            None => self.replaced_version(to)?,
        };
        let version = self.held_version(from)?;
        if !self.hold_locally(from, kind).await? {
            return Ok(None);
        }
        let tombstone = Tombstone {
            id: new_id()?,
            path: from.to_owned(),
            orig: from.to_owned(),
            deleted: self.config.clock.now(),
            is_dir: false,
            version,
            moved_to: Some(to.to_owned()),
            replaced: false,
        };
        self.index.journal_rename(&self.root, from, to, !over_remote, base, &tombstone, None)?;
        self.sync_index().await?;
        if self.offline_now() {
            tracing::info!(root = %self.root, from, to, "renamed while the provider is offline; the provider follows when it is back");
        } else {
            tracing::debug!(root = %self.root, from, to, "renamed in the journal; the new name is uploaded later");
        }
        Ok(Some(JournaledMove { is_new: !over_remote, base, tombstone }))
    }

    /// Makes sure the whole contents of `path` are here as a committed pending change
    /// (which survives a crash): an unchanged cached copy, or a symlink's target, is
    /// committed as it is. `false`: they are not all here.
    pub(crate) async fn hold_locally(&self, path: &str, kind: EntryKind) -> Result<bool> {
        if self.pending().contains_key(path) {
            return Ok(true);
        }
        let version = self.current_version(path)?;
        let copy = match (kind, version) {
            (EntryKind::Symlink, _) => {
                let target = self.index.get(&self.root, path)?.and_then(|ov| ov.symlink);
                let Some(target) = target else { return Ok(false) };
                let copy = self.new_copy()?;
                copy.write_at(0, target.as_bytes())?;
                copy
            }
            (_, Some(version)) => match self.config.copies.take_complete(&self.root, path, version)? {
                Some(copy) => copy,
                None => return Ok(false),
            },
            (_, None) => return Ok(false),
        };
        copy.set_base(version);
        let shown = self.stat(path).await?;
        let attrs = Overlay { mtime: shown.and_then(|e| e.mtime), ..Overlay::default() };
        self.commit(path, &copy, &attrs)?;
        Ok(true)
    }

    pub(crate) fn not_here(&self, path: &str) -> Error {
        tracing::error!(root = %self.root, path, "cannot rename while the provider is offline: not cached");
        offline(format!(
            "{path}: provider {:?} is offline and this is not cached, so it cannot be renamed now (pin what you \
             want to rename offline)",
            self.root
        ))
    }

    /// A file takes the place of deleted `path` whose last changes were never uploaded,
    /// while the provider cannot move them into the Trash: they move into a new trash
    /// item in the journal instead (one synced transaction; the item's folder and
    /// `info` are made before its data is uploaded, `ensure_trash_item`). The
    /// provider's older version at `path` is left to the new file, whose upload
    /// replaces it (as after a file renamed away in the journal).
    pub(crate) async fn trash_in_journal(&self, path: &str) -> Result<()> {
        let _lock = self.locks.lock(&[(path, false)]).await;
        self.trash_in_journal_locked(path).await
    }

    /// `trash_in_journal`, for a caller holding a lock on `path` (or a tree lock above).
    pub(crate) async fn trash_in_journal_locked(&self, path: &str) -> Result<()> {
        let Some(t) = self.trash.tombstones().get(path).cloned() else { return Ok(()) };
        let item = TrashItem { id: new_id()?, is_dir: false, ..t.item() };
        let data = join(&join(TRASH_DIR, &item.id), "data");
        let moved = Tombstone { moved_to: Some(data.clone()), ..t };
        self.index.journal_rename(&self.root, path, &data, true, None, &moved, Some(&item))?;
        self.sync_index().await?;
        self.move_pending(path, &data, false);
        if let Some(p) = self.pending().get_mut(&data) {
            p.entry.is_new = true;
            p.set_base(None);
        }
        self.trash.insert(moved);
        self.uploads.wake.notify_one();
        tracing::info!(root = %self.root, path, id = %item.id, "deleted changes that were never uploaded go to Trash when the provider is back");
        Ok(())
    }

    /// After the pending files moved: the one at `to` is a change of `to` now, and the
    /// old name is hidden.
    pub(crate) fn journaled_moved(&self, to: &str, moved: JournaledMove) {
        if let Some(p) = self.pending().get_mut(to) {
            p.entry.is_new = moved.is_new;
            p.set_base(moved.base);
        }
        self.trash.insert(moved.tombstone);
        self.uploads.changed.notify_waiters();
    }

    /// A file takes the name `path`, where a file renamed away in the journal left its
    /// object: the new file replaces that object on the provider (its upload must find
    /// the tombstone's version there), so the tombstone goes.
    pub(crate) fn forget_moved_tombstone(&self, path: &str) -> Result<()> {
        self.index.tombstones_remove_tree(&self.root, path)?;
        self.trash.remove(path);
        Ok(())
    }
}

/// Whether `path` is in oxidrive's own folder on the provider (the Trash area).
pub(crate) fn in_meta(path: &str) -> bool {
    path == META_DIR || is_below(path, META_DIR)
}

pub(crate) fn offline(msg: String) -> Error {
    Error::Provider(oxidrive_providers::Error::new(oxidrive_providers::ErrorKind::Other, msg))
}
