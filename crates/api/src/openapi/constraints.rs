//! The constraints the handlers enforce on parameters and custom phrases, stated
//! in the document as JSON Schema (`pattern`, lengths, bounds, enums), so that a
//! client or a fuzzer reading the document knows exactly which values are
//! accepted: every value the document allows passes validation, and every value
//! it refuses is answered with a `400` problem. Built from the domain's own
//! constants where there are some, so the two cannot drift apart.
//!
//! Applied by [`Constraints`] to every operation by parameter name, since the
//! same parameter (`phrase`, `page`, ...) means the same on every route.
//! What no static schema can say (an expiry in the future, `from` before `to`,
//! a target that is not this service nor a private host, a key's state) is in
//! the descriptions and answered with the documented problems.

use offndat_application::list_links::MAX_SEARCH_CHARS;
use offndat_application::pagination::MAX_PAGE_SIZE;
use offndat_domain::phrase::{CUSTOM_PHRASE_CHARS, MAX_PHRASE_CHARS, RESERVED_PHRASES};
use utoipa::Modify;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, SchemaFormat, SchemaType};
use utoipa::openapi::{Object, ObjectBuilder, RefOr, Schema, Type};

use crate::pages::qr::PNG_SIZES;

/// Characters no phrase may hold anywhere: control characters (Unicode `Cc`, as
/// Rust's `char::is_control`) and `/` (a phrase is one path segment).
const NEVER: &str = r"\u0000-\u001F\u007F-\u009F/";
/// Unicode `White_Space` outside `Cc` (what `str::trim` removes).
const SPACES: &str = r"\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Unicode `White_Space` inside `Cc`.
const CONTROL_SPACES: &str = r"\u0009-\u000D\u0085";
/// What a custom phrase may not hold either, being a path segment people type.
const URL_SPECIAL: &str = "?#%";

/// A phrase in a path (after percent-decoding): 1 to 256 characters, not only
/// white space, no control character and no `/` (`Phrase::check`).
pub fn phrase_pattern() -> String {
    format!("^[^{NEVER}]*[^{NEVER}{SPACES}][^{NEVER}]*$")
}

/// The phrase of the short URL `/{phrase}`: as [`phrase_pattern`], but not a
/// path the service serves itself at the root (those answer their own content).
pub fn short_url_phrase_pattern() -> String {
    format!("^(?!(?:docs|openapi\\.json)$){}", &phrase_pattern()[1..])
}

/// A phrase a client chooses (`Phrase::parse_custom`): 3 to 128 characters,
/// none of them a control character, `/`, `?`, `#` or `%`, no white space at
/// either end, and none of [`RESERVED_PHRASES`] (compared ignoring ASCII case).
pub fn custom_phrase_pattern() -> String {
    let end = format!("[^{NEVER}{URL_SPECIAL}{SPACES}]");
    let middle = format!("[^{NEVER}{URL_SPECIAL}]");
    let (min, max) = (*CUSTOM_PHRASE_CHARS.start(), *CUSTOM_PHRASE_CHARS.end());
    let reserved: Vec<String> = RESERVED_PHRASES.iter().map(|word| ignoring_ascii_case(word)).collect();
    format!("^(?!(?:{})$){end}{middle}{{{},{}}}{end}$", reserved.join("|"), min - 2, max - 2)
}

/// `word` as a pattern matching it in any ASCII case.
fn ignoring_ascii_case(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            c if c.is_ascii_alphabetic() => format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()),
            c if c.is_ascii_alphanumeric() || c == '-' => c.to_string(),
            c => format!("\\{c}"),
        })
        .collect()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A whole number in `min..=max`; `u32::MAX` is above JSON Schema's `int32`,
/// so no format is claimed.
fn integer(min: u64, max: u64) -> Object {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(min)).maximum(Some(max)).build()
}

/// The schema of the parameter `name` in `place` on `path`, where the handlers
/// constrain it; `None` leaves the documented one.
fn parameter_schema(path: &str, place: &ParameterIn, name: &str) -> Option<Object> {
    let schema = match (place, name) {
        (ParameterIn::Path, "phrase") => {
            let pattern = if path == "/{phrase}" { short_url_phrase_pattern() } else { phrase_pattern() };
            string().min_length(Some(1)).max_length(Some(MAX_PHRASE_CHARS)).pattern(Some(pattern)).build()
        }
        (ParameterIn::Query, "page") => integer(1, u64::from(u32::MAX)),
        (ParameterIn::Query, "pageSize") => integer(1, u64::from(MAX_PAGE_SIZE)),
        (ParameterIn::Query, "size") => integer(u64::from(PNG_SIZES.0), u64::from(PNG_SIZES.2)),
        // Trimmed, then 1 to 200 characters: not only white space, and no NUL
        // (PostgreSQL text cannot hold one).
        (ParameterIn::Query, "search") => string()
            .min_length(Some(1))
            .max_length(Some(MAX_SEARCH_CHARS))
            .pattern(Some(format!("^[^\\u0000]*[^\\u0000{CONTROL_SPACES}{SPACES}][^\\u0000]*$")))
            .build(),
        (ParameterIn::Query, "state") => string().enum_values(Some(["active", "disabled", "expired"])).build(),
        (ParameterIn::Query, "orderBy") => {
            string().enum_values(Some(["createdAt-desc", "createdAt-asc", "visits-desc"])).build()
        }
        (ParameterIn::Query, "granularity") => string().enum_values(Some(["hour", "day"])).build(),
        (ParameterIn::Query, "from" | "to") => {
            string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))).build()
        }
        // 1 to 255 visible ASCII characters (`IdempotencyKey::is_valid`).
        (ParameterIn::Header, "Idempotency-Key") => {
            string().min_length(Some(1)).max_length(Some(255)).pattern(Some("^[!-~]+$")).build()
        }
        _ => return None,
    };
    Some(schema)
}

/// Puts the handlers' constraints into the document; see the module docs.
pub struct Constraints;

impl Modify for Constraints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations: [&mut Option<Operation>; 4] =
                [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let RefOr::T(parameter) = parameter {
                        constrain(path, parameter);
                    }
                }
            }
        }
        let schemas = &mut openapi.components.get_or_insert_with(Default::default).schemas;
        if let Some(phrase) = schemas.get_mut("GenerateLinkRequest").and_then(|s| property(s, "phrase")) {
            phrase.pattern = Some(custom_phrase_pattern());
        }
        if let Some(reason) = schemas.get_mut("EditLinkRequest").and_then(|s| property(s, "disabledReason")) {
            reason.pattern = Some(r"^[^\u0000]*$".to_owned());
        }
        // A patch may leave the target out, but never clear it.
        if let Some(target) = schemas.get_mut("EditLinkRequest").and_then(|s| property(s, "targetUrl")) {
            target.schema_type = SchemaType::Type(Type::String);
        }
    }
}

fn constrain(path: &str, parameter: &mut Parameter) {
    if let Some(schema) = parameter_schema(path, &parameter.parameter_in, &parameter.name) {
        parameter.schema = Some(RefOr::T(Schema::Object(schema)));
    }
}

/// The inline object schema of `object`'s property `name`.
fn property<'a>(object: &'a mut RefOr<Schema>, name: &str) -> Option<&'a mut Object> {
    let RefOr::T(Schema::Object(object)) = object else { return None };
    match object.properties.get_mut(name) {
        Some(RefOr::T(Schema::Object(property))) => Some(property),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_custom_phrase_pattern_names_every_reserved_phrase_in_any_case() {
        let pattern = custom_phrase_pattern();
        assert!(pattern.contains("[Dd][Oo][Cc][Ss]"), "{pattern}");
        assert!(pattern.contains("[Oo][Pp][Ee][Nn][Aa][Pp][Ii]\\.[Jj][Ss][Oo][Nn]"), "{pattern}");
        assert!(pattern.contains("\\.[Ww][Ee][Ll][Ll]-[Kk][Nn][Oo][Ww][Nn]"), "{pattern}");
        assert!(pattern.contains("{1,126}"), "{pattern}");
    }

    #[test]
    fn every_phrase_parameter_states_its_rules() {
        let doc = serde_json::to_value(crate::openapi::openapi()).expect("serialisable");
        let mut phrase_routes = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for operation in item.as_object().expect("item").values() {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    if parameter["name"] == "phrase" {
                        phrase_routes += 1;
                        assert_eq!(parameter["schema"]["maxLength"], 256, "{path}");
                        assert_eq!(parameter["schema"]["minLength"], 1, "{path}");
                        assert!(parameter["schema"]["pattern"].is_string(), "{path}");
                    }
                }
            }
        }
        assert_eq!(phrase_routes, 9);
        let phrase = &doc["components"]["schemas"]["GenerateLinkRequest"]["properties"]["phrase"];
        assert_eq!(phrase["pattern"], custom_phrase_pattern());
    }
}
