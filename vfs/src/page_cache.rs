//! Whether the kernel may keep a file's cached pages when it is opened again.
//!
//! Keeping them makes a warm re-read never leave the kernel. They stay right because
//! everything that changes a file's bytes behind the kernel's back also changes what
//! it is shown (size or mtime, which makes the kernel drop the pages when it next
//! refreshes them) or invalidates it outright (remote changes and conflicts, through
//! `KernelNotify`). What is left is the moment between this daemon learning of a new
//! version (a stat made for some other reason) and the kernel refreshing its
//! attributes: an open in that moment must not mix old cached pages with new bytes
//! read through us. So an open keeps the pages only when the file shows the same
//! version as at the previous open of that inode.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::error::Result;
use crate::fs::{OpenMode, Vfs};

/// What a file showed at an open: (size, mtime).
type Version = (u64, SystemTime);

/// Per inode, the version shown when it was last opened: its cached pages can only
/// hold that version's bytes, or bytes of later ones that were invalidated since.
#[derive(Debug, Default)]
pub struct KernelPages {
    opened_at: Mutex<HashMap<u64, Version>>,
}

impl KernelPages {
    pub fn new() -> Self {
        Self::default()
    }

    /// The kernel dropped the inode (and with it its pages), or we cannot tell what
    /// its pages hold: its next open starts afresh.
    pub fn forget(&self, ino: u64) {
        self.table().remove(&ino);
    }

    /// Records `now` as what `ino` shows at this open; true when that is what it
    /// showed at the previous one.
    fn same_as_last_open(&self, ino: u64, now: Version) -> bool {
        self.table().insert(ino, now) == Some(now)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Version>> {
        self.opened_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Vfs {
    /// `open`, and whether the kernel may keep what it cached of the file from earlier
    /// opens (false makes it drop those pages now).
    pub async fn open_keeping_pages(&self, pages: &KernelPages, ino: u64, mode: OpenMode) -> Result<(u64, bool)> {
        let fh = self.open(ino, mode).await?;
        // After the open, so a version the open itself fetched or made is the one compared.
        let keep = match self.getattr(ino).await {
            Ok(attr) => pages.same_as_last_open(ino, (attr.size, attr.mtime)),
            Err(e) => {
                tracing::debug!(ino, error = %e, "no attributes after open; the kernel drops its cached pages");
                pages.forget(ino);
                false
            }
        };
        Ok((fh, keep))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn pages_are_kept_only_for_the_version_of_the_last_open() {
        let pages = KernelPages::new();
        let v1 = (10, UNIX_EPOCH + Duration::from_secs(1));
        let v2 = (10, UNIX_EPOCH + Duration::from_secs(2));
        assert!(!pages.same_as_last_open(7, v1), "first open: nothing known of the pages");
        assert!(pages.same_as_last_open(7, v1));
        assert!(!pages.same_as_last_open(7, v2), "same size, new mtime");
        assert!(pages.same_as_last_open(7, v2));
        assert!(!pages.same_as_last_open(7, (11, v2.1)), "new size");
        assert!(!pages.same_as_last_open(8, v2), "another inode");
        pages.forget(7);
        assert!(!pages.same_as_last_open(7, (11, v2.1)), "forgotten by the kernel");
    }
}
