//! Stored API keys: create (the secret is shown once), list, revoke, and the port
//! through which requests are authenticated against them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::actor::{Actor, Role};
use crate::error::ApplicationError;
use crate::ports::{Clock, StoreError};

/// Every generated secret starts with this, so secret scanners and people can tell
/// an offndat key when they see one.
pub const SECRET_PREFIX: &str = "offndat_";

/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 64;

/// The audit actor of changes made with the `offndat-api` command line.
pub const CLI_ACTOR: &str = "cli";

/// The SHA-256 of a secret, which is all that is stored. A fast hash suffices:
/// secrets are 256 random bits, so there is nothing to guess that a slow hash
/// (made for low-entropy passwords) would protect, and every request can check
/// its key with one hash and one map lookup.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new secret: the prefix and 256 random bits from the OS-seeded CSPRNG, hex.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + 64);
    secret.push_str(SECRET_PREFIX);
    for b in bytes {
        secret.push_str(&format!("{b:02x}"));
    }
    secret
}

/// A stored key as listed: never its secret nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Updated lazily (about once a minute per process), not on every request.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub secret_sha256: [u8; 32],
    pub created_at: DateTime<Utc>,
}

/// A key just created, with its secret: the only time the secret is known.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub record: KeyRecord,
    pub secret: String,
}

/// A broken rule of a create-key request, with its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFailure {
    NameInvalid,
    RoleInvalid,
}

impl KeyFailure {
    pub const fn code(self) -> &'static str {
        match self {
            Self::NameInvalid => "Key.NameInvalid",
            Self::RoleInvalid => "Key.RoleInvalid",
        }
    }

    pub const fn message(self) -> &'static str {
        match self {
            Self::NameInvalid => {
                "The key name must be 1 to 64 characters of letters, digits, `.`, `_` and `-`, not `cli` and not \
                 starting with `offndat`."
            }
            Self::RoleInvalid => "The role must be `admin` or `creator`.",
        }
    }
}

/// Whether `name` is a usable key name: what the audit log and URLs can carry
/// without escaping, and none of the names the service acts under itself.
pub fn valid_key_name(name: &str) -> bool {
    (1..=MAX_KEY_NAME_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != CLI_ACTOR
        // Names the service gives itself in the audit log (`OFFNDAT_API_KEYS#n`,
        // `OFFNDAT_BLOCKLIST_FILE`): a stored key must not pose as one.
        && !name.to_ascii_uppercase().starts_with("OFFNDAT")
}

/// Durable storage of keys. Create and revoke write their audit row in the same
/// transaction as the change.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores `key`, audited as done by `actor`. MUST return `StoreError::NameTaken`
    /// (from the unique index) when a key, even a revoked one, has the name.
    async fn create(&self, key: &NewKey, actor: &str) -> Result<KeyRecord, StoreError>;

    /// Every key, revoked ones too, oldest first.
    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes the key `name` at `at`, audited as done by `actor`. `None` when no
    /// key has the name; a key revoked before is returned as it is, unchanged.
    async fn revoke(&self, name: &str, actor: &str, at: DateTime<Utc>) -> Result<Option<KeyRecord>, StoreError>;
}

/// What checking a presented secret against the stored keys found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// An active stored key.
    Valid(Actor),
    /// No active stored key has this secret.
    Unknown,
    /// The secret matches a key known earlier, but the set of keys could not be
    /// refreshed for longer than allowed, so its revocation could have been
    /// missed: refused until the store answers again (fail closed).
    Unverifiable,
}

/// Authenticates requests against the stored keys. Called on every request, so it
/// answers from memory.
pub trait KeyAuthenticator: Send + Sync {
    fn check(&self, secret: &str) -> KeyCheck;
}

/// Create, list and revoke stored keys (admins over HTTP, operators with the CLI).
#[derive(Clone)]
pub struct ManageKeys {
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
}

impl ManageKeys {
    pub fn new(store: Arc<dyn KeyStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Creates a key named `name` with `role` and returns it with its secret.
    pub async fn create(
        &self,
        actor: &str,
        name: Option<&str>,
        role: Option<&str>,
    ) -> Result<CreatedKey, ApplicationError> {
        let name = name.map(str::trim).filter(|n| valid_key_name(n));
        let role = role.and_then(Role::parse);
        let (Some(name), Some(role)) = (name, role) else {
            let mut failures = Vec::new();
            if name.is_none() {
                failures.push(KeyFailure::NameInvalid);
            }
            if role.is_none() {
                failures.push(KeyFailure::RoleInvalid);
            }
            return Err(ApplicationError::KeyValidation(failures));
        };
        let secret = generate_secret();
        let key =
            NewKey { name: name.to_owned(), role, secret_sha256: secret_digest(&secret), created_at: self.clock.now() };
        match self.store.create(&key, actor).await {
            Ok(record) => Ok(CreatedKey { record, secret }),
            Err(StoreError::NameTaken) => Err(ApplicationError::KeyNameTaken),
            Err(error) => Err(error.into()),
        }
    }

    /// Every key, revoked ones too.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, ApplicationError> {
        Ok(self.store.list().await?)
    }

    /// Revokes the key `name`; revoking a revoked key again changes nothing.
    pub async fn revoke(&self, actor: &str, name: &str) -> Result<KeyRecord, ApplicationError> {
        self.store.revoke(name, actor, self.clock.now()).await?.ok_or(ApplicationError::KeyNotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_long_and_distinct() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_ne!(secret_digest(&a), secret_digest(&b));
    }

    #[test]
    fn key_names_are_plain() {
        for ok in ["ci", "team.web-2026_a", &"x".repeat(64)] {
            assert!(valid_key_name(ok), "{ok}");
        }
        for bad in ["", "cli", "has space", "slash/", "é", &"x".repeat(65), "OFFNDAT_BLOCKLIST_FILE", "offndat-admin"]
        {
            assert!(!valid_key_name(bad), "{bad}");
        }
    }

    #[test]
    fn roles_parse_from_their_names() {
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse(Role::Creator.as_str()), Some(Role::Creator));
        assert_eq!(Role::parse("Admin"), None);
    }
}
