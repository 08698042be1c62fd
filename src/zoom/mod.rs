//! The Zoom API client: the only code in zoomd that speaks HTTP to Zoom.
//!
//! - [`ZoomClient`] holds one HTTP connection pool and one [`TokenSource`]; clone it freely.
//! - Auth: Server-to-Server OAuth or legacy JWT ([`Credentials`]), cached and renewed early,
//!   single-flight under concurrency, renewed once more on a 401 with code 124.
//! - Typed operations: meetings (create, get, update, delete, list upcoming), past
//!   instances, recordings (get, list per user, delete), and a streaming, resumable
//!   [`ZoomClient::download`].
//! - Pace ([`Pace`]): every API request passes one limiter, a per-second budget that holds
//!   in every window of one second and a bound on requests in flight; a per-second 429
//!   slows it down for a while.
//! - Scopes ([`scopes`]): what each operation needs, classic and granular; Zoom's 4711
//!   becomes [`ZoomError::MissingScopes`], naming them.
//! - Retries ([`RetryPolicy`]): 429, 5xx and transport failures of idempotent requests with
//!   exponential back-off and full jitter, honouring `Retry-After`. Every wait and every
//!   reading of the time goes through [`ClientConfig::clock`]. A meeting create is
//!   retried only when Zoom certainly did not process it; otherwise the caller gets
//!   [`ZoomError::OutcomeUnknown`] and must look before creating again.
//! - Secrets: the token goes in `Authorization: Bearer` only, and only to Zoom's hosts
//!   (see [`ClientConfig::extra_trusted_hosts`]); never into a URL, an error or a log field.
//!
//! It knows nothing of the database or the config file: callers build a [`ClientConfig`].

mod auth;
mod client;
mod download;
mod error;
mod pace;
mod retry;
pub mod scopes;
mod trust;
mod types;

use std::time::Duration;

use url::Url;

use crate::liveness::Heartbeat;

use crate::clock::{self, SharedClock};

pub use auth::{
    CachedToken, Credentials, DEFAULT_JWT_TTL, JwtClaims, TokenSource, make_jwt, oauth_renew_at,
};
pub use client::ZoomClient;
pub use download::{Answer, ByteRange, ChunkSink, DownloadOutcome, DownloadSink, OpenDownload};
pub use error::{ApiErrorBody, ZoomError};
pub use pace::{Category, MEDIUM_SHARE, Pace, SLOW_FOR, SharedPlaces};
pub use retry::{RetryPolicy, is_daily_limit, next_utc_midnight, parse_retry_after};
pub use types::{
    CreateMeeting, DeleteAction, Meeting, MeetingPatch, MeetingRecordings, MeetingRef,
    MeetingStart, PastInstance, RecordingFile, User, encode_uuid, month_windows,
};

/// Zoom's production API base.
pub const DEFAULT_API_URL: &str = "https://api.zoom.us/v2";
/// Zoom's production token endpoint.
pub const DEFAULT_OAUTH_URL: &str = "https://zoom.us/oauth/token";

/// Time limits of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// A whole API call (request sent, answer read), and the wait for a download's
    /// response headers.
    pub request: Duration,
    /// The longest silence while streaming a download body before it counts as stalled.
    pub read_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            read_idle: Duration::from_secs(60),
        }
    }
}

/// Everything the client needs to know; built by the caller (from `daemon.toml`, or by
/// the tests against `sim`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base, e.g. `https://api.zoom.us/v2` (any path prefix is kept).
    pub api_url: Url,
    /// Token endpoint, e.g. `https://zoom.us/oauth/token` (unused with JWT).
    pub oauth_url: Url,
    pub credentials: Credentials,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// Where, besides the origins of `api_url` and `oauth_url` and `https://zoom.us` /
    /// `https://*.zoom.us`, a download may send the bearer token. Each entry is either an
    /// origin URL (`http://127.0.0.1:8081`, matched exactly: scheme, host and port), a host
    /// name (`files.example.com`, HTTPS on port 443 only) or a wildcard (`*.example.com`,
    /// HTTPS subdomains only). Redirects to anything else are followed without the
    /// `Authorization` header.
    pub extra_trusted_hosts: Vec<String>,
    /// Where the client reads the time (token renewal, `Retry-After` dates, the daily-cap
    /// reset) and waits between attempts. The request and idle timeouts in `timeouts` are
    /// I/O timeouts and stay on tokio's timer whatever this is.
    pub clock: SharedClock,
    /// Beaten as each request goes out and comes back (and after each wait between
    /// attempts), so a slow Zoom counts as progress for the watchdog.
    pub heartbeat: Heartbeat,
    /// The account-wide request budget every API request passes (token requests excepted).
    pub pace: Pace,
}

impl ClientConfig {
    /// Zoom's production endpoints, default retry policy and timeouts, the system clock.
    pub fn new(credentials: Credentials) -> Self {
        ClientConfig {
            // Both constants are valid URLs; parsing cannot fail.
            api_url: Url::parse(DEFAULT_API_URL).expect("valid constant URL"),
            oauth_url: Url::parse(DEFAULT_OAUTH_URL).expect("valid constant URL"),
            credentials,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            extra_trusted_hosts: Vec::new(),
            clock: clock::system(),
            heartbeat: Heartbeat::new(),
            pace: Pace::default(),
        }
    }
}
