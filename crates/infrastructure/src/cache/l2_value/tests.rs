use proptest::prelude::*;

use super::*;

fn deployment() -> Deployment {
    Deployment::new(Uuid::from_u128(7), "offndat")
}

fn target(location: &'static [u8]) -> RedirectTarget {
    RedirectTarget { link_id: Uuid::now_v7(), location: Bytes::from_static(location), state: StoredState::default() }
}

const PHRASE: &str = "wildly-grumpy-walrus";

#[test]
fn values_round_trip() {
    let us = deployment();
    let plain = target(b"https://example.com/a?b=c");
    assert_eq!(decode(&us, PHRASE, &encode(&us, PHRASE, &plain)), Ok(Some(plain.clone())));
    assert_eq!(decode(&us, PHRASE, &encode_absent(&us, PHRASE)), Ok(None));
    let expires_at = DateTime::<Utc>::from_timestamp_millis(1_795_000_000_123);
    let stated = RedirectTarget {
        state: StoredState { deleted: false, disabled: true, limit_reached: true, expires_at },
        ..plain.clone()
    };
    assert_eq!(decode(&us, PHRASE, &encode(&us, PHRASE, &stated)), Ok(Some(stated.clone())));
    let deleted = RedirectTarget::deleted(Uuid::now_v7());
    assert_eq!(decode(&us, PHRASE, &encode(&us, PHRASE, &deleted)), Ok(Some(deleted)));
    let value = String::from_utf8(encode(&us, PHRASE, &plain)).expect("ascii");
    assert!(value.starts_with("3:") && value.ends_with(":-:-:https://example.com/a?b=c"), "{value}");
}

#[test]
fn another_deployments_values_are_foreign_even_for_the_same_link() {
    let (us, them) = (deployment(), Deployment::new(Uuid::from_u128(8), "offndat"));
    let same_server_other_database = Deployment::new(Uuid::from_u128(7), "offndat_staging");
    let link = target(b"https://example.com/theirs");
    for other in [&them, &same_server_other_database] {
        assert_eq!(decode(&us, PHRASE, &encode(other, PHRASE, &link)), Err(Rejection::Foreign));
        assert_eq!(decode(&us, PHRASE, &encode_absent(other, PHRASE)), Err(Rejection::Foreign), "a foreign 404");
    }
}

#[test]
fn a_value_is_bound_to_its_phrase() {
    let us = deployment();
    let value = encode(&us, "other-phrase-here", &target(b"https://example.com/"));
    assert_eq!(decode(&us, PHRASE, &value), Err(Rejection::Foreign), "copied under another key");
}

#[test]
fn older_formats_and_strangers_are_refused() {
    let us = deployment();
    let id = "0195f6a6-7b1e-7000-8000-000000000001";
    for value in [
        String::new(),
        "garbage".to_owned(),
        "2:-".to_owned(),
        format!("2:{id}:-:-:https://example.com/"),
        format!("1:{id}:https://example.com/"),
        "3:".to_owned(),
        "3:-".to_owned(),
        format!("3:{}", "0".repeat(32)),
        format!("3:{}-", "0".repeat(32)),
    ] {
        assert_eq!(decode(&us, PHRASE, value.as_bytes()), Err(Rejection::Format), "{value:?}");
    }
    // Well formed, but no MAC of ours: forged, or changed after it was written.
    let mut forged = encode(&us, PHRASE, &target(b"https://example.com/"));
    let at = forged.len() - 1;
    forged[at] = b'x';
    assert_eq!(decode(&us, PHRASE, &forged), Err(Rejection::Foreign));
    let mut injected = encode(&us, PHRASE, &target(b"https://example.com/"));
    injected.extend_from_slice(b" \r\nSet-Cookie: x");
    assert_eq!(decode(&us, PHRASE, &injected), Err(Rejection::Foreign));
}

#[test]
fn authenticated_values_are_still_validated_like_a_target_from_postgresql() {
    // Sealed with the right MAC, as a bug or a leaked secret would: the content
    // is checked all the same.
    let us = deployment();
    let id = "0195f6a6-7b1e-7000-8000-000000000001";
    let long = format!("{id}:-:-:https://example.com/{}", "a".repeat(4096));
    for body in [
        format!("{id}:Q:-:https://example.com/"),
        format!("{id}:XX:-:https://example.com/"),
        format!("{id}:-:soon:https://example.com/"),
        format!("{id}:-: 5:https://example.com/"),
        format!("{id}:-:+5:https://example.com/"),
        format!("{id}:-:99999999999999999999:https://example.com/"),
        format!("{id}:-:-:"),
        format!("{id}:D:-:https://example.com/"),
        format!("{id}:-:-:https://example.com/a\r\nSet-Cookie: x"),
        format!("{id}:-:-:https://example.com/a b"),
        format!("{id}:-:-:https://exa\tmple.com/"),
        format!("{id}:-:-:javascript:alert(1)"),
        format!("{id}:-:-:ftp://example.com/"),
        format!("{id}:-:-:/relative"),
        format!("{id}:-:-:https://user:pw@example.com/"),
        format!("{id}:-:-:https:"),
        format!("{id}:-:-:https://example.com/\u{e9}"),
        long,
        "not-a-uuid-at-all-not-a-uuid-at-al:-:-:https://example.com/".to_owned(),
        format!("{id}-:-:https://example.com/"),
        String::new(),
    ] {
        let value = sealed(&us, PHRASE, body.as_bytes());
        assert_eq!(decode(&us, PHRASE, &value), Err(Rejection::Invalid), "{body:?}");
    }
    // What is served is the target's normalised form, as from PostgreSQL.
    let value = sealed(&us, PHRASE, format!("{id}:-:-:HTTPS://EXAMPLE.com").as_bytes());
    let served = decode(&us, PHRASE, &value).expect("valid").expect("a link");
    assert_eq!(&served.location[..], b"https://example.com/");
}

/// Any state `encode` may be given.
fn state() -> impl Strategy<Value = StoredState> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(-8_000_000_000_000_000i64..8_000_000_000_000_000),
    )
        .prop_map(|(deleted, disabled, limit_reached, millis)| StoredState {
            deleted,
            disabled,
            limit_reached,
            expires_at: millis.and_then(DateTime::<Utc>::from_timestamp_millis),
        })
}

/// Targets as PostgreSQL hands them out: normalised, valid.
fn location() -> impl Strategy<Value = String> {
    (prop::sample::select(vec!["http://", "https://", "HTTPS://"]), "[a-z0-9.-]{1,20}", "[ -~\u{80}-\u{3000}]{0,60}")
        .prop_filter_map("a valid target", |(scheme, host, rest)| {
            TargetUrl::from_stored(&format!("{scheme}{host}/{rest}")).ok().map(|t| t.as_str().to_owned())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_link_round_trips(
        id in any::<u128>(),
        state in state(),
        location in location(),
        phrase in "\\PC{1,40}",
    ) {
        let us = deployment();
        let target = if state.deleted {
            RedirectTarget { link_id: Uuid::from_u128(id), location: Bytes::new(), state }
        } else {
            RedirectTarget { link_id: Uuid::from_u128(id), location: Bytes::from(location), state }
        };
        prop_assert_eq!(decode(&us, &phrase, &encode(&us, &phrase, &target)), Ok(Some(target)));
        prop_assert_eq!(decode(&us, &phrase, &encode_absent(&us, &phrase)), Ok(None));
    }

    #[test]
    fn no_bytes_panic_the_decoder_nor_pass_without_the_mac(
        value in prop::collection::vec(any::<u8>(), 0..200),
        tail in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let us = deployment();
        prop_assert!(decode(&us, PHRASE, &value).is_err());
        let mut versioned = b"3:".to_vec();
        versioned.extend_from_slice(&value);
        prop_assert!(decode(&us, PHRASE, &versioned).is_err());
        let mut shaped = format!("3:{}:0195f6a6-7b1e-7000-8000-000000000001:", "0".repeat(32)).into_bytes();
        shaped.extend_from_slice(&tail);
        prop_assert!(decode(&us, PHRASE, &shaped).is_err());
    }

    #[test]
    fn authenticated_bodies_never_panic_and_only_valid_targets_pass(
        flags in "[-DXLQ]{0,4}",
        expires in prop::sample::select(vec!["-", "0", "-1", "1795000000123", "x", "", "99999999999999999999", "+1"]),
        location in prop_oneof![prop::collection::vec(any::<u8>(), 0..80), location().prop_map(String::into_bytes)],
        raw in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let us = deployment();
        let mut body = format!("0195f6a6-7b1e-7000-8000-000000000001:{flags}:{expires}:").into_bytes();
        body.extend_from_slice(&location);
        for body in [body, raw] {
            if let Ok(Some(target)) = decode(&us, PHRASE, &sealed(&us, PHRASE, &body)) {
                if target.state.deleted {
                    prop_assert!(target.location.is_empty());
                } else {
                    let text = std::str::from_utf8(&target.location).expect("ASCII");
                    prop_assert!(text.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                    prop_assert_eq!(TargetUrl::from_stored(text).map(|t| t.as_str().to_owned()), Ok(text.to_owned()));
                }
            }
        }
    }
}
