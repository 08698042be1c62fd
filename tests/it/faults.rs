//! The fault matrix: one test per fault the simulated Zoom can inject, at pipeline level.
//!
//! Each test runs the real reconcile steps (`meetings::reconcile`, `recordings::poll`,
//! `downloads::run_due`) in-process against `sim`, with a clock the test moves, and a Zoom
//! client with short timeouts whose retry and back-off waits go to a manual clock (so
//! they cost no real time and the tests assert on them). Each one
//! asserts what the fault must lead to (retried in place, deferred, looked for before
//! creating again, failed-and-retryable, never archived while incomplete) and that nothing
//! leaked: no token in a URL, no `Authorization` header at the download host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use url::Url;
use zoomd::clock::{Clock, ManualClock};
use zoomd::config::{Config, Env};
use zoomd::shutdown::Shutdown;
use zoomd::sim::{Fault, RetryAfter, Route, Sim, SimConfig};
use zoomd::store::{OccurrenceRow, Store};
use zoomd::sync::{Ctx, downloads, meetings, recordings};
use zoomd::zoom::{ZoomClient, next_utc_midnight};

use crate::helpers::{
    DaemonToml, Entry, Login, assert_markers_unique, assert_no_leaks, assert_sound, client_config,
    event_kinds, failures, holds_exactly, oauth_credentials, part_files, walk,
};

/// A sim, a config and store in a temp dir, and a `Ctx` whose clock the test sets.
///
/// Two manual clocks, both starting at the same second: `clock` is the steps' (the test
/// jumps it to schedule times), `zoom_clock` is shared by the client and the sim and only
/// moves when the client waits. Kept apart so Zoom's side stays where it was when the test
/// jumps days ahead (meetings do not "happen" at the sim unless forced), while a
/// `Retry-After` date from the sim still names an exact wait on the client's clock.
struct Pipe {
    /// Kept for its lifetime: the config, database and archive live in it.
    _dir: tempfile::TempDir,
    sim: Sim,
    config: Config,
    ctx: Ctx,
    clock: ManualClock,
    zoom_clock: ManualClock,
    /// The first occurrence's start; entry `i` starts `i` hours later.
    base: DateTime<Utc>,
}

struct Opts {
    sim: SimConfig,
    entries: usize,
    /// An archive directory elsewhere (the disk-full test's tmpfs).
    archive: Option<PathBuf>,
    downloads: usize,
    /// More `[daemon]` settings (key, TOML value).
    daemon: Vec<(&'static str, &'static str)>,
    /// The client's read-idle timeout, when not the helpers' 700 ms.
    read_idle: Option<Duration>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            sim: SimConfig::default(),
            entries: 1,
            archive: None,
            downloads: 2,
            daemon: Vec::new(),
            read_idle: None,
        }
    }
}

/// Opts with `sim` as the sim's knobs.
fn with_sim(sim: SimConfig) -> Opts {
    Opts {
        sim,
        ..Opts::default()
    }
}

async fn pipe(opts: Opts) -> Pipe {
    let dir = tempfile::tempdir().expect("tempdir");
    // Whole seconds: the sim's HTTP dates have no fraction.
    // 10:00 UTC today, whatever the time: the daily-cap tests move the clocks by hours and
    // must not cross 00:00 UTC unless they mean to.
    let today = Utc::now().date_naive();
    let start =
        Utc.from_utc_datetime(&today.and_time(NaiveTime::from_hms_opt(10, 0, 0).expect("t")));
    let zoom_clock = ManualClock::new(start);
    let sim = Sim::start(SimConfig {
        clock: zoom_clock.shared(),
        ..opts.sim.clone()
    })
    .await
    .expect("sim");
    // Two days ahead at 10:00 UTC: after the next 00:00 UTC, so the daily-cap test can move
    // its clock past midnight with every occurrence still in the future.
    let day = start.date_naive() + chrono::Days::new(2);
    let base = Utc.from_utc_datetime(&day.and_time(NaiveTime::from_hms_opt(10, 0, 0).expect("t")));
    let archive = opts
        .archive
        .clone()
        .unwrap_or_else(|| dir.path().join("recordings"));
    let mut toml = DaemonToml::new(&sim)
        .login(Login::OAuthFile)
        .set("archive", &format!("\"{}\"", archive.display()))
        .set("create_ahead", "\"7d\"")
        .set("poll_every", "\"1s\"")
        .set("downloads", &opts.downloads.to_string());
    for (k, v) in &opts.daemon {
        toml = toml.set(k, v);
    }
    for i in 0..opts.entries {
        let at = base + chrono::Duration::hours(i as i64);
        let entry = Entry::at(
            &format!("m{i}"),
            &format!("Fault meeting {i}"),
            &at.format("%Y-%m-%dT%H:%M").to_string(),
        );
        toml = toml.meetings(&entry.duration("2h").toml());
    }
    let path = toml.write(dir.path());
    let config = Config::parse(&toml.text(), &path, &Env::default()).expect("valid config");
    let clock = ManualClock::new(start);
    let store = Store::open(&config.daemon.database).await.expect("store");
    // The client waits on the sim's clock (`zoom_clock`), see [`Pipe`].
    let mut client = client_config(&sim, oauth_credentials(&sim));
    if let Some(idle) = opts.read_idle {
        client.timeouts.read_idle = idle;
    }
    let zoom = ZoomClient::new(client).expect("client");
    Pipe {
        _dir: dir,
        sim,
        config,
        ctx: Ctx {
            store,
            zoom,
            clock: clock.shared(),
            objects: None,
        },
        clock,
        zoom_clock,
        base,
    }
}

/// A pipe whose meeting(s) exist, recorded and polled: every file is queued for download.
async fn polled(opts: Opts) -> Pipe {
    let p = pipe(opts).await;
    p.created_and_recorded().await;
    p.poll().await;
    p
}

impl Pipe {
    fn set_clock(&self, t: DateTime<Utc>) {
        self.clock.set(t);
    }

    fn clock(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn advance(&self, secs: i64) {
        let t = self.clock() + chrono::Duration::seconds(secs);
        self.set_clock(t);
    }

    fn archive_dir(&self) -> &Path {
        let local = self.config.daemon.archive.local();
        local.expect("the fault tests archive to a directory")
    }

    async fn reconcile(&self) -> meetings::Report {
        meetings::reconcile(&self.ctx, &self.config)
            .await
            .expect("meetings step")
    }

    async fn poll(&self) -> recordings::Report {
        recordings::poll(&self.ctx, &self.config)
            .await
            .expect("recordings step")
    }

    async fn download(&self) -> downloads::Report {
        downloads::run_due(&self.ctx, &self.config, &Shutdown::never(), None)
            .await
            .expect("downloads step")
    }

    /// The downloads step in the background, for tests that act while it runs.
    fn spawn_download(&self) -> tokio::task::JoinHandle<downloads::Report> {
        let (ctx, config) = (self.ctx.clone(), self.config.clone());
        tokio::spawn(async move {
            downloads::run_due(&ctx, &config, &Shutdown::never(), None)
                .await
                .expect("downloads step")
        })
    }

    async fn occ(&self, key: &str) -> OccurrenceRow {
        let i: i64 = key[1..].parse().expect("mN");
        self.ctx
            .store
            .occurrence_by_key(key, self.base + chrono::Duration::hours(i))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("no row for {key}"))
    }

    async fn event_kinds(&self) -> Vec<String> {
        event_kinds(&self.ctx.store).await
    }

    /// Creates the meeting(s) without faults and makes their recordings complete now.
    async fn created_and_recorded(&self) {
        let r = self.reconcile().await;
        assert_eq!(
            r.created,
            self.config.meetings.len(),
            "{r:?}\n{:?}",
            self.sim.report()
        );
        self.force_all();
        // The recording poll is due from the scheduled start.
        self.set_clock(self.base + chrono::Duration::minutes(1));
    }

    fn force_all(&self) {
        for m in self.sim.meetings() {
            if !m.deleted {
                self.sim.force_recording(m.id).expect("force");
            }
        }
    }

    /// Every completed file the sim has is in the `archive` view with the sim's digest.
    async fn all_archived(&self) -> bool {
        let expected = self.sim.expected_files();
        let archive = self.ctx.store.archive().await.expect("archive");
        !expected.is_empty() && holds_exactly(&expected, &archive)
    }

    /// Polls and downloads, moving the clock 2 minutes per round (past any retry delay),
    /// until everything is archived; panics after `rounds`.
    async fn drive(&self, rounds: usize) {
        for _ in 0..rounds {
            self.poll().await;
            self.download().await;
            if self.all_archived().await {
                return;
            }
            self.advance(120);
        }
        panic!(
            "not archived after {rounds} rounds: {:?}\nfailures {:?}",
            self.ctx.store.list_files(None).await.expect("files"),
            self.ctx
                .store
                .status(self.clock(), self.clock(), 100)
                .await
                .expect("status")
                .failures,
        );
    }

    /// Disk matches the database, no partial file is left, the database is sound, and no
    /// token went anywhere but an Authorization header to the API host.
    async fn assert_clean(&self) {
        assert_sound(&self.ctx.store, self.archive_dir(), &self.sim).await;
    }

    /// One meeting per marker, `n` in all.
    fn assert_meetings(&self, n: usize) {
        let markers = assert_markers_unique(&self.sim.meetings());
        assert_eq!(markers.len(), n, "{:?}", self.sim.meetings());
    }

    /// Deferred creates, as `zoomd status` counts them.
    async fn deferred_count(&self) -> i64 {
        let now = self.clock();
        let status = self.ctx.store.status(now, now, 0).await.expect("status");
        status.counts.deferred
    }

    fn status_count(&self, status: u16) -> u64 {
        self.sim
            .counters()
            .statuses
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    fn part_files(&self) -> Vec<(PathBuf, u64)> {
        part_files(self.archive_dir())
    }
}

// ---------------------------------------------------------------------------------------
// 429

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_with_retry_after_seconds_is_waited_out() {
    let p = pipe(Opts::default()).await;
    p.sim.inject(
        Route::CreateMeeting,
        Fault::RateLimited(RetryAfter::Seconds(2)),
        1,
    );
    let r = p.reconcile().await;
    // A 429 is a refusal before any work: the create is repeated, after the wait asked for.
    assert_eq!(r.created, 1, "{r:?}");
    assert_eq!(p.zoom_clock.sleeps(), [Duration::from_secs(2)]);
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 2);
    assert_eq!(p.status_count(429), 1);
    p.assert_meetings(1);
    p.created_and_recorded_rest().await;
}

impl Pipe {
    /// After the create: the recording is archived in full.
    async fn created_and_recorded_rest(&self) {
        self.force_all();
        self.set_clock(self.base + chrono::Duration::minutes(1));
        self.drive(6).await;
        self.assert_clean().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_longer_than_the_policy_waits_is_persisted_not_waited() {
    let p = pipe(Opts::default()).await;
    // Ten minutes: longer than the client waits in place (max_retry_after).
    p.sim.inject(
        Route::CreateMeeting,
        Fault::RateLimited(RetryAfter::Seconds(600)),
        1,
    );
    let r = p.reconcile().await;
    assert!(p.zoom_clock.sleeps().is_empty(), "not waited in place");
    assert_eq!((r.created, r.deferred), (0, 1), "{r:?}");
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 1);
    let row = p.occ("m0").await;
    assert_eq!(row.state.as_str(), "deferred");
    let not_before = row.not_before.expect("not_before");
    // Counted from the client's clock, which Zoom's answer was dated by.
    assert_eq!(
        not_before - p.zoom_clock.now(),
        chrono::Duration::seconds(600)
    );
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("rate limited")),
        "{row:?}"
    );
    // Before the time nothing is sent (a restart would not hammer either: it is stored).
    p.advance(300);
    p.reconcile().await;
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 1);
    p.set_clock(not_before + chrono::Duration::seconds(1));
    let r = p.reconcile().await;
    assert_eq!(r.created, 1, "{r:?}");
    p.assert_meetings(1);
    assert_no_leaks(&p.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_with_retry_after_http_date_is_waited_out() {
    let p = pipe(Opts::default()).await;
    p.created_and_recorded().await;
    p.sim.inject(
        Route::GetRecordings,
        Fault::RateLimited(RetryAfter::HttpDate(2)),
        1,
    );
    let before = p.sim.counters().get(Route::GetRecordings);
    let r = p.poll().await;
    // The sim dated its answer by the client's clock: the wait is exactly 2 s.
    assert_eq!(p.zoom_clock.take_sleeps(), [Duration::from_secs(2)]);
    assert_eq!(r.found, 1, "{r:?}");
    assert_eq!(p.sim.counters().get(Route::GetRecordings) - before, 2);
    assert_eq!(p.status_count(429), 1);
    p.drive(4).await;
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_without_retry_after_backs_off_and_retries() {
    let p = polled(Opts::default()).await;
    p.sim
        .inject(Route::Download, Fault::RateLimited(RetryAfter::Absent), 2);
    let r = p.download().await;
    // Retried within the same attempt: every file archived on the first pass.
    assert_eq!((r.archived, r.retrying, r.failed), (5, 0, 0), "{r:?}");
    assert_eq!(p.status_count(429), 2);
    // One back-off per refusal (two files, or one file twice): each within the ceiling of
    // a second retry at most.
    let sleeps = p.zoom_clock.take_sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert!(
        sleeps.iter().all(|d| *d <= Duration::from_millis(100)),
        "{sleeps:?}"
    );
    assert!(p.all_archived().await);
    p.assert_clean().await;
}

// ---------------------------------------------------------------------------------------
// The daily create/update cap

async fn daily_cap(as_300: bool) {
    let p = pipe(Opts {
        sim: SimConfig {
            daily_cap: 2,
            daily_cap_as_300: as_300,
            ..SimConfig::default()
        },
        entries: 5,
        ..Opts::default()
    })
    .await;
    let r = p.reconcile().await;
    assert_eq!((r.created, r.deferred), (2, 3), "{r:?}");
    // The host's first create goes alone, the next two together (its slow start): one of
    // them meets the cap (not waited for), and the rest are never sent.
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 3);
    assert!(p.zoom_clock.sleeps().is_empty());
    let midnight = next_utc_midnight(p.clock());
    // Soonest first, to within the batch in flight: the earliest exists, one of the next
    // two, and the later ones wait for 00:00 UTC.
    assert_eq!(p.occ("m0").await.state.as_str(), "created");
    let (m1, m2) = (p.occ("m1").await, p.occ("m2").await);
    let (made, waits) = match m1.state.as_str() {
        "created" => (m1, m2),
        _ => (m2, m1),
    };
    assert_eq!(made.state.as_str(), "created", "{made:?}");
    for row in [waits, p.occ("m3").await, p.occ("m4").await] {
        let key = row.key.clone();
        assert_eq!(row.state.as_str(), "deferred", "{key}: {row:?}");
        assert_eq!(row.not_before, Some(midnight), "{key}");
        assert!(row.last_error.is_some(), "{row:?}");
    }
    // Visible to people: the upcoming meetings of `zoomd status` and its counts.
    let now = p.clock();
    let upcoming = p
        .ctx
        .store
        .status(now, now, 10)
        .await
        .expect("status")
        .upcoming;
    assert_eq!(
        upcoming
            .iter()
            .filter(|u| u.state.as_str() == "deferred")
            .count(),
        3,
        "{upcoming:?}"
    );
    assert_eq!(p.deferred_count().await, 3);
    // Said once, however many passes run; and no further create is sent today.
    p.advance(60);
    p.reconcile().await;
    p.advance(3600);
    p.reconcile().await;
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 3);
    let kinds = p.event_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "deferred").count(),
        1,
        "{kinds:?}"
    );
    // After 00:00 UTC the deferred ones are created.
    p.sim.set_daily_cap(100);
    p.set_clock(midnight + chrono::Duration::seconds(1));
    let r = p.reconcile().await;
    assert_eq!(r.created, 3, "{r:?}");
    p.assert_meetings(5);
    assert_no_leaks(&p.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_cap_defers_the_rest_to_midnight_soonest_first() {
    daily_cap(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_cap_answered_with_http_300_is_the_same_cap() {
    daily_cap(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_deferred_past_its_start_becomes_a_visible_failure() {
    let p = pipe(Opts {
        sim: SimConfig {
            daily_cap: 1,
            ..SimConfig::default()
        },
        entries: 2,
        ..Opts::default()
    })
    .await;
    // An hour before the first start: the cap resets only after both starts.
    p.set_clock(p.base - chrono::Duration::hours(1));
    let r = p.reconcile().await;
    assert_eq!((r.created, r.deferred), (1, 1), "{r:?}");
    assert_eq!(p.occ("m1").await.state.as_str(), "deferred");
    // m1's start passes while it waits for 00:00 UTC: it will never be created.
    p.set_clock(p.base + chrono::Duration::hours(1) + chrono::Duration::minutes(1));
    p.reconcile().await;
    let row = p.occ("m1").await;
    assert_eq!(row.state.as_str(), "failed", "{row:?}");
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("never created") && e.contains("daily")),
        "{row:?}"
    );
    // A person sees it: in `failures`, and no longer counted as deferred.
    let failures = failures(&p.ctx.store).await;
    assert!(
        failures
            .iter()
            .any(|f| f.kind.as_str() == "meeting" && f.id == row.id),
        "{failures:?}"
    );
    assert_eq!(p.deferred_count().await, 0);
    assert!(p.event_kinds().await.contains(&"create-failed".to_string()));
    // And it is never created later.
    p.sim.set_daily_cap(100);
    p.set_clock(p.base + chrono::Duration::days(1));
    p.reconcile().await;
    p.assert_meetings(1);
}

// ---------------------------------------------------------------------------------------
// 5xx

/// A 5xx on create may have reached the meeting service: the outcome is unknown, so zoomd
/// looks before creating again, and only after the create had time to settle.
async fn server_error_on_create(status: u16) {
    let p = pipe(Opts::default()).await;
    p.sim.inject(Route::CreateMeeting, Fault::Status(status), 1);
    let r = p.reconcile().await;
    assert_eq!((r.created, r.unknown), (0, 1), "{r:?}");
    assert_eq!(p.occ("m0").await.state.as_str(), "creating");
    assert!(
        p.event_kinds()
            .await
            .contains(&"create-unknown".to_string())
    );
    let lists = p.sim.counters().get(Route::ListMeetings);
    // Soon after: looked for (not found), but not created again while it may settle.
    p.advance(10);
    let r = p.reconcile().await;
    assert_eq!(r.created, 0, "{r:?}");
    assert!(p.sim.counters().get(Route::ListMeetings) > lists);
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 1);
    // Settled and still not there: created, once.
    p.advance(60);
    let r = p.reconcile().await;
    assert_eq!(r.created, 1, "{r:?}");
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 2);
    assert_eq!(p.status_count(status), 1);
    p.assert_meetings(1);
    p.created_and_recorded_rest().await;
}

/// On idempotent requests (recordings, downloads) a 5xx is retried in place.
async fn server_error_on_reads(status: u16) {
    let p = pipe(Opts::default()).await;
    p.created_and_recorded().await;
    p.sim.inject(Route::GetRecordings, Fault::Status(status), 2);
    let r = p.poll().await;
    assert_eq!(r.found, 1, "{r:?}");
    p.sim.inject(Route::Download, Fault::Status(status), 1);
    p.sim
        .inject(Route::SignedDownload, Fault::Status(status), 1);
    let r = p.download().await;
    assert_eq!((r.archived, r.retrying), (5, 0), "{r:?}");
    assert_eq!(p.status_count(status), 4);
    assert!(p.all_archived().await);
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_on_create_is_looked_for_then_created_once() {
    server_error_on_create(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_on_reads_and_downloads_is_retried() {
    server_error_on_reads(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_502_on_create_is_looked_for_then_created_once() {
    server_error_on_create(502).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_502_on_reads_and_downloads_is_retried() {
    server_error_on_reads(502).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_on_create_is_looked_for_then_created_once() {
    server_error_on_create(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_on_token_reads_and_downloads_is_retried() {
    let p = pipe(Opts::default()).await;
    // The token endpoint too: the first create waits for a token through two 503s.
    p.sim.inject(Route::Token, Fault::Status(503), 2);
    let r = p.reconcile().await;
    assert_eq!(r.created, 1, "{r:?}");
    assert_eq!(p.sim.counters().get(Route::Token), 3);
    let sleeps = p.zoom_clock.take_sleeps();
    assert_eq!(sleeps.len(), 2, "two back-offs: {sleeps:?}");
    assert!(sleeps[0] <= Duration::from_millis(50) && sleeps[1] <= Duration::from_millis(100));
    p.force_all();
    p.set_clock(p.base + chrono::Duration::minutes(1));
    p.sim.inject(Route::PastInstances, Fault::Status(503), 1);
    p.sim.inject(Route::GetRecordings, Fault::Status(503), 1);
    assert_eq!(p.poll().await.found, 1);
    p.sim.inject(Route::SignedDownload, Fault::Status(503), 2);
    let r = p.download().await;
    assert_eq!((r.archived, r.retrying), (5, 0), "{r:?}");
    assert_eq!(p.status_count(503), 6);
    p.assert_meetings(1);
    p.assert_clean().await;
}

// ---------------------------------------------------------------------------------------
// Transport

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset_is_retried_and_a_reset_create_is_looked_for() {
    let p = pipe(Opts::default()).await;
    // A reset after the request was sent: Zoom may have created it.
    p.sim
        .inject(Route::CreateMeeting, Fault::ConnectionReset, 1);
    let r = p.reconcile().await;
    assert_eq!(r.unknown, 1, "{r:?}");
    p.advance(60);
    let r = p.reconcile().await;
    assert_eq!(r.created, 1, "{r:?}");
    p.assert_meetings(1);
    p.force_all();
    p.set_clock(p.base + chrono::Duration::minutes(1));
    // Idempotent requests and downloads are simply repeated.
    p.sim
        .inject(Route::PastInstances, Fault::ConnectionReset, 1);
    p.sim
        .inject(Route::GetRecordings, Fault::ConnectionReset, 1);
    assert_eq!(p.poll().await.found, 1);
    p.sim.inject(Route::Download, Fault::ConnectionReset, 1);
    p.sim
        .inject(Route::SignedDownload, Fault::ConnectionReset, 1);
    let r = p.download().await;
    assert_eq!((r.archived, r.retrying), (5, 0), "{r:?}");
    assert!(p.sim.counters().connections_killed >= 5);
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_found_by_its_marker() {
    let p = pipe(Opts::default()).await;
    p.sim
        .inject(Route::CreateMeeting, Fault::CreateSucceedsAnswerLost, 1);
    let r = p.reconcile().await;
    assert_eq!((r.created, r.unknown), (0, 1), "{r:?}");
    // Zoom made it; zoomd does not know the id yet.
    assert_eq!(p.sim.meetings().len(), 1);
    assert_eq!(p.occ("m0").await.meeting_id, None);
    // The next pass (even at once) looks before creating: found by the agenda marker.
    let r = p.reconcile().await;
    assert_eq!((r.created, r.reconciled), (0, 1), "{r:?}");
    let row = p.occ("m0").await;
    assert_eq!(row.state.as_str(), "created");
    assert_eq!(row.meeting_id, Some(p.sim.meetings()[0].id));
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 1);
    // Passes long after create nothing more.
    p.advance(120);
    p.reconcile().await;
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 1);
    p.assert_meetings(1);
    p.created_and_recorded_rest().await;
}

// ---------------------------------------------------------------------------------------
// Download bodies

/// The file that failed its first attempt: queued again, partial, not archived.
async fn one_partial_file(p: &Pipe, error_has: &str) -> zoomd::store::FileRow {
    let files = p.ctx.store.list_files(None).await.expect("files");
    let queued: Vec<_> = files
        .iter()
        .filter(|f| f.state.as_str() != "archived")
        .collect();
    assert_eq!(queued.len(), 1, "{files:?}");
    let f = queued[0].clone();
    assert_eq!(f.state.as_str(), "queued");
    assert!(
        f.last_error
            .as_deref()
            .is_some_and(|e| e.contains(error_has)),
        "{f:?}"
    );
    assert!(f.sha256.is_none() && f.archived_at.is_none(), "{f:?}");
    // Never counted as archived: not in the archive view, the recording not complete.
    let archive = p.ctx.store.archive().await.expect("archive");
    assert!(archive.iter().all(|a| a.file_row != f.id));
    assert_eq!(archive.len(), 4);
    let rec = p.ctx.store.recording(f.recording_id).await.expect("rec");
    assert_ne!(rec.state.as_str(), "archived");
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_body_is_retried_and_resumed_from_the_partial_file() {
    let p = polled(with_sim(SimConfig {
        mp4_size: 2 * 1024 * 1024,
        ..SimConfig::default()
    }))
    .await;
    p.sim.inject(Route::Download, Fault::TruncatedBody, 1);
    let r = p.download().await;
    assert_eq!((r.archived, r.retrying), (4, 1), "{r:?}");
    let f = one_partial_file(&p, "truncated").await;
    let parts = p.part_files();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let size = f.file_size.expect("size") as u64;
    assert!(parts[0].1 > 0 && parts[0].1 < size, "{parts:?} of {size}");
    // The next attempt asks for the rest only.
    let partial_before = p.status_count(206);
    p.advance(120);
    let r = p.download().await;
    assert_eq!(r.archived, 1, "{r:?}");
    assert_eq!(p.status_count(206), partial_before + 1);
    assert!(p.all_archived().await);
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_times_out_and_resumes() {
    let p = polled(with_sim(SimConfig {
        mp4_size: 2 * 1024 * 1024,
        // The sim would hang far longer than the client's idle timeout (700 ms here).
        stall_for: Duration::from_secs(60),
        ..SimConfig::default()
    }))
    .await;
    p.sim.inject(Route::Download, Fault::StalledBody, 1);
    let r = p.download().await;
    // Given up by the client's idle timeout (the sim would stall 60 s, then cut the body
    // short: that would read "truncated"), and queued again.
    assert_eq!((r.archived, r.retrying), (4, 1), "{r:?}");
    one_partial_file(&p, "stalled").await;
    assert_eq!(p.part_files().len(), 1);
    p.advance(120);
    let r = p.download().await;
    assert_eq!(r.archived, 1, "{r:?}");
    assert!(p.status_count(206) >= 1);
    assert!(p.all_archived().await);
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_page_instead_of_a_file_is_never_archived() {
    let p = polled(Opts::default()).await;
    p.sim.inject(Route::Download, Fault::HtmlPage, 1);
    let r = p.download().await;
    assert_eq!((r.archived, r.retrying), (4, 1), "{r:?}");
    let f = one_partial_file(&p, "HTML").await;
    // Nothing of the page was written, and the URL is fetched again.
    assert!(
        p.part_files().iter().all(|(_, len)| *len == 0),
        "{:?}",
        p.part_files()
    );
    assert!(
        p.ctx
            .store
            .file(f.id)
            .await
            .expect("file")
            .expect("row")
            .download_url
            .is_none()
    );
    p.drive(4).await;
    for path in walk(p.archive_dir()) {
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !String::from_utf8_lossy(&bytes).contains("<html"),
            "{}",
            path.display()
        );
    }
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_during_downloads_renews_once_and_continues() {
    let p = polled(Opts::default()).await;
    let tokens = p.sim.counters().get(Route::Token);
    assert_eq!(tokens, 1, "one token so far");
    // Every token is revoked at the first download request; it answers 401 code 124.
    p.sim.inject(Route::Download, Fault::TokenExpired, 1);
    let r = p.download().await;
    assert_eq!((r.archived, r.retrying, r.failed), (5, 0, 0), "{r:?}");
    assert_eq!(p.sim.counters().get(Route::Token), 2, "renewed once");
    assert!(p.status_count(401) >= 1);
    assert!(p.all_archived().await);
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_url_expired_is_fetched_again() {
    let p = polled(Opts::default()).await;
    p.sim.expire_download_urls();
    let r = p.download().await;
    assert_eq!(r.archived, 0, "{r:?}");
    // Every URL was dropped and a poll asked for at once; it brings fresh ones.
    let files = p.ctx.store.list_files(None).await.expect("files");
    assert!(files.iter().all(|f| f.download_url.is_none()), "{files:?}");
    p.drive(4).await;
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_the_foreign_download_host_gets_no_authorization() {
    // Like Zoom, the sim's download_url on the API host answers 302 to a signed URL on a
    // different origin (another port: outside the trusted API and OAuth origins).
    let p = polled(Opts::default()).await;
    let files = p.ctx.store.list_files(None).await.expect("files");
    let api = Url::parse(&p.sim.api_url()).expect("url");
    for f in &files {
        let u = Url::parse(f.download_url.as_deref().expect("url")).expect("url");
        assert_eq!(u.port(), api.port(), "download_url on the API host");
    }
    let r = p.download().await;
    assert_eq!(r.archived, 5, "{r:?}");
    let c = p.sim.counters();
    assert_eq!(c.get(Route::Download), 5);
    assert_eq!(c.get(Route::SignedDownload), 5);
    assert!(c.statuses.get(&302).copied().unwrap_or(0) >= 5);
    assert_ne!(
        Url::parse(&p.sim.download_base()).expect("url").port(),
        api.port()
    );
    // The header went to the API host only; the file still archived.
    p.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_recording_for_hours_then_success() {
    let p = pipe(Opts::default()).await;
    let r = p.reconcile().await;
    assert_eq!(r.created, 1);
    // The meeting has not happened at the sim: every poll is 404 code 3301 "not yet".
    p.set_clock(p.base + chrono::Duration::minutes(1));
    let mut polls = 0;
    let mut last_gap = chrono::Duration::zero();
    let until = p.base + chrono::Duration::hours(6);
    while p.clock() < until {
        let next = p.occ("m0").await.next_poll_at.expect("still watched");
        // Polling later than due is harmless; 10-minute steps keep the test short.
        p.set_clock(next.max(p.clock() + chrono::Duration::minutes(10)));
        let r = p.poll().await;
        assert_eq!(r.polled, 1, "{r:?}");
        polls += 1;
        let row = p.occ("m0").await;
        assert_eq!(row.recording_state.as_str(), "waiting");
        let next = row.next_poll_at.expect("still watched");
        // Back-off grows after the first hour past the end, capped at an hour.
        last_gap = next - p.clock();
        assert!(
            last_gap > chrono::Duration::zero() && last_gap <= chrono::Duration::hours(1),
            "{last_gap}"
        );
    }
    assert!(polls > 10 && polls < 200, "{polls}");
    assert_eq!(last_gap, chrono::Duration::hours(1));
    assert!(p.status_count(404) >= polls, "{:?}", p.sim.counters());
    // Not a failure: no failure row, no "missing" yet.
    assert!(failures(&p.ctx.store).await.is_empty());
    assert!(!p.event_kinds().await.contains(&"missing".to_string()));
    // Then the recording appears.
    p.force_all();
    p.set_clock(p.occ("m0").await.next_poll_at.expect("next"));
    assert_eq!(p.poll().await.found, 1);
    p.drive(4).await;
    p.assert_clean().await;
}

// ---------------------------------------------------------------------------------------
// Segmented downloads (`segment_size`, `connections_per_file`)

const MIB: u64 = 1024 * 1024;
/// Six segments of 8 MiB, the last one short.
const SEGMENTED_MP4: u64 = 40 * MIB + 12_345;

fn segmented(sim: SimConfig) -> Opts {
    Opts {
        sim: SimConfig {
            mp4_size: SEGMENTED_MP4,
            ..sim
        },
        daemon: vec![("segment_size", "\"8MiB\""), ("connections_per_file", "4")],
        // Four bodies at once in a debug build beside the other tests: a pause of 700 ms is
        // a busy machine, not a stall (the stall tests above keep the short timeout).
        read_idle: Some(Duration::from_secs(10)),
        ..Opts::default()
    }
}

impl Pipe {
    /// The last error of every file not archived.
    async fn errors(&self) -> Vec<String> {
        let files = self.ctx.store.list_files(None).await.expect("files");
        files
            .into_iter()
            .filter_map(|f| {
                f.last_error
                    .map(|e| format!("{} {}: {e}", f.file_type, f.state.as_str()))
            })
            .collect()
    }

    /// Bytes of every file the sim holds.
    fn file_bytes(&self) -> u64 {
        self.sim.expected_files().iter().map(|f| f.size).sum()
    }

    fn mp4(&self) -> zoomd::sim::ExpectedFile {
        self.sim
            .expected_files()
            .into_iter()
            .find(|f| f.file_type == "MP4")
            .expect("an MP4")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_comes_in_parallel_segments_byte_identical() {
    let p = polled(segmented(SimConfig::default())).await;
    let r = p.download().await;
    assert!(p.all_archived().await, "{r:?} {:?}", p.errors().await);
    p.assert_clean().await;
    let c = p.sim.counters();
    // Six ranged answers for the MP4; several at once, never more than the 2 x 4 allowed.
    assert!(
        c.statuses.get(&206).copied().unwrap_or(0) >= 6,
        "{:?}",
        c.statuses
    );
    assert!(
        (2..=8).contains(&c.max_download_streams),
        "{} bodies at once",
        c.max_download_streams
    );
    // Nothing fetched twice.
    assert_eq!(c.bytes_served, p.file_bytes());
    // Zoom's download_url once per file: the MP4's later segments went straight to the
    // signed URL its first one was redirected to (no API hop, no place in the budget).
    let files = p.sim.expected_files().len() as u64;
    assert_eq!(c.get(Route::Download), files, "{:?}", c.requests);
    assert_eq!(
        c.get(Route::SignedDownload),
        files - 1 + 6,
        "{:?}",
        c.requests
    );
    let mp4 = p.ctx.store.list_files(None).await.expect("files");
    let mp4 = mp4.iter().find(|f| f.file_type == "MP4").expect("MP4 row");
    assert_eq!(p.ctx.store.part_state(mp4.id).await.expect("read"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_cut_short_resumes_only_the_missing_segments() {
    let mut opts = segmented(SimConfig::default());
    // One file at a time, the MP4 first: the bodies counted below are the MP4's segments,
    // whatever the scheduler makes of concurrent files on a busy machine.
    opts.daemon.push(("downloads", "1"));
    let p = polled(opts).await;
    // The third body of the download host (a segment of the MP4) is cut half-way.
    p.sim
        .inject_after(Route::SignedDownload, 2, Fault::TruncatedBody, 1);
    let r = p.download().await;
    assert_eq!(r.retrying, 1, "{r:?}");
    let f = one_partial_file(&p, "").await;
    let st = p
        .ctx
        .store
        .part_state(f.id)
        .await
        .expect("read")
        .expect("a part");
    assert!(st.done.len() < 6, "{st:?}");
    let served_before = p.sim.counters().bytes_served;
    p.advance(120);
    let r = p.download().await;
    assert_eq!(r.archived, 1, "{r:?}");
    p.assert_clean().await;
    // The second attempt fetched the segments not recorded, nothing more.
    let missing = 6 - st.done.len() as u64;
    let second = p.sim.counters().bytes_served - served_before;
    assert!(
        second <= missing * 8 * MIB,
        "{second} bytes for {missing} missing segments"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_url_that_expires_between_segments_is_asked_for_again() {
    let mut opts = segmented(SimConfig {
        signed_url_ttl: Duration::from_secs(5),
        ..SimConfig::default()
    });
    // One file at a time, the MP4 first (as above).
    opts.daemon.push(("downloads", "1"));
    let p = polled(opts).await;
    // Four segments take a second at this pace; the signed URL expires during them.
    p.sim.set_download_rate_per_connection(Some(8 * MIB));
    let run = p.spawn_download();
    while p.sim.counters().bytes_served < 4 * MIB {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Zoom's clock alone: the signed URL's expiry is the sim's business.
    p.sim.advance(Duration::from_secs(10));
    let r = run.await.expect("join");
    assert!(p.all_archived().await, "{r:?} {:?}", p.errors().await);
    p.assert_clean().await;
    let c = p.sim.counters();
    // The fifth segment met the expired URL (403), asked download_url again, and went on
    // with the new signed URL: the MP4's link twice, no byte fetched twice.
    assert!(
        c.statuses.get(&403).copied().unwrap_or(0) >= 1,
        "{:?}",
        c.statuses
    );
    let files = p.sim.expected_files().len() as u64;
    assert_eq!(c.get(Route::Download), files + 1, "{:?}", c.requests);
    assert_eq!(c.bytes_served, p.file_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_ranges_gets_one_stream() {
    let p = polled(segmented(SimConfig::default())).await;
    p.sim.set_range_support(false);
    let r = p.download().await;
    assert!(p.all_archived().await, "{r:?}");
    p.assert_clean().await;
    let c = p.sim.counters();
    assert_eq!(c.statuses.get(&206).copied().unwrap_or(0), 0);
    // The whole-file answer to the first segment request became the stream: no byte twice.
    assert_eq!(c.bytes_served, p.file_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_during_its_segments_is_never_archived_mixed() {
    let p = polled(segmented(SimConfig::default())).await;
    // Slow enough to change the file while its segments are under way.
    p.sim.set_download_rate_per_connection(Some(8 * MIB));
    let mp4 = p.mp4();
    let old_sha = mp4.sha256.clone();
    let run = p.spawn_download();
    while p.sim.counters().bytes_served < 12 * MIB {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.sim.change_file(&mp4.uuid, &mp4.key).expect("change");
    let r = run.await.expect("join");
    assert_eq!(r.retrying, 1, "{r:?}");
    let f = one_partial_file(&p, "changed at the server").await;
    assert_eq!(p.ctx.store.part_state(f.id).await.expect("read"), None);
    p.sim.set_download_rate_per_connection(None);
    p.advance(120);
    let r = p.download().await;
    assert_eq!(r.archived, 1, "{r:?} {:?}", p.errors().await);
    // The archive holds the new version, whole (`assert_clean` compares with the sim's
    // bytes now).
    p.assert_clean().await;
    assert_ne!(p.mp4().sha256, old_sha);
}

// ---------------------------------------------------------------------------------------
// Disk full

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts it at `at`; panics when that fails (mounting needs root or CAP_SYS_ADMIN).
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs at {} (this test needs root): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Run by .ci/run (as root): `cargo test --test it -- --ignored --exact
/// faults::disk_full_fails_the_file_retryably_and_never_archives_it`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a 1 MiB tmpfs"]
async fn disk_full_fails_the_file_retryably_and_never_archives_it() {
    let outer = tempfile::tempdir().expect("tempdir");
    let mnt = outer.path().join("archive");
    // A 1 MiB file system: writes past it fail with ENOSPC. Without root there is no
    // honest way to make the disk full here, so the test is ignored rather than skipped.
    let fs = Tmpfs::mount(&mnt, "1m");
    let p = polled(Opts {
        sim: SimConfig {
            mp4_size: 3 * 1024 * 1024,
            ..SimConfig::default()
        },
        archive: Some(mnt.clone()),
        // One at a time, so the order of failures is the queue's.
        downloads: 1,
        ..Opts::default()
    })
    .await;
    let mp4 = p
        .ctx
        .store
        .list_files(None)
        .await
        .expect("files")
        .into_iter()
        .find(|f| f.file_type == "MP4")
        .expect("mp4");
    let mut attempts = 0;
    while attempts < downloads::MAX_ATTEMPTS + 2 {
        p.download().await;
        attempts += 1;
        let f = p.ctx.store.file(mp4.id).await.expect("read").expect("row");
        // Never archived while incomplete.
        assert_ne!(f.state.as_str(), "archived");
        assert!(f.sha256.is_none());
        let archive = p.ctx.store.archive().await.expect("archive");
        assert!(archive.iter().all(|a| a.file_row != mp4.id));
        let err = f.last_error.clone().unwrap_or_default();
        assert!(err.contains("No space left on device"), "{f:?}");
        if f.state.as_str() == "failed" {
            break;
        }
        assert_eq!(f.state.as_str(), "queued");
        p.advance(3600);
    }
    let f = p.ctx.store.file(mp4.id).await.expect("read").expect("row");
    assert_eq!(f.state.as_str(), "failed", "{f:?}");
    assert_eq!(f.attempts, downloads::MAX_ATTEMPTS);
    let failures = failures(&p.ctx.store).await;
    assert!(failures.iter().any(|x| x.id == mp4.id), "{failures:?}");
    assert!(p.event_kinds().await.contains(&"failed".to_string()));
    // No more attempts on its own.
    let before = p.sim.counters().get(Route::Download);
    p.advance(7200);
    p.download().await;
    assert_eq!(
        p.ctx
            .store
            .file(mp4.id)
            .await
            .expect("r")
            .expect("row")
            .state
            .as_str(),
        "failed"
    );
    assert_eq!(p.sim.counters().get(Route::Download), before);
    // Space again, and `zoomd retry --failed`: the file (and anything else that failed)
    // is queued with fresh attempts and archives, resuming what the part file holds.
    fs.resize("64m");
    let requeued = p
        .ctx
        .store
        .retry_failed(None, p.clock())
        .await
        .expect("retry");
    assert!(requeued >= 1);
    p.drive(6).await;
    p.assert_clean().await;
    drop(p);
    drop(fs);
}
