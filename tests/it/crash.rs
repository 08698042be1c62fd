//! Crash test: the real `zoomd` binary against the simulated Zoom with random faults on
//! about one request in ten, SIGKILLed at random moments (during creates, polls, downloads,
//! renames and commits) and restarted, again and again. At the end every invariant of
//! DESIGN.md must hold: one occurrence, at most one Zoom meeting; every file of every
//! recording archived with Zoom's digest and nothing partial; a sound database; every
//! occurrence in a final state that matches what happened.
//!
//! The normal run takes about two minutes. `ZOOMD_SOAK=1` runs a longer soak (more
//! meetings, more kills); `ZOOMD_CRASH_SEED=N` replays a run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zoomd::sim::{Route, SimConfig};

use crate::helpers::{
    DaemonToml, assert_archive_exact, assert_markers_unique, assert_occurrences_final,
    assert_sound, chaos_of_every_kind, in_secs, part_files, series_schedule, spawn_daemon,
    spawn_sim,
};

struct Plan {
    meetings: usize,
    /// Seconds between two starts.
    spacing: i64,
    /// Seconds from now to the first start.
    lead: i64,
    /// Kills at least, however long the schedule lasts.
    min_kills: usize,
    mp4_size: u64,
}

fn plan() -> Plan {
    if std::env::var("ZOOMD_SOAK").is_ok_and(|v| v == "1") {
        Plan {
            meetings: 120,
            spacing: 2,
            lead: 15,
            min_kills: 100,
            mp4_size: 8 * 1024 * 1024,
        }
    } else {
        Plan {
            meetings: 32,
            spacing: 2,
            lead: 15,
            min_kills: 20,
            mp4_size: 4 * 1024 * 1024,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_under_chaos_keeps_every_invariant() {
    let plan = plan();
    let seed: u64 = std::env::var("ZOOMD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC0FFEE);
    let mut rng = StdRng::seed_from_u64(seed);
    let sim_cfg = SimConfig {
        recording_after: Duration::from_secs(2),
        processing_for: Duration::from_secs(2),
        transcript_after: Duration::from_secs(3),
        mp4_size: plan.mp4_size,
        m4a_size: 256 * 1024,
        // A stalled body ends (cut short) after 2 s; the daemon's idle timeout is 60 s.
        stall_for: Duration::from_secs(2),
        seed,
        ..SimConfig::default()
    };
    let sim = spawn_sim(sim_cfg).await;
    let (entries, starts) = series_schedule(in_secs(plan.lead), plan.meetings, plan.spacing);
    let last_start = *starts.last().expect("starts");
    sim.set_chaos(Some(chaos_of_every_kind(seed)));
    let mut d = spawn_daemon(
        &DaemonToml::run(&sim)
            .set("create_ahead", "\"12s\"")
            .set("give_up_after", "\"1h\"")
            .meetings(&entries),
        &[],
    );

    // Kill and restart until enough kills happened and the last meeting's recording is
    // under way. Every round ends (its waits are bounded), so this loop does too.
    let began = Instant::now();
    let chaos_until = last_start + chrono::Duration::seconds(8);
    let mut kills: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut total = 0;
    while total < plan.min_kills || Utc::now() < chaos_until {
        let how = match rng.random_range(0..10) {
            0..=4 => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..=3000))).await;
                "random"
            }
            5..=6 => {
                // While a download is in flight (part file on disk), a little into it.
                let until = Instant::now() + Duration::from_secs(3);
                while part_files(&d.archive()).is_empty() && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
                if !part_files(&d.archive()).is_empty() {
                    "download"
                } else {
                    "random"
                }
            }
            7 => {
                // Right as a create reached Zoom (the answer may not have been stored).
                let before = sim.counters().get(Route::CreateMeeting);
                let until = Instant::now() + Duration::from_secs(3);
                while sim.counters().get(Route::CreateMeeting) == before && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if sim.counters().get(Route::CreateMeeting) > before {
                    "create"
                } else {
                    "random"
                }
            }
            8 => {
                // Right as a recording poll reached Zoom.
                let before = sim.counters().get(Route::GetRecordings);
                let until = Instant::now() + Duration::from_secs(3);
                while sim.counters().get(Route::GetRecordings) == before && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if sim.counters().get(Route::GetRecordings) > before {
                    "poll"
                } else {
                    "random"
                }
            }
            _ => {
                // Very early: while the database opens, migrates and requeues.
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
                "startup"
            }
        };
        d.kill9();
        *kills.entry(how).or_default() += 1;
        total += 1;
        d.start();
    }
    let chaos_secs = began.elapsed().as_secs();

    // Calm: no more faults; let the daemon finish, then stop it properly.
    sim.set_chaos(None);
    sim.clear_faults();
    let all_transcripts = last_start + chrono::Duration::seconds(15);
    d.wait_for("everything settled after the chaos", || async {
        Utc::now() > all_transcripts && d.settled(&sim).await
    })
    .await;
    d.stop().await;

    // ---- the invariants ----
    let store = d.store().await.expect("database");
    // A sound database, disk as it says, nothing partial, nothing leaked while everything
    // went wrong.
    let bytes_total = assert_sound(&store, &d.archive(), &sim).await;
    let occurrences = store
        .list_occurrences(&Default::default(), Utc::now())
        .await
        .expect("occurrences");
    let meetings = sim.meetings();

    // One occurrence, at most one Zoom meeting, and zoomd deleted none of them.
    let by_marker = assert_markers_unique(&meetings);
    for m in &meetings {
        assert!(!m.deleted, "zoomd deleted {} ({:?})", m.id, m.agenda);
    }
    // Every scheduled occurrence is known, each in a final state consistent with Zoom.
    assert_eq!(
        occurrences.len(),
        plan.meetings,
        "{:?}",
        occurrences.iter().map(|o| &o.marker).collect::<Vec<_>>()
    );
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for o in &occurrences {
        *states
            .entry(format!("{}/{}", o.state, o.recording_state))
            .or_default() += 1;
    }
    assert_occurrences_final(&occurrences, &by_marker);

    // Every file of every recording, archived with the sim's digest; nothing else on disk.
    let expected = sim.expected_files();
    let archive = assert_archive_exact(&store, &d.archive(), &sim).await;
    let recorded: usize = by_marker.len();
    assert_eq!(
        expected
            .iter()
            .map(|e| e.meeting_id)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        recorded,
        "every meeting zoomd made has its recording"
    );
    store.close().await;

    let report = sim.report();
    let counters = sim.counters();
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for (_, label) in &report.faults_fired {
        *fired.entry(label.clone()).or_default() += 1;
    }
    let summary = format!(
        "crash test (seed {seed:#x}): {total} kills {kills:?} over {chaos_secs} s; {} daemon runs; \
         {} faults fired {fired:?}; {} requests; {} occurrences scheduled -> {states:?}; \
         {} meetings in Zoom; {} files archived ({} MiB); {} create calls",
        d.runs,
        counters.faults_fired,
        counters.requests.values().sum::<u64>(),
        plan.meetings,
        meetings.len(),
        archive.len(),
        bytes_total / (1024 * 1024),
        counters.get(Route::CreateMeeting),
    );
    println!("{summary}");
    for o in occurrences.iter().filter(|o| o.state.as_str() != "created") {
        println!(
            "  {} {}: {}",
            o.marker,
            o.state,
            o.last_error.as_deref().unwrap_or("")
        );
    }
    // The run exercised what it claims to: faults fired, most meetings made and archived.
    assert!(counters.faults_fired >= 20, "{summary}");
    assert!(meetings.len() * 4 >= plan.meetings * 3, "{summary}");
}
