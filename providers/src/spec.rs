use std::path::PathBuf;

use serde::Deserialize;

/// One `[[provider]]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Folder name shown under `My Drive/` (or `Shared/`).
    pub name: String,
    #[serde(flatten)]
    pub kind: ProviderKind,
    /// Shown under `Shared/` instead of `My Drive/`.
    #[serde(default)]
    pub shared: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderKind {
    /// A folder on this machine, through OpenDAL's `fs` service.
    Local { path: PathBuf },
}
