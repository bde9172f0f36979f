//! Resolve a phrase to its link: the redirect path.

use std::sync::Arc;

use offndat_domain::{Link, Phrase};

use crate::error::ApplicationError;
use crate::ports::LinkStore;

/// The resolve-link use case behind redirects.
#[derive(Clone)]
pub struct ResolveLink {
    store: Arc<dyn LinkStore>,
}

impl ResolveLink {
    pub fn new(store: Arc<dyn LinkStore>) -> Self {
        Self { store }
    }

    /// The link with `phrase`, or `NotFound`.
    pub async fn execute(&self, phrase: &Phrase) -> Result<Link, ApplicationError> {
        self.store.find_by_phrase(phrase).await?.ok_or(ApplicationError::NotFound)
    }
}
