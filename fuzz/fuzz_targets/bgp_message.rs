//! Any bytes as a BGP stream: framing, every message type and UPDATE
//! parsing under each session flavour must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_bgp_wire::{decode, Message, SessionCtx};

fuzz_target!(|bytes: &[u8]| {
    for (four, ap, ibgp) in [(true, false, false), (false, false, true), (true, true, false)] {
        let ctx = SessionCtx { four_octet_as: four, add_path_v4: ap, add_path_v6: ap, extended_messages: true, ibgp };
        let mut rest = bytes;
        while let Ok(Some((m, len))) = decode(rest, &ctx) {
            if let Message::Update(u) = m {
                let _ = u.parse(&ctx);
            }
            rest = &rest[len..];
        }
    }
});
