//! What the next meetings pass would do, from the schedule and the database alone: no call
//! to Zoom, no write. `sync::meetings` carries a plan out; `zoomd plan` prints one and
//! `zoomd apply` confirms the cancellations it holds.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::{Config, MeetingEntry};
use crate::schedule::{self, Occurrence};
use crate::store::{NewOccurrence, OccurrenceRow, OccurrenceState as State, Store, StoreError, ts};
use crate::zoom::next_utc_midnight;

/// Zoom's per-host daily cap of meeting create/update calls.
pub const DAILY_CAP: i64 = 100;

/// The next pass, in the order it would act (soonest occurrence first).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Plan {
    pub now: DateTime<Utc>,
    /// Creates and updates, soonest first. Those past a host's daily cap carry the instant
    /// they wait for (`deferred_until`).
    pub actions: Vec<Action>,
    /// Occurrences that left the schedule. `held`: more than `max_cancellations` at once, or
    /// every upcoming meeting — they wait for `zoomd apply` (unless it confirmed them).
    pub cancellations: Vec<Cancellation>,
    /// Occurrences waiting for a later attempt (daily cap, a refused or failed create).
    pub waiting: Vec<Waiting>,
    /// Creates whose outcome is unknown: looked for at Zoom before anything else for them.
    pub unresolved: Vec<Item>,
    /// Occurrences scheduled again whose cancellation had been held: the hold is dropped.
    #[serde(skip)]
    pub released: Vec<i64>,
}

/// The occurrence an entry of the plan is about, as people read it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub key: String,
    pub start_utc: DateTime<Utc>,
    pub start_local: String,
    pub timezone: chrono_tz::Tz,
    pub topic: String,
    pub host: String,
    pub meeting_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create {
        #[serde(flatten)]
        item: Item,
        #[serde(skip)]
        want: NewOccurrence,
        /// The stored row this create retries (deferred, failed, cancelled or unresolved).
        #[serde(skip)]
        existing: Option<OccurrenceRow>,
        deferred_until: Option<DateTime<Utc>>,
    },
    Update {
        #[serde(flatten)]
        item: Item,
        #[serde(skip)]
        want: NewOccurrence,
        #[serde(skip)]
        row: OccurrenceRow,
        /// What changes: `topic`, `duration`, `agenda`, `settings`.
        changes: Vec<&'static str>,
        deferred_until: Option<DateTime<Utc>>,
    },
}

impl Action {
    pub fn item(&self) -> &Item {
        match self {
            Action::Create { item, .. } | Action::Update { item, .. } => item,
        }
    }

    pub fn deferred_until(&self) -> Option<DateTime<Utc>> {
        match self {
            Action::Create { deferred_until, .. } | Action::Update { deferred_until, .. } => {
                *deferred_until
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cancellation {
    #[serde(flatten)]
    pub item: Item,
    pub held: bool,
    /// `zoomd apply` confirmed it: carried out despite the hold.
    pub confirmed: bool,
    #[serde(skip)]
    pub row: OccurrenceRow,
}

#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    #[serde(flatten)]
    pub item: Item,
    pub state: State,
    pub not_before: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

impl Item {
    fn of_row(r: &OccurrenceRow) -> Item {
        Item {
            key: r.key.clone(),
            start_utc: r.start_utc,
            start_local: r.start_local.clone(),
            timezone: r.timezone,
            topic: r.topic.clone(),
            host: r.host.clone(),
            meeting_id: r.meeting_id,
        }
    }

    fn of_want(w: &NewOccurrence, row: Option<&OccurrenceRow>) -> Item {
        Item {
            key: w.key.clone(),
            start_utc: w.start_utc,
            start_local: w.start_local.clone(),
            timezone: w.timezone,
            topic: w.topic.clone(),
            host: w.host.clone(),
            meeting_id: row.and_then(|r| r.meeting_id),
        }
    }
}

/// The marker zoomd writes into a meeting's agenda to find it again.
pub fn marker(key: &str, start: DateTime<Utc>) -> String {
    format!("zoomd:{key}:{}", ts(start))
}

/// What zoomd sends Zoom for an occurrence.
pub fn desired(entry: &MeetingEntry, occ: &Occurrence) -> NewOccurrence {
    let marker = marker(&entry.key, occ.start);
    let agenda = match &entry.agenda {
        Some(a) if !a.is_empty() => format!("{a}\n\n{marker}"),
        _ => marker.clone(),
    };
    NewOccurrence {
        key: entry.key.clone(),
        start_utc: occ.start,
        start_local: occ.local.to_rfc3339(),
        timezone: entry.timezone,
        duration_min: entry.duration_min,
        host: entry.host.clone(),
        topic: entry.topic.clone(),
        agenda: Some(agenda),
        settings: entry.settings.clone(),
        marker,
    }
}

/// What changed between a created meeting and the schedule (empty: nothing to PATCH).
pub fn changes(row: &OccurrenceRow, want: &NewOccurrence) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if row.topic != want.topic {
        changed.push("topic");
    }
    if row.duration_min != i64::from(want.duration_min) {
        changed.push("duration");
    }
    if row.agenda != want.agenda {
        changed.push("agenda");
    }
    if row.settings_json != want.settings {
        changed.push("settings");
    }
    if row.host != want.host {
        changed.push("host");
    }
    changed
}

/// Whether the schedule still produces this occurrence.
pub fn still_scheduled(config: &Config, row: &OccurrenceRow) -> bool {
    let start = row.start_utc;
    config
        .meetings
        .iter()
        .filter(|e| e.key == row.key)
        .any(|e| {
            schedule::occurrences(std::slice::from_ref(e), start, start + Duration::seconds(1))
                .iter()
                .any(|o| o.start == start)
        })
}

/// Plans the next pass. `retry_unresolved`: creates of unknown outcome that were looked for
/// at Zoom and not found (after the settle time): they may be created again.
pub async fn plan(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
    retry_unresolved: &HashSet<i64>,
) -> Result<Plan, StoreError> {
    let mut plan = Plan {
        now,
        ..Plan::default()
    };
    let entries: HashMap<&str, &MeetingEntry> = config
        .meetings
        .iter()
        .map(|e| (e.key.as_str(), e))
        .collect();
    let day = now.date_naive();
    // Calls each host has left today, counted down as the plan spends them.
    let mut left: HashMap<String, i64> = HashMap::new();
    let horizon = now + config.daemon.create_ahead;
    // The stored side of the window in one read: the pass costs what the window holds,
    // not what the database has accumulated.
    let mut stored: HashMap<(String, DateTime<Utc>), OccurrenceRow> = store
        .occurrences_between(now, horizon)
        .await?
        .into_iter()
        .map(|r| ((r.key.clone(), r.start_utc), r))
        .collect();
    for occ in schedule::occurrences(&config.meetings, now, horizon) {
        let Some(entry) = entries.get(occ.key.as_str()) else {
            continue;
        };
        let want = desired(entry, &occ);
        let row = stored.remove(&(want.key.clone(), want.start_utc));
        let action = match &row {
            None => Some((None, Vec::new())),
            Some(r) => match r.state {
                State::Creating if retry_unresolved.contains(&r.id) => Some((row.clone(), vec![])),
                State::Creating => {
                    plan.unresolved.push(Item::of_row(r));
                    None
                }
                State::Deferred | State::Failed | State::Cancelled => {
                    if r.state == State::Cancelled || r.not_before.is_none_or(|t| t <= now) {
                        Some((row.clone(), vec![]))
                    } else {
                        plan.waiting.push(Waiting {
                            item: Item::of_row(r),
                            state: r.state,
                            not_before: r.not_before,
                            reason: r.last_error.clone(),
                        });
                        None
                    }
                }
                State::Created if r.start_utc > now && r.meeting_id.is_some() => {
                    let changed = changes(r, &want);
                    (!changed.is_empty()).then(|| (row.clone(), changed))
                }
                State::Created => None,
            },
        };
        let Some((existing, changed)) = action else {
            continue;
        };
        let remaining = match left.get_mut(&want.host) {
            Some(n) => n,
            None => {
                let (calls, exhausted) = store.quota(&want.host, day).await?;
                let n = if exhausted { 0 } else { DAILY_CAP - calls };
                left.entry(want.host.clone()).or_insert(n)
            }
        };
        let deferred_until = if *remaining > 0 {
            *remaining -= 1;
            None
        } else {
            Some(next_utc_midnight(now))
        };
        let item = Item::of_want(&want, existing.as_ref());
        plan.actions.push(match existing {
            Some(row) if row.state == State::Created => Action::Update {
                item,
                want,
                row,
                changes: changed,
                deferred_until,
            },
            existing => Action::Create {
                item,
                want,
                existing,
                deferred_until,
            },
        });
    }

    // Stored occurrences that left the schedule; big cancellations wait for a person.
    let live = store.live_occurrences_from(now).await?;
    let mut leaving = Vec::new();
    for row in &live {
        if still_scheduled(config, row) {
            if row.cancel_held_at.is_some() {
                plan.released.push(row.id);
            }
        } else {
            leaving.push(row);
        }
    }
    let unconfirmed = leaving
        .iter()
        .filter(|r| r.cancel_confirmed_at.is_none())
        .count();
    let hold = unconfirmed > config.daemon.max_cancellations
        || (unconfirmed > 0 && leaving.len() == live.len());
    plan.cancellations = leaving
        .into_iter()
        .map(|row| Cancellation {
            item: Item::of_row(row),
            held: hold && row.cancel_confirmed_at.is_none(),
            confirmed: row.cancel_confirmed_at.is_some(),
            row: row.clone(),
        })
        .collect();
    Ok(plan)
}
