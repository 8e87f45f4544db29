//! `oxidrive`: one folder over every storage you own.

mod cli;
mod config;
mod control;
mod decrypt_cmd;
mod init_cmd;
mod mount_cmd;
mod mountpoint;
mod paths;
mod pin_cmd;
mod provider_cmd;
mod trash_cmd;
mod unlock;
mod unmount_cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let verbose = matches!(&cli.command, cli::Command::Mount(a) if a.verbose);
    let quiet = !matches!(&cli.command, cli::Command::Mount(_));
    init_logging(verbose, quiet);
    let result = match cli.command {
        cli::Command::Mount(args) => mount_cmd::run(args),
        cli::Command::Unmount(args) => unmount_cmd::run(args),
        cli::Command::Init(args) => init_cmd::init(args),
        cli::Command::Passwd(args) => init_cmd::passwd(args),
        cli::Command::Decrypt(args) => decrypt_cmd::run(args),
        cli::Command::Provider(args) => provider_cmd::run(args),
        cli::Command::Status => control::status(),
        cli::Command::Sync(args) => control::sync(args),
        cli::Command::Pin(args) => pin_cmd::pin(args),
        cli::Command::Unpin(args) => pin_cmd::unpin(args),
        cli::Command::Free(args) => pin_cmd::free(args),
        cli::Command::Trash { action } => trash_cmd::run(action),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxidrive: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides. Tools other than `mount` log warnings only.
fn init_logging(verbose: bool, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose {
        "debug"
    } else if quiet {
        "warn"
    } else {
        "info"
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // reqsign (OpenDAL's request signer) logs credentials, keys included, at debug.
    if let Ok(quiet_signer) = "reqsign=info".parse() {
        filter = filter.add_directive(quiet_signer);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
