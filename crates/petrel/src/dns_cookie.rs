//! What the DNS shells give the answer pipeline for server cookies: the
//! time, and this process's secret for when the config names none.

use std::sync::OnceLock;

/// Seconds since the Unix epoch (a server cookie's timestamp).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// A random secret, made once per process: two outputs of the standard
/// library's hasher under its per-process random key (seeded from the
/// operating system).
pub fn process_secret() -> [u8; 16] {
    static SECRET: OnceLock<[u8; 16]> = OnceLock::new();
    *SECRET.get_or_init(|| {
        use std::hash::BuildHasher;
        let r = std::collections::hash_map::RandomState::new();
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&r.hash_one(0x636f_6f6b_u64).to_le_bytes());
        s[8..].copy_from_slice(&r.hash_one(0x6965_7321_u64).to_le_bytes());
        s
    })
}
