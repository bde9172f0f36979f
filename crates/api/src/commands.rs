//! What each subcommand does.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use offndat_application::keys::CLI_ACTOR;
use offndat_application::{ApplicationError, ApplyBlocklist, CompactRollups, KeyRecord, ManageKeys};
use offndat_domain::{Language, Theme};
use offndat_infrastructure::blocklist::FileBlocklist;
use offndat_infrastructure::postgres::{PgEventLedger, PgKeyStore, PgLinkTakedowns};
use offndat_infrastructure::system::SystemClock;
use offndat_infrastructure::{postgres, vocabulary};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::app::Application;
use crate::cli::{BlocklistCommand, KeysCommand};
use crate::config::ApiConfig;

/// Serves until `shutdown` is cancelled, then drains and returns. Start-up may
/// wait for PostgreSQL for `OFFNDAT_DATABASE_STARTUP_TIMEOUT`; a signal meanwhile
/// is a clean stop, not something to sit out.
pub async fn serve(config: ApiConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = tokio::select! {
        app = Application::build(config) => app?,
        () = shutdown.cancelled() => {
            tracing::info!("shutdown signal during start-up; stopped before serving");
            return Ok(());
        }
    };
    app.run(shutdown).await
}

/// Applies migrations and exits.
pub async fn migrate(config: &ApiConfig) -> anyhow::Result<()> {
    let pool = postgres::connect(&config.database).await?;
    postgres::migrate(&pool).await?;
    tracing::info!(database = %config.database.redacted_url(), "migrations applied");
    pool.close().await;
    Ok(())
}

/// Prints the phrase space of every language and theme.
pub fn vocabulary(config: &ApiConfig) -> anyhow::Result<()> {
    let vocabulary = vocabulary::load(config.vocabulary_dir.as_deref())?;
    let source = config.vocabulary_dir.as_ref().map_or("built-in".to_owned(), |d| d.display().to_string());
    let mut out = std::io::stdout().lock();
    writeln!(out, "vocabulary: {source}")?;
    writeln!(out, "{:<10} {:<14} {:>26}", "language", "theme", "distinct phrases")?;
    for language in Language::ALL {
        for theme in Theme::ALL {
            let space = vocabulary.phrase_space(language, theme);
            writeln!(out, "{:<10} {:<14} {:>26}", language.code(), theme.name(), group_thousands(space))
                .context("writing to stdout")?;
        }
    }
    Ok(())
}

/// A pool on a migrated database, for the management subcommands.
async fn database(config: &ApiConfig) -> anyhow::Result<PgPool> {
    let pool = postgres::connect(&config.database).await?;
    if config.migrate_on_start {
        postgres::migrate(&pool).await?;
    }
    Ok(pool)
}

/// `compact-rollups`: every pending day, today included, into the daily rollups;
/// prints how many links were compacted.
pub async fn compact_rollups(config: &ApiConfig) -> anyhow::Result<()> {
    let pool = database(config).await?;
    let compact = CompactRollups::new(Arc::new(PgEventLedger::new(pool.clone())), Arc::new(SystemClock));
    let compacted = compact.through_today().await.context("compacting the daily rollups");
    pool.close().await;
    writeln!(std::io::stdout().lock(), "compacted the daily rollups of {} link(s)", compacted?)?;
    Ok(())
}

/// `keys create|list|revoke`. Only `create` prints a secret, on stdout, never
/// through the log.
pub async fn keys(config: &ApiConfig, command: KeysCommand) -> anyhow::Result<()> {
    let pool = database(config).await?;
    let keys = ManageKeys::new(Arc::new(PgKeyStore::new(pool.clone())), Arc::new(SystemClock));
    let result = run_keys(&keys, command).await;
    pool.close().await;
    result
}

async fn run_keys(keys: &ManageKeys, command: KeysCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create { name, role } => {
            let created = keys.create(CLI_ACTOR, Some(&name), Some(&role)).await.map_err(explain)?;
            // The secret alone on stdout, so `SECRET=$(offndat-api keys create ...)` works.
            writeln!(out, "{}", created.secret)?;
            eprintln!(
                "created key `{}` ({}); its secret above is shown only now: store it safely",
                created.record.name,
                created.record.role.as_str()
            );
        }
        KeysCommand::List => {
            writeln!(out, "{:<24} {:<8} {:<25} {:<25} {:<25}", "name", "role", "created", "last used", "revoked")?;
            for key in keys.list().await.map_err(explain)? {
                writeln!(out, "{}", key_line(&key))?;
            }
        }
        KeysCommand::Revoke { name } => {
            let key = keys.revoke(CLI_ACTOR, &name).await.map_err(explain)?;
            writeln!(out, "revoked key `{}`; every API process refuses it within a second", key.name)?;
        }
    }
    Ok(())
}

fn key_line(key: &KeyRecord) -> String {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".to_owned(), crate::response::timestamp);
    format!(
        "{:<24} {:<8} {:<25} {:<25} {:<25}",
        key.name,
        key.role.as_str(),
        crate::response::timestamp(key.created_at),
        at(key.last_used_at),
        at(key.revoked_at)
    )
}

/// `blocklist apply [--dry-run]`.
pub async fn blocklist(config: &ApiConfig, command: BlocklistCommand) -> anyhow::Result<()> {
    let BlocklistCommand::Apply { dry_run } = command;
    let path = config.access.blocklist_file.as_deref().context("OFFNDAT_BLOCKLIST_FILE is not set")?;
    let list = FileBlocklist::load(path)?;
    let pool = database(config).await?;
    let apply = ApplyBlocklist::new(Arc::new(PgLinkTakedowns::new(pool.clone())), list);
    let result = apply.execute(CLI_ACTOR, dry_run).await.map_err(explain);
    pool.close().await;
    let report = result?;
    let mut out = std::io::stdout().lock();
    for takedown in &report.matched {
        writeln!(out, "{}\t{}\t{}", takedown.link.phrase, takedown.link.host, takedown.domain)?;
    }
    if dry_run {
        writeln!(out, "{} link(s) match the blocklist; nothing changed (--dry-run)", report.matched.len())?;
    } else {
        writeln!(out, "{} link(s) match the blocklist; {} disabled now", report.matched.len(), report.disabled)?;
    }
    Ok(())
}

/// One line an operator can act on.
fn explain(error: ApplicationError) -> anyhow::Error {
    match error {
        ApplicationError::KeyValidation(failures) => {
            anyhow::anyhow!("{}", failures.iter().map(|f| f.message()).collect::<Vec<_>>().join(" "))
        }
        ApplicationError::KeyNameTaken => anyhow::anyhow!("a key with this name exists (revoked keys keep theirs)"),
        ApplicationError::KeyNotFound => anyhow::anyhow!("no key has this name"),
        other => anyhow::Error::new(other),
    }
}

fn group_thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::group_thousands(0), "0");
        assert_eq!(super::group_thousands(1234567), "1,234,567");
        assert_eq!(super::group_thousands(100), "100");
    }
}
