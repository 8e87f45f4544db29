//! `oxidrive pin|unpin|free PATH…`: keep files cached whole (and out of eviction), let
//! them go again, or drop their cached blocks. The running mount does the work when
//! these commands set its control attributes on each file and folder under PATH, so
//! they need nothing but the mounted paths.

use std::ffi::CString;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

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

fn run(paths: &[PathBuf], action: Action) -> Result<()> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for p in paths {
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
    let progress = std::io::stderr().is_terminal();
    let (mut done, mut failed) = (0u64, 0usize);
    for (i, (f, len)) in files.iter().enumerate() {
        if progress {
            eprint!("\r{} {}/{} files, {} of {} MiB ", verb(action), i, files.len(), done >> 20, total >> 20);
            let _ = std::io::stderr().flush();
        }
        let result = match action {
            Action::Pin => set(f, PINNED, b"1"),
            Action::Unpin => set(f, PINNED, b"0"),
            Action::Free => set(f, FREE, b"1"),
        };
        if let Err(e) = result {
            eprintln!("{}oxidrive: {}: {e:#}", if progress { "\n" } else { "" }, f.display());
            failed += 1;
        }
        done += len;
    }
    if progress {
        eprintln!("\r{} {} files, {} MiB: done{}", verb(action), files.len(), total >> 20, " ".repeat(20));
    }
    if failed > 0 {
        bail!("{failed} of {} files failed", files.len());
    }
    Ok(())
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
