//! Loading vocabularies: the built-in lists compiled into the binary, or a
//! directory in the same layout chosen by the operator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
use offndat_domain::vocabulary::{parse_word_list, required_keys};
use offndat_domain::{Vocabulary, VocabularyError, WordListKey};

/// The default lists, in `{language}/{offensiveness}/{number}/{gender}/{theme}/{partOfSpeech}s.txt`.
static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/vocabularies");

/// Why a vocabulary could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum VocabularyLoadError {
    #[error("vocabulary directory {dir} lacks lists the rules need (missing or empty): {}", .paths.join(", "))]
    Incomplete { dir: String, paths: Vec<String> },
    #[error("cannot read vocabulary list {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
}

/// Loads the built-in vocabulary.
pub fn load_built_in() -> Result<Vocabulary, VocabularyLoadError> {
    let lists = required_keys()
        .into_iter()
        .filter_map(|key| {
            let text = BUILT_IN.get_file(key.path())?.contents_utf8()?;
            Some((key, parse_word_list(text).words))
        })
        .collect();
    build(lists, "(built-in)")
}

/// Loads the lists the rules need from `dir`; other files there are ignored.
pub fn load_directory(dir: &Path) -> Result<Vocabulary, VocabularyLoadError> {
    let mut lists = HashMap::new();
    for key in required_keys() {
        let path = dir.join(key.path());
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let parsed = parse_word_list(&text);
                if parsed.skipped > 0 {
                    tracing::warn!(path = %path.display(), skipped = parsed.skipped, "skipped over-long, duplicate or invalid vocabulary lines");
                }
                lists.insert(key, parsed.words);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(VocabularyLoadError::Unreadable { path, source }),
        }
    }
    build(lists, &dir.display().to_string())
}

/// Loads `dir` when given, else the built-in lists.
pub fn load(dir: Option<&Path>) -> Result<Vocabulary, VocabularyLoadError> {
    match dir {
        Some(dir) => load_directory(dir),
        None => load_built_in(),
    }
}

fn build(lists: HashMap<WordListKey, Vec<String>>, dir: &str) -> Result<Vocabulary, VocabularyLoadError> {
    Vocabulary::new(lists).map_err(|VocabularyError::MissingLists { paths }| {
        let paths = if dir.starts_with('(') {
            paths
        } else {
            paths.into_iter().map(|p| format!("{}/{p}", dir.trim_end_matches('/'))).collect()
        };
        VocabularyLoadError::Incomplete { dir: dir.to_owned(), paths }
    })
}

#[cfg(test)]
mod tests {
    use offndat_domain::{Language, Theme};

    use super::*;

    #[test]
    fn built_in_vocabulary_is_complete_and_large() {
        let vocabulary = load_built_in().expect("built-in lists are complete");
        assert!(vocabulary.phrase_space(Language::English, Theme::None) >= 100_000_000);
        for language in Language::ALL {
            for theme in Theme::ALL {
                let space = vocabulary.phrase_space(language, theme);
                assert!(space >= 1_000_000, "{language:?} {theme:?}: {space}");
            }
        }
    }

    #[test]
    fn a_directory_missing_a_list_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        for key in required_keys() {
            if key.path() == "pl/offensive/plural/masculine-personal/none/nouns.txt" {
                continue;
            }
            let path = dir.path().join(key.path());
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "\nword\n\n").expect("write");
        }
        let err = load_directory(dir.path()).expect_err("incomplete");
        let message = err.to_string();
        assert!(
            message
                .ends_with(&format!("{}/pl/offensive/plural/masculine-personal/none/nouns.txt", dir.path().display())),
            "{message}"
        );
    }

    #[test]
    fn a_complete_directory_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        for key in required_keys() {
            let path = dir.path().join(key.path());
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, format!("one\n\n{}\ntwo\n", "x".repeat(100))).expect("write");
        }
        let vocabulary = load_directory(dir.path()).expect("complete");
        assert_eq!(vocabulary.phrase_space(Language::English, Theme::None), 3 * 8);
    }
}
