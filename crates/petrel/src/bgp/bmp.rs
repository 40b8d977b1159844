//! The BMP station (RFC 7854): routers connect and stream the routes they
//! hold for each of their peers. Every monitored peer that `[[bgp.bmp]]`
//! maps to a POP becomes a peer of that POP's view, fed through the RIB
//! thread like a live session; the decoding is `petrel_bgp_wire::bmp`.
//!
//! A station never writes to the router (RFC 7854 §3.3). When the stream
//! ends, what it described is no longer kept current, so its routes go;
//! the router reconnects and sends its tables again. A config change that
//! touches BMP closes the streams for the same reason: the router resends
//! everything under the new mapping.

use super::board::{BgpBoard, PeerStatus};
use super::feed::{new_slot, Recycler, RibMsg, Slot};
use petrel_bgp_wire::bmp::{self, Message, Monitor, PeerHeader, PeerKey, RibKind};
use petrel_bgp_wire::UpdateBatch;
use petrel_config::BgpBmpConf;
use petrel_director::Reader;
use petrel_rib::PeerInfo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// The BMP part of the config, as sessions see it.
pub type BmpConf = Arc<Vec<BgpBmpConf>>;

pub fn router_name(router: IpAddr) -> String {
    format!("bmp/{router}")
}

pub async fn accept_loop(
    l: TcpListener,
    reader: Reader,
    rib: mpsc::Sender<RibMsg>,
    board: Arc<BgpBoard>,
    mut conf: watch::Receiver<BmpConf>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};
    let mut unknown_log = crate::quiet::Every::new(Duration::from_secs(10));
    let mut backoff = crate::quiet::AcceptBackoff::new("BMP");
    loop {
        match l.accept().await {
            Ok((s, from)) => {
                backoff.accepted();
                // Marked seen, so that the session's clone wakes only on a
                // later change.
                let entries: Vec<BgpBmpConf> = conf
                    .borrow_and_update()
                    .iter()
                    .filter(|c| c.router == from.ip())
                    .cloned()
                    .collect();
                if entries.is_empty() {
                    board.unconfigured_bmp.fetch_add(1, Relaxed);
                    if let Some(n) = unknown_log.hit(Instant::now()) {
                        tracing::warn!(%from, suppressed = n, "BMP connection from an address that is not a configured router");
                    }
                    continue;
                }
                tokio::spawn(
                    Station {
                        router: from.ip(),
                        reader: reader.clone(),
                        rib: rib.clone(),
                        board: board.clone(),
                        monitor: Monitor::default(),
                        peers: HashMap::new(),
                        entries,
                        warned_rib: false,
                        pending: None,
                        recycler: Recycler::default(),
                    }
                    .run(s, from, conf.clone()),
                );
            }
            Err(e) => {
                board.accept_errors.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff.failed(&e, Instant::now())).await;
            }
        }
    }
}

/// A monitored peer the config maps to a view.
struct Monitored {
    slot: Slot,
    name: String,
    want: RibKind,
    /// An UPDATE could not be decoded: its routes were dropped and what
    /// follows is ignored until the peer's next Peer Up.
    desynchronized: bool,
}

struct Station {
    router: IpAddr,
    reader: Reader,
    rib: mpsc::Sender<RibMsg>,
    board: Arc<BgpBoard>,
    monitor: Monitor,
    /// Monitored peers by key; `None` for peers no entry takes.
    peers: HashMap<PeerKey, Option<Monitored>>,
    entries: Vec<BgpBmpConf>,
    warned_rib: bool,
    /// Consecutive UPDATEs of one monitored peer, sent to the RIB as one
    /// batch (at the end of a read, or before anything else is said).
    pending: Option<(Slot, UpdateBatch)>,
    /// Batches the RIB applied come back here to be parsed into again.
    recycler: Recycler,
}

impl Station {
    /// Send the pending batch to the RIB.
    async fn flush(&mut self) -> Result<(), String> {
        let Some((slot, updates)) = self.pending.take() else {
            return Ok(());
        };
        let batch = self.recycler.seal(updates);
        self.rib
            .send(RibMsg::Update(slot, batch))
            .await
            .map_err(|_| "the RIB thread is gone".to_string())
    }

    /// Make `pending` the batch to parse `slot`'s next UPDATE into: the
    /// pending one, or a recycled one (after another peer's is sent).
    async fn prepare_batch(&mut self, slot: Slot) -> Result<(), String> {
        if self.pending.as_ref().is_some_and(|(s, _)| *s != slot) {
            self.flush().await?;
        }
        if self.pending.is_none() {
            self.pending = Some((slot, self.recycler.batch()));
        }
        Ok(())
    }

    async fn run(mut self, mut s: TcpStream, from: SocketAddr, mut conf: watch::Receiver<BmpConf>) {
        let rname = router_name(self.router);
        tracing::info!(router = %from, "BMP session up");
        self.board.update(&rname, |p| {
            p.established_transitions += 1;
            p.last_error.clear();
        });
        self.board.set_state(&rname, "Up");
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        let why = 'session: loop {
            // Take every complete message before reading more.
            let mut used = 0;
            loop {
                let n = match bmp::message_len(&buf[used..]) {
                    None => break,
                    Some(Err(e)) => break 'session format!("stream error: {e}"),
                    Some(Ok(n)) if used + n > buf.len() => break,
                    Some(Ok(n)) => n,
                };
                let r = match bmp::parse(&buf[used..used + n]) {
                    Ok(m) => self.handle(m).await,
                    Err(e) => Err(format!("malformed message: {e}")),
                };
                used += n;
                if let Err(why) = r {
                    break 'session why;
                }
            }
            buf.drain(..used);
            if let Err(why) = self.flush().await {
                break 'session why;
            }
            tokio::select! {
                r = s.read_buf(&mut buf) => match r {
                    Ok(0) => break 'session "the router closed the connection".to_string(),
                    Ok(_) => {}
                    Err(e) => break 'session format!("read: {e}"),
                },
                _ = conf.changed() => break 'session "the BMP config changed".to_string(),
            }
        };
        tracing::warn!(router = %from, reason = %why, "BMP session down; its routes are withdrawn");
        for m in self.peers.drain().filter_map(|(_, m)| m) {
            let _ = self.rib.send(RibMsg::RemovePeer(m.slot)).await;
            self.board.remove(&m.name);
        }
        self.board.update(&rname, |p| p.last_error = why);
        self.board.set_state(&rname, "Idle");
    }

    /// Which entry takes this monitored peer, if any.
    fn entry_for(&self, peer: &PeerHeader) -> Option<&BgpBmpConf> {
        self.entries.iter().find(|e| {
            let loc = peer.peer_type == bmp::PEER_LOC_RIB;
            (e.rib == RibKind::LocRib) == loc && (loc || e.peers.is_empty() || e.peers.contains(&peer.address))
        })
    }

    fn peer_name(&self, peer: &PeerHeader) -> String {
        let mut n = if peer.peer_type == bmp::PEER_LOC_RIB {
            format!("bmp/{}/loc-rib", self.router)
        } else {
            format!("bmp/{}/{}", self.router, peer.address)
        };
        if peer.distinguisher != 0 {
            n.push_str(&format!("%{:x}", peer.distinguisher));
        }
        n
    }

    /// Start (or restart) a monitored peer in its view.
    /// `families`: IPv4 and IPv6 unicast as the session negotiated them,
    /// whose End-of-RIB markers end the peer's initial sync.
    async fn start(&mut self, peer: &PeerHeader, ibgp: bool, families: [bool; 2]) -> Result<(), String> {
        let key = peer.key();
        if let Some(Some(m)) = self.peers.get(&key) {
            // A second Peer Up means the session restarted in between.
            let _ = self.rib.send(RibMsg::Down(m.slot)).await;
        }
        let Some(entry) = self.entry_for(peer).cloned() else {
            if !self.peers.contains_key(&key) {
                tracing::info!(router = %self.router, peer = %peer.address, "BMP peer not mapped to a view; ignored");
            }
            self.peers.insert(key, None);
            return Ok(());
        };
        let name = self.peer_name(peer);
        let info = PeerInfo {
            name: name.clone(),
            asn: peer.asn,
            bgp_id: peer.bgp_id,
            address: peer.address,
            ibgp,
        };
        let slot = match self.peers.get_mut(&key) {
            Some(Some(m)) => {
                m.desynchronized = false;
                m.slot
            }
            _ => {
                let view = {
                    let g = self.reader.load();
                    g.config()
                        .pops
                        .get(entry.pop.index())
                        .map(|p| p.name.clone())
                        .unwrap_or_default()
                };
                let slot = new_slot();
                self.board.add(PeerStatus {
                    name: name.clone(),
                    view: view.clone(),
                    address: peer.address.to_string(),
                    remote_as: peer.asn,
                    state: "Idle".into(),
                    ..Default::default()
                });
                // The `[bgp]` limits apply; a peer past one loses its
                // routes until its next Peer Up (a station cannot end the
                // router's session). The RIB sends applied batches back.
                let ctl = self.recycler.sender();
                let limits = self
                    .reader
                    .load()
                    .config()
                    .bgp
                    .as_ref()
                    .map(|c| super::feed_limits(c, None));
                let Some(limits) = limits else { return Ok(()) };
                self.rib
                    .send(RibMsg::AddPeer {
                        slot,
                        name: name.clone(),
                        pop: view.clone(),
                        info: info.clone(),
                        limits,
                        ctl,
                    })
                    .await
                    .map_err(|_| "the RIB thread is gone".to_string())?;
                tracing::info!(router = %self.router, peer = %name, remote_as = peer.asn, view = %view, rib = ?entry.rib, "BMP peer monitored");
                self.peers.insert(
                    key,
                    Some(Monitored {
                        slot,
                        name: name.clone(),
                        want: entry.rib,
                        desynchronized: false,
                    }),
                );
                slot
            }
        };
        self.rib
            .send(RibMsg::Up { slot, info, families })
            .await
            .map_err(|_| "the RIB thread is gone".to_string())?;
        self.board.update(&name, |p| {
            p.established_transitions += 1;
            p.router_id = Some(std::net::Ipv4Addr::from(peer.bgp_id).to_string());
            p.last_error.clear();
        });
        self.board.set_state(&name, "Established");
        Ok(())
    }

    async fn handle(&mut self, m: Message<'_>) -> Result<(), String> {
        // What is said of peers keeps its order with their routes.
        if !matches!(m, Message::RouteMonitoring { .. }) {
            self.flush().await?;
        }
        match m {
            Message::Initiation(info) => {
                let text = |k: u16| {
                    info.iter()
                        .filter(|t| t.kind == k)
                        .map(|t| t.text())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                tracing::info!(router = %self.router, sys_name = %text(bmp::INFO_SYS_NAME), sys_descr = %text(bmp::INFO_SYS_DESCR), "BMP initiation");
            }
            Message::Termination { reason, info } => {
                let text: Vec<String> = info.iter().map(|t| t.text()).collect();
                return Err(format!(
                    "the router ended the session (reason {}) {}",
                    reason.map_or("none".to_string(), |r| r.to_string()),
                    text.join(" ")
                ));
            }
            Message::PeerUp(u) => {
                self.monitor.peer_up(&u);
                let ibgp = u.sent_open.asn() == u.received_open.asn();
                let (a, b) = (u.sent_open.unicast_families(), u.received_open.unicast_families());
                let families = [a[0] && b[0], a[1] && b[1]];
                self.start(&u.peer, ibgp, families).await?;
            }
            Message::PeerDown { peer, reason } => {
                self.monitor.peer_down(&peer.key());
                if let Some(Some(m)) = self.peers.get(&peer.key()) {
                    let _ = self.rib.send(RibMsg::Down(m.slot)).await;
                    let why = reason.to_string();
                    tracing::info!(router = %self.router, peer = %m.name, reason = %why, "BMP peer down");
                    self.board.update(&m.name, |p| p.last_error = why);
                    self.board.set_state(&m.name, "Down");
                }
            }
            Message::RouteMonitoring { peer, bgp } => {
                let key = peer.key();
                if !self.peers.contains_key(&key) && self.entry_for(&peer).is_some() {
                    // RFC 7854 §4.10 puts Peer Up first; a router that
                    // skips it is still heard, with nothing negotiated.
                    tracing::warn!(router = %self.router, peer = %peer.address, "route monitoring before Peer Up");
                    self.start(&peer, false, [true, true]).await?;
                }
                let Some(Some(m)) = self.peers.get(&key) else {
                    return Ok(());
                };
                if peer.rib() != m.want {
                    if !self.warned_rib {
                        self.warned_rib = true;
                        tracing::warn!(router = %self.router, peer = %m.name, sent = ?peer.rib(), taken = ?m.want,
                            "the router sends routes of a RIB the config does not take (see `rib` in [[bgp.bmp]])");
                    }
                    return Ok(());
                }
                if m.desynchronized {
                    return Ok(());
                }
                let (slot, name) = (m.slot, m.name.clone());
                let stripped = self.monitor.stripped_local_as;
                self.prepare_batch(slot).await?;
                let batch = &mut self.pending.as_mut().expect("prepared").1;
                let r = self.monitor.update_into(&peer, bgp, batch).map(|u| {
                    let errs = u.treat_as_withdraw.is_some() as u64 + u.discarded.len() as u64;
                    (errs, u.treat_as_withdraw.clone())
                });
                if stripped == 0 && self.monitor.stripped_local_as > 0 {
                    tracing::info!(router = %self.router, peer = %name,
                        "the router puts its own AS in front of received paths in BMP; petrel removes it");
                }
                match r {
                    Ok((errs, withdrawn)) => {
                        if let Some(why) = &withdrawn {
                            tracing::warn!(peer = %name, reason = %why, "RFC 7606 treat-as-withdraw");
                        }
                        self.board.update(&name, |p| {
                            p.updates_received += 1;
                            p.errors_7606 += errs;
                        });
                    }
                    Err(e) => {
                        // The router holds what it could not have decoded
                        // differently; petrel can no longer follow this
                        // peer: drop its routes rather than keep stale ones.
                        if let Some(Some(m)) = self.peers.get_mut(&key) {
                            m.desynchronized = true;
                        }
                        let why = format!("undecodable route monitoring: {e}");
                        tracing::error!(router = %self.router, peer = %name, reason = %why, "BMP peer's routes dropped until its next Peer Up");
                        self.flush().await?;
                        let _ = self.rib.send(RibMsg::Down(slot)).await;
                        self.board.update(&name, |p| p.last_error = why);
                        self.board.set_state(&name, "Desynchronized");
                    }
                }
            }
            Message::Statistics { .. } | Message::RouteMirroring { .. } | Message::Other { .. } => {}
        }
        Ok(())
    }
}
