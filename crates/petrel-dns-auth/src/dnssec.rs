//! The DNSSEC records of an answer from a signed zone, for queries with the
//! DO bit (RFC 4035 §3.1): signatures made when the generation was built,
//! and, for what cannot be known ahead (a name that does not exist, a
//! wildcard's expansion, a set of POPs past the signed-ahead bound), a
//! signature made now on the stack. Denial is compact (RFC 9824): one
//! NSEC owned by the name asked.

use petrel_dns_wire::consts::class;
use petrel_dns_wire::{Full, MessageWriter, Section};
use petrel_dns_zone::signed::{Signed, ZoneKeys, RRSIG_MAX};
use petrel_dns_zone::RrSet;
use petrel_dnssec::{nsec, rtype as sec};

/// RRsets larger than this many records are not signed while answering.
const MAX_NOW: usize = 64;

/// RRSIG records for signatures made ahead.
pub(crate) fn rrsigs(
    w: &mut MessageWriter<'_>,
    section: Section,
    owner: &[u8],
    ttl: u32,
    sigs: &[Box<[u8]>],
) -> Result<(), Full> {
    for s in sigs {
        w.record(section, owner, sec::RRSIG, class::IN, ttl, s)?;
    }
    Ok(())
}

/// Sign an RRset now (owner `lname` in lower case, RDATA canonical) and
/// write its RRSIG; nothing when it cannot be (too large: the answer goes
/// unsigned).
pub(crate) fn sign_now(
    w: &mut MessageWriter<'_>,
    section: Section,
    keys: &ZoneKeys,
    (owner, lname): (&[u8], &[u8]),
    rtype: u16,
    ttl: u32,
    rdata: &[&[u8]],
) -> Result<(), Full> {
    let mut refs: [&[u8]; MAX_NOW] = [&[]; MAX_NOW];
    if rdata.len() > MAX_NOW {
        return Ok(());
    }
    refs[..rdata.len()].copy_from_slice(rdata);
    let refs = &mut refs[..rdata.len()];
    refs.sort_unstable();
    let mut out = [0u8; RRSIG_MAX];
    if let Some(n) = keys.sign_now(lname, rtype, ttl, refs, &mut out) {
        w.record(section, owner, sec::RRSIG, class::IN, ttl, &out[..n])?;
    }
    Ok(())
}

/// [`sign_now`] for a stored RRset (its RDATA is canonical and sorted
/// since the zone was signed).
pub(crate) fn sign_set_now(
    w: &mut MessageWriter<'_>,
    section: Section,
    keys: &ZoneKeys,
    names: (&[u8], &[u8]),
    set: &RrSet,
) -> Result<(), Full> {
    let mut refs: [&[u8]; MAX_NOW] = [&[]; MAX_NOW];
    if set.rdata.len() > MAX_NOW {
        return Ok(());
    }
    for (r, d) in refs.iter_mut().zip(&set.rdata) {
        *r = d;
    }
    sign_now(w, section, keys, names, set.rtype, set.ttl, &refs[..set.rdata.len()])
}

/// The NSEC made ahead for a name, and its signatures, in authority.
pub(crate) fn nsec_ahead(w: &mut MessageWriter<'_>, owner: &[u8], ttl: u32, s: &Signed) -> Result<(), Full> {
    w.record(Section::Authority, owner, sec::NSEC, class::IN, ttl, &s.rdata)?;
    rrsigs(w, Section::Authority, owner, ttl, &s.sigs)
}

/// A compact NSEC made now for `lname` with `types` (NXNAME alone for a
/// name that does not exist), signed, in authority.
pub(crate) fn nsec_now(
    w: &mut MessageWriter<'_>,
    keys: &ZoneKeys,
    (owner, lname): (&[u8], &[u8]),
    types: &[u16],
    ttl: u32,
) -> Result<(), Full> {
    let mut rd = [0u8; 255 + nsec::MAX_BITMAP];
    let n = nsec::compact_rdata(lname, types, &mut rd);
    w.record(Section::Authority, owner, sec::NSEC, class::IN, ttl, &rd[..n])?;
    sign_now(w, Section::Authority, keys, (owner, lname), sec::NSEC, ttl, &[&rd[..n]])
}

/// The types of a node's RRsets, into a fixed array (for an NSEC made now).
pub(crate) fn types_of(sets: &[RrSet], out: &mut [u16; 32]) -> usize {
    let mut n = 0;
    for s in sets {
        if n < out.len() {
            out[n] = s.rtype;
            n += 1;
        }
    }
    n
}
