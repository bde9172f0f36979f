//! What identifies this deployment to the services it may share with others
//! (Redis): a secret made once per database (`deployment_identity`), mixed with
//! the database's name. Two deployments on different databases, on one server or
//! on two, never share it; every process and replica of one deployment does.
//!
//! From it come the default Redis key prefix (a public digest, `offndat:<12 hex>:`)
//! and the MAC every value cached in Redis carries: HMAC-SHA-256 keyed by the
//! secret, which never leaves PostgreSQL and this process, so a value written by
//! another deployment, or by anyone who can write to Redis but not read the
//! database, is refused rather than served.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// This deployment's identity. `Debug` shows the public id only.
#[derive(Clone)]
pub struct Deployment {
    id: String,
    mac: HmacSha256,
}

impl Deployment {
    /// The identity of `secret` (the `deployment_identity` row) in `database`.
    pub fn new(secret: Uuid, database: &str) -> Self {
        let key = Sha256::new()
            .chain_update(b"offndat deployment key\0")
            .chain_update(secret.as_bytes())
            .chain_update(database.as_bytes())
            .finalize();
        let public = Sha256::new().chain_update(b"offndat deployment id\0").chain_update(key).finalize();
        Self { id: hex(&public[..6]), mac: HmacSha256::new(&key) }
    }

    /// Reads the identity of the database `pool` is connected to. Fails when the
    /// migrations that create it have not run.
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let row = sqlx::query!(r#"SELECT secret, current_database() AS "database!" FROM deployment_identity"#)
            .fetch_one(pool)
            .await?;
        Ok(Self::new(row.secret, &row.database))
    }

    /// A public digest of the identity (12 hex digits): safe to show and log.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Redis key prefix when none is configured: `offndat:<id>:`.
    pub fn default_redis_key_prefix(&self) -> String {
        format!("offndat:{}:", self.id)
    }

    /// The first 128 bits of HMAC-SHA-256 over `parts`, each length-prefixed so
    /// no two different lists of parts share an input.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        let full = self.mac.sign(parts);
        let mut tag = [0; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The Redis key prefix in force: the configured one if set (an operator's
/// choice is honoured as is; values still carry this deployment's MAC), else
/// the one derived from the deployment.
pub fn redis_key_prefix(configured: Option<&str>, deployment: &Deployment) -> String {
    configured.map_or_else(|| deployment.default_redis_key_prefix(), str::to_owned)
}

/// HMAC-SHA-256 keyed once; each signature clones the keyed state.
#[derive(Clone)]
struct HmacSha256(Hmac<Sha256>);

impl HmacSha256 {
    fn new(key: &[u8]) -> Self {
        Self(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length"))
    }

    fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    #[cfg(test)]
    fn sign_raw(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let tag = HmacSha256::new(b"Jefe").sign_raw(b"what do ya want for nothing?");
        assert_eq!(hex(&tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than the block is hashed first.
        let tag = HmacSha256::new(&[0xaa; 131]).sign_raw(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex(&tag), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn identities_differ_by_secret_and_by_database_and_hold_for_both() {
        let secret = Uuid::new_v4();
        let one = Deployment::new(secret, "offndat");
        assert_eq!(one.id(), Deployment::new(secret, "offndat").id(), "stable: replicas and restarts agree");
        assert_eq!(one.mac(&[b"a"]), Deployment::new(secret, "offndat").mac(&[b"a"]));
        let copy = Deployment::new(secret, "offndat_copy");
        let other = Deployment::new(Uuid::new_v4(), "offndat");
        for different in [&copy, &other] {
            assert_ne!(one.id(), different.id());
            assert_ne!(one.mac(&[b"a"]), different.mac(&[b"a"]));
        }
        assert_eq!(one.id().len(), 12);
        assert_eq!(one.default_redis_key_prefix(), format!("offndat:{}:", one.id()));
        assert!(!format!("{one:?}").contains(&hex(secret.as_bytes())), "the secret stays out of Debug");
    }

    #[test]
    fn parts_are_length_prefixed() {
        let deployment = Deployment::new(Uuid::nil(), "db");
        assert_ne!(deployment.mac(&[b"ab", b"c"]), deployment.mac(&[b"a", b"bc"]));
        assert_ne!(deployment.mac(&[b"abc"]), deployment.mac(&[b"ab", b"c"]));
    }

    #[test]
    fn a_configured_prefix_is_honoured() {
        let deployment = Deployment::new(Uuid::nil(), "db");
        assert_eq!(redis_key_prefix(Some("shared:"), &deployment), "shared:");
        assert_eq!(redis_key_prefix(None, &deployment), deployment.default_redis_key_prefix());
    }
}
