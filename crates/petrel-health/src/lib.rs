//! Health decisions, without IO and without a clock.
//!
//! A probe's outcome (success, failure, or too slow) goes into a target's
//! [`Hysteresis`]: a target changes state only after `rise` consecutive
//! successes or `fall` consecutive failures, so a flapping target does not
//! make answers flap. A POP is up while at least `up_thresh` of its targets
//! are up ([`pop_up`], gdnsd's `up_thresh`). Time is always passed in as
//! milliseconds since an arbitrary epoch, so tests drive it by hand.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Outcome of one probe, judged against its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
}

/// A probe that answered correctly but later than its timeout is a failure:
/// a target that slow would not serve users either.
pub fn judge(succeeded: bool, elapsed_ms: u64, timeout_ms: u64) -> Outcome {
    if succeeded && elapsed_ms <= timeout_ms {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    Up,
    Down,
}

/// A state change, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flip {
    pub to: TargetState,
    pub at_ms: u64,
    /// How many consecutive outcomes caused it.
    pub after: u32,
}

/// Anti-flap state of one target.
#[derive(Clone, Debug)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    state: TargetState,
    // Consecutive outcomes that disagree with `state`.
    streak: u32,
    since_ms: u64,
    results: u64,
    // The first outcome sets the state outright (no rise/fall count).
    first_decides: bool,
}

impl Hysteresis {
    /// `rise`/`fall` of 0 are treated as 1.
    pub fn new(initial: TargetState, rise: u32, fall: u32, now_ms: u64) -> Self {
        Hysteresis {
            rise: rise.max(1),
            fall: fall.max(1),
            state: initial,
            streak: 0,
            since_ms: now_ms,
            results: 0,
            first_decides: false,
        }
    }

    /// A target with no state yet: its first outcome decides it (for
    /// `initial = "wait"`); until then it reads as down.
    pub fn pending(rise: u32, fall: u32, now_ms: u64) -> Self {
        Hysteresis {
            first_decides: true,
            ..Hysteresis::new(TargetState::Down, rise, fall, now_ms)
        }
    }

    pub fn state(&self) -> TargetState {
        self.state
    }

    /// When the current state began.
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// Whether any outcome has been seen yet.
    pub fn has_results(&self) -> bool {
        self.results > 0
    }

    /// Whether a change is under way: the latest outcomes disagree with
    /// the state, or no outcome has decided a pending target yet. Probes
    /// then come at the fast interval, so that `fall` (or `rise`) results
    /// take seconds, not `fall` full intervals (HAProxy's `fastinter`,
    /// ExaBGP healthcheck's `--fast-interval`).
    pub fn changing(&self) -> bool {
        self.streak > 0 || self.first_decides
    }

    pub fn observe(&mut self, outcome: Outcome, now_ms: u64) -> Option<Flip> {
        self.results += 1;
        if std::mem::take(&mut self.first_decides) {
            let to = if outcome == Outcome::Ok {
                TargetState::Up
            } else {
                TargetState::Down
            };
            self.since_ms = now_ms;
            if to != self.state {
                self.state = to;
                return Some(Flip {
                    to,
                    at_ms: now_ms,
                    after: 1,
                });
            }
            return None;
        }
        let agrees = matches!(
            (self.state, outcome),
            (TargetState::Up, Outcome::Ok) | (TargetState::Down, Outcome::Failed)
        );
        if agrees {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let need = match self.state {
            TargetState::Up => self.fall,
            TargetState::Down => self.rise,
        };
        if self.streak < need {
            return None;
        }
        let after = self.streak;
        self.state = match self.state {
            TargetState::Up => TargetState::Down,
            TargetState::Down => TargetState::Up,
        };
        self.streak = 0;
        self.since_ms = now_ms;
        Some(Flip {
            to: self.state,
            at_ms: now_ms,
            after,
        })
    }
}

/// A POP is up while the share of its targets that are up is at least
/// `up_thresh` (0 < up_thresh <= 1). A POP without targets is up.
pub fn pop_up(targets: impl IntoIterator<Item = TargetState>, up_thresh: f64) -> bool {
    let (mut up, mut all) = (0usize, 0usize);
    for t in targets {
        all += 1;
        up += (t == TargetState::Up) as usize;
    }
    all == 0 || up as f64 >= up_thresh * all as f64 - 1e-9
}

/// The time a target needs, at most, to be seen down after it dies: the
/// first failing probe starts within `interval`, the `fall - 1` more follow
/// `fast_interval` apart, each failing after at most `timeout`.
pub fn detection_bound_ms(interval_ms: u64, fast_interval_ms: u64, timeout_ms: u64, fall: u32) -> u64 {
    interval_ms + fast_interval_ms * (fall.max(1) as u64 - 1) + timeout_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::{Failed as F, Ok as K};
    use TargetState::{Down, Up};

    fn feed(h: &mut Hysteresis, outcomes: &[Outcome], start: u64, step: u64) -> Vec<(u64, TargetState)> {
        outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, &o)| h.observe(o, start + i as u64 * step).map(|f| (f.at_ms, f.to)))
            .collect()
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_successes() {
        let mut h = Hysteresis::new(Up, 2, 3, 0);
        assert_eq!(feed(&mut h, &[F, F], 1000, 1000), vec![]);
        assert_eq!(h.state(), Up);
        assert_eq!(feed(&mut h, &[F], 3000, 1000), vec![(3000, Down)]);
        assert_eq!(h.since_ms(), 3000);
        assert_eq!(
            feed(&mut h, &[K, F, K], 4000, 1000),
            vec![],
            "a failure resets the run of successes"
        );
        // The success at 6000 and the one at 7000 make two in a row.
        assert_eq!(feed(&mut h, &[K, K], 7000, 1000), vec![(7000, Up)]);
    }

    #[test]
    fn a_change_under_way_is_known_until_it_is_decided_or_reverts() {
        let mut h = Hysteresis::new(Up, 2, 3, 0);
        assert!(!h.changing());
        feed(&mut h, &[F, F], 0, 1000);
        assert!(h.changing(), "two of three failures");
        feed(&mut h, &[K], 2000, 1000);
        assert!(!h.changing(), "a success ends it");
        feed(&mut h, &[F, F, F], 3000, 1000);
        assert_eq!((h.state(), h.changing()), (Down, false));
        feed(&mut h, &[K], 6000, 1000);
        assert!(h.changing(), "one of two successes");
        assert!(Hysteresis::pending(2, 3, 0).changing(), "undecided");
    }

    #[test]
    fn a_flapping_target_does_not_flap() {
        let mut h = Hysteresis::new(Up, 3, 3, 0);
        let flapping: Vec<Outcome> = (0..100).map(|i| if i % 2 == 0 { F } else { K }).collect();
        assert_eq!(feed(&mut h, &flapping, 0, 500), vec![]);
        assert_eq!(h.state(), Up);
        // Two failures out of three still never make three in a row.
        let mostly_bad: Vec<Outcome> = (0..99).map(|i| if i % 3 == 2 { K } else { F }).collect();
        assert_eq!(feed(&mut h, &mostly_bad, 0, 500), vec![]);
    }

    #[test]
    fn slow_answers_count_as_failures() {
        assert_eq!(judge(true, 250, 1000), K);
        assert_eq!(judge(true, 1000, 1000), K);
        assert_eq!(judge(true, 1001, 1000), F);
        assert_eq!(judge(false, 3, 1000), F);
        let mut h = Hysteresis::new(Up, 1, 2, 0);
        let slow: Vec<Outcome> = [1500u64, 1700].iter().map(|&ms| judge(true, ms, 1000)).collect();
        assert_eq!(feed(&mut h, &slow, 0, 1000), vec![(1000, Down)]);
    }

    #[test]
    fn initial_state_and_first_results() {
        let mut h = Hysteresis::new(Down, 1, 1, 0);
        assert!(!h.has_results());
        assert_eq!(
            h.observe(K, 10),
            Some(Flip {
                to: Up,
                at_ms: 10,
                after: 1
            })
        );
        assert!(h.has_results());
    }

    #[test]
    fn pending_targets_take_their_first_result() {
        let mut h = Hysteresis::pending(3, 3, 0);
        assert_eq!(
            h.observe(K, 5),
            Some(Flip {
                to: Up,
                at_ms: 5,
                after: 1
            })
        );
        // From then on, the usual counts.
        assert_eq!(feed(&mut h, &[F, F], 10, 10), vec![]);
        let mut h = Hysteresis::pending(3, 3, 0);
        assert_eq!(h.observe(F, 5), None);
        assert_eq!(h.state(), Down);
        assert!(h.has_results());
    }

    #[test]
    fn pop_state_from_targets() {
        assert!(pop_up([], 0.5));
        assert!(pop_up([Up, Down], 0.5));
        assert!(!pop_up([Up, Down, Down], 0.5));
        assert!(!pop_up([Up, Down], 1.0));
        assert!(pop_up([Up, Up, Up], 1.0));
        assert!(pop_up([Up, Down, Down], 1.0 / 3.0));
    }

    #[test]
    fn detection_bound() {
        assert_eq!(detection_bound_ms(1000, 1000, 500, 3), 3500);
        assert_eq!(detection_bound_ms(5000, 1000, 2500, 3), 9500);
    }
}
