//! Mapping quality: how well each policy sends clients to their best POP,
//! on synthetic worlds with a latency ground truth (`petrel-synth`). Run
//! with `bench/quality` (or `cargo run --release -p petrel-measure
//! --example quality -- [worlds]`).
//!
//! Two worlds:
//! - *standard*: 6 POPs on 6 carriers' backbones, 3 % of networks placed
//!   in a random metro by GeoIP, every client behind an ECS resolver;
//! - *harsh*: 20 POPs sharing 2 of 4 global carriers, GeoIP placing 12 %
//!   of networks 200-900 km away (and 3 % anywhere), and 30 % of demand
//!   behind public resolvers (a few sites, often far away) that send no
//!   ECS: their answers are decided for the resolver's address.
//!
//! The latency policy (then blended) learns from RUM beacons the world
//! emits: each beacon measures every POP with log-normal noise and a
//! little queueing jitter; 25 % of networks are never measured, 25 % have
//! one or two beacons, the rest a number that grows with their demand.
//! Units are the networks' BGP prefixes, rolled up into covering prefixes
//! and ASes in a metro, as the server does. A second table shows how
//! quality grows with the sample budget.
//!
//! For each client network and answer path: the POP a policy picks (one
//! answer, all POPs up), its RTT against the best POP's, weighted by
//! demand. Every policy compiles through the server's own code
//! (`compile_with` + `rank`; `table::build` for the measurements).

use petrel_mapping::geo::GeoTable;
use petrel_mapping::{compile_with, BgpData, BgpDataBuilder, Fallback, LatencyData, Policy, RankOut, ServiceSpec};
use petrel_measure::aggregate::Decay;
use petrel_measure::ranking::RankParams;
use petrel_measure::routing::Routing;
use petrel_measure::store::Units;
use petrel_measure::{Kind, Sample, UnitMode};
use petrel_synth::{best_per_prefix, distance_km, random_metros, PopPlace, Rng, Shape, ViewRoute, World};
use petrel_types::{Family, PopIdx, PopState, Prefix};
use std::sync::Arc;

#[path = "../../petrel-mapping/benches/synth_world.rs"]
mod synth_world;

const STANDARD_POPS: [PopPlace; 6] = [
    ("ams", 64500, 52.37, 4.90, "EU"),
    ("iad", 64501, 38.95, -77.45, "NA"),
    ("sjc", 64502, 37.36, -121.93, "NA"),
    ("sin", 64503, 1.35, 103.82, "AS"),
    ("gru", 64504, -23.43, -46.47, "SA"),
    ("syd", 64505, -33.87, 151.21, "OC"),
];

const HARSH_POPS: [PopPlace; 20] = [
    ("ams", 64500, 52.37, 4.90, "EU"),
    ("fra", 64501, 50.11, 8.68, "EU"),
    ("lhr", 64502, 51.47, -0.45, "EU"),
    ("mad", 64503, 40.42, -3.70, "EU"),
    ("waw", 64504, 52.23, 21.01, "EU"),
    ("iad", 64505, 38.95, -77.45, "NA"),
    ("ord", 64506, 41.98, -87.90, "NA"),
    ("dfw", 64507, 32.90, -97.04, "NA"),
    ("sjc", 64508, 37.36, -121.93, "NA"),
    ("sea", 64509, 47.45, -122.31, "NA"),
    ("mia", 64510, 25.79, -80.29, "NA"),
    ("gru", 64511, -23.43, -46.47, "SA"),
    ("scl", 64512, -33.39, -70.79, "SA"),
    ("jnb", 64513, -26.14, 28.25, "AF"),
    ("sin", 64514, 1.35, 103.82, "AS"),
    ("nrt", 64515, 35.77, 140.39, "AS"),
    ("hkg", 64516, 22.31, 113.91, "AS"),
    ("bom", 64517, 19.09, 72.87, "AS"),
    ("syd", 64518, -33.87, 151.21, "OC"),
    ("akl", 64519, -37.01, 174.79, "OC"),
];

struct Setup {
    name: &'static str,
    pops: &'static [PopPlace],
    carriers: usize,
    pop_carriers: usize,
    metros: usize,
    geo_far: f64,
    geo_random: f64,
    public_resolvers: f64,
}

const SETUPS: [Setup; 2] = [
    Setup {
        name: "standard",
        pops: &STANDARD_POPS,
        carriers: 6,
        pop_carriers: 3,
        metros: 80,
        geo_far: 0.0,
        geo_random: 0.03,
        public_resolvers: 0.0,
    },
    Setup {
        name: "harsh",
        pops: &HARSH_POPS,
        carriers: 4,
        pop_carriers: 2,
        metros: 120,
        geo_far: 0.12,
        geo_random: 0.03,
        public_resolvers: 0.30,
    },
];

/// Demand-weighted outcome of one policy.
#[derive(Default, Clone, Copy)]
struct Score {
    demand: f64,
    best: f64,
    worse25: f64,
    worse100: f64,
    excess_ms: f64,
}

impl Score {
    fn add(&mut self, demand: f64, got: f64, all: &[f64]) {
        let best = all.iter().copied().fold(f64::INFINITY, f64::min);
        let excess = got - best;
        self.demand += demand;
        if excess <= 1e-9 {
            self.best += demand;
        }
        if excess >= 25.0 {
            self.worse25 += demand;
        }
        if excess >= 100.0 {
            self.worse100 += demand;
        }
        self.excess_ms += demand * excess;
    }

    fn merge(&mut self, o: &Score) {
        self.demand += o.demand;
        self.best += o.best;
        self.worse25 += o.worse25;
        self.worse100 += o.worse100;
        self.excess_ms += o.excess_ms;
    }

    fn best_pct(&self) -> f64 {
        100.0 * self.best / self.demand.max(1e-12)
    }

    fn worse25_pct(&self) -> f64 {
        100.0 * self.worse25 / self.demand.max(1e-12)
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{:<30} {:>9.1}% {:>12.1}% {:>13.1}% {:>9.1} ms",
            name,
            self.best_pct(),
            self.worse25_pct(),
            100.0 * self.worse100 / self.demand.max(1e-12),
            self.excess_ms / self.demand.max(1e-12)
        )
    }
}

/// Slices a policy must not lose on.
const SLICES: [&str; 5] = [
    "ECS resolver",
    "public resolver",
    "measured",
    "few samples",
    "never measured",
];

/// One world, ready to evaluate policies on.
struct Case {
    w: World,
    rtt: Vec<Vec<f64>>,
    geo: GeoTable,
    bgp: Arc<BgpData>,
    /// Per network: the network whose address its public resolver has
    /// (None: an ECS resolver, the decision is for the client itself).
    resolver_of: Vec<Option<usize>>,
    /// Per network: how many beacons it sends at a budget of 1.
    coverage: Vec<Coverage>,
    share_public: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Coverage {
    Never,
    Few(u32),
    Measured(f64),
}

fn build_case(setup: &Setup, seed: u64) -> Case {
    let shape = Shape {
        seed,
        carriers: setup.carriers,
        pop_carriers: setup.pop_carriers,
        nets_per_access: 4,
        ..Shape::default()
    };
    let w = World::generate(random_metros(setup.metros, seed), setup.pops, &shape);
    let fwd: Vec<Vec<ViewRoute>> = (0..w.pops.len()).map(|p| w.pop_forwarding(p)).collect();
    let rtt: Vec<Vec<f64>> = (0..w.nets.len())
        .map(|n| {
            (0..w.pops.len())
                .map(|p| w.rtt_ms(p, n, &fwd[p]).unwrap_or(f64::INFINITY))
                .collect()
        })
        .collect();
    let mut rng = Rng::new(seed ^ 0x7175_616c);
    // GeoIP: a share misplaced to a metro 200-900 km away (the error of a
    // registry address or a wrong city), another share anywhere.
    let locations = synth_world::metro_locations(&w);
    let place = |m: usize| (w.metros[m].lat, w.metros[m].lon);
    let geo_entries: Vec<(Prefix, u32)> = w
        .nets
        .iter()
        .map(|n| {
            let mut m = n.metro;
            if rng.chance(setup.geo_far) {
                let near: Vec<usize> = (0..w.metros.len())
                    .filter(|&o| (200.0..900.0).contains(&distance_km(place(o), place(n.metro))))
                    .collect();
                if !near.is_empty() {
                    m = near[rng.below(near.len())];
                }
            } else if rng.chance(setup.geo_random) {
                m = rng.below(w.metros.len());
            }
            (n.prefix, m as u32)
        })
        .collect();
    let geo = GeoTable::from_entries(locations, geo_entries, Vec::new());
    let mut b = BgpDataBuilder::new();
    let mut prefixes = Vec::new();
    for p in 0..w.pops.len() {
        let routes: Vec<_> = best_per_prefix(w.pop_view(p))
            .into_iter()
            .map(|r| {
                let len = r.path.len() as u32;
                prefixes.push(r.prefix);
                (r.prefix, b.path_id(r.path, len))
            })
            .collect();
        b.add_view(w.pops[p].1.name.clone(), PopIdx(p as u16), routes);
    }
    b.set_prefixes(prefixes);
    let bgp = Arc::new(b.build());
    // Public resolvers: a few sites in the busiest metros; a client using
    // one goes to the site nearest to it, however far that is.
    let mut by_demand: Vec<usize> = (0..w.metros.len()).collect();
    by_demand.sort_by(|&a, &c| w.metros[c].demand.total_cmp(&w.metros[a].demand));
    let sites: Vec<usize> = by_demand
        .iter()
        .copied()
        .filter(|&m| w.nets.iter().any(|n| n.metro == m))
        .take(5)
        .collect();
    let resolver_of: Vec<Option<usize>> = w
        .nets
        .iter()
        .map(|n| {
            if setup.public_resolvers == 0.0 || !rng.chance(setup.public_resolvers) {
                return None;
            }
            let site = *sites.iter().min_by(|&&a, &&c| {
                distance_km(place(a), place(n.metro)).total_cmp(&distance_km(place(c), place(n.metro)))
            })?;
            w.nets.iter().position(|r| r.metro == site)
        })
        .collect();
    let coverage = w
        .nets
        .iter()
        .map(|n| {
            let u = rng.uniform(0.0, 1.0);
            if u < 0.25 {
                Coverage::Never
            } else if u < 0.5 {
                Coverage::Few(1 + rng.below(2) as u32)
            } else {
                Coverage::Measured(n.demand)
            }
        })
        .collect();
    let share_public = setup.public_resolvers;
    Case {
        w,
        rtt,
        geo,
        bgp,
        resolver_of,
        coverage,
        share_public,
    }
}

/// RUM beacons from the world at a budget of `per_net` beacons for a
/// network of average demand; every beacon measures every POP.
fn beacons(c: &Case, per_net: f64, seed: u64) -> Units {
    let mut rng = Rng::new(seed ^ 0x0072_756d);
    let decay = Decay {
        half_life_ms: 6 * 3_600_000,
    };
    let routing = Routing::new(Some(&c.bgp), Some(&c.geo), UnitMode::default());
    let mean_demand = c.w.nets.iter().map(|n| n.demand).sum::<f64>() / c.w.nets.len().max(1) as f64;
    let mut units = Units::default();
    for (i, n) in c.w.nets.iter().enumerate() {
        let count = match c.coverage[i] {
            Coverage::Never => 0,
            Coverage::Few(k) => k,
            Coverage::Measured(d) => {
                let want = per_net * d / mean_demand;
                want.floor() as u32 + u32::from(rng.chance(want.fract()))
            }
        };
        let client = n.prefix.addr();
        let unit = routing.unit(client);
        for k in 0..count {
            for (p, &true_ms) in c.rtt[i].iter().enumerate() {
                if !true_ms.is_finite() {
                    continue;
                }
                // Log-normal noise (sigma 0.2) and exponential queueing
                // jitter (mean 3 ms): what Resource Timing reports.
                let g: f64 = (0..12).map(|_| rng.uniform(0.0, 1.0)).sum::<f64>() - 6.0;
                let jitter = -3.0 * (1.0 - rng.uniform(0.0, 1.0)).max(1e-9).ln();
                let ms = true_ms * (0.2 * g).exp() + jitter;
                let s = Sample {
                    at_ms: 1_000_000 + u64::from(k),
                    client,
                    pop: PopIdx(p as u16),
                    rtt_us: (ms * 1000.0).clamp(1.0, 9e6) as u32,
                    kind: Kind::Rum,
                    resolver: None,
                };
                units.add(unit, &s, decay, usize::MAX);
            }
        }
    }
    units
}

fn latency_data(c: &Case, units: &Units) -> LatencyData {
    let routing = Routing::new(Some(&c.bgp), Some(&c.geo), UnitMode::default());
    let params = RankParams {
        min_samples: 3.0,
        ..RankParams::default()
    };
    petrel_measure::table::build(
        &units.map,
        &params,
        Decay {
            half_life_ms: 6 * 3_600_000,
        },
        &routing,
    )
}

/// Each policy's score on a case, overall and per slice.
/// `per_client`: every answer is decided for the client's own address, as
/// the HTTP channel (redirects, the remap API, `petrel map`) decides it;
/// otherwise for what the DNS sees (the resolver's address when it sends
/// no ECS).
fn evaluate(
    c: &Case,
    policies: &[(String, Vec<Policy>)],
    latency: Option<&Arc<LatencyData>>,
    per_client: bool,
) -> Vec<(Score, [Score; 5])> {
    let info = synth_world::pop_infos(&c.w);
    let states = vec![PopState::Up; info.len()];
    let mut out = Vec::new();
    for (name, pol) in policies {
        let spec = ServiceSpec {
            name: name.clone(),
            candidates: (0..info.len()).map(|i| PopIdx(i as u16)).collect(),
            policies: pol.clone(),
            answers: 1,
            fallback: Fallback::All,
            explore_ppm: 0,
            warming: Default::default(),
        };
        let svc = compile_with(spec, &info, Some(&c.geo), Some(&c.bgp), latency);
        let mut r = RankOut::default();
        let mut total = Score::default();
        let mut slices = [Score::default(); 5];
        for (i, n) in c.w.nets.iter().enumerate() {
            // The address the answer is decided for.
            let asked = match c.resolver_of[i] {
                Some(res) if !per_client => c.w.nets[res].prefix,
                _ => n.prefix,
            };
            svc.rank(&asked, Some(Family::V4), &states, 0, &mut r);
            let got = c.rtt[i][r.pops()[0].index()];
            total.add(n.demand, got, &c.rtt[i]);
            let via = if c.resolver_of[i].is_some() { 1 } else { 0 };
            slices[via].add(n.demand, got, &c.rtt[i]);
            let cov = match c.coverage[i] {
                Coverage::Measured(_) => 2,
                Coverage::Few(_) => 3,
                Coverage::Never => 4,
            };
            slices[cov].add(n.demand, got, &c.rtt[i]);
        }
        out.push((total, slices));
    }
    out
}

fn oracle(c: &Case) -> Score {
    let mut s = Score::default();
    for (i, n) in c.w.nets.iter().enumerate() {
        let best = c.rtt[i].iter().copied().fold(f64::INFINITY, f64::min);
        s.add(n.demand, best, &c.rtt[i]);
    }
    s
}

fn main() {
    let worlds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let blended = Policy::Blended {
        band_km: 0,
        hop_km: 500,
    };
    let policies: Vec<(String, Vec<Policy>)> = vec![
        ("geo".into(), vec![Policy::GeoNearest { band_km: 0 }]),
        (
            "super-sparrow, geo".into(),
            vec![Policy::SuperSparrow, Policy::GeoNearest { band_km: 0 }],
        ),
        ("blended (hop 500)".into(), vec![blended.clone()]),
        ("latency, blended".into(), vec![Policy::Latency, blended.clone()]),
    ];
    const BUDGET: f64 = 20.0;
    let budgets = [0.5, 1.0, 3.0, 10.0, 30.0, 100.0];
    for setup in &SETUPS {
        let mut totals = vec![(Score::default(), [Score::default(); 5]); policies.len()];
        let mut best_possible = Score::default();
        let mut per_client = [Score::default(); 2];
        let mut curve = vec![Score::default(); budgets.len()];
        let mut nets = 0;
        let mut share_public = 0.0;
        let mut units_ranked = 0;
        for seed in 1..=worlds {
            let c = build_case(setup, seed);
            nets += c.w.nets.len();
            share_public = c.share_public;
            let units = beacons(&c, BUDGET, seed);
            let data = Arc::new(latency_data(&c, &units));
            units_ranked += data.entries.len();
            for (k, (t, _)) in evaluate(&c, &policies[2..], Some(&data), true).into_iter().enumerate() {
                per_client[k].merge(&t);
            }
            for (k, (t, sl)) in evaluate(&c, &policies, Some(&data), false).into_iter().enumerate() {
                totals[k].0.merge(&t);
                for (a, b) in totals[k].1.iter_mut().zip(sl.iter()) {
                    a.merge(b);
                }
            }
            best_possible.merge(&oracle(&c));
            let lat = [policies[3].clone()];
            for (j, &b) in budgets.iter().enumerate() {
                let data = Arc::new(latency_data(&c, &beacons(&c, b, seed)));
                curve[j].merge(&evaluate(&c, &lat, Some(&data), false)[0].0);
            }
        }
        println!(
            "\n{} world: {worlds} seeds, {nets} client /24s, {} POPs, {} of {} carriers at the POPs, GeoIP {:.0} % 200-900 km off + {:.0} % anywhere, {:.0} % of clients behind public resolvers without ECS",
            setup.name,
            setup.pops.len(),
            setup.pop_carriers,
            setup.carriers,
            setup.geo_far * 100.0,
            setup.geo_random * 100.0,
            share_public * 100.0
        );
        println!(
            "RUM: {BUDGET} beacons per average network (25 % never measured, 25 % one or two); {units_ranked} units ranked"
        );
        println!(
            "{:<30} {:>10} {:>13} {:>14} {:>12}",
            "policy", "best POP", ">=25 ms worse", ">=100 ms worse", "mean excess"
        );
        for ((name, _), (t, _)) in policies.iter().zip(&totals) {
            println!("{}", t.line(name));
        }
        println!("{}", best_possible.line("oracle"));
        if share_public > 0.0 {
            println!("answered for the client's own address (the HTTP channel; DNS where every resolver sends ECS):");
            for ((name, _), t) in policies[2..].iter().zip(&per_client) {
                println!("{}", t.line(name));
            }
        }
        println!("by slice (best POP / >=25 ms worse), latency vs blended:");
        let (bl, lat) = (&totals[2].1, &totals[3].1);
        for (k, name) in SLICES.iter().enumerate() {
            if bl[k].demand == 0.0 {
                continue;
            }
            let verdict =
                if lat[k].best_pct() + 0.05 >= bl[k].best_pct() && lat[k].worse25_pct() <= bl[k].worse25_pct() + 0.05 {
                    "not worse"
                } else {
                    "WORSE"
                };
            println!(
                "  {:<18} {:>6.1}% / {:>5.1}%   vs {:>6.1}% / {:>5.1}%   {verdict}",
                name,
                lat[k].best_pct(),
                lat[k].worse25_pct(),
                bl[k].best_pct(),
                bl[k].worse25_pct()
            );
        }
        println!("sample budget (beacons per average network) -> latency, blended:");
        for (b, s) in budgets.iter().zip(&curve) {
            println!(
                "  {:>6.1}  best POP {:>5.1}%  >=25 ms worse {:>5.1}%",
                b,
                s.best_pct(),
                s.worse25_pct()
            );
        }
    }
}
