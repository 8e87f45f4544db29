//! `Provider`: one configured store as the layers above see it, with plaintext paths
//! and bytes. Encryption is a layer over the backend, chosen per provider.

use oxidrive_crypto::keys::MasterKey;
use oxidrive_crypto::names::DIR_ID_OBJECT_NAME;

use crate::backend::{Backend, ObjectKind, ObjectMeta, Precondition};
use crate::encrypted::Encrypted;
use crate::error::{Error, ErrorKind, Result};
use crate::local_io::{LocalSink, LocalSource};

/// Plaintext read/written per request when no encryption is involved.
const PLAIN_PIECE: u64 = 8 << 20;

enum Layer {
    Plain(Backend),
    Encrypted(Box<Encrypted>),
}

pub struct Provider {
    name: String,
    layer: Layer,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).field("encrypted", &self.is_encrypted()).finish()
    }
}

impl Provider {
    pub fn plain(name: &str, backend: Backend) -> Self {
        Self { name: name.to_owned(), layer: Layer::Plain(backend) }
    }

    pub fn encrypted(name: &str, backend: Backend, master: MasterKey) -> Result<Self> {
        Ok(Self { name: name.to_owned(), layer: Layer::Encrypted(Box::new(Encrypted::new(backend, master)?)) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes temporary uploads older than `age` (see [`Backend::sweep_tmp`]).
    pub async fn sweep_tmp(&self, age: std::time::Duration) -> Result<usize> {
        self.backend().sweep_tmp(age).await
    }

    pub fn is_encrypted(&self) -> bool {
        matches!(self.layer, Layer::Encrypted(_))
    }

    /// Whether a folder's rename copies every object below it (object stores), which
    /// gives each a new mtime; a native rename keeps them.
    pub fn renames_folders_by_copy(&self) -> bool {
        !self.backend().capabilities().rename
    }

    pub async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.stat(path).await,
            Layer::Encrypted(e) => e.stat(path).await,
        }
    }

    pub async fn list(&self, dir: &str) -> Result<Vec<(String, ObjectMeta)>> {
        Ok(self.list_checked(dir).await?.0)
    }

    /// `list`, plus the backend objects that were left out because they failed
    /// authentication, as (object name, reason).
    pub async fn list_checked(&self, dir: &str) -> Result<(Vec<(String, ObjectMeta)>, Vec<(String, String)>)> {
        self.check_name(dir)?;
        match &self.layer {
            Layer::Plain(b) => Ok((b.list(dir).await?, Vec::new())),
            Layer::Encrypted(e) => e.list(dir).await,
        }
    }

    /// Bytes [offset, offset+len) of a file of plaintext size `size` (shorter at the end).
    pub async fn read_range(&self, path: &str, offset: u64, len: u64, size: u64) -> Result<Vec<u8>> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.read_range(path, offset, len).await,
            Layer::Encrypted(e) => e.read_range(path, offset, len, size).await,
        }
    }

    pub async fn read_all(&self, path: &str) -> Result<Vec<u8>> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.read_all(path).await,
            Layer::Encrypted(e) => e.read_all(path).await,
        }
    }

    pub async fn write_all(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.write_all(path, data).await,
            Layer::Encrypted(e) => e.write_all(path, data, true).await,
        }
    }

    /// Makes a new, empty file visible at once without paying for durability: its
    /// first close uploads (durably) whatever it then holds.
    pub async fn create_empty(&self, path: &str) -> Result<()> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.write_small(path, Vec::new(), false).await,
            Layer::Encrypted(e) => e.write_all(path, Vec::new(), false).await,
        }
    }

    /// Uploads a local file's plaintext to `path`, replacing it only once complete, and
    /// only if `pre` holds then (where the provider can check; see [`Precondition`]).
    pub async fn upload(&self, path: &str, src: &dyn LocalSource, pre: &Precondition) -> Result<()> {
        self.check_name(path)?;
        match self.upload_once(path, src, pre).await {
            Err(e) if *pre != Precondition::Any && self.backend().refuses_conditions(&e) => {
                self.upload_once(path, src, &Precondition::Any).await
            }
            r => r,
        }
    }

    fn backend(&self) -> &Backend {
        match &self.layer {
            Layer::Plain(b) => b,
            Layer::Encrypted(e) => e.backend(),
        }
    }

    async fn upload_once(&self, path: &str, src: &dyn LocalSource, pre: &Precondition) -> Result<()> {
        match &self.layer {
            Layer::Plain(b) => {
                let len = src.size().map_err(|e| local_err(path, e))?;
                let pieces = (0..len).step_by(PLAIN_PIECE as usize).map(move |o| {
                    let n = PLAIN_PIECE.min(len - o) as usize;
                    match src.read_at(o, n) {
                        Ok(d) if d.len() == n => Ok(d),
                        Ok(_) => {
                            Err(Error::new(ErrorKind::Other, format!("{path}: staging changed size during upload")))
                        }
                        Err(e) => Err(local_err(path, e)),
                    }
                });
                b.write_parts(path, futures::stream::iter(pieces), pre).await
            }
            Layer::Encrypted(e) => e.upload(path, src, pre).await,
        }
    }

    /// Writes the object's plaintext into `sink`; returns its size.
    pub async fn download(&self, path: &str, sink: &dyn LocalSink) -> Result<u64> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => {
                let size = b.stat(path).await?.ok_or_else(|| Error::new(ErrorKind::NotFound, path.to_owned()))?.size;
                let mut off = 0;
                while off < size {
                    let data = b.read_range(path, off, PLAIN_PIECE.min(size - off)).await?;
                    if data.is_empty() {
                        break;
                    }
                    sink.write_at(off, &data).map_err(|e| local_err(path, e))?;
                    off += data.len() as u64;
                }
                Ok(off)
            }
            Layer::Encrypted(e) => e.download(path, sink).await,
        }
    }

    pub async fn create_dir(&self, path: &str) -> Result<()> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.create_dir(path).await,
            Layer::Encrypted(e) => e.create_dir(path).await,
        }
    }

    pub async fn delete_file(&self, path: &str) -> Result<()> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.delete_file(path).await,
            Layer::Encrypted(e) => e.delete_file(path).await,
        }
    }

    /// Removes an (empty) directory.
    pub async fn delete_dir(&self, path: &str) -> Result<()> {
        self.check_name(path)?;
        match &self.layer {
            Layer::Plain(b) => b.delete_dir(path).await,
            Layer::Encrypted(e) => e.delete_dir(path).await,
        }
    }

    pub async fn rename(&self, from: &str, to: &str, kind: ObjectKind) -> Result<()> {
        self.check_name(from)?;
        self.check_name(to)?;
        match &self.layer {
            Layer::Plain(b) => b.rename(from, to, kind).await,
            Layer::Encrypted(e) => e.rename(from, to, kind).await,
        }
    }
}

impl Provider {
    /// Refuses, before anything is journaled, a path the service would refuse at upload
    /// (too long as stored; on a plain store, names it does not take). OpenDAL also
    /// trims white space at the ends of path components, so a plain store would
    /// silently keep `"x "` as `"x"` (possibly over another file): refused too.
    /// Encrypted stores keep such names, since their stored names are encoded.
    pub fn check_name(&self, path: &str) -> Result<()> {
        if matches!(self.layer, Layer::Plain(_)) && path.split('/').any(|c| c.trim() != c) {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("{path:?}: names starting or ending with white space cannot be stored unencrypted"),
            ));
        }
        let rules = self.backend().rules();
        if let Layer::Plain(_) = &self.layer {
            rules.check_names(path)?;
        }
        if rules.max_bytes.is_none() && rules.max_chars.is_none() {
            return Ok(());
        }
        let (bytes, chars) = match &self.layer {
            Layer::Plain(_) => (path.len(), path.chars().count()),
            // With room for the id object a folder there holds; stored names are ASCII.
            Layer::Encrypted(e) => {
                let n = e.stored_len(path) + 1 + DIR_ID_OBJECT_NAME.len();
                (n, n)
            }
        };
        rules.check_len(path, bytes, chars)
    }
}

fn local_err(path: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Other, format!("{path}: local staging: {e}"))
}
