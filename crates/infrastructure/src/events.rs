//! Event payloads written to the outbox and published to the broker. Each payload
//! carries a schema `version` so consumers can evolve without guessing.

use chrono::{DateTime, Utc};
use offndat_domain::Link;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The event type (and AMQP routing key) of a created link.
pub const LINK_CREATED: &str = "link.created";

/// Payload of `link.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkCreatedV1 {
    pub version: u32,
    pub link_id: Uuid,
    pub phrase: String,
    pub target_url: String,
    pub language_id: u8,
    pub theme_id: u8,
    pub created_at: DateTime<Utc>,
}

impl From<&Link> for LinkCreatedV1 {
    fn from(link: &Link) -> Self {
        Self {
            version: 1,
            link_id: link.id,
            phrase: link.phrase.to_string(),
            target_url: link.target_url.to_string(),
            language_id: link.language.id(),
            theme_id: link.theme.id(),
            created_at: link.created_at,
        }
    }
}
