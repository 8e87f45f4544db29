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
