//! The command line: argument shapes (clap derive) and one function per command.

mod check;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config.
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "zoomd",
    version,
    about = "Creates recurring Zoom meetings from a schedule and archives their cloud recordings"
)]
pub struct Cli {
    /// The schedule file [default: $ZOOMD_CONFIG, else ./daemon.toml, else /etc/zoomd/daemon.toml]
    #[arg(long, global = true, env = "ZOOMD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config; list each entry's next occurrences in local and UTC time
    Check(check::CheckArgs),
}

/// Runs one command; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let config_path = crate::config::config_path(cli.config);
    match cli.command {
        Command::Check(args) => check::run(&config_path, &args),
    }
}
