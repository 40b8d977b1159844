//! Codec round trips, RFC 7606 outcomes and robustness.

use petrel_bgp_wire::attrs::{self as a, AS_TRANS};
use petrel_bgp_wire::*;
use petrel_types::Prefix;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn n(s: &str) -> Nlri {
    Nlri {
        path_id: None,
        prefix: p(s),
    }
}

fn ctx4() -> SessionCtx {
    SessionCtx {
        four_octet_as: true,
        ..Default::default()
    }
}

fn one<'a>(buf: &'a [u8], ctx: &SessionCtx) -> Message<'a> {
    let (m, len) = decode(buf, ctx).unwrap().unwrap();
    assert_eq!(len, buf.len());
    m
}

/// An UPDATE with hand-made attribute bytes and IPv4 NLRI.
fn raw_update(attrs: &[u8], nlri: &[Nlri]) -> Vec<u8> {
    let mut nl = Vec::new();
    let mut out = Vec::new();
    encode_update(
        &UpdateOut {
            withdrawn: &[],
            announced: nlri,
            attrs: &Attributes::default(),
        },
        &ctx4(),
        &mut nl,
    );
    // Take the NLRI part of a real encoding, replace the attributes.
    let (_, _) = (&mut out, ());
    let m = decode(&nl, &ctx4()).unwrap().unwrap().0;
    let Message::Update(u) = m else { unreachable!() };
    encode(
        &Message::Update(Update {
            withdrawn: &[],
            attributes: attrs,
            nlri: u.nlri,
        }),
        &mut out,
    );
    out
}

fn good_attrs() -> Vec<u8> {
    // ORIGIN IGP, AS_PATH seq [65001 65002], NEXT_HOP 192.0.2.1
    let mut v = vec![0x40, 1, 1, 0];
    v.extend_from_slice(&[0x40, 2, 10, 2, 2, 0, 0, 0xfd, 0xe9, 0, 0, 0xfd, 0xea]);
    v.extend_from_slice(&[0x40, 3, 4, 192, 0, 2, 1]);
    v
}

#[test]
fn open_round_trip_with_capabilities() {
    let o = Open {
        version: 4,
        my_as: AS_TRANS as u16,
        hold_time: 90,
        bgp_id: 0xc0000201,
        capabilities: vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::Multiprotocol { afi: 2, safi: 1 },
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::AddPath(vec![(1, 1, 3)]),
            Capability::ExtendedMessage,
            Capability::ExtendedNextHop(vec![(1, 1, 2), (1, 128, 2)]),
            Capability::Unknown {
                code: 64,
                value: vec![0, 120],
            },
        ],
    };
    let mut buf = Vec::new();
    encode(&Message::Open(o.clone()), &mut buf);
    let Message::Open(back) = one(&buf, &SessionCtx::default()) else {
        panic!()
    };
    assert_eq!(back, o);
    assert_eq!(back.asn(), 4_200_000_001);
    assert!(back.multiprotocol(Afi::Ipv6));
    assert!(back.add_path_send(Afi::Ipv4));
    assert!(!back.add_path_send(Afi::Ipv6));
    assert!(back.add_path_receive(Afi::Ipv4));
    assert_eq!(back.unicast_families(), [true, true]);
    assert!(back.ipv4_with_ipv6_next_hops());
    // Without Multiprotocol capabilities a speaker offers IPv4 only.
    let legacy = Open {
        capabilities: vec![Capability::RouteRefresh],
        ..o
    };
    assert_eq!(legacy.unicast_families(), [true, false]);
    assert!(!legacy.ipv4_with_ipv6_next_hops());
}

#[test]
fn update_round_trip_v4_v6_communities() {
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: vec![
            AsPathSegment::Sequence(vec![65001, 4_200_000_000, 65003]),
            AsPathSegment::Set(vec![64512, 64513]),
        ],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(50),
        communities: vec![0xfde9_0064],
        large_communities: vec![[4_200_000_000, 1, 2]],
        mp_next_hop: Some("2001:db8::1".parse().unwrap()),
        unknown: vec![UnknownAttr {
            flags: 0xc0,
            code: 99,
            value: vec![1, 2, 3],
        }],
        ..Default::default()
    };
    let announced = vec![
        n("198.51.100.0/24"),
        n("10.0.0.0/8"),
        n("0.0.0.0/0"),
        n("2001:db8:1::/48"),
        n("2001:db8::/32"),
    ];
    let withdrawn = vec![n("203.0.113.0/25"), n("2001:db8:ff::/64")];
    let mut buf = Vec::new();
    encode_update(
        &UpdateOut {
            withdrawn: &withdrawn,
            announced: &announced,
            attrs: &attrs,
        },
        &ctx4(),
        &mut buf,
    );
    let Message::Update(u) = one(&buf, &ctx4()) else {
        panic!()
    };
    let parsed = u.parse(&ctx4()).unwrap();
    assert_eq!(parsed.treat_as_withdraw, None);
    assert_eq!(parsed.announced, announced);
    assert_eq!(parsed.withdrawn, withdrawn);
    assert_eq!(parsed.attrs, attrs);
    assert_eq!(parsed.attrs.as_path_len(), 4);
    assert_eq!(parsed.attrs.origin_as(), None, "the path ends in a set");
}

#[test]
fn two_octet_sessions_merge_as4_path() {
    let ctx2 = SessionCtx::default();
    // AS_PATH [65001 AS_TRANS 65003] + AS4_PATH [4200000000 65003]
    let mut v = vec![0x40, 1, 1, 0, 0x40, 2, 8, 2, 3, 0xfd, 0xe9, 0x5b, 0xa0, 0xfd, 0xeb];
    v.extend_from_slice(&[0x40, 3, 4, 192, 0, 2, 1]);
    v.extend_from_slice(&[0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0x00, 0, 0, 0xfd, 0xeb]);
    let buf = raw_update(&v, &[n("192.0.2.0/24")]);
    let Message::Update(u) = one(&buf, &ctx2) else { panic!() };
    let parsed = u.parse(&ctx2).unwrap();
    assert_eq!(
        parsed.attrs.as_path,
        vec![
            AsPathSegment::Sequence(vec![65001]),
            AsPathSegment::Sequence(vec![4_200_000_000, 65003])
        ]
    );
    assert_eq!(
        parsed.attrs.asns().collect::<Vec<_>>(),
        vec![65001, 4_200_000_000, 65003]
    );
    assert_eq!(parsed.attrs.origin_as(), Some(65003));
}

#[test]
fn rfc7606_outcomes() {
    let nl = [n("192.0.2.0/24")];
    let parse = |attrs: &[u8]| {
        let buf = raw_update(attrs, &nl);
        let Message::Update(u) = one(&buf, &ctx4()) else {
            panic!()
        };
        u.parse(&ctx4())
    };
    // Good.
    let ok = parse(&good_attrs()).unwrap();
    assert_eq!(ok.announced.len(), 1);
    assert_eq!(ok.attrs.origin_as(), Some(65002));
    // Malformed ORIGIN value: treat-as-withdraw, session stays.
    let mut bad = good_attrs();
    bad[3] = 7;
    let r = parse(&bad).unwrap();
    assert!(r.announced.is_empty() && r.withdrawn == nl && r.treat_as_withdraw.as_deref() == Some("malformed ORIGIN"));
    // COMMUNITIES of 3 octets: treat-as-withdraw.
    let mut bad = good_attrs();
    bad.extend_from_slice(&[0xc0, 8, 3, 1, 2, 3]);
    assert!(parse(&bad).unwrap().treat_as_withdraw.is_some());
    // AGGREGATOR of the wrong size: attribute-discard, routes kept.
    let mut bad = good_attrs();
    bad.extend_from_slice(&[0xc0, 7, 3, 1, 2, 3]);
    let r = parse(&bad).unwrap();
    assert_eq!(r.announced.len(), 1);
    assert_eq!(r.discarded, vec!["malformed AGGREGATOR".to_string()]);
    // Missing NEXT_HOP: treat-as-withdraw.
    let r = parse(&good_attrs()[..good_attrs().len() - 7]).unwrap();
    assert_eq!(r.treat_as_withdraw.as_deref(), Some("missing NEXT_HOP"));
    // Unknown optional transitive: kept; unknown well-known: reset.
    let mut v = good_attrs();
    v.extend_from_slice(&[0xc0, 200, 2, 9, 9]);
    assert_eq!(parse(&v).unwrap().attrs.unknown.len(), 1);
    let mut v = good_attrs();
    v.extend_from_slice(&[0x40, 200, 0]);
    let e = parse(&v).unwrap_err();
    assert_eq!(
        (e.code, e.subcode),
        (notif::UPDATE_MESSAGE, notif::UNRECOGNIZED_WELL_KNOWN)
    );
    // An attribute overrunning the field (RFC 7606 §4): the Total Path
    // Attribute Length still locates the NLRI, which are withdrawn; the
    // session stays.
    let mut v = good_attrs();
    v.extend_from_slice(&[0xc0, 8, 200, 1]);
    let r = parse(&v).unwrap();
    assert!(r.announced.is_empty() && r.withdrawn == nl);
    assert_eq!(
        r.treat_as_withdraw.as_deref(),
        Some("attribute 8 overruns the attribute field")
    );
    // Fewer octets left than any attribute takes: the same.
    let mut v = good_attrs();
    v.extend_from_slice(&[0xc0, 8]);
    let r = parse(&v).unwrap();
    assert_eq!(r.treat_as_withdraw.as_deref(), Some("truncated attribute header"));
    assert_eq!(r.withdrawn, nl);
    // An MP_REACH_NLRI before the overrun was whole: its prefixes are
    // withdrawn too.
    let mut v = good_attrs();
    v.extend_from_slice(&[
        0x80, 14, 24, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 16, 0x20, 0x01,
    ]);
    v.extend_from_slice(&[0xc0, 32, 250, 0]);
    let r = parse(&v).unwrap();
    assert!(r.announced.is_empty() && r.withdrawn.len() == 2, "{r:?}");
    // The overrunning attribute is MP_REACH_NLRI itself: its prefixes cannot
    // be found, so the session is reset.
    let mut v = good_attrs();
    v.extend_from_slice(&[0x80, 14, 200, 0, 2, 1]);
    let e = parse(&v).unwrap_err();
    assert_eq!(
        (e.code, e.subcode),
        (notif::UPDATE_MESSAGE, notif::MALFORMED_ATTRIBUTE_LIST)
    );
    // MP_REACH whose NLRI cannot be parsed (a /200): session reset.
    let mut v = good_attrs();
    v.extend_from_slice(&[0x80, 14, 7, 0, 2, 1, 0, 0, 200, 0x20]);
    let e = parse(&v).unwrap_err();
    assert_eq!(e.subcode, notif::OPTIONAL_ATTRIBUTE_ERROR, "{e}");
    // MP_REACH with parsable NLRI but no usable next hop: treat-as-withdraw.
    let mut v = good_attrs();
    v.extend_from_slice(&[0x80, 14, 8, 0, 2, 1, 0, 0, 16, 0x20, 0x01]);
    let r = parse(&v).unwrap();
    assert_eq!(r.withdrawn.len(), 2, "the IPv4 NLRI and the IPv6 one");
    // MP_REACH twice: reset.
    let mut v = good_attrs();
    let mp = [
        0x80, 14, 24, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 16, 0x20, 0x01,
    ];
    v.extend_from_slice(&mp);
    v.extend_from_slice(&mp);
    let e = parse(&v).unwrap_err();
    assert_eq!(e.subcode, notif::MALFORMED_ATTRIBUTE_LIST, "{e}");
    // LOCAL_PREF from an external peer: discarded.
    let mut v = good_attrs();
    v.extend_from_slice(&[0x40, 5, 4, 0, 0, 0, 100]);
    let r = parse(&v).unwrap();
    assert_eq!(r.attrs.local_pref, None);
    assert_eq!(r.discarded.len(), 1);
    // NEXT_HOP 0.0.0.0: treat-as-withdraw.
    let mut v = good_attrs();
    let l = v.len();
    v[l - 4..].copy_from_slice(&[0, 0, 0, 0]);
    assert!(parse(&v)
        .unwrap()
        .treat_as_withdraw
        .unwrap()
        .contains("invalid NEXT_HOP"));
}

#[test]
fn end_of_rib_markers() {
    let mut buf = Vec::new();
    encode_update(
        &UpdateOut {
            withdrawn: &[],
            announced: &[],
            attrs: &Attributes::default(),
        },
        &ctx4(),
        &mut buf,
    );
    let Message::Update(u) = one(&buf, &ctx4()) else {
        panic!()
    };
    assert_eq!(u.parse(&ctx4()).unwrap().end_of_rib, Some(Afi::Ipv4));
    let eor6 = raw_update(&[0x80, 15, 3, 0, 2, 1], &[]);
    let Message::Update(u) = one(&eor6, &ctx4()) else {
        panic!()
    };
    assert_eq!(u.parse(&ctx4()).unwrap().end_of_rib, Some(Afi::Ipv6));
}

#[test]
fn framing() {
    let mut k = Vec::new();
    encode(&Message::Keepalive, &mut k);
    assert_eq!(k.len(), 19);
    assert_eq!(decode(&k[..18], &ctx4()).unwrap(), None);
    let mut two = k.clone();
    two.extend_from_slice(&k);
    assert_eq!(decode(&two, &ctx4()).unwrap(), Some((Message::Keepalive, 19)));
    let mut bad = k.clone();
    bad[0] = 0;
    assert_eq!(
        decode(&bad, &ctx4()).unwrap_err().subcode,
        notif::CONNECTION_NOT_SYNCHRONIZED
    );
    let mut bad = k.clone();
    bad[17] = 20;
    bad.push(0);
    assert_eq!(decode(&bad, &ctx4()).unwrap_err().subcode, notif::BAD_MESSAGE_LENGTH);
    let mut bad = k.clone();
    bad[18] = 9;
    assert_eq!(decode(&bad, &ctx4()).unwrap_err().subcode, notif::BAD_MESSAGE_TYPE);
    let mut nb = Vec::new();
    encode(
        &Message::Notification(Notification {
            code: 6,
            subcode: 2,
            data: b"bye",
        }),
        &mut nb,
    );
    assert_eq!(
        one(&nb, &ctx4()),
        Message::Notification(Notification {
            code: 6,
            subcode: 2,
            data: b"bye"
        })
    );
}

fn prefix_v4() -> impl Strategy<Value = Nlri> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Nlri {
        path_id: None,
        prefix: Prefix::new(IpAddr::V4(a.into()), l).unwrap(),
    })
}

fn prefix_v6() -> impl Strategy<Value = Nlri> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Nlri {
        path_id: None,
        prefix: Prefix::new(IpAddr::V6(a.into()), l).unwrap(),
    })
}

proptest! {
    #[test]
    fn prefixes_round_trip(v4 in proptest::collection::vec(prefix_v4(), 0..50), v6 in proptest::collection::vec(prefix_v6(), 0..50)) {
        let attrs = Attributes {
            origin: Some(Origin::Egp),
            as_path: vec![AsPathSegment::Sequence(vec![65000])],
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 9)),
            mp_next_hop: Some("2001:db8::9".parse().unwrap()),
            ..Default::default()
        };
        let announced: Vec<Nlri> = v4.iter().chain(v6.iter()).copied().collect();
        let mut buf = Vec::new();
        let ctx = SessionCtx { four_octet_as: true, extended_messages: true, ..Default::default() };
        encode_update(&UpdateOut { withdrawn: &[], announced: &announced, attrs: &attrs }, &ctx, &mut buf);
        let Message::Update(u) = decode(&buf, &ctx).unwrap().unwrap().0 else { panic!() };
        let parsed = u.parse(&ctx).unwrap();
        let mut want = v4.clone();
        want.extend(v6.iter().copied());
        prop_assert_eq!(parsed.announced, want);
    }

    #[test]
    fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), four: bool, ap: bool) {
        let ctx = SessionCtx { four_octet_as: four, add_path_v4: ap, add_path_v6: ap, ..Default::default() };
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((bytes.len() + 19) as u16).to_be_bytes());
        m.push(2);
        m.extend_from_slice(&bytes);
        if let Ok(Some((Message::Update(u), _))) = decode(&m, &ctx) {
            let _ = u.parse(&ctx);
        }
        let _ = decode(&bytes, &ctx);
        m[18] = 1;
        let _ = decode(&m, &ctx);
    }

    /// Parsing into an update that held another one gives what a fresh
    /// parse gives: nothing of the earlier update survives.
    #[test]
    fn parse_into_reuses_without_residue(
        first in proptest::collection::vec(any::<u8>(), 0..120),
        paths in proptest::collection::vec(
            proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u32>(), 1..5)), 0..4),
            1..4,
        ),
        comms in proptest::collection::vec(any::<u32>(), 0..4),
        four: bool,
    ) {
        let ctx = SessionCtx { four_octet_as: four, ..Default::default() };
        let mut bodies = vec![first];
        for p in &paths {
            let attrs = Attributes {
                origin: Some(Origin::Igp),
                as_path: p
                    .iter()
                    .map(|(set, v)| {
                        let v: Vec<u32> = v.iter().map(|x| if four { *x } else { x & 0xffff }).collect();
                        if *set { AsPathSegment::Set(v) } else { AsPathSegment::Sequence(v) }
                    })
                    .collect(),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                communities: comms.clone(),
                ..Default::default()
            };
            let mut buf = Vec::new();
            encode_update(&UpdateOut { withdrawn: &[], announced: &[n("192.0.2.0/24")], attrs: &attrs }, &ctx, &mut buf);
            let Message::Update(u) = decode(&buf, &ctx).unwrap().unwrap().0 else { panic!() };
            bodies.push(u.attributes.to_vec());
        }
        let mut reused = ParsedUpdate::default();
        for body in &bodies {
            let buf = raw_update(body, &[n("192.0.2.0/24")]);
            let Ok(Some((Message::Update(u), _))) = decode(&buf, &ctx) else { continue };
            let fresh = u.parse(&ctx);
            let again = u.parse_into(&ctx, &mut reused);
            match fresh {
                Ok(f) => {
                    prop_assert!(again.is_ok());
                    prop_assert_eq!(&reused, &f);
                }
                Err(e) => prop_assert_eq!(again.unwrap_err(), e),
            }
        }
    }

    #[test]
    fn attribute_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..120), four: bool) {
        let ctx = SessionCtx { four_octet_as: four, ..Default::default() };
        let buf = raw_update(&body, &[n("192.0.2.0/24")]);
        if let Ok(Some((Message::Update(u), _))) = decode(&buf, &ctx) {
            let _ = u.parse(&ctx);
        }
    }
}

#[test]
fn flags_constant_is_exported() {
    assert_eq!(a::FLAG_PARTIAL, 0x20);
}

/// An UPDATE with an AS4_PATH but no AS_PATH (from a 2-octet peer) parsed
/// into one that had a path: the old path must not be merged with it.
#[test]
fn as4_path_without_as_path_ignores_the_previous_path() {
    let ctx = SessionCtx::default();
    let origin = [0x40, 1, 1, 0];
    let next_hop = [0x40, 3, 4, 192, 0, 2, 1];
    let with_path: Vec<u8> = [&origin[..], &[0x40, 2, 8, 2, 3, 0, 1, 0, 2, 0, 3], &next_hop].concat();
    let as4_only: Vec<u8> = [&origin[..], &next_hop, &[0xc0, 17, 6, 2, 1, 0, 0, 0, 7]].concat();
    let mut reused = ParsedUpdate::default();
    for body in [&with_path, &as4_only] {
        let buf = raw_update(body, &[n("192.0.2.0/24")]);
        let Some((Message::Update(u), _)) = decode(&buf, &ctx).unwrap() else {
            panic!()
        };
        u.parse_into(&ctx, &mut reused).unwrap();
        assert_eq!(reused, u.parse(&ctx).unwrap());
    }
    assert!(reused.attrs.as_path.is_empty());
    assert_eq!(reused.treat_as_withdraw.as_deref(), Some("missing AS_PATH"));
}
