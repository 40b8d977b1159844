//! Reading replies, for petrel's own DNS health checks: the rcode and the
//! addresses in the answer section, nothing more.

use crate::consts::{flags, rtype, HEADER_LEN};
use crate::name::skip as skip_name;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplySummary {
    pub id: u16,
    pub rcode: u16,
    pub truncated: bool,
    /// A and AAAA records of the answer section.
    pub addresses: Vec<IpAddr>,
}

/// Summarise a reply; `None` if it is not a well-formed response.
pub fn summarize_reply(pkt: &[u8]) -> Option<ReplySummary> {
    let be16 = |at: usize| Some(u16::from_be_bytes([*pkt.get(at)?, *pkt.get(at + 1)?]));
    let id = be16(0)?;
    let f = be16(2)?;
    if f & flags::QR == 0 {
        return None;
    }
    let (qd, an) = (be16(4)?, be16(6)?);
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(pkt, pos)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..an {
        pos = skip_name(pkt, pos)?;
        let t = be16(pos)?;
        let len = be16(pos + 8)? as usize;
        let rd = pkt.get(pos + 10..pos + 10 + len)?;
        match (t, len) {
            (rtype::A, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]))),
            (rtype::AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rd);
                addresses.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            _ => {}
        }
        pos += 10 + len;
    }
    Some(ReplySummary {
        id,
        rcode: f & 0xf,
        truncated: f & flags::TC != 0,
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageWriter, Section};

    #[test]
    fn reads_addresses_and_rcode() {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 512);
        w.question(b"\x03www\x07example\x03net\x00", 1, 1).unwrap();
        w.record(
            Section::Answer,
            b"\x03www\x07example\x03net\x00",
            1,
            1,
            60,
            &[192, 0, 2, 1],
        )
        .unwrap();
        w.record(
            Section::Answer,
            b"\x03www\x07example\x03net\x00",
            28,
            1,
            60,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        )
        .unwrap();
        let n = w.finish(9, 0x8400);
        let s = summarize_reply(&buf[..n]).unwrap();
        assert_eq!(s.id, 9);
        assert_eq!(s.rcode, 0);
        assert_eq!(
            s.addresses,
            vec!["192.0.2.1".parse::<IpAddr>().unwrap(), "2001:db8::1".parse().unwrap()]
        );
        assert_eq!(summarize_reply(&buf[..n - 3]), None);
        let mut q = buf;
        q[2] &= 0x7f;
        assert_eq!(summarize_reply(&q[..n]), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = summarize_reply(&bytes);
        }
    }
}
