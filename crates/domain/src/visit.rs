//! Visits: what is kept of a redirect, and the privacy rules for keeping it.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Longest user agent kept, in characters (the column's limit).
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest referrer kept, in characters (the column's limit).
pub const MAX_REFERRER_CHARS: usize = 2048;

/// A visit about to be recorded, already in its stored form. Whether it came from
/// a crawler is decided when it is written, off the redirect's hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVisit {
    pub link_id: Uuid,
    pub visited_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
}

/// Cuts an IP to what identifies a network rather than a person: IPv4 keeps /24
/// (last octet zeroed), IPv6 keeps /48.
pub fn anonymize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => anonymize_ip(IpAddr::V4(v4)),
            None => {
                let bits = u128::from(v6) & !((1u128 << 80) - 1);
                IpAddr::from(bits.to_be_bytes())
            }
        },
    }
}

/// Raw header bytes in their stored form: decoded (invalid UTF-8 replaced), cut
/// to at most `max` characters, `None` when blank.
pub fn stored_text(bytes: &[u8], max: usize) -> Option<String> {
    bounded_text(&String::from_utf8_lossy(bytes), max)
}

/// `text` without surrounding whitespace, cut to at most `max` characters (never
/// inside a character); `None` for blank text. Whitespace left at the end by the
/// cut goes too, so the result depends only on [`stored_span`] of the input.
pub fn bounded_text(text: &str, max: usize) -> Option<String> {
    let text = text.trim_start();
    let cut = match text.char_indices().nth(max) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    let cut = cut.trim_end();
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// The part of raw header bytes that their stored form ([`stored_text`] with
/// the same `max`) is made of: leading whitespace skipped, then at most `max`
/// characters, an invalid UTF-8 sequence counting as the one character that
/// replaces it. At most `max` bytes of ASCII, `4 × max` at worst, however long
/// the header: what is kept of a visit until it is stored is cut to this, so a
/// flood of huge headers cannot grow memory. Borrowed, never copied.
pub fn stored_span(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        // Nothing to cut; leading whitespace costs at most `max` bytes.
        return bytes;
    }
    let mut start = None;
    let mut chars = 0;
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        // Each valid character, then the invalid sequence (one U+FFFD), if any.
        let valid = chunk.valid().char_indices().map(|(i, c)| (offset + i, c.is_whitespace()));
        let invalid_at = offset + chunk.valid().len();
        let invalid = (!chunk.invalid().is_empty()).then_some((invalid_at, false));
        for (at, whitespace) in valid.chain(invalid) {
            let from = match start {
                Some(from) => from,
                None if whitespace => continue,
                None => *start.insert(at),
            };
            if chars == max {
                return &bytes[from..at];
            }
            chars += 1;
        }
        offset = invalid_at + chunk.invalid().len();
    }
    &bytes[start.unwrap_or(bytes.len())..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv4_loses_its_last_octet() {
        assert_eq!(anonymize_ip(ip("203.0.113.77")), ip("203.0.113.0"));
    }

    #[test]
    fn ipv6_is_cut_to_48_bits() {
        assert_eq!(anonymize_ip(ip("2001:db8:abcd:12:34:56:78:9a")), ip("2001:db8:abcd::"));
        assert_eq!(anonymize_ip(ip("::ffff:198.51.100.9")), ip("198.51.100.0"));
    }

    #[test]
    fn the_stored_span_is_what_the_stored_form_is_made_of() {
        let long = format!("  {}", "a".repeat(600));
        assert_eq!(stored_span(long.as_bytes(), MAX_USER_AGENT_CHARS), "a".repeat(512).as_bytes());
        assert_eq!(stored_span(b"short", 512), b"short");
        assert_eq!(stored_span("żółwie".as_bytes(), 3), "żół".as_bytes());
        assert_eq!(stored_span(b"\xff\xfeabc", 3), b"\xff\xfea");
        assert_eq!(stored_span(b"     ", 3), b"");
        let sixteen_kib = "x".repeat(16 * 1024);
        assert_eq!(stored_span(sixteen_kib.as_bytes(), MAX_REFERRER_CHARS).len(), MAX_REFERRER_CHARS);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_stored_span_keeps_the_stored_form_and_its_bound(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(vec![b' ', b'\t', b'a', 0xc2, 0xa0, 0xe3, 0x80, 0xf0, 0x9f]),
                ],
                0..64,
            ),
            max in 0usize..20,
        ) {
            let span = stored_span(&bytes, max);
            proptest::prop_assert_eq!(stored_text(span, max), stored_text(&bytes, max));
            proptest::prop_assert!(span.len() <= max || (bytes.len() > max && span.len() <= 4 * max));
            proptest::prop_assert!(span.len() <= bytes.len());
        }
    }

    #[test]
    fn text_is_bounded_by_characters() {
        assert_eq!(bounded_text("  ", 5), None);
        assert_eq!(bounded_text("żółw", 3).as_deref(), Some("żół"));
        assert_eq!(bounded_text(&"a".repeat(600), MAX_USER_AGENT_CHARS).map(|s| s.len()), Some(512));
        assert_eq!(bounded_text("  ab  cd", 3).as_deref(), Some("ab"), "no whitespace left by the cut");
    }
}
