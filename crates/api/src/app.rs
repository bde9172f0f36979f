//! The composition root: builds adapters, use cases and the router from the
//! configuration, binds the listener, and serves until shutdown.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::HeaderValue;
use offndat_application::ports::{NoBlocklist, TargetBlocklist, VisitStatsStore};
use offndat_application::{
    CreateLink, GenerateLink, ManageKeys, ManageLinks, ReadAudit, ReadLinkStats, ReadVisitStats, RecordVisit,
    ResolveLink, TargetTerms,
};
use offndat_domain::TargetPolicy;
use offndat_infrastructure::amqp::{BrokerStatus, LinkChangeListener, Topology};
use offndat_infrastructure::blocklist::FileBlocklist;
use offndat_infrastructure::cache::{CachedVisitStats, L1, L1Settings, L2, L2Settings, TwoLevelCache};
use offndat_infrastructure::deployment::{Deployment, redis_key_prefix};
use offndat_infrastructure::outbox_relay::{OutboxRelay, RelaySettings};
use offndat_infrastructure::postgres::{
    self, PgAuditLog, PgIdempotencyStore, PgKeyStore, PgLinkAdminStore, PgLinkStore, PgVisitStatsStore, PgVisitStore,
};
use offndat_infrastructure::stored_keys::{StoredKeySettings, StoredKeys};
use offndat_infrastructure::system::{OsRandom, SystemClock};
use offndat_infrastructure::user_agents::UserAgents;
use offndat_infrastructure::visit_aggregator::{VisitAggregatorConfig, VisitFlusher, visit_aggregator};
use offndat_infrastructure::{telemetry, vocabulary};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{ApiKeys, Authenticator, generate_key};
use crate::config::ApiConfig;
use crate::rate_limit::RateLimits;
use crate::routes::{RouterConfig, router};
use crate::server::{self, ConnectionLimits};
use crate::short_url::ShortUrls;
use crate::state::{AppState, Services};

/// A built application, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    /// `OFFNDAT_OPS_LISTEN`: health detail and metrics.
    ops_listener: TcpListener,
    ops_router: Router,
    router: Router,
    flusher: VisitFlusher,
    relay: Option<OutboxRelay>,
    link_changes: LinkChangeListener,
    rate_limits: Option<Arc<RateLimits>>,
    stored_keys: (Arc<StoredKeys>, PgKeyStore, StoredKeySettings),
    blocklist: Option<Arc<FileBlocklist>>,
    pool: PgPool,
    /// Redirect lookups' own pool (statement timeout).
    lookups: PgPool,
    config: ApiConfig,
}

/// Memory the full visit log's raw visits may hold until written (PostgreSQL
/// slow or away): about 24,000 visits with huge headers (each cut to 512 + 2,048
/// characters), about 200,000 ordinary ones. An eighth of the 512 MiB the
/// Kubernetes manifests give an API container.
const RAW_VISIT_LOG_BYTES: usize = 64 * 1024 * 1024;

/// How often the blocklist file is re-read.
const BLOCKLIST_POLL: std::time::Duration = std::time::Duration::from_secs(1);

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
        if config.limits.http_idle_timeout <= config.limits.request_timeout {
            anyhow::bail!(
                "OFFNDAT_HTTP_IDLE_TIMEOUT ({:?}) must exceed OFFNDAT_REQUEST_TIMEOUT ({:?}): a request still being answered would be cut off",
                config.limits.http_idle_timeout,
                config.limits.request_timeout
            );
        }
        let vocabulary = Arc::new(vocabulary::load(config.vocabulary_dir.as_deref())?);
        crate::config::check_api_keys(&config.api_keys, config.development_mode).map_err(anyhow::Error::msg)?;
        let api_keys = api_keys(&config)?;
        let policy = target_policy(&config)?;
        if config.access.keys_max_staleness < config.access.keys_refresh_interval * 2 {
            anyhow::bail!(
                "OFFNDAT_KEYS_MAX_STALENESS must be at least twice OFFNDAT_KEYS_REFRESH_INTERVAL, or stored keys \
                 would be refused between two polls"
            );
        }
        let blocklist = match &config.access.blocklist_file {
            Some(path) => Some(FileBlocklist::load(path)?),
            None => None,
        };

        let pool = postgres::connect(&config.database).await?;
        if config.migrate_on_start {
            postgres::migrate(&pool).await?;
        }
        let key_store = PgKeyStore::new(pool.clone());
        let key_settings = StoredKeySettings {
            refresh_interval: config.access.keys_refresh_interval,
            max_staleness: config.access.keys_max_staleness,
            touch_interval: std::time::Duration::from_secs(60),
        };
        let stored_keys = StoredKeys::load(&key_store, key_settings).await.context("loading the stored API keys")?;

        let clock = Arc::new(SystemClock);
        crate::routes::redirect::describe_metrics();
        crate::http_metrics::describe_metrics();
        let (visits, flusher) = visit_aggregator(
            PgVisitStore::new(pool.clone(), config.visit_log.visit_log),
            Arc::new(UserAgents::default()),
            VisitAggregatorConfig {
                flush_interval: config.visit_flush_interval,
                flush_at_keys: config.visit_flush_at_keys as usize,
                drain_timeout: config.shutdown_timeout,
                log: config.visit_log.visit_log,
                max_raw_bytes: RAW_VISIT_LOG_BYTES,
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

        let lookups = postgres::lookup_pool(
            &config.database,
            config.database_lookup_connections,
            config.database_lookup_timeout,
        )?;
        let store = Arc::new(PgLinkStore::new(pool.clone()).with_lookup_pool(lookups.clone()));
        let cache = Arc::new(link_cache(&config, store.clone(), &pool).await?);
        let broker = relay.as_ref().map_or_else(BrokerStatus::default, OutboxRelay::status);
        let link_changes = LinkChangeListener {
            amqp_url: config.messaging.amqp_url.clone(),
            topology: Topology::new(&config.messaging.amqp_namespace),
            cache: cache.clone(),
            connection_name: format!("offndat-api link changes {}", std::process::id()),
        };
        let generate_link = GenerateLink::new(
            store.clone(),
            cache.clone(),
            vocabulary,
            clock.clone(),
            Arc::new(OsRandom),
            TargetTerms {
                policy,
                blocklist: blocklist
                    .clone()
                    .map_or_else(|| Arc::new(NoBlocklist) as Arc<dyn TargetBlocklist>, |b| b as _),
            },
        );
        let manage_links = ManageLinks::new(
            Arc::new(PgLinkAdminStore::new(pool.clone())),
            cache.clone(),
            clock.clone(),
            generate_link.clone(),
            config.phrase_quarantine_days,
        );
        let create_link = CreateLink::new(generate_link.clone(), Arc::new(PgIdempotencyStore::new(pool.clone())));
        let rate_limits = RateLimits::new(&config.limits, config.trusted_proxies.clone().into()).map(Arc::new);
        let state = AppState::new(Services {
            rate_limits: rate_limits.clone(),
            generate_link,
            create_link,
            manage_links,
            clock: clock.clone(),
            manage_keys: ManageKeys::new(Arc::new(key_store.clone()), clock.clone()),
            read_audit: ReadAudit::new(Arc::new(PgAuditLog::new(pool.clone()))),
            resolve_link: ResolveLink::new(cache.clone(), clock.clone()),
            cache,
            broker,
            read_link_stats: ReadLinkStats::new(store.clone()),
            read_visit_stats: ReadVisitStats::new(store, visit_stats(&config, &pool), clock.clone()),
            record_visit: RecordVisit::new(visits, clock, config.anonymize_ips),
            trusted_proxies: config.trusted_proxies.clone().into(),
            metrics,
            short_urls: ShortUrls::new(&config.public_base_url),
            authenticator: Authenticator { configured: api_keys, stored: stored_keys.clone() },
            web_create: config.web_create,
            pool: pool.clone(),
        });
        let ops_router = crate::routes::ops_router(state.clone());
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
        let ops_listener = TcpListener::bind(config.ops_listen)
            .await
            .with_context(|| format!("cannot listen on {} (OFFNDAT_OPS_LISTEN)", config.ops_listen))?;
        Ok(Self {
            listener,
            ops_listener,
            ops_router,
            router,
            flusher,
            relay,
            link_changes,
            rate_limits,
            stored_keys: (stored_keys, key_store, key_settings),
            blocklist,
            pool,
            lookups,
            config,
        })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound address of the operations listener.
    pub fn ops_addr(&self) -> std::io::Result<SocketAddr> {
        self.ops_listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then, in order: stops accepting and lets
    /// in-flight requests finish (up to the shutdown timeout), flushes the visit
    /// aggregator into the database, lets the relay publish what is pending, and closes
    /// the pool.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            ops_listener,
            ops_router,
            router,
            flusher,
            relay,
            link_changes,
            rate_limits,
            stored_keys,
            blocklist,
            pool,
            lookups,
            config,
        } = self;
        let background_stop = CancellationToken::new();
        let (keys, key_store, key_settings) = stored_keys;
        let key_refresher = tokio::spawn(keys.run(key_store, key_settings, background_stop.clone()));
        let blocklist_watcher = blocklist.map(|blocklist| {
            let audit = PgAuditLog::new(pool.clone());
            tokio::spawn(blocklist.watch(BLOCKLIST_POLL, audit, background_stop.clone()))
        });
        let address = listener.local_addr()?;
        let stop_flushing = CancellationToken::new();
        let flusher = tokio::spawn(flusher.run(stop_flushing.clone()));
        let relay_stop = CancellationToken::new();
        let relay = relay.map(|relay| tokio::spawn(relay.run(relay_stop.clone())));
        let listening_stop = CancellationToken::new();
        let listening = tokio::spawn(link_changes.run(listening_stop.clone()));
        let forgetting = rate_limits.map(|limits| {
            tokio::spawn(async move {
                let mut every_ten_seconds = tokio::time::interval(std::time::Duration::from_secs(10));
                loop {
                    every_ten_seconds.tick().await;
                    limits.forget_idle_clients();
                }
            })
        });
        let ops_address = ops_listener.local_addr()?;
        tracing::info!(%address, %ops_address, public_base_url = %config.public_base_url, "offndat-api listening");
        // Health and metrics stay up while the public listener drains, and stop last.
        let stop_ops = CancellationToken::new();
        let mut ops = tokio::spawn(
            axum::serve(ops_listener, ops_router)
                .with_graceful_shutdown(stop_ops.clone().cancelled_owned())
                .into_future(),
        );

        let limits = ConnectionLimits {
            header_read_timeout: config.limits.http_header_read_timeout,
            idle_timeout: config.limits.http_idle_timeout,
            max_connections: config.limits.http_max_connections as usize,
        };
        let serve = server::serve(listener, router, limits, shutdown.clone().cancelled_owned());
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(config.shutdown_timeout).await;
        };
        let served = tokio::select! {
            () = serve => Ok(()),
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
        listening_stop.cancel();
        if listening.await.is_err() {
            tracing::error!("the link change listener panicked");
        }
        // Last: the key refresher records which keys were used before the pool closes.
        background_stop.cancel();
        if key_refresher.await.is_err() {
            tracing::error!("the API key refresher panicked");
        }
        if let Some(watcher) = blocklist_watcher {
            let _ = watcher.await;
        }
        relay_stop.cancel();
        if let Some(relay) = relay
            && relay.await.is_err()
        {
            tracing::error!("the outbox relay panicked");
        }
        stop_ops.cancel();
        // A scraper's kept-alive connection must not hold the exit.
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut ops).await.is_err() {
            ops.abort();
        }
        lookups.close().await;
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

/// The redirect cache with the levels the configuration turns on. L2's keys and
/// values are this deployment's, as the database identifies it.
async fn link_cache(config: &ApiConfig, store: Arc<PgLinkStore>, pool: &PgPool) -> anyhow::Result<TwoLevelCache> {
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
        let deployment = Deployment::load(pool)
            .await
            .context("reading the deployment identity (table deployment_identity; are the migrations applied?)")?;
        let key_prefix = redis_key_prefix(settings.redis_key_prefix.as_deref(), &deployment);
        tracing::info!(deployment.id = deployment.id(), redis.key_prefix = %key_prefix, "Redis cache keys");
        let l2 = L2::new(
            &config.messaging.redis_url,
            L2Settings {
                ttl: settings.cache_l2_ttl,
                negative_ttl: settings.cache_negative_ttl,
                key_prefix,
                deployment,
                timeout: settings.redis_timeout,
                cooldown: settings.redis_cooldown,
                unanswered_to_open: settings.redis_unanswered_to_open,
            },
        )
        .map_err(anyhow::Error::msg)?;
        Some(Arc::new(l2))
    } else {
        None
    };
    Ok(TwoLevelCache::new(l1, l2, store))
}

/// What targets may not point at, from the public base URL and the access settings.
fn target_policy(config: &ApiConfig) -> anyhow::Result<TargetPolicy> {
    Ok(TargetPolicy::new(config.public_base_url.clone())
        .with_self_hosts(config.access.self_hosts.iter().map(String::as_str))
        .map_err(|why| anyhow::anyhow!("OFFNDAT_SELF_HOSTS: {why}"))?
        .allow_private(config.access.allow_private_targets))
}

/// The configured keys, or a generated one written to a file only this user can
/// read, so nothing is open by default and a bare start still gives a usable
/// service. The key itself never goes to the log stream, which log shippers copy
/// far and wide; the log says where it is.
fn api_keys(config: &ApiConfig) -> anyhow::Result<ApiKeys> {
    if !config.api_keys.iter().all(|k| k.expose().is_empty()) {
        return Ok(ApiKeys::new(config.api_keys.iter().map(|k| k.expose().as_str())));
    }
    let key = generate_key();
    let path = config
        .generated_api_key_file
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("offndat-api-{}.key", std::process::id())));
    write_owner_only(&path, &key).with_context(|| {
        format!("writing the generated API key to {} (OFFNDAT_GENERATED_API_KEY_FILE)", path.display())
    })?;
    tracing::warn!(
        api_key_file = %path.display(),
        "no API key configured (OFFNDAT_API_KEYS); generated one for this process and wrote it to the file, readable by this user only"
    );
    Ok(ApiKeys::new([key.as_str()]))
}

/// Writes `secret` to `path`, created (or truncated) with mode 0600 before any
/// byte is written.
fn write_owner_only(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // An existing file keeps its mode on open: tighten it before writing.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")
}
