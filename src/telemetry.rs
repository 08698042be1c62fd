//! Logging: tracing-subscriber with an env filter (`ZOOMD_LOG`).
//!
//! Under systemd (`JOURNAL_STREAM` set, stderr connected to the journal) events go natively
//! to journald with their fields (entry key, occurrence, meeting id, file id) as structured
//! journal fields, and without a timestamp of ours (journald adds its own). Otherwise lines
//! go to stderr as text or JSON; colour only on a terminal and without `NO_COLOR`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written when not logging to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber with `default` as the filter unless `ZOOMD_LOG` is set.
pub fn init(format: LogFormat, default: &str) {
    let filter =
        || EnvFilter::try_from_env("ZOOMD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(journald.with_syslog_identifier("zoomd".into()))
            .try_init();
        return;
    }
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
