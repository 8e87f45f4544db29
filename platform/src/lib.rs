//! Kernel interface adapters. Each translates requests into `oxidrive_vfs::Vfs` calls
//! and replies; no filesystem logic lives here.

#[cfg(unix)]
mod errno;
#[cfg(unix)]
mod fuse;
#[cfg(unix)]
mod mount;

#[cfg(unix)]
pub use mount::{MountHandle, MountOptions, mount};
