//! L2: Redis, shared by every replica. Slow or failing Redis never stalls a
//! redirect: every call is bounded by a short timeout and a failure counts as a
//! miss. A circuit breaker skips Redis for a cool-down once it is failing: at
//! once on a connection error, or when commands have timed out with no answer
//! in between for a while. Late answers under CPU load are not an outage (with
//! many requests in flight they time out together): opening the breaker for them
//! would send every L1 miss to PostgreSQL for the whole cool-down, the most
//! expensive way to serve them on a busy machine.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Connection, Pool, Runtime};
use offndat_application::ports::RedirectTarget;
use url::Url;

use super::l2_value::{Rejection, decode, encode, encode_absent};
use crate::deployment::Deployment;

/// L2 settings.
#[derive(Debug, Clone)]
pub struct L2Settings {
    pub ttl: Duration,
    /// How long a phrase known to name no link is remembered; zero: not at all.
    pub negative_ttl: Duration,
    /// Prefix of every key: the configured one, or the deployment's
    /// ([`crate::deployment::redis_key_prefix`]).
    pub key_prefix: String,
    /// Whose values these are: each value carries its MAC, and a value without
    /// this deployment's is never served.
    pub deployment: Deployment,
    pub timeout: Duration,
    pub cooldown: Duration,
    /// How long commands may time out with no answer in between before the
    /// breaker opens; zero: at the first timeout.
    pub unanswered_to_open: Duration,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L2Lookup {
    Hit(RedirectTarget),
    /// The phrase was looked up in PostgreSQL lately and names no link.
    Absent,
    Miss,
    /// A value that is not ours or is damaged: treated as a miss and overwritten.
    Garbage(Rejection),
    /// Redis failed, timed out, or the breaker is open.
    Unavailable,
}

/// The Redis cache.
pub struct L2 {
    pool: Pool,
    /// One multiplexed connection carries every command. deadpool creates it
    /// (bounded by the timeout); it is not checked out per command, because
    /// deadpool-redis pings on every checkout, which would double round trips.
    connection: Mutex<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
    settings: L2Settings,
    breaker: Breaker,
    /// When a foreign value was last logged (ms since `breaker.epoch`, 0: never).
    foreign_logged_ms: AtomicU64,
}

impl L2 {
    /// Prepares the client; nothing connects until first use. `redis://` or
    /// `rediss://` (TLS, verified against the system's roots or
    /// `SSL_CERT_FILE`); a password in the URL is sent with `AUTH`.
    pub fn new(url: &Url, settings: L2Settings) -> Result<Self, String> {
        match url.scheme() {
            "redis" => {}
            "rediss" => {
                if url.fragment().is_some() {
                    return Err("OFFNDAT_REDIS_URL: no `#` fragment: certificates are always verified".to_owned());
                }
                // ring, the one provider built in; `Err` only if one is installed already.
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            other => return Err(format!("OFFNDAT_REDIS_URL: the scheme must be redis or rediss, not {other}")),
        }
        let pool = deadpool_redis::Config::from_url(url.as_str())
            .builder()
            .map_err(|e| format!("OFFNDAT_REDIS_URL: {e}"))?
            .max_size(2)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("OFFNDAT_REDIS_URL: {e}"))?;
        metrics::describe_counter!("offndat_cache_l2_errors_total", "Redis commands that failed or timed out.");
        metrics::counter!("offndat_cache_l2_errors_total").absolute(0);
        metrics::describe_counter!(
            "offndat_cache_l2_rejected_total",
            "Values read from Redis and not used (treated as misses and overwritten), by reason."
        );
        for reason in Rejection::ALL {
            metrics::counter!("offndat_cache_l2_rejected_total", "reason" => reason.label()).absolute(0);
        }
        Ok(Self {
            pool,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            breaker: Breaker::new(settings.cooldown, settings.unanswered_to_open),
            settings,
            foreign_logged_ms: AtomicU64::new(0),
        })
    }

    fn key(&self, phrase: &str) -> String {
        format!("{}link:{phrase}", self.settings.key_prefix)
    }

    /// Looks `phrase` up.
    pub async fn get(&self, phrase: &str) -> L2Lookup {
        if self.breaker.is_open() {
            return L2Lookup::Unavailable;
        }
        let key = self.key(phrase);
        let result = self
            .bounded(|mut conn| async move {
                let value: Option<Vec<u8>> = conn.get(key).await?;
                Ok(value)
            })
            .await;
        match result {
            Some(Some(value)) => match decode(&self.settings.deployment, phrase, &value) {
                Ok(Some(target)) => L2Lookup::Hit(target),
                Ok(None) => L2Lookup::Absent,
                Err(rejection) => {
                    self.rejected(rejection);
                    L2Lookup::Garbage(rejection)
                }
            },
            Some(None) => L2Lookup::Miss,
            None => L2Lookup::Unavailable,
        }
    }

    /// Counts a refused value; a foreign one is also logged, at most once a minute.
    fn rejected(&self, rejection: Rejection) {
        metrics::counter!("offndat_cache_l2_rejected_total", "reason" => rejection.label()).increment(1);
        if rejection == Rejection::Format {
            return;
        }
        let now = self.breaker.now_ms().max(1);
        let last = self.foreign_logged_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 60_000)
            && self.foreign_logged_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                redis.key_prefix = %self.settings.key_prefix,
                deployment.id = self.settings.deployment.id(),
                reason = rejection.label(),
                "Redis holds values this deployment did not write under its key prefix; they are ignored and \
                 overwritten. Another deployment may share the prefix (leave OFFNDAT_REDIS_KEY_PREFIX unset, \
                 or set it apart) or something else writes to Redis"
            );
        }
    }

    /// Stores `target` under `phrase` with the TTL; failures only open the breaker.
    pub async fn set(&self, phrase: &str, target: &RedirectTarget) {
        if self.breaker.is_open() {
            return;
        }
        let value = encode(&self.settings.deployment, phrase, target);
        let (key, ttl) = (self.key(phrase), self.settings.ttl.as_secs().max(1));
        self.bounded(|mut conn| async move {
            let () = conn.set_ex(key, value, ttl).await?;
            Ok(())
        })
        .await;
    }

    /// Remembers that `phrase` names no link, for the negative TTL: a flood of
    /// unknown phrases spread over many replicas then reaches PostgreSQL once per
    /// phrase and TTL, not once per replica.
    pub async fn set_absent(&self, phrase: &str) {
        if self.breaker.is_open() || self.settings.negative_ttl.is_zero() {
            return;
        }
        let ttl_ms = u64::try_from(self.settings.negative_ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (key, value) = (self.key(phrase), encode_absent(&self.settings.deployment, phrase));
        self.bounded(|mut conn| async move {
            let () = conn.pset_ex(key, value, ttl_ms).await?;
            Ok(())
        })
        .await;
    }

    /// Deletes `phrase` (its link changed); failures only open the breaker, and
    /// the TTL bounds what a failed delete leaves behind.
    pub async fn delete(&self, phrase: &str) {
        let key = self.key(phrase);
        // Tried even with the breaker open: a stale target in Redis outlives the
        // breaker's cool-down, a wasted attempt does not.
        self.bounded(|mut conn| async move {
            let _: u64 = conn.del(key).await?;
            Ok(())
        })
        .await;
    }

    /// Whether the breaker is open: lookups skip Redis until the cool-down ends.
    pub fn skipping(&self) -> bool {
        self.breaker.is_open()
    }

    /// Round-trip time of a PING, for health checks (ignores the breaker).
    pub async fn ping(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let conn = tokio::time::timeout(self.settings.timeout, self.connection())
            .await
            .map_err(|_| format!("no connection within {:?}", self.settings.timeout))??;
        let mut conn = conn;
        let pong: Result<String, _> =
            tokio::time::timeout(self.settings.timeout, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| format!("no PONG within {:?}", self.settings.timeout))?;
        pong.map_err(|e| e.to_string())?;
        self.breaker.close();
        Ok(started.elapsed())
    }

    /// Runs `command` on the shared connection within the timeout. `None` on any
    /// failure, after which the connection is dropped and the breaker opened.
    async fn bounded<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.connection().await.map_err(Failure::Connect)?;
            command(conn).await.map_err(Failure::Command)
        };
        match tokio::time::timeout(self.settings.timeout, attempt).await {
            Ok(Ok(value)) => {
                self.breaker.close();
                Some(value)
            }
            Ok(Err(Failure::Connect(error))) => {
                self.fail(&error);
                None
            }
            // The client's own response timeout: a late answer like ours below.
            Ok(Err(Failure::Command(error))) if !error.is_timeout() => {
                self.fail(&error.to_string());
                None
            }
            Ok(Err(Failure::Command(_))) | Err(_) => {
                metrics::counter!("offndat_cache_l2_errors_total").increment(1);
                // The multiplexed connection stays: a late answer is read and
                // dropped. Only lasting silence (Redis hung, or the network path
                // gone) drops it and opens the breaker.
                if self.breaker.timed_out() {
                    self.fail_open(&format!(
                        "no answer for {:?} (every command timed out after {:?})",
                        self.settings.unanswered_to_open, self.settings.timeout
                    ));
                }
                None
            }
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        if let Some(conn) = self.connection.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(conn.clone());
        }
        // One caller connects while the others wait for its connection, rather
        // than every request in flight opening its own.
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.connection.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(conn.clone());
        }
        let conn = Connection::take(self.pool.get().await.map_err(|e| e.to_string())?);
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    fn fail(&self, error: &str) {
        metrics::counter!("offndat_cache_l2_errors_total").increment(1);
        self.fail_open(error);
    }

    fn fail_open(&self, error: &str) {
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if self.breaker.open() {
            tracing::warn!(
                error,
                cooldown_ms = self.settings.cooldown.as_millis() as u64,
                "Redis failed; skipping L2 for a while"
            );
        }
    }
}

/// Why a command got no answer.
enum Failure {
    Connect(String),
    Command(redis::RedisError),
}

/// Skips Redis for a cool-down after an error or lasting silence.
struct Breaker {
    epoch: Instant,
    /// Milliseconds since `epoch` until which Redis is skipped.
    open_until_ms: AtomicU64,
    open: AtomicBool,
    cooldown: Duration,
    /// One plus the millisecond of the first timeout since the last answer; 0:
    /// answered since. Not reset when the breaker opens, so after the cool-down
    /// one more timeout re-opens it at once if Redis is still silent.
    unanswered_since_ms: AtomicU64,
    unanswered_to_open_ms: u64,
}

impl Breaker {
    fn new(cooldown: Duration, unanswered_to_open: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            open_until_ms: AtomicU64::new(0),
            open: AtomicBool::new(false),
            cooldown,
            unanswered_since_ms: AtomicU64::new(0),
            unanswered_to_open_ms: u64::try_from(unanswered_to_open.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Notes a timeout; true when Redis has been silent long enough to open.
    fn timed_out(&self) -> bool {
        let now = self.now_ms() + 1;
        let since = match self.unanswered_since_ms.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => now,
            Err(since) => since,
        };
        now - since >= self.unanswered_to_open_ms
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn is_open(&self) -> bool {
        self.now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    /// Opens (or re-opens) the breaker; true if it was closed.
    fn open(&self) -> bool {
        self.open_until_ms.store(self.now_ms() + self.cooldown.as_millis() as u64, Ordering::Relaxed);
        !self.open.swap(true, Ordering::Relaxed)
    }

    fn close(&self) {
        if self.unanswered_since_ms.load(Ordering::Relaxed) != 0 {
            self.unanswered_since_ms.store(0, Ordering::Relaxed);
        }
        // Read before writing: every answer comes here, and a write to a shared
        // cache line per L2 hit is what the breaker being closed should cost nothing.
        if self.open.load(Ordering::Relaxed) && self.open.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; L2 back in use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> L2Settings {
        L2Settings {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::ZERO,
            key_prefix: "p:".to_owned(),
            deployment: Deployment::new(uuid::Uuid::nil(), "db"),
            timeout: Duration::from_millis(50),
            cooldown: Duration::from_secs(1),
            unanswered_to_open: Duration::ZERO,
        }
    }

    #[test]
    fn redis_and_rediss_urls_with_passwords_are_accepted_and_nothing_else() {
        for ok in
            ["redis://127.0.0.1:6379", "redis://:secret@127.0.0.1:6379/2", "rediss://user:secret@redis.example:6380/0"]
        {
            assert!(L2::new(&Url::parse(ok).expect("url"), settings()).is_ok(), "{ok}");
        }
        for (refused, why) in [
            ("rediss://redis.example:6380/#insecure", "certificates are always verified"),
            ("http://127.0.0.1:6379", "must be redis or rediss"),
            ("redis+unix:///tmp/redis.sock", "must be redis or rediss"),
        ] {
            let error = L2::new(&Url::parse(refused).expect("url"), settings()).err().expect(refused);
            assert!(error.contains(why), "{refused}: {error}");
        }
    }

    #[test]
    fn the_breaker_opens_for_the_cooldown() {
        // Long enough that the checks right after opening surely come before it ends.
        let cooldown = Duration::from_millis(300);
        let breaker = Breaker::new(cooldown, Duration::ZERO);
        assert!(!breaker.is_open());
        let opened = Instant::now();
        assert!(breaker.open());
        assert!(!breaker.open(), "already open");
        assert!(breaker.is_open());
        // Polled rather than slept past: it closes, and not before the cooldown.
        let deadline = opened + Duration::from_secs(10);
        while breaker.is_open() {
            assert!(Instant::now() < deadline, "still open long after the cooldown");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Within a millisecond: the breaker counts whole milliseconds.
        assert!(opened.elapsed() + Duration::from_millis(1) >= cooldown, "half-open only after the cooldown");
    }

    #[test]
    fn only_lasting_silence_opens_the_breaker() {
        let patient = Breaker::new(Duration::from_secs(60), Duration::from_secs(3600));
        for _ in 0..100 {
            assert!(!patient.timed_out(), "timeouts close together are late answers, not an outage");
        }
        let strict = Breaker::new(Duration::from_secs(60), Duration::ZERO);
        assert!(strict.timed_out(), "zero: the first timeout opens");
        // Silence is measured from the first timeout since the last answer.
        let mut breaker = Breaker::new(Duration::from_secs(60), Duration::from_secs(10));
        breaker.epoch = Instant::now() - Duration::from_secs(20);
        breaker.unanswered_since_ms.store(1 + 18_000, Ordering::Relaxed);
        assert!(!breaker.timed_out(), "silent for 2 s");
        breaker.unanswered_since_ms.store(1 + 5_000, Ordering::Relaxed);
        assert!(breaker.timed_out(), "silent for 15 s");
        breaker.close();
        assert_eq!(breaker.unanswered_since_ms.load(Ordering::Relaxed), 0, "an answer ends the silence");
    }
}
