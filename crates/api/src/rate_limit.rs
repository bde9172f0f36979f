//! Rate limiting per client with tower_governor: a token bucket for redirects,
//! one for the other routes and one for links created from the home page, keyed
//! by the client's IPv4 address or IPv6 network (a /64 by default); and a quota of
//! creates per API key. Limits are per replica: N replicas behind a load balancer
//! that spreads a client's requests allow up to N times as much.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use ipnet::IpNet;
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::client_ip::client_ip;
use crate::config::LimitsConfig;
use crate::error::ApiError;

/// Keys requests by client: the TCP peer, or behind a trusted proxy the
/// `X-Forwarded-For` hop it vouches for, so spoofed headers buy nothing; an IPv6
/// client by its network of `ipv6_prefix` bits.
#[derive(Clone)]
pub struct ClientIpKey {
    trusted: Arc<[IpNet]>,
    ipv6_prefix: u8,
}

/// The bucket of `ip`: an IPv4 address (IPv4-mapped IPv6 included) is its own;
/// an IPv6 address is its network of `prefix` bits.
pub fn bucket_of(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6);
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        },
    }
}

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(bucket_of(client_ip(peer, request.headers(), &self.trusted), self.ipv6_prefix))
    }
}

type Config = GovernorConfig<ClientIpKey, NoOpMiddleware<governor::clock::QuantaInstant>>;

/// The limiters, built once; their layers are cheap to clone onto routes.
pub struct RateLimits {
    pub redirects: Arc<Config>,
    pub api: Arc<Config>,
    /// Links created from the home page, without an API key.
    pub web_create: Arc<Config>,
    /// Links created per API key (by the key's name).
    pub creates_per_key: Arc<governor::DefaultKeyedRateLimiter<String>>,
}

impl RateLimits {
    /// `None` when rate limiting is off.
    pub fn new(config: &LimitsConfig, trusted: Arc<[IpNet]>) -> Option<Self> {
        if !config.rate_limit_enabled {
            return None;
        }
        let key = ClientIpKey { trusted, ipv6_prefix: config.rate_limit_ipv6_prefix };
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
        let per_key = NonZeroU32::new(config.rate_limit_create_per_key_per_minute)?;
        let creates_per_key = Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(per_key)));
        Some(Self {
            redirects: Arc::new(redirects),
            api: Arc::new(api),
            web_create: Arc::new(web_create),
            creates_per_key,
        })
    }

    /// Takes one create from `key_name`'s quota, or says how long to wait.
    pub fn take_create(&self, key_name: &str) -> Result<(), ApiError> {
        self.creates_per_key.check_key(&key_name.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            tracing::debug!(api_key = key_name, "create quota of an API key exhausted");
            ApiError::TooManyRequests { retry_after_seconds: wait.as_secs().max(1) }
        })
    }

    /// Forgets clients that have been quiet long enough to have a full bucket
    /// again, so memory stays bounded however many IPs pass by.
    pub fn forget_idle_clients(&self) {
        for config in [&self.redirects, &self.api, &self.web_create] {
            config.limiter().retain_recent();
            config.limiter().shrink_to_fit();
        }
        self.creates_per_key.retain_recent();
        self.creates_per_key.shrink_to_fit();
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
            // Debug, not info: a flood must not turn into a flood of log lines.
            tracing::debug!(retry_after_s = wait_time, "rate limited");
            ApiError::TooManyRequests { retry_after_seconds: wait_time.max(1) }.into_response()
        }
        GovernorError::UnableToExtractKey | GovernorError::Other { .. } => ApiError::Internal.into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv6_clients_share_their_network_and_ipv4_clients_do_not() {
        assert_eq!(bucket_of(ip("2001:db8:1:2:aaaa::1"), 64), ip("2001:db8:1:2::"));
        assert_eq!(bucket_of(ip("2001:db8:1:2:ffff::9"), 64), ip("2001:db8:1:2::"));
        assert_ne!(bucket_of(ip("2001:db8:1:3::1"), 64), bucket_of(ip("2001:db8:1:2::1"), 64));
        assert_eq!(bucket_of(ip("2001:db8:1:2::1"), 48), ip("2001:db8:1::"));
        assert_eq!(bucket_of(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(bucket_of(ip("198.51.100.7"), 64), ip("198.51.100.7"));
        assert_eq!(bucket_of(ip("::ffff:198.51.100.7"), 64), ip("198.51.100.7"), "IPv4-mapped is IPv4");
    }
}
