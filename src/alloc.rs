//! Allocator tuning. livegate uses mimalloc (faster than glibc malloc on the
//! request path, docs/performance.md), whose v3 default on Linux commits arena
//! memory eagerly (`arena_eager_commit` = 2 on overcommitting systems), and then
//! keeps freed pages resident. Measured at 200 FLV viewers
//! (`benches/offload.sh`): ~75 KB of RSS per viewer with the default, ~45 KB
//! with eager commit off — the same as glibc malloc — at the same CPU.
//!
//! The option must be set before mimalloc reserves its first arena, that is
//! before the first allocation: [`INIT`] runs from `.init_array`, before Rust's
//! runtime (and `main`) allocate anything.

use std::ffi::{c_int, c_long};

/// mimalloc v3's `mi_option_arena_eager_commit` (`include/mimalloc.h`: the
/// fifth option of `mi_option_e`; its documented default is 2).
const ARENA_EAGER_COMMIT: c_int = 4;

extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
}

extern "C" fn commit_lazily() {
    // SAFETY: `getenv` with a NUL-terminated name (no allocation: this runs
    // before the allocator may be touched), then a plain setter of mimalloc's
    // option table. An operator's MIMALLOC_ARENA_EAGER_COMMIT still wins.
    unsafe {
        if getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            mi_option_set(ARENA_EAGER_COMMIT, 0)
        }
    }
}

/// Runs `commit_lazily` as the process starts, before any allocation.
#[used]
#[link_section = ".init_array"]
pub static INIT: extern "C" fn() = commit_lazily;

#[cfg(test)]
mod tests {
    use std::ffi::{c_int, c_long};

    extern "C" {
        fn mi_option_get(option: c_int) -> c_long;
    }

    #[test]
    fn eager_commit_is_off_from_the_start() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            // SAFETY: a plain getter of mimalloc's option table.
            assert_eq!(unsafe { mi_option_get(super::ARENA_EAGER_COMMIT) }, 0);
        }
    }
}
