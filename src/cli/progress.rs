//! Progress for interactive commands (downloads, the account scan): bars (indicatif) on a terminal, plain lines
//! (start, each quarter, done) otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::store::FileRow;
use crate::sync::downloads::ProgressFn;
use crate::sync::scan;

/// The account scan's progress: a spinner line on a terminal, a line per user otherwise.
pub fn scan_reporter() -> scan::ProgressFn {
    let text = |p: &scan::Progress| {
        format!(
            "scan: {}/{} users, {} windows, {} files queued",
            p.users_done, p.users_total, p.windows_done, p.files_queued
        )
    };
    if std::io::stdout().is_terminal() {
        let bar = ProgressBar::new_spinner();
        Arc::new(move |p: scan::Progress| {
            bar.set_message(text(&p));
            bar.tick();
            if p.users_total > 0 && p.users_done >= p.users_total {
                bar.finish();
            }
        })
    } else {
        let last = Mutex::new(usize::MAX);
        Arc::new(move |p: scan::Progress| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            // A line when a user is done (not per window: a backfill has many).
            if *last != p.users_done {
                *last = p.users_done;
                println!("{}", text(&p));
            }
        })
    }
}

pub fn reporter() -> ProgressFn {
    if std::io::stdout().is_terminal() {
        bars()
    } else {
        lines()
    }
}

fn label(f: &FileRow) -> String {
    format!("{} {} {}", f.label(), f.start_utc, f.file_type)
}

fn bars() -> ProgressFn {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{msg:40!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let state: Mutex<HashMap<i64, ProgressBar>> = Mutex::new(HashMap::new());
    Arc::new(move |file: &FileRow, pos: u64, total: Option<u64>| {
        let mut bars = state.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(file.id).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(total.unwrap_or(0)));
            b.set_style(style.clone());
            b.set_message(label(file));
            b
        });
        bar.set_position(pos);
        if total.is_some_and(|t| pos >= t) {
            bar.finish();
            bars.remove(&file.id);
        }
    })
}

fn lines() -> ProgressFn {
    // The last quarter printed per file.
    let state: Mutex<HashMap<i64, u64>> = Mutex::new(HashMap::new());
    Arc::new(move |file: &FileRow, pos: u64, total: Option<u64>| {
        let mut seen = state.lock().unwrap_or_else(|e| e.into_inner());
        let quarter = match total {
            Some(t) if t > 0 => (pos.min(t) * 4 / t).min(4),
            _ => 0,
        };
        let last = seen.get(&file.id).copied();
        if last.is_none_or(|q| quarter > q) {
            seen.insert(file.id, quarter);
            match total {
                Some(t) => println!(
                    "download {}: {pos}/{t} bytes ({}%)",
                    label(file),
                    quarter * 25
                ),
                None => println!("download {}: {pos} bytes", label(file)),
            }
        }
        if total.is_some_and(|t| pos >= t) {
            seen.remove(&file.id);
        }
    })
}
