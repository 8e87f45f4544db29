//! `oxidrive decrypt`: a provider's whole tree back to plain files, without mounting.
//! Every object is authenticated; one that fails is reported and skipped, never written.

use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use oxidrive_providers::{LocalSink, META_DIR, ObjectKind, Provider, join};

use crate::cli::DecryptArgs;
use crate::config::Config;
use crate::paths::Dirs;
use crate::unlock::{self, PassSource};

struct FileSink(std::fs::File);

impl LocalSink for FileSink {
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(data, offset)
    }
}

pub fn run(args: DecryptArgs) -> Result<()> {
    let dirs = Dirs::resolve()?;
    let explicit = args.config.is_some();
    let config_path = args.config.clone().unwrap_or_else(|| dirs.config_file.clone());
    let specs = Config::load(&config_path, explicit)?.providers_or_default(&dirs.default_local);
    let spec = specs
        .into_iter()
        .find(|s| s.name == args.provider)
        .with_context(|| format!("no provider named {:?} in {}", args.provider, config_path.display()))?;
    if std::fs::read_dir(&args.dest).map(|mut d| d.next().is_some()).unwrap_or(false) {
        bail!("{} is not empty; decrypt into a new or empty folder", args.dest.display());
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the I/O runtime")?;
    let pass = PassSource::current(args.passphrase_file.clone());
    let (restored, failed) = rt.block_on(async {
        let provider = unlock::open_one(spec, &pass).await?;
        // Only once the passphrase is right: a failed unlock leaves no trace.
        std::fs::create_dir_all(&args.dest).with_context(|| format!("cannot create {}", args.dest.display()))?;
        let mut tally = (0u64, 0u64);
        walk(&provider, "", &args.dest, args.with_trash, &mut tally).await?;
        Ok::<_, anyhow::Error>(tally)
    })?;
    eprintln!("oxidrive: {restored} files restored into {}", args.dest.display());
    if failed > 0 {
        bail!("{failed} objects failed authentication or could not be read; they were skipped (see above)");
    }
    Ok(())
}

/// `trash`: also the Trash, which lives in oxidrive's own top folder.
async fn walk(provider: &Provider, dir: &str, dest: &Path, trash: bool, tally: &mut (u64, u64)) -> Result<()> {
    let (entries, rejects) = provider.list_checked(dir).await.with_context(|| format!("cannot list {dir:?}"))?;
    for (object, reason) in rejects {
        eprintln!("FAILED {}: {reason}", join(dir, &format!("<object {object}>")));
        tally.1 += 1;
    }
    for (name, meta) in entries {
        if dir.is_empty() && name == META_DIR && !trash {
            continue;
        }
        let path = join(dir, &name);
        let out = dest.join(&path);
        match meta.kind {
            ObjectKind::Dir => {
                std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
                Box::pin(walk(provider, &path, dest, trash, tally)).await?;
            }
            ObjectKind::File => {
                let file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
                match provider.download(&path, &FileSink(file)).await {
                    Ok(_) => tally.0 += 1,
                    Err(e) => {
                        let _ = std::fs::remove_file(&out);
                        eprintln!("FAILED {path}: {e}");
                        tally.1 += 1;
                    }
                }
            }
        }
    }
    Ok(())
}
