//! dnstap out: DNS threads hand their exchanges to one writer thread,
//! which encodes them (`petrel_dns_auth::dnstap`) and writes Frame Streams
//! to the collector over a Unix socket or TCP.
//!
//! Answering never waits for logging. Each DNS thread has its own pool of
//! entries, recycled: it takes a free one, fills it and queues it; the
//! writer empties it and gives it back. No free entry (the writer is
//! behind, or the collector is down) means the exchange is not logged,
//! and counted. The writer polls every few milliseconds, so a DNS thread
//! never pays for waking it.

use petrel_config::{DnstapConf, DnstapSink};
use petrel_dns_auth::dnstap::{self, Control, Event, Kind};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One exchange, as a DNS thread saw it.
pub struct Entry {
    /// Seconds and nanoseconds since the epoch.
    pub at: (u64, u32),
    pub client: SocketAddr,
    pub server: Option<SocketAddr>,
    pub tcp: bool,
    pub query: Vec<u8>,
    pub response: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// DNS messages written to the collector.
    pub sent: AtomicU64,
    /// Exchanges not logged: the thread's queue was full.
    pub dropped: AtomicU64,
    /// Exchanges lost: no collector connected, or a write failed.
    pub lost: AtomicU64,
}

/// A DNS thread's end.
pub struct Tap {
    free: Receiver<Box<Entry>>,
    full: SyncSender<Box<Entry>>,
    sample: u32,
    seen: u32,
    stats: Arc<Stats>,
}

impl Tap {
    /// Log one exchange (if it is sampled and there is room). `response`
    /// is empty when there was none.
    pub fn record(
        &mut self,
        at: (u64, u32),
        (client, server): (SocketAddr, Option<SocketAddr>),
        tcp: bool,
        query: &[u8],
        response: &[u8],
    ) {
        self.seen = self.seen.wrapping_add(1);
        if self.sample > 1 && !self.seen.is_multiple_of(self.sample) {
            return;
        }
        let Ok(mut e) = self.free.try_recv() else {
            self.stats.dropped.fetch_add(1, Relaxed);
            return;
        };
        e.at = at;
        e.client = client;
        e.server = server;
        e.tcp = tcp;
        e.query.clear();
        e.query.extend_from_slice(query);
        e.response.clear();
        e.response.extend_from_slice(response);
        if self.full.try_send(e).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// The writer's side of one tap.
struct Queues {
    full: Receiver<Box<Entry>>,
    free: SyncSender<Box<Entry>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("sample", &self.sample)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("sink", &self.conf.sink)
            .finish_non_exhaustive()
    }
}

/// Where DNS threads get their taps.
pub struct Hub {
    conf: DnstapConf,
    register: Mutex<SyncSender<Queues>>,
    pub stats: Arc<Stats>,
}

/// Room for a typical exchange, so that entries rarely grow.
const ENTRY_BYTES: usize = 512;
/// How often the writer takes what waits.
const POLL: Duration = Duration::from_millis(5);

impl Hub {
    /// Start the writer for `conf`.
    pub fn start(conf: DnstapConf) -> std::io::Result<Arc<Hub>> {
        let (tx, rx) = sync_channel(1024);
        let hub = Arc::new(Hub {
            conf: conf.clone(),
            register: Mutex::new(tx),
            stats: Arc::default(),
        });
        let stats = hub.stats.clone();
        std::thread::Builder::new()
            .name("dnstap".into())
            .spawn(move || writer(conf, rx, &stats))?;
        Ok(hub)
    }

    /// A new tap, with its own pool of `queue` entries.
    pub fn tap(&self) -> Tap {
        let n = self.conf.queue;
        let (full_tx, full_rx) = sync_channel(n);
        let (free_tx, free_rx) = sync_channel(n);
        for _ in 0..n {
            let _ = free_tx.try_send(Box::new(Entry {
                at: (0, 0),
                client: SocketAddr::from(([0, 0, 0, 0], 0)),
                server: None,
                tcp: false,
                query: Vec::with_capacity(ENTRY_BYTES),
                response: Vec::with_capacity(ENTRY_BYTES),
            }));
        }
        let _ = self.register.lock().unwrap_or_else(|e| e.into_inner()).send(Queues {
            full: full_rx,
            free: free_tx,
        });
        Tap {
            free: free_rx,
            full: full_tx,
            sample: self.conf.sample,
            seen: 0,
            stats: self.stats.clone(),
        }
    }
}

/// Seconds and nanoseconds since the epoch, now.
pub fn now() -> (u64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Connect and shake hands (READY, ACCEPT, START).
fn connect(sink: &DnstapSink) -> Result<Box<dyn Conn>, String> {
    let mut c: Box<dyn Conn> = match sink {
        DnstapSink::Unix(p) => {
            let s = std::os::unix::net::UnixStream::connect(p).map_err(|e| format!("{}: {e}", p.display()))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            Box::new(s)
        }
        DnstapSink::Tcp(a) => {
            let s = std::net::TcpStream::connect_timeout(a, Duration::from_secs(5)).map_err(|e| format!("{a}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            Box::new(s)
        }
    };
    let mut b = Vec::new();
    dnstap::control(Control::Ready, &mut b);
    c.write_all(&b).map_err(|e| format!("READY: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match dnstap::parse_control(&got)? {
            Some((Control::Accept, true, _)) => break,
            Some((Control::Accept, false, _)) => return Err("the collector does not accept dnstap".into()),
            Some((c, _, _)) => return Err(format!("{c:?} where ACCEPT was expected")),
            None => {}
        }
        let n = c.read(&mut buf).map_err(|e| format!("waiting for ACCEPT: {e}"))?;
        if n == 0 {
            return Err("the collector closed the connection before ACCEPT".into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    b.clear();
    dnstap::control(Control::Start, &mut b);
    c.write_all(&b).map_err(|e| format!("START: {e}"))?;
    Ok(c)
}

fn writer(conf: DnstapConf, register: Receiver<Queues>, stats: &Stats) {
    let mut queues: Vec<Queues> = Vec::new();
    let mut conn: Option<Box<dyn Conn>> = None;
    let mut retry_at = std::time::Instant::now();
    let mut backoff = Duration::from_secs(1);
    let (mut out, mut scratch) = (Vec::with_capacity(1 << 16), Vec::new());
    let version = concat!("petrel ", env!("CARGO_PKG_VERSION")).as_bytes();
    let identity = conf.identity.as_bytes();
    loop {
        std::thread::sleep(POLL);
        loop {
            match register.try_recv() {
                Ok(q) => queues.push(q),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if conn.is_none() && std::time::Instant::now() >= retry_at {
            match connect(&conf.sink) {
                Ok(c) => {
                    tracing::info!(sink = ?conf.sink, "dnstap collector connected");
                    conn = Some(c);
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(sink = ?conf.sink, error = %e, retry_secs = backoff.as_secs(), "dnstap collector not reachable");
                    retry_at = std::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        out.clear();
        let mut messages = 0u64;
        let mut exchanges = 0u64;
        for q in &queues {
            while let Ok(e) = q.full.try_recv() {
                exchanges += 1;
                if conn.is_some() {
                    if conf.log_queries {
                        let ev = Event {
                            kind: Kind::AuthQuery,
                            tcp: e.tcp,
                            client: e.client,
                            server: e.server,
                            query_time: e.at,
                            response_time: None,
                            query: &e.query,
                            response: &[],
                        };
                        dnstap::frame(identity, version, &ev, &mut scratch, &mut out);
                        messages += 1;
                    }
                    if conf.log_responses && !e.response.is_empty() {
                        let ev = Event {
                            kind: Kind::AuthResponse,
                            tcp: e.tcp,
                            client: e.client,
                            server: e.server,
                            query_time: e.at,
                            response_time: Some(e.at),
                            query: &e.query,
                            response: &e.response,
                        };
                        dnstap::frame(identity, version, &ev, &mut scratch, &mut out);
                        messages += 1;
                    }
                }
                let _ = q.free.try_send(e);
            }
        }
        let Some(c) = conn.as_mut() else {
            stats.lost.fetch_add(exchanges, Relaxed);
            continue;
        };
        if out.is_empty() {
            continue;
        }
        match c.write_all(&out).and_then(|()| c.flush()) {
            Ok(()) => {
                stats.sent.fetch_add(messages, Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "dnstap write failed; reconnecting");
                stats.lost.fetch_add(exchanges, Relaxed);
                conn = None;
            }
        }
    }
}
