//! Small sealed records: symlink targets, metadata records, local state.
//!
//! ```text
//! version 1 (1) | nonce (12) | AES-256-GCM(bytes) | tag (16)
//! AAD = version || purpose_aad
//! ```
//!
//! `purpose_aad` says what the blob is and where it belongs (e.g. "symlink" plus the
//! entry's directory id and stored name), so a blob sealed for one use or place does
//! not open as another.

use crate::aead;
use crate::keys::SubKey;
use crate::rng::RandomSource;
use crate::{Error, Result};

/// The blob format version this build writes and reads.
pub const BLOB_VERSION: u8 = 1;
/// Bytes a sealed blob adds to its plaintext.
pub const BLOB_OVERHEAD: usize = 1 + aead::OVERHEAD;

/// Seals `bytes` under `key`, bound to `purpose_aad`.
pub fn seal_blob(key: &SubKey, purpose_aad: &[u8], bytes: &[u8], rng: &dyn RandomSource) -> Result<Vec<u8>> {
    let sealed = aead::seal(&aead::key(key.expose_secret())?, &aad(purpose_aad), bytes, rng)?;
    let mut out = Vec::with_capacity(1 + sealed.len());
    out.push(BLOB_VERSION);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a blob sealed by [`seal_blob`] with the same key and `purpose_aad`.
pub fn open_blob(key: &SubKey, purpose_aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    match sealed.first() {
        Some(&BLOB_VERSION) => {}
        Some(&version) => {
            return Err(Error::UnsupportedVersion { what: "blob", version });
        }
        None => return Err(Error::Authentication("blob")),
    }
    aead::open(&aead::key(key.expose_secret())?, &aad(purpose_aad), &sealed[1..], "blob")
}

fn aad(purpose_aad: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + purpose_aad.len());
    aad.push(BLOB_VERSION);
    aad.extend_from_slice(purpose_aad);
    aad
}
