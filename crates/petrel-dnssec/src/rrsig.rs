//! RRSIG over the canonical form of an RRset (RFC 4034 §3, §6; RFC 4035
//! §5.3.2 for what the data to sign is).

use crate::key::{Algorithm, Key};
use petrel_dns_wire::name;
use std::borrow::Cow;

/// A signature's validity, Unix seconds (the RRSIG fields are serial
/// numbers modulo 2^32, RFC 4034 §3.1.5; until 2106 they are plain seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub inception: u32,
    pub expiration: u32,
}

impl Validity {
    /// From `now` for `days`, starting an hour back so that resolvers
    /// whose clocks are behind accept it.
    pub fn starting(now: u32, days: u32) -> Validity {
        Validity {
            inception: now.saturating_sub(3600),
            expiration: now.saturating_add(days.saturating_mul(86_400)),
        }
    }

    /// Whether signatures made with it should be made again: past half
    /// their life at `now`.
    pub fn due(&self, now: u32) -> bool {
        let half = self.expiration.saturating_sub(self.inception) / 2;
        now >= self.inception.saturating_add(half)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the RRset does not fit the signing buffer")]
    TooLong,
    #[error("the signature could not be made")]
    Crypto,
    #[error("malformed owner name")]
    BadName,
}

/// Who signs and until when.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub key: &'a Key,
    /// The zone apex, in lower-case wire form.
    pub zone: &'a [u8],
    pub validity: Validity,
}

/// An RRset to sign: owner in lower-case wire form, RDATA in canonical
/// form (see [`canonical_rdata`]) and sorted (see [`sort_canonical`]).
#[derive(Clone, Copy)]
pub struct Rrset<'a> {
    pub owner: &'a [u8],
    pub rtype: u16,
    /// The original TTL: answers may carry less, never more.
    pub ttl: u32,
    pub rdata: &'a [&'a [u8]],
}

/// Bytes of an RRSIG RDATA for a signer name of `signer_len` bytes.
pub fn rrsig_len(signer_len: usize) -> usize {
    18 + signer_len + Algorithm::SIGNATURE_LEN
}

/// The label count of an owner for the RRSIG Labels field: a leading `*`
/// does not count (RFC 4034 §3.1.3).
pub fn labels(owner: &[u8]) -> u8 {
    let n = name::label_count(owner);
    let wild = owner.first() == Some(&1) && owner.get(1) == Some(&b'*');
    (n - usize::from(wild)) as u8
}

fn put(buf: &mut [u8], at: &mut usize, bytes: &[u8]) -> Result<(), SignError> {
    let end = at.checked_add(bytes.len()).ok_or(SignError::TooLong)?;
    buf.get_mut(*at..end).ok_or(SignError::TooLong)?.copy_from_slice(bytes);
    *at = end;
    Ok(())
}

/// Write the RRSIG RDATA without its signature: the fields the signature
/// covers first (RFC 4034 §3.1.8.1).
fn header(buf: &mut [u8], at: &mut usize, s: &Signer<'_>, set: &Rrset<'_>) -> Result<(), SignError> {
    put(buf, at, &set.rtype.to_be_bytes())?;
    put(buf, at, &[s.key.alg.number(), labels(set.owner)])?;
    put(buf, at, &set.ttl.to_be_bytes())?;
    put(buf, at, &s.validity.expiration.to_be_bytes())?;
    put(buf, at, &s.validity.inception.to_be_bytes())?;
    put(buf, at, &s.key.tag.to_be_bytes())?;
    put(buf, at, s.zone)
}

/// Sign an RRset: its RRSIG RDATA goes to `out` (at least
/// [`rrsig_len`] bytes), `scratch` holds the data to sign. Returns the
/// RDATA's length. No allocation: callers on the answer path pass stack
/// buffers.
pub fn sign_into(s: &Signer<'_>, set: &Rrset<'_>, scratch: &mut [u8], out: &mut [u8]) -> Result<usize, SignError> {
    if name::wire_len(set.owner) != Some(set.owner.len()) {
        return Err(SignError::BadName);
    }
    let mut n = 0;
    header(scratch, &mut n, s, set)?;
    let head = n;
    for rd in set.rdata {
        put(scratch, &mut n, set.owner)?;
        put(scratch, &mut n, &set.rtype.to_be_bytes())?;
        put(scratch, &mut n, &1u16.to_be_bytes())?;
        put(scratch, &mut n, &set.ttl.to_be_bytes())?;
        let len = u16::try_from(rd.len()).map_err(|_| SignError::TooLong)?;
        put(scratch, &mut n, &len.to_be_bytes())?;
        put(scratch, &mut n, rd)?;
    }
    let mut sig = [0u8; Algorithm::SIGNATURE_LEN];
    s.key.sign(&scratch[..n], &mut sig)?;
    let total = head + sig.len();
    let dst = out.get_mut(..total).ok_or(SignError::TooLong)?;
    dst[..head].copy_from_slice(&scratch[..head]);
    dst[head..].copy_from_slice(&sig);
    Ok(total)
}

/// [`sign_into`] with buffers of its own, for signing ahead of time.
pub fn sign(s: &Signer<'_>, set: &Rrset<'_>) -> Result<Vec<u8>, SignError> {
    let need = 18 + s.zone.len() + set.rdata.iter().map(|r| set.owner.len() + 10 + r.len()).sum::<usize>();
    let mut scratch = vec![0u8; need];
    let mut out = vec![0u8; rrsig_len(s.zone.len())];
    let n = sign_into(s, set, &mut scratch, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Sort RDATA into canonical order and drop duplicates (RFC 4034 §6.3).
pub fn sort_canonical(rdata: &mut Vec<&[u8]>) {
    rdata.sort_unstable();
    rdata.dedup();
}

/// The canonical form of an RDATA (RFC 4034 §6.2 as corrected by RFC 6840
/// §5.1): domain names in the RDATA of these types in lower case.
/// Malformed RDATA is left as it is (its signature will not validate,
/// which is what it deserves).
pub fn canonical_rdata(rtype: u16, rd: &[u8]) -> Cow<'_, [u8]> {
    // (offset of the first name, how many names) for the types whose
    // names are lowered; NAPTR's replacement name follows variable-length
    // strings and is handled apart.
    let (start, names) = match rtype {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => (0, 1),
        // SOA, MINFO, RP: two names
        6 | 14 | 17 => (0, 2),
        // MX, AFSDB, RT, KX: preference then a name
        15 | 18 | 21 | 36 => (2, 1),
        // PX: preference, two names
        26 => (2, 2),
        // SRV: priority, weight, port, target
        33 => (6, 1),
        // NAPTR
        35 => return naptr(rd),
        _ => return Cow::Borrowed(rd),
    };
    let mut v = rd.to_vec();
    let mut at = start;
    for _ in 0..names {
        let Some(len) = v.get(at..).and_then(name::wire_len) else {
            return Cow::Borrowed(rd);
        };
        // Length octets are below 64: lowering ASCII never touches them.
        v[at..at + len].make_ascii_lowercase();
        at += len;
    }
    Cow::Owned(v)
}

fn naptr(rd: &[u8]) -> Cow<'_, [u8]> {
    // order(2) preference(2) flags, services, regexp (character strings),
    // replacement (a name).
    let mut at = 4;
    for _ in 0..3 {
        let Some(&l) = rd.get(at) else { return Cow::Borrowed(rd) };
        at += 1 + l as usize;
    }
    let Some(len) = rd.get(at..).and_then(name::wire_len) else {
        return Cow::Borrowed(rd);
    };
    let mut v = rd.to_vec();
    v[at..at + len].make_ascii_lowercase();
    Cow::Owned(v)
}
