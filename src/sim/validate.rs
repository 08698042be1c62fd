//! Checks meeting create/update bodies the way Zoom does: 400 code 300 with the field.
//!
//! Unknown top-level fields and unknown settings are ignored (Zoom drops them); known
//! ones must have the right JSON type, range and enum value.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::api::{ApiError, ApiResult};

/// The fields of a create or update body that the sim uses, all validated.
#[derive(Debug, Default, Clone)]
pub(crate) struct MeetingInput {
    pub topic: Option<String>,
    pub mtype: Option<u8>,
    pub start_time: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    pub duration: Option<u32>,
    pub agenda: Option<String>,
    pub password: Option<String>,
    pub settings: Option<Map<String, Value>>,
}

const BOOL_SETTINGS: &[&str] = &[
    "allow_host_control_participant_mute_state",
    "allow_multiple_devices",
    "alternative_host_manage_cloud_recording",
    "alternative_host_manage_meeting_summary",
    "alternative_host_update_polls",
    "alternative_hosts_email_notification",
    "auto_start_ai_companion_questions",
    "auto_start_meeting_summary",
    "close_registration",
    "cn_meeting",
    "device_testing",
    "disable_participant_video",
    "email_in_attendee_report",
    "email_notification",
    "enforce_login",
    "focus_mode",
    "host_save_video_order",
    "host_video",
    "in_meeting",
    "internal_meeting",
    "join_before_host",
    "meeting_authentication",
    "mute_upon_entry",
    "participant_focused_meeting",
    "participant_video",
    "private_meeting",
    "push_change_to_calendar",
    "registrants_confirmation_email",
    "registrants_email_notification",
    "request_permission_to_unmute_participants",
    "show_join_info",
    "show_share_button",
    "use_pmi",
    "waiting_room",
    "watermark",
];

const STRING_ENUM_SETTINGS: &[(&str, &[&str])] = &[
    ("auto_recording", &["local", "cloud", "none"]),
    ("audio", &["both", "telephony", "voip", "thirdParty"]),
    ("encryption_type", &["enhanced_encryption", "e2ee"]),
];

const INT_ENUM_SETTINGS: &[(&str, &[i64])] = &[
    ("approval_type", &[0, 1, 2]),
    ("registration_type", &[1, 2, 3]),
    ("jbh_time", &[0, 5, 10, 15]),
    ("calendar_type", &[1, 2]),
    ("who_will_receive_summary", &[1, 2, 3, 4]),
    ("who_can_ask_questions", &[1, 2, 3, 4, 5]),
];

const STRING_SETTINGS: &[(&str, usize)] = &[
    ("alternative_hosts", 1024),
    ("audio_conference_info", 2048),
    ("authentication_domains", 1024),
    ("authentication_option", 256),
    ("contact_email", 256),
    ("contact_name", 256),
    ("enforce_login_domains", 1024),
    ("summary_template_id", 256),
];

const OBJECT_SETTINGS: &[&str] = &[
    "approved_or_denied_countries_or_regions",
    "auto_add_recording_to_video_management",
    "breakout_room",
    "continuous_meeting_chat",
    "language_interpretation",
    "question_and_answer",
    "sign_language_interpretation",
    "waiting_room_options",
];

const ARRAY_SETTINGS: &[&str] = &[
    "additional_data_center_regions",
    "authentication_exception",
    "global_dial_in_countries",
    "meeting_invitees",
    "resources",
];

/// Parses and checks a create (`creating`) or update body. `fallback_tz` is the zone for a
/// local `start_time` when the body has no `timezone` (the user's zone on create, the
/// meeting's on update).
pub(crate) fn parse_meeting(
    body: &Value,
    fallback_tz: &str,
    creating: bool,
) -> ApiResult<MeetingInput> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Request Body should be a valid JSON object."))?;
    let mut input = MeetingInput::default();

    if let Some(v) = present(obj, "topic") {
        let s = as_str(v, "topic")?;
        if s.chars().count() > 200 {
            return Err(ApiError::invalid(
                "topic",
                "The topic may not be longer than 200 characters.",
            ));
        }
        input.topic = Some(s.to_string());
    }
    if let Some(v) = present(obj, "type") {
        let t = v
            .as_i64()
            .ok_or_else(|| ApiError::invalid("type", "Invalid field."))?;
        if t != 2 {
            // Instant (1), recurring (3, 8) and screen-share-only (10) meetings are not
            // simulated: refusing them keeps a client from relying on them unnoticed.
            return Err(ApiError::invalid(
                "type",
                format!("Meeting type {t} is not supported; only 2 (scheduled)."),
            ));
        }
        input.mtype = Some(2);
    }
    if let Some(v) = present(obj, "timezone") {
        let s = as_str(v, "timezone")?;
        if Tz::from_str(s).is_err() {
            return Err(ApiError::invalid(
                "timezone",
                format!("Invalid timezone: {s}"),
            ));
        }
        input.timezone = Some(s.to_string());
    }
    if let Some(v) = present(obj, "start_time") {
        let s = as_str(v, "start_time")?;
        let zone = input.timezone.as_deref().unwrap_or(fallback_tz);
        input.start_time = Some(parse_start_time(s, zone)?);
    } else if creating {
        // Zoom would use "now"; zoomd always sends a time, so a missing one is a bug.
        return Err(ApiError::invalid(
            "start_time",
            "start_time is required for a scheduled meeting.",
        ));
    }
    if let Some(v) = present(obj, "duration") {
        let d = v
            .as_i64()
            .ok_or_else(|| ApiError::invalid("duration", "Invalid field."))?;
        if !(1..=1440).contains(&d) {
            return Err(ApiError::invalid(
                "duration",
                "Duration must be between 1 and 1440 minutes.",
            ));
        }
        input.duration = Some(d as u32);
    }
    if let Some(v) = present(obj, "agenda") {
        let s = as_str(v, "agenda")?;
        if s.chars().count() > 2000 {
            return Err(ApiError::invalid(
                "agenda",
                "The agenda may not be longer than 2000 characters.",
            ));
        }
        input.agenda = Some(s.to_string());
    }
    if let Some(v) = present(obj, "password") {
        let s = as_str(v, "password")?;
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@-_*".contains(c));
        if s.len() > 10 || !ok_chars {
            return Err(ApiError::invalid("password", "Invalid password."));
        }
        input.password = Some(s.to_string());
    }
    if let Some(v) = present(obj, "settings") {
        let m = v
            .as_object()
            .ok_or_else(|| ApiError::invalid("settings", "Invalid field."))?;
        input.settings = Some(check_settings(m)?);
    }
    Ok(input)
}

/// A field that is there and not `null` (Zoom treats `null` as absent).
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn as_str<'a>(v: &'a Value, field: &str) -> ApiResult<&'a str> {
    v.as_str()
        .ok_or_else(|| ApiError::invalid(field, "Invalid field."))
}

/// `yyyy-MM-ddTHH:mm:ssZ` (UTC) or `yyyy-MM-ddTHH:mm:ss` local in `zone`.
pub(crate) fn parse_start_time(s: &str, zone: &str) -> ApiResult<DateTime<Utc>> {
    let bad = || {
        ApiError::invalid(
            "start_time",
            format!("Invalid start_time {s:?}: use yyyy-MM-ddTHH:mm:ssZ or yyyy-MM-ddTHH:mm:ss."),
        )
    };
    let (local, utc) = match s.strip_suffix('Z') {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    // chrono accepts unpadded numbers; Zoom's format does not.
    let shape_ok = local.len() == 19
        && local.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(bad());
    }
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S").map_err(|_| bad())?;
    if utc {
        return Ok(naive.and_utc());
    }
    let tz = Tz::from_str(zone)
        .map_err(|_| ApiError::invalid("timezone", format!("Invalid timezone: {zone}")))?;
    // A time in a DST gap is moved forward by the gap; one in a fold takes the earlier
    // instant (what Zoom's web portal does).
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, _) => Ok(a.with_timezone(&Utc)),
        LocalResult::None => {
            let shifted = naive + chrono::TimeDelta::hours(1);
            tz.from_local_datetime(&shifted)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(bad)
        }
    }
}

fn check_settings(m: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    for (key, v) in m {
        if v.is_null() {
            continue;
        }
        let field = format!("settings.{key}");
        let k = key.as_str();
        if BOOL_SETTINGS.contains(&k) {
            if !v.is_boolean() {
                return Err(ApiError::invalid(&field, "Invalid field."));
            }
        } else if let Some((_, allowed)) = STRING_ENUM_SETTINGS.iter().find(|(n, _)| *n == k) {
            let s = as_str(v, &field)?;
            if !allowed.contains(&s) {
                return Err(ApiError::invalid(
                    &field,
                    format!(
                        "Invalid value {s:?}; expected one of {}.",
                        allowed.join(", ")
                    ),
                ));
            }
        } else if let Some((_, allowed)) = INT_ENUM_SETTINGS.iter().find(|(n, _)| *n == k) {
            let ok = v.as_i64().is_some_and(|i| allowed.contains(&i));
            if !ok {
                return Err(ApiError::invalid(&field, "Invalid field."));
            }
        } else if let Some((_, max)) = STRING_SETTINGS.iter().find(|(n, _)| *n == k) {
            let s = as_str(v, &field)?;
            if s.chars().count() > *max {
                return Err(ApiError::invalid(&field, "Value too long."));
            }
        } else if OBJECT_SETTINGS.contains(&k) {
            if !v.is_object() {
                return Err(ApiError::invalid(&field, "Invalid field."));
            }
        } else if ARRAY_SETTINGS.contains(&k) {
            if !v.is_array() {
                return Err(ApiError::invalid(&field, "Invalid field."));
            }
        } else {
            continue; // unknown: ignored, as Zoom does
        }
        out.insert(key.clone(), v.clone());
    }
    Ok(out)
}

/// The settings object Zoom answers with when the request set nothing.
pub(crate) fn default_settings() -> Map<String, Value> {
    let v = serde_json::json!({
        "host_video": false,
        "participant_video": false,
        "cn_meeting": false,
        "in_meeting": false,
        "join_before_host": false,
        "jbh_time": 0,
        "mute_upon_entry": false,
        "watermark": false,
        "use_pmi": false,
        "approval_type": 2,
        "audio": "voip",
        "auto_recording": "none",
        "enforce_login": false,
        "enforce_login_domains": "",
        "alternative_hosts": "",
        "alternative_hosts_email_notification": true,
        "close_registration": false,
        "show_share_button": false,
        "allow_multiple_devices": false,
        "registrants_confirmation_email": true,
        "waiting_room": false,
        "registrants_email_notification": true,
        "meeting_authentication": false,
        "encryption_type": "enhanced_encryption",
        "approved_or_denied_countries_or_regions": {"enable": false},
        "breakout_room": {"enable": false},
        "internal_meeting": false,
        "continuous_meeting_chat": {"enable": false},
        "participant_focused_meeting": false,
        "push_change_to_calendar": false,
        "email_notification": true,
        "host_save_video_order": false,
        "device_testing": false,
        "focus_mode": false,
        "private_meeting": false,
        "email_in_attendee_report": false
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_forms() {
        let utc = parse_start_time("2026-03-02T09:00:00Z", "UTC").ok();
        assert_eq!(
            utc.map(|t| t.to_rfc3339()),
            Some("2026-03-02T09:00:00+00:00".into())
        );
        let berlin = parse_start_time("2026-03-02T09:00:00", "Europe/Berlin").ok();
        assert_eq!(
            berlin.map(|t| t.to_rfc3339()),
            Some("2026-03-02T08:00:00+00:00".into())
        );
        for bad in [
            "2026-3-02T09:00:00Z",
            "2026-03-02 09:00:00",
            "2026-03-02T09:00Z",
            "2026-03-02T09:00:00+01:00",
            "2026-03-02T09:00:00.000Z",
            "2026-02-30T09:00:00Z",
            "",
        ] {
            assert!(parse_start_time(bad, "UTC").is_err(), "{bad}");
        }
        assert!(parse_start_time("2026-03-02T09:00:00", "Mars/Olympus").is_err());
    }
}
