//! Whole-object encryption, for tests and `oxidrive decrypt` (offline, small files).
//! The mount itself works chunk by chunk through the layout functions.

use super::chunk::{open_chunk, seal_chunk};
use super::header::{ContentHeader, HEADER_LEN};
use super::layout::{chunk_count, chunk_loc, encrypted_size, plain_size};
use crate::keys::MasterKey;
use crate::rng::RandomSource;
use crate::{Error, Result};

/// Encrypts a whole file: new header (bound to `binding`), fresh file key, all chunks.
pub fn encrypt_all(master: &MasterKey, binding: &[u8], plaintext: &[u8], rng: &dyn RandomSource) -> Result<Vec<u8>> {
    let plain_len = plaintext.len() as u64;
    let (header, key) = ContentHeader::new(master, binding, rng)?;
    let id = header.file_id();
    let mut out = Vec::with_capacity(usize::try_from(encrypted_size(plain_len)).unwrap_or(0));
    out.extend_from_slice(&header.to_bytes());
    for i in 0..chunk_count(plain_len) {
        let loc = chunk_loc(plain_len, i).ok_or(Error::Internal("chunk index"))?;
        let part = &plaintext[to_usize(loc.plain.start)?..to_usize(loc.plain.end)?];
        out.extend_from_slice(&seal_chunk(&key, &id, loc.index, loc.is_last, part, rng)?);
    }
    Ok(out)
}

/// Decrypts and authenticates a whole file, failing on any tampering, truncation or
/// extension.
pub fn decrypt_all(master: &MasterKey, binding: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
    let plain_len = plain_size(ciphertext.len() as u64)?;
    let header = ContentHeader::from_bytes(&ciphertext[..HEADER_LEN])?;
    let key = header.open_key(master, binding)?;
    let id = header.file_id();
    let mut out = Vec::with_capacity(to_usize(plain_len)?);
    for i in 0..chunk_count(plain_len) {
        let loc = chunk_loc(plain_len, i).ok_or(Error::Internal("chunk index"))?;
        let sealed = &ciphertext[to_usize(loc.cipher.start)?..to_usize(loc.cipher.end)?];
        out.extend_from_slice(&open_chunk(&key, &id, loc.index, loc.is_last, sealed)?);
    }
    Ok(out)
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::ImpossibleSize(n))
}
