//! `oxidrive init` and `oxidrive passwd`: create vaults, and change the passphrase by
//! re-wrapping every master key (data is never re-encrypted).

use anyhow::{Context, Result, bail};
use oxidrive_crypto::vault::{KdfParams, Vault};
use oxidrive_providers::Backend;
use ring::rand::SystemRandom;

use crate::cli::{InitArgs, PasswdArgs};
use crate::config::Config;
use crate::paths::Dirs;
use crate::unlock::{self, PassSource, write_private};

pub fn init(args: InitArgs) -> Result<()> {
    let dirs = Dirs::resolve()?;
    let explicit = args.config.is_some();
    let config_path = args.config.clone().unwrap_or_else(|| dirs.config_file.clone());
    let specs = Config::load(&config_path, explicit)?.providers_or_default(&dirs.default_local);
    let rt = tokio::runtime::Runtime::new().context("cannot start the I/O runtime")?;
    let pass = PassSource::current(args.passphrase_file.clone());
    let unlocked = rt.block_on(unlock::open_all(specs, &dirs.state, &pass))?;
    for (spec, provider) in &unlocked.providers {
        let mode = if provider.is_encrypted() { "encrypted" } else { "not encrypted (encrypt = false)" };
        eprintln!("oxidrive: provider {:?}: ready, {mode}", spec.name);
    }
    for (spec, why) in &unlocked.failed {
        eprintln!("oxidrive: provider {:?}: unavailable: {why}", spec.name);
    }
    if !unlocked.failed.is_empty() {
        bail!("{} provider(s) could not be initialised", unlocked.failed.len());
    }
    Ok(())
}

pub fn passwd(args: PasswdArgs) -> Result<()> {
    let dirs = Dirs::resolve()?;
    let explicit = args.config.is_some();
    let config_path = args.config.clone().unwrap_or_else(|| dirs.config_file.clone());
    let specs = Config::load(&config_path, explicit)?.providers_or_default(&dirs.default_local);
    let old = PassSource::current(args.passphrase_file.clone()).get("Current passphrase: ", false)?;
    let new = PassSource::new_one(args.new_passphrase_file.clone()).get("New passphrase: ", true)?;
    let rng = SystemRandom::new();
    let rt = tokio::runtime::Runtime::new().context("cannot start the I/O runtime")?;
    rt.block_on(async {
        // Re-wrap everything in memory first: a wrong current passphrase changes nothing.
        let mut provider_vaults = Vec::new();
        for spec in specs.iter().filter(|s| s.encrypt) {
            let backend = Backend::from_spec(spec)?;
            let Some(bytes) = backend.read_vault().await? else { continue };
            let vault =
                Vault::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{:?}: vault damaged: {e}", spec.name))?;
            let rewrapped = vault.rewrap(&old, &new, KdfParams::DEFAULT, &rng).map_err(|e| match e {
                oxidrive_crypto::Error::WrongPassphrase => {
                    anyhow::anyhow!("wrong current passphrase for provider {:?}; nothing was changed", spec.name)
                }
                other => anyhow::anyhow!("{:?}: {other}", spec.name),
            })?;
            provider_vaults.push((spec.name.clone(), backend, rewrapped));
        }
        let local_path = dirs.state.join("local.vault");
        let local =
            match std::fs::read(&local_path) {
                Ok(b) => {
                    let v = Vault::from_bytes(&b).map_err(|e| anyhow::anyhow!("local vault damaged: {e}"))?;
                    Some(v.rewrap(&old, &new, KdfParams::DEFAULT, &rng).map_err(|_| {
                        anyhow::anyhow!("wrong current passphrase for local state; nothing was changed")
                    })?)
                }
                Err(_) => None,
            };
        if provider_vaults.is_empty() && local.is_none() {
            bail!("nothing is encrypted yet; `oxidrive init` creates the vaults");
        }
        for (name, backend, vault) in provider_vaults {
            backend.write_vault(&vault.to_bytes()).await.with_context(|| format!("provider {name:?}"))?;
            eprintln!("oxidrive: provider {name:?}: passphrase changed");
        }
        if let Some(v) = local {
            write_private(&local_path, &v.to_bytes())?;
        }
        Ok(())
    })
}
