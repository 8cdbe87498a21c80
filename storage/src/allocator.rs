//! Settings for mimalloc, the global allocator of the pinhouse binaries (`pinhouse`,
//! `pinhouse-bench`), which call [`configure`] first thing in `main`. They live here because
//! the store's memory pattern is what they are tuned for. A library never changes them on its
//! own: a program that embeds the store with another allocator does not call this.

use std::ffi::{c_int, c_long};

/// mimalloc's `mi_option_purge_delay` in the vendored v3 header (`include/mimalloc.h`); the
/// crate's Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// How long freed memory stays mapped before mimalloc returns it to the OS (its default is
/// 1 s). The store frees a memtable's buffers every flush and a merge's every compaction; with a
/// 1 s delay the next ones faulted the pages in again and the kernel zeroed them, ~12 % of the
/// CPU of a saturated write run (BENCHMARKS.md, "Freed memory kept 10 s").
pub const PURGE_DELAY_MS: c_long = 10_000;

/// Applies [`PURGE_DELAY_MS`] unless the operator set `MIMALLOC_PURGE_DELAY`.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        #[allow(unsafe_code)]
        // SAFETY: sets one integer in mimalloc's option table (valid index, any value allowed);
        // no memory is touched.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn purge_delay() -> c_long {
        // SAFETY: reads one integer from mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[test]
    fn purge_delay_option_is_the_one_set() {
        // mimalloc's documented default: proves the index names `purge_delay`.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay(), 1000);
        }
        configure();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay(), PURGE_DELAY_MS);
        }
    }
}
