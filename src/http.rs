//! The one HTTP listener (`[http] listen`): Zoom's webhooks, `/metrics`, `/healthz`, the
//! status page and the calendar feed. Handlers only read the store, or (webhooks) verify,
//! store the notification once and hand it to a worker: every answer is quick, whatever the
//! downloads are doing. Errors are a status and a short reason; never a secret.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{NaiveTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::config::{AccountUsers, Config};
use crate::metrics::{Counts, WebhookOutcome};
use crate::shutdown::Shutdown;
use crate::store::{NewWebhookEvent, ScanFound, SeenRecording};
use crate::sync::Ctx;
use crate::webhook::{self, Event, RecordingEvent};

/// How long the loop may go without a beat before `/healthz` calls it wedged.
pub const WEDGED_AFTER: Duration = Duration::from_secs(90);
/// Notifications waiting for the worker; beyond this they are stored and left to polling.
const QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("[http] listen {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers share.
#[derive(Clone)]
struct App {
    ctx: Ctx,
    config: watch::Receiver<Arc<Config>>,
    counts: Arc<Counts>,
    queue: mpsc::Sender<Accepted>,
}

/// A verified recording notification for the worker.
struct Accepted {
    event: Box<RecordingEvent>,
    seen: SeenRecording,
}

/// Binds `[http] listen` (before the loop starts, so a taken port fails the start).
pub async fn bind(config: &Config) -> Result<Option<TcpListener>, HttpError> {
    let Some(addr) = config.http.listen else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves until shutdown; notifications' files go to the download queue (`wake_downloads`).
pub async fn serve(
    listener: TcpListener,
    ctx: Ctx,
    config: watch::Receiver<Arc<Config>>,
    counts: Arc<Counts>,
    wake_downloads: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let worker = tokio::spawn(worker(ctx.clone(), config.clone(), rx, wake_downloads));
    let app = App {
        ctx,
        config,
        counts,
        queue: tx,
    };
    let router = router(app);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP listening");
    }
    let stop = async move { shutdown.wait().await };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "HTTP listener stopped");
    }
    worker.abort();
}

fn router(app: App) -> Router {
    Router::new()
        .route("/zoom/webhook", post(zoom_webhook))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(status_page))
        .route("/calendar.ics", get(calendar_all))
        .route("/calendar/{key}", get(calendar_key))
        // Bigger bodies are refused with 413 before they are read.
        .layer(DefaultBodyLimit::max(webhook::MAX_BODY))
        .with_state(app)
}

fn text(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{reason}\n"),
    )
        .into_response()
}

// ---- webhooks ------------------------------------------------------------------------------

async fn zoom_webhook(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            // Over the body limit (413), or the body broke off.
            app.counts.webhook(WebhookOutcome::Rejected);
            return text(e.status(), &e.body_text());
        }
    };
    let config = app.config.borrow().clone();
    let secret = match &config.http.webhook_secret {
        Ok(s) => s.clone(),
        Err(_) => {
            app.counts.webhook(WebhookOutcome::Rejected);
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhooks are not configured: no webhook secret",
            );
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The signature and its timestamp come before anything else is looked at.
    if let Err(e) = webhook::verify(
        secret.expose().as_bytes(),
        header("x-zm-request-timestamp"),
        header("x-zm-signature"),
        &body,
        app.ctx.now(),
    ) {
        app.counts.webhook(WebhookOutcome::Rejected);
        tracing::warn!(reason = %e, "webhook refused");
        return text(refusal(&e), &e.to_string());
    }
    let event = match webhook::parse(&body) {
        Ok(e) => e,
        Err(e) => {
            app.counts.webhook(WebhookOutcome::Rejected);
            return text(refusal(&e), &e.to_string());
        }
    };
    match event {
        Event::UrlValidation { plain_token } => {
            app.counts.webhook(WebhookOutcome::Accepted);
            let answer = webhook::url_validation(secret.expose().as_bytes(), &plain_token);
            (StatusCode::OK, axum::Json(answer)).into_response()
        }
        other => match accept(&app, &config, other, &body).await {
            Ok(outcome) => {
                app.counts.webhook(outcome);
                text(StatusCode::OK, outcome.as_str())
            }
            Err(e) => {
                // Zoom sends it again later; nothing was recorded.
                tracing::error!(error = %e, "webhook not stored");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot store the event now",
                )
            }
        },
    }
}

fn refusal(e: &webhook::WebhookError) -> StatusCode {
    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Stores a verified notification once and queues a recording's files.
async fn accept(
    app: &App,
    config: &Config,
    event: Event,
    body: &[u8],
) -> Result<WebhookOutcome, crate::store::StoreError> {
    let key = event.dedupe_key(body);
    let stored_body = without_token(body);
    let (name, uuid, meeting_id) = subject(&event);
    let seen = match &event {
        Event::Recording(r) => relevant(&app.ctx, config, r).await?,
        _ => None,
    };
    let outcome = if seen.is_some() { "queued" } else { "ignored" };
    let new = app
        .ctx
        .store
        .record_webhook(
            &NewWebhookEvent {
                dedupe_key: &key,
                event: &name,
                meeting_uuid: uuid.as_deref(),
                meeting_id,
                outcome,
                body: &stored_body,
            },
            app.ctx.now(),
        )
        .await?;
    if !new {
        return Ok(WebhookOutcome::Duplicate);
    }
    let (Event::Recording(event), Some(seen)) = (event, seen) else {
        return Ok(WebhookOutcome::Ignored);
    };
    if let Err(e) = app.queue.try_send(Accepted { event, seen }) {
        // Stored; polling (and the scan) still finds the files.
        tracing::warn!(error = %e, "webhook queue full; left to polling");
    }
    Ok(WebhookOutcome::Accepted)
}

/// The body as stored: Zoom's, without the `download_token` (a secret).
fn without_token(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("download_token");
            serde_json::Value::Object(m).to_string()
        }
        // `parse` accepted it as an object; anything else is not stored verbatim.
        _ => "{}".to_string(),
    }
}

/// The event's name, and the meeting it is about.
fn subject(event: &Event) -> (String, Option<String>, Option<i64>) {
    match event {
        Event::Recording(r) => (
            r.event.clone(),
            Some(r.recording.uuid.clone()),
            r.recording.id,
        ),
        Event::Meeting {
            event,
            meeting_id,
            uuid,
            ..
        } => (event.clone(), uuid.clone(), *meeting_id),
        Event::Other { event } => (event.clone(), None, None),
        Event::UrlValidation { .. } => ("endpoint.url_validation".into(), None, None),
    }
}

/// How a recording notification is stored, if zoomd archives that meeting: under its
/// occurrence, or (the account scan covers its host) under the host; else not at all.
async fn relevant(
    ctx: &Ctx,
    config: &Config,
    r: &RecordingEvent,
) -> Result<Option<SeenRecording>, crate::store::StoreError> {
    let rec = &r.recording;
    let Some(meeting_id) = rec.id else {
        return Ok(None);
    };
    let own = ctx.store.occurrence_by_meeting(meeting_id).await?;
    let host = r
        .host_email
        .clone()
        .or_else(|| rec.host_id.clone())
        .unwrap_or_default();
    let scanned = match &config.recordings.users {
        AccountUsers::None => false,
        AccountUsers::All => true,
        AccountUsers::Listed(names) => names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&host) || rec.host_id.as_deref() == Some(n.as_str())),
    };
    if own.is_none() && (!scanned || host.is_empty() || rec.start_time.is_none()) {
        return Ok(None);
    }
    Ok(Some(SeenRecording {
        occurrence_id: own.as_ref().map(|o| o.id),
        meeting_uuid: rec.uuid.clone(),
        meeting_id,
        start_time: rec.start_time,
        total_size: rec.total_size.and_then(|s| i64::try_from(s).ok()),
        scan: own.is_none().then(|| ScanFound {
            host,
            topic: rec.topic.clone(),
            duration_min: rec.duration,
        }),
    }))
}

/// Puts each accepted notification's files in the download queue, with its token.
async fn worker(
    ctx: Ctx,
    config: watch::Receiver<Arc<Config>>,
    mut rx: mpsc::Receiver<Accepted>,
    wake_downloads: Arc<Notify>,
) {
    while let Some(a) = rx.recv().await {
        let cfg = config.borrow().clone();
        if let Some(token) = &a.event.download_token {
            // Valid 24 hours from the event; past that the client's own token is used.
            let sent = chrono::DateTime::from_timestamp_millis(a.event.event_ts)
                .unwrap_or_else(|| ctx.now());
            let until = sent.min(ctx.now()) + chrono::Duration::hours(24);
            for f in &a.event.recording.recording_files {
                if let Some(url) = &f.download_url {
                    ctx.zoom.remember_download_token(url, token.clone(), until);
                }
            }
        }
        match crate::sync::recordings::store_recording(&ctx, &cfg, &a.seen, &a.event.recording)
            .await
        {
            Ok(_) => {
                tracing::info!(meeting_uuid = %a.seen.meeting_uuid, event = %a.event.event, "webhook: files queued");
                wake_downloads.notify_one();
                if let Some(occurrence) = a.seen.occurrence_id
                    && let Err(e) = slow_polls(&ctx, &cfg, occurrence, &a.event).await
                {
                    tracing::error!(error = %e, "webhook: cannot record the delivery");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "webhook: cannot queue the files; left to polling")
            }
        }
    }
}

/// Zoom told us: the meeting's polls drop to the slow cadence at once (an hour, never past
/// the give-up time) instead of every `poll_every` for the first hours; they stay the
/// catch-up for a notification that never comes (a late file, a webhook down).
async fn slow_polls(
    ctx: &Ctx,
    config: &Config,
    occurrence: i64,
    event: &RecordingEvent,
) -> Result<(), crate::store::StoreError> {
    let Some(row) = ctx.store.occurrence(occurrence).await? else {
        return Ok(());
    };
    let now = ctx.now();
    let give_up = row.end() + config.daemon.give_up_after;
    let next = (now + crate::sync::recordings::MAX_POLL_DELAY)
        .min(give_up)
        .max(now);
    ctx.store.webhook_delivered(row.id, next, now).await?;
    ctx.event(crate::store::NewEvent {
        kind: "recording-found",
        key: Some(&row.key),
        occurrence_id: Some(row.id),
        meeting_id: row.meeting_id,
        message: format!(
            "{} (webhook): {} file(s)",
            event.event,
            event.recording.recording_files.len()
        ),
        ..crate::store::NewEvent::default()
    })
    .await;
    Ok(())
}

// ---- metrics and health --------------------------------------------------------------------

async fn metrics(State(app): State<App>) -> Response {
    match crate::metrics::render(&app.ctx.store, &app.ctx.zoom, &app.counts, app.ctx.now()).await {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics: database");
            text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn healthz(State(app): State<App>) -> Response {
    let age = app.ctx.zoom.heartbeat().age();
    if age > WEDGED_AFTER {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("loop wedged: no progress for {} s", age.as_secs()),
        );
    }
    match app.ctx.store.ping().await {
        Ok(()) => text(StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!(error = %e, "healthz: database");
            text(StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

// ---- status page and calendar (bearer token when `[http] token_file` is set) ---------------

/// Whether the request may see join links: no token configured, or the right one sent.
fn allowed(config: &Config, headers: &HeaderMap) -> bool {
    let Some(token) = &config.http.token else {
        return true;
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    sent.is_some_and(|s| constant_time_eq(s.as_bytes(), token.expose().as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, "a bearer token is required");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"zoomd\""),
    );
    r
}

async fn status_page(State(app): State<App>, headers: HeaderMap) -> Response {
    let config = app.config.borrow().clone();
    if !allowed(&config, &headers) {
        return unauthorized();
    }
    let now = app.ctx.now();
    let since = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let page = async {
        let status = app.ctx.store.status(now, since, 20).await?;
        let today = app.ctx.store.archived_since(since, 50).await?;
        Ok::<_, crate::store::StoreError>(crate::page::render(&status, &today, now))
    };
    match page.await {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status page: database");
            text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn calendar_all(State(app): State<App>, headers: HeaderMap) -> Response {
    calendar(&app, &headers, None).await
}

async fn calendar_key(
    State(app): State<App>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(key) = file.strip_suffix(".ics") else {
        return text(StatusCode::NOT_FOUND, "not found: /calendar/<key>.ics");
    };
    calendar(&app, &headers, Some(key)).await
}

async fn calendar(app: &App, headers: &HeaderMap, key: Option<&str>) -> Response {
    let config = app.config.borrow().clone();
    if !allowed(&config, headers) {
        return unauthorized();
    }
    match crate::calendar::feed(&app.ctx.store, key, Utc::now()).await {
        Ok(ics) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
            ics,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "calendar: database");
            text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
