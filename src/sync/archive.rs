//! Archive paths: readable, built only from sanitised parts, always under the archive.
//!
//! Layout (times in the entry's zone):
//! `<YYYY-MM>/<YYYY-MM-DD>_<HHMM>_<topic>_<meeting id>/<YYYY-MM-DD_HHMMSS>_<FILE_TYPE>[_<recording type>].<ext>`
//! where the file part's time is the recording's own start (one meeting instance each).
//! A meeting zoomd did not create (found by the account scan) goes under its host:
//! `users/<host email or id>/<YYYY-MM>/...`, times in UTC (Zoom's listing names no zone).

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The most bytes of one path component (well under every file system's 255).
pub const COMPONENT_MAX: usize = 120;

/// What names one file in the archive.
#[derive(Debug, Clone)]
pub struct FileName<'a> {
    pub topic: &'a str,
    pub meeting_id: i64,
    pub scheduled_start: DateTime<Utc>,
    pub recording_start: Option<DateTime<Utc>>,
    pub timezone: Tz,
    pub file_type: &'a str,
    pub recording_type: Option<&'a str>,
    pub extension: &'a str,
    /// Found by the account scan: the user whose meeting it was.
    pub scan_host: Option<&'a str>,
}

/// The path relative to the archive directory.
pub fn relative_path(f: &FileName<'_>) -> PathBuf {
    let local = f.scheduled_start.with_timezone(&f.timezone);
    let month = local.format("%Y-%m").to_string();
    let prefix = local.format("%Y-%m-%d_%H%M_").to_string();
    let suffix = format!("_{}", f.meeting_id);
    // The topic gets whatever room the date and id leave.
    let room = COMPONENT_MAX.saturating_sub(prefix.len() + suffix.len());
    let topic = clean(f.topic);
    let topic = truncate(&topic, room);
    let dir = sanitize(&format!("{prefix}{topic}{suffix}"));

    let rec_local = f
        .recording_start
        .unwrap_or(f.scheduled_start)
        .with_timezone(&f.timezone);
    let mut stem = format!(
        "{}_{}",
        rec_local.format("%Y-%m-%d_%H%M%S"),
        clean(f.file_type)
    );
    if let Some(rt) = f.recording_type.filter(|s| !s.is_empty()) {
        stem.push('_');
        stem.push_str(&clean(rt));
    }
    let ext = clean(f.extension).to_ascii_lowercase();
    let ext = truncate(if ext.is_empty() { "bin" } else { &ext }, 16);
    let stem = truncate(&stem, COMPONENT_MAX - ext.len() - 1);
    let file = sanitize(&format!("{stem}.{ext}"));
    let mut path = PathBuf::new();
    if let Some(host) = f.scan_host {
        path.push("users");
        path.push(sanitize(truncate(&clean(host), COMPONENT_MAX)));
    }
    path.extend([month, dir, file]);
    path
}

/// `archive` joined with `relative`, refusing anything that could leave the archive.
pub fn under(archive: &Path, relative: &Path) -> Option<PathBuf> {
    let mut out = archive.to_path_buf();
    for c in relative.components() {
        match c {
            Component::Normal(part) => out.push(part),
            _ => return None,
        }
    }
    out.starts_with(archive).then_some(out)
}

/// Replaces what no file name should hold: separators, control characters, characters
/// Windows reserves; folds runs of spaces and underscores.
fn clean(s: &str) -> String {
    // Runs of dots ("..") read like path steps; a single dot is kept.
    let s = &collapse_dots(s);
    let mut out = String::with_capacity(s.len());
    let mut last_sep = false;
    for c in s.chars() {
        let bad = c.is_control()
            || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
            || c.is_whitespace();
        if bad {
            if !last_sep && !out.is_empty() {
                out.push('_');
            }
            last_sep = true;
        } else {
            out.push(c);
            last_sep = c == '_';
        }
    }
    out.trim_matches('_').to_string()
}

fn collapse_dots(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '.' && chars.peek() == Some(&'.') {
            while chars.peek() == Some(&'.') {
                chars.next();
            }
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

/// Makes a finished component safe on its own: no leading dots (hidden files, `..`), no
/// trailing dots or spaces (Windows drops them), no Windows device names, never empty.
pub fn sanitize(component: &str) -> String {
    let mut s = clean(component);
    s = s
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .to_string();
    if s.is_empty() {
        s = "untitled".into();
    }
    let stem = s.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        s.insert(0, '_');
    }
    truncate(&s, COMPONENT_MAX).to_string()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name<'a>(topic: &'a str, file_type: &'a str, ext: &'a str) -> FileName<'a> {
        FileName {
            topic,
            meeting_id: 85_123_456_789,
            scheduled_start: "2026-11-30T08:00:00Z".parse().expect("instant"),
            recording_start: Some("2026-11-30T08:01:02Z".parse().expect("instant")),
            timezone: chrono_tz::Europe::Berlin,
            file_type,
            recording_type: Some("shared_screen_with_speaker_view"),
            extension: ext,
            scan_host: None,
        }
    }

    #[test]
    fn a_meeting_zoomd_did_not_create_goes_under_its_host() {
        let mut n = name("Office hours", "MP4", "MP4");
        n.scan_host = Some("jane.doe@example.org");
        n.timezone = Tz::UTC;
        n.scheduled_start = "2026-11-30T08:01:00Z".parse().expect("instant");
        assert_eq!(
            relative_path(&n),
            PathBuf::from(
                "users/jane.doe@example.org/2026-11/2026-11-30_0801_Office_hours_85123456789/2026-11-30_080102_MP4_shared_screen_with_speaker_view.mp4"
            )
        );
        // A hostile host name stays one component inside the archive.
        for host in ["../../etc", "a/b", "..", "", "CON"] {
            n.scan_host = Some(host);
            let p = relative_path(&n);
            assert_eq!(p.components().count(), 5, "{p:?}");
            assert!(under(Path::new("/srv/archive"), &p).is_some(), "{p:?}");
        }
    }

    #[test]
    fn readable_layout_in_local_time() {
        let p = relative_path(&name("Weekly standup", "MP4", "MP4"));
        assert_eq!(
            p,
            PathBuf::from(
                "2026-11/2026-11-30_0900_Weekly_standup_85123456789/2026-11-30_090102_MP4_shared_screen_with_speaker_view.mp4"
            )
        );
    }

    #[test]
    fn hostile_topics_stay_inside() {
        let archive = Path::new("/srv/archive");
        let long = "é".repeat(500);
        for topic in [
            "../../etc/x",
            "..",
            "/",
            "a\0b",
            "CON",
            "nul",
            "COM1.txt",
            &long,
            "\u{202e}x\ty\nz",
            " . ",
        ] {
            for ext in ["../x", "", "MP4", "a/b"] {
                let rel = relative_path(&name(topic, "../MP4", ext));
                let full =
                    under(archive, &rel).unwrap_or_else(|| panic!("{topic:?} escaped: {rel:?}"));
                assert!(full.starts_with(archive));
                assert_eq!(rel.components().count(), 3, "{rel:?}");
                for c in rel.components() {
                    let s = c.as_os_str().to_str().expect("utf-8");
                    assert!(s.len() <= COMPONENT_MAX, "{s}");
                    assert!(
                        !s.starts_with('.') && !s.contains('\0') && !s.contains('/'),
                        "{s:?}"
                    );
                    assert!(
                        !["CON", "NUL", "COM1"].contains(
                            &s.split('.')
                                .next()
                                .unwrap_or("")
                                .to_ascii_uppercase()
                                .as_str()
                        ),
                        "{s}"
                    );
                }
            }
        }
    }

    #[test]
    fn under_refuses_escapes() {
        let archive = Path::new("/srv/archive");
        assert!(under(archive, Path::new("../x")).is_none());
        assert!(under(archive, Path::new("/etc/passwd")).is_none());
        assert!(under(archive, Path::new("a/./b")).is_some());
        assert_eq!(
            under(archive, Path::new("a/b")),
            Some(PathBuf::from("/srv/archive/a/b"))
        );
    }
}
