//! File contents: a header, then the plaintext in 64 KiB chunks, each sealed alone.
//!
//! ```text
//! header (81 bytes) | chunk 0 | chunk 1 | ... | chunk n-1
//! chunk i = nonce (12) | AES-256-GCM(plaintext i) | tag (16)
//! AAD of chunk i = file id (16) | i as u64 BE (8) | last flag (1)
//! ```
//!
//! Every chunk but the last holds exactly [`CHUNK_SIZE`] plaintext bytes; the last holds
//! 1..=`CHUNK_SIZE` bytes, or 0 bytes when the whole file is empty. An empty file is
//! therefore header + one empty final chunk, so cutting a file down to its header (or
//! to any chunk boundary) loses the authenticated "last" flag and fails to open.

mod chunk;
mod header;
mod layout;
mod whole;

pub use chunk::{open_chunk, seal_chunk};
pub use header::{CONTENT_MAGIC, CONTENT_VERSION, ContentHeader, FILE_ID_LEN, FileId, FileKey, HEADER_LEN};
pub use layout::{
    CHUNK_OVERHEAD, CHUNK_SIZE, CIPHER_CHUNK_SIZE, ChunkLoc, ChunkSpan, chunk_count, chunk_loc, chunk_range_for,
    encrypted_size, plain_size, reseal_span,
};
pub use whole::{decrypt_all, encrypt_all};
