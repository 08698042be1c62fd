//! The typed rows and inputs of [`super::Store`].

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What zoomd is about to send Zoom for one occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOccurrence {
    pub key: String,
    pub start_utc: DateTime<Utc>,
    pub start_local: String,
    pub timezone: String,
    pub duration_min: u32,
    pub host: String,
    pub topic: String,
    pub agenda: Option<String>,
    pub settings_json: String,
    pub marker: String,
}

/// What Zoom answered to a create.
#[derive(Debug, Clone)]
pub struct CreatedMeeting {
    pub meeting_id: i64,
    pub uuid: Option<String>,
    pub join_url: Option<String>,
    pub password: Option<String>,
}

pub(super) const OCC_COLS: &str = "id, key, start_utc, start_local, timezone, duration_min, host,
    topic, agenda, settings_json, marker, state, meeting_id, meeting_uuid, join_url, password,
    not_before, attempts, last_error, recording_state, next_poll_at, polls, updated_at";

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct OccurrenceRow {
    pub id: i64,
    pub key: String,
    pub start_utc: String,
    pub start_local: String,
    pub timezone: String,
    pub duration_min: i64,
    pub host: String,
    pub topic: String,
    pub agenda: Option<String>,
    pub settings_json: String,
    pub marker: String,
    pub state: String,
    pub meeting_id: Option<i64>,
    pub meeting_uuid: Option<String>,
    pub join_url: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    pub not_before: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub recording_state: String,
    pub next_poll_at: Option<String>,
    pub polls: i64,
    pub updated_at: String,
}

impl OccurrenceRow {
    pub fn start(&self) -> Option<DateTime<Utc>> {
        super::parse_ts(&self.start_utc)
    }
}

/// The recording watch of an occurrence (`occurrences.recording_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingWatch {
    Waiting,
    Found,
    Complete,
    Done,
    Missing,
}

impl RecordingWatch {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingWatch::Waiting => "waiting",
            RecordingWatch::Found => "found",
            RecordingWatch::Complete => "complete",
            RecordingWatch::Done => "done",
            RecordingWatch::Missing => "missing",
        }
    }
}

/// A meeting instance's recording as Zoom lists it.
#[derive(Debug, Clone)]
pub struct SeenRecording {
    pub occurrence_id: i64,
    pub meeting_uuid: String,
    pub meeting_id: i64,
    pub start_time: Option<DateTime<Utc>>,
    pub total_size: Option<i64>,
}

pub(super) const REC_COLS: &str =
    "id, occurrence_id, meeting_uuid, meeting_id, start_time, total_size, state";

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct RecordingRow {
    pub id: i64,
    pub occurrence_id: i64,
    pub meeting_uuid: String,
    pub meeting_id: i64,
    pub start_time: Option<String>,
    pub total_size: Option<i64>,
    pub state: String,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Processing,
    Queued,
    Downloading,
    Archived,
    Failed,
}

impl FileState {
    pub const ALL: [FileState; 5] = [
        FileState::Processing,
        FileState::Queued,
        FileState::Downloading,
        FileState::Archived,
        FileState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Processing => "processing",
            FileState::Queued => "queued",
            FileState::Downloading => "downloading",
            FileState::Archived => "archived",
            FileState::Failed => "failed",
        }
    }
}

impl std::str::FromStr for FileState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FileState::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = FileState::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown state '{s}'; one of: {}", all.join(", "))
            })
    }
}

pub(super) const FILE_SELECT: &str = "SELECT f.id, f.recording_id, f.file_id, f.file_type,
    f.file_extension, f.recording_type, f.recording_start, f.recording_end, f.file_size,
    f.download_url, f.state, f.attempts, f.next_attempt_at, f.path, f.bytes, f.sha256,
    f.last_error, f.archived_at, r.meeting_uuid, r.occurrence_id, o.key, o.topic, o.start_utc,
    o.start_local, o.timezone, o.meeting_id
    FROM recording_files f
    JOIN recordings r ON r.id = f.recording_id
    JOIN occurrences o ON o.id = r.occurrence_id";

/// A file with what naming and downloading it needs from its recording and occurrence.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct FileRow {
    pub id: i64,
    pub recording_id: i64,
    pub file_id: String,
    pub file_type: String,
    pub file_extension: String,
    pub recording_type: Option<String>,
    pub recording_start: Option<String>,
    pub recording_end: Option<String>,
    pub file_size: Option<i64>,
    #[serde(skip)]
    pub download_url: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub path: Option<String>,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    pub last_error: Option<String>,
    pub archived_at: Option<String>,
    pub meeting_uuid: String,
    pub occurrence_id: i64,
    pub key: String,
    pub topic: String,
    pub start_utc: String,
    pub start_local: String,
    pub timezone: String,
    pub meeting_id: Option<i64>,
}

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

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub key: Option<String>,
    pub occurrence_id: Option<i64>,
    pub meeting_id: Option<i64>,
    pub file_row: Option<i64>,
    pub message: String,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct UpcomingRow {
    pub key: String,
    pub topic: String,
    pub start_utc: String,
    pub start_local: String,
    pub timezone: String,
    pub duration_min: i64,
    pub host: String,
    pub state: String,
    pub meeting_id: Option<i64>,
    pub join_url: Option<String>,
    pub not_before: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct ArchiveRow {
    pub key: String,
    pub topic: String,
    pub start_utc: String,
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
    pub archived_at: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct FailureRow {
    pub kind: String,
    pub id: i64,
    pub key: String,
    pub start_utc: String,
    pub meeting_id: Option<i64>,
    pub what: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Copy, sqlx::FromRow, Serialize)]
pub struct Counts {
    pub files_pending: i64,
    pub files_processing: i64,
    pub recordings_pending: i64,
    pub archived_since: i64,
    pub archived_bytes_since: i64,
    pub failures: i64,
    pub deferred: i64,
}

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
