//! The state database: the only code that holds SQL.
//!
//! SQLite (the default: one file, nothing to run) or PostgreSQL (several processes share
//! the state) through sqlx with runtime-checked queries (a build never needs a database).
//! SQLite: WAL so `sqlite3` and `zoomd status` read while the daemon writes, a busy timeout,
//! foreign keys on, one writer at a time (a lock file). PostgreSQL: the same tables and
//! views (migrations/postgres), migrated under sqlx's advisory lock. Every statement runs on
//! both engines (see the `engine` module); the rest of the code sees one `Store`.
//! Every method is one state transition or one read; none takes the clock — `now` is a
//! parameter, so the pipeline's time logic is testable.

mod claims;
mod database;
mod engine;
mod parts;
pub mod queries;
mod rows;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use claims::{SCAN, VERIFY};
pub use database::{Database, PgTarget};
use engine::{Pool, query, query_as, query_scalar};
pub use parts::PartState;
pub use rows::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: cannot create its directory: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path}: not found (has `zoomd run` or `zoomd sync` created it yet?)")]
    Missing { path: String },
    /// Another process holds the one-writer lock.
    #[error("another zoomd ({}) holds {lock}; one `zoomd run`, `sync` or `demo` at a time may write the state", .pid.map_or("pid unknown".to_string(), |p| format!("pid {p}")))]
    Locked { lock: String, pid: Option<u32> },
    #[error("{lock}: cannot take the one-writer lock: {source}")]
    Lock {
        lock: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database {path}: migration failed: {source}")]
    Migrate {
        path: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database: {op}: {source}")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database: {op}: {message}")]
    Invalid { op: &'static str, message: String },
    /// A stored value does not parse; names the row so a person can look at it.
    #[error("database: {op}: {source}")]
    Corrupt {
        op: &'static str,
        #[source]
        source: Corrupt,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

fn q(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| match source {
        sqlx::Error::Decode(inner) => match inner.downcast::<Corrupt>() {
            Ok(c) => StoreError::Corrupt { op, source: *c },
            Err(other) => StoreError::Query {
                op,
                source: sqlx::Error::Decode(other),
            },
        },
        source => StoreError::Query { op, source },
    }
}

/// Formats an instant the way the database stores it.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a stored instant.
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An instant computed in SQL (`min(...)`): `None` when there is none, an error when the
/// stored text is not an instant.
fn instant(
    op: &'static str,
    column: &'static str,
    s: Option<String>,
) -> Result<Option<DateTime<Utc>>> {
    match s {
        None => Ok(None),
        Some(s) => parse_ts(&s).map(Some).ok_or_else(|| StoreError::Invalid {
            op,
            message: format!("{column} holds '{s}', not an instant (YYYY-MM-DDTHH:MM:SSZ)"),
        }),
    }
}

/// The key a host's daily calls count under (`?1` = the host as written).
const QUOTA_KEY: &str = "coalesce((SELECT user_id FROM host_ids WHERE host = ?1), ?1)";

/// SQLite's migrations (the files directly in migrations/; sqlx skips the subdirectory).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
/// PostgreSQL's: the same versions, each making the same change in PostgreSQL's words.
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A file row this process may write: no lease on it, or this process's (`?` = the holder).
const HELD: &str = "(lease_holder IS NULL OR lease_holder = ?)";

/// The default `[daemon] lease`.
pub const DEFAULT_LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// Who this process is in `lease_holder`, and how long its claims hold.
#[derive(Clone, Debug)]
struct Lease {
    holder: Arc<str>,
    length: chrono::Duration,
}

impl Lease {
    /// `host:pid:nonce`: readable in psql, and unique even for a pid reused after a restart.
    fn new() -> Lease {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        let nonce: u32 = rand::random();
        Lease {
            holder: format!("{host}:{}:{nonce:08x}", std::process::id()).into(),
            length: DEFAULT_LEASE,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    database: Database,
    lease: Lease,
    /// Held by the one writer (see [`Store::open_writer`]) while any clone lives.
    _writer: Option<Arc<WriterLock>>,
}

/// The one-writer lock: `flock` on `<database>.lock`, released by the kernel however the
/// process ends. The file holds the holder's pid for the message the next one prints.
#[derive(Debug)]
struct WriterLock {
    _file: std::fs::File,
}

/// Where the one-writer lock of a database lives.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl WriterLock {
    fn take(database: &Path) -> Result<WriterLock> {
        use std::io::{Read, Write};
        let path = lock_path(database);
        let lock = path.display().to_string();
        let io = |source| StoreError::Lock {
            lock: lock.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder may be writing its pid right now: then it is "unknown".
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::Locked {
                    lock,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(WriterLock { _file: file })
    }
}

impl Store {
    /// Opens as the one writer (`run`, `sync`, `demo`). SQLite: takes the lock beside the
    /// database first, so a second writer stops before it touches anything, then opens and
    /// migrates. PostgreSQL has no one writer (processes share the work): open and migrate.
    pub async fn open_writer(database: impl Into<Database>) -> Result<Store> {
        let database = database.into();
        let Database::Sqlite(path) = &database else {
            return Store::open(database).await;
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.display().to_string(),
                source,
            })?;
        }
        let lock = WriterLock::take(path)?;
        let mut store = Store::open(database).await?;
        store._writer = Some(Arc::new(lock));
        Ok(store)
    }

    /// Opens (SQLite: creating file and parent directories if missing) and migrates.
    pub async fn open(database: impl Into<Database>) -> Result<Store> {
        let database = database.into();
        let pool = match &database {
            Database::Sqlite(path) => Pool::Sqlite(open_sqlite(path).await?),
            Database::Postgres(pg) => Pool::Postgres(open_postgres(pg, false).await?),
        };
        Ok(Store {
            pool,
            database,
            lease: Lease::new(),
            _writer: None,
        })
    }

    /// Opens an existing database for reading only (the query commands), never migrating or
    /// writing, so it cannot disturb a running daemon.
    pub async fn open_read_only(database: impl Into<Database>) -> Result<Store> {
        let database = database.into();
        let display = database.to_string();
        let pool = match &database {
            Database::Sqlite(path) => {
                if !path.exists() {
                    return Err(StoreError::Missing { path: display });
                }
                let opts = base_options(path).read_only(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(opts)
                    .await
                    .map_err(|source| StoreError::Open {
                        path: display,
                        source,
                    })?;
                Pool::Sqlite(pool)
            }
            Database::Postgres(pg) => {
                let pool = open_postgres(pg, true).await?;
                // No tables yet: say so as for a missing file, not "relation does not exist".
                let made: Option<String> =
                    sqlx::query_scalar("SELECT to_regclass('occurrences')::text")
                        .fetch_one(&pool)
                        .await
                        .map_err(|source| StoreError::Open {
                            path: display.clone(),
                            source,
                        })?;
                if made.is_none() {
                    pool.close().await;
                    return Err(StoreError::Missing { path: display });
                }
                Pool::Postgres(pool)
            }
        };
        Ok(Store {
            pool,
            database,
            lease: Lease::new(),
            _writer: None,
        })
    }

    /// Where the state lives.
    pub fn database(&self) -> &Database {
        &self.database
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// SQLite's `PRAGMA integrity_check`: "ok" when the file is sound. PostgreSQL keeps its
    /// own pages checked (there is no such statement): "ok" once the server answers.
    pub async fn integrity_check(&self) -> Result<String> {
        let sql = if self.pool.is_postgres() {
            "SELECT 'ok'::text"
        } else {
            "PRAGMA integrity_check"
        };
        query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(q("integrity check"))
    }

    // -----------------------------------------------------------------------------------------
    // occurrences

    /// Records the intent to create a meeting (state `creating`) before the call to Zoom,
    /// durably (it survives a power cut). The intent is a claim: `Some(row)` only when this
    /// write made the row; `None` when the occurrence was already known, and then the caller
    /// must not call Zoom for it.
    pub async fn record_create_intent(
        &self,
        o: &NewOccurrence,
        now: DateTime<Utc>,
    ) -> Result<Option<OccurrenceRow>> {
        let claimed = self
            .insert_occurrence(o, OccurrenceState::Creating, None, None, now)
            .await?;
        if !claimed {
            return Ok(None);
        }
        self.occurrence_by_key(&o.key, o.start_utc)
            .await?
            .map(Some)
            .ok_or(StoreError::Invalid {
                op: "record create intent",
                message: format!("row for {} at {} vanished", o.key, ts(o.start_utc)),
            })
    }

    /// Records an occurrence that must wait (daily cap) before its create is attempted.
    pub async fn record_deferred(
        &self,
        o: &NewOccurrence,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.insert_occurrence(o, OccurrenceState::Deferred, Some(until), Some(reason), now)
            .await?;
        Ok(())
    }

    /// Inserts an occurrence unless it is known (true when this write inserted it); a
    /// `creating` row counts its first attempt and is committed durably.
    async fn insert_occurrence(
        &self,
        o: &NewOccurrence,
        state: OccurrenceState,
        not_before: Option<DateTime<Utc>>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let creating = state == OccurrenceState::Creating;
        let lease_until = now + self.lease.length;
        let now = ts(now);
        let settings = settings_text(&o.settings);
        let query = query(
            "INSERT INTO occurrences (key, start_utc, start_local, timezone, duration_min, host,
                 topic, agenda, settings_json, marker, state, attempts, not_before, last_error,
                 created_at, updated_at, lease_holder, lease_until)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (key, start_utc) DO NOTHING",
        )
        .bind(&o.key)
        .bind(ts(o.start_utc))
        .bind(&o.start_local)
        .bind(o.timezone.name())
        .bind(i64::from(o.duration_min))
        .bind(&o.host)
        .bind(&o.topic)
        .bind(&o.agenda)
        .bind(&settings)
        .bind(&o.marker)
        .bind(state)
        .bind(i64::from(creating))
        .bind(not_before.map(ts))
        .bind(reason)
        .bind(&now)
        .bind(&now)
        // A create in flight is this process's until its lease runs out (`claims`).
        .bind(creating.then(|| &*self.lease.holder))
        .bind(creating.then(|| ts(lease_until)));
        let claimed = if creating {
            self.durably(query).await
        } else {
            query.execute(&self.pool).await
        };
        Ok(claimed.map_err(q("record occurrence"))?.rows_affected() == 1)
    }

    /// Marks a deferred/failed/cancelled occurrence (or one whose outcome was not found) as
    /// being created again, refreshing what will be sent; durable, like a first intent. True
    /// when this write claimed it (it was in one of those states, and no other process
    /// holds it): the lease is then this process's.
    pub async fn retry_create_intent(
        &self,
        id: i64,
        o: &NewOccurrence,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let settings = settings_text(&o.settings);
        let query = query(
            "UPDATE occurrences SET state = 'creating', attempts = attempts + 1, not_before = NULL,
                 missing_host = NULL,
                 start_local = ?3, duration_min = ?4, host = ?5, topic = ?6, agenda = ?7,
                 settings_json = ?8, updated_at = ?2, lease_holder = ?1, lease_until = ?10
             WHERE id = ?9 AND state IN ('creating', 'deferred', 'failed', 'cancelled')
               AND (lease_holder IS NULL OR lease_holder = ?1 OR lease_until <= ?2)",
        )
        .bind(&*self.lease.holder)
        .bind(ts(now))
        .bind(&o.start_local)
        .bind(i64::from(o.duration_min))
        .bind(&o.host)
        .bind(&o.topic)
        .bind(&o.agenda)
        .bind(&settings)
        .bind(id)
        .bind(ts(now + self.lease.length));
        let r = self
            .durably(query)
            .await
            .map_err(q("retry create intent"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Runs one write durably: committed to disk before this returns, so a request sent
    /// afterwards never outlives the record of it. SQLite: with `synchronous = FULL`; the rest
    /// of the daemon's writes stay NORMAL (one fsync per commit costs ~4 ms on this disk,
    /// against ~0.04 ms). PostgreSQL: every commit is (`synchronous_commit` on).
    async fn durably(
        &self,
        query: engine::Query,
    ) -> std::result::Result<engine::Done, sqlx::Error> {
        let Pool::Sqlite(pool) = &self.pool else {
            return query.execute(&self.pool).await;
        };
        let mut conn = full_sync(pool).await?;
        let rows = query
            .sqlite()
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected());
        normal_sync(conn).await;
        Ok(engine::Done::new(rows?))
    }

    /// How durable the intent writes are, as SQLite's `synchronous` level on their path (2 =
    /// FULL). PostgreSQL: 2 when `synchronous_commit` waits for the disk (on, remote_write,
    /// remote_apply, local), else 0.
    pub async fn intent_synchronous(&self) -> Result<i64> {
        let pool = match &self.pool {
            Pool::Sqlite(pool) => pool,
            Pool::Postgres(_) => {
                let level: String = query_scalar("SELECT current_setting('synchronous_commit')")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(q("read synchronous_commit"))?;
                return Ok(if level == "off" { 0 } else { 2 });
            }
        };
        let mut conn = full_sync(pool).await.map_err(q("read synchronous"))?;
        let level = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .map_err(q("read synchronous"));
        normal_sync(conn).await;
        level
    }

    pub async fn mark_created(
        &self,
        id: i64,
        m: &CreatedMeeting,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE occurrences SET state = 'created', meeting_id = ?, meeting_uuid = ?,
                 join_url = ?, password = ?, last_error = NULL, not_before = NULL,
                 recording_state = 'waiting', next_poll_at = start_utc, updated_at = ?,
                 lease_holder = NULL, lease_until = NULL
             WHERE id = ?",
        )
        .bind(m.meeting_id)
        .bind(&m.uuid)
        .bind(&m.join_url)
        .bind(&m.password)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("mark created"))?;
        Ok(())
    }

    /// Waits for `until` (the daily cap) before another attempt.
    pub async fn mark_deferred(
        &self,
        id: i64,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.set_waiting(id, OccurrenceState::Deferred, until, reason, now)
            .await
    }

    /// Zoom refused the create; try again at `retry_at`.
    pub async fn mark_create_failed(
        &self,
        id: i64,
        retry_at: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.set_waiting(id, OccurrenceState::Failed, retry_at, reason, now)
            .await
    }

    async fn set_waiting(
        &self,
        id: i64,
        state: OccurrenceState,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE occurrences SET state = ?, not_before = ?, last_error = ?, updated_at = ?,
                 lease_holder = NULL, lease_until = NULL
             WHERE id = ?",
        )
        .bind(state)
        .bind(ts(until))
        .bind(reason)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("defer occurrence"))?;
        Ok(())
    }

    /// The create's outcome is unknown: stay `creating` (reconciled before any new create).
    pub async fn note_create_unknown(
        &self,
        id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE occurrences SET last_error = ?, updated_at = ?,
                 lease_holder = NULL, lease_until = NULL
             WHERE id = ?",
        )
        .bind(reason)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("note unknown create"))?;
        Ok(())
    }

    /// Records what a PATCH changed.
    pub async fn mark_updated(&self, id: i64, o: &NewOccurrence, now: DateTime<Utc>) -> Result<()> {
        query(
            "UPDATE occurrences SET topic = ?, duration_min = ?, agenda = ?, settings_json = ?,
                 start_local = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&o.topic)
        .bind(i64::from(o.duration_min))
        .bind(&o.agenda)
        .bind(settings_text(&o.settings))
        .bind(&o.start_local)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("mark updated"))?;
        Ok(())
    }

    /// Meetings zoomd created that have not started: what the drift check compares.
    pub async fn created_upcoming(&self, now: DateTime<Utc>) -> Result<Vec<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences
             WHERE state = 'created' AND meeting_id IS NOT NULL AND start_utc > ?
             ORDER BY host, start_utc"
        ))
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list created meetings"))
    }

    /// The meeting is gone at Zoom (deleted in the web page): forget it and create it again
    /// at the next meetings pass (a deferral due now).
    pub async fn mark_deleted_at_zoom(
        &self,
        id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE occurrences SET state = 'deferred', not_before = ?1, last_error = ?2,
                 meeting_id = NULL, meeting_uuid = NULL, join_url = NULL, password = NULL,
                 recording_state = 'waiting', next_poll_at = NULL, updated_at = ?1
             WHERE id = ?3 AND state = 'created'",
        )
        .bind(ts(now))
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("mark deleted at Zoom"))?;
        Ok(())
    }

    /// Zoom says the host does not exist (1001): failed until `until`, the host recorded so a
    /// changed schedule file asks again at once ([`Store::forget_missing_hosts`]).
    pub async fn mark_host_missing(
        &self,
        id: i64,
        host: &str,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE occurrences SET state = 'failed', missing_host = ?, not_before = ?,
                 last_error = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(host)
        .bind(ts(until))
        .bind(reason)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("mark host missing"))?;
        Ok(())
    }

    /// The schedule file changed: creates that failed for a missing host are due again.
    pub async fn forget_missing_hosts(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = query(
            "UPDATE occurrences SET not_before = ?1, missing_host = NULL
             WHERE state = 'failed' AND missing_host IS NOT NULL AND start_utc > ?1",
        )
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(q("forget missing hosts"))?;
        Ok(r.rows_affected())
    }

    /// Holds the cancellation of an occurrence for `zoomd apply`. True when it was not held
    /// before (so the caller says so once).
    pub async fn hold_cancellation(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let r = query(
            "UPDATE occurrences SET cancel_held_at = ? WHERE id = ? AND cancel_held_at IS NULL",
        )
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("hold cancellation"))?;
        Ok(r.rows_affected() == 1)
    }

    /// The occurrence is scheduled again: its held (or confirmed) cancellation is void.
    pub async fn release_cancellation(&self, id: i64) -> Result<()> {
        query(
            "UPDATE occurrences SET cancel_held_at = NULL, cancel_confirmed_at = NULL WHERE id = ?",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("release cancellation"))?;
        Ok(())
    }

    /// `zoomd apply`: confirms the cancellation of these occurrences (held, or about to be).
    pub async fn confirm_cancellation(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        query(
            "UPDATE occurrences SET cancel_held_at = coalesce(cancel_held_at, ?1),
                 cancel_confirmed_at = ?1
             WHERE id = ?2 AND state != 'cancelled'",
        )
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("confirm cancellation"))?;
        Ok(())
    }

    /// The occurrence left the schedule (and its meeting, if any, was deleted).
    pub async fn mark_cancelled(&self, id: i64, reason: &str, now: DateTime<Utc>) -> Result<()> {
        query(
            "UPDATE occurrences SET state = 'cancelled', recording_state = 'none',
                 cancel_held_at = NULL, cancel_confirmed_at = NULL,
                 next_poll_at = NULL, not_before = NULL, last_error = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(reason)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("mark cancelled"))?;
        Ok(())
    }

    /// Every stored occurrence that starts in `[from, to]`, whatever its state: what the
    /// plan compares the schedule's window with (one read per pass, not one per occurrence).
    pub async fn occurrences_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences WHERE start_utc >= ? AND start_utc <= ?"
        ))
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await
        .map_err(q("read the window's occurrences"))
    }

    pub async fn occurrence_by_key(
        &self,
        key: &str,
        start: DateTime<Utc>,
    ) -> Result<Option<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences WHERE key = ? AND start_utc = ?"
        ))
        .bind(key)
        .bind(ts(start))
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read occurrence"))
    }

    /// Occurrences that are live (not cancelled) and start at or after `from`.
    pub async fn live_occurrences_from(&self, from: DateTime<Utc>) -> Result<Vec<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences
             WHERE state IN ('creating', 'created', 'deferred', 'failed') AND start_utc >= ?
             ORDER BY start_utc, key"
        ))
        .bind(ts(from))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list occurrences"))
    }

    /// The earliest instant a deferred or failed create needs another look.
    pub async fn next_create_attempt(&self) -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> = query_scalar(
            // A deferred create whose start comes before its retry is due at the start: it
            // then becomes a visible failure ("never created").
            "SELECT min(CASE WHEN state = 'deferred' AND start_utc < not_before THEN start_utc
                             ELSE not_before END)
             FROM occurrences
             WHERE not_before IS NOT NULL
               AND (state = 'deferred' OR (state = 'failed' AND start_utc > not_before))",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(q("next create attempt"))?;
        instant("next create attempt", "occurrences.not_before", s)
    }

    /// Every occurrence in `creating` (outcome unknown), whatever its start.
    pub async fn unresolved_creates(&self) -> Result<Vec<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences WHERE state = 'creating' ORDER BY start_utc"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list unresolved creates"))
    }

    /// Occurrences still `deferred` although their start has passed (never created).
    pub async fn deferred_started(&self, now: DateTime<Utc>) -> Result<Vec<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences
             WHERE state = 'deferred' AND start_utc <= ? ORDER BY start_utc"
        ))
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list deferred occurrences that started"))
    }

    /// Occurrences, newest first, filtered for `zoomd meetings`.
    pub async fn list_occurrences(
        &self,
        filter: &OccurrenceFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<OccurrenceRow>> {
        let mut sql = format!("SELECT {OCC_COLS} FROM occurrences WHERE 1 = 1");
        match filter.when {
            Some(Period::Upcoming) => sql.push_str(" AND start_utc >= ?1"),
            Some(Period::Past) => sql.push_str(" AND start_utc < ?1"),
            None => sql.push_str(" AND ?1 IS NOT NULL"),
        }
        if filter.key.is_some() {
            sql.push_str(" AND key = ?2");
        } else {
            sql.push_str(" AND ?2 IS NULL");
        }
        sql.push_str(match filter.when {
            Some(Period::Upcoming) => " ORDER BY start_utc, key",
            _ => " ORDER BY start_utc DESC, key",
        });
        query_as(sql)
            .bind(ts(now))
            .bind(filter.key.as_deref())
            .fetch_all(&self.pool)
            .await
            .map_err(q("list meetings"))
    }

    // -----------------------------------------------------------------------------------------
    // recording watch

    /// Created meetings whose recording poll is due.
    pub async fn due_polls(&self, now: DateTime<Utc>) -> Result<Vec<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences
             WHERE state = 'created' AND recording_state IN ('waiting', 'found', 'complete')
               AND next_poll_at IS NOT NULL AND next_poll_at <= ?
             ORDER BY next_poll_at"
        ))
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list due polls"))
    }

    /// The earliest pending recording poll, if any.
    pub async fn next_poll_at(&self) -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> = query_scalar(
            "SELECT min(next_poll_at) FROM occurrences
             WHERE state = 'created' AND recording_state IN ('waiting', 'found', 'complete')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(q("next poll"))?;
        instant("next poll", "occurrences.next_poll_at", s)
    }

    /// After a poll: the watch's state and when to look again (`None`: stop watching).
    pub async fn set_poll(
        &self,
        id: i64,
        recording_state: RecordingWatch,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE occurrences SET recording_state = ?, next_poll_at = ?, polls = polls + 1,
                 updated_at = ?
             WHERE id = ?",
        )
        .bind(recording_state)
        .bind(next.map(ts))
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("set poll"))?;
        Ok(())
    }

    /// A webhook delivered this occurrence's recording: its watch counts as found, and the
    /// next poll (the catch-up for anything a webhook missed) waits at least until `next`.
    pub async fn webhook_delivered(
        &self,
        id: i64,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE occurrences SET
                 recording_state = CASE WHEN recording_state = 'waiting' THEN 'found'
                                        ELSE recording_state END,
                 next_poll_at = CASE WHEN next_poll_at IS NULL OR next_poll_at < ?1 THEN ?1
                                     ELSE next_poll_at END,
                 updated_at = ?2
             WHERE id = ?3 AND recording_state IN ('waiting', 'found', 'complete')",
        )
        .bind(ts(next))
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("webhook delivered"))?;
        Ok(())
    }

    /// Asks for an early poll (a download found its URL expired).
    pub async fn poll_soon(&self, occurrence_id: i64, at: DateTime<Utc>) -> Result<()> {
        query(
            "UPDATE occurrences SET next_poll_at = CASE
                 WHEN next_poll_at IS NULL OR next_poll_at > ?1 THEN ?1 ELSE next_poll_at END
             WHERE id = ?2 AND state = 'created'",
        )
        .bind(ts(at))
        .bind(occurrence_id)
        .execute(&self.pool)
        .await
        .map_err(q("poll soon"))?;
        Ok(())
    }

    /// Records an instance's recording (idempotent by uuid); returns its row id. A row once
    /// tied to an occurrence stays tied to it, whoever lists the recording later.
    pub async fn upsert_recording(&self, r: &SeenRecording, now: DateTime<Utc>) -> Result<i64> {
        let now = ts(now);
        let scan = r.scan.as_ref();
        query(
            "INSERT INTO recordings (occurrence_id, meeting_uuid, meeting_id, start_time,
                 total_size, state, last_polled_at, first_seen_at, updated_at, host, topic,
                 duration_min)
             VALUES (?1, ?2, ?3, ?4, ?5, 'processing', ?6, ?6, ?6, ?7, ?8, ?9)
             ON CONFLICT (meeting_uuid) DO UPDATE SET
                 occurrence_id = coalesce(recordings.occurrence_id, excluded.occurrence_id),
                 total_size = excluded.total_size, last_polled_at = excluded.last_polled_at,
                 start_time = coalesce(excluded.start_time, recordings.start_time),
                 host = coalesce(recordings.host, excluded.host),
                 topic = coalesce(excluded.topic, recordings.topic),
                 duration_min = coalesce(excluded.duration_min, recordings.duration_min),
                 refresh_at = NULL,
                 updated_at = excluded.updated_at",
        )
        .bind(r.occurrence_id)
        .bind(&r.meeting_uuid)
        .bind(r.meeting_id)
        .bind(r.start_time.map(ts))
        .bind(r.total_size)
        .bind(&now)
        .bind(scan.map(|s| s.host.as_str()))
        .bind(scan.and_then(|s| s.topic.as_deref()))
        .bind(scan.and_then(|s| s.duration_min))
        .execute(&self.pool)
        .await
        .map_err(q("upsert recording"))?;
        query_scalar("SELECT id FROM recordings WHERE meeting_uuid = ?")
            .bind(&r.meeting_uuid)
            .fetch_one(&self.pool)
            .await
            .map_err(q("upsert recording"))
    }

    /// One occurrence by row id.
    pub async fn occurrence(&self, id: i64) -> Result<Option<OccurrenceRow>> {
        query_as(format!("SELECT {OCC_COLS} FROM occurrences WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("read occurrence"))
    }

    /// The occurrence zoomd created this Zoom meeting for, if any.
    pub async fn occurrence_by_meeting(&self, meeting_id: i64) -> Result<Option<OccurrenceRow>> {
        query_as(format!(
            "SELECT {OCC_COLS} FROM occurrences WHERE meeting_id = ?"
        ))
        .bind(meeting_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read occurrence by meeting"))
    }

    /// A recording the scan found is listed again by uuid at `at` (a download URL went stale).
    pub async fn refresh_soon(&self, recording_id: i64, at: DateTime<Utc>) -> Result<()> {
        query(
            "UPDATE recordings SET refresh_at = CASE WHEN refresh_at IS NULL OR refresh_at > ?1
                 THEN ?1 ELSE refresh_at END
             WHERE id = ?2",
        )
        .bind(ts(at))
        .bind(recording_id)
        .execute(&self.pool)
        .await
        .map_err(q("refresh soon"))?;
        Ok(())
    }

    /// The refresh is done (or moot: the recording is gone at Zoom).
    pub async fn refresh_done(&self, recording_id: i64) -> Result<()> {
        self.set_refresh(recording_id, None).await
    }

    /// The refresh failed: try again at `at`.
    pub async fn refresh_later(&self, recording_id: i64, at: DateTime<Utc>) -> Result<()> {
        self.set_refresh(recording_id, Some(at)).await
    }

    async fn set_refresh(&self, recording_id: i64, at: Option<DateTime<Utc>>) -> Result<()> {
        query("UPDATE recordings SET refresh_at = ? WHERE id = ?")
            .bind(at.map(ts))
            .bind(recording_id)
            .execute(&self.pool)
            .await
            .map_err(q("set refresh"))?;
        Ok(())
    }

    /// Files waiting in the download queue (from the state index).
    pub async fn queued_files(&self) -> Result<i64> {
        query_scalar("SELECT count(*) FROM recording_files WHERE state = 'queued'")
            .fetch_one(&self.pool)
            .await
            .map_err(q("count queued files"))
    }

    /// Recordings found by the scan whose refresh is due.
    pub async fn due_refreshes(&self, now: DateTime<Utc>) -> Result<Vec<RecordingRow>> {
        query_as(format!(
            "SELECT {REC_COLS} FROM recordings WHERE refresh_at IS NOT NULL AND refresh_at <= ?
             ORDER BY refresh_at"
        ))
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list due refreshes"))
    }

    /// The earliest refresh due, if any.
    pub async fn next_refresh_at(&self) -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> =
            query_scalar("SELECT min(refresh_at) FROM recordings WHERE refresh_at IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(q("next refresh"))?;
        instant("next refresh", "recordings.refresh_at", s)
    }

    /// Found by the scan, archived, and started before `before`: the cloud copies
    /// `[recordings] after_download` may now remove.
    pub async fn scan_recordings_archived_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<RecordingRow>> {
        query_as(format!(
            "SELECT {REC_COLS} FROM recordings
             WHERE occurrence_id IS NULL AND state = 'archived' AND start_time <= ?
             ORDER BY start_time"
        ))
        .bind(ts(before))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list archived scan recordings"))
    }

    // -----------------------------------------------------------------------------------------
    // the account scan

    /// The users the scan has seen, by name.
    pub async fn scan_users(&self) -> Result<Vec<ScanUserRow>> {
        query_as(format!(
            "SELECT {SCAN_USER_COLS} FROM scan_users ORDER BY \"user\""
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(q("list scan users"))
    }

    /// Adds a user to the scan (backfill from `since`), or updates what `GET /users` says
    /// of it. A `since` earlier than the stored one restarts its backfill from there.
    pub async fn add_scan_user(
        &self,
        user: &str,
        email: Option<&str>,
        status: Option<&str>,
        since: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<ScanUserRow> {
        let now = ts(now);
        query(
            "INSERT INTO scan_users (\"user\", email, status, since, added_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (\"user\") DO UPDATE SET
                 email = coalesce(excluded.email, scan_users.email),
                 status = coalesce(excluded.status, scan_users.status),
                 done_through = CASE WHEN excluded.since < scan_users.since THEN NULL
                                     ELSE scan_users.done_through END,
                 since = CASE WHEN excluded.since < scan_users.since THEN excluded.since
                              ELSE scan_users.since END,
                 updated_at = CASE WHEN excluded.since < scan_users.since
                                     OR excluded.email IS DISTINCT FROM scan_users.email
                                     OR excluded.status IS DISTINCT FROM scan_users.status
                                   THEN excluded.updated_at ELSE scan_users.updated_at END",
        )
        .bind(user)
        .bind(email)
        .bind(status)
        .bind(since.to_string())
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(q("add scan user"))?;
        query_as(format!(
            "SELECT {SCAN_USER_COLS} FROM scan_users WHERE \"user\" = ?"
        ))
        .bind(user)
        .fetch_one(&self.pool)
        .await
        .map_err(q("add scan user"))
    }

    /// The totals `/metrics` reports, each from an index.
    pub async fn metrics_snapshot(&self, now: DateTime<Utc>) -> Result<MetricsSnapshot> {
        let (created, archived, bytes, queue, last): (i64, i64, i64, i64, Option<String>) =
            query_as(
                "SELECT (SELECT count(*) FROM events WHERE kind = 'created'),
                        (SELECT count(*) FROM recording_files WHERE state = 'archived'),
                        (SELECT CAST(coalesce(sum(bytes), 0) AS BIGINT) FROM recording_files
                          WHERE state = 'archived'),
                        (SELECT count(*) FROM recording_files
                          WHERE state IN ('queued', 'downloading')),
                        (SELECT max(archived_at) FROM recording_files WHERE state = 'archived')",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(q("metrics"))?;
        let counts = self.status_counts(now, now).await?;
        Ok(MetricsSnapshot {
            meetings_created: created,
            files_archived: archived,
            archived_bytes: bytes,
            download_queue: queue,
            failures: counts.failures(),
            recordings_missing: counts.recordings_missing,
            last_archived: instant("metrics", "recording_files.archived_at", last)?,
        })
    }

    /// Stores a webhook notification once; false when the same one was stored before.
    pub async fn record_webhook(
        &self,
        e: &NewWebhookEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = query(
            "INSERT INTO webhook_events (dedupe_key, event, meeting_uuid, meeting_id, received_at,
                 outcome, body)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(e.dedupe_key)
        .bind(e.event)
        .bind(e.meeting_uuid)
        .bind(e.meeting_id)
        .bind(ts(now))
        .bind(e.outcome)
        .bind(e.body)
        .execute(&self.pool)
        .await
        .map_err(q("record webhook"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Webhook notifications stored, newest first (at most `limit`).
    pub async fn webhook_events(&self, limit: i64) -> Result<Vec<WebhookEventRow>> {
        query_as(
            "SELECT id, dedupe_key, event, meeting_uuid, meeting_id, received_at, outcome, body
             FROM webhook_events ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list webhook events"))
    }

    /// Records a multipart upload before its first part is sent, so that the next start
    /// can abort it if this one never completes it.
    pub async fn record_object_upload(
        &self,
        upload_id: &str,
        key: &str,
        file_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "INSERT INTO object_uploads (upload_id, key, file_id, started_at) VALUES (?, ?, ?, ?)",
        )
        .bind(upload_id)
        .bind(key)
        .bind(file_id)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(q("record object upload"))?;
        Ok(())
    }

    /// The upload was completed or aborted: nothing is left to abort.
    pub async fn forget_object_upload(&self, upload_id: &str) -> Result<()> {
        query("DELETE FROM object_uploads WHERE upload_id = ?")
            .bind(upload_id)
            .execute(&self.pool)
            .await
            .map_err(q("forget object upload"))?;
        Ok(())
    }

    /// Uploads started and neither completed nor aborted, oldest first (at start: a crash's).
    pub async fn object_uploads(&self) -> Result<Vec<ObjectUploadRow>> {
        query_as(
            "SELECT upload_id, key, file_id, started_at FROM object_uploads
             ORDER BY started_at, upload_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("list object uploads"))
    }

    /// Is the database answering? (`/healthz`)
    pub async fn ping(&self) -> Result<()> {
        query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(q("ping"))?;
        Ok(())
    }

    /// How the account scan stands, for `zoomd status` (one row per user of the account at
    /// most, so a plain aggregate).
    pub async fn scan_summary(&self) -> Result<ScanSummary> {
        query_as(
            "SELECT count(*) AS users, count(next_scan_at) AS scheduled,
                    count(last_error) AS failing,
                    min(done_through) AS done_through, max(last_scan_at) AS last_scan_at
             FROM scan_users",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(q("scan summary"))
    }

    /// Users not among `scanned` are out of the scan (left the account or the list): their
    /// next scan is unscheduled, and their progress kept should they come back.
    pub async fn unschedule_scans_except(&self, scanned: &[&str]) -> Result<()> {
        let list = serde_json::to_string(scanned).map_err(|e| StoreError::Query {
            op: "unschedule scans",
            source: sqlx::Error::Protocol(e.to_string()),
        })?;
        // The list as one JSON array: however many users, one parameter.
        let sql = if self.pool.is_postgres() {
            "UPDATE scan_users SET next_scan_at = NULL
             WHERE next_scan_at IS NOT NULL
               AND \"user\" NOT IN (SELECT json_array_elements_text(?::json))"
        } else {
            "UPDATE scan_users SET next_scan_at = NULL
             WHERE next_scan_at IS NOT NULL AND \"user\" NOT IN (SELECT value FROM json_each(?))"
        };
        query(sql)
            .bind(list)
            .execute(&self.pool)
            .await
            .map_err(q("unschedule scans"))?;
        Ok(())
    }

    /// No user's scan before `until` (the account's user list could not be read).
    pub async fn postpone_scans(&self, until: DateTime<Utc>) -> Result<()> {
        query(
            "UPDATE scan_users SET next_scan_at = ?1
             WHERE next_scan_at IS NOT NULL AND next_scan_at < ?1",
        )
        .bind(ts(until))
        .execute(&self.pool)
        .await
        .map_err(q("postpone scans"))?;
        Ok(())
    }

    /// Every recording of a window up to `through` is stored: the next scan starts after it.
    pub async fn scan_window_done(
        &self,
        user: &str,
        through: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE scan_users SET windows_done = windows_done + 1,
                 done_through = CASE WHEN done_through IS NULL OR done_through < ?1 THEN ?1
                                     ELSE done_through END,
                 updated_at = ?2
             WHERE \"user\" = ?3",
        )
        .bind(through.to_string())
        .bind(ts(now))
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(q("scan window done"))?;
        Ok(())
    }

    /// A user's scan ended (`error` says why, if it did not complete); next one at `next`.
    pub async fn scan_ended(
        &self,
        user: &str,
        error: Option<&str>,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE scan_users SET last_error = ?1, next_scan_at = ?2, updated_at = ?3,
                 last_scan_at = CASE WHEN ?1 IS NULL THEN ?3 ELSE last_scan_at END
             WHERE \"user\" = ?4",
        )
        .bind(error)
        .bind(ts(next))
        .bind(ts(now))
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(q("scan ended"))?;
        Ok(())
    }

    /// Records a file as Zoom lists it. A new `completed` file is queued; a known file gets a
    /// fresh URL and size and, if it was still processing and is now complete, is queued.
    /// Archived and failed files keep their state.
    pub async fn upsert_file(&self, f: &SeenFile, now: DateTime<Utc>) -> Result<()> {
        let now = ts(now);
        let state = if f.completed {
            FileState::Queued
        } else {
            FileState::Processing
        };
        query(
            "INSERT INTO recording_files (recording_id, file_id, file_type, file_extension,
                 recording_type, recording_start, recording_end, file_size, download_url, state,
                 next_attempt_at, first_seen_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?11)
             ON CONFLICT (recording_id, file_id) DO UPDATE SET
                 file_size = coalesce(excluded.file_size, recording_files.file_size),
                 download_url = coalesce(excluded.download_url, recording_files.download_url),
                 recording_end = coalesce(excluded.recording_end, recording_files.recording_end),
                 state = CASE WHEN recording_files.state = 'processing' THEN excluded.state
                              ELSE recording_files.state END,
                 next_attempt_at = CASE WHEN recording_files.state = 'processing'
                                        THEN excluded.next_attempt_at
                                        ELSE recording_files.next_attempt_at END,
                 updated_at = CASE WHEN recording_files.state = 'processing'
                                        AND excluded.state = 'queued'
                                   THEN excluded.updated_at ELSE recording_files.updated_at END",
        )
        .bind(f.recording_id)
        .bind(&f.file_id)
        .bind(&f.file_type)
        .bind(&f.file_extension)
        .bind(&f.recording_type)
        .bind(f.recording_start.map(ts))
        .bind(f.recording_end.map(ts))
        .bind(f.file_size)
        .bind(&f.download_url)
        .bind(state)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(q("upsert file"))?;
        Ok(())
    }

    /// Sets a recording's state from its files: processing while any is, archived when all are.
    pub async fn refresh_recording_state(
        &self,
        recording_id: i64,
        now: DateTime<Utc>,
    ) -> Result<RecordingRow> {
        query(
            "UPDATE recordings SET state = CASE
                 WHEN state IN ('cloud_trashed', 'cloud_deleted') THEN state
                 WHEN EXISTS (SELECT 1 FROM recording_files f WHERE f.recording_id = recordings.id
                              AND f.state = 'processing') THEN 'processing'
                 WHEN NOT EXISTS (SELECT 1 FROM recording_files f
                                  WHERE f.recording_id = recordings.id AND f.state != 'archived')
                      AND EXISTS (SELECT 1 FROM recording_files f
                                  WHERE f.recording_id = recordings.id) THEN 'archived'
                 ELSE 'ready' END,
                 updated_at = ?
             WHERE id = ?",
        )
        .bind(ts(now))
        .bind(recording_id)
        .execute(&self.pool)
        .await
        .map_err(q("refresh recording"))?;
        self.recording(recording_id).await
    }

    pub async fn recording(&self, id: i64) -> Result<RecordingRow> {
        query_as(format!("SELECT {REC_COLS} FROM recordings WHERE id = ?"))
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(q("read recording"))
    }

    pub async fn recordings_of(&self, occurrence_id: i64) -> Result<Vec<RecordingRow>> {
        query_as(format!(
            "SELECT {REC_COLS} FROM recordings WHERE occurrence_id = ? ORDER BY id"
        ))
        .bind(occurrence_id)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list recordings"))
    }

    pub async fn mark_cloud_removed(
        &self,
        recording_id: i64,
        deleted: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(
            "UPDATE recordings SET state = ?, updated_at = ? WHERE id = ? AND state = 'archived'",
        )
        .bind(if deleted {
            RecordingState::CloudDeleted
        } else {
            RecordingState::CloudTrashed
        })
        .bind(ts(now))
        .bind(recording_id)
        .execute(&self.pool)
        .await
        .map_err(q("mark cloud removed"))?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // files and downloads

    pub async fn file(&self, id: i64) -> Result<Option<FileRow>> {
        query_as(format!("{FILE_SELECT} WHERE f.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("read file"))
    }

    pub async fn files_of_recording(&self, recording_id: i64) -> Result<Vec<FileRow>> {
        query_as(format!(
            "{FILE_SELECT} WHERE f.recording_id = ? ORDER BY f.id"
        ))
        .bind(recording_id)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list files"))
    }

    /// Queued files whose next attempt is due, oldest first, with what a download needs.
    pub async fn due_downloads(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<FileRow>> {
        query_as(format!(
            "{FILE_SELECT} WHERE f.state = 'queued' AND f.download_url IS NOT NULL
               AND f.next_attempt_at <= ? ORDER BY f.next_attempt_at, f.id LIMIT ?"
        ))
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list due downloads"))
    }

    /// The earliest queued download, if any.
    pub async fn next_download_at(&self) -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> = query_scalar(
            "SELECT min(next_attempt_at) FROM recording_files
             WHERE state = 'queued' AND download_url IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(q("next download"))?;
        instant("next download", "recording_files.next_attempt_at", s)
    }

    /// Claims a queued file for download, with this process's lease on it until `now` +
    /// the lease; false when someone else did or it changed state. One statement, so of
    /// processes claiming one file at once exactly one gets it (SQLite: one writer at a
    /// time; PostgreSQL: `FOR UPDATE SKIP LOCKED`, and a row re-read after a claim committed
    /// is no longer queued).
    pub async fn start_download(&self, id: i64, path: &str, now: DateTime<Utc>) -> Result<bool> {
        // PostgreSQL: a row another process is claiming this instant is skipped, not waited
        // for (it would be 'downloading' once its lock is released anyway).
        let row = if self.pool.is_postgres() {
            "id = (SELECT id FROM recording_files WHERE id = ? AND state = 'queued'
                   FOR UPDATE SKIP LOCKED)"
        } else {
            "id = ? AND state = 'queued'"
        };
        let r = query(format!(
            "UPDATE recording_files SET state = 'downloading', attempts = attempts + 1, path = ?,
                 updated_at = ?, lease_holder = ?, lease_until = ?
             WHERE {row}"
        ))
        .bind(path)
        .bind(ts(now))
        .bind(&*self.lease.holder)
        .bind(ts(now + self.lease.length))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("start download"))?;
        Ok(r.rows_affected() == 1)
    }

    /// The file is in place and verified. False when this process no longer held it (its
    /// lease ran out and another process took the file over): that one records it.
    pub async fn mark_archived(
        &self,
        id: i64,
        bytes: i64,
        sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = query(format!(
            "UPDATE recording_files SET state = 'archived', bytes = ?, sha256 = ?, archived_at = ?,
                 last_error = NULL, failure_kind = NULL, next_attempt_at = NULL, updated_at = ?,
                 lease_holder = NULL, lease_until = NULL
             WHERE id = ? AND {HELD}"
        ))
        .bind(bytes)
        .bind(sha256)
        .bind(ts(now))
        .bind(ts(now))
        .bind(id)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("mark archived"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Renews this process's lease on a file it downloads, to `now` + the lease. False when
    /// it holds it no longer (taken over after its lease ran out): the download must stop.
    pub async fn renew_download(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let r = query(
            "UPDATE recording_files SET lease_until = ?
             WHERE id = ? AND state = 'downloading' AND lease_holder = ?",
        )
        .bind(ts(now + self.lease.length))
        .bind(id)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("renew download lease"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Downloads whose lease ran out (their process died or lost the database) go back to
    /// the queue for any process; the attempt is not counted. Returns how many.
    pub async fn requeue_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = query(
            "UPDATE recording_files SET state = 'queued', next_attempt_at = ?1, updated_at = ?1,
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                 lease_holder = NULL, lease_until = NULL
             WHERE state = 'downloading' AND lease_until IS NOT NULL AND lease_until <= ?1",
        )
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(q("requeue expired downloads"))?;
        Ok(r.rows_affected())
    }

    /// This process's name in `lease_holder`.
    pub fn lease_holder(&self) -> &str {
        &self.lease.holder
    }

    /// How long a claim holds without renewal (`[daemon] lease`).
    pub fn lease_length(&self) -> chrono::Duration {
        self.lease.length
    }

    /// The same store with claims that hold for `length` (`[daemon] lease`).
    pub fn with_lease(mut self, length: chrono::Duration) -> Store {
        self.lease = Lease {
            holder: self.lease.holder,
            length,
        };
        self
    }

    /// A failed attempt: queued again at `retry_at`, or `failed` when `retry_at` is `None`.
    /// `stale_url` drops the stored URL so the next poll fetches a fresh one.
    pub async fn download_failed(
        &self,
        id: i64,
        kind: FailureKind,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        stale_url: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        query(format!(
            "UPDATE recording_files SET state = ?, failure_kind = ?, last_error = ?,
                 next_attempt_at = ?,
                 download_url = CASE WHEN ? THEN NULL ELSE download_url END, updated_at = ?,
                 lease_holder = NULL, lease_until = NULL
             WHERE id = ? AND {HELD}"
        ))
        .bind(if retry_at.is_some() {
            FileState::Queued
        } else {
            FileState::Failed
        })
        .bind(kind)
        .bind(error)
        .bind(retry_at.map(ts))
        .bind(stale_url)
        .bind(ts(now))
        .bind(id)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("record download failure"))?;
        Ok(())
    }

    /// A download stopped at a safe point (shutdown): back in the queue, the attempt not
    /// counted.
    pub async fn requeue(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        query(format!(
            "UPDATE recording_files SET state = 'queued', next_attempt_at = ?, updated_at = ?,
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                 lease_holder = NULL, lease_until = NULL
             WHERE id = ? AND state = 'downloading' AND {HELD}"
        ))
        .bind(ts(now))
        .bind(ts(now))
        .bind(id)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("requeue"))?;
        Ok(())
    }

    /// After a crash or a stop: downloads that were in progress go back to the queue (their
    /// `.part` files resume). Returns how many. SQLite: every one (its one writer is this
    /// process, so nobody else is downloading). PostgreSQL: only those whose lease ran out
    /// (or that have none), since other processes may be downloading the rest right now.
    pub async fn requeue_interrupted(&self, now: DateTime<Utc>) -> Result<u64> {
        let theirs = if self.pool.is_postgres() {
            "AND (lease_until IS NULL OR lease_until <= ?1)"
        } else {
            ""
        };
        let r = query(format!(
            "UPDATE recording_files SET state = 'queued', next_attempt_at = ?1, updated_at = ?1,
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                 lease_holder = NULL, lease_until = NULL
             WHERE state = 'downloading' {theirs}"
        ))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(q("requeue interrupted"))?;
        Ok(r.rows_affected())
    }

    /// `zoomd retry`: failed files back in the queue with fresh attempts. `None` = all failed.
    pub async fn retry_failed(&self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64> {
        let r = query(
            "UPDATE recording_files SET state = 'queued', attempts = 0, next_attempt_at = ?,
                 updated_at = ?
             WHERE state = 'failed' AND (? IS NULL OR id = ?)",
        )
        .bind(ts(now))
        .bind(ts(now))
        .bind(id)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("retry failed"))?;
        Ok(r.rows_affected())
    }

    /// Whether another file already uses this archive path.
    pub async fn path_taken(&self, path: &str, except_id: i64) -> Result<bool> {
        let n: i64 =
            query_scalar("SELECT count(*) FROM recording_files WHERE path = ? AND id != ?")
                .bind(path)
                .bind(except_id)
                .fetch_one(&self.pool)
                .await
                .map_err(q("check path"))?;
        Ok(n > 0)
    }

    /// Files, newest first, optionally in one state (`zoomd recordings`).
    pub async fn list_files(&self, state: Option<FileState>) -> Result<Vec<FileRow>> {
        query_as(format!(
            "{FILE_SELECT} WHERE (?1 IS NULL OR f.state = ?1) ORDER BY start_utc DESC, f.id"
        ))
        .bind(state)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list files"))
    }

    // -----------------------------------------------------------------------------------------
    // daily create/update cap

    /// Create/update calls made for `host` on `day` (UTC), and whether Zoom said the cap is hit.
    /// Every quota method counts under the Zoom user the host is known to be (`host_ids`),
    /// else under the name as written.
    pub async fn quota(&self, host: &str, day: NaiveDate) -> Result<(i64, bool)> {
        let row: Option<(i64, bool)> = query_as(format!(
            "SELECT calls, exhausted FROM host_quota WHERE host = {QUOTA_KEY} AND day = ?2"
        ))
        .bind(host)
        .bind(day.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read quota"))?;
        Ok(row.unwrap_or((0, false)))
    }

    /// Counts one create/update call against the host's day.
    pub async fn count_call(&self, host: &str, day: NaiveDate) -> Result<()> {
        self.quota_write(
            "count call",
            "INSERT INTO host_quota (host, day, calls) VALUES (QUOTA_KEY, ?2, 1)
             ON CONFLICT (host, day) DO UPDATE SET calls = host_quota.calls + 1",
            host,
            day,
        )
        .await?;
        Ok(())
    }

    /// Takes one of the host's `cap` create/update calls of `day`, if one is left and Zoom
    /// has not said the cap is reached: one statement, so concurrent creates for one host
    /// never send call `cap + 1`. False when none is left (nothing counted).
    pub async fn take_call(&self, host: &str, day: NaiveDate, cap: i64) -> Result<bool> {
        let sql = format!(
            "INSERT INTO host_quota (host, day, calls) VALUES ({QUOTA_KEY}, ?2, 1)
             ON CONFLICT (host, day) DO UPDATE SET calls = host_quota.calls + 1
                 WHERE host_quota.calls < ?3 AND NOT host_quota.exhausted"
        );
        let r = query(sql)
            .bind(host)
            .bind(day.to_string())
            .bind(cap)
            .execute(&self.pool)
            .await
            .map_err(q("take call"))?;
        Ok(r.rows_affected() == 1)
    }

    /// A create/update call that Zoom did not count (it refused before acting, e.g. 1001).
    pub async fn uncount_call(&self, host: &str, day: NaiveDate) -> Result<()> {
        self.quota_write(
            "uncount call",
            "UPDATE host_quota SET calls = CASE WHEN calls > 0 THEN calls - 1 ELSE 0 END
             WHERE host = QUOTA_KEY AND day = ?2",
            host,
            day,
        )
        .await?;
        Ok(())
    }

    /// Zoom says the host's cap is reached for `day`. Returns false if already known (so the
    /// caller logs it once).
    pub async fn mark_quota_exhausted(&self, host: &str, day: NaiveDate) -> Result<bool> {
        let changed = self
            .quota_write(
                "mark quota",
                "INSERT INTO host_quota (host, day, calls, exhausted)
                 VALUES (QUOTA_KEY, ?2, 0, TRUE)
                 ON CONFLICT (host, day) DO UPDATE SET exhausted = TRUE
                     WHERE NOT host_quota.exhausted",
                host,
                day,
            )
            .await?;
        Ok(changed == 1)
    }

    /// One write to `host_quota`; `QUOTA_KEY` in `sql` stands for the host's counting key.
    async fn quota_write(
        &self,
        op: &'static str,
        sql: &str,
        host: &str,
        day: NaiveDate,
    ) -> Result<u64> {
        let sql = sql.replace("QUOTA_KEY", QUOTA_KEY);
        let r = query(sql)
            .bind(host)
            .bind(day.to_string())
            .execute(&self.pool)
            .await
            .map_err(q(op))?;
        Ok(r.rows_affected())
    }

    /// Zoom answered that `host` is the user `user_id`: from now on its calls count under the
    /// id, and what `day` counted under the name moves there.
    pub async fn remember_host_id(
        &self,
        host: &str,
        user_id: &str,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let op = "remember host id";
        // IMMEDIATE: the transaction reads before it writes, and a deferred one that another
        // writer overtakes in between fails with SQLITE_BUSY instead of waiting its turn
        // (creates for several hosts finish at once).
        let mut tx = self.pool.begin("BEGIN IMMEDIATE").await.map_err(q(op))?;
        let known: Option<String> = query_scalar("SELECT user_id FROM host_ids WHERE host = ?")
            .bind(host)
            .fetch_optional(&mut tx)
            .await
            .map_err(q(op))?;
        if known.as_deref() == Some(user_id) {
            return Ok(());
        }
        query(
            "INSERT INTO host_ids (host, user_id, seen_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (host) DO UPDATE SET user_id = ?2, seen_at = ?3",
        )
        .bind(host)
        .bind(user_id)
        .bind(ts(now))
        .execute(&mut tx)
        .await
        .map_err(q(op))?;
        if host != user_id {
            query(
                "INSERT INTO host_quota (host, day, calls, exhausted)
                     SELECT ?2, day, calls, exhausted FROM host_quota WHERE host = ?1 AND day = ?3
                 ON CONFLICT (host, day) DO UPDATE SET
                     calls = host_quota.calls + excluded.calls,
                     exhausted = host_quota.exhausted OR excluded.exhausted",
            )
            .bind(host)
            .bind(user_id)
            .bind(day.to_string())
            .execute(&mut tx)
            .await
            .map_err(q(op))?;
            query("DELETE FROM host_quota WHERE host = ? AND day = ?")
                .bind(host)
                .bind(day.to_string())
                .execute(&mut tx)
                .await
                .map_err(q(op))?;
        }
        tx.commit().await.map_err(q(op))?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // events and views

    pub async fn add_event(&self, e: &NewEvent<'_>, now: DateTime<Utc>) -> Result<()> {
        query(
            "INSERT INTO events (at, kind, key, occurrence_id, meeting_id, file_row, message, holder)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ts(now))
        .bind(e.kind)
        .bind(e.key)
        .bind(e.occurrence_id)
        .bind(e.meeting_id)
        .bind(e.file_row)
        .bind(&e.message)
        .bind(&*self.lease.holder)
        .execute(&self.pool)
        .await
        .map_err(q("add event"))?;
        Ok(())
    }

    /// The newest events first.
    pub async fn events(&self, limit: i64) -> Result<Vec<EventRow>> {
        query_as(
            "SELECT id, at, kind, key, occurrence_id, meeting_id, file_row, message, holder
             FROM events ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list events"))
    }

    /// Files archived at or after `since`, newest first (at most `limit`).
    pub async fn archived_since(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ArchiveRow>> {
        query_as(
            "SELECT key, topic, start_utc, start_local, meeting_id, meeting_uuid, file_row, file_id,
                    file_type, file_extension, bytes, sha256, path, archived_at, host
             FROM archive WHERE archived_at >= ? ORDER BY archived_at DESC, file_row DESC LIMIT ?",
        )
        .bind(ts(since))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("read archive"))
    }

    /// The `archive` view.
    pub async fn archive(&self) -> Result<Vec<ArchiveRow>> {
        query_as(
            "SELECT key, topic, start_utc, start_local, meeting_id, meeting_uuid, file_row, file_id,
                    file_type, file_extension, bytes, sha256, path, archived_at, host
             FROM archive ORDER BY start_utc, file_row",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("read archive"))
    }
}

/// Opens (creating file and parent directories if missing) and migrates a SQLite database.
async fn open_sqlite(path: &Path) -> Result<SqlitePool> {
    let display = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: display.clone(),
            source,
        })?;
    }
    let opts = base_options(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL in WAL mode never corrupts; a power cut can lose the last commits, which
        // the reconcile steps redo. The one write that must survive it, a create's
        // intent, is committed with FULL (see `durably`).
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .map_err(|source| StoreError::Open {
            path: display.clone(),
            source,
        })?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|source| StoreError::Migrate {
            path: display,
            source,
        })?;
    Ok(pool)
}

/// Connects to a PostgreSQL database; migrates it unless `read_only` (then every transaction
/// of the pool is read-only, so a query command cannot write). Two processes starting at
/// once migrate once: sqlx's migrator holds `pg_advisory_lock` (keyed by the database's
/// name) from before it reads `_sqlx_migrations` until it is done.
async fn open_postgres(pg: &PgTarget, read_only: bool) -> Result<sqlx::PgPool> {
    let display = pg.to_string();
    let open_err = |source| StoreError::Open {
        path: display.clone(),
        source,
    };
    // The URL carries no password (PgTarget keeps it apart); without one, sqlx looks at
    // $PGPASSWORD and ~/.pgpass as libpq does.
    let mut opts = PgConnectOptions::from_str(pg.url().as_str())
        .map_err(open_err)?
        .application_name("zoomd");
    if let Some(password) = pg.password() {
        opts = opts.password(password.expose());
    }
    if read_only {
        opts = opts.options([("default_transaction_read_only", "on")]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(if read_only { 2 } else { 8 })
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(open_err)?;
    if !read_only {
        PG_MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: display.clone(),
                source,
            })?;
    }
    Ok(pool)
}

/// A SQLite connection set to `synchronous = FULL`; give it back with [`normal_sync`].
async fn full_sync(
    pool: &SqlitePool,
) -> std::result::Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *conn)
        .await?;
    Ok(conn)
}

/// Back to NORMAL. A connection left on FULL is only slower: this never fails a write.
async fn normal_sync(mut conn: sqlx::pool::PoolConnection<sqlx::Sqlite>) {
    if let Err(e) = sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await
    {
        tracing::debug!(error = %e, "could not reset synchronous to NORMAL");
    }
}

/// Settings as stored: the JSON text sent to Zoom.
fn settings_text(s: &Settings) -> String {
    serde_json::Value::Object(s.clone()).to_string()
}

fn base_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0006 rebuilds `recordings` (and `recording_files`, which refers to it) inside the
    /// migration's transaction, foreign keys on: what a database of version 5 holds survives.
    #[tokio::test]
    async fn the_account_scan_migration_keeps_every_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base_options(&dir.path().join("v5.db")).create_if_missing(true))
            .await
            .expect("open");
        for sql in [
            include_str!("../../migrations/0001_initial.sql"),
            include_str!("../../migrations/0002_query_indexes.sql"),
            include_str!("../../migrations/0003_failure_kind.sql"),
            include_str!("../../migrations/0004_cancellations_and_hosts.sql"),
            include_str!("../../migrations/0005_window_index.sql"),
        ] {
            sqlx::raw_sql(sql)
                .execute(&pool)
                .await
                .expect("older migration");
        }
        let t = "'2026-11-30T09:00:00Z'";
        sqlx::raw_sql(&format!(
            "INSERT INTO occurrences (id, key, start_utc, start_local, timezone, duration_min,
                 host, topic, settings_json, marker, state, meeting_id, created_at, updated_at)
             VALUES (7, 'standup', {t}, '2026-11-30T10:00:00+01:00', 'Europe/Berlin', 30,
                 'me', 'Standup', '{{}}', 'zoomd:standup', 'created', 85000000001, {t}, {t});
             INSERT INTO recordings (id, occurrence_id, meeting_uuid, meeting_id, state,
                 first_seen_at, updated_at)
             VALUES (3, 7, 'uuid-1', 85000000001, 'archived', {t}, {t});
             INSERT INTO recording_files (id, recording_id, file_id, file_type, file_extension,
                 state, path, bytes, sha256, archived_at, first_seen_at, updated_at, failure_kind)
             VALUES (11, 3, 'f1', 'MP4', 'MP4', 'archived', 'a/b.mp4', 5, 'ab', {t}, {t}, {t},
                 NULL),
                    (12, 3, 'f2', 'CHAT', 'TXT', 'failed', NULL, NULL, NULL, NULL, {t}, {t},
                 'refused');"
        ))
        .execute(&pool)
        .await
        .expect("rows of version 5");

        let mut tx = pool.begin().await.expect("begin");
        sqlx::raw_sql(include_str!("../../migrations/0006_account_recordings.sql"))
            .execute(&mut *tx)
            .await
            .expect("0006");
        tx.commit().await.expect("commit");

        let files: Vec<(i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, recording_id, state, failure_kind FROM recording_files ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .expect("files");
        assert_eq!(
            files,
            [
                (11, 3, "archived".to_string(), None),
                (12, 3, "failed".to_string(), Some("refused".to_string()))
            ]
        );
        let archive: Vec<(Option<String>, String, String)> =
            sqlx::query_as("SELECT key, host, path FROM archive")
                .fetch_all(&pool)
                .await
                .expect("archive view");
        assert_eq!(
            archive,
            [(Some("standup".into()), "me".into(), "a/b.mp4".into())]
        );
        let failures: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT kind, id, timezone FROM failures")
                .fetch_all(&pool)
                .await
                .expect("failures view");
        assert_eq!(failures, [("file".into(), 12, "Europe/Berlin".into())]);
        let dangling: Vec<(String, i64, String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&pool)
            .await
            .expect("foreign_key_check");
        assert!(dangling.is_empty(), "{dangling:?}");
        // The references still hold: a file of no recording is refused.
        let orphan = sqlx::raw_sql(&format!(
            "INSERT INTO recording_files (recording_id, file_id, file_type, file_extension,
                 state, first_seen_at, updated_at) VALUES (99, 'x', 'MP4', 'MP4', 'queued', {t}, {t})"
        ))
        .execute(&pool)
        .await;
        assert!(orphan.is_err(), "an orphan file was accepted");
        // A recording the scan found has no occurrence, but must say whose it is.
        let found = |host: &str| {
            format!(
                "INSERT INTO recordings (occurrence_id, meeting_uuid, meeting_id, start_time,
                     state, first_seen_at, updated_at, host)
                 VALUES (NULL, 'uuid-{host}', 1, {t}, 'processing', {t}, {t}, {})",
                if host.is_empty() {
                    "NULL".to_string()
                } else {
                    format!("'{host}'")
                }
            )
        };
        sqlx::raw_sql(&found("jane@example.org"))
            .execute(&pool)
            .await
            .expect("a recording found by the scan");
        assert!(sqlx::raw_sql(&found("")).execute(&pool).await.is_err());
        pool.close().await;
    }
}
