//! Watches created meetings for their cloud recordings and tracks every file.
//!
//! From a meeting's scheduled start until `give_up_after` past its scheduled end, each due
//! meeting is polled: every past instance (fetched by uuid), or the latest by id when Zoom
//! lists none. 404/3301 means "not yet". Files are tracked by id (a stable synthetic id for
//! those without), so files that appear later (transcripts) are picked up; only completed
//! files are queued. Every `poll_every` at first; from an hour after the scheduled end the
//! delay grows with the time since then (doubling, capped at an hour). Once everything
//! known is archived the watch keeps going at that slow pace for late files until the
//! give-up time; with `after_download = trash|delete` the cloud copy of an instance is
//! removed then, at the end of the watch, if every one of its files is archived.

use chrono::{DateTime, Duration, Utc};

use super::{Ctx, SyncError};
use crate::config::{AfterDownload, Config};
use crate::store::{
    FileState, NewEvent, OccurrenceRow, RecordingRow, RecordingState, RecordingWatch, SeenFile,
    SeenRecording, ts,
};
use crate::zoom::{DeleteAction, MeetingRecordings, MeetingRef, RecordingFile, ZoomError};

/// The longest wait between two polls of one meeting.
pub const MAX_POLL_DELAY: Duration = Duration::hours(1);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub polled: usize,
    pub found: usize,
    pub missing: usize,
    pub cloud_removed: usize,
}

/// The delay before the next poll of a meeting that ended (scheduled) at `end`.
pub fn next_delay(now: DateTime<Utc>, end: DateTime<Utc>, poll_every: Duration) -> Duration {
    let slow_from = end + Duration::hours(1);
    if now < slow_from {
        return poll_every;
    }
    // Waiting as long as it has been since `slow_from` doubles the gap each time.
    (now - slow_from).clamp(poll_every, MAX_POLL_DELAY.max(poll_every))
}

/// The id zoomd tracks a file by: Zoom's, or one made from what identifies the file.
pub fn file_key(f: &RecordingFile) -> String {
    match f.id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => id.to_string(),
        None => format!(
            "{}-{}-{}-{}",
            f.file_type.as_deref().unwrap_or("FILE"),
            f.recording_type.as_deref().unwrap_or(""),
            f.recording_start.map(ts).unwrap_or_default(),
            f.file_extension.as_deref().unwrap_or("")
        ),
    }
}

/// Whether a stored file id is Zoom's own (not one [`file_key`] made up).
pub fn has_zoom_id(file_id: &str, file_type: &str) -> bool {
    !file_id.starts_with(&format!("{file_type}-"))
}

super::counts!(Report {
    polled,
    found,
    missing,
    cloud_removed
});

/// Polls every meeting that is due (only those: the read is by the indexed poll time),
/// concurrently within the client's budget. The polls are claimed a few at a time (see
/// `store::claims`), so processes sharing a database share them.
pub async fn poll(ctx: &Ctx, config: &Config) -> Result<Report, SyncError> {
    let mut report = Report::default();
    let batch = i64::try_from(ctx.concurrency() * 2).unwrap_or(16);
    let mut seen = std::collections::HashSet::new();
    while !ctx.zoom.stopping() {
        let due = ctx.store.claim_due_polls(ctx.now(), batch).await?;
        let claimed = due.len();
        // One poll per meeting and pass: one due again at once waits for its claim to end.
        let due: Vec<_> = due.into_iter().filter(|r| seen.insert(r.id)).collect();
        if due.is_empty() {
            break;
        }
        report += ctx
            .each(due, |row| async move { poll_due(ctx, config, &row).await })
            .await?;
        if i64::try_from(claimed).unwrap_or(0) < batch {
            break;
        }
    }
    Ok(report)
}

async fn poll_due(ctx: &Ctx, config: &Config, row: &OccurrenceRow) -> Result<Report, SyncError> {
    let mut report = Report::default();
    if let Err(e) = poll_one(ctx, config, row, &mut report).await {
        match e {
            // 3001: the meeting itself is gone (deleted before it took place), which is
            // not a recording that went missing.
            SyncError::Zoom(ZoomError::NotFound {
                code: Some(3001), ..
            }) => {
                super::verify::deleted_at_zoom(ctx, row, "deleted at Zoom before it took place")
                    .await?;
            }
            SyncError::Zoom(z) => {
                // Zoom trouble for one meeting: try it again at the next poll time.
                tracing::warn!(key = %row.key, meeting_id = row.meeting_id, error = %z, "recording poll failed");
                let now = ctx.now();
                // Zoom's own "not before" (a long Retry-After) wins over the cadence.
                let next = now + delay_for(config, row, now);
                let next = z.retry_at().map_or(next, |t| t.max(next));
                ctx.store
                    .set_poll(row.id, row.recording_state, Some(next), now)
                    .await?;
            }
            other => return Err(other),
        }
    }
    Ok(report)
}

fn delay_for(config: &Config, row: &OccurrenceRow, now: DateTime<Utc>) -> Duration {
    next_delay(now, row.end(), config.daemon.poll_every)
}

async fn poll_one(
    ctx: &Ctx,
    config: &Config,
    row: &OccurrenceRow,
    report: &mut Report,
) -> Result<(), SyncError> {
    let Some(meeting_id) = row.meeting_id else {
        return Ok(());
    };
    let now = ctx.now();
    let give_up = row.end() + config.daemon.give_up_after;
    if now >= give_up {
        let watch = if row.recording_state == RecordingWatch::Waiting {
            tracing::warn!(alert = "recording-missing", key = %row.key, start = %ts(row.start_utc), meeting_id, "no cloud recording by the give-up time");
            ctx.event(NewEvent {
                kind: "missing",
                key: Some(&row.key),
                occurrence_id: Some(row.id),
                meeting_id: Some(meeting_id),
                message: format!(
                    "no cloud recording for {} by {}",
                    ts(row.start_utc),
                    ts(give_up)
                ),
                ..NewEvent::default()
            })
            .await;
            report.missing += 1;
            RecordingWatch::Missing
        } else {
            // The watch is over: no late file is expected any more, so this is when the
            // cloud copy may go (never earlier: a transcript can follow the other files).
            if config.daemon.after_download != AfterDownload::Keep {
                for rec in ctx.store.recordings_of(row.id).await? {
                    let whose = Whose {
                        key: Some(&row.key),
                        occurrence_id: Some(row.id),
                        meeting_id: row.meeting_id,
                        label: &row.key,
                    };
                    let action = config.daemon.after_download;
                    if remove_cloud(ctx, config, &rec, action, whose).await? {
                        report.cloud_removed += 1;
                    }
                }
            }
            RecordingWatch::Done
        };
        ctx.store.set_poll(row.id, watch, None, now).await?;
        return Ok(());
    }

    report.polled += 1;
    let recordings = fetch_all(ctx, meeting_id).await?;
    let mut all_archived = !recordings.is_empty();
    for rec in &recordings {
        all_archived &= record(ctx, config, row, meeting_id, rec).await?;
    }
    let watch = if recordings.is_empty() {
        RecordingWatch::Waiting
    } else if all_archived {
        RecordingWatch::Complete
    } else {
        RecordingWatch::Found
    };
    if row.recording_state == RecordingWatch::Waiting && watch != RecordingWatch::Waiting {
        report.found += 1;
        let files: usize = recordings.iter().map(|r| r.recording_files.len()).sum();
        tracing::info!(key = %row.key, start = %ts(row.start_utc), meeting_id, instances = recordings.len(), files, "cloud recording found");
        ctx.event(NewEvent {
            kind: "recording-found",
            key: Some(&row.key),
            occurrence_id: Some(row.id),
            meeting_id: Some(meeting_id),
            message: format!("{} instance(s), {files} file(s)", recordings.len()),
            ..NewEvent::default()
        })
        .await;
    }
    let now = ctx.now();
    let next = (now + delay_for(config, row, now)).min(give_up);
    ctx.store.set_poll(row.id, watch, Some(next), now).await?;
    Ok(())
}

/// Every instance's recording: by uuid for each past instance, else the latest by id.
async fn fetch_all(ctx: &Ctx, meeting_id: i64) -> Result<Vec<MeetingRecordings>, ZoomError> {
    let instances = match ctx.zoom.list_past_instances(meeting_id).await {
        Ok(list) => list,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    if instances.is_empty() {
        if let Some(r) = ctx.zoom.get_recordings(&MeetingRef::Id(meeting_id)).await? {
            out.push(r);
        }
        return Ok(out);
    }
    for inst in instances {
        if let Some(r) = ctx
            .zoom
            .get_recordings(&MeetingRef::Uuid(inst.uuid))
            .await?
        {
            out.push(r);
        }
    }
    Ok(out)
}

/// Stores one instance's recording and files; true when every file of it is archived.
async fn record(
    ctx: &Ctx,
    config: &Config,
    row: &OccurrenceRow,
    meeting_id: i64,
    rec: &MeetingRecordings,
) -> Result<bool, SyncError> {
    let seen = SeenRecording {
        occurrence_id: Some(row.id),
        meeting_uuid: rec.uuid.clone(),
        meeting_id: rec.id.unwrap_or(meeting_id),
        start_time: rec.start_time,
        total_size: rec.total_size.and_then(|s| i64::try_from(s).ok()),
        scan: None,
    };
    store_recording(ctx, config, &seen, rec).await
}

/// Stores a recording and those of its files `[recordings] file_types` wants; true when
/// every stored file of it is archived.
pub(crate) async fn store_recording(
    ctx: &Ctx,
    config: &Config,
    seen: &SeenRecording,
    rec: &MeetingRecordings,
) -> Result<bool, SyncError> {
    let now = ctx.now();
    let recording_id = ctx.store.upsert_recording(seen, now).await?;
    let wanted = rec.recording_files.iter().filter(|f| {
        config
            .recordings
            .wants(f.file_type.as_deref().unwrap_or("FILE"))
    });
    for f in wanted {
        ctx.store
            .upsert_file(
                &SeenFile {
                    recording_id,
                    file_id: file_key(f),
                    file_type: f.file_type.clone().unwrap_or_else(|| "FILE".into()),
                    file_extension: f.file_extension.clone().unwrap_or_default(),
                    recording_type: f.recording_type.clone(),
                    recording_start: f.recording_start,
                    recording_end: f.recording_end,
                    file_size: f.file_size.and_then(|s| i64::try_from(s).ok()),
                    download_url: f.download_url.clone(),
                    completed: f.is_ready(),
                },
                now,
            )
            .await?;
    }
    let state = ctx.store.refresh_recording_state(recording_id, now).await?;
    Ok(state.state.is_archived())
}

/// Whose recording a cloud removal is about, for logs and events.
pub(super) struct Whose<'a> {
    pub key: Option<&'a str>,
    pub occurrence_id: Option<i64>,
    pub meeting_id: Option<i64>,
    /// The key, or the host of a meeting zoomd did not create.
    pub label: &'a str,
}

/// Trashes or deletes one instance's cloud recording (`action`), if every file of it is
/// archived. With a `file_types` filter only the archived files go, one by one: the types
/// zoomd does not archive stay in the cloud. Returns whether it removed anything.
pub(super) async fn remove_cloud(
    ctx: &Ctx,
    config: &Config,
    stored: &RecordingRow,
    action: AfterDownload,
    whose: Whose<'_>,
) -> Result<bool, SyncError> {
    if stored.state != RecordingState::Archived {
        // Already removed, or not everything verified: the cloud copy stays.
        if !stored.state.is_archived() {
            tracing::warn!(meeting = %whose.label, meeting_uuid = %stored.meeting_uuid, state = %stored.state, "cloud recording kept: not every file is archived");
        }
        return Ok(false);
    }
    let (how, deleted) = match action {
        AfterDownload::Keep => return Ok(false),
        AfterDownload::Trash => (DeleteAction::Trash, false),
        AfterDownload::Delete => (DeleteAction::Delete, true),
    };
    let uuid = stored.meeting_uuid.clone();
    let meeting = MeetingRef::Uuid(uuid.clone());
    let gone = |r: Result<(), ZoomError>| match r {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    };
    if config.recordings.file_types.is_some() {
        for f in ctx.store.files_of_recording(stored.id).await? {
            // Files Zoom lists without an id (CC) cannot be removed alone; they stay.
            if f.state == FileState::Archived && has_zoom_id(&f.file_id, &f.file_type) {
                gone(
                    ctx.zoom
                        .delete_recording_file(&meeting, &f.file_id, how)
                        .await,
                )?;
            }
        }
    } else {
        gone(ctx.zoom.delete_recordings(&meeting, how).await)?;
    }
    ctx.store
        .mark_cloud_removed(stored.id, deleted, ctx.now())
        .await?;
    let verb = if deleted { "deleted" } else { "trashed" };
    tracing::info!(meeting = %whose.label, meeting_uuid = %uuid, "cloud recording {verb} after archiving");
    ctx.event(NewEvent {
        kind: if deleted {
            "cloud-deleted"
        } else {
            "cloud-trashed"
        },
        key: whose.key,
        occurrence_id: whose.occurrence_id,
        meeting_id: whose.meeting_id,
        message: format!("cloud recording {uuid} {verb}: every file archived and verified"),
        ..NewEvent::default()
    })
    .await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    #[test]
    fn polls_at_the_cadence_until_an_hour_after_the_end_then_backs_off_to_an_hour() {
        let end = t("2026-11-30T10:00:00Z");
        let every = Duration::minutes(5);
        assert_eq!(next_delay(t("2026-11-30T09:00:00Z"), end, every), every);
        assert_eq!(next_delay(t("2026-11-30T10:59:00Z"), end, every), every);
        // Just past the hour: never below the cadence.
        assert_eq!(next_delay(t("2026-11-30T11:01:00Z"), end, every), every);
        // Then the gap grows with the time since: 10, 20, 40 minutes, capped at 60.
        assert_eq!(
            next_delay(t("2026-11-30T11:10:00Z"), end, every),
            Duration::minutes(10)
        );
        assert_eq!(
            next_delay(t("2026-11-30T11:20:00Z"), end, every),
            Duration::minutes(20)
        );
        assert_eq!(
            next_delay(t("2026-11-30T11:40:00Z"), end, every),
            Duration::minutes(40)
        );
        assert_eq!(
            next_delay(t("2026-11-30T14:00:00Z"), end, every),
            MAX_POLL_DELAY
        );
    }

    #[test]
    fn polls_over_three_days_are_bounded() {
        // From start to 72 h after the end of a 1 h meeting, polls every 5 min at first.
        let start = t("2026-11-30T09:00:00Z");
        let end = start + Duration::hours(1);
        let give_up = end + Duration::hours(72);
        let mut now = start;
        let mut polls = 0;
        while now < give_up {
            polls += 1;
            now += next_delay(now, end, Duration::minutes(5));
        }
        // 24 polls in the first two hours, ~5 while backing off, then one an hour.
        assert!(polls <= 24 + 8 + 72, "{polls}");
    }

    #[test]
    fn synthetic_ids_are_stable() {
        let f = RecordingFile {
            id: None,
            meeting_id: None,
            file_type: Some("CC".into()),
            file_extension: Some("VTT".into()),
            file_size: None,
            status: None,
            download_url: Some("https://zoom.us/rec/x".into()),
            recording_type: Some("closed_caption".into()),
            recording_start: Some(t("2026-11-30T09:00:05Z")),
            recording_end: None,
        };
        assert_eq!(file_key(&f), "CC-closed_caption-2026-11-30T09:00:05Z-VTT");
        assert!(!has_zoom_id(&file_key(&f), "CC"));
        assert!(has_zoom_id("a2f19f96-9294-4f51-8134-6f0eea108eb2", "MP4"));
        // What a later listing of the same file (a fresh signed URL) is tracked by.
        let relisted = RecordingFile {
            download_url: Some("https://zoom.us/rec/y?fresh".into()),
            status: Some("completed".into()),
            file_size: Some(1024),
            ..f.clone()
        };
        assert_eq!(file_key(&relisted), file_key(&f));
        // Another file of the same type but a different start is another file.
        let other = RecordingFile {
            recording_start: Some(t("2026-11-30T09:30:00Z")),
            ..f
        };
        assert_ne!(file_key(&other), file_key(&relisted));
    }
}
