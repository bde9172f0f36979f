//! `TargetUrl`: where a link redirects to.

use std::fmt;

use url::Url;

/// Longest target URL accepted, in characters.
pub const MAX_TARGET_URL_CHARS: usize = 4096;

/// An absolute `http`/`https` URL of at most 4096 characters that does not point
/// back at the service itself. Held in the `url` crate's normalised serialisation,
/// which percent-encodes everything outside the URL grammar, so it is always a safe
/// `Location` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

/// Why a string is not an acceptable target URL. A blank input is both `Required`
/// and not absolute; callers that list every failed rule report both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetUrlError {
    #[error("the target URL is required")]
    Required,
    #[error("the target URL must be an absolute URI")]
    NotAbsolute,
    #[error("only http and https target URLs are allowed")]
    SchemeNotAllowed,
    #[error("the target URL is longer than {MAX_TARGET_URL_CHARS} characters")]
    TooLong,
    #[error("the target URL points at this service")]
    PointsAtSelf,
}

impl TargetUrl {
    /// Parses a target URL; `own_base` is this service's public base URL, which
    /// targets may not point into (a short link to a short link loops or hides).
    pub fn parse(raw: &str, own_base: &Url) -> Result<Self, TargetUrlError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TargetUrlError::Required);
        }
        if raw.len() > MAX_TARGET_URL_CHARS && raw.chars().count() > MAX_TARGET_URL_CHARS {
            return Err(TargetUrlError::TooLong);
        }
        let url = Url::parse(trimmed).map_err(|_| TargetUrlError::NotAbsolute)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetUrlError::SchemeNotAllowed);
        }
        // `http:foo` parses with an empty host; it is not a usable absolute URL.
        if url.host_str().is_none_or(str::is_empty) {
            return Err(TargetUrlError::NotAbsolute);
        }
        // Normalisation (punycode, percent-encoding) may lengthen it: bound the result.
        if url.as_str().chars().count() > MAX_TARGET_URL_CHARS {
            return Err(TargetUrlError::TooLong);
        }
        if points_into(&url, own_base) {
            return Err(TargetUrlError::PointsAtSelf);
        }
        Ok(Self(url))
    }

    /// Rebuilds a target read back from storage, where it was validated on the way in.
    pub fn from_stored(raw: &str) -> Result<Self, TargetUrlError> {
        Url::parse(raw).map(Self).map_err(|_| TargetUrlError::NotAbsolute)
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Same host, same effective port (or both on their scheme's default port, since
/// `http://x` usually forwards to `https://x`), and a path under the base's path.
fn points_into(url: &Url, base: &Url) -> bool {
    let same_host = url.host_str().map(str::to_ascii_lowercase) == base.host_str().map(str::to_ascii_lowercase);
    if !same_host {
        return false;
    }
    let both_default = url.port().is_none() && base.port().is_none();
    let same_port = url.port_or_known_default() == base.port_or_known_default();
    if !(both_default || same_port) {
        return false;
    }
    let base_path = base.path().trim_end_matches('/');
    let path = url.path();
    base_path.is_empty() || path == base_path || path.strip_prefix(base_path).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8090").expect("valid base")
    }

    #[test]
    fn accepts_http_and_https_and_normalises() {
        let url = TargetUrl::parse("https://example.com", &base()).expect("valid");
        assert_eq!(url.as_str(), "https://example.com/");
        let url = TargetUrl::parse("  http://EXAMPLE.com/a b?q=ł  ", &base()).expect("valid");
        assert_eq!(url.as_str(), "http://example.com/a%20b?q=%C5%82");
    }

    #[test]
    fn header_injection_is_encoded_away() {
        let url = TargetUrl::parse("https://example.com/a\r\nSet-Cookie: x", &base()).expect("valid");
        assert!(!url.as_str().contains(['\r', '\n', ' ']), "{url}");
    }

    #[test]
    fn blank_is_required() {
        for raw in ["", "   ", "\n"] {
            assert_eq!(TargetUrl::parse(raw, &base()), Err(TargetUrlError::Required));
        }
    }

    #[test]
    fn relative_is_not_absolute() {
        for raw in ["example.com", "/path", "//example.com/x", "http://", "http:"] {
            assert_eq!(TargetUrl::parse(raw, &base()), Err(TargetUrlError::NotAbsolute), "{raw}");
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        for raw in
            ["javascript:alert(1)", "data:text/html,hi", "ftp://example.com/", "mailto:a@b.c", "file:///etc/passwd"]
        {
            assert_eq!(TargetUrl::parse(raw, &base()), Err(TargetUrlError::SchemeNotAllowed), "{raw}");
        }
    }

    #[test]
    fn length_limit() {
        let prefix = "https://example.com/";
        let ok = format!("{prefix}{}", "a".repeat(MAX_TARGET_URL_CHARS - prefix.len()));
        assert!(TargetUrl::parse(&ok, &base()).is_ok());
        let long = format!("{prefix}{}", "a".repeat(MAX_TARGET_URL_CHARS - prefix.len() + 1));
        assert_eq!(TargetUrl::parse(&long, &base()), Err(TargetUrlError::TooLong));
    }

    #[test]
    fn own_base_is_refused() {
        for raw in ["http://127.0.0.1:8090/wildly-grumpy-walrus", "https://127.0.0.1:8090/", "http://127.0.0.1:8090"] {
            assert_eq!(TargetUrl::parse(raw, &base()), Err(TargetUrlError::PointsAtSelf), "{raw}");
        }
        let public = Url::parse("https://offnd.at").expect("valid");
        assert_eq!(TargetUrl::parse("http://OFFND.AT/x", &public), Err(TargetUrlError::PointsAtSelf));
        assert!(TargetUrl::parse("http://127.0.0.1:9000/x", &base()).is_ok());
        assert!(TargetUrl::parse("https://example.com/offnd.at", &public).is_ok());
        let with_path = Url::parse("https://example.com/s/").expect("valid");
        assert!(TargetUrl::parse("https://example.com/other", &with_path).is_ok());
        assert!(TargetUrl::parse("https://example.com/something", &with_path).is_ok());
        assert_eq!(TargetUrl::parse("https://example.com/s/x", &with_path), Err(TargetUrlError::PointsAtSelf));
    }
}
