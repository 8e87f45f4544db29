//! The master key and the per-purpose subkeys derived from it.
//!
//! The master key is never used directly: each use gets its own subkey from
//! HKDF-SHA256 with a named info string, so a weakness or leak in one purpose
//! (say, a local cache key) does not touch the others.

use std::fmt;

use ring::hmac;
use zeroize::Zeroize;

use crate::Result;
use crate::rng::{RandomSource, random_array};

/// Length in bytes of the master key and of every subkey.
pub const KEY_LEN: usize = 32;

/// The 32-byte secret every other key of a vault derives from. Zeroized on drop.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    /// Wraps raw key bytes (from an unlocked vault, or fixed bytes in tests).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Draws a fresh master key.
    pub fn generate(rng: &dyn RandomSource) -> Result<Self> {
        random_array(rng).map(Self)
    }

    /// The raw key bytes. Needed to wrap the key; avoid copying them elsewhere.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Derives the subkey for `purpose` (HKDF-SHA256, empty salt, info = purpose string).
    pub fn derive_subkey(&self, purpose: Purpose) -> SubKey {
        SubKey(hkdf_sha256_32(&self.0, purpose.info().as_bytes()))
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A 32-byte key for one purpose, derived from the master key. Zeroized on drop.
#[derive(Clone)]
pub struct SubKey([u8; KEY_LEN]);

impl SubKey {
    /// The raw subkey bytes, for layers that key their own primitive with it.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for SubKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubKey(<redacted>)")
    }
}

/// What a subkey is for. Each variant's info string is part of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Wraps the per-file content keys stored in content headers.
    ContentKeyWrap,
    /// AES-256-GCM key that encrypts file names.
    NameEncryption,
    /// HMAC-SHA256 key that derives the synthetic nonce of a file name.
    NameNonce,
    /// Seals metadata records and symlink targets stored at the provider.
    Metadata,
    /// Encrypts local state: cache blocks, journal payloads, temp files.
    LocalState,
}

impl Purpose {
    /// All purposes, for tests and documentation.
    pub const ALL: [Purpose; 5] =
        [Purpose::ContentKeyWrap, Purpose::NameEncryption, Purpose::NameNonce, Purpose::Metadata, Purpose::LocalState];

    /// The HKDF info string. Changing one changes the on-disk format.
    pub const fn info(self) -> &'static str {
        match self {
            Purpose::ContentKeyWrap => "oxidrive v1 content-key-wrap",
            Purpose::NameEncryption => "oxidrive v1 name-siv-enc",
            Purpose::NameNonce => "oxidrive v1 name-siv-mac",
            Purpose::Metadata => "oxidrive v1 metadata",
            Purpose::LocalState => "oxidrive v1 local-state",
        }
    }
}

/// HKDF-SHA256 (RFC 5869) with an empty salt and a 32-byte output.
///
/// One output block needs one HMAC for extract and one for expand; writing it out
/// keeps `derive_subkey` infallible (ring's HKDF API is fallible for long outputs).
/// A test checks it against `ring::hkdf`.
pub(crate) fn hkdf_sha256_32(ikm: &[u8], info: &[u8]) -> [u8; KEY_LEN] {
    // An empty salt is the same HMAC key as RFC 5869's default of HashLen zero bytes.
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[]), ikm);
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()));
    ctx.update(info);
    ctx.update(&[1u8]);
    let tag = ctx.sign();
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::hkdf;

    #[test]
    fn manual_hkdf_matches_ring() {
        let ikm = [7u8; 32];
        for purpose in Purpose::ALL {
            let info = [purpose.info().as_bytes()];
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(&ikm);
            let mut expected = [0u8; 32];
            prk.expand(&info, hkdf::HKDF_SHA256).unwrap().fill(&mut expected).unwrap();
            assert_eq!(hkdf_sha256_32(&ikm, info[0]), expected, "{purpose:?}");
        }
    }

    #[test]
    fn subkeys_differ_per_purpose() {
        let master = MasterKey::from_bytes([1u8; 32]);
        let keys: Vec<_> = Purpose::ALL.iter().map(|p| *master.derive_subkey(*p).expose_secret()).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn debug_does_not_leak() {
        let master = MasterKey::from_bytes([0xAB; 32]);
        assert!(!format!("{master:?}").contains("171"));
        assert!(!format!("{:?}", master.derive_subkey(Purpose::Metadata)).contains("ab"));
    }
}
