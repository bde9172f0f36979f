//! Success responses with the contract's exact content type.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::error::ApiError;

/// `application/json; charset=utf-8`, as the original service sent it.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
            response
        }
        Err(error) => {
            tracing::error!(%error, "serialising a response failed");
            ApiError::Internal.into_response()
        }
    }
}

/// RFC 3339 in UTC with millisecond precision and a `Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
