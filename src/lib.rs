//! zoomd keeps a Zoom account in step with a schedule file and archives the cloud recordings.
//!
//! Module map (data flows top to bottom):
//! - [`config`]: `daemon.toml` into validated structs; the only reader of the file and secrets.
//! - [`schedule`]: entries + a window → occurrences (pure; `now` is always a parameter).
//! - [`zone`]: DST gaps of a zone's wall clock (pure), for `config` and `schedule`.
//! - [`zoom`]: the only code that speaks HTTP to Zoom (auth, the account-wide request budget,
//!   retries, typed calls, downloads).
//! - [`store`]: the only code that holds SQL (SQLite or PostgreSQL via sqlx, one statement
//!   text for both; one method per transition; the claims and leases by which several
//!   processes on one PostgreSQL share the work).
//! - [`sync`]: the idempotent reconcile steps (meetings from a plan, the drift check,
//!   recordings, downloads, the account scan); their calls run concurrently within the
//!   client's budget. `sync::part` fills a download's `.part` off the receive path (a
//!   writer thread and a hasher thread per file).
//! - [`daemon`]: wires the steps to time, signals and reloads; holds no business rules.
//! - [`http`]: the optional listener: webhooks in ([`webhook`]: signature check, URL
//!   validation, parsing; pure), `/metrics` ([`metrics`]: totals from the database, request
//!   counts from the client), `/healthz`, the status page ([`page`]) and the calendar feed
//!   ([`calendar`]: upcoming meetings as iCalendar; pure rendering, one store read).
//! - [`objects`]: the archive in S3-compatible object storage (multipart uploads hashed on
//!   the way, verified by HEAD, the sha256 in the object's metadata).
//! - [`sim`]: a simulated Zoom on loopback for tests and `zoomd demo`.
//! - [`cli`]: one function per command; `main.rs` only parses arguments.
//! - [`clock`]: where "now" and retry waits come from (the system clock, or a manual one
//!   in tests); [`zoom`] and [`sync`] take one instead of reading the time themselves.
//! - [`liveness`]: the heartbeat the loop and Zoom requests feed, and the systemd watchdog.
//! - [`secret`], [`shutdown`], [`telemetry`]: small shared pieces.

pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod http;
pub mod liveness;
pub mod metrics;
pub mod objects;
pub mod page;
pub mod schedule;
pub mod secret;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhook;
pub mod zone;
pub mod zoom;
