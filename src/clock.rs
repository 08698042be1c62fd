//! Where "now" comes from and how waiting is done, behind one trait so tests and
//! simulations can run retries, back-offs and renewals without waiting.
//!
//! - [`SystemClock`]: the wall clock and tokio's timer; what the daemon uses.
//! - [`ManualClock`]: for tests and simulations. Its time only moves when told to (or when
//!   something sleeps on it), and every sleep is recorded so a test can assert on it.
//!
//! Code takes an `Arc<dyn Clock>` ([`SharedClock`]). Only waits that are part of the
//! program's logic (retry back-off, `Retry-After`, schedules) go through it; I/O timeouts
//! (a request that takes too long, a stalled body) measure the network, not the schedule,
//! and stay on tokio's timers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The future [`Clock::sleep`] returns.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a clock is shared between the parts that use it.
pub type SharedClock = Arc<dyn Clock>;

/// A source of the current instant and of waits.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> Sleep;
}

/// The wall clock (`Utc::now`) and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock for tests and simulations: `now` is whatever it was set to, and `sleep(d)`
/// records `d`, moves the time forward to `d` after the sleep was made (unless it is
/// already past that) and completes at once (after yielding to
/// the scheduler once, so other tasks still get their turn).
///
/// Clones share one time and one list of sleeps: keep a clone to steer and inspect the
/// clock, and hand another (as [`SharedClock`]) to the code under test.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<Manual>>,
}

struct Manual {
    now: DateTime<Utc>,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(Manual {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    /// This clock as the shared form code takes.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    /// Moves the time forward by `d` (saturating at the latest representable instant).
    pub fn advance(&self, d: Duration) {
        let mut m = self.lock();
        m.now = add(m.now, d);
    }

    /// Sets the time to `t`, forwards or backwards.
    pub fn set(&self, t: DateTime<Utc>) {
        self.lock().now = t;
    }

    /// Every sleep so far, in the order they started.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    /// Every sleep so far, and forgets them (to look at one step of a test at a time).
    pub fn take_sleeps(&self) -> Vec<Duration> {
        std::mem::take(&mut self.lock().sleeps)
    }

    /// The sum of all recorded sleeps.
    pub fn slept(&self) -> Duration {
        self.lock().sleeps.iter().sum()
    }

    fn lock(&self) -> MutexGuard<'_, Manual> {
        // A test that panicked while holding the lock left consistent data behind (every
        // update is a single assignment); the other tasks may go on using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.lock();
        f.debug_struct("ManualClock")
            .field("now", &m.now)
            .field("sleeps", &m.sleeps.len())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    fn sleep(&self, d: Duration) -> Sleep {
        let clock = self.clone();
        // The wake-up instant is fixed when the sleep is made, and the time moves to it (not
        // by `d` again): tasks that sleep at once wake together, as on a real clock, instead
        // of adding their waits up.
        let deadline = add(self.now(), d);
        // Recorded when first polled, not when created: a sleep that loses a `select!`
        // before it starts never happened.
        Box::pin(async move {
            {
                let mut m = clock.lock();
                m.sleeps.push(d);
                m.now = m.now.max(deadline);
            }
            tokio::task::yield_now().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn manual_sleep_records_advances_and_returns_at_once() {
        let clock = ManualClock::new(t0());
        let shared = clock.shared();
        let pending = shared.sleep(Duration::from_secs(3600));
        assert!(
            clock.sleeps().is_empty(),
            "nothing happens before it is awaited"
        );
        // An hour on the wall clock would hang the test; on this clock it is nothing.
        pending.await;
        shared.sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            clock.sleeps(),
            [Duration::from_secs(3600), Duration::from_millis(1500)]
        );
        assert_eq!(
            shared.now(),
            t0() + TimeDelta::hours(1) + TimeDelta::milliseconds(1500)
        );
        assert_eq!(clock.slept(), Duration::from_millis(3_601_500));
        assert_eq!(clock.take_sleeps().len(), 2);
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn manual_set_and_advance() {
        let clock = ManualClock::new(t0());
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), t0() + TimeDelta::seconds(90));
        clock.set(t0() - TimeDelta::days(1));
        assert_eq!(clock.now(), t0() - TimeDelta::days(1));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC, "saturates");
        // Setting and advancing are not sleeps.
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn clones_share_one_time() {
        let a = ManualClock::new(t0());
        let b = a.clone();
        b.advance(Duration::from_secs(5));
        assert_eq!(a.now(), t0() + TimeDelta::seconds(5));
    }

    #[tokio::test]
    async fn system_clock_reads_the_wall_clock() {
        let c = system();
        let before = Utc::now();
        let now = c.now();
        assert!(now >= before && now <= Utc::now());
        c.sleep(Duration::ZERO).await;
    }
}
