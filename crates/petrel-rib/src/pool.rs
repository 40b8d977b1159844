//! Interned attribute sets, shared by every view.
//!
//! A full feed carries a few hundred thousand distinct attribute sets (real
//! ones, with communities, more than synthetic ones), so the bytes per set
//! count as much as the bytes per route. A set is kept as [`StoredAttrs`]:
//! the fixed-size attributes inline and the AS path, communities and large
//! communities in one allocation, about 110 bytes for a typical set against
//! 250 for an [`Attributes`] with its three allocations.

use petrel_bgp_wire::{AsPathSegment, Attributes, Origin, UnknownAttr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An interned attribute set.
pub type AttrId = u32;

/// The hash the pool files an attribute set under. A session task
/// computes it while the set it just parsed is still in its cache, so that
/// the RIB thread's lookup compares stored hashes and dereferences a set
/// only on a match.
pub fn attr_hash(a: &Attributes) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(a)
}

const HAS_NEXT_HOP: u8 = 1;
const HAS_MED: u8 = 2;
const HAS_LOCAL_PREF: u8 = 4;
const HAS_AGGREGATOR: u8 = 8;
const MP_V4: u8 = 16;
const MP_V6: u8 = 32;
const ATOMIC_AGGREGATE: u8 = 64;
/// A segment header word: the flag for AS_SET, then the ASN count.
const SET: u32 = 1 << 31;
const NO_ORIGIN: u8 = 3;

/// Words of a set up to this many stay inline: a path of four ASNs
/// without communities, most sets of a feed that carries none.
const INLINE: usize = 5;

/// A set's words: inline when few (a probe then reads no second cache
/// line), else boxed.
#[derive(Debug)]
enum Words {
    Inline(u8, [u32; INLINE]),
    Heap(Box<[u32]>),
}

impl Words {
    fn new(len: usize, words: impl Iterator<Item = u32>) -> Words {
        if len <= INLINE {
            let mut a = [0; INLINE];
            let mut n = 0;
            for (slot, w) in a.iter_mut().zip(words) {
                *slot = w;
                n += 1;
            }
            Words::Inline(n as u8, a)
        } else {
            let mut v = Vec::with_capacity(len);
            v.extend(words);
            Words::Heap(v.into_boxed_slice())
        }
    }

    fn heap_len(&self) -> usize {
        match self {
            Words::Inline(..) => 0,
            Words::Heap(b) => b.len(),
        }
    }
}

impl std::ops::Deref for Words {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match self {
            Words::Inline(n, a) => &a[..*n as usize],
            Words::Heap(b) => b,
        }
    }
}

/// An attribute set as the pool keeps it. Equal to the [`Attributes`] it
/// was made from in everything ([`StoredAttrs::matches`],
/// [`StoredAttrs::to_attributes`]).
#[derive(Debug)]
pub struct StoredAttrs {
    /// The AS path as segments (a header word, then its ASNs), then the
    /// communities, then the large communities (three words each).
    words: Words,
    path_words: u32,
    communities: u32,
    med: u32,
    local_pref: u32,
    next_hop: [u8; 4],
    aggregator: (u32, [u8; 4]),
    mp_next_hop: [u8; 16],
    present: u8,
    origin: u8,
    /// Attributes petrel does not interpret; rare, so kept out of line
    /// behind a thin pointer (8 bytes per set, where a boxed slice takes 16).
    #[allow(clippy::box_collection)]
    unknown: Option<Box<Vec<UnknownAttr>>>,
}

fn origin_code(o: Option<Origin>) -> u8 {
    o.map_or(NO_ORIGIN, |o| o as u8)
}

fn mp_bits(h: Option<IpAddr>) -> (u8, [u8; 16]) {
    match h {
        None => (0, [0; 16]),
        Some(IpAddr::V4(a)) => {
            let mut b = [0; 16];
            b[..4].copy_from_slice(&a.octets());
            (MP_V4, b)
        }
        Some(IpAddr::V6(a)) => (MP_V6, a.octets()),
    }
}

impl StoredAttrs {
    /// What a free slot holds: no heap.
    fn empty() -> StoredAttrs {
        StoredAttrs {
            words: Words::Inline(0, [0; INLINE]),
            path_words: 0,
            communities: 0,
            med: 0,
            local_pref: 0,
            next_hop: [0; 4],
            aggregator: (0, [0; 4]),
            mp_next_hop: [0; 16],
            present: 0,
            origin: NO_ORIGIN,
            unknown: None,
        }
    }

    pub fn new(a: &Attributes) -> StoredAttrs {
        let path_words: usize = a.as_path.iter().map(|s| 1 + s.asns().len()).sum();
        let total = path_words + a.communities.len() + 3 * a.large_communities.len();
        let words = a
            .as_path
            .iter()
            .flat_map(|s| {
                let set = if matches!(s, AsPathSegment::Set(_)) { SET } else { 0 };
                std::iter::once(set | s.asns().len() as u32).chain(s.asns().iter().copied())
            })
            .chain(a.communities.iter().copied())
            .chain(a.large_communities.iter().flatten().copied());
        let words = Words::new(total, words);
        let (mp, mp_next_hop) = mp_bits(a.mp_next_hop);
        let present = mp
            | if a.next_hop.is_some() { HAS_NEXT_HOP } else { 0 }
            | if a.med.is_some() { HAS_MED } else { 0 }
            | if a.local_pref.is_some() { HAS_LOCAL_PREF } else { 0 }
            | if a.aggregator.is_some() { HAS_AGGREGATOR } else { 0 }
            | if a.atomic_aggregate { ATOMIC_AGGREGATE } else { 0 };
        StoredAttrs {
            words,
            path_words: path_words as u32,
            communities: a.communities.len() as u32,
            med: a.med.unwrap_or(0),
            local_pref: a.local_pref.unwrap_or(0),
            next_hop: a.next_hop.map_or([0; 4], |h| h.octets()),
            aggregator: a.aggregator.map_or((0, [0; 4]), |(asn, id)| (asn, id.octets())),
            mp_next_hop,
            present,
            origin: origin_code(a.origin),
            unknown: (!a.unknown.is_empty()).then(|| Box::new(a.unknown.clone())),
        }
    }

    /// Whether this is the set `a` (what interning asks).
    pub fn matches(&self, a: &Attributes) -> bool {
        let (mp, mp_next_hop) = mp_bits(a.mp_next_hop);
        self.origin == origin_code(a.origin)
            && self.present & (MP_V4 | MP_V6) == mp
            && self.mp_next_hop == mp_next_hop
            && self.next_hop() == a.next_hop
            && self.med() == a.med
            && self.local_pref() == a.local_pref
            && self.aggregator() == a.aggregator
            && self.atomic_aggregate() == a.atomic_aggregate
            && self.communities() == a.communities.as_slice()
            && self.large_communities().eq(a.large_communities.iter().copied())
            && self
                .segments()
                .eq(a.as_path.iter().map(|s| (matches!(s, AsPathSegment::Set(_)), s.asns())))
            && self.unknown.as_deref().map_or(&[][..], |u| u.as_slice()) == a.unknown.as_slice()
    }

    /// The set as the codec's type (for display; allocates).
    pub fn to_attributes(&self) -> Attributes {
        Attributes {
            origin: self.origin(),
            as_path: self
                .segments()
                .map(|(set, asns)| {
                    if set {
                        AsPathSegment::Set(asns.to_vec())
                    } else {
                        AsPathSegment::Sequence(asns.to_vec())
                    }
                })
                .collect(),
            next_hop: self.next_hop(),
            med: self.med(),
            local_pref: self.local_pref(),
            atomic_aggregate: self.atomic_aggregate(),
            aggregator: self.aggregator(),
            communities: self.communities().to_vec(),
            large_communities: self.large_communities().collect(),
            mp_next_hop: self.mp_next_hop(),
            unknown: self.unknown.as_deref().cloned().unwrap_or_default(),
        }
    }

    fn flag(&self, f: u8) -> bool {
        self.present & f != 0
    }

    pub fn origin(&self) -> Option<Origin> {
        match self.origin {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }

    pub fn med(&self) -> Option<u32> {
        self.flag(HAS_MED).then_some(self.med)
    }

    pub fn local_pref(&self) -> Option<u32> {
        self.flag(HAS_LOCAL_PREF).then_some(self.local_pref)
    }

    pub fn next_hop(&self) -> Option<Ipv4Addr> {
        self.flag(HAS_NEXT_HOP).then(|| Ipv4Addr::from(self.next_hop))
    }

    pub fn mp_next_hop(&self) -> Option<IpAddr> {
        if self.flag(MP_V6) {
            Some(IpAddr::V6(Ipv6Addr::from(self.mp_next_hop)))
        } else if self.flag(MP_V4) {
            let b = self.mp_next_hop;
            Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        } else {
            None
        }
    }

    pub fn aggregator(&self) -> Option<(u32, Ipv4Addr)> {
        self.flag(HAS_AGGREGATOR)
            .then(|| (self.aggregator.0, Ipv4Addr::from(self.aggregator.1)))
    }

    pub fn atomic_aggregate(&self) -> bool {
        self.flag(ATOMIC_AGGREGATE)
    }

    /// AS path segments: (is an AS_SET, its ASNs).
    pub fn segments(&self) -> impl Iterator<Item = (bool, &[u32])> + '_ {
        let mut rest = &self.words[..self.path_words as usize];
        std::iter::from_fn(move || {
            let (&h, tail) = rest.split_first()?;
            let n = ((h & !SET) as usize).min(tail.len());
            let (asns, after) = tail.split_at(n);
            rest = after;
            Some((h & SET != 0, asns))
        })
    }

    /// All ASNs of the path in order (sets flattened).
    pub fn asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments().flat_map(|(_, a)| a.iter().copied())
    }

    /// RFC 4271 §9.1.2.2: a set counts as one, a sequence as its length.
    pub fn as_path_len(&self) -> usize {
        self.segments().map(|(set, a)| if set { 1 } else { a.len() }).sum()
    }

    /// The AS that originated the route: the last AS of the last sequence.
    pub fn origin_as(&self) -> Option<u32> {
        match self.segments().last()? {
            (false, a) => a.last().copied(),
            (true, _) => None,
        }
    }

    pub fn communities(&self) -> &[u32] {
        let at = self.path_words as usize;
        &self.words[at..at + self.communities as usize]
    }

    pub fn large_communities(&self) -> impl Iterator<Item = [u32; 3]> + '_ {
        let at = (self.path_words + self.communities) as usize;
        self.words[at..].chunks_exact(3).map(|c| [c[0], c[1], c[2]])
    }

    /// What the set costs: the struct and its heap.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<StoredAttrs>() + self.heap_bytes()
    }

    /// Heap bytes beyond the struct itself.
    fn heap_bytes(&self) -> usize {
        self.words.heap_len() * 4
            + self.unknown.as_ref().map_or(0, |u| {
                std::mem::size_of::<Vec<UnknownAttr>>() + u.iter().map(|x| 24 + x.value.len()).sum::<usize>()
            })
    }
}

/// A slot of the pool. The set is inline: an interning probe that finds
/// its hash reads the slot and the set's words, two cache misses, where a
/// boxed set took a third.
struct PoolSet {
    hash: u64,
    /// 0: the slot is free (and `attrs` an empty placeholder).
    refs: u32,
    attrs: StoredAttrs,
}

/// Interned attribute sets with reference counts: a route holds one
/// reference, and a set no route uses is freed at once.
#[derive(Default)]
pub struct AttrPool {
    sets: Vec<PoolSet>,
    /// Ids filed under their sets' hashes. Four bytes an entry keep the
    /// table in a core's cache at a full feed's few hundred thousand sets;
    /// a probe compares the hash in the slot before the set itself.
    index: hashbrown::HashTable<AttrId>,
    free: Vec<AttrId>,
}

impl AttrPool {
    /// A reference to the set equal to `a` (stored if new).
    pub fn intern(&mut self, a: &Attributes) -> AttrId {
        self.intern_hashed(a, attr_hash(a))
    }

    /// [`AttrPool::intern`] with `hash` = [`attr_hash`]`(a)`, computed
    /// elsewhere.
    pub fn intern_hashed(&mut self, a: &Attributes, hash: u64) -> AttrId {
        debug_assert_eq!(hash, attr_hash(a), "hash of another set");
        let sets = &mut self.sets;
        let found = self.index.find(hash, |&id| {
            let s = &sets[id as usize];
            s.hash == hash && s.attrs.matches(a)
        });
        if let Some(&id) = found {
            sets[id as usize].refs += 1;
            return id;
        }
        let set = PoolSet {
            hash,
            refs: 1,
            attrs: StoredAttrs::new(a),
        };
        let id = match self.free.pop() {
            Some(id) => {
                sets[id as usize] = set;
                id
            }
            None => {
                sets.push(set);
                (sets.len() - 1) as AttrId
            }
        };
        self.index.insert_unique(hash, id, |&i| sets[i as usize].hash);
        id
    }

    pub fn retain(&mut self, id: AttrId) {
        if let Some(s) = self.sets.get_mut(id as usize) {
            if s.refs > 0 {
                s.refs += 1;
            }
        }
    }

    pub fn release(&mut self, id: AttrId) {
        let Some(s) = self.sets.get_mut(id as usize) else {
            return;
        };
        if s.refs == 0 {
            return;
        }
        s.refs -= 1;
        if s.refs > 0 {
            return;
        }
        s.attrs = StoredAttrs::empty();
        if let Ok(e) = self.index.find_entry(s.hash, |&i| i == id) {
            e.remove();
        }
        self.free.push(id);
    }

    pub fn get(&self, id: AttrId) -> &StoredAttrs {
        match self.sets.get(id as usize) {
            Some(s) if s.refs > 0 => &s.attrs,
            _ => panic!("attribute set {id} used after release"),
        }
    }

    /// Distinct sets in use.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes the pool holds (an estimate: allocator overhead aside).
    pub fn heap_bytes(&self) -> usize {
        let sets: usize = self
            .sets
            .iter()
            .filter(|s| s.refs > 0)
            .map(|s| s.attrs.heap_bytes())
            .sum();
        sets + self.sets.capacity() * std::mem::size_of::<PoolSet>()
            + self.index.capacity() * (std::mem::size_of::<AttrId>() + 1)
            + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_attrs() -> impl Strategy<Value = Attributes> {
        let seg = (any::<bool>(), proptest::collection::vec(any::<u32>(), 0..6)).prop_map(|(set, v)| {
            if set {
                AsPathSegment::Set(v)
            } else {
                AsPathSegment::Sequence(v)
            }
        });
        let mp = prop_oneof![
            Just(None),
            any::<[u8; 4]>().prop_map(|b| Some(IpAddr::from(b))),
            any::<[u8; 16]>().prop_map(|b| Some(IpAddr::from(b))),
        ];
        let unknown = proptest::collection::vec(
            (any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..4))
                .prop_map(|(flags, code, value)| UnknownAttr { flags, code, value }),
            0..2,
        );
        (
            (
                proptest::option::of(prop_oneof![
                    Just(Origin::Igp),
                    Just(Origin::Egp),
                    Just(Origin::Incomplete)
                ]),
                proptest::collection::vec(seg, 0..3),
                proptest::option::of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                any::<bool>(),
            ),
            (
                proptest::option::of((any::<u32>(), any::<[u8; 4]>().prop_map(Ipv4Addr::from))),
                proptest::collection::vec(any::<u32>(), 0..4),
                proptest::collection::vec(any::<[u32; 3]>(), 0..3),
                mp,
                unknown,
            ),
        )
            .prop_map(
                |(
                    (origin, as_path, next_hop, med, local_pref, atomic_aggregate),
                    (aggregator, communities, large_communities, mp_next_hop, unknown),
                )| Attributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate,
                    aggregator,
                    communities,
                    large_communities,
                    mp_next_hop,
                    unknown,
                },
            )
    }

    proptest! {
        /// The stored form gives back the set it was made from, matches
        /// it, and matches another set only when the two are equal.
        #[test]
        fn stored_form_round_trips(a in arb_attrs(), b in arb_attrs()) {
            let s = StoredAttrs::new(&a);
            prop_assert_eq!(s.to_attributes(), a.clone());
            prop_assert!(s.matches(&a));
            prop_assert_eq!(s.matches(&b), a == b);
            prop_assert_eq!(s.as_path_len(), a.as_path_len());
            prop_assert_eq!(s.origin_as(), a.origin_as());
            prop_assert!(s.asns().eq(a.asns()));
        }

        /// Interning and releasing in any order behaves as a map from set
        /// to reference count: one id per distinct live set, its content
        /// unchanged by other sets coming and going (freed slots reused).
        #[test]
        fn pool_matches_a_counting_model(
            sets in proptest::collection::vec(arb_attrs(), 1..6),
            ops in proptest::collection::vec((any::<bool>(), 0usize..6), 0..80),
        ) {
            let mut p = AttrPool::default();
            let mut model: Vec<(Attributes, AttrId, u32)> = Vec::new();
            for (intern, k) in ops {
                let a = &sets[k % sets.len()];
                let live = model.iter().position(|(m, _, n)| m == a && *n > 0);
                if intern {
                    let id = p.intern(a);
                    match live {
                        Some(i) => {
                            prop_assert_eq!(model[i].1, id, "a live set keeps its id");
                            model[i].2 += 1;
                        }
                        None => model.push((a.clone(), id, 1)),
                    }
                } else if let Some(i) = live {
                    p.release(model[i].1);
                    model[i].2 -= 1;
                }
                model.retain(|m| m.2 > 0);
                prop_assert_eq!(p.len(), model.len());
                for (m, id, _) in &model {
                    prop_assert_eq!(&p.get(*id).to_attributes(), m);
                }
            }
        }
    }

    #[test]
    fn sets_are_shared_and_freed() {
        let a = Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(vec![64500, 64501])],
            communities: vec![0xffff_ff01],
            ..Default::default()
        };
        let mut p = AttrPool::default();
        let x = p.intern(&a);
        let y = p.intern(&a.clone());
        assert_eq!(x, y);
        assert_eq!(p.len(), 1);
        assert_eq!(p.get(x).communities(), &[0xffff_ff01]);
        p.release(x);
        assert_eq!(p.len(), 1, "one reference left");
        p.release(y);
        assert!(p.is_empty());
        let b = Attributes { med: Some(5), ..a };
        let z = p.intern(&b);
        assert_eq!(z, x, "the freed id is reused");
        assert_eq!(p.get(z).med(), Some(5));
    }
}
