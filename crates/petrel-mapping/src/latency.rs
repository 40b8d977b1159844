//! Measured latency as the `latency` policy sees it: per map unit (a
//! prefix), the POPs in tiers of equal measured latency, and the figures
//! behind them for explanations. Made from real-user aggregates elsewhere
//! (the measurement loop) and handed to the compiler as an input, like the
//! routing views; never consulted per query.

use petrel_types::{Family, PopIdx, Prefix};

/// One POP's measurement in a unit, and its tier (0 is best).
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub pop: PopIdx,
    pub tier: u16,
    pub median_ms: f64,
    /// The median's 95 % confidence interval.
    pub low_ms: f64,
    pub high_ms: f64,
    /// Effective (recency-weighted) samples.
    pub samples: f64,
}

/// A unit's ranking: its measured POPs, each in a tier (POPs not measured
/// rank after all of them). One allocation per unit: a million of them are
/// rebuilt on every recompile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyUnit {
    pub measured: Vec<Measured>,
    /// Where the figures come from when the unit borrowed them (its
    /// covering prefix, or its AS in its metro); None: its own samples.
    pub borrowed_from: Option<String>,
}

impl LatencyUnit {
    /// The rank key of a POP: its tier, or after every tier.
    pub fn key(&self, p: PopIdx) -> u64 {
        self.measured
            .iter()
            .find(|m| m.pop == p)
            .map_or(u64::MAX, |m| u64::from(m.tier))
    }

    /// The tiers, best first.
    pub fn tiers(&self) -> Vec<Vec<PopIdx>> {
        let mut out: Vec<Vec<PopIdx>> = Vec::new();
        for m in &self.measured {
            let t = m.tier as usize;
            if out.len() <= t {
                out.resize(t + 1, Vec::new());
            }
            out[t].push(m.pop);
        }
        out.retain(|t| !t.is_empty());
        out
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
