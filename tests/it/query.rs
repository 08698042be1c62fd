//! The query commands through the real binary: `zoomd status`, `meetings`, `recordings`,
//! `retry`, on a database built through the Store's methods. Also: they read while a writer
//! holds the database, and never make the daemon's writes fail.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Timelike, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use zoomd::store::{
    CreatedMeeting, FailureKind, NewEvent, NewOccurrence, RecordingWatch, SeenFile, SeenRecording,
    Store,
};

use crate::helpers::{claim, now_whole_second, zoomd};

const ZONE: chrono_tz::Tz = chrono_tz::Europe::Berlin;
const PASSWORD: &str = "pw-must-not-show";
const BAD_STATE: &str = "one of: processing, queued, downloading, archived, failed";

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&ZONE)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn occurrence(key: &str, start: DateTime<Utc>) -> NewOccurrence {
    NewOccurrence {
        key: key.into(),
        start_utc: start,
        start_local: local(start),
        timezone: ZONE,
        duration_min: 45,
        host: "me".into(),
        topic: format!("Topic {key}"),
        agenda: None,
        settings: serde_json::json!({"auto_recording": "cloud"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        marker: format!("zoomd:{key}:{}", zoomd::store::ts(start)),
    }
}

fn created(meeting_id: i64) -> CreatedMeeting {
    CreatedMeeting {
        meeting_id,
        host_id: None,
        uuid: Some(format!("uuid-{meeting_id}==")),
        join_url: Some(format!("https://zoom.us/j/{meeting_id}")),
        password: Some(PASSWORD.into()),
    }
}

/// `key` at `start`, created in Zoom as `meeting_id`; returns the occurrence's id.
async fn created_occurrence(
    store: &Store,
    key: &str,
    start: DateTime<Utc>,
    meeting_id: i64,
    now: DateTime<Utc>,
) -> i64 {
    let row = store
        .record_create_intent(&occurrence(key, start), now)
        .await
        .expect("intent")
        .expect("claimed");
    store
        .mark_created(row.id, &created(meeting_id), now)
        .await
        .expect("created");
    row.id
}

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
    now: DateTime<Utc>,
    upcoming_start: DateTime<Utc>,
    lecture_start: DateTime<Utc>,
    archived: i64,
    failed: i64,
    queued: i64,
    processing: i64,
}

/// A config pointing `[daemon] database` at `state.db` in a fresh temp dir.
fn config_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        r#"
[zoom]
account_id = "acc"
client_id = "cid"

[daemon]
database = "state.db"
archive = "recordings"

[[meeting]]
key = "weekly"
topic = "Topic weekly"
host = "me"
cron = "0 9 * * Mon"
timezone = "Europe/Berlin"
duration = "45m"
"#,
    )
    .expect("write config");
    let db = dir.path().join("state.db");
    (dir, config, db)
}

/// Upcoming: `weekly` (created), `board` (deferred), `refused` (create failed).
/// Past: `lecture` with four files (archived, failed, queued, processing), `gone` (no
/// recording ever came).
async fn fixture() -> Fixture {
    let (dir, config, db) = config_dir();
    let store = Store::open(&db).await.expect("open");
    let now = now_whole_second();
    let hour = |t: DateTime<Utc>| t.with_minute(0).and_then(|t| t.with_second(0));
    let upcoming_start = hour(now + Duration::days(2)).expect("hour");

    created_occurrence(&store, "weekly", upcoming_start, 85_000_000_001, now).await;
    store
        .record_deferred(
            &occurrence("board", upcoming_start + Duration::days(1)),
            now + Duration::hours(20),
            "daily create limit reached",
            now,
        )
        .await
        .expect("deferred");
    let refused = store
        .record_create_intent(
            &occurrence("refused", upcoming_start + Duration::days(2)),
            now,
        )
        .await
        .expect("intent")
        .expect("claimed");
    store
        .mark_create_failed(
            refused.id,
            now + Duration::hours(1),
            "Zoom 400: bad host",
            now,
        )
        .await
        .expect("create failed");

    let lecture_start = hour(now - Duration::days(2)).expect("hour");
    let lecture = created_occurrence(&store, "lecture", lecture_start, 85_000_000_002, now).await;
    store
        .set_poll(
            lecture,
            RecordingWatch::Found,
            Some(now + Duration::minutes(5)),
            now,
        )
        .await
        .expect("poll");
    let rec = store
        .upsert_recording(
            &SeenRecording {
                occurrence_id: Some(lecture),
                meeting_uuid: "uuid-85000000002==".into(),
                meeting_id: 85_000_000_002,
                start_time: Some(lecture_start),
                total_size: Some(4_000),
                scan: None,
            },
            now,
        )
        .await
        .expect("recording");
    for (file_id, file_type, ext, completed) in [
        ("f-mp4", "MP4", "MP4", true),
        ("f-m4a", "M4A", "M4A", true),
        ("f-chat", "CHAT", "TXT", true),
        ("f-cc", "CC", "VTT", false),
    ] {
        store
            .upsert_file(
                &SeenFile {
                    recording_id: rec,
                    file_id: file_id.into(),
                    file_type: file_type.into(),
                    file_extension: ext.into(),
                    recording_type: None,
                    recording_start: Some(lecture_start),
                    recording_end: Some(lecture_start + Duration::minutes(45)),
                    file_size: Some(1_000_000),
                    download_url: Some(format!("https://zoom.us/rec/download/{file_id}")),
                    completed,
                },
                now,
            )
            .await
            .expect("file");
    }
    let files = store.files_of_recording(rec).await.expect("files");
    let id_of = |zoom_id: &str| {
        files
            .iter()
            .find(|f| f.file_id == zoom_id)
            .map(|f| f.id)
            .expect("file row")
    };
    let (archived, failed, queued, processing) = (
        id_of("f-mp4"),
        id_of("f-m4a"),
        id_of("f-chat"),
        id_of("f-cc"),
    );
    assert!(claim(&store, archived, "2026/a.mp4", now).await);
    store
        .mark_archived(archived, 1_000_000, &"ab".repeat(32), now)
        .await
        .expect("archived");
    assert!(claim(&store, failed, "2026/a.m4a", now).await);
    store
        .download_failed(
            failed,
            FailureKind::Transient,
            "HTTP 500\nfrom Zoom",
            None,
            false,
            now,
        )
        .await
        .expect("failed");

    let gone = created_occurrence(
        &store,
        "gone",
        lecture_start - Duration::days(3),
        85_000_000_003,
        now,
    )
    .await;
    store
        .set_poll(gone, RecordingWatch::Missing, None, now)
        .await
        .expect("missing");

    for (kind, key, message) in [
        ("created", "weekly", "created meeting 85000000001"),
        ("failed", "lecture", "after 5 attempts: HTTP 500"),
        ("archived", "lecture", "archived MP4"),
    ] {
        store
            .add_event(
                &NewEvent {
                    kind,
                    key: Some(key),
                    message: message.into(),
                    ..NewEvent::default()
                },
                now,
            )
            .await
            .expect("event");
    }
    store.close().await;
    Fixture {
        _dir: dir,
        config,
        db,
        now,
        upcoming_start,
        lecture_start,
        archived,
        failed,
        queued,
        processing,
    }
}

async fn run(config: &Path, args: &[&str]) -> Output {
    let mut c = tokio::process::Command::from(zoomd());
    c.arg("--config")
        .arg(config)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run zoomd")
}

/// Runs a command that must succeed; returns its stdout.
async fn run_ok(config: &Path, args: &[&str]) -> String {
    let out = run(config, args).await;
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must succeed with JSON on stdout.
async fn json(config: &Path, args: &[&str]) -> Value {
    let text = run_ok(config, args).await;
    assert!(!text.contains(PASSWORD), "password leaked: {text}");
    assert!(
        !text.contains("rec/download"),
        "download URL leaked: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

/// Every key in `keys` (separated by white space) is present in the object `v`, and no
/// other.
fn has_exactly(v: &Value, keys: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = keys.split_whitespace().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "fields of {v}");
}

const MEETING_FIELDS: &str = "id key topic start_utc start_local timezone duration_min host \
    state meeting_id join_url not_before attempts last_error recording_state next_poll_at";

const FILE_FIELDS: &str = "id key topic start_utc start_local timezone meeting_id meeting_uuid \
    recording_id file_id file_type file_extension recording_type recording_start recording_end \
    state file_size bytes attempts next_attempt_at path sha256 archived_at last_error failure_kind \
    host found_by_scan";

const FAILURE_FIELDS: &str =
    "kind id key start_utc start_local timezone meeting_id what attempts last_error at host";

const EVENT_FIELDS: &str = "id at kind key occurrence_id meeting_id file_row message holder";

fn ts(t: DateTime<Utc>) -> String {
    zoomd::store::ts(t)
}

#[tokio::test]
async fn status_json_has_the_documented_fields_and_numbers() {
    let f = fixture().await;
    let s = json(&f.config, &["status", "--json"]).await;
    has_exactly(
        &s,
        "now database upcoming recordings_pending files archived_today failures deferred \
         last_error scan",
    );
    has_exactly(
        &s["scan"],
        "users scheduled failing done_through last_scan_at",
    );
    assert_eq!(s["scan"]["users"], 0, "no account scan configured");
    assert_eq!(s["database"], f.db.display().to_string());
    assert!(s["now"].as_str().is_some_and(|n| n.ends_with('Z')));

    let up = &s["upcoming"];
    has_exactly(up, "count items");
    assert_eq!(up["count"], 3);
    let items = up["items"].as_array().expect("items");
    let keys: Vec<_> = items.iter().map(|m| m["key"].as_str()).collect();
    assert_eq!(keys, [Some("weekly"), Some("board"), Some("refused")]);
    for m in items {
        has_exactly(m, MEETING_FIELDS);
    }
    let weekly = &items[0];
    assert_eq!(weekly["start_utc"], ts(f.upcoming_start));
    assert_eq!(weekly["start_local"], local(f.upcoming_start));
    assert_eq!(weekly["timezone"], "Europe/Berlin");
    assert_eq!(weekly["meeting_id"], 85_000_000_001_i64);
    assert_eq!(weekly["join_url"], "https://zoom.us/j/85000000001");
    assert_eq!(weekly["duration_min"], 45);

    let pending = &s["recordings_pending"];
    assert_eq!(pending["count"], 1);
    assert_eq!(pending["items"][0]["key"], "lecture");
    assert_eq!(pending["items"][0]["recording_state"], "found");

    has_exactly(&s["files"], "queued downloading pending processing failed");
    assert_eq!(s["files"]["queued"], 1);
    assert_eq!(s["files"]["downloading"], 0);
    assert_eq!(s["files"]["pending"], 1);
    assert_eq!(s["files"]["processing"], 1);
    assert_eq!(s["files"]["failed"], 1);

    has_exactly(&s["archived_today"], "since files bytes");
    assert_eq!(
        s["archived_today"]["since"],
        format!("{}T00:00:00Z", f.now.date_naive())
    );
    assert_eq!(s["archived_today"]["files"], 1);
    assert_eq!(s["archived_today"]["bytes"], 1_000_000);

    let failures = &s["failures"];
    assert_eq!(failures["count"], 3);
    let items = failures["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    for x in items {
        has_exactly(x, FAILURE_FIELDS);
    }
    let file = items
        .iter()
        .find(|x| x["kind"] == "file")
        .expect("failed file");
    assert_eq!(file["id"], f.failed);
    assert_eq!(file["key"], "lecture");
    assert_eq!(file["start_local"], local(f.lecture_start));
    assert_eq!(file["last_error"], "HTTP 500\nfrom Zoom");
    assert!(
        items
            .iter()
            .any(|x| x["kind"] == "recording" && x["key"] == "gone")
    );
    assert!(
        items
            .iter()
            .any(|x| x["kind"] == "meeting" && x["key"] == "refused")
    );

    let deferred = &s["deferred"];
    assert_eq!(deferred["count"], 1);
    assert_eq!(deferred["items"][0]["key"], "board");
    assert_eq!(
        deferred["items"][0]["not_before"],
        ts(f.now + Duration::hours(20))
    );
    assert_eq!(
        deferred["items"][0]["last_error"],
        "daily create limit reached"
    );

    let last = &s["last_error"];
    has_exactly(last, EVENT_FIELDS);
    assert_eq!(last["kind"], "failed");
    assert_eq!(last["message"], "after 5 attempts: HTTP 500");

    // --limit bounds the lists, not the counts.
    let s = json(&f.config, &["status", "--json", "--limit", "1"]).await;
    assert_eq!(s["upcoming"]["count"], 3);
    assert_eq!(s["upcoming"]["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["failures"]["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn status_prints_aligned_sections_with_local_and_utc_times() {
    let f = fixture().await;
    let text = run_ok(&f.config, &["status"]).await;
    assert!(!text.contains(PASSWORD), "{text}");
    for want in [
        "Next meetings (3):",
        "Recordings pending (1):",
        "Files: 1 pending (1 queued, 0 downloading), 1 processing at Zoom, 1 failed",
        "Archived today (since ",
        "1 file, 976.6 KiB (1000000 bytes)",
        "Failures (3):",
        "Deferred creates (1):",
        "Last error: ",
        "failed lecture: after 5 attempts: HTTP 500",
        "https://zoom.us/j/85000000001",
        "daily create limit reached",
        "HTTP 500 from Zoom",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The weekly row: local time with its zone, then UTC, in aligned columns.
    let row = text
        .lines()
        .find(|l| l.contains("weekly"))
        .expect("weekly row");
    let l = row.find(&local(f.upcoming_start)).expect("local time");
    let z = row.find("Europe/Berlin").expect("zone");
    let u = row.find(&ts(f.upcoming_start)).expect("utc time");
    assert!(l < z && z < u, "{row}");
    let header = text
        .lines()
        .find(|l| l.contains("START (LOCAL)"))
        .expect("header");
    assert_eq!(header.find("ZONE"), Some(z), "columns align:\n{text}");
    assert_eq!(
        header.find("START (UTC)"),
        Some(u),
        "columns align:\n{text}"
    );
}

#[tokio::test]
async fn status_on_an_empty_database_says_no_for_each_section() {
    let (_dir, config, db) = config_dir();
    Store::open(&db).await.expect("open").close().await;
    let text = run_ok(&config, &["status"]).await;
    for want in [
        "no upcoming meetings",
        "no recordings pending",
        "no failures",
        "no deferred creates",
        "no errors recorded",
        "Archived today (since ",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let s = json(&config, &["status", "--json"]).await;
    assert_eq!(s["upcoming"]["count"], 0);
    assert_eq!(s["last_error"], Value::Null);
}

#[tokio::test]
async fn meetings_lists_all_upcoming_past_and_by_key() {
    let f = fixture().await;
    let all = json(&f.config, &["meetings", "--json"]).await;
    has_exactly(&all, "meetings");
    let list = all["meetings"].as_array().expect("list");
    assert_eq!(list.len(), 5);
    for m in list {
        has_exactly(m, MEETING_FIELDS);
    }
    // Newest first.
    let starts: Vec<_> = list
        .iter()
        .filter_map(|m| m["start_utc"].as_str())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted);

    let up = json(&f.config, &["meetings", "--upcoming", "--json"]).await;
    let keys: Vec<_> = up["meetings"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["key"].as_str())
        .collect();
    assert_eq!(keys, ["weekly", "board", "refused"]);

    let past = json(&f.config, &["meetings", "--past", "--json"]).await;
    let keys: Vec<_> = past["meetings"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["key"].as_str())
        .collect();
    assert_eq!(keys, ["lecture", "gone"]);

    let one = json(&f.config, &["meetings", "--key", "lecture", "--json"]).await;
    assert_eq!(one["meetings"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["meetings"][0]["meeting_id"], 85_000_000_002_i64);

    let text = run_ok(&f.config, &["meetings", "--upcoming"]).await;
    assert!(text.starts_with("ID  START (LOCAL)"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    let weekly = text.lines().find(|l| l.contains("weekly")).expect("row");
    assert!(weekly.contains(&local(f.upcoming_start)), "{weekly}");
    assert!(weekly.contains(&ts(f.upcoming_start)), "{weekly}");
    assert!(weekly.contains("https://zoom.us/j/85000000001"), "{weekly}");
    let board = text.lines().find(|l| l.contains("board")).expect("row");
    assert!(board.contains("deferred"), "{board}");
    assert!(board.contains("daily create limit reached"), "{board}");

    assert_eq!(
        run_ok(&f.config, &["meetings", "--key", "nope"]).await,
        "no meetings for key 'nope'\n"
    );

    let out = run(&f.config, &["meetings", "--upcoming", "--past"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test]
async fn recordings_lists_files_and_filters_by_state() {
    let f = fixture().await;
    let all = json(&f.config, &["recordings", "--json"]).await;
    has_exactly(&all, "files");
    let files = all["files"].as_array().expect("files");
    assert_eq!(files.len(), 4);
    for x in files {
        has_exactly(x, FILE_FIELDS);
        assert_eq!(x["timezone"], "Europe/Berlin");
        assert_eq!(x["start_local"], local(f.lecture_start));
        assert_eq!(x["meeting_id"], 85_000_000_002_i64);
    }
    let archived = files
        .iter()
        .find(|x| x["id"] == f.archived)
        .expect("archived file");
    assert_eq!(archived["state"], "archived");
    assert_eq!(archived["bytes"], 1_000_000);
    assert_eq!(archived["sha256"], "ab".repeat(32));
    assert_eq!(archived["path"], "2026/a.mp4");
    assert_eq!(archived["file_id"], "f-mp4");

    for (state, id) in [
        ("failed", f.failed),
        ("queued", f.queued),
        ("processing", f.processing),
        ("archived", f.archived),
    ] {
        let one = json(&f.config, &["recordings", "--state", state, "--json"]).await;
        let list = one["files"].as_array().expect("files");
        assert_eq!(list.len(), 1, "{state}");
        assert_eq!(list[0]["id"], id, "{state}");
        assert_eq!(list[0]["state"], state);
    }

    let text = run_ok(&f.config, &["recordings"]).await;
    assert_eq!(text.lines().count(), 5, "{text}");
    let failed = text
        .lines()
        .find(|l| l.starts_with(&format!("{} ", f.failed)))
        .expect("failed row");
    assert!(
        failed.contains("failed") && failed.contains("HTTP 500 from Zoom"),
        "{failed}"
    );
    assert!(failed.contains(&local(f.lecture_start)), "{failed}");
    assert!(failed.contains(&ts(f.lecture_start)), "{failed}");

    assert_eq!(
        run_ok(&f.config, &["recordings", "--state", "downloading"]).await,
        "no recording files in state downloading\n"
    );
}

#[tokio::test]
async fn a_bad_state_exits_2_listing_the_valid_ones() {
    let f = fixture().await;
    let out = run(&f.config, &["recordings", "--state", "done"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown state 'done'"), "{err}");
    assert!(err.contains(BAD_STATE), "{err}");
    assert!(stdout(&out).is_empty());
}

#[tokio::test]
async fn retry_requeues_one_failed_file_or_all() {
    let f = fixture().await;
    // Not failed, or no such file: exit 1, nothing changes.
    let out = run(&f.config, &["retry", &f.archived.to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is archived, not failed"),
        "{}",
        stderr(&out)
    );
    let out = run(&f.config, &["retry", "99999"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("file 99999: no such recording file"),
        "{}",
        stderr(&out)
    );
    let out = run(&f.config, &["retry"]).await;
    assert_eq!(out.status.code(), Some(2), "ID or --failed is required");

    assert_eq!(
        run_ok(&f.config, &["retry", &f.failed.to_string()]).await,
        format!("requeued file {}\n", f.failed)
    );
    let store = Store::open_read_only(&f.db).await.expect("open");
    let file = store.file(f.failed).await.expect("read").expect("row");
    assert_eq!((file.state.as_str(), file.attempts), ("queued", 0));
    store.close().await;

    // Fail it (and the queued one) again; --failed takes both.
    let store = Store::open(&f.db).await.expect("open");
    for id in [f.failed, f.queued] {
        assert!(claim(&store, id, "x", f.now).await);
        store
            .download_failed(id, FailureKind::Transient, "HTTP 500", None, false, f.now)
            .await
            .expect("fail");
    }
    store.close().await;
    let r = json(&f.config, &["retry", "--failed", "--json"]).await;
    has_exactly(&r, "requeued id");
    assert_eq!(r["requeued"], 2);
    assert_eq!(r["id"], Value::Null);
    assert_eq!(
        run_ok(&f.config, &["retry", "--failed"]).await,
        "no failed files to requeue\n"
    );
}

#[tokio::test]
async fn a_missing_database_exits_1_and_is_not_created() {
    let (_dir, config, db) = config_dir();
    for args in [
        &["status"][..],
        &["meetings", "--json"],
        &["recordings"],
        &["retry", "--failed"],
    ] {
        let out = run(&config, args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "database {}: not found (has `zoomd run`",
                db.display()
            )),
            "{args:?}: {err}"
        );
        assert!(stdout(&out).is_empty());
        assert!(!db.exists(), "{args:?} created the database");
    }
}

#[tokio::test]
async fn an_invalid_config_exits_2() {
    let (_dir, config, _db) = config_dir();
    std::fs::write(
        &config,
        "[zoom]\naccount_id = \"a\"\nclient_id = \"c\"\nbogus = 1\n",
    )
    .expect("write");
    for args in [
        &["status"][..],
        &["meetings"],
        &["recordings"],
        &["retry", "1"],
    ] {
        let out = run(&config, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("bogus"), "{}", stderr(&out));
    }
}

/// WAL lets the read-only commands read while a writer holds a write transaction; they see
/// the last committed state and never wait for the writer.
#[tokio::test]
async fn queries_read_while_a_writer_holds_a_transaction() {
    let f = fixture().await;
    let mut writer = SqliteConnectOptions::new()
        .filename(&f.db)
        .busy_timeout(StdDuration::from_secs(10))
        .connect()
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .expect("begin");
    sqlx::query(
        "INSERT INTO events (at, kind, key, message) VALUES (?, 'failed', 'x', 'uncommitted')",
    )
    .bind(ts(f.now))
    .execute(&mut writer)
    .await
    .expect("insert");
    let held = tokio::time::sleep(StdDuration::from_secs(1));
    // While the write lock is held (it is released only after these finish).
    let s = json(&f.config, &["status", "--json"]).await;
    assert_eq!(s["last_error"]["message"], "after 5 attempts: HTTP 500");
    json(&f.config, &["meetings", "--json"]).await;
    json(&f.config, &["recordings", "--json"]).await;
    held.await;
    sqlx::query("COMMIT")
        .execute(&mut writer)
        .await
        .expect("commit");
    writer.close().await.expect("close");
    let s = json(&f.config, &["status", "--json"]).await;
    assert_eq!(s["last_error"]["message"], "uncommitted");
}

/// `zoomd status` 50 times while the daemon's kind of writes go on: neither side ever sees
/// "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_a_loop_never_locks_out_a_writer() {
    let f = fixture().await;
    let store = Store::open(&f.db).await.expect("open");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        let base = f.now + Duration::days(30);
        tokio::spawn(async move {
            let mut n: i64 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = Utc::now();
                let o = occurrence("load", base + Duration::minutes(n));
                let Some(row) = store.record_create_intent(&o, now).await? else {
                    continue;
                };
                store
                    .mark_created(row.id, &created(90_000_000_000 + n), now)
                    .await?;
                store
                    .add_event(
                        &NewEvent {
                            kind: "created",
                            key: Some("load"),
                            occurrence_id: Some(row.id),
                            message: format!("load {n}"),
                            ..NewEvent::default()
                        },
                        now,
                    )
                    .await?;
                n += 1;
            }
            Ok::<i64, zoomd::store::StoreError>(n)
        })
    };
    for i in 0..50 {
        let out = run(&f.config, &["status", "--json"]).await;
        let err = stderr(&out);
        assert!(out.status.success(), "run {i}: {err}");
        assert!(!err.contains("locked"), "run {i}: {err}");
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.expect("join").expect("writer never failed");
    assert!(writes > 0);
    store.close().await;
    let s = json(&f.config, &["status", "--json"]).await;
    assert_eq!(s["upcoming"]["count"], 3 + writes);
}
