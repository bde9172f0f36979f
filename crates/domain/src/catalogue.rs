//! The closed catalogues of the v1 contract (languages, themes, formats) and the
//! grammatical categories vocabularies are organised by. Ids and names are part of
//! the public contract: never renumber them.

/// A language phrases can be composed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    English,
    Polish,
}

impl Language {
    /// Every language, in id order.
    pub const ALL: [Language; 2] = [Language::English, Language::Polish];

    /// The contract id (`languageId`).
    pub const fn id(self) -> u8 {
        match self {
            Language::English => 0,
            Language::Polish => 1,
        }
    }

    /// The language for a contract id, if it exists.
    pub fn from_id(id: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|l| i64::from(l.id()) == id)
    }

    /// Display name, as the contract lists it.
    pub const fn name(self) -> &'static str {
        match self {
            Language::English => "English",
            Language::Polish => "Polish",
        }
    }

    /// ISO 639-1 code; also the first segment of vocabulary paths.
    pub const fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Polish => "pl",
        }
    }

    /// Whether nouns carry number and gender that adjectives must agree with.
    pub const fn has_agreement(self) -> bool {
        matches!(self, Language::Polish)
    }
}

/// A theme narrows which nouns a phrase may end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Theme {
    None,
    ProperNames,
    Politicians,
}

impl Theme {
    /// Every theme, in id order.
    pub const ALL: [Theme; 3] = [Theme::None, Theme::ProperNames, Theme::Politicians];

    /// The contract id (`themeId`).
    pub const fn id(self) -> u8 {
        match self {
            Theme::None => 0,
            Theme::ProperNames => 1,
            Theme::Politicians => 2,
        }
    }

    /// The theme for a contract id, if it exists.
    pub fn from_id(id: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|t| i64::from(t.id()) == id)
    }

    /// Contract name; also the theme segment of vocabulary paths.
    pub const fn name(self) -> &'static str {
        match self {
            Theme::None => "none",
            Theme::ProperNames => "proper-names",
            Theme::Politicians => "politicians",
        }
    }
}

/// How the three words of a phrase are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    KebabCase,
    PascalCase,
}

impl Format {
    /// Every format, in id order.
    pub const ALL: [Format; 2] = [Format::KebabCase, Format::PascalCase];

    /// The contract id (`formatId`).
    pub const fn id(self) -> u8 {
        match self {
            Format::KebabCase => 0,
            Format::PascalCase => 1,
        }
    }

    /// The format for a contract id, if it exists.
    pub fn from_id(id: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|f| i64::from(f.id()) == id)
    }

    /// Contract name.
    pub const fn name(self) -> &'static str {
        match self {
            Format::KebabCase => "kebab-case",
            Format::PascalCase => "pascal-case",
        }
    }
}

/// Whether a vocabulary list holds offensive words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Offensiveness {
    NonOffensive,
    Offensive,
}

impl Offensiveness {
    /// Path segment in the vocabulary layout.
    pub const fn name(self) -> &'static str {
        match self {
            Offensiveness::NonOffensive => "non-offensive",
            Offensiveness::Offensive => "offensive",
        }
    }
}

/// Grammatical number of a noun (and so of the adjective agreeing with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrammaticalNumber {
    /// Languages without agreement (English), and adverbs.
    None,
    Singular,
    Plural,
}

impl GrammaticalNumber {
    /// Path segment in the vocabulary layout.
    pub const fn name(self) -> &'static str {
        match self {
            GrammaticalNumber::None => "none",
            GrammaticalNumber::Singular => "singular",
            GrammaticalNumber::Plural => "plural",
        }
    }
}

/// Grammatical gender of a noun. Plural genders are Polish's two plural classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrammaticalGender {
    /// Languages without agreement (English), and adverbs.
    None,
    Masculine,
    Feminine,
    Neuter,
    MasculinePersonal,
    NonMasculinePersonal,
}

impl GrammaticalGender {
    /// Path segment in the vocabulary layout.
    pub const fn name(self) -> &'static str {
        match self {
            GrammaticalGender::None => "none",
            GrammaticalGender::Masculine => "masculine",
            GrammaticalGender::Feminine => "feminine",
            GrammaticalGender::Neuter => "neuter",
            GrammaticalGender::MasculinePersonal => "masculine-personal",
            GrammaticalGender::NonMasculinePersonal => "non-masculine-personal",
        }
    }
}

/// The three slots of a phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartOfSpeech {
    Adverb,
    Adjective,
    Noun,
}

impl PartOfSpeech {
    /// File stem in the vocabulary layout (`adverbs.txt`, ...).
    pub const fn plural_name(self) -> &'static str {
        match self {
            PartOfSpeech::Adverb => "adverbs",
            PartOfSpeech::Adjective => "adjectives",
            PartOfSpeech::Noun => "nouns",
        }
    }
}

/// The number/gender combinations a noun of `language` and `theme` may take.
///
/// English has no agreement: only `(None, None)`. Polish nouns are singular
/// (masculine, feminine, neuter) or plural (masculine-personal,
/// non-masculine-personal); politicians are singular only and never neuter.
pub fn noun_forms(language: Language, theme: Theme) -> &'static [(GrammaticalNumber, &'static [GrammaticalGender])] {
    use GrammaticalGender as G;
    use GrammaticalNumber as N;
    const NONE: &[(N, &[G])] = &[(N::None, &[G::None])];
    const POLISH: &[(N, &[G])] = &[
        (N::Singular, &[G::Masculine, G::Feminine, G::Neuter]),
        (N::Plural, &[G::MasculinePersonal, G::NonMasculinePersonal]),
    ];
    const POLISH_POLITICIANS: &[(N, &[G])] = &[(N::Singular, &[G::Masculine, G::Feminine])];
    match (language.has_agreement(), theme) {
        (false, _) => NONE,
        (true, Theme::Politicians) => POLISH_POLITICIANS,
        (true, _) => POLISH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_match_the_contract() {
        let languages: Vec<_> = Language::ALL.iter().map(|l| (l.id(), l.name(), l.code())).collect();
        assert_eq!(languages, [(0, "English", "en"), (1, "Polish", "pl")]);
        let themes: Vec<_> = Theme::ALL.iter().map(|t| (t.id(), t.name())).collect();
        assert_eq!(themes, [(0, "none"), (1, "proper-names"), (2, "politicians")]);
        let formats: Vec<_> = Format::ALL.iter().map(|f| (f.id(), f.name())).collect();
        assert_eq!(formats, [(0, "kebab-case"), (1, "pascal-case")]);
    }

    #[test]
    fn from_id_rejects_out_of_range() {
        for id in [-1, 2, 99, 1 << 40] {
            assert_eq!(Language::from_id(id), None, "{id}");
            assert_eq!(Format::from_id(id), None, "{id}");
        }
        assert_eq!(Theme::from_id(2), Some(Theme::Politicians));
        assert_eq!(Theme::from_id(3), None);
        assert_eq!(Language::from_id(1), Some(Language::Polish));
    }

    #[test]
    fn polish_politicians_are_singular_and_never_neuter() {
        let forms = noun_forms(Language::Polish, Theme::Politicians);
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].0, GrammaticalNumber::Singular);
        assert!(!forms[0].1.contains(&GrammaticalGender::Neuter));
        assert_eq!(forms[0].1.len(), 2);
    }

    #[test]
    fn english_has_no_number_or_gender() {
        for theme in Theme::ALL {
            assert_eq!(
                noun_forms(Language::English, theme),
                &[(GrammaticalNumber::None, &[GrammaticalGender::None][..])]
            );
        }
    }
}
