//! The client's address behind trusted proxies.
//!
//! A request's client is the TCP peer, unless the peer is a trusted proxy:
//! then the proxy's word is taken, hop by hop from the right of
//! `X-Forwarded-For` (or RFC 7239 `Forwarded`), skipping every hop that is
//! itself trusted. The first untrusted hop is the client; anything left of
//! it could have been written by the client and is ignored. An untrusted
//! peer's headers are never read.

use petrel_types::Prefix;
use std::net::IpAddr;

/// Networks whose word on the client's address is taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trusted(pub Vec<Prefix>);

impl Trusted {
    pub fn contains(&self, a: IpAddr) -> bool {
        let a = a.to_canonical();
        !self.0.is_empty() && {
            let h = Prefix::host(a);
            self.0.iter().any(|p| p.contains(&h))
        }
    }
}

/// Which header a trusted proxy writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// RFC 7239: `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// The client of a request from `peer`, given the values of the header
/// (every occurrence, in order; each may be a comma-separated list).
pub fn client_address<'a>(
    peer: IpAddr,
    trusted: &Trusted,
    header: Header,
    values: impl IntoIterator<Item = &'a str>,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = values.into_iter().flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let addr = match header {
            Header::XForwardedFor => parse_node(hop.trim()),
            Header::Forwarded => forwarded_for(hop),
        };
        // An address we cannot read ("unknown", an obfuscated name, junk)
        // ends the walk: the last trusted hop is all we know.
        let Some(a) = addr else { break };
        client = a;
        if !trusted.contains(a) {
            break;
        }
    }
    client
}

/// Whether the connection's RTT (the kernel's, for the TCP peer) is the
/// client's: only when the client is the peer itself, not a host behind a
/// PROXY header (`conn_client`) or a trusted proxy's header (`client`).
pub fn rtt_is_the_clients(client: IpAddr, conn_client: IpAddr, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    client.to_canonical() == peer && conn_client.to_canonical() == peer
}

/// The `for=` of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim()))?
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:8080`,
/// `2001:db8::1`, `[2001:db8::1]`, `"[2001:db8::1]:4711"`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim_matches('"');
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse::<IpAddr>().ok().map(|a| a.to_canonical());
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> Trusted {
        Trusted(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_connections_rtt_is_the_clients_only_when_the_client_is_the_peer() {
        let (peer, other) = (ip("198.51.100.7"), ip("203.0.113.9"));
        assert!(rtt_is_the_clients(peer, peer, peer));
        assert!(rtt_is_the_clients(peer, peer, ip("::ffff:198.51.100.7")));
        assert!(
            !rtt_is_the_clients(other, peer, peer),
            "named by a trusted proxy's header"
        );
        assert!(!rtt_is_the_clients(other, other, peer), "named by a PROXY header");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = client_address(ip("198.51.100.7"), &t, Header::XForwardedFor, ["203.0.113.9"]);
        assert_eq!(c, ip("198.51.100.7"));
        // No trusted networks at all: same.
        let c = client_address(
            ip("10.0.0.1"),
            &Trusted::default(),
            Header::XForwardedFor,
            ["203.0.113.9"],
        );
        assert_eq!(c, ip("10.0.0.1"));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let t = trusted(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        // The client forged its first entry; the trusted chain ends at .9.
        let c = client_address(
            ip("10.0.0.1"),
            &t,
            Header::XForwardedFor,
            ["1.2.3.4, 203.0.113.9", "10.1.1.1"],
        );
        assert_eq!(c, ip("203.0.113.9"));
        // Everyone trusted: the leftmost.
        let c = client_address(ip("10.0.0.1"), &t, Header::XForwardedFor, ["10.2.2.2, 10.3.3.3"]);
        assert_eq!(c, ip("10.2.2.2"));
        // Unreadable: the last trusted hop.
        let c = client_address(ip("10.0.0.1"), &t, Header::XForwardedFor, ["203.0.113.9, unknown"]);
        assert_eq!(c, ip("10.0.0.1"));
        // No header: the peer.
        let c = client_address(ip("10.0.0.1"), &t, Header::XForwardedFor, []);
        assert_eq!(c, ip("10.0.0.1"));
        // Ports and an IPv4-mapped peer.
        let c = client_address(ip("::ffff:10.0.0.1"), &t, Header::XForwardedFor, ["203.0.113.9:5555"]);
        assert_eq!(c, ip("203.0.113.9"));
    }

    #[test]
    fn rfc_7239_forwarded_elements() {
        let t = trusted(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let c = client_address(
            ip("10.0.0.1"),
            &t,
            Header::Forwarded,
            [r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https, for=10.9.9.9;by=10.0.0.1"#],
        );
        assert_eq!(c, ip("2001:db8:cafe::17"));
        let c = client_address(ip("10.0.0.1"), &t, Header::Forwarded, ["For=\"_hidden\", for=10.1.1.1"]);
        assert_eq!(c, ip("10.1.1.1"), "obfuscated: the last trusted hop");
        let c = client_address(ip("10.0.0.1"), &t, Header::Forwarded, ["proto=https;For=198.51.100.1"]);
        assert_eq!(c, ip("198.51.100.1"));
    }
}

/// What the upstream is told of the client, for one header
/// (`X-Forwarded-For` or `Forwarded`): the lines trusted proxies wrote
/// before us (`prev`, ignored from an untrusted peer: it could write
/// anything there), then the peer we heard (`peer`: the TCP peer or the
/// PROXY header's source). `Forwarded` is only continued, never started;
/// None: send no such header.
pub fn to_upstream(header: Header, prev: &[&str], peer_trusted: bool, peer: IpAddr) -> Option<String> {
    let prev: &[&str] = if peer_trusted { prev } else { &[] };
    let ours = match (header, peer) {
        (Header::XForwardedFor, a) => a.to_string(),
        (Header::Forwarded, _) if prev.is_empty() => return None,
        (Header::Forwarded, IpAddr::V4(a)) => format!("for={a}"),
        // RFC 7239 §6: IPv6 quoted and in brackets.
        (Header::Forwarded, IpAddr::V6(a)) => format!("for=\"[{a}]\""),
    };
    let mut v = prev.join(", ");
    if !v.is_empty() {
        v.push_str(", ");
    }
    v.push_str(&ours);
    Some(v)
}

#[cfg(test)]
mod upstream_tests {
    use super::*;

    #[test]
    fn the_upstream_hears_trusted_hops_then_the_peer() {
        let p: IpAddr = "10.0.0.1".parse().unwrap();
        let x = Header::XForwardedFor;
        assert_eq!(to_upstream(x, &["6.6.6.6"], false, p).as_deref(), Some("10.0.0.1"));
        assert_eq!(
            to_upstream(x, &["1.1.1.1", "2.2.2.2"], true, p).as_deref(),
            Some("1.1.1.1, 2.2.2.2, 10.0.0.1")
        );
        assert_eq!(to_upstream(x, &[], true, p).as_deref(), Some("10.0.0.1"));
        let f = Header::Forwarded;
        assert_eq!(to_upstream(f, &["for=6.6.6.6"], false, p), None);
        assert_eq!(to_upstream(f, &[], true, p), None);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            to_upstream(f, &["for=1.1.1.1"], true, v6).as_deref(),
            Some("for=1.1.1.1, for=\"[2001:db8::1]\"")
        );
    }
}
