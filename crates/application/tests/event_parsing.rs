//! Property tests of event decoding, the worker's outside input: no body or type
//! makes it panic, and every event the API writes decodes to itself.

use chrono::{DateTime, TimeZone, Utc};
use offndat_application::events::{
    Event, HourCount, HourTally, LINK_CHANGED, LINK_CREATED, LINK_VISITED, LinkChange, LinkChangedV1, LinkCreatedV1,
    LinkTally, LinkVisitedV1, LinkVisitedV2, LinkVisits, RecentVisit, ValueCount,
};
use proptest::prelude::*;
use uuid::Uuid;

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).single().expect("in range"))
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn counts() -> impl Strategy<Value = Vec<ValueCount>> {
    prop::collection::vec((".{0,20}", any::<u64>(), any::<u64>()), 0..3)
        .prop_map(|v| v.into_iter().map(|(value, human, bot)| ValueCount { value, human, bot }).collect())
}

fn hour() -> impl Strategy<Value = HourTally> {
    (time(), any::<u64>(), any::<u64>(), counts(), counts(), counts(), counts()).prop_map(
        |(hour, human, bot, referrers, browsers, operating_systems, devices)| HourTally {
            hour,
            human,
            bot,
            referrers,
            browsers,
            operating_systems,
            devices,
        },
    )
}

fn recent() -> impl Strategy<Value = RecentVisit> {
    (time(), prop::option::of(".{0,15}"), prop::option::of(".{0,30}"), prop::option::of(".{0,30}"), any::<bool>())
        .prop_map(|(visited_at, ip_address, user_agent, referrer, bot)| RecentVisit {
            visited_at,
            ip_address,
            user_agent,
            referrer,
            bot,
        })
}

fn change() -> impl Strategy<Value = LinkChange> {
    prop::sample::select(vec![
        LinkChange::Edited,
        LinkChange::Disabled,
        LinkChange::Enabled,
        LinkChange::Deleted,
        LinkChange::VisitsErased,
        LinkChange::VisitLimitReached,
    ])
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (uuid(), ".{1,40}", change(), time()).prop_map(|(link_id, phrase, change, changed_at)| {
            Event::LinkChanged(LinkChangedV1 { version: 1, link_id, phrase, change, changed_at })
        }),
        (uuid(), ".{1,40}", ".{1,60}", any::<u8>(), any::<u8>(), time()).prop_map(
            |(link_id, phrase, target_url, language_id, theme_id, created_at)| {
                Event::LinkCreated(LinkCreatedV1 {
                    version: 1,
                    link_id,
                    phrase,
                    target_url,
                    language_id,
                    theme_id,
                    created_at,
                })
            }
        ),
        prop::collection::vec((uuid(), any::<u32>(), time()), 0..4).prop_map(|links| {
            Event::LinkVisitedV1(LinkVisitedV1 {
                version: 1,
                links: links
                    .into_iter()
                    .map(|(link_id, visits, last_visited_at)| LinkVisits { link_id, visits, last_visited_at })
                    .collect(),
            })
        }),
        (
            prop::collection::vec(
                (uuid(), prop::collection::vec(hour(), 0..3), prop::collection::vec(recent(), 0..3)),
                0..3
            ),
            prop::collection::vec((time(), any::<u64>()), 0..3),
        )
            .prop_map(|(links, orphans)| {
                Event::LinkVisited(LinkVisitedV2 {
                    version: 2,
                    links: links
                        .into_iter()
                        .map(|(link_id, hours, recent)| LinkTally { link_id, hours, recent })
                        .collect(),
                    orphans: orphans.into_iter().map(|(hour, visits)| HourCount { hour, visits }).collect(),
                })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_event_written_decodes_to_itself(event in event()) {
        let body = serde_json::to_vec(&event.payload()).expect("json");
        let decoded = Event::parse(event.event_type(), &body).expect("decodes");
        prop_assert_eq!(&decoded, &event);
        let text = event.payload_text();
        prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&text).expect("json"), event.payload());
        prop_assert_eq!(Event::parse(event.event_type(), text.as_bytes()).expect("decodes"), event);
    }

    #[test]
    fn no_body_makes_decoding_panic(
        event_type in prop::sample::select(vec![LINK_CREATED, LINK_VISITED, LINK_CHANGED, "link.unknown", ""]),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let _ = Event::parse(event_type, &body);
    }

    /// Well-formed JSON with a field changed or dropped: refused or decoded, never a panic,
    /// and a wrong version is never read as another.
    #[test]
    fn damaged_events_are_refused_not_misread(event in event(), version in any::<i64>(), drop_field in 0usize..8) {
        let mut payload = event.payload();
        let object = payload.as_object_mut().expect("an object");
        object.insert("version".into(), version.into());
        if let Some(key) = object.keys().nth(drop_field).cloned() {
            object.remove(&key);
        }
        let body = serde_json::to_vec(&payload).expect("json");
        if let Ok(decoded) = Event::parse(event.event_type(), &body) {
            let expected_version = match decoded {
                Event::LinkCreated(_) | Event::LinkVisitedV1(_) | Event::LinkChanged(_) => 1,
                Event::LinkVisited(_) => 2,
            };
            prop_assert_eq!(version, expected_version);
        }
    }
}
