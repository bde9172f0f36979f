//! Who visited: the classes a visit is counted under in the rollups (bot or human,
//! browser and OS family, device class, referrer host).

use std::fmt;

/// The kind of device a user agent runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceClass {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
}

impl DeviceClass {
    /// The name stored in rollups and shown in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Mobile => "mobile",
            Self::Tablet => "tablet",
            Self::Bot => "bot",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user agent says of its visitor. Bots are counted and flagged, never
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserAgentClass {
    pub bot: bool,
    /// Browser family, e.g. `Chrome`, `Firefox`, `Googlebot`; `Other` when unknown.
    pub browser: String,
    /// OS family, e.g. `Windows`, `iOS`, `Android`; `Other` when unknown.
    pub os: String,
    pub device: DeviceClass,
}

impl UserAgentClass {
    /// The class of a visit that sent no user agent.
    pub fn unknown() -> Self {
        Self { bot: false, browser: OTHER.to_owned(), os: OTHER.to_owned(), device: DeviceClass::Other }
    }
}

/// The family name for anything not recognised.
pub const OTHER: &str = "Other";

/// A breakdown of visits in the rollups. Every visit is counted exactly once in
/// each dimension, so the rows of any one dimension sum to the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// The referrer's host, lower-case; empty when there was no (usable) referrer.
    ReferrerHost,
    Browser,
    Os,
    Device,
}

impl Dimension {
    pub const ALL: [Self; 4] = [Self::ReferrerHost, Self::Browser, Self::Os, Self::Device];

    /// The stored id (the `dimension` column).
    pub fn id(self) -> i16 {
        match self {
            Self::ReferrerHost => 0,
            Self::Browser => 1,
            Self::Os => 2,
            Self::Device => 3,
        }
    }

    pub fn from_id(id: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.id() == id)
    }
}

/// Longest referrer host kept (a DNS name is at most 253 characters).
pub const MAX_HOST_BYTES: usize = 253;

/// The host of a referrer URL as raw bytes, without scheme, credentials, port,
/// path, query or fragment; `None` when there is none. Works on bytes so the
/// redirect path can call it without decoding; case is folded later.
pub fn referrer_host(referrer: &[u8]) -> Option<&[u8]> {
    let after_scheme = match find(referrer, b"://") {
        Some(at) => &referrer[at + 3..],
        None => return None,
    };
    let authority_end = after_scheme.iter().position(|b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let host_port = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if host_port.first() == Some(&b'[') {
        // An IPv6 literal keeps its brackets; its colons are not a port.
        match host_port.iter().position(|&b| b == b']') {
            Some(end) => &host_port[..=end],
            None => host_port,
        }
    } else {
        match host_port.iter().position(|&b| b == b':') {
            Some(colon) => &host_port[..colon],
            None => host_port,
        }
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_BYTES || host.iter().any(|b| b.is_ascii_whitespace() || *b < 0x20) {
        return None;
    }
    Some(host)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    // Schemes are short: only the first few bytes can hold `://`.
    haystack.windows(needle.len()).take(32).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Option<&str> {
        referrer_host(s.as_bytes()).map(|h| std::str::from_utf8(h).expect("utf-8"))
    }

    #[test]
    fn hosts_are_cut_out_of_referrers() {
        assert_eq!(host("https://news.example/a/b?c#d"), Some("news.example"));
        assert_eq!(host("http://user:pw@News.Example:8080/"), Some("News.Example"));
        assert_eq!(host("https://[2001:db8::1]:443/x"), Some("[2001:db8::1]"));
        assert_eq!(host("https://example.com."), Some("example.com"));
        assert_eq!(host("android-app://com.google.android.gm/"), Some("com.google.android.gm"));
        assert_eq!(host("https://x.example?q=1"), Some("x.example"));
    }

    #[test]
    fn unusable_referrers_have_no_host() {
        assert_eq!(host(""), None);
        assert_eq!(host("not a url"), None);
        assert_eq!(host("https:///path"), None);
        assert_eq!(host("/relative/path"), None);
        assert_eq!(host(&format!("https://{}/", "a".repeat(300))), None);
    }

    #[test]
    fn dimensions_round_trip_their_ids() {
        for dimension in Dimension::ALL {
            assert_eq!(Dimension::from_id(dimension.id()), Some(dimension));
        }
        assert_eq!(Dimension::from_id(9), None);
    }
}
