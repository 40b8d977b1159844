//! The edge's end-user remap: a request reaching this POP is served here,
//! unless its connection is slow and another POP is better for the client;
//! then it is redirected there, once.
//!
//! The connection's smoothed RTT comes from the kernel (`TCP_INFO`); the
//! best POPs for the client come from the decision core, looked up with
//! the client's own address. A redirected request carries a marker, so
//! that a request that already moved is never moved again (two POPs that
//! each think the other better must not bounce a client between them).

use petrel_types::PopIdx;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Stay,
    Redirect(PopIdx),
}

/// Why, for the API, metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The request was redirected once already.
    Marked,
    /// No RTT is known for the connection (not TCP, or the kernel did not
    /// say): serve here.
    NoRtt,
    /// The RTT is below the rule's threshold.
    Fast,
    /// This POP is among the best for the client.
    HereIsBest,
    /// No usable POP for the client (all down, or the service has none).
    NoBetter,
    /// Slow, and another POP is better.
    Slow,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Marked => "already redirected once",
            Reason::NoRtt => "no RTT measured",
            Reason::Fast => "RTT below the threshold",
            Reason::HereIsBest => "this POP is among the best for the client",
            Reason::NoBetter => "no other usable POP",
            Reason::Slow => "RTT above the threshold and another POP is better",
        }
    }

    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Marked => "marked",
            Reason::NoRtt => "no_rtt",
            Reason::Fast => "fast",
            Reason::HereIsBest => "here_is_best",
            Reason::NoBetter => "no_better",
            Reason::Slow => "slow",
        }
    }
}

/// The decision for one request. `best`: the decision core's POPs for the
/// client, best first; `here`: this POP (None: the remap API was not told).
pub fn remap(
    best: &[PopIdx],
    here: Option<PopIdx>,
    rtt_ms: Option<f64>,
    threshold_ms: f64,
    marked: bool,
) -> (Action, Reason) {
    if marked {
        return (Action::Stay, Reason::Marked);
    }
    let Some(rtt) = rtt_ms else {
        return (Action::Stay, Reason::NoRtt);
    };
    if rtt < threshold_ms {
        return (Action::Stay, Reason::Fast);
    }
    if here.is_some_and(|h| best.contains(&h)) {
        return (Action::Stay, Reason::HereIsBest);
    }
    match best.first() {
        Some(&p) => (Action::Redirect(p), Reason::Slow),
        None => (Action::Stay, Reason::NoBetter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMS: PopIdx = PopIdx(0);
    const IAD: PopIdx = PopIdx(1);
    const SIN: PopIdx = PopIdx(2);

    #[test]
    fn slow_connections_move_to_the_best_pop_once() {
        let best = [IAD, SIN];
        assert_eq!(
            remap(&best, Some(AMS), Some(150.0), 80.0, false),
            (Action::Redirect(IAD), Reason::Slow)
        );
        assert_eq!(
            remap(&best, Some(AMS), Some(150.0), 80.0, true),
            (Action::Stay, Reason::Marked)
        );
        assert_eq!(
            remap(&best, Some(AMS), Some(20.0), 80.0, false),
            (Action::Stay, Reason::Fast)
        );
        assert_eq!(
            remap(&best, Some(SIN), Some(150.0), 80.0, false),
            (Action::Stay, Reason::HereIsBest)
        );
        assert_eq!(
            remap(&best, Some(AMS), None, 80.0, false),
            (Action::Stay, Reason::NoRtt)
        );
        assert_eq!(
            remap(&[], Some(AMS), Some(150.0), 80.0, false),
            (Action::Stay, Reason::NoBetter)
        );
        // The remap API without a current POP: any better POP.
        assert_eq!(
            remap(&best, None, Some(150.0), 80.0, false),
            (Action::Redirect(IAD), Reason::Slow)
        );
        // At the threshold: slow.
        assert_eq!(remap(&best, Some(AMS), Some(80.0), 80.0, false).1, Reason::Slow);
    }
}
