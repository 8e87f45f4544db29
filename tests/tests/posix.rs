//! POSIX behaviour of the mount, checked with plain syscalls on a real mount:
//! contents byte for byte, listings, the backing folder and exact errnos.
//! Functions taking a `TestMount` run twice (see `on_both_stores!` at the bottom):
//! on a plain store, where the backing folder is checked too, and on the default one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oxidrive_tests::{TestMount, assert_errno, names, pattern, renameat2, run, wait_until};

fn editor_save_via_temp_file_and_rename(m: TestMount) {
    let doc = m.local().join("doc.txt");
    let tmp = m.local().join(".doc.txt.swp");
    fs::write(&doc, b"version one\n").unwrap();
    let old_ino = fs::metadata(&doc).unwrap().ino();
    // Someone (a viewer) still has the old version open.
    let old_fd = File::open(&doc).unwrap();

    let mut t = File::create(&tmp).unwrap();
    t.write_all(b"version two, longer than the first\n").unwrap();
    t.sync_all().unwrap();
    let new_ino = t.metadata().unwrap().ino();
    drop(t);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o640)).unwrap();
    fs::rename(&tmp, &doc).unwrap();
    File::open(m.local()).unwrap().sync_all().unwrap(); // editors fsync the directory too

    assert_eq!(fs::read(&doc).unwrap(), b"version two, longer than the first\n");
    let meta = fs::metadata(&doc).unwrap();
    assert_eq!(meta.ino(), new_ino, "the name now points at the renamed file's inode");
    assert_ne!(meta.ino(), old_ino);
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(names(&m.local()), ["doc.txt"]);
    // The replaced inode keeps its old contents for whoever had it open.
    let mut old = Vec::new();
    (&old_fd).read_to_end(&mut old).unwrap();
    assert_eq!(old, b"version one\n");
    drop(old_fd);
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("doc.txt")).unwrap(), b"version two, longer than the first\n");
        assert!(!b.join(".doc.txt.swp").exists());
    }

    // vim-style: move the original to a backup, write a new file, drop the backup.
    fs::rename(&doc, m.local().join("doc.txt~")).unwrap();
    fs::write(&doc, b"version three\n").unwrap();
    fs::remove_file(m.local().join("doc.txt~")).unwrap();
    assert_eq!(fs::read(&doc).unwrap(), b"version three\n");
    assert_eq!(names(&m.local()), ["doc.txt"]);
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("doc.txt")).unwrap(), b"version three\n");
    }
}

fn append_and_truncate_byte_for_byte(m: TestMount) {
    let f = m.local().join("log.txt");
    {
        let mut a = OpenOptions::new().create(true).append(true).open(&f).unwrap();
        a.write_all(b"one\n").unwrap();
        a.write_all(b"two\n").unwrap();
    }
    assert_eq!(fs::read(&f).unwrap(), b"one\ntwo\n");
    // Two appending descriptors interleave; every write lands at the current end.
    {
        let mut a = OpenOptions::new().append(true).open(&f).unwrap();
        let mut b = OpenOptions::new().append(true).open(&f).unwrap();
        a.write_all(b"A").unwrap();
        b.write_all(b"BB").unwrap();
        a.write_all(b"CCC").unwrap();
    }
    assert_eq!(fs::read(&f).unwrap(), b"one\ntwo\nABBCCC");
    run(&m.local(), "sh", &["-c", "echo three >> log.txt && printf four >> log.txt"]);
    let want = b"one\ntwo\nABBCCCthree\nfour".to_vec();
    assert_eq!(fs::read(&f).unwrap(), want);
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("log.txt")).unwrap(), want);
    }

    run(&m.local(), "truncate", &["-s", "5", "log.txt"]);
    assert_eq!(fs::read(&f).unwrap(), b"one\nt");
    assert_eq!(fs::metadata(&f).unwrap().len(), 5);
    run(&m.local(), "truncate", &["-s", "20", "log.txt"]);
    let mut want = b"one\nt".to_vec();
    want.resize(20, 0);
    assert_eq!(fs::read(&f).unwrap(), want);
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("log.txt")).unwrap(), want);
    }
    run(&m.local(), "truncate", &["-s", "0", "log.txt"]);
    assert_eq!(fs::read(&f).unwrap(), b"");
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("log.txt")).unwrap(), b"");
    }

    // ftruncate through an open descriptor, mixed with writes past the end.
    let data = pattern(100_000, 7);
    let file = OpenOptions::new().read(true).write(true).open(&f).unwrap();
    file.write_all_at(&data, 0).unwrap();
    file.set_len(70_000).unwrap();
    file.write_all_at(b"tail", 90_000).unwrap();
    file.set_len(95_000).unwrap();
    drop(file);
    let mut want = data[..70_000].to_vec();
    want.resize(90_000, 0);
    want.extend_from_slice(b"tail");
    want.resize(95_000, 0);
    assert_eq!(fs::read(&f).unwrap(), want);
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("log.txt")).unwrap(), want);
    }
}

#[test]
fn plain_store_holds_exactly_what_was_written() {
    let m = TestMount::plain();
    let l = m.local();
    fs::create_dir_all(l.join("a/b")).unwrap();
    fs::write(l.join("a/b/c.bin"), pattern(300_000, 5)).unwrap();
    fs::write(l.join("empty"), b"").unwrap();
    assert_eq!(fs::read(m.synced_backing().join("a/b/c.bin")).unwrap(), pattern(300_000, 5));
    assert_eq!(fs::metadata(m.backing().join("empty")).unwrap().len(), 0);
    // Files put into the backing folder by someone else show up in the mount: at once
    // in an older folder, within 1 s in one the mount just made (SEMANTICS.md: a name
    // missing from a folder made less than 1 s ago is answered "absent").
    fs::write(m.backing().join("a/from-outside"), b"outside").unwrap();
    assert!(wait_until(Duration::from_secs(3), || l.join("a/from-outside").exists()), "never showed");
    assert_eq!(fs::read(l.join("a/from-outside")).unwrap(), b"outside");
    assert_eq!(names(&l.join("a")), ["b", "from-outside"]);
}

fn rename_over_existing_file_replaces_it(m: TestMount) {
    let (a, b) = (m.local().join("a"), m.local().join("b"));
    fs::write(&a, b"from a").unwrap();
    fs::write(&b, b"old b, longer").unwrap();
    fs::rename(&a, &b).unwrap();
    assert_eq!(names(&m.local()), ["b"]);
    assert_eq!(fs::read(&b).unwrap(), b"from a");
    if let Some(b) = m.plain_backing() {
        assert_eq!(names(&b).iter().filter(|n| *n != ".oxidrive").collect::<Vec<_>>(), ["b"]);
        assert_eq!(fs::read(b.join("b")).unwrap(), b"from a");
    }
    // Renaming a name onto itself changes nothing.
    fs::rename(&b, &b).unwrap();
    assert_eq!(fs::read(&b).unwrap(), b"from a");
    // A missing source is ENOENT.
    assert_errno("rename missing", fs::rename(m.local().join("nope"), &a), libc::ENOENT);
}

fn renameat2_noreplace_and_exchange(m: TestMount) {
    let (a, b) = (m.local().join("a"), m.local().join("b"));
    fs::write(&a, b"AAA").unwrap();
    fs::write(&b, b"BBBB").unwrap();
    assert_errno("RENAME_NOREPLACE onto existing", renameat2(&a, &b, libc::RENAME_NOREPLACE), libc::EEXIST);
    // RENAME_EXCHANGE is not supported (yet): EINVAL, and nothing changes.
    assert_errno("RENAME_EXCHANGE", renameat2(&a, &b, libc::RENAME_EXCHANGE), libc::EINVAL);
    assert_eq!(fs::read(&a).unwrap(), b"AAA");
    assert_eq!(fs::read(&b).unwrap(), b"BBBB");
    // NOREPLACE to a free name works like rename.
    let c = m.local().join("c");
    renameat2(&a, &c, libc::RENAME_NOREPLACE).unwrap();
    assert_eq!(names(&m.local()), ["b", "c"]);
    assert_eq!(fs::read(&c).unwrap(), b"AAA");
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("c")).unwrap(), b"AAA");
        assert!(!b.join("a").exists());
    }
}

#[test]
fn rename_keeps_a_files_mode_mtime_and_xattrs() {
    let m = TestMount::start();
    let l = m.local();
    fs::create_dir(l.join("d")).unwrap();
    fs::write(l.join("a"), b"contents").unwrap();
    fs::set_permissions(l.join("a"), fs::Permissions::from_mode(0o600)).unwrap();
    filetime::set_file_mtime(l.join("a"), filetime::FileTime::from_unix_time(978_307_200, 0)).unwrap();
    xattr_set(&l.join("a"), "user.k", b"v", 0).unwrap();
    fs::rename(l.join("a"), l.join("b")).unwrap();
    fs::rename(l.join("b"), l.join("d/c")).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // past the kernel's attribute cache
    let s = fs::metadata(l.join("d/c")).unwrap();
    assert_eq!(fs::read(l.join("d/c")).unwrap(), b"contents");
    assert_eq!(s.mode() & 0o7777, 0o600, "mode");
    assert_eq!(xattr_get(&l.join("d/c"), "user.k").unwrap(), b"v");
    assert_eq!(s.mtime(), 978_307_200, "mtime");
}

fn rename_directory_rules(m: TestMount) {
    let l = m.local();
    fs::create_dir_all(l.join("src/inner")).unwrap();
    fs::write(l.join("src/inner/f"), b"f").unwrap();
    fs::create_dir(l.join("empty")).unwrap();
    fs::create_dir(l.join("full")).unwrap();
    fs::write(l.join("full/x"), b"x").unwrap();
    fs::write(l.join("file"), b"file").unwrap();

    assert_errno("dir over non-empty dir", fs::rename(l.join("src"), l.join("full")), libc::ENOTEMPTY);
    assert_errno("file over dir", fs::rename(l.join("file"), l.join("empty")), libc::EISDIR);
    assert_errno("dir over file", fs::rename(l.join("src"), l.join("file")), libc::ENOTDIR);
    assert_errno("dir into its own subdir", fs::rename(l.join("src"), l.join("src/inner/src")), libc::EINVAL);
    assert_errno("dir into itself", fs::rename(l.join("src"), l.join("src/x")), libc::EINVAL);
    assert_errno("into a missing dir", fs::rename(l.join("file"), l.join("missing/file")), libc::ENOENT);
    assert_errno("under a file", fs::rename(l.join("file"), l.join("file/sub")), libc::ENOTDIR);
    // Nothing moved so far.
    assert_eq!(names(&l), ["empty", "file", "full", "src"]);
    assert_eq!(fs::read(l.join("src/inner/f")).unwrap(), b"f");
    assert_eq!(fs::read(l.join("full/x")).unwrap(), b"x");

    // A directory over an empty one replaces it.
    fs::rename(l.join("src"), l.join("empty")).unwrap();
    assert_eq!(names(&l), ["empty", "file", "full"]);
    assert_eq!(fs::read(l.join("empty/inner/f")).unwrap(), b"f");
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("empty/inner/f")).unwrap(), b"f");
        assert!(!b.join("src").exists());
    }
}

fn rename_directory_moves_contents_and_open_files_follow(m: TestMount) {
    let l = m.local();
    fs::create_dir_all(l.join("d/sub/subsub")).unwrap();
    fs::write(l.join("d/x"), b"x content").unwrap();
    fs::write(l.join("d/sub/y"), b"y content").unwrap();
    fs::write(l.join("d/sub/subsub/z"), pattern(200_000, 3)).unwrap();
    let open = OpenOptions::new().read(true).write(true).open(l.join("d/sub/y")).unwrap();
    fs::create_dir(l.join("dest")).unwrap();

    fs::rename(l.join("d"), l.join("dest/e")).unwrap();
    assert_eq!(names(&l), ["dest"]);
    assert_eq!(names(&l.join("dest/e")), ["sub", "x"]);
    assert_eq!(fs::read(l.join("dest/e/x")).unwrap(), b"x content");
    assert_eq!(fs::read(l.join("dest/e/sub/subsub/z")).unwrap(), pattern(200_000, 3));
    // A descriptor opened before the move writes to the file at its new place.
    open.write_all_at(b"Y", 0).unwrap();
    drop(open);
    assert_eq!(fs::read(l.join("dest/e/sub/y")).unwrap(), b"Y content");

    if let Some(b) = m.plain_backing() {
        assert!(!b.join("d").exists());
        assert_eq!(fs::read(b.join("dest/e/x")).unwrap(), b"x content");
        assert_eq!(fs::read(b.join("dest/e/sub/y")).unwrap(), b"Y content");
        assert_eq!(fs::read(b.join("dest/e/sub/subsub/z")).unwrap(), pattern(200_000, 3));
    }
    // And back again, one level up.
    fs::rename(l.join("dest/e"), l.join("e")).unwrap();
    assert_eq!(names(&l), ["dest", "e"]);
    assert_eq!(fs::read(l.join("e/sub/y")).unwrap(), b"Y content");
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("e/sub/y")).unwrap(), b"Y content");
    }
}

#[test]
fn rename_across_providers_is_exdev() {
    let plain = if oxidrive_tests::build_encrypts() { "encrypt = false\n" } else { "" };
    let m = TestMount::with_config_in(|dir| {
        let (a, b) = (dir.join("store-a"), dir.join("store-b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        format!(
            "[[provider]]\nname=\"A\"\ntype=\"local\"\npath=\"{}\"\n{plain}\n[[provider]]\nname=\"B\"\ntype=\"local\"\npath=\"{}\"\n{plain}",
            a.display(),
            b.display()
        )
    });
    let (a, b) = (m.mnt.join("My Drive/A"), m.mnt.join("My Drive/B"));
    assert_eq!(names(&m.mnt.join("My Drive")), ["A", "B"]);
    fs::write(a.join("f"), b"in A").unwrap();
    fs::create_dir(a.join("d")).unwrap();
    assert_errno("file across providers", fs::rename(a.join("f"), b.join("f")), libc::EXDEV);
    assert_errno("dir across providers", fs::rename(a.join("d"), b.join("d")), libc::EXDEV);
    assert_eq!(names(&a), ["d", "f"]);
    assert_eq!(names(&b), Vec::<String>::new());
    // mv falls back to copy + delete on EXDEV.
    run(&m.mnt, "mv", &["My Drive/A/f", "My Drive/B/g"]);
    assert_eq!(fs::read(b.join("g")).unwrap(), b"in A");
    m.sync();
    assert_eq!(fs::read(m.dir.path().join("store-b/g")).unwrap(), b"in A");
    assert!(!m.dir.path().join("store-a/f").exists());
}

fn unlink_while_open_keeps_the_file_for_its_descriptor(m: TestMount) {
    let f = m.local().join("victim");
    fs::write(&f, b"old content").unwrap();
    let mut fd = OpenOptions::new().read(true).write(true).open(&f).unwrap();
    fs::remove_file(&f).unwrap();

    assert_eq!(names(&m.local()), Vec::<String>::new());
    if let Some(b) = m.plain_backing() {
        assert!(!b.join("victim").exists());
    }
    assert_errno("stat after unlink", fs::metadata(&f), libc::ENOENT);
    let mut got = Vec::new();
    fd.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"old content");
    fd.write_all(b" and more").unwrap();
    fd.seek(SeekFrom::Start(0)).unwrap();
    got.clear();
    fd.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"old content and more");
    let meta = fd.metadata().unwrap();
    assert_eq!(meta.len(), 20);
    assert_eq!(meta.nlink(), 0);
    fd.sync_all().unwrap();

    // A new file under the same name is a different file.
    fs::write(&f, b"new").unwrap();
    fd.write_all_at(b"OLD", 0).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"new");
    drop(fd);
    assert_eq!(fs::read(&f).unwrap(), b"new");
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join("victim")).unwrap(), b"new");
    }
    fs::remove_file(&f).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(names(&m.local()), Vec::<String>::new());
    if let Some(b) = m.plain_backing() {
        assert!(!b.join("victim").exists());
    }
}

fn errors_for_directories_links_and_fixed_folders(m: TestMount) {
    let l = m.local();
    fs::create_dir(l.join("d")).unwrap();
    fs::write(l.join("d/f"), b"f").unwrap();
    assert_errno("rmdir non-empty", fs::remove_dir(l.join("d")), libc::ENOTEMPTY);
    assert_errno("unlink a dir", fs::remove_file(l.join("d")), libc::EISDIR);
    assert_errno("mkdir existing dir", fs::create_dir(l.join("d")), libc::EEXIST);
    assert_errno("mkdir over a file", fs::create_dir(l.join("d/f")), libc::EEXIST);
    assert_errno("rmdir a file", fs::remove_dir(l.join("d/f")), libc::ENOTDIR);
    assert_errno("rmdir missing", fs::remove_dir(l.join("nope")), libc::ENOENT);
    assert_errno("unlink missing", fs::remove_file(l.join("nope")), libc::ENOENT);
    assert_errno("open missing", File::open(l.join("nope")), libc::ENOENT);
    assert_errno("create under a file", File::create(l.join("d/f/g")), libc::ENOTDIR);
    assert_errno(
        "O_EXCL on existing",
        OpenOptions::new().write(true).create_new(true).open(l.join("d/f")),
        libc::EEXIST,
    );
    // Hard links cannot exist on object stores: refused everywhere (documented choice).
    assert_errno("hard link", fs::hard_link(l.join("d/f"), l.join("d/g")), libc::EPERM);
    assert!(!l.join("d/g").exists());
    // Devices, FIFOs and sockets cannot be stored.
    let fifo = nix::sys::stat::Mode::from_bits_truncate(0o644);
    let r = nix::unistd::mkfifo(&l.join("fifo"), fifo).map_err(|e| std::io::Error::from_raw_os_error(e as i32));
    assert_errno("mkfifo", r, libc::EPERM);
    assert!(!l.join("fifo").exists());
    // The fixed top folders.
    assert_errno("create in MNT", File::create(m.mnt.join("x")), libc::EPERM);
    assert_errno("mkdir in MNT", fs::create_dir(m.mnt.join("x")), libc::EPERM);
    assert_errno("create in My Drive", File::create(m.mnt.join("My Drive/x")), libc::EPERM);
    assert_errno("mkdir in My Drive", fs::create_dir(m.mnt.join("My Drive/x")), libc::EPERM);
    assert_errno("create in Recents", File::create(m.mnt.join("Recents/x")), libc::EROFS);
    assert_errno("rmdir My Drive/Local", fs::remove_dir(m.local()), libc::EPERM);
    assert_eq!(names(&m.mnt), ["My Drive", "Recents", "Shared", "Trash"]);
    // Our meta folder is neither visible nor creatable.
    if let Some(b) = m.plain_backing() {
        assert!(b.join(".oxidrive").is_dir());
    }
    assert_eq!(names(&l), ["d"]);
    assert_errno("stat .oxidrive", fs::metadata(l.join(".oxidrive")), libc::ENOENT);
    assert_errno("mkdir .oxidrive", fs::create_dir(l.join(".oxidrive")), libc::EPERM);
    // rmdir of an empty dir works and is gone from the backing folder.
    fs::remove_file(l.join("d/f")).unwrap();
    fs::remove_dir(l.join("d")).unwrap();
    if let Some(b) = m.plain_backing() {
        assert!(!b.join("d").exists());
    }
}

fn nfc_and_nfd_names_are_distinct_files(m: TestMount) {
    let l = m.local();
    let nfc = "caf\u{e9}";
    let nfd = "cafe\u{301}";
    fs::write(l.join(nfc), b"composed").unwrap();
    fs::write(l.join(nfd), b"decomposed").unwrap();
    let listed: Vec<Vec<u8>> = {
        let mut v: Vec<_> = fs::read_dir(&l).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
        v.sort();
        v
    };
    let mut want = vec![nfc.as_bytes().to_vec(), nfd.as_bytes().to_vec()];
    want.sort();
    assert_eq!(listed, want, "names are bytes: NFC and NFD are two files");
    assert_eq!(fs::read(l.join(nfc)).unwrap(), b"composed");
    assert_eq!(fs::read(l.join(nfd)).unwrap(), b"decomposed");
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join(nfc)).unwrap(), b"composed");
        assert_eq!(fs::read(b.join(nfd)).unwrap(), b"decomposed");
    }
    fs::rename(l.join(nfd), l.join("plain")).unwrap();
    assert_eq!(fs::read(l.join(nfc)).unwrap(), b"composed");
    assert_eq!(fs::read(l.join("plain")).unwrap(), b"decomposed");
    // Providers hold UTF-8 names only; other bytes are refused, not mangled.
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff");
    assert_errno("non-UTF-8 name", File::create(l.join(bad)), libc::EILSEQ);
}

#[test]
fn names_longer_than_255_bytes_are_enametoolong() {
    let m = TestMount::start();
    let l = m.local();
    fs::write(l.join("short"), b"s").unwrap();
    let too_long = "b".repeat(256);
    assert_errno("256-byte name", File::create(l.join(&too_long)), libc::ENAMETOOLONG);
    assert_errno("256-byte mkdir", fs::create_dir(l.join(&too_long)), libc::ENAMETOOLONG);
    assert_errno("256-byte rename", fs::rename(l.join("short"), l.join(&too_long)), libc::ENAMETOOLONG);
    assert_errno("256-byte stat", fs::metadata(l.join(&too_long)), libc::ENAMETOOLONG);
    assert_eq!(names(&l), ["short"]);
}

fn names_of_255_bytes_work(m: TestMount) {
    let l = m.local();
    let long = "a".repeat(255);
    fs::write(l.join(&long), b"255").unwrap();
    assert_eq!(fs::read(l.join(&long)).unwrap(), b"255");
    let long_multibyte = format!("{}x", "\u{e9}".repeat(127)); // 255 bytes
    fs::create_dir(l.join(&long_multibyte)).unwrap();
    fs::write(l.join(&long_multibyte).join(&long), b"both").unwrap();
    assert_eq!(fs::read(l.join(&long_multibyte).join(&long)).unwrap(), b"both");
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join(&long_multibyte).join(&long)).unwrap(), b"both");
    }
    fs::rename(l.join(&long), l.join(&long_multibyte).join("b".repeat(255))).unwrap();
    assert_eq!(fs::read(l.join(&long_multibyte).join("b".repeat(255))).unwrap(), b"255");
    std::os::unix::fs::symlink("target", l.join("s".repeat(255))).unwrap();
    assert_eq!(fs::read_link(l.join("s".repeat(255))).unwrap(), Path::new("target"));
}

fn deep_tree(m: TestMount, levels: usize) {
    let l = m.local();
    let mut deep = l.clone();
    for i in 0..levels {
        deep.push(format!("level{i:02}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom.txt"), b"deep down").unwrap();
    assert_eq!(fs::read(deep.join("bottom.txt")).unwrap(), b"deep down");
    let rel = deep.strip_prefix(&l).unwrap();
    if let Some(b) = m.plain_backing() {
        assert_eq!(fs::read(b.join(rel).join("bottom.txt")).unwrap(), b"deep down");
    }
    let found = run(&l, "find", &["level00", "-name", "bottom.txt"]);
    assert_eq!(found.trim(), rel.join("bottom.txt").to_str().unwrap());
    let dirs = run(&l, "find", &["level00", "-type", "d"]);
    assert_eq!(dirs.lines().count(), levels);
    fs::remove_dir_all(l.join("level00")).unwrap();
    if let Some(b) = m.plain_backing() {
        assert!(!b.join("level00").exists());
    }
    assert_eq!(names(&l), Vec::<String>::new());
}

#[test]
fn modes_times_symlinks_persist_across_remount() {
    let mut m = TestMount::start();
    let l = m.local();
    fs::write(l.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::create_dir(l.join("private")).unwrap();
    fs::set_permissions(l.join("script.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(l.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    run(&l, "touch", &["-m", "-d", "2001-02-03 04:05:06 UTC", "script.sh"]);
    run(&l, "touch", &["-m", "-d", "1999-12-31 23:59:59 UTC", "private"]);
    let t = filetime::FileTime::from_unix_time(1_234_567_890, 123_456_789);
    filetime::set_file_mtime(l.join("script.sh"), t).unwrap();
    std::os::unix::fs::symlink("script.sh", l.join("link")).unwrap();
    std::os::unix::fs::symlink("../nowhere/at all", l.join("dangling")).unwrap();

    let check = |l: &Path, when: &str| {
        let s = fs::metadata(l.join("script.sh")).unwrap();
        assert_eq!(s.mode() & 0o7777, 0o751, "{when}: file mode");
        assert_eq!((s.mtime(), s.mtime_nsec()), (1_234_567_890, 123_456_789), "{when}: file mtime");
        let d = fs::metadata(l.join("private")).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o700, "{when}: dir mode");
        assert_eq!(d.mtime(), 946_684_799, "{when}: dir mtime");
        assert_eq!(fs::read_link(l.join("link")).unwrap(), Path::new("script.sh"), "{when}: readlink");
        assert_eq!(fs::read_link(l.join("dangling")).unwrap(), Path::new("../nowhere/at all"), "{when}");
        assert!(fs::symlink_metadata(l.join("link")).unwrap().file_type().is_symlink(), "{when}");
        assert_eq!(fs::read(l.join("link")).unwrap(), b"#!/bin/sh\necho hi\n", "{when}: through the link");
        assert_errno("follow dangling", fs::read(l.join("dangling")), libc::ENOENT);
        assert_eq!(run(l, "./script.sh", &[]), "hi\n", "{when}: executable");
    };
    check(&l, "before remount");
    m.remount();
    check(&m.local(), "after remount");
}

#[test]
fn chown_clears_set_id_bits_like_linux() {
    let m = TestMount::start();
    let l = m.local();
    let tool = l.join("tool");
    fs::write(&tool, b"#!/bin/sh\n").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    let dir = l.join("shared");
    fs::create_dir(&dir).unwrap();
    // Even root's chown clears set-user-ID, and set-group-ID with group execute...
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o6755)).unwrap();
    std::os::unix::fs::chown(&tool, Some(1000), Some(1000)).unwrap();
    assert_eq!(mode(&tool), 0o755);
    // ...not set-group-ID without it, and nothing on a folder.
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o2745)).unwrap();
    std::os::unix::fs::chown(&tool, Some(0), None).unwrap();
    assert_eq!(mode(&tool), 0o2745);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2775)).unwrap();
    std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).unwrap();
    assert_eq!(mode(&dir), 0o2775);
    let s = fs::metadata(&tool).unwrap();
    assert_eq!((s.uid(), s.gid()), (0, 1000));
}

/// Writes and truncates by a caller without `CAP_FSETID` (root with it dropped, through
/// `setpriv`) clear set-ID bits exactly as on a native folder; with it they stay. The
/// mount clears them itself (`FUSE_HANDLE_KILLPRIV_V2`), so this is ours to get right.
#[test]
fn writes_and_truncates_clear_set_id_bits_like_linux() {
    let mut m = TestMount::start();
    let native = tempfile::tempdir().unwrap();
    let cases: [(u32, &str, bool); 7] = [
        (0o6755, "printf x >> \"$1\"", false),
        (0o6755, "truncate -s 2 \"$1\"", false),
        (0o6755, ": > \"$1\"", false),
        (0o2745, "printf x >> \"$1\"", false),
        (0o4644, "printf x >> \"$1\"", false),
        (0o6755, "printf x >> \"$1\"", true),
        (0o6755, "truncate -s 2 \"$1\"", true),
    ];
    let outcome = |dir: &Path| -> Vec<(u32, Vec<u8>)> {
        cases
            .iter()
            .enumerate()
            .map(|(i, (mode, script, privileged))| {
                let f = dir.join(format!("tool{i}"));
                fs::write(&f, b"#!/bin/sh\n").unwrap();
                fs::set_permissions(&f, fs::Permissions::from_mode(*mode)).unwrap();
                let file = f.to_str().unwrap();
                let sh = ["sh", "-c", script, "sh", file];
                if *privileged {
                    run(dir, "sh", &sh[1..]);
                } else {
                    run(dir, "setpriv", &[&["--bounding-set=-fsetid", "--inh-caps=-fsetid"][..], &sh].concat());
                }
                (fs::metadata(&f).unwrap().mode() & 0o7777, fs::read(&f).unwrap())
            })
            .collect()
    };
    let want = outcome(native.path());
    let modes: Vec<u32> = want.iter().map(|(mode, _)| *mode).collect();
    assert_eq!(modes, [0o755, 0o755, 0o755, 0o2745, 0o644, 0o6755, 0o6755], "this kernel's own rules changed");
    assert_eq!(outcome(&m.local()), want);
    m.sync();
    m.remount();
    let modes_after: Vec<u32> =
        (0..cases.len()).map(|i| fs::metadata(m.local().join(format!("tool{i}"))).unwrap().mode() & 0o7777).collect();
    assert_eq!(modes_after, modes, "after a remount");
}

/// Syncs of the index's write-ahead log by the daemon while `during` runs, traced
/// with strace (attached before, detached after, so the log is complete).
fn index_log_syncs(m: &TestMount, during: impl FnOnce()) -> usize {
    use std::io::BufRead;
    let log = m.dir.path().join("strace.log");
    let mut strace = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .args(["-p", &m.pid().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace (apt-get install strace)");
    let mut attached = String::new();
    std::io::BufReader::new(strace.stderr.take().unwrap()).read_line(&mut attached).unwrap();
    assert!(attached.contains("attached"), "strace: {attached}");
    during();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(strace.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    strace.wait().unwrap();
    fs::read_to_string(&log).unwrap().lines().filter(|l| l.contains("-wal>")).count()
}

/// A removal is recorded unsynced (like a local file system's metadata); `fsync` of the
/// folder makes it survive a power cut: it syncs the index's log (sqlite in DELETE
/// journal mode relies on this for its journal's removal).
#[test]
fn fsync_of_a_folder_syncs_what_was_removed() {
    let m = TestMount::start();
    let dir = m.local().join("d");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a"), b"a").unwrap();
    fs::write(dir.join("b"), b"b").unwrap();
    m.sync();
    let alone = index_log_syncs(&m, || {
        fs::remove_file(dir.join("a")).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    assert_eq!(alone, 0, "a removal alone synced the index");
    let with_fsync = index_log_syncs(&m, || {
        fs::remove_file(dir.join("b")).unwrap();
        File::open(&dir).unwrap().sync_all().unwrap();
    });
    assert!(with_fsync >= 1, "fsync of the folder did not sync the index");
    // The top folders are the mount's own: nothing to sync, and no error.
    File::open(m.mnt.join("My Drive")).unwrap().sync_all().unwrap();
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn mtime_set_on_an_open_written_file_survives_its_upload() {
    let m = TestMount::start();
    let l = m.local();
    // What cp -p does: write, set the times on the open descriptor, close.
    let f = File::create(l.join("copied")).unwrap();
    (&f).write_all(&pattern(100_000, 4)).unwrap();
    let t = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_handle_times(&f, Some(t), Some(t)).unwrap();
    drop(f);
    let s = fs::metadata(l.join("copied")).unwrap();
    assert_eq!((s.mtime(), s.len()), (1_000_000_000, 100_000));
    let src = l.join("copied");
    run(&l, "cp", &["-p", src.to_str().unwrap(), "copy2"]);
    assert_eq!(fs::metadata(l.join("copy2")).unwrap().mtime(), 1_000_000_000);
    assert_eq!(fs::read(l.join("copy2")).unwrap(), pattern(100_000, 4));
}

#[test]
fn times_set_by_utimens_hold_on_every_file_and_across_remounts() {
    let mut m = TestMount::plain();
    let l = m.local();
    let b = m.plain_backing().unwrap();
    // A file another device put there (never uploaded from here), and one written here.
    fs::write(b.join("theirs"), b"from elsewhere").unwrap();
    fs::write(l.join("ours"), b"written here").unwrap();
    m.sync();
    assert_eq!(names(&l), ["ours", "theirs"]);
    let atime = filetime::FileTime::from_unix_time(1_100_000_000, 123_456_789);
    let mtime = filetime::FileTime::from_unix_time(1_000_000_000, 987_654_321);
    for n in ["theirs", "ours"] {
        filetime::set_file_times(l.join(n), atime, mtime).unwrap();
    }
    let times = |n: &str| {
        let s = fs::metadata(l.join(n)).unwrap();
        (s.atime(), s.atime_nsec(), s.mtime(), s.mtime_nsec())
    };
    let want = (1_100_000_000, 123_456_789, 1_000_000_000, 987_654_321);
    std::thread::sleep(Duration::from_millis(1100)); // past the kernel's attribute cache
    for n in ["theirs", "ours"] {
        assert_eq!(times(n), want, "{n} after utimens");
    }
    m.remount();
    for n in ["theirs", "ours"] {
        assert_eq!(times(n), want, "{n} after a remount");
    }
    assert_eq!(fs::read(l.join("theirs")).unwrap(), b"from elsewhere");
    // Another device's change of the file is newer than our times: its own show.
    fs::write(b.join("theirs"), b"changed elsewhere").unwrap();
    let at = fs::metadata(b.join("theirs")).unwrap().mtime();
    let fresh = wait_until(Duration::from_secs(10), || fs::metadata(l.join("theirs")).unwrap().mtime() == at);
    assert!(fresh, "the other device's mtime is shown");
    assert_eq!(fs::read(l.join("theirs")).unwrap(), b"changed elsewhere");
}

#[test]
fn ctime_follows_changes_of_contents_attributes_and_names() {
    let mut m = TestMount::start();
    let l = m.local();
    fs::write(l.join("f"), b"one").unwrap();
    let ctime = |n: &str| {
        let s = fs::metadata(l.join(n)).unwrap();
        (s.ctime(), s.ctime_nsec())
    };
    let mtime = |n: &str| fs::metadata(l.join(n)).unwrap().modified().unwrap();
    let written = mtime("f");
    let mut last = ctime("f");
    assert!(last >= (written.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64, 0));
    let steps: [(&str, &dyn Fn() -> &'static str); 5] = [
        ("chmod", &|| {
            fs::set_permissions(l.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
            "f"
        }),
        ("utimens", &|| {
            filetime::set_file_mtime(l.join("f"), filetime::FileTime::from_unix_time(1_000_000_000, 0)).unwrap();
            "f"
        }),
        ("rename", &|| {
            fs::rename(l.join("f"), l.join("g")).unwrap();
            "g"
        }),
        ("atime only", &|| {
            filetime::set_file_atime(l.join("g"), filetime::FileTime::from_unix_time(1_200_000_000, 0)).unwrap();
            "g"
        }),
        ("write", &|| {
            fs::write(l.join("g"), b"two").unwrap();
            "g"
        }),
    ];
    for (what, step) in steps {
        std::thread::sleep(Duration::from_millis(20));
        let name = step();
        // The kernel may keep the old attributes for up to 1 s (after a rename).
        let changed = wait_until(Duration::from_secs(3), || ctime(name) > last);
        assert!(changed, "{what} changes the ctime (still {last:?})");
        last = ctime(name);
        if what == "chmod" {
            assert_eq!(mtime("f"), written, "chmod leaves the mtime");
        }
        if what == "rename" {
            assert_eq!(fs::metadata(l.join("g")).unwrap().mtime(), 1_000_000_000, "rename leaves the mtime");
        }
    }
    // Past the kernel's attribute cache, which may hold the ctime of the truncate that
    // opening with O_TRUNC made, before the close committed.
    std::thread::sleep(Duration::from_millis(1100));
    let last = ctime("g");
    m.remount();
    assert_eq!(ctime("g"), last, "the ctime after a remount");
    assert_eq!(fs::read(l.join("g")).unwrap(), b"two");
}

#[test]
fn directory_mtime_changes_with_its_entries() {
    let m = TestMount::start();
    let l = m.local();
    fs::create_dir(l.join("d")).unwrap();
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    let mtime = || fs::metadata(l.join("d")).unwrap().mtime();
    for (what, change) in [
        ("create", &mut (|| fs::write(l.join("d/f"), b"x").unwrap()) as &mut dyn FnMut()),
        ("rename", &mut || fs::rename(l.join("d/f"), l.join("d/g")).unwrap()),
        ("unlink", &mut || fs::remove_file(l.join("d/g")).unwrap()),
        ("mkdir", &mut || fs::create_dir(l.join("d/sub")).unwrap()),
        ("rmdir", &mut || fs::remove_dir(l.join("d/sub")).unwrap()),
    ] {
        filetime::set_file_mtime(l.join("d"), old).unwrap();
        assert_eq!(mtime(), 1_000_000_000);
        change();
        // The kernel may keep the old attributes for up to 1 s.
        let changed = oxidrive_tests::wait_until(Duration::from_secs(3), || mtime() != 1_000_000_000);
        assert!(changed, "{what} in d/ changes d's mtime");
    }
}

#[test]
fn flock_is_exclusive_locally() {
    let m = TestMount::start();
    let f = m.local().join("lockfile");
    fs::write(&f, b"").unwrap();
    let a = File::open(&f).unwrap();
    let b = File::open(&f).unwrap();
    use std::os::fd::AsRawFd;
    assert_eq!(unsafe { libc::flock(a.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let rc = unsafe { libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!((rc, std::io::Error::last_os_error().raw_os_error()), (-1, Some(libc::EWOULDBLOCK)));
    drop(a);
    assert_eq!(unsafe { libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
}

fn xattr_get(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let (p, n) = (cstr(p.as_os_str().as_bytes()), cstr(name.as_bytes()));
    let mut buf = vec![0u8; 4096];
    let rc = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

fn xattr_set(p: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let (p, n) = (cstr(p.as_os_str().as_bytes()), cstr(name.as_bytes()));
    let rc = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

fn xattr_remove(p: &Path, name: &str) -> std::io::Result<()> {
    let (p, n) = (cstr(p.as_os_str().as_bytes()), cstr(name.as_bytes()));
    let rc = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

fn xattr_list(p: &Path) -> std::io::Result<Vec<String>> {
    let p = cstr(p.as_os_str().as_bytes());
    let mut buf = vec![0u8; 4096];
    let rc = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(rc as usize);
    let mut v: Vec<String> =
        buf.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
    v.sort();
    Ok(v)
}

fn cstr(b: &[u8]) -> std::ffi::CString {
    std::ffi::CString::new(b).unwrap()
}

#[test]
fn xattrs_round_trip_and_ours_are_read_only() {
    let mut m = TestMount::start();
    let f = m.local().join("tagged");
    fs::write(&f, b"x").unwrap();
    xattr_set(&f, "user.test", b"hello \0 world", 0).unwrap();
    assert_eq!(xattr_get(&f, "user.test").unwrap(), b"hello \0 world");
    assert!(xattr_list(&f).unwrap().contains(&"user.test".to_owned()));
    assert_errno("XATTR_CREATE on existing", xattr_set(&f, "user.test", b"v", libc::XATTR_CREATE), libc::EEXIST);
    assert_errno("XATTR_REPLACE on missing", xattr_set(&f, "user.other", b"v", libc::XATTR_REPLACE), libc::ENODATA);
    xattr_set(&f, "user.test", b"replaced", libc::XATTR_REPLACE).unwrap();
    assert_eq!(xattr_get(&f, "user.test").unwrap(), b"replaced");
    assert_eq!(xattr_get(&f, "user.oxidrive.provider").unwrap(), b"Local");
    assert_errno("set user.oxidrive.*", xattr_set(&f, "user.oxidrive.provider", b"X", 0), libc::EPERM);
    assert_errno("set user.oxidrive.new", xattr_set(&f, "user.oxidrive.new", b"X", 0), libc::EPERM);
    assert_errno("remove user.oxidrive.*", xattr_remove(&f, "user.oxidrive.provider"), libc::EPERM);
    assert_eq!(xattr_get(&f, "user.oxidrive.provider").unwrap(), b"Local");
    // Other namespaces are not kept.
    assert_errno("set trusted.*", xattr_set(&f, "trusted.test", b"v", 0), libc::EOPNOTSUPP);
    assert_errno("get trusted.*", xattr_get(&f, "trusted.test"), libc::ENODATA);
    // user.oxidrive.state: dirty while written and not yet uploaded; once uploaded the
    // local copy stays as cache ("cached") until freed ("cloud-only").
    m.sync();
    assert_eq!(xattr_get(&f, "user.oxidrive.state").unwrap(), b"cached");
    xattr_set(&f, "user.oxidrive.free", b"1", 0).unwrap();
    assert_eq!(xattr_get(&f, "user.oxidrive.state").unwrap(), b"cloud-only");
    let open = OpenOptions::new().write(true).open(&f).unwrap();
    open.write_all_at(b"changed", 0).unwrap();
    assert_eq!(xattr_get(&f, "user.oxidrive.state").unwrap(), b"dirty");
    open.sync_all().unwrap();
    let state = xattr_get(&f, "user.oxidrive.state").unwrap();
    assert!(state == b"dirty" || state == b"uploading", "committed, not yet uploaded: {state:?}");
    m.sync();
    let state = xattr_get(&f, "user.oxidrive.state").unwrap();
    // Still open for writing: its copy is the writer's, not the cache's.
    assert!(state == b"cloud-only" || state == b"cached", "uploaded: {state:?}");
    drop(open);

    m.remount();
    let f = m.local().join("tagged");
    assert_eq!(xattr_get(&f, "user.test").unwrap(), b"replaced", "user xattrs persist");
    let list = xattr_list(&f).unwrap();
    assert!(list.contains(&"user.test".to_owned()) && list.contains(&"user.oxidrive.provider".to_owned()), "{list:?}");
    xattr_remove(&f, "user.test").unwrap();
    assert_errno("get removed", xattr_get(&f, "user.test"), libc::ENODATA);
    assert!(!xattr_list(&f).unwrap().contains(&"user.test".to_owned()));
    assert_errno("remove missing", xattr_remove(&f, "user.test"), libc::ENODATA);
    // The xattrs go with the file when it is renamed.
    xattr_set(&f, "user.moved", b"yes", 0).unwrap();
    fs::rename(&f, m.local().join("renamed")).unwrap();
    assert_eq!(xattr_get(&m.local().join("renamed"), "user.moved").unwrap(), b"yes");
}

#[test]
fn statfs_reports_sizes() {
    let m = TestMount::start();
    let out = run(&m.mnt, "df", &["-k", "--output=size,avail,target", m.local().to_str().unwrap()]);
    let line = out.lines().nth(1).unwrap_or_else(|| panic!("df output: {out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    let size: u64 = cols[0].parse().unwrap();
    let avail: u64 = cols[1].parse().unwrap();
    assert!(size > 0 && avail > 0 && avail <= size, "df: {out}");
    let st = nix::sys::statvfs::statvfs(&m.local()).unwrap();
    assert!(st.blocks() > 0 && st.block_size() > 0 && st.fragment_size() > 0, "{st:?}");
    assert_eq!(st.name_max(), 255);
    // The top of the mount answers too.
    nix::sys::statvfs::statvfs(&m.mnt).unwrap();
}

#[test]
fn mount_top_is_listed_and_times_are_sane() {
    let m = TestMount::start();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    fs::write(m.local().join("f"), b"x").unwrap();
    let s = fs::metadata(m.local().join("f")).unwrap();
    assert!((s.mtime() - now).abs() < 60, "a new file's mtime is now: {} vs {now}", s.mtime());
    assert_eq!(s.uid(), nix::unistd::getuid().as_raw());
    let out = Command::new("ls").arg("-la").arg(&m.mnt).output().unwrap();
    assert!(out.status.success());
}

/// `fallocate`: without flags it grows a file (never shrinks it), `KEEP_SIZE` alone
/// changes nothing, a punched hole and a zeroed range read as zeros (crossing a 64 KiB
/// block, and past the end), and the file reaches the provider and a remount so;
/// collapsing a range: `EOPNOTSUPP`; a read-only descriptor: `EBADF`.
fn fallocate_grows_zeroes_and_punches_holes(mut m: TestMount) {
    use nix::errno::Errno;
    use nix::fcntl::{FallocateFlags as F, fallocate};
    let f = m.local().join("alloc.bin");
    let mut want = pattern(300_000, 3);
    fs::write(&f, &want).unwrap();
    let file = OpenOptions::new().read(true).write(true).open(&f).unwrap();
    fallocate(&file, F::empty(), 0, 100_000).unwrap();
    fallocate(&file, F::FALLOC_FL_KEEP_SIZE, 250_000, 200_000).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 300_000);
    fallocate(&file, F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_KEEP_SIZE, 1000, 70_000).unwrap();
    want[1000..71_000].fill(0);
    fallocate(&file, F::FALLOC_FL_ZERO_RANGE | F::FALLOC_FL_KEEP_SIZE, 290_000, 50_000).unwrap();
    want[290_000..].fill(0);
    assert_eq!(file.metadata().unwrap().len(), 300_000);
    fallocate(&file, F::FALLOC_FL_ZERO_RANGE, 200_000, 150_000).unwrap();
    want[200_000..].fill(0);
    want.resize(350_000, 0);
    fallocate(&file, F::empty(), 400_000, 10).unwrap();
    want.resize(400_010, 0);
    assert_eq!(file.metadata().unwrap().len(), 400_010);
    assert_eq!(fallocate(&file, F::FALLOC_FL_COLLAPSE_RANGE, 0, 4096), Err(Errno::EOPNOTSUPP));
    let mut got = vec![1; 400_010];
    file.read_exact_at(&mut got, 0).unwrap();
    assert!(got == want, "contents through the descriptor");
    drop(file);
    assert!(fs::read(&f).unwrap() == want, "contents after close");
    let read_only = File::open(&f).unwrap();
    assert_eq!(fallocate(&read_only, F::empty(), 0, 500_000), Err(Errno::EBADF));
    drop(read_only);
    if let Some(b) = m.plain_backing() {
        assert!(fs::read(b.join("alloc.bin")).unwrap() == want, "contents on the provider");
    }
    m.remount();
    assert!(fs::read(&f).unwrap() == want, "contents after a remount");
}

/// `copy_file_range` (what `cp` tries first): a file of 10 MiB and a bit read through
/// the cache (not open for writing anywhere), copied in as many calls as it takes; a
/// range into the middle of a file and one past its end (a hole before it); and `cp`.
fn copy_file_range_copies_byte_for_byte(mut m: TestMount) {
    use std::os::fd::AsRawFd;
    fn copy_file_range(
        src: &File,
        off_in: Option<&mut i64>,
        dst: &File,
        off_out: Option<&mut i64>,
        len: usize,
    ) -> std::io::Result<usize> {
        let (i, o) = (off_in.unwrap() as *mut i64, off_out.unwrap() as *mut i64);
        // SAFETY: both descriptors are open; the offsets are valid for the call.
        let n = unsafe { libc::copy_file_range(src.as_raw_fd(), i, dst.as_raw_fd(), o, len, 0) };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
    }
    let dir = m.local();
    let data = pattern(10 * 1024 * 1024 + 123, 5);
    fs::write(dir.join("src.bin"), &data).unwrap();
    m.remount();
    let src = File::open(dir.join("src.bin")).unwrap();
    let dst = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(dir.join("dst.bin")).unwrap();
    let (mut off_in, mut off_out, mut calls) = (0i64, 0i64, 0);
    loop {
        let n = copy_file_range(&src, Some(&mut off_in), &dst, Some(&mut off_out), 64 << 20).unwrap();
        if n == 0 {
            break;
        }
        calls += 1;
    }
    assert_eq!(off_out as usize, data.len(), "after {calls} calls");
    let mut want = data.clone();
    (off_in, off_out) = (5000, 300_000);
    assert_eq!(copy_file_range(&src, Some(&mut off_in), &dst, Some(&mut off_out), 100_000).unwrap(), 100_000);
    want.copy_within(5000..105_000, 300_000);
    let end = data.len() as i64 + 70_000;
    (off_in, off_out) = (0, end);
    assert_eq!(copy_file_range(&src, Some(&mut off_in), &dst, Some(&mut off_out), 1000).unwrap(), 1000);
    want.resize(end as usize, 0);
    want.extend_from_slice(&data[..1000]);
    assert_eq!(dst.metadata().unwrap().len(), want.len() as u64);
    drop((src, dst));
    assert!(fs::read(dir.join("dst.bin")).unwrap() == want, "copied bytes");
    run(&dir, "cp", &["src.bin", "cp.bin"]);
    assert!(fs::read(dir.join("cp.bin")).unwrap() == data, "cp");
    m.remount();
    assert!(fs::read(dir.join("dst.bin")).unwrap() == want, "copied bytes after a remount");
    if let Some(b) = m.plain_backing() {
        assert!(fs::read(b.join("cp.bin")).unwrap() == data, "cp on the provider");
    }
}

oxidrive_tests::on_both_stores!(
    editor_save_via_temp_file_and_rename,
    copy_file_range_copies_byte_for_byte,
    fallocate_grows_zeroes_and_punches_holes,
    append_and_truncate_byte_for_byte,
    rename_over_existing_file_replaces_it,
    renameat2_noreplace_and_exchange,
    rename_directory_rules,
    rename_directory_moves_contents_and_open_files_follow,
    unlink_while_open_keeps_the_file_for_its_descriptor,
    errors_for_directories_links_and_fixed_folders,
    nfc_and_nfd_names_are_distinct_files,
    names_of_255_bytes_work,
);

#[test]
fn deep_tree_of_60_levels_on_a_plain_store() {
    deep_tree(TestMount::plain(), 60);
}

/// Encrypted names are longer, so on a local store the backing path reaches PATH_MAX
/// sooner (SEMANTICS.md): 40 levels work, and going deeper fails with ENAMETOOLONG,
/// never EIO.
#[test]
fn deep_tree_on_the_default_store_and_its_limit() {
    deep_tree(TestMount::start(), 40);
    let m = TestMount::start();
    let mut p = m.local();
    let err = (0..200)
        .find_map(|i| {
            p.push(format!("level{i:03}"));
            fs::create_dir(&p).err()
        })
        .expect("some depth must hit the backing store's PATH_MAX");
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG), "{err}");
}

/// A file kept open while its upload lands (so its copy is not kept as cache) and then
/// renamed: on an encrypted store the rename rewrites the object on the provider, and
/// what the open descriptor writes next must upload as a change of that object, not as
/// a conflict copy (seed 14918261689586895483 of `random_ops_offline`).
#[test]
fn a_file_renamed_while_open_after_its_upload_keeps_uploading_without_conflict() {
    let m = TestMount::start();
    let dir = m.local();
    let mut f =
        fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(dir.join("log.txt")).unwrap();
    f.write_all(b"first line\n").unwrap();
    f.sync_all().unwrap();
    m.sync();
    fs::rename(dir.join("log.txt"), dir.join("log.old")).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"second line\n").unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::write(dir.join("log.old"), b"rewritten\n").unwrap();
    m.sync();
    assert_eq!(names(&dir), ["log.old"], "no conflict copy\n{}", m.log());
    assert_eq!(fs::read(dir.join("log.old")).unwrap(), b"rewritten\n");
}
