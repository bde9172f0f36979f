//! Read a link with its visit total and newest visits.

use std::sync::Arc;

use offndat_domain::{LinkStats, Phrase};

use crate::error::ApplicationError;
use crate::ports::LinkStore;
use crate::visit_tally::RECENT_VISITS;

/// The read-link-stats use case.
#[derive(Clone)]
pub struct ReadLinkStats {
    store: Arc<dyn LinkStore>,
}

impl ReadLinkStats {
    pub fn new(store: Arc<dyn LinkStore>) -> Self {
        Self { store }
    }

    /// The link with `phrase` and its stats, or `NotFound`, also for a link outside
    /// `scope` (an owner's key id; `None`: every link).
    pub async fn execute(&self, phrase: &Phrase, scope: Option<i64>) -> Result<LinkStats, ApplicationError> {
        // The newest visits kept per link are the ones a read returns.
        let recent = RECENT_VISITS as u32;
        self.store
            .stats_by_phrase(phrase, recent)
            .await?
            .filter(|stats| scope.is_none_or(|owner| stats.link.owner_key_id == Some(owner)))
            .ok_or(ApplicationError::NotFound)
    }
}
