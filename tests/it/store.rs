//! The state database on both engines (a real temp file, and a throw-away PostgreSQL
//! cluster): migrate, every transition, each view, reopen.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use zoomd::store::{
    CreatedMeeting, FailureKind, FailureSubject, FileState, NewEvent, NewOccurrence,
    OccurrenceState, RecordingWatch, SeenFile, SeenRecording, Store, StoreError,
};

use crate::helpers::{Engine, TestDb, both_engines, claim, failures};

both_engines!(
    a_read_only_open_of_a_database_never_made_says_so,
    full_round_trip_through_every_view,
    interrupted_downloads_are_requeued_on_start,
    rows_come_back_typed,
    a_corrupt_value_is_an_error_naming_the_row_not_a_default,
    an_intent_is_a_claim_and_is_written_durably,
    only_sqlite_has_one_writer,
    the_daily_cap_counts_one_zoom_user_however_the_host_is_written,
    scan_progress_resumes_restarts_for_an_earlier_since_and_unschedules_who_left,
    a_download_lease_is_held_renewed_and_taken_over_once_it_runs_out,
    the_daily_cap_holds_for_takers_in_several_processes_at_once,
    of_many_claims_at_once_from_several_processes_one_gets_the_file,
    download_segments_are_recorded_begun_again_and_cleared,
    object_uploads_are_on_record_until_forgotten_across_a_reopen,
    a_create_in_flight_is_held_until_its_lease_runs_out,
    polls_are_claimed_once_and_come_due_again_after_the_lease,
    a_hosts_drift_check_is_claimed_once_per_window,
    the_request_budget_is_one_set_of_places_for_every_process,
    updates_hold_an_occurrence_and_a_start_forgets_a_dead_writers_claims,
    a_users_scan_is_left_by_whoever_found_it_due_before_it_was_done,
);

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

/// No file, or (PostgreSQL) a database without zoomd's tables: "not found", not an SQL error.
async fn a_read_only_open_of_a_database_never_made_says_so(db: TestDb) {
    let e = Store::open_read_only(&db.database)
        .await
        .expect_err("missing");
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(matches!(e, StoreError::Missing { .. }), "{e:?}");
}

async fn full_round_trip_through_every_view(db: TestDb) {
    let store = db.open().await;
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
    let writer = store.lease_holder().to_string();
    store.close().await;

    // Everything is still there after reopening, also read-only.
    let store = Store::open_read_only(&db.database).await.expect("reopen");
    // The view people query, with its own idea of "now" (strftime / to_char).
    assert_eq!(db.scalar("SELECT count(*) FROM upcoming_meetings").await, 1);
    assert_eq!(store.archive().await.expect("view").len(), 2);
    let newest = &store.events(10).await.expect("events")[0];
    assert_eq!(newest.kind, "created");
    // The event names the process that wrote it, not the one reading.
    assert_eq!(newest.holder.as_deref(), Some(writer.as_str()));
    assert_ne!(store.lease_holder(), writer);
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

async fn interrupted_downloads_are_requeued_on_start(db: TestDb) {
    let store = db.open().await;
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
    // SQLite: the one writer starting again takes its interrupted downloads at once.
    // PostgreSQL: another process may hold them; a start takes them once the lease ran out.
    let start = match db.engine {
        Engine::Sqlite => now,
        Engine::Postgres => {
            let early = now + store.lease_length() - Duration::seconds(1);
            assert_eq!(store.requeue_interrupted(early).await.expect("requeue"), 0);
            now + store.lease_length()
        }
    };
    assert_eq!(store.requeue_interrupted(start).await.expect("requeue"), 1);
    let row = store.file(f).await.expect("read").expect("row");
    assert_eq!((row.state.as_str(), row.attempts), ("queued", 0));
}

async fn rows_come_back_typed(db: TestDb) {
    let store = db.open().await;
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

async fn a_corrupt_value_is_an_error_naming_the_row_not_a_default(db: TestDb) {
    let store = db.open().await;
    let now = t("2026-12-01T08:00:00Z");
    let row = store
        .record_create_intent(&occurrence("standup", t("2026-12-07T09:00:00Z")), now)
        .await
        .expect("intent")
        .expect("claimed");
    // What a hand edit in sqlite3 or psql could leave behind.
    db.poke("UPDATE occurrences SET updated_at = 'yesterday', timezone = 'Europe/Berln'")
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
    db.poke(
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

async fn an_intent_is_a_claim_and_is_written_durably(db: TestDb) {
    let store = db.open().await;
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
    // The intent path commits with synchronous = FULL (2) on SQLite, and PostgreSQL's
    // synchronous_commit is on: on disk before the request.
    assert_eq!(store.intent_synchronous().await.expect("level"), 2);
    store.close().await;
}

/// SQLite: a second writer is refused, naming the holder's pid. PostgreSQL: processes share
/// the database (the work is claimed row by row), so no lock is taken.
async fn only_sqlite_has_one_writer(db: TestDb) {
    if db.engine == Engine::Postgres {
        let first = Store::open_writer(&db.database)
            .await
            .expect("first writer");
        let second = Store::open_writer(&db.database)
            .await
            .expect("a second writer shares PostgreSQL");
        second.close().await;
        first.close().await;
        return;
    }
    let first = Store::open_writer(&db.database)
        .await
        .expect("first writer");
    let db = db.database.sqlite_path().expect("a file").to_path_buf();
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

async fn the_daily_cap_counts_one_zoom_user_however_the_host_is_written(db: TestDb) {
    let store = db.open().await;
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

async fn scan_progress_resumes_restarts_for_an_earlier_since_and_unschedules_who_left(db: TestDb) {
    let store = db.open().await;
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

/// Several processes starting at once on an empty PostgreSQL database migrate it once:
/// sqlx's migrator holds an advisory lock while it reads and applies. Three `zoomd retry
/// --failed` (a command that opens the database as a writer, migrating it, and exits) are
/// started together; then four stores of this process open a fresh database at once (each
/// its own pool: separate server sessions).
mod two_processes_starting_at_once_migrate_once {
    use super::*;

    /// How many migrations PostgreSQL has.
    fn migrations() -> i64 {
        let files = std::fs::read_dir("migrations/postgres")
            .expect("migrations/postgres")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count();
        i64::try_from(files).expect("count")
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL: scripts/pg-check"]
    async fn postgres() {
        let db = TestDb::postgres().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("daemon.toml");
        std::fs::write(
            &config,
            format!(
                "[zoom]\naccount_id = \"acc\"\nclient_id = \"cid\"\n[daemon]\ndatabase = \"{}\"\n",
                db.database
            ),
        )
        .expect("config");
        let children: Vec<_> = (0..3)
            .map(|_| {
                crate::helpers::zoomd()
                    .arg("--config")
                    .arg(&config)
                    .args(["retry", "--failed"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn zoomd")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("zoomd");
            assert!(out.status.success(), "{}", crate::helpers::text(&out));
        }
        let applied = "SELECT count(*) FROM _sqlx_migrations WHERE success";
        assert_eq!(db.scalar(applied).await, migrations());

        let fresh = TestDb::postgres().await;
        let opens = (0..4).map(|_| Store::open(&fresh.database));
        let stores = futures_util::future::join_all(opens).await;
        for s in &stores {
            assert!(s.is_ok(), "{:?}", s.as_ref().err());
        }
        assert_eq!(fresh.scalar(applied).await, migrations());
        for s in stores.into_iter().flatten() {
            s.close().await;
        }
    }
}

/// A queued file of a created meeting; its row id.
async fn queued_file(store: &Store, now: DateTime<Utc>) -> i64 {
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
    let file = SeenFile {
        recording_id: rec,
        file_id: "f1".into(),
        file_type: "MP4".into(),
        file_extension: "MP4".into(),
        recording_type: None,
        recording_start: None,
        recording_end: None,
        file_size: Some(100),
        download_url: Some("https://zoom.us/x".into()),
        completed: true,
    };
    upsert(store, &file, now).await;
    store.due_downloads(now, 1).await.expect("due")[0].id
}

/// Two processes on one database (two stores, each its own lease holder): one claim per
/// file; the holder's renewals keep it; once its lease runs out the file goes back to the
/// queue and the other takes it over, and the first can then neither renew nor record it.
async fn a_download_lease_is_held_renewed_and_taken_over_once_it_runs_out(db: TestDb) {
    let a = db.open().await.with_lease(Duration::seconds(60));
    let b = db.open().await.with_lease(Duration::seconds(60));
    assert_ne!(a.lease_holder(), b.lease_holder());
    let now = t("2026-11-28T10:00:00Z");
    let f = queued_file(&a, now).await;
    assert!(a.start_download(f, "p", now).await.expect("claim"));
    assert!(!b.start_download(f, "p", now).await.expect("claim"));
    // Within the lease nothing is taken, at start or by a pass.
    let secs = |n| now + Duration::seconds(n);
    assert_eq!(b.requeue_expired(secs(59)).await.expect("expire"), 0);
    assert!(a.renew_download(f, secs(30)).await.expect("renew"));
    // Renewed at +30 s: it holds until +90 s.
    assert_eq!(b.requeue_expired(secs(89)).await.expect("expire"), 0);
    if db.engine == Engine::Postgres {
        // Another process starting meanwhile leaves a live lease alone (with SQLite's one
        // writer, whoever starts is the only one, and takes every interrupted download).
        assert_eq!(b.requeue_interrupted(secs(89)).await.expect("start"), 0);
    }
    assert_eq!(b.requeue_expired(secs(90)).await.expect("expire"), 1);
    let row = b.file(f).await.expect("read").expect("row");
    assert_eq!(
        (row.state, row.attempts),
        (FileState::Queued, 0),
        "a taken-over attempt is not counted"
    );
    assert!(b.start_download(f, "p", secs(91)).await.expect("take over"));
    assert!(!a.renew_download(f, secs(92)).await.expect("renew"));
    assert!(!a.mark_archived(f, 100, "ab", secs(93)).await.expect("late"));
    a.requeue(f, secs(93)).await.expect("late requeue");
    assert_eq!(
        b.file(f).await.expect("read").expect("row").state,
        FileState::Downloading,
        "the lost holder changes nothing"
    );
    assert!(
        b.mark_archived(f, 100, "ab", secs(94))
            .await
            .expect("archive")
    );
    let row = b.file(f).await.expect("read").expect("row");
    assert_eq!(
        (row.state, row.sha256.as_deref()),
        (FileState::Archived, Some("ab"))
    );
    a.close().await;
    b.close().await;
}

/// Creates for one host from two processes at once (two stores, each its own pool) never
/// take more than the cap between them: each take is one statement.
async fn the_daily_cap_holds_for_takers_in_several_processes_at_once(db: TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let day = t("2026-12-01T08:00:00Z").date_naive();
    let takes = (0..20).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { store.take_call("me", day, 7).await.expect("take") }
    });
    let taken = futures_util::future::join_all(takes).await;
    assert_eq!(taken.iter().filter(|t| **t).count(), 7);
    assert_eq!(a.quota("me", day).await.expect("quota"), (7, false));
    a.close().await;
    b.close().await;
}

/// Twenty claims of one queued file at once, from two processes (stores): exactly one wins,
/// and the file is leased to that one's holder.
async fn of_many_claims_at_once_from_several_processes_one_gets_the_file(db: TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let now = t("2026-11-28T10:00:00Z");
    let f = queued_file(&a, now).await;
    let claims = (0..20).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let won = store.start_download(f, "p", now).await.expect("claim");
            won.then(|| store.lease_holder().to_string())
        }
    });
    let winners: Vec<String> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let row = a.file(f).await.expect("read").expect("row");
    assert_eq!((row.state, row.attempts), (FileState::Downloading, 1));
    // The winner may renew; the other may not.
    let (winner, loser) = if winners[0] == a.lease_holder() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(winner.renew_download(f, now).await.expect("renew"));
    assert!(!loser.renew_download(f, now).await.expect("renew"));
    a.close().await;
    b.close().await;
}

/// The segments of a part: begun with the file's validator, each done one recorded, begun
/// again (a new version of the file) from none, cleared once archived; the row goes with its
/// file.
async fn download_segments_are_recorded_begun_again_and_cleared(db: TestDb) {
    let store = db.open().await;
    let now = t("2026-11-28T10:00:00Z");
    let f = queued_file(&store, now).await;
    assert_eq!(store.part_state(f).await.expect("read"), None);
    store
        .begin_part(f, Some("\"v1\""), 100 << 20, 8 << 20, now)
        .await
        .expect("begin");
    for i in [3, 0, 7] {
        store.segment_done(f, i, now).await.expect("done");
    }
    let st = store.part_state(f).await.expect("read").expect("a part");
    assert_eq!(st.validator.as_deref(), Some("\"v1\""));
    assert_eq!((st.size, st.segment_size), (100 << 20, 8 << 20));
    assert_eq!(st.done.into_iter().collect::<Vec<_>>(), vec![0, 3, 7]);
    store
        .begin_part(f, None, 100 << 20, 8 << 20, now)
        .await
        .expect("begin again");
    let st = store.part_state(f).await.expect("read").expect("a part");
    assert!(st.done.is_empty() && st.validator.is_none(), "{st:?}");
    store.clear_part(f).await.expect("clear");
    assert_eq!(store.part_state(f).await.expect("read"), None);
    store.close().await;
}

/// Object-storage uploads are on record from before their first part until completed or
/// aborted, and a reopened database (the next start) still lists a crash's.
async fn object_uploads_are_on_record_until_forgotten_across_a_reopen(db: TestDb) {
    let now = "2026-12-07T09:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("now");
    let store = db.open().await;
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

    let store = db.open().await;
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

/// A created occurrence whose recording poll is due at `start`.
async fn created(store: &Store, key: &str, start: DateTime<Utc>, meeting_id: i64) -> i64 {
    let row = store
        .record_create_intent(&occurrence(key, start), start - Duration::days(1))
        .await
        .expect("intent")
        .expect("claimed");
    store
        .mark_created(
            row.id,
            &CreatedMeeting {
                host_id: None,
                meeting_id,
                uuid: Some(format!("{key}==")),
                join_url: None,
                password: None,
            },
            start - Duration::days(1),
        )
        .await
        .expect("created");
    row.id
}

/// A create in flight is its sender's: another process neither resolves nor repeats it
/// until the sender's lease has run out; then exactly one takes it over.
async fn a_create_in_flight_is_held_until_its_lease_runs_out(db: TestDb) {
    let a = db.open().await.with_lease(Duration::seconds(60));
    let b = db.open().await.with_lease(Duration::seconds(60));
    let now = t("2026-11-28T10:00:00Z");
    let start = t("2026-12-01T09:00:00Z");
    let want = occurrence("held", start);
    let row = a
        .record_create_intent(&want, now)
        .await
        .expect("intent")
        .expect("claimed");
    let secs = |n| now + Duration::seconds(n);
    assert!(
        b.claim_unresolved_creates(secs(59))
            .await
            .expect("b")
            .is_empty()
    );
    assert!(
        !b.retry_create_intent(row.id, &want, secs(59))
            .await
            .expect("retry")
    );
    // Its own sender resolves it at any time.
    assert_eq!(
        a.claim_unresolved_creates(secs(10)).await.expect("a").len(),
        1
    );
    // The claim renewed a's lease to +70 s; after it, b (once) takes it over.
    assert!(
        b.claim_unresolved_creates(secs(69))
            .await
            .expect("b")
            .is_empty()
    );
    let taken = b.claim_unresolved_creates(secs(70)).await.expect("b");
    assert_eq!(taken.iter().map(|r| r.id).collect::<Vec<_>>(), vec![row.id]);
    assert!(
        a.claim_unresolved_creates(secs(71))
            .await
            .expect("a")
            .is_empty()
    );
    assert!(
        !a.retry_create_intent(row.id, &want, secs(72))
            .await
            .expect("retry")
    );
    assert!(
        b.retry_create_intent(row.id, &want, secs(72))
            .await
            .expect("retry")
    );
    // An outcome written ends the hold: a failed create may be tried by anyone later.
    b.mark_create_failed(row.id, secs(100), "refused", secs(73))
        .await
        .expect("failed");
    assert!(
        a.retry_create_intent(row.id, &want, secs(101))
            .await
            .expect("retry")
    );
    a.close().await;
    b.close().await;
}

/// Of two processes claiming the due polls in small batches at once, each poll goes to
/// one; a claimed poll is due again when the claimer's lease runs out, unless it recorded
/// the outcome.
async fn polls_are_claimed_once_and_come_due_again_after_the_lease(db: TestDb) {
    let a = db.open().await.with_lease(Duration::seconds(60));
    let b = db.open().await.with_lease(Duration::seconds(60));
    let start = t("2026-11-28T09:00:00Z");
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            created(
                &a,
                &format!("p{i}"),
                start + Duration::minutes(i),
                851_000 + i,
            )
            .await,
        );
    }
    let now = t("2026-11-28T10:00:00Z");
    let claims = (0..16).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let rows = store.claim_due_polls(now, 3).await.expect("claim");
            rows.into_iter()
                .map(|r| (r.id, store.lease_holder().to_string()))
                .collect::<Vec<_>>()
        }
    });
    let mut got: Vec<(i64, String)> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    got.sort();
    let claimed: Vec<i64> = got.iter().map(|(id, _)| *id).collect();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(claimed, all, "every poll claimed exactly once");
    assert!(a.claim_due_polls(now, 50).await.expect("again").is_empty());
    // One recorded its outcome (next poll in an hour); the others' claims run out.
    let done = ids[0];
    a.set_poll(
        done,
        zoomd::store::RecordingWatch::Waiting,
        Some(now + Duration::hours(1)),
        now,
    )
    .await
    .expect("set poll");
    assert!(
        b.claim_due_polls(now + Duration::seconds(59), 50)
            .await
            .expect("b")
            .is_empty()
    );
    let back = b
        .claim_due_polls(now + Duration::seconds(60), 50)
        .await
        .expect("b");
    assert_eq!(back.len(), 19);
    assert!(back.iter().all(|r| r.id != done));
    assert_eq!(
        b.next_poll_at().await.expect("next"),
        Some(now + Duration::seconds(120)),
        "the claimed polls are due at the end of b's lease"
    );
    a.close().await;
    b.close().await;
}

/// A host's drift check is done by one process at a time, and once per window between
/// them; a check that failed, or whose process died, is anyone's again.
async fn a_hosts_drift_check_is_claimed_once_per_window(db: TestDb) {
    use zoomd::store::VERIFY;
    let a = db.open().await.with_lease(Duration::seconds(60));
    let b = db.open().await.with_lease(Duration::seconds(60));
    let now = t("2026-11-28T10:00:00Z");
    let fresh = Duration::minutes(30);
    let at = |m| now + Duration::minutes(m);
    assert!(
        a.claim_check(VERIFY, "h@x", now, now - fresh)
            .await
            .expect("a")
    );
    assert!(
        !b.claim_check(VERIFY, "h@x", now, now - fresh)
            .await
            .expect("b")
    );
    // Another host is another check.
    assert!(
        b.claim_check(VERIFY, "k@x", now, now - fresh)
            .await
            .expect("b")
    );
    a.end_check(VERIFY, "h@x", Some(now)).await.expect("done");
    assert!(
        !b.claim_check(VERIFY, "h@x", at(10), at(10) - fresh)
            .await
            .expect("b")
    );
    assert!(
        b.claim_check(VERIFY, "h@x", at(30), at(30) - fresh)
            .await
            .expect("b")
    );
    // b fails to list the host: not done, so a may check it at once.
    b.end_check(VERIFY, "h@x", None).await.expect("not done");
    assert!(
        a.claim_check(VERIFY, "h@x", at(31), at(31) - fresh)
            .await
            .expect("a")
    );
    // a dies holding it: b takes it once the lease has run out.
    assert!(
        !b.claim_check(VERIFY, "h@x", at(31) + Duration::seconds(59), at(0))
            .await
            .expect("b")
    );
    assert!(
        b.claim_check(VERIFY, "h@x", at(32), at(0))
            .await
            .expect("b")
    );
    // a, late, cannot end what b now holds.
    a.end_check(VERIFY, "h@x", Some(at(32)))
        .await
        .expect("late");
    let soon = at(32) + Duration::seconds(30);
    assert!(
        !a.claim_check(VERIFY, "h@x", soon, at(0))
            .await
            .expect("still b's")
    );
    a.close().await;
    b.close().await;
}

/// `requests_per_second` is the account's: processes take places from one set, a place
/// frees one window after its answer, and one never given back frees at its expiry.
async fn the_request_budget_is_one_set_of_places_for_every_process(db: TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let now = 1_800_000_000_000i64;
    let expires = now + 60_000;
    let mut places = Vec::new();
    for store in [&a, &b, &a] {
        places.push(
            store
                .take_request_place(3, now, expires)
                .await
                .expect("take")
                .expect("free"),
        );
    }
    places.sort();
    assert_eq!(places, vec![0, 1, 2], "three different places of three");
    assert_eq!(
        b.take_request_place(3, now, expires).await.expect("take"),
        Err(expires)
    );
    // Taken at once from both: of 3 places, 3 are had, whatever the interleaving.
    b.give_back_request_place(places[1], now + 1_000)
        .await
        .expect("back");
    assert_eq!(
        a.take_request_place(3, now + 500, expires)
            .await
            .expect("take"),
        Err(now + 1_000)
    );
    let racers = (0..6).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            store
                .take_request_place(3, now + 1_000, expires)
                .await
                .expect("take")
        }
    });
    let won: Vec<_> = futures_util::future::join_all(racers).await;
    assert_eq!(won.iter().filter(|r| r.is_ok()).count(), 1, "{won:?}");
    // A place its taker never gave back (the process died) frees at its expiry.
    assert!(
        b.take_request_place(3, expires, expires + 60_000)
            .await
            .expect("take")
            .is_ok()
    );
    // Only the taker gives a place back.
    let p = a
        .take_request_place(3, expires, expires + 60_000)
        .await
        .expect("take")
        .expect("free");
    b.give_back_request_place(p, expires)
        .await
        .expect("not b's");
    assert!(
        a.take_request_place(3, expires, expires + 60_000)
            .await
            .expect("take")
            .is_ok()
    );
    assert_eq!(
        a.take_request_place(3, expires, expires)
            .await
            .expect("take"),
        Err(expires + 60_000),
        "b's give-back of a's place changed nothing"
    );
    a.close().await;
    b.close().await;
}

/// An update holds its occurrence against every other process until released; with SQLite
/// the next writer forgets the holds of the one before it (it is gone).
async fn updates_hold_an_occurrence_and_a_start_forgets_a_dead_writers_claims(db: TestDb) {
    let a = db.open().await.with_lease(Duration::seconds(60));
    let b = db.open().await.with_lease(Duration::seconds(60));
    let now = t("2026-11-28T10:00:00Z");
    let id = created(&a, "u", t("2026-12-01T09:00:00Z"), 852_000).await;
    assert!(a.claim_occurrence(id, now).await.expect("a"));
    assert!(a.claim_occurrence(id, now).await.expect("again, a's own"));
    assert!(!b.claim_occurrence(id, now).await.expect("b"));
    b.release_occurrence(id).await.expect("not b's to release");
    assert!(!b.claim_occurrence(id, now).await.expect("b"));
    a.release_occurrence(id).await.expect("release");
    assert!(b.claim_occurrence(id, now).await.expect("b"));
    b.forget_claims_of_the_dead().await.expect("forget");
    let held = !a.claim_occurrence(id, now).await.expect("a");
    match db.engine {
        Engine::Sqlite => assert!(!held, "a start on SQLite forgets every hold"),
        Engine::Postgres => assert!(held, "a start on PostgreSQL leaves live holds alone"),
    }
    a.close().await;
    b.close().await;
}

/// The account scan of one user: two processes find it due at once; one scans it (renewing
/// its claim per window); the other, which looked before that scan was done, leaves it.
async fn a_users_scan_is_left_by_whoever_found_it_due_before_it_was_done(db: TestDb) {
    use zoomd::store::SCAN;
    let a = db.open().await.with_lease(Duration::seconds(60));
    let b = db.open().await.with_lease(Duration::seconds(60));
    let looked = t("2026-11-28T10:00:00Z");
    let secs = |n| looked + Duration::seconds(n);
    assert!(a.claim_check(SCAN, "u1", looked, looked).await.expect("a"));
    assert!(!b.claim_check(SCAN, "u1", looked, looked).await.expect("b"));
    // a renews per window, past its first lease; b cannot take it meanwhile.
    assert!(
        a.claim_check(SCAN, "u1", secs(50), looked)
            .await
            .expect("renew")
    );
    assert!(
        !b.claim_check(SCAN, "u1", secs(70), looked)
            .await
            .expect("b")
    );
    a.end_check(SCAN, "u1", Some(secs(80))).await.expect("done");
    // b looked at `looked`, before a's scan was done: it leaves it.
    assert!(
        !b.claim_check(SCAN, "u1", secs(81), looked)
            .await
            .expect("b")
    );
    // The next time it is due, whoever looks after that scan takes it.
    assert!(
        b.claim_check(SCAN, "u1", secs(3600), secs(3600))
            .await
            .expect("b")
    );
    a.close().await;
    b.close().await;
}
