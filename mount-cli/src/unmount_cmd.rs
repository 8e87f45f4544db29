use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cli::UnmountArgs;

pub fn run(args: UnmountArgs) -> Result<()> {
    unmount(&args.mountpoint, args.lazy)
}

/// Unmounts through fusermount3 (works unprivileged), falling back to umount(8).
pub fn unmount(mountpoint: &std::path::Path, lazy: bool) -> Result<()> {
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = match cmd.arg(mountpoint).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut cmd = Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(mountpoint).output().context("neither fusermount3 nor umount could be run (install fuse3)")?
        }
        Err(e) => return Err(e).context("cannot run fusermount3"),
    };
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim();
        if msg.contains("busy") {
            bail!("{} is busy: files are still open there (close them, or use --lazy)", mountpoint.display());
        }
        bail!("cannot unmount {}: {msg}", mountpoint.display());
    }
    Ok(())
}
