//! `rank` on tables compiled from five full-table BGP views: the real DFZ
//! prefix list with origin ASes that the crate `iptrie` 0.11.2 ships
//! (1.07 M IPv4 + 176 k IPv6 prefixes), AS paths from `petrel-synth`'s
//! valley-free generator. Zipf-skewed clients (over routed /24s) and
//! uniformly random ones; policies `super-sparrow` and `blended`.

// A benchmark reads the clock to time its phases.
#![allow(clippy::disallowed_methods)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_mapping::geo::GeoTable;
use petrel_mapping::{compile_with, BgpDataBuilder, Fallback, Policy, RankOut, ServiceSpec};
use petrel_synth::dfz::{FullViews, POPS};
use petrel_synth::Rng;
use petrel_types::{Family, PopIdx, PopState, Prefix};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

#[path = "synth_world.rs"]
mod synth_world;

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let Some(full) = FullViews::generate() else {
        eprintln!("bgpas.lpm not found: `cargo fetch` the dev-dependency iptrie 0.11.2 first");
        return;
    };
    let (table, origins, world) = (&full.table, &full.origins, &full.world);
    let mut b = BgpDataBuilder::new();
    for (k, per_origin) in full.paths.iter().enumerate() {
        let ids: Vec<Option<u32>> = per_origin
            .iter()
            .map(|p| p.as_ref().map(|p| b.path_id(p.iter().copied(), p.len() as u32)))
            .collect();
        let routes: Vec<(Prefix, u32)> = table
            .iter()
            .filter_map(|(p, o)| {
                let i = origins.binary_search(o).expect("listed");
                ids[i].map(|id| (*p, id))
            })
            .collect();
        b.add_view(POPS[k].0, PopIdx(k as u16), routes);
    }
    let bgp = Arc::new(b.build());
    // GeoIP: each origin's networks in one metro (by hash).
    let locations = synth_world::metro_locations(world);
    let metro_of = |asn: u32| (Rng::new(u64::from(asn)).next_u64() % world.metros.len() as u64) as u32;
    let e4: Vec<_> = table
        .iter()
        .filter(|(p, _)| p.family() == Family::V4)
        .map(|(p, o)| (*p, metro_of(*o)))
        .collect();
    let e6: Vec<_> = table
        .iter()
        .filter(|(p, _)| p.family() == Family::V6)
        .map(|(p, o)| (*p, metro_of(*o)))
        .collect();
    let geo = GeoTable::from_entries(locations, e4, e6);
    let info = synth_world::pop_infos(world);
    eprintln!(
        "{} prefixes, {} origins, {} paths; views built in {:.1} s",
        table.len(),
        origins.len(),
        bgp.paths.len(),
        t0.elapsed().as_secs_f64()
    );
    let spec = |policies| ServiceSpec {
        name: "www".into(),
        candidates: (0..POPS.len() as u16).map(PopIdx).collect(),
        policies,
        answers: 1,
        fallback: Fallback::All,
        explore_ppm: 0,
        warming: Default::default(),
    };
    let mut services = Vec::new();
    for (name, pol) in [
        ("super-sparrow", vec![Policy::SuperSparrow]),
        (
            "blended",
            vec![Policy::Blended {
                band_km: 0,
                hop_km: 500,
            }],
        ),
    ] {
        let t = Instant::now();
        let svc = compile_with(spec(pol), &info, Some(&geo), Some(&bgp), None);
        eprintln!(
            "{name}: compiled in {:.1} s: {} v4 + {} v6 intervals, {} rankings, {:.1} MiB",
            t.elapsed().as_secs_f64(),
            svc.table(Family::V4).len(),
            svc.table(Family::V6).len(),
            svc.ranking_count(),
            svc.heap_bytes() as f64 / (1 << 20) as f64
        );
        services.push((name, svc));
    }
    // Clients: Zipf over the routed IPv4 /24s, and uniform random /24s.
    let mut rng = Rng::new(7);
    let v4: Vec<Prefix> = table
        .iter()
        .filter(|(p, _)| p.family() == Family::V4)
        .map(|(p, _)| *p)
        .collect();
    let zipf: Vec<Prefix> = (0..1 << 16)
        .map(|_| {
            let u = rng.uniform(0.0, 1.0);
            let r = ((v4.len() as f64).powf(u) as usize).clamp(1, v4.len()) - 1;
            let p = v4[(r.wrapping_mul(2_654_435_761)) % v4.len()];
            Prefix::from_bits(Family::V4, p.bits() & !0xff, 24)
        })
        .collect();
    let uniform: Vec<Prefix> = (0..1 << 16)
        .map(|_| Prefix::from_bits(Family::V4, (rng.next_u64() as u32 & 0xffff_ff00) as u128, 24))
        .collect();
    let states = vec![PopState::Up; POPS.len()];
    let mut g = c.benchmark_group("rank_full_views");
    g.throughput(Throughput::Elements(1));
    for (name, svc) in &services {
        for (cname, cl) in [("zipf", &zipf), ("uniform", &uniform)] {
            let mut out = RankOut::default();
            let mut i = 0usize;
            g.bench_function(format!("{name}/{cname}"), |b| {
                b.iter(|| {
                    i = (i + 1) & (cl.len() - 1);
                    svc.rank(black_box(&cl[i]), Some(Family::V4), &states, i as u64, &mut out);
                    black_box(out.pops().len())
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
