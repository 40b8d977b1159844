//! The one owner of routing state: every POP's view, fed by the session
//! tasks over a bounded channel, compiled into [`BgpData`] in batches.
//!
//! It runs on its own thread: applying a full table and compiling views
//! are CPU work that must not stall the control runtime's timers (health
//! probes, keepalives). A batch starts with the first change and is
//! published at most `batch_ms` later; while one is being compiled, changes
//! queue in the channel and the next batch takes them all.
//!
//! A peer's initial table stays out of the published views until it is
//! complete: until its End-of-RIB for every family it negotiated (RFC
//! 4724 §2), or `SYNC_QUIET` without an UPDATE from it (for peers that
//! send no marker), and at most `SYNC_MAX` after it came up. Half a table
//! would move answers for the prefixes not yet received, and compiling a
//! view over and over while a million routes arrive costs more than the
//! arrival itself. Other peers' changes are published meanwhile.

use super::board::BgpBoard;
use super::PeerCtl;
use petrel_bgp_wire::{ParsedUpdate, UpdateBatch};
use petrel_director::{Input, Publisher};
use petrel_mapping::BgpDataBuilder;
use petrel_rib::{AttrPool, PeerId, PeerInfo, View};
use petrel_types::{PopIdx, Prefix};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A peer's handle in the RIB: sessions and BMP-monitored peers alike.
pub type Slot = u32;

/// A slot no other peer has had.
pub fn new_slot() -> Slot {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

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
        /// IPv4 and IPv6 unicast as negotiated: each ends the initial sync
        /// with an End-of-RIB.
        families: [bool; 2],
    },
    /// The UPDATEs of one read, in order.
    Update(Slot, RibBatch),
    Down(Slot),
    /// Load an MRT dump (and its update files) into a view.
    LoadMrt(petrel_config::BgpMrtConf, String),
    /// Remove the routes of a dump loaded earlier (by its key).
    UnloadMrt(petrel_config::BgpMrtConf),
    /// The POP list changed (reload): view-to-POP indexes are rebuilt.
    Pops(Vec<String>),
    Route {
        client: Prefix,
        view: Option<String>,
        reply: oneshot::Sender<Vec<ViewRoutes>>,
    },
}

/// UPDATEs with the pool hash of each one's attributes, computed by the
/// task that parsed them (the RIB thread is the busier one while a table
/// loads). Goes back to that task once applied (`PeerCtl::Spent`).
pub struct RibBatch {
    pub updates: UpdateBatch,
    /// One per update; 0 for those that announce nothing.
    pub hashes: Vec<u64>,
}

impl RibBatch {
    /// `hashes`: a vector to fill (its contents are replaced).
    pub fn new(updates: UpdateBatch, mut hashes: Vec<u64>) -> RibBatch {
        hashes.clear();
        hashes.extend(updates.as_slice().iter().map(|u| {
            if u.announced.is_empty() {
                0
            } else {
                petrel_rib::attr_hash(&u.attrs)
            }
        }));
        RibBatch { updates, hashes }
    }
}

impl From<ParsedUpdate> for RibBatch {
    fn from(u: ParsedUpdate) -> Self {
        RibBatch::new(u.into(), Vec::new())
    }
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

/// No UPDATE for this long ends an initial sync without End-of-RIB.
const SYNC_QUIET: Duration = Duration::from_secs(3);
/// An initial sync is published after this long at the latest.
const SYNC_MAX: Duration = Duration::from_secs(60);
/// How often route counts reach the board while routes arrive.
const REPORT_EVERY: Duration = Duration::from_millis(10);

/// A peer whose initial table is still arriving.
struct InitialSync {
    started: Instant,
    last_update: Instant,
    /// Families whose End-of-RIB has not come yet.
    waiting: [bool; 2],
}

impl InitialSync {
    fn deadline(&self) -> Instant {
        (self.last_update + SYNC_QUIET).min(self.started + SYNC_MAX)
    }
}

struct PeerSlot {
    name: String,
    view: usize,
    id: PeerId,
    max_prefix: Option<u32>,
    ctl: mpsc::UnboundedSender<PeerCtl>,
    over_limit: bool,
    sync: Option<InitialSync>,
}

struct Ribs {
    views: Vec<View>,
    pool: AttrPool,
    slots: FxHashMap<Slot, PeerSlot>,
    pops: Vec<String>,
    publisher: Arc<Publisher>,
    board: Arc<BgpBoard>,
    batch: Duration,
    dirty_since: Option<Instant>,
    /// No publication before this (pacing, see `until_due`).
    not_before: Instant,
    /// Loaded dumps: their config -> (view, pseudo-peer ids, board names).
    mrt: FxHashMap<petrel_config::BgpMrtConf, Vec<(usize, PeerId, String)>>,
    last_report: Instant,
    /// Route counts changed since they last reached the board.
    unreported: bool,
}

pub fn spawn(
    publisher: Arc<Publisher>,
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
            publisher,
            board,
            batch: Duration::from_millis(batch_ms),
            dirty_since: None,
            not_before: Instant::now(),
            mrt: FxHashMap::default(),
            last_report: Instant::now(),
            unreported: false,
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
                    if !self.wake_due() {
                        continue;
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let msg = match self.next_wake() {
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
                    self.end_syncs();
                    if self.due() {
                        self.publish();
                    }
                    if self.unreported && self.last_report.elapsed() >= REPORT_EVERY {
                        self.report_prefixes();
                    }
                }
            }
        }
    }

    /// Time until something is due: the pending batch, or the end of an
    /// initial sync. `None`: nothing is pending.
    fn next_wake(&self) -> Option<Duration> {
        let now = Instant::now();
        let syncs = self
            .slots
            .values()
            .filter_map(|s| s.sync.as_ref())
            .map(|y| y.deadline().saturating_duration_since(now))
            .min();
        let batch = self.dirty_since.map(|_| self.until_due());
        let report = self
            .unreported
            .then(|| (self.last_report + REPORT_EVERY).saturating_duration_since(now));
        [syncs, batch, report].into_iter().flatten().min()
    }

    fn wake_due(&self) -> bool {
        self.next_wake().is_some_and(|d| d.is_zero())
    }

    /// End the initial syncs that are complete or timed out.
    fn end_syncs(&mut self) {
        let now = Instant::now();
        let done: Vec<Slot> = self
            .slots
            .iter()
            .filter(|(_, s)| s.sync.as_ref().is_some_and(|y| y.deadline() <= now))
            .map(|(k, _)| *k)
            .collect();
        for slot in done {
            self.end_sync(slot, "no End-of-RIB");
        }
    }

    fn end_sync(&mut self, slot: Slot, how: &str) {
        let Some(s) = self.slots.get_mut(&slot) else { return };
        let Some(y) = s.sync.take() else { return };
        self.views[s.view].set_loading(s.id, false);
        let routes = self.views[s.view].prefix_count(s.id);
        tracing::info!(peer = %s.name, routes, ms = y.started.elapsed().as_millis() as u64, how, "initial routes received");
        self.report_prefixes();
        self.touch_due();
    }

    /// Time left before the pending batch is published: `batch_ms` after
    /// its first change, and never sooner than the last compile took after
    /// it ended (so a constant trickle of updates cannot keep a core busy
    /// compiling, while messages keep flowing in meanwhile).
    fn until_due(&self) -> Duration {
        let Some(t) = self.dirty_since else {
            return Duration::MAX;
        };
        let batch = self.batch.saturating_sub(t.elapsed());
        let pace = self.not_before.saturating_duration_since(Instant::now());
        batch.max(pace)
    }

    fn due(&self) -> bool {
        self.dirty_since.is_some() && self.until_due().is_zero()
    }

    fn touch(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    /// A change that completes a whole table needs no batch window of its
    /// own: it is due now (pacing still applies).
    fn touch_due(&mut self) {
        let due = Instant::now().checked_sub(self.batch).unwrap_or_else(Instant::now);
        self.dirty_since = Some(self.dirty_since.map_or(due, |d| d.min(due)));
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
                        sync: None,
                    },
                );
            }
            RibMsg::RemovePeer(slot) => {
                if let Some(s) = self.slots.remove(&slot) {
                    if self.views[s.view].remove_peer(s.id, &mut self.pool) > 0 {
                        self.touch();
                    }
                    self.board.set_prefixes(&s.name, 0);
                }
            }
            RibMsg::Up { slot, info, families } => {
                if let Some(s) = self.slots.get_mut(&slot) {
                    s.over_limit = false;
                    self.views[s.view].set_peer(s.id, info);
                    self.views[s.view].set_loading(s.id, families[0] || families[1]);
                    let now = Instant::now();
                    s.sync = (families[0] || families[1]).then_some(InitialSync {
                        started: now,
                        last_update: now,
                        waiting: families,
                    });
                }
            }
            RibMsg::Update(slot, updates) => {
                let Some(s) = self.slots.get_mut(&slot) else { return };
                let view = &mut self.views[s.view];
                let mut changed = 0;
                for (u, hash) in updates.updates.as_slice().iter().zip(&updates.hashes) {
                    if s.over_limit {
                        break;
                    }
                    changed += view.apply_hashed(s.id, u, *hash, &mut self.pool);
                    if let (Some(y), Some(afi)) = (s.sync.as_mut(), u.end_of_rib) {
                        y.waiting[(afi == petrel_bgp_wire::Afi::Ipv6) as usize] = false;
                    }
                    if let Some(max) = s.max_prefix {
                        let n = view.prefix_count(s.id);
                        if n > max as usize {
                            // RFC 4486 §4: Cease/1 (its optional data is not sent).
                            s.over_limit = true;
                            s.sync = None;
                            view.set_loading(s.id, false);
                            let _ = s.ctl.send(PeerCtl::MaxPrefix(max));
                            tracing::warn!(peer = %s.name, prefixes = n, max, "maximum prefix count exceeded");
                            view.drop_peer_routes(s.id, &mut self.pool);
                            changed += 1;
                        }
                    }
                }
                // Back to the session task (see `PeerCtl::Spent`); BMP
                // peers take none and the batch is dropped here.
                let _ = s.ctl.send(PeerCtl::Spent(updates));
                match s.sync.as_mut() {
                    Some(y) if y.waiting == [false, false] => self.end_sync(slot, "End-of-RIB"),
                    // A syncing peer's routes wait for the end of its table.
                    Some(y) => y.last_update = Instant::now(),
                    None if changed > 0 => self.touch(),
                    None => {}
                }
                // Counts reach the board at most every REPORT_EVERY, and
                // the last change of a burst too (see `next_wake`).
                self.unreported = true;
                if self.last_report.elapsed() >= REPORT_EVERY {
                    self.report_prefixes();
                }
            }
            RibMsg::Down(slot) => {
                if let Some(s) = self.slots.get_mut(&slot) {
                    s.sync = None;
                    self.views[s.view].set_loading(s.id, false);
                    let gone = self.views[s.view].drop_peer_routes(s.id, &mut self.pool);
                    self.board.set_prefixes(&s.name, 0);
                    if gone > 0 {
                        self.touch();
                    }
                }
            }
            RibMsg::LoadMrt(src, pop) => {
                let t0 = Instant::now();
                let r = self.load_mrt(&src, &pop);
                // SAFETY: malloc_trim only releases free memory (the
                // reader's temporaries).
                unsafe {
                    libc::malloc_trim(0);
                }
                match r {
                    Ok(n) => {
                        tracing::info!(file = %src.file.display(), view = %pop, routes = n, ms = t0.elapsed().as_millis() as u64, "MRT dump loaded")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "MRT dump not (fully) loaded; routes read before the error are kept")
                    }
                }
                self.touch();
            }
            RibMsg::UnloadMrt(key) => {
                for (view, id, name) in self.mrt.remove(&key).unwrap_or_default() {
                    self.views[view].remove_peer(id, &mut self.pool);
                    self.board.remove(&name);
                }
                self.touch();
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

    /// Read a dump into `pop`'s view: each MRT peer becomes a peer of the
    /// view, so best-path selection runs across them as for live sessions.
    fn load_mrt(&mut self, src: &petrel_config::BgpMrtConf, pop: &str) -> Result<usize, String> {
        use petrel_bgp_wire::mrt::Record;
        let view = self.view_for(pop);
        let stem = src
            .file
            .file_name()
            .map_or_else(|| "mrt".to_string(), |f| f.to_string_lossy().into_owned());
        let mut by_addr: FxHashMap<IpAddr, PeerId> = FxHashMap::default();
        let mut index: Vec<Option<PeerId>> = Vec::new();
        let mut loaded = Vec::new();
        let mut routes = 0usize;
        let wanted = |a: &IpAddr| src.peers.is_empty() || src.peers.contains(a);
        let add = |r: &mut Ribs, addr: IpAddr, asn: u32, bgp_id: u32, loaded: &mut Vec<(usize, PeerId, String)>| {
            let name = format!("{stem}/{addr}");
            let id = r.views[view].add_peer(PeerInfo {
                name: name.clone(),
                asn,
                bgp_id,
                address: addr,
                ibgp: false,
            });
            r.views[view].set_loading(id, true);
            r.board.add(super::board::PeerStatus {
                name: name.clone(),
                view: pop.to_string(),
                address: addr.to_string(),
                remote_as: asn,
                state: "MRT".into(),
                since_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                ..Default::default()
            });
            loaded.push((view, id, name));
            id
        };
        let mut result = Ok(());
        let files = std::iter::once(&src.file).chain(src.updates.iter());
        'files: for path in files {
            let mut f = match super::mrt_file::MrtFile::open(path) {
                Ok(f) => f,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            loop {
                let rec = match f.next_record() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break 'files;
                    }
                };
                match rec {
                    Record::PeerIndex { peers, .. } => {
                        index = peers
                            .iter()
                            .map(|p| {
                                wanted(&p.address).then(|| {
                                    *by_addr
                                        .entry(p.address)
                                        .or_insert_with(|| add(self, p.address, p.asn, p.bgp_id, &mut loaded))
                                })
                            })
                            .collect();
                    }
                    Record::Rib { prefix, entries, .. } => {
                        for e in entries {
                            let (Some(Some(id)), Ok(a)) = (index.get(e.peer_index as usize), &e.attrs) else {
                                continue;
                            };
                            let a = self.pool.intern(a);
                            self.views[view].announce(*id, prefix, e.path_id, a, &mut self.pool);
                            routes += 1;
                        }
                    }
                    Record::TableDump {
                        prefix, peer, entry, ..
                    } => {
                        if !wanted(&peer.address) {
                            continue;
                        }
                        let id = *by_addr
                            .entry(peer.address)
                            .or_insert_with(|| add(self, peer.address, peer.asn, 0, &mut loaded));
                        if let Ok(a) = &entry.attrs {
                            let a = self.pool.intern(a);
                            self.views[view].announce(id, prefix, None, a, &mut self.pool);
                            routes += 1;
                        }
                    }
                    Record::Update {
                        peer, peer_as, update, ..
                    } => {
                        if !wanted(&peer) {
                            continue;
                        }
                        let id = *by_addr
                            .entry(peer)
                            .or_insert_with(|| add(self, peer, peer_as, 0, &mut loaded));
                        routes += self.views[view].apply(id, &update, &mut self.pool);
                    }
                    Record::StateChange { peer, new, .. } => {
                        // Leaving Established (6) ends the session: its routes go.
                        if new != 6 {
                            if let Some(&id) = by_addr.get(&peer) {
                                self.views[view].drop_peer_routes(id, &mut self.pool);
                            }
                        }
                    }
                    Record::Other { .. } => {}
                }
            }
        }
        for (v, id, _) in &loaded {
            self.views[*v].set_loading(*id, false);
        }
        self.mrt.insert(src.clone(), loaded);
        self.report_prefixes();
        result.map(|()| routes)
    }

    /// Every peer's and MRT pseudo-peer's route count, for the board.
    fn report_prefixes(&mut self) {
        self.last_report = Instant::now();
        self.unreported = false;
        let sessions = self.slots.values().map(|s| (s.view, s.id, &s.name));
        let dumps = self.mrt.values().flatten().map(|(v, id, n)| (*v, *id, n));
        for (v, id, name) in sessions.chain(dumps) {
            self.board.set_prefixes(name, self.views[v].prefix_count(id) as u64);
        }
    }

    fn route(&self, client: &Prefix, only: Option<&str>) -> Vec<ViewRoutes> {
        let mut out = Vec::new();
        for v in &self.views {
            if only.is_some_and(|o| o != v.name) {
                continue;
            }
            let m = v.longest_match(client, &self.pool);
            let mut routes = Vec::new();
            if let Some((p, best)) = &m {
                for r in v.routes(p) {
                    routes.push(route_line(v, &r, r == *best, &self.pool));
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
        // Attribute sets are interned, so their id names the path.
        let mut ids: Vec<u32> = Vec::new();
        let mut total = 0;
        for v in &mut self.views {
            v.compact();
        }
        for (vi, v) in self.views.iter().enumerate() {
            let Some(pop) = self.pops.iter().position(|p| *p == v.name) else {
                continue;
            };
            let syncing: Vec<PeerId> = self
                .slots
                .values()
                .filter(|s| s.view == vi && s.sync.is_some())
                .map(|s| s.id)
                .collect();
            let mut vb = b.view_builder(v.name.clone(), PopIdx(pop as u16));
            let pool = &self.pool;
            v.for_each_best(pool, &syncing, |prefix, r| {
                let k = r.attrs as usize;
                if ids.len() <= k {
                    ids.resize(k + 1, u32::MAX);
                }
                if ids[k] == u32::MAX {
                    let a = pool.get(r.attrs);
                    ids[k] = vb.path_id(a.asns(), a.as_path_len() as u32);
                }
                vb.push(prefix, ids[k]);
                total += 1;
            });
            vb.finish();
        }
        self.report_prefixes();
        let data = Arc::new(b.build());
        let built = started.elapsed();
        let rib_bytes: usize = self.views.iter().map(|v| v.heap_bytes()).sum();
        let facts_bytes = data.heap_bytes();
        let id = self.publisher.set_input(Input::Bgp(data));
        // Compiling freed large temporaries; hand the pages back rather
        // than keep a full table's worth of slack per batch.
        // SAFETY: malloc_trim only releases free memory.
        unsafe {
            libc::malloc_trim(0);
        }
        self.board
            .record_publish(since.elapsed(), started.elapsed(), total as u64);
        tracing::info!(
            generation = id,
            views = self.views.len(),
            routes = total,
            attr_sets = self.pool.len(),
            rib_mib = rib_bytes >> 20,
            pool_mib = self.pool.heap_bytes() >> 20,
            facts_mib = facts_bytes >> 20,
            build_ms = built.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "routing views published"
        );
        self.not_before = Instant::now() + started.elapsed();
    }
}

fn route_line(v: &View, r: &petrel_rib::Route, best: bool, pool: &AttrPool) -> RouteLine {
    let a = pool.get(r.attrs).to_attributes();
    let next_hop = a
        .mp_next_hop
        .map(|h| h.to_string())
        .or_else(|| a.next_hop.map(|h| IpAddr::V4(h).to_string()))
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
