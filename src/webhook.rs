//! Zoom's event notifications (webhooks), without the HTTP server: the signature check,
//! the answer to `endpoint.url_validation`, and parsing of the events zoomd acts on.
//!
//! Everything here is pure: the time is a parameter, the body is the raw bytes as they
//! arrived. Zoom signs `v0:{x-zm-request-timestamp}:{raw body}` with HMAC-SHA256 under the
//! app's secret token; the check runs over those bytes, never over re-serialised JSON
//! (which would differ in key order or whitespace and fail, or worse, pass for a body that
//! was not the one signed).
//!
//! A server using this module: cap the body at [`MAX_BODY`] while reading it, call
//! [`verify`] (answer [`WebhookError::http_status`] on error, and do nothing else), then
//! [`parse`]; answer [`Event::UrlValidation`] with [`url_validation`], queue everything
//! else under [`Event::dedupe_key`] and answer 200 at once (Zoom wants an answer within
//! 3 s and retries otherwise).

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::secret::Secret;
use crate::zoom::MeetingRecordings;

type HmacSha256 = Hmac<Sha256>;

/// The header carrying `v0=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "x-zm-signature";
/// The header carrying the Unix seconds the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";

/// The largest body accepted. Zoom's largest notification zoomd handles,
/// `recording.completed`, spends about 700 bytes per file: a meeting with dozens of files
/// (speaker, gallery and shared-screen views, audio, chat, captions, timeline, summary)
/// is a few tens of KB. 256 KiB leaves ample room and bounds what an unauthenticated
/// sender can make the server buffer before the signature is checked.
pub const MAX_BODY: usize = 256 * 1024;

/// How far `x-zm-request-timestamp` may be from now, either way (Zoom's rule), so that a
/// captured request cannot be replayed later.
pub const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

/// Longest error detail kept: serde may quote a whole (attacker-chosen) string.
const MAX_DETAIL: usize = 160;

/// Why a notification was refused. Messages are short and never contain the secret, the
/// signature or a download token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook: no {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("webhook: no {TIMESTAMP_HEADER} header")]
    MissingTimestamp,
    #[error("webhook: {TIMESTAMP_HEADER} is not Unix seconds")]
    BadTimestamp,
    /// `skew_secs`: now minus the request's timestamp (negative: from the future).
    #[error("webhook: request timestamp is {skew_secs} s from now (at most 300 s allowed)")]
    Stale { skew_secs: i64 },
    #[error("webhook: signature does not match")]
    BadSignature,
    /// Refused before anything else: an empty secret would let anyone sign.
    #[error("webhook: no secret token configured")]
    NoSecret,
    #[error("webhook: body of {len} bytes is over the {max} byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("webhook: body is not JSON: {0}")]
    NotJson(String),
    #[error("webhook: unexpected notification shape: {0}")]
    Shape(String),
}

impl WebhookError {
    /// The HTTP status to answer with: 401 for anything about authenticity, 413 for a body
    /// too large, 400 for a signed body zoomd cannot read.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::TooLarge { .. } => 413,
            WebhookError::NotJson(_) | WebhookError::Shape(_) => 400,
            _ => 401,
        }
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first); the error of
    // `new_from_slice` exists for MACs with fixed key sizes only.
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

fn signed_mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut m = mac(secret);
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    m
}

fn check_size(body: &[u8]) -> Result<(), WebhookError> {
    if body.len() > MAX_BODY {
        return Err(WebhookError::TooLarge {
            len: body.len(),
            max: MAX_BODY,
        });
    }
    Ok(())
}

/// Checks a notification's headers against its raw body: `signature` must be
/// `v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>` (compared in constant time),
/// and `timestamp` (Unix seconds) at most [`MAX_SKEW`] from `now`.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    check_size(body)?;
    let signature = signature.ok_or(WebhookError::MissingSignature)?;
    let timestamp = timestamp.ok_or(WebhookError::MissingTimestamp)?;
    // Digits only: the signed text is the header as sent, so " 1" or "+1" must not pass
    // as the same instant as "1".
    if timestamp.is_empty()
        || timestamp.len() > 18
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(WebhookError::BadTimestamp);
    }
    let ts: i64 = timestamp.parse().map_err(|_| WebhookError::BadTimestamp)?;
    let skew_secs = now.timestamp().saturating_sub(ts);
    if skew_secs.unsigned_abs() > MAX_SKEW.num_seconds().unsigned_abs() {
        return Err(WebhookError::Stale { skew_secs });
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(WebhookError::BadSignature)?;
    signed_mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| WebhookError::BadSignature)
}

/// The `x-zm-signature` value Zoom sends for `body` at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let m = signed_mac(secret, &timestamp.to_string(), body);
    format!("v0={}", hex::encode(m.finalize().into_bytes()))
}

/// The answer to `endpoint.url_validation`: `{"plainToken", "encryptedToken"}`, the latter
/// hex HMAC-SHA256(secret, plainToken). Zoom sends it when the endpoint is saved and every
/// 72 hours after.
pub fn url_validation(secret: &[u8], plain_token: &str) -> Value {
    let mut m = mac(secret);
    m.update(plain_token.as_bytes());
    json!({
        "plainToken": plain_token,
        "encryptedToken": hex::encode(m.finalize().into_bytes()),
    })
}

/// A notification, as far as zoomd cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `endpoint.url_validation`: answer with [`url_validation`].
    UrlValidation { plain_token: String },
    /// `recording.completed` or `recording.transcript_completed`: files to download.
    /// (Boxed: it is ten times the size of the other variants.)
    Recording(Box<RecordingEvent>),
    /// An event about a meeting or its recording that zoomd records but takes no files
    /// from: `recording.trashed`, `recording.deleted`, `recording.recovered`,
    /// `meeting.deleted`, `meeting.updated`.
    Meeting {
        event: String,
        /// Milliseconds since the epoch, when Zoom says the event happened.
        event_ts: Option<i64>,
        meeting_id: Option<i64>,
        uuid: Option<String>,
    },
    /// Anything else (answered 2xx, or Zoom retries it).
    Other { event: String },
}

/// `recording.completed` / `recording.transcript_completed`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingEvent {
    /// `recording.completed` or `recording.transcript_completed`.
    pub event: String,
    /// Milliseconds since the epoch.
    pub event_ts: i64,
    /// Bearer token for this recording's `download_url`s, valid 24 hours; absent when the
    /// app is not set up to receive one.
    pub download_token: Option<Secret>,
    /// `payload.account_id`.
    pub account_id: Option<String>,
    pub host_email: Option<String>,
    /// IANA zone the meeting is shown in.
    pub timezone: Option<String>,
    /// `payload.object`, read as the recordings API answers it (the same shape; a
    /// transcript event lists only the transcript).
    pub recording: MeetingRecordings,
}

impl RecordingEvent {
    /// Whether this is `recording.transcript_completed`.
    pub fn is_transcript(&self) -> bool {
        self.event == "recording.transcript_completed"
    }
}

fn short(s: impl Into<String>) -> String {
    let s: String = s.into();
    match s.char_indices().nth(MAX_DETAIL) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

fn shape(s: impl Into<String>) -> WebhookError {
    WebhookError::Shape(short(s))
}

/// An id Zoom sends as a number, or (in some events) as a string of digits.
fn as_id(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Reads a notification's raw body (after [`verify`]). Unknown events are
/// [`Event::Other`], not errors.
pub fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    check_size(body)?;
    // serde_json's syntax errors name a line and column, never the input.
    let mut top: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(shape("the body is not a JSON object")),
        Err(e) => return Err(WebhookError::NotJson(short(e.to_string()))),
    };
    // Out of the tree first, so no later error message can quote it.
    let token = top.remove("download_token");
    let event = match top.get("event") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(shape("no event name")),
    };
    let event_ts = top.get("event_ts").and_then(Value::as_i64);
    let payload = top.get("payload");
    let object = payload.and_then(|p| p.get("object"));
    match event.as_str() {
        "endpoint.url_validation" => {
            let plain_token = as_string(payload.and_then(|p| p.get("plainToken")))
                .ok_or_else(|| shape("endpoint.url_validation without payload.plainToken"))?;
            Ok(Event::UrlValidation { plain_token })
        }
        "recording.completed" | "recording.transcript_completed" => {
            let download_token = match token {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(Secret::new(s)),
                Some(_) => return Err(shape("download_token is not a string")),
            };
            let event_ts = event_ts.ok_or_else(|| shape(format!("{event} without event_ts")))?;
            let object = object.ok_or_else(|| shape(format!("{event} without payload.object")))?;
            let recording = MeetingRecordings::deserialize(object)
                .map_err(|e| shape(format!("payload.object: {e}")))?;
            recording
                .check()
                .map_err(|e| shape(format!("payload.object: {e}")))?;
            Ok(Event::Recording(Box::new(RecordingEvent {
                event,
                event_ts,
                download_token,
                account_id: as_string(payload.and_then(|p| p.get("account_id"))),
                host_email: as_string(object.get("host_email")),
                timezone: as_string(object.get("timezone")),
                recording,
            })))
        }
        "recording.trashed"
        | "recording.deleted"
        | "recording.recovered"
        | "meeting.deleted"
        | "meeting.updated" => Ok(Event::Meeting {
            meeting_id: as_id(object.and_then(|o| o.get("id"))),
            uuid: as_string(object.and_then(|o| o.get("uuid"))),
            event_ts,
            event,
        }),
        _ => Ok(Event::Other { event }),
    }
}

/// One length-prefixed field of a key, so that ("ab", "c") and ("a", "bc") differ.
fn put(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

impl Event {
    /// A key (64 hex digits) that is the same when Zoom repeats a notification, for
    /// handling each one once.
    ///
    /// What repeats: a retry (after no 2xx within 3 s: 5, 20 and 60 minutes later) is the
    /// same event with the same `event_ts`; notifications that differ (another
    /// `recording.completed` as further files finish, the later transcript event) have
    /// their own `event_ts` and files. So a recording event's key is sha256 of event name,
    /// `event_ts`, uuid and the sorted file ids (file type for id-less files), and a
    /// meeting event's of name, `event_ts`, id and uuid: whitespace, key order or a fresh
    /// `download_token` in a resent body do not make it new. Events without those fields
    /// (and a meeting event without `event_ts`) are keyed by the raw body.
    ///
    /// `endpoint.url_validation` gets a key too, but must be answered every time.
    /// Files are still deduplicated by file id in the download queue: this key only
    /// keeps one notification from being queued twice.
    pub fn dedupe_key(&self, body: &[u8]) -> String {
        let mut h = Sha256::new();
        match self {
            Event::Recording(r) => {
                put(&mut h, b"recording");
                put(&mut h, r.event.as_bytes());
                put(&mut h, &r.event_ts.to_be_bytes());
                put(&mut h, r.recording.uuid.as_bytes());
                let mut files: Vec<&str> = r
                    .recording
                    .recording_files
                    .iter()
                    .map(|f| f.id.as_deref().or(f.file_type.as_deref()).unwrap_or(""))
                    .collect();
                files.sort_unstable();
                for f in files {
                    put(&mut h, f.as_bytes());
                }
            }
            Event::Meeting {
                event,
                event_ts: Some(ts),
                meeting_id,
                uuid,
            } => {
                put(&mut h, b"meeting");
                put(&mut h, event.as_bytes());
                put(&mut h, &ts.to_be_bytes());
                put(
                    &mut h,
                    meeting_id
                        .map(|i| i.to_string())
                        .unwrap_or_default()
                        .as_bytes(),
                );
                put(&mut h, uuid.as_deref().unwrap_or("").as_bytes());
            }
            _ => {
                put(&mut h, b"body");
                put(&mut h, body);
            }
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SECRET: &[u8] = b"sim-webhook-secret-token";
    const COMPLETED: &str = include_str!("../tests/fixtures/webhook/recording_completed.json");
    const TRANSCRIPT: &str = include_str!("../tests/fixtures/webhook/transcript_completed.json");

    fn at(ts: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(ts, 0).single().expect("valid instant")
    }

    const TS: i64 = 1_700_000_000;

    fn check(sig: &str, ts: &str, body: &[u8], now: DateTime<Utc>) -> Result<(), WebhookError> {
        verify(SECRET, Some(ts), Some(sig), body, now)
    }

    #[test]
    fn sign_matches_a_known_vector() {
        // python3: hmac.new(b"secret", b'v0:1700000000:{"event":"x"}', sha256).hexdigest()
        assert_eq!(
            sign(b"secret", TS, br#"{"event":"x"}"#),
            "v0=aaaddc2382ce58a607b298ab6361ae1667ddff72c622b1993fd76c02908634c3"
        );
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_fails() {
        let body = COMPLETED.as_bytes();
        let sig = sign(SECRET, TS, body);
        let ts = TS.to_string();
        assert_eq!(check(&sig, &ts, body, at(TS)), Ok(()));
        // Within the window either way, the bound included.
        assert_eq!(check(&sig, &ts, body, at(TS + 300)), Ok(()));
        assert_eq!(check(&sig, &ts, body, at(TS - 300)), Ok(()));
        // Upper-case hex is the same signature.
        let upper = format!("v0={}", sig["v0=".len()..].to_ascii_uppercase());
        assert_eq!(check(&upper, &ts, body, at(TS)), Ok(()));

        // One byte of the body changed.
        let mut changed = body.to_vec();
        let i = changed.len() / 2;
        changed[i] ^= 0x01;
        assert_eq!(
            check(&sig, &ts, &changed, at(TS)),
            Err(WebhookError::BadSignature)
        );
        // The same JSON re-serialised is other bytes: refused.
        let reser = serde_json::to_vec(&serde_json::from_slice::<Value>(body).unwrap()).unwrap();
        assert_ne!(reser, body);
        assert_eq!(
            check(&sig, &ts, &reser, at(TS)),
            Err(WebhookError::BadSignature)
        );
        // Wrong secret.
        assert_eq!(
            verify(b"another-secret", Some(&ts), Some(&sig), body, at(TS)),
            Err(WebhookError::BadSignature)
        );
        // Signed for another timestamp than the header says.
        let other = (TS + 1).to_string();
        assert_eq!(
            check(&sig, &other, body, at(TS)),
            Err(WebhookError::BadSignature)
        );
        // Malformed signatures.
        for bad in [&sig["v0=".len()..], "v1=00", "v0=zz", "v0=", ""] {
            assert_eq!(
                check(bad, &ts, body, at(TS)),
                Err(WebhookError::BadSignature),
                "{bad}"
            );
        }
        // A truncated signature (a prefix of the right one) is not accepted.
        assert_eq!(
            check(&sig[..sig.len() - 2], &ts, body, at(TS)),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn stale_or_future_timestamps_fail() {
        let body = br#"{"event":"meeting.deleted"}"#;
        let sig = sign(SECRET, TS, body);
        let ts = TS.to_string();
        assert_eq!(
            check(&sig, &ts, body, at(TS + 360)),
            Err(WebhookError::Stale { skew_secs: 360 })
        );
        assert_eq!(
            check(&sig, &ts, body, at(TS - 360)),
            Err(WebhookError::Stale { skew_secs: -360 })
        );
        assert_eq!(
            check(&sig, &ts, body, at(TS + 301)),
            Err(WebhookError::Stale { skew_secs: 301 })
        );
        // Milliseconds instead of seconds: far in the future.
        let ms = (TS * 1000).to_string();
        let sig_ms = sign(SECRET, TS * 1000, body);
        assert!(matches!(
            check(&sig_ms, &ms, body, at(TS)),
            Err(WebhookError::Stale { .. })
        ));
    }

    #[test]
    fn missing_or_malformed_headers_fail() {
        let body = br#"{"event":"meeting.deleted"}"#;
        let sig = sign(SECRET, TS, body);
        let ts = TS.to_string();
        assert_eq!(
            verify(SECRET, Some(&ts), None, body, at(TS)),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify(SECRET, None, Some(&sig), body, at(TS)),
            Err(WebhookError::MissingTimestamp)
        );
        for bad in [
            "",
            "soon",
            "-1700000000",
            "+1700000000",
            " 1700000000",
            "1.7e9",
            "99999999999999999999",
        ] {
            assert_eq!(
                check(&sig, bad, body, at(TS)),
                Err(WebhookError::BadTimestamp),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(b"", Some(&ts), Some(&sign(b"", TS, body)), body, at(TS)),
            Err(WebhookError::NoSecret)
        );
        let big = vec![b' '; MAX_BODY + 1];
        let big_sig = sign(SECRET, TS, &big);
        assert_eq!(
            check(&big_sig, &ts, &big, at(TS)),
            Err(WebhookError::TooLarge {
                len: MAX_BODY + 1,
                max: MAX_BODY
            })
        );
        assert_eq!(WebhookError::BadSignature.http_status(), 401);
        assert_eq!(WebhookError::Stale { skew_secs: 1 }.http_status(), 401);
        assert_eq!(WebhookError::Shape("x".into()).http_status(), 400);
        assert_eq!(
            parse(&big),
            Err(WebhookError::TooLarge {
                len: MAX_BODY + 1,
                max: MAX_BODY
            })
        );
    }

    #[test]
    fn url_validation_answers_with_the_hmac_of_the_plain_token() {
        // python3: hmac.new(b"secret", b"qgg8vlvZRS6UYooatFL8Aw", sha256).hexdigest()
        let v = url_validation(b"secret", "qgg8vlvZRS6UYooatFL8Aw");
        assert_eq!(
            v,
            json!({
                "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                "encryptedToken": "72cef096bfd47c0b8664df30d07721641e4abd7e885ba432204260db477a9a3e",
            })
        );
        let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
        assert_eq!(
            parse(body),
            Ok(Event::UrlValidation {
                plain_token: "qgg8vlvZRS6UYooatFL8Aw".into()
            })
        );
        assert!(matches!(
            parse(br#"{"event":"endpoint.url_validation","payload":{}}"#),
            Err(WebhookError::Shape(_))
        ));
    }

    #[test]
    fn parses_recording_completed() {
        let Ok(Event::Recording(r)) = parse(COMPLETED.as_bytes()) else {
            panic!("not a recording event: {:?}", parse(COMPLETED.as_bytes()));
        };
        assert_eq!(r.event, "recording.completed");
        assert!(!r.is_transcript());
        assert_eq!(r.event_ts, 1626230691572);
        assert_eq!(r.account_id.as_deref(), Some("AAAAAABBBB"));
        assert_eq!(r.host_email.as_deref(), Some("jchill@example.com"));
        assert_eq!(r.timezone.as_deref(), Some("America/Los_Angeles"));
        let token = r.download_token.as_ref().expect("download_token");
        assert!(token.expose().starts_with("abJhbGciOiJIUzUxMiJ9."));
        // The token never shows in Debug output.
        assert!(!format!("{r:?}").contains("abJhbGci"));
        let rec = &r.recording;
        assert_eq!(rec.uuid, "4444AAAiAAAAAiAiAiiAii==");
        assert_eq!(rec.id, Some(91234567890));
        assert_eq!(rec.host_id.as_deref(), Some("x1yCzABCDEfg23HiJKl4mN"));
        assert_eq!(rec.topic.as_deref(), Some("My Personal Recording"));
        assert_eq!(rec.duration, Some(60));
        assert_eq!(rec.total_size, Some(529385));
        assert_eq!(rec.recording_count, Some(3));
        assert_eq!(
            rec.start_time,
            Some(Utc.with_ymd_and_hms(2021, 7, 13, 21, 44, 51).unwrap())
        );
        let f = &rec.recording_files;
        assert_eq!(f.len(), 3);
        assert_eq!(
            f[1].id.as_deref(),
            Some("388ffb46-1541-460d-8447-4624451a1db7")
        );
        assert_eq!(f[1].file_type.as_deref(), Some("MP4"));
        assert_eq!(f[1].file_size, Some(282825));
        assert_eq!(
            f[1].download_url.as_deref(),
            Some("https://example.com/rec/download/Qg75t7xZBtEbAkjdlgbfdngBBBB")
        );
        assert_eq!(f[1].meeting_id.as_deref(), Some("4444AAAiAAAAAiAiAiiAii=="));
        assert!(f.iter().all(|f| f.is_ready()));
        // The id-less TIMELINE file.
        assert_eq!((f[2].id.as_deref(), f[2].file_size), (None, None));
    }

    #[test]
    fn parses_transcript_completed() {
        let Ok(Event::Recording(r)) = parse(TRANSCRIPT.as_bytes()) else {
            panic!("not a recording event");
        };
        assert!(r.is_transcript());
        assert_eq!(r.recording.recording_files.len(), 1);
        let f = &r.recording.recording_files[0];
        assert_eq!(f.file_type.as_deref(), Some("TRANSCRIPT"));
        assert_eq!(f.file_extension.as_deref(), Some("VTT"));
        assert!(f.is_ready());
        assert!(r.download_token.is_some());
    }

    #[test]
    fn other_events_and_bad_shapes() {
        assert_eq!(
            parse(br#"{"event":"meeting.started","payload":{"object":{"id":1}}}"#),
            Ok(Event::Other {
                event: "meeting.started".into()
            })
        );
        assert_eq!(
            parse(br#"{"event":"recording.trashed","event_ts":5,"payload":{"account_id":"a","object":{"uuid":"u==","id":91234567890}}}"#),
            Ok(Event::Meeting {
                event: "recording.trashed".into(),
                event_ts: Some(5),
                meeting_id: Some(91234567890),
                uuid: Some("u==".into())
            })
        );
        // Some events send the id as a string.
        assert_eq!(
            parse(br#"{"event":"meeting.updated","payload":{"object":{"id":"91234567890"}}}"#),
            Ok(Event::Meeting {
                event: "meeting.updated".into(),
                event_ts: None,
                meeting_id: Some(91234567890),
                uuid: None
            })
        );
        assert!(matches!(parse(b"not json"), Err(WebhookError::NotJson(_))));
        assert!(matches!(parse(b"[1,2]"), Err(WebhookError::Shape(_))));
        assert!(matches!(
            parse(br#"{"payload":{}}"#),
            Err(WebhookError::Shape(_))
        ));
        // A recording event without its object, or with a completed file and no URL.
        assert!(matches!(
            parse(br#"{"event":"recording.completed","event_ts":1,"payload":{}}"#),
            Err(WebhookError::Shape(_))
        ));
        assert!(matches!(
            parse(br#"{"event":"recording.completed","event_ts":1,"payload":{"object":{"uuid":"u","recording_files":[{"id":"a","status":"completed"}]}}}"#),
            Err(WebhookError::Shape(_))
        ));
        // A token of the wrong type is refused without quoting it; a shape error quoting a
        // long string stays short.
        let e = parse(br#"{"event":"recording.completed","event_ts":1,"download_token":987654321987,"payload":{"object":{"uuid":"u"}}}"#)
            .unwrap_err();
        assert!(!e.to_string().contains("987654321987"), "{e}");
        let long = format!(
            r#"{{"event":"recording.completed","event_ts":1,"payload":{{"object":{{"uuid":"u","id":"{}"}}}}}}"#,
            "x".repeat(5000)
        );
        let e = parse(long.as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[test]
    fn dedupe_key_is_stable_across_retries_and_differs_between_notifications() {
        let body = COMPLETED.as_bytes();
        let ev = parse(body).unwrap();
        let key = ev.dedupe_key(body);
        assert_eq!(key.len(), 64);
        // A retry: the same event, re-serialised, with a fresh download token.
        let mut v: Value = serde_json::from_slice(body).unwrap();
        v["download_token"] = json!("another.token.value");
        let resent = serde_json::to_vec_pretty(&v).unwrap();
        assert_eq!(parse(&resent).unwrap().dedupe_key(&resent), key);
        // A later notification for the same recording: another event_ts.
        let mut later = v.clone();
        later["event_ts"] = json!(1626230791572_i64);
        let later = serde_json::to_vec(&later).unwrap();
        assert_ne!(parse(&later).unwrap().dedupe_key(&later), key);
        // The transcript event differs.
        let t = TRANSCRIPT.as_bytes();
        assert_ne!(parse(t).unwrap().dedupe_key(t), key);
        // Another file set at the same instant differs.
        let mut fewer = v.clone();
        fewer["payload"]["object"]["recording_files"]
            .as_array_mut()
            .unwrap()
            .pop();
        let fewer = serde_json::to_vec(&fewer).unwrap();
        assert_ne!(parse(&fewer).unwrap().dedupe_key(&fewer), key);
        // Other events are keyed by their bytes.
        let a = br#"{"event":"meeting.started","x":1}"#;
        let b = br#"{"event":"meeting.started","x":2}"#;
        let (ea, eb) = (parse(a).unwrap(), parse(b).unwrap());
        assert_eq!(ea, eb);
        assert_eq!(ea.dedupe_key(a), ea.dedupe_key(a));
        assert_ne!(ea.dedupe_key(a), eb.dedupe_key(b));
    }
}
