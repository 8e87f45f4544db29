//! The one interface `vfs` uses to reach a provider root. Today it passes content
//! through to the provider and merges in the metadata index; the block cache and the
//! write-back journal will sit behind these same calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use oxidrive_providers::{ObjectKind, ObjectMeta, Provider};

use crate::error::{Error, Result};
use crate::index::{Index, Overlay};
use crate::staging::Staging;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// A provider object seen through the index. `None` fields take the caller's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub size: u64,
    pub mtime: Option<SystemTime>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct FsStats {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
}

#[derive(Debug)]
pub struct Store {
    root: String,
    provider: Provider,
    index: Arc<Index>,
    staging_dir: PathBuf,
}

impl Store {
    /// `root` keys this store's rows in the shared index (the provider's configured name).
    pub fn new(root: &str, provider: Provider, index: Arc<Index>, staging_dir: &Path) -> Self {
        Self { root: root.to_owned(), provider, index, staging_dir: staging_dir.to_owned() }
    }

    pub fn name(&self) -> &str {
        &self.root
    }

    pub async fn stat(&self, path: &str) -> Result<Option<Entry>> {
        let Some(meta) = self.provider.stat(path).await? else { return Ok(None) };
        let ov = self.index.get(&self.root, path)?;
        Ok(Some(merge(&meta, ov.as_ref())))
    }

    pub async fn list(&self, dir: &str) -> Result<Vec<(String, Entry)>> {
        let objects = self.provider.list(dir).await?;
        let overlays: std::collections::HashMap<String, Overlay> =
            self.index.children(&self.root, dir)?.into_iter().collect();
        Ok(objects
            .into_iter()
            .map(|(name, meta)| {
                let entry = merge(&meta, overlays.get(&name));
                (name, entry)
            })
            .collect())
    }

    /// Reads from a file whose size (as last seen) is `size`.
    pub async fn read(&self, path: &str, offset: u64, len: u64, size: u64) -> Result<Vec<u8>> {
        Ok(self.provider.read_range(path, offset, len, size).await?)
    }

    pub fn new_staging(&self) -> Result<Staging> {
        Staging::create(&self.staging_dir)
    }

    /// A staging file holding the object's current contents.
    pub async fn download(&self, path: &str) -> Result<Staging> {
        let staging = self.new_staging()?;
        let size = self.provider.download(path, &staging).await?;
        // A short download must not leave stale length: the copy is exactly the object.
        staging.set_len(size)?;
        Ok(staging)
    }

    /// Uploads a staging file's contents to `path` and records `mtime` as the file's.
    pub async fn upload(&self, path: &str, staging: &Staging, mtime: Option<SystemTime>) -> Result<()> {
        self.provider.upload(path, staging).await?;
        let remote = self.provider.stat(path).await?;
        self.index.update(&self.root, path, |ov| {
            if mtime.is_some() {
                ov.mtime = mtime;
            }
            ov.remote = remote.map(|m| (m.mtime, m.size));
        })
    }

    /// Creates an empty file (or replaces one with emptiness).
    pub async fn create_file(&self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        self.provider.create_empty(path).await?;
        let remote = self.provider.stat(path).await?;
        let now = SystemTime::now();
        let ov = Overlay {
            mode: Some(mode),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(now),
            symlink: None,
            remote: remote.map(|m| (m.mtime, m.size)),
        };
        self.index.replace(&self.root, path, &ov)
    }

    pub async fn mkdir(&self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        self.provider.create_dir(path).await?;
        let ov = Overlay { mode: Some(mode), uid: Some(uid), gid: Some(gid), ..Overlay::default() };
        self.index.replace(&self.root, path, &ov)
    }

    /// A symlink is stored as a small object holding its target, marked in the index.
    pub async fn symlink(&self, path: &str, target: &str, uid: u32, gid: u32) -> Result<()> {
        self.provider.write_all(path, target.as_bytes().to_vec()).await?;
        let ov = Overlay {
            mode: Some(0o777),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(SystemTime::now()),
            symlink: Some(target.to_owned()),
            remote: None,
        };
        self.index.replace(&self.root, path, &ov)
    }

    pub async fn readlink(&self, path: &str) -> Result<String> {
        if let Some(target) = self.index.get(&self.root, path)?.and_then(|o| o.symlink) {
            return Ok(target);
        }
        let bytes = self.provider.read_all(path).await?;
        String::from_utf8(bytes)
            .map_err(|_| Error::io(format!("readlink {path}"), std::io::ErrorKind::InvalidData.into()))
    }

    pub async fn remove_file(&self, path: &str) -> Result<()> {
        self.provider.delete_file(path).await?;
        self.index.remove_tree(&self.root, path)
    }

    pub async fn remove_dir(&self, path: &str) -> Result<()> {
        self.provider.delete_dir(path).await?;
        self.index.remove_tree(&self.root, path)
    }

    pub async fn rename(&self, from: &str, to: &str, kind: EntryKind) -> Result<()> {
        let object_kind = if kind == EntryKind::Dir { ObjectKind::Dir } else { ObjectKind::File };
        // Providers that rewrite a file to rename it (encrypted, or copy + delete) give
        // it a new provider mtime; keep recognising it as ours if it was before.
        let ours_before = match kind {
            EntryKind::Dir => false,
            _ => match (self.index.get(&self.root, from)?, self.provider.stat(from).await?) {
                (Some(ov), Some(meta)) => ov.remote == Some((meta.mtime, meta.size)),
                _ => false,
            },
        };
        self.provider.rename(from, to, object_kind).await?;
        self.index.rename_tree(&self.root, from, to)?;
        if ours_before && let Some(meta) = self.provider.stat(to).await? {
            self.index.update(&self.root, to, |ov| ov.remote = Some((meta.mtime, meta.size)))?;
        }
        Ok(())
    }

    /// The recorded overlay of a path, if any.
    pub fn overlay(&self, path: &str) -> Result<Option<Overlay>> {
        self.index.get(&self.root, path)
    }

    /// Changes attributes kept in the index (mode, owner, mtime).
    pub fn set_attrs(&self, path: &str, change: impl FnOnce(&mut Overlay)) -> Result<()> {
        self.index.update(&self.root, path, change)
    }

    /// Notes that a file was just created or written (the Recents view).
    pub fn touch_recent(&self, path: &str) -> Result<()> {
        self.index.recent_touch(&self.root, path, SystemTime::now())
    }

    pub fn recents(&self, limit: usize) -> Result<Vec<(String, SystemTime)>> {
        self.index.recent_list(&self.root, limit)
    }

    pub fn forget_recent(&self, path: &str) -> Result<()> {
        self.index.recent_remove(&self.root, path)
    }

    pub fn xattr_get(&self, path: &str, name: &str) -> Result<Option<Vec<u8>>> {
        self.index.xattr_get(&self.root, path, name)
    }

    pub fn xattr_list(&self, path: &str) -> Result<Vec<String>> {
        self.index.xattr_list(&self.root, path)
    }

    pub fn xattr_set(&self, path: &str, name: &str, value: &[u8]) -> Result<()> {
        self.index.xattr_set(&self.root, path, name, value)
    }

    pub fn xattr_remove(&self, path: &str, name: &str) -> Result<bool> {
        self.index.xattr_remove(&self.root, path, name)
    }

    /// Space where local state lives (the staging area); what `df` on the mount shows.
    pub fn statfs(&self) -> Result<FsStats> {
        let st = nix::sys::statvfs::statvfs(&self.staging_dir)
            .map_err(|e| Error::io("statvfs", std::io::Error::from_raw_os_error(e as i32)))?;
        Ok(FsStats {
            blocks: st.blocks(),
            bfree: st.blocks_free(),
            bavail: st.blocks_available(),
            files: st.files(),
            ffree: st.files_free(),
            bsize: st.fragment_size() as u32,
        })
    }
}

fn merge(meta: &ObjectMeta, ov: Option<&Overlay>) -> Entry {
    let kind = match (meta.kind, ov.and_then(|o| o.symlink.as_ref())) {
        (ObjectKind::Dir, _) => EntryKind::Dir,
        (ObjectKind::File, Some(_)) => EntryKind::Symlink,
        (ObjectKind::File, None) => EntryKind::File,
    };
    // A file changed by someone else since our last upload keeps the provider's mtime.
    let ours = ov.is_some_and(|o| match (kind, o.remote) {
        (EntryKind::File, Some((m, s))) => s == meta.size && (m.is_none() || m == meta.mtime),
        (EntryKind::File, None) => false,
        _ => true,
    });
    let size = match (kind, ov.and_then(|o| o.symlink.as_ref())) {
        (EntryKind::Symlink, Some(t)) => t.len() as u64,
        _ => meta.size,
    };
    Entry {
        kind,
        size,
        mtime: if ours { ov.and_then(|o| o.mtime).or(meta.mtime) } else { meta.mtime },
        mode: ov.and_then(|o| o.mode),
        uid: ov.and_then(|o| o.uid),
        gid: ov.and_then(|o| o.gid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(size: u64, secs: u64) -> ObjectMeta {
        ObjectMeta {
            kind: ObjectKind::File,
            size,
            mtime: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            etag: None,
        }
    }

    #[test]
    fn overlay_mtime_applies_only_while_the_object_is_ours() {
        let mine = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        let ov = Overlay {
            mtime: Some(mine),
            remote: Some((meta(3, 100).mtime, 3)),
            mode: Some(0o600),
            ..Default::default()
        };
        assert_eq!(merge(&meta(3, 100), Some(&ov)).mtime, Some(mine));
        let changed = merge(&meta(4, 200), Some(&ov));
        assert_eq!(changed.mtime, meta(4, 200).mtime);
        assert_eq!(changed.mode, Some(0o600));
    }

    #[test]
    fn symlink_marked_in_index() {
        let ov = Overlay { symlink: Some("../target".into()), ..Default::default() };
        let e = merge(&meta(9, 1), Some(&ov));
        assert_eq!((e.kind, e.size), (EntryKind::Symlink, 9));
    }
}
