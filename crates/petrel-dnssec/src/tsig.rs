//! TSIG (RFC 8945): HMAC-SHA256 and HMAC-SHA512 over DNS messages, for
//! zone transfers. Verification of a request, and signing of the responses
//! that answer it (one, or a stream of them: each message's MAC covers the
//! previous one's, §5.3.1). Time comes in as Unix seconds.

use data_encoding::BASE64;
use ring::hmac;

/// RR type TSIG.
pub const TSIG: u16 = 250;
/// Class ANY, which TSIG records use.
const ANY: u16 = 255;
/// TSIG error codes (RFC 8945 §3; the extended rcodes they go with).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;
/// The response rcode of a failed verification.
pub const NOTAUTH: u16 = 9;
/// Seconds of clock difference accepted (§10 recommends 300).
pub const FUDGE: u16 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha512,
}

impl Algorithm {
    fn wire(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    pub fn parse(text: &str) -> Option<Algorithm> {
        match text.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Algorithm::HmacSha256),
            "hmac-sha512" => Some(Algorithm::HmacSha512),
            _ => None,
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// A shared secret with its name.
pub struct TsigKey {
    /// The key's name, lower-case wire form.
    pub name: Vec<u8>,
    pub alg: Algorithm,
    key: hmac::Key,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &petrel_dns_wire::name::to_text(&self.name))
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TsigKey {
    /// A key from its name, algorithm (`hmac-sha256`, `hmac-sha512`) and
    /// base64 secret, as BIND's and Knot's configs write them.
    pub fn new(name: &str, alg: &str, secret: &str) -> Result<TsigKey, String> {
        let wire = petrel_dns_wire::name::from_text(name).map_err(|e| format!("key name `{name}`: {e}"))?;
        let alg = Algorithm::parse(alg).ok_or_else(|| format!("algorithm `{alg}`: use hmac-sha256 or hmac-sha512"))?;
        let secret = BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|e| format!("the secret is not base64: {e}"))?;
        if secret.len() < 16 {
            return Err("the secret is shorter than 16 bytes".into());
        }
        Ok(TsigKey {
            name: petrel_dns_wire::name::to_lowercase(&wire),
            alg,
            key: hmac::Key::new(alg.ring(), &secret),
        })
    }
}

/// A TSIG record as found at the end of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where the record starts in the message.
    pub at: usize,
    pub key_name: &'a [u8],
    pub alg_name: &'a [u8],
    pub time: u64,
    pub fudge: u16,
    pub mac: &'a [u8],
    pub original_id: u16,
    pub error: u16,
    pub other: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse the TSIG record that starts at `at` and must end the message.
/// Its names must not be compressed (RFC 8945 §4.2 for the algorithm;
/// senders write the key name plainly too).
pub fn parse(msg: &[u8], at: usize) -> Option<Record<'_>> {
    let kl = petrel_dns_wire::name::wire_len(msg.get(at..)?)?;
    let key_name = &msg[at..at + kl];
    let mut p = at + kl;
    if be16(msg, p)? != TSIG || be16(msg, p + 2)? != ANY {
        return None;
    }
    let rdlen = be16(msg, p + 8)? as usize;
    p += 10;
    let rdata = msg.get(p..p + rdlen)?;
    if p + rdlen != msg.len() {
        return None;
    }
    let al = petrel_dns_wire::name::wire_len(rdata)?;
    let alg_name = &rdata[..al];
    let r = &rdata[al..];
    let time = u64::from(be16(r, 0)?) << 32 | u64::from(be16(r, 2)?) << 16 | u64::from(be16(r, 4)?);
    let fudge = be16(r, 6)?;
    let mac_len = be16(r, 8)? as usize;
    let mac = r.get(10..10 + mac_len)?;
    let q = &r[10 + mac_len..];
    let original_id = be16(q, 0)?;
    let error = be16(q, 2)?;
    let other_len = be16(q, 4)? as usize;
    let other = q.get(6..6 + other_len)?;
    if 6 + other_len != q.len() {
        return None;
    }
    Some(Record {
        at,
        key_name,
        alg_name,
        time,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// Why a request's TSIG was refused (the error to answer with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    BadKey,
    BadSig,
    BadTime,
}

impl Refused {
    pub fn code(self) -> u16 {
        match self {
            Refused::BadKey => BADKEY,
            Refused::BadSig => BADSIG,
            Refused::BadTime => BADTIME,
        }
    }
}

fn lower(n: &[u8]) -> Vec<u8> {
    petrel_dns_wire::name::to_lowercase(n)
}

/// The message as it was before the TSIG was added: without the record,
/// ARCOUNT one less, the original ID.
fn unsigned_part(msg: &[u8], r: &Record<'_>) -> Vec<u8> {
    let mut m = msg[..r.at].to_vec();
    m[..2].copy_from_slice(&r.original_id.to_be_bytes());
    let ar = u16::from_be_bytes([m[10], m[11]]).saturating_sub(1);
    m[10..12].copy_from_slice(&ar.to_be_bytes());
    m
}

fn variables(ctx: &mut hmac::Context, key: &TsigKey, time: u64, fudge: u16, error: u16, other: &[u8]) {
    ctx.update(&key.name);
    ctx.update(&ANY.to_be_bytes());
    ctx.update(&0u32.to_be_bytes());
    ctx.update(key.alg.wire());
    ctx.update(&time.to_be_bytes()[2..]);
    ctx.update(&fudge.to_be_bytes());
    ctx.update(&error.to_be_bytes());
    ctx.update(&(other.len() as u16).to_be_bytes());
    ctx.update(other);
}

/// Check a request's TSIG against the keys (RFC 8945 §5.2): the key and
/// algorithm known, the MAC right (whole: truncated MACs are refused), then
/// the time within the fudge. The key and the request's MAC on success.
pub fn verify<'k>(
    keys: &'k [TsigKey],
    msg: &[u8],
    r: &Record<'_>,
    now: u64,
) -> Result<(&'k TsigKey, Vec<u8>), Refused> {
    let key = keys
        .iter()
        .find(|k| k.name == lower(r.key_name) && k.alg.wire() == lower(r.alg_name).as_slice())
        .ok_or(Refused::BadKey)?;
    let mut ctx = hmac::Context::with_key(&key.key);
    ctx.update(&unsigned_part(msg, r));
    variables(&mut ctx, key, r.time, r.fudge, r.error, r.other);
    let tag = ctx.sign();
    if !constant_eq(tag.as_ref(), r.mac) {
        return Err(Refused::BadSig);
    }
    if now.abs_diff(r.time) > u64::from(r.fudge) {
        return Err(Refused::BadTime);
    }
    Ok((key, r.mac.to_vec()))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs the responses to one verified request, in order.
pub struct Signer<'k> {
    key: &'k TsigKey,
    prior: Vec<u8>,
    first: bool,
    original_id: u16,
}

impl<'k> Signer<'k> {
    pub fn new(key: &'k TsigKey, request_mac: Vec<u8>, original_id: u16) -> Signer<'k> {
        Signer {
            key,
            prior: request_mac,
            first: true,
            original_id,
        }
    }

    /// Append a TSIG record to a complete response (ARCOUNT counted).
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) {
        let mut ctx = hmac::Context::with_key(&self.key.key);
        ctx.update(&(self.prior.len() as u16).to_be_bytes());
        ctx.update(&self.prior);
        ctx.update(msg);
        if self.first {
            variables(&mut ctx, self.key, now, FUDGE, 0, &[]);
        } else {
            ctx.update(&now.to_be_bytes()[2..]);
            ctx.update(&FUDGE.to_be_bytes());
        }
        let mac = ctx.sign().as_ref().to_vec();
        append(msg, self.key, now, &mac, self.original_id, 0, &[]);
        self.prior = mac;
        self.first = false;
    }
}

/// Append an unsigned TSIG record carrying an error (BADKEY, BADSIG: RFC
/// 8945 §5.3.2 sends no MAC) for the key the request named.
pub fn append_error(msg: &mut Vec<u8>, r: &Record<'_>, error: u16, now: u64) {
    let mut v = Vec::new();
    v.extend_from_slice(r.alg_name);
    v.extend_from_slice(&now.to_be_bytes()[2..]);
    v.extend_from_slice(&FUDGE.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&r.original_id.to_be_bytes());
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    push_rr(msg, r.key_name, &v);
}

fn append(msg: &mut Vec<u8>, key: &TsigKey, now: u64, mac: &[u8], original_id: u16, error: u16, other: &[u8]) {
    let mut v = Vec::new();
    v.extend_from_slice(key.alg.wire());
    v.extend_from_slice(&now.to_be_bytes()[2..]);
    v.extend_from_slice(&FUDGE.to_be_bytes());
    v.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    v.extend_from_slice(mac);
    v.extend_from_slice(&original_id.to_be_bytes());
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&(other.len() as u16).to_be_bytes());
    v.extend_from_slice(other);
    push_rr(msg, &key.name, &v);
}

fn push_rr(msg: &mut Vec<u8>, owner: &[u8], rdata: &[u8]) {
    msg.extend_from_slice(owner);
    msg.extend_from_slice(&TSIG.to_be_bytes());
    msg.extend_from_slice(&ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(rdata);
    let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Sign a request (for tests and for NOTIFY): appends the TSIG; returns
/// its MAC, which the response's covers.
pub fn sign_request(msg: &mut Vec<u8>, key: &TsigKey, now: u64) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(&key.key);
    ctx.update(msg);
    variables(&mut ctx, key, now, FUDGE, 0, &[]);
    let mac = ctx.sign().as_ref().to_vec();
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    append(msg, key, now, &mac, id, 0, &[]);
    mac
}
