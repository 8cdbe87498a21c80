//! The control-plane database: SQLite through sqlx, WAL journal, foreign keys on, migrations from
//! `api/migrations/` applied at open.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::error::{ControlError, Result};

/// Connections of the pool for a file database. SQLite has one writer at a time; readers in WAL
/// mode run beside it.
const MAX_CONNECTIONS: u32 = 8;

/// How long a statement waits for the write lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating if needed) the database at `database_url` — e.g.
/// `sqlite://./pinhouse-data/control.db?mode=rwc` or `sqlite::memory:` — and migrates it.
pub(crate) async fn open(database_url: &str) -> Result<SqlitePool> {
    let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
    let mut options = SqliteConnectOptions::from_str(database_url)
        .map_err(|e| ControlError::internal(format!("bad database url {database_url:?}: {e}")))?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let mut pool_options = SqlitePoolOptions::new();
    if in_memory {
        // Every connection to `:memory:` is a database of its own: keep exactly one, forever.
        pool_options = pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else {
        options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        create_parent_dir(options.get_filename())?;
        pool_options = pool_options.max_connections(MAX_CONNECTIONS);
    }
    let pool = pool_options.connect_with(options).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    tracing::info!(database_url, "control-plane database open and migrated");
    Ok(pool)
}

fn create_parent_dir(file: &std::path::Path) -> Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| ControlError::internal(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_database_uses_wal_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/control.db?mode=rwc", dir.path().display());
        let pool = open(&url).await.unwrap();
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
        let pool = open(&url).await.unwrap();
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
        let pool = open("sqlite::memory:").await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
