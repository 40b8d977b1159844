//! Keys, signatures and denial records against the RFCs' own examples and
//! ring's verifier.

use petrel_dns_wire::name;
use petrel_dnssec::key::{self, Algorithm, Key};
use petrel_dnssec::nsec;
use petrel_dnssec::rrsig::{self, Rrset, Signer, Validity};
use proptest::prelude::*;

fn wire(text: &str) -> Vec<u8> {
    name::from_text(text).unwrap()
}

/// The data an RRSIG covers, rebuilt independently of the signer.
fn covered(rrsig_rdata: &[u8], owner: &[u8], rtype: u16, ttl: u32, rdata: &[&[u8]]) -> Vec<u8> {
    let signer_len = name::wire_len(&rrsig_rdata[18..]).unwrap();
    let mut v = rrsig_rdata[..18 + signer_len].to_vec();
    let mut sorted = rdata.to_vec();
    sorted.sort();
    for rd in sorted {
        v.extend_from_slice(owner);
        v.extend_from_slice(&rtype.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&ttl.to_be_bytes());
        v.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        v.extend_from_slice(rd);
    }
    v
}

#[test]
fn generated_keys_sign_what_their_public_half_verifies_and_survive_their_files() {
    for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        for flags in [256, 257] {
            let zone = wire("Example.NET.");
            let (private, k) = Key::generate(&zone, flags, alg).unwrap();
            assert_eq!(k.owner, wire("example.net."));
            assert_eq!(k.is_sep(), flags == 257);
            let again = Key::from_bind(&k.key_file(), &k.private_file(&private)).unwrap();
            assert_eq!((again.tag, &again.public, again.flags), (k.tag, &k.public, k.flags));
            assert!(k
                .file_stem()
                .starts_with(&format!("Kexample.net.+{:03}+", alg.number())));
            let owner = wire("www.example.net.");
            let rdata: [&[u8]; 2] = [&[192, 0, 2, 2], &[192, 0, 2, 1]];
            let s = Signer {
                key: &again,
                zone: &k.owner,
                validity: Validity::starting(1_800_000_000, 14),
            };
            let mut sorted = rdata.to_vec();
            rrsig::sort_canonical(&mut sorted);
            let set = Rrset {
                owner: &owner,
                rtype: 1,
                ttl: 30,
                rdata: &sorted,
            };
            let sig = rrsig::sign(&s, &set).unwrap();
            assert_eq!(sig.len(), rrsig::rrsig_len(k.owner.len()));
            assert_eq!(&sig[..2], &[0, 1], "type covered");
            assert_eq!((sig[2], sig[3]), (alg.number(), 3), "algorithm, labels");
            assert_eq!(&sig[16..18], &k.tag.to_be_bytes());
            let data = covered(&sig, &owner, 1, 30, &rdata);
            let body = &sig[sig.len() - 64..];
            assert!(k.verify(&data, body), "{alg:?}");
            // Any other data does not verify.
            let mut other = data.clone();
            *other.last_mut().unwrap() ^= 1;
            assert!(!k.verify(&other, body));
        }
    }
}

#[test]
fn key_files_are_checked() {
    let (private, k) = Key::generate(&wire("example.net."), 257, Algorithm::EcdsaP256Sha256).unwrap();
    let (_, other) = Key::generate(&wire("example.net."), 257, Algorithm::EcdsaP256Sha256).unwrap();
    assert_eq!(
        Key::from_bind(&other.key_file(), &k.private_file(&private)).unwrap_err(),
        key::KeyError::Mismatch("the private key does not match the public key")
    );
    assert_eq!(
        Key::from_bind("; nothing\n", &k.private_file(&private)).unwrap_err(),
        key::KeyError::NoDnskey
    );
    let rsa = "example.net. IN DNSKEY 257 3 8 AwEAAQ==\n";
    assert_eq!(
        Key::from_bind(rsa, "Algorithm: 8\nPrivateKey: AA==\n").unwrap_err(),
        key::KeyError::Algorithm(8)
    );
    assert!(matches!(
        Key::from_bind(&k.key_file(), "Private-key-format: v1.3\nAlgorithm: 13\n").unwrap_err(),
        key::KeyError::Missing("PrivateKey")
    ));
    assert!(matches!(
        Key::from_bind(&k.key_file(), "Algorithm: 13\nPrivateKey: !!\n").unwrap_err(),
        key::KeyError::BadPrivate { .. }
    ));
}

#[test]
fn key_tags_follow_rfc_4034_appendix_b() {
    // RFC 4034 §5.4's example DNSKEY (dskey.example.com., RSASHA1) has the
    // key tag 60485; the tag does not depend on the algorithm's meaning.
    let public = data_encoding::BASE64
        .decode(
            b"AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==",
        )
        .unwrap();
    let mut rdata = vec![1, 0, 3, 5];
    rdata.extend_from_slice(&public);
    assert_eq!(key::key_tag(&rdata), 60485);
}

#[test]
fn canonical_rdata_lowers_the_names_of_the_listed_types_only() {
    let mut mx = vec![0, 10];
    mx.extend(wire("Mail.Example.NET."));
    let mut want = vec![0, 10];
    want.extend(wire("mail.example.net."));
    assert_eq!(&*rrsig::canonical_rdata(15, &mx), &want[..]);
    let txt = b"\x05Hello".to_vec();
    assert_eq!(&*rrsig::canonical_rdata(16, &txt), &txt[..]);
    let mut soa = wire("NS1.Example.net.");
    soa.extend(wire("Host.Example.net."));
    soa.extend_from_slice(&[0; 20]);
    let c = rrsig::canonical_rdata(6, &soa);
    assert_eq!(name::to_text(&c), "ns1.example.net.");
    assert!(!c.iter().any(u8::is_ascii_uppercase));
}

#[test]
fn labels_leave_out_a_wildcard() {
    assert_eq!(rrsig::labels(&wire("*.example.net.")), 2);
    assert_eq!(rrsig::labels(&wire("www.example.net.")), 3);
    assert_eq!(rrsig::labels(&wire(".")), 0);
}

#[test]
fn type_bitmaps_match_rfc_4034_section_4_3() {
    // "A MX RRSIG NSEC" of the RFC's example (without its TYPE1234).
    let mut bm = [0u8; nsec::MAX_BITMAP];
    let n = nsec::type_bitmap(&[1, 15, 46, 47], &mut bm);
    assert_eq!(&bm[..n], &[0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03]);
    // CAA lives in window 1.
    let n = nsec::type_bitmap(&[257, 1], &mut bm);
    assert_eq!(&bm[..n], &[0x00, 0x01, 0x40, 0x01, 0x01, 0x40]);
}

#[test]
fn compact_denial_names_the_immediate_successor() {
    let owner = wire("nothing.example.net.");
    let mut out = [0u8; 255 + nsec::MAX_BITMAP];
    let n = nsec::compact_rdata(&owner, &[petrel_dnssec::rtype::NXNAME], &mut out);
    let next_len = name::wire_len(&out).unwrap();
    assert_eq!(name::to_text(&out[..next_len]), "\\000.nothing.example.net.");
    // RRSIG, NSEC (window 0) and NXNAME (128).
    let mut bm = [0u8; nsec::MAX_BITMAP];
    let b = nsec::type_bitmap(&[46, 47, 128], &mut bm);
    assert_eq!(&out[next_len..n], &bm[..b]);
    // A name too long for a successor below it is its own next name.
    let a63 = "a".repeat(63);
    let long = wire(&format!("{a63}.{a63}.{a63}.{}.", "a".repeat(60)));
    assert_eq!(long.len(), 254);
    let mut next = [0u8; 255];
    assert_eq!(nsec::next_name(&long, &mut next), long.len());
}

#[test]
fn signatures_are_due_again_past_half_their_life() {
    let v = Validity::starting(1_000_000, 14);
    assert_eq!(v.inception, 1_000_000 - 3600);
    assert!(!v.due(1_000_000 + 6 * 86_400));
    assert!(v.due(1_000_000 + 7 * 86_400));
}

fn decode_bitmap(b: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 2 <= b.len() {
        let (w, len) = (b[at] as u16, b[at + 1] as usize);
        for (i, byte) in b[at + 2..at + 2 + len].iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    out.push(w * 256 + (i * 8 + bit) as u16);
                }
            }
        }
        at += 2 + len;
    }
    out
}

proptest! {
    #[test]
    fn bitmaps_hold_exactly_their_types(types in proptest::collection::vec(0u16..512, 0..40)) {
        let mut bm = [0u8; nsec::MAX_BITMAP];
        let n = nsec::type_bitmap(&types, &mut bm);
        let mut want = types.clone();
        want.sort();
        want.dedup();
        prop_assert_eq!(decode_bitmap(&bm[..n]), want);
    }

    /// Any owner and RDATA bytes: a signature or an error, never a panic,
    /// and never past the buffers.
    #[test]
    fn signing_any_input_never_panics(
        owner in proptest::collection::vec(any::<u8>(), 0..300),
        rdata in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..6),
        scratch_len in 0usize..2048,
        rtype in any::<u16>(),
    ) {
        let k = Key::from_parts(wire("example.net."), 256, Algorithm::Ed25519, &[7; 32], None).unwrap();
        let zone = wire("example.net.");
        let s = Signer { key: &k, zone: &zone, validity: Validity::starting(1_800_000_000, 1) };
        let canon: Vec<Vec<u8>> = rdata.iter().map(|r| rrsig::canonical_rdata(rtype, r).into_owned()).collect();
        let mut refs: Vec<&[u8]> = canon.iter().map(Vec::as_slice).collect();
        rrsig::sort_canonical(&mut refs);
        let set = Rrset { owner: &owner, rtype, ttl: 60, rdata: &refs };
        let mut scratch = vec![0u8; scratch_len];
        let mut out = vec![0u8; rrsig::rrsig_len(zone.len())];
        if let Ok(n) = rrsig::sign_into(&s, &set, &mut scratch, &mut out) {
            prop_assert_eq!(n, out.len());
            let data = covered(&out, &owner, rtype, 60, &refs);
            prop_assert!(k.verify(&data, &out[n - 64..]));
        }
    }
}

fn b64(s: &str) -> Vec<u8> {
    data_encoding::BASE64.decode(s.as_bytes()).unwrap()
}

/// RFC 8080 §6.1, first Ed25519 example, with its RRSIG as corrected by
/// erratum 4935 (labels 2): Ed25519 is deterministic, so the signature is
/// reproduced byte for byte.
#[test]
fn rfc_8080_ed25519_example_is_reproduced() {
    let key_file = "example.com. 3600 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\n";
    let private =
        "Private-key-format: v1.2\nAlgorithm: 15 (ED25519)\nPrivateKey: ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=\n";
    let k = Key::from_bind(key_file, private).unwrap();
    assert_eq!(k.tag, 3613);
    assert_eq!(
        k.ds_text(),
        "example.com. IN DS 3613 15 2 3AA5AB37EFCE57F737FC1627013FEE07BDF241BD10F3B1964AB55C78E79A304B"
    );
    let owner = wire("example.com.");
    let mut mx = vec![0, 10];
    mx.extend(wire("mail.example.com."));
    let rdata: [&[u8]; 1] = [&mx];
    let s = Signer {
        key: &k,
        zone: &owner,
        validity: Validity {
            inception: 1438207200,
            expiration: 1440021600,
        },
    };
    let set = Rrset {
        owner: &owner,
        rtype: 15,
        ttl: 3600,
        rdata: &rdata,
    };
    let sig = rrsig::sign(&s, &set).unwrap();
    assert_eq!(
        &sig[sig.len() - 64..],
        &b64("oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg==")[..]
    );
    // The data signed, as PowerDNS's tests have it for this example.
    let data = covered(&sig, &owner, 15, 3600, &rdata);
    assert_eq!(
        data_encoding::HEXLOWER.encode(&data),
        "000f0f0200000e1055d4fc6055b94ce00e1d076578616d706c6503636f6d00076578616d706c6503636f6d00000f000100000e100014000a046d61696c076578616d706c6503636f6d00"
    );
}

/// RFC 6605 §6.1: the P-256 key's tag and DS, and its printed RRSIG
/// verifies over the data this crate signs (ECDSA is randomised: a new
/// signature differs but verifies too).
#[test]
fn rfc_6605_p256_example_verifies() {
    let key_file = "example.net. 3600 IN DNSKEY 257 3 13 ( GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb\n";
    let key_file = format!("{key_file}krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA== )\n").replace(['(', ')', '\n'], " ");
    let private = "Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=\n";
    let k = Key::from_bind(&key_file, private).unwrap();
    assert_eq!(k.tag, 55648);
    assert_eq!(
        k.ds_text(),
        "example.net. IN DS 55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
    );
    let zone = wire("example.net.");
    let owner = wire("www.example.net.");
    let rdata: [&[u8]; 1] = [&[192, 0, 2, 1]];
    let s = Signer {
        key: &k,
        zone: &zone,
        validity: Validity {
            inception: 1281607479,
            expiration: 1284026679,
        },
    };
    let set = Rrset {
        owner: &owner,
        rtype: 1,
        ttl: 3600,
        rdata: &rdata,
    };
    let ours = rrsig::sign(&s, &set).unwrap();
    let data = covered(&ours, &owner, 1, 3600, &rdata);
    let printed = b64("qx6wLYqmh+l9oCKTN6qIc+bw6ya+KJ8oMz0YP107epXAyGmt+3SNruPFKG7tZoLBLlUzGGus7ZwmwWep666VCw==");
    assert!(k.verify(&data, &printed));
    assert!(k.verify(&data, &ours[ours.len() - 64..]));
}
