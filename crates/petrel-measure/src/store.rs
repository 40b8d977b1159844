//! Every unit's aggregates, bounded: samples land in their unit (at the
//! fixed lengths; roll-ups happen when the policy's input is built), a
//! unit never seen before is not tracked once `max_units` are, and what
//! has faded away is dropped.

use crate::aggregate::{Aggregate, Decay};
use crate::sample::Sample;
use crate::table::UnitAggregates;
use petrel_types::Prefix;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Units {
    pub map: BTreeMap<Prefix, UnitAggregates>,
    /// Samples of units not tracked because `max_units` were.
    pub over_limit: u64,
}

impl Units {
    /// A sample into `unit`'s aggregates (the caller knows the unit: it
    /// depends on the routing views).
    pub fn add(&mut self, unit: Prefix, s: &Sample, decay: Decay, max_units: usize) {
        let full = self.map.len() >= max_units;
        let aggs = match self.map.entry(unit) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(_) if full => {
                self.over_limit += 1;
                return;
            }
            std::collections::btree_map::Entry::Vacant(v) => v.insert(Vec::with_capacity(4)),
        };
        match aggs.binary_search_by_key(&s.pop, |(p, _)| *p) {
            Ok(i) => aggs[i].1.add(s.at_ms, s.rtt_us, decay),
            Err(i) => {
                let mut a = Aggregate::default();
                a.add(s.at_ms, s.rtt_us, decay);
                aggs.insert(i, (s.pop, a));
            }
        }
    }

    /// Drop POPs, then units, with nothing left worth keeping at `now_ms`.
    pub fn prune(&mut self, now_ms: u64, decay: Decay) {
        self.map.retain(|_, aggs| {
            aggs.retain(|(_, a)| !a.is_faded(now_ms, decay));
            !aggs.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{unit_of, Kind, UnitMode};
    use petrel_types::PopIdx;

    const D: Decay = Decay {
        half_life_ms: 3_600_000,
    };

    fn s(client: &str, pop: u16, at_ms: u64) -> Sample {
        Sample {
            at_ms,
            client: client.parse().unwrap(),
            pop: PopIdx(pop),
            rtt_us: 20_000,
            kind: Kind::Import,
            resolver: None,
        }
    }

    #[test]
    fn samples_land_in_their_unit_within_the_bound_and_fade() {
        let mut u = Units::default();
        let m = UnitMode::default();
        let add = |u: &mut Units, s: Sample| u.add(unit_of(s.client, None, m), &s, D, 2);
        for (c, p) in [
            ("192.0.2.1", 1),
            ("192.0.2.9", 0),
            ("192.0.2.7", 1),
            ("198.51.100.1", 0),
        ] {
            add(&mut u, s(c, p, 0));
        }
        let unit: Prefix = "192.0.2.0/24".parse().unwrap();
        let pops: Vec<(PopIdx, u64)> = u.map[&unit].iter().map(|(p, a)| (*p, a.count)).collect();
        assert_eq!(pops, [(PopIdx(0), 1), (PopIdx(1), 2)], "sorted by POP");
        assert_eq!(u.map.len(), 2);
        // A third unit is over the bound; known units still take samples.
        add(&mut u, s("203.0.113.1", 0, 0));
        add(&mut u, s("192.0.2.3", 0, 0));
        assert_eq!((u.map.len(), u.over_limit), (2, 1));
        // Twenty half-lives later only the fresh sample's unit is left.
        let later = 20 * 3_600_000;
        add(&mut u, s("198.51.100.1", 1, later));
        u.prune(later, D);
        assert_eq!(u.map.len(), 1);
        let unit: Prefix = "198.51.100.0/24".parse().unwrap();
        assert_eq!(u.map[&unit].len(), 1, "the faded POP is gone too");
    }
}
