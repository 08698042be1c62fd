//! The typed rows and inputs of [`super::Store`].
//!
//! States are enums and instants `DateTime<Utc>` (stored as `YYYY-MM-DDTHH:MM:SSZ` text, see
//! [`super::ts`]). Rows are read through [`Cols`], so a value that does not parse is an error
//! that names the table, the row and the column — never a default.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row, Sqlite};

use super::engine::{Arg, IntoArg};

/// Settings as sent to Zoom (`settings` of a meeting): a JSON object.
pub type Settings = Map<String, Value>;

/// A stored value that does not parse: which table, row and column, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{table} row {row}: column {column} holds {value}: {reason}")]
pub struct Corrupt {
    pub table: &'static str,
    pub row: String,
    pub column: &'static str,
    pub value: String,
    pub reason: String,
}

/// A row of either engine.
#[derive(Clone, Copy)]
pub(super) enum RowRef<'r> {
    Sqlite(&'r SqliteRow),
    Postgres(&'r PgRow),
}

/// One row being read: decodes columns and names the row when one is corrupt.
pub(super) struct Cols<'r> {
    row: RowRef<'r>,
    table: &'static str,
    id: &'static str,
}

impl<'r> Cols<'r> {
    pub(super) fn new(row: RowRef<'r>, table: &'static str, id: &'static str) -> Self {
        Cols { row, table, id }
    }

    pub(super) fn get<T: FromColumn>(&self, column: &'static str) -> Result<T, sqlx::Error> {
        T::read(self, column)
    }

    fn corrupt(&self, column: &'static str, reason: String) -> sqlx::Error {
        // SQLite reads any value as text; PostgreSQL only text columns (checked: an unchecked
        // read would take an integer's bytes for text).
        let text = |c: &str| match self.row {
            RowRef::Sqlite(r) => r.try_get_unchecked::<Option<String>, _>(c).ok().flatten(),
            RowRef::Postgres(r) => r.try_get::<Option<String>, _>(c).ok().flatten(),
        };
        let int = |c: &str| match self.row {
            RowRef::Sqlite(r) => r.try_get_unchecked::<Option<i64>, _>(c).ok().flatten(),
            RowRef::Postgres(r) => r.try_get::<Option<i64>, _>(c).ok().flatten(),
        };
        let value = match text(column) {
            Some(v) => format!("'{}'", v.chars().take(80).collect::<String>()),
            None => "a value of another type".to_string(),
        };
        let row = int(self.id)
            .map(|i| i.to_string())
            .or_else(|| text(self.id))
            .unwrap_or_else(|| "?".to_string());
        sqlx::Error::Decode(Box::new(Corrupt {
            table: self.table,
            row: format!("{}={row}", self.id),
            column,
            value,
            reason,
        }))
    }

    fn decode<T>(&self, column: &'static str) -> Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        let got = match self.row {
            RowRef::Sqlite(r) => r.try_get(column),
            RowRef::Postgres(r) => r.try_get(column),
        };
        got.map_err(|e| match e {
            sqlx::Error::ColumnDecode { source, .. } => self.corrupt(column, source.to_string()),
            other => other,
        })
    }

    /// SQLite decodes the column as sqlx does; PostgreSQL reads it as text and parses it
    /// (instants, dates and states are text columns there too, see migrations/postgres).
    fn native_or_parsed<T>(&self, column: &'static str) -> Result<Option<T>, sqlx::Error>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.row {
            RowRef::Sqlite(r) => r.try_get(column).map_err(|e| match e {
                sqlx::Error::ColumnDecode { source, .. } => {
                    self.corrupt(column, source.to_string())
                }
                other => other,
            }),
            RowRef::Postgres(_) => self.parse(column),
        }
    }

    fn parse<T>(&self, column: &'static str) -> Result<Option<T>, sqlx::Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let text: Option<String> = self.decode(column)?;
        text.map(|t| {
            t.parse()
                .map_err(|e: T::Err| self.corrupt(column, e.to_string()))
        })
        .transpose()
    }
}

/// A type a column reads into.
pub(super) trait FromColumn: Sized {
    fn read(cols: &Cols<'_>, column: &'static str) -> Result<Self, sqlx::Error>;
}

macro_rules! sqlx_columns {
    ($($t:ty),* $(,)?) => {$(
        impl FromColumn for $t {
            fn read(cols: &Cols<'_>, column: &'static str) -> Result<Self, sqlx::Error> {
                cols.decode(column)
            }
        }
        impl FromColumn for Option<$t> {
            fn read(cols: &Cols<'_>, column: &'static str) -> Result<Self, sqlx::Error> {
                cols.decode(column)
            }
        }
    )*};
}

sqlx_columns!(i64, String, bool);

/// Text in the database on both engines: decoded by sqlx on SQLite, parsed on PostgreSQL.
macro_rules! text_columns {
    ($($t:ty),* $(,)?) => {$(
        impl FromColumn for $t {
            fn read(cols: &Cols<'_>, column: &'static str) -> Result<Self, sqlx::Error> {
                cols.native_or_parsed(column)?
                    .ok_or_else(|| cols.corrupt(column, "unexpected NULL".into()))
            }
        }
        impl FromColumn for Option<$t> {
            fn read(cols: &Cols<'_>, column: &'static str) -> Result<Self, sqlx::Error> {
                cols.native_or_parsed(column)
            }
        }
    )*};
}

text_columns!(
    DateTime<Utc>,
    NaiveDate,
    OccurrenceState,
    RecordingWatch,
    RecordingState,
    FileState,
    FailureKind,
    FailureSubject,
);

impl FromColumn for Tz {
    fn read(cols: &Cols<'_>, column: &'static str) -> Result<Self, sqlx::Error> {
        cols.parse(column)?
            .ok_or_else(|| cols.corrupt(column, "no time zone".into()))
    }
}

impl FromColumn for Settings {
    fn read(cols: &Cols<'_>, column: &'static str) -> Result<Self, sqlx::Error> {
        let text: String = cols.decode(column)?;
        serde_json::from_str(&text)
            .map_err(|e| cols.corrupt(column, format!("not a JSON object: {e}")))
    }
}

/// `FromRow` for a row struct: every listed field is read with [`Cols::get`], named by
/// `$id` (a column of the row) when corrupt.
macro_rules! from_row {
    ($name:ident, $table:literal, $id:literal, [$($field:ident),* $(,)?]) => {
        impl $name {
            fn read_row(row: RowRef<'_>) -> Result<Self, sqlx::Error> {
                let cols = Cols::new(row, $table, $id);
                Ok($name { $($field: cols.get(stringify!($field))?,)* })
            }
        }
        impl<'r> sqlx::FromRow<'r, SqliteRow> for $name {
            fn from_row(row: &'r SqliteRow) -> Result<Self, sqlx::Error> {
                $name::read_row(RowRef::Sqlite(row))
            }
        }
        impl<'r> sqlx::FromRow<'r, PgRow> for $name {
            fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
                $name::read_row(RowRef::Postgres(row))
            }
        }
    };
}

/// A stored state: its text in the database is its `as_str`.
macro_rules! state_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, Serialize)]
        pub enum $name {
            $(#[sqlx(rename = $text)] #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl IntoArg for $name {
            fn into_arg(self) -> Arg {
                Arg::Text(Some(self.as_str().to_string()))
            }
            fn null() -> Arg {
                Arg::Text(None)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let all: Vec<_> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown state '{s}'; one of: {}", all.join(", "))
                })
            }
        }
    };
}

state_enum!(
    /// `occurrences.state`: `creating` (intent recorded, outcome not known yet), `created`,
    /// `deferred` (waiting for `not_before`: daily cap, a transient failure), `failed` (Zoom
    /// refused; tried again at `not_before`), `cancelled` (left the schedule).
    OccurrenceState { Creating = "creating", Created = "created", Deferred = "deferred", Failed = "failed", Cancelled = "cancelled" }
);

state_enum!(
    /// `occurrences.recording_state`, the watch of a meeting's recording; `none` (`Unwatched`):
    /// no meeting to watch (cancelled before it took place).
    RecordingWatch { Waiting = "waiting", Found = "found", Complete = "complete", Done = "done", Missing = "missing", Unwatched = "none" }
);

state_enum!(
    /// `recordings.state`.
    RecordingState { Processing = "processing", Ready = "ready", Archived = "archived", CloudTrashed = "cloud_trashed", CloudDeleted = "cloud_deleted" }
);

impl RecordingState {
    /// Every file archived (the cloud copy may since have been removed).
    pub fn is_archived(self) -> bool {
        matches!(
            self,
            RecordingState::Archived | RecordingState::CloudTrashed | RecordingState::CloudDeleted
        )
    }
}

state_enum!(
    /// `recording_files.state`.
    FileState { Processing = "processing", Queued = "queued", Downloading = "downloading", Archived = "archived", Failed = "failed" }
);

state_enum!(
    /// The kind of a download's last failure (`recording_files.failure_kind`), which decides
    /// the next attempt: `transient` (network, timeout, 5xx, rate limit: back off),
    /// `stale_url` (Zoom refused the stored URL: drop it and poll again at once), `refused`
    /// (Zoom refused a URL a poll had just handed out: back off), `size_mismatch`, `disk`.
    FailureKind { Transient = "transient", StaleUrl = "stale_url", Refused = "refused", SizeMismatch = "size_mismatch", Disk = "disk" }
);

/// What zoomd is about to send Zoom for one occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOccurrence {
    pub key: String,
    pub start_utc: DateTime<Utc>,
    pub start_local: String,
    pub timezone: Tz,
    pub duration_min: u32,
    pub host: String,
    pub topic: String,
    pub agenda: Option<String>,
    pub settings: Settings,
    pub marker: String,
}

/// What Zoom answered to a create.
#[derive(Debug, Clone)]
pub struct CreatedMeeting {
    pub meeting_id: i64,
    /// The Zoom user the meeting belongs to (the host as Zoom resolved it).
    pub host_id: Option<String>,
    pub uuid: Option<String>,
    pub join_url: Option<String>,
    pub password: Option<String>,
}

pub(super) const OCC_COLS: &str = "id, key, start_utc, start_local, timezone, duration_min, host,
    topic, agenda, settings_json, marker, state, meeting_id, meeting_uuid, join_url, password,
    not_before, attempts, last_error, recording_state, next_poll_at, polls, updated_at,
    cancel_held_at, cancel_confirmed_at";

/// An occurrence: the meeting zoomd created (or tried to) and the watch of its recording.
/// Serialised as the README's meeting object (`zoomd meetings --json`): the fields skipped
/// here are internal or secret.
#[derive(Debug, Clone, Serialize)]
pub struct OccurrenceRow {
    pub id: i64,
    pub key: String,
    pub start_utc: DateTime<Utc>,
    pub start_local: String,
    pub timezone: Tz,
    pub duration_min: i64,
    pub host: String,
    pub topic: String,
    #[serde(skip)]
    pub agenda: Option<String>,
    #[serde(skip)]
    pub settings_json: Settings,
    #[serde(skip)]
    pub marker: String,
    pub state: OccurrenceState,
    pub meeting_id: Option<i64>,
    #[serde(skip)]
    pub meeting_uuid: Option<String>,
    pub join_url: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub recording_state: RecordingWatch,
    pub next_poll_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub polls: i64,
    #[serde(skip)]
    pub updated_at: DateTime<Utc>,
    /// Its cancellation waits for `zoomd apply` (since then).
    #[serde(skip)]
    pub cancel_held_at: Option<DateTime<Utc>>,
    /// `zoomd apply` confirmed its cancellation.
    #[serde(skip)]
    pub cancel_confirmed_at: Option<DateTime<Utc>>,
}

from_row!(
    OccurrenceRow,
    "occurrences",
    "id",
    [
        id,
        key,
        start_utc,
        start_local,
        timezone,
        duration_min,
        host,
        topic,
        agenda,
        settings_json,
        marker,
        state,
        meeting_id,
        meeting_uuid,
        join_url,
        password,
        not_before,
        attempts,
        last_error,
        recording_state,
        next_poll_at,
        polls,
        updated_at,
        cancel_held_at,
        cancel_confirmed_at
    ]
);

impl OccurrenceRow {
    /// The scheduled end.
    pub fn end(&self) -> DateTime<Utc> {
        self.start_utc + chrono::Duration::minutes(self.duration_min)
    }
}

/// A meeting instance's recording as Zoom lists it.
#[derive(Debug, Clone)]
pub struct SeenRecording {
    /// The occurrence zoomd created the meeting for; `None`: someone else's meeting.
    pub occurrence_id: Option<i64>,
    pub meeting_uuid: String,
    pub meeting_id: i64,
    pub start_time: Option<DateTime<Utc>>,
    pub total_size: Option<i64>,
    /// Found by the account scan: whose it is, and what the listing says of it.
    pub scan: Option<ScanFound>,
}

/// What the account scan knows of a recording besides its files.
#[derive(Debug, Clone)]
pub struct ScanFound {
    /// The user's email, else id.
    pub host: String,
    pub topic: Option<String>,
    pub duration_min: Option<i64>,
}

/// A user the account scan lists, and how far its backfill has come.
#[derive(Debug, Clone, Serialize)]
pub struct ScanUserRow {
    pub user: String,
    pub email: Option<String>,
    pub status: Option<String>,
    /// The oldest day the backfill lists.
    pub since: NaiveDate,
    /// The newest day of the completed windows; `None`: no window yet.
    pub done_through: Option<NaiveDate>,
    pub windows_done: i64,
    pub last_scan_at: Option<DateTime<Utc>>,
    pub next_scan_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

from_row!(
    ScanUserRow,
    "scan_users",
    "user",
    [
        user,
        email,
        status,
        since,
        done_through,
        windows_done,
        last_scan_at,
        next_scan_at,
        last_error
    ]
);

/// The totals `/metrics` reads from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub meetings_created: i64,
    pub files_archived: i64,
    pub archived_bytes: i64,
    pub download_queue: i64,
    pub failures: i64,
    pub recordings_missing: i64,
    pub last_archived: Option<DateTime<Utc>>,
}

/// A webhook notification to store (its body without the download token).
#[derive(Debug, Clone)]
pub struct NewWebhookEvent<'a> {
    pub dedupe_key: &'a str,
    pub event: &'a str,
    pub meeting_uuid: Option<&'a str>,
    pub meeting_id: Option<i64>,
    /// `queued` or `ignored`.
    pub outcome: &'a str,
    pub body: &'a str,
}

/// A multipart upload into object storage that was started and not yet completed or
/// aborted (`object_uploads`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectUploadRow {
    pub upload_id: String,
    /// The final key, relative to the archive's prefix.
    pub key: String,
    /// The `recording_files` row it archives; `None` for the `check --online` probe.
    pub file_id: Option<i64>,
    pub started_at: DateTime<Utc>,
}

from_row!(
    ObjectUploadRow,
    "object_uploads",
    "upload_id",
    [upload_id, key, file_id, started_at]
);

/// A stored webhook notification.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEventRow {
    pub id: i64,
    pub dedupe_key: String,
    pub event: String,
    pub meeting_uuid: Option<String>,
    pub meeting_id: Option<i64>,
    pub received_at: DateTime<Utc>,
    pub outcome: String,
    pub body: String,
}

from_row!(
    WebhookEventRow,
    "webhook_events",
    "id",
    [
        id,
        dedupe_key,
        event,
        meeting_uuid,
        meeting_id,
        received_at,
        outcome,
        body
    ]
);

/// The account scan in numbers (`zoomd status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    /// Users the scan has seen.
    pub users: i64,
    /// Of those, the ones in the scan now (the others left the list or the account).
    pub scheduled: i64,
    /// Users whose last scan failed.
    pub failing: i64,
    /// The oldest user's backfill progress: every window up to this day is listed.
    pub done_through: Option<NaiveDate>,
    pub last_scan_at: Option<DateTime<Utc>>,
}

from_row!(
    ScanSummary,
    "scan_users",
    "users",
    [users, scheduled, failing, done_through, last_scan_at]
);

pub(super) const SCAN_USER_COLS: &str =
    "\"user\", email, status, since, done_through, windows_done,
    last_scan_at, next_scan_at, last_error";

pub(super) const REC_COLS: &str =
    "id, occurrence_id, meeting_uuid, meeting_id, start_time, total_size, state, host";

#[derive(Debug, Clone, Serialize)]
pub struct RecordingRow {
    pub id: i64,
    /// `None`: found by the account scan.
    pub occurrence_id: Option<i64>,
    pub meeting_uuid: String,
    pub meeting_id: i64,
    pub start_time: Option<DateTime<Utc>>,
    pub total_size: Option<i64>,
    pub state: RecordingState,
    /// Found by the account scan: whose recording it is.
    pub host: Option<String>,
}

from_row!(
    RecordingRow,
    "recordings",
    "id",
    [
        id,
        occurrence_id,
        meeting_uuid,
        meeting_id,
        start_time,
        total_size,
        state,
        host
    ]
);

/// A recording file as Zoom lists it.
#[derive(Debug, Clone)]
pub struct SeenFile {
    pub recording_id: i64,
    pub file_id: String,
    pub file_type: String,
    pub file_extension: String,
    pub recording_type: Option<String>,
    pub recording_start: Option<DateTime<Utc>>,
    pub recording_end: Option<DateTime<Utc>>,
    pub file_size: Option<i64>,
    pub download_url: Option<String>,
    /// Ready at Zoom (status `completed`).
    pub completed: bool,
}

pub(super) const FILE_SELECT: &str = "SELECT f.id, f.recording_id, f.file_id, f.file_type,
    f.file_extension, f.recording_type, f.recording_start, f.recording_end, f.file_size,
    f.download_url, f.state, f.attempts, f.next_attempt_at, f.path, f.bytes, f.sha256,
    f.last_error, f.failure_kind, f.archived_at, r.meeting_uuid, r.occurrence_id, o.key,
    coalesce(o.topic, r.topic, '') AS topic, coalesce(o.start_utc, r.start_time) AS start_utc,
    coalesce(o.start_local, r.start_time) AS start_local,
    coalesce(o.timezone, 'UTC') AS timezone, coalesce(o.meeting_id, r.meeting_id) AS meeting_id,
    coalesce(r.host, o.host) AS host, r.occurrence_id IS NULL AS found_by_scan
    FROM recording_files f
    JOIN recordings r ON r.id = f.recording_id
    LEFT JOIN occurrences o ON o.id = r.occurrence_id";

/// A file with what naming and downloading it needs from its recording and occurrence.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub id: i64,
    pub recording_id: i64,
    pub file_id: String,
    pub file_type: String,
    pub file_extension: String,
    pub recording_type: Option<String>,
    pub recording_start: Option<DateTime<Utc>>,
    pub recording_end: Option<DateTime<Utc>>,
    pub file_size: Option<i64>,
    #[serde(skip)]
    pub download_url: Option<String>,
    pub state: FileState,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub path: Option<String>,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    pub last_error: Option<String>,
    pub failure_kind: Option<FailureKind>,
    pub archived_at: Option<DateTime<Utc>>,
    pub meeting_uuid: String,
    /// `None` for a recording the account scan found (zoomd did not create the meeting).
    #[serde(skip)]
    pub occurrence_id: Option<i64>,
    /// The `[[meeting]]` key; `None` when zoomd did not create the meeting.
    pub key: Option<String>,
    pub topic: String,
    /// The occurrence's scheduled start, or (found by the scan) the recording's start.
    pub start_utc: DateTime<Utc>,
    pub start_local: String,
    pub timezone: Tz,
    pub meeting_id: Option<i64>,
    /// Whose meeting: the configured host, or the user the scan listed.
    pub host: String,
    pub found_by_scan: bool,
}

impl FileRow {
    /// What logs name the file's meeting by: its `[[meeting]]` key, else its host.
    pub fn label(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.host)
    }
}

from_row!(
    FileRow,
    "recording_files",
    "id",
    [
        id,
        recording_id,
        file_id,
        file_type,
        file_extension,
        recording_type,
        recording_start,
        recording_end,
        file_size,
        download_url,
        state,
        attempts,
        next_attempt_at,
        path,
        bytes,
        sha256,
        last_error,
        failure_kind,
        archived_at,
        meeting_uuid,
        occurrence_id,
        key,
        topic,
        start_utc,
        start_local,
        timezone,
        meeting_id,
        host,
        found_by_scan
    ]
);

/// One line of the append-only log.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub key: Option<&'a str>,
    pub occurrence_id: Option<i64>,
    pub meeting_id: Option<i64>,
    pub file_row: Option<i64>,
    pub message: String,
}

impl<'a> NewEvent<'a> {
    /// An event about an occurrence (its key, row and meeting).
    pub fn about(kind: &'a str, row: &'a OccurrenceRow, message: String) -> Self {
        NewEvent {
            kind,
            key: Some(&row.key),
            occurrence_id: Some(row.id),
            meeting_id: row.meeting_id,
            message,
            ..NewEvent::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub key: Option<String>,
    pub occurrence_id: Option<i64>,
    pub meeting_id: Option<i64>,
    pub file_row: Option<i64>,
    pub message: String,
    /// The process that wrote it (`host:pid:nonce`); `None` for events older than that.
    pub holder: Option<String>,
}

from_row!(
    EventRow,
    "events",
    "id",
    [
        id,
        at,
        kind,
        key,
        occurrence_id,
        meeting_id,
        file_row,
        message,
        holder
    ]
);

/// A row of the `archive` view.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveRow {
    /// `None` for a meeting zoomd did not create (found by the account scan).
    pub key: Option<String>,
    pub topic: String,
    pub start_utc: DateTime<Utc>,
    pub start_local: String,
    pub meeting_id: Option<i64>,
    pub meeting_uuid: String,
    pub file_row: i64,
    pub file_id: String,
    pub file_type: String,
    pub file_extension: String,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    pub path: Option<String>,
    pub archived_at: Option<DateTime<Utc>>,
    pub host: String,
}

from_row!(
    ArchiveRow,
    "archive",
    "file_row",
    [
        key,
        topic,
        start_utc,
        start_local,
        meeting_id,
        meeting_uuid,
        file_row,
        file_id,
        file_type,
        file_extension,
        bytes,
        sha256,
        path,
        archived_at,
        host
    ]
);

state_enum!(
    /// What a row of the `failures` view is about: a `file` that failed for good (`zoomd
    /// retry` takes its id), a `recording` that never came, a `meeting` Zoom refused to create.
    FailureSubject { File = "file", Recording = "recording", Meeting = "meeting" }
);

/// A row of the `failures` view with the occurrence's local start and zone.
#[derive(Debug, Clone, Serialize)]
pub struct FailureItem {
    pub kind: FailureSubject,
    /// The file's row id for `file` (what `zoomd retry` takes), else the occurrence's.
    pub id: i64,
    /// `None` for a file of a meeting zoomd did not create.
    pub key: Option<String>,
    pub start_utc: DateTime<Utc>,
    pub start_local: String,
    pub timezone: Tz,
    pub meeting_id: Option<i64>,
    pub what: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
    pub host: String,
}

from_row!(
    FailureItem,
    "failures",
    "id",
    [
        kind,
        id,
        key,
        start_utc,
        start_local,
        timezone,
        meeting_id,
        what,
        attempts,
        last_error,
        at,
        host
    ]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Upcoming,
    Past,
}

#[derive(Debug, Clone, Default)]
pub struct OccurrenceFilter {
    pub when: Option<Period>,
    pub key: Option<String>,
}

/// Event kinds that mean something went wrong ("last error" in `zoomd status` and the
/// systemd status line).
pub const ERROR_EVENT_KINDS: [&str; 6] = [
    "create-failed",
    "create-retry",
    "create-unknown",
    "failed",
    "missing",
    "reload-failed",
];
