//! The composition root: builds adapters, use cases and the router from the
//! configuration, binds the listener, and serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::HeaderValue;
use offndat_application::ports::VisitStatsStore;
use offndat_application::{GenerateLink, ReadLinkStats, ReadVisitStats, RecordVisit, ResolveLink};
use offndat_infrastructure::amqp::{BrokerStatus, Topology};
use offndat_infrastructure::cache::{CachedVisitStats, L1, L1Settings, L2, L2Settings, TwoLevelCache};
use offndat_infrastructure::config::ApiConfig;
use offndat_infrastructure::outbox_relay::{OutboxRelay, RelaySettings};
use offndat_infrastructure::postgres::{self, PgLinkStore, PgVisitStatsStore, PgVisitStore};
use offndat_infrastructure::system::{OsRandom, SystemClock};
use offndat_infrastructure::user_agents::UserAgents;
use offndat_infrastructure::visit_aggregator::{VisitAggregatorConfig, VisitFlusher, visit_aggregator};
use offndat_infrastructure::{telemetry, vocabulary};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{ApiKeys, generate_key};
use crate::rate_limit::RateLimits;
use crate::routes::{RouterConfig, router};
use crate::short_url::ShortUrls;
use crate::state::{AppState, Services};

/// A built application, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    flusher: VisitFlusher,
    relay: Option<OutboxRelay>,
    rate_limits: Option<Arc<RateLimits>>,
    pool: PgPool,
    config: ApiConfig,
}

impl Application {
    /// Validates configuration, loads the vocabulary, prepares the database and
    /// binds the listener. Any error here is a start-up failure with one clear line.
    pub async fn build(config: ApiConfig) -> anyhow::Result<Self> {
        // First: metric handles made before the recorder is installed would go to
        // a no-op recorder for good (the cache's lookup counters did).
        let metrics = telemetry::metrics_handle();
        let cors_origins = config
            .cors_origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim()).with_context(|| format!("OFFNDAT_CORS_ORIGINS: invalid origin `{o}`"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let vocabulary = Arc::new(vocabulary::load(config.vocabulary_dir.as_deref())?);
        let api_keys = api_keys(&config);

        let pool = postgres::connect(&config.database).await?;
        if config.migrate_on_start {
            postgres::migrate(&pool).await?;
        }

        let clock = Arc::new(SystemClock);
        crate::routes::redirect::describe_metrics();
        let (visits, flusher) = visit_aggregator(
            PgVisitStore::new(pool.clone(), config.visit_log.visit_log),
            Arc::new(UserAgents::default()),
            VisitAggregatorConfig {
                flush_interval: config.visit_flush_interval,
                flush_at_keys: config.visit_flush_at_keys as usize,
                drain_timeout: config.shutdown_timeout,
                log: config.visit_log.visit_log,
                max_pending_raw: 1_000_000,
            },
        );
        let relay = config.relay.outbox_relay_enabled.then(|| {
            OutboxRelay::new(
                pool.clone(),
                RelaySettings {
                    amqp_url: config.messaging.amqp_url.clone(),
                    topology: Topology::new(&config.messaging.amqp_namespace),
                    batch_size: config.relay.outbox_batch_size,
                    poll_interval: config.relay.outbox_poll_interval,
                    retention: config.relay.outbox_retention,
                    connection_name: format!("offndat-api relay {}", std::process::id()),
                },
            )
        });

        let store = Arc::new(PgLinkStore::new(pool.clone()));
        let cache = Arc::new(link_cache(&config, store.clone())?);
        let broker = relay.as_ref().map_or_else(BrokerStatus::default, OutboxRelay::status);
        let state = AppState::new(Services {
            generate_link: GenerateLink::new(
                store.clone(),
                cache.clone(),
                vocabulary,
                clock.clone(),
                Arc::new(OsRandom),
                config.public_base_url.clone(),
            ),
            resolve_link: ResolveLink::new(cache.clone()),
            cache,
            broker,
            read_link_stats: ReadLinkStats::new(store.clone()),
            read_visit_stats: ReadVisitStats::new(store, visit_stats(&config, &pool), clock.clone()),
            record_visit: RecordVisit::new(visits, clock, config.anonymize_ips),
            trusted_proxies: config.trusted_proxies.clone().into(),
            metrics,
            short_urls: ShortUrls::new(&config.public_base_url),
            api_keys,
            web_create: config.web_create,
            pool: pool.clone(),
        });
        let rate_limits = RateLimits::new(&config.limits, config.trusted_proxies.clone().into()).map(Arc::new);
        let router = router(
            state,
            &RouterConfig {
                max_body_bytes: config.max_body_bytes,
                max_header_bytes: config.limits.max_header_bytes,
                request_timeout: config.limits.request_timeout,
                cors_origins,
                rate_limits: rate_limits.clone(),
            },
        );

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (OFFNDAT_LISTEN)", config.listen))?;
        Ok(Self { listener, router, flusher, relay, rate_limits, pool, config })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then, in order: stops accepting and lets
    /// in-flight requests finish (up to the shutdown timeout), flushes the visit
    /// aggregator into the database, lets the relay publish what is pending, and closes
    /// the pool.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { listener, router, flusher, relay, rate_limits, pool, config } = self;
        let address = listener.local_addr()?;
        let stop_flushing = CancellationToken::new();
        let flusher = tokio::spawn(flusher.run(stop_flushing.clone()));
        let relay_stop = CancellationToken::new();
        let relay = relay.map(|relay| tokio::spawn(relay.run(relay_stop.clone())));
        let forgetting = rate_limits.map(|limits| {
            tokio::spawn(async move {
                let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    every_minute.tick().await;
                    limits.forget_idle_clients();
                }
            })
        });
        tracing::info!(%address, public_base_url = %config.public_base_url, "offndat-api listening");

        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, service).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(config.shutdown_timeout).await;
        };
        let served = tokio::select! {
            result = serve => result.context("serving HTTP"),
            () = deadline => {
                tracing::warn!(timeout = ?config.shutdown_timeout, "in-flight requests did not finish in time");
                Ok(())
            }
        };
        // In-flight requests are done: what they counted is flushed last.
        stop_flushing.cancel();
        if flusher.await.is_err() {
            tracing::error!("the visit flusher panicked");
        }
        if let Some(forgetting) = forgetting {
            forgetting.abort();
        }
        relay_stop.cancel();
        if let Some(relay) = relay
            && relay.await.is_err()
        {
            tracing::error!("the outbox relay panicked");
        }
        pool.close().await;
        tracing::info!("offndat-api stopped");
        served
    }
}

/// The rollup reads, behind a short TTL cache unless it is turned off.
fn visit_stats(config: &ApiConfig, pool: &PgPool) -> Arc<dyn VisitStatsStore> {
    let store = Arc::new(PgVisitStatsStore::new(pool.clone()));
    if config.stats_cache_ttl.is_zero() {
        store
    } else {
        Arc::new(CachedVisitStats::new(store, config.stats_cache_ttl))
    }
}

/// The redirect cache with the levels the configuration turns on.
fn link_cache(config: &ApiConfig, store: Arc<PgLinkStore>) -> anyhow::Result<TwoLevelCache> {
    let settings = &config.cache;
    let l1 = settings.cache_l1_enabled.then(|| {
        L1::new(L1Settings {
            max_entries: settings.cache_l1_max_entries,
            max_bytes: settings.cache_l1_max_bytes,
            ttl: settings.cache_l1_ttl,
            time_to_idle: settings.cache_l1_time_to_idle,
            negative_ttl: settings.cache_negative_ttl,
        })
    });
    let l2 = if settings.cache_l2_enabled {
        let l2 = L2::new(
            &config.messaging.redis_url,
            L2Settings {
                ttl: settings.cache_l2_ttl,
                key_prefix: settings.redis_key_prefix.clone(),
                timeout: settings.redis_timeout,
                cooldown: settings.redis_cooldown,
            },
        )
        .map_err(anyhow::Error::msg)?;
        Some(Arc::new(l2))
    } else {
        None
    };
    Ok(TwoLevelCache::new(l1, l2, store))
}

/// The configured keys, or a generated one, logged once, so nothing is open by
/// default and a bare start still gives a usable service.
fn api_keys(config: &ApiConfig) -> ApiKeys {
    if config.api_keys.iter().all(|k| k.expose().is_empty()) {
        let key = generate_key();
        tracing::warn!(
            api_key = %key,
            "no API key configured (OFFNDAT_API_KEYS); generated one for this process, shown only here"
        );
        ApiKeys::new([key.as_str()])
    } else {
        ApiKeys::new(config.api_keys.iter().map(|k| k.expose().as_str()))
    }
}
