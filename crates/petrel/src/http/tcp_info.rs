//! The kernel's view of a TCP connection: its smoothed RTT.

use std::os::fd::RawFd;

/// The connection's smoothed round-trip time (`tcpi_rtt`), in
/// milliseconds; None when the kernel does not say (not a TCP socket, or
/// no sample yet; a fresh connection has the handshake's).
pub fn rtt_ms(fd: RawFd) -> Option<f64> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len`
    // bytes into it, and `fd` is a socket the caller keeps open.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0 && info.tcpi_rtt > 0).then(|| f64::from(info.tcpi_rtt) / 1000.0)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    #[test]
    fn a_loopback_connection_has_a_small_rtt() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let rtt = super::rtt_ms(s.as_raw_fd()).expect("the handshake's RTT");
        assert!(rtt > 0.0 && rtt < 50.0, "{rtt}");
        assert_eq!(super::rtt_ms(l.as_raw_fd()), None, "a listener has no RTT");
        drop(c);
    }
}
