//! Rate limiting per client IP with tower_governor: a token bucket for redirects,
//! one for the other routes and one for links created from the home page. Limits
//! are per replica: N replicas behind a load balancer that spreads a client's
//! requests allow up to N times as much.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use ipnet::IpNet;
use offndat_infrastructure::config::LimitsConfig;
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::client_ip::client_ip;
use crate::error::ApiError;

/// Keys requests by client IP: the TCP peer, or behind a trusted proxy the
/// `X-Forwarded-For` hop it vouches for, so spoofed headers buy nothing.
#[derive(Clone)]
pub struct ClientIpKey {
    trusted: Arc<[IpNet]>,
}

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn name(&self) -> &'static str {
        "client IP"
    }

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(client_ip(peer, request.headers(), &self.trusted))
    }
}

type Config = GovernorConfig<ClientIpKey, NoOpMiddleware<governor::clock::QuantaInstant>>;

/// The limiters, built once; their layers are cheap to clone onto routes.
pub struct RateLimits {
    pub redirects: Arc<Config>,
    pub api: Arc<Config>,
    /// Links created from the home page, without an API key.
    pub web_create: Arc<Config>,
}

impl RateLimits {
    /// `None` when rate limiting is off.
    pub fn new(config: &LimitsConfig, trusted: Arc<[IpNet]>) -> Option<Self> {
        if !config.rate_limit_enabled {
            return None;
        }
        let key = ClientIpKey { trusted };
        let redirects = build(
            key.clone(),
            Duration::from_secs_f64(1.0 / config.rate_limit_redirect_per_second),
            config.rate_limit_redirect_burst,
        )?;
        // "120 per minute, sliding": a bucket of 120 refilled evenly over the minute.
        let api_period = Duration::from_secs(60) / config.rate_limit_api_per_minute;
        let api = build(key.clone(), api_period, config.rate_limit_api_per_minute)?;
        let web_period = Duration::from_secs(60) / config.rate_limit_web_create_per_minute;
        let web_create = build(key, web_period, config.rate_limit_web_create_per_minute)?;
        Some(Self { redirects: Arc::new(redirects), api: Arc::new(api), web_create: Arc::new(web_create) })
    }

    /// Forgets clients that have been quiet long enough to have a full bucket
    /// again, so memory stays bounded however many IPs pass by.
    pub fn forget_idle_clients(&self) {
        for config in [&self.redirects, &self.api, &self.web_create] {
            config.limiter().retain_recent();
            config.limiter().shrink_to_fit();
        }
    }
}

fn build(key: ClientIpKey, period: Duration, burst: u32) -> Option<Config> {
    GovernorConfigBuilder::default()
        .key_extractor(key)
        .period(period.max(Duration::from_nanos(1)))
        .burst_size(burst)
        .finish()
}

/// The layer for a limiter, answering the contract's 429 problem with `Retry-After`.
pub fn layer(config: &Arc<Config>) -> GovernorLayer<ClientIpKey, NoOpMiddleware<governor::clock::QuantaInstant>, Body> {
    GovernorLayer::new(config.clone()).error_handler(|error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            ApiError::TooManyRequests { retry_after_seconds: wait_time.max(1) }.into_response()
        }
        GovernorError::UnableToExtractKey | GovernorError::Other { .. } => ApiError::Internal.into_response(),
    })
}
