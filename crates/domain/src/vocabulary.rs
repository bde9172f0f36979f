//! Vocabularies: the word lists phrases are drawn from, addressed like files in
//! `{language}/{offensiveness}/{number}/{gender}/{theme}/{partOfSpeech}s.txt`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::catalogue::{
    GrammaticalGender, GrammaticalNumber, Language, Offensiveness, PartOfSpeech, Theme, noun_forms,
};

/// Longest vocabulary entry kept, in characters; longer lines are skipped so three
/// words always fit in a phrase.
pub const MAX_WORD_CHARS: usize = 64;

/// The address of one word list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WordListKey {
    pub language: Language,
    pub offensiveness: Offensiveness,
    pub number: GrammaticalNumber,
    pub gender: GrammaticalGender,
    pub theme: Theme,
    pub part_of_speech: PartOfSpeech,
}

impl WordListKey {
    /// The list's relative path, e.g. `en/offensive/none/none/none/nouns.txt`.
    pub fn path(&self) -> String {
        self.to_string()
    }

    /// Parses a relative path back into a key; `None` for paths outside the layout.
    pub fn from_path(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let [language, offensiveness, number, gender, theme, file] = parts[..] else {
            return None;
        };
        let find = |name: &str, names: &[&'static str]| names.iter().position(|n| *n == name);
        let language = *Language::ALL.iter().find(|l| l.code() == language)?;
        let offensiveness = [Offensiveness::NonOffensive, Offensiveness::Offensive]
            [find(offensiveness, &["non-offensive", "offensive"])?];
        let numbers = [GrammaticalNumber::None, GrammaticalNumber::Singular, GrammaticalNumber::Plural];
        let number = *numbers.iter().find(|n| n.name() == number)?;
        let genders = [
            GrammaticalGender::None,
            GrammaticalGender::Masculine,
            GrammaticalGender::Feminine,
            GrammaticalGender::Neuter,
            GrammaticalGender::MasculinePersonal,
            GrammaticalGender::NonMasculinePersonal,
        ];
        let gender = *genders.iter().find(|g| g.name() == gender)?;
        let theme = *Theme::ALL.iter().find(|t| t.name() == theme)?;
        let parts_of_speech = [PartOfSpeech::Adverb, PartOfSpeech::Adjective, PartOfSpeech::Noun];
        let stem = file.strip_suffix(".txt")?;
        let part_of_speech = *parts_of_speech.iter().find(|p| p.plural_name() == stem)?;
        Some(Self { language, offensiveness, number, gender, theme, part_of_speech })
    }
}

impl fmt::Display for WordListKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}/{}.txt",
            self.language.code(),
            self.offensiveness.name(),
            self.number.name(),
            self.gender.name(),
            self.theme.name(),
            self.part_of_speech.plural_name()
        )
    }
}

/// Why a set of word lists is not a usable vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VocabularyError {
    /// Lists the composition rules can reach are absent or hold no usable word.
    #[error("vocabulary lists missing or empty: {}", .paths.join(", "))]
    MissingLists { paths: Vec<String> },
}

/// A complete vocabulary: every list the composition rules can reach is non-empty.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    lists: HashMap<WordListKey, Vec<String>>,
}

impl Vocabulary {
    /// Builds a vocabulary, failing with every missing or empty required path.
    pub fn new(lists: HashMap<WordListKey, Vec<String>>) -> Result<Self, VocabularyError> {
        let missing: Vec<String> = required_keys()
            .into_iter()
            .filter(|key| lists.get(key).is_none_or(Vec::is_empty))
            .map(|key| key.path())
            .collect();
        if missing.is_empty() { Ok(Self { lists }) } else { Err(VocabularyError::MissingLists { paths: missing }) }
    }

    /// The words of one list; empty for a list the rules never reach.
    pub fn words(&self, key: &WordListKey) -> &[String] {
        self.lists.get(key).map_or(&[], Vec::as_slice)
    }

    /// How many distinct word triples the rules can produce for `language` and
    /// `theme` (an upper bound on distinct phrases: two triples may spell alike).
    pub fn phrase_space(&self, language: Language, theme: Theme) -> u128 {
        let len = |offensiveness, number, gender, theme, part_of_speech| {
            let key = WordListKey { language, offensiveness, number, gender, theme, part_of_speech };
            self.words(&key).len() as u128
        };
        use GrammaticalGender as G;
        use GrammaticalNumber as N;
        use Offensiveness::{NonOffensive as Clean, Offensive as Rude};
        use PartOfSpeech::{Adjective, Adverb, Noun};
        let adverbs_clean = len(Clean, N::None, G::None, Theme::None, Adverb);
        let adverbs_rude = len(Rude, N::None, G::None, Theme::None, Adverb);
        let mut total = 0;
        for (number, genders) in noun_forms(language, theme) {
            for &gender in *genders {
                let adjectives_clean = len(Clean, *number, gender, Theme::None, Adjective);
                let adjectives_rude = len(Rude, *number, gender, Theme::None, Adjective);
                let nouns_clean = len(Clean, *number, gender, theme, Noun);
                if theme == Theme::None {
                    let nouns_rude = len(Rude, *number, gender, Theme::None, Noun);
                    total += adverbs_clean * adjectives_clean * nouns_rude;
                }
                total += adverbs_clean * adjectives_rude * nouns_clean;
                total += adverbs_rude * adjectives_clean * nouns_clean;
            }
        }
        total
    }
}

/// Every list the composition rules can reach, for every language and theme.
pub fn required_keys() -> BTreeSet<WordListKey> {
    use Offensiveness::{NonOffensive, Offensive};
    let mut keys = BTreeSet::new();
    for language in Language::ALL {
        for theme in Theme::ALL {
            let key = |offensiveness, number, gender, theme, part_of_speech| WordListKey {
                language,
                offensiveness,
                number,
                gender,
                theme,
                part_of_speech,
            };
            for offensiveness in [NonOffensive, Offensive] {
                keys.insert(key(
                    offensiveness,
                    GrammaticalNumber::None,
                    GrammaticalGender::None,
                    Theme::None,
                    PartOfSpeech::Adverb,
                ));
            }
            for (number, genders) in noun_forms(language, theme) {
                for &gender in *genders {
                    for offensiveness in [NonOffensive, Offensive] {
                        keys.insert(key(offensiveness, *number, gender, Theme::None, PartOfSpeech::Adjective));
                    }
                    keys.insert(key(NonOffensive, *number, gender, theme, PartOfSpeech::Noun));
                    if theme == Theme::None {
                        keys.insert(key(Offensive, *number, gender, theme, PartOfSpeech::Noun));
                    }
                }
            }
        }
    }
    keys
}

/// What parsing one list's text kept and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedWordList {
    pub words: Vec<String>,
    /// Non-blank lines dropped: too long, a character outside letters, spaces,
    /// `-` and `'`, or a duplicate.
    pub skipped: usize,
}

/// Parses one list: one entry per line; blank lines, over-long entries, entries with
/// other characters and duplicates are skipped; runs of spaces fold to one.
pub fn parse_word_list(text: &str) -> ParsedWordList {
    let mut seen = HashSet::new();
    let mut parsed = ParsedWordList::default();
    for line in text.lines() {
        let entry = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if entry.is_empty() {
            continue;
        }
        let valid = entry.chars().count() <= MAX_WORD_CHARS
            && entry.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\''));
        if valid && seen.insert(entry.clone()) {
            parsed.words.push(entry);
        } else {
            parsed.skipped += 1;
        }
    }
    parsed
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A vocabulary with `n` words in every required list, each word naming its list
    /// so tests can tell where a drawn word came from.
    pub(crate) fn tagged_vocabulary(n: usize) -> Vocabulary {
        let lists = required_keys()
            .into_iter()
            .map(|key| {
                let tag = format!(
                    "{}{}{}{}{}{}",
                    key.language.code(),
                    if key.offensiveness == Offensiveness::Offensive { "rude" } else { "clean" },
                    key.number.name(),
                    key.gender.name(),
                    key.theme.name(),
                    key.part_of_speech.plural_name()
                )
                .replace('-', "");
                (key, (0..n).map(|i| format!("{tag}x{}", "i".repeat(i))).collect())
            })
            .collect();
        Vocabulary::new(lists).expect("complete")
    }

    #[test]
    fn key_paths_round_trip() {
        for key in required_keys() {
            assert_eq!(WordListKey::from_path(&key.path()), Some(key));
        }
        let key = WordListKey::from_path("pl/offensive/plural/non-masculine-personal/none/adjectives.txt")
            .expect("in layout");
        assert_eq!(key.gender, GrammaticalGender::NonMasculinePersonal);
        assert_eq!(WordListKey::from_path("pl/offensive/plural/none/adjectives.txt"), None);
        assert_eq!(WordListKey::from_path("xx/offensive/none/none/none/nouns.txt"), None);
    }

    #[test]
    fn required_keys_cover_the_rules() {
        let paths: BTreeSet<String> = required_keys().iter().map(WordListKey::path).collect();
        for expected in [
            "en/offensive/none/none/none/nouns.txt",
            "en/non-offensive/none/none/politicians/nouns.txt",
            "pl/offensive/plural/non-masculine-personal/none/adjectives.txt",
            "pl/non-offensive/singular/neuter/proper-names/nouns.txt",
            "pl/non-offensive/singular/feminine/politicians/nouns.txt",
        ] {
            assert!(paths.contains(expected), "{expected}");
        }
        for unreachable in [
            "en/offensive/none/none/politicians/nouns.txt",
            "pl/non-offensive/singular/neuter/politicians/nouns.txt",
            "pl/non-offensive/plural/masculine-personal/politicians/nouns.txt",
            "en/non-offensive/none/none/politicians/adjectives.txt",
        ] {
            assert!(!paths.contains(unreachable), "{unreachable}");
        }
    }

    #[test]
    fn missing_lists_are_named() {
        let mut lists: HashMap<_, _> = required_keys().into_iter().map(|k| (k, vec!["word".to_owned()])).collect();
        let gone = WordListKey::from_path("pl/non-offensive/singular/feminine/politicians/nouns.txt").expect("key");
        lists.insert(gone, Vec::new());
        let err = Vocabulary::new(lists).expect_err("incomplete");
        assert_eq!(
            err.to_string(),
            "vocabulary lists missing or empty: pl/non-offensive/singular/feminine/politicians/nouns.txt"
        );
    }

    #[test]
    fn parsing_skips_blank_long_odd_and_duplicate_lines() {
        let long = "a".repeat(MAX_WORD_CHARS + 1);
        let text = format!("walrus\n\n   \narse   over tit\r\n{long}\nwal/rus\nwalrus\ngłupi\n");
        let parsed = parse_word_list(&text);
        assert_eq!(parsed.words, ["walrus", "arse over tit", "głupi"]);
        assert_eq!(parsed.skipped, 3);
    }

    #[test]
    fn phrase_space_follows_the_rules() {
        let vocabulary = tagged_vocabulary(2);
        // English, theme none: three choices of offensive slot, 2^3 triples each.
        assert_eq!(vocabulary.phrase_space(Language::English, Theme::None), 3 * 8);
        // Other themes never have an offensive noun.
        assert_eq!(vocabulary.phrase_space(Language::English, Theme::Politicians), 2 * 8);
        // Polish: five number/gender forms; politicians two.
        assert_eq!(vocabulary.phrase_space(Language::Polish, Theme::None), 5 * 3 * 8);
        assert_eq!(vocabulary.phrase_space(Language::Polish, Theme::ProperNames), 5 * 2 * 8);
        assert_eq!(vocabulary.phrase_space(Language::Polish, Theme::Politicians), 2 * 2 * 8);
    }
}
