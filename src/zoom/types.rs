//! Request and response shapes, and the pure helpers around them (uuid encoding, month
//! windows).
//!
//! Parsing is tolerant where Zoom is loose: unknown fields are ignored, most fields are
//! optional, a recording's `type` may come as string or number, `file_size` as integer or
//! float. It is strict where a wrong guess would hurt: ids are `i64` (they exceed 32 bits),
//! and a `completed` recording file without a `download_url` is a parse error.

use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// When a meeting starts. zoomd resolves local times itself (see `schedule`), so it only
/// sends the UTC form; Zoom's local form (wall time plus `timezone`) is not offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingStart {
    /// Sent as `yyyy-MM-ddTHH:mm:ssZ`. `timezone` (IANA), if given, is only how Zoom
    /// displays the meeting.
    Utc {
        at: DateTime<Utc>,
        timezone: Option<String>,
    },
}

impl MeetingStart {
    fn fields(&self) -> (String, Option<&str>) {
        match self {
            MeetingStart::Utc { at, timezone } => (
                at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                timezone.as_deref(),
            ),
        }
    }
}

/// A scheduled meeting (type 2) to create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateMeeting {
    /// At most 200 characters.
    pub topic: String,
    pub start: MeetingStart,
    /// Minutes, 1..=1440.
    pub duration_minutes: u32,
    /// At most 2000 characters.
    pub agenda: Option<String>,
    /// Passed through as Zoom's `settings` object. `auto_recording` is set to `"cloud"`
    /// unless present.
    pub settings: Map<String, Value>,
}

/// Changes to a meeting (`PATCH`); `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeetingPatch {
    pub topic: Option<String>,
    /// Puts a meeting that was moved at Zoom back at its scheduled start.
    pub start: Option<MeetingStart>,
    pub duration_minutes: Option<u32>,
    pub agenda: Option<String>,
    /// Merged by Zoom into the meeting's settings (keys not given stay as they are).
    pub settings: Option<Map<String, Value>>,
}

pub(crate) const MAX_TOPIC: usize = 200;
pub(crate) const MAX_AGENDA: usize = 2000;

/// Check Zoom's documented limits; the error text says what would be valid.
fn check_fields(
    topic: Option<&str>,
    duration: Option<u32>,
    agenda: Option<&str>,
) -> Result<(), String> {
    if let Some(t) = topic {
        let n = t.chars().count();
        if n == 0 || n > MAX_TOPIC {
            return Err(format!("topic must be 1..={MAX_TOPIC} characters, got {n}"));
        }
    }
    if let Some(d) = duration
        && !(1..=1440).contains(&d)
    {
        return Err(format!("duration must be 1..=1440 minutes, got {d}"));
    }
    if let Some(a) = agenda {
        let n = a.chars().count();
        if n > MAX_AGENDA {
            return Err(format!(
                "agenda must be at most {MAX_AGENDA} characters, got {n}"
            ));
        }
    }
    Ok(())
}

impl CreateMeeting {
    /// The JSON body Zoom expects, after checking the documented limits.
    pub fn to_body(&self) -> Result<Value, String> {
        check_fields(
            Some(&self.topic),
            Some(self.duration_minutes),
            self.agenda.as_deref(),
        )?;
        let mut body = Map::new();
        body.insert("topic".into(), Value::from(self.topic.clone()));
        body.insert("type".into(), Value::from(2));
        let (start, tz) = self.start.fields();
        body.insert("start_time".into(), Value::from(start));
        if let Some(tz) = tz {
            body.insert("timezone".into(), Value::from(tz));
        }
        body.insert("duration".into(), Value::from(self.duration_minutes));
        if let Some(a) = &self.agenda {
            body.insert("agenda".into(), Value::from(a.clone()));
        }
        let mut settings = self.settings.clone();
        settings
            .entry("auto_recording")
            .or_insert_with(|| Value::from("cloud"));
        body.insert("settings".into(), Value::Object(settings));
        Ok(Value::Object(body))
    }
}

impl MeetingPatch {
    /// The JSON body of the PATCH, after checking the documented limits.
    pub fn to_body(&self) -> Result<Value, String> {
        check_fields(
            self.topic.as_deref(),
            self.duration_minutes,
            self.agenda.as_deref(),
        )?;
        let mut body = Map::new();
        if let Some(t) = &self.topic {
            body.insert("topic".into(), Value::from(t.clone()));
        }
        if let Some(s) = &self.start {
            let (start, tz) = s.fields();
            body.insert("start_time".into(), Value::from(start));
            if let Some(tz) = tz {
                body.insert("timezone".into(), Value::from(tz));
            }
        }
        if let Some(d) = self.duration_minutes {
            body.insert("duration".into(), Value::from(d));
        }
        if let Some(a) = &self.agenda {
            body.insert("agenda".into(), Value::from(a.clone()));
        }
        if let Some(s) = &self.settings {
            body.insert("settings".into(), Value::Object(s.clone()));
        }
        if body.is_empty() {
            return Err("a meeting patch must change at least one field".to_owned());
        }
        Ok(Value::Object(body))
    }
}

/// A meeting as Zoom describes it (create answer, `GET /meetings/{id}`, list item).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Meeting {
    pub id: i64,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub host_id: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default, rename = "type")]
    pub meeting_type: Option<i64>,
    /// Absent for recurring meetings without a fixed time.
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration: Option<i64>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub agenda: Option<String>,
    #[serde(default)]
    pub join_url: Option<String>,
    /// Expires two hours after it is issued: never store it.
    #[serde(default)]
    pub start_url: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub settings: Option<Map<String, Value>>,
}

/// One past instance of a meeting (`GET /past_meetings/{id}/instances`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PastInstance {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient_time")]
    pub start_time: Option<DateTime<Utc>>,
}

/// The cloud recording of one meeting instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MeetingRecordings {
    pub uuid: String,
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub host_id: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    /// A string in Zoom's document ("1"), accepted as a number too.
    #[serde(default, rename = "type", deserialize_with = "string_or_number")]
    pub meeting_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration: Option<i64>,
    #[serde(default, deserialize_with = "size")]
    pub total_size: Option<u64>,
    #[serde(default)]
    pub recording_count: Option<i64>,
    #[serde(default)]
    pub recording_files: Vec<RecordingFile>,
}

/// One file of a cloud recording.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordingFile {
    /// Absent for some files (CC, TIMELINE).
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub meeting_id: Option<String>,
    #[serde(default)]
    pub file_type: Option<String>,
    #[serde(default)]
    pub file_extension: Option<String>,
    /// Bytes; absent for some files (CC, TIMELINE).
    #[serde(default, deserialize_with = "size")]
    pub file_size: Option<u64>,
    /// `completed` when ready; absent for some files (CC, TIMELINE).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub download_url: Option<String>,
    #[serde(default)]
    pub recording_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub recording_start: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub recording_end: Option<DateTime<Utc>>,
}

impl RecordingFile {
    /// Ready to download: status `completed`, or (CC, TIMELINE) no status at all but a
    /// download URL. Any other status (`processing`, ...) is not ready yet.
    pub fn is_ready(&self) -> bool {
        match self.status.as_deref() {
            Some(s) => s.eq_ignore_ascii_case("completed") && self.download_url.is_some(),
            None => self.download_url.is_some(),
        }
    }
}

impl MeetingRecordings {
    /// The shape rules serde cannot express.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (i, f) in self.recording_files.iter().enumerate() {
            let completed = f
                .status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("completed"));
            if completed && f.download_url.as_deref().is_none_or(str::is_empty) {
                return Err(format!(
                    "recording_files[{i}] (id {}) is completed but has no download_url",
                    f.id.as_deref().unwrap_or("none")
                ));
            }
        }
        Ok(())
    }
}

/// Which meeting a recording call is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MeetingRef {
    /// The numeric meeting id: Zoom answers for the latest instance only.
    Id(i64),
    /// One instance's uuid (from [`PastInstance`] or a recording listing).
    Uuid(String),
}

impl MeetingRef {
    /// The path segment, percent-encoded as Zoom requires.
    pub fn path_segment(&self) -> String {
        match self {
            MeetingRef::Id(id) => id.to_string(),
            MeetingRef::Uuid(u) => encode_uuid(u),
        }
    }
}

/// What to do with cloud recordings on delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAction {
    /// Move to trash (recoverable for 30 days).
    Trash,
    /// Delete permanently.
    Delete,
}

impl DeleteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteAction::Trash => "trash",
            DeleteAction::Delete => "delete",
        }
    }
}

/// Everything but RFC 3986 unreserved characters is encoded: `/`, `+` and `=`, common in
/// uuids, must not reach Zoom literally.
pub(crate) const UUID_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encode a meeting uuid for a URL path: once, or twice when it starts with `/` or
/// contains `//` (Zoom's documented rule).
pub fn encode_uuid(uuid: &str) -> String {
    let once = utf8_percent_encode(uuid, UUID_ENCODE).to_string();
    if uuid.starts_with('/') || uuid.contains("//") {
        utf8_percent_encode(&once, UUID_ENCODE).to_string()
    } else {
        once
    }
}

/// Split the inclusive date range `from..=to` into consecutive, non-overlapping inclusive
/// windows of at most one calendar month each (Zoom's limit for the user recordings list).
pub fn month_windows(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        // start + 1 month - 1 day: e.g. Jan 1 -> Jan 31; Jan 31 -> Feb 27/28 (clamped).
        let end = start
            .checked_add_months(Months::new(1))
            .and_then(|d| d.pred_opt())
            .unwrap_or(to)
            .min(to)
            .max(start);
        out.push((start, end));
        match end.succ_opt() {
            Some(next) => start = next,
            None => break,
        }
    }
    out
}

/// A page of a `next_page_token` listing.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    /// `meetings` in meeting and recording listings, `users` in the user listing.
    #[serde(
        default = "Vec::new",
        alias = "users",
        bound(deserialize = "T: Deserialize<'de>")
    )]
    pub meetings: Vec<T>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A user of the account, as `GET /users` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    /// `active`, `inactive` or `pending`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Past instances answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Instances {
    #[serde(default)]
    pub meetings: Vec<PastInstance>,
}

/// Accept `"1"` or `1` as a string.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected string or number, got {other}"
            )));
        }
    })
}

/// A byte count as integer or (as Zoom's document types it) a non-negative whole float.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0) {
                // Whole floats below 2^53 are exact.
                Ok(Some(f as u64))
            } else {
                Err(serde::de::Error::custom(format!("invalid size {n}")))
            }
        }
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a size, got {other}"
        ))),
    }
}

/// An informational timestamp: RFC 3339, or without zone (taken as UTC); anything else
/// becomes `None` rather than failing the whole answer.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    Ok(v.and_then(|s| {
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S")
                    .ok()
                    .map(|t| t.and_utc())
            })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn uuid_encoding() {
        assert_eq!(
            encode_uuid("aDYlohsHRtCd4ii1uC2+hA=="),
            "aDYlohsHRtCd4ii1uC2%2BhA%3D%3D"
        );
        assert_eq!(encode_uuid("abc/def=="), "abc%2Fdef%3D%3D");
        // Leading slash: twice.
        assert_eq!(
            encode_uuid("/ajXp112QmuoKj4854875=="),
            "%252FajXp112QmuoKj4854875%253D%253D"
        );
        // Double slash anywhere: twice.
        assert_eq!(encode_uuid("ab//cd+="), "ab%252F%252Fcd%252B%253D");
        assert_eq!(encode_uuid("plain-uuid_1.2~"), "plain-uuid_1.2~");
        assert_eq!(MeetingRef::Id(97763643886).path_segment(), "97763643886");
    }

    #[test]
    fn windows_are_at_most_a_month_and_cover_the_range() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(
            month_windows(d(2026, 1, 1), d(2026, 1, 10)),
            vec![(d(2026, 1, 1), d(2026, 1, 10))]
        );
        assert_eq!(
            month_windows(d(2026, 1, 1), d(2026, 3, 15)),
            vec![
                (d(2026, 1, 1), d(2026, 1, 31)),
                (d(2026, 2, 1), d(2026, 2, 28)),
                (d(2026, 3, 1), d(2026, 3, 15)),
            ]
        );
        assert_eq!(
            month_windows(d(2026, 1, 5), d(2026, 1, 5)),
            vec![(d(2026, 1, 5), d(2026, 1, 5))]
        );
        assert!(month_windows(d(2026, 2, 1), d(2026, 1, 1)).is_empty());
        // Property: contiguous, non-overlapping, each within a month, covering the range.
        let (from, to) = (d(2023, 1, 31), d(2026, 7, 4));
        let w = month_windows(from, to);
        assert_eq!(w.first().unwrap().0, from);
        assert_eq!(w.last().unwrap().1, to);
        for pair in w.windows(2) {
            assert_eq!(pair[0].1.succ_opt().unwrap(), pair[1].0);
        }
        for (a, b) in &w {
            assert!(a <= b);
            assert!(*b < a.checked_add_months(Months::new(1)).unwrap());
            assert!((*b - *a).num_days() <= 30);
        }
    }

    #[test]
    fn create_body_defaults_cloud_recording() {
        let mut settings = Map::new();
        settings.insert("join_before_host".into(), Value::Bool(true));
        let c = CreateMeeting {
            topic: "Weekly".into(),
            start: MeetingStart::Utc {
                at: Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap(),
                timezone: None,
            },
            duration_minutes: 45,
            agenda: Some("Status".into()),
            settings,
        };
        let b = c.to_body().unwrap();
        assert_eq!(b["type"], 2);
        assert_eq!(b["start_time"], "2026-03-02T08:00:00Z");
        assert!(b.get("timezone").is_none());
        assert_eq!(b["duration"], 45);
        assert_eq!(b["settings"]["auto_recording"], "cloud");
        assert_eq!(b["settings"]["join_before_host"], true);

        let mut c2 = c.clone();
        c2.settings
            .insert("auto_recording".into(), Value::from("none"));
        c2.start = MeetingStart::Utc {
            at: Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap(),
            timezone: Some("Europe/Berlin".into()),
        };
        let b2 = c2.to_body().unwrap();
        assert_eq!(b2["settings"]["auto_recording"], "none");
        // The zone only labels the meeting; the instant stays UTC.
        assert_eq!(b2["start_time"], "2026-03-02T08:00:00Z");
        assert_eq!(b2["timezone"], "Europe/Berlin");
    }

    #[test]
    fn limits_are_checked() {
        let mut c = CreateMeeting {
            topic: "x".repeat(201),
            start: MeetingStart::Utc {
                at: Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap(),
                timezone: None,
            },
            duration_minutes: 45,
            agenda: None,
            settings: Map::new(),
        };
        assert!(c.to_body().unwrap_err().contains("topic"));
        c.topic = "ok".into();
        c.duration_minutes = 0;
        assert!(c.to_body().unwrap_err().contains("duration"));
        c.duration_minutes = 1441;
        assert!(c.to_body().is_err());
        c.duration_minutes = 1440;
        c.agenda = Some("a".repeat(2001));
        assert!(c.to_body().unwrap_err().contains("agenda"));
        assert!(MeetingPatch::default().to_body().is_err());
        let p = MeetingPatch {
            duration_minutes: Some(30),
            ..Default::default()
        };
        assert_eq!(p.to_body().unwrap(), serde_json::json!({"duration": 30}));
        let p = MeetingPatch {
            start: Some(MeetingStart::Utc {
                at: Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap(),
                timezone: Some("Europe/Berlin".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            p.to_body().unwrap(),
            serde_json::json!({"start_time": "2026-03-02T08:00:00Z", "timezone": "Europe/Berlin"})
        );
    }

    #[test]
    fn parses_spec_meeting_example() {
        let j = r#"{"assistant_id":"kFFvsJc-Q1OSxaJQLvaa_A","host_email":"jchill@example.com","host_id":"30R7kT7bTIKSNUFEuH_Qlg","id":92674392836,"uuid":"aDYlohsHRtCd4ii1uC2+hA==","agenda":"My Meeting","created_at":"2022-03-25T07:29:29Z","duration":60,"join_url":"https://example.com/j/11111","occurrences":[{"duration":60,"occurrence_id":"1648194360000","start_time":"2022-03-25T07:46:00Z","status":"available"}],"password":"123456","pmi":"97891943927","settings":{"auto_recording":"cloud","join_before_host":true},"start_time":"2022-03-25T07:29:29Z","start_url":"https://example.com/s/11111","status":"waiting","timezone":"America/Los_Angeles","topic":"My Meeting","type":2,"creation_source":"open_api"}"#;
        let m: Meeting = serde_json::from_str(j).unwrap();
        assert_eq!(m.id, 92674392836);
        assert_eq!(m.meeting_type, Some(2));
        assert_eq!(
            m.start_time,
            Some(Utc.with_ymd_and_hms(2022, 3, 25, 7, 29, 29).unwrap())
        );
        assert_eq!(m.settings.unwrap()["auto_recording"], "cloud");
    }

    #[test]
    fn parses_spec_recording_example_and_loose_files() {
        let j = r#"{"account_id":"Cx3wERazSgup7ZWRHQM8-w","duration":20,"host_id":"_0ctZtY0REqWalTmwvrdIw","id":6840331990,"recording_count":22,"start_time":"2021-03-18T05:41:36Z","topic":"My Personal Meeting","total_size":22,"type":"1","uuid":"BOKXuumlTAGXuqwr3bLyuQ==","recording_play_passcode":"x","auto_delete":true,
          "recording_files":[
            {"deleted_time":"2021-03-18T05:41:36Z","download_url":"https://example.com/rec/download/Qg75t7xZBtEbAkjdlgbfdngBBBB","file_path":"/9090876528/path01/demo.mp4","file_size":7220,"file_type":"MP4","file_extension":"M4A","id":"72576a1f-4e66-4a77-87c4-f13f9808bd76","meeting_id":"L0AGOEPVR9m5WSOOs/d+FQ==","play_url":"https://example.com/rec/play/Qg75t7xZBtEbAkjdlgbfdngBBBB","recording_end":"2021-03-18T05:41:36Z","recording_start":"2021-03-18T05:41:36Z","recording_type":"shared_screen_with_speaker_view","status":"completed"},
            {"file_type":"CC","file_extension":"VTT","download_url":"https://example.com/rec/download/cc","recording_type":"closed_caption","recording_start":"garbage"},
            {"file_type":"TIMELINE","download_url":"https://example.com/rec/download/tl","file_size":12.0},
            {"id":"t1","file_type":"TRANSCRIPT","status":"processing"}
          ],
          "participant_audio_files":[{"id":"p1"}],"download_access_token":"abc"}"#;
        let r: MeetingRecordings = serde_json::from_str(j).unwrap();
        r.check().unwrap();
        assert_eq!(r.id, Some(6840331990));
        assert_eq!(r.meeting_type.as_deref(), Some("1"));
        assert_eq!(r.recording_files.len(), 4);
        let f = &r.recording_files;
        assert_eq!(f[0].file_size, Some(7220));
        assert!(f[0].is_ready());
        assert_eq!(f[1].id, None);
        assert_eq!(f[1].recording_start, None);
        assert!(f[1].is_ready());
        assert_eq!(f[2].file_size, Some(12));
        assert!(!f[3].is_ready());

        // Numeric type accepted too.
        let r2: MeetingRecordings = serde_json::from_str(r#"{"uuid":"u","type":2}"#).unwrap();
        assert_eq!(r2.meeting_type.as_deref(), Some("2"));

        // Completed without download_url: a parse error.
        let bad: MeetingRecordings = serde_json::from_str(
            r#"{"uuid":"u","recording_files":[{"id":"a","status":"completed","file_type":"MP4"}]}"#,
        )
        .unwrap();
        assert!(bad.check().is_err());
        // A negative size is an error, not a wrap-around.
        assert!(serde_json::from_str::<RecordingFile>(r#"{"file_size":-1}"#).is_err());
    }

    #[test]
    fn parses_list_pages() {
        let p: Page<Meeting> = serde_json::from_str(
            r#"{"next_page_token":"Tva2","page_count":1,"page_number":1,"page_size":30,"total_records":1,
               "meetings":[{"agenda":"My Meeting","created_at":"2022-03-23T05:31:16Z","duration":60,"host_id":"30R7kT7bTIKSNUFEuH_Qlg","id":97763643886,"join_url":"https://example.com/j/11111","pmi":"97891943927","start_time":"2022-03-23T06:00:00Z","timezone":"America/Los_Angeles","topic":"My Meeting","type":2,"uuid":"aDYlohsHRtCd4ii1uC2+hA=="}]}"#,
        )
        .unwrap();
        assert_eq!(p.meetings[0].id, 97763643886);
        assert_eq!(p.next_page_token.as_deref(), Some("Tva2"));
        let empty: Page<Meeting> = serde_json::from_str("{}").unwrap();
        assert!(empty.meetings.is_empty());
        let inst: Instances = serde_json::from_str(
            r#"{"meetings":[{"start_time":"2022-03-26T05:37:59Z","uuid":"Vg8IdgluR5WDeWIkpJlElQ=="}]}"#,
        )
        .unwrap();
        assert_eq!(inst.meetings[0].uuid, "Vg8IdgluR5WDeWIkpJlElQ==");
    }
}
