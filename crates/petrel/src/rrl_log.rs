//! What response rate limiting did, logged in aggregate: one line per
//! ten seconds in which it limited anything, never one per query.

use petrel_dns_auth::rrl::Table;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(10);

pub fn spawn(t: Arc<Table>) {
    let r = std::thread::Builder::new().name("rrl-log".into()).spawn(move || {
        let total = |t: &Table| {
            let s = &t.stats;
            let sum = |a: &[std::sync::atomic::AtomicU64; 5]| a.iter().map(|x| x.load(Relaxed)).sum::<u64>();
            (sum(&s.dropped), sum(&s.slipped), s.evicted.load(Relaxed))
        };
        let mut last = total(&t);
        loop {
            std::thread::sleep(EVERY);
            let now = total(&t);
            let (dropped, slipped, evicted) = (now.0 - last.0, now.1 - last.1, now.2 - last.2);
            if dropped + slipped > 0 {
                tracing::warn!(
                    dropped,
                    truncated = slipped,
                    accounts_evicted = evicted,
                    secs = EVERY.as_secs(),
                    "response rate limiting is active"
                );
            }
            last = now;
        }
    });
    if let Err(e) = r {
        tracing::warn!(error = %e, "no thread for rate-limiting logs");
    }
}
