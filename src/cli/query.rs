//! `zoomd status`, `zoomd meetings`, `zoomd recordings` (read-only) and `zoomd retry`.
//!
//! The listings open the database read-only and never migrate, so they cannot disturb a
//! running daemon (WAL lets them read while it writes). `retry` is one small write through
//! the busy timeout. Each takes `--json`: one pretty-printed JSON document on stdout whose
//! field names are part of the interface (README, "Querying").

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, NaiveTime, Utc};
use serde::Serialize;

use super::output::{
    Table, cell, dash, emit, fail, human_bytes, open_existing, open_read_only, opt, start_cells,
};
use super::{EXIT_RUNTIME, load};
use crate::store::{
    EventRow, FailureItem, FileRow, FileState, OccurrenceFilter, OccurrenceRow, OccurrenceState,
    Period, ScanSummary, Store, StoreError, ts,
};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Show at most N rows per section (next meetings, pending recordings, failures, deferred)
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub limit: u32,
    /// One JSON document on stdout (field names: README, "Querying")
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MeetingsArgs {
    /// Only meetings that have not started yet, soonest first
    #[arg(long, conflicts_with = "past")]
    pub upcoming: bool,
    /// Only meetings that have started, newest first
    #[arg(long)]
    pub past: bool,
    /// Only the entry with this `key`
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// One JSON document on stdout (field names: README, "Querying")
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RecordingsArgs {
    /// Only files in this state: processing, queued, downloading, archived, failed
    #[arg(long, value_name = "S")]
    pub state: Option<FileState>,
    /// One JSON document on stdout (field names: README, "Querying")
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "failed"])))]
pub struct RetryArgs {
    /// The failed file's id (the ID column of `zoomd recordings --state failed`)
    #[arg(value_name = "ID")]
    pub id: Option<i64>,
    /// Requeue every failed file
    #[arg(long)]
    pub failed: bool,
    /// One JSON document on stdout (field names: README, "Querying")
    #[arg(long)]
    pub json: bool,
}

// ---------------------------------------------------------------------------------------------
// the commands

pub async fn status(config_path: &Path, args: &StatusArgs) -> ExitCode {
    let store = match open_read_only(config_path).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = Utc::now();
    let result = gather_status(&store, now, i64::from(args.limit)).await;
    store.close().await;
    match result {
        Ok(status) => emit(args.json, &status, |out| write_status(out, &status)),
        Err(e) => fail(&e),
    }
}

pub async fn meetings(config_path: &Path, args: &MeetingsArgs) -> ExitCode {
    let store = match open_read_only(config_path).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let filter = OccurrenceFilter {
        when: if args.upcoming {
            Some(Period::Upcoming)
        } else if args.past {
            Some(Period::Past)
        } else {
            None
        },
        key: args.key.clone(),
    };
    let result = store.list_occurrences(&filter, Utc::now()).await;
    store.close().await;
    match result {
        Ok(meetings) => {
            let doc = MeetingsJson { meetings };
            emit(args.json, &doc, |out| {
                if doc.meetings.is_empty() {
                    return writeln!(out, "no {}", describe_meetings(args));
                }
                meetings_table(&doc.meetings, true).write(out, "")
            })
        }
        Err(e) => fail(&e),
    }
}

pub async fn recordings(config_path: &Path, args: &RecordingsArgs) -> ExitCode {
    let store = match open_read_only(config_path).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = store.list_files(args.state).await;
    store.close().await;
    match result {
        Ok(files) => {
            let doc = FilesJson { files };
            emit(args.json, &doc, |out| {
                if doc.files.is_empty() {
                    return match args.state {
                        Some(s) => writeln!(out, "no recording files in state {}", s.as_str()),
                        None => writeln!(out, "no recording files"),
                    };
                }
                files_table(&doc.files).write(out, "")
            })
        }
        Err(e) => fail(&e),
    }
}

pub async fn retry(config_path: &Path, args: &RetryArgs) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_existing(&config.daemon.database).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let result = requeue(&store, args.id).await;
    store.close().await;
    let requeued = match result {
        Ok(Ok(n)) => n,
        Ok(Err(message)) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_RUNTIME);
        }
        Err(e) => return fail(&e),
    };
    let doc = RetryJson {
        requeued,
        id: args.id,
    };
    emit(args.json, &doc, |out| match (args.id, requeued) {
        (Some(id), _) => writeln!(out, "requeued file {id}"),
        (None, 0) => writeln!(out, "no failed files to requeue"),
        (None, 1) => writeln!(out, "requeued 1 failed file"),
        (None, n) => writeln!(out, "requeued {n} failed files"),
    })
}

/// Requeues one failed file (checked first) or all; the inner error is for the operator.
async fn requeue(store: &Store, id: Option<i64>) -> Result<Result<u64, String>, StoreError> {
    let now = Utc::now();
    let Some(id) = id else {
        return Ok(Ok(store.retry_failed(None, now).await?));
    };
    let file = match store.file(id).await? {
        None => {
            return Ok(Err(format!(
                "file {id}: no such recording file (`zoomd recordings --state failed` lists the failed ones)"
            )));
        }
        Some(f) => f,
    };
    if file.state != FileState::Failed {
        return Ok(Err(format!(
            "file {id} ({} {} {}) is {}, not failed; only failed files are requeued",
            file.label(),
            ts(file.start_utc),
            file.file_type,
            file.state
        )));
    }
    match store.retry_failed(Some(id), now).await? {
        0 => Ok(Err(format!(
            "file {id} is no longer failed (the daemon changed it meanwhile); nothing requeued"
        ))),
        n => Ok(Ok(n)),
    }
}

fn describe_meetings(args: &MeetingsArgs) -> String {
    let what = if args.upcoming {
        "upcoming meetings"
    } else if args.past {
        "past meetings"
    } else {
        "meetings"
    };
    match &args.key {
        Some(k) => format!("{what} for key '{k}'"),
        None => what.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// status

async fn gather_status(
    store: &Store,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<StatusJson, StoreError> {
    let since = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let st = store.status(now, since, limit).await?;
    let counts = st.counts;
    Ok(StatusJson {
        now,
        database: store.database().to_string(),
        upcoming: Section {
            count: counts.meetings_upcoming,
            items: st.upcoming,
        },
        recordings_pending: Section {
            count: counts.recordings_pending,
            items: st.pending,
        },
        files: FileCountsJson {
            queued: counts.files_queued,
            downloading: counts.files_downloading,
            pending: counts.files_queued + counts.files_downloading,
            processing: counts.files_processing,
            failed: counts.files_failed,
        },
        archived_today: ArchivedJson {
            since,
            files: counts.archived_since,
            bytes: counts.archived_bytes_since,
        },
        failures: Section {
            count: counts.failures(),
            items: st.failures,
        },
        deferred: Section {
            count: counts.deferred,
            items: st.deferred,
        },
        last_error: st.last_error,
        scan: store.scan_summary().await?,
    })
}

fn write_status(out: &mut impl Write, s: &StatusJson) -> std::io::Result<()> {
    writeln!(
        out,
        "zoomd status at {} (database {})",
        ts(s.now),
        s.database
    )?;
    s.upcoming
        .write(out, "upcoming meetings", "Next meetings", |items| {
            meetings_table(items, false)
        })?;
    s.recordings_pending.write(
        out,
        "recordings pending",
        "Recordings pending",
        pending_table,
    )?;

    writeln!(out)?;
    let f = &s.files;
    writeln!(
        out,
        "Files: {} pending ({} queued, {} downloading), {} processing at Zoom, {} failed",
        f.pending, f.queued, f.downloading, f.processing, f.failed
    )?;
    let a = &s.archived_today;
    writeln!(
        out,
        "Archived today (since {}): {} file{}, {} ({} bytes)",
        ts(a.since),
        a.files,
        if a.files == 1 { "" } else { "s" },
        human_bytes(a.bytes),
        a.bytes
    )?;

    if s.scan.users > 0 {
        let c = &s.scan;
        writeln!(
            out,
            "Account scan: {} of {} users scanned, every window through {} listed, {} failing, last scan {}",
            c.scheduled,
            c.users,
            opt(c.done_through.map(|d| d.to_string())),
            c.failing,
            opt(c.last_scan_at.map(ts))
        )?;
    }

    s.failures
        .write(out, "failures", "Failures", failures_table)?;
    s.deferred
        .write(out, "deferred creates", "Deferred creates", deferred_table)?;

    writeln!(out)?;
    match &s.last_error {
        None => writeln!(out, "no errors recorded"),
        Some(e) => writeln!(
            out,
            "Last error: {} {}{}: {}",
            ts(e.at),
            e.kind,
            e.key
                .as_deref()
                .map(|k| format!(" {k}"))
                .unwrap_or_default(),
            cell(&e.message)
        ),
    }
}

fn pending_table(rows: &[OccurrenceRow]) -> Table {
    let rest = ["KEY", "TOPIC", "MEETING ID", "WATCH", "NEXT POLL (UTC)"];
    Table::of(rows, &[], &rest, |m| {
        let watch = m.recording_state.to_string();
        let next = opt(m.next_poll_at.map(ts));
        let rest = [
            m.key.clone(),
            m.topic.clone(),
            opt(m.meeting_id),
            watch,
            next,
        ];
        (
            vec![],
            start_cells(&m.start_local, m.timezone, m.start_utc),
            rest.into(),
        )
    })
}

fn failures_table(rows: &[FailureItem]) -> Table {
    let lead = ["AT (UTC)", "KIND", "ID"];
    Table::of(
        rows,
        &lead,
        &["KEY / HOST", "WHAT", "ATTEMPTS", "LAST ERROR"],
        |x| {
            let lead = vec![ts(x.at), x.kind.to_string(), x.id.to_string()];
            let error = opt(x.last_error.as_deref());
            let who = x.key.clone().unwrap_or_else(|| x.host.clone());
            let rest = [who, x.what.clone(), x.attempts.to_string(), error];
            (
                lead,
                start_cells(&x.start_local, x.timezone, x.start_utc),
                rest.into(),
            )
        },
    )
}

fn deferred_table(rows: &[OccurrenceRow]) -> Table {
    let rest = ["KEY", "TOPIC", "NOT BEFORE (UTC)", "REASON"];
    Table::of(rows, &[], &rest, |m| {
        let (next, reason) = (opt(m.not_before.map(ts)), opt(m.last_error.as_deref()));
        let rest = [m.key.clone(), m.topic.clone(), next, reason];
        (
            vec![],
            start_cells(&m.start_local, m.timezone, m.start_utc),
            rest.into(),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// JSON documents: the store's rows as they are. Their field names are documented in README
// ("Querying") and stay stable.

#[derive(Debug, Serialize)]
struct StatusJson {
    now: DateTime<Utc>,
    database: String,
    upcoming: Section<OccurrenceRow>,
    recordings_pending: Section<OccurrenceRow>,
    files: FileCountsJson,
    archived_today: ArchivedJson,
    failures: Section<FailureItem>,
    deferred: Section<OccurrenceRow>,
    last_error: Option<EventRow>,
    /// The account scan (`[recordings] users`); `users` is 0 when it never ran.
    scan: ScanSummary,
}

/// `count` is the total; `items` the first `--limit` of them.
#[derive(Debug, Serialize)]
struct Section<T> {
    count: i64,
    items: Vec<T>,
}

impl<T> Section<T> {
    /// A blank line, then "no <none>" or "<title> (n of count):" and the table of the items.
    fn write(
        &self,
        out: &mut impl Write,
        none: &str,
        title: &str,
        table: impl FnOnce(&[T]) -> Table,
    ) -> std::io::Result<()> {
        writeln!(out)?;
        if self.items.is_empty() {
            return writeln!(out, "no {none}");
        }
        writeln!(out, "{title}{}:", self.shown())?;
        table(&self.items).write(out, "  ")
    }

    /// " (3)" or " (5 of 12)".
    fn shown(&self) -> String {
        let n = self.items.len();
        if i64::try_from(n).is_ok_and(|n| n == self.count) {
            format!(" ({n})")
        } else {
            format!(" ({n} of {})", self.count)
        }
    }
}

#[derive(Debug, Serialize)]
struct FileCountsJson {
    queued: i64,
    downloading: i64,
    pending: i64,
    processing: i64,
    failed: i64,
}

#[derive(Debug, Serialize)]
struct ArchivedJson {
    since: DateTime<Utc>,
    files: i64,
    bytes: i64,
}

#[derive(Debug, Serialize)]
struct MeetingsJson {
    meetings: Vec<OccurrenceRow>,
}

#[derive(Debug, Serialize)]
struct FilesJson {
    files: Vec<FileRow>,
}

#[derive(Debug, Serialize)]
struct RetryJson {
    requeued: u64,
    id: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// human tables

fn meetings_table(rows: &[OccurrenceRow], with_id: bool) -> Table {
    let lead: &[&str] = if with_id { &["ID"] } else { &[] };
    let rest = [
        "KEY",
        "TOPIC",
        "MIN",
        "STATE",
        "MEETING ID",
        "RECORDING",
        "JOIN URL / NOTE",
    ];
    Table::of(rows, lead, &rest, |m| {
        let note = match (m.state, &m.join_url) {
            (OccurrenceState::Deferred | OccurrenceState::Failed, _) => format!(
                "next attempt {}: {}",
                opt(m.not_before.map(ts)),
                opt(m.last_error.as_deref())
            ),
            (OccurrenceState::Creating, _) => match &m.last_error {
                Some(e) => format!("outcome unknown: {e}"),
                None => "being created".to_string(),
            },
            (_, Some(url)) => url.clone(),
            (_, None) => opt(m.last_error.as_deref()),
        };
        let lead = if with_id {
            vec![m.id.to_string()]
        } else {
            vec![]
        };
        let rest = vec![
            m.key.clone(),
            m.topic.clone(),
            m.duration_min.to_string(),
            m.state.to_string(),
            opt(m.meeting_id),
            m.recording_state.to_string(),
            note,
        ];
        (
            lead,
            start_cells(&m.start_local, m.timezone, m.start_utc),
            rest,
        )
    })
}

fn files_table(rows: &[FileRow]) -> Table {
    let rest = [
        "KEY / HOST",
        "TYPE",
        "STATE",
        "SIZE",
        "ATTEMPTS",
        "PATH / NOTE",
    ];
    Table::of(rows, &["ID"], &rest, |f| {
        let note = match (f.state, &f.path, &f.last_error) {
            (FileState::Archived, Some(p), _) => p.clone(),
            (_, _, Some(e)) => e.clone(),
            (FileState::Queued, _, None) => {
                format!("next attempt {}", opt(f.next_attempt_at.map(ts)))
            }
            (FileState::Processing, _, None) => "not ready at Zoom yet".to_string(),
            (_, p, None) => opt(p.as_deref()),
        };
        let kind = if f.file_type.eq_ignore_ascii_case(&f.file_extension) {
            f.file_type.clone()
        } else {
            format!("{} (.{})", f.file_type, f.file_extension.to_lowercase())
        };
        let size = f
            .bytes
            .or(f.file_size)
            .map(human_bytes)
            .unwrap_or_else(dash);
        let rest = vec![
            f.label().to_string(),
            kind,
            f.state.to_string(),
            size,
            f.attempts.to_string(),
            note,
        ];
        (
            vec![f.id.to_string()],
            start_cells(&f.start_local, f.timezone, f.start_utc),
            rest,
        )
    })
}
