//! Encryption end to end, through real mounts: nothing readable leaks to the store or to
//! local state (invariant 2), every tampered object reads as EIO with a log line and is
//! refused by `oxidrive decrypt` (invariant 3), passphrases, several devices on one
//! store, plain providers next to encrypted ones, and range reads across chunk edges.
//! Layout facts used here are those of docs/format.md (81-byte header, 64 KiB chunks
//! of 65 564 stored bytes).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use oxidrive_tests::{TEST_PASSPHRASE, TestMount, is_mounted, names, output_within, pattern, snapshot, snapshot_diff};

const HEADER: u64 = 81;
const CHUNK: u64 = 65536;
const SEALED_CHUNK: u64 = CHUNK + 28;

/// `encrypted_size(P)` of docs/format.md 4.3.
fn enc_size(p: u64) -> u64 {
    HEADER + p + 28 * std::cmp::max(1, p.div_ceil(CHUNK))
}

/// Byte offset of chunk `i` in an encrypted object.
fn chunk_at(i: u64) -> u64 {
    HEADER + i * SEALED_CHUNK
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| w == needle)
}

fn cstr(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn setxattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let n = std::ffi::CString::new(name).unwrap();
    let rc = unsafe { libc::setxattr(cstr(p).as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn getxattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    let rc = unsafe { libc::getxattr(cstr(p).as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

/// Whole-file read (open + read to end).
fn read_file(p: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(p)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Drops the file's cached pages so the next read reaches the filesystem.
fn drop_cache(f: &File) {
    use std::os::fd::AsRawFd;
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// pread until `len` bytes or EOF.
fn pread_full(f: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

#[track_caller]
fn assert_eio<T>(what: &str, r: io::Result<T>) {
    match r {
        Ok(_) => panic!("{what}: expected EIO, the read succeeded"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: expected EIO, got {e}"),
    }
}

/// The XDG dirs a mount writes to: data (the store), state, cache.
fn local_dirs(m: &TestMount) -> Vec<PathBuf> {
    ["data", "state", "cache"].iter().map(|d| m.dir.path().join(d)).collect()
}

/// Every path under `roots` whose name, symlink target or bytes contain `needle`.
fn leaks(roots: &[PathBuf], needle: &[u8]) -> (Vec<String>, usize) {
    fn walk(p: &Path, needle: &[u8], out: &mut Vec<String>, files: &mut usize) {
        let Ok(meta) = fs::symlink_metadata(p) else { return };
        if contains(p.file_name().map(|n| n.as_bytes()).unwrap_or_default(), needle) {
            out.push(format!("name: {}", p.display()));
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            let Ok(rd) = fs::read_dir(p) else { return };
            for e in rd.flatten() {
                walk(&e.path(), needle, out, files);
            }
        } else if ft.is_symlink() {
            if let Ok(t) = fs::read_link(p)
                && contains(t.as_os_str().as_bytes(), needle)
            {
                out.push(format!("symlink target: {}", p.display()));
            }
        } else if ft.is_file() {
            *files += 1;
            match fs::read(p) {
                Ok(b) if contains(&b, needle) => out.push(format!("contents: {}", p.display())),
                Ok(_) => {}
                Err(e) => out.push(format!("unreadable (cannot scan): {}: {e}", p.display())),
            }
        }
    }
    let mut out = Vec::new();
    let mut files = 0;
    for r in roots {
        walk(r, needle, &mut out, &mut files);
    }
    (out, files)
}

/// Files (not dirs) directly in `dir`, by name, with sizes; our meta folder excluded.
fn objects(dir: &Path) -> BTreeMap<String, u64> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect()
}

/// The single sub-directory of a backing dir (not `.oxidrive`).
fn only_subdir(dir: &Path) -> PathBuf {
    let subs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir() && e.file_name() != ".oxidrive")
        .map(|e| e.path())
        .collect();
    assert_eq!(subs.len(), 1, "one sub-directory in {}: {subs:?}", dir.display());
    subs.into_iter().next().unwrap()
}

/// The backing object of a file of `plain` bytes in `dir` (sizes chosen unique).
fn object_of_size(dir: &Path, plain: u64) -> PathBuf {
    let want = enc_size(plain);
    let hits: Vec<String> = objects(dir).into_iter().filter(|(_, s)| *s == want).map(|(n, _)| n).collect();
    assert_eq!(hits.len(), 1, "exactly one object of {want} bytes in {}: {hits:?}", dir.display());
    dir.join(&hits[0])
}

fn flip(p: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, at).unwrap();
}

/// What a tree of files looks like on disk, for "nothing changed" checks: every path
/// with kind, mode, size, mtime (ns) and bytes.
fn disk_state(roots: &[PathBuf]) -> BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)> {
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)>) {
        let Ok(meta) = fs::symlink_metadata(p) else { return };
        let bytes = if meta.is_file() { fs::read(p).unwrap() } else { Vec::new() };
        out.insert(p.to_owned(), (meta.mode(), meta.len(), meta.mtime(), meta.mtime_nsec(), bytes));
        if meta.is_dir() {
            for e in fs::read_dir(p).unwrap().flatten() {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    for r in roots {
        walk(r, &mut out);
    }
    out
}

fn state_diff(
    a: &BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)>,
    b: &BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => out.push(format!(
                "{}: mode {:o}->{:o} size {}->{} mtime {}.{}->{}.{} bytes equal: {}",
                k.display(),
                x.0,
                y.0,
                x.1,
                y.1,
                x.2,
                x.3,
                y.2,
                y.3,
                x.4 == y.4
            )),
            (None, _) => out.push(format!("{}: created", k.display())),
            (_, None) => out.push(format!("{}: removed", k.display())),
        }
    }
    out
}

/// `oxidrive mount` in `m`'s environment with another passphrase, expected to fail fast.
fn mount_fails_with(m: &TestMount, pass: &str) -> Output {
    let mut cmd = m.oxidrive();
    cmd.arg("mount").arg(&m.mnt).env("OXIDRIVE_PASSPHRASE", pass).env_remove("RUST_LOG");
    let out = output_within(&mut cmd, Duration::from_secs(60));
    assert!(!out.status.success(), "mount should have failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!is_mounted(&m.mnt), "nothing may be mounted at {}", m.mnt.display());
    out
}

/// A mount started here (for a passphrase other than the harness's); unmounted and
/// its process (only ours, by handle) ended on drop.
struct OwnMount {
    child: Option<Child>,
    mnt: PathBuf,
    log: PathBuf,
    env: Vec<(String, PathBuf)>,
}

impl OwnMount {
    fn start(m: &TestMount, mnt: &Path, pass: &str) -> Self {
        let log = m.dir.path().join(format!("own-mount-{}.log", std::process::id()));
        let f = File::create(&log).unwrap();
        let child = m
            .oxidrive()
            .arg("mount")
            .arg(mnt)
            .env("OXIDRIVE_PASSPHRASE", pass)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let mut me = OwnMount { child: Some(child), mnt: mnt.to_owned(), log, env: m.env() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_mounted(mnt) {
            if let Some(st) = me.child.as_mut().unwrap().try_wait().unwrap() {
                me.child = None;
                panic!("mount exited with {st}:\n{}", fs::read_to_string(&me.log).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "mount did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    fn stop(&mut self) {
        let mut cmd = Command::new(oxidrive_tests::oxidrive_bin());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.arg("unmount").arg(&self.mnt).output().unwrap();
        assert!(out.status.success(), "unmount: {}", String::from_utf8_lossy(&out.stderr));
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(st) = c.try_wait().unwrap() {
                    assert!(st.success(), "mount exited with {st}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("mount did not exit after unmount");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for OwnMount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = Command::new("fusermount3").arg("-u").arg(&self.mnt).status();
            if is_mounted(&self.mnt) {
                let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).status();
            }
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------
// 1. Nothing readable leaks.
// ---------------------------------------------------------------------------------

const MARKER: &str = "Qz7MarkerOxi";

#[test]
fn no_plaintext_name_or_content_reaches_store_state_or_cache() {
    let mut m = TestMount::start();
    let l = m.local();
    let marker = MARKER.as_bytes();
    let content = |n: usize, seed: u8| -> Vec<u8> {
        let mut v = pattern(n, seed);
        let mut i = 7;
        while i + marker.len() <= n {
            v[i..i + marker.len()].copy_from_slice(marker);
            i += 997;
        }
        v
    };

    // Names: a directory, a file in it, a 200-byte name, a symlink and its target.
    let dir = l.join(format!("dir-{MARKER}"));
    fs::create_dir(&dir).unwrap();
    let small = content(3000, 1);
    fs::write(dir.join(format!("{MARKER}.txt")), &small).unwrap();
    let long_name = format!("{MARKER}{}", "L".repeat(200 - MARKER.len()));
    assert_eq!(long_name.len(), 200);
    let long_data = content(70_000, 2);
    fs::write(l.join(&long_name), &long_data).unwrap();
    std::os::unix::fs::symlink(format!("target-{MARKER}"), l.join(format!("link-{MARKER}"))).unwrap();
    // Contents: a multi-MB file, marker every ~1 KB (so in every chunk).
    let big = content(3 * 1024 * 1024 + 12345, 3);
    fs::write(l.join("big.bin"), &big).unwrap();
    // An xattr with the marker in its name and its value.
    let xname = format!("user.{MARKER}");
    let xval = format!("value-{MARKER}").into_bytes();
    setxattr(&l.join("big.bin"), &xname, &xval).unwrap();
    assert_eq!(getxattr(&l.join("big.bin"), &xname).unwrap(), xval);
    // A file open for writing, never closed during the first scan: its local copy exists.
    let open_data = content(400_000, 4);
    let mut open = File::create(l.join(format!("open-{MARKER}"))).unwrap();
    open.write_all(&open_data).unwrap();

    // Everything reads back as written (so the marker really was stored somewhere).
    assert_eq!(fs::read(dir.join(format!("{MARKER}.txt"))).unwrap(), small);
    assert_eq!(fs::read(l.join(&long_name)).unwrap(), long_data);
    assert_eq!(fs::read_link(l.join(format!("link-{MARKER}"))).unwrap(), PathBuf::from(format!("target-{MARKER}")));
    assert_eq!(fs::read(l.join("big.bin")).unwrap(), big);

    let copies = m.dir.path().join("cache/oxidrive/copies");
    let staged: u64 = fs::read_dir(&copies)
        .map(|d| d.flatten().map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).sum())
        .unwrap_or(0);
    assert!(staged >= 400_000, "the open file has a local copy under {} ({staged} bytes)", copies.display());

    let dirs = local_dirs(&m);
    let (found, files) = leaks(&dirs, marker);
    // At least the vaults, the index and its WAL and local copies (the new folder and
    // symlink are only in the journal: uploads wait for the write-back delay).
    assert!(files >= 7, "scanned only {files} files: {dirs:?}");
    assert!(found.is_empty(), "plaintext marker found while mounted:\n{}", found.join("\n"));
    // The store holds the long name as a hashed object plus its side object.
    let backing = objects(&m.synced_backing());
    assert!(backing.keys().any(|n| n.starts_with("l-") && n.ends_with(".name")), "long-name side object: {backing:?}");

    open.sync_all().unwrap();
    let (found, _) = leaks(&dirs, marker);
    assert!(found.is_empty(), "plaintext marker found after fsync:\n{}", found.join("\n"));
    drop(open);

    m.unmount();
    let (found, files) = leaks(&dirs, marker);
    assert!(files >= 8, "scanned only {files} files");
    assert!(found.is_empty(), "plaintext marker found after unmount:\n{}", found.join("\n"));

    // And it all comes back after a remount.
    m.mount();
    let l = m.local();
    assert_eq!(fs::read(l.join(format!("open-{MARKER}"))).unwrap(), open_data);
    assert_eq!(fs::read(l.join(&long_name)).unwrap(), long_data);
    assert_eq!(getxattr(&l.join("big.bin"), &xname).unwrap(), xval);
}

// ---------------------------------------------------------------------------------
// 2, 3. Tampering at the provider.
// ---------------------------------------------------------------------------------

/// One file of the tamper store: its name, plaintext, and what is done to its object.
struct Case {
    name: &'static str,
    data: Vec<u8>,
    tamper: Tamper,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tamper {
    None,
    /// Flip one byte of the content header at this offset.
    Header(u64),
    /// Flip one byte at this offset of the object.
    Byte(u64),
    /// Cut the object to header + this many whole chunks.
    TruncateChunks(u64),
    /// Append a copy of chunk 0.
    AppendChunk0,
    /// Swap chunks 0 and 1.
    SwapChunks01,
    /// Swap the whole object with `swap-b.bin`'s.
    SwapWithB,
    /// The object of `swap-b.bin` (partner of SwapWithB).
    SwapB,
    /// Renamed onto `onto-dst.bin`'s stored name (replacing it).
    RenameOntoDst,
    /// The object replaced by RenameOntoDst.
    OntoDst,
    /// Moved into `sub`'s backing folder, same stored name.
    MoveIntoSub,
}

fn cases() -> Vec<Case> {
    let c = |name, len: usize, seed, tamper| Case { name, data: pattern(len, seed), tamper };
    vec![
        c("intact-small.txt", 1000, 1, Tamper::None),
        c("intact-big.bin", 300_000, 2, Tamper::None),
        c("hdr-key.bin", 100_000, 3, Tamper::Header(40)),
        c("hdr-id.bin", 100_001, 4, Tamper::Header(10)),
        c("body.bin", 200_000, 5, Tamper::Byte(chunk_at(1) + 12 + 777)),
        c("tag.bin", 200_001, 6, Tamper::Byte(chunk_at(1) - 5)),
        c("last-tag.bin", 100_002, 7, Tamper::Byte(enc_size(100_002) - 1)),
        c("trunc.bin", 3 * 65536 + 5000, 8, Tamper::TruncateChunks(2)),
        c("append.bin", 150_000, 9, Tamper::AppendChunk0),
        c("swapchunks.bin", 200_002, 10, Tamper::SwapChunks01),
        c("swap-a.bin", 7000, 11, Tamper::SwapWithB),
        c("swap-b.bin", 9000, 12, Tamper::SwapB),
        c("onto-src.bin", 11_000, 13, Tamper::RenameOntoDst),
        c("onto-dst.bin", 13_000, 14, Tamper::OntoDst),
        c("moved.bin", 17_000, 15, Tamper::MoveIntoSub),
    ]
}

const SUB_FILE: &str = "sub/intact.txt";

fn sub_data() -> Vec<u8> {
    pattern(5000, 99)
}

/// A zero-config encrypted store holding `cases()` and `sub/intact.txt`, unmounted;
/// returns the backing object of each case.
fn build_store() -> (TestMount, Vec<Case>, BTreeMap<&'static str, PathBuf>) {
    let mut m = TestMount::start();
    let cases = cases();
    fs::create_dir(m.local().join("sub")).unwrap();
    fs::write(m.local().join(SUB_FILE), sub_data()).unwrap();
    for c in &cases {
        fs::write(m.local().join(c.name), &c.data).unwrap();
    }
    m.unmount();
    let root = m.backing();
    let objs = cases.iter().map(|c| (c.name, object_of_size(&root, c.data.len() as u64))).collect();
    (m, cases, objs)
}

/// Applies every case's tamper to the unmounted store.
fn apply_tampers(m: &TestMount, cases: &[Case], objs: &BTreeMap<&'static str, PathBuf>) {
    let sub = only_subdir(&m.backing());
    for c in cases {
        let p = &objs[c.name];
        match c.tamper {
            Tamper::None | Tamper::SwapB | Tamper::OntoDst => {}
            Tamper::Header(at) | Tamper::Byte(at) => flip(p, at),
            Tamper::TruncateChunks(k) => {
                OpenOptions::new().write(true).open(p).unwrap().set_len(chunk_at(k)).unwrap();
            }
            Tamper::AppendChunk0 => {
                let b = fs::read(p).unwrap();
                let chunk0 = b[chunk_at(0) as usize..chunk_at(1) as usize].to_vec();
                OpenOptions::new().append(true).open(p).unwrap().write_all(&chunk0).unwrap();
            }
            Tamper::SwapChunks01 => {
                let mut b = fs::read(p).unwrap();
                let (a, x, y) = (chunk_at(0) as usize, chunk_at(1) as usize, chunk_at(2) as usize);
                let c0 = b[a..x].to_vec();
                let c1 = b[x..y].to_vec();
                b[a..x].copy_from_slice(&c1);
                b[x..y].copy_from_slice(&c0);
                fs::write(p, b).unwrap();
            }
            Tamper::SwapWithB => {
                let other = &objs["swap-b.bin"];
                let tmp = p.with_extension("tmp-swap");
                fs::rename(p, &tmp).unwrap();
                fs::rename(other, p).unwrap();
                fs::rename(&tmp, other).unwrap();
            }
            Tamper::RenameOntoDst => fs::rename(p, &objs["onto-dst.bin"]).unwrap(),
            Tamper::MoveIntoSub => fs::rename(p, sub.join(p.file_name().unwrap())).unwrap(),
        }
    }
}

/// Whether the case's file is still listed (under its own name) after tampering.
fn still_listed(t: Tamper) -> bool {
    !matches!(t, Tamper::RenameOntoDst | Tamper::MoveIntoSub)
}

#[test]
fn tampered_objects_read_as_eio_with_a_log_line_never_wrong_bytes() {
    let (mut m, cases, objs) = build_store();
    apply_tampers(&m, &cases, &objs);
    m.mount();
    let l = m.local();

    let mut want: Vec<String> = cases.iter().filter(|c| still_listed(c.tamper)).map(|c| c.name.to_owned()).collect();
    want.push("sub".into());
    want.sort();
    assert_eq!(names(&l), want, "listing after tampering");
    assert_eq!(names(&l.join("sub")), vec!["intact.txt".to_owned()], "a moved object never shows up in sub");
    assert_eq!(fs::read(l.join(SUB_FILE)).unwrap(), sub_data());

    for c in &cases {
        let p = l.join(c.name);
        match c.tamper {
            Tamper::None => assert_eq!(fs::read(&p).unwrap(), c.data, "{}", c.name),
            Tamper::RenameOntoDst | Tamper::MoveIntoSub => {
                let e = fs::metadata(&p).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{}: {e}", c.name);
            }
            _ => {
                assert_eio(&format!("read of {}", c.name), read_file(&p));
                // Piecewise reads: each one fails with EIO or returns authentic bytes.
                let f = File::open(&p).unwrap();
                let size = f.metadata().unwrap().len();
                let mut offsets: Vec<u64> = vec![0, 4096, CHUNK - 10, CHUNK, CHUNK + 5000, 2 * CHUNK + 1, 3 * CHUNK];
                offsets.push(size.saturating_sub(100));
                let mut failed = 0;
                for off in offsets {
                    drop_cache(&f);
                    match pread_full(&f, off, 4096) {
                        Ok(got) if got.is_empty() => {}
                        Ok(got) => {
                            let end = (off as usize + got.len()).min(c.data.len());
                            assert!(
                                (off as usize) + got.len() <= c.data.len(),
                                "{}: pread at {off} returned {} bytes past the authentic end {}",
                                c.name,
                                got.len(),
                                c.data.len()
                            );
                            assert_eq!(
                                got,
                                c.data[off as usize..end],
                                "{}: pread at {off} returned wrong bytes",
                                c.name
                            );
                        }
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}: pread at {off}: {e}", c.name);
                            failed += 1;
                        }
                    }
                }
                assert!(failed > 0, "{}: some read must touch the tampered part", c.name);
            }
        }
    }
    // The tampered chunk itself, precisely.
    let f = File::open(l.join("body.bin")).unwrap();
    assert_eio("pread inside the flipped chunk", pread_full(&f, CHUNK + 100, 100));
    let f = File::open(l.join("trunc.bin")).unwrap();
    assert_eio("pread of the new (unsealed-as-last) last chunk", pread_full(&f, CHUNK + 100, 100));

    // Nothing anywhere in the mount shows the moved or the overwritten file's bytes.
    for (path, bytes) in readable_files(&l) {
        for c in cases.iter().filter(|c| c.tamper != Tamper::None) {
            assert!(bytes != c.data, "{} shows {}'s bytes", path.display(), c.name);
        }
    }

    let log = m.log();
    for c in cases.iter().filter(|c| c.tamper != Tamper::None && still_listed(c.tamper)) {
        let line = log.lines().find(|l| {
            l.contains(c.name)
                && ["authentication", "impossible", "truncated", "shorter", "invalid", "corrupt"]
                    .iter()
                    .any(|w| l.to_lowercase().contains(w))
        });
        assert!(line.is_some(), "log names the problem with {}:\n{log}", c.name);
    }
}

/// Every file under `root` that reads without error, with its bytes.
fn readable_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(readable_files(&p));
        } else if ft.is_file()
            && let Ok(b) = read_file(&p)
        {
            out.push((p, b));
        }
    }
    out
}

fn decrypt(m: &TestMount, dest: &Path) -> Output {
    let mut cmd = m.oxidrive();
    cmd.args(["decrypt", "--provider", "Local"]).arg(dest);
    output_within(&mut cmd, Duration::from_secs(120))
}

#[test]
fn decrypt_restores_intact_files_and_reports_every_tampered_one() {
    let (m, cases, objs) = build_store();

    // Untampered: everything back, byte-exact, exit 0.
    let dest = m.dir.path().join("restore-clean");
    let out = decrypt(&m, &dest);
    assert!(out.status.success(), "clean decrypt: {}", String::from_utf8_lossy(&out.stderr));
    let mut want = BTreeMap::new();
    want.insert(PathBuf::from("sub"), oxidrive_tests::Node::Dir);
    want.insert(PathBuf::from(SUB_FILE), oxidrive_tests::Node::File(sub_data()));
    for c in &cases {
        want.insert(PathBuf::from(c.name), oxidrive_tests::Node::File(c.data.clone()));
    }
    let got = snapshot(&dest).unwrap();
    assert!(snapshot_diff(&want, &got).is_none(), "clean restore: {:?}", snapshot_diff(&want, &got));

    apply_tampers(&m, &cases, &objs);
    let dest = m.dir.path().join("restore-tampered");
    let out = decrypt(&m, &dest);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "decrypt of a tampered store must fail:\n{err}");
    for c in cases.iter().filter(|c| c.tamper != Tamper::None && still_listed(c.tamper)) {
        assert!(
            err.lines().any(|l| l.contains("FAILED") && l.contains(c.name)),
            "stderr reports {} as FAILED:\n{err}",
            c.name
        );
    }
    let mut want = BTreeMap::new();
    want.insert(PathBuf::from("sub"), oxidrive_tests::Node::Dir);
    want.insert(PathBuf::from(SUB_FILE), oxidrive_tests::Node::File(sub_data()));
    for c in cases.iter().filter(|c| c.tamper == Tamper::None) {
        want.insert(PathBuf::from(c.name), oxidrive_tests::Node::File(c.data.clone()));
    }
    let got = snapshot(&dest).unwrap();
    assert!(
        snapshot_diff(&want, &got).is_none(),
        "only intact files restored: {:?}\n{err}",
        snapshot_diff(&want, &got)
    );
}

/// An object moved into another directory fails its name's authentication there; the
/// offline restore must say so (and fail), not silently drop it.
#[test]
fn decrypt_reports_an_object_moved_into_another_directory() {
    let mut m = TestMount::start();
    fs::create_dir(m.local().join("sub")).unwrap();
    fs::write(m.local().join("sub/keep.txt"), b"kept").unwrap();
    let moved = pattern(3333, 7);
    fs::write(m.local().join("moved.bin"), &moved).unwrap();
    m.unmount();
    let obj = object_of_size(&m.backing(), 3333);
    let sub = only_subdir(&m.backing());
    fs::rename(&obj, sub.join(obj.file_name().unwrap())).unwrap();

    let dest = m.dir.path().join("restore");
    let out = decrypt(&m, &dest);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "decrypt must fail when an object fails authentication:\n{err}");
    assert!(
        err.lines().any(|l| l.contains("FAILED") && l.contains("sub")),
        "a FAILED line names the directory:\n{err}"
    );
    assert_eq!(fs::read(dest.join("sub/keep.txt")).unwrap(), b"kept");
    let restored = readable_files(&dest);
    assert!(restored.iter().all(|(_, bytes)| bytes != &moved), "the moved object's bytes were written: {restored:?}");
}

// ---------------------------------------------------------------------------------
// 4. Wrong passphrase.
// ---------------------------------------------------------------------------------

#[test]
fn wrong_passphrase_mounts_nothing_and_changes_nothing() {
    let mut m = TestMount::start();
    fs::write(m.local().join("a.txt"), b"secret text").unwrap();
    m.unmount();
    let before = disk_state(&local_dirs(&m));
    let out = mount_fails_with(&m, "not the passphrase");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("wrong passphrase"), "one clear line:\n{err}");
    let diff = state_diff(&before, &disk_state(&local_dirs(&m)));
    assert!(diff.is_empty(), "a failed unlock changed files:\n{}", diff.join("\n"));
    // decrypt with the wrong passphrase fails too and creates nothing.
    let dest = m.dir.path().join("never");
    let out = m
        .oxidrive()
        .args(["decrypt", "--provider", "Local"])
        .arg(&dest)
        .env("OXIDRIVE_PASSPHRASE", "not the passphrase")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dest.exists(), "decrypt with a wrong passphrase created {}", dest.display());
    // The right one still mounts and reads.
    m.mount();
    assert_eq!(fs::read(m.local().join("a.txt")).unwrap(), b"secret text");
}

// ---------------------------------------------------------------------------------
// 5. Changing the passphrase.
// ---------------------------------------------------------------------------------

#[test]
fn passwd_changes_the_passphrase_and_only_the_vaults() {
    let mut m = TestMount::start();
    let data = pattern(200_000, 3);
    fs::write(m.local().join("old.bin"), &data).unwrap();
    fs::create_dir(m.local().join("dir")).unwrap();
    fs::write(m.local().join("dir/x.txt"), b"x in dir").unwrap();
    m.unmount();
    let store_before = disk_state(&[m.backing()]);

    const NEW: &str = "a brand new passphrase, tests only";
    // Wrong current passphrase: refused, nothing changed.
    let out = m
        .oxidrive()
        .arg("passwd")
        .env("OXIDRIVE_PASSPHRASE", "wrong one")
        .env("OXIDRIVE_NEW_PASSPHRASE", NEW)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(state_diff(&store_before, &disk_state(&[m.backing()])).is_empty());

    let out = m.oxidrive().arg("passwd").env("OXIDRIVE_NEW_PASSPHRASE", NEW).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "passwd: {}", String::from_utf8_lossy(&out.stderr));

    // Only the vault object changed at the store.
    let store_after = disk_state(&[m.backing()]);
    let changed = state_diff(&store_before, &store_after);
    assert!(
        changed.iter().all(|l| l.contains(".oxidrive")) && changed.iter().any(|l| l.contains("oxidrive.vault")),
        "passwd must rewrite only the vault:\n{}",
        changed.join("\n")
    );

    // The old passphrase is refused ...
    let out = mount_fails_with(&m, TEST_PASSPHRASE);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... the new one mounts and reads the old files.
    let mut own = OwnMount::start(&m, &m.mnt, NEW);
    assert_eq!(fs::read(m.local().join("old.bin")).unwrap(), data);
    assert_eq!(fs::read(m.local().join("dir/x.txt")).unwrap(), b"x in dir");
    fs::write(m.local().join("new.txt"), b"written after passwd").unwrap();
    own.stop();
    // And a passphrase file works too.
    let pf = m.dir.path().join("pass.txt");
    fs::write(&pf, format!("{NEW}\n")).unwrap();
    let dest = m.dir.path().join("restore");
    let out = m
        .oxidrive()
        .args(["decrypt", "--provider", "Local"])
        .arg(&dest)
        .arg("--passphrase-file")
        .arg(&pf)
        .env_remove("OXIDRIVE_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "decrypt: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read(dest.join("old.bin")).unwrap(), data);
    assert_eq!(fs::read(dest.join("new.txt")).unwrap(), b"written after passwd");
}

// ---------------------------------------------------------------------------------
// 6. Two devices, one store.
// ---------------------------------------------------------------------------------

#[test]
fn two_devices_share_one_encrypted_store() {
    let shared = tempfile::Builder::new().prefix("oxidrive-shared-").tempdir().unwrap();
    let store = shared.path().join("store");
    fs::create_dir_all(&store).unwrap();
    let config =
        format!("[[provider]]\nname = \"Shared\"\ntype = \"local\"\npath = \"{}\"\nencrypt = true\n", store.display());

    let mut a = TestMount::with_config(&config);
    let sa = a.mnt.join("My Drive/Shared");
    let name255 = format!("n{}", "é".repeat(127));
    assert_eq!(name255.len(), 255);
    let big = pattern(700_000, 21);
    fs::create_dir_all(sa.join("tree/deeper/deepest")).unwrap();
    fs::write(sa.join("tree/a.txt"), b"from device A").unwrap();
    fs::write(sa.join("tree/deeper/big.bin"), &big).unwrap();
    fs::write(sa.join("tree/deeper/deepest").join(&name255), b"long-named").unwrap();
    fs::write(sa.join("empty"), b"").unwrap();
    let snap_a = snapshot(&sa).unwrap();
    a.unmount();
    // Nothing of it is readable at the store.
    let (found, _) = leaks(std::slice::from_ref(&store), b"from device A");
    assert!(found.is_empty(), "{found:?}");
    let (found, _) = leaks(std::slice::from_ref(&store), b"deepest");
    assert!(found.is_empty(), "{found:?}");

    let mut b = TestMount::with_config(&config);
    assert_ne!(a.dir.path(), b.dir.path());
    let sb = b.mnt.join("My Drive/Shared");
    let snap_b = snapshot(&sb).unwrap();
    assert!(snapshot_diff(&snap_a, &snap_b).is_none(), "B sees A's tree: {:?}", snapshot_diff(&snap_a, &snap_b));
    assert_eq!(fs::read(sb.join("tree/deeper/deepest").join(&name255)).unwrap(), b"long-named");
    assert_eq!(fs::read(sb.join("tree/deeper/big.bin")).unwrap(), big);
    assert_eq!(fs::read(sb.join("empty")).unwrap(), b"");
    // B writes.
    let from_b = pattern(150_000, 22);
    fs::write(sb.join("tree/from-b.bin"), &from_b).unwrap();
    fs::rename(sb.join("tree/a.txt"), sb.join("tree/deeper/a-moved.txt")).unwrap();
    fs::create_dir(sb.join("b-dir")).unwrap();
    fs::write(sb.join("b-dir").join(&name255), b"B's long name").unwrap();
    b.unmount();

    a.mount();
    assert_eq!(fs::read(sa.join("tree/from-b.bin")).unwrap(), from_b);
    assert_eq!(fs::read(sa.join("tree/deeper/a-moved.txt")).unwrap(), b"from device A");
    assert!(!sa.join("tree/a.txt").exists());
    assert_eq!(fs::read(sa.join("b-dir").join(&name255)).unwrap(), b"B's long name");
    assert_eq!(fs::read(sa.join("tree/deeper/big.bin")).unwrap(), big);
}

// ---------------------------------------------------------------------------------
// 7, 8. Plain providers.
// ---------------------------------------------------------------------------------

#[test]
fn plain_provider_stores_plaintext_next_to_an_encrypted_one() {
    let mut m = TestMount::with_config_in(|d| {
        format!(
            "[[provider]]\nname = \"Plain\"\ntype = \"local\"\npath = \"{}\"\nencrypt = false\n\n\
             [[provider]]\nname = \"Secret\"\ntype = \"local\"\npath = \"{}\"\nencrypt = true\n",
            d.join("plain").display(),
            d.join("secret").display()
        )
    });
    let plain_dir = m.dir.path().join("plain");
    let secret_dir = m.dir.path().join("secret");
    let drive = m.mnt.join("My Drive");
    assert_eq!(names(&drive), vec!["Plain".to_owned(), "Secret".to_owned()]);
    let data = pattern(100_000, 31);
    for p in ["Plain", "Secret"] {
        fs::create_dir(drive.join(p).join("visible-dir")).unwrap();
        fs::write(drive.join(p).join("visible-dir/visible-name.txt"), b"visible contents here").unwrap();
        fs::write(drive.join(p).join("data.bin"), &data).unwrap();
    }
    // Plain: names and bytes as written.
    m.sync();
    assert_eq!(fs::read(plain_dir.join("visible-dir/visible-name.txt")).unwrap(), b"visible contents here");
    assert_eq!(fs::read(plain_dir.join("data.bin")).unwrap(), data);
    assert!(!plain_dir.join(".oxidrive/oxidrive.vault").exists(), "a plain provider gets no vault");
    // Encrypted: neither names nor bytes.
    assert!(secret_dir.join(".oxidrive/oxidrive.vault").exists());
    for needle in [&b"visible"[..], b"data.bin", b"visible contents here", &data[1000..1064]] {
        let (found, _) = leaks(std::slice::from_ref(&secret_dir), needle);
        assert!(found.is_empty(), "{:?} leaked: {found:?}", String::from_utf8_lossy(needle));
    }
    assert_eq!(fs::metadata(object_of_size(&secret_dir, 100_000)).unwrap().len(), enc_size(100_000));

    m.remount();
    for p in ["Plain", "Secret"] {
        assert_eq!(fs::read(drive.join(p).join("visible-dir/visible-name.txt")).unwrap(), b"visible contents here");
        assert_eq!(fs::read(drive.join(p).join("data.bin")).unwrap(), data);
    }
    // A file dropped into the plain folder shows through the mount as is.
    fs::write(plain_dir.join("dropped.txt"), b"from outside").unwrap();
    assert_eq!(fs::read(drive.join("Plain/dropped.txt")).unwrap(), b"from outside");
}

/// A folder of plain files, configured `encrypt = true`; returns it.
fn plaintext_folder_configured_encrypted(m: &TestMount) -> PathBuf {
    let folder = m.dir.path().join("existing");
    fs::create_dir_all(folder.join("docs")).unwrap();
    fs::write(folder.join("notes.txt"), b"my plain notes").unwrap();
    fs::write(folder.join("docs/report.pdf"), pattern(90_000, 41)).unwrap();
    fs::create_dir_all(m.config_file().parent().unwrap()).unwrap();
    fs::write(
        m.config_file(),
        format!("[[provider]]\nname = \"Mine\"\ntype = \"local\"\npath = \"{}\"\nencrypt = true\n", folder.display()),
    )
    .unwrap();
    folder
}

#[test]
fn plaintext_folder_configured_encrypted_is_refused_untouched() {
    let m = TestMount::unstarted(None);
    let folder = plaintext_folder_configured_encrypted(&m);
    let files = [folder.join("notes.txt"), folder.join("docs")];
    let before = disk_state(&files);
    std::thread::sleep(Duration::from_millis(20));
    let out = mount_fails_with(&m, TEST_PASSPHRASE);
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // (The passphrase is asked for, with a "first use" note, before this check.)
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("not an encrypted"), "{err}");
    assert!(last.contains("Mine"), "names the provider: {err}");
    let diff = state_diff(&before, &disk_state(&files));
    assert!(diff.is_empty(), "the user's files were changed:\n{}", diff.join("\n"));
    assert!(!folder.join(".oxidrive/oxidrive.vault").exists(), "no vault was created");
    assert!(!m.dir.path().join("state/oxidrive/local.vault").exists(), "no local vault was created");
    // Still refused the second time (nothing half-initialised).
    let out = mount_fails_with(&m, TEST_PASSPHRASE);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an encrypted"));
}

/// The refusal must leave the user's folder exactly as it was: no new entries, same
/// directory mtime.
#[test]
fn plaintext_folder_configured_encrypted_gets_no_oxidrive_dir() {
    let m = TestMount::unstarted(None);
    let folder = plaintext_folder_configured_encrypted(&m);
    let before = disk_state(std::slice::from_ref(&folder));
    std::thread::sleep(Duration::from_millis(20));
    mount_fails_with(&m, TEST_PASSPHRASE);
    let diff = state_diff(&before, &disk_state(std::slice::from_ref(&folder)));
    assert!(diff.is_empty(), "the folder was changed:\n{}", diff.join("\n"));
    assert!(!folder.join(".oxidrive").exists());
}

// ---------------------------------------------------------------------------------
// 9. Range reads.
// ---------------------------------------------------------------------------------

#[test]
fn random_range_reads_match_the_plaintext() {
    use rand::{Rng, SeedableRng};
    let mut m = TestMount::start();
    let len = 1_300_000usize;
    let data = pattern(len, 77);
    fs::write(m.local().join("r.bin"), &data).unwrap();
    m.remount();
    let path = m.local().join("r.bin");
    assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
    let obj = object_of_size(&m.backing(), len as u64);
    assert_eq!(fs::metadata(obj).unwrap().len(), enc_size(len as u64));

    let f = File::open(&path).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let chunks = (len as u64).div_ceil(CHUNK);
    for i in 0..200 {
        let off: u64 = match i % 4 {
            0 => rng.random_range(0..len as u64),
            1 => {
                let k = rng.random_range(0..=chunks);
                (k * CHUNK).saturating_add_signed(rng.random_range(-40i64..40))
            }
            2 => rng.random_range(len as u64 - 70_000..len as u64 + 70_000),
            _ => rng.random_range(0..len as u64 + 10),
        };
        let n: usize = match rng.random_range(0..4) {
            0 => rng.random_range(0..64),
            1 => rng.random_range(0..5000),
            2 => rng.random_range(60_000..140_000),
            _ => rng.random_range(1..300_000),
        };
        drop_cache(&f);
        let got = pread_full(&f, off, n).unwrap_or_else(|e| panic!("pread({off}, {n}): {e}"));
        let s = (off as usize).min(len);
        let e = (off as usize).saturating_add(n).min(len);
        assert_eq!(got.len(), e - s, "pread({off}, {n}) length");
        assert!(got == data[s..e], "pread({off}, {n}) returned wrong bytes");
    }
    // Single preads past EOF return 0 bytes.
    let mut buf = [0u8; 16];
    assert_eq!(f.read_at(&mut buf, len as u64).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, len as u64 + 1_000_000).unwrap(), 0);
    let n = f.read_at(&mut buf, len as u64 - 5).unwrap();
    assert_eq!(&buf[..n], &data[len - 5..len][..n]);
    assert!(n >= 1);
}
