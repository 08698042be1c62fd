//! Retry policy: exponential back-off with full jitter, `Retry-After` parsing, and the
//! daily-limit rule. Everything here is pure (time is a parameter) so it is unit-tested
//! without waiting.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rand::Rng;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Back-off ceiling of the first retry; doubles per retry.
    pub base_delay: Duration,
    /// Upper bound of any computed back-off.
    pub max_delay: Duration,
    /// The longest `Retry-After` that is waited out in place. A longer one ends the call
    /// with [`crate::zoom::ZoomError::RateLimited`] carrying the instant, so the caller can
    /// persist the wait instead of blocking a worker.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            // No wait of more than a few seconds in place: a step that waits keeps the
            // daemon's loop from everything else. A longer Retry-After ends the call with
            // the instant, which the caller stores as a "not before".
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The back-off ceiling before retry number `retry` (0 for the first retry):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// A full-jitter back-off: uniformly random in `0..=ceiling(retry)`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// The instant `d` after `now`; `None` past the last instant chrono holds (a hostile
/// `Retry-After` of 10^13 seconds must not panic the client).
pub(crate) fn instant_after(now: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
}

/// Parse a `Retry-After` value into the wait it asks for, counted from `now`.
///
/// Accepted: delta seconds (`"120"`, also fractional `"1.5"` as some proxies send), an HTTP
/// date (`"Wed, 21 Oct 2015 07:28:00 GMT"`), and an ISO 8601 date-time as Zoom has been
/// seen to send (`"2024-05-01T00:00:00Z"`, with offset, or without one meaning UTC).
/// A date in the past means "now" (zero). Anything else is `None` (ignored).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let at: DateTime<Utc> = if let Ok(t) = httpdate::parse_http_date(v) {
        DateTime::<Utc>::from(t)
    } else if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        t.with_timezone(&Utc)
    } else if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f") {
        Utc.from_utc_datetime(&t)
    } else {
        return None;
    };
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The next 00:00 UTC strictly after `now`: when Zoom's daily caps reset.
pub fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    Utc.from_utc_datetime(&tomorrow.and_time(chrono::NaiveTime::MIN))
}

/// Whether an error answer is Zoom's daily cap: HTTP 429 (or 300 on older accounts) whose
/// message mentions the daily rate limit, or a 429 whose `X-RateLimit-Type` says daily.
pub fn is_daily_limit(status: u16, message: &str, ratelimit_type: Option<&str>) -> bool {
    let says_daily = message.to_ascii_lowercase().contains("daily rate limit");
    match status {
        429 => {
            says_daily || ratelimit_type.is_some_and(|t| t.to_ascii_lowercase().contains("daily"))
        }
        300 => says_daily,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now()),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-3", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
        assert_eq!(parse_retry_after("soon", now()), None);
    }

    #[test]
    fn retry_after_http_date() {
        assert_eq!(
            parse_retry_after("Tue, 10 Mar 2026 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        // In the past: no wait.
        assert_eq!(
            parse_retry_after("Tue, 10 Mar 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_iso() {
        assert_eq!(
            parse_retry_after("2026-03-10T12:01:00Z", now()),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("2026-03-10T13:01:00+01:00", now()),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("2026-03-10T12:00:05", now()),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("2026-03-10T12:00:05.500Z", now()),
            Some(Duration::from_millis(5500))
        );
    }

    #[test]
    fn instants_after_now_do_not_overflow() {
        assert_eq!(
            instant_after(now(), Duration::from_secs(60)),
            Some(Utc.with_ymd_and_hms(2026, 3, 10, 12, 1, 0).unwrap())
        );
        let absurd = parse_retry_after("10000000000000", now()).unwrap();
        assert_eq!(instant_after(now(), absurd), None);
        assert_eq!(instant_after(now(), Duration::MAX), None);
    }

    #[test]
    fn backoff_stays_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(4), Duration::from_secs(1));
        assert_eq!(p.ceiling(200), Duration::from_secs(1));
        for retry in 0..40 {
            for _ in 0..50 {
                assert!(p.backoff(retry) <= p.ceiling(retry));
            }
        }
        // Full jitter: the spread really spans the range.
        let samples: Vec<_> = (0..500).map(|_| p.backoff(4)).collect();
        assert!(samples.iter().any(|d| *d < Duration::from_millis(250)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(750)));
    }

    #[test]
    fn huge_base_does_not_overflow() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(u64::MAX / 2),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
        };
        assert_eq!(p.ceiling(5), Duration::from_secs(60));
    }

    #[test]
    fn midnight() {
        assert_eq!(
            next_utc_midnight(now()),
            Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap()
        );
        let exactly = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
        assert_eq!(
            next_utc_midnight(exactly),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn daily_limit_detection() {
        let msg = "You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user.";
        assert!(is_daily_limit(429, msg, None));
        assert!(is_daily_limit(300, msg, None));
        assert!(!is_daily_limit(429, "Too many requests", None));
        assert!(is_daily_limit(429, "", Some("Daily-limit")));
        assert!(!is_daily_limit(300, "Invalid", None));
        assert!(!is_daily_limit(400, msg, None));
    }
}
