//! Deterministic file-name encryption, bound to the parent directory.
//!
//! Lookups must find an entry without listing the directory, so the same name in the
//! same directory always encrypts to the same stored name. The scheme is a synthetic-IV
//! construction from ring's primitives (ring has no AES-SIV):
//!
//! ```text
//! padded = name || PKCS#7 padding to a multiple of 16 bytes (1..=16 bytes added)
//! nonce  = HMAC-SHA256(name-nonce subkey, dir id || name)[..12]
//! stored = base32(nonce || AES-256-GCM(name-enc subkey, nonce, padded, aad = dir id) || tag)
//! ```
//!
//! The nonce is a PRF of the whole input, so it only repeats when the input repeats,
//! which is exactly when the output should repeat; equal names in different directories
//! or different names in one directory look unrelated. Padding hides name lengths to
//! within 16 bytes. Opening re-derives the nonce and rejects a mismatch.

mod long;

pub use long::{
    EntryKind, LONG_NAME_PREFIX, LONG_NAME_SIDE_SUFFIX, SideObject, classify, long_name_for, long_name_side_object,
    needs_long_name, resolve_long_name,
};

use ring::aead::LessSafeKey;
use ring::hmac;

use crate::keys::{MasterKey, Purpose};
use crate::rng::{RandomSource, random_array};
use crate::{Error, Result, aead, base32};

/// Longest plaintext name accepted, in bytes (Linux NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Longest stored name written as is; longer ones use the long-name form.
pub const STORED_NAME_MAX: usize = 255;
/// Length of a directory id.
pub const DIR_ID_LEN: usize = 16;
/// Name of the object holding a directory's id, inside that directory.
pub const DIR_ID_OBJECT_NAME: &str = "oxidrive.dirid";

const PAD_BLOCK: usize = 16;

/// Identifies a directory for name encryption. Random per directory and stored in the
/// directory, so renaming a directory does not re-encrypt its children.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DirId([u8; DIR_ID_LEN]);

impl DirId {
    /// The id of a provider's root directory. Fixed, so the root needs no id object;
    /// safe because every vault has its own master key.
    pub const ROOT: DirId = DirId([0u8; DIR_ID_LEN]);

    /// A fresh id for a new directory.
    pub fn generate(rng: &dyn RandomSource) -> Result<Self> {
        random_array(rng).map(Self)
    }

    /// Wraps raw id bytes.
    pub fn from_bytes(bytes: [u8; DIR_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the content of a directory id object (exactly 16 raw bytes).
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        bytes.try_into().map(Self).map_err(|_| Error::BadLength {
            what: "directory id",
            expected: DIR_ID_LEN,
            got: bytes.len(),
        })
    }

    /// The raw id bytes (also the directory id object's content).
    pub fn as_bytes(&self) -> &[u8; DIR_ID_LEN] {
        &self.0
    }
}

/// A name as it is to be written at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    /// The entry's name at the provider.
    pub name: String,
    /// For long names, the side object to write next to it.
    pub side_object: Option<SideObject>,
}

/// Encrypts and decrypts names under one master key.
pub struct NameCipher {
    enc: LessSafeKey,
    mac: hmac::Key,
}

impl NameCipher {
    /// Derives the two name subkeys from the master key.
    pub fn new(master: &MasterKey) -> Result<Self> {
        let enc = aead::key(master.derive_subkey(Purpose::NameEncryption).expose_secret())?;
        let mac_key = master.derive_subkey(Purpose::NameNonce);
        let mac = hmac::Key::new(hmac::HMAC_SHA256, mac_key.expose_secret());
        Ok(NameCipher { enc, mac })
    }

    /// Encrypts `name` for directory `dir` into its full encoded form, which may be
    /// longer than [`STORED_NAME_MAX`]; see [`NameCipher::encrypt_for_storage`].
    pub fn encrypt(&self, dir: &DirId, name: &[u8]) -> Result<String> {
        validate_name(name)?;
        let mut padded = Vec::with_capacity(name.len() + PAD_BLOCK);
        padded.extend_from_slice(name);
        let pad = PAD_BLOCK - name.len() % PAD_BLOCK;
        padded.resize(name.len() + pad, pad as u8);
        let sealed = aead::seal_with_nonce(&self.enc, self.nonce(dir, name), dir.as_bytes(), &padded)?;
        Ok(base32::encode(&sealed))
    }

    /// Encrypts `name` and applies the long-name rule: the name to write, plus the side
    /// object when the encrypted name is too long to store directly.
    pub fn encrypt_for_storage(&self, dir: &DirId, name: &[u8]) -> Result<StoredName> {
        let encoded = self.encrypt(dir, name)?;
        if needs_long_name(&encoded) {
            Ok(StoredName { name: long_name_for(&encoded), side_object: Some(long_name_side_object(&encoded)) })
        } else {
            Ok(StoredName { name: encoded, side_object: None })
        }
    }

    /// Decrypts a full encoded name (for long names, first [`resolve_long_name`]).
    pub fn decrypt(&self, dir: &DirId, encoded: &str) -> Result<Vec<u8>> {
        let sealed = base32::decode(encoded).ok_or(Error::InvalidEncryptedName("not base32"))?;
        // The shortest valid message holds one padding block.
        if sealed.len() < aead::OVERHEAD + PAD_BLOCK {
            return Err(Error::InvalidEncryptedName("too short"));
        }
        let mut padded = aead::open(&self.enc, dir.as_bytes(), &sealed, "file name")?;
        let pad = usize::from(padded.last().copied().unwrap_or(0));
        if pad == 0 || pad > PAD_BLOCK || pad > padded.len() || padded.len() % PAD_BLOCK != 0 {
            return Err(Error::Authentication("file name padding"));
        }
        let name_len = padded.len() - pad;
        if padded[name_len..].iter().any(|&b| usize::from(b) != pad) {
            return Err(Error::Authentication("file name padding"));
        }
        padded.truncate(name_len);
        validate_name(&padded).map_err(|_| Error::Authentication("file name"))?;
        // Only the canonical (synthetic) nonce is accepted, so a name has one encoding.
        if sealed[..aead::NONCE_BYTES] != self.nonce(dir, &padded) {
            return Err(Error::Authentication("file name nonce"));
        }
        Ok(padded)
    }

    fn nonce(&self, dir: &DirId, name: &[u8]) -> [u8; aead::NONCE_BYTES] {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(dir.as_bytes());
        ctx.update(name);
        let tag = ctx.sign();
        let mut nonce = [0u8; aead::NONCE_BYTES];
        nonce.copy_from_slice(&tag.as_ref()[..aead::NONCE_BYTES]);
        nonce
    }
}

/// Rejects names no POSIX directory entry can have: empty, `.`, `..`, longer than
/// [`NAME_MAX`] bytes, or containing `/` or NUL.
pub fn validate_name(name: &[u8]) -> Result<()> {
    match name {
        b"" => Err(Error::InvalidName("empty")),
        b"." | b".." => Err(Error::InvalidName("`.` and `..` are not entries")),
        _ if name.len() > NAME_MAX => Err(Error::InvalidName("longer than 255 bytes")),
        _ if name.contains(&b'/') => Err(Error::InvalidName("contains `/`")),
        _ if name.contains(&0) => Err(Error::InvalidName("contains NUL")),
        _ => Ok(()),
    }
}
