//! How `oxidrive mount` / `oxidrive unmount` behave as commands: refusals with a
//! message a person can act on, clean stops on signals, nothing written lost.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use nix::sys::signal::Signal;
use oxidrive_tests::{TestMount, build_encrypts, is_mounted, names, output_within, wait_until};

/// `oxidrive mount <mnt>` in `m`'s environment, expected to fail fast.
fn mount_fails(m: &TestMount, mnt: &Path) -> Output {
    let mut cmd = m.oxidrive();
    cmd.arg("mount").arg(mnt).env_remove("RUST_LOG");
    let out = output_within(&mut cmd, Duration::from_secs(20));
    assert!(!out.status.success(), "mount should have failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!is_mounted(mnt) || mnt == m.mnt, "nothing mounted at {}", mnt.display());
    out
}

/// stderr of a failed command, asserted to be exactly one line.
fn one_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "one line of error, got:\n{err}");
    err
}

#[test]
fn mount_on_a_non_empty_folder_is_refused() {
    let m = TestMount::unstarted(None);
    fs::create_dir_all(&m.mnt).unwrap();
    fs::write(m.mnt.join("precious.txt"), b"mine").unwrap();
    let out = mount_fails(&m, &m.mnt);
    let err = one_line(&out);
    assert!(err.contains("not empty"), "{err}");
    assert!(err.contains(m.mnt.to_str().unwrap()), "names the folder: {err}");
    assert_eq!(fs::read(m.mnt.join("precious.txt")).unwrap(), b"mine");
    // A file as mountpoint is refused too.
    let file = m.dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let err = one_line(&mount_fails(&m, &file));
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn mounting_twice_on_the_same_mountpoint_is_refused() {
    let m = TestMount::start();
    fs::write(m.local().join("f"), b"still here").unwrap();
    let out = mount_fails(&m, &m.mnt);
    let err = one_line(&out);
    assert!(err.contains("already"), "{err}");
    // The first mount is unharmed.
    assert!(is_mounted(&m.mnt));
    assert_eq!(fs::read(m.local().join("f")).unwrap(), b"still here");
}

#[test]
fn a_second_mount_of_the_same_state_is_refused() {
    let m = TestMount::start();
    fs::write(m.local().join("f"), b"still here").unwrap();
    let other = m.dir.path().join("other-mnt");
    let err = one_line(&mount_fails(&m, &other));
    assert!(err.contains("another oxidrive mount is running"), "{err}");
    assert!(!is_mounted(&other));
    // The first mount is unharmed and keeps working.
    assert_eq!(fs::read(m.local().join("f")).unwrap(), b"still here");
    fs::write(m.local().join("g"), b"after").unwrap();
    m.sync();
    assert_eq!(fs::read(m.local().join("g")).unwrap(), b"after");
}

#[test]
fn missing_mountpoint_is_created() {
    let mut m = TestMount::unstarted_plain();
    m.mnt = m.dir.path().join("not/yet/there");
    assert!(!m.mnt.exists());
    m.mount();
    assert!(is_mounted(&m.mnt));
    assert_eq!(names(&m.mnt.join("My Drive")), ["Local"]);
    fs::write(m.local().join("f"), b"x").unwrap();
    assert_eq!(fs::read(m.synced_backing().join("f")).unwrap(), b"x");
    m.unmount();
    assert!(m.mnt.is_dir() && names(&m.mnt).is_empty(), "the folder stays, empty");
}

#[test]
fn malformed_config_names_the_file() {
    for (what, text) in [
        ("TOML syntax error", "[[provider]\nname = \"A\"\n"),
        ("unknown provider type", "[[provider]]\nname = \"A\"\ntype = \"ftp\"\n"),
        ("unknown top-level key", "colour = \"blue\"\n"),
    ] {
        let m = TestMount::unstarted(Some(text));
        let out = mount_fails(&m, &m.mnt);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(m.config_file().to_str().unwrap()), "{what}: the message names the file:\n{err}");
        assert!(!m.mnt.exists() || names(&m.mnt).is_empty(), "{what}");
    }
}

/// Values that parse but make no sense: the message names the file too.
#[test]
fn invalid_config_values_name_the_file() {
    for (what, text) in [
        ("relative path", "[[provider]]\nname = \"A\"\ntype = \"local\"\npath = \"relative\"\n"),
        (
            "duplicate names",
            "[[provider]]\nname = \"A\"\ntype = \"local\"\npath = \"/a\"\n[[provider]]\nname = \"A\"\ntype = \"local\"\npath = \"/b\"\n",
        ),
    ] {
        let m = TestMount::unstarted(Some(text));
        let out = mount_fails(&m, &m.mnt);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(m.config_file().to_str().unwrap()), "{what}: the message names the file:\n{err}");
    }
}

#[test]
fn configured_providers_appear_under_my_drive_and_shared() {
    let plain = if build_encrypts() { "encrypt = false\n" } else { "" };
    let m = TestMount::with_config_in(|dir| {
        let (a, b) = (dir.join("photos"), dir.join("team"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("existing.jpg"), b"jpeg").unwrap();
        format!(
            "[[provider]]\nname = \"Photos\"\ntype = \"local\"\npath = \"{}\"\n{plain}\n\
             [[provider]]\nname = \"Team\"\ntype = \"local\"\npath = \"{}\"\nshared = true\n{plain}",
            a.display(),
            b.display()
        )
    });
    assert_eq!(names(&m.mnt.join("My Drive")), ["Photos"]);
    assert_eq!(names(&m.mnt.join("Shared")), ["Team"]);
    assert_eq!(fs::read(m.mnt.join("My Drive/Photos/existing.jpg")).unwrap(), b"jpeg");
    fs::write(m.mnt.join("Shared/Team/note"), b"hi team").unwrap();
    m.sync();
    assert_eq!(fs::read(m.dir.path().join("team/note")).unwrap(), b"hi team");
    assert!(!m.backing().exists(), "no zero-config store when providers are configured");
}

#[test]
fn explicit_missing_config_is_an_error() {
    let m = TestMount::unstarted(None);
    let missing = m.dir.path().join("nope.toml");
    let mut cmd = m.oxidrive();
    cmd.arg("mount").arg(&m.mnt).arg("--config").arg(&missing);
    let out = output_within(&mut cmd, Duration::from_secs(20));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing.to_str().unwrap()));
}

fn stops_cleanly_on(sig: Signal) {
    let mut m = TestMount::plain();
    fs::write(m.local().join("closed.txt"), b"written and closed").unwrap();
    let status = m.signal(sig);
    assert!(status.success(), "{sig}: exit status {status}\n{}", m.log());
    assert!(!is_mounted(&m.mnt), "{sig}: mount is gone");
    assert!(names(&m.mnt).is_empty());
    assert_eq!(fs::read(m.backing().join("closed.txt")).unwrap(), b"written and closed");
}

#[test]
fn sigterm_unmounts_cleanly() {
    stops_cleanly_on(Signal::SIGTERM);
}

#[test]
fn sigint_unmounts_cleanly() {
    stops_cleanly_on(Signal::SIGINT);
}

#[test]
fn unmount_from_outside_ends_the_process() {
    let mut m = TestMount::plain();
    fs::write(m.local().join("f"), b"x").unwrap();
    // `unmount` asserts both the command's and the mount process's exit status 0.
    m.unmount();
    assert!(!is_mounted(&m.mnt));
    assert_eq!(fs::read(m.backing().join("f")).unwrap(), b"x");
    // Unmounting what is not mounted fails with a message.
    let out = output_within(m.oxidrive().arg("unmount").arg(&m.mnt), Duration::from_secs(20));
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
    // And it mounts again with the data there.
    m.mount();
    assert_eq!(fs::read(m.local().join("f")).unwrap(), b"x");
}

#[test]
fn unmount_of_a_busy_mount_says_so() {
    let m = TestMount::start();
    let f = m.local().join("held");
    let held = fs::File::create(&f).unwrap();
    let out = output_within(m.oxidrive().arg("unmount").arg(&m.mnt), Duration::from_secs(20));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("busy") && err.contains("--lazy"), "{err}");
    assert!(is_mounted(&m.mnt));
    drop(held);
}

/// SIGTERM with a file open and written: the stop uploads it, unmounts lazily and
/// exits once the file is closed.
fn sigterm_with_an_open_file(check_status: bool) {
    let mut m = TestMount::plain();
    let f = m.local().join("open-at-sigterm.txt");
    let mut open = OpenOptions::new().create(true).write(true).truncate(true).open(&f).unwrap();
    open.write_all(b"written, never closed nor synced").unwrap();
    fs::write(m.local().join("closed.txt"), b"closed").unwrap();
    m.send_signal(Signal::SIGTERM);
    let backing = m.backing().join("open-at-sigterm.txt");
    let arrived = wait_until(Duration::from_secs(20), || {
        fs::read(&backing).map(|d| d == b"written, never closed nor synced").unwrap_or(false)
    });
    assert!(arrived, "data written before SIGTERM is in the backing folder\n{}", m.log());
    drop(open);
    let status = m.wait_exit(Duration::from_secs(30)).expect("oxidrive exits once the last file is closed");
    if check_status {
        assert!(status.success(), "exit status {status}\n{}", m.log());
    }
    assert!(!is_mounted(&m.mnt));
    assert_eq!(fs::read(m.backing().join("closed.txt")).unwrap(), b"closed");
    assert_eq!(fs::read(&backing).unwrap(), b"written, never closed nor synced");
}

#[test]
fn data_written_before_sigterm_reaches_the_backing_folder() {
    sigterm_with_an_open_file(false);
}

/// Repeated, because the failure is a race (about 1 run in 25 on a loaded machine).
#[test]
fn sigterm_with_an_open_file_exits_zero() {
    for _ in 0..30 {
        sigterm_with_an_open_file(true);
    }
}

#[test]
fn help_and_version() {
    let out = Command::new(oxidrive_tests::oxidrive_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("oxidrive "));
    let out = Command::new(oxidrive_tests::oxidrive_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("mount") && help.contains("unmount"), "{help}");
}

/// `oxidrive pin` / `free` of files outside any oxidrive mount: a clear one-line error
/// and nothing set (most file systems would simply store the control attributes).
#[test]
fn pin_outside_a_mount_is_refused() {
    let m = TestMount::unstarted(None);
    let dir = m.dir.path().join("elsewhere");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("f"), b"x").unwrap();
    for cmd in ["pin", "free"] {
        let out = output_within(m.oxidrive().arg(cmd).arg(dir.join("f")).arg(&dir), Duration::from_secs(20));
        assert!(!out.status.success(), "{cmd} outside a mount succeeded");
        let err = one_line(&out);
        assert!(err.contains(&format!("{}: not inside an oxidrive mount", dir.join("f").display())), "{cmd}: {err}");
    }
    let c_path = std::ffi::CString::new(dir.join("f").to_str().unwrap()).unwrap();
    let c_name = std::ffi::CString::new("user.oxidrive.pinned").unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: NUL-terminated strings and a buffer of the given length.
    let n = unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(n, -1, "pin left its attribute on a file outside the mount");
}
