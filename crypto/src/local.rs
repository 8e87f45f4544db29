//! Encryption of local files: cache copies of provider files and their pending changes.
//!
//! ```text
//! sealed block = nonce (12) | AES-256-GCM(plaintext) | tag (16)
//! AAD          = "oxidrive local block v2" || file id (16) || index as u64 BE (8)
//!                || sequence number as u64 BE (8)
//! key          = HKDF-SHA256(local-state key, info "oxidrive v1 local-cache-blocks")
//!                (or 32 random bytes kept only in memory, for scratch files)
//! ```
//!
//! Each local file has a random 16-byte id, drawn when it is created and recorded (for
//! persistent files) in the encrypted index. A new version of a file's contents always
//! gets a new id, so the id binds a block to (file, version); the block index in the
//! AAD binds it to its place. A block moved to another slot, copied from another file
//! or left over from an older version fails to open. Nonces are random per seal: after
//! 2^32 seals under one key the chance of any repeat is still below 2^-32.

use std::fmt;

use ring::aead::LessSafeKey;
use zeroize::Zeroize;

use crate::Result;
use crate::aead;
use crate::rng::{RandomSource, random_array};

/// Bytes a sealed block adds to its plaintext: nonce (12) + tag (16).
pub const BLOCK_OVERHEAD: usize = aead::OVERHEAD;
/// Length of the random per-file id bound into every block's AAD.
pub const FILE_ID_LEN: usize = 16;

const DOMAIN: &[u8] = b"oxidrive local block v2";
const KEY_INFO: &[u8] = b"oxidrive v1 local-cache-blocks";

/// The AES-256-GCM key and id of one local file.
pub struct LocalCipher {
    key: LessSafeKey,
    instance: [u8; FILE_ID_LEN],
}

impl LocalCipher {
    /// A scratch file's cipher: a fresh random key and id (in that order: key 32 bytes,
    /// id 16 bytes); nothing can open its blocks once this value is dropped.
    pub fn ephemeral(rng: &dyn RandomSource) -> Result<Self> {
        let mut bytes: [u8; 32] = random_array(rng)?;
        let key = aead::key(&bytes);
        bytes.zeroize();
        Ok(Self { key: key?, instance: random_array(rng)? })
    }

    /// A persistent file's cipher: the block key derived from the local-state key, and
    /// the file's recorded id.
    pub fn keyed(state_key: &[u8; 32], file_id: [u8; FILE_ID_LEN]) -> Result<Self> {
        let mut bytes = crate::keys::hkdf_sha256_32(state_key, KEY_INFO);
        let key = aead::key(&bytes);
        bytes.zeroize();
        Ok(Self { key: key?, instance: file_id })
    }

    /// Seals block `index` under a fresh random nonce: `nonce || ciphertext || tag`,
    /// exactly `plaintext.len() + BLOCK_OVERHEAD` bytes.
    pub fn seal_block(&self, index: u64, seq: u64, plaintext: &[u8], rng: &dyn RandomSource) -> Result<Vec<u8>> {
        aead::seal(&self.key, &self.aad(index, seq), plaintext, rng)
    }

    /// Opens a block sealed by [`Self::seal_block`] of this instance at the same
    /// `index` and `seq`.
    pub fn open_block(&self, index: u64, seq: u64, sealed: &[u8]) -> Result<Vec<u8>> {
        aead::open(&self.key, &self.aad(index, seq), sealed, "local block")
    }

    /// Like [`Self::open_block`] for a sealed block at `in_out[sealed_from..]`: the
    /// plaintext is left at the start of `in_out` and its length returned.
    pub fn open_block_within(&self, index: u64, seq: u64, in_out: &mut [u8], sealed_from: usize) -> Result<usize> {
        aead::open_within(&self.key, &self.aad(index, seq), in_out, sealed_from, "local block")
    }

    fn aad(&self, index: u64, seq: u64) -> [u8; DOMAIN.len() + FILE_ID_LEN + 16] {
        let mut aad = [0u8; DOMAIN.len() + FILE_ID_LEN + 16];
        let (domain, rest) = aad.split_at_mut(DOMAIN.len());
        let (instance, rest) = rest.split_at_mut(FILE_ID_LEN);
        let (idx, sq) = rest.split_at_mut(8);
        domain.copy_from_slice(DOMAIN);
        instance.copy_from_slice(&self.instance);
        idx.copy_from_slice(&index.to_be_bytes());
        sq.copy_from_slice(&seq.to_be_bytes());
        aad
    }
}

impl fmt::Debug for LocalCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalCipher(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use ring::rand::SystemRandom;

    fn cipher() -> LocalCipher {
        LocalCipher::ephemeral(&SystemRandom::new()).unwrap()
    }

    #[test]
    fn round_trip_at_several_sizes() {
        let rng = SystemRandom::new();
        let c = cipher();
        for len in [0usize, 1, 100, 65535, 65536] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let sealed = c.seal_block(len as u64, 1, &plain, &rng).unwrap();
            assert_eq!(sealed.len(), len + BLOCK_OVERHEAD);
            assert_eq!(c.open_block(len as u64, 1, &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn open_within_leaves_the_plaintext_in_front_and_checks_like_open() {
        let rng = SystemRandom::new();
        let c = cipher();
        let plain: Vec<u8> = (0..65536).map(|i| (i * 13) as u8).collect();
        let sealed = c.seal_block(5, 2, &plain, &rng).unwrap();
        let mut buf = b"headerXY".to_vec();
        buf.extend_from_slice(&sealed);
        let mut ok = buf.clone();
        let n = c.open_block_within(5, 2, &mut ok, 8).unwrap();
        assert_eq!(&ok[..n], &plain[..]);
        assert!(c.open_block_within(6, 2, &mut buf.clone(), 8).is_err(), "other index");
        assert!(c.open_block_within(5, 3, &mut buf.clone(), 8).is_err(), "other sequence");
        let mut flipped = buf.clone();
        flipped[8 + 40] ^= 1;
        assert!(c.open_block_within(5, 2, &mut flipped, 8).is_err(), "tampered");
        assert!(c.open_block_within(5, 2, &mut buf[..20], 8).is_err(), "too short");
    }

    #[test]
    fn block_moved_to_another_index_fails() {
        let rng = SystemRandom::new();
        let c = cipher();
        let sealed = c.seal_block(3, 1, b"block three", &rng).unwrap();
        assert_eq!(c.open_block(4, 1, &sealed), Err(Error::Authentication("local block")));
        assert_eq!(c.open_block(3 + (1 << 32), 1, &sealed), Err(Error::Authentication("local block")));
    }

    #[test]
    fn block_with_another_sequence_number_fails() {
        let rng = SystemRandom::new();
        let c = cipher();
        let sealed = c.seal_block(3, 7, b"seventh write", &rng).unwrap();
        assert_eq!(c.open_block(3, 7, &sealed).unwrap(), b"seventh write");
        assert_eq!(c.open_block(3, 6, &sealed), Err(Error::Authentication("local block")));
    }

    #[test]
    fn block_from_another_instance_fails() {
        let rng = SystemRandom::new();
        let sealed = cipher().seal_block(0, 1, b"elsewhere", &rng).unwrap();
        assert_eq!(cipher().open_block(0, 1, &sealed), Err(Error::Authentication("local block")));
    }

    #[test]
    fn tampered_truncated_or_short_blocks_fail() {
        let rng = SystemRandom::new();
        let c = cipher();
        let sealed = c.seal_block(9, 1, &[0x5a; 1000], &rng).unwrap();
        for i in [0, 11, 12, 500, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(c.open_block(9, 1, &bad).is_err(), "flip at {i}");
        }
        assert!(c.open_block(9, 1, &sealed[..sealed.len() - 1]).is_err());
        assert!(c.open_block(9, 1, &sealed[..BLOCK_OVERHEAD - 1]).is_err());
        assert!(c.open_block(9, 1, &[]).is_err());
    }

    #[test]
    fn same_plaintext_seals_differently_and_hides_it() {
        let rng = SystemRandom::new();
        let c = cipher();
        let plain = [0u8; 4096];
        let a = c.seal_block(0, 1, &plain, &rng).unwrap();
        let b = c.seal_block(0, 1, &plain, &rng).unwrap();
        assert_ne!(a, b);
        assert!(!a.windows(32).any(|w| w == &plain[..32]));
    }

    #[test]
    fn keyed_cipher_binds_key_and_file_id() {
        let rng = SystemRandom::new();
        let a = LocalCipher::keyed(&[7; 32], [1; FILE_ID_LEN]).unwrap();
        let sealed = a.seal_block(2, 1, b"persistent", &rng).unwrap();
        let again = LocalCipher::keyed(&[7; 32], [1; FILE_ID_LEN]).unwrap();
        assert_eq!(again.open_block(2, 1, &sealed).unwrap(), b"persistent");
        for other in [
            LocalCipher::keyed(&[7; 32], [2; FILE_ID_LEN]).unwrap(),
            LocalCipher::keyed(&[8; 32], [1; FILE_ID_LEN]).unwrap(),
        ] {
            assert_eq!(other.open_block(2, 1, &sealed), Err(Error::Authentication("local block")));
        }
    }

    #[test]
    fn debug_does_not_leak() {
        assert_eq!(format!("{:?}", cipher()), "LocalCipher(<redacted>)");
    }
}
