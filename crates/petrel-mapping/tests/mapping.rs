//! Mapping decisions end to end through compile + rank, and the promise that
//! rank never allocates.

use petrel_mapping::{
    compile, compile_with, testworld, BgpData, BgpDataBuilder, CidrMap, Fallback, Policy, PopInfo, RankOut,
    ServiceSpec, WeightMode,
};
use petrel_types::{Family, PopIdx, PopState, Prefix};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

// Counts allocations of the current thread only: tests run in parallel.
struct Counting;
thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static A: Counting = Counting;

fn allocations() -> usize {
    ALLOCS.with(|c| c.get())
}

const AMS: PopIdx = PopIdx(0);
const NYC: PopIdx = PopIdx(1);
const SIN: PopIdx = PopIdx(2);
const SYD: PopIdx = PopIdx(3);
const UP: [PopState; 4] = [PopState::Up; 4];

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn spec(policies: Vec<Policy>) -> ServiceSpec {
    ServiceSpec {
        name: "www".into(),
        candidates: vec![AMS, NYC, SIN, SYD],
        policies,
        answers: 1,
        fallback: Fallback::All,
        explore_ppm: 0,
        warming: Default::default(),
    }
}

fn rank(svc: &petrel_mapping::CompiledService, client: &str, states: &[PopState]) -> (Vec<PopIdx>, u8, bool) {
    let mut out = RankOut::default();
    let c = Prefix::parse_lenient(client).unwrap();
    svc.rank(&c, Some(c.family()), states, 0, &mut out);
    (out.pops().to_vec(), out.scope, out.fallback)
}

#[test]
fn geo_nearest_with_exact_scopes() {
    let geo = testworld::small_geo();
    let svc = compile(
        spec(vec![Policy::GeoNearest { band_km: 0 }]),
        &testworld::pops(),
        Some(&geo),
    );
    assert_eq!(rank(&svc, "2.1.2.0/24", &UP), (vec![AMS], 8, false));
    assert_eq!(rank(&svc, "3.1.2.0/24", &UP), (vec![NYC], 15, false));
    assert_eq!(rank(&svc, "3.3.2.0/24", &UP), (vec![SIN], 16, false));
    assert_eq!(rank(&svc, "4.1.2.0/24", &UP), (vec![SYD], 8, false));
    assert_eq!(rank(&svc, "2a01:1::/48", &UP).0, vec![AMS]);
    // No GeoIP data: config order, and the scope covers the whole gap.
    let (pops, scope, _) = rank(&svc, "9.9.9.0/24", &UP);
    assert_eq!(pops, vec![AMS]);
    assert!(scope <= 8, "{scope}");
}

#[test]
fn down_and_drained_pops_are_skipped_then_fallback() {
    let geo = testworld::small_geo();
    let mut svc_spec = spec(vec![Policy::GeoNearest { band_km: 0 }]);
    svc_spec.answers = 2;
    let svc = compile(svc_spec, &testworld::pops(), Some(&geo));
    let st = [PopState::Down, PopState::Drained, PopState::Up, PopState::Up];
    // Paris: ams, nyc next are out; sin and syd remain, nearest first.
    assert_eq!(rank(&svc, "2.0.0.1", &st).0, vec![SIN, SYD]);
    let all_down = [PopState::Down; 4];
    let (pops, _, fb) = rank(&svc, "2.0.0.1", &all_down);
    assert!(fb);
    assert_eq!(pops, vec![AMS, NYC, SIN, SYD]);
    let mut none = spec(vec![]);
    none.fallback = Fallback::None;
    let svc = compile(none, &testworld::pops(), None);
    assert_eq!(rank(&svc, "2.0.0.1", &all_down), (vec![], 0, true));
}

#[test]
fn backup_set_when_every_candidate_is_out() {
    let mut s = spec(vec![]);
    s.candidates = vec![AMS, NYC];
    s.answers = 2;
    s.fallback = Fallback::Backup(vec![SYD, SIN]);
    let svc = compile(s, &testworld::pops(), None);
    let st = [PopState::Down, PopState::Drained, PopState::Up, PopState::Down];
    // Candidates out: the usable backups, in order.
    assert_eq!(rank(&svc, "9.9.9.9", &st), (vec![SIN], 0, true));
    // Backups out too: the whole backup set rather than nothing.
    assert_eq!(rank(&svc, "9.9.9.9", &[PopState::Down; 4]), (vec![SYD, SIN], 0, true));
    // A usable candidate means no fallback at all.
    assert_eq!(rank(&svc, "9.9.9.9", &UP), (vec![AMS, NYC], 0, false));
}

#[test]
fn cidr_map_wins_then_geo_breaks_ties() {
    let geo = testworld::small_geo();
    let mut map = CidrMap::new("map.txt");
    map.insert(p("2.128.0.0/9"), vec![SYD]);
    map.insert(p("3.0.0.0/8"), vec![SIN, SYD]);
    let svc = compile(
        spec(vec![Policy::Cidr(map), Policy::GeoNearest { band_km: 0 }]),
        &testworld::pops(),
        Some(&geo),
    );
    assert_eq!(rank(&svc, "2.1.0.1", &UP), (vec![AMS], 9, false));
    assert_eq!(rank(&svc, "2.200.0.1", &UP), (vec![SYD], 9, false));
    assert_eq!(rank(&svc, "3.1.0.1", &UP).0, vec![SIN]);
    // Listed POPs down: the unlisted ones follow, ordered by geo.
    let st = [PopState::Up, PopState::Up, PopState::Down, PopState::Down];
    assert_eq!(rank(&svc, "3.1.0.1", &st).0, vec![NYC]);
}

#[test]
fn geo_map_priority_and_default() {
    let geo = testworld::small_geo();
    let mut countries = rustc_hash::FxHashMap::default();
    countries.insert("JP".to_string(), vec![SYD]);
    let mut continents = rustc_hash::FxHashMap::default();
    continents.insert("NA".to_string(), vec![AMS]);
    let svc = compile(
        spec(vec![
            Policy::GeoMap { countries, continents },
            Policy::Default(vec![SIN]),
            Policy::Priority(vec![NYC]),
        ]),
        &testworld::pops(),
        Some(&geo),
    );
    assert_eq!(rank(&svc, "3.3.0.1", &UP).0, vec![SYD]); // JP by country
    assert_eq!(rank(&svc, "3.1.0.1", &UP).0, vec![AMS]); // US by continent
    assert_eq!(rank(&svc, "2.0.0.1", &UP).0, vec![SIN]); // FR: no entry -> default
    assert_eq!(rank(&svc, "99.0.0.1", &UP).0, vec![SIN]); // unknown -> default
}

#[test]
fn weighted_hash_is_sticky_and_follows_weights() {
    let mut pops = testworld::pops();
    pops[0].weight = 300;
    let mut s = spec(vec![Policy::Weighted(WeightMode::Hash { v4_len: 24, v6_len: 48 })]);
    s.candidates = vec![AMS, NYC];
    let svc = compile(s.clone(), &pops, None);
    let mut counts = [0usize; 2];
    let mut choice = Vec::new();
    for i in 0..4000u32 {
        let c = format!("{}.{}.{}.0/24", 10 + (i >> 16), (i >> 8) & 255, i & 255);
        let (r, scope, _) = rank(&svc, &c, &UP);
        assert_eq!(scope, 24);
        counts[r[0].index()] += 1;
        choice.push(r[0]);
    }
    let share = counts[0] as f64 / 4000.0;
    assert!((0.70..0.80).contains(&share), "ams share {share}");
    // Taking NYC away moves only NYC's clients.
    let st = [PopState::Up, PopState::Down, PopState::Up, PopState::Up];
    for (i, before) in choice.iter().enumerate().take(500) {
        let i = i as u32;
        let c = format!("{}.{}.{}.0/24", 10 + (i >> 16), (i >> 8) & 255, i & 255);
        let (r, _, _) = rank(&svc, &c, &st);
        if *before == AMS {
            assert_eq!(r[0], AMS);
        }
    }
}

#[test]
fn explain_agrees_with_rank() {
    let geo = testworld::small_geo();
    let pops = testworld::pops();
    let mut map = CidrMap::new("map.txt");
    map.insert(p("3.0.0.0/8"), vec![SIN, SYD]);
    let svc = compile(
        spec(vec![Policy::Cidr(map), Policy::GeoNearest { band_km: 0 }]),
        &pops,
        Some(&geo),
    );
    let st = [PopState::Up, PopState::Up, PopState::Drained, PopState::Up];
    let e = svc.explain(&p("3.1.0.0/24"), Some(Family::V4), &pops, &st, Some(&geo), 0);
    assert!(e.consistent);
    assert_eq!(e.answer, vec!["syd"]);
    assert!(e.steps[0].detail.contains("3.0.0.0/8"), "{:?}", e.steps[0]);
    assert!(e.steps[1].detail.contains("km"), "{:?}", e.steps[1]);
    let sin = e.candidates.iter().find(|c| c.name == "sin").unwrap();
    assert_eq!(sin.verdict, "skipped: drained");
    assert!(e.to_text().contains("answer: syd"));
}

#[test]
fn rank_does_not_allocate() {
    let pops = testworld::pops();
    let geo = testworld::geo(2000);
    let s = spec(vec![
        Policy::GeoNearest { band_km: 1000 },
        Policy::Weighted(WeightMode::Hash { v4_len: 24, v6_len: 48 }),
    ]);
    let svc = compile(s, &pops, Some(&geo));
    let clients: Vec<Prefix> = (0..10_000u32)
        .map(|i| Prefix::from_bits(Family::V4, (i.wrapping_mul(2_654_435_761) & 0xffff_ff00) as u128, 24))
        .collect();
    let mut out = RankOut::default();
    svc.rank(&clients[0], Some(Family::V4), &UP, 0, &mut out);
    let before = allocations();
    let mut n = 0;
    for (i, c) in clients.iter().enumerate() {
        svc.rank(c, Some(Family::V4), &UP, i as u64, &mut out);
        n += out.pops().len();
    }
    let after = allocations();
    assert_eq!(after - before, 0, "rank allocated");
    assert_eq!(n, clients.len());
}

/// POPs ams..syd with ASNs 65000..65003, views at ams and nyc.
/// 3.0.0.0/8 (Los Angeles in small_geo): ams reaches it via 2 transit hops,
/// nyc via syd's AS (a peering link) then the origin; so syd is closest by
/// the Super Sparrow rule although nyc is nearer by distance.
/// 2.0.0.0/8 (Paris): ams 1 hop, nyc 3 hops. 4.0.0.0/8: only nyc has a route.
fn bgp_world() -> (Vec<PopInfo>, Arc<BgpData>) {
    let mut pops = testworld::pops();
    for (i, p) in pops.iter_mut().enumerate() {
        p.asns = vec![petrel_types::Asn(65000 + i as u32)];
    }
    let mut b = BgpDataBuilder::new();
    let ams_la = b.path_id([174, 3356, 7018], 3);
    let nyc_la = b.path_id([65003, 7018], 2);
    let ams_paris = b.path_id([3215], 1);
    let nyc_paris = b.path_id([174, 1299, 3215], 3);
    let nyc_mel = b.path_id([1299, 1221], 2);
    b.add_view(
        "ams-rs",
        AMS,
        vec![(p("3.0.0.0/8"), ams_la), (p("2.0.0.0/8"), ams_paris)],
    );
    b.add_view(
        "nyc-rs",
        NYC,
        vec![
            (p("3.0.0.0/8"), nyc_la),
            (p("2.0.0.0/8"), nyc_paris),
            (p("4.0.0.0/8"), nyc_mel),
        ],
    );
    (pops, Arc::new(b.build()))
}

#[test]
fn super_sparrow_picks_the_pop_nearest_the_origin() {
    let (pops, bgp) = bgp_world();
    let mut s = spec(vec![Policy::SuperSparrow]);
    s.answers = 4;
    let svc = compile_with(s, &pops, None, Some(&bgp), None);
    // syd's AS is on nyc's path next to the origin: 1 hop; nyc 2; ams 3;
    // sin nothing known.
    assert_eq!(rank(&svc, "3.1.0.0/24", &UP).0, vec![SYD, NYC, AMS, SIN]);
    assert_eq!(rank(&svc, "3.1.0.0/24", &UP).1, 8, "scope is the route's length");
    assert_eq!(rank(&svc, "2.1.0.0/24", &UP).0[..2], [AMS, NYC]);
    // No route anywhere: no order from BGP, config order stays.
    assert_eq!(rank(&svc, "9.1.0.0/24", &UP).0, vec![AMS, NYC, SIN, SYD]);
    let e = svc.explain(&p("3.1.0.0/24"), Some(Family::V4), &pops, &UP, None, 0);
    assert!(e.consistent);
    assert!(e.steps[0].detail.contains("path 65003 7018"), "{}", e.steps[0].detail);
    assert!(e.steps[0].detail.contains("syd 1"), "{}", e.steps[0].detail);
}

#[test]
fn blended_keeps_geography_and_vetoes_unreachable_pops() {
    let (pops, bgp) = bgp_world();
    let geo = testworld::small_geo();
    let mut s = spec(vec![Policy::Blended {
        band_km: 0,
        hop_km: 500,
    }]);
    s.answers = 4;
    let svc = compile_with(s, &pops, Some(&geo), Some(&bgp), None);
    // Los Angeles: nyc 3,900 km + 1 extra hop; syd 12,000 km; ams 8,900 km
    // + 2 extra hops. Geography wins; the short path of syd does not.
    assert_eq!(rank(&svc, "3.1.0.0/24", &UP).0[0], NYC);
    // Paris: ams is near and 2 hops shorter.
    assert_eq!(rank(&svc, "2.1.0.0/24", &UP).0[0], AMS);
    // Melbourne: ams has a view without a route: it ranks last.
    let r = rank(&svc, "4.1.0.0/24", &UP).0;
    assert_eq!(r[0], SYD);
    assert_eq!(*r.last().unwrap(), AMS, "{r:?}");
    let e = svc.explain(&p("4.1.0.0/24"), Some(Family::V4), &pops, &UP, Some(&geo), 0);
    assert!(e.consistent);
    assert!(e.steps[0].detail.contains("ams no route"), "{}", e.steps[0].detail);
}

#[test]
fn as_map_uses_the_origin_of_the_clients_route() {
    let (pops, bgp) = bgp_world();
    let map = [(7018, vec![SIN, NYC]), (3215, vec![SYD])].into_iter().collect();
    let svc = compile_with(
        spec(vec![Policy::AsMap {
            source: "as-map".into(),
            map,
        }]),
        &pops,
        None,
        Some(&bgp),
        None,
    );
    assert_eq!(rank(&svc, "3.1.0.0/24", &UP).0, vec![SIN]);
    assert_eq!(rank(&svc, "2.1.0.0/24", &UP).0, vec![SYD]);
    assert_eq!(rank(&svc, "4.1.0.0/24", &UP).0, vec![AMS], "no entry: unchanged order");
    let e = svc.explain(&p("3.1.0.0/24"), Some(Family::V4), &pops, &UP, None, 0);
    assert!(e.steps[0].detail.contains("origin AS7018"), "{}", e.steps[0].detail);
}

#[test]
fn latency_moves_a_measured_network_and_no_other() {
    use petrel_mapping::{LatencyData, LatencyUnit, Measured, StepFacts};
    let geo = testworld::small_geo();
    let pops = testworld::pops();
    let policies = vec![Policy::Latency, Policy::GeoNearest { band_km: 0 }];
    // 3.1.2.0/24 is New York: geo sends it to nyc. Its users measured ams
    // clearly faster (a peering that geography does not see).
    let mut data = LatencyData::default();
    let m = |pop, tier, median_ms: f64| Measured {
        pop,
        tier,
        median_ms,
        low_ms: median_ms * 0.95,
        high_ms: median_ms * 1.05,
        samples: 200.0,
    };
    data.insert(
        p("3.1.2.0/24"),
        LatencyUnit {
            measured: vec![m(AMS, 0, 12.0), m(NYC, 1, 48.0)],
            borrowed_from: None,
        },
    );
    // A unit where the measured POPs tie: geography decides among them.
    data.insert(
        p("3.1.3.0/24"),
        LatencyUnit {
            measured: vec![m(SIN, 0, 30.0), m(NYC, 0, 31.0)],
            borrowed_from: Some("3.1.0.0/16".into()),
        },
    );
    let data = Arc::new(data);
    let before = compile_with(spec(policies.clone()), &pops, Some(&geo), None, None);
    let after = compile_with(spec(policies), &pops, Some(&geo), None, Some(&data));
    assert_eq!(rank(&before, "3.1.2.0/24", &UP).0, vec![NYC]);
    let (chosen, scope, _) = rank(&after, "3.1.2.7", &UP);
    assert_eq!(
        (chosen, scope),
        (vec![AMS], 24),
        "the measured unit moves, with its own scope"
    );
    assert_eq!(
        rank(&after, "3.1.3.0/24", &UP).0,
        vec![NYC],
        "a tie: geography among the tied"
    );
    assert_eq!(rank(&after, "3.1.4.0/24", &UP).0, vec![NYC], "unmeasured: geography");
    assert_eq!(rank(&after, "2.1.2.0/24", &UP).0, vec![AMS]);
    // Measured POPs first, even when down: then the next measured, then the rest.
    let mut states = UP;
    states[AMS.index()] = PopState::Down;
    assert_eq!(rank(&after, "3.1.2.0/24", &states).0, vec![NYC]);

    let e = after.explain(&p("3.1.2.0/24"), Some(Family::V4), &pops, &UP, Some(&geo), 0);
    assert!(e.consistent);
    assert_eq!(e.answer, vec!["ams"]);
    let StepFacts::Latency {
        unit, pops: measured, ..
    } = &e.steps[0].facts
    else {
        panic!("{:?}", e.steps[0])
    };
    assert_eq!(unit.as_deref(), Some("3.1.2.0/24"));
    assert_eq!(measured.len(), 2);
    assert!(
        e.steps[0].detail.contains("ams 12 ms (11-13, 200 samples)"),
        "{}",
        e.steps[0].detail
    );
    let e = after.explain(&p("3.1.3.0/24"), Some(Family::V4), &pops, &UP, Some(&geo), 0);
    assert!(e.steps[0].detail.contains("(from 3.1.0.0/16)"), "{}", e.steps[0].detail);
    let e = after.explain(&p("3.1.4.0/24"), Some(Family::V4), &pops, &UP, Some(&geo), 0);
    assert_eq!(e.steps[0].detail, "not enough measurements for the client's unit");
}

#[test]
fn exploration_sends_a_share_of_answers_to_the_next_best_pop() {
    let geo = testworld::small_geo();
    let pops = testworld::pops();
    let mut s = spec(vec![Policy::Latency, Policy::GeoNearest { band_km: 0 }]);
    s.explore_ppm = 50_000; // 5 %
    let svc = compile_with(s, &pops, Some(&geo), None, None);
    let plain = compile_with(
        spec(vec![Policy::Latency, Policy::GeoNearest { band_km: 0 }]),
        &pops,
        Some(&geo),
        None,
        None,
    );
    let c = p("3.1.2.0/24");
    let mut out = RankOut::default();
    // New York: nyc first by geography; the next-best is whom it gets
    // when nyc is down.
    let mut states = UP;
    states[NYC.index()] = PopState::Down;
    plain.rank(&c, Some(Family::V4), &states, 0, &mut out);
    let next = out.pops()[0];
    assert_ne!(next, NYC);
    let n = 100_000u64;
    let mut explored = 0;
    for e in 0..n {
        svc.rank(
            &c,
            Some(Family::V4),
            &UP,
            e.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            &mut out,
        );
        if out.explored {
            explored += 1;
            assert_eq!(out.pops(), [next], "the next-best, not any POP");
        } else {
            assert_eq!(out.pops(), [NYC]);
        }
    }
    let share = explored as f64 / n as f64;
    assert!((0.045..0.055).contains(&share), "{share}");
    // With one usable POP there is nothing to explore.
    let mut only = [PopState::Down; 4];
    only[NYC.index()] = PopState::Up;
    for e in 0..10_000u64 {
        svc.rank(
            &c,
            Some(Family::V4),
            &only,
            e.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            &mut out,
        );
        assert_eq!((out.pops(), out.explored), (&[NYC][..], false));
    }
    // Off: never.
    for e in 0..10_000u64 {
        plain.rank(
            &c,
            Some(Family::V4),
            &UP,
            e.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            &mut out,
        );
        assert!(!out.explored);
    }
}
