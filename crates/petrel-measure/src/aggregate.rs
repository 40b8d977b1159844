//! Latency aggregates: what many samples of one (map unit, POP) say,
//! kept small and mergeable.
//!
//! An aggregate holds a histogram of RTTs on a logarithmic scale (buckets
//! 1/16 of an octave wide, so a quantile read from it is within 2.2 % of
//! the true one), a decayed sum and sum of squares of weights, and a
//! decayed sum of RTTs. Every sample starts with weight 1, and every
//! weight halves each `half_life`: recent samples count, old ones fade
//! away without a window to slide. All parts decay by the same factor, so
//! an aggregate is summarised by one reference time, and two aggregates
//! merge exactly: bring both to the later time, add. Merging is what
//! rolls units up into their covering prefix, networks into their AS, and
//! what lets the aggregates of several collectors be combined; the order
//! in which samples arrive does not matter.

use serde::{Deserialize, Serialize};

/// The lowest RTT a bucket tells apart (µs); below is the first bucket.
const BASE_US: f64 = 50.0;
/// Buckets per doubling of the RTT.
const PER_OCTAVE: f64 = 16.0;
/// The last bucket: 50 µs × 2^(335/16) ≈ 100 s.
const MAX_BUCKET: u16 = 335;
/// A bucket whose weight decays below this is dropped: an aggregate no
/// longer fed shrinks, then vanishes (see [`Aggregate::is_faded`]).
const PRUNE: f32 = 1e-3;

/// How fast samples fade.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decay {
    pub half_life_ms: u64,
}

impl Decay {
    /// The factor a weight at `from` has shrunk by at `to` (`to >= from`).
    fn factor(self, from: u64, to: u64) -> f64 {
        if to <= from || self.half_life_ms == 0 {
            return if to <= from { 1.0 } else { 0.0 };
        }
        (-((to - from) as f64) / self.half_life_ms as f64).exp2()
    }
}

/// The exact `q` quantile of sorted values, by the nearest rank ((n - 1)
/// × q, rounded): what the warehouse reports as median and p90. None when
/// there are no values.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted
        .get(((last as f64 * q.clamp(0.0, 1.0)).round() as usize).min(last))
        .copied()
}

/// The bucket of an RTT in microseconds.
pub fn bucket(rtt_us: u32) -> u16 {
    let x = f64::from(rtt_us.max(1)) / BASE_US;
    if x <= 1.0 {
        return 0;
    }
    ((x.log2() * PER_OCTAVE) as u64).min(u64::from(MAX_BUCKET)) as u16
}

/// The RTT a bucket stands for: its geometric middle (µs).
pub fn bucket_value_us(b: u16) -> f64 {
    BASE_US * ((f64::from(b) + 0.5) / PER_OCTAVE).exp2()
}

/// Samples of one (unit, POP), decayed to `at_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// The time the weights below are reckoned at (ms since the epoch).
    pub at_ms: u64,
    /// Every sample ever added, undecayed.
    pub count: u64,
    /// Σ weight, Σ weight², Σ weight × RTT (µs), at `at_ms`.
    pub w: f64,
    pub w2: f64,
    pub wx: f64,
    /// (bucket, weight), sorted by bucket.
    pub hist: Vec<(u16, f32)>,
}

/// What an aggregate says, in the words of the policy and of `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    /// The effective number of samples: (Σw)² / Σw², the size of an
    /// unweighted sample that would be as informative.
    pub effective: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    /// The decayed mean.
    pub mean_ms: f64,
    /// A 95 % confidence interval of the median.
    pub low_ms: f64,
    pub high_ms: f64,
    /// The standard error of ln(median): what the ranking compares.
    pub log_se: f64,
}

impl Aggregate {
    /// Bring the weights to `to_ms` (never backwards).
    fn advance(&mut self, to_ms: u64, d: Decay) {
        if to_ms <= self.at_ms {
            return;
        }
        let f = d.factor(self.at_ms, to_ms);
        self.at_ms = to_ms;
        if f == 1.0 {
            return;
        }
        self.w *= f;
        self.w2 *= f * f;
        self.wx *= f;
        let f = f as f32;
        self.hist.retain_mut(|(_, w)| {
            *w *= f;
            *w >= PRUNE
        });
    }

    /// Add one sample taken at `at_ms`. A sample older than the aggregate
    /// counts with the weight it would have had by now.
    pub fn add(&mut self, at_ms: u64, rtt_us: u32, d: Decay) {
        if self.count == 0 && self.w == 0.0 {
            self.at_ms = at_ms;
        }
        self.advance(at_ms, d);
        let w = d.factor(at_ms, self.at_ms);
        self.count += 1;
        self.w += w;
        self.w2 += w * w;
        self.wx += w * f64::from(rtt_us);
        self.add_weight(bucket(rtt_us), w as f32);
    }

    fn add_weight(&mut self, b: u16, w: f32) {
        match self.hist.binary_search_by_key(&b, |&(k, _)| k) {
            Ok(i) => self.hist[i].1 += w,
            Err(i) => self.hist.insert(i, (b, w)),
        }
    }

    /// Add `other`'s samples (as if each had been added here).
    pub fn merge(&mut self, other: &Aggregate, d: Decay) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 && self.hist.is_empty() {
            *self = other.clone();
            return;
        }
        let to = self.at_ms.max(other.at_ms);
        self.advance(to, d);
        let f = d.factor(other.at_ms, to);
        self.count += other.count;
        self.w += other.w * f;
        self.w2 += other.w2 * f * f;
        self.wx += other.wx * f;
        // Both lists are sorted: one pass.
        let mut out = Vec::with_capacity(self.hist.len() + other.hist.len());
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.hist, &other.hist);
        while i < a.len() || j < b.len() {
            let take_b = |x: (u16, f32)| (x.0, x.1 * f as f32);
            match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) if x.0 == y.0 => {
                    out.push((x.0, x.1 + take_b(y).1));
                    i += 1;
                    j += 1;
                }
                (Some(&x), Some(&y)) if x.0 < y.0 => {
                    out.push(x);
                    i += 1;
                }
                (Some(_), Some(&y)) | (None, Some(&y)) => {
                    out.push(take_b(y));
                    j += 1;
                }
                (Some(&x), None) => {
                    out.push(x);
                    i += 1;
                }
                (None, None) => break,
            }
        }
        out.retain(|&(_, w)| w >= PRUNE);
        self.hist = out;
    }

    /// The decayed weight at `now_ms`: how many fresh samples the
    /// aggregate is worth.
    pub fn weight_at(&self, now_ms: u64, d: Decay) -> f64 {
        self.w * d.factor(self.at_ms, now_ms)
    }

    /// Nothing here is worth keeping at `now_ms`.
    pub fn is_faded(&self, now_ms: u64, d: Decay) -> bool {
        self.weight_at(now_ms, d) < f64::from(PRUNE)
    }

    /// The RTT (ms) below which a share `q` of the weight lies.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantiles_ms([q]).map(|[x]| x)
    }

    /// The RTTs (ms) below which the shares `qs` (ascending) of the weight
    /// lie, in one pass.
    fn quantiles_ms<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        let total: f64 = self.hist.iter().map(|&(_, w)| f64::from(w)).sum();
        let last = self.hist.last()?.0;
        if total <= 0.0 {
            return None;
        }
        let mut out = [bucket_value_us(last) / 1000.0; N];
        let mut k = 0;
        let mut acc = 0.0;
        for &(b, w) in &self.hist {
            acc += f64::from(w);
            while k < N && acc >= qs[k].clamp(0.0, 1.0) * total {
                out[k] = bucket_value_us(b) / 1000.0;
                k += 1;
            }
            if k == N {
                break;
            }
        }
        Some(out)
    }

    /// The summary the policy ranks with. None when there is no weight.
    pub fn summary(&self) -> Option<Summary> {
        let [lo, median, hi, p90] = self.quantiles_ms([0.16, 0.5, 0.84, 0.9])?;
        let effective = if self.w2 > 0.0 { self.w * self.w / self.w2 } else { 0.0 };
        // The spread of ln(RTT), read robustly from the 16th and 84th
        // percentiles (one σ each side for a log-normal), with a floor of
        // one bucket: RTTs are never exactly alike.
        let sigma = ((hi / lo).ln() / 2.0).max(1.0 / PER_OCTAVE * std::f64::consts::LN_2);
        // The median's standard error: √(π/2) σ / √n.
        let log_se = 1.2533 * sigma / effective.max(1.0).sqrt();
        Some(Summary {
            count: self.count,
            effective,
            median_ms: median,
            p90_ms: p90,
            mean_ms: if self.w > 0.0 {
                self.wx / self.w / 1000.0
            } else {
                median
            },
            low_ms: median * (-1.96 * log_se).exp(),
            high_ms: median * (1.96 * log_se).exp(),
            log_se,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_quantiles() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(super::nearest_rank(&v, 0.5), Some(60));
        assert_eq!(super::nearest_rank(&v, 0.9), Some(90));
        assert_eq!(super::nearest_rank(&[7], 0.9), Some(7));
        assert_eq!(super::nearest_rank::<u32>(&[], 0.5), None);
        assert_eq!(super::nearest_rank(&v, 2.0), Some(100));
    }

    use super::*;
    use proptest::prelude::*;

    const HOUR: Decay = Decay {
        half_life_ms: 3_600_000,
    };

    #[test]
    fn buckets_are_a_sixteenth_of_an_octave() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(50), 0);
        assert_eq!(bucket(100), 16);
        assert_eq!(bucket(u32::MAX), MAX_BUCKET);
        for us in [120, 1_000, 20_000, 45_000, 180_000, 2_000_000] {
            let v = bucket_value_us(bucket(us));
            assert!((v / f64::from(us) - 1.0).abs() < 0.025, "{us} µs reads as {v}");
        }
    }

    #[test]
    fn quantiles_and_the_confidence_of_the_median() {
        let mut a = Aggregate::default();
        for i in 0..1000u32 {
            // 20..40 ms, uniform.
            a.add(1_000, 20_000 + i * 20, HOUR);
        }
        let s = a.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.effective - 1000.0).abs() < 1e-6);
        assert!((s.median_ms - 30.0).abs() < 0.7, "{s:?}");
        assert!((s.p90_ms - 38.0).abs() < 0.9, "{s:?}");
        assert!((s.mean_ms - 29.99).abs() < 1e-9, "{s:?}");
        assert!(s.low_ms < s.median_ms && s.median_ms < s.high_ms);
        assert!(s.high_ms / s.low_ms < 1.05, "1000 samples pin the median: {s:?}");
        // Ten samples of the same spread: a much wider interval.
        let mut b = Aggregate::default();
        for i in 0..10u32 {
            b.add(1_000, 20_000 + i * 2_000, HOUR);
        }
        let t = b.summary().unwrap();
        assert!(t.high_ms / t.low_ms > 1.2, "{t:?}");
        assert!(Aggregate::default().summary().is_none());
    }

    #[test]
    fn old_samples_fade_with_the_half_life() {
        let mut a = Aggregate::default();
        for _ in 0..100 {
            a.add(0, 100_000, HOUR);
        }
        // Two hours later, 100 samples at 10 ms: the old ones weigh 25.
        for _ in 0..100 {
            a.add(7_200_000, 10_000, HOUR);
        }
        assert!((a.w - 125.0).abs() < 1e-9, "{}", a.w);
        let s = a.summary().unwrap();
        assert!((s.median_ms - 10.0).abs() < 0.3, "the recent samples decide: {s:?}");
        assert!(
            (s.effective - 125.0 * 125.0 / (100.0 + 100.0 / 16.0)).abs() < 1e-6,
            "{s:?}"
        );
        assert!((a.weight_at(7_200_000 + 3_600_000, HOUR) - 62.5).abs() < 1e-9);
        // A sample from before the aggregate's time counts as decayed.
        let mut b = Aggregate::default();
        b.add(3_600_000, 10_000, HOUR);
        b.add(0, 10_000, HOUR);
        assert!((b.w - 1.5).abs() < 1e-9);
        // Unfed for long enough, it vanishes.
        let mut c = Aggregate::default();
        c.add(0, 10_000, HOUR);
        assert!(!c.is_faded(3_600_000, HOUR));
        assert!(c.is_faded(3_600_000 * 11, HOUR));
        c.add(3_600_000 * 11, 20_000, HOUR);
        assert_eq!(c.hist.len(), 1, "the faded bucket is dropped: {:?}", c.hist);
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
    }

    proptest! {
        /// The aggregate of a stream equals the merge of the aggregates of
        /// any split of it, whatever the order of the samples.
        #[test]
        fn merging_aggregates_equals_aggregating_the_merged_stream(
            samples in prop::collection::vec((0u64..20_000_000, 1u32..5_000_000, any::<bool>()), 0..200),
            half_life in 60_000u64..20_000_000,
        ) {
            let d = Decay { half_life_ms: half_life };
            let mut whole = Aggregate::default();
            let (mut left, mut right) = (Aggregate::default(), Aggregate::default());
            for &(t, rtt, side) in &samples {
                whole.add(t, rtt, d);
                if side { left.add(t, rtt, d) } else { right.add(t, rtt, d) }
            }
            left.merge(&right, d);
            prop_assert_eq!(left.count, whole.count);
            prop_assert_eq!(left.at_ms, whole.at_ms);
            prop_assert!(close(left.w, whole.w), "{} {}", left.w, whole.w);
            prop_assert!(close(left.w2, whole.w2));
            prop_assert!(close(left.wx, whole.wx));
            // The histograms agree bucket by bucket, to f32 rounding (a
            // bucket near the pruning threshold may be kept on one side
            // only).
            let weight = |a: &Aggregate, b: u16| a.hist.iter().find(|x| x.0 == b).map_or(0.0, |x| x.1);
            for &(b, w) in whole.hist.iter().chain(left.hist.iter()) {
                let (x, y) = (weight(&whole, b), weight(&left, b));
                prop_assert!((x - y).abs() <= 2.0 * PRUNE * x.max(y).max(1.0), "bucket {}: {} vs {} ({})", b, x, y, w);
            }
            match (whole.summary(), left.summary()) {
                (Some(a), Some(b)) => {
                    // Rounding may move a quantile by at most one bucket.
                    prop_assert!((a.median_ms / b.median_ms).ln().abs() <= 0.05, "{:?} {:?}", a, b);
                }
                (a, b) => prop_assert_eq!(a.is_some(), b.is_some()),
            }
        }
    }
}
