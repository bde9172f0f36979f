//! `TargetUrl`: where a link redirects to.

use std::fmt;

use url::Url;

use crate::target_host::{self, HostClass};

/// Longest target URL accepted, in characters.
pub const MAX_TARGET_URL_CHARS: usize = 4096;

/// An absolute `http`/`https` URL of at most 4096 characters, without user info,
/// that does not point back at the service itself nor (unless allowed) at a
/// private or local-only host. Held in the `url` crate's normalised serialisation,
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
    /// `https://bank.example@evil.example/`: the part before `@` dresses one host
    /// up as another.
    #[error("the target URL contains user info")]
    HasUserInfo,
    /// The host is a private, local-only or meaningless address or name.
    #[error("the target URL's host is refused: {0:?}")]
    Host(HostClass),
}

/// What a target may not point at: this service (its public base URL and any other
/// names it is reached by) and, unless allowed, private and local-only hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    own_base: Url,
    /// Normalised (see [`target_host::normalise`]).
    self_hosts: Vec<String>,
    allow_private: bool,
}

impl TargetPolicy {
    /// Refuses targets under `own_base` and private hosts.
    pub fn new(own_base: Url) -> Self {
        Self { own_base, self_hosts: Vec::new(), allow_private: false }
    }

    /// Also refuses every URL on `hosts` (other names of this service, any port
    /// and path); each is normalised (IDNA, case, trailing dot). Fails with the
    /// first entry that is not a host name.
    pub fn with_self_hosts<'a>(mut self, hosts: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        for host in hosts.into_iter().filter(|h| !h.trim().is_empty()) {
            let normalised =
                target_host::normalise_input(host).ok_or_else(|| format!("`{host}` is not a host name"))?;
            self.self_hosts.push(normalised);
        }
        Ok(self)
    }

    /// Whether private hosts (see [`HostClass::is_private`]) are accepted, for
    /// intranet deployments.
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }
}

impl TargetUrl {
    /// Parses a target URL and applies `policy`. Targets may not point into this
    /// service (a short link to a short link loops or hides where it goes).
    pub fn parse(raw: &str, policy: &TargetPolicy) -> Result<Self, TargetUrlError> {
        let url = parse_shape(raw)?;
        let host = url.host_str().map(target_host::normalise);
        if points_into(&url, &policy.own_base) || host.is_some_and(|h| policy.self_hosts.contains(&h)) {
            return Err(TargetUrlError::PointsAtSelf);
        }
        match target_host::classify(&url) {
            Some(class) if !(policy.allow_private && class.is_private()) => Err(TargetUrlError::Host(class)),
            _ => Ok(Self(url)),
        }
    }

    /// Rebuilds a target read back from storage (PostgreSQL, or Redis, which is
    /// not trusted blindly): the rules of [`TargetUrl::parse`] that do not depend
    /// on the policy of the day hold again (absolute `http`/`https` with a host,
    /// at most 4096 characters, no user info), so a damaged or foreign value can
    /// never become a `Location` that `parse` would have refused. The policy
    /// (own hosts, private hosts) is not applied again: changing it does not
    /// break the links made under the old one.
    pub fn from_stored(raw: &str) -> Result<Self, TargetUrlError> {
        parse_shape(raw).map(Self)
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host, normalised (lower case, IDNA, no trailing dot).
    pub fn host(&self) -> String {
        self.0.host_str().map(target_host::normalise).unwrap_or_default()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// The policy-free rules: present, at most 4096 characters before and after
/// normalisation, absolute, `http` or `https`, with a host and no user info.
fn parse_shape(raw: &str) -> Result<Url, TargetUrlError> {
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
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetUrlError::HasUserInfo);
    }
    Ok(url)
}

/// Same host, same effective port (or both on their scheme's default port, since
/// `http://x` usually forwards to `https://x`), and a path under the base's path.
fn points_into(url: &Url, base: &Url) -> bool {
    let same_host = url.host_str().map(target_host::normalise) == base.host_str().map(target_host::normalise);
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

    fn base() -> TargetPolicy {
        TargetPolicy::new(Url::parse("http://127.0.0.1:8090").expect("valid base")).allow_private(true)
    }

    fn public(base: &str) -> TargetPolicy {
        TargetPolicy::new(Url::parse(base).expect("valid base"))
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
        let public = public("https://offnd.at");
        assert_eq!(TargetUrl::parse("http://OFFND.AT/x", &public), Err(TargetUrlError::PointsAtSelf));
        assert_eq!(TargetUrl::parse("http://offnd.at./x", &public), Err(TargetUrlError::PointsAtSelf));
        assert!(TargetUrl::parse("http://127.0.0.1:9000/x", &base()).is_ok());
        assert!(TargetUrl::parse("https://example.com/offnd.at", &public).is_ok());
        let with_path = self::public("https://example.com/s/");
        assert!(TargetUrl::parse("https://example.com/other", &with_path).is_ok());
        assert!(TargetUrl::parse("https://example.com/something", &with_path).is_ok());
        assert_eq!(TargetUrl::parse("https://example.com/s/x", &with_path), Err(TargetUrlError::PointsAtSelf));
    }

    #[test]
    fn other_names_of_the_service_are_refused_after_normalising() {
        let policy = public("https://offnd.at").with_self_hosts(["Bücher.example.", "go.offnd.at"]).expect("hosts");
        for raw in ["https://xn--bcher-kva.example/x", "http://BÜCHER.example./", "https://GO.offnd.at.:8443/y"] {
            assert_eq!(TargetUrl::parse(raw, &policy), Err(TargetUrlError::PointsAtSelf), "{raw}");
        }
        assert!(TargetUrl::parse("https://bucher.example/", &policy).is_ok());
        assert!(public("https://offnd.at").with_self_hosts(["a/b"]).is_err());
        let idn = public("https://bücher.example");
        assert_eq!(TargetUrl::parse("https://XN--BCHER-KVA.example./", &idn), Err(TargetUrlError::PointsAtSelf));
    }

    #[test]
    fn a_stored_target_keeps_the_rules_that_do_not_depend_on_the_policy() {
        assert_eq!(
            TargetUrl::from_stored("https://example.com/a").map(|t| t.to_string()).as_deref(),
            Ok("https://example.com/a")
        );
        // Refused by today's policy, but made under an older one: still served.
        assert!(TargetUrl::from_stored("http://10.0.0.1/").is_ok());
        for (raw, error) in [
            ("", TargetUrlError::Required),
            ("javascript:alert(1)", TargetUrlError::SchemeNotAllowed),
            ("ftp://example.com/", TargetUrlError::SchemeNotAllowed),
            ("http:", TargetUrlError::NotAbsolute),
            ("/relative", TargetUrlError::NotAbsolute),
            ("https://user:pw@example.com/", TargetUrlError::HasUserInfo),
        ] {
            assert_eq!(TargetUrl::from_stored(raw), Err(error), "{raw}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_TARGET_URL_CHARS));
        assert_eq!(TargetUrl::from_stored(&long), Err(TargetUrlError::TooLong));
    }

    #[test]
    fn user_info_is_refused() {
        for raw in ["https://bank.example@evil.example/", "https://user:pw@example.com/", "https://:pw@example.com/"] {
            assert_eq!(TargetUrl::parse(raw, &public("https://offnd.at")), Err(TargetUrlError::HasUserInfo), "{raw}");
        }
    }

    #[test]
    fn private_hosts_are_refused_unless_allowed() {
        let strict = public("https://offnd.at");
        let intranet = public("https://offnd.at").allow_private(true);
        for (raw, class) in [
            ("http://10.0.0.1/", HostClass::Private),
            ("http://localhost:3000/", HostClass::Loopback),
            ("http://wiki.internal/", HostClass::LocalName),
        ] {
            assert_eq!(TargetUrl::parse(raw, &strict), Err(TargetUrlError::Host(class)), "{raw}");
            assert!(TargetUrl::parse(raw, &intranet).is_ok(), "{raw}");
        }
        for (raw, class) in [("http://0.0.0.0/", HostClass::Unspecified), ("http://224.0.0.1/", HostClass::Multicast)] {
            assert_eq!(TargetUrl::parse(raw, &intranet), Err(TargetUrlError::Host(class)), "{raw}");
        }
    }
}
