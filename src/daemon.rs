//! Wires the reconcile steps to time, signals and the schedule file. No business rules here.
//!
//! The loop computes the next instant any step is due — an occurrence entering the
//! `create_ahead` window, a deferred create, a recording poll — and sleeps until then, woken
//! early by shutdown or reload. Downloads run in their own task, woken when polls queue
//! files. An idle daemon sleeps; nothing runs on a short fixed tick.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sd_notify::NotifyState;
use tokio::sync::{Notify, mpsc, watch};

use crate::config::{ArchiveLocation, Config, ConfigError};
use crate::objects::{ObjectArchive, ObjectError, S3Env};
use crate::schedule;
use crate::shutdown::Shutdown;
use crate::store::{NewEvent, Store, StoreError};
use crate::sync::downloads::ProgressFn;
use crate::sync::{self, Clock, Ctx, SyncError, downloads, meetings, recordings, scan, verify};
use crate::zoom::{ClientConfig, ZoomClient, ZoomError};

/// A step that failed is tried again this much later.
const STEP_RETRY: Duration = Duration::seconds(60);
/// Even with nothing scheduled, the meetings step runs this often, so a change that no
/// wake-up foresaw (a create that became due through the database) is not missed for long.
const SAFETY_NET: Duration = Duration::hours(1);
/// With a shared (PostgreSQL) database, how long an idle download worker waits at most
/// before it looks at the queue again: other processes queue files (their polls and scans
/// wake only their own workers) and die holding some, whose leases then run out.
const SHARED_QUEUE_LOOK: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Zoom client: {0}")]
    Zoom(#[from] ZoomError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The object-storage credentials could not be read.
    #[error("archive: {0}")]
    Objects(String),
}

/// The Zoom client for a config.
pub fn zoom_client(config: &Config) -> Result<ZoomClient, DaemonError> {
    zoom_client_on(config, sync::system_clock())
}

/// The Zoom client for a config, reading time and waiting on `clock`.
fn zoom_client_on(config: &Config, clock: Clock) -> Result<ZoomClient, DaemonError> {
    let credentials = config.credentials()?.clone();
    let mut cc = ClientConfig::new(credentials);
    cc.api_url = config.zoom.api_url.clone();
    cc.oauth_url = config.zoom.oauth_url.clone();
    cc.pace = config.zoom.pace;
    cc.clock = clock;
    Ok(ZoomClient::new(cc)?)
}

/// Opens the database (migrating it) and builds the client: what every command that acts
/// needs. Interrupted downloads from an earlier run go back to the queue.
pub async fn start(config: &Config, clock: Clock) -> Result<Ctx, DaemonError> {
    // One clock for the steps and the client, so both see the same "now".
    let zoom = zoom_client_on(config, clock.clone())?;
    // The one-writer lock comes first: a second `run`/`sync` must not requeue the first
    // one's downloads or create what it is creating.
    let store = Store::open_writer(&config.daemon.database)
        .await?
        .with_lease(config.daemon.lease);
    let requeued = store.requeue_interrupted(clock.now()).await?;
    store.forget_claims_of_the_dead().await?;
    if matches!(store.database(), crate::store::Database::Postgres(_)) {
        // Several processes may share this database: `requests_per_second` is the
        // account's, so they share one budget.
        zoom.share_budget(Arc::new(BudgetInStore(store.clone())));
    }
    if requeued > 0 {
        tracing::info!(
            requeued,
            "interrupted downloads back in the queue; their .part files resume"
        );
    }
    let objects = match &config.daemon.archive {
        ArchiveLocation::Local(_) => None,
        ArchiveLocation::S3(location) => {
            let env = S3Env::from_process().map_err(DaemonError::Objects)?;
            let objects = ObjectArchive::new(location, &env)?;
            // Uploads a crash left unfinished: S3 keeps (and bills) them until aborted.
            let aborted = objects.abort_recorded(&store).await?;
            if aborted > 0 {
                tracing::info!(aborted, "unfinished uploads from an earlier run aborted");
            }
            Some(objects)
        }
    };
    Ok(Ctx {
        store,
        zoom,
        clock,
        objects,
    })
}

/// The account's request budget in the database (`request_places`), for processes that
/// share it.
struct BudgetInStore(Store);

/// Milliseconds since 1970: a budget window is about a second long.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl crate::zoom::SharedPlaces for BudgetInStore {
    fn take(
        &self,
        places: usize,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> futures_util::future::BoxFuture<'_, Result<Result<i64, DateTime<Utc>>, String>> {
        let places = i64::try_from(places).unwrap_or(i64::MAX);
        Box::pin(async move {
            match self
                .0
                .take_request_place(places, ms(now), ms(expires))
                .await
            {
                Ok(Ok(place)) => Ok(Ok(place)),
                Ok(Err(at)) => Ok(Err(DateTime::from_timestamp_millis(at).unwrap_or(now))),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn give_back(
        &self,
        place: i64,
        free_at: DateTime<Utc>,
    ) -> futures_util::future::BoxFuture<'static, ()> {
        let store = self.0.clone();
        Box::pin(async move {
            if let Err(e) = store.give_back_request_place(place, ms(free_at)).await {
                // It frees by itself when its hold runs out.
                tracing::warn!(error = %e, place, "cannot give a request place back");
            }
        })
    }
}

/// What one `zoomd sync` did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub meetings: meetings::Report,
    pub recordings: recordings::Report,
    pub downloads: downloads::Report,
    pub verify: verify::Report,
    pub scan: scan::Report,
}

/// One pass of every step: every user of the account scan is listed, whatever its cadence.
pub async fn sync_once(
    ctx: &Ctx,
    config: &Config,
    progress: Option<ProgressFn>,
    scan_progress: Option<scan::ProgressFn>,
) -> Result<PassReport, SyncError> {
    // A one-shot pass checks every host, however recently.
    let verify = verify::verify(ctx, chrono::Duration::zero()).await?;
    let meetings = meetings::reconcile(ctx, config).await?;
    let recordings = recordings::poll(ctx, config).await?;
    let scan = scan::run(ctx, config, scan::Due::All, scan_progress).await?;
    let downloads = downloads::run_due(ctx, config, &Shutdown::never(), progress).await?;
    Ok(PassReport {
        meetings,
        recordings,
        downloads,
        verify,
        scan,
    })
}

/// How the daemon is told to stop and to reload.
pub struct Control {
    pub shutdown: Shutdown,
    /// Each message asks for a reload of the config file.
    pub reload: tokio::sync::mpsc::Receiver<()>,
}

/// Installs SIGTERM/SIGINT (stop) and SIGHUP (reload) handlers.
pub fn signals() -> std::io::Result<Control> {
    use tokio::signal::unix::{SignalKind, signal};
    let (trigger, shutdown) = crate::shutdown::channel();
    let (reload_tx, reload) = tokio::sync::mpsc::channel(4);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); trigger.fire(); }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); trigger.fire(); }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the schedule");
                    let _ = reload_tx.try_send(());
                }
            }
        }
    });
    Ok(Control { shutdown, reload })
}

/// Runs until shutdown. `config` is the loaded, valid config from `config_path`. Nothing
/// ends it but shutdown: a failing step is logged and tried again later.
pub async fn run(
    config_path: PathBuf,
    config: Config,
    ctx: Ctx,
    mut control: Control,
    progress: Option<ProgressFn>,
    listener: Option<tokio::net::TcpListener>,
) {
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let wake_downloads = Arc::new(Notify::new());
    let worker = tokio::spawn(download_worker(
        ctx.clone(),
        config_rx.clone(),
        control.shutdown.clone(),
        wake_downloads.clone(),
        progress,
    ));
    let http = listener.map(|l| {
        tokio::spawn(crate::http::serve(
            l,
            ctx.clone(),
            config_rx.clone(),
            Arc::new(crate::metrics::Counts::default()),
            wake_downloads.clone(),
            control.shutdown.clone(),
        ))
    });
    // The account scan has its own task: a backfill of months must not hold up creates.
    let wake_scan = Arc::new(Notify::new());
    let scanner = tokio::spawn(scan_worker(
        ctx.clone(),
        config_rx.clone(),
        control.shutdown.clone(),
        wake_scan.clone(),
        wake_downloads.clone(),
    ));

    let mut next_meetings = ctx.now();
    // The first check comes one `verify_every` after the start: the start's own pass
    // creates what is missing anyway.
    let mut next_verify = ctx.now() + config_rx.borrow().daemon.verify_every;
    let mut next_polls_retry: Option<DateTime<Utc>> = None;
    let (file_tx, mut file_changed) = mpsc::unbounded_channel();
    // Keep the watcher alive for the whole run; without one (no inotify) SIGHUP still works.
    let _watcher = watch_file(&config_path, file_tx);
    // The loop and every request of its steps beat; the watchdog task pings systemd only
    // while the beat is recent (see `liveness`).
    let beat = ctx.zoom.heartbeat();
    let watchdog = watchdog_interval();
    let _watchdog = watchdog.map(|w| {
        let grace = w.max(LOOP_GRACE);
        AbortOnDrop(tokio::spawn(crate::liveness::watchdog(
            beat.clone(),
            w,
            grace,
            || notify(&[NotifyState::Watchdog]),
        )))
    });
    notify(&[NotifyState::Ready]);
    tracing::info!(config = %config_path.display(), "zoomd running");
    // When shutdown fires, a step starts no new item and the calls in flight get `DRAIN` to
    // finish, so their outcomes are recorded (a create cut off is only resolved at the next
    // start, after its settle time); then the step ends at its next await. What it recorded
    // stays recorded.
    macro_rules! step {
        ($fut:expr) => {{
            let fut = $fut;
            tokio::pin!(fut);
            tokio::select! {
                biased;
                _ = control.shutdown.wait() => {
                    ctx.zoom.stop_new_work();
                    let _ = tokio::time::timeout(DRAIN, &mut fut).await;
                    break;
                }
                r = &mut fut => r,
            }
        }};
    }
    loop {
        beat.beat();
        if control.shutdown.is_triggered() {
            break;
        }
        let config = config_rx.borrow().clone();
        let now = ctx.now();
        if next_verify <= now {
            // Each host once per `verify_every` between all the processes sharing the database.
            let fresh = config.daemon.verify_every / 2;
            next_verify = match step!(verify::verify(&ctx, fresh)) {
                Ok(r) => {
                    if r.gone > 0 {
                        next_meetings = ctx.now(); // create them again now
                    }
                    ctx.now() + config.daemon.verify_every
                }
                Err(e) => {
                    tracing::error!(error = %e, "drift check failed; retrying in a minute");
                    ctx.now() + STEP_RETRY
                }
            };
        }
        if next_meetings <= now {
            next_meetings = match step!(meetings::reconcile(&ctx, &config)) {
                Ok(r) => {
                    if r != meetings::Report::default() {
                        tracing::debug!(?r, "meetings step");
                    }
                    next_meetings_at(&ctx, &config).await
                }
                Err(e) => {
                    tracing::error!(error = %e, "meetings step failed; retrying in a minute");
                    ctx.now() + STEP_RETRY
                }
            };
        }
        if next_polls_retry.is_none_or(|t| t <= ctx.now()) {
            next_polls_retry = None;
            match step!(recordings::poll(&ctx, &config)) {
                Ok(r) => {
                    if r.found > 0 || r.polled > 0 {
                        wake_downloads.notify_one();
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "recordings step failed; retrying in a minute");
                    next_polls_retry = Some(ctx.now() + STEP_RETRY);
                }
            }
        }
        let next_poll = match next_polls_retry {
            Some(t) => Some(t),
            None => ctx.store.next_poll_at().await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the poll schedule");
                Some(ctx.now() + STEP_RETRY)
            }),
        };
        let wake = next_poll
            .map_or(next_meetings, |p| p.min(next_meetings))
            .min(next_verify);
        let mut sleep = (wake - ctx.now()).to_std().unwrap_or_default();
        if watchdog.is_some() || http.is_some() {
            // Under the watchdog (or `/healthz`) even an idle loop turns (and beats) within
            // its grace.
            sleep = sleep.min(LOOP_GRACE / 2);
        }
        notify(&[NotifyState::Status(&status_line(&ctx, &config).await)]);
        tracing::trace!(wake = %crate::store::ts(wake), "sleeping");
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = control.shutdown.wait() => break,
            Some(()) = control.reload.recv() => {
                notify(&[NotifyState::Reloading]);
                reload(&ctx, &config_path, &config_tx).await;
                notify(&[NotifyState::Ready]);
                next_meetings = ctx.now();
                // Also a way to make the daemon see `zoomd retry` at once.
                wake_downloads.notify_one();
                wake_scan.notify_one();
            }
            Some(()) = file_changed.recv() => {
                // Editors write in bursts (truncate, write, rename): wait for quiet.
                while let Ok(Some(())) =
                    tokio::time::timeout(std::time::Duration::from_millis(300), file_changed.recv()).await
                {}
                if config_changed(&config_path, &config) {
                    notify(&[NotifyState::Reloading]);
                    reload(&ctx, &config_path, &config_tx).await;
                    notify(&[NotifyState::Ready]);
                    next_meetings = ctx.now();
                    wake_scan.notify_one();
                }
            }
        }
    }
    notify(&[NotifyState::Stopping]);
    tracing::info!("stopping: letting downloads reach a safe point");
    if let Err(e) = worker.await {
        tracing::error!(error = %e, "download worker ended abnormally");
    }
    if let Err(e) = scanner.await {
        tracing::error!(error = %e, "scan worker ended abnormally");
    }
    if let Some(h) = http
        && let Err(e) = h.await
    {
        tracing::error!(error = %e, "HTTP listener ended abnormally");
    }
    ctx.store.close().await;
    tracing::info!("stopped");
}

/// How long the loop may go without a beat before the watchdog is withheld: longer than
/// one request to Zoom may take (30 s) plus a wait between attempts (at most 5 s).
/// How long the calls in flight may take to finish after SIGTERM (systemd waits 90 s by
/// default; operators expect well under 10).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

const LOOP_GRACE: std::time::Duration = std::time::Duration::from_secs(45);

/// Aborts the task when dropped (the watchdog ends with the loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tells systemd, when started by it (no-op otherwise).
fn notify(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The watchdog interval systemd asked for, if any.
fn watchdog_interval() -> Option<std::time::Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| std::time::Duration::from_micros(usec))
}

/// One line for `systemctl status`: next meeting, queue, last error. The same status read
/// as `zoomd status` (indexed counts, one row per section).
async fn status_line(ctx: &Ctx, config: &Config) -> String {
    let now = ctx.now();
    let status = match ctx.store.status(now, now, 1).await {
        Ok(s) => s,
        Err(e) => return format!("{} entries; status unavailable: {e}", config.meetings.len()),
    };
    let next = status.upcoming.first().map_or_else(
        || "no meeting scheduled".to_string(),
        |m| format!("next {} at {}", m.key, m.start_local),
    );
    let c = &status.counts;
    let queue = format!(
        "{} files queued, {} failures",
        c.files_queued + c.files_downloading,
        c.failures()
    );
    let last = status
        .last_error
        .map(|e| {
            format!(
                "; last error {}: {}",
                crate::store::ts(e.at),
                e.message.chars().take(120).collect::<String>()
            )
        })
        .unwrap_or_default();
    format!("{} entries; {next}; {queue}{last}", config.meetings.len())
}

/// Watches the schedule file's directory (editors replace files by rename) and reports
/// events about the file.
fn watch_file(path: &Path, tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let name = path.file_name()?.to_os_string();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !ev.kind.is_access()
            && ev
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = tx.send(());
        }
    };
    match notify::recommended_watcher(handler) {
        Ok(mut w) => match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the schedule file; reload with SIGHUP");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the schedule file; reload with SIGHUP");
            None
        }
    }
}

/// Whether the file on disk differs from what `config` was loaded from.
fn config_changed(path: &Path, config: &Config) -> bool {
    std::fs::read_to_string(path).map_or(true, |text| text != config.source)
}

/// Reloads the config; an invalid file keeps the last good schedule in force.
async fn reload(ctx: &Ctx, path: &Path, tx: &watch::Sender<Arc<Config>>) {
    match Config::load(path) {
        Ok(new) => {
            for w in &new.warnings {
                tracing::warn!("{w}");
            }
            tracing::info!(entries = new.meetings.len(), "schedule reloaded");
            if new.source != tx.borrow().source {
                // A changed file may fix a host Zoom did not know: ask again now.
                match ctx.store.forget_missing_hosts(ctx.now()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(occurrences = n, "creates for missing hosts are due again")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot requeue creates for missing hosts")
                    }
                }
            }
            ctx.event(NewEvent {
                kind: "reloaded",
                message: format!("{}: {} entries", path.display(), new.meetings.len()),
                ..NewEvent::default()
            })
            .await;
            let _ = tx.send(Arc::new(new));
        }
        Err(e) => {
            tracing::error!("reload failed, keeping the last good schedule: {e}");
            ctx.event(NewEvent {
                kind: "reload-failed",
                message: e.to_string(),
                ..NewEvent::default()
            })
            .await;
        }
    }
}

/// When the meetings step is next due: an occurrence entering the window, a deferred or
/// failed create coming due, an unresolved create to look for, or the hourly safety net.
async fn next_meetings_at(ctx: &Ctx, config: &Config) -> DateTime<Utc> {
    let now = ctx.now();
    let ahead = config.daemon.create_ahead;
    let window_end = now + ahead;
    let mut next = now + SAFETY_NET;
    for entry in &config.meetings {
        if let Some(o) = schedule::next(entry, window_end, 1).first() {
            next = next.min(o.start - ahead);
        }
    }
    match ctx.store.next_create_attempt().await {
        Ok(Some(t)) => next = next.min(t),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot read deferred creates"),
    }
    match ctx.store.unresolved_creates().await {
        // An unanswered create is looked for again soon (it settles within a minute).
        Ok(rows) if !rows.is_empty() => next = next.min(now + Duration::seconds(15)),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot read unresolved creates"),
    }
    next.max(now)
}

async fn download_worker(
    ctx: Ctx,
    config: watch::Receiver<Arc<Config>>,
    mut shutdown: Shutdown,
    wake: Arc<Notify>,
    progress: Option<ProgressFn>,
) {
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let cfg = config.borrow().clone();
        if let Err(e) = sync::downloads::run_due(&ctx, &cfg, &shutdown, progress.clone()).await {
            tracing::error!(error = %e, "downloads step failed; retrying in a minute");
        }
        let next = match ctx.store.next_download_at().await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the download queue");
                Some(ctx.now() + STEP_RETRY)
            }
        };
        let now = ctx.now();
        let mut sleep = next
            .map(|t| (t - now).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600));
        if ctx.store.database().is_postgres() {
            sleep = sleep.min(SHARED_QUEUE_LOOK);
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// The account scan and the refreshes of its stale URLs, until shutdown. A newly listed
/// recording wakes the downloads.
async fn scan_worker(
    ctx: Ctx,
    config: watch::Receiver<Arc<Config>>,
    mut shutdown: Shutdown,
    wake: Arc<Notify>,
    wake_downloads: Arc<Notify>,
) {
    // The account's user list is read at the start and after each reload, besides when a
    // user is due.
    let mut look = true;
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let cfg = config.borrow().clone();
        let pass = scan::run(&ctx, &cfg, scan::Due::Scheduled { look }, None);
        look = false;
        tokio::pin!(pass);
        let result = tokio::select! {
            r = &mut pass => r,
            _ = shutdown.wait() => {
                // Each completed window is stored; what is cut off is listed again.
                ctx.zoom.stop_new_work();
                let _ = tokio::time::timeout(DRAIN, &mut pass).await;
                return;
            }
        };
        let retry = match result {
            Ok(r) => {
                if r.recordings > 0 || r.refreshed > 0 {
                    wake_downloads.notify_one();
                }
                if r != scan::Report::default() {
                    tracing::debug!(?r, "scan step");
                }
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "scan step failed; retrying in a minute");
                Some(ctx.now() + STEP_RETRY)
            }
        };
        let next = match retry {
            Some(t) => Some(t),
            None => scan::next_due(&ctx, &cfg).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the scan schedule");
                Some(ctx.now() + STEP_RETRY)
            }),
        };
        // A download that finds its URL stale asks for a refresh without waking this task:
        // it is seen within `poll_every`, as a poll of zoomd's own meetings would be.
        let cap = cfg.daemon.poll_every.to_std().unwrap_or_default();
        let sleep = next
            .map(|t| (t - ctx.now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600))
            .min(cap);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => look = true,
            _ = shutdown.wait() => return,
        }
    }
}
