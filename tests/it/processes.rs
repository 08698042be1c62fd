//! Several `zoomd run` processes on one PostgreSQL database and one archive directory,
//! against the sim with faults on about one request in ten, SIGKILLed one at a time at
//! random moments and restarted. The work is shared and done once: one Zoom meeting per
//! occurrence, every file archived once and verified, what a killed process held finished
//! by another once its lease ran out, and every process did part of it.
//!
//! `ZOOMD_CRASH_SEED=N` replays a run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zoomd::sim::{Route, Sim, SimConfig};
use zoomd::store::{Database, Store, parse_ts};

use crate::helpers::{
    Daemon, DaemonToml, HANG, TestDb, assert_archive_exact, assert_markers_unique,
    assert_occurrences_final, assert_sound, chaos_of_every_kind, eventually, in_secs,
    series_schedule, settled, spawn_daemon, spawn_sim,
};

const PROCESSES: usize = 3;
const MEETINGS: usize = 24;
const MIN_KILLS: usize = 12;
/// `[daemon] lease`: short (the least accepted), so taken-over work is done within the run.
const LEASE_SECS: i64 = 5;

mod three_processes_share_the_work_through_faults_and_kills {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: scripts/pg-check"]
    async fn postgres() {
        super::three_processes_share_the_work(crate::helpers::TestDb::postgres().await).await
    }
}

/// A row a process held when it was killed, and when its lease ran out.
#[derive(Debug)]
struct Held {
    id: i64,
    until: DateTime<Utc>,
    /// The dead process's pid.
    pid: u32,
}

/// The pid in a lease holder (`host:pid:nonce`).
fn pid_of(holder: &str) -> Option<u32> {
    holder.rsplit(':').nth(1)?.parse().ok()
}

/// Rows of `table` whose lease `pid`'s process holds.
async fn held_by(db: &TestDb, table: &str, pid: u32) -> Vec<Held> {
    let sql = format!(
        "SELECT CAST(id AS TEXT), lease_until FROM {table}
         WHERE lease_holder LIKE '%:{pid}:%' AND lease_until IS NOT NULL"
    );
    db.text_rows(&sql)
        .await
        .into_iter()
        .map(|r| Held {
            id: r[0].as_deref().and_then(|s| s.parse().ok()).expect("id"),
            until: r[1].as_deref().and_then(parse_ts).expect("lease_until"),
            pid,
        })
        .collect()
}

/// Whether `pid`'s process holds a download now.
async fn downloading(db: &TestDb, pid: u32) -> bool {
    let sql = format!(
        "SELECT count(*) FROM recording_files
         WHERE state = 'downloading' AND lease_holder LIKE '%:{pid}:%'"
    );
    db.scalar(&sql).await > 0
}

/// Waits until the work has settled (the last transcript is due 15 s after `last_start`),
/// every process running meanwhile, then stops each with SIGTERM (exit 0). `context` adds
/// to a hang's message.
async fn settle_then_stop(
    procs: &mut [Daemon],
    store: &Store,
    sim: &Sim,
    last_start: DateTime<Utc>,
    context: &dyn Fn() -> String,
) {
    let all_transcripts = last_start + chrono::Duration::seconds(15);
    let done = eventually(HANG, || async {
        for (i, p) in procs.iter().enumerate() {
            assert!(p.running(), "process {i} exited\n{}", p.log_tail());
        }
        Utc::now() > all_transcripts && settled(store, sim).await
    })
    .await;
    let tails: Vec<String> = procs.iter().map(Daemon::log_tail).collect();
    assert!(
        done,
        "hung waiting for the work to settle\n{}\n{}",
        tails.join("\n"),
        context()
    );
    for p in procs {
        p.stop().await;
    }
}

async fn three_processes_share_the_work(db: TestDb) {
    let seed: u64 = std::env::var("ZOOMD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED);
    let mut rng = StdRng::seed_from_u64(seed);
    let Database::Postgres(pg) = &db.database else {
        panic!(
            "several processes share a PostgreSQL database, not {db:?}",
            db = db.engine
        );
    };
    let sim = spawn_sim(SimConfig {
        recording_after: Duration::from_secs(2),
        processing_for: Duration::from_secs(2),
        transcript_after: Duration::from_secs(3),
        mp4_size: 4 * 1024 * 1024,
        m4a_size: 256 * 1024,
        stall_for: Duration::from_secs(2),
        seed,
        ..SimConfig::default()
    })
    .await;
    let (entries, starts) = series_schedule(in_secs(15), MEETINGS, 2);
    let last_start = *starts.last().expect("starts");
    // One archive for all, as one file system mounted on every machine would be.
    let archive = tempfile::tempdir().expect("archive dir");
    let config = DaemonToml::run(&sim)
        .set("database", &format!("\"{}\"", pg.url()))
        .set("archive", &format!("\"{}\"", archive.path().display()))
        .set("lease", &format!("\"{LEASE_SECS}s\""))
        .set("create_ahead", "\"12s\"")
        .set("give_up_after", "\"1h\"")
        .meetings(&entries);
    sim.set_chaos(Some(chaos_of_every_kind(seed)));
    let mut procs: Vec<Daemon> = (0..PROCESSES).map(|_| spawn_daemon(&config, &[])).collect();
    // Opened as they start: it migrates with them (once, under the advisory lock).
    let reader = db.open().await;
    let mut pids: Vec<Vec<u32>> = procs
        .iter()
        .map(|d| vec![d.pid().expect("running")])
        .collect();

    let began = Instant::now();
    let chaos_until = last_start + chrono::Duration::seconds(8);
    let mut kills: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut held_files = Vec::new();
    let mut held_creates = Vec::new();
    let mut total = 0;
    while total < MIN_KILLS || Utc::now() < chaos_until {
        let slot = rng.random_range(0..PROCESSES);
        let pid = procs[slot].pid().expect("running");
        let how = match rng.random_range(0..10) {
            0..=4 => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..=3000))).await;
                "random"
            }
            5..=7 => {
                // While this process holds a download, a little into it.
                let until = Instant::now() + Duration::from_secs(4);
                while !downloading(&db, pid).await && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
                if downloading(&db, pid).await {
                    "download"
                } else {
                    "random"
                }
            }
            _ => {
                // Right as a create reached Zoom (sent by this process or another).
                let before = sim.counters().get(Route::CreateMeeting);
                let until = Instant::now() + Duration::from_secs(3);
                while sim.counters().get(Route::CreateMeeting) == before && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                "create"
            }
        };
        procs[slot].kill9();
        *kills.entry(how).or_default() += 1;
        total += 1;
        // What it held, now that nothing renews it.
        held_files.extend(held_by(&db, "recording_files", pid).await);
        held_creates.extend(held_by(&db, "occurrences", pid).await);
        // Back at once, or once the others may have taken its work over.
        if rng.random_bool(0.5) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..7000))).await;
        }
        procs[slot].start();
        pids[slot].push(procs[slot].pid().expect("running"));
    }
    let chaos_secs = began.elapsed().as_secs();

    // Calm: no more faults; let the processes finish, then stop each properly.
    sim.set_chaos(None);
    sim.clear_faults();
    settle_then_stop(&mut procs, &reader, &sim, last_start, &String::new).await;

    // ---- the invariants ----
    let bytes_total = assert_sound(&reader, archive.path(), &sim).await;
    let occurrences = reader
        .list_occurrences(&Default::default(), Utc::now())
        .await
        .expect("occurrences");
    let meetings = sim.meetings();
    // One occurrence, at most one Zoom meeting, however many processes raced for it.
    let by_marker = assert_markers_unique(&meetings);
    assert!(meetings.iter().all(|m| !m.deleted), "{meetings:?}");
    assert_eq!(occurrences.len(), MEETINGS);
    assert_occurrences_final(&occurrences, &by_marker);

    // Every file archived with Zoom's digest, once; nothing else in the archive.
    let rows = assert_archive_exact(&reader, archive.path(), &sim).await;
    let twice = db
        .scalar(
            "SELECT count(*) FROM (SELECT file_row FROM events WHERE kind = 'archived'
             GROUP BY file_row HAVING count(*) > 1) AS twice",
        )
        .await;
    assert_eq!(twice, 0, "a file archived twice");

    // Who did what: each archived event names its process.
    let events = reader.events(100_000).await.expect("events");
    let slot_of = |holder: &Option<String>| {
        let pid = holder.as_deref().and_then(pid_of)?;
        pids.iter().position(|ps| ps.contains(&pid))
    };
    let mut archived_by = [0usize; PROCESSES];
    let mut created_by = [0usize; PROCESSES];
    for e in &events {
        let Some(slot) = slot_of(&e.holder) else {
            panic!("an event of no process of this run: {e:?}");
        };
        match e.kind.as_str() {
            "archived" => archived_by[slot] += 1,
            "created" => created_by[slot] += 1,
            _ => {}
        }
    }

    // A killed process's work waited for its lease, then another finished it.
    let files = reader.list_files(None).await.expect("files");
    for h in &held_files {
        let f = files.iter().find(|f| f.id == h.id).expect("held file");
        let at = f.archived_at.expect("archived");
        assert!(
            at >= h.until,
            "file {} archived at {at}, before its lease ran out: {h:?}",
            h.id
        );
        if let Some(e) = events
            .iter()
            .find(|e| e.kind == "archived" && e.file_row == Some(h.id))
        {
            assert_ne!(e.holder.as_deref().and_then(pid_of), Some(h.pid), "{e:?}");
        }
    }
    for h in &held_creates {
        let o = occurrences
            .iter()
            .find(|o| o.id == h.id)
            .expect("held occurrence");
        assert!(
            o.updated_at >= h.until,
            "{o:?} resolved before the lease ran out: {h:?}"
        );
    }

    let counters = sim.counters();
    let summary = format!(
        "{PROCESSES} processes (seed {seed:#x}): {total} kills {kills:?} over {chaos_secs} s; \
         {} faults fired; {} requests; {} meetings in Zoom of {MEETINGS}; {} files archived \
         ({} MiB); archived per process {archived_by:?}, created per process {created_by:?}; \
         taken over after a kill: {} downloads, {} creates",
        counters.faults_fired,
        counters.requests.values().sum::<u64>(),
        meetings.len(),
        rows.len(),
        bytes_total / (1024 * 1024),
        held_files.len(),
        held_creates.len(),
    );
    println!("{summary}");
    assert!(
        !held_files.is_empty(),
        "no kill caught a download: {summary}"
    );
    assert!(archived_by.iter().all(|n| *n > 0), "{summary}");
    assert!(counters.faults_fired >= 10, "{summary}");
    // At least half were made (the rest stayed in doubt until their start passed: never two).
    assert!(meetings.len() * 2 >= MEETINGS, "{summary}");
    reader.close().await;
}

mod postgres_down_for_a_while_the_processes_wait_and_nothing_is_lost {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: scripts/pg-check"]
    async fn postgres() {
        super::postgres_down_for_a_while().await
    }
}

/// Two processes; the server stops while files download and comes back 12 s later. The
/// processes keep running (their steps fail and are tried again), one started meanwhile
/// exits naming the database, and in the end everything is archived once.
async fn postgres_down_for_a_while() {
    let (db, server) = TestDb::postgres_of_its_own().await;
    let Database::Postgres(pg) = &db.database else {
        panic!("a PostgreSQL database");
    };
    let sim = spawn_sim(SimConfig {
        recording_after: Duration::from_secs(2),
        processing_for: Duration::from_secs(2),
        transcript_after: Duration::from_secs(3),
        mp4_size: 48 * 1024 * 1024,
        ..SimConfig::default()
    })
    .await;
    // Slow enough that downloads are in flight when the server goes.
    sim.set_download_rate_per_connection(Some(8 * 1024 * 1024));
    let (entries, starts) = series_schedule(in_secs(6), 3, 2);
    let last_start = *starts.last().expect("starts");
    let archive = tempfile::tempdir().expect("archive dir");
    let config = DaemonToml::run(&sim)
        .set("database", &format!("\"{}\"", pg.url()))
        .set("archive", &format!("\"{}\"", archive.path().display()))
        .set("lease", "\"5s\"")
        .set("create_ahead", "\"1m\"")
        .set("give_up_after", "\"1h\"")
        .meetings(&entries);
    let mut procs: Vec<Daemon> = (0..2).map(|_| spawn_daemon(&config, &[])).collect();
    let reader = db.open().await;

    let in_flight = eventually(HANG, || async {
        db.scalar("SELECT count(*) FROM recording_files WHERE state = 'downloading'")
            .await
            > 0
    })
    .await;
    assert!(in_flight, "no download began\n{}", procs[0].log_tail());
    server.stop();
    let down_until = Instant::now() + Duration::from_secs(12);
    // A process started now cannot open the database: it exits non-zero, naming it.
    let late = procs[0]
        .command(&[])
        .arg("run")
        .output()
        .expect("run zoomd");
    assert!(!late.status.success());
    let said = crate::helpers::text(&late);
    let at = format!("127.0.0.1:{}", pg.url().port().expect("port"));
    assert!(said.contains(&at), "{said}");
    while Instant::now() < down_until {
        for (i, p) in procs.iter().enumerate() {
            assert!(
                p.running(),
                "process {i} exited without its database\n{}",
                p.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.start();

    settle_then_stop(&mut procs, &reader, &sim, last_start, &|| server.log()).await;
    // The outage was met: some step failed on the database and was tried again.
    let logs: String = procs.iter().map(Daemon::logs).collect();
    assert!(logs.contains("database: "), "{logs}");

    assert_sound(&reader, archive.path(), &sim).await;
    let meetings = sim.meetings();
    assert_markers_unique(&meetings);
    assert_eq!(meetings.len(), 3, "{meetings:?}");
    assert_archive_exact(&reader, archive.path(), &sim).await;
    reader.close().await;
}
