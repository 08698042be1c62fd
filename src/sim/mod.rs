//! A simulated Zoom API on loopback, for integration tests and `zoomd demo`.
//!
//! [`Sim::start`] binds two listeners on 127.0.0.1: the API host (`/oauth/token`, `/v2/...`,
//! `/rec/download/...`) and a separate "download" host that serves the signed URLs the
//! API's download links redirect to, like Zoom's CDN. The sim checks what it is sent as
//! strictly as Zoom does (credentials, bearer tokens only in headers, body fields, the
//! double encoding of uuids starting with `/`), produces recordings on a timeline of its
//! clock (the wall clock unless [`SimConfig::clock`] says otherwise), and can inject faults
//! (see [`Fault`]) per route.
//!
//! Timeline of a meeting with `auto_recording = "cloud"` (each instance on its own):
//! at `start_time` the instance has happened; `recording_after` later its recording
//! appears with MP4, M4A and CHAT files in `processing`; `processing_for` later they are
//! `completed` and the CC file (no `id`, `status`, `file_size`, as Zoom sends it) appears;
//! the TRANSCRIPT appears `transcript_after` after the others and completes
//! `processing_for` after that. [`Sim::force_recording`] skips the wait.
//!
//! Meetings also come from outside the API, as people hold them: [`Sim::add_adhoc_recording`]
//! and [`Sim::add_recording_history`] add cloud-recorded meetings of a user on the same
//! timeline from their start (one far in the past is complete at once), without charging
//! the daily cap or entering [`SimReport::meetings_created`]. [`Sim::add_user`] lets a user
//! join while the sim runs. All three can be called at any time: later listings show
//! what they add, as recordings appear at Zoom while a client scans.
//!
//! Zoom's event notifications come from the sim too: [`Sim::webhook_event`] builds the
//! `recording.completed` (and other) notification Zoom would send for a meeting, with a
//! `download_token` the download links accept as `Bearer` for 24 hours of the sim's
//! clock, and [`Sim::send_webhook`] delivers it signed, as Zoom does, to a URL on loopback.
//!
//! Everything the clients did is observable through [`Sim::counters`] and [`Sim::report`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), zoomd::sim::SimError> {
//! use zoomd::sim::{Fault, RetryAfter, Route, Sim, SimConfig};
//!
//! let sim = Sim::start(SimConfig { daily_cap: 5, ..SimConfig::default() }).await?;
//! // Point the client at sim.api_url() and sim.oauth_url(), with the config's credentials.
//! sim.inject(Route::CreateMeeting, Fault::RateLimited(RetryAfter::Seconds(1)), 1);
//! // ... run the client; then skip the wait for a meeting's recording:
//! # let meeting_id = 0;
//! sim.force_recording(meeting_id)?;
//! // ... and check what it did.
//! assert!(sim.report().download_auth_headers.is_empty());
//! assert!(sim.report().tokens_in_urls.is_empty());
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod conn;
mod content;
mod download;
mod faults;
mod respond;
mod routes;
mod state;
mod validate;
mod webhook;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rand::{RngCore, SeedableRng};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{self, SharedClock};

pub use faults::{Chaos, Fault, RetryAfter, Route};
pub use webhook::{DOWNLOAD_TOKEN_TTL, WebhookDelivery, ZOOM_DEADLINE};

use conn::{ConnCtl, KillableListener};
use state::{FileState, Shared, State};

/// A user of the simulated account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    /// Zoom user id (22 characters, like `KDcuGIm1QgePTO8WbOqwIQ`).
    pub id: String,
    pub email: String,
    /// The user's zone: used for a local `start_time` sent without `timezone`.
    pub timezone: String,
    /// `active`, `inactive` (deactivated) or `pending` (invited, not yet joined): what
    /// `GET /users?status=` filters on.
    pub status: &'static str,
}

/// How the simulated Zoom behaves. `Default` suits tests: short timings, small files.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Server-to-Server OAuth account id.
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Legacy JWT app: the `iss` claim.
    pub api_key: String,
    /// Legacy JWT app: the HS256 key, used as its ASCII bytes.
    pub api_secret: String,
    /// `scope` of issued OAuth tokens.
    pub scope: String,
    /// `expires_in` of issued OAuth tokens, seconds.
    pub token_expires_in: u64,
    /// The account's users; the first one is `me`.
    pub users: Vec<SimUser>,
    /// Delay after an instance's start until its recording exists.
    pub recording_after: Duration,
    /// How long files stay `processing`.
    pub processing_for: Duration,
    /// How much later than the other files the TRANSCRIPT appears.
    pub transcript_after: Duration,
    /// Size of each MP4 file, bytes (generated on the fly: gigabytes are fine).
    pub mp4_size: u64,
    /// Size of each M4A file, bytes.
    pub m4a_size: u64,
    /// Every new meeting also gets a second instance whose uuid starts with `/`.
    pub second_instance: bool,
    /// Start of the second instance after the first.
    pub second_instance_gap: Duration,
    /// Creates + updates per host user per UTC day.
    pub daily_cap: u32,
    /// Answer the daily cap with HTTP 300 instead of 429 (as older accounts saw).
    pub daily_cap_as_300: bool,
    /// Send `Retry-After`/`X-RateLimit-*` headers with the daily cap answer and with
    /// injected 429s.
    pub rate_limit_headers: bool,
    /// Validity of the signed download URLs the download links redirect to.
    pub signed_url_ttl: Duration,
    /// How long a [`Fault::StalledBody`] hangs at most.
    pub stall_for: Duration,
    /// Seed of every random choice (ids, uuids, tokens).
    pub seed: u64,
    /// The time source the sim's clock ([`Sim::now`]) adds its offset to; the system clock
    /// by default. Give the sim and the client one [`crate::clock::ManualClock`] and
    /// Zoom's side moves with the client's waits: a `Retry-After` date means exactly the
    /// wait it names, a token expires when the client's clock says so. The sim's own
    /// pauses (injected delays, stalled bodies) stay real: they are I/O, which the client
    /// times on tokio's timer.
    pub clock: SharedClock,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            account_id: "sim-account-Cx3wERazSgup7Z".into(),
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            api_key: "sim-api-key".into(),
            api_secret: "sim-api-secret".into(),
            scope: "meeting:read:admin meeting:write:admin recording:read:admin \
                    recording:write:admin user:read:admin"
                .into(),
            token_expires_in: 3600,
            users: vec![
                SimUser {
                    id: "KDcuGIm1QgePTO8WbOqwIQ".into(),
                    email: "host@example.org".into(),
                    timezone: "UTC".into(),
                    status: "active",
                },
                SimUser {
                    id: "z8yAAAAA8bbbQ5Ccc-DDdQ".into(),
                    email: "chair@example.org".into(),
                    timezone: "America/New_York".into(),
                    status: "active",
                },
            ],
            recording_after: Duration::from_secs(3),
            processing_for: Duration::from_secs(2),
            transcript_after: Duration::from_secs(4),
            mp4_size: 64 * 1024,
            m4a_size: 16 * 1024,
            second_instance: false,
            second_instance_gap: Duration::from_secs(1),
            daily_cap: 100,
            daily_cap_as_300: false,
            rate_limit_headers: true,
            signed_url_ttl: Duration::from_secs(300),
            stall_for: Duration::from_secs(60),
            seed: 0x5EED_200A,
            clock: clock::system(),
        }
    }
}

/// What a person changes about a meeting in Zoom's web page.
#[derive(Debug, Clone, Default)]
pub struct PersonEdit {
    pub topic: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub duration: Option<u32>,
    pub agenda: Option<String>,
}

/// Errors of the sim itself (not the HTTP answers it gives).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("sim: cannot listen on loopback: {0}")]
    Bind(#[source] std::io::Error),
    #[error("sim: no meeting with id {0}")]
    NoSuchMeeting(i64),
    #[error("sim: invalid configuration: {0}")]
    Config(String),
    #[error("sim: no user {0} in the account")]
    NoSuchUser(String),
    #[error("sim: invalid argument: {0}")]
    InvalidInput(String),
    #[error("sim: meeting {0} has no recording to notify about")]
    NoRecording(i64),
    #[error("sim: webhook delivery failed: {0}")]
    Webhook(String),
}

/// Requests and answers, by route and status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests received, by route (token, create_meeting, ..., download, signed_download).
    pub requests: BTreeMap<Route, u64>,
    /// Answers sent, by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    /// Body bytes of recording files sent by the download host.
    pub bytes_served: u64,
    /// Connections closed without an answer (injected faults).
    pub connections_killed: u64,
    /// Injected faults that fired (queued or chaos).
    pub faults_fired: u64,
    /// API requests answered 429 because they went over the per-second limit
    /// ([`Sim::set_per_second_limit`]).
    pub over_per_second: u64,
    /// The most API requests (token requests aside) that arrived within one second.
    pub max_per_second: u64,
    /// Download requests (the API host's hop) let in by a webhook's `download_token`
    /// rather than an OAuth token or JWT.
    pub downloads_with_download_token: u64,
    /// The most file bodies the download host was sending at once.
    pub max_download_streams: u32,
    /// Webhook deliveries that got an answer ([`Sim::send_webhook`], [`Sim::send_webhook_raw`]).
    pub webhooks_sent: u64,
}

impl Counters {
    /// Requests received on `route`.
    pub fn get(&self, route: Route) -> u64 {
        self.requests.get(&route).copied().unwrap_or(0)
    }
}

/// A meeting as the sim holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct MeetingRecord {
    pub id: i64,
    pub uuid: String,
    pub host_id: String,
    pub host_email: String,
    pub topic: String,
    pub agenda: String,
    pub start_time: DateTime<Utc>,
    pub duration: u32,
    pub timezone: String,
    pub settings: Value,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
    /// Held outside the API ([`Sim::add_adhoc_recording`]): no zoomd marker in its agenda.
    pub adhoc: bool,
    /// uuids of its instances (first = the meeting's own uuid).
    pub instances: Vec<String>,
}

/// A cloud-recorded meeting held outside the API ([`Sim::add_adhoc_recording`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdHoc {
    pub meeting_id: i64,
    /// Its one instance's uuid (the recording's `uuid`).
    pub uuid: String,
}

/// A recording (or one file of it) that a client trashed or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingRemoval {
    pub uuid: String,
    pub file_id: Option<String>,
    /// `trash` or `delete`.
    pub action: String,
}

/// One request as received (path and query raw, as sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLog {
    pub route: Route,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The answer's status; 0 when the connection was closed without one.
    pub status: u16,
}

/// What clients did, for assertions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimReport {
    /// Meetings as created (later updates are in `meetings_updated`).
    pub meetings_created: Vec<MeetingRecord>,
    /// Meeting id and the PATCH body, per successful update.
    pub meetings_updated: Vec<(i64, Value)>,
    pub meetings_deleted: Vec<i64>,
    pub recordings_removed: Vec<RecordingRemoval>,
    /// Every `Authorization` header the download host received (must stay empty).
    pub download_auth_headers: Vec<String>,
    /// Requests that carried a token in the URL ("METHOD path?query"; must stay empty).
    pub tokens_in_urls: Vec<String>,
    /// Requests whose uuid arrived encoded once where Zoom needs it twice.
    pub encoding_errors: Vec<String>,
    /// Faults that fired, with their route.
    pub faults_fired: Vec<(Route, String)>,
    /// Every request (capped at 100 000).
    pub requests: Vec<RequestLog>,
}

/// A recording file as a correct archive must hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedFile {
    pub meeting_id: i64,
    /// The instance uuid (the recording's `uuid`).
    pub uuid: String,
    /// Zoom's file id; `None` for files Zoom sends without one (CC).
    pub file_id: Option<String>,
    /// The file id, or the file type for id-less files: the key for [`Sim::file_sha256`].
    pub key: String,
    pub file_type: String,
    pub file_extension: String,
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// A running simulated Zoom. Stops on [`Sim::shutdown`] or drop.
pub struct Sim {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    dl_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Sim {
    /// Binds both loopback listeners and starts serving (needs a tokio runtime).
    pub async fn start(cfg: SimConfig) -> Result<Sim, SimError> {
        if cfg.users.is_empty() {
            return Err(SimError::Config("at least one user is needed".into()));
        }
        let api = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(SimError::Bind)?;
        let dl = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(SimError::Bind)?;
        let api_addr = api.local_addr().map_err(SimError::Bind)?;
        let dl_addr = dl.local_addr().map_err(SimError::Bind)?;
        let mut sign_key = [0u8; 32];
        rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x51_6E_ED).fill_bytes(&mut sign_key);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            st: Mutex::new(State::new(&cfg)),
            cfg,
            api_origin: format!("http://{api_addr}"),
            dl_origin: format!("http://{dl_addr}"),
            sign_key,
            shutdown,
        });
        let api_app =
            routes::api_router(shared.clone()).into_make_service_with_connect_info::<ConnCtl>();
        let dl_app =
            download::router(shared.clone()).into_make_service_with_connect_info::<ConnCtl>();
        let t1 = tokio::spawn(async move {
            if let Err(e) = axum::serve(KillableListener::new(api), api_app).await {
                tracing::warn!("sim API server stopped: {e}");
            }
        });
        let t2 = tokio::spawn(async move {
            if let Err(e) = axum::serve(KillableListener::new(dl), dl_app).await {
                tracing::warn!("sim download server stopped: {e}");
            }
        });
        Ok(Sim {
            shared,
            api_addr,
            dl_addr,
            tasks: vec![t1, t2],
        })
    }

    /// `http://127.0.0.1:P/v2`.
    pub fn api_url(&self) -> String {
        format!("{}/v2", self.shared.api_origin)
    }

    /// `http://127.0.0.1:P/oauth/token`.
    pub fn oauth_url(&self) -> String {
        format!("{}/oauth/token", self.shared.api_origin)
    }

    /// Address of the API listener.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// `http://127.0.0.1:Q`, the host of signed download URLs.
    pub fn download_base(&self) -> String {
        self.shared.dl_origin.clone()
    }

    /// Address of the download listener.
    pub fn download_addr(&self) -> SocketAddr {
        self.dl_addr
    }

    /// The configuration the sim runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Stops both listeners, drops idle connections and ends stalled bodies. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        for t in &self.tasks {
            t.abort();
        }
    }

    // ----- clock --------------------------------------------------------------------

    /// The sim's "now" (its time source, by default the wall clock, plus an offset).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now()
    }

    /// Moves the sim's clock forward (tokens expire, meetings happen, recordings appear).
    pub fn advance(&self, by: Duration) {
        let mut st = self.shared.lock();
        st.clock_offset += state::to_delta(by);
    }

    /// Sets the offset of the sim's clock from its time source.
    pub fn set_clock_offset(&self, offset: TimeDelta) {
        self.shared.lock().clock_offset = offset;
    }

    // ----- meetings and recordings ----------------------------------------------------

    /// A meeting as the sim holds it now (deleted ones included).
    pub fn meeting(&self, id: i64) -> Option<MeetingRecord> {
        self.shared.lock().meetings.get(&id).map(|m| m.record())
    }

    /// All meetings, by id (ad-hoc ones included: see [`MeetingRecord::adhoc`]).
    pub fn meetings(&self) -> Vec<MeetingRecord> {
        let st = self.shared.lock();
        st.meetings.values().map(|m| m.record()).collect()
    }

    /// A person deletes the meeting in Zoom's web page (not one of zoomd's DELETEs: the
    /// report's `meetings_deleted` does not list it).
    pub fn person_deletes_meeting(&self, meeting_id: i64) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        let m = st
            .meetings
            .get_mut(&meeting_id)
            .ok_or(SimError::NoSuchMeeting(meeting_id))?;
        m.deleted = true;
        Ok(())
    }

    /// A person edits the meeting in Zoom's web page (not counted against the daily cap,
    /// not in the report's `meetings_updated`).
    pub fn person_edits_meeting(&self, meeting_id: i64, edit: PersonEdit) -> Result<(), SimError> {
        let cfg = &self.shared.cfg;
        let mut st = self.shared.lock();
        let input = validate::MeetingInput {
            topic: edit.topic,
            start_time: edit.start_time,
            duration: edit.duration,
            agenda: edit.agenda,
            ..validate::MeetingInput::default()
        };
        st.edit_meeting(cfg, meeting_id, input)
            .map_err(|_| SimError::NoSuchMeeting(meeting_id))
    }

    /// The user (id or email) leaves the account: Zoom answers 1001 for it from now on.
    pub fn remove_user(&self, user: &str) {
        let mut st = self.shared.lock();
        st.users
            .retain(|u| u.id != user && !u.email.eq_ignore_ascii_case(user));
    }

    /// A user joins the account: `GET /users` lists them and they host meetings and
    /// recordings like the configured users. A user with the same id or email is
    /// replaced in place (e.g. reactivated with another `status`).
    pub fn add_user(&self, user: SimUser) {
        let mut st = self.shared.lock();
        let same = |u: &SimUser| u.id == user.id || u.email.eq_ignore_ascii_case(&user.email);
        match st.users.iter().position(same) {
            Some(first) => {
                st.users.retain(|u| !same(u));
                // Nothing before `first` matched, so it is still in bounds.
                st.users.insert(first, user);
            }
            None => st.users.push(user),
        }
    }

    /// A user (id or email; `me` is the first user) held a cloud-recorded meeting outside
    /// the API, e.g. an instant meeting: a meeting with one instance at `start` (to the
    /// whole second, as Zoom keeps times) whose recording follows the timeline from then.
    /// Not charged to the daily cap, not in [`SimReport::meetings_created`]; its files are
    /// in [`Sim::expected_files`] once completed.
    pub fn add_adhoc_recording(
        &self,
        user: &str,
        topic: &str,
        start: DateTime<Utc>,
        duration_min: u32,
    ) -> Result<AdHoc, SimError> {
        let start = start.trunc_subsecs(0);
        check_timeline(&self.shared.cfg, start, duration_min)?;
        let mut st = self.shared.lock();
        let host = st
            .user(user)
            .map_err(|_| SimError::NoSuchUser(user.to_string()))?;
        let (meeting_id, uuid) = st.add_adhoc(&self.shared.cfg, &host, topic, start, duration_min);
        Ok(AdHoc { meeting_id, uuid })
    }

    /// `count` ad-hoc recordings of a user (see [`Sim::add_adhoc_recording`]), 30 minutes
    /// each, starting evenly spread over `[from, to)` from `from`'s first whole second,
    /// topics `Ad-hoc meeting N of <email>` (N from 1). Deterministic for a given seed and
    /// order of calls; all are added at once, so a listing sees all or none.
    pub fn add_recording_history(
        &self,
        user: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        count: usize,
    ) -> Result<Vec<AdHoc>, SimError> {
        const MINUTES: u32 = 30;
        let cfg = &self.shared.cfg;
        if from > to {
            return Err(SimError::InvalidInput(format!(
                "from {from} is after to {to}"
            )));
        }
        let base = from.trunc_subsecs(0);
        let base = if base < from {
            base.checked_add_signed(TimeDelta::seconds(1))
        } else {
            Some(base)
        };
        let base = match base {
            Some(b) if b < to => b,
            _ if count == 0 => from,
            _ => {
                return Err(SimError::InvalidInput(format!(
                    "no whole second in [{from}, {to}) to start a recording at"
                )));
            }
        };
        let span = i128::from((to - base).num_milliseconds());
        let n =
            i128::try_from(count).map_err(|_| SimError::InvalidInput(format!("count {count}")))?;
        let mut starts = Vec::new();
        for i in 0..n {
            // < span, so it fits the i64 that `span` came from.
            let off = i64::try_from(span * i / n).unwrap_or(0);
            let start = (base + TimeDelta::milliseconds(off)).trunc_subsecs(0);
            check_timeline(cfg, start, MINUTES)?;
            starts.push(start);
        }
        let mut st = self.shared.lock();
        let host = st
            .user(user)
            .map_err(|_| SimError::NoSuchUser(user.to_string()))?;
        Ok(starts
            .into_iter()
            .enumerate()
            .map(|(i, start)| {
                let topic = format!("Ad-hoc meeting {} of {}", i + 1, host.email);
                let (meeting_id, uuid) = st.add_adhoc(cfg, &host, &topic, start, MINUTES);
                AdHoc { meeting_id, uuid }
            })
            .collect())
    }

    /// Every API request waits `d` before it is handled (a slow Zoom).
    pub fn set_latency(&self, d: Duration) {
        self.shared.lock().latency = d;
    }

    /// Each download connection is held to `bytes_per_second` (as CDN edges cap a single
    /// stream); `None` lifts the cap. Paced on real time: it is about sockets.
    pub fn set_download_rate_per_connection(&self, bytes_per_second: Option<u64>) {
        self.shared.lock().download_rate = bytes_per_second.filter(|r| *r > 0);
    }

    /// `false`: the download host ignores `Range` (and `If-Range`) and always answers 200
    /// with the whole file, as some servers do.
    pub fn set_range_support(&self, on: bool) {
        self.shared.lock().ranges_ignored = !on;
    }

    /// The file's bytes change (same size, new entity tag), as if Zoom replaced it: a body
    /// already under way goes on with the old bytes, every later request gets the new ones.
    pub fn change_file(&self, uuid: &str, key: &str) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        let (id, idx) = st
            .find_uuid(uuid)
            .ok_or_else(|| SimError::InvalidInput(format!("no recording {uuid}")))?;
        let f = st
            .meetings
            .get_mut(&id)
            .and_then(|m| m.instances.get_mut(idx))
            .and_then(|i| i.files.iter_mut().find(|f| f.key == key))
            .ok_or_else(|| SimError::InvalidInput(format!("no file {key} in recording {uuid}")))?;
        f.content = f.content.changed();
        st.sha_cache.remove(&(uuid.to_string(), key.to_string()));
        Ok(())
    }

    /// Zoom's per-second limit of the account: an API request (token requests aside) that
    /// arrives when `n` have arrived within the last second (on the sim's clock) is
    /// answered 429 with `X-RateLimit-Type: QPS` and `Retry-After: 1`. `None`: no limit
    /// (the most per second is counted either way, see [`Counters::max_per_second`]).
    pub fn set_per_second_limit(&self, n: Option<u32>) {
        self.shared.lock().per_second = n;
    }

    /// Starts counting [`Counters::max_per_second`] afresh (one phase of a benchmark).
    pub fn reset_per_second_peak(&self) {
        let mut st = self.shared.lock();
        st.counters.max_per_second = 0;
        st.forget_arrivals();
    }

    /// The most API requests the sim was handling at once.
    pub fn max_in_flight(&self) -> u32 {
        self.shared.lock().max_in_flight
    }

    /// The meeting's instances happen now and end now: their recordings appear
    /// `recording_after` from now.
    pub fn end_meeting_now(&self, meeting_id: i64) -> Result<(), SimError> {
        self.retime(meeting_id, false)
    }

    /// The meeting's instances have happened and all their files (transcript included)
    /// are `completed` now.
    pub fn force_recording(&self, meeting_id: i64) -> Result<(), SimError> {
        self.retime(meeting_id, true)
    }

    fn retime(&self, meeting_id: i64, force: bool) -> Result<(), SimError> {
        let cfg = &self.shared.cfg;
        let mut st = self.shared.lock();
        let now = st.now();
        let m = st
            .meetings
            .get_mut(&meeting_id)
            .ok_or(SimError::NoSuchMeeting(meeting_id))?;
        let n = m.instances.len() as i64;
        for (i, inst) in m.instances.iter_mut().enumerate() {
            if inst.start > now {
                // Keep the instances in order, all in the past.
                inst.start = now - TimeDelta::seconds(n - i as i64);
            }
            inst.end = now;
            inst.pinned = true;
            if force {
                inst.forced = true;
                inst.rec_at = inst.rec_at.min(now);
            } else {
                inst.rec_at = now + state::to_delta(cfg.recording_after);
            }
        }
        Ok(())
    }

    /// Adds an instance whose uuid starts with `/` to a meeting (starting
    /// `second_instance_gap` after its last one); returns the uuid.
    pub fn add_instance(&self, meeting_id: i64) -> Result<String, SimError> {
        let mut st = self.shared.lock();
        st.add_instance(&self.shared.cfg, meeting_id)
            .ok_or(SimError::NoSuchMeeting(meeting_id))
    }

    /// Whether meetings created from now on get a second (`/`) instance.
    pub fn set_second_instance(&self, on: bool) {
        self.shared.lock().second_instance = on;
    }

    /// Changes the daily create/update cap per host user.
    pub fn set_daily_cap(&self, cap: u32) {
        self.shared.lock().daily_cap = cap;
    }

    /// Every completed file of every visible recording (ad-hoc ones included), with size
    /// and digest.
    pub fn expected_files(&self) -> Vec<ExpectedFile> {
        let list: Vec<(ExpectedFile, content::Content)> = {
            let cfg = &self.shared.cfg;
            let st = self.shared.lock();
            let mut out = Vec::new();
            for m in st.meetings.values() {
                for inst in &m.instances {
                    if !st.has_recording(cfg, m, inst) {
                        continue;
                    }
                    for f in &inst.files {
                        if st.file_state(cfg, inst, f) != FileState::Completed {
                            continue;
                        }
                        let e = ExpectedFile {
                            meeting_id: m.id,
                            uuid: inst.uuid.clone(),
                            file_id: f.id.clone(),
                            key: f.key.clone(),
                            file_type: f.file_type.to_string(),
                            file_extension: f.ext.to_string(),
                            size: f.content.len(),
                            sha256: String::new(),
                        };
                        out.push((e, f.content.clone()));
                    }
                }
            }
            out
        };
        list.into_iter()
            .map(|(mut e, c)| {
                e.sha256 = self.digest(&e.uuid, &e.key, &c);
                e
            })
            .collect()
    }

    /// Hex SHA-256 of a file (`key` = file id, or file type for id-less files like CC).
    pub fn file_sha256(&self, uuid: &str, key: &str) -> Option<String> {
        let c = self.content(uuid, key)?;
        Some(self.digest(uuid, key, &c))
    }

    /// The whole content of a file (meant for small files).
    pub fn file_bytes(&self, uuid: &str, key: &str) -> Option<Vec<u8>> {
        let c = self.content(uuid, key)?;
        Some(c.range(0, c.len()).to_vec())
    }

    fn content(&self, uuid: &str, key: &str) -> Option<content::Content> {
        let st = self.shared.lock();
        let (id, idx) = st.find_uuid(uuid)?;
        let inst = st.meetings.get(&id)?.instances.get(idx)?;
        inst.files
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.content.clone())
    }

    fn digest(&self, uuid: &str, key: &str, c: &content::Content) -> String {
        let k = (uuid.to_string(), key.to_string());
        if let Some(d) = self.shared.lock().sha_cache.get(&k) {
            return d.clone();
        }
        // Outside the lock: a multi-GB file takes a while.
        let d = c.sha256_hex();
        self.shared.lock().sha_cache.insert(k, d.clone());
        d
    }

    /// Every `download_url` handed out so far stops working (404 code 3301); the client
    /// must get the recording again for fresh ones.
    pub fn expire_download_urls(&self) {
        self.shared.lock().dl_generation += 1;
    }

    // ----- auth ---------------------------------------------------------------------

    /// A valid OAuth access token, without going through `/oauth/token`.
    pub fn issue_token(&self) -> String {
        let exp = self.shared.cfg.token_expires_in;
        self.shared.lock().issue_token(exp)
    }

    /// Invalidates every OAuth token and JWT issued so far (as [`Fault::TokenExpired`]
    /// does). Webhook download tokens stay valid until their own expiry.
    pub fn revoke_tokens(&self) {
        self.shared.lock().revoke_tokens();
    }

    // ----- faults -------------------------------------------------------------------

    /// Queues `fault` for the next `times` requests on `route` (in injection order).
    pub fn inject(&self, route: Route, fault: Fault, times: u32) {
        self.shared.lock().faults.push(route, fault, times);
    }

    /// Queues `fault` for `times` requests on `route` after the next `skip` of them went
    /// through untouched (a fault in the middle of a listing, say).
    pub fn inject_after(&self, route: Route, skip: u32, fault: Fault, times: u32) {
        self.shared
            .lock()
            .faults
            .push_after(route, skip, fault, times);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// How many queued fault firings are left.
    pub fn pending_faults(&self) -> u32 {
        self.shared.lock().faults.pending()
    }

    /// Random faults on every request (after the queue); `None` turns them off.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.shared.lock().faults.set_chaos(chaos);
    }

    // ----- observation --------------------------------------------------------------

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// A snapshot of the report.
    pub fn report(&self) -> SimReport {
        self.shared.lock().report.clone()
    }
}

/// Refuses a start whose timeline would leave chrono's range (its `+` panics).
fn check_timeline(
    cfg: &SimConfig,
    start: DateTime<Utc>,
    duration_min: u32,
) -> Result<(), SimError> {
    if state::timeline_fits(cfg, start, duration_min) {
        Ok(())
    } else {
        Err(SimError::InvalidInput(format!(
            "a recording starting at {start} for {duration_min} min is out of range"
        )))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown();
    }
}
