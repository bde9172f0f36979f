//! `Phrase`: the key of a link, e.g. `wildly-grumpy-walrus` or `BardzoGłupiKot`.

use std::fmt;

/// Longest phrase accepted, in characters.
pub const MAX_PHRASE_CHARS: usize = 256;

/// A phrase that is safe to look up: 1 to 256 characters, not blank, with no control
/// characters and no `/` (it is one path segment).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phrase(String);

/// Why a string is not a phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhraseError {
    #[error("the phrase is empty or blank")]
    Blank,
    #[error("the phrase is longer than {MAX_PHRASE_CHARS} characters")]
    TooLong,
    #[error("the phrase contains a control character or a slash")]
    InvalidCharacter,
}

/// Shortest and longest custom phrase, in characters.
pub const CUSTOM_PHRASE_CHARS: std::ops::RangeInclusive<usize> = 3..=128;

/// First path segments the service serves itself (routes, documentation, static
/// assets), compared case-insensitively: a link there would be unreachable or
/// would shadow the service. Phrases shorter than 3 characters (`s`, `v1`) are
/// refused by length already.
pub const RESERVED_PHRASES: &[&str] = &[
    "v1",
    "s",
    "api",
    "docs",
    "health",
    "metrics",
    "openapi.json",
    "static",
    "assets",
    "favicon.ico",
    "robots.txt",
    "sitemap.xml",
    ".well-known",
];

/// Why a string is not a phrase a client may choose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomPhraseError {
    #[error("the phrase must be 3 to 128 characters long")]
    Length,
    #[error("the phrase must not contain control characters, slashes, `?`, `#`, `%` or spaces at either end")]
    InvalidCharacter,
    #[error("the phrase is reserved for the service's own paths")]
    Reserved,
}

impl Phrase {
    /// Parses a phrase a client chose: the rules of every phrase, 3 to 128
    /// characters, no characters that need care in a URL path (`?`, `#`, `%`), no
    /// spaces at either end, and not one of [`RESERVED_PHRASES`].
    pub fn parse_custom(raw: &str) -> Result<Self, CustomPhraseError> {
        let chars = raw.chars().count();
        if !CUSTOM_PHRASE_CHARS.contains(&chars) {
            return Err(CustomPhraseError::Length);
        }
        if raw.trim() != raw || raw.contains(['?', '#', '%']) {
            return Err(CustomPhraseError::InvalidCharacter);
        }
        let phrase = Self::parse(raw).map_err(|_| CustomPhraseError::InvalidCharacter)?;
        if RESERVED_PHRASES.iter().any(|reserved| reserved.eq_ignore_ascii_case(raw)) {
            return Err(CustomPhraseError::Reserved);
        }
        Ok(phrase)
    }

    /// Parses a decoded phrase.
    pub fn parse(raw: &str) -> Result<Self, PhraseError> {
        Self::check(raw).map(|valid| Self(valid.to_owned()))
    }

    /// Checks a decoded phrase without copying it: the redirect hot path looks
    /// phrases up by reference.
    pub fn check(raw: &str) -> Result<&str, PhraseError> {
        if raw.trim().is_empty() {
            return Err(PhraseError::Blank);
        }
        // Cheap byte bound first, so a 1 MB input is not walked char by char.
        if raw.len() > MAX_PHRASE_CHARS * 4 || raw.chars().count() > MAX_PHRASE_CHARS {
            return Err(PhraseError::TooLong);
        }
        if raw.chars().any(|c| c.is_control() || c == '/') {
            return Err(PhraseError::InvalidCharacter);
        }
        Ok(raw)
    }

    /// Wraps a phrase composed from vocabulary entries, which hold only letters,
    /// spaces, `-` and `'` and are at most 64 characters long, so it is valid.
    pub(crate) fn from_composed(phrase: String) -> Self {
        debug_assert!(Self::parse(&phrase).is_ok(), "{phrase:?}");
        Self(phrase)
    }

    /// The phrase as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the inner string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for Phrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Phrase {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kebab_pascal_and_non_ascii() {
        for ok in ["wildly-grumpy-walrus", "BardzoGłupiKot", "bardzo-głupi-kot", "a"] {
            assert_eq!(Phrase::parse(ok).map(|p| p.to_string()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn rejects_blank() {
        for blank in ["", " ", "\t \u{3000}"] {
            assert_eq!(Phrase::parse(blank), Err(PhraseError::Blank), "{blank:?}");
        }
    }

    #[test]
    fn length_limit_counts_characters() {
        assert!(Phrase::parse(&"ł".repeat(256)).is_ok());
        assert_eq!(Phrase::parse(&"a".repeat(257)), Err(PhraseError::TooLong));
        assert_eq!(Phrase::parse(&"a".repeat(5000)), Err(PhraseError::TooLong));
    }

    #[test]
    fn custom_phrases_follow_the_rules_and_avoid_the_services_paths() {
        for ok in ["my-launch", "Zażółć", &"a".repeat(128), "abc"] {
            assert!(Phrase::parse_custom(ok).is_ok(), "{ok:?}");
        }
        for (bad, why) in [
            ("ab", CustomPhraseError::Length),
            (&"a".repeat(129), CustomPhraseError::Length),
            (" abc", CustomPhraseError::InvalidCharacter),
            ("a/b/c", CustomPhraseError::InvalidCharacter),
            ("what?", CustomPhraseError::InvalidCharacter),
            ("100%", CustomPhraseError::InvalidCharacter),
            ("a\nbc", CustomPhraseError::InvalidCharacter),
            ("docs", CustomPhraseError::Reserved),
            ("Health", CustomPhraseError::Reserved),
            ("openapi.json", CustomPhraseError::Reserved),
        ] {
            assert_eq!(Phrase::parse_custom(bad), Err(why), "{bad:?}");
        }
        assert_eq!(Phrase::parse_custom("a\u{0}b"), Err(CustomPhraseError::InvalidCharacter));
    }

    #[test]
    fn rejects_control_characters_and_slashes() {
        for bad in ["a\r\nb", "a\0b", "a/b", "a\u{7f}"] {
            assert_eq!(Phrase::parse(bad), Err(PhraseError::InvalidCharacter), "{bad:?}");
        }
    }
}
