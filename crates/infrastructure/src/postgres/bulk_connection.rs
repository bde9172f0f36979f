//! A pooled connection for statements that carry megabytes (a flush's events,
//! the relay's claimed rows, a worker batch): sqlx grows a connection's read and
//! write buffers to the largest message it has handled and keeps them for the
//! connection's life, so a burst over many links left each pooled connection
//! holding its share of the peak (part of the API's resident memory long after
//! the load). This one shrinks them when it goes back to the pool.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};

/// A connection whose buffers shrink back to their default size on release.
pub struct BulkConnection(PoolConnection<Postgres>);

impl BulkConnection {
    pub async fn acquire(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self(pool.acquire().await?))
    }
}

impl Deref for BulkConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.0
    }
}

impl DerefMut for BulkConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0
    }
}

impl Drop for BulkConnection {
    fn drop(&mut self) {
        // Keeps what is still to be sent (a dropped transaction's queued ROLLBACK).
        self.0.shrink_buffers();
    }
}
