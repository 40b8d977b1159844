//! DNS over TCP (RFC 7766): two-octet length framing, pipelined queries
//! answered in order, an idle timeout and a connection limit.

use crate::metrics::{CountersCache, DnsMetrics};
use petrel_director::Reader;
use petrel_dns_auth::{answer, AnswerInfo, Client};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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

pub async fn serve(reader: Reader, metrics: Arc<DnsMetrics>, listener: TcpListener, idle: Duration, max_conns: usize) {
    let slots = Arc::new(Semaphore::new(max_conns));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.tcp_rejected.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        metrics.tcp_accepted.fetch_add(1, Ordering::Relaxed);
        let (reader, metrics) = (reader.clone(), metrics.clone());
        tokio::spawn(async move {
            connection(reader, metrics, stream, peer.ip(), idle).await;
            drop(permit);
        });
    }
}

async fn connection(
    reader: Reader,
    metrics: Arc<DnsMetrics>,
    stream: TcpStream,
    peer: std::net::IpAddr,
    idle: Duration,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut wr = BufWriter::new(wr);
    let mut inbuf = vec![0u8; 65535];
    let mut outbuf = vec![0u8; 65537];
    let mut info = AnswerInfo::default();
    let client = Client { addr: peer, tcp: true };
    let mut counters = CountersCache::new(&metrics, &reader.load());
    loop {
        // Flush what is answered before waiting: pipelined queries already
        // in the buffer are answered first and go out together.
        if rd.buffer().is_empty() && wr.flush().await.is_err() {
            return;
        }
        let mut lenb = [0u8; 2];
        match timeout(idle, rd.read_exact(&mut lenb)).await {
            Err(_) => {
                metrics.tcp_idle_closed.fetch_add(1, Ordering::Relaxed);
                let _ = wr.flush().await;
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let len = u16::from_be_bytes(lenb) as usize;
        if len == 0 {
            return;
        }
        match timeout(idle, rd.read_exact(&mut inbuf[..len])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let n = {
            let g = reader.load();
            let n = answer(&g, &inbuf[..len], &client, len as u64, &mut outbuf[2..], &mut info);
            if n > 0 {
                DnsMetrics::record(counters.get(&metrics, &g), &info);
            }
            n
        };
        if n == 0 {
            metrics.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        outbuf[..2].copy_from_slice(&(n as u16).to_be_bytes());
        if wr.write_all(&outbuf[..n + 2]).await.is_err() {
            return;
        }
    }
}
