//! Events: what the API tells the worker, through the outbox and RabbitMQ. One
//! typed enum; the event type (the AMQP routing key) follows from the variant,
//! and every payload carries a schema `version` so consumers evolve without
//! guessing.

use chrono::{DateTime, Utc};
use offndat_domain::Link;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::visit_tally::VisitTally;

/// The event type (and AMQP routing key) of a created link.
pub const LINK_CREATED: &str = "link.created";
/// The event type (and AMQP routing key) of counted visits.
pub const LINK_VISITED: &str = "link.visited";
/// The event type (and AMQP routing key) of a link edited, disabled, deleted,
/// its visits erased or its visit limit reached: every API process evicts the
/// phrase from its in-process cache.
pub const LINK_CHANGED: &str = "link.changed";

/// Every event, in every version a consumer still accepts. Serialised as its
/// payload alone (the type travels beside it); parsed by type with `parse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Event {
    LinkCreated(LinkCreatedV1),
    /// Visits counted per link only (written by releases before rollups; still
    /// accepted while old replicas drain).
    LinkVisitedV1(LinkVisitedV1),
    /// Visits aggregated by one flush of an API process.
    LinkVisited(LinkVisitedV2),
    /// A link changed; caches must forget its phrase.
    LinkChanged(LinkChangedV1),
}

impl Event {
    /// The event type, which is also the routing key.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::LinkCreated(_) => LINK_CREATED,
            Self::LinkVisitedV1(_) | Self::LinkVisited(_) => LINK_VISITED,
            Self::LinkChanged(_) => LINK_CHANGED,
        }
    }

    /// The JSON body.
    pub fn payload(&self) -> serde_json::Value {
        // Serialising these plain structs cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The JSON body as text: what `payload` holds, for bodies large enough that
    /// a `serde_json::Value` tree (several times the text) is worth skipping.
    pub fn payload_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned())
    }

    /// Parses a message body by its event type and schema version.
    pub fn parse(event_type: &str, body: &[u8]) -> Result<Self, EventParseError> {
        let invalid = |source| EventParseError::InvalidPayload { event_type: event_type.to_owned(), source };
        if !matches!(event_type, LINK_CREATED | LINK_VISITED | LINK_CHANGED) {
            return Err(EventParseError::UnknownType(event_type.to_owned()));
        }
        let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
        let version = value.get("version").and_then(serde_json::Value::as_u64).unwrap_or(0);
        match (event_type, version) {
            (LINK_CREATED, 1) => serde_json::from_value(value).map(Self::LinkCreated).map_err(invalid),
            (LINK_VISITED, 1) => serde_json::from_value(value).map(Self::LinkVisitedV1).map_err(invalid),
            (LINK_VISITED, 2) => serde_json::from_value(value).map(Self::LinkVisited).map_err(invalid),
            (LINK_CHANGED, 1) => serde_json::from_value(value).map(Self::LinkChanged).map_err(invalid),
            _ => Err(EventParseError::UnsupportedVersion { event_type: event_type.to_owned(), version }),
        }
    }
}

impl Event {
    /// Refuses an event that claims more than `max_visits` visits for one link (or
    /// orphan visits for one hour): no API writes that, so it is a forgery or a
    /// bug, and applying it would corrupt totals for good.
    pub fn check_bounds(&self, max_visits: u64) -> Result<(), String> {
        let over = |what: &str, n: Option<u64>| match n {
            Some(n) if n <= max_visits => Ok(()),
            Some(n) => Err(format!("{what} claims {n} visits, over the limit of {max_visits}")),
            None => Err(format!("{what} claims more visits than a 64-bit counter holds")),
        };
        match self {
            Self::LinkCreated(_) | Self::LinkChanged(_) => Ok(()),
            Self::LinkVisitedV1(e) => {
                let mut per_link: std::collections::HashMap<Uuid, u64> = std::collections::HashMap::new();
                for link in &e.links {
                    *per_link.entry(link.link_id).or_default() += u64::from(link.visits);
                }
                per_link.iter().try_for_each(|(id, n)| over(&format!("link {id}"), Some(*n)))
            }
            Self::LinkVisited(e) => {
                let mut per_link: std::collections::HashMap<Uuid, Option<u64>> = std::collections::HashMap::new();
                for link in &e.links {
                    let entry = per_link.entry(link.link_id).or_insert(Some(0));
                    for hour in &link.hours {
                        *entry = entry.and_then(|n| n.checked_add(hour.human)?.checked_add(hour.bot));
                    }
                }
                per_link.iter().try_for_each(|(id, n)| over(&format!("link {id}"), *n))?;
                let mut per_hour: std::collections::BTreeMap<DateTime<Utc>, Option<u64>> = Default::default();
                for orphan in &e.orphans {
                    let entry = per_hour.entry(orphan.hour).or_insert(Some(0));
                    *entry = entry.and_then(|n| n.checked_add(orphan.visits));
                }
                per_hour.iter().try_for_each(|(hour, n)| over(&format!("orphans of {hour}"), *n))
            }
        }
    }
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

/// What happened to a link in a `link.changed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkChange {
    Edited,
    Disabled,
    Enabled,
    Deleted,
    VisitsErased,
    VisitLimitReached,
}

impl LinkChange {
    /// The audit log's action for this change.
    pub fn audit_action(self) -> &'static str {
        match self {
            Self::Edited => "link.edited",
            Self::Disabled => "link.disabled",
            Self::Enabled => "link.enabled",
            Self::Deleted => "link.deleted",
            Self::VisitsErased => "link.visits_erased",
            Self::VisitLimitReached => "link.visit_limit_reached",
        }
    }
}

/// Payload of `link.changed` version 1. Carries no target: a consumer that needs
/// the link reads it, so a late message never brings back an old value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkChangedV1 {
    pub version: u32,
    pub link_id: Uuid,
    pub phrase: String,
    pub change: LinkChange,
    pub changed_at: DateTime<Utc>,
}

/// Payload of `link.visited` version 1: visits counted per link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkVisitedV1 {
    pub version: u32,
    pub links: Vec<LinkVisits>,
}

/// Visits of one link within a `link.visited` version 1 message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkVisits {
    pub link_id: Uuid,
    pub visits: u32,
    pub last_visited_at: DateTime<Utc>,
}

/// Payload of `link.visited` version 2: what one flush of an API process
/// counted. Per link, per UTC hour: human and bot visits and their breakdown by
/// referrer host, browser, OS and device class; the link's newest visits; and
/// the hour's orphan visits (unknown phrases). Its size grows with the distinct
/// links and values of one flush window, never with the visit rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkVisitedV2 {
    pub version: u32,
    pub links: Vec<LinkTally>,
    #[serde(default)]
    pub orphans: Vec<HourCount>,
}

/// One link's visits in a flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkTally {
    pub link_id: Uuid,
    pub hours: Vec<HourTally>,
    /// The newest visits of the window, newest first, at most `RECENT_VISITS`.
    pub recent: Vec<RecentVisit>,
}

/// One hour of one link's visits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourTally {
    /// The start of the UTC hour.
    pub hour: DateTime<Utc>,
    pub human: u64,
    pub bot: u64,
    pub referrers: Vec<ValueCount>,
    pub browsers: Vec<ValueCount>,
    pub operating_systems: Vec<ValueCount>,
    pub devices: Vec<ValueCount>,
}

/// Visits of one value of a dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueCount {
    pub value: String,
    pub human: u64,
    pub bot: u64,
}

/// A visit in its stored form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentVisit {
    pub visited_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
    pub bot: bool,
}

/// Visits in one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub visits: u64,
}

impl LinkVisitedV2 {
    /// The tally this event carries.
    pub fn tally(&self) -> VisitTally {
        VisitTally::from_event(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_claiming_too_many_visits_are_refused() {
        let hour = DateTime::from_timestamp(3600, 0).expect("time");
        let tally = |human, bot| HourTally {
            hour,
            human,
            bot,
            referrers: vec![],
            browsers: vec![],
            operating_systems: vec![],
            devices: vec![],
        };
        let link = Uuid::from_u128(1);
        let event = |hours: Vec<HourTally>| {
            Event::LinkVisited(LinkVisitedV2 {
                version: 2,
                links: vec![LinkTally { link_id: link, hours, recent: vec![] }],
                orphans: vec![HourCount { hour, visits: 5 }],
            })
        };
        assert_eq!(event(vec![tally(6, 4)]).check_bounds(10), Ok(()));
        assert_eq!(
            event(vec![tally(6, 4), tally(1, 0)]).check_bounds(10),
            Err(format!("link {link} claims 11 visits, over the limit of 10"))
        );
        assert!(event(vec![tally(u64::MAX, 1)]).check_bounds(u64::MAX).is_err(), "an overflow is refused");
        assert_eq!(
            event(vec![]).check_bounds(4),
            Err("orphans of 1970-01-01 01:00:00 UTC claims 5 visits, over the limit of 4".to_owned())
        );
    }

    #[test]
    fn parses_known_events_and_refuses_the_rest() {
        let v1 = br#"{"version":1,"links":[{"linkId":"0195f6a6-7b1e-7000-8000-000000000001","visits":3,"lastVisitedAt":"2026-11-21T10:00:00Z"}]}"#;
        let Event::LinkVisitedV1(event) = Event::parse(LINK_VISITED, v1).expect("valid") else {
            panic!("wrong variant");
        };
        assert_eq!(event.links[0].visits, 3);
        let v2 = br#"{"version":2,"links":[{"linkId":"0195f6a6-7b1e-7000-8000-000000000001","hours":[{"hour":"2026-11-21T10:00:00Z","human":2,"bot":1,"referrers":[{"value":"","human":2,"bot":1}],"browsers":[],"operatingSystems":[],"devices":[]}],"recent":[]}]}"#;
        let Event::LinkVisited(event) = Event::parse(LINK_VISITED, v2).expect("valid") else {
            panic!("wrong variant");
        };
        assert_eq!((event.links[0].hours[0].human, event.links[0].hours[0].bot), (2, 1));
        assert!(event.orphans.is_empty());
        assert!(matches!(Event::parse("link.deleted", v1), Err(EventParseError::UnknownType(_))));
        let changed = br#"{"version":1,"linkId":"0195f6a6-7b1e-7000-8000-000000000001","phrase":"a-b-c","change":"visits-erased","changedAt":"2026-11-21T10:00:00Z"}"#;
        let Event::LinkChanged(event) = Event::parse(LINK_CHANGED, changed).expect("valid") else {
            panic!("wrong variant");
        };
        assert_eq!((event.phrase.as_str(), event.change), ("a-b-c", LinkChange::VisitsErased));
        assert!(matches!(Event::parse(LINK_VISITED, b"{not json"), Err(EventParseError::InvalidPayload { .. })));
        assert!(matches!(
            Event::parse(LINK_VISITED, br#"{"version":3,"links":[]}"#),
            Err(EventParseError::UnsupportedVersion { version: 3, .. })
        ));
        assert!(matches!(
            Event::parse(LINK_VISITED, br#"{"version":1,"links":[{"linkId":"x"}]}"#),
            Err(EventParseError::InvalidPayload { .. })
        ));
    }

    #[test]
    fn the_type_follows_from_the_variant_and_round_trips() {
        let event = Event::LinkVisited(LinkVisitedV2 { version: 2, links: vec![], orphans: vec![] });
        assert_eq!(event.event_type(), LINK_VISITED);
        let body = serde_json::to_vec(&event.payload()).expect("json");
        assert_eq!(Event::parse(event.event_type(), &body).expect("parses"), event);
    }
}
