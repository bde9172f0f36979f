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

use bytes::Bytes;
use chrono::{DateTime, Utc};
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Connection, Pool, Runtime};
use offndat_application::ports::RedirectTarget;
use offndat_domain::StoredState;
use url::Url;
use uuid::Uuid;

/// L2 settings.
#[derive(Debug, Clone)]
pub struct L2Settings {
    pub ttl: Duration,
    /// How long a phrase known to name no link is remembered; zero: not at all.
    pub negative_ttl: Duration,
    pub key_prefix: String,
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
    Garbage,
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
}

impl L2 {
    /// Prepares the client; nothing connects until first use.
    pub fn new(url: &Url, settings: L2Settings) -> Result<Self, String> {
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
        Ok(Self {
            pool,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            breaker: Breaker::new(settings.cooldown, settings.unanswered_to_open),
            settings,
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
            Some(Some(value)) => match decode(&value) {
                Some(Some(target)) => L2Lookup::Hit(target),
                Some(None) => L2Lookup::Absent,
                None => L2Lookup::Garbage,
            },
            Some(None) => L2Lookup::Miss,
            None => L2Lookup::Unavailable,
        }
    }

    /// Stores `target` under `phrase` with the TTL; failures only open the breaker.
    pub async fn set(&self, phrase: &str, target: &RedirectTarget) {
        if self.breaker.is_open() {
            return;
        }
        let (key, value, ttl) = (self.key(phrase), encode(target), self.settings.ttl.as_secs().max(1));
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
        let key = self.key(phrase);
        self.bounded(|mut conn| async move {
            let () = conn.pset_ex(key, ABSENT, ttl_ms).await?;
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
        if self.open.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; L2 back in use");
        }
    }
}

/// The value of a phrase known to name no link (in the version-2 namespace, so a
/// release that reads version 1 only takes it for garbage and reloads).
const ABSENT: &[u8] = b"2:-";

/// `2:<link id>:<flags>:<expires at, Unix ms, or ->:<target>`, flags being `-` or
/// any of `D` (deleted), `X` (disabled), `L` (visit limit reached). Versioned so
/// a format is never misread: version 1 values (`1:<id>:<target>`, written by
/// releases that knew no link states) are treated as garbage, so a disabled link
/// is never served from an old replica's entry; they are reloaded and replaced.
fn encode(target: &RedirectTarget) -> Vec<u8> {
    let state = &target.state;
    let mut flags = String::new();
    for (set, flag) in [(state.deleted, 'D'), (state.disabled, 'X'), (state.limit_reached, 'L')] {
        if set {
            flags.push(flag);
        }
    }
    if flags.is_empty() {
        flags.push('-');
    }
    let expires = state.expires_at.map_or_else(|| "-".to_owned(), |at| at.timestamp_millis().to_string());
    let mut value = format!("2:{}:{flags}:{expires}:", target.link_id).into_bytes();
    value.extend_from_slice(&target.location);
    value
}

/// `Some(Some(_))` a link, `Some(None)` a phrase known to name none, `None` a
/// value that is not ours.
fn decode(value: &[u8]) -> Option<Option<RedirectTarget>> {
    if value == ABSENT {
        return Some(None);
    }
    decode_target(value).map(Some)
}

fn decode_target(value: &[u8]) -> Option<RedirectTarget> {
    let rest = value.strip_prefix(b"2:")?;
    let id = rest.get(..36)?;
    if rest.get(36) != Some(&b':') {
        return None;
    }
    let mut fields = rest.get(37..)?.splitn(3, |b| *b == b':');
    let (flags, expires, location) = (fields.next()?, fields.next()?, fields.next()?);
    let mut state = StoredState::default();
    if flags != b"-" {
        for flag in flags {
            match flag {
                b'D' => state.deleted = true,
                b'X' => state.disabled = true,
                b'L' => state.limit_reached = true,
                _ => return None,
            }
        }
    }
    if expires != b"-" {
        let millis: i64 = std::str::from_utf8(expires).ok()?.parse().ok()?;
        state.expires_at = Some(DateTime::<Utc>::from_timestamp_millis(millis)?);
    }
    // Only a deleted link has no target; a target is only what can stand in a
    // Location header: visible ASCII.
    if location.is_empty() != state.deleted || !location.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    let link_id = Uuid::try_parse_ascii(id).ok()?;
    Some(RedirectTarget { link_id, location: Bytes::copy_from_slice(location), state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_refused() {
        let target = RedirectTarget {
            link_id: Uuid::now_v7(),
            location: Bytes::from_static(b"https://example.com/a?b=c"),
            state: StoredState::default(),
        };
        assert_eq!(decode(&encode(&target)), Some(Some(target.clone())));
        assert_eq!(decode(ABSENT), Some(None));
        assert_eq!(decode(b"2:-x"), None);
        let expires_at = DateTime::<Utc>::from_timestamp_millis(1_795_000_000_123);
        let stated = RedirectTarget {
            state: StoredState { deleted: false, disabled: true, limit_reached: true, expires_at },
            ..target.clone()
        };
        assert_eq!(decode(&encode(&stated)), Some(Some(stated.clone())));
        let deleted = RedirectTarget::deleted(Uuid::now_v7());
        assert_eq!(decode(&encode(&deleted)), Some(Some(deleted)));
        let old = format!("1:{}:https://example.com/", Uuid::now_v7());
        assert_eq!(decode(old.as_bytes()), None, "version 1 knew no states: reloaded");
        for garbage in [
            &b""[..],
            b"garbage",
            b"2:whatever",
            b"2:0195f6a6-7b1e-7000-8000-000000000001:Q:-:https://x",
            b"2:0195f6a6-7b1e-7000-8000-000000000001:-:soon:https://x",
            b"2:0195f6a6-7b1e-7000-8000-000000000001:-:-:",
            b"2:not-a-uuid-at-all-not-a-uuid-at-al:-:-:https://x",
            b"2:",
            b"1:-",
        ] {
            assert_eq!(decode(garbage), None, "{:?}", String::from_utf8_lossy(garbage));
        }
        let mut spaced = encode(&target);
        spaced.extend_from_slice(b" \r\nSet-Cookie: x");
        assert_eq!(decode(&spaced), None, "header injection from a poisoned cache is refused");
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
