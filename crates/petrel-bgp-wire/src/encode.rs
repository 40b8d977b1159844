//! Writing messages.

use crate::attrs::{self, AsPathSegment, Attributes};
use crate::message::Message;
use crate::nlri::{self, Nlri};
use crate::SessionCtx;
use petrel_types::Family;
use std::net::IpAddr;

fn header(out: &mut Vec<u8>, t: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, t]);
    start
}

fn finish(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as u16;
    out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
}

/// Append an OPEN, KEEPALIVE, NOTIFICATION or ROUTE-REFRESH. (UPDATEs are
/// written with [`encode_update`].)
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) {
    match msg {
        Message::Open(o) => {
            let s = header(out, 1);
            out.push(o.version);
            out.extend_from_slice(&o.my_as.to_be_bytes());
            out.extend_from_slice(&o.hold_time.to_be_bytes());
            out.extend_from_slice(&o.bgp_id.to_be_bytes());
            let mut caps = Vec::new();
            for c in &o.capabilities {
                c.write(&mut caps);
            }
            if caps.is_empty() {
                out.push(0);
            } else {
                out.push((caps.len() + 2) as u8);
                out.push(2);
                out.push(caps.len() as u8);
                out.extend_from_slice(&caps);
            }
            finish(out, s);
        }
        Message::Keepalive => {
            let s = header(out, 4);
            finish(out, s);
        }
        Message::Notification(n) => {
            let s = header(out, 3);
            out.push(n.code);
            out.push(n.subcode);
            out.extend_from_slice(n.data);
            finish(out, s);
        }
        Message::RouteRefresh(r) => {
            let s = header(out, 5);
            out.extend_from_slice(&r.afi.to_be_bytes());
            out.push(0);
            out.push(r.safi);
            finish(out, s);
        }
        Message::Update(u) => {
            let s = header(out, 2);
            out.extend_from_slice(&(u.withdrawn.len() as u16).to_be_bytes());
            out.extend_from_slice(u.withdrawn);
            out.extend_from_slice(&(u.attributes.len() as u16).to_be_bytes());
            out.extend_from_slice(u.attributes);
            out.extend_from_slice(u.nlri);
            finish(out, s);
        }
    }
}

/// An UPDATE to write: IPv4 routes go in the classic fields, IPv6 ones in
/// MP_REACH/MP_UNREACH_NLRI.
pub struct UpdateOut<'a> {
    pub withdrawn: &'a [Nlri],
    pub announced: &'a [Nlri],
    pub attrs: &'a Attributes,
}

pub(crate) fn attr(out: &mut Vec<u8>, flags: u8, code: u8, v: &[u8]) {
    if v.len() > 255 {
        out.push(flags | attrs::FLAG_EXTENDED);
        out.push(code);
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    } else {
        out.push(flags);
        out.push(code);
        out.push(v.len() as u8);
    }
    out.extend_from_slice(v);
}

/// Append one UPDATE. The caller keeps it within the session's size limit.
pub fn encode_update(u: &UpdateOut<'_>, ctx: &SessionCtx, out: &mut Vec<u8>) {
    let s = header(out, 2);
    let (w4, w6): (Vec<&Nlri>, Vec<&Nlri>) = u.withdrawn.iter().partition(|n| n.prefix.family() == Family::V4);
    let (a4, a6): (Vec<&Nlri>, Vec<&Nlri>) = u.announced.iter().partition(|n| n.prefix.family() == Family::V4);
    let mut wbuf = Vec::new();
    for n in &w4 {
        nlri::write(&mut wbuf, n);
    }
    out.extend_from_slice(&(wbuf.len() as u16).to_be_bytes());
    out.extend_from_slice(&wbuf);
    let mut ab = Vec::new();
    let on = attrs::FLAG_OPTIONAL;
    let announcing = !a4.is_empty() || !a6.is_empty();
    // RFC 8950: IPv4 routes with an IPv6 next hop (and no NEXT_HOP) go in
    // MP_REACH_NLRI, which then cannot also carry IPv6 routes.
    let v4_in_mp = matches!((u.attrs.next_hop, u.attrs.mp_next_hop), (None, Some(IpAddr::V6(_)))) && !a4.is_empty();
    debug_assert!(!v4_in_mp || a6.is_empty(), "one MP_REACH_NLRI per UPDATE");
    if announcing {
        let a = u.attrs;
        write_attrs(&mut ab, a, ctx, !a4.is_empty() && !v4_in_mp);
        if v4_in_mp {
            let mut v = vec![0, 1, 1, 16];
            if let Some(IpAddr::V6(nh)) = a.mp_next_hop {
                v.extend_from_slice(&nh.octets());
            }
            v.push(0);
            for n in &a4 {
                nlri::write(&mut v, n);
            }
            attr(&mut ab, on, attrs::MP_REACH, &v);
        } else if !a6.is_empty() {
            let mut v = vec![0, 2, 1];
            match a.mp_next_hop {
                Some(IpAddr::V6(nh)) => {
                    v.push(16);
                    v.extend_from_slice(&nh.octets());
                }
                _ => {
                    v.push(16);
                    v.extend_from_slice(&[0; 16]);
                }
            }
            v.push(0);
            for n in &a6 {
                nlri::write(&mut v, n);
            }
            attr(&mut ab, on, attrs::MP_REACH, &v);
        }
    }
    if !w6.is_empty() {
        let mut v = vec![0, 2, 1];
        for n in &w6 {
            nlri::write(&mut v, n);
        }
        attr(&mut ab, on, attrs::MP_UNREACH, &v);
    }
    out.extend_from_slice(&(ab.len() as u16).to_be_bytes());
    out.extend_from_slice(&ab);
    if !v4_in_mp {
        for n in &a4 {
            nlri::write(out, n);
        }
    }
    finish(out, s);
}

/// The path attributes of `a` (without MP_REACH_NLRI), as an UPDATE or an
/// MRT RIB entry carries them; NEXT_HOP only with `next_hop_v4`.
pub(crate) fn write_attrs(ab: &mut Vec<u8>, a: &Attributes, ctx: &SessionCtx, next_hop_v4: bool) {
    let t = attrs::FLAG_TRANSITIVE;
    let ot = attrs::FLAG_OPTIONAL | attrs::FLAG_TRANSITIVE;
    let on = attrs::FLAG_OPTIONAL;
    attr(ab, t, attrs::ORIGIN, &[a.origin.map_or(2, |o| o as u8)]);
    let mut p = Vec::new();
    for seg in &a.as_path {
        let (ty, asns) = match seg {
            AsPathSegment::Set(v) => (1u8, v),
            AsPathSegment::Sequence(v) => (2u8, v),
        };
        for chunk in asns.chunks(255) {
            p.push(ty);
            p.push(chunk.len() as u8);
            for &asn in chunk {
                if ctx.four_octet_as {
                    p.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = if asn > 65535 {
                        attrs::AS_TRANS as u16
                    } else {
                        asn as u16
                    };
                    p.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
    }
    attr(ab, t, attrs::AS_PATH, &p);
    if next_hop_v4 {
        let nh = a.next_hop.map_or([0; 4], |n| n.octets());
        attr(ab, t, attrs::NEXT_HOP, &nh);
    }
    if let Some(m) = a.med {
        attr(ab, on, attrs::MED, &m.to_be_bytes());
    }
    if let Some(lp) = a.local_pref {
        if ctx.ibgp {
            attr(ab, t, attrs::LOCAL_PREF, &lp.to_be_bytes());
        }
    }
    if a.atomic_aggregate {
        attr(ab, t, attrs::ATOMIC_AGGREGATE, &[]);
    }
    if !a.communities.is_empty() {
        let v: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        attr(ab, ot, attrs::COMMUNITIES, &v);
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|c| c.iter().flat_map(|x| x.to_be_bytes()))
            .collect();
        attr(ab, ot, attrs::LARGE_COMMUNITIES, &v);
    }
    for un in &a.unknown {
        attr(ab, un.flags & !attrs::FLAG_EXTENDED, un.code, &un.value);
    }
}
