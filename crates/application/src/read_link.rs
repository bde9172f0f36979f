//! Read a link with its visit total and newest visits.

use std::sync::Arc;

use offndat_domain::{LinkStats, Phrase};

use crate::error::ApplicationError;
use crate::ports::LinkStore;

/// How many of the newest visits a stats read returns.
pub const RECENT_VISITS: u32 = 10;

/// The read-link-stats use case.
#[derive(Clone)]
pub struct ReadLinkStats {
    store: Arc<dyn LinkStore>,
}

impl ReadLinkStats {
    pub fn new(store: Arc<dyn LinkStore>) -> Self {
        Self { store }
    }

    /// The link with `phrase` and its stats, or `NotFound`.
    pub async fn execute(&self, phrase: &Phrase) -> Result<LinkStats, ApplicationError> {
        self.store.stats_by_phrase(phrase, RECENT_VISITS).await?.ok_or(ApplicationError::NotFound)
    }
}
