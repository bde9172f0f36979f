//! Extractors that fail with our problem responses instead of axum's plain text.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use offndat_domain::Phrase;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::error::{ApiError, PhraseInput};

/// A request body that must be a JSON object. Absent fields are left for
/// validation to report; only a body that is not a JSON object fails here.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl JsonObject {
    /// The field `name`, matched exactly or else case-insensitively (the original
    /// service's JSON binding ignored case, and clients may rely on it).
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.0
            .get(name)
            .or_else(|| self.0.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value))
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidBody("The request body could not be read.")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::InvalidBody("The request body is empty; a JSON object is required."));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::InvalidBody("The request body must be a JSON object.")),
            Err(_) => Err(ApiError::InvalidBody("The request body is not valid JSON.")),
        }
    }
}

/// The `{phrase}` path segment, percent-decoded and parsed. Decoding is ours, not
/// axum's, so invalid encodings get a problem response too. Only for routes whose
/// phrase segment is `{phrase}`.
#[derive(Debug)]
pub struct PhraseParam(pub Phrase);

impl<S: Send + Sync> FromRequestParts<S> for PhraseParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let decoded = decode_phrase_segment(parts.uri.path())?;
        Phrase::parse(&decoded).map(PhraseParam).map_err(|e| ApiError::InvalidPhrase(PhraseInput::Invalid(e)))
    }
}

/// The phrase segment of `path`, percent-decoded once (so `%25` stays `%`);
/// borrowed when it holds no escapes. Under `/v1/links/` it is the segment after
/// that prefix (`/v1/links/{phrase}/stats`); elsewhere the last segment.
pub fn decode_phrase_segment(path: &str) -> Result<Cow<'_, str>, ApiError> {
    let raw = match path.strip_prefix("/v1/links/") {
        Some(rest) => rest.split('/').next().unwrap_or_default(),
        None => path.rsplit('/').next().unwrap_or_default(),
    };
    percent_decode_str(raw).decode_utf8().map_err(|_| ApiError::InvalidPhrase(PhraseInput::NotUtf8))
}
