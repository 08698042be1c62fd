//! `zoomd calendar` through the real binary, after `zoomd sync` against the simulated Zoom:
//! the feed is read back with the `icalendar` crate's parser and compared with the database
//! and the sim.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use zoomd::sim::{Sim, SimConfig};
use zoomd::store::{OccurrenceFilter, OccurrenceRow, OccurrenceState, Period, Store};

use crate::helpers::{DaemonToml, Entry, now_whole_second, spawn_sim, text, zoomd};

const NEW_YORK: Tz = chrono_tz::America::New_York;
const TOKYO: Tz = chrono_tz::Asia::Tokyo;

// ---------------------------------------------------------------------------------------------
// the feed, parsed

#[derive(Debug, Clone)]
struct Prop {
    name: String,
    params: Vec<(String, Option<String>)>,
    /// As written (escapes kept).
    raw: String,
    /// Unescaped as TEXT.
    text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Comp {
    name: String,
    props: Vec<Prop>,
    comps: Vec<Comp>,
}

impl Comp {
    fn of(c: &icalendar::parser::Component<'_>) -> Comp {
        Comp {
            name: c.name.as_str().to_string(),
            props: c
                .properties
                .iter()
                .map(|p| Prop {
                    name: p.name.as_str().to_string(),
                    params: p
                        .params
                        .iter()
                        .map(|q| {
                            (
                                q.key.as_str().to_string(),
                                q.val.as_ref().map(|v| v.as_str().to_string()),
                            )
                        })
                        .collect(),
                    raw: p.val.as_str().to_string(),
                    text: p.val.clone().unescape_text().as_str().to_string(),
                })
                .collect(),
            comps: c.components.iter().map(Comp::of).collect(),
        }
    }

    fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }

    /// The TEXT value of `name`; the test fails when it is missing.
    pub(crate) fn text(&self, name: &str) -> &str {
        &self
            .prop(name)
            .unwrap_or_else(|| panic!("{} has no {name}: {self:?}", self.name))
            .text
    }

    pub(crate) fn children(&self, name: &str) -> Vec<&Comp> {
        self.comps.iter().filter(|c| c.name == name).collect()
    }
}

impl Prop {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Parses a feed, after checking what the parser forgives: CRLF everywhere, no line longer
/// than 75 octets.
pub(crate) fn parse(ics: &str) -> Comp {
    assert!(ics.ends_with("\r\n"), "{ics}");
    for line in ics.split("\r\n") {
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "bare line break: {line:?}"
        );
        assert!(line.len() <= 75, "{} octets: {line}", line.len());
    }
    let unfolded = icalendar::parser::unfold(ics);
    let cal = icalendar::parser::read_components(&unfolded)
        .unwrap_or_else(|e| panic!("not iCalendar: {e}\n{ics}"));
    assert_eq!(cal.len(), 1, "one VCALENDAR:\n{ics}");
    let cal = Comp::of(&cal[0]);
    assert_eq!(cal.name, "VCALENDAR");
    assert_eq!(cal.text("VERSION"), "2.0");
    assert_eq!(cal.text("PRODID"), "-//zoomd//calendar//EN");
    assert_eq!(cal.text("CALSCALE"), "GREGORIAN");
    // RFC 5545: every TZID an event names has its VTIMEZONE.
    let zones: BTreeSet<&str> = cal
        .children("VTIMEZONE")
        .iter()
        .map(|z| z.text("TZID"))
        .collect();
    for ev in cal.children("VEVENT") {
        for p in &ev.props {
            if let Some(tzid) = p.param("TZID") {
                assert!(
                    zones.contains(tzid),
                    "{} names {tzid}: no VTIMEZONE",
                    p.name
                );
            }
        }
    }
    cal
}

// ---------------------------------------------------------------------------------------------
// the setup: two entries, one in New York across its next DST change, one in Tokyo

/// The first instant at or after `from` (a whole hour) whose UTC offset in `tz` differs from
/// the hour before; New York changes on the hour.
fn next_offset_change(tz: Tz, from: DateTime<Utc>) -> DateTime<Utc> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut t = from;
    while offset(t) == offset(from) {
        t += Duration::hours(1);
        assert!(t - from < Duration::days(400), "no DST change in {tz}");
    }
    t
}

struct Setup {
    sim: Sim,
    dir: tempfile::TempDir,
    base: DaemonToml,
    /// The New York change the `ny` entry straddles.
    change: DateTime<Utc>,
    ny: Entry,
    tokyo_at: String,
}

impl Setup {
    async fn new() -> Setup {
        let sim = spawn_sim(SimConfig::default()).await;
        let now = now_whole_second();
        let hour = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let change = next_offset_change(NEW_YORK, hour + Duration::days(3));
        // 09:00 two days either side of the change, in New York's wall clock; a cron of
        // days × months may add a date or two, all before or after it.
        let local_day = change.with_timezone(&NEW_YORK).date_naive();
        let (before, after) = (local_day - Duration::days(2), local_day + Duration::days(2));
        let days: BTreeSet<String> = [before, after]
            .iter()
            .map(|d| d.format("%-d").to_string())
            .collect();
        let months: BTreeSet<String> = [before, after]
            .iter()
            .map(|d| d.format("%-m").to_string())
            .collect();
        let cron = format!(
            "0 9 {} {} *",
            days.into_iter().collect::<Vec<_>>().join(","),
            months.into_iter().collect::<Vec<_>>().join(",")
        );
        let ny = Entry::cron("ny", "New York, twice; sync", &cron)
            .timezone(Some("America/New_York"))
            .duration("45m");
        let tokyo_at = (now + Duration::days(2))
            .with_timezone(&TOKYO)
            .format("%Y-%m-%dT10:00")
            .to_string();
        let ahead = (after - now.date_naive()).num_days() + 2;
        let base = DaemonToml::new(&sim).set("create_ahead", &format!("\"{ahead}d\""));
        Setup {
            sim,
            dir: tempfile::tempdir().expect("tempdir"),
            base,
            change,
            ny,
            tokyo_at,
        }
    }

    fn tokyo(&self, topic: &str) -> Entry {
        Entry::at("tokyo", topic, &self.tokyo_at)
            .timezone(Some("Asia/Tokyo"))
            .duration("30m")
    }

    /// Writes daemon.toml with `entries` and runs `zoomd sync`.
    async fn sync(&self, entries: &[Entry]) {
        let toml: String = entries.iter().map(Entry::toml).collect();
        self.base.clone().meetings(&toml).write(self.dir.path());
        let out = self.run(&["sync"]).await;
        assert!(out.status.success(), "sync: {}", text(&out));
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("daemon.toml")
    }

    async fn run(&self, args: &[&str]) -> Output {
        run(&self.config(), args, &self.base.env()).await
    }

    /// `zoomd calendar <args>`: it must succeed; its stdout parsed.
    async fn calendar(&self, args: &[&str]) -> (String, Comp) {
        let mut all = vec!["calendar"];
        all.extend(args);
        let out = self.run(&all).await;
        assert!(out.status.success(), "{all:?}: {}", text(&out));
        let ics = String::from_utf8(out.stdout).expect("UTF-8");
        let cal = parse(&ics);
        (ics, cal)
    }

    /// The upcoming occurrences as the database holds them.
    async fn rows(&self) -> Vec<OccurrenceRow> {
        let store = Store::open_read_only(&self.dir.path().join("state.db"))
            .await
            .expect("database");
        let filter = OccurrenceFilter {
            when: Some(Period::Upcoming),
            key: None,
        };
        let rows = store
            .list_occurrences(&filter, Utc::now())
            .await
            .expect("occurrences");
        store.close().await;
        rows
    }
}

async fn run(config: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut c = tokio::process::Command::from(zoomd());
    c.args(args).arg("--config").arg(config);
    for (k, v) in env {
        c.env(k, v);
    }
    c.kill_on_drop(true).output().await.expect("run zoomd")
}

/// The naive local time of a stored `start_local` (`2026-12-07T09:00:00+01:00`), as
/// iCalendar writes it.
fn local_stamp(start_local: &str) -> String {
    DateTime::parse_from_rfc3339(start_local)
        .unwrap_or_else(|e| panic!("start_local {start_local}: {e}"))
        .naive_local()
        .format("%Y%m%dT%H%M%S")
        .to_string()
}

fn events_by_uid(cal: &Comp) -> BTreeMap<String, Comp> {
    let events = cal.children("VEVENT");
    let by_uid: BTreeMap<String, Comp> = events
        .iter()
        .map(|e| (e.text("UID").to_string(), (*e).clone()))
        .collect();
    assert_eq!(by_uid.len(), events.len(), "UIDs are not unique");
    by_uid
}

// ---------------------------------------------------------------------------------------------
// the tests

#[tokio::test]
async fn each_created_meeting_is_an_event_at_its_local_time_with_its_join_url() {
    let s = Setup::new().await;
    s.sync(&[s.ny.clone(), s.tokyo("Tokyo, daily")]).await;
    let rows = s.rows().await;
    assert!(
        rows.iter()
            .all(|r| r.state == OccurrenceState::Created && r.join_url.is_some()),
        "{rows:?}"
    );
    let ny: Vec<&OccurrenceRow> = rows.iter().filter(|r| r.key == "ny").collect();
    assert!(
        ny.iter().any(|r| r.start_utc < s.change) && ny.iter().any(|r| r.start_utc > s.change),
        "the ny entry must straddle the change at {}: {ny:?}",
        s.change
    );
    assert_eq!(rows.iter().filter(|r| r.key == "tokyo").count(), 1);

    let (_, cal) = s.calendar(&[]).await;
    assert_eq!(cal.text("X-WR-CALNAME"), "zoomd");
    let events = events_by_uid(&cal);
    assert_eq!(
        events.len(),
        rows.len(),
        "one event per meeting: {events:?}"
    );
    for row in &rows {
        let uid = zoomd::calendar::uid(row);
        let ev = events.get(&uid).unwrap_or_else(|| panic!("no event {uid}"));
        let url = row.join_url.as_deref().expect("join url");
        let meeting_id = row.meeting_id.expect("meeting id");
        let at_zoom = s.sim.meeting(meeting_id).expect("the sim's meeting");
        assert!(!at_zoom.deleted);
        assert_eq!(at_zoom.start_time, row.start_utc);
        assert!(url.contains(&format!("/j/{meeting_id}")), "{url}");
        assert_eq!(ev.text("URL"), url);
        assert_eq!(ev.text("LOCATION"), url);
        assert!(ev.text("DESCRIPTION").contains(url));
        assert!(ev.text("DESCRIPTION").contains(&meeting_id.to_string()));
        assert_eq!(ev.text("SUMMARY"), row.topic);
        assert_eq!(ev.text("STATUS"), "CONFIRMED");

        let start = ev.prop("DTSTART").expect("DTSTART");
        assert_eq!(start.param("TZID"), Some(row.timezone.name()), "{start:?}");
        assert_eq!(start.raw, local_stamp(&row.start_local), "{start:?}");
        let end = ev.prop("DTEND").expect("DTEND");
        assert_eq!(end.param("TZID"), Some(row.timezone.name()));
        let end_local =
            NaiveDateTime::parse_from_str(&end.raw, "%Y%m%dT%H%M%S").expect("DTEND local");
        assert_eq!(
            row.timezone.from_local_datetime(&end_local).single(),
            Some(row.end().with_timezone(&row.timezone)),
            "{end:?}"
        );
    }
    // On both sides of the change New York's meetings are at 09:00 local.
    for row in &ny {
        let ev = &events[&zoomd::calendar::uid(row)];
        assert!(ev.prop("DTSTART").expect("start").raw.ends_with("T090000"));
    }

    // New York's zone holds the change: its local onset in the offset before it.
    let zone = cal
        .children("VTIMEZONE")
        .into_iter()
        .find(|z| z.text("TZID") == "America/New_York")
        .expect("New York's VTIMEZONE");
    let off = |t: DateTime<Utc>| NEW_YORK.offset_from_utc_datetime(&t.naive_utc()).fix();
    let (from, to) = (off(s.change - Duration::hours(1)), off(s.change));
    let onset = (s.change.naive_utc() + Duration::seconds(from.local_minus_utc().into()))
        .format("%Y%m%dT%H%M%S")
        .to_string();
    let hhmm = |o: chrono::FixedOffset| {
        let m = o.local_minus_utc() / 60;
        format!(
            "{}{:02}{:02}",
            if m < 0 { '-' } else { '+' },
            m.abs() / 60,
            m.abs() % 60
        )
    };
    let observance = zone
        .comps
        .iter()
        .find(|o| o.text("DTSTART") == onset)
        .unwrap_or_else(|| panic!("no observance at {onset}: {zone:?}"));
    assert_eq!(observance.text("TZOFFSETFROM"), hhmm(from));
    assert_eq!(observance.text("TZOFFSETTO"), hhmm(to));
    let kind = if to.local_minus_utc() > from.local_minus_utc() {
        "DAYLIGHT"
    } else {
        "STANDARD"
    };
    assert_eq!(observance.name, kind);
    let tokyo_zone = cal
        .children("VTIMEZONE")
        .into_iter()
        .find(|z| z.text("TZID") == "Asia/Tokyo")
        .expect("Tokyo's VTIMEZONE");
    assert_eq!(tokyo_zone.comps.len(), 1, "no DST in Tokyo: {tokyo_zone:?}");
    assert_eq!(tokyo_zone.comps[0].text("TZOFFSETTO"), "+0900");

    // One key: its events and its zone only.
    let (_, only) = s.calendar(&["--key", "tokyo"]).await;
    assert_eq!(only.text("X-WR-CALNAME"), "zoomd: tokyo");
    let tokyo_events = events_by_uid(&only);
    let tokyo_uids: Vec<String> = rows
        .iter()
        .filter(|r| r.key == "tokyo")
        .map(zoomd::calendar::uid)
        .collect();
    assert_eq!(tokyo_events.keys().cloned().collect::<Vec<_>>(), tokyo_uids);
    let zones: Vec<&str> = only
        .children("VTIMEZONE")
        .iter()
        .map(|z| z.text("TZID"))
        .collect();
    assert_eq!(zones, ["Asia/Tokyo"]);

    // A key with no meetings: a calendar all the same, with no event.
    let (_, empty) = s.calendar(&["--key", "nosuch"]).await;
    assert!(empty.children("VEVENT").is_empty(), "{empty:?}");
    assert!(empty.children("VTIMEZONE").is_empty(), "{empty:?}");
}

#[tokio::test]
async fn uids_survive_runs_and_updates_and_a_cancelled_meeting_is_no_longer_confirmed() {
    let s = Setup::new().await;
    s.sync(&[s.ny.clone(), s.tokyo("Tokyo, daily")]).await;
    let (first_ics, first) = s.calendar(&[]).await;
    let first = events_by_uid(&first);
    let (_, again) = s.calendar(&[]).await;
    let again = events_by_uid(&again);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        again.keys().collect::<Vec<_>>(),
        "two runs, other UIDs"
    );
    // Nothing but DTSTAMP may differ between two runs on the same state.
    let without_stamp = |ics: &str| -> String {
        ics.split("\r\n")
            .filter(|l| !l.starts_with("DTSTAMP:"))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let (second_ics, _) = s.calendar(&[]).await;
    assert_eq!(without_stamp(&first_ics), without_stamp(&second_ics));

    // A new topic is an update of the same meeting: same UIDs, the new summary.
    s.sync(&[s.ny.clone(), s.tokyo("Tokyo, renamed")]).await;
    let (_, renamed) = s.calendar(&[]).await;
    let renamed = events_by_uid(&renamed);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        renamed.keys().collect::<Vec<_>>()
    );
    let tokyo_uid = first
        .iter()
        .find(|(_, e)| e.text("SUMMARY") == "Tokyo, daily")
        .map(|(uid, _)| uid.clone())
        .expect("tokyo event");
    assert_eq!(renamed[&tokyo_uid].text("SUMMARY"), "Tokyo, renamed");
    assert_eq!(
        renamed[&tokyo_uid].text("URL"),
        first[&tokyo_uid].text("URL")
    );

    // The ny entry leaves the schedule: its meetings are deleted at Zoom, and the feed
    // keeps their UIDs as cancelled, with a higher SEQUENCE and no join link.
    s.sync(&[s.tokyo("Tokyo, renamed")]).await;
    let rows = s.rows().await;
    let cancelled: Vec<&OccurrenceRow> = rows.iter().filter(|r| r.key == "ny").collect();
    assert!(!cancelled.is_empty());
    assert!(
        cancelled
            .iter()
            .all(|r| r.state == OccurrenceState::Cancelled),
        "{cancelled:?}"
    );
    for r in &cancelled {
        let at_zoom = s.sim.meeting(r.meeting_id.expect("id")).expect("meeting");
        assert!(at_zoom.deleted, "{r:?}");
    }
    let (_, after) = s.calendar(&[]).await;
    let after = events_by_uid(&after);
    let seq = |e: &Comp| -> i64 { e.text("SEQUENCE").parse().expect("SEQUENCE") };
    for r in &cancelled {
        let uid = zoomd::calendar::uid(r);
        let ev = after
            .get(&uid)
            .unwrap_or_else(|| panic!("{uid} left the feed"));
        assert_eq!(ev.text("STATUS"), "CANCELLED", "{ev:?}");
        assert!(seq(ev) > seq(&first[&uid]), "no SEQUENCE bump: {ev:?}");
        assert!(ev.prop("URL").is_none() && ev.prop("LOCATION").is_none());
    }
    let confirmed: Vec<&str> = after
        .values()
        .filter(|e| e.text("STATUS") == "CONFIRMED")
        .map(|e| e.text("UID"))
        .collect();
    assert_eq!(confirmed, [tokyo_uid.as_str()]);
}

#[tokio::test]
async fn without_a_database_it_exits_1_and_creates_none() {
    let sim = spawn_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(&sim);
    let path = config.write(dir.path());
    let out = run(&path, &["calendar"], &config.env()).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let db = dir.path().join("state.db");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("database {}: not found", db.display())),
        "{}",
        text(&out)
    );
    assert!(out.stdout.is_empty());
    assert!(!db.exists());
}
