//! Harness for end-to-end tests: builds nothing itself, runs the real `oxidrive`
//! binary in a temp dir with every XDG directory isolated, waits for the mount, and
//! always unmounts (on drop, so also on panic), ending only the process it started.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub mod direct;
pub mod faults;
pub mod servers;

/// The `oxidrive` binary: `$OXIDRIVE_BIN`, or the one cargo built next to this test.
pub fn oxidrive_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OXIDRIVE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("oxidrive");
    assert!(bin.exists(), "{} is missing: run `cargo build -p oxidrive` first (scripts/test.sh does)", bin.display());
    bin
}

/// Every test mount unlocks with this (builds without encryption ignore it).
pub const TEST_PASSPHRASE: &str = "correct horse battery staple (tests only)";

/// Whether this build of oxidrive encrypts stores by default (it then takes a
/// passphrase). Asked once, from `oxidrive mount --help`.
pub fn build_encrypts() -> bool {
    static ENCRYPTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENCRYPTS.get_or_init(|| {
        let out = Command::new(oxidrive_bin()).args(["mount", "--help"]).output().expect("oxidrive mount --help");
        String::from_utf8_lossy(&out.stdout).contains("passphrase")
    })
}

pub struct TestMount {
    pub dir: tempfile::TempDir,
    pub mnt: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    /// The "Local" store keeps plaintext in `backing()`.
    plain: bool,
    /// Extra arguments for `oxidrive mount` (e.g. `--cache-size 4M`).
    pub mount_args: Vec<String>,
    /// Extra environment for `oxidrive mount` (e.g. `OXIDRIVE_CLOCK_SKEW_SECS`).
    pub mount_env: Vec<(String, String)>,
}

impl TestMount {
    /// Zero-config mount: one local store at `$XDG_DATA_HOME/oxidrive/local`
    /// (encrypted, in builds that encrypt by default).
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Like `start()`, but the "Local" store keeps plaintext names and contents in
    /// `backing()`, so a test can check byte for byte what reached the provider. Same
    /// folder, same name; configured with `encrypt = false` when this build encrypts.
    pub fn plain() -> Self {
        let mut m = Self::unstarted_plain();
        m.mount();
        m
    }

    /// `unstarted(None)` with the plain "Local" store of `plain()`.
    pub fn unstarted_plain() -> Self {
        let mut m = Self::unstarted(None);
        m.plain = true;
        if build_encrypts() {
            let backing = m.backing();
            std::fs::create_dir_all(&backing).expect("backing dir");
            m.write_config(&format!(
                "[[provider]]\nname = \"Local\"\ntype = \"local\"\npath = \"{}\"\nencrypt = false\n",
                backing.display()
            ));
        }
        m
    }

    /// Mount with this config file text.
    pub fn with_config(config: &str) -> Self {
        Self::start_with(Some(config))
    }

    /// Mount with the config `make(temp dir)` returns, for configs that name folders
    /// (which should live in the test's own temp dir).
    pub fn with_config_in(make: impl FnOnce(&Path) -> String) -> Self {
        let mut m = Self::unstarted(None);
        let text = make(m.dir.path());
        m.write_config(&text);
        m.plain = false;
        m.mount();
        m
    }

    fn start_with(config: Option<&str>) -> Self {
        let mut m = Self::unstarted(config);
        m.mount();
        m
    }

    /// The isolated temp dir (and config, if given) without starting oxidrive; for
    /// tests of how `oxidrive mount` fails. `mount()` starts it.
    pub fn unstarted(config: Option<&str>) -> Self {
        let dir = tempfile::Builder::new().prefix("oxidrive-test-").tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        let plain = config.is_none() && !build_encrypts();
        let m = TestMount {
            mnt,
            dir,
            child: None,
            log: PathBuf::new(),
            plain,
            mount_args: Vec::new(),
            mount_env: Vec::new(),
        };
        if let Some(text) = config {
            m.write_config(text);
        }
        m
    }

    /// Where oxidrive looks for its config in this environment.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("config/oxidrive/config.toml")
    }

    fn write_config(&self, text: &str) {
        let file = self.config_file();
        std::fs::create_dir_all(file.parent().unwrap()).expect("config dir");
        std::fs::write(file, text).expect("write config");
    }

    /// Starts `oxidrive mount self.mnt` and waits until the mount is there.
    pub fn mount(&mut self) {
        assert!(self.child.is_none(), "already started");
        self.spawn();
    }

    /// The environment that isolates a run in this temp dir.
    pub fn env(&self) -> Vec<(String, PathBuf)> {
        let d = self.dir.path();
        vec![
            ("HOME".into(), d.join("home")),
            ("XDG_CONFIG_HOME".into(), d.join("config")),
            ("XDG_DATA_HOME".into(), d.join("data")),
            ("XDG_STATE_HOME".into(), d.join("state")),
            ("XDG_CACHE_HOME".into(), d.join("cache")),
            ("XDG_RUNTIME_DIR".into(), d.join("run")),
        ]
    }

    /// A command for the oxidrive binary with this mount's environment.
    pub fn oxidrive(&self) -> Command {
        let mut cmd = Command::new(oxidrive_bin());
        for (k, v) in self.env() {
            std::fs::create_dir_all(&v).ok();
            cmd.env(k, v);
        }
        cmd.env_remove("OXIDRIVE_CONFIG");
        cmd.env("OXIDRIVE_PASSPHRASE", TEST_PASSPHRASE);
        cmd
    }

    fn spawn(&mut self) {
        let n = std::fs::read_dir(self.dir.path()).map(|d| d.count()).unwrap_or(0);
        self.log = self.dir.path().join(format!("mount-{n}.log"));
        let log = std::fs::File::create(&self.log).expect("log file");
        let child = self
            .oxidrive()
            .arg("mount")
            .arg(&self.mnt)
            .args(&self.mount_args)
            // For hunting races by hand (`OXIDRIVE_TEST_MOUNT_ARGS="--poll 0.5"`): after the
            // test's own, so these win.
            .args(std::env::var("OXIDRIVE_TEST_MOUNT_ARGS").unwrap_or_default().split_whitespace())
            .envs(self.mount_env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", std::env::var("OXIDRIVE_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn oxidrive");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_mounted(&self.mnt) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("oxidrive exited with {status} before mounting:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "mount did not appear in 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mounted").id()
    }

    /// `oxidrive sync --wait`: returns once every change made so far is on the
    /// providers (uploads are write-back: close and fsync only commit locally).
    pub fn sync(&self) {
        let out = output_within(self.oxidrive().args(["sync", "--wait", "--timeout", "120"]), Duration::from_secs(150));
        assert!(
            out.status.success(),
            "oxidrive sync failed: {}{}\nmount log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// `My Drive/Local`: the zero-config store's folder.
    pub fn local(&self) -> PathBuf {
        self.mnt.join("My Drive/Local")
    }

    /// The folder behind the zero-config store (plaintext only for `plain()` mounts).
    pub fn backing(&self) -> PathBuf {
        self.dir.path().join("data/oxidrive/local")
    }

    /// `backing()` if it holds plaintext (so a test can check it byte for byte), after
    /// waiting for every pending upload when mounted.
    pub fn plain_backing(&self) -> Option<PathBuf> {
        if self.plain && self.child.is_some() {
            self.sync();
        }
        self.plain.then(|| self.backing())
    }

    /// `backing()` once every change made so far is uploaded.
    pub fn synced_backing(&self) -> PathBuf {
        self.sync();
        self.backing()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts cleanly and waits for the process; panics if either fails.
    pub fn unmount(&mut self) {
        let out = self.oxidrive().arg("unmount").arg(&self.mnt).output().expect("run oxidrive unmount");
        assert!(out.status.success(), "unmount failed: {}\n{}", String::from_utf8_lossy(&out.stderr), self.log());
        let status = self.wait_exit(Duration::from_secs(30)).expect("oxidrive did not exit after unmount");
        assert!(status.success(), "oxidrive exited with {status}:\n{}", self.log());
    }

    /// Unmount and mount again with the same dirs.
    pub fn remount(&mut self) {
        self.unmount();
        self.spawn();
    }

    /// Sends a signal to our own child (by PID) and waits for it to exit.
    pub fn signal(&mut self, sig: nix::sys::signal::Signal) -> ExitStatus {
        self.send_signal(sig);
        self.wait_exit(Duration::from_secs(30)).expect("oxidrive did not exit after signal")
    }

    /// Sends a signal to our own child (by PID) without waiting.
    pub fn send_signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("kill");
    }

    /// Waits up to `timeout` for our child to exit; `None` if it is still running
    /// (or was never started).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let ok =
                Command::new("fusermount3").arg("-u").arg(&self.mnt).status().map(|s| s.success()).unwrap_or(false);
            if !ok {
                let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).status();
            }
        }
        if self.wait_exit(Duration::from_secs(10)).is_none()
            && let Some(child) = self.child.as_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        if let Some(keep) = std::env::var_os("OXIDRIVE_TEST_KEEP_LOGS") {
            self.keep_logs(Path::new(&keep));
        }
    }
}

impl TestMount {
    /// Copies the mount logs into `keep` (as `<temp dir name>-mount-N.log`) before the
    /// temp dir goes: `OXIDRIVE_TEST_KEEP_LOGS=DIR` when a failure needs the whole story.
    fn keep_logs(&self, keep: &Path) {
        let _ = std::fs::create_dir_all(keep);
        let tag = self.dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("mount-") && name.ends_with(".log") {
                let _ = std::fs::copy(entry.path(), keep.join(format!("{tag}-{name}")));
            }
        }
    }
}

pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Defines `mod $name { plain_store, default_store }`: two tests that call
/// `$name(m: TestMount)` with a `TestMount::plain()` and a `TestMount::start()` mount.
/// The body checks the backing folder through `m.plain_backing()`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn plain_store() {
                super::$name($crate::TestMount::plain())
            }
            #[test]
            fn default_store() {
                super::$name($crate::TestMount::start())
            }
        }
    )+};
}

/// Runs `cmd` to completion, killing it after `timeout` (then panicking): for commands
/// that must fail fast, so a wrong success cannot hang the suite.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} still running after {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The errno of a failed call; panics (naming `what`) if it succeeded.
pub fn errno_of<T: std::fmt::Debug>(what: &str, r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

/// Asserts `r` failed with `errno` (names both in the panic).
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(what: &str, r: io::Result<T>, errno: i32) {
    let got = errno_of(what, r);
    assert_eq!(
        got,
        errno,
        "{what}: expected {} ({errno}), got {} ({got})",
        io::Error::from_raw_os_error(errno),
        io::Error::from_raw_os_error(got)
    );
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path with NUL")
}

/// renameat2(2) with `flags` (RENAME_NOREPLACE, RENAME_EXCHANGE, ...).
pub fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
    let (f, t) = (cpath(from), cpath(to));
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// What a path holds, as a tree comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

/// Every entry below `root` (relative paths, not following symlinks) with its
/// kind and contents. An error names the path it came from.
pub fn snapshot(root: &Path) -> io::Result<BTreeMap<PathBuf, Node>> {
    fn at(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
        move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    }
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Node>) -> io::Result<()> {
        let dir = root.join(rel);
        for entry in std::fs::read_dir(&dir).map_err(at(&dir))? {
            let entry = entry.map_err(at(&dir))?;
            let rel = rel.join(entry.file_name());
            let path = root.join(&rel);
            let meta = std::fs::symlink_metadata(&path).map_err(at(&path))?;
            if meta.is_dir() {
                out.insert(rel.clone(), Node::Dir);
                walk(root, &rel, out)?;
            } else if meta.file_type().is_symlink() {
                out.insert(rel, Node::Symlink(std::fs::read_link(&path).map_err(at(&path))?));
            } else {
                let bytes = std::fs::read(&path).map_err(at(&path))?;
                if bytes.len() as u64 != meta.len() {
                    return Err(io::Error::other(format!(
                        "{}: stat says {} bytes, read gave {}",
                        path.display(),
                        meta.len(),
                        bytes.len()
                    )));
                }
                out.insert(rel, Node::File(bytes));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out)?;
    Ok(out)
}

/// The first difference between two snapshots, described for a panic message.
pub fn snapshot_diff(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>) -> Option<String> {
    fn short(n: Option<&Node>) -> String {
        match n {
            None => "missing".into(),
            Some(Node::Dir) => "dir".into(),
            Some(Node::Symlink(t)) => format!("symlink -> {}", t.display()),
            Some(Node::File(b)) => format!("file of {} bytes", b.len()),
        }
    }
    for key in a.keys().chain(b.keys()) {
        let (x, y) = (a.get(key), b.get(key));
        if x != y {
            let mut msg = format!("{}: {} vs {}", key.display(), short(x), short(y));
            if let (Some(Node::File(x)), Some(Node::File(y))) = (x, y)
                && let Some(i) = x.iter().zip(y.iter()).position(|(p, q)| p != q)
            {
                msg += &format!(" (first differing byte at offset {i}: {:#04x} vs {:#04x})", x[i], y[i]);
            }
            return Some(msg);
        }
    }
    None
}

/// Runs a command in `dir`, panicking with its output if it fails; returns stdout.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fills `root` (created) with a deterministic tree of about `files` files: nested
/// directories (some empty), sizes from 0 to ~300 KiB, a few executables, relative
/// symlinks (to files, to directories, dangling) and varied names. Returns the number
/// of entries made.
pub fn make_tree(root: &Path, seed: u64, files: usize) -> usize {
    use rand::{Rng, SeedableRng};
    use std::os::unix::fs::PermissionsExt;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    std::fs::create_dir_all(root).expect("tree root");
    let mut dirs = vec![PathBuf::new()];
    let mut made = 0;
    let names = ["src", "lib", "docs", "a b", "ünïcödé", "deep", "x.y.z", "-dash", "UPPER"];
    for i in 0..files {
        if rng.random_bool(0.15) {
            let parent = dirs[rng.random_range(0..dirs.len())].clone();
            let d = parent.join(format!("{}{i}", names[rng.random_range(0..names.len())]));
            std::fs::create_dir_all(root.join(&d)).expect("mkdir");
            dirs.push(d);
            made += 1;
        }
        let dir = dirs[rng.random_range(0..dirs.len())].clone();
        let rel = dir.join(format!("f{i}.{}", ["rs", "txt", "bin", "md"][i % 4]));
        let len = match rng.random_range(0..10) {
            0 => 0,
            1..=6 => rng.random_range(1..4096),
            7 | 8 => rng.random_range(4096..70_000),
            _ => rng.random_range(70_000..300_000),
        };
        let mut data = vec![0u8; len];
        rng.fill(&mut data[..]);
        let path = root.join(&rel);
        std::fs::write(&path, &data).expect("write");
        if rng.random_bool(0.1) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        made += 1;
        if rng.random_bool(0.08) {
            let target = rel.file_name().unwrap().to_owned();
            std::os::unix::fs::symlink(&target, root.join(dir.join(format!("link{i}")))).expect("symlink");
            made += 1;
        }
    }
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).expect("symlink");
    std::os::unix::fs::symlink(".", root.join("self-dir")).expect("symlink");
    std::fs::create_dir_all(root.join("empty/nested/dirs")).expect("mkdir");
    made + 5
}

/// The names in `dir`, sorted (lossy UTF-8).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `len` bytes of a recognisable pattern that differs per `seed` and never repeats
/// within 64 KiB, so misplaced blocks show up.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// Two devices on one encrypted local store named "Shared": two mounts with their own
/// config, state and cache dirs and the same passphrase, each started with `args`.
pub struct Devices {
    pub a: TestMount,
    pub b: TestMount,
    _store: tempfile::TempDir,
}

impl Devices {
    pub fn start(args: &[&str]) -> Self {
        let store = tempfile::tempdir().expect("store dir");
        let config =
            format!("[[provider]]\nname = \"Shared\"\ntype = \"local\"\npath = \"{}\"\n", store.path().display());
        let mount = |config: &str| {
            let mut m = TestMount::unstarted(Some(config));
            m.mount_args = args.iter().map(|a| a.to_string()).collect();
            m.mount();
            m
        };
        // One after the other: the first creates the store's vault, the second opens it.
        let a = mount(&config);
        let b = mount(&config);
        Devices { a, b, _store: store }
    }
}
