//! `AppState`: everything handlers need, built once by the composition root.

use std::sync::Arc;

use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;
use offndat_application::ports::Clock;
use offndat_application::{
    CreateLink, GenerateLink, ManageKeys, ManageLinks, ReadAudit, ReadLinkStats, ReadVisitStats, RecordVisit,
    ResolveLink,
};
use offndat_infrastructure::amqp::BrokerStatus;
use offndat_infrastructure::cache::TwoLevelCache;
use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::short_url::ShortUrls;

/// Shared state of the router. Handlers get it on every request, so it is one
/// `Arc` to clone rather than a dozen.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Everything handlers need, built once by the composition root.
pub struct Services {
    pub generate_link: GenerateLink,
    /// Create with an optional Idempotency-Key.
    pub create_link: CreateLink,
    pub resolve_link: ResolveLink,
    pub read_link_stats: ReadLinkStats,
    pub manage_links: ManageLinks,
    pub clock: Arc<dyn Clock>,
    pub read_visit_stats: ReadVisitStats,
    pub record_visit: RecordVisit,
    pub manage_keys: ManageKeys,
    pub read_audit: ReadAudit,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNet]>,
    pub metrics: PrometheusHandle,
    pub short_urls: ShortUrls,
    pub authenticator: Authenticator,
    /// The limiters (`None` when rate limiting is off); handlers use the per-key
    /// create quota.
    pub rate_limits: Option<Arc<crate::rate_limit::RateLimits>>,
    /// Whether the home page may create links without an API key.
    pub web_create: bool,
    /// For health checks only; handlers go through the use cases.
    pub pool: PgPool,
    /// For health checks: Redis behind the cache.
    pub cache: Arc<TwoLevelCache>,
    /// For health checks: the outbox relay's broker connection.
    pub broker: BrokerStatus,
}
