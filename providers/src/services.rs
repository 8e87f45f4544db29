//! One OpenDAL operator per provider kind, with the layers every network store needs:
//! retries with backoff for temporary errors, timeouts, and a concurrency limit.

use std::path::Path;
use std::time::Duration;

use opendal::layers::{ConcurrentLimitLayer, RetryEvent, RetryLayer, TimeoutLayer};
use opendal::{Operator, services};

use crate::error::{Error, ErrorKind, Result};
use crate::spec::{OAuth, ProviderKind, ProviderSpec, Secret, Tuning};

const DEFAULT_CONCURRENCY: usize = 16;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: usize = 4;

/// The operator for `spec`, layered ([`Backend::from_operator`](crate::Backend::from_operator)
/// takes it, with layers of the caller's own on top).
pub fn operator(spec: &ProviderSpec) -> Result<Operator> {
    let name = &spec.name;
    if !matches!(spec.kind, ProviderKind::Local { .. }) {
        install_http_transport();
    }
    let op = match &spec.kind {
        // A local folder neither throttles nor hangs like a network store: no layers.
        ProviderKind::Local { path } => return local(path),
        ProviderKind::S3 {
            bucket,
            endpoint,
            region,
            root,
            access_key_id,
            secret_access_key,
            virtual_host_style,
            ..
        } => {
            let mut b = services::S3::default().bucket(bucket).root(&abs_root(root.as_deref()));
            if let Some(e) = endpoint {
                b = b.endpoint(e);
            }
            // OpenDAL refuses to build without a region; S3-compatible servers ignore it.
            let region = region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .unwrap_or_else(|| "us-east-1".to_owned());
            b = b.region(&region);
            match (access_key_id, secret_access_key) {
                (Some(id), Some(secret)) => {
                    // Keys given: never wander off to the EC2 metadata service.
                    b = b.access_key_id(&reveal(name, "access_key_id", id)?);
                    b = b.secret_access_key(&reveal(name, "secret_access_key", secret)?);
                    b = b.disable_ec2_metadata();
                }
                (None, None) => {}
                _ => return Err(config_err(name, "set both access_key_id and secret_access_key, or neither")),
            }
            if *virtual_host_style {
                b = b.enable_virtual_host_style();
            }
            build(name, b)?
        }
        ProviderKind::Webdav { endpoint, username, password, root, .. } => {
            let mut b = services::Webdav::default().endpoint(endpoint).root(&abs_root(root.as_deref()));
            if let Some(u) = username {
                b = b.username(u);
            }
            if let Some(p) = password {
                b = b.password(&reveal(name, "password", p)?);
            }
            build(name, b)?
        }
        ProviderKind::Sftp { endpoint, user, key, known_hosts_strategy, root, .. } => {
            let mut b = services::Sftp::default().endpoint(endpoint);
            if let Some(r) = root {
                b = b.root(r);
            }
            if let Some(u) = user {
                b = b.user(u);
            }
            if let Some(k) = key {
                let k = k.to_str().ok_or_else(|| config_err(name, "key path is not valid UTF-8"))?;
                b = b.key(k);
            }
            if let Some(s) = known_hosts_strategy {
                b = b.known_hosts_strategy(s);
            }
            build(name, b)?
        }
        ProviderKind::Gdrive { root, .. } => {
            let t = tokens(name, "GDRIVE", spec.kind.oauth().unwrap_or_default())?;
            let mut b = services::Gdrive::default().root(&abs_root(root.as_deref()));
            b = match t {
                Tokens::Access(a) => b.access_token(&a),
                Tokens::Refresh { refresh, id, secret } => {
                    b.refresh_token(&refresh).client_id(&id).client_secret(&secret.unwrap_or_default())
                }
            };
            build(name, b)?
        }
        ProviderKind::Dropbox { root, .. } => {
            let t = tokens(name, "DROPBOX", spec.kind.oauth().unwrap_or_default())?;
            let mut b = services::Dropbox::default().root(&abs_root(root.as_deref()));
            b = match t {
                Tokens::Access(a) => b.access_token(&a),
                Tokens::Refresh { refresh, id, secret } => {
                    b.refresh_token(&refresh).client_id(&id).client_secret(&secret.unwrap_or_default())
                }
            };
            build(name, b)?
        }
        ProviderKind::Onedrive { root, .. } => {
            let t = tokens(name, "ONEDRIVE", spec.kind.oauth().unwrap_or_default())?;
            let mut b = services::Onedrive::default().root(&abs_root(root.as_deref()));
            b = match t {
                Tokens::Access(a) => b.access_token(&a),
                Tokens::Refresh { refresh, id, secret } => {
                    let b = b.refresh_token(&refresh).client_id(&id);
                    // Public (PKCE) apps have no client secret.
                    match secret {
                        Some(s) => b.client_secret(&s),
                        None => b,
                    }
                }
            };
            build(name, b)?
        }
    };
    Ok(layered(name, op, spec.kind.tuning()))
}

/// OpenDAL's process-wide HTTP transport (reqwest, built on first request) and
/// rustls's ring provider; both are first-installed-wins, so a caller's own choice
/// made earlier stays.
fn install_http_transport() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
    });
}

fn local(path: &Path) -> Result<Operator> {
    let root = path.to_str().ok_or_else(|| {
        Error::new(ErrorKind::ConfigInvalid, format!("local path {} is not valid UTF-8", path.display()))
    })?;
    // No OpenDAL atomic_write_dir: it is created when the operator is built (before we
    // know the folder is ours) and names temp files after the target (too long for
    // 255-byte names). `Backend` writes to `.oxidrive/tmp/<short name>` and renames.
    let builder = services::Fs::default().root(root);
    Operator::new(builder).map_err(|e| Error::from_opendal(e, format!("local provider at {root}")))
}

/// Retry outermost so a timed-out attempt is retried; the concurrency limit outside
/// both so that waiting for a slot never counts against a request's timeout.
fn layered(name: &str, op: Operator, t: Tuning) -> Operator {
    let timeout = t.timeout_secs.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT);
    let provider = name.to_owned();
    // Our own notifier: OpenDAL's default logs the error's Debug form, which is noisy.
    let notify = move |ev: RetryEvent<'_>| {
        tracing::warn!(provider = %provider, op = ?ev.op, attempt = ev.attempt,
            after_ms = ev.retry_after.as_millis() as u64, error = %ev.err, "temporary provider error; retrying");
    };
    op.layer(TimeoutLayer::new().with_timeout(timeout).with_io_timeout(timeout))
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(t.retries.unwrap_or(DEFAULT_RETRIES))
                .with_notify(notify),
        )
        .layer(ConcurrentLimitLayer::new(t.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1)))
}

fn build<B: opendal::Builder>(name: &str, b: B) -> Result<Operator> {
    Operator::new(b).map_err(|e| Error::from_opendal(e, format!("provider {name:?}: invalid settings")))
}

/// OpenDAL roots are absolute; config roots are written relative to the store.
fn abs_root(root: Option<&str>) -> String {
    format!("/{}", root.unwrap_or("").trim_matches('/'))
}

fn reveal(name: &str, field: &str, s: &Secret) -> Result<String> {
    s.reveal().map_err(|e| config_err(name, &format!("{field}: {e}")))
}

fn config_err(name: &str, msg: &str) -> Error {
    Error::new(ErrorKind::ConfigInvalid, format!("provider {name:?}: {msg}"))
}

enum Tokens {
    Access(String),
    Refresh { refresh: String, id: String, secret: Option<String> },
}

/// The OAuth tokens from the config, each falling back to `OXIDRIVE_<KIND>_<FIELD>`
/// (e.g. `OXIDRIVE_DROPBOX_REFRESH_TOKEN`) so they can stay out of the file.
fn tokens(name: &str, kind: &str, o: OAuth) -> Result<Tokens> {
    let get = |field: &str, s: Option<Secret>| -> Result<Option<String>> {
        match s {
            Some(s) => reveal(name, field, &s).map(Some),
            None => Ok(std::env::var(format!("OXIDRIVE_{kind}_{}", field.to_uppercase())).ok()),
        }
    };
    let refresh = get("refresh_token", o.refresh_token)?;
    let access = get("access_token", o.access_token)?;
    match (refresh, access) {
        (Some(refresh), _) => {
            let id = get("client_id", o.client_id)?.ok_or_else(|| {
                config_err(name, "a refresh_token needs client_id (and usually client_secret) of the OAuth app")
            })?;
            let secret = get("client_secret", o.client_secret)?;
            Ok(Tokens::Refresh { refresh, id, secret })
        }
        (None, Some(a)) => Ok(Tokens::Access(a)),
        (None, None) => Err(config_err(
            name,
            &format!(
                "needs refresh_token + client_id + client_secret (or access_token), in the config or as \
                 OXIDRIVE_{kind}_REFRESH_TOKEN etc."
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> ProviderSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn builds_every_kind_without_network() {
        let texts = [
            "name='s'\ntype='s3'\nbucket='b'\nendpoint='http://127.0.0.1:1'\naccess_key_id='k'\nsecret_access_key='s'",
            "name='w'\ntype='webdav'\nendpoint='http://127.0.0.1:1/dav'\nusername='u'\npassword='p'\nroot='x'",
            "name='f'\ntype='sftp'\nendpoint='ssh://127.0.0.1:1'\nuser='u'\nroot='/srv'\nknown_hosts_strategy='accept'",
            "name='g'\ntype='gdrive'\nrefresh_token='r'\nclient_id='i'\nclient_secret='c'",
            "name='d'\ntype='dropbox'\naccess_token='a'",
            "name='o'\ntype='onedrive'\nrefresh_token='r'\nclient_id='i'",
        ];
        for t in texts {
            let s = spec(t);
            operator(&s).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
    }

    /// OneDrive's rules reach a plain store's `check_name` (no network: a name is
    /// refused before any request). Google's and Dropbox's stores take these names.
    #[test]
    fn a_plain_onedrive_store_refuses_names_onedrive_refuses() {
        let store = |t: &str| crate::Provider::plain("o", crate::Backend::from_operator(operator(&spec(t)).unwrap()));
        let od = store("name='o'\ntype='onedrive'\nrefresh_token='r'\nclient_id='i'\nroot='Cloud'");
        assert_eq!(od.check_name("notes/a:b.txt").unwrap_err().kind(), ErrorKind::InvalidName);
        assert_eq!(od.check_name("AUX").unwrap_err().kind(), ErrorKind::InvalidName);
        assert_eq!(od.check_name(&format!("{}x", "d/".repeat(197))).unwrap_err().kind(), ErrorKind::PathTooLong);
        od.check_name("notes/a b.txt").unwrap();
        od.check_name(&"é".repeat(390)).unwrap();
        let gd = store("name='g'\ntype='gdrive'\nrefresh_token='r'\nclient_id='i'\nclient_secret='c'");
        gd.check_name("notes/a:b.txt").unwrap();
    }

    #[test]
    fn missing_oauth_tokens_are_a_clear_config_error() {
        let e = operator(&spec("name='d'\ntype='dropbox'")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.to_string().contains("refresh_token"), "{e}");
        let e = operator(&spec("name='s'\ntype='s3'\nbucket='b'\naccess_key_id='k'")).unwrap_err();
        assert!(e.to_string().contains("secret_access_key"), "{e}");
    }

    #[test]
    fn secrets_from_unset_env_are_named_not_shown() {
        let e =
            operator(&spec("name='w'\ntype='webdav'\nendpoint='http://h'\npassword={env='OXIDRIVE_TEST_UNSET_VAR'}"))
                .unwrap_err();
        assert!(e.to_string().contains("OXIDRIVE_TEST_UNSET_VAR"), "{e}");
    }
}
