//! The unified views through a real mount: Shared roots, Recents across providers (same
//! inodes as the real files, disambiguated names, read-only, kept across remounts), and
//! a provider that cannot start shown as an empty read-only folder.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use oxidrive_tests::{TestMount, names};

fn two_providers(dir: &Path) -> String {
    format!(
        "[[provider]]\nname = \"Work\"\ntype = \"local\"\npath = \"{0}/work\"\n\n\
         [[provider]]\nname = \"Home\"\ntype = \"local\"\npath = \"{0}/home-store\"\nencrypt = false\n\n\
         [[provider]]\nname = \"Team\"\ntype = \"local\"\npath = \"{0}/team\"\nshared = true\n",
        dir.display()
    )
}

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("expected an error").raw_os_error().expect("an OS error")
}

/// Writes, then waits a little so recency order is unambiguous.
fn write(p: &Path, data: &[u8]) {
    fs::write(p, data).unwrap();
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn shared_roots_appear_under_shared_only() {
    let m = TestMount::with_config_in(two_providers);
    assert_eq!(names(&m.mnt), ["My Drive", "Recents", "Shared", "Trash"]);
    assert_eq!(names(&m.mnt.join("My Drive")), ["Home", "Work"]);
    assert_eq!(names(&m.mnt.join("Shared")), ["Team"]);
    write(&m.mnt.join("Shared/Team/plan.txt"), b"team plan");
    assert_eq!(fs::read(m.mnt.join("Shared/Team/plan.txt")).unwrap(), b"team plan");
    assert_eq!(errno(fs::create_dir(m.mnt.join("Shared/New"))), libc::EPERM);
}

#[test]
fn recents_lists_changed_files_across_providers_as_the_same_inodes() {
    let mut m = TestMount::with_config_in(two_providers);
    let drive = m.mnt.join("My Drive");
    fs::create_dir(drive.join("Home/docs")).unwrap();
    write(&drive.join("Work/report.pdf"), b"work report");
    write(&drive.join("Home/docs/report.pdf"), b"home report");
    write(&drive.join("Home/notes.txt"), b"notes");
    write(&m.mnt.join("Shared/Team/agenda"), b"agenda");
    let recents = m.mnt.join("Recents");

    // Newest first by mtime (what `ls -t` uses); the older duplicate is renamed.
    let mut listed: Vec<(String, i64, i64)> = fs::read_dir(&recents)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), md.mtime(), md.mtime_nsec())
        })
        .collect();
    listed.sort_by_key(|r| std::cmp::Reverse((r.1, r.2)));
    let order: Vec<&str> = listed.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(order, ["agenda", "notes.txt", "report.pdf", "report (Work).pdf"]);

    // Same inode and same bytes as the real files; edits through Recents edit them.
    let real = drive.join("Home/docs/report.pdf");
    assert_eq!(fs::metadata(recents.join("report.pdf")).unwrap().ino(), fs::metadata(&real).unwrap().ino());
    assert_eq!(fs::read(recents.join("report (Work).pdf")).unwrap(), b"work report");
    fs::write(recents.join("report.pdf"), b"edited through Recents").unwrap();
    assert_eq!(fs::read(&real).unwrap(), b"edited through Recents");

    // Read-only view: no new files, no renames into it; rm forgets the entry only.
    assert_eq!(errno(fs::write(recents.join("new.txt"), b"x")), libc::EROFS);
    assert_eq!(errno(fs::rename(drive.join("Home/notes.txt"), recents.join("moved.txt"))), libc::EROFS);
    fs::remove_file(recents.join("notes.txt")).unwrap();
    assert!(!names(&recents).contains(&"notes.txt".to_string()));
    assert_eq!(fs::read(drive.join("Home/notes.txt")).unwrap(), b"notes");

    // Renames and deletes of the real files follow into the view.
    fs::rename(drive.join("Work/report.pdf"), drive.join("Work/final.pdf")).unwrap();
    fs::remove_file(m.mnt.join("Shared/Team/agenda")).unwrap();
    let now = names(&recents);
    assert!(now.contains(&"final.pdf".to_string()) && !now.contains(&"agenda".to_string()), "{now:?}");

    // Kept across remounts.
    m.remount();
    let after = names(&m.mnt.join("Recents"));
    assert_eq!(after, now, "Recents after remount");
}

#[test]
fn a_provider_that_cannot_start_is_an_empty_read_only_folder() {
    let m = TestMount::with_config_in(|dir| {
        fs::write(dir.join("not-a-dir"), b"file").unwrap();
        format!(
            "[[provider]]\nname = \"Good\"\ntype = \"local\"\npath = \"{0}/good\"\n\n\
             [[provider]]\nname = \"Broken\"\ntype = \"local\"\npath = \"{0}/not-a-dir/store\"\n",
            dir.display()
        )
    });
    let drive = m.mnt.join("My Drive");
    assert_eq!(names(&drive), ["Broken", "Good"]);
    assert_eq!(names(&drive.join("Broken")), Vec::<String>::new());
    assert_eq!(fs::metadata(drive.join("Broken")).unwrap().mode() & 0o777, 0o555);
    assert_eq!(errno(fs::write(drive.join("Broken/x"), b"x")), libc::EROFS);
    write(&drive.join("Good/ok.txt"), b"still works");
    assert_eq!(fs::read(drive.join("Good/ok.txt")).unwrap(), b"still works");
    let log = m.log();
    assert!(log.lines().any(|l| l.contains("Broken") && l.contains("unavailable")), "log names the provider:\n{log}");
}

#[test]
fn recents_shows_as_many_files_as_configured() {
    let m = TestMount::with_config_in(|dir| format!("recents = 3\n{}", two_providers(dir)));
    let work = m.mnt.join("My Drive/Work");
    for i in 0..5 {
        write(&work.join(format!("f{i}.txt")), format!("file {i}").as_bytes());
    }
    let mut shown = names(&m.mnt.join("Recents"));
    shown.sort();
    assert_eq!(shown, ["f2.txt", "f3.txt", "f4.txt"]);

    let bad = TestMount::unstarted(Some("recents = 0\n"));
    let out = bad.oxidrive().arg("mount").arg(&bad.mnt).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("recents = 0"), "{}", String::from_utf8_lossy(&out.stderr));
}
