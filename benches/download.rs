//! Download throughput and memory: stream a 1 GiB recording from `sim`'s download host
//! through `ZoomClient::download` into (a) a SHA-256 sink and (b) a file with SHA-256,
//! printing throughput and peak RSS (VmHWM). The sim runs in the same process, so the
//! RSS covers both ends.
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
    Ok(())
}
