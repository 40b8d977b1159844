//! Path attributes (RFC 4271 §5, RFC 6793, RFC 1997, RFC 8092, RFC 4760)
//! with RFC 7606's error handling.

use crate::message::{DecodeError, ParsedUpdate};
use crate::nlri::{self, Afi};
use crate::{notif, SessionCtx};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ORIGIN: u8 = 1;
pub const AS_PATH: u8 = 2;
pub const NEXT_HOP: u8 = 3;
pub const MED: u8 = 4;
pub const LOCAL_PREF: u8 = 5;
pub const ATOMIC_AGGREGATE: u8 = 6;
pub const AGGREGATOR: u8 = 7;
pub const COMMUNITIES: u8 = 8;
pub const MP_REACH: u8 = 14;
pub const MP_UNREACH: u8 = 15;
pub const AS4_PATH: u8 = 17;
pub const AS4_AGGREGATOR: u8 = 18;
pub const LARGE_COMMUNITIES: u8 = 32;

pub const FLAG_OPTIONAL: u8 = 0x80;
pub const FLAG_TRANSITIVE: u8 = 0x40;
pub const FLAG_PARTIAL: u8 = 0x20;
pub const FLAG_EXTENDED: u8 = 0x10;

/// AS_TRANS (RFC 6793): stands for a 4-octet AS in 2-octet fields.
pub const AS_TRANS: u32 = 23456;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AsPathSegment {
    Set(Vec<u32>),
    Sequence(Vec<u32>),
}

impl AsPathSegment {
    pub fn asns(&self) -> &[u32] {
        match self {
            AsPathSegment::Set(v) | AsPathSegment::Sequence(v) => v,
        }
    }

    /// RFC 4271 §9.1.2.2: a set counts as one, a sequence as its length.
    pub fn path_len(&self) -> usize {
        match self {
            AsPathSegment::Set(_) => 1,
            AsPathSegment::Sequence(v) => v.len(),
        }
    }
}

/// An attribute petrel does not interpret; optional transitive ones are kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnknownAttr {
    pub flags: u8,
    pub code: u8,
    pub value: Vec<u8>,
}

/// The attributes of one UPDATE, owned, ready to be interned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub origin: Option<Origin>,
    pub as_path: Vec<AsPathSegment>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
    /// From MP_REACH_NLRI: the (global) next hop of the multiprotocol routes.
    pub mp_next_hop: Option<IpAddr>,
    pub unknown: Vec<UnknownAttr>,
}

impl Attributes {
    /// Empty, keeping allocations for the next set parsed into it; the AS
    /// path is left for the parser to overwrite in place.
    fn reset(&mut self) {
        self.origin = None;
        self.next_hop = None;
        self.med = None;
        self.local_pref = None;
        self.atomic_aggregate = false;
        self.aggregator = None;
        self.communities.clear();
        self.large_communities.clear();
        self.mp_next_hop = None;
        self.unknown.clear();
    }

    /// AS path length for best-path selection.
    pub fn as_path_len(&self) -> usize {
        self.as_path.iter().map(AsPathSegment::path_len).sum()
    }

    /// The AS that originated the route: the last AS of the last sequence.
    pub fn origin_as(&self) -> Option<u32> {
        match self.as_path.last()? {
            AsPathSegment::Sequence(v) => v.last().copied(),
            AsPathSegment::Set(_) => None,
        }
    }

    /// The AS path as routers print it: sequences space-separated, sets
    /// as `{a,b}`.
    pub fn as_path_text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for seg in &self.as_path {
            match seg {
                AsPathSegment::Sequence(v) => parts.extend(v.iter().map(|x| x.to_string())),
                AsPathSegment::Set(v) => parts.push(format!(
                    "{{{}}}",
                    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
                )),
            }
        }
        parts.join(" ")
    }

    /// Communities as `asn:value` (well-known ones by their RFC 1997 names),
    /// then large communities as `global:local1:local2`.
    pub fn community_texts(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .communities
            .iter()
            .map(|&c| match c {
                0xffff_ff01 => "no-export".to_string(),
                0xffff_ff02 => "no-advertise".to_string(),
                0xffff_ff03 => "no-export-subconfed".to_string(),
                c => format!("{}:{}", c >> 16, c & 0xffff),
            })
            .collect();
        out.extend(
            self.large_communities
                .iter()
                .map(|[g, l1, l2]| format!("{g}:{l1}:{l2}")),
        );
        out
    }

    /// All ASNs of the path in order (sets flattened).
    pub fn asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.as_path.iter().flat_map(|s| s.asns().iter().copied())
    }
}

/// What parsing the attributes of one UPDATE found of MP-BGP; the rest
/// went into the [`ParsedUpdate`] being filled.
#[derive(Debug, Default)]
pub(crate) struct MpSeen {
    pub reach_afi: Option<Afi>,
    pub unreach_afi: Option<Afi>,
    /// Prefixes MP_REACH_NLRI / MP_UNREACH_NLRI added.
    pub reached: usize,
    pub unreached: usize,
}

/// An UPDATE error that ends the session (RFC 7606 §3: no attribute-level
/// handling applies): UPDATE Message Error with this subcode.
fn fatal(subcode: u8, data: &[u8], reason: impl Into<String>) -> DecodeError {
    DecodeError {
        code: notif::UPDATE_MESSAGE,
        subcode,
        data: data.to_vec(),
        reason: reason.into(),
    }
}

/// Parse an AS_PATH (or AS4_PATH) into `out`, reusing its segments'
/// allocations (a session parses a million paths while a table loads).
/// `false`: malformed, and `out` holds no path.
fn parse_as_path_into(v: &[u8], four: bool, out: &mut Vec<AsPathSegment>) -> bool {
    let w = if four { 4 } else { 2 };
    let mut used = 0;
    let mut b = v;
    while !b.is_empty() {
        let ok = (|| {
            let (&t, rest) = b.split_first()?;
            let (&n, rest) = rest.split_first()?;
            let n = n as usize;
            // RFC 7606 §7.2: a zero-length segment is malformed; so are
            // AS_CONFED_SEQUENCE/SET (3, 4) from a non-confederation peer.
            if n == 0 || rest.len() < n * w || !(t == 1 || t == 2) {
                return None;
            }
            let asns = rest[..n * w].chunks_exact(w).map(|c| {
                if four {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u16::from_be_bytes([c[0], c[1]]) as u32
                }
            });
            if used == out.len() {
                out.push(AsPathSegment::Sequence(Vec::with_capacity(n)));
            }
            let seg = &mut out[used];
            let mut asns_v = match seg {
                AsPathSegment::Set(x) | AsPathSegment::Sequence(x) => std::mem::take(x),
            };
            asns_v.clear();
            asns_v.extend(asns);
            *seg = if t == 1 {
                AsPathSegment::Set(asns_v)
            } else {
                AsPathSegment::Sequence(asns_v)
            };
            b = &rest[n * w..];
            Some(())
        })();
        if ok.is_none() {
            out.clear();
            return false;
        }
        used += 1;
    }
    out.truncate(used);
    true
}

fn parse_as_path(v: &[u8], four: bool) -> Option<Vec<AsPathSegment>> {
    let mut out = Vec::new();
    parse_as_path_into(v, four, &mut out).then_some(out)
}

/// RFC 6793 §4.2.3: rebuild the path from AS_PATH and AS4_PATH.
fn merge_as4(as_path: Vec<AsPathSegment>, as4: Vec<AsPathSegment>) -> Vec<AsPathSegment> {
    let n2: usize = as_path.iter().map(AsPathSegment::path_len).sum();
    let n4: usize = as4.iter().map(AsPathSegment::path_len).sum();
    if n4 > n2 {
        return as_path; // AS4_PATH is ignored
    }
    // Keep the leading (n2 - n4) ASNs of AS_PATH, then AS4_PATH.
    let mut keep = n2 - n4;
    let mut out = Vec::new();
    for seg in as_path {
        if keep == 0 {
            break;
        }
        match seg {
            AsPathSegment::Sequence(v) => {
                let take = keep.min(v.len());
                keep -= take;
                out.push(AsPathSegment::Sequence(v[..take].to_vec()));
            }
            s @ AsPathSegment::Set(_) => {
                keep -= 1;
                out.push(s);
            }
        }
    }
    out.extend(as4);
    out
}

/// Parse the path attribute field of an UPDATE into `out`: its
/// attributes (reusing their allocations), MP_REACH_NLRI prefixes appended
/// to `out.announced`, MP_UNREACH_NLRI ones to `out.withdrawn`, RFC 7606
/// outcomes to `out.treat_as_withdraw` and `out.discarded`.
///
/// `mrt_rib`: attributes of an MRT TABLE_DUMP_V2 RIB entry, where
/// MP_REACH_NLRI holds only the next hop (RFC 6396 §4.3.4).
pub(crate) fn parse_into(
    mut b: &[u8],
    ctx: &SessionCtx,
    has_nlri: bool,
    mrt_rib: bool,
    out: &mut ParsedUpdate,
) -> Result<MpSeen, DecodeError> {
    let mut mp = MpSeen::default();
    out.attrs.reset();
    let mut seen = [false; 256];
    let mut as4_path: Option<Vec<AsPathSegment>> = None;
    let mut as4_aggregator: Option<(u32, Ipv4Addr)> = None;
    let withdraw = |o: &mut ParsedUpdate, why: String| {
        if o.treat_as_withdraw.is_none() {
            o.treat_as_withdraw = Some(why);
        }
    };
    while !b.is_empty() {
        // RFC 7606 §4: an attribute that overruns the attribute field, or a
        // remainder too short for any attribute, is "treat-as-withdraw":
        // the Total Path Attribute Length still locates the NLRI field, and
        // the attributes before this one were whole. Only when the broken
        // attribute is MP_REACH_NLRI or MP_UNREACH_NLRI are its prefixes
        // lost, and then the session must be reset (§4, last paragraph;
        // §5.3).
        let code = b.get(1).copied();
        let hdr = if b[0] & FLAG_EXTENDED != 0 { 4 } else { 3 };
        let len = match b.len() >= hdr {
            true if hdr == 4 => u16::from_be_bytes([b[2], b[3]]) as usize,
            true => b[2] as usize,
            false => usize::MAX,
        };
        if len == usize::MAX || b.len() - hdr < len {
            if let Some(c @ (MP_REACH | MP_UNREACH)) = code {
                return Err(fatal(
                    notif::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                    format!("attribute {c} overruns the attribute field"),
                ));
            }
            let why = match code {
                Some(c) if len != usize::MAX => format!("attribute {c} overruns the attribute field"),
                _ => "truncated attribute header".to_string(),
            };
            withdraw(out, why);
            break;
        }
        let flags = b[0];
        let code = b[1];
        let raw = &b[..hdr + len];
        let v = &b[hdr..hdr + len];
        b = &b[hdr + len..];
        if seen[code as usize] {
            // RFC 7606 §3 g: repeated MP_(UN)REACH ends the session; other
            // repeats: all but the first are discarded.
            if code == MP_REACH || code == MP_UNREACH {
                return Err(fatal(
                    notif::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                    format!("attribute {code} repeated"),
                ));
            }
            out.discarded.push(format!("repeated attribute {code}"));
            continue;
        }
        seen[code as usize] = true;
        // RFC 7606 §3 c: wrong flags on a known attribute: treat by the
        // attribute's own rule below (here: as malformed).
        let flags_ok = match code {
            ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => {
                flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == FLAG_TRANSITIVE
            }
            MED | MP_REACH | MP_UNREACH => flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == FLAG_OPTIONAL,
            AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITIES => {
                flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == FLAG_OPTIONAL | FLAG_TRANSITIVE
            }
            _ => true,
        };
        match code {
            ORIGIN => match (flags_ok, v) {
                (true, [x]) if *x <= 2 => {
                    out.attrs.origin = Some([Origin::Igp, Origin::Egp, Origin::Incomplete][*x as usize])
                }
                _ => withdraw(out, "malformed ORIGIN".into()),
            },
            AS_PATH => {
                if !(flags_ok && parse_as_path_into(v, ctx.four_octet_as, &mut out.attrs.as_path)) {
                    withdraw(out, "malformed AS_PATH".into());
                }
            }
            NEXT_HOP => match (flags_ok, v) {
                (true, [a, b_, c, d]) => {
                    let nh = Ipv4Addr::new(*a, *b_, *c, *d);
                    // RFC 7606 §7.3: a semantically invalid next hop is
                    // treat-as-withdraw.
                    if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                        withdraw(out, format!("invalid NEXT_HOP {nh}"));
                    } else {
                        out.attrs.next_hop = Some(nh);
                    }
                }
                _ => withdraw(out, "malformed NEXT_HOP".into()),
            },
            MED => match (flags_ok, v) {
                (true, [a, b_, c, d]) => out.attrs.med = Some(u32::from_be_bytes([*a, *b_, *c, *d])),
                _ => withdraw(out, "malformed MULTI_EXIT_DISC".into()),
            },
            LOCAL_PREF => {
                if !ctx.ibgp {
                    // RFC 7606 §7.5: from an external peer it is discarded,
                    // malformed or not.
                    out.discarded.push("LOCAL_PREF from an external peer".into());
                } else {
                    match (flags_ok, v) {
                        (true, [a, b_, c, d]) => out.attrs.local_pref = Some(u32::from_be_bytes([*a, *b_, *c, *d])),
                        _ => withdraw(out, "malformed LOCAL_PREF".into()),
                    }
                }
            }
            ATOMIC_AGGREGATE => {
                if flags_ok && v.is_empty() {
                    out.attrs.atomic_aggregate = true;
                } else {
                    out.discarded.push("malformed ATOMIC_AGGREGATE".into());
                }
            }
            AGGREGATOR => {
                let w = if ctx.four_octet_as { 4 } else { 2 };
                if flags_ok && v.len() == w + 4 {
                    let asn = if w == 4 {
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]])
                    } else {
                        u16::from_be_bytes([v[0], v[1]]) as u32
                    };
                    out.attrs.aggregator = Some((asn, Ipv4Addr::new(v[w], v[w + 1], v[w + 2], v[w + 3])));
                } else {
                    out.discarded.push("malformed AGGREGATOR".into());
                }
            }
            COMMUNITIES => {
                if flags_ok && v.len().is_multiple_of(4) && !v.is_empty() {
                    out.attrs
                        .communities
                        .extend(v.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])));
                } else {
                    withdraw(out, "malformed COMMUNITIES".into());
                }
            }
            LARGE_COMMUNITIES => {
                if flags_ok && v.len().is_multiple_of(12) && !v.is_empty() {
                    out.attrs.large_communities.extend(v.chunks_exact(12).map(|c| {
                        let g = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                        [g(0), g(4), g(8)]
                    }));
                } else {
                    withdraw(out, "malformed LARGE_COMMUNITY".into());
                }
            }
            AS4_PATH => {
                // RFC 6793 §6 / RFC 7606 §7.? : malformed AS4_PATH is
                // discarded; from a 4-octet peer it should not appear at all.
                match parse_as_path(v, true).filter(|_| flags_ok && !ctx.four_octet_as) {
                    Some(p) => as4_path = Some(p),
                    None => out.discarded.push("AS4_PATH discarded".into()),
                }
            }
            AS4_AGGREGATOR => {
                if flags_ok && v.len() == 8 && !ctx.four_octet_as {
                    as4_aggregator = Some((
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        Ipv4Addr::new(v[4], v[5], v[6], v[7]),
                    ));
                } else {
                    out.discarded.push("AS4_AGGREGATOR discarded".into());
                }
            }
            MP_REACH => parse_mp_reach(v, ctx, out, &mut mp, flags_ok, mrt_rib)?,
            MP_UNREACH => parse_mp_unreach(v, ctx, out, &mut mp)?,
            _ if !flags_ok || (flags & FLAG_OPTIONAL == 0) => {
                // An unrecognized well-known attribute (RFC 4271 §6.3).
                return Err(fatal(
                    notif::UNRECOGNIZED_WELL_KNOWN,
                    raw,
                    format!("unrecognized well-known attribute {code}"),
                ));
            }
            _ => {
                if flags & FLAG_TRANSITIVE != 0 {
                    out.attrs.unknown.push(UnknownAttr {
                        flags,
                        code,
                        value: v.to_vec(),
                    });
                }
                // Unknown optional non-transitive attributes are quietly dropped.
            }
        }
    }
    // The path in `out` is this UPDATE's only if it had an AS_PATH: the
    // parser overwrites the previous one in place.
    if !seen[AS_PATH as usize] {
        out.attrs.as_path.clear();
    }
    if let Some(p4) = as4_path {
        let path = std::mem::take(&mut out.attrs.as_path);
        out.attrs.as_path = merge_as4(path, p4);
    }
    if let (Some((AS_TRANS, _)), Some(a4)) = (out.attrs.aggregator, as4_aggregator) {
        out.attrs.aggregator = Some(a4);
    }
    // Mandatory attributes when there is something to announce (RFC 7606 §3 d).
    let announces = has_nlri || mp.reached > 0;
    if announces && out.treat_as_withdraw.is_none() {
        if out.attrs.origin.is_none() {
            out.treat_as_withdraw = Some("missing ORIGIN".into());
        } else if !seen[AS_PATH as usize] {
            out.treat_as_withdraw = Some("missing AS_PATH".into());
        } else if has_nlri && out.attrs.next_hop.is_none() {
            out.treat_as_withdraw = Some("missing NEXT_HOP".into());
        }
    }
    Ok(mp)
}

fn afi_of(v: &[u8]) -> Option<(Afi, u8)> {
    if v.len() < 3 {
        return None;
    }
    Some((Afi::from_u16(u16::from_be_bytes([v[0], v[1]]))?, v[2]))
}

fn parse_mp_reach(
    v: &[u8],
    ctx: &SessionCtx,
    o: &mut ParsedUpdate,
    mp: &mut MpSeen,
    flags_ok: bool,
    mrt_rib: bool,
) -> Result<(), DecodeError> {
    // RFC 7606 §7.11: if AFI/SAFI or the NLRI cannot be made out, only a
    // session reset is safe.
    let bad = |why: &str| {
        fatal(
            notif::OPTIONAL_ATTRIBUTE_ERROR,
            &[],
            format!("malformed MP_REACH_NLRI: {why}"),
        )
    };
    // MRT RIB entries abbreviate it to the next hop (length, address); some
    // writers keep the full form, which the length byte tells apart.
    if mrt_rib && !v.is_empty() && v[0] as usize == v.len() - 1 {
        let nh = &v[1..];
        o.attrs.mp_next_hop = match nh.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))),
            16 | 32 => {
                let mut g = [0u8; 16];
                g.copy_from_slice(&nh[..16]);
                Some(IpAddr::V6(Ipv6Addr::from(g)))
            }
            _ => return Err(bad("next hop of an odd length")),
        };
        return Ok(());
    }
    let (afi, safi) = afi_of(v).ok_or_else(|| bad("truncated"))?;
    if safi != 1 {
        return Ok(()); // not unicast: not ours, ignore the whole attribute
    }
    let nh_len = *v.get(3).ok_or_else(|| bad("truncated"))? as usize;
    let nh = v.get(4..4 + nh_len).ok_or_else(|| bad("next hop overruns"))?;
    let rest = v.get(4 + nh_len..).ok_or_else(|| bad("truncated"))?;
    let (_, nlri) = rest.split_first().ok_or_else(|| bad("missing reserved octet"))?;
    let add_path = match afi {
        Afi::Ipv4 => ctx.add_path_v4,
        Afi::Ipv6 => ctx.add_path_v6,
    };
    let before = o.announced.len();
    nlri::parse(nlri, afi.family(), add_path, &mut o.announced).map_err(|e| bad(&e))?;
    mp.reached = o.announced.len() - before;
    mp.reach_afi = Some(afi);
    let next_hop = match (afi, nh_len) {
        (Afi::Ipv4, 4) => Some(IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))),
        (Afi::Ipv6, 16) | (Afi::Ipv6, 32) => {
            let mut g = [0u8; 16];
            g.copy_from_slice(&nh[..16]);
            Some(IpAddr::V6(Ipv6Addr::from(g)))
        }
        // IPv4 NLRI with an IPv6 next hop (RFC 8950).
        (Afi::Ipv4, 16) | (Afi::Ipv4, 32) => {
            let mut g = [0u8; 16];
            g.copy_from_slice(&nh[..16]);
            Some(IpAddr::V6(Ipv6Addr::from(g)))
        }
        _ => None,
    };
    match next_hop {
        Some(nh) if flags_ok => o.attrs.mp_next_hop = Some(nh),
        _ => {
            if o.treat_as_withdraw.is_none() {
                o.treat_as_withdraw = Some("MP_REACH_NLRI with an unusable next hop".into());
            }
        }
    }
    Ok(())
}

fn parse_mp_unreach(v: &[u8], ctx: &SessionCtx, o: &mut ParsedUpdate, mp: &mut MpSeen) -> Result<(), DecodeError> {
    let bad = |why: &str| {
        fatal(
            notif::OPTIONAL_ATTRIBUTE_ERROR,
            &[],
            format!("malformed MP_UNREACH_NLRI: {why}"),
        )
    };
    let (afi, safi) = afi_of(v).ok_or_else(|| bad("truncated"))?;
    if safi != 1 {
        return Ok(());
    }
    let add_path = match afi {
        Afi::Ipv4 => ctx.add_path_v4,
        Afi::Ipv6 => ctx.add_path_v6,
    };
    let before = o.withdrawn.len();
    nlri::parse(&v[3..], afi.family(), add_path, &mut o.withdrawn).map_err(|e| bad(&e))?;
    mp.unreached = o.withdrawn.len() - before;
    mp.unreach_afi = Some(afi);
    Ok(())
}
