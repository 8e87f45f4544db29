//! The filesystem core driven directly, without FUSE, over a real local provider.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use oxidrive_cache::{Copies, Index, Store, StoreConfig};
use oxidrive_crypto::keys::MasterKey;
use oxidrive_providers::{Backend, Provider, ProviderKind, ProviderSpec};
use oxidrive_vfs::{Caller, ErrorKind, FileKind, OpenMode, ROOT_INO, RenameMode, RootSpec, SetAttr, Vfs, ViewConfig};

const ME: Caller = Caller { uid: 1000, gid: 1000 };
const RW: OpenMode = OpenMode { write: true, truncate: false };
const RO: OpenMode = OpenMode { write: false, truncate: false };

struct Fixture {
    dir: tempfile::TempDir,
    backing: std::path::PathBuf,
    store: Arc<Store>,
    vfs: Vfs,
    root: u64,
}

impl Fixture {
    /// Uploads everything committed so far (uploads otherwise wait an hour here).
    async fn sync(&self) {
        assert!(self.store.wait_uploaded(Some(tokio::time::Instant::now() + Duration::from_secs(30))).await);
    }
}

async fn fixture() -> Fixture {
    fixture_with(false).await
}

async fn fixture_with(encrypt: bool) -> Fixture {
    fixture_in(tempfile::tempdir().unwrap(), encrypt).await
}

/// A vfs over one local provider kept in `dir`, with its index and local copies there
/// too, so a second fixture on the same `dir` is the next run of the first.
async fn fixture_in(dir: tempfile::TempDir, encrypt: bool) -> Fixture {
    let backing = dir.path().join("store");
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    let spec = ProviderSpec {
        name: "Local".into(),
        kind: ProviderKind::Local { path: backing.clone() },
        shared: false,
        encrypt,
    };
    let backend = Backend::from_spec(&spec).unwrap();
    let provider = if encrypt {
        Provider::encrypted("Local", backend, MasterKey::from_bytes([9; 32])).unwrap()
    } else {
        Provider::plain("Local", backend)
    };
    let index = Arc::new(Index::open(&dir.path().join("index.sqlite"), Some(&[5; 32])).unwrap());
    let copies = Arc::new(Copies::new(&copies, [3; 32], 1 << 30, index.clone()));
    let config = StoreConfig {
        copies,
        write_back: Duration::from_secs(3600),
        trash_retention: Duration::from_secs(30 * 86_400),
        clock: oxidrive_cache::Clock::system(),
    };
    let store = Arc::new(Store::new("Local", provider, index, config).unwrap());
    store.start_uploads();
    let root = RootSpec { name: "Local".into(), shared: false, store: Ok(store.clone()) };
    let vfs = Vfs::new(vec![root], ViewConfig::default(), ME).unwrap();
    let drive = vfs.lookup(ROOT_INO, OsStr::new("My Drive")).await.unwrap().ino;
    let root = vfs.lookup(drive, OsStr::new("Local")).await.unwrap().ino;
    Fixture { dir, backing, store, vfs, root }
}

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[tokio::test]
async fn write_is_committed_at_flush_and_reaches_the_provider_later() {
    let f = fixture().await;
    let (attr, fh) = f.vfs.create(f.root, n("a.txt"), 0o640, true, RW, ME).await.unwrap();
    assert_eq!((attr.kind, attr.perm, attr.uid), (FileKind::File, 0o640, 1000));
    f.vfs.write(fh, 0, b"hello world").unwrap();
    assert_eq!(f.vfs.read(fh, 6, 100).await.unwrap(), b"world");
    f.vfs.flush(fh).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    // Committed, not uploaded: the provider has nothing yet, the namespace has it all.
    assert!(!f.backing.join("a.txt").exists());
    assert_eq!(f.store.status().pending_files, 1);
    assert_eq!(f.vfs.lookup(f.root, n("a.txt")).await.unwrap().size, 11);
    let ro = f.vfs.open(attr.ino, RO).await.unwrap();
    assert_eq!(f.vfs.read(ro, 0, 5).await.unwrap(), b"hello");
    assert_eq!(f.vfs.write(ro, 0, b"x").unwrap_err().kind(), ErrorKind::BadHandle);
    f.sync().await;
    assert_eq!(std::fs::read(f.backing.join("a.txt")).unwrap(), b"hello world");
    assert_eq!(f.store.status().pending_files, 0);
    assert_eq!(f.vfs.read(ro, 0, 100).await.unwrap(), b"hello world");
}

#[tokio::test]
async fn a_file_deleted_before_upload_never_reaches_the_provider() {
    let f = fixture().await;
    let (_, fh) = f.vfs.create(f.root, n("swap.tmp"), 0o600, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"scratch").unwrap();
    f.vfs.flush(fh).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    let (_, fh) = f.vfs.create(f.root, n("draft"), 0o600, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"kept").unwrap();
    f.vfs.release(fh).await.unwrap();
    f.vfs.rename(f.root, n("draft"), f.root, n("final"), RenameMode::Replace).await.unwrap();
    f.vfs.unlink(f.root, n("swap.tmp")).await.unwrap();
    f.sync().await;
    let names: Vec<_> = std::fs::read_dir(&f.backing)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".oxidrive")
        .collect();
    assert_eq!(names, ["final"]);
    assert_eq!(std::fs::read(f.backing.join("final")).unwrap(), b"kept");
    // Locally only the uploaded file's copy is left, kept as its cache.
    assert_eq!(std::fs::read_dir(f.dir.path().join("copies")).unwrap().count(), 1);
    assert_eq!(f.store.file_state("final"), oxidrive_cache::FileState::Cached);
    assert_eq!(f.store.file_state("swap.tmp"), oxidrive_cache::FileState::CloudOnly);
}

#[tokio::test]
async fn committed_changes_survive_a_restart_and_upload_then() {
    let f = fixture().await;
    let (_, fh) = f.vfs.create(f.root, n("journal.txt"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, &[7u8; 300_000]).unwrap();
    f.vfs.flush(fh).await.unwrap();
    // Written after the last commit: may or may not survive, but never tears a block.
    f.vfs.write(fh, 0, b"uncommitted").unwrap();
    // The process ends without uploading (the write-back delay is an hour).
    let f = restart(f, |_| {}).await;
    assert_eq!(f.store.status().pending_files, 1);
    assert!(!f.backing.join("journal.txt").exists());
    let attr = f.vfs.lookup(f.root, n("journal.txt")).await.unwrap();
    assert_eq!(attr.size, 300_000);
    f.sync().await;
    let got = std::fs::read(f.backing.join("journal.txt")).unwrap();
    assert_eq!(got.len(), 300_000);
    assert!(got.starts_with(&[7u8; 11]) || got.starts_with(b"uncommitted"), "neither version");
    assert!(got[11..].iter().all(|&b| b == 7));
}

/// Ends a fixture's run (no uploads) and starts the next one on the same state. A mount
/// holds its index exclusively: the next one opens it once the last background task of
/// this one let go of the store.
async fn restart(f: Fixture, before: impl FnOnce(&std::path::Path)) -> Fixture {
    let Fixture { dir, vfs, store, .. } = f;
    drop(vfs);
    let old = Arc::downgrade(&store);
    drop(store);
    for _ in 0..1000 {
        if old.strong_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(old.strong_count(), 0, "the old store is still alive");
    before(dir.path());
    fixture_in(dir, false).await
}

#[tokio::test]
async fn a_small_commit_survives_losing_its_unsynced_copy() {
    let f = fixture().await;
    let (attr, fh) = f.vfs.create(f.root, n("small.txt"), 0o600, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"committed contents").unwrap();
    // Attribute changes while the file has uncommitted writes go with its commit.
    let set = SetAttr { mode: Some(0o640), uid: Some(7), ..Default::default() };
    let shown = f.vfs.setattr(attr.ino, set, Some(fh)).await.unwrap();
    assert_eq!((shown.perm, shown.uid, shown.gid), (0o640, 7, 1000));
    f.vfs.flush(fh).await.unwrap();
    f.vfs.write(fh, 0, b"UNCOMMITTED").unwrap();
    // A power cut: the copy file of a small commit was never synced, so it may be
    // gone or torn; the journal holds the committed contents.
    let f = restart(f, |dir| {
        for e in std::fs::read_dir(dir.join("copies")).unwrap() {
            std::fs::write(e.unwrap().path(), b"torn").unwrap();
        }
    })
    .await;
    let attr = f.vfs.lookup(f.root, n("small.txt")).await.unwrap();
    assert_eq!((attr.size, attr.perm, attr.uid), (18, 0o640, 7));
    let ro = f.vfs.open(attr.ino, RO).await.unwrap();
    assert_eq!(f.vfs.read(ro, 0, 100).await.unwrap(), b"committed contents");
    f.vfs.release(ro).await.unwrap();
    f.sync().await;
    assert_eq!(std::fs::read(f.backing.join("small.txt")).unwrap(), b"committed contents");
}

#[tokio::test]
async fn rename_of_a_folder_carries_its_pending_files() {
    let f = fixture_with(true).await;
    let d = f.vfs.mkdir(f.root, n("d"), 0o755, ME).await.unwrap().ino;
    let (_, fh) = f.vfs.create(d, n("x"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"inside").unwrap();
    f.vfs.release(fh).await.unwrap();
    f.vfs.rename(f.root, n("d"), f.root, n("e"), RenameMode::Replace).await.unwrap();
    f.sync().await;
    let e = f.vfs.lookup(f.root, n("e")).await.unwrap().ino;
    let x = f.vfs.lookup(e, n("x")).await.unwrap();
    assert_eq!(f.store.status().pending_files, 0);
    let ro = f.vfs.open(x.ino, RO).await.unwrap();
    assert_eq!(f.vfs.read(ro, 0, 100).await.unwrap(), b"inside");
    assert_eq!(f.vfs.lookup(f.root, n("d")).await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn unlinked_open_file_keeps_working_and_never_reappears() {
    let f = fixture().await;
    let (attr, fh) = f.vfs.create(f.root, n("gone"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"before").unwrap();
    f.vfs.flush(fh).await.unwrap();
    f.vfs.unlink(f.root, n("gone")).await.unwrap();
    assert!(!f.backing.join("gone").exists());
    f.vfs.write(fh, 6, b"+after").unwrap();
    assert_eq!(f.vfs.read(fh, 0, 64).await.unwrap(), b"before+after");
    assert_eq!(f.vfs.getattr(attr.ino).await.unwrap().nlink, 0);
    f.vfs.flush(fh).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    assert!(!f.backing.join("gone").exists());
    assert_eq!(f.vfs.lookup(f.root, n("gone")).await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn rename_rules() {
    let f = fixture().await;
    let d = f.vfs.mkdir(f.root, n("d"), 0o755, ME).await.unwrap().ino;
    let e = f.vfs.mkdir(f.root, n("e"), 0o755, ME).await.unwrap().ino;
    let (_, fh) = f.vfs.create(d, n("x"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    let (_, fh) = f.vfs.create(f.root, n("file"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    let kind = |r: oxidrive_vfs::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        kind(f.vfs.rename(f.root, n("e"), f.root, n("d"), RenameMode::Replace).await),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(
        kind(f.vfs.rename(f.root, n("file"), f.root, n("d"), RenameMode::Replace).await),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        kind(f.vfs.rename(f.root, n("d"), f.root, n("file"), RenameMode::Replace).await),
        ErrorKind::NotADirectory
    );
    assert_eq!(kind(f.vfs.rename(f.root, n("d"), d, n("inner"), RenameMode::Replace).await), ErrorKind::InvalidInput);
    assert_eq!(kind(f.vfs.rename(f.root, n("d"), f.root, n("e"), RenameMode::Exchange).await), ErrorKind::InvalidInput);
    assert_eq!(kind(f.vfs.rename(f.root, n("file"), d, n("x"), RenameMode::NoReplace).await), ErrorKind::AlreadyExists);
    // A directory over an empty one replaces it, taking its contents along.
    f.vfs.rename(f.root, n("d"), f.root, n("e"), RenameMode::Replace).await.unwrap();
    f.sync().await;
    assert!(f.backing.join("e/x").is_file());
    assert!(!f.backing.join("d").exists());
    let _ = e;
    // The moved directory's inode still resolves to the new place.
    let x = f.vfs.lookup(d, n("x")).await.unwrap();
    assert_eq!(x.kind, FileKind::File);
}

#[tokio::test]
async fn truncate_without_handle_is_committed_at_once() {
    let f = fixture().await;
    let (attr, fh) = f.vfs.create(f.root, n("t"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"0123456789").unwrap();
    f.vfs.release(fh).await.unwrap();
    let a = f.vfs.setattr(attr.ino, SetAttr { size: Some(4), ..Default::default() }, None).await.unwrap();
    assert_eq!(a.size, 4);
    f.sync().await;
    assert_eq!(std::fs::read(f.backing.join("t")).unwrap(), b"0123");
    let a = f
        .vfs
        .setattr(attr.ino, SetAttr { size: Some(6), mode: Some(0o600), ..Default::default() }, None)
        .await
        .unwrap();
    assert_eq!((a.size, a.perm), (6, 0o600));
    f.sync().await;
    assert_eq!(std::fs::read(f.backing.join("t")).unwrap(), b"0123\0\0");
}

#[tokio::test]
async fn fixed_folders_refuse_changes() {
    let f = fixture().await;
    let err = f.vfs.mkdir(ROOT_INO, n("x"), 0o755, ME).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotPermitted);
    let recents = f.vfs.lookup(ROOT_INO, n("Recents")).await.unwrap().ino;
    let err = f.vfs.create(recents, n("x"), 0o644, true, RW, ME).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly);
    let err = f.vfs.mkdir(f.root, n(".oxidrive"), 0o755, ME).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotPermitted);
    assert_eq!(f.vfs.lookup(f.root, n(".oxidrive")).await.unwrap_err().kind(), ErrorKind::NotFound);
}

/// Everything whose name or bytes the program chose, found anywhere in the backing store.
fn leaked(dir: &std::path::Path, marker: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().as_bytes().windows(marker.len()).any(|w| w == marker) {
            hits.push(path.display().to_string());
        }
        if path.is_dir() {
            hits.extend(leaked(&path, marker));
        } else if std::fs::read(&path).unwrap().windows(marker.len()).any(|w| w == marker) {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[tokio::test]
async fn encrypted_store_round_trips_and_shows_nothing() {
    let f = fixture_with(true).await;
    let d = f.vfs.mkdir(f.root, n("dir-marker"), 0o755, ME).await.unwrap().ino;
    let (attr, fh) = f.vfs.create(d, n("file-marker"), 0o644, true, RW, ME).await.unwrap();
    let data: Vec<u8> = b"content-marker ".iter().copied().cycle().take(200_000).collect();
    f.vfs.write(fh, 0, &data).unwrap();
    f.vfs.release(fh).await.unwrap();
    // The committed local copy is encrypted too.
    assert_eq!(leaked(f.dir.path(), b"marker"), Vec::<String>::new());
    f.sync().await;
    assert_eq!(leaked(f.dir.path(), b"marker"), Vec::<String>::new());
    // A fresh open reads through the provider: ranges across chunk edges decrypt exactly.
    let ro = f.vfs.open(attr.ino, RO).await.unwrap();
    assert_eq!(f.vfs.read(ro, 65_530, 20).await.unwrap(), &data[65_530..65_550]);
    assert_eq!(f.vfs.read(ro, 199_990, 100).await.unwrap(), &data[199_990..]);
    f.vfs.release(ro).await.unwrap();
    // Rename to another directory re-binds the content to its new name.
    f.vfs.rename(d, n("file-marker"), f.root, n("moved"), RenameMode::Replace).await.unwrap();
    let moved = f.vfs.lookup(f.root, n("moved")).await.unwrap();
    assert_eq!(moved.size, 200_000);
    let ro = f.vfs.open(moved.ino, RO).await.unwrap();
    assert_eq!(f.vfs.read(ro, 0, 200_000).await.unwrap(), data);
    f.vfs.rmdir(f.root, n("dir-marker")).await.unwrap();
    let fh = f.vfs.opendir(f.root).await.unwrap();
    let names: Vec<String> = f.vfs.readdir(fh).unwrap().iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, [".", "..", "moved"]);
}

/// FUSE sends `release` without waiting for it, so the release of the last handle can
/// run while the next `open` of the file is under way. The new handle must still share
/// the file's open state: `shell > file` (open, then truncate through another request,
/// then write) must leave exactly the new bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_racing_the_last_release_shares_the_open_state() {
    let f = fixture().await;
    let (attr, fh) = f.vfs.create(f.root, n("a.txt"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"hello, provider").unwrap();
    f.vfs.release(fh).await.unwrap();
    let rt = tokio::runtime::Handle::current();
    for round in 0..300 {
        let reader = f.vfs.open(attr.ino, RO).await.unwrap();
        let barrier = std::sync::Barrier::new(2);
        let writer = tokio::task::block_in_place(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    barrier.wait();
                    rt.block_on(f.vfs.release(reader)).unwrap();
                });
                let writer = s.spawn(|| {
                    barrier.wait();
                    rt.block_on(f.vfs.open(attr.ino, RW)).unwrap()
                });
                writer.join().unwrap()
            })
        });
        let truncate = SetAttr { size: Some(0), ..Default::default() };
        f.vfs.setattr(attr.ino, truncate, Some(writer)).await.unwrap();
        f.vfs.write(writer, 0, b"bye").unwrap();
        f.vfs.flush(writer).await.unwrap();
        f.vfs.release(writer).await.unwrap();
        let check = f.vfs.open(attr.ino, RO).await.unwrap();
        assert_eq!(f.vfs.read(check, 0, 64).await.unwrap(), b"bye", "round {round}");
        f.vfs.release(check).await.unwrap();
        // Back to the long contents for the next round.
        let w = f.vfs.open(attr.ino, RW).await.unwrap();
        f.vfs.write(w, 0, b"hello, provider").unwrap();
        f.vfs.release(w).await.unwrap();
    }
}

#[tokio::test]
async fn a_new_file_is_recorded_by_its_first_commit() {
    let f = fixture().await;
    let (_, fh) = f.vfs.create(f.root, n("kept.txt"), 0o640, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"closed").unwrap();
    f.vfs.release(fh).await.unwrap();
    let (open, fh) = f.vfs.create(f.root, n("open.txt"), 0o604, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"never closed").unwrap();
    // Seen everywhere with its attributes before any commit...
    let attr = f.vfs.getattr(open.ino).await.unwrap();
    assert_eq!((attr.perm, attr.uid, attr.size), (0o604, 1000, 12));
    let dh = f.vfs.opendir(f.root).await.unwrap();
    let names: Vec<String> = f.vfs.readdir(dh).unwrap().iter().map(|e| e.name.clone()).collect();
    assert!(names.iter().any(|n| n == "open.txt"), "{names:?}");
    // ...but not committed: not counted as pending, not waited for, not uploaded.
    assert_eq!(f.store.status().pending_files, 1);
    f.sync().await;
    assert_eq!(std::fs::read(f.backing.join("kept.txt")).unwrap(), b"closed");
    assert!(!f.backing.join("open.txt").exists());
    // A crash before its first close loses it whole; the closed file keeps its mode.
    let f = restart(f, |_| {}).await;
    assert_eq!(f.vfs.lookup(f.root, n("open.txt")).await.unwrap_err().kind(), ErrorKind::NotFound);
    let attr = f.vfs.lookup(f.root, n("kept.txt")).await.unwrap();
    assert_eq!((attr.perm, attr.uid, attr.size), (0o640, 1000, 6));
}

#[tokio::test]
async fn lookups_of_new_names_in_folders_we_made_do_not_ask_the_provider() {
    let f = fixture().await;
    let a = f.vfs.mkdir(f.root, n("a"), 0o755, ME).await.unwrap();
    // On the provider now, and known empty.
    f.sync().await;
    let made = std::time::Instant::now();
    // A subfolder made in it (tar makes them before the files) keeps it known.
    let b = f.vfs.mkdir(a.ino, n("b"), 0o750, ME).await.unwrap();
    assert_eq!((b.kind, b.perm), (FileKind::Dir, 0o750));
    // Written behind oxidrive's back: within the kernel's attribute timeout (1 s) the
    // folder's known contents answer, so it is not seen...
    std::fs::write(f.backing.join("a/outside"), b"x").unwrap();
    let outside = f.vfs.lookup(a.ino, n("outside")).await;
    assert_eq!(f.vfs.lookup(a.ino, n("b")).await.unwrap().ino, b.ino);
    let (_, fh) = f.vfs.create(a.ino, n("new"), 0o600, true, RW, ME).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    let deeper = f.vfs.lookup(b.ino, n("deeper")).await;
    // (A machine stalled for most of that second proves nothing either way.)
    if made.elapsed() < Duration::from_millis(800) {
        assert_eq!(outside.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(deeper.unwrap_err().kind(), ErrorKind::NotFound);
    }
    // ...and after it, the provider is asked again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(f.vfs.lookup(a.ino, n("outside")).await.unwrap().size, 1);
    assert_eq!(f.vfs.lookup(a.ino, n("b")).await.unwrap().ino, b.ino);
    assert_eq!(f.vfs.lookup(a.ino, n("new")).await.unwrap().size, 0);
}

#[tokio::test]
async fn folders_are_journaled_and_made_on_the_provider_before_their_files() {
    let f = fixture().await;
    let a = f.vfs.mkdir(f.root, n("a"), 0o750, ME).await.unwrap();
    let b = f.vfs.mkdir(a.ino, n("b"), 0o700, ME).await.unwrap();
    let (_, fh) = f.vfs.create(b.ino, n("f.txt"), 0o640, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"hello").unwrap();
    f.vfs.release(fh).await.unwrap();
    // Symlinks are journaled too.
    let link = f.vfs.symlink(b.ino, n("link"), n("f.txt"), ME).await.unwrap();
    assert_eq!((link.kind, link.size), (FileKind::Symlink, 5));
    let gone = f.vfs.mkdir(f.root, n("gone"), 0o755, ME).await.unwrap();
    f.vfs.rmdir(f.root, n("gone")).await.unwrap();
    // Nothing reached the provider: folders wait for the write-back delay like files,
    // and answer from the journal meanwhile.
    assert!(!f.backing.join("a").exists() && !f.backing.join("gone").exists());
    assert_eq!(f.store.status().pending_files, 4);
    assert_eq!(f.store.file_state("a/b"), oxidrive_cache::FileState::Dirty);
    let dh = f.vfs.opendir(a.ino).await.unwrap();
    let names: Vec<String> = f.vfs.readdir(dh).unwrap().iter().map(|e| e.name.clone()).collect();
    assert!(names.iter().any(|n| n == "b"), "{names:?}");
    assert_eq!(f.vfs.getattr(a.ino).await.unwrap().perm, 0o750);
    assert_eq!(f.vfs.lookup(f.root, n("gone")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_ne!(gone.ino, a.ino);
    // Renaming a made folder is the journal's alone, and it all survives a restart.
    f.vfs.rename(f.root, n("a"), f.root, n("c"), RenameMode::Replace).await.unwrap();
    assert!(!f.backing.join("c").exists());
    let f = restart(f, |_| {}).await;
    assert_eq!(f.store.status().pending_files, 4);
    let c = f.vfs.lookup(f.root, n("c")).await.unwrap();
    assert_eq!((c.kind, c.perm), (FileKind::Dir, 0o750));
    let b = f.vfs.lookup(c.ino, n("b")).await.unwrap();
    assert_eq!(f.vfs.lookup(b.ino, n("f.txt")).await.unwrap().size, 5);
    let link = f.vfs.lookup(b.ino, n("link")).await.unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert_eq!(f.vfs.readlink(link.ino).await.unwrap(), "f.txt");
    // An uploaded file moved into a made folder needs the folder there at once.
    let (_, fh) = f.vfs.create(f.root, n("up.txt"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"up").unwrap();
    f.vfs.release(fh).await.unwrap();
    f.sync().await;
    let new = f.vfs.mkdir(f.root, n("new"), 0o755, ME).await.unwrap();
    f.vfs.rename(f.root, n("up.txt"), new.ino, n("up.txt"), RenameMode::Replace).await.unwrap();
    assert_eq!(std::fs::read(f.backing.join("new/up.txt")).unwrap(), b"up");
    assert!(f.backing.join("c/b").is_dir());
    assert_eq!(std::fs::read(f.backing.join("c/b/f.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(f.backing.join("c/b/link")).unwrap(), b"f.txt");
    assert!(!f.backing.join("a").exists() && !f.backing.join("gone").exists());
    assert_eq!(f.store.status().pending_files, 0);
    assert_eq!(f.vfs.getattr(c.ino).await.unwrap().perm, 0o750);
}

#[tokio::test]
async fn a_folder_the_provider_refuses_holds_back_only_what_is_inside_it() {
    let f = fixture().await;
    let a = f.vfs.mkdir(f.root, n("a"), 0o755, ME).await.unwrap();
    f.vfs.mkdir(a.ino, n("sub"), 0o755, ME).await.unwrap();
    let b = f.vfs.mkdir(f.root, n("b"), 0o755, ME).await.unwrap();
    let (_, fh) = f.vfs.create(b.ino, n("f.txt"), 0o644, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"in b").unwrap();
    f.vfs.release(fh).await.unwrap();
    // Meanwhile another device put a file where folder "a" is to go.
    std::fs::create_dir_all(&f.backing).unwrap();
    std::fs::write(f.backing.join("a"), b"not a folder").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    assert!(!f.store.wait_uploaded(Some(deadline)).await, "folder a cannot be made");
    // "b" sorts after "a/sub" and still reached the provider, with its file.
    assert!(f.backing.join("b").is_dir());
    assert_eq!(std::fs::read(f.backing.join("b/f.txt")).unwrap(), b"in b");
    // "a" and "a/sub" wait in the journal; the other device's file is untouched.
    assert_eq!(std::fs::read(f.backing.join("a")).unwrap(), b"not a folder");
    let status = f.store.status();
    assert_eq!(status.pending_files, 2);
    let error = status.last_error.map(|(_, e)| e).unwrap_or_default();
    assert!(error.contains("a file of this name is on the provider"), "{error}");
    let sub = f.vfs.lookup(a.ino, n("sub")).await.unwrap();
    assert_eq!(sub.kind, FileKind::Dir);
}

/// `readdirplus` racing a forget: the listing numbered an entry, then the kernel
/// forgot that node (its last reference), and the reply still carries the entry. The
/// number sent must be one the table knows, or every later use of it is `ENOENT` (seen
/// as files vanishing for `ls -l` and `find` while a poll made the kernel forget).
#[tokio::test]
async fn an_entry_forgotten_between_listing_and_reply_is_sent_with_a_known_node() {
    let f = fixture().await;
    let (attr, fh) = f.vfs.create(f.root, n("a.txt"), 0o640, true, RW, ME).await.unwrap();
    f.vfs.write(fh, 0, b"hello").unwrap();
    f.vfs.release(fh).await.unwrap();
    let dir = f.vfs.opendir(f.root).await.unwrap();
    let listed = f.vfs.readdir(dir).unwrap().iter().find(|e| e.name == "a.txt").unwrap().attr;
    assert_eq!(listed.ino, attr.ino);
    f.vfs.forget(attr.ino, 1);
    let sent = f.vfs.remember_entry(f.root, "a.txt", &listed);
    let got = f.vfs.getattr(sent).await.unwrap();
    assert_eq!((got.kind, got.size), (FileKind::File, 5));
    let ro = f.vfs.open(sent, RO).await.unwrap();
    assert_eq!(f.vfs.read(ro, 0, 10).await.unwrap(), b"hello");
    assert_eq!(f.vfs.lookup(f.root, n("a.txt")).await.unwrap().ino, sent, "the name leads to the node sent");
}
