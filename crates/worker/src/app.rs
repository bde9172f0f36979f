//! The composition root: the pool, the event ledger, one consumer per queue, the
//! periodic chores (pruning, rollup compaction) and the health/metrics server,
//! built from the configuration and run until shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use backon::{ExponentialBuilder, Retryable};
use offndat_infrastructure::amqp::consumer::describe_metrics;
use offndat_infrastructure::amqp::{BatchSettings, BrokerStatus, EventConsumer, Topology};
use std::sync::Arc;

use offndat_application::apply_events::{EventLedger, Retention};
use offndat_application::{ApplyEvents, CompactRollups, PruneRecords};
use offndat_infrastructure::postgres::{self, PgEventLedger};
use offndat_infrastructure::system::SystemClock;
use offndat_infrastructure::telemetry;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::health::{self, HealthState, SchemaStatus};

/// A built worker, its HTTP listener bound, not yet consuming.
pub struct Worker {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    chores: Chores,
    consumers: Vec<EventConsumer>,
    schema: SchemaStatus,
    config: WorkerConfig,
}

impl Worker {
    /// Opens the pool (waiting for PostgreSQL up to its start-up timeout), prepares
    /// the consumers and binds the listener. Any error here is a start-up failure
    /// with one clear line. Neither the broker nor the schema is needed yet: `run`
    /// waits for the migrations and consumers keep retrying the broker.
    pub async fn build(config: WorkerConfig) -> anyhow::Result<Self> {
        let metrics = telemetry::metrics_handle();
        describe_metrics();
        let batch_size = usize::try_from(config.worker_batch_size).context("OFFNDAT_WORKER_BATCH_SIZE is too large")?;
        if u32::from(config.worker_prefetch) < config.worker_batch_size {
            tracing::warn!(
                prefetch = config.worker_prefetch,
                batch.size = config.worker_batch_size,
                "OFFNDAT_WORKER_PREFETCH is below OFFNDAT_WORKER_BATCH_SIZE: batches never exceed the prefetch"
            );
        }

        let pool = postgres::connect(&config.database).await?;
        let store = PgEventLedger::new(pool.clone());
        let ledger: Arc<dyn EventLedger> = Arc::new(store);
        let apply = ApplyEvents::with_lanes(ledger.clone(), usize::from(config.worker_lanes));
        let chores = Chores {
            prune: PruneRecords::new(
                ledger.clone(),
                Retention { inbox: config.inbox_retention, visit_log: config.visit_log.prune_older_than() },
            ),
            compact: CompactRollups::new(ledger.clone(), Arc::new(SystemClock)),
        };
        let status = BrokerStatus::default();
        let topology = Topology::new(&config.messaging.amqp_namespace);
        // Every queue's consumer may have all its lanes in a transaction at once,
        // beside the chores (pruning, compaction) and the readiness check.
        let connections = topology.consumer_queues().len() * usize::from(config.worker_lanes) + 2;
        if connections > config.database.database_max_connections as usize {
            tracing::warn!(
                lanes = config.worker_lanes,
                connections.needed = connections,
                connections.max = config.database.database_max_connections,
                "OFFNDAT_DATABASE_MAX_CONNECTIONS is below what the lanes may use at once: lanes will wait for connections"
            );
        }
        let settings = BatchSettings {
            prefetch: config.worker_prefetch,
            batch_size,
            batch_timeout: config.worker_batch_timeout,
            batch_max_bytes: config.worker_batch_max_bytes as usize,
            max_message_bytes: config.worker_max_message_bytes as usize,
            max_visits_per_link: config.worker_max_visits_per_link,
        };
        let consumers = topology
            .consumer_queues()
            .into_iter()
            .map(|(queue, _)| {
                EventConsumer::new(
                    config.messaging.amqp_url.clone(),
                    format!("offndat-worker {} {queue}", std::process::id()),
                    topology.clone(),
                    queue.to_owned(),
                    settings,
                    apply.clone(),
                    status.clone(),
                )
            })
            .collect();

        let listener = TcpListener::bind(config.worker_listen)
            .await
            .with_context(|| format!("cannot listen on {} (OFFNDAT_WORKER_LISTEN)", config.worker_listen))?;
        let schema = SchemaStatus::default();
        let router =
            health::router(HealthState { ledger: ledger.clone(), broker: status, metrics, schema: schema.clone() });
        Ok(Self { listener, router, pool, chores, consumers, schema, config })
    }

    /// The bound address of the health and metrics server (the real port when
    /// configured with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Consumes and serves until `shutdown` is cancelled, then lets the consumers
    /// settle the batches in hand (up to the shutdown timeout), stops the server and
    /// closes the pool. Fails if a consumer or the server dies on its own.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let address = self.local_addr()?;
        tracing::info!(%address, namespace = %self.config.messaging.amqp_namespace, "offndat-worker listening");

        // The server outlives the consumers, so health stays observable while draining.
        let stop_serving = CancellationToken::new();
        let serve =
            axum::serve(self.listener, self.router).with_graceful_shutdown(stop_serving.clone().cancelled_owned());
        let mut server = tokio::spawn(async move { serve.await });

        // Started together with the API on a fresh database (compose, Kubernetes),
        // the tables come a moment later: live but not ready until they do.
        tokio::select! {
            () = wait_for_migrations(&self.pool, &self.schema) => {}
            () = shutdown.cancelled() => {
                stop_serving.cancel();
                if tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err() {
                    server.abort();
                }
                self.pool.close().await;
                tracing::info!("offndat-worker stopped before the schema was ready");
                return Ok(());
            }
        }

        let mut consumers = JoinSet::new();
        for consumer in self.consumers {
            consumers.spawn(consumer.run(shutdown.clone()));
        }
        let inbox_every = (self.config.inbox_retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        let minute = Duration::from_secs(60);
        let chores = [
            tokio::spawn(periodically(self.chores.clone(), Chore::Inbox, inbox_every, shutdown.clone())),
            tokio::spawn(periodically(self.chores.clone(), Chore::VisitLog, minute, shutdown.clone())),
            tokio::spawn(periodically(self.chores, Chore::DailyRollups, minute, shutdown.clone())),
        ];
        let mut server_ended = false;
        let failure = tokio::select! {
            // Consumers end on their own only after shutdown, which then wins.
            biased;
            () = shutdown.cancelled() => None,
            ended = consumers.join_next() => Some(match ended {
                Some(Err(error)) => anyhow::anyhow!("a consumer crashed: {error}"),
                _ => anyhow::anyhow!("a consumer stopped unexpectedly"),
            }),
            served = &mut server => {
                server_ended = true;
                Some(match served {
                    Ok(Err(error)) => anyhow::Error::new(error).context("serving health and metrics"),
                    Ok(Ok(())) => anyhow::anyhow!("the health and metrics server stopped unexpectedly"),
                    Err(error) => anyhow::anyhow!("the health and metrics server crashed: {error}"),
                })
            }
        };
        // Whatever ended first, the rest stops in order.
        shutdown.cancel();

        let timeout = self.config.shutdown_timeout;
        let drained = tokio::time::timeout(timeout, async {
            while let Some(ended) = consumers.join_next().await {
                if let Err(error) = ended {
                    tracing::error!(error = %error, "a consumer crashed while stopping");
                }
            }
        })
        .await;
        if drained.is_err() {
            // Unacknowledged deliveries are redelivered to the next worker.
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "batches in hand did not settle in time; abandoning them"
            );
            consumers.shutdown().await;
        }
        stop_serving.cancel();
        if !server_ended {
            // Open keep-alive connections (a scraper's) must not hold the exit.
            if tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err() {
                server.abort();
            }
        }
        for chore in chores {
            let _ = chore.await;
        }
        self.pool.close().await;
        match failure {
            Some(error) => Err(error),
            None => {
                tracing::info!("offndat-worker stopped");
                Ok(())
            }
        }
    }
}

/// Waits, with capped exponential backoff, until every migration this build
/// carries is applied (the API applies them), reporting what is missing to the
/// readiness endpoint meanwhile.
async fn wait_for_migrations(pool: &PgPool, schema: &SchemaStatus) {
    let check = || async {
        match postgres::pending_migrations(pool).await {
            Ok(pending) if pending.is_empty() => Ok(()),
            Ok(pending) => Err(format!(
                "waiting for {} migration(s) (the API applies them, or `offndat-api migrate`), first {}",
                pending.len(),
                pending[0]
            )),
            Err(error) => Err(error.to_string()),
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let waited = check
        .retry(backoff)
        .notify(|problem: &String, retry_in: Duration| {
            schema.set_waiting(problem);
            tracing::warn!(problem = %problem, retry_in_ms = retry_in.as_millis() as u64, "database schema not ready");
        })
        .await;
    if waited.is_ok() {
        schema.set_ready();
    }
}

/// The use cases the worker runs on a timer.
#[derive(Clone)]
struct Chores {
    prune: PruneRecords,
    compact: CompactRollups,
}

/// What one periodic loop does.
#[derive(Clone, Copy)]
enum Chore {
    /// Forget applied message ids past the inbox retention.
    Inbox,
    /// Delete raw visits the visit log no longer keeps: everything under the
    /// `recent` log (each link's newest visits are kept apart), visits past the
    /// retention under `full`. Totals and rollups are untouched.
    VisitLog,
    /// Fold closed days' hourly rollups into the daily ones (an idle run reads an
    /// empty index range).
    DailyRollups,
}

impl Chore {
    fn name(self) -> &'static str {
        match self {
            Self::Inbox => "inbox pruning",
            Self::VisitLog => "visit log pruning",
            Self::DailyRollups => "daily rollup compaction",
        }
    }
}

/// Does `chore` every `every` until shutdown. Replicas may all do it: each
/// skips rows another replica is working on.
async fn periodically(chores: Chores, chore: Chore, every: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let done = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => tokio::select! {
                () = shutdown.cancelled() => return,
                done = async {
                    match chore {
                        Chore::Inbox => chores.prune.inbox().await,
                        Chore::VisitLog => chores.prune.visit_log().await,
                        Chore::DailyRollups => chores.compact.execute().await,
                    }
                } => done,
            },
        };
        match (chore, done) {
            (_, Ok(0)) => {}
            (Chore::Inbox, Ok(rows)) => tracing::info!(rows.pruned = rows, "pruned the inbox"),
            (Chore::VisitLog, Ok(rows)) => tracing::info!(rows.pruned = rows, "pruned the raw visit log"),
            (Chore::DailyRollups, Ok(links)) => tracing::info!(links.compacted = links, "compacted daily rollups"),
            (_, Err(error)) => {
                tracing::warn!(error = %error, chore = chore.name(), "a periodic chore failed; trying again later")
            }
        }
    }
}
