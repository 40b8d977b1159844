//! BGP input: sessions (one task each), an optional listener for passive
//! sessions, a BMP station for routers that stream their tables, and the
//! RIB owner thread that turns views into tables.
//!
//! Learned routes are never sent anywhere (RFC 8212's default deny for
//! eBGP holds trivially): sessions only receive.

pub mod announce;
pub mod bmp;
pub mod board;
pub mod feed;
pub mod mrt_dump;
mod mrt_feed;
pub mod mrt_file;
pub mod offline;
mod peer;
mod ribs;
mod sockopt;

use board::{BgpBoard, PeerStatus};
use feed::{new_slot, Limits, PeerCtl, RibMsg, Slot};
use petrel_config::{bgp_diff, BgpConf, BgpPeerConf};
use petrel_director::{ChangeKind, Publisher, Reader};
use petrel_rib::PeerInfo;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

/// What the rest of petrel uses to reach BGP state.
#[derive(Clone)]
pub struct BgpHandle {
    pub board: Arc<BgpBoard>,
    pub rib: mpsc::Sender<RibMsg>,
    pub anycast: Arc<announce::AnycastBoard>,
}

struct Running {
    cfg: Arc<BgpPeerConf>,
    slot: Slot,
    ctl: mpsc::UnboundedSender<PeerCtl>,
}

type Accepting = Arc<Mutex<HashMap<IpAddr, mpsc::UnboundedSender<PeerCtl>>>>;

/// Start the BGP machinery on the control runtime. Peers follow the config
/// on every reload: unchanged ones keep their sessions.
pub fn spawn(publisher: Arc<Publisher>, rt: &tokio::runtime::Runtime) -> Result<BgpHandle, String> {
    let reader = publisher.reader();
    let g = reader.load();
    let conf = g.config().bgp.clone();
    let pops: Vec<String> = g.config().pops.iter().map(|p| p.name.clone()).collect();
    drop(g);
    let batch_ms = conf.as_ref().map_or(1000, |c| c.batch_ms);
    let (tx, rx) = mpsc::channel(1024);
    let board = Arc::new(BgpBoard::default());
    // Sessions follow the config: the manager wakes after each reload.
    let reloaded = Arc::new(Notify::new());
    let r = reloaded.clone();
    publisher.subscribe(move |_, c| {
        if c.kind == ChangeKind::Reload {
            r.notify_one();
        }
    });
    // At start, the first views wait for every configured feed (see
    // `petrel_rib::owner`); a reload adds feeds to views already serving.
    let warmup = conf.as_ref().filter(|_| publisher.load().warming).map(|c| {
        let mut expected: Vec<String> = c.peers.iter().filter(|p| p.warmup).map(|p| p.name.clone()).collect();
        expected.extend(c.mrt.iter().map(|m| mrt_feed::stem(&m.file)));
        expected.extend(c.bmp.iter().map(|b| bmp::router_name(b.router)));
        expected.sort();
        expected.dedup();
        (c.warmup, expected)
    });
    ribs::spawn(
        publisher.clone(),
        board.clone(),
        pops,
        (batch_ms, warmup),
        rx,
        rt.handle().clone(),
    )
    .map_err(|e| format!("cannot start the RIB thread: {e}"))?;
    let anycast = Arc::new(announce::AnycastBoard::default());
    let handle = BgpHandle {
        board: board.clone(),
        rib: tx.clone(),
        anycast: anycast.clone(),
    };
    let accepting: Accepting = Arc::default();
    let mut listener_md5: Option<Arc<TcpListener>> = None;
    if let Some(addr) = conf.as_ref().and_then(|c| c.listen) {
        let l = Arc::new(bind(rt, addr, "BGP")?);
        listener_md5 = Some(l.clone());
        rt.spawn(accept_loop(l, accepting.clone(), board.clone()));
    }
    let (bmp_tx, bmp_rx) = tokio::sync::watch::channel(bmp::BmpConf::default());
    if let Some(addr) = conf.as_ref().and_then(|c| c.bmp_listen) {
        let l = bind(rt, addr, "BMP")?;
        rt.spawn(bmp::accept_loop(l, reader.clone(), tx.clone(), board.clone(), bmp_rx));
    }
    let announcer = {
        let _guard = rt.enter();
        announce::spawn(publisher.clone(), anycast)
    };
    rt.spawn(manage(Manager {
        reader,
        reloaded,
        rib: tx,
        board,
        accepting,
        listener: listener_md5,
        bmp_conf: bmp_tx,
        announcer,
    }));
    Ok(handle)
}

/// A listening socket on the control runtime (`what` names it in errors
/// and the log).
fn bind(rt: &tokio::runtime::Runtime, addr: std::net::SocketAddr, what: &str) -> Result<TcpListener, String> {
    let _guard = rt.enter();
    let sock = if addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()
    } else {
        tokio::net::TcpSocket::new_v4()
    }
    .map_err(|e| e.to_string())?;
    sock.set_reuseaddr(true).map_err(|e| e.to_string())?;
    sock.bind(addr)
        .map_err(|e| format!("cannot listen for {what} on {addr}: {e}"))?;
    let l = sock.listen(64).map_err(|e| e.to_string())?;
    tracing::info!(%addr, "{what} listening");
    Ok(l)
}

async fn accept_loop(l: Arc<TcpListener>, accepting: Accepting, board: Arc<BgpBoard>) {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};
    // A scan or a flood from unknown addresses is counted, and logged once
    // per interval with how many were not.
    let mut unknown_log = crate::quiet::Every::new(Duration::from_secs(10));
    let mut backoff = crate::quiet::AcceptBackoff::new("BGP");
    loop {
        match l.accept().await {
            Ok((s, from)) => {
                backoff.accepted();
                let to = accepting.lock().expect("accepting").get(&from.ip()).cloned();
                match to {
                    Some(tx) => {
                        let _ = tx.send(PeerCtl::Accepted(s));
                    }
                    None => {
                        board.unconfigured_bgp.fetch_add(1, Relaxed);
                        if let Some(n) = unknown_log.hit(Instant::now()) {
                            tracing::warn!(%from, suppressed = n, "BGP connection from an address that is not a configured peer");
                        }
                    }
                }
            }
            Err(e) => {
                board.accept_errors.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff.failed(&e, Instant::now())).await;
            }
        }
    }
}

/// What one feed may hold: its own route limit, or the `[bgp]` default.
pub fn feed_limits(c: &BgpConf, own: Option<u32>) -> Limits {
    Limits {
        routes: own.unwrap_or(c.max_prefix),
        attr_bytes: c.max_attr_bytes,
    }
}

/// Never used for a live feed (a feed exists only with a `[bgp]` section).
const NO_LIMITS: Limits = Limits {
    routes: 0,
    attr_bytes: 0,
};

/// What the session manager works with.
struct Manager {
    reader: Reader,
    reloaded: Arc<Notify>,
    rib: mpsc::Sender<RibMsg>,
    board: Arc<BgpBoard>,
    accepting: Accepting,
    listener: Option<Arc<TcpListener>>,
    bmp_conf: tokio::sync::watch::Sender<bmp::BmpConf>,
    announcer: announce::AnnounceTx,
}

async fn manage(m: Manager) {
    let Manager {
        reader,
        reloaded,
        rib,
        board,
        accepting,
        listener,
        bmp_conf,
        announcer,
    } = m;
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut dumps: HashMap<petrel_config::BgpMrtConf, mrt_feed::DumpHandle> = HashMap::new();
    let mrt = match mrt_feed::MrtReader::start() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the MRT reader thread; BGP input stops");
            return;
        }
    };
    // The `[bgp]` section running now; what a reload changes is
    // `petrel_config::bgp_diff`'s to say.
    let mut prev: Option<BgpConf> = None;
    let mut pops: Vec<String> = Vec::new();
    let mut index_prefixes = false;
    loop {
        let g = reader.load();
        let conf: Option<BgpConf> = g.config().bgp.clone();
        let new_pops: Vec<String> = g.config().pops.iter().map(|p| p.name.clone()).collect();
        let new_index = g
            .config()
            .measure
            .as_ref()
            .is_some_and(|m| matches!(m.unit, petrel_measure::UnitMode::Bgp { .. }));
        drop(g);
        if new_pops != pops {
            pops = new_pops;
            let _ = rib.send(RibMsg::Pops(pops.clone())).await;
        }
        if new_index != index_prefixes {
            index_prefixes = new_index;
            let _ = rib.send(RibMsg::IndexPrefixes(index_prefixes)).await;
        }
        let router_id = conf.as_ref().map_or(std::net::Ipv4Addr::UNSPECIFIED, |c| c.router_id);
        let diff = bgp_diff(prev.as_ref(), conf.as_ref());
        for (name, why) in diff.stop {
            let Some(r) = running.remove(&name) else { continue };
            let _ = r.ctl.send(PeerCtl::Stop(why.cease_subcode()));
            accepting.lock().expect("accepting").remove(&r.cfg.address);
            if let (Some(l), Some(_)) = (&listener, &r.cfg.md5_password) {
                let _ = sockopt::set_md5(l.as_ref(), r.cfg.address, &[]);
            }
            let _ = rib.send(RibMsg::RemovePeer(r.slot)).await;
            board.remove(&name);
            tracing::info!(peer = %name, reason = ?why, "BGP peer removed");
        }
        for p in diff.start {
            let slot = new_slot();
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            let view = pops.get(p.pop.index()).cloned().unwrap_or_default();
            board.add(PeerStatus {
                name: p.name.clone(),
                view: view.clone(),
                address: p.address.to_string(),
                remote_as: p.asn.0,
                local_as: p.local_asn.0,
                state: "Idle".into(),
                ..Default::default()
            });
            let info = PeerInfo {
                name: p.name.clone(),
                asn: p.asn.0,
                bgp_id: 0,
                address: p.address,
                ibgp: p.ibgp(),
            };
            let _ = rib
                .send(RibMsg::AddPeer {
                    slot,
                    name: p.name.clone(),
                    pop: view.clone(),
                    info,
                    limits: conf.as_ref().map_or(NO_LIMITS, |c| feed_limits(c, p.max_prefix)),
                    ctl: ctl_tx.clone(),
                })
                .await;
            if let (Some(l), Some(pw)) = (&listener, &p.md5_password) {
                if let Err(e) = sockopt::set_md5(l.as_ref(), p.address, pw.as_bytes()) {
                    tracing::error!(peer = %p.name, error = %e, "cannot set the TCP MD5 key on the listener");
                }
            }
            accepting.lock().expect("accepting").insert(p.address, ctl_tx.clone());
            let cfg = Arc::new(p);
            tracing::info!(peer = %cfg.name, address = %cfg.address, remote_as = cfg.asn.0, view = %view, passive = cfg.passive, "BGP peer configured");
            tokio::spawn(
                peer::PeerTask {
                    cfg: cfg.clone(),
                    router_id,
                    slot,
                    rib: rib.clone(),
                    board: board.clone(),
                    ctl: ctl_rx,
                    announcer: announcer.clone(),
                    ctl_tx: ctl_tx.clone(),
                    malformed_log: std::sync::Mutex::new(crate::quiet::Every::new(std::time::Duration::from_secs(10))),
                }
                .run(),
            );
            running.insert(cfg.name.clone(), Running { cfg, slot, ctl: ctl_tx });
        }
        for m in diff.unload_mrt {
            if let Some(d) = dumps.remove(&m) {
                d.unload(&rib, &board).await;
            }
        }
        for m in diff.load_mrt {
            let pop = pops.get(m.pop.index()).cloned().unwrap_or_default();
            let limits = conf.as_ref().map_or(NO_LIMITS, |c| feed_limits(c, None));
            let h = mrt.load(m.clone(), pop, limits, rib.clone(), board.clone());
            dumps.insert(m, h);
        }
        // BMP routers: a board line each; streams restart on any change.
        if let Some(routers) = diff.bmp {
            for old in bmp_conf.borrow().iter() {
                board.remove(&bmp::router_name(old.router));
            }
            for r in &routers {
                let name = bmp::router_name(r.router);
                let views: Vec<String> = routers
                    .iter()
                    .filter(|o| o.router == r.router)
                    .filter_map(|o| pops.get(o.pop.index()).cloned())
                    .collect();
                board.add(PeerStatus {
                    name,
                    view: views.join(","),
                    address: r.router.to_string(),
                    state: "Idle".into(),
                    ..Default::default()
                });
            }
            bmp_conf.send_replace(Arc::new(routers));
        }
        prev = conf;
        reloaded.notified().await;
    }
}
