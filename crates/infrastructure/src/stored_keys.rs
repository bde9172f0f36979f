//! The stored API keys as every API process holds them: an in-memory map from
//! secret digest to caller, refreshed by polling one counter in PostgreSQL, so a
//! revocation reaches every replica within one poll interval, with no restart.
//!
//! When PostgreSQL cannot be polled, the last known set keeps working for at
//! most `max_staleness`; after that stored keys are refused with 503 (fail
//! closed: a revocation could have been missed), and keys from
//! `OFFNDAT_API_KEYS` keep working.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use offndat_application::Actor;
use offndat_application::keys::{KeyAuthenticator, KeyCheck, secret_digest};
use tokio_util::sync::CancellationToken;

use crate::postgres::PgKeyStore;

/// How the key set is kept fresh.
#[derive(Debug, Clone, Copy)]
pub struct StoredKeySettings {
    /// How often the change counter is polled.
    pub refresh_interval: Duration,
    /// How long the last known set is trusted while PostgreSQL cannot be polled.
    pub max_staleness: Duration,
    /// How often `last_used_at` is written for the keys used since.
    pub touch_interval: Duration,
}

struct Snapshot {
    generation: i64,
    keys: HashMap<[u8; 32], Actor>,
}

/// The key set of this process; the authenticator every request asks.
pub struct StoredKeys {
    snapshot: RwLock<Arc<Snapshot>>,
    /// When the counter was last read successfully.
    confirmed_at: Mutex<Instant>,
    /// Ids of keys used since `last_used_at` was last written.
    used: Mutex<HashSet<i64>>,
    max_staleness: Duration,
}

impl StoredKeys {
    /// Loads the current key set (at start-up, before serving).
    pub async fn load(store: &PgKeyStore, settings: StoredKeySettings) -> Result<Arc<Self>, sqlx::Error> {
        let keys = Arc::new(Self {
            snapshot: RwLock::new(Arc::new(Snapshot { generation: -1, keys: HashMap::new() })),
            confirmed_at: Mutex::new(Instant::now()),
            used: Mutex::new(HashSet::new()),
            max_staleness: settings.max_staleness,
        });
        keys.refresh(store).await?;
        Ok(keys)
    }

    /// Reads the change counter and, when it moved, the active keys. The counter is
    /// read first: a change committed in between is in the keys read and makes the
    /// next poll reload once more, never the reverse.
    pub async fn refresh(&self, store: &PgKeyStore) -> Result<(), sqlx::Error> {
        let generation = store.generation().await?;
        let current = self.snapshot.read().map(|s| s.generation).unwrap_or(-1);
        if generation != current {
            let active = store.active().await?;
            let keys = active.into_iter().map(|k| (k.secret_sha256, k.actor)).collect();
            if let Ok(mut snapshot) = self.snapshot.write() {
                *snapshot = Arc::new(Snapshot { generation, keys });
            }
            tracing::debug!(generation, "stored API keys reloaded");
        }
        if let Ok(mut at) = self.confirmed_at.lock() {
            *at = Instant::now();
        }
        Ok(())
    }

    /// Writes `last_used_at` for the keys used since the last call.
    pub async fn touch_used(&self, store: &PgKeyStore) -> Result<(), sqlx::Error> {
        let ids: Vec<i64> = match self.used.lock() {
            Ok(mut used) => used.drain().collect(),
            Err(_) => return Ok(()),
        };
        if ids.is_empty() {
            return Ok(());
        }
        store.touch(&ids, Utc::now()).await
    }

    /// Polls until `stop`, writing `last_used_at` now and then and once at the end.
    pub async fn run(self: Arc<Self>, store: PgKeyStore, settings: StoredKeySettings, stop: CancellationToken) {
        let mut poll = tokio::time::interval(settings.refresh_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut touch = tokio::time::interval(settings.touch_interval);
        touch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = poll.tick() => match self.refresh(&store).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("stored API keys are refreshed again");
                    }
                    Ok(()) => {}
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, max_staleness = ?self.max_staleness,
                            "cannot refresh the stored API keys; they are refused once the last refresh is older than max_staleness");
                    }
                    Err(_) => {}
                },
                _ = touch.tick() => if let Err(error) = self.touch_used(&store).await {
                    tracing::debug!(%error, "cannot record API key use; retried later");
                },
            }
        }
        if let Err(error) = self.touch_used(&store).await {
            tracing::debug!(%error, "cannot record API key use at shutdown");
        }
    }
}

impl KeyAuthenticator for StoredKeys {
    fn check(&self, secret: &str) -> KeyCheck {
        let digest = secret_digest(secret);
        // A map lookup by the digest of a 256-bit secret: timing can at most tell
        // something about a digest, which does not help find a secret.
        let Some(actor) = self.snapshot.read().ok().and_then(|s| s.keys.get(&digest).cloned()) else {
            return KeyCheck::Unknown;
        };
        let fresh = self.confirmed_at.lock().map(|at| at.elapsed() <= self.max_staleness).unwrap_or(false);
        if !fresh {
            return KeyCheck::Unverifiable;
        }
        if let (Some(id), Ok(mut used)) = (actor.key_id, self.used.lock()) {
            used.insert(id);
        }
        KeyCheck::Valid(actor)
    }
}
