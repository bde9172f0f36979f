//! `Idempotency-Key` on create: the same key from the same caller with the same
//! body within 24 hours answers the link the first request created, and creates
//! nothing; the same key with another body is refused; two concurrent requests
//! with one key create one link.

use std::sync::Arc;

use async_trait::async_trait;
use offndat_domain::{Link, Phrase};

use crate::error::ApplicationError;
use crate::generate_link::{GenerateLink, GenerateLinkCommand};
use crate::ports::StoreError;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// A create request's idempotency: who, which key, and a digest of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller's key name: keys are per API key.
    pub actor: String,
    pub key: String,
    /// SHA-256 of the request body in a canonical form.
    pub request_hash: [u8; 32],
}

impl IdempotencyKey {
    /// Whether `key` is usable: 1 to 255 visible ASCII characters.
    pub fn is_valid(key: &str) -> bool {
        !key.is_empty() && key.len() <= MAX_KEY_BYTES && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
    }
}

/// What a claim on a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its last use expired): this request creates.
    Fresh,
    /// A request with the same body created this phrase.
    Replay(Phrase),
    /// The key was used with another body.
    Reused,
}

/// Remembered create requests. `claim` MUST be atomic per (actor, key): of
/// concurrent claims exactly one is `Fresh`; the others wait until it is
/// completed or released and then answer as for a later request.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn claim(&self, key: &IdempotencyKey) -> Result<Claim, StoreError>;

    /// Records the phrase the fresh request created.
    async fn complete(&self, key: &IdempotencyKey, phrase: &Phrase) -> Result<(), StoreError>;

    /// Forgets a fresh claim whose request failed, so a retry runs again.
    async fn release(&self, key: &IdempotencyKey) -> Result<(), StoreError>;
}

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created now.
    New(Link),
    /// Created by an earlier request with the same key and body.
    Replayed(Phrase),
}

impl Created {
    pub fn phrase(&self) -> &Phrase {
        match self {
            Self::New(link) => &link.phrase,
            Self::Replayed(phrase) => phrase,
        }
    }
}

/// Create, with an optional idempotency key.
#[derive(Clone)]
pub struct CreateLink {
    generate: GenerateLink,
    keys: Arc<dyn IdempotencyStore>,
}

impl CreateLink {
    pub fn new(generate: GenerateLink, keys: Arc<dyn IdempotencyStore>) -> Self {
        Self { generate, keys }
    }

    /// Creates the link, or answers what the same request created before.
    /// Failures are not remembered: a retry with the key runs again.
    pub async fn execute(
        &self,
        command: GenerateLinkCommand,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, ApplicationError> {
        let Some(key) = key else {
            return self.generate.execute(command).await.map(Created::New);
        };
        match self.keys.claim(key).await? {
            Claim::Replay(phrase) => return Ok(Created::Replayed(phrase)),
            Claim::Reused => return Err(ApplicationError::IdempotencyKeyReused),
            Claim::Fresh => {}
        }
        match self.generate.execute(command).await {
            Ok(link) => {
                self.keys.complete(key, &link.phrase).await?;
                Ok(Created::New(link))
            }
            Err(error) => {
                // The error is what the caller needs; a failed release only leaves
                // the key claimed (and the store answers a retry as in progress
                // until the claim goes stale).
                let _ = self.keys.release(key).await;
                Err(error)
            }
        }
    }
}
