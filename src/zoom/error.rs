//! The one error type of the Zoom client.
//!
//! Every variant names the operation (`op`) so a log line or an `events` row says what was
//! attempted. No variant ever holds a bearer token or a secret: server-provided text is
//! scrubbed of the current token before it is stored (see [`scrub`]), transport errors are
//! stored without their URL (signed download URLs carry credentials of their own), and
//! [`crate::secret::Secret`] prints redacted.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Zoom's error body: `{"code": int, "message": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// What went wrong talking to Zoom.
#[derive(Debug, thiserror::Error)]
pub enum ZoomError {
    /// Zoom answered with an error that has no more specific variant.
    #[error("{op}: Zoom answered HTTP {status} (code {}): {message}", fmt_code(*.code))]
    Api {
        op: &'static str,
        status: u16,
        code: Option<i64>,
        message: String,
    },

    /// HTTP 404. For `delete_meeting` (code 3001) and the recording deletes (code 3301) this
    /// means "already gone", which callers may treat as done.
    #[error("{op}: not found (HTTP 404, code {}): {message}", fmt_code(*.code))]
    NotFound {
        op: &'static str,
        code: Option<i64>,
        message: String,
    },

    /// The per-user daily cap of meeting create/update calls is used up (429, or HTTP 300 on
    /// older accounts). Not retried: the cap resets at 00:00 UTC (`reset_at`).
    #[error("{op}: daily rate limit reached{}; resets at {reset_at}", fmt_host(.host))]
    DailyLimit {
        op: &'static str,
        /// The user (host) the cap belongs to, where the request names one.
        host: Option<String>,
        reset_at: DateTime<Utc>,
        message: String,
    },

    /// Rate limited (429) and either the retries ran out or Zoom asked for a wait longer than
    /// the policy's `max_retry_after`. `retry_at` is when Zoom said to come back, if it said.
    #[error("{op}: rate limited after {attempts} attempt(s){}", fmt_retry_at(.retry_at))]
    RateLimited {
        op: &'static str,
        attempts: u32,
        retry_at: Option<DateTime<Utc>>,
    },

    /// Zoom's 4711: the token lacks a scope the operation needs. `scopes` are the ones Zoom
    /// named (any one would do); `feature` is what of zoomd's needs the operation.
    #[error("{op}: the app's token lacks a scope Zoom requires for {}: one of [{}]; add it to the Server-to-Server OAuth app in Zoom's Marketplace (see README, \"Scopes\")", .feature.unwrap_or("this operation"), .scopes.join(", "))]
    MissingScopes {
        op: &'static str,
        feature: Option<&'static str>,
        scopes: Vec<String>,
    },

    /// A create request may have reached Zoom but no definite answer came back (timeout,
    /// connection reset after sending, truncated answer, gateway error). The meeting may or
    /// may not exist: look for it before creating again. Never retried automatically.
    #[error("{op}: outcome unknown, the request may have been processed: {detail}")]
    OutcomeUnknown { op: &'static str, detail: String },

    /// Connection, TLS or timeout failure (after retries, for idempotent requests).
    #[error("{op}: transport error after {attempts} attempt(s): {detail}")]
    Transport {
        op: &'static str,
        attempts: u32,
        detail: String,
    },

    /// A listing's page token grew too old (a long wait before a retry) to be sent; the
    /// listing starts again from its first page.
    #[error("{op}: the page token aged before the request could be sent")]
    PageTokenAged { op: &'static str },

    /// Zoom's answer did not have the documented shape.
    #[error("{op}: cannot parse Zoom's answer: {detail}")]
    Parse { op: &'static str, detail: String },

    /// An HTML page where data was expected: Zoom's error page (expired or wrong token on a
    /// download, for instance). Nothing was written.
    #[error("{op}: got an HTML page (HTTP {status}) instead of data")]
    HtmlErrorPage { op: &'static str, status: u16 },

    /// A redirect that is not followed: too many hops, no usable `Location`, a non-HTTP
    /// scheme, or a redirect from an API endpoint (which Zoom never sends).
    #[error("{op}: redirect refused: {detail}")]
    Redirect { op: &'static str, detail: String },

    /// The body ended before `Content-Length` bytes arrived.
    #[error("{op}: body truncated: received {received} of {expected} bytes")]
    Truncated {
        op: &'static str,
        received: u64,
        expected: u64,
    },

    /// No body data arrived for longer than the idle timeout.
    #[error("{op}: body stalled: no data for {idle:?} after {received} bytes")]
    Stalled {
        op: &'static str,
        idle: Duration,
        received: u64,
    },

    /// A ranged download answered with a range other than the one asked for.
    #[error("{op}: asked for bytes from {expected_start}, server answered {detail}")]
    RangeMismatch {
        op: &'static str,
        expected_start: u64,
        detail: String,
    },

    /// Writing the downloaded bytes failed.
    #[error("{op}: writing failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// Obtaining or using credentials failed (token endpoint refused, 401 that a renewal
    /// did not cure, unusable JWT secret).
    #[error("{op}: authentication failed{}: {detail}", fmt_status(*.status))]
    Auth {
        op: &'static str,
        status: Option<u16>,
        detail: String,
    },

    /// The request was refused locally before anything was sent (limits from Zoom's
    /// documentation, such as topic length or duration range).
    #[error("{op}: invalid request: {detail}")]
    InvalidInput { op: &'static str, detail: String },
}

impl ZoomError {
    /// The operation that failed.
    pub fn op(&self) -> &'static str {
        match self {
            ZoomError::Api { op, .. }
            | ZoomError::NotFound { op, .. }
            | ZoomError::DailyLimit { op, .. }
            | ZoomError::RateLimited { op, .. }
            | ZoomError::MissingScopes { op, .. }
            | ZoomError::OutcomeUnknown { op, .. }
            | ZoomError::Transport { op, .. }
            | ZoomError::Parse { op, .. }
            | ZoomError::PageTokenAged { op }
            | ZoomError::HtmlErrorPage { op, .. }
            | ZoomError::Redirect { op, .. }
            | ZoomError::Truncated { op, .. }
            | ZoomError::Stalled { op, .. }
            | ZoomError::RangeMismatch { op, .. }
            | ZoomError::Io { op, .. }
            | ZoomError::Auth { op, .. }
            | ZoomError::InvalidInput { op, .. } => op,
        }
    }

    /// The HTTP status Zoom answered with, where there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ZoomError::Api { status, .. } | ZoomError::HtmlErrorPage { status, .. } => {
                Some(*status)
            }
            ZoomError::NotFound { .. } => Some(404),
            ZoomError::RateLimited { .. } => Some(429),
            ZoomError::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// Zoom's error code (`{"code": ...}`), where there was one.
    pub fn zoom_code(&self) -> Option<i64> {
        match self {
            ZoomError::Api { code, .. } | ZoomError::NotFound { code, .. } => *code,
            _ => None,
        }
    }

    /// True for a 404: the thing asked about does not exist (or no longer does).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ZoomError::NotFound { .. })
    }

    /// True when trying again later may succeed without any change on our side
    /// (rate limits, transport failures, 5xx, partial downloads). `OutcomeUnknown` is not
    /// transient in this sense: it needs a lookup before any new attempt.
    pub fn is_transient(&self) -> bool {
        match self {
            ZoomError::RateLimited { .. }
            | ZoomError::DailyLimit { .. }
            | ZoomError::Transport { .. }
            | ZoomError::Truncated { .. }
            | ZoomError::Stalled { .. } => true,
            ZoomError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// When Zoom said to come back, for the rate-limit variants.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            ZoomError::DailyLimit { reset_at, .. } => Some(*reset_at),
            ZoomError::RateLimited { retry_at, .. } => *retry_at,
            _ => None,
        }
    }
}

fn fmt_code(code: Option<i64>) -> String {
    code.map_or_else(|| "none".to_owned(), |c| c.to_string())
}

fn fmt_host(host: &Option<String>) -> String {
    host.as_ref()
        .map(|h| format!(" for user {h}"))
        .unwrap_or_default()
}

fn fmt_retry_at(at: &Option<DateTime<Utc>>) -> String {
    at.map(|t| format!("; retry at {}", t.to_rfc3339()))
        .unwrap_or_default()
}

fn fmt_status(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

/// Replace every occurrence of any of `secrets` in `text` with `<redacted>`.
///
/// Server-supplied messages are passed through this before they enter an error, so that a
/// server that echoes the Authorization header cannot put the token into a log line.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        // Very short strings would redact innocent text and are no credential anyway.
        if s.len() >= 8 && out.contains(s) {
            out = out.replace(s, "<redacted>");
        }
    }
    out
}

/// Describe a reqwest error without its URL (a signed download URL is a credential) and
/// with its causes, which carry the useful part ("connection refused").
pub(crate) fn describe_reqwest(err: reqwest::Error) -> String {
    use std::error::Error as _;
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_long_secrets_only() {
        let s = scrub("echo Bearer abcdefghijkl here", &["abcdefghijkl", "ab"]);
        assert_eq!(s, "echo Bearer <redacted> here");
    }

    #[test]
    fn display_mentions_op_and_code() {
        let e = ZoomError::Api {
            op: "create_meeting",
            status: 400,
            code: Some(300),
            message: "Invalid".into(),
        };
        let s = e.to_string();
        assert!(s.contains("create_meeting") && s.contains("400") && s.contains("300"));
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.zoom_code(), Some(300));
    }
}
