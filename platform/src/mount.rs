use std::io;
use std::path::Path;
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use oxidrive_vfs::Vfs;

use crate::fuse::FuseAdapter;

#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Ask fusermount3 to unmount if this process dies (needs root or `user_allow_other`).
    pub auto_unmount: bool,
    /// Let other users (and root) in; needs the same permission.
    pub allow_other: bool,
}

/// A live mount. Dropping it unmounts.
pub struct MountHandle {
    session: Option<BackgroundSession>,
}

/// Mounts `vfs` at `mountpoint`, serving requests on the given runtime.
///
/// Threading: two fuser loops read requests (each with its own /dev/fuse fd) and hand
/// every operation that may touch a provider to the tokio runtime, replying from there;
/// fuser replies are `Send`. So a slow provider request occupies a task, never a loop,
/// and lookups, reads and writes of other files keep flowing.
pub fn mount(
    vfs: Arc<Vfs>,
    mountpoint: &Path,
    rt: tokio::runtime::Handle,
    opts: &MountOptions,
) -> io::Result<MountHandle> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("oxidrive".into()),
        MountOption::Subtype("oxidrive".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.auto_unmount {
        config.mount_options.push(MountOption::AutoUnmount);
    }
    config.acl = if opts.allow_other {
        SessionACL::All
    } else if opts.auto_unmount {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(2);
    config.clone_fd = true;
    let fs = FuseAdapter::new(vfs.clone(), rt);
    let session = fuser::spawn_mount(fs, mountpoint, &config)?;
    vfs.set_kernel_notify(Box::new(FuseNotify(session.notifier())));
    Ok(MountHandle { session: Some(session) })
}

/// Invalidations through fuser's notifier. "Not known" answers (the kernel had
/// forgotten the entry already) are expected and ignored.
struct FuseNotify(fuser::Notifier);

impl oxidrive_vfs::KernelNotify for FuseNotify {
    fn inval_entry(&self, parent: u64, name: &str) {
        if let Err(e) = self.0.inval_entry(fuser::INodeNo(parent), std::ffi::OsStr::new(name))
            && e.raw_os_error() != Some(libc::ENOENT)
        {
            tracing::debug!(parent, name, error = %e, "kernel entry invalidation failed");
        }
    }

    fn inval_inode(&self, ino: u64) {
        if let Err(e) = self.0.inval_inode(fuser::INodeNo(ino), 0, 0)
            && e.raw_os_error() != Some(libc::ENOENT)
        {
            tracing::debug!(ino, error = %e, "kernel inode invalidation failed");
        }
    }
}

impl MountHandle {
    /// True once the kernel side is gone (unmounted from elsewhere).
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Waits for the session to end after an unmount.
    pub fn join(mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.join(),
            None => Ok(()),
        }
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if let Some(s) = self.session.take()
            && let Err(e) = s.umount_and_join()
        {
            tracing::warn!(error = %e, "unmount on drop failed");
        }
    }
}
