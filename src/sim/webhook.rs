//! Zoom's side of event notifications: the bodies Zoom sends (with a `download_token` for
//! recording events), and their delivery, signed, to a receiver on loopback.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use serde_json::{Value, json};
use url::{Host, Url};

use super::state::{FileState, fmt_time};
use super::{Sim, SimError};
use crate::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// How long a webhook's `download_token` opens its recording's files (Zoom: 24 hours).
pub const DOWNLOAD_TOKEN_TTL: TimeDelta = TimeDelta::hours(24);

/// Zoom counts a delivery as failed (and retries it) when no 2xx came within this.
pub const ZOOM_DEADLINE: Duration = Duration::from_secs(3);

/// A hang guard, not Zoom's deadline: the answer's time is reported, so a test can judge
/// a slow receiver by [`WebhookDelivery::elapsed`] rather than by a cut connection.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the receiver answered to one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub status: u16,
    /// The answer's body (lossily UTF-8).
    pub body: String,
    /// From sending the request to the end of the answer's body (real time).
    pub elapsed: Duration,
}

impl WebhookDelivery {
    /// Whether Zoom would count it delivered: a 2xx within [`ZOOM_DEADLINE`].
    pub fn delivered(&self) -> bool {
        (200..300).contains(&self.status) && self.elapsed <= ZOOM_DEADLINE
    }
}

impl Sim {
    /// The notification Zoom would send now about meeting `meeting_id`, and the
    /// `download_token` it carries (recording events only).
    ///
    /// - `recording.completed`: the latest instance that has a recording, as
    ///   `GET /meetings/{uuid}/recordings` lists it (its completed files only) plus
    ///   `host_email` and `timezone`, with a fresh `download_token` valid for
    ///   [`DOWNLOAD_TOKEN_TTL`] of the sim's clock for that recording's files.
    /// - `recording.transcript_completed`: the same, with the completed TRANSCRIPT only.
    /// - `recording.trashed`, `recording.deleted`, `recording.recovered`: the latest
    ///   instance that took place, without files or token (its state is not changed).
    /// - `meeting.deleted`, `meeting.updated`: the meeting itself (not changed either).
    ///
    /// `NoRecording` when there is nothing completed to notify about; other event names
    /// are `InvalidInput`.
    pub fn webhook_event(
        &self,
        event: &str,
        meeting_id: i64,
    ) -> Result<(Value, Option<String>), SimError> {
        let cfg = &self.shared.cfg;
        let mut st = self.shared.lock();
        let now = st.now();
        let m = st
            .meetings
            .get(&meeting_id)
            .ok_or(SimError::NoSuchMeeting(meeting_id))?;
        let (host_id, host_email, timezone) =
            (m.host_id.clone(), m.host_email.clone(), m.timezone.clone());
        let mut body = json!({
            "event": event,
            "event_ts": now.timestamp_millis(),
        });
        let mut payload = json!({
            "account_id": cfg.account_id,
        });
        let token = match event {
            "recording.completed" | "recording.transcript_completed" => {
                let transcript = event == "recording.transcript_completed";
                let idx = m
                    .instances
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| st.has_recording(cfg, m, i))
                    .max_by_key(|(_, i)| i.start)
                    .map(|(idx, _)| idx)
                    .ok_or(SimError::NoRecording(meeting_id))?;
                // The file states, by key, before the listing borrows the state mutably.
                let inst = &m.instances[idx];
                let completed: Vec<String> = inst
                    .files
                    .iter()
                    .filter(|f| st.file_state(cfg, inst, f) == FileState::Completed)
                    .filter(|f| !transcript || f.file_type == "TRANSCRIPT")
                    .map(|f| f.file_type.to_string())
                    .collect();
                let uuid = inst.uuid.clone();
                let mut object = st
                    .recording_json(cfg, &self.shared.api_origin, meeting_id, idx)
                    .ok_or(SimError::NoRecording(meeting_id))?;
                // Zoom notifies about finished files; processing ones come in a later event.
                let files: Vec<Value> = object["recording_files"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|f| {
                                f["file_type"]
                                    .as_str()
                                    .is_some_and(|t| completed.iter().any(|c| c == t))
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                if files.is_empty() {
                    return Err(SimError::NoRecording(meeting_id));
                }
                let total: u64 = files.iter().filter_map(|f| f["file_size"].as_u64()).sum();
                object["recording_count"] = json!(files.len());
                object["total_size"] = json!(total);
                object["recording_files"] = Value::Array(files);
                object["host_email"] = json!(host_email);
                object["timezone"] = json!(timezone);
                let token = st.issue_download_token(&uuid, DOWNLOAD_TOKEN_TTL);
                payload["object"] = object;
                body["download_token"] = json!(token);
                Some(token)
            }
            "recording.trashed" | "recording.deleted" | "recording.recovered" => {
                let inst = m
                    .instances
                    .iter()
                    .filter(|i| i.start <= now)
                    .max_by_key(|i| i.start)
                    .ok_or(SimError::NoRecording(meeting_id))?;
                payload["operator"] = json!(host_email);
                payload["operator_id"] = json!(host_id);
                payload["object"] = json!({
                    "uuid": inst.uuid,
                    "id": meeting_id,
                    "host_id": host_id,
                    "topic": m.topic,
                    "type": 2,
                    "start_time": fmt_time(inst.start),
                    "timezone": timezone,
                    "duration": m.duration,
                });
                None
            }
            "meeting.deleted" | "meeting.updated" => {
                payload["operator"] = json!(host_email);
                payload["operator_id"] = json!(host_id);
                payload["object"] = json!({
                    "uuid": m.uuid,
                    "id": meeting_id,
                    "host_id": host_id,
                    "topic": m.topic,
                    "type": 2,
                    "start_time": fmt_time(m.start_time),
                    "timezone": timezone,
                    "duration": m.duration,
                });
                None
            }
            other => {
                return Err(SimError::InvalidInput(format!(
                    "webhook event {other:?} is not simulated"
                )));
            }
        };
        body["payload"] = payload;
        Ok((body, token))
    }

    /// Delivers `body` as Zoom does: `POST url` with the JSON as raw bytes,
    /// `content-type: application/json`, `x-zm-request-timestamp` = the sim's now (Unix
    /// seconds) and `x-zm-signature` = [`crate::webhook::sign`] under `secret`. Loopback
    /// URLs only. One attempt: Zoom's retries are the test's to make.
    pub async fn send_webhook(
        &self,
        url: &str,
        secret: &str,
        body: &Value,
    ) -> Result<WebhookDelivery, SimError> {
        let bytes = serde_json::to_vec(body).map_err(|e| SimError::InvalidInput(e.to_string()))?;
        let ts = self.now().timestamp();
        let sig = sign(secret.as_bytes(), ts, &bytes);
        let ts = ts.to_string();
        let headers = [
            ("content-type", "application/json"),
            (TIMESTAMP_HEADER, ts.as_str()),
            (SIGNATURE_HEADER, sig.as_str()),
        ];
        self.send_webhook_raw(url, &headers, &bytes).await
    }

    /// `POST url` with exactly these headers (besides Zoom's user agent) and body bytes: for
    /// bad signatures, stale timestamps, missing headers, oversized bodies. Loopback only.
    pub async fn send_webhook_raw(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<WebhookDelivery, SimError> {
        let url = loopback_url(url)?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(SEND_TIMEOUT)
            .user_agent("Zoom Marketplace/1.1a")
            .build()
            .map_err(|e| SimError::Webhook(e.to_string()))?;
        let mut req = http.post(url).body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| SimError::Webhook(e.to_string()))?;
        let status = resp.status().as_u16();
        let answer = resp
            .bytes()
            .await
            .map_err(|e| SimError::Webhook(e.to_string()))?;
        let elapsed = started.elapsed();
        self.shared.lock().counters.webhooks_sent += 1;
        Ok(WebhookDelivery {
            status,
            body: String::from_utf8_lossy(&answer).into_owned(),
            elapsed,
        })
    }
}

/// `url` if it is http(s) to a loopback address: the sim never sends anywhere else.
fn loopback_url(url: &str) -> Result<Url, SimError> {
    let u = Url::parse(url).map_err(|e| SimError::InvalidInput(format!("webhook URL: {e}")))?;
    let loopback = match u.host() {
        Some(Host::Ipv4(a)) => IpAddr::V4(a).is_loopback(),
        Some(Host::Ipv6(a)) => IpAddr::V6(a).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !matches!(u.scheme(), "http" | "https") || !loopback {
        return Err(SimError::InvalidInput(format!(
            "webhook URL {url} is not http(s) on loopback"
        )));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::loopback_url;

    #[test]
    fn only_loopback_urls() {
        for ok in [
            "http://127.0.0.1:8080/zoom/webhook",
            "http://[::1]:1/x",
            "http://localhost:9/",
            "https://127.0.0.2/",
        ] {
            assert!(loopback_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.org/zoom/webhook",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(loopback_url(bad).is_err(), "{bad}");
        }
    }
}
