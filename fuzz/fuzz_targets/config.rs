//! Any text as a config file: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Err(errs) = petrel_config::parse(std::path::Path::new("fuzz.toml"), text) {
            assert!(!errs.is_empty());
        }
    }
});
