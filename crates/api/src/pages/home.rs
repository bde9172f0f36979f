//! `GET /`: the home page with the form that makes links; `POST /`: the form's
//! submission, answered with the new short link or the form again with its
//! errors beside the fields.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use offndat_application::{ApplicationError, GenerateLinkCommand, ValidationFailure};
use offndat_domain::{Format, Language, Link, Theme};

use super::{ErrorPageKind, NO_STORE, csrf, error_page, render};
use crate::short_url::segment;
use crate::state::AppState;

/// The home page is the same for everyone (no token, no session), so shared
/// caches may keep it briefly.
const HOME_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=60");

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    web_create: bool,
    base_url: String,
    target_url: String,
    selects: Vec<Select>,
    errors: Vec<FieldError>,
}

impl HomePage {
    /// The error shown beside `field`, if any.
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|e| e.field == field).map(|e| e.message.as_str())
    }
}

/// A labelled choice from a catalogue.
struct Select {
    name: &'static str,
    label: &'static str,
    options: Vec<Choice>,
}

struct Choice {
    value: u8,
    label: &'static str,
    selected: bool,
}

/// The messages of one field's broken rules, in the contract's words.
struct FieldError {
    field: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "created.html")]
struct CreatedPage {
    short_url: String,
    stats_url: String,
    target: String,
    qr_svg: String,
    qr_png: String,
}

/// What the form sent, kept to fill the form again.
#[derive(Debug, Default)]
struct Form {
    target_url: String,
    language_id: Option<i64>,
    theme_id: Option<i64>,
    format_id: Option<i64>,
}

impl Form {
    fn parse(body: &[u8]) -> Self {
        let mut form = Self::default();
        let id = |value: &str| value.trim().parse::<i64>().ok();
        for (key, value) in url::form_urlencoded::parse(body) {
            match key.as_ref() {
                "targetUrl" => form.target_url = value.into_owned(),
                "languageId" => form.language_id = id(&value),
                "themeId" => form.theme_id = id(&value),
                "formatId" => form.format_id = id(&value),
                _ => {}
            }
        }
        form
    }

    fn command(&self) -> GenerateLinkCommand {
        GenerateLinkCommand {
            target_url: Some(self.target_url.clone()),
            language_id: self.language_id,
            theme_id: self.theme_id,
            format_id: self.format_id,
            // No chosen phrase, expiry or limit, and no owner: the API's
            // additions are for API clients.
            ..GenerateLinkCommand::default()
        }
    }
}

fn page(state: &AppState, form: &Form, errors: Vec<FieldError>) -> HomePage {
    let selected = |chosen: Option<i64>, value: u8| chosen.unwrap_or(0) == i64::from(value);
    HomePage {
        web_create: state.web_create,
        base_url: state.short_urls.base().to_owned(),
        target_url: form.target_url.clone(),
        selects: vec![
            Select {
                name: "languageId",
                label: "Language",
                options: Language::ALL
                    .iter()
                    .map(|l| Choice { value: l.id(), label: l.name(), selected: selected(form.language_id, l.id()) })
                    .collect(),
            },
            Select {
                name: "themeId",
                label: "Theme",
                options: Theme::ALL
                    .iter()
                    .map(|t| Choice {
                        value: t.id(),
                        label: theme_label(*t),
                        selected: selected(form.theme_id, t.id()),
                    })
                    .collect(),
            },
            Select {
                name: "formatId",
                label: "Format",
                options: Format::ALL
                    .iter()
                    .map(|f| Choice {
                        value: f.id(),
                        label: format_label(*f),
                        selected: selected(form.format_id, f.id()),
                    })
                    .collect(),
            },
        ],
        errors,
    }
}

fn theme_label(theme: Theme) -> &'static str {
    match theme {
        Theme::None => "No theme",
        Theme::ProperNames => "Proper names",
        Theme::Politicians => "Politicians",
    }
}

fn format_label(format: Format) -> &'static str {
    match format {
        Format::KebabCase => "kebab-case (wildly-grumpy-walrus)",
        Format::PascalCase => "PascalCase (WildlyGrumpyWalrus)",
    }
}

/// The form field a broken rule belongs to.
fn field_of(failure: ValidationFailure) -> &'static str {
    use ValidationFailure as F;
    match failure {
        F::TargetUrlIsRequired
        | F::TargetUrlMustBeAbsoluteUri
        | F::TargetUrlSchemeNotAllowed
        | F::TargetUrlLongerThanAllowed
        | F::TargetUrlIsSelf
        | F::TargetUrlHasUserInfo
        | F::TargetUrlIsLoopback
        | F::TargetUrlIsPrivate
        | F::TargetUrlIsLinkLocal
        | F::TargetUrlIsCarrierGradeNat
        | F::TargetUrlIsUnspecified
        | F::TargetUrlIsMulticast
        | F::TargetUrlIsLocalName
        | F::TargetUrlBlocked => "targetUrl",
        F::LanguageIdOutOfRange => "languageId",
        F::ThemeIdOutOfRange => "themeId",
        F::FormatIdOutOfRange => "formatId",
        // The form has none of these fields: it never sends them.
        F::PhraseInvalid | F::PhraseReserved => "phrase",
        F::ExpiresAtInvalid | F::ExpiresAtNotInFuture => "expiresAt",
        F::MaxVisitsOutOfRange => "maxVisits",
        F::DisabledInvalid | F::DisabledReasonInvalid => "disabled",
    }
}

/// The failures grouped by field, in the contract's order, each field's
/// messages joined.
fn field_errors(failures: &[ValidationFailure]) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = Vec::new();
    for failure in failures {
        let field = field_of(*failure);
        match errors.iter_mut().find(|e| e.field == field) {
            Some(error) => {
                error.message.push(' ');
                error.message.push_str(failure.message());
            }
            None => errors.push(FieldError { field, message: failure.message().to_owned() }),
        }
    }
    errors
}

/// The home page.
pub async fn home(State(state): State<AppState>) -> Response {
    render(&page(&state, &Form::default(), Vec::new()), StatusCode::OK, HOME_CACHE)
}

/// Makes a link from the form: `201` with the short link, its QR code and a link
/// to its stats; `400` with the form and its errors; `403` from another site or
/// when web create is off.
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !state.web_create {
        return error_page(ErrorPageKind::WebCreateDisabled);
    }
    if !csrf::allowed(&headers, state.short_urls.base()) {
        tracing::info!("refused a cross-site form post");
        return error_page(ErrorPageKind::CrossSiteRequest);
    }
    let form = Form::parse(&body);
    match state.generate_link.execute(form.command()).await {
        Ok(link) => created(&state, &link),
        Err(ApplicationError::Validation(failures)) => {
            render(&page(&state, &form, field_errors(&failures)), StatusCode::BAD_REQUEST, NO_STORE)
        }
        Err(error) => {
            let kind = match crate::error::ApiError::from(error) {
                crate::error::ApiError::CouldNotGenerate | crate::error::ApiError::Unavailable => {
                    ErrorPageKind::Unavailable
                }
                _ => ErrorPageKind::ServerError,
            };
            error_page(kind)
        }
    }
}

fn created(state: &AppState, link: &Link) -> Response {
    let short_url = state.short_urls.link(&link.phrase);
    let encoded = segment(&link.phrase);
    let page = CreatedPage {
        stats_url: state.short_urls.stats(&link.phrase),
        target: link.target_url.to_string(),
        qr_svg: format!("/v1/links/{encoded}/qr.svg"),
        qr_png: format!("/v1/links/{encoded}/qr.png?size=512"),
        short_url,
    };
    let mut response = render(&page, StatusCode::CREATED, NO_STORE);
    if let Ok(location) = HeaderValue::from_str(&page.short_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_read_leniently() {
        let form = Form::parse(b"targetUrl=https%3A%2F%2Fexample.com%2F%3Fa%3D1&languageId=1&themeId=x&formatId=");
        assert_eq!(form.target_url, "https://example.com/?a=1");
        assert_eq!((form.language_id, form.theme_id, form.format_id), (Some(1), None, None));
    }

    #[test]
    fn failures_are_grouped_by_field() {
        let errors = field_errors(&[
            ValidationFailure::TargetUrlIsRequired,
            ValidationFailure::TargetUrlMustBeAbsoluteUri,
            ValidationFailure::ThemeIdOutOfRange,
        ]);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "targetUrl");
        assert_eq!(errors[0].message, "The target URL is required. The target URL must be an absolute URI.");
        assert_eq!(errors[1].field, "themeId");
    }
}
