//! Petrel's anycast announcer, without IO.
//!
//! From the POP states the decision core publishes (health, drains), the
//! operator's per-neighbour policy, route-flap damping and `now`, the
//! [`Announcer`] works out the routes each BGP neighbour should have, and
//! the changes that take the neighbour from what it was sent (its
//! Adj-RIB-Out) to that. The session shell only writes what it is given
//! and says when a session comes up or goes down.
//!
//! - A service's prefixes are announced while its POP is usable. When the
//!   POP goes down, each neighbour's `on_down` says what happens: the
//!   prefixes are withdrawn, or stay announced but de-preferred (prepends,
//!   MED, communities), as ExaBGP's healthcheck offers.
//! - A drain first adds GRACEFUL_SHUTDOWN (65535:0, RFC 8326) so receivers
//!   move traffic away before anything is withdrawn; after the grace period
//!   the prefixes are withdrawn or kept prepended.
//! - Health-driven changes of one prefix are at least `hold_down` apart,
//!   and damped (see [`damping`]). Operator drains are neither.
//! - Every prefix passes [`safety::Safety`] before anything is sent.

#![forbid(unsafe_code)]

pub mod damping;
pub mod safety;
pub mod wire;

use damping::{Damping, DampingParams};
use petrel_types::{PopIdx, PopState, Prefix};
use safety::{Refusal, Safety};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// RFC 8326's GRACEFUL_SHUTDOWN community, 65535:0.
pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;

/// What goes with a prefix to one neighbour. Our own AS is always the
/// origin; `prepend` adds it that many more times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub prepend: u8,
    pub med: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
    pub extended_communities: Vec<u64>,
    /// None: the session's own address.
    pub next_hop: Option<IpAddr>,
}

impl Attrs {
    fn with_community(&self, c: u32) -> Attrs {
        let mut a = self.clone();
        if !a.communities.contains(&c) {
            a.communities.push(c);
        }
        a
    }

    fn prepended(&self, n: u8) -> Attrs {
        Attrs {
            prepend: self.prepend.max(n),
            ..self.clone()
        }
    }
}

/// What a neighbour is sent while the POP is down (or the prefix damped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnDown {
    Withdraw,
    /// Stay announced with these attributes instead.
    Depref(Attrs),
}

/// What a drain ends in, after the grace period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterDrain {
    Withdraw,
    /// Keep the prefixes announced, prepended this many times (and still
    /// with GRACEFUL_SHUTDOWN).
    Prepend(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighbourPolicy {
    /// The `[[bgp.peer]]` name.
    pub neighbour: String,
    /// Only these of the service's prefixes; empty: all of them.
    pub prefixes: Vec<Prefix>,
    /// Sent while the POP is up.
    pub attrs: Attrs,
    pub on_down: OnDown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub pop: PopIdx,
    pub prefixes: Vec<Prefix>,
    pub neighbours: Vec<NeighbourPolicy>,
    /// How long GRACEFUL_SHUTDOWN is sent before the drain takes effect.
    pub drain_grace: Duration,
    pub after_drain: AfterDrain,
}

/// The default announces nothing (no services, nothing owned).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub services: Vec<Service>,
    pub safety: Safety,
    pub damping: DampingParams,
    /// Least time between two health-driven changes of one prefix.
    pub hold_down: Duration,
}

/// A change for one neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Announce(Prefix, Attrs),
    Withdraw(Prefix),
}

/// How a prefix stands towards one neighbour, for `petrel anycast`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    Announced,
    Depreferred,
    Draining { until: Instant },
    Drained,
    Withdrawn,
    Suppressed { until: Instant },
    Refused(Refusal),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatusRow {
    pub service: String,
    pub pop: PopIdx,
    pub prefix: Prefix,
    pub neighbour: String,
    pub standing: Standing,
    /// Since when the prefix has stood as it does (health or drain).
    pub since: Instant,
    pub why: String,
    /// What is (or would be) sent; None when withdrawn.
    pub attrs: Option<Attrs>,
    pub penalty: f64,
}

/// A service's state from its POP's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Serving,
    Draining {
        since: Instant,
    },
    /// A drain whose grace period is over before we knew of it: the POP
    /// was drained when petrel started (the drain survives restarts) or
    /// when the service was added by a reload. Nothing is sent with
    /// GRACEFUL_SHUTDOWN first; the neighbours never had it from us.
    Drained {
        since: Instant,
    },
}

/// A prefix's health-driven state: announced (up) or not, after hold-down
/// and damping.
#[derive(Clone, Copy, Debug)]
struct Track {
    up: bool,
    /// When it last changed; None before its first decision, which no
    /// hold-down delays.
    since: Option<Instant>,
    damping: Damping,
}

impl Track {
    fn new() -> Track {
        Track {
            up: false,
            since: None,
            damping: Damping::default(),
        }
    }

    /// The hold-down keeps it as it is until then.
    fn held_until(&self, hold_down: Duration) -> Option<Instant> {
        self.since.map(|s| s + hold_down)
    }
}

struct ServiceState {
    /// Whether an observation has set `mode` yet.
    observed: bool,
    mode: Mode,
    /// The POP is usable (health and forces; drains apart).
    healthy: bool,
    tracks: BTreeMap<Prefix, Track>,
}

pub struct Announcer {
    conf: Config,
    states: Vec<ServiceState>,
    /// What each neighbour was sent, by name; absent: its session is down.
    sent: BTreeMap<String, BTreeMap<Prefix, Attrs>>,
    /// Counters, for metrics.
    pub flips: u64,
    pub updates: u64,
}

impl Announcer {
    /// Start with every prefix withdrawn and every session down: nothing is
    /// announced before the first [`Announcer::observe`] with POP states.
    pub fn new(conf: Config) -> Announcer {
        let states = conf
            .services
            .iter()
            .map(|s| ServiceState {
                observed: false,
                mode: Mode::Serving,
                healthy: false,
                tracks: s.prefixes.iter().map(|p| (*p, Track::new())).collect(),
            })
            .collect();
        Announcer {
            conf,
            states,
            sent: BTreeMap::new(),
            flips: 0,
            updates: 0,
        }
    }

    /// Take new POP states (a generation the decision core published) and
    /// move time on: the prefixes follow, within hold-down and damping.
    pub fn observe(&mut self, pops: &[PopState], now: Instant) {
        for (s, st) in self.conf.services.iter().zip(&mut self.states) {
            let state = pops.get(s.pop.index()).copied().unwrap_or(PopState::Down);
            st.healthy = state.is_usable();
            match (state, st.mode) {
                (PopState::Drained, Mode::Serving) if !st.observed => st.mode = Mode::Drained { since: now },
                (PopState::Drained, Mode::Serving) => st.mode = Mode::Draining { since: now },
                (PopState::Drained, _) => {}
                (_, Mode::Draining { .. } | Mode::Drained { .. }) => st.mode = Mode::Serving,
                _ => {}
            }
            st.observed = true;
            // A drained POP is healthy as far as its prefixes' health goes:
            // the drain decides, and undrain finds them up.
            let want_up = st.healthy || state == PopState::Drained;
            for t in st.tracks.values_mut() {
                let suppressed = t.damping.suppressed(&self.conf.damping, now);
                let target = want_up && !suppressed;
                if target == t.up || t.held_until(self.conf.hold_down).is_some_and(|h| now < h) {
                    continue;
                }
                if t.up {
                    t.damping.flap(&self.conf.damping, now);
                }
                t.up = target;
                t.since = Some(now);
                self.flips += 1;
            }
        }
    }

    /// The earliest time at which [`Announcer::observe`] with the same POP
    /// states would change something: a hold-down ending, a damped prefix
    /// being released, a drain's grace ending.
    pub fn next_wake(&self, pops: &[PopState], now: Instant) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for (s, st) in self.conf.services.iter().zip(&self.states) {
            if let Mode::Draining { since } = st.mode {
                if since + s.drain_grace > now {
                    at(since + s.drain_grace);
                }
            }
            let state = pops.get(s.pop.index()).copied().unwrap_or(PopState::Down);
            let want_up = state.is_usable() || state == PopState::Drained;
            for t in st.tracks.values() {
                if let Some(r) = t.damping.reuse_at(&self.conf.damping, now) {
                    at(r);
                }
                if let Some(h) = t
                    .held_until(self.conf.hold_down)
                    .filter(|&h| want_up != t.up && h > now)
                {
                    at(h);
                }
            }
        }
        wake
    }

    /// What `neighbour` should have now, by prefix.
    fn desired(&self, neighbour: &str, now: Instant) -> BTreeMap<Prefix, Attrs> {
        let mut out = BTreeMap::new();
        for (s, st) in self.conf.services.iter().zip(&self.states) {
            for n in s.neighbours.iter().filter(|n| n.neighbour == neighbour) {
                for p in selected(s, n) {
                    if let (_, Some(a)) = self.standing(s, st, n, p, now) {
                        out.insert(*p, a);
                    }
                }
            }
        }
        out
    }

    /// How `prefix` of `s` stands towards neighbour `n`, and what it is sent.
    fn standing(
        &self,
        s: &Service,
        st: &ServiceState,
        n: &NeighbourPolicy,
        p: &Prefix,
        now: Instant,
    ) -> (Standing, Option<Attrs>) {
        if let Err(r) = self.conf.safety.check(p) {
            return (Standing::Refused(r), None);
        }
        let Some(t) = st.tracks.get(p) else {
            return (Standing::Withdrawn, None);
        };
        let gshut = || n.attrs.with_community(GRACEFUL_SHUTDOWN);
        let drained = || match s.after_drain {
            AfterDrain::Withdraw => (Standing::Drained, None),
            AfterDrain::Prepend(k) => (Standing::Drained, Some(gshut().prepended(k))),
        };
        match st.mode {
            Mode::Draining { since } if now < since + s.drain_grace => {
                return (
                    Standing::Draining {
                        until: since + s.drain_grace,
                    },
                    Some(gshut()),
                );
            }
            Mode::Draining { .. } | Mode::Drained { .. } => return drained(),
            Mode::Serving => {}
        }
        if t.up {
            return (Standing::Announced, Some(n.attrs.clone()));
        }
        let mut d = t.damping;
        let suppressed = d.suppressed(&self.conf.damping, now);
        let attrs = match &n.on_down {
            OnDown::Withdraw => None,
            OnDown::Depref(a) => Some(a.clone()),
        };
        let standing = match (suppressed, &attrs) {
            (true, _) => Standing::Suppressed {
                until: d.reuse_at(&self.conf.damping, now).unwrap_or(now),
            },
            (false, Some(_)) => Standing::Depreferred,
            (false, None) => Standing::Withdrawn,
        };
        (standing, attrs)
    }

    /// A neighbour's session came up: everything it should have is sent
    /// (its Adj-RIB-Out starts empty).
    pub fn session_up(&mut self, neighbour: &str, now: Instant) -> Vec<Change> {
        self.sent.insert(neighbour.to_string(), BTreeMap::new());
        self.changes_for(neighbour, now)
    }

    /// A neighbour's session went down: it holds nothing of ours any more.
    pub fn session_down(&mut self, neighbour: &str) {
        self.sent.remove(neighbour);
    }

    /// The changes that take `neighbour` from what it was sent to what it
    /// should have; they count as sent.
    pub fn changes_for(&mut self, neighbour: &str, now: Instant) -> Vec<Change> {
        let desired = self.desired(neighbour, now);
        let Some(sent) = self.sent.get_mut(neighbour) else {
            return Vec::new(); // session down: nothing to send
        };
        let mut out = Vec::new();
        for (p, a) in &desired {
            if sent.get(p) != Some(a) {
                out.push(Change::Announce(*p, a.clone()));
            }
        }
        for p in sent.keys() {
            if !desired.contains_key(p) {
                out.push(Change::Withdraw(*p));
            }
        }
        *sent = desired;
        self.updates += out.len() as u64;
        out
    }

    /// A new config (a reload): prefixes that stay keep their state and
    /// damping history (by service name), sessions stay up, and the next
    /// [`Announcer::changes_for`] sends each neighbour only the difference.
    pub fn reconfigure(&mut self, conf: Config) {
        let mut old: BTreeMap<(String, Prefix), (Track, Mode, bool)> = BTreeMap::new();
        for (s, st) in self.conf.services.iter().zip(&self.states) {
            for (p, t) in &st.tracks {
                old.insert((s.name.clone(), *p), (*t, st.mode, st.healthy));
            }
        }
        let states = conf
            .services
            .iter()
            .map(|s| {
                let mut mode = Mode::Serving;
                let mut healthy = false;
                let mut observed = false;
                let tracks = s
                    .prefixes
                    .iter()
                    .map(|p| {
                        let t = match old.get(&(s.name.clone(), *p)) {
                            Some((t, m, h)) => {
                                mode = *m;
                                healthy = *h;
                                observed = true;
                                *t
                            }
                            None => Track::new(),
                        };
                        (*p, t)
                    })
                    .collect();
                ServiceState {
                    observed,
                    mode,
                    healthy,
                    tracks,
                }
            })
            .collect();
        self.conf = conf;
        self.states = states;
    }

    /// The neighbours whose sessions are up.
    pub fn neighbours_up(&self) -> Vec<String> {
        self.sent.keys().cloned().collect()
    }

    /// Every (service, prefix, neighbour) with how it stands.
    pub fn status(&self, now: Instant) -> Vec<StatusRow> {
        let mut rows = Vec::new();
        for (s, st) in self.conf.services.iter().zip(&self.states) {
            for n in &s.neighbours {
                for p in selected(s, n) {
                    let (standing, attrs) = self.standing(s, st, n, p, now);
                    let t = st.tracks.get(p);
                    let since = match st.mode {
                        Mode::Draining { since } | Mode::Drained { since } => since,
                        Mode::Serving => t.and_then(|t| t.since).unwrap_or(now),
                    };
                    let why = match &standing {
                        Standing::Announced => "the POP is usable".to_string(),
                        Standing::Depreferred | Standing::Withdrawn => "the POP is down".to_string(),
                        Standing::Draining { .. } => "drained: GRACEFUL_SHUTDOWN until the grace period ends".into(),
                        Standing::Drained => "drained".into(),
                        Standing::Suppressed { .. } => "flapping: damped (RFC 2439)".into(),
                        Standing::Refused(r) => r.to_string(),
                    };
                    rows.push(StatusRow {
                        service: s.name.clone(),
                        pop: s.pop,
                        prefix: *p,
                        neighbour: n.neighbour.clone(),
                        standing,
                        since,
                        why,
                        attrs,
                        penalty: t.map_or(0.0, |t| t.damping.penalty(&self.conf.damping, now)),
                    });
                }
            }
        }
        rows
    }
}

fn selected<'a>(s: &'a Service, n: &'a NeighbourPolicy) -> impl Iterator<Item = &'a Prefix> {
    s.prefixes
        .iter()
        .filter(move |p| n.prefixes.is_empty() || n.prefixes.contains(p))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // an arbitrary origin of time
mod tests;
