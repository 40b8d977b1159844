//! Mapping quality: how well each policy sends clients to their best POP,
//! measured on synthetic worlds with a latency ground truth (see
//! `petrel-synth`). Run with `bench/quality` (or `cargo run --release -p
//! petrel-mapping --example quality -- [worlds]`).
//!
//! For every client /24: the POP a policy picks (one answer, all POPs up),
//! its RTT against the best POP's, weighted by the client's demand. The
//! GeoIP database misplaces 3 % of networks on purpose. Policies compile
//! through the same `compile_with` + `rank` path the server uses.

use petrel_mapping::geo::GeoTable;
use petrel_mapping::{compile_with, BgpData, BgpDataBuilder, Fallback, Policy, RankOut, ServiceSpec};
use petrel_synth::{best_per_prefix, random_metros, PopPlace, Shape, ViewRoute, World};
use petrel_types::{Family, PopIdx, PopState};
use std::sync::Arc;

#[path = "../benches/synth_world.rs"]
mod synth_world;

const POPS: [PopPlace; 6] = [
    ("ams", 64500, 52.37, 4.90, "EU"),
    ("iad", 64501, 38.95, -77.45, "NA"),
    ("sjc", 64502, 37.36, -121.93, "NA"),
    ("sin", 64503, 1.35, 103.82, "AS"),
    ("gru", 64504, -23.43, -46.47, "SA"),
    ("syd", 64505, -33.87, 151.21, "OC"),
];

#[derive(Default, Clone, Copy)]
struct Score {
    demand: f64,
    best: f64,
    worse25: f64,
    worse100: f64,
    excess_ms: f64,
}

fn main() {
    let worlds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let policies: Vec<(String, Vec<Policy>)> = vec![
        ("geo".into(), vec![Policy::GeoNearest { band_km: 0 }]),
        ("super-sparrow".into(), vec![Policy::SuperSparrow]),
        (
            "super-sparrow, geo".into(),
            vec![Policy::SuperSparrow, Policy::GeoNearest { band_km: 0 }],
        ),
        (
            "blended hop 250".into(),
            vec![Policy::Blended {
                band_km: 0,
                hop_km: 250,
            }],
        ),
        (
            "blended (default: hop 500)".into(),
            vec![Policy::Blended {
                band_km: 0,
                hop_km: 500,
            }],
        ),
        (
            "blended hop 1000".into(),
            vec![Policy::Blended {
                band_km: 0,
                hop_km: 1000,
            }],
        ),
    ];
    let mut totals = vec![Score::default(); policies.len() + 1];
    let mut nets = 0usize;
    for seed in 1..=worlds {
        let shape = Shape {
            seed,
            nets_per_access: 4,
            ..Shape::default()
        };
        let w = World::generate(random_metros(80, seed), &POPS, &shape);
        nets += w.nets.len();
        let fwd: Vec<Vec<ViewRoute>> = (0..w.pops.len()).map(|p| w.pop_forwarding(p)).collect();
        let rtt: Vec<Vec<f64>> = (0..w.nets.len())
            .map(|n| {
                (0..w.pops.len())
                    .map(|p| w.rtt_ms(p, n, &fwd[p]).unwrap_or(f64::INFINITY))
                    .collect()
            })
            .collect();
        // GeoIP with 3 % of networks misplaced.
        let locations = synth_world::metro_locations(&w);
        let geo_entries: Vec<_> = w.geoip(0.03, seed).into_iter().map(|(p, m)| (p, m as u32)).collect();
        let geo = GeoTable::from_entries(locations, geo_entries, Vec::new());
        // Views: each POP's preferred route per prefix.
        let mut b = BgpDataBuilder::new();
        for p in 0..w.pops.len() {
            let routes: Vec<_> = best_per_prefix(w.pop_view(p))
                .into_iter()
                .map(|r| {
                    let len = r.path.len() as u32;
                    (r.prefix, b.path_id(r.path, len))
                })
                .collect();
            b.add_view(w.pops[p].1.name.clone(), PopIdx(p as u16), routes);
        }
        let bgp: Arc<BgpData> = Arc::new(b.build());
        let info = synth_world::pop_infos(&w);
        let states = vec![PopState::Up; info.len()];
        for (k, (name, pol)) in policies.iter().enumerate() {
            let spec = ServiceSpec {
                name: name.clone(),
                candidates: (0..info.len()).map(|i| PopIdx(i as u16)).collect(),
                policies: pol.clone(),
                answers: 1,
                fallback: Fallback::All,
            };
            let svc = compile_with(spec, &info, Some(&geo), Some(&bgp), None);
            let mut out = RankOut::default();
            for (i, n) in w.nets.iter().enumerate() {
                svc.rank(&n.prefix, Some(Family::V4), &states, 0, &mut out);
                let chosen = out.pops()[0].index();
                add(&mut totals[k], n.demand, rtt[i][chosen], &rtt[i]);
            }
        }
        for (i, n) in w.nets.iter().enumerate() {
            let best = (0..rtt[i].len())
                .min_by(|&a, &c| rtt[i][a].total_cmp(&rtt[i][c]))
                .unwrap();
            add(&mut totals[policies.len()], n.demand, rtt[i][best], &rtt[i]);
        }
    }
    println!(
        "mapping quality over {worlds} synthetic worlds ({nets} client /24s, {} POPs, 3 % GeoIP errors)",
        POPS.len()
    );
    println!(
        "{:<28} {:>10} {:>12} {:>13} {:>12}",
        "policy", "best POP", ">=25 ms worse", ">=100 ms worse", "mean excess"
    );
    let names: Vec<String> = policies
        .iter()
        .map(|p| p.0.clone())
        .chain(["oracle".to_string()])
        .collect();
    for (n, s) in names.iter().zip(&totals) {
        println!(
            "{:<28} {:>9.1}% {:>11.1}% {:>12.1}% {:>9.1} ms",
            n,
            100.0 * s.best / s.demand,
            100.0 * s.worse25 / s.demand,
            100.0 * s.worse100 / s.demand,
            s.excess_ms / s.demand
        );
    }
}

fn add(s: &mut Score, demand: f64, got: f64, all: &[f64]) {
    let best = all.iter().copied().fold(f64::INFINITY, f64::min);
    let excess = got - best;
    s.demand += demand;
    if excess <= 1e-9 {
        s.best += demand;
    }
    if excess >= 25.0 {
        s.worse25 += demand;
    }
    if excess >= 100.0 {
        s.worse100 += demand;
    }
    s.excess_ms += demand * excess;
}
