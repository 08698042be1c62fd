//! The account scan (`[recordings] users`): other users' cloud recordings, backfilled in
//! month windows, resumed after a failure, filtered by type, archived once.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use zoomd::clock::{Clock, ManualClock};
use zoomd::sim::{Fault, RetryAfter, Route, Sim, SimConfig, SimUser};
use zoomd::store::{ArchiveRow, Store};
use zoomd::zoom::{RetryPolicy, ZoomClient};

use crate::helpers::*;

const INACTIVE: &str = "gone@example.org";

/// The sim's two active users and an inactive one (deactivated users keep their recordings).
fn three_users() -> SimConfig {
    let mut cfg = SimConfig::default();
    cfg.users.push(SimUser {
        id: "Gq0neUSERxxxxxxxxx0001".into(),
        email: INACTIVE.into(),
        timezone: "Europe/Berlin".into(),
        status: "inactive",
    });
    cfg
}

fn day(t: DateTime<Utc>) -> String {
    format!("\"{}\"", t.date_naive())
}

/// `zoomd sync` on the config in `dir`.
async fn sync(dir: &Path, config: &DaemonToml) -> Output {
    let path = config.write(dir);
    let mut cmd = zoomd();
    cmd.arg("sync").arg("--config").arg(path).envs(config.env());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run sync"))
        .await
        .expect("join");
    assert!(out.status.success(), "sync failed:\n{}", text(&out));
    out
}

async fn archive_of(dir: &Path) -> Vec<ArchiveRow> {
    let store = Store::open(&dir.join("state.db")).await.expect("database");
    let rows = store.archive().await.expect("archive");
    store.close().await;
    rows
}

/// The `(from, to)` of every user recordings listing the sim answered, from request `since`.
fn listings(sim: &Sim, since: usize) -> Vec<(NaiveDate, NaiveDate, u16)> {
    sim.report()
        .requests
        .iter()
        .skip(since)
        .filter(|r| r.route == Route::ListRecordings)
        .map(|r| {
            let q = r.query.clone().unwrap_or_default();
            let get = |k: &str| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse::<NaiveDate>().ok())
                    .unwrap_or_else(|| panic!("no {k} in {q}"))
            };
            (get("from"), get("to"), r.status)
        })
        .collect()
}

fn assert_windows_of_a_month_at_most(windows: &[(NaiveDate, NaiveDate, u16)]) {
    for (from, to, status) in windows {
        assert_eq!(*status, 200, "{from}..{to} was refused");
        let limit = from
            .checked_add_months(chrono::Months::new(1))
            .expect("date");
        assert!(to <= &limit, "window {from}..{to} is longer than a month");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_users_history_is_archived_and_new_recordings_and_users_follow() {
    let sim = spawn_sim(three_users()).await;
    let now = sim.now();
    let users = ["host@example.org", "chair@example.org", INACTIVE];
    for u in users {
        sim.add_recording_history(u, now - Span::days(70), now - Span::hours(2), 3)
            .expect("history");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(&sim)
        .recordings("users", "\"*\"")
        .recordings("since", &day(now - Span::days(72)));
    let out = sync(dir.path(), &config).await;
    assert!(
        text(&out).contains("scan: 3 users listed, 0 failed"),
        "{}",
        text(&out)
    );
    // Progress off a terminal: a line as each user is done (windows and the queue so far).
    let printed = text(&out);
    let progress: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("scan: ") && l.contains(" users, "))
        .map(str::trim)
        .collect();
    assert_eq!(
        progress.first(),
        Some(&"scan: 0/3 users, 0 windows, 0 files queued")
    );
    assert!(
        progress
            .last()
            .is_some_and(|l| l.starts_with("scan: 3/3 users, 9 windows, ")),
        "{progress:?}"
    );

    let archive = archive_of(dir.path()).await;
    let expected = sim.expected_files();
    assert_eq!(expected.len(), 3 * 3 * 5, "the sim's history");
    assert!(
        holds_exactly(&expected, &archive),
        "archived {} of {} files",
        archive.len(),
        expected.len()
    );
    assert_on_disk(&dir.path().join("recordings"), &archive);
    assert_no_leaks(&sim);
    for a in &archive {
        // Nobody's meeting was created by zoomd: each goes under its host.
        assert_eq!(a.key, None);
        assert!(users.contains(&a.host.as_str()), "{}", a.host);
        let path = a.path.as_deref().expect("path");
        assert!(
            path.starts_with(&format!("users/{}/", a.host)),
            "{path} is not under its host"
        );
    }
    let first = listings(&sim, 0);
    assert_windows_of_a_month_at_most(&first);
    // 72 days are three windows per user.
    assert_eq!(first.len(), 3 * 3, "{first:?}");

    // A recording appears, and a user joins with a history of their own.
    let seen = sim.report().requests.len();
    sim.add_adhoc_recording("chair@example.org", "Late one", now - Span::minutes(30), 5)
        .expect("ad-hoc");
    let newcomer = SimUser {
        id: "NewCOMERxxxxxxxxxx0002".into(),
        email: "new@example.org".into(),
        timezone: "UTC".into(),
        status: "pending",
    };
    sim.add_user(newcomer);
    sim.add_recording_history(
        "new@example.org",
        now - Span::days(40),
        now - Span::days(1),
        2,
    )
    .expect("history");
    sync(dir.path(), &config).await;
    let archive = archive_of(dir.path()).await;
    let expected = sim.expected_files();
    assert_eq!(expected.len(), (9 + 1 + 2) * 5);
    assert!(holds_exactly(&expected, &archive));
    let again = listings(&sim, seen);
    assert_windows_of_a_month_at_most(&again);
    // The known users list only the overlap back from today (give_up_after, 3 days);
    // the newcomer is backfilled from since.
    let today = now.date_naive();
    let backfill = again
        .iter()
        .filter(|(from, _, _)| *from < today - Span::days(4))
        .count();
    assert_eq!(
        backfill, 3,
        "only the newcomer's windows reach back: {again:?}"
    );
    assert_eq!(again.len(), 3 + 3, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backfill_resumes_after_its_last_completed_window() {
    let sim = spawn_sim(SimConfig::default()).await;
    let now = sim.now();
    sim.add_recording_history(
        "chair@example.org",
        now - Span::days(100),
        now - Span::days(1),
        8,
    )
    .expect("history");
    // The third window's listing fails in a way no retry fixes.
    sim.inject_after(
        Route::ListRecordings,
        2,
        Fault::MissingScope("cloud_recording:read:list_user_recordings:admin"),
        1,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(&sim)
        .recordings("users", "[\"chair@example.org\"]")
        .recordings("since", &day(now - Span::days(105)));
    let out = sync(dir.path(), &config).await;
    assert!(
        text(&out).contains("scan: 0 users listed, 1 failed, 2 windows"),
        "{}",
        text(&out)
    );
    let first = listings(&sim, 0);
    assert_eq!(first.len(), 3, "{first:?}");
    let done_through = first[1].1;
    let archived_before = archive_of(dir.path()).await.len();
    assert!(
        archived_before > 0,
        "the completed windows' files are archived"
    );

    let seen = sim.report().requests.len();
    sync(dir.path(), &config).await;
    let resumed = listings(&sim, seen);
    assert!(!resumed.is_empty());
    for (from, to, _) in &resumed {
        assert!(
            *from > done_through,
            "window {from}..{to} was listed again (done through {done_through})"
        );
    }
    assert_windows_of_a_month_at_most(&resumed);
    // Windows 3 and 4 of 105 days.
    assert_eq!(resumed.len(), 2, "{resumed:?}");
    let archive = archive_of(dir.path()).await;
    assert!(holds_exactly(&sim.expected_files(), &archive));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_types_archives_only_those_types() {
    let sim = spawn_sim(SimConfig::default()).await;
    let now = sim.now();
    sim.add_recording_history(
        "host@example.org",
        now - Span::days(10),
        now - Span::days(1),
        2,
    )
    .expect("history");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(&sim)
        .recordings("users", "[\"host@example.org\"]")
        .recordings("file_types", "[\"mp4\"]");
    sync(dir.path(), &config).await;
    let archive = archive_of(dir.path()).await;
    let mp4: Vec<_> = sim
        .expected_files()
        .into_iter()
        .filter(|e| e.file_type == "MP4")
        .collect();
    assert_eq!(mp4.len(), 2);
    assert!(holds_exactly(&mp4, &archive), "{archive:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_copies_of_other_users_recordings_are_kept_unless_configured() {
    let sim = spawn_sim(SimConfig::default()).await;
    let now = sim.now();
    let history = sim
        .add_recording_history(
            "host@example.org",
            now - Span::days(10),
            now - Span::days(1),
            2,
        )
        .expect("history");
    let dir = tempfile::tempdir().expect("tempdir");
    // zoomd's own meetings are trashed after download; someone else's are not, by default.
    let config = DaemonToml::new(&sim)
        .set("after_download", "\"trash\"")
        .recordings("users", "\"*\"")
        .recordings("file_types", "[\"MP4\"]");
    sync(dir.path(), &config).await;
    assert_eq!(archive_of(dir.path()).await.len(), 2);
    assert!(
        sim.report().recordings_removed.is_empty(),
        "{:?}",
        sim.report().recordings_removed
    );

    // Opted in, with a type filter: only the archived MP4s go, one file at a time; the
    // other types, never archived, stay in the cloud.
    let config = config.recordings("after_download", "\"trash\"");
    let mp4s: Vec<_> = sim
        .expected_files()
        .into_iter()
        .filter(|e| e.file_type == "MP4")
        .collect();
    sync(dir.path(), &config).await;
    let removed = sim.report().recordings_removed;
    assert_eq!(removed.len(), history.len(), "{removed:?}");
    for r in &removed {
        assert_eq!(r.action, "trash");
        let file = r
            .file_id
            .as_deref()
            .expect("one file, not the whole recording");
        assert!(
            mp4s.iter()
                .any(|e| e.uuid == r.uuid && e.file_id.as_deref() == Some(file)),
            "{r:?} is not an archived MP4"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_zoomd_created_and_the_scan_lists_is_archived_once() {
    let sim = spawn_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let start = sim.now() + Span::minutes(3);
    let at = start.format("%Y-%m-%dT%H:%M").to_string();
    let own = DaemonToml::new(&sim).meetings(&Entry::at("lecture", "Lecture", &at).toml());
    sync(dir.path(), &own).await;
    let meeting = sim.meetings().first().map(|m| m.id).expect("created");
    sim.force_recording(meeting).expect("recording");
    let listed = oauth_client(&sim)
        .list_user_recordings(
            "me",
            start.date_naive() - Span::days(1),
            start.date_naive() + Span::days(1),
        )
        .await
        .expect("list");
    assert!(
        listed.iter().any(|r| r.id == Some(meeting)),
        "the scan lists it"
    );

    let both = own.recordings("users", "\"*\"");
    sync(dir.path(), &both).await;
    sync(dir.path(), &both).await;
    let archive = archive_of(dir.path()).await;
    let expected: Vec<_> = sim
        .expected_files()
        .into_iter()
        .filter(|e| e.meeting_id == meeting)
        .collect();
    assert!(!expected.is_empty());
    assert!(holds_exactly(&expected, &archive), "{archive:#?}");
    for a in &archive {
        assert_eq!(a.key.as_deref(), Some("lecture"));
        assert!(!a.path.as_deref().unwrap_or("").starts_with("users/"));
    }
}

/// A long wait between two pages (a 429 asking for 16 minutes, on a paused clock) makes
/// the page token stale: the listing starts again instead of sending it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_token_older_than_fifteen_minutes_is_never_sent() {
    let clock = ManualClock::new("2026-12-01T12:00:00Z".parse().expect("instant"));
    let sim = spawn_sim(SimConfig {
        clock: clock.shared(),
        ..SimConfig::default()
    })
    .await;
    let now = sim.now();
    sim.add_recording_history(
        "host@example.org",
        now - Span::days(20),
        now - Span::days(1),
        301,
    )
    .expect("history");
    // The second page's request is answered "come back in 16 minutes".
    sim.inject_after(
        Route::ListRecordings,
        1,
        Fault::RateLimited(RetryAfter::Seconds(16 * 60)),
        1,
    );
    let mut cc = client_config(&sim, oauth_credentials(&sim));
    cc.clock = clock.shared();
    cc.retry = RetryPolicy {
        max_retry_after: Duration::from_secs(30 * 60),
        ..fast_retry()
    };
    let client = ZoomClient::new(cc).expect("client");
    let today = now.date_naive();
    let recs = client
        .list_user_recordings("host@example.org", today - Span::days(25), today)
        .await
        .expect("listing");
    assert_eq!(recs.len(), 301);
    let statuses: Vec<(bool, u16)> = sim
        .report()
        .requests
        .iter()
        .filter(|r| r.route == Route::ListRecordings)
        .map(|r| {
            let paged = r
                .query
                .as_deref()
                .unwrap_or("")
                .contains("next_page_token=");
            (paged, r.status)
        })
        .collect();
    // Page 1, page 2 (429), then page 1 again and page 2 with a fresh token; never a 400.
    assert_eq!(
        statuses,
        [(false, 200), (true, 429), (false, 200), (true, 200)]
    );
    assert!(clock.now() >= now + Span::minutes(16));
}

/// `zoomd check --online` of a config that scans every user of `sim`.
async fn check_online(sim: &Sim) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(sim).recordings("users", "\"*\"");
    let mut cmd = zoomd();
    cmd.args(["check", "--online", "--config"])
        .arg(config.write(dir.path()))
        .envs(config.env());
    tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_names_the_scan_scope_the_token_lacks() {
    let granular = [
        "meeting:write:meeting:admin",
        "meeting:update:meeting:admin",
        "meeting:delete:meeting:admin",
        "meeting:read:meeting:admin",
        "meeting:read:list_meetings:admin",
        "meeting:read:list_past_instances:admin",
        "cloud_recording:read:list_recording_files:admin",
        "user:read:list_users:admin",
    ];
    let sim = spawn_sim(SimConfig {
        scope: granular.join(" "),
        ..SimConfig::default()
    })
    .await;
    let out = check_online(&sim).await;
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("cloud_recording:read:list_user_recordings:admin")
            && t.contains("recording:read:admin")
            && t.contains("[recordings] users"),
        "{t}"
    );
    // With the scope, nothing is missing.
    drop(sim);
    let mut all = granular.to_vec();
    all.push("cloud_recording:read:list_user_recordings:admin");
    let sim = spawn_sim(SimConfig {
        scope: all.join(" "),
        ..SimConfig::default()
    })
    .await;
    let out = check_online(&sim).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_download_url_of_a_scanned_recording_is_refreshed_by_uuid() {
    let sim = spawn_sim(SimConfig::default()).await;
    let now = sim.now();
    let history = sim
        .add_recording_history(
            "chair@example.org",
            now - Span::days(10),
            now - Span::days(9),
            1,
        )
        .expect("history");
    let uuid = history[0].uuid.clone();
    sim.inject(Route::Download, Fault::DownloadUrlExpired, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(&sim).recordings("users", "[\"chair@example.org\"]");
    sync(dir.path(), &config).await;
    assert_eq!(
        archive_of(dir.path()).await.len(),
        4,
        "one file met a stale URL"
    );
    // Every URL handed out so far is dead now: only a fresh listing helps.
    sim.expire_download_urls();
    let seen = sim.report().requests.len();
    sync(dir.path(), &config).await;
    let archive = archive_of(dir.path()).await;
    assert!(holds_exactly(&sim.expected_files(), &archive));
    let refreshed = sim
        .report()
        .requests
        .iter()
        .skip(seen)
        .filter(|r| r.route == Route::GetRecordings && r.status == 200)
        .count();
    assert_eq!(
        refreshed, 1,
        "the recording {uuid} was listed again by uuid"
    );
    // The recording is ten days old: the scan's overlap did not list it again.
    assert!(
        listings(&sim, seen)
            .iter()
            .all(|(from, _, _)| *from > now.date_naive() - Span::days(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_backfills_in_its_own_task_beside_the_schedule() {
    let sim = spawn_sim(three_users()).await;
    let now = sim.now();
    for u in ["host@example.org", INACTIVE] {
        sim.add_recording_history(u, now - Span::days(45), now - Span::hours(1), 3)
            .expect("history");
    }
    let start = (now + Span::days(2)).format("%Y-%m-%dT%H:%M").to_string();
    let config = DaemonToml::run(&sim)
        .recordings("users", "\"*\"")
        .recordings("since", &day(now - Span::days(50)))
        .meetings(&Entry::at("board", "Board", &start).toml());
    let mut d = spawn_daemon(&config, &[]);
    let expected = sim.expected_files();
    assert_eq!(expected.len(), 6 * 5);
    d.wait_for("the backfill archived", || async {
        holds_exactly(&expected, &d.archive_rows().await)
    })
    .await;
    d.wait_for("the scheduled meeting created", || async {
        sim.report().meetings_created.len() == 1
    })
    .await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    let store = d.store().await.expect("database");
    let users = store.scan_users().await.expect("scan users");
    store.close().await;
    assert_eq!(users.len(), 3, "{users:?}");
    let today = now.date_naive();
    for u in &users {
        assert_eq!(u.done_through, Some(today), "{u:?}");
        assert!(
            u.next_scan_at.is_some_and(|t| t > now + Span::minutes(50)),
            "{u:?}"
        );
        assert_eq!(u.last_error, None);
    }
}

/// The scan's listings are Zoom's medium category: they take at most two thirds of the
/// budget, so creates and polls keep the rest while a backfill runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scans_listings_keep_to_the_medium_share_of_the_budget() {
    let sim = spawn_sim(SimConfig::default()).await;
    let now = sim.now();
    let mut cc = client_config(&sim, oauth_credentials(&sim));
    cc.pace = zoomd::zoom::Pace {
        requests_per_second: 6.0,
        max_in_flight: 8,
    };
    let client = ZoomClient::new(cc).expect("client");
    let today = now.date_naive();
    // Ten month windows, listed one after the other as fast as the budget allows.
    client
        .list_user_recordings("host@example.org", today - Span::days(300), today)
        .await
        .expect("listing");
    let c = sim.counters();
    assert_eq!(c.get(Route::ListRecordings), 10);
    assert!(
        c.max_per_second <= 4,
        "{} listings in one second; the medium share of 6/s is 4",
        c.max_per_second
    );
}
