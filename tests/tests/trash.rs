//! Trash through a real mount: `rm` and `rmdir` of what a provider holds move it to
//! the provider's encrypted trash area and into `Trash/`; `mv` out of Trash and
//! `oxidrive trash restore` put it back; `rm` in Trash deletes for good; a retention
//! purge (with the clock skewed by `OXIDRIVE_CLOCK_SKEW_SECS`); a second device sees
//! the same Trash. Files never uploaded and names replaced by a rename never get there.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oxidrive_tests::{
    Devices, TestMount, assert_errno, make_tree, names, pattern, run, snapshot, snapshot_diff, wait_until,
};

/// Item folders in a plain store's trash area.
fn trash_items(backing: &Path) -> Vec<PathBuf> {
    let dir = backing.join(".oxidrive/trash");
    let mut items: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    items.sort();
    items
}

fn trash_cmd(m: &TestMount, args: &[&str]) -> String {
    let out = m.oxidrive().arg("trash").args(args).output().expect("run oxidrive trash");
    assert!(
        out.status.success(),
        "oxidrive trash {args:?} failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        m.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rm_moves_a_file_to_trash_and_mv_brings_it_back() {
    let m = TestMount::plain();
    let body = pattern(300_000, 7);
    fs::write(m.local().join("report.pdf"), &body).unwrap();
    let backing = m.plain_backing().expect("plain store");
    fs::remove_file(m.local().join("report.pdf")).unwrap();
    assert!(!m.local().join("report.pdf").exists());
    assert_eq!(names(&m.local()), Vec::<String>::new());
    assert_eq!(names(&m.mnt.join("Trash")), ["report.pdf"]);
    assert_eq!(fs::read(m.mnt.join("Trash/report.pdf")).unwrap(), body);

    // On the provider: moved into the trash area with its origin recorded.
    m.sync();
    assert!(!backing.join("report.pdf").exists());
    let items = trash_items(&backing);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(fs::read(items[0].join("data")).unwrap(), body);
    let info = fs::read_to_string(items[0].join("info")).unwrap();
    assert!(info.contains("\"path\":\"report.pdf\""), "{info}");

    fs::rename(m.mnt.join("Trash/report.pdf"), m.local().join("restored.pdf")).unwrap();
    assert_eq!(fs::read(m.local().join("restored.pdf")).unwrap(), body);
    assert_eq!(names(&m.mnt.join("Trash")), Vec::<String>::new());
    m.sync();
    assert_eq!(fs::read(backing.join("restored.pdf")).unwrap(), body);
    assert_eq!(trash_items(&backing), Vec::<PathBuf>::new());
}

#[test]
fn files_never_uploaded_and_names_renamed_over_skip_trash() {
    let m = TestMount::plain();
    // An editor's swap file: created and deleted before its upload.
    fs::write(m.local().join(".notes.swp"), b"swap").unwrap();
    fs::remove_file(m.local().join(".notes.swp")).unwrap();
    // A save by rename over the old file.
    fs::write(m.local().join("notes.txt"), b"v1").unwrap();
    m.sync();
    fs::write(m.local().join(".notes.txt.tmp"), b"v2").unwrap();
    fs::rename(m.local().join(".notes.txt.tmp"), m.local().join("notes.txt")).unwrap();
    let backing = m.plain_backing().expect("plain store");
    assert_eq!(names(&m.mnt.join("Trash")), Vec::<String>::new());
    assert_eq!(trash_items(&backing), Vec::<PathBuf>::new());
    assert_eq!(fs::read(backing.join("notes.txt")).unwrap(), b"v2");
}

#[test]
fn a_deleted_folder_is_one_item_and_restores_whole_after_remount() {
    // Encrypted: the trash area holds no plaintext names.
    let mut m = TestMount::start();
    let proj = m.local().join("proj");
    let files = make_tree(&proj, 11, 60);
    assert!(files > 20);
    let before = snapshot(&proj).unwrap();
    m.sync();
    run(&m.local(), "rm", &["-rf", "proj"]);
    assert!(!proj.exists());
    assert_eq!(names(&m.mnt.join("Trash")), ["proj"]);
    assert_eq!(snapshot_diff(&before, &snapshot(&m.mnt.join("Trash/proj")).unwrap()), None);
    m.sync();
    let plain_names: std::collections::HashSet<String> = before
        .keys()
        .flat_map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect::<Vec<_>>())
        .chain(["proj".to_owned()])
        .collect();
    let listing = run(&m.backing(), "find", &["."]);
    let leaked: Vec<&str> = listing.lines().filter(|l| l.split('/').any(|c| plain_names.contains(c))).collect();
    assert!(leaked.is_empty(), "plaintext names in the store: {leaked:?}");

    m.remount();
    assert_eq!(names(&m.mnt.join("Trash")), ["proj"]);
    let list = trash_cmd(&m, &["list"]);
    assert!(list.contains("proj/") && list.contains("(Local/proj)"), "{list}");
    let restored = trash_cmd(&m, &["restore", "proj"]);
    assert!(restored.contains("proj -> Local/proj"), "{restored}");
    assert_eq!(snapshot_diff(&before, &snapshot(&proj).unwrap()), None);
    assert_eq!(names(&m.mnt.join("Trash")), Vec::<String>::new());
    m.remount();
    assert_eq!(snapshot_diff(&before, &snapshot(&proj).unwrap()), None);
}

#[test]
fn restore_recreates_the_folder_it_came_from() {
    let m = TestMount::plain();
    let deep = m.local().join("a/b");
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f.txt"), b"keep me").unwrap();
    fs::write(m.local().join("a/other"), b"x").unwrap();
    m.sync();
    fs::remove_file(deep.join("f.txt")).unwrap();
    m.sync();
    run(&m.local(), "rm", &["-rf", "a"]);
    m.sync();
    assert_eq!(names(&m.mnt.join("Trash")), ["a", "f.txt"]);
    trash_cmd(&m, &["restore", "f.txt"]);
    assert_eq!(fs::read(deep.join("f.txt")).unwrap(), b"keep me");
    // Only the file came back; the folder's own item is still in Trash, and restoring
    // it onto the recreated folder is refused rather than merged.
    assert!(!m.local().join("a/other").exists());
    assert_eq!(names(&m.mnt.join("Trash")), ["a"]);
    let out = m.oxidrive().args(["trash", "restore", "a"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"), "{}", String::from_utf8_lossy(&out.stderr));
    let backing = m.plain_backing().expect("plain store");
    assert_eq!(fs::read(backing.join("a/b/f.txt")).unwrap(), b"keep me");
}

#[test]
fn rm_in_trash_and_trash_empty_delete_for_good() {
    let m = TestMount::plain();
    for n in ["one", "two", "three"] {
        fs::write(m.local().join(n), n.as_bytes()).unwrap();
    }
    fs::create_dir(m.local().join("dir")).unwrap();
    fs::write(m.local().join("dir/inner"), b"inner").unwrap();
    m.sync();
    for n in ["one", "two", "three"] {
        fs::remove_file(m.local().join(n)).unwrap();
    }
    run(&m.local(), "rm", &["-rf", "dir"]);
    m.sync();
    let backing = m.plain_backing().expect("plain store");
    assert_eq!(trash_items(&backing).len(), 4);
    fs::remove_file(m.mnt.join("Trash/one")).unwrap();
    run(&m.mnt.join("Trash"), "rm", &["-rf", "dir"]);
    assert_eq!(names(&m.mnt.join("Trash")), ["three", "two"]);
    assert_eq!(trash_items(&backing).len(), 2);
    assert!(trash_cmd(&m, &["empty"]).contains("deleted 2 items"));
    assert_eq!(names(&m.mnt.join("Trash")), Vec::<String>::new());
    assert_eq!(trash_items(&backing), Vec::<PathBuf>::new());
    assert_eq!(names(&m.local()), Vec::<String>::new());
}

#[test]
fn trash_is_read_only_except_for_taking_things_out() {
    let m = TestMount::plain();
    fs::write(m.local().join("x"), b"x").unwrap();
    m.sync();
    fs::remove_file(m.local().join("x")).unwrap();
    let trash = m.mnt.join("Trash");
    assert_errno("create in Trash", fs::write(trash.join("new"), b"n"), libc::EROFS);
    assert_errno("mkdir in Trash", fs::create_dir(trash.join("d")), libc::EROFS);
    assert_errno(
        "write a trashed file",
        fs::OpenOptions::new().write(true).open(trash.join("x")).map(|_| ()),
        libc::EROFS,
    );
    fs::write(m.local().join("y"), b"y").unwrap();
    assert_errno("mv into Trash", fs::rename(m.local().join("y"), trash.join("y")), libc::EPERM);
    assert_eq!(fs::read(trash.join("x")).unwrap(), b"x");
}

#[test]
fn a_new_file_under_a_deleted_name_sends_the_old_one_to_trash() {
    let m = TestMount::plain();
    fs::write(m.local().join("doc"), b"old").unwrap();
    fs::create_dir(m.local().join("build")).unwrap();
    fs::write(m.local().join("build/out.o"), b"object").unwrap();
    m.sync();
    fs::remove_file(m.local().join("doc")).unwrap();
    fs::write(m.local().join("doc"), b"new").unwrap();
    run(&m.local(), "sh", &["-c", "rm -rf build && mkdir build && echo fresh > build/out.o"]);
    assert_eq!(fs::read(m.local().join("doc")).unwrap(), b"new");
    assert_eq!(fs::read(m.mnt.join("Trash/doc")).unwrap(), b"old");
    assert_eq!(fs::read(m.mnt.join("Trash/build/out.o")).unwrap(), b"object");
    let backing = m.plain_backing().expect("plain store");
    assert_eq!(fs::read(backing.join("doc")).unwrap(), b"new");
    assert_eq!(fs::read(backing.join("build/out.o")).unwrap(), b"fresh\n");
    assert_eq!(trash_items(&backing).len(), 2);
}

/// The Trash mover removes deleted names from the provider one by one, then forgets
/// their tombstones; a listing that asked the provider just before a removal must not
/// show that name once nothing hides it. (stress-ng's symlink stressor: `rmdir` right
/// after unlinking every link failed with ENOTEMPTY, the links listed as files.)
#[test]
fn names_leaving_for_the_trash_never_show_again_in_listings() {
    let m = TestMount::plain();
    let dir = m.local().join("churn");
    fs::create_dir(&dir).unwrap();
    for i in 0..300 {
        std::os::unix::fs::symlink("../some/where/else", dir.join(format!("link-{i}"))).unwrap();
        fs::write(dir.join(format!("file-{i}")), format!("file {i}")).unwrap();
    }
    m.sync();
    for entry in fs::read_dir(&dir).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let lists = std::thread::scope(|s| {
        let lister = s.spawn(|| {
            let mut lists = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let seen = names(&dir);
                assert!(seen.is_empty(), "listed after their deletion, while moving to Trash: {seen:?}");
                lists += 1;
            }
            lists
        });
        m.sync();
        done.store(true, std::sync::atomic::Ordering::Release);
        lister.join().unwrap()
    });
    assert!(lists > 10, "only {lists} listings while the Trash mover ran");
    fs::remove_dir(&dir).unwrap();
    let backing = m.plain_backing().expect("plain store");
    assert!(!backing.join("churn").exists());
    assert_eq!(names(&m.mnt.join("Trash")).len(), 300, "the deleted files in Trash");
}

#[test]
fn the_same_name_deleted_twice_is_told_apart_by_time() {
    let m = TestMount::plain();
    for body in [&b"first"[..], b"second"] {
        fs::write(m.local().join("n.txt"), body).unwrap();
        m.sync();
        fs::remove_file(m.local().join("n.txt")).unwrap();
        m.sync();
        std::thread::sleep(Duration::from_millis(1100));
    }
    let listed = names(&m.mnt.join("Trash"));
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&"n.txt".to_owned()));
    let older = listed.iter().find(|n| n.starts_with("n (deleted ")).expect("older one tagged");
    assert!(older.ends_with(").txt"), "{older}");
    assert_eq!(fs::read(m.mnt.join("Trash/n.txt")).unwrap(), b"second");
    assert_eq!(fs::read(m.mnt.join("Trash").join(older)).unwrap(), b"first");
}

#[test]
fn items_older_than_the_retention_are_purged() {
    let mut m = TestMount::unstarted_plain();
    m.mount();
    fs::write(m.local().join("old"), b"old").unwrap();
    m.sync();
    fs::remove_file(m.local().join("old")).unwrap();
    m.sync();
    let backing = m.plain_backing().expect("plain store");
    assert_eq!(trash_items(&backing).len(), 1);
    m.unmount();

    // 29 days later: still there.
    m.mount_env = vec![("OXIDRIVE_CLOCK_SKEW_SECS".into(), (29 * 86_400).to_string())];
    m.mount();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(names(&m.mnt.join("Trash")), ["old"]);
    m.unmount();

    // 31 days later: purged, on the provider too.
    m.mount_env = vec![("OXIDRIVE_CLOCK_SKEW_SECS".into(), (31 * 86_400).to_string())];
    m.mount();
    let purged = wait_until(Duration::from_secs(20), || names(&m.mnt.join("Trash")).is_empty());
    assert!(purged, "not purged:\n{}", m.log());
    assert_eq!(trash_items(&backing), Vec::<PathBuf>::new());
    assert!(m.log().contains("purged from Trash"), "{}", m.log());
}

#[test]
fn a_second_device_sees_and_restores_the_same_trash() {
    let Devices { a, b, .. } = &Devices::start(&["--poll", "1"]);
    let da = a.mnt.join("My Drive/Shared");
    let db = b.mnt.join("My Drive/Shared");
    fs::write(da.join("plan.txt"), b"the plan").unwrap();
    a.sync();
    fs::remove_file(da.join("plan.txt")).unwrap();
    a.sync();
    let seen = wait_until(Duration::from_secs(15), || names(&b.mnt.join("Trash")) == ["plan.txt"]);
    assert!(seen, "device b's Trash: {:?}\n{}", names(&b.mnt.join("Trash")), b.log());
    assert_eq!(fs::read(b.mnt.join("Trash/plan.txt")).unwrap(), b"the plan");
    fs::rename(b.mnt.join("Trash/plan.txt"), db.join("plan.txt")).unwrap();
    b.sync();
    let back =
        wait_until(Duration::from_secs(15), || fs::read(da.join("plan.txt")).ok().as_deref() == Some(b"the plan"));
    assert!(back, "restore did not reach device a\n{}", a.log());
    let gone = wait_until(Duration::from_secs(15), || names(&a.mnt.join("Trash")).is_empty());
    assert!(gone, "device a still shows {:?}", names(&a.mnt.join("Trash")));
}

#[test]
fn decrypt_restores_the_trash_only_when_asked() {
    let mut m = TestMount::start();
    fs::write(m.local().join("kept.txt"), b"kept").unwrap();
    fs::write(m.local().join("binned.txt"), b"binned").unwrap();
    m.sync();
    fs::remove_file(m.local().join("binned.txt")).unwrap();
    m.sync();
    m.unmount();
    let decrypt = |dest: &Path, extra: &[&str]| {
        let out = m.oxidrive().args(["decrypt", "--provider", "Local"]).args(extra).arg(dest).output().unwrap();
        assert!(out.status.success(), "decrypt: {}", String::from_utf8_lossy(&out.stderr));
    };
    let plain = m.dir.path().join("plain");
    decrypt(&plain, &[]);
    assert_eq!(names(&plain), ["kept.txt"]);
    let with = m.dir.path().join("with-trash");
    decrypt(&with, &["--with-trash"]);
    let items = trash_items(&with);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(fs::read(items[0].join("data")).unwrap(), b"binned");
    assert!(fs::read_to_string(items[0].join("info")).unwrap().contains("binned.txt"));
}

#[test]
fn trash_gathers_every_provider_and_shared_roots_beside_a_broken_one() {
    let m = TestMount::with_config_in(|dir| {
        fs::write(dir.join("not-a-dir"), b"file").unwrap();
        format!(
            "[[provider]]\nname = \"Work\"\ntype = \"local\"\npath = \"{0}/work\"\n\n\
             [[provider]]\nname = \"Team\"\ntype = \"local\"\npath = \"{0}/team\"\nshared = true\n\n\
             [[provider]]\nname = \"Broken\"\ntype = \"local\"\npath = \"{0}/not-a-dir/store\"\n",
            dir.display()
        )
    });
    let work = m.mnt.join("My Drive/Work");
    let team = m.mnt.join("Shared/Team");
    fs::write(work.join("agenda.txt"), b"work agenda").unwrap();
    fs::write(team.join("agenda.txt"), b"team agenda").unwrap();
    m.sync();
    fs::remove_file(work.join("agenda.txt")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    fs::remove_file(team.join("agenda.txt")).unwrap();
    m.sync();
    let listed = names(&m.mnt.join("Trash"));
    assert_eq!(listed.len(), 2, "{listed:?}");
    // The newer (Team's) keeps the name.
    assert_eq!(fs::read(m.mnt.join("Trash/agenda.txt")).unwrap(), b"team agenda");
    let older = listed.iter().find(|n| n.as_str() != "agenda.txt").unwrap();
    assert_eq!(fs::read(m.mnt.join("Trash").join(older)).unwrap(), b"work agenda");
    // Back across providers is a copy (EXDEV); to its own provider a move.
    assert_errno(
        "restore into another provider",
        fs::rename(m.mnt.join("Trash").join(older), team.join("w.txt")),
        libc::EXDEV,
    );
    fs::rename(m.mnt.join("Trash").join(older), work.join("agenda.txt")).unwrap();
    assert_eq!(fs::read(work.join("agenda.txt")).unwrap(), b"work agenda");
    assert_eq!(names(&m.mnt.join("Trash")), ["agenda.txt"]);
}

#[test]
fn moving_an_item_straight_back_undoes_the_delete() {
    let m = TestMount::plain();
    fs::write(m.local().join("a.txt"), b"aaa").unwrap();
    fs::create_dir(m.local().join("d")).unwrap();
    fs::write(m.local().join("d/in"), b"in").unwrap();
    m.sync();
    fs::remove_file(m.local().join("a.txt")).unwrap();
    run(&m.local(), "rm", &["-rf", "d"]);
    // Right away, before anything moved on the provider.
    fs::rename(m.mnt.join("Trash/a.txt"), m.local().join("a.txt")).unwrap();
    assert_errno("rmdir of a full item", fs::remove_dir(m.mnt.join("Trash/d")), libc::ENOTEMPTY);
    fs::rename(m.mnt.join("Trash/d"), m.local().join("d")).unwrap();
    assert_eq!(fs::read(m.local().join("a.txt")).unwrap(), b"aaa");
    assert_eq!(fs::read(m.local().join("d/in")).unwrap(), b"in");
    assert_eq!(names(&m.mnt.join("Trash")), Vec::<String>::new());
    let backing = m.plain_backing().expect("plain store");
    assert_eq!(fs::read(backing.join("a.txt")).unwrap(), b"aaa");
    assert_eq!(fs::read(backing.join("d/in")).unwrap(), b"in");
    assert_eq!(trash_items(&backing), Vec::<PathBuf>::new());
}

#[test]
fn a_folder_replaced_by_rename_keeps_what_was_deleted_in_it() {
    let m = TestMount::plain();
    fs::create_dir(m.local().join("dst")).unwrap();
    fs::write(m.local().join("dst/old"), b"old").unwrap();
    fs::create_dir(m.local().join("src")).unwrap();
    fs::write(m.local().join("src/new"), b"new").unwrap();
    m.sync();
    fs::remove_file(m.local().join("dst/old")).unwrap();
    fs::rename(m.local().join("src"), m.local().join("dst")).unwrap();
    assert_eq!(names(&m.local()), ["dst"]);
    assert_eq!(names(&m.local().join("dst")), ["new"]);
    assert_eq!(fs::read(m.mnt.join("Trash/dst/old")).unwrap(), b"old");
    let backing = m.plain_backing().expect("plain store");
    assert_eq!(fs::read(backing.join("dst/new")).unwrap(), b"new");
    assert!(!backing.join("dst/old").exists());
}

/// `git` makes and drops lock and temp files all the time (and saves by renaming over):
/// none of that reaches Trash; a file the user deletes does.
#[test]
fn git_at_work_leaves_only_real_deletes_in_trash() {
    let m = TestMount::plain();
    let repo = m.local().join("repo");
    fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let mut all =
            vec!["-c", "user.name=Oxi Test", "-c", "user.email=test@oxidrive.invalid", "-c", "init.defaultBranch=main"];
        all.extend_from_slice(args);
        run(&repo, "git", &all)
    };
    git(&["init", "-q"]);
    make_tree(&repo.join("src"), 5, 30);
    fs::write(repo.join("notes.md"), "notes\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "one"]);
    m.sync();
    for i in 0..3 {
        fs::write(repo.join("notes.md"), format!("notes {i}\n")).unwrap();
        git(&["commit", "-q", "-am", &format!("edit {i}")]);
    }
    git(&["rm", "-q", "notes.md"]);
    git(&["commit", "-q", "-m", "drop notes"]);
    m.sync();
    assert_eq!(names(&m.mnt.join("Trash")), ["notes.md"]);
    assert_eq!(fs::read(m.mnt.join("Trash/notes.md")).unwrap(), b"notes 2\n");
    assert_eq!(git(&["fsck", "--no-progress"]), "");
}

/// A crash between removing a new file that stood over one deleted offline and hiding
/// the deleted one again leaves a `replaced` tombstone with nothing in its place: the
/// next start hides the deleted file again (else it would show until it reached Trash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_replaced_by_nothing_hides_again_at_start() {
    use oxidrive_cache::{Clock, Copies, Index, RemoteEntry, Store, StoreConfig, Tombstone};
    use oxidrive_providers::{Backend, Provider, ProviderKind, ProviderSpec};
    use std::sync::Arc;
    use std::time::SystemTime;

    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("store");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("old"), b"deleted here").unwrap();
    let index = Arc::new(Index::open(&dir.path().join("index.sqlite"), Some(&[5; 32])).unwrap());
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    index.remote_put("T", "old", Some(RemoteEntry { is_dir: false, size: 12, mtime: Some(at) })).unwrap();
    let tombstone = Tombstone {
        id: "t1".into(),
        path: "old".into(),
        orig: "old".into(),
        deleted: at,
        is_dir: false,
        version: Some((12, Some(at))),
        moved_to: None,
        replaced: true,
    };
    index.tombstone_add("T", &tombstone).unwrap();

    let spec =
        ProviderSpec { name: "T".into(), kind: ProviderKind::Local { path: folder }, shared: false, encrypt: false };
    let provider = Provider::plain("T", Backend::from_spec(&spec).unwrap());
    let copies = dir.path().join("copies");
    fs::create_dir_all(&copies).unwrap();
    let config = StoreConfig {
        copies: Arc::new(Copies::new(&copies, [3; 32], 1 << 20, index.clone())),
        write_back: Duration::from_secs(3600),
        trash_retention: Duration::from_secs(86_400),
        clock: Clock::system(),
    };
    let store = Store::new("T", provider, index.clone(), config).unwrap();
    assert!(store.stat("old").await.unwrap().is_none(), "the deleted file shows again");
    let left = index.tombstones("T").unwrap();
    assert_eq!(left, [Tombstone { replaced: false, ..tombstone }], "the tombstone as recorded");
}
