//! Routing views: the routing table as one POP sees it.
//!
//! A [`View`] holds every route its peers sent (their Adj-RIBs-In, merged by
//! prefix), picks the best per prefix with the RFC 4271 §9.1.2.2 decision
//! process, and answers longest-prefix lookups. Attribute sets are interned
//! in an [`AttrPool`] shared by all views: a full table carries a million
//! routes but only some hundred thousand distinct attribute sets.
//!
//! Pure: no IO, no clock. The BGP shell feeds parsed UPDATEs in.

use petrel_bgp_wire::{Attributes, ParsedUpdate};
use petrel_types::Prefix;
use rustc_hash::{FxHashMap, FxHashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Interned attribute sets; equal sets share one allocation.
#[derive(Default)]
pub struct AttrPool {
    set: FxHashSet<Arc<Attributes>>,
}

impl AttrPool {
    pub fn intern(&mut self, a: &Attributes) -> Arc<Attributes> {
        if let Some(x) = self.set.get(a) {
            return x.clone();
        }
        let x = Arc::new(a.clone());
        self.set.insert(x.clone());
        x
    }

    /// Drop sets no route uses any more.
    pub fn collect(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub name: String,
    pub asn: u32,
    pub bgp_id: u32,
    pub address: IpAddr,
    pub ibgp: bool,
}

pub type PeerId = u16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub peer: PeerId,
    pub path_id: Option<u32>,
    pub attrs: Arc<Attributes>,
}

#[derive(Default)]
pub struct View {
    pub name: String,
    peers: Vec<Option<PeerInfo>>,
    rib: FxHashMap<Prefix, Vec<Route>>,
    counts: Vec<usize>,
}

impl View {
    pub fn new(name: impl Into<String>) -> View {
        View {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn add_peer(&mut self, info: PeerInfo) -> PeerId {
        self.peers.push(Some(info));
        self.counts.push(0);
        (self.peers.len() - 1) as PeerId
    }

    /// What the session learned of the peer (its identifier, after OPEN).
    pub fn set_peer(&mut self, id: PeerId, info: PeerInfo) {
        if let Some(p) = self.peers.get_mut(id as usize) {
            *p = Some(info);
        }
    }

    /// The peer leaves the view with its routes; its id is not reused.
    pub fn remove_peer(&mut self, id: PeerId) -> usize {
        let gone = self.drop_peer_routes(id);
        if let Some(p) = self.peers.get_mut(id as usize) {
            *p = None;
        }
        gone
    }

    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(id as usize).and_then(|p| p.as_ref())
    }

    /// Routes (prefix, path) the peer has in this view.
    pub fn prefix_count(&self, peer: PeerId) -> usize {
        self.counts.get(peer as usize).copied().unwrap_or(0)
    }

    /// Distinct prefixes in the view.
    pub fn len(&self) -> usize {
        self.rib.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rib.is_empty()
    }

    /// Add or replace one route (MRT RIB entries come one prefix at a time).
    pub fn announce(&mut self, peer: PeerId, prefix: Prefix, path_id: Option<u32>, attrs: Arc<Attributes>) {
        let routes = self.rib.entry(prefix).or_default();
        match routes.iter_mut().find(|r| r.peer == peer && r.path_id == path_id) {
            Some(r) => r.attrs = attrs,
            None => {
                routes.push(Route { peer, path_id, attrs });
                self.counts[peer as usize] += 1;
            }
        }
    }

    /// Apply one UPDATE from a peer; returns how many routes changed.
    pub fn apply(&mut self, peer: PeerId, u: &ParsedUpdate, pool: &mut AttrPool) -> usize {
        let mut changed = 0;
        for n in &u.withdrawn {
            if let Some(routes) = self.rib.get_mut(&n.prefix) {
                let before = routes.len();
                routes.retain(|r| !(r.peer == peer && r.path_id == n.path_id));
                let gone = before - routes.len();
                if routes.is_empty() {
                    self.rib.remove(&n.prefix);
                }
                self.counts[peer as usize] -= gone;
                changed += gone;
            }
        }
        if !u.announced.is_empty() {
            let attrs = pool.intern(&u.attrs);
            for n in &u.announced {
                let routes = self.rib.entry(n.prefix).or_default();
                match routes.iter_mut().find(|r| r.peer == peer && r.path_id == n.path_id) {
                    Some(r) => r.attrs = attrs.clone(),
                    None => {
                        routes.push(Route {
                            peer,
                            path_id: n.path_id,
                            attrs: attrs.clone(),
                        });
                        self.counts[peer as usize] += 1;
                    }
                }
                changed += 1;
            }
        }
        changed
    }

    /// The peer's session went down: its routes leave the view.
    pub fn drop_peer_routes(&mut self, peer: PeerId) -> usize {
        let mut gone = 0;
        self.rib.retain(|_, routes| {
            let before = routes.len();
            routes.retain(|r| r.peer != peer);
            gone += before - routes.len();
            !routes.is_empty()
        });
        if let Some(c) = self.counts.get_mut(peer as usize) {
            *c = 0;
        }
        gone
    }

    pub fn routes(&self, prefix: &Prefix) -> &[Route] {
        self.rib.get(prefix).map_or(&[], |v| v.as_slice())
    }

    /// The preferred route for a prefix (RFC 4271 §9.1.2.2).
    pub fn best(&self, prefix: &Prefix) -> Option<&Route> {
        best_of(self.routes(prefix), &self.peers)
    }

    /// Longest-prefix match for a client prefix: the most specific prefix in
    /// the view that covers it, with its best route. (A slow path for
    /// explanations; mapping compiles tables from `iter_best`.)
    pub fn longest_match(&self, client: &Prefix) -> Option<(Prefix, &Route)> {
        (0..=client.len()).rev().find_map(|l| {
            let p = client.truncate(l);
            self.best(&p).map(|r| (p, r))
        })
    }

    /// Every prefix with its best route.
    pub fn iter_best(&self) -> impl Iterator<Item = (&Prefix, &Route)> + '_ {
        self.rib
            .iter()
            .filter_map(|(p, rs)| best_of(rs, &self.peers).map(|r| (p, r)))
    }
}

fn local_pref(r: &Route) -> u32 {
    r.attrs.local_pref.unwrap_or(100)
}

fn neighbor_as(r: &Route) -> Option<u32> {
    r.attrs.asns().next()
}

/// The RFC 4271 §9.1.2.2 elimination: LOCAL_PREF, AS_PATH length, ORIGIN,
/// MED among routes from the same neighbor AS, eBGP over iBGP, then the
/// lowest BGP identifier, peer address and path identifier as tie-breakers
/// (IGP cost does not apply: petrel does not forward).
fn best_of<'a>(routes: &'a [Route], peers: &[Option<PeerInfo>]) -> Option<&'a Route> {
    if routes.len() <= 1 {
        return routes.first();
    }
    let peer = |r: &Route| peers.get(r.peer as usize).and_then(|p| p.as_ref());
    let mut c: Vec<&Route> = routes.iter().collect();
    let keep_min = |c: &mut Vec<&'a Route>, key: &dyn Fn(&Route) -> u64| {
        let m = c.iter().map(|r| key(r)).min().unwrap_or(0);
        c.retain(|r| key(r) == m);
    };
    keep_min(&mut c, &|r| u32::MAX as u64 - local_pref(r) as u64);
    keep_min(&mut c, &|r| r.attrs.as_path_len() as u64);
    keep_min(&mut c, &|r| r.attrs.origin.map_or(2, |o| o as u64));
    // MED: only between routes from the same neighbor AS.
    let snapshot = c.clone();
    c.retain(|r| {
        let med = r.attrs.med.unwrap_or(0);
        !snapshot
            .iter()
            .any(|o| neighbor_as(o) == neighbor_as(r) && o.attrs.med.unwrap_or(0) < med)
    });
    if c.iter().any(|r| peer(r).is_some_and(|p| !p.ibgp)) {
        c.retain(|r| peer(r).is_some_and(|p| !p.ibgp));
    }
    c.into_iter().min_by_key(|r| {
        let p = peer(r);
        (
            p.map_or(u32::MAX, |p| p.bgp_id),
            p.map(|p| p.address),
            r.path_id.unwrap_or(0),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_bgp_wire::{AsPathSegment, Nlri, Origin};
    use std::net::Ipv4Addr;

    fn attrs(path: &[u32], med: Option<u32>, lp: Option<u32>) -> Attributes {
        Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(path.to_vec())],
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med,
            local_pref: lp,
            ..Default::default()
        }
    }

    fn upd(prefixes: &[&str], a: Attributes) -> ParsedUpdate {
        ParsedUpdate {
            announced: prefixes
                .iter()
                .map(|p| Nlri {
                    path_id: None,
                    prefix: p.parse().unwrap(),
                })
                .collect(),
            attrs: a,
            ..Default::default()
        }
    }

    fn peer(name: &str, asn: u32, id: u32, ibgp: bool) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            asn,
            bgp_id: id,
            address: IpAddr::V4(Ipv4Addr::from(id)),
            ibgp,
        }
    }

    #[test]
    fn best_path_steps() {
        let mut pool = AttrPool::default();
        let mut v = View::new("ams");
        let a = v.add_peer(peer("a", 3356, 10, false));
        let b = v.add_peer(peer("b", 1299, 20, false));
        let c = v.add_peer(peer("c", 64512, 5, true));
        let p = "198.51.100.0/24";
        v.apply(a, &upd(&[p], attrs(&[3356, 174, 64500], None, None)), &mut pool);
        v.apply(b, &upd(&[p], attrs(&[1299, 64500], None, None)), &mut pool);
        let pfx: Prefix = p.parse().unwrap();
        assert_eq!(v.best(&pfx).unwrap().peer, b, "shorter AS path");
        // LOCAL_PREF beats path length.
        v.apply(
            c,
            &upd(&[p], attrs(&[3356, 174, 2914, 64500], None, Some(200))),
            &mut pool,
        );
        assert_eq!(v.best(&pfx).unwrap().peer, c);
        // Withdrawn: back to b.
        let w = ParsedUpdate {
            withdrawn: vec![Nlri {
                path_id: None,
                prefix: pfx,
            }],
            ..Default::default()
        };
        assert_eq!(v.apply(c, &w, &mut pool), 1);
        assert_eq!(v.best(&pfx).unwrap().peer, b);
        // Peer down: its routes go.
        v.drop_peer_routes(b);
        assert_eq!(v.best(&pfx).unwrap().peer, a);
        assert_eq!(v.prefix_count(b), 0);
    }

    #[test]
    fn med_only_within_a_neighbor_as_and_ebgp_over_ibgp() {
        let mut pool = AttrPool::default();
        let mut v = View::new("v");
        let a1 = v.add_peer(peer("a1", 3356, 30, false));
        let a2 = v.add_peer(peer("a2", 3356, 40, false));
        let i = v.add_peer(peer("i", 64512, 1, true));
        let p: Prefix = "203.0.113.0/24".parse().unwrap();
        v.apply(
            a1,
            &upd(&["203.0.113.0/24"], attrs(&[3356, 64500], Some(50), None)),
            &mut pool,
        );
        v.apply(
            a2,
            &upd(&["203.0.113.0/24"], attrs(&[3356, 64500], Some(10), None)),
            &mut pool,
        );
        assert_eq!(v.best(&p).unwrap().peer, a2, "lower MED from the same neighbor AS");
        v.apply(
            i,
            &upd(&["203.0.113.0/24"], attrs(&[3356, 64500], Some(0), None)),
            &mut pool,
        );
        assert_eq!(v.best(&p).unwrap().peer, i, "its MED 0 beats both (same neighbor AS)");
        let mut v2 = View::new("v2");
        let e = v2.add_peer(peer("e", 3356, 50, false));
        let i2 = v2.add_peer(peer("i", 64512, 1, true));
        v2.apply(
            e,
            &upd(&["203.0.113.0/24"], attrs(&[3356, 64500], None, None)),
            &mut pool,
        );
        v2.apply(
            i2,
            &upd(&["203.0.113.0/24"], attrs(&[1299, 64500], None, None)),
            &mut pool,
        );
        assert_eq!(v2.best(&p).unwrap().peer, e, "eBGP over iBGP, then identifiers");
    }

    #[test]
    fn interning_and_longest_match() {
        let mut pool = AttrPool::default();
        let mut v = View::new("v");
        let a = v.add_peer(peer("a", 3356, 10, false));
        v.apply(
            a,
            &upd(
                &["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"],
                attrs(&[3356, 1], None, None),
            ),
            &mut pool,
        );
        v.apply(a, &upd(&["192.0.2.0/24"], attrs(&[3356, 1], None, None)), &mut pool);
        assert_eq!(pool.len(), 1, "equal attribute sets are stored once");
        let (m, r) = v.longest_match(&"10.1.3.0/24".parse().unwrap()).unwrap();
        assert_eq!(m.to_string(), "10.1.0.0/16");
        assert_eq!(r.attrs.origin_as(), Some(1));
        assert!(v.longest_match(&"11.0.0.0/24".parse().unwrap()).is_none());
        assert_eq!(v.prefix_count(a), 4);
        assert_eq!(v.iter_best().count(), 4);
        v.drop_peer_routes(a);
        pool.collect();
        assert!(pool.is_empty());
    }
}
