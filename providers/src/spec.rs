use std::path::PathBuf;

use serde::Deserialize;

/// One `[[provider]]` table of the config file.
// Unknown keys are rejected by `ProviderKind` (serde cannot deny them on a struct that
// flattens another), so a typo still fails loudly.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderSpec {
    /// Folder name shown under `My Drive/` (or `Shared/`).
    pub name: String,
    #[serde(flatten)]
    pub kind: ProviderKind,
    /// Shown under `Shared/` instead of `My Drive/`.
    #[serde(default)]
    pub shared: bool,
    /// Encrypt names and contents before they reach the store (the default). Turn off
    /// only for files that must stay readable in the provider's own tools.
    #[serde(default = "yes")]
    pub encrypt: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderKind {
    /// A folder on this machine, through OpenDAL's `fs` service.
    Local { path: PathBuf },
}
