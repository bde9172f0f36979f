//! The catalogues clients choose from: languages, themes and formats.

use offndat_domain::{Format, Language, Theme};

/// One catalogue entry as the contract lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub value: u8,
    pub name: &'static str,
    /// Only languages have a code.
    pub code: Option<&'static str>,
}

/// Every language, in id order.
pub fn languages() -> Vec<CatalogueEntry> {
    Language::ALL.iter().map(|l| CatalogueEntry { value: l.id(), name: l.name(), code: Some(l.code()) }).collect()
}

/// Every theme, in id order.
pub fn themes() -> Vec<CatalogueEntry> {
    Theme::ALL.iter().map(|t| CatalogueEntry { value: t.id(), name: t.name(), code: None }).collect()
}

/// Every format, in id order.
pub fn formats() -> Vec<CatalogueEntry> {
    Format::ALL.iter().map(|f| CatalogueEntry { value: f.id(), name: f.name(), code: None }).collect()
}
