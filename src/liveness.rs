//! Liveness for systemd's watchdog: the daemon's loop, and every request a step sends to
//! Zoom, feed a [`Heartbeat`]; a separate task pings the watchdog every half interval only
//! while the last beat is recent. A slow Zoom (a request that takes seconds, retries) keeps
//! beating, so systemd does not kill a healthy daemon; a wedged loop stops beating, so it
//! does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The instant of the last sign of progress. Clones share one heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds from `origin` to the last beat.
    last: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}

impl Heartbeat {
    pub fn new() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Progress: the loop turned, or a request went out or came back.
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Pings (`ping()`) every `interval / 2` while the heartbeat is younger than `grace`; the
/// first ping that is withheld is logged. Runs until dropped (abort the task).
pub async fn watchdog(beat: Heartbeat, interval: Duration, grace: Duration, ping: impl Fn()) {
    let mut tick = tokio::time::interval(interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut withheld = false;
    loop {
        tick.tick().await;
        let age = beat.age();
        if age < grace {
            ping();
            withheld = false;
        } else if !withheld {
            withheld = true;
            tracing::error!(
                since = ?age,
                "the daemon's loop has made no progress; withholding the watchdog so systemd restarts it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pings_while_beating_and_stops_when_the_loop_is_wedged() {
        let beat = Heartbeat::new();
        let pings: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let start = Instant::now();
        let log = pings.clone();
        let task = tokio::spawn(watchdog(
            beat.clone(),
            Duration::from_secs(3),
            Duration::from_secs(10),
            move || {
                if let Ok(mut p) = log.lock() {
                    p.push(start.elapsed());
                }
            },
        ));
        // A slow step: a beat every 4 s (one request each), for 20 s.
        for _ in 0..5 {
            beat.beat();
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        // Wedged: no beat for a minute.
        tokio::time::sleep(Duration::from_secs(60)).await;
        task.abort();
        let pings = pings.lock().map(|p| p.clone()).unwrap_or_default();
        let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| *g <= Duration::from_millis(1500)),
            "{pings:?}"
        );
        // Pings run until 10 s after the last beat (at 16 s), then stop for good.
        let last = pings.last().copied().unwrap_or_default();
        assert!(last >= Duration::from_secs(24), "{pings:?}");
        assert!(last < Duration::from_secs(27), "{pings:?}");
        assert!(pings.len() >= 16, "{pings:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_age_is_from_the_newest_beat() {
        let beat = Heartbeat::new();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(beat.age(), Duration::from_secs(5));
        beat.beat();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(beat.age(), Duration::from_secs(2));
    }
}
