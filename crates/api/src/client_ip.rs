//! The client's IP: the TCP peer, or, behind a trusted proxy, the nearest untrusted
//! address in `X-Forwarded-For`. Headers from anyone else are ignored, so clients
//! cannot spoof their address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::state::AppState;

/// The client IP of a request, when known.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(peer.map(|peer| client_ip(peer, &parts.headers, &state.trusted_proxies))))
    }
}

/// Walks `X-Forwarded-For` from the right (the hop nearest us) past trusted proxies;
/// the first untrusted address is the client. Unparsable entries end the walk.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn xff(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(client_ip(ip("198.51.100.1"), &xff(&["1.2.3.4"]), &trusted), ip("198.51.100.1"));
        assert_eq!(client_ip(ip("198.51.100.1"), &xff(&["1.2.3.4"]), &[]), ip("198.51.100.1"));
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // The client forged the first entry; the proxy appended the real one.
        let headers = xff(&["6.6.6.6, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.0.0.1"), &xff(&["garbage"]), &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted), ip("10.0.0.1"));
    }

    proptest::proptest! {
        /// Whatever a client sends, the answer is the peer or an address from the
        /// header, and only a trusted peer's header is read at all.
        #[test]
        fn forwarded_headers_never_panic_and_never_invent_addresses(
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            peer_trusted in proptest::prelude::any::<bool>(),
        ) {
            let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
            let peer = if peer_trusted { ip("10.0.0.1") } else { ip("198.51.100.1") };
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&header) {
                headers.append("x-forwarded-for", value);
            }
            let client = client_ip(peer, &headers, &trusted);
            if !peer_trusted {
                proptest::prop_assert_eq!(client, peer);
            } else if client != peer {
                let text = String::from_utf8_lossy(&header);
                proptest::prop_assert!(text.split(',').any(|hop| hop.trim().parse::<IpAddr>() == Ok(client)));
            }
        }
    }
}
