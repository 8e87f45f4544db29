use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oxidrive_cache::{Clock, Copies, Index, Store, StoreConfig, sweep_copies};
use oxidrive_platform::MountOptions;
use oxidrive_vfs::{Caller, RootSpec, Vfs, ViewConfig};

use crate::cli::MountArgs;
use crate::config::Config;
use crate::paths::{Dirs, default_mountpoint};
use crate::unlock::{self, PassSource};
use crate::{control, mountpoint, unmount_cmd};

pub fn run(args: MountArgs) -> Result<()> {
    // HTTP providers use rustls with ring (we already build ring; aws-lc is not needed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Reads move whole parts (8-16 MiB) through memory. glibc raises its mmap threshold
    // to the largest block freed, after which such buffers come from (and stay in) the
    // heap of whichever thread freed them: a stream's memory grew to what every worker
    // thread once held. A fixed threshold returns them to the system when freed.
    // Fixing it also fixes the trim threshold at glibc's 128 KiB: then freeing one
    // read's 128 KiB buffer handed the heap top back (madvise) and the next read faulted
    // fresh zeroed pages in, ~100 µs a read. Below 2 MiB the top now stays.
    // SAFETY: mallopt only changes allocator settings; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 << 20);
    }

    let dirs = Dirs::resolve()?;
    let explicit = args.config.is_some();
    let config_path = args.config.clone().unwrap_or_else(|| dirs.config_file.clone());
    let config = Config::load(&config_path, explicit)?;
    let views = ViewConfig { recents: config.recents.unwrap_or(ViewConfig::default().recents) };
    let trash_days = config.trash_days.unwrap_or(30);
    let specs = config.providers_or_default(&dirs.default_local);

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

    // An encrypted index when anything is encrypted; a separate plain one otherwise, so
    // the two never meet.
    let index_file = if unlocked.local_key.is_some() { "index.sqlite" } else { "index-plain.sqlite" };
    let index_path = dirs.state.join(index_file);
    let index = match Index::open(&index_path, unlocked.local_key.as_ref()) {
        Ok(index) => Arc::new(index),
        Err(e) if e.is_locked() => bail!(
            "another oxidrive mount is running with this state ({}); unmount it first, or give this one \
             its own XDG_STATE_HOME",
            dirs.state.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot open the metadata index {} (wrong key, or damaged)", index_path.display())
            });
        }
    };
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| dirs.cache.clone());
    let copies_dir = cache_dir.join(if unlocked.local_key.is_some() { "copies" } else { "copies-plain" });
    std::fs::create_dir_all(&copies_dir).with_context(|| format!("cannot create {}", copies_dir.display()))?;
    // Before 0.2 open files were staged here; nothing there is needed any more.
    let _ = std::fs::remove_dir_all(dirs.cache.join("staging"));
    let swept = sweep_copies(&copies_dir, &index).context("cannot clean up the local copies")?;
    if swept > 0 {
        tracing::info!(files = swept, "removed local copies no pending change refers to");
    }
    let copy_key = match unlocked.local_key {
        Some(key) => key,
        None => unlock::plain_copy_key(&dirs.state)?,
    };
    let write_back = Duration::try_from_secs_f64(args.write_back).context("--write-back: not a number of seconds")?;
    let copies = Arc::new(Copies::new(&copies_dir, copy_key, args.cache_size.0, index.clone()));
    let store_config = StoreConfig {
        copies: copies.clone(),
        write_back,
        trash_retention: Duration::from_secs(trash_days * 86_400),
        clock: test_clock()?,
    };

    let names: Vec<String> = unlocked.providers.iter().map(|(s, _)| s.name.clone()).collect();
    let mut roots = Vec::new();
    let mut control_roots = Vec::new();
    for (spec, provider) in unlocked.providers {
        let store = Store::new(&spec.name, provider, index.clone(), store_config.clone())
            .with_context(|| format!("cannot read the journal of {:?}", spec.name))?;
        let store = Arc::new(store);
        {
            let _rt = rt.enter();
            store.start_uploads();
        }
        control_roots.push((spec.name.clone(), Ok(store.clone())));
        roots.push(RootSpec { name: spec.name.clone(), shared: spec.shared, store: Ok(store) });
    }
    for (spec, why) in unlocked.failed {
        control_roots.push((spec.name.clone(), Err(why.clone())));
        roots.push(RootSpec { name: spec.name.clone(), shared: spec.shared, store: Err(why) });
    }
    let owner = Caller { uid: nix::unistd::getuid().as_raw(), gid: nix::unistd::getgid().as_raw() };
    let stores: Vec<(usize, Arc<Store>)> =
        roots.iter().enumerate().filter_map(|(i, r)| r.store.as_ref().ok().map(|s| (i, s.clone()))).collect();
    let vfs = Arc::new(Vfs::new(roots, views, owner)?);
    let control_roots = Arc::new(control::Roots { roots: control_roots, copies, vfs: vfs.clone() });
    let socket = control::socket_path(&dirs);
    control::serve(&rt, &socket, control_roots.clone())?;
    let poll_every = Duration::try_from_secs_f64(args.poll).context("--poll: not a number of seconds")?;
    for (i, store) in stores {
        let weak = Arc::downgrade(&vfs);
        store.set_change_hook(Box::new(move |path| {
            if let Some(vfs) = weak.upgrade() {
                vfs.remote_changed(i, path);
            }
        }));
        let _rt = rt.enter();
        store.start_poller(poll_every);
    }

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
        tracing::info!("stopping: committing open files, then unmounting");
        if let Err(e) = rt.block_on(vfs.flush_all()) {
            tracing::error!(error = %e, "some open files could not be committed");
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
    drain(&rt, &control_roots, args.drain);
    let _ = std::fs::remove_file(&socket);
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
    Ok(())
}

/// Gives pending uploads a last chance; what does not make it stays in the journal.
fn drain(rt: &tokio::runtime::Runtime, roots: &control::Roots, secs: f64) {
    let secs = if secs.is_finite() { secs.clamp(0.0, 1e9) } else { 0.0 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let pending = roots.pending_summary();
    if pending.is_empty() {
        return;
    }
    tracing::info!(pending = %pending.join("; "), "uploading what is still pending before exit");
    if !rt.block_on(roots.wait_uploaded(Some(deadline))) {
        tracing::warn!(
            pending = %roots.pending_summary().join("; "),
            "some changes are not uploaded yet; they are kept in the journal and upload at the next mount"
        );
    }
}

/// The clock deletion times and Trash retention use. `OXIDRIVE_CLOCK_SKEW_SECS` moves
/// it, so a test can see what a mount a month from now would purge.
fn test_clock() -> Result<Clock> {
    match std::env::var("OXIDRIVE_CLOCK_SKEW_SECS") {
        Ok(v) => {
            let secs: i64 = v.trim().parse().context("OXIDRIVE_CLOCK_SKEW_SECS: not a whole number of seconds")?;
            tracing::warn!(secs, "clock skewed for testing (OXIDRIVE_CLOCK_SKEW_SECS)");
            Ok(Clock::shifted(secs))
        }
        Err(_) => Ok(Clock::system()),
    }
}

/// Whether /etc/fuse.conf lets ordinary users pass allow_other/auto_unmount.
fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .map(|t| t.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}
