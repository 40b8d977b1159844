//! DNS over UDP: one OS thread per socket, `SO_REUSEPORT` sockets, batched
//! `recvmmsg`/`sendmmsg`, buffers allocated once per worker. No async, no
//! task per datagram, no lock: each batch loads the generation once.
//!
//! A socket bound to a wildcard address (0.0.0.0, ::) asks the kernel for
//! each query's destination address (IP_PKTINFO / IPV6_RECVPKTINFO) and sends
//! the reply from it, so clients of a multi-homed host see the address they
//! asked.

use crate::metrics::{CountersCache, DnsMetrics};
use petrel_director::Reader;
use petrel_dns_auth::{answer, rrl, AnswerInfo, Client};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

// As gdnsd found, more than 16 per batch buys little and adds latency.
const BATCH: usize = 16;
const BUF: usize = 4096;
/// Receive queue per socket, in bytes (the kernel doubles it for overhead).
const RCVBUF: i32 = 8 << 20;

pub fn bind(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    // Never set DF nor track path MTU for replies: a forged ICMP "too big"
    // must not shrink our answers into fragments, and skipping PMTU work
    // makes each send cheaper (gdnsd and Knot do the same). Replies stay
    // within max_udp_payload (1232 by default), which fits the IPv6 minimum.
    let fd = s.as_raw_fd();
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        setsockopt_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_OMIT,
        )?;
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_OMIT)?;
    }
    if addr.ip().is_unspecified() {
        if addr.is_ipv6() {
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        } else {
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        }
    }
    // Absorb bursts while a worker is busy: a flood fills the queue, and a
    // short queue then drops legitimate queries with the flood's. Past the
    // host's rmem_max only a privileged process gets this much
    // (SO_RCVBUFFORCE); others get rmem_max.
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
        let _ = s.set_recv_buffer_size(RCVBUF as usize);
    }
    s.bind(&addr.into())?;
    Ok(s)
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a plain int option on a socket we own.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Start `n` workers on `addr`, each with its own socket.
pub fn spawn(
    reader: Reader,
    metrics: Arc<DnsMetrics>,
    addr: SocketAddr,
    n: usize,
    measure: Arc<crate::measure::Measurements>,
    rrl: Arc<rrl::Table>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..n {
        let sock = bind(addr)?;
        let (reader, metrics, measure, rrl) = (reader.clone(), metrics.clone(), measure.clone(), rrl.clone());
        let pktinfo = addr.ip().is_unspecified();
        handles.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || {
                    worker(
                        sock,
                        reader,
                        metrics,
                        pktinfo,
                        &measure,
                        Limiter {
                            table: &rrl,
                            started,
                            slip: 0,
                        },
                    )
                })?,
        );
    }
    Ok(handles)
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::from((a.sin6_addr.s6_addr, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

// Room for one in6_pktinfo control message (larger than IPv4's).
const CMSG: usize = 64;

/// Clear the interface index of a received PKTINFO so the reply is routed
/// normally, from the destination address the query was sent to.
fn pktinfo_fixup(hdr: &mut libc::msghdr) {
    // SAFETY: walking control messages the kernel wrote into our buffer,
    // with the length it reported.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let pi = libc::CMSG_DATA(c).cast::<libc::in_pktinfo>();
                    (*pi).ipi_ifindex = 0;
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let pi = libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>();
                    // Link-local destinations need their interface.
                    let a = (*pi).ipi6_addr.s6_addr;
                    if !(a[0] == 0xfe && a[1] & 0xc0 == 0x80) {
                        (*pi).ipi6_ifindex = 0;
                    }
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
}

/// A worker's view of response rate limiting.
struct Limiter<'a> {
    table: &'a rrl::Table,
    /// Seconds are counted from here.
    started: std::time::Instant,
    /// This worker's count of limited responses (for `slip`).
    slip: u32,
}

fn worker(
    sock: Socket,
    reader: Reader,
    metrics: Arc<DnsMetrics>,
    pktinfo: bool,
    measure: &crate::measure::Measurements,
    mut limiter: Limiter<'_>,
) {
    let fd = sock.as_raw_fd();
    let mut inbuf = vec![0u8; BATCH * BUF];
    let mut outbuf = vec![0u8; BATCH * BUF];
    // u64 elements keep the control buffers aligned for cmsghdr.
    let mut control = vec![0u64; BATCH * CMSG / 8];
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    let mut iov_in: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut iov_out: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut msgs_in: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut msgs_out: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut info = AnswerInfo::default();
    let cookie_secret = crate::dns_cookie::process_secret();
    let mut tap = metrics.dnstap.get().map(|h| h.tap());
    let local = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .filter(|a| !a.ip().is_unspecified());
    let mut counters = CountersCache::new(&metrics, &reader.load());
    let mut entropy: u64 = 0x853c_49e6_748f_ea9b ^ (fd as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for i in 0..BATCH {
        iov_in[i] = libc::iovec {
            iov_base: inbuf[i * BUF..].as_mut_ptr().cast(),
            iov_len: BUF,
        };
        msgs_in[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        msgs_in[i].msg_hdr.msg_iov = &mut iov_in[i];
        msgs_in[i].msg_hdr.msg_iovlen = 1;
        if pktinfo {
            msgs_in[i].msg_hdr.msg_control = control[i * CMSG / 8..].as_mut_ptr().cast();
        }
    }
    // Entries the kernel wrote to in the last batch, whose lengths need reset.
    let mut used = BATCH;
    let mut errors = crate::quiet::Every::new(std::time::Duration::from_secs(10));
    loop {
        for m in msgs_in.iter_mut().take(used) {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_controllen = if pktinfo { CMSG } else { 0 };
            m.msg_len = 0;
        }
        // SAFETY: every mmsghdr points at live buffers owned by this frame.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs_in.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                if let Some(suppressed) = errors.hit(std::time::Instant::now()) {
                    tracing::warn!(error = %e, suppressed, "recvmmsg failed");
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            continue;
        }
        used = n as usize;
        let g = reader.load();
        let gc = counters.get(&metrics, &g);
        let rrl = g.config().server.rrl.as_ref();
        let now = crate::dns_cookie::unix_now();
        let at = if tap.is_some() {
            crate::dnstap_out::now()
        } else {
            (0, 0)
        };
        let now_s = if rrl.is_some() {
            limiter.started.elapsed().as_secs() as u32
        } else {
            0
        };
        let mut nout = 0usize;
        for i in 0..n as usize {
            let len = msgs_in[i].msg_len as usize;
            let Some(peer) = sockaddr_to_std(&names[i], msgs_in[i].msg_hdr.msg_namelen) else {
                continue;
            };
            entropy ^= entropy << 13;
            entropy ^= entropy >> 7;
            entropy ^= entropy << 17;
            let out = &mut outbuf[nout * BUF..(nout + 1) * BUF];
            let client = Client {
                addr: peer.ip(),
                tcp: false,
                now,
                cookie_secret,
            };
            let mut olen = answer(&g, &inbuf[i * BUF..i * BUF + len], &client, entropy, out, &mut info);
            if olen == 0 {
                metrics.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Some(conf) = rrl {
                match limiter
                    .table
                    .check(conf, peer.ip(), &out[..olen], now_s, info.cookie, &mut limiter.slip)
                {
                    rrl::Verdict::Send => {}
                    rrl::Verdict::Drop => olen = 0,
                    rrl::Verdict::Slip => olen = rrl::truncate(out, olen),
                }
            }
            if let Some(t) = &mut tap {
                t.record(at, (peer, local), false, &inbuf[i * BUF..i * BUF + len], &out[..olen]);
            }
            if olen == 0 {
                continue;
            }
            DnsMetrics::record(gc, &info);
            if let Some(w) = &info.whoami {
                measure.whoami_asked(w, peer.ip());
            }
            iov_out[nout] = libc::iovec {
                iov_base: out.as_mut_ptr().cast(),
                iov_len: olen,
            };
            msgs_out[nout].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            msgs_out[nout].msg_hdr.msg_namelen = msgs_in[i].msg_hdr.msg_namelen;
            msgs_out[nout].msg_hdr.msg_iov = &mut iov_out[nout];
            msgs_out[nout].msg_hdr.msg_iovlen = 1;
            if pktinfo {
                pktinfo_fixup(&mut msgs_in[i].msg_hdr);
                msgs_out[nout].msg_hdr.msg_control = msgs_in[i].msg_hdr.msg_control;
                msgs_out[nout].msg_hdr.msg_controllen = msgs_in[i].msg_hdr.msg_controllen;
            } else {
                msgs_out[nout].msg_hdr.msg_control = std::ptr::null_mut();
                msgs_out[nout].msg_hdr.msg_controllen = 0;
            }
            nout += 1;
        }
        drop(g);
        if let Some(t) = &mut tap {
            t.flush();
        }
        let mut sent = 0usize;
        while sent < nout {
            // SAFETY: as above; only the first `nout` entries were filled.
            let r = unsafe { libc::sendmmsg(fd, msgs_out[sent..].as_mut_ptr(), (nout - sent) as u32, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // A reply that cannot be sent (e.g. unreachable peer) is
                // skipped; the rest of the batch still goes out.
                sent += 1;
                continue;
            }
            sent += r as usize;
        }
    }
}
