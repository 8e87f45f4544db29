//! A local file holding the current contents of a file open for writing, encrypted at rest.
//!
//! The plaintext is cut into 64 KiB blocks; block `i` is sealed alone (see
//! [`EphemeralCipher`]) and stored in a fixed-size slot at `i * SLOT` of the local file,
//! so random writes touch only their blocks and holes in the plaintext stay holes on
//! disk. The key is drawn at random per staging file and lives only in memory: the file
//! is unreadable by anyone, including a later run of this program (leftovers are deleted
//! at start-up). What stays in memory and not on disk: the logical size and which slots
//! hold a sealed block. A slot never written reads as zeros.
//!
//! Invariant: every stored byte at a logical position `>= len` is zero, so growing the
//! file (`set_len` up, or a write past the end) exposes zeros, never stale data.
//!
//! Concurrency: reads and writes share `resize` (a truncate takes it alone); a
//! read-modify-write of one block holds that block's stripe lock, so two writers patching
//! different bytes of one block never lose each other's update. At most one stripe lock
//! is held at a time, and `meta` only briefly inside it.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use oxidrive_crypto::content::CHUNK_SIZE;
use oxidrive_crypto::local::{BLOCK_OVERHEAD, EphemeralCipher};
use ring::rand::SystemRandom;

use crate::error::{Error, Result};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Plaintext bytes per block.
const BLOCK: u64 = CHUNK_SIZE;
const BLOCK_LEN: usize = BLOCK as usize;
/// Bytes of local file per block: one sealed block (nonce, ciphertext, tag).
const SLOT: u64 = BLOCK + BLOCK_OVERHEAD as u64;
/// Largest logical size: every slot must end below `i64::MAX` (`off_t`).
const MAX_LEN: u64 = (i64::MAX as u64 / SLOT) * BLOCK;
/// Number of block locks; block `i` uses stripe `i % STRIPES`.
const STRIPES: usize = 64;

#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    file: File,
    cipher: EphemeralCipher,
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

#[derive(Debug, Default)]
struct Meta {
    /// Logical (plaintext) size.
    len: u64,
    /// Indexes of the slots holding a sealed block.
    sealed: BTreeSet<u64>,
}

impl Staging {
    /// A new empty staging file in `dir`, under a fresh in-memory key.
    pub fn create(dir: &Path) -> Result<Self> {
        let rng = SystemRandom::new();
        let cipher = EphemeralCipher::new(&rng).map_err(|e| Error::io("staging key", io::Error::other(e)))?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("create staging file {}", path.display()), e))?;
        Ok(Self {
            path,
            file,
            cipher,
            rng,
            resize: RwLock::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            meta: Mutex::new(Meta::default()),
            #[cfg(test)]
            crypto_ops: Default::default(),
        })
    }

    /// Up to `len` plaintext bytes at `offset`; shorter only at the end of the file.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.read_impl(offset, len).map_err(|e| Error::io("read staging file", e))
    }

    /// Writes `data` at `offset`, growing the file if it ends past the end.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.write_impl(offset, data).map_err(|e| Error::io("write staging file", e))
    }

    /// Cuts or extends the file to `len` bytes; extension reads as zeros.
    pub fn set_len(&self, len: u64) -> Result<()> {
        self.set_len_impl(len).map_err(|e| Error::io("truncate staging file", e))
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
        let mut out = vec![0u8; (end - offset) as usize];
        for index in offset / BLOCK..=(end - 1) / BLOCK {
            let start = index * BLOCK;
            let from = offset.max(start);
            let to = end.min(start + BLOCK);
            let _block = self.stripe(index);
            if let Some(plain) = self.load_block(index)? {
                out[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&plain[(from - start) as usize..(to - start) as usize]);
            }
        }
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
            if piece.len() == BLOCK_LEN {
                self.store_block(index, piece)?;
            } else {
                let mut plain = self.load_block(index)?.unwrap_or_else(|| vec![0u8; BLOCK_LEN]);
                plain[(from - start) as usize..(to - start) as usize].copy_from_slice(piece);
                self.store_block(index, &plain)?;
            }
            // Grow per block, so a write failing half-way leaves what it did visible
            // (a short write) and never nonzero bytes past `len`.
            let mut meta = self.meta();
            meta.sealed.insert(index);
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
                    self.store_block(index, &plain)?;
                }
            }
            let mut meta = self.meta();
            drop(meta.sealed.split_off(&new_len.div_ceil(BLOCK)));
            let needed = meta.sealed.last().map_or(0, |&i| (i + 1) * SLOT);
            meta.len = new_len;
            drop(meta);
            self.file.set_len(needed)?;
        } else {
            self.meta().len = new_len;
        }
        Ok(())
    }

    /// Block `index`'s plaintext (always `BLOCK` bytes), or `None` if never written.
    /// The caller holds the block's stripe lock (or `resize` alone).
    fn load_block(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        if !self.meta().sealed.contains(&index) {
            return Ok(None);
        }
        let mut sealed = vec![0u8; SLOT as usize];
        self.file
            .read_exact_at(&mut sealed, index * SLOT)
            .map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { corrupt(index, "is truncated") } else { e })?;
        #[cfg(test)]
        self.crypto_ops.1.fetch_add(1, Ordering::Relaxed);
        match self.cipher.open_block(index, &sealed) {
            Ok(plain) if plain.len() == BLOCK_LEN => Ok(Some(plain)),
            _ => Err(corrupt(index, "failed authentication")),
        }
    }

    /// Seals `plain` (exactly `BLOCK` bytes) into slot `index`.
    /// The caller holds the block's stripe lock (or `resize` alone).
    fn store_block(&self, index: u64, plain: &[u8]) -> io::Result<()> {
        debug_assert_eq!(plain.len(), BLOCK_LEN);
        #[cfg(test)]
        self.crypto_ops.0.fetch_add(1, Ordering::Relaxed);
        let sealed = self.cipher.seal_block(index, plain, &self.rng).map_err(io::Error::other)?;
        self.file.write_all_at(&sealed, index * SLOT)
    }

    fn stripe(&self, index: u64) -> MutexGuard<'_, ()> {
        self.stripes[(index % STRIPES as u64) as usize].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn corrupt(index: u64, what: &str) -> io::Error {
    tracing::error!(block = index, "staging block {what}");
    io::Error::new(io::ErrorKind::InvalidData, format!("staging block {index} {what}"))
}

fn too_large() -> io::Error {
    io::Error::from_raw_os_error(libc::EFBIG)
}

impl oxidrive_providers::LocalSource for Staging {
    fn size(&self) -> io::Result<u64> {
        Ok(self.meta().len)
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.read_impl(offset, len)
    }
}

impl oxidrive_providers::LocalSink for Staging {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_impl(offset, data)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove staging file");
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

    fn staging() -> (tempfile::TempDir, Staging) {
        let dir = tempfile::tempdir().unwrap();
        let s = Staging::create(dir.path()).unwrap();
        (dir, s)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8 ^ (i >> 16) as u8).collect()
    }

    fn raw(s: &Staging) -> Vec<u8> {
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
        let (_dir, s) = staging();
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
                let (_dir, s) = staging();
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
        let (_dir, s) = staging();
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
    fn truncate_down_frees_slots() {
        let (_dir, s) = staging();
        s.write_at(0, &pattern(10 * B, 1)).unwrap();
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 10 * SLOT);
        s.set_len(BLOCK + 1).unwrap();
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 2 * SLOT);
        s.set_len(0).unwrap();
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 0);
        assert!(s.read_at(0, 10).unwrap().is_empty());
    }

    #[test]
    fn sparse_file_past_4_gib_stays_small_on_disk() {
        let (_dir, s) = staging();
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
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), SLOT);
    }

    #[test]
    fn absurd_offsets_are_refused() {
        let (_dir, s) = staging();
        assert!(s.write_at(u64::MAX - 1, b"ab").is_err());
        assert!(s.write_at(MAX_LEN, b"a").is_err());
        assert!(s.set_len(u64::MAX).is_err());
        assert!(s.read_at(u64::MAX, usize::MAX).unwrap().is_empty());
        assert_eq!(s.len().unwrap(), 0);
    }

    #[test]
    fn no_plaintext_on_disk() {
        let (_dir, s) = staging();
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
        let (_dir, s) = staging();
        s.write_at(0, &pattern(2 * B, 9)).unwrap();
        let path = s.path.clone();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, SLOT + 100).unwrap();
        file.write_all_at(&[byte[0] ^ 1], SLOT + 100).unwrap();
        assert!(s.read_at(0, 10).is_ok());
        let err = s.read_at(BLOCK, 10).unwrap_err();
        assert!(err.to_string().contains("staging block 1 failed authentication"), "{err}");
        assert_eq!(io_kind(err), io::ErrorKind::InvalidData);
        // A partial write into the broken block fails too rather than resealing garbage.
        assert_eq!(io_kind(s.write_at(BLOCK + 1, b"z").unwrap_err()), io::ErrorKind::InvalidData);

        // Slot 0 copied over slot 1: a moved block does not open.
        let mut slot0 = vec![0u8; SLOT as usize];
        file.read_exact_at(&mut slot0, 0).unwrap();
        file.write_all_at(&slot0, SLOT).unwrap();
        assert_eq!(io_kind(s.read_at(BLOCK, 1).unwrap_err()), io::ErrorKind::InvalidData);
        // A full-block overwrite needs no old contents and repairs it.
        s.write_at(BLOCK, &pattern(B, 3)).unwrap();
        assert_eq!(s.read_at(BLOCK, B).unwrap(), pattern(B, 3));

        // A file cut short under us reads as corrupt, not as zeros.
        file.set_len(SLOT + 10).unwrap();
        assert_eq!(io_kind(s.read_at(BLOCK, 1).unwrap_err()), io::ErrorKind::InvalidData);
    }

    #[test]
    fn another_staging_file_cannot_open_these_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let a = Staging::create(dir.path()).unwrap();
        let b = Staging::create(dir.path()).unwrap();
        a.write_at(0, &pattern(B, 1)).unwrap();
        b.write_at(0, &pattern(B, 2)).unwrap();
        std::fs::write(&b.path, raw(&a)).unwrap();
        assert_eq!(io_kind(b.read_at(0, 1).unwrap_err()), io::ErrorKind::InvalidData);
    }

    #[test]
    fn local_source_and_sink_traits() {
        use oxidrive_providers::{LocalSink, LocalSource};
        let (_dir, s) = staging();
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
        let (_dir, s) = staging();
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

    fn seals_and_opens(s: &Staging) -> (u64, u64) {
        (s.crypto_ops.0.load(Ordering::Relaxed), s.crypto_ops.1.load(Ordering::Relaxed))
    }

    #[test]
    fn sequential_writes_seal_each_block_once() {
        let (_dir, s) = staging();
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
        let (_dir, s) = staging();
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
        fn matches_a_vec_model(ops in proptest::collection::vec(op(), 1..24)) {
            let (_dir, s) = staging();
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
            prop_assert_eq!(s.read_at(0, model.len() + 1).unwrap(), model);
        }
    }
}
