//! Download throughput and memory: stream a 1 GiB recording from `sim`'s download host
//! through `ZoomClient::download` into (a) a SHA-256 sink and (b) a file with SHA-256,
//! printing throughput and peak RSS (VmHWM). The sim runs in the same process, so the
//! RSS covers both ends.
//!
//! Then (c), with no network: 512 MiB in 8 segments of 64 MiB written by 4 concurrent sinks
//! through `sync::part::Part` (hashed in order while the segments arrive: the frontier from
//! memory, the rest read back) against the same segments written by 4 threads and hashed in
//! one pass at the end; alternated, 3 times each, on /dev/shm.
//!
//! Run: `cargo bench --bench download` (size: ZOOMD_BENCH_MIB, default 1024).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;
use url::Url;
use zoomd::secret::Secret;
use zoomd::sim::{Sim, SimConfig};
use zoomd::zoom::{
    ClientConfig, CreateMeeting, Credentials, DownloadSink, MeetingRef, MeetingStart, ZoomClient,
};

/// Hashes what it is given and, optionally, writes it to a file.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<W: DownloadSink> DownloadSink for Hashing<W> {
    async fn restart(&mut self) -> std::io::Result<()> {
        self.hasher = Sha256::new();
        self.inner.restart().await
    }
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn report(label: &str, bytes: u64, took: Duration) {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "{label}: {mib:.0} MiB in {:.2} s = {:.0} MiB/s; peak RSS (VmHWM) so far {} MiB",
        took.as_secs_f64(),
        mib / took.as_secs_f64(),
        vm_hwm_kib().map_or("?".to_owned(), |k| (k / 1024).to_string()),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::var("ZOOMD_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib * 1024 * 1024;
    let sim = Sim::start(SimConfig {
        mp4_size: size,
        ..SimConfig::default()
    })
    .await?;
    let sc = sim.config();
    let mut cfg = ClientConfig::new(Credentials::OAuth {
        account_id: sc.account_id.clone(),
        client_id: sc.client_id.clone(),
        client_secret: Secret::new(sc.client_secret.clone()),
    });
    cfg.api_url = Url::parse(&sim.api_url())?;
    cfg.oauth_url = Url::parse(&sim.oauth_url())?;
    let client = ZoomClient::new(cfg)?;

    let meeting = client
        .create_meeting(
            "me",
            &CreateMeeting {
                topic: "bench".into(),
                start: MeetingStart::Utc {
                    at: Utc::now() + TimeDelta::days(1),
                    timezone: None,
                },
                duration_minutes: 60,
                agenda: None,
                settings: Default::default(),
            },
        )
        .await?;
    sim.force_recording(meeting.id)?;
    let rec = client
        .get_recordings(&MeetingRef::Id(meeting.id))
        .await?
        .ok_or("no recording")?;
    let file = rec
        .recording_files
        .iter()
        .find(|f| f.file_type.as_deref() == Some("MP4"))
        .ok_or("no MP4")?;
    let url = file.download_url.clone().ok_or("no download_url")?;
    let key = file.id.clone().ok_or("no file id")?;
    println!(
        "baseline peak RSS before downloading: {} MiB",
        vm_hwm_kib().map_or("?".to_owned(), |k| (k / 1024).to_string())
    );

    // (a) to a hashing sink.
    let mut sink = Hashing {
        inner: tokio::io::sink(),
        hasher: Sha256::new(),
    };
    let t = Instant::now();
    let o = client.download(&url, 0, &mut sink, |_| {}).await?;
    report("sink + sha256", o.bytes_written, t.elapsed());
    let got_sink = hex::encode(sink.hasher.finalize());

    // (b) to a file.
    let path = std::env::temp_dir().join(format!("zoomd-bench-{}.part", std::process::id()));
    let f = tokio::fs::File::create(&path).await?;
    let mut sink = Hashing {
        inner: f,
        hasher: Sha256::new(),
    };
    let t = Instant::now();
    let o2 = client.download(&url, 0, &mut sink, |_| {}).await?;
    report("file + sha256", o2.bytes_written, t.elapsed());
    let Hashing { inner, hasher } = sink;
    drop(inner);
    let got_file = hex::encode(hasher.finalize());
    let on_disk = tokio::fs::metadata(&path).await?.len();
    tokio::fs::remove_file(&path).await.ok();

    let want = sim
        .file_sha256(&rec.uuid, &key)
        .ok_or("sim lost the file")?;
    let ok = got_sink == want && got_file == want && o.bytes_written == size && on_disk == size;
    println!(
        "sha256 {} ({})",
        want,
        if ok { "verified" } else { "MISMATCH" }
    );
    if !ok {
        return Err("digest or size mismatch".into());
    }
    drop(sim);
    segments_hash().await
}

const SEG: u64 = 64 * 1024 * 1024;
const SEGS: u64 = 8;
const CHUNK: usize = 64 * 1024;

/// (c): hashing while the segments arrive against one pass at the end.
async fn segments_hash() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use zoomd::sync::part::Part;
    use zoomd::zoom::ChunkSink;

    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")?
    } else {
        tempfile::tempdir()?
    };
    let block = bytes::Bytes::from(
        (0..1024 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let (mut follow, mut at_end) = (Vec::new(), Vec::new());
    for rep in 0..6 {
        let path = dir.path().join(format!("seg-{rep}.part"));
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?,
        );
        file.set_len(SEG * SEGS)?;
        let next = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        if rep % 2 == 0 {
            let part = Part::start(file.clone(), []);
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (next, block) = (next.clone(), block.clone());
                let mut sinks = Vec::new();
                for i in 0..SEGS {
                    sinks.push(part.sink(i * SEG, (i + 1) * SEG));
                }
                tasks.push(tokio::spawn(async move {
                    let mut sinks: Vec<Option<_>> = sinks.into_iter().map(Some).collect();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= SEGS {
                            break;
                        }
                        let Some(mut sink) = sinks[i as usize].take() else {
                            break;
                        };
                        let mut left = SEG as usize;
                        while left > 0 {
                            let n = left.min(CHUNK);
                            let off = (SEG as usize - left) % block.len();
                            let end = (off + n).min(block.len());
                            sink.put(block.slice(off..end)).await?;
                            left -= end - off;
                        }
                        sink.finish()?;
                    }
                    Ok::<(), std::io::Error>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            let h = part.finish().await?;
            assert_eq!(h.len, SEG * SEGS);
            follow.push(t.elapsed().as_secs_f64());
        } else {
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (next, block, file) = (next.clone(), block.clone(), file.clone());
                tasks.push(tokio::task::spawn_blocking(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= SEGS {
                            break;
                        }
                        let mut pos = 0u64;
                        while pos < SEG {
                            file.write_all_at(&block, i * SEG + pos)?;
                            pos += block.len() as u64;
                        }
                    }
                    Ok::<(), std::io::Error>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1024 * 1024];
                let mut pos = 0u64;
                while pos < SEG * SEGS {
                    file.read_exact_at(&mut buf, pos)?;
                    h.update(&buf);
                    pos += buf.len() as u64;
                }
                Ok::<_, std::io::Error>(h.finalize())
            })
            .await??;
            at_end.push(t.elapsed().as_secs_f64());
        }
        std::fs::remove_file(&path)?;
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (med(&mut follow), med(&mut at_end));
    println!(
        "segments, 512 MiB over 4 writers: hashed while arriving {a:.2} s, one pass at the end {b:.2} s; ratio (end / while) {:.2}",
        b / a
    );
    Ok(())
}
