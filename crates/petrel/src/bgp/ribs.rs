//! The RIB thread: the IO shell around [`petrel_rib::owner::Owner`], which
//! holds every POP's view and the rules of when they are published. The
//! thread moves messages from the session tasks, BMP stations, MRT readers
//! and the manager into the owner, reads the clock, and carries
//! out what the owner says: a Cease to a peer over its limit, route counts
//! to the board, a publication to the decision core.
//!
//! It runs on its own thread: applying a full table and compiling views
//! are CPU work that must not stall the control runtime's timers (health
//! probes, keepalives). While a batch is compiled, changes queue in the
//! channel and the next batch takes them all.

use super::board::BgpBoard;
use super::feed::{Exceeded, PeerCtl, RibMsg, RouteLine, Slot, ViewRoutes};
use petrel_director::{Input, Publisher};
use petrel_rib::owner::{Event, Owner, Timing, WarmEnd};
use petrel_rib::{AttrPool, View};
use petrel_types::Prefix;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Ribs {
    owner: Owner,
    /// Each feed's control channel (its batches go back through it).
    ctl: FxHashMap<Slot, mpsc::UnboundedSender<PeerCtl>>,
    publisher: Arc<Publisher>,
    board: Arc<BgpBoard>,
    events: Vec<Event>,
}

pub fn spawn(
    publisher: Arc<Publisher>,
    board: Arc<BgpBoard>,
    pops: Vec<String>,
    (batch_ms, warmup): (u64, Option<(Duration, Vec<String>)>),
    rx: mpsc::Receiver<RibMsg>,
    rt: tokio::runtime::Handle,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("bgp-rib".into()).spawn(move || {
        let timing = Timing {
            batch: Duration::from_millis(batch_ms),
            ..Timing::default()
        };
        let mut owner = Owner::new(pops, timing);
        if let Some((bound, expected)) = warmup {
            let now = Instant::now();
            board.set_warming(expected.clone());
            tracing::info!(
                feeds = expected.len(),
                bound_secs = bound.as_secs(),
                "waiting for the routing views before answering BGP services from them"
            );
            owner.warm_up(now, now + bound, expected);
        }
        let mut r = Ribs {
            owner,
            ctl: FxHashMap::default(),
            publisher,
            board,
            events: Vec::new(),
        };
        r.run(rx, rt)
    })
}

impl Ribs {
    fn run(&mut self, mut rx: mpsc::Receiver<RibMsg>, rt: tokio::runtime::Handle) {
        loop {
            // Take whatever is queued without a timer: under a full-table
            // feed that is most messages.
            match rx.try_recv() {
                Ok(m) => {
                    self.handle(m);
                    if self.owner.next_wake(Instant::now()) != Some(Duration::ZERO) {
                        continue;
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let msg = match self.owner.next_wake(Instant::now()) {
                None => match rx.blocking_recv() {
                    Some(m) => Some(m),
                    None => return,
                },
                Some(left) if left.is_zero() => None,
                Some(left) => match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                    Ok(Some(m)) => Some(m),
                    Ok(None) => return,
                    Err(_) => None,
                },
            };
            match msg {
                Some(m) => self.handle(m),
                None => {
                    let due = self.owner.tick(Instant::now(), &mut self.events);
                    self.carry_out();
                    if due.publish {
                        self.publish();
                    }
                    if due.report || self.owner.report_due(Instant::now()) {
                        self.report();
                    }
                }
            }
        }
    }

    /// Do what the owner asked, and log what it reported.
    fn carry_out(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        for e in events.drain(..) {
            match e {
                Event::OverLimit { slot, name, exceeded } => {
                    if let Some(c) = self.ctl.get(&slot) {
                        let _ = c.send(PeerCtl::OverLimit(exceeded));
                    }
                    match exceeded {
                        Exceeded::Routes { routes, max } => {
                            tracing::warn!(peer = %name, routes, max, "route limit exceeded; the peer's routes are dropped")
                        }
                        Exceeded::AttrBytes { bytes, max } => {
                            tracing::warn!(peer = %name, bytes, max, "attribute memory limit (bgp.max_attr_mb) exceeded; the peer's routes are dropped")
                        }
                    }
                }
                Event::SyncEnded {
                    name,
                    routes,
                    took,
                    end_of_rib,
                } => {
                    let how = if end_of_rib { "End-of-RIB" } else { "no End-of-RIB" };
                    tracing::info!(peer = %name, routes, ms = took.as_millis() as u64, how, "initial routes received");
                }
                Event::Warming { waiting } => self.board.set_warming(waiting),
                Event::Warm { took, end } => {
                    // Views first, then the end of the warm-up: services
                    // never answer from an empty table in between.
                    self.publish();
                    self.board.set_warming(Vec::new());
                    self.publisher.warmed();
                    let ms = took.as_millis() as u64;
                    match end {
                        WarmEnd::Complete => tracing::info!(ms, "routing views in: BGP services answer from them"),
                        WarmEnd::TimedOut { missing } => tracing::warn!(
                            ms,
                            missing = %missing.join(", "),
                            "bgp.warmup_secs passed before these feeds' initial routes were in; answering from the views there are"
                        ),
                    }
                }
            }
        }
        self.events = events;
    }

    fn handle(&mut self, m: RibMsg) {
        let now = Instant::now();
        match m {
            RibMsg::AddPeer {
                slot,
                name,
                pop,
                info,
                limits,
                ctl,
            } => {
                self.owner.add_peer(slot, name, &pop, info, limits);
                self.ctl.insert(slot, ctl);
            }
            RibMsg::RemovePeer(slot) => {
                self.ctl.remove(&slot);
                if let Some(name) = self.owner.remove_peer(slot, now) {
                    self.board.set_prefixes(&name, 0);
                }
            }
            RibMsg::Up { slot, info, families } => self.owner.peer_up(slot, info, families, now),
            RibMsg::Update(slot, batch) => {
                self.owner
                    .update(slot, batch.updates.as_slice(), &batch.hashes, now, &mut self.events);
                // Back to the session task (see `PeerCtl::Spent`); BMP
                // peers take none and the batch is dropped here.
                if let Some(c) = self.ctl.get(&slot) {
                    let _ = c.send(PeerCtl::Spent(batch));
                }
                self.carry_out();
                if self.owner.report_due(now) {
                    self.report();
                }
            }
            RibMsg::Down(slot) => {
                if let Some(name) = self.owner.peer_down(slot, now) {
                    self.board.set_prefixes(name, 0);
                }
            }
            RibMsg::Pops(p) => self.owner.set_pops(p, now),
            RibMsg::IndexPrefixes(on) => self.owner.set_index_prefixes(on, now),
            RibMsg::PublishNow(done) => {
                self.publish();
                let _ = done.send(());
            }
            RibMsg::Route { client, view, reply } => {
                let _ = reply.send(self.route(&client, view.as_deref()));
            }
        }
    }

    /// Every feed's route count, for the board.
    fn report(&mut self) {
        for c in self.owner.counts(Instant::now()) {
            self.board.update(&c.name, |p| {
                p.prefixes = c.routes;
                p.attr_bytes = c.attr_bytes;
                p.paths_refused = c.refused_paths;
            });
        }
    }

    fn route(&self, client: &Prefix, only: Option<&str>) -> Vec<ViewRoutes> {
        let pool = self.owner.pool();
        self.owner
            .routes_at(client, only)
            .into_iter()
            .map(|(v, prefix, routes)| ViewRoutes {
                view: v.name.clone(),
                prefix: prefix.map(|p| p.to_string()),
                routes: routes.iter().map(|(r, best)| route_line(v, r, *best, pool)).collect(),
            })
            .collect()
    }

    /// Compile every view and publish the tables that use them.
    fn publish(&mut self) {
        let started = Instant::now();
        let Some(p) = self.owner.publish() else { return };
        let built = started.elapsed();
        let views = self.owner.views();
        let rib_bytes: usize = views.iter().map(|v| v.heap_bytes()).sum();
        let facts_bytes = p.data.heap_bytes();
        let id = self.publisher.set_input(Input::Bgp(Arc::new(p.data)));
        // Compiling freed large temporaries; hand the pages back rather
        // than keep a full table's worth of slack per batch.
        crate::memory::give_back();
        self.board
            .record_publish(p.since.elapsed(), started.elapsed(), p.routes as u64);
        tracing::info!(
            generation = id,
            views = self.owner.views().len(),
            routes = p.routes,
            attr_sets = self.owner.pool().len(),
            rib_mib = rib_bytes >> 20,
            pool_mib = self.owner.pool().heap_bytes() >> 20,
            facts_mib = facts_bytes >> 20,
            build_ms = built.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "routing views published"
        );
        self.owner.published(started, Instant::now());
        self.report();
    }
}

fn route_line(v: &View, r: &petrel_rib::Route, best: bool, pool: &AttrPool) -> RouteLine {
    let a = pool.get(r.attrs).to_attributes();
    let next_hop = a
        .mp_next_hop
        .map(|h| h.to_string())
        .or_else(|| a.next_hop.map(|h| std::net::IpAddr::V4(h).to_string()))
        .unwrap_or_default();
    RouteLine {
        best,
        peer: v.peer(r.peer).map_or_else(|| "?".into(), |p| p.name.clone()),
        as_path: a.as_path_text(),
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
        communities: a.community_texts(),
        path_id: r.path_id,
    }
}
