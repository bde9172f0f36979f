//! The values L2 keeps in Redis, and reading them back as if from outside:
//! Redis is shared and not trusted blindly, so a value is used only if this
//! deployment wrote it for this phrase (its MAC) and it is a valid target.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use offndat_application::ports::RedirectTarget;
use offndat_domain::{StoredState, TargetUrl};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::deployment::Deployment;

/// Why a value read from Redis was not used (the `reason` label of
/// `offndat_cache_l2_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a version-3 value: an older release's, or not offndat's at all.
    Format,
    /// Its MAC is not this deployment's: written by another deployment sharing
    /// the key prefix, or by someone else who can write to Redis.
    Foreign,
    /// Authenticated, yet not a valid target (a bug, never expected).
    Invalid,
}

impl Rejection {
    pub(super) const ALL: [Self; 3] = [Self::Format, Self::Foreign, Self::Invalid];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Format => "format",
            Self::Foreign => "foreign",
            Self::Invalid => "invalid",
        }
    }
}

/// The version this release writes; any other is refused (`Rejection::Format`).
const VERSION: &[u8] = b"3:";
/// Hex digits of a value's MAC (128 bits).
const TAG_HEX: usize = 32;

/// `3:<mac>:<body>`, the body being `-` for a phrase known to name no link, or
/// `<link id>:<flags>:<expires at, Unix ms, or ->:<target>`, flags being `-` or
/// any of `D` (deleted), `X` (disabled), `L` (visit limit reached). `<mac>` is
/// 32 hex digits of HMAC-SHA-256, keyed by the deployment's secret, over the
/// phrase and the body: a value is this deployment's, for this phrase, or it is
/// refused. Versioned so a format is never misread: values of versions 1 and 2
/// (no MAC; version 1 knew no link states) are refused, reloaded and replaced.
pub(super) fn encode(deployment: &Deployment, phrase: &str, target: &RedirectTarget) -> Vec<u8> {
    let state = &target.state;
    let mut flags = String::new();
    for (set, flag) in [(state.deleted, 'D'), (state.disabled, 'X'), (state.limit_reached, 'L')] {
        if set {
            flags.push(flag);
        }
    }
    if flags.is_empty() {
        flags.push('-');
    }
    let expires = state.expires_at.map_or_else(|| "-".to_owned(), |at| at.timestamp_millis().to_string());
    let mut body = format!("{}:{flags}:{expires}:", target.link_id).into_bytes();
    body.extend_from_slice(&target.location);
    sealed(deployment, phrase, &body)
}

/// The value of a phrase known to name no link.
pub(super) fn encode_absent(deployment: &Deployment, phrase: &str) -> Vec<u8> {
    sealed(deployment, phrase, ABSENT)
}

const ABSENT: &[u8] = b"-";

fn sealed(deployment: &Deployment, phrase: &str, body: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(VERSION.len() + TAG_HEX + 1 + body.len());
    value.extend_from_slice(VERSION);
    value.extend_from_slice(&tag(deployment, phrase, body));
    value.push(b':');
    value.extend_from_slice(body);
    value
}

fn tag(deployment: &Deployment, phrase: &str, body: &[u8]) -> [u8; TAG_HEX] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mac = deployment.mac(&[b"redirect cache", phrase.as_bytes(), body]);
    let mut hex = [0; TAG_HEX];
    for (i, byte) in mac.iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(byte >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    hex
}

/// `Ok(Some(_))` a link, `Ok(None)` a phrase known to name none, `Err(_)` a
/// value not to be used. Everything is checked again as if it came from outside:
/// the MAC first, then the link id, the flags, the expiry and the target, which
/// passes the same checks as a target read from PostgreSQL.
pub(super) fn decode(deployment: &Deployment, phrase: &str, value: &[u8]) -> Result<Option<RedirectTarget>, Rejection> {
    let rest = value.strip_prefix(VERSION).ok_or(Rejection::Format)?;
    let (mac, body) = (rest.get(..TAG_HEX).ok_or(Rejection::Format)?, rest.get(TAG_HEX + 1..).unwrap_or_default());
    if rest.get(TAG_HEX) != Some(&b':') {
        return Err(Rejection::Format);
    }
    if !bool::from(mac.ct_eq(&tag(deployment, phrase, body))) {
        return Err(Rejection::Foreign);
    }
    if body == ABSENT {
        return Ok(None);
    }
    decode_target(body).map(Some).ok_or(Rejection::Invalid)
}

fn decode_target(body: &[u8]) -> Option<RedirectTarget> {
    let id = body.get(..36)?;
    if body.get(36) != Some(&b':') {
        return None;
    }
    let mut fields = body.get(37..)?.splitn(3, |b| *b == b':');
    let (flags, expires, location) = (fields.next()?, fields.next()?, fields.next()?);
    let mut state = StoredState::default();
    if flags != b"-" {
        for flag in flags {
            let set = match flag {
                b'D' => &mut state.deleted,
                b'X' => &mut state.disabled,
                b'L' => &mut state.limit_reached,
                _ => return None,
            };
            if std::mem::replace(set, true) {
                return None;
            }
        }
    }
    if expires != b"-" {
        let millis = std::str::from_utf8(expires).ok()?;
        // Digits only (with a sign): `+5` or ` 5` are not what `encode` writes.
        if !millis.strip_prefix('-').unwrap_or(millis).bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        state.expires_at = Some(DateTime::<Utc>::from_timestamp_millis(millis.parse().ok()?)?);
    }
    let link_id = Uuid::try_parse_ascii(id).ok()?;
    // Only a deleted link has no target.
    if state.deleted {
        return location.is_empty().then(|| RedirectTarget { link_id, location: Bytes::new(), state });
    }
    // Only visible ASCII can stand in a `Location` header (no CR, LF, spaces or
    // controls, which `Url::parse` would quietly strip rather than refuse), and
    // the target must pass what a target from PostgreSQL passes. What is served
    // is its normalised form, as from PostgreSQL.
    if !location.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    let target = TargetUrl::from_stored(std::str::from_utf8(location).ok()?).ok()?;
    Some(RedirectTarget { link_id, location: Bytes::copy_from_slice(target.as_str().as_bytes()), state })
}

#[cfg(test)]
mod tests;
