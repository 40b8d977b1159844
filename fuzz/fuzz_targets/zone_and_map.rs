//! Any text as a zone file and as a CIDR map file: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_types::PopIdx;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(records) = petrel_dns_auth::parse_zone_file("example.net.", text) {
            let mut b = petrel_dns_auth::ZoneSetBuilder::new();
            let _ = b.add_zone(b"\x07example\x03net\x00", records);
        }
        let _ = petrel_config::parse_cidr_map(text, |n| (n == "ams").then_some(PopIdx(0)));
    }
});
