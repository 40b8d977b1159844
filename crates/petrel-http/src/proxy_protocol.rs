//! HAProxy's PROXY protocol, versions 1 (text) and 2 (binary), as a load
//! balancer in front of petrel sends it at the start of a connection to
//! say whom the connection is from.
//!
//! [`parse`] reads the header from the first bytes of a connection: it
//! says how many bytes the header took (the request follows), asks for
//! more bytes, or refuses. The caller reads it only on connections from a
//! trusted proxy, and drops a connection whose header it refuses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's longest header, CRLF included.
pub const V1_MAX: usize = 107;
/// The most a v2 header may take here: 16 octets and the addresses and
/// TLVs of its length field, which we cap (the spec allows 64 KiB of TLVs;
/// no proxy sends that much for a connection).
pub const V2_MAX: usize = 16 + 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The original client and the address it connected to; None for a
    /// health check of the proxy itself (v1 `UNKNOWN`, v2 `LOCAL`) or a
    /// family other than IPv4 and IPv6: use the connection's own.
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet to decide.
    Incomplete,
    /// The header, and how many bytes it took.
    Done(Header, usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The connection does not start with a PROXY header.
    NotProxy,
    Malformed(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotProxy => write!(f, "no PROXY protocol header"),
            Error::Malformed(why) => write!(f, "malformed PROXY protocol header: {why}"),
        }
    }
}

pub fn parse(buf: &[u8]) -> Result<Parsed, Error> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Ok(Parsed::Incomplete)
        } else {
            v2(buf)
        };
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return if n < 6 { Ok(Parsed::Incomplete) } else { v1(buf) };
    }
    Err(Error::NotProxy)
}

fn v1(buf: &[u8]) -> Result<Parsed, Error> {
    let Some(end) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(Error::Malformed("v1 line longer than 107 octets"))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(Error::Malformed("v1 line does not end in CRLF"));
    }
    let line = std::str::from_utf8(&buf[..end - 1]).map_err(|_| Error::Malformed("v1 line is not text"))?;
    let f: Vec<&str> = line.split(' ').collect();
    let unknown = Header {
        source: None,
        destination: None,
    };
    match f.get(1) {
        Some(&"UNKNOWN") => return Ok(Parsed::Done(unknown, end + 1)),
        Some(&"TCP4") | Some(&"TCP6") => {}
        _ => return Err(Error::Malformed("v1 protocol is not TCP4, TCP6 or UNKNOWN")),
    }
    if f.len() != 6 {
        return Err(Error::Malformed("v1 line does not have 6 fields"));
    }
    let v6 = f[1] == "TCP6";
    let addr = |s: &str| -> Result<IpAddr, Error> {
        let a: IpAddr = s.parse().map_err(|_| Error::Malformed("v1 address"))?;
        if a.is_ipv6() != v6 {
            return Err(Error::Malformed("v1 address of the wrong family"));
        }
        Ok(a)
    };
    let port = |s: &str| -> Result<u16, Error> {
        // RFC-style: no sign, no leading zeros (except 0 itself).
        if s.is_empty() || s.len() > 5 || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Error::Malformed("v1 port"));
        }
        s.parse().map_err(|_| Error::Malformed("v1 port"))
    };
    let h = Header {
        source: Some(SocketAddr::new(addr(f[2])?, port(f[4])?)),
        destination: Some(SocketAddr::new(addr(f[3])?, port(f[5])?)),
    };
    Ok(Parsed::Done(h, end + 1))
}

fn v2(buf: &[u8]) -> Result<Parsed, Error> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(Error::Malformed("v2 version is not 2"));
    }
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if 16 + len > V2_MAX {
        return Err(Error::Malformed("v2 header longer than 4 KiB"));
    }
    if buf.len() < 16 + len {
        return Ok(Parsed::Incomplete);
    }
    let body = &buf[16..16 + len];
    let unknown = Header {
        source: None,
        destination: None,
    };
    match ver_cmd & 0x0f {
        0 => return Ok(Parsed::Done(unknown, 16 + len)), // LOCAL
        1 => {}                                          // PROXY
        _ => return Err(Error::Malformed("v2 command is neither LOCAL nor PROXY")),
    }
    let h = match buf[13] {
        // TCP over IPv4, UDP over IPv4.
        0x11 | 0x12 => {
            if body.len() < 12 {
                return Err(Error::Malformed("v2 IPv4 addresses truncated"));
            }
            let a = |i: usize| IpAddr::V4(Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]));
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            Header {
                source: Some(SocketAddr::new(a(0), p(8))),
                destination: Some(SocketAddr::new(a(4), p(10))),
            }
        }
        0x21 | 0x22 => {
            if body.len() < 36 {
                return Err(Error::Malformed("v2 IPv6 addresses truncated"));
            }
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&body[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            Header {
                source: Some(SocketAddr::new(a(0), p(32))),
                destination: Some(SocketAddr::new(a(16), p(34))),
            }
        }
        // UNSPEC, Unix sockets: the connection's own addresses.
        0x00 | 0x31 | 0x32 => unknown,
        _ => return Err(Error::Malformed("v2 address family")),
    };
    Ok(Parsed::Done(h, 16 + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let b = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        let Parsed::Done(h, n) = parse(b).unwrap() else {
            panic!()
        };
        assert_eq!(&b[n..n + 3], b"GET");
        assert_eq!(h.source, sa("192.0.2.1:56324"));
        assert_eq!(h.destination, sa("198.51.100.2:443"));
        let b = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        let Parsed::Done(h, _) = parse(b).unwrap() else {
            panic!()
        };
        assert_eq!(h.source, sa("[2001:db8::1]:1"));
        let Parsed::Done(h, n) = parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").unwrap() else {
            panic!()
        };
        assert_eq!((h.source, n), (None, 35));
    }

    #[test]
    fn v1_needs_more_bytes_or_refuses() {
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROXY TCP4 192.0.2.1"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Error::NotProxy));
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert!(matches!(parse(&long), Err(Error::Malformed(_))));
    }

    fn v2_header(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(0x20 | cmd);
        v.push(fam);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn v2_ipv4_ipv6_local_and_tlvs() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0, 1, 0]); // a NOOP TLV, skipped
        let mut b = v2_header(1, 0x11, &body);
        let len = b.len();
        b.extend_from_slice(b"GET /");
        let Parsed::Done(h, n) = parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(n, len);
        assert_eq!(h.source, sa("192.0.2.1:56324"));
        assert_eq!(h.destination, sa("198.51.100.2:443"));
        let mut body6 = Vec::new();
        body6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&[0, 1, 0, 2]);
        let Parsed::Done(h, _) = parse(&v2_header(1, 0x21, &body6)).unwrap() else {
            panic!()
        };
        assert_eq!(h.source, sa("[2001:db8::1]:1"));
        let Parsed::Done(h, _) = parse(&v2_header(0, 0x00, &[])).unwrap() else {
            panic!()
        };
        assert_eq!(h.source, None, "LOCAL: the proxy's own check");
        // Truncated or wrong.
        assert_eq!(parse(&b[..20]), Ok(Parsed::Incomplete));
        assert_eq!(parse(&V2_SIGNATURE[..5]), Ok(Parsed::Incomplete));
        assert!(matches!(
            parse(&v2_header(1, 0x11, &body[..8])),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(parse(&v2_header(2, 0x11, &body)), Err(Error::Malformed(_))));
        let mut bad_version = v2_header(1, 0x11, &body);
        bad_version[12] = 0x11;
        assert!(matches!(parse(&bad_version), Err(Error::Malformed(_))));
        let mut huge = v2_header(1, 0x11, &body);
        huge[14..16].copy_from_slice(&60000u16.to_be_bytes());
        assert!(matches!(parse(&huge), Err(Error::Malformed(_))));
    }

    proptest! {
        /// Any bytes: an answer, never a panic; a header never claims more
        /// bytes than it was given.
        #[test]
        fn never_panics_and_never_overreads(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Parsed::Done(_, n)) = parse(&b) {
                prop_assert!(n <= b.len());
            }
        }

        /// Every prefix of a valid header asks for more.
        #[test]
        fn prefixes_are_incomplete(cut in 0usize..44) {
            let b = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
            prop_assert_eq!(parse(&b[..cut.min(b.len() - 1)]), Ok(Parsed::Incomplete));
        }
    }
}
