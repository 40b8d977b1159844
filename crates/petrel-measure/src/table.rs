//! From aggregates to what the latency policy compiles: every unit with
//! enough samples of its own is ranked by them; where a unit has none, or
//! too few, it borrows first from its covering prefix (the roll-up of every
//! unit under it), then from its origin AS in its metro (the roll-up of
//! that AS's units there). Longest-prefix match does the rest: a unit's
//! own ranking is more specific than the covering prefix it sits in.

use crate::aggregate::{Aggregate, Decay};
use crate::ranking::{tiers, RankParams};
use petrel_mapping::{LatencyData, LatencyUnit, Measured};
use petrel_types::{PopIdx, Prefix};
use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::collections::BTreeMap;

/// The aggregates of one unit, per POP.
pub type UnitAggregates = Vec<(PopIdx, Aggregate)>;

/// What the roll-ups need to know of the routing views and GeoIP.
pub trait Topology {
    /// The less specific prefix a unit rolls up into (its covering BGP
    /// prefix), if any.
    fn covering(&self, unit: &Prefix) -> Option<Prefix>;
    /// The unit's origin AS and metro (any stable name), if known.
    fn group(&self, unit: &Prefix) -> Option<(u32, String)>;
    /// Prefixes of an origin AS in a metro (for units without any sample).
    fn prefixes_of(&self, asn: u32, metro: &str) -> Vec<Prefix>;
}

/// No roll-ups: every unit stands alone.
pub struct Alone;

impl Topology for Alone {
    fn covering(&self, _: &Prefix) -> Option<Prefix> {
        None
    }
    fn group(&self, _: &Prefix) -> Option<(u32, String)> {
        None
    }
    fn prefixes_of(&self, _: u32, _: &str) -> Vec<Prefix> {
        Vec::new()
    }
}

fn merge_into(acc: &mut HashMap<PopIdx, Aggregate>, aggs: &UnitAggregates, d: Decay) {
    for (p, a) in aggs {
        acc.entry(*p).or_default().merge(a, d);
    }
}

/// A unit's ranking from its aggregates, if they are enough. `scratch` is
/// reused from unit to unit.
fn rank(
    aggs: &[(PopIdx, Aggregate)],
    p: &RankParams,
    borrowed_from: Option<String>,
    scratch: &mut Vec<(PopIdx, crate::aggregate::Summary)>,
) -> Option<LatencyUnit> {
    scratch.clear();
    scratch.extend(aggs.iter().filter_map(|(pop, a)| a.summary().map(|s| (*pop, s))));
    let t = tiers(scratch, p)?;
    let mut measured = Vec::with_capacity(t.iter().map(Vec::len).sum());
    for (tier, pops) in t.iter().enumerate() {
        for pop in pops {
            if let Some((_, s)) = scratch.iter().find(|(q, _)| q == pop) {
                measured.push(Measured {
                    pop: *pop,
                    tier: tier as u16,
                    median_ms: s.median_ms,
                    low_ms: s.low_ms,
                    high_ms: s.high_ms,
                    samples: s.effective,
                });
            }
        }
    }
    Some(LatencyUnit {
        measured,
        borrowed_from,
    })
}

fn sorted(m: HashMap<PopIdx, Aggregate>) -> UnitAggregates {
    let mut v: UnitAggregates = m.into_iter().collect();
    v.sort_by_key(|(p, _)| *p);
    v
}

/// Build the latency policy's input from every unit's aggregates.
pub fn build(units: &BTreeMap<Prefix, UnitAggregates>, p: &RankParams, d: Decay, topo: &impl Topology) -> LatencyData {
    let mut out = LatencyData::default();
    out.units.reserve(units.len());
    out.entries.reserve(units.len());
    let mut covering: BTreeMap<Prefix, HashMap<PopIdx, Aggregate>> = BTreeMap::new();
    let mut groups: BTreeMap<(u32, String), HashMap<PopIdx, Aggregate>> = BTreeMap::new();
    // Units ranked on their own samples, in the map's (sorted) order; the
    // few prefixes the roll-ups add are kept apart.
    let mut own: Vec<Prefix> = Vec::with_capacity(units.len());
    let mut added: FxHashSet<Prefix> = FxHashSet::default();
    let mut scratch = Vec::new();
    for (unit, aggs) in units {
        if let Some(u) = rank(aggs, p, None, &mut scratch) {
            out.insert(*unit, u);
            own.push(*unit);
        }
        if let Some(c) = topo.covering(unit).filter(|c| c != unit && c.contains(unit)) {
            merge_into(covering.entry(c).or_default(), aggs, d);
        }
        if let Some(g) = topo.group(unit) {
            merge_into(groups.entry(g).or_default(), aggs, d);
        }
    }
    let is_ranked = |q: &Prefix, added: &FxHashSet<Prefix>| own.binary_search(q).is_ok() || added.contains(q);
    for (c, aggs) in covering {
        if is_ranked(&c, &added) {
            continue;
        }
        if let Some(u) = rank(&sorted(aggs), p, Some(c.to_string()), &mut scratch) {
            out.insert(c, u);
            added.insert(c);
        }
    }
    for ((asn, metro), aggs) in groups {
        let Some(u) = rank(&sorted(aggs), p, Some(format!("AS{asn} in {metro}")), &mut scratch) else {
            continue;
        };
        // Only where nothing more specific to the client is known: a
        // prefix with no entry of its own and none covering it.
        for prefix in topo.prefixes_of(asn, &metro) {
            let known = (0..=prefix.len()).any(|len| is_ranked(&prefix.truncate(len), &added));
            if !known {
                out.insert(prefix, u.clone());
                added.insert(prefix);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Decay = Decay {
        half_life_ms: 3_600_000,
    };
    const A: PopIdx = PopIdx(0);
    const B: PopIdx = PopIdx(1);

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn agg(n: u32, ms: f64) -> Aggregate {
        let mut a = Aggregate::default();
        for i in 0..n {
            a.add(1_000, (ms * 1000.0) as u32 + i % 7 * 100, D);
        }
        a
    }

    struct World;
    impl Topology for World {
        fn covering(&self, unit: &Prefix) -> Option<Prefix> {
            p("198.51.0.0/16").contains(unit).then(|| p("198.51.0.0/16"))
        }
        fn group(&self, unit: &Prefix) -> Option<(u32, String)> {
            (p("198.51.0.0/16").contains(unit) || p("203.0.113.0/24").contains(unit))
                .then(|| (64500, "Amsterdam, NL".to_string()))
        }
        fn prefixes_of(&self, asn: u32, _: &str) -> Vec<Prefix> {
            if asn == 64500 {
                vec![p("198.51.0.0/16"), p("203.0.113.0/24"), p("192.0.2.0/24")]
            } else {
                vec![]
            }
        }
    }

    #[test]
    fn units_rank_on_their_own_samples_then_borrow() {
        let mut units = BTreeMap::new();
        // Ranked on its own: B faster.
        units.insert(p("198.51.100.0/24"), vec![(A, agg(60, 40.0)), (B, agg(60, 10.0))]);
        // Too few samples each, but with its sibling's they roll up into
        // the covering /16 (where A is faster).
        units.insert(p("198.51.7.0/24"), vec![(A, agg(6, 20.0)), (B, agg(6, 60.0))]);
        units.insert(p("198.51.8.0/24"), vec![(A, agg(6, 20.0)), (B, agg(6, 60.0))]);
        let data = build(&units, &RankParams::default(), D, &World);
        let at = |s: &str| {
            data.unit_of(&p(s))
                .map(|(pre, u)| (pre, u.tiers(), u.borrowed_from.clone()))
        };
        assert_eq!(
            at("198.51.100.9/32"),
            Some((p("198.51.100.0/24"), vec![vec![B], vec![A]], None))
        );
        let (pre, tiers, from) = at("198.51.7.1/32").unwrap();
        assert_eq!((pre, from.as_deref()), (p("198.51.0.0/16"), Some("198.51.0.0/16")));
        // The /16's roll-up includes the /24 that ranks B first (60 of its
        // own samples at 10 ms), and 12 at 60 ms: B first by median.
        assert_eq!(tiers[0], vec![B]);
        // The AS in its metro: only for its prefixes that know nothing
        // more specific (198.51/16 is ranked, 192.0.2.0/24 is not).
        let (pre, _, from) = at("192.0.2.1/32").unwrap();
        assert_eq!(
            (pre, from.as_deref()),
            (p("192.0.2.0/24"), Some("AS64500 in Amsterdam, NL"))
        );
        assert_eq!(at("203.0.113.5/32").unwrap().0, p("203.0.113.0/24"));
        assert_eq!(at("10.0.0.1/32"), None);
        // Without roll-ups, the thin units are simply not ranked.
        let alone = build(&units, &RankParams::default(), D, &Alone);
        assert_eq!(alone.entries.len(), 1);
    }
}
