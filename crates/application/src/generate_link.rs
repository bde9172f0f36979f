//! Generate a link: validate the request, compose a phrase, store it with its
//! `link.created` event; on a phrase clash, retry with a fresh phrase.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use offndat_domain::{
    CustomPhraseError, Format, HostClass, Language, Link, Phrase, TargetPolicy, TargetUrl, TargetUrlError, Theme,
    Vocabulary, compose_phrase,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use uuid::Uuid;

use crate::error::ApplicationError;
use crate::ports::{Clock, LinkResolver, LinkStore, RandomSource, StoreError, TargetBlocklist};

/// How many fresh phrases are tried before giving up.
pub const MAX_ATTEMPTS: u32 = 10;

/// Most visits a link may be limited to (PostgreSQL `integer`).
pub const MAX_VISITS_LIMIT: i64 = i32::MAX as i64;

/// An optional field of a request as it arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Input<T> {
    /// Absent (or `null` where null means "not set").
    #[default]
    Absent,
    Given(T),
    /// Present with the wrong JSON type: reported by validation.
    Mistyped,
}

/// A request to generate a link. The contract's fields are `None` when absent or
/// of the wrong type; validation reports each of them. The optional ones
/// (`phrase`, `expiresAt`, `maxVisits`) are additions: absent, they change nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateLinkCommand {
    pub target_url: Option<String>,
    pub language_id: Option<i64>,
    pub theme_id: Option<i64>,
    pub format_id: Option<i64>,
    /// A phrase chosen by the client instead of a drawn one.
    pub phrase: Input<String>,
    /// RFC 3339.
    pub expires_at: Input<String>,
    pub max_visits: Input<i64>,
    /// The stored key creating it (`Actor::owner_of_new_links`).
    pub owner_key_id: Option<i64>,
}

/// One broken rule of a generate request, with the contract's stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationFailure {
    TargetUrlIsRequired,
    TargetUrlMustBeAbsoluteUri,
    TargetUrlSchemeNotAllowed,
    TargetUrlLongerThanAllowed,
    TargetUrlIsSelf,
    TargetUrlHasUserInfo,
    TargetUrlIsLoopback,
    TargetUrlIsPrivate,
    TargetUrlIsLinkLocal,
    TargetUrlIsCarrierGradeNat,
    TargetUrlIsUnspecified,
    TargetUrlIsMulticast,
    TargetUrlIsLocalName,
    TargetUrlBlocked,
    LanguageIdOutOfRange,
    ThemeIdOutOfRange,
    FormatIdOutOfRange,
    PhraseInvalid,
    PhraseReserved,
    ExpiresAtInvalid,
    ExpiresAtNotInFuture,
    MaxVisitsOutOfRange,
    DisabledInvalid,
    DisabledReasonInvalid,
}

impl ValidationFailure {
    /// The stable error code clients match on.
    pub const fn code(self) -> &'static str {
        match self {
            Self::TargetUrlIsRequired => "GenerateLink.TargetUrlIsRequired",
            Self::TargetUrlMustBeAbsoluteUri => "GenerateLink.TargetUrlMustBeAbsoluteUri",
            Self::TargetUrlSchemeNotAllowed => "GenerateLink.TargetUrlSchemeNotAllowed",
            Self::TargetUrlLongerThanAllowed => "TargetUrl.LongerThanAllowed",
            Self::TargetUrlIsSelf => "GenerateLink.TargetUrlIsSelf",
            Self::TargetUrlHasUserInfo => "GenerateLink.TargetUrlHasUserInfo",
            Self::TargetUrlIsLoopback => "GenerateLink.TargetUrlIsLoopback",
            Self::TargetUrlIsPrivate => "GenerateLink.TargetUrlIsPrivate",
            Self::TargetUrlIsLinkLocal => "GenerateLink.TargetUrlIsLinkLocal",
            Self::TargetUrlIsCarrierGradeNat => "GenerateLink.TargetUrlIsCarrierGradeNat",
            Self::TargetUrlIsUnspecified => "GenerateLink.TargetUrlIsUnspecified",
            Self::TargetUrlIsMulticast => "GenerateLink.TargetUrlIsMulticast",
            Self::TargetUrlIsLocalName => "GenerateLink.TargetUrlIsLocalName",
            Self::TargetUrlBlocked => "GenerateLink.TargetUrlBlocked",
            Self::LanguageIdOutOfRange => "GenerateLink.LanguageIdOutOfRange",
            Self::ThemeIdOutOfRange => "GenerateLink.ThemeIdOutOfRange",
            Self::FormatIdOutOfRange => "GenerateLink.FormatIdOutOfRange",
            Self::PhraseInvalid => "GenerateLink.PhraseInvalid",
            Self::PhraseReserved => "GenerateLink.PhraseReserved",
            Self::ExpiresAtInvalid => "GenerateLink.ExpiresAtInvalid",
            Self::ExpiresAtNotInFuture => "GenerateLink.ExpiresAtNotInFuture",
            Self::MaxVisitsOutOfRange => "GenerateLink.MaxVisitsOutOfRange",
            Self::DisabledInvalid => "EditLink.DisabledInvalid",
            Self::DisabledReasonInvalid => "EditLink.DisabledReasonInvalid",
        }
    }

    /// The failures a target URL that does not parse under a policy is reported with.
    pub fn for_target(error: TargetUrlError) -> &'static [Self] {
        match error {
            TargetUrlError::Required => &[Self::TargetUrlIsRequired, Self::TargetUrlMustBeAbsoluteUri],
            TargetUrlError::NotAbsolute => &[Self::TargetUrlMustBeAbsoluteUri],
            TargetUrlError::SchemeNotAllowed => &[Self::TargetUrlSchemeNotAllowed],
            TargetUrlError::TooLong => &[Self::TargetUrlLongerThanAllowed],
            TargetUrlError::PointsAtSelf => &[Self::TargetUrlIsSelf],
            TargetUrlError::HasUserInfo => &[Self::TargetUrlHasUserInfo],
            TargetUrlError::Host(class) => match class {
                HostClass::Loopback => &[Self::TargetUrlIsLoopback],
                HostClass::Private => &[Self::TargetUrlIsPrivate],
                HostClass::LinkLocal => &[Self::TargetUrlIsLinkLocal],
                HostClass::CarrierGradeNat => &[Self::TargetUrlIsCarrierGradeNat],
                HostClass::Unspecified => &[Self::TargetUrlIsUnspecified],
                HostClass::Multicast => &[Self::TargetUrlIsMulticast],
                HostClass::LocalName => &[Self::TargetUrlIsLocalName],
            },
        }
    }

    /// The human message for the code.
    pub const fn message(self) -> &'static str {
        match self {
            Self::TargetUrlIsRequired => "The target URL is required.",
            Self::TargetUrlMustBeAbsoluteUri => "The target URL must be an absolute URI.",
            Self::TargetUrlSchemeNotAllowed => "The target URL must use the http or https scheme.",
            Self::TargetUrlLongerThanAllowed => "The target URL must be at most 4096 characters long.",
            Self::TargetUrlIsSelf => "The target URL must not point at this service.",
            Self::TargetUrlHasUserInfo => "The target URL must not contain user info (`user@` before the host).",
            Self::TargetUrlIsLoopback => "The target URL must not point at a loopback address or localhost.",
            Self::TargetUrlIsPrivate => "The target URL must not point at a private network address.",
            Self::TargetUrlIsLinkLocal => "The target URL must not point at a link-local address.",
            Self::TargetUrlIsCarrierGradeNat => "The target URL must not point at a carrier-grade NAT address.",
            Self::TargetUrlIsUnspecified => "The target URL must not point at an unspecified address.",
            Self::TargetUrlIsMulticast => "The target URL must not point at a multicast or broadcast address.",
            Self::TargetUrlIsLocalName => "The target URL must not point at a local-only name (.local, .internal).",
            Self::TargetUrlBlocked => "The target URL's domain is blocked on this service.",
            Self::LanguageIdOutOfRange => "The language identifier must be in the range from 0 to 1 inclusive.",
            Self::ThemeIdOutOfRange => "The theme identifier must be in the range from 0 to 2 inclusive.",
            Self::FormatIdOutOfRange => "The format identifier must be in the range from 0 to 1 inclusive.",
            Self::PhraseInvalid => {
                "The phrase must be a string of 3 to 128 characters without control characters, slashes, \
                 `?`, `#`, `%` or spaces at either end."
            }
            Self::PhraseReserved => "The phrase is reserved for the service's own paths.",
            Self::ExpiresAtInvalid => "The expiry must be an RFC 3339 date-time, e.g. 2026-12-31T23:59:59Z.",
            Self::ExpiresAtNotInFuture => "The expiry must be in the future.",
            Self::MaxVisitsOutOfRange => "The visit limit must be an integer from 1 to 2147483647.",
            Self::DisabledInvalid => "`disabled` must be true or false.",
            Self::DisabledReasonInvalid => "The reason for disabling must be a string of at most 500 characters.",
        }
    }
}

/// The validated form of a command.
#[derive(Debug, Clone)]
struct ValidRequest {
    target_url: TargetUrl,
    language: Language,
    theme: Theme,
    format: Format,
    phrase: Option<Phrase>,
    expires_at: Option<DateTime<Utc>>,
    max_visits: Option<u32>,
}

/// The generate-link use case.
#[derive(Clone)]
pub struct GenerateLink {
    store: Arc<dyn LinkStore>,
    resolver: Arc<dyn LinkResolver>,
    vocabulary: Arc<Vocabulary>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    targets: TargetTerms,
}

/// What a target URL is checked against: the policy and the blocklist. Shared by
/// every use case that sets a target (create, edit).
#[derive(Clone)]
pub struct TargetTerms {
    pub policy: TargetPolicy,
    pub blocklist: Arc<dyn TargetBlocklist>,
}

impl TargetTerms {
    /// Parses `raw` under the policy, then refuses blocklisted domains.
    pub fn check(&self, raw: &str) -> Result<TargetUrl, &'static [ValidationFailure]> {
        let url = TargetUrl::parse(raw, &self.policy).map_err(ValidationFailure::for_target)?;
        match self.blocklist.blocked_by(&url.host()) {
            Some(_) => Err(&[ValidationFailure::TargetUrlBlocked]),
            None => Ok(url),
        }
    }
}

impl GenerateLink {
    pub fn new(
        store: Arc<dyn LinkStore>,
        resolver: Arc<dyn LinkResolver>,
        vocabulary: Arc<Vocabulary>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
        targets: TargetTerms,
    ) -> Self {
        Self { store, resolver, vocabulary, clock, random, targets }
    }

    /// Validates `command` and stores a link under a fresh phrase.
    /// A chosen phrase that is taken (or quarantined) is `PhraseTaken`, not retried.
    pub async fn execute(&self, command: GenerateLinkCommand) -> Result<Link, ApplicationError> {
        let request = self.validate(&command).map_err(ApplicationError::Validation)?;
        let link = |phrase| Link {
            id: Uuid::now_v7(),
            phrase,
            target_url: request.target_url.clone(),
            language: request.language,
            theme: request.theme,
            created_at: self.clock.now(),
            owner_key_id: command.owner_key_id,
            expires_at: request.expires_at,
            max_visits: request.max_visits,
            disabled: false,
            disabled_reason: None,
            limit_reached: false,
        };
        if let Some(chosen) = &request.phrase {
            let link = link(chosen.clone());
            return match self.store.create(&link).await {
                Ok(()) => {
                    // As below: a remembered "unknown" or "deleted" must go.
                    self.resolver.evict(link.phrase.as_str()).await;
                    Ok(link)
                }
                Err(StoreError::PhraseTaken) => Err(ApplicationError::PhraseTaken),
                Err(error) => Err(error.into()),
            };
        }
        let mut rng = SmallRng::seed_from_u64(self.random.seed());
        for _ in 0..MAX_ATTEMPTS {
            let composed = compose_phrase(&self.vocabulary, request.language, request.theme, request.format, &mut rng);
            let link = link(composed.phrase);
            match self.store.create(&link).await {
                Ok(()) => {
                    // A redirect just before may have cached the phrase as unknown
                    // here, or a deleted link's phrase as deleted, in Redis too.
                    self.resolver.evict(link.phrase.as_str()).await;
                    return Ok(link);
                }
                Err(StoreError::PhraseTaken) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApplicationError::CouldNotGenerate { attempts: MAX_ATTEMPTS })
    }

    /// Validates a target URL as create does; edits call this too, so every rule
    /// added here (blocklists, private addresses) applies to both.
    pub fn validate_target(&self, raw: Option<&str>) -> Result<TargetUrl, Vec<ValidationFailure>> {
        self.targets.check(raw.unwrap_or("")).map_err(<[ValidationFailure]>::to_vec)
    }

    /// Checks every rule and lists every failure, in the contract's order.
    fn validate(&self, command: &GenerateLinkCommand) -> Result<ValidRequest, Vec<ValidationFailure>> {
        let mut failures = Vec::new();
        let target_url = match self.validate_target(command.target_url.as_deref()) {
            Ok(url) => Some(url),
            Err(errors) => {
                failures.extend(errors);
                None
            }
        };
        let language = command.language_id.and_then(Language::from_id);
        if language.is_none() {
            failures.push(ValidationFailure::LanguageIdOutOfRange);
        }
        let theme = command.theme_id.and_then(Theme::from_id);
        if theme.is_none() {
            failures.push(ValidationFailure::ThemeIdOutOfRange);
        }
        let format = command.format_id.and_then(Format::from_id);
        if format.is_none() {
            failures.push(ValidationFailure::FormatIdOutOfRange);
        }
        let phrase = match &command.phrase {
            Input::Absent => None,
            Input::Given(raw) => match Phrase::parse_custom(raw) {
                Ok(phrase) => Some(phrase),
                Err(CustomPhraseError::Reserved) => {
                    failures.push(ValidationFailure::PhraseReserved);
                    None
                }
                Err(_) => {
                    failures.push(ValidationFailure::PhraseInvalid);
                    None
                }
            },
            Input::Mistyped => {
                failures.push(ValidationFailure::PhraseInvalid);
                None
            }
        };
        let expires_at = optional(parse_expiry(&command.expires_at, self.clock.now()), &mut failures);
        let max_visits = optional(parse_max_visits(&command.max_visits), &mut failures);
        match (target_url, language, theme, format) {
            (Some(target_url), Some(language), Some(theme), Some(format)) if failures.is_empty() => {
                Ok(ValidRequest { target_url, language, theme, format, phrase, expires_at, max_visits })
            }
            _ => Err(failures),
        }
    }
}

/// The value of an optional rule, or `None` with its failure recorded.
fn optional<T>(result: Result<Option<T>, ValidationFailure>, failures: &mut Vec<ValidationFailure>) -> Option<T> {
    result.unwrap_or_else(|failure| {
        failures.push(failure);
        None
    })
}

/// `expiresAt`: RFC 3339, later than `now`.
pub(crate) fn parse_expiry(
    input: &Input<String>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ValidationFailure> {
    match input {
        Input::Absent => Ok(None),
        Input::Mistyped => Err(ValidationFailure::ExpiresAtInvalid),
        Input::Given(raw) => {
            let at = DateTime::parse_from_rfc3339(raw).map_err(|_| ValidationFailure::ExpiresAtInvalid)?.to_utc();
            if at <= now { Err(ValidationFailure::ExpiresAtNotInFuture) } else { Ok(Some(at)) }
        }
    }
}

/// `maxVisits`: 1 to 2^31 - 1.
pub(crate) fn parse_max_visits(input: &Input<i64>) -> Result<Option<u32>, ValidationFailure> {
    match input {
        Input::Absent => Ok(None),
        Input::Given(n) if (1..=MAX_VISITS_LIMIT).contains(n) => Ok(u32::try_from(*n).ok()),
        _ => Err(ValidationFailure::MaxVisitsOutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use offndat_domain::vocabulary::required_keys;
    use offndat_domain::{LinkStats, Phrase};

    use super::*;

    /// An in-memory store for unit tests of the retry logic; integration tests use
    /// the PostgreSQL adapter.
    #[derive(Default)]
    struct MemoryStore {
        links: Mutex<HashMap<String, Link>>,
        attempts: AtomicU64,
    }

    #[async_trait]
    impl LinkStore for MemoryStore {
        async fn create(&self, link: &Link) -> Result<(), StoreError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let mut links = self.links.lock().expect("lock");
            if links.contains_key(link.phrase.as_str()) {
                return Err(StoreError::PhraseTaken);
            }
            links.insert(link.phrase.to_string(), link.clone());
            Ok(())
        }
        async fn find_by_phrase(&self, phrase: &Phrase) -> Result<Option<Link>, StoreError> {
            Ok(self.links.lock().expect("lock").get(phrase.as_str()).cloned())
        }
        async fn stats_by_phrase(&self, _: &Phrase, _: u32) -> Result<Option<LinkStats>, StoreError> {
            Ok(None)
        }
    }

    struct NoCache;
    #[async_trait]
    impl LinkResolver for NoCache {
        fn cached(&self, _: &str) -> Option<Option<crate::ports::RedirectTarget>> {
            None
        }
        async fn resolve(&self, _: &str) -> Result<Option<crate::ports::RedirectTarget>, StoreError> {
            Ok(None)
        }
        fn invalidate(&self, _: &str) {}
    }

    /// Blocks `blocked.example` and its subdomains.
    struct Blocked;
    impl TargetBlocklist for Blocked {
        fn blocked_by(&self, host: &str) -> Option<String> {
            (host == "blocked.example" || host.ends_with(".blocked.example")).then(|| "blocked.example".to_owned())
        }
    }

    struct FixedClock;
    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            DateTime::UNIX_EPOCH
        }
    }

    struct Counter(AtomicU64);
    impl RandomSource for Counter {
        fn seed(&self) -> u64 {
            self.0.fetch_add(1, Ordering::SeqCst)
        }
    }

    fn one_word_vocabulary() -> Vocabulary {
        Vocabulary::new(
            required_keys().into_iter().map(|k| (k, vec![k.offensiveness.name().replace('-', "")])).collect(),
        )
        .expect("complete")
    }

    fn use_case(store: Arc<MemoryStore>) -> GenerateLink {
        GenerateLink::new(
            store,
            Arc::new(NoCache),
            Arc::new(one_word_vocabulary()),
            Arc::new(FixedClock),
            Arc::new(Counter(AtomicU64::new(0))),
            TargetTerms {
                policy: TargetPolicy::new(url::Url::parse("http://127.0.0.1:8090").expect("url")),
                blocklist: Arc::new(Blocked),
            },
        )
    }

    fn command(target: &str) -> GenerateLinkCommand {
        GenerateLinkCommand {
            target_url: Some(target.to_owned()),
            language_id: Some(0),
            theme_id: Some(1),
            format_id: Some(0),
            owner_key_id: Some(7),
            ..GenerateLinkCommand::default()
        }
    }

    #[tokio::test]
    async fn blocked_and_private_targets_are_refused_with_their_own_codes() {
        let uc = use_case(Arc::default());
        for (target, failure) in [
            ("https://www.blocked.example/x", ValidationFailure::TargetUrlBlocked),
            ("http://192.168.0.1/", ValidationFailure::TargetUrlIsPrivate),
            ("https://a@example.com/", ValidationFailure::TargetUrlHasUserInfo),
        ] {
            let Err(ApplicationError::Validation(failures)) = uc.execute(command(target)).await else {
                panic!("expected a validation error for {target}");
            };
            assert_eq!(failures, [failure], "{target}");
        }
        let link = uc.execute(command("https://notblocked.example/")).await.expect("created");
        assert_eq!(link.owner_key_id, Some(7));
    }

    #[tokio::test]
    async fn validation_lists_every_failure_in_order() {
        let uc = use_case(Arc::default());
        let Err(ApplicationError::Validation(failures)) = uc.execute(GenerateLinkCommand::default()).await else {
            panic!("expected a validation error");
        };
        assert_eq!(
            failures,
            [
                ValidationFailure::TargetUrlIsRequired,
                ValidationFailure::TargetUrlMustBeAbsoluteUri,
                ValidationFailure::LanguageIdOutOfRange,
                ValidationFailure::ThemeIdOutOfRange,
                ValidationFailure::FormatIdOutOfRange,
            ]
        );
    }

    #[tokio::test]
    async fn clashes_retry_until_the_phrase_space_is_exhausted() {
        // One word per list and theme proper-names: two distinct phrases exist.
        let store = Arc::new(MemoryStore::default());
        let uc = use_case(store.clone());
        let mut phrases = HashSet::new();
        for _ in 0..20 {
            match uc.execute(command("https://example.com/")).await {
                Ok(link) => assert!(phrases.insert(link.phrase.to_string())),
                Err(ApplicationError::CouldNotGenerate { attempts }) => {
                    assert_eq!(attempts, MAX_ATTEMPTS);
                    break;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(phrases.len(), 2, "{phrases:?}");
        let before = store.attempts.load(Ordering::SeqCst);
        let result = uc.execute(command("https://example.com/")).await;
        assert!(matches!(result, Err(ApplicationError::CouldNotGenerate { .. })));
        assert_eq!(store.attempts.load(Ordering::SeqCst) - before, u64::from(MAX_ATTEMPTS));
    }
}
