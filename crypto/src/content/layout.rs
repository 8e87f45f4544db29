//! Sizes and offsets: which ciphertext bytes hold which plaintext bytes.
//!
//! Everything here is arithmetic on lengths, so random-access reads and partial
//! rewrites can be planned before touching any data.

use std::ops::Range;

use super::header::HEADER_LEN;
use crate::aead;
use crate::{Error, Result};

/// Plaintext bytes per chunk (all chunks but the last are exactly this long).
pub const CHUNK_SIZE: u64 = 64 * 1024;
/// Ciphertext bytes added to each chunk: nonce (12) + tag (16).
pub const CHUNK_OVERHEAD: u64 = aead::OVERHEAD as u64;
/// Ciphertext bytes of a full chunk.
pub const CIPHER_CHUNK_SIZE: u64 = CHUNK_SIZE + CHUNK_OVERHEAD;

const HEADER: u64 = HEADER_LEN as u64;

/// Number of chunks a file of `plain_len` bytes has; an empty file has one empty chunk.
pub fn chunk_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(CHUNK_SIZE).max(1)
}

/// Ciphertext size of a file of `plain_len` bytes (saturates for absurd sizes).
pub fn encrypted_size(plain_len: u64) -> u64 {
    HEADER.saturating_add(plain_len).saturating_add(chunk_count(plain_len).saturating_mul(CHUNK_OVERHEAD))
}

/// Plaintext size of a ciphertext of `cipher_len` bytes, or an error if no plaintext
/// encrypts to that size (the mapping is one-to-one, so truncation inside a chunk or
/// inside the header is caught here, before any decryption).
pub fn plain_size(cipher_len: u64) -> Result<u64> {
    let body = cipher_len.checked_sub(HEADER).ok_or(Error::ImpossibleSize(cipher_len))?;
    let full = body / CIPHER_CHUNK_SIZE;
    let rest = body % CIPHER_CHUNK_SIZE;
    let plain = match (full, rest) {
        (0, 0) => None,
        (_, 0) => Some(full * CHUNK_SIZE),
        // A last chunk that is empty exists only in an empty file.
        (0, r) if r == CHUNK_OVERHEAD => Some(0),
        (_, r) if r > CHUNK_OVERHEAD => Some(full * CHUNK_SIZE + (r - CHUNK_OVERHEAD)),
        _ => None,
    };
    plain.ok_or(Error::ImpossibleSize(cipher_len))
}

/// Where one chunk lives in plaintext and in ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLoc {
    /// Chunk index, bound into the chunk's AAD.
    pub index: u64,
    /// Whether this is the file's final chunk, bound into the AAD.
    pub is_last: bool,
    /// Plaintext byte range of the chunk.
    pub plain: Range<u64>,
    /// Ciphertext byte range of the sealed chunk within the whole object.
    pub cipher: Range<u64>,
}

/// Location of chunk `index` in a file of `plain_len` bytes, if the chunk exists.
pub fn chunk_loc(plain_len: u64, index: u64) -> Option<ChunkLoc> {
    let count = chunk_count(plain_len);
    if index >= count {
        return None;
    }
    let start = index * CHUNK_SIZE;
    let end = plain_len.min(start + CHUNK_SIZE);
    let cipher_start = HEADER + index * CIPHER_CHUNK_SIZE;
    Some(ChunkLoc {
        index,
        is_last: index + 1 == count,
        plain: start..end,
        cipher: cipher_start..cipher_start + CHUNK_OVERHEAD + (end - start),
    })
}

/// A contiguous run of chunks `[first, end)` of a file of a given plaintext size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// First chunk index in the span.
    pub first: u64,
    /// One past the last chunk index in the span.
    pub end: u64,
    /// Plaintext size of the file the span refers to.
    pub plain_len: u64,
}

impl ChunkSpan {
    fn empty(plain_len: u64) -> Self {
        ChunkSpan { first: 0, end: 0, plain_len }
    }

    /// True when no chunk needs touching.
    pub fn is_empty(&self) -> bool {
        self.first >= self.end
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = ChunkLoc> + use<> {
        let plain_len = self.plain_len;
        (self.first..self.end).filter_map(move |i| chunk_loc(plain_len, i))
    }

    /// The one contiguous ciphertext range covering every chunk of the span
    /// (what to range-read from the provider).
    pub fn cipher_range(&self) -> Range<u64> {
        let last = self.end.checked_sub(1);
        match (self.chunks().next(), last.and_then(|l| chunk_loc(self.plain_len, l))) {
            (Some(first), Some(last)) => first.cipher.start..last.cipher.end,
            _ => 0..0,
        }
    }

    /// The plaintext range the span's chunks decrypt to.
    pub fn plain_range(&self) -> Range<u64> {
        if self.is_empty() {
            return 0..0;
        }
        let start = self.first * CHUNK_SIZE;
        start..self.plain_len.min(self.end * CHUNK_SIZE)
    }
}

/// The chunks covering plaintext bytes `[offset, offset + len)` of a file of
/// `plain_len` bytes, clamped to the file. Reading them, and only them, serves the read.
pub fn chunk_range_for(offset: u64, len: u64, plain_len: u64) -> ChunkSpan {
    let end = offset.saturating_add(len).min(plain_len);
    if offset >= end {
        return ChunkSpan::empty(plain_len);
    }
    ChunkSpan { first: offset / CHUNK_SIZE, end: (end - 1) / CHUNK_SIZE + 1, plain_len }
}

/// The chunks that must be (re)sealed after a change that took the file from
/// `old_len` to `new_len` bytes and rewrote plaintext bytes `written`.
///
/// Besides the chunks overlapping `written`, a size change moves the "last" flag: when
/// growing, the old last chunk and every chunk up to the new end are resealed (gaps read
/// as zeros); when shrinking, the new last chunk is. The span refers to the new size;
/// ciphertext past `encrypted_size(new_len)` is to be dropped.
pub fn reseal_span(old_len: u64, new_len: u64, written: Range<u64>) -> ChunkSpan {
    let new_last = chunk_count(new_len) - 1;
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    let mut include = |a: u64, b: u64| {
        lo = lo.min(a);
        hi = hi.max(b);
    };
    let w_end = written.end.min(new_len);
    if written.start < w_end {
        include(written.start / CHUNK_SIZE, (w_end - 1) / CHUNK_SIZE);
    }
    if new_len > old_len {
        include(chunk_count(old_len) - 1, new_last);
    } else if new_len < old_len {
        include(new_last, new_last);
    }
    if lo > hi {
        return ChunkSpan::empty(new_len);
    }
    ChunkSpan { first: lo, end: hi + 1, plain_len: new_len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_around_edges() {
        for n in [0, 1, 2, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 100_000] {
            assert_eq!(plain_size(encrypted_size(n)), Ok(n), "plain {n}");
        }
        assert_eq!(encrypted_size(0), 81 + 28);
        assert_eq!(encrypted_size(100_000), 100_137);
    }

    #[test]
    fn impossible_sizes_rejected() {
        let one_full = encrypted_size(CHUNK_SIZE);
        for c in [0, 80, 81, 82, 81 + 27, one_full + 1, one_full + 27, one_full + 28] {
            assert!(plain_size(c).is_err(), "cipher {c}");
        }
    }

    #[test]
    fn every_cipher_size_maps_back_exactly() {
        // plain_size is the inverse of encrypted_size on its whole domain.
        for c in 0..(3 * CIPHER_CHUNK_SIZE + 200) {
            if let Ok(p) = plain_size(c) {
                assert_eq!(encrypted_size(p), c);
            }
        }
    }

    #[test]
    fn range_covers_only_needed_chunks() {
        let len = 5 * CHUNK_SIZE + 10;
        let span = chunk_range_for(CHUNK_SIZE - 1, 2, len);
        assert_eq!((span.first, span.end), (0, 2));
        let span = chunk_range_for(CHUNK_SIZE, CHUNK_SIZE, len);
        assert_eq!((span.first, span.end), (1, 2));
        assert_eq!(span.cipher_range(), 81 + CIPHER_CHUNK_SIZE..81 + 2 * CIPHER_CHUNK_SIZE);
        let tail = chunk_range_for(len - 1, 100, len);
        assert_eq!((tail.first, tail.end), (5, 6));
        assert_eq!(tail.cipher_range().end, encrypted_size(len));
        assert!(chunk_range_for(len, 1, len).is_empty());
        assert!(chunk_range_for(3, 0, len).is_empty());
    }

    #[test]
    fn reseal_moves_last_flag() {
        // Growing from one full chunk: the old last chunk loses its flag.
        let s = reseal_span(CHUNK_SIZE, CHUNK_SIZE + 1, CHUNK_SIZE..CHUNK_SIZE + 1);
        assert_eq!((s.first, s.end), (0, 2));
        // Shrinking: only the new last chunk.
        let s = reseal_span(3 * CHUNK_SIZE, CHUNK_SIZE + 5, 0..0);
        assert_eq!((s.first, s.end), (1, 2));
        // Truncate to zero: the single empty chunk.
        let s = reseal_span(10, 0, 0..0);
        assert_eq!((s.first, s.end), (0, 1));
        // In-place overwrite.
        let s = reseal_span(10 * CHUNK_SIZE, 10 * CHUNK_SIZE, 5..6);
        assert_eq!((s.first, s.end), (0, 1));
        assert!(reseal_span(7, 7, 0..0).is_empty());
    }
}
