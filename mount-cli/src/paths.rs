//! Where oxidrive keeps things, following the XDG base directories (so tests and
//! users can move all of it with XDG_* variables).

use std::path::PathBuf;

use anyhow::{Context, Result};

pub struct Dirs {
    pub config_file: PathBuf,
    /// The zero-config local store.
    pub default_local: PathBuf,
    pub state: PathBuf,
    pub cache: PathBuf,
    /// Sockets: the runtime directory when there is one, else the state directory.
    pub runtime: PathBuf,
}

impl Dirs {
    pub fn resolve() -> Result<Self> {
        let config = dirs::config_dir().context("cannot find a config directory (set XDG_CONFIG_HOME or HOME)")?;
        let data = dirs::data_dir().context("cannot find a data directory (set XDG_DATA_HOME or HOME)")?;
        let state = dirs::state_dir().or_else(|| dirs::home_dir().map(|h| h.join(".local/state")));
        let state = state.context("cannot find a state directory (set XDG_STATE_HOME or HOME)")?;
        let cache = dirs::cache_dir().context("cannot find a cache directory (set XDG_CACHE_HOME or HOME)")?;
        let state = state.join("oxidrive");
        let runtime = dirs::runtime_dir().map_or_else(|| state.clone(), |r| r.join("oxidrive"));
        Ok(Self {
            config_file: config.join("oxidrive/config.toml"),
            default_local: data.join("oxidrive/local"),
            state,
            cache: cache.join("oxidrive"),
            runtime,
        })
    }
}

pub fn default_mountpoint() -> Result<PathBuf> {
    Ok(dirs::home_dir().context("cannot find the home directory; name a mountpoint")?.join("Cloud"))
}
