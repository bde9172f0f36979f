//! Hosts a target URL may not name: addresses and names that only mean something
//! inside a network (a short link to them points each visitor at their own
//! router, printer or cloud metadata service), and ones that mean nothing at all.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a target's host is refused. The IP ranges are IANA's special-purpose
/// registries; an IPv4 address written as IPv6 (`::ffff:10.0.0.1`, or NAT64's
/// `64:ff9b::10.0.0.1`) is judged as the IPv4 address it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostClass {
    /// `127.0.0.0/8`, `::1`, `localhost` and `*.localhost`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`.
    Private,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    CarrierGradeNat,
    /// `0.0.0.0/8` and `::`.
    Unspecified,
    /// `224.0.0.0/4`, `255.255.255.255` and `ff00::/8`.
    Multicast,
    /// `*.local` (mDNS) and `*.internal` (reserved for private use).
    LocalName,
}

impl HostClass {
    /// Whether `OFFNDAT_ALLOW_PRIVATE_TARGETS` lifts the refusal: the classes an
    /// intranet deployment links to. Unspecified and multicast addresses name no
    /// web server anywhere, so they stay refused.
    pub const fn is_private(self) -> bool {
        !matches!(self, Self::Unspecified | Self::Multicast)
    }
}

/// The class of `url`'s host, or `None` for an ordinary public host.
pub fn classify(url: &Url) -> Option<HostClass> {
    match url.host()? {
        Host::Ipv4(ip) => classify_v4(ip),
        Host::Ipv6(ip) => classify_v6(ip),
        Host::Domain(name) => classify_name(&normalise(name)),
    }
}

/// A host name as compared everywhere: lower case, without the trailing dot of a
/// fully qualified name. (The `url` crate has already applied IDNA.)
pub fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `host` in the form [`normalise`] gives a parsed URL's host: IDNA applied
/// (`Bücher.example` → `xn--bcher-kva.example`), lower case, no trailing dot.
/// `None` when it is not a valid host.
pub fn normalise_input(host: &str) -> Option<String> {
    let host = host.trim();
    if host.is_empty() || host.contains(['/', '@', '?', '#', ':']) && !host.starts_with('[') {
        return None;
    }
    let url = Url::parse(&format!("http://{host}/")).ok()?;
    url.host_str().map(normalise).filter(|h| !h.is_empty())
}

fn classify_name(name: &str) -> Option<HostClass> {
    let under = |suffix: &str| name == suffix || name.ends_with(&format!(".{suffix}"));
    if under("localhost") {
        Some(HostClass::Loopback)
    } else if under("local") || under("internal") {
        Some(HostClass::LocalName)
    } else {
        None
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<HostClass> {
    let [a, b, ..] = ip.octets();
    if a == 0 {
        Some(HostClass::Unspecified)
    } else if ip.is_loopback() {
        Some(HostClass::Loopback)
    } else if ip.is_private() {
        Some(HostClass::Private)
    } else if ip.is_link_local() {
        Some(HostClass::LinkLocal)
    } else if a == 100 && (64..128).contains(&b) {
        Some(HostClass::CarrierGradeNat)
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some(HostClass::Multicast)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<HostClass> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    // NAT64's well-known prefix, 64:ff9b::/96, carries an IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return classify_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if ip.is_unspecified() {
        Some(HostClass::Unspecified)
    } else if ip.is_loopback() {
        Some(HostClass::Loopback)
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some(HostClass::Private)
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some(HostClass::LinkLocal)
    } else if ip.is_multicast() {
        Some(HostClass::Multicast)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(raw: &str) -> Option<HostClass> {
        classify(&Url::parse(raw).expect("valid URL"))
    }

    #[test]
    fn every_class_is_recognised_in_every_spelling() {
        use HostClass::*;
        let cases = [
            ("http://127.0.0.1/", Some(Loopback)),
            ("http://127.1/", Some(Loopback)),
            ("http://2130706433/", Some(Loopback)),
            ("http://0x7f000001/", Some(Loopback)),
            ("http://[::1]/", Some(Loopback)),
            ("http://[::ffff:127.0.0.1]/", Some(Loopback)),
            ("http://LocalHost./", Some(Loopback)),
            ("http://api.localhost/", Some(Loopback)),
            ("http://10.1.2.3/", Some(Private)),
            ("http://172.16.0.1/", Some(Private)),
            ("http://172.31.255.255/", Some(Private)),
            ("http://192.168.1.1/", Some(Private)),
            ("http://[fd00::1]/", Some(Private)),
            ("http://[::ffff:10.0.0.1]/", Some(Private)),
            ("http://[64:ff9b::a00:1]/", Some(Private)),
            ("http://169.254.169.254/", Some(LinkLocal)),
            ("http://[fe80::1]/", Some(LinkLocal)),
            ("http://100.64.0.1/", Some(CarrierGradeNat)),
            ("http://100.127.255.255/", Some(CarrierGradeNat)),
            ("http://0.0.0.0/", Some(Unspecified)),
            ("http://[::]/", Some(Unspecified)),
            ("http://224.0.0.1/", Some(Multicast)),
            ("http://255.255.255.255/", Some(Multicast)),
            ("http://[ff02::1]/", Some(Multicast)),
            ("http://printer.local/", Some(LocalName)),
            ("http://metadata.google.internal./", Some(LocalName)),
            ("http://172.32.0.1/", None),
            ("http://100.128.0.1/", None),
            ("http://8.8.8.8/", None),
            ("http://[2001:db8::1]/", None),
            ("http://localhost.example/", None),
            ("http://example.com/", None),
            ("http://notlocal/", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(class(raw), expected, "{raw}");
        }
    }

    #[test]
    fn only_addresses_with_a_server_behind_them_count_as_private() {
        assert!(HostClass::Private.is_private());
        assert!(HostClass::Loopback.is_private());
        assert!(HostClass::LocalName.is_private());
        assert!(!HostClass::Multicast.is_private());
        assert!(!HostClass::Unspecified.is_private());
    }

    #[test]
    fn input_hosts_are_normalised_like_urls() {
        assert_eq!(normalise_input("Bücher.Example."), Some("xn--bcher-kva.example".to_owned()));
        assert_eq!(normalise_input(" short.test "), Some("short.test".to_owned()));
        assert_eq!(normalise_input("a/b"), None);
        assert_eq!(normalise_input(""), None);
    }
}
