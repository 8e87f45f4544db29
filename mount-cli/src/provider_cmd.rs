//! `oxidrive provider add|list|remove|check`: edits and validates the config file.
//! Secrets are never printed: `list` shows only non-secret fields and URLs without
//! user info, and errors name fields, never values.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use oxidrive_providers::{Backend, ObjectKind, ProviderKind, ProviderSpec};

use crate::cli::{ProviderAction, ProviderArgs};
use crate::config::Config;
use crate::paths::Dirs;

/// Fields whose values are secrets: accepted as `-` (stdin) or `env:VAR` too.
const SECRET_FIELDS: &[&str] =
    &["access_key_id", "secret_access_key", "password", "refresh_token", "client_id", "client_secret", "access_token"];
const INT_FIELDS: &[&str] = &["concurrency", "timeout_secs", "retries"];
const BOOL_FIELDS: &[&str] = &["virtual_host_style"];

pub fn run(args: ProviderArgs) -> Result<()> {
    let path = match &args.config {
        Some(p) => p.clone(),
        None => Dirs::resolve()?.config_file,
    };
    match args.action {
        ProviderAction::Add { name, kind, shared, no_encrypt, settings } => {
            add(&path, &name, &kind, shared, !no_encrypt, &settings)
        }
        ProviderAction::List => list(&path),
        ProviderAction::Remove { name } => remove(&path, &name),
        ProviderAction::Check { name } => check(&path, name.as_deref()),
    }
}

fn add(path: &Path, name: &str, kind: &str, shared: bool, encrypt: bool, settings: &[String]) -> Result<()> {
    let mut doc = read_table(path)?;
    let mut entry = toml::Table::new();
    entry.insert("name".into(), name.into());
    entry.insert("type".into(), kind.into());
    if shared {
        entry.insert("shared".into(), true.into());
    }
    if !encrypt {
        entry.insert("encrypt".into(), false.into());
    }
    for kv in settings {
        let (key, value) = kv.split_once('=').with_context(|| format!("{kv:?} is not KEY=VALUE"))?;
        let key = key.trim();
        if ["name", "type", "shared", "encrypt"].contains(&key) {
            bail!("{key} is set by the command's own arguments, not as KEY=VALUE");
        }
        let v = setting_value(key, value)?;
        entry.insert(key.to_owned(), v);
    }
    let providers = doc.entry("provider").or_insert_with(|| toml::Value::Array(Vec::new()));
    let toml::Value::Array(list) = providers else { bail!("{}: `provider` is not a list of tables", path.display()) };
    if list.iter().any(|p| p.get("name").and_then(|n| n.as_str()) == Some(name)) {
        bail!("a provider named {name:?} already exists (remove it first)");
    }
    list.push(toml::Value::Table(entry));
    // Parse what we are about to write exactly as `mount` will, so a bad setting fails
    // here and the file is left unchanged.
    let text = toml::to_string(&doc).context("cannot write the config")?;
    let config: Config = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    config.validate()?;
    write_private(path, &text)?;
    println!("added provider {name:?} ({kind}) to {}", path.display());
    println!("run `oxidrive provider check {}` to test it", shell_word(name));
    Ok(())
}

/// A setting's TOML value: numbers and booleans where the field wants them; for
/// secrets `-` reads stdin and `env:VAR` stores a reference to the variable.
fn setting_value(key: &str, value: &str) -> Result<toml::Value> {
    if INT_FIELDS.contains(&key) {
        let n: i64 = value.parse().with_context(|| format!("{key} must be a whole number"))?;
        return Ok(n.into());
    }
    if BOOL_FIELDS.contains(&key) {
        let b: bool = value.parse().with_context(|| format!("{key} must be true or false"))?;
        return Ok(b.into());
    }
    if SECRET_FIELDS.contains(&key) {
        if let Some(var) = value.strip_prefix("env:") {
            let mut t = toml::Table::new();
            t.insert("env".into(), var.into());
            return Ok(toml::Value::Table(t));
        }
        if value == "-" {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).with_context(|| format!("cannot read {key} from stdin"))?;
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                bail!("{key}: nothing was read from stdin");
            }
            return Ok(line.into());
        }
    }
    Ok(value.into())
}

fn list(path: &Path) -> Result<()> {
    let config = Config::load(path, false)?;
    if config.provider.is_empty() {
        println!("no providers configured in {}: mounts show the zero-config \"Local\" folder", path.display());
        return Ok(());
    }
    println!("{:<20} {:<9} {:<7} {:<8} WHERE", "NAME", "TYPE", "SHARED", "ENCRYPT");
    for p in &config.provider {
        println!(
            "{:<20} {:<9} {:<7} {:<8} {}",
            p.name,
            p.kind.type_name(),
            yes_no(p.shared),
            yes_no(p.encrypt),
            location(&p.kind)
        );
    }
    Ok(())
}

fn remove(path: &Path, name: &str) -> Result<()> {
    let mut doc = read_table(path)?;
    let Some(toml::Value::Array(list)) = doc.get_mut("provider") else {
        bail!("no provider named {name:?} in {}", path.display());
    };
    let before = list.len();
    list.retain(|p| p.get("name").and_then(|n| n.as_str()) != Some(name));
    if list.len() == before {
        bail!("no provider named {name:?} in {}", path.display());
    }
    let text = toml::to_string(&doc).context("cannot write the config")?;
    write_private(path, &text)?;
    println!("removed provider {name:?}; its files stay where they are");
    Ok(())
}

fn check(path: &Path, only: Option<&str>) -> Result<()> {
    // HTTP providers use rustls with ring, as in `mount`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::load(path, false)?;
    let specs: Vec<&ProviderSpec> = config.provider.iter().filter(|p| only.is_none_or(|n| p.name == n)).collect();
    if let Some(n) = only.filter(|_| specs.is_empty()) {
        bail!("no provider named {n:?} in {}", path.display());
    }
    if specs.is_empty() {
        println!("no providers configured in {}", path.display());
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start a runtime")?;
    let mut failed = 0;
    for spec in specs {
        let started = Instant::now();
        match rt.block_on(probe(spec)) {
            Ok(report) => {
                println!("{} ({}): ok in {:.2} s", spec.name, spec.kind.type_name(), started.elapsed().as_secs_f64());
                for line in report {
                    println!("  {line}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("{} ({}): FAILED: {e:#}", spec.name, spec.kind.type_name());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} provider(s) failed the check");
    }
    Ok(())
}

/// Writes, reads (whole and a range), lists and deletes a probe object and a probe
/// directory marker under `.oxidrive/`; returns the capability report.
async fn probe(spec: &ProviderSpec) -> Result<Vec<String>> {
    let backend = Backend::from_spec(spec).context("invalid settings")?;
    let stamp = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let file = format!(".oxidrive/check-{stamp}");
    let dir = format!(".oxidrive/check-dir-{stamp}");
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    backend.write_all(&file, data.clone()).await.context("cannot write a probe object")?;
    let result = async {
        let back = backend.read_all(&file).await.context("cannot read the probe object back")?;
        if back != data {
            bail!("the probe object read back differs from what was written");
        }
        let range = backend.read_range(&file, 1000, 100).await.context("cannot read a range")?;
        if range != data[1000..1100] {
            bail!("a range read returned the wrong bytes");
        }
        backend.create_dir(&dir).await.context("cannot create a directory")?;
        let meta = backend.stat(&dir).await.context("cannot stat the probe directory")?;
        if meta.map(|m| m.kind) != Some(ObjectKind::Dir) {
            bail!("a directory just created is not seen as a directory");
        }
        let listed = backend.list(".oxidrive").await.context("cannot list")?;
        let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        if !names.contains(&file.trim_start_matches(".oxidrive/"))
            || !names.contains(&dir.trim_start_matches(".oxidrive/"))
        {
            bail!("a listing misses the probe objects just written");
        }
        backend.delete_dir(&dir).await.context("cannot delete the probe directory")?;
        Ok(())
    }
    .await;
    // Clean up even when a step failed.
    let deleted = backend.delete_file(&file).await;
    result?;
    deleted.context("cannot delete the probe object")?;
    if backend.stat(&file).await.context("cannot stat")?.is_some() {
        bail!("the probe object is still there after delete");
    }
    let c = backend.capabilities();
    Ok(vec![
        "write, read, range read, mkdir, list, delete: ok".to_owned(),
        format!("rename: {}", if c.rename { "native" } else { "copy + delete (emulated)" }),
        format!("copy: {}", yes_no(c.copy)),
        format!("range read: {}", yes_no(c.range_read)),
        format!("write if not exists: {}", yes_no(c.write_if_not_exists)),
        format!("write if unchanged (etag): {}", yes_no(c.write_if_match)),
        format!("encrypt: {}", yes_no(spec.encrypt)),
    ])
}

/// Where a provider points, without any secret (URL user info is cut).
fn location(kind: &ProviderKind) -> String {
    match kind {
        ProviderKind::Local { path } => path.display().to_string(),
        ProviderKind::S3 { bucket, endpoint, root, .. } => {
            let host = endpoint.as_deref().map(strip_userinfo).unwrap_or_else(|| "aws".into());
            format!("{host} bucket={bucket}{}", root.as_deref().map(|r| format!(" prefix={r}")).unwrap_or_default())
        }
        ProviderKind::Webdav { endpoint, username, root, .. } => format!(
            "{}{}{}",
            strip_userinfo(endpoint),
            root.as_deref().map(|r| format!(" root={r}")).unwrap_or_default(),
            username.as_deref().map(|u| format!(" user={u}")).unwrap_or_default()
        ),
        ProviderKind::Sftp { endpoint, user, root, .. } => format!(
            "{}{}{}",
            endpoint,
            root.as_deref().map(|r| format!(" root={r}")).unwrap_or_default(),
            user.as_deref().map(|u| format!(" user={u}")).unwrap_or_default()
        ),
        ProviderKind::Gdrive { root, .. }
        | ProviderKind::Dropbox { root, .. }
        | ProviderKind::Onedrive { root, .. } => {
            format!("root={}", root.as_deref().unwrap_or("/"))
        }
    }
}

/// `https://user:pass@host/x` -> `https://host/x`.
fn strip_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..host_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    if scheme.is_empty() { rest.to_owned() } else { format!("{scheme}://{rest}") }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn shell_word(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) { s.to_owned() } else { format!("{s:?}") }
}

/// The config file as a TOML table; empty when it does not exist yet.
fn read_table(path: &Path) -> Result<toml::Table> {
    match std::fs::read_to_string(path) {
        Ok(t) => toml::from_str(&t).with_context(|| format!("config file {} is not valid TOML", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read config file {}", path.display())),
    }
}

/// Replaces `path` atomically with `text`, readable by the owner only: it may hold
/// secrets. The temp file is created 0600 from the start, never chmod-ed after.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let tmp = dir.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(b"# oxidrive config: may hold secrets; keep it mode 0600.\n")?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("cannot write config file {}", path.display()))
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config.toml".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(strip_userinfo("https://u:p@dav.example/x@y"), "https://dav.example/x@y");
        assert_eq!(strip_userinfo("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn add_then_remove_keeps_the_file_private_and_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        add(&path, "W", "webdav", false, true, &["endpoint=http://127.0.0.1:1".into(), "password=env:PW".into()])
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let c = Config::load(&path, true).unwrap();
        assert_eq!(c.provider[0].name, "W");
        assert!(add(&path, "W", "webdav", false, true, &["endpoint=http://x".into()]).is_err());
        assert!(add(&path, "X", "webdav", false, true, &["endpoint=nourl".into()]).is_err());
        remove(&path, "W").unwrap();
        assert!(Config::load(&path, true).unwrap().provider.is_empty());
        assert!(remove(&path, "W").is_err());
    }
}
