use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "oxidrive", version, about = "One folder over every storage you own, encrypted and cached")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount every configured provider under one folder (stays in the foreground).
    Mount(MountArgs),
    /// Unmount a running oxidrive mount.
    Unmount(UnmountArgs),
    /// Create the vaults of encrypted providers (the first mount does it too).
    Init(InitArgs),
    /// Change the passphrase: re-wraps every vault, re-encrypts no data.
    Passwd(PasswdArgs),
    /// Restore a provider's whole tree to plain files, without mounting.
    Decrypt(DecryptArgs),
    /// Add, list, remove or check the configured providers.
    Provider(ProviderArgs),
    /// Show each provider's state and the uploads still pending (asks the running mount).
    Status,
    /// Wait until every change made so far is on the providers (asks the running mount).
    Sync(SyncArgs),
    /// Download files and folders whole and keep them cached (new files in a pinned
    /// folder are kept too); pinned data is never evicted.
    Pin(PinArgs),
    /// Let pinned files and folders be evicted again.
    Unpin(PinArgs),
    /// Drop the cached copies of files to reclaim space (changes not yet uploaded stay).
    Free(PinArgs),
    /// List, restore or empty the Trash (asks the running mount).
    Trash {
        #[command(subcommand)]
        action: TrashAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrashAction {
    /// Show what is in the Trash, newest first, with where each item came from.
    List,
    /// Put items back where they were deleted from, recreating missing folders.
    /// NAME is the item's name in the mount's Trash folder.
    Restore {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Delete everything in the Trash for good.
    Empty,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Files or folders inside the mount.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Wait until every change made so far is uploaded (the default).
    #[arg(long)]
    pub wait: bool,
    /// Look for changes made by other devices now, instead of at the next poll.
    #[arg(long)]
    pub now: bool,
    /// Apply the deletions a poll held back as suspicious (see `oxidrive status`).
    #[arg(long)]
    pub accept_deletes: bool,
    /// Give up after this many seconds, exiting non-zero and naming what is pending.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Print nothing on success.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(long, env = "OXIDRIVE_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    #[arg(long, env = "OXIDRIVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The current passphrase (else OXIDRIVE_PASSPHRASE, else the terminal).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// The new passphrase (else OXIDRIVE_NEW_PASSPHRASE, else asked twice).
    #[arg(long)]
    pub new_passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The provider's name in the config.
    #[arg(long)]
    pub provider: String,
    /// An empty or new folder to restore into.
    pub dest: PathBuf,
    #[arg(long, env = "OXIDRIVE_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Also restore the Trash, as .oxidrive/trash/ID/{data,info} (info: JSON with the
    /// original path and deletion time).
    #[arg(long)]
    pub with_trash: bool,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Where to mount; created if missing. Default: ~/Cloud
    pub mountpoint: Option<PathBuf>,
    /// Config file. Default: $XDG_CONFIG_HOME/oxidrive/config.toml
    #[arg(long, env = "OXIDRIVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log debug details (RUST_LOG overrides).
    #[arg(short, long)]
    pub verbose: bool,
    /// Read the passphrase from the first line of this file (else OXIDRIVE_PASSPHRASE,
    /// else the terminal).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Where local copies of changed files live. Default: $XDG_CACHE_HOME/oxidrive
    #[arg(long, env = "OXIDRIVE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most disk space the read cache may take (K, M, G, T suffixes); changes waiting
    /// for upload and pinned files are kept beyond it.
    #[arg(long, value_name = "SIZE", default_value = "10G")]
    pub cache_size: ByteSize,
    /// Seconds a saved file waits before upload, so quick repeated saves upload once.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub write_back: f64,
    /// Seconds between polls for changes made by other devices (`oxidrive sync --now`
    /// polls at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub poll: f64,
    /// At unmount, wait at most this many seconds for pending uploads; what is left
    /// stays in the journal and uploads at the next mount.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub drain: f64,
}

/// A size in bytes, written like `500M` or `10G` (powers of 1024).
#[derive(Debug, Clone, Copy)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
            Some((i, _)) => {
                let mult: u64 = match t[i..].to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
                    "" => 1,
                    "K" => 1 << 10,
                    "M" => 1 << 20,
                    "G" => 1 << 30,
                    "T" => 1 << 40,
                    _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
                };
                (&t[..i], mult)
            }
            None => (t, 1),
        };
        let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size like 500M or 10G"))?;
        if !n.is_finite() || n < 0.0 {
            return Err(format!("{s:?} is not a size"));
        }
        Ok(ByteSize((n * mult as f64) as u64))
    }
}

#[derive(Debug, Args)]
pub struct UnmountArgs {
    pub mountpoint: PathBuf,
    /// Detach now even if files are open; the mount ends when they are closed.
    #[arg(long)]
    pub lazy: bool,
}

#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// Config file. Default: $XDG_CONFIG_HOME/oxidrive/config.toml
    #[arg(long, env = "OXIDRIVE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: ProviderAction,
}

#[derive(Debug, Subcommand)]
pub enum ProviderAction {
    /// Add a provider to the config (created with mode 0600).
    ///
    /// Settings are KEY=VALUE (see README). A secret can be given as KEY=- (read from
    /// stdin, one line) or KEY=env:VAR (the config names the variable, not the value).
    ///
    /// Example: oxidrive provider add "Work S3" --type s3 bucket=team
    /// endpoint=https://s3.example.com access_key_id=AKIA.. secret_access_key=-
    Add {
        name: String,
        /// local, s3, webdav, sftp, gdrive, dropbox or onedrive.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// Show it under Shared/ instead of My Drive/.
        #[arg(long)]
        shared: bool,
        /// Store names and contents as they are (readable in the provider's own tools).
        #[arg(long)]
        no_encrypt: bool,
        #[arg(value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// List the providers (never their secrets).
    List,
    /// Remove a provider from the config (its data stays where it is).
    Remove { name: String },
    /// Reach each provider (or only NAME), write, read and delete a probe object
    /// under .oxidrive/, and print what it can do.
    Check { name: Option<String> },
}
