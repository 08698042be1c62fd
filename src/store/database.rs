//! Where the state lives: a SQLite file (the default) or a PostgreSQL database.
//!
//! A PostgreSQL URL may carry a password, but it never prints: [`Database`]'s `Display` and
//! `Debug` show the URL without it, and parse errors never repeat the text they were given.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// `[daemon] database`: a path is a SQLite file, `postgres://` (or `postgresql://`) a server.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(PgTarget),
}

impl Database {
    /// The SQLite file, if the state is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl<P: AsRef<Path>> From<P> for Database {
    fn from(p: P) -> Database {
        Database::Sqlite(p.as_ref().to_path_buf())
    }
}

impl From<&Database> for Database {
    fn from(d: &Database) -> Database {
        d.clone()
    }
}

impl PartialEq<PathBuf> for Database {
    fn eq(&self, other: &PathBuf) -> bool {
        self.sqlite_path() == Some(other.as_path())
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(pg) => pg.fmt(f),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Database::Postgres(pg) => write!(f, "Postgres({pg})"),
        }
    }
}

/// A PostgreSQL database: its URL without the password, and the password apart.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Never holds a password (see [`PgTarget::parse`]).
    url: url::Url,
    password: Option<Secret>,
    /// The password came in the URL (`zoomd check` suggests a credential instead).
    password_in_url: bool,
}

impl PgTarget {
    /// Parses `postgres://user@host:port/dbname[?sslmode=...]`. The error never contains the
    /// text, which may hold a password.
    pub fn parse(s: &str) -> Result<PgTarget, String> {
        const EXAMPLE: &str = "e.g. \"postgres://zoomd@db.example.org:5432/zoomd\"";
        let mut url =
            url::Url::parse(s).map_err(|e| format!("not a PostgreSQL URL ({e}); {EXAMPLE}"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "a URL with scheme '{}' is not a database; a path is a SQLite file, or {EXAMPLE}",
                url.scheme()
            ));
        }
        let has_host = url.host_str().is_some_and(|h| !h.is_empty())
            || url.query_pairs().any(|(k, _)| k == "host");
        if !has_host {
            return Err(format!("a PostgreSQL URL names its host; {EXAMPLE}"));
        }
        if url.path().trim_start_matches('/').is_empty() {
            return Err(format!("a PostgreSQL URL names its database; {EXAMPLE}"));
        }
        if url.query_pairs().any(|(k, _)| k == "password") {
            return Err(
                "the password does not go in the URL's query: use the systemd credential database_password, $PGPASSWORD or ~/.pgpass"
                    .into(),
            );
        }
        let password = match url.password() {
            Some(p) => Some(Secret::new(
                percent_encoding::percent_decode_str(p)
                    .decode_utf8()
                    .map_err(|_| "the URL's password is not UTF-8 once decoded".to_string())?
                    .into_owned(),
            )),
            None => None,
        };
        let password_in_url = password.is_some();
        // Cannot fail: the URL has a host (checked above, or it has none and no password).
        let _ = url.set_password(None);
        Ok(PgTarget {
            url,
            password,
            password_in_url,
        })
    }

    /// The password from elsewhere (a systemd credential) wins over one in the URL.
    pub fn with_password(mut self, password: Secret) -> PgTarget {
        self.password = Some(password);
        self
    }

    pub fn password_in_url(&self) -> bool {
        self.password_in_url
    }

    /// The URL without the password: safe to print.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PgTarget({}, password: {})",
            self.url,
            if self.password.is_some() {
                "<redacted>"
            } else {
                "none"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_prints() {
        let t = PgTarget::parse("postgres://zoomd:s%40cret-pw@db.example.org:5432/zoomd")
            .expect("parse");
        assert!(t.password_in_url());
        assert_eq!(t.password().map(Secret::expose), Some("s@cret-pw"));
        let db = Database::Postgres(t);
        for shown in [db.to_string(), format!("{db:?}")] {
            assert!(!shown.contains("cret"), "{shown}");
            assert!(
                shown.contains("postgres://zoomd@db.example.org:5432/zoomd"),
                "{shown}"
            );
        }
    }

    #[test]
    fn errors_name_the_fault_and_not_the_text() {
        for (url, says) in [
            ("postgres://u:pw-1@/zoomd", "host"),
            ("postgres://u:pw-1@db", "database"),
            ("mysql://u:pw-1@db/zoomd", "scheme 'mysql'"),
            ("postgres://u@db/zoomd?password=pw-1", "credential"),
            ("postgres://u:pw-1@db:99999/zoomd", "not a PostgreSQL URL"),
        ] {
            let e = PgTarget::parse(url).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("pw-1"), "{url}: {e}");
        }
        let socket = PgTarget::parse("postgres:///zoomd?host=/run/postgresql&user=zoomd");
        assert!(socket.is_ok(), "{socket:?}");
    }
}
