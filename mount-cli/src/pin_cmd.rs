//! `oxidrive pin|unpin|free PATH…`: keep files cached whole (and out of eviction), let
//! them go again, or drop their cached blocks. The running mount does the work when
//! these commands set its control attributes on each file and folder under PATH, so
//! they need nothing but the mounted paths.

use std::ffi::CString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::PinArgs;

const PINNED: &str = "user.oxidrive.pinned";
const FREE: &str = "user.oxidrive.free";

#[derive(Clone, Copy)]
enum Action {
    Pin,
    Unpin,
    Free,
}

pub fn pin(args: PinArgs) -> Result<()> {
    run(&args.paths, Action::Pin)
}

pub fn unpin(args: PinArgs) -> Result<()> {
    run(&args.paths, Action::Unpin)
}

pub fn free(args: PinArgs) -> Result<()> {
    run(&args.paths, Action::Free)
}

/// Files set at once: the mount answers a file's `pin` only once the whole file is
/// here, so several in flight overlap their downloads' round trips.
const IN_FLIGHT: usize = 8;

fn run(paths: &[PathBuf], action: Action) -> Result<()> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for p in paths {
        // Elsewhere the attributes would just be stored (most file systems take `user.`
        // ones), and nothing pinned or freed.
        if crate::mountpoint::fs_type_of(p)? != "fuse.oxidrive" {
            bail!("{}: not inside an oxidrive mount", p.display());
        }
        collect(p, &mut files, &mut dirs).with_context(|| format!("cannot walk {}", p.display()))?;
    }
    // Folders first: files created in a pinned folder meanwhile are pinned too.
    for d in &dirs {
        match action {
            Action::Pin => set(d, PINNED, b"1")?,
            Action::Unpin => set(d, PINNED, b"0")?,
            Action::Free => {}
        }
    }
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    let bar = progress_bar(total, format!("{} {} files", verb(action), files.len()));
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..IN_FLIGHT.min(files.len()) {
            s.spawn(|| {
                while let Some((f, len)) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = match action {
                        Action::Pin => set(f, PINNED, b"1"),
                        Action::Unpin => set(f, PINNED, b"0"),
                        Action::Free => set(f, FREE, b"1"),
                    };
                    if let Err(e) = result {
                        bar.suspend(|| eprintln!("oxidrive: {}: {e:#}", f.display()));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    bar.inc(*len);
                }
            });
        }
    });
    bar.finish();
    let failed = failed.into_inner();
    if failed > 0 {
        bail!("{failed} of {} files failed", files.len());
    }
    Ok(())
}

/// A bar of bytes done on a terminal's stderr; nothing elsewhere.
fn progress_bar(total: u64, msg: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})") {
        bar.set_style(style);
    }
    bar.set_message(msg);
    bar
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Pin => "pinning",
        Action::Unpin => "unpinning",
        Action::Free => "freeing",
    }
}

/// Files (with sizes) and folders under `path`, not following symlinks.
fn collect(path: &Path, files: &mut Vec<(PathBuf, u64)>, dirs: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        dirs.push(path.to_owned());
        for entry in std::fs::read_dir(path)? {
            collect(&entry?.path(), files, dirs)?;
        }
    } else if meta.is_file() {
        files.push((path.to_owned(), meta.len()));
    }
    Ok(())
}

fn set(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes()).context("path holds a NUL byte")?;
    let c_name = CString::new(name).context("attribute name")?;
    // SAFETY: both strings are NUL-terminated and outlive the call; value is a valid slice.
    let rc = unsafe { libc::lsetxattr(c_path.as_ptr(), c_name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOTSUP) || err.raw_os_error() == Some(libc::EPERM) {
            bail!("not inside an oxidrive mount ({err})");
        }
        return Err(err.into());
    }
    Ok(())
}
