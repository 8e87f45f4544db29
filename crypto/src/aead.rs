//! AES-256-GCM helpers shared by every format: `nonce || ciphertext || tag` framing.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::rng::{RandomSource, random_array};
use crate::{Error, Result};

/// Bytes of nonce stored in front of every sealed message.
pub(crate) const NONCE_BYTES: usize = NONCE_LEN;
/// Bytes of GCM tag stored after every sealed message.
pub(crate) const TAG_BYTES: usize = 16;
/// Total framing overhead of one sealed message.
pub(crate) const OVERHEAD: usize = NONCE_BYTES + TAG_BYTES;

/// Builds an AES-256-GCM key; only fails if ring rejects a 32-byte key (it does not).
pub(crate) fn key(bytes: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes).map(LessSafeKey::new).map_err(|_| Error::Internal("AES-256-GCM key setup"))
}

/// Seals `plaintext` under a fresh random nonce.
pub(crate) fn seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8], rng: &dyn RandomSource) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE_BYTES] = random_array(rng)?;
    seal_with_nonce(key, nonce, aad, plaintext)
}

/// Seals `plaintext` under a caller-chosen nonce, which must never repeat for this key
/// with a different plaintext (names derive it from the plaintext itself).
pub(crate) fn seal_with_nonce(
    key: &LessSafeKey,
    nonce: [u8; NONCE_BYTES],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut out[NONCE_BYTES..])
        .map_err(|_| Error::Internal("AES-256-GCM seal"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a `nonce || ciphertext || tag` message; `what` names it in the error.
pub(crate) fn open(key: &LessSafeKey, aad: &[u8], sealed: &[u8], what: &'static str) -> Result<Vec<u8>> {
    let (nonce, body) = split_nonce(sealed).ok_or(Error::Authentication(what))?;
    let mut buf = body.to_vec();
    let plain_len = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
        .map_err(|_| Error::Authentication(what))?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// Opens a `nonce || ciphertext || tag` message found at `in_out[sealed_from..]`,
/// leaving the plaintext at the start of `in_out` (no copy of the message is made);
/// returns the plaintext's length.
pub(crate) fn open_within(
    key: &LessSafeKey,
    aad: &[u8],
    in_out: &mut [u8],
    sealed_from: usize,
    what: &'static str,
) -> Result<usize> {
    let sealed = in_out.get(sealed_from..).ok_or(Error::Authentication(what))?;
    let (nonce, _) = split_nonce(sealed).ok_or(Error::Authentication(what))?;
    key.open_within(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out, sealed_from + NONCE_BYTES..)
        .map(|plain| plain.len())
        .map_err(|_| Error::Authentication(what))
}

fn split_nonce(sealed: &[u8]) -> Option<([u8; NONCE_BYTES], &[u8])> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_BYTES);
    Some((nonce.try_into().ok()?, body))
}
