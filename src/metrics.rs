//! `GET /metrics`: Prometheus text format. The totals that the database holds (meetings
//! created, files and bytes archived, the queue, failures) are read from it at each scrape,
//! so they match it exactly and survive restarts; what only the process sees (requests to
//! Zoom, webhook events) is counted in memory. Label values are bounded: operation names,
//! status classes and event outcomes, never ids.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::{MetricsSnapshot, Store, StoreError};
use crate::zoom::ZoomClient;

/// What happened to a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookOutcome {
    /// Signed, in time, and new: stored and queued.
    Accepted,
    /// The same notification again (Zoom retries): answered, nothing done twice.
    Duplicate,
    /// Signed and new, but about nothing zoomd archives (another meeting, another event).
    Ignored,
    /// Unsigned, badly signed, stale, too large or not an event: 4xx, nothing recorded.
    Rejected,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Rejected => "rejected",
        }
    }
}

/// The counts only the process knows.
#[derive(Debug, Default)]
pub struct Counts {
    webhooks: Mutex<std::collections::BTreeMap<WebhookOutcome, u64>>,
}

impl Counts {
    pub fn webhook(&self, outcome: WebhookOutcome) {
        let mut m = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(outcome).or_default() += 1;
    }

    fn webhooks(&self) -> Vec<(WebhookOutcome, u64)> {
        let m = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

fn counter(value: i64) -> Counter<u64, AtomicU64> {
    let c = Counter::<u64, AtomicU64>::default();
    c.inc_by(u64::try_from(value).unwrap_or(0));
    c
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// The whole text of one scrape.
pub async fn render(
    store: &Store,
    zoom: &ZoomClient,
    counts: &Counts,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, StoreError> {
    let db = store.metrics_snapshot(now).await?;
    Ok(encode_all(&db, zoom, counts))
}

fn encode_all(db: &MetricsSnapshot, zoom: &ZoomClient, counts: &Counts) -> String {
    let mut r = Registry::default();
    r.register(
        "zoomd_meetings_created",
        "Zoom meetings zoomd created (every create Zoom accepted)",
        counter(db.meetings_created),
    );
    r.register(
        "zoomd_files_archived",
        "Recording files archived and verified",
        counter(db.files_archived),
    );
    r.register(
        "zoomd_archived_bytes",
        "Bytes of the archived recording files",
        counter(db.archived_bytes),
    );
    r.register(
        "zoomd_download_queue",
        "Files queued or downloading",
        gauge(db.download_queue),
    );
    r.register(
        "zoomd_failures",
        "Rows of the failures view: files failed for good, recordings that never came, refused creates",
        gauge(db.failures),
    );
    r.register(
        "zoomd_recordings_missing",
        "Meetings whose cloud recording never came by the give-up time",
        gauge(db.recordings_missing),
    );
    r.register(
        "zoomd_last_archived_timestamp_seconds",
        "When the newest file was archived (Unix seconds; 0 before the first)",
        gauge(db.last_archived.map_or(0, |t| t.timestamp())),
    );
    let requests = Family::<RequestLabels, Counter>::default();
    for (op, status, n) in zoom.request_counts() {
        requests
            .get_or_create(&RequestLabels {
                op: op.to_string(),
                status: status.to_string(),
            })
            .inc_by(n);
    }
    r.register(
        "zoomd_zoom_requests",
        "Requests to Zoom's API answered, by operation and status class (error: no answer)",
        requests,
    );
    let hooks = Family::<OutcomeLabels, Counter>::default();
    for (outcome, n) in counts.webhooks() {
        hooks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().to_string(),
            })
            .inc_by(n);
    }
    r.register(
        "zoomd_webhook_events",
        "Webhook requests, by outcome (accepted, duplicate, ignored, rejected)",
        hooks,
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}
