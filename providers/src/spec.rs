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

/// A credential from the config: the value itself (`"..."`) or the name of an
/// environment variable holding it (`{ env = "VAR" }`). `Debug` never shows a value,
/// so specs can be logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    Value(String),
    Env { env: String },
}

impl Secret {
    /// The secret itself; reads the environment for `{ env = .. }`.
    pub fn reveal(&self) -> Result<String, String> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Env { env } => {
                std::env::var(env).map_err(|_| format!("environment variable {env} (named in the config) is not set"))
            }
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("***"),
            // The variable's name is not secret; its value is never read here.
            Secret::Env { env } => write!(f, "env:{env}"),
        }
    }
}

/// Settings every network provider shares. Each field is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Most requests in flight to this provider at once (default 16).
    pub concurrency: Option<usize>,
    /// Seconds before one request (or one read/write of a body) is abandoned and
    /// retried (default 30).
    pub timeout_secs: Option<u64>,
    /// Retries of a temporary failure, with exponential backoff (default 4).
    pub retries: Option<usize>,
}

/// OAuth credentials of the cloud drives: either a long-lived refresh token with the
/// app's client id/secret, or a short-lived access token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuth {
    pub refresh_token: Option<Secret>,
    pub client_id: Option<Secret>,
    pub client_secret: Option<Secret>,
    pub access_token: Option<Secret>,
}

// The variants repeat the tuning/OAuth fields: serde cannot flatten inside an enum that
// denies unknown fields, and denying them (typos fail loudly) matters more.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderKind {
    /// A folder on this machine, through OpenDAL's `fs` service.
    Local { path: PathBuf },
    /// Any S3-compatible store. Without keys in the config, the standard AWS
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`) and profiles apply.
    S3 {
        bucket: String,
        /// `https://host[:port]`; default AWS.
        endpoint: Option<String>,
        region: Option<String>,
        /// Folder inside the bucket that holds everything ("" = the whole bucket).
        #[serde(alias = "prefix")]
        root: Option<String>,
        access_key_id: Option<Secret>,
        secret_access_key: Option<Secret>,
        /// `bucket.host` addressing instead of `host/bucket`.
        #[serde(default)]
        virtual_host_style: bool,
        concurrency: Option<usize>,
        timeout_secs: Option<u64>,
        retries: Option<usize>,
    },
    Webdav {
        /// `https://host[:port]/path`.
        endpoint: String,
        username: Option<String>,
        password: Option<Secret>,
        root: Option<String>,
        concurrency: Option<usize>,
        timeout_secs: Option<u64>,
        retries: Option<usize>,
    },
    /// Through the system `ssh` client (so `~/.ssh/config` applies).
    Sftp {
        /// `host`, `user@host` or `ssh://[user@]host[:port]`.
        endpoint: String,
        user: Option<String>,
        /// Private key file.
        key: Option<PathBuf>,
        /// `strict` (default), `accept` or `add`.
        known_hosts_strategy: Option<String>,
        /// Absolute folder on the server; default the login directory.
        root: Option<String>,
        concurrency: Option<usize>,
        timeout_secs: Option<u64>,
        retries: Option<usize>,
    },
    Gdrive {
        root: Option<String>,
        refresh_token: Option<Secret>,
        client_id: Option<Secret>,
        client_secret: Option<Secret>,
        access_token: Option<Secret>,
        concurrency: Option<usize>,
        timeout_secs: Option<u64>,
        retries: Option<usize>,
    },
    Dropbox {
        root: Option<String>,
        refresh_token: Option<Secret>,
        client_id: Option<Secret>,
        client_secret: Option<Secret>,
        access_token: Option<Secret>,
        concurrency: Option<usize>,
        timeout_secs: Option<u64>,
        retries: Option<usize>,
    },
    Onedrive {
        root: Option<String>,
        refresh_token: Option<Secret>,
        client_id: Option<Secret>,
        client_secret: Option<Secret>,
        access_token: Option<Secret>,
        concurrency: Option<usize>,
        timeout_secs: Option<u64>,
        retries: Option<usize>,
    },
}

impl ProviderKind {
    /// The `type` key of this kind in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            ProviderKind::Local { .. } => "local",
            ProviderKind::S3 { .. } => "s3",
            ProviderKind::Webdav { .. } => "webdav",
            ProviderKind::Sftp { .. } => "sftp",
            ProviderKind::Gdrive { .. } => "gdrive",
            ProviderKind::Dropbox { .. } => "dropbox",
            ProviderKind::Onedrive { .. } => "onedrive",
        }
    }

    /// Concurrency, timeout and retry settings (all `None` for local folders).
    pub fn tuning(&self) -> Tuning {
        match self {
            ProviderKind::Local { .. } => Tuning::default(),
            ProviderKind::S3 { concurrency, timeout_secs, retries, .. }
            | ProviderKind::Webdav { concurrency, timeout_secs, retries, .. }
            | ProviderKind::Sftp { concurrency, timeout_secs, retries, .. }
            | ProviderKind::Gdrive { concurrency, timeout_secs, retries, .. }
            | ProviderKind::Dropbox { concurrency, timeout_secs, retries, .. }
            | ProviderKind::Onedrive { concurrency, timeout_secs, retries, .. } => {
                Tuning { concurrency: *concurrency, timeout_secs: *timeout_secs, retries: *retries }
            }
        }
    }

    /// The OAuth fields of a cloud drive; `None` for other kinds.
    pub fn oauth(&self) -> Option<OAuth> {
        match self {
            ProviderKind::Gdrive { refresh_token, client_id, client_secret, access_token, .. }
            | ProviderKind::Dropbox { refresh_token, client_id, client_secret, access_token, .. }
            | ProviderKind::Onedrive { refresh_token, client_id, client_secret, access_token, .. } => Some(OAuth {
                refresh_token: refresh_token.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                access_token: access_token.clone(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ProviderSpec, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let spec = parse(
            "name = \"W\"\ntype = \"s3\"\nbucket = \"b\"\naccess_key_id = \"AKIDSECRETVALUE\"\n\
             secret_access_key = { env = \"MY_SECRET_VAR\" }\n",
        )
        .unwrap();
        let dbg = format!("{spec:?}");
        assert!(!dbg.contains("AKIDSECRETVALUE"), "{dbg}");
        assert!(dbg.contains("***") && dbg.contains("env:MY_SECRET_VAR"), "{dbg}");
    }

    #[test]
    fn prefix_is_an_alias_of_root_and_unknown_keys_fail() {
        let spec = parse("name = \"S\"\ntype = \"s3\"\nbucket = \"b\"\nprefix = \"p/q\"\n").unwrap();
        assert!(matches!(spec.kind, ProviderKind::S3 { root: Some(ref r), .. } if r == "p/q"));
        let bad = parse("name = \"S\"\ntype = \"webdav\"\nendpoint = \"http://x\"\npasword = \"p\"\n");
        assert!(bad.unwrap_err().to_string().contains("pasword"));
    }
}
