//! Real storage servers for provider tests, on 127.0.0.1 only: moto_server (S3),
//! `rclone serve webdav`, and a private sshd (SFTP). Each guard starts its server in
//! its own temp dir on a free port, waits until it listens, and on drop ends only the
//! processes it started (for sshd also its per-connection children). A missing
//! program fails the test with the package to install; nothing is skipped silently.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A port that was free a moment ago (the server binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A port that nothing listens on, for "unreachable provider" tests.
pub fn closed_port() -> u16 {
    free_port()
}

/// `program` on PATH (or at an absolute path), else a panic naming the package.
fn require(program: &str, package: &str) -> PathBuf {
    let found = if program.starts_with('/') {
        Path::new(program).exists().then(|| PathBuf::from(program))
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).find(|f| f.is_file()))
            .unwrap_or(None)
    };
    found.unwrap_or_else(|| {
        panic!("{program} is missing: install the Debian package `{package}` (scripts/test.sh installs it)")
    })
}

/// Waits until `port` accepts connections; panics with the server's log otherwise.
fn wait_listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} in 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ends our own child (SIGTERM, then SIGKILL), by PID.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn log_file(dir: &Path, name: &str) -> (PathBuf, std::fs::File) {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).expect("server log");
    (path, f)
}

/// The build's target dir (…/target), where the test venv lives.
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let bin = crate::oxidrive_bin();
    bin.parent().and_then(Path::parent).expect("target dir").to_owned()
}

/// `target/test-venv/bin/moto_server`, creating the venv (`python3 -m venv` and
/// `pip install 'moto[server]'`) the first time.
pub fn moto_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let venv = target_dir().join("test-venv");
        let bin = venv.join("bin/moto_server");
        if bin.exists() {
            return bin;
        }
        let python = require("python3", "python3-venv");
        let ok = Command::new(&python).args(["-m", "venv"]).arg(&venv).status().map(|s| s.success());
        assert!(
            matches!(ok, Ok(true)),
            "python3 -m venv {} failed: install the Debian package `python3-venv`",
            venv.display()
        );
        let out = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "moto[server]"])
            .output()
            .expect("run pip from the test venv");
        assert!(
            out.status.success() && bin.exists(),
            "pip install 'moto[server]' into {} failed:\n{}",
            venv.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
    .clone()
}

/// moto_server: an in-memory S3 on 127.0.0.1. Any access key works.
pub struct S3Server {
    pub endpoint: String,
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl S3Server {
    pub fn start() -> Self {
        let bin = moto_server_bin();
        let dir = tempfile::Builder::new().prefix("oxidrive-moto-").tempdir().expect("tempdir");
        let port = free_port();
        let (log, f) = log_file(dir.path(), "moto.log");
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("log"))
            .stderr(f)
            .spawn()
            .expect("spawn moto_server");
        wait_listening(port, &mut child, "moto_server", &log);
        Self { endpoint: format!("http://127.0.0.1:{port}"), port, _dir: dir, child }
    }

    /// Creates a bucket with an unsigned PUT (moto accepts it). A just-started moto
    /// under load has reset the first connection (seen in CI), so a failed exchange is
    /// retried for a few seconds; any answer but 200 still fails at once.
    pub fn create_bucket(&self, bucket: &str) {
        let exchange = || -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
            write!(
                s,
                "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.port
            )?;
            let mut resp = String::new();
            s.read_to_string(&mut resp)?;
            Ok(resp)
        };
        let mut tries = 0;
        let resp = loop {
            match exchange() {
                Ok(resp) => break resp,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("create bucket {bucket}: {e}; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("create bucket {bucket}: moto did not answer: {e}"),
            }
        };
        // A retry after a lost answer finds the bucket made by the first try.
        let made_before = tries > 0 && resp.contains("BucketAlreadyOwnedByYou");
        assert!(
            resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200") || made_before,
            "create bucket {bucket}: {resp}"
        );
    }

    /// Stores one object with an unsigned PUT, as another client would have.
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let mut path = String::new();
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                path.push(b as char);
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect moto");
        write!(
            s,
            "PUT /{bucket}/{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .expect("send");
        s.write_all(body).expect("send body");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read moto response");
        assert!(resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"), "put {key}: {resp}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// `rclone serve webdav` of a temp folder, with basic auth.
pub struct WebdavServer {
    pub endpoint: String,
    pub user: String,
    pub pass: String,
    /// The folder served: what reached the provider.
    pub data: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl WebdavServer {
    pub fn start() -> Self {
        Self::start_with("tester", "webdav-test-password")
    }

    pub fn start_with(user: &str, pass: &str) -> Self {
        let rclone = require("rclone", "rclone");
        let dir = tempfile::Builder::new().prefix("oxidrive-dav-").tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let conf = dir.path().join("rclone.conf");
        std::fs::write(&conf, "").expect("rclone.conf");
        let port = free_port();
        let (log, f) = log_file(dir.path(), "rclone.log");
        let mut child = Command::new(rclone)
            .args(["serve", "webdav"])
            .arg(&data)
            .args(["--addr", &format!("127.0.0.1:{port}"), "--user", user, "--pass", pass])
            .arg("--config")
            .arg(&conf)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("log"))
            .stderr(f)
            .spawn()
            .expect("spawn rclone");
        wait_listening(port, &mut child, "rclone serve webdav", &log);
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            user: user.into(),
            pass: pass.into(),
            data,
            _dir: dir,
            child,
        }
    }
}

impl Drop for WebdavServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A private sshd with its own host key, client key and authorized_keys, serving
/// `internal-sftp`. Clients reach it through the `ssh` wrapper of [`ssh_wrapper_dir`],
/// which is put first on this process's PATH.
pub struct SftpServer {
    /// `ssh://127.0.0.1:PORT`
    pub endpoint: String,
    pub user: String,
    /// Private key that logs in.
    pub key: PathBuf,
    /// An absolute folder on the server for the provider's root.
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl SftpServer {
    pub fn start() -> Self {
        let sshd = require("/usr/sbin/sshd", "openssh-server");
        let keygen = require("ssh-keygen", "openssh-client");
        let wrapper = ssh_wrapper_dir();
        let dir = tempfile::Builder::new().prefix("oxidrive-sshd-").tempdir().expect("tempdir");
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let out = Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "oxidrive-test", "-f"])
                .arg(d.join(key))
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let root = d.join("root");
        std::fs::create_dir_all(&root).expect("sftp root");
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("current user name");
        if nix::unistd::geteuid().is_root() {
            // sshd refuses to start as root without its privilege separation dir.
            std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        }
        let port = free_port();
        let cfg = d.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
                 UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
                 Subsystem sftp internal-sftp\nLogLevel ERROR\nMaxSessions 64\nMaxStartups 64\n",
                hk = d.join("host_key").display(),
                pid = d.join("sshd.pid").display(),
                ak = d.join("authorized_keys").display(),
            ),
        )
        .expect("sshd_config");
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("host_key.pub");
        let mut kh = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(wrapper.join("known_hosts"))
            .expect("known_hosts");
        let mut fields = host_pub.split_whitespace();
        let (kt, kb) = (fields.next().expect("key type"), fields.next().expect("key"));
        writeln!(kh, "[127.0.0.1]:{port} {kt} {kb}").expect("known_hosts line");
        let (log, f) = log_file(d, "sshd.log");
        drop(f);
        let mut child = Command::new(sshd)
            .arg("-D")
            .arg("-f")
            .arg(&cfg)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        wait_listening(port, &mut child, "sshd", &log);
        Self { endpoint: format!("ssh://127.0.0.1:{port}"), user, key: d.join("client_key"), root, _dir: dir, child }
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        // sshd's per-connection children (they call setsid, so they leave our process
        // group) first: ending them ends the client's ControlMaster too, which OpenDAL
        // starts with ControlPersist=yes and never closes when a process just exits.
        let me = self.child.id() as i32;
        for pid in children_of(me) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        stop(&mut self.child);
    }
}

/// PIDs whose parent is `parent` (from /proc).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name (which may hold spaces) start after ')'.
        let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
    .collect()
}

/// A folder holding an `ssh` wrapper (`ssh -F <private ssh_config>`) and the private
/// `known_hosts`, put first on this process's PATH once, so the ssh that OpenDAL's
/// sftp service runs (in the mount, a child of this process) never reads or writes
/// `~/.ssh`. Shared by every sshd of this test process; each adds its host key.
pub fn ssh_wrapper_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let ssh = require("ssh", "openssh-client");
        let base = target_dir().join("test-ssh");
        // Wrappers of earlier test processes that have ended.
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let pid = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("wrapper dir");
        let cfg = dir.join("ssh_config");
        std::fs::write(
            &cfg,
            format!(
                "Host *\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n\
                 \x20 UpdateHostKeys no\n  PasswordAuthentication no\n  KbdInteractiveAuthentication no\n\
                 \x20 BatchMode yes\n  LogLevel ERROR\n",
                kh = dir.join("known_hosts").display()
            ),
        )
        .expect("ssh_config");
        std::fs::write(dir.join("known_hosts"), "").expect("known_hosts");
        let wrapper = dir.join("ssh");
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {} -F {} \"$@\"\n", ssh.display(), cfg.display()))
            .expect("ssh wrapper");
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        let joined = std::env::join_paths(dirs).expect("PATH");
        // SAFETY: std serialises its own environment access (Command::spawn takes the
        // same lock); test threads do not call C getenv concurrently with this one-time
        // write. Children (the mounts) inherit the new PATH.
        unsafe { std::env::set_var("PATH", joined) };
        dir
    })
    .clone()
}
