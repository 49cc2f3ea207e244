//! API-key authentication with a cache in front of the store.
//!
//! Hits are served from memory. A miss asks the store (so a key made by `pyxis tenant create`
//! works at once). The store's key epoch is polled, and any change (a rotation or revocation by
//! another process) empties the cache, so a revoked key stops working within one poll period.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use axum::http::HeaderMap;
use pyxis_protocol::{ErrorKind, OpenAiError};
use pyxis_store::{Principal, Store, digest_hex, key_digest};

pub struct KeyCache {
    store: Store,
    /// Keyed by the key's SHA-256 (bytes): the plaintext is never kept.
    map: RwLock<(i64, HashMap<[u8; 32], Principal>)>,
}

pub const EPOCH_POLL: Duration = Duration::from_millis(500);

impl KeyCache {
    pub fn new(store: Store) -> Self {
        KeyCache {
            store,
            map: RwLock::new((i64::MIN, HashMap::new())),
        }
    }

    /// Checks the `Authorization` header and returns who is calling.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, OpenAiError> {
        let key = bearer(headers)?;
        let digest = key_digest(key);
        if let Ok(guard) = self.map.read()
            && let Some(p) = guard.1.get(&digest)
        {
            return Ok(p.clone());
        }
        match self.store.principal_by_hash(&digest_hex(&digest)).await {
            Ok(Some(p)) => {
                if let Ok(mut guard) = self.map.write() {
                    guard.1.insert(digest, p.clone());
                }
                Ok(p)
            }
            Ok(None) => Err(OpenAiError::new(
                ErrorKind::Authentication,
                format!(
                    "Incorrect API key provided: {}. Check the key, or make one with `pyxis tenant create NAME` (or `pyxis tenant rotate-key NAME`).",
                    redact(key)
                ),
            )
            .with_code("invalid_api_key")),
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                Err(OpenAiError::new(ErrorKind::Internal, "The key store is unavailable; try again shortly."))
            }
        }
    }

    /// Drops cached keys when the store's key epoch moved. Called periodically.
    pub async fn refresh(&self) {
        match self.store.key_epoch().await {
            Ok(epoch) => {
                if let Ok(mut guard) = self.map.write()
                    && guard.0 != epoch
                {
                    guard.0 = epoch;
                    guard.1.clear();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read key epoch"),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, OpenAiError> {
    let missing = || {
        OpenAiError::new(
            ErrorKind::Authentication,
            "You didn't provide an API key. Send it in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY).",
        )
        .with_code("missing_api_key")
    };
    let value = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let key = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(missing)?;
    Ok(key)
}

fn redact(key: &str) -> String {
    let head: String = key.chars().take(6).collect();
    format!("{head}****")
}
