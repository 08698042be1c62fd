//! The schedule engine with fixed instants: DST in both directions, gaps, folds, seconds,
//! skips, one-offs and year boundaries. No clock is read.

use std::path::Path;

use chrono::{DateTime, Utc};
use zoomd::config::{Config, Env, MeetingEntry};
use zoomd::schedule::{self, DstNote};

fn entry(when: &str, tz: &str, extra: &str) -> MeetingEntry {
    let text = format!(
        "[zoom]\naccount_id = \"a\"\nclient_id = \"c\"\n[[meeting]]\nkey = \"k\"\ntopic = \"T\"\nhost = \"me\"\n{when}\ntimezone = \"{tz}\"\nduration = \"30m\"\n{extra}\n"
    );
    let mut c = Config::parse(&text, Path::new("daemon.toml"), &Env::default())
        .unwrap_or_else(|e| panic!("{e}"));
    c.meetings.remove(0)
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn starts(e: &MeetingEntry, from: &str, to: &str) -> Vec<String> {
    schedule::occurrences(std::slice::from_ref(e), t(from), t(to))
        .iter()
        .map(|o| o.start.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn weekdays_in_berlin_across_spring_forward() {
    let e = entry("cron = \"0 9 * * Mon-Fri\"", "Europe/Berlin", "");
    // 2026-03-29 (Sunday) clocks go from CET (+1) to CEST (+2).
    assert_eq!(
        starts(&e, "2026-03-26T00:00:00Z", "2026-04-01T00:00:00Z"),
        [
            "2026-03-26T08:00:00Z",
            "2026-03-27T08:00:00Z",
            "2026-03-30T07:00:00Z",
            "2026-03-31T07:00:00Z"
        ]
    );
}

#[test]
fn weekdays_in_berlin_across_fall_back() {
    let e = entry("cron = \"0 9 * * Mon-Fri\"", "Europe/Berlin", "");
    // 2026-10-25 (Sunday) clocks go back from CEST to CET.
    let got = schedule::occurrences(
        std::slice::from_ref(&e),
        t("2026-10-22T00:00:00Z"),
        t("2026-10-28T00:00:00Z"),
    );
    let utc: Vec<_> = got.iter().map(|o| o.start.to_rfc3339()).collect();
    assert_eq!(
        utc,
        [
            "2026-10-22T07:00:00+00:00",
            "2026-10-23T07:00:00+00:00",
            "2026-10-26T08:00:00+00:00",
            "2026-10-27T08:00:00+00:00"
        ]
    );
    // The local time stays 09:00 on every day.
    assert!(
        got.iter()
            .all(|o| o.local.format("%H:%M").to_string() == "09:00")
    );
    assert!(got.iter().all(|o| o.dst.is_none()));
}

#[test]
fn new_york_0230_in_the_spring_forward_gap_runs_at_0300() {
    let e = entry("cron = \"30 2 * * *\"", "America/New_York", "");
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
    let got = schedule::occurrences(
        std::slice::from_ref(&e),
        t("2026-03-07T00:00:00Z"),
        t("2026-03-10T00:00:00Z"),
    );
    let utc: Vec<_> = got
        .iter()
        .map(|o| o.start.format("%m-%dT%H:%M").to_string())
        .collect();
    assert_eq!(utc, ["03-07T07:30", "03-08T07:00", "03-09T06:30"]);
    assert_eq!(got[1].local.format("%H:%M %Z").to_string(), "03:00 EDT");
    assert!(matches!(got[1].dst, Some(DstNote::Gap { .. })));
    assert!(got[0].dst.is_none() && got[2].dst.is_none());
}

#[test]
fn gap_occurrence_is_found_when_the_window_starts_at_the_gap_end() {
    let e = entry("cron = \"30 2 * * *\"", "America/New_York", "");
    // 07:00Z is 03:00 EDT, the first instant after the gap: the moved 02:30 is due then.
    assert_eq!(
        starts(&e, "2026-03-08T07:00:00Z", "2026-03-08T07:00:01Z"),
        ["2026-03-08T07:00:00Z"]
    );
    assert!(starts(&e, "2026-03-08T07:00:01Z", "2026-03-09T06:00:00Z").is_empty());
}

#[test]
fn gap_times_that_collapse_onto_one_instant_run_once() {
    // Every 15 minutes: 02:00, 02:15, 02:30, 02:45 all land on 03:00 EDT, as does 03:00.
    let e = entry("cron = \"*/15 * * * *\"", "America/New_York", "");
    assert_eq!(
        starts(&e, "2026-03-08T06:30:00Z", "2026-03-08T07:20:00Z"),
        [
            "2026-03-08T06:30:00Z",
            "2026-03-08T06:45:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:15:00Z"
        ]
    );
}

#[test]
fn new_york_0130_in_the_fall_back_fold_runs_once_at_the_first() {
    let e = entry("cron = \"30 1 * * *\"", "America/New_York", "");
    // 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:30 happens twice.
    let got = schedule::occurrences(
        std::slice::from_ref(&e),
        t("2026-10-31T00:00:00Z"),
        t("2026-11-03T00:00:00Z"),
    );
    let utc: Vec<_> = got
        .iter()
        .map(|o| o.start.format("%m-%dT%H:%M").to_string())
        .collect();
    assert_eq!(utc, ["10-31T05:30", "11-01T05:30", "11-02T06:30"]);
    assert_eq!(got[1].local.format("%H:%M %Z").to_string(), "01:30 EDT");
    assert!(matches!(got[1].dst, Some(DstNote::Fold { .. })));
}

#[test]
fn every_30_minutes_does_not_repeat_the_folded_hour() {
    let e = entry("cron = \"*/30 1 * * *\"", "America/New_York", "");
    assert_eq!(
        starts(&e, "2026-11-01T00:00:00Z", "2026-11-01T12:00:00Z"),
        ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"]
    );
}

#[test]
fn six_fields_every_ten_seconds() {
    let e = entry("cron = \"*/10 * * * * *\"", "UTC", "");
    assert_eq!(
        starts(&e, "2026-06-01T12:00:05Z", "2026-06-01T12:00:45Z"),
        [
            "2026-06-01T12:00:10Z",
            "2026-06-01T12:00:20Z",
            "2026-06-01T12:00:30Z",
            "2026-06-01T12:00:40Z"
        ]
    );
}

#[test]
fn window_is_half_open() {
    let e = entry("cron = \"0 9 * * *\"", "UTC", "");
    assert_eq!(
        starts(&e, "2026-06-01T09:00:00Z", "2026-06-03T09:00:00Z"),
        ["2026-06-01T09:00:00Z", "2026-06-02T09:00:00Z"]
    );
}

#[test]
fn skip_dates_across_the_year_boundary() {
    let e = entry(
        "cron = \"0 9 * * Mon\"",
        "Europe/Berlin",
        "skip = [\"2026-12-28\", \"2027-01-11\"]",
    );
    assert_eq!(
        starts(&e, "2026-12-20T00:00:00Z", "2027-01-20T00:00:00Z"),
        [
            "2026-12-21T08:00:00Z",
            "2027-01-04T08:00:00Z",
            "2027-01-18T08:00:00Z"
        ]
    );
}

#[test]
fn skip_uses_the_local_date_not_the_utc_date() {
    // 00:30 in Auckland on 2027-01-01 is 11:30 UTC on 2026-12-31.
    let e = entry(
        "cron = \"30 0 * * *\"",
        "Pacific/Auckland",
        "skip = [\"2027-01-01\"]",
    );
    assert_eq!(
        starts(&e, "2026-12-30T00:00:00Z", "2027-01-02T00:00:00Z"),
        ["2026-12-30T11:30:00Z", "2027-01-01T11:30:00Z"]
    );
}

#[test]
fn new_year_in_a_six_field_expression() {
    let e = entry("cron = \"0 0 0 1 1 *\"", "Asia/Tokyo", "");
    assert_eq!(
        starts(&e, "2026-06-01T00:00:00Z", "2028-06-01T00:00:00Z"),
        ["2026-12-31T15:00:00Z", "2027-12-31T15:00:00Z"]
    );
}

#[test]
fn day_of_month_or_day_of_week_like_vixie_cron() {
    // Both restricted: the 13th OR any Friday.
    let e = entry("cron = \"0 12 13 * Fri\"", "UTC", "");
    assert_eq!(
        starts(&e, "2026-11-09T00:00:00Z", "2026-11-28T00:00:00Z"),
        [
            "2026-11-13T12:00:00Z",
            "2026-11-20T12:00:00Z",
            "2026-11-27T12:00:00Z"
        ]
    );
}

#[test]
fn one_off_at_local_time() {
    let e = entry("at = \"2027-01-19T14:00\"", "America/New_York", "");
    assert_eq!(
        starts(&e, "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
        ["2027-01-19T19:00:00Z"]
    );
    assert!(starts(&e, "2027-01-19T19:00:01Z", "2027-02-01T00:00:00Z").is_empty());
}

#[test]
fn one_off_in_a_fold_runs_at_the_first() {
    let e = entry("at = \"2026-11-01T01:30\"", "America/New_York", "");
    assert_eq!(
        starts(&e, "2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ["2026-11-01T05:30:00Z"]
    );
}

#[test]
fn entries_merge_sorted_by_instant() {
    let a = entry("cron = \"0 10 * * *\"", "UTC", "");
    let mut b = entry("cron = \"0 9 * * *\"", "UTC", "");
    b.key = "b".into();
    let got = schedule::occurrences(
        &[a, b],
        t("2026-06-01T00:00:00Z"),
        t("2026-06-02T00:00:00Z"),
    );
    let keys: Vec<_> = got
        .iter()
        .map(|o| (o.key.as_str(), o.start.format("%H").to_string()))
        .collect();
    assert_eq!(keys, [("b", "09".to_string()), ("k", "10".to_string())]);
}

#[test]
fn next_n_is_lazy_and_exact() {
    let e = entry("cron = \"0 9 * * Mon\"", "Europe/Berlin", "");
    let got = schedule::next(&e, t("2026-11-28T00:00:00Z"), 3);
    let local: Vec<_> = got
        .iter()
        .map(|o| o.local.format("%Y-%m-%d %H:%M %Z").to_string())
        .collect();
    assert_eq!(
        local,
        [
            "2026-11-30 09:00 CET",
            "2026-12-07 09:00 CET",
            "2026-12-14 09:00 CET"
        ]
    );
}
