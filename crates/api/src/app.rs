//! The composition root: builds adapters, use cases and the router from the
//! configuration, binds the listener, and serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::HeaderValue;
use offndat_application::{GenerateLink, ReadLinkStats, ResolveLink};
use offndat_infrastructure::config::ApiConfig;
use offndat_infrastructure::postgres::{self, PgLinkStore};
use offndat_infrastructure::system::{OsRandom, SystemClock};
use offndat_infrastructure::vocabulary;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{ApiKeys, generate_key};
use crate::routes::{RouterConfig, router};
use crate::short_url::ShortUrls;
use crate::state::AppState;

/// A built application, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    config: ApiConfig,
}

impl Application {
    /// Validates configuration, loads the vocabulary, prepares the database and
    /// binds the listener. Any error here is a start-up failure with one clear line.
    pub async fn build(config: ApiConfig) -> anyhow::Result<Self> {
        let cors_origins = config
            .cors_origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim()).with_context(|| format!("OFFNDAT_CORS_ORIGINS: invalid origin `{o}`"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let vocabulary = Arc::new(vocabulary::load(config.vocabulary_dir.as_deref())?);

        let api_keys = if config.api_keys.iter().all(|k| k.expose().is_empty()) {
            let key = generate_key();
            tracing::warn!(
                api_key = %key,
                "no API key configured (OFFNDAT_API_KEYS); generated one for this process, shown only here"
            );
            ApiKeys::new([key.as_str()])
        } else {
            ApiKeys::new(config.api_keys.iter().map(|k| k.expose().as_str()))
        };

        let pool = postgres::connect(&config.database).await?;
        if config.migrate_on_start {
            postgres::migrate(&pool).await?;
        }

        let store = Arc::new(PgLinkStore::new(pool.clone()));
        let state = AppState {
            generate_link: GenerateLink::new(
                store.clone(),
                vocabulary,
                Arc::new(SystemClock),
                Arc::new(OsRandom),
                config.public_base_url.clone(),
            ),
            resolve_link: ResolveLink::new(store.clone()),
            read_link_stats: ReadLinkStats::new(store),
            short_urls: ShortUrls::new(&config.public_base_url),
            api_keys,
            pool: pool.clone(),
        };
        let router = router(state, &RouterConfig { max_body_bytes: config.max_body_bytes, cors_origins });

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (OFFNDAT_LISTEN)", config.listen))?;
        Ok(Self { listener, router, pool, config })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight
    /// requests finish (up to the shutdown timeout) and closes the pool.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let address = self.local_addr()?;
        tracing::info!(%address, public_base_url = %self.config.public_base_url, "offndat-api listening");
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(self.listener, service).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.config.shutdown_timeout).await;
        };
        tokio::select! {
            result = serve => result.context("serving HTTP")?,
            () = deadline => tracing::warn!(timeout = ?self.config.shutdown_timeout, "in-flight requests did not finish in time"),
        }
        self.pool.close().await;
        tracing::info!("offndat-api stopped");
        Ok(())
    }
}
