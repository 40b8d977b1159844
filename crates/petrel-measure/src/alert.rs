//! Alerts when a network gets slower to a POP: "see broken peering before
//! users complain".
//!
//! Each watched key (a map unit or an AS, with a POP) keeps two aggregates
//! of the same samples: a baseline that fades slowly (a day by default)
//! and a current one that fades fast (minutes). When the current median
//! stays above the baseline by the margin (relative and absolute) for
//! `open_after`, an alert opens; it closes when the current median has
//! been back within half the margin for `close_after`. The baseline learns
//! only from normal times: samples taken while the key looks slow are held
//! apart, and join the baseline only if the slowness passes without an
//! alert, so a long outage never becomes the new normal.
//!
//! Time is passed in; nothing here reads a clock.

use crate::aggregate::{Aggregate, Decay};
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlertParams {
    /// How much slower, relatively (0.3: 30 %) ...
    pub margin: f64,
    /// ... and absolutely (ms), the current median must be to count.
    pub min_increase_ms: f64,
    pub open_after_ms: u64,
    pub close_after_ms: u64,
    pub baseline: Decay,
    pub current: Decay,
    /// Effective samples the baseline needs before anything is judged.
    pub min_baseline_samples: f64,
    /// Recent weight the current aggregate needs: without traffic nothing
    /// changes (an open alert stays open).
    pub min_current_weight: f64,
}

impl Default for AlertParams {
    fn default() -> Self {
        AlertParams {
            margin: 0.3,
            min_increase_ms: 10.0,
            open_after_ms: 5 * 60_000,
            close_after_ms: 10 * 60_000,
            baseline: Decay {
                half_life_ms: 24 * 3_600_000,
            },
            current: Decay {
                half_life_ms: 2 * 60_000,
            },
            min_baseline_samples: 50.0,
            min_current_weight: 10.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum State {
    Normal,
    /// Slow since this time, not yet for long enough.
    Rising {
        since_ms: u64,
    },
    Open {
        opened_ms: u64,
        baseline_ms: f64,
    },
    /// Open, and back to normal since `since_ms`.
    Recovering {
        opened_ms: u64,
        baseline_ms: f64,
        since_ms: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Opened {
        at_ms: u64,
        /// When the slowness began.
        since_ms: u64,
        baseline_ms: f64,
        current_ms: f64,
    },
    Closed {
        at_ms: u64,
        opened_ms: u64,
        baseline_ms: f64,
        current_ms: f64,
    },
}

/// One watched key.
#[derive(Clone, Debug)]
pub struct Watch {
    baseline: Aggregate,
    /// Samples taken while the key looked slow, not yet in the baseline.
    held: Aggregate,
    current: Aggregate,
    state: State,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            baseline: Aggregate::default(),
            held: Aggregate::default(),
            current: Aggregate::default(),
            state: State::Normal,
        }
    }
}

impl Watch {
    pub fn state(&self) -> State {
        self.state
    }

    pub fn baseline(&self) -> &Aggregate {
        &self.baseline
    }

    pub fn current(&self) -> &Aggregate {
        &self.current
    }

    pub fn add(&mut self, at_ms: u64, rtt_us: u32, p: &AlertParams) {
        self.current.add(at_ms, rtt_us, p.current);
        match self.state {
            State::Normal => self.baseline.add(at_ms, rtt_us, p.baseline),
            State::Rising { .. } => self.held.add(at_ms, rtt_us, p.baseline),
            State::Open { .. } | State::Recovering { .. } => {}
        }
    }

    /// Judge at `now_ms`; an event when the alert opens or closes.
    pub fn tick(&mut self, now_ms: u64, p: &AlertParams) -> Option<Event> {
        if self.current.weight_at(now_ms, p.current) < p.min_current_weight {
            return None;
        }
        let cur = self.current.summary()?.median_ms;
        let base = match self.state {
            State::Open { baseline_ms, .. } | State::Recovering { baseline_ms, .. } => baseline_ms,
            _ => {
                let b = self.baseline.summary()?;
                if b.effective < p.min_baseline_samples {
                    return None;
                }
                b.median_ms
            }
        };
        let slow = cur > base * (1.0 + p.margin) && cur - base >= p.min_increase_ms;
        let recovered = cur <= base * (1.0 + p.margin / 2.0) || cur - base < p.min_increase_ms / 2.0;
        let (next, event) = match self.state {
            State::Normal if slow => (State::Rising { since_ms: now_ms }, None),
            State::Normal => (State::Normal, None),
            State::Rising { since_ms } if slow && now_ms.saturating_sub(since_ms) >= p.open_after_ms => {
                // The held samples were the slowness itself: not baseline.
                self.held = Aggregate::default();
                (
                    State::Open {
                        opened_ms: now_ms,
                        baseline_ms: base,
                    },
                    Some(Event::Opened {
                        at_ms: now_ms,
                        since_ms,
                        baseline_ms: base,
                        current_ms: cur,
                    }),
                )
            }
            State::Rising { since_ms } if slow => (State::Rising { since_ms }, None),
            State::Rising { .. } => {
                // A passing blip: what it held was normal after all.
                let held = std::mem::take(&mut self.held);
                self.baseline.merge(&held, p.baseline);
                (State::Normal, None)
            }
            State::Open { opened_ms, baseline_ms } if recovered => (
                State::Recovering {
                    opened_ms,
                    baseline_ms,
                    since_ms: now_ms,
                },
                None,
            ),
            s @ State::Open { .. } => (s, None),
            State::Recovering {
                opened_ms, baseline_ms, ..
            } if !recovered => (State::Open { opened_ms, baseline_ms }, None),
            State::Recovering {
                opened_ms,
                baseline_ms,
                since_ms,
            } if now_ms.saturating_sub(since_ms) >= p.close_after_ms => (
                State::Normal,
                Some(Event::Closed {
                    at_ms: now_ms,
                    opened_ms,
                    baseline_ms,
                    current_ms: cur,
                }),
            ),
            s @ State::Recovering { .. } => (s, None),
        };
        self.state = next;
        event
    }
}

/// Every watched key, with the events of the last tick.
#[derive(Clone, Debug)]
pub struct Alerts<K> {
    pub params: AlertParams,
    watches: HashMap<K, Watch>,
}

impl<K: Clone + Eq + Hash> Alerts<K> {
    pub fn new(params: AlertParams) -> Self {
        Alerts {
            params,
            watches: HashMap::new(),
        }
    }

    /// New parameters (a reload) start every watch over: baselines judged
    /// by other rules are not comparable.
    pub fn set_params(&mut self, params: AlertParams) {
        if self.params != params {
            *self = Alerts::new(params);
        }
    }

    pub fn add(&mut self, key: K, at_ms: u64, rtt_us: u32) {
        let p = self.params;
        self.watches.entry(key).or_default().add(at_ms, rtt_us, &p);
    }

    /// Judge every key at `now_ms`; keys whose data has faded away and
    /// that have no alert open are forgotten, so memory follows traffic.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(K, Event)> {
        let p = self.params;
        let mut events = Vec::new();
        self.watches.retain(|k, w| {
            if let Some(e) = w.tick(now_ms, &p) {
                events.push((k.clone(), e));
            }
            matches!(w.state, State::Open { .. } | State::Recovering { .. })
                || !w.baseline.is_faded(now_ms, p.baseline)
                || !w.current.is_faded(now_ms, p.current)
        });
        events
    }

    pub fn get(&self, key: &K) -> Option<&Watch> {
        self.watches.get(key)
    }

    /// The keys with an alert open now.
    pub fn open(&self) -> impl Iterator<Item = (&K, &Watch)> {
        self.watches
            .iter()
            .filter(|(_, w)| matches!(w.state, State::Open { .. } | State::Recovering { .. }))
    }

    pub fn len(&self) -> usize {
        self.watches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    /// Feed `n` samples of `rtt_ms` over one minute starting at `t`, then
    /// tick at the minute's end.
    fn minute(a: &mut Alerts<&'static str>, key: &'static str, t: u64, rtt_ms: f64, n: u64) -> Vec<Event> {
        for i in 0..n {
            a.add(key, t + i * MIN / n, (rtt_ms * 1000.0) as u32);
        }
        a.tick(t + MIN).into_iter().map(|(_, e)| e).collect()
    }

    #[test]
    fn a_slowdown_opens_one_alert_and_recovery_closes_it() {
        let mut a = Alerts::new(AlertParams::default());
        let mut t = 0;
        let mut events = Vec::new();
        // An hour of normal: 30 ms.
        for _ in 0..60 {
            events.extend(minute(&mut a, "as64500/ams", t, 30.0, 20));
            t += MIN;
        }
        assert!(events.is_empty());
        // Forty minutes at 80 ms: one alert, after the slowness lasted 5
        // minutes (and the fast aggregate caught up).
        let slow_from = t;
        for _ in 0..40 {
            events.extend(minute(&mut a, "as64500/ams", t, 80.0, 20));
            t += MIN;
        }
        assert_eq!(events.len(), 1, "{events:?}");
        let Event::Opened {
            at_ms,
            since_ms,
            baseline_ms,
            current_ms,
        } = events[0]
        else {
            panic!("{events:?}")
        };
        assert!(since_ms >= slow_from && since_ms < slow_from + 5 * MIN, "{events:?}");
        assert!(
            at_ms - since_ms >= 5 * MIN && at_ms - slow_from <= 12 * MIN,
            "{events:?}"
        );
        assert!((baseline_ms - 30.0).abs() < 1.0 && current_ms > 60.0, "{events:?}");
        assert_eq!(a.open().count(), 1);
        // The baseline did not learn the outage.
        let b = a.get(&"as64500/ams").unwrap().baseline().summary().unwrap();
        assert!((b.median_ms - 30.0).abs() < 1.0, "{b:?}");
        // Back to 30 ms: closed after ten quiet minutes, once.
        events.clear();
        for _ in 0..30 {
            events.extend(minute(&mut a, "as64500/ams", t, 30.0, 20));
            t += MIN;
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(matches!(events[0], Event::Closed { baseline_ms, .. } if (baseline_ms - 30.0).abs() < 1.0));
        assert_eq!(a.open().count(), 0);
    }

    #[test]
    fn blips_small_rises_and_silence_open_nothing() {
        let mut a = Alerts::new(AlertParams::default());
        let mut t = 0;
        let mut events = Vec::new();
        for _ in 0..60 {
            events.extend(minute(&mut a, "k", t, 30.0, 20));
            t += MIN;
        }
        // Two slow minutes: shorter than open_after.
        for _ in 0..2 {
            events.extend(minute(&mut a, "k", t, 90.0, 20));
            t += MIN;
        }
        for _ in 0..15 {
            events.extend(minute(&mut a, "k", t, 30.0, 20));
            t += MIN;
        }
        // 20 % slower for half an hour: under the margin.
        for _ in 0..30 {
            events.extend(minute(&mut a, "k", t, 36.0, 20));
            t += MIN;
        }
        assert!(events.is_empty(), "{events:?}");
        // 30 % slower but only +6 ms (a 20 ms network): under the absolute
        // margin.
        let mut b = Alerts::new(AlertParams::default());
        let mut t = 0;
        for _ in 0..60 {
            events.extend(minute(&mut b, "k", t, 20.0, 20));
            t += MIN;
        }
        for _ in 0..30 {
            events.extend(minute(&mut b, "k", t, 27.0, 20));
            t += MIN;
        }
        assert!(events.is_empty(), "{events:?}");
        // Too few samples to judge: nothing, however slow.
        let mut c = Alerts::new(AlertParams::default());
        let mut t = 0;
        for _ in 0..60 {
            events.extend(minute(&mut c, "k", t, 30.0, 1));
            t += MIN;
        }
        for _ in 0..30 {
            events.extend(minute(&mut c, "k", t, 300.0, 1));
            t += MIN;
        }
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn new_parameters_start_over_the_same_do_not() {
        let mut a = Alerts::new(AlertParams::default());
        minute(&mut a, "k", 0, 30.0, 20);
        a.set_params(AlertParams::default());
        assert_eq!(a.len(), 1);
        a.set_params(AlertParams {
            margin: 0.5,
            ..AlertParams::default()
        });
        assert!(a.is_empty());
    }

    #[test]
    fn forgotten_when_faded_unless_open() {
        let mut a = Alerts::new(AlertParams::default());
        minute(&mut a, "k", 0, 30.0, 20);
        assert_eq!(a.len(), 1);
        // Fifteen baseline half-lives later (the baseline fades slowest):
        // 20 × 2^-15 is below what is kept.
        a.tick(15 * 24 * 3_600_000);
        assert!(a.is_empty());
    }
}
