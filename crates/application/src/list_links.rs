//! List the caller's links: paginated, searchable by phrase and target, filtered
//! by state, in one of three orders.

use offndat_domain::Link;

/// Largest page.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// Which links by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Followable now: not disabled, not expired, under its visit limit.
    Active,
    Disabled,
    /// Past `expiresAt` and not disabled.
    Expired,
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    #[default]
    CreatedDesc,
    CreatedAsc,
    VisitsDesc,
}

/// A valid list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLinksQuery {
    /// From 1.
    pub page: u32,
    /// 1 to `MAX_PAGE_SIZE`.
    pub page_size: u32,
    /// Matched, case-insensitively, anywhere in the phrase or the target URL.
    pub search: Option<String>,
    pub state: Option<StateFilter>,
    pub order: ListOrder,
}

impl Default for ListLinksQuery {
    fn default() -> Self {
        Self { page: 1, page_size: DEFAULT_PAGE_SIZE, search: None, state: None, order: ListOrder::default() }
    }
}

/// A link in a list, with its visit totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLink {
    pub link: Link,
    pub visits: i64,
    pub bot_visits: i64,
}

/// One page of links and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPage {
    pub links: Vec<ListedLink>,
    pub total_items: i64,
}

impl LinkPage {
    /// Pages of `page_size` needed for every match (0 when none match).
    pub fn total_pages(&self, page_size: u32) -> i64 {
        let size = i64::from(page_size.max(1));
        (self.total_items + size - 1) / size
    }
}

/// The `ILIKE` pattern matching `search` anywhere, its wildcards escaped.
pub fn contains_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_searches_are_literal() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn pages_round_up() {
        let page = |total_items| LinkPage { links: vec![], total_items };
        assert_eq!(page(0).total_pages(20), 0);
        assert_eq!(page(20).total_pages(20), 1);
        assert_eq!(page(21).total_pages(20), 2);
    }
}
