//! The one `ArcSwap` every reader loads, and the one writer lock that orders
//! every change to it.
//!
//! Writers compile before they take the lock (a reload's tables, a BGP
//! batch's services), then, under it, check that what they built on is
//! still what serves and swap in one step. So a health flip or a drain is
//! never queued behind a compile: under the lock only states are derived
//! and a pointer is stored.

use crate::build::Built;
use crate::error::DirectorError;
use crate::generation::Generation;
use crate::state::{OverrideAction, Overrides, StateInputs};
use arc_swap::{ArcSwap, Guard};
use petrel_mapping::BgpData;
use petrel_types::{PopIdx, PopState};
use std::sync::{Arc, Mutex, MutexGuard};

/// Knowledge that changes the tables (not just POP states).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Input {
    /// New routing views from the RIB.
    Bgp(Arc<BgpData>),
    /// New measured latency from the measurement loop.
    Latency(Arc<petrel_mapping::LatencyData>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A new config: anything may have changed, the POP list included.
    Reload,
    /// An operator drained, undrained, forced or cleared a POP or target.
    Overrides,
    /// Health checks changed a POP's state.
    Health,
    /// An [`Input`] recompiled the tables; states are unchanged.
    Input,
}

/// What a publication changed, as subscribers hear it.
#[derive(Clone, Debug)]
pub struct Change {
    pub id: u64,
    pub kind: ChangeKind,
    /// POPs whose state differs from the previous generation (empty for a
    /// reload, which may renumber POPs: compare by name then).
    pub pops: Vec<PopIdx>,
}

type Subscriber = Box<dyn Fn(&Arc<Generation>, &Change) + Send + Sync>;

struct Writer {
    inputs: StateInputs,
    next_id: u64,
    subscribers: Vec<Subscriber>,
}

pub struct Publisher {
    current: ArcSwap<Generation>,
    /// The overrides in force, readable without the writer lock.
    overrides: ArcSwap<Overrides>,
    writer: Mutex<Writer>,
}

fn same_bgp(a: &Option<Arc<BgpData>>, b: &Option<Arc<BgpData>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// Read access to the serving generation, for components that only answer
/// (the DNS workers, explain, the API's views).
#[derive(Clone)]
pub struct Reader(Arc<Publisher>);

impl Reader {
    #[inline]
    pub fn load(&self) -> Guard<Arc<Generation>> {
        self.0.current.load()
    }
}

impl Publisher {
    pub fn reader(self: &Arc<Self>) -> Reader {
        Reader(self.clone())
    }

    /// Start serving `built` with the overrides a state file recorded.
    pub fn new(built: Built, overrides: Overrides) -> Publisher {
        let inputs = StateInputs {
            overrides: overrides.clone(),
            health: Default::default(),
        };
        let warming = built.config.bgp.as_ref().is_some_and(|b| b.has_feeds());
        let g = Generation {
            warming,
            ..Generation::new(1, Arc::new(built), &inputs)
        };
        Publisher {
            current: ArcSwap::from_pointee(g),
            overrides: ArcSwap::from_pointee(overrides),
            writer: Mutex::new(Writer {
                inputs,
                next_id: 2,
                subscribers: Vec::new(),
            }),
        }
    }

    /// The serving generation, for one request or one batch of them.
    #[inline]
    pub fn load(&self) -> Guard<Arc<Generation>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A subscriber that panicked leaves consistent state behind: every
        // write stores a whole generation before subscribers run.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hear of every publication, in order, right after it is stored.
    /// Called under the writer lock: keep it short (hand the generation to
    /// a channel) and never call back into the publisher.
    pub fn subscribe(&self, f: impl Fn(&Arc<Generation>, &Change) + Send + Sync + 'static) {
        self.lock().subscribers.push(Box::new(f));
    }

    /// What an operator forced on a POP or target, if anything.
    pub fn forced(&self, name: &str) -> Option<bool> {
        self.overrides.load().forced(name)
    }

    /// The overrides in force.
    pub fn overrides(&self) -> Arc<Overrides> {
        self.overrides.load_full()
    }

    fn store(&self, w: &mut Writer, g: Generation, kind: ChangeKind, prev: &Generation) -> u64 {
        let pops = if kind == ChangeKind::Reload {
            Vec::new()
        } else {
            (0..g.states.len())
                .filter(|&i| prev.states.get(i) != g.states.get(i))
                .map(|i| PopIdx(i as u16))
                .collect()
        };
        let g = Arc::new(g);
        self.current.store(g.clone());
        let change = Change { id: g.id, kind, pops };
        for s in &w.subscribers {
            s(&g, &change);
        }
        g.id
    }

    fn next_id(w: &mut Writer) -> u64 {
        let id = w.next_id;
        w.next_id += 1;
        id
    }

    /// Serve a new config, built by the caller outside any lock. Routing
    /// views published while it was built are compiled into it (outside
    /// the lock too) before it is stored; POP states carry over.
    pub fn reload(&self, mut built: Built) -> u64 {
        loop {
            let want = {
                let mut w = self.lock();
                let cur = self.current.load_full();
                // Views carry POP indexes: they stay only while the POP list
                // is the same; otherwise the RIB republishes them.
                let want = cur.built.bgp.clone().filter(|b| built.fits(b));
                // Measured latency too, while the POP list is the same;
                // otherwise the measurement loop republishes it.
                let latency = cur.built.latency.clone().filter(|_| built.latency_fits(&cur.built));
                let latency_ok = match (&built.latency, &latency) {
                    (None, None) => true,
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                };
                if same_bgp(&built.bgp, &want) && latency_ok {
                    let id = Self::next_id(&mut w);
                    let g = Generation {
                        warming: cur.warming,
                        ..Generation::new(id, Arc::new(built), &w.inputs)
                    };
                    return self.store(&mut w, g, ChangeKind::Reload, &cur);
                }
                (want, latency)
            };
            let (want, latency) = want;
            if !same_bgp(&built.bgp, &want) {
                built = built.with_bgp(want);
            }
            if latency.is_some() || built.latency.is_some() {
                built = built.with_latency(latency);
            }
        }
    }

    /// Apply an operator override to a POP (or, for the forces, a health
    /// check target): at once for new decisions. `persist` records the new
    /// overrides (a state file) before anything changes; if it fails,
    /// nothing does.
    pub fn set_override(
        &self,
        name: &str,
        action: OverrideAction,
        persist: impl FnOnce(&Overrides) -> Result<(), String>,
    ) -> Result<u64, DirectorError> {
        let mut w = self.lock();
        let g = self.current.load_full();
        let is_pop = g.config().pops.iter().any(|p| p.name == name);
        let is_target = g.config().pops.iter().flat_map(|p| &p.checks).any(|c| c.name == name);
        if action.pops_only() && !is_pop {
            return Err(DirectorError::UnknownPop(name.to_string()));
        }
        if !is_pop && !is_target {
            return Err(DirectorError::UnknownTarget(name.to_string()));
        }
        let next = w.inputs.overrides.with(name, action);
        persist(&next).map_err(DirectorError::StateFile)?;
        self.overrides.store(Arc::new(next.clone()));
        w.inputs.overrides = next;
        let id = Self::next_id(&mut w);
        let ng = g.with_states(id, &w.inputs);
        Ok(self.store(&mut w, ng, ChangeKind::Overrides, &g))
    }

    /// What the health checks say of a POP (by name): a new generation only
    /// when that changes anything. Cheap: tables are shared.
    pub fn set_pop_health(&self, pop: &str, state: PopState, why: &str) -> Option<u64> {
        let mut w = self.lock();
        if !w.inputs.set_health(pop, state, why) {
            return None;
        }
        let g = self.current.load_full();
        let id = Self::next_id(&mut w);
        let ng = g.with_states(id, &w.inputs);
        Some(self.store(&mut w, ng, ChangeKind::Health, &g))
    }

    /// The routing views are in (or the wait for them is over): the
    /// warm-up at start ends. A new generation only if it was warming.
    pub fn warmed(&self) -> Option<u64> {
        let mut w = self.lock();
        let g = self.current.load_full();
        if !g.warming {
            return None;
        }
        let id = Self::next_id(&mut w);
        let ng = Generation {
            warming: false,
            ..g.with_built(id, g.built.clone())
        };
        Some(self.store(&mut w, ng, ChangeKind::Input, &g))
    }

    /// New knowledge that changes the tables. They are compiled outside the
    /// writer lock, on the serving config; if a reload replaced that config
    /// meanwhile, they are compiled again on the new one. Views built for
    /// another POP list are dropped (the RIB sends fresh ones): None.
    pub fn set_input(&self, input: Input) -> Option<u64> {
        loop {
            let base = self.current.load_full();
            let built = match &input {
                Input::Bgp(data) => {
                    if !base.built.fits(data) {
                        return None;
                    }
                    Arc::new(base.built.with_bgp(Some(data.clone())))
                }
                Input::Latency(data) => Arc::new(base.built.with_latency(Some(data.clone()))),
            };
            let mut w = self.lock();
            let g = self.current.load_full();
            if !Arc::ptr_eq(&g.built.config, &base.built.config) {
                continue;
            }
            let id = Self::next_id(&mut w);
            // States come from the generation serving now, not from `base`.
            let ng = g.with_built(id, built);
            return Some(self.store(&mut w, ng, ChangeKind::Input, &g));
        }
    }
}
