//! Provider conformance: the same scenarios through a real mount against every
//! provider type, each served for real on 127.0.0.1 (local folder, moto_server for
//! S3, `rclone serve webdav`, a private sshd for SFTP), with encryption on and off.
//! After the scenarios a second, fresh mount (new state and cache, same provider)
//! must see exactly the same tree: what the first mount wrote reached the provider.
//!
//! Sizes: CI mode by default (1000-entry directory, 64 MiB file); `OXIDRIVE_LONG=1`
//! for the full sizes (10 000 entries, 200 MB).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxidrive_tests::servers::{S3Server, SftpServer, WebdavServer, closed_port};
use oxidrive_tests::{TestMount, assert_errno, names, output_within, pattern, snapshot, snapshot_diff};

const PROVIDER: &str = "Store";

fn long_mode() -> bool {
    std::env::var("OXIDRIVE_LONG").is_ok_and(|v| v == "1")
}

fn many_entries() -> usize {
    if long_mode() { 10_000 } else { 1_000 }
}

fn big_file_mib() -> usize {
    if long_mode() { 200 } else { 64 }
}

/// A running provider and the `[[provider]]` table that reaches it.
enum Server {
    Local(tempfile::TempDir),
    S3(S3Server),
    Webdav(WebdavServer),
    Sftp(SftpServer),
}

impl Server {
    fn start(kind: &str) -> Self {
        match kind {
            "local" => Server::Local(tempfile::Builder::new().prefix("oxidrive-local-").tempdir().expect("tempdir")),
            "s3" => {
                let s = S3Server::start();
                s.create_bucket("conformance");
                Server::S3(s)
            }
            "webdav" => Server::Webdav(WebdavServer::start()),
            "sftp" => Server::Sftp(SftpServer::start()),
            other => panic!("unknown provider kind {other}"),
        }
    }

    fn table(&self, encrypt: bool) -> String {
        let body = match self {
            Server::Local(d) => format!("type = \"local\"\npath = \"{}\"\n", d.path().display()),
            Server::S3(s) => format!(
                "type = \"s3\"\nbucket = \"conformance\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
                 prefix = \"team/oxidrive\"\naccess_key_id = \"test-key\"\nsecret_access_key = \"test-secret\"\n",
                s.endpoint
            ),
            Server::Webdav(w) => format!(
                "type = \"webdav\"\nendpoint = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\nroot = \"store\"\n",
                w.endpoint, w.user, w.pass
            ),
            Server::Sftp(s) => format!(
                "type = \"sftp\"\nendpoint = \"{}\"\nuser = \"{}\"\nkey = \"{}\"\nroot = \"{}\"\n\
                 known_hosts_strategy = \"strict\"\n",
                s.endpoint,
                s.user,
                s.key.display(),
                s.root.display()
            ),
        };
        format!("[[provider]]\nname = \"{PROVIDER}\"\n{body}encrypt = {encrypt}\n")
    }
}

impl Server {
    /// Copies a store's raw objects (as a local provider keeps them, vault header
    /// included) into this server, as another device would have uploaded them.
    fn upload_tree(&self, src: &Path) {
        match self {
            Server::Local(d) => copy_tree(src, d.path()),
            Server::Webdav(w) => copy_tree(src, &w.data.join("store")),
            Server::Sftp(s) => copy_tree(src, &s.root),
            Server::S3(s) => {
                for (rel, is_dir) in raw_entries(src) {
                    let key = format!("team/oxidrive/{rel}{}", if is_dir { "/" } else { "" });
                    let body = if is_dir { Vec::new() } else { fs::read(src.join(&rel)).expect("read raw object") };
                    s.put_object("conformance", &key, &body);
                }
            }
        }
    }
}

/// Relative paths (and whether each is a directory) below `root`, parents first,
/// without our temp uploads.
fn raw_entries(root: &Path) -> Vec<(String, bool)> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<(String, bool)>) {
        for e in fs::read_dir(root.join(rel)).expect("read_dir raw") {
            let e = e.expect("entry");
            let name = e.file_name().into_string().expect("UTF-8 raw name");
            let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if rel == ".oxidrive/tmp" {
                continue;
            }
            let is_dir = e.file_type().expect("file type").is_dir();
            out.push((rel.clone(), is_dir));
            if is_dir {
                walk(root, &rel, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir dst");
    for (rel, is_dir) in raw_entries(src) {
        if is_dir {
            fs::create_dir_all(dst.join(&rel)).expect("mkdir");
        } else {
            fs::copy(src.join(&rel), dst.join(&rel)).expect("copy raw object");
        }
    }
}

/// Fills `many/` with `many_entries()` files before the provider is first mounted:
/// written through a quick local mount (so names and contents are encrypted when
/// `encrypt`), then their raw objects are uploaded to the server. Creating thousands
/// of files one by one through a mount of a slow test server (moto is Python) would
/// take minutes; the listing, which is what this scenario is about, still goes
/// through the real provider.
fn seed_big_directory(server: &Server, encrypt: bool) {
    let local = Server::start("local");
    let mut m = TestMount::with_config(&local.table(encrypt));
    let many = store(&m).join("many");
    fs::create_dir(&many).expect("mkdir many");
    for i in 0..many_entries() {
        fs::write(many.join(format!("entry-{i:05}.txt")), i.to_string()).expect("create entry");
    }
    m.unmount();
    let Server::Local(dir) = &local else { unreachable!() };
    server.upload_tree(dir.path());
}

fn store(m: &TestMount) -> PathBuf {
    m.mnt.join("My Drive").join(PROVIDER)
}

/// Runs `f`, printing how long it took (visible with --nocapture).
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    eprintln!("  {what}: {:.1} s", t.elapsed().as_secs_f64());
    r
}

fn conformance(kind: &str, encrypt: bool) {
    let started = Instant::now();
    let server = timed("start server", || Server::start(kind));
    let config = server.table(encrypt);
    timed("seed big dir", || seed_big_directory(&server, encrypt));
    let mut first = timed("mount", || TestMount::with_config(&config));
    let root = store(&first);
    assert!(root.is_dir(), "{} missing:\n{}", root.display(), first.log());

    timed("create/overwrite", || create_and_overwrite(&root));
    timed("range read", || range_reads(&root));
    timed("rename file", || rename_file(&root));
    timed("rename dir", || rename_non_empty_dir(&root));
    timed("delete", || delete(&root));
    timed("trash", || trash(&first, &root));
    timed("odd names", || odd_names(&root));
    timed("big dir", || big_directory(&root));
    let expected = timed("snapshot", || snapshot_except_many(&root));
    timed("big file write", || write_big_file(&root.join("big.bin")));
    timed("unmount", || first.unmount());

    // A fresh mount (no cache, no index) sees only what reached the provider.
    let second = timed("fresh mount", || TestMount::with_config(&config));
    let root = store(&second);
    timed("big file cold read", || check_big_file(&root.join("big.bin")));
    fs::remove_file(root.join("big.bin")).expect("delete big file");
    let seen = timed("fresh snapshot", || snapshot_except_many(&root));
    if let Some(diff) = snapshot_diff(&expected, &seen) {
        panic!("the fresh mount differs from what the first one wrote: {diff}\n{}", second.log());
    }
    timed("big dir cold listing", || check_many(&root.join("many"), many_entries() + MORE_ENTRIES));
    // The Trash lives on the provider: a fresh mount (as another device) sees it.
    let binned = second.mnt.join("Trash/binned.txt");
    assert_eq!(fs::read(&binned).expect("trash item seen by a fresh mount"), b"in the bin");
    drop(second);
    eprintln!("{kind} encrypt={encrypt}: {:.1} s in all", started.elapsed().as_secs_f64());
}

fn create_and_overwrite(root: &Path) {
    let f = root.join("a.txt");
    fs::write(&f, b"hello, provider").expect("create");
    assert_eq!(fs::read(&f).expect("read"), b"hello, provider");
    fs::write(&f, b"bye").expect("overwrite shorter");
    assert_eq!(fs::read(&f).expect("read"), b"bye");
    assert_eq!(fs::metadata(&f).expect("stat").len(), 3);
    // In place, without truncating.
    let mut h = OpenOptions::new().write(true).open(&f).expect("open for write");
    h.seek(SeekFrom::Start(1)).expect("seek");
    h.write_all(b"XYZ!").expect("write in place");
    drop(h);
    assert_eq!(fs::read(&f).expect("read"), b"bXYZ!");
    // Empty files exist too.
    File::create(root.join("empty")).expect("create empty");
    assert_eq!(fs::metadata(root.join("empty")).expect("stat").len(), 0);
}

fn range_reads(root: &Path) {
    let data = pattern(3 * 1024 * 1024 + 123, 7);
    let f = root.join("range.bin");
    fs::write(&f, &data).expect("write range.bin");
    let mut h = File::open(&f).expect("open");
    let n = data.len() as u64;
    for (off, len) in [(0u64, 10usize), (4095, 2), (65_536 * 3 - 5, 100_000), (1_048_576, 1_048_576), (n - 50, 50)] {
        h.seek(SeekFrom::Start(off)).expect("seek");
        let mut buf = vec![0u8; len];
        h.read_exact(&mut buf).unwrap_or_else(|e| panic!("read {len} @ {off}: {e}"));
        assert!(buf == data[off as usize..off as usize + len], "wrong bytes at {off}+{len}");
    }
    // Reading past the end returns what is there, then EOF.
    h.seek(SeekFrom::Start(n - 10)).expect("seek");
    let mut rest = Vec::new();
    h.read_to_end(&mut rest).expect("read to end");
    assert_eq!(rest, data[data.len() - 10..]);
}

fn rename_file(root: &Path) {
    let (a, b) = (root.join("r1.txt"), root.join("r2.txt"));
    fs::write(&a, b"renamed contents").expect("write");
    fs::rename(&a, &b).expect("rename file");
    assert!(!a.exists());
    assert_eq!(fs::read(&b).expect("read renamed"), b"renamed contents");
    fs::create_dir(root.join("sub")).expect("mkdir sub");
    fs::rename(&b, root.join("sub/r3.txt")).expect("rename into a dir");
    assert_eq!(fs::read(root.join("sub/r3.txt")).expect("read moved"), b"renamed contents");
    // Replacing an existing file.
    fs::write(root.join("sub/old.txt"), b"old").expect("write");
    fs::write(root.join("sub/new.txt"), b"new").expect("write");
    fs::rename(root.join("sub/new.txt"), root.join("sub/old.txt")).expect("rename over");
    assert_eq!(fs::read(root.join("sub/old.txt")).expect("read"), b"new");
    assert_eq!(names(&root.join("sub")), ["old.txt", "r3.txt"]);
}

fn rename_non_empty_dir(root: &Path) {
    let d = root.join("d");
    fs::create_dir_all(d.join("inner/deeper")).expect("mkdir -p");
    fs::create_dir_all(d.join("empty inside")).expect("mkdir");
    fs::write(d.join("x.txt"), b"x").expect("write");
    fs::write(d.join("inner/y.bin"), pattern(200_000, 3)).expect("write");
    fs::write(d.join("inner/deeper/z"), b"zzz").expect("write");
    let before = snapshot(&d).expect("snapshot d");
    fs::rename(&d, root.join("d2")).expect("rename non-empty dir");
    assert!(!d.exists(), "old dir still there");
    let after = snapshot(&root.join("d2")).expect("snapshot d2");
    if let Some(diff) = snapshot_diff(&before, &after) {
        panic!("renamed dir differs: {diff}");
    }
}

fn delete(root: &Path) {
    fs::write(root.join("gone.txt"), b"soon gone").expect("write");
    fs::remove_file(root.join("gone.txt")).expect("unlink");
    assert!(!root.join("gone.txt").exists());
    fs::create_dir_all(root.join("tree/a/b")).expect("mkdir");
    fs::write(root.join("tree/a/b/f"), b"f").expect("write");
    assert_errno("rmdir non-empty", fs::remove_dir(root.join("tree/a")), libc::ENOTEMPTY);
    fs::remove_dir_all(root.join("tree")).expect("rm -r");
    assert!(!root.join("tree").exists());
    fs::create_dir(root.join("empty dir")).expect("mkdir");
    fs::remove_dir(root.join("empty dir")).expect("rmdir");
    assert!(!root.join("empty dir").exists());
    // An empty directory that stays: the fresh mount must see it (object stores keep
    // it as a marker).
    fs::create_dir(root.join("kept empty")).expect("mkdir");
}

/// `rm` moves to the provider's trash area; `mv` out of Trash restores, folders whole.
fn trash(m: &TestMount, root: &Path) {
    fs::create_dir_all(root.join("bin dir/sub")).expect("mkdir");
    fs::write(root.join("bin dir/sub/y.txt"), b"y").expect("write");
    fs::write(root.join("binned.txt"), b"in the bin").expect("write");
    m.sync();
    fs::remove_dir_all(root.join("bin dir")).expect("rm -r");
    fs::remove_file(root.join("binned.txt")).expect("rm");
    let trash = m.mnt.join("Trash");
    assert_eq!(names(&trash), ["bin dir", "binned.txt"]);
    // Moved on the provider before it is restored.
    m.sync();
    assert_eq!(fs::read(trash.join("bin dir/sub/y.txt")).expect("read in Trash"), b"y");
    fs::rename(trash.join("bin dir"), root.join("restored dir")).expect("restore");
    assert_eq!(fs::read(root.join("restored dir/sub/y.txt")).expect("read restored"), b"y");
    assert_eq!(names(&trash), ["binned.txt"]);
    m.sync();
}

const ODD: &[&str] = &[
    "with space.txt",
    "ünïcödé ✓ 日本語.txt",
    "100% done.txt",
    "%41%2F%25",
    "#hash#.txt",
    "a%20b#c d?.txt",
    "semi;colon&amp=+.txt",
];

fn odd_names(root: &Path) {
    let dir = root.join("dir #1 %41 ü");
    fs::create_dir(&dir).expect("mkdir odd dir");
    for (i, n) in ODD.iter().enumerate() {
        fs::write(dir.join(n), format!("{i}:{n}")).unwrap_or_else(|e| panic!("create {n:?}: {e}"));
    }
    let mut want: Vec<String> = ODD.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names(&dir), want);
    for (i, n) in ODD.iter().enumerate() {
        assert_eq!(fs::read_to_string(dir.join(n)).expect("read odd name"), format!("{i}:{n}"));
    }
    fs::rename(dir.join("100% done.txt"), dir.join("#done 100%.txt")).expect("rename odd");
    assert!(dir.join("#done 100%.txt").exists() && !dir.join("100% done.txt").exists());
    fs::create_dir(dir.join("sub dir %")).expect("mkdir odd sub");
    fs::write(dir.join("sub dir %/x #.txt"), b"x").expect("write in odd sub");
}

/// Entries added through the mount to the seeded big directory.
const MORE_ENTRIES: usize = 20;

fn big_directory(root: &Path) {
    let many = root.join("many");
    let n = many_entries();
    check_many(&many, n);
    for i in n..n + MORE_ENTRIES {
        fs::write(many.join(format!("entry-{i:05}.txt")), i.to_string()).expect("create entry");
    }
    fs::remove_file(many.join("entry-00001.txt")).expect("delete in big dir");
    fs::write(many.join("entry-00001.txt"), "1").expect("recreate in big dir");
    check_many(&many, n + MORE_ENTRIES);
}

/// `dir` lists exactly entry-00000.txt .. entry-{n-1}.txt, and a few read back right.
fn check_many(dir: &Path, n: usize) {
    let listed = names(dir);
    let want: Vec<String> = (0..n).map(|i| format!("entry-{i:05}.txt")).collect();
    assert!(
        listed == want,
        "listing of {n} entries: got {} entries, first difference at {:?}",
        listed.len(),
        listed.iter().zip(&want).position(|(a, b)| a != b)
    );
    for i in [0, 1, n / 2, n - 1] {
        assert_eq!(fs::read_to_string(dir.join(&want[i])).expect("read entry"), i.to_string());
    }
}

/// `snapshot` of everything but `many/` (checked by `check_many`; reading thousands
/// of files twice more would only measure the test server).
fn snapshot_except_many(root: &Path) -> std::collections::BTreeMap<PathBuf, oxidrive_tests::Node> {
    let mut out = std::collections::BTreeMap::new();
    for name in names(root) {
        if name == "many" {
            continue;
        }
        let path = root.join(&name);
        if path.is_dir() {
            out.insert(PathBuf::from(&name), oxidrive_tests::Node::Dir);
            for (k, v) in snapshot(&path).expect("snapshot") {
                out.insert(Path::new(&name).join(k), v);
            }
        } else {
            out.insert(PathBuf::from(&name), oxidrive_tests::Node::File(fs::read(&path).expect("read")));
        }
    }
    out
}

/// 1 MiB chunks, each a different pattern, so a misplaced chunk shows.
fn big_chunk(i: usize) -> Vec<u8> {
    pattern(1 << 20, (i % 251) as u8 ^ (i / 251) as u8)
}

fn write_big_file(path: &Path) {
    let mut f = File::create(path).expect("create big file");
    for i in 0..big_file_mib() {
        f.write_all(&big_chunk(i)).expect("write big file");
    }
    f.sync_all().expect("fsync big file");
}

fn check_big_file(path: &Path) {
    let mib = big_file_mib();
    assert_eq!(fs::metadata(path).expect("stat big file").len(), (mib as u64) << 20);
    let mut f = File::open(path).expect("open big file");
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..mib {
        f.read_exact(&mut buf).unwrap_or_else(|e| panic!("read MiB {i}: {e}"));
        assert!(buf == big_chunk(i), "MiB {i} of the big file differs");
    }
    assert_eq!(f.read(&mut buf).expect("read at EOF"), 0);
}

#[test]
fn local_plain() {
    conformance("local", false);
}

#[test]
fn local_encrypted() {
    conformance("local", true);
}

#[test]
fn s3_plain() {
    conformance("s3", false);
}

#[test]
fn s3_encrypted() {
    conformance("s3", true);
}

#[test]
fn webdav_plain() {
    conformance("webdav", false);
}

#[test]
fn webdav_encrypted() {
    conformance("webdav", true);
}

#[test]
fn sftp_plain() {
    conformance("sftp", false);
}

#[test]
fn sftp_encrypted() {
    conformance("sftp", true);
}

/// Config with a working local store "Here" and an S3 provider "Nowhere" whose
/// endpoint is a closed port.
fn nowhere_config(dir: &Path, encrypt: bool) -> String {
    let here = dir.join("here");
    fs::create_dir_all(&here).expect("mkdir here");
    format!(
        "[[provider]]\nname = \"Here\"\ntype = \"local\"\npath = \"{}\"\n\
         [[provider]]\nname = \"Nowhere\"\ntype = \"s3\"\nbucket = \"bkt\"\n\
         endpoint = \"http://127.0.0.1:{}\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n\
         retries = 1\ntimeout_secs = 5\nencrypt = {encrypt}\n",
        here.display(),
        closed_port()
    )
}

/// An unreachable provider, as SEMANTICS.md ("Unavailable providers") says: the mount
/// comes up soon (bounded retries), the provider's folder is empty and read-only
/// (EROFS), the log names it and says it is unreachable, and the rest works.
fn check_unreachable_provider(encrypt: bool) {
    let started = Instant::now();
    let m = TestMount::with_config_in(|d| nowhere_config(d, encrypt));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "mount took {took:?} with an unreachable provider");
    let dead = m.mnt.join("My Drive/Nowhere");
    let log = m.log();
    assert!(log.contains("Nowhere") && log.contains("unreachable"), "the log does not say why:\n{log}");
    assert_eq!(names(&dead), Vec::<String>::new(), "{log}");
    assert_errno("write into an unavailable provider", fs::write(dead.join("x"), b"x"), libc::EROFS);
    let here = m.mnt.join("My Drive/Here/ok.txt");
    fs::write(&here, b"fine").expect("write to the working provider");
    assert_eq!(fs::read(&here).expect("read"), b"fine");
}

#[test]
fn unreachable_provider_is_reported_and_read_only() {
    check_unreachable_provider(true);
}

/// The same with `encrypt = false`: nothing reaches the provider before mounting (no
/// vault header to read), so its folder looks normal and every access fails with EIO.
#[test]
fn unreachable_plain_provider_is_reported_and_read_only() {
    check_unreachable_provider(false);
}

const S3_KEY_ID: &str = "AKIAOXIDRIVELEAKPROBE";
const S3_SECRET: &str = "s3-secret-LEAKPROBE-9f8e7d";
const DAV_PASS: &str = "dav-password-LEAKPROBE-1a2b";

fn assert_no_secrets(what: &str, text: &str) {
    // The WebDAV password also travels as base64 in a Basic auth header.
    let basic = base64(format!("leaktester:{DAV_PASS}").as_bytes());
    for s in [S3_KEY_ID, S3_SECRET, DAV_PASS, basic.trim_end_matches('=')] {
        assert!(!text.contains(s), "{what} shows a secret ({s}):\n{text}");
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// `provider add` (secret from stdin), `list` and `check` (also with debug logs), and
/// a mount's log never show a configured secret; the config file is 0600.
#[test]
fn secrets_stay_out_of_logs_and_listings() {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(base64(b"leak"), "bGVhaw");
    let s3 = S3Server::start();
    s3.create_bucket("secrets");
    let dav = WebdavServer::start_with("leaktester", DAV_PASS);
    let mut m = TestMount::unstarted(None);

    let add = |args: &[&str], stdin: &str| {
        let mut child = m
            .oxidrive()
            .args(["provider", "add"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn provider add");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        let out = child.wait_with_output().expect("provider add");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "provider add {args:?} failed:\n{text}");
        assert_no_secrets("provider add", &text);
    };
    let endpoint = format!("endpoint={}", s3.endpoint);
    let key_id = format!("access_key_id={S3_KEY_ID}");
    add(
        &["S3 Store", "--type", "s3", "bucket=secrets", &endpoint, &key_id, "secret_access_key=-"],
        &format!("{S3_SECRET}\n"),
    );
    let endpoint = format!("endpoint={}", dav.endpoint);
    add(
        &["Dav Store", "--type", "webdav", "--shared", &endpoint, "username=leaktester", "password=-"],
        &format!("{DAV_PASS}\n"),
    );

    let cfg = m.config_file();
    let mode = fs::metadata(&cfg).expect("config file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config file mode");
    let text = fs::read_to_string(&cfg).expect("read config");
    assert!(text.contains(S3_SECRET) && text.contains(DAV_PASS), "secrets were not stored:\n{text}");

    let out = m.oxidrive().args(["provider", "list"]).output().expect("provider list");
    let list = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "provider list failed:\n{list}");
    assert!(list.contains("S3 Store") && list.contains("Dav Store") && list.contains("webdav"), "{list}");
    assert_no_secrets("provider list", &list);

    let out = m.oxidrive().args(["provider", "check"]).env("RUST_LOG", "trace").output().expect("provider check");
    let check = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "provider check failed:\n{check}");
    assert!(check.contains("S3 Store (s3): ok") && check.contains("Dav Store (webdav): ok"), "{check}");
    assert!(check.contains("rename: copy + delete"), "S3 should report emulated rename:\n{check}");
    assert_no_secrets("provider check with debug logs", &check);

    m.mount();
    for dir in ["My Drive/S3 Store", "Shared/Dav Store"] {
        let f = m.mnt.join(dir).join("probe.txt");
        fs::write(&f, b"hello").unwrap_or_else(|e| panic!("write {}: {e}\n{}", f.display(), m.log()));
        assert_eq!(fs::read(&f).expect("read"), b"hello");
    }
    m.unmount();
    assert_no_secrets("the mount log", &m.log());

    let out = m.oxidrive().args(["provider", "remove", "Dav Store"]).output().expect("provider remove");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = fs::read_to_string(&cfg).expect("read config");
    assert!(!text.contains(DAV_PASS) && text.contains("S3 Store"), "remove left:\n{text}");
    let mode = fs::metadata(&cfg).expect("config file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config file mode after remove");
}

/// `provider check` against a real SFTP server through the private ssh setup, and a
/// clear failure for a provider that cannot be reached.
#[test]
fn provider_check_sftp_and_unreachable() {
    let sftp = SftpServer::start();
    let dead = closed_port();
    let m = TestMount::unstarted(Some(&format!(
        "[[provider]]\nname = \"Box\"\ntype = \"sftp\"\nendpoint = \"{}\"\nuser = \"{}\"\nkey = \"{}\"\nroot = \"{}\"\n\
         [[provider]]\nname = \"Dead\"\ntype = \"webdav\"\nendpoint = \"http://127.0.0.1:{dead}\"\nretries = 1\n",
        sftp.endpoint,
        sftp.user,
        sftp.key.display(),
        sftp.root.display()
    )));
    let out = output_within(m.oxidrive().args(["provider", "check", "Box"]), Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check Box failed:\n{text}");
    assert!(text.contains("Box (sftp): ok") && text.contains("rename: native"), "{text}");
    // Only the (empty) folder of temporary uploads may stay.
    let left: Vec<_> = fs::read_dir(sftp.root.join(".oxidrive"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.iter().all(|n| n == "tmp"), "probe left behind: {left:?}");
    assert_eq!(
        fs::read_dir(sftp.root.join(".oxidrive/tmp")).map(|d| d.count()).unwrap_or(0),
        0,
        "temporary upload left"
    );

    let out = output_within(m.oxidrive().args(["provider", "check"]), Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check of a dead provider succeeded:\n{text}");
    assert!(text.contains("Dead (webdav): FAILED") && text.contains("Box (sftp): ok"), "{text}");
}

/// OpenDAL's `normalize_path` trims white space at the ends of paths, so a plain
/// (unencrypted) provider cannot store `"x "`: such names get EINVAL instead of being
/// silently stored as `"x"` (possibly over another file). Encrypted providers keep them
/// (stored names are encoded).
#[test]
fn names_with_edge_spaces_are_refused_on_plain_providers_and_kept_on_encrypted() {
    let server = Server::start("local");
    let m = TestMount::with_config(&server.table(false));
    let root = store(&m);
    fs::write(root.join("x"), b"original").unwrap();
    for n in ["x ", " x", " both "] {
        let err = fs::write(root.join(n), n).expect_err(n);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{n:?}: {err}");
    }
    assert_eq!(names(&root), ["x"]);
    assert_eq!(fs::read(root.join("x")).unwrap(), b"original");
    drop(m);

    let server = Server::start("local");
    let m = TestMount::with_config(&server.table(true));
    let root = store(&m);
    for n in ["trailing ", " leading", " both "] {
        fs::write(root.join(n), n).unwrap_or_else(|e| panic!("create {n:?}: {e}"));
    }
    assert_eq!(names(&root), [" both ", " leading", "trailing "]);
    assert_eq!(fs::read(root.join(" both ")).unwrap(), b" both ");
}
