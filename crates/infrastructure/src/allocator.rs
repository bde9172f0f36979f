//! The binaries' memory allocator: mimalloc, set to give freed memory back to
//! the operating system at once.
//!
//! mimalloc rather than glibc's malloc: redirects allocate small, short-lived
//! buffers on every request, and glibc spent a tenth of the hot path on them; the
//! worker's batches parse, merge and free many small strings at once, and glibc
//! kept hundreds of MB of them (see docs/performance.md).

pub use mimalloc::MiMalloc;

/// mimalloc's option index of the purge delay (`mi_option_purge_delay` in
/// `mimalloc.h`, version 3; libmimalloc-sys names no constant for it).
const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc to return freed pages to the OS as soon as they are free, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. Its default (a second) only purges on a
/// later allocation, so after a burst over many links (the aggregator's windows,
/// the worker's batches) hundreds of MB of freed pages stayed resident while the
/// process idled: 478 MB after 8 s over 100k links, 151 MB with this (measured
/// with `load-tests`, throughput within run-to-run spread).
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores a number in mimalloc's option table; it
    // may be called at any time from any thread, and 15 is the purge delay in the
    // mimalloc version this crate builds (libmimalloc-sys 0.1.49, v3).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, 0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // The environment's value wins; nothing to check.
        }
        // Only meaningful where mimalloc is the allocator's library; the option
        // table is the library's, whatever the global allocator of the tests.
        // SAFETY: reading an option is always allowed.
        #[allow(unsafe_code)]
        let before = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY_OPTION) };
        assert_eq!(before, 1000, "option 15 is the purge delay, 1,000 ms by default");
        super::return_freed_memory_promptly();
        #[allow(unsafe_code)]
        let after = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY_OPTION) };
        assert_eq!(after, 0);
    }
}
