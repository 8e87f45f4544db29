//! The running mount's control socket, and the commands that talk to it (`status`,
//! `sync`). One request line in, a text answer out, then the server closes:
//!
//! ```text
//! status            -> one line per provider
//! sync [SECONDS]    -> "synced" once every committed change is uploaded,
//!                      or "pending: ..." when SECONDS passed first
//! poll              -> "polled: N changes" after every provider was polled
//! accept-deletes    -> the same, applying deletions held as suspicious
//! trash-list        -> one JSON object per Trash item and line
//! trash-restore "NAME" (a JSON string) -> "restored: PROVIDER/PATH"
//! trash-empty       -> "emptied: N"
//! ```
//!
//! The socket lives in the runtime directory (0700, ours alone) and answers only its
//! owner: the mode of the socket file keeps other users out.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use oxidrive_cache::{Copies, Store, StoreStatus};
use oxidrive_vfs::Vfs;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::cli::SyncArgs;
use crate::paths::Dirs;

/// What the control server knows: every provider, with its store or why it has none,
/// and the local copies area they share.
pub struct Roots {
    pub roots: Vec<(String, std::result::Result<Arc<Store>, String>)>,
    pub copies: Arc<Copies>,
    pub vfs: Arc<Vfs>,
}

impl Roots {
    fn stores(&self) -> impl Iterator<Item = &Arc<Store>> {
        self.roots.iter().filter_map(|(_, s)| s.as_ref().ok())
    }

    /// Waits until every store has uploaded everything, or `deadline` passes.
    pub async fn wait_uploaded(&self, deadline: Option<tokio::time::Instant>) -> bool {
        let waits = self.stores().map(|s| s.wait_uploaded(deadline));
        futures_all(waits).await.into_iter().all(|done| done)
    }

    /// One line per pending store: "NAME: N changes (SIZE)" (files and new folders).
    pub fn pending_summary(&self) -> Vec<String> {
        self.stores()
            .map(|s| s.status())
            .filter(|st| st.pending_files > 0)
            .map(|st| format!("{}: {} changes ({})", st.name, st.pending_files, human_bytes(st.pending_bytes)))
            .collect()
    }

    /// Polls every store now; returns how many changes they found.
    async fn poll(&self, accept_deletes: bool) -> String {
        let mut changed = 0;
        let mut out = String::new();
        for store in self.stores() {
            if accept_deletes {
                store.accept_deletes();
            }
            match store.poll().await {
                Ok(s) => changed += s.changed,
                Err(e) => out.push_str(&format!("{}: poll failed: {e}\n", store.name())),
            }
        }
        format!("{out}polled: {changed} changes\n")
    }

    fn status_text(&self) -> String {
        let mut out = String::new();
        for (name, store) in &self.roots {
            match store {
                Ok(store) => out.push_str(&status_line(&store.status(), store.held_deletes(), store.conflict_count())),
                Err(why) => out.push_str(&format!("{name}: unavailable ({why})")),
            }
            out.push('\n');
        }
        match self.copies.totals() {
            Ok((used, pinned)) => out.push_str(&format!(
                "cache: {} used of {}, {} pinned\n",
                human_bytes(used),
                human_bytes(self.copies.limit()),
                human_bytes(pinned)
            )),
            Err(e) => out.push_str(&format!("cache: unknown ({e})\n")),
        }
        out
    }
}

async fn futures_all<F: std::future::Future<Output = bool>>(waits: impl Iterator<Item = F>) -> Vec<bool> {
    let mut out = Vec::new();
    // Each store's wait makes its own uploads urgent at once; awaiting them in turn
    // still lets them all run concurrently on their uploader tasks.
    for w in waits {
        out.push(w.await);
    }
    out
}

fn status_line(st: &StoreStatus, held: usize, conflicts: usize) -> String {
    let mut line = format!("{}: {}", st.name, if st.online { "online" } else { "OFFLINE" });
    if conflicts > 0 {
        line.push_str(&format!("; {conflicts} conflict copies made (see the log)"));
    }
    if held > 0 {
        line.push_str(&format!(
            "; HOLDING {held} deletions a poll found (wrong bucket or folder? `oxidrive sync --accept-deletes` applies them)"
        ));
    }
    if let Some((at, err)) = &st.last_error {
        line.push_str(&format!("; last error {} ago: {err}", ago(*at)));
    }
    if st.deleting > 0 {
        line.push_str(&format!("; {} deleted items moving to Trash", st.deleting));
    }
    if st.renaming > 0 {
        line.push_str(&format!("; {} renamed items whose old names wait to go", st.renaming));
    }
    if st.pending_files == 0 {
        line.push_str("; all uploaded");
    } else {
        line.push_str(&format!(
            "; {} pending uploads ({}), {} uploading",
            st.pending_files,
            human_bytes(st.pending_bytes),
            st.uploading
        ));
        if let Some(oldest) = st.oldest_pending {
            line.push_str(&format!(", oldest {} ago", ago(oldest)));
        }
    }
    line
}

fn ago(t: SystemTime) -> String {
    let s = SystemTime::now().duration_since(t).unwrap_or_default().as_secs();
    if s < 120 { format!("{s}s") } else { format!("{}m", s / 60) }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

pub fn socket_path(dirs: &Dirs) -> PathBuf {
    dirs.runtime.join("control.sock")
}

/// Serves the control socket until the runtime ends. Fails if another mount using the
/// same state is answering there.
pub fn serve(rt: &tokio::runtime::Runtime, path: &Path, roots: Arc<Roots>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    if UnixStream::connect(path).is_ok() {
        bail!("another oxidrive mount with the same state directory is running (its socket is {})", path.display());
    }
    let _ = std::fs::remove_file(path);
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    rt.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let roots = roots.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &roots).await {
                            tracing::debug!(error = %e, "control request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn answer(stream: tokio::net::UnixStream, roots: &Roots) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(read).read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let reply = match (words.next(), words.next()) {
        (Some("status"), None) => roots.status_text(),
        (Some("poll"), None) => roots.poll(false).await,
        (Some("accept-deletes"), None) => roots.poll(true).await,
        (Some(w), _) if w.starts_with("trash-") => crate::trash_cmd::answer(&roots.vfs, line.trim_end()).await,
        (Some("sync"), secs) => {
            let deadline = match secs.map(str::parse::<f64>) {
                Some(Ok(s)) if s.is_finite() && s >= 0.0 => {
                    Some(tokio::time::Instant::now() + Duration::from_secs_f64(s.min(1e9)))
                }
                Some(_) => return write.write_all(b"error: bad timeout\n").await,
                None => None,
            };
            if roots.wait_uploaded(deadline).await {
                "synced\n".to_owned()
            } else {
                format!("pending: {}\n", roots.pending_summary().join("; "))
            }
        }
        _ => "error: unknown request\n".to_owned(),
    };
    write.write_all(reply.as_bytes()).await?;
    write.shutdown().await
}

pub(crate) fn request(line: &str) -> Result<String> {
    let dirs = Dirs::resolve()?;
    let path = socket_path(&dirs);
    let mut stream = UnixStream::connect(&path)
        .with_context(|| format!("no running oxidrive mount answers at {} (is it mounted?)", path.display()))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    for l in BufReader::new(stream).lines() {
        reply.push_str(&l?);
        reply.push('\n');
    }
    Ok(reply)
}

pub fn status() -> Result<()> {
    print!("{}", request("status")?);
    Ok(())
}

pub fn sync(args: SyncArgs) -> Result<()> {
    if args.now || args.accept_deletes {
        let reply = request(if args.accept_deletes { "accept-deletes" } else { "poll" })?;
        if !args.quiet {
            print!("{reply}");
        }
        if reply.contains("poll failed") {
            bail!("some providers could not be polled");
        }
        if !args.wait {
            return Ok(());
        }
    }
    let line = match args.timeout {
        Some(s) => format!("sync {s}"),
        None => "sync".to_owned(),
    };
    let reply = request(&line)?;
    if reply.trim() == "synced" {
        if !args.quiet {
            println!("everything is uploaded");
        }
        Ok(())
    } else {
        bail!("{}", reply.trim().trim_start_matches("error: "))
    }
}
