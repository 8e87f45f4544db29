//! Ephemeral encryption for local scratch files (staging copies of open files).
//!
//! ```text
//! sealed block = nonce (12) | AES-256-GCM(plaintext) | tag (16)
//! AAD          = "oxidrive local block v1" || instance id (16) || index as u64 BE (8)
//! key          = 32 random bytes drawn by `EphemeralCipher::new`, kept only in memory
//! ```
//!
//! A scratch file lives for one process run, so its key is never derived, wrapped or
//! stored: it is drawn at random and dies with the [`EphemeralCipher`]. The block index
//! in the AAD makes a block moved to another slot fail to open; the random instance id
//! makes a block copied from another scratch file fail to open even if (by a broken RNG)
//! two instances shared a key. Nonces are random per seal: after 2^32 seals under one
//! instance (256 TiB of 64 KiB blocks) the chance of any repeat is still below 2^-32.

use std::fmt;

use ring::aead::LessSafeKey;
use zeroize::Zeroize;

use crate::aead;
use crate::rng::{RandomSource, random_array};
use crate::Result;

/// Bytes a sealed block adds to its plaintext: nonce (12) + tag (16).
pub const BLOCK_OVERHEAD: usize = aead::OVERHEAD;
/// Length of the random per-instance id bound into every block's AAD.
pub const INSTANCE_ID_LEN: usize = 16;

const DOMAIN: &[u8] = b"oxidrive local block v1";

/// An AES-256-GCM key for one local scratch file, drawn at random and held only here.
pub struct EphemeralCipher {
    key: LessSafeKey,
    instance: [u8; INSTANCE_ID_LEN],
}

impl EphemeralCipher {
    /// Draws a fresh key and instance id (in that order: key 32 bytes, id 16 bytes).
    pub fn new(rng: &dyn RandomSource) -> Result<Self> {
        let mut bytes: [u8; 32] = random_array(rng)?;
        let key = aead::key(&bytes);
        bytes.zeroize();
        Ok(Self {
            key: key?,
            instance: random_array(rng)?,
        })
    }

    /// Seals block `index` under a fresh random nonce: `nonce || ciphertext || tag`,
    /// exactly `plaintext.len() + BLOCK_OVERHEAD` bytes.
    pub fn seal_block(
        &self,
        index: u64,
        plaintext: &[u8],
        rng: &dyn RandomSource,
    ) -> Result<Vec<u8>> {
        aead::seal(&self.key, &self.aad(index), plaintext, rng)
    }

    /// Opens a block sealed by [`Self::seal_block`] of this instance at the same `index`.
    pub fn open_block(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>> {
        aead::open(&self.key, &self.aad(index), sealed, "local block")
    }

    fn aad(&self, index: u64) -> [u8; DOMAIN.len() + INSTANCE_ID_LEN + 8] {
        let mut aad = [0u8; DOMAIN.len() + INSTANCE_ID_LEN + 8];
        let (domain, rest) = aad.split_at_mut(DOMAIN.len());
        let (instance, idx) = rest.split_at_mut(INSTANCE_ID_LEN);
        domain.copy_from_slice(DOMAIN);
        instance.copy_from_slice(&self.instance);
        idx.copy_from_slice(&index.to_be_bytes());
        aad
    }
}

impl fmt::Debug for EphemeralCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EphemeralCipher(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use ring::rand::SystemRandom;

    fn cipher() -> EphemeralCipher {
        EphemeralCipher::new(&SystemRandom::new()).unwrap()
    }

    #[test]
    fn round_trip_at_several_sizes() {
        let rng = SystemRandom::new();
        let c = cipher();
        for len in [0usize, 1, 100, 65535, 65536] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let sealed = c.seal_block(len as u64, &plain, &rng).unwrap();
            assert_eq!(sealed.len(), len + BLOCK_OVERHEAD);
            assert_eq!(c.open_block(len as u64, &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn block_moved_to_another_index_fails() {
        let rng = SystemRandom::new();
        let c = cipher();
        let sealed = c.seal_block(3, b"block three", &rng).unwrap();
        assert_eq!(
            c.open_block(4, &sealed),
            Err(Error::Authentication("local block"))
        );
        assert_eq!(
            c.open_block(3 + (1 << 32), &sealed),
            Err(Error::Authentication("local block"))
        );
    }

    #[test]
    fn block_from_another_instance_fails() {
        let rng = SystemRandom::new();
        let sealed = cipher().seal_block(0, b"elsewhere", &rng).unwrap();
        assert_eq!(
            cipher().open_block(0, &sealed),
            Err(Error::Authentication("local block"))
        );
    }

    #[test]
    fn tampered_truncated_or_short_blocks_fail() {
        let rng = SystemRandom::new();
        let c = cipher();
        let sealed = c.seal_block(9, &[0x5a; 1000], &rng).unwrap();
        for i in [0, 11, 12, 500, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(c.open_block(9, &bad).is_err(), "flip at {i}");
        }
        assert!(c.open_block(9, &sealed[..sealed.len() - 1]).is_err());
        assert!(c.open_block(9, &sealed[..BLOCK_OVERHEAD - 1]).is_err());
        assert!(c.open_block(9, &[]).is_err());
    }

    #[test]
    fn same_plaintext_seals_differently_and_hides_it() {
        let rng = SystemRandom::new();
        let c = cipher();
        let plain = [0u8; 4096];
        let a = c.seal_block(0, &plain, &rng).unwrap();
        let b = c.seal_block(0, &plain, &rng).unwrap();
        assert_ne!(a, b);
        assert!(!a.windows(32).any(|w| w == &plain[..32]));
    }

    #[test]
    fn debug_does_not_leak() {
        assert_eq!(format!("{:?}", cipher()), "EphemeralCipher(<redacted>)");
    }
}
