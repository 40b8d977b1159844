//! MRT routing dumps (RFC 6396): TABLE_DUMP_V2 RIB snapshots (with the
//! ADD-PATH subtypes of RFC 8050) and BGP4MP update streams, the formats of
//! RouteViews, RIPE RIS, BIRD and GoBGP dumps. Sans-IO: [`parse_record`]
//! reads one record from a byte slice, [`MrtWriter`] appends records to a
//! buffer (for fixtures, the demo and benchmarks).
//!
//! Attributes go through the same RFC 7606 rules as a live session: a RIB
//! entry whose attributes are malformed is reported as withdrawn with the
//! reason, never as a route.

use crate::attrs::{self, Attributes};
use crate::cursor::{Cur, Truncated};
use crate::encode::{self, write_attrs};
use crate::message::{decode, Message};
use crate::{nlri, Nlri, ParsedUpdate, SessionCtx};
use petrel_types::{Family, Prefix};
use std::net::IpAddr;

pub const TABLE_DUMP: u16 = 12;
pub const TABLE_DUMP_V2: u16 = 13;
pub const BGP4MP: u16 = 16;
pub const BGP4MP_ET: u16 = 17;

/// Largest record accepted: a RIB record of a prefix seen by many peers is
/// big, but nothing legitimate comes near this.
pub const MAX_RECORD: usize = 16 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MrtPeer {
    pub bgp_id: u32,
    pub address: IpAddr,
    pub asn: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RibEntry {
    pub peer_index: u16,
    pub originated: u32,
    pub path_id: Option<u32>,
    /// The route's attributes, or why RFC 7606 made it a withdrawal.
    pub attrs: Result<Attributes, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    PeerIndex {
        collector_id: u32,
        view: String,
        peers: Vec<MrtPeer>,
    },
    Rib {
        timestamp: u32,
        sequence: u32,
        prefix: Prefix,
        entries: Vec<RibEntry>,
    },
    /// One route of the obsolete TABLE_DUMP format (RFC 6396 §4.2), which
    /// names its peer inline; 2-octet AS numbers.
    TableDump {
        timestamp: u32,
        prefix: Prefix,
        peer: MrtPeer,
        entry: RibEntry,
    },
    /// An UPDATE received from a peer (BGP4MP_MESSAGE*).
    Update {
        timestamp: u32,
        peer: IpAddr,
        peer_as: u32,
        update: Box<ParsedUpdate>,
    },
    /// A session state change (BGP4MP_STATE_CHANGE*); state 6 is
    /// Established, anything else means the peer's routes are gone.
    StateChange {
        timestamp: u32,
        peer: IpAddr,
        peer_as: u32,
        old: u16,
        new: u16,
    },
    /// A record of another type or subtype (skipped by readers).
    Other { kind: u16, subtype: u16 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MrtError(pub String);

impl std::fmt::Display for MrtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, MrtError> {
    Err(MrtError(m.into()))
}

impl From<Truncated> for MrtError {
    fn from(t: Truncated) -> MrtError {
        MrtError(t.0)
    }
}

/// The length of the record at the start of `buf` (header included), once
/// the header is there.
pub fn record_len(buf: &[u8]) -> Option<Result<usize, MrtError>> {
    if buf.len() < 12 {
        return None;
    }
    let len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if len > MAX_RECORD {
        return Some(err(format!("record of {len} bytes is larger than {MAX_RECORD}")));
    }
    Some(Ok(12 + len))
}

/// Parse one complete record (`buf` holds exactly one, see [`record_len`]).
pub fn parse_record(buf: &[u8]) -> Result<Record, MrtError> {
    let mut c = Cur { b: buf };
    let timestamp = c.u32("header")?;
    let kind = c.u16("header")?;
    let subtype = c.u16("header")?;
    let len = c.u32("header")? as usize;
    if c.b.len() != len {
        return err(format!(
            "record length {len} does not match the {} bytes given",
            c.b.len()
        ));
    }
    if kind == BGP4MP_ET {
        c.u32("microseconds")?;
    }
    match (kind, subtype) {
        (TABLE_DUMP_V2, 1) => peer_index(&mut c),
        (TABLE_DUMP_V2, 2 | 4 | 8 | 10) => {
            let family = if matches!(subtype, 2 | 8) {
                Family::V4
            } else {
                Family::V6
            };
            rib(&mut c, family, subtype >= 8, timestamp)
        }
        (TABLE_DUMP, 1 | 2) => table_dump(&mut c, subtype == 2, timestamp),
        (BGP4MP | BGP4MP_ET, 1 | 4 | 6 | 7 | 8 | 9 | 10 | 11) => bgp4mp_message(&mut c, subtype, timestamp),
        (BGP4MP | BGP4MP_ET, 0 | 5) => {
            let as4 = subtype == 5;
            let (peer, peer_as) = bgp4mp_header(&mut c, as4)?;
            let old = c.u16("old state")?;
            let new = c.u16("new state")?;
            Ok(Record::StateChange {
                timestamp,
                peer,
                peer_as,
                old,
                new,
            })
        }
        _ => Ok(Record::Other { kind, subtype }),
    }
}

fn peer_index(c: &mut Cur<'_>) -> Result<Record, MrtError> {
    let collector_id = c.u32("collector id")?;
    let n = c.u16("view name length")? as usize;
    let view = String::from_utf8_lossy(c.take(n, "view name")?).into_owned();
    let count = c.u16("peer count")? as usize;
    let mut peers = Vec::with_capacity(count);
    for _ in 0..count {
        let t = c.u8("peer type")?;
        let bgp_id = c.u32("peer id")?;
        let address = c.ip(t & 1 != 0, "peer address")?;
        let asn = if t & 2 != 0 {
            c.u32("peer AS")?
        } else {
            c.u16("peer AS")? as u32
        };
        peers.push(MrtPeer { bgp_id, address, asn });
    }
    Ok(Record::PeerIndex {
        collector_id,
        view,
        peers,
    })
}

fn rib_attrs(a: &[u8], four_octet_as: bool, family: Family) -> Result<Attributes, String> {
    // A dump holds what the collector stored, LOCAL_PREF included: read it
    // as from an internal peer.
    let ctx = SessionCtx {
        four_octet_as,
        ibgp: true,
        ..Default::default()
    };
    let mut u = crate::ParsedUpdate::default();
    match attrs::parse_into(a, &ctx, family == Family::V4, true, &mut u) {
        Ok(_) => match u.treat_as_withdraw {
            Some(why) => Err(why),
            None => Ok(u.attrs),
        },
        Err(f) => Err(f.reason),
    }
}

fn table_dump(c: &mut Cur<'_>, v6: bool, timestamp: u32) -> Result<Record, MrtError> {
    c.u16("view number")?;
    c.u16("sequence number")?;
    let family = if v6 { Family::V6 } else { Family::V4 };
    let addr = c.ip(v6, "prefix")?;
    let plen = c.u8("prefix length")?;
    let max = if v6 { 128 } else { 32 };
    if plen > max {
        return err(format!("prefix length {plen}"));
    }
    let bits = match addr {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    };
    let prefix = Prefix::from_bits(family, bits, plen);
    c.u8("status")?;
    let originated = c.u32("originated time")?;
    let address = c.ip(v6, "peer address")?;
    let asn = c.u16("peer AS")? as u32;
    let alen = c.u16("attribute length")? as usize;
    let a = c.take(alen, "attributes")?;
    Ok(Record::TableDump {
        timestamp,
        prefix,
        peer: MrtPeer {
            bgp_id: 0,
            address,
            asn,
        },
        entry: RibEntry {
            peer_index: 0,
            originated,
            path_id: None,
            attrs: rib_attrs(a, false, family),
        },
    })
}

fn rib(c: &mut Cur<'_>, family: Family, add_path: bool, timestamp: u32) -> Result<Record, MrtError> {
    let sequence = c.u32("sequence number")?;
    let plen = c.u8("prefix length")?;
    let max = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    if plen > max {
        return err(format!("prefix length {plen}"));
    }
    let bytes = c.take(plen.div_ceil(8) as usize, "prefix")?;
    let mut full = [0u8; 16];
    full[..bytes.len()].copy_from_slice(bytes);
    let bits = match family {
        Family::V4 => u32::from_be_bytes([full[0], full[1], full[2], full[3]]) as u128,
        Family::V6 => u128::from_be_bytes(full),
    };
    let prefix = Prefix::from_bits(family, bits, plen);
    let count = c.u16("entry count")? as usize;
    let mut entries = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let peer_index = c.u16("peer index")?;
        let originated = c.u32("originated time")?;
        let path_id = if add_path { Some(c.u32("path id")?) } else { None };
        let alen = c.u16("attribute length")? as usize;
        let a = c.take(alen, "attributes")?;
        // Attributes in TABLE_DUMP_V2 entries always use 4-octet ASNs.
        let attrs = rib_attrs(a, true, family);
        entries.push(RibEntry {
            peer_index,
            originated,
            path_id,
            attrs,
        });
    }
    Ok(Record::Rib {
        timestamp,
        sequence,
        prefix,
        entries,
    })
}

fn bgp4mp_header(c: &mut Cur<'_>, as4: bool) -> Result<(IpAddr, u32), MrtError> {
    let (peer_as, _local_as) = if as4 {
        (c.u32("peer AS")?, c.u32("local AS")?)
    } else {
        (c.u16("peer AS")? as u32, c.u16("local AS")? as u32)
    };
    c.u16("interface index")?;
    let afi = c.u16("address family")?;
    let v6 = match afi {
        1 => false,
        2 => true,
        o => return err(format!("address family {o}")),
    };
    let peer = c.ip(v6, "peer address")?;
    c.ip(v6, "local address")?;
    Ok((peer, peer_as))
}

fn bgp4mp_message(c: &mut Cur<'_>, subtype: u16, timestamp: u32) -> Result<Record, MrtError> {
    let as4 = matches!(subtype, 4 | 7 | 9 | 11);
    let add_path = subtype >= 8;
    let (peer, peer_as) = bgp4mp_header(c, as4)?;
    let ctx = SessionCtx {
        four_octet_as: as4,
        add_path_v4: add_path,
        add_path_v6: add_path,
        extended_messages: true,
        ..Default::default()
    };
    let msg = c.b;
    match decode(msg, &ctx) {
        Ok(Some((Message::Update(u), n))) if n == msg.len() => {
            let update = u
                .parse(&ctx)
                .map_err(|e| MrtError(format!("UPDATE from {peer}: {}", e.reason)))?;
            Ok(Record::Update {
                timestamp,
                peer,
                peer_as,
                update: Box::new(update),
            })
        }
        Ok(Some((_, n))) if n == msg.len() => Ok(Record::Other { kind: BGP4MP, subtype }),
        Ok(_) => err("BGP message does not fill the record"),
        Err(e) => err(format!("BGP message from {peer}: {}", e.reason)),
    }
}

/// Appends MRT records to a buffer.
#[derive(Default)]
pub struct MrtWriter {
    pub out: Vec<u8>,
    sequence: u32,
}

impl MrtWriter {
    fn header(&mut self, timestamp: u32, kind: u16, subtype: u16) -> usize {
        self.out.extend_from_slice(&timestamp.to_be_bytes());
        self.out.extend_from_slice(&kind.to_be_bytes());
        self.out.extend_from_slice(&subtype.to_be_bytes());
        self.out.extend_from_slice(&[0; 4]);
        self.out.len()
    }

    fn finish(&mut self, body_start: usize) {
        let len = (self.out.len() - body_start) as u32;
        self.out[body_start - 4..body_start].copy_from_slice(&len.to_be_bytes());
    }

    /// The PEER_INDEX_TABLE that RIB records refer to by index.
    pub fn peer_index(&mut self, timestamp: u32, collector_id: u32, view: &str, peers: &[MrtPeer]) {
        let s = self.header(timestamp, TABLE_DUMP_V2, 1);
        self.out.extend_from_slice(&collector_id.to_be_bytes());
        self.out.extend_from_slice(&(view.len() as u16).to_be_bytes());
        self.out.extend_from_slice(view.as_bytes());
        self.out.extend_from_slice(&(peers.len() as u16).to_be_bytes());
        for p in peers {
            let v6 = p.address.is_ipv6();
            self.out.push(u8::from(v6) | 2);
            self.out.extend_from_slice(&p.bgp_id.to_be_bytes());
            match p.address {
                IpAddr::V4(a) => self.out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => self.out.extend_from_slice(&a.octets()),
            }
            self.out.extend_from_slice(&p.asn.to_be_bytes());
        }
        self.finish(s);
    }

    /// One RIB_IPV4_UNICAST or RIB_IPV6_UNICAST record (the ADD-PATH
    /// subtypes when any entry has a path id).
    pub fn rib(&mut self, timestamp: u32, prefix: &Prefix, entries: &[(u16, Option<u32>, &Attributes)]) {
        let v4 = prefix.family() == Family::V4;
        let add_path = entries.iter().any(|e| e.1.is_some());
        let subtype = match (v4, add_path) {
            (true, false) => 2,
            (false, false) => 4,
            (true, true) => 8,
            (false, true) => 10,
        };
        let s = self.header(timestamp, TABLE_DUMP_V2, subtype);
        self.out.extend_from_slice(&self.sequence.to_be_bytes());
        self.sequence = self.sequence.wrapping_add(1);
        let mut n = Vec::new();
        nlri::write(
            &mut n,
            &Nlri {
                path_id: None,
                prefix: *prefix,
            },
        );
        self.out.extend_from_slice(&n);
        self.out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        let ctx = SessionCtx {
            four_octet_as: true,
            ibgp: true,
            ..Default::default()
        };
        let mut ab = Vec::new();
        for (peer, path_id, a) in entries {
            self.out.extend_from_slice(&peer.to_be_bytes());
            self.out.extend_from_slice(&timestamp.to_be_bytes());
            if add_path {
                self.out.extend_from_slice(&path_id.unwrap_or(0).to_be_bytes());
            }
            ab.clear();
            write_attrs(&mut ab, a, &ctx, v4);
            if !v4 {
                // Abbreviated MP_REACH_NLRI: next hop length and address.
                let mut v = vec![16];
                match a.mp_next_hop {
                    Some(IpAddr::V6(nh)) => v.extend_from_slice(&nh.octets()),
                    _ => v.extend_from_slice(&[0; 16]),
                }
                encode::attr(&mut ab, attrs::FLAG_OPTIONAL, attrs::MP_REACH, &v);
            }
            self.out.extend_from_slice(&(ab.len() as u16).to_be_bytes());
            self.out.extend_from_slice(&ab);
        }
        self.finish(s);
    }

    /// A BGP4MP_MESSAGE_AS4 record carrying one BGP message (with header).
    pub fn bgp4mp_as4(&mut self, timestamp: u32, peer: IpAddr, peer_as: u32, local_as: u32, message: &[u8]) {
        let subtype = 4;
        let s = self.header(timestamp, BGP4MP, subtype);
        self.out.extend_from_slice(&peer_as.to_be_bytes());
        self.out.extend_from_slice(&local_as.to_be_bytes());
        self.out.extend_from_slice(&0u16.to_be_bytes());
        match peer {
            IpAddr::V4(a) => {
                self.out.extend_from_slice(&1u16.to_be_bytes());
                self.out.extend_from_slice(&a.octets());
                self.out.extend_from_slice(&[0; 4]);
            }
            IpAddr::V6(a) => {
                self.out.extend_from_slice(&2u16.to_be_bytes());
                self.out.extend_from_slice(&a.octets());
                self.out.extend_from_slice(&[0; 16]);
            }
        }
        self.out.extend_from_slice(message);
        self.finish(s);
    }
}

/// Split a whole (decompressed) dump into records; for tests and tools
/// that hold the file in memory.
pub fn records(mut buf: &[u8]) -> impl Iterator<Item = Result<Record, MrtError>> + '_ {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let n = match record_len(buf) {
            None => {
                buf = &[];
                return Some(err("truncated record header"));
            }
            Some(Err(e)) => {
                buf = &[];
                return Some(Err(e));
            }
            Some(Ok(n)) => n,
        };
        if n > buf.len() {
            buf = &[];
            return Some(err("truncated record"));
        }
        let (r, rest) = buf.split_at(n);
        buf = rest;
        Some(parse_record(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{AsPathSegment, Origin};
    use crate::{encode_update, UpdateOut};
    use std::net::Ipv4Addr;

    fn attrs(path: &[u32]) -> Attributes {
        Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(path.to_vec())],
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            mp_next_hop: Some("2001:db8::1".parse().unwrap()),
            local_pref: Some(150),
            communities: vec![(65000 << 16) | 7],
            large_communities: vec![[4_200_000_000, 1, 2]],
            ..Default::default()
        }
    }

    #[test]
    fn table_dump_v2_round_trip() {
        let peers = vec![
            MrtPeer {
                bgp_id: 1,
                address: "192.0.2.9".parse().unwrap(),
                asn: 4_200_000_001,
            },
            MrtPeer {
                bgp_id: 2,
                address: "2001:db8::9".parse().unwrap(),
                asn: 65002,
            },
        ];
        let a = attrs(&[4_200_000_001, 3356, 65010]);
        let b = attrs(&[65002, 65010]);
        let mut w = MrtWriter::default();
        w.peer_index(1000, 7, "test", &peers);
        let p4: Prefix = "203.0.113.0/24".parse().unwrap();
        let p6: Prefix = "2001:db8:100::/48".parse().unwrap();
        w.rib(1000, &p4, &[(0, None, &a), (1, None, &b)]);
        w.rib(1000, &p6, &[(1, Some(5), &b)]);
        let recs: Vec<Record> = records(&w.out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            recs[0],
            Record::PeerIndex {
                collector_id: 7,
                view: "test".into(),
                peers
            }
        );
        let Record::Rib { prefix, entries, .. } = &recs[1] else {
            panic!()
        };
        assert_eq!(*prefix, p4);
        let mut want_a = a.clone();
        want_a.mp_next_hop = None;
        assert_eq!(entries[0].attrs.as_ref().unwrap(), &want_a);
        assert_eq!(entries[1].peer_index, 1);
        let Record::Rib { prefix, entries, .. } = &recs[2] else {
            panic!()
        };
        assert_eq!(*prefix, p6);
        assert_eq!(entries[0].path_id, Some(5));
        let got = entries[0].attrs.as_ref().unwrap();
        assert_eq!(got.mp_next_hop, b.mp_next_hop);
        assert_eq!(got.as_path, b.as_path);
    }

    #[test]
    fn bgp4mp_updates_and_errors() {
        let ctx = SessionCtx {
            four_octet_as: true,
            ..Default::default()
        };
        let a = attrs(&[65001, 65010]);
        let n = [Nlri {
            path_id: None,
            prefix: "198.51.100.0/24".parse().unwrap(),
        }];
        let mut msg = Vec::new();
        encode_update(
            &UpdateOut {
                withdrawn: &[],
                announced: &n,
                attrs: &a,
            },
            &ctx,
            &mut msg,
        );
        let mut w = MrtWriter::default();
        let peer: IpAddr = "192.0.2.9".parse().unwrap();
        w.bgp4mp_as4(5, peer, 65001, 64600, &msg);
        let rec = records(&w.out).next().unwrap().unwrap();
        let Record::Update { peer: p, update, .. } = rec else {
            panic!()
        };
        assert_eq!(p, peer);
        assert_eq!(update.announced, n);
        // Truncation anywhere is an error, never a panic.
        for cut in 0..w.out.len() {
            for r in records(&w.out[..cut]) {
                assert!(r.is_err() || cut == 0);
            }
        }
        // A record claiming to be huge is refused before it is read.
        let mut huge = w.out.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(records(&huge).next().unwrap().is_err());
    }
}
