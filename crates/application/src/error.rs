//! The application layer's error: what a use case can fail with, independent of
//! how it is delivered.

use crate::generate_link::ValidationFailure;
use crate::keys::KeyFailure;
use crate::pagination::PageFailure;
use crate::ports::StoreError;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    /// The input broke one or more rules; every broken rule is listed, in order.
    #[error("validation failed: {0:?}")]
    Validation(Vec<ValidationFailure>),
    /// A stats range that cannot be answered.
    #[error("invalid stats range: {0}")]
    InvalidStatsRange(offndat_domain::stats::StatsRangeError),
    /// A create-key request broke one or more rules.
    #[error("invalid key request: {0:?}")]
    KeyValidation(Vec<KeyFailure>),
    /// A key with the name exists (revoked keys keep their names).
    #[error("the key name is taken")]
    KeyNameTaken,
    /// No key has the name.
    #[error("the key was not found")]
    KeyNotFound,
    /// A page request out of bounds.
    #[error("invalid page request: {0:?}")]
    InvalidPage(Vec<PageFailure>),
    /// No link has the phrase (or none the caller may see).
    #[error("the link was not found")]
    NotFound,
    /// The link exists (or existed) but cannot be followed: which `410`.
    #[error("the link is {}", .0.as_str())]
    Gone(offndat_domain::LinkState),
    /// A chosen phrase is taken, or quarantined after a delete.
    #[error("the phrase is taken")]
    PhraseTaken,
    /// An Idempotency-Key was used before with a different request body.
    #[error("the idempotency key was used with another request")]
    IdempotencyKeyReused,
    /// The caller's role does not allow this (a creator re-enabling a link).
    #[error("the caller's role does not allow this")]
    Forbidden,
    /// No free phrase was found within the attempt budget.
    #[error("no free phrase after {attempts} attempts")]
    CouldNotGenerate { attempts: u32 },
    /// A dependency (the database) is unreachable; retrying later may succeed.
    #[error("a dependency is unavailable")]
    Unavailable(#[source] StoreError),
    /// Anything else: a bug or a broken invariant.
    #[error("unexpected failure")]
    Unexpected(#[source] StoreError),
}

impl From<StoreError> for ApplicationError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApplicationError::Unavailable(error),
            _ => ApplicationError::Unexpected(error),
        }
    }
}
