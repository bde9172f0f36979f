//! Start-up against PostgreSQL: create the database if it is missing, apply
//! migrations, and open the pool, retrying with backoff while PostgreSQL is
//! unreachable.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::time::Instant;

use super::MIGRATOR;
use super::errors::is_unavailable;
use crate::config::DatabaseConfig;

/// Why start-up against PostgreSQL failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("OFFNDAT_DATABASE_URL is not a usable PostgreSQL URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("PostgreSQL at {url} was unreachable for {waited:?}: {source}")]
    Unreachable { url: String, waited: Duration, source: sqlx::Error },
    #[error("PostgreSQL at {url} refused start-up: {source}")]
    Refused { url: String, source: sqlx::Error },
    #[error("migrating the database failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("migrating the database failed: {0}")]
    MigrationLock(#[source] sqlx::Error),
}

/// The advisory lock that lets one process at a time migrate (`offndat-migrate`
/// as bytes); sqlx's own lock is taken inside it, uncontended.
const MIGRATION_LOCK: i64 = 0x6f66_666e_6461_746d;
/// How often a process waiting to migrate asks for the lock again.
const MIGRATION_LOCK_POLL: Duration = Duration::from_millis(100);

/// Creates the database if missing and opens the pool. The pool connects lazily,
/// so a later outage does not stop the process; queries then fail fast with
/// `Unavailable` after the acquire timeout.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, BootstrapError> {
    let options = connect_options(config)?;
    retry_while_unreachable(config, || ensure_database(&options)).await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .min_connections(0)
        .acquire_timeout(config.database_acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options);
    // One round trip now, so a wrong password fails start-up rather than requests.
    retry_while_unreachable(config, || async { pool.acquire().await.map(drop) }).await?;
    Ok(pool)
}

/// A second, smaller pool for redirect lookups, on which PostgreSQL cancels any
/// statement running past `statement_timeout`. Apart from the main pool, a flood
/// of unknown phrases cannot take the connections creates and stats need (a
/// bulkhead), and a locked or slow table fails lookups fast instead of piling
/// them up. Call after [`connect`], which creates the database.
pub fn lookup_pool(
    config: &DatabaseConfig,
    max_connections: u32,
    statement_timeout: Duration,
) -> Result<PgPool, BootstrapError> {
    let options = connect_options(config)?
        .options([("statement_timeout", format!("{}ms", statement_timeout.as_millis().max(1)))]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(config.database_acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options))
}

/// Applies pending migrations, one process at a time, so replicas starting
/// together apply each migration once.
///
/// Waiting processes poll `pg_try_advisory_lock` instead of blocking in
/// `pg_advisory_lock` (what sqlx's migrator does): a `CREATE INDEX CONCURRENTLY`
/// in the running migration waits for every transaction holding a snapshot, and
/// a replica blocked inside a lock statement holds one while waiting for the
/// migrating process, a deadlock. Between polls a waiting process holds none.
pub async fn migrate(pool: &PgPool) -> Result<(), BootstrapError> {
    let mut conn = pool.acquire().await.map_err(BootstrapError::MigrationLock)?;
    loop {
        let locked = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, MIGRATION_LOCK)
            .fetch_one(&mut *conn)
            .await
            .map_err(BootstrapError::MigrationLock)?;
        if locked {
            break;
        }
        tokio::time::sleep(MIGRATION_LOCK_POLL).await;
    }
    let migrated = MIGRATOR.run(&mut *conn).await.map_err(BootstrapError::Migrate);
    let unlocked = sqlx::query_scalar!(r#"SELECT pg_advisory_unlock($1) AS "unlocked!""#, MIGRATION_LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(BootstrapError::MigrationLock);
    migrated.and(unlocked.map(drop))
}

/// Versions of the migrations this build carries that the database has not
/// applied successfully (all of them before the first migration). The worker
/// waits on this instead of migrating: the API owns the schema.
pub async fn pending_migrations(pool: &PgPool) -> Result<Vec<i64>, BootstrapError> {
    use sqlx::migrate::{Migrate, MigrateError};

    let mut connection = pool.acquire().await.map_err(|e| BootstrapError::Migrate(MigrateError::Execute(e)))?;
    let applied = match connection.list_applied_migrations(&MIGRATOR.table_name).await {
        Ok(applied) => applied,
        // 42P01 undefined_table: nothing has been migrated yet.
        Err(MigrateError::Execute(sqlx::Error::Database(e))) if e.code().as_deref() == Some("42P01") => {
            return Ok(MIGRATOR.iter().filter(|m| !m.migration_type.is_down_migration()).map(|m| m.version).collect());
        }
        Err(error) => return Err(BootstrapError::Migrate(error)),
    };
    // A migration that failed half-way is recorded, but not applied.
    let dirty = connection.dirty_version(&MIGRATOR.table_name).await.map_err(BootstrapError::Migrate)?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .filter(|version| Some(*version) == dirty || !applied.iter().any(|a| a.version == *version))
        .collect())
}

fn connect_options(config: &DatabaseConfig) -> Result<PgConnectOptions, BootstrapError> {
    let options: PgConnectOptions = config.database_url.as_str().parse().map_err(BootstrapError::InvalidUrl)?;
    // No JIT: every query here is short and index-driven, but the planner counts
    // 100 rows per `jsonb_each` (link rollups' values), which can push a stats read
    // past `jit_above_cost`; compiling then costs tens of milliseconds, more than
    // the query itself.
    Ok(options
        .application_name("offndat")
        .options([("jit", "off")])
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// Creates the target database through the `postgres` maintenance database when it
/// does not exist. Concurrent creators race harmlessly: "already exists" is success.
async fn ensure_database(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    match PgConnection::connect_with(options).await {
        Ok(connection) => return connection.close().await,
        // 3D000: invalid_catalog_name, the database does not exist.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {}
        Err(e) => return Err(e),
    }
    let mut maintenance = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut maintenance).await;
    maintenance.close().await?;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created the database");
            Ok(())
        }
        // 42P04 duplicate_database, 23505 unique_violation: another replica won the race.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs `attempt` until it succeeds, retrying connection failures with capped
/// exponential backoff up to the start-up timeout; other errors fail at once.
async fn retry_while_unreachable<F, Fut>(config: &DatabaseConfig, mut attempt: F) -> Result<(), BootstrapError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), sqlx::Error>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(error) if is_unavailable(&error) => {
                let waited = started.elapsed();
                if waited + delay > config.database_startup_timeout {
                    return Err(BootstrapError::Unreachable { url: config.redacted_url(), waited, source: error });
                }
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "PostgreSQL unreachable, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(BootstrapError::Refused { url: config.redacted_url(), source: error }),
        }
    }
}
