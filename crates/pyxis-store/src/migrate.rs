//! Schema migrations embedded in the binary, applied in order, each once, under the write lock.

use crate::{Backend, Result, Store};

/// (version, SQLite DDL, PostgreSQL DDL): the same schema in each dialect.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/postgres/0001_init.sql"),
)];

pub(crate) async fn run(store: &Store) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&store.pool)
    .await?;
    for &(version, sqlite, postgres) in MIGRATIONS {
        // Re-checked under the lock: two processes opening a fresh store at once must not both
        // apply the same migration.
        let mut tx = store.begin_write().await?;
        let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        let ddl = match store.backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        sqlx::raw_sql(ddl).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
