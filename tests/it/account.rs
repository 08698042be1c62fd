//! Living with the real account: one writer, drift repaired, hosts that leave, big
//! cancellations held (`plan`/`apply`), a watchdog that survives a slow Zoom.
//!
//! The in-process tests run the real steps against the sim with a clock the test moves;
//! the others run the real binary.

use std::collections::HashSet;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use serde_json::Value;
use zoomd::clock::{Clock, ManualClock};
use zoomd::config::{Config, Env};
use zoomd::shutdown::Shutdown;
use zoomd::sim::{PersonEdit, Route, Sim, SimConfig};
use zoomd::store::{FileState, OccurrenceState, RecordingWatch, Store};
use zoomd::sync::downloads::{self, ProgressFn};
use zoomd::sync::{Ctx, meetings, plan, recordings, verify};
use zoomd::zoom::ZoomClient;

use crate::helpers::{
    DaemonToml, Entry, HANG, client_config, event_kinds, eventually, in_secs, oauth_credentials,
    output_ok, spawn_daemon, spawn_sim, text,
};

/// The steps in-process: a sim, a config of `entries` one-off meetings an hour apart from
/// two days ahead, and a `Ctx` on a clock the test moves.
struct Account {
    _dir: tempfile::TempDir,
    sim: Sim,
    ctx: Ctx,
    clock: ManualClock,
    path: std::path::PathBuf,
    base: DateTime<Utc>,
}

impl Account {
    async fn new(entries: usize, host: &str, daemon: &str) -> Account {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = spawn_sim(SimConfig::default()).await;
        let start = Utc::now().trunc_subsecs(0);
        // Whole minutes: the entries' `at` names minutes.
        let base = (start + chrono::Duration::days(2))
            .with_second(0)
            .expect("a whole minute");
        let path = dir.path().join("daemon.toml");
        let mut a = Account {
            _dir: dir,
            ctx: ctx(&sim, &path, &ManualClock::new(start)).await,
            sim,
            clock: ManualClock::new(start),
            path,
            base,
        };
        a.write(entries, host, daemon);
        a.ctx = ctx(&a.sim, &a.path, &a.clock).await;
        a
    }

    /// Rewrites the schedule: entries `0..n` of `host`.
    fn write(&self, n: usize, host: &str, daemon: &str) {
        let mut meetings = String::new();
        for i in 0..n {
            let at = self.base + chrono::Duration::hours(i as i64);
            meetings.push_str(
                &Entry::at(
                    &format!("m{i}"),
                    &format!("Meeting {i}"),
                    &at.format("%Y-%m-%dT%H:%M").to_string(),
                )
                .host(host)
                .duration("30m")
                .toml(),
            );
        }
        let text = DaemonToml::new(&self.sim)
            .login(crate::helpers::Login::OAuthFile)
            .set("create_ahead", "\"7d\"")
            .meetings(&meetings)
            .text();
        let text = format!("{text}\n{daemon}");
        // `daemon` lines go into [daemon]: written before the meetings.
        let text = match daemon {
            "" => text,
            extra => text.replacen("[daemon]\n", &format!("[daemon]\n{extra}\n"), 1),
        };
        std::fs::write(&self.path, text).expect("config");
        let secret = self.path.with_file_name("secret");
        std::fs::write(&secret, &self.sim.config().client_secret).expect("secret");
        crate::helpers::chmod(&secret, 0o600);
    }

    fn config(&self) -> Config {
        let text = std::fs::read_to_string(&self.path).expect("config");
        Config::parse(&text, &self.path, &Env::default()).expect("valid config")
    }

    async fn reconcile(&self) -> meetings::Report {
        meetings::reconcile(&self.ctx, &self.config())
            .await
            .expect("meetings pass")
    }

    fn live_sim_meetings(&self) -> Vec<zoomd::sim::MeetingRecord> {
        self.sim
            .meetings()
            .into_iter()
            .filter(|m| !m.deleted)
            .collect()
    }

    async fn row(&self, key: &str, i: i64) -> zoomd::store::OccurrenceRow {
        self.ctx
            .store
            .occurrence_by_key(key, self.base + chrono::Duration::hours(i))
            .await
            .expect("read")
            .expect("row")
    }
}

async fn ctx(sim: &Sim, path: &std::path::Path, clock: &ManualClock) -> Ctx {
    let store = Store::open(&path.with_file_name("state.db"))
        .await
        .expect("store");
    let zoom = ZoomClient::new(client_config(sim, oauth_credentials(sim))).expect("client");
    Ctx {
        store,
        zoom,
        clock: clock.shared(),
        objects: None,
    }
}

#[tokio::test]
async fn a_meeting_deleted_at_zoom_is_created_again_and_one_edited_is_patched_back() {
    let a = Account::new(3, "me", "").await;
    assert_eq!(a.reconcile().await.created, 3);
    let m0 = a.row("m0", 0).await.meeting_id.expect("id");
    let m1 = a.row("m1", 1).await.meeting_id.expect("id");
    let m2 = a.row("m2", 2).await.meeting_id.expect("id");

    // A person deletes m1 and renames m2 in the web page; m0 has started and is deleted
    // after it began.
    a.sim.person_deletes_meeting(m1).expect("delete");
    a.sim
        .person_edits_meeting(
            m2,
            PersonEdit {
                topic: Some("Renamed by hand".into()),
                ..PersonEdit::default()
            },
        )
        .expect("edit");
    a.clock.set(a.base + chrono::Duration::minutes(5));
    a.sim.person_deletes_meeting(m0).expect("delete");

    let report = verify::verify(&a.ctx, chrono::Duration::zero())
        .await
        .expect("verify");
    assert_eq!((report.gone, report.drifted), (1, 1), "{report:?}");
    let again = a.reconcile().await;
    assert_eq!(again.created, 1, "{again:?}");

    // m1 exists again at Zoom, once; m2 has its topic back; m0 is left alone.
    let row1 = a.row("m1", 1).await;
    let new1 = row1.meeting_id.expect("created again");
    assert_ne!(new1, m1);
    let live = a.live_sim_meetings();
    assert_eq!(live.iter().filter(|m| m.id == new1).count(), 1);
    assert_eq!(
        live.iter().find(|m| m.id == m2).map(|m| m.topic.as_str()),
        Some("Meeting 2")
    );
    assert!(live.iter().all(|m| m.id != m0), "m0 must not be recreated");
    assert_eq!(a.row("m0", 0).await.meeting_id, Some(m0));
    crate::helpers::assert_markers_unique(&live);
    let kinds = event_kinds(&a.ctx.store).await;
    // Newest first: the latest `created` comes after (stands before) `deleted-at-zoom`.
    let newest = |k: &str| kinds.iter().position(|e| e == k);
    assert!(
        newest("created").is_some() && newest("created") < newest("deleted-at-zoom"),
        "deleted-at-zoom, then created: {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "deleted-at-zoom").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "drifted").count(),
        1,
        "{kinds:?}"
    );

    // A second check finds nothing to do.
    let quiet = verify::verify(&a.ctx, chrono::Duration::zero())
        .await
        .expect("verify");
    assert_eq!((quiet.gone, quiet.drifted), (0, 0), "{quiet:?}");
}

#[tokio::test]
async fn a_poll_that_finds_the_meeting_gone_is_no_missing_recording() {
    let a = Account::new(1, "me", "").await;
    a.reconcile().await;
    let id = a.row("m0", 0).await.meeting_id.expect("id");
    // Deleted by hand just before it began: polls start at the start and get 3001.
    a.sim.person_deletes_meeting(id).expect("delete");
    a.clock.set(a.base + chrono::Duration::minutes(1));
    recordings::poll(&a.ctx, &a.config()).await.expect("poll");
    let row = a.row("m0", 0).await;
    assert_eq!(row.recording_state, RecordingWatch::Unwatched);
    let kinds = event_kinds(&a.ctx.store).await;
    assert!(kinds.contains(&"deleted-at-zoom".to_string()), "{kinds:?}");
    // Long past the give-up time: still no "missing" alert, no failure row.
    a.clock.set(a.base + chrono::Duration::days(5));
    recordings::poll(&a.ctx, &a.config()).await.expect("poll");
    assert!(
        !event_kinds(&a.ctx.store)
            .await
            .contains(&"missing".to_string())
    );
    assert!(crate::helpers::failures(&a.ctx.store).await.is_empty());
}

#[tokio::test]
async fn a_changed_host_moves_the_meeting() {
    let a = Account::new(2, "me", "").await;
    a.reconcile().await;
    let old = a.row("m1", 1).await.meeting_id.expect("id");
    let second = a.sim.config().users[1].email.clone();
    a.write(2, &second, "");
    let r = a.reconcile().await;
    assert_eq!(r.created, 2, "{r:?}");
    let row = a.row("m1", 1).await;
    let new = row.meeting_id.expect("created at the new host");
    assert_ne!(new, old);
    assert_eq!(row.host, second);
    let deleted = a.sim.report().meetings_deleted;
    assert!(deleted.contains(&old), "{deleted:?}");
    let live = a.live_sim_meetings();
    let moved = live.iter().find(|m| m.id == new).expect("at Zoom");
    assert_eq!(moved.host_email, second);
    crate::helpers::assert_markers_unique(&live);
    assert!(
        event_kinds(&a.ctx.store)
            .await
            .contains(&"moved".to_string())
    );
}

#[tokio::test]
async fn a_host_that_left_fails_its_occurrences_once_a_day_without_a_daily_cap_message() {
    let a = Account::new(3, "gone@example.com", "").await;
    let first = a.reconcile().await;
    assert_eq!(first.failed, 3, "{first:?}");
    let creates = a.sim.counters().get(Route::CreateMeeting);
    assert_eq!(creates, 1, "one create tells zoomd the host does not exist");
    for i in 0..3 {
        let row = a.row(&format!("m{i}"), i).await;
        assert_eq!(row.state, OccurrenceState::Failed);
        assert_eq!(
            row.last_error.as_deref(),
            Some("host 'gone@example.com' does not exist at Zoom (code 1001)")
        );
    }
    // The same day: no more attempts, and the cap is untouched.
    a.clock.advance(Duration::from_secs(3 * 3600));
    a.reconcile().await;
    assert_eq!(a.sim.counters().get(Route::CreateMeeting), creates);
    let day = Clock::now(&a.clock).date_naive();
    assert_eq!(
        a.ctx
            .store
            .quota("gone@example.com", day)
            .await
            .expect("quota"),
        (0, false)
    );
    // A day later: asked again, once per occurrence at most.
    a.clock.advance(Duration::from_secs(24 * 3600));
    a.reconcile().await;
    let after = a.sim.counters().get(Route::CreateMeeting);
    assert!(after > creates && after <= creates + 3, "{after}");
    // Listed as failures, never as a daily cap.
    let status = a
        .ctx
        .store
        .status(Clock::now(&a.clock), Clock::now(&a.clock), 10)
        .await
        .expect("status");
    assert_eq!(status.counts.meetings_failed, 3);
    assert!(status.failures.iter().all(|f| {
        f.last_error
            .as_deref()
            .is_some_and(|e| e.contains("does not exist at Zoom (code 1001)"))
    }));
    let events = a.ctx.store.events(100).await.expect("events");
    assert!(
        events.iter().all(|e| !e.message.contains("daily")),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_empty_schedule_holds_every_cancellation_and_one_of_twelve_goes_at_once() {
    let a = Account::new(12, "me", "").await;
    assert_eq!(a.reconcile().await.created, 12);

    // Dropping one entry of twelve: cancelled at once.
    a.write(11, "me", "");
    let r = a.reconcile().await;
    assert_eq!((r.cancelled, r.held), (1, 0), "{r:?}");
    assert_eq!(a.sim.report().meetings_deleted.len(), 1);

    // An empty schedule (a bad save): nothing cancelled, all eleven held, said once.
    a.write(0, "me", "");
    let r = a.reconcile().await;
    assert_eq!((r.cancelled, r.held), (0, 11), "{r:?}");
    let r = a.reconcile().await;
    assert_eq!((r.cancelled, r.held), (0, 11), "{r:?}");
    assert_eq!(a.sim.report().meetings_deleted.len(), 1);
    let held_events = event_kinds(&a.ctx.store)
        .await
        .into_iter()
        .filter(|k| k == "cancel-held")
        .count();
    assert_eq!(held_events, 11);
    let p = plan::plan(
        &a.ctx.store,
        &a.config(),
        Clock::now(&a.clock),
        &HashSet::new(),
    )
    .await
    .expect("plan");
    assert_eq!(p.cancellations.iter().filter(|c| c.held).count(), 11);

    // Putting the entries back releases the hold; nothing was lost at Zoom.
    a.write(11, "me", "");
    let r = a.reconcile().await;
    assert_eq!((r.cancelled, r.held, r.created), (0, 0, 0), "{r:?}");
    assert_eq!(a.live_sim_meetings().len(), 11);
}

/// `zoomd sync` creates, a schedule that drops 11 of 12 is held, `zoomd plan` (text and
/// JSON) lists the held cancellations, `zoomd apply` (no daemon running) carries them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_held_cancellations_and_apply_carries_them_out() {
    let sim = spawn_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let start = in_secs(2 * 86400);
    let entries = |n: usize| {
        (0..n)
            .map(|i| {
                let at = start + chrono::Duration::hours(i as i64);
                Entry::at(
                    &format!("m{i}"),
                    &format!("Meeting {i}"),
                    &at.format("%Y-%m-%dT%H:%M").to_string(),
                )
                .toml()
            })
            .collect::<String>()
    };
    let write = |n: usize| {
        DaemonToml::new(&sim)
            .set("create_ahead", "\"7d\"")
            .meetings(&entries(n))
            .write(dir.path())
    };
    let env = DaemonToml::new(&sim).env();
    let zoomd = |args: &[&str]| {
        let mut c = crate::helpers::zoomd();
        c.args(args)
            .arg("--config")
            .arg(dir.path().join("daemon.toml"));
        for (k, v) in &env {
            c.env(k, v);
        }
        c
    };
    write(12);
    output_ok(&mut zoomd(&["sync"]));
    assert_eq!(sim.meetings().len(), 12);

    write(1);
    let synced = output_ok(&mut zoomd(&["sync"]));
    assert!(
        text(&synced).contains("0 cancelled, 11 held"),
        "{}",
        text(&synced)
    );
    assert!(sim.report().meetings_deleted.is_empty());

    let plan_text = text(&output_ok(&mut zoomd(&["plan"])));
    assert!(plan_text.contains("Cancellations (11):"), "{plan_text}");
    assert_eq!(
        plan_text
            .matches("held: `zoomd apply` carries it out")
            .count(),
        11,
        "{plan_text}"
    );
    let doc: Value = serde_json::from_slice(&output_ok(&mut zoomd(&["plan", "--json"])).stdout)
        .expect("plan json");
    let cancels = doc["cancellations"].as_array().expect("cancellations");
    assert_eq!(cancels.len(), 11);
    assert!(cancels.iter().all(|c| c["held"] == Value::Bool(true)));
    assert!(cancels.iter().all(|c| c["meeting_id"].is_i64()));
    assert_eq!(doc["creates"].as_array().map(Vec::len), Some(0));

    let applied: Value =
        serde_json::from_slice(&output_ok(&mut zoomd(&["apply", "--json"])).stdout)
            .expect("apply json");
    assert_eq!(applied["confirmed"], 11);
    assert_eq!(applied["cancelled"], 11);
    assert_eq!(sim.report().meetings_deleted.len(), 11);
    let after: Value = serde_json::from_slice(&output_ok(&mut zoomd(&["plan", "--json"])).stdout)
        .expect("plan json");
    assert_eq!(after["cancellations"].as_array().map(Vec::len), Some(0));
}

/// A second writer beside the running daemon is refused at once, naming the lock and the
/// daemon's pid; it creates nothing and leaves the daemon's downloads alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_beside_a_running_daemon_exits_1_with_the_lock_message() {
    let sim = spawn_sim(SimConfig {
        mp4_size: 64 * 1024 * 1024,
        ..SimConfig::default()
    })
    .await;
    let start = in_secs(3);
    let config = DaemonToml::run(&sim)
        .meetings(&Entry::cron("lock", "Lock test", &crate::helpers::cron_at(start)).toml());
    let mut daemon = spawn_daemon(&config, &[]);
    daemon
        .wait_for("a download in progress", || async {
            sim.counters().get(Route::SignedDownload) > 0
        })
        .await;
    let creates = sim.counters().get(Route::CreateMeeting);
    let out = daemon.command(&["sync"]).output().expect("run sync");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lock = daemon.path("state.db.lock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("holds {}", lock.display()))
            && stderr.contains("another zoomd (pid "),
        "{stderr}"
    );
    assert_eq!(sim.counters().get(Route::CreateMeeting), creates);
    crate::helpers::assert_markers_unique(&sim.meetings());
    // The daemon's download was not requeued under it: it finishes and verifies.
    daemon
        .wait_for("every file archived", || async {
            crate::helpers::holds_exactly(&sim.expected_files(), &daemon.archive_rows().await)
        })
        .await;
    assert!(
        !daemon
            .logs()
            .contains("interrupted downloads back in the queue")
    );
    daemon.stop().await;
}

/// With every request answered after 4 s and a 3 s watchdog, systemd hears from zoomd in
/// time throughout; SIGTERM ends it while a request is held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_hears_from_a_daemon_whose_zoom_is_slow() {
    let sim = spawn_sim(SimConfig::default()).await;
    sim.set_latency(Duration::from_secs(4));
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let entries: String = (0..16)
        .map(|i| {
            Entry::at(
                &format!("w{i}"),
                "Watchdog",
                &in_secs(86400 + i * 3600)
                    .format("%Y-%m-%dT%H:%M")
                    .to_string(),
            )
            .toml()
        })
        .collect();
    let config = DaemonToml::run(&sim).meetings(&entries);
    let socket_env = socket_path.display().to_string();
    let mut daemon = spawn_daemon(
        &config,
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "3000000")],
    );
    // Read what zoomd tells systemd while it works through 4 s answers (token, creates).
    let mut pings: Vec<Instant> = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(14);
    while Instant::now() < until {
        if let Ok(n) = socket.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "WATCHDOG=1")
        {
            pings.push(Instant::now());
        }
    }
    assert!(daemon.running(), "{}", daemon.log_tail());
    assert!(pings.len() >= 4, "{} pings", pings.len());
    // systemd kills after WatchdogSec (3 s) without a ping: it never came to that.
    let longest = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(longest < Duration::from_secs(3), "a gap of {longest:?}");
    assert!(
        sim.meetings().len() < 16,
        "the pass must still be under way (4 s a request)"
    );

    // A request held open for two minutes: SIGTERM still ends zoomd (the hang guard of
    // `stop`, 60 s, is shorter than the hold).
    sim.set_latency(Duration::from_secs(120));
    let total = || sim.counters().requests.values().sum::<u64>();
    let before = total();
    let held = eventually(HANG, || std::future::ready(total() > before)).await;
    assert!(
        held,
        "no request after the hold began\n{}",
        daemon.log_tail()
    );
    daemon.stop().await;
}

/// With a daemon running, `zoomd apply` confirms and wakes it; the daemon cancels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_beside_a_running_daemon_wakes_it_to_cancel() {
    let sim = spawn_sim(SimConfig::default()).await;
    let start = in_secs(2 * 86400);
    let entries = |n: usize| {
        (0..n)
            .map(|i| {
                let at = start + chrono::Duration::hours(i as i64);
                let at = at.format("%Y-%m-%dT%H:%M").to_string();
                Entry::at(&format!("m{i}"), &format!("Meeting {i}"), &at).toml()
            })
            .collect::<String>()
    };
    let config = DaemonToml::run(&sim).set("create_ahead", "\"7d\"");
    let mut daemon = spawn_daemon(&config.clone().meetings(&entries(12)), &[]);
    daemon
        .wait_for("12 meetings", || async { sim.meetings().len() == 12 })
        .await;
    // A save that drops 11 of 12: the daemon reloads and holds them.
    std::fs::write(&daemon.config_path, config.meetings(&entries(1)).text()).expect("save");
    daemon
        .wait_for("11 held cancellations", || async {
            match daemon.store().await {
                Some(store) => {
                    let held = event_kinds(&store)
                        .await
                        .iter()
                        .filter(|k| *k == "cancel-held")
                        .count();
                    store.close().await;
                    held == 11
                }
                None => false,
            }
        })
        .await;
    assert!(sim.report().meetings_deleted.is_empty());
    let out = output_ok(&mut daemon.command(&["apply"]));
    assert!(
        text(&out).contains("the running zoomd (pid "),
        "{}",
        text(&out)
    );
    daemon
        .wait_for("the daemon carries out the 11", || async {
            sim.report().meetings_deleted.len() == 11
        })
        .await;
    daemon.stop().await;
}

/// A download task that dies (here: its progress callback panics) leaves no row in
/// `downloading`: the file is back in the queue at once, not at the next start.
#[tokio::test]
async fn a_download_task_that_dies_puts_its_file_back_in_the_queue() {
    let a = Account::new(1, "me", "").await;
    a.reconcile().await;
    let id = a.row("m0", 0).await.meeting_id.expect("id");
    a.sim.force_recording(id).expect("force");
    a.clock.set(a.base + chrono::Duration::hours(1));
    let config = a.config();
    recordings::poll(&a.ctx, &config).await.expect("poll");
    let queued = a
        .ctx
        .store
        .list_files(Some(FileState::Queued))
        .await
        .expect("files");
    assert!(!queued.is_empty());
    let dies: ProgressFn = std::sync::Arc::new(|_, _, _| panic!("a download task dies"));
    let died = downloads::run_due(&a.ctx, &config, &Shutdown::never(), Some(dies))
        .await
        .expect("the step itself goes on");
    assert_eq!(died.archived, 0, "every task died mid-download: {died:?}");
    let stuck = a
        .ctx
        .store
        .list_files(Some(FileState::Downloading))
        .await
        .expect("files");
    assert!(stuck.is_empty(), "left in downloading: {stuck:?}");
    // And the next attempt archives them.
    let r = downloads::run_due(&a.ctx, &config, &Shutdown::never(), None)
        .await
        .expect("downloads");
    assert_eq!(r.archived, queued.len(), "{r:?}");
}
