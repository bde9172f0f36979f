//! The binaries' memory allocator: mimalloc, set to give freed memory back to
//! the operating system at once, in small pages.
//!
//! mimalloc rather than glibc's malloc: redirects allocate small, short-lived
//! buffers on every request, and glibc spent a tenth of the hot path on them; the
//! worker's batches parse, merge and free many small strings at once, and glibc
//! kept hundreds of MB of them (see docs/performance.md).

pub use mimalloc::MiMalloc;

/// mimalloc's option index of the purge delay (`mi_option_purge_delay` in
/// `mimalloc.h`, version 3; libmimalloc-sys names no constant for it).
const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's option index of `mi_option_allow_thp` (same header).
const ALLOW_THP_OPTION: libmimalloc_sys::mi_option_t = 43;

/// Sets mimalloc to return freed pages to the OS as soon as they are free, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise, and keeps the process off transparent
/// huge pages unless `MIMALLOC_ALLOW_THP` says otherwise. Call it first thing in
/// `main`.
///
/// The purge delay: mimalloc's default (a second) only purges on a later
/// allocation, so after a burst over many links (the aggregator's windows, the
/// worker's batches) hundreds of MB of freed pages stayed resident while the
/// process idled: 478 MB after 8 s over 100k links, 151 MB with this (measured
/// with `load-tests`, throughput within run-to-run spread).
///
/// Huge pages: mimalloc asks for them on its arenas (`MADV_HUGEPAGE`), so where
/// the kernel grants them on request (the usual `madvise` setting) each touched
/// 2 MiB of heap stays resident whole, and a purge of anything smaller frees
/// nothing. After the benchmark's ingest the API's heap held 57 MB of huge pages
/// and RSS was 97–112 MB; without them 67 MB, and the worker 41 → 27 MB
/// (docs/performance.md, "Eighth run"). mimalloc reads `MIMALLOC_ALLOW_THP`
/// only at its start, before `main`, so the process opts out itself.
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` only stores a number in mimalloc's option table;
        // it may be called at any time from any thread, and 15 is the purge delay in
        // the mimalloc version this crate builds (libmimalloc-sys 0.1.49, v3).
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, 0);
        }
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        disable_transparent_huge_pages();
    }
}

/// No huge pages for this process from now on: mimalloc stops asking for them
/// on new arenas, and the kernel stops granting them on the ones it asked for
/// (`PR_SET_THP_DISABLE` overrides `MADV_HUGEPAGE`).
fn disable_transparent_huge_pages() {
    // SAFETY: as above; 43 is `mi_option_allow_thp` in the same version.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(ALLOW_THP_OPTION, 0);
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` only sets a flag on this
        // process's memory map; it reads and writes no memory of ours.
        #[allow(unsafe_code)]
        let refused = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0;
        if refused {
            // Before logging is set up; RSS is larger but nothing else changes.
            eprintln!("transparent huge pages stay on: prctl(PR_SET_THP_DISABLE) failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_and_huge_page_options_are_the_ones_set() {
        // Only meaningful where mimalloc is the allocator's library; the option
        // table is the library's, whatever the global allocator of the tests.
        // SAFETY: reading an option is always allowed.
        #[allow(unsafe_code)]
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        let purge_default = std::env::var_os("MIMALLOC_PURGE_DELAY").is_none();
        let thp_default = std::env::var_os("MIMALLOC_ALLOW_THP").is_none();
        if purge_default {
            assert_eq!(get(super::PURGE_DELAY_OPTION), 1000, "option 15 is the purge delay, 1,000 ms by default");
        }
        if thp_default {
            assert_eq!(get(super::ALLOW_THP_OPTION), 1, "option 43 allows huge pages, 1 by default");
        }
        super::return_freed_memory_promptly();
        if purge_default {
            assert_eq!(get(super::PURGE_DELAY_OPTION), 0);
        }
        if thp_default {
            assert_eq!(get(super::ALLOW_THP_OPTION), 0);
            #[cfg(target_os = "linux")]
            {
                // SAFETY: PR_GET_THP_DISABLE reads the flag set above.
                #[allow(unsafe_code)]
                let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
                assert_eq!(disabled, 1, "the kernel grants this process no huge pages");
            }
        }
    }
}
