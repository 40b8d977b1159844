//! The HTTP fronts' sockets: listeners, the PROXY header, TLS by SNI,
//! HTTP/1.1 and HTTP/2, connection limits and idle timeouts. Requests are
//! decided in [`handler`] from the current generation, so a reload changes
//! rules, certificates, timeouts, body and connection limits without
//! dropping connections; listeners added by a reload are bound before it is
//! published, and removed ones stop accepting while their connections
//! finish.

mod certs;
mod handler;
pub mod metrics;
mod proxy;
mod rewind;
mod rum;
mod tcp_info;

use bytes::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use metrics::HttpMetrics;
use petrel_director::{Publisher, Reader};
use petrel_http::proxy_protocol::{self, Parsed};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>;

/// What a request knows of its connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub front: Arc<str>,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer, or the PROXY header's source.
    pub client: IpAddr,
    /// Whether the peer is a trusted proxy (its headers are believed).
    pub trusted: bool,
    /// A duplicate of the TCP socket, for TCP_INFO: it stays the same
    /// socket for as long as any request holds this, even after the
    /// connection's own descriptor is closed.
    pub sock: std::os::fd::OwnedFd,
    /// Requests in flight, and when the last one ended (ms since `t0`):
    /// an idle connection is closed after the header timeout.
    pub inflight: std::sync::atomic::AtomicUsize,
    pub last_done_ms: std::sync::atomic::AtomicU64,
    pub t0: std::time::Instant,
    /// Whether the connection's RTT was taken as a latency sample.
    pub sampled: std::sync::atomic::AtomicBool,
}

impl ConnInfo {
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// A request body on its way to the upstream (limited in size).
pub type UpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub struct Shared {
    pub reader: Reader,
    pub metrics: Arc<HttpMetrics>,
    pub measure: Arc<crate::measure::Measurements>,
    pub upstream: Client<HttpConnector, UpBody>,
    /// Set at shutdown: listeners stop, connections finish what they do.
    stop: tokio::sync::watch::Receiver<bool>,
    /// Connections open now.
    active: Arc<std::sync::atomic::AtomicUsize>,
}

/// A listening address of a front.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ListenKey {
    front: String,
    addr: SocketAddr,
    tls: bool,
}

/// The running fronts: their listeners follow reloads (new addresses are
/// bound before the config is published, so that one that cannot be bound
/// fails the reload; removed ones stop accepting while their connections
/// finish), and they stop gracefully.
pub struct HttpFronts {
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Each worker takes new listeners from here.
    to_workers: Vec<tokio::sync::mpsc::UnboundedSender<Listening>>,
    stop: tokio::sync::watch::Sender<bool>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    /// Set when the grace period is over: workers stop waiting.
    force: Arc<std::sync::atomic::AtomicBool>,
    /// The listeners open now, each with its own stop signal.
    open: Mutex<HashMap<ListenKey, tokio::sync::watch::Sender<bool>>>,
    tls: Mutex<HashMap<String, Arc<Tls>>>,
    /// Connections open per front, against its `max_connections` (read at
    /// each accept from the serving config, so a reload changes it).
    counts: Mutex<HashMap<String, Arc<std::sync::atomic::AtomicUsize>>>,
}

/// Listeners bound and certificates loaded for a config not yet published.
pub struct Prepared {
    new: Vec<(ListenKey, Vec<std::net::TcpListener>)>,
    tls: Vec<(String, certs::Certs)>,
}

impl HttpFronts {
    /// Bind what `config` adds to the open listeners (one socket per
    /// worker), and load every TLS front's certificates. Any failure fails
    /// the whole: nothing is kept.
    pub fn prepare(&self, config: &petrel_config::Config) -> Result<Prepared, Vec<String>> {
        let open = self.open.lock().expect("http listeners");
        let mut p = Prepared {
            new: Vec::new(),
            tls: Vec::new(),
        };
        let mut errors = Vec::new();
        for f in &config.http {
            // Certificates are read again on every reload (renewals), as
            // `petrel check` reads them: one that does not load fails the
            // reload, and the old ones keep serving.
            if !f.tls_listen.is_empty() {
                match certs::load(f) {
                    Ok(c) => p.tls.push((f.name.clone(), c)),
                    Err(e) => errors.push(format!("http front `{}`: {e}", f.name)),
                }
            }
            for key in listen_keys(f) {
                if open.contains_key(&key) {
                    continue;
                }
                let sockets: Result<Vec<_>, _> = self.to_workers.iter().map(|_| bind(key.addr)).collect();
                match sockets {
                    Ok(s) => p.new.push((key, s)),
                    Err(e) => errors.push(format!("cannot listen on http {}: {e}", key.addr)),
                }
            }
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    /// Once `config` is published: serve what `prepare` bound, and stop
    /// accepting on what `config` no longer lists (connections accepted
    /// there finish on their own).
    pub fn commit(&self, p: Prepared, config: &petrel_config::Config) {
        let mut open = self.open.lock().expect("http listeners");
        let mut tls = self.tls.lock().expect("http tls");
        for (name, c) in p.tls {
            match tls.get(&name) {
                Some(t) => t.resolver.0.store(Arc::new(c)),
                None => {
                    tls.insert(name, Arc::new(Tls::new(c)));
                }
            }
        }
        let mut counts = self.counts.lock().expect("http counts");
        for (key, sockets) in p.new {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let count = counts.entry(key.front.clone()).or_default().clone();
            let front: Arc<str> = Arc::from(key.front.as_str());
            let t = if key.tls { tls.get(&key.front).cloned() } else { None };
            for (w, socket) in self.to_workers.iter().zip(sockets) {
                let _ = w.send(Listening {
                    socket,
                    front: front.clone(),
                    tls: t.clone(),
                    count: count.clone(),
                    stop: stop_rx.clone(),
                });
            }
            tracing::info!(front = %key.front, addr = %key.addr, tls = key.tls, workers = self.to_workers.len(), "HTTP listening");
            open.insert(key, stop_tx);
        }
        let wanted: std::collections::HashSet<ListenKey> = config.http.iter().flat_map(listen_keys).collect();
        open.retain(|key, stop| {
            let keep = wanted.contains(key);
            if !keep {
                stop.send_replace(true);
                tracing::info!(front = %key.front, addr = %key.addr, tls = key.tls, "HTTP listener closed");
            }
            keep
        });
        tls.retain(|name, _| config.http.iter().any(|f| f.name == *name && !f.tls_listen.is_empty()));
    }

    /// Stop accepting, let open connections finish their requests (HTTP/1.1
    /// closes after the one in flight, HTTP/2 sends GOAWAY), for at most
    /// `grace`; then drop what is left.
    pub fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let t0 = std::time::Instant::now();
        while self.active.load(Relaxed) > 0 && t0.elapsed() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = self.active.load(Relaxed);
        if left > 0 {
            tracing::warn!(
                connections = left,
                "HTTP connections still open after the grace period; closing them"
            );
        }
        // Each worker's runtime drops what is left when its thread ends.
        self.force.store(true, Relaxed);
        for w in std::mem::take(&mut *self.workers.lock().expect("http workers")) {
            let _ = w.join();
        }
    }
}

/// The addresses a front listens on.
fn listen_keys(f: &petrel_config::HttpConf) -> impl Iterator<Item = ListenKey> + '_ {
    let key = move |addr: &SocketAddr, tls| ListenKey {
        front: f.name.clone(),
        addr: *addr,
        tls,
    };
    f.listen
        .iter()
        .map(move |a| key(a, false))
        .chain(f.tls_listen.iter().map(move |a| key(a, true)))
}

/// One front's TLS: its certificates, replaced on reload.
struct Tls {
    resolver: Arc<certs::Resolver>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl Tls {
    fn new(c: certs::Certs) -> Tls {
        let resolver = Arc::new(certs::Resolver(arc_swap::ArcSwap::from_pointee(c)));
        let acceptor = tokio_rustls::TlsAcceptor::from(certs::server_config(resolver.clone()));
        Tls { resolver, acceptor }
    }
}

/// A listener a worker serves, with what its connections need.
struct Listening {
    socket: std::net::TcpListener,
    front: Arc<str>,
    tls: Option<Arc<Tls>>,
    count: Arc<std::sync::atomic::AtomicUsize>,
    /// Set when a reload removes the listener.
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Start the HTTP workers and bind every front's listeners: one thread per
/// core, each with a runtime of its own and its own socket on every
/// address (SO_REUSEPORT: the kernel spreads connections), so that a
/// request never crosses threads. The workers run even without fronts, so
/// that a reload can add them.
pub fn spawn(
    publisher: &Arc<Publisher>,
    metrics: Arc<HttpMetrics>,
    measure: Arc<crate::measure::Measurements>,
) -> Result<Arc<HttpFronts>, String> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let force = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    let mut to_workers = Vec::new();
    for i in 0..workers {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Listening>();
        to_workers.push(tx);
        let measure = measure.clone();
        let (reader, metrics, stop, active, force) = (
            publisher.reader(),
            metrics.clone(),
            stop.clone(),
            active.clone(),
            force.clone(),
        );
        let h = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "HTTP worker runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut connector = HttpConnector::new();
                    connector.set_nodelay(true);
                    connector.set_connect_timeout(Some(Duration::from_secs(5)));
                    let upstream = Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(30))
                        .pool_timer(TokioTimer::new())
                        .build(connector);
                    let shared = Arc::new(Shared {
                        reader,
                        metrics,
                        measure,
                        upstream,
                        stop: stop.clone(),
                        active,
                    });
                    // Serve new listeners until shutdown; the connections
                    // then finish on their own (HttpFronts::shutdown waits
                    // for them).
                    loop {
                        tokio::select! {
                            l = rx.recv() => match l {
                                Some(l) => match TcpListener::from_std(l.socket) {
                                    Ok(sock) => {
                                        tokio::spawn(accept_loop(sock, l.front, l.tls, l.count, l.stop, shared.clone()));
                                    }
                                    Err(e) => tracing::error!(error = %e, "HTTP listener"),
                                },
                                None => break,
                            },
                            _ = stopped(stop.clone()) => break,
                        }
                    }
                    stopped(stop).await;
                    while shared.active.load(Relaxed) > 0 && !force.load(Relaxed) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    let fronts = Arc::new(HttpFronts {
        workers: Mutex::new(handles),
        to_workers,
        stop: stop_tx,
        active,
        force,
        open: Mutex::default(),
        tls: Mutex::default(),
        counts: Mutex::default(),
    });
    // Every socket is bound before serving starts, so that a bad address
    // fails the start.
    let g = publisher.load_full();
    let p = fronts.prepare(g.config()).map_err(|e| e.join("\n"))?;
    fronts.commit(p, g.config());
    Ok(fronts)
}

/// What `petrel check` says of a front's certificates.
pub fn check_certificates(front: &petrel_config::HttpConf) -> Result<(), String> {
    certs::load(front).map(|_| ())
}

/// Resolves once shutdown begins.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    // One socket per worker on the same address.
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

async fn accept_loop(
    l: TcpListener,
    front: Arc<str>,
    tls: Option<Arc<Tls>>,
    count: Arc<std::sync::atomic::AtomicUsize>,
    removed: tokio::sync::watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let mut backoff = crate::quiet::AcceptBackoff::new("HTTP");
    let stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stopped(stop.clone()) => return,
            _ = stopped(removed.clone()) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tokio::time::sleep(backoff.failed(&e, std::time::Instant::now())).await;
                continue;
            }
        };
        backoff.accepted();
        // The limit is the serving config's, so that a reload changes it;
        // connections over a lowered limit are not cut, new ones wait.
        let limit = {
            let g = shared.reader.load();
            g.config()
                .http
                .iter()
                .find(|f| *f.name == *front)
                .map_or(0, |f| f.max_connections)
        };
        let Some(permit) = Slot::take(&count, limit) else {
            shared.metrics.connections_refused.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        };
        let (front, tls, shared) = (front.clone(), tls.clone(), shared.clone());
        shared.active.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let active = shared.active.clone();
            serve_conn(stream, peer, front, tls, shared).await;
            active.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
}

/// One of a front's connection slots, given back when dropped.
struct Slot(Arc<std::sync::atomic::AtomicUsize>);

impl Slot {
    fn take(count: &Arc<std::sync::atomic::AtomicUsize>, limit: usize) -> Option<Slot> {
        count
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Read a PROXY header from a trusted proxy's connection: the client it
/// names, and the bytes read past the header.
async fn read_proxy_header(stream: &mut TcpStream, limit: Duration) -> Result<(Option<SocketAddr>, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(256);
    let work = async {
        loop {
            match proxy_protocol::parse(&buf) {
                Ok(Parsed::Done(h, n)) => return Ok((h.source, buf[n..].to_vec())),
                Ok(Parsed::Incomplete) => {}
                Err(e) => return Err(e.to_string()),
            }
            let mut chunk = [0u8; 512];
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before the PROXY header ended".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| "no PROXY header in time".to_string())?
}

async fn serve_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    front: Arc<str>,
    tls: Option<Arc<Tls>>,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(sock) = std::os::fd::AsFd::as_fd(&stream).try_clone_to_owned() else {
        return; // out of descriptors: the connection closes
    };
    let (proxy_protocol, trusted, header_timeout, max_header) = {
        let g = shared.reader.load();
        let Some(f) = g.config().http.iter().find(|f| *f.name == *front) else {
            return;
        };
        (
            f.proxy_protocol,
            f.trusted_proxies.contains(peer.ip()),
            Duration::from_secs(f.header_timeout_secs),
            f.max_header_kb * 1024,
        )
    };
    let mut client = peer.ip().to_canonical();
    let mut pre = Vec::new();
    if proxy_protocol && trusted {
        match read_proxy_header(&mut stream, header_timeout).await {
            Ok((src, rest)) => {
                if let Some(s) = src {
                    client = s.ip().to_canonical();
                }
                pre = rest;
            }
            Err(e) => {
                shared.metrics.proxy_header_errors.fetch_add(1, Relaxed);
                tracing::debug!(%peer, error = %e, "connection dropped");
                return;
            }
        }
    }
    let info = Arc::new(ConnInfo {
        front,
        peer,
        client,
        trusted,
        sock,
        inflight: Default::default(),
        last_done_ms: Default::default(),
        t0: std::time::Instant::now(),
        sampled: Default::default(),
    });
    let io = rewind::Rewind::new(pre, stream);
    match tls {
        None => {
            if let Some(io) = first_bytes(io, header_timeout).await {
                serve_http(io, info, shared, header_timeout, max_header).await;
            }
        }
        Some(t) => match tokio::time::timeout(header_timeout, t.acceptor.accept(io)).await {
            Ok(Ok(s)) => {
                if let Some(io) = first_bytes(s, header_timeout).await {
                    serve_http(io, info, shared, header_timeout, max_header).await;
                }
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

/// HTTP/2's connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Read the first bytes of a connection within the header timeout: enough
/// to tell HTTP/2's preface from HTTP/1.1 (hyper's own detection waits
/// without a limit). The stream with those bytes given back, and whether it
/// is HTTP/2; None: the client sent nothing in time, or closed.
async fn first_bytes<S>(mut io: S, limit: Duration) -> Option<(rewind::Rewind<S>, bool)>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(64);
    let work = async {
        while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&buf) {
            let mut chunk = [0u8; 1024];
            let n = io.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(limit, work).await.ok()??;
    let h2 = buf.starts_with(H2_PREFACE);
    Some((rewind::Rewind::new(buf, io), h2))
}

/// A hyper connection that can be asked to finish gracefully.
trait Graceful: std::future::Future {
    fn shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Body>,
{
    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Body>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

async fn serve_http<I>(
    (io, h2): (I, bool),
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    header_timeout: Duration,
    max_header: usize,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stop = shared.stop.clone();
    let conn_info = info.clone();
    let svc = hyper::service::service_fn(move |req| {
        let (info, shared) = (info.clone(), shared.clone());
        async move {
            info.inflight.fetch_add(1, Relaxed);
            let r = handler::handle(req, info.clone(), shared).await;
            info.last_done_ms.store(info.t0.elapsed().as_millis() as u64, Relaxed);
            info.inflight.fetch_sub(1, Relaxed);
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    // The version is known from the first bytes: hyper's own builders,
    // without the auto builder's detection layer on every read.
    let io = TokioIo::new(io);
    if h2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(max_header as u32)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .serve_connection(io, svc);
        drive(conn, &conn_info, stop, header_timeout).await;
    } else {
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(max_header.max(8192))
            .serve_connection(io, svc);
        drive(conn, &conn_info, stop, header_timeout).await;
    }
}

/// Serve a connection until it ends, shutdown begins, or it idles.
async fn drive<C: Graceful>(
    conn: C,
    conn_info: &ConnInfo,
    stop: tokio::sync::watch::Receiver<bool>,
    header_timeout: Duration,
) {
    tokio::pin!(conn);
    // Idle for the header timeout: closed gracefully (petrel_http::conn).
    let idle = async {
        let mut tick = tokio::time::interval(Duration::from_millis(500).min(header_timeout));
        loop {
            tick.tick().await;
            let now = conn_info.t0.elapsed().as_millis() as u64;
            let last = conn_info.last_done_ms.load(Relaxed);
            if petrel_http::conn::idle_expired(
                conn_info.inflight.load(Relaxed),
                now,
                last,
                header_timeout.as_millis() as u64,
            ) {
                return;
            }
        }
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(stop) => {
            conn.as_mut().shutdown();
            let _ = conn.await;
        }
        _ = idle => {
            // A response still streaming (its head was sent, so it is no
            // longer counted) finishes first.
            conn.as_mut().shutdown();
            let _ = conn.await;
        }
    }
}
