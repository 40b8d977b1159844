//! Logging in aggregate: an event that can repeat thousands of times a
//! second (a malformed UPDATE, a connection from an unknown address, an
//! accept failure) is logged at most once per interval, with how many were
//! left out since. Counters carry the full count.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Every {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Every {
    pub const fn new(every: Duration) -> Every {
        Every {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this event is to be logged, `n` being how many were
    /// not since the last one that was; `None` to stay quiet.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(l) if now.saturating_duration_since(l) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let t0 = Instant::now();
        let mut e = Every::new(Duration::from_secs(10));
        assert_eq!(e.hit(t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(e.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(e.hit(t0 + Duration::from_secs(10)), Some(1000));
        assert_eq!(e.hit(t0 + Duration::from_secs(11)), None);
        assert_eq!(e.hit(t0 + Duration::from_secs(30)), Some(1));
    }
}
