//! The state database of a test on either engine: a SQLite file in a temp directory, or a
//! fresh database in a throw-away PostgreSQL cluster.
//!
//! The cluster is made once per test process, on first use: `initdb` in a temp directory
//! (as the `postgres` user when the tests run as root, since initdb refuses root), started
//! with `pg_ctl` on a free loopback port with trust authentication, stopped and removed when
//! the process exits. Each test gets its own database in it. Tests that need it are
//! `#[ignore = "needs PostgreSQL: scripts/pg-check"]` (see `both_engines!`); run with
//! `--ignored` and no PostgreSQL installed, they fail, naming what is missing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use zoomd::store::{Database, PgTarget, Store};

use super::pg_cluster::Cluster;

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
        let server = PgServer(Cluster::start_new());
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
        self.0.remove();
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

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start_new();
        // SAFETY: registers a plain extern "C" function; it runs once, at exit.
        unsafe {
            libc::atexit(stop_cluster);
        }
        cluster
    })
}

/// Stops the cluster and removes its directory when the test process exits.
extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        c.remove();
    }
}
