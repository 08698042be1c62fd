//! `zoomd plan` (what the next meetings pass would do; reads the file and the database, calls
//! nobody, writes nothing) and `zoomd apply` (confirms the cancellations a plan holds).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{Table, emit, fail, open_read_only, opt, require, start_cells};
use super::{EXIT_RUNTIME, load};
use crate::config::Config;
use crate::store::{NewEvent, Store, StoreError, ts};
use crate::sync::plan::{self, Action, Cancellation, Item, Plan, Waiting};
use crate::sync::{Ctx, meetings, system_clock};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// One JSON document on stdout (field names: README, "Held cancellations")
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// One JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

pub async fn plan(config_path: &Path, args: &PlanArgs) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_read_only(config_path).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = plan::plan(&store, &config, Utc::now(), &HashSet::new()).await;
    store.close().await;
    match result {
        Ok(p) => {
            let doc = PlanJson::from(&p);
            emit(args.json, &doc, |out| write_plan(out, &doc))
        }
        Err(e) => fail(&e),
    }
}

pub async fn apply(config_path: &Path, args: &ApplyArgs) -> ExitCode {
    let config = match load(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let db = &config.daemon.database;
    if let Err(e) = require(db) {
        return fail(&e);
    }
    // With the lock free no daemon runs: apply carries the cancellations out itself, as the
    // one writer. Else the running daemon does, woken as by SIGHUP.
    let (store, daemon) = match Store::open_writer(db).await {
        Ok(s) => (s, None),
        Err(StoreError::Locked { pid, .. }) => match Store::open(db).await {
            Ok(s) => (s, Some(pid)),
            Err(e) => return fail(&e),
        },
        Err(e) => return fail(&e),
    };
    let now = Utc::now();
    let confirmed = match confirm(&store, &config, now).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut doc = ApplyJson {
        confirmed: confirmed.len(),
        cancelled: 0,
        daemon_pid: daemon.flatten(),
        cancellations: confirmed,
    };
    let outcome = match daemon {
        _ if doc.confirmed == 0 => Ok(()),
        Some(pid) => wake(pid),
        None => carry_out(&store, &config).await.map(|n| doc.cancelled = n),
    };
    store.close().await;
    if let Err(message) = outcome {
        eprintln!("{message}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    emit(args.json, &doc, |out| match (doc.confirmed, daemon) {
        (0, _) => writeln!(out, "no held cancellations"),
        (n, Some(Some(pid))) => writeln!(
            out,
            "confirmed {n} held cancellation(s); the running zoomd (pid {pid}) carries them out now"
        ),
        (n, Some(None)) => writeln!(
            out,
            "confirmed {n} held cancellation(s); the running zoomd carries them out at its next pass"
        ),
        (n, None) => writeln!(
            out,
            "confirmed {n} held cancellation(s); cancelled {}",
            doc.cancelled
        ),
    })
}

/// Confirms every cancellation the plan holds now; returns them.
async fn confirm(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<Cancellation>, StoreError> {
    let p = plan::plan(store, config, now, &HashSet::new()).await?;
    let held: Vec<Cancellation> = p.cancellations.into_iter().filter(|c| c.held).collect();
    for c in &held {
        store.confirm_cancellation(c.row.id, now).await?;
        let e = NewEvent::about(
            "cancel-confirmed",
            &c.row,
            format!(
                "{} at {}: confirmed by zoomd apply",
                c.row.key,
                ts(c.row.start_utc)
            ),
        );
        store.add_event(&e, now).await?;
    }
    Ok(held)
}

/// Wakes the running daemon as SIGHUP does: it reloads and runs the meetings pass at once.
fn wake(pid: Option<u32>) -> Result<(), String> {
    let Some(pid) = pid else {
        return Ok(()); // it sees the confirmations at its next pass
    };
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} is out of range"))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| {
        format!("confirmed, but cannot wake the running zoomd (pid {pid}): {e}; it carries them out at its next pass")
    })
}

/// No daemon runs: cancel the confirmed occurrences here, under the lock.
async fn carry_out(store: &Store, config: &Config) -> Result<usize, String> {
    let zoom = crate::daemon::zoom_client(config).map_err(|e| e.to_string())?;
    let ctx = Ctx {
        store: store.clone(),
        zoom,
        clock: system_clock(),
        objects: None,
    };
    let report = meetings::cancel_confirmed(&ctx, config)
        .await
        .map_err(|e| format!("cancelling: {e}"))?;
    Ok(report.cancelled)
}

// ---------------------------------------------------------------------------------------------
// the documents

#[derive(Debug, Serialize)]
struct PlanJson<'a> {
    now: DateTime<Utc>,
    creates: Vec<&'a Action>,
    updates: Vec<&'a Action>,
    cancellations: &'a [Cancellation],
    /// Past a host's daily cap now, or waiting for a later attempt.
    deferrals: Vec<Deferral<'a>>,
    unresolved: &'a [Item],
}

#[derive(Debug, Serialize)]
struct Deferral<'a> {
    #[serde(flatten)]
    item: &'a Item,
    until: Option<DateTime<Utc>>,
    reason: String,
}

impl<'a> From<&'a Plan> for PlanJson<'a> {
    fn from(p: &'a Plan) -> Self {
        let now_or_cap = |a: &&Action| a.deferred_until().is_none();
        let capped = p.actions.iter().filter_map(|a| {
            a.deferred_until().map(|until| Deferral {
                item: a.item(),
                until: Some(until),
                reason: format!("daily create/update cap of {} reached", plan::DAILY_CAP),
            })
        });
        let waiting = p.waiting.iter().map(|w: &'a Waiting| Deferral {
            item: &w.item,
            until: w.not_before,
            reason: format!(
                "{}: {}",
                w.state,
                w.reason.as_deref().unwrap_or("no reason recorded")
            ),
        });
        PlanJson {
            now: p.now,
            creates: p
                .actions
                .iter()
                .filter(now_or_cap)
                .filter(|a| matches!(a, Action::Create { .. }))
                .collect(),
            updates: p
                .actions
                .iter()
                .filter(now_or_cap)
                .filter(|a| matches!(a, Action::Update { .. }))
                .collect(),
            cancellations: &p.cancellations,
            deferrals: capped.chain(waiting).collect(),
            unresolved: &p.unresolved,
        }
    }
}

#[derive(Debug, Serialize)]
struct ApplyJson {
    confirmed: usize,
    /// Carried out by `apply` itself (no daemon running).
    cancelled: usize,
    daemon_pid: Option<u32>,
    cancellations: Vec<Cancellation>,
}

fn write_plan(out: &mut impl Write, p: &PlanJson<'_>) -> std::io::Result<()> {
    writeln!(
        out,
        "plan at {} (nothing is sent; `zoomd sync` or the daemon carries it out)",
        ts(p.now)
    )?;
    let section = |out: &mut dyn Write, title: &str, n: usize, table: Table| {
        writeln!(out)?;
        if n == 0 {
            return writeln!(out, "no {title}");
        }
        writeln!(out, "{} ({n}):", capitalised(title))?;
        table.write(&mut *out, "  ")
    };
    let item_row = |i: &Item| (vec![], start_cells(&i.start_local, i.timezone, i.start_utc));
    let creates = Table::of(&p.creates, &[], &["KEY", "TOPIC", "HOST"], |a| {
        let i = a.item();
        let (lead, start) = item_row(i);
        (
            lead,
            start,
            vec![i.key.clone(), i.topic.clone(), i.host.clone()],
        )
    });
    section(out, "creates", p.creates.len(), creates)?;
    let updates = Table::of(&p.updates, &[], &["KEY", "MEETING ID", "CHANGES"], |a| {
        let i = a.item();
        let changes = match a {
            Action::Update { changes, .. } => changes.join(", "),
            Action::Create { .. } => String::new(),
        };
        let (lead, start) = item_row(i);
        (lead, start, vec![i.key.clone(), opt(i.meeting_id), changes])
    });
    section(out, "updates", p.updates.len(), updates)?;
    let cancels = Table::of(p.cancellations, &[], &["KEY", "MEETING ID", "WHAT"], |c| {
        let what = match (c.held, c.confirmed) {
            (true, _) => "held: `zoomd apply` carries it out",
            (false, true) => "confirmed by `zoomd apply`",
            (false, false) => "cancelled at the next pass",
        };
        let (lead, start) = item_row(&c.item);
        (
            lead,
            start,
            vec![c.item.key.clone(), opt(c.item.meeting_id), what.into()],
        )
    });
    section(out, "cancellations", p.cancellations.len(), cancels)?;
    let deferrals = Table::of(&p.deferrals, &[], &["KEY", "UNTIL (UTC)", "REASON"], |d| {
        let (lead, start) = item_row(d.item);
        (
            lead,
            start,
            vec![d.item.key.clone(), opt(d.until.map(ts)), d.reason.clone()],
        )
    });
    section(out, "deferrals", p.deferrals.len(), deferrals)?;
    let unresolved = Table::of(p.unresolved, &[], &["KEY", "TOPIC", "HOST"], |i| {
        let (lead, start) = item_row(i);
        (
            lead,
            start,
            vec![i.key.clone(), i.topic.clone(), i.host.clone()],
        )
    });
    section(
        out,
        "unresolved creates (looked for at Zoom before anything new)",
        p.unresolved.len(),
        unresolved,
    )
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
