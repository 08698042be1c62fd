//! The iCalendar feed (RFC 5545) of upcoming meetings: `zoomd calendar`, and the text a
//! `GET /calendar.ics` handler can serve.
//!
//! [`render`] is pure (rows and `now` in, text out); [`feed`] is the one read of the store
//! behind it. What the feed holds:
//! - one `VEVENT` per meeting zoomd created (state `created`, with a join URL) that has not
//!   ended yet — a meeting under way stays, since a subscribed client drops an event the feed
//!   no longer lists, and late joiners need the link;
//! - a meeting that was cancelled (its meeting existed at Zoom) stays as `STATUS:CANCELLED`,
//!   without the join URL, until its scheduled end: that is how a client that imported the
//!   event learns of it. Creates not done yet (`creating`, `deferred`, `failed`) have no
//!   meeting and are left out until they are created;
//! - the `UID` is the occurrence's identity, `<key>-<UTC start>@zoomd`: an update of the
//!   meeting (topic, duration, a new meeting after one was deleted at Zoom) keeps it;
//! - `SEQUENCE` is the time of the last change zoomd recorded on the occurrence (`updated_at`,
//!   in seconds: the store keeps no revision count), plus one when cancelled, so a
//!   cancellation is a bump even within the second of the last change;
//! - times are local with their zone (`DTSTART;TZID=Europe/Berlin:...`), and each zone used
//!   has a `VTIMEZONE` built from the zone database: the transitions of the events' years
//!   as explicit observances (no `RRULE`), after the one in force when those years begin.
//!   A local time that a DST change repeats, on its second pass, is written in UTC instead,
//!   since RFC 5545 reads a repeated local time as its first pass.
//!
//! No secrets: the meeting password is never written on its own (the join URL carries what
//! Zoom put in it, which is what people need to join); zoomd does not keep the host's
//! start URL.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::{OffsetComponents, OffsetName, Tz, TzOffset};

use crate::store::{OccurrenceFilter, OccurrenceRow, OccurrenceState, Period, Store, StoreError};

const PRODID: &str = "-//zoomd//calendar//EN";

/// Zoom's longest meeting (the config refuses a longer `duration`): a meeting that started
/// longer ago than this has ended.
const LONGEST_MEETING: TimeDelta = TimeDelta::minutes(1440);

/// `SEQUENCE` counts seconds of `updated_at` from here, which keeps it within RFC 5545's
/// 32-bit INTEGER for decades.
const SEQUENCE_EPOCH: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z

/// The longest content line, in octets, without its CRLF (RFC 5545 3.1).
const LINE_OCTETS: usize = 75;

/// The feed of the meetings of `key` (or every key) that have not ended by `now`.
pub async fn feed(
    store: &Store,
    key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let filter = OccurrenceFilter {
        when: Some(Period::Upcoming),
        key: key.map(str::to_string),
    };
    // Upcoming as of the longest meeting ago, so a meeting under way is read; `render`
    // leaves out those that have ended.
    let rows = store
        .list_occurrences(&filter, now - LONGEST_MEETING)
        .await?;
    let name = match key {
        Some(k) => format!("zoomd: {k}"),
        None => "zoomd".to_string(),
    };
    Ok(render(&rows, now, &name))
}

/// The calendar `name` (`X-WR-CALNAME`) with an event for each row that belongs in the feed
/// (see the module's documentation), in the rows' order. CRLF line endings, lines folded at
/// 75 octets.
pub fn render(rows: &[OccurrenceRow], now: DateTime<Utc>, name: &str) -> String {
    let mut events = Lines::default();
    let mut zones: BTreeMap<&'static str, Span> = BTreeMap::new();
    for row in rows {
        write_event(&mut events, row, now, &mut zones);
    }

    let mut out = Lines::default();
    out.line("BEGIN:VCALENDAR");
    out.line("VERSION:2.0");
    out.line(&format!("PRODID:{PRODID}"));
    out.line("CALSCALE:GREGORIAN");
    out.line(&format!("X-WR-CALNAME:{}", text(name)));
    // How often a subscribed client should fetch again (RFC 7986, and Outlook's name).
    out.line("REFRESH-INTERVAL;VALUE=DURATION:PT1H");
    out.line("X-PUBLISHED-TTL:PT1H");
    for span in zones.values() {
        write_vtimezone(&mut out, span);
    }
    out.text.push_str(&events.text);
    out.line("END:VCALENDAR");
    out.text
}

/// The event's identity: the occurrence's key and scheduled UTC start, which no update
/// changes (zoomd's rows are unique on them).
pub fn uid(row: &OccurrenceRow) -> String {
    format!("{}-{}@zoomd", row.key, utc_stamp(row.start_utc))
}

// ---------------------------------------------------------------------------------------------
// events

/// The instants a zone's events cover: its `VTIMEZONE` spans their years.
struct Span {
    tz: Tz,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

fn write_event(
    out: &mut Lines,
    row: &OccurrenceRow,
    now: DateTime<Utc>,
    zones: &mut BTreeMap<&'static str, Span>,
) {
    let join_url = match (row.state, &row.join_url) {
        (OccurrenceState::Created, Some(url)) => Some(url.as_str()),
        (OccurrenceState::Cancelled, _) if row.meeting_id.is_some() => None,
        _ => return,
    };
    let cancelled = join_url.is_none();
    // A duration no instant can hold (a damaged row) is no event, rather than a panic.
    let Some(end) =
        TimeDelta::try_minutes(row.duration_min).and_then(|d| row.start_utc.checked_add_signed(d))
    else {
        return;
    };
    if end <= now {
        return;
    }
    out.line("BEGIN:VEVENT");
    out.line(&format!("UID:{}", text(&uid(row))));
    out.line(&format!("DTSTAMP:{}", utc_stamp(now)));
    for (prop, at) in [("DTSTART", row.start_utc), ("DTEND", end)] {
        let (line, zoned) = date_time(prop, at, row.timezone);
        out.line(&line);
        if zoned {
            let span = zones.entry(row.timezone.name()).or_insert(Span {
                tz: row.timezone,
                first: at,
                last: at,
            });
            span.first = span.first.min(at);
            span.last = span.last.max(at);
        }
    }
    let meeting = row
        .meeting_id
        .map(|id| format!("Meeting ID: {id}"))
        .unwrap_or_default();
    match join_url {
        Some(url) => {
            out.line(&format!("SUMMARY:{}", text(&row.topic)));
            out.line(&format!("LOCATION:{}", text(url)));
            out.line(&format!("URL:{}", uri(url)));
            out.line(&format!(
                "DESCRIPTION:{}",
                text(&format!("Join the Zoom meeting: {url}\n{meeting}"))
            ));
            out.line("STATUS:CONFIRMED");
        }
        None => {
            // Also in the summary, for clients that show a cancelled event like any other.
            out.line(&format!(
                "SUMMARY:{}",
                text(&format!("Cancelled: {}", row.topic))
            ));
            out.line(&format!(
                "DESCRIPTION:{}",
                text(&format!(
                    "Cancelled: this meeting left the schedule and was deleted at Zoom.\n{meeting}"
                ))
            ));
            out.line("STATUS:CANCELLED");
        }
    }
    out.line(&format!("SEQUENCE:{}", sequence(row.updated_at, cancelled)));
    out.line(&format!("LAST-MODIFIED:{}", utc_stamp(row.updated_at)));
    out.line("END:VEVENT");
}

fn sequence(updated_at: DateTime<Utc>, cancelled: bool) -> i64 {
    let base = (updated_at.timestamp() - SEQUENCE_EPOCH).clamp(0, i64::from(i32::MAX) - 1);
    base + i64::from(cancelled)
}

/// `PROP;TZID=<zone>:<local>` and true, or `PROP:<UTC>Z` and false when the local time does
/// not name `at` alone (the second pass of a time a DST change repeats).
fn date_time(prop: &str, at: DateTime<Utc>, tz: Tz) -> (String, bool) {
    let local = at.with_timezone(&tz).naive_local();
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) if t == at => (
            format!("{prop};TZID={}:{}", param(tz.name()), local_stamp(local)),
            true,
        ),
        _ => (format!("{prop}:{}", utc_stamp(at)), false),
    }
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn local_stamp(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

// ---------------------------------------------------------------------------------------------
// time zones

/// One onset of a zone's offset: `onset` is local time in the offset before it.
#[derive(Debug, Clone, PartialEq)]
struct Observance {
    onset: NaiveDateTime,
    from: i32,
    to: i32,
    daylight: bool,
    name: Option<String>,
}

fn write_vtimezone(out: &mut Lines, span: &Span) {
    let tz = span.tz;
    out.line("BEGIN:VTIMEZONE");
    out.line(&format!("TZID:{}", text(tz.name())));
    for o in observances(tz, span.first, span.last) {
        let kind = if o.daylight { "DAYLIGHT" } else { "STANDARD" };
        out.line(&format!("BEGIN:{kind}"));
        out.line(&format!("DTSTART:{}", local_stamp(o.onset)));
        out.line(&format!("TZOFFSETFROM:{}", utc_offset(o.from)));
        out.line(&format!("TZOFFSETTO:{}", utc_offset(o.to)));
        if let Some(name) = &o.name {
            out.line(&format!("TZNAME:{}", text(name)));
        }
        out.line(&format!("END:{kind}"));
    }
    out.line("END:VTIMEZONE");
}

/// The observances that define `tz` from the start of `first`'s year to the end of `last`'s:
/// the one in force at the start (the year before's last transition, or the offset since
/// 1970 when that year had none), then every transition.
fn observances(tz: Tz, first: DateTime<Utc>, last: DateTime<Utc>) -> Vec<Observance> {
    // zoomd creates meetings at most 366 days ahead; the cap only bounds the scan when a
    // stored start is absurd (the events past it keep the last offset found).
    let last_year = last.year().min(first.year().saturating_add(MAX_YEARS));
    // A day either side: the years' local bounds lie within a day of their UTC ones.
    let bounds = year_start(first.year())
        .and_then(|t| t.checked_sub_signed(TimeDelta::days(1)))
        .zip(
            year_start(last_year.saturating_add(1))
                .and_then(|t| t.checked_add_signed(TimeDelta::days(1))),
        );
    let before = bounds.and_then(|(from, _)| {
        let lookback = from.checked_sub_signed(TimeDelta::days(366))?;
        transitions(tz, lookback, from).pop()
    });
    let mut out = match before {
        Some(o) => vec![o],
        None => {
            let off = offset_at(tz, bounds.map_or(first, |(from, _)| from));
            vec![observance(DateTime::UNIX_EPOCH.naive_utc(), off, off)]
        }
    };
    if let Some((from, to)) = bounds {
        out.extend(transitions(tz, from, to));
    }
    out
}

/// How many years after the first event's a `VTIMEZONE` spans at most.
const MAX_YEARS: i32 = 5;

fn year_start(year: i32) -> Option<DateTime<Utc>> {
    NaiveDate::from_ymd_opt(year, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Every change of `tz`'s offset in `[from, to)`, to the second. chrono-tz has no API for
/// its transitions, so they are found by stepping an hour at a time (zones change at most a
/// few times a year) and halving the hour that holds one.
fn transitions(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Observance> {
    const STEP: TimeDelta = TimeDelta::hours(1);
    let mut out = Vec::new();
    let mut at = from;
    let mut before = offset_at(tz, at);
    while at < to {
        let Some(next) = at.checked_add_signed(STEP) else {
            break;
        };
        let after = offset_at(tz, next);
        if after != before {
            // The offset at `lo` is `before`, at `hi` another: the change is in (lo, hi].
            let (mut lo, mut hi) = (at, next);
            while hi - lo > TimeDelta::seconds(1) {
                let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
                if offset_at(tz, mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let old = offset_at(tz, lo);
            let new = offset_at(tz, hi);
            let onset = hi.naive_utc() + TimeDelta::seconds(i64::from(old.fix().local_minus_utc()));
            out.push(observance(onset, old, new));
        }
        at = next;
        before = after;
    }
    out
}

fn offset_at(tz: Tz, at: DateTime<Utc>) -> TzOffset {
    tz.offset_from_utc_datetime(&at.naive_utc())
}

fn observance(onset: NaiveDateTime, from: TzOffset, to: TzOffset) -> Observance {
    Observance {
        onset,
        from: from.fix().local_minus_utc(),
        to: to.fix().local_minus_utc(),
        // Negative DST (Europe/Dublin's winter in the zone database) is no daylight time.
        daylight: to.dst_offset() > TimeDelta::zero(),
        name: to.abbreviation().map(str::to_string),
    }
}

/// `+0100`, `-0500`, `+053028` (RFC 5545 UTC-OFFSET; never `-0000`).
fn utc_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

// ---------------------------------------------------------------------------------------------
// values and lines

/// A TEXT value (RFC 5545 3.3.11): backslash, semicolon and comma escaped, each line break
/// as `\n`; other control characters (which no content line may hold) dropped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A URI value: written as it is, less what would break the line (controls, spaces).
fn uri(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect()
}

/// A parameter value: quoted when it holds `;`, `:` or `,`; quotes and controls dropped.
fn param(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    if clean.contains([';', ':', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// Content lines, each folded and ended with CRLF.
#[derive(Default)]
struct Lines {
    text: String,
}

impl Lines {
    fn line(&mut self, line: &str) {
        fold_into(&mut self.text, line);
    }
}

/// Appends `line` folded (RFC 5545 3.1): at most 75 octets a line, each continuation starting
/// with one space, never inside a UTF-8 character; every line ends with CRLF.
fn fold_into(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = LINE_OCTETS;
    loop {
        if rest.len() <= limit {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        // The leading space counts towards the next line's octets.
        limit = LINE_OCTETS - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordingWatch;
    use chrono_tz::America::New_York;
    use chrono_tz::Asia::Tokyo;
    use chrono_tz::Europe::Berlin;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&Utc)
    }

    fn row(key: &str, start: &str, tz: Tz) -> OccurrenceRow {
        let start_utc = at(start);
        OccurrenceRow {
            id: 1,
            key: key.into(),
            start_utc,
            start_local: start_utc.with_timezone(&tz).to_rfc3339(),
            timezone: tz,
            duration_min: 45,
            host: "me".into(),
            topic: "Weekly standup".into(),
            agenda: Some("zoomd:weekly:x".into()),
            settings_json: Default::default(),
            marker: "zoomd:weekly:x".into(),
            state: OccurrenceState::Created,
            meeting_id: Some(85_123_456_789),
            meeting_uuid: Some("uuid==".into()),
            join_url: Some("https://zoom.us/j/85123456789?pwd=abc".into()),
            password: Some("s3cr3t-pass".into()),
            not_before: None,
            attempts: 1,
            last_error: None,
            recording_state: RecordingWatch::Waiting,
            next_poll_at: None,
            polls: 0,
            updated_at: at("2026-12-01T10:00:00Z"),
            cancel_held_at: None,
            cancel_confirmed_at: None,
        }
    }

    const NOW: &str = "2026-12-02T00:00:00Z";

    /// Content lines, unfolded.
    fn lines(ics: &str) -> Vec<String> {
        ics.replace("\r\n ", "")
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The unfolded lines of each `BEGIN:<name>` … `END:<name>` block.
    fn blocks(ics: &str, name: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut cur: Option<Vec<String>> = None;
        for l in lines(ics) {
            if l == format!("BEGIN:{name}") {
                cur = Some(Vec::new());
            } else if l == format!("END:{name}") {
                out.extend(cur.take());
            } else if let Some(c) = cur.as_mut() {
                c.push(l);
            }
        }
        out
    }

    fn prop<'a>(block: &'a [String], name: &str) -> Option<&'a str> {
        block.iter().find_map(|l| {
            l.strip_prefix(name)
                .filter(|r| r.starts_with([':', ';']))
                .and_then(|r| r.split_once(':'))
                .map(|(_, value)| value)
        })
    }

    #[test]
    fn text_values_are_escaped() {
        assert_eq!(
            text("a\\b;c,d\ne\r\nf\rg"),
            "a\\\\b\\;c\\,d\\ne\\nf\\ng",
            "backslash, semicolon, comma, every line break"
        );
        assert_eq!(
            text("tab\there\u{7}bell"),
            "tab\therebell",
            "a tab stays, a bell goes"
        );
        assert_eq!(
            text("Grüße: 10:00"),
            "Grüße: 10:00",
            "colons and non-ASCII stay"
        );
    }

    #[test]
    fn a_topic_with_specials_is_escaped_in_the_summary() {
        let mut r = row("weekly", "2026-12-07T08:00:00Z", Berlin);
        r.topic = "Board; budget, Q1\nsecond line \\ end".into();
        let ics = render(&[r], at(NOW), "zoomd");
        let ev = &blocks(&ics, "VEVENT")[0];
        assert_eq!(
            prop(ev, "SUMMARY"),
            Some("Board\\; budget\\, Q1\\nsecond line \\\\ end")
        );
    }

    #[test]
    fn lines_fold_at_75_octets_without_splitting_a_character() {
        for filler in ["a", "ü", "€", "😀"] {
            let value: String = filler.repeat(200);
            let mut out = String::new();
            fold_into(&mut out, &format!("SUMMARY:{value}"));
            assert!(out.ends_with("\r\n"));
            let physical: Vec<&str> = out.trim_end_matches("\r\n").split("\r\n").collect();
            assert!(physical.len() > 1, "{filler}: not folded");
            for (i, l) in physical.iter().enumerate() {
                assert!(l.len() <= 75, "{filler}: line {i} has {} octets", l.len());
                if i > 0 {
                    assert!(l.starts_with(' ') && !l[1..].starts_with(' '));
                }
            }
            // Full lines use the room a character boundary allows (never a short cut).
            let width = filler.len();
            assert!(
                physical[0].len() > 75 - width,
                "{filler}: first line too short"
            );
            assert_eq!(out.replace("\r\n ", ""), format!("SUMMARY:{value}\r\n"));
        }
        let mut exact = String::new();
        fold_into(&mut exact, &"x".repeat(75));
        assert_eq!(exact, format!("{}\r\n", "x".repeat(75)), "75 octets fit");
        let mut over = String::new();
        fold_into(&mut over, &"x".repeat(76));
        assert_eq!(over, format!("{}\r\n x\r\n", "x".repeat(75)));
    }

    #[test]
    fn every_line_ends_with_crlf_and_fits() {
        let mut r = row("weekly", "2026-12-07T08:00:00Z", Berlin);
        r.topic = "Ein sehr langes Thema mit Umlauten äöü und noch mehr Text ".repeat(4);
        let ics = render(&[r], at(NOW), "zoomd");
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        assert!(!ics.replace("\r\n", "").contains('\n'), "a bare LF");
        assert!(!ics.replace("\r\n", "").contains('\r'), "a bare CR");
        for l in ics.split("\r\n") {
            assert!(l.len() <= 75, "{l}");
        }
    }

    #[test]
    fn uid_is_key_and_utc_start_and_survives_updates() {
        let r = row("weekly", "2026-12-07T08:00:00Z", Berlin);
        assert_eq!(uid(&r), "weekly-20261207T080000Z@zoomd");
        let mut changed = r.clone();
        changed.topic = "Renamed".into();
        changed.duration_min = 90;
        changed.meeting_id = Some(86_000_000_000);
        changed.join_url = Some("https://zoom.us/j/86000000000".into());
        changed.updated_at = at("2026-12-03T10:00:00Z");
        changed.start_local = "something else".into();
        assert_eq!(uid(&changed), uid(&r));
        let other = row("weekly", "2026-12-14T08:00:00Z", Berlin);
        assert_ne!(uid(&other), uid(&r));
        let ics = render(std::slice::from_ref(&r), at(NOW), "zoomd");
        let later = render(&[changed], at("2026-12-04T00:00:00Z"), "zoomd");
        assert_eq!(
            prop(&blocks(&ics, "VEVENT")[0], "UID"),
            prop(&blocks(&later, "VEVENT")[0], "UID")
        );
    }

    #[test]
    fn an_event_has_local_times_join_url_and_meeting_id_and_no_password() {
        let r = row("weekly", "2026-12-07T08:00:00Z", Berlin);
        let ics = render(&[r], at(NOW), "Team: meetings");
        let cal = lines(&ics);
        for l in [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//zoomd//calendar//EN",
            "CALSCALE:GREGORIAN",
            "X-WR-CALNAME:Team: meetings",
        ] {
            assert!(cal.iter().any(|c| c == l), "{l} missing:\n{ics}");
        }
        let ev = &blocks(&ics, "VEVENT")[0];
        let has = |l: &str| ev.iter().any(|c| c == l);
        assert!(has("DTSTART;TZID=Europe/Berlin:20261207T090000"), "{ev:?}");
        assert!(has("DTEND;TZID=Europe/Berlin:20261207T094500"), "{ev:?}");
        assert!(has("DTSTAMP:20261202T000000Z"));
        assert!(has("SUMMARY:Weekly standup"));
        assert!(has("LOCATION:https://zoom.us/j/85123456789?pwd=abc"));
        assert!(has("URL:https://zoom.us/j/85123456789?pwd=abc"));
        assert!(has("STATUS:CONFIRMED"));
        let description = prop(ev, "DESCRIPTION").expect("description");
        assert!(description.contains("https://zoom.us/j/85123456789?pwd=abc"));
        assert!(description.contains("Meeting ID: 85123456789"));
        assert!(!ics.contains("s3cr3t-pass"), "the password leaked:\n{ics}");
        assert!(
            !ics.contains("zoomd:weekly:x"),
            "the agenda's marker is internal"
        );
    }

    #[test]
    fn only_meetings_that_exist_and_have_not_ended_are_events() {
        let now = at(NOW);
        let mut rows = Vec::new();
        let mut add = |key: &str, start: &str, f: &dyn Fn(&mut OccurrenceRow)| {
            let mut r = row(key, start, Berlin);
            f(&mut r);
            rows.push(r);
        };
        add("created", "2026-12-07T08:00:00Z", &|_| {});
        add("running", "2026-12-01T23:30:00Z", &|_| {}); // ends 00:15, after now
        add("ended", "2026-12-01T23:00:00Z", &|_| {}); // ended 23:45
        add("nourl", "2026-12-07T08:00:00Z", &|r| r.join_url = None);
        for (key, state) in [
            ("creating", OccurrenceState::Creating),
            ("deferred", OccurrenceState::Deferred),
            ("failed", OccurrenceState::Failed),
        ] {
            add(key, "2026-12-07T08:00:00Z", &|r| {
                r.state = state;
                r.meeting_id = None;
                r.join_url = None;
            });
        }
        add("cancelled", "2026-12-07T08:00:00Z", &|r| {
            r.state = OccurrenceState::Cancelled;
        });
        add("nevermade", "2026-12-07T08:00:00Z", &|r| {
            r.state = OccurrenceState::Cancelled;
            r.meeting_id = None;
            r.join_url = None;
        });
        let ics = render(&rows, now, "zoomd");
        let uids: Vec<String> = blocks(&ics, "VEVENT")
            .iter()
            .map(|e| prop(e, "UID").unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            uids,
            [
                "created-20261207T080000Z@zoomd",
                "running-20261201T233000Z@zoomd",
                "cancelled-20261207T080000Z@zoomd"
            ]
        );
    }

    #[test]
    fn a_damaged_duration_is_no_event_and_no_panic() {
        let mut r = row("weekly", "2026-12-07T08:00:00Z", Berlin);
        r.duration_min = i64::MAX;
        assert!(blocks(&render(&[r], at(NOW), "zoomd"), "VEVENT").is_empty());
    }

    #[test]
    fn a_cancelled_meeting_is_cancelled_with_a_higher_sequence_and_no_link() {
        let live = row("weekly", "2026-12-07T08:00:00Z", Berlin);
        let mut gone = live.clone();
        gone.state = OccurrenceState::Cancelled;
        // Cancelled within the same second as the last change: still a bump.
        let seq = |r: &OccurrenceRow| -> i64 {
            let ics = render(std::slice::from_ref(r), at(NOW), "zoomd");
            prop(&blocks(&ics, "VEVENT")[0], "SEQUENCE")
                .and_then(|s| s.parse().ok())
                .expect("sequence")
        };
        assert!(seq(&gone) > seq(&live));
        let mut later = live.clone();
        later.updated_at += TimeDelta::minutes(5);
        assert!(seq(&later) > seq(&live), "an update bumps it");

        let ics = render(&[gone], at(NOW), "zoomd");
        let ev = &blocks(&ics, "VEVENT")[0];
        assert_eq!(prop(ev, "STATUS"), Some("CANCELLED"));
        assert_eq!(prop(ev, "UID"), Some("weekly-20261207T080000Z@zoomd"));
        assert_eq!(prop(ev, "URL"), None);
        assert_eq!(prop(ev, "LOCATION"), None);
        assert!(!ics.contains("zoom.us/j/"), "{ics}");
    }

    fn observance_lines(ics: &str, zone: &str) -> Vec<String> {
        let tz = blocks(ics, "VTIMEZONE")
            .into_iter()
            .find(|b| b.first().is_some_and(|l| *l == format!("TZID:{zone}")))
            .unwrap_or_else(|| panic!("no VTIMEZONE {zone}:\n{ics}"));
        tz[1..].to_vec()
    }

    /// `BEGIN:KIND`, DTSTART, FROM, TO, TZNAME, `END:KIND` of the observance starting at
    /// `onset`, as one string.
    fn observance_at(obs: &[String], onset: &str) -> String {
        let i = obs
            .iter()
            .position(|l| *l == format!("DTSTART:{onset}"))
            .unwrap_or_else(|| panic!("no observance at {onset}: {obs:?}"));
        obs[i - 1..=i + 4].join("|")
    }

    #[test]
    fn berlin_changes_from_cest_to_cet_at_3_on_25_october_2026() {
        let ics = render(
            &[row("b", "2026-12-07T08:00:00Z", Berlin)],
            at(NOW),
            "zoomd",
        );
        let obs = observance_lines(&ics, "Europe/Berlin");
        assert_eq!(
            observance_at(&obs, "20261025T030000"),
            "BEGIN:STANDARD|DTSTART:20261025T030000|TZOFFSETFROM:+0200|TZOFFSETTO:+0100|TZNAME:CET|END:STANDARD"
        );
        assert_eq!(
            observance_at(&obs, "20260329T020000"),
            "BEGIN:DAYLIGHT|DTSTART:20260329T020000|TZOFFSETFROM:+0100|TZOFFSETTO:+0200|TZNAME:CEST|END:DAYLIGHT"
        );
        // The one in force on 1 January (from the year before), and nothing outside 2026.
        let onsets: Vec<&String> = obs.iter().filter(|l| l.starts_with("DTSTART:")).collect();
        assert_eq!(
            onsets,
            [
                "DTSTART:20251026T030000",
                "DTSTART:20260329T020000",
                "DTSTART:20261025T030000"
            ]
        );
    }

    #[test]
    fn new_york_falls_back_at_2_on_1_november_2026_and_events_across_it_keep_their_wall_clock() {
        let before = row("ny", "2026-10-26T13:00:00Z", New_York); // 09:00 EDT
        let after = row("ny", "2026-11-02T14:00:00Z", New_York); // 09:00 EST
        let ics = render(&[before, after], at("2026-10-01T00:00:00Z"), "zoomd");
        let obs = observance_lines(&ics, "America/New_York");
        assert_eq!(
            observance_at(&obs, "20261101T020000"),
            "BEGIN:STANDARD|DTSTART:20261101T020000|TZOFFSETFROM:-0400|TZOFFSETTO:-0500|TZNAME:EST|END:STANDARD"
        );
        assert_eq!(
            observance_at(&obs, "20260308T020000"),
            "BEGIN:DAYLIGHT|DTSTART:20260308T020000|TZOFFSETFROM:-0500|TZOFFSETTO:-0400|TZNAME:EDT|END:DAYLIGHT"
        );
        let events = blocks(&ics, "VEVENT");
        let starts: Vec<Option<&str>> = events
            .iter()
            .map(|e| {
                e.iter()
                    .find_map(|l| l.strip_prefix("DTSTART;TZID=America/New_York:"))
            })
            .collect();
        assert_eq!(starts, [Some("20261026T090000"), Some("20261102T090000")]);
    }

    #[test]
    fn a_vtimezone_covers_every_year_its_events_touch() {
        let ics = render(
            &[
                row("b", "2026-12-07T08:00:00Z", Berlin),
                row("b", "2027-04-05T07:00:00Z", Berlin),
            ],
            at(NOW),
            "zoomd",
        );
        let obs = observance_lines(&ics, "Europe/Berlin");
        for onset in ["20270328T020000", "20271031T030000"] {
            assert!(
                obs.contains(&format!("DTSTART:{onset}")),
                "{onset}: {obs:?}"
            );
        }
        assert!(!obs.iter().any(|l| l.starts_with("DTSTART:2028")));
    }

    #[test]
    fn zones_without_dst_get_one_standard_observance() {
        for (tz, offset, name) in [(Tokyo, "+0900", "JST"), (Tz::UTC, "+0000", "UTC")] {
            let ics = render(&[row("t", "2026-12-07T01:00:00Z", tz)], at(NOW), "zoomd");
            let obs = observance_lines(&ics, tz.name());
            assert_eq!(
                obs.join("|"),
                format!(
                    "BEGIN:STANDARD|DTSTART:19700101T000000|TZOFFSETFROM:{offset}|TZOFFSETTO:{offset}|TZNAME:{name}|END:STANDARD"
                )
            );
        }
    }

    #[test]
    fn every_tzid_has_its_vtimezone_and_each_zone_one() {
        let ics = render(
            &[
                row("a", "2026-12-07T08:00:00Z", Berlin),
                row("b", "2026-12-08T08:00:00Z", Tokyo),
                row("c", "2026-12-09T08:00:00Z", Berlin),
            ],
            at(NOW),
            "zoomd",
        );
        let zones: Vec<String> = blocks(&ics, "VTIMEZONE")
            .iter()
            .map(|b| b[0].clone())
            .collect();
        assert_eq!(zones, ["TZID:Asia/Tokyo", "TZID:Europe/Berlin"]);
        for l in lines(&ics) {
            if let Some(rest) = l.split_once(";TZID=").map(|(_, r)| r) {
                let zone = rest.split(':').next().unwrap_or_default();
                assert!(zones.contains(&format!("TZID:{zone}")), "{l}");
            }
        }
        // VTIMEZONEs come before the events that use them.
        let first_event = ics.find("BEGIN:VEVENT").expect("event");
        assert!(ics.rfind("END:VTIMEZONE").expect("zone") < first_event);
    }

    #[test]
    fn the_second_pass_of_a_repeated_local_time_is_written_in_utc() {
        // 02:30 happens twice in Berlin on 25 October 2026: 00:30Z (CEST) and 01:30Z (CET).
        let first = row("first", "2026-10-25T00:30:00Z", Berlin);
        let second = row("second", "2026-10-25T01:30:00Z", Berlin);
        let ics = render(&[first, second], at("2026-10-01T00:00:00Z"), "zoomd");
        let evs = blocks(&ics, "VEVENT");
        assert!(evs[0].contains(&"DTSTART;TZID=Europe/Berlin:20261025T023000".to_string()));
        assert!(
            evs[1].contains(&"DTSTART:20261025T013000Z".to_string()),
            "{:?}",
            evs[1]
        );
        assert!(evs[1].contains(&"DTEND;TZID=Europe/Berlin:20261025T031500".to_string()));
    }

    #[test]
    fn no_rows_is_a_valid_empty_calendar() {
        let ics = render(&[], at(NOW), "zoomd: nothing");
        assert_eq!(
            lines(&ics),
            [
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "PRODID:-//zoomd//calendar//EN",
                "CALSCALE:GREGORIAN",
                "X-WR-CALNAME:zoomd: nothing",
                "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
                "X-PUBLISHED-TTL:PT1H",
                "END:VCALENDAR"
            ]
        );
    }

    #[test]
    fn offsets_are_written_with_seconds_only_when_they_have_some() {
        assert_eq!(utc_offset(3600), "+0100");
        assert_eq!(utc_offset(-5 * 3600), "-0500");
        assert_eq!(utc_offset(0), "+0000");
        assert_eq!(utc_offset(19_800), "+0530");
        assert_eq!(utc_offset(-(3600 + 15 * 60 + 30)), "-011530");
    }

    #[test]
    fn parameter_values_with_separators_are_quoted() {
        assert_eq!(param("Europe/Berlin"), "Europe/Berlin");
        assert_eq!(param("a;b"), "\"a;b\"");
        assert_eq!(param("x\"y:z"), "\"xy:z\"");
    }
}
