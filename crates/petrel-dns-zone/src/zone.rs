//! The static side of authoritative data: zones, nodes and RRsets.

use petrel_dns_wire::consts::rtype;
use petrel_dns_wire::name;
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// A record as read from a zone file: owner and rdata in uncompressed wire
/// form (owner case as written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordIn {
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct RrSet {
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<Box<[u8]>>,
    /// In a signed zone: its RRSIG RDATAs, one per key that signs it.
    pub sigs: Vec<Box<[u8]>>,
    /// Made by petrel (a POP's name in CNAME mode, the DNSKEY RRset), not
    /// read from the zone file: zone transfers leave it out.
    pub generated: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Node {
    pub zone: u16,
    pub rrsets: Vec<RrSet>,
    /// A mapped service answers at this name.
    pub service: Option<u16>,
    /// The delegation point at or above this name (below the apex), if any.
    pub cut: Option<u32>,
    /// In a signed zone: the NSEC that denies the types the name lacks
    /// (compact denial, RFC 9824), or at a delegation without DS that the
    /// child is unsigned; with its signatures.
    pub nsec: Option<Box<crate::signed::Signed>>,
}

impl Node {
    pub fn rrset(&self, t: u16) -> Option<&RrSet> {
        self.rrsets.iter().find(|r| r.rtype == t)
    }
}

#[derive(Clone, Debug)]
pub struct Zone {
    pub apex: Box<[u8]>,
    pub apex_node: u32,
    /// SOA owner, TTL for negative answers (RFC 2308 §5) and rdata.
    pub neg_ttl: u32,
    /// The keys of a signed zone.
    pub signing: Option<std::sync::Arc<crate::signed::ZoneKeys>>,
}

/// All zones of a generation. Names are keyed in lower case.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    pub(crate) zones: Vec<Zone>,
    pub(crate) nodes: Vec<Node>,
    /// Each name is stored once, shared by `names` and `index`; the index
    /// keeps the name's pointer in its slot, so a lookup follows one pointer.
    pub(crate) names: Vec<Arc<[u8]>>,
    index: FxHashMap<Arc<[u8]>, u32>,
    apexes: FxHashMap<Box<[u8]>, u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneError(pub String);

impl ZoneError {
    /// Who is to blame: the zone data the config names.
    pub fn blame(&self) -> petrel_types::Blame {
        petrel_types::Blame::Config
    }
}

impl std::error::Error for ZoneError {}

impl std::fmt::Display for ZoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ZoneSet {
    fn find(&self, lname: &[u8]) -> Option<u32> {
        self.index.get(lname).copied()
    }

    /// The node of a lower-case name, with its id.
    pub fn node(&self, lname: &[u8]) -> Option<(u32, &Node)> {
        self.find(lname).map(|i| (i, &self.nodes[i as usize]))
    }

    /// The most specific zone containing a lower-case name.
    pub fn zone_of(&self, lname: &[u8]) -> Option<u16> {
        let mut n = lname;
        loop {
            if let Some(&z) = self.apexes.get(n) {
                return Some(z);
            }
            n = name::parent(n)?;
        }
    }

    /// A zone by the index [`ZoneSet::zone_of`] gave.
    pub fn zone(&self, z: u16) -> &Zone {
        &self.zones[z as usize]
    }

    /// A node by id (a zone's apex node, a delegation point).
    pub fn node_at(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    /// The owner name of a node, in lower case.
    pub fn name_at(&self, id: u32) -> &[u8] {
        &self.names[id as usize]
    }

    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The names of zone `z` with their nodes (its apex first), in no
    /// particular order otherwise: what a zone transfer walks.
    pub fn nodes_of(&self, z: u16) -> impl Iterator<Item = (&[u8], &Node)> {
        let apex = self.zones[z as usize].apex_node as usize;
        std::iter::once(apex)
            .chain((0..self.nodes.len()).filter(move |&i| i != apex && self.nodes[i].zone == z))
            .map(|i| (&*self.names[i], &self.nodes[i]))
    }

    /// Whether any signed zone's signatures are past half their validity
    /// at `now` (Unix seconds): time to build the generation again.
    pub fn signatures_due(&self, now: u32) -> bool {
        self.zones
            .iter()
            .filter_map(|z| z.signing.as_ref())
            .any(|k| k.validity.due(now))
    }

    /// Apex names in presentation form.
    pub fn apex_names(&self) -> Vec<String> {
        self.zones.iter().map(|z| name::to_text(&z.apex)).collect()
    }
}

/// A zone being built: see [`ZoneSetBuilder::begin_zone`].
pub struct ZoneBuild {
    zi: u16,
    apex: Vec<u8>,
    apex_text: String,
    apex_node: u32,
    errs: Vec<ZoneError>,
}

/// Builds a [`ZoneSet`], checking what RFC 1034/2181 require of zone data.
#[derive(Default)]
pub struct ZoneSetBuilder {
    pub(crate) set: ZoneSet,
}

fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl ZoneSetBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn ensure_node(&mut self, lname: &[u8], zone: u16) -> u32 {
        if let Some(i) = self.set.find(lname) {
            return i;
        }
        let i = self.set.nodes.len() as u32;
        self.set.nodes.push(Node {
            zone,
            ..Default::default()
        });
        let shared: Arc<[u8]> = lname.into();
        self.set.names.push(shared.clone());
        self.set.index.insert(shared, i);
        // Empty non-terminals up to the apex exist too (RFC 8020).
        if let Some(p) = name::parent(lname) {
            if name::is_subdomain(p, &self.set.zones[zone as usize].apex) {
                self.ensure_node(p, zone);
            }
        }
        i
    }

    /// Add one zone with its records. `origin` is the apex in wire form.
    pub fn add_zone(
        &mut self,
        origin: &[u8],
        records: impl IntoIterator<Item = RecordIn>,
    ) -> Result<(), Vec<ZoneError>> {
        let mut z = self.begin_zone(origin)?;
        for r in records {
            self.add_record(&mut z, r);
        }
        self.finish_zone(z)
    }

    /// Start a zone whose records come one at a time ([`ZoneSetBuilder::add_record`]),
    /// as a zone file is read: no list of every record is ever held.
    pub fn begin_zone(&mut self, origin: &[u8]) -> Result<ZoneBuild, Vec<ZoneError>> {
        let apex = name::to_lowercase(origin);
        let apex_text = name::to_text(&apex);
        if self.set.apexes.contains_key(apex.as_slice()) {
            return Err(vec![ZoneError(format!("zone {apex_text} is defined twice"))]);
        }
        let zi = self.set.zones.len() as u16;
        self.set.zones.push(Zone {
            apex: apex.clone().into(),
            apex_node: 0,
            neg_ttl: 0,
            signing: None,
        });
        self.set.apexes.insert(apex.clone().into(), zi);
        let apex_node = self.ensure_node(&apex, zi);
        self.set.zones[zi as usize].apex_node = apex_node;
        Ok(ZoneBuild {
            zi,
            apex,
            apex_text,
            apex_node,
            errs: Vec::new(),
        })
    }

    pub fn add_record(&mut self, z: &mut ZoneBuild, r: RecordIn) {
        let owner = name::to_lowercase(&r.owner);
        if !name::is_subdomain(&owner, &z.apex) {
            z.errs.push(ZoneError(format!(
                "{} is outside zone {}",
                name::to_text(&r.owner),
                z.apex_text
            )));
            return;
        }
        let ni = self.ensure_node(&owner, z.zi);
        let node = &mut self.set.nodes[ni as usize];
        match node.rrsets.iter_mut().find(|s| s.rtype == r.rtype) {
            Some(set) => {
                // RFC 2181 §5.2: one TTL per RRset; take the smallest.
                set.ttl = set.ttl.min(r.ttl);
                if !set.rdata.iter().any(|d| **d == *r.rdata) {
                    set.rdata.push(r.rdata.into());
                }
            }
            None => node.rrsets.push(RrSet {
                rtype: r.rtype,
                ttl: r.ttl,
                rdata: vec![r.rdata.into()],
                sigs: Vec::new(),
                generated: false,
            }),
        }
    }

    /// Check a zone whose records are all in.
    pub fn finish_zone(&mut self, z: ZoneBuild) -> Result<(), Vec<ZoneError>> {
        let ZoneBuild {
            zi,
            apex,
            apex_text,
            apex_node,
            mut errs,
        } = z;
        // Apex checks and the negative-caching TTL.
        let apex_n = &self.set.nodes[apex_node as usize];
        match apex_n.rrset(rtype::SOA) {
            Some(soa) if soa.rdata.len() == 1 => {
                let rd = &soa.rdata[0];
                let minimum = name::wire_len(rd)
                    .and_then(|m| name::wire_len(&rd[m..]).map(|r| m + r))
                    .and_then(|at| get_u32(rd, at + 16));
                match minimum {
                    Some(min) => self.set.zones[zi as usize].neg_ttl = soa.ttl.min(min),
                    None => errs.push(ZoneError(format!("zone {apex_text}: malformed SOA"))),
                }
            }
            Some(_) => errs.push(ZoneError(format!("zone {apex_text} has more than one SOA"))),
            None => errs.push(ZoneError(format!("zone {apex_text} has no SOA record at its apex"))),
        }
        if apex_n.rrset(rtype::NS).is_none() {
            errs.push(ZoneError(format!("zone {apex_text} has no NS records at its apex")));
        }
        // Per-node checks; delegation points below the apex.
        let mut cuts = Vec::new();
        for (i, n) in self.set.nodes.iter().enumerate() {
            if n.zone != zi {
                continue;
            }
            let nm = name::to_text(&self.set.names[i]);
            if n.rrset(rtype::CNAME).is_some() && n.rrsets.len() > 1 {
                errs.push(ZoneError(format!("{nm} has a CNAME and other data (RFC 1034 §3.6.2)")));
            }
            if n.rrset(rtype::CNAME).is_some_and(|c| c.rdata.len() > 1) {
                errs.push(ZoneError(format!("{nm} has more than one CNAME")));
            }
            if i as u32 != apex_node && n.rrset(rtype::SOA).is_some() {
                errs.push(ZoneError(format!("{nm} has an SOA below the apex")));
            }
            if i as u32 != apex_node && n.rrset(rtype::NS).is_some() {
                cuts.push(i as u32);
            }
        }
        // The highest cut at or above each name wins. Every ancestor up to
        // the apex is a node (empty non-terminals included), so walking up
        // costs the name's depth, whatever the number of delegations.
        let mut is_cut = vec![false; self.set.nodes.len()];
        for &c in &cuts {
            is_cut[c as usize] = true;
        }
        for i in 0..self.set.names.len() {
            if self.set.nodes[i].zone != zi || cuts.is_empty() {
                continue;
            }
            let mut cut = None;
            let mut cur: &[u8] = &self.set.names[i];
            while cur != apex.as_slice() {
                if let Some(j) = self.set.find(cur) {
                    if is_cut[j as usize] {
                        cut = Some(j);
                    }
                }
                match name::parent(cur) {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            self.set.nodes[i].cut = cut;
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// Mark a name (wire form) as answered by mapped service `idx`.
    pub fn add_service(&mut self, owner: &[u8], idx: u16) -> Result<(), ZoneError> {
        let lname = name::to_lowercase(owner);
        let text = name::to_text(owner);
        let zone = self
            .set
            .zone_of(&lname)
            .ok_or_else(|| ZoneError(format!("service name {text} is in none of the zones")))?;
        let ni = self.ensure_node(&lname, zone);
        let node = &self.set.nodes[ni as usize];
        if node.cut.is_some() || self.below_cut(&lname) {
            return Err(ZoneError(format!("service name {text} lies in a delegated subzone")));
        }
        if node.rrset(rtype::CNAME).is_some() {
            return Err(ZoneError(format!("service name {text} also has a static CNAME")));
        }
        for t in [rtype::A, rtype::AAAA] {
            if node.rrset(t).is_some() {
                return Err(ZoneError(format!(
                    "service name {text} also has static {} records",
                    rtype::name(t)
                )));
            }
        }
        if let Some(other) = node.service {
            if other != idx {
                return Err(ZoneError(format!("service name {text} is used by two services")));
            }
        }
        self.set.nodes[ni as usize].service = Some(idx);
        Ok(())
    }

    fn below_cut(&self, lname: &[u8]) -> bool {
        let mut n = lname;
        while let Some(p) = name::parent(n) {
            if let Some(i) = self.set.find(p) {
                if self.set.nodes[i as usize].cut.is_some() {
                    return true;
                }
            }
            n = p;
        }
        false
    }

    /// Add address records for a synthesized name (a POP's own name in CNAME
    /// mode) unless the zone data already has that name.
    pub fn add_synthetic(&mut self, owner: &[u8], ttl: u32, v4: &[[u8; 4]], v6: &[[u8; 16]]) -> Result<(), ZoneError> {
        let lname = name::to_lowercase(owner);
        let text = name::to_text(owner);
        let Some(zone) = self.set.zone_of(&lname) else {
            return Ok(()); // out of our zones: resolvers look it up elsewhere
        };
        if let Some((_, n)) = self.set.node(&lname) {
            if !n.rrsets.is_empty() || n.service.is_some() {
                return Ok(()); // the operator defined it
            }
        }
        if self.below_cut(&lname) {
            return Err(ZoneError(format!("POP name {text} lies in a delegated subzone")));
        }
        let ni = self.ensure_node(&lname, zone);
        let node = &mut self.set.nodes[ni as usize];
        if !v4.is_empty() {
            node.rrsets.push(RrSet {
                rtype: rtype::A,
                ttl,
                rdata: v4.iter().map(|a| Box::from(&a[..])).collect(),
                sigs: Vec::new(),
                generated: true,
            });
        }
        if !v6.is_empty() {
            node.rrsets.push(RrSet {
                rtype: rtype::AAAA,
                ttl,
                rdata: v6.iter().map(|a| Box::from(&a[..])).collect(),
                sigs: Vec::new(),
                generated: true,
            });
        }
        Ok(())
    }

    pub fn build(self) -> ZoneSet {
        self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(owner: &str, rtype: u16, rdata: &[u8]) -> RecordIn {
        let mut w = Vec::new();
        for l in owner.trim_end_matches('.').split('.') {
            w.push(l.len() as u8);
            w.extend_from_slice(l.as_bytes());
        }
        w.push(0);
        RecordIn {
            owner: w,
            rtype,
            ttl: 300,
            rdata: rdata.to_vec(),
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a test times itself
    fn delegations_are_found_in_time_linear_in_the_names() {
        let ns = b"\x02ns\x07example\x00";
        let soa = [&ns[..], &ns[..], &[0u8; 20][..]].concat();
        let mut recs = vec![rec("example.", rtype::SOA, &soa), rec("example.", rtype::NS, ns)];
        // 20,000 delegations, each with a name below it, and a delegation
        // inside a delegation (the higher one wins).
        for i in 0..20_000 {
            recs.push(rec(&format!("d{i}.example."), rtype::NS, ns));
            recs.push(rec(&format!("x.d{i}.example."), rtype::A, &[192, 0, 2, 1]));
        }
        recs.push(rec("sub.d7.example.", rtype::NS, ns));
        let apex = rec("example.", 0, &[]).owner;
        let t0 = std::time::Instant::now();
        let mut b = ZoneSetBuilder::new();
        b.add_zone(&apex, recs).unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{:?}", t0.elapsed());
        let set = b.set;
        let at = |n: &str| set.find(&rec(n, 0, &[]).owner).unwrap();
        let d7 = at("d7.example.");
        assert_eq!(set.nodes[at("x.d7.example.") as usize].cut, Some(d7));
        assert_eq!(set.nodes[at("sub.d7.example.") as usize].cut, Some(d7));
        assert_eq!(set.nodes[d7 as usize].cut, Some(d7));
        assert_eq!(set.nodes[at("example.") as usize].cut, None);
    }
}
