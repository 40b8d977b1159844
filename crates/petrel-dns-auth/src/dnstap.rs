//! dnstap (<https://dnstap.info>) as BIND, Knot and Unbound emit it: a
//! `Dnstap` protobuf message per DNS message, in Frame Streams
//! (bidirectional: READY, ACCEPT, START, data frames, STOP, FINISH).
//! Encoding only, into caller-owned buffers; the IO shell connects,
//! shakes hands and writes.
//!
//! The protobuf is written by hand: a dozen scalar and bytes fields, in
//! a buffer reused from message to message.

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
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | u32::from(wire)), out);
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

/// Append one data frame (length, then the `Dnstap` message) for `ev`.
/// `scratch` holds the inner message on its way.
pub fn frame(identity: &[u8], version: &[u8], ev: &Event<'_>, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    scratch.clear();
    let m = scratch;
    varint_field(1, ev.kind as u64, m);
    let v6 = ev.client.ip().to_canonical().is_ipv6();
    varint_field(2, if v6 { 2 } else { 1 }, m);
    varint_field(3, if ev.tcp { 2 } else { 1 }, m);
    let mut b = [0u8; 16];
    bytes_field(4, addr_bytes(ev.client.ip(), &mut b), m);
    if let Some(s) = ev.server {
        bytes_field(5, addr_bytes(s.ip(), &mut b), m);
    }
    varint_field(6, u64::from(ev.client.port()), m);
    if let Some(s) = ev.server {
        varint_field(7, u64::from(s.port()), m);
    }
    varint_field(8, ev.query_time.0, m);
    fixed32_field(9, ev.query_time.1, m);
    if ev.kind == Kind::AuthQuery || !ev.query.is_empty() {
        bytes_field(10, ev.query, m);
    }
    if let Some((s, ns)) = ev.response_time {
        varint_field(12, s, m);
        fixed32_field(13, ns, m);
    }
    if ev.kind == Kind::AuthResponse {
        bytes_field(14, ev.response, m);
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    bytes_field(1, identity, out);
    bytes_field(2, version, out);
    bytes_field(14, m, out);
    varint_field(15, 1, out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
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
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
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
        frame(b"ns1", b"petrel", &ev, &mut scratch, &mut out);
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
