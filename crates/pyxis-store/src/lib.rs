//! Durable state of a Pyxis install: tenants, API keys (stored only as SHA-256 hashes) and the
//! audit log, in one embedded SQLite file under the data directory.
//!
//! Several processes share the file: `pyxis serve` and CLI commands such as `pyxis tenant create`
//! run side by side, so the database runs in WAL mode with a busy timeout, and key changes bump
//! a `key_epoch` that servers poll to drop revoked keys from their caches.

mod audit;
mod keys;
mod migrate;
mod usage;

pub use audit::{AuditQuery, AuditRecord, BrokenRecord, GENESIS_HASH, PossibleGap, VerifyReport};
pub use keys::{NewKey, Principal, TenantInfo, hash_key};
pub use usage::{UsageKey, UsageRow};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "pyxis.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
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

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir` and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        migrate::run(&pool).await?;
        Ok(Store { pool, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
