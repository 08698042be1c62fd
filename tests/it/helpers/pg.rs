//! The state database of a test on either engine: a SQLite file in a temp directory, or a
//! fresh database in a throw-away PostgreSQL cluster.
//!
//! The cluster is made once per test process, on first use: `initdb` in a temp directory
//! (as the `postgres` user when the tests run as root, since initdb refuses root), started
//! with `pg_ctl` on a free loopback port with trust authentication, stopped and removed when
//! the process exits. Each test gets its own database in it. Tests that need it are
//! `#[ignore = "needs PostgreSQL: scripts/pg-check"]` (see `both_engines!`); run with
//! `--ignored` and no PostgreSQL installed, they fail, naming what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use zoomd::store::{Database, PgTarget, Store};

/// Which engine a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One test's database, removed with it (SQLite) or with the cluster (PostgreSQL).
pub struct TestDb {
    pub engine: Engine,
    pub database: Database,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A SQLite file (not yet created) in a new temp directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        TestDb {
            engine: Engine::Sqlite,
            database: Database::from(dir.path().join("state.db")),
            _dir: Some(dir),
        }
    }

    /// A new, empty database in the test cluster.
    pub async fn postgres() -> TestDb {
        database_in(cluster()).await
    }

    /// A new, empty database in a cluster of its own, which the test may stop and start
    /// (PostgreSQL down); removed when the [`PgServer`] is dropped.
    pub async fn postgres_of_its_own() -> (TestDb, PgServer) {
        let server = PgServer(start_cluster());
        (database_in(&server.0).await, server)
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.database).await.expect("open the store")
    }

    /// Runs `sql` on the database beside the store, as a person with sqlite3 or psql could.
    pub async fn poke(&self, sql: &str) {
        match &self.database {
            Database::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("poke");
                let _ = conn.close().await;
            }
            Database::Postgres(pg) => {
                let mut conn = sqlx::PgConnection::connect(pg.url().as_str())
                    .await
                    .expect("connect");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("poke");
                let _ = conn.close().await;
            }
        }
    }

    /// One integer from `sql` (a count, a version), read beside the store.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match &self.database {
            Database::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("scalar")
            }
            Database::Postgres(pg) => {
                let mut conn = sqlx::PgConnection::connect(pg.url().as_str())
                    .await
                    .expect("connect");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("scalar")
            }
        }
    }

    /// Every row of `sql`, each column read as text (`NULL`: `None`); cast non-text columns
    /// in the query (`CAST(id AS TEXT)`), which both engines understand.
    pub async fn text_rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        fn texts<R: Row>(row: &R) -> Vec<Option<String>>
        where
            for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            (0..row.len())
                .map(|i| row.try_get::<Option<String>, _>(i).expect("a text column"))
                .collect()
        }
        match &self.database {
            Database::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("rows");
                rows.iter().map(texts).collect()
            }
            Database::Postgres(pg) => {
                let mut conn = sqlx::PgConnection::connect(pg.url().as_str())
                    .await
                    .expect("connect");
                let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("rows");
                rows.iter().map(texts).collect()
            }
        }
    }
}

/// A new, empty database in `cluster`.
async fn database_in(cluster: &Cluster) -> TestDb {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "zoomd_t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap_or_else(|e| panic!("connect to the test cluster: {e}\n{}", cluster.log()));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let _ = admin.close().await;
    let target = PgTarget::parse(&cluster.url(&name)).expect("test URL");
    TestDb {
        engine: Engine::Postgres,
        database: Database::Postgres(target),
        _dir: None,
    }
}

/// A PostgreSQL cluster of one test's own, on its own port: stopped and started again
/// by the test, removed on drop.
pub struct PgServer(Cluster);

impl PgServer {
    /// Stops the server (`pg_ctl stop -m fast`: every connection is cut at once).
    pub fn stop(&self) {
        self.0.stop("fast");
    }

    /// Starts it again, on the same port with the same data.
    pub fn start(&self) {
        self.0.start();
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        self.0.log()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.0.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.0.dir);
    }
}

/// Runs each named test body (`async fn name(db: TestDb)`) once per engine, as the tests
/// `name::sqlite` and `name::postgres`; the PostgreSQL one is ignored unless
/// `scripts/pg-check` (or `--ignored`) asks for it.
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::helpers::TestDb::sqlite()).await
            }

            #[tokio::test]
            #[ignore = "needs PostgreSQL: scripts/pg-check"]
            async fn postgres() {
                super::$name($crate::helpers::TestDb::postgres().await).await
            }
        }
    )*};
}
pub(crate) use both_engines;

/// The test process's PostgreSQL cluster.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The user the cluster's superuser role is called (trust authentication on loopback).
const ROLE: &str = "zoomd";

impl Cluster {
    fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    fn start(&self) {
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

    /// `pg_ctl stop -m <mode>`, waiting until it is down.
    fn stop(&self, mode: &str) {
        let _ = run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", mode, "-w", "stop"],
        );
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let cluster = start_cluster();
        // SAFETY: registers a plain extern "C" function; it runs once, at exit.
        unsafe {
            libc::atexit(stop_cluster);
        }
        cluster
    })
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

fn start_cluster() -> Cluster {
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

/// Stops the cluster and removes its directory when the test process exits.
extern "C" fn stop_cluster() {
    let Some(c) = CLUSTER.get() else { return };
    c.stop("immediate");
    let _ = std::fs::remove_dir_all(&c.dir);
}
