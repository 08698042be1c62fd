//! `zoomd calendar`: the iCalendar feed of upcoming meetings on stdout.
//!
//! Read-only like the other listings: it opens the database without migrating or writing,
//! so it cannot disturb a running daemon.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;

use super::output::{emit, fail, open_read_only};

#[derive(Debug, clap::Args)]
pub struct CalendarArgs {
    /// Only the entry with this `key`
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
}

pub async fn calendar(config_path: &Path, args: &CalendarArgs) -> ExitCode {
    let store = match open_read_only(config_path).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = crate::calendar::feed(&store, args.key.as_deref(), Utc::now()).await;
    store.close().await;
    match result {
        // The feed is its own format (never JSON); `emit` gives it the same stdout handling
        // as every listing (a closed pipe is no error).
        Ok(ics) => emit(false, &(), |out| out.write_all(ics.as_bytes())),
        Err(e) => fail(&e),
    }
}
