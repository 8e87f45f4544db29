//! Encryption formats for oxidrive (pure, no I/O).
//!
//! Everything here is a pure function of its inputs: no files, no network, no clocks.
//! Randomness comes in through [`rng::RandomSource`] so tests can pin it; production
//! callers pass [`ring::rand::SystemRandom`]. The byte-exact formats are described in
//! `docs/format.md`; the frozen vectors in `tests/vectors.rs` hold them in place.
//!
//! - [`keys`]: the master key and its per-purpose HKDF subkeys.
//! - [`vault`]: the passphrase-protected header that wraps the master key.
//! - [`content`]: file contents as a header plus 64 KiB AES-256-GCM chunks.
//! - [`names`]: deterministic, directory-bound encryption of file names.
//! - [`blob`]: small sealed records (symlink targets, metadata).
//! - [`local`]: blocks of local scratch files under an ephemeral in-memory key.

mod aead;
mod base32;
pub mod blob;
pub mod content;
mod error;
pub mod keys;
pub mod local;
pub mod names;
pub mod rng;
pub mod vault;

pub use error::{Error, Result};
