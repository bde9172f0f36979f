//! API-key authentication: `X-Offnd-Api-Key` must hold one of the keys configured
//! in `OFFNDAT_API_KEYS` (admins) or an active stored key; admin-only routes
//! also check the caller's role.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use offndat_application::keys::{KeyAuthenticator, KeyCheck};
use offndat_application::{Actor, Role};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::ApiError;

/// The header carrying the key.
pub const API_KEY_HEADER: &str = "x-offnd-api-key";

/// The accepted keys, kept only as SHA-256 digests so that comparisons are over
/// equal-length values and in constant time.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Arc<[[u8; 32]]>,
}

impl ApiKeys {
    /// Accepts `keys`; blank keys are ignored.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let digests: Vec<[u8; 32]> =
            keys.into_iter().map(str::trim).filter(|k| !k.is_empty()).map(|k| Sha256::digest(k).into()).collect();
        Self { digests: digests.into() }
    }

    /// The caller `candidate` authenticates, if it is one of the keys: an admin
    /// numbered by the key's place in the list. Every key is compared, so timing
    /// does not tell which one, or how much of one, matched.
    pub fn matching(&self, candidate: &str) -> Option<Actor> {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        let mut found = 0u64;
        for (number, key) in (1u64..).zip(self.digests.iter()) {
            found.conditional_assign(&number, key.ct_eq(&digest));
        }
        (found != 0).then(|| Actor::configured(found as usize))
    }
}

/// A random key for a process started without one: 32 bytes, hex.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every key a request may authenticate with.
#[derive(Clone)]
pub struct Authenticator {
    /// From `OFFNDAT_API_KEYS`: admins, checked first, without I/O.
    pub configured: ApiKeys,
    /// Stored keys, from memory kept fresh by polling.
    pub stored: Arc<dyn KeyAuthenticator>,
}

impl Authenticator {
    /// The caller `candidate` authenticates.
    pub fn authenticate(&self, candidate: &str) -> Result<Actor, ApiError> {
        if let Some(actor) = self.configured.matching(candidate) {
            return Ok(actor);
        }
        match self.stored.check(candidate) {
            KeyCheck::Valid(actor) => Ok(actor),
            KeyCheck::Unknown => Err(ApiError::Unauthorized),
            KeyCheck::Unverifiable => {
                // The refresher logs the outage once; this is per request.
                tracing::debug!("a stored API key was refused: the key set could not be refreshed for too long");
                Err(ApiError::Unavailable)
            }
        }
    }
}

/// Rejects requests without an accepted key with the contract's 401 problem, and
/// hands the caller to handlers as an `Extension<Actor>`.
pub async fn require_api_key(State(keys): State<Authenticator>, mut request: Request, next: Next) -> Response {
    let candidate =
        request.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).filter(|candidate| !candidate.is_empty());
    match candidate.map_or(Err(ApiError::Unauthorized), |candidate| keys.authenticate(candidate)) {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Lets only admins through (after `require_api_key`); others get 403
/// `General.Forbidden`.
pub async fn require_admin(request: Request, next: Next) -> Response {
    match request.extensions().get::<Actor>() {
        Some(actor) if actor.role == Role::Admin => next.run(request).await,
        Some(_) => ApiError::Forbidden.into_response(),
        None => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(["alpha", " beta ", ""]);
        assert!(keys.matching("alpha").is_some());
        assert!(keys.matching("beta").is_some());
        assert!(keys.matching("").is_none());
        assert!(keys.matching("alph").is_none());
        assert!(keys.matching("alphaa").is_none());
        assert!(ApiKeys::new([]).matching("").is_none());
        assert_eq!(keys.matching("beta").map(|a| a.name), Some("OFFNDAT_API_KEYS#2".to_owned()));
    }

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
