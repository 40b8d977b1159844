//! DNS over TCP (RFC 7766): two-octet length framing, pipelined queries
//! answered in order, and bounds on everything a client can hold:
//! - one limit on open connections across every listener; at the limit the
//!   connection idle longest is closed to make room (§6.2.3), and only when
//!   none is idle is the new one refused;
//! - a limit per client address (per /64 for IPv6, which a single client
//!   usually holds whole);
//! - an idle timeout while waiting for a query, and the same bound on every
//!   write, so that a client that pipelines queries and never reads its
//!   answers loses its connection instead of holding a slot for ever;
//! - failing accepts (no descriptor left) back off and are logged in
//!   aggregate.

use crate::metrics::{CountersCache, DnsMetrics};
use crate::quiet;
use petrel_director::Reader;
use petrel_dns_auth::{answer, AnswerInfo, Client};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::timeout;

/// A listening socket: IPv6 sockets are IPv6-only so that `[::]` and
/// `0.0.0.0` can both be configured on one port.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max: usize,
    pub per_source: usize,
    pub idle: Duration,
}

/// Marks a connection that is reading or answering a query.
const BUSY: u64 = u64::MAX;

struct Conn {
    /// Milliseconds since `Conns::epoch` when it began waiting for a query;
    /// `BUSY` while it works.
    idle_since: AtomicU64,
    close: Notify,
}

struct Inner {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    per_source: HashMap<IpAddr, usize>,
}

/// The open connections of every DNS listener.
pub struct Conns {
    limits: Limits,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The client's address holds `per_source` connections already.
    Source,
    /// At the limit, and every connection is busy.
    Full,
}

/// Held by a connection's task; gives its place back when dropped.
struct Ticket {
    conns: Arc<Conns>,
    id: u64,
    source: IpAddr,
    conn: Arc<Conn>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = self.conns.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.open.remove(&self.id);
        if let Some(n) = g.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                g.per_source.remove(&self.source);
            }
        }
    }
}

/// Whom the per-source limit counts: an IPv4 address, or an IPv6 /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(a) & !((1u128 << 64) - 1))),
        },
    }
}

/// The connection to close for room: the one idle longest, if any is idle.
fn longest_idle<'a>(conns: impl Iterator<Item = (u64, &'a Conn)>) -> Option<u64> {
    conns
        .filter_map(|(id, c)| {
            let since = c.idle_since.load(Ordering::Relaxed);
            (since != BUSY).then_some((since, id))
        })
        .min()
        .map(|(_, id)| id)
}

impl Conns {
    pub fn new(limits: Limits) -> Arc<Conns> {
        Arc::new(Conns {
            limits,
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                next_id: 0,
                open: HashMap::new(),
                per_source: HashMap::new(),
            }),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Admit a connection from `peer`; the second value says an idle one
    /// was closed to make room.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<(Ticket, bool), Refusal> {
        let source = source_key(peer);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.per_source.get(&source).copied().unwrap_or(0) >= self.limits.per_source {
            return Err(Refusal::Source);
        }
        let mut evicted = false;
        if g.open.len() >= self.limits.max {
            let victim = longest_idle(g.open.iter().map(|(id, c)| (*id, &**c))).ok_or(Refusal::Full)?;
            // Out of the count at once; its task ends at its next await.
            if let Some(c) = g.open.remove(&victim) {
                c.close.notify_one();
                evicted = true;
            }
        }
        let id = g.next_id;
        g.next_id += 1;
        let conn = Arc::new(Conn {
            idle_since: AtomicU64::new(BUSY),
            close: Notify::new(),
        });
        g.open.insert(id, conn.clone());
        *g.per_source.entry(source).or_insert(0) += 1;
        Ok((
            Ticket {
                conns: self.clone(),
                id,
                source,
                conn,
            },
            evicted,
        ))
    }
}

pub async fn serve(
    reader: Reader,
    metrics: Arc<DnsMetrics>,
    listener: TcpListener,
    conns: Arc<Conns>,
    (measure, journal): (Arc<crate::measure::Measurements>, Arc<petrel_dns_auth::xfr::Journal>),
) {
    let mut backoff = quiet::AcceptBackoff::new("DNS TCP");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Usually no descriptor left: retrying at once would spin.
                metrics.tcp_accept_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff.failed(&e, Instant::now())).await;
                continue;
            }
        };
        backoff.accepted();
        let ticket = match conns.admit(peer.ip()) {
            Ok((t, evicted)) => {
                if evicted {
                    metrics.tcp_evicted.fetch_add(1, Ordering::Relaxed);
                }
                t
            }
            Err(r) => {
                let c = match r {
                    Refusal::Source => &metrics.tcp_source_limited,
                    Refusal::Full => &metrics.tcp_rejected,
                };
                c.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
        };
        metrics.tcp_accepted.fetch_add(1, Ordering::Relaxed);
        let (reader, metrics, measure, journal) = (reader.clone(), metrics.clone(), measure.clone(), journal.clone());
        let idle = conns.limits.idle;
        tokio::spawn(async move {
            let shared = (&*metrics, &*measure, &*journal);
            let end = serve_queries(reader, shared, stream, peer.ip(), idle, &ticket).await;
            drop(ticket);
            let c = match end {
                // Evictions are counted when they are decided.
                End::Closed | End::Evicted => return,
                End::Idle => &metrics.tcp_idle_closed,
                End::WriteTimeout => &metrics.tcp_write_timeouts,
            };
            c.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// Why a connection ended, for the counters.
enum End {
    Closed,
    Idle,
    WriteTimeout,
    Evicted,
}

async fn serve_queries(
    reader: Reader,
    (metrics, measure, journal): (
        &DnsMetrics,
        &crate::measure::Measurements,
        &petrel_dns_auth::xfr::Journal,
    ),
    stream: TcpStream,
    peer: IpAddr,
    idle: Duration,
    ticket: &Ticket,
) -> End {
    let _ = stream.set_nodelay(true);
    let ends = (
        stream.peer_addr().unwrap_or(SocketAddr::new(peer, 0)),
        stream.local_addr().ok(),
    );
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut wr = BufWriter::new(wr);
    let mut inbuf = vec![0u8; 65535];
    let mut outbuf = vec![0u8; 65537];
    let mut info = AnswerInfo::default();
    let mut client = Client {
        addr: peer,
        tcp: true,
        now: crate::dns_cookie::unix_now(),
        cookie_secret: crate::dns_cookie::process_secret(),
    };
    let mut counters = CountersCache::new(metrics, &reader.load());
    let conn = &ticket.conn;
    loop {
        // Flush what is answered before waiting: pipelined queries already
        // in the buffer are answered first and go out together.
        if rd.buffer().is_empty() {
            match timeout(idle, wr.flush()).await {
                Err(_) => return End::WriteTimeout,
                Ok(Err(_)) => return End::Closed,
                Ok(Ok(())) => {}
            }
            conn.idle_since.store(ticket.conns.now_ms(), Ordering::Relaxed);
        }
        let mut lenb = [0u8; 2];
        tokio::select! {
            _ = conn.close.notified() => return End::Evicted,
            r = timeout(idle, rd.read_exact(&mut lenb)) => match r {
                Err(_) => {
                    let _ = timeout(Duration::from_millis(100), wr.flush()).await;
                    return End::Idle;
                }
                Ok(Err(_)) => return End::Closed,
                Ok(Ok(_)) => {}
            },
        }
        conn.idle_since.store(BUSY, Ordering::Relaxed);
        let len = u16::from_be_bytes(lenb) as usize;
        if len == 0 {
            return End::Closed;
        }
        match timeout(idle, rd.read_exact(&mut inbuf[..len])).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return End::Closed,
            Err(_) => return End::Idle,
        }
        // Zone transfers: many messages, built off the answer path.
        let xfr = {
            let g = reader.load();
            let now = u64::from(crate::dns_cookie::unix_now());
            petrel_dns_auth::xfr::transfer(&g, journal, &inbuf[..len], peer, now)
        };
        if let Some(t) = xfr {
            tracing::info!(client = %ends.0, outcome = %t.outcome, records = t.records, messages = t.messages.len(), "zone transfer");
            for m in &t.messages {
                let head = (m.len() as u16).to_be_bytes();
                let w = async {
                    wr.write_all(&head).await?;
                    wr.write_all(m).await
                };
                match timeout(idle, w).await {
                    Err(_) => return End::WriteTimeout,
                    Ok(Err(_)) => return End::Closed,
                    Ok(Ok(())) => {}
                }
            }
            continue;
        }
        let n = {
            let g = reader.load();
            client.now = crate::dns_cookie::unix_now();
            let n = answer(&g, &inbuf[..len], &client, len as u64, &mut outbuf[2..], &mut info);
            if n > 0 {
                DnsMetrics::record(counters.get(metrics, &g), &info);
                if let Some(w) = &info.whoami {
                    measure.whoami_asked(w, peer);
                }
            }
            // Logged only when the shared tap is free: a TCP connection
            // never waits for another's logging.
            if let Some(t) = metrics.dnstap_tcp.get() {
                match t.try_lock() {
                    Ok(mut t) => {
                        t.record(crate::dnstap_out::now(), ends, true, &inbuf[..len], &outbuf[2..2 + n]);
                        t.flush();
                    }
                    Err(_) => {
                        if let Some(h) = metrics.dnstap.get() {
                            h.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            n
        };
        if n == 0 {
            metrics.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        outbuf[..2].copy_from_slice(&(n as u16).to_be_bytes());
        match timeout(idle, wr.write_all(&outbuf[..n + 2])).await {
            Err(_) => return End::WriteTimeout,
            Ok(Err(_)) => return End::Closed,
            Ok(Ok(())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(max: usize, per_source: usize) -> Arc<Conns> {
        Conns::new(Limits {
            max,
            per_source,
            idle: Duration::from_secs(1),
        })
    }

    #[test]
    fn per_source_limit_counts_v4_addresses_and_v6_slash_64s() {
        let c = conns(100, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let _t1 = c.admit(a).unwrap();
        let t2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).err(), Some(Refusal::Source));
        assert!(c.admit("192.0.2.2".parse().unwrap()).is_ok());
        drop(t2);
        assert!(c.admit(a).is_ok(), "a closed connection gives its place back");
        let _v = c.admit("2001:db8::1".parse().unwrap()).unwrap();
        let _w = c.admit("2001:db8::2".parse().unwrap()).unwrap();
        assert_eq!(
            c.admit("2001:db8::ffff:1".parse().unwrap()).err(),
            Some(Refusal::Source)
        );
        assert!(c.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        assert_eq!(source_key("::ffff:192.0.2.1".parse().unwrap()), a);
    }

    #[test]
    fn at_the_limit_the_longest_idle_connection_makes_room() {
        let c = conns(3, 10);
        let ip = |i: u8| IpAddr::from([192, 0, 2, i]);
        let (t1, _) = c.admit(ip(1)).unwrap();
        let (t2, _) = c.admit(ip(2)).unwrap();
        let (t3, _) = c.admit(ip(3)).unwrap();
        // All busy: nothing to evict, the newcomer is refused.
        assert_eq!(c.admit(ip(4)).err(), Some(Refusal::Full));
        t2.conn.idle_since.store(50, Ordering::Relaxed);
        t3.conn.idle_since.store(10, Ordering::Relaxed);
        let (t4, evicted) = c.admit(ip(4)).unwrap();
        assert!(evicted);
        // t3 was idle longest: it is told to close and no longer counted.
        let g = c.inner.lock().unwrap();
        assert!(!g.open.contains_key(&t3.id) && g.open.contains_key(&t2.id) && g.open.contains_key(&t1.id));
        assert_eq!(g.open.len(), 3);
        drop(g);
        let woke = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                timeout(Duration::from_millis(100), t3.conn.close.notified())
                    .await
                    .is_ok()
            });
        assert!(woke);
        drop((t1, t2, t3, t4));
        let g = c.inner.lock().unwrap();
        assert!(g.open.is_empty() && g.per_source.is_empty());
    }
}
