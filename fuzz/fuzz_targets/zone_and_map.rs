//! Any text as a zone file and as a CIDR map file: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_types::PopIdx;

fuzz_target!(init: {
    // parse_zone_file turns panics inside `domain`'s scanner into errors with
    // catch_unwind; libfuzzer-sys's hook would abort before that unwinding.
    // Panics anywhere else still reach libfuzzer-sys's own catch and abort.
    std::panic::set_hook(Box::new(|_| {}));
}, |bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(records) = petrel_dns_auth::parse_zone_file("example.net.", text) {
            let mut b = petrel_dns_auth::ZoneSetBuilder::new();
            let _ = b.add_zone(b"\x07example\x03net\x00", records);
        }
        let _ = petrel_config::parse_cidr_map(text, |n| (n == "ams").then_some(PopIdx(0)));
    }
});
