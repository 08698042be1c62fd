//! Makes Zoom's upcoming meetings match the schedule within `create_ahead`.
//!
//! - Missing → create, with the intent recorded first. An intent whose outcome is unknown
//!   (crash, timeout, lost answer) is resolved by listing the host's upcoming meetings and
//!   matching the marker zoomd writes into the agenda (or topic + start) before any new
//!   create: one occurrence, at most one Zoom meeting.
//! - Changed topic, duration, agenda or settings → PATCH.
//! - Left the schedule and not started → DELETE, recorded as cancelled. Only meetings zoomd
//!   created are ever touched; past occurrences are history and stay.
//! - Zoom's cap of 100 creates+updates per host and UTC day is counted here; at the cap the
//!   remaining occurrences (soonest first) wait for 00:00 UTC.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use super::plan::{self, Action, Plan};
use super::{Ctx, SyncError};
use crate::config::Config;
use crate::store::{
    CreatedMeeting, NewEvent, NewOccurrence, OccurrenceRow, OccurrenceState as State, ts,
};
use crate::zoom::{
    CreateMeeting, Meeting, MeetingPatch, MeetingStart, ZoomError, next_utc_midnight,
};

pub use super::plan::{DAILY_CAP, desired, marker};

/// An unanswered create may still be in flight at Zoom: it counts as "not created" only
/// this long after it was sent (the client gives up on a request after 30 s).
const CREATE_SETTLE: i64 = 45;
/// After Zoom refuses a create outright (bad user, bad settings), try again this much later.
const REFUSED_RETRY: i64 = 3600;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub created: usize,
    pub reconciled: usize,
    pub updated: usize,
    pub cancelled: usize,
    pub deferred: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Cancellations waiting for `zoomd apply`.
    pub held: usize,
}

super::counts!(Report {
    created,
    reconciled,
    updated,
    cancelled,
    deferred,
    failed,
    unknown,
    held
});

/// One reconcile pass. Its calls to Zoom run concurrently, as many as the client lets be in
/// flight; each occurrence's results are written as they arrive.
pub async fn reconcile(ctx: &Ctx, config: &Config) -> Result<Report, SyncError> {
    let now = ctx.now();
    let mut report = Report::default();

    // 1. Intents whose outcome is unknown are resolved before anything new is created:
    //    one listing per host, the hosts concurrently.
    let mut by_host: HashMap<String, Vec<OccurrenceRow>> = HashMap::new();
    for row in ctx.store.claim_unresolved_creates(now).await? {
        by_host.entry(row.host.clone()).or_default().push(row);
    }
    let unresolved: Mutex<HashSet<i64>> = Mutex::new(HashSet::new());
    report += ctx
        .each(by_host, |(host, rows)| {
            let unresolved = &unresolved;
            async move { resolve_host(ctx, &host, &rows, now, unresolved).await }
        })
        .await?;
    let unresolved = unresolved.into_inner().unwrap_or_else(|e| e.into_inner());

    // 1b. A create still deferred (daily cap, rate limit) when its occurrence starts will
    //     never happen: it becomes a failure a person sees (`failures`), like an unknown
    //     outcome whose start passed, instead of staying "deferred" for ever. A deferred
    //     create was never processed by Zoom, so no meeting exists for it.
    for row in ctx.store.deferred_started(now).await? {
        let reason = format!(
            "never created: the start passed while deferred ({})",
            row.last_error.as_deref().unwrap_or("no reason recorded")
        );
        tracing::error!(key = %row.key, start = %ts(row.start_utc), "{reason}");
        ctx.store
            .mark_create_failed(row.id, now, &reason, now)
            .await?;
        ctx.event(NewEvent {
            kind: "create-failed",
            key: Some(&row.key),
            occurrence_id: Some(row.id),
            message: reason,
            ..NewEvent::default()
        })
        .await;
        report.failed += 1;
    }

    // 2. The desired state, soonest first (so the daily cap defers the latest ones; with
    //    calls in flight at once, "soonest" holds to within the concurrency).
    let mut plan = plan::plan(&ctx.store, config, now, &unresolved).await?;
    let missing_hosts: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let hosts = HostGates::new(ctx.concurrency());
    report += ctx
        .each(std::mem::take(&mut plan.actions), |action| {
            let (missing_hosts, hosts) = (&missing_hosts, &hosts);
            async move { carry_out(ctx, &action, missing_hosts, hosts).await }
        })
        .await?;

    // 3. Stored occurrences that left the schedule.
    report += cancel_planned(ctx, &plan).await?;
    Ok(report)
}

/// Resolves one host's creates of unknown outcome with one listing of its meetings.
async fn resolve_host(
    ctx: &Ctx,
    host: &str,
    rows: &[OccurrenceRow],
    now: DateTime<Utc>,
    unresolved: &Mutex<HashSet<i64>>,
) -> Result<Report, SyncError> {
    let mut report = Report::default();
    let list = match ctx.zoom.list_upcoming_meetings(host).await {
        Ok(list) => list,
        Err(e) => {
            // Cannot tell yet: leave them; nothing new is created for these occurrences.
            tracing::warn!(host, error = %e, unresolved = rows.len(), "cannot resolve earlier creates yet");
            return Ok(report);
        }
    };
    for row in rows {
        match find_created(&list, row) {
            Some(m) => {
                record_created(ctx, row, m, "found after an unknown outcome").await?;
                report.reconciled += 1;
            }
            None if row.start_utc <= now => {
                ctx.store
                    .mark_create_failed(
                        row.id,
                        now,
                        "never created: the start passed while the outcome was unknown",
                        now,
                    )
                    .await?;
            }
            None if row.updated_at + Duration::seconds(CREATE_SETTLE) <= now => {
                lock(unresolved).insert(row.id);
            }
            None => {}
        }
    }
    Ok(report)
}

/// Each host's calls start one at a time and widen in batches as they succeed (1, then 2,
/// then 4, ... up to the step's concurrency; a batch starts when the one before it is
/// done), like TCP's slow start. What an answer can reveal about a host (it left the
/// account: 1001; Zoom's own count says its cap is reached, used up by other apps) then
/// costs one call, or the calls of one small batch, not one per call the step could have
/// in flight; and the cap at Zoom defers the latest occurrences, to within one batch.
struct HostGates {
    max: usize,
    hosts: Mutex<HashMap<String, Gate>>,
    changed: tokio::sync::Notify,
}

struct Gate {
    window: usize,
    busy: usize,
    /// Places of the current batch not yet taken.
    left: usize,
    /// A call of the current batch was refused: the next batch does not widen.
    refused: bool,
}

/// A call's place in its host's window; give it back with [`HostGates::leave`] (dropping it
/// mid-call frees the place without widening).
struct Entered<'a> {
    gates: &'a HostGates,
    host: &'a str,
    done: bool,
}

impl HostGates {
    fn new(max: usize) -> Self {
        HostGates {
            max: max.max(1),
            hosts: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
        }
    }

    async fn enter<'a>(&'a self, host: &'a str) -> Entered<'a> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut hosts = lock(&self.hosts);
                let gate = hosts.entry(host.to_string()).or_insert(Gate {
                    window: 1,
                    busy: 0,
                    left: 1,
                    refused: false,
                });
                // At full width the batches end: any free place is taken.
                let open = if gate.window >= self.max {
                    gate.busy < gate.window
                } else {
                    gate.left > 0
                };
                if open {
                    gate.busy += 1;
                    gate.left = gate.left.saturating_sub(1);
                    return Entered {
                        gates: self,
                        host,
                        done: false,
                    };
                }
            }
            notified.await;
        }
    }

    /// The call is done; `went_through` when the host exists and its cap was not hit.
    fn leave(&self, mut e: Entered<'_>, went_through: bool) {
        e.done = true;
        self.release(e.host, !went_through);
    }

    fn release(&self, host: &str, refused: bool) {
        let mut hosts = lock(&self.hosts);
        if let Some(gate) = hosts.get_mut(host) {
            gate.busy = gate.busy.saturating_sub(1);
            gate.refused |= refused;
            if gate.busy == 0 && gate.left == 0 && gate.window < self.max {
                if !gate.refused {
                    gate.window = (gate.window * 2).min(self.max);
                }
                gate.left = gate.window;
                gate.refused = false;
            }
        }
        drop(hosts);
        self.changed.notify_waiters();
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.gates.release(self.host, true);
        }
    }
}

/// One action of the plan.
async fn carry_out(
    ctx: &Ctx,
    action: &Action,
    missing_hosts: &Mutex<HashSet<String>>,
    hosts: &HostGates,
) -> Result<Report, SyncError> {
    let mut report = Report::default();
    let host = match action {
        Action::Create { want, .. } => want.host.as_str(),
        Action::Update { row, .. } => row.host.as_str(),
    };
    let entered = hosts.enter(host).await;
    let now = ctx.now();
    let mut went_through = true;
    match action {
        Action::Create { want, existing, .. } if lock(missing_hosts).contains(&want.host) => {
            skip_missing_host(ctx, existing.as_ref(), want, &mut report).await?;
        }
        Action::Create { want, existing, .. } => {
            match create(ctx, existing.as_ref(), want, &mut report).await? {
                Flow::StopCreating => {
                    went_through = false;
                    log_cap_once(ctx, &want.host, now).await?;
                }
                Flow::HostMissing => {
                    went_through = false;
                    lock(missing_hosts).insert(want.host.clone());
                }
                Flow::Continue => {}
            }
        }
        Action::Update { row, want, .. } => {
            // Held while its call is made, and compared again as it is now: another process
            // may have just made the same change.
            if let Some(row) = hold(ctx, row).await? {
                let changes = plan::changes(&row, want);
                let done = if row.state != State::Created || changes.is_empty() {
                    Ok(())
                } else if changes.contains(&"host") {
                    move_host(ctx, &row, want, &mut report).await
                } else {
                    update(ctx, &row, want, &changes, &mut report).await
                };
                ctx.store.release_occurrence(row.id).await?;
                done?;
            }
        }
    }
    hosts.leave(entered, went_through);
    Ok(report)
}

/// Whether a cancellation still has something to do (the row is not cancelled or past).
fn still_live(row: &OccurrenceRow) -> bool {
    matches!(
        row.state,
        State::Creating | State::Created | State::Deferred | State::Failed
    )
}

/// Holds an occurrence for a call about its meeting (see `store::claims`) and reads it as
/// it is now. `None`: another process holds it (and does the work), or it is gone.
async fn hold(ctx: &Ctx, row: &OccurrenceRow) -> Result<Option<OccurrenceRow>, SyncError> {
    if !ctx.store.claim_occurrence(row.id, ctx.now()).await? {
        tracing::debug!(key = %row.key, start = %ts(row.start_utc), "held by another process");
        return Ok(None);
    }
    let now = ctx.store.occurrence(row.id).await?;
    if now.is_none() {
        ctx.store.release_occurrence(row.id).await?;
    }
    Ok(now)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Sets of ids: a panic elsewhere cannot leave one half-changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Carries out the plan's cancellations (concurrently): held ones wait (said once, event
/// `cancel-held`), the rest are cancelled.
async fn cancel_planned(ctx: &Ctx, plan: &Plan) -> Result<Report, SyncError> {
    let now = ctx.now();
    let mut report = Report::default();
    for id in &plan.released {
        ctx.store.release_cancellation(*id).await?;
    }
    report += ctx
        .each(
            plan.cancellations
                .iter()
                .filter(|c| !c.held)
                .map(|c| c.row.clone())
                .collect::<Vec<_>>(),
            |row| async move {
                let mut report = Report::default();
                // As it is now, held: another process may be cancelling (or creating) it.
                if let Some(row) = hold(ctx, &row).await? {
                    let done = if still_live(&row) {
                        cancel(ctx, &row, now, &mut report).await
                    } else {
                        Ok(())
                    };
                    ctx.store.release_occurrence(row.id).await?;
                    done?;
                }
                Ok(report)
            },
        )
        .await?;
    let mut newly_held = 0;
    for c in plan.cancellations.iter().filter(|c| c.held) {
        report.held += 1;
        if ctx.store.hold_cancellation(c.row.id, now).await? {
            newly_held += 1;
            ctx.event(NewEvent::about(
                "cancel-held",
                &c.row,
                format!(
                    "{} at {}: left the schedule; cancellation held for `zoomd apply`",
                    c.row.key,
                    ts(c.row.start_utc)
                ),
            ))
            .await;
        }
    }
    if newly_held > 0 {
        let held = plan.cancellations.iter().filter(|c| c.held).count();
        tracing::warn!(
            held,
            upcoming = plan.cancellations.len(),
            "the schedule would cancel {held} upcoming meetings at once (more than max_cancellations, or all): held; `zoomd plan` lists them, `zoomd apply` carries them out"
        );
    }
    Ok(report)
}

/// Another occurrence of a host Zoom just said does not exist: failed like the first one,
/// without asking Zoom again.
async fn skip_missing_host(
    ctx: &Ctx,
    existing: Option<&OccurrenceRow>,
    want: &NewOccurrence,
    report: &mut Report,
) -> Result<(), SyncError> {
    let now = ctx.now();
    let msg = host_missing(&want.host);
    let id = match existing {
        Some(r) => r.id,
        None => {
            ctx.store.record_deferred(want, now, &msg, now).await?;
            match ctx
                .store
                .occurrence_by_key(&want.key, want.start_utc)
                .await?
            {
                Some(r) => r.id,
                None => return Ok(()),
            }
        }
    };
    ctx.store
        .mark_host_missing(id, &want.host, now + HOST_RETRY, &msg, now)
        .await?;
    report.failed += 1;
    Ok(())
}

/// The entry's host changed: the meeting moves (deleted at the old host, created at the new
/// one), unless it has started.
async fn move_host(
    ctx: &Ctx,
    row: &OccurrenceRow,
    want: &NewOccurrence,
    report: &mut Report,
) -> Result<(), SyncError> {
    let Some(id) = row.meeting_id else {
        return Ok(());
    };
    if !delete_unless_started(ctx, row, id).await {
        return Ok(());
    }
    let why = format!("host changed from '{}' to '{}'", row.host, want.host);
    tracing::info!(key = %row.key, start = %ts(row.start_utc), meeting_id = id, "{why}: deleted at the old host");
    ctx.event(NewEvent {
        kind: "moved",
        key: Some(&row.key),
        occurrence_id: Some(row.id),
        meeting_id: Some(id),
        message: format!("meeting {id} deleted: {why}; created again at the new host"),
        ..NewEvent::default()
    })
    .await;
    let now = ctx.now();
    ctx.store.mark_deleted_at_zoom(row.id, &why, now).await?;
    let Some(fresh) = ctx.store.occurrence_by_key(&row.key, row.start_utc).await? else {
        return Ok(());
    };
    if create(ctx, Some(&fresh), want, report).await? == Flow::StopCreating {
        log_cap_once(ctx, &want.host, now).await?;
    }
    Ok(())
}

/// `zoomd apply` without a daemon: cancels what it confirmed, and nothing else.
pub async fn cancel_confirmed(ctx: &Ctx, config: &Config) -> Result<Report, SyncError> {
    let now = ctx.now();
    let mut report = Report::default();
    let plan = plan::plan(&ctx.store, config, now, &HashSet::new()).await?;
    for c in plan.cancellations.iter().filter(|c| c.confirmed) {
        cancel(ctx, &c.row, now, &mut report).await?;
    }
    Ok(report)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    StopCreating,
    /// Zoom says the host does not exist: its other occurrences are not asked this pass.
    HostMissing,
}

/// A host Zoom does not know is asked again after this long (or when the file changes).
const HOST_RETRY: Duration = Duration::hours(24);

fn host_missing(host: &str) -> String {
    format!("host '{host}' does not exist at Zoom (code 1001)")
}

/// The meeting an earlier, unanswered create may have made, among the host's upcoming
/// meetings: by the marker in the agenda, else by topic and start.
fn find_created<'a>(list: &'a [Meeting], row: &OccurrenceRow) -> Option<&'a Meeting> {
    let start = Some(row.start_utc);
    list.iter()
        .find(|m| m.agenda.as_deref().is_some_and(|a| a.contains(&row.marker)))
        .or_else(|| {
            list.iter()
                .find(|m| m.topic.as_deref() == Some(row.topic.as_str()) && m.start_time == start)
        })
}

async fn record_created(
    ctx: &Ctx,
    row: &OccurrenceRow,
    m: &Meeting,
    how: &str,
) -> Result<(), SyncError> {
    let now = ctx.now();
    ctx.store
        .mark_created(
            row.id,
            &CreatedMeeting {
                meeting_id: m.id,
                host_id: m.host_id.clone(),
                uuid: m.uuid.clone(),
                join_url: m.join_url.clone(),
                password: m.password.clone(),
            },
            now,
        )
        .await?;
    if let Some(user) = m.host_id.as_deref().filter(|u| !u.is_empty()) {
        // Zoom's cap is per user: "me" and the owner's email are one host.
        ctx.store
            .remember_host_id(&row.host, user, now.date_naive(), now)
            .await?;
    }
    tracing::info!(key = %row.key, start = %ts(row.start_utc), meeting_id = m.id, "meeting created ({how})");
    ctx.event(NewEvent {
        kind: "created",
        key: Some(&row.key),
        occurrence_id: Some(row.id),
        meeting_id: Some(m.id),
        message: format!("meeting {} for {} ({how})", m.id, ts(row.start_utc)),
        ..NewEvent::default()
    })
    .await;
    Ok(())
}

/// Creates the meeting for `want`, intent first. `existing` is the stored row, if any.
async fn create(
    ctx: &Ctx,
    existing: Option<&OccurrenceRow>,
    want: &NewOccurrence,
    report: &mut Report,
) -> Result<Flow, SyncError> {
    let now = ctx.now();
    let day = now.date_naive();
    // Taken (counted) before the call: a call whose answer is lost still counts at Zoom.
    // One statement checks and counts, so creates in flight at once for one host never
    // send call 101; a claim that loses below gives it back.
    if !ctx.store.take_call(&want.host, day, DAILY_CAP).await? {
        let until = next_utc_midnight(now);
        let reason = format!(
            "daily create/update cap of {DAILY_CAP} for host {} reached",
            want.host
        );
        match existing {
            Some(r) if r.state == State::Deferred && r.not_before == Some(until) => {}
            Some(r) => ctx.store.mark_deferred(r.id, until, &reason, now).await?,
            None => {
                ctx.store.record_deferred(want, until, &reason, now).await?;
            }
        }
        report.deferred += 1;
        return Ok(Flow::StopCreating);
    }
    // The intent is a claim: only the write that claimed the row may call Zoom for it.
    let claimed = match existing {
        Some(r) => ctx
            .store
            .retry_create_intent(r.id, want, now)
            .await?
            .then(|| r.clone()),
        None => ctx.store.record_create_intent(want, now).await?,
    };
    let Some(row) = claimed else {
        tracing::debug!(key = %want.key, start = %ts(want.start_utc), "someone else claimed this create");
        ctx.store.uncount_call(&want.host, day).await?;
        return Ok(Flow::Continue);
    };
    let request = CreateMeeting {
        topic: want.topic.clone(),
        start: MeetingStart::Utc {
            at: want.start_utc,
            timezone: Some(want.timezone.name().to_string()),
        },
        duration_minutes: want.duration_min,
        agenda: want.agenda.clone(),
        settings: want.settings.clone(),
    };
    match ctx.zoom.create_meeting(&want.host, &request).await {
        Ok(m) => {
            record_created(ctx, &row, &m, "new").await?;
            report.created += 1;
            Ok(Flow::Continue)
        }
        Err(e @ ZoomError::DailyLimit { .. }) => {
            let until = e.retry_at().unwrap_or_else(|| next_utc_midnight(now));
            // The host's day is marked exhausted by `log_cap_once`, which the caller runs on
            // `StopCreating`: marking it here first made that say nothing (it logs only when
            // it is the one to mark), so a cap hit at Zoom was never logged or recorded.
            ctx.store
                .mark_deferred(row.id, until, &e.to_string(), ctx.now())
                .await?;
            report.deferred += 1;
            Ok(Flow::StopCreating)
        }
        Err(e @ ZoomError::OutcomeUnknown { .. }) => {
            tracing::warn!(key = %want.key, start = %ts(want.start_utc), error = %e, "create outcome unknown; will look for it before creating again");
            ctx.store
                .note_create_unknown(row.id, &e.to_string(), ctx.now())
                .await?;
            ctx.event(NewEvent {
                kind: "create-unknown",
                key: Some(&want.key),
                occurrence_id: Some(row.id),
                message: e.to_string(),
                ..NewEvent::default()
            })
            .await;
            report.unknown += 1;
            Ok(Flow::Continue)
        }
        Err(ZoomError::NotFound {
            code: Some(1001), ..
        }) => {
            // The host left the account (or never was in it). Not a cap problem: Zoom did not
            // count the call, and asking every hour would only spend the cap.
            ctx.store.uncount_call(&want.host, day).await?;
            let msg = host_missing(&want.host);
            tracing::error!(key = %want.key, start = %ts(want.start_utc), host = %want.host, "{msg}; asked again when the schedule file changes or in a day");
            ctx.store
                .mark_host_missing(row.id, &want.host, now + HOST_RETRY, &msg, ctx.now())
                .await?;
            ctx.event(NewEvent {
                kind: "create-failed",
                key: Some(&want.key),
                occurrence_id: Some(row.id),
                message: msg,
                ..NewEvent::default()
            })
            .await;
            report.failed += 1;
            Ok(Flow::HostMissing)
        }
        Err(e) => {
            // Transient: soon again. Refused (4xx): an hour later, and visible in `failures`.
            let (state_failed, retry_at) = if e.is_transient() {
                (false, e.retry_at().unwrap_or(now + Duration::seconds(60)))
            } else {
                (true, now + Duration::seconds(REFUSED_RETRY))
            };
            let msg = e.to_string();
            if state_failed {
                tracing::error!(key = %want.key, start = %ts(want.start_utc), error = %msg, "Zoom refused to create the meeting");
                ctx.store
                    .mark_create_failed(row.id, retry_at, &msg, ctx.now())
                    .await?;
                report.failed += 1;
            } else {
                tracing::warn!(key = %want.key, start = %ts(want.start_utc), error = %msg, "create failed; retrying later");
                ctx.store
                    .mark_deferred(row.id, retry_at, &msg, ctx.now())
                    .await?;
                report.deferred += 1;
            }
            ctx.event(NewEvent {
                kind: if state_failed {
                    "create-failed"
                } else {
                    "create-retry"
                },
                key: Some(&want.key),
                occurrence_id: Some(row.id),
                message: msg,
                ..NewEvent::default()
            })
            .await;
            Ok(Flow::Continue)
        }
    }
}

/// The host hit its cap: the remaining occurrences wait for 00:00 UTC. Said once per host
/// and day (in the log and the events table).
async fn log_cap_once(ctx: &Ctx, host: &str, now: DateTime<Utc>) -> Result<(), SyncError> {
    let day = now.date_naive();
    if ctx.store.mark_quota_exhausted(host, day).await? {
        let until = next_utc_midnight(now);
        tracing::warn!(host, until = %ts(until), "daily create/update cap of {DAILY_CAP} reached; deferring creates");
        ctx.event(NewEvent {
            kind: "deferred",
            message: format!(
                "host {host}: daily create/update cap reached; creates wait until {}",
                ts(until)
            ),
            ..NewEvent::default()
        })
        .await;
    }
    Ok(())
}

async fn update(
    ctx: &Ctx,
    row: &OccurrenceRow,
    want: &NewOccurrence,
    changes: &[&'static str],
    report: &mut Report,
) -> Result<(), SyncError> {
    let now = ctx.now();
    let Some(meeting_id) = row.meeting_id else {
        return Ok(());
    };
    let mut patch = MeetingPatch::default();
    for field in changes {
        match *field {
            "topic" => patch.topic = Some(want.topic.clone()),
            "duration" => patch.duration_minutes = Some(want.duration_min),
            "agenda" => patch.agenda = want.agenda.clone(),
            "settings" => patch.settings = Some(want.settings.clone()),
            _ => {} // "host" moves the meeting instead (`move_host`)
        }
    }
    let day = now.date_naive();
    if !ctx.store.take_call(&row.host, day, DAILY_CAP).await? {
        return Ok(()); // the next pass after 00:00 UTC updates it
    }
    match ctx.zoom.update_meeting(meeting_id, &patch).await {
        Ok(()) => {
            ctx.store.mark_updated(row.id, want, ctx.now()).await?;
            let what = changes.join(", ");
            tracing::info!(key = %row.key, start = %ts(row.start_utc), meeting_id, "meeting updated: {what}");
            ctx.event(NewEvent {
                kind: "updated",
                key: Some(&row.key),
                occurrence_id: Some(row.id),
                meeting_id: Some(meeting_id),
                message: format!("changed {what}"),
                ..NewEvent::default()
            })
            .await;
            report.updated += 1;
        }
        Err(ZoomError::DailyLimit { .. }) => {
            // Marks the day exhausted and says so once (as for creates).
            log_cap_once(ctx, &row.host, now).await?;
        }
        Err(e) => {
            tracing::warn!(key = %row.key, meeting_id, error = %e, "update failed; retrying next pass");
        }
    }
    Ok(())
}

/// Deletes meeting `id` at Zoom unless it has started (the host may start early: a started
/// meeting is never touched). True when it is gone; false when it stays for now (started,
/// or Zoom could not be asked: the next pass tries again).
async fn delete_unless_started(ctx: &Ctx, row: &OccurrenceRow, id: i64) -> bool {
    let checked = match ctx.zoom.get_meeting(id).await {
        Ok(m) if m.status.as_deref() == Some("started") => return false,
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => return true,
        Err(e) => Err(e),
    };
    let deleted = match checked {
        Ok(()) => ctx.zoom.delete_meeting(id).await,
        Err(e) => Err(e),
    };
    match deleted {
        Ok(()) => true,
        Err(e) if e.is_not_found() => true,
        Err(e) => {
            tracing::warn!(key = %row.key, meeting_id = id, error = %e, "cannot check or delete the meeting; next pass");
            false
        }
    }
}

async fn cancel(
    ctx: &Ctx,
    row: &OccurrenceRow,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<(), SyncError> {
    let reason = "left the schedule";
    match (row.state, row.meeting_id) {
        (State::Created, Some(id)) => {
            if row.start_utc <= now {
                return Ok(());
            }
            if !delete_unless_started(ctx, row, id).await {
                return Ok(());
            }
        }
        (State::Creating, _) => return Ok(()), // resolved first, next pass
        _ => {}
    }
    ctx.store.mark_cancelled(row.id, reason, ctx.now()).await?;
    tracing::info!(key = %row.key, start = %ts(row.start_utc), meeting_id = row.meeting_id, "occurrence cancelled: {reason}");
    ctx.event(NewEvent::about(
        "cancelled",
        row,
        format!("{} at {}: {reason}", row.key, ts(row.start_utc)),
    ))
    .await;
    report.cancelled += 1;
    Ok(())
}
