//! `IdempotencyStore` on PostgreSQL: one row per (key name, Idempotency-Key),
//! claimed by an insert so that of concurrent requests exactly one creates.

use std::time::Duration;

use async_trait::async_trait;
use offndat_application::idempotency::{Claim, IdempotencyKey, IdempotencyStore};
use offndat_application::ports::StoreError;
use offndat_domain::Phrase;
use sqlx::PgPool;

use super::errors::store_error;

/// How long a key is remembered.
const KEEP_HOURS: i32 = 24;
/// How long a request waits for a concurrent one with the same key to finish.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(10);
/// A claim never completed nor released (its process died) is stale after this.
const STALE_CLAIM_SECONDS: f64 = 60.0;

/// Idempotency keys in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgIdempotencyStore {
    pool: PgPool,
}

impl PgIdempotencyStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn claim(&self, key: &IdempotencyKey) -> Result<Claim, StoreError> {
        let started = tokio::time::Instant::now();
        loop {
            // New key, or one whose last use expired (or whose claim went stale):
            // this request owns it. The unique key decides between concurrent ones.
            let fresh = sqlx::query_scalar!(
                r#"INSERT INTO idempotency_keys AS k (actor, key, request_hash)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (actor, key) DO UPDATE
                   SET request_hash = EXCLUDED.request_hash, status = NULL, response = NULL, created_at = now()
                   WHERE k.created_at < now() - make_interval(hours => $4)
                      OR (k.status IS NULL AND k.created_at < now() - make_interval(secs => $5))
                   RETURNING true AS "fresh!""#,
                key.actor,
                key.key,
                &key.request_hash[..],
                KEEP_HOURS,
                STALE_CLAIM_SECONDS,
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
            if fresh.is_some() {
                return Ok(Claim::Fresh);
            }
            let existing = sqlx::query!(
                "SELECT request_hash, status, response FROM idempotency_keys WHERE actor = $1 AND key = $2",
                key.actor,
                key.key,
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
            // Released between the two statements: claim again.
            let Some(existing) = existing else { continue };
            if existing.request_hash != key.request_hash {
                return Ok(Claim::Reused);
            }
            if existing.status.is_some() {
                let phrase = existing
                    .response
                    .as_ref()
                    .and_then(|r| r.get("phrase"))
                    .and_then(|p| p.as_str())
                    .and_then(|p| Phrase::parse(p).ok())
                    .ok_or_else(|| StoreError::Other("an idempotency key holds no phrase".into()))?;
                return Ok(Claim::Replay(phrase));
            }
            // The first request is still running.
            if started.elapsed() > WAIT_FOR_OTHER {
                return Err(StoreError::Unavailable("a request with this Idempotency-Key is still running".into()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn complete(&self, key: &IdempotencyKey, phrase: &Phrase) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE idempotency_keys SET status = 201, response = jsonb_build_object('phrase', $3::text)
             WHERE actor = $1 AND key = $2",
            key.actor,
            key.key,
            phrase.as_str(),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        sqlx::query!(
            "DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2 AND status IS NULL",
            key.actor,
            key.key
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}
