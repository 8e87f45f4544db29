//! The content header: file id and the wrapped per-file content key.
//!
//! ```text
//! magic "OXDC" (4) | version 1 (1) | file id (16) | nonce (12)
//! | AES-256-GCM(file key) (32) | tag (16)            = 81 bytes
//! ```
//!
//! The file key is wrapped with the master key's content-key-wrap subkey; the AAD is
//! magic || version || file id || binding, so a header cannot be re-labelled with
//! another id, nor moved to another name: the binding is the caller's identity for the
//! object (the provider layer uses dir id || plaintext name; an empty binding is
//! allowed for objects with no name to bind to). The binding is not stored.

use std::fmt;

use ring::aead::LessSafeKey;
use zeroize::Zeroizing;

use crate::aead;
use crate::keys::{KEY_LEN, MasterKey, Purpose};
use crate::rng::{RandomSource, random_array};
use crate::{Error, Result};

/// Magic bytes at the start of every encrypted file.
pub const CONTENT_MAGIC: [u8; 4] = *b"OXDC";
/// The content format version this build writes and reads.
pub const CONTENT_VERSION: u8 = 1;
/// Length of a file id.
pub const FILE_ID_LEN: usize = 16;
/// Length of the serialized content header.
pub const HEADER_LEN: usize = ID_END + aead::OVERHEAD + KEY_LEN;

const ID_END: usize = 5 + FILE_ID_LEN;

/// A random per-file identifier, bound into every chunk of that file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FileId([u8; FILE_ID_LEN]);

impl FileId {
    /// Wraps raw id bytes.
    pub fn from_bytes(bytes: [u8; FILE_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw id bytes.
    pub fn as_bytes(&self) -> &[u8; FILE_ID_LEN] {
        &self.0
    }
}

/// The per-file content key, ready to seal and open chunks.
pub struct FileKey(LessSafeKey);

impl FileKey {
    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.0
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

/// A parsed content header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHeader {
    file_id: FileId,
    /// nonce || wrapped key || tag, exactly as stored.
    wrapped: [u8; aead::OVERHEAD + KEY_LEN],
}

impl ContentHeader {
    /// Creates a header for a new file: fresh id, fresh content key. Returns the key too,
    /// so the writer need not unwrap what it just wrapped.
    pub fn new(master: &MasterKey, binding: &[u8], rng: &dyn RandomSource) -> Result<(ContentHeader, FileKey)> {
        let file_id = FileId(random_array(rng)?);
        let file_key: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(random_array(rng)?);
        let header = Self::wrap(master, file_id, binding, file_key.as_ref(), rng)?;
        Ok((header, FileKey(aead::key(&file_key)?)))
    }

    /// The file id every chunk of this file is bound to.
    pub fn file_id(&self) -> FileId {
        self.file_id
    }

    /// Unwraps the file's content key; fails unless `binding` is the one it was made for.
    pub fn open_key(&self, master: &MasterKey, binding: &[u8]) -> Result<FileKey> {
        let plain = self.unwrap_raw(master, binding)?;
        let bytes: &[u8; KEY_LEN] =
            plain.as_slice().try_into().map_err(|_| Error::Internal("unwrapped file key length"))?;
        Ok(FileKey(aead::key(bytes)?))
    }

    /// The same file (id and content key, so every chunk stays valid) bound to a new
    /// identity: what a rename writes in place of the old header.
    pub fn rebind(
        &self,
        master: &MasterKey,
        old_binding: &[u8],
        new_binding: &[u8],
        rng: &dyn RandomSource,
    ) -> Result<ContentHeader> {
        let key = self.unwrap_raw(master, old_binding)?;
        Self::wrap(master, self.file_id, new_binding, key.as_slice(), rng)
    }

    /// Wraps `file_key` for `file_id` under `binding`.
    fn wrap(
        master: &MasterKey,
        file_id: FileId,
        binding: &[u8],
        file_key: &[u8],
        rng: &dyn RandomSource,
    ) -> Result<ContentHeader> {
        let sealed = aead::seal(&wrap_key(master)?, &bound_aad(&file_id, binding), file_key, rng)?;
        let wrapped = sealed.as_slice().try_into().map_err(|_| Error::Internal("wrapped file key length"))?;
        Ok(ContentHeader { file_id, wrapped })
    }

    fn unwrap_raw(&self, master: &MasterKey, binding: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(aead::open(
            &wrap_key(master)?,
            &bound_aad(&self.file_id, binding),
            &self.wrapped,
            "content header",
        )?))
    }

    /// Serializes to the 81-byte on-provider form.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..ID_END].copy_from_slice(&wrap_aad(&self.file_id));
        out[ID_END..].copy_from_slice(&self.wrapped);
        out
    }

    /// Parses exactly [`HEADER_LEN`] bytes (callers slice them off the object's front).
    pub fn from_bytes(bytes: &[u8]) -> Result<ContentHeader> {
        if bytes.len() < CONTENT_MAGIC.len() || bytes[..4] != CONTENT_MAGIC {
            return Err(Error::BadMagic("content object"));
        }
        if bytes.len() != HEADER_LEN {
            return Err(Error::BadLength { what: "content header", expected: HEADER_LEN, got: bytes.len() });
        }
        if bytes[4] != CONTENT_VERSION {
            return Err(Error::UnsupportedVersion { what: "content", version: bytes[4] });
        }
        let mut id = [0u8; FILE_ID_LEN];
        id.copy_from_slice(&bytes[5..ID_END]);
        let mut wrapped = [0u8; aead::OVERHEAD + KEY_LEN];
        wrapped.copy_from_slice(&bytes[ID_END..]);
        Ok(ContentHeader { file_id: FileId(id), wrapped })
    }
}

fn wrap_key(master: &MasterKey) -> Result<LessSafeKey> {
    aead::key(master.derive_subkey(Purpose::ContentKeyWrap).expose_secret())
}

fn wrap_aad(file_id: &FileId) -> [u8; ID_END] {
    let mut aad = [0u8; ID_END];
    aad[..4].copy_from_slice(&CONTENT_MAGIC);
    aad[4] = CONTENT_VERSION;
    aad[5..].copy_from_slice(&file_id.0);
    aad
}

fn bound_aad(file_id: &FileId, binding: &[u8]) -> Vec<u8> {
    let mut aad = wrap_aad(file_id).to_vec();
    aad.extend_from_slice(binding);
    aad
}
