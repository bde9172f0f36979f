//! What each subcommand does.

use std::io::Write;

use anyhow::Context;
use offndat_domain::{Language, Theme};
use offndat_infrastructure::config::ApiConfig;
use offndat_infrastructure::{postgres, vocabulary};
use tokio_util::sync::CancellationToken;

use crate::app::Application;

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
