//! One request budget for the account: the meetings pass and the poll pass run their calls
//! concurrently within it, the sim counting what arrives (in flight at once, per second on
//! the shared clock) and the daily cap counted exactly.
//!
//! The in-process tests share one manual clock between the sim and zoomd: the budget's waits
//! move it, and the sim counts its seconds on it, so "never more than N in a second" is
//! exact, whatever the machine's load. The latency the sim adds is real time.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use zoomd::clock::{Clock, ManualClock};
use zoomd::config::{Config, Env};
use zoomd::sim::{Route, Sim, SimConfig, SimUser};
use zoomd::store::{OccurrenceFilter, OccurrenceState, Store};
use zoomd::sync::{Ctx, meetings, recordings};
use zoomd::zoom::{Pace, ZoomClient};

use crate::helpers::{
    DaemonToml, Entry, assert_markers_unique, client_config, oauth_credentials, spawn_daemon,
    spawn_sim,
};

/// Hosts of the sim account: `host0@example.org`, ...
fn users(n: usize) -> Vec<SimUser> {
    (0..n)
        .map(|i| SimUser {
            id: format!("paceuser{i:02}AAAAAAAAAAAA"),
            email: format!("host{i}@example.org"),
            timezone: "UTC".into(),
            status: "active",
        })
        .collect()
}

/// `per_host` one-off meetings for each of `hosts` hosts, ten minutes apart from `base`.
fn schedule(hosts: usize, per_host: usize, base: DateTime<Utc>) -> String {
    let mut out = String::new();
    for h in 0..hosts {
        for j in 0..per_host {
            let at = base + chrono::Duration::minutes(10 * (h * per_host + j) as i64);
            out.push_str(
                &Entry::at(
                    &format!("h{h}m{j}"),
                    &format!("Lecture {h}/{j}"),
                    &at.format("%Y-%m-%dT%H:%M").to_string(),
                )
                .host(&format!("host{h}@example.org"))
                .duration("30m")
                .toml(),
            );
        }
    }
    out
}

struct Paced {
    _dir: tempfile::TempDir,
    sim: Sim,
    ctx: Ctx,
    clock: ManualClock,
    config: Config,
    base: DateTime<Utc>,
}

/// A sim of `hosts` users with `latency` per request, `hosts x per_host` meetings from an
/// hour ahead, and the steps on a client with `pace`; sim and client on one manual clock.
async fn paced(
    hosts: usize,
    per_host: usize,
    pace: Pace,
    latency: Duration,
    cfg: SimConfig,
) -> Paced {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(Utc::now().trunc_subsecs(0));
    let sim = spawn_sim(SimConfig {
        clock: clock.shared(),
        users: users(hosts),
        ..cfg
    })
    .await;
    sim.set_latency(latency);
    let base = (clock.now() + chrono::Duration::hours(1))
        .with_second(0)
        .expect("a whole minute");
    let path = dir.path().join("daemon.toml");
    let text = DaemonToml::new(&sim)
        .login(crate::helpers::Login::OAuthFile)
        .set("create_ahead", "\"7d\"")
        .meetings(&schedule(hosts, per_host, base))
        .text();
    std::fs::write(&path, text).expect("config");
    let secret = path.with_file_name("secret");
    std::fs::write(&secret, &sim.config().client_secret).expect("secret");
    crate::helpers::chmod(&secret, 0o600);
    let config = Config::parse(
        &std::fs::read_to_string(&path).expect("config"),
        &path,
        &Env::default(),
    )
    .expect("valid config");
    let store = Store::open(&dir.path().join("state.db"))
        .await
        .expect("store");
    let mut cc = client_config(&sim, oauth_credentials(&sim));
    cc.pace = pace;
    let zoom = ZoomClient::new(cc).expect("client");
    Paced {
        _dir: dir,
        ctx: Ctx {
            store,
            zoom,
            clock: clock.shared(),
            objects: None,
        },
        sim,
        clock,
        config,
        base,
    }
}

impl Paced {
    async fn reconcile(&self) -> meetings::Report {
        meetings::reconcile(&self.ctx, &self.config)
            .await
            .expect("meetings pass")
    }

    async fn created(&self) -> usize {
        self.ctx
            .store
            .list_occurrences(&OccurrenceFilter::default(), Utc::now())
            .await
            .expect("occurrences")
            .iter()
            .filter(|o| o.state == OccurrenceState::Created)
            .count()
    }
}

fn pace(requests_per_second: f64, max_in_flight: usize) -> Pace {
    Pace {
        requests_per_second,
        max_in_flight,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_creates_over_ten_hosts_run_concurrently_within_the_budget() {
    let p = paced(
        10,
        20,
        pace(20.0, 8),
        Duration::from_millis(200),
        SimConfig::default(),
    )
    .await;
    // The account's limit is the budget: one request over it would be answered 429.
    p.sim.set_per_second_limit(Some(20));
    let report = p.reconcile().await;
    assert_eq!(report.created, 200, "{report:?}");
    assert_eq!(p.created().await, 200);
    let meetings = p.sim.meetings();
    assert_eq!(meetings.len(), 200);
    assert_markers_unique(&meetings);
    let c = p.sim.counters();
    assert_eq!(c.get(Route::CreateMeeting), 200, "no create sent twice");
    assert_eq!(c.over_per_second, 0, "over the per-second limit");
    assert!(c.max_per_second <= 20, "{} in one second", c.max_per_second);
    // The calls overlapped, up to the bound and never past it.
    assert_eq!(p.sim.max_in_flight(), 8);
    // And the budget was used, not wasted: 200 creates need 10 s at 20 per second.
    let took = p.clock.now() - (p.base - chrono::Duration::hours(1));
    assert!(took >= chrono::Duration::seconds(9), "{took}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_per_second_429s_slows_zoomd_down_and_everything_is_still_created() {
    let p = paced(
        4,
        15,
        pace(20.0, 8),
        Duration::from_millis(20),
        SimConfig::default(),
    )
    .await;
    // Other apps of the account use most of its limit: zoomd's 20 per second is too many.
    p.sim.set_per_second_limit(Some(4));
    let mut passes = 0;
    while p.created().await < 60 {
        passes += 1;
        assert!(passes <= 5, "not all created after 5 passes");
        p.reconcile().await;
        // What the pass deferred (a 429 it gave up on) is due again a minute later.
        p.clock.advance(Duration::from_secs(61));
    }
    let c = p.sim.counters();
    assert!(c.over_per_second > 0, "the sim never refused: no burst");
    assert_eq!(p.sim.meetings().len(), 60);
    assert_markers_unique(&p.sim.meetings());
    // Slowed down: at 20 per second against a limit of 4, four of five requests would be
    // refused; after the budget halved to the limit, almost none are.
    let sent = c.get(Route::CreateMeeting);
    assert!(
        c.over_per_second * 4 < sent,
        "{} of {sent} refused: zoomd did not slow down",
        c.over_per_second
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_is_counted_exactly_with_creates_for_one_host_in_flight_at_once() {
    let p = paced(
        1,
        120,
        pace(Pace::MAX_RATE, 8),
        Duration::from_millis(50),
        SimConfig::default(),
    )
    .await;
    let report = p.reconcile().await;
    assert_eq!(report.created, 100, "{report:?}");
    assert_eq!(report.deferred, 20, "{report:?}");
    // The 101st create of the day was never sent, though eight were in flight at once.
    assert_eq!(p.sim.counters().get(Route::CreateMeeting), 100);
    assert_eq!(p.sim.max_in_flight(), 8);
    let day = p.clock.now().date_naive();
    let (calls, _) = p
        .ctx
        .store
        .quota("host0@example.org", day)
        .await
        .expect("quota");
    assert_eq!(calls, 100);
    // Soonest first, to within the calls in flight: the last meetings of the list wait.
    let rows = p
        .ctx
        .store
        .list_occurrences(&OccurrenceFilter::default(), Utc::now())
        .await
        .expect("rows");
    let latest_created = rows
        .iter()
        .filter(|r| r.state == OccurrenceState::Created)
        .map(|r| r.start_utc)
        .max()
        .expect("some created");
    let earliest_deferred = rows
        .iter()
        .filter(|r| r.state == OccurrenceState::Deferred)
        .map(|r| r.start_utc)
        .min()
        .expect("some deferred");
    assert!(
        earliest_deferred + chrono::Duration::minutes(10 * 8) > latest_created,
        "deferred {earliest_deferred} long before created {latest_created}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_pass_polls_the_due_meetings_concurrently() {
    let p = paced(
        4,
        10,
        pace(Pace::MAX_RATE, 8),
        Duration::from_millis(100),
        SimConfig::default(),
    )
    .await;
    assert_eq!(p.reconcile().await.created, 40);
    // Past every scheduled end: all 40 are due.
    p.clock.set(p.base + chrono::Duration::hours(8));
    let before = p.sim.counters();
    let polled = recordings::poll(&p.ctx, &p.config).await.expect("poll");
    assert_eq!(polled.polled, 40, "{polled:?}");
    let after = p.sim.counters();
    let asked = |r| after.get(r) - before.get(r);
    assert!(asked(Route::PastInstances) >= 40);
    assert_eq!(p.sim.max_in_flight(), 8);
    // Nothing is due right after: the next pass asks Zoom nothing.
    let again = recordings::poll(&p.ctx, &p.config).await.expect("poll");
    assert_eq!(again.polled, 0);
    assert_eq!(p.sim.counters().requests, after.requests);
}

/// A long pass (slow Zoom, a small budget) ends within 10 s of SIGTERM, the calls in flight
/// finished and recorded, and a restart finishes the pass without a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_long_concurrent_pass_and_a_restart_finishes_it() {
    let sim = spawn_sim(SimConfig {
        users: users(4),
        ..SimConfig::default()
    })
    .await;
    sim.set_latency(Duration::from_millis(300));
    let base = (Utc::now() + chrono::Duration::hours(2))
        .with_second(0)
        .expect("a whole minute");
    let toml = DaemonToml::run(&sim)
        .set("create_ahead", "\"7d\"")
        .zoom("requests_per_second", "4")
        .zoom("max_in_flight", "4")
        .meetings(&schedule(4, 20, base));
    let mut daemon = spawn_daemon(&toml, &[]);
    daemon
        .wait_for("a few creates", || async {
            sim.counters().get(Route::CreateMeeting) >= 8
        })
        .await;
    assert!(
        sim.counters().get(Route::CreateMeeting) < 80,
        "the pass must still be under way"
    );
    // systemd's stop timeout is longer, but 10 s is what an operator expects.
    daemon.stop_within(Duration::from_secs(10)).await;
    // The creates in flight were let finish: none is left with an unknown outcome.
    let store = daemon.store().await.expect("database");
    let rows = store
        .list_occurrences(&OccurrenceFilter::default(), Utc::now())
        .await
        .expect("occurrences");
    store.close().await;
    let creating: Vec<_> = rows
        .iter()
        .filter(|r| r.state == OccurrenceState::Creating)
        .map(|r| &r.key)
        .collect();
    assert!(creating.is_empty(), "left unresolved: {creating:?}");
    // The restart, at the widest budget, finishes what the pass left.
    sim.set_latency(Duration::ZERO);
    let wide = DaemonToml::run(&sim)
        .set("create_ahead", "\"7d\"")
        .zoom("requests_per_second", "80")
        .meetings(&schedule(4, 20, base));
    std::fs::write(&daemon.config_path, wide.text()).expect("config");
    daemon.start();
    daemon
        .wait_for("all 80 created", || async { sim.meetings().len() >= 80 })
        .await;
    daemon.stop().await;
    assert_eq!(sim.meetings().len(), 80);
    assert_markers_unique(&sim.meetings());
}
