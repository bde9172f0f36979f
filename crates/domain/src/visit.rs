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

/// `text` cut to at most `max` characters (never inside a character); `None` for
/// blank text.
pub fn bounded_text(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    })
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
    fn text_is_bounded_by_characters() {
        assert_eq!(bounded_text("  ", 5), None);
        assert_eq!(bounded_text("żółw", 3).as_deref(), Some("żół"));
        assert_eq!(bounded_text(&"a".repeat(600), MAX_USER_AGENT_CHARS).map(|s| s.len()), Some(512));
    }
}
