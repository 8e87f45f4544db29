//! `oxidrive`: one folder over every storage you own.

mod cli;
mod config;
mod mount_cmd;
mod mountpoint;
mod paths;
mod unlock;
mod unmount_cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Mount(args) => mount_cmd::run(args),
        cli::Command::Unmount(args) => unmount_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxidrive: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
