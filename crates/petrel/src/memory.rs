//! Handing freed heap back to the system.

/// Return freed heap to the system. After reading and compiling a large
/// file, a full table or a generation's tables, glibc keeps the peak in its
/// arenas' free lists, which looks like a leak to operators and crowds the
/// next peak. Call it where something large was just dropped.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
