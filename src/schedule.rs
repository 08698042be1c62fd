//! Entries + a time window → occurrences. Pure: no I/O, no clock; `from`/`to` are parameters.
//!
//! Cron expressions are matched against the *local wall clock* of the entry's zone (croner
//! iterates naive date-times), and each matching wall-clock time is then placed on the
//! timeline with chrono-tz:
//! - a wall time that does not exist (spring-forward gap) runs at the first valid instant
//!   after the gap (02:30 in New York on the spring-forward day runs at 03:00 EDT);
//! - a wall time that exists twice (fall-back fold) runs once, at its first occurrence
//!   (01:30 in New York on the fall-back day runs at 01:30 EDT, not again at 01:30 EST).
//!
//! Placing wall times this way keeps the mapping non-decreasing, which lets the iterator stop
//! at the first instant past the window. Several gap times that land on the same instant
//! collapse into one occurrence.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::{MeetingEntry, When};

/// One meeting of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub key: String,
    pub start: DateTime<Utc>,
    pub local: DateTime<Tz>,
    pub duration_min: u32,
    /// Set when the wall-clock time was moved or disambiguated by a DST rule.
    pub dst: Option<DstNote>,
}

impl Occurrence {
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::minutes(i64::from(self.duration_min))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DstNote {
    /// The scheduled wall time fell into a gap; the meeting runs at the gap's end.
    Gap { wall: NaiveDateTime },
    /// The scheduled wall time occurs twice; the meeting runs at the first.
    Fold { wall: NaiveDateTime },
}

impl std::fmt::Display for DstNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DstNote::Gap { wall } => write!(
                f,
                "{} does not exist (DST gap): moved to the first valid time after it",
                wall.format("%Y-%m-%d %H:%M")
            ),
            DstNote::Fold { wall } => write!(
                f,
                "{} occurs twice (DST fold): runs once, at the first",
                wall.format("%Y-%m-%d %H:%M")
            ),
        }
    }
}

/// Every occurrence of every entry with `from <= start < to`, sorted by start (then key).
pub fn occurrences(
    entries: &[MeetingEntry],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Occurrence> {
    let mut out: Vec<Occurrence> = entries
        .iter()
        .flat_map(|e| iter_from(e, from).take_while(move |o| o.start < to))
        .collect();
    out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.key.cmp(&b.key)));
    out
}

/// The next `n` occurrences of one entry at or after `from`.
pub fn next(entry: &MeetingEntry, from: DateTime<Utc>, n: usize) -> Vec<Occurrence> {
    iter_from(entry, from).take(n).collect()
}

/// The occurrences of one entry at or after `from`, lazily, in order.
pub fn iter_from(
    entry: &MeetingEntry,
    from: DateTime<Utc>,
) -> Box<dyn Iterator<Item = Occurrence> + '_> {
    let tz = entry.timezone;
    let make = move |start: DateTime<Utc>, dst: Option<DstNote>| Occurrence {
        key: entry.key.clone(),
        start,
        local: start.with_timezone(&tz),
        duration_min: entry.duration_min,
        dst,
    };
    match &entry.when {
        When::At(wall) => {
            let placed = place(tz, *wall);
            Box::new(
                placed
                    .filter(|(start, _)| *start >= from)
                    .map(move |(start, dst)| make(start, dst))
                    .into_iter(),
            )
        }
        When::Cron(expr) => {
            // A gap before `from` can move wall times from before `from` onto or past it: start
            // the walk far enough back when the offset grew in the last day (rare; cheap).
            let back = if offset_secs(tz, from) > offset_secs(tz, from - Duration::hours(26)) {
                Duration::hours(26)
            } else {
                Duration::zero()
            };
            let start_wall = (from - back).with_timezone(&tz).naive_local();
            let mut last: Option<DateTime<Utc>> = None;
            let skip = &entry.skip;
            let walls = expr.cron.iter_from(start_wall, croner::Direction::Forward);
            Box::new(walls.filter_map(move |wall| {
                let (start, dst) = place(tz, wall)?;
                if start < from || last == Some(start) {
                    return None;
                }
                last = Some(start);
                if skip.contains(&start.with_timezone(&tz).date_naive()) {
                    return None;
                }
                Some(make(start, dst))
            }))
        }
    }
}

fn offset_secs(tz: Tz, at: DateTime<Utc>) -> i64 {
    use chrono::Offset;
    i64::from(at.with_timezone(&tz).offset().fix().local_minus_utc())
}

/// Puts a wall-clock time on the timeline by the module's DST rules. `None` only when the
/// zone has no valid time within two days after it (no real zone).
pub fn place(tz: Tz, wall: NaiveDateTime) -> Option<(DateTime<Utc>, Option<DstNote>)> {
    match tz.from_local_datetime(&wall) {
        chrono::LocalResult::Single(t) => Some((t.with_timezone(&Utc), None)),
        chrono::LocalResult::Ambiguous(first, _) => {
            Some((first.with_timezone(&Utc), Some(DstNote::Fold { wall })))
        }
        chrono::LocalResult::None => {
            let (_, end) = crate::zone::gap_around(tz, wall);
            let t = tz.from_local_datetime(&end).earliest()?;
            Some((t.with_timezone(&Utc), Some(DstNote::Gap { wall })))
        }
    }
}
