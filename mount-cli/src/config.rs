//! The config file: `[[provider]]` tables. No file, or no providers, means the
//! zero-config default: one local folder store named "Local".

use std::path::Path;

use anyhow::{Context, Result, bail};
use oxidrive_providers::{ProviderKind, ProviderSpec};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub provider: Vec<ProviderSpec>,
}

impl Config {
    /// Loads `path`; a missing file is fine unless the user named it explicitly.
    pub fn load(path: &Path, explicit: bool) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read config file {}", path.display())),
        };
        let config: Config =
            toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.provider {
            if p.name.is_empty() || p.name.contains('/') || p.name == "." || p.name == ".." {
                bail!("provider name {:?} cannot be a folder name", p.name);
            }
            if !seen.insert((&p.name, p.shared)) {
                bail!("two providers are named {:?}", p.name);
            }
            let ProviderKind::Local { path } = &p.kind;
            if !path.is_absolute() {
                bail!("provider {:?}: path {} must be absolute", p.name, path.display());
            }
        }
        Ok(())
    }

    /// The providers to mount: the configured ones, or the zero-config local store.
    pub fn providers_or_default(self, default_local: &Path) -> Vec<ProviderSpec> {
        if !self.provider.is_empty() {
            return self.provider;
        }
        vec![ProviderSpec {
            name: "Local".into(),
            kind: ProviderKind::Local { path: default_local.to_owned() },
            shared: false,
            encrypt: true,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        let c: Config = toml::from_str(s)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn parses_local_providers() {
        let c = parse("[[provider]]\nname = \"Photos\"\ntype = \"local\"\npath = \"/srv/photos\"\nshared = true\n")
            .unwrap();
        assert_eq!(c.provider.len(), 1);
        assert_eq!(c.provider[0].name, "Photos");
        assert!(c.provider[0].shared);
    }

    #[test]
    fn rejects_unknown_keys_types_and_relative_paths() {
        let unknown_key = parse("[[provider]]\nname = \"A\"\ntype = \"local\"\npath = \"/a\"\ncolour = 1\n");
        assert!(format!("{:#}", unknown_key.unwrap_err()).contains("colour"));
        let unknown_type = parse("[[provider]]\nname = \"A\"\ntype = \"ftp\"\npath = \"/a\"\n");
        assert!(format!("{:#}", unknown_type.unwrap_err()).contains("ftp"));
        let relative = parse("[[provider]]\nname = \"A\"\ntype = \"local\"\npath = \"a\"\n");
        assert!(format!("{:#}", relative.unwrap_err()).contains("absolute"));
        let dup = parse(
            "[[provider]]\nname = \"A\"\ntype = \"local\"\npath = \"/a\"\n[[provider]]\nname = \"A\"\ntype = \"local\"\npath = \"/b\"\n",
        );
        assert!(format!("{:#}", dup.unwrap_err()).contains("two providers"));
    }

    #[test]
    fn empty_config_means_zero_config_local() {
        let c = parse("").unwrap();
        let p = c.providers_or_default(Path::new("/data/local"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "Local");
    }
}
