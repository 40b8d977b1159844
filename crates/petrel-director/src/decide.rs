//! The answer of every channel.

use petrel_mapping::RankOut;
use petrel_types::PopIdx;

/// Which POPs serve a client, for how long, and for how large a block of
/// addresses the answer holds. Reused across requests: filling one never
/// allocates.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    pub rank: RankOut,
    /// How long the answer may be cached: the service's TTL, or its
    /// degraded TTL when a chosen POP is degraded.
    pub ttl: u32,
    /// No answer yet: the routing views are loading and the service says
    /// `warming = "servfail"`. DNS answers SERVFAIL, HTTP 503.
    pub withheld: bool,
}

impl Decision {
    /// The chosen POPs, best first.
    pub fn pops(&self) -> &[PopIdx] {
        self.rank.pops()
    }

    /// The prefix length the answer holds for (the ECS scope).
    pub fn scope(&self) -> u8 {
        self.rank.scope
    }

    /// No candidate was usable: the POPs are the service's fallback.
    pub fn fallback(&self) -> bool {
        self.rank.fallback
    }
}
