//! zoomd's performance goals, measured end to end with the release binary, each against a
//! baseline run on the same machine in the same run (A/B alternated, medians of
//! `ZOOMD_BENCH_REPS`, default 3). Prints one table; `scripts/bench` runs it (after the
//! `schedule` criterion bench, whose figures it reads into the table).
//!
//! - download: `zoomd sync` (a child process; sha256, fsync and rename included) fetching a
//!   recording from the sim's loopback download host, vs `curl -s -o FILE SIGNED_URL` of the
//!   same file and vs curl followed by `sync FILE` (the same durability): on tmpfs
//!   (`/dev/shm`: the network path and hashing alone) and on disk, for 512 MiB and 2 GiB
//!   (`ZOOMD_BENCH_DL_MIB=512,2048`); against a sim that caps each connection at 40 MiB/s
//!   (1 GiB, 4 connections vs curl's one stream); 4 connections vs 1 uncapped. Peak RSS of
//!   the zoomd process (`wait4` ru_maxrss, cross-checked by sampling VmHWM) for 256 MiB,
//!   512 MiB, 1 GiB and 2 GiB files.
//! - idle: `zoomd run` with 1,000 entries and nothing due, RSS and CPU over
//!   `ZOOMD_BENCH_IDLE_SECS` (default 60) vs a trivial process (this binary in
//!   `--idle-baseline` mode: a tokio runtime that sleeps) measured in the same window.
//! - check: `zoomd check --next 10` over 10,000 entries vs the same command over 1 entry.
//! - status: `zoomd status` on a database with 100,000 recording files vs `sqlite3` running
//!   the same queries; their plans go to `target/bench/status-plans.txt`.
//! - API economy: `zoomd run` archiving meetings from the sim; creates, polls and token
//!   requests per meeting against the bounds in README ("Performance").
//!
//! - pace: 200 creates over 10 hosts at 200 ms a request (8 in flight vs 1 in flight, and vs
//!   the serial 200 x 0.2 s); 2,000 creates over 50 hosts at 150 ms and 20/s (vs the ideal
//!   N / rate and the serial time); a poll pass over 1,000 watched meetings (requests per
//!   second achieved vs the budget). Each is one `zoomd sync`; peak RSS and CPU of it.
//!
//! - s3: 2 GiB from the sim into SeaweedFS on loopback (`zoomd sync`, `archive = "s3://..."`)
//!   vs `aws s3 cp` of the same bytes from a local file and vs zoomd into a directory; peak
//!   RSS into the bucket at 256 MiB, 1 GiB and 2 GiB. Needs `weed` (scripts/s3-check installs
//!   it) and `aws` (awscli).
//!
//! - processes: 1, 2 and 3 `zoomd run` sharing one PostgreSQL (a throw-away cluster) and one
//!   archive at 150 ms a request: the account scan's downloads (8 MiB/s per connection)
//!   and 240 creates under one 20/s budget; work rate against one process, and what the
//!   coordination costs (Zoom requests, database transactions per request).
//!
//! `ZOOMD_BENCH_ONLY=download,s3,idle,check,status,api,pace,processes,scan,webhook,schedule`
//! runs a subset;
//! `ZOOMD_BENCH_DL_MIB=512,2048` sets the throughput file sizes. Never run by `cargo test`.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use common::median;
use zoomd::sim::{Route, Sim, SimConfig};

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// the table

struct Row {
    item: String,
    goal: String,
    measured: String,
    baseline: String,
    ratio: String,
    pass: Option<bool>,
}

fn row(item: &str, goal: &str, measured: String, baseline: String, ratio: String) -> Row {
    Row {
        item: item.into(),
        goal: goal.into(),
        measured,
        baseline,
        ratio,
        pass: None,
    }
}

impl Row {
    fn pass(mut self, ok: bool) -> Row {
        self.pass = Some(ok);
        self
    }
}

fn print_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.item.clone(),
                r.goal.clone(),
                r.measured.clone(),
                r.baseline.clone(),
                r.ratio.clone(),
                match r.pass {
                    Some(true) => "pass".into(),
                    Some(false) => "FAIL".into(),
                    None => "info".into(),
                },
            ]
        })
        .collect();
    let head = ["item", "goal", "measured", "baseline", "ratio", "result"];
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::from("|");
        for (i, x) in c.iter().enumerate() {
            let _ = write!(s, " {x:<width$} |", width = w[i]);
        }
        s
    };
    let mut out = String::new();
    out.push_str(&line(&head.map(String::from)));
    out.push('\n');
    out.push('|');
    for wi in w {
        out.push_str(&"-".repeat(wi + 2));
        out.push('|');
    }
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// processes

/// What one child process took.
#[derive(Debug, Clone, Copy)]
struct Measured {
    wall: Duration,
    /// Peak RSS of the child alone, KiB: `ru_maxrss` from `wait4` or the sampled VmHWM,
    /// whichever is larger.
    maxrss_kib: u64,
    /// The highest VmHWM seen by sampling /proc/PID/status every 5 ms, KiB.
    hwm_sampled_kib: u64,
    /// utime + stime.
    cpu: Duration,
    ok: bool,
}

fn status_field_kib(pid: i32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a running process.
fn proc_cpu(pid: i32) -> Option<Duration> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Reaps `child` with `wait4` (never through `Child::wait`), sampling VmHWM meanwhile.
fn reap(child: Child, started: Instant) -> Measured {
    let pid = child.id() as i32;
    let stop = Arc::new(AtomicBool::new(false));
    let hwm = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, hwm) = (stop.clone(), hwm.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(k) = status_field_kib(pid, "VmHWM:") {
                    hwm.fetch_max(k, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 writes it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    drop(child);
    let sampled = hwm.load(Ordering::Relaxed);
    Measured {
        wall,
        // The larger of the two: the sampler can see a few pages more than ru_maxrss says.
        maxrss_kib: (ru.ru_maxrss.max(0) as u64).max(sampled),
        hwm_sampled_kib: sampled,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        ok: r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

fn run(cmd: &mut Command) -> Measured {
    let started = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    reap(child, started)
}

fn zoomd_bin() -> PathBuf {
    std::env::var_os("ZOOMD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_zoomd")))
}

fn zoomd(config: &Path, args: &[&str], log: &Path) -> Command {
    let mut cmd = Command::new(zoomd_bin());
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("ZOOMD_CLIENT_SECRET", SimConfig::default().client_secret)
        // ZOOMD_BENCH_LOG (e.g. "zoomd=debug") to see where a run spends its time.
        .env(
            "ZOOMD_LOG",
            std::env::var("ZOOMD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("ZOOMD_CONFIG")
        .env_remove("STATE_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).expect("log file"));
    cmd
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

fn sync_disks() {
    let _ = Command::new("sync").status();
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// download

fn daemon_section(extra: &str) -> String {
    // An `archive` in `extra` (object storage) replaces the directory.
    let archive = if extra.contains("archive =") {
        ""
    } else {
        "archive = \"recordings\"\n"
    };
    format!("[daemon]\ndatabase = \"state.db\"\n{archive}timezone = \"UTC\"\n{extra}\n")
}

fn cron_at(t: DateTime<Utc>) -> String {
    t.format("%-S %-M %-H %-d %-m *").to_string()
}

fn whole_second_in(secs: i64) -> DateTime<Utc> {
    let now = Utc::now();
    now - TimeDelta::nanoseconds(i64::from(now.timestamp_subsec_nanos())) + TimeDelta::seconds(secs)
}

fn files_under(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else if let Ok(m) = e.metadata() {
                out.push((p, m.len()));
            }
        }
    }
}

/// A meeting of its own, created by one `zoomd sync`, forced to have its recording; the
/// timed `zoomd sync` then polls it and downloads its files (the MP4 is the big one).
fn zoomd_download(sim: &Sim, work: &Path, run_no: usize, extra: &str) -> (Measured, i64) {
    zoomd_download_env(sim, work, run_no, extra, &[])
}

/// [`zoomd_download`] with more variables for zoomd (object storage's).
fn zoomd_download_env(
    sim: &Sim,
    work: &Path,
    run_no: usize,
    extra: &str,
    env: &[(String, String)],
) -> (Measured, i64) {
    let dir = work.join(format!("zoomd-{run_no}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("run dir");
    let start = whole_second_in(2);
    let topic = format!("Download bench {run_no}");
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}\n{}\n[[meeting]]\nkey = \"dl{run_no}\"\ntopic = \"{topic}\"\nhost = \"me\"\ncron = \"{}\"\ntimezone = \"UTC\"\nduration = \"1m\"\n",
            common::zoom_section(&sim.api_url(), &sim.oauth_url()),
            daemon_section(&format!(
                "create_ahead = \"1m\"\npoll_every = \"1s\"\ngive_up_after = \"2h\"\ndownloads = 2\n{extra}"
            )),
            cron_at(start)
        ),
    )
    .expect("config");
    let created = run(zoomd(&config, &["sync"], &dir.join("sync-1.log")).envs(env.iter().cloned()));
    assert!(
        created.ok,
        "zoomd sync (create) failed; see {}",
        dir.display()
    );
    let id = sim
        .meetings()
        .into_iter()
        .find(|m| m.topic == topic)
        .expect("meeting created")
        .id;
    let wait = (start + TimeDelta::milliseconds(300) - Utc::now())
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(wait);
    sim.force_recording(id).expect("force recording");
    let m = run(zoomd(&config, &["sync"], &dir.join("sync-2.log")).envs(env.iter().cloned()));
    let mut files = Vec::new();
    files_under(&dir.join("recordings"), &mut files);
    let size = sim.config().mp4_size;
    let got = files
        .iter()
        .any(|(p, len)| *len == size && p.extension().is_some_and(|e| e == "mp4"))
        || archived_in_db(&dir.join("state.db"), size);
    assert!(
        m.ok && got,
        "zoomd sync did not archive the {size}-byte MP4; see {}",
        dir.display()
    );
    if let Some(keep) = std::env::var_os("ZOOMD_BENCH_KEEP_LOGS") {
        let to = Path::new(&keep).join(format!("zoomd-{run_no}"));
        let _ = fs::create_dir_all(&to);
        for log in ["sync-1.log", "sync-2.log"] {
            let _ = fs::copy(dir.join(log), to.join(log));
        }
    }
    let _ = fs::remove_dir_all(&dir);
    sync_disks();
    (m, id)
}

/// Whether the database records an archived MP4 of `size` bytes (an object-storage archive
/// has no files to look at).
fn archived_in_db(db: &Path, size: u64) -> bool {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(format!(
            "SELECT count(*) FROM recording_files WHERE state = 'archived' AND file_type = 'MP4' AND bytes = {size}"
        ))
        .output();
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
}

/// The signed URL the sim's `download_url` for the meeting's MP4 redirects to.
fn signed_url(rt: &tokio::runtime::Runtime, sim: &Sim, meeting_id: i64) -> String {
    rt.block_on(async {
        let token = sim.issue_token();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let rec: serde_json::Value = http
            .get(format!(
                "{}/meetings/{meeting_id}/recordings",
                sim.api_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get recordings")
            .json()
            .await
            .expect("recordings json");
        let url = rec["recording_files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["file_type"] == "MP4")
            .and_then(|f| f["download_url"].as_str())
            .expect("MP4 download_url")
            .to_owned();
        let resp = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("download_url");
        resp.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned()
    })
}

/// The baselines a zoomd run is set beside.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zoomd,
    /// `curl -s -o FILE`: the network path and the file system alone.
    Curl,
    /// curl, then `sync FILE`: durability included.
    CurlSync,
    /// curl, then `openssl dgst -sha256 FILE`: the same work as zoomd's (fetch, store, hash)
    /// with the fastest common tools, one after the other, without the durability. (A pipe
    /// through `tee` is slower here, and coreutils' sha256sum has no SHA extensions.)
    CurlHash,
}

fn curl_download(
    rt: &tokio::runtime::Runtime,
    sim: &Sim,
    meeting_id: i64,
    work: &Path,
    kind: Kind,
) -> Measured {
    let url = signed_url(rt, sim, meeting_id);
    let out = work.join("curl.mp4");
    let _ = fs::remove_file(&out);
    let script = match kind {
        Kind::CurlSync => "curl -s -o \"$1\" \"$2\" && sync \"$1\"",
        Kind::CurlHash => "curl -s -o \"$1\" \"$2\" && openssl dgst -sha256 \"$1\" >/dev/null",
        _ => "curl -s -o \"$1\" \"$2\"",
    };
    let m = run(Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&out)
        .arg(&url));
    let len = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    assert!(m.ok && len == sim.config().mp4_size, "curl got {len} bytes");
    let _ = fs::remove_file(&out);
    sync_disks();
    m
}

fn start_sim(rt: &tokio::runtime::Runtime, mp4_size: u64) -> Sim {
    rt.block_on(Sim::start(SimConfig {
        mp4_size,
        m4a_size: 64 * 1024,
        ..SimConfig::default()
    }))
    .expect("sim")
}

/// What every series of one bench shares.
struct Runs<'a> {
    rt: &'a tokio::runtime::Runtime,
    reps: usize,
    /// Numbers each zoomd run's directory.
    run_no: usize,
}

/// One A/B/C series: zoomd, curl, and curl followed by `sync FILE`, alternated, into `dir`.
struct Series {
    zoomd: Vec<Measured>,
    /// Per alternated rep: curl's time / zoomd's (a throughput ratio).
    vs_curl: Vec<f64>,
    vs_curl_sync: Vec<f64>,
    vs_curl_hash: Vec<f64>,
    curl: Vec<Measured>,
    curl_sync: Vec<Measured>,
    curl_hash: Vec<Measured>,
}

impl Series {
    fn mib_per_s(ms: &[Measured], size: u64) -> f64 {
        median(
            &ms.iter()
                .map(|m| size as f64 / MIB as f64 / m.wall.as_secs_f64())
                .collect::<Vec<_>>(),
        )
    }

    fn rss(&self) -> (f64, f64) {
        (
            median(
                &self
                    .zoomd
                    .iter()
                    .map(|m| mib(m.maxrss_kib))
                    .collect::<Vec<_>>(),
            ),
            median(
                &self
                    .zoomd
                    .iter()
                    .map(|m| mib(m.hwm_sampled_kib))
                    .collect::<Vec<_>>(),
            ),
        )
    }
}

/// `reps` alternated runs (A B C, then C B A, ...) of zoomd with `extra` `[daemon]` settings
/// and of the `baselines` (curl always), on `sim`, in `dir`.
fn series(
    b: &mut Runs<'_>,
    sim: &Sim,
    dir: &Path,
    extra: &str,
    baselines: &[Kind],
    label: &str,
) -> Series {
    let (rt, reps) = (b.rt, b.reps);
    let run_no = &mut b.run_no;
    fs::create_dir_all(dir).expect("bench dir");
    let mut out = Series {
        zoomd: Vec::new(),
        vs_curl: Vec::new(),
        vs_curl_sync: Vec::new(),
        vs_curl_hash: Vec::new(),
        curl: Vec::new(),
        curl_sync: Vec::new(),
        curl_hash: Vec::new(),
    };
    let mut meeting = None;
    let mut kinds = vec![Kind::Zoomd, Kind::Curl];
    for k in baselines {
        if !kinds.contains(k) {
            kinds.push(*k);
        }
    }
    for rep in 0..reps {
        let mut order = kinds.clone();
        if rep % 2 == 1 {
            order.reverse();
            // Rep 0 starts with zoomd, so curl always has a meeting to fetch.
        }
        let (mut tz, mut tc, mut tcs, mut tch) = (0.0, 0.0, 0.0, 0.0);
        for which in order {
            match which {
                Kind::Zoomd => {
                    *run_no += 1;
                    let (m, id) = zoomd_download(sim, dir, *run_no, extra);
                    meeting = Some(id);
                    tz = m.wall.as_secs_f64();
                    out.zoomd.push(m);
                }
                kind => {
                    let m = curl_download(rt, sim, meeting.expect("meeting"), dir, kind);
                    let (t, ms) = match kind {
                        Kind::CurlSync => (&mut tcs, &mut out.curl_sync),
                        Kind::CurlHash => (&mut tch, &mut out.curl_hash),
                        _ => (&mut tc, &mut out.curl),
                    };
                    *t = m.wall.as_secs_f64();
                    ms.push(m);
                }
            }
        }
        out.vs_curl.push(tc / tz);
        if kinds.contains(&Kind::CurlSync) {
            out.vs_curl_sync.push(tcs / tz);
        }
        if kinds.contains(&Kind::CurlHash) {
            out.vs_curl_hash.push(tch / tz);
        }
        let mut line = format!("download {label} rep {rep}: zoomd {tz:.2} s, curl {tc:.2} s");
        if kinds.contains(&Kind::CurlSync) {
            line += &format!(", curl+sync {tcs:.2} s");
        }
        if kinds.contains(&Kind::CurlHash) {
            line += &format!(", curl+sha256 {tch:.2} s");
        }
        eprintln!(
            "{line}, zoomd peak RSS {:.1} MiB",
            mib(out.zoomd.last().map_or(0, |m| m.maxrss_kib))
        );
    }
    out
}

/// The download path: on tmpfs against curl (the network path and hashing alone), on disk
/// against curl + sync (durability included), against a per-connection cap (parallel
/// ranges against one stream), and peak RSS by file size.
fn bench_download(rt: &tokio::runtime::Runtime, work: &Path, reps: usize, rows: &mut Vec<Row>) {
    let sizes: Vec<u64> = std::env::var("ZOOMD_BENCH_DL_MIB")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![512, 2048]);
    let shm = Path::new("/dev/shm");
    let tmpfs = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("zoomd-bench-")
            .tempdir_in(shm)
            .ok()
    } else {
        None
    };
    let disk = work.join("disk");
    let mut b = Runs {
        rt,
        reps,
        run_no: 0,
    };
    let mut rss: Vec<(u64, f64, f64)> = Vec::new();
    let mut cpu_rows = Vec::new();
    for &size_mib in &sizes {
        let size = size_mib * MIB;
        let sim = start_sim(rt, size);
        if let Some(t) = &tmpfs {
            let label = format!("{size_mib} MiB tmpfs");
            let s = series(
                &mut b,
                &sim,
                t.path(),
                "",
                &[Kind::CurlSync, Kind::CurlHash],
                &label,
            );
            let (tz, tc) = (
                Series::mib_per_s(&s.zoomd, size),
                Series::mib_per_s(&s.curl, size),
            );
            let (rp, rs) = (median(&s.vs_curl), median(&s.vs_curl_sync));
            rows.push(
                row(
                    &format!("download {size_mib} MiB, tmpfs: zoomd vs curl"),
                    "ratio >= 0.9",
                    format!("{tz:.0} MiB/s"),
                    format!("{tc:.0} MiB/s (curl -s -o)"),
                    format!("{rp:.2}"),
                )
                .pass(rp >= 0.9),
            );
            rows.push(
                row(
                    &format!("download {size_mib} MiB, tmpfs: vs curl + sync"),
                    "ratio >= 0.9",
                    format!("{tz:.0} MiB/s"),
                    format!(
                        "{:.0} MiB/s (curl; sync FILE)",
                        Series::mib_per_s(&s.curl_sync, size)
                    ),
                    format!("{rs:.2}"),
                )
                .pass(rs >= 0.9),
            );
            rows.push(row(
                &format!("download {size_mib} MiB, tmpfs: vs curl + openssl sha256"),
                "-",
                format!("{tz:.0} MiB/s"),
                format!(
                    "{:.0} MiB/s (curl; openssl dgst FILE)",
                    Series::mib_per_s(&s.curl_hash, size)
                ),
                format!("{:.2}", median(&s.vs_curl_hash)),
            ));
            let (r, sampled) = s.rss();
            rss.push((size_mib, r, sampled));
            let cpu = median(
                &s.zoomd
                    .iter()
                    .map(|m| m.cpu.as_secs_f64() / m.wall.as_secs_f64())
                    .collect::<Vec<_>>(),
            );
            let ccpu = median(
                &s.curl
                    .iter()
                    .map(|m| m.cpu.as_secs_f64() / m.wall.as_secs_f64())
                    .collect::<Vec<_>>(),
            );
            cpu_rows.push(row(
                &format!("download {size_mib} MiB, tmpfs: CPU (cores)"),
                "-",
                format!("{cpu:.2}"),
                format!("{ccpu:.2} (curl)"),
                format!("{:.2}", cpu / ccpu),
            ));
        }
        let label = format!("{size_mib} MiB disk");
        let s = series(&mut b, &sim, &disk, "", &[Kind::CurlSync], &label);
        let rs = median(&s.vs_curl_sync);
        rows.push(
            row(
                &format!("download {size_mib} MiB, disk: zoomd vs curl + sync"),
                "ratio >= 1.0",
                format!("{:.0} MiB/s", Series::mib_per_s(&s.zoomd, size)),
                format!(
                    "{:.0} MiB/s (curl; sync FILE)",
                    Series::mib_per_s(&s.curl_sync, size)
                ),
                format!("{rs:.2}"),
            )
            .pass(rs >= 1.0),
        );
        rows.push(row(
            &format!("download {size_mib} MiB, disk: vs curl (no sync)"),
            "-",
            format!("{:.0} MiB/s", Series::mib_per_s(&s.zoomd, size)),
            format!("{:.0} MiB/s (curl -s -o)", Series::mib_per_s(&s.curl, size)),
            format!("{:.2}", median(&s.vs_curl)),
        ));
        drop(sim);
    }
    rows.extend(cpu_rows);

    // One stream against segments, uncapped (what the ranges cost or gain on loopback).
    if let Some(t) = &tmpfs {
        let size_mib = sizes[0];
        let sim = start_sim(rt, size_mib * MIB);
        let one = series(
            &mut b,
            &sim,
            t.path(),
            "connections_per_file = 1",
            &[],
            "one stream",
        );
        let segs = series(&mut b, &sim, t.path(), "", &[], "segments");
        let (a, b) = (
            Series::mib_per_s(&segs.zoomd, size_mib * MIB),
            Series::mib_per_s(&one.zoomd, size_mib * MIB),
        );
        rows.push(row(
            &format!("download {size_mib} MiB, tmpfs, uncapped: 4 connections vs 1"),
            "-",
            format!("{a:.0} MiB/s"),
            format!("{b:.0} MiB/s (connections_per_file = 1)"),
            format!("{:.2}", a / b),
        ));
    }

    // A CDN edge's per-connection cap: 1 GiB at 40 MiB/s per connection.
    {
        let size = 1024 * MIB;
        let sim = start_sim(rt, size);
        sim.set_download_rate_per_connection(Some(40 * MIB));
        let dir = tmpfs
            .as_ref()
            .map_or(disk.clone(), |t| t.path().to_path_buf());
        let s = series(&mut b, &sim, &dir, "", &[], "capped");
        let r = median(&s.vs_curl);
        rows.push(
            row(
                "download 1 GiB at 40 MiB/s per connection: 4 connections vs curl",
                "ratio >= 3.0",
                format!("{:.0} MiB/s", Series::mib_per_s(&s.zoomd, size)),
                format!("{:.0} MiB/s (one stream)", Series::mib_per_s(&s.curl, size)),
                format!("{r:.2}"),
            )
            .pass(r >= 3.0),
        );
    }

    // Peak RSS by size: 256 MiB and 1 GiB here, with the series' sizes beside them.
    for sz in [256u64, 1024] {
        if rss.iter().any(|r| r.0 == sz) {
            continue;
        }
        let sim = start_sim(rt, sz * MIB);
        let dir = tmpfs
            .as_ref()
            .map_or(disk.clone(), |t| t.path().to_path_buf());
        let mut ms = Vec::new();
        for _ in 0..reps {
            b.run_no += 1;
            ms.push(zoomd_download(&sim, &dir, b.run_no, "").0);
        }
        rss.push((
            sz,
            median(&ms.iter().map(|m| mib(m.maxrss_kib)).collect::<Vec<_>>()),
            median(
                &ms.iter()
                    .map(|m| mib(m.hwm_sampled_kib))
                    .collect::<Vec<_>>(),
            ),
        ));
    }
    rss.sort_by_key(|r| r.0);
    let smallest = rss[0].1;
    for (sz, r, sampled) in &rss {
        rows.push(
            row(
                &format!("download {sz} MiB: zoomd peak RSS"),
                "<= 32 MiB",
                format!("{r:.1} MiB (VmHWM sampled {sampled:.1})"),
                format!("{smallest:.1} MiB ({} MiB file)", rss[0].0),
                format!("{:.2}", r / smallest),
            )
            .pass(*r <= 32.0),
        );
    }
    let spread = rss.iter().map(|r| r.1).fold(f64::MIN, f64::max)
        - rss.iter().map(|r| r.1).fold(f64::MAX, f64::min);
    rows.push(
        row(
            "download: peak RSS flat across sizes",
            "spread <= 2 MiB",
            format!("{spread:.1} MiB"),
            "-".into(),
            "-".into(),
        )
        .pass(spread <= 2.0),
    );
}

// ---------------------------------------------------------------------------------------------
// object storage

const S3_BUCKET: &str = "zoomd-bench";

/// A SeaweedFS server (`weed server -s3`) on loopback with room for several 2 GiB objects.
struct Weed {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[path = "../tests/it/helpers/weed.rs"]
mod weed;

fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "bench-key"),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn aws(endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("aws");
    cmd.args(["--endpoint-url", endpoint])
        .args(args)
        .envs(s3_env(endpoint))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn start_weed(work: &Path) -> Option<Weed> {
    let bin = weed::find()?;
    let dir = tempfile::Builder::new()
        .prefix("weed-")
        .tempdir_in(work)
        .ok()?;
    let log = fs::File::create(dir.path().join("weed.log")).ok()?;
    let s3_port = weed::free_port();
    let child = weed::Server {
        weed: &bin,
        dir: dir.path(),
        key_id: "bench-key",
        secret: "bench-secret",
        s3_port,
        volume_mb: 1024,
        volumes: 40,
    }
    .command()
    .ok()?
    .stdin(Stdio::null())
    .stdout(log.try_clone().ok()?)
    .stderr(log)
    .spawn()
    .ok()?;
    let weed = Weed {
        child,
        endpoint: format!("http://127.0.0.1:{s3_port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if aws(&weed.endpoint, &["s3", "mb", &format!("s3://{S3_BUCKET}")])
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(weed);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

/// Archiving into object storage: 2 GiB from the sim into SeaweedFS on loopback with
/// zoomd, against `aws s3 cp` of the same bytes from a local file, and against zoomd into a
/// local directory; peak RSS of zoomd into the bucket at 256 MiB, 1 GiB and 2 GiB.
fn bench_s3(rt: &tokio::runtime::Runtime, work: &Path, reps: usize, rows: &mut Vec<Row>) {
    let Some(weed) = start_weed(work) else {
        eprintln!("s3: no SeaweedFS (scripts/s3-check installs it) or it did not start; skipped");
        rows.push(row(
            "object storage",
            "-",
            "skipped: no SeaweedFS".into(),
            "-".into(),
            "-".into(),
        ));
        return;
    };
    let env = s3_env(&weed.endpoint);
    let extra = format!("archive = \"s3://{S3_BUCKET}/zoom\"");
    let size_mib = 2048u64;
    let size = size_mib * MIB;
    let sim = start_sim(rt, size);
    let local = tempfile::Builder::new()
        .prefix("zoomd-bench-s3-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            work
        })
        .expect("source dir");
    let source = local.path().join("source.mp4");
    let mut run_no = 1000;
    let (mut z3, mut zl, mut cp) = (Vec::new(), Vec::new(), Vec::new());
    let (mut r_cp, mut r_local) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let order: [u8; 3] = if rep % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        let (mut t3, mut tl, mut tc) = (0.0, 0.0, 0.0);
        for which in order {
            match which {
                0 => {
                    run_no += 1;
                    let (m, id) = zoomd_download_env(&sim, work, run_no, &extra, &env);
                    t3 = m.wall.as_secs_f64();
                    z3.push(m);
                    if !source.exists() {
                        // The same bytes as a local file, for the client's upload.
                        let url = signed_url(rt, &sim, id);
                        let ok = Command::new("curl")
                            .args(["-s", "-o"])
                            .arg(&source)
                            .arg(&url)
                            .status()
                            .is_ok_and(|s| s.success());
                        assert!(ok, "curl of the source file");
                    }
                }
                1 => {
                    run_no += 1;
                    let (m, _) = zoomd_download(&sim, work, run_no, "");
                    tl = m.wall.as_secs_f64();
                    zl.push(m);
                }
                _ => {
                    if !source.exists() {
                        continue;
                    }
                    let key = format!("s3://{S3_BUCKET}/aws/{rep}.mp4");
                    let m = run(aws(
                        &weed.endpoint,
                        &["s3", "cp", &source.display().to_string(), &key],
                    )
                    .arg("--only-show-errors"));
                    assert!(m.ok, "aws s3 cp failed");
                    tc = m.wall.as_secs_f64();
                    cp.push(m);
                }
            }
        }
        if tc > 0.0 {
            r_cp.push(tc / t3);
        }
        r_local.push(tl / t3);
        eprintln!(
            "s3 rep {rep}: zoomd into s3 {t3:.2} s, zoomd into a directory {tl:.2} s, aws s3 cp {tc:.2} s, zoomd peak RSS {:.1} MiB",
            mib(z3.last().map_or(0, |m| m.maxrss_kib))
        );
    }
    let thr = |ms: &[Measured]| {
        median(
            &ms.iter()
                .map(|m| size as f64 / MIB as f64 / m.wall.as_secs_f64())
                .collect::<Vec<_>>(),
        )
    };
    rows.push(row(
        &format!("s3: {size_mib} MiB from the sim into SeaweedFS: zoomd vs aws s3 cp"),
        "-",
        format!("{:.0} MiB/s", thr(&z3)),
        format!("{:.0} MiB/s (aws s3 cp of a local file)", thr(&cp)),
        format!("{:.2}", median(&r_cp)),
    ));
    rows.push(row(
        &format!("s3: {size_mib} MiB: into SeaweedFS vs into a directory"),
        "-",
        format!("{:.0} MiB/s", thr(&z3)),
        format!("{:.0} MiB/s (zoomd, archive on disk)", thr(&zl)),
        format!("{:.2}", median(&r_local)),
    ));
    drop(sim);
    let mut rss = vec![(
        size_mib,
        median(&z3.iter().map(|m| mib(m.maxrss_kib)).collect::<Vec<_>>()),
    )];
    for sz in [256u64, 1024] {
        let sim = start_sim(rt, sz * MIB);
        let mut ms = Vec::new();
        for _ in 0..reps {
            run_no += 1;
            ms.push(zoomd_download_env(&sim, work, run_no, &extra, &env).0);
        }
        rss.push((
            sz,
            median(&ms.iter().map(|m| mib(m.maxrss_kib)).collect::<Vec<_>>()),
        ));
    }
    rss.sort_by_key(|r| r.0);
    for (sz, r) in &rss {
        rows.push(row(
            &format!("s3: {sz} MiB into SeaweedFS: zoomd peak RSS"),
            "flat",
            format!("{r:.1} MiB"),
            format!("{:.1} MiB ({} MiB file)", rss[0].1, rss[0].0),
            format!("{:.2}", r / rss[0].1),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// idle

/// The idle baseline: a tokio runtime (as zoomd's) that sleeps until killed.
fn idle_baseline() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

fn wait_for_log(path: &Path, needle: &str, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn bench_idle(rt: &tokio::runtime::Runtime, work: &Path, rows: &mut Vec<Row>) {
    let secs: u64 = std::env::var("ZOOMD_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let sim = start_sim(rt, 64 * 1024);
    let dir = work.join("idle");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("idle dir");
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}\n{}\n{}",
            common::zoom_section(&sim.api_url(), &sim.oauth_url()),
            daemon_section("create_ahead = \"1m\"\npoll_every = \"5m\""),
            common::quiet_entries(1000, Utc::now())
        ),
    )
    .expect("config");
    let log = dir.join("run.log");
    let mut cmd = zoomd(&config, &["run"], &log);
    cmd.env("ZOOMD_LOG", "info");
    let mut daemon = cmd.spawn().expect("spawn zoomd run");
    assert!(
        wait_for_log(&log, "zoomd running", Duration::from_secs(60)),
        "zoomd run did not start; see {}",
        log.display()
    );
    let mut base = Command::new(std::env::current_exe().expect("own path"))
        .arg("--idle-baseline")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn baseline");
    // Let both settle (the baseline's runtime start, zoomd's first pass) before the window.
    std::thread::sleep(Duration::from_secs(1));
    let (zp, bp) = (daemon.id() as i32, base.id() as i32);
    let (z0, b0) = (proc_cpu(zp).expect("stat"), proc_cpu(bp).expect("stat"));
    let t0 = Instant::now();
    // Three windows: the median window and the whole one are both reported.
    let mut windows = Vec::new();
    let mut last = z0;
    for i in 1..=3u64 {
        let until = Duration::from_secs(secs) * i as u32 / 3;
        std::thread::sleep(until.saturating_sub(t0.elapsed()));
        let now = proc_cpu(zp).expect("stat");
        windows.push((now - last).as_secs_f64() / (Duration::from_secs(secs) / 3).as_secs_f64());
        last = now;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (z1, b1) = (proc_cpu(zp).expect("stat"), proc_cpu(bp).expect("stat"));
    let z_hwm = status_field_kib(zp, "VmHWM:").unwrap_or(0);
    let z_rss = status_field_kib(zp, "VmRSS:").unwrap_or(0);
    let b_hwm = status_field_kib(bp, "VmHWM:").unwrap_or(0);
    signal(daemon.id(), libc::SIGTERM);
    let stopped = daemon.wait().map(|s| s.success()).unwrap_or(false);
    let _ = base.kill();
    let _ = base.wait();
    let zcpu = (z1 - z0).as_secs_f64() / elapsed * 100.0;
    let bcpu = (b1 - b0).as_secs_f64() / elapsed * 100.0;
    let calls = sim.counters().requests.values().sum::<u64>();
    eprintln!(
        "idle: windows {:?} % of a core; zoomd RSS now {:.1} MiB; {calls} API calls; clean stop {stopped}",
        windows
            .iter()
            .map(|w| format!("{:.3}", w * 100.0))
            .collect::<Vec<_>>(),
        mib(z_rss)
    );
    rows.push(
        row(
            &format!("idle {secs} s, 1000 entries: peak RSS"),
            "<= 20 MiB",
            format!("{:.1} MiB (now {:.1})", mib(z_hwm), mib(z_rss)),
            format!("{:.1} MiB (idle tokio process)", mib(b_hwm)),
            format!("{:.2}", z_hwm as f64 / b_hwm.max(1) as f64),
        )
        .pass(mib(z_hwm) <= 20.0),
    );
    rows.push(
        row(
            &format!("idle {secs} s, 1000 entries: CPU"),
            "<= 0.2% of a core",
            format!("{zcpu:.3}% (median third {:.3}%)", median(&windows) * 100.0),
            format!("{bcpu:.3}% (idle tokio process)"),
            "-".into(),
        )
        .pass(zcpu <= 0.2 && stopped),
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// check

fn bench_check(work: &Path, reps: usize, rows: &mut Vec<Row>) {
    let dir = work.join("check");
    fs::create_dir_all(&dir).expect("check dir");
    let zoom = common::zoom_section("https://api.zoom.us/v2", "https://zoom.us/oauth/token");
    let big = dir.join("big.toml");
    let one = dir.join("one.toml");
    fs::write(&big, format!("{zoom}\n{}", common::mixed_entries(10_000))).expect("config");
    fs::write(&one, format!("{zoom}\n{}", common::mixed_entries(1))).expect("config");
    let check = |cfg: &Path| {
        let mut cmd = zoomd(cfg, &["check", "--next", "10"], &dir.join("check.err"));
        cmd.stdout(fs::File::create(dir.join("check.out")).expect("out"));
        let m = run(&mut cmd);
        assert!(m.ok, "zoomd check failed; see {}", dir.display());
        m
    };
    let lines = |cfg: &Path| {
        check(cfg);
        fs::read_to_string(dir.join("check.out"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let out_lines = lines(&big);
    let (mut b, mut o) = (Vec::new(), Vec::new());
    for rep in 0..reps.max(5) {
        if rep % 2 == 0 {
            b.push(check(&big));
            o.push(check(&one));
        } else {
            o.push(check(&one));
            b.push(check(&big));
        }
    }
    let tb = median(&b.iter().map(|m| m.wall.as_secs_f64()).collect::<Vec<_>>());
    let to = median(&o.iter().map(|m| m.wall.as_secs_f64()).collect::<Vec<_>>());
    let rss = median(&b.iter().map(|m| mib(m.maxrss_kib)).collect::<Vec<_>>());
    rows.push(
        row(
            "check --next 10, 10000 entries",
            "<= 0.5 s",
            format!("{:.0} ms ({out_lines} lines, {rss:.0} MiB peak)", tb * 1e3),
            format!("{:.0} ms (same, 1 entry)", to * 1e3),
            format!("{:.1}", tb / to),
        )
        .pass(tb <= 0.5),
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// status

/// Fills a database with 20,000 past meetings (100,000 recording files, 100 failed, some
/// queued), 1,000 upcoming meetings and 300,000 events.
fn build_status_db(rt: &tokio::runtime::Runtime, db: &Path) {
    rt.block_on(async {
        let store = zoomd::store::Store::open(db).await.expect("open store");
        store.close().await;
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("pool");
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let stmts = [
            // 20,000 past meetings, one every 30 minutes back from now, 200 series.
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000),
             s(i, t) AS (SELECT i, strftime('%Y-%m-%dT%H:%M:%SZ', ?1, '-' || (i * 30) || ' minutes') FROM n)
             INSERT INTO occurrences (id, key, start_utc, start_local, timezone, duration_min, host,
                 topic, settings_json, marker, state, meeting_id, meeting_uuid, join_url,
                 recording_state, polls, created_at, updated_at)
             SELECT i, 'series-' || (i % 200), t, t, 'UTC', 60, 'me', 'Series ' || (i % 200), '{}',
                 'zoomd:series-' || (i % 200) || ':' || t, 'created', 80000000000 + i,
                 'uuid-' || i || '==', 'https://zoom.us/j/' || i,
                 CASE WHEN i % 500 = 0 THEN 'missing' WHEN i < 40 THEN 'found' ELSE 'done' END,
                 12, t, t FROM s",
            // 1,000 upcoming meetings, one an hour from now on.
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000),
             s(i, t) AS (SELECT i, strftime('%Y-%m-%dT%H:%M:%SZ', ?1, '+' || i || ' hours') FROM n)
             INSERT INTO occurrences (id, key, start_utc, start_local, timezone, duration_min, host,
                 topic, settings_json, marker, state, meeting_id, recording_state, next_poll_at,
                 created_at, updated_at)
             SELECT 100000 + i, 'series-' || (i % 200), t, t, 'UTC', 60, 'me', 'Series ' || (i % 200),
                 '{}', 'zoomd:series-' || (i % 200) || ':' || t,
                 CASE WHEN i % 100 = 0 THEN 'deferred' ELSE 'created' END,
                 CASE WHEN i % 100 = 0 THEN NULL ELSE 90000000000 + i END, 'waiting', t, ?1, ?1 FROM s",
            "INSERT INTO recordings (id, occurrence_id, meeting_uuid, meeting_id, start_time, total_size,
                 state, last_polled_at, first_seen_at, updated_at)
             SELECT id, id, meeting_uuid, meeting_id, start_utc, 1500000000,
                 CASE WHEN recording_state = 'found' THEN 'ready' ELSE 'archived' END,
                 start_utc, start_utc, start_utc
             FROM occurrences WHERE id <= 20000 AND recording_state != 'missing'",
            // Five files per recording: 100 failed, the newest recordings' files queued.
            "WITH t(j, ft, ext) AS (VALUES (0, 'MP4', 'MP4'), (1, 'M4A', 'M4A'), (2, 'CHAT', 'TXT'),
                 (3, 'TRANSCRIPT', 'VTT'), (4, 'CC', 'VTT'))
             INSERT INTO recording_files (id, recording_id, file_id, file_type, file_extension,
                 recording_type, recording_start, recording_end, file_size, download_url, state,
                 attempts, next_attempt_at, path, bytes, sha256, last_error, archived_at,
                 first_seen_at, updated_at)
             SELECT r.id * 5 + t.j, r.id, 'file-' || (r.id * 5 + t.j), t.ft, t.ext, 'shared_screen',
                 r.start_time, r.start_time, 300000000,
                 'https://zoom.us/rec/download/' || (r.id * 5 + t.j),
                 CASE WHEN (r.id * 5 + t.j) % 1000 = 0 THEN 'failed'
                      WHEN r.state = 'ready' THEN 'queued' ELSE 'archived' END,
                 CASE WHEN (r.id * 5 + t.j) % 1000 = 0 THEN 8 ELSE 1 END,
                 CASE WHEN r.state = 'ready' THEN r.start_time END,
                 'Series/' || r.start_time || '/' || t.ft || '.' || lower(t.ext),
                 300000000, printf('%064x', r.id * 5 + t.j),
                 CASE WHEN (r.id * 5 + t.j) % 1000 = 0 THEN 'HTTP 500' END,
                 strftime('%Y-%m-%dT%H:%M:%SZ', r.start_time, '+2 hours'),
                 r.start_time, strftime('%Y-%m-%dT%H:%M:%SZ', r.start_time, '+2 hours')
             FROM recordings r, t",
            // Fifteen events per past meeting.
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 14)
             INSERT INTO events (at, kind, key, occurrence_id, meeting_id, message)
             SELECT o.start_utc,
                 CASE WHEN n.i = 0 THEN 'created' WHEN n.i = 1 THEN 'recording-found'
                      WHEN o.id % 500 = 0 AND n.i = 2 THEN 'failed' ELSE 'archived' END,
                 o.key, o.id, o.meeting_id, 'event ' || n.i || ' of ' || o.key
             FROM occurrences o, n WHERE o.id <= 20000",
        ];
        for sql in stmts {
            sqlx::query(sql)
                .bind(&now)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{e}: {sql}"));
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
            .expect("checkpoint");
        pool.close().await;
    });
}

fn bench_status(
    rt: &tokio::runtime::Runtime,
    work: &Path,
    reps: usize,
    rows: &mut Vec<Row>,
    plans_out: &Path,
) {
    let dir = work.join("status");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("status dir");
    let db = dir.join("state.db");
    let t = Instant::now();
    build_status_db(rt, &db);
    eprintln!(
        "status: database built in {:.1} s ({} MiB)",
        t.elapsed().as_secs_f64(),
        fs::metadata(&db).map(|m| m.len() / MIB).unwrap_or(0)
    );
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}\n{}",
            common::zoom_section("https://api.zoom.us/v2", "https://zoom.us/oauth/token"),
            daemon_section("")
        ),
    )
    .expect("config");
    let now_t = Utc::now();
    let since = now_t
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    // The very queries `zoomd status` runs, values written in, limit 5 (its default).
    let queries = zoomd::store::queries::status_sql(now_t, since, 5);
    let sql_file = dir.join("status.sql");
    fs::write(
        &sql_file,
        queries
            .iter()
            .map(|(_, q)| format!("{q};\n"))
            .collect::<String>(),
    )
    .expect("sql");
    let mut plans = String::new();
    for (name, q) in &queries {
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(format!("EXPLAIN QUERY PLAN {q};"))
            .output();
        let text = out
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_else(|e| format!("(sqlite3: {e})\n"));
        let _ = writeln!(plans, "{name}:\n{text}");
    }
    let _ = fs::write(plans_out, &plans);
    let status = || {
        let mut cmd = zoomd(&config, &["status"], &dir.join("status.err"));
        cmd.stdout(fs::File::create(dir.join("status.out")).expect("out"));
        let m = run(&mut cmd);
        assert!(m.ok, "zoomd status failed; see {}", dir.display());
        m
    };
    let sqlite = || {
        let out = dir.join("sqlite3.out");
        let m = run(Command::new("sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg(format!(".read {}", sql_file.display()))
            .stdout(fs::File::create(&out).expect("out")));
        let lines = fs::read_to_string(&out).map_or(0, |s| s.lines().count());
        assert!(m.ok && lines > 0, "sqlite3 failed or printed nothing");
        m
    };
    status(); // warm the page cache for both
    let (mut z, mut s) = (Vec::new(), Vec::new());
    for rep in 0..reps.max(5) {
        if rep % 2 == 0 {
            z.push(status());
            s.push(sqlite());
        } else {
            s.push(sqlite());
            z.push(status());
        }
    }
    let tz = median(&z.iter().map(|m| m.wall.as_secs_f64()).collect::<Vec<_>>());
    let ts = median(&s.iter().map(|m| m.wall.as_secs_f64()).collect::<Vec<_>>());
    rows.push(
        row(
            "status, 100000 recording files",
            "<= 100 ms",
            format!("{:.1} ms", tz * 1e3),
            format!("{:.1} ms (sqlite3, same queries)", ts * 1e3),
            format!("{:.2}", tz / ts),
        )
        .pass(tz <= 0.1),
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// API economy

fn bench_api(rt: &tokio::runtime::Runtime, work: &Path, rows: &mut Vec<Row>) {
    const MEETINGS: usize = 4;
    const POLL_EVERY: i64 = 2;
    let sim = rt
        .block_on(Sim::start(SimConfig {
            mp4_size: 1024 * 1024,
            ..SimConfig::default()
        }))
        .expect("sim");
    let dir = work.join("api");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("api dir");
    let starts: Vec<DateTime<Utc>> = (0..MEETINGS)
        .map(|i| whole_second_in(5 + 2 * i as i64))
        .collect();
    let mut meetings = String::new();
    for (i, s) in starts.iter().enumerate() {
        let _ = write!(
            meetings,
            "[[meeting]]\nkey = \"api{i}\"\ntopic = \"API economy {i}\"\nhost = \"me\"\ncron = \"{}\"\ntimezone = \"UTC\"\nduration = \"1m\"\n\n",
            cron_at(*s)
        );
    }
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}\n{}\n{meetings}",
            common::zoom_section(&sim.api_url(), &sim.oauth_url()),
            daemon_section(&format!(
                "create_ahead = \"1m\"\npoll_every = \"{POLL_EVERY}s\"\ngive_up_after = \"2h\""
            ))
        ),
    )
    .expect("config");
    let started = Utc::now();
    let mut daemon = zoomd(&config, &["run"], &dir.join("run.log"))
        .spawn()
        .expect("spawn zoomd run");
    // MP4, M4A, CHAT, CC and TRANSCRIPT per meeting.
    let want = MEETINGS * 5;
    let t = Instant::now();
    let mut archived = 0;
    while t.elapsed() < Duration::from_secs(120) {
        let mut files = Vec::new();
        files_under(&dir.join("recordings"), &mut files);
        archived = files
            .iter()
            .filter(|(p, _)| p.extension().is_none_or(|e| e != "part"))
            .count();
        if archived >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(daemon.id(), libc::SIGTERM);
    let _ = daemon.wait();
    let stop = Utc::now();
    assert!(
        archived >= want,
        "only {archived} of {want} files archived; see {}",
        dir.display()
    );
    let c = sim.counters();
    let n = MEETINGS as f64;
    // Polls the back-off allows per meeting from its start until the stop, each costing one
    // PastInstances and one GetRecordings per instance (one instance each here).
    let every = TimeDelta::seconds(POLL_EVERY);
    let poll_bound: u64 = starts
        .iter()
        .map(|s| {
            let end = *s + TimeDelta::minutes(1);
            let (mut at, mut k) = (*s, 0u64);
            while at <= stop {
                k += 1;
                at += zoomd::sync::recordings::next_delay(at, end, every);
            }
            k * 2
        })
        .sum();
    let creates = c.get(Route::CreateMeeting);
    let polls = c.get(Route::GetRecordings) + c.get(Route::PastInstances);
    let tokens = c.get(Route::Token);
    let minutes = (stop - started).num_seconds() as f64 / 60.0;
    let token_bound = (minutes / 55.0).ceil().max(1.0);
    let downloads = c.get(Route::Download);
    eprintln!(
        "api: {MEETINGS} meetings over {:.0} s; requests {:?}",
        minutes * 60.0,
        c.requests
    );
    rows.push(
        row(
            "API: creates per meeting",
            "= 1",
            format!("{:.2}", creates as f64 / n),
            "1".into(),
            format!("{:.2}", creates as f64 / n),
        )
        .pass(creates == MEETINGS as u64),
    );
    rows.push(
        row(
            &format!("API: polls per meeting ({POLL_EVERY}s cadence)"),
            "<= back-off bound",
            format!("{:.1} (GetRecordings+PastInstances)", polls as f64 / n),
            format!(
                "{:.1} (bound over {:.0} s)",
                poll_bound as f64 / n,
                minutes * 60.0
            ),
            format!("{:.2}", polls as f64 / poll_bound as f64),
        )
        .pass(polls <= poll_bound),
    );
    rows.push(
        row(
            "API: token requests",
            "<= 1 per 55 min",
            format!("{tokens} in {minutes:.1} min"),
            format!("{token_bound:.0}"),
            format!("{:.2}", tokens as f64 / token_bound),
        )
        .pass(tokens as f64 <= token_bound),
    );
    rows.push(
        row(
            "API: download requests per file",
            "= 1",
            format!("{:.2}", downloads as f64 / want as f64),
            "1".into(),
            format!("{:.2}", downloads as f64 / want as f64),
        )
        .pass(downloads == want as u64),
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// pace: the request budget and concurrent steps

fn pace_users(n: usize) -> Vec<zoomd::sim::SimUser> {
    (0..n)
        .map(|i| zoomd::sim::SimUser {
            id: format!("benchuser{i:02}AAAAAAAAAAA"),
            email: format!("host{i}@example.org"),
            timezone: "UTC".into(),
            status: "active",
        })
        .collect()
}

/// `n` one-off meetings spread over `hosts` hosts, `spacing` minutes apart from `first`.
fn pace_meetings(hosts: usize, n: usize, first: DateTime<Utc>, spacing: i64) -> String {
    let mut out = String::new();
    for i in 0..n {
        let at = first + TimeDelta::minutes(spacing * i as i64);
        let _ = write!(
            out,
            "[[meeting]]\nkey = \"p{i}\"\ntopic = \"Paced {i}\"\nhost = \"host{}@example.org\"\nat = \"{}\"\ntimezone = \"UTC\"\nduration = \"1m\"\n\n",
            i % hosts,
            at.format("%Y-%m-%dT%H:%M")
        );
    }
    out
}

fn pace_sim(rt: &tokio::runtime::Runtime, hosts: usize) -> Sim {
    rt.block_on(Sim::start(SimConfig {
        users: pace_users(hosts),
        ..SimConfig::default()
    }))
    .expect("sim")
}

/// A fresh directory with a config of `meetings` for `sim` and `[zoom]` lines `zoom`.
fn pace_config(work: &Path, name: &str, sim: &Sim, meetings: &str, zoom: &str) -> PathBuf {
    let dir = work.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("pace dir");
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}{zoom}\n\n{}\n{meetings}",
            common::zoom_section(&sim.api_url(), &sim.oauth_url()),
            daemon_section("create_ahead = \"3d\"")
        ),
    )
    .expect("config");
    config
}

fn next_whole_minute(after: DateTime<Utc>) -> DateTime<Utc> {
    let secs = after.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60) + 60, 0).expect("a minute")
}

/// `zoomd sync` on `config` (log beside it), which must succeed.
fn sync_ok(config: &Path) -> Measured {
    let m = run(&mut zoomd(
        config,
        &["sync"],
        &config.with_file_name("sync.log"),
    ));
    assert!(m.ok, "zoomd sync failed: {}", config.display());
    m
}

/// Files under `dir` that are archived (no `.part`).
fn archived_files(dir: &Path) -> usize {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    files
        .iter()
        .filter(|(p, _)| p.extension().is_none_or(|e| e != "part"))
        .count()
}

/// API requests the sim answered (tokens and the signed file host aside).
fn api_requests(sim: &Sim) -> u64 {
    sim.counters()
        .requests
        .iter()
        .filter(|(r, _)| !matches!(**r, Route::Token | Route::SignedDownload))
        .map(|(_, n)| *n)
        .sum()
}

/// One meeting's recording archived by `zoomd run` with the default `poll_every` (5 m),
/// found by a webhook or by polling: seconds from the recording being ready to its five
/// files archived, and the API requests of the run.
fn webhook_run(rt: &tokio::runtime::Runtime, work: &Path, hook: bool) -> (f64, u64) {
    const SECRET: &str = "bench-webhook-secret";
    let sim = rt.block_on(Sim::start(SimConfig::default())).expect("sim");
    let name = if hook { "hook" } else { "poll" };
    let dir = work.join(format!("webhook-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    // Polling starts at the scheduled start: a meeting 20 s ahead is polled at once, finds
    // nothing (the sim records it later), and is polled again one poll_every on.
    let start = whole_second_in(20);
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}\n{}\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[[meeting]]\nkey = \"w\"\ntopic = \"Webhook bench\"\nhost = \"me\"\ncron = \"{}\"\ntimezone = \"UTC\"\nduration = \"1m\"\n",
            common::zoom_section(&sim.api_url(), &sim.oauth_url()),
            daemon_section("create_ahead = \"1h\""),
            cron_at(start)
        ),
    )
    .expect("config");
    let mut daemon = zoomd(&config, &["run"], &dir.join("run.log"))
        .env("ZOOMD_WEBHOOK_SECRET", SECRET)
        .spawn()
        .expect("spawn zoomd run");
    let t = Instant::now();
    while sim.meetings().is_empty() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let meeting = sim.meetings().first().map(|m| m.id).expect("created");
    // Let the first poll (at the start) pass and find nothing.
    while Utc::now() < start + TimeDelta::seconds(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.force_recording(meeting).expect("recording");
    let ready = Instant::now();
    if hook {
        let (event, _) = sim
            .webhook_event("recording.completed", meeting)
            .expect("event");
        let url = format!("http://127.0.0.1:{port}/zoom/webhook");
        let d = rt
            .block_on(sim.send_webhook(&url, SECRET, &event))
            .expect("send");
        assert_eq!(d.status, 200, "webhook refused: {}", d.body);
    }
    while archived_files(&dir.join("recordings")) < 5 && ready.elapsed() < Duration::from_secs(400)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = ready.elapsed().as_secs_f64();
    assert!(
        archived_files(&dir.join("recordings")) >= 5,
        "not archived; see {}",
        dir.display()
    );
    signal(daemon.id(), libc::SIGTERM);
    let _ = daemon.wait();
    (took, api_requests(&sim))
}

/// Polls of one meeting's whole watch (start to `give_up_after` past its end) at the
/// defaults, without webhooks and with one that delivered the files `after` the start.
fn watch_polls(after: Option<TimeDelta>) -> usize {
    let start: DateTime<Utc> = "2026-12-07T09:00:00Z".parse().expect("instant");
    let end = start + TimeDelta::hours(1);
    let give_up = end + TimeDelta::hours(72);
    let every = TimeDelta::minutes(5);
    let mut now = start;
    let mut polls = 0;
    while now < give_up {
        polls += 1;
        let next = now + zoomd::sync::recordings::next_delay(now, end, every);
        now = match after {
            // The webhook came before this poll: the next one is an hour later.
            Some(a) if now < start + a && next >= start + a => {
                start + a + zoomd::sync::recordings::MAX_POLL_DELAY
            }
            _ => next,
        };
    }
    polls
}

fn bench_webhook(rt: &tokio::runtime::Runtime, work: &Path, rows: &mut Vec<Row>) {
    let (hook_s, hook_calls) = webhook_run(rt, work, true);
    let (poll_s, poll_calls) = webhook_run(rt, work, false);
    eprintln!(
        "webhook: {hook_s:.2} s, {hook_calls} calls; polling: {poll_s:.1} s, {poll_calls} calls"
    );
    rows.push(row(
        "webhook: recording ready -> 5 files archived (poll_every 5m)",
        "seconds, not poll_every",
        format!("{hook_s:.2} s by webhook"),
        format!("{poll_s:.1} s by polling (the next poll after the ready recording)"),
        format!("{:.4} of polling", hook_s / poll_s),
    ));
    let with = watch_polls(Some(TimeDelta::minutes(70)));
    let without = watch_polls(None);
    rows.push(row(
        "webhook: API calls per archived meeting",
        "fewer polls",
        format!("{hook_calls} in the run (create, downloads); {with} polls over the whole watch"),
        format!("{poll_calls} in the run; {without} polls over the whole watch"),
        format!("{:.2} of the polls", with as f64 / without as f64),
    ));
}

/// A directory with a config that scans every user of `sim` (`[recordings]` lines `scan`).
fn scan_config(work: &Path, name: &str, sim: &Sim, scan: &str) -> PathBuf {
    let dir = work.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scan dir");
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}requests_per_second = 20\nmax_in_flight = 8\n\n{}\n[recordings]\nusers = \"*\"\n{scan}\n",
            common::zoom_section(&sim.api_url(), &sim.oauth_url()),
            daemon_section("downloads = 16")
        ),
    )
    .expect("config");
    config
}

fn bench_scan(rt: &tokio::runtime::Runtime, work: &Path, rows: &mut Vec<Row>) {
    let latency = Duration::from_millis(150);
    let since = (Utc::now() - TimeDelta::days(201)).date_naive();
    let history = |users: usize, per_user: usize| {
        let sim = pace_sim(rt, users);
        sim.set_latency(latency);
        let now = sim.now();
        for u in pace_users(users) {
            sim.add_recording_history(
                &u.email,
                now - TimeDelta::days(200),
                now - TimeDelta::hours(1),
                per_user,
            )
            .expect("history");
        }
        sim
    };
    let listing_requests = |sim: &Sim| {
        let c = sim.counters();
        c.get(Route::ListRecordings) + c.get(Route::ListUsers)
    };
    // 1. The backfill's listing: 50 users x 200 recordings over 200 days (7 month windows
    //    each), nothing to download (a file type the sim never makes), 150 ms a request.
    let sim = history(50, 200);
    let config = scan_config(
        work,
        "scan-list",
        &sim,
        &format!("since = \"{since}\"\nfile_types = [\"TIMELINE\"]"),
    );
    let m = sync_ok(&config);
    let requests = listing_requests(&sim) as f64;
    let recordings = 50.0 * 200.0;
    let took = m.wall.as_secs_f64();
    // The scan's listings are Zoom's medium category: two thirds of the budget.
    let medium = 20.0 * zoomd::zoom::MEDIUM_SHARE;
    let ideal = requests / medium;
    eprintln!(
        "scan-list: {took:.1} s, {requests} listing requests, max per second {}, max in flight {}",
        sim.counters().max_per_second,
        sim.max_in_flight()
    );
    rows.push(row(
        "scan: backfill listing, 50 users x 200 recordings, 150 ms",
        "requests per recording << 1; wall near requests / medium budget",
        format!(
            "{took:.1} s, {requests} requests ({:.3} per recording); peak RSS {:.1} MiB",
            requests / recordings,
            mib(m.maxrss_kib)
        ),
        format!("ideal {ideal:.1} s at {medium:.1}/s"),
        format!("{:.2} of ideal", took / ideal),
    ));

    // 2. A whole backfill, files too: 50 users x 4 recordings (1,000 small files).
    let sim = history(50, 4);
    let config = scan_config(work, "scan-all", &sim, &format!("since = \"{since}\""));
    let m = sync_ok(&config);
    let files = sim.expected_files().len() as f64;
    let api = api_requests(&sim);
    let took = m.wall.as_secs_f64();
    let listing = listing_requests(&sim) as f64;
    // Listings at the medium share, each download's API hop at the whole budget.
    let ideal = listing / medium + (api as f64 - listing) / 20.0;
    eprintln!("scan-all: {took:.1} s, {files} files, {api} API requests");
    rows.push(row(
        "scan: backfill with files, 50 users x 4 recordings (1,000 files), 150 ms",
        "wall near the budget's ideal",
        format!(
            "{took:.1} s, {api} API requests ({:.2} per recording); peak RSS {:.1} MiB",
            api as f64 / 200.0,
            mib(m.maxrss_kib)
        ),
        format!("ideal {ideal:.1} s"),
        format!("{:.2} of ideal", took / ideal),
    ));
}

// ---------------------------------------------------------------------------------------------
// several processes on one PostgreSQL

#[path = "../tests/it/helpers/pg_cluster.rs"]
mod pg_cluster;

/// What `n` `zoomd run` processes sharing one database did until the work was done.
struct Shared {
    wall: Duration,
    /// utime + stime of all processes.
    cpu: Duration,
    /// Zoom API requests (tokens and the signed file host aside), and token requests.
    api: u64,
    tokens: u64,
    /// Transactions the database committed or rolled back (each statement outside a
    /// transaction is one).
    xacts: u64,
}

/// Starts `n` `zoomd run` on `config` (a database in `cluster`), waits until `done`, stops
/// them (SIGTERM, each must exit 0) and reads what it cost.
fn shared_run(
    cluster: &pg_cluster::Cluster,
    database: &str,
    config: &Path,
    sim: &Sim,
    n: usize,
    done: &dyn Fn() -> bool,
) -> Shared {
    let started = Instant::now();
    let children: Vec<Child> = (0..n)
        .map(|i| {
            zoomd(
                config,
                &["run"],
                &config.with_file_name(format!("run-{i}.log")),
            )
            .spawn()
            .expect("spawn zoomd run")
        })
        .collect();
    let limit = Instant::now() + Duration::from_secs(600);
    while !done() {
        assert!(
            Instant::now() < limit,
            "{n} processes: not done in 10 minutes: {}",
            config.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = started.elapsed();
    let mut cpu = Duration::ZERO;
    for c in children {
        signal(c.id(), libc::SIGTERM);
        let m = reap(c, Instant::now());
        assert!(m.ok, "zoomd run did not exit 0: {}", config.display());
        cpu += m.cpu;
    }
    let xacts = cluster
        .psql(
            "postgres",
            &format!(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'"
            ),
        )
        .parse()
        .unwrap_or(0);
    Shared {
        wall,
        cpu,
        api: api_requests(sim),
        tokens: sim.counters().get(Route::Token),
        xacts,
    }
}

/// A config for processes sharing `database` and one archive under `dir`.
fn shared_config(dir: &Path, sim: &Sim, url: &str, daemon: &str, rest: &str) -> PathBuf {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("bench dir");
    let config = dir.join("daemon.toml");
    fs::write(
        &config,
        format!(
            "{}requests_per_second = 20\nmax_in_flight = 8\n\n[daemon]\ndatabase = \"{url}\"\narchive = \"{}\"\ntimezone = \"UTC\"\n{daemon}\n\n{rest}",
            common::zoom_section(&sim.api_url(), &sim.oauth_url()),
            dir.join("recordings").display(),
        ),
    )
    .expect("config");
    config
}

fn bench_processes(rt: &tokio::runtime::Runtime, work: &Path, reps: usize, rows: &mut Vec<Row>) {
    if !Path::new("/usr/lib/postgresql").exists() && std::env::var_os("PG_BIN").is_none() {
        rows.push(row(
            "several processes",
            "needs PostgreSQL",
            "skipped: no /usr/lib/postgresql (scripts/pg-check installs it)".into(),
            String::new(),
            String::new(),
        ));
        return;
    }
    let cluster = pg_cluster::Cluster::start_new();
    let latency = Duration::from_millis(150);
    let mut next_db = 0;
    let mut database = || {
        next_db += 1;
        let name = format!("bench{next_db}");
        cluster.psql("postgres", &format!("CREATE DATABASE {name}"));
        (name.clone(), cluster.url(&name))
    };
    let counts = [1usize, 2, 3];

    // 1. Downloads: the account scan's backfill of 12 users x 5 recordings (8 MiB MP4s),
    //    each connection capped at 8 MiB/s as Zoom's download host caps it; two downloads
    //    per process. More processes, more connections: this part scales.
    let since = (Utc::now() - TimeDelta::days(40)).date_naive();
    let mut dl: Vec<Vec<(f64, Shared)>> = Vec::new();
    dl.resize_with(counts.len(), Vec::new);
    for _ in 0..reps {
        for (k, &n) in counts.iter().enumerate() {
            let sim = rt
                .block_on(Sim::start(SimConfig {
                    users: pace_users(12),
                    mp4_size: 8 * MIB,
                    m4a_size: MIB,
                    ..SimConfig::default()
                }))
                .expect("sim");
            sim.set_latency(latency);
            sim.set_download_rate_per_connection(Some(8 * MIB));
            let now = sim.now();
            for u in pace_users(12) {
                sim.add_recording_history(
                    &u.email,
                    now - TimeDelta::days(30),
                    now - TimeDelta::hours(1),
                    5,
                )
                .expect("history");
            }
            let files = sim.expected_files().len();
            let bytes: u64 = sim.expected_files().iter().map(|f| f.size).sum();
            let (name, url) = database();
            let config = shared_config(
                &work.join(format!("procs-dl-{n}")),
                &sim,
                &url,
                "downloads = 2\nconnections_per_file = 1",
                &format!("[recordings]\nusers = \"*\"\nsince = \"{since}\"\n"),
            );
            let archived = || {
                // Fails until the processes have migrated the new database.
                cluster
                    .try_psql(
                        &name,
                        "SELECT count(*) FROM recording_files WHERE state = 'archived'",
                    )
                    .ok()
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| n >= files)
            };
            let r = shared_run(&cluster, &name, &config, &sim, n, &archived);
            eprintln!(
                "processes-dl n={n}: {:.1} s, {files} files, {} MiB, {} API, {} tokens, {} xacts, cpu {:.1} s",
                r.wall.as_secs_f64(),
                bytes / MIB,
                r.api,
                r.tokens,
                r.xacts,
                r.cpu.as_secs_f64()
            );
            dl[k].push((bytes as f64 / MIB as f64 / r.wall.as_secs_f64(), r));
        }
    }

    // 2. Creates: 240 meetings over 12 hosts at 150 ms a request, 20 requests a second for
    //    the whole account. The budget is shared: this part cannot scale.
    let first = next_whole_minute(Utc::now()) + TimeDelta::hours(2);
    let meetings = pace_meetings(12, 240, first, 5);
    let mut cr: Vec<Vec<(f64, Shared)>> = Vec::new();
    cr.resize_with(counts.len(), Vec::new);
    for _ in 0..reps {
        for (k, &n) in counts.iter().enumerate() {
            let sim = pace_sim(rt, 12);
            sim.set_latency(latency);
            let (name, url) = database();
            let config = shared_config(
                &work.join(format!("procs-cr-{n}")),
                &sim,
                &url,
                "create_ahead = \"3d\"",
                &meetings,
            );
            let created = || sim.meetings().len() >= 240;
            let r = shared_run(&cluster, &name, &config, &sim, n, &created);
            eprintln!(
                "processes-cr n={n}: {:.1} s, {} API, {} tokens, {} xacts, cpu {:.1} s, max per second {}",
                r.wall.as_secs_f64(),
                r.api,
                r.tokens,
                r.xacts,
                r.cpu.as_secs_f64(),
                sim.counters().max_per_second
            );
            cr[k].push((240.0 / r.wall.as_secs_f64(), r));
        }
    }
    cluster.remove();

    let med = |runs: &[(f64, Shared)], f: &dyn Fn(&(f64, Shared)) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<f64>>())
    };
    let rate = |runs: &[(f64, Shared)]| med(runs, &|r| r.0);
    let api = |runs: &[(f64, Shared)]| med(runs, &|r| r.1.api as f64);
    let per_request =
        |runs: &[(f64, Shared)]| med(runs, &|r| r.1.xacts as f64 / r.1.api.max(1) as f64);
    for (k, &n) in counts.iter().enumerate().skip(1) {
        rows.push(row(
            &format!(
                "{n} processes: downloads (12 users x 5 recordings, 8 MiB/s per connection, 150 ms)"
            ),
            "scales with processes (each adds its downloads)",
            format!("{:.1} MiB/s", rate(&dl[k])),
            format!("1 process {:.1} MiB/s", rate(&dl[0])),
            format!("{:.2}x", rate(&dl[k]) / rate(&dl[0])),
        ));
        rows.push(row(
            &format!("{n} processes: creates (240 over 12 hosts, 20/s for the account, 150 ms)"),
            "flat: one request budget for the account",
            format!("{:.1} creates/s", rate(&cr[k])),
            format!("1 process {:.1} creates/s", rate(&cr[0])),
            format!("{:.2}x", rate(&cr[k]) / rate(&cr[0])),
        ));
        rows.push(row(
            &format!("{n} processes: coordination cost"),
            "few extra Zoom requests",
            format!(
                "{:.0} API requests downloading, {:.0} creating; {:.1} and {:.1} db transactions per request",
                api(&dl[k]),
                api(&cr[k]),
                per_request(&dl[k]),
                per_request(&cr[k])
            ),
            format!(
                "1 process {:.0} and {:.0}; {:.1} and {:.1}",
                api(&dl[0]),
                api(&cr[0]),
                per_request(&dl[0]),
                per_request(&cr[0])
            ),
            format!(
                "{:.2}x and {:.2}x requests",
                api(&dl[k]) / api(&dl[0]),
                api(&cr[k]) / api(&cr[0])
            ),
        ));
    }
}

fn bench_pace(rt: &tokio::runtime::Runtime, work: &Path, rows: &mut Vec<Row>) {
    // 1. 200 creates over 10 hosts at 200 ms a request: concurrent within the budget
    //    against the same binary with one request in flight (serial), A/B.
    let latency = Duration::from_millis(200);
    let first = next_whole_minute(Utc::now()) + TimeDelta::hours(2);
    let meetings = pace_meetings(10, 200, first, 5);
    let wall = |in_flight: usize| {
        let sim = pace_sim(rt, 10);
        sim.set_latency(latency);
        let zoom = format!("requests_per_second = 20\nmax_in_flight = {in_flight}");
        let config = pace_config(
            work,
            &format!("pace200-{in_flight}"),
            &sim,
            &meetings,
            &zoom,
        );
        let m = run(&mut zoomd(
            &config,
            &["sync"],
            &config.with_file_name("sync.log"),
        ));
        assert!(m.ok, "zoomd sync failed: {}", config.display());
        let c = sim.counters();
        assert_eq!(sim.meetings().len(), 200, "every meeting created");
        assert!(c.max_per_second <= 20, "{} in one second", c.max_per_second);
        eprintln!(
            "pace200 in_flight={in_flight}: {:.1} s, max in flight {}, max per second {}",
            m.wall.as_secs_f64(),
            sim.max_in_flight(),
            c.max_per_second
        );
        m.wall.as_secs_f64()
    };
    let concurrent = wall(8);
    let serial_measured = wall(1);
    let serial = 200.0 * latency.as_secs_f64();
    rows.push(
        row(
            "pace: 200 creates, 10 hosts, 200 ms, 20/s",
            "<= 0.5 x serial (200 x 0.2 s)",
            format!("{concurrent:.1} s (8 in flight)"),
            format!("{serial:.0} s; measured 1 in flight: {serial_measured:.1} s"),
            format!(
                "{:.2} (vs 1 in flight {:.2})",
                concurrent / serial,
                concurrent / serial_measured
            ),
        )
        .pass(concurrent <= 0.5 * serial),
    );

    // 2. 2,000 occurrences in a day over 50 hosts, 150 ms, 20/s.
    let latency = Duration::from_millis(150);
    let sim = pace_sim(rt, 50);
    sim.set_latency(latency);
    let first = next_whole_minute(Utc::now()) + TimeDelta::hours(1);
    // 2,000 in 24 h: every 43 s on average; at minute resolution, two per minute on 1,000
    // minutes (two keys may share a minute).
    let mut meetings = pace_meetings(50, 1000, first, 1);
    meetings.push_str(&pace_meetings(50, 1000, first, 1).replace("key = \"p", "key = \"q"));
    let config = pace_config(
        work,
        "pace2000",
        &sim,
        &meetings,
        "requests_per_second = 20\nmax_in_flight = 8",
    );
    let m = sync_ok(&config);
    let created = sim.meetings().len();
    assert_eq!(created, 2000, "every meeting created");
    let c = sim.counters();
    let requests = api_requests(&sim);
    let took = m.wall.as_secs_f64();
    let ideal = 2000.0 / 20.0;
    let serial = 2000.0 * latency.as_secs_f64();
    eprintln!(
        "pace2000: {took:.1} s, {requests} requests, max per second {}, max in flight {}",
        c.max_per_second,
        sim.max_in_flight()
    );
    rows.push(row(
        "pace: 2,000 creates, 50 hosts, 150 ms, 20/s",
        "approach N / rate",
        format!(
            "{took:.1} s; peak RSS {:.1} MiB, CPU {:.1} s",
            mib(m.maxrss_kib),
            m.cpu.as_secs_f64()
        ),
        format!("ideal {ideal:.0} s; serial {serial:.0} s"),
        format!(
            "{:.2} of ideal, {:.2} of serial",
            took / ideal,
            took / serial
        ),
    ));

    // 3. A poll pass over 1,000 watched meetings (all started, no recording yet, so the pass
    //    is polls alone), 150 ms, 20/s: requests per second achieved against the budget.
    let sim = rt
        .block_on(Sim::start(SimConfig {
            users: pace_users(50),
            recording_after: Duration::from_secs(3600),
            ..SimConfig::default()
        }))
        .expect("sim");
    let start = next_whole_minute(Utc::now() + TimeDelta::seconds(40));
    let mut meetings = String::new();
    for i in 0..1000 {
        let _ = write!(
            meetings,
            "[[meeting]]\nkey = \"w{i}\"\ntopic = \"Watched {i}\"\nhost = \"host{}@example.org\"\nat = \"{}\"\ntimezone = \"UTC\"\nduration = \"1m\"\n\n",
            i % 50,
            start.format("%Y-%m-%dT%H:%M")
        );
    }
    let wide = pace_config(
        work,
        "pacepoll",
        &sim,
        &meetings,
        "requests_per_second = 80\nmax_in_flight = 16",
    );
    let m = run(&mut zoomd(
        &wide,
        &["sync"],
        &wide.with_file_name("create.log"),
    ));
    assert!(m.ok, "zoomd sync (creates) failed: {}", wide.display());
    assert_eq!(sim.meetings().len(), 1000);
    while Utc::now() < start + TimeDelta::seconds(2) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = fs::read_to_string(&wide).expect("config");
    fs::write(
        &wide,
        text.replace(
            "requests_per_second = 80\nmax_in_flight = 16",
            "requests_per_second = 20\nmax_in_flight = 8",
        ),
    )
    .expect("config");
    sim.set_latency(latency);
    sim.reset_per_second_peak();
    let before = sim.counters();
    let m = run(&mut zoomd(
        &wide,
        &["sync"],
        &wide.with_file_name("poll.log"),
    ));
    assert!(m.ok, "zoomd sync (polls) failed: {}", wide.display());
    let after = sim.counters();
    let asked = |r: Route| after.get(r) - before.get(r);
    let polls = asked(Route::PastInstances) + asked(Route::GetRecordings);
    // Requests to Zoom's API: the budget's. Token requests are not counted by it.
    let all: u64 = after
        .requests
        .iter()
        .filter(|(r, _)| !matches!(**r, Route::Token | Route::SignedDownload))
        .map(|(r, n)| n - before.get(*r))
        .sum();
    let took = m.wall.as_secs_f64();
    let rate = all as f64 / took;
    eprintln!(
        "pacepoll: {polls} poll requests, {all} in all in {took:.1} s, max per second {}",
        after.max_per_second
    );
    rows.push(row(
        "pace: poll pass, 1,000 watched, 150 ms, 20/s",
        "use the budget",
        format!(
            "{rate:.1} requests/s ({polls} poll requests, {all} in all, in {took:.1} s; at most {} in a second); peak RSS {:.1} MiB, CPU {:.1} s",
            after.max_per_second,
            mib(m.maxrss_kib),
            m.cpu.as_secs_f64()
        ),
        "20 requests/s".into(),
        format!("{:.2} of the budget", rate / 20.0),
    ));
    let _ = fs::remove_dir_all(work.join("pace200-8"));
}

// ---------------------------------------------------------------------------------------------
// schedule (criterion's figures)

fn criterion_estimate(root: &Path, id: &str) -> Option<(f64, u64)> {
    let dir = root.join("schedule").join(id).join("new");
    let est: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("estimates.json")).ok()?).ok()?;
    let bench: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("benchmark.json")).ok()?).ok()?;
    Some((
        est["median"]["point_estimate"].as_f64()?,
        bench["throughput"]["Elements"].as_u64()?,
    ))
}

fn schedule_rows(target: &Path, rows: &mut Vec<Row>) {
    let root = target.join("criterion");
    for n in [100, 1000] {
        let (Some((tz, el)), Some((tc, _))) = (
            criterion_estimate(&root, &format!("zoomd/{n}")),
            criterion_estimate(&root, &format!("croner/{n}")),
        ) else {
            rows.push(row(
                &format!("schedule::occurrences, {n} entries, 1 year"),
                ">= 200k occ/s",
                "not run (cargo bench --bench schedule)".into(),
                "-".into(),
                "-".into(),
            ));
            continue;
        };
        let rate = el as f64 / (tz / 1e9);
        let base = el as f64 / (tc / 1e9);
        rows.push(
            row(
                &format!("schedule::occurrences, {n} entries, 1 year"),
                ">= 200k occ/s",
                format!("{:.0}k occ/s ({el} occ)", rate / 1e3),
                format!("{:.0}k occ/s (bare croner)", base / 1e3),
                format!("{:.2}", rate / base),
            )
            .pass(rate >= 200e3),
        );
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if std::env::args().any(|a| a == "--idle-baseline") {
        idle_baseline();
        return;
    }
    let only: Option<Vec<String>> = std::env::var("ZOOMD_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let wants = |what: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == what));
    let reps: usize = std::env::var("ZOOMD_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let target = PathBuf::from(
        std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_owned()),
    );
    let out_dir = target.join("bench");
    fs::create_dir_all(&out_dir).expect("target/bench");
    let work = tempfile::Builder::new()
        .prefix("zoomd-bench-")
        .tempdir()
        .expect("work dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let t = Instant::now();
    if wants("download") {
        bench_download(&rt, work.path(), reps, &mut rows);
    }
    if wants("s3") {
        bench_s3(&rt, work.path(), reps, &mut rows);
    }
    if wants("idle") {
        bench_idle(&rt, work.path(), &mut rows);
    }
    if wants("check") {
        bench_check(work.path(), reps, &mut rows);
    }
    if wants("status") {
        bench_status(
            &rt,
            work.path(),
            reps,
            &mut rows,
            &out_dir.join("status-plans.txt"),
        );
    }
    if wants("api") {
        bench_api(&rt, work.path(), &mut rows);
    }
    if wants("pace") {
        bench_pace(&rt, work.path(), &mut rows);
    }
    if wants("processes") {
        bench_processes(&rt, work.path(), reps, &mut rows);
    }
    if wants("scan") {
        bench_scan(&rt, work.path(), &mut rows);
    }
    if wants("webhook") {
        bench_webhook(&rt, work.path(), &mut rows);
    }
    if wants("schedule") {
        schedule_rows(&target, &mut rows);
    }
    let table = print_table(&rows);
    let mut head = String::new();
    let mut uname = String::new();
    let _ = Command::new("uname")
        .arg("-srm")
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdout.take().map(|mut o| o.read_to_string(&mut uname));
            c.wait()
        });
    let _ = writeln!(
        head,
        "zoomd benchmarks, {} ({} CPUs, {}), {:.0} s, medians of {reps} (A/B alternated)",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        uname.trim(),
        t.elapsed().as_secs_f64()
    );
    let report = format!("{head}\n{table}");
    print!("{report}");
    let _ = fs::write(out_dir.join("results.md"), &report);
    if rows.iter().any(|r| r.pass == Some(false)) {
        println!("\nsome goals are missed (FAIL rows)");
    }
}
