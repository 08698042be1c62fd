//! Instants for schedules that fire a few real seconds from now, and the hang guard.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Timelike, Utc};

/// The instant now, whole seconds (as the database stores them and cron can name them).
pub fn now_whole_second() -> DateTime<Utc> {
    Utc::now().with_nanosecond(0).expect("whole second")
}

/// The whole second `secs` from now.
pub fn in_secs(secs: i64) -> DateTime<Utc> {
    now_whole_second() + chrono::Duration::seconds(secs)
}

/// A 6-field cron expression (second minute hour day month, any weekday) that fires
/// exactly at `t`, written in `t`'s zone.
pub fn cron_at<Tz: TimeZone>(t: DateTime<Tz>) -> String
where
    Tz::Offset: Display,
{
    t.format("%-S %-M %-H %-d %-m *").to_string()
}

/// How long a wait on real processes may last before the test calls it a hang. Only a
/// guard: nothing asserts that anything was fast.
pub const HANG: Duration = Duration::from_secs(300);

/// Polls `cond` every 250 ms until it holds; `false` when it has not after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let poll = async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(limit, poll).await.is_ok()
}
