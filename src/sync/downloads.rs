//! Streams queued files into the archive: `<final>.part` while hashing, resumed with
//! `Range` after an interruption, size checked against Zoom's `file_size`, fsynced (file and
//! directory), renamed into place, then recorded with its sha256. Only then is it archived.
//!
//! Each failed attempt keeps its kind ([`FailureKind`]) to the retry decision: a stored
//! `download_url` that Zoom rejects (expired) is dropped and the meeting polled again at once
//! for a fresh one; a fresh URL that is rejected the same way, a size mismatch, the disk and
//! the network are retried with back-off. After [`MAX_ATTEMPTS`] the file is `failed` until
//! `zoomd retry`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::Duration;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::archive::{self, FileName};
use super::{Ctx, SyncError};
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::{FailureKind, FileRow, NewEvent};
use crate::zoom::{DownloadSink, ZoomError};

/// Attempts before a file is marked failed.
pub const MAX_ATTEMPTS: i64 = 8;
/// The longest wait between two attempts.
const MAX_RETRY_DELAY: i64 = 3600;

/// Progress of one download: (file row, bytes in the file so far, expected total).
pub type ProgressFn = Arc<dyn Fn(&FileRow, u64, Option<u64>) + Send + Sync>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub archived: usize,
    pub retrying: usize,
    pub failed: usize,
    pub interrupted: usize,
}

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Archived,
    Retrying,
    Failed,
    Interrupted,
    Skipped,
}

/// Downloads every file that is due now, `config.daemon.downloads` at a time, until none is
/// due (each file gets one attempt per call) or shutdown fires.
pub async fn run_due(
    ctx: &Ctx,
    config: &Config,
    shutdown: &Shutdown,
    progress: Option<ProgressFn>,
) -> Result<Report, SyncError> {
    let mut report = Report::default();
    let limit = config.daemon.downloads.max(1);
    let mut tried = std::collections::HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Which file each task works on, so a task that fails or panics does not leave its row
    // in `downloading` until the next start.
    let mut working: std::collections::HashMap<tokio::task::Id, i64> = Default::default();
    loop {
        while tasks.len() < limit && !shutdown.is_triggered() {
            let due = ctx
                .store
                .due_downloads(ctx.now(), (limit * 4) as i64)
                .await?;
            let Some(file) = due.into_iter().find(|f| !tried.contains(&f.id)) else {
                break;
            };
            tried.insert(file.id);
            let (ctx, config, shutdown, progress) = (
                ctx.clone(),
                config.clone(),
                shutdown.clone(),
                progress.clone(),
            );
            let id = file.id;
            let task = tasks
                .spawn(async move { download_one(&ctx, &config, file, shutdown, progress).await });
            working.insert(task.id(), id);
        }
        let Some(joined) = tasks.join_next_with_id().await else {
            break;
        };
        match joined {
            Ok((task, outcome)) => {
                let file_id = working.remove(&task);
                match outcome {
                    Ok(Outcome::Archived) => report.archived += 1,
                    Ok(Outcome::Retrying) => report.retrying += 1,
                    Ok(Outcome::Failed) => report.failed += 1,
                    Ok(Outcome::Interrupted) => report.interrupted += 1,
                    Ok(Outcome::Skipped) => {}
                    Err(e) => {
                        tasks.abort_all();
                        while let Some(j) = tasks.join_next_with_id().await {
                            if let Ok((t, Ok(_))) = j {
                                working.remove(&t);
                            }
                        }
                        requeue_orphans(ctx, file_id.into_iter().chain(working.into_values()))
                            .await;
                        return Err(e);
                    }
                }
            }
            Err(join) => {
                tracing::error!(error = %join, "download task failed");
                requeue_orphans(ctx, working.remove(&join.id())).await;
            }
        }
    }
    Ok(report)
}

/// Puts files whose download task ended without recording an outcome back in the queue
/// (only rows still `downloading` change).
async fn requeue_orphans(ctx: &Ctx, ids: impl IntoIterator<Item = i64>) {
    for id in ids {
        match ctx.store.requeue(id, ctx.now()).await {
            Ok(()) => tracing::info!(file_row = id, "download left unfinished; back in the queue"),
            Err(e) => {
                tracing::error!(file_row = id, error = %e, "cannot requeue; the next start does")
            }
        }
    }
}

/// The retry delay after `attempts` failed attempts: the poll cadence (at most 30 s),
/// doubling, capped at an hour.
pub fn retry_delay(attempts: i64, poll_every: Duration) -> Duration {
    let base = poll_every.num_seconds().clamp(1, 30);
    let exp = attempts.saturating_sub(1).clamp(0, 20) as u32;
    Duration::seconds(base.saturating_mul(1_i64 << exp).min(MAX_RETRY_DELAY))
}

/// The archive path (relative) of a file.
/// Only files of created meetings are downloaded, so the meeting id is there; `None` if not.
pub fn relative_path(file: &FileRow) -> Option<PathBuf> {
    Some(archive::relative_path(&FileName {
        topic: &file.topic,
        meeting_id: file.meeting_id?,
        scheduled_start: file.start_utc,
        recording_start: file.recording_start,
        timezone: file.timezone,
        file_type: &file.file_type,
        recording_type: file.recording_type.as_deref(),
        extension: &file.file_extension,
        scan_host: file.found_by_scan.then_some(file.host.as_str()),
    }))
}

/// Downloads one file; every outcome is recorded in the store.
pub async fn download_one(
    ctx: &Ctx,
    config: &Config,
    file: FileRow,
    mut shutdown: Shutdown,
    progress: Option<ProgressFn>,
) -> Result<Outcome, SyncError> {
    let Some(mut rel) = relative_path(&file) else {
        let msg = "the file's occurrence has no Zoom meeting id".to_string();
        ctx.store
            .download_failed(file.id, FailureKind::Disk, &msg, None, false, ctx.now())
            .await?;
        return Ok(Outcome::Failed);
    };
    if ctx
        .store
        .path_taken(&rel.to_string_lossy(), file.id)
        .await?
    {
        // Two files that name alike (same type and start): the row id keeps them apart.
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        rel.set_file_name(format!("{}-{name}", file.id));
    }
    let Some(final_path) = (config.daemon.archive.local()).and_then(|d| archive::under(d, &rel))
    else {
        // Cannot happen with sanitised parts; refuse rather than write outside.
        let msg = format!("archive path {} would leave the archive", rel.display());
        ctx.store
            .download_failed(file.id, FailureKind::Disk, &msg, None, false, ctx.now())
            .await?;
        return Ok(Outcome::Failed);
    };
    let rel_str = rel.to_string_lossy().into_owned();
    if !ctx
        .store
        .start_download(file.id, &rel_str, ctx.now())
        .await?
    {
        return Ok(Outcome::Skipped);
    }
    let attempts = file.attempts + 1;
    let work = fetch(ctx, &file, &final_path, progress);
    let result = tokio::select! {
        r = work => r,
        _ = shutdown.wait() => {
            // The .part keeps what was written: the next start resumes from its length.
            ctx.store.requeue(file.id, ctx.now()).await?;
            tracing::info!(file_row = file.id, "download interrupted by shutdown; will resume");
            return Ok(Outcome::Interrupted);
        }
    };
    let now = ctx.now();
    match result {
        Ok((bytes, sha256)) => {
            ctx.store
                .mark_archived(file.id, bytes as i64, &sha256, now)
                .await?;
            ctx.store
                .refresh_recording_state(file.recording_id, now)
                .await?;
            tracing::info!(key = %file.label(), meeting_id = file.meeting_id, file_id = %file.file_id, path = %rel_str, bytes, "file archived");
            ctx.event(NewEvent {
                kind: "archived",
                key: file.key.as_deref(),
                occurrence_id: file.occurrence_id,
                meeting_id: file.meeting_id,
                file_row: Some(file.id),
                message: format!(
                    "{} {bytes} bytes sha256 {sha256} -> {rel_str}",
                    file.file_type
                ),
            })
            .await;
            Ok(Outcome::Archived)
        }
        Err(Failure::Local(e)) => Err(e),
        Err(failure) => {
            let kind = failure.kind(file.failure_kind);
            let message = failure.to_string();
            let give_up = attempts >= MAX_ATTEMPTS;
            let retry_at = (!give_up).then(|| match kind {
                // Polled at once for a fresh URL; the download follows the poll.
                FailureKind::StaleUrl => now,
                _ => {
                    let backoff = now + retry_delay(attempts, config.daemon.poll_every);
                    // Zoom's own "not before" (a long Retry-After) wins over the back-off.
                    match &failure {
                        Failure::Zoom(z) => z.retry_at().map_or(backoff, |t| t.max(backoff)),
                        _ => backoff,
                    }
                }
            });
            let drop_url = matches!(kind, FailureKind::StaleUrl | FailureKind::Refused);
            ctx.store
                .download_failed(file.id, kind, &message, retry_at, drop_url, now)
                .await?;
            if drop_url {
                // The next poll (now, or at the back-off) brings a new URL.
                let poll_at = retry_at.unwrap_or(now);
                match file.occurrence_id {
                    Some(occurrence) => ctx.store.poll_soon(occurrence, poll_at).await?,
                    // Found by the scan: the scan lists it again by uuid.
                    None => ctx.store.refresh_soon(file.recording_id, poll_at).await?,
                }
            }
            if give_up {
                tracing::error!(key = %file.label(), file_id = %file.file_id, attempts, error = %message, "download failed for good; `zoomd retry {}` requeues it", file.id);
                ctx.event(NewEvent {
                    kind: "failed",
                    key: file.key.as_deref(),
                    occurrence_id: file.occurrence_id,
                    meeting_id: file.meeting_id,
                    file_row: Some(file.id),
                    message: format!("after {attempts} attempts: {message}"),
                })
                .await;
                Ok(Outcome::Failed)
            } else {
                tracing::warn!(key = %file.label(), file_id = %file.file_id, attempts, kind = %kind, error = %message, "download failed; will retry");
                Ok(Outcome::Retrying)
            }
        }
    }
}

/// Why one attempt failed; the kind survives to the retry decision ([`Failure::kind`]).
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Zoom (or the network on the way) failed the download.
    #[error(transparent)]
    Zoom(ZoomError),
    /// The file's row has no URL (dropped as stale, not yet polled again).
    #[error("no download URL yet (waiting for a fresh one from the next poll)")]
    NoUrl,
    #[error("size mismatch: got {got} bytes, Zoom says {want}")]
    SizeMismatch { got: u64, want: u64 },
    /// The archive's disk.
    #[error("{path}: {source}")]
    Disk {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The database failed: not the file's fault.
    #[error(transparent)]
    Local(SyncError),
}

impl From<SyncError> for Failure {
    fn from(e: SyncError) -> Self {
        Failure::Local(e)
    }
}

impl Failure {
    /// The kind of this failure, given the kind of the attempt before it: a URL Zoom rejects
    /// is stale the first time; rejected again right after a poll handed it out, it is refused
    /// (a fresh URL does not expire in seconds) and waits with back-off instead of polling in
    /// a loop.
    fn kind(&self, before: Option<FailureKind>) -> FailureKind {
        match self {
            Failure::Zoom(e) if rejects_url(e) => match before {
                Some(FailureKind::StaleUrl | FailureKind::Refused) => FailureKind::Refused,
                _ => FailureKind::StaleUrl,
            },
            Failure::Zoom(ZoomError::Io { .. }) => FailureKind::Disk,
            Failure::Zoom(_) => FailureKind::Transient,
            Failure::NoUrl => FailureKind::StaleUrl,
            Failure::SizeMismatch { .. } => FailureKind::SizeMismatch,
            Failure::Disk { .. } => FailureKind::Disk,
            Failure::Local(_) => FailureKind::Transient,
        }
    }
}

fn io_failure(path: &Path, e: io::Error) -> Failure {
    Failure::Disk {
        path: path.display().to_string(),
        source: e,
    }
}

/// The download itself: returns the byte count and sha256 of the file now in place.
async fn fetch(
    ctx: &Ctx,
    file: &FileRow,
    final_path: &Path,
    progress: Option<ProgressFn>,
) -> Result<(u64, String), Failure> {
    let expected = file.file_size.and_then(|s| u64::try_from(s).ok());
    // A crash between the rename and the database write leaves a finished file: verify it.
    if tokio::fs::try_exists(final_path).await.unwrap_or(false) {
        let (len, sha) = hash_file(final_path)
            .await
            .map_err(|e| io_failure(final_path, e))?;
        if expected.is_none_or(|s| s == len) {
            return Ok((len, sha));
        }
        tokio::fs::remove_file(final_path)
            .await
            .map_err(|e| io_failure(final_path, e))?;
    }
    let dir = final_path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io_failure(dir, e))?;
    let part = part_path(final_path);
    let mut sink = HashingFile::open(&part, expected)
        .await
        .map_err(|e| io_failure(&part, e))?;
    let offset = sink.written;
    let Some(url) = file.download_url.as_deref() else {
        return Err(Failure::NoUrl);
    };
    let report = |pos: u64| {
        if let Some(p) = &progress {
            p(file, pos, expected);
        }
    };
    let outcome = ctx.zoom.download(url, offset, &mut sink, report).await;
    let flushed = sink.file.flush().await;
    let outcome = outcome.map_err(Failure::Zoom)?;
    flushed.map_err(|e| io_failure(&part, e))?;
    let total = sink.written;
    let want = expected.or(outcome.total_len);
    if let Some(want) = want
        && total != want
    {
        if total > want {
            // More than Zoom announced: the part is wrong, start over next time.
            sink.restart().await.map_err(|e| io_failure(&part, e))?;
        }
        return Err(Failure::SizeMismatch { got: total, want });
    }
    sink.file
        .sync_all()
        .await
        .map_err(|e| io_failure(&part, e))?;
    let sha = hex::encode(sink.hasher.finalize_reset());
    drop(sink);
    tokio::fs::rename(&part, final_path)
        .await
        .map_err(|e| io_failure(final_path, e))?;
    sync_dir(dir).await.map_err(|e| io_failure(dir, e))?;
    Ok((total, sha))
}

/// Zoom refused the URL itself (expired, revoked, or a login page instead of the file).
fn rejects_url(e: &ZoomError) -> bool {
    match e {
        ZoomError::NotFound { .. } | ZoomError::HtmlErrorPage { .. } => true,
        ZoomError::Api { status, .. } => matches!(status, 401 | 403 | 410),
        ZoomError::Auth { status, .. } => matches!(status, Some(401 | 403)),
        _ => false,
    }
}

pub fn part_path(final_path: &Path) -> PathBuf {
    let mut name = final_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    final_path.with_file_name(name)
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = tokio::fs::File::open(dir).await?;
    d.sync_all().await
}

async fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex::encode(hasher.finalize())))
}

/// A `.part` file that hashes what is written to it (including what an earlier attempt left).
struct HashingFile {
    file: tokio::fs::File,
    hasher: Sha256,
    written: u64,
}

impl HashingFile {
    /// Opens (or creates) the part file, hashing what is already in it. A part longer than
    /// the expected size cannot be right and is started over.
    async fn open(path: &Path, expected: Option<u64>) -> io::Result<HashingFile> {
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .await?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let len = file.metadata().await?.len();
        if expected.is_some_and(|e| len > e) {
            file.set_len(0).await?;
        } else {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                written += n as u64;
            }
        }
        use tokio::io::AsyncSeekExt;
        file.seek(io::SeekFrom::Start(written)).await?;
        Ok(HashingFile {
            file,
            hasher,
            written,
        })
    }
}

impl AsyncWrite for HashingFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.file).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.written += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl DownloadSink for HashingFile {
    async fn restart(&mut self) -> io::Result<()> {
        self.file.restart().await?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16) -> Failure {
        Failure::Zoom(ZoomError::Api {
            op: "download",
            status,
            code: None,
            message: "Forbidden".into(),
        })
    }

    #[test]
    fn a_rejected_url_is_stale_once_then_refused() {
        // First rejection of a stored URL: it expired, poll for a fresh one at once.
        assert_eq!(refused(403).kind(None), FailureKind::StaleUrl);
        assert_eq!(
            refused(403).kind(Some(FailureKind::Transient)),
            FailureKind::StaleUrl
        );
        // The fresh URL rejected too: not expiry; back off instead of polling in a loop.
        assert_eq!(
            refused(403).kind(Some(FailureKind::StaleUrl)),
            FailureKind::Refused
        );
        let html = Failure::Zoom(ZoomError::HtmlErrorPage {
            op: "download",
            status: 200,
        });
        assert_eq!(html.kind(Some(FailureKind::Refused)), FailureKind::Refused);
    }

    #[test]
    fn the_network_the_size_and_the_disk_keep_their_kind() {
        let stalled = Failure::Zoom(ZoomError::Stalled {
            op: "download",
            idle: std::time::Duration::from_secs(60),
            received: 10,
        });
        assert_eq!(
            stalled.kind(Some(FailureKind::StaleUrl)),
            FailureKind::Transient
        );
        let size = Failure::SizeMismatch { got: 9, want: 10 };
        assert_eq!(size.kind(None), FailureKind::SizeMismatch);
        assert_eq!(size.to_string(), "size mismatch: got 9 bytes, Zoom says 10");
        let disk = io_failure(
            Path::new("/archive/x.mp4.part"),
            io::Error::from_raw_os_error(28),
        );
        assert_eq!(disk.kind(None), FailureKind::Disk);
        assert!(
            disk.to_string().starts_with("/archive/x.mp4.part: "),
            "{disk}"
        );
    }

    #[test]
    fn retries_back_off_from_the_poll_cadence_to_an_hour() {
        let every = Duration::minutes(5);
        assert_eq!(retry_delay(1, every), Duration::seconds(30));
        assert_eq!(retry_delay(2, every), Duration::seconds(60));
        assert_eq!(retry_delay(20, every), Duration::seconds(MAX_RETRY_DELAY));
        assert_eq!(retry_delay(1, Duration::seconds(2)), Duration::seconds(2));
    }
}
