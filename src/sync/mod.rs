//! The three idempotent reconcile steps. Each reads desired and stored state, acts through
//! [`crate::zoom`], and records what it did in [`crate::store`]; running one twice does no harm.
//!
//! - [`meetings`]: the schedule file is the desired state of upcoming Zoom meetings; it
//!   carries out a [`plan`], which is computed from the file and the database alone.
//! - [`recordings`]: watches created meetings for their cloud recordings and tracks each file.
//! - [`downloads`]: streams queued files into the archive, verified, resumable.
//! - [`verify`]: compares each host's upcoming meetings at Zoom with the database (drift).
//!
//! Steps never read the clock themselves: they take a [`Clock`], which the daemon backs with
//! the system clock and tests with whatever they need.

pub mod archive;
pub mod downloads;
pub mod meetings;
pub mod plan;
pub mod recordings;
pub mod verify;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::store::{NewEvent, Store, StoreError};
use crate::zoom::{ZoomClient, ZoomError};

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
}

impl Ctx {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Appends to the `events` table; a failure to log is logged, never fatal.
    pub(crate) async fn event(&self, e: NewEvent<'_>) {
        if let Err(err) = self.store.add_event(&e, self.now()).await {
            tracing::error!(error = %err, kind = e.kind, "could not record event");
        }
    }
}
