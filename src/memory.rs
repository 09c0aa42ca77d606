//! Handing freed memory back to the OS at the few points where that lowers the process's peak.
//!
//! Rust allocations go to mimalloc (the binary's global allocator); C libraries such as
//! Hyperscan use glibc's malloc. Neither heap can reuse pages the other has freed, and both keep
//! freed pages for reuse by default, so a phase that frees much in one heap and then allocates
//! much in the other adds both to the resident size. Compiling ET Open's prefilter databases is
//! such a phase: the parsed rule texts (~40 MB) are freed in mimalloc just before Hyperscan's
//! compiler allocates ~180 MB in glibc's heap, which it frees again before replay starts.

/// Returns the free pages of both heaps to the OS.
pub fn release_freed() {
    // SAFETY: mi_collect only walks and purges mimalloc's own free lists; with `force` it may
    // be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
    // SAFETY: malloc_trim only releases glibc heap pages that hold no live allocation; it takes
    // the arena locks itself, so it is safe alongside other threads' malloc and free.
    unsafe { libc::malloc_trim(0) };
}
