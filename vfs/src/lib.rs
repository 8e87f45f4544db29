//! The namespace and POSIX rules of oxidrive, independent of any kernel interface.
//!
//! `platform/` turns kernel requests into calls on [`Vfs`] and maps [`ErrorKind`]
//! to errno (or NTSTATUS); nothing here knows FUSE exists.

mod attr;
mod error;
mod fs;
mod inode;
mod layout;
mod name;
mod open_file;
mod page_cache;
mod recents;
mod trash_control;
mod trash_names;

pub use attr::{Allocate, Attr, Caller, DirEntry, FileKind, SetAttr, StatFs, TimeSet};
pub use error::{Error, ErrorKind, Result};
pub use fs::{KernelNotify, OpenMode, RenameMode, RootSpec, Vfs, ViewConfig, block_on_blocking_thread};
pub use layout::ROOT_INO;
pub use page_cache::KernelPages;
pub use trash_control::TrashListing;
