//! `rank` on a geo-compiled service: Zipf-skewed and uniformly random clients.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_mapping::{compile, testworld, Fallback, Policy, RankOut, ServiceSpec, WeightMode};
use petrel_types::{Family, PopIdx, PopState, Prefix};
use std::hint::black_box;

fn clients(n: usize, zipf: bool) -> Vec<Prefix> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    // Zipf over 100k distinct /24s: rank r drawn with p ~ 1/r (inverse CDF
    // of the continuous approximation).
    let pool: Vec<u32> = (0..100_000).map(|_| (next() as u32) & 0xffff_ff00).collect();
    (0..n)
        .map(|_| {
            let a = if zipf {
                let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
                let r = ((pool.len() as f64).powf(u) as usize).min(pool.len()) - 1;
                pool[r]
            } else {
                (next() as u32) & 0xffff_ff00
            };
            Prefix::from_bits(Family::V4, a as u128, 24)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let pops = testworld::pops();
    let geo = testworld::geo(5000);
    let spec = |weighted| ServiceSpec {
        name: "www".into(),
        candidates: (0..4).map(PopIdx).collect(),
        policies: if weighted {
            vec![
                Policy::GeoNearest { band_km: 2000 },
                Policy::Weighted(WeightMode::Hash { v4_len: 24, v6_len: 48 }),
            ]
        } else {
            vec![Policy::GeoNearest { band_km: 0 }]
        },
        answers: 1,
        fallback: Fallback::All,
        explore_ppm: 0,
        warming: Default::default(),
    };
    let plain = compile(spec(false), &pops, Some(&geo));
    let weighted = compile(spec(true), &pops, Some(&geo));
    let states = vec![PopState::Up, PopState::Down, PopState::Up, PopState::Up];
    let zipf = clients(1 << 16, true);
    let uniform = clients(1 << 16, false);
    let mut g = c.benchmark_group("rank");
    g.throughput(Throughput::Elements(1));
    for (name, svc, cl) in [
        ("geo/zipf", &plain, &zipf),
        ("geo/uniform", &plain, &uniform),
        ("geo+weighted/zipf", &weighted, &zipf),
    ] {
        let mut out = RankOut::default();
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & (cl.len() - 1);
                svc.rank(black_box(&cl[i]), Some(Family::V4), &states, i as u64, &mut out);
                black_box(out.pops().len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
