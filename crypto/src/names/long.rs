//! Long names: encrypted names too long for providers' 255-byte limit.
//!
//! Such an entry is stored as `l-` + base32(SHA-256(full encoded name)) (54 bytes) and
//! the full encoded name is kept in a side object named `<that>.name` in the same
//! directory. Neither form can collide with an ordinary encrypted name, whose alphabet
//! has no `-` or `.`. The crate only computes names and contents; callers do the I/O.

use ring::digest;

use super::STORED_NAME_MAX;
use crate::{Error, Result, base32};

/// Prefix of a long-name entry.
pub const LONG_NAME_PREFIX: &str = "l-";
/// Suffix of a long name's side object.
pub const LONG_NAME_SIDE_SUFFIX: &str = ".name";

/// base32 length of a SHA-256 digest.
const HASH_CHARS: usize = 52;

/// An object to write beside a long-name entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideObject {
    /// The side object's name at the provider.
    pub name: String,
    /// Its content: the full encoded name, ASCII.
    pub content: Vec<u8>,
}

/// Whether an encoded name is too long to be stored as is.
pub fn needs_long_name(encoded: &str) -> bool {
    encoded.len() > STORED_NAME_MAX
}

/// The short stored form of a long encoded name.
pub fn long_name_for(encoded: &str) -> String {
    let digest = digest::digest(&digest::SHA256, encoded.as_bytes());
    format!("{LONG_NAME_PREFIX}{}", base32::encode(digest.as_ref()))
}

/// The side object that holds a long encoded name.
pub fn long_name_side_object(encoded: &str) -> SideObject {
    SideObject {
        name: format!("{}{LONG_NAME_SIDE_SUFFIX}", long_name_for(encoded)),
        content: encoded.as_bytes().to_vec(),
    }
}

/// Recovers the full encoded name of long entry `stored` from its side object's
/// content, checking that the content hashes to the entry's name.
pub fn resolve_long_name(stored: &str, side_content: &[u8]) -> Result<String> {
    if classify(stored) != EntryKind::LongName {
        return Err(Error::InvalidEncryptedName("not a long-name entry"));
    }
    let encoded = std::str::from_utf8(side_content)
        .map_err(|_| Error::InvalidEncryptedName("long-name side object is not ASCII"))?;
    if !needs_long_name(encoded) || long_name_for(encoded) != stored {
        return Err(Error::Authentication("long-name side object"));
    }
    Ok(encoded.to_owned())
}

/// What a name found in a provider listing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// An ordinary encrypted name: decrypt it directly.
    Encrypted,
    /// A long-name entry: read its side object, then resolve and decrypt.
    LongName,
    /// A long name's side object: hide it from listings.
    LongNameSide,
    /// Anything else (the vault, directory ids, foreign objects): not a user entry.
    Other,
}

/// Sorts a stored name into what a directory listing should do with it.
pub fn classify(stored: &str) -> EntryKind {
    let is_b32 = |s: &str| !s.is_empty() && s.bytes().all(|c| matches!(c, b'a'..=b'z' | b'2'..=b'7'));
    let is_long = |s: &str| s.strip_prefix(LONG_NAME_PREFIX).is_some_and(|h| h.len() == HASH_CHARS && is_b32(h));
    if is_b32(stored) && stored.len() <= STORED_NAME_MAX {
        EntryKind::Encrypted
    } else if is_long(stored) {
        EntryKind::LongName
    } else if stored.strip_suffix(LONG_NAME_SIDE_SUFFIX).is_some_and(is_long) {
        EntryKind::LongNameSide
    } else {
        EntryKind::Other
    }
}
