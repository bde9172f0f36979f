//! The two-level cache against a real PostgreSQL and Redis, with Redis faults
//! injected through a TCP proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use offndat_application::ports::{LinkResolver, LinkStore, StoreError};
use offndat_domain::{Language, Link, LinkStats, Phrase, TargetUrl, Theme};
use offndat_infrastructure::cache::{L1, L1Settings, L2, L2Lookup, L2Settings, Rejection, TwoLevelCache};
use offndat_infrastructure::deployment::Deployment;
use offndat_infrastructure::postgres::PgLinkStore;
use offndat_test_support::{RedisPrefix, TcpProxy, TestDatabase, eventually};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;
use url::Url;
use uuid::Uuid;

/// The real store, counting the lookups that reach PostgreSQL, each held at a
/// gate while the test keeps it shut.
struct CountingStore {
    inner: PgLinkStore,
    finds: AtomicUsize,
    /// Open (true) unless a test shuts it to hold lookups in flight.
    gate: watch::Sender<bool>,
}

#[async_trait]
impl LinkStore for CountingStore {
    async fn create(&self, link: &Link) -> Result<(), StoreError> {
        self.inner.create(link).await
    }
    async fn find_by_phrase(&self, phrase: &Phrase) -> Result<Option<Link>, StoreError> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        self.inner.find_by_phrase(phrase).await
    }
    async fn stats_by_phrase(&self, phrase: &Phrase, recent: u32) -> Result<Option<LinkStats>, StoreError> {
        self.inner.stats_by_phrase(phrase, recent).await
    }
}

struct Fixture {
    _db: TestDatabase,
    store: Arc<CountingStore>,
    redis: RedisPrefix,
    /// This database's identity, as the API reads it.
    deployment: Deployment,
}

impl Fixture {
    async fn new() -> Self {
        let db = TestDatabase::migrated().await;
        let pool = PgPoolOptions::new().max_connections(8).connect(&db.url).await.expect("pool");
        let deployment = Deployment::load(&pool).await.expect("the migrations made an identity");
        let store = Arc::new(CountingStore {
            inner: PgLinkStore::new(pool),
            finds: AtomicUsize::new(0),
            gate: watch::Sender::new(true),
        });
        Self { _db: db, store, redis: RedisPrefix::new(), deployment }
    }

    async fn link(&self, phrase: &str, target: &str) -> Uuid {
        let link = Link {
            id: Uuid::now_v7(),
            phrase: Phrase::parse(phrase).expect("phrase"),
            target_url: TargetUrl::from_stored(target).expect("url"),
            language: Language::English,
            theme: Theme::None,
            created_at: Utc::now(),
            owner_key_id: None,
            expires_at: None,
            max_visits: None,
            disabled: false,
            disabled_reason: None,
            limit_reached: false,
        };
        self.store.create(&link).await.expect("create");
        link.id
    }

    fn finds(&self) -> usize {
        self.store.finds.load(Ordering::SeqCst)
    }

    fn l1(&self) -> L1 {
        L1::new(L1Settings {
            max_entries: 10_000,
            max_bytes: 10_000_000,
            ttl: Duration::from_secs(60),
            time_to_idle: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(30),
        })
    }

    fn l2(&self, url: &str) -> Arc<L2> {
        self.l2_with_cooldown(url, Duration::from_millis(300))
    }

    fn l2_with_cooldown(&self, url: &str, cooldown: Duration) -> Arc<L2> {
        self.l2_of(url, cooldown, self.deployment.clone())
    }

    fn l2_of(&self, url: &str, cooldown: Duration, deployment: Deployment) -> Arc<L2> {
        let settings = L2Settings {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(30),
            key_prefix: self.redis.prefix.clone(),
            deployment,
            timeout: Duration::from_millis(100),
            cooldown,
            unanswered_to_open: Duration::from_millis(250),
        };
        Arc::new(L2::new(&Url::parse(url).expect("url"), settings).expect("l2"))
    }

    fn cache(&self, l1: bool, l2_url: Option<&str>) -> Arc<TwoLevelCache> {
        Arc::new(TwoLevelCache::new(l1.then(|| self.l1()), l2_url.map(|u| self.l2(u)), self.store.clone()))
    }
}

const REDIS: &str = "redis://127.0.0.1:6379";

/// A stored value's body: what follows `3:<32 hex digits of MAC>:`.
fn body(value: &[u8]) -> &[u8] {
    let rest = value.strip_prefix(b"3:").expect("version 3");
    assert!(rest[..32].iter().all(u8::is_ascii_hexdigit) && rest[32] == b':', "{value:?}");
    &rest[33..]
}

/// Resolves `phrases` at once, one task each, while lookups that reach the store
/// are held until every task has joined: until then none can finish, so a miss
/// of a phrase another task is loading always finds that load in flight. Returns
/// the answers in order.
async fn stampede(fixture: &Fixture, cache: &Arc<TwoLevelCache>, phrases: Vec<String>) -> Vec<Option<String>> {
    fixture.store.gate.send_replace(false);
    let arrived = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = phrases
        .into_iter()
        .map(|phrase| {
            let (cache, arrived) = (cache.clone(), arrived.clone());
            tokio::spawn(async move {
                // Counted in the same poll in which the lookup joins its flight
                // (nothing before `SingleFlight::run` awaits), and this runtime
                // has one thread: when the test sees every task arrived, every
                // one has joined.
                arrived.fetch_add(1, Ordering::SeqCst);
                resolve(&cache, &phrase).await
            })
        })
        .collect();
    let all = tasks.len();
    eventually(Duration::from_secs(10), "every lookup started", || async {
        match arrived.load(Ordering::SeqCst) {
            n if n == all => Ok(()),
            n => Err(format!("{n} of {all}")),
        }
    })
    .await;
    fixture.store.gate.send_replace(true);
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

async fn resolve(cache: &TwoLevelCache, phrase: &str) -> Option<String> {
    let found = match cache.cached(phrase) {
        Some(hit) => hit,
        None => cache.resolve(phrase).await.expect("resolve"),
    };
    found.map(|t| String::from_utf8(t.location.to_vec()).expect("ascii"))
}

#[tokio::test]
async fn a_stampede_of_misses_makes_one_database_query() {
    let fixture = Fixture::new().await;
    fixture.link("stampede-of-walruses", "https://example.com/s").await;
    for (l1, l2) in [(true, Some(REDIS)), (false, None)] {
        let before = fixture.finds();
        let cache = fixture.cache(l1, l2);
        let answers = stampede(&fixture, &cache, vec!["stampede-of-walruses".to_owned(); 200]).await;
        for answer in answers {
            assert_eq!(answer.as_deref(), Some("https://example.com/s"));
        }
        // With L2 on, a later pass may find it in Redis: still no second query.
        assert_eq!(fixture.finds() - before, 1, "l1={l1} l2={l2:?}");
        if l2.is_none() {
            break;
        }
    }
}

#[tokio::test]
async fn a_flood_of_unknown_phrases_reaches_the_database_once_per_phrase() {
    let fixture = Fixture::new().await;
    let cache = fixture.cache(true, Some(REDIS));
    for _round in 0..5 {
        let phrases = (0..200).map(|i| format!("bogus-phrase-{}", i % 10)).collect();
        assert_eq!(stampede(&fixture, &cache, phrases).await, vec![None; 200]);
    }
    assert_eq!(fixture.finds(), 10, "1,000 lookups of 10 unknown phrases");
}

#[tokio::test]
async fn a_created_link_replaces_a_remembered_unknown_after_invalidation() {
    let fixture = Fixture::new().await;
    let cache = fixture.cache(true, None);
    assert_eq!(resolve(&cache, "not-yet-there").await, None);
    fixture.link("not-yet-there", "https://example.com/now").await;
    assert_eq!(resolve(&cache, "not-yet-there").await, None, "remembered as unknown");
    cache.invalidate("not-yet-there");
    assert_eq!(resolve(&cache, "not-yet-there").await.as_deref(), Some("https://example.com/now"));
}

#[tokio::test]
async fn unknown_phrases_are_remembered_in_redis_until_a_link_is_created_under_them() {
    let fixture = Fixture::new().await;
    // Two processes without L1: only Redis can spare the second a query.
    let (first, second) = (fixture.cache(false, Some(REDIS)), fixture.cache(false, Some(REDIS)));
    assert_eq!(resolve(&first, "never-made-walrus").await, None);
    assert_eq!(fixture.finds(), 1);
    let stored = eventually(Duration::from_secs(5), "the unknown phrase written to Redis", || async {
        fixture.redis.get("link:never-made-walrus").await.ok_or_else(|| "absent".to_owned())
    })
    .await;
    assert_eq!(body(&stored), b"-");
    assert_eq!(resolve(&second, "never-made-walrus").await, None);
    assert_eq!(fixture.finds(), 1, "the other process was answered by Redis");

    // Creating the link forgets the remembered unknown in Redis too.
    fixture.link("never-made-walrus", "https://example.com/made").await;
    // As GenerateLink does: in this process and in Redis.
    second.evict("never-made-walrus").await;
    eventually(Duration::from_secs(5), "the remembered unknown deleted", || async {
        match fixture.redis.get("link:never-made-walrus").await {
            None => Ok(()),
            Some(value) => Err(String::from_utf8_lossy(&value).into_owned()),
        }
    })
    .await;
    assert_eq!(resolve(&first, "never-made-walrus").await.as_deref(), Some("https://example.com/made"));
}

#[tokio::test]
async fn misses_fill_redis_and_redis_answers_other_processes() {
    let fixture = Fixture::new().await;
    let id = fixture.link("shared-grumpy-walrus", "https://example.com/shared").await;
    let first = fixture.cache(true, Some(REDIS));
    assert_eq!(resolve(&first, "shared-grumpy-walrus").await.as_deref(), Some("https://example.com/shared"));
    let stored = eventually(Duration::from_secs(5), "the link written to Redis", || async {
        fixture.redis.get("link:shared-grumpy-walrus").await.ok_or_else(|| "absent".to_owned())
    })
    .await;
    assert_eq!(body(&stored), format!("{id}:-:-:https://example.com/shared").as_bytes());

    // Another process (no L1 of its own yet) is answered by Redis, not PostgreSQL.
    let before = fixture.finds();
    let second = fixture.cache(false, Some(REDIS));
    assert_eq!(resolve(&second, "shared-grumpy-walrus").await.as_deref(), Some("https://example.com/shared"));
    assert_eq!(fixture.finds(), before);
}

#[tokio::test]
async fn garbage_in_redis_is_a_miss_and_is_overwritten() {
    let fixture = Fixture::new().await;
    let id = fixture.link("garbled-grumpy-walrus", "https://example.com/g").await;
    fixture.redis.set("link:garbled-grumpy-walrus", b"\x00\xffnot ours").await;
    let cache = fixture.cache(false, Some(REDIS));
    assert_eq!(resolve(&cache, "garbled-grumpy-walrus").await.as_deref(), Some("https://example.com/g"));
    assert_eq!(fixture.finds(), 1, "answered from PostgreSQL");
    let expected = format!("{id}:-:-:https://example.com/g").into_bytes();
    eventually(Duration::from_secs(5), "the garbage overwritten", || async {
        match fixture.redis.get("link:garbled-grumpy-walrus").await {
            Some(value) if value.starts_with(b"3:") && body(&value) == expected => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn another_deployments_value_under_our_key_is_never_served_and_is_overwritten() {
    let fixture = Fixture::new().await;
    let id = fixture.link("shared-prefix-walrus", "https://example.com/ours").await;
    // Another deployment (its own database) configured with the same key prefix
    // caches its own link under the same phrase.
    let other_db = TestDatabase::migrated().await;
    let other_pool = PgPoolOptions::new().max_connections(1).connect(&other_db.url).await.expect("pool");
    let theirs = Deployment::load(&other_pool).await.expect("identity");
    assert_ne!(theirs.id(), fixture.deployment.id());
    let their_l2 = fixture.l2_of(REDIS, Duration::from_millis(300), theirs);
    let their_link = offndat_application::ports::RedirectTarget {
        link_id: Uuid::now_v7(),
        location: bytes::Bytes::from_static(b"https://example.com/theirs"),
        state: offndat_domain::StoredState::default(),
    };
    their_l2.set("shared-prefix-walrus", &their_link).await;
    assert_eq!(their_l2.get("shared-prefix-walrus").await, L2Lookup::Hit(their_link.clone()));
    let our_l2 = fixture.l2(REDIS);
    assert_eq!(our_l2.get("shared-prefix-walrus").await, L2Lookup::Garbage(Rejection::Foreign));
    their_l2.set_absent("unknown-to-them-walrus").await;
    assert_eq!(our_l2.get("unknown-to-them-walrus").await, L2Lookup::Garbage(Rejection::Foreign), "nor their 404");

    // Through the cache: answered from our PostgreSQL, and our value replaces theirs.
    let cache = fixture.cache(false, Some(REDIS));
    assert_eq!(resolve(&cache, "shared-prefix-walrus").await.as_deref(), Some("https://example.com/ours"));
    assert_eq!(fixture.finds(), 1);
    eventually(Duration::from_secs(5), "our value written over theirs", || async {
        match our_l2.get("shared-prefix-walrus").await {
            L2Lookup::Hit(target) if target.link_id == id => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(their_l2.get("shared-prefix-walrus").await, L2Lookup::Garbage(Rejection::Foreign), "and back");
}

#[tokio::test]
async fn an_older_releases_value_is_reloaded_and_replaced() {
    let fixture = Fixture::new().await;
    let id = fixture.link("older-grumpy-walrus", "https://example.com/now").await;
    // Version 2 (no MAC), naming a target the link never had.
    fixture.redis.set("link:older-grumpy-walrus", format!("2:{id}:-:-:https://example.com/old").as_bytes()).await;
    let l2 = fixture.l2(REDIS);
    assert_eq!(l2.get("older-grumpy-walrus").await, L2Lookup::Garbage(Rejection::Format));
    let cache = fixture.cache(false, Some(REDIS));
    assert_eq!(resolve(&cache, "older-grumpy-walrus").await.as_deref(), Some("https://example.com/now"));
    eventually(Duration::from_secs(5), "replaced by a version-3 value", || async {
        match l2.get("older-grumpy-walrus").await {
            L2Lookup::Hit(target) if &target.location[..] == b"https://example.com/now" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn redis_down_at_start_and_mid_traffic_never_fails_a_lookup() {
    let fixture = Fixture::new().await;
    fixture.link("resilient-grumpy-walrus", "https://example.com/r").await;
    let proxy = TcpProxy::to_port(6379).await;
    proxy.disable();
    let url = format!("redis://{}", proxy.address());
    let cache = fixture.cache(false, Some(&url));

    // Down at start: answered by PostgreSQL.
    for _ in 0..20 {
        assert_eq!(resolve(&cache, "resilient-grumpy-walrus").await.as_deref(), Some("https://example.com/r"));
    }
    // Back: after the cool-down the cache fills Redis and reads from it.
    proxy.enable();
    eventually(Duration::from_secs(10), "Redis used again", || async {
        resolve(&cache, "resilient-grumpy-walrus").await;
        fixture.redis.get("link:resilient-grumpy-walrus").await.map(drop).ok_or_else(|| "not in Redis".to_owned())
    })
    .await;
    let before = fixture.finds();
    assert_eq!(resolve(&cache, "resilient-grumpy-walrus").await.as_deref(), Some("https://example.com/r"));
    assert_eq!(fixture.finds(), before, "answered by Redis");

    // Down mid-traffic: every lookup still answers.
    let traffic = {
        let cache = cache.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                assert_eq!(resolve(&cache, "resilient-grumpy-walrus").await.as_deref(), Some("https://example.com/r"));
            }
        })
    };
    proxy.disable();
    traffic.await.expect("traffic");
    assert!(fixture.finds() > before, "fell back to PostgreSQL");
}

#[tokio::test]
async fn late_redis_answers_are_misses_and_only_lasting_silence_skips_redis() {
    let fixture = Fixture::new().await;
    let proxy = TcpProxy::to_port(6379).await;
    // Timeout 100 ms; the breaker opens after 250 ms without an answer.
    let l2 = fixture.l2_with_cooldown(&format!("redis://{}", proxy.address()), Duration::from_secs(600));
    let phrase = "tardy-grumpy-walrus";
    assert_eq!(l2.get(phrase).await, L2Lookup::Miss);

    proxy.stall();
    assert_eq!(l2.get(phrase).await, L2Lookup::Unavailable, "no answer within the timeout");
    assert!(!l2.skipping(), "one late answer (a busy machine) is only a miss");
    proxy.resume();
    assert_eq!(l2.get(phrase).await, L2Lookup::Miss, "the connection carries on");
    assert!(!l2.skipping());

    proxy.stall();
    assert_eq!(l2.get(phrase).await, L2Lookup::Unavailable);
    assert!(!l2.skipping(), "silent for less than 250 ms");
    let mut timeouts = 1;
    while !l2.skipping() {
        assert_eq!(l2.get(phrase).await, L2Lookup::Unavailable);
        timeouts += 1;
        assert!(timeouts <= 20, "the breaker never opened");
    }
    assert!(timeouts >= 3, "opened after {timeouts} timeouts of 100 ms, not 250 ms of silence");
}

#[tokio::test]
async fn a_redirect_lookup_past_its_statement_timeout_fails_as_unavailable() {
    use offndat_infrastructure::config::DatabaseConfig;
    use sqlx::Connection;

    let db = TestDatabase::migrated().await;
    let config = DatabaseConfig {
        database_url: Url::parse(&db.url).expect("url"),
        database_max_connections: 2,
        database_acquire_timeout: Duration::from_secs(5),
        database_startup_timeout: Duration::from_secs(5),
    };
    let pool = offndat_infrastructure::postgres::connect(&config).await.expect("pool");
    let lookups =
        offndat_infrastructure::postgres::lookup_pool(&config, 2, Duration::from_millis(200)).expect("lookups");
    let store = PgLinkStore::new(pool).with_lookup_pool(lookups);
    let phrase = Phrase::parse("locked-out-walrus").expect("phrase");
    assert!(store.find_by_phrase(&phrase).await.expect("lookup").is_none());

    // A migration-like lock on the table: the lookup waits for it until
    // PostgreSQL cancels the statement.
    let mut locker = db.connect().await;
    let mut lock = locker.begin().await.expect("begin");
    sqlx::raw_sql("LOCK TABLE links IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.expect("lock");
    match store.find_by_phrase(&phrase).await {
        Err(StoreError::Unavailable(error)) => {
            assert!(error.to_string().contains("canceling statement due to statement timeout"), "{error}")
        }
        other => panic!("expected the statement timeout as Unavailable, got {other:?}"),
    }
    lock.rollback().await.expect("unlock");
    assert!(store.find_by_phrase(&phrase).await.expect("lookup after the lock").is_none());
}
