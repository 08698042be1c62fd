//! The read-only status page (`GET /`): server-rendered HTML, no script, readable on a phone.
//! It shows what `zoomd status` shows plus join links; never a download URL, a password or
//! a token. Every text from the database or the schedule is escaped.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::store::queries::Status;
use crate::store::{ArchiveRow, FailureItem, OccurrenceRow, ts};

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Only http(s) links become links: a stored join URL is Zoom's, but the page must not
/// turn anything else (`javascript:`) into one.
fn link(url: &str, label: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        format!(
            "<a href=\"{}\" rel=\"noopener noreferrer\">{}</a>",
            escape(url.trim()),
            escape(label)
        )
    } else {
        escape(label)
    }
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1rem;max-width:60rem}\
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}\
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
td.err{color:#a00}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}\
.none{color:#666}@media(max-width:40rem){th:nth-child(n+4),td:nth-child(n+4){display:none}}";

/// The whole page.
pub fn render(status: &Status, today: &[ArchiveRow], now: DateTime<Utc>) -> String {
    let c = &status.counts;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>zoomd status</title><style>{STYLE}</style></head><body>\
         <h1>zoomd status</h1><p>At {} UTC: {} upcoming, {} recordings pending, \
         {} files in the queue, {} failures.</p>",
        escape(&ts(now)),
        c.meetings_upcoming,
        c.recordings_pending,
        c.files_queued + c.files_downloading,
        c.failures()
    );
    upcoming(&mut h, &status.upcoming);
    pending(&mut h, &status.pending);
    failures(&mut h, &status.failures);
    archive(&mut h, today, c.archived_since, c.archived_bytes_since);
    h.push_str("</body></html>\n");
    h
}

fn section(h: &mut String, id: &str, title: &str, heads: &[&str], rows: Vec<Vec<String>>) {
    let _ = write!(h, "<h2 id=\"{id}\">{}</h2>", escape(title));
    if rows.is_empty() {
        h.push_str("<p class=\"none\">none</p>");
        return;
    }
    h.push_str("<table><thead><tr>");
    for t in heads {
        let _ = write!(h, "<th>{}</th>", escape(t));
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        h.push_str("<tr>");
        for cell in r {
            // Cells are built escaped (or as a link) by the callers.
            let _ = write!(h, "<td>{cell}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
}

fn upcoming(h: &mut String, rows: &[OccurrenceRow]) {
    let rows = rows
        .iter()
        .map(|m| {
            vec![
                escape(&format!("{} ({})", m.start_local, m.timezone)),
                escape(&m.topic),
                m.join_url
                    .as_deref()
                    .map_or_else(|| escape(m.state.as_str()), |u| link(u, "join")),
                escape(&m.key),
                escape(&m.host),
            ]
        })
        .collect();
    section(
        h,
        "upcoming",
        "Upcoming meetings",
        &["Start", "Topic", "Join", "Key", "Host"],
        rows,
    );
}

fn pending(h: &mut String, rows: &[OccurrenceRow]) {
    let rows = rows
        .iter()
        .map(|m| {
            vec![
                escape(&format!("{} ({})", m.start_local, m.timezone)),
                escape(&m.topic),
                escape(m.recording_state.as_str()),
                escape(&m.key),
            ]
        })
        .collect();
    section(
        h,
        "pending",
        "Recordings in progress",
        &["Start", "Topic", "Watch", "Key"],
        rows,
    );
}

fn failures(h: &mut String, rows: &[FailureItem]) {
    let rows = rows
        .iter()
        .map(|f| {
            vec![
                escape(&ts(f.at)),
                escape(&format!("{} {}", f.kind, f.what)),
                format!(
                    "<span class=\"err\">{}</span>",
                    escape(f.last_error.as_deref().unwrap_or("-"))
                ),
                escape(f.key.as_deref().unwrap_or(&f.host)),
                escape(&format!("{} ({})", f.start_local, f.timezone)),
            ]
        })
        .collect();
    section(
        h,
        "failures",
        "Failures",
        &["At (UTC)", "What", "Reason", "Key / host", "Meeting start"],
        rows,
    );
}

fn archive(h: &mut String, rows: &[ArchiveRow], files: i64, total: i64) {
    let title = format!(
        "Archived today: {files} file{}, {}",
        if files == 1 { "" } else { "s" },
        bytes(total)
    );
    let rows = rows
        .iter()
        .map(|a| {
            vec![
                escape(&a.archived_at.map(ts).unwrap_or_default()),
                escape(&a.topic),
                escape(&a.file_type),
                escape(&bytes(a.bytes.unwrap_or(0))),
                escape(a.key.as_deref().unwrap_or(&a.host)),
            ]
        })
        .collect();
    section(
        h,
        "archive",
        &title,
        &["Archived (UTC)", "Topic", "Type", "Size", "Key / host"],
        rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_only_web_links_are_links() {
        assert_eq!(
            escape("<b>\"Q&A\"</b> 'x'"),
            "&lt;b&gt;&quot;Q&amp;A&quot;&lt;/b&gt; &#39;x&#39;"
        );
        assert_eq!(
            link("https://zoom.us/j/1?pwd=a\"b", "join"),
            "<a href=\"https://zoom.us/j/1?pwd=a&quot;b\" rel=\"noopener noreferrer\">join</a>"
        );
        assert_eq!(link("javascript:alert(1)", "join"), "join");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
