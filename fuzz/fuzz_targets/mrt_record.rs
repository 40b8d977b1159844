//! Any bytes as an MRT file: framing and every record type (TABLE_DUMP,
//! TABLE_DUMP_V2 with and without ADD-PATH, BGP4MP) must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_bgp_wire::mrt;

fuzz_target!(|bytes: &[u8]| {
    for r in mrt::records(bytes) {
        if r.is_err() {
            break;
        }
    }
    // Headers that claim any type/subtype over the rest of the input.
    if bytes.len() >= 4 {
        let mut rec = vec![0u8; 12];
        rec[4..8].copy_from_slice(&bytes[..4]);
        rec.extend_from_slice(&bytes[4..]);
        let len = (rec.len() - 12) as u32;
        rec[8..12].copy_from_slice(&len.to_be_bytes());
        let _ = mrt::parse_record(&rec);
    }
});
