//! `GET /v1/links/{phrase}/qr.svg` and `/qr.png`: the QR code of a link's short
//! URL. No API key: the code holds nothing but the public short URL, which
//! anyone holding the phrase can already build, and the pages show it to people
//! who have no key. The routes check that the link exists (through the redirect
//! cache, so most answers cost no query) and share the other routes' rate limit.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

use crate::error::ApiError;
use crate::extract::PhraseParam;
use crate::openapi::responses;
use crate::rate_limit::{self, RateLimits};
use crate::state::AppState;

crate::openapi::document!(QrApi: qr_svg, qr_png);

/// A phrase's short URL never changes, so its code may be kept for a day.
const QR_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=86400");
/// Smallest, default and largest PNG sizes, in pixels.
pub const PNG_SIZES: (u32, u32, u32) = (64, 256, 1024);
/// Blank modules around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;

/// The QR routes, behind the rate limit of the other routes.
pub fn routes(limits: Option<&Arc<RateLimits>>) -> Router<AppState> {
    let router =
        Router::new().route("/v1/links/{phrase}/qr.svg", get(qr_svg)).route("/v1/links/{phrase}/qr.png", get(qr_png));
    match limits {
        Some(limits) => router.route_layer(rate_limit::layer(&limits.api)),
        None => router,
    }
}

/// The code of `text`, with medium error correction (15 %: survives a
/// smudge or a small logo).
fn code(text: &str) -> Result<QrCode, ApiError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|error| {
        tracing::error!(%error, "a short URL does not fit in a QR code");
        ApiError::Internal
    })
}

/// The QR code of `text` as an SVG document, black on white, with its quiet zone.
pub fn svg(text: &str) -> Result<String, ApiError> {
    Ok(code(text)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// The QR code of `text` as a greyscale PNG at most `size` pixels wide (a whole
/// number of pixels per module keeps the edges sharp), never less than one pixel
/// per module.
pub fn png(text: &str, size: u32) -> Result<Vec<u8>, ApiError> {
    let code = code(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let modules = width + 2 * QUIET_ZONE;
    let scale = (size as usize / modules).max(1);
    let side = modules * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            for y in my * scale..(my + 1) * scale {
                pixels[y * side + mx * scale..y * side + (mx + 1) * scale].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let encoded = (|| {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()
    })();
    encoded.map_err(|error| {
        tracing::error!(%error, "encoding a QR code as PNG failed");
        ApiError::Internal
    })?;
    Ok(out)
}

/// `size` from the query: absent gives the default; anything else must be a
/// whole number in range.
fn size(raw: Option<&str>) -> Result<u32, ApiError> {
    let (min, default, max) = PNG_SIZES;
    let mut size = default;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if key == "size" {
            size = value.parse::<u32>().ok().filter(|s| (min..=max).contains(s)).ok_or(ApiError::InvalidQrSize)?;
        }
    }
    Ok(size)
}

fn image(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, QR_CACHE);
    response
}

/// QR code of a link (SVG)
///
/// The QR code of the link's short URL as an SVG image, black on white. No API
/// key: it encodes only the public short URL.
#[utoipa::path(
    get,
    path = "/v1/links/{phrase}/qr.svg",
    operation_id = "linkQrSvg",
    tag = "QR codes",
    params(("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.",
        example = "wildly-grumpy-walrus")),
    responses(
        (status = 200, description = "The QR code. `Cache-Control: public, max-age=86400`.",
            content_type = "image/svg+xml", body = String,
            example = json!("<?xml version=\"1.0\" standalone=\"yes\"?><svg xmlns=\"http://www.w3.org/2000/svg\" …</svg>")),
        (status = 400, response = responses::InvalidPhrase),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkDeleted),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn qr_svg(State(state): State<AppState>, PhraseParam(phrase): PhraseParam) -> Result<Response, ApiError> {
    state.resolve_link.execute(phrase.as_str()).await?;
    Ok(image("image/svg+xml", svg(&state.short_urls.link(&phrase))?))
}

/// QR code of a link (PNG)
///
/// The QR code of the link's short URL as a greyscale PNG, `size` pixels wide at
/// most (64 to 1024, default 256; a whole number of pixels per module). No API key.
#[utoipa::path(
    get,
    path = "/v1/links/{phrase}/qr.png",
    operation_id = "linkQrPng",
    tag = "QR codes",
    params(
        ("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.", example = "wildly-grumpy-walrus"),
        ("size" = Option<u32>, Query, description = "Largest width and height in pixels, 64 to 1024.", example = 256),
    ),
    responses(
        (status = 200, description = "The QR code. `Cache-Control: public, max-age=86400`.",
            content_type = "image/png", body = Vec<u8>, example = json!("(binary PNG)")),
        (status = 400, response = responses::QrBadRequest),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkDeleted),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn qr_png(
    State(state): State<AppState>,
    PhraseParam(phrase): PhraseParam,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let size = size(raw.as_deref())?;
    state.resolve_link.execute(phrase.as_str()).await?;
    Ok(image("image/png", png(&state.short_urls.link(&phrase), size)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(size(None).ok(), Some(256));
        assert_eq!(size(Some("size=64")).ok(), Some(64));
        assert_eq!(size(Some("size=1024")).ok(), Some(1024));
        for bad in ["size=63", "size=1025", "size=abc", "size=", "size=-1", "size=1.5"] {
            assert!(matches!(size(Some(bad)), Err(ApiError::InvalidQrSize)), "{bad}");
        }
    }

    #[test]
    fn pngs_have_whole_modules_within_the_size() {
        let bytes = png("https://offnd.at/wildly-grumpy-walrus", 256).expect("png");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().expect("header");
        let info = reader.info();
        // Version 3 (29 modules) + 8 quiet modules = 37; 256 / 37 = 6 pixels each.
        assert_eq!((info.width, info.height), (222, 222));
    }

    #[test]
    fn svgs_are_documents() {
        let svg = svg("https://offnd.at/x").expect("svg");
        assert!(svg.contains("<svg"), "{svg}");
    }
}
