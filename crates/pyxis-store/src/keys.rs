//! Tenants and API keys. A key is shown once when made; only its SHA-256 hash is kept.

use sha2::{Digest, Sha256};

use crate::{Result, Store, StoreError, now_ms};

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub key_id: String,
}

/// A freshly made key: the plaintext exists only in this value.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant: String,
    pub key_id: String,
    pub key: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantInfo {
    pub name: String,
    pub created_at_ms: i64,
    pub active_keys: i64,
    /// Display prefixes of the active keys, e.g. `pyx-3f9a…`.
    pub key_prefixes: Vec<String>,
}

/// The SHA-256 of a key, as the store keeps it (hex).
pub fn hash_key(plaintext: &str) -> String {
    digest_hex(&key_digest(plaintext))
}

/// A key's SHA-256 bytes as the store keeps them (hex).
pub fn digest_hex(digest: &[u8; 32]) -> String {
    hex::encode(digest)
}

/// The SHA-256 of a key as bytes: what an in-memory cache keys on (no hex string to build per request).
pub fn key_digest(plaintext: &str) -> [u8; 32] {
    Sha256::digest(plaintext.as_bytes()).into()
}

fn generate_key() -> String {
    // Two v4 UUIDs: 244 bits from the OS's CSPRNG.
    format!("pyx-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn prefix_of(key: &str) -> String {
    key.chars().take(8).collect()
}

pub(crate) fn valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl Store {
    /// Creates a tenant if it does not exist. Returns whether it was created.
    pub async fn ensure_tenant(&self, name: &str) -> Result<bool> {
        if !valid_tenant_name(name) {
            return Err(StoreError::BadTenantName(name.to_string()));
        }
        let res = sqlx::query("INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING")
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Creates a tenant with a new key; fails if the tenant exists.
    pub async fn create_tenant(&self, name: &str) -> Result<NewKey> {
        if !self.ensure_tenant(name).await? {
            return Err(StoreError::TenantExists(name.to_string()));
        }
        self.add_key(name, None).await
    }

    /// Adds a key to a tenant: the given plaintext (for a configured demo key) or a new random one.
    pub async fn add_key(&self, tenant: &str, plaintext: Option<&str>) -> Result<NewKey> {
        let key = plaintext.map_or_else(generate_key, str::to_string);
        let hash = hash_key(&key);
        let mut tx = self.begin_write().await?;
        let tenant_id: Option<(i64,)> = sqlx::query_as("SELECT id FROM tenants WHERE name = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
        let (tenant_id,) = tenant_id.ok_or_else(|| StoreError::NoSuchTenant(tenant.to_string()))?;
        let owner: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT tenant_id, revoked_at FROM api_keys WHERE key_hash = $1")
                .bind(&hash)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((owner, revoked)) = owner {
            if owner != tenant_id {
                return Err(StoreError::KeyInUse);
            }
            // Re-registering a known key (e.g. PYXIS_DEMO_API_KEY on every start) reactivates it.
            if revoked.is_some() {
                sqlx::query("UPDATE api_keys SET revoked_at = NULL WHERE key_hash = $1")
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                bump_epoch(&mut tx).await?;
            }
            let (key_id,): (String,) = sqlx::query_as("SELECT id FROM api_keys WHERE key_hash = $1")
                .bind(&hash)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(NewKey {
                tenant: tenant.to_string(),
                key_id,
                key,
            });
        }
        let key_id = format!("key_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        sqlx::query("INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&key_id)
            .bind(tenant_id)
            .bind(&hash)
            .bind(prefix_of(&key))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(NewKey {
            tenant: tenant.to_string(),
            key_id,
            key,
        })
    }

    /// Revokes every active key of the tenant and issues a new one.
    pub async fn rotate_key(&self, tenant: &str) -> Result<NewKey> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE revoked_at IS NULL AND tenant_id = (SELECT id FROM tenants WHERE name = $2)",
        )
        .bind(now_ms())
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM tenants WHERE name = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NoSuchTenant(tenant.to_string()));
        }
        if res.rows_affected() > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        self.add_key(tenant, None).await
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantInfo>> {
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT t.name, t.created_at, k.prefix FROM tenants t \
             LEFT JOIN api_keys k ON k.tenant_id = t.id AND k.revoked_at IS NULL \
             ORDER BY t.name, k.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<TenantInfo> = Vec::new();
        for (name, created, prefix) in rows {
            if out.last().is_none_or(|t| t.name != name) {
                out.push(TenantInfo {
                    name,
                    created_at_ms: created,
                    active_keys: 0,
                    key_prefixes: vec![],
                });
            }
            if let (Some(t), Some(p)) = (out.last_mut(), prefix) {
                t.active_keys += 1;
                t.key_prefixes.push(format!("{p}…"));
            }
        }
        Ok(out)
    }

    pub async fn tenant_has_active_key(&self, tenant: &str) -> Result<bool> {
        let n: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE t.name = $1 AND k.revoked_at IS NULL",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.0 > 0)
    }

    /// Looks up an active key by its hash.
    pub async fn principal_by_hash(&self, hash: &str) -> Result<Option<Principal>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT t.name, k.id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(tenant, key_id)| Principal { tenant, key_id }))
    }

    /// Changes whenever any key is added, revoked or reactivated, by any process.
    pub async fn key_epoch(&self) -> Result<i64> {
        let (v,): (i64,) = sqlx::query_as("SELECT value FROM settings WHERE name = 'key_epoch'")
            .fetch_one(&self.pool)
            .await?;
        Ok(v)
    }
}

async fn bump_epoch(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> sqlx::Result<()> {
    sqlx::query("UPDATE settings SET value = value + 1 WHERE name = 'key_epoch'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stores;

    #[tokio::test]
    async fn keys_lifecycle() {
        for (backend, store) in stores().await.stores {
            let k = store.create_tenant("team-a").await.unwrap();
            assert!(k.key.starts_with("pyx-"));
            assert!(
                matches!(store.create_tenant("team-a").await, Err(StoreError::TenantExists(_))),
                "{backend:?}"
            );
            assert!(matches!(
                store.create_tenant("Bad Name").await,
                Err(StoreError::BadTenantName(_))
            ));
            let p = store.principal_by_hash(&hash_key(&k.key)).await.unwrap().unwrap();
            assert_eq!(p.tenant, "team-a");
            let e0 = store.key_epoch().await.unwrap();
            let k2 = store.rotate_key("team-a").await.unwrap();
            assert!(store.key_epoch().await.unwrap() > e0);
            assert!(
                store.principal_by_hash(&hash_key(&k.key)).await.unwrap().is_none(),
                "old key revoked"
            );
            assert!(store.principal_by_hash(&hash_key(&k2.key)).await.unwrap().is_some());
            let list = store.list_tenants().await.unwrap();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].active_keys, 1);
            assert!(matches!(
                store.rotate_key("nope").await,
                Err(StoreError::NoSuchTenant(_))
            ));
            if backend == crate::Backend::Sqlite {
                // The plaintext is nowhere in the database files.
                store.close().await;
                let path = std::path::PathBuf::from(store.location());
                let bytes = std::fs::read(&path).unwrap();
                let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
                for b in [bytes, wal] {
                    assert!(!b.windows(k2.key.len()).any(|w| w == k2.key.as_bytes()));
                }
            }
        }
    }

    #[tokio::test]
    async fn fixed_key_is_idempotent_and_exclusive() {
        for (_, store) in stores().await.stores {
            store.ensure_tenant("default").await.unwrap();
            let a = store.add_key("default", Some("demo-key")).await.unwrap();
            let b = store.add_key("default", Some("demo-key")).await.unwrap();
            assert_eq!(a.key_id, b.key_id);
            store.ensure_tenant("other").await.unwrap();
            assert!(matches!(
                store.add_key("other", Some("demo-key")).await,
                Err(StoreError::KeyInUse)
            ));
            assert!(store.tenant_has_active_key("default").await.unwrap());
        }
    }

    #[tokio::test]
    async fn reopening_runs_migrations_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        store.ensure_tenant("x").await.unwrap();
        drop(store);
        let store = Store::open(dir.path()).await.unwrap();
        assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    }
}
