//! The encryption layer: plaintext paths and bytes above, ciphertext names and objects
//! in the backend below. Format: docs/format.md.
//!
//! - Every directory but the root holds `oxidrive.dirid` (16 random bytes); each name is
//!   encrypted under its parent's id, so a lookup needs no listing and a directory
//!   rename moves its whole subtree untouched.
//! - Contents are chunked AEAD; the header is bound to (parent dir id, name), so an
//!   object swapped with or renamed onto another name fails to open. A file rename
//!   therefore rewrites the header (a streamed copy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oxidrive_crypto::content::{
    ContentHeader, FileKey, HEADER_LEN, chunk_count, chunk_loc, chunk_range_for, decrypt_all, encrypt_all, open_chunk,
    plain_size, seal_chunk,
};
use oxidrive_crypto::keys::MasterKey;
use oxidrive_crypto::names::{DIR_ID_OBJECT_NAME, DirId, EntryKind, NameCipher, classify, resolve_long_name};
use ring::rand::SystemRandom;

use crate::backend::{Backend, ObjectKind, ObjectMeta, Precondition};
use crate::error::{Error, ErrorKind, Result};
use crate::local_io::{LocalSink, LocalSource};
use crate::path::{join, parent_and_name};

/// How many chunks one download request fetches (8 MiB of plaintext).
const CHUNKS_PER_FETCH: u64 = 128;
/// Dir ids kept in memory; resolving a path needs one per component.
const DIR_CACHE_MAX: usize = 65_536;
/// Opened content headers kept in memory, so a read needs one request, not two.
const HEADER_CACHE_MAX: usize = 4096;

type OpenHeader = Arc<(ContentHeader, FileKey)>;

pub(crate) struct Encrypted {
    backend: Backend,
    master: MasterKey,
    names: NameCipher,
    rng: SystemRandom,
    /// Plaintext directory path → (backend path, dir id).
    dirs: Mutex<HashMap<String, (String, DirId)>>,
    /// Backend path → its opened header. Dropped whenever we change that object; a
    /// header changed by someone else shows up as a failed chunk, which retries fresh.
    headers: Mutex<HashMap<String, OpenHeader>>,
    /// Held while writing a folder's id object (making a folder, or giving one without
    /// id an id): two writers at once, two uploads into it or an upload racing its
    /// making, must not each write their own (the names of one would then fail
    /// authentication).
    repairing: tokio::sync::Mutex<()>,
}

/// Where a plaintext path lives in the backend.
struct Located {
    /// Backend path of the object.
    raw: String,
    /// Backend path of a long name's side object.
    side: Option<(String, Vec<u8>)>,
    /// What the content header is bound to.
    binding: Vec<u8>,
}

fn crypto_err(e: oxidrive_crypto::Error, context: impl Into<String>) -> Error {
    Error::new(ErrorKind::Other, format!("{}: {e}", context.into()))
}

impl Encrypted {
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn new(backend: Backend, master: MasterKey) -> Result<Self> {
        let names = NameCipher::new(&master).map_err(|e| crypto_err(e, "name keys"))?;
        Ok(Self {
            backend,
            master,
            names,
            rng: SystemRandom::new(),
            dirs: Mutex::new(HashMap::new()),
            headers: Mutex::new(HashMap::new()),
            repairing: tokio::sync::Mutex::new(()),
        })
    }

    fn dirs(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, DirId)>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Backend path and id of a plaintext directory; `NotFound` if any part is missing.
    async fn dir(&self, plain: &str) -> Result<(String, DirId)> {
        if plain.is_empty() {
            return Ok((String::new(), DirId::ROOT));
        }
        if let Some(hit) = self.dirs().get(plain).cloned() {
            return Ok(hit);
        }
        let (parent, name) = parent_and_name(plain);
        let (parent_raw, parent_id) = Box::pin(self.dir(parent)).await?;
        let stored = self.names.encrypt_for_storage(&parent_id, name.as_bytes()).map_err(|e| crypto_err(e, plain))?;
        let raw = join(&parent_raw, &stored.name);
        let id = match self.read_dir_id(plain, &raw).await? {
            Some(id) => id,
            None => return self.repair_dir(plain, raw).await,
        };
        let mut dirs = self.dirs();
        if dirs.len() >= DIR_CACHE_MAX {
            dirs.clear();
        }
        dirs.insert(plain.to_owned(), (raw.clone(), id));
        Ok((raw, id))
    }

    /// A folder whose id object is missing: an interrupted `mkdir` (the folder is made
    /// first, its id second) leaves it so, empty. Such a folder gets a fresh id; a
    /// missing folder stays missing, and a non-empty one without id is an error (its
    /// names cannot be read without it).
    async fn repair_dir(&self, plain: &str, raw: String) -> Result<(String, DirId)> {
        let _one = self.repairing.lock().await;
        // Another caller may have repaired it while this one waited.
        if let Some(id) = self.read_dir_id(plain, &raw).await? {
            self.dirs().insert(plain.to_owned(), (raw.clone(), id));
            return Ok((raw, id));
        }
        let listed = match self.backend.list(&raw).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(ErrorKind::NotFound, format!("directory {plain}")));
            }
            Err(e) => return Err(e),
        };
        if self.backend.stat(&raw).await?.is_none() {
            return Err(Error::new(ErrorKind::NotFound, format!("directory {plain}")));
        }
        if !listed.is_empty() {
            return Err(Error::new(
                ErrorKind::Other,
                format!("directory {plain}: its id object is missing, so its {} entries cannot be read", listed.len()),
            ));
        }
        let id = DirId::generate(&self.rng).map_err(|e| crypto_err(e, plain))?;
        self.backend.write_all(&join(&raw, DIR_ID_OBJECT_NAME), id.as_bytes().to_vec()).await?;
        tracing::warn!(dir = plain, "an empty folder had no id (an interrupted mkdir); gave it one");
        self.dirs().insert(plain.to_owned(), (raw.clone(), id));
        Ok((raw, id))
    }

    /// The length of `plain` as stored (names encrypted, long ones hashed). The length
    /// of an encrypted name does not depend on its folder's id.
    /// (A part that cannot be encrypted counts as is: the operation itself says why.)
    pub(crate) fn stored_len(&self, plain: &str) -> usize {
        let mut len = 0;
        for part in plain.split('/').filter(|p| !p.is_empty()) {
            let stored = self.names.encrypt_for_storage(&DirId::ROOT, part.as_bytes());
            len += stored.map_or(part.len(), |s| s.name.len()) + usize::from(len > 0);
        }
        len
    }

    /// The id object of the folder stored at `raw`; `None` if it has none.
    async fn read_dir_id(&self, plain: &str, raw: &str) -> Result<Option<DirId>> {
        match self.backend.read_all(&join(raw, DIR_ID_OBJECT_NAME)).await {
            Ok(b) => DirId::from_slice(&b).map(Some).map_err(|e| crypto_err(e, format!("directory id of {plain}"))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn forget_dirs_under(&self, plain: &str) {
        let prefix = format!("{plain}/");
        self.dirs().retain(|k, _| k != plain && !k.starts_with(&prefix));
        // Backend paths below a moved directory change too.
        self.headers().clear();
    }

    fn headers(&self) -> std::sync::MutexGuard<'_, HashMap<String, OpenHeader>> {
        self.headers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_header(&self, raw: &str) {
        self.headers().remove(raw);
    }

    fn remember_header(&self, raw: &str, header: OpenHeader) {
        let mut cache = self.headers();
        if cache.len() >= HEADER_CACHE_MAX {
            cache.clear();
        }
        cache.insert(raw.to_owned(), header);
    }

    async fn locate(&self, plain: &str) -> Result<Located> {
        let (parent, name) = parent_and_name(plain);
        let (parent_raw, parent_id) = self.dir(parent).await?;
        let stored = self.names.encrypt_for_storage(&parent_id, name.as_bytes()).map_err(|e| crypto_err(e, plain))?;
        let mut binding = parent_id.as_bytes().to_vec();
        binding.extend_from_slice(name.as_bytes());
        Ok(Located {
            raw: join(&parent_raw, &stored.name),
            side: stored.side_object.map(|s| (join(&parent_raw, &s.name), s.content)),
            binding,
        })
    }

    /// `locate` with a missing parent reported as "no such object".
    async fn locate_existing(&self, plain: &str) -> Result<Option<Located>> {
        match self.locate(plain).await {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn plain_meta(&self, plain: &str, mut meta: ObjectMeta) -> Result<ObjectMeta> {
        if meta.kind == ObjectKind::File {
            meta.size = plain_size(meta.size).map_err(|e| crypto_err(e, format!("{plain} has a corrupt size")))?;
        }
        Ok(meta)
    }

    pub(crate) async fn stat(&self, plain: &str) -> Result<Option<ObjectMeta>> {
        if plain.is_empty() {
            return self.backend.stat("").await;
        }
        let Some(loc) = self.locate_existing(plain).await? else { return Ok(None) };
        match self.backend.stat(&loc.raw).await? {
            Some(meta) => self.plain_meta(plain, meta).map(Some),
            None => Ok(None),
        }
    }

    /// Lists a directory, decrypting names. Entries that fail to decrypt are logged and
    /// left out (never shown under a garbled name), and returned as rejects:
    /// (backend object name, reason).
    pub(crate) async fn list(&self, plain_dir: &str) -> Result<(Vec<(String, ObjectMeta)>, Vec<(String, String)>)> {
        let (raw_dir, id) = self.dir(plain_dir).await?;
        let mut out = Vec::new();
        let mut rejects = Vec::new();
        for (stored, meta) in self.backend.list(&raw_dir).await? {
            let encoded = match classify(&stored) {
                EntryKind::Encrypted => stored.clone(),
                EntryKind::LongName => {
                    let side = self.backend.read_all(&join(&raw_dir, &format!("{stored}.name"))).await;
                    match side
                        .map_err(|e| e.to_string())
                        .and_then(|s| resolve_long_name(&stored, &s).map_err(|e| e.to_string()))
                    {
                        Ok(enc) => enc,
                        Err(e) => {
                            rejects.push((stored, format!("long name unreadable: {e}")));
                            continue;
                        }
                    }
                }
                EntryKind::LongNameSide | EntryKind::Other => continue,
            };
            let name = match self.names.decrypt(&id, &encoded).map(String::from_utf8) {
                Ok(Ok(n)) => n,
                _ => {
                    rejects.push((stored, "name failed authentication".to_owned()));
                    continue;
                }
            };
            let path = join(plain_dir, &name);
            match self.plain_meta(&path, meta) {
                Ok(m) => out.push((name, m)),
                Err(e) => rejects.push((stored, e.to_string())),
            }
        }
        for (object, reason) in &rejects {
            tracing::warn!(dir = plain_dir, object = %object, reason = %reason, "entry skipped");
        }
        Ok((out, rejects))
    }

    async fn header(&self, plain: &str, loc: &Located) -> Result<(ContentHeader, FileKey)> {
        let bytes = self.backend.read_range(&loc.raw, 0, HEADER_LEN as u64).await?;
        self.open_header(plain, loc, &bytes)
    }

    fn open_header(&self, plain: &str, loc: &Located, bytes: &[u8]) -> Result<(ContentHeader, FileKey)> {
        let what = || format!("header of {plain}");
        let bytes = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| Error::new(ErrorKind::Other, format!("{plain}: object shorter than a header")))?;
        let header = ContentHeader::from_bytes(bytes).map_err(|e| crypto_err(e, what()))?;
        let key = header.open_key(&self.master, &loc.binding).map_err(|e| crypto_err(e, what()))?;
        Ok((header, key))
    }

    /// Plaintext bytes [offset, offset+len) of a file whose plaintext size is `size`:
    /// fetches and opens only the chunks covering the range, in one request (the header
    /// comes along when the range starts the file, else from the header cache).
    pub(crate) async fn read_range(&self, plain: &str, offset: u64, len: u64, size: u64) -> Result<Vec<u8>> {
        let span = chunk_range_for(offset, len, size);
        if span.is_empty() {
            return Ok(Vec::new());
        }
        let loc = self.locate(plain).await?;
        match self.read_span(plain, &loc, offset, len, &span, true).await {
            // A cached header may be stale if another device replaced the object.
            Err(_) if self.headers().contains_key(&loc.raw) => {
                self.forget_header(&loc.raw);
                self.read_span(plain, &loc, offset, len, &span, false).await
            }
            other => other,
        }
    }

    async fn read_span(
        &self,
        plain: &str,
        loc: &Located,
        offset: u64,
        len: u64,
        span: &oxidrive_crypto::content::ChunkSpan,
        use_cache: bool,
    ) -> Result<Vec<u8>> {
        let cipher = span.cipher_range();
        let cached = if use_cache { self.headers().get(&loc.raw).cloned() } else { None };
        let (header, raw, base) = match cached {
            Some(h) => {
                (h, self.backend.read_range(&loc.raw, cipher.start, cipher.end - cipher.start).await?, cipher.start)
            }
            None if cipher.start <= 4 * HEADER_LEN as u64 => {
                let raw = self.backend.read_range(&loc.raw, 0, cipher.end).await?;
                let opened = Arc::new(self.open_header(plain, loc, &raw)?);
                self.remember_header(&loc.raw, opened.clone());
                (opened, raw, 0)
            }
            None => {
                let opened = Arc::new(self.header(plain, loc).await?);
                self.remember_header(&loc.raw, opened.clone());
                (
                    opened,
                    self.backend.read_range(&loc.raw, cipher.start, cipher.end - cipher.start).await?,
                    cipher.start,
                )
            }
        };
        let (header, key) = (&header.0, &header.1);
        let plain_range = span.plain_range();
        let mut plain_bytes = Vec::with_capacity((plain_range.end - plain_range.start) as usize);
        for c in span.chunks() {
            let a = (c.cipher.start - base) as usize;
            let b = (c.cipher.end - base) as usize;
            let sealed = raw
                .get(a..b)
                .ok_or_else(|| Error::new(ErrorKind::Other, format!("{plain}: object is shorter than its size")))?;
            let opened = open_chunk(key, &header.file_id(), c.index, c.is_last, sealed)
                .map_err(|e| crypto_err(e, format!("{plain} chunk {}", c.index)))?;
            plain_bytes.extend_from_slice(&opened);
        }
        let start = (offset.max(plain_range.start) - plain_range.start) as usize;
        let end = (start + len as usize).min(plain_bytes.len());
        Ok(plain_bytes.get(start..end).map(<[u8]>::to_vec).unwrap_or_default())
    }

    pub(crate) async fn read_all(&self, plain: &str) -> Result<Vec<u8>> {
        let loc = self.locate(plain).await?;
        let ct = self.backend.read_all(&loc.raw).await?;
        decrypt_all(&self.master, &loc.binding, &ct).map_err(|e| crypto_err(e, plain))
    }

    pub(crate) async fn write_all(&self, plain: &str, data: Vec<u8>, durable: bool) -> Result<()> {
        let loc = self.locate(plain).await?;
        let ct = encrypt_all(&self.master, &loc.binding, &data, &self.rng).map_err(|e| crypto_err(e, plain))?;
        self.forget_header(&loc.raw);
        self.write_side(&loc).await?;
        self.backend.write_small(&loc.raw, ct, durable).await
    }

    /// A long name's side object goes first, so a listing never meets the short form
    /// without it.
    async fn write_side(&self, loc: &Located) -> Result<()> {
        match &loc.side {
            Some((path, content)) => self.backend.write_all(path, content.clone()).await,
            None => Ok(()),
        }
    }

    async fn delete_side(&self, loc: &Located) -> Result<()> {
        match &loc.side {
            Some((path, _)) => match self.backend.delete_file(path).await {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    pub(crate) async fn upload(&self, plain: &str, src: &dyn LocalSource, pre: &Precondition) -> Result<()> {
        let loc = self.locate(plain).await?;
        let (header, key) =
            ContentHeader::new(&self.master, &loc.binding, &self.rng).map_err(|e| crypto_err(e, plain))?;
        let len = src.size().map_err(|e| Error::new(ErrorKind::Other, format!("{plain}: staging: {e}")))?;
        let id = header.file_id();
        let first = std::iter::once(Ok(header.to_bytes().to_vec()));
        let chunks = (0..chunk_count(len)).map(|i| {
            let c = chunk_loc(len, i).ok_or_else(|| Error::new(ErrorKind::Other, "chunk index"))?;
            let data = src
                .read_at(c.plain.start, (c.plain.end - c.plain.start) as usize)
                .map_err(|e| Error::new(ErrorKind::Other, format!("{plain}: staging: {e}")))?;
            if data.len() as u64 != c.plain.end - c.plain.start {
                return Err(Error::new(ErrorKind::Other, format!("{plain}: staging changed size during upload")));
            }
            seal_chunk(&key, &id, c.index, c.is_last, &data, &self.rng).map_err(|e| crypto_err(e, plain))
        });
        self.forget_header(&loc.raw);
        self.write_side(&loc).await?;
        let result = self.backend.write_parts(&loc.raw, futures::stream::iter(first.chain(chunks)), pre).await;
        self.forget_header(&loc.raw);
        result
    }

    pub(crate) async fn download(&self, plain: &str, sink: &dyn LocalSink) -> Result<u64> {
        let loc = self.locate(plain).await?;
        let meta =
            self.backend.stat(&loc.raw).await?.ok_or_else(|| Error::new(ErrorKind::NotFound, plain.to_owned()))?;
        let size = plain_size(meta.size).map_err(|e| crypto_err(e, format!("{plain} has a corrupt size")))?;
        let (header, key) = self.header(plain, &loc).await?;
        let total = chunk_count(size);
        let mut first = 0;
        while first < total {
            let last = (first + CHUNKS_PER_FETCH).min(total);
            let a = chunk_loc(size, first).ok_or_else(|| Error::new(ErrorKind::Other, "chunk index"))?;
            let b = chunk_loc(size, last - 1).ok_or_else(|| Error::new(ErrorKind::Other, "chunk index"))?;
            let raw = self.backend.read_range(&loc.raw, a.cipher.start, b.cipher.end - a.cipher.start).await?;
            for i in first..last {
                let c = chunk_loc(size, i).ok_or_else(|| Error::new(ErrorKind::Other, "chunk index"))?;
                let s = (c.cipher.start - a.cipher.start) as usize;
                let e = (c.cipher.end - a.cipher.start) as usize;
                let sealed =
                    raw.get(s..e).ok_or_else(|| Error::new(ErrorKind::Other, format!("{plain}: truncated object")))?;
                let opened = open_chunk(&key, &header.file_id(), c.index, c.is_last, sealed)
                    .map_err(|e| crypto_err(e, format!("{plain} chunk {i}")))?;
                sink.write_at(c.plain.start, &opened)
                    .map_err(|e| Error::new(ErrorKind::Other, format!("{plain}: staging: {e}")))?;
            }
            first = last;
        }
        Ok(size)
    }

    pub(crate) async fn create_dir(&self, plain: &str) -> Result<()> {
        let loc = self.locate(plain).await?;
        // Id objects are written one at a time: a look into this folder between its
        // making and its id (`repair_dir`) must not give it a second id, under which
        // the names written meanwhile would no longer authenticate.
        let _one = self.repairing.lock().await;
        self.write_side(&loc).await?;
        self.backend.create_dir(&loc.raw).await?;
        let id = match self.read_dir_id(plain, &loc.raw).await? {
            Some(id) => id,
            None => {
                let id = DirId::generate(&self.rng).map_err(|e| crypto_err(e, plain))?;
                self.backend.write_all(&join(&loc.raw, DIR_ID_OBJECT_NAME), id.as_bytes().to_vec()).await?;
                id
            }
        };
        self.dirs().insert(plain.to_owned(), (loc.raw, id));
        Ok(())
    }

    pub(crate) async fn delete_file(&self, plain: &str) -> Result<()> {
        let loc = self.locate(plain).await?;
        self.forget_header(&loc.raw);
        self.backend.delete_file(&loc.raw).await?;
        self.delete_side(&loc).await
    }

    pub(crate) async fn delete_dir(&self, plain: &str) -> Result<()> {
        let loc = self.locate(plain).await?;
        self.forget_dirs_under(plain);
        match self.backend.delete_file(&join(&loc.raw, DIR_ID_OBJECT_NAME)).await {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.backend.delete_dir(&loc.raw).await?;
        self.delete_side(&loc).await
    }

    pub(crate) async fn rename(&self, from: &str, to: &str, kind: ObjectKind) -> Result<()> {
        let src = self.locate(from).await?;
        let dst = self.locate(to).await?;
        self.forget_header(&src.raw);
        self.forget_header(&dst.raw);
        self.write_side(&dst).await?;
        match kind {
            ObjectKind::Dir => {
                self.forget_dirs_under(from);
                self.forget_dirs_under(to);
                self.backend.rename(&src.raw, &dst.raw, kind).await?;
            }
            ObjectKind::File => self.rebind_copy(from, &src, &dst).await?,
        }
        self.delete_side(&src).await
    }

    /// Moves a file to a new name: the header is re-bound to the new name (same file id
    /// and key, so chunks are copied byte for byte, 8 MiB at a time) and the old object
    /// removed once the new one is complete.
    async fn rebind_copy(&self, from: &str, src: &Located, dst: &Located) -> Result<()> {
        use futures::StreamExt;
        let (header, _) = self.header(from, src).await?;
        let moved =
            header.rebind(&self.master, &src.binding, &dst.binding, &self.rng).map_err(|e| crypto_err(e, from))?;
        let meta =
            self.backend.stat(&src.raw).await?.ok_or_else(|| Error::new(ErrorKind::NotFound, from.to_owned()))?;
        let step = 8u64 << 20;
        let pieces = (HEADER_LEN as u64..meta.size).step_by(step as usize).map(move |o| (o, step.min(meta.size - o)));
        let body = futures::stream::iter(pieces).then(|(o, n)| self.backend.read_range(&src.raw, o, n));
        let parts = futures::stream::once(async { Ok(moved.to_bytes().to_vec()) }).chain(body);
        self.backend.write_parts(&dst.raw, parts, &Precondition::Any).await?;
        self.backend.delete_file(&src.raw).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ProviderKind, ProviderSpec};

    fn encrypted(store: &std::path::Path) -> Encrypted {
        let spec = ProviderSpec {
            name: "Local".into(),
            kind: ProviderKind::Local { path: store.to_owned() },
            shared: false,
            encrypt: true,
        };
        Encrypted::new(Backend::from_spec(&spec).unwrap(), MasterKey::from_bytes([9; 32])).unwrap()
    }

    /// A crash between making a folder and writing its id leaves it without one; two
    /// uploads into it at once (the uploader runs several) must agree on the new id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_into_a_folder_without_id_share_one_new_id() {
        let dir = tempfile::tempdir().unwrap();
        encrypted(dir.path()).create_dir("d").await.unwrap();
        let ids: Vec<_> = walk(dir.path()).into_iter().filter(|p| p.ends_with(DIR_ID_OBJECT_NAME)).collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        std::fs::remove_file(&ids[0]).unwrap();
        // A fresh instance: nothing of the folder is remembered.
        let e = Arc::new(encrypted(dir.path()));
        let writes = (0..8).map(|i| {
            let e = e.clone();
            tokio::spawn(async move { e.write_all(&format!("d/f{i}"), vec![i as u8; 10], false).await })
        });
        for w in futures::future::join_all(writes).await {
            w.unwrap().unwrap();
        }
        let (listed, skipped) = encrypted(dir.path()).list("d").await.unwrap();
        let mut names: Vec<String> = listed.into_iter().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(names, (0..8).map(|i| format!("f{i}")).collect::<Vec<_>>(), "skipped: {skipped:?}");
    }

    #[tokio::test]
    async fn stored_len_is_the_length_of_the_stored_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = encrypted(dir.path());
        let long = "n".repeat(100);
        let plain = format!("a/{long}/ccc");
        for d in ["a".to_owned(), format!("a/{long}"), plain.clone()] {
            e.create_dir(&d).await.unwrap();
        }
        let deepest = walk(dir.path())
            .into_iter()
            .filter(|p| p.is_dir())
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_str().unwrap().len())
            .max()
            .unwrap();
        assert_eq!(e.stored_len(&plain), deepest);
        assert!(deepest > plain.len());
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }
}
