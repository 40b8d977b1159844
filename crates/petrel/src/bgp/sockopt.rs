//! Socket options for BGP sessions: TTL for eBGP (multihop), GTSM
//! (RFC 5082) and TCP MD5 signatures (RFC 2385). Neither tokio nor socket2
//! wraps TCP_MD5SIG or IP_MINTTL, so these are thin `setsockopt` calls.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

fn set(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: a plain int option on a socket we own.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &val as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TTL (IPv4) or hop limit (IPv6) of outgoing packets.
pub fn set_ttl(sock: &impl AsRawFd, v6: bool, ttl: u8) -> io::Result<()> {
    if v6 {
        set(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            ttl.into(),
        )
    } else {
        set(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_TTL, ttl.into())
    }
}

/// GTSM: send with TTL 255 and drop packets that arrive with less than
/// 255 - (hops - 1), so that a remote attacker cannot reach the session.
pub fn set_gtsm(sock: &impl AsRawFd, v6: bool, hops: u8) -> io::Result<()> {
    set_ttl(sock, v6, 255)?;
    let min = 256 - i32::from(hops.max(1));
    if v6 {
        set(sock.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min)
    } else {
        set(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MINTTL, min)
    }
}

/// `struct tcp_md5sig` from <linux/tcp.h>.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: u32,
    key: [u8; 80],
}

/// Sign (and require signatures on) segments to and from `peer` with an
/// MD5 key (RFC 2385). On a listening socket this covers connections from
/// that peer; an empty key removes it.
pub fn set_md5(sock: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > 80 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "MD5 key longer than 80 bytes",
        ));
    }
    // SAFETY: all-zero is a valid sockaddr_storage and key buffer.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match peer {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
        }
        IpAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: sig is a fully initialised tcp_md5sig.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
