//! L1: the in-process cache, bounded by entries and bytes, with a TTL, a
//! time-to-idle, and a short TTL for phrases known not to exist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use offndat_application::ports::RedirectTarget;

/// A cached answer: a target, or `None` for a phrase known not to exist.
pub type Answer = Option<RedirectTarget>;

/// Fixed cost of an entry beyond its key and target: moka's node, its access and
/// write-order links, the frequency sketch, the `Arc`s and the allocator's slack,
/// as measured by RSS growth per cached link in the benchmark.
const ENTRY_OVERHEAD_BYTES: u64 = 320;

/// L1 settings.
#[derive(Debug, Clone, Copy)]
pub struct L1Settings {
    pub max_entries: u64,
    pub max_bytes: u64,
    pub ttl: Duration,
    pub time_to_idle: Duration,
    pub negative_ttl: Duration,
}

/// The in-process cache.
#[derive(Clone)]
pub struct L1 {
    cache: Cache<Arc<str>, Answer>,
}

impl L1 {
    pub fn new(settings: L1Settings) -> Self {
        // One weight bounds both: each entry weighs its bytes, but never less than
        // max_bytes / max_entries, so neither limit can be passed.
        let floor = (settings.max_bytes / settings.max_entries.max(1)).max(1);
        let cache = Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(move |key: &Arc<str>, answer: &Answer| {
                let bytes = key.len() as u64 + answer.as_ref().map_or(0, |t| t.location.len() as u64);
                u32::try_from((bytes + ENTRY_OVERHEAD_BYTES).max(floor)).unwrap_or(u32::MAX)
            })
            .expire_after(L1Expiry { settings })
            .build();
        Self { cache }
    }

    /// The cached answer for `phrase`, without allocating.
    pub fn get(&self, phrase: &str) -> Option<Answer> {
        self.cache.get(phrase)
    }

    pub fn insert(&self, phrase: Arc<str>, answer: Answer) {
        self.cache.insert(phrase, answer);
    }

    pub fn invalidate(&self, phrase: &str) {
        self.cache.invalidate(phrase);
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Entries now (approximate; moka applies writes in batches).
    pub fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

struct L1Expiry {
    settings: L1Settings,
}

impl Expiry<Arc<str>, Answer> for L1Expiry {
    fn expire_after_create(&self, _: &Arc<str>, answer: &Answer, _: Instant) -> Option<Duration> {
        Some(if answer.is_some() { self.settings.ttl } else { self.settings.negative_ttl })
    }

    fn expire_after_update(
        &self,
        key: &Arc<str>,
        answer: &Answer,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, answer, at)
    }

    /// A read extends a link's life by the time-to-idle, never past its TTL; a
    /// negative entry keeps its short TTL however often it is read.
    fn expire_after_read(
        &self,
        _: &Arc<str>,
        answer: &Answer,
        read_at: Instant,
        remaining: Option<Duration>,
        last_modified_at: Instant,
    ) -> Option<Duration> {
        if answer.is_none() {
            return remaining;
        }
        let age = read_at.saturating_duration_since(last_modified_at);
        Some(self.settings.ttl.saturating_sub(age).min(self.settings.time_to_idle))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use uuid::Uuid;

    use super::*;

    fn settings() -> L1Settings {
        L1Settings {
            max_entries: 1_000,
            max_bytes: 1_000_000,
            ttl: Duration::from_secs(60),
            time_to_idle: Duration::from_secs(60),
            negative_ttl: Duration::from_millis(50),
        }
    }

    fn target() -> Answer {
        Some(RedirectTarget {
            link_id: Uuid::nil(),
            location: Bytes::from_static(b"https://example.com/"),
            state: Default::default(),
        })
    }

    #[test]
    fn negative_entries_expire_quickly_positive_ones_stay() {
        // Long enough that the first read surely comes before it ends.
        let l1 = L1::new(L1Settings { negative_ttl: Duration::from_millis(300), ..settings() });
        let inserted = Instant::now();
        l1.insert("gone".into(), None);
        l1.insert("here".into(), target());
        assert_eq!(l1.get("gone"), Some(None));
        // Polled rather than slept past: the reads do not extend a negative
        // entry, so it must go while the positive one (60 s) stays.
        let deadline = inserted + Duration::from_secs(10);
        while l1.get("gone").is_some() {
            assert!(Instant::now() < deadline, "the negative entry outlived its TTL by far");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Half: moka keeps time with a clock of its own.
        assert!(inserted.elapsed() >= Duration::from_millis(150), "not long before its TTL");
        assert_eq!(l1.get("here"), Some(target()));
    }

    #[test]
    fn entries_are_bounded_by_count() {
        let l1 = L1::new(L1Settings { max_entries: 10, ..settings() });
        for i in 0..100 {
            l1.insert(format!("phrase-{i}").into(), target());
        }
        assert!(l1.entry_count() <= 10, "{}", l1.entry_count());
    }

    #[test]
    fn entries_are_bounded_by_bytes() {
        let l1 = L1::new(L1Settings { max_entries: 1_000_000, max_bytes: 2_000, ..settings() });
        let long = Some(RedirectTarget {
            link_id: Uuid::nil(),
            location: Bytes::from(vec![b'a'; 900]),
            state: Default::default(),
        });
        for i in 0..10 {
            l1.insert(format!("phrase-{i}").into(), long.clone());
        }
        assert!(l1.entry_count() <= 2, "{}", l1.entry_count());
    }
}
