//! `zoomd run`, `zoomd sync`, `zoomd token`.

use std::path::Path;
use std::process::ExitCode;

use super::{exit_for, load};
use crate::config::Config;
use crate::daemon;
use crate::sync::Ctx;
use crate::sync::system_clock;

/// The config and a started context (database migrated, client built), or the exit code.
async fn open(path: &Path) -> Result<(Config, Ctx), ExitCode> {
    let config = load(path)?;
    match daemon::start(&config, system_clock()).await {
        Ok(ctx) => Ok((config, ctx)),
        Err(e) => {
            eprintln!("{e}");
            Err(exit_for(&e))
        }
    }
}

pub async fn daemon(path: &Path) -> ExitCode {
    let (config, ctx) = match open(path).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let control = match daemon::signals() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return ExitCode::from(super::EXIT_RUNTIME);
        }
    };
    // Bound before the loop starts: a port already taken fails the start, not a step.
    let listener = match crate::http::bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            ctx.store.close().await;
            return ExitCode::from(super::EXIT_RUNTIME);
        }
    };
    daemon::run(path.to_path_buf(), config, ctx, control, None, listener).await;
    ExitCode::SUCCESS
}

pub async fn sync(path: &Path) -> ExitCode {
    let (config, ctx) = match open(path).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let result = daemon::sync_once(
        &ctx,
        &config,
        Some(super::progress::reporter()),
        Some(super::progress::scan_reporter()),
    )
    .await;
    ctx.store.close().await;
    match result {
        Ok(r) => {
            let m = &r.meetings;
            println!(
                "meetings: {} created, {} found again, {} updated, {} cancelled, {} held, {} deferred, {} failed, {} unknown",
                m.created,
                m.reconciled,
                m.updated,
                m.cancelled,
                m.held,
                m.deferred,
                m.failed,
                m.unknown
            );
            println!(
                "verify: {} checked, {} gone at Zoom (created again), {} patched back",
                r.verify.checked, r.verify.gone, r.verify.drifted
            );
            println!(
                "recordings: {} polled, {} found, {} missing, {} cloud copies removed",
                r.recordings.polled,
                r.recordings.found,
                r.recordings.missing,
                r.recordings.cloud_removed
            );
            if config.recordings.users != crate::config::AccountUsers::None
                || r.scan != crate::sync::scan::Report::default()
            {
                let s = &r.scan;
                println!(
                    "scan: {} users listed, {} failed, {} windows, {} recordings, {} refreshed, {} cloud copies removed",
                    s.users, s.users_failed, s.windows, s.recordings, s.refreshed, s.cloud_removed
                );
            }
            println!(
                "downloads: {} archived, {} to retry, {} failed",
                r.downloads.archived, r.downloads.retrying, r.downloads.failed
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sync failed: {e}");
            ExitCode::from(super::EXIT_RUNTIME)
        }
    }
}

pub async fn token(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let client = match daemon::zoom_client(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return exit_for(&e);
        }
    };
    match client.token().await {
        Ok(t) => {
            // The one place a token is printed: on request, to stdout only.
            println!("{}", t.expose());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(super::EXIT_RUNTIME)
        }
    }
}
