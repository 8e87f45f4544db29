//! Passphrases, vaults and the local-state key: everything between a config and a set
//! of ready providers. Nothing is written until every existing vault has opened.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oxidrive_crypto::keys::{MasterKey, Purpose};
use oxidrive_crypto::vault::{KdfParams, Vault};
use oxidrive_providers::{Backend, Provider, ProviderSpec};
use ring::rand::SystemRandom;

/// Where a passphrase comes from, in order: a file, an environment variable, the terminal.
#[derive(Debug, Clone)]
pub struct PassSource {
    pub file: Option<PathBuf>,
    pub env: &'static str,
}

impl PassSource {
    /// The passphrase that unlocks: `--passphrase-file`, `OXIDRIVE_PASSPHRASE`, terminal.
    pub fn current(file: Option<PathBuf>) -> Self {
        Self { file, env: "OXIDRIVE_PASSPHRASE" }
    }

    /// A new passphrase: `--new-passphrase-file`, `OXIDRIVE_NEW_PASSPHRASE`, terminal.
    pub fn new_one(file: Option<PathBuf>) -> Self {
        Self { file, env: "OXIDRIVE_NEW_PASSPHRASE" }
    }

    /// `confirm`: ask twice on a terminal (a new passphrase).
    pub fn get(&self, prompt: &str, confirm: bool) -> Result<Vec<u8>> {
        if let Some(file) = &self.file {
            let text =
                std::fs::read(file).with_context(|| format!("cannot read passphrase file {}", file.display()))?;
            let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
            return non_empty(line.strip_suffix(b"\r").unwrap_or(line).to_vec());
        }
        if let Some(p) = std::env::var_os(self.env) {
            return non_empty(p.into_encoded_bytes());
        }
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            bail!("a passphrase is needed: set {}, pass a passphrase file, or run in a terminal", self.env);
        }
        let first = rpassword::prompt_password(prompt).context("cannot read the passphrase")?;
        if confirm {
            let again = rpassword::prompt_password("Repeat the passphrase: ").context("cannot read the passphrase")?;
            if again != first {
                bail!("the two passphrases differ; nothing was changed");
            }
        }
        non_empty(first.into_bytes())
    }
}

fn non_empty(p: Vec<u8>) -> Result<Vec<u8>> {
    if p.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(p)
}

pub struct Unlocked {
    pub providers: Vec<(ProviderSpec, Provider)>,
    /// Providers that could not start, with the reason: shown as empty read-only
    /// folders, never failing the whole mount.
    pub failed: Vec<(ProviderSpec, String)>,
    /// Key for local state (the metadata index); `None` when nothing is encrypted.
    pub local_key: Option<[u8; 32]>,
}

/// Opens every provider: plain ones as they are, encrypted ones through their vault
/// (created on first use with the same passphrase). The local vault in `state_dir`
/// protects the key of oxidrive's local state the same way.
pub async fn open_all(specs: Vec<ProviderSpec>, state_dir: &Path, pass: &PassSource) -> Result<Unlocked> {
    let local_vault_path = state_dir.join("local.vault");
    let mut backends = Vec::new();
    let mut failed = Vec::new();
    // Written only once the passphrase is known good: a failed unlock changes nothing.
    let mut seen_now = Vec::new();
    for spec in specs {
        let seen = SeenProvider::new(state_dir, &spec.name);
        let started = async {
            let backend = Backend::from_spec(&spec)?;
            let vault = if spec.encrypt {
                let bytes = match backend.read_vault().await {
                    Ok(bytes) => {
                        if let Some(b) = &bytes {
                            seen_now.push((seen.clone(), Some(b.clone())));
                        }
                        bytes
                    }
                    // Known from an earlier run: start offline with what is cached.
                    Err(e) => match seen.vault() {
                        Some(b) => {
                            tracing::warn!(provider = %spec.name, error = %e,
                                "unreachable at start; working offline from the local state until it answers");
                            Some(b)
                        }
                        None => return Err(anyhow::Error::new(e).context("unreachable: cannot read its vault header")),
                    },
                };
                Some(
                    bytes
                        .map(|b| Vault::from_bytes(&b))
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("its vault header (.oxidrive/oxidrive.vault) is damaged: {e}"))?,
                )
            } else {
                // A plain provider is contacted too, so one that is unreachable (and
                // never seen before) shows as unavailable rather than failing later.
                let reached = async {
                    backend.stat("").await.context("unreachable")?;
                    backend.list("").await.context("unreachable: cannot list its top folder")?;
                    Ok::<_, anyhow::Error>(())
                };
                match reached.await {
                    Ok(()) => seen_now.push((seen.clone(), None)),
                    Err(e) if seen.plain() => {
                        tracing::warn!(provider = %spec.name, error = %format!("{e:#}"),
                            "unreachable at start; working offline from the local state until it answers");
                    }
                    Err(e) => return Err(e),
                }
                None
            };
            Ok::<_, anyhow::Error>((backend, vault))
        };
        match started.await {
            Ok((backend, vault)) => backends.push((spec, backend, vault)),
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(provider = %spec.name, error = %why, "provider unavailable; its folder stays empty");
                failed.push((spec, why));
            }
        }
    }
    if !backends.iter().any(|(s, _, _)| s.encrypt) {
        let providers = backends
            .into_iter()
            .map(|(s, b, _)| {
                let p = Provider::plain(&s.name, b);
                (s, p)
            })
            .collect();
        remember(seen_now);
        return Ok(Unlocked { providers, failed, local_key: None });
    }
    let local_vault = match std::fs::read(&local_vault_path) {
        Ok(b) => Some(Vault::from_bytes(&b).with_context(|| format!("{} is damaged", local_vault_path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", local_vault_path.display())),
    };
    // A folder with files but no vault is not ours to encrypt: refuse before asking.
    for (spec, backend, vault) in &backends {
        if matches!(vault, Some(None))
            && backend.has_user_objects().await.with_context(|| format!("provider {:?}", spec.name))?
        {
            bail!(
                "provider {:?} holds files but no oxidrive vault: it is not an encrypted oxidrive store. \
                 Set `encrypt = false` for it, or point it at an empty folder",
                spec.name
            );
        }
    }
    let any_vault = local_vault.is_some() || backends.iter().any(|(_, _, v)| matches!(v, Some(Some(_))));
    let passphrase = if any_vault {
        pass.get("Passphrase: ", false)?
    } else {
        eprintln!("oxidrive: first use; choose a passphrase. It encrypts everything and cannot be recovered.");
        pass.get("New passphrase: ", true)?
    };

    // Check the passphrase against every existing vault before writing anything.
    let mut masters = Vec::new();
    for (spec, _, vault) in &backends {
        let master = match vault {
            Some(Some(v)) => Some(unlock(v, &passphrase, &format!("provider {:?}", spec.name))?),
            Some(None) | None => None,
        };
        masters.push(master);
    }
    let local_master = match &local_vault {
        Some(v) => Some(unlock(v, &passphrase, "local state")?),
        None => None,
    };

    let rng = SystemRandom::new();
    let mut providers = Vec::new();
    for ((spec, backend, vault), master) in backends.into_iter().zip(masters) {
        let provider = match (vault, master) {
            (None, _) => Provider::plain(&spec.name, backend),
            (Some(_), Some(master)) => Provider::encrypted(&spec.name, backend, master)?,
            (Some(_), None) => {
                let (vault, master) = Vault::create(&passphrase, KdfParams::DEFAULT, &rng)
                    .map_err(|e| anyhow::anyhow!("cannot create a vault: {e}"))?;
                let bytes = vault.to_bytes();
                backend
                    .write_vault(&bytes)
                    .await
                    .with_context(|| format!("provider {:?}: cannot write its vault header", spec.name))?;
                seen_now.push((SeenProvider::new(state_dir, &spec.name), Some(bytes.to_vec())));
                tracing::info!(provider = %spec.name, "created a new encrypted store");
                Provider::encrypted(&spec.name, backend, master)?
            }
        };
        providers.push((spec, provider));
    }
    let local_master = match local_master {
        Some(m) => m,
        None => {
            let (vault, master) = Vault::create(&passphrase, KdfParams::DEFAULT, &rng)
                .map_err(|e| anyhow::anyhow!("cannot create the local vault: {e}"))?;
            write_private(&local_vault_path, &vault.to_bytes())?;
            master
        }
    };
    let local_key = *local_master.derive_subkey(Purpose::LocalState).expose_secret();
    remember(seen_now);
    Ok(Unlocked { providers, failed, local_key: Some(local_key) })
}

fn remember(seen: Vec<(SeenProvider, Option<Vec<u8>>)>) {
    for (s, vault) in seen {
        match vault {
            Some(bytes) => s.remember_vault(&bytes),
            None => s.remember_plain(),
        }
    }
}

/// What an earlier run learnt of a provider, so the next can start while it is
/// unreachable: a copy of its vault header (the same wrapped key the provider holds)
/// or, for a plain one, that it was reached once.
#[derive(Clone)]
struct SeenProvider {
    base: PathBuf,
}

impl SeenProvider {
    fn new(state_dir: &Path, name: &str) -> Self {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        Self { base: state_dir.join("providers").join(hex) }
    }

    fn vault(&self) -> Option<Vec<u8>> {
        std::fs::read(self.base.with_extension("vault")).ok()
    }

    fn remember_vault(&self, bytes: &[u8]) {
        if self.vault().as_deref() != Some(bytes)
            && let Err(e) = write_private(&self.base.with_extension("vault"), bytes)
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot keep a copy of a vault header for offline starts");
        }
    }

    fn plain(&self) -> bool {
        self.base.with_extension("seen").exists()
    }

    fn remember_plain(&self) {
        if !self.plain()
            && let Err(e) = write_private(&self.base.with_extension("seen"), b"")
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot note a provider for offline starts");
        }
    }
}

/// One provider, for offline tools: its vault must exist (nothing is created).
pub async fn open_one(spec: ProviderSpec, pass: &PassSource) -> Result<Provider> {
    let backend = Backend::from_spec(&spec).with_context(|| format!("provider {:?}", spec.name))?;
    if !spec.encrypt {
        return Ok(Provider::plain(&spec.name, backend));
    }
    let bytes = backend
        .read_vault()
        .await
        .with_context(|| format!("provider {:?} is unreachable", spec.name))?
        .with_context(|| format!("provider {:?} has no vault header: it was never used encrypted", spec.name))?;
    let vault = Vault::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{:?}: vault header damaged: {e}", spec.name))?;
    let master = unlock(&vault, &pass.get("Passphrase: ", false)?, &format!("provider {:?}", spec.name))?;
    Ok(Provider::encrypted(&spec.name, backend, master)?)
}

fn unlock(vault: &Vault, passphrase: &[u8], what: &str) -> Result<MasterKey> {
    vault.unlock(passphrase).map_err(|e| match e {
        oxidrive_crypto::Error::WrongPassphrase => {
            anyhow::anyhow!("wrong passphrase for {what}; nothing was mounted or changed")
        }
        other => anyhow::anyhow!("cannot open the vault of {what}: {other}"),
    })
}

/// Writes a file readable only by its owner, replacing it atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("file has no parent folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The key of local copies when no provider is encrypted (so there is no passphrase):
/// random, kept beside the plain index. It guards nothing the plain providers do not
/// already show; it exists so both modes share one code path and format.
pub fn plain_copy_key(state_dir: &Path) -> Result<[u8; 32]> {
    let path = state_dir.join("copies-plain.key");
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| anyhow::anyhow!("{} is damaged (not 32 bytes)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                .map_err(|_| anyhow::anyhow!("no randomness for the local copy key"))?;
            write_private(&path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
