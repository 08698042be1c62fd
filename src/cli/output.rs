//! What the commands print: aligned tables for people, one JSON document with `--json`, and
//! the read-only open every listing shares.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{EXIT_RUNTIME, load};
use crate::store::{Database, Store, StoreError, ts};

/// Loads the config (exit 2 when invalid) and opens its database read-only (exit 1).
pub(super) async fn open_read_only(config_path: &Path) -> Result<Store, ExitCode> {
    let config = load(config_path)?;
    Store::open_read_only(&config.daemon.database)
        .await
        .map_err(|e| fail(&e))
}

/// The daemon's database for a small write beside it (`retry`, `apply`): it must exist,
/// since `Store::open` would create an empty one.
pub(super) async fn open_existing(db: &Database) -> Result<Store, StoreError> {
    require(db)?;
    Store::open(db).await
}

/// The database must exist (the daemon's, not a fresh one). A PostgreSQL database is the
/// operator's to create; zoomd makes its tables in it.
pub(super) fn require(db: &Database) -> Result<(), StoreError> {
    match db.sqlite_path() {
        Some(path) if !path.exists() => Err(StoreError::Missing {
            path: path.display().to_string(),
        }),
        _ => Ok(()),
    }
}

pub(super) fn fail(e: &StoreError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(EXIT_RUNTIME)
}

/// Prints `doc` as pretty JSON, or the human form. A closed stdout (`| head`) is no error.
pub(super) fn emit<T: Serialize>(
    json: bool,
    doc: &T,
    human: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, doc)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        human(&mut out)
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write to stdout: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// The three columns every listing shows a meeting's start in: local with its zone, and UTC.
pub(super) const START_HEAD: [&str; 3] = ["START (LOCAL)", "ZONE", "START (UTC)"];

pub(super) fn start_cells(local: &str, zone: Tz, utc: DateTime<Utc>) -> [String; 3] {
    [local.to_string(), zone.name().to_string(), ts(utc)]
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
pub(super) struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// One row per item: `lead` columns, the start columns, then `rest`; `cells` gives each
    /// item's three groups of cells.
    pub(super) fn of<T>(
        items: &[T],
        lead: &[&str],
        rest: &[&str],
        cells: impl Fn(&T) -> (Vec<String>, [String; 3], Vec<String>),
    ) -> Table {
        let head: Vec<&str> = lead
            .iter()
            .chain(&START_HEAD)
            .chain(rest)
            .copied()
            .collect();
        let mut t = Table::new(&head);
        for item in items {
            let (lead, start, rest) = cells(item);
            t.row(lead.into_iter().chain(start).chain(rest).collect());
        }
        t
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| cell(c)).collect());
    }

    pub(super) fn write(
        &self,
        out: &mut (impl Write + ?Sized),
        indent: &str,
    ) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        for r in std::iter::once(&self.head).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                if i + 1 < r.len() {
                    let pad = w.saturating_sub(c.chars().count());
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// One line, whatever the stored text holds (error messages can span lines).
pub(super) fn cell(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub(super) fn dash() -> String {
    "-".to_string()
}

pub(super) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(dash)
}

/// 1536 -> "1.5 KiB".
pub(super) fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_leave_the_last_column_unpadded() {
        let mut t = Table::new(&["A", "LONGER", "LAST"]);
        t.row(vec!["wide cell".into(), "x".into(), "tail\nline".into()]);
        t.row(vec!["é".into(), "-".into(), "-".into()]);
        let mut out = Vec::new();
        t.write(&mut out, "  ").expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "  A          LONGER  LAST\n  wide cell  x       tail line\n  é          -       -\n"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
