//! Streams queued files into the archive: `<final>.part` through [`super::part`] (written
//! and hashed off the receive path), in `Range` segments over several connections when the
//! file is larger than `segment_size` (the segments done recorded, so a resume fetches only
//! the missing ones), else in one stream resumed from the part's length; size checked
//! against Zoom's `file_size`, fsynced (file and directory), renamed into place, then
//! recorded with its sha256. Only then is it archived.
//!
//! Each failed attempt keeps its kind ([`FailureKind`]) to the retry decision: a stored
//! `download_url` that Zoom rejects (expired) is dropped and the meeting polled again at once
//! for a fresh one; a fresh URL that is rejected the same way, a size mismatch, the disk and
//! the network are retried with back-off. After [`MAX_ATTEMPTS`] the file is `failed` until
//! `zoomd retry`.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Duration;
use sha2::{Digest, Sha256};

use super::archive::{self, FileName};
use super::part::{Hashed, Part};
use super::{Ctx, SyncError};
use crate::config::{Config, DaemonConfig};
use crate::objects::{ObjectArchive, ObjectError};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::store::{FailureKind, FileRow, NewEvent, PartState};
use crate::zoom::{Answer, ByteRange, OpenDownload, ZoomError};

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
    // A process that died mid-download left its files `downloading` under a lease that has
    // run out by now: they are queued again, and anyone (this process too) takes them.
    let expired = ctx.store.requeue_expired(ctx.now()).await?;
    if expired > 0 {
        tracing::info!(
            files = expired,
            "downloads whose lease ran out are back in the queue"
        );
    }
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

/// Renews this process's lease on a file every third of its length while the download runs;
/// returns only when the lease is lost. Measured on tokio's timer, not the logical clock: it
/// paces I/O (like a timeout), not the schedule, and a manual clock would spin on it.
async fn keep_lease(ctx: &Ctx, id: i64) {
    let every = (ctx.store.lease_length() / 3)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(20))
        .max(std::time::Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        match ctx.store.renew_download(id, ctx.now()).await {
            Ok(true) => {}
            Ok(false) => return,
            // The lease still holds until it runs out; try again at the next tick.
            Err(e) => tracing::warn!(file_row = id, error = %e, "cannot renew the download lease"),
        }
    }
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
    let target = match (&ctx.objects, config.daemon.archive.local()) {
        (Some(objects), _) => Some(Target::Object(objects)),
        (None, Some(dir)) => archive::under(dir, &rel).map(Target::Dir),
        (None, None) => None,
    };
    let Some(target) = target else {
        // Cannot happen with sanitised parts; refuse rather than write outside.
        let msg = match config.daemon.archive.local() {
            Some(_) => format!("archive path {} would leave the archive", rel.display()),
            None => format!(
                "the archive {} is not open",
                config.daemon.archive.display()
            ),
        };
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
    let work = async {
        match &target {
            Target::Dir(final_path) => fetch(ctx, config, &file, final_path, progress).await,
            Target::Object(objects) => fetch_object(ctx, objects, &file, &rel_str, progress).await,
        }
    };
    let result = tokio::select! {
        r = work => r,
        () = keep_lease(ctx, file.id) => {
            // Another process took the file over (this one's lease ran out, e.g. while the
            // database was unreachable): it downloads it; this one stops writing at once.
            tracing::warn!(key = %file.label(), file_row = file.id, "download lease lost; another process took the file over");
            return Ok(Outcome::Skipped);
        }
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
            if !ctx
                .store
                .mark_archived(file.id, bytes as i64, &sha256, now)
                .await?
            {
                // Taken over meanwhile: the process that holds it now records it.
                tracing::warn!(key = %file.label(), file_row = file.id, "download lease lost before the file was recorded; another process took it over");
                return Ok(Outcome::Skipped);
            }
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

/// Where a file goes.
enum Target<'a> {
    /// Its final path in the archive directory.
    Dir(PathBuf),
    /// Its key (relative to the prefix) in object storage.
    Object(&'a ObjectArchive),
}

/// Into object storage: one stream from byte 0 into a multipart upload hashed on the way
/// (the part numbers and the digest follow the bytes in order, so neither `Range` resume nor
/// segments apply: an interrupted upload is aborted and the file sent again). The object is
/// archived once the upload is complete, copied to its key with its `sha256` metadata, and
/// read back (HEAD) with Zoom's size.
async fn fetch_object(
    ctx: &Ctx,
    objects: &ObjectArchive,
    file: &FileRow,
    key: &str,
    progress: Option<ProgressFn>,
) -> Result<(u64, String), Failure> {
    let expected = file.file_size.and_then(|s| u64::try_from(s).ok());
    // A crash between the copy and the database write leaves a verified object.
    if let Some(info) = objects.head(key).await.map_err(Failure::Object)?
        && let Some(sha) = info.sha256
        && expected.is_none_or(|s| s == info.size)
    {
        return Ok((info.size, sha));
    }
    let Some(url) = file.download_url.as_deref() else {
        return Err(Failure::NoUrl);
    };
    let open = ctx
        .zoom
        .open_download(url, ByteRange::default(), None)
        .await
        .map_err(Failure::Zoom)?;
    let total = match open.answer {
        Answer::Whole { len } => len,
        Answer::Partial { total, .. } => total,
        Answer::Complete { total } => Some(total),
    };
    let mut writer = objects
        .begin(Some(&ctx.store), key, Some(file.id), ctx.now())
        .await
        .map_err(Failure::Object)?;
    let report = |n: u64| {
        if let Some(p) = &progress {
            p(file, n, expected);
        }
    };
    if let Err(e) = open.read_into(&mut writer, report).await {
        if let Err(a) = writer.abort().await {
            // On record still: the next start aborts it.
            tracing::warn!(key = %file.label(), error = %a, "could not abort the upload");
        }
        return Err(Failure::Zoom(e));
    }
    let want = expected.or(total).unwrap_or(writer.written());
    if writer.written() != want {
        let got = writer.written();
        if let Err(a) = writer.abort().await {
            tracing::warn!(key = %file.label(), error = %a, "could not abort the upload");
        }
        return Err(Failure::SizeMismatch { got, want });
    }
    let done = writer.finish(want).await.map_err(Failure::Object)?;
    Ok((done.size, done.sha256))
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
    /// The object-storage archive (its message names the endpoint and bucket).
    #[error(transparent)]
    Object(ObjectError),
    /// The file changed at the server while its segments were fetched.
    #[error("the file changed at the server during the download ({detail}); starting over")]
    Changed { detail: String },
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

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::Local(e.into())
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
            Failure::Changed { .. } => FailureKind::Transient,
            // The archive's storage, like a disk.
            Failure::Object(_) => FailureKind::Disk,
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
    config: &Config,
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
    let Some(url) = file.download_url.as_deref() else {
        return Err(Failure::NoUrl);
    };
    let (handle, part_len) = {
        let p = part.clone();
        blocking(move || {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)?;
            let len = f.metadata()?.len();
            Ok((Arc::new(f), len))
        })
        .await
        .map_err(|e| io_failure(&part, e))?
    };
    let recorded = ctx.store.part_state(file.id).await?;
    let job = Job {
        ctx,
        file,
        url,
        part: &part,
        handle: handle.clone(),
        expected,
        pos: Arc::new(AtomicU64::new(0)),
        progress,
    };
    let plan = Plan::new(expected, part_len, recorded, &config.daemon);
    let got = match plan {
        Plan::Stream { offset } => job.stream(offset, None).await,
        Plan::Segments(seg) => job.segments(seg, config.daemon.connections_per_file).await,
    };
    let (total, sha) = match got {
        Ok(v) => v,
        Err(e) => {
            if matches!(e, Failure::Changed { .. }) {
                // Never finish a part from two versions of the file: start over.
                ctx.store.clear_part(file.id).await?;
                let h = handle.clone();
                blocking(move || h.set_len(0))
                    .await
                    .map_err(|e| io_failure(&part, e))?;
            }
            return Err(e);
        }
    };
    {
        let h = handle.clone();
        blocking(move || h.sync_all())
            .await
            .map_err(|e| io_failure(&part, e))?;
    }
    drop(handle);
    tokio::fs::rename(&part, final_path)
        .await
        .map_err(|e| io_failure(final_path, e))?;
    sync_dir(dir).await.map_err(|e| io_failure(dir, e))?;
    ctx.store.clear_part(file.id).await?;
    Ok((total, sha))
}

/// How a file's part is filled this attempt.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// One stream from `offset`: the part holds the file's bytes `0..offset`.
    Stream {
        offset: u64,
    },
    Segments(Segments),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segments {
    size: u64,
    seg: u64,
    /// In the part already (and recorded).
    done: BTreeSet<u64>,
    /// The version of the file the done segments are of.
    validator: Option<String>,
    /// No part recorded yet: it is begun (recorded, sized) when the first answer is in.
    fresh: bool,
}

impl Segments {
    fn count(&self) -> u64 {
        self.size.div_ceil(self.seg)
    }

    fn range(&self, i: u64) -> (u64, u64) {
        (i * self.seg, ((i + 1) * self.seg).min(self.size))
    }
}

impl Plan {
    /// A part recorded with segments resumes them while it still fits the file; a part
    /// without a record is a prefix of the file (one stream wrote it), whose whole segments
    /// count as done when the file is fetched in segments.
    fn new(
        expected: Option<u64>,
        part_len: u64,
        recorded: Option<PartState>,
        daemon: &DaemonConfig,
    ) -> Plan {
        if let Some(st) = &recorded
            && expected == Some(st.size)
            && part_len == st.size
            && st.segment_size > 0
        {
            return Plan::Segments(Segments {
                size: st.size,
                seg: st.segment_size,
                done: st.done.clone(),
                validator: st.validator.clone(),
                fresh: false,
            });
        }
        // A recorded part that no longer fits is no prefix: nothing of it is kept.
        let prefix = if recorded.is_some() || expected.is_some_and(|e| part_len > e) {
            0
        } else {
            part_len
        };
        match expected {
            Some(size) if size > daemon.segment_size && daemon.connections_per_file > 1 => {
                let seg = daemon.segment_size;
                Plan::Segments(Segments {
                    size,
                    seg,
                    done: (0..prefix / seg).collect(),
                    validator: None,
                    fresh: true,
                })
            }
            _ => Plan::Stream { offset: prefix },
        }
    }
}

/// One attempt at one file.
struct Job<'a> {
    ctx: &'a Ctx,
    file: &'a FileRow,
    url: &'a str,
    part: &'a Path,
    handle: Arc<std::fs::File>,
    expected: Option<u64>,
    /// Bytes of the file in the part (for progress).
    pos: Arc<AtomicU64>,
    progress: Option<ProgressFn>,
}

impl Job<'_> {
    fn disk(&self, e: io::Error) -> Failure {
        io_failure(self.part, e)
    }

    fn advance(&self, n: u64) {
        let pos = self.pos.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(p) = &self.progress {
            p(self.file, pos, self.expected);
        }
    }

    async fn set_len(&self, len: u64) -> Result<(), Failure> {
        let h = self.handle.clone();
        blocking(move || h.set_len(len))
            .await
            .map_err(|e| self.disk(e))
    }

    /// One stream from `offset` (the part holds `0..offset`), or the answer already opened
    /// (a segment request the server answered with the whole file).
    async fn stream(
        &self,
        offset: u64,
        opened: Option<OpenDownload>,
    ) -> Result<(u64, String), Failure> {
        let open = match opened {
            Some(o) => o,
            None => {
                let range = ByteRange {
                    start: offset,
                    end: None,
                };
                self.ctx
                    .zoom
                    .open_download(self.url, range, None)
                    .await
                    .map_err(Failure::Zoom)?
            }
        };
        let (base, total_len) = match open.answer {
            Answer::Complete { total } => (total, Some(total)),
            Answer::Partial { start, total, .. } => (start, total),
            Answer::Whole { len } => {
                if offset > 0 {
                    tracing::info!(key = %self.file.label(), file_id = %self.file.file_id, offset, "range ignored; restarting from byte 0");
                }
                (0, len)
            }
        };
        if base < offset || matches!(open.answer, Answer::Whole { .. }) {
            self.set_len(0).await?;
        }
        self.pos.store(base, Ordering::Relaxed);
        let part = Part::start(self.handle.clone(), std::iter::once(0..base), 1);
        let mut sink = part.sink(base, u64::MAX);
        let mut last = 0u64;
        let read = open
            .read_into(&mut sink, |n| {
                self.advance(n - last);
                last = n;
            })
            .await;
        // What arrived stays in the part for the next attempt: let the writer finish it.
        let sent = sink.finish();
        // A write error first: it is why the stream stopped, if it did.
        let hashed = part.finish().await.map_err(|e| self.disk(e))?;
        read.map_err(Failure::Zoom)?;
        sent.map_err(|e| self.disk(e))?;
        let total = hashed.len;
        let want = self.expected.or(total_len);
        if let Some(want) = want
            && total != want
        {
            if total > want {
                // More than Zoom announced: the part is wrong, start over next time.
                self.set_len(0).await?;
            }
            return Err(Failure::SizeMismatch { got: total, want });
        }
        Ok((total, hashed.sha256))
    }

    /// The missing segments over up to `connections` requests at once; falls back to one
    /// stream when the server ignores `Range`.
    async fn segments(&self, plan: Segments, connections: usize) -> Result<(u64, String), Failure> {
        let mut missing: VecDeque<u64> = (0..plan.count())
            .filter(|i| !plan.done.contains(i))
            .collect();
        let done_ranges: Vec<_> = plan
            .done
            .iter()
            .map(|&i| {
                let (a, b) = plan.range(i);
                a..b
            })
            .collect();
        let Some(first) = missing.pop_front() else {
            // Every segment is in: only the hash is missing.
            let part = Part::start(self.handle.clone(), done_ranges, 1);
            let hashed = part.finish().await.map_err(|e| self.disk(e))?;
            return self.check_whole(&plan, hashed);
        };
        let signed = tokio::sync::Mutex::new(None);
        let open = self.open_segment(&plan, first, &signed).await?;
        if let Answer::Whole { .. } = open.answer {
            // No ranges from this server (or, with If-Range, a new version of the file): the
            // answer is the whole file, so it becomes the one stream.
            tracing::info!(key = %self.file.label(), file_id = %self.file.file_id, "whole file answered to a range; one stream instead of segments");
            self.ctx.store.clear_part(self.file.id).await?;
            return self.stream(0, Some(open)).await;
        }
        check_segment(&plan, first, &open)?;
        let mut plan = plan;
        if plan.fresh {
            plan.validator = open.validator.clone();
            self.ctx
                .store
                .begin_part(
                    self.file.id,
                    plan.validator.as_deref(),
                    plan.size,
                    plan.seg,
                    self.ctx.now(),
                )
                .await?;
            self.set_len(plan.size).await?;
            for &i in &plan.done {
                self.ctx
                    .store
                    .segment_done(self.file.id, i, self.ctx.now())
                    .await?;
            }
        }
        // Without a validator two answers cannot be told apart as one version: one at a time.
        let connections = if plan.validator.is_some() {
            connections.max(1)
        } else {
            1
        };
        self.pos.store(
            plan.done
                .iter()
                .map(|&i| plan.range(i))
                .map(|(a, b)| b - a)
                .sum(),
            Ordering::Relaxed,
        );
        let workers = connections.min(plan.count() as usize);
        let part = Part::start(self.handle.clone(), done_ranges, workers);
        let queue = std::sync::Mutex::new(missing);
        let first_open = std::sync::Mutex::new(Some((first, open)));
        let workers =
            (0..workers).map(|_| self.segment_worker(&plan, &part, &queue, &first_open, &signed));
        let all = futures_util::future::try_join_all(workers).await;
        // A write error first: it is why a worker stopped, if one did.
        let hashed = part.finish().await.map_err(|e| self.disk(e))?;
        all?;
        self.check_whole(&plan, hashed)
    }

    /// The request for segment `index`, with `If-Range` when the file's version is known.
    /// Asked of the signed URL an earlier segment was redirected to while it is accepted (one
    /// request, none of the API's budget); else of `download_url`, whose redirect is kept
    /// for the next. One worker at a time asks `download_url` again: the others, refused
    /// the same expired URL, wait for it and take its new one.
    async fn open_segment(
        &self,
        plan: &Segments,
        index: u64,
        signed: &tokio::sync::Mutex<Option<Secret>>,
    ) -> Result<OpenDownload, Failure> {
        let (start, end) = plan.range(index);
        let range = ByteRange {
            start,
            end: Some(end),
        };
        let validator = plan.validator.as_deref();
        let zoom = &self.ctx.zoom;
        let refused = signed.lock().await.clone();
        if let Some(url) = &refused {
            match zoom.open_download(url.expose(), range, validator).await {
                Ok(open) => return Ok(open),
                // Expired (or revoked): `download_url` hands out a fresh one.
                Err(e) if rejects_url(&e) => {
                    tracing::debug!(key = %self.file.label(), file_id = %self.file.file_id, error = %e, "signed URL refused; asking download_url again");
                }
                Err(e) => return Err(Failure::Zoom(e)),
            }
        }
        let mut cached = signed.lock().await;
        if let Some(newer) = cached.clone().filter(|u| refused.as_ref() != Some(u)) {
            // Another worker asked while this one waited.
            drop(cached);
            return zoom
                .open_download(newer.expose(), range, validator)
                .await
                .map_err(Failure::Zoom);
        }
        let open = zoom
            .open_download(self.url, range, validator)
            .await
            .map_err(Failure::Zoom)?;
        *cached = open.redirected_to.clone();
        Ok(open)
    }

    /// Takes segments from the queue until it is empty; the first one's answer is open.
    async fn segment_worker(
        &self,
        plan: &Segments,
        part: &Part,
        queue: &std::sync::Mutex<VecDeque<u64>>,
        first_open: &std::sync::Mutex<Option<(u64, OpenDownload)>>,
        signed: &tokio::sync::Mutex<Option<Secret>>,
    ) -> Result<(), Failure> {
        loop {
            let opened = first_open.lock().map_or(None, |mut o| o.take());
            let (index, open) = match opened {
                Some(first) => first,
                None => {
                    let i = queue.lock().map_or(None, |mut q| q.pop_front());
                    let Some(i) = i else { return Ok(()) };
                    (i, self.open_segment(plan, i, signed).await?)
                }
            };
            check_segment(plan, index, &open)?;
            let (a, b) = plan.range(index);
            let mut sink = part.sink(a, b);
            let mut last = 0u64;
            let read = open
                .read_into(&mut sink, |n| {
                    self.advance(n - last);
                    last = n;
                })
                .await;
            let sent = sink.finish();
            read.map_err(Failure::Zoom)?;
            let got = sent.map_err(|e| self.disk(e))?;
            if got != b - a {
                return Err(Failure::Zoom(ZoomError::Truncated {
                    op: "download",
                    received: got,
                    expected: b - a,
                }));
            }
            // On disk before it counts: a resume trusts recorded segments without reading.
            part.flush().await.map_err(|e| self.disk(e))?;
            self.ctx
                .store
                .segment_done(self.file.id, index, self.ctx.now())
                .await?;
        }
    }

    fn check_whole(&self, plan: &Segments, hashed: Hashed) -> Result<(u64, String), Failure> {
        if hashed.len != plan.size {
            return Err(self.disk(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the part holds {} of {} bytes in order",
                    hashed.len, plan.size
                ),
            )));
        }
        Ok((hashed.len, hashed.sha256))
    }
}

/// A segment's answer must be exactly the bytes asked for, of the same version of the file.
fn check_segment(plan: &Segments, index: u64, open: &OpenDownload) -> Result<(), Failure> {
    let (a, b) = plan.range(index);
    match open.answer {
        Answer::Partial { start, end, total } => {
            if let Some(t) = total
                && t != plan.size
            {
                return Err(Failure::Changed {
                    detail: format!("its size is now {t} bytes, was {}", plan.size),
                });
            }
            if (start, end) != (a, b) {
                return Err(Failure::Zoom(ZoomError::RangeMismatch {
                    op: "download",
                    expected_start: a,
                    detail: format!("asked for bytes {a}-{}, got {start}-{}", b - 1, end - 1),
                }));
            }
            if plan.validator.is_some() && open.validator != plan.validator {
                return Err(Failure::Changed {
                    detail: format!(
                        "its validator is now {}, was {}",
                        open.validator.as_deref().unwrap_or("none"),
                        plan.validator.as_deref().unwrap_or("none")
                    ),
                });
            }
            Ok(())
        }
        // A server that answered ranges before and the whole file now: If-Range says the
        // file changed.
        Answer::Whole { .. } => Err(Failure::Changed {
            detail: "a range was answered with the whole file".to_owned(),
        }),
        Answer::Complete { .. } => Err(Failure::Zoom(ZoomError::RangeMismatch {
            op: "download",
            expected_start: a,
            detail: "HTTP 416 for a segment inside the file".to_owned(),
        })),
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
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

/// Length and SHA-256 of a whole file, read in large blocks off the async workers.
async fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let path = path.to_path_buf();
    blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; super::part::BATCH];
        let mut len = 0u64;
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        Ok((len, hex::encode(hasher.finalize())))
    })
    .await
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
