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
