//! `zoomd demo`: the whole pipeline against the simulated Zoom on loopback, in a temporary
//! directory, with a schedule of a few meetings 20 seconds apart. Ends by printing what
//! happened and where the archive is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::daemon::{self, Control};
use crate::sim::{Sim, SimConfig};
use crate::store::Store;
use crate::sync::system_clock;

/// Meetings the demo waits for.
const MEETINGS: usize = 3;
/// The demo gives up after this long.
const LIMIT: Duration = Duration::from_secs(110);

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to put the demo's config, database and archive [default: a new temp directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub async fn run(args: &DemoArgs) -> ExitCode {
    match demo(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(super::EXIT_RUNTIME),
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(super::EXIT_RUNTIME)
        }
    }
}

fn demo_dir(args: &DemoArgs) -> std::io::Result<PathBuf> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "zoomd-demo-{}-{}",
            std::process::id(),
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        )),
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

async fn demo(args: &DemoArgs) -> anyhow::Result<bool> {
    let dir = demo_dir(args)?;
    let sim_cfg = SimConfig {
        recording_after: Duration::from_secs(3),
        processing_for: Duration::from_secs(2),
        transcript_after: Duration::from_secs(4),
        mp4_size: 8 * 1024 * 1024,
        m4a_size: 1024 * 1024,
        ..SimConfig::default()
    };
    let sim = Sim::start(sim_cfg.clone()).await?;
    write_private(&dir.join("client_secret"), &sim_cfg.client_secret)?;
    let config_path = dir.join("daemon.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"# zoomd demo: the simulated Zoom runs on loopback for as long as the demo does.
[zoom]
auth = "oauth"
account_id = "{account}"
client_id = "{client}"
client_secret_file = "client_secret"
api_url = "{api}"
oauth_url = "{oauth}"

[daemon]
database = "state.db"
archive = "recordings"
create_ahead = "1m"
poll_every = "2s"
give_up_after = "2m"
downloads = 2
timezone = "Europe/Berlin"

[[meeting]]
key = "demo-lecture"
topic = "Demo lecture: recordings end to end"
host = "me"
cron = "*/20 * * * * *"   # every 20 seconds (6 fields: seconds first)
duration = "1m"
agenda = "A meeting every 20 seconds, recorded to the cloud and archived."
"#,
            account = sim_cfg.account_id,
            client = sim_cfg.client_id,
            api = sim.api_url(),
            oauth = sim.oauth_url(),
        ),
    )?;
    let config = Config::load(&config_path)?;
    println!("zoomd demo in {}", dir.display());
    println!(
        "simulated Zoom at {}; schedule: a meeting every 20 s",
        sim.api_url()
    );
    let ctx = daemon::start(&config, system_clock()).await?;
    let (trigger, shutdown) = crate::shutdown::channel();
    let (_reload_tx, reload) = tokio::sync::mpsc::channel(1);
    let daemon = tokio::spawn(daemon::run(
        config_path.clone(),
        config.clone(),
        ctx.clone(),
        Control { shutdown, reload },
        Some(super::progress::reporter()),
        None,
    ));

    let started = Instant::now();
    let mut last_report = String::new();
    let done = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (complete, report) = progress(&ctx.store, &sim).await?;
        if report != last_report {
            println!("  [{:>3}s] {report}", started.elapsed().as_secs());
            last_report = report;
        }
        if complete {
            break true;
        }
        if started.elapsed() > LIMIT {
            break false;
        }
    };
    trigger.fire();
    if let Err(e) = daemon.await {
        eprintln!("daemon task: {e}");
    }
    let store = Store::open_read_only(&config.daemon.database).await?;
    print_summary(&store, &sim, &config).await?;
    println!();
    println!("archive:  {}", config.daemon.archive.display());
    println!("database: {}", config.daemon.database);
    println!(
        "look inside: sqlite3 {} 'SELECT key, file_type, bytes, path FROM archive'",
        config.daemon.database
    );
    sim.shutdown();
    if !done {
        eprintln!(
            "demo: not every file was archived within {}s",
            LIMIT.as_secs()
        );
    }
    Ok(done)
}

/// Whether the first meetings are fully archived and verified, and a one-line progress.
async fn progress(store: &Store, sim: &Sim) -> anyhow::Result<(bool, String)> {
    let expected = sim.expected_files();
    let archive = store.archive().await?;
    let mut ids: Vec<i64> = sim.meetings().iter().map(|m| m.id).collect();
    ids.sort();
    ids.truncate(MEETINGS);
    let verified = |id: i64| {
        let want: Vec<_> = expected.iter().filter(|e| e.meeting_id == id).collect();
        // Five files per meeting: MP4, M4A, CHAT, TRANSCRIPT (late) and CC.
        want.len() >= 5
            && want.iter().all(|e| {
                archive.iter().any(|a| {
                    a.meeting_uuid == e.uuid && a.sha256.as_deref() == Some(e.sha256.as_str())
                })
            })
    };
    let done = ids.iter().filter(|id| verified(**id)).count();
    let report = format!(
        "{} meetings created, {} files archived, {done}/{MEETINGS} demo meetings complete",
        sim.meetings().len(),
        archive.len()
    );
    Ok((ids.len() == MEETINGS && done == MEETINGS, report))
}

async fn print_summary(store: &Store, sim: &Sim, config: &Config) -> anyhow::Result<()> {
    let expected: BTreeMap<(String, String), String> = sim
        .expected_files()
        .into_iter()
        .map(|e| ((e.uuid, e.key), e.sha256))
        .collect();
    let archive = store.archive().await?;
    let mut by_meeting: BTreeMap<(String, Option<i64>), Vec<_>> = BTreeMap::new();
    for a in &archive {
        by_meeting
            .entry((a.start_local.clone(), a.meeting_id))
            .or_default()
            .push(a);
    }
    println!();
    println!("meetings and their archived files:");
    for ((start, id), files) in &by_meeting {
        println!(
            "  {} meeting {} ({})",
            start,
            id.map_or("?".into(), |i| i.to_string()),
            files.first().and_then(|f| f.key.as_deref()).unwrap_or("")
        );
        for f in files {
            let sha = f.sha256.as_deref().unwrap_or("");
            let key = f.file_id.clone();
            // Id-less files (CC) are known to the sim by their type.
            let want = expected
                .get(&(f.meeting_uuid.clone(), key))
                .or_else(|| expected.get(&(f.meeting_uuid.clone(), f.file_type.clone())));
            let check = match want {
                Some(w) if w == sha => "verified",
                Some(_) => "MISMATCH",
                None => "archived",
            };
            println!(
                "    {:<10} {:>9} bytes  sha256 {}…  {check}  {}",
                f.file_type,
                f.bytes.unwrap_or_default(),
                sha.get(..16).unwrap_or(sha),
                Path::new(&config.daemon.archive.display())
                    .join(f.path.as_deref().unwrap_or(""))
                    .display()
            );
        }
    }
    let now = chrono::Utc::now();
    let upcoming = store.status(now, now, 10).await?.upcoming;
    if !upcoming.is_empty() {
        println!("upcoming (created ahead, not yet held):");
        for u in upcoming {
            println!(
                "  {} {} meeting {} {}",
                u.start_local,
                u.key,
                u.meeting_id.map_or("-".into(), |i| i.to_string()),
                u.join_url.unwrap_or_default()
            );
        }
    }
    Ok(())
}
