//! The cache and vfs driven directly, without FUSE, over a real provider with an
//! OpenDAL layer underneath that watches and steers what reaches the storage: it
//! records which folders are listed, and can let "another device" write right after
//! the next stat returns (an exact race, not a timed one). A mock of nothing: the
//! layer forwards every request to the real service (a local folder, or moto_server
//! on 127.0.0.1).

use std::ffi::OsStr;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use opendal::raw::*;
use opendal::{Capability, OperationContext, Operator};
use oxidrive_cache::{Clock, Copies, Index, Store, StoreConfig};
use oxidrive_crypto::keys::MasterKey;
use oxidrive_providers::{Backend, Capabilities, Provider, ProviderKind, ProviderSpec, Secret};
use oxidrive_vfs::{Caller, OpenMode, ROOT_INO, RootSpec, Vfs, ViewConfig};

use crate::servers::S3Server;

pub const ME: Caller = Caller { uid: 1000, gid: 1000 };
/// Open for writing, truncating (as `>` and most editors do).
pub const RW_TRUNC: OpenMode = OpenMode { write: true, truncate: true };
const KEY: [u8; 32] = [9; 32];

type Armed = Arc<Mutex<Option<BoxFuture<'static, ()>>>>;

/// What the layer under the store does and saw.
#[derive(Clone, Default)]
struct Hooks {
    /// Runs (once) after the next stat returns, before that stat is answered.
    armed: Armed,
    /// Every folder listed, as the storage saw its path, in order.
    lists: Arc<Mutex<Vec<String>>>,
    /// Every read request (a GET on S3), as the storage saw its path.
    reads: Arc<Mutex<Vec<String>>>,
    /// Every stat (a HEAD on S3), as the storage saw its path.
    stats: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hooks")
    }
}

impl Layer for Hooks {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(Hooked { inner, hooks: self.clone() })
    }
}

struct Hooked {
    inner: Servicer,
    hooks: Hooks,
}

impl fmt::Debug for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hooked")
    }
}

impl Service for Hooked {
    type Reader = oio::Reader;
    type Writer = oio::Writer;
    type Lister = oio::Lister;
    type Deleter = oio::Deleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }
    fn capability(&self) -> Capability {
        self.inner.capability()
    }
    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> opendal::Result<Self::Composer> {
        self.inner.compose(ctx, to, args)
    }
    async fn create_dir(&self, ctx: &OperationContext, path: &str, args: OpCreateDir) -> opendal::Result<RpCreateDir> {
        self.inner.create_dir(ctx, path, args).await
    }
    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> opendal::Result<RpStat> {
        self.hooks.stats.lock().unwrap().push(path.to_owned());
        let answer = self.inner.stat(ctx, path, args).await;
        let race = self.hooks.armed.lock().unwrap().take();
        if let Some(race) = race {
            race.await;
        }
        answer
    }
    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> opendal::Result<Self::Reader> {
        self.hooks.reads.lock().unwrap().push(path.to_owned());
        self.inner.read(ctx, path, args)
    }
    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> opendal::Result<Self::Writer> {
        self.inner.write(ctx, path, args)
    }
    fn copy(&self, ctx: &OperationContext, from: &str, to: &str, args: OpCopy) -> opendal::Result<Self::Copier> {
        self.inner.copy(ctx, from, to, args)
    }
    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> opendal::Result<Self::Lister> {
        self.hooks.lists.lock().unwrap().push(path.to_owned());
        self.inner.list(ctx, path, args)
    }
    fn delete(&self, ctx: &OperationContext) -> opendal::Result<Self::Deleter> {
        self.inner.delete(ctx)
    }
    async fn rename(&self, ctx: &OperationContext, from: &str, to: &str, args: OpRename) -> opendal::Result<RpRename> {
        self.inner.rename(ctx, from, to, args).await
    }
    async fn restore(&self, ctx: &OperationContext, path: &str, args: OpRestore) -> opendal::Result<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }
    async fn presign(&self, ctx: &OperationContext, path: &str, args: OpPresign) -> opendal::Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Storage {
    Local,
    S3,
}

/// This device (a store over the hooked provider, and its vfs) and the other device
/// (a provider on the same storage with the same key, no cache).
pub struct Direct {
    _dir: tempfile::TempDir,
    _s3: Option<S3Server>,
    pub store: Arc<Store>,
    pub vfs: Vfs,
    /// The store's folder in the vfs.
    pub root: u64,
    pub other: Arc<Provider>,
    /// What the storage can do (conditional writes).
    pub caps: Capabilities,
    hooks: Hooks,
}

fn provider(spec: &ProviderSpec, op: Operator) -> Provider {
    let backend = Backend::from_operator(op);
    if spec.encrypt {
        Provider::encrypted(&spec.name, backend, MasterKey::from_bytes(KEY)).unwrap()
    } else {
        Provider::plain(&spec.name, backend)
    }
}

impl Direct {
    /// A fresh storage (a temp folder, or a bucket on a moto_server of its own). Uploads
    /// wait for [`sync`](Self::sync): the test decides when they run.
    pub async fn start(storage: Storage, encrypt: bool) -> Direct {
        Self::with_cache_limit(storage, encrypt, 1 << 30).await
    }

    /// `start` with a read cache of `cache_limit` bytes (files over half of it are
    /// streamed past the cache).
    pub async fn with_cache_limit(storage: Storage, encrypt: bool, cache_limit: u64) -> Direct {
        let dir = tempfile::tempdir().unwrap();
        let (kind, s3) = match storage {
            Storage::Local => (ProviderKind::Local { path: dir.path().join("store") }, None),
            Storage::S3 => {
                let s3 = S3Server::start();
                s3.create_bucket("direct");
                let kind = ProviderKind::S3 {
                    bucket: "direct".into(),
                    endpoint: Some(s3.endpoint.clone()),
                    region: None,
                    root: None,
                    access_key_id: Some(Secret::Value("test".into())),
                    secret_access_key: Some(Secret::Value("test".into())),
                    virtual_host_style: false,
                    concurrency: None,
                    timeout_secs: None,
                    retries: Some(0),
                };
                (kind, Some(s3))
            }
        };
        let spec = ProviderSpec { name: "Direct".into(), kind, shared: false, encrypt };
        let caps = Backend::from_operator(oxidrive_providers::operator(&spec).unwrap()).capabilities();
        let hooks = Hooks::default();
        let hooked = provider(&spec, oxidrive_providers::operator(&spec).unwrap().layer(hooks.clone()));
        let other = Arc::new(provider(&spec, oxidrive_providers::operator(&spec).unwrap()));
        let copies = dir.path().join("copies");
        std::fs::create_dir_all(&copies).unwrap();
        let index = Arc::new(Index::open(&dir.path().join("index.sqlite"), Some(&[5; 32])).unwrap());
        let copies = Arc::new(Copies::new(&copies, [3; 32], cache_limit, index.clone()));
        let config = StoreConfig {
            copies,
            write_back: Duration::from_secs(3600),
            trash_retention: Duration::from_secs(30 * 86_400),
            clock: Clock::system(),
        };
        let store = Arc::new(Store::new("Direct", hooked, index, config).unwrap());
        store.start_uploads();
        let top = RootSpec { name: "Direct".into(), shared: false, store: Ok(store.clone()) };
        let vfs = Vfs::new(vec![top], ViewConfig::default(), ME).unwrap();
        let drive = vfs.lookup(ROOT_INO, OsStr::new("My Drive")).await.unwrap().ino;
        let root = vfs.lookup(drive, OsStr::new("Direct")).await.unwrap().ino;
        Direct { _dir: dir, _s3: s3, store, vfs, root, other, caps, hooks }
    }

    /// Writes `data` to `name` (at the top) through this device and closes it:
    /// committed, not uploaded.
    pub async fn save(&self, name: &str, data: &[u8]) {
        let fh = match self.vfs.lookup(self.root, OsStr::new(name)).await {
            Ok(attr) => self.vfs.open(attr.ino, RW_TRUNC).await.unwrap(),
            Err(_) => self.vfs.create(self.root, OsStr::new(name), 0o644, true, RW_TRUNC, ME).await.unwrap().1,
        };
        self.vfs.write(fh, 0, data).unwrap();
        self.vfs.flush(fh).await.unwrap();
        self.vfs.release(fh).await.unwrap();
    }

    /// `save`, into the folder `dir` (an inode).
    pub async fn save_in(&self, dir: u64, name: &str, data: &[u8]) {
        let fh = self.vfs.create(dir, OsStr::new(name), 0o644, true, RW_TRUNC, ME).await.unwrap().1;
        self.vfs.write(fh, 0, data).unwrap();
        self.vfs.flush(fh).await.unwrap();
        self.vfs.release(fh).await.unwrap();
    }

    /// Uploads everything committed.
    pub async fn sync(&self) {
        assert!(self.store.wait_uploaded(Some(tokio::time::Instant::now() + Duration::from_secs(60))).await);
    }

    /// The other device writes `data` to `path` right after this device's next stat.
    pub fn race_next_stat(&self, path: &str, data: &[u8]) {
        let (other, path, data) = (self.other.clone(), path.to_owned(), data.to_vec());
        *self.hooks.armed.lock().unwrap() = Some(Box::pin(async move {
            other.write_all(&path, data).await.expect("the other device writes");
        }));
    }

    /// Whether the race set up by `race_next_stat` ran.
    pub fn raced(&self) -> bool {
        self.hooks.armed.lock().unwrap().is_none()
    }

    /// The folders listed since the last call, as the storage saw their paths.
    pub fn take_lists(&self) -> Vec<String> {
        std::mem::take(&mut *self.hooks.lists.lock().unwrap())
    }

    /// How many read requests reached the storage since the last call.
    pub fn take_reads(&self) -> usize {
        std::mem::take(&mut *self.hooks.reads.lock().unwrap()).len()
    }

    /// The paths stat'ed on the storage since the last call.
    pub fn take_stats(&self) -> Vec<String> {
        std::mem::take(&mut *self.hooks.stats.lock().unwrap())
    }

    /// Every file at the top of the storage, as the other device reads it.
    pub async fn top_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (name, meta) in self.other.list("").await.unwrap() {
            if meta.kind == oxidrive_providers::ObjectKind::File {
                out.push((name.clone(), self.other.read_all(&name).await.unwrap()));
            }
        }
        out.sort();
        out
    }
}
