//! Checks on the mountpoint before mounting, with errors a person can act on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Creates a missing mountpoint; refuses a mounted, stale or non-empty one.
pub fn prepare(mountpoint: &Path) -> Result<PathBuf> {
    match std::fs::metadata(mountpoint) {
        Ok(m) if !m.is_dir() => bail!("{} is not a directory", mountpoint.display()),
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "{} is a dead mount (its process ended); run `oxidrive unmount {}` first",
            mountpoint.display(),
            mountpoint.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(mountpoint)
            .with_context(|| format!("cannot create mountpoint {}", mountpoint.display()))?,
        Err(e) => return Err(e).with_context(|| format!("cannot use mountpoint {}", mountpoint.display())),
    }
    let canonical = mountpoint.canonicalize().with_context(|| format!("cannot resolve {}", mountpoint.display()))?;
    if is_mounted(&canonical)? {
        bail!("{} is already a mountpoint (is oxidrive already running there?)", canonical.display());
    }
    let mut entries = std::fs::read_dir(&canonical).with_context(|| format!("cannot read {}", canonical.display()))?;
    if entries.next().is_some() {
        bail!("{} is not empty; mount on an empty folder so nothing in it gets hidden", canonical.display());
    }
    Ok(canonical)
}

pub fn is_mounted(path: &Path) -> Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?;
    Ok(info.lines().any(|line| {
        line.split(' ').nth(4).map(unescape).as_deref() == Some(path.as_os_str().to_string_lossy().as_ref())
    }))
}

/// The type of the file system `path` is on, as mountinfo says (`fuse.oxidrive` for
/// ours): that of the deepest mount point above it, the last one mounted there.
pub fn fs_type_of(path: &Path) -> Result<String> {
    let canonical = path.canonicalize().with_context(|| format!("cannot find {}", path.display()))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?;
    let mut best: Option<(usize, &str)> = None;
    for line in info.lines() {
        let Some((mount, fs)) = line.split_once(" - ") else { continue };
        let (Some(point), Some(fs_type)) = (mount.split(' ').nth(4).map(unescape), fs.split(' ').next()) else {
            continue;
        };
        if canonical.starts_with(&point) && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), fs_type));
        }
    }
    best.map(|(_, t)| t.to_owned())
        .with_context(|| format!("no mount in /proc/self/mountinfo holds {}", path.display()))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_empty_and_creates_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a/b");
        assert_eq!(prepare(&missing).unwrap(), missing.canonicalize().unwrap());
        std::fs::write(missing.join("x"), b"1").unwrap();
        assert!(format!("{:#}", prepare(&missing).unwrap_err()).contains("not empty"));
    }

    #[test]
    fn proc_is_a_mountpoint() {
        assert!(is_mounted(Path::new("/proc")).unwrap());
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(fs_type_of(Path::new("/proc/self")).unwrap(), "proc");
    }
}
