//! What `oxidrive trash list|restore|empty` asks of the Trash view.

use std::time::SystemTime;

use crate::error::{Error, ErrorKind, Result};
use crate::fs::Vfs;
use crate::layout::TRASH_INO;

/// One item of the Trash, as `oxidrive trash list` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashListing {
    /// Its name in the Trash view.
    pub name: String,
    pub provider: String,
    /// Where it was deleted from, inside its provider.
    pub orig: String,
    pub deleted: SystemTime,
    pub is_dir: bool,
    pub size: u64,
}

impl Vfs {
    /// Everything in the Trash, newest first (after reading the providers' trash areas).
    pub async fn trash_list(&self) -> Result<Vec<TrashListing>> {
        let mut out = Vec::new();
        for (name, root, item) in self.trash_items(true).await? {
            let Some(entry) = self.trash_stat(root, &item).await else { continue };
            out.push(TrashListing {
                name,
                provider: self.roots[root].name.clone(),
                orig: item.orig,
                deleted: item.deleted,
                is_dir: item.is_dir,
                size: entry.size,
            });
        }
        Ok(out)
    }

    /// Puts the item shown as `name` back where it was deleted from, recreating missing
    /// folders. Returns "PROVIDER/PATH" of where it went.
    pub async fn trash_restore(&self, name: &str) -> Result<String> {
        let (root, item, _) = self.trash_named(name).await?;
        let store = self.roots[root].store.as_ref().map_err(|w| Error::new(ErrorKind::NotFound, w.clone()))?;
        let dest = store
            .trash_restore(&item.id, None, false)
            .await
            .map_err(|e| Error::from_cache(e, format!("restore {name}")))?;
        self.trash_changed(name);
        self.remote_changed(root, &dest);
        Ok(format!("{}/{dest}", self.roots[root].name))
    }

    /// Deletes everything in the Trash for good; returns how many items went.
    pub async fn trash_empty(&self) -> Result<usize> {
        let mut n = 0;
        for (name, root, item) in self.trash_items(true).await? {
            let Ok(store) = self.roots[root].store.as_ref() else { continue };
            store.trash_delete(&item.id).await.map_err(|e| Error::from_cache(e, format!("delete {name}")))?;
            self.trash_changed(&name);
            n += 1;
        }
        Ok(n)
    }

    /// The kernel must look the Trash view up again.
    fn trash_changed(&self, name: &str) {
        self.inodes().detach(TRASH_INO, name);
        if let Some(notify) = self.notify.get() {
            notify.inval_entry(TRASH_INO, name);
            notify.inval_inode(TRASH_INO);
        }
    }
}
