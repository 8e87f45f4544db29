use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

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
    vfs.set_kernel_notify(Box::new(FuseNotify::start(session.notifier())?));
    Ok(MountHandle { session: Some(session) })
}

/// How long a caller waits for its invalidation to reach the kernel.
const INVAL_WAIT: Duration = Duration::from_millis(200);

enum Inval {
    Entry(u64, String),
    /// Attributes and every cached page.
    Inode(u64),
}

/// Invalidations through fuser's notifier, written by a thread of their own. The kernel
/// holds a notification until requests in flight on that node are answered (a page
/// being read, a folder locked by an unlink in it), and such an answer may wait for
/// what the caller holds: an upload reports a conflict while holding its path's lock,
/// which an unlink of that path waits for. So a caller waits for its invalidation only
/// briefly: normally it has reached the kernel when `inval_*` returns (a read after
/// `oxidrive sync --now` sees the new bytes), and a stuck one never blocks the caller.
/// While one is stuck, later ones queue behind it without waiting (a poll with many
/// changes must not wait `INVAL_WAIT` for each).
struct FuseNotify {
    queue: mpsc::Sender<(Inval, mpsc::SyncSender<()>)>,
    stuck: Arc<AtomicBool>,
}

impl FuseNotify {
    fn start(notifier: fuser::Notifier) -> io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<(Inval, mpsc::SyncSender<()>)>();
        let stuck = Arc::new(AtomicBool::new(false));
        let unstuck = stuck.clone();
        // Ends when the sender does (with the Vfs).
        std::thread::Builder::new().name("oxidrive-inval".into()).spawn(move || {
            for (inval, done) in jobs {
                send(&notifier, &inval);
                unstuck.store(false, Ordering::Release);
                let _ = done.try_send(());
            }
        })?;
        Ok(Self { queue, stuck })
    }

    fn submit(&self, inval: Inval) {
        let (done, sent) = mpsc::sync_channel(1);
        if self.queue.send((inval, done)).is_err() || self.stuck.load(Ordering::Acquire) {
            return;
        }
        if sent.recv_timeout(INVAL_WAIT).is_err() {
            self.stuck.store(true, Ordering::Release);
            tracing::debug!("a kernel invalidation waits for a request in flight; going on without it");
        }
    }
}

/// "Not known" answers (the kernel had forgotten the node already) are expected.
fn send(notifier: &fuser::Notifier, inval: &Inval) {
    let result = match inval {
        Inval::Entry(parent, name) => notifier.inval_entry(fuser::INodeNo(*parent), std::ffi::OsStr::new(name)),
        Inval::Inode(ino) => notifier.inval_inode(fuser::INodeNo(*ino), 0, 0),
    };
    if let Err(e) = result
        && e.raw_os_error() != Some(libc::ENOENT)
    {
        match inval {
            Inval::Entry(parent, name) => tracing::debug!(parent, name, error = %e, "kernel entry invalidation failed"),
            Inval::Inode(ino) => tracing::debug!(ino, error = %e, "kernel inode invalidation failed"),
        }
    }
}

impl oxidrive_vfs::KernelNotify for FuseNotify {
    fn inval_entry(&self, parent: u64, name: &str) {
        self.submit(Inval::Entry(parent, name.to_owned()));
    }

    fn inval_inode(&self, ino: u64) {
        self.submit(Inval::Inode(ino));
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
