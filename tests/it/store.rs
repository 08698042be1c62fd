//! The state database on a real temp file: migrate, every transition, each view, reopen.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use zoomd::store::{
    CreatedMeeting, FailureKind, FailureSubject, FileState, NewEvent, NewOccurrence,
    OccurrenceState, RecordingWatch, SeenFile, SeenRecording, Store, StoreError,
};

use crate::helpers::{claim, failures};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("instant")
}

fn occurrence(key: &str, start: DateTime<Utc>) -> NewOccurrence {
    NewOccurrence {
        key: key.into(),
        start_utc: start,
        start_local: start.to_rfc3339(),
        timezone: chrono_tz::UTC,
        duration_min: 45,
        host: "me".into(),
        topic: format!("Topic {key}"),
        agenda: Some("zoomd:marker".into()),
        settings: serde_json::json!({"auto_recording": "cloud"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        marker: format!("zoomd:{key}:{}", zoomd::store::ts(start)),
    }
}

async fn upsert(store: &Store, file: &SeenFile, now: DateTime<Utc>) {
    store.upsert_file(file, now).await.expect("file");
}

/// The recording's state after refreshing it from its files.
async fn recording_state(store: &Store, rec: i64, now: DateTime<Utc>) -> String {
    let row = store
        .refresh_recording_state(rec, now)
        .await
        .expect("state");
    row.state.to_string()
}

#[tokio::test]
async fn opens_creates_parents_and_uses_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deep/er/state.db");
    let store = Store::open(&path).await.expect("open");
    assert!(path.exists());
    assert_eq!(store.integrity_check().await.expect("check"), "ok");
    store.close().await;
    // WAL leaves its mark in the header (bytes 18-19 = 2).
    let header = std::fs::read(&path).expect("read");
    assert_eq!((header[18], header[19]), (2, 2));
    // Opening again runs no migration twice.
    let store = Store::open(&path).await.expect("reopen");
    store.close().await;
}

#[tokio::test]
async fn read_only_open_of_a_missing_database_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Store::open_read_only(&dir.path().join("none.db"))
        .await
        .expect_err("missing");
    assert!(e.to_string().contains("not found"), "{e}");
}

#[tokio::test]
async fn full_round_trip_through_every_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.expect("open");
    let now = t("2026-11-28T10:00:00Z");

    // An upcoming meeting: intent, then created. Ids beyond 32 bits survive.
    let future = Utc::now() + Duration::days(2);
    let future = future - Duration::nanoseconds(i64::from(future.timestamp_subsec_nanos()));
    let row = store
        .record_create_intent(&occurrence("weekly", future), now)
        .await
        .expect("intent")
        .expect("claimed");
    assert_eq!(row.state.as_str(), "creating");
    let again = store
        .record_create_intent(&occurrence("weekly", future), now)
        .await
        .expect("intent is idempotent");
    assert!(again.is_none(), "a second intent claims nothing");
    assert_eq!(store.unresolved_creates().await.expect("list").len(), 1);
    let meeting_id = 85_123_456_789_i64;
    store
        .mark_created(
            row.id,
            &CreatedMeeting {
                host_id: None,
                meeting_id,
                uuid: Some("abc==".into()),
                join_url: Some("https://zoom.us/j/85123456789".into()),
                password: Some("pw".into()),
            },
            now,
        )
        .await
        .expect("created");
    let up = store
        .status(Utc::now(), Utc::now(), 10)
        .await
        .expect("status")
        .upcoming;
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].meeting_id, Some(meeting_id));
    assert_eq!(up[0].state.as_str(), "created");
    assert!(store.unresolved_creates().await.expect("list").is_empty());

    // A past meeting with a recording of two files: one archived, one failed.
    let past = t("2026-11-20T09:00:00Z");
    let p = store
        .record_create_intent(&occurrence("past", past), now)
        .await
        .expect("intent")
        .expect("claimed");
    store
        .mark_created(
            p.id,
            &CreatedMeeting {
                host_id: None,
                meeting_id: meeting_id + 1,
                uuid: None,
                join_url: None,
                password: None,
            },
            now,
        )
        .await
        .expect("created");
    let due = store.due_polls(now).await.expect("due");
    assert_eq!(due.iter().map(|o| o.id).collect::<Vec<_>>(), [p.id]);
    let rec = store
        .upsert_recording(
            &SeenRecording {
                occurrence_id: Some(p.id),
                meeting_uuid: "/ab//c==".into(),
                meeting_id: meeting_id + 1,
                start_time: Some(past),
                total_size: Some(300),
                scan: None,
            },
            now,
        )
        .await
        .expect("recording");
    let file = |id: &str, completed: bool| SeenFile {
        recording_id: rec,
        file_id: id.into(),
        file_type: "MP4".into(),
        file_extension: "MP4".into(),
        recording_type: Some("shared_screen_with_speaker_view".into()),
        recording_start: Some(past),
        recording_end: Some(past + Duration::minutes(45)),
        file_size: Some(100),
        download_url: Some(format!("https://zoom.us/rec/download/{id}")),
        completed,
    };
    upsert(&store, &file("f1", true), now).await;
    upsert(&store, &file("f2", false), now).await;
    assert_eq!(recording_state(&store, rec, now).await, "processing");
    // f2 completes later: the same upsert queues it, and does not duplicate it.
    upsert(&store, &file("f2", true), now).await;
    assert_eq!(store.files_of_recording(rec).await.expect("files").len(), 2);
    assert_eq!(recording_state(&store, rec, now).await, "ready");
    let queued = store.due_downloads(now, 10).await.expect("due");
    assert_eq!(queued.len(), 2);
    let (f1, f2) = (queued[0].id, queued[1].id);
    assert!(claim(&store, f1, "2026-11/a/f1.mp4", now).await);
    assert!(!claim(&store, f1, "2026-11/a/f1.mp4", now).await);
    store
        .mark_archived(f1, 100, "ab".repeat(32).as_str(), now)
        .await
        .expect("archived");
    assert!(claim(&store, f2, "2026-11/a/f2.mp4", now).await);
    store
        .download_failed(f2, FailureKind::Transient, "HTTP 500", None, false, now)
        .await
        .expect("failed");
    // A later poll must not resurrect an archived or failed file.
    upsert(&store, &file("f1", true), now).await;
    assert_eq!(
        store
            .file(f1)
            .await
            .expect("read")
            .expect("row")
            .state
            .as_str(),
        "archived"
    );

    let archive = store.archive().await.expect("view");
    assert_eq!(archive.len(), 1);
    assert_eq!(archive[0].path.as_deref(), Some("2026-11/a/f1.mp4"));
    assert_eq!(archive[0].meeting_uuid, "/ab//c==");
    let failed = failures(&store).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, FailureSubject::File);
    assert_eq!(failed[0].last_error.as_deref(), Some("HTTP 500"));

    // retry puts it back; archiving it completes the recording.
    assert_eq!(store.retry_failed(None, now).await.expect("retry"), 1);
    assert!(claim(&store, f2, "2026-11/a/f2.mp4", now).await);
    store
        .mark_archived(f2, 100, "cd".repeat(32).as_str(), now)
        .await
        .expect("archived");
    assert_eq!(recording_state(&store, rec, now).await, "archived");
    store
        .mark_cloud_removed(rec, false, now)
        .await
        .expect("trash");
    assert_eq!(
        store.recording(rec).await.expect("read").state.as_str(),
        "cloud_trashed"
    );

    // A meeting that never recorded shows up in failures.
    store
        .set_poll(p.id, RecordingWatch::Missing, None, now)
        .await
        .expect("missing");
    let failed = failures(&store).await;
    assert!(
        failed
            .iter()
            .any(|f| f.kind == FailureSubject::Recording && f.key.as_deref() == Some("past"))
    );

    // Quota and events.
    let day = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    store.count_call("me", day).await.expect("count");
    store.count_call("me", day).await.expect("count");
    assert_eq!(store.quota("me", day).await.expect("quota"), (2, false));
    assert!(store.mark_quota_exhausted("me", day).await.expect("mark"));
    assert!(
        !store
            .mark_quota_exhausted("me", day)
            .await
            .expect("mark once")
    );
    store
        .add_event(
            &NewEvent {
                kind: "created",
                key: Some("weekly"),
                occurrence_id: Some(row.id),
                meeting_id: Some(meeting_id),
                message: "created for test".into(),
                ..NewEvent::default()
            },
            now,
        )
        .await
        .expect("event");
    store.close().await;

    // Everything is still there after reopening, also read-only.
    let store = Store::open_read_only(&path).await.expect("reopen");
    assert_eq!(store.archive().await.expect("view").len(), 2);
    assert_eq!(store.events(10).await.expect("events")[0].kind, "created");
    let status = store.status(Utc::now(), now, 10).await.expect("status");
    assert_eq!(status.upcoming.len(), 1);
    assert_eq!(
        store
            .list_files(Some(FileState::Archived))
            .await
            .expect("files")
            .len(),
        2
    );
    let counts = status.counts;
    assert_eq!(counts.archived_since, 2);
    assert_eq!(counts.archived_bytes_since, 200);
    assert_eq!(store.integrity_check().await.expect("check"), "ok");
}

#[tokio::test]
async fn interrupted_downloads_are_requeued_on_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("open");
    let now = t("2026-11-28T10:00:00Z");
    let o = store
        .record_create_intent(&occurrence("k", t("2026-11-27T10:00:00Z")), now)
        .await
        .expect("intent")
        .expect("claimed");
    let rec = store
        .upsert_recording(
            &SeenRecording {
                occurrence_id: Some(o.id),
                meeting_uuid: "u".into(),
                meeting_id: 1,
                start_time: None,
                total_size: None,
                scan: None,
            },
            now,
        )
        .await
        .expect("rec");
    store
        .upsert_file(
            &SeenFile {
                recording_id: rec,
                file_id: "cc-synthetic".into(),
                file_type: "CC".into(),
                file_extension: "VTT".into(),
                recording_type: None,
                recording_start: None,
                recording_end: None,
                file_size: None,
                download_url: Some("https://zoom.us/x".into()),
                completed: true,
            },
            now,
        )
        .await
        .expect("file");
    let f = store.due_downloads(now, 1).await.expect("due")[0].id;
    assert!(claim(&store, f, "p", now).await);
    assert!(store.due_downloads(now, 1).await.expect("due").is_empty());
    assert_eq!(store.requeue_interrupted(now).await.expect("requeue"), 1);
    let row = store.file(f).await.expect("read").expect("row");
    assert_eq!((row.state.as_str(), row.attempts), ("queued", 0));
}

/// Runs `sql` on the database file beside the store (as a person with sqlite3 could).
async fn poke(path: &std::path::Path, sql: &str) {
    let url = format!("sqlite://{}", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
    sqlx::query(sql).execute(&pool).await.expect("poke");
    pool.close().await;
}

#[tokio::test]
async fn rows_come_back_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("open");
    let start = t("2026-12-07T09:00:00Z");
    let now = t("2026-12-01T08:00:00Z");
    let want = occurrence("standup", start);
    let row = store
        .record_create_intent(&want, now)
        .await
        .expect("intent")
        .expect("the first intent claims the row");
    assert_eq!(row.state, OccurrenceState::Creating);
    assert_eq!((row.start_utc, row.updated_at), (start, now));
    assert_eq!(row.timezone, chrono_tz::UTC);
    assert_eq!(row.settings_json, want.settings);
    assert_eq!(row.recording_state, RecordingWatch::Waiting);
    let until = t("2026-12-02T00:00:00Z");
    store
        .mark_deferred(row.id, until, "cap", now)
        .await
        .expect("defer");
    let again = store
        .occurrence_by_key("standup", start)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        (again.state, again.not_before),
        (OccurrenceState::Deferred, Some(until))
    );
    assert_eq!(
        store.next_create_attempt().await.expect("next"),
        Some(until)
    );
    store.close().await;
}

#[tokio::test]
async fn a_corrupt_value_is_an_error_naming_the_row_not_a_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.db");
    let store = Store::open(&db).await.expect("open");
    let now = t("2026-12-01T08:00:00Z");
    let row = store
        .record_create_intent(&occurrence("standup", t("2026-12-07T09:00:00Z")), now)
        .await
        .expect("intent")
        .expect("claimed");
    // What a hand edit in sqlite3 could leave behind.
    poke(
        &db,
        "UPDATE occurrences SET updated_at = 'yesterday', timezone = 'Europe/Berln'",
    )
    .await;
    let err = store
        .unresolved_creates()
        .await
        .expect_err("a corrupt instant must not read as a default");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        text.contains(&format!("occurrences row id={}", row.id)),
        "{text}"
    );
    assert!(
        text.contains("updated_at") || text.contains("timezone"),
        "{text}"
    );

    // '1 day' sorts before any instant, so `min(...)` returns it.
    poke(
        &db,
        "UPDATE occurrences SET updated_at = '2026-12-01T08:00:00Z', timezone = 'UTC',
             not_before = '1 day', state = 'deferred'",
    )
    .await;
    let err = store
        .next_create_attempt()
        .await
        .expect_err("'1 day' is not an instant");
    assert!(err.to_string().contains("'1 day'"), "{err}");
    store.close().await;
}

#[tokio::test]
async fn an_intent_is_a_claim_and_is_written_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("open");
    let now = t("2026-12-01T08:00:00Z");
    let want = occurrence("standup", t("2026-12-07T09:00:00Z"));
    let first = store
        .record_create_intent(&want, now)
        .await
        .expect("intent");
    let second = store
        .record_create_intent(&want, now)
        .await
        .expect("intent");
    let id = first
        .map(|r| r.id)
        .expect("the first write claims the occurrence");
    assert!(
        second.is_none(),
        "a second writer must not call Zoom for it"
    );
    // Created: a retry cannot claim it again.
    let made = CreatedMeeting {
        host_id: Some("KdYKjnimT4KPd8FFgQt9FQ".into()),
        meeting_id: 81_234_567_890,
        uuid: None,
        join_url: None,
        password: None,
    };
    store.mark_created(id, &made, now).await.expect("created");
    assert!(
        !store
            .retry_create_intent(id, &want, now)
            .await
            .expect("retry")
    );
    // The intent path commits with synchronous = FULL (2): on disk before the request.
    assert_eq!(store.intent_synchronous().await.expect("level"), 2);
    store.close().await;
}

#[tokio::test]
async fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state.db");
    let first = Store::open_writer(&db).await.expect("first writer");
    let err = Store::open_writer(&db)
        .await
        .expect_err("a second writer must be refused");
    let lock = zoomd::store::lock_path(&db);
    assert_eq!(
        err.to_string().split(';').next().unwrap_or_default(),
        format!(
            "another zoomd (pid {}) holds {}",
            std::process::id(),
            lock.display()
        )
    );
    // Readers take no lock.
    let reader = Store::open_read_only(&db).await.expect("reader");
    reader.close().await;
    first.close().await;
    drop(first);
    let again = Store::open_writer(&db).await.expect("lock released");
    again.close().await;
}

#[tokio::test]
async fn the_daily_cap_counts_one_zoom_user_however_the_host_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("open");
    let now = t("2026-12-01T08:00:00Z");
    let day = now.date_naive();
    for host in ["me", "me", "owner@example.com"] {
        store.count_call(host, day).await.expect("count");
    }
    assert_eq!(store.quota("me", day).await.expect("quota"), (2, false));
    // Both names turn out to be one user: what they counted adds up under the id.
    for host in ["me", "owner@example.com"] {
        store
            .remember_host_id(host, "u1", day, now)
            .await
            .expect("remember");
    }
    assert_eq!(store.quota("me", day).await.expect("quota"), (3, false));
    store
        .count_call("owner@example.com", day)
        .await
        .expect("count");
    store.uncount_call("me", day).await.expect("uncount");
    assert_eq!(store.quota("u1", day).await.expect("quota"), (3, false));
    assert!(store.mark_quota_exhausted("me", day).await.expect("mark"));
    assert!(
        !store
            .mark_quota_exhausted("owner@example.com", day)
            .await
            .expect("mark")
    );
    assert_eq!(
        store.quota("owner@example.com", day).await.expect("quota"),
        (3, true)
    );
    store.close().await;
}

#[tokio::test]
async fn scan_progress_resumes_restarts_for_an_earlier_since_and_unschedules_who_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.db"))
        .await
        .expect("open");
    let now = t("2026-12-02T10:00:00Z");
    let d = |s: &str| s.parse::<NaiveDate>().expect("date");
    let u = store
        .add_scan_user("jane@example.org", None, None, d("2026-09-01"), now)
        .await
        .expect("add");
    assert_eq!((u.since, u.done_through), (d("2026-09-01"), None));
    store
        .scan_window_done("jane@example.org", d("2026-09-30"), now)
        .await
        .expect("window");
    store
        .scan_ended("jane@example.org", None, now + Duration::hours(1), now)
        .await
        .expect("ended");
    // A later `since` (the default moving on) keeps the progress; an earlier one restarts.
    let u = store
        .add_scan_user(
            "jane@example.org",
            Some("j@x"),
            Some("active"),
            d("2026-11-01"),
            now,
        )
        .await
        .expect("again");
    assert_eq!(
        (u.since, u.done_through),
        (d("2026-09-01"), Some(d("2026-09-30")))
    );
    assert_eq!(u.windows_done, 1);
    let u = store
        .add_scan_user("jane@example.org", None, None, d("2026-06-01"), now)
        .await
        .expect("earlier");
    assert_eq!((u.since, u.done_through), (d("2026-06-01"), None));
    assert_eq!(
        u.email.as_deref(),
        Some("j@x"),
        "what GET /users said is kept"
    );
    // Someone no longer listed is unscheduled (and its progress kept).
    store
        .add_scan_user("bob@example.org", None, None, d("2026-06-01"), now)
        .await
        .expect("bob");
    store
        .scan_ended("bob@example.org", None, now + Duration::hours(1), now)
        .await
        .expect("ended");
    store
        .unschedule_scans_except(&["bob@example.org"])
        .await
        .expect("unschedule");
    let users = store.scan_users().await.expect("users");
    let jane = users
        .iter()
        .find(|u| u.user == "jane@example.org")
        .expect("jane");
    let bob = users
        .iter()
        .find(|u| u.user == "bob@example.org")
        .expect("bob");
    assert_eq!(jane.next_scan_at, None);
    assert_eq!(jane.since, d("2026-06-01"));
    assert_eq!(bob.next_scan_at, Some(now + Duration::hours(1)));
    store.close().await;
}

/// Object-storage uploads are on record from before their first part until completed or
/// aborted, and a reopened database (the next start) still lists a crash's.
#[tokio::test]
async fn object_uploads_are_on_record_until_forgotten_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let now = "2026-12-07T09:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("now");
    let store = Store::open(&path).await.expect("open");
    store
        .record_object_upload("up-2", "2026-12/b.mp4", None, now + Duration::seconds(1))
        .await
        .expect("record");
    store
        .record_object_upload("up-1", "2026-12/a.mp4", None, now)
        .await
        .expect("record");
    // An upload id is recorded once.
    assert!(
        store
            .record_object_upload("up-1", "2026-12/a.mp4", None, now)
            .await
            .is_err()
    );
    store.forget_object_upload("up-2").await.expect("forget");
    store.close().await;

    let store = Store::open(&path).await.expect("reopen");
    let left = store.object_uploads().await.expect("list");
    assert_eq!(
        left,
        [zoomd::store::ObjectUploadRow {
            upload_id: "up-1".into(),
            key: "2026-12/a.mp4".into(),
            file_id: None,
            started_at: now,
        }]
    );
    store.forget_object_upload("up-1").await.expect("forget");
    store
        .forget_object_upload("up-1")
        .await
        .expect("forget twice");
    assert_eq!(store.object_uploads().await.expect("list"), []);
    store.close().await;
}
