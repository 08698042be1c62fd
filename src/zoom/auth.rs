//! Bearer tokens: Server-to-Server OAuth and legacy JWT.
//!
//! One [`TokenSource`] per client (shared behind an `Arc`) caches one token. Callers that
//! find it stale queue on a `tokio::sync::Mutex`; the first renews while holding it, the rest
//! then find the fresh token, so 50 concurrent calls cause one token request (single
//! flight). When that renewal fails, callers that were already queued get the same failure
//! instead of each asking again.
//!
//! The timing rules are pure functions of `now` so they are tested without waiting; the
//! source reads `now` from the client's clock and waits between token-endpoint attempts on
//! it, so the whole renewal cycle runs on a manual clock in tests:
//! - OAuth: renew 5 minutes before `expires_in` ends; when the token lives 10 minutes or
//!   less, renew at half its life.
//! - JWT: regenerate once less than a quarter of its life is left.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use super::error::{ZoomError, describe_reqwest, scrub};
use super::retry::{RetryPolicy, instant_after, parse_retry_after};
use crate::clock::SharedClock;
use crate::secret::Secret;

const OP: &str = "token";

/// Which credentials the client authenticates with.
#[derive(Clone)]
pub enum Credentials {
    /// Server-to-Server OAuth (Zoom's current method for server apps).
    OAuth {
        account_id: String,
        client_id: String,
        client_secret: Secret,
    },
    /// Legacy JWT app. Zoom stopped accepting these on 2023-09-08; kept for Zoom-compatible
    /// endpoints. `ttl` is the token lifetime (`exp - iat`), 30 s by default.
    Jwt {
        api_key: String,
        api_secret: Secret,
        ttl: Duration,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::OAuth {
                account_id,
                client_id,
                client_secret,
            } => f
                .debug_struct("OAuth")
                .field("account_id", account_id)
                .field("client_id", client_id)
                .field("client_secret", client_secret)
                .finish(),
            Credentials::Jwt {
                api_key,
                api_secret,
                ttl,
            } => f
                .debug_struct("Jwt")
                .field("api_key", api_key)
                .field("api_secret", api_secret)
                .field("ttl", ttl)
                .finish(),
        }
    }
}

/// The default JWT lifetime.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(30);

impl Credentials {
    /// Check what can be checked without the network (JWT secret must be non-empty ASCII,
    /// ttl at least one second; OAuth fields non-empty).
    pub fn validate(&self) -> Result<(), ZoomError> {
        let invalid = |detail: &str| {
            Err(ZoomError::InvalidInput {
                op: OP,
                detail: detail.to_owned(),
            })
        };
        match self {
            Credentials::OAuth {
                account_id,
                client_id,
                client_secret,
            } => {
                if account_id.is_empty() || client_id.is_empty() {
                    return invalid("OAuth account_id and client_id must not be empty");
                }
                if client_secret.expose().is_empty() {
                    return invalid("OAuth client secret is empty");
                }
            }
            Credentials::Jwt {
                api_key,
                api_secret,
                ttl,
            } => {
                if api_key.is_empty() {
                    return invalid("JWT api_key must not be empty");
                }
                if api_secret.expose().is_empty() || !api_secret.expose().is_ascii() {
                    return invalid("JWT api secret must be non-empty ASCII (used as raw bytes)");
                }
                if *ttl < Duration::from_secs(1) {
                    return invalid("JWT ttl must be at least 1s");
                }
            }
        }
        Ok(())
    }

    fn secret(&self) -> &Secret {
        match self {
            Credentials::OAuth { client_secret, .. } => client_secret,
            Credentials::Jwt { api_secret, .. } => api_secret,
        }
    }
}

/// A token and when to stop using it.
#[derive(Clone, Debug)]
pub struct CachedToken {
    pub token: Secret,
    /// From this instant on, a new token is obtained before the next call.
    pub renew_at: DateTime<Utc>,
    /// The scopes Zoom granted (the OAuth answer's `scope`); a JWT says none.
    pub scope: Option<String>,
}

impl CachedToken {
    /// Whether the token may still be handed out at `now`.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.renew_at
    }
}

/// When to renew an OAuth token obtained at `obtained` that lives `expires_in`.
pub fn oauth_renew_at(obtained: DateTime<Utc>, expires_in: Duration) -> DateTime<Utc> {
    const EARLY: Duration = Duration::from_secs(5 * 60);
    let lead = if expires_in <= Duration::from_secs(10 * 60) {
        expires_in / 2
    } else {
        expires_in - EARLY
    };
    // `expires_in` comes from the token endpoint: an absurd one must not overflow. Such a
    // token is kept until Zoom refuses it (401/124 renews it then).
    instant_after(obtained, lead).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// JWT claims as Zoom reads them. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtClaims {
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Sign a JWT for `api_key` at `now`; returns the token and when to regenerate it (once
/// less than a quarter of its life is left).
pub fn make_jwt(
    api_key: &str,
    api_secret: &Secret,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<CachedToken, ZoomError> {
    let secret = api_secret.expose();
    if secret.is_empty() || !secret.is_ascii() {
        return Err(ZoomError::Auth {
            op: OP,
            status: None,
            detail: "JWT api secret must be non-empty ASCII".to_owned(),
        });
    }
    let iat = now.timestamp();
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 4).max(1);
    let claims = JwtClaims {
        iss: api_key.to_owned(),
        iat,
        nbf: iat,
        exp: iat.saturating_add(ttl_secs),
    };
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let token = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| ZoomError::Auth {
        op: OP,
        status: None,
        // jsonwebtoken's errors name the failure kind, never the key.
        detail: format!("cannot sign JWT: {e}"),
    })?;
    let life = ttl_secs.saturating_mul(3) / 4;
    let renew_at = DateTime::<Utc>::from_timestamp(iat.saturating_add(life), 0).unwrap_or(now);
    Ok(CachedToken {
        token: Secret::new(token),
        renew_at,
        scope: None,
    })
}

/// Zoom's answer from the token endpoint.
#[derive(Debug, Deserialize)]
struct OAuthAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

/// Zoom's OAuth error answer (`{"reason": "...", "error": "invalid_client"}`), or the
/// usual `{code, message}`.
#[derive(Debug, Default, Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Default)]
struct State {
    cached: Option<CachedToken>,
    /// The failure of the last renewal, tagged with its attempt number.
    last_failure: Option<(u64, Option<u16>, String)>,
}

/// Hands out bearer tokens; see the module docs.
pub struct TokenSource {
    credentials: Credentials,
    http: reqwest::Client,
    oauth_url: Url,
    retry: RetryPolicy,
    request_timeout: Duration,
    clock: SharedClock,
    state: Mutex<State>,
    /// Renewals finished (success or failure); read before queueing on the lock.
    renewals: AtomicU64,
}

impl TokenSource {
    /// A token source for `config`'s credentials, sending through `http`.
    pub(crate) fn new(config: &super::ClientConfig, http: reqwest::Client) -> Self {
        TokenSource {
            credentials: config.credentials.clone(),
            http,
            oauth_url: config.oauth_url.clone(),
            retry: config.retry.clone(),
            request_timeout: config.timeouts.request,
            clock: config.clock.clone(),
            state: Mutex::new(State::default()),
            renewals: AtomicU64::new(0),
        }
    }

    /// A bearer token, from the cache while fresh, else a new one.
    /// The scopes of the current token (obtaining one if needed); `None` for a JWT.
    pub async fn granted_scopes(&self) -> Result<Option<String>, ZoomError> {
        self.bearer().await?;
        Ok(self
            .state
            .lock()
            .await
            .cached
            .as_ref()
            .and_then(|c| c.scope.clone()))
    }

    pub async fn bearer(&self) -> Result<Secret, ZoomError> {
        let seen = self.renewals.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        if let Some(c) = &state.cached
            && c.is_fresh(now)
        {
            return Ok(c.token.clone());
        }
        // A renewal finished while we queued and it failed: share its failure rather than
        // hammering the token endpoint once per waiting caller.
        if let Some((n, status, detail)) = &state.last_failure
            && *n > seen
        {
            return Err(ZoomError::Auth {
                op: OP,
                status: *status,
                detail: detail.clone(),
            });
        }
        let result = self.obtain(now).await;
        let n = self.renewals.fetch_add(1, Ordering::AcqRel) + 1;
        match result {
            Ok(fresh) => {
                let token = fresh.token.clone();
                state.cached = Some(fresh);
                state.last_failure = None;
                Ok(token)
            }
            Err(e) => {
                state.last_failure = Some((n, e.status(), e.to_string()));
                Err(e)
            }
        }
    }

    /// Forget `stale` (Zoom refused it with 401/124) so the next call renews. A token that
    /// was already replaced by another caller is left alone.
    pub async fn invalidate(&self, stale: &Secret) {
        let mut state = self.state.lock().await;
        if state.cached.as_ref().is_some_and(|c| &c.token == stale) {
            state.cached = None;
        }
    }

    /// Texts that must never appear in an error or log line.
    pub(crate) fn credential_secret(&self) -> &Secret {
        self.credentials.secret()
    }

    async fn obtain(&self, now: DateTime<Utc>) -> Result<CachedToken, ZoomError> {
        match &self.credentials {
            Credentials::Jwt {
                api_key,
                api_secret,
                ttl,
            } => make_jwt(api_key, api_secret, *ttl, now),
            Credentials::OAuth {
                account_id,
                client_id,
                client_secret,
            } => {
                self.oauth_request(account_id, client_id, client_secret)
                    .await
            }
        }
    }

    /// `POST {oauth_url}` with `grant_type=account_credentials`. Repeating it is harmless
    /// (it creates nothing the caller relies on), so 429, 5xx and transport failures are
    /// retried like any idempotent request.
    async fn oauth_request(
        &self,
        account_id: &str,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<CachedToken, ZoomError> {
        let form = [
            ("grant_type", "account_credentials"),
            ("account_id", account_id),
        ];
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent_at = self.clock.now();
            let result = self
                .http
                .post(self.oauth_url.clone())
                .basic_auth(client_id, Some(client_secret.expose()))
                .header(ACCEPT, "application/json")
                .form(&form)
                // An I/O timeout: it measures the server, so it stays on tokio's timer.
                .timeout(self.request_timeout)
                .send()
                .await;
            let (status, headers, body) = match result {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(b) => (status, headers, b),
                        Err(e) => {
                            self.wait_or_fail(attempt, None, transport(attempt, e))
                                .await?;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    self.wait_or_fail(attempt, None, transport(attempt, e))
                        .await?;
                    continue;
                }
            };
            if status.is_success() {
                let answer: OAuthAnswer =
                    serde_json::from_slice(&body).map_err(|e| ZoomError::Parse {
                        op: OP,
                        // serde's message names the field, never the value.
                        detail: format!("token answer: {e}"),
                    })?;
                if answer.access_token.is_empty() {
                    return Err(ZoomError::Parse {
                        op: OP,
                        detail: "token answer has an empty access_token".to_owned(),
                    });
                }
                let expires_in = Duration::from_secs(answer.expires_in.unwrap_or(3600));
                tracing::debug!(expires_in_s = expires_in.as_secs(), "obtained OAuth token");
                return Ok(CachedToken {
                    token: Secret::new(answer.access_token),
                    renew_at: oauth_renew_at(sent_at, expires_in),
                    scope: answer.scope,
                });
            }
            let code = status.as_u16();
            let err: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
            let detail = [err.error, err.reason, err.message]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let detail = scrub(&detail, &[client_secret.expose()]);
            if code == 429 || status.is_server_error() {
                let now = self.clock.now();
                let retry_after = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, now));
                let fail = if code == 429 {
                    ZoomError::RateLimited {
                        op: OP,
                        attempts: attempt,
                        retry_at: retry_after.and_then(|d| instant_after(now, d)),
                    }
                } else {
                    ZoomError::Auth {
                        op: OP,
                        status: Some(code),
                        detail,
                    }
                };
                self.wait_or_fail(attempt, retry_after, fail).await?;
                continue;
            }
            let detail = if detail.is_empty() {
                let ct = headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                format!("token endpoint refused the credentials ({ct})")
            } else {
                detail
            };
            return Err(ZoomError::Auth {
                op: OP,
                status: Some(code),
                detail,
            });
        }
    }

    /// Sleep before the next attempt, or return `fail` when attempts are used up or the
    /// server asks for a longer wait than the policy allows.
    async fn wait_or_fail(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        fail: ZoomError,
    ) -> Result<(), ZoomError> {
        if attempt >= self.retry.max_attempts {
            return Err(fail);
        }
        let delay = match retry_after {
            Some(d) if d > self.retry.max_retry_after => return Err(fail),
            Some(d) => d,
            None => self.retry.backoff(attempt - 1),
        };
        tracing::warn!(op = OP, attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %fail, "retrying");
        self.clock.sleep(delay).await;
        Ok(())
    }
}

fn transport(attempt: u32, e: reqwest::Error) -> ZoomError {
    ZoomError::Transport {
        op: OP,
        attempts: attempt,
        detail: describe_reqwest(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn oauth_renews_five_minutes_early() {
        let at = oauth_renew_at(t0(), Duration::from_secs(3600));
        assert_eq!(at, t0() + chrono::Duration::minutes(55));
        let tok = CachedToken {
            token: Secret::new("x"),
            renew_at: at,
            scope: None,
        };
        assert!(tok.is_fresh(t0() + chrono::Duration::minutes(54)));
        assert!(!tok.is_fresh(t0() + chrono::Duration::minutes(55)));
    }

    #[test]
    fn oauth_short_tokens_renew_at_half_life() {
        assert_eq!(
            oauth_renew_at(t0(), Duration::from_secs(600)),
            t0() + chrono::Duration::minutes(5)
        );
        assert_eq!(
            oauth_renew_at(t0(), Duration::from_secs(4)),
            t0() + chrono::Duration::seconds(2)
        );
        assert_eq!(
            oauth_renew_at(t0(), Duration::from_secs(601)),
            t0() + chrono::Duration::seconds(301)
        );
        assert_eq!(oauth_renew_at(t0(), Duration::ZERO), t0());
        assert_eq!(
            oauth_renew_at(t0(), Duration::from_secs(10_000_000_000_000)),
            DateTime::<Utc>::MAX_UTC,
            "no overflow"
        );
    }

    #[test]
    fn jwt_claims_roundtrip() {
        let secret = Secret::new("my-api-secret");
        let tok = make_jwt("KEY123", &secret, Duration::from_secs(30), t0()).unwrap();
        // Header: HS256 + JWT.
        let header = jsonwebtoken::decode_header(tok.token.expose()).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        // Claims decode with the raw ASCII bytes of the secret as key.
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<JwtClaims>(
            tok.token.expose(),
            &jsonwebtoken::DecodingKey::from_secret(b"my-api-secret"),
            &v,
        )
        .unwrap();
        let c = data.claims;
        assert_eq!(c.iss, "KEY123");
        assert_eq!(c.iat, t0().timestamp());
        assert_eq!(c.nbf, t0().timestamp());
        // Seconds, not milliseconds.
        assert_eq!(c.exp, t0().timestamp() + 30);
        assert!(c.exp < 10_000_000_000);
        // Regenerate with a quarter of the life left.
        assert_eq!(tok.renew_at, t0() + chrono::Duration::seconds(22));
        // A wrong key does not verify.
        assert!(
            jsonwebtoken::decode::<JwtClaims>(
                tok.token.expose(),
                &jsonwebtoken::DecodingKey::from_secret(b"other"),
                &v,
            )
            .is_err()
        );
    }

    #[test]
    fn jwt_rejects_non_ascii_secret() {
        let err = make_jwt("K", &Secret::new("sécret"), Duration::from_secs(30), t0()).unwrap_err();
        assert!(matches!(err, ZoomError::Auth { .. }));
        assert!(!err.to_string().contains("sécret"));
        let creds = Credentials::Jwt {
            api_key: "K".into(),
            api_secret: Secret::new("sécret"),
            ttl: Duration::from_secs(30),
        };
        assert!(creds.validate().is_err());
    }

    /// An origin nothing listens on: connecting fails at once.
    fn dead_origin() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(60),
        }
    }

    fn source(credentials: Credentials, oauth_url: &str, clock: &ManualClock) -> TokenSource {
        let mut config = crate::zoom::ClientConfig::new(credentials);
        config.oauth_url = Url::parse(oauth_url).unwrap();
        config.retry = policy();
        config.timeouts.request = Duration::from_secs(5);
        config.clock = clock.shared();
        TokenSource::new(&config, reqwest::Client::new())
    }

    #[tokio::test]
    async fn jwt_is_regenerated_when_the_clock_says() {
        let clock = ManualClock::new(t0());
        let src = source(
            Credentials::Jwt {
                api_key: "KEY".into(),
                api_secret: Secret::new("jwt-secret"),
                ttl: Duration::from_secs(30),
            },
            &dead_origin(),
            &clock,
        );
        let first = src.bearer().await.unwrap();
        // A quarter of 30 s left from 22 s on (the quarter rounds up to 8 s).
        clock.advance(Duration::from_secs(21));
        assert_eq!(src.bearer().await.unwrap(), first, "still fresh");
        clock.advance(Duration::from_secs(1));
        let second = src.bearer().await.unwrap();
        assert_ne!(second, first);
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<JwtClaims>(
            second.expose(),
            &jsonwebtoken::DecodingKey::from_secret(b"jwt-secret"),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(
            claims.iat,
            (t0() + chrono::Duration::seconds(22)).timestamp()
        );
        assert!(clock.sleeps().is_empty(), "renewal never waits");
    }

    #[tokio::test]
    async fn token_endpoint_failures_back_off_on_the_clock() {
        let clock = ManualClock::new(t0());
        let src = source(
            Credentials::OAuth {
                account_id: "acc".into(),
                client_id: "cid".into(),
                client_secret: Secret::new("client-secret"),
            },
            &format!("{}/oauth/token", dead_origin()),
            &clock,
        );
        let e = src.bearer().await.unwrap_err();
        assert!(
            matches!(e, ZoomError::Transport { attempts: 4, .. }),
            "{e:?}"
        );
        // Three waits between four attempts, each within its full-jitter ceiling, all on
        // the clock.
        let sleeps = clock.sleeps();
        assert_eq!(sleeps.len(), 3, "{sleeps:?}");
        for (retry, d) in sleeps.iter().enumerate() {
            assert!(*d <= policy().ceiling(retry as u32), "{retry}: {d:?}");
        }
        let slept = chrono::Duration::from_std(clock.slept()).unwrap();
        assert_eq!(clock.now(), t0() + slept);
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials::OAuth {
            account_id: "acc".into(),
            client_id: "cid".into(),
            client_secret: Secret::new("topsecretvalue"),
        };
        assert!(!format!("{c:?}").contains("topsecretvalue"));
    }
}
