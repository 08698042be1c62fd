//! Shared by the benches: generated schedules (the same entries for `check`, the schedule
//! engine and the idle daemon).
#![allow(dead_code)]

use chrono::{DateTime, Datelike, Utc};

/// Zones the generated entries cycle through (both hemispheres, half-hour offsets, no DST).
pub const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Europe/London",
];

/// Cron shapes the generated entries cycle through (`{m}` minute, `{h}` hour).
const CRONS: &[&str] = &[
    "{m} {h} * * Mon",
    "{m} {h} * * Mon-Fri",
    "{m} {h} 1 * *",
    "{m} {h} * * Tue#2",
    "{m} {h} L * *",
    "{m} {h} * * Wed,Fri",
    "{m} {h} 15W * *",
    "{m} {h} */2 * *",
];

/// The `[zoom]` section every generated config starts with (credentials come from the
/// environment or are missing, which `check` only warns about).
pub fn zoom_section(api_url: &str, oauth_url: &str) -> String {
    format!(
        "[zoom]\nauth = \"oauth\"\naccount_id = \"sim-account-Cx3wERazSgup7Z\"\nclient_id = \"sim-client-id\"\napi_url = \"{api_url}\"\noauth_url = \"{oauth_url}\"\n"
    )
}

/// `n` `[[meeting]]` entries of mixed cron shapes and zones.
pub fn mixed_entries(n: usize) -> String {
    let mut out = String::with_capacity(n * 120);
    for i in 0..n {
        let cron = CRONS[i % CRONS.len()]
            .replace("{m}", &((i * 5) % 60).to_string())
            .replace("{h}", &(6 + i % 14).to_string());
        let zone = ZONES[(i / CRONS.len()) % ZONES.len()];
        out.push_str(&format!(
            "[[meeting]]\nkey = \"m{i:05}\"\ntopic = \"Meeting {i}\"\nhost = \"me\"\ncron = \"{cron}\"\ntimezone = \"{zone}\"\nduration = \"45m\"\n\n"
        ));
    }
    out
}

/// `n` weekly entries, none of them on the UTC weekday before, of or after `now` (so with
/// any zone offset and a short `create_ahead` nothing is due for a day).
pub fn quiet_entries(n: usize, now: DateTime<Utc>) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let today = now.weekday().num_days_from_monday() as usize;
    let allowed: Vec<&str> = (0..7)
        .filter(|d| ![(today + 6) % 7, today, (today + 1) % 7].contains(d))
        .map(|d| DAYS[d])
        .collect();
    let mut out = String::with_capacity(n * 120);
    for i in 0..n {
        let day = allowed[i % allowed.len()];
        let zone = ZONES[i % ZONES.len()];
        out.push_str(&format!(
            "[[meeting]]\nkey = \"q{i:05}\"\ntopic = \"Quiet {i}\"\nhost = \"me\"\ncron = \"{} {} * * {day}\"\ntimezone = \"{zone}\"\nduration = \"1h\"\n\n",
            (i * 5) % 60,
            8 + i % 10
        ));
    }
    out
}

/// Median of a non-empty sample (mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
