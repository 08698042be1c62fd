//! End to end: the real `zoomd` binary against the simulated Zoom, for real seconds.
//!
//! Each test starts a sim in this process and the daemon as a child process, with a
//! schedule of 6-field cron expressions a few seconds in the future, and checks the outcome
//! in the sim (meetings made), the database and the archive on disk.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use zoomd::sim::{Fault, Route, Sim, SimConfig};
use zoomd::store::OccurrenceState;

use crate::helpers::{
    Daemon, DaemonToml, Entry, Login, archived_per_meeting, assert_consistent, cron_at,
    event_kinds, in_secs, part_files, partial_download, spawn_daemon, spawn_sim, text, walk, zoomd,
};

/// An entry at `when`, one minute long, hosted by `me`.
fn meeting(key: &str, topic: &str, when: DateTime<Utc>) -> String {
    Entry::cron(key, topic, &cron_at(when)).toml()
}

/// The config of these runs: creates a minute ahead, watches for recordings until two
/// minutes after the end.
fn config(sim: &Sim) -> DaemonToml {
    DaemonToml::run(sim)
        .set("create_ahead", "\"1m\"")
        .set("give_up_after", "\"2m\"")
}

/// A sim with `cfg`'s knobs and the daemon on [`config`] with `meetings`.
async fn spawn_app(cfg: SimConfig, meetings: &str) -> (Sim, Daemon) {
    let sim = spawn_sim(cfg).await;
    let d = spawn_daemon(&config(&sim).meetings(meetings), &[]);
    (sim, d)
}

/// Whether `meetings` of the sim's meetings have at least `files_each` files archived with
/// the sim's digest.
async fn archived(d: &Daemon, sim: &Sim, meetings: usize, files_each: usize) -> bool {
    let per_meeting = archived_per_meeting(&sim.expected_files(), &d.archive_rows().await);
    per_meeting.values().filter(|n| **n >= files_each).count() >= meetings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_entries_each_occurrence_one_meeting_every_file_verified() {
    let mut meetings = meeting("alpha", "Alpha lecture", in_secs(4));
    meetings.push_str(&meeting("beta", "Beta standup", in_secs(6)));
    // A third entry in another zone, written as its local wall-clock time.
    let t = in_secs(8).with_timezone(&chrono_tz::America::New_York);
    meetings.push_str(
        &Entry::cron("gamma", "Gamma board", &cron_at(t))
            .host("chair@example.org")
            .timezone(Some("America/New_York"))
            .duration("2h")
            .agenda("Budget")
            .toml(),
    );
    let (sim, mut d) = spawn_app(SimConfig::default(), &meetings).await;
    d.wait_for("3 meetings archived", || archived(&d, &sim, 3, 5))
        .await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    let made = sim.meetings();
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
    assert_eq!(sim.counters().get(Route::CreateMeeting), 3);
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
    let (sim, mut d) = spawn_app(SimConfig::default(), &meetings).await;
    d.wait_for("3 meetings created", || async { sim.meetings().len() == 3 })
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
    let text = std::fs::read_to_string(&d.config_path).expect("read");
    std::fs::write(&d.config_path, text.replace(&meetings, &edited)).expect("write");
    d.signal(libc::SIGHUP);
    d.wait_for("update and two cancels", || async {
        let r = sim.report();
        r.meetings_deleted.len() == 2 && !r.meetings_updated.is_empty()
    })
    .await;
    d.stop().await;
    let made = sim.meetings();
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
    let store = d.store().await.expect("db");
    let states: HashMap<String, OccurrenceState> = store
        .list_occurrences(&Default::default(), Utc::now())
        .await
        .expect("list")
        .into_iter()
        .map(|o| (o.key, o.state))
        .collect();
    assert_eq!(states["keep"], OccurrenceState::Created);
    assert_eq!(states["drop"], OccurrenceState::Cancelled);
    assert_eq!(states["skipped"], OccurrenceState::Cancelled);
    let kinds = event_kinds(&store).await;
    assert!(
        kinds.iter().filter(|k| *k == "cancelled").count() == 2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"updated".to_string()) && kinds.contains(&"reloaded".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_create_and_download_then_restart() {
    // "slow" starts late enough for its lost create to settle (45 s) and be made again.
    let meetings = format!(
        "{}{}",
        meeting("lost", "Answer lost", in_secs(6)),
        meeting("slow", "Killed mid-create", in_secs(70))
    );
    let sim = spawn_sim(SimConfig {
        mp4_size: 24 * 1024 * 1024,
        stall_for: Duration::from_secs(30),
        ..SimConfig::default()
    })
    .await;
    // The first create succeeds but its answer is lost; the second is slow enough to die in.
    sim.inject(Route::CreateMeeting, Fault::CreateSucceedsAnswerLost, 1);
    sim.inject(
        Route::CreateMeeting,
        Fault::Delay(Duration::from_secs(3)),
        1,
    );
    // The first download of a file stalls half-way: the daemon dies during it.
    sim.inject(Route::Download, Fault::StalledBody, 1);
    let mut d = spawn_daemon(
        &config(&sim)
            .set("create_ahead", "\"2m\"")
            .meetings(&meetings),
        &[],
    );
    // Kill while the second create is in flight.
    d.wait_for("the slow create in flight", || async {
        sim.counters().get(Route::CreateMeeting) >= 2
    })
    .await;
    d.kill9();
    // The delayed create finishes at the sim while no daemon runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    d.start();
    // Kill again while a download is stalled with a partial .part on disk.
    d.wait_for("a partial download", || async {
        partial_download(&d.archive())
    })
    .await;
    d.kill9();
    d.start();
    d.wait_for("both meetings archived", || archived(&d, &sim, 2, 5))
        .await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    assert_eq!(sim.meetings().len(), 2, "{:?}", sim.meetings());
    // The stalled file resumed from where it stopped (a ranged request was answered 206).
    assert!(
        sim.counters().statuses.get(&206).copied().unwrap_or(0) >= 1,
        "{:?}",
        sim.counters()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_and_late_transcript_are_archived() {
    let (sim, mut d) = spawn_app(
        SimConfig {
            second_instance: true,
            ..SimConfig::default()
        },
        &meeting("twice", "Started twice", in_secs(4)),
    )
    .await;
    d.wait_for("both instances archived", || async {
        let files = sim.expected_files();
        let both = files.iter().filter(|f| f.uuid.starts_with('/')).count() >= 5
            && files.iter().filter(|f| !f.uuid.starts_with('/')).count() >= 5;
        both && archived(&d, &sim, 1, 10).await
    })
    .await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    let archive = d.archive_rows().await;
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
    let (sim, mut d) =
        spawn_app(SimConfig::default(), &meeting("hostile", topic, in_secs(4))).await;
    d.wait_for("archived", || archived(&d, &sim, 1, 5)).await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    // Nothing was written beside or above the archive.
    let mut top: Vec<String> = std::fs::read_dir(d.dir())
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
    for p in walk(&d.archive()) {
        let rel = p.strip_prefix(d.archive()).expect("under");
        assert_eq!(rel.components().count(), 3, "{rel:?}");
        let s = rel.to_str().expect("utf-8");
        assert!(!s.contains("..") && !s.contains('\0'), "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_download_trash_only_after_every_file_is_verified() {
    // The cloud copy goes when the watch ends (give_up_after past the scheduled end), so a
    // transcript that comes late is never trashed before it is archived.
    let sim = spawn_sim(SimConfig::default()).await;
    // The first attempt of one file is cut short: the trash must wait for its retry.
    sim.inject(Route::Download, Fault::TruncatedBody, 1);
    let mut d = spawn_daemon(
        &config(&sim)
            .set("give_up_after", "\"1m\"")
            .set("after_download", "\"trash\"")
            .meetings(&meeting("trash", "Trash after archive", in_secs(4))),
        &[],
    );
    d.wait_for("cloud copy trashed", || async {
        !sim.report().recordings_removed.is_empty()
    })
    .await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    let removed = sim.report().recordings_removed;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].action, "trash");
    assert!(removed[0].file_id.is_none());
    let store = d.store().await.expect("db");
    let events = store.events(1000).await.expect("events");
    let trashed = events
        .iter()
        .find(|e| e.kind == "cloud-trashed")
        .expect("trash event");
    let archived: Vec<_> = events.iter().filter(|e| e.kind == "archived").collect();
    // All five files (one after a retry) were archived before the trash.
    assert!(archived.len() >= 5, "{events:?}");
    assert!(archived.iter().all(|a| a.id < trashed.id), "{events:?}");
    let failures = crate::helpers::failures(&store).await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_jwt_mode_end_to_end() {
    let sim = spawn_sim(SimConfig::default()).await;
    let mut d = spawn_daemon(
        &config(&sim)
            .login(Login::Jwt)
            .meetings(&meeting("jwt", "JWT meeting", in_secs(4))),
        &[],
    );
    d.wait_for("archived", || archived(&d, &sim, 1, 5)).await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    assert_eq!(
        sim.counters().get(Route::Token),
        0,
        "JWT mode asks for no OAuth token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_last_good_schedule_on_a_bad_edit() {
    let (sim, mut d) = spawn_app(
        SimConfig::default(),
        &meeting("first", "First entry", in_secs(50)),
    )
    .await;
    d.wait_for("first meeting", || async { sim.meetings().len() == 1 })
        .await;
    let good = std::fs::read_to_string(&d.config_path).expect("read");

    // A bad edit, saved (no SIGHUP): logged with line and column, nothing changes.
    let bad = good.replace("timezone = \"UTC\"", "timezone = \"Europe/Berln\"");
    std::fs::write(&d.config_path, &bad).expect("write");
    d.wait_for("the failed reload", || async {
        d.logs().contains("unknown timezone 'Europe/Berln'")
    })
    .await;
    let line = bad
        .lines()
        .position(|l| l.contains("Europe/Berln"))
        .expect("line")
        + 1;
    assert!(
        d.logs().contains(&format!(
            "daemon.toml:{line}:12: unknown timezone 'Europe/Berln'"
        )),
        "{}",
        d.logs()
    );
    assert!(d.running(), "daemon died");
    // A while for a wrong reload to show; nothing may change in it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sim.meetings().iter().all(|m| !m.deleted),
        "bad edit changed the schedule"
    );

    // A good edit adds an entry; the first one is untouched.
    let second = meeting("second", "Second entry", in_secs(55));
    std::fs::write(&d.config_path, format!("{good}\n{second}")).expect("write");
    d.wait_for("second meeting", || async { sim.meetings().len() == 2 })
        .await;
    d.stop().await;
    assert!(sim.meetings().iter().all(|m| !m.deleted));
    let kinds = event_kinds(&d.store().await.expect("db")).await;
    assert!(kinds.contains(&"reload-failed".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"reloaded".to_string()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_download_exits_zero_and_the_part_resumes() {
    let sim = spawn_sim(SimConfig {
        mp4_size: 24 * 1024 * 1024,
        stall_for: Duration::from_secs(30),
        ..SimConfig::default()
    })
    .await;
    sim.inject(Route::Download, Fault::StalledBody, 1);
    let mut d = spawn_daemon(
        &config(&sim).meetings(&meeting("term", "Stopped mid-download", in_secs(4))),
        &[],
    );
    d.wait_for("a partial download", || async {
        partial_download(&d.archive())
    })
    .await;
    // Exit 0; the stalled download was interrupted by the shutdown (the log says so below),
    // not waited out.
    d.stop().await;
    assert!(
        !part_files(&d.archive()).is_empty(),
        "the .part stays for the next start"
    );
    assert!(
        d.logs()
            .contains("download interrupted by shutdown; will resume"),
        "{}",
        d.log_tail()
    );
    d.start();
    d.wait_for("archived after restart", || archived(&d, &sim, 1, 5))
        .await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    assert!(sim.counters().statuses.get(&206).copied().unwrap_or(0) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_segmented_download_resumes_only_the_missing_segments() {
    const MIB: u64 = 1024 * 1024;
    let (seg, conns) = (8 * MIB, 4u64);
    let sim = spawn_sim(SimConfig {
        mp4_size: 48 * MIB + 777,
        ..SimConfig::default()
    })
    .await;
    // Slow per connection, as CDN edges are: the kill comes while segments are under way.
    sim.set_download_rate_per_connection(Some(6 * MIB));
    let mut d = spawn_daemon(
        &config(&sim)
            .set("segment_size", "\"8MiB\"")
            .set("connections_per_file", &conns.to_string())
            .meetings(&meeting("segments", "Segmented lecture", in_secs(4))),
        &[],
    );
    let recorded = std::sync::atomic::AtomicUsize::new(0);
    d.wait_for("two segments recorded", || async {
        let Some(store) = d.store().await else {
            return false;
        };
        let files = store.list_files(None).await.unwrap_or_default();
        let Some(mp4) = files.iter().find(|f| f.file_type == "MP4") else {
            return false;
        };
        let n = match store.part_state(mp4.id).await {
            Ok(Some(st)) => st.done.len(),
            _ => 0,
        };
        recorded.store(n, std::sync::atomic::Ordering::Relaxed);
        n >= 2
    })
    .await;
    d.kill9();
    assert!(
        partial_download(&d.archive()),
        "the part stays for the restart"
    );
    sim.set_download_rate_per_connection(None);
    d.start();
    d.wait_for("archived after the restart", || archived(&d, &sim, 1, 5))
        .await;
    d.stop().await;
    assert_consistent(&d, &sim).await;
    // Every file once, plus at most the segments in flight at the kill: one per connection.
    let files: u64 = sim.expected_files().iter().map(|f| f.size).sum();
    let served = sim.counters().bytes_served;
    assert!(
        served <= files + conns * seg,
        "served {served} bytes for {files} bytes of files ({} segments were recorded)",
        recorded.into_inner()
    );
    assert!(served >= files, "served {served} < {files}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_loop_and_a_long_read_transaction_never_lock_the_daemon() {
    use sqlx::Connection;
    let mut meetings = meeting("busy-a", "Busy A", in_secs(4));
    meetings.push_str(&meeting("busy-b", "Busy B", in_secs(6)));
    let (sim, mut d) = spawn_app(SimConfig::default(), &meetings).await;
    d.wait_for("database", || async { d.path("state.db").exists() })
        .await;
    // A reader that holds its transaction open for the whole run, like a forgotten sqlite3.
    let url = format!("sqlite://{}?mode=ro", d.path("state.db").display());
    let mut reader = sqlx::SqliteConnection::connect(&url).await.expect("reader");
    sqlx::query("BEGIN")
        .execute(&mut reader)
        .await
        .expect("begin");
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM occurrences")
        .fetch_one(&mut reader)
        .await
        .expect("read");
    let config = d.config_path.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        let mut runs = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let out = zoomd()
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
    d.wait_for("both archived", || archived(&d, &sim, 2, 5))
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = statuses.await.expect("status loop");
    assert!(runs >= 10, "only {runs} status runs");
    sqlx::query("COMMIT")
        .execute(&mut reader)
        .await
        .expect("commit");
    d.stop().await;
    assert_consistent(&d, &sim).await;
    assert!(!d.logs().contains("locked"), "{}", d.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_gets_a_token_and_looks_up_each_host() {
    let sim = spawn_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |hosts: &[&str]| {
        let mut config = DaemonToml::new(&sim).no_daemon_section();
        for (i, h) in hosts.iter().enumerate() {
            config = config.meetings(
                &Entry::cron(&format!("k{i}"), "T", "0 9 * * Mon")
                    .host(h)
                    .timezone(None)
                    .duration("1h")
                    .toml(),
            );
        }
        let mut cmd = zoomd();
        cmd.args(["check", "--online", "--config"])
            .arg(config.write(dir.path()))
            .envs(config.env());
        tokio::task::spawn_blocking(move || cmd.output().expect("run"))
    };
    let out = check(&["me", "chair@example.org"]).await.expect("join");
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

    let out = check(&["me", "nobody@example.org"]).await.expect("join");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host nobody@example.org") && stderr.contains("1001"),
        "{stderr}"
    );
    assert!(!stderr.contains(&sim.config().client_secret));
}

/// A token with today's granular scopes is checked against what the config needs: all
/// present passes; one missing is named with its feature, the granular and the classic
/// name, and the check fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_names_the_scopes_the_token_lacks() {
    let granular = [
        "meeting:write:meeting:admin",
        "meeting:update:meeting:admin",
        "meeting:delete:meeting:admin",
        "meeting:read:meeting:admin",
        "meeting:read:list_meetings:admin",
        "meeting:read:list_past_instances:admin",
        "cloud_recording:read:list_recording_files:admin",
        "cloud_recording:delete:meeting_recording:admin",
    ];
    let run = |scope: String, after_download: &str| {
        let after_download = after_download.to_owned();
        async move {
            let sim = spawn_sim(SimConfig {
                scope,
                ..SimConfig::default()
            })
            .await;
            let dir = tempfile::tempdir().expect("tempdir");
            let config = DaemonToml::new(&sim)
                .set("after_download", &format!("\"{after_download}\""))
                .meetings(&Entry::cron("k", "T", "0 9 * * Mon").toml());
            let mut cmd = zoomd();
            cmd.args(["check", "--online", "--config"])
                .arg(config.write(dir.path()))
                .envs(config.env());
            let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
                .await
                .expect("join");
            (out, sim)
        }
    };
    let (out, _sim) = run(granular.join(" "), "delete").await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("online: scopes: every configured feature is allowed"),
        "{}",
        text(&out)
    );

    let lacking: Vec<&str> = granular
        .iter()
        .copied()
        .filter(|s| *s != "cloud_recording:read:list_recording_files:admin")
        .collect();
    let (out, _sim) = run(lacking.join(" "), "keep").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "recordings (watch and download) needs get_recordings: add cloud_recording:read:list_recording_files:admin (granular) or recording:read:admin (classic)"
        ),
        "{stderr}"
    );
    // Deleting the cloud copy is needed only when configured: with `keep`, its scope
    // being absent is no gap.
    let without_delete: Vec<&str> = granular
        .iter()
        .copied()
        .filter(|s| !s.starts_with("cloud_recording:delete"))
        .collect();
    let (out, _sim) = run(without_delete.join(" "), "keep").await;
    assert!(out.status.success(), "{}", text(&out));
    let (out, _sim) = run(without_delete.join(" "), "trash").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cloud_recording:delete:meeting_recording:admin"),
        "{}",
        text(&out)
    );
}

/// The daemon speaks sd_notify: READY after start, WATCHDOG from the loop, RELOADING/READY
/// around a reload, STATUS lines, STOPPING on SIGTERM. Logs as JSON lines on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notifications_and_json_logs() {
    use std::os::unix::net::UnixDatagram;
    let sim = spawn_sim(SimConfig::default()).await;
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock_path = sock_dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let sock_name = sock_path.display().to_string();
    let mut d = spawn_daemon(
        &config(&sim).meetings(&meeting("notify", "Notified", in_secs(50))),
        &[("NOTIFY_SOCKET", &sock_name), ("WATCHDOG_USEC", "1000000")],
    );
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (messages, done) = (messages.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
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
    let count = |m: &str| {
        messages
            .lock()
            .expect("lock")
            .iter()
            .filter(|x| x.contains(m))
            .count()
    };
    d.wait_for("READY=1", || async { count("READY=1") > 0 })
        .await;
    d.wait_for("STATUS", || async { count("STATUS=") > 0 })
        .await;
    // The loop wakes at half the watchdog interval even with nothing to do: WATCHDOG=1
    // keeps coming while no meeting is due.
    d.wait_for("two watchdog pings", || async { count("WATCHDOG=1") >= 2 })
        .await;
    d.signal(libc::SIGHUP);
    d.wait_for("RELOADING=1", || async { count("RELOADING=1") > 0 })
        .await;
    d.stop().await;
    // Stops at STOPPING=1; the flag only ends it should that never come.
    done.store(true, std::sync::atomic::Ordering::Relaxed);
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
    let (sim, mut d) = spawn_app(SimConfig::default(), &meeting("once", "One pass", when)).await;
    d.wait_for("the meeting", || async { sim.meetings().len() == 1 })
        .await;
    d.stop().await;
    let id = sim.meetings()[0].id;
    // The poll is due from the scheduled start on: wait for it on the real clock.
    let wait = (when - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
    tokio::time::sleep(wait).await;
    sim.force_recording(id).expect("force");
    let mut sync = d.command(&["--log-format", "json", "sync"]);
    sync.env("ZOOMD_LOG", "info");
    let out = tokio::task::spawn_blocking(move || sync.output().expect("sync"))
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
