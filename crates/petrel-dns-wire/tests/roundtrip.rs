//! Property tests: what the writer encodes, the parser (and an independent
//! codec, hickory-proto) decodes to the same values.

use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use petrel_dns_wire::{name, parse_query, MessageWriter, Section};
use petrel_types::Prefix;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn label() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![b'a'..=b'z', b'A'..=b'Z', b'0'..=b'9', Just(b'-')], 1..20)
}

fn wire_name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(label(), 0..5).prop_map(|labels| {
        let mut w = Vec::new();
        for l in labels {
            w.push(l.len() as u8);
            w.extend_from_slice(&l);
        }
        w.push(0);
        w
    })
}

fn ecs() -> impl Strategy<Value = Option<Prefix>> {
    prop_oneof![
        Just(None),
        (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), l)),
        (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), l)),
    ]
}

/// Lower-cased labels of a wire name.
fn labels(w: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = w;
    while let Some(p) = name::parent(rest) {
        out.push(rest[1..1 + rest[0] as usize].to_ascii_lowercase());
        rest = p;
    }
    out
}

fn labels_of(n: &hickory_proto::rr::Name) -> Vec<Vec<u8>> {
    n.iter().map(|l| l.to_ascii_lowercase()).collect()
}

proptest! {
    #[test]
    fn query_encode_then_parse(qname in wire_name(), qtype: u16, id: u16, size in 512u16..4096, ecs in ecs()) {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 512);
        w.question(&qname, qtype, 1).unwrap();
        let mut addr = [0u8; 16];
        let opt = ecs.map(|p| {
            let n = (p.len() as usize).div_ceil(8);
            let fam = match p.addr() {
                IpAddr::V4(a) => { addr[..4].copy_from_slice(&a.octets()); 1 }
                IpAddr::V6(a) => { addr.copy_from_slice(&a.octets()); 2 }
            };
            (fam, p.len(), 0u8, n)
        });
        match opt {
            Some((fam, src, sc, n)) => w.opt(size, 0, Some((fam, src, sc, &addr[..n]))).unwrap(),
            None => w.opt(size, 0, None).unwrap(),
        }
        let len = w.finish(id, 0x0100);
        let q = parse_query(&buf[..len]).unwrap();
        prop_assert_eq!(q.id, id);
        prop_assert_eq!(q.question.name, &qname[..]);
        prop_assert_eq!(q.question.qtype, qtype);
        let e = q.edns.unwrap();
        prop_assert_eq!(e.udp_size, size);
        prop_assert_eq!(e.client_subnet.map(|c| c.prefix), ecs);
    }

    #[test]
    fn compressed_answers_decode_with_hickory(owners in proptest::collection::vec(wire_name(), 1..6), targets in proptest::collection::vec(wire_name(), 1..6)) {
        let mut buf = vec![0u8; 4096];
        let mut w = MessageWriter::new(&mut buf, 4096);
        w.question(&owners[0], 5, 1).unwrap();
        for (o, t) in owners.iter().zip(targets.iter()) {
            let at = w.begin_record(o, 5, 1, 300).unwrap();
            w.rdata_name(t).unwrap();
            w.end_record(Section::Answer, at);
        }
        let len = w.finish(1, 0x8400);
        let m = Message::from_vec(&buf[..len]).unwrap();
        prop_assert_eq!(m.answers.len(), owners.len().min(targets.len()));
        for (r, (o, t)) in m.answers.iter().zip(owners.iter().zip(targets.iter())) {
            prop_assert_eq!(labels_of(&r.name), labels(o));
            match &r.data {
                RData::CNAME(c) => prop_assert_eq!(labels_of(&c.0), labels(t)),
                other => prop_assert!(false, "not a CNAME: {other:?}"),
            }
        }
    }
}
