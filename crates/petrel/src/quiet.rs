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

/// A listener's failing accepts (usually: no descriptor left). Retrying at
/// once would spin and log a line each time: each failure waits longer,
/// 10 ms doubling to 1 s, and is logged once per 10 s with the count left
/// out; a success starts over.
#[derive(Debug)]
pub struct AcceptBackoff {
    what: &'static str,
    log: Every,
    delay: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);

    pub fn new(what: &'static str) -> AcceptBackoff {
        AcceptBackoff {
            what,
            log: Every::new(Duration::from_secs(10)),
            delay: Self::FIRST,
        }
    }

    pub fn accepted(&mut self) {
        self.delay = Self::FIRST;
    }

    /// How long to wait before accepting again.
    pub fn failed(&mut self, e: &std::io::Error, now: Instant) -> Duration {
        let wait = self.delay;
        if let Some(suppressed) = self.log.hit(now) {
            tracing::warn!(error = %e, suppressed, backoff_ms = wait.as_millis() as u64, "{} accept failed", self.what);
        }
        self.delay = (self.delay * 2).min(Self::MOST);
        wait
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

    #[test]
    fn accept_failures_back_off_to_a_second_and_start_over() {
        let t0 = Instant::now();
        let mut b = AcceptBackoff::new("test");
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        let waits: Vec<u128> = (0..9).map(|_| b.failed(&e, t0).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.accepted();
        assert_eq!(b.failed(&e, t0).as_millis(), 10);
    }
}
