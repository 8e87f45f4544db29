//! `oxidrive trash list|restore|empty`: the client side, and the control server's
//! answers (over the socket of `control`).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use oxidrive_vfs::Vfs;
use serde::{Deserialize, Serialize};

use crate::cli::TrashAction;
use crate::control::request;

/// One Trash item on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Item {
    name: String,
    provider: String,
    orig: String,
    deleted_unix: u64,
    is_dir: bool,
    size: u64,
}

/// Answers one `trash-*` request line.
pub async fn answer(vfs: &Vfs, line: &str) -> String {
    let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
    let result = match verb {
        "trash-list" => vfs.trash_list().await.map(|items| {
            items
                .into_iter()
                .filter_map(|t| {
                    let item = Item {
                        name: t.name,
                        provider: t.provider,
                        orig: t.orig,
                        deleted_unix: t.deleted.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                        is_dir: t.is_dir,
                        size: t.size,
                    };
                    serde_json::to_string(&item).ok().map(|l| l + "\n")
                })
                .collect::<String>()
        }),
        "trash-restore" => match serde_json::from_str::<String>(arg) {
            Ok(name) => vfs.trash_restore(&name).await.map(|to| format!("restored: {to}\n")),
            Err(_) => return "error: trash-restore takes a JSON string\n".to_owned(),
        },
        "trash-empty" => vfs.trash_empty().await.map(|n| format!("emptied: {n}\n")),
        _ => return "error: unknown request\n".to_owned(),
    };
    result.unwrap_or_else(|e| format!("error: {e}\n"))
}

pub fn run(action: TrashAction) -> Result<()> {
    match action {
        TrashAction::List => list(),
        TrashAction::Restore { names } => {
            let mut failed = 0;
            for name in names {
                let reply = request(&format!("trash-restore {}", serde_json::to_string(&name)?))?;
                match reply.trim().strip_prefix("restored: ") {
                    Some(to) => println!("{name} -> {to}"),
                    None => {
                        eprintln!("oxidrive: {name}: {}", reply.trim().trim_start_matches("error: "));
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} items not restored");
            }
            Ok(())
        }
        TrashAction::Empty => {
            let reply = request("trash-empty")?;
            match reply.trim().strip_prefix("emptied: ") {
                Some(n) => {
                    println!("deleted {n} items for good");
                    Ok(())
                }
                None => bail!("{}", reply.trim().trim_start_matches("error: ")),
            }
        }
    }
}

fn list() -> Result<()> {
    let reply = request("trash-list")?;
    if let Some(err) = reply.strip_prefix("error: ") {
        bail!("{}", err.trim());
    }
    let items: Vec<Item> = reply.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    if items.is_empty() {
        println!("Trash is empty");
        return Ok(());
    }
    println!("{:<19}  {:>9}  NAME  (FROM)", "DELETED (UTC)", "SIZE");
    for item in items {
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(item.deleted_unix);
        let stamp = oxidrive_cache::utc_stamp(when);
        let size = if item.is_dir { "folder".to_owned() } else { item.size.to_string() };
        let name = if item.is_dir { format!("{}/", item.name) } else { item.name };
        println!("{stamp:<19}  {size:>9}  {name}  ({}/{})", item.provider, item.orig);
    }
    Ok(())
}
