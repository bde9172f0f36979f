//! Phrase composition, with the original offnd.at rules: adverb + adjective + noun,
//! exactly one of them offensive, adjectives agreeing with the noun where the
//! language demands it.

use rand::Rng;

use crate::catalogue::{
    Format, GrammaticalGender, GrammaticalNumber, Language, Offensiveness, PartOfSpeech, Theme, noun_forms,
};
use crate::phrase::Phrase;
use crate::vocabulary::{Vocabulary, WordListKey};

/// A composed phrase and how it was drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedPhrase {
    pub phrase: Phrase,
    /// The vocabulary entries drawn: adverb, adjective, noun.
    pub words: [String; 3],
    /// The one slot drawn from an offensive list.
    pub offensive: PartOfSpeech,
    pub number: GrammaticalNumber,
    pub gender: GrammaticalGender,
}

/// Draws a phrase for `language` and `theme` and formats it.
///
/// The noun's number and gender are drawn first, uniformly per level (number, then
/// gender within it). Then the offensive slot: with theme `none` the noun with
/// probability ½; otherwise the adjective with probability ½, else the adverb. Each
/// word is uniform within its list. Adverbs and adjectives always come from theme
/// `none`; the noun from `theme`.
pub fn compose_phrase<R: Rng + ?Sized>(
    vocabulary: &Vocabulary,
    language: Language,
    theme: Theme,
    format: Format,
    rng: &mut R,
) -> ComposedPhrase {
    let forms = noun_forms(language, theme);
    let (number, genders) = forms[rng.random_range(0..forms.len())];
    let gender = genders[rng.random_range(0..genders.len())];

    let offensive = if theme == Theme::None && rng.random_bool(0.5) {
        PartOfSpeech::Noun
    } else if rng.random_bool(0.5) {
        PartOfSpeech::Adjective
    } else {
        PartOfSpeech::Adverb
    };
    let offensiveness = |slot| {
        if slot == offensive { Offensiveness::Offensive } else { Offensiveness::NonOffensive }
    };

    let mut draw = |part_of_speech, number, gender, theme| {
        let key = WordListKey {
            language,
            offensiveness: offensiveness(part_of_speech),
            number,
            gender,
            theme,
            part_of_speech,
        };
        let words = vocabulary.words(&key);
        // `Vocabulary::new` guarantees every reachable list is non-empty.
        words[rng.random_range(0..words.len())].clone()
    };
    let adverb = draw(PartOfSpeech::Adverb, GrammaticalNumber::None, GrammaticalGender::None, Theme::None);
    let adjective = draw(PartOfSpeech::Adjective, number, gender, Theme::None);
    let noun = draw(PartOfSpeech::Noun, number, gender, theme);

    let words = [adverb, adjective, noun];
    let phrase = Phrase::from_composed(format_words(&words, format));
    ComposedPhrase { phrase, words, offensive, number, gender }
}

/// Joins vocabulary entries in `format`. An entry may hold several words: in
/// kebab-case its spaces become `-`; in pascal-case each of its words is capitalised.
/// Letters outside ASCII are kept (`głupi` → `Głupi`).
pub fn format_words<S: AsRef<str>>(entries: &[S], format: Format) -> String {
    let words = entries.iter().flat_map(|entry| entry.as_ref().split_whitespace());
    match format {
        Format::KebabCase => words.map(str::to_lowercase).collect::<Vec<_>>().join("-"),
        Format::PascalCase => words.map(capitalise).collect(),
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::vocabulary::tests::tagged_vocabulary;

    const DRAWS: usize = 20_000;

    fn draws(language: Language, theme: Theme, seed: u64) -> Vec<ComposedPhrase> {
        let vocabulary = tagged_vocabulary(5);
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..DRAWS).map(|_| compose_phrase(&vocabulary, language, theme, Format::KebabCase, &mut rng)).collect()
    }

    /// Asserts `count` of `DRAWS` is within 3% (absolute) of `expected` share.
    fn assert_share(count: usize, expected: f64, what: &str) {
        let share = count as f64 / DRAWS as f64;
        assert!((share - expected).abs() < 0.03, "{what}: {share} vs {expected}");
    }

    fn count(phrases: &[ComposedPhrase], pred: impl Fn(&ComposedPhrase) -> bool) -> usize {
        phrases.iter().filter(|p| pred(p)).count()
    }

    #[test]
    fn formats_keep_non_ascii_letters() {
        let words = ["bardzo", "głupi", "kot"];
        assert_eq!(format_words(&words, Format::KebabCase), "bardzo-głupi-kot");
        assert_eq!(format_words(&words, Format::PascalCase), "BardzoGłupiKot");
        assert_eq!(format_words(&["ŁADNIE", "Żółty", "Ćma"], Format::KebabCase), "ładnie-żółty-ćma");
    }

    #[test]
    fn multi_word_entries_split_in_both_formats() {
        let words = ["arse over tit", "grumpy", "Kevin"];
        assert_eq!(format_words(&words, Format::KebabCase), "arse-over-tit-grumpy-kevin");
        assert_eq!(format_words(&words, Format::PascalCase), "ArseOverTitGrumpyKevin");
    }

    #[test]
    fn exactly_one_word_is_offensive_and_it_is_the_drawn_slot() {
        for language in Language::ALL {
            for theme in Theme::ALL {
                for composed in draws(language, theme, 1) {
                    let rude: Vec<_> = composed.words.iter().map(|w| w.contains("rude")).collect();
                    assert_eq!(rude.iter().filter(|r| **r).count(), 1, "{composed:?}");
                    let slot = match composed.offensive {
                        PartOfSpeech::Adverb => 0,
                        PartOfSpeech::Adjective => 1,
                        PartOfSpeech::Noun => 2,
                    };
                    assert!(rude[slot], "{composed:?}");
                }
            }
        }
    }

    #[test]
    fn theme_none_offends_with_the_noun_half_the_time() {
        let phrases = draws(Language::English, Theme::None, 2);
        assert_share(count(&phrases, |p| p.offensive == PartOfSpeech::Noun), 0.5, "noun");
        assert_share(count(&phrases, |p| p.offensive == PartOfSpeech::Adjective), 0.25, "adjective");
        assert_share(count(&phrases, |p| p.offensive == PartOfSpeech::Adverb), 0.25, "adverb");
    }

    #[test]
    fn other_themes_never_draw_an_offensive_noun() {
        for language in Language::ALL {
            for theme in [Theme::ProperNames, Theme::Politicians] {
                let phrases = draws(language, theme, 3);
                assert_eq!(count(&phrases, |p| p.offensive == PartOfSpeech::Noun), 0);
                assert_share(count(&phrases, |p| p.offensive == PartOfSpeech::Adjective), 0.5, "adjective");
                let theme_tag = theme.name().replace('-', "");
                assert!(phrases.iter().all(|p| p.words[2].contains(&theme_tag)), "nouns from {theme:?}");
            }
        }
    }

    #[test]
    fn adverbs_and_adjectives_always_come_from_theme_none() {
        for theme in Theme::ALL {
            for phrase in draws(Language::Polish, theme, 4) {
                assert!(phrase.words[0].contains("nonenonenoneadverbs"), "{:?}", phrase.words);
                assert!(phrase.words[1].contains("noneadjectives"), "{:?}", phrase.words);
            }
        }
    }

    #[test]
    fn english_uses_number_and_gender_none() {
        for theme in Theme::ALL {
            for phrase in draws(Language::English, theme, 5) {
                assert_eq!((phrase.number, phrase.gender), (GrammaticalNumber::None, GrammaticalGender::None));
            }
        }
    }

    #[test]
    fn polish_adjective_agrees_with_the_noun() {
        for theme in Theme::ALL {
            for phrase in draws(Language::Polish, theme, 6) {
                let form = format!("{}{}", phrase.number.name(), phrase.gender.name()).replace('-', "");
                assert!(phrase.words[1].contains(&form), "adjective {:?}", phrase.words);
                assert!(phrase.words[2].contains(&form), "noun {:?}", phrase.words);
            }
        }
    }

    #[test]
    fn polish_number_then_gender_are_uniform() {
        let phrases = draws(Language::Polish, Theme::None, 7);
        let singular = count(&phrases, |p| p.number == GrammaticalNumber::Singular);
        assert_share(singular, 0.5, "singular");
        let mut by_gender: HashMap<GrammaticalGender, usize> = HashMap::new();
        for p in &phrases {
            *by_gender.entry(p.gender).or_default() += 1;
        }
        for gender in [GrammaticalGender::Masculine, GrammaticalGender::Feminine, GrammaticalGender::Neuter] {
            assert_share(by_gender[&gender], 0.5 / 3.0, gender.name());
        }
        for gender in [GrammaticalGender::MasculinePersonal, GrammaticalGender::NonMasculinePersonal] {
            assert_share(by_gender[&gender], 0.25, gender.name());
        }
        assert_eq!(by_gender.get(&GrammaticalGender::None), None);
    }

    #[test]
    fn polish_proper_names_take_both_numbers() {
        let phrases = draws(Language::Polish, Theme::ProperNames, 8);
        assert_share(count(&phrases, |p| p.number == GrammaticalNumber::Plural), 0.5, "plural");
    }

    #[test]
    fn polish_politicians_are_singular_and_never_neuter() {
        let phrases = draws(Language::Polish, Theme::Politicians, 9);
        assert!(phrases.iter().all(|p| p.number == GrammaticalNumber::Singular));
        assert!(phrases.iter().all(|p| p.gender != GrammaticalGender::Neuter));
        assert_share(count(&phrases, |p| p.gender == GrammaticalGender::Feminine), 0.5, "feminine");
    }

    #[test]
    fn words_are_drawn_uniformly_within_a_list() {
        let phrases = draws(Language::English, Theme::Politicians, 10);
        let mut nouns: HashMap<&str, usize> = HashMap::new();
        for p in &phrases {
            *nouns.entry(p.words[2].as_str()).or_default() += 1;
        }
        assert_eq!(nouns.len(), 5);
        for (noun, n) in nouns {
            assert_share(n, 0.2, noun);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_phrase() {
        let vocabulary = tagged_vocabulary(5);
        let compose = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            compose_phrase(&vocabulary, Language::Polish, Theme::None, Format::PascalCase, &mut rng).phrase
        };
        assert_eq!(compose(42), compose(42));
    }
}
