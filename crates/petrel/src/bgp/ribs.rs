//! The one owner of routing state: every POP's view, fed by the session
//! tasks over a bounded channel, compiled into [`BgpData`] in batches.
//!
//! It runs on its own thread: applying a full table and compiling views
//! are CPU work that must not stall the control runtime's timers (health
//! probes, keepalives). A batch starts with the first change and is
//! published at most `batch_ms` later; while one is being compiled, changes
//! queue in the channel and the next batch takes them all.

use super::board::BgpBoard;
use super::PeerCtl;
use crate::shared::Shared;
use petrel_bgp_wire::{Attributes, ParsedUpdate};
use petrel_mapping::BgpDataBuilder;
use petrel_rib::{AttrPool, PeerId, PeerInfo, View};
use petrel_types::{PopIdx, Prefix};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A peer's handle in the RIB, assigned by the manager.
pub type Slot = u32;

pub enum RibMsg {
    /// A configured peer: its routes go to the view of `pop`.
    AddPeer {
        slot: Slot,
        name: String,
        pop: String,
        info: PeerInfo,
        max_prefix: Option<u32>,
        ctl: mpsc::UnboundedSender<PeerCtl>,
    },
    RemovePeer(Slot),
    Up {
        slot: Slot,
        info: PeerInfo,
    },
    Update(Slot, Box<ParsedUpdate>),
    Down(Slot),
    /// The POP list changed (reload): view-to-POP indexes are rebuilt.
    Pops(Vec<String>),
    Route {
        client: Prefix,
        view: Option<String>,
        reply: oneshot::Sender<Vec<ViewRoutes>>,
    },
}

/// One view's answer to `bgp route`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ViewRoutes {
    pub view: String,
    /// The most specific prefix covering the address, if any.
    pub prefix: Option<String>,
    pub routes: Vec<RouteLine>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RouteLine {
    pub best: bool,
    pub peer: String,
    pub as_path: String,
    pub next_hop: String,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub origin: String,
    pub communities: Vec<String>,
    pub path_id: Option<u32>,
}

struct PeerSlot {
    name: String,
    view: usize,
    id: PeerId,
    max_prefix: Option<u32>,
    ctl: mpsc::UnboundedSender<PeerCtl>,
    over_limit: bool,
}

struct Ribs {
    views: Vec<View>,
    pool: AttrPool,
    slots: FxHashMap<Slot, PeerSlot>,
    pops: Vec<String>,
    shared: Arc<Shared>,
    board: Arc<BgpBoard>,
    batch: Duration,
    dirty_since: Option<Instant>,
}

pub fn spawn(
    shared: Arc<Shared>,
    board: Arc<BgpBoard>,
    pops: Vec<String>,
    batch_ms: u64,
    rx: mpsc::Receiver<RibMsg>,
    rt: tokio::runtime::Handle,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("bgp-rib".into()).spawn(move || {
        let mut r = Ribs {
            views: Vec::new(),
            pool: AttrPool::default(),
            slots: FxHashMap::default(),
            pops,
            shared,
            board,
            batch: Duration::from_millis(batch_ms),
            dirty_since: None,
        };
        r.run(rx, rt)
    })
}

impl Ribs {
    fn run(&mut self, mut rx: mpsc::Receiver<RibMsg>, rt: tokio::runtime::Handle) {
        loop {
            let msg = match self.dirty_since {
                None => match rx.blocking_recv() {
                    Some(m) => Some(m),
                    None => return,
                },
                Some(t) => {
                    let left = self.batch.saturating_sub(t.elapsed());
                    if left.is_zero() {
                        None
                    } else {
                        match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                            Ok(Some(m)) => Some(m),
                            Ok(None) => return,
                            Err(_) => None,
                        }
                    }
                }
            };
            match msg {
                Some(m) => self.handle(m),
                None => self.publish(),
            }
        }
    }

    fn touch(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    fn view_for(&mut self, pop: &str) -> usize {
        match self.views.iter().position(|v| v.name == pop) {
            Some(i) => i,
            None => {
                self.views.push(View::new(pop));
                self.views.len() - 1
            }
        }
    }

    fn handle(&mut self, m: RibMsg) {
        match m {
            RibMsg::AddPeer {
                slot,
                name,
                pop,
                info,
                max_prefix,
                ctl,
            } => {
                let view = self.view_for(&pop);
                let id = self.views[view].add_peer(info);
                self.slots.insert(
                    slot,
                    PeerSlot {
                        name,
                        view,
                        id,
                        max_prefix,
                        ctl,
                        over_limit: false,
                    },
                );
            }
            RibMsg::RemovePeer(slot) => {
                if let Some(s) = self.slots.remove(&slot) {
                    if self.views[s.view].remove_peer(s.id) > 0 {
                        self.touch();
                    }
                    self.board.set_prefixes(&s.name, 0);
                }
            }
            RibMsg::Up { slot, info } => {
                if let Some(s) = self.slots.get_mut(&slot) {
                    s.over_limit = false;
                    self.views[s.view].set_peer(s.id, info);
                }
            }
            RibMsg::Update(slot, u) => {
                let Some(s) = self.slots.get_mut(&slot) else { return };
                if s.over_limit {
                    return;
                }
                let view = &mut self.views[s.view];
                if view.apply(s.id, &u, &mut self.pool) > 0 {
                    let n = view.prefix_count(s.id);
                    if let Some(max) = s.max_prefix {
                        if n > max as usize {
                            // RFC 4486 §4: Cease/1 with AFI, SAFI and the limit.
                            s.over_limit = true;
                            let _ = s.ctl.send(PeerCtl::MaxPrefix(max));
                            tracing::warn!(peer = %s.name, prefixes = n, max, "maximum prefix count exceeded");
                            view.drop_peer_routes(s.id);
                        }
                    }
                    self.dirty_since.get_or_insert_with(Instant::now);
                }
            }
            RibMsg::Down(slot) => {
                if let Some(s) = self.slots.get(&slot) {
                    let gone = self.views[s.view].drop_peer_routes(s.id);
                    self.board.set_prefixes(&s.name, 0);
                    if gone > 0 {
                        self.touch();
                    }
                }
            }
            RibMsg::Pops(p) => {
                self.pops = p;
                self.touch();
            }
            RibMsg::Route { client, view, reply } => {
                let _ = reply.send(self.route(&client, view.as_deref()));
            }
        }
    }

    fn route(&self, client: &Prefix, only: Option<&str>) -> Vec<ViewRoutes> {
        let mut out = Vec::new();
        for v in &self.views {
            if only.is_some_and(|o| o != v.name) {
                continue;
            }
            let m = v.longest_match(client);
            let mut routes = Vec::new();
            if let Some((p, best)) = &m {
                for r in v.routes(p) {
                    routes.push(route_line(v, r, std::ptr::eq(r, *best)));
                }
                routes.sort_by_key(|r| !r.best);
            }
            out.push(ViewRoutes {
                view: v.name.clone(),
                prefix: m.map(|(p, _)| p.to_string()),
                routes,
            });
        }
        out
    }

    /// Compile every view and publish the tables that use them.
    fn publish(&mut self) {
        let Some(since) = self.dirty_since.take() else { return };
        let started = Instant::now();
        let mut b = BgpDataBuilder::new();
        // Attribute sets are interned, so the pointer names the path.
        let mut ids: FxHashMap<*const Attributes, u32> = FxHashMap::default();
        let mut total = 0;
        for v in &self.views {
            let Some(pop) = self.pops.iter().position(|p| *p == v.name) else {
                continue;
            };
            let mut routes = Vec::with_capacity(v.len());
            for (prefix, r) in v.iter_best() {
                let key = Arc::as_ptr(&r.attrs);
                let id = match ids.get(&key) {
                    Some(&id) => id,
                    None => {
                        let id = b.path_id(r.attrs.asns(), r.attrs.as_path_len() as u32);
                        ids.insert(key, id);
                        id
                    }
                };
                routes.push((*prefix, id));
            }
            total += routes.len();
            b.add_view(v.name.clone(), PopIdx(pop as u16), routes);
        }
        self.pool.collect();
        for s in self.slots.values() {
            self.board
                .set_prefixes(&s.name, self.views[s.view].prefix_count(s.id) as u64);
        }
        let data = Arc::new(b.build());
        let built = started.elapsed();
        let id = self.shared.set_bgp(data);
        self.board
            .record_publish(since.elapsed(), started.elapsed(), total as u64);
        tracing::info!(
            generation = id,
            views = self.views.len(),
            routes = total,
            attr_sets = self.pool.len(),
            build_ms = built.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "routing views published"
        );
        // Never spend more than half the time compiling: under a constant
        // trickle of updates the next batch waits at least as long.
        let spent = started.elapsed();
        if spent > self.batch {
            std::thread::sleep(spent - self.batch);
        }
    }
}

fn route_line(v: &View, r: &petrel_rib::Route, best: bool) -> RouteLine {
    let a = &r.attrs;
    let mut path = String::new();
    for seg in &a.as_path {
        if !path.is_empty() {
            path.push(' ');
        }
        match seg {
            petrel_bgp_wire::AsPathSegment::Sequence(x) => {
                path.push_str(&x.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "))
            }
            petrel_bgp_wire::AsPathSegment::Set(x) => {
                path.push('{');
                path.push_str(&x.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(","));
                path.push('}');
            }
        }
    }
    let next_hop = a
        .mp_next_hop
        .map(|h| h.to_string())
        .or_else(|| a.next_hop.map(|h| IpAddr::V4(h).to_string()))
        .unwrap_or_default();
    let mut communities: Vec<String> = a
        .communities
        .iter()
        .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
        .collect();
    communities.extend(a.large_communities.iter().map(|[g, l1, l2]| format!("{g}:{l1}:{l2}")));
    RouteLine {
        best,
        peer: v.peer(r.peer).map_or_else(|| "?".into(), |p| p.name.clone()),
        as_path: path,
        next_hop,
        local_pref: a.local_pref,
        med: a.med,
        origin: match a.origin {
            Some(petrel_bgp_wire::Origin::Igp) => "IGP",
            Some(petrel_bgp_wire::Origin::Egp) => "EGP",
            Some(petrel_bgp_wire::Origin::Incomplete) => "incomplete",
            None => "?",
        }
        .into(),
        communities,
        path_id: r.path_id,
    }
}
