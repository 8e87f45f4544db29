//! A local file holding a copy of one version of a file's contents, encrypted at rest:
//! the working copy of a file open for writing, and a change waiting in the journal.
//!
//! The plaintext is cut into 64 KiB blocks; block `i` is sealed alone (see
//! [`LocalCipher`], bound to this copy's random id and the block index) and stored in a
//! fixed-size slot at `i * SLOT` of the local file, so random writes touch only their
//! blocks and holes in the plaintext stay holes on disk. A slot never written reads as
//! zeros; a slot holds a sealed block exactly when its nonce is not all zeros (a hole
//! reads as zeros), which is how [`LocalCopy::open`] finds them again after a restart.
//! The logical size is kept by the caller (the journal) across restarts.
//!
//! Invariant: every stored byte at a logical position `>= len` is zero, so growing the
//! file (`set_len` up, or a write past the end) exposes zeros, never stale data.
//!
//! Concurrency: reads and writes share `resize` (a truncate takes it alone); a
//! read-modify-write of one block holds that block's stripe lock, so two writers patching
//! different bytes of one block never lose each other's update. At most one stripe lock
//! is held at a time, and `meta` only briefly inside it.
//!
//! Lifetime: the file is removed when the value is dropped, unless [`LocalCopy::keep`]
//! says something (the journal) still refers to it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use oxidrive_crypto::content::CHUNK_SIZE;
use oxidrive_crypto::local::{BLOCK_OVERHEAD, FILE_ID_LEN, LocalCipher};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// The random id of one local copy (one version of one file's contents).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CopyId(pub [u8; FILE_ID_LEN]);

impl CopyId {
    pub fn random(rng: &SystemRandom) -> Result<Self> {
        let mut id = [0u8; FILE_ID_LEN];
        rng.fill(&mut id).map_err(|_| Error::io("random copy id", io::Error::other("no randomness")))?;
        Ok(Self(id))
    }

    /// The local file's name.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(name: &str) -> Option<Self> {
        if name.len() != 2 * FILE_ID_LEN {
            return None;
        }
        let mut id = [0u8; FILE_ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(id))
    }
}

impl std::fmt::Debug for CopyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Plaintext bytes per block.
pub const BLOCK: u64 = CHUNK_SIZE;
const BLOCK_LEN: usize = BLOCK as usize;
/// Bytes before the sealed block in a slot: the block's sequence number (u64 BE).
const SEQ_LEN: u64 = 8;
/// Bytes of one slot: sequence number, then one sealed block (nonce, ciphertext, tag).
/// Block `i` has two slots, `2i` and `2i + 1`: each rewrite goes to the one not holding
/// the current version, so a write torn by a crash never destroys the version before.
const SLOT: u64 = SEQ_LEN + BLOCK + BLOCK_OVERHEAD as u64;
/// Largest logical size: every slot must end below `i64::MAX` (`off_t`).
const MAX_LEN: u64 = (i64::MAX as u64 / (2 * SLOT)) * BLOCK;
/// Number of block locks; block `i` uses stripe `i % STRIPES`.
const STRIPES: usize = 64;
/// Largest file whose commit carries its contents inline (see [`LocalCopy::inline_image`]).
pub const INLINE_MAX: u64 = 128 * 1024;
/// The sequence number bound into inline blocks: slots start at 1, so an inline block
/// never opens as a slot or the other way round.
const INLINE_SEQ: u64 = 0;

#[derive(Debug)]
pub struct LocalCopy {
    id: CopyId,
    path: PathBuf,
    /// Where the slots are: the file at `path`, or memory until that is worth it.
    /// Held for one slot read or write (a leaf, inside the stripe locks).
    storage: RwLock<Storage>,
    cipher: LocalCipher,
    /// Whether the file outlives this value (something on disk refers to it).
    keep: AtomicBool,
    /// Bumped when a change starts and again when it ends: equal readings before and
    /// after reading the whole copy mean no change overlapped that read.
    generation: AtomicU64,
    last_read_end: AtomicU64,
    /// How far the next read-ahead reaches (grows while reading stays sequential).
    read_ahead_window: AtomicU64,
    /// Where the last advice to read this copy's file ahead ended (see `advise_ahead`).
    advised_to: AtomicU64,
    prefetching: AtomicBool,
    prefetched: tokio::sync::Notify,
    /// The provider version (size, mtime) this copy's contents started from.
    base: Mutex<Option<(u64, Option<std::time::SystemTime>)>>,
    rng: SystemRandom,
    /// Shared by reads and writes; taken alone by `set_len`.
    resize: RwLock<()>,
    /// Serialises the read-modify-write of one block.
    stripes: Box<[Mutex<()>]>,
    meta: Mutex<Meta>,
    /// Seal and open operations so far: tests hold the write path to one seal per block.
    #[cfg(test)]
    crypto_ops: (AtomicU64, AtomicU64),
}

/// A new small file's blocks live in memory: making a file costs an inode, and a small
/// file's commit carries its contents inline anyway (see `inline_image`). Memory is not
/// at rest, so they stay plaintext (`BLOCK` bytes each) and a write only copies bytes;
/// they are sealed when they move to the file (`spill`): when the copy grows past
/// `MEMORY_BLOCKS`, the shared budget is spent, or something needs the file (a sync,
/// the read cache).
#[derive(Debug)]
enum Storage {
    File(File),
    Memory { blocks: BTreeMap<u64, Vec<u8>>, budget: Arc<MemoryBudget> },
}

/// Most blocks one copy keeps in memory: 128 KiB of contents, the inline limit.
const MEMORY_BLOCKS: usize = (INLINE_MAX / BLOCK) as usize;
/// Where every block kept in memory goes when it spills: memory does not tear, so it
/// needs no second slot until it is in the file.
const MEMORY_SLOT: Slot = Slot { parity: 0, seq: 1 };

/// Bytes all in-memory copies may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicU64,
    limit: u64,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self { used: AtomicU64::new(0), limit })
    }

    fn take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(bytes).filter(|&n| n <= self.limit))
            .is_ok()
    }

    fn give(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

#[derive(Debug, Default)]
struct Meta {
    /// Logical (plaintext) size.
    len: u64,
    /// The blocks holding data, and where their current version is.
    sealed: BTreeMap<u64, Slot>,
}

/// Where block `i`'s current version is: slot `2i + parity`, written as write `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    parity: u64,
    seq: u64,
}

fn slot_offset(index: u64, parity: u64) -> u64 {
    (2 * index + parity) * SLOT
}

impl LocalCopy {
    /// A new empty copy in `dir`, sealed under `cipher_key` (the local-state key).
    pub fn create(dir: &Path, cipher_key: &[u8; 32]) -> Result<Self> {
        let rng = SystemRandom::new();
        let id = CopyId::random(&rng)?;
        let path = dir.join(id.hex());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("create local copy {}", path.display()), e))?;
        Self::with(id, path, Storage::File(file), cipher_key, Meta::default())
    }

    /// A new empty copy whose slots stay in memory while it is small and `budget`
    /// allows; its file in `dir` is made only when needed.
    pub fn create_in_memory(dir: &Path, cipher_key: &[u8; 32], budget: Arc<MemoryBudget>) -> Result<Self> {
        let id = CopyId::random(&SystemRandom::new())?;
        let storage = Storage::Memory { blocks: BTreeMap::new(), budget };
        Self::with(id, dir.join(id.hex()), storage, cipher_key, Meta::default())
    }

    /// The copy `id` in `dir`, written before (maybe by an earlier run) with logical size `len`.
    pub fn open(dir: &Path, cipher_key: &[u8; 32], id: CopyId, len: u64) -> Result<Self> {
        let path = dir.join(id.hex());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("open local copy {}", path.display()), e))?;
        // Blocks past `len` were written after the last commit, then lost with a crash:
        // cut them off, or their slots (with higher sequence numbers) would win over
        // the same blocks written again later.
        let keep = slot_offset(len.div_ceil(BLOCK), 0);
        let on_disk = file.metadata().map_err(|e| Error::io(format!("stat local copy {}", path.display()), e))?.len();
        if on_disk > keep {
            file.set_len(keep).map_err(|e| Error::io(format!("trim local copy {}", path.display()), e))?;
        }
        let sealed =
            sealed_slots(&file, len).map_err(|e| Error::io(format!("scan local copy {}", path.display()), e))?;
        let copy = Self::with(id, path, Storage::File(file), cipher_key, Meta { len, sealed })?;
        copy.keep(true);
        Ok(copy)
    }

    fn with(id: CopyId, path: PathBuf, storage: Storage, cipher_key: &[u8; 32], meta: Meta) -> Result<Self> {
        let cipher =
            LocalCipher::keyed(cipher_key, id.0).map_err(|e| Error::io("local copy key", io::Error::other(e)))?;
        Ok(Self {
            id,
            path,
            storage: RwLock::new(storage),
            cipher,
            keep: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            last_read_end: AtomicU64::new(u64::MAX),
            read_ahead_window: AtomicU64::new(0),
            advised_to: AtomicU64::new(0),
            prefetching: AtomicBool::new(false),
            prefetched: tokio::sync::Notify::new(),
            base: Mutex::new(None),
            rng: SystemRandom::new(),
            resize: RwLock::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            meta: Mutex::new(meta),
            #[cfg(test)]
            crypto_ops: Default::default(),
        })
    }

    pub fn id(&self) -> CopyId {
        self.id
    }

    /// Whether the file stays on disk when this value is dropped.
    pub fn keep(&self, keep: bool) {
        self.keep.store(keep, Ordering::Release);
    }

    /// Makes every byte written so far durable (not the size: the journal holds that).
    pub fn sync(&self) -> Result<()> {
        self.persist()?;
        match &*self.storage() {
            Storage::File(file) => file.sync_data().map_err(|e| Error::io("sync local copy", e)),
            Storage::Memory { .. } => Err(Error::io("sync local copy", io::Error::other("still in memory"))),
        }
    }

    /// Moves slots kept in memory to the copy's file (not synced).
    pub fn persist(&self) -> Result<()> {
        if matches!(&*self.storage(), Storage::File(_)) {
            return Ok(());
        }
        let mut storage = self.storage.write().unwrap_or_else(PoisonError::into_inner);
        self.spill(&mut storage).map_err(|e| Error::io(format!("write local copy {}", self.path.display()), e))
    }

    /// Whether the slots are still in memory (no file yet).
    pub fn in_memory(&self) -> bool {
        matches!(&*self.storage(), Storage::Memory { .. })
    }

    fn storage(&self) -> std::sync::RwLockReadGuard<'_, Storage> {
        self.storage.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seals the blocks kept in memory into a new file (each at `MEMORY_SLOT`) and uses
    /// it from now on.
    fn spill(&self, storage: &mut Storage) -> io::Result<()> {
        let Storage::Memory { blocks, budget } = storage else { return Ok(()) };
        let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&self.path)?;
        let written = (|| {
            for (&index, plain) in blocks.iter() {
                file.write_all_at(&self.seal_slot(index, MEMORY_SLOT, plain)?, slot_offset(index, MEMORY_SLOT.parity))?;
            }
            // The file ends where the last slot does, as if written there all along.
            if let Some(&index) = blocks.keys().next_back() {
                file.set_len(slot_offset(index, MEMORY_SLOT.parity) + SLOT)?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&self.path);
            return Err(e);
        }
        budget.give(blocks.len() as u64 * BLOCK);
        *storage = Storage::File(file);
        Ok(())
    }

    /// Copies `piece` into block `index` at `at` if the copy is in memory and the block
    /// may be there (a new one zero-filled); otherwise spills, and the caller writes the
    /// file. The caller holds the block's stripe lock (or `resize` alone).
    fn patch_in_memory(&self, index: u64, at: usize, piece: &[u8]) -> io::Result<Option<Slot>> {
        if matches!(&*self.storage(), Storage::File(_)) {
            return Ok(None);
        }
        let mut storage = self.storage.write().unwrap_or_else(PoisonError::into_inner);
        let Storage::Memory { blocks, budget } = &mut *storage else { return Ok(None) };
        if !blocks.contains_key(&index) && blocks.len() < MEMORY_BLOCKS && budget.take(BLOCK) {
            blocks.insert(index, vec![0u8; BLOCK_LEN]);
        }
        if let Some(plain) = blocks.get_mut(&index) {
            plain[at..at + piece.len()].copy_from_slice(piece);
            return Ok(Some(MEMORY_SLOT));
        }
        // Too big or over budget: everything to the file.
        self.spill(&mut storage)?;
        Ok(None)
    }

    /// Reads `buf.len()` bytes at `offset` (within one slot) of the copy's file:
    /// `UnexpectedEof` past the end, zeros in a hole, as a file would.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match &*self.storage() {
            Storage::File(file) => file.read_exact_at(buf, offset),
            Storage::Memory { .. } => Err(io::Error::other("local copy has no slots in memory")),
        }
    }

    /// Writes one whole slot (`raw`) of block `index` at `parity` to the copy's file.
    fn write_slot(&self, index: u64, parity: u64, raw: &[u8]) -> io::Result<()> {
        match &*self.storage() {
            Storage::File(file) => file.write_all_at(raw, slot_offset(index, parity)),
            Storage::Memory { .. } => Err(io::Error::other("local copy has no slots in memory")),
        }
    }

    /// Keeps the first `count` blocks' storage, drops the rest.
    fn truncate_blocks(&self, count: u64) -> io::Result<()> {
        let mut storage = self.storage.write().unwrap_or_else(PoisonError::into_inner);
        match &mut *storage {
            Storage::File(file) => file.set_len(slot_offset(count, 0)),
            Storage::Memory { blocks, budget } => {
                let cut = blocks.split_off(&count);
                budget.give(cut.len() as u64 * BLOCK);
                Ok(())
            }
        }
    }

    /// The whole contents sealed into one piece, if they are at most [`INLINE_MAX`]
    /// bytes: (length, image). A small file's commit stores this in the journal's own
    /// synced transaction instead of syncing the copy file: one sync per commit, not
    /// two; [`LocalCopy::restore`] rebuilds the copy from it after a restart.
    /// Image: each 64 KiB piece of the plaintext (the last one shorter) sealed alone.
    pub fn inline_image(&self) -> Result<Option<(u64, Vec<u8>)>> {
        // Spares a big file's commit the read (the read below settles races).
        if self.len()? > INLINE_MAX {
            return Ok(None);
        }
        let plain = self.read_at(0, INLINE_MAX as usize + 1)?;
        if plain.len() as u64 > INLINE_MAX {
            return Ok(None);
        }
        let mut image = Vec::with_capacity(plain.len() + 2 * BLOCK_OVERHEAD);
        for (index, piece) in plain.chunks(BLOCK_LEN).enumerate() {
            let sealed = self
                .cipher
                .seal_block(index as u64, INLINE_SEQ, piece, &self.rng)
                .map_err(|e| Error::io("seal inline contents", io::Error::other(e)))?;
            image.extend_from_slice(&sealed);
        }
        Ok(Some((plain.len() as u64, image)))
    }

    /// Writes copy `id` in `dir` anew (replacing the file if there is one) from an
    /// [`LocalCopy::inline_image`] of `len` bytes, synced; it is kept.
    pub fn restore(dir: &Path, cipher_key: &[u8; 32], id: CopyId, len: u64, image: &[u8]) -> Result<Self> {
        let cipher =
            LocalCipher::keyed(cipher_key, id.0).map_err(|e| Error::io("local copy key", io::Error::other(e)))?;
        let bad =
            |what: &str| Error::io("inline contents", io::Error::new(io::ErrorKind::InvalidData, what.to_owned()));
        let mut pieces = Vec::new();
        let mut rest = image;
        for index in 0..len.div_ceil(BLOCK) {
            let plain_len = (len - index * BLOCK).min(BLOCK) as usize;
            let sealed_len = plain_len + BLOCK_OVERHEAD;
            if rest.len() < sealed_len {
                return Err(bad("too short"));
            }
            let (sealed, tail) = rest.split_at(sealed_len);
            let plain = cipher.open_block(index, INLINE_SEQ, sealed).map_err(|_| bad("failed authentication"))?;
            if plain.len() != plain_len {
                return Err(bad("wrong length"));
            }
            pieces.push(plain);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(bad("too long"));
        }
        let path = dir.join(id.hex());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("restore local copy {}", path.display()), e))?;
        let copy = Self::with(id, path, Storage::File(file), cipher_key, Meta::default())?;
        copy.keep(true);
        for (index, piece) in pieces.iter().enumerate() {
            copy.fill(index as u64 * BLOCK, piece)?;
        }
        copy.sync()?;
        Ok(copy)
    }

    /// Up to `len` plaintext bytes at `offset`; shorter only at the end of the file.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.read_impl(offset, len).map_err(|e| Error::io("read local copy", e))
    }

    /// Writes `data` at `offset`, growing the file if it ends past the end.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let _change = self.change();
        self.write_impl(offset, data).map_err(|e| Error::io("write local copy", e))
    }

    /// Cuts or extends the file to `len` bytes; extension reads as zeros.
    pub fn set_len(&self, len: u64) -> Result<()> {
        let _change = self.change();
        self.set_len_impl(len).map_err(|e| Error::io("truncate local copy", e))
    }

    /// Stores fetched provider bytes at `offset` (whole blocks, or up to the end): a
    /// cache fill, not a change of the file, so `generation` stays.
    pub fn fill(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.write_impl(offset, data).map_err(|e| Error::io("fill local copy", e))
    }

    /// Blocks covering `[offset, end)` that hold nothing yet (for a cache copy: not
    /// fetched yet).
    pub fn missing_blocks(&self, offset: u64, end: u64) -> Vec<u64> {
        if end <= offset {
            return Vec::new();
        }
        let meta = self.meta();
        (offset / BLOCK..=(end - 1) / BLOCK).filter(|i| !meta.sealed.contains_key(i)).collect()
    }

    /// Forgets blocks (one failed authentication): they read as missing again.
    pub fn forget_blocks(&self, offset: u64, end: u64) {
        let mut meta = self.meta();
        for i in offset / BLOCK..=end.saturating_sub(1) / BLOCK {
            meta.sealed.remove(&i);
        }
    }

    /// Bytes this copy takes on local disk.
    pub fn stored_bytes(&self) -> u64 {
        self.meta().sealed.len() as u64 * SLOT
    }

    /// Where the last read ended: a read starting there is sequential.
    pub fn last_read_end(&self) -> &AtomicU64 {
        &self.last_read_end
    }

    /// The provider version a working copy started from (for conflict detection).
    pub fn base(&self) -> Option<(u64, Option<std::time::SystemTime>)> {
        *self.base.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_base(&self, base: Option<(u64, Option<std::time::SystemTime>)>) {
        *self.base.lock().unwrap_or_else(PoisonError::into_inner) = base;
    }

    /// The read-ahead window of this copy's reader, in bytes (0 before the first).
    pub fn read_ahead_window(&self) -> &AtomicU64 {
        &self.read_ahead_window
    }

    /// Asks the kernel to start reading this copy's file for `[offset, offset + len)`
    /// of contents, without waiting. A block's two slots alternate in the file, so a
    /// sequential reader's slot reads look strided to the kernel, which then reads each
    /// one alone, synchronously; this keeps a window in flight instead. Each block's
    /// current slot is advised alone: advising the whole range also read the other
    /// slots, mostly holes the kernel then zeroed (1 GiB took 1.4 s, now 1.1-1.2 s).
    /// Advises again only once the reader has used half of what was advised.
    pub fn advise_ahead(&self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.meta().len);
        let advised = self.advised_to.load(Ordering::Relaxed);
        // Advice reaching further than `len` is from an earlier pass over the file.
        let current = advised > offset && advised <= offset.saturating_add(len);
        if end <= offset || (current && advised >= offset + len / 2) {
            return;
        }
        let from = if current { advised } else { offset };
        self.advised_to.store(end, Ordering::Relaxed);
        let slots: Vec<u64> = {
            let meta = self.meta();
            (from / BLOCK..=(end - 1) / BLOCK)
                .filter_map(|i| meta.sealed.get(&i).map(|s| slot_offset(i, s.parity)))
                .collect()
        };
        if let Storage::File(file) = &*self.storage() {
            for at in slots {
                // Only advice: a failure costs speed, never data.
                let _ = nix::fcntl::posix_fadvise(
                    file,
                    at as i64,
                    SLOT as i64,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
                );
            }
        }
    }

    /// Set while a read-ahead fills this copy, so only one runs at a time.
    pub fn prefetching(&self) -> &AtomicBool {
        &self.prefetching
    }

    /// Notified when a read-ahead of this copy ends.
    pub fn prefetched(&self) -> &tokio::sync::Notify {
        &self.prefetched
    }

    /// See `generation`: changes only ever make it grow.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn change(&self) -> ChangeGuard<'_> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        ChangeGuard(&self.generation)
    }

    /// The logical (plaintext) size.
    pub fn len(&self) -> Result<u64> {
        Ok(self.meta().len)
    }

    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|l| l == 0)
    }

    fn read_impl(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let _shared = self.resize.read().unwrap_or_else(PoisonError::into_inner);
        let size = self.meta().len;
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(len as u64).min(size);
        let len = (end - offset) as usize;
        // Room for a slot where a whole block's plaintext goes: such a block is read
        // there and opened in place (a stream's reads copy nothing in user space).
        let mut out = vec![0u8; len + (SLOT - BLOCK) as usize];
        for index in offset / BLOCK..=(end - 1) / BLOCK {
            let start = index * BLOCK;
            let from = offset.max(start);
            let to = end.min(start + BLOCK);
            let at = (from - offset) as usize;
            let _block = self.stripe(index);
            if to - from == BLOCK && self.open_slot_into(index, &mut out[at..at + SLOT as usize])? {
                continue;
            }
            // The slot read of the block before (or a failed one of this) may have left
            // bytes here.
            let piece = &mut out[at..at + (to - from) as usize];
            match self.load_block(index)? {
                Some(plain) => piece.copy_from_slice(&plain[(from - start) as usize..(to - start) as usize]),
                None => piece.fill(0),
            }
        }
        out.truncate(len);
        Ok(out)
    }

    fn write_impl(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset.checked_add(data.len() as u64).filter(|&e| e <= MAX_LEN).ok_or_else(too_large)?;
        let _shared = self.resize.read().unwrap_or_else(PoisonError::into_inner);
        for index in offset / BLOCK..=(end - 1) / BLOCK {
            let start = index * BLOCK;
            let from = offset.max(start);
            let to = end.min(start + BLOCK);
            let piece = &data[(from - offset) as usize..(to - offset) as usize];
            let _block = self.stripe(index);
            let slot = match self.patch_in_memory(index, (from - start) as usize, piece)? {
                Some(slot) => slot,
                None if piece.len() == BLOCK_LEN => self.store_block(index, piece)?,
                None => {
                    let mut plain = self.load_block(index)?.unwrap_or_else(|| vec![0u8; BLOCK_LEN]);
                    plain[(from - start) as usize..(to - start) as usize].copy_from_slice(piece);
                    self.store_block(index, &plain)?
                }
            };
            // Grow per block, so a write failing half-way leaves what it did visible
            // (a short write) and never nonzero bytes past `len`.
            let mut meta = self.meta();
            meta.sealed.insert(index, slot);
            meta.len = meta.len.max(to);
        }
        Ok(())
    }

    fn set_len_impl(&self, new_len: u64) -> io::Result<()> {
        if new_len > MAX_LEN {
            return Err(too_large());
        }
        let _alone = self.resize.write().unwrap_or_else(PoisonError::into_inner);
        let old_len = self.meta().len;
        if new_len < old_len {
            // Zero the tail of the new last block, so growing later shows zeros.
            let tail = (new_len % BLOCK) as usize;
            if tail != 0 {
                let index = new_len / BLOCK;
                if let Some(mut plain) = self.load_block(index)? {
                    plain[tail..].fill(0);
                    let slot = self.store_block(index, &plain)?;
                    self.meta().sealed.insert(index, slot);
                }
            }
            let mut meta = self.meta();
            drop(meta.sealed.split_off(&new_len.div_ceil(BLOCK)));
            // Both slots of the last block stay: the other one may be the only good copy.
            let needed = meta.sealed.last_key_value().map_or(0, |(&i, _)| i + 1);
            meta.len = new_len;
            drop(meta);
            self.truncate_blocks(needed)?;
        } else {
            self.meta().len = new_len;
        }
        Ok(())
    }

    /// Block `index`'s plaintext (always `BLOCK` bytes), or `None` if never written.
    /// The caller holds the block's stripe lock (or `resize` alone).
    fn load_block(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        if let Storage::Memory { blocks, .. } = &*self.storage() {
            return Ok(blocks.get(&index).cloned());
        }
        let Some(slot) = self.meta().sealed.get(&index).copied() else { return Ok(None) };
        if let Some(plain) = self.open_slot(index, slot.parity)? {
            return Ok(Some(plain));
        }
        // The current slot is torn (a crash mid-write) or damaged: the other slot holds
        // the version before it, untouched by that write.
        if let Some((other, plain)) = self.read_slot(index, 1 - slot.parity)?.and_then(|seq| {
            self.open_slot(index, 1 - slot.parity).ok().flatten().map(|p| (Slot { parity: 1 - slot.parity, seq }, p))
        }) {
            tracing::warn!(block = index, "local copy block was torn or damaged; using its previous version");
            self.meta().sealed.insert(index, other);
            return Ok(Some(plain));
        }
        Err(corrupt(index, "failed authentication"))
    }

    /// Reads the current slot of whole block `index` into `buf` (`SLOT` bytes) and
    /// opens it there, leaving the plaintext in front. False when that fails for any
    /// reason (or the block is in memory): then `load_block` finds out why (or falls
    /// back to the other slot).
    fn open_slot_into(&self, index: u64, buf: &mut [u8]) -> io::Result<bool> {
        if self.in_memory() {
            return Ok(false);
        }
        let Some(slot) = self.meta().sealed.get(&index).copied() else { return Ok(false) };
        self.open_slot_at(index, slot.parity, buf)
    }

    /// The sequence number in slot `2 * index + parity`, if it holds a sealed block.
    fn read_slot(&self, index: u64, parity: u64) -> io::Result<Option<u64>> {
        read_slot_header(|buf, offset| self.read_exact_at(buf, offset), index, parity)
    }

    /// The slot's plaintext if it authenticates (under its own sequence number).
    fn open_slot(&self, index: u64, parity: u64) -> io::Result<Option<Vec<u8>>> {
        let mut raw = vec![0u8; SLOT as usize];
        if !self.open_slot_at(index, parity, &mut raw)? {
            return Ok(None);
        }
        raw.truncate(BLOCK_LEN);
        Ok(Some(raw))
    }

    /// Reads slot `2 * index + parity` into `buf` (`SLOT` bytes) and opens it there,
    /// leaving the plaintext in front; false if it holds no block that authenticates.
    fn open_slot_at(&self, index: u64, parity: u64, buf: &mut [u8]) -> io::Result<bool> {
        match self.read_exact_at(buf, slot_offset(index, parity)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let seq = u64::from_be_bytes(buf[..SEQ_LEN as usize].try_into().map_err(io::Error::other)?);
        #[cfg(test)]
        self.crypto_ops.1.fetch_add(1, Ordering::Relaxed);
        Ok(matches!(self.cipher.open_block_within(index, seq, buf, SEQ_LEN as usize), Ok(n) if n == BLOCK_LEN))
    }

    /// Seals `plain` (exactly `BLOCK` bytes) as the next version of block `index`, into
    /// the slot not holding its current version; returns where it went.
    /// The caller holds the block's stripe lock (or `resize` alone).
    fn store_block(&self, index: u64, plain: &[u8]) -> io::Result<Slot> {
        debug_assert_eq!(plain.len(), BLOCK_LEN);
        if let Some(slot) = self.patch_in_memory(index, 0, plain)? {
            return Ok(slot);
        }
        let current = self.meta().sealed.get(&index).copied();
        let slot = match current {
            Some(c) => Slot { parity: 1 - c.parity, seq: c.seq + 1 },
            None => Slot { parity: 0, seq: 1 },
        };
        self.write_slot(index, slot.parity, &self.seal_slot(index, slot, plain)?)?;
        Ok(slot)
    }

    /// Slot contents for `plain` as version `slot.seq` of block `index`.
    fn seal_slot(&self, index: u64, slot: Slot, plain: &[u8]) -> io::Result<Vec<u8>> {
        #[cfg(test)]
        self.crypto_ops.0.fetch_add(1, Ordering::Relaxed);
        let sealed = self.cipher.seal_block(index, slot.seq, plain, &self.rng).map_err(io::Error::other)?;
        let mut raw = Vec::with_capacity(SLOT as usize);
        raw.extend_from_slice(&slot.seq.to_be_bytes());
        raw.extend_from_slice(&sealed);
        Ok(raw)
    }

    fn stripe(&self, index: u64) -> MutexGuard<'_, ()> {
        self.stripes[(index % STRIPES as u64) as usize].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct ChangeGuard<'a>(&'a AtomicU64);

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

fn corrupt(index: u64, what: &str) -> io::Error {
    tracing::error!(block = index, "local copy block {what}");
    io::Error::new(io::ErrorKind::InvalidData, format!("local copy block {index} {what}"))
}

/// The sequence number in a slot's header, if the slot holds a sealed block (its nonce
/// is not all zeros: a hole reads as zeros).
/// `read_exact_at` reads from the copy's file.
fn read_slot_header(
    read_exact_at: impl FnOnce(&mut [u8], u64) -> io::Result<()>,
    index: u64,
    parity: u64,
) -> io::Result<Option<u64>> {
    let mut header = [0u8; (SEQ_LEN + 12) as usize];
    match read_exact_at(&mut header, slot_offset(index, parity)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (seq, nonce) = header.split_at(SEQ_LEN as usize);
    if nonce.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    Ok(Some(u64::from_be_bytes(seq.try_into().map_err(io::Error::other)?)))
}

/// The blocks below `len` holding data, each at the slot with the higher sequence
/// number. (If that slot is torn, reading the block falls back to the other one.)
fn sealed_slots(file: &File, len: u64) -> io::Result<BTreeMap<u64, Slot>> {
    let on_disk = file.metadata()?.len();
    let mut sealed = BTreeMap::new();
    for index in 0..len.div_ceil(BLOCK) {
        if slot_offset(index, 0) >= on_disk {
            break;
        }
        let read = |buf: &mut [u8], offset| file.read_exact_at(buf, offset);
        let a = read_slot_header(read, index, 0)?.map(|seq| Slot { parity: 0, seq });
        let b = read_slot_header(read, index, 1)?.map(|seq| Slot { parity: 1, seq });
        if let Some(slot) = a.into_iter().chain(b).max_by_key(|s| s.seq) {
            sealed.insert(index, slot);
        }
    }
    Ok(sealed)
}

fn too_large() -> io::Error {
    io::Error::from_raw_os_error(libc::EFBIG)
}

impl oxidrive_providers::LocalSource for LocalCopy {
    fn size(&self) -> io::Result<u64> {
        Ok(self.meta().len)
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.read_impl(offset, len)
    }
}

impl oxidrive_providers::LocalSink for LocalCopy {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let _change = self.change();
        self.write_impl(offset, data)
    }
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if let Storage::Memory { blocks, budget } = &*self.storage() {
            budget.give(blocks.len() as u64 * BLOCK);
            return;
        }
        if self.keep.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove local copy");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    const K: u64 = 1024;
    const B: usize = BLOCK_LEN;

    const KEY: [u8; 32] = [9; 32];

    fn copy() -> (tempfile::TempDir, LocalCopy) {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalCopy::create(dir.path(), &KEY).unwrap();
        (dir, s)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8 ^ (i >> 16) as u8).collect()
    }

    fn raw(s: &LocalCopy) -> Vec<u8> {
        std::fs::read(&s.path).unwrap()
    }

    fn io_kind(e: Error) -> io::ErrorKind {
        match e {
            Error::Io { source, .. } => source.kind(),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    #[test]
    fn sparse_write_read_truncate_and_cleanup() {
        let (_dir, s) = copy();
        assert!(s.is_empty().unwrap());
        s.write_at(10, b"hello").unwrap();
        assert_eq!(s.len().unwrap(), 15);
        assert_eq!(s.read_at(8, 10).unwrap(), b"\0\0hello");
        s.set_len(12).unwrap();
        assert_eq!(s.read_at(0, 100).unwrap(), b"\0\0\0\0\0\0\0\0\0\0he");
        let p = s.path.clone();
        assert!(p.exists());
        drop(s);
        assert!(!p.exists());
    }

    #[test]
    fn round_trips_at_block_edges() {
        for len in [0, 1, B - 1, B, B + 1, 2 * B, 3 * B + 7, 5 * 1024 * 1024 + 3] {
            for offset in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1] {
                let (_dir, s) = copy();
                let data = pattern(len, len as u8);
                s.write_at(offset, &data).unwrap();
                let expect_len = if len == 0 { 0 } else { offset + len as u64 };
                assert_eq!(s.len().unwrap(), expect_len, "len {len} at {offset}");
                assert_eq!(s.read_at(offset, len + 10).unwrap(), data, "len {len} at {offset}");
                if len > 0 {
                    assert_eq!(s.read_at(0, offset as usize).unwrap(), vec![0; offset as usize]);
                }
                assert!(s.read_at(expect_len, 10).unwrap().is_empty());
            }
        }
    }

    #[test]
    fn truncate_then_grow_shows_zeros_not_stale_bytes() {
        let (_dir, s) = copy();
        s.write_at(0, &[0xAA; 3 * B]).unwrap();
        s.set_len(BLOCK + 5).unwrap();
        s.set_len(3 * BLOCK).unwrap();
        let got = s.read_at(0, 3 * B).unwrap();
        assert_eq!(got[..B + 5], vec![0xAA; B + 5][..]);
        assert!(got[B + 5..].iter().all(|&b| b == 0));
        // A write past the end after a cut must not resurrect the cut bytes either.
        s.set_len(10).unwrap();
        s.write_at(2 * BLOCK, b"x").unwrap();
        let got = s.read_at(0, 3 * B).unwrap();
        assert_eq!(got.len(), 2 * B + 1);
        assert_eq!(got[..10], [0xAA; 10]);
        assert!(got[10..2 * B].iter().all(|&b| b == 0));
        assert_eq!(got[2 * B], b'x');
    }

    #[test]
    fn whole_blocks_opened_in_place_leave_holes_zero_and_refuse_damage() {
        let (_dir, s) = copy();
        s.write_at(0, &pattern(B, 1)).unwrap();
        s.write_at(2 * BLOCK, &pattern(B, 2)).unwrap();
        let got = s.read_at(0, 3 * B).unwrap();
        assert_eq!(got[..B], pattern(B, 1)[..]);
        // Block 0's slot is read where its plaintext goes and spills into block 1's part.
        assert!(got[B..2 * B].iter().all(|&b| b == 0), "the hole reads as zeros");
        assert_eq!(got[2 * B..], pattern(B, 2)[..]);
        let file = OpenOptions::new().write(true).open(&s.path).unwrap();
        file.write_all_at(&[0xFF], slot_offset(0, s.meta().sealed[&0].parity) + 1000).unwrap();
        assert_eq!(io_kind(s.read_at(0, 3 * B).unwrap_err()), io::ErrorKind::InvalidData);
        assert_eq!(s.read_at(2 * BLOCK, B).unwrap(), pattern(B, 2));
    }

    #[test]
    fn truncate_down_frees_slots() {
        let (_dir, s) = copy();
        s.write_at(0, &pattern(10 * B, 1)).unwrap();
        // Block 9's first version sits in its first slot, the file's 19th.
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 19 * SLOT);
        s.set_len(BLOCK + 1).unwrap();
        // Block 1 was rewritten (its tail zeroed) into its second slot.
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 4 * SLOT);
        s.set_len(0).unwrap();
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 0);
        assert!(s.read_at(0, 10).unwrap().is_empty());
    }

    #[test]
    fn sparse_file_past_4_gib_stays_small_on_disk() {
        let (_dir, s) = copy();
        let far = 5 * 1024 * 1024 * 1024 + 3;
        s.write_at(0, b"head").unwrap();
        s.write_at(far, b"tail").unwrap();
        assert_eq!(s.len().unwrap(), far + 4);
        assert_eq!(s.read_at(far - 2, 100).unwrap(), b"\0\0tail");
        assert_eq!(s.read_at(0, 6).unwrap(), b"head\0\0");
        assert_eq!(s.read_at(far / 2, 4).unwrap(), [0; 4]);
        let meta = std::fs::metadata(&s.path).unwrap();
        // Two slots of 64 KiB + 28: a few hundred 512-byte units, far below 5 GiB.
        assert!(meta.blocks() * 512 < 1024 * K, "allocated {} bytes", meta.blocks() * 512);
        s.set_len(4 * 1024 * 1024 * 1024 + 1).unwrap();
        assert_eq!(s.read_at(0, 4).unwrap(), b"head");
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 2 * SLOT);
    }

    #[test]
    fn absurd_offsets_are_refused() {
        let (_dir, s) = copy();
        assert!(s.write_at(u64::MAX - 1, b"ab").is_err());
        assert!(s.write_at(MAX_LEN, b"a").is_err());
        assert!(s.set_len(u64::MAX).is_err());
        assert!(s.read_at(u64::MAX, usize::MAX).unwrap().is_empty());
        assert_eq!(s.len().unwrap(), 0);
    }

    #[test]
    fn no_plaintext_on_disk() {
        let (_dir, s) = copy();
        let marker = b"OXIDRIVE-SECRET-MARKER-0123456789";
        let mut data = Vec::new();
        for _ in 0..5000 {
            data.extend_from_slice(marker);
        }
        s.write_at(0, &data).unwrap();
        s.write_at(3 * BLOCK + 17, marker).unwrap();
        s.write_at(BLOCK - 5, marker).unwrap();
        s.set_len(data.len() as u64 - 3).unwrap();
        let bytes = raw(&s);
        assert!(!bytes.is_empty());
        assert!(!bytes.windows(marker.len()).any(|w| w == marker));
        assert!(!bytes.windows(8).any(|w| w == &marker[..8]));
        // The zero-filled regions do not show either: a block of zeros is sealed too.
        assert!(!bytes.windows(64).any(|w| w.iter().all(|&b| b == 0)));
    }

    #[test]
    fn tampered_or_moved_blocks_fail_to_read() {
        let (_dir, s) = copy();
        s.write_at(0, &pattern(2 * B, 9)).unwrap();
        let path = s.path.clone();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, slot_offset(1, 0) + 100).unwrap();
        file.write_all_at(&[byte[0] ^ 1], slot_offset(1, 0) + 100).unwrap();
        assert!(s.read_at(0, 10).is_ok());
        let err = s.read_at(BLOCK, 10).unwrap_err();
        assert!(err.to_string().contains("local copy block 1 failed authentication"), "{err}");
        assert_eq!(io_kind(err), io::ErrorKind::InvalidData);
        // A partial write into the broken block fails too rather than resealing garbage.
        assert_eq!(io_kind(s.write_at(BLOCK + 1, b"z").unwrap_err()), io::ErrorKind::InvalidData);

        // Block 0's slot copied over block 1's: a moved block does not open.
        let mut slot0 = vec![0u8; SLOT as usize];
        file.read_exact_at(&mut slot0, 0).unwrap();
        file.write_all_at(&slot0, slot_offset(1, 0)).unwrap();
        assert_eq!(io_kind(s.read_at(BLOCK, 1).unwrap_err()), io::ErrorKind::InvalidData);
        // A full-block overwrite needs no old contents and repairs it.
        s.write_at(BLOCK, &pattern(B, 3)).unwrap();
        assert_eq!(s.read_at(BLOCK, B).unwrap(), pattern(B, 3));

        // A file cut short under us reads as corrupt, not as zeros.
        file.set_len(slot_offset(1, 0) + 10).unwrap();
        assert_eq!(io_kind(s.read_at(BLOCK, 1).unwrap_err()), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_torn_rewrite_leaves_the_version_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalCopy::create(dir.path(), &KEY).unwrap();
        a.write_at(0, &pattern(B, 1)).unwrap();
        a.write_at(100, b"second version").unwrap();
        let (id, len) = (a.id(), a.len().unwrap());
        let mut want = pattern(B, 1);
        want[100..114].copy_from_slice(b"second version");
        // The third version's write is cut short by a crash: a header, half a block.
        let current = a.meta().sealed[&0];
        let torn_at = slot_offset(0, 1 - current.parity);
        let file = OpenOptions::new().write(true).open(&a.path).unwrap();
        let mut torn = (current.seq + 1).to_be_bytes().to_vec();
        torn.extend_from_slice(&[0x5a; 40_000]);
        file.write_all_at(&torn, torn_at).unwrap();
        a.keep(true);
        drop(a);
        let b = LocalCopy::open(dir.path(), &KEY, id, len).unwrap();
        assert_eq!(b.read_at(0, B).unwrap(), want, "the second version survives");
        // And the next write goes to the torn slot, keeping the good one.
        b.write_at(0, b"third").unwrap();
        want[..5].copy_from_slice(b"third");
        assert_eq!(b.read_at(0, B).unwrap(), want);
        assert_eq!(b.meta().sealed[&0].parity, 1 - current.parity);
    }

    #[test]
    fn blocks_past_the_committed_size_do_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalCopy::create(dir.path(), &KEY).unwrap();
        // Written twice (slots with sequence numbers 1 and 2), never committed.
        a.write_at(0, &pattern(B, 1)).unwrap();
        a.write_at(0, &pattern(B, 2)).unwrap();
        let id = a.id();
        a.keep(true);
        drop(a);
        // The journal knew the file as empty; the same block is written (once) again.
        let b = LocalCopy::open(dir.path(), &KEY, id, 0).unwrap();
        b.write_at(0, b"fresh").unwrap();
        b.keep(true);
        drop(b);
        let c = LocalCopy::open(dir.path(), &KEY, id, 5).unwrap();
        assert_eq!(c.read_at(0, 10).unwrap(), b"fresh");
    }

    #[test]
    fn kept_copy_reopens_with_its_bytes_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalCopy::create(dir.path(), &KEY).unwrap();
        a.write_at(3 * BLOCK + 5, b"tail").unwrap();
        a.write_at(10, b"head").unwrap();
        a.sync().unwrap();
        let (id, len) = (a.id(), a.len().unwrap());
        a.keep(true);
        drop(a);
        let b = LocalCopy::open(dir.path(), &KEY, id, len).unwrap();
        assert_eq!(b.meta().sealed.keys().copied().collect::<Vec<_>>(), vec![0, 3]);
        let mut expect = vec![0u8; len as usize];
        expect[10..14].copy_from_slice(b"head");
        expect[(3 * BLOCK + 5) as usize..].copy_from_slice(b"tail");
        assert_eq!(b.read_at(0, len as usize + 1).unwrap(), expect);
        assert!(LocalCopy::open(dir.path(), &[8; 32], id, len).unwrap().read_at(0, 1).is_err());
        b.keep(false);
        let path = b.path.clone();
        drop(b);
        assert!(!path.exists());
        assert!(CopyId::from_hex(&id.hex()) == Some(id));
    }

    #[test]
    fn inline_image_restores_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 100, B - 1, B, B + 1, INLINE_MAX as usize] {
            let a = LocalCopy::create(dir.path(), &KEY).unwrap();
            let data = pattern(len, 4);
            a.write_at(0, &data).unwrap();
            let (got_len, image) = a.inline_image().unwrap().unwrap();
            assert_eq!(got_len, len as u64);
            assert!(!image.windows(8).any(|w| len >= 8 && w == &data[..8]), "plaintext in the image");
            let id = a.id();
            // The file itself may be anything after a crash: torn, empty or missing.
            drop(a);
            let b = LocalCopy::restore(dir.path(), &KEY, id, len as u64, &image).unwrap();
            assert_eq!(b.read_at(0, len + 10).unwrap(), data);
            assert_eq!(b.len().unwrap(), len as u64);
            drop(b);
            let c = LocalCopy::open(dir.path(), &KEY, id, len as u64).unwrap();
            assert_eq!(c.read_at(0, len + 10).unwrap(), data, "restored copy is on disk");
            // Another length, another copy or a damaged image does not restore.
            if len > 0 {
                assert!(LocalCopy::restore(dir.path(), &KEY, id, len as u64 - 1, &image).is_err());
                let mut broken = image.clone();
                broken[image.len() / 2] ^= 1;
                assert!(LocalCopy::restore(dir.path(), &KEY, id, len as u64, &broken).is_err());
                let other = CopyId::random(&SystemRandom::new()).unwrap();
                assert!(LocalCopy::restore(dir.path(), &KEY, other, len as u64, &image).is_err());
            }
            c.keep(false);
        }
        let big = LocalCopy::create(dir.path(), &KEY).unwrap();
        big.write_at(INLINE_MAX, b"x").unwrap();
        assert!(big.inline_image().unwrap().is_none());
    }

    #[test]
    fn small_copies_stay_in_memory_until_they_grow() {
        let dir = tempfile::tempdir().unwrap();
        let budget = MemoryBudget::new(10 * SLOT);
        let a = LocalCopy::create_in_memory(dir.path(), &KEY, budget.clone()).unwrap();
        for i in 0..20u8 {
            a.write_at(u64::from(i) * 100, &[i; 1000]).unwrap();
        }
        a.write_at(BLOCK - 3, b"across").unwrap();
        assert!(a.in_memory());
        assert!(!a.path.exists());
        // Rewrites of a block reuse its memory: two blocks. Nothing is sealed in memory.
        assert_eq!(budget.used.load(Ordering::Relaxed), 2 * BLOCK);
        assert_eq!(seals_and_opens(&a), (0, 0));
        let mut want = Vec::new();
        for i in 0..20u8 {
            let at = usize::from(i) * 100;
            want.resize(want.len().max(at + 1000), 0);
            want[at..at + 1000].fill(i);
        }
        want.resize(B + 3, 0);
        want[B - 3..].copy_from_slice(b"across");
        assert_eq!(a.read_at(0, 3 * B).unwrap(), want);
        a.set_len(10).unwrap();
        assert_eq!(budget.used.load(Ordering::Relaxed), BLOCK, "block 1 is cut, block 0 rewritten in place");
        a.set_len(0).unwrap();
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
        a.write_at(0, &want).unwrap();
        // A third block goes past the per-copy limit: everything moves to the file,
        // each block sealed once.
        assert_eq!(seals_and_opens(&a), (0, 0));
        a.write_at(2 * BLOCK, b"third").unwrap();
        assert!(!a.in_memory());
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
        assert_eq!(seals_and_opens(&a), (3, 0));
        want.resize(2 * B, 0);
        want.extend_from_slice(b"third");
        assert_eq!(a.read_at(0, 3 * B).unwrap(), want);
        a.sync().unwrap();
        let (id, len) = (a.id(), a.len().unwrap());
        a.keep(true);
        drop(a);
        assert_eq!(LocalCopy::open(dir.path(), &KEY, id, len).unwrap().read_at(0, 3 * B).unwrap(), want);

        // Over the shared budget: to a file at once; dropping gives the budget back.
        let b = LocalCopy::create_in_memory(dir.path(), &KEY, budget.clone()).unwrap();
        let c = LocalCopy::create_in_memory(dir.path(), &KEY, MemoryBudget::new(BLOCK / 2)).unwrap();
        b.write_at(0, b"b").unwrap();
        c.write_at(0, b"c").unwrap();
        assert!(b.in_memory() && !c.in_memory());
        assert_eq!(c.read_at(0, 10).unwrap(), b"c");
        b.persist().unwrap();
        assert!(!b.in_memory() && b.path.exists());
        assert_eq!(b.read_at(0, 10).unwrap(), b"b");
        let d = LocalCopy::create_in_memory(dir.path(), &KEY, budget.clone()).unwrap();
        d.write_at(0, b"d").unwrap();
        assert_eq!(budget.used.load(Ordering::Relaxed), BLOCK);
        let (len, image) = d.inline_image().unwrap().unwrap();
        assert_eq!(seals_and_opens(&d), (0, 0), "the image is sealed apart from the blocks");
        let d_id = d.id();
        drop(d);
        assert_eq!(LocalCopy::restore(dir.path(), &KEY, d_id, len, &image).unwrap().read_at(0, 10).unwrap(), b"d");
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
        let e = LocalCopy::create_in_memory(dir.path(), &KEY, budget).unwrap();
        assert!(e.inline_image().unwrap().unwrap().1.is_empty());
        assert!(!image.is_empty());
    }

    #[test]
    fn another_copy_cannot_open_these_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalCopy::create(dir.path(), &KEY).unwrap();
        let b = LocalCopy::create(dir.path(), &KEY).unwrap();
        a.write_at(0, &pattern(B, 1)).unwrap();
        b.write_at(0, &pattern(B, 2)).unwrap();
        std::fs::write(&b.path, raw(&a)).unwrap();
        assert_eq!(io_kind(b.read_at(0, 1).unwrap_err()), io::ErrorKind::InvalidData);
    }

    #[test]
    fn local_source_and_sink_traits() {
        use oxidrive_providers::{LocalSink, LocalSource};
        let (_dir, s) = copy();
        let sink: &dyn LocalSink = &s;
        sink.write_at(BLOCK - 2, b"abcd").unwrap();
        let src: &dyn LocalSource = &s;
        assert_eq!(src.size().unwrap(), BLOCK + 2);
        assert_eq!(src.read_at(BLOCK - 3, 10).unwrap(), b"\0abcd");
        assert_eq!(sink.write_at(u64::MAX, b"x").unwrap_err().raw_os_error(), Some(libc::EFBIG));
    }

    #[test]
    fn concurrent_writers_to_different_and_same_blocks() {
        const THREADS: usize = 8;
        let (_dir, s) = copy();
        let s = Arc::new(s);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let s = &s;
                scope.spawn(move || {
                    // Own blocks t, t + 8, ...: full blocks and unaligned pieces.
                    for round in 0..4u64 {
                        let index = t as u64 + round * THREADS as u64;
                        s.write_at(index * BLOCK, &pattern(B, t as u8)).unwrap();
                        s.write_at(index * BLOCK + 1000, &[t as u8 ^ 0xF0; 77]).unwrap();
                    }
                    // Shared block 40: each thread patches its own 1000-byte range, many
                    // times; a lost read-modify-write would drop another thread's bytes.
                    for _ in 0..20 {
                        let at = 40 * BLOCK + t as u64 * 1000;
                        s.write_at(at, &[t as u8 + 1; 1000]).unwrap();
                        assert_eq!(s.read_at(at, 1000).unwrap(), vec![t as u8 + 1; 1000]);
                    }
                });
            }
        });
        for t in 0..THREADS {
            for round in 0..4u64 {
                let index = t as u64 + round * THREADS as u64;
                let mut want = pattern(B, t as u8);
                want[1000..1077].fill(t as u8 ^ 0xF0);
                assert_eq!(s.read_at(index * BLOCK, B).unwrap(), want, "block {index}");
            }
            assert_eq!(s.read_at(40 * BLOCK + t as u64 * 1000, 1000).unwrap(), vec![t as u8 + 1; 1000]);
        }
        assert_eq!(s.len().unwrap(), 40 * BLOCK + THREADS as u64 * 1000);
    }

    fn seals_and_opens(s: &LocalCopy) -> (u64, u64) {
        (s.crypto_ops.0.load(Ordering::Relaxed), s.crypto_ops.1.load(Ordering::Relaxed))
    }

    #[test]
    fn sequential_writes_seal_each_block_once() {
        let (_dir, s) = copy();
        let mib = pattern(1024 * 1024, 5);
        s.write_at(0, &mib).unwrap();
        assert_eq!(seals_and_opens(&s), (16, 0), "aligned 1 MiB write");
        s.write_at(1024 * 1024, &mib).unwrap();
        assert_eq!(seals_and_opens(&s), (32, 0), "aligned append");
        // Unaligned: 17 blocks touched, the two partial ones opened (the first holds data).
        s.write_at(100, &mib).unwrap();
        assert_eq!(seals_and_opens(&s), (49, 2));
        // Reading 1 MiB opens 16 blocks; reading holes opens nothing.
        s.read_at(0, 1024 * 1024).unwrap();
        assert_eq!(seals_and_opens(&s), (49, 18));
        s.set_len(100 * BLOCK).unwrap();
        s.read_at(50 * BLOCK, 1024 * 1024).unwrap();
        assert_eq!(seals_and_opens(&s), (49, 18));
    }

    #[test]
    #[ignore = "timing, run by hand with --nocapture"]
    fn throughput() {
        let (_dir, s) = copy();
        for piece in [4096usize, 128 * 1024, 1024 * 1024] {
            let data = pattern(piece, 1);
            let total = 256 * 1024 * 1024u64;
            let t = std::time::Instant::now();
            let mut at = 0;
            while at < total {
                s.write_at(at, &data).unwrap();
                at += piece as u64;
            }
            let w = t.elapsed();
            let t = std::time::Instant::now();
            let mut at = 0;
            while at < total {
                s.read_at(at, piece).unwrap();
                at += piece as u64;
            }
            let r = t.elapsed();
            let mbs = |d: std::time::Duration| total as f64 / d.as_secs_f64() / 1e6;
            println!("piece {piece}: write {:.0} MB/s, read {:.0} MB/s", mbs(w), mbs(r));
            s.set_len(0).unwrap();
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write { offset: u64, len: usize, seed: u8 },
        Read { offset: u64, len: usize },
        SetLen(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let span = 5 * BLOCK;
        prop_oneof![
            4 => (0..span, 0..2 * B + 2, any::<u8>()).prop_map(|(offset, len, seed)| Op::Write { offset, len, seed }),
            // Edge-hugging offsets and lengths, where off-by-ones live.
            2 => (0..5u64, 0..3usize, any::<u8>(), prop_oneof![Just(0usize), Just(1), Just(B - 1), Just(B), Just(B + 1)])
                .prop_map(|(blk, d, seed, len)| Op::Write { offset: (blk * BLOCK).saturating_sub(1) + d as u64, len, seed }),
            3 => (0..span + BLOCK, 0..3 * B).prop_map(|(offset, len)| Op::Read { offset, len }),
            2 => (0..span + BLOCK).prop_map(Op::SetLen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn matches_a_vec_model(ops in proptest::collection::vec(op(), 1..24), in_memory in any::<bool>()) {
            // A copy in memory moves to its file part-way once it holds a third block.
            let dir = tempfile::tempdir().unwrap();
            let s = if in_memory {
                LocalCopy::create_in_memory(dir.path(), &KEY, MemoryBudget::new(1 << 20)).unwrap()
            } else {
                LocalCopy::create(dir.path(), &KEY).unwrap()
            };
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Write { offset, len, seed } => {
                        let data = pattern(len, seed);
                        s.write_at(offset, &data).unwrap();
                        if len > 0 {
                            let end = offset as usize + len;
                            if model.len() < end {
                                model.resize(end, 0);
                            }
                            model[offset as usize..end].copy_from_slice(&data);
                        }
                    }
                    Op::Read { offset, len } => {
                        let got = s.read_at(offset, len).unwrap();
                        let from = (offset as usize).min(model.len());
                        let to = (offset as usize + len).min(model.len());
                        prop_assert_eq!(got, model[from..to].to_vec());
                    }
                    Op::SetLen(len) => {
                        s.set_len(len).unwrap();
                        model.resize(len as usize, 0);
                    }
                }
                prop_assert_eq!(s.len().unwrap(), model.len() as u64);
            }
            prop_assert_eq!(s.read_at(0, model.len() + 1).unwrap(), model.clone());
            // What a restart finds: the synced file (a copy in memory is sealed into it).
            s.sync().unwrap();
            s.keep(true);
            let (id, len) = (s.id(), s.len().unwrap());
            drop(s);
            let reopened = LocalCopy::open(dir.path(), &KEY, id, len).unwrap();
            prop_assert_eq!(reopened.read_at(0, model.len() + 1).unwrap(), model);
        }
    }
}
