//! Real programs on the mount: git, sqlite3, tar, rsync, stress-ng, fio, fsx, CPython's
//! own tests. Each result is checked
//! against what the same program says on a plain folder or against the source.
//! Functions taking a `TestMount` run on a plain and on the default store.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oxidrive_tests::{Node, TestMount, make_tree, names, output_within, run, snapshot, snapshot_diff};

fn git(dir: &Path, args: &[&str]) -> String {
    let mut all =
        vec!["-c", "user.name=Oxi Test", "-c", "user.email=test@oxidrive.invalid", "-c", "init.defaultBranch=main"];
    all.extend_from_slice(args);
    run(dir, "git", &all)
}

#[test]
fn git_init_add_commit_status_log_fsck() {
    let mut m = TestMount::start();
    let repo = m.local().join("repo");
    fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    make_tree(&repo.join("src"), 11, 60);
    fs::write(repo.join("README.md"), "# hello\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first commit"]);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "", "clean after commit");
    let log = git(&repo, &["log", "--format=%s"]);
    assert_eq!(log, "first commit\n");

    // Second commit: an edit, a rename, a delete.
    fs::write(repo.join("README.md"), "# hello\n\nmore\n").unwrap();
    git(&repo, &["mv", "README.md", "README.txt"]);
    fs::write(repo.join("new.txt"), "new\n").unwrap();
    git(&repo, &["add", "-A"]);
    let status = git(&repo, &["status", "--porcelain"]);
    assert!(status.contains("R  README.md -> README.txt") && status.contains("A  new.txt"), "{status}");
    git(&repo, &["commit", "-q", "-m", "second commit"]);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(git(&repo, &["log", "--format=%s"]), "second commit\nfirst commit\n");
    let diff = git(&repo, &["diff", "--name-status", "HEAD~1", "HEAD"]);
    assert!(diff.contains("README.txt") && diff.contains("new.txt"), "{diff}");

    // Branches and checkout rewrite the working tree.
    git(&repo, &["checkout", "-q", "-b", "side", "HEAD~1"]);
    assert_eq!(fs::read_to_string(repo.join("README.md")).unwrap(), "# hello\n");
    assert!(!repo.join("new.txt").exists());
    git(&repo, &["checkout", "-q", "main"]);
    assert_eq!(fs::read_to_string(repo.join("README.txt")).unwrap(), "# hello\n\nmore\n");

    // gc packs and deletes loose objects; everything must still be consistent.
    git(&repo, &["gc", "-q"]);
    let fsck = Command::new("git").args(["fsck", "--full", "--strict"]).current_dir(&repo).output().unwrap();
    assert!(fsck.status.success(), "git fsck: {}", String::from_utf8_lossy(&fsck.stderr));
    assert!(!String::from_utf8_lossy(&fsck.stderr).contains("error"), "{}", String::from_utf8_lossy(&fsck.stderr));

    // The same repository after a remount.
    m.remount();
    let repo = m.local().join("repo");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(git(&repo, &["log", "--format=%s"]), "second commit\nfirst commit\n");
    git(&repo, &["fsck", "--full"]);
    // A clone out of the mount equals the repository.
    let out = tempfile::tempdir().unwrap();
    run(out.path(), "git", &["clone", "-q", repo.to_str().unwrap(), "clone"]);
    let clone = out.path().join("clone");
    // (git keeps no empty directories, so compare files and links only)
    let tracked = |root: &Path| -> BTreeMap<PathBuf, Node> {
        snapshot(root).unwrap().into_iter().filter(|(p, n)| !p.starts_with(".git") && *n != Node::Dir).collect()
    };
    let (a, b) = (tracked(&repo), tracked(&clone));
    assert!(a.len() > 60, "{} files", a.len());
    assert_eq!(snapshot_diff(&a, &b), None);
}

fn sqlite(dir: &Path, db: &str, sql: &str) -> String {
    run(dir, "sqlite3", &["-batch", "-bail", db, sql])
}

fn sqlite_transactions_and_integrity_across_remount(mut m: TestMount) {
    let dir = m.local().join("db");
    fs::create_dir(&dir).unwrap();
    sqlite(
        &dir,
        "test.db",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, blob BLOB);
         CREATE INDEX t_name ON t(name);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t(id, name, blob) SELECT i, 'row ' || i, randomblob(i % 200) FROM n;
         COMMIT;",
    );
    // Many small transactions: each one creates, writes, syncs and deletes a journal.
    let mut script = String::new();
    for i in 0..100 {
        script += &format!("INSERT INTO t(name) VALUES ('small {i}');\n");
    }
    sqlite(&dir, "test.db", &script);
    sqlite(
        &dir,
        "test.db",
        "BEGIN; DELETE FROM t WHERE id % 3 = 0; UPDATE t SET name = name || '!' WHERE id % 5 = 0; COMMIT;",
    );
    // A rolled-back transaction leaves nothing behind.
    sqlite(&dir, "test.db", "BEGIN; DELETE FROM t; ROLLBACK;");

    // 20100 rows, a third deleted; every fifth renamed; blobs of i % 200 bytes.
    let expect = "13400|20099|2680|1326734\n";
    let query = "SELECT count(*), max(id), (SELECT count(*) FROM t WHERE name LIKE '%!'), sum(length(blob)) FROM t;";
    let check = |dir: &Path, when: &str| {
        assert_eq!(sqlite(dir, "test.db", "PRAGMA integrity_check;"), "ok\n", "{when}");
        assert_eq!(sqlite(dir, "test.db", query), expect, "{when}");
        assert_eq!(sqlite(dir, "test.db", "SELECT name FROM t WHERE id = 10;"), "row 10!\n", "{when}");
        assert_eq!(names(dir), ["test.db"], "{when}: no journal left behind");
    };
    check(&dir, "before remount");
    m.remount();
    let dir = m.local().join("db");
    check(&dir, "after remount");
    // The backing folder holds a valid database too.
    if let Some(b) = m.plain_backing() {
        let copy = tempfile::tempdir().unwrap();
        fs::copy(b.join("db/test.db"), copy.path().join("test.db")).unwrap();
        check(copy.path(), "copy from the backing folder");
    }
}

#[test]
fn sqlite_wal_mode() {
    let mut m = TestMount::start();
    let dir = m.local();
    sqlite(
        &dir,
        "wal.db",
        "PRAGMA journal_mode=WAL;
         CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO kv SELECT i, hex(randomblob(16)) FROM n;
         COMMIT;",
    );
    for i in 0..20 {
        sqlite(&dir, "wal.db", &format!("UPDATE kv SET v = 'v{i}' WHERE k = {};", i + 1));
    }
    assert_eq!(sqlite(&dir, "wal.db", "PRAGMA journal_mode;"), "wal\n");
    assert_eq!(sqlite(&dir, "wal.db", "PRAGMA integrity_check;"), "ok\n");
    assert_eq!(sqlite(&dir, "wal.db", "SELECT count(*), max(k) FROM kv;"), "5000|5000\n");
    m.remount();
    let dir = m.local();
    assert_eq!(sqlite(&dir, "wal.db", "PRAGMA integrity_check;"), "ok\n");
    assert_eq!(sqlite(&dir, "wal.db", "SELECT v FROM kv WHERE k = 20;"), "v19\n");
}

fn tar_extract_into_the_mount_matches_the_source(m: TestMount) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    make_tree(&src, 42, 300);
    // A real source tree too.
    let vfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vfs");
    run(work.path(), "cp", &["-a", vfs.join("src").to_str().unwrap(), src.join("vfs-src").to_str().unwrap()]);
    run(work.path(), "tar", &["-cf", "tree.tar", "tree"]);

    run(&m.local(), "tar", &["-xf", work.path().join("tree.tar").to_str().unwrap()]);
    run(work.path(), "diff", &["-r", "--no-dereference", "tree", m.local().join("tree").to_str().unwrap()]);
    let a = snapshot(&src).unwrap();
    let b = snapshot(&m.local().join("tree")).unwrap();
    assert_eq!(snapshot_diff(&a, &b), None);
    assert!(a.len() > 300, "the tree has {} entries", a.len());
    // tar restores modes and mtimes of files.
    for rel in a.keys() {
        let (x, y) = (
            fs::symlink_metadata(src.join(rel)).unwrap(),
            fs::symlink_metadata(m.local().join("tree").join(rel)).unwrap(),
        );
        if x.file_type().is_symlink() {
            continue;
        }
        assert_eq!(x.mode() & 0o7777, y.mode() & 0o7777, "mode of {}", rel.display());
        if x.is_file() {
            assert_eq!(x.mtime(), y.mtime(), "mtime of {}", rel.display());
        }
    }
    // The backing folder holds the same tree; object stores have no symlinks, so a
    // link is kept as a small file holding its target.
    if let Some(backing) = m.plain_backing() {
        let as_stored: BTreeMap<PathBuf, Node> = a
            .iter()
            .map(|(p, n)| match n {
                Node::Symlink(t) => (p.clone(), Node::File(t.as_os_str().as_encoded_bytes().to_vec())),
                n => (p.clone(), n.clone()),
            })
            .collect();
        let c = snapshot(&backing.join("tree")).unwrap();
        assert_eq!(snapshot_diff(&as_stored, &c), None);
    }
    // And a tarball made from the mount extracts to the same tree elsewhere.
    run(&m.local(), "tar", &["-cf", work.path().join("back.tar").to_str().unwrap(), "tree"]);
    let again = work.path().join("again");
    fs::create_dir(&again).unwrap();
    run(&again, "tar", &["-xf", "../back.tar"]);
    assert_eq!(snapshot_diff(&a, &snapshot(&again.join("tree")).unwrap()), None);
}

/// Itemized changes from rsync's `-i` output (lines that are not blank).
fn itemized(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[track_caller]
fn assert_nothing_to_do(out: &str, what: &str) {
    let items = itemized(out);
    assert!(items.is_empty(), "{what}: {} itemized changes, e.g. {:?}", items.len(), &items[..items.len().min(5)]);
}

#[test]
fn rsync_twice_has_nothing_to_do_on_a_plain_store() {
    rsync_twice_has_nothing_to_do(TestMount::plain());
}

#[test]
fn rsync_twice_has_nothing_to_do_on_the_default_store() {
    rsync_twice_has_nothing_to_do(TestMount::start());
}

fn rsync_twice_has_nothing_to_do(m: TestMount) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src, 7, 250);
    let s = format!("{}/", src.display());
    let d = format!("{}/", m.local().join("dst").display());

    run(work.path(), "rsync", &["-a", &s, &d]);
    assert_eq!(snapshot_diff(&snapshot(&src).unwrap(), &snapshot(&m.local().join("dst")).unwrap()), None);
    let again = run(work.path(), "rsync", &["-a", "-c", "--dry-run", "-i", &s, &d]);
    assert_nothing_to_do(&again, "checksums, sizes, times and modes all match");

    // One change is exactly one itemized file, and a real run fixes it.
    let top_file = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .min()
        .unwrap();
    let changed = src.join(&top_file);
    let mut data = fs::read(&changed).unwrap();
    data.extend_from_slice(b"changed");
    fs::write(&changed, &data).unwrap();
    let dry = run(work.path(), "rsync", &["-a", "-c", "--dry-run", "-i", &s, &d]);
    let items = itemized(&dry);
    assert!(items.len() == 1 && items[0].starts_with(">f") && items[0].ends_with(&format!(" {top_file}")), "{dry}");
    run(work.path(), "rsync", &["-a", "--delete", &s, &d]);
    assert_eq!(fs::read(m.local().join("dst").join(&top_file)).unwrap(), data);
    let again = run(work.path(), "rsync", &["-a", "-c", "--dry-run", "-i", &s, &d]);
    assert_nothing_to_do(&again, "after the second transfer");
    // rsync out of the mount into a new folder gives the same tree.
    let back = work.path().join("back");
    run(work.path(), "rsync", &["-a", &d, back.to_str().unwrap()]);
    assert_eq!(snapshot_diff(&snapshot(&src).unwrap(), &snapshot(&back).unwrap()), None);
}

oxidrive_tests::on_both_stores!(
    sqlite_transactions_and_integrity_across_remount,
    tar_extract_into_the_mount_matches_the_source
);

/// stress-ng's filesystem stressors, two instances each for a few seconds with
/// `--verify`, on the default (encrypted) store: every one must pass, with nothing left
/// behind (stress-ng removes its temp dirs and fails when it cannot). Hard links are
/// refused (`EPERM`, see SEMANTICS.md), so `link` is not among them.
#[test]
fn stress_ng_filesystem_stressors_pass() {
    let m = TestMount::start();
    let dir = m.local().join("stress");
    fs::create_dir(&dir).unwrap();
    let stressors = [
        "dir",
        "dentry",
        "dirdeep",
        "rename",
        "symlink",
        "filename",
        "open",
        "fstat",
        "getdent",
        "utime",
        "chmod",
        "xattr",
        "lockf",
        "flock",
        "hdd",
        "seek",
        "io",
        "iomix",
        "readahead",
        "sync-file",
        "fallocate",
        "mmap",
        "copy-file",
        "fiemap",
    ];
    for s in stressors {
        let out = Command::new("stress-ng")
            .args(["--temp-path"])
            .arg(&dir)
            .args([&format!("--{s}"), "2", "--timeout", "3s", "--verify"])
            .output()
            .expect("run stress-ng (apt install stress-ng)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success() && !text.contains("fail:"),
            "stress-ng --{s}: {}\n{text}\n{}",
            out.status,
            m.log()
        );
        assert_eq!(names(&dir), Vec::<String>::new(), "left behind by stress-ng --{s}");
    }
}

/// fio's verifying workloads (random writes through write(2) and through mmap, mixed
/// sizes, several files and jobs): each block read back must match its checksum.
#[test]
fn fio_verify_workloads_pass() {
    let m = TestMount::start();
    let dir = m.local();
    let jobs: [&[&str]; 4] = [
        &["--name=randwrite", "--rw=randwrite", "--bs=4k", "--size=16M", "--verify=crc32c"],
        &["--name=mixed", "--rw=randrw", "--bsrange=512-64k", "--size=8M", "--verify=md5"],
        &["--name=mmap", "--rw=randwrite", "--bs=4k", "--size=8M", "--ioengine=mmap", "--verify=crc32c"],
        &["--name=many", "--nrfiles=20", "--numjobs=2", "--rw=randwrite", "--bs=4k", "--size=8M", "--verify=sha1"],
    ];
    for job in jobs {
        let out = Command::new("fio")
            .arg(format!("--directory={}", dir.display()))
            .args(job)
            .args(["--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--output-format=terse"])
            .output()
            .expect("run fio (apt install fio)");
        assert!(
            out.status.success(),
            "fio {job:?}: {}\n{}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            m.log()
        );
    }
}

/// fsx, the File System eXerciser (Alan Somers' Rust port of Apple's and FreeBSD's
/// fsx; `scripts/test.sh` installs it into `target/test-tools`): random reads, writes,
/// mmap reads and writes, truncates, fsync, fdatasync, fallocate, punched holes,
/// zeroed ranges... on one file of up to 4 MiB, with sendfile, copy_file_range and
/// close/reopen between them; every read is checked against its model of the contents.
fn fsx_random_file_operations_pass(m: TestMount) {
    let fsx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools/bin/fsx");
    let fsx = if fsx.exists() { fsx } else { PathBuf::from("fsx") };
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("fsx.toml");
    fs::write(
        &config,
        "flen = 4194304\n[opsize]\nmax = 262144\n[weights]\nclose_open = 2\nread = 10\nwrite = 10\n\
         mapread = 5\nmapwrite = 5\ninvalidate = 1\ntruncate = 3\nfsync = 1\nfdatasync = 1\n\
         posix_fallocate = 2\npunch_hole = 2\nsendfile = 2\nposix_fadvise = 1\ncopy_file_range = 2\n",
    )
    .unwrap();
    let seed: u32 = rand::random();
    let out = Command::new(&fsx)
        .current_dir(m.local())
        .args(["-N", "20000", "-S", &seed.to_string(), "-f"])
        .arg(&config)
        .arg("-P")
        .arg(work.path())
        .arg("fsx.bin")
        .output()
        .expect("run fsx (scripts/test.sh installs it: cargo install --root target/test-tools fsx)");
    assert!(
        out.status.success(),
        "fsx -S {seed}: {}\n{}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        m.log()
    );
}

oxidrive_tests::on_both_stores!(fsx_random_file_operations_pass);

/// CPython's own tests of files and folders (os, shutil, tempfile, io, mmap, glob,
/// pathlib, posix, zipfile, tarfile, filecmp, fileinput, sqlite3: over 3000 tests nobody
/// here wrote), with their temp and working folders in the mount. Left out, as
/// SEMANTICS.md says they are refused: names that are not UTF-8, hard links, FIFOs. No
/// request may reach fuser's unimplemented defaults (each logs a warning).
#[test]
fn cpython_file_tests_pass() {
    let m = TestMount::start();
    let dir = m.local().join("py");
    fs::create_dir(&dir).unwrap();
    let refused = ["*Pep383Tests*", "*test_hardlink_to", "*undecodable*", "*TestExtractionFilters.test_pipe"];
    let modules = [
        "test_os",
        "test_shutil",
        "test_tempfile",
        "test_fileio",
        "test_io",
        "test_mmap",
        "test_glob",
        "test_pathlib",
        "test_posix",
        "test_zipfile",
        "test_tarfile",
        "test_filecmp",
        "test_fileinput",
        "test_sqlite3",
    ];
    let mut cmd = Command::new("python3");
    cmd.current_dir(&dir).env("TMPDIR", &dir).args(["-m", "test", "--tempdir"]).arg(dir.join("run"));
    for pattern in refused {
        cmd.args(["-i", pattern]);
    }
    let out = output_within(cmd.args(modules), Duration::from_secs(900));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = stdout.lines().rev().take(150).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        out.status.success() && stdout.contains("Result: SUCCESS"),
        "python3 -m test: {}\n{tail}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        m.log()
    );
    let ran: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Total tests: run="))
        .and_then(|r| r.split_whitespace().next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no test count in:\n{tail}"));
    assert!(ran > 3000, "only {ran} tests ran:\n{tail}");
    assert!(!m.log().contains("Not Implemented"), "{}", m.log());
}
