//! The BGP Monitoring Protocol (RFC 7854), with the Loc-RIB peer type of
//! RFC 9069 and the Adj-RIB-Out flag of RFC 8671, without IO.
//!
//! A router (the BMP speaker) connects to petrel and streams what it holds
//! for each of its peers: a Peer Up with both OPENs, then one Route
//! Monitoring message per UPDATE, a Peer Down when the session ends.
//! [`message_len`] frames the stream, [`parse`] reads one message, and
//! [`Monitor`] keeps what decoding a monitored peer's UPDATEs depends on:
//! its negotiated session (ADD-PATH per family, internal or external) as
//! the Peer Up's two OPENs tell it, and the per-message 2-octet-AS flag.
//! [`BmpWriter`] writes messages (fixtures and tests).

use crate::cursor::{Cur, Truncated};
use crate::message::{decode, Message as BgpMessage};
use crate::nlri::Afi;
use crate::open::Open;
use crate::{ParsedUpdate, SessionCtx};
use std::collections::HashMap;
use std::net::IpAddr;

pub const VERSION: u8 = 3;
const COMMON_HEADER: usize = 6;
const PER_PEER_HEADER: usize = 42;
/// Largest message accepted. A Route Monitoring message carries one BGP
/// message (at most 65535 octets with RFC 8654); the rest are small. A
/// larger length means the stream is not BMP or has lost its framing.
pub const MAX_MESSAGE: usize = 1 << 20;

pub const ROUTE_MONITORING: u8 = 0;
pub const STATISTICS: u8 = 1;
pub const PEER_DOWN: u8 = 2;
pub const PEER_UP: u8 = 3;
pub const INITIATION: u8 = 4;
pub const TERMINATION: u8 = 5;
pub const ROUTE_MIRRORING: u8 = 6;

/// Peer types (RFC 7854 §4.2, RFC 9069 §4.1).
pub const PEER_GLOBAL: u8 = 0;
pub const PEER_RD_INSTANCE: u8 = 1;
pub const PEER_LOCAL_INSTANCE: u8 = 2;
pub const PEER_LOC_RIB: u8 = 3;

/// Peer flags for types 0–2.
pub const FLAG_V6: u8 = 0x80;
pub const FLAG_POST_POLICY: u8 = 0x40;
pub const FLAG_TWO_OCTET_AS: u8 = 0x20;
pub const FLAG_ADJ_RIB_OUT: u8 = 0x10;
/// Peer flag for type 3: the Loc-RIB is filtered (RFC 9069 §4.2).
pub const FLAG_LOC_RIB_FILTERED: u8 = 0x80;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BmpError(pub String);

impl std::fmt::Display for BmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BmpError {}

fn err<T>(m: impl Into<String>) -> Result<T, BmpError> {
    Err(BmpError(m.into()))
}

/// Which RIB a Route Monitoring message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RibKind {
    /// Adj-RIB-In as received (RFC 7854).
    PrePolicyIn,
    /// Adj-RIB-In after the router's import policy (RFC 7854).
    PostPolicyIn,
    /// Adj-RIB-Out, before or after export policy (RFC 8671).
    PrePolicyOut,
    PostPolicyOut,
    /// The router's selected routes (RFC 9069).
    LocRib,
}

/// Who a per-peer header speaks of: RFC 7854 §4.2 names a peer by its
/// type, distinguisher and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub peer_type: u8,
    pub distinguisher: u64,
    pub address: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHeader {
    pub peer_type: u8,
    pub flags: u8,
    pub distinguisher: u64,
    /// Unspecified for a Loc-RIB "peer".
    pub address: IpAddr,
    pub asn: u32,
    pub bgp_id: u32,
    pub timestamp: u32,
    pub timestamp_us: u32,
}

impl PeerHeader {
    pub fn key(&self) -> PeerKey {
        PeerKey {
            peer_type: self.peer_type,
            distinguisher: self.distinguisher,
            address: self.address,
        }
    }

    pub fn rib(&self) -> RibKind {
        if self.peer_type == PEER_LOC_RIB {
            return RibKind::LocRib;
        }
        match (self.flags & FLAG_ADJ_RIB_OUT != 0, self.flags & FLAG_POST_POLICY != 0) {
            (false, false) => RibKind::PrePolicyIn,
            (false, true) => RibKind::PostPolicyIn,
            (true, false) => RibKind::PrePolicyOut,
            (true, true) => RibKind::PostPolicyOut,
        }
    }

    /// RFC 7854 §4.2: the A flag says the message's AS_PATH uses 2-octet
    /// AS numbers. Loc-RIB messages always use 4 (RFC 9069 §4.2).
    pub fn two_octet_as(&self) -> bool {
        self.peer_type != PEER_LOC_RIB && self.flags & FLAG_TWO_OCTET_AS != 0
    }

    fn ipv6(&self) -> bool {
        self.peer_type != PEER_LOC_RIB && self.flags & FLAG_V6 != 0
    }
}

/// An information TLV (Initiation, Termination, Peer Up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoTlv {
    pub kind: u16,
    pub value: Vec<u8>,
}

impl InfoTlv {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// Initiation TLV types (RFC 7854 §4.4).
pub const INFO_STRING: u16 = 0;
pub const INFO_SYS_DESCR: u16 = 1;
pub const INFO_SYS_NAME: u16 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUp {
    pub peer: PeerHeader,
    pub local_address: IpAddr,
    pub local_port: u16,
    pub remote_port: u16,
    pub sent_open: Open,
    pub received_open: Open,
    pub info: Vec<InfoTlv>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerDownReason {
    /// 1: the router closed the session with this NOTIFICATION.
    LocalNotification {
        code: u8,
        subcode: u8,
    },
    /// 2: the router closed the session without one; the FSM event.
    LocalNoNotification {
        fsm_event: u16,
    },
    /// 3: the peer closed the session with this NOTIFICATION.
    RemoteNotification {
        code: u8,
        subcode: u8,
    },
    /// 4: the peer closed the session without a NOTIFICATION.
    RemoteNoNotification,
    /// 5: the peer is no longer monitored (de-configured).
    Deconfigured,
    /// 6: a Loc-RIB instance went away (RFC 9069 §4.6).
    LocalSystemClosed,
    Other(u8),
}

impl std::fmt::Display for PeerDownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerDownReason::LocalNotification { code, subcode } => {
                write!(f, "router closed the session (NOTIFICATION {code}/{subcode})")
            }
            PeerDownReason::LocalNoNotification { fsm_event } => {
                write!(f, "router closed the session (FSM event {fsm_event})")
            }
            PeerDownReason::RemoteNotification { code, subcode } => {
                write!(f, "peer closed the session (NOTIFICATION {code}/{subcode})")
            }
            PeerDownReason::RemoteNoNotification => f.write_str("peer closed the session"),
            PeerDownReason::Deconfigured => f.write_str("peer no longer monitored"),
            PeerDownReason::LocalSystemClosed => f.write_str("Loc-RIB instance closed"),
            PeerDownReason::Other(r) => write!(f, "reason {r}"),
        }
    }
}

/// One statistics counter (RFC 7854 §4.8); per-family gauges carry their
/// AFI and SAFI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: u16,
    pub family: Option<(u16, u8)>,
    pub value: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Initiation(Vec<InfoTlv>),
    Termination {
        reason: Option<u16>,
        info: Vec<InfoTlv>,
    },
    PeerUp(Box<PeerUp>),
    PeerDown {
        peer: PeerHeader,
        reason: PeerDownReason,
    },
    /// One BGP message (an UPDATE), still encoded; see [`Monitor::update`].
    RouteMonitoring {
        peer: PeerHeader,
        bgp: &'a [u8],
    },
    Statistics {
        peer: PeerHeader,
        stats: Vec<Stat>,
    },
    RouteMirroring {
        peer: PeerHeader,
    },
    /// A message type this reader does not use.
    Other {
        kind: u8,
    },
}

/// The length of the message at the start of `buf` once its common header
/// is there (`None`: more bytes needed).
pub fn message_len(buf: &[u8]) -> Option<Result<usize, BmpError>> {
    if buf.len() < COMMON_HEADER {
        return None;
    }
    if buf[0] != VERSION {
        return Some(err(format!(
            "BMP version {} (only version 3, RFC 7854, is spoken)",
            buf[0]
        )));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len < COMMON_HEADER {
        return Some(err(format!("message length {len} is shorter than its header")));
    }
    if len > MAX_MESSAGE {
        return Some(err(format!("message length {len} is larger than {MAX_MESSAGE}")));
    }
    Some(Ok(len))
}

impl From<Truncated> for BmpError {
    fn from(t: Truncated) -> BmpError {
        BmpError(t.0)
    }
}

/// Parse one complete message (`buf` holds exactly one, see [`message_len`]).
pub fn parse(buf: &[u8]) -> Result<Message<'_>, BmpError> {
    match message_len(buf) {
        None => return err("truncated common header"),
        Some(Err(e)) => return Err(e),
        Some(Ok(n)) if n != buf.len() => {
            return err(format!(
                "message length {n} does not match the {} bytes given",
                buf.len()
            ))
        }
        Some(Ok(_)) => {}
    }
    let kind = buf[5];
    let mut c = Cur {
        b: &buf[COMMON_HEADER..],
    };
    match kind {
        INITIATION => Ok(Message::Initiation(tlvs(&mut c, "initiation")?)),
        TERMINATION => {
            let all = tlvs(&mut c, "termination")?;
            let mut reason = None;
            let mut info = Vec::new();
            for t in all {
                if t.kind == 1 && t.value.len() == 2 {
                    reason = Some(u16::from_be_bytes([t.value[0], t.value[1]]));
                } else {
                    info.push(t);
                }
            }
            Ok(Message::Termination { reason, info })
        }
        ROUTE_MONITORING => {
            let peer = per_peer(&mut c)?;
            Ok(Message::RouteMonitoring { peer, bgp: c.b })
        }
        PEER_UP => peer_up(&mut c).map(|u| Message::PeerUp(Box::new(u))),
        PEER_DOWN => {
            let peer = per_peer(&mut c)?;
            let code = c.u8("peer down reason")?;
            let reason = match code {
                1 | 3 => {
                    let n = bgp_message(&mut c, "peer down NOTIFICATION")?;
                    if n.len() < 21 || n[18] != 3 {
                        return err("peer down data is not a NOTIFICATION");
                    }
                    if code == 1 {
                        PeerDownReason::LocalNotification {
                            code: n[19],
                            subcode: n[20],
                        }
                    } else {
                        PeerDownReason::RemoteNotification {
                            code: n[19],
                            subcode: n[20],
                        }
                    }
                }
                2 => PeerDownReason::LocalNoNotification {
                    fsm_event: c.u16("FSM event code")?,
                },
                4 => PeerDownReason::RemoteNoNotification,
                5 => PeerDownReason::Deconfigured,
                6 => PeerDownReason::LocalSystemClosed,
                o => PeerDownReason::Other(o),
            };
            Ok(Message::PeerDown { peer, reason })
        }
        STATISTICS => {
            let peer = per_peer(&mut c)?;
            let count = c.u32("statistics count")?;
            let mut stats = Vec::new();
            for _ in 0..count {
                let kind = c.u16("statistic type")?;
                let len = c.u16("statistic length")? as usize;
                let mut v = Cur {
                    b: c.take(len, "statistic value")?,
                };
                // Counters are 4 octets, gauges 8; per-family gauges (types
                // 9, 10 and later ones) prefix AFI and SAFI. Others are kept
                // out rather than misread.
                let stat = match len {
                    4 => Some(Stat {
                        kind,
                        family: None,
                        value: v.u32("counter")? as u64,
                    }),
                    8 => Some(Stat {
                        kind,
                        family: None,
                        value: v.u64("gauge")?,
                    }),
                    11 => {
                        let afi = v.u16("AFI")?;
                        let safi = v.u8("SAFI")?;
                        Some(Stat {
                            kind,
                            family: Some((afi, safi)),
                            value: v.u64("gauge")?,
                        })
                    }
                    _ => None,
                };
                stats.extend(stat);
            }
            Ok(Message::Statistics { peer, stats })
        }
        ROUTE_MIRRORING => Ok(Message::RouteMirroring {
            peer: per_peer(&mut c)?,
        }),
        _ => Ok(Message::Other { kind }),
    }
}

fn per_peer(c: &mut Cur<'_>) -> Result<PeerHeader, BmpError> {
    if c.b.len() < PER_PEER_HEADER {
        return err("truncated per-peer header");
    }
    let peer_type = c.u8("peer type")?;
    let flags = c.u8("peer flags")?;
    let distinguisher = c.u64("peer distinguisher")?;
    let v6 = peer_type != PEER_LOC_RIB && flags & FLAG_V6 != 0;
    let address = c.addr16(v6, "peer address")?;
    let asn = c.u32("peer AS")?;
    let bgp_id = c.u32("peer BGP ID")?;
    let timestamp = c.u32("timestamp")?;
    let timestamp_us = c.u32("timestamp")?;
    Ok(PeerHeader {
        peer_type,
        flags,
        distinguisher,
        address,
        asn,
        bgp_id,
        timestamp,
        timestamp_us,
    })
}

fn tlvs(c: &mut Cur<'_>, what: &str) -> Result<Vec<InfoTlv>, BmpError> {
    let mut out = Vec::new();
    while !c.b.is_empty() {
        let kind = c.u16(what)?;
        let len = c.u16(what)? as usize;
        out.push(InfoTlv {
            kind,
            value: c.take(len, what)?.to_vec(),
        });
    }
    Ok(out)
}

/// One whole BGP message from the cursor (header included).
fn bgp_message<'a>(c: &mut Cur<'a>, what: &str) -> Result<&'a [u8], BmpError> {
    if c.b.len() < 19 {
        return err(format!("truncated {what}"));
    }
    let len = u16::from_be_bytes([c.b[16], c.b[17]]) as usize;
    if len < 19 {
        return err(format!("{what}: BGP length {len}"));
    }
    Ok(c.take(len, what)?)
}

fn open_of(c: &mut Cur<'_>, what: &str) -> Result<Open, BmpError> {
    let m = bgp_message(c, what)?;
    let ctx = SessionCtx {
        extended_messages: true,
        ..Default::default()
    };
    match decode(m, &ctx) {
        Ok(Some((BgpMessage::Open(o), _))) => Ok(o),
        Ok(_) => err(format!("{what} is not an OPEN")),
        Err(e) => err(format!("{what}: {}", e.reason)),
    }
}

fn peer_up(c: &mut Cur<'_>) -> Result<PeerUp, BmpError> {
    let peer = per_peer(c)?;
    let local_address = c.addr16(peer.ipv6(), "local address")?;
    let local_port = c.u16("local port")?;
    let remote_port = c.u16("remote port")?;
    let sent_open = open_of(c, "sent OPEN")?;
    let received_open = open_of(c, "received OPEN")?;
    let info = tlvs(c, "peer up information")?;
    Ok(PeerUp {
        peer,
        local_address,
        local_port,
        remote_port,
        sent_open,
        received_open,
        info,
    })
}

/// What a monitored peer's session negotiated, for decoding its UPDATEs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Negotiated {
    add_path_in: [bool; 2],
    add_path_out: [bool; 2],
    ibgp: bool,
    /// The router's AS on this session (its sent OPEN).
    local_as: u32,
}

/// The monitoring side's memory of each monitored peer's session.
#[derive(Default)]
pub struct Monitor {
    peers: HashMap<PeerKey, Negotiated>,
    /// UPDATEs whose AS_PATH began with the router's own AS (see
    /// [`Monitor::update`]).
    pub stripped_local_as: u64,
}

impl Monitor {
    /// RFC 7911 §4: path identifiers are in what a side receives when it
    /// said it can receive and the other said it will send.
    pub fn peer_up(&mut self, up: &PeerUp) {
        let (sent, recv) = (&up.sent_open, &up.received_open);
        let fam = |f: &dyn Fn(Afi) -> bool| [f(Afi::Ipv4), f(Afi::Ipv6)];
        let n = if up.peer.peer_type == PEER_LOC_RIB {
            // RFC 9069 §5.2: the OPENs are made up to describe the
            // Loc-RIB; ADD-PATH in either means paths carry identifiers.
            let either = fam(&|a| {
                sent.add_path_send(a) || sent.add_path_receive(a) || recv.add_path_send(a) || recv.add_path_receive(a)
            });
            Negotiated {
                add_path_in: either,
                add_path_out: either,
                ibgp: true,
                local_as: sent.asn(),
            }
        } else {
            Negotiated {
                add_path_in: fam(&|a| sent.add_path_receive(a) && recv.add_path_send(a)),
                add_path_out: fam(&|a| sent.add_path_send(a) && recv.add_path_receive(a)),
                ibgp: sent.asn() == recv.asn(),
                local_as: sent.asn(),
            }
        };
        self.peers.insert(up.peer.key(), n);
    }

    pub fn peer_down(&mut self, key: &PeerKey) {
        self.peers.remove(key);
    }

    /// Whether a Peer Up was seen for this peer.
    pub fn knows(&self, key: &PeerKey) -> bool {
        self.peers.contains_key(key)
    }

    /// The session context a Route Monitoring message of `peer` is
    /// encoded in. Without a Peer Up (which RFC 7854 §4.10 puts first)
    /// nothing is negotiated: no path identifiers.
    pub fn ctx(&self, peer: &PeerHeader) -> SessionCtx {
        let n = self.peers.get(&peer.key()).copied().unwrap_or_default();
        let out = matches!(peer.rib(), RibKind::PrePolicyOut | RibKind::PostPolicyOut);
        let ap = if out { n.add_path_out } else { n.add_path_in };
        SessionCtx {
            four_octet_as: !peer.two_octet_as(),
            add_path_v4: ap[0],
            add_path_v6: ap[1],
            extended_messages: true,
            ibgp: n.ibgp || peer.peer_type == PEER_LOC_RIB,
        }
    }

    /// Decode the UPDATE of a Route Monitoring message, with the RFC 7606
    /// handling of a live session. `Err` means the UPDATE could not be
    /// read at all (a live session would have been reset).
    ///
    /// Some routers (FRR up to its 2026 fix, so FRR 8.4 of Debian 12)
    /// encode an eBGP peer's Adj-RIB-In routes as if sending them on,
    /// with their own AS in front. A received path cannot start with the
    /// router's own AS (its loop detection drops such routes, RFC 4271
    /// §9.1.2), so a leading local AS is removed here and counted in
    /// `stripped_local_as`.
    /// Decode a Route Monitoring message's UPDATE as the monitored peer's
    /// session negotiated it (and without the router's own AS where it
    /// prepends it to received paths), into the next slot of a batch that
    /// is reused as sessions reuse theirs. On error the batch is unchanged.
    pub fn update_into<'b>(
        &mut self,
        peer: &PeerHeader,
        bgp: &[u8],
        batch: &'b mut crate::UpdateBatch,
    ) -> Result<&'b ParsedUpdate, BmpError> {
        let ctx = self.ctx(peer);
        match decode(bgp, &ctx) {
            Ok(Some((BgpMessage::Update(u), n))) if n == bgp.len() => {
                let p = batch
                    .parse_push(&u, &ctx)
                    .map_err(|e| BmpError(format!("UPDATE: {}", e.reason)))?;
                let n = self.peers.get(&peer.key()).copied().unwrap_or_default();
                let adj_in = matches!(peer.rib(), RibKind::PrePolicyIn | RibKind::PostPolicyIn);
                if adj_in && !n.ibgp && n.local_as != 0 && n.local_as != peer.asn {
                    if let Some(crate::AsPathSegment::Sequence(first)) = p.attrs.as_path.first_mut() {
                        if first.first() == Some(&n.local_as) {
                            first.remove(0);
                            if first.is_empty() {
                                p.attrs.as_path.remove(0);
                            }
                            self.stripped_local_as += 1;
                        }
                    }
                }
                Ok(&*p)
            }
            Ok(Some((_, n))) if n == bgp.len() => err("route monitoring carries a BGP message that is not an UPDATE"),
            Ok(_) => err("the BGP message does not fill the route monitoring message"),
            Err(e) => err(format!("BGP message: {}", e.reason)),
        }
    }
}

/// Appends BMP messages to a buffer.
#[derive(Default)]
pub struct BmpWriter {
    pub out: Vec<u8>,
}

impl BmpWriter {
    fn start(&mut self, kind: u8) -> usize {
        let s = self.out.len();
        self.out.push(VERSION);
        self.out.extend_from_slice(&[0; 4]);
        self.out.push(kind);
        s
    }

    fn finish(&mut self, s: usize) {
        let len = (self.out.len() - s) as u32;
        self.out[s + 1..s + 5].copy_from_slice(&len.to_be_bytes());
    }

    fn addr16(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(a) => {
                self.out.extend_from_slice(&[0; 12]);
                self.out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => self.out.extend_from_slice(&a.octets()),
        }
    }

    fn per_peer(&mut self, p: &PeerHeader) {
        self.out.push(p.peer_type);
        self.out.push(p.flags);
        self.out.extend_from_slice(&p.distinguisher.to_be_bytes());
        self.addr16(p.address);
        self.out.extend_from_slice(&p.asn.to_be_bytes());
        self.out.extend_from_slice(&p.bgp_id.to_be_bytes());
        self.out.extend_from_slice(&p.timestamp.to_be_bytes());
        self.out.extend_from_slice(&p.timestamp_us.to_be_bytes());
    }

    fn tlv(&mut self, t: &InfoTlv) {
        self.out.extend_from_slice(&t.kind.to_be_bytes());
        self.out.extend_from_slice(&(t.value.len() as u16).to_be_bytes());
        self.out.extend_from_slice(&t.value);
    }

    pub fn initiation(&mut self, info: &[InfoTlv]) {
        let s = self.start(INITIATION);
        for t in info {
            self.tlv(t);
        }
        self.finish(s);
    }

    pub fn termination(&mut self, reason: u16, info: &[InfoTlv]) {
        let s = self.start(TERMINATION);
        for t in info {
            self.tlv(t);
        }
        self.tlv(&InfoTlv {
            kind: 1,
            value: reason.to_be_bytes().to_vec(),
        });
        self.finish(s);
    }

    pub fn peer_up(&mut self, u: &PeerUp) {
        let s = self.start(PEER_UP);
        self.per_peer(&u.peer);
        self.addr16(u.local_address);
        self.out.extend_from_slice(&u.local_port.to_be_bytes());
        self.out.extend_from_slice(&u.remote_port.to_be_bytes());
        crate::encode(&BgpMessage::Open(u.sent_open.clone()), &mut self.out);
        crate::encode(&BgpMessage::Open(u.received_open.clone()), &mut self.out);
        for t in &u.info {
            self.tlv(t);
        }
        self.finish(s);
    }

    /// `bgp` is one whole BGP message (an UPDATE, see [`crate::encode_update`]).
    pub fn route_monitoring(&mut self, peer: &PeerHeader, bgp: &[u8]) {
        let s = self.start(ROUTE_MONITORING);
        self.per_peer(peer);
        self.out.extend_from_slice(bgp);
        self.finish(s);
    }

    pub fn peer_down(&mut self, peer: &PeerHeader, reason: &PeerDownReason) {
        let s = self.start(PEER_DOWN);
        self.per_peer(peer);
        let notification = |out: &mut Vec<u8>, code: u8, subcode: u8| {
            crate::encode(
                &BgpMessage::Notification(crate::Notification {
                    code,
                    subcode,
                    data: &[],
                }),
                out,
            )
        };
        match reason {
            PeerDownReason::LocalNotification { code, subcode } => {
                self.out.push(1);
                notification(&mut self.out, *code, *subcode);
            }
            PeerDownReason::LocalNoNotification { fsm_event } => {
                self.out.push(2);
                self.out.extend_from_slice(&fsm_event.to_be_bytes());
            }
            PeerDownReason::RemoteNotification { code, subcode } => {
                self.out.push(3);
                notification(&mut self.out, *code, *subcode);
            }
            PeerDownReason::RemoteNoNotification => self.out.push(4),
            PeerDownReason::Deconfigured => self.out.push(5),
            PeerDownReason::LocalSystemClosed => self.out.push(6),
            PeerDownReason::Other(r) => self.out.push(*r),
        }
        self.finish(s);
    }

    pub fn statistics(&mut self, peer: &PeerHeader, stats: &[Stat]) {
        let s = self.start(STATISTICS);
        self.per_peer(peer);
        self.out.extend_from_slice(&(stats.len() as u32).to_be_bytes());
        for st in stats {
            self.out.extend_from_slice(&st.kind.to_be_bytes());
            match st.family {
                Some((afi, safi)) => {
                    self.out.extend_from_slice(&11u16.to_be_bytes());
                    self.out.extend_from_slice(&afi.to_be_bytes());
                    self.out.push(safi);
                    self.out.extend_from_slice(&st.value.to_be_bytes());
                }
                // Types 7, 8, 14 and 15 are 64-bit gauges (RFC 7854 §4.8,
                // RFC 8671 §5); the rest counters of 32 bits.
                None if st.value <= u32::MAX as u64 && !matches!(st.kind, 7 | 8 | 14 | 15) => {
                    self.out.extend_from_slice(&4u16.to_be_bytes());
                    self.out.extend_from_slice(&(st.value as u32).to_be_bytes());
                }
                None => {
                    self.out.extend_from_slice(&8u16.to_be_bytes());
                    self.out.extend_from_slice(&st.value.to_be_bytes());
                }
            }
        }
        self.finish(s);
    }
}

/// Messages framed out of a byte stream; stops at the first error.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Result<Message<'_>, BmpError>> + '_ {
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || buf.is_empty() {
            return None;
        }
        let n = match message_len(buf) {
            None => {
                failed = true;
                return Some(err("truncated message at the end of the stream"));
            }
            Some(Err(e)) => {
                failed = true;
                return Some(Err(e));
            }
            Some(Ok(n)) if n > buf.len() => {
                failed = true;
                return Some(err("truncated message at the end of the stream"));
            }
            Some(Ok(n)) => n,
        };
        let (m, rest) = buf.split_at(n);
        buf = rest;
        let r = parse(m);
        failed = r.is_err();
        Some(r)
    })
}

#[cfg(test)]
mod tests {
    /// One UPDATE decoded on its own.
    fn update1(
        m: &mut super::Monitor,
        p: &super::PeerHeader,
        bgp: &[u8],
    ) -> Result<crate::ParsedUpdate, super::BmpError> {
        let mut b = crate::UpdateBatch::default();
        m.update_into(p, bgp, &mut b).cloned()
    }

    use super::*;
    use crate::attrs::{AsPathSegment, Attributes, Origin};
    use crate::open::Capability;
    use crate::{encode_update, Nlri, UpdateOut};
    use proptest::prelude::*;

    fn peer(addr: &str, flags: u8) -> PeerHeader {
        PeerHeader {
            peer_type: PEER_GLOBAL,
            flags,
            distinguisher: 0,
            address: addr.parse().unwrap(),
            asn: 4_200_000_001,
            bgp_id: 0x0a00_0001,
            timestamp: 1_700_000_000,
            timestamp_us: 5,
        }
    }

    fn open(asn: u32, caps: Vec<Capability>) -> Open {
        let mut capabilities = vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::Multiprotocol { afi: 2, safi: 1 },
            Capability::FourOctetAs(asn),
        ];
        capabilities.extend(caps);
        Open {
            version: 4,
            my_as: 23456,
            hold_time: 90,
            bgp_id: 0x7f00_0001,
            capabilities,
        }
    }

    fn up(p: PeerHeader, sent: Open, recv: Open) -> PeerUp {
        PeerUp {
            local_address: if p.address.is_ipv4() {
                "192.0.2.1".parse().unwrap()
            } else {
                "2001:db8::1".parse().unwrap()
            },
            peer: p,
            local_port: 179,
            remote_port: 40_000,
            sent_open: sent,
            received_open: recv,
            info: vec![InfoTlv {
                kind: 0,
                value: b"uplink".to_vec(),
            }],
        }
    }

    fn update(ctx: &SessionCtx, announced: &[Nlri], withdrawn: &[Nlri]) -> Vec<u8> {
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(vec![4_200_000_001, 64_500])],
            next_hop: Some("192.0.2.9".parse().unwrap()),
            mp_next_hop: Some("2001:db8::9".parse().unwrap()),
            communities: vec![0xfde9_0001],
            ..Default::default()
        };
        let mut b = Vec::new();
        encode_update(
            &UpdateOut {
                withdrawn,
                announced,
                attrs: &attrs,
            },
            ctx,
            &mut b,
        );
        b
    }

    fn nlri(s: &str, path_id: Option<u32>) -> Nlri {
        Nlri {
            path_id,
            prefix: s.parse().unwrap(),
        }
    }

    #[test]
    fn a_monitored_session_round_trips() {
        let p4 = peer("192.0.2.2", FLAG_POST_POLICY);
        let p6 = peer("2001:db8::2", FLAG_V6);
        let mut w = BmpWriter::default();
        let init = vec![
            InfoTlv {
                kind: INFO_SYS_NAME,
                value: b"edge1.ams".to_vec(),
            },
            InfoTlv {
                kind: INFO_SYS_DESCR,
                value: b"a router".to_vec(),
            },
        ];
        w.initiation(&init);
        let u4 = up(p4.clone(), open(65_000, vec![]), open(4_200_000_001, vec![]));
        w.peer_up(&u4);
        let u6 = up(p6.clone(), open(65_000, vec![]), open(4_200_000_001, vec![]));
        w.peer_up(&u6);
        let ctx = SessionCtx {
            four_octet_as: true,
            ..Default::default()
        };
        let upd = update(
            &ctx,
            &[nlri("198.51.100.0/24", None), nlri("2001:db8:5::/48", None)],
            &[],
        );
        w.route_monitoring(&p4, &upd);
        let stats = vec![
            Stat {
                kind: 0,
                family: None,
                value: 3,
            },
            Stat {
                kind: 7,
                family: None,
                value: 12,
            },
            Stat {
                kind: 9,
                family: Some((2, 1)),
                value: 1 << 40,
            },
        ];
        w.statistics(&p4, &stats);
        let down = PeerDownReason::RemoteNotification { code: 6, subcode: 2 };
        w.peer_down(&p4, &down);
        w.peer_down(&p6, &PeerDownReason::LocalNoNotification { fsm_event: 7 });
        w.termination(1, &[]);

        let msgs: Vec<Message<'_>> = messages(&w.out).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 8);
        assert_eq!(msgs[0], Message::Initiation(init));
        assert_eq!(msgs[1], Message::PeerUp(Box::new(u4.clone())));
        assert_eq!(msgs[2], Message::PeerUp(Box::new(u6)));
        let mut m = Monitor::default();
        m.peer_up(&u4);
        let Message::RouteMonitoring { peer: got, bgp } = &msgs[3] else {
            panic!("{:?}", msgs[3])
        };
        assert_eq!(*got, p4);
        assert_eq!(got.rib(), RibKind::PostPolicyIn);
        let parsed = update1(&mut m, got, bgp).unwrap();
        assert_eq!(parsed.announced.len(), 2);
        assert_eq!(parsed.attrs.asns().collect::<Vec<_>>(), vec![4_200_000_001, 64_500]);
        assert_eq!(
            msgs[4],
            Message::Statistics {
                peer: p4.clone(),
                stats
            }
        );
        assert_eq!(msgs[5], Message::PeerDown { peer: p4, reason: down });
        assert_eq!(
            msgs[6],
            Message::PeerDown {
                peer: p6,
                reason: PeerDownReason::LocalNoNotification { fsm_event: 7 }
            }
        );
        assert_eq!(
            msgs[7],
            Message::Termination {
                reason: Some(1),
                info: vec![]
            }
        );
    }

    #[test]
    fn add_path_follows_both_opens_and_direction() {
        let p = peer("192.0.2.2", 0);
        // We (the router) receive IPv4 paths, the peer sends them; IPv6
        // only one side offers.
        let sent = open(65_000, vec![Capability::AddPath(vec![(1, 1, 1), (2, 1, 1)])]);
        let recv = open(4_200_000_001, vec![Capability::AddPath(vec![(1, 1, 2)])]);
        let mut m = Monitor::default();
        assert!(!m.ctx(&p).add_path_v4, "nothing negotiated before Peer Up");
        m.peer_up(&up(p.clone(), sent, recv));
        let c = m.ctx(&p);
        assert!(c.add_path_v4 && !c.add_path_v6 && c.four_octet_as && !c.ibgp);
        let out = peer("192.0.2.2", FLAG_ADJ_RIB_OUT);
        assert!(!m.ctx(&out).add_path_v4, "Adj-RIB-Out goes the other way");
        let ctx = m.ctx(&p);
        let b = update(&ctx, &[nlri("198.51.100.0/24", Some(7))], &[]);
        let parsed = update1(&mut m, &p, &b).unwrap();
        assert_eq!(parsed.announced, vec![nlri("198.51.100.0/24", Some(7))]);
        m.peer_down(&p.key());
        assert!(!m.knows(&p.key()));
    }

    #[test]
    fn a_router_s_own_as_in_front_of_a_received_path_is_removed() {
        let p = peer("192.0.2.2", FLAG_POST_POLICY);
        let mut m = Monitor::default();
        m.peer_up(&up(p.clone(), open(65_000, vec![]), open(4_200_000_001, vec![])));
        let ctx = m.ctx(&p);
        let attrs = |path: Vec<u32>| Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(path)],
            next_hop: Some("192.0.2.9".parse().unwrap()),
            ..Default::default()
        };
        let enc = |a: &Attributes| {
            let mut b = Vec::new();
            encode_update(
                &UpdateOut {
                    withdrawn: &[],
                    announced: &[nlri("198.51.100.0/24", None)],
                    attrs: a,
                },
                &ctx,
                &mut b,
            );
            b
        };
        let got = update1(&mut m, &p, &enc(&attrs(vec![65_000, 4_200_000_001, 64_500]))).unwrap();
        assert_eq!(got.attrs.asns().collect::<Vec<_>>(), vec![4_200_000_001, 64_500]);
        assert_eq!(m.stripped_local_as, 1);
        // As received: untouched.
        let got = update1(&mut m, &p, &enc(&attrs(vec![4_200_000_001, 64_500]))).unwrap();
        assert_eq!(got.attrs.asns().collect::<Vec<_>>(), vec![4_200_000_001, 64_500]);
        assert_eq!(m.stripped_local_as, 1);
        // Into a batch, reused as sessions reuse theirs: the same results,
        // and a message that does not decode leaves the batch as it was.
        let mut b = crate::UpdateBatch::default();
        m.update_into(&p, &enc(&attrs(vec![65_000, 4_200_000_001, 64_501])), &mut b)
            .unwrap();
        m.update_into(&p, &enc(&attrs(vec![4_200_000_001, 64_502])), &mut b)
            .unwrap();
        assert!(m.update_into(&p, &[0xff; 19], &mut b).is_err());
        let paths: Vec<Vec<u32>> = b.as_slice().iter().map(|u| u.attrs.asns().collect()).collect();
        assert_eq!(paths, [vec![4_200_000_001, 64_501], vec![4_200_000_001, 64_502]]);
        assert_eq!(m.stripped_local_as, 2);
        b.recycle();
        m.update_into(&p, &enc(&attrs(vec![4_200_000_001, 64_503])), &mut b)
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.as_slice()[0].attrs.asns().last(), Some(64_503));
    }

    #[test]
    fn the_a_flag_means_two_octet_paths() {
        let p = peer("192.0.2.2", FLAG_TWO_OCTET_AS);
        let mut m = Monitor::default();
        assert!(!m.ctx(&p).four_octet_as);
        let two = SessionCtx::default();
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(vec![64_501, 64_502])],
            next_hop: Some("192.0.2.9".parse().unwrap()),
            ..Default::default()
        };
        let mut b = Vec::new();
        encode_update(
            &UpdateOut {
                withdrawn: &[],
                announced: &[nlri("198.51.100.0/24", None)],
                attrs: &attrs,
            },
            &two,
            &mut b,
        );
        let parsed = update1(&mut m, &p, &b).unwrap();
        assert_eq!(parsed.attrs.asns().collect::<Vec<_>>(), vec![64_501, 64_502]);
        // A Loc-RIB header ignores the flag bits of types 0-2.
        let loc = PeerHeader {
            peer_type: PEER_LOC_RIB,
            flags: FLAG_LOC_RIB_FILTERED,
            address: "0.0.0.0".parse().unwrap(),
            ..p
        };
        assert_eq!(loc.rib(), RibKind::LocRib);
        assert!(!loc.two_octet_as());
        assert!(m.ctx(&loc).ibgp);
    }

    #[test]
    fn bad_streams_get_precise_errors() {
        let mut w = BmpWriter::default();
        w.initiation(&[]);
        let mut b = w.out.clone();
        b[0] = 2;
        assert!(parse(&b).unwrap_err().0.contains("version 2"));
        let mut b = w.out.clone();
        b[1..5].copy_from_slice(&(MAX_MESSAGE as u32 + 1).to_be_bytes());
        assert!(message_len(&b).unwrap().unwrap_err().0.contains("larger"));
        // A route monitoring message whose UPDATE is cut short.
        let p = peer("192.0.2.2", 0);
        let mut w = BmpWriter::default();
        let u = update(&SessionCtx::default(), &[nlri("198.51.100.0/24", None)], &[]);
        w.route_monitoring(&p, &u[..u.len() - 1]);
        let Message::RouteMonitoring { peer, bgp } = parse(&w.out).unwrap() else {
            panic!()
        };
        assert!(update1(&mut Monitor::default(), &peer, bgp).is_err());
        // A Peer Up whose second OPEN is something else.
        let mut w = BmpWriter::default();
        let mut u2 = up(p.clone(), open(1, vec![]), open(2, vec![]));
        u2.info.clear();
        w.peer_up(&u2);
        let at = w.out.len() - 3; // inside the received OPEN's body
        let mut b = w.out.clone();
        b.truncate(at);
        let n = b.len() as u32;
        b[1..5].copy_from_slice(&n.to_be_bytes());
        assert!(parse(&b).unwrap_err().0.contains("received OPEN"));
        // A stream cut in the middle of a message.
        let mut w = BmpWriter::default();
        w.initiation(&[]);
        w.route_monitoring(&p, &u);
        let cut = &w.out[..w.out.len() - 5];
        let r: Vec<_> = messages(cut).collect();
        assert_eq!(r.len(), 2);
        assert!(r[1].is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_message_type_never_panic(kind in 0u8..8, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = vec![VERSION, 0, 0, 0, 0, kind];
            b.extend_from_slice(&body);
            let n = b.len() as u32;
            b[1..5].copy_from_slice(&n.to_be_bytes());
            if let Ok(Message::RouteMonitoring { peer, bgp }) = parse(&b) {
                let _ = update1(&mut Monitor::default(), &peer, bgp);
            }
            let _ = messages(&body).count();
        }

        #[test]
        fn truncating_a_good_stream_never_panics(cut in 0usize..400) {
            let p = peer("2001:db8::2", FLAG_V6);
            let mut w = BmpWriter::default();
            w.initiation(&[InfoTlv { kind: 2, value: b"r1".to_vec() }]);
            w.peer_up(&up(p.clone(), open(1, vec![]), open(2, vec![])));
            w.route_monitoring(&p, &update(&SessionCtx { four_octet_as: true, ..Default::default() }, &[nlri("2001:db8:5::/48", None)], &[]));
            w.peer_down(&p, &PeerDownReason::LocalNotification { code: 4, subcode: 0 });
            let cut = cut.min(w.out.len());
            let r: Vec<_> = messages(&w.out[..cut]).collect();
            if cut == w.out.len() {
                prop_assert!(r.iter().all(|m| m.is_ok()));
            }
        }
    }
}
