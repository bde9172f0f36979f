//! API-key authentication: `X-Offnd-Api-Key` must hold one of the configured keys.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `candidate` is one of the keys. Every key is compared, so timing
    /// does not tell which one, or how much of one, matched.
    pub fn accepts(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        self.digests.iter().fold(subtle::Choice::from(0), |found, key| found | key.ct_eq(&digest)).into()
    }
}

/// A random key for a process started without one: 32 bytes, hex.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rejects requests without an accepted key with the contract's 401 problem.
pub async fn require_api_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    let accepted = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|candidate| !candidate.is_empty() && keys.accepts(candidate));
    if accepted { next.run(request).await } else { ApiError::Unauthorized.into_response() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(["alpha", " beta ", ""]);
        assert!(keys.accepts("alpha"));
        assert!(keys.accepts("beta"));
        assert!(!keys.accepts(""));
        assert!(!keys.accepts("alph"));
        assert!(!keys.accepts("alphaa"));
        assert!(!ApiKeys::new([]).accepts(""));
    }

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
