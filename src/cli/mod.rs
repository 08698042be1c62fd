//! The command line: argument shapes (clap derive) and one function per command.

mod calendar;
mod check;
mod demo;
mod output;
mod plan;
mod progress;
mod query;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::telemetry::LogFormat;

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

    /// Log line format on stderr (the filter comes from $ZOOMD_LOG, default "info")
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify)
    Run,
    /// One pass of every step (create/update meetings, poll recordings, download), then exit
    Sync,
    /// Validate the config; list each entry's next occurrences in local and UTC time
    Check(check::CheckArgs),
    /// The whole pipeline against a simulated Zoom on loopback, in a temp dir; ends with a summary
    Demo(demo::DemoArgs),
    /// Print a bearer token for the configured credentials (for curl and jwt.io checks)
    Token,
    /// What is upcoming, pending, archived today and failed (reads the database only)
    Status(query::StatusArgs),
    /// List meetings: all (newest first), --upcoming or --past, optionally one --key
    Meetings(query::MeetingsArgs),
    /// Print the meetings that have not ended as an iCalendar (RFC 5545) feed, optionally of
    /// one --key
    Calendar(calendar::CalendarArgs),
    /// List recording files (newest meeting first), optionally in one --state
    Recordings(query::RecordingsArgs),
    /// Put failed downloads back in the queue: one file by ID, or every one with --failed
    Retry(query::RetryArgs),
    /// What the next meetings pass would do: creates, updates, cancellations (held or not),
    /// deferrals; from the file and the database, without calling Zoom
    Plan(plan::PlanArgs),
    /// Confirm the cancellations a plan holds; the running daemon (or, without one, apply
    /// itself) carries them out at once
    Apply(plan::ApplyArgs),
}

/// Runs one command; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let config_path = crate::config::config_path(cli.config);
    match cli.command {
        Command::Check(args) => check::run(&config_path, &args).await,
        Command::Run => {
            crate::telemetry::init(cli.log_format, "info");
            run::daemon(&config_path).await
        }
        Command::Sync => {
            crate::telemetry::init(cli.log_format, "info");
            run::sync(&config_path).await
        }
        Command::Demo(args) => {
            // The demo prints its own story; the log shows only trouble unless asked.
            crate::telemetry::init(cli.log_format, "warn");
            demo::run(&args).await
        }
        Command::Token => {
            crate::telemetry::init(cli.log_format, "info");
            run::token(&config_path).await
        }
        Command::Status(args) => query::status(&config_path, &args).await,
        Command::Meetings(args) => query::meetings(&config_path, &args).await,
        Command::Calendar(args) => calendar::calendar(&config_path, &args).await,
        Command::Recordings(args) => query::recordings(&config_path, &args).await,
        Command::Retry(args) => query::retry(&config_path, &args).await,
        Command::Plan(args) => plan::plan(&config_path, &args).await,
        Command::Apply(args) => {
            crate::telemetry::init(cli.log_format, "info");
            plan::apply(&config_path, &args).await
        }
    }
}

/// Loads the config or says why not (exit 2).
fn load(path: &Path) -> Result<Config, ExitCode> {
    match Config::load(path) {
        Ok(c) => {
            for w in &c.warnings {
                tracing::warn!("{w}");
            }
            Ok(c)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

fn exit_for(e: &crate::daemon::DaemonError) -> ExitCode {
    match e {
        crate::daemon::DaemonError::Config(ConfigError::Secret(_) | ConfigError::Invalid(_))
        | crate::daemon::DaemonError::Config(ConfigError::Read { .. })
        | crate::daemon::DaemonError::Objects(_)
        | crate::daemon::DaemonError::Object(crate::objects::ObjectError::Setup { .. }) => {
            ExitCode::from(EXIT_INVALID)
        }
        _ => ExitCode::from(EXIT_RUNTIME),
    }
}
