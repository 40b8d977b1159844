//! The latency policy's ranking of one map unit: POPs ordered by measured
//! median RTT, split into tiers only where the difference is both real
//! (outside the medians' confidence) and worth having (at least `tie_ms`).
//! POPs it cannot tell apart share a tier, so the next policy (blended,
//! geo, weights) chooses among them, as every policy in a chain does.

use crate::aggregate::Summary;
use petrel_types::PopIdx;

/// When a unit's measurements are enough to rank by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankParams {
    /// Effective samples a POP needs to count as measured.
    pub min_samples: f64,
    /// Measured POPs a unit needs for the policy to rank it at all.
    pub min_pops: usize,
    /// Medians closer than this (ms) are a tie.
    pub tie_ms: f64,
    /// How many standard errors apart two medians must be (1.96: 95 %).
    pub z: f64,
}

impl Default for RankParams {
    fn default() -> Self {
        RankParams {
            min_samples: 10.0,
            min_pops: 2,
            tie_ms: 5.0,
            z: 1.96,
        }
    }
}

/// Whether `b` is worse than `a` by enough to rank below it.
pub fn clearly_worse(a: &Summary, b: &Summary, p: &RankParams) -> bool {
    if b.median_ms - a.median_ms < p.tie_ms {
        return false;
    }
    let se = (a.log_se * a.log_se + b.log_se * b.log_se).sqrt();
    (b.median_ms / a.median_ms).ln() > p.z * se
}

/// The tiers of the measured POPs, best first; None when fewer than
/// `min_pops` POPs are measured (the unit passes to the next policy).
/// POPs not measured enough are left out: the policy ranks them after
/// every measured one.
pub fn tiers(measured: &[(PopIdx, Summary)], p: &RankParams) -> Option<Vec<Vec<PopIdx>>> {
    let mut m: Vec<&(PopIdx, Summary)> = measured.iter().filter(|(_, s)| s.effective >= p.min_samples).collect();
    if m.len() < p.min_pops.max(1) {
        return None;
    }
    m.sort_by(|a, b| a.1.median_ms.total_cmp(&b.1.median_ms).then(a.0.cmp(&b.0)));
    let mut out: Vec<Vec<PopIdx>> = Vec::new();
    // A tier is led by its best POP; a POP joins it unless clearly worse
    // than that leader (so a chain of small steps cannot pull a much
    // slower POP into the first tier).
    let mut leader = m[0].1;
    out.push(vec![m[0].0]);
    for &&(pop, s) in &m[1..] {
        if clearly_worse(&leader, &s, p) {
            leader = s;
            out.push(vec![pop]);
        } else if let Some(t) = out.last_mut() {
            t.push(pop);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(median_ms: f64, log_se: f64, effective: f64) -> Summary {
        Summary {
            count: effective as u64,
            effective,
            median_ms,
            p90_ms: median_ms * 1.5,
            mean_ms: median_ms,
            low_ms: median_ms * (-1.96 * log_se).exp(),
            high_ms: median_ms * (1.96 * log_se).exp(),
            log_se,
        }
    }

    const A: PopIdx = PopIdx(0);
    const B: PopIdx = PopIdx(1);
    const C: PopIdx = PopIdx(2);
    const D: PopIdx = PopIdx(3);

    #[test]
    fn pops_are_tiered_by_real_differences_only() {
        let p = RankParams::default();
        // B is 30 ms faster than A with tight intervals: B first.
        let t = tiers(&[(A, s(60.0, 0.02, 100.0)), (B, s(30.0, 0.02, 100.0))], &p).unwrap();
        assert_eq!(t, vec![vec![B], vec![A]]);
        // 3 ms apart: a tie, whatever the confidence.
        let t = tiers(&[(A, s(33.0, 0.001, 1e4)), (B, s(30.0, 0.001, 1e4))], &p).unwrap();
        assert_eq!(t, vec![vec![B, A]]);
        // 30 ms apart but noisy (few, spread samples): a tie.
        let t = tiers(&[(A, s(60.0, 0.4, 12.0)), (B, s(30.0, 0.4, 12.0))], &p).unwrap();
        assert_eq!(t, vec![vec![B, A]]);
        // Steps of 2 ms each tie with their neighbour, but the tier's
        // leader decides: D is 6 ms behind B.
        let t = tiers(
            &[
                (B, s(30.0, 0.01, 500.0)),
                (C, s(32.0, 0.01, 500.0)),
                (A, s(34.0, 0.01, 500.0)),
                (D, s(36.0, 0.01, 500.0)),
            ],
            &p,
        )
        .unwrap();
        assert_eq!(t, vec![vec![B, C, A], vec![D]]);
    }

    #[test]
    fn a_unit_needs_enough_samples_for_enough_pops() {
        let p = RankParams::default();
        assert_eq!(tiers(&[(A, s(60.0, 0.02, 100.0))], &p), None, "one POP measured");
        assert_eq!(
            tiers(&[(A, s(60.0, 0.02, 100.0)), (B, s(30.0, 0.02, 9.0))], &p),
            None,
            "B has too few samples"
        );
        // Three POPs, one thinly measured: it is left out.
        let t = tiers(
            &[
                (A, s(60.0, 0.02, 100.0)),
                (B, s(30.0, 0.02, 100.0)),
                (C, s(5.0, 0.02, 2.0)),
            ],
            &p,
        )
        .unwrap();
        assert_eq!(t, vec![vec![B], vec![A]]);
    }
}
