//! Cross-site request forgery protection of the home page's form, without
//! tokens or cookies: browsers say where a request comes from.
//!
//! Every browser in use sends `Sec-Fetch-Site` (Fetch Metadata); a form posted
//! from another site says `cross-site` or `same-site`, and only `same-origin`
//! (or `none`, typed by the user) is let through. Browsers too old for Fetch
//! Metadata send `Origin` on a POST, which must then be this service's own
//! origin (its public base URL, or the `Host` it was reached at). A request with
//! neither header is not from a browser page, so nothing was forged. This is the
//! check Go's `net/http.CrossOriginProtection` makes; it keeps the home page
//! cacheable and the create stateless across replicas, which a token would not.

use axum::http::{HeaderMap, header};
use url::Url;

/// Whether a state-changing request may be served: it comes from one of our own
/// pages, or from no browser page at all.
pub fn allowed(headers: &HeaderMap, public_base: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let ours = Url::parse(public_base).map(|base| base.origin().ascii_serialization()).unwrap_or_default();
    if origin.eq_ignore_ascii_case(&ours) {
        return true;
    }
    // Reached at another name than the public base (a direct address behind a
    // proxy, a test): the origin's host must be the one the request was sent to.
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        let base = "https://offnd.at";
        assert!(allowed(&headers(&[("sec-fetch-site", "same-origin")]), base));
        assert!(allowed(&headers(&[("sec-fetch-site", "none")]), base));
        assert!(!allowed(&headers(&[("sec-fetch-site", "cross-site")]), base));
        assert!(!allowed(&headers(&[("sec-fetch-site", "same-site")]), base));
        // Fetch Metadata wins over a matching Origin.
        assert!(!allowed(&headers(&[("sec-fetch-site", "cross-site"), ("origin", "https://offnd.at")]), base));
    }

    #[test]
    fn origin_is_checked_without_fetch_metadata() {
        let base = "https://offnd.at";
        assert!(allowed(&headers(&[("origin", "https://offnd.at")]), base));
        assert!(!allowed(&headers(&[("origin", "https://evil.example")]), base));
        assert!(!allowed(&headers(&[("origin", "null")]), base));
        assert!(allowed(&headers(&[("origin", "http://127.0.0.1:8090"), ("host", "127.0.0.1:8090")]), base));
        assert!(!allowed(&headers(&[("origin", "http://127.0.0.1:9999"), ("host", "127.0.0.1:8090")]), base));
        // Not a browser page: curl, scripts.
        assert!(allowed(&HeaderMap::new(), base));
    }
}
