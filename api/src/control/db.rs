//! The control-plane database: SQLite (embedded, the default) or PostgreSQL (the scale-out
//! option), both through sqlx's `Any` driver so that one body of SQL serves both. Each backend has
//! its own migrations directory (`api/migrations/sqlite`, `api/migrations/postgres`) with the
//! same versions and the same schema in its own dialect; they are applied at open.
//!
//! The SQL in this crate is written in the subset both understand: `$1` placeholders, `RETURNING`,
//! `ON CONFLICT`, integers for flags and times (milliseconds). The few places where the dialects
//! differ ask [`Backend`] for the fragment.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use super::error::{ControlError, Result};

/// Connections of the pool for a file or server database.
const MAX_CONNECTIONS: u32 = 8;

/// How long a SQLite statement waits for the write lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The key of the PostgreSQL advisory lock that serializes read-then-write transactions (see
/// [`Backend::begin_write_sql`]). Any constant unique to pinhouse in the database.
const PG_WRITE_LOCK_KEY: i64 = 0x7069_6e68_6f75_7365; // "pinhouse"

/// Which database the control plane runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a `database_url` names: `sqlite:…` or `postgres://…` / `postgresql://…`.
    pub fn of_url(database_url: &str) -> Result<Backend> {
        if database_url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            Ok(Backend::Postgres)
        } else {
            Err(ControlError::internal(format!(
                "unsupported database url {:?}: expected sqlite:… or postgres://…",
                redact(database_url)
            )))
        }
    }

    /// A subquery yielding the integer ids of the JSON array bound at `param` (e.g. `$1`), for
    /// `x IN (…)` with a list whose length varies.
    pub fn json_ids(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("SELECT value FROM json_each({param})"),
            Backend::Postgres => {
                format!(
                    "SELECT value::bigint FROM jsonb_array_elements_text(CAST({param} AS jsonb)) AS j(value)"
                )
            }
        }
    }

    /// A subquery yielding the strings of the JSON array held in text column `column`.
    pub fn json_strings(self, column: &str) -> String {
        match self {
            Backend::Sqlite => format!("SELECT value FROM json_each({column})"),
            Backend::Postgres => {
                format!(
                    "SELECT value FROM jsonb_array_elements_text(CAST({column} AS jsonb)) AS j(value)"
                )
            }
        }
    }

    /// An aggregate joining `expr` with `sep` in `expr` order (NULL when there are no rows).
    pub fn string_agg_sorted(self, expr: &str, sep: &str) -> String {
        match self {
            // SQLite ≥ 3.44 takes ORDER BY inside an aggregate.
            Backend::Sqlite => format!("group_concat({expr}, '{sep}' ORDER BY {expr})"),
            Backend::Postgres => format!("string_agg({expr}, '{sep}' ORDER BY {expr})"),
        }
    }
}

/// A database url with its password replaced, for logs and errors.
pub fn redact(database_url: &str) -> String {
    let Some(scheme_end) = database_url.find("://") else {
        return database_url.to_string();
    };
    let rest = &database_url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &database_url[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            ),
            None => database_url.to_string(),
        },
        None => database_url.to_string(),
    }
}

/// Opens (creating if needed) the database at `database_url` — e.g.
/// `sqlite://./pinhouse-data/control.db?mode=rwc`, `sqlite::memory:` or
/// `postgres://user:pass@host/db` — and migrates it.
pub(crate) async fn open(database_url: &str) -> Result<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(database_url)?;
    let pool = match backend {
        Backend::Sqlite => open_sqlite(database_url).await?,
        Backend::Postgres => {
            AnyPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect(database_url)
                .await?
        }
    };
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
        Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
    }
    tracing::info!(database_url = %redact(database_url), ?backend, "control-plane database open and migrated");
    Ok((pool, backend))
}

async fn open_sqlite(database_url: &str) -> Result<AnyPool> {
    let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
    let mut pool_options = AnyPoolOptions::new();
    if in_memory {
        // Every connection to `:memory:` is a database of its own: keep exactly one, forever.
        pool_options = pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else {
        create_parent_dir(database_url)?;
        pool_options = pool_options.max_connections(MAX_CONNECTIONS);
    }
    let pragmas = format!(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};{}",
        BUSY_TIMEOUT.as_millis(),
        if in_memory {
            ""
        } else {
            " PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
        }
    );
    Ok(pool_options
        .after_connect(move |conn, _| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        })
        .connect(database_url)
        .await?)
}

/// Creates the directory of a `sqlite://PATH?…` database file when it is missing.
fn create_parent_dir(database_url: &str) -> Result<()> {
    let path = database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| ControlError::internal(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

/// The statement that starts a read-then-write transaction on `backend`, and the one run right
/// after it. SQLite takes its database write lock at once (`BEGIN IMMEDIATE`), so a transaction
/// never reads a snapshot that a concurrent writer has made stale; PostgreSQL gets the same
/// guarantee from a transaction-scoped advisory lock that every such transaction takes first.
pub(crate) fn begin_write_sql(backend: Backend) -> (&'static str, Option<String>) {
    match backend {
        Backend::Sqlite => ("BEGIN IMMEDIATE", None),
        Backend::Postgres => (
            "BEGIN",
            Some(format!("SELECT pg_advisory_xact_lock({PG_WRITE_LOCK_KEY})")),
        ),
    }
}

/// Rows of two integer columns as `u32` pairs (every integer column is 64-bit on both
/// backends); a pair out of range is left out.
pub(crate) fn u32_pairs(rows: Vec<(i64, i64)>) -> Vec<(u32, u32)> {
    rows.into_iter()
        .filter_map(|(a, b)| Some((u32::try_from(a).ok()?, u32::try_from(b).ok()?)))
        .collect()
}

/// A nullable integer column read through the `Any` driver, for row fields typed `Option<u32>`
/// (or `u16`, `u8`): `#[sqlx(try_from = "NullableInt")]`. The `Any` driver only decodes signed
/// integers, and every integer column is a 64-bit one on both backends.
#[derive(Clone, Copy, Debug)]
pub struct NullableInt(Option<i64>);

/// An integer flag column (0 / 1) read as `bool`: `#[sqlx(try_from = "Flag")]`. Both backends
/// store flags as integers (SQLite has no boolean type; `Any` decodes no SQLite value as one).
#[derive(Clone, Copy, Debug)]
pub struct Flag(i64);

impl sqlx::Type<sqlx::Any> for NullableInt {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }
    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for NullableInt {
    fn decode(
        value: sqlx::any::AnyValueRef<'r>,
    ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        Ok(NullableInt(
            <Option<i64> as sqlx::Decode<sqlx::Any>>::decode(value)?,
        ))
    }
}

impl sqlx::Type<sqlx::Any> for Flag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }
    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Flag {
    fn decode(
        value: sqlx::any::AnyValueRef<'r>,
    ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        Ok(Flag(<i64 as sqlx::Decode<sqlx::Any>>::decode(value)?))
    }
}

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0 != 0
    }
}

macro_rules! nullable_into {
    ($($t:ty),*) => {$(
        impl TryFrom<NullableInt> for Option<$t> {
            type Error = std::num::TryFromIntError;
            fn try_from(value: NullableInt) -> std::result::Result<Self, Self::Error> {
                value.0.map(<$t>::try_from).transpose()
            }
        }
    )*};
}
nullable_into!(u8, u16, u32);

/// Narrows ids read as `i64` (the only integer the `Any` driver decodes) to the `u32` the crate
/// uses; a value out of range is a corrupt database, reported as an internal error.
pub(crate) trait Narrow<T> {
    fn narrow(self) -> Result<T>;
}

impl Narrow<u32> for i64 {
    fn narrow(self) -> Result<u32> {
        u32::try_from(self).map_err(|_| ControlError::internal(format!("id {self} out of range")))
    }
}

impl Narrow<Option<u32>> for Option<i64> {
    fn narrow(self) -> Result<Option<u32>> {
        self.map(Narrow::narrow).transpose()
    }
}

impl Narrow<Vec<u32>> for Vec<i64> {
    fn narrow(self) -> Result<Vec<u32>> {
        self.into_iter().map(Narrow::narrow).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_database_uses_wal_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/control.db?mode=rwc", dir.path().display());
        let (pool, backend) = open(&url).await.unwrap();
        assert_eq!(backend, Backend::Sqlite);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        pool.close().await;
        // Opening again re-runs no migration and keeps the data.
        let (pool, _) = open(&url).await.unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(tables, 1);
    }

    #[tokio::test]
    async fn memory_database_keeps_its_schema() {
        let (pool, _) = open("sqlite::memory:").await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn urls_name_their_backend_and_passwords_stay_out_of_logs() {
        assert_eq!(Backend::of_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of_url("postgresql://u:p@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::of_url("mysql://h/db").is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
