//! The simulated account: users, tokens, meetings, their instances and recordings,
//! counters and the report. HTTP-agnostic; handlers in `routes` call in under one lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::api::{ApiError, ApiResult};
use super::content::{self, Content};
use super::faults::{FaultQueue, Route};
use super::validate::{MeetingInput, default_settings};
use super::{Counters, MeetingRecord, RecordingRemoval, RequestLog, SimConfig, SimReport, SimUser};
use crate::clock::SharedClock;

/// Host of the fake join/start/share URLs (`.invalid` never resolves).
pub(crate) const WEB_HOST: &str = "https://zoom.sim.invalid";

/// Page tokens live this long, as Zoom's do.
const PAGE_TOKEN_TTL: TimeDelta = TimeDelta::minutes(15);

/// Cap on the request log so a soak test cannot grow it without bound.
const MAX_REQUEST_LOG: usize = 100_000;

/// Everything the servers share.
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub st: Mutex<State>,
    /// `http://127.0.0.1:P` of the API listener.
    pub api_origin: String,
    /// `http://127.0.0.1:Q` of the download listener.
    pub dl_origin: String,
    /// Key of the download URL signatures.
    pub sign_key: [u8; 32],
    /// Flips to `true` on shutdown; stalled bodies and delays watch it.
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    /// The state, even if a panicking test thread poisoned the lock: the data is still
    /// consistent enough for a simulator, and a poisoned sim must keep answering.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }
}

/// One file of a recording.
#[derive(Clone, Debug)]
pub(crate) struct RecFile {
    /// Zoom's file id, or the file type for files Zoom sends without one (CC).
    pub key: String,
    pub id: Option<String>,
    pub file_type: &'static str,
    pub ext: &'static str,
    pub recording_type: &'static str,
    /// Appears `transcript_after` later than the rest.
    pub late: bool,
    /// Sent without `id`, `status` and `file_size` (and only once ready).
    pub bare: bool,
    pub content: Content,
    pub removed: Option<String>,
}

/// One occurrence of a meeting actually taking place.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub uuid: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// When the recording appears.
    pub rec_at: DateTime<Utc>,
    /// Everything completed now, whatever the timings say.
    pub forced: bool,
    /// Set by `end_meeting_now`/`force_recording`: times no longer follow the meeting.
    pub pinned: bool,
    pub removed: Option<String>,
    pub files: Vec<RecFile>,
}

/// A scheduled meeting.
#[derive(Clone, Debug)]
pub(crate) struct Meeting {
    pub id: i64,
    pub uuid: String,
    pub host_id: String,
    pub host_email: String,
    pub topic: String,
    pub start_time: DateTime<Utc>,
    pub duration: u32,
    pub timezone: String,
    pub agenda: String,
    pub password: String,
    pub settings: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
    /// Held outside the API (`Sim::add_adhoc_recording`).
    pub adhoc: bool,
    pub instances: Vec<Instance>,
}

impl Meeting {
    pub(crate) fn records_to_cloud(&self) -> bool {
        let s = |k: &str| self.settings.get(k).and_then(Value::as_str);
        // End-to-end encryption disables cloud recording in Zoom.
        s("auto_recording") == Some("cloud") && s("encryption_type") != Some("e2ee")
    }

    pub(crate) fn record(&self) -> MeetingRecord {
        MeetingRecord {
            id: self.id,
            uuid: self.uuid.clone(),
            host_id: self.host_id.clone(),
            host_email: self.host_email.clone(),
            topic: self.topic.clone(),
            agenda: self.agenda.clone(),
            start_time: self.start_time,
            duration: self.duration,
            timezone: self.timezone.clone(),
            settings: Value::Object(self.settings.clone()),
            created_at: self.created_at,
            deleted: self.deleted,
            adhoc: self.adhoc,
            instances: self.instances.iter().map(|i| i.uuid.clone()).collect(),
        }
    }
}

/// Visibility of a file at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileState {
    Hidden,
    Processing,
    Completed,
}

/// A webhook's `download_token`: good for one recording's files until `expires`.
#[derive(Clone, Debug)]
pub(crate) struct DownloadToken {
    /// The recording (instance uuid) whose files it opens.
    pub uuid: String,
    pub expires: DateTime<Utc>,
}

/// Where a `/rec/download/<opaque>` link points.
#[derive(Clone, Debug)]
pub(crate) struct DlLink {
    pub uuid: String,
    pub key: String,
    pub generation: u64,
}

struct Cursor {
    query: String,
    offset: usize,
    expires: DateTime<Utc>,
}

/// The mutable state behind the lock.
pub(crate) struct State {
    pub rng: StdRng,
    /// The time source (`SimConfig::clock`); `clock_offset` is added to it.
    clock: SharedClock,
    pub clock_offset: TimeDelta,
    pub users: Vec<SimUser>,
    /// Every API request waits this long before it is handled (a slow Zoom).
    pub latency: Duration,
    /// Bytes per second each download connection is held to (a CDN edge's cap).
    pub download_rate: Option<u64>,
    /// The download host ignores `Range` and `If-Range` (answers 200 with the whole file).
    pub ranges_ignored: bool,
    /// Bodies the download host is sending right now.
    pub download_streams: u32,
    /// API requests being handled right now, and the most at once.
    pub in_flight: u32,
    pub max_in_flight: u32,
    /// The account's per-second limit, and when the requests of the last second arrived.
    pub per_second: Option<u32>,
    arrivals: std::collections::VecDeque<DateTime<Utc>>,
    /// Opaque OAuth tokens and their expiry.
    pub tokens: HashMap<String, DateTime<Utc>>,
    /// Webhook download tokens (kept after expiry, to be refused and recognised in URLs).
    pub download_tokens: HashMap<String, DownloadToken>,
    /// JWTs seen so far (revocable by a `TokenExpired` fault).
    pub jwt_seen: HashSet<String>,
    /// JWTs to refuse once: a client cannot get a "new" JWT from Zoom, so a revoked one
    /// fails on its next use only.
    pub jwt_revoked: HashSet<String>,
    pub meetings: BTreeMap<i64, Meeting>,
    next_seq: i64,
    pub daily: HashMap<(String, NaiveDate), u32>,
    pub daily_cap: u32,
    pub second_instance: bool,
    cursors: HashMap<String, Cursor>,
    pub dl_generation: u64,
    pub dl_links: HashMap<String, DlLink>,
    dl_by_file: HashMap<(String, String), String>,
    pub faults: FaultQueue,
    pub counters: Counters,
    pub report: SimReport,
    pub sha_cache: HashMap<(String, String), String>,
}

impl State {
    pub(crate) fn new(cfg: &SimConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            clock: cfg.clock.clone(),
            clock_offset: TimeDelta::zero(),
            users: cfg.users.clone(),
            latency: Duration::ZERO,
            download_rate: None,
            ranges_ignored: false,
            download_streams: 0,
            in_flight: 0,
            max_in_flight: 0,
            per_second: None,
            arrivals: std::collections::VecDeque::new(),
            tokens: HashMap::new(),
            download_tokens: HashMap::new(),
            jwt_seen: HashSet::new(),
            jwt_revoked: HashSet::new(),
            meetings: BTreeMap::new(),
            next_seq: 1,
            daily: HashMap::new(),
            daily_cap: cfg.daily_cap,
            second_instance: cfg.second_instance,
            cursors: HashMap::new(),
            dl_generation: 0,
            dl_links: HashMap::new(),
            dl_by_file: HashMap::new(),
            faults: FaultQueue::default(),
            counters: Counters::default(),
            report: SimReport::default(),
            sha_cache: HashMap::new(),
        }
    }

    /// The sim's clock: its time source plus a settable offset.
    pub(crate) fn forget_arrivals(&mut self) {
        self.arrivals.clear();
    }

    /// An API request arrives: counted in its second. True when it is over the limit.
    pub(crate) fn arrive(&mut self) -> bool {
        let now = self.now();
        let second = TimeDelta::seconds(1);
        while self.arrivals.front().is_some_and(|t| *t + second <= now) {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        let n = self.arrivals.len() as u64;
        self.counters.max_per_second = self.counters.max_per_second.max(n);
        let over = self.per_second.is_some_and(|limit| n > u64::from(limit));
        if over {
            self.counters.over_per_second += 1;
        }
        over
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        let base = self.clock.now();
        base.checked_add_signed(self.clock_offset).unwrap_or(base)
    }

    // ----- random identifiers -------------------------------------------------------

    /// An opaque token of `n` random bytes, URL-safe.
    pub(crate) fn opaque(&mut self, n: usize) -> String {
        let mut b = vec![0u8; n];
        self.rng.fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// A Zoom-like meeting uuid (base64 of 16 bytes, `==` at the end) that needs no
    /// double encoding: no leading `/`, no `//`.
    fn plain_uuid(&mut self) -> String {
        loop {
            let mut b = [0u8; 16];
            self.rng.fill_bytes(&mut b);
            let u = STANDARD.encode(b);
            if !u.starts_with('/') && !u.contains("//") {
                return u;
            }
        }
    }

    /// A uuid that starts with `/`, which Zoom clients must encode twice.
    fn slash_uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        b[0] |= 0xFC; // top six bits 111111 = base64 index 63 = '/'
        STANDARD.encode(b)
    }

    fn file_id(&mut self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn password(&mut self) -> String {
        const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        (0..8)
            .map(|_| CHARS[self.rng.random_range(0..CHARS.len())] as char)
            .collect()
    }

    // ----- users --------------------------------------------------------------------

    /// `me`, a user id or an email (case-insensitive).
    pub(crate) fn user(&self, user_id: &str) -> ApiResult<SimUser> {
        let found = if user_id == "me" {
            self.users.first()
        } else {
            self.users
                .iter()
                .find(|u| u.id == user_id || u.email.eq_ignore_ascii_case(user_id))
        };
        found
            .cloned()
            .ok_or_else(|| ApiError::user_not_found(user_id))
    }

    // ----- tokens -------------------------------------------------------------------

    pub(crate) fn issue_token(&mut self, expires_in: u64) -> String {
        let token = format!("sim_{}", self.opaque(32));
        let exp = self.now() + to_delta(Duration::from_secs(expires_in));
        self.tokens.insert(token.clone(), exp);
        token
    }

    /// A webhook's `download_token` for the files of recording `uuid`, valid for `ttl`.
    pub(crate) fn issue_download_token(&mut self, uuid: &str, ttl: TimeDelta) -> String {
        let token = format!("simdl_{}", self.opaque(48));
        // Checked: a clock offset near chrono's end must not panic the sim.
        let expires = self
            .now()
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.download_tokens.insert(
            token.clone(),
            DownloadToken {
                uuid: uuid.to_string(),
                expires,
            },
        );
        token
    }

    /// Invalidates every OAuth token and JWT handed out so far (webhook download tokens
    /// live on: they are not the app's credentials).
    pub(crate) fn revoke_tokens(&mut self) {
        self.tokens.clear();
        let seen: Vec<String> = self.jwt_seen.drain().collect();
        self.jwt_revoked.extend(seen);
    }

    /// Whether `s` is (or contains) a token this sim issued: used to spot tokens in URLs.
    pub(crate) fn is_known_token(&self, s: &str) -> bool {
        self.tokens.contains_key(s)
            || self.download_tokens.contains_key(s)
            || self.jwt_seen.contains(s)
            || self.jwt_revoked.contains(s)
    }

    // ----- daily cap ----------------------------------------------------------------

    /// Counts one create/update for `host_id`, or refuses past the daily cap.
    pub(crate) fn charge_daily(&mut self, cfg: &SimConfig, host_id: &str) -> ApiResult<()> {
        let key = (host_id.to_string(), self.now().date_naive());
        let used = self.daily.get(&key).copied().unwrap_or(0);
        if used >= self.daily_cap {
            return Err(self.daily_cap_error(cfg));
        }
        self.daily.insert(key, used + 1);
        Ok(())
    }

    pub(crate) fn daily_cap_error(&self, cfg: &SimConfig) -> ApiError {
        let msg = format!(
            "You have exceeded the daily rate limit ({}) of Meeting Create/Update API requests \
             permitted for this particular user. You may resume these requests at GMT 00:00:00.",
            self.daily_cap
        );
        let status = if cfg.daily_cap_as_300 { 300 } else { 429 };
        let mut e = ApiError::new(status, 429, msg);
        if cfg.rate_limit_headers {
            let midnight = self
                .now()
                .date_naive()
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            e = e
                .with_header("retry-after", midnight)
                .with_header("x-ratelimit-category", "Light")
                .with_header("x-ratelimit-type", "Daily-limit")
                .with_header("x-ratelimit-limit", self.daily_cap.to_string())
                .with_header("x-ratelimit-remaining", "0");
        }
        e
    }

    // ----- meetings -----------------------------------------------------------------

    pub(crate) fn create_meeting(
        &mut self,
        cfg: &SimConfig,
        host: &SimUser,
        input: MeetingInput,
    ) -> ApiResult<i64> {
        self.charge_daily(cfg, &host.id)?;
        let id = self.next_meeting_id();
        let uuid = self.plain_uuid();
        let now = self.now();
        let mut settings = default_settings();
        if let Some(s) = input.settings {
            settings.extend(s);
        }
        let password = match input.password {
            Some(p) => p,
            None => self.password(),
        };
        let mut m = Meeting {
            id,
            uuid,
            host_id: host.id.clone(),
            host_email: host.email.clone(),
            topic: input.topic.unwrap_or_else(|| "Zoom Meeting".into()),
            start_time: input.start_time.unwrap_or(now),
            duration: input.duration.unwrap_or(60),
            timezone: input.timezone.unwrap_or_else(|| host.timezone.clone()),
            agenda: input.agenda.unwrap_or_default(),
            password,
            settings,
            created_at: now,
            deleted: false,
            adhoc: false,
            instances: Vec::new(),
        };
        let primary = self.new_instance(cfg, &m, m.uuid.clone(), m.start_time);
        m.instances.push(primary);
        if self.second_instance {
            self.push_second_instance(cfg, &mut m);
        }
        self.report.meetings_created.push(m.record());
        self.meetings.insert(id, m);
        Ok(id)
    }

    /// Ids increase with creation, as Zoom's do, and exceed 10 digits.
    fn next_meeting_id(&mut self) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        85_000_000_000 + seq * 1000 + self.rng.random_range(0..1000)
    }

    /// A cloud-recorded meeting `host` held outside the API (an instant meeting, one made
    /// in Zoom's web page) with one instance at `start`: no daily-cap charge and not in
    /// the report's `meetings_created`, which record what API clients did. The caller
    /// checks that the timeline from `start` fits chrono's range.
    pub(crate) fn add_adhoc(
        &mut self,
        cfg: &SimConfig,
        host: &SimUser,
        topic: &str,
        start: DateTime<Utc>,
        duration: u32,
    ) -> (i64, String) {
        let id = self.next_meeting_id();
        let uuid = self.plain_uuid();
        let password = self.password();
        let mut settings = default_settings();
        settings.insert("auto_recording".into(), json!("cloud"));
        let mut m = Meeting {
            id,
            uuid: uuid.clone(),
            host_id: host.id.clone(),
            host_email: host.email.clone(),
            topic: topic.to_string(),
            start_time: start,
            duration,
            timezone: host.timezone.clone(),
            agenda: String::new(),
            password,
            settings,
            // A meeting held in the past was made then, not when the sim learns of it.
            created_at: start.min(self.now()),
            deleted: false,
            adhoc: true,
            instances: Vec::new(),
        };
        let inst = self.new_instance(cfg, &m, uuid.clone(), start);
        m.instances.push(inst);
        self.meetings.insert(id, m);
        (id, uuid)
    }

    fn new_instance(
        &mut self,
        cfg: &SimConfig,
        m: &Meeting,
        uuid: String,
        start: DateTime<Utc>,
    ) -> Instance {
        let mut files = Vec::new();
        let mut add =
            |st: &mut Self, ft, ext, rt, late, bare, content: &dyn Fn(&str) -> Content| {
                let id = if bare { None } else { Some(st.file_id()) };
                let key = id.clone().unwrap_or_else(|| String::from(ft));
                files.push(RecFile {
                    content: content(&key),
                    key,
                    id,
                    file_type: ft,
                    ext,
                    recording_type: rt,
                    late,
                    bare,
                    removed: None,
                });
            };
        let (u, t) = (uuid.clone(), m.topic.clone());
        add(
            self,
            "MP4",
            "MP4",
            "shared_screen_with_speaker_view",
            false,
            false,
            &|k| Content::mp4(&u, k, cfg.mp4_size),
        );
        add(self, "M4A", "M4A", "audio_only", false, false, &|k| {
            Content::m4a(&u, k, cfg.m4a_size)
        });
        add(self, "CHAT", "TXT", "chat_file", false, false, &|_| {
            Content::text(content::chat_text(&u, &t))
        });
        add(
            self,
            "TRANSCRIPT",
            "VTT",
            "audio_transcript",
            true,
            false,
            &|_| Content::text(content::vtt_text(&u, &t, false)),
        );
        add(self, "CC", "VTT", "closed_caption", false, true, &|_| {
            Content::text(content::vtt_text(&u, &t, true))
        });
        let (end, rec_at) = instance_times(cfg, start, m.duration);
        Instance {
            uuid,
            start,
            end,
            rec_at,
            forced: false,
            pinned: false,
            removed: None,
            files,
        }
    }

    fn push_second_instance(&mut self, cfg: &SimConfig, m: &mut Meeting) -> String {
        let uuid = self.slash_uuid();
        let last = m.instances.last().map(|i| i.start).unwrap_or(m.start_time);
        let start = last + to_delta(cfg.second_instance_gap);
        let inst = self.new_instance(cfg, m, uuid.clone(), start);
        m.instances.push(inst);
        uuid
    }

    /// Adds another instance (uuid starting with `/`) to a meeting.
    pub(crate) fn add_instance(&mut self, cfg: &SimConfig, id: i64) -> Option<String> {
        let mut m = self.meetings.remove(&id)?;
        let uuid = self.push_second_instance(cfg, &mut m);
        self.meetings.insert(id, m);
        Some(uuid)
    }

    pub(crate) fn meeting(&self, id: i64) -> ApiResult<&Meeting> {
        self.meetings
            .get(&id)
            .filter(|m| !m.deleted)
            .ok_or_else(ApiError::meeting_not_found)
    }

    pub(crate) fn update_meeting(
        &mut self,
        cfg: &SimConfig,
        id: i64,
        input: MeetingInput,
        body: Value,
    ) -> ApiResult<()> {
        let host = self.meeting(id)?.host_id.clone();
        self.charge_daily(cfg, &host)?;
        self.edit_meeting(cfg, id, input)?;
        self.report.meetings_updated.push((id, body));
        Ok(())
    }

    /// Changes a meeting's fields (a PATCH, or a person in Zoom's web page); instances that
    /// have not happened follow a new start.
    pub(crate) fn edit_meeting(
        &mut self,
        cfg: &SimConfig,
        id: i64,
        input: MeetingInput,
    ) -> ApiResult<()> {
        let now = self.now();
        let m = self
            .meetings
            .get_mut(&id)
            .ok_or_else(ApiError::meeting_not_found)?;
        if let Some(t) = input.topic {
            m.topic = t;
        }
        if let Some(t) = input.start_time {
            m.start_time = t;
        }
        if let Some(d) = input.duration {
            m.duration = d;
        }
        if let Some(z) = input.timezone {
            m.timezone = z;
        }
        if let Some(a) = input.agenda {
            m.agenda = a;
        }
        if let Some(p) = input.password {
            m.password = p;
        }
        if let Some(s) = input.settings {
            m.settings.extend(s);
        }
        // Instances that have not happened yet follow the new time.
        let mut start = m.start_time;
        let duration = m.duration;
        for inst in m.instances.iter_mut() {
            if !inst.pinned && inst.start > now {
                inst.start = start;
                (inst.end, inst.rec_at) = instance_times(cfg, start, duration);
            }
            start = inst.start + to_delta(cfg.second_instance_gap);
        }
        Ok(())
    }

    /// Deleted before any instance took place: Zoom knows no such meeting (3001), also
    /// for its recordings and past instances.
    pub(crate) fn deleted_unheld(&self, id: i64) -> bool {
        let now = self.now();
        self.meetings
            .get(&id)
            .is_some_and(|m| m.deleted && m.instances.iter().all(|i| i.start > now))
    }

    pub(crate) fn delete_meeting(&mut self, id: i64) -> ApiResult<()> {
        self.meeting(id)?;
        if let Some(m) = self.meetings.get_mut(&id) {
            m.deleted = true;
        }
        self.report.meetings_deleted.push(id);
        Ok(())
    }

    pub(crate) fn meeting_json(&self, m: &Meeting) -> Value {
        let now = self.now();
        let status = match m.instances.first() {
            Some(i) if i.start <= now && now < i.end => "started",
            _ => "waiting",
        };
        let mut v = self.meeting_list_item(m);
        let extra = json!({
            "host_email": m.host_email,
            "assistant_id": "",
            "status": status,
            "start_url": format!("{WEB_HOST}/s/{}?zak=sim-{}", m.id, m.id),
            "password": m.password,
            "h323_password": m.password,
            "pstn_password": m.password,
            "encrypted_password": format!("sim.{}", m.password),
            "pre_schedule": false,
            "creation_source": if m.adhoc { "web_portal" } else { "open_api" },
            "settings": m.settings,
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    pub(crate) fn meeting_list_item(&self, m: &Meeting) -> Value {
        json!({
            "uuid": m.uuid,
            "id": m.id,
            "host_id": m.host_id,
            "topic": m.topic,
            "type": 2,
            "start_time": fmt_time(m.start_time),
            "duration": m.duration,
            "timezone": m.timezone,
            "agenda": m.agenda,
            "created_at": fmt_time(m.created_at),
            "join_url": format!("{WEB_HOST}/j/{}?pwd={}", m.id, m.password),
        })
    }

    // ----- pagination ---------------------------------------------------------------

    /// Where a page starts: 0, or the offset a valid `next_page_token` for the same
    /// query points at.
    pub(crate) fn page_start(&mut self, query: &str, token: Option<&str>) -> ApiResult<usize> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(0);
        };
        let now = self.now();
        match self.cursors.get(token) {
            Some(c) if c.query == query && c.expires > now => Ok(c.offset),
            _ => Err(ApiError::bad_request(
                "The next page token is invalid or expired.",
            )),
        }
    }

    /// The token for the page after `offset..offset+len`, or "" at the end.
    pub(crate) fn next_page_token(&mut self, query: &str, next: usize, total: usize) -> String {
        if next >= total {
            return String::new();
        }
        let token = self.opaque(24);
        let expires = self.now() + PAGE_TOKEN_TTL;
        self.cursors
            .retain(|_, c| c.expires > expires - PAGE_TOKEN_TTL);
        self.cursors.insert(
            token.clone(),
            Cursor {
                query: query.to_string(),
                offset: next,
                expires,
            },
        );
        token
    }

    // ----- instances and recordings ---------------------------------------------------

    /// The meeting id and instance index of a uuid.
    pub(crate) fn find_uuid(&self, uuid: &str) -> Option<(i64, usize)> {
        self.meetings.values().find_map(|m| {
            m.instances
                .iter()
                .position(|i| i.uuid == uuid)
                .map(|idx| (m.id, idx))
        })
    }

    /// The latest instance of a meeting that has started.
    pub(crate) fn latest_instance(&self, id: i64) -> Option<(i64, usize)> {
        let now = self.now();
        let m = self.meetings.get(&id)?;
        m.instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.start <= now)
            .max_by_key(|(_, i)| i.start)
            .map(|(idx, _)| (id, idx))
    }

    pub(crate) fn file_state(&self, cfg: &SimConfig, inst: &Instance, f: &RecFile) -> FileState {
        if f.removed.is_some() {
            return FileState::Hidden;
        }
        if inst.forced {
            return FileState::Completed;
        }
        let now = self.now();
        let processing = to_delta(cfg.processing_for);
        let mut appear = inst.rec_at;
        if f.late {
            appear += to_delta(cfg.transcript_after);
        }
        if f.bare {
            // Without a status field, the file is only listed once it is ready.
            appear += processing;
        }
        if now < appear {
            FileState::Hidden
        } else if f.bare || now >= appear + processing {
            FileState::Completed
        } else {
            FileState::Processing
        }
    }

    /// Whether an instance has a recording to show now.
    pub(crate) fn has_recording(&self, cfg: &SimConfig, m: &Meeting, inst: &Instance) -> bool {
        let now = self.now();
        m.records_to_cloud()
            && inst.removed.is_none()
            && inst.start <= now
            && inst
                .files
                .iter()
                .any(|f| self.file_state(cfg, inst, f) != FileState::Hidden)
    }

    /// The link `/rec/download/<opaque>` for a file, stable until download URLs expire.
    pub(crate) fn link_for(&mut self, uuid: &str, key: &str) -> String {
        let k = (uuid.to_string(), key.to_string());
        if let Some(op) = self.dl_by_file.get(&k)
            && self
                .dl_links
                .get(op)
                .is_some_and(|l| l.generation == self.dl_generation)
        {
            return op.clone();
        }
        let op = self.opaque(24);
        self.dl_links.insert(
            op.clone(),
            DlLink {
                uuid: k.0.clone(),
                key: k.1.clone(),
                generation: self.dl_generation,
            },
        );
        self.dl_by_file.insert(k, op.clone());
        op
    }

    /// The recording JSON of one instance (None when it has none to show).
    pub(crate) fn recording_json(
        &mut self,
        cfg: &SimConfig,
        api_origin: &str,
        id: i64,
        idx: usize,
    ) -> Option<Value> {
        let m = self.meetings.get(&id)?;
        let inst = m.instances.get(idx)?;
        if !self.has_recording(cfg, m, inst) {
            return None;
        }
        let rec_start = inst.start + TimeDelta::seconds(2);
        let rec_end = inst.end.max(rec_start);
        let files: Vec<(RecFile, FileState)> = inst
            .files
            .iter()
            .map(|f| (f.clone(), self.file_state(cfg, inst, f)))
            .filter(|(_, s)| *s != FileState::Hidden)
            .collect();
        let (uuid, topic, host_id, duration, start) = (
            inst.uuid.clone(),
            m.topic.clone(),
            m.host_id.clone(),
            m.duration,
            inst.start,
        );
        let account_id = cfg.account_id.clone();
        let mut total: u64 = 0;
        let mut out = Vec::new();
        for (f, st) in &files {
            let op = self.link_for(&uuid, &f.key);
            let mut fv = json!({
                "meeting_id": uuid,
                "recording_start": fmt_time(rec_start),
                "recording_end": fmt_time(rec_end),
                "file_type": f.file_type,
                "file_extension": f.ext,
                "play_url": format!("{WEB_HOST}/rec/play/{op}"),
                "download_url": format!("{api_origin}/rec/download/{op}"),
                "recording_type": f.recording_type,
            });
            if !f.bare {
                // Zoom reports no size until processing is done.
                let size = if *st == FileState::Completed {
                    f.content.len()
                } else {
                    0
                };
                total += size;
                fv["id"] = json!(f.id);
                fv["file_size"] = json!(size);
                fv["status"] = json!(if *st == FileState::Completed {
                    "completed"
                } else {
                    "processing"
                });
            }
            out.push(fv);
        }
        let share = self.opaque(16);
        Some(json!({
            "uuid": uuid,
            "id": id,
            "account_id": account_id,
            "host_id": host_id,
            "topic": topic,
            "type": "2",
            "start_time": fmt_time(start),
            "duration": duration,
            "total_size": total,
            "recording_count": out.len(),
            "share_url": format!("{WEB_HOST}/rec/share/{share}"),
            "password": "",
            "recording_play_passcode": share,
            "recording_files": out,
        }))
    }

    /// Marks an instance (or one file of it) trashed or deleted.
    pub(crate) fn remove_recording(
        &mut self,
        cfg: &SimConfig,
        id: i64,
        idx: usize,
        file_id: Option<&str>,
        action: &str,
    ) -> ApiResult<()> {
        let exists = {
            let m = self
                .meetings
                .get(&id)
                .ok_or_else(ApiError::recording_not_found)?;
            let inst = m
                .instances
                .get(idx)
                .ok_or_else(ApiError::recording_not_found)?;
            self.has_recording(cfg, m, inst)
        };
        if !exists {
            return Err(ApiError::recording_not_found());
        }
        let inst = self
            .meetings
            .get_mut(&id)
            .and_then(|m| m.instances.get_mut(idx))
            .ok_or_else(ApiError::recording_not_found)?;
        match file_id {
            None => inst.removed = Some(action.to_string()),
            Some(fid) => {
                let f = inst
                    .files
                    .iter_mut()
                    .find(|f| f.id.as_deref() == Some(fid) && f.removed.is_none())
                    .ok_or_else(ApiError::recording_not_found)?;
                f.removed = Some(action.to_string());
                if inst.files.iter().all(|f| f.removed.is_some()) {
                    inst.removed = Some(action.to_string());
                }
            }
        }
        let uuid = inst.uuid.clone();
        self.report.recordings_removed.push(RecordingRemoval {
            uuid,
            file_id: file_id.map(str::to_string),
            action: action.to_string(),
        });
        Ok(())
    }

    // ----- bookkeeping --------------------------------------------------------------

    pub(crate) fn log_request(&mut self, entry: RequestLog) {
        let s = entry.status;
        *self.counters.statuses.entry(s).or_default() += 1;
        if (400..500).contains(&s) {
            self.counters.responses_4xx += 1;
        } else if s >= 500 {
            self.counters.responses_5xx += 1;
        }
        if self.report.requests.len() < MAX_REQUEST_LOG {
            self.report.requests.push(entry);
        }
    }

    pub(crate) fn count(&mut self, route: Route) {
        *self.counters.requests.entry(route).or_default() += 1;
    }
}

/// (end, recording time) of an instance starting at `start`.
fn instance_times(
    cfg: &SimConfig,
    start: DateTime<Utc>,
    duration: u32,
) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        start + TimeDelta::minutes(duration as i64),
        start + to_delta(cfg.recording_after),
    )
}

/// Whether every instant of an instance's timeline from `start` (its end, each file's
/// appearance and completion) is representable: chrono panics on an overflowing `+`.
pub(crate) fn timeline_fits(cfg: &SimConfig, start: DateTime<Utc>, duration: u32) -> bool {
    let processing = to_delta(cfg.processing_for);
    let last_file = [
        to_delta(cfg.recording_after),
        to_delta(cfg.transcript_after),
        processing,
        processing,
        // Room for the small offsets the answers add (`recording_start` is 2 s in).
        TimeDelta::days(1),
    ]
    .into_iter()
    .try_fold(start, |t, d| t.checked_add_signed(d));
    let end = start.checked_add_signed(TimeDelta::minutes(i64::from(duration)));
    last_file.is_some() && end.is_some()
}

/// A std duration as a chrono one, capped at 100 years so that adding it to a date can
/// never overflow (chrono panics on that).
pub(crate) fn to_delta(d: Duration) -> TimeDelta {
    const CAP: Duration = Duration::from_secs(100 * 366 * 24 * 3600);
    TimeDelta::from_std(d.min(CAP)).unwrap_or(TimeDelta::zero())
}

/// Zoom's time format: `2026-03-02T09:00:00Z`.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
