//! fuser → vfs. Every handler has one shape: call the core, reply with its result or
//! map its error.

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use oxidrive_vfs::{Allocate, Attr, Caller, FileKind, KernelPages, OpenMode, RenameMode, SetAttr, TimeSet, Vfs};

use crate::errno::reply_errno;

/// How long the kernel may trust names and attributes without asking again.
const TTL: Duration = Duration::from_secs(1);
const GEN: Generation = Generation(0);

pub(crate) struct FuseAdapter {
    vfs: Arc<Vfs>,
    rt: tokio::runtime::Handle,
    /// What the kernel's page cache of each open file may hold (see `open`).
    pages: Arc<KernelPages>,
}

impl FuseAdapter {
    pub(crate) fn new(vfs: Arc<Vfs>, rt: tokio::runtime::Handle) -> Self {
        Self { vfs, rt, pages: Arc::new(KernelPages::new()) }
    }

    /// Runs `f` on the loop's thread until it first waits, and only then hands it to
    /// the runtime. Most metadata requests never wait (the index and the open files
    /// answer them): handing each to a runtime thread cost ~35 µs of wake-up, a third
    /// of a `chmod`. (Two loop threads serve the device, so one busy request does not
    /// stop the others.)
    fn run<F, Fut>(&self, f: F)
    where
        F: FnOnce(Arc<Vfs>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut fut = Box::pin(f(self.vfs.clone()));
        let _runtime = self.rt.enter();
        // Whatever registers this waker is polled again by the runtime right after the
        // spawn, with the task's own waker: no wake-up is lost.
        let mut cx = Context::from_waker(Waker::noop());
        if fut.as_mut().poll(&mut cx).is_pending() {
            self.rt.spawn(fut);
        }
    }

    /// `flush` or `fsync` of `fh`, then `done`. A commit waits for the disk, so it runs
    /// and replies on a blocking thread; with nothing to commit it ends here at once.
    fn run_commit(&self, fh: FileHandle, done: impl FnOnce(oxidrive_vfs::Result<()>) + Send + 'static) {
        if !self.vfs.has_uncommitted(fh.0) {
            return self.run(move |vfs| async move { done(vfs.flush(fh.0).await) });
        }
        let (vfs, rt) = (self.vfs.clone(), self.rt.clone());
        self.rt.spawn_blocking(move || done(oxidrive_vfs::block_on_blocking_thread(&rt, vfs.flush(fh.0))));
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: a.blksize,
        flags: 0,
    }
}

fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::Dir => FileType::Directory,
        FileKind::File => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
    }
}

fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid() }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(t),
    }
}

fn open_mode(flags: i32) -> OpenMode {
    let write = matches!(OpenFlags(flags).acc_mode(), OpenAccMode::O_WRONLY | OpenAccMode::O_RDWR);
    OpenMode { write, truncate: flags & libc::O_TRUNC != 0 }
}

/// What the kernel means by `FATTR_KILL_SUIDGID`, which fuser does not pass on: with
/// `FUSE_HANDLE_KILLPRIV_V2` it sets it on every chown of a non-folder, and on a truncate
/// by a caller without `CAP_FSETID`.
fn kill_suidgid(uid: Option<u32>, gid: Option<u32>, size: Option<u64>, req: &Request) -> bool {
    uid.is_some() || gid.is_some() || (size.is_some() && !may_keep_set_id_bits(req))
}

/// Whether the caller has `CAP_FSETID`. Only root is asked (in `/proc`, once per
/// truncate); anyone else is taken not to have it, as is usual.
fn may_keep_set_id_bits(req: &Request) -> bool {
    const CAP_FSETID: u32 = 4;
    if req.uid() != 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", req.pid())) else { return true };
    let effective = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim);
    effective.and_then(|hex| u64::from_str_radix(hex, 16).ok()).is_none_or(|caps| caps & (1 << CAP_FSETID) != 0)
}

fn owned(name: &OsStr) -> std::ffi::OsString {
    name.to_owned()
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Big requests cut per-call overhead; readdirplus saves a lookup per listed name.
        // (Read-ahead stays at what the kernel offers: fuser refuses more, and the kernel
        // caps it at 128 KiB anyway. Writes above 1 MiB are split by the kernel's
        // 256-page request limit, so a larger max_write buys nothing.)
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_PARALLEL_DIROPS);
        // Opens may keep cached pages (FOPEN_KEEP_CACHE), so the kernel must drop them
        // when a lookup or getattr shows another mtime, not only another size: that is
        // how a change made elsewhere and seen by a stat rather than a poll reaches a
        // descriptor that stays open. (Opens check the version themselves.)
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_AUTO_INVAL_DATA) {
            tracing::warn!(?missing, "kernel cannot drop cached pages on mtime changes");
        }
        // We clear set-user-ID and set-group-ID bits ourselves (see `kill_suidgid`), so
        // the kernel need not ask for `security.capability` before every write, nor for
        // the attributes before every chown: two round trips fewer per file of an untar.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2) {
            tracing::debug!(?missing, "kernel clears set-user-ID bits itself");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = owned(name);
        self.run(move |vfs| async move {
            match vfs.lookup(parent.0, &name).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), GEN),
                Err(e) => reply.error(reply_errno("lookup", &e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // Sent when the kernel evicts the inode, pages included.
        self.pages.forget(ino.0);
        self.vfs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.run(move |vfs| async move {
            match vfs.getattr(ino.0).await {
                Ok(a) => reply.attr(&TTL, &file_attr(&a)),
                Err(e) => reply.error(reply_errno("getattr", &e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            kill_suidgid: kill_suidgid(uid, gid, size, req),
        };
        self.run(move |vfs| async move {
            match vfs.setattr(ino.0, set, fh.map(|f| f.0)).await {
                Ok(a) => reply.attr(&TTL, &file_attr(&a)),
                Err(e) => reply.error(reply_errno("setattr", &e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.run(move |vfs| async move {
            match vfs.readlink(ino.0).await {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => reply.error(reply_errno("readlink", &e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Only regular files: devices, fifos and sockets cannot live on a provider.
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::EPERM);
            return;
        }
        let (name, who) = (owned(name), caller(req));
        self.run(move |vfs| async move {
            let create = async {
                let (attr, fh) = vfs
                    .create(parent.0, &name, mode & !umask, true, OpenMode { write: false, truncate: false }, who)
                    .await?;
                vfs.release(fh).await?;
                Ok::<_, oxidrive_vfs::Error>(attr)
            };
            match create.await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), GEN),
                Err(e) => reply.error(reply_errno("mknod", &e)),
            }
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let (name, who) = (owned(name), caller(req));
        self.run(move |vfs| async move {
            match vfs.mkdir(parent.0, &name, mode & !umask, who).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), GEN),
                Err(e) => reply.error(reply_errno("mkdir", &e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = owned(name);
        self.run(move |vfs| async move {
            match vfs.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(reply_errno("unlink", &e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = owned(name);
        self.run(move |vfs| async move {
            match vfs.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(reply_errno("rmdir", &e)),
            }
        });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let (name, target, who) = (owned(link_name), target.as_os_str().to_owned(), caller(req));
        self.run(move |vfs| async move {
            match vfs.symlink(parent.0, &name, &target, who).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), GEN),
                Err(e) => reply.error(reply_errno("symlink", &e)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            reply.error(Errno::EINVAL);
            return;
        };
        let (name, newname) = (owned(name), owned(newname));
        self.run(move |vfs| async move {
            match vfs.rename(parent.0, &name, newparent.0, &newname, mode).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(reply_errno("rename", &e)),
            }
        });
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        match self.vfs.link() {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), GEN),
            Err(e) => reply.error(reply_errno("link", &e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mode = open_mode(flags.0);
        let pages = self.pages.clone();
        self.run(move |vfs| async move {
            match vfs.open_keeping_pages(&pages, ino.0, mode).await {
                // Without KEEP_CACHE the kernel drops the file's pages at every open, so
                // a warm re-read would come through us again.
                Ok((fh, true)) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
                Ok((fh, false)) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(reply_errno("open", &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // A read of cached blocks never waits (a local pread and a decrypt), so it is
        // answered on the loop thread; a fetch from the provider moves to the runtime.
        // (Measured: cold S3 reads at 1.45 / 1.23 of OpenDAL's speed, plain / encrypted;
        // 1.38 / 1.08 when reads went to the runtime.)
        self.run(move |vfs| async move {
            match vfs.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(reply_errno("read", &e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Local-only (staging file), so answered inline without copying the buffer.
        let n = match self.vfs.write(fh.0, offset, data) {
            Ok(n) => n,
            Err(e) => return reply.error(reply_errno("write", &e)),
        };
        // The kernel asks only when the file has a set-ID bit and the writer may not keep it.
        if !write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            return reply.written(n);
        }
        self.run(move |vfs| async move {
            let kill = SetAttr { kill_suidgid: true, ..SetAttr::default() };
            match vfs.setattr(ino.0, kill, Some(fh.0)).await {
                Ok(_) => reply.written(n),
                Err(e) => reply.error(reply_errno("write", &e)),
            }
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // The kernel passes only these (and refuses a hole punched without keeping the
        // size itself); collapsing or inserting ranges is not supported.
        const KNOWN: i32 = libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !KNOWN != 0 {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        let how = Allocate {
            zero: mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0,
            keep_size: mode & libc::FALLOC_FL_KEEP_SIZE != 0,
        };
        match self.vfs.fallocate(fh.0, offset, length, how) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(reply_errno("fallocate", &e)),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.run(move |vfs| async move {
            match vfs.copy_range(fh_in.0, offset_in, fh_out.0, offset_out, len).await {
                // 8 MiB at most, so it fits.
                Ok(n) => reply.written(n as u32),
                Err(e) => reply.error(reply_errno("copy_file_range", &e)),
            }
        });
    }

    /// No ioctls here (what ext4 answers to a terminal's on a file: `isatty` by Python's
    /// `open`, for one). fuser's default would log a warning for each.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        tracing::trace!(cmd, "ioctl refused");
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    /// `SEEK_DATA`/`SEEK_HOLE`: ENOSYS makes the kernel answer them itself from now on
    /// (the whole file is data), as the provider would; without a warning per mount.
    fn lseek(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _offset: i64, _whence: i32, reply: ReplyLseek) {
        reply.error(Errno::ENOSYS);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.run_commit(fh, move |r| match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(reply_errno("flush", &e)),
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.run(move |vfs| async move {
            match vfs.release(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(reply_errno("release", &e)),
            }
        });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.run_commit(fh, move |r| match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(reply_errno("fsync", &e)),
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.run(move |vfs| async move {
            match vfs.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(reply_errno("opendir", &e)),
            }
        });
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = match self.vfs.readdir(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(reply_errno("readdir", &e)),
        };
        for (i, entry) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(entry.attr.ino), i as u64 + 1, file_type(entry.attr.kind), &entry.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let entries = match self.vfs.readdir(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(reply_errno("readdirplus", &e)),
        };
        for (i, entry) in entries.iter().enumerate().skip(offset as usize) {
            // The kernel takes a reference on every entry but "." and "..": counted
            // before the entry goes out, so that a forget racing this reply cannot let
            // go of a node the kernel is about to learn.
            let counted = entry.name != "." && entry.name != "..";
            let mut attr = entry.attr;
            if counted {
                attr.ino = self.vfs.remember_entry(ino.0, &entry.name, &entry.attr);
            }
            let full = reply.add(INodeNo(attr.ino), i as u64 + 1, &entry.name, &TTL, &file_attr(&attr), GEN);
            if full {
                if counted {
                    self.vfs.forget(attr.ino, 1);
                }
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.vfs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.run(move |vfs| async move {
            match vfs.fsyncdir(ino.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(reply_errno("fsyncdir", &e)),
            }
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.vfs.statfs() {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize),
            Err(e) => reply.error(reply_errno("statfs", &e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let create = flags & libc::XATTR_CREATE != 0;
        let replace = flags & libc::XATTR_REPLACE != 0;
        let (name, value) = (owned(name), value.to_vec());
        // Pinning a file downloads it: off the FUSE loop.
        self.run(move |vfs| async move {
            match vfs.setxattr(ino.0, &name, &value, create, replace).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(reply_errno("setxattr", &e)),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.vfs.getxattr(ino.0, name) {
            Ok(v) => reply_sized(reply, &v, size),
            Err(e) => reply.error(reply_errno("getxattr", &e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.vfs.listxattr(ino.0) {
            Ok(names) => {
                let mut buf = Vec::new();
                for n in names {
                    buf.extend_from_slice(n.as_bytes());
                    buf.push(0);
                }
                reply_sized(reply, &buf, size);
            }
            Err(e) => reply.error(reply_errno("listxattr", &e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.vfs.removexattr(ino.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(reply_errno("removexattr", &e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (name, who, open) = (owned(name), caller(req), open_mode(flags));
        let exclusive = flags & libc::O_EXCL != 0;
        self.run(move |vfs| async move {
            match vfs.create(parent.0, &name, mode & !umask, exclusive, open, who).await {
                Ok((a, fh)) => reply.created(&TTL, &file_attr(&a), GEN, FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(reply_errno("create", &e)),
            }
        });
    }
}

/// xattr replies: the size when asked for it, ERANGE when it does not fit.
fn reply_sized(reply: ReplyXattr, data: &[u8], size: u32) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() <= size as usize {
        reply.data(data);
    } else {
        reply.error(Errno::from_i32(libc::ERANGE));
    }
}
