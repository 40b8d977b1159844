//! MRT dumps as route feeds. One reader thread reads the dumps, one after
//! the other (as the RIB would take them anyway; one thread keeps one
//! malloc arena), each file with its update files, and feeds the RIB
//! exactly as a session does: each MRT peer
//! becomes a slot (AddPeer, then Up with both families), its routes go in
//! batches parsed into storage the RIB sends back, and an End-of-RIB for
//! both families ends its initial table, so that the RIB publishes the dump
//! whole. The RIB thread reads no file.

use super::board::{BgpBoard, PeerStatus};
use super::feed::{new_slot, Limits, Recycler, RibMsg, Slot};
use super::mrt_file::MrtFile;
use petrel_bgp_wire::mrt::Record;
use petrel_bgp_wire::{Afi, Nlri, ParsedUpdate, UpdateBatch};
use petrel_config::BgpMrtConf;
use petrel_rib::PeerInfo;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// UPDATEs per batch (about what one read of a session holds): with the
/// RIB channel's bound, what a fast reader can have in flight stays small.
const BATCH: usize = 128;

/// A dump being read or read: what unloading it takes.
pub struct DumpHandle {
    cancelled: Arc<AtomicBool>,
    /// The dump's peers so far (slot, board name).
    peers: Arc<Mutex<Vec<(Slot, String)>>>,
}

impl DumpHandle {
    /// Stop reading and remove the dump's peers: their routes go.
    pub async fn unload(self, rib: &mpsc::Sender<RibMsg>, board: &BgpBoard) {
        let peers = {
            let mut p = self.peers.lock().expect("dump peers");
            self.cancelled.store(true, Ordering::Relaxed);
            std::mem::take(&mut *p)
        };
        for (slot, name) in peers {
            let _ = rib.send(RibMsg::RemovePeer(slot)).await;
            board.remove(&name);
        }
    }
}

/// The reader thread: dumps queue for it.
pub struct MrtReader {
    jobs: std::sync::mpsc::Sender<Loader>,
}

impl MrtReader {
    pub fn start() -> std::io::Result<MrtReader> {
        let (jobs, rx) = std::sync::mpsc::channel::<Loader>();
        std::thread::Builder::new().name("mrt-read".into()).spawn(move || {
            for mut l in rx {
                if !l.cancelled.load(Ordering::Relaxed) {
                    l.run();
                }
            }
        })?;
        Ok(MrtReader { jobs })
    }

    /// Queue `src` to be read into `pop`'s view.
    pub fn load(
        &self,
        src: BgpMrtConf,
        pop: String,
        limits: Limits,
        rib: mpsc::Sender<RibMsg>,
        board: Arc<BgpBoard>,
    ) -> DumpHandle {
        self.queue(src, pop, limits, (rib, board), None)
    }

    /// `load`, and say on `done` when the dump is read (or why it was not).
    pub fn load_then(
        &self,
        src: BgpMrtConf,
        pop: String,
        limits: Limits,
        (rib, board): (mpsc::Sender<RibMsg>, Arc<BgpBoard>),
        done: std::sync::mpsc::Sender<Result<(), String>>,
    ) -> DumpHandle {
        self.queue(src, pop, limits, (rib, board), Some(done))
    }

    fn queue(
        &self,
        src: BgpMrtConf,
        pop: String,
        limits: Limits,
        (rib, board): (mpsc::Sender<RibMsg>, Arc<BgpBoard>),
        done: Option<std::sync::mpsc::Sender<Result<(), String>>>,
    ) -> DumpHandle {
        let cancelled = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let stem = stem(&src.file);
        let loader = Loader {
            src,
            pop,
            limits,
            stem,
            rib,
            board,
            cancelled: cancelled.clone(),
            peers: peers.clone(),
            by_addr: FxHashMap::default(),
            pending: FxHashMap::default(),
            recycler: Recycler::default(),
            routes: 0,
            done,
        };
        if self.jobs.send(loader).is_err() {
            tracing::error!("the MRT reader thread is gone");
        }
        DumpHandle { cancelled, peers }
    }
}

struct Loader {
    src: BgpMrtConf,
    pop: String,
    limits: Limits,
    stem: String,
    rib: mpsc::Sender<RibMsg>,
    board: Arc<BgpBoard>,
    cancelled: Arc<AtomicBool>,
    peers: Arc<Mutex<Vec<(Slot, String)>>>,
    by_addr: FxHashMap<IpAddr, Slot>,
    /// Each peer's UPDATEs not sent yet.
    pending: FxHashMap<Slot, UpdateBatch>,
    /// Batches the RIB applied come back here to be parsed into again.
    recycler: Recycler,
    routes: usize,
    /// Told when the dump is read.
    done: Option<std::sync::mpsc::Sender<Result<(), String>>>,
}

/// The RIB thread is gone, or the dump was unloaded.
struct Stop;

impl Loader {
    fn run(&mut self) {
        let t0 = Instant::now();
        // What was read before an error stays: its peers' tables end here.
        let r = self.read_all().and_then(|r| self.end_tables().map(|()| r));
        // The reader's temporaries.
        crate::memory::give_back();
        let outcome = match r {
            Ok(Ok(())) => {
                tracing::info!(file = %self.src.file.display(), view = %self.pop, routes = self.routes,
                    ms = t0.elapsed().as_millis() as u64, "MRT dump read");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, routes = self.routes,
                    "MRT dump not (fully) read; routes read before the error are kept");
                Err(e)
            }
            Err(Stop) => {
                tracing::info!(file = %self.src.file.display(), "MRT dump reading stopped");
                Err("reading stopped".to_string())
            }
        };
        if let Some(d) = self.done.take() {
            let _ = d.send(outcome);
        }
    }

    /// Every file of the dump; the outer error stops, the inner one is a
    /// file that could not be (fully) read.
    fn read_all(&mut self) -> Result<Result<(), String>, Stop> {
        let files: Vec<_> = std::iter::once(self.src.file.clone())
            .chain(self.src.updates.iter().cloned())
            .collect();
        // MRT peer index -> slot (None: filtered out).
        let mut index: Vec<Option<Slot>> = Vec::new();
        for path in files {
            let mut f = match MrtFile::open(&path) {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            };
            let mut n = 0u32;
            loop {
                n = n.wrapping_add(1);
                if n.is_multiple_of(4096) && self.cancelled.load(Ordering::Relaxed) {
                    return Err(Stop);
                }
                let rec = match f.next_record() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => return Ok(Err(e)),
                };
                match rec {
                    Record::PeerIndex { peers, .. } => {
                        index.clear();
                        for p in &peers {
                            let slot = if self.wanted(&p.address) {
                                Some(self.peer(p.address, p.asn, p.bgp_id)?)
                            } else {
                                None
                            };
                            index.push(slot);
                        }
                    }
                    Record::Rib { prefix, entries, .. } => {
                        for e in entries {
                            if let (Some(Some(slot)), Ok(a)) = (index.get(e.peer_index as usize), e.attrs) {
                                let slot = *slot;
                                self.push(slot, |u| {
                                    u.announced.push(Nlri {
                                        path_id: e.path_id,
                                        prefix,
                                    });
                                    u.attrs = a;
                                })?;
                                self.routes += 1;
                            }
                        }
                    }
                    Record::TableDump {
                        prefix, peer, entry, ..
                    } => {
                        if !self.wanted(&peer.address) {
                            continue;
                        }
                        let slot = self.peer(peer.address, peer.asn, 0)?;
                        if let Ok(a) = entry.attrs {
                            self.push(slot, |u| {
                                u.announced.push(Nlri { path_id: None, prefix });
                                u.attrs = a;
                            })?;
                            self.routes += 1;
                        }
                    }
                    Record::Update {
                        peer, peer_as, update, ..
                    } => {
                        if !self.wanted(&peer) {
                            continue;
                        }
                        let slot = self.peer(peer, peer_as, 0)?;
                        self.routes += update.announced.len();
                        self.push(slot, |u| *u = *update)?;
                    }
                    Record::StateChange { peer, new, .. } => {
                        // Leaving Established (6) ends the session: its routes
                        // go, as when a live session goes down.
                        if new != 6 {
                            if let Some(&slot) = self.by_addr.get(&peer) {
                                self.flush(slot)?;
                                self.send(RibMsg::Down(slot))?;
                            }
                        }
                    }
                    Record::Other { .. } => {}
                }
            }
        }
        Ok(Ok(()))
    }

    fn wanted(&self, a: &IpAddr) -> bool {
        self.src.peers.is_empty() || self.src.peers.contains(a)
    }

    fn send(&self, m: RibMsg) -> Result<(), Stop> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(Stop);
        }
        self.rib.blocking_send(m).map_err(|_| Stop)
    }

    /// The slot of an MRT peer: a new one is added to the view and comes up
    /// with both families, so its table is published when it ends.
    fn peer(&mut self, addr: IpAddr, asn: u32, bgp_id: u32) -> Result<Slot, Stop> {
        if let Some(&s) = self.by_addr.get(&addr) {
            return Ok(s);
        }
        let slot = new_slot();
        let name = format!("{}/{addr}", self.stem);
        {
            let mut p = self.peers.lock().expect("dump peers");
            if self.cancelled.load(Ordering::Relaxed) {
                return Err(Stop);
            }
            p.push((slot, name.clone()));
        }
        self.board.add(PeerStatus {
            name: name.clone(),
            view: self.pop.clone(),
            address: addr.to_string(),
            remote_as: asn,
            state: "MRT".into(),
            since_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            ..Default::default()
        });
        let info = PeerInfo {
            name: name.clone(),
            asn,
            bgp_id,
            address: addr,
            ibgp: false,
        };
        self.send(RibMsg::AddPeer {
            slot,
            name,
            pop: self.pop.clone(),
            info: info.clone(),
            limits: self.limits,
            ctl: self.recycler.sender(),
        })?;
        self.send(RibMsg::Up {
            slot,
            info,
            families: [true, true],
        })?;
        self.by_addr.insert(addr, slot);
        Ok(slot)
    }

    /// Fill the next UPDATE of `slot`'s batch; a full batch goes.
    fn push(&mut self, slot: Slot, fill: impl FnOnce(&mut ParsedUpdate)) -> Result<(), Stop> {
        let b = match self.pending.entry(slot) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(self.recycler.batch()),
        };
        fill(b.push_slot());
        if b.len() >= BATCH {
            self.flush(slot)?;
        }
        Ok(())
    }

    fn flush(&mut self, slot: Slot) -> Result<(), Stop> {
        let Some(updates) = self.pending.remove(&slot) else {
            return Ok(());
        };
        let batch = self.recycler.seal(updates);
        self.send(RibMsg::Update(slot, batch))
    }

    /// Every peer's table is complete: End-of-RIB for both families.
    fn end_tables(&mut self) -> Result<(), Stop> {
        let slots: Vec<Slot> = self.by_addr.values().copied().collect();
        for slot in slots {
            for afi in [Afi::Ipv4, Afi::Ipv6] {
                self.push(slot, |u| {
                    u.attrs = Default::default();
                    u.end_of_rib = Some(afi);
                })?;
            }
            self.flush(slot)?;
        }
        Ok(())
    }
}

/// What the names of a dump's feeds begin with (`<stem>/<peer address>`).
pub fn stem(file: &std::path::Path) -> String {
    file.file_name()
        .map_or_else(|| "mrt".to_string(), |f| f.to_string_lossy().into_owned())
}
