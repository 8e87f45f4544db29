//! Local state between the namespace and the providers.
//!
//! Today: the metadata index (POSIX attributes providers cannot hold: mode, owner,
//! mtime set by the user, symlinks, xattrs) and staging files for open, written files.
//! The block cache, journal and uploader grow here; `vfs` only ever talks to [`Store`].

mod error;
mod index;
mod staging;
mod store;

pub use error::{Error, Result};
pub use index::{Index, Overlay};
pub use staging::Staging;
pub use store::{Entry, EntryKind, FsStats, Store};
