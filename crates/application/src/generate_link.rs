//! Generate a link: validate the request, compose a phrase, store it with its
//! `link.created` event; on a phrase clash, retry with a fresh phrase.

use std::sync::Arc;

use offndat_domain::{Format, Language, Link, TargetUrl, TargetUrlError, Theme, Vocabulary, compose_phrase};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use url::Url;
use uuid::Uuid;

use crate::error::ApplicationError;
use crate::ports::{Clock, LinkResolver, LinkStore, RandomSource, StoreError};

/// How many fresh phrases are tried before giving up.
pub const MAX_ATTEMPTS: u32 = 10;

/// A request to generate a link. Fields are `None` when absent or of the wrong type;
/// validation reports each of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateLinkCommand {
    pub target_url: Option<String>,
    pub language_id: Option<i64>,
    pub theme_id: Option<i64>,
    pub format_id: Option<i64>,
}

/// One broken rule of a generate request, with the contract's stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationFailure {
    TargetUrlIsRequired,
    TargetUrlMustBeAbsoluteUri,
    TargetUrlSchemeNotAllowed,
    TargetUrlLongerThanAllowed,
    TargetUrlIsSelf,
    LanguageIdOutOfRange,
    ThemeIdOutOfRange,
    FormatIdOutOfRange,
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
            Self::LanguageIdOutOfRange => "GenerateLink.LanguageIdOutOfRange",
            Self::ThemeIdOutOfRange => "GenerateLink.ThemeIdOutOfRange",
            Self::FormatIdOutOfRange => "GenerateLink.FormatIdOutOfRange",
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
            Self::LanguageIdOutOfRange => "The language identifier must be in the range from 0 to 1 inclusive.",
            Self::ThemeIdOutOfRange => "The theme identifier must be in the range from 0 to 2 inclusive.",
            Self::FormatIdOutOfRange => "The format identifier must be in the range from 0 to 1 inclusive.",
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
}

/// The generate-link use case.
#[derive(Clone)]
pub struct GenerateLink {
    store: Arc<dyn LinkStore>,
    resolver: Arc<dyn LinkResolver>,
    vocabulary: Arc<Vocabulary>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    public_base: Url,
}

impl GenerateLink {
    pub fn new(
        store: Arc<dyn LinkStore>,
        resolver: Arc<dyn LinkResolver>,
        vocabulary: Arc<Vocabulary>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
        public_base: Url,
    ) -> Self {
        Self { store, resolver, vocabulary, clock, random, public_base }
    }

    /// Validates `command` and stores a link under a fresh phrase.
    pub async fn execute(&self, command: GenerateLinkCommand) -> Result<Link, ApplicationError> {
        let request = self.validate(&command).map_err(ApplicationError::Validation)?;
        let mut rng = SmallRng::seed_from_u64(self.random.seed());
        for _ in 0..MAX_ATTEMPTS {
            let composed = compose_phrase(&self.vocabulary, request.language, request.theme, request.format, &mut rng);
            let link = Link {
                id: Uuid::now_v7(),
                phrase: composed.phrase,
                target_url: request.target_url.clone(),
                language: request.language,
                theme: request.theme,
                created_at: self.clock.now(),
            };
            match self.store.create(&link).await {
                Ok(()) => {
                    // A redirect just before may have cached the phrase as unknown here.
                    self.resolver.invalidate(link.phrase.as_str());
                    return Ok(link);
                }
                Err(StoreError::PhraseTaken) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApplicationError::CouldNotGenerate { attempts: MAX_ATTEMPTS })
    }

    /// Checks every rule and lists every failure, in the contract's order.
    fn validate(&self, command: &GenerateLinkCommand) -> Result<ValidRequest, Vec<ValidationFailure>> {
        let mut failures = Vec::new();
        let target_url = match TargetUrl::parse(command.target_url.as_deref().unwrap_or(""), &self.public_base) {
            Ok(url) => Some(url),
            Err(error) => {
                failures.extend(match error {
                    TargetUrlError::Required => {
                        &[ValidationFailure::TargetUrlIsRequired, ValidationFailure::TargetUrlMustBeAbsoluteUri][..]
                    }
                    TargetUrlError::NotAbsolute => &[ValidationFailure::TargetUrlMustBeAbsoluteUri],
                    TargetUrlError::SchemeNotAllowed => &[ValidationFailure::TargetUrlSchemeNotAllowed],
                    TargetUrlError::TooLong => &[ValidationFailure::TargetUrlLongerThanAllowed],
                    TargetUrlError::PointsAtSelf => &[ValidationFailure::TargetUrlIsSelf],
                });
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
        match (target_url, language, theme, format) {
            (Some(target_url), Some(language), Some(theme), Some(format)) if failures.is_empty() => {
                Ok(ValidRequest { target_url, language, theme, format })
            }
            _ => Err(failures),
        }
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
            Url::parse("http://127.0.0.1:8090").expect("url"),
        )
    }

    fn command(target: &str) -> GenerateLinkCommand {
        GenerateLinkCommand {
            target_url: Some(target.to_owned()),
            language_id: Some(0),
            theme_id: Some(1),
            format_id: Some(0),
        }
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
