//! Mapping sqlx errors onto the store port's error.

use offndat_application::ports::StoreError;

/// Connection-level failures and statements cancelled by their timeout are
/// `Unavailable` (worth a 503 and a retry); the rest are `Other`.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    if is_unavailable(&error) || is_statement_timeout(&error) {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Other(Box::new(error))
    }
}

/// 57014 query_canceled: here, PostgreSQL's `statement_timeout` (a database too
/// slow or locked right now), not a fault of the statement.
fn is_statement_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

/// Whether `error` means "PostgreSQL cannot be reached right now".
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: shutdown in progress; 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P0") || code == "53300"
        }),
        _ => false,
    }
}
