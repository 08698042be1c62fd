//! Facts about wall clocks in IANA zones that both `config` (validating one-off times) and
//! `schedule` (placing occurrences) need. Pure: no I/O, no clock.

use chrono::{Duration, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// The wall-clock start and end of the DST gap that contains `wall` (both on whole minutes:
/// real zones change offset on minute boundaries). For a time outside any gap both are its
/// minute.
pub fn gap_around(tz: Tz, wall: NaiveDateTime) -> (NaiveDateTime, NaiveDateTime) {
    let minute = Duration::minutes(1);
    let exists = |t: NaiveDateTime| tz.from_local_datetime(&t).earliest().is_some();
    let base = wall
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(wall);
    // Gaps last at most a day (Samoa skipped 2011-12-30); the bounds only guard the loop.
    let limit = 2 * 24 * 60;
    let mut start = base;
    for _ in 0..limit {
        if exists(start - minute) {
            break;
        }
        start -= minute;
    }
    let mut end = base;
    for _ in 0..limit {
        if exists(end) {
            break;
        }
        end += minute;
    }
    (start, end)
}
