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
    /// How many files `Recents/` shows (default 50).
    #[serde(default)]
    pub recents: Option<usize>,
    /// Days a deleted item stays in `Trash/` before it is deleted for good (default 30).
    #[serde(default)]
    pub trash_days: Option<u64>,
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
        config.validate().with_context(|| format!("config file {} is not valid", path.display()))?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(n) = self.recents
            && !(1..=10_000).contains(&n)
        {
            bail!("recents = {n}: Recents shows between 1 and 10000 files");
        }
        if let Some(n) = self.trash_days
            && !(1..=36_500).contains(&n)
        {
            bail!("trash_days = {n}: items stay in Trash between 1 and 36500 days");
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.provider {
            if p.name.is_empty() || p.name.contains('/') || p.name == "." || p.name == ".." {
                bail!("provider name {:?} cannot be a folder name", p.name);
            }
            if !seen.insert((&p.name, p.shared)) {
                bail!("two providers are named {:?}", p.name);
            }
            validate_kind(&p.name, &p.kind)?;
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

/// Checks what serde cannot: absolute paths, URLs with a scheme, sane limits.
fn validate_kind(name: &str, kind: &ProviderKind) -> Result<()> {
    let url = |what: &str, u: &str| -> Result<()> {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            bail!("provider {name:?}: {what} {u:?} must start with http:// or https://");
        }
        Ok(())
    };
    match kind {
        ProviderKind::Local { path } => {
            if !path.is_absolute() {
                bail!("provider {name:?}: path {} must be absolute", path.display());
            }
        }
        ProviderKind::S3 { bucket, endpoint, .. } => {
            if bucket.is_empty() || bucket.contains('/') {
                bail!("provider {name:?}: bucket {bucket:?} is not a bucket name (put folders in `prefix`)");
            }
            if let Some(e) = endpoint {
                url("endpoint", e)?;
            }
        }
        ProviderKind::Webdav { endpoint, .. } => url("endpoint", endpoint)?,
        ProviderKind::Sftp { endpoint, root, key, known_hosts_strategy, .. } => {
            if endpoint.is_empty() {
                bail!("provider {name:?}: endpoint is empty");
            }
            if let Some(r) = root.as_deref().filter(|r| !r.starts_with('/')) {
                bail!("provider {name:?}: root {r:?} must be an absolute path on the server");
            }
            if let Some(k) = key.as_deref().filter(|k| !k.is_absolute()) {
                bail!("provider {name:?}: key {} must be an absolute path", k.display());
            }
            if let Some(s) = known_hosts_strategy
                .as_deref()
                .filter(|s| !["strict", "accept", "add"].contains(&s.to_lowercase().as_str()))
            {
                bail!("provider {name:?}: known_hosts_strategy {s:?} is not strict, accept or add");
            }
        }
        ProviderKind::Gdrive { .. } | ProviderKind::Dropbox { .. } | ProviderKind::Onedrive { .. } => {}
    }
    let t = kind.tuning();
    if t.concurrency == Some(0) || t.timeout_secs == Some(0) {
        bail!("provider {name:?}: concurrency and timeout_secs must be at least 1");
    }
    Ok(())
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
    fn parses_and_checks_network_providers() {
        let c = parse(
            "[[provider]]\nname = \"S\"\ntype = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\n\
             prefix = \"team\"\nsecret_access_key = { env = \"S3_SECRET\" }\naccess_key_id = \"k\"\n\
             [[provider]]\nname = \"W\"\ntype = \"webdav\"\nendpoint = \"https://dav.example\"\nusername = \"u\"\n\
             password = \"p\"\nconcurrency = 4\n\
             [[provider]]\nname = \"F\"\ntype = \"sftp\"\nendpoint = \"ssh://h:2222\"\nroot = \"/srv\"\n\
             [[provider]]\nname = \"D\"\ntype = \"dropbox\"\nrefresh_token = \"r\"\nclient_id = \"i\"\n",
        )
        .unwrap();
        assert_eq!(c.provider.len(), 4);
        let e = parse("[[provider]]\nname = \"W\"\ntype = \"webdav\"\nendpoint = \"dav.example\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("http://"), "{e:#}");
        let e = parse("[[provider]]\nname = \"F\"\ntype = \"sftp\"\nendpoint = \"h\"\nroot = \"srv\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("absolute"), "{e:#}");
        let e = parse("[[provider]]\nname = \"S\"\ntype = \"s3\"\nbucket = \"b/c\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("prefix"), "{e:#}");
    }

    #[test]
    fn empty_config_means_zero_config_local() {
        let c = parse("").unwrap();
        let p = c.providers_or_default(Path::new("/data/local"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "Local");
    }
}
