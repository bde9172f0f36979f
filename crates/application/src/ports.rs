//! Ports: what the use cases need from the outside world. Adapters implement them
//! in `offndat-infrastructure`; tests may implement them in memory.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use offndat_domain::stats::{StatsRange, VisitCounts};
use offndat_domain::{Dimension, Link, LinkStats, NewVisit, Phrase, StoredState, UserAgentClass};
use uuid::Uuid;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The phrase is already taken by another link. Stores MUST report a clash this
    /// way (from the unique index, never from a prior read), so the caller can retry
    /// with a fresh phrase.
    #[error("the phrase is already taken")]
    PhraseTaken,
    /// A unique name (an API key's) is taken. Stores MUST report it from the unique
    /// index.
    #[error("the name is already taken")]
    NameTaken,
    /// The store cannot be reached or timed out.
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other failure, including rows that break the domain's invariants.
    #[error("store failure")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Durable storage of links.
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Inserts `link` and its `link.created` outbox message in one transaction.
    /// Returns `PhraseTaken` if the phrase exists, writing nothing.
    async fn create(&self, link: &Link) -> Result<(), StoreError>;

    /// The link with `phrase`, if any.
    async fn find_by_phrase(&self, phrase: &Phrase) -> Result<Option<Link>, StoreError>;

    /// The link with `phrase`, its visit total and its `recent` newest visits.
    async fn stats_by_phrase(&self, phrase: &Phrase, recent: u32) -> Result<Option<LinkStats>, StoreError>;

    /// What a redirect needs of `phrase`: the link's target and state, a deleted
    /// link's tombstone (`RedirectTarget::deleted`), or `None` for an unknown phrase.
    async fn redirect_target(&self, phrase: &Phrase) -> Result<Option<RedirectTarget>, StoreError> {
        Ok(self.find_by_phrase(phrase).await?.as_ref().map(RedirectTarget::from))
    }
}

/// What a redirect needs of a link: its id (for the visit), its target URL as
/// bytes, ready to become a `Location` header without copying, and its stored
/// state, so expiry is decided at request time from the clock and no cache level
/// needs to expire with the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    pub link_id: Uuid,
    /// The stored, normalised target URL (ASCII); empty for a deleted link.
    pub location: Bytes,
    pub state: StoredState,
}

impl RedirectTarget {
    /// The answer for a deleted link's phrase.
    pub fn deleted(link_id: Uuid) -> Self {
        Self { link_id, location: Bytes::new(), state: StoredState { deleted: true, ..StoredState::default() } }
    }
}

impl From<&Link> for RedirectTarget {
    fn from(link: &Link) -> Self {
        Self {
            link_id: link.id,
            location: Bytes::copy_from_slice(link.target_url.as_str().as_bytes()),
            state: link.stored_state(),
        }
    }
}

/// Resolves phrases for redirects, as fast as it can (caches in front of the
/// store). Phrases passed in are valid (`Phrase::check`).
#[async_trait]
pub trait LinkResolver: Send + Sync {
    /// The answer if it is at hand without I/O: `Some(Some(_))` a known link,
    /// `Some(None)` a phrase known not to exist, `None` "call `resolve`".
    fn cached(&self, phrase: &str) -> Option<Option<RedirectTarget>>;

    /// Resolves `phrase`, loading it at most once at a time however many callers
    /// ask concurrently.
    async fn resolve(&self, phrase: &str) -> Result<Option<RedirectTarget>, StoreError>;

    /// Forgets what this process knows of `phrase` (a link was just created under
    /// it, so a remembered "unknown" must go).
    fn invalidate(&self, phrase: &str);

    /// Forgets `phrase` in this process and in the shared cache (the link just
    /// changed). Other processes learn of the change from `link.changed`.
    async fn evict(&self, phrase: &str) {
        self.invalidate(phrase);
    }
}

/// The domains links may not point at (take-downs), read on every create and
/// edit, so it answers from memory.
pub trait TargetBlocklist: Send + Sync {
    /// The listed domain that `host` (normalised: lower case, IDNA, no trailing
    /// dot) is or is under, if any.
    fn blocked_by(&self, host: &str) -> Option<String>;
}

/// A blocklist that blocks nothing, for deployments without one.
pub struct NoBlocklist;

impl TargetBlocklist for NoBlocklist {
    fn blocked_by(&self, _: &str) -> Option<String> {
        None
    }
}

/// The current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Seeds for the random draws of phrase composition, injected so tests can make
/// them deterministic.
pub trait RandomSource: Send + Sync {
    /// A fresh seed for one composition attempt.
    fn seed(&self) -> u64;
}

/// Where redirects hand their visits. `record` must return at once: it may buffer
/// or drop, but never wait for I/O, so a redirect is never slowed by recording.
pub trait VisitSink: Send + Sync {
    fn record(&self, visit: PendingVisit<'_>);

    /// Counts a request for a phrase that names no link (an orphan visit).
    fn record_orphan(&self, at: DateTime<Utc>);
}

/// Classifies user agents: bot or not, browser and OS family, device class.
/// Called off the redirect path (when a flush is folded), and may be slow-ish.
pub trait UserAgentClassifier: Send + Sync {
    fn classify(&self, user_agent: &str) -> UserAgentClass;

    /// Whether `user_agent` is a bot's: the same answer as `classify(..).bot`,
    /// where an implementation may skip the families and its cache (it runs for
    /// visits that keep no user agent, which floods of new agents are made of).
    fn is_bot(&self, user_agent: &str) -> bool {
        self.classify(user_agent).bot
    }
}

/// Rows of the visit rollups: sparse buckets and dimension sums over a range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupRows {
    /// Per bucket start (only buckets with visits).
    pub buckets: Vec<(DateTime<Utc>, VisitCounts)>,
    /// Per dimension and value, summed over the range.
    pub dimensions: Vec<(Dimension, String, VisitCounts)>,
    /// Service-wide only: links created per bucket.
    pub links_created: Vec<(DateTime<Utc>, i64)>,
    /// Service-wide only: orphan visits per bucket.
    pub orphan_visits: Vec<(DateTime<Utc>, i64)>,
}

/// Reads the visit rollups kept by the worker. Never scans raw visits.
#[async_trait]
pub trait VisitStatsStore: Send + Sync {
    /// The rollups of `link_id` within `range` (at its granularity).
    async fn link_rollups(&self, link_id: Uuid, range: &StatsRange) -> Result<RollupRows, StoreError>;

    /// The rollups of the whole service within `range`.
    async fn service_rollups(&self, range: &StatsRange) -> Result<RollupRows, StoreError>;
}

/// A visit as a redirect hands it over: the IP already in its stored form, the
/// headers still raw and borrowed from the request, so nothing is copied unless
/// the sink keeps it. `into_stored` does the rest off the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingVisit<'a> {
    pub link_id: Uuid,
    pub visited_at: DateTime<Utc>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<&'a [u8]>,
    pub referrer: Option<&'a [u8]>,
}

impl PendingVisit<'_> {
    /// The stored form: text decoded (invalid UTF-8 replaced), bounded to the
    /// columns' limits, blank text as `None`.
    pub fn into_stored(self) -> NewVisit {
        use offndat_domain::visit::{MAX_REFERRER_CHARS, MAX_USER_AGENT_CHARS, stored_text};
        NewVisit {
            link_id: self.link_id,
            visited_at: self.visited_at,
            ip_address: self.ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.and_then(|b| stored_text(b, MAX_USER_AGENT_CHARS)),
            referrer: self.referrer.and_then(|b| stored_text(b, MAX_REFERRER_CHARS)),
        }
    }
}
