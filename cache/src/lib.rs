//! Local state between the namespace and the providers: the metadata index (POSIX
//! attributes providers cannot hold, symlinks, xattrs, and a mirror of what providers
//! showed, for working offline), encrypted local copies (the block cache and files
//! being changed), the journal of committed changes and the uploader that takes them
//! to the provider. `vfs` only ever talks to [`Store`].

mod conflicts;
mod copies;
mod error;
mod folder_rename;
mod health;
mod index;
mod index_cipher;
mod journaled_rename;
mod local_copy;
mod made_dirs;
mod path_locks;
mod poller;
mod reads;
mod rebase;
mod recents;
mod store;
mod streams;
mod trash;
mod trash_index;
mod uploader;

pub use conflicts::utc_stamp;
pub use copies::{Copies, sweep_copies};
pub use error::{Error, Result};
pub use index::{CachedEntry, Index, JournalEntry, Overlay, RemoteEntry};
pub use local_copy::{CopyId, LocalCopy};
pub use poller::{ChangeHook, PollSummary};
pub use store::{Entry, EntryKind, FsStats, Store, StoreConfig};
pub use trash::{Clock, TRASH_DIR, TrashEntry};
pub use trash_index::{Tombstone, TrashItem};
pub use uploader::{FileState, StoreStatus};
