//! A signed zone's DNSSEC material, made when a generation is built: the
//! DNSKEY (and CDS/CDNSKEY) RRsets, an RRSIG for every authoritative RRset,
//! and per name the compact-denial NSEC (RFC 9824) that NODATA answers
//! carry. What cannot be known ahead (a name that does not exist, a
//! wildcard's expansion) is signed while answering by [`ZoneKeys::sign_now`],
//! without allocating.

use crate::zone::{RrSet, ZoneError, ZoneSetBuilder};
use petrel_dns_wire::consts::rtype;
use petrel_dns_wire::name;
use petrel_dnssec::rrsig::{self, Rrset, SignError, Signer, Validity};
use petrel_dnssec::{nsec, rtype as sec, Key};
use std::sync::Arc;

/// Bytes of the largest RRSIG RDATA we make.
pub const RRSIG_MAX: usize = 18 + 255 + 64;

/// Signed data bigger than this is not signed while answering (a static
/// wildcard RRset that large is signed nowhere: its answer goes unsigned
/// and validators call it bogus; the zone's check at load says so).
pub const SIGN_NOW_MAX: usize = 4096;

/// A record made for DNSSEC and its signatures.
#[derive(Clone, Debug)]
pub struct Signed {
    pub rdata: Box<[u8]>,
    pub sigs: Vec<Box<[u8]>>,
}

/// A zone's keys and how long signatures hold.
pub struct ZoneKeys {
    /// The apex in lower-case wire form: the signer name.
    pub apex: Box<[u8]>,
    pub signing: Vec<Key>,
    /// DNSKEY RDATA of keys that are published but do not sign.
    pub published: Vec<Vec<u8>>,
    pub validity: Validity,
    /// Publish CDS and CDNSKEY for the SEP keys (RFC 7344).
    pub cds: bool,
}

impl std::fmt::Debug for ZoneKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKeys")
            .field("apex", &name::to_text(&self.apex))
            .field("signing", &self.signing)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl ZoneKeys {
    /// The keys that sign everything but the key RRsets: the ZSKs, or the
    /// SEP keys when there is no ZSK (a CSK).
    pub fn zsks(&self) -> impl Iterator<Item = &Key> {
        let any_zsk = self.signing.iter().any(|k| !k.is_sep());
        self.signing.iter().filter(move |k| !any_zsk || !k.is_sep())
    }

    /// The keys that sign DNSKEY, CDS and CDNSKEY: the SEP keys, or all
    /// when none has the flag.
    pub fn ksks(&self) -> impl Iterator<Item = &Key> {
        let any_sep = self.signing.iter().any(Key::is_sep);
        self.signing.iter().filter(move |k| !any_sep || k.is_sep())
    }

    fn signer<'a>(&'a self, key: &'a Key) -> Signer<'a> {
        Signer {
            key,
            zone: &self.apex,
            validity: self.validity,
        }
    }

    /// Signatures of an RRset made ahead of time, one per key that signs
    /// its type. `owner` in lower case.
    pub fn sign_set(
        &self,
        owner: &[u8],
        rtype_: u16,
        ttl: u32,
        rdata: &[Box<[u8]>],
    ) -> Result<Vec<Box<[u8]>>, SignError> {
        let canon: Vec<_> = rdata.iter().map(|r| rrsig::canonical_rdata(rtype_, r)).collect();
        let mut refs: Vec<&[u8]> = canon.iter().map(|c| &**c).collect();
        rrsig::sort_canonical(&mut refs);
        let set = Rrset {
            owner,
            rtype: rtype_,
            ttl,
            rdata: &refs,
        };
        let keys: Vec<&Key> = if matches!(rtype_, sec::DNSKEY | sec::CDS | sec::CDNSKEY) {
            self.ksks().collect()
        } else {
            self.zsks().collect()
        };
        keys.into_iter()
            .map(|k| rrsig::sign(&self.signer(k), &set).map(Vec::into_boxed_slice))
            .collect()
    }

    /// Sign an RRset while answering, with the first ZSK: `owner` in lower
    /// case, `rdata` canonical and sorted. The RRSIG RDATA goes to `out`;
    /// its length, or None when it does not fit the stack buffers.
    pub fn sign_now(
        &self,
        owner: &[u8],
        rtype_: u16,
        ttl: u32,
        rdata: &[&[u8]],
        out: &mut [u8; RRSIG_MAX],
    ) -> Option<usize> {
        let key = self.zsks().next()?;
        let mut scratch = [0u8; SIGN_NOW_MAX];
        let set = Rrset {
            owner,
            rtype: rtype_,
            ttl,
            rdata,
        };
        rrsig::sign_into(&self.signer(key), &set, &mut scratch, out).ok()
    }
}

/// The NSEC next name of an unsigned delegation (RFC 9824 §3.4): a zero
/// octet appended to the first label (`sub\000.example.com.`), so that the
/// name stays out of the child zone. The owner itself when the label is
/// already 63 octets.
fn delegation_next(owner: &[u8]) -> Vec<u8> {
    let l = owner[0] as usize;
    if l == 0 || l >= 63 || owner.len() + 1 > 255 {
        return owner.to_vec();
    }
    let mut v = Vec::with_capacity(owner.len() + 1);
    v.push(l as u8 + 1);
    v.extend_from_slice(&owner[1..1 + l]);
    v.push(0);
    v.extend_from_slice(&owner[1 + l..]);
    v
}

fn err(apex: &[u8], what: &str, e: SignError) -> ZoneError {
    ZoneError(format!("zone {}: cannot sign {what}: {e}", name::to_text(apex)))
}

impl ZoneSetBuilder {
    /// Sign zone `zi` (its records, services and synthetic names all in):
    /// add DNSKEY (and CDS/CDNSKEY), sign every authoritative RRset and
    /// make each name's NSEC. `service_types` gives the types a service's
    /// name answers (A/AAAA, or CNAME).
    pub fn sign_zone(
        &mut self,
        zi: u16,
        keys: ZoneKeys,
        service_types: &dyn Fn(u16) -> Vec<u16>,
    ) -> Result<(), ZoneError> {
        let keys = Arc::new(keys);
        let apex_node = self.set.zones[zi as usize].apex_node as usize;
        let apex = keys.apex.clone();
        let neg_ttl = self.set.zones[zi as usize].neg_ttl;
        let soa_ttl = self.set.nodes[apex_node].rrset(rtype::SOA).map_or(3600, |s| s.ttl);
        {
            let node = &mut self.set.nodes[apex_node];
            for t in [sec::DNSKEY, sec::CDS, sec::CDNSKEY] {
                if node.rrset(t).is_some() {
                    return Err(ZoneError(format!(
                        "zone {}: {} records come from zone.dnssec's keys, not from the zone file",
                        name::to_text(&apex),
                        petrel_dns_wire::consts::rtype::name(t)
                    )));
                }
            }
            let mut dnskeys: Vec<Box<[u8]>> = keys.signing.iter().map(|k| k.dnskey_rdata().into()).collect();
            dnskeys.extend(keys.published.iter().map(|p| p.clone().into_boxed_slice()));
            node.rrsets.push(RrSet {
                rtype: sec::DNSKEY,
                ttl: soa_ttl,
                rdata: dnskeys,
                sigs: Vec::new(),
                generated: true,
            });
            if keys.cds {
                let sep: Vec<&Key> = keys.signing.iter().filter(|k| k.is_sep()).collect();
                if !sep.is_empty() {
                    node.rrsets.push(RrSet {
                        rtype: sec::CDS,
                        ttl: soa_ttl,
                        rdata: sep.iter().map(|k| k.ds_rdata().into()).collect(),
                        sigs: Vec::new(),
                        generated: true,
                    });
                    node.rrsets.push(RrSet {
                        rtype: sec::CDNSKEY,
                        ttl: soa_ttl,
                        rdata: sep.iter().map(|k| k.dnskey_rdata().into()).collect(),
                        sigs: Vec::new(),
                        generated: true,
                    });
                }
            }
        }
        for i in 0..self.set.nodes.len() {
            if self.set.nodes[i].zone != zi {
                continue;
            }
            let owner = self.set.names[i].clone();
            let cut = self.set.nodes[i].cut;
            let at_cut = cut == Some(i as u32);
            if cut.is_some() && !at_cut {
                continue; // below a delegation: the child's data, or glue
            }
            let node = &mut self.set.nodes[i];
            let mut types: Vec<u16> = node.rrsets.iter().map(|s| s.rtype).collect();
            if let Some(si) = node.service {
                types.extend(service_types(si));
            }
            for set in &mut node.rrsets {
                // At a delegation only the DS is ours to sign.
                if at_cut && set.rtype != sec::DS {
                    continue;
                }
                // Kept in canonical form and order (RFC 4034 §6): what is
                // signed while answering (a wildcard's expansion) is then
                // signed as it is stored.
                let mut canon: Vec<Box<[u8]>> = set
                    .rdata
                    .iter()
                    .map(|r| rrsig::canonical_rdata(set.rtype, r).into_owned().into_boxed_slice())
                    .collect();
                canon.sort_unstable();
                canon.dedup();
                set.rdata = canon;
                set.sigs = keys
                    .sign_set(&owner, set.rtype, set.ttl, &set.rdata)
                    .map_err(|e| err(&apex, &name::to_text(&owner), e))?;
            }
            let rdata: Vec<u8> = if at_cut {
                if types.contains(&sec::DS) {
                    continue; // the DS and its RRSIG prove the child signed
                }
                let mut v = delegation_next(&owner);
                let mut bm = [0u8; nsec::MAX_BITMAP];
                let n = nsec::type_bitmap(&[rtype::NS, sec::RRSIG, sec::NSEC], &mut bm);
                v.extend_from_slice(&bm[..n]);
                v
            } else {
                let mut out = [0u8; 255 + nsec::MAX_BITMAP];
                let n = nsec::compact_rdata(&owner, &types, &mut out);
                out[..n].to_vec()
            };
            let rdata: Box<[u8]> = rdata.into();
            let sigs = keys
                .sign_set(&owner, sec::NSEC, neg_ttl, std::slice::from_ref(&rdata))
                .map_err(|e| err(&apex, "an NSEC", e))?;
            self.set.nodes[i].nsec = Some(Box::new(Signed { rdata, sigs }));
        }
        self.set.zones[zi as usize].signing = Some(keys);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_zone_is_due_again_past_half_its_signatures_life() {
        let apex = name::from_text("example.net.").unwrap();
        let rec = |t: u16, rdata: Vec<u8>| crate::RecordIn {
            owner: apex.clone(),
            rtype: t,
            ttl: 60,
            rdata,
        };
        let mut soa = name::from_text("ns.example.net.").unwrap();
        soa.extend(name::from_text("h.example.net.").unwrap());
        soa.extend_from_slice(&[0; 20]);
        let mut b = ZoneSetBuilder::new();
        b.add_zone(
            &apex,
            [
                rec(rtype::SOA, soa),
                rec(rtype::NS, name::from_text("ns.example.net.").unwrap()),
            ],
        )
        .unwrap();
        let key = Key::from_parts(apex.clone(), 257, petrel_dnssec::Algorithm::Ed25519, &[3; 32], None).unwrap();
        let keys = ZoneKeys {
            apex: apex.clone().into(),
            signing: vec![key],
            published: Vec::new(),
            validity: Validity::starting(1_000_000, 14),
            cds: true,
        };
        b.sign_zone(0, keys, &|_| Vec::new()).unwrap();
        let z = b.build();
        assert!(!z.signatures_due(1_000_000 + 6 * 86_400));
        assert!(z.signatures_due(1_000_000 + 7 * 86_400));
        assert!(
            !ZoneSetBuilder::new().build().signatures_due(u32::MAX),
            "no signed zone"
        );
    }

    #[test]
    fn an_unsigned_delegation_names_a_successor_outside_the_child() {
        let owner = name::from_text("sub.example.com.").unwrap();
        assert_eq!(name::to_text(&delegation_next(&owner)), "sub\\000.example.com.");
        let long = name::from_text(&format!("{}.example.com.", "a".repeat(63))).unwrap();
        assert_eq!(delegation_next(&long), long);
    }
}
