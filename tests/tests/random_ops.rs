//! Randomized differential test: the same seeded sequence of file operations runs on
//! a folder in the mount and on a plain temp folder; after every step the result of
//! the operation (bytes read, or errno) and the whole tree (names, kinds, sizes, bytes)
//! must be the same on both.
//!
//! Offline (`random_ops_offline`), on S3 behind a fault proxy: half the steps online,
//! half with the provider unreachable, where an operation may also fail with `EIO` at
//! its first step (the documented offline limits), and must then change nothing (so
//! may any operation with `ENAMETOOLONG`, a path too long for the provider). Once
//! the provider is back, a fresh mount must see exactly the reference tree.
//!
//! `OXIDRIVE_SEED=N` replays one seed, `OXIDRIVE_RANDOM_STEPS=N` makes runs longer,
//! `OXIDRIVE_RANDOM_LOG=1` prints every operation and its result, and on a failure the whole mount log.
//! Seeds in `tests/regressions/random_ops.seeds` always run first (with their own
//! step count if the file gives one). `OXIDRIVE_TEST_MOUNT_ARGS="--poll 0.3"` makes the
//! poller race every step (it found the `readdirplus` race of
//! `vfs/tests/core.rs::an_entry_forgotten_between_listing_and_reply_is_sent_with_a_known_node`).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use oxidrive_tests::faults::{Fault, FaultProxy};
use oxidrive_tests::servers::S3Server;
use oxidrive_tests::{Node, TestMount, snapshot, snapshot_diff};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DEFAULT_STEPS: usize = 400;
const MAX_HANDLES: usize = 3;
/// Times set by `SetMtime` are from here on; anything written since is far later.
const OLD_TIME: i64 = 1_000_000_000;
const NAMES: [&str; 7] = ["a", "b", "c", "d", "e.txt", "f g", "ü"];

#[derive(Clone)]
enum Op {
    Create {
        path: PathBuf,
        data: Vec<u8>,
        excl: bool,
    },
    WriteAt {
        path: PathBuf,
        offset: u64,
        data: Vec<u8>,
    },
    Append {
        path: PathBuf,
        data: Vec<u8>,
    },
    Truncate {
        path: PathBuf,
        len: u64,
    },
    Read {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Unlink {
        path: PathBuf,
    },
    Mkdir {
        path: PathBuf,
    },
    Rmdir {
        path: PathBuf,
    },
    Symlink {
        path: PathBuf,
        target: String,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
    },
    /// Sets an mtime long past, which later writes replace and renames keep.
    SetMtime {
        path: PathBuf,
        secs: i64,
    },
    /// Open, read, unlink, read again, write more, read back, close.
    OpenUnlinkRead {
        path: PathBuf,
        extra: Vec<u8>,
    },
    /// Descriptors that stay open across steps.
    Open {
        path: PathBuf,
    },
    HandleWrite {
        idx: usize,
        offset: u64,
        data: Vec<u8>,
    },
    HandleRead {
        idx: usize,
    },
    HandleTruncate {
        idx: usize,
        len: u64,
    },
    HandleSync {
        idx: usize,
    },
    Close {
        idx: usize,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |data: &[u8]| format!("{} bytes {:02x?}..", data.len(), &data[..data.len().min(4)]);
        match self {
            Op::Create { path, data, excl } => {
                write!(f, "create{} {} <- {}", if *excl { " O_EXCL" } else { "" }, path.display(), d(data))
            }
            Op::WriteAt { path, offset, data } => write!(f, "pwrite {} @{offset} <- {}", path.display(), d(data)),
            Op::Append { path, data } => write!(f, "append {} <- {}", path.display(), d(data)),
            Op::Truncate { path, len } => write!(f, "truncate {} to {len}", path.display()),
            Op::Read { path } => write!(f, "read {}", path.display()),
            Op::Rename { from, to } => write!(f, "rename {} -> {}", from.display(), to.display()),
            Op::Unlink { path } => write!(f, "unlink {}", path.display()),
            Op::Mkdir { path } => write!(f, "mkdir {}", path.display()),
            Op::Rmdir { path } => write!(f, "rmdir {}", path.display()),
            Op::Symlink { path, target } => write!(f, "symlink {} -> {target}", path.display()),
            Op::Chmod { path, mode } => write!(f, "chmod {mode:o} {}", path.display()),
            Op::SetMtime { path, secs } => write!(f, "set mtime {secs} {}", path.display()),
            Op::OpenUnlinkRead { path, extra } => {
                write!(f, "open+unlink+read+write {} <- {}", path.display(), d(extra))
            }
            Op::Open { path } => write!(f, "open O_RDWR {} as handle", path.display()),
            Op::HandleWrite { idx, offset, data } => write!(f, "handle {idx}: pwrite @{offset} <- {}", d(data)),
            Op::HandleRead { idx } => write!(f, "handle {idx}: fstat + read all"),
            Op::HandleTruncate { idx, len } => write!(f, "handle {idx}: ftruncate {len}"),
            Op::HandleSync { idx } => write!(f, "handle {idx}: fsync"),
            Op::Close { idx } => write!(f, "handle {idx}: close"),
        }
    }
}

/// What an operation returned: bytes it read, or the stage it failed at and errno.
type Outcome = Result<Vec<u8>, (u8, i32)>;

fn errno(stage: u8) -> impl Fn(std::io::Error) -> (u8, i32) {
    move |e| (stage, e.raw_os_error().unwrap_or_else(|| panic!("stage {stage}: error without errno: {e}")))
}

/// close(2) with its result (dropping a File ignores it; the mount uploads on close).
fn close(f: File) -> Result<(), std::io::Error> {
    let fd = f.into_raw_fd();
    if unsafe { libc::close(fd) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

fn read_all(f: &File) -> Result<Vec<u8>, std::io::Error> {
    let len = f.metadata()?.len();
    let mut out = len.to_le_bytes().to_vec();
    let mut buf = vec![0u8; len as usize];
    let mut at = 0;
    while at < buf.len() {
        let n = f.read_at(&mut buf[at..], at as u64)?;
        if n == 0 {
            break;
        }
        at += n;
    }
    buf.truncate(at);
    out.extend_from_slice(&buf);
    Ok(out)
}

fn apply(root: &Path, op: &Op, handles: &mut Vec<File>) -> Outcome {
    let p = |rel: &Path| root.join(rel);
    match op {
        Op::Create { path, data, excl } => {
            let mut o = OpenOptions::new();
            o.write(true);
            if *excl {
                o.create_new(true)
            } else {
                o.create(true).truncate(true)
            };
            let mut f = o.open(p(path)).map_err(errno(0))?;
            f.write_all(data).map_err(errno(1))?;
            close(f).map_err(errno(2))?;
            Ok(vec![])
        }
        Op::WriteAt { path, offset, data } => {
            let f = OpenOptions::new().write(true).open(p(path)).map_err(errno(0))?;
            f.write_all_at(data, *offset).map_err(errno(1))?;
            close(f).map_err(errno(2))?;
            Ok(vec![])
        }
        Op::Append { path, data } => {
            let mut f = OpenOptions::new().append(true).open(p(path)).map_err(errno(0))?;
            f.write_all(data).map_err(errno(1))?;
            close(f).map_err(errno(2))?;
            Ok(vec![])
        }
        Op::Truncate { path, len } => {
            nix::unistd::truncate(&p(path), *len as i64).map_err(|e| (0, e as i32))?;
            Ok(vec![])
        }
        Op::Read { path } => {
            let mut f = File::open(p(path)).map_err(errno(0))?;
            let mut out = Vec::new();
            f.read_to_end(&mut out).map_err(errno(1))?;
            Ok(out)
        }
        Op::Rename { from, to } => fs::rename(p(from), p(to)).map(|_| vec![]).map_err(errno(0)),
        Op::Unlink { path } => fs::remove_file(p(path)).map(|_| vec![]).map_err(errno(0)),
        Op::Mkdir { path } => fs::create_dir(p(path)).map(|_| vec![]).map_err(errno(0)),
        Op::Rmdir { path } => fs::remove_dir(p(path)).map(|_| vec![]).map_err(errno(0)),
        Op::Symlink { path, target } => std::os::unix::fs::symlink(target, p(path)).map(|_| vec![]).map_err(errno(0)),
        Op::Chmod { path, mode } => {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(p(path), fs::Permissions::from_mode(*mode)).map(|_| vec![]).map_err(errno(0))
        }
        Op::SetMtime { path, secs } => filetime::set_file_mtime(p(path), filetime::FileTime::from_unix_time(*secs, 0))
            .map(|_| vec![])
            .map_err(errno(0)),
        Op::OpenUnlinkRead { path, extra } => {
            let f = OpenOptions::new().read(true).write(true).open(p(path)).map_err(errno(0))?;
            let mut out = read_all(&f).map_err(errno(1))?;
            fs::remove_file(p(path)).map_err(errno(2))?;
            out.extend(read_all(&f).map_err(errno(3))?);
            let end = f.metadata().map_err(errno(4))?.len();
            f.write_all_at(extra, end).map_err(errno(5))?;
            out.extend(read_all(&f).map_err(errno(6))?);
            close(f).map_err(errno(7))?;
            Ok(out)
        }
        Op::Open { path } => {
            let f = OpenOptions::new().read(true).write(true).open(p(path)).map_err(errno(0))?;
            handles.push(f);
            Ok(vec![])
        }
        Op::HandleWrite { idx, offset, data } => {
            handles[*idx].write_all_at(data, *offset).map(|_| vec![]).map_err(errno(0))
        }
        Op::HandleRead { idx } => read_all(&handles[*idx]).map_err(errno(0)),
        Op::HandleTruncate { idx, len } => handles[*idx].set_len(*len).map(|_| vec![]).map_err(errno(0)),
        Op::HandleSync { idx } => handles[*idx].sync_all().map(|_| vec![]).map_err(errno(0)),
        Op::Close { idx } => close(handles.remove(*idx)).map(|_| vec![]).map_err(errno(0)),
    }
}

/// Chooses the next operation from the reference tree's current state.
struct Gen {
    rng: ChaCha8Rng,
}

impl Gen {
    fn data(&mut self) -> Vec<u8> {
        let len = match self.rng.random_range(0..20) {
            0 => 0,
            1..=14 => self.rng.random_range(1..6000),
            15..=18 => self.rng.random_range(6000..70_000),
            _ => self.rng.random_range(70_000..300_000),
        };
        let mut v = vec![0u8; len];
        self.rng.fill(&mut v[..]);
        v
    }

    fn offset(&mut self, size: u64) -> u64 {
        match self.rng.random_range(0..10) {
            0 => 0,
            1..=6 => self.rng.random_range(0..=size),
            7 | 8 => size + self.rng.random_range(1..20_000),
            _ => self.rng.random_range(0..3 << 20),
        }
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() { None } else { Some(&v[self.rng.random_range(0..v.len())]) }
    }

    /// An existing entry, preferring the wanted kind; sometimes a new name.
    fn path(&mut self, tree: &Tree, want: Kind) -> PathBuf {
        let preferred: Vec<&PathBuf> = tree.entries.iter().filter(|(_, k)| *k == want).map(|(p, _)| p).collect();
        let any: Vec<&PathBuf> = tree.entries.iter().map(|(p, _)| p).collect();
        match self.rng.random_range(0..10) {
            0..=7 if !preferred.is_empty() => self.pick(&preferred).unwrap().to_path_buf(),
            8 if !any.is_empty() => self.pick(&any).unwrap().to_path_buf(),
            _ => self.new_path(tree),
        }
    }

    fn new_path(&mut self, tree: &Tree) -> PathBuf {
        let dirs: Vec<PathBuf> = std::iter::once(PathBuf::new())
            .chain(tree.entries.iter().filter(|(_, k)| *k == Kind::Dir).map(|(p, _)| p.clone()))
            .collect();
        let dir = self.pick(&dirs).unwrap().clone();
        dir.join(NAMES[self.rng.random_range(0..NAMES.len())])
    }

    fn size_of(tree: &Tree, path: &Path) -> u64 {
        tree.sizes.iter().find(|(p, _)| p == path).map_or(0, |(_, s)| *s)
    }

    fn op(&mut self, tree: &Tree, handles: usize) -> Op {
        loop {
            let op = match self.rng.random_range(0..120) {
                0..=15 => {
                    Op::Create { path: self.path(tree, Kind::File), data: self.data(), excl: self.rng.random_bool(0.2) }
                }
                16..=26 => {
                    let path = self.path(tree, Kind::File);
                    let offset = self.offset(Self::size_of(tree, &path));
                    Op::WriteAt { path, offset, data: self.data() }
                }
                27..=31 => Op::Append { path: self.path(tree, Kind::File), data: self.data() },
                32..=39 => {
                    let path = self.path(tree, Kind::File);
                    let len = self.offset(Self::size_of(tree, &path));
                    Op::Truncate { path, len }
                }
                40..=43 => Op::Read { path: self.path(tree, Kind::File) },
                44..=57 => {
                    let want = if self.rng.random_bool(0.6) { Kind::File } else { Kind::Dir };
                    let from = self.path(tree, want);
                    let to = if self.rng.random_bool(0.7) { self.new_path(tree) } else { self.path(tree, want) };
                    Op::Rename { from, to }
                }
                58..=62 => Op::Unlink { path: self.path(tree, Kind::File) },
                63..=69 => {
                    let path = if self.rng.random_bool(0.8) { self.new_path(tree) } else { self.path(tree, Kind::Dir) };
                    Op::Mkdir { path }
                }
                70..=77 => Op::Rmdir { path: self.path(tree, Kind::Dir) },
                110..=113 => {
                    let (path, dir) = if self.rng.random_bool(0.7) {
                        (self.path(tree, Kind::File), false)
                    } else {
                        (self.path(tree, Kind::Dir), true)
                    };
                    let modes: &[u32] = if dir { &[0o700, 0o755, 0o750] } else { &[0o600, 0o644, 0o755, 0o640, 0o444] };
                    Op::Chmod { path, mode: modes[self.rng.random_range(0..modes.len())] }
                }
                114..=119 => {
                    let path = self.path(tree, Kind::File);
                    Op::SetMtime { path, secs: OLD_TIME + self.rng.random_range(0..1_000_000) }
                }
                78..=80 => {
                    let target = if self.rng.random_bool(0.8) {
                        NAMES[self.rng.random_range(0..NAMES.len())]
                    } else {
                        "nowhere/x"
                    };
                    Op::Symlink { path: self.new_path(tree), target: target.to_owned() }
                }
                81..=84 => Op::OpenUnlinkRead { path: self.path(tree, Kind::File), extra: self.data() },
                85..=88 if handles < MAX_HANDLES => Op::Open { path: self.path(tree, Kind::File) },
                89..=95 if handles > 0 => {
                    let idx = self.rng.random_range(0..handles);
                    let offset = self.offset(50_000);
                    Op::HandleWrite { idx, offset, data: self.data() }
                }
                96..=99 if handles > 0 => Op::HandleRead { idx: self.rng.random_range(0..handles) },
                100..=101 if handles > 0 => {
                    let idx = self.rng.random_range(0..handles);
                    Op::HandleTruncate { idx, len: self.offset(50_000) }
                }
                102..=103 if handles > 0 => Op::HandleSync { idx: self.rng.random_range(0..handles) },
                104..=109 if handles > 0 => Op::Close { idx: self.rng.random_range(0..handles) },
                _ => continue,
            };
            return op;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// The reference tree, as the generator sees it.
struct Tree {
    entries: Vec<(PathBuf, Kind)>,
    sizes: Vec<(PathBuf, u64)>,
}

impl Tree {
    fn of(snap: &std::collections::BTreeMap<PathBuf, Node>) -> Self {
        let mut entries = Vec::new();
        let mut sizes = Vec::new();
        for (p, n) in snap {
            let kind = match n {
                Node::Dir => Kind::Dir,
                Node::File(b) => {
                    sizes.push((p.clone(), b.len() as u64));
                    Kind::File
                }
                Node::Symlink(_) => Kind::Symlink,
            };
            entries.push((p.clone(), kind));
        }
        Tree { entries, sizes }
    }
}

struct Run {
    seed: u64,
    steps: usize,
    log: Vec<String>,
    mount_log: String,
    gen_: Gen,
    tree: Tree,
    /// Open descriptors: in the mount, in the reference.
    hm: Vec<File>,
    hr: Vec<File>,
}

impl Run {
    fn new(seed: u64, steps: usize) -> Self {
        Run {
            seed,
            steps,
            log: Vec::new(),
            mount_log: String::new(),
            gen_: Gen { rng: ChaCha8Rng::seed_from_u64(seed) },
            tree: Tree { entries: vec![], sizes: vec![] },
            hm: Vec::new(),
            hr: Vec::new(),
        }
    }

    /// Runs steps `range` on both roots, comparing after each. `offline`: an `EIO` from
    /// the mount at an operation's first step is a refusal: the reference is left
    /// alone, and the trees must still be the same.
    fn steps_on(
        &mut self,
        m: &TestMount,
        mnt_root: &Path,
        ref_root: &Path,
        range: std::ops::Range<usize>,
        offline: bool,
    ) {
        for step in range {
            let op = self.gen_.op(&self.tree, self.hr.len());
            let a = apply(mnt_root, &op, &mut self.hm);
            // A path longer than the provider takes (an S3 key holds 1024 bytes; names
            // grow when encrypted) is refused at once, as SEMANTICS.md says; so is what
            // needs the provider while offline, also an open+unlink's unlink (opening and
            // reading before it changed nothing).
            let unlink_refused = matches!(op, Op::OpenUnlinkRead { .. }) && a == Err((2, libc::EIO));
            let refused =
                (offline && (a == Err((0, libc::EIO)) || unlink_refused)) || a == Err((0, libc::ENAMETOOLONG));
            let b = if refused { a.clone() } else { apply(ref_root, &op, &mut self.hr) };
            let mark = if refused { "  (refused)" } else { "" };
            self.log.push(format!("{step}: {op}  =>  {} | {}{mark}", short(&a), short(&b)));
            if a != b {
                let detail = match (&a, &b) {
                    (Ok(x), Ok(y)) => {
                        let i = x.iter().zip(y.iter()).position(|(p, q)| p != q).unwrap_or(x.len().min(y.len()));
                        format!("read {} vs {} bytes, first difference at byte {i}", x.len(), y.len())
                    }
                    _ => format!("{} vs {}", short(&a), short(&b)),
                };
                self.mount_log = m.log();
                self.fail(step, format!("`{op}` returned differently: {detail}"));
            }
            if self.hm.len() != self.hr.len() {
                self.fail(step, "open handles differ".into());
            }
            let sm = match snapshot(mnt_root) {
                Ok(sm) => sm,
                Err(e) => {
                    self.mount_log = m.log();
                    self.fail(step, format!("after `{op}` walking the mount: {e}"))
                }
            };
            let sr = snapshot(ref_root).unwrap_or_else(|e| self.fail(step, format!("walking the reference: {e}")));
            if let Some(d) = snapshot_diff(&sm, &sr) {
                self.mount_log = m.log();
                self.fail(step, format!("after `{op}` the trees differ (mount vs reference): {d}"));
            }
            if let Some(d) = meta_diff(mnt_root, ref_root) {
                self.mount_log = m.log();
                self.fail(step, format!("after `{op}` the metadata differs (mount vs reference): {d}"));
            }
            self.tree = Tree::of(&sr);
        }
    }

    fn close_all(&mut self, mnt_root: &Path, ref_root: &Path) {
        while !self.hr.is_empty() {
            let op = Op::Close { idx: 0 };
            let (a, b) = (apply(mnt_root, &op, &mut self.hm), apply(ref_root, &op, &mut self.hr));
            if a != b {
                self.fail(self.steps, format!("final close: {} vs {}", short(&a), short(&b)));
            }
        }
    }

    fn report(&self) {
        if std::env::var_os("OXIDRIVE_RANDOM_LOG").is_some() {
            self.log.iter().for_each(|l| eprintln!("  {l}"));
        }
        let mut by_op: std::collections::BTreeMap<&str, (usize, usize, usize)> = Default::default();
        for l in &self.log {
            let kind = l.split_whitespace().nth(1).unwrap_or("?");
            let kind = if kind == "handle" { l.split_whitespace().nth(3).unwrap_or("?") } else { kind };
            let e = by_op.entry(kind).or_default();
            e.0 += 1;
            e.1 += l.contains("=>  stage") as usize;
            e.2 += l.contains("(refused)") as usize;
        }
        eprintln!(
            "random_ops: seed {} passed; final tree {} entries; op: (done, failed, of which refused) {by_op:?}",
            self.seed,
            self.tree.entries.len()
        );
    }

    fn fail(&self, step: usize, what: String) -> ! {
        let keep = if std::env::var_os("OXIDRIVE_RANDOM_LOG").is_some() { usize::MAX } else { 40 };
        let tail: Vec<&String> = self.log.iter().rev().take(keep).collect::<Vec<_>>().into_iter().rev().collect();
        let ops: String = tail.iter().map(|s| format!("\n  {s}")).collect();
        panic!(
            "random_ops: seed {seed} failed at step {step} of {steps}: {what}\n\
             last operations (mount result | reference result):{ops}\n\
             replay: OXIDRIVE_SEED={seed} OXIDRIVE_RANDOM_STEPS={steps} cargo test -p oxidrive-tests --test random_ops\n\
             keep it: add `{seed}` to tests/regressions/random_ops.seeds\n\
             mount log:\n{log}",
            seed = self.seed,
            steps = self.steps,
            log = self
                .mount_log
                .lines()
                .rev()
                .take(if keep == usize::MAX { usize::MAX } else { 30 })
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

fn short(o: &Outcome) -> String {
    match o {
        Ok(v) if v.is_empty() => "ok".into(),
        Ok(v) => format!("ok, {} bytes", v.len()),
        Err((stage, e)) => format!("stage {stage}: {}", std::io::Error::from_raw_os_error(*e)),
    }
}

/// Runs one seed on a fresh folder in `m` and in a temp dir. `plain`: `m` stores
/// plaintext, so the backing folder is compared too.
fn run_seed(m: &mut TestMount, plain: bool, seed: u64, steps: usize) {
    eprintln!("random_ops: seed {seed}, {steps} steps");
    let ref_dir = tempfile::tempdir().unwrap();
    let name = format!("rnd-{seed}-{}", oxidrive_tests::names(&m.local()).len());
    let (mnt_root, ref_root) = (m.local().join(&name), ref_dir.path().join(&name));
    fs::create_dir(&mnt_root).unwrap();
    fs::create_dir(&ref_root).unwrap();
    let mut run = Run::new(seed, steps);
    run.steps_on(m, &mnt_root, &ref_root, 0..steps, false);
    run.report();
    // Closing everything uploads it: the backing folder must then hold the same tree
    // (symlinks are stored as files holding their target).
    run.close_all(&mnt_root, &ref_root);
    let sr = snapshot(&ref_root).unwrap();
    if plain {
        compare_backing(m, &mut run, &name, &sr);
    }
    // And the mount shows the same after a remount.
    m.remount();
    let sm = snapshot(&m.local().join(&name)).unwrap();
    if let Some(d) = snapshot_diff(&sm, &sr) {
        run.mount_log = m.log();
        run.fail(steps, format!("after remount the trees differ: {d}"));
    }
}

fn compare_backing(m: &TestMount, run: &mut Run, name: &str, sr: &std::collections::BTreeMap<PathBuf, Node>) {
    let stored: std::collections::BTreeMap<PathBuf, Node> = sr
        .iter()
        .map(|(p, n)| match n {
            Node::Symlink(t) => (p.clone(), Node::File(t.as_os_str().as_encoded_bytes().to_vec())),
            n => (p.clone(), n.clone()),
        })
        .collect();
    let sb = snapshot(&m.synced_backing().join(name)).unwrap();
    if let Some(d) = snapshot_diff(&sb, &stored) {
        run.mount_log = m.log();
        run.fail(run.steps, format!("backing folder differs from the reference after closing all files: {d}"));
    }
}

/// Modes of files and directories, and file mtimes where either side holds a time set
/// by `SetMtime` (other mtimes are "now" on both sides, a few microseconds apart).
fn meta_diff(mnt: &Path, reference: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, rel: &Path, out: &mut std::collections::BTreeMap<PathBuf, (bool, u32, i64)>) {
        for e in fs::read_dir(root.join(rel)).unwrap() {
            let rel = rel.join(e.unwrap().file_name());
            let m = fs::symlink_metadata(root.join(&rel)).unwrap();
            if m.file_type().is_symlink() {
                continue;
            }
            out.insert(rel.clone(), (m.is_dir(), m.mode() & 0o7777, m.mtime()));
            if m.is_dir() {
                walk(root, &rel, out);
            }
        }
    }
    let (mut a, mut b) = (Default::default(), Default::default());
    walk(mnt, Path::new(""), &mut a);
    walk(reference, Path::new(""), &mut b);
    for (path, &(dir, mode, mtime)) in &a {
        let &(_, rmode, rtime) = b.get(path)?;
        if mode != rmode {
            return Some(format!("{}: mode {mode:o} vs {rmode:o}", path.display()));
        }
        let old = |t: i64| t < OLD_TIME + 2_000_000;
        if !dir && (old(mtime) || old(rtime)) && mtime != rtime {
            return Some(format!("{}: mtime {mtime} vs {rtime}", path.display()));
        }
    }
    None
}

fn regression_seeds() -> Vec<(u64, Option<usize>)> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/random_ops.seeds");
    let text = fs::read_to_string(&file).unwrap_or_default();
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let seed =
                words.next().unwrap().parse().unwrap_or_else(|e| panic!("{}: bad seed {l:?}: {e}", file.display()));
            let steps =
                words.next().map(|s| s.parse().unwrap_or_else(|e| panic!("{}: bad steps {l:?}: {e}", file.display())));
            (seed, steps)
        })
        .collect()
}

fn run_all(mut m: TestMount, plain: bool) {
    let steps = std::env::var("OXIDRIVE_RANDOM_STEPS")
        .ok()
        .map_or(DEFAULT_STEPS, |s| s.parse().expect("OXIDRIVE_RANDOM_STEPS"));
    let seed =
        std::env::var("OXIDRIVE_SEED").ok().map_or_else(|| rand::rng().random(), |s| s.parse().expect("OXIDRIVE_SEED"));
    for (s, n) in regression_seeds() {
        run_seed(&mut m, plain, s, n.unwrap_or(steps));
    }
    run_seed(&mut m, plain, seed, steps);
}

/// On a plain store, where the backing folder must end up equal to the reference too.
#[test]
fn random_ops_on_a_plain_store() {
    run_all(TestMount::plain(), true);
}

/// On the zero-config store (encrypted in builds that encrypt).
#[test]
fn random_ops_on_the_default_store() {
    run_all(TestMount::start(), false);
}

/// Symlinks as a fresh device may show them: a provider holds a symlink as a file
/// holding its target.
fn symlinks_as_files(snap: &std::collections::BTreeMap<PathBuf, Node>) -> std::collections::BTreeMap<PathBuf, Node> {
    snap.iter()
        .map(|(p, n)| match n {
            Node::Symlink(t) => (p.clone(), Node::File(t.as_os_str().as_encoded_bytes().to_vec())),
            n => (p.clone(), n.clone()),
        })
        .collect()
}

/// Seeds that once failed `random_ops_offline`: they run first, every time.
/// 15469272657832429347: offline, `rename` of a folder over an empty one made offline
/// removed that one, then failed with EIO.
/// 10879173096186390723 (600 steps): a folder renamed offline took along the changes
/// of a file deleted in it; a folder made offline over a deleted file was listed as
/// that file (the kernel then gives EIO).
/// 1428717364193948290 (700 steps): a made folder renamed where its contents' paths
/// grew too long for S3; their uploads then failed for good.
/// 7349775917734781442 (300 steps): a folder renamed over a folder made where one was
/// deleted, refused offline, brought the deleted one back, unlisted (EIO).
/// 12816014839252939198 (500 steps): a folder renamed offline took along a made
/// folder deleted inside it (kept for what was deleted in it), which showed again.
/// 14532374495091252538 (700 steps): a deleted file's tombstone missed the version its
/// pending change started from (sync never finished), and a file deleted inside a
/// folder made over a deleted file came back once that file reached the Trash.
/// 11300748527454092258 (700 steps): a file renamed offline onto a deleted name, then
/// deleted: its tombstone took the deleted one's place, and its upload became a
/// conflict copy beside that one.
/// 356921765496619473 (700 steps): a symlink made over a deleted made folder (kept
/// for what was deleted in it) was listed as that folder; the kernel then gave EIO.
/// 14461925598309238489 (1000 steps): a folder renamed over an empty folder to a path
/// too long for S3: the target was deleted, then the rename refused (ENAMETOOLONG).
/// 4041520516562294832 (800 steps): offline, a folder the journal cannot rename (it
/// holds a new name over a deleted one) renamed over an empty made folder: the target
/// was dropped, then the rename refused (EIO).
/// 7421962350426021338 (800 steps): a symlink renamed offline off a deleted name took
/// that name's tombstone along in the index (not in memory): after a remount the new
/// name was hidden. Also an open+unlink whose unlink is refused offline (EIO).
/// 5314294349791968343 (1000 steps): a new file renamed over an uploaded one had no
/// base; deleted, its tombstone knew no version, and a folder made there later waited
/// forever behind the old object (sync never finished).
/// 5869407643495974090 (1000 steps): a folder renamed on S3 (objects copied, new
/// mtimes) kept the old versions below it: a file renamed away in the journal came back.
/// 13159117129891959831 (1000 steps): offline, a folder made over a deleted one renamed
/// over an empty made folder: the target was dropped, then the rename refused (EIO).
/// 1822305675153263552 (1000 steps): offline, `mkdir d/c` where a folder was renamed
/// away, inside `d` deleted and made again: made in the journal, yet hidden (ENOENT).
/// 5090522168474119025 (1000 steps): offline, a folder made over a deleted one, then
/// deleted: its tombstone took the place of the old one's, which stayed on the provider.
/// 1214443163381241205 (1000 steps): offline, a file renamed over a deleted made folder
/// (kept for the deleted files in it): the folder left memory, not the index, and came
/// back at the file's path after a remount (sync never finished).
/// 14918261689586895483 (1000 steps, about one run in two): online, a file renamed while
/// open after its upload (its copy not kept as cache) kept the old object's version, and
/// its next upload became a conflict copy.
const OFFLINE_SEEDS: [(u64, usize); 19] = [
    (15469272657832429347, 300),
    (10879173096186390723, 600),
    (1428717364193948290, 700),
    (7349775917734781442, 300),
    (12816014839252939198, 500),
    (14532374495091252538, 700),
    (11300748527454092258, 700),
    (356921765496619473, 700),
    (14461925598309238489, 1000),
    (4041520516562294832, 800),
    (7421962350426021338, 800),
    (5314294349791968343, 1000),
    (5869407643495974090, 1000),
    (13159117129891959831, 1000),
    (1822305675153263552, 1000),
    (5090522168474119025, 1000),
    (1214443163381241205, 1000),
    (14918261689586895483, 1000),
    (11974149745064999660, 1000),
];

/// Half the steps online, half offline (see the module comment), on an encrypted S3
/// store; then a remount offline, the provider back, and a fresh mount of it.
#[test]
fn random_ops_offline() {
    let steps = std::env::var("OXIDRIVE_RANDOM_STEPS").ok().map_or(300, |s| s.parse().expect("OXIDRIVE_RANDOM_STEPS"));
    // A seed given replays that one alone.
    match std::env::var("OXIDRIVE_SEED") {
        Ok(seed) => run_offline_seed(seed.parse().expect("OXIDRIVE_SEED"), steps),
        Err(_) => {
            for (s, n) in OFFLINE_SEEDS {
                run_offline_seed(s, n);
            }
            run_offline_seed(rand::rng().random(), steps);
        }
    }
}

fn run_offline_seed(seed: u64, steps: usize) {
    let s3 = S3Server::start();
    s3.create_bucket("rnd");
    let proxy = FaultProxy::start(s3.port);
    let config = format!(
        "[[provider]]\nname = \"S3\"\ntype = \"s3\"\nbucket = \"rnd\"\n\
         endpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\n\
         access_key_id = \"test-key\"\nsecret_access_key = \"test-secret\"\n\
         timeout_secs = 2\nretries = 1\nencrypt = true\n",
        proxy.port()
    );
    eprintln!("random_ops_offline: seed {seed}, {steps} steps");
    let mut m = TestMount::with_config(&config);
    let top = m.mnt.join("My Drive/S3");
    let name = format!("rnd-{seed}");
    let (ref_dir, mnt_root) = (tempfile::tempdir().unwrap(), top.join(&name));
    let ref_root = ref_dir.path().join(&name);
    fs::create_dir(&mnt_root).unwrap();
    fs::create_dir(&ref_root).unwrap();
    let mut run = Run::new(seed, steps);
    run.steps_on(&m, &mnt_root, &ref_root, 0..steps / 2, false);

    // Offline: everything uploaded and listed first (as after a while of use), then the
    // provider refuses, and the mount learns it from a read of a file not cached.
    run.close_all(&mnt_root, &ref_root);
    snapshot(&top).unwrap();
    let probe = top.join("probe");
    fs::write(&probe, b"probe").unwrap();
    m.sync();
    let out = m.oxidrive().arg("free").arg(&probe).output().unwrap();
    assert!(out.status.success(), "oxidrive free: {}", String::from_utf8_lossy(&out.stderr));
    proxy.set(Fault::Refuse);
    assert!(fs::read(&probe).is_err(), "reading an uncached file with the provider refusing");
    run.steps_on(&m, &mnt_root, &ref_root, steps / 2..steps, true);
    run.report();
    run.close_all(&mnt_root, &ref_root);
    let want = snapshot(&ref_root).unwrap();
    m.remount();
    if let Some(d) = snapshot_diff(&snapshot(&mnt_root).unwrap(), &want) {
        run.mount_log = m.log();
        run.fail(steps, format!("after a remount offline the trees differ: {d}"));
    }
    proxy.set(Fault::Pass);
    m.sync();
    if let Some(d) = snapshot_diff(&snapshot(&mnt_root).unwrap(), &want) {
        run.mount_log = m.log();
        run.fail(steps, format!("online again, after sync, the trees differ: {d}"));
    }
    m.unmount();
    // What reached the provider, seen by a fresh mount.
    let mut fresh = TestMount::with_config(&config);
    let got = snapshot(&fresh.mnt.join("My Drive/S3").join(&name)).unwrap();
    if let Some(d) = snapshot_diff(&symlinks_as_files(&got), &symlinks_as_files(&want)) {
        run.mount_log = fresh.log();
        run.fail(steps, format!("a fresh mount of the provider differs from the reference: {d}"));
    }
    fresh.unmount();
}
