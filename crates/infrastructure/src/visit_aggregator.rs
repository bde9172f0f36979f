//! The visit aggregator: redirects count their visits in memory, a flusher folds
//! each window into a `VisitTally` and writes it as `link.visited` events.
//!
//! Per redirect the work is O(1) under one of several locks: the link's counter
//! for (hour, user agent, referrer host) goes up, and the visit is offered to the
//! link's newest visits. Nothing is allocated unless the key is new in this window
//! or the visit is one of the link's newest. User agents are classified when a
//! window is folded, off the redirect path. Memory grows with the distinct links
//! (and their distinct user agents and referrers) of one window, not with the
//! visit rate; no count is ever dropped: a window that cannot be written is
//! merged into the next. Every header is cut to what is stored of it before it
//! is kept, and what may pile up while PostgreSQL is away is bounded: distinct
//! referrer hosts per link and hour, and the bytes of the full log's raw visits.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hashbrown::Equivalent;
use offndat_application::VisitTally;
use offndat_application::events::RecentVisit;
use offndat_application::ports::{PendingVisit, UserAgentClassifier, VisitSink};
use offndat_application::visit_tally::RECENT_VISITS;
use offndat_domain::audience::referrer_host;
use offndat_domain::visit::{MAX_REFERRER_CHARS, MAX_USER_AGENT_CHARS, stored_span, stored_text};
use offndat_domain::{DeviceClass, Dimension, UserAgentClass};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::postgres::{FlushBatch, PgVisitStore, is_unavailable};

/// Independent locks; a redirect takes one, chosen by its link.
const SHARDS: usize = 16;
/// Distinct (hour, user agent, referrer host) keys kept per link and window;
/// beyond it visits are still counted exactly, under an "other" key.
const MAX_KEYS_PER_LINK: usize = 128;
/// Distinct referrer hosts kept per link and hour until they are written: while
/// PostgreSQL is away windows merge, and a flood of made-up hosts must not grow
/// memory for as long as the outage lasts. Past it, visits are still counted
/// exactly, under no referrer host (`""`), as past `MAX_KEYS_PER_LINK`.
const MAX_HOSTS_PER_LINK_HOUR: usize = 1_000;
/// What a raw visit of the full log is reckoned to cost besides its text (the
/// struct, its IP, allocation headers, the vector's slot).
const RAW_VISIT_OVERHEAD: usize = 160;

/// Whether every raw visit is kept, or only each link's newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VisitLog {
    /// Only the newest visits of each link (`recentVisits`).
    Recent,
    /// Every visit, in the `visits` table, pruned after the retention.
    Full,
}

/// Timing and bounds of the aggregator.
#[derive(Debug, Clone, Copy)]
pub struct VisitAggregatorConfig {
    pub flush_interval: Duration,
    /// Distinct keys in memory at which a flush starts early.
    pub flush_at_keys: usize,
    /// How long the final flush keeps retrying an unreachable database at shutdown.
    pub drain_timeout: Duration,
    pub log: VisitLog,
    /// Most bytes of raw visits held for the full log (until written, so while
    /// PostgreSQL is slow or away); beyond it the raw log (never the counts)
    /// loses visits, and says so (`offndat_visit_log_dropped_total`).
    pub max_raw_bytes: usize,
}

/// Counts one (hour, user agent, referrer host) of a link.
#[derive(Debug, PartialEq, Eq)]
struct Key {
    hour: i64,
    /// Shared with the newest visits that sent it: most visits of a link come
    /// from a few user agents, so keeping one costs no copy.
    user_agent: Option<Arc<[u8]>>,
    referrer_host: Option<Box<[u8]>>,
    /// Past `MAX_KEYS_PER_LINK`: counted without user agent or referrer, apart
    /// by whether the agent was a bot's (`Some(bot)`).
    overflow: Option<bool>,
}

/// A `Key` by reference, to look one up without allocating.
#[derive(Clone, Copy)]
struct KeyRef<'a> {
    hour: i64,
    user_agent: Option<&'a [u8]>,
    referrer_host: Option<&'a [u8]>,
    overflow: Option<bool>,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        KeyRef::from(self).hash(state);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hour.hash(state);
        self.user_agent.hash(state);
        self.referrer_host.hash(state);
        self.overflow.hash(state);
    }
}

impl<'a> From<&'a Key> for KeyRef<'a> {
    fn from(key: &'a Key) -> Self {
        Self {
            hour: key.hour,
            user_agent: key.user_agent.as_deref(),
            referrer_host: key.referrer_host.as_deref(),
            overflow: key.overflow,
        }
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == KeyRef::from(key)
    }
}

impl PartialEq for KeyRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hour == other.hour
            && self.user_agent == other.user_agent
            && self.referrer_host == other.referrer_host
            && self.overflow == other.overflow
    }
}

impl KeyRef<'_> {
    fn to_owned_key(self) -> Key {
        Key {
            hour: self.hour,
            user_agent: self.user_agent.map(Arc::from),
            referrer_host: self.referrer_host.map(Box::from),
            overflow: self.overflow,
        }
    }
}

/// A visit kept as one of a link's newest, its text still raw.
#[derive(Debug, Clone)]
struct RawVisit {
    visited_at: DateTime<Utc>,
    ip: Option<IpAddr>,
    user_agent: Option<Arc<[u8]>>,
    referrer: Option<Box<[u8]>>,
}

impl RawVisit {
    /// `visit` with its user agent already cut and shared.
    fn new(visit: &PendingVisit<'_>, user_agent: Option<Arc<[u8]>>) -> Self {
        Self {
            visited_at: visit.visited_at,
            ip: visit.ip,
            user_agent,
            referrer: visit.referrer.map(|b| Box::from(referrer_span(b))),
        }
    }

    /// What it is reckoned to hold in memory (its text as if not shared).
    fn size(&self) -> usize {
        raw_size(self.user_agent.as_deref(), self.referrer.as_deref())
    }
}

fn raw_size(user_agent: Option<&[u8]>, referrer: Option<&[u8]>) -> usize {
    RAW_VISIT_OVERHEAD + user_agent.map_or(0, <[u8]>::len) + referrer.map_or(0, <[u8]>::len)
}

/// What is kept of a user agent: its stored form's bytes (at most 512
/// characters), never the whole header.
fn user_agent_span(bytes: &[u8]) -> &[u8] {
    stored_span(bytes, MAX_USER_AGENT_CHARS)
}

/// What is kept of a referrer: its stored form's bytes (at most 2,048 characters).
fn referrer_span(bytes: &[u8]) -> &[u8] {
    stored_span(bytes, MAX_REFERRER_CHARS)
}

/// One link's visits in the current window.
#[derive(Default)]
struct LinkWindow {
    counts: hashbrown::HashMap<Key, u64>,
    /// Oldest first, at most `RECENT_VISITS`.
    newest: VecDeque<RawVisit>,
}

/// Everything one shard counted since the last flush.
#[derive(Default)]
struct Window {
    links: HashMap<Uuid, LinkWindow>,
    orphans: HashMap<i64, u64>,
    /// Every visit, for the full log only.
    raw: Vec<(Uuid, RawVisit)>,
}

/// The redirect side: counts visits. Cheap to share (`Arc`).
pub struct VisitAggregator {
    shards: Box<[Mutex<Window>]>,
    hasher: hashbrown::DefaultHashBuilder,
    keys: AtomicUsize,
    flush_at_keys: usize,
    full_log: bool,
    /// Bytes of raw visits held for the full log, in windows, folded or in a
    /// batch not yet written (see `RawVisit::size`).
    raw_bytes: AtomicUsize,
    max_raw_bytes: usize,
    wake: Notify,
    /// Only for visits past `MAX_KEYS_PER_LINK`, which keep no user agent.
    classifier: Arc<dyn UserAgentClassifier>,
}

impl VisitAggregator {
    fn shard(&self, link_id: &Uuid) -> &Mutex<Window> {
        let index = (self.hasher.hash_one(link_id) as usize) % SHARDS;
        &self.shards[index]
    }

    /// Takes what every shard counted, leaving them empty.
    fn take(&self) -> Vec<Window> {
        let windows = self.shards.iter().map(|s| std::mem::take(&mut *lock(s))).collect();
        self.keys.store(0, Ordering::Relaxed);
        windows
    }

    /// Takes room for a raw visit of `size` bytes in the full log's budget.
    fn reserve_raw(&self, size: usize) -> bool {
        let before = self.raw_bytes.fetch_add(size, Ordering::Relaxed);
        if before + size > self.max_raw_bytes {
            self.raw_bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back the room of raw visits written (or lost for good).
    fn release_raw(&self, size: usize) {
        self.raw_bytes.fetch_sub(size, Ordering::Relaxed);
    }

    fn count_key(&self) {
        if self.keys.fetch_add(1, Ordering::Relaxed) + 1 == self.flush_at_keys {
            self.wake.notify_one();
        }
    }
}

fn lock(shard: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    // A panic while counting leaves counts that are still valid numbers.
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VisitSink for VisitAggregator {
    fn record(&self, visit: PendingVisit<'_>) {
        let hour = visit.visited_at.timestamp().div_euclid(3600);
        let user_agent = visit.user_agent.map(user_agent_span);
        let host = visit.referrer.and_then(referrer_host);
        let mut shard = lock(self.shard(&visit.link_id));
        let full_log = self.full_log;
        let window = shard.links.entry(visit.link_id).or_default();
        let exact = KeyRef { hour, user_agent, referrer_host: host, overflow: None };
        let mut new_key = false;
        let shared_agent = if let Some((key, count)) = window.counts.get_key_value_mut(&exact) {
            *count += 1;
            key.user_agent.clone()
        } else if window.counts.len() < MAX_KEYS_PER_LINK {
            let key = exact.to_owned_key();
            let agent = key.user_agent.clone();
            window.counts.insert(key, 1);
            new_key = true;
            agent
        } else {
            // Rare (past 128 keys of one link in one window), so the bot check may
            // run here: a flood of made-up agents stays bots, not humans.
            let bot = user_agent.is_some_and(|ua| self.classifier.is_bot(&String::from_utf8_lossy(ua)));
            let other = KeyRef { hour, user_agent: None, referrer_host: None, overflow: Some(bot) };
            match window.counts.get_mut(&other) {
                Some(count) => *count += 1,
                None => {
                    window.counts.insert(other.to_owned_key(), 1);
                    new_key = true;
                }
            }
            None
        };
        // An overflowed visit keeps its own copy, only if it is kept at all.
        let agent = || shared_agent.clone().or_else(|| user_agent.map(Arc::from));
        // Newest first by time, not by arrival: concurrent redirects may arrive
        // out of order. A visit older than every kept one costs nothing.
        let newest = &mut window.newest;
        let full = newest.len() >= RECENT_VISITS;
        if !full || newest.front().is_some_and(|oldest| oldest.visited_at <= visit.visited_at) {
            if full {
                newest.pop_front();
            }
            let at = newest.partition_point(|kept| kept.visited_at <= visit.visited_at);
            newest.insert(at, RawVisit::new(&visit, agent()));
        }
        let mut raw_lost = false;
        if full_log {
            let size = raw_size(user_agent, visit.referrer.map(referrer_span));
            if self.reserve_raw(size) {
                shard.raw.push((visit.link_id, RawVisit::new(&visit, agent())));
            } else {
                raw_lost = true;
            }
        }
        drop(shard);
        if new_key {
            self.count_key();
        }
        if raw_lost {
            metrics::counter!("offndat_visit_log_dropped_total").increment(1);
        }
    }

    fn record_orphan(&self, at: DateTime<Utc>) {
        metrics::counter!("offndat_orphan_visits_total").increment(1);
        let hour = at.timestamp().div_euclid(3600);
        // Any shard will do; spread by time so a flood does not pile on one lock.
        let index = at.timestamp_subsec_nanos() as usize % SHARDS;
        *lock(&self.shards[index]).orphans.entry(hour).or_default() += 1;
    }
}

/// The flushing side.
pub struct VisitFlusher {
    aggregator: Arc<VisitAggregator>,
    store: PgVisitStore,
    classifier: Arc<dyn UserAgentClassifier>,
    config: VisitAggregatorConfig,
}

/// An aggregator and its flusher.
pub fn visit_aggregator(
    store: PgVisitStore,
    classifier: Arc<dyn UserAgentClassifier>,
    config: VisitAggregatorConfig,
) -> (Arc<VisitAggregator>, VisitFlusher) {
    let aggregator = Arc::new(VisitAggregator {
        shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        hasher: hashbrown::DefaultHashBuilder::default(),
        keys: AtomicUsize::new(0),
        flush_at_keys: config.flush_at_keys.max(1),
        full_log: config.log == VisitLog::Full,
        raw_bytes: AtomicUsize::new(0),
        max_raw_bytes: config.max_raw_bytes,
        wake: Notify::new(),
        classifier: classifier.clone(),
    });
    describe_metrics();
    (aggregator.clone(), VisitFlusher { aggregator, store, classifier, config })
}

/// Registers the aggregator's metrics at zero, so they exist before anything
/// happened.
fn describe_metrics() {
    metrics::describe_counter!("offndat_visits_recorded_total", "Visits counted and written to the outbox.");
    metrics::counter!("offndat_visits_recorded_total").absolute(0);
    metrics::describe_counter!(
        "offndat_visits_dropped_total",
        "Visits lost: only a final flush at shutdown that could not reach PostgreSQL."
    );
    metrics::counter!("offndat_visits_dropped_total", "reason" => "shutdown").absolute(0);
    metrics::describe_counter!(
        "offndat_visit_log_dropped_total",
        "Raw visits left out of the full visit log: its memory budget was used up while PostgreSQL was slow or away (counts unaffected)."
    );
    metrics::counter!("offndat_visit_log_dropped_total").absolute(0);
    metrics::describe_counter!("offndat_orphan_visits_total", "Requests for phrases that name no link.");
    metrics::counter!("offndat_orphan_visits_total").absolute(0);
    metrics::describe_gauge!("offndat_visit_pending_links", "Links with counted visits not yet written.");
    metrics::gauge!("offndat_visit_pending_links").increment(0.0);
    metrics::describe_counter!("offndat_visit_flushes_total", "Flushes of the visit aggregator, by outcome.");
    for outcome in ["written", "failed"] {
        metrics::counter!("offndat_visit_flushes_total", "outcome" => outcome).absolute(0);
    }
}

impl VisitFlusher {
    /// Flushes every interval (or early when many keys are waiting) until `stop`
    /// is cancelled, then flushes what is left, retrying an unreachable database
    /// up to the drain timeout.
    pub async fn run(self, stop: CancellationToken) {
        let mut pending = VisitTally::default();
        let mut pending_raw: Vec<(Uuid, RecentVisit)> = Vec::new();
        // Their share of the raw log's budget, given back once written.
        let (mut pending_raw_bytes, mut batch_raw_bytes) = (0, 0);
        // A batch that failed to write is retried exactly as it was (same event
        // ids), while new windows gather in `pending`.
        let mut batch: Option<FlushBatch> = None;
        let mut delay = Duration::from_millis(100);
        let mut next_try = Instant::now();
        loop {
            let stopping = tokio::select! {
                () = stop.cancelled() => true,
                () = tokio::time::sleep(self.config.flush_interval) => false,
                () = self.aggregator.wake.notified() => false,
            };
            pending_raw_bytes += self.fold_into(&mut pending, &mut pending_raw);
            if stopping {
                break;
            }
            if Instant::now() < next_try {
                continue;
            }
            if batch.is_none() {
                batch = FlushBatch::new(&std::mem::take(&mut pending), std::mem::take(&mut pending_raw));
                batch_raw_bytes = std::mem::take(&mut pending_raw_bytes);
            }
            let Some(ready) = &batch else { continue };
            match self.write(ready).await {
                Ok(()) => {
                    batch = None;
                    self.aggregator.release_raw(std::mem::take(&mut batch_raw_bytes));
                    delay = Duration::from_millis(100);
                }
                Err(error) => {
                    tracing::warn!(
                        error = %error,
                        links.pending = ready.links + pending.links.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "writing visits failed; keeping them for the next flush"
                    );
                    next_try = Instant::now() + delay;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
            metrics::gauge!("offndat_visit_pending_links")
                .set((batch.as_ref().map_or(0, |b| b.links) + pending.links.len()) as f64);
        }
        let last = FlushBatch::new(&pending, pending_raw);
        self.drain(batch.into_iter().chain(last)).await;
    }

    /// The final flush at shutdown: the batches in order, each retried while
    /// PostgreSQL is unreachable, up to the drain timeout.
    async fn drain(&self, batches: impl Iterator<Item = FlushBatch>) {
        let started = Instant::now();
        for batch in batches {
            let mut delay = Duration::from_millis(100);
            loop {
                match self.write(&batch).await {
                    Ok(()) => break,
                    Err(error) if is_unavailable(&error) && started.elapsed() < self.config.drain_timeout => {
                        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "final visit flush failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(error) => {
                        tracing::error!(error = %error, visits.count = batch.visits, "the final visit flush failed; these visits are lost");
                        metrics::counter!("offndat_visits_dropped_total", "reason" => "shutdown")
                            .increment(batch.visits);
                        break;
                    }
                }
            }
        }
        tracing::info!("visit aggregator drained");
    }

    /// Takes the current window and folds it into `pending`; returns the raw
    /// log's bytes (`RawVisit::size`) moved into `pending_raw`.
    fn fold_into(&self, pending: &mut VisitTally, pending_raw: &mut Vec<(Uuid, RecentVisit)>) -> usize {
        let windows = self.aggregator.take();
        let mut classes: HashMap<&[u8], UserAgentClass> = HashMap::new();
        let mut tally = VisitTally::default();
        let unknown = UserAgentClass::unknown();
        let unknown_bot = UserAgentClass { bot: true, device: DeviceClass::Bot, ..UserAgentClass::unknown() };
        let mut raw_bytes = 0;
        for window in &windows {
            for (link_id, link) in &window.links {
                for (key, count) in &link.counts {
                    let class = match (&key.user_agent, key.overflow) {
                        (_, Some(true)) => unknown_bot.clone(),
                        (Some(ua), None) => classify(&mut classes, self.classifier.as_ref(), ua),
                        _ => unknown.clone(),
                    };
                    let host = key.referrer_host.as_deref().map(host_text).unwrap_or_default();
                    let hour = DateTime::from_timestamp(key.hour * 3600, 0).unwrap_or_default();
                    let host = bounded_host([&*pending, &tally], link_id, hour, host);
                    tally.add(*link_id, hour, &class, &host, *count);
                }
                for raw in &link.newest {
                    let visit = self.stored(&mut classes, raw);
                    tally.add_recent(*link_id, visit);
                }
            }
            for (hour, count) in &window.orphans {
                tally.add_orphans(DateTime::from_timestamp(hour * 3600, 0).unwrap_or_default(), *count);
            }
            for (id, raw) in &window.raw {
                raw_bytes += raw.size();
                pending_raw.push((*id, self.stored(&mut classes, raw)));
            }
        }
        pending.merge(tally);
        metrics::gauge!("offndat_visit_pending_links").set(pending.links.len() as f64);
        raw_bytes
    }

    fn stored<'a>(&self, classes: &mut HashMap<&'a [u8], UserAgentClass>, raw: &'a RawVisit) -> RecentVisit {
        RecentVisit {
            visited_at: raw.visited_at,
            ip_address: raw.ip.map(|ip| ip.to_string()),
            user_agent: raw.user_agent.as_deref().and_then(|b| stored_text(b, MAX_USER_AGENT_CHARS)),
            referrer: raw.referrer.as_deref().and_then(|b| stored_text(b, MAX_REFERRER_CHARS)),
            bot: raw.user_agent.as_deref().is_some_and(|ua| classify(classes, self.classifier.as_ref(), ua).bot),
        }
    }

    /// Writes `batch` in one transaction.
    async fn write(&self, batch: &FlushBatch) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let outcome = self.store.write(batch).await;
        let label = if outcome.is_ok() { "written" } else { "failed" };
        metrics::counter!("offndat_visit_flushes_total", "outcome" => label).increment(1);
        outcome?;
        metrics::counter!("offndat_visits_recorded_total").increment(batch.visits);
        tracing::debug!(
            visits.count = batch.visits,
            links.count = batch.links,
            latency_ms = started.elapsed().as_millis() as u64,
            "visits written"
        );
        Ok(())
    }
}

fn classify<'a>(
    classes: &mut HashMap<&'a [u8], UserAgentClass>,
    classifier: &dyn UserAgentClassifier,
    user_agent: &'a [u8],
) -> UserAgentClass {
    classes
        .entry(user_agent)
        .or_insert_with(|| match stored_text(user_agent, MAX_USER_AGENT_CHARS) {
            Some(text) => classifier.classify(&text),
            None => UserAgentClass::unknown(),
        })
        .clone()
}

/// `host`, or `""` (no referrer host) once `link_id`'s hour already holds
/// `MAX_HOSTS_PER_LINK_HOUR` others in `tallies`.
fn bounded_host(tallies: [&VisitTally; 2], link_id: &Uuid, hour: DateTime<Utc>, host: String) -> String {
    if host.is_empty() {
        return host;
    }
    let hosts = tallies.map(|tally| {
        tally.links.get(link_id).and_then(|link| link.hours.get(&hour)).map(|h| h.dimension(Dimension::ReferrerHost))
    });
    if hosts.iter().flatten().any(|known| known.contains_key(&host)) {
        return host;
    }
    let held: usize = hosts.iter().flatten().map(|known| known.len()).sum();
    if held >= MAX_HOSTS_PER_LINK_HOUR { String::new() } else { host }
}

/// A referrer host as stored: lower-case text.
fn host_text(host: &[u8]) -> String {
    String::from_utf8_lossy(host).to_lowercase()
}

#[cfg(test)]
mod tests;
