//! A throw-away PostgreSQL cluster on loopback, for the tests (`pg.rs` beside it) and
//! the benchmarks: `initdb` in a temp directory (as the `postgres` user when run as root,
//! since initdb refuses root), `pg_ctl` on a free loopback port with trust authentication
//! and fsync off. Its programs: `$PG_BIN`, else the newest /usr/lib/postgresql/*/bin.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throw-away PostgreSQL cluster.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The user the cluster's superuser role is called (trust authentication on loopback).
const ROLE: &str = "zoomd";

impl Cluster {
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub fn start(&self) {
        // Loopback only, its socket in its own directory; fsync off: nothing here must survive.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let start = run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        assert!(
            start.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&start.stderr),
            self.log()
        );
    }

    /// `psql -At -c sql` on `database` (as the cluster's superuser): its output, trimmed.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|e| panic!("psql {sql}: {e}"))
    }

    /// [`Cluster::psql`], its error (psql's stderr) returned.
    pub fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = run(
            false,
            &self.bin.join("psql"),
            &[
                &self.url(database),
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `pg_ctl stop -m <mode>`, waiting until it is down.
    pub fn stop(&self, mode: &str) {
        let _ = run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", mode, "-w", "stop"],
        );
    }
}

/// Where PostgreSQL's programs are: $PG_BIN, else the newest /usr/lib/postgresql/*/bin.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb (set PG_BIN, or run scripts/pg-check, which installs it)"
        ),
    }
}

fn run(cluster_user: bool, program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if cluster_user {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

impl Cluster {
    /// `initdb` in a new temp directory (as `postgres` when run as root), started on a
    /// free loopback port.
    pub fn start_new() -> Cluster {
        let bin = pg_bin();
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("zoomd-pg-")
            .tempdir()
            .expect("tempdir")
            .keep();
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(chown.success(), "chown postgres {}", dir.display());
        }
        let data = dir.join("data");
        let data_arg = data.display().to_string();
        let init = run(
            as_postgres,
            &bin.join("initdb"),
            &[
                "-D",
                &data_arg,
                "-U",
                ROLE,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let cluster = Cluster {
            dir: dir.clone(),
            bin,
            port,
            as_postgres,
        };
        cluster.start();
        cluster
    }

    /// Stops it at once and removes its directory.
    pub fn remove(&self) {
        self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
