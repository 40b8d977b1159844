//! One immutable snapshot: what the config compiled into and the POP states
//! of the moment.

use crate::build::{Built, Service};
use crate::decide::Decision;
use crate::state::{pop_states, Overrides, PopStates, StateInputs};
use petrel_config::Config;
use petrel_dns_zone::ZoneSet;
use petrel_mapping::PopInfo;
use petrel_types::{Family, PopIdx, PopState, Prefix, ServiceIdx};
use std::sync::Arc;

pub struct Generation {
    pub id: u64,
    pub built: Arc<Built>,
    /// Per POP (by index): what it may be used for now.
    pub states: Arc<[PopState]>,
    /// Why each POP has its state, for explanations and the API.
    pub reasons: Arc<[String]>,
    /// `serve` is waiting at start for the routing views (`bgp.warmup_secs`):
    /// services with `warming = "servfail"` give no answer yet.
    pub warming: bool,
}

impl Generation {
    pub fn new(id: u64, built: Arc<Built>, inputs: &StateInputs) -> Generation {
        let PopStates { states, reasons } = pop_states(&built.config.pops, inputs);
        Generation {
            id,
            built,
            states,
            reasons,
            warming: false,
        }
    }

    /// What a server starting from these overrides would serve before its
    /// health checks report (for the CLI's offline commands).
    pub fn offline(built: Built, overrides: Overrides) -> Generation {
        let inputs = StateInputs {
            overrides,
            health: Default::default(),
        };
        Generation::new(0, Arc::new(built), &inputs)
    }

    /// The same compiled data with other POP states.
    pub(crate) fn with_states(&self, id: u64, inputs: &StateInputs) -> Generation {
        Generation {
            warming: self.warming,
            ..Generation::new(id, self.built.clone(), inputs)
        }
    }

    /// Other compiled data (same config), the same POP states.
    pub(crate) fn with_built(&self, id: u64, built: Arc<Built>) -> Generation {
        Generation {
            id,
            built,
            states: self.states.clone(),
            reasons: self.reasons.clone(),
            warming: self.warming,
        }
    }

    pub fn config(&self) -> &Config {
        &self.built.config
    }

    pub fn zones(&self) -> &ZoneSet {
        &self.built.zones
    }

    pub fn services(&self) -> &[Service] {
        &self.built.services
    }

    pub fn service(&self, s: ServiceIdx) -> &Service {
        &self.built.services[s.index()]
    }

    pub fn pops(&self) -> &[PopInfo] {
        &self.built.pops
    }

    pub fn pop(&self, p: PopIdx) -> &PopInfo {
        &self.built.pops[p.index()]
    }

    /// Which POPs serve `client` (an address, or the ECS prefix a resolver
    /// sent) for `service`. `family`: the address family the answer needs
    /// (None when any POP will do, e.g. a CNAME or a redirect to a name);
    /// `entropy` feeds `weighted = random`. One table lookup and a pass over
    /// the ranked candidates: no allocation, no lock.
    #[inline]
    pub fn decide(
        &self,
        service: ServiceIdx,
        client: &Prefix,
        family: Option<Family>,
        entropy: u64,
        out: &mut Decision,
    ) {
        let svc = &self.built.services[service.index()];
        out.withheld = self.withheld(service);
        if out.withheld {
            out.rank = Default::default();
            out.ttl = 0;
            return;
        }
        svc.mapping.rank(client, family, &self.states, entropy, &mut out.rank);
        out.ttl = self.ttl_for(svc, out.rank.pops());
    }

    /// The service gives no answer yet: the routing views are loading and
    /// it says `warming = "servfail"`.
    #[inline]
    pub fn withheld(&self, service: ServiceIdx) -> bool {
        self.warming
            && self.built.services[service.index()]
                .mapping
                .spec
                .withheld_while_warming()
    }

    /// The decision for one client address, as the HTTP channel and the
    /// remap API make it: the address itself is looked up (there is no
    /// scope: the answer is for this client alone), a POP of either family
    /// will do (the answer is a URL), and the entropy for weighted policies
    /// is stable per address, so that one client keeps its POP.
    #[inline]
    pub fn decide_address(&self, service: ServiceIdx, client: std::net::IpAddr, out: &mut Decision) {
        let client = client.to_canonical();
        self.decide(service, &Prefix::host(client), None, address_entropy(client), out);
    }

    /// The TTL of an answer that names `pops`: shorter when one is degraded,
    /// so that clients move soon if it gets worse.
    #[inline]
    pub fn ttl_for(&self, svc: &Service, pops: &[PopIdx]) -> u32 {
        if pops
            .iter()
            .any(|p| self.states.get(p.index()) == Some(&PopState::Degraded))
        {
            svc.ttl.min(svc.degraded_ttl)
        } else {
            svc.ttl
        }
    }
}

/// A hash of an address, spread over 64 bits.
fn address_entropy(client: std::net::IpAddr) -> u64 {
    let bits: u128 = match client {
        std::net::IpAddr::V4(a) => u32::from(a).into(),
        std::net::IpAddr::V6(a) => a.into(),
    };
    (bits as u64 ^ (bits >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
