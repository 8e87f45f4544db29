//! The fixed top of the tree: the root and its four views.

pub const ROOT_INO: u64 = 1;
pub(crate) const MY_DRIVE_INO: u64 = 2;
pub(crate) const SHARED_INO: u64 = 3;
pub(crate) const RECENTS_INO: u64 = 4;
pub(crate) const TRASH_INO: u64 = 5;
/// Provider roots and everything below them are numbered from here.
pub(crate) const FIRST_DYNAMIC_INO: u64 = 16;

pub(crate) const VIEWS: [(u64, &str); 4] =
    [(MY_DRIVE_INO, "My Drive"), (SHARED_INO, "Shared"), (RECENTS_INO, "Recents"), (TRASH_INO, "Trash")];
