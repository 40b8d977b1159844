//! One task per configured peer: the thin IO shell around
//! `petrel_bgp_fsm::Session`. It owns the TCP connection, feeds bytes and
//! time to the state machine, carries out its actions, and hands routes to
//! the RIB owner over a bounded channel.

use super::board::BgpBoard;
use super::feed::{Exceeded, PeerCtl, RibBatch, RibMsg, Slot};
use super::sockopt;
use petrel_bgp_fsm::{notif, Action, Config as FsmConfig, Session, State};
use petrel_bgp_wire::UpdateBatch;
use petrel_config::BgpPeerConf;
use petrel_rib::PeerInfo;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

/// After a max-prefix Cease the session stays down this long, then retries.
const MAX_PREFIX_RESTART: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a colliding connection has to send its OPEN.
const OPEN_WAIT: Duration = Duration::from_secs(10);

pub struct PeerTask {
    pub cfg: Arc<BgpPeerConf>,
    pub router_id: Ipv4Addr,
    pub slot: Slot,
    pub rib: mpsc::Sender<RibMsg>,
    pub board: Arc<BgpBoard>,
    pub ctl: mpsc::UnboundedReceiver<PeerCtl>,
    /// RFC 7606 events are logged once per interval; the board counts all.
    pub malformed_log: std::sync::Mutex<crate::quiet::Every>,
    /// The anycast announcer, told when the session comes up and goes down.
    pub announcer: super::announce::AnnounceTx,
    /// This task's own control channel, for the announcer to write through.
    pub ctl_tx: mpsc::UnboundedSender<PeerCtl>,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

fn state_name(s: State) -> &'static str {
    match s {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    }
}

/// TTL options for a session socket: GTSM, else the multihop TTL, else 1
/// for eBGP (directly connected) and 64 for iBGP.
pub fn apply_ttl(sock: &impl std::os::fd::AsRawFd, cfg: &BgpPeerConf) -> io::Result<()> {
    let v6 = cfg.address.is_ipv6();
    if cfg.ttl_security {
        sockopt::set_gtsm(sock, v6, 1)
    } else {
        let ttl = cfg.multihop.unwrap_or(if cfg.ibgp() { 64 } else { 1 });
        sockopt::set_ttl(sock, v6, ttl)
    }
}

async fn connect(cfg: Arc<BgpPeerConf>) -> io::Result<TcpStream> {
    let to = SocketAddr::new(cfg.address, cfg.port);
    let sock = if to.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(pw) = &cfg.md5_password {
        sockopt::set_md5(&sock, cfg.address, pw.as_bytes())?;
    }
    apply_ttl(&sock, &cfg)?;
    if let Some(l) = cfg.local_address {
        sock.bind(SocketAddr::new(l, 0))?;
    }
    let s = tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(to))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn read_some(r: &mut Option<OwnedReadHalf>, buf: &mut [u8]) -> io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn connected(c: &mut Option<Connecting>) -> io::Result<TcpStream> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

type Colliding = Pin<Box<dyn Future<Output = io::Result<(TcpStream, Vec<u8>, u32)>> + Send>>;

/// Read the peer's OPEN from a second connection: the bytes read (to feed
/// the session if this connection stays) and its BGP Identifier.
async fn read_open(mut stream: TcpStream) -> io::Result<(TcpStream, Vec<u8>, u32)> {
    let ctx = petrel_bgp_wire::SessionCtx::default();
    let mut bytes = Vec::with_capacity(4096);
    let read = async {
        loop {
            match petrel_bgp_wire::decode(&bytes, &ctx) {
                Ok(Some((petrel_bgp_wire::Message::Open(o), _))) => return Ok(o.bgp_id),
                Ok(Some(_)) => return Err(io::Error::other("the first message is not an OPEN")),
                Err(e) => return Err(io::Error::other(e.reason)),
                Ok(None) => {}
            }
            if stream.read_buf(&mut bytes).await? == 0 {
                return Err(io::Error::other("closed before its OPEN"));
            }
        }
    };
    let id = tokio::time::timeout(OPEN_WAIT, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no OPEN"))??;
    Ok((stream, bytes, id))
}

async fn colliding_open(c: &mut Option<Colliding>) -> io::Result<(TcpStream, Vec<u8>, u32)> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Close a connection with a Cease: 7 when it loses a collision, 5 when
/// the session is held down (RFC 4486).
async fn refuse(mut stream: TcpStream, subcode: u8) {
    let mut b = Vec::new();
    petrel_bgp_wire::encode(
        &petrel_bgp_wire::Message::Notification(petrel_bgp_wire::Notification {
            code: notif::CEASE,
            subcode,
            data: &[],
        }),
        &mut b,
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&b)).await;
    let _ = stream.shutdown().await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl PeerTask {
    pub async fn run(mut self) {
        let cfg = self.cfg.clone();
        let t0 = Instant::now();
        let now = || t0.elapsed().as_millis() as u64;
        let mut s = Session::new(FsmConfig {
            local_as: cfg.local_asn.0,
            peer_as: cfg.asn.0,
            bgp_id: u32::from(self.router_id),
            hold_time: cfg.hold_time,
            passive: cfg.passive,
            connect_retry_ms: u64::from(cfg.connect_retry_secs) * 1000,
            ipv4: cfg.ipv4,
            ipv6: cfg.ipv6,
            add_path_receive: cfg.add_path,
            // Where needed: IPv4 routes over an IPv6 session.
            extended_next_hop: cfg.address.is_ipv6(),
        });
        s.start(now());
        let mut reader: Option<OwnedReadHalf> = None;
        // Whether the connection in use is one we opened (RFC 4271 §6.8).
        let mut outgoing = false;
        // A second connection from the peer whose OPEN decides a collision.
        let mut colliding: Option<Colliding> = None;
        let mut writer: Option<OwnedWriteHalf> = None;
        let mut connecting: Option<Connecting> = None;
        let mut restart_at: Option<Instant> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_state = State::Idle;
        // Why we closed the session ourselves, reported with its Down.
        let mut closing_reason: Option<String> = None;
        // The hashes of an applied batch, back to be filled again.
        let mut spare_hashes: Vec<u64> = Vec::new();
        loop {
            while let Some(a) = s.poll_action() {
                match a {
                    Action::Connect => connecting = Some(Box::pin(connect(cfg.clone()))),
                    Action::Send(bytes) => {
                        if let Some(w) = writer.as_mut() {
                            if let Err(e) = w.write_all(&bytes).await {
                                tracing::debug!(peer = %cfg.name, error = %e, "write failed");
                            }
                        }
                    }
                    Action::Close => {
                        if let Some(mut w) = writer.take() {
                            let _ = w.shutdown().await;
                        }
                        reader = None;
                        connecting = None;
                    }
                    Action::Established(n) => {
                        let id = Ipv4Addr::from(n.peer_id);
                        tracing::info!(
                            peer = %cfg.name, address = %cfg.address, remote_as = n.peer_as,
                            router_id = %id, hold_time = n.hold_time,
                            four_octet_as = n.ctx.four_octet_as, add_path_v4 = n.ctx.add_path_v4,
                            add_path_v6 = n.ctx.add_path_v6, "BGP session established"
                        );
                        self.board.update(&cfg.name, |p| {
                            p.router_id = Some(id.to_string());
                            p.hold_time = Some(n.hold_time);
                            p.established_transitions += 1;
                            p.last_error.clear();
                        });
                        let info = PeerInfo {
                            name: cfg.name.clone(),
                            asn: n.peer_as,
                            bgp_id: n.peer_id,
                            address: cfg.address,
                            ibgp: cfg.ibgp(),
                        };
                        let up = RibMsg::Up {
                            slot: self.slot,
                            info,
                            families: n.families,
                        };
                        if self.rib.send(up).await.is_err() {
                            return;
                        }
                        if let Some(local) = writer.as_ref().and_then(|w| w.local_addr().ok()) {
                            let _ = self.announcer.send(super::announce::AnnounceMsg::Up {
                                name: cfg.name.clone(),
                                ctl: self.ctl_tx.clone(),
                                ctx: n.ctx,
                                families: n.families,
                                extended_next_hop: n.extended_next_hop,
                                local: local.ip(),
                            });
                        }
                    }
                    // The UPDATEs of a read go to the RIB together: one
                    // channel message and one board update per read.
                    Action::Updates(b) => {
                        if !self.send_batch(b, &mut spare_hashes).await {
                            return;
                        }
                    }
                    Action::Down(why) => {
                        tracing::warn!(peer = %cfg.name, address = %cfg.address, remote_as = cfg.asn.0, reason = %why, "BGP session down");
                        let why = closing_reason.take().unwrap_or(why);
                        self.board.update(&cfg.name, |p| p.last_error = why.clone());
                        let _ = self.announcer.send(super::announce::AnnounceMsg::Down {
                            name: cfg.name.clone(),
                            reason: why.clone(),
                        });
                        if self.rib.send(RibMsg::Down(self.slot)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if s.state() != last_state {
                tracing::debug!(peer = %cfg.name, from = state_name(last_state), to = state_name(s.state()), "BGP state");
                last_state = s.state();
                self.board.set_state(&cfg.name, state_name(last_state));
            }
            let deadline = s.next_deadline().map(|ms| t0 + Duration::from_millis(ms));
            tokio::select! {
                r = read_some(&mut reader, &mut buf) => match r {
                    Ok(0) | Err(_) => {
                        reader = None;
                        writer = None;
                        s.tcp_closed(now());
                    }
                    Ok(n) => s.receive(&buf[..n], now()),
                },
                c = connected(&mut connecting) => {
                    connecting = None;
                    match c {
                        Ok(stream) => {
                            let (r, w) = stream.into_split();
                            reader = Some(r);
                            writer = Some(w);
                            outgoing = true;
                            s.tcp_connected(now());
                        }
                        Err(e) => {
                            // The connect-retry timer tries again.
                            tracing::debug!(peer = %cfg.name, error = %e, "connect failed");
                            self.board.update(&cfg.name, |p| p.last_error = format!("connect: {e}"));
                        }
                    }
                }
                _ = sleep_until(deadline) => s.tick(now()),
                _ = sleep_until(restart_at) => {
                    restart_at = None;
                    s.start(now());
                }
                m = self.ctl.recv() => match m {
                    None => {
                        s.stop(notif::PEER_DECONFIGURED, &[]);
                        self.flush(&mut s, &mut writer).await;
                        return;
                    }
                    Some(PeerCtl::Stop(sub)) => {
                        s.stop(sub, &[]);
                        self.flush(&mut s, &mut writer).await;
                        let _ = self.rib.send(RibMsg::Down(self.slot)).await;
                        self.board.set_state(&cfg.name, "Idle");
                        return;
                    }
                    Some(PeerCtl::Announce(bytes)) => {
                        if s.state() == State::Established {
                            if let Some(w) = writer.as_mut() {
                                if let Err(e) = w.write_all(&bytes).await {
                                    tracing::debug!(peer = %cfg.name, error = %e, "write failed");
                                }
                            }
                        }
                    }
                    Some(PeerCtl::Spent(b)) => {
                        s.recycle(b.updates);
                        spare_hashes = b.hashes;
                    }
                    Some(PeerCtl::OverLimit(exceeded)) => {
                        // RFC 4486 §4 (the optional data is not sent).
                        let (sub, what) = match exceeded {
                            Exceeded::Routes { max, .. } => (notif::MAX_PREFIXES_REACHED, format!("more than {max} prefixes: Cease/1")),
                            Exceeded::AttrBytes { max, .. } => (notif::OUT_OF_RESOURCES, format!("more than {} MiB of attributes: Cease/8", max >> 20)),
                        };
                        s.stop(sub, &[]);
                        closing_reason = Some(format!(
                            "{what} sent; retry in {} s",
                            MAX_PREFIX_RESTART.as_secs()
                        ));
                        restart_at = Some(Instant::now() + MAX_PREFIX_RESTART);
                    }
                    Some(PeerCtl::Accepted(stream)) => {
                        let _ = stream.set_nodelay(true);
                        if let Err(e) = apply_ttl(&stream, &cfg) {
                            tracing::warn!(peer = %cfg.name, error = %e, "cannot set TTL options");
                        }
                        if restart_at.is_some() {
                            // Held down after a max-prefix Cease.
                            refuse(stream, notif::CONNECTION_REJECTED).await;
                        } else if reader.is_none() && s.tcp_accepted(now()) {
                            connecting = None;
                            outgoing = false;
                            let (r, w) = stream.into_split();
                            reader = Some(r);
                            writer = Some(w);
                        } else if s.state() == State::Established || colliding.is_some() {
                            // RFC 4271 §6.8: an Established session keeps
                            // its connection.
                            tracing::info!(peer = %cfg.name, "connection collision: the new connection is closed (Cease/7)");
                            refuse(stream, notif::CONNECTION_COLLISION_RESOLUTION).await;
                        } else {
                            // OpenSent or OpenConfirm: the peer's OPEN on the
                            // new connection tells its BGP Identifier.
                            colliding = Some(Box::pin(read_open(stream)));
                        }
                    }
                },
                c = colliding_open(&mut colliding) => {
                    colliding = None;
                    match c {
                        Ok((stream, bytes, remote_id))
                            if s.state() != State::Established
                                && reader.is_some()
                                && petrel_bgp_fsm::collision_keeps_new(s.local_id(), remote_id, outgoing) =>
                        {
                            tracing::info!(peer = %cfg.name, "connection collision: the peer's connection stays, ours is closed (Cease/7)");
                            s.stop(notif::CONNECTION_COLLISION_RESOLUTION, &[]);
                            self.flush(&mut s, &mut writer).await;
                            connecting = None;
                            s.start(now());
                            let accepted = s.tcp_accepted(now());
                            debug_assert!(accepted, "a stopped session takes a connection");
                            outgoing = false;
                            let (r, w) = stream.into_split();
                            reader = Some(r);
                            writer = Some(w);
                            s.receive(&bytes, now());
                        }
                        Ok((stream, _, _)) => {
                            tracing::info!(peer = %cfg.name, "connection collision: our connection stays, the peer's is closed (Cease/7)");
                            refuse(stream, notif::CONNECTION_COLLISION_RESOLUTION).await;
                        }
                        Err(e) => tracing::debug!(peer = %cfg.name, error = %e, "colliding connection gave no OPEN"),
                    }
                }
            }
        }
    }

    /// Hand a read's UPDATEs to the RIB; false when the RIB is gone.
    async fn send_batch(&self, b: UpdateBatch, spare_hashes: &mut Vec<u64>) -> bool {
        let mut errs = 0u64;
        for u in b.as_slice() {
            let n = u64::from(u.treat_as_withdraw.is_some()) + u.discarded.len() as u64;
            if n == 0 {
                continue;
            }
            errs += n;
            // One line per interval, naming the first event and how many
            // were left out: a peer that sends nothing but malformed
            // UPDATEs must not fill the disk.
            let mut log = self.malformed_log.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(suppressed) = log.hit(Instant::now()) {
                if let Some(why) = &u.treat_as_withdraw {
                    tracing::warn!(peer = %self.cfg.name, reason = %why, withdrawn = u.withdrawn.len(), suppressed, "RFC 7606 treat-as-withdraw");
                } else if let Some(why) = u.discarded.first() {
                    tracing::warn!(peer = %self.cfg.name, reason = %why, suppressed, "RFC 7606 attribute discarded");
                }
            }
        }
        let n = b.len() as u64;
        self.board.update(&self.cfg.name, |p| {
            p.updates_received += n;
            p.errors_7606 += errs;
        });
        let batch = RibBatch::new(b, std::mem::take(spare_hashes));
        self.rib.send(RibMsg::Update(self.slot, batch)).await.is_ok()
    }

    /// Send what the state machine queued (a NOTIFICATION) before leaving.
    async fn flush(&mut self, s: &mut Session, writer: &mut Option<OwnedWriteHalf>) {
        while let Some(a) = s.poll_action() {
            if let (Action::Send(b), Some(w)) = (a, writer.as_mut()) {
                let _ = w.write_all(&b).await;
            }
        }
        if let Some(mut w) = writer.take() {
            let _ = w.shutdown().await;
        }
    }
}
