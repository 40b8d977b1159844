//! Parsing of incoming queries (RFC 1035 §4, RFC 6891 OPT, RFC 7871 ECS).
//!
//! Only what an authoritative server needs is decoded; everything is borrowed
//! from the packet and nothing allocates.

use crate::consts::{edns_option, flags, rtype, HEADER_LEN};
use crate::name;
use petrel_types::{Family, Prefix};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The single question of a query. `name` is the wire name exactly as sent
/// (case preserved), so the reply can echo it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question<'a> {
    pub name: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
}

/// EDNS Client Subnet option of a query (RFC 7871 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    /// The client's prefix; host bits are guaranteed zero.
    pub prefix: Prefix,
    /// Raw FAMILY value (1 = IPv4, 2 = IPv6), echoed in the reply.
    pub family: u16,
}

impl ClientSubnet {
    pub fn source_len(&self) -> u8 {
        self.prefix.len()
    }
}

/// The OPT pseudo-record of a query (RFC 6891 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// Compact Answers OK (RFC 9824 §5.1): NXDOMAIN may come with a
    /// compact denial.
    pub compact_ok: bool,
    pub client_subnet: Option<ClientSubnet>,
    pub cookie: Option<Cookie>,
}

/// A DNS COOKIE option (RFC 7873 §4): the client's cookie, and the server
/// cookie it was given before, if any (8 to 32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub client: [u8; 8],
    server: [u8; 32],
    server_len: u8,
}

impl Cookie {
    pub fn server(&self) -> &[u8] {
        &self.server[..self.server_len as usize]
    }

    /// RFC 7873 §5.2.2: 8 bytes (a client cookie), or 16 to 40 (with a
    /// server cookie); anything else is malformed.
    fn parse(data: &[u8]) -> Option<Cookie> {
        if data.len() != 8 && !(16..=40).contains(&data.len()) {
            return None;
        }
        let mut c = Cookie {
            client: [0; 8],
            server: [0; 32],
            server_len: (data.len() - 8) as u8,
        };
        c.client.copy_from_slice(&data[..8]);
        c.server[..data.len() - 8].copy_from_slice(&data[8..]);
        Some(c)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    pub id: u16,
    pub flags: u16,
    pub question: Question<'a>,
    pub edns: Option<Edns>,
}

impl Query<'_> {
    pub fn opcode(&self) -> u8 {
        ((self.flags & flags::OPCODE_MASK) >> 11) as u8
    }
}

/// Why a packet is not a query we can answer normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError<'a> {
    /// Not worth a reply: shorter than a header, or a response (QR set),
    /// which must never be answered (it would allow reflection loops).
    Drop,
    /// Malformed: reply FORMERR. The question is echoed when it was readable;
    /// `edns` says the query carried an OPT record, so the reply carries one
    /// too (RFC 6891 §7: a responder that speaks EDNS says so even in FORMERR).
    FormErr {
        id: u16,
        flags: u16,
        question: Option<Question<'a>>,
        edns: bool,
    },
    /// An opcode other than QUERY: reply NOTIMP.
    NotImp {
        id: u16,
        flags: u16,
        question: Option<Question<'a>>,
    },
}

/// RR type TSIG (RFC 8945).
const TSIG: u16 = 250;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse a query packet.
pub fn parse_query(pkt: &[u8]) -> Result<Query<'_>, QueryError<'_>> {
    if pkt.len() < HEADER_LEN {
        return Err(QueryError::Drop);
    }
    let id = be16(pkt, 0).unwrap_or(0);
    let fl = be16(pkt, 2).unwrap_or(0);
    if fl & flags::QR != 0 {
        return Err(QueryError::Drop);
    }
    let qd = be16(pkt, 4).unwrap_or(0);
    let an = be16(pkt, 6).unwrap_or(0);
    let ns = be16(pkt, 8).unwrap_or(0);
    let ar = be16(pkt, 10).unwrap_or(0);
    let formerr = |question| QueryError::FormErr {
        id,
        flags: fl,
        question,
        edns: false,
    };
    let formerr_edns = |question| QueryError::FormErr {
        id,
        flags: fl,
        question,
        edns: true,
    };

    // The question is needed first even for NOTIMP so that it can be echoed.
    let question = if qd == 1 {
        let nlen = name::wire_len(&pkt[HEADER_LEN..]).ok_or(formerr(None))?;
        let end = HEADER_LEN + nlen;
        let qtype = be16(pkt, end).ok_or(formerr(None))?;
        let qclass = be16(pkt, end + 2).ok_or(formerr(None))?;
        Some(Question {
            name: &pkt[HEADER_LEN..end],
            qtype,
            qclass,
        })
    } else {
        None
    };
    if (fl & flags::OPCODE_MASK) != 0 {
        return Err(QueryError::NotImp {
            id,
            flags: fl,
            question,
        });
    }
    let Some(question) = question else {
        return Err(formerr(None));
    };
    // A query carries nothing in answer or authority (RFC 1035 §4.1.1);
    // UPDATE/NOTIFY would, but they are not QUERY and were turned away above.
    if an != 0 || ns != 0 {
        return Err(formerr(Some(question)));
    }
    let mut pos = HEADER_LEN + question.name.len() + 4;
    let mut edns = None;
    // The end of a TSIG record, which must end the message.
    let mut tsig_end = None;
    for _ in 0..ar {
        let owner = pos;
        pos = name::skip(pkt, pos).ok_or(formerr(Some(question)))?;
        let rt = be16(pkt, pos).ok_or(formerr(Some(question)))?;
        let class = be16(pkt, pos + 2).ok_or(formerr(Some(question)))?;
        let ttl_hi = be16(pkt, pos + 4).ok_or(formerr(Some(question)))?;
        let ttl_lo = be16(pkt, pos + 6).ok_or(formerr(Some(question)))?;
        let rdlen = be16(pkt, pos + 8).ok_or(formerr(Some(question)))? as usize;
        let rdata = pkt.get(pos + 10..pos + 10 + rdlen).ok_or(formerr(Some(question)))?;
        pos += 10 + rdlen;
        if rt == rtype::OPT {
            // RFC 6891 §6.1.1: one OPT at most, owned by the root.
            if edns.is_some() || pkt[owner] != 0 || pos - rdlen - 10 != owner + 1 {
                return Err(formerr_edns(Some(question)));
            }
            let (client_subnet, cookie) = parse_options(rdata).ok_or(formerr_edns(Some(question)))?;
            edns = Some(Edns {
                udp_size: class,
                version: (ttl_hi & 0xff) as u8,
                dnssec_ok: ttl_lo & 0x8000 != 0,
                compact_ok: ttl_lo & 0x4000 != 0,
                client_subnet,
                cookie,
            });
        }
        // A TSIG must be the last record (RFC 8945 §5.1); zone transfers
        // check its MAC (`petrel_dns_auth::xfr`). Other additional records are skipped: unknown records
        // must not make a valid query fail.
        if rt == TSIG {
            tsig_end = Some(pos);
        }
    }
    if tsig_end.is_some_and(|end| end != pos) {
        return Err(formerr(Some(question)));
    }
    if pos != pkt.len() {
        return Err(if edns.is_some() {
            formerr_edns(Some(question))
        } else {
            formerr(Some(question))
        });
    }
    Ok(Query {
        id,
        flags: fl,
        question,
        edns,
    })
}

/// Walk EDNS options; `None` means malformed. Unknown options are ignored
/// (RFC 6891 §6.1.2).
/// A second ECS or COOKIE option is malformed too.
fn parse_options(mut rdata: &[u8]) -> Option<(Option<ClientSubnet>, Option<Cookie>)> {
    let (mut ecs, mut cookie) = (None, None);
    while !rdata.is_empty() {
        let code = be16(rdata, 0)?;
        let len = be16(rdata, 2)? as usize;
        let data = rdata.get(4..4 + len)?;
        rdata = &rdata[4 + len..];
        if code == edns_option::CLIENT_SUBNET {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_ecs(data)?);
        } else if code == edns_option::COOKIE {
            if cookie.is_some() {
                return None;
            }
            cookie = Some(Cookie::parse(data)?);
        }
    }
    Some((ecs, cookie))
}

/// RFC 7871 §6: a wrong FAMILY, a SOURCE longer than the family allows, an
/// ADDRESS longer or shorter than SOURCE needs, or bits set beyond SOURCE are
/// all malformed (FORMERR, §7.1.2). SCOPE in a query "MUST be 0" (§6), and
/// a query that breaks that is malformed too (§7.1.1): FORMERR, as gdnsd
/// answers.
fn parse_ecs(data: &[u8]) -> Option<ClientSubnet> {
    let family = be16(data, 0)?;
    let source = *data.get(2)?;
    if *data.get(3)? != 0 {
        return None;
    }
    let addr = &data[4..];
    let fam = match family {
        1 => Family::V4,
        2 => Family::V6,
        _ => return None,
    };
    if source > fam.max_len() || addr.len() != (source as usize).div_ceil(8) {
        return None;
    }
    if source % 8 != 0 {
        let last = *addr.last()?;
        if last & (0xffu8 >> (source % 8)) != 0 {
            return None;
        }
    }
    let ip = match fam {
        Family::V4 => {
            let mut b = [0u8; 4];
            b[..addr.len()].copy_from_slice(addr);
            IpAddr::V4(Ipv4Addr::from(b))
        }
        Family::V6 => {
            let mut b = [0u8; 16];
            b[..addr.len()].copy_from_slice(addr);
            IpAddr::V6(Ipv6Addr::from(b))
        }
    };
    Some(ClientSubnet {
        prefix: Prefix::new(ip, source)?,
        family,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, opt.is_some() as u8];
        p.extend_from_slice(name);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        if let Some(o) = opt {
            p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0]);
            p.extend_from_slice(&(o.len() as u16).to_be_bytes());
            p.extend_from_slice(o);
        }
        p
    }

    #[test]
    fn plain_query() {
        let p = query(b"\x03www\x07example\x03net\x00", 1, None);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.question.name, b"\x03www\x07example\x03net\x00");
        assert_eq!(q.question.qtype, 1);
        assert!(q.edns.is_none());
    }

    #[test]
    fn ecs_query() {
        let p = query(b"\x00", 1, Some(&[0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2]));
        let q = parse_query(&p).unwrap();
        let e = q.edns.unwrap();
        assert_eq!(e.udp_size, 1232);
        assert!(e.dnssec_ok);
        assert_eq!(e.client_subnet.unwrap().prefix.to_string(), "192.0.2.0/24");
    }

    #[test]
    fn malformed_ecs_is_formerr() {
        for bad in [
            &[0, 8, 0, 7, 0, 3, 24, 0, 192, 0, 2][..], // family 3
            &[0, 8, 0, 6, 0, 1, 24, 0, 192, 0],        // address too short
            &[0, 8, 0, 7, 0, 1, 20, 0, 192, 0, 2],     // address too long for /20
            &[0, 8, 0, 7, 0, 1, 23, 0, 192, 0, 3],     // bits beyond /23
            &[0, 8, 0, 8, 0, 1, 33, 0, 192, 0, 2, 1],  // /33
            &[0, 8, 0, 9, 0, 1, 24],                   // truncated option
            &[0, 8, 0, 7, 0, 1, 24, 16, 192, 0, 2],    // SCOPE not 0
        ] {
            let p = query(b"\x00", 1, Some(bad));
            assert!(
                matches!(parse_query(&p), Err(QueryError::FormErr { edns: true, .. })),
                "{bad:?}"
            );
        }
        let mut trailing = query(b"\x00", 1, Some(&[]));
        trailing.push(0);
        assert!(matches!(
            parse_query(&trailing),
            Err(QueryError::FormErr { edns: true, .. })
        ));
    }

    #[test]
    fn drop_and_errors() {
        assert_eq!(parse_query(&[0; 5]), Err(QueryError::Drop));
        let mut resp = query(b"\x00", 1, None);
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp), Err(QueryError::Drop));
        let mut notify = query(b"\x00", 6, None);
        notify[2] |= 4 << 3;
        assert!(matches!(parse_query(&notify), Err(QueryError::NotImp { .. })));
        let mut trailing = query(b"\x00", 1, None);
        trailing.push(0);
        assert!(matches!(
            parse_query(&trailing),
            Err(QueryError::FormErr { edns: false, .. })
        ));
        let mut two = query(b"\x00", 1, None);
        two[5] = 2;
        assert!(matches!(parse_query(&two), Err(QueryError::FormErr { .. })));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_query(&bytes);
        }
    }
}
