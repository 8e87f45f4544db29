//! Renaming a folder the provider holds while the provider is offline: in the journal,
//! by copy. Nothing can move on the provider then, so the folder and the folders below
//! it become made folders at the new name, each file in it a new pending file there
//! (its whole contents must be here: a pending change, a complete cached copy or a
//! symlink's target; every folder below must have been listed), all in one synced
//! transaction. The old names get tombstones marked `moved_to`.
//!
//! When the provider is back, the new tree is created and uploaded like any new one.
//! Each old file is removed for good once its new name is uploaded (as for a file
//! renamed in the journal); then the old folder goes: for good if only folders are
//! left in it, else into the Trash (files another device added to it meanwhile), so
//! nothing is lost. What was deleted inside the folder before the rename stays at its
//! old place and reaches the Trash from there.

use std::time::Instant;

use oxidrive_providers::{ObjectKind, join};

use crate::copies::is_below;
use crate::error::{Error, Result};
use crate::journaled_rename::{in_meta, offline};
use crate::store::{EntryKind, Store};
use crate::trash::new_id;
use crate::trash_index::Tombstone;

/// What the provider holds at and below a folder, as the mirror records it.
struct HeldTree {
    /// The folder first, then the folders below it.
    dirs: Vec<String>,
    files: Vec<(String, EntryKind)>,
}

impl Store {
    /// Renames provider-held folder `from` to `to` (where nothing is) in the journal.
    /// The caller holds tree locks on both, and has refused a folder made over a
    /// deleted one.
    pub(crate) async fn rename_dir_in_journal(&self, from: &str, to: &str) -> Result<()> {
        let (deleted, HeldTree { dirs, files }) = self.plan_dir_rename(from, to)?;
        let moved = |path: &str| format!("{to}{}", &path[from.len()..]);
        for path in &deleted {
            self.trash_in_journal_locked(path).await?;
        }
        let deleted = self.config.clock.now();
        let mut tombstones = vec![Tombstone {
            id: new_id()?,
            path: from.to_owned(),
            orig: from.to_owned(),
            deleted,
            is_dir: true,
            version: None,
            moved_to: Some(to.to_owned()),
            replaced: false,
        }];
        for dir in &dirs {
            // The new folder shows the old one's time, not the time it is created at.
            let shown = self.index.remote_get(&self.root, dir)?.and_then(|r| r.mtime);
            if let Some(shown) = shown
                && self.index.get(&self.root, dir)?.is_none_or(|ov| ov.mtime.is_none())
            {
                self.index.update(&self.root, dir, |ov| ov.mtime = Some(shown))?;
            }
        }
        for (path, kind) in &files {
            if !self.hold_locally(path, *kind).await? {
                return Err(self.not_here(path)); // evicted meanwhile
            }
            let version = self.held_version(path)?;
            tombstones.push(Tombstone {
                id: new_id()?,
                path: path.clone(),
                orig: path.clone(),
                deleted,
                is_dir: false,
                version,
                moved_to: Some(moved(path)),
                replaced: false,
            });
        }
        let made: Vec<String> = dirs.iter().map(|d| moved(d)).collect();
        self.index.journal_rename_dir(&self.root, from, to, &made, &tombstones)?;
        self.sync_index().await?;

        self.move_pending(from, to, false);
        for (path, p) in self.pending().iter_mut() {
            if is_below(path, to) {
                p.entry.is_new = true;
                p.set_base(None);
            }
        }
        self.made.rename(from, to);
        self.made.add(&made, Instant::now() + self.config.write_back);
        self.retarget_moved(from, to);
        for t in tombstones {
            self.trash.insert(t);
        }
        self.forget_recent_stats();
        self.config.copies.invalidate_tree(&self.root, from);
        self.uploads.wake.notify_one();
        tracing::info!(root = %self.root, from, to, files = files.len(), "renamed a folder while the provider is offline; the provider follows when it is back");
        Ok(())
    }

    /// Whether folder `from` can be renamed to `to` offline, checked before anything
    /// at `to` is replaced, so that a refused rename changes nothing: `found_offline`,
    /// then the checks of `rename_dir_in_journal`. Asks the provider (a folder made
    /// here needs nothing of it, unless it stands where one was deleted).
    pub async fn check_dir_rename_offline(&self, from: &str, to: &str) -> Result<()> {
        let replaced = self.trash.is_replaced(from);
        if (self.made.contains(from) && !replaced) || !self.found_offline(from).await {
            return Ok(());
        }
        if replaced {
            return Err(self.replaced_dir_offline(from));
        }
        self.plan_dir_rename(from, to).map(|_| ())
    }

    /// The checks of `rename_dir_in_journal`, changing nothing: the deleted files with
    /// changes below `from` (to go to the Trash in the journal first) and what the
    /// provider holds there.
    fn plan_dir_rename(&self, from: &str, to: &str) -> Result<(Vec<String>, HeldTree)> {
        // A new name over a deleted one inside: that one must reach the Trash from here.
        let replaced_inside = {
            let (lo, hi) = crate::index::subtree_bounds(from);
            self.trash.tombstones().range(lo..hi).any(|(_, t)| t.replaced)
        };
        if in_meta(from) || in_meta(to) || replaced_inside {
            tracing::error!(root = %self.root, from, to, "cannot rename this folder while its provider is offline");
            return Err(offline(format!(
                "{from}: renaming this folder needs provider {:?}, which is offline; try again when it is back",
                self.root
            )));
        }
        // Deleted files below with changes never uploaded: those changes stay deleted,
        // so they must not move with the folder. A deleted file's go to the Trash in the
        // journal; anything else (inside a deleted folder) waits for the provider, and so
        // does a deleted made folder (kept until what was deleted in it reaches the Trash).
        let deleted: Vec<String> =
            self.pending().keys().filter(|p| is_below(p, from) && self.is_trashed(p)).cloned().collect();
        let deleted_made = self.made.below(from).into_iter().filter(|d| self.is_trashed(d));
        for path in deleted.iter().cloned().chain(deleted_made) {
            let plain = self.trash.tombstones().get(&path).is_some_and(|t| t.moved_to.is_none() && !t.is_dir);
            if !plain {
                tracing::error!(root = %self.root, from, path, "cannot rename a folder holding deleted changes or a deleted made folder while its provider is offline");
                return Err(offline(format!(
                    "{from}: renaming this folder needs provider {:?}, which is offline (something deleted in it \
                     waits to reach the Trash); try again when it is back",
                    self.root
                )));
            }
        }
        let tree = self.held_tree(from)?;
        let moved = |path: &str| format!("{to}{}", &path[from.len()..]);
        // Checked before anything changes: a refused rename leaves no trace.
        for dir in &tree.dirs {
            self.provider.check_name(&moved(dir))?;
        }
        for (path, kind) in &tree.files {
            self.provider.check_name(&moved(path))?;
            if !self.has_locally(path, *kind)? {
                return Err(self.not_here(path));
            }
        }
        Ok((deleted, tree))
    }

    /// The provider-held folders and files at and below `dir`, from the mirror; deleted
    /// ones left out. An error if a folder was never listed.
    fn held_tree(&self, dir: &str) -> Result<HeldTree> {
        let (mut dirs, mut files) = (vec![dir.to_owned()], Vec::new());
        let mut next = 0;
        while let Some(dir) = dirs.get(next).cloned() {
            next += 1;
            let Some(children) = self.index.remote_children(&self.root, &dir)? else {
                return Err(self.not_here(&dir));
            };
            for (name, entry) in children {
                let path = join(&dir, &name);
                if self.is_trashed(&path) {
                    continue;
                }
                if entry.is_dir {
                    dirs.push(path);
                } else {
                    let symlink = self.index.get(&self.root, &path)?.is_some_and(|ov| ov.symlink.is_some());
                    files.push((path, if symlink { EntryKind::Symlink } else { EntryKind::File }));
                }
            }
        }
        Ok(HeldTree { dirs, files })
    }

    /// Whether the whole contents of provider-held `path` are here (`hold_locally`
    /// without committing anything).
    fn has_locally(&self, path: &str, kind: EntryKind) -> Result<bool> {
        if self.pending().contains_key(path) {
            return Ok(true);
        }
        if kind == EntryKind::Symlink {
            return Ok(self.index.get(&self.root, path)?.is_some_and(|ov| ov.symlink.is_some()));
        }
        match self.current_version(path)? {
            Some(version) => self.config.copies.has_complete(&self.root, path, version),
            None => Ok(false),
        }
    }

    /// `settle_one` for a folder renamed in the journal: once nothing below its old
    /// name waits (the old names of its files, which go once the new ones are
    /// uploaded, and what was deleted in it), the old folder goes for good if it holds
    /// only folders, else to the Trash. `forced`: a new name waits for its place; what
    /// is below goes first, at once.
    pub(crate) async fn settle_moved_dir(&self, t: &Tombstone, forced: bool) -> Result<()> {
        if forced {
            for below in self.top_tombstones() {
                let current = self.trash.tombstones().get(&below.path).is_some_and(|x| x.id == below.id);
                if is_below(&below.path, &t.path) && current {
                    Box::pin(self.settle_one(&below, true)).await?;
                }
            }
        }
        if self.trash.any_below(&t.path) {
            if forced {
                // Below a folder deleted too (made over offline): not free before that
                // one goes to the Trash.
                return Err(offline(format!(
                    "{}: a folder renamed away from here waits for provider {:?}; try again when it is back",
                    t.path, self.root
                )));
            }
            return Ok(());
        }
        if self.holds_files(&t.path).await? {
            tracing::info!(root = %self.root, path = %t.path, "the old place of a folder renamed offline holds files added elsewhere; it goes to Trash");
            let plain = Tombstone { moved_to: None, ..t.clone() };
            return self.move_into_trash(&plain, true).await;
        }
        self.delete_for_good(&t.path).await?;
        self.index.tombstones_remove_tree(&self.root, &t.path)?;
        self.drop_tombstones(&t.path);
        tracing::debug!(root = %self.root, from = %t.path, "the provider followed a folder rename made in the journal");
        self.uploads.changed.notify_waiters();
        Ok(())
    }

    /// Whether the provider holds any file at or below `path`.
    async fn holds_files(&self, path: &str) -> Result<bool> {
        let mut dirs = vec![path.to_owned()];
        while let Some(dir) = dirs.pop() {
            match self.provider.list(&dir).await {
                Ok(objects) => {
                    for (name, meta) in objects {
                        if meta.kind != ObjectKind::Dir {
                            return Ok(true);
                        }
                        dirs.push(join(&dir, &name));
                    }
                }
                Err(e) if e.kind() == oxidrive_providers::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
        Ok(false)
    }
}
