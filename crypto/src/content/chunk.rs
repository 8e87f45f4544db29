//! Sealing and opening single chunks.
//!
//! Nonces are 96 random bits per seal. A counter-derived nonce would need a counter
//! that survives crashes, offline edits and several devices writing one file; random
//! nonces need nothing. Keys are per file, so the birthday bound applies per file: after
//! 2^32 seals (256 TiB written to one file, rewrites included) the chance of any nonce
//! repeating is still below 2^-32.

use super::header::{FILE_ID_LEN, FileId, FileKey};
use super::layout::{CHUNK_OVERHEAD, CHUNK_SIZE, CIPHER_CHUNK_SIZE};
use crate::aead;
use crate::rng::RandomSource;
use crate::{Error, Result};

const AAD_LEN: usize = FILE_ID_LEN + 8 + 1;

/// Seals one chunk. `plaintext` must be exactly [`CHUNK_SIZE`] bytes unless `is_last`;
/// a last chunk may be empty only at index 0 (the empty file).
pub fn seal_chunk(
    key: &FileKey,
    file_id: &FileId,
    index: u64,
    is_last: bool,
    plaintext: &[u8],
    rng: &dyn RandomSource,
) -> Result<Vec<u8>> {
    check_shape(index, is_last, plaintext.len() as u64)?;
    aead::seal(key.aead(), &chunk_aad(file_id, index, is_last), plaintext, rng)
}

/// Opens one sealed chunk, checking it belongs at `index` of the file `file_id` and
/// carries the expected last-chunk flag.
pub fn open_chunk(key: &FileKey, file_id: &FileId, index: u64, is_last: bool, sealed: &[u8]) -> Result<Vec<u8>> {
    let len = sealed.len() as u64;
    if !(CHUNK_OVERHEAD..=CIPHER_CHUNK_SIZE).contains(&len) {
        return Err(Error::InvalidChunk("sealed chunk length out of range"));
    }
    check_shape(index, is_last, len - CHUNK_OVERHEAD)?;
    aead::open(key.aead(), &chunk_aad(file_id, index, is_last), sealed, "content chunk")
}

fn check_shape(index: u64, is_last: bool, plain_len: u64) -> Result<()> {
    if plain_len > CHUNK_SIZE {
        return Err(Error::InvalidChunk("chunk larger than CHUNK_SIZE"));
    }
    if !is_last && plain_len != CHUNK_SIZE {
        return Err(Error::InvalidChunk("only the last chunk may be short"));
    }
    if is_last && plain_len == 0 && index != 0 {
        return Err(Error::InvalidChunk("an empty last chunk exists only in an empty file"));
    }
    Ok(())
}

/// file id || index (u64 BE) || last flag (1 or 0).
fn chunk_aad(file_id: &FileId, index: u64, is_last: bool) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    aad[..FILE_ID_LEN].copy_from_slice(file_id.as_bytes());
    aad[FILE_ID_LEN..FILE_ID_LEN + 8].copy_from_slice(&index.to_be_bytes());
    aad[AAD_LEN - 1] = u8::from(is_last);
    aad
}
