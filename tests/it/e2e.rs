//! End to end: the real `zoomd` binary against the simulated Zoom, for real seconds.
//!
//! Each test starts a sim in this process and the daemon as a child process, with a
//! schedule of 6-field cron expressions a few seconds in the future, and checks the outcome
//! in the sim (meetings made), the database and the archive on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use zoomd::sim::{Fault, Route, Sim, SimConfig};
use zoomd::store::Store;

/// A running sim, a temp dir with config, database and archive, and the daemon process.
struct App {
    dir: tempfile::TempDir,
    sim: Sim,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    runs: usize,
}

struct Spec {
    sim: SimConfig,
    zoom: String,
    daemon: String,
    meetings: String,
    env: Vec<(String, String)>,
    create_ahead: &'static str,
    give_up_after: &'static str,
}

impl Spec {
    fn new(meetings: String) -> Spec {
        Spec {
            sim: SimConfig::default(),
            zoom: String::new(),
            daemon: String::new(),
            create_ahead: "1m",
            give_up_after: "2m",
            meetings,
            env: Vec::new(),
        }
    }
}

/// Exact instant as a 6-field cron (second minute hour day month, any weekday), in UTC.
fn cron_at(t: DateTime<Utc>) -> String {
    t.format("%-S %-M %-H %-d %-m *").to_string()
}

fn in_secs(s: i64) -> DateTime<Utc> {
    let now = Utc::now();
    let now = now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    now + chrono::Duration::seconds(s)
}

fn meeting(key: &str, topic: &str, when: DateTime<Utc>) -> String {
    format!(
        "[[meeting]]\nkey = \"{key}\"\ntopic = \"{topic}\"\nhost = \"me\"\ncron = \"{}\"\ntimezone = \"UTC\"\nduration = \"1m\"\n",
        cron_at(when)
    )
}

async fn spawn_app(spec: Spec) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(spec.sim.clone()).await.expect("sim");
    let zoom = if spec.zoom.is_empty() {
        format!(
            "auth = \"oauth\"\naccount_id = \"{}\"\nclient_id = \"{}\"\n",
            spec.sim.account_id, spec.sim.client_id
        )
    } else {
        spec.zoom.clone()
    };
    let mut env = vec![
        (
            "ZOOMD_CLIENT_SECRET".to_string(),
            spec.sim.client_secret.clone(),
        ),
        ("ZOOMD_LOG".to_string(), "info,zoomd=debug".to_string()),
    ];
    env.extend(spec.env.clone());
    let config_path = dir.path().join("daemon.toml");
    let text = format!(
        "[zoom]\n{zoom}api_url = \"{}\"\noauth_url = \"{}\"\n\n[daemon]\ncreate_ahead = \"{}\"\npoll_every = \"1s\"\ngive_up_after = \"{}\"\ndatabase = \"state.db\"\narchive = \"recordings\"\n{}\n\n{}",
        sim.api_url(),
        sim.oauth_url(),
        spec.create_ahead,
        spec.give_up_after,
        spec.daemon,
        spec.meetings
    );
    std::fs::write(&config_path, text).expect("write config");
    let mut app = App {
        dir,
        sim,
        config_path,
        env,
        child: None,
        runs: 0,
    };
    app.start();
    app
}

impl App {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn archive(&self) -> PathBuf {
        self.path("recordings")
    }

    fn start(&mut self) {
        self.runs += 1;
        let log =
            std::fs::File::create(self.path(&format!("daemon-{}.log", self.runs))).expect("log");
        let mut cmd = if self.env.iter().any(|(k, _)| k == "WATCHDOG_USEC") {
            // systemd names the watched process: the shell's pid is zoomd's after `exec`.
            let mut c = Command::new("sh");
            c.args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""])
                .arg(env!("CARGO_BIN_EXE_zoomd"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_zoomd"))
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("ZOOMD_CONFIG")
            .env_remove("ZOOMD_API_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn zoomd"));
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn kill9(&mut self) {
        self.signal("-KILL");
        let _ = self.child.take().expect("running").wait();
    }

    /// SIGTERM; the daemon must exit 0 within 10 s.
    fn stop(&mut self) {
        self.signal("-TERM");
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "exit {status}\n{}", self.logs());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within 10 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        (1..=self.runs)
            .map(|i| {
                std::fs::read_to_string(self.path(&format!("daemon-{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    async fn store(&self) -> Option<Store> {
        Store::open_read_only(&self.path("state.db")).await.ok()
    }

    /// Polls `cond` until it holds or `limit` passes (then fails with the daemon's log).
    async fn wait_for<F, Fut>(&self, what: &str, limit: Duration, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !cond().await {
            if let Some(child) = &self.child {
                assert!(child.id() > 0);
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// True when every completed file the sim has for these meetings (`n` of them, by
    /// topic prefix) is archived with the sim's digest.
    async fn archived(&self, meetings: usize, files_each: usize) -> bool {
        let Some(store) = self.store().await else {
            return false;
        };
        let archive = store.archive().await.unwrap_or_default();
        store.close().await;
        let expected = self.sim.expected_files();
        let mut per_meeting: HashMap<i64, usize> = HashMap::new();
        for e in &expected {
            if archive
                .iter()
                .any(|a| a.meeting_uuid == e.uuid && a.sha256.as_deref() == Some(e.sha256.as_str()))
            {
                *per_meeting.entry(e.meeting_id).or_default() += 1;
            }
        }
        per_meeting.values().filter(|n| **n >= files_each).count() >= meetings
    }

    /// The invariants every test ends with.
    async fn assert_consistent(&self) {
        // One occurrence, at most one Zoom meeting: the marker zoomd writes is unique.
        let mut seen = HashMap::new();
        for m in self.sim.meetings() {
            let marker = m.agenda.lines().last().unwrap_or_default().to_string();
            assert!(
                marker.starts_with("zoomd:"),
                "agenda without marker: {:?}",
                m.agenda
            );
            if let Some(other) = seen.insert(marker.clone(), m.id) {
                panic!(
                    "two meetings ({other}, {}) for {marker}\n{}",
                    m.id,
                    self.logs()
                );
            }
        }
        // Every archived file is on disk, under the archive, with the recorded digest; no
        // .part left over.
        let store = self.store().await.expect("database");
        for a in store.archive().await.expect("archive") {
            let rel = a.path.expect("path");
            let full = self.archive().join(&rel);
            assert!(full.starts_with(self.archive()));
            let bytes = std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
            assert_eq!(Some(bytes.len() as i64), a.bytes);
            assert_eq!(Some(hex::encode(Sha256::digest(&bytes))), a.sha256, "{rel}");
        }
        assert_eq!(store.integrity_check().await.expect("check"), "ok");
        store.close().await;
        let parts = walk(&self.archive())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "part"))
            .collect::<Vec<_>>();
        assert!(parts.is_empty(), "left over: {parts:?}");
        // No token ever went into a URL or to the download host.
        let report = self.sim.report();
        assert!(
            report.tokens_in_urls.is_empty(),
            "{:?}",
            report.tokens_in_urls
        );
        assert!(report.download_auth_headers.is_empty());
        assert!(
            report.encoding_errors.is_empty(),
            "{:?}",
            report.encoding_errors
        );
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_entries_each_occurrence_one_meeting_every_file_verified() {
    let mut meetings = meeting("alpha", "Alpha lecture", in_secs(4));
    meetings.push_str(&meeting("beta", "Beta standup", in_secs(6)));
    // A third entry in another zone, written as its local wall-clock time.
    let t = in_secs(8).with_timezone(&chrono_tz::America::New_York);
    meetings.push_str(&format!(
        "[[meeting]]\nkey = \"gamma\"\ntopic = \"Gamma board\"\nhost = \"chair@example.org\"\ncron = \"{}\"\ntimezone = \"America/New_York\"\nduration = \"2h\"\nagenda = \"Budget\"\n",
        t.format("%-S %-M %-H %-d %-m *")
    ));
    let mut app = spawn_app(Spec::new(meetings)).await;
    app.wait_for("3 meetings archived", LIMIT, || app.archived(3, 5))
        .await;
    app.stop();
    app.assert_consistent().await;
    let made = app.sim.meetings();
    assert_eq!(made.len(), 3, "{made:?}");
    let gamma = made
        .iter()
        .find(|m| m.topic == "Gamma board")
        .expect("gamma");
    assert_eq!(gamma.host_email, "chair@example.org");
    assert_eq!(gamma.duration, 120);
    assert!(gamma.agenda.starts_with("Budget\n\nzoomd:gamma:"));
    assert_eq!(gamma.settings["auto_recording"], "cloud");
    // One create call per meeting: no retries, no duplicates.
    assert_eq!(app.sim.counters().get(Route::CreateMeeting), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_schedule_updates_cancels_and_skips() {
    let far = in_secs(50);
    let mut meetings = meeting("keep", "Original topic", far);
    meetings.push_str(&meeting(
        "drop",
        "To be removed",
        far + chrono::Duration::seconds(2),
    ));
    meetings.push_str(&meeting(
        "skipped",
        "To be skipped",
        far + chrono::Duration::seconds(4),
    ));
    let mut app = spawn_app(Spec::new(meetings.clone())).await;
    app.wait_for("3 meetings created", LIMIT, || async {
        app.sim.meetings().len() == 3
    })
    .await;

    let skip_date = (far + chrono::Duration::seconds(4)).format("%Y-%m-%d");
    let edited = meetings
        .replace("Original topic", "Renamed topic")
        .replace(
            &meeting("drop", "To be removed", far + chrono::Duration::seconds(2)),
            "",
        )
        .replace(
            "topic = \"To be skipped\"",
            &format!("topic = \"To be skipped\"\nskip = [\"{skip_date}\"]"),
        );
    let text = std::fs::read_to_string(&app.config_path).expect("read");
    std::fs::write(&app.config_path, text.replace(&meetings, &edited)).expect("write");
    app.signal("-HUP");
    app.wait_for("update and two cancels", LIMIT, || async {
        let r = app.sim.report();
        r.meetings_deleted.len() == 2 && !r.meetings_updated.is_empty()
    })
    .await;
    app.stop();
    let made = app.sim.meetings();
    let keep = made
        .iter()
        .find(|m| m.agenda.contains("zoomd:keep:"))
        .expect("keep");
    assert_eq!(keep.topic, "Renamed topic");
    assert!(!keep.deleted);
    for key in ["drop", "skipped"] {
        let m = made
            .iter()
            .find(|m| m.agenda.contains(&format!("zoomd:{key}:")))
            .expect(key);
        assert!(m.deleted, "{key} not deleted");
    }
    let store = app.store().await.expect("db");
    let states: HashMap<String, String> = store
        .list_occurrences(&Default::default(), Utc::now())
        .await
        .expect("list")
        .into_iter()
        .map(|o| (o.key, o.state))
        .collect();
    assert_eq!(states["keep"], "created");
    assert_eq!(states["drop"], "cancelled");
    assert_eq!(states["skipped"], "cancelled");
    let kinds: Vec<String> = store
        .events(100)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.iter().filter(|k| *k == "cancelled").count() == 2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"updated".to_string()) && kinds.contains(&"reloaded".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_create_and_download_then_restart() {
    // "slow" starts late enough for its lost create to settle (45 s) and be made again.
    let mut spec = Spec::new(format!(
        "{}{}",
        meeting("lost", "Answer lost", in_secs(6)),
        meeting("slow", "Killed mid-create", in_secs(70))
    ));
    spec.create_ahead = "2m";
    spec.sim.mp4_size = 24 * 1024 * 1024;
    spec.sim.stall_for = Duration::from_secs(30);
    let sim_faults = |sim: &Sim| {
        // The first create succeeds but its answer is lost; the second is slow enough to die in.
        sim.inject(Route::CreateMeeting, Fault::CreateSucceedsAnswerLost, 1);
        sim.inject(
            Route::CreateMeeting,
            Fault::Delay(Duration::from_secs(3)),
            1,
        );
        // The first download of a file stalls half-way: the daemon dies during it.
        sim.inject(Route::Download, Fault::StalledBody, 1);
    };
    let mut app = spawn_app(spec).await;
    sim_faults(&app.sim);
    // Kill while the second create is in flight.
    app.wait_for("the slow create in flight", LIMIT, || async {
        app.sim.counters().get(Route::CreateMeeting) >= 2
    })
    .await;
    app.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    app.start();
    // Kill again while a download is stalled with a partial .part on disk.
    app.wait_for("a partial download", LIMIT, || async {
        walk(&app.archive()).iter().any(|p| {
            p.extension().is_some_and(|e| e == "part")
                && std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
        })
    })
    .await;
    app.kill9();
    app.start();
    app.wait_for("both meetings archived", Duration::from_secs(150), || {
        app.archived(2, 5)
    })
    .await;
    app.stop();
    app.assert_consistent().await;
    assert_eq!(app.sim.meetings().len(), 2, "{:?}", app.sim.meetings());
    // The stalled file resumed from where it stopped (a ranged request was answered 206).
    assert!(
        app.sim.counters().statuses.get(&206).copied().unwrap_or(0) >= 1,
        "{:?}",
        app.sim.counters()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_and_late_transcript_are_archived() {
    let mut spec = Spec::new(meeting("twice", "Started twice", in_secs(4)));
    spec.sim.second_instance = true;
    let mut app = spawn_app(spec).await;
    app.wait_for("both instances archived", LIMIT, || async {
        let files = app.sim.expected_files();
        let both = files.iter().filter(|f| f.uuid.starts_with('/')).count() >= 5
            && files.iter().filter(|f| !f.uuid.starts_with('/')).count() >= 5;
        both && app.archived(1, 10).await
    })
    .await;
    app.stop();
    app.assert_consistent().await;
    let store = app.store().await.expect("db");
    let archive = store.archive().await.expect("archive");
    let transcripts: Vec<_> = archive
        .iter()
        .filter(|a| a.file_type == "TRANSCRIPT")
        .collect();
    assert_eq!(transcripts.len(), 2, "{archive:?}");
    assert!(archive.iter().any(|a| a.meeting_uuid.starts_with('/')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_topic_stays_inside_the_archive() {
    let topic = "../../etc/x\\u0000CON\\\\..\\\\..";
    let mut app = spawn_app(Spec::new(meeting("hostile", topic, in_secs(4)))).await;
    app.wait_for("archived", LIMIT, || app.archived(1, 5)).await;
    app.stop();
    app.assert_consistent().await;
    // Nothing was written beside or above the archive.
    let mut top: Vec<String> = std::fs::read_dir(app.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert!(
        top.iter().all(|n| n == "recordings"
            || n == "daemon.toml"
            || n.starts_with("state.db")
            || n.starts_with("daemon-")),
        "{top:?}"
    );
    for p in walk(&app.archive()) {
        let rel = p.strip_prefix(app.archive()).expect("under");
        assert_eq!(rel.components().count(), 3, "{rel:?}");
        let s = rel.to_str().expect("utf-8");
        assert!(!s.contains("..") && !s.contains('\0'), "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_download_trash_only_after_every_file_is_verified() {
    // The cloud copy goes when the watch ends (give_up_after past the scheduled end), so a
    // transcript that comes late is never trashed before it is archived.
    let mut spec = Spec::new(meeting("trash", "Trash after archive", in_secs(4)));
    spec.daemon = "after_download = \"trash\"".into();
    spec.give_up_after = "1m";
    let mut app = spawn_app(spec).await;
    // The first attempt of one file is cut short: the trash must wait for its retry.
    app.sim.inject(Route::Download, Fault::TruncatedBody, 1);
    app.wait_for("cloud copy trashed", Duration::from_secs(200), || async {
        !app.sim.report().recordings_removed.is_empty()
    })
    .await;
    app.stop();
    app.assert_consistent().await;
    let removed = app.sim.report().recordings_removed;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].action, "trash");
    assert!(removed[0].file_id.is_none());
    let store = app.store().await.expect("db");
    let events = store.events(1000).await.expect("events");
    let trashed = events
        .iter()
        .find(|e| e.kind == "cloud-trashed")
        .expect("trash event");
    let archived: Vec<_> = events.iter().filter(|e| e.kind == "archived").collect();
    // All five files (one after a retry) were archived before the trash.
    assert!(archived.len() >= 5, "{events:?}");
    assert!(archived.iter().all(|a| a.id < trashed.id), "{events:?}");
    let failures = store.failures().await.expect("failures");
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_jwt_mode_end_to_end() {
    let mut spec = Spec::new(meeting("jwt", "JWT meeting", in_secs(4)));
    spec.zoom = format!("auth = \"jwt\"\napi_key = \"{}\"\n", spec.sim.api_key);
    spec.env
        .push(("ZOOMD_API_SECRET".into(), spec.sim.api_secret.clone()));
    let mut app = spawn_app(spec).await;
    app.wait_for("archived", LIMIT, || app.archived(1, 5)).await;
    app.stop();
    app.assert_consistent().await;
    assert_eq!(
        app.sim.counters().get(Route::Token),
        0,
        "JWT mode asks for no OAuth token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_last_good_schedule_on_a_bad_edit() {
    let first = meeting("first", "First entry", in_secs(50));
    let mut app = spawn_app(Spec::new(first.clone())).await;
    app.wait_for("first meeting", LIMIT, || async {
        app.sim.meetings().len() == 1
    })
    .await;
    let good = std::fs::read_to_string(&app.config_path).expect("read");

    // A bad edit, saved (no SIGHUP): logged with line and column, nothing changes.
    let bad = good.replace("timezone = \"UTC\"", "timezone = \"Europe/Berln\"");
    std::fs::write(&app.config_path, &bad).expect("write");
    app.wait_for("the failed reload", LIMIT, || async {
        app.logs().contains("unknown timezone 'Europe/Berln'")
    })
    .await;
    let line = bad
        .lines()
        .position(|l| l.contains("Europe/Berln"))
        .expect("line")
        + 1;
    assert!(
        app.logs().contains(&format!(
            "daemon.toml:{line}:12: unknown timezone 'Europe/Berln'"
        )),
        "{}",
        app.logs()
    );
    assert!(
        app.child
            .as_mut()
            .expect("running")
            .try_wait()
            .expect("wait")
            .is_none(),
        "daemon died"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        app.sim.meetings().iter().all(|m| !m.deleted),
        "bad edit changed the schedule"
    );

    // A good edit adds an entry; the first one is untouched.
    let second = meeting("second", "Second entry", in_secs(55));
    std::fs::write(&app.config_path, format!("{good}\n{second}")).expect("write");
    app.wait_for("second meeting", LIMIT, || async {
        app.sim.meetings().len() == 2
    })
    .await;
    app.stop();
    assert!(app.sim.meetings().iter().all(|m| !m.deleted));
    let store = app.store().await.expect("db");
    let kinds: Vec<String> = store
        .events(100)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"reload-failed".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"reloaded".to_string()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_download_exits_zero_and_the_part_resumes() {
    let mut spec = Spec::new(meeting("term", "Stopped mid-download", in_secs(4)));
    spec.sim.mp4_size = 24 * 1024 * 1024;
    spec.sim.stall_for = Duration::from_secs(30);
    let mut app = spawn_app(spec).await;
    app.sim.inject(Route::Download, Fault::StalledBody, 1);
    app.wait_for("a partial download", LIMIT, || async {
        walk(&app.archive()).iter().any(|p| {
            p.extension().is_some_and(|e| e == "part")
                && std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
        })
    })
    .await;
    app.stop(); // exit 0 within 10 s, asserted
    let parts: Vec<_> = walk(&app.archive())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect();
    assert!(!parts.is_empty(), "the .part stays for the next start");
    app.start();
    app.wait_for("archived after restart", LIMIT, || app.archived(1, 5))
        .await;
    app.stop();
    app.assert_consistent().await;
    assert!(app.sim.counters().statuses.get(&206).copied().unwrap_or(0) >= 1);
    assert!(
        app.logs()
            .contains("download interrupted by shutdown; will resume")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_loop_and_a_long_read_transaction_never_lock_the_daemon() {
    use sqlx::Connection;
    let mut meetings = meeting("busy-a", "Busy A", in_secs(4));
    meetings.push_str(&meeting("busy-b", "Busy B", in_secs(6)));
    let mut app = spawn_app(Spec::new(meetings)).await;
    app.wait_for("database", LIMIT, || async {
        app.path("state.db").exists()
    })
    .await;
    // A reader that holds its transaction open for the whole run, like a forgotten sqlite3.
    let url = format!("sqlite://{}?mode=ro", app.path("state.db").display());
    let mut reader = sqlx::SqliteConnection::connect(&url).await.expect("reader");
    sqlx::query("BEGIN")
        .execute(&mut reader)
        .await
        .expect("begin");
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM occurrences")
        .fetch_one(&mut reader)
        .await
        .expect("read");
    let config = app.config_path.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        let mut runs = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let out = Command::new(env!("CARGO_BIN_EXE_zoomd"))
                .args(["status", "--json", "--config"])
                .arg(&config)
                .output()
                .expect("status");
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "status failed: {stderr}");
            assert!(!stderr.contains("locked"), "{stderr}");
            runs += 1;
        }
        runs
    });
    app.wait_for("both archived", LIMIT, || app.archived(2, 5))
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = statuses.await.expect("status loop");
    assert!(runs >= 10, "only {runs} status runs");
    sqlx::query("COMMIT")
        .execute(&mut reader)
        .await
        .expect("commit");
    app.stop();
    app.assert_consistent().await;
    assert!(!app.logs().contains("locked"), "{}", app.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_gets_a_token_and_looks_up_each_host() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sim.config().clone();
    let write = |hosts: &[&str]| {
        let mut text = format!(
            "[zoom]\naccount_id = \"{}\"\nclient_id = \"{}\"\napi_url = \"{}\"\noauth_url = \"{}\"\n",
            cfg.account_id,
            cfg.client_id,
            sim.api_url(),
            sim.oauth_url()
        );
        for (i, h) in hosts.iter().enumerate() {
            text.push_str(&format!(
                "[[meeting]]\nkey = \"k{i}\"\ntopic = \"T\"\nhost = \"{h}\"\ncron = \"0 9 * * Mon\"\nduration = \"1h\"\n"
            ));
        }
        let path = dir.path().join("daemon.toml");
        std::fs::write(&path, text).expect("write");
        path
    };
    let secret = cfg.client_secret.clone();
    let run = move |path: PathBuf| {
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_zoomd"))
                .args(["check", "--online", "--config"])
                .arg(path)
                .env("ZOOMD_CLIENT_SECRET", secret)
                .output()
                .expect("run")
        })
    };
    let path = write(&["me", "chair@example.org"]);
    let out = run(path).await.expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("online: token obtained (oauth)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("online: host chair@example.org: known to Zoom"),
        "{stdout}"
    );

    let path = write(&["me", "nobody@example.org"]);
    let out = run(path).await.expect("join");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host nobody@example.org") && stderr.contains("1001"),
        "{stderr}"
    );
    assert!(!stderr.contains(&cfg.client_secret));
}

/// The daemon speaks sd_notify: READY after start, WATCHDOG from the loop, RELOADING/READY
/// around a reload, STATUS lines, STOPPING on SIGTERM. Logs as JSON lines on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notifications_and_json_logs() {
    use std::os::unix::net::UnixDatagram;
    let mut spec = Spec::new(meeting("notify", "Notified", in_secs(50)));
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock_path = sock_dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    spec.env
        .push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    spec.env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    let mut app = spawn_app(spec).await;
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let messages = messages.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let stop = text.contains("STOPPING=1");
                    messages.lock().expect("lock").push(text);
                    if stop {
                        break;
                    }
                }
            }
        })
    };
    let seen = |m: &str| messages.lock().expect("lock").iter().any(|x| x.contains(m));
    app.wait_for("READY=1", LIMIT, || async { seen("READY=1") })
        .await;
    app.wait_for("STATUS", LIMIT, || async { seen("STATUS=") })
        .await;
    // The loop wakes at half the watchdog interval even with nothing to do.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watchdogs = messages
        .lock()
        .expect("lock")
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(watchdogs >= 2, "{:?}", messages.lock().expect("lock"));
    app.signal("-HUP");
    app.wait_for("RELOADING=1", LIMIT, || async { seen("RELOADING=1") })
        .await;
    app.stop();
    reader.join().expect("reader");
    let all = messages.lock().expect("lock").join("\n");
    let reloading = all.find("RELOADING=1").expect("reloading");
    assert!(
        all[reloading..].contains("READY=1"),
        "READY after RELOADING: {all}"
    );
    assert!(all.contains("STOPPING=1"), "{all}");
    assert!(all.contains("STATUS=1 entries; next notify at "), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_runs_one_pass_with_progress_lines_and_json_logs() {
    let when = in_secs(5);
    let mut app = spawn_app(Spec::new(meeting("once", "One pass", when))).await;
    app.wait_for("the meeting", LIMIT, || async {
        app.sim.meetings().len() == 1
    })
    .await;
    app.stop();
    let id = app.sim.meetings()[0].id;
    // The poll is due from the scheduled start on.
    let wait = (when - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
    tokio::time::sleep(wait).await;
    app.sim.force_recording(id).expect("force");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let config = app.config_path.clone();
    let secret = app.sim.config().client_secret.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_zoomd"))
            .args(["--log-format", "json", "sync", "--config"])
            .arg(config)
            .env("ZOOMD_CLIENT_SECRET", secret)
            .env("ZOOMD_LOG", "info")
            .output()
            .expect("sync")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Not a terminal: plain progress lines, then the summary.
    assert!(stdout.contains("(100%)"), "{stdout}");
    assert!(stdout.contains("recordings: 1 polled, 1 found"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("downloads: ") && !l.starts_with("downloads: 0 archived")),
        "{stdout}"
    );
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
}
