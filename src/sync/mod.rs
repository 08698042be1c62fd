//! The idempotent reconcile steps. Each reads desired and stored state, acts through
//! [`crate::zoom`], and records what it did in [`crate::store`]; running one twice does no harm.
//!
//! - [`meetings`]: the schedule file is the desired state of upcoming Zoom meetings; it
//!   carries out a [`plan`], which is computed from the file and the database alone.
//! - [`recordings`]: watches created meetings for their cloud recordings and tracks each file.
//! - [`downloads`]: streams queued files into the archive, verified, resumable.
//! - [`verify`]: compares each host's upcoming meetings at Zoom with the database (drift).
//! - [`scan`]: the account scan: other users' cloud recordings into the same archive.
//!
//! Steps never read the clock themselves: they take a [`Clock`], which the daemon backs with
//! the system clock and tests with whatever they need.

pub mod archive;
pub mod downloads;
pub mod meetings;
pub mod part;
pub mod plan;
pub mod recordings;
pub mod scan;
pub mod verify;

use std::future::Future;
use std::ops::AddAssign;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::store::{NewEvent, Store, StoreError};
use crate::zoom::{ZoomClient, ZoomError};

/// `+=` for a step's report of counts, so reports of items done concurrently add up.
macro_rules! counts {
    ($t:ty { $($field:ident),* $(,)? }) => {
        impl std::ops::AddAssign for $t {
            fn add_assign(&mut self, other: Self) {
                $(self.$field += other.$field;)*
            }
        }
    };
}
pub(crate) use counts;

/// Where "now" comes from: the crate's one clock type, shared.
pub type Clock = crate::clock::SharedClock;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::clock::SystemClock)
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Zoom(#[from] ZoomError),
}

/// What every step needs.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub zoom: ZoomClient,
    pub clock: Clock,
    /// The object-storage archive, when `archive = "s3://..."`.
    pub objects: Option<crate::objects::ObjectArchive>,
}

impl Ctx {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// How many items a step works on at once: as many as may be in flight at Zoom (the
    /// client's limiter does the real pacing; more would only queue there).
    pub(crate) fn concurrency(&self) -> usize {
        self.zoom.pace().max_in_flight.max(1)
    }

    /// Runs `work` on every item, [`Ctx::concurrency`] at once, and adds up what each
    /// reports. Each item writes its own results as they arrive; the first store error ends
    /// the step, and the items then in flight are dropped mid-way, as in a crash, which
    /// every step is built to survive (the intent is written before every create). Items
    /// are owned values: with borrowed ones the step's future is not provably `Send`
    /// (rust-lang/rust#102211).
    pub(crate) async fn each<T, R, F, Fut>(
        &self,
        items: impl IntoIterator<Item = T>,
        mut work: F,
    ) -> Result<R, SyncError>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<R, SyncError>>,
        R: Default + AddAssign,
    {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        // Made as they are needed, so only `concurrency` of them exist at once (a step's
        // future is a few KB, and a poll pass may have thousands of items due).
        let mut items = items.into_iter();
        let mut running = FuturesUnordered::new();
        let mut sum = R::default();
        loop {
            // A stopping process finishes what is in flight and starts nothing new.
            while running.len() < self.concurrency() && !self.zoom.stopping() {
                match items.next() {
                    Some(item) => running.push(work(item)),
                    None => break,
                }
            }
            match running.next().await {
                Some(r) => sum += r?,
                None => return Ok(sum),
            }
        }
    }

    /// Appends to the `events` table; a failure to log is logged, never fatal.
    pub(crate) async fn event(&self, e: NewEvent<'_>) {
        if let Err(err) = self.store.add_event(&e, self.now()).await {
            tracing::error!(error = %err, kind = e.kind, "could not record event");
        }
    }
}
