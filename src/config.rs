//! `daemon.toml` into typed, validated structs.
//!
//! Parsing happens in two passes: serde + toml turn the text into raw structs (unknown keys,
//! wrong types and per-value rules such as durations, zones and cron expressions fail here,
//! with toml's span of the offending value), then cross-field rules run over the raw structs,
//! whose `Spanned` fields keep the positions. Every error is `path:line:col: message`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

use crate::secret::Secret;
use crate::store::{Database, PgTarget};

/// Where `zoomd` looks when neither `--config` nor `$ZOOMD_CONFIG` is given.
pub const SYSTEM_CONFIG: &str = "/etc/zoomd/daemon.toml";
pub const LOCAL_CONFIG: &str = "daemon.toml";

const TOPIC_MAX: usize = 200;
/// Zoom allows 2000; zoomd appends a marker line (at most 93 characters) to find its meetings.
pub const AGENDA_MAX: usize = 1900;
const DURATION_MAX_MIN: u64 = 1440;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// One or more problems in the file, each `path:line:col: message`.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
    /// A secret could not be found or read.
    #[error("{0}")]
    Secret(String),
}

fn join_lines(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message tied to a place in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub zoom: ZoomConfig,
    pub daemon: DaemonConfig,
    pub meetings: Vec<MeetingEntry>,
    /// `[recordings]`: which users' cloud recordings are archived besides zoomd's own.
    pub recordings: RecordingsConfig,
    /// `[http]`: the listener for webhooks, metrics, health, the status page and calendar.
    pub http: HttpConfig,
    /// Things that are allowed but probably not what the operator wants.
    pub warnings: Vec<Diagnostic>,
    /// The text it was parsed from (to tell whether the file changed).
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct ZoomConfig {
    pub auth: AuthMode,
    pub api_url: url::Url,
    pub oauth_url: url::Url,
    /// Resolved credentials, or why they could not be resolved. `check` reports the latter as
    /// a warning (the file itself is fine); `run`, `sync` and `token` refuse to start.
    pub credentials: Result<Credentials, String>,
    /// `requests_per_second` and `max_in_flight`: the account-wide request budget.
    pub pace: Pace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    OAuth,
    Jwt,
}

/// The credentials are the Zoom client's own type: config only finds and checks them.
pub use crate::zoom::{Credentials, Pace};

/// `[daemon]`. Spans of time are `chrono::Duration`s, since they are added to instants;
/// [`span`] is the one conversion from the parsed form.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// A SQLite file (a path), or a PostgreSQL database (`postgres://`).
    pub database: Database,
    /// A directory, or a bucket and prefix in S3-compatible object storage.
    pub archive: ArchiveLocation,
    pub create_ahead: chrono::Duration,
    pub poll_every: chrono::Duration,
    pub give_up_after: chrono::Duration,
    pub downloads: usize,
    pub after_download: AfterDownload,
    pub timezone: Tz,
    /// How often each host's upcoming meetings are compared with the database.
    pub verify_every: chrono::Duration,
    /// More cancellations than this in one pass (or of every upcoming meeting) wait for
    /// `zoomd apply`.
    pub max_cancellations: usize,
    /// How long a claim on shared work (a download) holds without renewal: after it runs out
    /// another process may take the work over.
    pub lease: chrono::Duration,
    /// A file larger than this is fetched in `Range` segments of this size.
    pub segment_size: u64,
    /// How many of a file's segments are fetched at once.
    pub connections_per_file: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterDownload {
    Keep,
    Trash,
    Delete,
}

/// `[daemon] archive`: a local directory (a plain path or `file:///path`) or
/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    Local(PathBuf),
    S3(S3Location),
}

/// A bucket and the key prefix (no leading or trailing `/`; empty: the bucket's root) under
/// which the archive's relative paths become object keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl ArchiveLocation {
    /// The directory of a local archive; `None` for object storage.
    pub fn local(&self) -> Option<&Path> {
        match self {
            ArchiveLocation::Local(p) => Some(p),
            ArchiveLocation::S3(_) => None,
        }
    }

    /// The archive as the operator wrote it (a path, or `s3://bucket/prefix`).
    pub fn display(&self) -> String {
        match self {
            ArchiveLocation::Local(p) => p.display().to_string(),
            ArchiveLocation::S3(s) => s.to_string(),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Parses `archive`: `s3://bucket/prefix`, `file:///abs/path`, or a path relative to the
/// config file's directory. Other schemes are refused by name rather than taken as paths.
fn parse_archive(s: &str, base: &Path) -> Result<ArchiveLocation, String> {
    let s = s.trim();
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(ArchiveLocation::Local(base.join(s)));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => {
            let u = url::Url::parse(s).map_err(|e| format!("archive '{s}': {e}"))?;
            u.to_file_path()
                .map(ArchiveLocation::Local)
                .map_err(|()| format!("archive '{s}': a file URL needs an absolute path, e.g. file:///var/lib/zoomd/recordings"))
        }
        "s3" => parse_s3(s, rest).map(ArchiveLocation::S3),
        other => Err(format!(
            "archive '{s}': scheme '{other}' is not supported; write a path, file:///path or s3://bucket/prefix"
        )),
    }
}

fn parse_s3(s: &str, rest: &str) -> Result<S3Location, String> {
    if rest.contains(['?', '#', '@']) {
        return Err(
            // Not echoed: user info may be a secret.
            "archive: an s3 URL is s3://bucket/prefix, without query, fragment or user info (credentials come from the environment or systemd credentials)".to_string()
        );
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3's rules for bucket names (3-63 of a-z 0-9 . -, starting and ending alphanumeric).
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        || !edge_ok(bucket.chars().next())
        || !edge_ok(bucket.chars().last())
    {
        return Err(format!(
            "archive '{s}': '{bucket}' is not a bucket name (3 to 63 of a-z, 0-9, '.' and '-', starting and ending with a letter or digit)"
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty()
        && prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == ".." || p.chars().any(char::is_control))
    {
        return Err(format!(
            "archive '{s}': the prefix '{prefix}' has an empty, '.' or '..' part; write e.g. s3://{bucket}/zoom/recordings"
        ));
    }
    Ok(S3Location {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

impl AfterDownload {
    pub fn as_str(self) -> &'static str {
        match self {
            AfterDownload::Keep => "keep",
            AfterDownload::Trash => "trash",
            AfterDownload::Delete => "delete",
        }
    }
}

/// `[recordings]`: the account scan. With `users` empty (the default) zoomd archives only
/// the meetings it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingsConfig {
    pub users: AccountUsers,
    /// The UTC date the first scan of a user reaches back to; `None`: 30 days before it.
    pub since: Option<NaiveDate>,
    /// The file types archived (of every recording, zoomd's own too); `None`: every type.
    pub file_types: Option<BTreeSet<String>>,
    /// How often each user's recent recordings are listed.
    pub scan_every: chrono::Duration,
    /// What happens to the cloud copy of a recording zoomd did not create, once archived.
    pub after_download: AfterDownload,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            users: AccountUsers::None,
            since: None,
            file_types: None,
            scan_every: chrono::Duration::hours(1),
            after_download: AfterDownload::Keep,
        }
    }
}

impl RecordingsConfig {
    /// Whether files of this type are archived.
    pub fn wants(&self, file_type: &str) -> bool {
        self.file_types
            .as_ref()
            .is_none_or(|set| set.contains(&file_type.to_ascii_uppercase()))
    }
}

/// `[http]`. Without `listen` nothing listens.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: Option<std::net::SocketAddr>,
    /// The secret token of the Zoom app's event subscription, or why there is none (then
    /// `POST /zoom/webhook` answers 503: events cannot be verified).
    pub webhook_secret: Result<Secret, String>,
    /// With `token_file`: the bearer token the status page and calendar need.
    pub token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            webhook_secret: Err("no [http] section".into()),
            token: None,
        }
    }
}

/// Whose recordings the scan lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountUsers {
    /// Nobody's: only zoomd's own meetings are archived.
    None,
    /// Every user of the account (`GET /users`, active, inactive and pending).
    All,
    /// These users, as written (Zoom user ids or emails).
    Listed(Vec<String>),
}

/// The recording file types Zoom names (`recording_files[].file_type`).
pub const FILE_TYPES: &[&str] = &[
    "MP4",
    "M4A",
    "CHAT",
    "TRANSCRIPT",
    "CC",
    "CSV",
    "TB",
    "CHAT_MESSAGE",
    "SUMMARY",
    "TIMELINE",
];

/// One `[[meeting]]` entry.
#[derive(Debug, Clone)]
pub struct MeetingEntry {
    pub key: String,
    pub topic: String,
    pub host: String,
    pub when: When,
    pub timezone: Tz,
    /// Whole minutes, 1..=1440.
    pub duration_min: u32,
    pub agenda: Option<String>,
    pub skip: Vec<NaiveDate>,
    /// Passed to Zoom's `settings` object; `auto_recording` is always present.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Where the entry starts in the file (for messages about it).
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum When {
    Cron(Arc<CronExpr>),
    /// A one-off at a local wall-clock time in the entry's zone.
    At(NaiveDateTime),
}

/// A parsed cron expression together with its text.
#[derive(Clone)]
pub struct CronExpr {
    pub text: String,
    pub cron: croner::Cron,
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.text)
    }
}

impl Config {
    /// Reads and validates the file at `path`; secrets come from the environment given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, path, &Env::from_process())
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its directory).
    pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let mut ctx = Ctx {
            path: path.display().to_string(),
            text,
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let message = tidy_toml_message(e.message());
                return Err(ConfigError::Invalid(vec![ctx.diag(&span, message)]));
            }
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let daemon = build_daemon(&mut ctx, raw.daemon.unwrap_or_default(), &base, env);
        let zoom = build_zoom(&mut ctx, raw.zoom, &base, env);
        let meetings = build_meetings(&mut ctx, raw.meeting, daemon.timezone);
        let recordings = build_recordings(&mut ctx, raw.recordings);
        let http = build_http(&mut ctx, raw.http, &base, env);
        if !ctx.errors.is_empty() {
            return Err(ConfigError::Invalid(ctx.errors));
        }
        Ok(Config {
            path: path.to_path_buf(),
            zoom,
            daemon,
            meetings,
            recordings,
            http,
            warnings: ctx.warnings,
            source: text.to_string(),
        })
    }

    /// The credentials, or an error saying where they were looked for.
    pub fn credentials(&self) -> Result<&Credentials, ConfigError> {
        self.zoom
            .credentials
            .as_ref()
            .map_err(|e| ConfigError::Secret(format!("{}: {e}", self.path.display())))
    }
}

/// Resolves the config path: `--config`/`$ZOOMD_CONFIG` (clap merges both), else
/// `./daemon.toml` when it exists, else `/etc/zoomd/daemon.toml`.
pub fn config_path(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    let local = PathBuf::from(LOCAL_CONFIG);
    if local.exists() {
        local
    } else {
        PathBuf::from(SYSTEM_CONFIG)
    }
}

/// The parts of the process environment the config reads; a parameter so tests need not
/// mutate the real environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub client_secret: Option<String>,
    pub webhook_secret: Option<String>,
    pub api_secret: Option<String>,
    pub credentials_directory: Option<PathBuf>,
    pub state_directory: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            client_secret: var("ZOOMD_CLIENT_SECRET"),
            webhook_secret: var("ZOOMD_WEBHOOK_SECRET"),
            api_secret: var("ZOOMD_API_SECRET"),
            credentials_directory: var("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            // systemd may list several directories separated by ':'; the first is ours.
            state_directory: var("STATE_DIRECTORY")
                .and_then(|v| v.split(':').next().map(PathBuf::from)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw shapes (what serde sees)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    zoom: Option<Spanned<RawZoom>>,
    daemon: Option<RawDaemon>,
    #[serde(default)]
    meeting: Vec<Spanned<RawMeeting>>,
    recordings: Option<RawRecordings>,
    http: Option<RawHttp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    webhook_secret_file: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordings {
    users: Option<Spanned<RawUsers>>,
    since: Option<UtcDate>,
    file_types: Option<Spanned<Vec<Spanned<String>>>>,
    scan_every: Option<Bounded<60, { 7 * 86400 }>>,
    after_download: Option<AfterDownload>,
}

/// `users = "*"` or a list (`["*"]` too).
enum RawUsers {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for RawUsers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const HINT: &str = "write \"*\" for every user of the account, or a list of user ids or emails, e.g. [\"jane@example.org\"]";
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(RawUsers::One(s)),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Err(de::Error::custom(format!(
                        "users: expected strings, found {}; {HINT}",
                        other.type_str()
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(RawUsers::Many),
            other => Err(de::Error::custom(format!(
                "users: expected a string or a list, found {}; {HINT}",
                other.type_str()
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZoom {
    auth: Option<Spanned<RawAuth>>,
    account_id: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    api_secret_file: Option<Spanned<String>>,
    jwt_ttl: Option<Spanned<HumanDuration>>,
    api_url: Option<Spanned<HttpUrl>>,
    oauth_url: Option<Spanned<HttpUrl>>,
    requests_per_second: Option<Spanned<f64>>,
    max_in_flight: Option<Spanned<i64>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawAuth {
    Oauth,
    Jwt,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    database: Option<Spanned<String>>,
    archive: Option<Spanned<String>>,
    create_ahead: Option<Bounded<1, { 366 * 86400 }>>,
    poll_every: Option<Bounded<1, 86400>>,
    give_up_after: Option<Bounded<60, { 366 * 86400 }>>,
    downloads: Option<Downloads>,
    after_download: Option<AfterDownload>,
    timezone: Option<Zone>,
    verify_every: Option<Bounded<60, { 7 * 86400 }>>,
    lease: Option<Bounded<5, 3600>>,
    max_cancellations: Option<MaxCancellations>,
    segment_size: Option<SegmentSize>,
    connections_per_file: Option<ConnectionsPerFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeeting {
    key: Option<Spanned<String>>,
    topic: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    cron: Option<Spanned<CronField>>,
    at: Option<Spanned<LocalDateTime>>,
    timezone: Option<Zone>,
    duration: Option<Spanned<HumanDuration>>,
    agenda: Option<Spanned<String>>,
    #[serde(default)]
    skip: Vec<LocalDate>,
    #[serde(default)]
    settings: BTreeMap<String, Spanned<toml::Value>>,
}

// ---------------------------------------------------------------------------------------------
// Value types that validate themselves (their errors get toml's span of the value)

/// A humane duration: `90s`, `45m`, `2h`, `7d`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

const DURATION_EXAMPLES: &str = "valid examples: \"90s\", \"45m\", \"2h\", \"7d\", \"1h30m\"";

/// A parsed span as a `chrono::Duration`. The parser bounds every span (at most a year), far
/// inside chrono's range; saturating keeps even an unbounded one meaning "very long".
pub fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration; {DURATION_EXAMPLES}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => {
                return Err(format!(
                    "invalid duration '{s}': unexpected '{c}' (units are s, m, h, d, w); {DURATION_EXAMPLES}"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!(
                "invalid duration '{s}': a number must come before '{c}'; {DURATION_EXAMPLES}"
            ));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration '{s}': number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("invalid duration '{s}': too large"))?;
        digits.clear();
        saw_unit = true;
    }
    if !digits.is_empty() || !saw_unit {
        return Err(format!(
            "invalid duration '{s}': missing unit after '{digits}'; {DURATION_EXAMPLES}"
        ));
    }
    Ok(Duration::from_secs(total))
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        match v {
            toml::Value::String(s) => parse_duration(&s)
                .map(HumanDuration)
                .map_err(de::Error::custom),
            other => Err(de::Error::custom(format!(
                "expected a duration string, found {}; {DURATION_EXAMPLES}",
                other.type_str()
            ))),
        }
    }
}

/// A duration within `[MIN, MAX]` seconds.
#[derive(Debug, Clone, Copy)]
struct Bounded<const MIN: u64, const MAX: u64>(Duration);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let HumanDuration(v) = HumanDuration::deserialize(d)?;
        if v.as_secs() < MIN || v.as_secs() > MAX {
            return Err(de::Error::custom(format!(
                "duration {} is out of range: must be between {} and {}",
                format_duration(v),
                format_duration(Duration::from_secs(MIN)),
                format_duration(Duration::from_secs(MAX)),
            )));
        }
        Ok(Bounded(v))
    }
}

/// Formats a duration the way the config writes it (`1h30m`, `7d`, `90s` → `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    // Days only for whole days: "25h" reads better than "1d1h".
    let units: &[(&str, u64)] = if s.is_multiple_of(86400) {
        &[("d", 86400)]
    } else {
        &[("h", 3600), ("m", 60), ("s", 1)]
    };
    for &(unit, len) in units {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

struct Downloads(usize);

impl<'de> Deserialize<'de> for Downloads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=16).contains(&n) {
            return Err(de::Error::custom(format!(
                "downloads = {n} is out of range: must be 1 to 16"
            )));
        }
        Ok(Downloads(n as usize))
    }
}

const MIB: u64 = 1024 * 1024;
const DEFAULT_SEGMENT_SIZE: u64 = 64 * MIB;

/// `segment_size = "64MiB"`: 8 MiB to 1 GiB. Smaller segments cost a request each; larger
/// ones lose more to an interruption.
struct SegmentSize(u64);

impl<'de> Deserialize<'de> for SegmentSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let n = parse_size(&s).map_err(|e| de::Error::custom(format!("segment_size: {e}")))?;
        if !(8 * MIB..=1024 * MIB).contains(&n) {
            return Err(de::Error::custom(format!(
                "segment_size = {s:?} is out of range: must be \"8MiB\" to \"1GiB\""
            )));
        }
        Ok(SegmentSize(n))
    }
}

/// A size such as `"64MiB"`, `"1GiB"`, `"512KiB"` or `"1048576"` (bytes; binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1024,
        "mib" | "m" => MIB,
        "gib" | "g" => 1024 * MIB,
        _ => {
            return Err(format!(
                "size {s:?} has an unknown unit {unit:?}: use B, KiB, MiB or GiB (e.g. \"64MiB\")"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size {s:?} is not a whole number with a unit (e.g. \"64MiB\")"))?;
    n.checked_mul(scale)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

struct ConnectionsPerFile(usize);

impl<'de> Deserialize<'de> for ConnectionsPerFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=16).contains(&n) {
            return Err(de::Error::custom(format!(
                "connections_per_file = {n} is out of range: must be 1 to 16"
            )));
        }
        Ok(ConnectionsPerFile(n as usize))
    }
}

struct MaxCancellations(usize);

impl<'de> Deserialize<'de> for MaxCancellations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(0..=100_000).contains(&n) {
            return Err(de::Error::custom(format!(
                "max_cancellations = {n} is out of range: must be 0 to 100000 (0 holds every cancellation for `zoomd apply`)"
            )));
        }
        Ok(MaxCancellations(n as usize))
    }
}

/// An IANA zone name.
#[derive(Debug, Clone, Copy)]
struct Zone(Tz);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_zone(&s).map(Zone).map_err(de::Error::custom)
    }
}

/// Parses an IANA zone name; on failure the message suggests the nearest names.
pub fn parse_zone(s: &str) -> Result<Tz, String> {
    if let Ok(tz) = s.parse::<Tz>() {
        return Ok(tz);
    }
    let lower = s.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            let name = tz.name();
            let n = name.to_ascii_lowercase();
            let mut score = strsim::jaro_winkler(&lower, &n);
            // The part after the last '/' is what people mistype most ("Berln").
            if let (Some(a), Some(b)) = (lower.rsplit('/').next(), n.rsplit('/').next()) {
                score = score.max(strsim::jaro_winkler(a, b) * 0.98);
            }
            (score, name)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let best: Vec<String> = scored
        .iter()
        .take(3)
        .filter(|(score, _)| *score > 0.85)
        .map(|(_, n)| format!("'{n}'"))
        .collect();
    Err(match best.len() {
        0 => format!(
            "unknown timezone '{s}'; use an IANA name such as 'Europe/Berlin' or 'America/New_York'"
        ),
        1 => format!("unknown timezone '{s}'; did you mean {}?", best[0]),
        _ => format!(
            "unknown timezone '{s}'; did you mean {}? (or {})",
            best[0],
            best[1..].join(", ")
        ),
    })
}

const FIELD_NAMES: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
];
const FIELD_RANGES: [&str; 6] = [
    "0-59",
    "0-59",
    "0-23",
    "1-31",
    "1-12 or JAN-DEC",
    "0-7 or SUN-SAT",
];

struct CronField(Arc<CronExpr>);

impl<'de> Deserialize<'de> for CronField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Schedules repeat expressions; a parsed one holds ~5 KB (croner keeps a bit per
        // year up to 5000), so entries with the same text share one.
        thread_local! {
            static PARSED: std::cell::RefCell<std::collections::HashMap<String, Arc<CronExpr>>> =
                Default::default();
        }
        if let Some(hit) = PARSED.with(|c| c.borrow().get(&s).cloned()) {
            return Ok(CronField(hit));
        }
        let parsed = Arc::new(parse_cron(&s).map_err(de::Error::custom)?);
        PARSED.with(|c| {
            let mut cache = c.borrow_mut();
            // Bounded: a reload of a huge file cannot grow it forever.
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(s, parsed.clone());
        });
        Ok(CronField(parsed))
    }
}

fn cron_parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
}

/// Parses a 5-field (minute first) or 6-field (second first) cron expression. On failure the
/// message names the field at fault and its valid range.
pub fn parse_cron(s: &str) -> Result<CronExpr, String> {
    let fields: Vec<&str> = s.split_whitespace().collect();
    let is_nickname = fields.len() == 1 && fields[0].starts_with('@');
    if !is_nickname && fields.len() != 5 && fields.len() != 6 {
        return Err(format!(
            "invalid cron '{s}': {} fields; use 5 (minute hour day-of-month month day-of-week, e.g. \"0 9 * * Mon\") or 6 with seconds first (e.g. \"*/10 * * * * *\")",
            fields.len()
        ));
    }
    let parser = cron_parser();
    match parser.parse(s) {
        Ok(cron) => Ok(CronExpr {
            text: s.trim().to_string(),
            cron,
        }),
        Err(whole) => {
            // croner does not say which field failed: try each field alone among wildcards.
            let offset = 6 - fields.len();
            for (i, f) in fields.iter().enumerate() {
                let mut probe = ["*"; 6];
                probe[0] = "0";
                probe[i + offset] = f;
                if let Err(e) = parser.parse(&probe.join(" ")) {
                    let idx = i + offset;
                    return Err(format!(
                        "invalid cron '{s}': field {} ({}) '{f}': {}; valid: {}",
                        i + 1,
                        FIELD_NAMES[idx],
                        cron_reason(&e),
                        FIELD_RANGES[idx]
                    ));
                }
            }
            Err(format!("invalid cron '{s}': {}", cron_reason(&whole)))
        }
    }
}

fn cron_reason(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    match e {
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => {
            m.trim_end_matches('.').to_string()
        }
        other => other.to_string().trim_end_matches('.').to_string(),
    }
}

/// A local wall-clock time: a string `2026-12-15T14:00` (seconds optional) or a TOML local
/// date-time.
struct LocalDateTime(NaiveDateTime);

impl<'de> Deserialize<'de> for LocalDateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Datetime(dt) if dt.offset.is_none() && dt.date.is_some() => dt.to_string(),
            toml::Value::Datetime(_) => {
                return Err(de::Error::custom(
                    "`at` is a local time in the entry's timezone: write it without an offset, e.g. \"2026-12-15T14:00\"",
                ));
            }
            other => {
                return Err(de::Error::custom(format!(
                    "expected a local date-time like \"2026-12-15T14:00\", found {}",
                    other.type_str()
                )));
            }
        };
        parse_local_datetime(&s)
            .map(LocalDateTime)
            .map_err(de::Error::custom)
    }
}

fn parse_local_datetime(s: &str) -> Result<NaiveDateTime, String> {
    let t = s.trim().replace(' ', "T");
    NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M"))
        .map_err(|_| {
            if t.ends_with('Z') || t.rfind(['+', '-']).is_some_and(|i| i > 10) {
                format!(
                    "invalid local time '{s}': `at` is a local time in the entry's timezone; drop the offset, e.g. \"2026-12-15T14:00\""
                )
            } else {
                format!("invalid local time '{s}': expected YYYY-MM-DDTHH:MM, e.g. \"2026-12-15T14:00\"")
            }
        })
}

/// A `YYYY-MM-DD` date from a TOML string or date; `key` and `example` name it in errors.
fn date_value<'de, D: Deserializer<'de>>(
    d: D,
    key: &str,
    kind: &str,
    example: &str,
) -> Result<NaiveDate, D::Error> {
    let v = toml::Value::deserialize(d)?;
    let s = match v {
        toml::Value::String(s) => s,
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.date.is_some() => dt.to_string(),
        other => {
            return Err(de::Error::custom(format!(
                "expected a {kind} date like \"{example}\", found {}",
                other.type_str()
            )));
        }
    };
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        let utc = if kind == "UTC" { " (UTC)" } else { "" };
        de::Error::custom(format!(
            "invalid date '{s}' in {key}: expected YYYY-MM-DD{utc}, e.g. \"{example}\""
        ))
    })
}

struct LocalDate(NaiveDate);

impl<'de> Deserialize<'de> for LocalDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        date_value(d, "skip", "local", "2026-12-28").map(LocalDate)
    }
}

/// `[recordings] since`: a UTC date.
struct UtcDate(NaiveDate);

impl<'de> Deserialize<'de> for UtcDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        date_value(d, "since", "UTC", "2026-01-01").map(UtcDate)
    }
}

/// An http(s) URL; plain http only to loopback, since credentials travel on it.
#[derive(Debug, Clone)]
struct HttpUrl(url::Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_http_url(&s).map(HttpUrl).map_err(de::Error::custom)
    }
}

fn parse_http_url(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s)
        .map_err(|e| format!("invalid URL '{s}': {e}; e.g. \"https://api.zoom.us/v2\""))?;
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "URL '{s}' uses plain http: credentials would travel unencrypted; use https (http is allowed only for loopback)"
            ));
        }
        other => return Err(format!("URL '{s}' has scheme '{other}'; use https")),
    }
    if u.query().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "URL '{s}' must not carry a query or user info (credentials never go in URLs)"
        ));
    }
    Ok(u)
}

fn tidy_toml_message(m: &str) -> String {
    m.trim().replace('\n', " ")
}

// ---------------------------------------------------------------------------------------------
// Second pass: cross-field rules

struct Ctx<'a> {
    path: String,
    text: &'a str,
    /// Byte offsets where lines start: positions are found by binary search, so a file with
    /// thousands of entries is not rescanned for each one.
    line_starts: Vec<usize>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, col)
    }

    fn diag(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        Diagnostic {
            path: self.path.clone(),
            line,
            col,
            message: message.into(),
        }
    }
    fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.diag(span, message);
        self.errors.push(d);
    }
    fn warn(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.diag(span, format!("warning: {}", message.into()));
        self.warnings.push(d);
    }
}

fn build_daemon(ctx: &mut Ctx<'_>, raw: RawDaemon, base: &Path, env: &Env) -> DaemonConfig {
    let resolve = |p: Option<String>, default: &str| -> PathBuf {
        match p {
            Some(p) => base.join(p),
            None => match &env.state_directory {
                Some(dir) => dir.join(default),
                None => PathBuf::from(".").join(default),
            },
        }
    };
    let database = match raw.database {
        Some(d) if d.get_ref().contains("://") => build_postgres(ctx, &d, env)
            .unwrap_or_else(|| Database::from(resolve(None, "state.db"))),
        Some(d) => Database::from(resolve(Some(d.into_inner()), "state.db")),
        None => Database::from(resolve(None, "state.db")),
    };
    let default_archive = || ArchiveLocation::Local(resolve(None, "recordings"));
    let archive = match &raw.archive {
        None => default_archive(),
        Some(a) => parse_archive(a.get_ref(), base).unwrap_or_else(|e| {
            ctx.error(&a.span(), e);
            default_archive()
        }),
    };
    DaemonConfig {
        database,
        archive,
        create_ahead: span(
            raw.create_ahead
                .map_or(Duration::from_secs(7 * 86400), |b| b.0),
        ),
        poll_every: span(raw.poll_every.map_or(Duration::from_secs(300), |b| b.0)),
        give_up_after: span(
            raw.give_up_after
                .map_or(Duration::from_secs(72 * 3600), |b| b.0),
        ),
        downloads: raw.downloads.map_or(2, |d| d.0),
        verify_every: span(raw.verify_every.map_or(Duration::from_secs(3600), |b| b.0)),
        max_cancellations: raw.max_cancellations.map_or(10, |m| m.0),
        lease: raw.lease.map_or(crate::store::DEFAULT_LEASE, |b| span(b.0)),
        segment_size: raw.segment_size.map_or(DEFAULT_SEGMENT_SIZE, |s| s.0),
        connections_per_file: raw.connections_per_file.map_or(4, |c| c.0),
        after_download: raw.after_download.unwrap_or(AfterDownload::Keep),
        timezone: raw.timezone.map_or(Tz::UTC, |z| z.0),
    }
}

/// `database = "postgres://..."`. The password: the systemd credential `database_password`
/// if there is one, else the URL's (warned: it belongs in a credential), else what sqlx reads
/// as libpq does ($PGPASSWORD, ~/.pgpass). Errors never repeat the URL, which may hold it.
fn build_postgres(ctx: &mut Ctx<'_>, raw: &Spanned<String>, env: &Env) -> Option<Database> {
    let mut target = match PgTarget::parse(raw.get_ref().trim()) {
        Ok(t) => t,
        Err(e) => {
            ctx.error(&raw.span(), format!("database: {e}"));
            return None;
        }
    };
    let credential = env
        .credentials_directory
        .as_deref()
        .map(|d| d.join("database_password"))
        .filter(|p| p.exists());
    if let Some(path) = credential {
        match read_secret_file(&path) {
            Ok((v, _)) if !v.trim_end_matches(['\n', '\r']).is_empty() => {
                target =
                    target.with_password(Secret::new(v.trim_end_matches(['\n', '\r']).to_string()));
            }
            Ok(_) => {
                ctx.error(
                    &raw.span(),
                    format!("database: systemd credential {} is empty", path.display()),
                );
                return None;
            }
            Err(e) => {
                ctx.error(
                    &raw.span(),
                    format!("database: systemd credential {}: {e}", path.display()),
                );
                return None;
            }
        }
    } else if target.password_in_url() {
        ctx.warn(
            &raw.span(),
            "database: the URL holds a password; put it in a systemd credential named database_password (LoadCredential=), $PGPASSWORD or ~/.pgpass instead",
        );
    }
    Some(Database::Postgres(target))
}

fn build_http(ctx: &mut Ctx<'_>, raw: Option<RawHttp>, base: &Path, env: &Env) -> HttpConfig {
    let Some(raw) = raw else {
        return HttpConfig::default();
    };
    let listen = raw.listen.as_ref().and_then(|l| {
        match l.get_ref().trim().parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                ctx.error(
                    &l.span(),
                    format!(
                        "listen: '{}' is not an address and port; write e.g. \"127.0.0.1:8080\" (or \"[::1]:8080\")",
                        l.get_ref()
                    ),
                );
                None
            }
        }
    });
    let webhook_secret = resolve_secret(
        ctx,
        raw.webhook_secret_file.as_ref(),
        base,
        env.webhook_secret.as_deref(),
        "ZOOMD_WEBHOOK_SECRET",
        env.credentials_directory.as_deref(),
        "webhook_secret",
        false,
    )
    .map_err(|e| e.replace("in [zoom]", "in [http]"));
    let token = raw.token_file.as_ref().and_then(|f| {
        let path = base.join(f.get_ref());
        match read_secret_file(&path) {
            Ok((v, _)) if !v.trim().is_empty() => Some(Secret::new(v.trim().to_string())),
            Ok(_) => {
                ctx.error(&f.span(), format!("token_file {} is empty", path.display()));
                None
            }
            Err(e) => {
                ctx.error(&f.span(), format!("token_file {}: {e}", path.display()));
                None
            }
        }
    });
    if let (Some(addr), None, Some(l)) = (listen, &token, &raw.listen)
        && !addr.ip().is_loopback()
    {
        ctx.warn(
            &l.span(),
            format!(
                "listen = \"{addr}\" is reachable from other machines and the status page shows join links: set token_file, and put TLS in front (a reverse proxy)"
            ),
        );
    }
    HttpConfig {
        listen,
        webhook_secret,
        token,
    }
}

fn build_recordings(ctx: &mut Ctx<'_>, raw: Option<RawRecordings>) -> RecordingsConfig {
    let Some(raw) = raw else {
        return RecordingsConfig::default();
    };
    let users = match raw.users {
        None => AccountUsers::None,
        Some(spanned) => {
            let span = spanned.span();
            let list = match spanned.into_inner() {
                RawUsers::One(s) => vec![s],
                RawUsers::Many(v) => v,
            };
            account_users(ctx, &span, list)
        }
    };
    // Each unknown name is reported at its own place; the valid ones are listed.
    let file_types = raw.file_types.map(|v| {
        let mut set = BTreeSet::new();
        let whole = v.span();
        let v = v.into_inner();
        if v.is_empty() {
            ctx.error(
                &whole,
                "file_types is empty: nothing would be archived; leave it out for every type",
            );
        }
        for t in v {
            let span = t.span();
            let name = t.into_inner();
            let up = name.trim().to_ascii_uppercase();
            match FILE_TYPES.iter().find(|k| **k == up) {
                Some(k) => {
                    set.insert(k.to_string());
                }
                None => ctx.error(
                    &span,
                    format!(
                        "unknown file type '{name}' in file_types; valid types: {}",
                        FILE_TYPES.join(", ")
                    ),
                ),
            }
        }
        set
    });
    RecordingsConfig {
        users,
        since: raw.since.map(|d| d.0),
        file_types,
        scan_every: span(raw.scan_every.map_or(Duration::from_secs(3600), |b| b.0)),
        after_download: raw.after_download.unwrap_or(AfterDownload::Keep),
    }
}

fn account_users(ctx: &mut Ctx<'_>, span: &Range<usize>, list: Vec<String>) -> AccountUsers {
    let list: Vec<String> = list.into_iter().map(|u| u.trim().to_string()).collect();
    if list.iter().any(|u| u == "*") {
        if list.len() > 1 {
            ctx.error(
                span,
                "users: \"*\" already means every user of the account; list no one else with it",
            );
        }
        return AccountUsers::All;
    }
    let mut seen = BTreeSet::new();
    for u in &list {
        let valid = !u.is_empty()
            && u.len() <= 128
            && !u
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '/');
        if !valid {
            ctx.error(
                span,
                format!(
                    "users: '{u}' is not a Zoom user id or email; write \"*\" for every user, or ids/emails like \"jane@example.org\""
                ),
            );
        } else if !seen.insert(u.to_ascii_lowercase()) {
            ctx.error(span, format!("users: '{u}' is listed twice"));
        }
    }
    if list.is_empty() {
        AccountUsers::None
    } else {
        AccountUsers::Listed(list)
    }
}

const DEFAULT_API_URL: &str = "https://api.zoom.us/v2";
const DEFAULT_OAUTH_URL: &str = "https://zoom.us/oauth/token";

fn build_zoom(
    ctx: &mut Ctx<'_>,
    raw: Option<Spanned<RawZoom>>,
    base: &Path,
    env: &Env,
) -> ZoomConfig {
    let (span, raw) = match raw {
        Some(s) => (s.span(), Some(s.into_inner())),
        None => (0..0, None),
    };
    let fallback_url = |s: &str| url::Url::parse(s).expect("built-in URL is valid");
    let Some(raw) = raw else {
        ctx.error(
            &span,
            "missing [zoom] section: set auth = \"oauth\" with account_id, client_id and client_secret_file (or auth = \"jwt\" with api_key)",
        );
        return ZoomConfig {
            auth: AuthMode::OAuth,
            api_url: fallback_url(DEFAULT_API_URL),
            oauth_url: fallback_url(DEFAULT_OAUTH_URL),
            credentials: Err("no [zoom] section".into()),
            pace: Pace::default(),
        };
    };
    let pace = build_pace(ctx, &raw);
    let auth = match raw.auth.as_ref().map(|a| *a.get_ref()) {
        Some(RawAuth::Jwt) => AuthMode::Jwt,
        _ => AuthMode::OAuth,
    };
    let api_url = raw
        .api_url
        .map_or_else(|| fallback_url(DEFAULT_API_URL), |u| u.into_inner().0);
    let oauth_url = raw
        .oauth_url
        .map_or_else(|| fallback_url(DEFAULT_OAUTH_URL), |u| u.into_inner().0);

    let required = |ctx: &mut Ctx<'_>, v: &Option<Spanned<String>>, name: &str| -> Option<String> {
        match v {
            Some(s) if !s.get_ref().trim().is_empty() => Some(s.get_ref().trim().to_string()),
            Some(s) => {
                ctx.error(&s.span(), format!("{name} must not be empty"));
                None
            }
            None => {
                ctx.error(
                    &span,
                    format!(
                        "missing key `{name}` in [zoom] (required when auth = \"{}\")",
                        match auth {
                            AuthMode::OAuth => "oauth",
                            AuthMode::Jwt => "jwt",
                        }
                    ),
                );
                None
            }
        }
    };
    let unused = |ctx: &mut Ctx<'_>, v: &Option<Spanned<String>>, name: &str, mode: &str| {
        if let Some(s) = v {
            ctx.warn(
                &s.span(),
                format!("`{name}` is only used with auth = \"{mode}\"; it is ignored"),
            );
        }
    };

    let credentials = match auth {
        AuthMode::OAuth => {
            unused(ctx, &raw.api_key, "api_key", "jwt");
            unused(ctx, &raw.api_secret_file, "api_secret_file", "jwt");
            if let Some(t) = &raw.jwt_ttl {
                ctx.warn(
                    &t.span(),
                    "`jwt_ttl` is only used with auth = \"jwt\"; it is ignored",
                );
            }
            let account_id = required(ctx, &raw.account_id, "account_id");
            let client_id = required(ctx, &raw.client_id, "client_id");
            let secret = resolve_secret(
                ctx,
                raw.client_secret_file.as_ref(),
                base,
                env.client_secret.as_deref(),
                "ZOOMD_CLIENT_SECRET",
                env.credentials_directory.as_deref(),
                "client_secret",
                false,
            );
            match (account_id, client_id, secret) {
                (Some(account_id), Some(client_id), Ok(client_secret)) => Ok(Credentials::OAuth {
                    account_id,
                    client_id,
                    client_secret,
                }),
                (_, _, Err(e)) => Err(e),
                _ => Err("incomplete [zoom] section".into()),
            }
        }
        AuthMode::Jwt => {
            unused(ctx, &raw.account_id, "account_id", "oauth");
            unused(ctx, &raw.client_id, "client_id", "oauth");
            unused(ctx, &raw.client_secret_file, "client_secret_file", "oauth");
            let ttl = match &raw.jwt_ttl {
                Some(t) => {
                    let d = t.get_ref().0;
                    if d.as_secs() < 5 || d.as_secs() > 3600 {
                        ctx.error(
                            &t.span(),
                            format!(
                                "jwt_ttl {} is out of range: must be between 5s and 1h",
                                format_duration(d)
                            ),
                        );
                    }
                    d
                }
                None => Duration::from_secs(30),
            };
            let api_key = required(ctx, &raw.api_key, "api_key");
            let secret = resolve_secret(
                ctx,
                raw.api_secret_file.as_ref(),
                base,
                env.api_secret.as_deref(),
                "ZOOMD_API_SECRET",
                env.credentials_directory.as_deref(),
                "api_secret",
                true,
            );
            match (api_key, secret) {
                (Some(api_key), Ok(api_secret)) => Ok(Credentials::Jwt {
                    api_key,
                    api_secret,
                    ttl,
                }),
                (_, Err(e)) => Err(e),
                _ => Err("incomplete [zoom] section".into()),
            }
        }
    };
    ZoomConfig {
        auth,
        api_url,
        oauth_url,
        credentials,
        pace,
    }
}

/// `[zoom] requests_per_second` and `max_in_flight`, each checked against its range.
fn build_pace(ctx: &mut Ctx<'_>, raw: &RawZoom) -> Pace {
    let mut pace = Pace::default();
    if let Some(r) = &raw.requests_per_second {
        let v = *r.get_ref();
        if v.is_finite() && (Pace::MIN_RATE..=Pace::MAX_RATE).contains(&v) {
            pace.requests_per_second = v;
        } else {
            ctx.error(
                &r.span(),
                format!(
                    "requests_per_second = {v} is out of range: must be {} to {} (fractions allowed; Zoom's per-second limits are per account and shared by all its apps)",
                    Pace::MIN_RATE,
                    Pace::MAX_RATE
                ),
            );
        }
    }
    if let Some(n) = &raw.max_in_flight {
        let v = *n.get_ref();
        match usize::try_from(v) {
            Ok(v) if (1..=Pace::MAX_IN_FLIGHT).contains(&v) => pace.max_in_flight = v,
            _ => ctx.error(
                &n.span(),
                format!(
                    "max_in_flight = {v} is out of range: must be 1 to {}",
                    Pace::MAX_IN_FLIGHT
                ),
            ),
        }
    }
    pace
}

/// Finds a secret: the configured file, else the environment variable, else the systemd
/// credential. Returns why it could not, naming every place looked at; never the value.
#[allow(clippy::too_many_arguments)]
fn resolve_secret(
    ctx: &mut Ctx<'_>,
    file: Option<&Spanned<String>>,
    base: &Path,
    env_value: Option<&str>,
    env_name: &str,
    cred_dir: Option<&Path>,
    cred_name: &str,
    must_be_ascii: bool,
) -> Result<Secret, String> {
    let key = format!("{cred_name}_file");
    let (value, origin) = if let Some(f) = file {
        let path = base.join(f.get_ref());
        match read_secret_file(&path) {
            Ok((v, loose)) => {
                if let Some(mode) = loose {
                    ctx.warn(
                        &f.span(),
                        format!(
                            "secret file {} is readable by group or others (mode {mode:o}); run: chmod 600 {}",
                            path.display(),
                            path.display()
                        ),
                    );
                }
                (v, format!("{key} {}", path.display()))
            }
            Err(e) => return Err(format!("{key} {}: {e}", path.display())),
        }
    } else if let Some(v) = env_value {
        (v.to_string(), format!("${env_name}"))
    } else if let Some(dir) = cred_dir.map(|d| d.join(cred_name)).filter(|p| p.exists()) {
        match read_secret_file(&dir) {
            Ok((v, _)) => (v, format!("systemd credential {}", dir.display())),
            Err(e) => return Err(format!("systemd credential {}: {e}", dir.display())),
        }
    } else {
        return Err(format!(
            "no {cred_name}: set `{key}` in [zoom], the environment variable {env_name}, or a systemd credential named {cred_name} (LoadCredential=)"
        ));
    };
    let value = value.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(format!("{origin} is empty"));
    }
    if must_be_ascii && !value.is_ascii() {
        let msg = format!(
            "{origin}: the JWT api secret is not ASCII; Zoom signs with the secret's ASCII bytes, so it cannot be right"
        );
        if let Some(f) = file {
            ctx.error(&f.span(), msg.clone());
        } else {
            ctx.errors.push(Diagnostic {
                path: ctx.path.clone(),
                line: 1,
                col: 1,
                message: msg.clone(),
            });
        }
        return Err(msg);
    }
    Ok(Secret::new(value))
}

/// The file's text and, if group or others may read it, its mode.
fn read_secret_file(path: &Path) -> Result<(String, Option<u32>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Ok((text, Some(mode)));
        }
    }
    Ok((text, None))
}

const KEY_CHARS: &str = "letters, digits, '.', '_' and '-'";

fn build_meetings(
    ctx: &mut Ctx<'_>,
    raw: Vec<Spanned<RawMeeting>>,
    default_tz: Tz,
) -> Vec<MeetingEntry> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for m in raw {
        let span = m.span();
        let (line, _) = ctx.line_col(span.start);
        let m = m.into_inner();
        let key = match &m.key {
            None => {
                ctx.error(
                    &span,
                    "[[meeting]] is missing `key` (a stable identity such as \"weekly-standup\")",
                );
                None
            }
            Some(k) => {
                let v = k.get_ref();
                if v.is_empty() {
                    ctx.error(&k.span(), "`key` must not be empty");
                    None
                } else if !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    || v.len() > 64
                {
                    ctx.error(
                        &k.span(),
                        format!("invalid key '{v}': use up to 64 {KEY_CHARS}"),
                    );
                    None
                } else if !seen.insert(v.clone()) {
                    ctx.error(
                        &k.span(),
                        format!("duplicate key '{v}': every [[meeting]] needs its own key"),
                    );
                    None
                } else {
                    Some(v.clone())
                }
            }
        };
        let what = key
            .as_deref()
            .map_or_else(|| "[[meeting]]".to_string(), |k| format!("meeting '{k}'"));
        let topic = match &m.topic {
            None => {
                ctx.error(&span, format!("{what} is missing `topic`"));
                None
            }
            Some(t) => {
                let n = t.get_ref().chars().count();
                if t.get_ref().trim().is_empty() {
                    ctx.error(&t.span(), "`topic` must not be empty");
                    None
                } else if n > TOPIC_MAX {
                    ctx.error(
                        &t.span(),
                        format!("topic is {n} characters; Zoom allows at most {TOPIC_MAX}"),
                    );
                    None
                } else {
                    Some(t.get_ref().clone())
                }
            }
        };
        let host = match &m.host {
            None => {
                ctx.error(
                    &span,
                    format!("{what} is missing `host` (a Zoom user id, email, or \"me\")"),
                );
                None
            }
            Some(h) if h.get_ref().trim().is_empty() => {
                ctx.error(&h.span(), "`host` must not be empty");
                None
            }
            Some(h) => Some(h.get_ref().trim().to_string()),
        };
        let duration_min = match &m.duration {
            None => {
                ctx.error(
                    &span,
                    format!("{what} is missing `duration` (e.g. \"45m\", \"2h\")"),
                );
                None
            }
            Some(d) => {
                let secs = d.get_ref().0.as_secs();
                if secs % 60 != 0 {
                    ctx.error(
                        &d.span(),
                        format!(
                            "duration {} is not whole minutes; Zoom takes minutes, e.g. \"45m\" or \"1h30m\"",
                            format_duration(d.get_ref().0)
                        ),
                    );
                    None
                } else if secs / 60 < 1 || secs / 60 > DURATION_MAX_MIN {
                    ctx.error(
                        &d.span(),
                        format!(
                            "duration {} is out of range: Zoom allows 1m to 24h (1440 minutes)",
                            format_duration(d.get_ref().0)
                        ),
                    );
                    None
                } else {
                    Some((secs / 60) as u32)
                }
            }
        };
        let agenda = match &m.agenda {
            Some(a) if a.get_ref().chars().count() > AGENDA_MAX => {
                ctx.error(
                    &a.span(),
                    format!(
                        "agenda is {} characters; at most {AGENDA_MAX} (Zoom allows 2000, and zoomd adds a marker line)",
                        a.get_ref().chars().count()
                    ),
                );
                None
            }
            Some(a) => Some(a.get_ref().clone()),
            None => None,
        };
        let timezone = m.timezone.map_or(default_tz, |z| z.0);
        let when = match (&m.cron, &m.at) {
            (Some(_), Some(a)) => {
                ctx.error(&a.span(), format!("{what} has both `cron` and `at`; keep one (`cron` repeats, `at` is a one-off)"));
                None
            }
            (None, None) => {
                ctx.error(&span, format!("{what} needs `cron` (repeating, e.g. \"0 9 * * Mon\") or `at` (one-off, e.g. \"2026-12-15T14:00\")"));
                None
            }
            (Some(c), None) => Some(When::Cron(c.get_ref().0.clone())),
            (None, Some(a)) => {
                let local = a.get_ref().0;
                match timezone.from_local_datetime(&local) {
                    chrono::LocalResult::None => {
                        let (gap_start, gap_end) = crate::zone::gap_around(timezone, local);
                        ctx.error(
                            &a.span(),
                            format!(
                                "at = \"{}\" does not exist in {}: the clocks jump from {} to {} (DST gap); pick a time outside it",
                                local.format("%Y-%m-%dT%H:%M"),
                                timezone.name(),
                                gap_start.format("%H:%M"),
                                gap_end.format("%H:%M"),
                            ),
                        );
                        None
                    }
                    chrono::LocalResult::Ambiguous(first, _) => {
                        ctx.warn(
                            &a.span(),
                            format!(
                                "at = \"{}\" occurs twice in {} (DST fold); the meeting is at the first, {}",
                                local.format("%Y-%m-%dT%H:%M"),
                                timezone.name(),
                                first.format("%H:%M %Z (UTC%:z)")
                            ),
                        );
                        Some(When::At(local))
                    }
                    chrono::LocalResult::Single(_) => Some(When::At(local)),
                }
            }
        };
        let settings = build_settings(ctx, &what, m.settings);
        if let Some(a) = &m.at
            && !m.skip.is_empty()
        {
            ctx.warn(
                &a.span(),
                format!("{what} is a one-off; `skip` has no effect"),
            );
        }
        if let (
            Some(key),
            Some(topic),
            Some(host),
            Some(when),
            Some(duration_min),
            Some(settings),
        ) = (key, topic, host, when, duration_min, settings)
        {
            out.push(MeetingEntry {
                key,
                topic,
                host,
                when,
                timezone,
                duration_min,
                agenda,
                skip: m.skip.into_iter().map(|d| d.0).collect(),
                settings,
                line,
            });
        }
    }
    out
}

const AUTO_RECORDING: [&str; 3] = ["cloud", "local", "none"];
const ENCRYPTION: [&str; 2] = ["enhanced_encryption", "e2ee"];

fn build_settings(
    ctx: &mut Ctx<'_>,
    what: &str,
    raw: BTreeMap<String, Spanned<toml::Value>>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut ok = true;
    let mut out = serde_json::Map::new();
    let mut recording = "cloud".to_string();
    let mut e2ee_span = None;
    for (name, value) in &raw {
        let span = value.span();
        match (name.as_str(), value.get_ref()) {
            ("auto_recording", toml::Value::String(s)) => {
                if !AUTO_RECORDING.contains(&s.as_str()) {
                    ctx.error(
                        &span,
                        format!(
                            "auto_recording = \"{s}\" is not one of \"cloud\", \"local\", \"none\""
                        ),
                    );
                    ok = false;
                } else {
                    if s != "cloud" {
                        ctx.warn(
                            &span,
                            format!("{what}: auto_recording = \"{s}\": Zoom will not record to the cloud, so zoomd has nothing to archive"),
                        );
                    }
                    recording = s.clone();
                }
            }
            ("encryption_type", toml::Value::String(s)) => {
                if !ENCRYPTION.contains(&s.as_str()) {
                    ctx.error(
                        &span,
                        format!("encryption_type = \"{s}\" is not one of \"enhanced_encryption\", \"e2ee\""),
                    );
                    ok = false;
                } else if s == "e2ee" {
                    e2ee_span = Some(span.clone());
                }
            }
            ("auto_recording" | "encryption_type", other) => {
                ctx.error(
                    &span,
                    format!("`{name}` must be a string, found {}", other.type_str()),
                );
                ok = false;
            }
            _ => {}
        }
        match toml_to_json(value.get_ref()) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => {
                ctx.error(&span, format!("settings.{name}: {e}"));
                ok = false;
            }
        }
    }
    if let Some(span) = e2ee_span
        && recording == "cloud"
    {
        ctx.error(
            &span,
            format!("{what}: encryption_type = \"e2ee\" disables cloud recording in Zoom; use \"enhanced_encryption\" or set auto_recording to \"local\"/\"none\""),
        );
        ok = false;
    }
    out.insert(
        "auto_recording".into(),
        serde_json::Value::String(recording),
    );
    ok.then_some(out)
}

fn toml_to_json(v: &toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| format!("{f} cannot be sent as JSON"))?,
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
