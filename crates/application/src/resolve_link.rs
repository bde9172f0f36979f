//! Resolve a phrase to its redirect target: the redirect hot path.

use std::sync::Arc;

use crate::error::ApplicationError;
use crate::ports::{LinkResolver, RedirectTarget};

/// The resolve-link use case behind redirects.
#[derive(Clone)]
pub struct ResolveLink {
    resolver: Arc<dyn LinkResolver>,
}

impl ResolveLink {
    pub fn new(resolver: Arc<dyn LinkResolver>) -> Self {
        Self { resolver }
    }

    /// The target of `phrase` (a valid phrase), or `NotFound`. An answer from the
    /// in-process cache costs no I/O and no await.
    pub async fn execute(&self, phrase: &str) -> Result<RedirectTarget, ApplicationError> {
        let found = match self.resolver.cached(phrase) {
            Some(hit) => hit,
            None => self.resolver.resolve(phrase).await?,
        };
        found.ok_or(ApplicationError::NotFound)
    }
}
