//! Measured latency as the `latency` policy sees it: per map unit (a
//! prefix), the POPs in tiers of equal measured latency, and the figures
//! behind them for explanations. Made from real-user aggregates elsewhere
//! (the measurement loop) and handed to the compiler as an input, like the
//! routing views; never consulted per query.

use petrel_types::{Family, PopIdx, Prefix};

/// One POP's measurement in a unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub pop: PopIdx,
    pub median_ms: f64,
    /// The median's 95 % confidence interval.
    pub low_ms: f64,
    pub high_ms: f64,
    /// Effective (recency-weighted) samples.
    pub samples: f64,
}

/// A unit's ranking: `tiers` of measured POPs, best first (POPs in no tier
/// rank after all of them), and what was measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyUnit {
    pub tiers: Vec<Vec<PopIdx>>,
    pub measured: Vec<Measured>,
    /// Where the figures come from when the unit borrowed them (its
    /// covering prefix, or its AS in its metro); None: its own samples.
    pub borrowed_from: Option<String>,
}

impl LatencyUnit {
    /// The rank key of a POP: its tier, or after every tier.
    pub fn key(&self, p: PopIdx) -> u64 {
        self.tiers
            .iter()
            .position(|t| t.contains(&p))
            .map_or(u64::MAX, |i| i as u64)
    }
}

/// Every ranked unit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyData {
    pub units: Vec<LatencyUnit>,
    /// (unit prefix, index into `units`).
    pub entries: Vec<(Prefix, u32)>,
}

impl LatencyData {
    pub fn insert(&mut self, prefix: Prefix, unit: LatencyUnit) {
        self.entries.push((prefix, self.units.len() as u32));
        self.units.push(unit);
    }

    pub fn entries_of(&self, f: Family) -> Vec<(Prefix, u32)> {
        self.entries.iter().copied().filter(|(p, _)| p.family() == f).collect()
    }

    /// The most specific unit holding `client`.
    pub fn unit_of(&self, client: &Prefix) -> Option<(Prefix, &LatencyUnit)> {
        self.entries
            .iter()
            .filter(|(p, _)| p.contains(client))
            .max_by_key(|(p, _)| p.len())
            .map(|&(p, i)| (p, &self.units[i as usize]))
    }
}
