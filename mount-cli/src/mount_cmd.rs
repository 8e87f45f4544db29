use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use oxidrive_cache::{Index, Store};
use oxidrive_platform::MountOptions;
use oxidrive_vfs::{Caller, RootSpec, Vfs, ViewConfig};

use crate::cli::MountArgs;
use crate::config::Config;
use crate::paths::{Dirs, default_mountpoint};
use crate::unlock::{self, PassSource};
use crate::{mountpoint, unmount_cmd};

pub fn run(args: MountArgs) -> Result<()> {
    // HTTP providers use rustls with ring (we already build ring; aws-lc is not needed).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let dirs = Dirs::resolve()?;
    let explicit = args.config.is_some();
    let config_path = args.config.clone().unwrap_or_else(|| dirs.config_file.clone());
    let specs = Config::load(&config_path, explicit)?.providers_or_default(&dirs.default_local);

    let mountpoint = match &args.mountpoint {
        Some(m) => m.clone(),
        None => default_mountpoint()?,
    };
    let mountpoint = mountpoint::prepare(&mountpoint)?;

    std::fs::create_dir_all(&dirs.state).with_context(|| format!("cannot create {}", dirs.state.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("oxidrive-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let pass = PassSource::current(args.passphrase_file.clone());
    let unlocked = rt.block_on(unlock::open_all(specs, &dirs.state, &pass))?;

    let staging = dirs.cache.join("staging");
    // Staging files are never the only copy of acknowledged data: close/fsync upload
    // before returning. Leftovers from a crash are therefore safe to drop.
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    // An encrypted index when anything is encrypted; a separate plain one otherwise, so
    // the two never meet.
    let index_file = if unlocked.local_key.is_some() { "index.sqlite" } else { "index-plain.sqlite" };
    let index =
        Arc::new(Index::open(&dirs.state.join(index_file), unlocked.local_key.as_ref()).with_context(|| {
            format!("cannot open the metadata index {} (wrong key, or damaged)", dirs.state.join(index_file).display())
        })?);

    let names: Vec<String> = unlocked.providers.iter().map(|(s, _)| s.name.clone()).collect();
    let mut roots = Vec::new();
    for (spec, provider) in unlocked.providers {
        let store = Arc::new(Store::new(&spec.name, provider, index.clone(), &staging));
        roots.push(RootSpec { name: spec.name.clone(), shared: spec.shared, store: Ok(store) });
    }
    for (spec, why) in unlocked.failed {
        roots.push(RootSpec { name: spec.name.clone(), shared: spec.shared, store: Err(why) });
    }
    let owner = Caller { uid: nix::unistd::getuid().as_raw(), gid: nix::unistd::getgid().as_raw() };
    let vfs = Arc::new(Vfs::new(roots, ViewConfig::default(), owner)?);

    let privileged = nix::unistd::geteuid().is_root() || user_allow_other();
    let opts = MountOptions { auto_unmount: privileged, allow_other: false };
    let handle = oxidrive_platform::mount(vfs.clone(), &mountpoint, rt.handle().clone(), &opts)
        .with_context(|| format!("cannot mount at {}", mountpoint.display()))?;
    tracing::info!(mountpoint = %mountpoint.display(), providers = ?names, "mounted; Ctrl-C or `oxidrive unmount` to stop");

    let signalled = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok::<_, std::io::Error>(true),
                _ = term.recv() => return Ok(true),
                _ = tick.tick() => if handle.is_finished() { return Ok(false) },
            }
        }
    })?;

    if signalled {
        tracing::info!("stopping: uploading open files, then unmounting");
        if let Err(e) = rt.block_on(vfs.flush_all()) {
            tracing::error!(error = %e, "some open files could not be uploaded");
        }
        if let Err(e) = unmount_cmd::unmount(&mountpoint, false) {
            tracing::warn!(error = %e, "clean unmount failed; detaching lazily");
            unmount_cmd::unmount(&mountpoint, true)?;
        }
    }
    match handle.join() {
        // After our own (possibly lazy) unmount the kernel may abort the connection
        // instead of closing it; that is the end we asked for.
        Err(e) if signalled && e.raw_os_error() == Some(libc::ECONNABORTED) => {}
        other => other.context("filesystem session ended with an error")?,
    }
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
    Ok(())
}

/// Whether /etc/fuse.conf lets ordinary users pass allow_other/auto_unmount.
fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .map(|t| t.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}
