//! Resolve a phrase to its redirect target: the redirect hot path.

use std::sync::Arc;

use offndat_domain::StoredState;

use crate::error::ApplicationError;
use crate::ports::{Clock, LinkResolver, RedirectTarget};

/// The resolve-link use case behind redirects.
#[derive(Clone)]
pub struct ResolveLink {
    resolver: Arc<dyn LinkResolver>,
    clock: Arc<dyn Clock>,
}

impl ResolveLink {
    pub fn new(resolver: Arc<dyn LinkResolver>, clock: Arc<dyn Clock>) -> Self {
        Self { resolver, clock }
    }

    /// The target of `phrase` (a valid phrase); `NotFound`, or `Gone` with the
    /// reason when the link cannot be followed. An answer from the in-process
    /// cache costs no I/O and no await; the clock is read only for links that
    /// have an expiry or another state.
    pub async fn execute(&self, phrase: &str) -> Result<RedirectTarget, ApplicationError> {
        let found = match self.resolver.cached(phrase) {
            Some(hit) => hit,
            None => self.resolver.resolve(phrase).await?,
        };
        let target = found.ok_or(ApplicationError::NotFound)?;
        if target.state == StoredState::default() {
            return Ok(target);
        }
        match target.state.at(self.clock.now()) {
            state if state.is_active() => Ok(target),
            state => Err(ApplicationError::Gone(state)),
        }
    }
}
