//! A minimal BGP speaker for benchmarks: connects to a router, opens a
//! session (4-octet ASNs, IPv4 and IPv6 unicast), sends a file of
//! pre-encoded UPDATE messages as fast as the router takes them and an
//! End-of-RIB for both families (RFC 4724), then keeps the session up with
//! KEEPALIVEs until killed.
//!
//!   feeder LOCAL_ADDR ROUTER_ADDR:PORT ASN UPDATES_FILE

use petrel_bgp_wire::{decode, encode, Capability, Message, Open, SessionCtx};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: feeder LOCAL_ADDR ROUTER_ADDR:PORT ASN UPDATES_FILE");
        std::process::exit(2);
    }
    let local: std::net::IpAddr = a[1].parse().expect("local address");
    let to: SocketAddr = a[2].parse().expect("router address:port");
    let asn: u32 = a[3].parse().expect("ASN");
    let updates = std::fs::read(&a[4]).expect("updates file");
    let sock = socket2::Socket::new(socket2::Domain::for_address(to), socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::new(local, 0).into()).expect("bind");
    sock.connect(&to.into()).expect("connect");
    let mut s: TcpStream = sock.into();
    let id = match local {
        std::net::IpAddr::V4(v) => u32::from(v),
        _ => 0x0a00_0001,
    };
    let open = Open {
        version: 4,
        my_as: if asn > 65535 { 23456 } else { asn as u16 },
        hold_time: 240,
        bgp_id: id,
        capabilities: vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::Multiprotocol { afi: 2, safi: 1 },
            Capability::FourOctetAs(asn),
        ],
    };
    let mut out = Vec::new();
    encode(&Message::Open(open), &mut out);
    encode(&Message::Keepalive, &mut out);
    s.write_all(&out).expect("send OPEN");
    // Wait for the router's OPEN and KEEPALIVE.
    let ctx = SessionCtx {
        four_octet_as: true,
        ..Default::default()
    };
    let mut buf = Vec::new();
    let mut got_keepalive = false;
    while !got_keepalive {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "the router closed the session");
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some((m, len))) = decode(&buf, &ctx) {
            if let Message::Notification(no) = &m {
                panic!("NOTIFICATION {}/{}", no.code, no.subcode);
            }
            got_keepalive |= matches!(m, Message::Keepalive);
            buf.drain(..len);
        }
    }
    s.write_all(&updates).expect("send UPDATEs");
    // End-of-RIB: an empty UPDATE for IPv4; for IPv6 one whose only
    // attribute is an empty MP_UNREACH_NLRI (AFI 2, SAFI 1).
    let mut eor = Vec::new();
    for attrs in [&[][..], &[0x80, 15, 3, 0, 2, 1][..]] {
        eor.extend_from_slice(&[0xff; 16]);
        eor.extend_from_slice(&(23 + attrs.len() as u16).to_be_bytes());
        eor.extend_from_slice(&[2, 0, 0]);
        eor.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        eor.extend_from_slice(attrs);
    }
    s.write_all(&eor).expect("send End-of-RIB");
    eprintln!("sent {} bytes of UPDATEs", updates.len());
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut ka = Vec::new();
    encode(&Message::Keepalive, &mut ka);
    loop {
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => {
                if s.write_all(&ka).is_err() {
                    return;
                }
            }
        }
    }
}
