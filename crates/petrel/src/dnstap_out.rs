//! dnstap out: DNS threads encode their exchanges
//! (`petrel_dns_auth::dnstap`) into batches and hand them to one writer
//! thread, which writes Frame Streams to the collector over a Unix socket
//! or TCP.
//!
//! Answering never waits for logging. Each DNS thread has its own pool of
//! batch buffers, recycled: it fills one and queues it (after each receive
//! batch); the writer writes it out and gives it back. No free buffer (the
//! writer is behind) means the exchange is not logged, and counted; while
//! no collector is connected nothing is encoded. The writer polls every
//! few milliseconds, so a DNS thread never pays for waking it.

use petrel_config::{DnstapConf, DnstapSink};
use petrel_dns_auth::dnstap::{self, Control, Event, Kind};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Frames a DNS thread encoded, on their way to the writer.
pub struct Batch {
    buf: Vec<u8>,
    exchanges: u64,
    messages: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// DNS messages written to the collector.
    pub sent: AtomicU64,
    /// Exchanges not logged: the thread's queue was full.
    pub dropped: AtomicU64,
    /// Exchanges lost: no collector connected, or a write failed.
    pub lost: AtomicU64,
    /// Whether a collector is connected now (nothing is encoded while
    /// none is).
    pub connected: std::sync::atomic::AtomicBool,
}

/// What every tap writes the same way.
#[derive(Clone)]
struct Shape {
    identity: Arc<[u8]>,
    log_queries: bool,
    log_responses: bool,
    sample: u32,
}

/// A DNS thread's end: it encodes its exchanges into a batch, and hands
/// the batch over at [`Tap::flush`] (a UDP thread after each receive
/// batch).
pub struct Tap {
    free: Receiver<Box<Batch>>,
    full: SyncSender<Box<Batch>>,
    current: Option<Box<Batch>>,
    shape: Shape,
    seen: u32,
    stats: Arc<Stats>,
}

/// A batch is handed over once it holds this much, flush or not.
const BATCH_BYTES: usize = 48 << 10;
const VERSION: &[u8] = concat!("petrel ", env!("CARGO_PKG_VERSION")).as_bytes();

impl Tap {
    /// Log one exchange (if it is sampled and there is room), at `at`
    /// (seconds and nanoseconds since the epoch). `response` is empty
    /// when there was none.
    pub fn record(
        &mut self,
        at: (u64, u32),
        (client, server): (SocketAddr, Option<SocketAddr>),
        tcp: bool,
        query: &[u8],
        response: &[u8],
    ) {
        self.seen = self.seen.wrapping_add(1);
        if self.shape.sample > 1 && !self.seen.is_multiple_of(self.shape.sample) {
            return;
        }
        if !self.stats.connected.load(Relaxed) {
            self.stats.lost.fetch_add(1, Relaxed);
            return;
        }
        if self.current.is_none() {
            self.current = self.free.try_recv().ok();
        }
        let Some(b) = self.current.as_mut() else {
            self.stats.dropped.fetch_add(1, Relaxed);
            return;
        };
        let mut ev = Event {
            kind: Kind::AuthQuery,
            tcp,
            client,
            server,
            query_time: at,
            response_time: None,
            query,
            response: &[],
        };
        if self.shape.log_queries {
            dnstap::frame(&self.shape.identity, VERSION, &ev, &mut b.buf);
            b.messages += 1;
        }
        if self.shape.log_responses && !response.is_empty() {
            ev.kind = Kind::AuthResponse;
            ev.response_time = Some(at);
            ev.response = response;
            // The query is in its own message already (as Knot logs it);
            // a response carries it only when queries are not logged.
            if self.shape.log_queries {
                ev.query = &[];
            }
            dnstap::frame(&self.shape.identity, VERSION, &ev, &mut b.buf);
            b.messages += 1;
        }
        b.exchanges += 1;
        if b.buf.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Hand what is encoded to the writer.
    pub fn flush(&mut self) {
        let Some(b) = self.current.take() else { return };
        if b.exchanges == 0 {
            self.current = Some(b);
            return;
        }
        if let Err(e) = self.full.try_send(b) {
            let mut b = match e {
                std::sync::mpsc::TrySendError::Full(b) | std::sync::mpsc::TrySendError::Disconnected(b) => b,
            };
            self.stats.dropped.fetch_add(b.exchanges, Relaxed);
            b.buf.clear();
            (b.exchanges, b.messages) = (0, 0);
            self.current = Some(b);
        }
    }
}

/// The writer's side of one tap.
struct Queues {
    full: Receiver<Box<Batch>>,
    free: SyncSender<Box<Batch>>,
}

/// Where DNS threads get their taps.
pub struct Hub {
    conf: DnstapConf,
    shape: Shape,
    register: Mutex<SyncSender<Queues>>,
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("sample", &self.shape.sample)
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

/// How often the writer takes what waits.
const POLL: Duration = Duration::from_millis(5);

impl Hub {
    /// Start the writer for `conf`.
    pub fn start(conf: DnstapConf) -> std::io::Result<Arc<Hub>> {
        let (tx, rx) = sync_channel(1024);
        let hub = Arc::new(Hub {
            shape: Shape {
                identity: conf.identity.as_bytes().into(),
                log_queries: conf.log_queries,
                log_responses: conf.log_responses,
                sample: conf.sample,
            },
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

    /// A new tap, with its own pool: room for `queue` exchanges of a few
    /// hundred bytes, in batches.
    pub fn tap(&self) -> Tap {
        let batches = (self.conf.queue * 600).div_ceil(BATCH_BYTES).max(4);
        let (full_tx, full_rx) = sync_channel(batches);
        let (free_tx, free_rx) = sync_channel(batches);
        for _ in 0..batches {
            let _ = free_tx.try_send(Box::new(Batch {
                buf: Vec::with_capacity(BATCH_BYTES + 4096),
                exchanges: 0,
                messages: 0,
            }));
        }
        let _ = self.register.lock().unwrap_or_else(|e| e.into_inner()).send(Queues {
            full: full_rx,
            free: free_tx,
        });
        Tap {
            free: free_rx,
            full: full_tx,
            current: None,
            shape: self.shape.clone(),
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
                    stats.connected.store(true, Relaxed);
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(sink = ?conf.sink, error = %e, retry_secs = backoff.as_secs(), "dnstap collector not reachable");
                    retry_at = std::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        for q in &queues {
            while let Ok(mut b) = q.full.try_recv() {
                match conn.as_mut().map(|c| c.write_all(&b.buf)) {
                    Some(Ok(())) => {
                        stats.sent.fetch_add(b.messages, Relaxed);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "dnstap write failed; reconnecting");
                        stats.lost.fetch_add(b.exchanges, Relaxed);
                        stats.connected.store(false, Relaxed);
                        conn = None;
                    }
                    None => {
                        stats.lost.fetch_add(b.exchanges, Relaxed);
                    }
                }
                b.buf.clear();
                (b.exchanges, b.messages) = (0, 0);
                let _ = q.free.try_send(b);
            }
        }
        if let Some(c) = conn.as_mut() {
            if let Err(e) = c.flush() {
                tracing::warn!(error = %e, "dnstap write failed; reconnecting");
                stats.connected.store(false, Relaxed);
                conn = None;
            }
        }
    }
}
