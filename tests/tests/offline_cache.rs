//! Write-back, the block cache and working offline, through a real mount.
//!
//! S3 tests run moto behind a [`FaultProxy`], so the provider can be made unreachable
//! (`Refuse`) or hung (`Hang`) mid-test; providers are configured with a 2 s timeout
//! and one retry, so failures surface in seconds. Local-store tests poke at the cache
//! directory (a corrupt block, a full disk, a tiny size limit).
//!
//! Every check is on bytes; failures print the tail of the mount's log.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oxidrive_tests::faults::{Fault, FaultProxy};
use oxidrive_tests::servers::S3Server;
use oxidrive_tests::{TestMount, is_mounted, names, output_within, pattern};

const NAME: &str = "Cloud";
const BUCKET: &str = "offline";
const MIB: usize = 1 << 20;
const KIB: usize = 1 << 10;

// ---- helpers ----------------------------------------------------------------------

/// moto behind a fault proxy, and the `[[provider]]` table (encrypted) that reaches it
/// through the proxy.
struct Cloud {
    proxy: FaultProxy,
    _s3: S3Server,
}

impl Cloud {
    fn start() -> Self {
        let s3 = S3Server::start();
        s3.create_bucket(BUCKET);
        let proxy = FaultProxy::start(s3.port);
        Cloud { proxy, _s3: s3 }
    }

    fn config(&self) -> String {
        format!(
            "[[provider]]\nname = \"{NAME}\"\ntype = \"s3\"\nbucket = \"{BUCKET}\"\n\
             endpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"test-key\"\nsecret_access_key = \"test-secret\"\n\
             timeout_secs = 2\nretries = 1\nencrypt = true\n",
            self.proxy.port()
        )
    }

    /// A mounted S3 setup.
    fn mount(&self) -> TestMount {
        TestMount::with_config(&self.config())
    }

    /// Another device: a mount of the same bucket that reaches moto directly, so it
    /// stays online while the proxy refuses.
    fn other_device(&self) -> TestMount {
        let direct = format!("endpoint = \"http://127.0.0.1:{}\"", self._s3.port);
        let config = self.config().replace(&format!("endpoint = \"http://127.0.0.1:{}\"", self.proxy.port()), &direct);
        TestMount::with_config(&config)
    }
}

/// The provider's folder in the mount.
fn folder(m: &TestMount) -> PathBuf {
    m.mnt.join("My Drive").join(NAME)
}

/// The last lines of the mount's log, for failure messages (60, or
/// `$OXIDRIVE_TEST_TAIL`).
fn tail(m: &TestMount) -> String {
    let log = m.log();
    let lines: Vec<&str> = log.lines().collect();
    let keep = std::env::var("OXIDRIVE_TEST_TAIL").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let from = lines.len().saturating_sub(keep);
    format!("--- last {} lines of the mount log ---\n{}", lines.len() - from, lines[from..].join("\n"))
}

/// Runs an `oxidrive` subcommand of this mount; panics (with the log) if it fails.
fn cli(m: &TestMount, args: &[&str]) -> String {
    let out = output_within(m.oxidrive().args(args), Duration::from_secs(120));
    assert!(
        out.status.success(),
        "oxidrive {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(m)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_paths(m: &TestMount, cmd: &str, paths: &[&Path]) {
    let mut c = m.oxidrive();
    c.arg(cmd).args(paths);
    let out = output_within(&mut c, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "oxidrive {cmd} {paths:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(m)
    );
}

fn status(m: &TestMount) -> String {
    cli(m, &["status"])
}

/// The status line of the provider `name`.
fn provider_line(status: &str, name: &str) -> String {
    status.lines().find(|l| l.starts_with(&format!("{name}: "))).unwrap_or("").to_owned()
}

/// (used, limit, pinned) in bytes, from the `cache:` line of `oxidrive status`
/// (`cache: 2.9 MiB used of 3.0 MiB, 1.0 MiB pinned`; sizes to 0.1 of their unit).
fn cache_line(status: &str) -> (u64, u64, u64) {
    let line =
        status.lines().find(|l| l.starts_with("cache: ")).unwrap_or_else(|| panic!("no cache line in {status:?}"));
    let words: Vec<&str> = line.trim_start_matches("cache: ").split_whitespace().collect();
    // [n, unit, "used", "of", n, unit, n, unit, "pinned"]
    let size = |n: &str, unit: &str| -> u64 {
        let n: f64 = n.trim_end_matches(',').parse().unwrap_or_else(|_| panic!("bad size {n:?} in {line:?}"));
        let mult = match unit.trim_end_matches(',') {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            u => panic!("unknown unit {u:?} in {line:?}"),
        };
        (n * mult) as u64
    };
    assert!(
        words.len() >= 9 && words[2] == "used" && words[3] == "of" && words[8] == "pinned",
        "odd cache line {line:?}"
    );
    (size(words[0], words[1]), size(words[4], words[5]), size(words[6], words[7]))
}

fn getxattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    let mut buf = vec![0u8; 256];
    let rc = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

/// `user.oxidrive.state` of a file in the mount.
fn state(m: &TestMount, path: &Path) -> String {
    let v = getxattr(path, "user.oxidrive.state")
        .unwrap_or_else(|e| panic!("getxattr user.oxidrive.state {}: {e}\n{}", path.display(), tail(m)));
    String::from_utf8_lossy(&v).into_owned()
}

#[track_caller]
fn assert_state(m: &TestMount, path: &Path, want: &str) {
    let got = state(m, path);
    assert_eq!(got, want, "user.oxidrive.state of {}: want {want:?}, got {got:?}\n{}", path.display(), tail(m));
}

/// Reads `path` in a thread, so a read that hangs fails the test instead of hanging
/// it: `None` if it took longer than `limit` (the thread is left to end with the mount).
fn read_within(path: &Path, limit: Duration) -> Option<(io::Result<Vec<u8>>, Duration)> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_owned();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = fs::read(&p);
        let _ = tx.send((r, t.elapsed()));
    });
    rx.recv_timeout(limit).ok()
}

/// Asserts `path` reads exactly `want`, within `limit`.
#[track_caller]
fn assert_reads(m: &TestMount, path: &Path, want: &[u8], limit: Duration, when: &str) {
    let Some((r, took)) = read_within(path, limit) else {
        panic!("{when}: reading {} took longer than {limit:?}\n{}", path.display(), tail(m))
    };
    let got =
        r.unwrap_or_else(|e| panic!("{when}: reading {} failed after {took:?}: {e}\n{}", path.display(), tail(m)));
    assert_same(m, path, &got, want, when);
}

#[track_caller]
fn assert_same(m: &TestMount, path: &Path, got: &[u8], want: &[u8], when: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "{when}: {} holds {} bytes, want {}; first difference at offset {at}\n{}",
            path.display(),
            got.len(),
            want.len(),
            tail(m)
        );
    }
}

/// Asserts reading `path` fails with EIO within `limit`; returns how long it took.
#[track_caller]
fn assert_read_eio(m: &TestMount, path: &Path, limit: Duration, when: &str) -> Duration {
    let Some((r, took)) = read_within(path, limit) else {
        panic!("{when}: reading {} did not fail within {limit:?} (hangs)\n{}", path.display(), tail(m))
    };
    match r {
        Ok(data) => panic!("{when}: reading {} gave {} bytes, want EIO\n{}", path.display(), data.len(), tail(m)),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "{when}: reading {} failed with {e}, want EIO\n{}",
            path.display(),
            tail(m)
        ),
    }
    took
}

fn write_file(m: &TestMount, path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}\n{}", path.display(), tail(m)));
}

/// `oxidrive decrypt --provider NAME` of the (unmounted) setup into a new folder.
fn decrypt(m: &TestMount) -> PathBuf {
    let n = fs::read_dir(m.dir.path()).map(|d| d.count()).unwrap_or(0);
    let dest = m.dir.path().join(format!("decrypted-{n}"));
    let out = output_within(m.oxidrive().args(["decrypt", "--provider", NAME]).arg(&dest), Duration::from_secs(120));
    assert!(
        out.status.success(),
        "oxidrive decrypt failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dest
}

#[track_caller]
fn assert_file(path: &Path, want: &[u8], what: &str) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("{what}: read {}: {e}", path.display()));
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} holds {} bytes, want {}; first difference at offset {at}",
            path.display(),
            got.len(),
            want.len()
        );
    }
}

/// Polls `oxidrive status` until `cond` holds for it; returns the last status and how
/// long it took, or panics after `timeout`.
fn wait_status(m: &TestMount, timeout: Duration, what: &str, cond: impl Fn(&str) -> bool) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let s = status(m);
        if cond(&s) {
            return (s, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}; last status:\n{s}\n{}", tail(m));
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The sorted names in `dir`, or the error of listing it.
fn try_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        v.push(e?.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}

#[track_caller]
fn assert_lists(m: &TestMount, dir: &Path, want: &[&str], when: &str) {
    match try_names(dir) {
        Ok(v) => assert_eq!(v, want, "{when}: listing of {}\n{}", dir.display(), tail(m)),
        Err(e) => panic!("{when}: listing {} failed: {e}\n{}", dir.display(), tail(m)),
    }
}

/// Writes A (1 MiB) and B (200 KiB) into the provider's folder, uploads them, lists
/// the folder (as a file manager would), reads A (so it is cached) and frees B (so it
/// is not). Returns (A, B) contents.
fn cached_a_uncached_b(m: &TestMount) -> (Vec<u8>, Vec<u8>) {
    let dir = folder(m);
    let (a, b) = write_a_and_b(m);
    assert_lists(m, &dir, &["A.bin", "B.bin"], "online");
    assert_reads(m, &dir.join("A.bin"), &a, Duration::from_secs(30), "online");
    cli_paths(m, "free", &[&dir.join("B.bin")]);
    assert_state(m, &dir.join("A.bin"), "cached");
    assert_state(m, &dir.join("B.bin"), "cloud-only");
    (a, b)
}

/// Runs `script` with `sh -c` in `dir` (offline), which must succeed.
fn sh_offline(m: &TestMount, dir: &Path, script: &str) {
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "offline: {script}: {}\n{}", String::from_utf8_lossy(&out.stderr), tail(m));
}

/// Uploads everything pending, then makes the provider refuse connections and waits
/// until the mount knows (a read of an uncached probe file fails).
fn sync_then_go_offline(cloud: &Cloud, m: &TestMount) {
    let probe = folder(m).join("probe.bin");
    write_file(m, &probe, b"probe");
    m.sync();
    cli_paths(m, "free", &[&probe]);
    cloud.proxy.set(Fault::Refuse);
    assert_read_eio(m, &probe, Duration::from_secs(15), "offline, uncached probe");
}

/// Writes A (1 MiB) and B (200 KiB) into the provider's folder and uploads them.
fn write_a_and_b(m: &TestMount) -> (Vec<u8>, Vec<u8>) {
    let dir = folder(m);
    let (a, b) = (pattern(MIB, 1), pattern(200 * KIB, 2));
    write_file(m, &dir.join("A.bin"), &a);
    write_file(m, &dir.join("B.bin"), &b);
    m.sync();
    (a, b)
}

// ---- 1. offline reads and queued writes ----------------------------------------------

#[test]
fn offline_reads_cached_data_and_queues_writes() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);

    cloud.proxy.set(Fault::Refuse);

    // Cached data reads as it is.
    assert_reads(&m, &dir.join("A.bin"), &a, Duration::from_secs(10), "offline, cached A");
    // Uncached data fails fast; once the store knows it is offline, with a clear log line.
    let first = assert_read_eio(&m, &dir.join("B.bin"), Duration::from_secs(15), "offline, uncached B (first)");
    let second = assert_read_eio(&m, &dir.join("B.bin"), Duration::from_secs(5), "offline, uncached B (again)");
    eprintln!("uncached reads failed after {first:?} and {second:?}");
    assert!(
        m.log().contains("is offline and this is not cached"),
        "no \"is offline and this is not cached\" line after reading uncached B offline\n{}",
        tail(&m)
    );
    // Names come from the mirror.
    assert_lists(&m, &dir, &["A.bin", "B.bin"], "offline");
    let meta = fs::metadata(dir.join("B.bin")).unwrap_or_else(|e| panic!("offline stat of B: {e}\n{}", tail(&m)));
    assert_eq!(meta.len(), b.len() as u64, "offline stat of B\n{}", tail(&m));

    // Writes succeed: a new file, and an append to a cached one.
    let c = pattern(300 * KIB, 3);
    write_file(&m, &dir.join("C.bin"), &c);
    assert_state(&m, &dir.join("C.bin"), "dirty");
    let more = pattern(100 * KIB, 4);
    {
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("A.bin"))
            .unwrap_or_else(|e| panic!("offline open A for append: {e}\n{}", tail(&m)));
        f.write_all(&more).unwrap_or_else(|e| panic!("offline append to A: {e}\n{}", tail(&m)));
        f.sync_all().unwrap_or_else(|e| panic!("offline fsync of A: {e}\n{}", tail(&m)));
    }
    let a2 = [a.clone(), more].concat();
    assert_reads(&m, &dir.join("A.bin"), &a2, Duration::from_secs(10), "offline, A after append");
    assert_reads(&m, &dir.join("C.bin"), &c, Duration::from_secs(10), "offline, new C");
    // Folders too: made offline, they reach the provider with what is in them.
    fs::create_dir_all(dir.join("new/deeper")).unwrap_or_else(|e| panic!("offline mkdir -p: {e}\n{}", tail(&m)));
    let e = pattern(20 * KIB, 6);
    write_file(&m, &dir.join("new/deeper/E.bin"), &e);
    assert_state(&m, &dir.join("new"), "dirty");
    assert_lists(&m, &dir.join("new"), &["deeper"], "offline, a folder made offline");

    let s = status(&m);
    let line = provider_line(&s, NAME);
    assert!(
        line.starts_with(&format!("{NAME}: OFFLINE")) && line.contains("5 pending uploads"),
        "status while offline should say OFFLINE with 5 pending uploads (A, C, E and two folders):\n{s}\n{}",
        tail(&m)
    );

    // Back online: uploads resume by themselves (no sync).
    cloud.proxy.set(Fault::Pass);
    let (s, took) = wait_status(&m, Duration::from_secs(60), "uploads resume once the provider is back", |s| {
        let l = provider_line(s, NAME);
        l.starts_with(&format!("{NAME}: online")) && l.contains("all uploaded")
    });
    eprintln!("uploads resumed and finished {took:?} after the provider came back:\n{s}");
    assert_state(&m, &dir.join("C.bin"), "cached");
    m.unmount();

    let dest = decrypt(&m);
    assert_file(&dest.join("A.bin"), &a2, "provider copy of A (with the offline append)");
    assert_file(&dest.join("B.bin"), &b, "provider copy of B");
    assert_file(&dest.join("C.bin"), &c, "provider copy of C (written offline)");
    assert_file(&dest.join("new/deeper/E.bin"), &e, "provider copy of E (in folders made offline)");
}

/// Renames of files the provider holds are journaled while it is offline (their
/// contents must be here): the new name shows and reads at once, survives a remount,
/// and reaches the provider when it is back, where the old name then goes for good
/// (not to Trash). An editor's save with a backup (vim's: rename the file to `name~`,
/// write a new `name`) works offline. An uncached file or a folder cannot move
/// offline: EIO with a clear log line, and nothing changes.
#[test]
fn offline_renames_of_cached_files_are_journaled() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);
    let notes = b"first version\n".repeat(500);
    fs::create_dir(dir.join("docs")).unwrap_or_else(|e| panic!("mkdir docs: {e}\n{}", tail(&m)));
    write_file(&m, &dir.join("notes.txt"), &notes);
    m.sync();
    assert_state(&m, &dir.join("notes.txt"), "cached");

    cloud.proxy.set(Fault::Refuse);
    assert_read_eio(&m, &dir.join("B.bin"), Duration::from_secs(15), "offline, uncached B");

    fs::rename(dir.join("A.bin"), dir.join("docs/A-moved.bin"))
        .unwrap_or_else(|e| panic!("offline mv of cached A: {e}\n{}", tail(&m)));
    assert_lists(&m, &dir, &["B.bin", "docs", "notes.txt"], "offline, after mv A");
    assert_lists(&m, &dir.join("docs"), &["A-moved.bin"], "offline, after mv A");
    assert_reads(&m, &dir.join("docs/A-moved.bin"), &a, Duration::from_secs(10), "offline, moved A");
    assert_state(&m, &dir.join("docs/A-moved.bin"), "dirty");

    let err = fs::rename(dir.join("B.bin"), dir.join("B2.bin")).expect_err("offline mv of uncached B");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mv of uncached B: {err}\n{}", tail(&m));
    assert!(m.log().contains("cannot be renamed now"), "no clear log line for the refused rename\n{}", tail(&m));

    fs::rename(dir.join("notes.txt"), dir.join("notes.txt~"))
        .unwrap_or_else(|e| panic!("offline backup rename of notes.txt: {e}\n{}", tail(&m)));
    let edited = b"second version\n".repeat(400);
    write_file(&m, &dir.join("notes.txt"), &edited);
    assert_reads(&m, &dir.join("notes.txt"), &edited, Duration::from_secs(10), "offline, saved notes");
    assert_reads(&m, &dir.join("notes.txt~"), &notes, Duration::from_secs(10), "offline, backup of notes");
    let after = ["B.bin", "docs", "notes.txt", "notes.txt~"];
    assert_lists(&m, &dir, &after, "offline, after the editor's save");

    // All of it is in the journal: a remount, still offline, shows the same.
    m.remount();
    assert_lists(&m, &dir, &after, "offline remount");
    assert_reads(&m, &dir.join("docs/A-moved.bin"), &a, Duration::from_secs(10), "offline remount, moved A");
    assert_reads(&m, &dir.join("notes.txt~"), &notes, Duration::from_secs(10), "offline remount, backup");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    assert_lists(&m, &dir, &after, "back online, after sync");
    assert_lists(&m, &m.mnt.join("Trash"), &[], "Trash after the renames reached the provider");
    m.unmount();

    let dest = decrypt(&m);
    assert_eq!(names(&dest), after, "what the provider holds");
    assert_eq!(names(&dest.join("docs")), ["A-moved.bin"], "what the provider holds in docs");
    assert_file(&dest.join("docs/A-moved.bin"), &a, "provider copy of A at its new name");
    assert_file(&dest.join("B.bin"), &b, "provider copy of B, not moved");
    assert_file(&dest.join("notes.txt~"), &notes, "provider copy of the backup");
    assert_file(&dest.join("notes.txt"), &edited, "provider copy of the saved notes");
}

/// On an encrypted provider a file's rename rewrites its object (its name is bound
/// into it), so a file whose contents are all here is renamed in the journal even
/// online: `mv` returns at once and the new name is uploaded later, with the old one
/// then removed. An uncached file is still renamed on the provider at once.
#[test]
fn renames_of_cached_files_on_an_encrypted_store_are_journaled_online() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);
    for (from, to) in [("A.bin", "A2.bin"), ("B.bin", "B2.bin")] {
        fs::rename(dir.join(from), dir.join(to)).unwrap_or_else(|e| panic!("mv {from} {to}: {e}\n{}", tail(&m)));
    }
    assert_lists(&m, &dir, &["A2.bin", "B2.bin"], "after the renames");
    assert_state(&m, &dir.join("A2.bin"), "dirty");
    assert_state(&m, &dir.join("B2.bin"), "cloud-only");
    assert_reads(&m, &dir.join("A2.bin"), &a, Duration::from_secs(10), "renamed A");
    m.sync();
    assert_state(&m, &dir.join("A2.bin"), "cached");
    assert_lists(&m, &m.mnt.join("Trash"), &[], "Trash after the renames");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["A2.bin", "B2.bin"], "what the provider holds");
    assert_file(&dest.join("A2.bin"), &a, "provider copy of A at its new name");
    assert_file(&dest.join("B2.bin"), &b, "provider copy of B at its new name");
}

/// A file renamed offline, renamed again and then deleted is still a deletion of what
/// the provider holds: it reaches the Trash under its last name, never lost.
#[test]
fn a_file_renamed_offline_then_deleted_goes_to_trash() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);
    cloud.proxy.set(Fault::Refuse);
    assert_read_eio(&m, &dir.join("B.bin"), Duration::from_secs(15), "offline, uncached B");

    for (from, to) in [("A.bin", "A2.bin"), ("A2.bin", "A3.bin")] {
        fs::rename(dir.join(from), dir.join(to))
            .unwrap_or_else(|e| panic!("offline mv {from} {to}: {e}\n{}", tail(&m)));
    }
    assert_reads(&m, &dir.join("A3.bin"), &a, Duration::from_secs(10), "offline, A renamed twice");
    fs::remove_file(dir.join("A3.bin")).unwrap_or_else(|e| panic!("offline rm A3: {e}\n{}", tail(&m)));
    assert_lists(&m, &dir, &["B.bin"], "offline, after rm");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    let trash = m.mnt.join("Trash");
    assert_lists(&m, &trash, &["A3.bin"], "Trash once the provider is back");
    assert_reads(&m, &trash.join("A3.bin"), &a, Duration::from_secs(30), "A3 in Trash");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["B.bin"], "what the provider holds outside its Trash");
    assert_file(&dest.join("B.bin"), &b, "provider copy of B");
}

/// Offline, a folder is made where a folder (`old`) and a file (`g`) were deleted, a
/// file is renamed into each, then deleted there. Back online the old ones go to the
/// Trash; what was deleted inside the new folders must stay deleted (it went along with
/// the old ones' deletions once, and its upload then showed it again).
#[test]
fn deletions_inside_a_folder_made_over_a_deleted_one_stay_deleted() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    fs::create_dir(dir.join("old")).unwrap();
    write_file(&m, &dir.join("old/inner.txt"), b"old inner");
    for (name, data) in [("f.txt", &b"held f"[..]), ("h.txt", b"held h"), ("g", b"the file g"), ("keep.txt", b"kept")] {
        write_file(&m, &dir.join(name), data);
    }
    sync_then_go_offline(&cloud, &m);
    let sh = |script: &str| sh_offline(&m, &dir, script);
    sh("rm -r old && mkdir old && mv f.txt old/f.txt && rm old/f.txt");
    sh("rm g && mkdir g && mv h.txt g/h.txt && rm g/h.txt && echo new > g/new.txt");
    assert_lists(&m, &dir.join("old"), &[], "offline, the new old");
    assert_lists(&m, &dir.join("g"), &["new.txt"], "offline, the new g");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    assert_lists(&m, &dir, &["g", "keep.txt", "old", "probe.bin"], "online again");
    assert_lists(&m, &dir.join("old"), &[], "online again, the new old");
    assert_lists(&m, &dir.join("g"), &["new.txt"], "online again, the new g");
    let trash = m.mnt.join("Trash");
    let mut in_trash = try_names(&trash).unwrap();
    in_trash.sort();
    assert_eq!(in_trash, ["f.txt", "g", "h.txt", "old"], "Trash\n{}", tail(&m));
    assert_reads(&m, &trash.join("f.txt"), b"held f", Duration::from_secs(30), "f.txt in Trash");
    assert_reads(&m, &trash.join("h.txt"), b"held h", Duration::from_secs(30), "h.txt in Trash");
    assert_reads(&m, &trash.join("g"), b"the file g", Duration::from_secs(30), "g in Trash");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["g", "keep.txt", "old", "probe.bin"], "what the provider holds outside its Trash");
    assert_eq!(names(&dest.join("old")), Vec::<String>::new(), "the provider's new old");
    assert_eq!(names(&dest.join("g")), ["new.txt"], "the provider's new g");
    assert_file(&dest.join("g/new.txt"), b"new\n", "provider copy of g/new.txt");
}

/// Offline, a folder made over a deleted one, then deleted too: both are gone once the
/// provider is back (the old one in Trash with what was deleted in it). When the new one
/// held a deleted file of its own (renamed into it in the journal), one tombstone cannot
/// stand for both: deleting it waits for the old one to reach the Trash (offline `EIO`,
/// nothing changes; that file reaches the Trash as an item of its own).
#[test]
fn a_folder_made_over_a_deleted_one_and_deleted_again_offline_stays_gone() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    for d in ["d", "e"] {
        fs::create_dir(dir.join(d)).unwrap();
        write_file(&m, &dir.join(d).join("f.txt"), format!("old {d}/f").as_bytes());
    }
    write_file(&m, &dir.join("g"), b"the file g");
    sync_then_go_offline(&cloud, &m);
    let sh = |script: &str| sh_offline(&m, &dir, script);
    sh("rm -r d && mkdir d && mkdir d/sub && rmdir d/sub && rmdir d");
    sh("rm -r e && mkdir e && mv g e/g && rm e/g");
    let err = fs::remove_dir(dir.join("e")).expect_err("offline rmdir of e, holding a deleted file of its own");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline rmdir e: {err}\n{}", tail(&m));
    assert_lists(&m, &dir, &["e", "probe.bin"], "offline");
    assert_lists(&m, &dir.join("e"), &[], "offline, the new e");
    m.remount();
    assert_lists(&m, &dir, &["e", "probe.bin"], "remounted offline");
    cloud.proxy.set(Fault::Pass);
    m.sync();
    fs::remove_dir(dir.join("e")).unwrap_or_else(|e| panic!("online rmdir e: {e}\n{}", tail(&m)));
    m.sync();
    assert_lists(&m, &dir, &["probe.bin"], "online again");
    let trash = m.mnt.join("Trash");
    assert_reads(&m, &trash.join("d/f.txt"), b"old d/f", Duration::from_secs(30), "d/f.txt in Trash");
    assert_lists(&m, &trash, &["d", "e", "g"], "Trash: the old d and e, and g deleted on its own");
    assert_reads(&m, &trash.join("e/f.txt"), b"old e/f", Duration::from_secs(30), "e/f.txt in Trash");
    assert_reads(&m, &trash.join("g"), b"the file g", Duration::from_secs(30), "g in Trash");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["probe.bin"], "what the provider holds outside its Trash");
}

/// Offline, a folder made here that held a deleted file of its own (renamed into it in
/// the journal), then deleted, stays in the journal until that file is in the Trash: a
/// new name there needs the provider (`EIO`, nothing changes). Once it is back the name
/// is free, and the deleted file is in the Trash inside that folder.
#[test]
fn a_new_name_over_a_deleted_made_folder_holding_deleted_files_waits_for_the_trash() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    write_file(&m, &dir.join("g"), b"the file g");
    sync_then_go_offline(&cloud, &m);
    let sh = |script: &str| sh_offline(&m, &dir, script);
    sh("mkdir m && mv g m/g && rm m/g && rmdir m");
    let err = fs::write(dir.join("m"), b"a file m").expect_err("offline: a file over the deleted made folder");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline echo > m: {err}\n{}", tail(&m));
    let err = fs::create_dir(dir.join("m")).expect_err("offline: a folder over the deleted made folder");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mkdir m: {err}\n{}", tail(&m));
    assert_lists(&m, &dir, &["probe.bin"], "offline");
    m.remount();
    assert_lists(&m, &dir, &["probe.bin"], "remounted offline");
    cloud.proxy.set(Fault::Pass);
    m.sync();
    write_file(&m, &dir.join("m"), b"a file m");
    m.sync();
    assert_lists(&m, &dir, &["m", "probe.bin"], "online again");
    assert_reads(&m, &m.mnt.join("Trash/m/g"), b"the file g", Duration::from_secs(30), "m/g in Trash");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["m", "probe.bin"], "what the provider holds outside its Trash");
    assert_file(&dest.join("m"), b"a file m", "provider copy of m");
}

/// `rm f; echo new > f` offline (what `tar -x` over a tree and `git checkout` do), and
/// `rm f; mv f.new f`: the new file is there at once; the deleted one reaches the Trash
/// when the provider is back, and only then is the new one uploaded, so the old version
/// is never overwritten. A new file deleted again before that leaves the old one deleted.
#[test]
fn a_file_deleted_offline_can_be_written_again_at_once() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);
    cloud.proxy.set(Fault::Refuse);
    assert_read_eio(&m, &dir.join("B.bin"), Duration::from_secs(15), "offline, uncached B");

    let (a2, b2) = (pattern(300 * KIB, 7), pattern(5 * KIB, 8));
    fs::remove_file(dir.join("A.bin")).unwrap_or_else(|e| panic!("offline rm A: {e}\n{}", tail(&m)));
    // Renaming the uncached B there fails (its contents are not here); A stays deleted.
    let err = fs::rename(dir.join("B.bin"), dir.join("A.bin")).expect_err("offline mv of uncached B onto deleted A");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mv B A: {err}\n{}", tail(&m));
    assert_lists(&m, &dir, &["B.bin"], "offline, after a failed mv onto the deleted A");
    fs::write(dir.join("A.bin"), &a2).unwrap_or_else(|e| panic!("offline write over deleted A: {e}\n{}", tail(&m)));
    // B: a new file renamed onto the deleted name.
    fs::remove_file(dir.join("B.bin")).unwrap_or_else(|e| panic!("offline rm B: {e}\n{}", tail(&m)));
    fs::write(dir.join("B.new"), &b2).unwrap();
    fs::rename(dir.join("B.new"), dir.join("B.bin"))
        .unwrap_or_else(|e| panic!("offline mv B.new onto deleted B: {e}\n{}", tail(&m)));
    assert_reads(&m, &dir.join("A.bin"), &a2, Duration::from_secs(10), "offline, the first new A");
    assert_reads(&m, &dir.join("B.bin"), &b2, Duration::from_secs(10), "offline, the new B");
    // Saved again the way `sed -i` does: a new file renamed over it.
    let a2 = pattern(301 * KIB, 9);
    fs::write(dir.join("A.tmp"), &a2).unwrap();
    fs::rename(dir.join("A.tmp"), dir.join("A.bin"))
        .unwrap_or_else(|e| panic!("offline mv A.tmp A: {e}\n{}", tail(&m)));
    assert_reads(&m, &dir.join("A.bin"), &a2, Duration::from_secs(10), "offline, the new A");
    fs::remove_file(dir.join("B.bin")).unwrap_or_else(|e| panic!("offline rm of the new B: {e}\n{}", tail(&m)));
    assert_lists(&m, &dir, &["A.bin"], "offline, the new B deleted too");
    m.remount();
    assert_lists(&m, &dir, &["A.bin"], "remounted offline");
    assert_reads(&m, &dir.join("A.bin"), &a2, Duration::from_secs(10), "remounted offline, the new A");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    let trash = m.mnt.join("Trash");
    assert_lists(&m, &trash, &["A.bin", "B.bin"], "Trash once the provider is back");
    assert_reads(&m, &trash.join("A.bin"), &a, Duration::from_secs(30), "the old A in Trash");
    assert_reads(&m, &trash.join("B.bin"), &b, Duration::from_secs(30), "the old B in Trash");
    assert_reads(&m, &dir.join("A.bin"), &a2, Duration::from_secs(10), "the new A, online");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["A.bin"], "what the provider holds outside its Trash");
    assert_file(&dest.join("A.bin"), &a2, "provider copy of the new A");
}

/// A file changed offline, then deleted and written again (`git checkout -- f` after an
/// edit, `rm f; mv f.new f`): the changes never uploaded cannot reach the Trash while
/// the provider is away, so they become a Trash item in the journal; the new file is
/// there at once. Online, the Trash holds the changed versions and the provider the
/// new files.
#[test]
fn a_file_changed_then_deleted_offline_can_be_written_again() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    write_file(&m, &dir.join("notes.txt"), b"uploaded notes");
    write_file(&m, &dir.join("data.bin"), &pattern(90 * KIB, 1));
    m.sync();
    assert_lists(&m, &dir, &["data.bin", "notes.txt"], "online");
    sync_then_go_offline(&cloud, &m);

    let (notes2, data2) = (b"changed offline".to_vec(), pattern(200 * KIB, 2));
    write_file(&m, &dir.join("notes.txt"), &notes2);
    write_file(&m, &dir.join("data.bin"), &data2);
    fs::remove_file(dir.join("notes.txt")).unwrap_or_else(|e| panic!("offline rm notes: {e}\n{}", tail(&m)));
    fs::remove_file(dir.join("data.bin")).unwrap_or_else(|e| panic!("offline rm data: {e}\n{}", tail(&m)));
    write_file(&m, &dir.join("notes.txt"), b"written anew");
    let data3 = pattern(70 * KIB, 3);
    write_file(&m, &dir.join("data.new"), &data3);
    fs::rename(dir.join("data.new"), dir.join("data.bin"))
        .unwrap_or_else(|e| panic!("offline mv data.new onto the deleted data.bin: {e}\n{}", tail(&m)));
    let trash = m.mnt.join("Trash");
    let check = |m: &TestMount, when: &str| {
        assert_lists(m, &dir, &["data.bin", "notes.txt", "probe.bin"], when);
        assert_reads(m, &dir.join("notes.txt"), b"written anew", Duration::from_secs(10), when);
        assert_reads(m, &dir.join("data.bin"), &data3, Duration::from_secs(10), when);
        assert_lists(m, &trash, &["data.bin", "notes.txt"], when);
        assert_reads(m, &trash.join("notes.txt"), &notes2, Duration::from_secs(10), when);
        assert_reads(m, &trash.join("data.bin"), &data2, Duration::from_secs(10), when);
    };
    check(&m, "offline");
    let err = fs::rename(trash.join("notes.txt"), dir.join("restored.txt")).expect_err("offline restore");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline restore from Trash: {err}\n{}", tail(&m));
    m.remount();
    check(&m, "remounted offline");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    check(&m, "online, after sync");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["data.bin", "notes.txt", "probe.bin"], "what the provider holds outside its Trash");
    assert_file(&dest.join("notes.txt"), b"written anew", "provider copy of the new notes");
    assert_file(&dest.join("data.bin"), &data3, "provider copy of the new data");
    // A fresh mount reads the Trash from the provider alone.
    let mut fresh = cloud.other_device();
    let trash = fresh.mnt.join("Trash");
    assert_lists(&fresh, &trash, &["data.bin", "notes.txt"], "the Trash seen by another device");
    assert_reads(&fresh, &trash.join("notes.txt"), &notes2, Duration::from_secs(30), "notes in Trash, other device");
    assert_reads(&fresh, &trash.join("data.bin"), &data2, Duration::from_secs(30), "data in Trash, other device");
    fresh.unmount();
}

/// Offline, a new file renamed over one the provider holds replaces the version known
/// here, not whatever is there later: another device's edit made meanwhile keeps the
/// name, and ours becomes a conflict copy (nothing is overwritten unseen).
#[test]
fn a_new_file_renamed_offline_over_an_edited_one_becomes_a_conflict_copy() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    write_file(&m, &dir.join("notes.txt"), b"uploaded notes");
    sync_then_go_offline(&cloud, &m);
    write_file(&m, &dir.join("notes.new"), b"ours, renamed over");
    fs::rename(dir.join("notes.new"), dir.join("notes.txt"))
        .unwrap_or_else(|e| panic!("offline mv notes.new notes.txt: {e}\n{}", tail(&m)));
    assert_reads(&m, &dir.join("notes.txt"), b"ours, renamed over", Duration::from_secs(10), "offline");

    let mut other = cloud.other_device();
    write_file(&other, &folder(&other).join("notes.txt"), b"theirs, written elsewhere");
    other.sync();
    other.unmount();
    cloud.proxy.set(Fault::Pass);
    m.sync();
    m.unmount();
    let dest = decrypt(&m);
    let listed = names(&dest);
    assert_eq!(listed.len(), 3, "notes.txt, a conflict copy and probe.bin: {listed:?}");
    assert_file(&dest.join("notes.txt"), b"theirs, written elsewhere", "the other device's edit keeps the name");
    let copy = listed.iter().find(|n| n.starts_with("notes (conflict ") && n.ends_with(").txt"));
    let copy = copy.unwrap_or_else(|| panic!("no conflict copy of notes.txt: {listed:?}"));
    assert_file(&dest.join(copy), b"ours, renamed over", "our renamed file is in the conflict copy");
}

/// Offline, a new file and then a new symlink renamed over a file the provider holds
/// and deleted, then a folder made at that name: online again everything settles (the deleted ones reach
/// the Trash, the folder the provider) and `sync --wait` returns. Seed
/// 5314294349791968343, where the folder waited forever behind the old file.
#[test]
fn new_files_renamed_over_an_uploaded_one_and_deleted_offline_settle() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    write_file(&m, &dir.join("a"), b"uploaded a");
    sync_then_go_offline(&cloud, &m);
    write_file(&m, &dir.join("n"), b"first");
    fs::rename(dir.join("n"), dir.join("a")).unwrap_or_else(|e| panic!("offline mv n a: {e}\n{}", tail(&m)));
    fs::remove_file(dir.join("a")).unwrap_or_else(|e| panic!("offline rm a: {e}\n{}", tail(&m)));
    std::os::unix::fs::symlink("target", dir.join("n")).unwrap();
    fs::rename(dir.join("n"), dir.join("a")).unwrap_or_else(|e| panic!("offline mv n a (symlink): {e}\n{}", tail(&m)));
    fs::remove_file(dir.join("a")).unwrap_or_else(|e| panic!("offline rm a (symlink): {e}\n{}", tail(&m)));
    fs::create_dir(dir.join("a")).unwrap_or_else(|e| panic!("offline mkdir a: {e}\n{}", tail(&m)));
    write_file(&m, &dir.join("a/x"), b"inside");
    let trash = m.mnt.join("Trash");
    let check = |m: &TestMount, when: &str| {
        assert_lists(m, &dir, &["a", "probe.bin"], when);
        assert_reads(m, &dir.join("a/x"), b"inside", Duration::from_secs(10), when);
        let deleted: Vec<Vec<u8>> = names(&trash).iter().map(|n| fs::read(trash.join(n)).unwrap()).collect();
        assert!(deleted.contains(&b"first".to_vec()), "{when}: the deleted file is in Trash: {deleted:?}");
        // The version the renamed files were to replace was never overwritten on the
        // provider; online it may reach the Trash too (nothing else may).
        let known = |d: &Vec<u8>| d == b"first" || (when != "offline" && d == b"uploaded a");
        assert!(deleted.iter().all(known), "{when}: only deleted contents in Trash: {deleted:?}");
    };
    check(&m, "offline");
    cloud.proxy.set(Fault::Pass);
    m.sync();
    check(&m, "online, after sync");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["a", "probe.bin"], "what the provider holds outside its Trash");
    assert_file(&dest.join("a/x"), b"inside", "provider copy of a/x");
}

/// `rm -rf build && mkdir build` offline over a folder uploaded before, twice, and a
/// file over a deleted folder and a folder over a deleted file: the new ones are usable
/// at once and survive a remount; online again, the old ones reach the Trash whole and
/// the provider holds the new ones. Renaming the new folder offline (its old one still at
/// its place on the provider) fails with EIO and changes nothing, also over an empty folder.
#[test]
fn a_folder_deleted_offline_can_be_made_again_at_once() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let build = dir.join("build");
    fs::create_dir_all(build.join("sub/empty")).unwrap();
    let (old_a, old_b) = (pattern(40 * KIB, 1), pattern(3 * KIB, 2));
    write_file(&m, &build.join("a.o"), &old_a);
    write_file(&m, &build.join("sub/b.o"), &old_b);
    fs::create_dir(dir.join("other")).unwrap();
    write_file(&m, &dir.join("other/inner.txt"), b"inner");
    write_file(&m, &dir.join("note"), b"old note");
    write_file(&m, &dir.join("gone.txt"), b"restore me");
    m.sync();
    fs::remove_file(dir.join("gone.txt")).unwrap();
    m.sync();
    assert_lists(&m, &dir, &["build", "note", "other"], "online");
    let trash = m.mnt.join("Trash");
    assert_lists(&m, &trash, &["gone.txt"], "online, after rm gone.txt");
    sync_then_go_offline(&cloud, &m);

    let sh = |script: &str, when: &str| {
        let out = Command::new("sh").arg("-c").arg(script).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{when}: {script}: {}\n{}", String::from_utf8_lossy(&out.stderr), tail(&m));
    };
    let rebuild = |tag: u8, when: &str| {
        sh("rm -rf build", when);
        assert!(!try_names(&dir).unwrap().contains(&"build".to_owned()), "{when}: build still listed\n{}", tail(&m));
        sh("mkdir -p build/sub build/gen", when);
        let (a, c) = (pattern(41 * KIB, tag), pattern(2 * KIB, tag + 1));
        write_file(&m, &build.join("a.o"), &a);
        write_file(&m, &build.join("sub/c.o"), &c);
        assert_lists(&m, &build, &["a.o", "gen", "sub"], when);
        assert_lists(&m, &build.join("sub"), &["c.o"], when);
        (a, c)
    };
    rebuild(10, "offline, first rebuild");
    let err = fs::rename(&build, dir.join("build2")).expect_err("offline mv of the new build");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mv build build2: {err}\n{}", tail(&m));
    // Nor over an empty folder, which a refused rename must leave in place.
    fs::create_dir(dir.join("empty")).unwrap();
    let err = fs::rename(&build, dir.join("empty")).expect_err("offline mv of the new build over an empty folder");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mv build empty: {err}\n{}", tail(&m));
    fs::remove_dir(dir.join("empty")).unwrap_or_else(|e| panic!("rmdir empty after the refused mv: {e}\n{}", tail(&m)));
    assert_lists(&m, &dir, &["build", "note", "other", "probe.bin"], "offline, after the failed mv");
    let (a, c) = rebuild(20, "offline, second rebuild");
    sh("rm -rf other && printf 'now a file' > other && rm note && mkdir note && printf in > note/in.txt", "offline");
    assert_lists(&m, &dir.join("note"), &["in.txt"], "offline, the folder over the deleted note");
    // The listing says so too (a kind different from the lookup's is EIO in the kernel).
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let listed = e.file_type().unwrap();
        let kind = fs::symlink_metadata(e.path()).unwrap_or_else(|err| panic!("lstat {name}: {err}\n{}", tail(&m)));
        assert_eq!(
            listed.is_dir(),
            kind.is_dir(),
            "offline: {name} listed as dir {} but is dir {}",
            listed.is_dir(),
            kind.is_dir()
        );
    }
    // The Trash mover waits for deletions to pause for the write-back delay.
    m.mount_args = ["--write-back", "8"].map(String::from).to_vec();
    m.remount();
    assert_lists(&m, &build, &["a.o", "gen", "sub"], "remounted offline");
    assert_reads(&m, &build.join("a.o"), &a, Duration::from_secs(10), "remounted offline, the new a.o");
    assert_reads(&m, &build.join("sub/c.o"), &c, Duration::from_secs(10), "remounted offline, the new c.o");
    assert_reads(&m, &dir.join("other"), b"now a file", Duration::from_secs(10), "remounted offline, the file other");

    // Back online, by itself (no `sync`): a delete just before keeps the Trash mover
    // waiting, while the new folders are due at once; they must still wait for the old
    // one to be in the Trash, or the new files would land in it. (First the mount
    // learns it is offline, so that no attempt from its start is still under way.)
    wait_status(&m, Duration::from_secs(30), "the remounted store knows it is offline", |s| {
        provider_line(s, NAME).starts_with(&format!("{NAME}: OFFLINE"))
    });
    std::thread::sleep(Duration::from_secs(3));
    fs::remove_file(dir.join("probe.bin")).unwrap_or_else(|e| panic!("offline rm probe.bin: {e}\n{}", tail(&m)));
    cloud.proxy.set(Fault::Pass);
    // Restored into the new build while the old one most likely still waits for the
    // Trash mover: the restore moves it first (it once waited for itself there).
    wait_status(&m, Duration::from_secs(30), "online again", |s| {
        provider_line(s, NAME).starts_with(&format!("{NAME}: online"))
    });
    let out = output_within(
        Command::new("mv").arg(trash.join("gone.txt")).arg(build.join("restored")),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "mv out of Trash into build: {}\n{}", String::from_utf8_lossy(&out.stderr), tail(&m));
    wait_status(&m, Duration::from_secs(120), "everything reaches the provider once it is back", |s| {
        let l = provider_line(s, NAME);
        l.starts_with(&format!("{NAME}: online"))
            && l.contains("all uploaded")
            && !l.contains("moving to Trash")
            && !l.contains("old names wait")
    });
    assert_lists(&m, &trash, &["build", "note", "other", "probe.bin"], "Trash once the provider is back");
    assert_lists(&m, &trash.join("other"), &["inner.txt"], "the old folder other in Trash");
    assert_reads(&m, &trash.join("note"), b"old note", Duration::from_secs(30), "the old note in Trash");
    assert_lists(&m, &trash.join("build"), &["a.o", "sub"], "the old build in Trash");
    assert_lists(&m, &trash.join("build/sub"), &["b.o", "empty"], "the old build/sub in Trash");
    assert_reads(&m, &trash.join("build/a.o"), &old_a, Duration::from_secs(30), "the old a.o in Trash");
    assert_reads(&m, &trash.join("build/sub/b.o"), &old_b, Duration::from_secs(30), "the old b.o in Trash");
    assert_lists(&m, &build, &["a.o", "gen", "restored", "sub"], "online");
    assert_reads(&m, &build.join("restored"), b"restore me", Duration::from_secs(30), "the restored file");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["build", "note", "other"], "what the provider holds outside its Trash");
    assert_file(&dest.join("other"), b"now a file", "provider copy of the file other");
    assert_file(&dest.join("note/in.txt"), b"in", "provider copy of note/in.txt");
    assert_eq!(names(&dest.join("build")), ["a.o", "gen", "restored", "sub"], "the provider's new build");
    assert_eq!(names(&dest.join("build/sub")), ["c.o"], "the provider's new build/sub");
    assert_file(&dest.join("build/a.o"), &a, "provider copy of the new a.o");
    assert_file(&dest.join("build/sub/c.o"), &c, "provider copy of the new c.o");
}

/// `mv proj work` offline, for a folder whose files are all here: the journal copies
/// it (new folders, new files, the old names hidden). Back online the new tree is
/// uploaded, then the old folder goes: for good when nothing else is in it, to the
/// Trash when another device added a file to it meanwhile (nothing is lost). What was
/// deleted inside before the rename reaches the Trash as usual. A folder holding a
/// file that is not here cannot be renamed offline (EIO, nothing changes).
#[test]
fn a_folder_renamed_offline_is_copied_in_the_journal() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, b, big) = (pattern(3 * KIB, 1), pattern(70 * KIB, 2), pattern(MIB + 5, 3));
    fs::create_dir_all(dir.join("proj/sub/deep")).unwrap();
    fs::create_dir_all(dir.join("docs")).unwrap();
    fs::create_dir_all(dir.join("cold")).unwrap();
    fs::create_dir_all(dir.join("tmp")).unwrap();
    write_file(&m, &dir.join("tmp/t.txt"), b"renamed, then deleted");
    write_file(&m, &dir.join("proj/a.txt"), &a);
    write_file(&m, &dir.join("proj/sub/b.bin"), &b);
    write_file(&m, &dir.join("proj/big.bin"), &big);
    write_file(&m, &dir.join("proj/del.txt"), b"deleted before the rename");
    write_file(&m, &dir.join("proj/edit.txt"), b"first");
    std::os::unix::fs::symlink("a.txt", dir.join("proj/link")).unwrap();
    write_file(&m, &dir.join("docs/d.txt"), b"docs");
    write_file(&m, &dir.join("cold/c.bin"), &b);
    m.sync();
    cli_paths(&m, "free", &[&dir.join("cold/c.bin")]);
    // Listed once online (as a file manager would): the mirror knows every folder.
    for d in ["", "proj", "proj/sub", "proj/sub/deep", "docs", "cold", "tmp"] {
        try_names(&dir.join(d)).unwrap_or_else(|e| panic!("list {d}: {e}"));
    }
    sync_then_go_offline(&cloud, &m);

    fs::remove_file(dir.join("proj/del.txt")).unwrap_or_else(|e| panic!("offline rm del.txt: {e}\n{}", tail(&m)));
    write_file(&m, &dir.join("proj/edit.txt"), b"second");
    fs::create_dir(dir.join("proj/new")).unwrap_or_else(|e| panic!("offline mkdir proj/new: {e}\n{}", tail(&m)));
    write_file(&m, &dir.join("proj/new/n.txt"), b"made offline");
    let err =
        fs::rename(dir.join("cold"), dir.join("cold2")).expect_err("offline mv of a folder with an uncached file");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mv cold cold2: {err}\n{}", tail(&m));
    assert!(m.log().contains("cannot be renamed now"), "no clear log line for the refused rename\n{}", tail(&m));
    assert_lists(&m, &dir.join("cold"), &["c.bin"], "offline, after the refused mv");
    // Refused over an empty folder too, which stays.
    fs::create_dir(dir.join("landing")).unwrap();
    let err = fs::rename(dir.join("cold"), dir.join("landing")).expect_err("offline mv of cold over an empty folder");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mv cold landing: {err}\n{}", tail(&m));
    assert_lists(&m, &dir.join("landing"), &[], "offline, after the refused mv over it");
    assert_lists(&m, &dir.join("cold"), &["c.bin"], "offline, after the refused mv over landing");
    fs::remove_dir(dir.join("landing")).unwrap();
    for (from, to) in [("proj", "work"), ("work/sub", "work/sub2"), ("docs", "docs2")] {
        fs::rename(dir.join(from), dir.join(to))
            .unwrap_or_else(|e| panic!("offline mv {from} {to}: {e}\n{}", tail(&m)));
    }
    fs::rename(dir.join("tmp"), dir.join("tmp2")).unwrap_or_else(|e| panic!("offline mv tmp tmp2: {e}\n{}", tail(&m)));
    fs::remove_dir_all(dir.join("tmp2")).unwrap_or_else(|e| panic!("offline rm -rf tmp2: {e}\n{}", tail(&m)));
    let work = dir.join("work");
    let check_work = |m: &TestMount, when: &str| {
        assert_lists(m, &dir, &["cold", "docs2", "probe.bin", "work"], when);
        assert_lists(m, &work, &["a.txt", "big.bin", "edit.txt", "link", "new", "sub2"], when);
        assert_lists(m, &work.join("sub2"), &["b.bin", "deep"], when);
        assert_lists(m, &work.join("sub2/deep"), &[], when);
        assert_reads(m, &work.join("a.txt"), &a, Duration::from_secs(10), when);
        assert_reads(m, &work.join("big.bin"), &big, Duration::from_secs(10), when);
        assert_reads(m, &work.join("sub2/b.bin"), &b, Duration::from_secs(10), when);
        assert_reads(m, &work.join("edit.txt"), b"second", Duration::from_secs(10), when);
        assert_reads(m, &work.join("new/n.txt"), b"made offline", Duration::from_secs(10), when);
        assert_reads(m, &work.join("link"), &a, Duration::from_secs(10), when);
        assert_eq!(fs::read_link(work.join("link")).unwrap(), Path::new("a.txt"), "{when}: the symlink");
        assert_reads(m, &dir.join("docs2/d.txt"), b"docs", Duration::from_secs(10), when);
    };
    check_work(&m, "offline, after the renames");
    let st = status(&m);
    assert!(st.contains("renamed items whose old names wait to go"), "offline status after the renames:\n{st}");
    let trash = m.mnt.join("Trash");
    assert_lists(&m, &trash, &["del.txt", "tmp2"], "offline Trash after the renames");
    m.remount();
    check_work(&m, "remounted offline");

    // Meanwhile another device, online, adds a file to the old folder.
    let mut other = cloud.other_device();
    write_file(&other, &folder(&other).join("proj/other.txt"), b"from another device");
    other.sync();
    other.unmount();

    cloud.proxy.set(Fault::Pass);
    m.sync();
    check_work(&m, "back online, after sync");
    let st = status(&m);
    assert!(!st.contains("old names") && st.contains("all uploaded"), "status after sync:\n{st}");
    assert_lists(&m, &trash, &["del.txt", "proj", "tmp2"], "Trash once the provider is back");
    assert_lists(&m, &trash.join("tmp2"), &["t.txt"], "the folder renamed, then deleted, in Trash");
    assert_reads(&m, &trash.join("tmp2/t.txt"), b"renamed, then deleted", Duration::from_secs(30), "tmp2/t.txt");
    assert_reads(&m, &trash.join("del.txt"), b"deleted before the rename", Duration::from_secs(30), "del.txt in Trash");
    let old = try_names(&trash.join("proj")).unwrap_or_else(|e| panic!("list Trash/proj: {e}\n{}", tail(&m)));
    assert!(old.contains(&"other.txt".to_owned()), "the other device's file in Trash/proj: {old:?}\n{}", tail(&m));
    assert!(!old.iter().any(|n| n.ends_with(".txt") && n != "other.txt"), "moved files left in Trash/proj: {old:?}");
    assert_reads(&m, &trash.join("proj/other.txt"), b"from another device", Duration::from_secs(30), "other.txt");
    m.unmount();

    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["cold", "docs2", "probe.bin", "work"], "what the provider holds outside its Trash");
    assert_eq!(
        names(&dest.join("work")),
        ["a.txt", "big.bin", "edit.txt", "link", "new", "sub2"],
        "the provider's work"
    );
    assert_eq!(names(&dest.join("work/sub2")), ["b.bin", "deep"], "the provider's work/sub2");
    assert_file(&dest.join("work/a.txt"), &a, "provider copy of work/a.txt");
    assert_file(&dest.join("work/big.bin"), &big, "provider copy of work/big.bin");
    assert_file(&dest.join("work/sub2/b.bin"), &b, "provider copy of work/sub2/b.bin");
    assert_file(&dest.join("work/edit.txt"), b"second", "provider copy of work/edit.txt");
    assert_file(&dest.join("work/new/n.txt"), b"made offline", "provider copy of work/new/n.txt");
    assert_file(&dest.join("docs2/d.txt"), b"docs", "provider copy of docs2/d.txt");
    assert_file(&dest.join("cold/c.bin"), &b, "provider copy of cold/c.bin, not moved");
}

/// The first request after the network drops finds out; when that request is a
/// folder's rename, it is journaled like any offline one instead of failing.
#[test]
fn a_folder_renamed_right_after_the_network_drops_is_journaled() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    fs::create_dir_all(dir.join("proj/sub")).unwrap();
    write_file(&m, &dir.join("proj/a.txt"), b"alpha");
    write_file(&m, &dir.join("proj/sub/b.txt"), b"beta");
    m.sync();
    assert_lists(&m, &dir.join("proj"), &["a.txt", "sub"], "online");
    assert_lists(&m, &dir.join("proj/sub"), &["b.txt"], "online");
    assert!(provider_line(&status(&m), NAME).contains("online"), "online before the drop");

    // Listed just before: the new name's absence is known without asking the provider.
    assert_lists(&m, &dir, &["proj"], "online");
    cloud.proxy.set(Fault::Refuse);
    fs::rename(dir.join("proj"), dir.join("work"))
        .unwrap_or_else(|e| panic!("mv proj work right after the drop: {e}\n{}", tail(&m)));
    assert!(provider_line(&status(&m), NAME).contains("OFFLINE"), "the rename found the provider gone");
    assert_lists(&m, &dir, &["work"], "offline, after the rename");
    assert_reads(&m, &dir.join("work/a.txt"), b"alpha", Duration::from_secs(10), "offline");
    assert_reads(&m, &dir.join("work/sub/b.txt"), b"beta", Duration::from_secs(10), "offline");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    assert_lists(&m, &dir, &["work"], "back online");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["work"], "what the provider holds outside its Trash");
    assert_file(&dest.join("work/a.txt"), b"alpha", "provider copy of work/a.txt");
    assert_file(&dest.join("work/sub/b.txt"), b"beta", "provider copy of work/sub/b.txt");
}

/// Online, a folder renamed on S3 (every object copied, so each gets a new provider
/// mtime) with a file edited and not yet uploaded, a file whose mtime was set here and
/// a file just renamed out of it in the journal: the edit uploads without a conflict
/// copy, the set mtime stays, and the renamed-away file does not come back.
#[test]
fn a_folder_renamed_online_keeps_what_this_device_recorded_of_its_files() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    fs::create_dir(dir.join("proj")).unwrap();
    for (name, data) in [("a.txt", &b"alpha"[..]), ("b.txt", b"beta"), ("c.txt", b"gamma")] {
        write_file(&m, &dir.join("proj").join(name), data);
    }
    m.sync();
    // The rename's copies must land in a later second than the uploads.
    std::thread::sleep(Duration::from_millis(1100));
    let set = std::time::UNIX_EPOCH + Duration::from_secs(978_307_200);
    File::options().write(true).open(dir.join("proj/b.txt")).unwrap().set_modified(set).unwrap();
    fs::write(dir.join("proj/a.txt"), b"alpha, edited").unwrap();
    fs::rename(dir.join("proj/c.txt"), dir.join("c.txt")).unwrap();
    fs::rename(dir.join("proj"), dir.join("work")).unwrap_or_else(|e| panic!("mv proj work: {e}\n{}", tail(&m)));
    m.sync();
    // Past the kernel's attribute cache, and after a poll of the provider.
    std::thread::sleep(Duration::from_millis(1100));
    cli(&m, &["sync", "--now"]);
    let check = |m: &TestMount, when: &str| {
        assert_lists(m, &dir, &["c.txt", "work"], when);
        assert_lists(m, &dir.join("work"), &["a.txt", "b.txt"], when);
        assert_reads(m, &dir.join("work/a.txt"), b"alpha, edited", Duration::from_secs(10), when);
        let mtime = fs::metadata(dir.join("work/b.txt")).unwrap().modified().unwrap();
        assert_eq!(mtime, set, "{when}: the mtime set on b.txt");
    };
    check(&m, "after the rename and a sync");
    m.remount();
    check(&m, "after a remount");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest.join("work")), ["a.txt", "b.txt"], "what the provider holds in work");
    assert_file(&dest.join("work/a.txt"), b"alpha, edited", "provider copy of work/a.txt");
    assert_file(&dest.join("c.txt"), b"gamma", "provider copy of c.txt");
}

/// Offline, in a folder made where one was deleted, a new symlink renamed onto the
/// name of a file deleted in the old folder, then out of the new folder, which is then
/// removed: the symlink stays, across a remount, and reaches the provider.
#[test]
fn a_symlink_renamed_out_of_a_folder_made_over_a_deleted_one_stays() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    fs::create_dir_all(dir.join("b")).unwrap();
    write_file(&m, &dir.join("b/b"), b"deleted offline");
    sync_then_go_offline(&cloud, &m);
    fs::remove_file(dir.join("b/b")).unwrap();
    fs::remove_dir(dir.join("b")).unwrap();
    fs::create_dir(dir.join("b")).unwrap();
    std::os::unix::fs::symlink("target", dir.join("e.txt")).unwrap();
    fs::rename(dir.join("e.txt"), dir.join("b/b"))
        .unwrap_or_else(|e| panic!("offline mv e.txt b/b: {e}\n{}", tail(&m)));
    fs::rename(dir.join("b/b"), dir.join("c")).unwrap_or_else(|e| panic!("offline mv b/b c: {e}\n{}", tail(&m)));
    fs::remove_dir(dir.join("b")).unwrap_or_else(|e| panic!("offline rmdir b: {e}\n{}", tail(&m)));
    assert_eq!(fs::read_link(dir.join("c")).unwrap(), Path::new("target"));
    m.remount();
    let link = fs::read_link(dir.join("c")).unwrap_or_else(|e| panic!("readlink c after a remount: {e}\n{}", tail(&m)));
    assert_eq!(link, Path::new("target"), "after a remount offline");
    cloud.proxy.set(Fault::Pass);
    m.sync();
    assert_eq!(fs::read_link(dir.join("c")).unwrap(), Path::new("target"), "back online");
    assert_lists(&m, &dir, &["c", "probe.bin"], "back online");
    assert_lists(&m, &m.mnt.join("Trash"), &["b"], "Trash");
    assert_reads(&m, &m.mnt.join("Trash/b/b"), b"deleted offline", Duration::from_secs(30), "Trash/b/b");
}

/// Offline, `top/sub` and `top/sub2` renamed away (in the journal), `top` deleted and
/// made again: new names at `top/sub` (a folder) and `top/sub2` (a file) show at once;
/// a folder renamed onto `top/sub` before then is refused (EIO: that place is freed only
/// when the old `top` goes), changing nothing. Back online the old `top` goes for good
/// (only the old names of renamed files were left in it) and nothing of it comes back.
#[test]
fn a_folder_made_where_one_was_renamed_away_offline_shows() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (x, y) = (pattern(5 * KIB, 1), pattern(9 * KIB, 2));
    fs::create_dir_all(dir.join("top/sub/deep")).unwrap();
    fs::create_dir_all(dir.join("top/sub2")).unwrap();
    write_file(&m, &dir.join("top/sub/x.bin"), &x);
    write_file(&m, &dir.join("top/sub2/y.bin"), &y);
    for d in ["", "top", "top/sub", "top/sub/deep", "top/sub2"] {
        try_names(&dir.join(d)).unwrap_or_else(|e| panic!("list {d}: {e}"));
    }
    sync_then_go_offline(&cloud, &m);

    for (from, to) in [("top/sub", "moved"), ("top/sub2", "moved2")] {
        fs::rename(dir.join(from), dir.join(to))
            .unwrap_or_else(|e| panic!("offline mv {from} {to}: {e}\n{}", tail(&m)));
    }
    fs::remove_dir(dir.join("top")).unwrap_or_else(|e| panic!("offline rmdir top: {e}\n{}", tail(&m)));
    fs::create_dir(dir.join("top")).unwrap_or_else(|e| panic!("offline mkdir top: {e}\n{}", tail(&m)));
    fs::create_dir(dir.join("made")).unwrap();
    let err = fs::rename(dir.join("made"), dir.join("top/sub")).expect_err("offline mv made top/sub");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline mv made top/sub: {err}\n{}", tail(&m));
    assert_lists(&m, &dir.join("top"), &[], "offline, after the refused mv");
    fs::remove_dir(dir.join("made")).unwrap_or_else(|e| panic!("rmdir made after the refused mv: {e}\n{}", tail(&m)));
    fs::create_dir(dir.join("top/sub")).unwrap_or_else(|e| panic!("offline mkdir top/sub: {e}\n{}", tail(&m)));
    write_file(&m, &dir.join("top/sub/new.txt"), b"new");
    write_file(&m, &dir.join("top/sub2"), b"a file now");
    let check = |m: &TestMount, when: &str| {
        assert_lists(m, &dir, &["moved", "moved2", "probe.bin", "top"], when);
        assert_lists(m, &dir.join("top"), &["sub", "sub2"], when);
        assert_lists(m, &dir.join("top/sub"), &["new.txt"], when);
        assert_reads(m, &dir.join("top/sub/new.txt"), b"new", Duration::from_secs(10), when);
        assert_reads(m, &dir.join("top/sub2"), b"a file now", Duration::from_secs(10), when);
        assert_lists(m, &dir.join("moved"), &["deep", "x.bin"], when);
        assert_reads(m, &dir.join("moved/x.bin"), &x, Duration::from_secs(10), when);
        assert_reads(m, &dir.join("moved2/y.bin"), &y, Duration::from_secs(10), when);
    };
    check(&m, "offline");
    m.remount();
    check(&m, "remounted offline");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    check(&m, "back online, after sync");
    assert_lists(&m, &m.mnt.join("Trash"), &[], "Trash: the old top held only renamed files' old names");
    m.unmount();
    let dest = decrypt(&m);
    assert_eq!(names(&dest), ["moved", "moved2", "probe.bin", "top"], "what the provider holds");
    assert_eq!(names(&dest.join("top")), ["sub", "sub2"], "the provider's new top");
    assert_eq!(names(&dest.join("top/sub")), ["new.txt"], "the provider's new top/sub");
    assert_file(&dest.join("top/sub/new.txt"), b"new", "provider copy of top/sub/new.txt");
    assert_file(&dest.join("top/sub2"), b"a file now", "provider copy of top/sub2");
    assert_eq!(names(&dest.join("moved")), ["deep", "x.bin"], "the provider's moved");
    assert_file(&dest.join("moved/x.bin"), &x, "provider copy of moved/x.bin");
    assert_file(&dest.join("moved2/y.bin"), &y, "provider copy of moved2/y.bin");
}

/// `tar -x` offline over a tree extracted online: tar unlinks each existing file and
/// creates it again.
#[test]
fn tar_extracts_over_an_uploaded_tree_offline() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let work = tempfile::tempdir().unwrap();
    let make_tar = |name: &str, tag: u8| {
        let src = work.path().join(name).join("tree");
        fs::create_dir_all(src.join("sub")).unwrap();
        for (file, len) in [("a.txt", 10), ("sub/b.bin", 70 * KIB), ("sub/c.bin", 300 * KIB)] {
            fs::write(src.join(file), pattern(len, tag.wrapping_add(len as u8))).unwrap();
        }
        let tar = work.path().join(format!("{name}.tar"));
        let out =
            Command::new("tar").arg("-C").arg(src.parent().unwrap()).arg("-cf").arg(&tar).arg("tree").output().unwrap();
        assert!(out.status.success(), "tar -c: {}", String::from_utf8_lossy(&out.stderr));
        (tar, src)
    };
    let (old_tar, _) = make_tar("old", 1);
    let (new_tar, new_src) = make_tar("new", 2);
    let dir = folder(&m);
    let untar = |tar: &Path, when: &str| {
        let out = Command::new("tar").arg("-C").arg(&dir).arg("-xf").arg(tar).output().unwrap();
        assert!(out.status.success(), "{when}: tar -x: {}\n{}", String::from_utf8_lossy(&out.stderr), tail(&m));
    };
    untar(&old_tar, "online");
    sync_then_go_offline(&cloud, &m);
    untar(&new_tar, "offline, over the uploaded tree");
    for file in ["a.txt", "sub/b.bin", "sub/c.bin"] {
        let want = fs::read(new_src.join(file)).unwrap();
        assert_reads(&m, &dir.join("tree").join(file), &want, Duration::from_secs(10), "offline, extracted again");
    }

    cloud.proxy.set(Fault::Pass);
    m.sync();
    let trash = m.mnt.join("Trash");
    assert_eq!(try_names(&trash).unwrap().len(), 3, "the three old files in Trash\n{}", tail(&m));
    m.unmount();
    let dest = decrypt(&m).join("tree");
    for file in ["a.txt", "sub/b.bin", "sub/c.bin"] {
        assert_file(&dest.join(file), &fs::read(new_src.join(file)).unwrap(), file);
    }
}

/// `git checkout` of another branch while offline, in a repository made online: git
/// unlinks and recreates the files that differ, and renames its index into place.
#[test]
fn git_checkout_works_offline() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let repo = folder(&m).join("repo");
    fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let mut all = vec!["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"];
        all.extend_from_slice(args);
        let out = Command::new("git").args(&all).current_dir(&repo).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&m)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q"]);
    fs::write(repo.join("a.txt"), "one\n").unwrap();
    fs::write(repo.join("same.txt"), "same\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    git(&["checkout", "-qb", "other"]);
    fs::write(repo.join("a.txt"), "two\n").unwrap();
    fs::write(repo.join("b.txt"), "bee\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "two"]);
    git(&["checkout", "-q", "main"]);
    sync_then_go_offline(&cloud, &m);
    git(&["checkout", "-q", "other"]);
    assert_eq!(fs::read_to_string(repo.join("a.txt")).unwrap(), "two\n");
    assert_eq!(fs::read_to_string(repo.join("b.txt")).unwrap(), "bee\n");
    assert_eq!(git(&["status", "--porcelain"]), "", "offline, after checkout");
    git(&["checkout", "-q", "main"]);
    assert_eq!(fs::read_to_string(repo.join("a.txt")).unwrap(), "one\n");
    assert!(!repo.join("b.txt").exists());
    // An edit of a file uploaded before, thrown away: git unlinks the edited file and
    // writes it anew.
    fs::write(repo.join("same.txt"), "edited offline\n").unwrap();
    git(&["checkout", "--", "same.txt"]);
    assert_eq!(fs::read_to_string(repo.join("same.txt")).unwrap(), "same\n", "offline, after checkout -- same.txt");

    cloud.proxy.set(Fault::Pass);
    m.sync();
    assert_eq!(git(&["status", "--porcelain"]), "", "online again");
    m.unmount();
    let dest = decrypt(&m).join("repo");
    assert_file(&dest.join("a.txt"), b"one\n", "provider copy of a.txt");
    assert!(!dest.join("b.txt").exists(), "b.txt is only in the other branch");
    let fsck = Command::new("git").args(["fsck", "--full"]).current_dir(&dest).output().unwrap();
    assert!(fsck.status.success(), "git fsck of the provider's copy: {}", String::from_utf8_lossy(&fsck.stderr));
}

/// A cached file opened for writing and closed without a write (a database opened
/// read-write and only read) stays cached: offline, after a remount, it reads.
#[test]
fn a_file_opened_for_writing_and_closed_unchanged_stays_cached() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, _) = cached_a_uncached_b(&m);
    drop(OpenOptions::new().read(true).write(true).open(dir.join("A.bin")).unwrap());
    sync_then_go_offline(&cloud, &m);
    m.remount();
    assert_reads(&m, &dir.join("A.bin"), &a, Duration::from_secs(10), "offline, remounted");
}

/// A file written here with a hole (a write past its end) is cached whole once
/// uploaded: offline, after a remount (no kernel page cache), it reads whole, the hole
/// as zeros.
#[test]
fn a_sparse_file_written_here_reads_offline() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let path = dir.join("sparse.bin");
    let f = OpenOptions::new().write(true).create(true).truncate(true).open(&path).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", 3 * MIB as u64).unwrap();
    drop(f);
    let mut want = vec![0u8; 3 * MIB + 4];
    want[..4].copy_from_slice(b"head");
    want[3 * MIB..].copy_from_slice(b"tail");
    assert_lists(&m, &dir, &["sparse.bin"], "online");
    sync_then_go_offline(&cloud, &m);
    m.remount();
    assert_reads(&m, &path, &want, Duration::from_secs(10), "offline, remounted");
}

/// The provider's top folder lists offline even if nobody opened it while online: the
/// mount lists it once when it starts (here another device filled it before).
#[test]
fn the_top_folder_lists_offline_without_being_opened_first() {
    let cloud = Cloud::start();
    let mut other = cloud.other_device();
    fs::create_dir(folder(&other).join("shared")).unwrap();
    write_file(&other, &folder(&other).join("shared/x.txt"), b"x");
    write_file(&other, &folder(&other).join("top.txt"), b"top");
    other.sync();
    other.unmount();

    let m = cloud.mount();
    let dir = folder(&m);
    write_file(&m, &dir.join("shared/y.txt"), b"y");
    sync_then_go_offline(&cloud, &m);
    assert_lists(&m, &dir, &["probe.bin", "shared", "top.txt"], "offline, the top folder never opened");
}

/// A folder never listed online cannot be listed offline (the mirror cannot know all of
/// it: EIO, quickly, as SEMANTICS.md says), but the files this mount wrote there still
/// read by name: their uploads recorded them. (The provider's top folder is listed when
/// the mount starts, so this is a folder another device made.)
#[test]
fn offline_folder_never_listed_reads_by_name() {
    let cloud = Cloud::start();
    let mut other = cloud.other_device();
    fs::create_dir(folder(&other).join("sub")).unwrap();
    other.sync();
    other.unmount();
    let m = cloud.mount();
    let dir = folder(&m).join("sub");
    let a = pattern(MIB, 1);
    write_file(&m, &dir.join("A.bin"), &a);
    write_file(&m, &dir.join("B.bin"), &pattern(200 * KIB, 2));
    m.sync();
    cloud.proxy.set(Fault::Refuse);
    assert_reads(&m, &dir.join("A.bin"), &a, Duration::from_secs(10), "offline, A (cached by its upload)");
    let started = Instant::now();
    let err = try_names(&dir).expect_err("listing a never-listed folder offline");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "offline listing: {err}\n{}", tail(&m));
    assert!(started.elapsed() < Duration::from_secs(5), "offline listing took {:?}", started.elapsed());
}

// ---- 2 (and 6). mounting offline ----------------------------------------------------

/// Also covers "the cache survives a remount and serves without the provider".
#[test]
fn mount_while_offline_uses_the_local_state() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);
    // A second online session, so this test does not depend on what the first one
    // (which created the vault) remembers: `mount_offline_right_after_creating_the_store`
    // is about that.
    m.remount();
    assert_lists(&m, &dir, &["A.bin", "B.bin"], "second online mount");
    m.unmount();

    cloud.proxy.set(Fault::Refuse);
    m.mount();
    assert!(
        m.log().contains("working offline"),
        "mounting with the provider unreachable should log \"working offline\"\n{}",
        tail(&m)
    );
    assert_lists(&m, &dir, &["A.bin", "B.bin"], "after an offline mount");
    // The block cache persisted: A is served from it.
    assert_reads(&m, &dir.join("A.bin"), &a, Duration::from_secs(10), "offline mount, cached A");
    assert_read_eio(&m, &dir.join("B.bin"), Duration::from_secs(15), "offline mount, uncached B");

    let d = pattern(150 * KIB, 5);
    write_file(&m, &dir.join("D.bin"), &d);
    assert_state(&m, &dir.join("D.bin"), "dirty");
    let s = status(&m);
    assert!(provider_line(&s, NAME).contains("1 pending uploads"), "status after an offline write:\n{s}\n{}", tail(&m));

    cloud.proxy.set(Fault::Pass);
    m.sync();
    assert_reads(&m, &dir.join("B.bin"), &b, Duration::from_secs(30), "back online, B");
    m.unmount();
    let dest = decrypt(&m);
    assert_file(&dest.join("A.bin"), &a, "provider copy of A");
    assert_file(&dest.join("D.bin"), &d, "provider copy of D (written while mounted offline)");
}

/// The first mount of an encrypted provider creates its vault; a mount right after it,
/// with the provider unreachable, starts offline from what that first mount kept.
#[test]
fn mount_offline_right_after_creating_the_store() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let dir = folder(&m);
    let (a, _) = cached_a_uncached_b(&m);
    m.unmount();

    cloud.proxy.set(Fault::Refuse);
    m.mount();
    assert!(
        m.log().contains("working offline") && !m.log().contains("provider unavailable"),
        "mounting with the provider unreachable, after the mount that created its vault, should work offline\n{}",
        tail(&m)
    );
    assert_lists(&m, &dir, &["A.bin", "B.bin"], "offline mount after the first one");
    assert_reads(&m, &dir.join("A.bin"), &a, Duration::from_secs(10), "offline mount after the first one, cached A");
}

/// Requests that need no network (the provider's top folder always exists) must not
/// count as the provider answering: while it refuses, the store stays offline through
/// any number of probes, and `status` keeps saying so.
#[test]
fn stays_offline_until_the_provider_really_answers() {
    let cloud = Cloud::start();
    let m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);
    cloud.proxy.set(Fault::Refuse);
    assert_read_eio(&m, &dir.join("B.bin"), Duration::from_secs(15), "offline, uncached B");
    // 12 s of ordinary use: past two offline windows (5 s each), so it probes twice.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        let _ = fs::metadata(&dir);
        let _ = fs::metadata(dir.join("A.bin"));
        let _ = try_names(&dir);
        assert_reads(&m, &dir.join("A.bin"), &a, Duration::from_secs(10), "offline, cached A");
        std::thread::sleep(Duration::from_millis(300));
    }
    let s = status(&m);
    assert!(
        provider_line(&s, NAME).starts_with(&format!("{NAME}: OFFLINE")) && !m.log().contains("reachable again"),
        "after 12 s of a refusing provider, status should still say OFFLINE and nothing should log it reachable:\n{s}\n{}",
        tail(&m)
    );

    // The first real answer brings it back.
    cloud.proxy.set(Fault::Pass);
    let start = Instant::now();
    loop {
        let _ = fs::metadata(dir.join("A.bin"));
        let s = status(&m);
        if provider_line(&s, NAME).starts_with(&format!("{NAME}: online")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still offline 30 s after the provider came back:\n{s}\n{}",
            tail(&m)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_reads(&m, &dir.join("B.bin"), &b, Duration::from_secs(30), "back online, B");
}

// ---- 3. a hung provider --------------------------------------------------------------

#[test]
fn hang_times_out_and_does_not_stall_cached_reads() {
    let cloud = Cloud::start();
    let m = cloud.mount();
    let dir = folder(&m);
    let (a, b) = cached_a_uncached_b(&m);

    cloud.proxy.set(Fault::Hang);
    let (tx, rx) = mpsc::channel();
    let bp = dir.join("B.bin");
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = fs::read(&bp);
        let _ = tx.send((r, t.elapsed()));
    });
    // While the uncached read waits for the hung provider, cached reads and stats are
    // timed, for as long as it lasts (at most 25 s) and at least 15 s: past the first
    // offline window (~5 s after the first timeout), so the next probe of the hung
    // provider is covered too. Everything is measured first and judged after, so a
    // failure reports all of it.
    let start = Instant::now();
    let mut stats: Vec<(Duration, Duration)> = Vec::new(); // (since start, took)
    let mut reads: Vec<(Duration, Duration)> = Vec::new();
    let mut uncached = None;
    while start.elapsed() < Duration::from_secs(25) && (uncached.is_none() || start.elapsed() < Duration::from_secs(15))
    {
        let at = start.elapsed();
        let t = Instant::now();
        let meta = fs::metadata(dir.join("A.bin"));
        stats.push((at, t.elapsed()));
        let meta = meta.unwrap_or_else(|e| {
            panic!("stat of cached A during the hang failed after {:?}: {e}\n{}", t.elapsed(), tail(&m))
        });
        assert_eq!(meta.len(), a.len() as u64);
        let at = start.elapsed();
        let t = Instant::now();
        assert_reads(&m, &dir.join("A.bin"), &a, Duration::from_secs(30), "cached A during the hang");
        reads.push((at, t.elapsed()));
        if uncached.is_none()
            && let Ok(r) = rx.try_recv()
        {
            uncached = Some(r);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let uncached = uncached.or_else(|| rx.recv_timeout(Duration::from_secs(1)).ok());
    let slow = |v: &[(Duration, Duration)]| -> Vec<String> {
        v.iter()
            .filter(|(_, took)| *took >= Duration::from_secs(2))
            .map(|(at, took)| format!("{took:.1?} at +{at:.1?}"))
            .collect()
    };
    let (slow_stats, slow_reads) = (slow(&stats), slow(&reads));
    let summary = format!(
        "{} stats of cached A, slow ones: {slow_stats:?}; {} reads of cached A, slow ones: {slow_reads:?}; uncached read of B: {:?}",
        stats.len(),
        reads.len(),
        uncached.as_ref().map(|(r, took)| (r.as_ref().map(Vec::len).map_err(|e| e.to_string()), took))
    );
    eprintln!("{summary}");
    let (r, took) = uncached
        .unwrap_or_else(|| panic!("uncached read of B still waiting after 25 s of hang; {summary}\n{}", tail(&m)));
    match r {
        Ok(data) => {
            panic!("uncached read of B during the hang gave {} bytes, want EIO; {summary}\n{}", data.len(), tail(&m))
        }
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "uncached read of B during the hang: {e}; {summary}\n{}",
            tail(&m)
        ),
    }
    assert!(took < Duration::from_secs(20), "uncached read of B took {took:?} to fail; {summary}\n{}", tail(&m));
    assert!(
        slow_stats.is_empty() && slow_reads.is_empty(),
        "cached A must stay fast (< 2 s per stat or read) while the provider hangs; {summary}\n{}",
        tail(&m)
    );

    // Once the provider answers again, B reads (after the offline window at most).
    cloud.proxy.set(Fault::Pass);
    let start = Instant::now();
    loop {
        match read_within(&dir.join("B.bin"), Duration::from_secs(30)) {
            Some((Ok(data), _)) => {
                assert_same(&m, &dir.join("B.bin"), &data, &b, "B after the hang ended");
                break;
            }
            Some((Err(e), _)) if start.elapsed() < Duration::from_secs(30) => {
                eprintln!("B after the hang: {e}; again");
                std::thread::sleep(Duration::from_millis(500));
            }
            other => panic!("B does not read 30 s after the hang ended: {other:?}\n{}", tail(&m)),
        }
    }
}

// ---- 4. corrupt cache block --------------------------------------------------------

/// The local copies (cache and journal) of a mount using the default cache dir.
fn copies_in(m: &TestMount) -> Vec<PathBuf> {
    let dir = m.dir.path().join("cache/oxidrive/copies");
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

#[test]
fn corrupt_cache_block_is_refetched_never_served() {
    let mut m = TestMount::start();
    let f = m.local().join("file.bin");
    let data = pattern(300 * KIB, 7);
    write_file(&m, &f, &data);
    m.sync();
    m.unmount();

    let copies = copies_in(&m);
    assert_eq!(copies.len(), 1, "want exactly the uploaded file's copy kept as its cache, got {copies:?}");
    let slot = 65536 + 28;
    let len = fs::metadata(&copies[0]).expect("copy").len();
    assert!(len >= 4 * slot, "the copy is {len} bytes, want 5 slots of {slot} (300 KiB in 64 KiB blocks)");
    let file = OpenOptions::new().read(true).write(true).open(&copies[0]).expect("open copy");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 100).expect("read byte");
    file.write_all_at(&[byte[0] ^ 0x40], 100).expect("flip byte");
    file.sync_all().expect("sync copy");
    drop(file);

    m.mount();
    assert_reads(&m, &f, &data, Duration::from_secs(30), "with block 0 of the cached copy corrupted");
    assert!(
        m.log().contains("failed authentication"),
        "the corrupt cached block should be logged (\"failed authentication\")\n{}",
        tail(&m)
    );
    // Refetched into the cache: a second read is right too (and needs no refetch).
    m.remount();
    assert_reads(&m, &f, &data, Duration::from_secs(30), "after the refetch, next mount");
    assert!(!m.log().contains("failed authentication"), "the refetched block was stored again corrupt\n{}", tail(&m));
}

// ---- 5. eviction ---------------------------------------------------------------------

#[test]
fn eviction_respects_the_limit_and_spares_pinned_and_pending() {
    let mut m = TestMount::unstarted(None);
    m.mount_args = vec!["--cache-size".into(), "3M".into()];
    m.mount();
    let dir = m.local();
    let files: Vec<(PathBuf, Vec<u8>)> =
        (0..8).map(|i| (dir.join(format!("f{i}.bin")), pattern(MIB, 10 + i as u8))).collect();
    for (p, d) in &files {
        write_file(&m, p, d);
    }
    m.sync();
    cli_paths(&m, "pin", &[&files[0].0]);
    assert_state(&m, &files[0].0, "pinned");
    for round in 0..2 {
        for (p, d) in &files {
            assert_reads(&m, p, d, Duration::from_secs(30), &format!("round {round}, 3M cache"));
            let (used, limit, pinned) = cache_line(&status(&m));
            assert_eq!(limit, 3 * MIB as u64, "cache limit in status");
            assert!(
                used <= limit + MIB as u64,
                "cache holds {used} bytes after reading {}, limit {limit}:\n{}\n{}",
                p.display(),
                status(&m),
                tail(&m)
            );
            assert!(pinned >= MIB as u64, "pinned bytes {pinned} < 1 MiB after reading {}\n{}", p.display(), tail(&m));
        }
    }
    assert_state(&m, &files[0].0, "pinned");
    assert_eq!(getxattr(&files[0].0, "user.oxidrive.pinned").ok().as_deref(), Some(&b"1"[..]), "pinned xattr of f0");
    // Some of the unpinned files were evicted: not all 7 can be cached in 3 MiB.
    let evicted = files[1..].iter().filter(|(p, _)| state(&m, p) == "cloud-only").count();
    assert!(evicted >= 4, "only {evicted} of 7 unpinned files were evicted from a 3 MiB cache\n{}", status(&m));
    // The pinned file is still whole in the cache across a remount.
    m.remount();
    assert_state(&m, &files[0].0, "pinned");
    let (_, _, pinned) = cache_line(&status(&m));
    assert!(pinned >= MIB as u64, "pinned bytes {pinned} after remount");
    drop(m);

    // Pending changes are never evicted, however small the cache.
    let mut m = TestMount::unstarted(None);
    m.mount_args = ["--cache-size", "256K", "--write-back", "3600"].map(String::from).to_vec();
    m.mount();
    let dir = m.local();
    // Small uploaded files (cacheable: at most half the limit) to churn the cache.
    let small: Vec<(PathBuf, Vec<u8>)> =
        (0..4).map(|i| (dir.join(format!("s{i}.bin")), pattern(100 * KIB, 20 + i as u8))).collect();
    for (p, d) in &small {
        write_file(&m, p, d);
    }
    m.sync();
    let files: Vec<(PathBuf, Vec<u8>)> =
        (0..5).map(|i| (dir.join(format!("p{i}.bin")), pattern(MIB, 30 + i as u8))).collect();
    for (p, d) in &files {
        write_file(&m, p, d);
    }
    // Reading the small files meanwhile fills the cache past its limit: eviction runs
    // (it may drop them, never the 5 MiB waiting for upload).
    for round in 0..2 {
        for (p, d) in &small {
            assert_reads(&m, p, d, Duration::from_secs(30), &format!("round {round}, small file, 256K cache"));
        }
        for (p, d) in files.iter().rev() {
            assert_state(&m, p, "dirty");
            assert_reads(&m, p, d, Duration::from_secs(30), "pending, 256K cache, before any sync");
        }
    }
    let (used, _, _) = cache_line(&status(&m));
    assert!(used <= 256 * KIB as u64 + 128 * KIB as u64, "cache holds {used} bytes with a 256K limit\n{}", status(&m));
    let s = status(&m);
    assert!(
        provider_line(&s, "Local").contains("5 pending uploads"),
        "5 files should wait for upload:\n{s}\n{}",
        tail(&m)
    );
    m.sync();
    for (p, d) in &files {
        assert_reads(&m, p, d, Duration::from_secs(30), "uploaded, 256K cache");
    }
    let (used, _, _) = cache_line(&status(&m));
    assert!(used <= 256 * KIB as u64 + MIB as u64, "cache holds {used} bytes with a 256K limit\n{}", status(&m));
}

#[test]
fn pinning_a_file_before_its_upload_keeps_it_pinned() {
    let m = TestMount::start();
    let f = m.local().join("early.bin");
    let data = pattern(MIB, 40);
    write_file(&m, &f, &data);
    // Still pending (write-back waits 2 s): pin it now.
    cli_paths(&m, "pin", &[&f]);
    m.sync();
    assert_state(&m, &f, "pinned");
    assert_eq!(getxattr(&f, "user.oxidrive.pinned").ok().as_deref(), Some(&b"1"[..]), "pinned xattr\n{}", tail(&m));
}

// ---- 7. full cache disk --------------------------------------------------------------

/// A small tmpfs, unmounted on drop (lazily if busy).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        assert!(nix::unistd::geteuid().is_root(), "mounting a tmpfs needs root");
        fs::create_dir_all(dir).expect("tmpfs dir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs {}: {st}", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let ok = Command::new("umount").arg(&self.0).status().map(|s| s.success()).unwrap_or(false);
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            }
        }
    }
}

/// Writes 16 MiB into `path` (then fsync, then close); the errno of the first call
/// that failed, if any.
fn write_big(path: &Path) -> Option<(String, i32)> {
    let mut f = match File::create(path) {
        Ok(f) => f,
        Err(e) => return Some(("create".into(), e.raw_os_error().unwrap_or(0))),
    };
    let chunk = pattern(256 * KIB, 9);
    for i in 0..64 {
        if let Err(e) = f.write_all(&chunk) {
            return Some((format!("write #{i}"), e.raw_os_error().unwrap_or(0)));
        }
    }
    if let Err(e) = f.sync_all() {
        return Some(("fsync".into(), e.raw_os_error().unwrap_or(0)));
    }
    let fd = f.into_raw_fd();
    if unsafe { libc::close(fd) } != 0 {
        return Some(("close".into(), io::Error::last_os_error().raw_os_error().unwrap_or(0)));
    }
    None
}

fn full_cache_disk(mut m: TestMount) {
    let cache = m.dir.path().join("small-cache");
    let tmpfs = Tmpfs::mount(&cache, "4m");
    m.mount_args = vec!["--cache-dir".into(), cache.display().to_string()];
    m.mount();
    let dir = m.local();
    let x = pattern(20 * KIB, 8);
    {
        let mut f = File::create(dir.join("x.bin")).expect("create x");
        f.write_all(&x).expect("write x");
        f.sync_all().expect("fsync x");
    }
    let failed = write_big(&dir.join("big.bin"));
    match &failed {
        Some((call, errno)) => assert_eq!(
            *errno,
            libc::ENOSPC,
            "writing 16 MiB with a 4 MiB cache disk: {call} failed with {}, want ENOSPC\n{}",
            io::Error::from_raw_os_error(*errno),
            tail(&m)
        ),
        None => panic!("writing 16 MiB with a 4 MiB cache disk succeeded (write, fsync and close)\n{}", tail(&m)),
    }
    eprintln!("big write failed as expected: {failed:?}");
    assert_reads(&m, &dir.join("x.bin"), &x, Duration::from_secs(30), "after ENOSPC");
    fs::remove_file(dir.join("big.bin")).unwrap_or_else(|e| panic!("rm big.bin after ENOSPC: {e}\n{}", tail(&m)));
    // The space is back: writing works again.
    let y = pattern(100 * KIB, 11);
    write_file(&m, &dir.join("y.bin"), &y);
    if let Some(backing) = m.plain_backing() {
        assert_file(&backing.join("x.bin"), &x, "x.bin on the provider");
        assert_file(&backing.join("y.bin"), &y, "y.bin on the provider");
        assert!(!backing.join("big.bin").exists(), "big.bin reached the provider after rm");
    } else {
        m.sync();
    }
    // A fresh cache: what the provider has.
    m.unmount();
    m.mount_args = vec!["--cache-dir".into(), m.dir.path().join("fresh-cache").display().to_string()];
    m.mount();
    assert_reads(&m, &m.local().join("x.bin"), &x, Duration::from_secs(30), "x.bin, fresh cache");
    assert_reads(&m, &m.local().join("y.bin"), &y, Duration::from_secs(30), "y.bin, fresh cache");
    assert_eq!(names(&m.local()), ["x.bin", "y.bin"], "files after the ENOSPC episode");
    // The tmpfs inside the test's folder goes first (the mount uses fresh-cache now):
    // removing the folder around a mounted tmpfs failed and left it in /tmp.
    drop(tmpfs);
    drop(m);
}

#[test]
fn full_cache_disk_gives_enospc_and_loses_nothing_plain_store() {
    full_cache_disk(TestMount::unstarted_plain());
}

#[test]
fn full_cache_disk_gives_enospc_and_loses_nothing_default_store() {
    full_cache_disk(TestMount::unstarted(None));
}

// ---- 8. pin CLI ----------------------------------------------------------------------

#[test]
fn pin_cli_pins_folders_and_new_files() {
    let m = TestMount::start();
    let dir = m.local().join("keep");
    fs::create_dir(&dir).expect("mkdir keep");
    let files: Vec<(PathBuf, Vec<u8>)> =
        (0..3).map(|i| (dir.join(format!("k{i}.bin")), pattern(200 * KIB + i * 1000, 50 + i as u8))).collect();
    for (p, d) in &files {
        write_file(&m, p, d);
    }
    m.sync();
    let paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    cli_paths(&m, "free", &paths);
    for p in &paths {
        assert_state(&m, p, "cloud-only");
    }

    cli_paths(&m, "pin", &[&dir]);
    assert_eq!(getxattr(&dir, "user.oxidrive.pinned").ok().as_deref(), Some(&b"1"[..]), "folder pinned xattr");
    for (p, _) in &files {
        assert_state(&m, p, "pinned");
    }
    let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    let (_, _, pinned) = cache_line(&status(&m));
    assert!(pinned >= total, "{pinned} bytes pinned, want at least {total} (whole files)\n{}", status(&m));

    // A file created in the pinned folder is pinned once uploaded.
    let new = dir.join("new.bin");
    let nd = pattern(100 * KIB, 60);
    write_file(&m, &new, &nd);
    m.sync();
    assert_state(&m, &new, "pinned");

    cli_paths(&m, "unpin", &[&dir]);
    assert_eq!(getxattr(&dir, "user.oxidrive.pinned").ok().as_deref(), Some(&b"0"[..]), "folder unpinned xattr");
    for p in paths.iter().chain([&new.as_path()]) {
        assert_state(&m, p, "cached");
    }
    let (_, _, pinned) = cache_line(&status(&m));
    assert_eq!(pinned, 0, "pinned bytes after unpin\n{}", status(&m));
    for (p, d) in files.iter().chain([&(new.clone(), nd)]) {
        assert_reads(&m, p, d, Duration::from_secs(30), "after unpin");
    }
}

/// A file kept open in a folder renamed right after the file's upload: on S3 the
/// folder's rename copies every object below it (new mtimes), and what the open
/// descriptor writes next must upload as a change of the copied object, not as a
/// conflict copy (as for a file renamed while open).
#[test]
fn a_file_open_in_a_folder_renamed_after_its_upload_keeps_uploading_without_conflict() {
    let cloud = Cloud::start();
    let m = cloud.mount();
    let top = folder(&m);
    fs::create_dir(top.join("logs")).unwrap();
    let mut f =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(top.join("logs/app.log")).unwrap();
    f.write_all(b"first line\n").unwrap();
    f.sync_all().unwrap();
    m.sync();
    fs::rename(top.join("logs"), top.join("old-logs")).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"second line\n").unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.sync();
    assert_eq!(names(&top.join("old-logs")), ["app.log"], "no conflict copy\n{}", tail(&m));
    assert_eq!(fs::read(top.join("old-logs/app.log")).unwrap(), b"first line\nsecond line\n");
}

/// Seed 11974149745064999660: offline, a symlink in a folder renamed in the journal is
/// deleted (its change stays pending, hidden, bound for the Trash), then a folder is
/// refused over its name (moving the deleted one to the Trash needs the provider). The
/// refused attempt dropped the pending change from memory but not from the journal, so
/// a later rename of a folder above moved the journal row without its tombstone, and
/// after a remount the deleted symlink was back. A refusal must change nothing.
#[test]
fn a_deleted_symlink_stays_deleted_after_a_refused_rename_over_it_and_a_remount() {
    let cloud = Cloud::start();
    let mut m = cloud.mount();
    let top = folder(&m);
    fs::create_dir(top.join("e")).unwrap();
    std::os::unix::fs::symlink("b", top.join("e/a")).unwrap();
    write_file(&m, &top.join("e/f"), b"file");
    fs::create_dir_all(top.join("x/y/c")).unwrap();
    write_file(&m, &top.join("x/y/c/g"), b"g");
    sync_then_go_offline(&cloud, &m);
    sh_offline(&m, &top, "mv e x/y/c/u && rm x/y/c/u/a && mkdir x/y/v");
    let refused = Command::new("mv").arg(top.join("x/y/v")).arg(top.join("x/y/c/u/a")).output().unwrap();
    assert!(!refused.status.success(), "a folder over the deleted symlink offline must wait for the provider");
    sh_offline(&m, &top, "rmdir x/y/v && mkdir x/w && mv x/y/c x/w/b && mv x/w q");
    assert_eq!(names(&top.join("q/b/u")), ["f"]);
    m.remount();
    assert_eq!(names(&top.join("q/b/u")), ["f"], "the deleted symlink came back\n{}", tail(&m));
    assert_eq!(fs::read(top.join("q/b/u/f")).unwrap(), b"file");
}
