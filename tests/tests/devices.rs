//! Two devices on one provider: two mounts of the same encrypted store (separate
//! config, state and cache, same passphrase) on this machine. Changes made through one
//! show up in the other without remounting (`--poll 1`); concurrent edits of one file
//! keep both versions (exactly one conflict copy); scripted interleavings of edit,
//! delete, rename and create lose no bytes.
//!
//! Uploads wait an hour here (`--write-back 3600`), so each test decides exactly when a
//! device's changes reach the provider (`oxidrive sync --wait`), and `sync --now` makes
//! the other device poll at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oxidrive_tests::{Devices, TestMount, names, wait_until};

fn start() -> Devices {
    Devices::start(&["--poll", "1", "--write-back", "3600"])
}

fn dir(m: &TestMount) -> PathBuf {
    m.mnt.join("My Drive/Shared")
}

/// Uploads everything of `m`, then makes `other` poll at once.
fn publish(m: &TestMount, other: &TestMount) {
    m.sync();
    let out = other.oxidrive().args(["sync", "--now", "--quiet"]).output().expect("oxidrive sync --now");
    assert!(out.status.success(), "sync --now: {}", String::from_utf8_lossy(&out.stderr));
}

/// Waits until `path` reads `want` (the kernel may keep old answers for a moment).
fn assert_eventually(m: &TestMount, path: &Path, want: Option<&[u8]>) {
    let ok = wait_until(Duration::from_secs(15), || fs::read(path).ok().as_deref() == want);
    assert!(
        ok,
        "{} should be {:?} but is {:?}\n{}",
        path.display(),
        want.map(String::from_utf8_lossy),
        fs::read(path).ok().map(|b| String::from_utf8_lossy(&b).into_owned()),
        m.log()
    );
}

mod xattr {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    pub fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
        let (p, n) = (CString::new(path.as_os_str().as_bytes()).ok()?, CString::new(name).ok()?);
        let mut buf = vec![0u8; 256];
        // SAFETY: valid NUL-terminated strings and a buffer of the given length.
        let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        (len >= 0).then(|| {
            buf.truncate(len as usize);
            buf
        })
    }
}

fn conflict_copies(d: &Path, stem: &str) -> Vec<String> {
    names(d).into_iter().filter(|n| n.starts_with(&format!("{stem} (conflict "))).collect()
}

#[test]
fn changes_in_one_show_in_the_other_without_remounting() {
    let d = start();
    let (a, b) = (dir(&d.a), dir(&d.b));
    fs::write(a.join("note.txt"), b"from A").unwrap();
    fs::create_dir(a.join("folder")).unwrap();
    fs::write(a.join("folder/inner.bin"), vec![7u8; 200_000]).unwrap();
    publish(&d.a, &d.b);
    assert_eventually(&d.b, &b.join("note.txt"), Some(b"from A"));
    assert_eventually(&d.b, &b.join("folder/inner.bin"), Some(&vec![7u8; 200_000]));

    // B changes it, A sees the change (its cached copy is of the old version).
    fs::write(b.join("note.txt"), b"changed by B").unwrap();
    publish(&d.b, &d.a);
    assert_eventually(&d.a, &a.join("note.txt"), Some(b"changed by B"));

    // Removals too, and the plain poll (no `sync --now`) finds them within seconds.
    fs::remove_file(b.join("note.txt")).unwrap();
    d.b.sync();
    assert_eventually(&d.a, &a.join("note.txt"), None);
    assert!(!names(&a).contains(&"note.txt".to_owned()), "listing still shows it: {:?}", names(&a));
}

#[test]
fn concurrent_edits_keep_both_versions_in_exactly_one_conflict_copy() {
    let d = start();
    let (a, b) = (dir(&d.a), dir(&d.b));
    fs::write(a.join("report.txt"), b"original").unwrap();
    publish(&d.a, &d.b);
    assert_eventually(&d.b, &b.join("report.txt"), Some(b"original"));

    fs::write(a.join("report.txt"), b"edited on A").unwrap();
    fs::write(b.join("report.txt"), b"edited on B, longer").unwrap();
    publish(&d.a, &d.b);
    publish(&d.b, &d.a);

    // The first upload keeps the name; the other device's version sits beside it.
    for (m, dir) in [(&d.a, &a), (&d.b, &b)] {
        assert_eventually(m, &dir.join("report.txt"), Some(b"edited on A"));
        let ok = wait_until(Duration::from_secs(15), || conflict_copies(dir, "report").len() == 1);
        let copies = conflict_copies(dir, "report");
        assert!(ok, "exactly one conflict copy in {}: {:?}\n{}", dir.display(), names(dir), m.log());
        assert!(copies[0].ends_with(".txt"), "extension kept: {copies:?}");
        assert_eq!(fs::read(dir.join(&copies[0])).unwrap(), b"edited on B, longer");
    }
    assert!(d.b.log().contains("conflict"), "the conflict is logged:\n{}", d.b.log());
    let out = d.b.oxidrive().arg("status").output().expect("oxidrive status");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("1 conflict copies made"), "status reports it:\n{status}");
    let copy = b.join(&conflict_copies(&b, "report")[0]);
    let state = xattr::get(&copy, "user.oxidrive.state");
    assert_eq!(state.as_deref(), Some(&b"conflict"[..]), "state of the conflict copy");
}

#[test]
fn interleavings_lose_no_bytes() {
    let d = start();
    let (a, b) = (dir(&d.a), dir(&d.b));
    for name in ["edit-delete", "delete-edit", "rename-edit"] {
        fs::write(a.join(name), format!("{name}: original")).unwrap();
    }
    publish(&d.a, &d.b);
    for name in ["edit-delete", "delete-edit", "rename-edit"] {
        assert_eventually(&d.b, &b.join(name), Some(format!("{name}: original").as_bytes()));
    }

    // edit here, delete there: the edit survives.
    fs::write(a.join("edit-delete"), b"A's edit").unwrap();
    fs::remove_file(b.join("edit-delete")).unwrap();
    // delete here, edit there: the edit survives.
    fs::remove_file(a.join("delete-edit")).unwrap();
    fs::write(b.join("delete-edit"), b"B's edit").unwrap();
    // rename here, edit there: both the renamed original and the edit survive.
    fs::rename(a.join("rename-edit"), a.join("renamed")).unwrap();
    fs::write(b.join("rename-edit"), b"B's edit of the renamed file").unwrap();
    // Both create the same name: one keeps it, the other becomes a conflict copy.
    fs::write(a.join("both.txt"), b"created on A").unwrap();
    fs::write(b.join("both.txt"), b"created on B").unwrap();

    publish(&d.b, &d.a);
    publish(&d.a, &d.b);
    publish(&d.b, &d.a);

    for (m, dir) in [(&d.a, &a), (&d.b, &b)] {
        assert_eventually(m, &dir.join("edit-delete"), Some(b"A's edit"));
        assert_eventually(m, &dir.join("delete-edit"), Some(b"B's edit"));
        assert_eventually(m, &dir.join("renamed"), Some(b"rename-edit: original"));
        assert_eventually(m, &dir.join("rename-edit"), Some(b"B's edit of the renamed file"));
        assert_eventually(m, &dir.join("both.txt"), Some(b"created on B"));
        let ok = wait_until(Duration::from_secs(15), || conflict_copies(dir, "both").len() == 1);
        let copies = conflict_copies(dir, "both");
        assert!(ok, "one conflict copy of both.txt in {}: {:?}\n{}", dir.display(), names(dir), m.log());
        assert_eq!(fs::read(dir.join(&copies[0])).unwrap(), b"created on A");
    }
}

/// A provider that suddenly lists (almost) nothing, like a wrong bucket or an unplugged
/// disk, is not read as "everything was deleted": the poll holds the deletions, the
/// mount keeps showing what it knew, `status` says so, and only
/// `sync --accept-deletes` applies them.
#[test]
fn a_mass_deletion_is_held_until_accepted() {
    let mut m = TestMount::unstarted_plain();
    m.mount_args = ["--poll", "3600"].map(String::from).to_vec();
    m.mount();
    let l = m.local().join("photos");
    fs::create_dir(&l).unwrap();
    for i in 0..120 {
        fs::write(l.join(format!("p{i}.jpg")), format!("photo {i}")).unwrap();
    }
    let backing = m.synced_backing().join("photos");
    assert_eq!(names(&l).len(), 120);
    for i in 0..120 {
        fs::remove_file(backing.join(format!("p{i}.jpg"))).unwrap();
    }
    let poll = |args: &[&str]| {
        let out = m.oxidrive().args(args).output().expect("oxidrive");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    poll(&["sync", "--now"]);
    let status = poll(&["status"]);
    assert!(status.contains("HOLDING 120 deletions"), "status:\n{status}");
    assert!(m.log().contains("holding these deletions"), "{}", m.log());
    let ok = wait_until(Duration::from_secs(5), || names(&l).len() == 120);
    assert!(ok, "the mount must keep showing the held files: {:?}", names(&l));
    assert_eq!(fs::read(l.join("p7.jpg")).unwrap(), b"photo 7", "still readable from the cache");

    poll(&["sync", "--accept-deletes"]);
    assert!(!poll(&["status"]).contains("HOLDING"));
    let ok = wait_until(Duration::from_secs(5), || names(&l).is_empty());
    assert!(ok, "accepted deletions apply: {:?}", names(&l));
}
