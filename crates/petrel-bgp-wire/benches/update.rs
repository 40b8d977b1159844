//! UPDATE decode rate in prefixes per second (budget: >= 1 M per core):
//! full-table-like UPDATEs packing many IPv4 /24s and IPv6 /48s behind one
//! attribute set, decoded and parsed.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_bgp_wire::*;
use petrel_types::{Family, Prefix};
use std::hint::black_box;
use std::net::Ipv4Addr;

fn updates(family: Family, per_update: usize, count: usize) -> Vec<Vec<u8>> {
    let ctx = SessionCtx {
        four_octet_as: true,
        ..Default::default()
    };
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsPathSegment::Sequence(vec![64500, 3356, 1299, 4_200_000_123])],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        communities: vec![0xfbf4_0001, 0xfbf4_0002],
        mp_next_hop: Some("2001:db8::1".parse().unwrap()),
        ..Default::default()
    };
    (0..count)
        .map(|u| {
            let nlri: Vec<Nlri> = (0..per_update)
                .map(|i| {
                    let k = (u * per_update + i) as u128;
                    let prefix = match family {
                        Family::V4 => Prefix::from_bits(Family::V4, (0x0100_0000 + (k << 8)) & 0xffff_ff00, 24),
                        Family::V6 => Prefix::from_bits(Family::V6, (0x2001u128 << 112) | (k << 80), 48),
                    };
                    Nlri { path_id: None, prefix }
                })
                .collect();
            let mut buf = Vec::new();
            encode_update(
                &UpdateOut {
                    withdrawn: &[],
                    announced: &nlri,
                    attrs: &attrs,
                },
                &ctx,
                &mut buf,
            );
            buf
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ctx = SessionCtx {
        four_octet_as: true,
        ..Default::default()
    };
    let mut g = c.benchmark_group("update-decode");
    for (name, fam, per) in [("ipv4 /24 x 900", Family::V4, 900), ("ipv6 /48 x 400", Family::V6, 400)] {
        let ups = updates(fam, per, 64);
        g.throughput(Throughput::Elements(per as u64));
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % ups.len();
                let (m, _) = decode(black_box(&ups[i]), &ctx).unwrap().unwrap();
                let Message::Update(u) = m else { unreachable!() };
                black_box(u.parse(&ctx).unwrap().announced.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
