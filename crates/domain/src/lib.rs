//! Pure rules of offndat: links, phrases, target URLs, catalogues, vocabularies and
//! phrase composition. No I/O lives here; randomness is passed in by the caller.

pub mod audience;
pub mod catalogue;
pub mod composition;
pub mod link;
pub mod link_state;
pub mod phrase;
pub mod stats;
pub mod target_host;
pub mod target_url;
pub mod visit;
pub mod vocabulary;

pub use audience::{DeviceClass, Dimension, UserAgentClass};
pub use catalogue::{Format, GrammaticalGender, GrammaticalNumber, Language, Offensiveness, PartOfSpeech, Theme};
pub use composition::{ComposedPhrase, compose_phrase};
pub use link::{Link, LinkStats, Visit};
pub use link_state::{LinkState, StoredState};
pub use phrase::{CustomPhraseError, Phrase, PhraseError};
pub use target_host::HostClass;
pub use target_url::{TargetPolicy, TargetUrl, TargetUrlError};
pub use visit::NewVisit;
pub use vocabulary::{Vocabulary, VocabularyError, WordListKey};
