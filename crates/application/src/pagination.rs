//! Page requests (`?page=&pageSize=`) and pages of results, shared by every
//! listing route.

/// Largest page size a listing accepts.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// A valid page request: `page` from 1, `page_size` from 1 to [`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: u32,
    page_size: u32,
}

/// Why a page request was refused; every one found is reported, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFailure {
    PageInvalid,
    PageSizeInvalid,
}

impl PageFailure {
    pub const fn code(self) -> &'static str {
        match self {
            Self::PageInvalid => "Pagination.PageInvalid",
            Self::PageSizeInvalid => "Pagination.PageSizeInvalid",
        }
    }

    pub const fn message(self) -> &'static str {
        match self {
            Self::PageInvalid => "`page` must be a whole number from 1.",
            Self::PageSizeInvalid => "`pageSize` must be a whole number from 1 to 100.",
        }
    }
}

impl PageRequest {
    /// Reads the raw query values; absent ones take their defaults (page 1, 20 a page).
    pub fn parse(page: Option<&str>, page_size: Option<&str>) -> Result<Self, Vec<PageFailure>> {
        let page = page.map_or(Some(1), |p| p.parse::<u32>().ok().filter(|p| *p >= 1));
        let page_size = page_size
            .map_or(Some(DEFAULT_PAGE_SIZE), |s| s.parse::<u32>().ok().filter(|s| (1..=MAX_PAGE_SIZE).contains(s)));
        match (page, page_size) {
            (Some(page), Some(page_size)) => Ok(Self { page, page_size }),
            (page, size) => {
                Err([(page.is_none(), PageFailure::PageInvalid), (size.is_none(), PageFailure::PageSizeInvalid)]
                    .into_iter()
                    .filter_map(|(failed, failure)| failed.then_some(failure))
                    .collect())
            }
        }
    }

    pub fn page(self) -> u32 {
        self.page
    }

    pub fn page_size(self) -> u32 {
        self.page_size
    }

    /// Rows to skip.
    pub fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.page_size)
    }
}

/// One page of results with what is needed to ask for the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub page_size: u32,
    pub total_items: u64,
    pub total_pages: u64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, request: PageRequest, total_items: u64) -> Self {
        let total_pages = total_items.div_ceil(u64::from(request.page_size));
        Self { items, page: request.page, page_size: request.page_size, total_items, total_pages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bounds_and_failures() {
        let request = PageRequest::parse(None, None).expect("defaults");
        assert_eq!((request.page(), request.page_size(), request.offset()), (1, 20, 0));
        assert_eq!(PageRequest::parse(Some("3"), Some("100")).expect("ok").offset(), 200);
        assert_eq!(
            PageRequest::parse(Some("0"), Some("101")),
            Err(vec![PageFailure::PageInvalid, PageFailure::PageSizeInvalid])
        );
        assert_eq!(PageRequest::parse(Some("x"), None), Err(vec![PageFailure::PageInvalid]));
        assert_eq!(Page::new(vec![1], PageRequest::parse(None, Some("2")).expect("ok"), 5).total_pages, 3);
        assert_eq!(Page::<u8>::new(vec![], PageRequest::parse(None, None).expect("ok"), 0).total_pages, 0);
    }
}
