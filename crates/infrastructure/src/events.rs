//! Event payloads written to the outbox and published to the broker. Each payload
//! carries a schema `version` so consumers can evolve without guessing.

use chrono::{DateTime, Utc};
use offndat_domain::Link;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The event type (and AMQP routing key) of a created link.
pub const LINK_CREATED: &str = "link.created";
/// The event type (and AMQP routing key) of recorded visits.
pub const LINK_VISITED: &str = "link.visited";

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

/// Payload of `link.visited`: the visits one flush of the visit buffer recorded,
/// counted per link. One message per flushed batch (not per visit) keeps the
/// broker far from being the bottleneck at tens of thousands of visits a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkVisitedV1 {
    pub version: u32,
    pub links: Vec<LinkVisits>,
}

/// Visits of one link within a `link.visited` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkVisits {
    pub link_id: Uuid,
    pub visits: u32,
    pub last_visited_at: DateTime<Utc>,
}

/// An event as the worker receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundEvent {
    LinkCreated(LinkCreatedV1),
    LinkVisited(LinkVisitedV1),
}

/// Why a message is not an event the worker understands: such messages are
/// dead-lettered at once, never retried.
#[derive(Debug, thiserror::Error)]
pub enum EventParseError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("unsupported {event_type} version {version}")]
    UnsupportedVersion { event_type: String, version: u64 },
    #[error("invalid {event_type} payload: {source}")]
    InvalidPayload { event_type: String, source: serde_json::Error },
}

impl InboundEvent {
    /// Parses a message body by its event type.
    pub fn parse(event_type: &str, body: &[u8]) -> Result<Self, EventParseError> {
        let invalid = |source| EventParseError::InvalidPayload { event_type: event_type.to_owned(), source };
        let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
        let version = value.get("version").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if !matches!(event_type, LINK_CREATED | LINK_VISITED) {
            return Err(EventParseError::UnknownType(event_type.to_owned()));
        }
        if version != 1 {
            return Err(EventParseError::UnsupportedVersion { event_type: event_type.to_owned(), version });
        }
        match event_type {
            LINK_CREATED => serde_json::from_value(value).map(Self::LinkCreated).map_err(invalid),
            _ => serde_json::from_value(value).map(Self::LinkVisited).map_err(invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_events_and_refuses_the_rest() {
        let visited = br#"{"version":1,"links":[{"linkId":"0195f6a6-7b1e-7000-8000-000000000001","visits":3,"lastVisitedAt":"2026-11-21T10:00:00Z"}]}"#;
        let InboundEvent::LinkVisited(event) = InboundEvent::parse(LINK_VISITED, visited).expect("valid") else {
            panic!("wrong variant");
        };
        assert_eq!(event.links[0].visits, 3);
        assert!(matches!(InboundEvent::parse("link.deleted", visited), Err(EventParseError::UnknownType(_))));
        assert!(matches!(InboundEvent::parse(LINK_VISITED, b"{not json"), Err(EventParseError::InvalidPayload { .. })));
        assert!(matches!(
            InboundEvent::parse(LINK_VISITED, br#"{"version":2,"links":[]}"#),
            Err(EventParseError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(matches!(
            InboundEvent::parse(LINK_VISITED, br#"{"version":1,"links":[{"linkId":"x"}]}"#),
            Err(EventParseError::InvalidPayload { .. })
        ));
    }
}
