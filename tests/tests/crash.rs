//! Crash loop for invariant 1, "no acknowledged write is lost": writer threads work
//! on the mount, the mount process gets SIGKILL at a random moment, the next mount
//! must show every write that was acknowledged (close, fsync, rename, ... returned
//! OK) byte for byte, and finally `oxidrive decrypt` must find the same tree on the
//! provider.
//!
//! The threads record what the mount acknowledged in a shared model. Before an op
//! starts, they mark its paths "in flight", with what the path may look like if the
//! crash cuts the op short; the mark is cleared once the op is acknowledged. After a
//! crash, in-flight paths may hold any of those outcomes; every other path must be
//! exactly as acknowledged, and no other names may appear. What the next mount shows
//! then becomes the model for the next round. Some rounds crash the recovered mount
//! once more while `oxidrive sync` uploads what the journal held.
//!
//! A failure names the seed, the round, the ops in flight, what each bad path went
//! through this round and excerpts of the mount logs, and keeps the whole state
//! (logs, journal, local copies, provider folder) in `$TMPDIR/oxidrive-crash-*`.
//!
//! `OXIDRIVE_SEED=N` replays the choices of one run (the timing of threads against
//! the kill is not reproducible, so a replay may need a few tries);
//! `OXIDRIVE_LONG=1` runs 100 rounds instead of 20.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oxidrive_tests::{Node, TestMount, is_mounted, make_tree, output_within, snapshot};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROUNDS: usize = 20;
const LONG_ROUNDS: usize = 100;
const BASELINE_FILES: usize = 30;
/// Past this many files the workload deletes more than it creates, so the tree (and
/// reading all of it after each crash) stays small.
const MAX_FILES: usize = 150;

/// Directories the workload makes (tarballs hold two levels) stay within this depth.
const MAX_DEPTH: usize = 4;

type Tree = BTreeMap<PathBuf, Node>;

/// An op in flight on a path: what it is (for failure messages) and what the path
/// may hold after a crash cut it short.
struct InFlight {
    op: String,
    outcome: Outcome,
}

/// What an in-flight path may hold after the crash, besides its acknowledged state.
#[derive(Clone, Debug)]
enum Outcome {
    /// The op would leave this (`None`: remove the path). A path held by an op that
    /// cannot change it yet carries `Becomes(its acknowledged state)`.
    Becomes(Option<Node>),
    /// Writes that, once acknowledged, leave these bytes; they only overwrite or
    /// extend, never shrink. Short of the ack, the file may hold any mix of its
    /// acknowledged bytes and these, with zeros where it grew (parts of the new
    /// bytes not written yet), or be absent if it did not exist before.
    Grows(Vec<u8>),
    /// Anything or nothing: a save's temp file rewritten (O_TRUNC) over a leftover of
    /// an earlier crash, where "partly new" is any mix of two unrelated contents.
    Any,
}

/// The acknowledged state of every path below `local()`, and the in-flight marks.
#[derive(Default)]
struct Model {
    acked: Tree,
    pending: BTreeMap<PathBuf, InFlight>,
    /// Renames in flight, `to` -> `from`: after a crash, either both paths are as
    /// before or the rename is done, never half of each.
    renames: BTreeMap<PathBuf, PathBuf>,
    /// The ops acknowledged on each path this round, for failure messages.
    history: BTreeMap<PathBuf, Vec<String>>,
}

impl Model {
    fn free(&self, p: &Path) -> bool {
        !self.pending.contains_key(p)
    }

    /// Acknowledged files no op is working on.
    fn free_files(&self, filter: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
        self.acked
            .iter()
            .filter(|(p, n)| matches!(n, Node::File(_)) && self.free(p) && filter(p))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Directories to create things in: the root and acknowledged ones (never
    /// removed or renamed by the workload, so they stay usable), not too deep, so
    /// paths stay short over many rounds.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![PathBuf::new()];
        dirs.extend(
            self.acked
                .iter()
                .filter(|(p, n)| **n == Node::Dir && self.free(p) && p.components().count() < MAX_DEPTH)
                .map(|(p, _)| p.clone()),
        );
        dirs
    }

    fn file_count(&self) -> usize {
        self.acked.values().filter(|n| matches!(n, Node::File(_))).count()
    }

    fn bytes(&self, p: &Path) -> Option<Vec<u8>> {
        match self.acked.get(p) {
            Some(Node::File(b)) => Some(b.clone()),
            _ => None,
        }
    }

    /// Marks `p` in flight (claiming it: other threads leave it alone).
    fn hold(&mut self, p: &Path, op: &str, outcome: Outcome) {
        self.pending.insert(p.to_owned(), InFlight { op: op.to_owned(), outcome });
    }

    /// `p` is acknowledged as `node` (`None`: removed) and no longer in flight.
    fn ack(&mut self, p: &Path, node: Option<Node>) {
        if let Some(f) = self.pending.remove(p) {
            self.history.entry(p.to_owned()).or_default().push(f.op);
        }
        self.renames.remove(p);
        match node {
            Some(n) => self.acked.insert(p.to_owned(), n),
            None => self.acked.remove(p),
        };
    }

    /// `from` is being renamed to `to`.
    fn rename_started(&mut self, from: &Path, to: &Path, op: &str) {
        let node = self.acked[from].clone();
        self.hold(from, op, Outcome::Becomes(None));
        self.hold(to, op, Outcome::Becomes(Some(node)));
        self.renames.insert(to.to_owned(), from.to_owned());
    }

    /// The rename of `from` to `to` is acknowledged; `to` takes over the history of
    /// `from`, which ends with the rename.
    fn rename_done(&mut self, from: &Path, to: &Path) {
        let node = self.acked.get(from).cloned();
        self.ack(from, None);
        self.ack(to, node);
        let moved = self.history.remove(from).unwrap_or_default();
        let history = self.history.entry(to.to_owned()).or_default();
        history.pop();
        history.extend(moved);
    }
}

/// State shared by the test and its writer threads.
struct Shared {
    local: PathBuf,
    /// Outside the mount: tarball sources.
    work: PathBuf,
    model: Mutex<Model>,
    /// Set just before the SIGKILL: errors from then on are expected.
    killed: AtomicBool,
    /// Set once the mount process is gone: threads end even between ops.
    stop: AtomicBool,
    acked_ops: AtomicUsize,
    /// Errors the mount returned before it was killed (each a product bug).
    unexpected: Mutex<Vec<String>>,
}

impl Shared {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ops in flight, one per line.
    fn in_flight(&self) -> String {
        let model = self.model();
        let ops: BTreeSet<&str> = model.pending.values().map(|f| f.op.as_str()).collect();
        Vec::from_iter(ops).join("\n    ")
    }
}

/// One writer thread of one round.
struct Writer {
    shared: Arc<Shared>,
    id: usize,
    gen_: Gen,
}

/// A writer's random choices and fresh names (apart from `Writer::shared`, so both
/// can be borrowed at once).
struct Gen {
    rng: ChaCha8Rng,
    /// Makes fresh names unique across threads and rounds.
    tag: String,
    made: usize,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Save,
    Append,
    Overwrite,
    Create,
    Rename,
    Delete,
    Mkdir,
    Tar,
}

impl Writer {
    fn run(mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            let op = self.pick();
            match self.step(op) {
                Ok(true) => {
                    self.shared.acked_ops.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    // After the kill, errors are how the threads learn of it: stop
                    // quietly, leaving the in-flight marks for the check.
                    if !self.shared.killed.load(Ordering::Acquire) {
                        let what = format!(
                            "thread {}: {op:?} failed: {e}; ops in flight then:\n    {}",
                            self.id,
                            self.shared.in_flight()
                        );
                        self.shared.unexpected.lock().unwrap().push(what);
                    }
                    break;
                }
            }
        }
    }

    fn pick(&mut self) -> Op {
        let crowded = self.shared.model().file_count() > MAX_FILES;
        let delete = if crowded { 40 } else { 10 };
        let weighted = [
            (Op::Save, 20),
            (Op::Append, 15),
            (Op::Overwrite, 15),
            (Op::Create, 15),
            (Op::Rename, 10),
            (Op::Delete, delete),
            (Op::Mkdir, 4),
            (Op::Tar, 3),
        ];
        let total: u32 = weighted.iter().map(|w| w.1).sum();
        let mut x = self.gen_.rng.random_range(0..total);
        for (op, w) in weighted {
            if x < w {
                return op;
            }
            x -= w;
        }
        unreachable!()
    }

    /// Runs one op; `Ok(false)` if there was nothing to do it on.
    fn step(&mut self, op: Op) -> io::Result<bool> {
        match op {
            Op::Save => self.save(),
            Op::Append => self.append(),
            Op::Overwrite => self.overwrite(),
            Op::Create => self.create(),
            Op::Rename => self.rename(),
            Op::Delete => self.delete(),
            Op::Mkdir => self.mkdir(),
            Op::Tar => self.tar(),
        }
    }

    fn path(&self, rel: &Path) -> PathBuf {
        self.shared.local.join(rel)
    }

    /// Editor-style save: write `name.tmp`, fsync, close, rename over `name`.
    fn save(&mut self) -> io::Result<bool> {
        let data = self.gen_.data();
        let (name, tmp) = {
            let mut model = self.shared.model();
            let existing = model.free_files(|p| !p.to_string_lossy().ends_with(".tmp"));
            let name = match self.gen_.choose(&existing) {
                Some(p) if self.gen_.rng.random_bool(0.7) => p,
                _ => self.gen_.fresh(&model, ".txt"),
            };
            let mut tmp = name.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            if !model.free(&tmp) {
                return Ok(false);
            }
            let op = format!("save {} ({} bytes): write, fsync {}", name.display(), data.len(), tmp.display());
            let tmp_outcome = if model.acked.contains_key(&tmp) { Outcome::Any } else { Outcome::Grows(data.clone()) };
            model.hold(&tmp, &op, tmp_outcome);
            // Held, not changed until the rename.
            let now = model.acked.get(&name).cloned();
            model.hold(&name, &op, Outcome::Becomes(now));
            (name, tmp)
        };
        let mut f = File::create(self.path(&tmp))?;
        f.write_all(&data)?;
        f.sync_all()?;
        {
            let mut model = self.shared.model();
            model.ack(&tmp, Some(Node::File(data.clone())));
            let op = format!("save {} ({} bytes): close, rename {} over it", name.display(), data.len(), tmp.display());
            model.rename_started(&tmp, &name, &op);
        }
        close(f)?;
        fs::rename(self.path(&tmp), self.path(&name))?;
        let mut model = self.shared.model();
        model.rename_done(&tmp, &name);
        Ok(true)
    }

    /// Appends a line or a few to a log file (made if need be), fsync, close.
    fn append(&mut self) -> io::Result<bool> {
        let mut chunk = Vec::new();
        for _ in 0..self.gen_.rng.random_range(1..40) {
            writeln!(chunk, "{} {} {:x}", self.gen_.tag, self.gen_.made, self.gen_.rng.random::<u64>()).unwrap();
        }
        self.gen_.made += 1;
        let (path, new) = {
            let mut model = self.shared.model();
            let logs = model.free_files(|p| p.extension().is_some_and(|e| e == "log"));
            let path = match self.gen_.choose(&logs) {
                Some(p) if self.gen_.rng.random_bool(0.8) => p,
                _ => self.gen_.fresh(&model, ".log"),
            };
            let new = [model.bytes(&path).unwrap_or_default(), chunk.clone()].concat();
            let op = format!("append {} bytes to {} ({} bytes then), fsync", chunk.len(), path.display(), new.len());
            model.hold(&path, &op, Outcome::Grows(new.clone()));
            (path, new)
        };
        let mut f = OpenOptions::new().append(true).create(true).open(self.path(&path))?;
        f.write_all(&chunk)?;
        f.sync_all()?;
        // fsync acknowledged the bytes: the close after it must not lose them either.
        self.shared.model().ack(&path, Some(Node::File(new)));
        close(f)?;
        Ok(true)
    }

    /// Overwrites part of a file in place (possibly extending it), close.
    fn overwrite(&mut self) -> io::Result<bool> {
        let (path, new, patch, offset) = {
            let mut model = self.shared.model();
            let Some(path) = self.gen_.choose(&model.free_files(|_| true)) else { return Ok(false) };
            let mut new = model.bytes(&path).unwrap();
            let offset = self.gen_.rng.random_range(0..=new.len());
            let mut patch = self.gen_.data();
            patch.truncate(self.gen_.rng.random_range(1..=65_536));
            if patch.is_empty() {
                patch.push(0xa5);
            }
            let end = offset + patch.len();
            if new.len() < end {
                new.resize(end, 0);
            }
            new[offset..end].copy_from_slice(&patch);
            let op = format!("overwrite {}..{end} of {} ({} bytes then), close", offset, path.display(), new.len());
            model.hold(&path, &op, Outcome::Grows(new.clone()));
            (path, new, patch, offset)
        };
        let f = OpenOptions::new().write(true).open(self.path(&path))?;
        f.write_all_at(&patch, offset as u64)?;
        close(f)?;
        self.shared.model().ack(&path, Some(Node::File(new)));
        Ok(true)
    }

    /// A new file: write, close.
    fn create(&mut self) -> io::Result<bool> {
        let data = self.gen_.data();
        let path = {
            let mut model = self.shared.model();
            let ext = [".bin", ".txt", ""][self.gen_.rng.random_range(0..3)];
            let path = self.gen_.fresh(&model, ext);
            model.hold(
                &path,
                &format!("create {} ({} bytes), close", path.display(), data.len()),
                Outcome::Grows(data.clone()),
            );
            path
        };
        let mut f = OpenOptions::new().write(true).create_new(true).open(self.path(&path))?;
        f.write_all(&data)?;
        close(f)?;
        self.shared.model().ack(&path, Some(Node::File(data)));
        Ok(true)
    }

    /// Moves a file to a fresh name, maybe into another directory.
    fn rename(&mut self) -> io::Result<bool> {
        let (from, to) = {
            let mut model = self.shared.model();
            let Some(from) = self.gen_.choose(&model.free_files(|_| true)) else { return Ok(false) };
            let to = self.gen_.fresh(&model, ".moved");
            model.rename_started(&from, &to, &format!("rename {} -> {}", from.display(), to.display()));
            (from, to)
        };
        fs::rename(self.path(&from), self.path(&to))?;
        let mut model = self.shared.model();
        model.rename_done(&from, &to);
        Ok(true)
    }

    fn delete(&mut self) -> io::Result<bool> {
        let path = {
            let mut model = self.shared.model();
            let Some(path) = self.gen_.choose(&model.free_files(|_| true)) else { return Ok(false) };
            model.hold(&path, &format!("delete {}", path.display()), Outcome::Becomes(None));
            path
        };
        fs::remove_file(self.path(&path))?;
        self.shared.model().ack(&path, None);
        Ok(true)
    }

    fn mkdir(&mut self) -> io::Result<bool> {
        let path = {
            let mut model = self.shared.model();
            let path = self.gen_.fresh(&model, ".d");
            model.hold(&path, &format!("mkdir {}", path.display()), Outcome::Becomes(Some(Node::Dir)));
            path
        };
        fs::create_dir(self.path(&path))?;
        self.shared.model().ack(&path, Some(Node::Dir));
        Ok(true)
    }

    /// Extracts a small tarball (a folder, a subfolder, a few files) with `tar`;
    /// its files count as acknowledged only if tar exits 0.
    fn tar(&mut self) -> io::Result<bool> {
        self.gen_.made += 1;
        let top = format!("tar-{}-{}", self.gen_.tag, self.gen_.made);
        let src = self.shared.work.join(&top);
        let mut entries: Tree = BTreeMap::new();
        entries.insert(PathBuf::from(&top), Node::Dir);
        entries.insert(PathBuf::from(&top).join("sub"), Node::Dir);
        fs::create_dir_all(src.join("sub"))?;
        for i in 0..self.gen_.rng.random_range(2..7) {
            let dir = if i % 2 == 0 { PathBuf::from(&top).join("sub") } else { PathBuf::from(&top) };
            let rel = dir.join(format!("file{i}"));
            let mut data = self.gen_.data();
            data.truncate(40_000);
            fs::write(self.shared.work.join(&rel), &data)?;
            entries.insert(rel, Node::File(data));
        }
        let ball = self.shared.work.join(format!("{top}.tar"));
        let out = Command::new("tar").arg("-cf").arg(&ball).arg("-C").arg(&self.shared.work).arg(&top).output()?;
        assert!(out.status.success(), "tar -c: {}", String::from_utf8_lossy(&out.stderr));

        let (dir, in_mount) = {
            let mut model = self.shared.model();
            let dirs = model.dirs();
            let dir = self.gen_.choose(&dirs).unwrap();
            let in_mount: Tree = entries.into_iter().map(|(p, n)| (dir.join(p), n)).collect();
            let op = format!(
                "tar -x {top}.tar in {}",
                if dir.as_os_str().is_empty() { Path::new(".") } else { &dir }.display()
            );
            for (p, n) in &in_mount {
                let outcome = match n {
                    Node::File(b) => Outcome::Grows(b.clone()),
                    n => Outcome::Becomes(Some(n.clone())),
                };
                model.hold(p, &op, outcome);
            }
            (dir, in_mount)
        };
        let out =
            Command::new("tar").arg("-xf").arg(&ball).current_dir(self.path(&dir)).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "tar -xf into {}: {}: {}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut model = self.shared.model();
        for (p, n) in in_mount {
            model.ack(&p, Some(n));
        }
        Ok(true)
    }
}

impl Gen {
    /// A name no path has had, in a random directory.
    fn fresh(&mut self, model: &Model, ext: &str) -> PathBuf {
        let dirs = model.dirs();
        let dir = &dirs[self.rng.random_range(0..dirs.len())];
        self.made += 1;
        let stem = ["n", "ünï cödé ", "with space "][self.rng.random_range(0..3)];
        dir.join(format!("{stem}{}-{}{ext}", self.tag, self.made))
    }

    fn choose<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.random_range(0..v.len())].clone())
    }

    fn data(&mut self) -> Vec<u8> {
        let len = match self.rng.random_range(0..10) {
            0 => 0,
            1..=6 => self.rng.random_range(1..4096),
            7 | 8 => self.rng.random_range(4096..65_536),
            _ => self.rng.random_range(65_536..300_000),
        };
        let mut data = vec![0u8; len];
        self.rng.fill(&mut data[..]);
        data
    }
}

/// close(2) with its result: dropping a `File` ignores a failed close, and on FUSE
/// close is where a write is committed (and may fail).
fn close(f: File) -> io::Result<()> {
    let fd = f.into_raw_fd();
    if unsafe { libc::close(fd) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn describe(n: Option<&Node>) -> String {
    match n {
        None => "missing".into(),
        Some(Node::Dir) => "a directory".into(),
        Some(Node::Symlink(t)) => format!("a symlink to {}", t.display()),
        Some(Node::File(b)) => format!("a file of {} bytes", b.len()),
    }
}

/// "expected X, found Y"; for two files, where their common length differs.
fn mismatch(want: Option<&Node>, got: Option<&Node>) -> String {
    let mut msg = format!("expected {}, found {}", describe(want), describe(got));
    if let (Some(Node::File(a)), Some(Node::File(b))) = (want, got) {
        let differ: Vec<usize> =
            a.iter().zip(b.iter()).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i).collect();
        match (differ.first(), differ.last()) {
            (Some(first), Some(last)) => {
                msg += &format!(", {} bytes differ between offsets {first} and {last}", differ.len());
                msg += &format!(" (at {first}: {:#04x} vs {:#04x})", a[*first], b[*first]);
            }
            _ => msg += &format!(", the same bytes up to {}", a.len().min(b.len())),
        }
    }
    msg
}

/// Whether `got` is an outcome of writes, cut short, that would have turned `old`
/// into `new` (see `Outcome::Grows`).
fn grows_ok(old: Option<&Node>, new: &[u8], got: Option<&Node>) -> bool {
    let old: &[u8] = match old {
        None => return got.is_none_or(|g| grows_ok(Some(&Node::File(Vec::new())), new, Some(g))),
        Some(Node::File(b)) => b,
        Some(_) => return false,
    };
    let Some(Node::File(got)) = got else { return false };
    got.len() >= old.len()
        && got.len() <= old.len().max(new.len())
        && got
            .iter()
            .enumerate()
            .all(|(i, b)| old.get(i) == Some(b) || new.get(i) == Some(b) || (i >= old.len() && *b == 0))
}

/// One way the tree differs from what the model allows.
struct Problem {
    path: PathBuf,
    what: String,
    /// Ops acknowledged on the path this round.
    history: Vec<String>,
    /// False for oddities the product's promises allow, reported but not failed.
    fatal: bool,
}

impl Problem {
    fn new(path: &Path, what: String) -> Self {
        Problem { path: path.to_owned(), what, history: Vec::new(), fatal: true }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)?;
        if !self.history.is_empty() {
            write!(f, "\n      acknowledged this round, in order: {}", self.history.join("; "))?;
        }
        Ok(())
    }
}

/// Every way `got` differs from what `model` allows.
fn problems(model: &Model, got: &Tree) -> Vec<Problem> {
    let paths: BTreeSet<&PathBuf> = model.acked.keys().chain(model.pending.keys()).chain(got.keys()).collect();
    let mut out = Vec::new();
    for p in paths {
        let (want, found) = (model.acked.get(p), got.get(p));
        let what = match model.pending.get(p) {
            None if want == found => continue,
            None if want.is_none() => {
                format!("unexpected name (never acknowledged, not in flight): found {}", describe(found))
            }
            None => format!("acknowledged: {}", mismatch(want, found)),
            Some(InFlight { op, outcome: Outcome::Becomes(to) }) if found != want && found != to.as_ref() => format!(
                "in flight ({op}): neither as acknowledged ({}) nor as the op leaves it ({})",
                mismatch(want, found),
                mismatch(to.as_ref(), found)
            ),
            Some(InFlight { op, outcome: Outcome::Grows(new) }) if !grows_ok(want, new, found) => {
                let new = Node::File(new.clone());
                format!(
                    "in flight ({op}): neither the acknowledged bytes ({}) nor partly the new ({})",
                    mismatch(want, found),
                    mismatch(Some(&new), found)
                )
            }
            Some(_) => continue,
        };
        out.push(Problem::new(p, what));
    }
    // A rename cut short must leave the file under one of its names at least. Under
    // both is allowed (the per-path rules above accept it, and renaming a file on an
    // encrypted store is a copy, then a delete), but worth a note.
    for (to, from) in &model.renames {
        let Outcome::Becomes(Some(moved)) = &model.pending[to].outcome else { unreachable!() };
        let (at_from, at_to) = (got.get(from), got.get(to));
        let op = &model.pending[to].op;
        if at_from.is_none() && at_to == model.acked.get(to) && at_to != Some(moved) {
            let what = format!(
                "in flight ({op}): the file is gone: {} is missing, {} is {}",
                from.display(),
                to.display(),
                describe(at_to)
            );
            out.push(Problem::new(to, what));
        } else if at_from.is_some()
            && at_from == model.acked.get(from)
            && at_to == Some(moved)
            && model.acked.get(to) != Some(moved)
        {
            let what = format!("in flight ({op}): half done, both names hold the file");
            out.push(Problem { fatal: false, ..Problem::new(to, what) });
        }
    }
    for problem in &mut out {
        let mut history = model.history.get(&problem.path).cloned().unwrap_or_default();
        // A rename target's bytes come from the source: show what the source went through.
        if let Some(from) = model.renames.get(&problem.path) {
            history.extend(
                model.history.get(from).into_iter().flatten().map(|op| format!("(on {}) {op}", from.display())),
            );
        }
        problem.history = history;
    }
    out
}

/// The tree below `root` like `snapshot`, but going on past entries that fail to
/// read (each reported), and checking that stat and read agree on a file's size.
fn read_tree(root: &Path) -> (Tree, Vec<Problem>) {
    fn walk(root: &Path, rel: &Path, tree: &mut Tree, errors: &mut Vec<Problem>) {
        let entries = match fs::read_dir(root.join(rel)) {
            Ok(e) => e,
            Err(e) => return errors.push(Problem::new(rel, format!("listed, but read_dir fails: {e}"))),
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return errors.push(Problem::new(rel, format!("read_dir entry: {e}"))),
            };
            let rel = rel.join(entry.file_name());
            let path = root.join(&rel);
            let node = fs::symlink_metadata(&path).and_then(|meta| {
                if meta.is_dir() {
                    Ok(Node::Dir)
                } else if meta.file_type().is_symlink() {
                    Ok(Node::Symlink(fs::read_link(&path)?))
                } else {
                    let bytes = fs::read(&path)?;
                    if bytes.len() as u64 != meta.len() {
                        let what = format!("stat says {} bytes, read gave {}", meta.len(), bytes.len());
                        errors.push(Problem::new(&rel, what));
                    }
                    Ok(Node::File(bytes))
                }
            });
            match node {
                Ok(Node::Dir) => {
                    tree.insert(rel.clone(), Node::Dir);
                    walk(root, &rel, tree, errors);
                }
                Ok(n) => {
                    tree.insert(rel, n);
                }
                Err(e) => errors.push(Problem::new(&rel, format!("listed, but unreadable: {e}"))),
            }
        }
    }
    let (mut tree, mut errors) = (BTreeMap::new(), Vec::new());
    walk(root, Path::new(""), &mut tree, &mut errors);
    (tree, errors)
}

/// The logs of the mount processes so far, oldest first.
fn mount_logs(m: &TestMount) -> Vec<PathBuf> {
    let mut logs: Vec<(usize, PathBuf)> = fs::read_dir(m.dir.path())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("mount-")?.strip_suffix(".log")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, p)| p).collect()
}

/// From the logs of the last `count` mount processes: warnings and errors, lines
/// naming one of `paths` (the log writes them relative to the store, as here), and
/// the last lines.
fn log_excerpts(m: &TestMount, count: usize, paths: &[PathBuf]) -> String {
    let logs = mount_logs(m);
    let mut out = String::new();
    for log in &logs[logs.len().saturating_sub(count)..] {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let notable: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| {
                l.contains(" WARN ") || l.contains(" ERROR ") || paths.iter().any(|p| l.contains(&*p.to_string_lossy()))
            })
            .collect();
        out +=
            &format!("--- {}: {} lines; warnings, errors, lines naming those paths ---\n", log.display(), lines.len());
        for l in &notable[notable.len().saturating_sub(40)..] {
            out += &format!("{l}\n");
        }
        out += "--- last lines ---\n";
        for l in &lines[lines.len().saturating_sub(15)..] {
            out += &format!("{l}\n");
        }
    }
    out
}

/// Copies the test's whole temp dir but the mountpoint (logs, journal, local copies,
/// the provider's folder) where it outlives the test; returns where.
fn keep_state(m: &TestMount, cx: &Context) -> PathBuf {
    let dest = std::env::temp_dir().join(format!("oxidrive-crash-{}-round{}", cx.seed, cx.round));
    let _ = fs::remove_dir_all(&dest);
    fs::create_dir_all(&dest).unwrap();
    for e in fs::read_dir(m.dir.path()).unwrap().flatten() {
        if e.path() != m.mnt {
            let _ = Command::new("cp").arg("-a").arg(e.path()).arg(&dest).status();
        }
    }
    dest
}

/// SIGKILL of the mount process.
fn crash(m: &mut TestMount) {
    m.send_signal(Signal::SIGKILL);
    m.wait_exit(Duration::from_secs(30)).expect("the mount process did not exit on SIGKILL");
}

/// Clears the dead mount and mounts again. Run as root, oxidrive mounts with
/// auto_unmount: fusermount3's helper then removes the dead mount itself, soon;
/// otherwise (or if it is slow) it is detached lazily here (the harness would take
/// a stale mount for a live one).
fn remount(m: &mut TestMount, cx: &Context) {
    if !oxidrive_tests::wait_until(Duration::from_secs(2), || !is_mounted(&m.mnt)) {
        let out = Command::new("fusermount3").arg("-uz").arg(&m.mnt).output().expect("fusermount3");
        if is_mounted(&m.mnt) {
            let why = String::from_utf8_lossy(&out.stderr);
            cx.fail(m, 1, &format!("the dead mount is still there after fusermount3 -uz: {why}"), &[]);
        }
    }
    // `mount` panics (with the log) if the mount does not come back: add where we are.
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.mount())) {
        let why = e.downcast_ref::<String>().map(String::as_str).or(e.downcast_ref::<&str>().copied()).unwrap_or("?");
        cx.fail(m, 0, &format!("the mount did not come back after the crash: {why}"), &[]);
    }
}

/// `TestMount::sync`, returning its failure (to report with the rest), with a
/// shorter timeout: recovery normally takes a second or two.
fn sync(m: &TestMount) -> Result<(), String> {
    let out = output_within(m.oxidrive().args(["sync", "--wait", "--timeout", "60"]), Duration::from_secs(90));
    if out.status.success() {
        return Ok(());
    }
    Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_owned())
}

/// Where a run is and how to replay it, for every failure message.
struct Context {
    seed: u64,
    rounds: usize,
    round: usize,
}

impl Context {
    /// Panics with `what`, excerpts of the last `logs` mount logs and the replay
    /// command, keeping the test's state for a look.
    fn fail(&self, m: &TestMount, logs: usize, what: &str, paths: &[PathBuf]) -> ! {
        let kept = keep_state(m, self);
        panic!(
            "crash loop: seed {seed}, round {round} of {rounds}: {what}\n\
             replay: OXIDRIVE_SEED={seed} cargo test -p oxidrive-tests --test crash -- --nocapture\n\
             state (logs, journal, local copies, provider folder) kept in {kept}\n{logs}",
            seed = self.seed,
            round = self.round,
            rounds = self.rounds,
            kept = kept.display(),
            logs = log_excerpts(m, logs, paths)
        )
    }

    fn fail_with(&self, m: &TestMount, logs: usize, what: &str, problems: &[Problem]) -> ! {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let paths: Vec<PathBuf> = problems.iter().map(|p| p.path.clone()).collect();
        let what = match problems.len() {
            0 => what.to_owned(),
            n => format!("{what}: {n} problems:\n  {}", list.join("\n  ")),
        };
        self.fail(m, logs, &what, &paths)
    }
}

/// One round: writers until a SIGKILL, then recovery and the check. Returns how
/// many mount processes were killed, and how many oddities were noted.
fn round(m: &mut TestMount, shared: &Arc<Shared>, rng: &mut ChaCha8Rng, cx: &Context) -> (usize, usize) {
    let threads = rng.random_range(2..=3);
    let kill_after = Duration::from_millis(rng.random_range(50..=1500));
    let kill_in_sync = rng.random_bool(0.3);
    shared.killed.store(false, Ordering::Release);
    shared.stop.store(false, Ordering::Release);
    shared.acked_ops.store(0, Ordering::Relaxed);
    let handles: Vec<_> = (0..threads)
        .map(|id| {
            let writer = Writer {
                shared: shared.clone(),
                id,
                gen_: Gen { rng: ChaCha8Rng::seed_from_u64(rng.random()), tag: format!("r{}t{id}", cx.round), made: 0 },
            };
            std::thread::spawn(move || writer.run())
        })
        .collect();

    std::thread::sleep(kill_after);
    shared.killed.store(true, Ordering::Release);
    crash(m);
    shared.stop.store(true, Ordering::Release);
    if !oxidrive_tests::wait_until(Duration::from_secs(60), || handles.iter().all(|h| h.is_finished())) {
        let what = format!("writer threads still busy 60 s after the mount died, in:\n    {}", shared.in_flight());
        cx.fail(m, 1, &what, &[]);
    }
    for h in handles {
        h.join().expect("writer thread panicked");
    }
    let unexpected = std::mem::take(&mut *shared.unexpected.lock().unwrap());
    if !unexpected.is_empty() {
        cx.fail(m, 1, &format!("the mount failed ops before it was killed:\n  {}", unexpected.join("\n  ")), &[]);
    }
    let started = Instant::now();
    remount(m, cx);
    let mut killed = 1;

    // Sometimes crash again while the recovered mount uploads what the journal held
    // (`sync` makes the uploads start at once), so uploads are cut short too: with
    // the default write-back delay of 2 s they rarely start before the first kill.
    if kill_in_sync {
        let mut sync = m
            .oxidrive()
            .args(["sync", "--wait", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("oxidrive sync");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        crash(m);
        if !oxidrive_tests::wait_until(Duration::from_secs(30), || sync.try_wait().ok().flatten().is_some()) {
            let _ = sync.kill();
            let _ = sync.wait();
            cx.fail(m, 1, "`oxidrive sync` still waiting 30 s after the mount died", &[]);
        }
        remount(m, cx);
        killed += 1;
    }
    let synced = sync(m);
    let recovered = started.elapsed();

    let in_flight = shared.in_flight();
    let mut model = shared.model();
    let (got, mut found) = read_tree(&m.local());
    found.extend(problems(&model, &got));
    let (found, notes): (Vec<Problem>, Vec<Problem>) = found.into_iter().partition(|p| p.fatal);
    if synced.is_err() || !found.is_empty() {
        let mut what = format!("after recovery (ops in flight at the kill:\n    {in_flight})");
        if let Err(e) = synced {
            what = format!("`oxidrive sync` failed after recovery: {e}\n{what}");
        }
        cx.fail_with(m, 1 + killed, &what, &found);
    }
    for note in &notes {
        eprintln!("round {:3}: note: {note}", cx.round);
    }
    eprintln!(
        "round {:3}: {threads} threads, killed after {:4} ms{}, {:4} ops acknowledged, {:2} paths in flight, \
         recovered in {:.1} s, {} files",
        cx.round,
        kill_after.as_millis(),
        if kill_in_sync { " and in sync" } else { "" },
        shared.acked_ops.load(Ordering::Relaxed),
        model.pending.len(),
        recovered.as_secs_f64(),
        got.values().filter(|n| matches!(n, Node::File(_))).count()
    );
    // What survived is the truth from here on.
    model.acked = got;
    model.pending.clear();
    model.renames.clear();
    model.history.clear();
    (killed, notes.len())
}

#[test]
fn no_acknowledged_write_is_lost_across_crashes() {
    let started = Instant::now();
    let seed = std::env::var("OXIDRIVE_SEED")
        .ok()
        .map_or_else(|| rand::rng().random(), |s| s.parse().expect("OXIDRIVE_SEED: a number"));
    let rounds = if std::env::var("OXIDRIVE_LONG").is_ok_and(|v| v == "1") { LONG_ROUNDS } else { ROUNDS };
    eprintln!("crash loop: seed {seed}, {rounds} rounds (replay: OXIDRIVE_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cx = Context { seed, rounds, round: 0 };

    let mut m = TestMount::start();
    let work = m.dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    // The baseline: files of all sizes, folders, symlinks, made the same way in a
    // plain folder as the reference.
    let tree_seed = rng.random();
    make_tree(&m.local(), tree_seed, BASELINE_FILES);
    make_tree(&work.join("baseline"), tree_seed, BASELINE_FILES);
    if let Err(e) = sync(&m) {
        cx.fail(&m, 1, &format!("`oxidrive sync` of the baseline failed: {e}"), &[]);
    }
    let model = Model { acked: snapshot(&work.join("baseline")).unwrap(), ..Default::default() };
    let (got, mut found) = read_tree(&m.local());
    found.extend(problems(&model, &got));
    if !found.is_empty() {
        cx.fail_with(&m, 1, "the baseline differs before any crash", &found);
    }
    let shared = Arc::new(Shared {
        local: m.local(),
        work,
        model: Mutex::new(model),
        killed: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        acked_ops: AtomicUsize::new(0),
        unexpected: Mutex::new(Vec::new()),
    });

    let (mut crashes, mut notes) = (0, 0);
    for r in 1..=rounds {
        cx.round = r;
        let (killed, noted) = round(&mut m, &shared, &mut rng, &cx);
        crashes += killed;
        notes += noted;
    }

    // Off the mount, straight from the provider: the same tree, so the bytes are
    // really uploaded, not only held locally. Symlinks are stored as small files
    // holding their target.
    m.unmount();
    let dest = m.dir.path().join("restore");
    let out = output_within(m.oxidrive().args(["decrypt", "--provider", "Local"]).arg(&dest), Duration::from_secs(300));
    if !out.status.success() {
        cx.fail(&m, 1, &format!("`oxidrive decrypt` failed: {}", String::from_utf8_lossy(&out.stderr)), &[]);
    }
    let stored: Tree = shared
        .model()
        .acked
        .iter()
        .map(|(p, n)| match n {
            Node::Symlink(t) => (p.clone(), Node::File(t.as_os_str().as_encoded_bytes().to_vec())),
            n => (p.clone(), n.clone()),
        })
        .collect();
    let (restored, mut found) = read_tree(&dest);
    found.extend(problems(&Model { acked: stored, ..Default::default() }, &restored));
    if !found.is_empty() {
        cx.fail_with(&m, 1, "`oxidrive decrypt` (expected: the mount's tree after the last round)", &found);
    }
    eprintln!(
        "crash loop: seed {seed}: {rounds} rounds, {crashes} crashes, {notes} notes, {} entries restored by \
         decrypt, {:.0} s",
        restored.len(),
        started.elapsed().as_secs_f64()
    );
}
