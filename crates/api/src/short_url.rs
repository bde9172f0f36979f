//! Short and stats URLs handed to clients: `<base>/<phrase>` and `<base>/s/<phrase>`.

use offndat_domain::Phrase;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use url::Url;

/// Characters escaped in a path segment (RFC 3986 `pchar` complement), so Polish
/// letters and anything unusual in a custom vocabulary arrive intact.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Builds the URLs of links under the public base.
#[derive(Debug, Clone)]
pub struct ShortUrls {
    base: String,
}

impl ShortUrls {
    pub fn new(base: &Url) -> Self {
        Self { base: base.as_str().trim_end_matches('/').to_owned() }
    }

    /// The short URL that redirects.
    pub fn link(&self, phrase: &Phrase) -> String {
        format!("{}/{}", self.base, utf8_percent_encode(phrase.as_str(), PATH_SEGMENT))
    }

    /// The stats page URL.
    pub fn stats(&self, phrase: &Phrase) -> String {
        format!("{}/s/{}", self.base, segment(phrase))
    }

    /// The public base, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// The phrase percent-encoded as one path segment, for paths under this service
/// (`/v1/links/{phrase}/qr.svg`).
pub fn segment(phrase: &Phrase) -> String {
    utf8_percent_encode(phrase.as_str(), PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_percent_encoded_as_segments() {
        let urls = ShortUrls::new(&Url::parse("https://offnd.at/").expect("url"));
        let phrase = Phrase::parse("bardzo-głupi-kot").expect("phrase");
        assert_eq!(urls.link(&phrase), "https://offnd.at/bardzo-g%C5%82upi-kot");
        assert_eq!(urls.stats(&phrase), "https://offnd.at/s/bardzo-g%C5%82upi-kot");
        let odd = Phrase::parse("a b?c#d%e").expect("phrase");
        assert_eq!(urls.link(&odd), "https://offnd.at/a%20b%3Fc%23d%25e");
    }
}
