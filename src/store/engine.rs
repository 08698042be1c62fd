//! The two engines behind one [`super::Store`]: a pool of either, and statements that run on
//! both.
//!
//! Every statement is written once, in the SQL both engines accept, with SQLite's `?` / `?N`
//! placeholders; for PostgreSQL they become `$N` ([`pg_placeholders`]). Values are bound as
//! the three kinds the schema uses (integers, text, booleans), so one statement binds the same
//! way on both (sqlx's `Any` driver would do the same but decodes no chrono types and no
//! typed rows). The few statements that must differ pick their text by [`Pool::is_postgres`].

use std::marker::PhantomData;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{FromRow, Postgres, Sqlite};

/// A pool of either engine.
#[derive(Clone, Debug)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub(super) fn is_postgres(&self) -> bool {
        matches!(self, Pool::Postgres(_))
    }

    pub(super) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    pub(super) async fn begin(&self, sqlite_begin: &'static str) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with(sqlite_begin).await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

/// A transaction of either engine.
pub(super) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

/// Where a statement runs: the pool, or an open transaction.
pub(super) enum On<'a> {
    Pool(&'a Pool),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Pool> for On<'a> {
    fn from(p: &'a Pool) -> On<'a> {
        On::Pool(p)
    }
}

impl<'a> From<&'a mut Tx> for On<'a> {
    fn from(t: &'a mut Tx) -> On<'a> {
        On::Tx(t)
    }
}

/// A bound value: what both engines store.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

/// A value a statement binds.
pub(super) trait IntoArg {
    fn into_arg(self) -> Arg;
    /// NULL of this type (PostgreSQL types every parameter, NULLs included).
    fn null() -> Arg;
}

impl IntoArg for i64 {
    fn into_arg(self) -> Arg {
        Arg::Int(Some(self))
    }
    fn null() -> Arg {
        Arg::Int(None)
    }
}

impl IntoArg for bool {
    fn into_arg(self) -> Arg {
        Arg::Bool(Some(self))
    }
    fn null() -> Arg {
        Arg::Bool(None)
    }
}

impl IntoArg for String {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self))
    }
    fn null() -> Arg {
        Arg::Text(None)
    }
}

impl IntoArg for &str {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self.to_string()))
    }
    fn null() -> Arg {
        Arg::Text(None)
    }
}

impl IntoArg for &String {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self.clone()))
    }
    fn null() -> Arg {
        Arg::Text(None)
    }
}

impl<T: IntoArg> IntoArg for Option<T> {
    fn into_arg(self) -> Arg {
        match self {
            Some(v) => v.into_arg(),
            None => T::null(),
        }
    }
    fn null() -> Arg {
        T::null()
    }
}

impl<'a, T> IntoArg for &'a Option<T>
where
    &'a T: IntoArg,
{
    fn into_arg(self) -> Arg {
        match self {
            Some(v) => v.into_arg(),
            None => <&T>::null(),
        }
    }
    fn null() -> Arg {
        <&T>::null()
    }
}

/// A statement and its values.
#[derive(Debug, Clone)]
pub(super) struct Query {
    sql: String,
    args: Vec<Arg>,
}

/// A statement whose rows read into `T`.
pub(super) struct QueryAs<T> {
    query: Query,
    _rows: PhantomData<fn() -> T>,
}

/// A statement whose rows are one column, read into `T`.
pub(super) struct QueryScalar<T> {
    query: QueryAs<(T,)>,
}

pub(super) fn query(sql: impl Into<String>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

pub(super) fn query_as<T>(sql: impl Into<String>) -> QueryAs<T> {
    QueryAs {
        query: query(sql),
        _rows: PhantomData,
    }
}

pub(super) fn query_scalar<T>(sql: impl Into<String>) -> QueryScalar<T> {
    QueryScalar {
        query: query_as(sql),
    }
}

/// What a write did.
pub(super) struct Done {
    rows: u64,
}

impl Done {
    pub(super) fn new(rows: u64) -> Done {
        Done { rows }
    }

    pub(super) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// Binds `args` in order to a sqlx query or query_as of either engine.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Runs `$run` (a closure-like body over a bound sqlx statement `$q` and an executor `$e`)
/// on whichever engine `$on` is.
macro_rules! on_engine {
    ($on:expr, $sql:expr, $make:path, |$q:ident, $e:ident| $run:expr) => {{
        let sql = $sql;
        match $on {
            On::Pool(Pool::Sqlite(p)) => {
                let $q = $make(sql.as_str());
                let $e = p;
                $run
            }
            On::Tx(Tx::Sqlite(t)) => {
                let $q = $make(sql.as_str());
                let $e = &mut **t;
                $run
            }
            On::Pool(Pool::Postgres(p)) => {
                let pg = pg_placeholders(&sql);
                let $q = $make(pg.as_str());
                let $e = p;
                $run
            }
            On::Tx(Tx::Postgres(t)) => {
                let pg = pg_placeholders(&sql);
                let $q = $make(pg.as_str());
                let $e = &mut **t;
                $run
            }
        }
    }};
}

impl Query {
    pub(super) fn bind(mut self, v: impl IntoArg) -> Query {
        self.args.push(v.into_arg());
        self
    }

    pub(super) async fn execute<'a>(self, on: impl Into<On<'a>>) -> Result<Done, sqlx::Error> {
        let args = &self.args;
        let rows = on_engine!(on.into(), self.sql.clone(), sqlx::query, |q, e| bind_all!(
            q, args
        )
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(Done { rows })
    }

    /// The SQLite statement, bound: for the few callers that run it on their own connection.
    pub(super) fn sqlite(
        &self,
    ) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
        bind_all!(sqlx::query(self.sql.as_str()), &self.args)
    }
}

impl<T> QueryAs<T>
where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    pub(super) fn bind(mut self, v: impl IntoArg) -> QueryAs<T> {
        self.query = self.query.bind(v);
        self
    }

    pub(super) async fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> Result<Vec<T>, sqlx::Error> {
        let args = &self.query.args;
        on_engine!(on.into(), self.query.sql.clone(), sqlx::query_as, |q, e| {
            bind_all!(q, args).fetch_all(e).await
        })
    }

    pub(super) async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<T, sqlx::Error> {
        let args = &self.query.args;
        on_engine!(on.into(), self.query.sql.clone(), sqlx::query_as, |q, e| {
            bind_all!(q, args).fetch_one(e).await
        })
    }

    pub(super) async fn fetch_optional<'a>(
        self,
        on: impl Into<On<'a>>,
    ) -> Result<Option<T>, sqlx::Error> {
        let args = &self.query.args;
        on_engine!(on.into(), self.query.sql.clone(), sqlx::query_as, |q, e| {
            bind_all!(q, args).fetch_optional(e).await
        })
    }
}

impl<T> QueryScalar<T>
where
    (T,): for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    pub(super) fn bind(mut self, v: impl IntoArg) -> QueryScalar<T> {
        self.query = self.query.bind(v);
        self
    }

    pub(super) async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<T, sqlx::Error> {
        Ok(self.query.fetch_one(on).await?.0)
    }

    pub(super) async fn fetch_optional<'a>(
        self,
        on: impl Into<On<'a>>,
    ) -> Result<Option<T>, sqlx::Error> {
        Ok(self.query.fetch_optional(on).await?.map(|(v,)| v))
    }
}

/// SQLite's placeholders as PostgreSQL's: `?N` becomes `$N`, and a bare `?` the next number
/// after the highest so far (SQLite's own rule). Quoted text and identifiers are left alone.
pub(super) fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut highest = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse::<usize>().unwrap_or(highest + 1);
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pg_placeholders;

    #[test]
    fn placeholders_follow_sqlites_numbering() {
        assert_eq!(pg_placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(
            pg_placeholders("a = ?1 OR b = ?1 LIMIT ?2"),
            "a = $1 OR b = $1 LIMIT $2"
        );
        assert_eq!(pg_placeholders("a = ?2 AND b = ?"), "a = $2 AND b = $3");
        assert_eq!(
            pg_placeholders("x = '?' AND \"we?rd\" = ?"),
            "x = '?' AND \"we?rd\" = $1"
        );
        // A doubled quote inside text closes and reopens it: still text.
        assert_eq!(pg_placeholders("x = 'it''s ?' OR ?"), "x = 'it''s ?' OR $1");
    }
}
