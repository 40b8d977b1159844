//! Route-flap damping of our own announcements (RFC 2439 §4.8's figure of
//! merit), so that a flapping service cannot make the Internet flap.
//!
//! Each withdrawal of a prefix that was announced adds a penalty; the
//! penalty decays exponentially with `half_life`. Above `suppress` the
//! prefix is held withdrawn (or de-preferred, as its neighbour's `on_down`
//! says) until the penalty decays below `reuse`, and never longer than
//! `max_suppress`. The penalty is capped at the value that decays to
//! `reuse` in `max_suppress` (RFC 2439 §4.8.1's ceiling), so the bound on
//! suppression holds whatever happens meanwhile.
//!
//! Defaults: the Transit Portal's parameters (half-life 15 min, reuse 750,
//! suppress 2000, at most 60 min), with 1000 per withdrawal as RFC 2439's
//! example and most routers use, rather than the portal's 500: damping
//! here protects the Internet from us, and at 1000 a service that goes
//! down three times in a few minutes is held back, at 500 only after five.
//! Time is passed in; nothing here reads a clock.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DampingParams {
    pub half_life: Duration,
    pub penalty: f64,
    pub reuse: f64,
    pub suppress: f64,
    pub max_suppress: Duration,
}

impl Default for DampingParams {
    fn default() -> Self {
        DampingParams {
            half_life: Duration::from_secs(15 * 60),
            penalty: 1000.0,
            reuse: 750.0,
            suppress: 2000.0,
            max_suppress: Duration::from_secs(60 * 60),
        }
    }
}

impl DampingParams {
    /// The highest penalty kept: the one that decays to `reuse` in exactly
    /// `max_suppress`.
    pub fn ceiling(&self) -> f64 {
        self.reuse * 2f64.powf(self.max_suppress.as_secs_f64() / self.half_life.as_secs_f64())
    }
}

/// The damping state of one prefix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Damping {
    penalty: f64,
    at: Option<Instant>,
    suppressed: bool,
}

impl Default for Damping {
    fn default() -> Self {
        Damping {
            penalty: 0.0,
            at: None,
            suppressed: false,
        }
    }
}

impl Damping {
    /// The penalty as of `now` (decayed since the last change).
    pub fn penalty(&self, p: &DampingParams, now: Instant) -> f64 {
        match self.at {
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.penalty * 0.5f64.powf(dt / p.half_life.as_secs_f64())
            }
        }
    }

    /// A withdrawal of the prefix (it went from announced to not).
    pub fn flap(&mut self, p: &DampingParams, now: Instant) {
        let v = (self.penalty(p, now) + p.penalty).min(p.ceiling());
        self.penalty = v;
        self.at = Some(now);
        if v > p.suppress {
            self.suppressed = true;
        }
    }

    /// Whether the prefix is held back at `now`; a suppressed prefix whose
    /// penalty fell below `reuse` is released (and the call says so).
    pub fn suppressed(&mut self, p: &DampingParams, now: Instant) -> bool {
        if self.suppressed && self.penalty(p, now) < p.reuse {
            self.suppressed = false;
        }
        self.suppressed
    }

    /// When a suppressed prefix will be released, if nothing else happens.
    pub fn reuse_at(&self, p: &DampingParams, now: Instant) -> Option<Instant> {
        if !self.suppressed {
            return None;
        }
        let pen = self.penalty(p, now);
        if pen < p.reuse {
            return Some(now);
        }
        // pen * 2^(-t/h) = reuse  =>  t = h * log2(pen / reuse); a hair more
        // so that the penalty is below reuse when it is read then.
        let t = p.half_life.as_secs_f64() * (pen / p.reuse).log2();
        Some(now + Duration::from_secs_f64(t) + Duration::from_millis(1))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // an arbitrary origin of time
mod tests {
    use super::*;

    fn at(t0: Instant, secs: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs)
    }

    #[test]
    fn the_penalty_halves_every_half_life() {
        let p = DampingParams::default();
        let t0 = Instant::now();
        let mut d = Damping::default();
        d.flap(&p, t0);
        assert_eq!(d.penalty(&p, t0), 1000.0);
        assert!((d.penalty(&p, at(t0, 900.0)) - 500.0).abs() < 1e-6);
        assert!((d.penalty(&p, at(t0, 1800.0)) - 250.0).abs() < 1e-6);
        assert!(!d.suppressed(&p, t0), "one flap is not suppressed");
    }

    #[test]
    fn three_quick_flaps_suppress_until_the_predicted_reuse_time() {
        let p = DampingParams::default();
        let t0 = Instant::now();
        let mut d = Damping::default();
        d.flap(&p, t0);
        d.flap(&p, at(t0, 60.0));
        assert!(!d.suppressed(&p, at(t0, 60.0)), "1955 after two flaps a minute apart");
        d.flap(&p, at(t0, 120.0));
        let now = at(t0, 120.0);
        assert!(d.suppressed(&p, now));
        let pen = d.penalty(&p, now);
        assert!((2850.0..2900.0).contains(&pen), "{pen}");
        // Released when the penalty falls below 750: h * log2(pen / 750).
        let reuse = d.reuse_at(&p, now).unwrap();
        let want = 900.0 * (pen / 750.0).log2();
        assert!((reuse.duration_since(now).as_secs_f64() - want).abs() < 0.01);
        assert!(d.suppressed(&p, reuse - Duration::from_millis(5)));
        assert!(!d.suppressed(&p, reuse));
        assert_eq!(d.reuse_at(&p, reuse), None);
    }

    #[test]
    fn suppression_never_lasts_longer_than_max_suppress() {
        let p = DampingParams::default();
        let t0 = Instant::now();
        let mut d = Damping::default();
        // Flapping every second for an hour.
        for s in 0..3600 {
            d.flap(&p, at(t0, s as f64));
        }
        let now = at(t0, 3600.0);
        // At the ceiling after the last flap, one second ago.
        assert!((d.penalty(&p, now) - p.ceiling() * 0.5f64.powf(1.0 / 900.0)).abs() < 1e-6);
        let reuse = d.reuse_at(&p, now).unwrap();
        assert!(reuse.duration_since(now) <= p.max_suppress + Duration::from_millis(2));
        assert!(!d.suppressed(&p, now + p.max_suppress + Duration::from_millis(2)));
    }
}
