//! A Redis key prefix per test, whose keys are deleted when the test ends.

use deadpool_redis::redis::{self, AsyncCommands};

/// The Redis tests use.
pub fn redis_url() -> String {
    std::env::var("OFFNDAT_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A unique key prefix (`test-<uuid>:`); its keys are deleted on `Drop`.
pub struct RedisPrefix {
    pub prefix: String,
}

impl Default for RedisPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisPrefix {
    pub fn new() -> Self {
        Self { prefix: format!("test-{}:", uuid::Uuid::new_v4().simple()) }
    }

    /// A connection to the test Redis.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// The value under `key` (without the prefix).
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.connection().await.get(format!("{}{key}", self.prefix)).await.unwrap()
    }

    /// Sets `key` (without the prefix) to `value`.
    pub async fn set(&self, key: &str, value: &[u8]) {
        let () = self.connection().await.set(format!("{}{key}", self.prefix), value).await.unwrap();
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(redis_url()) else { return };
            let Ok(mut conn) = client.get_connection() else { return };
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn).unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        })
        .join();
    }
}
