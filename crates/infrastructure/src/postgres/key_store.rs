//! `KeyStore` on PostgreSQL, and the reads the in-memory key set is refreshed with.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_application::keys::{KeyRecord, KeyStore, NewKey};
use offndat_application::ports::StoreError;
use offndat_application::{Actor, Role};
use serde_json::json;
use sqlx::PgPool;

use super::errors::store_error;

/// Keys in PostgreSQL; create and revoke write their audit rows in the same
/// transaction.
#[derive(Debug, Clone)]
pub struct PgKeyStore {
    pool: PgPool,
}

/// An active key as the authenticator holds it.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub secret_sha256: [u8; 32],
    pub actor: Actor,
}

struct KeyRow {
    id: i64,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let role = Role::parse(&row.role)
            .ok_or_else(|| StoreError::Other(format!("key {} has an unknown role", row.id).into()))?;
        Ok(KeyRecord {
            id: row.id,
            name: row.name,
            role,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        })
    }
}

impl PgKeyStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The change counter bumped by every change to which keys authenticate.
    pub async fn generation(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar!("SELECT generation FROM api_key_generation").fetch_one(&self.pool).await
    }

    /// Every key that is not revoked.
    pub async fn active(&self) -> Result<Vec<ActiveKey>, sqlx::Error> {
        let rows = sqlx::query!("SELECT id, name, role, secret_sha256 FROM api_keys WHERE revoked_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let secret_sha256: [u8; 32] = row.secret_sha256.try_into().ok()?;
                let role = Role::parse(&row.role)?;
                Some(ActiveKey { secret_sha256, actor: Actor { name: row.name, key_id: Some(row.id), role } })
            })
            .collect())
    }

    /// Records that the keys `ids` were used (at `at` at the latest).
    pub async fn touch(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = ANY($1) AND (last_used_at IS NULL OR last_used_at < $2)",
            ids,
            at
        )
        .execute(&self.pool)
        .await
        .map(drop)
    }
}

#[async_trait]
impl KeyStore for PgKeyStore {
    async fn create(&self, key: &NewKey, actor: &str) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let row = sqlx::query_as!(
            KeyRow,
            "INSERT INTO api_keys (name, role, secret_sha256, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING
             RETURNING id, name, role, created_at, last_used_at, revoked_at",
            key.name,
            key.role.as_str(),
            &key.secret_sha256[..],
            key.created_at,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Err(StoreError::NameTaken);
        };
        audit(&mut tx, actor, "key.created", json!({"name": key.name, "role": key.role.as_str()}), key.created_at)
            .await?;
        tx.commit().await.map_err(store_error)?;
        row.try_into()
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        sqlx::query_as!(KeyRow, "SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(KeyRecord::try_from)
            .collect()
    }

    async fn revoke(&self, name: &str, actor: &str, at: DateTime<Utc>) -> Result<Option<KeyRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let revoked = sqlx::query_as!(
            KeyRow,
            "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL
             RETURNING id, name, role, created_at, last_used_at, revoked_at",
            name,
            at
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let row = match revoked {
            Some(row) => {
                audit(&mut tx, actor, "key.revoked", json!({"name": row.name, "role": row.role}), at).await?;
                Some(row)
            }
            // Unknown, or revoked before: nothing changes and nothing is audited.
            None => sqlx::query_as!(
                KeyRow,
                "SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_keys WHERE name = $1",
                name
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?,
        };
        tx.commit().await.map_err(store_error)?;
        row.map(KeyRecord::try_from).transpose()
    }
}

/// Writes one audit row in `tx`.
pub(crate) async fn audit(
    tx: &mut sqlx::PgConnection,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query!("INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, $3, $4)", at, actor, action, detail)
        .execute(tx)
        .await
        .map(drop)
        .map_err(store_error)
}
