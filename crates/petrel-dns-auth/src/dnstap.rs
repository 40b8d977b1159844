//! dnstap (<https://dnstap.info>) as BIND, Knot and Unbound emit it: a
//! `Dnstap` protobuf message per DNS message, in Frame Streams
//! (bidirectional: READY, ACCEPT, START, data frames, STOP, FINISH).
//! Encoding only, into caller-owned buffers; the IO shell connects,
//! shakes hands and writes.
//!
//! The protobuf is written by hand: a dozen scalar and bytes fields, their
//! lengths computed first so that each message is written once, straight
//! into the caller's buffer.

use std::net::{IpAddr, SocketAddr};

/// The Frame Streams content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Frame Streams control frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Accept = 1,
    Start = 2,
    Stop = 3,
    Ready = 4,
    Finish = 5,
}

const FIELD_CONTENT_TYPE: u32 = 1;

/// Append a control frame (with the dnstap content type, but for STOP
/// and FINISH, which carry none).
pub fn control(c: Control, out: &mut Vec<u8>) {
    let with_type = !matches!(c, Control::Stop | Control::Finish);
    let len = 4 + if with_type { 8 + CONTENT_TYPE.len() } else { 0 };
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&(c as u32).to_be_bytes());
    if with_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        out.extend_from_slice(CONTENT_TYPE);
    }
}

/// A control frame at the start of `buf`: its type, whether it names the
/// dnstap content type, and its length; None if `buf` holds less than a
/// whole one. Err for bytes that are not a control frame.
pub fn parse_control(buf: &[u8]) -> Result<Option<(Control, bool, usize)>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    if buf[..4] != [0, 0, 0, 0] {
        return Err("a data frame where a control frame was expected".into());
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if !(4..=512).contains(&len) {
        return Err(format!("a control frame of {len} bytes"));
    }
    let Some(body) = buf.get(8..8 + len) else {
        return Ok(None);
    };
    let c = match u32::from_be_bytes([body[0], body[1], body[2], body[3]]) {
        1 => Control::Accept,
        2 => Control::Start,
        3 => Control::Stop,
        4 => Control::Ready,
        5 => Control::Finish,
        t => return Err(format!("control frame type {t}")),
    };
    let mut fields = &body[4..];
    let mut dnstap = false;
    while fields.len() >= 8 {
        let kind = u32::from_be_bytes([fields[0], fields[1], fields[2], fields[3]]);
        let flen = u32::from_be_bytes([fields[4], fields[5], fields[6], fields[7]]) as usize;
        let Some(v) = fields.get(8..8 + flen) else {
            return Err("a control frame field runs past its frame".into());
        };
        dnstap |= kind == FIELD_CONTENT_TYPE && v == CONTENT_TYPE;
        fields = &fields[8 + flen..];
    }
    Ok(Some((c, dnstap, 8 + len)))
}

/// Which side of an exchange a message records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AuthQuery = 1,
    AuthResponse = 2,
}

/// One DNS message seen by the authoritative server.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    pub kind: Kind,
    pub tcp: bool,
    pub client: SocketAddr,
    /// The address the query was sent to, when known.
    pub server: Option<SocketAddr>,
    /// When the query came in (seconds, nanoseconds since the epoch).
    pub query_time: (u64, u32),
    /// When the response went out (responses only).
    pub response_time: Option<(u64, u32)>,
    pub query: &'a [u8],
    /// The response (responses only).
    pub response: &'a [u8],
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    let mut b = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        b[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    b[n] = v as u8;
    out.extend_from_slice(&b[..=n]);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Every field number here is below 16: its key is one byte.
fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    debug_assert!(field < 16);
    out.push((field << 3) as u8 | wire);
}

/// A bytes field's size (its keys are all one byte here).
fn bytes_len(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

fn bytes_field(field: u32, b: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn varint_field(field: u32, v: u64, out: &mut Vec<u8>) {
    key(field, 0, out);
    varint(v, out);
}

fn fixed32_field(field: u32, v: u32, out: &mut Vec<u8>) {
    key(field, 5, out);
    out.extend_from_slice(&v.to_le_bytes());
}

fn addr_bytes(a: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match a.to_canonical() {
        IpAddr::V4(v) => {
            buf[..4].copy_from_slice(&v.octets());
            &buf[..4]
        }
        IpAddr::V6(v) => {
            buf.copy_from_slice(&v.octets());
            &buf[..]
        }
    }
}

fn addr_len(a: IpAddr) -> usize {
    if a.to_canonical().is_ipv6() {
        16
    } else {
        4
    }
}

/// What `ev`'s `Message` holds besides its fixed fields.
fn with_query(ev: &Event<'_>) -> bool {
    ev.kind == Kind::AuthQuery || !ev.query.is_empty()
}

/// The size of `ev`'s `Message`, computed before it is written, so that
/// it is written once, straight into the frame.
fn message_len(ev: &Event<'_>) -> usize {
    let mut n = 2 + 2 + 2; // type, family, protocol
    n += bytes_len(addr_len(ev.client.ip()));
    n += 1 + varint_len(u64::from(ev.client.port()));
    if let Some(s) = ev.server {
        n += bytes_len(addr_len(s.ip()));
        n += 1 + varint_len(u64::from(s.port()));
    }
    n += 1 + varint_len(ev.query_time.0) + 5;
    if with_query(ev) {
        n += bytes_len(ev.query.len());
    }
    if let Some((s, _)) = ev.response_time {
        n += 1 + varint_len(s) + 5;
    }
    if ev.kind == Kind::AuthResponse {
        n += bytes_len(ev.response.len());
    }
    n
}

/// Append one data frame (length, then the `Dnstap` message) for `ev`.
pub fn frame(identity: &[u8], version: &[u8], ev: &Event<'_>, out: &mut Vec<u8>) {
    let m_len = message_len(ev);
    let total = bytes_len(identity.len()) + bytes_len(version.len()) + bytes_len(m_len) + 2;
    out.reserve(4 + total);
    let start = out.len();
    out.extend_from_slice(&(total as u32).to_be_bytes());
    bytes_field(1, identity, out);
    bytes_field(2, version, out);
    key(14, 2, out);
    varint(m_len as u64, out);
    let m_start = out.len();
    varint_field(1, ev.kind as u64, out);
    let v6 = ev.client.ip().to_canonical().is_ipv6();
    varint_field(2, if v6 { 2 } else { 1 }, out);
    varint_field(3, if ev.tcp { 2 } else { 1 }, out);
    let mut b = [0u8; 16];
    bytes_field(4, addr_bytes(ev.client.ip(), &mut b), out);
    if let Some(s) = ev.server {
        bytes_field(5, addr_bytes(s.ip(), &mut b), out);
    }
    varint_field(6, u64::from(ev.client.port()), out);
    if let Some(s) = ev.server {
        varint_field(7, u64::from(s.port()), out);
    }
    varint_field(8, ev.query_time.0, out);
    fixed32_field(9, ev.query_time.1, out);
    if with_query(ev) {
        bytes_field(10, ev.query, out);
    }
    if let Some((s, ns)) = ev.response_time {
        varint_field(12, s, out);
        fixed32_field(13, ns, out);
    }
    if ev.kind == Kind::AuthResponse {
        bytes_field(14, ev.response, out);
    }
    debug_assert_eq!(out.len() - m_start, m_len, "the message is as long as computed");
    varint_field(15, 1, out);
    debug_assert_eq!(out.len() - start - 4, total, "the frame is as long as computed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_round_trip() {
        for c in [
            Control::Accept,
            Control::Start,
            Control::Stop,
            Control::Ready,
            Control::Finish,
        ] {
            let mut b = Vec::new();
            control(c, &mut b);
            let (got, typed, len) = parse_control(&b).unwrap().unwrap();
            assert_eq!((got, len), (c, b.len()));
            assert_eq!(typed, !matches!(c, Control::Stop | Control::Finish));
            assert_eq!(parse_control(&b[..b.len() - 1]).unwrap(), None, "a partial frame waits");
        }
        assert!(parse_control(&[0, 0, 0, 9, 1, 2, 3, 4]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn computed_lengths_hold_for_any_message(
            v6 in proptest::prelude::any::<bool>(),
            server in proptest::prelude::any::<bool>(),
            port in proptest::prelude::any::<u16>(),
            secs in proptest::prelude::any::<u64>(),
            q in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            r in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70_000),
            id in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let client: SocketAddr = if v6 { SocketAddr::from(([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], port)) } else { SocketAddr::from(([192, 0, 2, 1], port)) };
            for kind in [Kind::AuthQuery, Kind::AuthResponse] {
                let ev = Event {
                    kind,
                    tcp: v6,
                    client,
                    server: server.then(|| SocketAddr::from(([127, 0, 0, 1], 53))),
                    query_time: (secs, 7),
                    response_time: (kind == Kind::AuthResponse).then_some((secs, 9)),
                    query: &q,
                    response: &r,
                };
                let mut out = vec![1, 2, 3];
                frame(&id, b"petrel", &ev, &mut out);
                let len = u32::from_be_bytes(out[3..7].try_into().unwrap()) as usize;
                proptest::prop_assert_eq!(len, out.len() - 7);
                let top = fields(&out[7..]);
                proptest::prop_assert_eq!(top.len(), 4);
                let m = fields(&top[2].3);
                proptest::prop_assert!(m.iter().any(|f| f.0 == 1 && f.2 == kind as u64));
            }
        }

        #[test]
        fn any_bytes_from_a_collector_are_read_without_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(Some((_, _, len))) = parse_control(&b) {
                proptest::prop_assert!(len <= b.len());
            }
        }
    }

    /// Read a protobuf message into (field, wire type, value or bytes).
    fn fields(mut b: &[u8]) -> Vec<(u32, u8, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let rd = |b: &mut &[u8]| {
            let mut v = 0u64;
            for i in 0.. {
                let x = b[0];
                *b = &b[1..];
                v |= u64::from(x & 0x7f) << (7 * i);
                if x < 0x80 {
                    break;
                }
            }
            v
        };
        while !b.is_empty() {
            let k = rd(&mut b);
            let (f, w) = ((k >> 3) as u32, (k & 7) as u8);
            match w {
                0 => out.push((f, w, rd(&mut b), vec![])),
                2 => {
                    let n = rd(&mut b) as usize;
                    out.push((f, w, 0, b[..n].to_vec()));
                    b = &b[n..];
                }
                5 => {
                    out.push((f, w, u64::from(u32::from_le_bytes(b[..4].try_into().unwrap())), vec![]));
                    b = &b[4..];
                }
                _ => panic!("wire type {w}"),
            }
        }
        out
    }

    #[test]
    fn a_response_is_a_dnstap_message_with_both_packets() {
        let mut out = Vec::new();
        let ev = Event {
            kind: Kind::AuthResponse,
            tcp: false,
            client: "192.0.2.7:5353".parse().unwrap(),
            server: Some("[2001:db8::53]:53".parse().unwrap()),
            query_time: (1_700_000_000, 123),
            response_time: Some((1_700_000_000, 456)),
            query: b"query",
            response: b"the response",
        };
        frame(b"ns1", b"petrel", &ev, &mut out);
        let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4);
        let top = fields(&out[4..]);
        assert_eq!(top[0].3, b"ns1");
        assert_eq!(top[1].3, b"petrel");
        assert_eq!((top[3].0, top[3].2), (15, 1), "type MESSAGE");
        let m = fields(&top[2].3);
        let get = |f: u32| m.iter().find(|x| x.0 == f).unwrap_or_else(|| panic!("field {f}"));
        assert_eq!(get(1).2, 2, "AUTH_RESPONSE");
        assert_eq!((get(2).2, get(3).2), (1, 1), "INET, UDP");
        assert_eq!(get(4).3, vec![192, 0, 2, 7]);
        assert_eq!(get(5).3.len(), 16);
        assert_eq!((get(6).2, get(7).2), (5353, 53));
        assert_eq!(
            (get(8).2, get(9).2, get(12).2, get(13).2),
            (1_700_000_000, 123, 1_700_000_000, 456)
        );
        assert_eq!(
            (get(10).3.as_slice(), get(14).3.as_slice()),
            (&b"query"[..], &b"the response"[..])
        );
    }
}
