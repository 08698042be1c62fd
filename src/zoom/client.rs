//! [`ZoomClient`]: the request executor (auth, retries, error mapping) and the typed
//! operations on top of it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use percent_encoding::utf8_percent_encode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::TokenSource;
use super::error::{ApiErrorBody, ZoomError, describe_reqwest, scrub};
use super::pace::{self, Limiter};
use super::retry::{
    RetryPolicy, instant_after, is_daily_limit, next_utc_midnight, parse_retry_after,
};
use super::trust::TrustedHosts;
use super::types::{
    CreateMeeting, DeleteAction, Instances, Meeting, MeetingPatch, MeetingRecordings, MeetingRef,
    Page, PastInstance, User, month_windows,
};
use super::{ClientConfig, Timeouts};
use crate::clock::SharedClock;
use crate::secret::Secret;

/// Zoom's maximum page size for listings.
const PAGE_SIZE: &str = "300";
/// A listing longer than this many pages is taken for a server loop.
const MAX_PAGES: usize = 10_000;
/// How long after it came a page token is still sent: Zoom's live 15 minutes, and a
/// request may take a while to arrive.
const PAGE_TOKEN_USABLE: chrono::TimeDelta = chrono::TimeDelta::minutes(14);
/// Listings started again because their page tokens aged, before giving up.
const MAX_LISTING_RESTARTS: u32 = 3;

/// How one pass over a listing's pages ended.
enum Listing<T> {
    Done(Vec<T>),
    TokenAged,
}

/// A Zoom API client. Cheap to clone (shares its pool and token cache).
#[derive(Clone)]
pub struct ZoomClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) api_url: Url,
    pub(crate) auth: Arc<TokenSource>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeouts: Timeouts,
    pub(crate) trusted: TrustedHosts,
    /// Every time read and retry wait of the client goes through this.
    pub(crate) clock: SharedClock,
    pub(crate) heartbeat: crate::liveness::Heartbeat,
    /// The request budget (see [`super::pace`]).
    pub(crate) limiter: Limiter,
    /// The medium category's own share, passed before `limiter` (see [`pace::Category`]).
    pub(crate) medium: Limiter,
    pub(crate) pace: super::Pace,
    /// The account's budget shared with other processes, once set (see `share_budget`).
    pub(crate) shared: std::sync::OnceLock<pace::Shared>,
    /// Set when the process is stopping: steps start no new item (see `sync::Ctx::each`).
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Webhook download tokens by download URL, each until it expires (never stored).
    pub(crate) download_tokens:
        std::sync::Mutex<std::collections::HashMap<String, (Secret, DateTime<Utc>)>>,
    /// Requests answered, by operation and status class (for `/metrics`).
    pub(crate) answered:
        std::sync::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

impl Inner {
    /// A place in the request budget: this process's, then the account's shared one (if
    /// set). Held until the answer is in (see `pace`).
    pub(crate) async fn place(&self) -> (pace::Ticket<'_>, Option<pace::SharedTicket>) {
        let own = self.limiter.acquire().await;
        let shared = match self.shared.get() {
            Some(s) => Some(s.acquire().await),
            None => None,
        };
        (own, shared)
    }
}

/// The status class a request is counted under: a bounded label set.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        None => "error",
        Some(429) => "429",
        Some(s) if (200..300).contains(&s) => "2xx",
        Some(s) if (300..400).contains(&s) => "3xx",
        Some(s) if (400..500).contains(&s) => "4xx",
        Some(_) => "5xx",
    }
}

/// Whether repeating a request is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// GET, PATCH (sets fields to given values), DELETE (404 afterwards means done).
    Idempotent,
    /// POST create: Zoom has no idempotency key, so a repeat may create a duplicate.
    Create,
}

struct Call<'a> {
    op: &'static str,
    method: Method,
    url: Url,
    body: Option<Bytes>,
    kind: Kind,
    /// The Zoom user the call is about, for daily-limit errors.
    host: Option<&'a str>,
    /// Not sent (first attempt or retry) at or after this instant: the page token in the
    /// URL would be stale by then.
    not_after: Option<DateTime<Utc>>,
}

/// Decision after a failed attempt.
enum Next {
    Retry(Duration),
    Fail(ZoomError),
}

impl std::fmt::Debug for ZoomClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomClient")
            .field("api_url", &self.inner.api_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Percent-encode a path segment (user id, email, file id): everything but unreserved
/// characters, so `@`, `+`, `/` cannot change the path's meaning.
fn segment(s: &str) -> String {
    utf8_percent_encode(s, super::types::UUID_ENCODE).to_string()
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

impl ZoomClient {
    /// Build a client. Fails on credentials that can never work (see
    /// [`super::Credentials::validate`]) or when the HTTP stack cannot be set up.
    pub fn new(config: ClientConfig) -> Result<Self, ZoomError> {
        config.credentials.validate()?;
        for (name, u) in [
            ("api_url", &config.api_url),
            ("oauth_url", &config.oauth_url),
        ] {
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(ZoomError::InvalidInput {
                    op: "client",
                    detail: format!("{name} must be an http(s) URL with a host"),
                });
            }
        }
        let http = reqwest::Client::builder()
            // Redirects are followed by hand (downloads only) so the Authorization header
            // never leaves Zoom's hosts.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("zoomd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ZoomError::Transport {
                op: "client",
                attempts: 0,
                detail: describe_reqwest(e),
            })?;
        let trusted = TrustedHosts::new(
            &config.api_url,
            &config.oauth_url,
            &config.extra_trusted_hosts,
        )?;
        let auth = Arc::new(TokenSource::new(&config, http.clone()));
        Ok(ZoomClient {
            inner: Arc::new(Inner {
                http,
                api_url: config.api_url,
                auth,
                retry: config.retry,
                timeouts: config.timeouts,
                trusted,
                limiter: Limiter::new(config.pace, config.clock.clone()),
                medium: Limiter::new(pace::medium(config.pace), config.clock.clone()),
                pace: config.pace,
                shared: std::sync::OnceLock::new(),
                stopping: std::sync::atomic::AtomicBool::new(false),
                answered: std::sync::Mutex::new(std::collections::BTreeMap::new()),
                download_tokens: std::sync::Mutex::new(std::collections::HashMap::new()),
                clock: config.clock,
                heartbeat: config.heartbeat,
            }),
        })
    }

    /// The request budget it was built with: steps size their concurrency by it.
    pub fn pace(&self) -> super::Pace {
        self.inner.pace
    }

    /// From now on every request also takes a place in `places`, the budget this process
    /// shares with the others of the account (several processes on one database). Once:
    /// a later call changes nothing.
    pub fn share_budget(&self, places: Arc<dyn pace::SharedPlaces>) {
        let shared = pace::Shared::new(places, self.inner.pace, self.inner.clock.clone());
        let _ = self.inner.shared.set(shared);
    }

    /// A webhook's `download_token` for `url`, valid until `until`: downloads of that URL
    /// send it instead of the client's own token while it is valid. Kept in memory only.
    pub fn remember_download_token(&self, url: &str, token: Secret, until: DateTime<Utc>) {
        let now = self.inner.clock.now();
        let mut map = self
            .inner
            .download_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, t)| *t > now);
        if until > now {
            map.insert(url.to_string(), (token, until));
        }
    }

    /// The download token for `url`, if one is remembered and still valid.
    pub(crate) fn download_token_for(&self, url: &str) -> Option<Secret> {
        let now = self.inner.clock.now();
        let map = self
            .inner
            .download_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(url)
            .filter(|(_, t)| *t > now)
            .map(|(s, _)| s.clone())
    }

    /// Forgets a download token Zoom refused: the client's own token is used from now on.
    pub(crate) fn forget_download_token(&self, url: &str) {
        let mut map = self
            .inner
            .download_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.remove(url);
    }

    /// Requests answered so far (no answer: `error`), by operation and status class.
    pub fn request_counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let map = self
            .inner
            .answered
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|((op, class), n)| (*op, *class, *n))
            .collect()
    }

    pub(crate) fn count_answer(&self, op: &'static str, status: Option<u16>) {
        let mut map = self
            .inner
            .answered
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry((op, status_class(status))).or_default() += 1;
    }

    /// The process is stopping: steps that use this client start no new item (the calls
    /// already in flight go on).
    pub fn stop_new_work(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`ZoomClient::stop_new_work`] was called.
    pub fn stopping(&self) -> bool {
        self.inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The heartbeat its requests feed (shared with whoever keeps the watchdog).
    pub fn heartbeat(&self) -> crate::liveness::Heartbeat {
        self.inner.heartbeat.clone()
    }

    /// The scopes Zoom granted the current token (`None` with JWT credentials, which carry
    /// none). Obtains a token if there is none yet.
    pub async fn granted_scopes(&self) -> Result<Option<String>, ZoomError> {
        self.inner.auth.granted_scopes().await
    }

    /// A bearer token for the configured credentials (cached, renewed as needed). For
    /// `zoomd token`; the value is only reachable through [`Secret::expose`].
    pub async fn token(&self) -> Result<Secret, ZoomError> {
        self.inner.auth.bearer().await
    }

    // ---- operations -------------------------------------------------------------------

    /// `POST /users/{user_id}/meetings`: create a scheduled meeting (type 2).
    ///
    /// Never retried blindly: on [`ZoomError::OutcomeUnknown`] the meeting may exist; look
    /// for it with [`ZoomClient::list_upcoming_meetings`] before creating again.
    pub async fn create_meeting(
        &self,
        user_id: &str,
        meeting: &CreateMeeting,
    ) -> Result<Meeting, ZoomError> {
        const OP: &str = "create_meeting";
        let body = meeting
            .to_body()
            .map_err(|detail| ZoomError::InvalidInput { op: OP, detail })?;
        let url = self.api(&["users", &segment(user_id), "meetings"]);
        let bytes = self
            .execute(Call {
                op: OP,
                method: Method::POST,
                url,
                body: Some(json_bytes(OP, &body)?),
                kind: Kind::Create,
                host: Some(user_id),
                not_after: None,
            })
            .await?;
        // Zoom answered 201, so the meeting exists; an unreadable answer hides its id.
        parse::<Meeting>(OP, &bytes).map_err(|e| ZoomError::OutcomeUnknown {
            op: OP,
            detail: format!("created, but the answer did not parse: {e}"),
        })
    }

    /// `GET /meetings/{id}`.
    pub async fn get_meeting(&self, meeting_id: i64) -> Result<Meeting, ZoomError> {
        const OP: &str = "get_meeting";
        let url = self.api(&["meetings", &meeting_id.to_string()]);
        let bytes = self.get(OP, url).await?;
        parse(OP, &bytes)
    }

    /// `PATCH /meetings/{id}` (204). Counts against the host's daily create/update cap.
    pub async fn update_meeting(
        &self,
        meeting_id: i64,
        patch: &MeetingPatch,
    ) -> Result<(), ZoomError> {
        const OP: &str = "update_meeting";
        let body = patch
            .to_body()
            .map_err(|detail| ZoomError::InvalidInput { op: OP, detail })?;
        let url = self.api(&["meetings", &meeting_id.to_string()]);
        self.execute(Call {
            op: OP,
            method: Method::PATCH,
            url,
            body: Some(json_bytes(OP, &body)?),
            kind: Kind::Idempotent,
            host: None,
            not_after: None,
        })
        .await?;
        Ok(())
    }

    /// `DELETE /meetings/{id}` (204). A meeting that is already gone gives
    /// [`ZoomError::NotFound`] (code 3001), which callers may treat as done.
    pub async fn delete_meeting(&self, meeting_id: i64) -> Result<(), ZoomError> {
        let url = self.api(&["meetings", &meeting_id.to_string()]);
        self.delete("delete_meeting", url).await
    }

    /// `GET /users/{user_id}/meetings?type=upcoming`, every page.
    pub async fn list_upcoming_meetings(&self, user_id: &str) -> Result<Vec<Meeting>, ZoomError> {
        const OP: &str = "list_upcoming_meetings";
        let url = self.api(&["users", &segment(user_id), "meetings"]);
        self.all_pages(OP, url, &[("type", "upcoming")]).await
    }

    /// `GET /past_meetings/{id}/instances`: the uuids of every time the meeting ran.
    pub async fn list_past_instances(
        &self,
        meeting_id: i64,
    ) -> Result<Vec<PastInstance>, ZoomError> {
        const OP: &str = "list_past_instances";
        let url = self.api(&["past_meetings", &meeting_id.to_string(), "instances"]);
        let bytes = self.get(OP, url).await?;
        Ok(parse::<Instances>(OP, &bytes)?.meetings)
    }

    /// `GET /meetings/{id or uuid}/recordings`. `Ok(None)` when there is no recording (yet):
    /// 404 with code 3301.
    pub async fn get_recordings(
        &self,
        meeting: &MeetingRef,
    ) -> Result<Option<MeetingRecordings>, ZoomError> {
        const OP: &str = "get_recordings";
        let url = self.api(&["meetings", &meeting.path_segment(), "recordings"]);
        match self.get(OP, url).await {
            Ok(bytes) => {
                let rec: MeetingRecordings = parse(OP, &bytes)?;
                rec.check()
                    .map_err(|detail| ZoomError::Parse { op: OP, detail })?;
                Ok(Some(rec))
            }
            Err(ZoomError::NotFound {
                code: Some(3301), ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /users?status=…`: every user of the account with any of `statuses` (`active`,
    /// `inactive`, `pending`), every page of each listing.
    pub async fn list_users(&self, statuses: &[&str]) -> Result<Vec<User>, ZoomError> {
        const OP: &str = "list_users";
        let mut out = Vec::new();
        for status in statuses {
            let url = self.api(&["users"]);
            out.extend(
                self.all_pages::<User>(OP, url, &[("status", status)])
                    .await?,
            );
        }
        Ok(out)
    }

    /// `GET /users/{user_id}/recordings` for the UTC dates `from..=to`, split into windows of
    /// at most a month, every page of each. Meetings are returned once each (by uuid).
    pub async fn list_user_recordings(
        &self,
        user_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MeetingRecordings>, ZoomError> {
        const OP: &str = "list_user_recordings";
        if from > to {
            return Err(ZoomError::InvalidInput {
                op: OP,
                detail: format!("from ({from}) is after to ({to})"),
            });
        }
        let url = self.api(&["users", &segment(user_id), "recordings"]);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (a, b) in month_windows(from, to) {
            let (a, b) = (a.to_string(), b.to_string());
            let page: Vec<MeetingRecordings> = self
                .all_pages(OP, url.clone(), &[("from", &a), ("to", &b)])
                .await?;
            for rec in page {
                rec.check()
                    .map_err(|detail| ZoomError::Parse { op: OP, detail })?;
                if seen.insert(rec.uuid.clone()) {
                    out.push(rec);
                }
            }
        }
        Ok(out)
    }

    /// `DELETE /meetings/{uuid}/recordings?action=trash|delete` (204). Already gone:
    /// [`ZoomError::NotFound`].
    pub async fn delete_recordings(
        &self,
        meeting: &MeetingRef,
        action: DeleteAction,
    ) -> Result<(), ZoomError> {
        const OP: &str = "delete_recordings";
        let mut url = self.api(&["meetings", &meeting.path_segment(), "recordings"]);
        url.query_pairs_mut().append_pair("action", action.as_str());
        self.delete(OP, url).await
    }

    /// `DELETE /meetings/{uuid}/recordings/{file_id}?action=trash|delete` (204): one file.
    /// Already gone: [`ZoomError::NotFound`].
    pub async fn delete_recording_file(
        &self,
        meeting: &MeetingRef,
        file_id: &str,
        action: DeleteAction,
    ) -> Result<(), ZoomError> {
        const OP: &str = "delete_recording_file";
        let mut url = self.api(&[
            "meetings",
            &meeting.path_segment(),
            "recordings",
            &segment(file_id),
        ]);
        url.query_pairs_mut().append_pair("action", action.as_str());
        self.delete(OP, url).await
    }

    // ---- plumbing ---------------------------------------------------------------------

    /// `api_url` + already-encoded path segments.
    fn api(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.api_url.clone();
        let path = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            segments.join("/")
        );
        // The segments are percent-encoded already; set_path keeps `%XX` as given, which
        // is what makes the double encoding of some uuids survive.
        url.set_path(&path);
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    async fn get(&self, op: &'static str, url: Url) -> Result<Bytes, ZoomError> {
        self.execute(Call {
            op,
            method: Method::GET,
            url,
            body: None,
            kind: Kind::Idempotent,
            host: None,
            not_after: None,
        })
        .await
    }

    /// GET that is not sent (nor retried) at or after `not_after`.
    async fn get_until(
        &self,
        op: &'static str,
        url: Url,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<Bytes, ZoomError> {
        self.execute(Call {
            op,
            method: Method::GET,
            url,
            body: None,
            kind: Kind::Idempotent,
            host: None,
            not_after,
        })
        .await
    }

    async fn delete(&self, op: &'static str, url: Url) -> Result<(), ZoomError> {
        self.execute(Call {
            op,
            method: Method::DELETE,
            url,
            body: None,
            kind: Kind::Idempotent,
            host: None,
            not_after: None,
        })
        .await?;
        Ok(())
    }

    /// Follow `next_page_token` to the end. The token lives only in this loop: Zoom's
    /// tokens expire after 15 minutes, so none is ever stored.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        op: &'static str,
        base: Url,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ZoomError> {
        let mut restarts = 0;
        loop {
            match self.pages_once(op, &base, query).await? {
                Listing::Done(out) => return Ok(out),
                // Zoom's page tokens live 15 minutes; one that aged (a long wait between
                // pages) is never sent: the listing starts again from its first page.
                Listing::TokenAged if restarts < MAX_LISTING_RESTARTS => {
                    restarts += 1;
                    tracing::info!(
                        op,
                        restarts,
                        "page token too old; listing again from the first page"
                    );
                }
                Listing::TokenAged => {
                    return Err(ZoomError::Parse {
                        op,
                        detail: format!(
                            "the listing's page tokens expired {MAX_LISTING_RESTARTS} times in a row"
                        ),
                    });
                }
            }
        }
    }

    /// One pass over every page; stops short when the next page's token is too old to use.
    async fn pages_once<T: DeserializeOwned>(
        &self,
        op: &'static str,
        base: &Url,
        query: &[(&str, &str)],
    ) -> Result<Listing<T>, ZoomError> {
        let mut out = Vec::new();
        let mut token: Option<(String, DateTime<Utc>)> = None;
        let mut seen_tokens = HashSet::new();
        for _ in 0..MAX_PAGES {
            if let Some((_, got)) = &token
                && self.inner.clock.now() - *got >= PAGE_TOKEN_USABLE
            {
                return Ok(Listing::TokenAged);
            }
            let mut url = base.clone();
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in query {
                    q.append_pair(k, v);
                }
                q.append_pair("page_size", PAGE_SIZE);
                if let Some((t, _)) = &token {
                    q.append_pair("next_page_token", t);
                }
            }
            let not_after = token.as_ref().map(|(_, got)| *got + PAGE_TOKEN_USABLE);
            let bytes = match self.get_until(op, url, not_after).await {
                // A wait before a retry outlasted the token: it was not sent again.
                Err(ZoomError::PageTokenAged { .. }) => return Ok(Listing::TokenAged),
                // The token expired on the way all the same: Zoom says so with 300.
                Err(ZoomError::Api {
                    status: 400,
                    message,
                    ..
                }) if token.is_some() && message.to_ascii_lowercase().contains("page token") => {
                    return Ok(Listing::TokenAged);
                }
                other => other?,
            };
            let page: Page<T> = parse(op, &bytes)?;
            out.extend(page.meetings);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                None => return Ok(Listing::Done(out)),
                Some(t) => {
                    if !seen_tokens.insert(t.clone()) {
                        return Err(ZoomError::Parse {
                            op,
                            detail: "next_page_token repeated: the listing loops".to_owned(),
                        });
                    }
                    token = Some((t, self.inner.clock.now()));
                }
            }
        }
        Err(ZoomError::Parse {
            op,
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// Send `call` with auth and retries; the body of a 2xx answer, or the error.
    async fn execute(&self, call: Call<'_>) -> Result<Bytes, ZoomError> {
        let op = call.op;
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            if call.not_after.is_some_and(|t| self.inner.clock.now() >= t) {
                return Err(ZoomError::PageTokenAged { op });
            }
            let token = self.inner.auth.bearer().await?;
            let mut rb = self
                .inner
                .http
                .request(call.method.clone(), call.url.clone())
                .bearer_auth(token.expose())
                .header(ACCEPT, "application/json")
                // An I/O timeout: it measures the server, so it stays on tokio's timer
                // whatever the client's clock.
                .timeout(self.inner.timeouts.request);
            if let Some(body) = &call.body {
                rb = rb
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            tracing::debug!(op, method = %call.method, path = call.url.path(), attempt, "zoom request");
            // The place in the budget is held until the answer is read (see `pace`); a
            // medium request holds one in its category's share too (always taken first).
            let medium = match pace::Category::of(op) {
                pace::Category::Medium => Some(self.inner.medium.acquire().await),
                pace::Category::Light => None,
            };
            let ticket = (self.inner.place().await, medium);
            self.inner.heartbeat.beat();
            let sent = rb.send().await;
            self.inner.heartbeat.beat();
            self.count_answer(op, sent.as_ref().ok().map(|r| r.status().as_u16()));
            let resp = match sent {
                Ok(r) => r,
                Err(e) => match self.transport_failure(&call, attempt, e) {
                    Next::Retry(d) => {
                        self.wait_to_retry(op, attempt, d, "transport").await;
                        continue;
                    }
                    Next::Fail(err) => return Err(err),
                },
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = match resp.bytes().await {
                Ok(b) => b,
                // An error status is a definite answer even if its body broke off.
                Err(_) if !status.is_success() => Bytes::new(),
                Err(e) => match self.transport_failure(&call, attempt, e) {
                    Next::Retry(d) => {
                        self.wait_to_retry(op, attempt, d, "truncated answer").await;
                        continue;
                    }
                    Next::Fail(err) => return Err(err),
                },
            };
            drop(ticket);
            tracing::debug!(op, status = status.as_u16(), attempt, "zoom answer");
            if status.is_success() {
                if is_html(&headers) {
                    // Not Zoom's API answering (a portal or proxy page). For a create the
                    // request may still have gone through.
                    return Err(match call.kind {
                        Kind::Create => ZoomError::OutcomeUnknown {
                            op,
                            detail: format!("HTTP {} with an HTML page", status.as_u16()),
                        },
                        Kind::Idempotent => ZoomError::HtmlErrorPage {
                            op,
                            status: status.as_u16(),
                        },
                    });
                }
                return Ok(body);
            }
            let api = ApiError::from_answer(status, &headers, &body, &token, &self.inner.auth);
            if status == StatusCode::UNAUTHORIZED && api.code == Some(124) && !renewed {
                // Expired or revoked token: renew once and repeat. A 401 is a definite
                // refusal, so this is safe for a create too.
                tracing::info!(op, "token refused (124); renewing once");
                self.inner.auth.invalidate(&token).await;
                renewed = true;
                attempt -= 1;
                continue;
            }
            match self.error_answer(&call, attempt, status, &headers, api) {
                Next::Retry(d) => self.wait_to_retry(op, attempt, d, "error answer").await,
                Next::Fail(err) => return Err(err),
            }
        }
    }

    /// Wait `delay` on the client's clock before attempt `attempt + 1`.
    pub(crate) async fn wait_to_retry(
        &self,
        op: &'static str,
        attempt: u32,
        delay: Duration,
        why: &'static str,
    ) {
        tracing::warn!(
            op,
            attempt,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            why,
            "retrying Zoom request"
        );
        self.inner.clock.sleep(delay).await;
    }

    /// A request that got no HTTP answer.
    fn transport_failure(&self, call: &Call<'_>, attempt: u32, e: reqwest::Error) -> Next {
        // A connect failure means nothing was sent: safe to repeat even a create.
        let not_sent = e.is_connect();
        let detail = describe_reqwest(e);
        if call.kind == Kind::Create && !not_sent {
            return Next::Fail(ZoomError::OutcomeUnknown {
                op: call.op,
                detail,
            });
        }
        if attempt >= self.inner.retry.max_attempts {
            return Next::Fail(ZoomError::Transport {
                op: call.op,
                attempts: attempt,
                detail,
            });
        }
        Next::Retry(self.inner.retry.backoff(attempt - 1))
    }

    /// A request Zoom answered with an error status.
    ///
    /// Create (POST) policy, since Zoom has no idempotency key:
    /// - 429 (not the daily cap): the rate limiter refused before any work: retried.
    /// - 503 with `Retry-After`: the service shed the load before processing: retried.
    /// - 500, 502, 504 and 503 without `Retry-After`: the request may have reached the
    ///   meeting service (500: it failed midway; 502/504: a gateway lost its answer):
    ///   [`ZoomError::OutcomeUnknown`].
    /// - Any other status is a definite refusal, surfaced as is.
    fn error_answer(
        &self,
        call: &Call<'_>,
        attempt: u32,
        status: StatusCode,
        headers: &HeaderMap,
        api: ApiError,
    ) -> Next {
        let op = call.op;
        let code = status.as_u16();
        let policy = &self.inner.retry;
        let now = self.inner.clock.now();
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let ratelimit_type = headers
            .get("x-ratelimit-type")
            .and_then(|v| v.to_str().ok());

        if is_daily_limit(code, &api.message, ratelimit_type) {
            return Next::Fail(ZoomError::DailyLimit {
                op,
                host: call.host.map(str::to_owned),
                reset_at: next_utc_midnight(now),
                message: api.message,
            });
        }

        if code == 429 {
            // Not the daily cap: the account's per-second limit, which every app of the
            // account shares. Slow the whole client down, not just this request. A short
            // Retry-After holds every request back; a long one is this call's alone (the
            // caller stores it), so one slow answer cannot stall every step.
            let pause = retry_after.filter(|d| *d <= policy.max_retry_after);
            let until = pause.and_then(|d| instant_after(now, d));
            self.inner.limiter.slow_down(until);
            if pace::Category::of(op) == pace::Category::Medium {
                self.inner.medium.slow_down(until);
            }
        }

        let retryable = match (code, call.kind) {
            (429, _) => true,
            (500..=599, Kind::Idempotent) => true,
            (503, Kind::Create) if retry_after.is_some() => true,
            (500..=599, Kind::Create) => {
                return Next::Fail(ZoomError::OutcomeUnknown {
                    op,
                    detail: format!("HTTP {code}: {}", api.message),
                });
            }
            _ => false,
        };

        if retryable {
            let exhausted = attempt >= policy.max_attempts;
            let too_long = retry_after.is_some_and(|d| d > policy.max_retry_after);
            if exhausted || too_long {
                return Next::Fail(if code == 429 {
                    ZoomError::RateLimited {
                        op,
                        attempts: attempt,
                        retry_at: retry_after.and_then(|d| instant_after(now, d)),
                    }
                } else {
                    api.into_error(op, code)
                });
            }
            let delay = retry_after.unwrap_or_else(|| policy.backoff(attempt - 1));
            return Next::Retry(delay);
        }

        if api.code == Some(4711) {
            return Next::Fail(ZoomError::MissingScopes {
                op,
                feature: super::scopes::feature_of(op).map(super::scopes::Feature::name),
                scopes: super::scopes::scopes_in_4711(&api.message),
            });
        }

        Next::Fail(match code {
            404 => ZoomError::NotFound {
                op,
                code: api.code,
                message: api.message,
            },
            401 => ZoomError::Auth {
                op,
                status: Some(code),
                detail: api.message,
            },
            301 | 302 | 303 | 307 | 308 => ZoomError::Redirect {
                op,
                detail: format!("API answered HTTP {code}; API redirects are not followed"),
            },
            _ if api.html => ZoomError::HtmlErrorPage { op, status: code },
            _ => api.into_error(op, code),
        })
    }
}

/// An error answer, reduced to what the error types carry (already scrubbed).
struct ApiError {
    code: Option<i64>,
    message: String,
    html: bool,
}

impl ApiError {
    fn from_answer(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        token: &Secret,
        auth: &TokenSource,
    ) -> ApiError {
        let html = is_html(headers);
        let parsed: Option<ApiErrorBody> = serde_json::from_slice(body).ok();
        let (code, message) = match parsed {
            Some(b) if b.code.is_some() || b.message.is_some() => {
                (b.code, b.message.unwrap_or_default())
            }
            _ if html => (None, "HTML page".to_owned()),
            _ => {
                // Not Zoom's JSON: keep a short, printable excerpt (500 chars) for the operator.
                let text = String::from_utf8_lossy(body);
                let excerpt: String = text.chars().filter(|c| !c.is_control()).take(500).collect();
                let reason = status.canonical_reason().unwrap_or("");
                (
                    None,
                    if excerpt.is_empty() {
                        reason.to_owned()
                    } else {
                        excerpt
                    },
                )
            }
        };
        let message = scrub(
            &message,
            &[token.expose(), auth.credential_secret().expose()],
        );
        ApiError {
            code,
            message,
            html,
        }
    }

    fn into_error(self, op: &'static str, status: u16) -> ZoomError {
        ZoomError::Api {
            op,
            status,
            code: self.code,
            message: self.message,
        }
    }
}

fn json_bytes(op: &'static str, v: &serde_json::Value) -> Result<Bytes, ZoomError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ZoomError::InvalidInput {
            op,
            detail: format!("cannot serialize request: {e}"),
        })
}

pub(crate) fn parse<T: DeserializeOwned>(op: &'static str, bytes: &[u8]) -> Result<T, ZoomError> {
    serde_json::from_slice(bytes).map_err(|e| ZoomError::Parse {
        op,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoom::{Credentials, encode_uuid};

    fn client(api: &str) -> ZoomClient {
        let mut cfg = ClientConfig::new(Credentials::Jwt {
            api_key: "k".into(),
            api_secret: Secret::new("s3cret-value"),
            ttl: Duration::from_secs(30),
        });
        cfg.api_url = Url::parse(api).unwrap();
        ZoomClient::new(cfg).unwrap()
    }

    #[test]
    fn urls_keep_encoded_segments() {
        let c = client("https://api.zoom.us/v2/");
        let u = c.api(&["meetings", &encode_uuid("/ab//c+d=="), "recordings"]);
        assert_eq!(
            u.as_str(),
            "https://api.zoom.us/v2/meetings/%252Fab%252F%252Fc%252Bd%253D%253D/recordings"
        );
        let u = c.api(&["users", &segment("a+b@example.org"), "meetings"]);
        assert_eq!(
            u.as_str(),
            "https://api.zoom.us/v2/users/a%2Bb%40example.org/meetings"
        );
        let c = client("http://127.0.0.1:1234");
        assert_eq!(
            c.api(&["meetings", "1"]).as_str(),
            "http://127.0.0.1:1234/meetings/1"
        );
    }

    #[tokio::test]
    async fn backoff_waits_on_the_clock() {
        use crate::clock::{Clock, ManualClock};
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        let mut cfg = ClientConfig::new(Credentials::Jwt {
            api_key: "k".into(),
            api_secret: Secret::new("s3cret-value"),
            ttl: Duration::from_secs(30),
        });
        cfg.api_url = Url::parse(&format!("http://{dead}/v2")).unwrap();
        // Real waits of up to a minute each: the test only finishes at once because they
        // are on the manual clock.
        cfg.retry = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
        };
        cfg.clock = clock.shared();
        let policy = cfg.retry.clone();
        let c = ZoomClient::new(cfg).unwrap();
        let e = c.get_meeting(1).await.unwrap_err();
        assert!(
            matches!(e, ZoomError::Transport { attempts: 5, .. }),
            "{e:?}"
        );
        let sleeps = clock.sleeps();
        assert_eq!(sleeps.len(), 4, "{sleeps:?}");
        for (retry, d) in sleeps.iter().enumerate() {
            assert!(*d <= policy.ceiling(retry as u32), "{retry}: {d:?}");
        }
        let slept = chrono::Duration::from_std(clock.slept()).unwrap();
        assert_eq!(clock.now(), start + slept);
    }

    #[test]
    fn bad_config_is_refused() {
        let cfg = ClientConfig::new(Credentials::Jwt {
            api_key: "k".into(),
            api_secret: Secret::new("sécret"),
            ttl: Duration::from_secs(30),
        });
        let e = ZoomClient::new(cfg).unwrap_err();
        assert!(matches!(e, ZoomError::InvalidInput { .. }));
    }
}
