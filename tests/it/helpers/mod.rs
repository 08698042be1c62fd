//! The shared harness of the integration tests: the simulated Zoom and a client for it,
//! the real `zoomd` binary (one-shot commands and the daemon as a child process),
//! daemon.toml writers, schedule instants, and the checks a run ends with (archive
//! against the sim's digests, one meeting per marker, nothing leaked), a state database on
//! either engine (SQLite, or a throw-away PostgreSQL cluster), and a SeaweedFS S3 server for
//! the object-storage tests.

mod archive;
mod config;
mod daemon;
mod pg;
mod pg_cluster;
mod s3;
mod sim;
mod store;
mod time;
mod weed;

pub use archive::*;
pub use config::*;
pub use daemon::*;
pub use pg::*;
pub use s3::*;
pub use sim::*;
pub use store::*;
pub use time::*;
