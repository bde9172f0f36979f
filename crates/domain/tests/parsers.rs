//! Property tests of the parsers that take outside input: any string either parses
//! into a value that keeps the type's promises, or is refused; none panics.

use offndat_domain::phrase::MAX_PHRASE_CHARS;
use offndat_domain::{Phrase, TargetPolicy, TargetUrl};
use proptest::prelude::*;
use url::Url;

fn base() -> TargetPolicy {
    TargetPolicy::new(Url::parse("https://offnd.at/").expect("base"))
}

/// URL-ish strings: a scheme-like prefix, then anything (ASCII and not).
fn url_like() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["http://", "https://", "HTTP://", "ftp://", "http:", "//", "", "javascript:"]),
        ".{0,80}",
    )
        .prop_map(|(scheme, rest)| format!("{scheme}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn a_phrase_is_refused_or_keeps_its_promises(raw in "\\PC{0,300}|.{0,300}|[\\x00-\\x7f]{0,40}") {
        match Phrase::parse(&raw) {
            Ok(phrase) => {
                prop_assert_eq!(phrase.as_str(), raw.as_str());
                prop_assert!(!raw.trim().is_empty());
                prop_assert!(raw.chars().count() <= MAX_PHRASE_CHARS);
                prop_assert!(!raw.chars().any(|c| c.is_control() || c == '/'));
                prop_assert_eq!(Phrase::check(&raw).ok(), Some(raw.as_str()));
            }
            Err(_) => prop_assert!(Phrase::check(&raw).is_err()),
        }
    }

    #[test]
    fn a_target_url_is_refused_or_normalised_for_good(raw in url_like()) {
        if let Ok(target) = TargetUrl::parse(&raw, &base()) {
            let normalised = target.as_str();
            prop_assert!(normalised.starts_with("http://") || normalised.starts_with("https://"));
            let url = Url::parse(normalised).expect("a URL");
            prop_assert!(url.username().is_empty() && url.password().is_none(), "no user info is accepted");
            // Parsing the stored form again gives the same URL: what the database
            // holds is what was checked.
            let again = TargetUrl::parse(normalised, &base()).expect("a normalised target parses again");
            prop_assert_eq!(again.as_str(), normalised);
            let stored = TargetUrl::from_stored(normalised).expect("stored");
            prop_assert_eq!(stored.as_str(), normalised);
        }
    }

    #[test]
    fn targets_into_this_service_are_always_refused(path in "[a-z0-9/._-]{0,40}") {
        let own = format!("https://offnd.at/{path}");
        prop_assert!(TargetUrl::parse(&own, &base()).is_err());
    }
}
