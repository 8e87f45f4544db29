use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    Symlink,
}

/// Attributes of one inode, in the shape every kernel interface needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub blksize: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(SystemTime),
}

impl TimeSet {
    pub fn resolve(self) -> SystemTime {
        match self {
            TimeSet::Now => SystemTime::now(),
            TimeSet::At(t) => t,
        }
    }
}

/// A `setattr` request; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    /// Clear a file's set-user-ID bit, and its set-group-ID bit if group-executable,
    /// as a write, truncate or chown by someone else must (the kernel leaves that to
    /// us so that it need not ask before every write).
    pub kill_suidgid: bool,
}

/// What an `fallocate` does to a file. Space is not reserved anywhere (providers store
/// whole objects, and the local copy is sparse): only the size and contents change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocate {
    /// The range reads as zeros afterwards (punching a hole, zeroing a range).
    pub zero: bool,
    /// The size stays; otherwise a file shorter than the range's end grows to it.
    pub keep_size: bool,
}

/// `mode` without the bits a change by another must clear (see `SetAttr::kill_suidgid`).
pub(crate) fn killed_suidgid(mode: u32) -> u32 {
    let sgid = if mode & 0o010 != 0 { 0o2000 } else { 0 };
    mode & !(0o4000 | sgid)
}

/// Who asks: new files belong to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}
