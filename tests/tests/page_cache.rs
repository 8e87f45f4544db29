//! The kernel's page cache on a real mount: an unchanged file opened again is read from
//! pages the kernel kept (no trip through oxidrive), and every way a file's bytes can
//! change behind those pages (another device, a poll, a conflict, a second descriptor,
//! Recents, truncate, rename) is seen byte for byte at once.
//!
//! Residency is checked with `mincore` on a fresh mapping: an open that drops the
//! file's pages shows none resident.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oxidrive_tests::{Devices, TestMount, names, pattern};

/// (resident, total) pages of `path` in the page cache, seen through a new open.
fn cached_pages(path: &Path) -> (usize, usize) {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let pages = len.div_ceil(page);
    if pages == 0 {
        return (0, 0);
    }
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of `len` bytes of a file held open for the
    // whole block, never dereferenced and unmapped before returning; mincore writes
    // one byte per page into `vec`, which has exactly that many.
    let rc = unsafe {
        let addr = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
        assert_ne!(addr, libc::MAP_FAILED, "mmap {}: {}", path.display(), std::io::Error::last_os_error());
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        rc
    };
    assert_eq!(rc, 0, "mincore {}: {}", path.display(), std::io::Error::last_os_error());
    (vec.iter().filter(|b| *b & 1 != 0).count(), pages)
}

/// The bytes `cat` prints: a real program reading through the mount.
fn cat(path: &Path) -> Vec<u8> {
    let out = Command::new("cat").arg(path).output().expect("run cat");
    assert!(out.status.success(), "cat {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Everything `f` reads from offset 0 to its end, in as many reads as it takes.
fn read_through(f: &File) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read_at(&mut buf, out.len() as u64).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Panics with the first differing offset rather than two megabytes of bytes.
fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes, want {}; first difference at offset {at}", got.len(), want.len());
    }
}

/// Two devices on one store that upload and poll only when a test says so.
fn start() -> Devices {
    Devices::start(&["--poll", "3600", "--write-back", "3600"])
}

fn dir(m: &TestMount) -> PathBuf {
    m.mnt.join("My Drive/Shared")
}

/// `oxidrive sync --now`: returns once `m` has polled the provider.
fn poll_now(m: &TestMount) {
    let out = m.oxidrive().args(["sync", "--now", "--quiet"]).output().expect("oxidrive sync --now");
    assert!(out.status.success(), "sync --now: {}\n{}", String::from_utf8_lossy(&out.stderr), m.log());
}

/// Reads `path` until its pages are all cached (the first read after a write may
/// only refill them), and checks the bytes each time.
fn warm(path: &Path, want: &[u8]) {
    for _ in 0..3 {
        assert_bytes(&format!("warming {}", path.display()), &fs::read(path).unwrap(), want);
        let (resident, total) = cached_pages(path);
        if resident == total {
            return;
        }
    }
    let (resident, total) = cached_pages(path);
    panic!("{}: only {resident} of {total} pages stay cached across opens", path.display());
}

#[test]
fn an_unchanged_file_is_read_again_from_the_page_cache() {
    let m = TestMount::start();
    let path = m.local().join("video.bin");
    let data = pattern(3 << 20, 1);
    fs::write(&path, &data).unwrap();
    warm(&path, &data);
    // Opened again and again (by another program too): the pages stay.
    assert_bytes("cat", &cat(&path), &data);
    let (resident, total) = cached_pages(&path);
    assert_eq!(resident, total, "pages kept across opens");
    // Also through the same file's Recents entry (the same inode).
    let recent = m.mnt.join("Recents/video.bin");
    assert_eq!(cached_pages(&recent), (total, total), "Recents shares the pages");
    assert_bytes("read through Recents", &fs::read(&recent).unwrap(), &data);
}

#[test]
fn a_change_from_another_device_replaces_cached_pages_after_the_poll() {
    let d = start();
    let (a, b) = (dir(&d.a), dir(&d.b));
    // Same size before and after: only the mtime tells the versions apart.
    let (v1, v2) = (pattern(300_000, 1), pattern(300_000, 2));
    fs::write(a.join("doc.bin"), &v1).unwrap();
    d.a.sync();
    assert_eq!(names(&a), ["doc.bin"], "A lists the folder, so its poll looks at it");
    warm(&a.join("doc.bin"), &v1);
    // A descriptor that stays open across the change, with its pages read.
    let held = File::open(a.join("doc.bin")).unwrap();
    let mut buf = vec![0u8; v1.len()];
    held.read_exact_at(&mut buf, 0).unwrap();
    assert_bytes("held descriptor before", &buf, &v1);

    assert_bytes("B sees A's version", &fs::read(b.join("doc.bin")).unwrap(), &v1);
    fs::write(b.join("doc.bin"), &v2).unwrap();
    // A's kernel now trusts its name and attributes (v1) for a second: only the poll's
    // invalidation can tell it otherwise that soon.
    assert_eq!(names(&a), ["doc.bin"]);
    d.b.sync();
    poll_now(&d.a);

    // Right after A's poll, without waiting for any timeout.
    held.read_exact_at(&mut buf, 0).unwrap();
    assert_bytes("held descriptor after the poll", &buf, &v2);
    assert_bytes("cat in A after its poll", &cat(&a.join("doc.bin")), &v2);
    assert_bytes("read in A after its poll", &fs::read(a.join("doc.bin")).unwrap(), &v2);
    warm(&a.join("doc.bin"), &v2);
}

/// No poll at all: the change is noticed when the kernel's cached attributes expire
/// (1 s) and it asks again; the new mtime must make it drop the pages, also under a
/// descriptor that was open all along.
#[test]
fn a_change_seen_only_by_a_stat_replaces_cached_pages_too() {
    let d = start();
    let (a, b) = (dir(&d.a), dir(&d.b));
    let (v1, v2) = (pattern(200_000, 3), pattern(200_000, 4));
    fs::write(a.join("same-size.bin"), &v1).unwrap();
    d.a.sync();
    warm(&a.join("same-size.bin"), &v1);
    let held = File::open(a.join("same-size.bin")).unwrap();
    let mut buf = vec![0u8; v1.len()];
    held.read_exact_at(&mut buf, 0).unwrap();
    assert_bytes("held descriptor before", &buf, &v1);

    assert_bytes("B sees A's version", &fs::read(b.join("same-size.bin")).unwrap(), &v1);
    fs::write(b.join("same-size.bin"), &v2).unwrap();
    d.b.sync();
    // Past the kernel's attribute timeout and oxidrive's 1 s memory of the last stat.
    std::thread::sleep(Duration::from_millis(2500));

    held.read_exact_at(&mut buf, 0).unwrap();
    assert_bytes("held descriptor after the attribute timeout", &buf, &v2);
    assert_bytes("cat in A", &cat(&a.join("same-size.bin")), &v2);
}

/// oxidrive can learn of a new version before the kernel asks again (here: listing
/// Recents stats every recent file, but tells the kernel only of the one looked up).
/// An open then must not mix the kernel's pages of the old version with new bytes
/// read through oxidrive for the pages it lacks.
#[test]
fn an_open_after_oxidrive_saw_a_new_version_never_mixes_in_old_pages() {
    let mut m = TestMount::unstarted_plain();
    m.mount_args = ["--poll", "3600"].map(String::from).to_vec();
    m.mount();
    let (doc, other) = (m.local().join("doc.bin"), m.local().join("other.txt"));
    let (v1, v2) = (pattern(1 << 20, 19), pattern(1 << 20, 20));
    fs::write(&doc, &v1).unwrap();
    fs::write(&other, b"other").unwrap();
    let backing = m.synced_backing().join("doc.bin");
    // Only the first part cached (with read-ahead), across two opens.
    for _ in 0..2 {
        let mut head = vec![0u8; 128 << 10];
        File::open(&doc).unwrap().read_exact_at(&mut head, 0).unwrap();
        assert_bytes("head", &head, &v1[..head.len()]);
    }
    let (resident, total) = cached_pages(&doc);
    assert!(resident > 0 && resident < total, "partly cached: {resident} of {total} pages");

    // Everything oxidrive and the kernel remember of doc.bin expires...
    std::thread::sleep(Duration::from_millis(1200));
    // ...oxidrive asks the provider again (silently: only other.txt is looked up)...
    fs::metadata(m.mnt.join("Recents/other.txt")).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    // ...the kernel asks and gets that answer, fresh for its next second...
    fs::metadata(&doc).unwrap();
    // ...another device writes (same size)...
    fs::write(&backing, &v2).unwrap();
    // ...and once oxidrive's answer is older than 1 s, listing Recents fetches the new one.
    std::thread::sleep(Duration::from_millis(700));
    fs::metadata(m.mnt.join("Recents/other.txt")).unwrap();
    assert_bytes("a fresh open", &fs::read(&doc).unwrap(), &v2);
}

#[test]
fn a_conflict_replaces_our_cached_version_with_the_providers() {
    let d = start();
    let (a, b) = (dir(&d.a), dir(&d.b));
    fs::write(a.join("report.txt"), pattern(100_000, 5)).unwrap();
    d.a.sync();
    assert_bytes("B sees A's version", &fs::read(b.join("report.txt")).unwrap(), &pattern(100_000, 5));

    // Both edit (same size); B uploads first, so A's upload is the conflict.
    let (ours, theirs) = (pattern(100_000, 6), pattern(100_000, 7));
    fs::write(a.join("report.txt"), &ours).unwrap();
    warm(&a.join("report.txt"), &ours);
    fs::write(b.join("report.txt"), &theirs).unwrap();
    d.b.sync();
    poll_now(&d.a);
    // Still ours until the upload: the change is pending here.
    assert_bytes("A before its upload", &fs::read(a.join("report.txt")).unwrap(), &ours);
    d.a.sync();

    assert_bytes("A's name shows the provider's version", &cat(&a.join("report.txt")), &theirs);
    let copies: Vec<String> = names(&a).into_iter().filter(|n| n.starts_with("report (conflict ")).collect();
    assert_eq!(copies.len(), 1, "one conflict copy: {:?}\n{}", names(&a), d.a.log());
    assert_bytes("the conflict copy holds ours", &fs::read(a.join(&copies[0])).unwrap(), &ours);
}

#[test]
fn writes_through_one_descriptor_are_read_through_every_other() {
    let m = TestMount::start();
    let path = m.local().join("shared.bin");
    let mut want = pattern(500_000, 8);
    fs::write(&path, &want).unwrap();
    warm(&path, &want);

    let before = File::open(&path).unwrap();
    let mut buf = vec![0u8; want.len()];
    before.read_exact_at(&mut buf, 0).unwrap();
    let writer = OpenOptions::new().write(true).open(&path).unwrap();
    // Partial pages, a page boundary, and the last (partial) page.
    for (offset, len, seed) in [(5000usize, 10usize, 9u8), (4090, 20, 10), (200_000, 70_000, 11), (499_990, 10, 12)] {
        let patch = pattern(len, seed);
        writer.write_all_at(&patch, offset as u64).unwrap();
        want[offset..offset + len].copy_from_slice(&patch);
    }
    // Before any close or fsync: the reader opened earlier and a new one see them.
    before.read_exact_at(&mut buf, 0).unwrap();
    assert_bytes("descriptor opened before the writes", &buf, &want);
    assert_bytes("descriptor opened after the writes", &fs::read(&path).unwrap(), &want);
    assert_bytes("cat while the writer is open", &cat(&path), &want);
    // Growing it through the writer.
    let tail = pattern(10_000, 13);
    writer.write_all_at(&tail, want.len() as u64).unwrap();
    want.extend_from_slice(&tail);
    let mut grown = vec![0u8; want.len()];
    before.read_exact_at(&mut grown, 0).unwrap();
    assert_bytes("earlier descriptor after growth", &grown, &want);
    drop(writer);
    assert_bytes("after close", &cat(&path), &want);
    warm(&path, &want);

    // Through Recents: the same inode, so the same pages.
    let recent = m.mnt.join("Recents/shared.bin");
    let patch = pattern(30_000, 14);
    OpenOptions::new().write(true).open(&recent).unwrap().write_all_at(&patch, 100_000).unwrap();
    want[100_000..130_000].copy_from_slice(&patch);
    assert_bytes("real path after a write through Recents", &cat(&path), &want);
    before.read_exact_at(&mut grown, 0).unwrap();
    assert_bytes("earlier descriptor after a write through Recents", &grown, &want);
    let patch = pattern(5000, 15);
    OpenOptions::new().write(true).open(&path).unwrap().write_all_at(&patch, 0).unwrap();
    want[..5000].copy_from_slice(&patch);
    assert_bytes("Recents after a write through the real path", &fs::read(&recent).unwrap(), &want);

    // After a remount nothing is cached anywhere, and the bytes are the same.
    drop(before);
    let mut m = m;
    m.remount();
    assert_bytes("after remount", &fs::read(&path).unwrap(), &want);
}

#[test]
fn truncate_drops_and_zero_fills_cached_pages() {
    let m = TestMount::start();
    let path = m.local().join("log.bin");
    let data = pattern(300_000, 16);
    fs::write(&path, &data).unwrap();
    warm(&path, &data);
    let reader = File::open(&path).unwrap();

    // truncate(2) by path, shrinking into the middle of a page.
    nix::unistd::truncate(&path, 100_001).unwrap();
    assert_bytes("after shrinking", &cat(&path), &data[..100_001]);
    assert_bytes("earlier descriptor after shrinking", &read_through(&reader), &data[..100_001]);
    let mut buf = vec![0u8; 1000];
    assert_eq!(reader.read_at(&mut buf, 150_000).unwrap(), 0, "nothing past the new end");

    // Growing again: the old bytes must not come back from cached pages.
    nix::unistd::truncate(&path, 250_000).unwrap();
    let mut want = data[..100_001].to_vec();
    want.resize(250_000, 0);
    assert_bytes("after growing: zeros", &cat(&path), &want);
    assert_bytes("earlier descriptor after growing", &read_through(&reader), &want);

    // ftruncate through an open descriptor, then writes.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(4096).unwrap();
    f.write_all_at(b"tail", 8192).unwrap();
    let mut want = data[..4096].to_vec();
    want.resize(8192, 0);
    want.extend_from_slice(b"tail");
    assert_bytes("after ftruncate and a write past the end", &fs::read(&path).unwrap(), &want);
    drop(f);
    warm(&path, &want);

    // O_TRUNC: the old contents are gone for every reader.
    fs::write(&path, b"short").unwrap();
    assert_bytes("after O_TRUNC", &cat(&path), b"short");
    assert_bytes("earlier descriptor after O_TRUNC", &read_through(&reader), b"short");
}

#[test]
fn rename_over_a_cached_file_shows_the_moved_contents() {
    let m = TestMount::start();
    let (doc, tmp) = (m.local().join("doc.bin"), m.local().join(".doc.bin.tmp"));
    let (old, new) = (pattern(150_000, 17), pattern(150_000, 18));
    fs::write(&doc, &old).unwrap();
    warm(&doc, &old);
    let viewer = File::open(&doc).unwrap();
    fs::write(&tmp, &new).unwrap();
    warm(&tmp, &new);

    fs::rename(&tmp, &doc).unwrap();
    assert_bytes("the name after the rename", &cat(&doc), &new);
    // The replaced file stays what it was for whoever had it open.
    let mut buf = vec![0u8; old.len()];
    viewer.read_exact_at(&mut buf, 0).unwrap();
    assert_bytes("descriptor of the replaced file", &buf, &old);
    drop(viewer);

    // And back: a file created again under a name that had cached pages.
    fs::remove_file(&doc).unwrap();
    fs::write(&doc, &old[..1000]).unwrap();
    assert_bytes("a new file under the old name", &cat(&doc), &old[..1000]);
}
