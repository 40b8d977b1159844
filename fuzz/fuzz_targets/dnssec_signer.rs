//! The signer's input: key files of any text, and any owner and RDATA
//! bytes to canonicalise and sign. Errors are fine; panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_dnssec::key::{Algorithm, Key};
use petrel_dnssec::rrsig::{self, Rrset, Signer, Validity};

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let _ = Key::from_bind(&String::from_utf8_lossy(a), &String::from_utf8_lossy(b));
    if data.len() < 4 {
        return;
    }
    let rtype = u16::from_be_bytes([data[0], data[1]]);
    let owner_len = data[2] as usize % 300;
    let rest = &data[3..];
    let (owner, rest) = rest.split_at(owner_len.min(rest.len()));
    let canon: Vec<Vec<u8>> = rest
        .chunks(37)
        .map(|c| rrsig::canonical_rdata(rtype, c).into_owned())
        .collect();
    let mut refs: Vec<&[u8]> = canon.iter().map(Vec::as_slice).collect();
    rrsig::sort_canonical(&mut refs);
    let zone = b"\x07example\x03net\x00";
    let key = Key::from_parts(zone.to_vec(), 256, Algorithm::Ed25519, &[9; 32], None).expect("a valid seed");
    let s = Signer {
        key: &key,
        zone,
        validity: Validity::starting(1_800_000_000, 7),
    };
    let set = Rrset {
        owner,
        rtype,
        ttl: 300,
        rdata: &refs,
    };
    let mut scratch = [0u8; 1024];
    let mut out = [0u8; 18 + 255 + 64];
    let _ = rrsig::sign_into(&s, &set, &mut scratch, &mut out);
    let mut nsec = [0u8; 255 + petrel_dnssec::nsec::MAX_BITMAP];
    if petrel_dns_wire::name::wire_len(owner) == Some(owner.len()) {
        let types: Vec<u16> = rest.chunks(2).map(|c| u16::from(c[0]) << 8 | u16::from(*c.get(1).unwrap_or(&0))).collect();
        let _ = petrel_dnssec::nsec::compact_rdata(owner, &types, &mut nsec);
    }
});
