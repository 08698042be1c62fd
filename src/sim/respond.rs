//! Answers and pauses both sim hosts give: injected fault answers, Zoom's HTML error page,
//! and the shutdown-aware wait behind injected delays and stalled bodies. Shared here so the
//! API routes and the download host each depend on this, not on one another.

use std::time::Duration;

use axum::response::{Html, IntoResponse, Response};

use super::api::ApiError;
use super::faults::{Fault, RetryAfter, Route};
use super::state::{Shared, fmt_time, to_delta};

/// Sleeps `d`, or less if the sim shuts down. Real time on purpose, whatever the sim's
/// clock: these pauses play a slow network, which the client measures with I/O timeouts on
/// tokio's timer.
pub(crate) async fn wait(sh: &Shared, d: Duration) {
    let mut rx = sh.shutdown.subscribe();
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = rx.wait_for(|down| *down) => {}
    }
}

/// The answer of a fault that replaces the normal one.
pub(crate) fn fault_response(sh: &Shared, route: Route, fault: &Fault) -> Response {
    let cfg = &sh.cfg;
    match fault {
        Fault::Status(429) => rate_limited(sh, route, RetryAfter::Absent),
        Fault::Status(s) => {
            let msg = match s {
                500 => "Internal Server Error",
                502 => "Bad Gateway",
                503 => "Service Unavailable",
                504 => "Gateway Timeout",
                _ => "Simulated error",
            };
            ApiError::new(*s, *s as i64, msg).into_response()
        }
        Fault::RateLimited(ra) => rate_limited(sh, route, *ra),
        Fault::DailyCap => sh.lock().daily_cap_error(cfg).into_response(),
        Fault::HtmlPage => html_error_page(),
        Fault::DownloadUrlExpired => ApiError::recording_not_found().into_response(),
        Fault::MissingScope(scope) => ApiError::new(
            400,
            4711,
            format!("Invalid access token, does not contain scopes:[{scope}]."),
        )
        .into_response(),
        // The others do not replace the answer; reaching here means a caller slipped.
        _ => ApiError::new(500, 500, "Internal Server Error").into_response(),
    }
}

pub(crate) fn rate_limited(sh: &Shared, route: Route, ra: RetryAfter) -> Response {
    let mut e = ApiError::new(
        429,
        429,
        "You have reached the maximum per-second rate limit for this API. Try again later.",
    );
    let now = sh.now();
    let at = |secs: u64| now + to_delta(Duration::from_secs(secs));
    match ra {
        RetryAfter::Absent => {}
        RetryAfter::Seconds(s) => e = e.with_header("retry-after", s.to_string()),
        RetryAfter::HttpDate(s) => {
            let t: std::time::SystemTime = at(s).into();
            e = e.with_header("retry-after", httpdate::fmt_http_date(t));
        }
        RetryAfter::Iso8601(s) => e = e.with_header("retry-after", fmt_time(at(s))),
    }
    if sh.cfg.rate_limit_headers {
        e = e
            .with_header("x-ratelimit-category", route.category())
            .with_header("x-ratelimit-type", "QPS")
            .with_header("x-ratelimit-remaining", "0");
    }
    e.into_response()
}

/// What Zoom's web tier answers when it wants a browser, not an API client.
pub(crate) fn html_error_page() -> Response {
    Html(
        "<!DOCTYPE html><html><head><title>Error - Zoom</title></head><body>\
         <h1>Sorry, this page is not available</h1>\
         <p>Please sign in to continue.</p></body></html>",
    )
    .into_response()
}
