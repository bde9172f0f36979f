//! `AppState`: everything handlers need, built once by the composition root.

use std::sync::Arc;

use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;
use offndat_application::{GenerateLink, ReadLinkStats, ReadVisitStats, RecordVisit, ResolveLink};
use offndat_infrastructure::amqp::BrokerStatus;
use offndat_infrastructure::cache::TwoLevelCache;
use sqlx::PgPool;

use crate::auth::ApiKeys;
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
    pub resolve_link: ResolveLink,
    pub read_link_stats: ReadLinkStats,
    pub read_visit_stats: ReadVisitStats,
    pub record_visit: RecordVisit,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNet]>,
    pub metrics: PrometheusHandle,
    pub short_urls: ShortUrls,
    pub api_keys: ApiKeys,
    /// Whether the home page may create links without an API key.
    pub web_create: bool,
    /// For health checks only; handlers go through the use cases.
    pub pool: PgPool,
    /// For health checks: Redis behind the cache.
    pub cache: Arc<TwoLevelCache>,
    /// For health checks: the outbox relay's broker connection.
    pub broker: BrokerStatus,
}
