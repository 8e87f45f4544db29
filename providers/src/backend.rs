use std::time::SystemTime;

use opendal::Operator;

use crate::error::{Error, ErrorKind, Result};
use crate::name_rules::NameRules;
use crate::path::{META_DIR, dir_key};
use crate::spec::ProviderSpec;

/// Upload part size: bounds memory per upload and matches multipart minimums later.
const UPLOAD_CHUNK: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    File,
    Dir,
}

/// What the provider knows of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub kind: ObjectKind,
    pub size: u64,
    pub mtime: Option<SystemTime>,
    pub etag: Option<String>,
}

/// What a provider can do natively; the rest is emulated here, never in `vfs`.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    pub rename: bool,
    pub copy: bool,
    pub range_read: bool,
    /// An upload with [`Precondition::Absent`] fails rather than replace an object.
    pub write_if_not_exists: bool,
    /// An upload with [`Precondition::Etag`] fails if the object changed.
    pub write_if_match: bool,
}

/// What must still hold on the provider when an upload takes effect. Checking first
/// and writing after leaves a window in which another device's write is lost; where
/// the provider can check at the moment of writing, it does, and a failed check is
/// [`ErrorKind::ConditionNotMatch`]. Where it cannot (see [`Capabilities`]), the
/// upload goes ahead as with `Any`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    #[default]
    Any,
    /// Nothing exists at the path.
    Absent,
    /// The object there still has this etag.
    Etag(String),
}

/// One store as OpenDAL sees it: raw object paths and bytes, no encryption.
#[derive(Debug, Clone)]
pub struct Backend {
    op: Operator,
    caps: Capabilities,
    /// Writes go to `.oxidrive/tmp/<random>` and are renamed into place, because a
    /// plain file write is visible (half-written) while it runs. Object stores publish
    /// an object only when its upload completes, so they write in place.
    write_via_tmp: bool,
    /// Set once the service answered a conditional write with "not implemented" (some
    /// S3-compatible servers): later uploads go without conditions.
    conditions_refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The names and path lengths the service takes.
    rules: NameRules,
    /// Modification times are cut to whole seconds (all but a local folder): a version
    /// is (size, mtime), and remote services show one object's time with milliseconds
    /// in a listing (S3 on MinIO, R2, Ceph) but whole seconds in a `stat` (HTTP
    /// `Last-Modified`); compared, they would look like another device's change.
    whole_seconds: bool,
}

/// Where temporary uploads go; short random names, so any final name length works.
const TMP_DIR: &str = ".oxidrive/tmp";

/// 12 random hex digits naming this run's temporary objects.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut b = [0u8; 6];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

/// Where the vault header lives: our meta folder is never encrypted, so it can be
/// found before the key is known.
const VAULT_PATH: &str = ".oxidrive/oxidrive.vault";

impl Backend {
    pub fn from_spec(spec: &ProviderSpec) -> Result<Self> {
        Ok(Self::from_operator(crate::services::operator(spec)?))
    }

    pub fn from_operator(op: Operator) -> Self {
        let cap = op.info().capability();
        let scheme = op.info().scheme().to_string();
        // Services that write in place (a file being written is visible under its name,
        // and an interrupted write leaves it half-written) get a temporary name and a
        // rename; object stores publish whole objects by themselves.
        let write_via_tmp = matches!(scheme.as_str(), "fs" | "sftp" | "webdav") && cap.rename;
        // Through a temporary name the condition must hold at the rename: only a local
        // folder has a rename that refuses to replace (see `publish`).
        let caps = Capabilities {
            rename: cap.rename,
            copy: cap.copy,
            range_read: cap.read,
            write_if_not_exists: if write_via_tmp { scheme == "fs" } else { cap.write_with_if_not_exists },
            write_if_match: !write_via_tmp && cap.write_with_if_match,
        };
        let rules = NameRules::of(&scheme, &op.info().root());
        let whole_seconds = scheme != "fs";
        Self { op, caps, write_via_tmp, conditions_refused: Default::default(), rules, whole_seconds }
    }

    pub(crate) fn rules(&self) -> &NameRules {
        &self.rules
    }

    /// The path to write to, and whether it must be renamed into place afterwards.
    fn write_target(&self, path: &str) -> (String, bool) {
        if !self.write_via_tmp {
            return (path.to_owned(), false);
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A random run id, not the pid: other devices write temporary objects here too.
        (format!("{TMP_DIR}/{}-{n}", run_id()), true)
    }

    /// Deletes temporary uploads older than `age` (left by a crash or a lost
    /// connection; anything still being written is far younger). Returns how many.
    pub async fn sweep_tmp(&self, age: std::time::Duration) -> Result<usize> {
        if !self.write_via_tmp {
            return Ok(0);
        }
        let list = match self.list(TMP_DIR).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let cutoff = std::time::SystemTime::now().checked_sub(age);
        let mut removed = 0;
        for (name, meta) in list {
            if meta.kind == ObjectKind::File && meta.mtime.zip(cutoff).is_some_and(|(m, c)| m < c) {
                let path = format!("{TMP_DIR}/{name}");
                self.op.delete(&path).await.map_err(|e| Error::from_opendal(e, format!("delete {path}")))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves a finished temporary object into place (atomically replacing the old one,
    /// unless `pre` says nothing may be there and the service can refuse).
    async fn publish(&self, tmp: &str, path: &str, pre: &Precondition) -> Result<()> {
        let local = self.op.info().scheme() == "fs";
        let renamed = if local && *pre == Precondition::Absent {
            let root = std::path::PathBuf::from(self.op.info().root());
            let (from, to) = (root.join(tmp), root.join(path));
            tokio::task::spawn_blocking(move || crate::local_io::rename_noreplace(&from, &to))
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("publish {path}: {e}")))?
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        Error::new(ErrorKind::ConditionNotMatch, format!("publish {path}: it exists already"))
                    }
                    _ => Error::new(ErrorKind::Other, format!("publish {path}: {e}")),
                })
        } else {
            self.op.rename(tmp, path).await.map_err(|e| Error::from_opendal(e, format!("publish {path}")))
        };
        if let Err(e) = renamed {
            let _ = self.op.delete(tmp).await;
            return Err(e);
        }
        if !local {
            return Ok(());
        }
        // The file's bytes were synced before the rename; the new name lives in the
        // directory, which must be synced too or a power cut can undo the rename.
        let dir = std::path::Path::new(&self.op.info().root()).join(crate::parent_and_name(path).0);
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("sync directory of {path}: {e}")))?
            .map_err(|e| Error::new(ErrorKind::Other, format!("sync directory of {path}: {e}")))
    }

    pub fn capabilities(&self) -> Capabilities {
        let mut caps = self.caps;
        if self.conditions_refused.load(std::sync::atomic::Ordering::Relaxed) {
            caps.write_if_match = false;
            caps.write_if_not_exists &= self.write_via_tmp;
        }
        caps
    }

    /// Whether `e`, the failure of an upload with a precondition, says the service does
    /// not do conditional writes at all; if so, later uploads are sent without them.
    pub(crate) fn refuses_conditions(&self, e: &Error) -> bool {
        let refused = !self.write_via_tmp && e.kind() == ErrorKind::Other && e.to_string().contains("NotImplemented");
        if refused && !self.conditions_refused.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(error = %e, "this S3 service does not take conditional writes; a change made elsewhere \
                during an upload can now be overwritten");
        }
        refused
    }

    pub async fn read_vault(&self) -> Result<Option<Vec<u8>>> {
        match self.op.read(VAULT_PATH).await {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_opendal(e, "read vault header")),
        }
    }

    pub async fn write_vault(&self, bytes: &[u8]) -> Result<()> {
        self.write_all(VAULT_PATH, bytes.to_vec()).await
    }

    /// Whether the store holds anything but our meta folder.
    pub async fn has_user_objects(&self) -> Result<bool> {
        Ok(!self.list("").await?.is_empty())
    }

    /// Metadata of a file or directory, or `None` if neither exists.
    pub async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        if path.is_empty() {
            return Ok(Some(ObjectMeta { kind: ObjectKind::Dir, size: 0, mtime: None, etag: None }));
        }
        match self.op.stat(path).await {
            Ok(m) => return Ok(Some(self.meta_of(&m))),
            Err(e) if e.kind() != opendal::ErrorKind::NotFound => {
                return Err(Error::from_opendal(e, format!("stat {path}")));
            }
            Err(_) => {}
        }
        // Object stores only know a directory by its trailing slash.
        match self.op.stat(&dir_key(path)).await {
            Ok(m) if m.is_dir() => Ok(Some(self.meta_of(&m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_opendal(e, format!("stat {path}/"))),
        }
    }

    /// Direct children of a directory as (name, meta), without our own meta folder.
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let key = dir_key(dir);
        let entries = self.op.list(&key).await.map_err(|e| Error::from_opendal(e, format!("list {key}")))?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let p = entry.path();
            let rel = p.strip_prefix(key.trim_start_matches('/')).unwrap_or(p);
            let name = rel.trim_end_matches('/');
            if name.is_empty() || name.contains('/') || (dir.is_empty() && name == META_DIR) {
                continue;
            }
            out.push((name.to_owned(), self.meta_of(entry.metadata())));
        }
        Ok(out)
    }

    /// Reads `len` bytes at `offset`; shorter at end of file.
    pub async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        match self.op.read_with(path).range(offset..offset + len).await {
            Ok(buf) => Ok(buf.to_vec()),
            Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => Ok(Vec::new()),
            Err(e) => Err(Error::from_opendal(e, format!("read {path} @{offset}+{len}"))),
        }
    }

    pub async fn read_all(&self, path: &str) -> Result<Vec<u8>> {
        self.op.read(path).await.map(|b| b.to_vec()).map_err(|e| Error::from_opendal(e, format!("read {path}")))
    }

    /// Writes a small object. `durable: false` is for placeholders whose loss in a power
    /// cut loses nothing acknowledged (a just-created file before its first close): a
    /// local provider then skips the temp file and both fsyncs.
    pub async fn write_small(&self, path: &str, data: Vec<u8>, durable: bool) -> Result<()> {
        if durable || !self.write_via_tmp {
            return self.write_all(path, data).await;
        }
        let full = std::path::Path::new(&self.op.info().root()).join(path);
        tokio::task::spawn_blocking(move || std::fs::write(&full, data))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("write {path}: {e}")))?
            .map_err(|e| {
                // Keep the io::Error as the cause, so a full disk still reads as ENOSPC above.
                let err = opendal::Error::new(opendal::ErrorKind::Unexpected, "write").set_source(e);
                Error::from_opendal(err, format!("write {path}"))
            })
    }

    pub async fn write_all(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let (target, via_tmp) = self.write_target(path);
        self.op.write(&target, data).await.map_err(|e| Error::from_opendal(e, format!("write {path}")))?;
        if via_tmp { self.publish(&target, path, &Precondition::Any).await } else { Ok(()) }
    }

    /// Streams parts to `path`; the object appears (replacing any old one, if `pre`
    /// allows) only when `parts` ends without error.
    pub async fn write_parts<S>(&self, path: &str, parts: S, pre: &Precondition) -> Result<()>
    where
        S: futures::Stream<Item = Result<Vec<u8>>>,
    {
        use futures::StreamExt;
        let mut parts = std::pin::pin!(parts);
        let ctx = || format!("upload {path}");
        let (target, via_tmp) = self.write_target(path);
        if !self.op.info().capability().write_can_multi {
            // WebDAV takes one PUT per object: the body is gathered, then sent at once
            // (memory then grows with the file; such services have no other way).
            let mut body = Vec::new();
            while let Some(part) = parts.next().await {
                body.push(bytes::Bytes::from(part?));
            }
            self.op.write(&target, opendal::Buffer::from(body)).await.map_err(|e| Error::from_opendal(e, ctx()))?;
            return if via_tmp { self.publish(&target, path, pre).await } else { Ok(()) };
        }
        let mut writer = self.op.writer_with(&target).chunk(UPLOAD_CHUNK);
        // Object stores check the condition when the object is published (the single
        // PUT, or the completion of a multipart upload).
        if !via_tmp && !self.conditions_refused.load(std::sync::atomic::Ordering::Relaxed) {
            match pre {
                Precondition::Absent if self.caps.write_if_not_exists => writer = writer.if_not_exists(true),
                Precondition::Etag(etag) if self.caps.write_if_match => writer = writer.if_match(etag),
                _ => {}
            }
        }
        let mut writer = writer.await.map_err(|e| Error::from_opendal(e, ctx()))?;
        let mut pending = Vec::with_capacity(UPLOAD_CHUNK);
        loop {
            let part = match parts.next().await {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
                None => None,
            };
            let done = part.is_none();
            if let Some(p) = part {
                pending.extend_from_slice(&p);
            }
            if pending.len() >= UPLOAD_CHUNK || (done && !pending.is_empty()) {
                let buf = std::mem::replace(&mut pending, Vec::with_capacity(UPLOAD_CHUNK));
                if let Err(e) = writer.write(buf).await {
                    let _ = writer.abort().await;
                    return Err(Error::from_opendal(e, ctx()));
                }
            }
            if done {
                break;
            }
        }
        writer.close().await.map_err(|e| Error::from_opendal(e, ctx()))?;
        if via_tmp { self.publish(&target, path, pre).await } else { Ok(()) }
    }

    pub async fn create_dir(&self, path: &str) -> Result<()> {
        self.op.create_dir(&dir_key(path)).await.map_err(|e| Error::from_opendal(e, format!("mkdir {path}")))
    }

    pub async fn delete_file(&self, path: &str) -> Result<()> {
        self.op.delete(path).await.map_err(|e| Error::from_opendal(e, format!("delete {path}")))
    }

    /// Removes an (empty) directory.
    pub async fn delete_dir(&self, path: &str) -> Result<()> {
        self.op.delete(&dir_key(path)).await.map_err(|e| Error::from_opendal(e, format!("rmdir {path}")))
    }

    /// Renames a file or a whole directory, natively when the provider can,
    /// otherwise by copying then deleting each object.
    pub async fn rename(&self, from: &str, to: &str, kind: ObjectKind) -> Result<()> {
        let ctx = || format!("rename {from} -> {to}");
        if self.caps.rename {
            return self.op.rename(from, to).await.map_err(|e| Error::from_opendal(e, ctx()));
        }
        match kind {
            ObjectKind::File => {
                self.op.copy(from, to).await.map_err(|e| Error::from_opendal(e, ctx()))?;
                self.delete_file(from).await
            }
            ObjectKind::Dir => {
                self.create_dir(to).await?;
                for (name, meta) in Box::pin(self.list(from)).await? {
                    let (f, t) = (crate::join(from, &name), crate::join(to, &name));
                    Box::pin(self.rename(&f, &t, meta.kind)).await?;
                }
                self.delete_dir(from).await
            }
        }
    }

    fn meta_of(&self, m: &opendal::Metadata) -> ObjectMeta {
        let mtime = m.last_modified().map(SystemTime::from);
        ObjectMeta {
            kind: if m.is_dir() { ObjectKind::Dir } else { ObjectKind::File },
            size: if m.is_dir() { 0 } else { m.content_length() },
            mtime: if self.whole_seconds { mtime.map(whole_seconds) } else { mtime },
            etag: m.etag().map(str::to_owned),
        }
    }
}

/// `t` without its fraction of a second (times before 1970 are left as they are).
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::whole_seconds;

    #[test]
    fn a_listing_time_with_milliseconds_matches_the_same_objects_http_date() {
        let listed = UNIX_EPOCH + Duration::from_millis(1_795_567_191_345);
        let head = UNIX_EPOCH + Duration::from_secs(1_795_567_191);
        assert_eq!(whole_seconds(listed), head);
        assert_eq!(whole_seconds(head), head);
        let before_1970 = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(whole_seconds(before_1970), before_1970);
    }
}
