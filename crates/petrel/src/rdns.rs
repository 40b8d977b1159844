//! Reverse DNS of clients, for the warehouse's rows (`measure.reverse_dns`):
//! asynchronous, cached, bounded. Ingest never waits for it: a client seen
//! for the first time is stored without a name and looked up in the
//! background; its later samples carry the name from the cache.
//!
//! Queries go to the one recursive resolver the config names, over UDP
//! (a truncated reply counts as no name: PTR answers fit).

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Names cached at most.
const MAX: usize = 200_000;
/// Lookups waiting at most; past it, a client is simply not looked up now.
const QUEUE: usize = 4096;
/// Lookups in flight at once.
const IN_FLIGHT: usize = 32;
const TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds of how long an answer is kept, whatever its TTL says.
const MIN_KEEP_MS: u64 = 60_000;
const MAX_KEEP_MS: u64 = 86_400_000;
/// How long "no name" (NXDOMAIN, no PTR, a failure) is kept.
const NEGATIVE_MS: u64 = 600_000;

enum Entry {
    Pending,
    Known { name: Option<Arc<str>>, until_ms: u64 },
}

#[derive(Default)]
struct Cache {
    map: HashMap<IpAddr, Entry>,
    /// Insertion order, for eviction at `MAX`.
    order: VecDeque<IpAddr>,
}

impl Cache {
    fn insert(&mut self, ip: IpAddr, e: Entry) {
        if self.map.insert(ip, e).is_none() {
            self.order.push_back(ip);
            while self.map.len() > MAX {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }
}

pub struct Rdns {
    cache: Mutex<Cache>,
    queue: tokio::sync::mpsc::Sender<IpAddr>,
    pub looked_up: AtomicU64,
    pub named: AtomicU64,
    pub dropped: AtomicU64,
}

impl Rdns {
    /// Start the lookups on `rt`, asking `server`.
    pub fn start(server: SocketAddr, rt: &tokio::runtime::Handle) -> Arc<Rdns> {
        let (queue, rx) = tokio::sync::mpsc::channel(QUEUE);
        let r = Arc::new(Rdns {
            cache: Mutex::default(),
            queue,
            looked_up: AtomicU64::new(0),
            named: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        rt.spawn(lookups(r.clone(), server, rx));
        r
    }

    /// The name of `ip` if known now; otherwise None, and a lookup is
    /// started unless one is under way.
    pub fn get(&self, ip: IpAddr, now_ms: u64) -> Option<Arc<str>> {
        let ip = ip.to_canonical();
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match c.map.get(&ip) {
            Some(Entry::Known { name, until_ms }) if *until_ms > now_ms => return name.clone(),
            Some(Entry::Pending) => return None,
            _ => {}
        }
        if self.queue.try_send(ip).is_ok() {
            c.insert(ip, Entry::Pending);
        } else {
            self.dropped.fetch_add(1, Relaxed);
        }
        None
    }

    fn learn(&self, ip: IpAddr, name: Option<Arc<str>>, keep_ms: u64) {
        let until_ms = crate::measure::unix_ms() + keep_ms;
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Replaces the pending entry (already in the eviction order).
        match c.map.get_mut(&ip) {
            Some(e) => *e = Entry::Known { name, until_ms },
            None => c.insert(ip, Entry::Known { name, until_ms }),
        }
    }
}

async fn lookups(r: Arc<Rdns>, server: SocketAddr, mut rx: tokio::sync::mpsc::Receiver<IpAddr>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut id: u16 = (crate::measure::unix_ms() & 0xffff) as u16;
    while let Some(ip) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        id = id.wrapping_add(0x9e37);
        let r = r.clone();
        tokio::spawn(async move {
            r.looked_up.fetch_add(1, Relaxed);
            let (name, keep_ms) = match tokio::time::timeout(TIMEOUT, lookup(server, ip, id)).await {
                Ok(Ok(Some((name, ttl)))) => {
                    r.named.fetch_add(1, Relaxed);
                    let keep = (u64::from(ttl) * 1000).clamp(MIN_KEEP_MS, MAX_KEEP_MS);
                    (Some(Arc::<str>::from(name)), keep)
                }
                _ => (None, NEGATIVE_MS),
            };
            r.learn(ip, name, keep_ms);
            drop(permit);
        });
    }
}

/// The PTR query for `ip`, with `id`.
pub fn query(ip: IpAddr, id: u16) -> Result<Vec<u8>, String> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from(ip), RecordType::PTR));
    m.to_vec().map_err(|e| e.to_string())
}

/// The first PTR name of a reply to `id` and its TTL; None when the reply
/// says there is none.
pub fn parse_reply(pkt: &[u8], id: u16) -> Result<Option<(String, u32)>, String> {
    let m = Message::from_vec(pkt).map_err(|e| e.to_string())?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return Err("not the reply to our query".into());
    }
    if m.metadata.response_code != ResponseCode::NoError {
        return Ok(None);
    }
    Ok(m.answers.iter().find_map(|rec| match &rec.data {
        RData::PTR(p) => Some((p.0.to_ascii().trim_end_matches('.').to_string(), rec.ttl)),
        _ => None,
    }))
}

async fn lookup(server: SocketAddr, ip: IpAddr, id: u16) -> Result<Option<(String, u32)>, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(&query(ip, id)?).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    // Anything that is not our reply (late, spoofed) is skipped.
    loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        if let Ok(r) = parse_reply(&buf[..n], id) {
            return Ok(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::PTR;
    use hickory_proto::rr::Record;

    #[test]
    fn queries_name_the_reverse_zone_and_replies_give_the_name() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let q = Message::from_vec(&query(ip, 7).unwrap()).unwrap();
        assert_eq!(q.queries[0].name().to_ascii(), "7.2.0.192.in-addr.arpa.");
        assert_eq!(q.queries[0].query_type(), RecordType::PTR);
        let mut reply = Message::new(7, MessageType::Response, OpCode::Query);
        reply.add_query(Query::query(Name::from(ip), RecordType::PTR));
        reply.answers.push(Record::from_rdata(
            Name::from(ip),
            300,
            RData::PTR(PTR("host-7.isp.example.".parse().unwrap())),
        ));
        let bytes = reply.to_vec().unwrap();
        assert_eq!(
            parse_reply(&bytes, 7).unwrap(),
            Some(("host-7.isp.example".to_string(), 300))
        );
        assert!(parse_reply(&bytes, 8).is_err(), "another query's reply");
        let mut nx = Message::new(9, MessageType::Response, OpCode::Query);
        nx.metadata.response_code = ResponseCode::NXDomain;
        assert_eq!(parse_reply(&nx.to_vec().unwrap(), 9).unwrap(), None);
        assert!(parse_reply(b"\x00\x07junk", 7).is_err());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let q = Message::from_vec(&query(v6, 1).unwrap()).unwrap();
        assert!(q.queries[0].name().to_ascii().ends_with(".8.b.d.0.1.0.0.2.ip6.arpa."));
    }
}
