//! The latency policy's recompile: 1,000,000 units with three POPs
//! measured each, from aggregates to the policy's input (budget ≤ 1 s).

use criterion::{criterion_group, criterion_main, Criterion};
use petrel_measure::aggregate::{Aggregate, Decay};
use petrel_measure::ranking::RankParams;
use petrel_measure::table::{build, Alone, UnitAggregates};
use petrel_types::{PopIdx, Prefix};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

const D: Decay = Decay {
    half_life_ms: 6 * 3_600_000,
};

fn units(n: u32) -> BTreeMap<Prefix, UnitAggregates> {
    let mut out = BTreeMap::new();
    for i in 0..n {
        let unit = Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0100_0000 + (i << 8))), 24).expect("a /24");
        let aggs = (0..3u16)
            .map(|p| {
                let mut a = Aggregate::default();
                // 20 samples around a per-unit, per-POP median.
                let base = 10_000 + (i.wrapping_mul(2654435761) >> (p * 3)) % 90_000;
                for k in 0..20u32 {
                    a.add(1_000 + u64::from(k), base + k * 300, D);
                }
                (PopIdx(p), a)
            })
            .collect();
        out.insert(unit, aggs);
    }
    out
}

fn bench(c: &mut Criterion) {
    let u = units(1_000_000);
    let mut g = c.benchmark_group("latency");
    g.sample_size(10);
    g.bench_function("recompile 1M units x 3 POPs", |b| {
        b.iter_with_large_drop(|| build(&u, &RankParams::default(), D, &Alone))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
