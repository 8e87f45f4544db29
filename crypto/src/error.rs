//! The crate's one error type.

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while parsing, unwrapping or opening.
///
/// Authentication failures deliberately carry no detail beyond *what* failed to open:
/// callers map them to EIO and a log line, never to partial plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The passphrase does not unlock the vault (or the vault header was altered).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// AEAD verification failed: the data was tampered with, moved, truncated, or
    /// belongs to another key.
    #[error("{0} failed authentication (tampered, moved, or wrong key)")]
    Authentication(&'static str),
    /// The object does not start with the expected magic bytes.
    #[error("not an oxidrive {0}: bad magic bytes")]
    BadMagic(&'static str),
    /// A format version this build does not understand.
    #[error("unsupported {what} format version {version}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    /// A fixed-size object has the wrong length.
    #[error("{what} has length {got}, expected {expected}")]
    BadLength { what: &'static str, expected: usize, got: usize },
    /// No plaintext size encrypts to this ciphertext size (truncated or padded object).
    #[error("ciphertext size {0} is impossible for the content format")]
    ImpossibleSize(u64),
    /// A chunk's shape breaks the layout rules (size versus index and last flag).
    #[error("invalid chunk: {0}")]
    InvalidChunk(&'static str),
    /// Argon2id parameters outside the accepted range.
    #[error("invalid KDF parameters: {0}")]
    KdfParams(&'static str),
    /// A plaintext file name that may not be stored.
    #[error("invalid file name: {0}")]
    InvalidName(&'static str),
    /// A stored name that is not a well-formed encrypted name.
    #[error("invalid encrypted name: {0}")]
    InvalidEncryptedName(&'static str),
    /// The random source failed.
    #[error("random number generator failed")]
    Random,
    /// A primitive refused input that is valid by construction: a bug in this crate.
    #[error("internal crypto error: {0}")]
    Internal(&'static str),
}
