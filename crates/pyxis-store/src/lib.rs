//! Durable state of a Pyxis install: tenants, API keys (stored only as SHA-256 hashes) and the
//! audit log — in an embedded SQLite file under the data directory (default), or in PostgreSQL
//! (`--database-url postgres://…`) for several gateway replicas.
//!
//! One code path serves both: queries go through sqlx's `Any` driver and are written in the
//! dialect both accept (`$1`-style parameters, numbered in order of first use, which SQLite also
//! reads positionally; `BIGINT` and `DOUBLE PRECISION` columns; `RETURNING`). Only the DDL
//! (migrations/sqlite, migrations/postgres) and the write-lock statement differ.
//!
//! Several processes share one store: `pyxis serve` and CLI commands such as
//! `pyxis tenant create` run side by side, so SQLite runs in WAL mode with a busy timeout, and key
//! changes bump a `key_epoch` that servers poll to drop revoked keys from their caches.

mod audit;
mod keys;
mod migrate;
mod usage;

pub use audit::{AuditQuery, AuditRecord, BrokenRecord, GENESIS_HASH, PossibleGap, VerifyReport};
pub use keys::{NewKey, Principal, TenantInfo, digest_hex, hash_key, key_digest};
pub use usage::{DEDICATED_MODEL, DedicatedCapacity, UsageKey, UsageRow};

use std::path::{Path, PathBuf};
use std::time::Duration;

type AnyPool = sqlx::Pool<sqlx::Any>;
type AnyPoolOptions = sqlx::pool::PoolOptions<sqlx::Any>;
use sqlx::{Executor, Transaction};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "pyxis.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(
        "unsupported database URL `{0}`: use postgres://… (or omit it for the embedded SQLite store under --data-dir)"
    )]
    BadUrl(String),
    #[error("tenant `{0}` already exists (use `pyxis tenant rotate-key {0}` for a new key)")]
    TenantExists(String),
    #[error("no tenant named `{0}` (see `pyxis tenant list`)")]
    NoSuchTenant(String),
    #[error(
        "invalid tenant name `{0}`: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters"
    )]
    BadTenantName(String),
    #[error("that API key is already registered to another tenant")]
    KeyInUse,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    location: String,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the embedded SQLite store under `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        Self::connect_as(
            &format!("sqlite://{}?mode=rwc", path.display()),
            Backend::Sqlite,
            path.display().to_string(),
        )
        .await
    }

    /// Opens a store by URL: `postgres://…` (or `sqlite://PATH`).
    pub async fn connect(url: &str) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let shown = redact_url(url);
            Self::connect_as(url, Backend::Postgres, shown).await
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Self::connect_as(url, Backend::Sqlite, path.to_string()).await
        } else {
            Err(StoreError::BadUrl(redact_url(url)))
        }
    }

    async fn connect_as(url: &str, backend: Backend, location: String) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let mut opts = AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 8 });
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // FULL: a committed audit batch survives power loss, not only a process crash;
                    // group commit keeps the fsyncs few.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.acquire_timeout(Duration::from_secs(30)).connect(url).await?;
        let store = Store {
            pool,
            backend,
            location,
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Where the data lives: the SQLite file, or the PostgreSQL URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that holds the write lock from its first statement, so read-then-write
    /// sequences (the audit chain's tail, migrations) cannot interleave across processes.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                // One advisory lock for all Pyxis writers that chain or migrate.
                sqlx::query("SELECT pg_advisory_xact_lock(7072797869)")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Each test gets a fresh store on each backend: a temp SQLite file, and (when
    //! `DATABASE_URL` is set) a fresh schema in PostgreSQL.

    use super::*;

    pub struct TestStores {
        pub stores: Vec<(Backend, Store)>,
        _dir: tempfile::TempDir,
    }

    pub async fn stores() -> TestStores {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![(Backend::Sqlite, Store::open(dir.path()).await.unwrap())];
        match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let admin = Store::connect_raw(&url).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let sep = if url.contains('?') { '&' } else { '?' };
                let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
                stores.push((Backend::Postgres, Store::connect(&scoped).await.unwrap()));
            }
            _ => eprintln!(
                "NOTE: DATABASE_URL is not set: this test ran against SQLite only and did NOT run against PostgreSQL"
            ),
        }
        TestStores { stores, _dir: dir }
    }

    impl Store {
        pub(crate) async fn connect_raw(url: &str) -> AnyPool {
            sqlx::any::install_default_drivers();
            AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap()
        }

        pub(crate) fn pool(&self) -> &AnyPool {
            &self.pool
        }
    }
}
