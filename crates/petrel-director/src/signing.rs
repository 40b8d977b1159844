//! DNSSEC for a generation: a signed zone's keys read from their files,
//! and the signatures of every answer a mapped service can give, made when
//! the generation is built so that answering signs nothing (RFC 9824's
//! online signing, with its cost moved to the build).
//!
//! A service's answer is the addresses of the POPs a decision names (in
//! CNAME mode, one POP's name), so its RRsets are the sets of up to
//! `answers` POPs among the candidates and the backup set, per family.
//! Those sets are signed ahead, up to [`MAX_SETS`] per family; a set past
//! that bound (many answers over many POPs) is signed when first answered
//! ([`petrel_dns_zone::signed::ZoneKeys::sign_now`]).

use crate::error::BuildError;
use petrel_config::{DnssecConf, ServiceConf, ZoneConf};
use petrel_dns_wire::consts::rtype;
use petrel_dns_wire::name;
use petrel_dns_zone::signed::ZoneKeys;
use petrel_dnssec::rrsig::{SignError, Validity};
use petrel_dnssec::Key;
use petrel_mapping::{Fallback, PopInfo, MAX_ANSWERS};
use petrel_types::{Family, PopIdx};
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

/// Sets of POPs signed ahead, per service and family.
pub const MAX_SETS: usize = 4096;

/// `<stem>.<ext>`: BIND's key files.
pub fn key_file(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The POPs of one answer, in index order: the key of its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PopSet {
    pops: [u16; MAX_ANSWERS],
    len: u8,
}

impl PopSet {
    /// The set of `pops` (any order; at most [`MAX_ANSWERS`]).
    #[inline]
    pub fn of(pops: &[PopIdx]) -> PopSet {
        let mut s = PopSet {
            pops: [0; MAX_ANSWERS],
            len: pops.len().min(MAX_ANSWERS) as u8,
        };
        for (d, p) in s.pops.iter_mut().zip(pops) {
            *d = p.0;
        }
        s.pops[..s.len as usize].sort_unstable();
        s
    }
}

/// A service's answers, signed.
#[derive(Debug, Default)]
pub struct AnswerSigs {
    /// Address mode, per family (V4, V6): RRSIG RDATAs by the set of POPs.
    pub sets: [FxHashMap<PopSet, Vec<Box<[u8]>>>; 2],
    /// CNAME mode: per POP, the RRSIG RDATAs of the CNAME to its name.
    pub cname: Vec<Vec<Box<[u8]>>>,
}

impl AnswerSigs {
    #[inline]
    pub fn for_set(&self, fam: Family, pops: &[PopIdx]) -> Option<&[Box<[u8]>]> {
        let i = usize::from(fam == Family::V6);
        self.sets[i].get(&PopSet::of(pops)).map(Vec::as_slice)
    }
}

/// The keys of a signed zone, from the files its config names.
pub fn zone_keys(z: &ZoneConf, d: &DnssecConf, src: &crate::Sources) -> Result<ZoneKeys, Vec<BuildError>> {
    let apex = name::to_lowercase(&z.origin_wire);
    let mut errs = Vec::new();
    let fail = |at: &petrel_config::Location, file: PathBuf, reason: String| BuildError::Key {
        at: at.clone(),
        file,
        reason,
    };
    let mut signing = Vec::new();
    for (stem, at) in &d.keys {
        let (kf, pf) = (key_file(stem, "key"), key_file(stem, "private"));
        let (key_text, private_text) = match (src.text(&kf), src.text(&pf)) {
            (Ok(k), Ok(p)) => (k, p),
            (Err(e), _) => {
                errs.push(fail(at, kf, format!("cannot read: {e}")));
                continue;
            }
            (_, Err(e)) => {
                errs.push(fail(at, pf, format!("cannot read: {e}")));
                continue;
            }
        };
        match Key::from_bind(key_text, private_text) {
            Ok(k) if k.owner.as_slice() != apex.as_slice() => errs.push(fail(
                at,
                kf,
                format!("the key is for {}, not for this zone", name::to_text(&k.owner)),
            )),
            Ok(k) => signing.push(k),
            Err(e) => errs.push(fail(at, kf, e.to_string())),
        }
    }
    let mut published = Vec::new();
    for (stem, at) in &d.publish {
        let kf = key_file(stem, "key");
        match src
            .text(&kf)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|t| petrel_dnssec::key::dnskey_rdata_of(t).map_err(|e| e.to_string()))
        {
            Ok(rd) => published.push(rd),
            Err(e) => errs.push(fail(at, kf, e)),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(ZoneKeys {
        apex: apex.into(),
        signing,
        published,
        validity: Validity::starting(src.now, d.validity_days),
        cds: d.cds,
    })
}

/// The types a service's name answers, for its NSEC.
pub fn service_types(s: &ServiceConf, pops: &[PopInfo]) -> Vec<u16> {
    if s.cname.is_some() {
        return vec![rtype::CNAME];
    }
    let all = universe(s);
    let mut t = Vec::new();
    if all.iter().any(|p| !pops[p.index()].ipv4.is_empty()) {
        t.push(rtype::A);
    }
    if all.iter().any(|p| !pops[p.index()].ipv6.is_empty()) {
        t.push(rtype::AAAA);
    }
    t
}

/// Every POP an answer may name: the candidates and the backup set.
fn universe(s: &ServiceConf) -> Vec<PopIdx> {
    let mut u = s.pops.clone();
    if let Fallback::Backup(b) = &s.fallback {
        for p in b {
            if !u.contains(p) {
                u.push(*p);
            }
        }
    }
    u
}

/// Sign every answer of a service (see the module's notes).
pub fn answer_sigs(s: &ServiceConf, pops: &[PopInfo], keys: &ZoneKeys) -> Result<AnswerSigs, SignError> {
    let owner = name::to_lowercase(&s.name_wire);
    let mut out = AnswerSigs::default();
    if let Some(template) = &s.cname {
        for p in pops {
            let target = name::from_text(&template.replace("{pop}", &p.name)).map_err(|_| SignError::BadName)?;
            out.cname
                .push(keys.sign_set(&owner, rtype::CNAME, s.ttl, &[target.into_boxed_slice()])?);
        }
        return Ok(out);
    }
    for (fi, fam) in [Family::V4, Family::V6].into_iter().enumerate() {
        let addrs = |p: PopIdx| -> Vec<Box<[u8]>> {
            let info = &pops[p.index()];
            match fam {
                Family::V4 => info.ipv4.iter().map(|a| Box::from(&a.octets()[..])).collect(),
                Family::V6 => info.ipv6.iter().map(|a| Box::from(&a.octets()[..])).collect(),
            }
        };
        let u: Vec<PopIdx> = universe(s).into_iter().filter(|&p| !addrs(p).is_empty()).collect();
        let t = if fam == Family::V4 { rtype::A } else { rtype::AAAA };
        let max = usize::from(s.answers).min(u.len());
        let mut chosen: Vec<PopIdx> = Vec::new();
        subsets(&u, max, &mut chosen, 0, &mut |set| {
            if out.sets[fi].len() >= MAX_SETS {
                return Ok(false);
            }
            let rdata: Vec<Box<[u8]>> = set.iter().flat_map(|&p| addrs(p)).collect();
            let sigs = keys.sign_set(&owner, t, s.ttl, &rdata)?;
            out.sets[fi].insert(PopSet::of(set), sigs);
            Ok(true)
        })?;
    }
    Ok(out)
}

/// Call `f` with every non-empty subset of `u` of at most `max` members,
/// smallest first; stop when it says so.
fn subsets(
    u: &[PopIdx],
    max: usize,
    cur: &mut Vec<PopIdx>,
    from: usize,
    f: &mut dyn FnMut(&[PopIdx]) -> Result<bool, SignError>,
) -> Result<bool, SignError> {
    for i in from..u.len() {
        cur.push(u[i]);
        if !f(cur)? {
            return Ok(false);
        }
        if cur.len() < max && !subsets(u, max, cur, i + 1, f)? {
            return Ok(false);
        }
        cur.pop();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_every_combination_up_to_the_answer_count() {
        let u: Vec<PopIdx> = (0..5).map(PopIdx).collect();
        let mut seen = Vec::new();
        subsets(&u, 2, &mut Vec::new(), 0, &mut |s| {
            seen.push(PopSet::of(s));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen.len(), 5 + 10);
        let mut dedup = seen.clone();
        dedup.sort_by_key(|s| (s.len, s.pops));
        dedup.dedup();
        assert_eq!(dedup.len(), seen.len());
        assert_eq!(PopSet::of(&[PopIdx(3), PopIdx(1)]), PopSet::of(&[PopIdx(1), PopIdx(3)]));
    }
}
