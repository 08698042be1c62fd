//! Logging: tracing-subscriber with an env filter (`ZOOMD_LOG`, default `info`) on stderr.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber with `default` as the filter unless `ZOOMD_LOG` is set.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_env("ZOOMD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
