//! What the routing views know, in the form the mapping engine compiles:
//! per view and family a partition of the address space whose values name
//! the AS path of the preferred route (longest match) there.
//!
//! The engine does not depend on the RIB: whoever owns the views feeds the
//! preferred routes in through [`BgpDataBuilder`]. Paths are interned, so a
//! full table of a million routes needs only its distinct paths here.

use crate::table::{Partition, PartitionBuilder, NONE};
use petrel_types::{Asn, Family, PopIdx, Prefix};
use rustc_hash::FxHashMap;

/// An AS path as the mapping policies see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BgpPath {
    /// Every ASN in order, nearest first; AS_SET members flattened in place.
    pub asns: Box<[u32]>,
    /// The RFC 4271 §9.1.2.2 path length: an AS_SET counts as one.
    pub len: u32,
}

impl BgpPath {
    /// The origin AS (the last one in the path), if any.
    pub fn origin(&self) -> Option<u32> {
        self.asns.last().copied()
    }
}

impl std::fmt::Display for BgpPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.asns.is_empty() {
            return f.write_str("(empty: local)");
        }
        for (i, a) in self.asns.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// One POP's routing view, compiled.
#[derive(Clone, Debug)]
pub struct ViewFacts {
    pub name: String,
    /// The POP whose view of the Internet this is.
    pub pop: PopIdx,
    /// Per family: path id of the preferred route covering each address, or
    /// [`NONE`] where the view has no route.
    pub parts: [Partition; 2],
    pub routes: usize,
}

impl ViewFacts {
    pub fn partition(&self, f: Family) -> &Partition {
        match f {
            Family::V4 => &self.parts[0],
            Family::V6 => &self.parts[1],
        }
    }
}

/// All views, compiled; shared by every service that uses BGP policies.
#[derive(Clone, Debug, Default)]
pub struct BgpData {
    pub views: Vec<ViewFacts>,
    pub paths: Vec<BgpPath>,
    /// The views' prefix boundaries; empty unless asked for (BGP map units
    /// of the latency policy).
    pub prefixes: crate::routed::PrefixIndex,
}

impl BgpData {
    /// The path a view prefers for a client (slow path: explanations).
    pub fn path_at(&self, view: usize, client: &Prefix) -> Option<&BgpPath> {
        let v = self.views[view].partition(client.family()).get(client.bits());
        (v != NONE).then(|| &self.paths[v as usize])
    }

    pub fn is_empty(&self) -> bool {
        self.views.iter().all(|v| v.routes == 0)
    }

    pub fn heap_bytes(&self) -> usize {
        let parts: usize = self
            .views
            .iter()
            .flat_map(|v| v.parts.iter())
            .map(Partition::heap_bytes)
            .sum();
        parts + self.paths.iter().map(|p| p.asns.len() * 4 + 24).sum::<usize>() + self.prefixes.heap_bytes()
    }
}

#[derive(Default)]
pub struct BgpDataBuilder {
    data: BgpData,
    ids: FxHashMap<BgpPath, u32>,
    scratch: Vec<u32>,
}

impl BgpDataBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Intern a path given as its ASNs (nearest first) and RFC length.
    pub fn path_id(&mut self, asns: impl IntoIterator<Item = u32>, len: u32) -> u32 {
        self.scratch.clear();
        self.scratch.extend(asns);
        let key = BgpPath {
            asns: self.scratch.as_slice().into(),
            len,
        };
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.data.paths.len() as u32;
        self.data.paths.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// Add a view from its preferred routes: `(prefix, path id)` pairs, in
    /// any order, of both families.
    pub fn add_view(&mut self, name: impl Into<String>, pop: PopIdx, mut routes: Vec<(Prefix, u32)>) {
        routes.sort_unstable_by_key(|(p, _)| (p.family() == Family::V6, p.bits(), p.len()));
        let mut v = self.view_builder(name, pop);
        for (p, id) in routes {
            v.push(p, id);
        }
        v.finish();
    }

    /// Add a view from its preferred routes streamed in order: IPv4 then
    /// IPv6, each by (address, length), as a RIB walk yields them.
    pub fn view_builder(&mut self, name: impl Into<String>, pop: PopIdx) -> ViewBuilder<'_> {
        ViewBuilder {
            owner: self,
            name: name.into(),
            pop,
            v4: PartitionBuilder::new(Family::V4),
            v6: PartitionBuilder::new(Family::V6),
            routes: 0,
        }
    }

    pub fn build(self) -> BgpData {
        self.data
    }

    /// Keep the prefix boundaries too (see [`crate::routed`]).
    pub fn set_prefixes(&mut self, prefixes: Vec<Prefix>) {
        self.data.prefixes = crate::routed::PrefixIndex::build(prefixes);
    }
}

pub struct ViewBuilder<'a> {
    owner: &'a mut BgpDataBuilder,
    name: String,
    pop: PopIdx,
    v4: PartitionBuilder,
    v6: PartitionBuilder,
    routes: usize,
}

impl ViewBuilder<'_> {
    pub fn push(&mut self, prefix: Prefix, path: u32) {
        self.routes += 1;
        match prefix.family() {
            Family::V4 => self.v4.push(prefix, path),
            Family::V6 => self.v6.push(prefix, path),
        }
    }

    /// Interning goes through the owner while the view is built.
    pub fn path_id(&mut self, asns: impl IntoIterator<Item = u32>, len: u32) -> u32 {
        self.owner.path_id(asns, len)
    }

    pub fn finish(self) {
        self.owner.data.views.push(ViewFacts {
            name: self.name,
            pop: self.pop,
            parts: [self.v4.finish(), self.v6.finish()],
            routes: self.routes,
        });
    }
}

/// How far each POP is from a client in AS hops, by the Super Sparrow rule
/// generalised to many views: a POP's own view gives its path length; a POP
/// whose ASN appears in any view's preferred path is as far as the rest of
/// that path (so the POP nearest the origin is closest). `None`: nothing
/// known. `paths[v]` is view v's preferred path for the client.
pub(crate) fn hop_distances(
    views: &[ViewFacts],
    pop_asns: &[&[Asn]],
    paths: &[Option<&BgpPath>],
    out: &mut Vec<Option<u32>>,
) {
    out.clear();
    out.resize(pop_asns.len(), None);
    let better = |slot: &mut Option<u32>, d: u32| {
        if slot.is_none_or(|x| d < x) {
            *slot = Some(d);
        }
    };
    for (v, path) in views.iter().zip(paths) {
        let Some(path) = path else { continue };
        better(&mut out[v.pop.index()], path.len);
        let n = path.asns.len();
        for (i, a) in path.asns.iter().enumerate() {
            for (q, qa) in pop_asns.iter().enumerate() {
                if qa.contains(&Asn(*a)) {
                    better(&mut out[q], ((n - i - 1) as u32).min(path.len));
                }
            }
        }
    }
}

/// POPs that have a view but no route to the client, while some other
/// view has one: BGP says they cannot reach it.
pub(crate) fn unreachable(views: &[ViewFacts], paths: &[Option<&BgpPath>], pop: PopIdx) -> bool {
    paths.iter().any(|p| p.is_some())
        && views.iter().zip(paths).any(|(v, p)| v.pop == pop && p.is_none())
        && !views.iter().zip(paths).any(|(v, p)| v.pop == pop && p.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn views_compile_to_longest_match_partitions() {
        let mut b = BgpDataBuilder::new();
        let short = b.path_id([65001, 65010], 2);
        let long = b.path_id([65002, 65003, 65010], 3);
        assert_eq!(b.path_id([65001, 65010], 2), short, "paths are interned");
        b.add_view(
            "x",
            PopIdx(0),
            vec![
                (p("10.0.0.0/8"), long),
                (p("10.1.0.0/16"), short),
                (p("2001:db8::/32"), short),
            ],
        );
        let d = b.build();
        assert_eq!(d.path_at(0, &p("10.1.2.3/32")).unwrap().len, 2);
        assert_eq!(d.path_at(0, &p("10.2.0.0/24")).unwrap().len, 3);
        assert!(d.path_at(0, &p("11.0.0.0/24")).is_none());
        assert_eq!(d.path_at(0, &p("2001:db8::1/128")).unwrap().origin(), Some(65010));
        assert_eq!(d.views[0].routes, 3);
    }

    #[test]
    fn super_sparrow_distances() {
        // The paper's figure 2: POP X (AS 64700) sees the client's prefix
        // through POP Y (AS 64701); Y is closer.
        let mut b = BgpDataBuilder::new();
        let via_y = b.path_id([64701, 64702], 2);
        b.add_view("x", PopIdx(0), vec![(p("192.168.0.0/16"), via_y)]);
        let d = b.build();
        let asns: [&[Asn]; 2] = [&[Asn(64700)], &[Asn(64701)]];
        let path = d.path_at(0, &p("192.168.1.0/24"));
        let mut out = Vec::new();
        hop_distances(&d.views, &asns, &[path], &mut out);
        assert_eq!(out, vec![Some(2), Some(1)]);
        // Two POP ASNs in one path: the one nearest the origin is closest.
        let asns: [&[Asn]; 3] = [&[Asn(64700)], &[Asn(64701)], &[Asn(64703)]];
        let path = BgpPath {
            asns: vec![64701, 64703, 64702].into(),
            len: 3,
        };
        hop_distances(&d.views, &asns, &[Some(&path)], &mut out);
        assert_eq!(out, vec![Some(3), Some(2), Some(1)]);
        assert!(!unreachable(&d.views, &[Some(&path)], PopIdx(0)));
        assert!(
            !unreachable(&d.views, &[None], PopIdx(0)),
            "nobody has a route: no veto"
        );
    }
}
