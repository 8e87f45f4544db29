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
