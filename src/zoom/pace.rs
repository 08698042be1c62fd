//! The account-wide request budget: every API request passes one [`Limiter`].
//!
//! Zoom counts requests per account and per second, and every app of the account shares the
//! count. Two bounds hold here:
//! - **In flight**: at most `max_in_flight` requests wait for an answer at once.
//! - **Per second**: a request takes one of `⌈r⌉` places when it is sent and gives it back one
//!   window (`⌈r⌉ / r` seconds: one second for a whole `r`) *after its answer*. Zoom sees the
//!   request somewhere between the two, so whatever the network does, no window of one
//!   second at Zoom holds more than `⌈r⌉` of zoomd's requests, and over time they average `r`
//!   per second.
//!
//! Why not a token bucket (e.g. `governor`): a bucket counts requests when they leave.
//! A request that is slow on the way lands at Zoom in the next second together with that
//! second's whole budget, and a bucket that starts full lets through twice the budget in its
//! first second. Holding the place until after the answer costs throughput when the budget
//! is the limit (about `rtt / (1 s + rtt)`: 17 % at a 200 ms round trip) and in exchange the
//! budget holds in every window, bursts included.
//!
//! A 429 that is not the daily cap means the account's per-second limit was hit, by zoomd
//! or by another app of the account: the budget halves (down to one request per second)
//! and nothing is sent before its `Retry-After`; after [`SLOW_FOR`] without another such
//! 429 it doubles back towards the configured budget, one step per [`SLOW_FOR`]. Halving
//! leaves the other apps room while they are busy, and their bursts are usually short.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::clock::SharedClock;

/// Zoom's rate categories that zoomd's operations fall in. Zoom's medium limit is two
/// thirds of its light one (Pro 20/30 per second, Business 60/80 … near enough); the medium
/// operations here are the account scan's listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Light,
    Medium,
}

impl Category {
    /// The category of an operation, as Zoom's API document lists it.
    pub fn of(op: &str) -> Category {
        match op {
            "list_user_recordings" | "list_users" => Category::Medium,
            _ => Category::Light,
        }
    }
}

/// The share of the budget medium requests may take: a backfill of months leaves the rest
/// to the creates and polls that run beside it.
pub const MEDIUM_SHARE: f64 = 2.0 / 3.0;

/// The budget of the medium category within `pace`.
pub fn medium(pace: Pace) -> Pace {
    Pace {
        requests_per_second: (pace.requests_per_second * MEDIUM_SHARE).max(Pace::MIN_RATE),
        max_in_flight: pace.max_in_flight,
    }
}

/// How long a slowed budget stays at each step before it doubles back.
pub const SLOW_FOR: Duration = Duration::from_secs(60);

/// `[zoom] requests_per_second` and `[zoom] max_in_flight`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Requests per second for the whole account (1 to 80; fractions allowed).
    pub requests_per_second: f64,
    /// Requests waiting for an answer at once (1 to 64).
    pub max_in_flight: usize,
}

impl Default for Pace {
    /// A third of a Pro account's "light" limit (30/s), which every app of the account
    /// shares; eight in flight keep that budget busy at Zoom's usual round trips.
    fn default() -> Self {
        Pace {
            requests_per_second: 10.0,
            max_in_flight: 8,
        }
    }
}

impl Pace {
    pub const MIN_RATE: f64 = 1.0;
    pub const MAX_RATE: f64 = 80.0;
    pub const MAX_IN_FLIGHT: usize = 64;
}

/// The limiter every API request of one client passes (token requests excepted).
pub(crate) struct Limiter {
    clock: SharedClock,
    in_flight: Semaphore,
    configured: f64,
    state: Mutex<Window>,
    /// Woken when a request is answered (a place starts cooling) or the budget changes.
    changed: Notify,
}

struct Window {
    rate: f64,
    /// Requests sent and not yet answered: each holds a place.
    sending: usize,
    /// Answered requests: each holds its place until this instant (in order).
    cooling: VecDeque<DateTime<Utc>>,
    /// Nothing is sent before this (Zoom's `Retry-After` of a per-second 429).
    paused_until: Option<DateTime<Utc>>,
    /// When a slowed budget takes its next step back up.
    step_up_at: Option<DateTime<Utc>>,
}

impl Window {
    fn places(&self) -> usize {
        places(self.rate)
    }

    fn hold(&self) -> TimeDelta {
        hold(self.rate)
    }
}

fn places(rate: f64) -> usize {
    // A rate is at least 1 (config), so this is 1 to 80.
    rate.ceil().max(1.0) as usize
}

/// How long an answered request keeps its place: `⌈r⌉` places per `⌈r⌉ / r` seconds is
/// `r` per second on average and never more than `⌈r⌉` in one second.
fn hold(rate: f64) -> TimeDelta {
    let secs = places(rate) as f64 / rate.max(Pace::MIN_RATE);
    TimeDelta::from_std(Duration::from_secs_f64(secs)).unwrap_or(TimeDelta::seconds(1))
}

/// A place in the budget and in the in-flight bound; give it back (drop it) when the answer
/// has arrived, or the request was abandoned.
pub(crate) struct Ticket<'a> {
    limiter: &'a Limiter,
    _in_flight: SemaphorePermit<'a>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut w = self.limiter.lock();
        // Read under the lock, so the instants the window sees never go backwards.
        let now = self.limiter.clock.now();
        w.sending = w.sending.saturating_sub(1);
        let free_at = now + w.hold();
        // Kept in order even if the clock stepped back.
        let free_at = w.cooling.back().map_or(free_at, |last| free_at.max(*last));
        w.cooling.push_back(free_at);
        drop(w);
        self.limiter.changed.notify_waiters();
    }
}

impl Limiter {
    pub(crate) fn new(pace: Pace, clock: SharedClock) -> Self {
        let rate = pace
            .requests_per_second
            .clamp(Pace::MIN_RATE, Pace::MAX_RATE);
        Limiter {
            clock,
            in_flight: Semaphore::new(pace.max_in_flight.clamp(1, Pace::MAX_IN_FLIGHT)),
            configured: rate,
            state: Mutex::new(Window {
                rate,
                sending: 0,
                cooling: VecDeque::new(),
                paused_until: None,
                step_up_at: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        // The window holds plain counters: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a place in flight and in the per-second budget.
    pub(crate) async fn acquire(&self) -> Ticket<'_> {
        // The semaphore is never closed.
        let permit = match self.in_flight.acquire().await {
            Ok(p) => p,
            Err(_) => unreachable!("the in-flight semaphore is never closed"),
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut w = self.lock();
                let now = self.clock.now();
                self.step_up(&mut w, now);
                let hold = w.hold();
                // A place frees when its instant passes; one further ahead than a whole
                // window means the clock stepped back, and it frees too.
                while w
                    .cooling
                    .front()
                    .is_some_and(|t| *t <= now || *t > now + hold)
                {
                    w.cooling.pop_front();
                }
                let paused = w.paused_until.filter(|t| *t > now);
                if paused.is_none() && w.sending + w.cooling.len() < w.places() {
                    w.sending += 1;
                    return Ticket {
                        limiter: self,
                        _in_flight: permit,
                    };
                }
                // A place frees when the first cooling one's instant passes; with every
                // place held by a request in flight, its answer wakes us instead.
                let next = paused.or_else(|| w.cooling.front().copied());
                next.map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            };
            match wait {
                Some(d) => {
                    tokio::select! {
                        _ = self.clock.sleep(d) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Zoom answered 429 for the per-second limit: halve the budget and send nothing before
    /// `retry_at`.
    pub(crate) fn slow_down(&self, retry_at: Option<DateTime<Utc>>) {
        let mut w = self.lock();
        let now = self.clock.now();
        let before = w.rate;
        w.rate = (w.rate / 2.0).max(Pace::MIN_RATE);
        w.step_up_at = Some(now + step());
        if let Some(t) = retry_at.filter(|t| *t > now) {
            w.paused_until = Some(w.paused_until.map_or(t, |p| p.max(t)));
        }
        let after = w.rate;
        drop(w);
        if after < before {
            tracing::warn!(
                from = before,
                to = after,
                "Zoom's per-second limit was hit (by zoomd or another app of the account): slowing down"
            );
        }
        self.changed.notify_waiters();
    }

    /// The budget in force now (requests per second).
    #[cfg(test)]
    pub(crate) fn rate(&self) -> f64 {
        let now = self.clock.now();
        let mut w = self.lock();
        self.step_up(&mut w, now);
        w.rate
    }

    fn step_up(&self, w: &mut Window, now: DateTime<Utc>) {
        while let Some(at) = w.step_up_at.filter(|t| *t <= now) {
            w.rate = (w.rate * 2.0).min(self.configured);
            w.step_up_at = (w.rate < self.configured).then(|| at + step());
            if w.rate >= self.configured {
                tracing::info!(rate = w.rate, "request budget back to the configured pace");
            }
        }
    }
}

/// Where the account's places are kept when several processes share one budget (the
/// database, see `store::claims`): `requests_per_second` is the account's, not each
/// process's. A request takes a place here after its place in its own process's
/// the `Limiter` (which still bounds what is in flight and slows down after a 429), and
/// gives it back with the instant it frees: one window after its answer, as above.
pub trait SharedPlaces: Send + Sync {
    /// Takes one of the first `places` places, held until `expires` should this process
    /// never give it back. `Ok(Err(at))`: none is free before `at`.
    fn take(
        &self,
        places: usize,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Result<i64, DateTime<Utc>>, String>>;

    /// Gives `place` back: free from `free_at`.
    fn give_back(&self, place: i64, free_at: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// A place a process that died never gave back frees this long after it was taken: the
/// longest a request may wait for its answer (30 s) and its window.
const HELD_AT_MOST: TimeDelta = TimeDelta::seconds(60);

/// The shared budget of a client (see [`SharedPlaces`]).
pub(crate) struct Shared {
    places: Arc<dyn SharedPlaces>,
    clock: SharedClock,
    count: usize,
    hold: TimeDelta,
}

impl Shared {
    pub(crate) fn new(places: Arc<dyn SharedPlaces>, pace: Pace, clock: SharedClock) -> Shared {
        let rate = pace
            .requests_per_second
            .clamp(Pace::MIN_RATE, Pace::MAX_RATE);
        Shared {
            places,
            clock,
            count: self::places(rate),
            hold: hold(rate),
        }
    }

    /// Waits for a place of the account's budget. When the database cannot be reached the
    /// request waits (and tries again every second) rather than go out uncounted.
    pub(crate) async fn acquire(&self) -> SharedTicket {
        let mut said = false;
        loop {
            let now = self.clock.now();
            let wait = match self.places.take(self.count, now, now + HELD_AT_MOST).await {
                Ok(Ok(place)) => {
                    return SharedTicket {
                        place,
                        places: self.places.clone(),
                        clock: self.clock.clone(),
                        hold: self.hold,
                    };
                }
                // Every place is held: look again when the first frees (others may race
                // for it; the loser looks again).
                Ok(Err(at)) => (at - now)
                    .to_std()
                    .unwrap_or_default()
                    .clamp(Duration::from_millis(5), Duration::from_secs(1)),
                Err(e) => {
                    if !said {
                        tracing::warn!(error = %e, "cannot take a place in the shared request budget; waiting");
                        said = true;
                    }
                    Duration::from_secs(1)
                }
            };
            self.clock.sleep(wait).await;
        }
    }
}

/// A place in the shared budget; dropping it gives it back (from a task: the drop cannot
/// wait for the database).
pub(crate) struct SharedTicket {
    place: i64,
    places: Arc<dyn SharedPlaces>,
    clock: SharedClock,
    hold: TimeDelta,
}

impl Drop for SharedTicket {
    fn drop(&mut self) {
        let back = self
            .places
            .give_back(self.place, self.clock.now() + self.hold);
        // Outside a runtime (a process ending) the place frees when its hold runs out.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(back);
        }
    }
}

fn step() -> TimeDelta {
    TimeDelta::from_std(SLOW_FOR).unwrap_or(TimeDelta::seconds(60))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scans_listings_are_medium_and_take_two_thirds() {
        assert_eq!(Category::of("list_user_recordings"), Category::Medium);
        assert_eq!(Category::of("list_users"), Category::Medium);
        assert_eq!(Category::of("create_meeting"), Category::Light);
        let m = medium(Pace {
            requests_per_second: 30.0,
            max_in_flight: 8,
        });
        assert_eq!(m.requests_per_second, 20.0);
        assert_eq!(m.max_in_flight, 8);
        // Never below the floor of one a second.
        assert_eq!(
            medium(Pace {
                requests_per_second: 1.0,
                max_in_flight: 1
            })
            .requests_per_second,
            1.0
        );
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// Sends `n` requests through the limiter from `tasks` tasks, each answered at once,
    /// and returns when each was sent (on the manual clock).
    async fn send_all(limiter: Arc<Limiter>, clock: &ManualClock, n: usize) -> Vec<DateTime<Utc>> {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        let left = Arc::new(AtomicUsize::new(n));
        for _ in 0..8 {
            let (limiter, sent, left, clock) =
                (limiter.clone(), sent.clone(), left.clone(), clock.clone());
            handles.push(tokio::spawn(async move {
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let ticket = limiter.acquire().await;
                    sent.lock().unwrap().push(clock.now());
                    drop(ticket);
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let mut v = sent.lock().unwrap().clone();
        v.sort();
        v
    }

    fn most_in_a_second(sent: &[DateTime<Utc>]) -> usize {
        let mut most = 0;
        for (i, t) in sent.iter().enumerate() {
            let n = sent[i..]
                .iter()
                .take_while(|u| **u < *t + TimeDelta::seconds(1))
                .count();
            most = most.max(n);
        }
        most
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_second_holds_more_than_the_budget() {
        let clock = ManualClock::new(start());
        let pace = Pace {
            requests_per_second: 10.0,
            max_in_flight: 8,
        };
        let limiter = Arc::new(Limiter::new(pace, clock.shared()));
        let sent = send_all(limiter, &clock, 100).await;
        assert_eq!(sent.len(), 100);
        assert_eq!(most_in_a_second(&sent), 10, "{sent:?}");
        // And the budget is used: 100 requests in about 10 s, not far more.
        let span = *sent.last().unwrap() - sent[0];
        assert!(span >= TimeDelta::seconds(9), "{span}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fraction_averages_out_and_peaks_at_the_ceiling() {
        let clock = ManualClock::new(start());
        let pace = Pace {
            requests_per_second: 2.5,
            max_in_flight: 4,
        };
        let limiter = Arc::new(Limiter::new(pace, clock.shared()));
        let sent = send_all(limiter, &clock, 30).await;
        assert!(most_in_a_second(&sent) <= 3);
        // 30 requests at 2.5/s: the last cannot go before 27 / 2.5 s after the first
        // (3 per 1.2 s window).
        let span = *sent.last().unwrap() - sent[0];
        assert!(span >= TimeDelta::milliseconds(10_800), "{span}");
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_is_bounded() {
        let limiter = Arc::new(Limiter::new(
            Pace {
                requests_per_second: 80.0,
                max_in_flight: 3,
            },
            crate::clock::system(),
        ));
        let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| limiter.acquire())).await;
        let fourth = tokio::time::timeout(Duration::from_millis(50), limiter.acquire()).await;
        assert!(
            fourth.is_err(),
            "a fourth request went out with three in flight"
        );
        drop(held);
    }

    #[tokio::test]
    async fn a_per_second_429_halves_the_budget_then_it_recovers() {
        let clock = ManualClock::new(start());
        let limiter = Limiter::new(Pace::default(), clock.shared());
        limiter.slow_down(Some(start() + TimeDelta::seconds(2)));
        assert_eq!(limiter.rate(), 5.0);
        limiter.slow_down(None);
        assert_eq!(limiter.rate(), 2.5);
        limiter.slow_down(None);
        limiter.slow_down(None);
        limiter.slow_down(None);
        assert_eq!(limiter.rate(), 1.0, "never below one per second");
        // Nothing goes out before the Retry-After.
        drop(limiter.acquire().await);
        assert!(clock.now() >= start() + TimeDelta::seconds(2));
        clock.set(start() + TimeDelta::seconds(61));
        assert_eq!(limiter.rate(), 2.0);
        clock.set(start() + TimeDelta::seconds(61 + 180));
        assert_eq!(limiter.rate(), 10.0);
    }
}
