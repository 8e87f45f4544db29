//! An upload racing another device's write. The uploader looks at the provider (stat),
//! decides "no conflict", then writes; another device writing between the two must not
//! be overwritten. Where the provider can check at the moment of writing (S3's
//! If-Match / If-None-Match, a local folder's no-replace rename), ours is refused, the
//! other device's version keeps the name and ours becomes a conflict copy.
//!
//! The race is exact, not timed: an OpenDAL layer under the uploader lets "the other
//! device" (a second provider on the same storage) write right after the next stat
//! returns. Runs over a local folder and over S3 (moto_server on 127.0.0.1), plain and
//! encrypted. The cache and vfs are driven directly (`oxidrive_tests::direct`, no
//! FUSE): the layer has to sit inside the process.

use std::ffi::OsStr;

use oxidrive_providers::{ErrorKind, LocalSource, Precondition};
use oxidrive_tests::direct::{Direct, RW_TRUNC, Storage};

/// Ours landed as a conflict copy and theirs kept the name; nothing else is there.
fn assert_both_kept(files: &[(String, Vec<u8>)], name: &str, theirs: &[u8], ours: &[u8]) {
    assert_eq!(
        files.len(),
        2,
        "expected {name} and one conflict copy: {:?}",
        files.iter().map(|(n, d)| (n, String::from_utf8_lossy(d))).collect::<Vec<_>>()
    );
    let at_name = files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} missing: {:?}", names(files)));
    assert_eq!(at_name.1, theirs, "the other device's version keeps the name");
    let (stem, ext) = name.rsplit_once('.').unwrap();
    let copy = files.iter().find(|(n, _)| n != name).unwrap();
    assert!(copy.0.starts_with(&format!("{stem} (conflict ")) && copy.0.ends_with(&format!(").{ext}")), "{}", copy.0);
    assert_eq!(copy.1, ours, "our version is in the conflict copy");
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}

/// Both devices create the same new name; the other one's write lands between our
/// look (nothing there) and our upload.
async fn created_on_both_sides(storage: Storage, encrypt: bool) {
    let r = Direct::start(storage, encrypt).await;
    assert!(r.caps.write_if_not_exists);
    r.save("notes.txt", b"ours, written here").await;
    r.race_next_stat("notes.txt", b"theirs, written elsewhere");
    r.sync().await;
    assert!(r.raced(), "the uploader looked at the provider before writing");
    assert_both_kept(&r.top_files().await, "notes.txt", b"theirs, written elsewhere", b"ours, written here");
    assert_eq!(r.store.conflict_count(), 1);
}

/// Both devices change a file both had; the other one's write lands between our look
/// (unchanged) and our upload.
async fn changed_on_both_sides(storage: Storage, encrypt: bool) {
    let r = Direct::start(storage, encrypt).await;
    assert!(r.caps.write_if_match);
    r.save("report.csv", b"v1 from before").await;
    r.sync().await;
    r.save("report.csv", b"v2 ours").await;
    r.race_next_stat("report.csv", b"v2 theirs, longer");
    r.sync().await;
    assert!(r.raced());
    assert_both_kept(&r.top_files().await, "report.csv", b"v2 theirs, longer", b"v2 ours");
    assert_eq!(r.store.conflict_count(), 1);
}

/// No race: the other device's change lands while our file is open, long before our
/// upload looks. A save that truncates (`>`, most editors) replaces the contents whole,
/// yet it started from the version shown at open, so the change elsewhere is a
/// conflict, not overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncating_save_over_a_change_made_elsewhere_keeps_both() {
    for encrypt in [false, true] {
        let r = Direct::start(Storage::Local, encrypt).await;
        r.save("todo.md", b"v1 from before").await;
        r.sync().await;
        let ino = r.vfs.lookup(r.root, OsStr::new("todo.md")).await.unwrap().ino;
        let fh = r.vfs.open(ino, RW_TRUNC).await.unwrap();
        r.other.write_all("todo.md", b"v2 theirs".to_vec()).await.unwrap();
        r.vfs.write(fh, 0, b"v2 ours").unwrap();
        r.vfs.release(fh).await.unwrap();
        r.sync().await;
        assert_both_kept(&r.top_files().await, "todo.md", b"v2 theirs", b"v2 ours");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_new_file_raced_becomes_a_conflict_copy() {
    created_on_both_sides(Storage::Local, false).await;
    created_on_both_sides(Storage::Local, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_new_file_raced_becomes_a_conflict_copy() {
    created_on_both_sides(Storage::S3, false).await;
    created_on_both_sides(Storage::S3, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_changed_file_raced_becomes_a_conflict_copy() {
    changed_on_both_sides(Storage::S3, false).await;
    changed_on_both_sides(Storage::S3, true).await;
}

/// The conditions themselves, on S3: a stale etag or an existing object refuses the
/// upload and leaves the object as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_an_upload_whose_condition_fails() {
    for encrypt in [false, true] {
        let r = Direct::start(Storage::S3, encrypt).await;
        let p = &r.other;
        p.write_all("a.bin", b"first".to_vec()).await.unwrap();
        let first = p.stat("a.bin").await.unwrap().unwrap().etag.expect("S3 listings carry etags");
        p.write_all("a.bin", b"second".to_vec()).await.unwrap();
        let src = Bytes(b"stale".to_vec());
        let err = p.upload("a.bin", &src, &Precondition::Etag(first)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConditionNotMatch, "{err}");
        let err = p.upload("a.bin", &src, &Precondition::Absent).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConditionNotMatch, "{err}");
        assert_eq!(p.read_all("a.bin").await.unwrap(), b"second");
        let now = p.stat("a.bin").await.unwrap().unwrap().etag.unwrap();
        p.upload("a.bin", &src, &Precondition::Etag(now)).await.unwrap();
        p.upload("b.bin", &src, &Precondition::Absent).await.unwrap();
        assert_eq!(p.read_all("a.bin").await.unwrap(), b"stale");
        assert_eq!(p.read_all("b.bin").await.unwrap(), b"stale");
    }
}

struct Bytes(Vec<u8>);

impl LocalSource for Bytes {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.0.len() as u64)
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let start = (offset as usize).min(self.0.len());
        Ok(self.0[start..(start + len).min(self.0.len())].to_vec())
    }
}
