//! Reading and filling the state database directly.

use chrono::{DateTime, Utc};
use zoomd::store::Store;

/// The kinds of the recorded events, newest first.
pub async fn event_kinds(store: &Store) -> Vec<String> {
    store
        .events(10_000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Claims file row `id` for a download into `path`; whether this call got it.
pub async fn claim(store: &Store, id: i64, path: &str, now: DateTime<Utc>) -> bool {
    store.start_download(id, path, now).await.expect("claim")
}

/// Every row of the `failures` view (through the status read), newest first.
pub async fn failures(store: &Store) -> Vec<zoomd::store::FailureItem> {
    let now = Utc::now();
    store
        .status(now, now, 100_000)
        .await
        .expect("status")
        .failures
}
