//! Routing views: the routing table as one POP sees it.
//!
//! A [`View`] holds every route its peers sent (one Adj-RIB-In per peer),
//! picks the best per prefix with the RFC 4271 §9.1.2.2 decision process,
//! and answers longest-prefix lookups. Attribute sets are interned in an
//! [`AttrPool`] shared by all views: a full table carries a million routes
//! but only some hundred thousand distinct attribute sets.
//!
//! Memory is the constraint that shapes this (a view per POP, each with
//! several full feeds): a route is 12 bytes (IPv4) or 24 bytes (IPv6) in a
//! per-peer sorted run (4 more for a peer that sends ADD-PATH identifiers), plus a small unsorted delta for new prefixes that
//! is merged in when it grows. The best route per prefix is not stored: a
//! batch computes it by merging the peers' sorted runs ([`View::for_each_best`]),
//! which yields prefixes in order, ready for the mapping engine.
//!
//! Pure: no IO, no clock. The BGP shell feeds parsed UPDATEs in.

#![forbid(unsafe_code)]

use petrel_bgp_wire::ParsedUpdate;
use petrel_types::{Family, Prefix};
use rustc_hash::FxHashMap;
use std::net::IpAddr;

pub mod owner;
mod pool;

pub use pool::{attr_hash, AttrId, AttrPool, StoredAttrs};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub name: String,
    pub asn: u32,
    pub bgp_id: u32,
    pub address: IpAddr,
    pub ibgp: bool,
}

pub type PeerId = u16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub peer: PeerId,
    pub path_id: Option<u32>,
    pub attrs: AttrId,
}

/// A prefix of one family as a sortable key: `(bits, len)` order. The
/// address stays apart from the length inside [`Entry`] so that the length
/// and flags share one word instead of each padding its own.
trait Key: Copy + Ord + std::hash::Hash {
    type Bits: Copy + Ord + std::hash::Hash;
    /// An entry's (prefix, has path id, path id) order packed into as few
    /// words as compare at once: the run's searches and merges compare
    /// these rather than tuples of small fields.
    type Order: Copy + Ord;
    fn split(p: &Prefix) -> (Self::Bits, u8);
    fn join(bits: Self::Bits, len: u8) -> Prefix;
    fn order(bits: Self::Bits, len: u8, has_path_id: bool, path_id: u32) -> Self::Order;
    /// 64 well-mixed bits of an order key, for the load filter.
    fn mix(o: Self::Order) -> u64;
}

/// Multiply-fold: the high bits of the product depend on every input bit.
fn fold(a: u64, b: u64) -> u64 {
    let p = (a ^ 0x9e37_79b9_7f4a_7c15) as u128 * (b ^ 0xc2b2_ae3d_27d4_eb4f) as u128;
    (p >> 64) as u64 ^ p as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct K4;
/// IPv6 addresses as four words keep 4-byte alignment (a u128 forces 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct K6;

impl Key for K4 {
    type Bits = u32;
    type Order = u128;
    fn split(p: &Prefix) -> (u32, u8) {
        (p.bits() as u32, p.len())
    }
    fn join(bits: u32, len: u8) -> Prefix {
        Prefix::from_bits(Family::V4, bits as u128, len)
    }
    fn order(bits: u32, len: u8, has: bool, pid: u32) -> u128 {
        (bits as u128) << 64 | (len as u128) << 40 | (has as u128) << 32 | pid as u128
    }
    fn mix(o: u128) -> u64 {
        fold((o >> 64) as u64, o as u64)
    }
}

impl Key for K6 {
    type Bits = [u32; 4];
    type Order = (u128, u64);
    fn split(p: &Prefix) -> ([u32; 4], u8) {
        let b = p.bits();
        (
            [(b >> 96) as u32, (b >> 64) as u32, (b >> 32) as u32, b as u32],
            p.len(),
        )
    }
    fn join(w: [u32; 4], len: u8) -> Prefix {
        let b = (w[0] as u128) << 96 | (w[1] as u128) << 64 | (w[2] as u128) << 32 | w[3] as u128;
        Prefix::from_bits(Family::V6, b, len)
    }
    fn order(w: [u32; 4], len: u8, has: bool, pid: u32) -> (u128, u64) {
        let b = (w[0] as u128) << 96 | (w[1] as u128) << 64 | (w[2] as u128) << 32 | w[3] as u128;
        (b, (len as u64) << 40 | (has as u64) << 32 | pid as u64)
    }
    fn mix((b, l): (u128, u64)) -> u64 {
        fold(fold((b >> 64) as u64, b as u64), l)
    }
}

/// Path id of routes without one (RFC 7911 ids are opaque; this one is
/// kept apart by the `has_path_id` flag, not by its value).
const NO_PATH: u32 = 0;
const DEAD: AttrId = AttrId::MAX;

/// 10 bytes for IPv4, 22 for IPv6: packed, as a full table is a million
/// of them per peer (unaligned loads cost nothing measurable here; the
/// padding cost 2 MiB per view). Path identifiers (ADD-PATH peers only)
/// live in a parallel array that is empty for everyone else.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed)]
struct Entry<B> {
    bits: B,
    /// `DEAD` for a withdrawn route still in the run (until compaction).
    attrs: AttrId,
    len: u8,
    has_path_id: bool,
}

impl<B: Copy + Ord> Entry<B> {
    fn key(&self) -> (B, u8) {
        (self.bits, self.len)
    }
}

type KeyOf<K> = (<K as Key>::Bits, u8);
type DeltaKey<K> = (KeyOf<K>, u32, bool);

/// Entries per block of the run's sparse index.
const BLOCK: usize = 64;

/// Which order keys the run may hold: a Bloom filter with two probes and
/// four bits per entry (about 15% false positives), kept only while the peer
/// loads a table. Then most routes are new, and the filter turns their
/// search of the run (cache misses at every step) into two bit tests.
#[derive(Default)]
struct LoadFilter {
    bits: Vec<u64>,
}

impl LoadFilter {
    fn probes(&self, h: u64) -> [usize; 2] {
        let mask = self.bits.len() * 64 - 1;
        [(h >> 32) as usize & mask, fold(h, h >> 17) as usize & mask]
    }

    fn build(&mut self, keys: impl ExactSizeIterator<Item = u64>) {
        let words = (keys.len() * 4).div_ceil(64).next_power_of_two();
        self.bits.clear();
        self.bits.resize(words, 0);
        for h in keys {
            for b in self.probes(h) {
                self.bits[b / 64] |= 1 << (b % 64);
            }
        }
    }

    /// False only for keys the run does not hold. Without a filter (not
    /// loading), every key may be there.
    fn may_hold(&self, h: u64) -> bool {
        self.bits.is_empty() || self.probes(h).iter().all(|&b| self.bits[b / 64] & (1 << (b % 64)) != 0)
    }
}

/// One peer's routes of one family: a sorted run and a delta of new ones.
struct Rib<K: Key> {
    run: Vec<Entry<K::Bits>>,
    /// The run's path identifiers, index for index; empty while no route
    /// in the run has one.
    path_ids: Vec<u32>,
    /// The first key of every `BLOCK` entries of the run: a lookup searches
    /// this small array (it stays in cache), then one block, instead of
    /// taking a cache miss at every step of a search over the whole run.
    index: Vec<K::Order>,
    /// New routes by (prefix key, path id, has path id).
    delta: FxHashMap<DeltaKey<K>, AttrId>,
    dead: usize,
    loading: bool,
    filter: LoadFilter,
    /// Paths held per prefix, for prefixes with ADD-PATH routes only (a
    /// peer without ADD-PATH has one route per prefix and no entry here).
    paths: FxHashMap<KeyOf<K>, u32>,
}

/// Most paths one peer may hold for one prefix (RFC 7911). Route servers
/// and reflectors send a few, a few dozen at most; past this a peer is
/// flooding, and further paths for the prefix are ignored (and counted)
/// until some are withdrawn.
pub const MAX_PATHS_PER_PREFIX: u32 = 64;

/// What [`Rib::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inserted {
    New,
    Replaced(AttrId),
    /// A new path past `MAX_PATHS_PER_PREFIX`: not stored.
    Refused,
}

impl<K: Key> Default for Rib<K> {
    fn default() -> Self {
        Rib {
            run: Vec::new(),
            path_ids: Vec::new(),
            index: Vec::new(),
            delta: FxHashMap::default(),
            dead: 0,
            loading: false,
            filter: LoadFilter::default(),
            paths: FxHashMap::default(),
        }
    }
}

impl<K: Key> Rib<K> {
    fn path_id(&self, i: usize) -> u32 {
        self.path_ids.get(i).copied().unwrap_or(NO_PATH)
    }

    /// The order key of the run's entry `i`.
    fn order(&self, i: usize) -> K::Order {
        let e = &self.run[i];
        K::order(e.bits, e.len, e.has_path_id, self.path_id(i))
    }

    /// The route's position in the run, if it is there.
    fn find(&self, key: KeyOf<K>, path_id: u32, has: bool) -> Option<usize> {
        let want = K::order(key.0, key.1, has, path_id);
        if !self.filter.may_hold(K::mix(want)) {
            return None;
        }
        let block = self.index.partition_point(|k| *k <= want).checked_sub(1)?;
        let (mut lo, mut hi) = (block * BLOCK, ((block + 1) * BLOCK).min(self.run.len()));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.order(mid).cmp(&want) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    fn reindex(&mut self) {
        self.index.clear();
        let index: Vec<K::Order> = (0..self.run.len()).step_by(BLOCK).map(|i| self.order(i)).collect();
        self.index = index;
        if self.loading {
            self.build_filter();
        }
    }

    fn build_filter(&mut self) {
        let keys: Vec<u64> = (0..self.run.len()).map(|i| K::mix(self.order(i))).collect();
        self.filter.build(keys.into_iter());
    }

    /// While loading, searches of the run go through a filter (rebuilt at
    /// each merge); after, the filter's memory is returned.
    fn set_loading(&mut self, on: bool) {
        self.loading = on;
        if on {
            self.build_filter();
        } else {
            self.filter = LoadFilter::default();
        }
    }

    /// Store a route; a replaced set is returned for the caller to release.
    fn insert(&mut self, key: KeyOf<K>, path_id: Option<u32>, attrs: AttrId) -> Inserted {
        let (pid, has) = (path_id.unwrap_or(NO_PATH), path_id.is_some());
        if let Some(i) = self.find(key, pid, has) {
            let e = &mut self.run[i];
            let old = e.attrs;
            if old != DEAD {
                e.attrs = attrs;
                return Inserted::Replaced(old);
            }
            if has && !self.add_path(key) {
                return Inserted::Refused;
            }
            self.run[i].attrs = attrs;
            self.dead -= 1;
            return Inserted::New;
        }
        if let Some(slot) = self.delta.get_mut(&(key, pid, has)) {
            return Inserted::Replaced(std::mem::replace(slot, attrs));
        }
        if has && !self.add_path(key) {
            return Inserted::Refused;
        }
        self.delta.insert((key, pid, has), attrs);
        // A delta of a quarter of the run while a table loads: each merge
        // copies the whole run, and at an eighth a full table was copied
        // about nine times over (the delta's memory is returned after).
        let share = if self.loading { 4 } else { 8 };
        if self.delta.len() > 4096.max(self.run.len() / share) {
            self.merge();
        }
        Inserted::New
    }

    /// Count one more path for `key`, unless it has the most allowed.
    fn add_path(&mut self, key: KeyOf<K>) -> bool {
        let n = self.paths.entry(key).or_insert(0);
        if *n >= MAX_PATHS_PER_PREFIX {
            return false;
        }
        *n += 1;
        true
    }

    fn drop_path(&mut self, key: KeyOf<K>) {
        if let Some(n) = self.paths.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.paths.remove(&key);
            }
        }
    }

    fn remove(&mut self, key: KeyOf<K>, path_id: Option<u32>) -> Option<AttrId> {
        let (pid, has) = (path_id.unwrap_or(NO_PATH), path_id.is_some());
        if let Some(a) = self.delta.remove(&(key, pid, has)) {
            if has {
                self.drop_path(key);
            }
            return Some(a);
        }
        let i = self.find(key, pid, has)?;
        let e = &mut self.run[i];
        if e.attrs == DEAD {
            return None;
        }
        let old = e.attrs;
        e.attrs = DEAD;
        self.dead += 1;
        if has {
            self.drop_path(key);
        }
        if self.dead > 4096.max(self.run.len() / 4) {
            self.merge();
        }
        Some(old)
    }

    /// Fold the delta into the run and drop withdrawn entries: one sorted
    /// merge, so a full table arriving in any order costs O(n log n).
    fn merge(&mut self) {
        if self.delta.is_empty() && self.dead == 0 {
            return;
        }
        let mut add: Vec<(K::Order, Entry<K::Bits>, u32)> = self
            .delta
            .drain()
            .map(|(((bits, len), path_id, has_path_id), attrs)| {
                let e = Entry {
                    bits,
                    attrs,
                    len,
                    has_path_id,
                };
                (K::order(bits, len, has_path_id, path_id), e, path_id)
            })
            .collect();
        if !self.loading {
            self.delta.shrink_to(4096);
        }
        add.sort_unstable_by_key(|a| a.0);
        let with_ids = !self.path_ids.is_empty() || add.iter().any(|a| a.1.has_path_id);
        let n = self.run.len() - self.dead + add.len();
        let mut out = Vec::with_capacity(n);
        let mut out_ids = Vec::with_capacity(if with_ids { n } else { 0 });
        let (mut i, mut j) = (0, 0);
        while i < self.run.len() || j < add.len() {
            let take_old = j >= add.len() || (i < self.run.len() && self.order(i) < add[j].0);
            let (e, pid) = if take_old {
                i += 1;
                (self.run[i - 1], self.path_id(i - 1))
            } else {
                j += 1;
                (add[j - 1].1, add[j - 1].2)
            };
            if e.attrs != DEAD {
                out.push(e);
                if with_ids {
                    out_ids.push(pid);
                }
            }
        }
        if !out.iter().any(|e| e.has_path_id) {
            out_ids = Vec::new();
        }
        out_ids.shrink_to_fit();
        self.run = out;
        self.path_ids = out_ids;
        self.dead = 0;
        self.reindex();
    }

    /// Routes for exactly `key` (any path id).
    fn get(&self, key: KeyOf<K>, out: &mut Vec<(Option<u32>, AttrId)>) {
        let start = self.run.partition_point(|e| e.key() < key);
        for (i, e) in self
            .run
            .iter()
            .enumerate()
            .skip(start)
            .take_while(|(_, e)| e.key() == key)
        {
            if e.attrs != DEAD {
                out.push((e.has_path_id.then_some(self.path_id(i)), e.attrs));
            }
        }
        for (&(k, pid, has), &a) in &self.delta {
            if k == key {
                out.push((has.then_some(pid), a));
            }
        }
    }

    fn release_all(&mut self, pool: &mut AttrPool) -> usize {
        let mut n = 0;
        for e in self.run.drain(..) {
            if e.attrs != DEAD {
                pool.release(e.attrs);
                n += 1;
            }
        }
        for (_, a) in self.delta.drain() {
            pool.release(a);
            n += 1;
        }
        self.dead = 0;
        self.run.shrink_to_fit();
        self.path_ids = Vec::new();
        self.delta.shrink_to_fit();
        self.paths = FxHashMap::default();
        self.reindex();
        n
    }

    fn bytes(&self) -> usize {
        self.run.capacity() * std::mem::size_of::<Entry<K::Bits>>()
            + self.path_ids.capacity() * 4
            + self.index.capacity() * std::mem::size_of::<K::Order>()
            + self.delta.capacity() * (std::mem::size_of::<(KeyOf<K>, u32, bool, AttrId)>() + 1)
            + self.filter.bits.capacity() * 8
            + self.paths.capacity() * (std::mem::size_of::<(KeyOf<K>, u32)>() + 1)
    }
}

struct Peer {
    info: PeerInfo,
    v4: Rib<K4>,
    v6: Rib<K6>,
    count: usize,
    /// Bytes of the attribute sets its routes hold, each route counted
    /// whole (shared sets too): a bound on what the peer can make the pool
    /// keep, however its attributes are spread.
    attr_bytes: usize,
    /// Paths ignored for being past `MAX_PATHS_PER_PREFIX`.
    refused_paths: u64,
}

#[derive(Default)]
pub struct View {
    pub name: String,
    peers: Vec<Option<Peer>>,
}

impl View {
    pub fn new(name: impl Into<String>) -> View {
        View {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn add_peer(&mut self, info: PeerInfo) -> PeerId {
        self.peers.push(Some(Peer {
            info,
            v4: Rib::default(),
            v6: Rib::default(),
            count: 0,
            attr_bytes: 0,
            refused_paths: 0,
        }));
        (self.peers.len() - 1) as PeerId
    }

    /// What the session learned of the peer (its identifier, after OPEN).
    pub fn set_peer(&mut self, id: PeerId, info: PeerInfo) {
        if let Some(Some(p)) = self.peers.get_mut(id as usize) {
            p.info = info;
        }
    }

    /// A peer about to send a whole table (its session just came up): most
    /// of its routes will be new, and a filter spares their searches. End
    /// it when the table is in.
    pub fn set_loading(&mut self, id: PeerId, on: bool) {
        if let Some(Some(p)) = self.peers.get_mut(id as usize) {
            p.v4.set_loading(on);
            p.v6.set_loading(on);
        }
    }

    /// The peer leaves the view with its routes; its id is not reused.
    pub fn remove_peer(&mut self, id: PeerId, pool: &mut AttrPool) -> usize {
        let gone = self.drop_peer_routes(id, pool);
        if let Some(p) = self.peers.get_mut(id as usize) {
            *p = None;
        }
        gone
    }

    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(id as usize).and_then(|p| p.as_ref()).map(|p| &p.info)
    }

    /// Routes (prefix, path) the peer has in this view.
    pub fn prefix_count(&self, peer: PeerId) -> usize {
        self.peers
            .get(peer as usize)
            .and_then(|p| p.as_ref())
            .map_or(0, |p| p.count)
    }

    /// Bytes of attributes the peer's routes hold (see `Peer::attr_bytes`).
    pub fn attr_bytes(&self, peer: PeerId) -> usize {
        self.peers
            .get(peer as usize)
            .and_then(|p| p.as_ref())
            .map_or(0, |p| p.attr_bytes)
    }

    /// Paths of the peer ignored for being past `MAX_PATHS_PER_PREFIX`.
    pub fn refused_paths(&self, peer: PeerId) -> u64 {
        self.peers
            .get(peer as usize)
            .and_then(|p| p.as_ref())
            .map_or(0, |p| p.refused_paths)
    }

    /// Routes held, all peers.
    pub fn route_count(&self) -> usize {
        self.peers.iter().flatten().map(|p| p.count).sum()
    }

    /// Bytes the view's route storage holds (not the shared attributes).
    pub fn heap_bytes(&self) -> usize {
        self.peers.iter().flatten().map(|p| p.v4.bytes() + p.v6.bytes()).sum()
    }

    /// Add or replace one route; the view takes over the reference `attrs`.
    pub fn announce(&mut self, peer: PeerId, prefix: Prefix, path_id: Option<u32>, attrs: AttrId, pool: &mut AttrPool) {
        let Some(Some(p)) = self.peers.get_mut(peer as usize) else {
            pool.release(attrs);
            return;
        };
        let done = match prefix.family() {
            Family::V4 => p.v4.insert(K4::split(&prefix), path_id, attrs),
            Family::V6 => p.v6.insert(K6::split(&prefix), path_id, attrs),
        };
        match done {
            Inserted::New => {
                p.count += 1;
                p.attr_bytes += pool.get(attrs).bytes();
            }
            Inserted::Replaced(o) => {
                p.attr_bytes = p.attr_bytes + pool.get(attrs).bytes() - pool.get(o).bytes();
                pool.release(o);
            }
            Inserted::Refused => {
                p.refused_paths += 1;
                pool.release(attrs);
            }
        }
    }

    fn withdraw(&mut self, peer: PeerId, prefix: &Prefix, path_id: Option<u32>, pool: &mut AttrPool) -> bool {
        let Some(Some(p)) = self.peers.get_mut(peer as usize) else {
            return false;
        };
        let old = match prefix.family() {
            Family::V4 => p.v4.remove(K4::split(prefix), path_id),
            Family::V6 => p.v6.remove(K6::split(prefix), path_id),
        };
        match old {
            Some(a) => {
                p.attr_bytes -= pool.get(a).bytes();
                pool.release(a);
                p.count -= 1;
                true
            }
            None => false,
        }
    }

    /// Apply one UPDATE from a peer; returns how many routes changed.
    pub fn apply(&mut self, peer: PeerId, u: &ParsedUpdate, pool: &mut AttrPool) -> usize {
        let hash = if u.announced.is_empty() { 0 } else { attr_hash(&u.attrs) };
        self.apply_hashed(peer, u, hash, pool)
    }

    /// [`View::apply`] with `hash` = [`attr_hash`]`(&u.attrs)` computed
    /// elsewhere (any value when nothing is announced).
    pub fn apply_hashed(&mut self, peer: PeerId, u: &ParsedUpdate, hash: u64, pool: &mut AttrPool) -> usize {
        let mut changed = 0;
        for n in &u.withdrawn {
            changed += usize::from(self.withdraw(peer, &n.prefix, n.path_id, pool));
        }
        if !u.announced.is_empty() {
            let id = pool.intern_hashed(&u.attrs, hash);
            for n in &u.announced {
                pool.retain(id);
                self.announce(peer, n.prefix, n.path_id, id, pool);
                changed += 1;
            }
            pool.release(id);
        }
        changed
    }

    /// The peer's session went down: its routes leave the view.
    pub fn drop_peer_routes(&mut self, peer: PeerId, pool: &mut AttrPool) -> usize {
        let Some(Some(p)) = self.peers.get_mut(peer as usize) else {
            return 0;
        };
        let n = p.v4.release_all(pool) + p.v6.release_all(pool);
        p.count = 0;
        p.attr_bytes = 0;
        n
    }

    /// Every route for exactly this prefix.
    pub fn routes(&self, prefix: &Prefix) -> Vec<Route> {
        let mut out = Vec::new();
        let mut tmp = Vec::new();
        for (i, p) in self.peers.iter().enumerate() {
            let Some(p) = p else { continue };
            tmp.clear();
            match prefix.family() {
                Family::V4 => p.v4.get(K4::split(prefix), &mut tmp),
                Family::V6 => p.v6.get(K6::split(prefix), &mut tmp),
            }
            out.extend(tmp.iter().map(|&(path_id, attrs)| Route {
                peer: i as PeerId,
                path_id,
                attrs,
            }));
        }
        out
    }

    /// The preferred route for a prefix (RFC 4271 §9.1.2.2).
    pub fn best(&self, prefix: &Prefix, pool: &AttrPool) -> Option<Route> {
        let routes = self.routes(prefix);
        best_of(&routes, &self.peers, pool).copied()
    }

    /// Longest-prefix match for a client prefix: the most specific prefix in
    /// the view that covers it, with its best route (a slow path for
    /// explanations; tables come from `for_each_best`).
    pub fn longest_match(&self, client: &Prefix, pool: &AttrPool) -> Option<(Prefix, Route)> {
        (0..=client.len()).rev().find_map(|l| {
            let p = client.truncate(l);
            self.best(&p, pool).map(|r| (p, r))
        })
    }

    /// Fold pending changes into the sorted runs (before `for_each_best`).
    pub fn compact(&mut self) {
        for p in self.peers.iter_mut().flatten() {
            p.v4.merge();
            p.v6.merge();
        }
    }

    /// Every prefix with its best route, IPv4 then IPv6, each in
    /// (address, length) order. Call [`View::compact`] first: routes still
    /// in a delta are not seen.
    ///
    /// Peers in `skip` are left out, as if they had no routes.
    pub fn for_each_best(&self, pool: &AttrPool, skip: &[PeerId], mut f: impl FnMut(Prefix, &Route)) {
        let peers: Vec<(usize, &Peer)> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(&(*i as PeerId)))
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
            .collect();
        merge_runs::<K4>(&peers, |p| &p.v4, &self.peers, pool, &mut f);
        merge_runs::<K6>(&peers, |p| &p.v6, &self.peers, pool, &mut f);
    }
}

/// k-way merge of the peers' sorted runs of one family; the best of each
/// prefix's routes goes to `f`.
fn merge_runs<K: Key>(
    peers: &[(usize, &Peer)],
    rib: impl Fn(&Peer) -> &Rib<K>,
    all: &[Option<Peer>],
    pool: &AttrPool,
    f: &mut impl FnMut(Prefix, &Route),
) {
    let mut pos = vec![0usize; peers.len()];
    let mut group: Vec<Route> = Vec::new();
    loop {
        let mut min: Option<KeyOf<K>> = None;
        for (k, (_, p)) in peers.iter().enumerate() {
            if let Some(e) = rib(p).run.get(pos[k]) {
                if min.is_none_or(|m| e.key() < m) {
                    min = Some(e.key());
                }
            }
        }
        let Some(key) = min else { return };
        group.clear();
        for (k, (i, p)) in peers.iter().enumerate() {
            let r = rib(p);
            while let Some(e) = r.run.get(pos[k]) {
                if e.key() != key {
                    break;
                }
                if e.attrs != DEAD {
                    group.push(Route {
                        peer: *i as PeerId,
                        path_id: e.has_path_id.then_some(r.path_id(pos[k])),
                        attrs: e.attrs,
                    });
                }
                pos[k] += 1;
            }
        }
        if let Some(b) = best_of(&group, all, pool) {
            f(K::join(key.0, key.1), b);
        }
    }
}

/// The RFC 4271 §9.1.2.2 elimination: LOCAL_PREF, AS_PATH length, ORIGIN,
/// MED among routes from the same neighbor AS, eBGP over iBGP, then the
/// lowest BGP identifier, peer address and path identifier as tie-breakers
/// (IGP cost does not apply: petrel does not forward).
fn best_of<'a>(routes: &'a [Route], peers: &[Option<Peer>], pool: &AttrPool) -> Option<&'a Route> {
    if routes.len() <= 1 {
        return routes.first();
    }
    let peer = |r: &Route| peers.get(r.peer as usize).and_then(|p| p.as_ref()).map(|p| &p.info);
    let a = |r: &Route| pool.get(r.attrs);
    let local_pref = |r: &Route| a(r).local_pref().unwrap_or(100);
    let neighbor_as = |r: &Route| a(r).asns().next();
    let mut c: Vec<&Route> = routes.iter().collect();
    let keep_min = |c: &mut Vec<&'a Route>, key: &dyn Fn(&Route) -> u64| {
        let m = c.iter().map(|r| key(r)).min().unwrap_or(0);
        c.retain(|r| key(r) == m);
    };
    keep_min(&mut c, &|r| u32::MAX as u64 - local_pref(r) as u64);
    keep_min(&mut c, &|r| a(r).as_path_len() as u64);
    keep_min(&mut c, &|r| a(r).origin().map_or(2, |o| o as u64));
    // MED: only between routes from the same neighbor AS. The lowest MED
    // per neighbor AS first, then one pass: linear in the routes (a peer
    // may send any number of ADD-PATH paths for one prefix).
    let mut lowest: rustc_hash::FxHashMap<Option<u32>, u32> = rustc_hash::FxHashMap::default();
    for r in &c {
        let med = a(r).med().unwrap_or(0);
        lowest
            .entry(neighbor_as(r))
            .and_modify(|m| *m = (*m).min(med))
            .or_insert(med);
    }
    c.retain(|r| lowest.get(&neighbor_as(r)) == Some(&a(r).med().unwrap_or(0)));
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
    use petrel_bgp_wire::{AsPathSegment, Attributes, Nlri, Origin};
    use std::net::Ipv4Addr;

    pub(crate) fn attrs(path: &[u32], med: Option<u32>, lp: Option<u32>) -> Attributes {
        Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(path.to_vec())],
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med,
            local_pref: lp,
            ..Default::default()
        }
    }

    pub(crate) fn upd(prefixes: &[&str], a: Attributes) -> ParsedUpdate {
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
        assert_eq!(v.best(&pfx, &pool).unwrap().peer, b, "shorter AS path");
        // LOCAL_PREF beats path length.
        v.apply(
            c,
            &upd(&[p], attrs(&[3356, 174, 2914, 64500], None, Some(200))),
            &mut pool,
        );
        assert_eq!(v.best(&pfx, &pool).unwrap().peer, c);
        // Withdrawn: back to b.
        let w = ParsedUpdate {
            withdrawn: vec![Nlri {
                path_id: None,
                prefix: pfx,
            }],
            ..Default::default()
        };
        assert_eq!(v.apply(c, &w, &mut pool), 1);
        assert_eq!(v.best(&pfx, &pool).unwrap().peer, b);
        // Peer down: its routes go.
        v.drop_peer_routes(b, &mut pool);
        assert_eq!(v.best(&pfx, &pool).unwrap().peer, a);
        assert_eq!(v.prefix_count(b), 0);
    }

    /// One ADD-PATH peer sending 100,000 paths for one prefix (a storm seen
    /// in the wild at 200,000): best-path selection stays linear. The MED
    /// step compared every path with every other, 10^10 comparisons here.
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_path_storm_for_one_prefix_is_decided_in_linear_time() {
        let mut pool = AttrPool::default();
        let mut v = View::new("ams");
        let pfx: Prefix = "198.51.100.0/24".parse().unwrap();
        // 1,000 peers of one neighbor AS, each with every path it may hold.
        let per = MAX_PATHS_PER_PREFIX;
        let n = 1000 * per;
        for k in 0..1000u32 {
            let p = v.add_peer(peer(&format!("p{k}"), 3356, 10 + k, false));
            for j in 0..per {
                let i = k * per + j;
                // Highest MED first, so the best one is the last announced.
                let a = pool.intern(&attrs(&[3356, 64500], Some(n - i), None));
                v.announce(p, pfx, Some(j + 1), a, &mut pool);
            }
        }
        let t0 = std::time::Instant::now();
        let best = v.best(&pfx, &pool).unwrap();
        let took = t0.elapsed();
        assert_eq!(pool.get(best.attrs).med(), Some(1));
        assert_eq!((best.peer, best.path_id), (999, Some(per)));
        // Generous for a debug build; the quadratic step took minutes.
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn paths_per_prefix_are_bounded_per_peer() {
        let mut pool = AttrPool::default();
        let mut v = View::new("ams");
        let p = v.add_peer(peer("a", 3356, 10, false));
        let pfx: Prefix = "198.51.100.0/24".parse().unwrap();
        let other: Prefix = "198.51.101.0/24".parse().unwrap();
        for i in 0..200_000u32 {
            let a = pool.intern(&attrs(&[3356, 64500 + i % 7], None, None));
            v.announce(p, pfx, Some(i), a, &mut pool);
        }
        assert_eq!(v.prefix_count(p), MAX_PATHS_PER_PREFIX as usize);
        assert_eq!(v.refused_paths(p), 200_000 - MAX_PATHS_PER_PREFIX as u64);
        assert_eq!(v.routes(&pfx).len(), MAX_PATHS_PER_PREFIX as usize);
        // A replaced path is not a new one; another prefix has its own count.
        let a = pool.intern(&attrs(&[3356, 1], None, None));
        v.announce(p, pfx, Some(0), a, &mut pool);
        let a = pool.intern(&attrs(&[3356, 1], None, None));
        v.announce(p, other, Some(5), a, &mut pool);
        assert_eq!(v.prefix_count(p), MAX_PATHS_PER_PREFIX as usize + 1);
        // A withdrawn path makes room for one more.
        let w = ParsedUpdate {
            withdrawn: vec![Nlri {
                path_id: Some(3),
                prefix: pfx,
            }],
            ..Default::default()
        };
        v.apply(p, &w, &mut pool);
        v.compact();
        let a = pool.intern(&attrs(&[3356, 2], None, None));
        v.announce(p, pfx, Some(1_000_000), a, &mut pool);
        assert!(v.routes(&pfx).iter().any(|r| r.path_id == Some(1_000_000)));
        assert_eq!(v.routes(&pfx).len(), MAX_PATHS_PER_PREFIX as usize);
        // Without ADD-PATH a prefix has one route, whatever is sent.
        let q = v.add_peer(peer("b", 1299, 20, false));
        for i in 0..100u32 {
            let a = pool.intern(&attrs(&[1299, i], None, None));
            v.announce(q, pfx, None, a, &mut pool);
        }
        assert_eq!((v.prefix_count(q), v.refused_paths(q)), (1, 0));
        v.drop_peer_routes(p, &mut pool);
        v.drop_peer_routes(q, &mut pool);
        assert_eq!(pool.len(), 0, "every refused path gave its attributes back");
    }

    #[test]
    fn med_only_within_a_neighbor_as_and_ebgp_over_ibgp() {
        let mut pool = AttrPool::default();
        let mut v = View::new("v");
        let a1 = v.add_peer(peer("a1", 3356, 30, false));
        let a2 = v.add_peer(peer("a2", 3356, 40, false));
        let i = v.add_peer(peer("i", 64512, 1, true));
        let p: Prefix = "203.0.113.0/24".parse().unwrap();
        let one = ["203.0.113.0/24"];
        v.apply(a1, &upd(&one, attrs(&[3356, 64500], Some(50), None)), &mut pool);
        v.apply(a2, &upd(&one, attrs(&[3356, 64500], Some(10), None)), &mut pool);
        assert_eq!(
            v.best(&p, &pool).unwrap().peer,
            a2,
            "lower MED from the same neighbor AS"
        );
        v.apply(i, &upd(&one, attrs(&[3356, 64500], Some(0), None)), &mut pool);
        assert_eq!(
            v.best(&p, &pool).unwrap().peer,
            i,
            "its MED 0 beats both (same neighbor AS)"
        );
        let mut v2 = View::new("v2");
        let e = v2.add_peer(peer("e", 3356, 50, false));
        let i2 = v2.add_peer(peer("i", 64512, 1, true));
        v2.apply(e, &upd(&one, attrs(&[3356, 64500], None, None)), &mut pool);
        v2.apply(i2, &upd(&one, attrs(&[1299, 64500], None, None)), &mut pool);
        assert_eq!(v2.best(&p, &pool).unwrap().peer, e, "eBGP over iBGP, then identifiers");
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
        let (m, r) = v.longest_match(&"10.1.3.0/24".parse().unwrap(), &pool).unwrap();
        assert_eq!(m.to_string(), "10.1.0.0/16");
        assert_eq!(pool.get(r.attrs).origin_as(), Some(1));
        assert!(v.longest_match(&"11.0.0.0/24".parse().unwrap(), &pool).is_none());
        assert_eq!(v.prefix_count(a), 4);
        v.compact();
        let mut n = 0;
        v.for_each_best(&pool, &[], |_, _| n += 1);
        assert_eq!(n, 4);
        v.drop_peer_routes(a, &mut pool);
        assert!(pool.is_empty(), "the last route released its set");
    }

    /// A slice of the real DFZ table (nested prefixes, both families,
    /// 4-octet origins) loaded with the filter on, one UPDATE per prefix
    /// as BIRD sends a table, then half of it withdrawn: the view holds
    /// exactly what was sent, in prefix order.
    #[test]
    fn dfz_slice_loads_and_unloads() {
        let table = petrel_synth::dfz::load().expect("bgpas.lpm from the iptrie 0.11.2 dev-dependency (cargo fetch)");
        let v4 = table.iter().filter(|(p, _)| p.family() == Family::V4);
        let v6 = table.iter().filter(|(p, _)| p.family() == Family::V6);
        let slice: Vec<(Prefix, u32)> = v4
            .skip(300_000)
            .take(20_000)
            .chain(v6.skip(5_000).take(5_000))
            .copied()
            .collect();
        let mut pool = AttrPool::default();
        let mut v = View::new("v");
        let a = v.add_peer(peer("a", 3356, 10, false));
        v.set_loading(a, true);
        // BIRD's walk order is no order: interleave the two ends.
        let (lo, hi) = slice.split_at(slice.len() / 2);
        for (p, origin) in hi.iter().rev().zip(lo).flat_map(|(x, y)| [x, y]) {
            v.apply(
                a,
                &upd(&[&p.to_string()], attrs(&[3356, *origin], None, None)),
                &mut pool,
            );
        }
        v.set_loading(a, false);
        assert_eq!(v.prefix_count(a), slice.len());
        let check = |v: &mut View, pool: &AttrPool, want: &[(Prefix, u32)]| {
            v.compact();
            let mut got = Vec::new();
            v.for_each_best(pool, &[], |p, r| got.push((p, pool.get(r.attrs).origin_as().unwrap())));
            let mut want = want.to_vec();
            want.sort_by_key(|(p, _)| (p.family() == Family::V6, p.bits(), p.len()));
            assert_eq!(got, want);
        };
        check(&mut v, &pool, &slice);
        for (p, _) in slice.iter().step_by(2) {
            let w = ParsedUpdate {
                withdrawn: vec![Nlri {
                    path_id: None,
                    prefix: *p,
                }],
                ..Default::default()
            };
            assert_eq!(v.apply(a, &w, &mut pool), 1);
        }
        let rest: Vec<(Prefix, u32)> = slice.iter().skip(1).step_by(2).copied().collect();
        check(&mut v, &pool, &rest);
    }

    /// The filter never turns away a key it was built from, and turns
    /// away most others (four bits per key, two probes: about 15% pass).
    #[test]
    fn load_filter_has_no_false_negatives() {
        let keys: Vec<u64> = (0..50_000u32)
            .map(|i| K4::mix(K4::order(i.wrapping_mul(2_654_435_761), 24, false, 0)))
            .collect();
        let mut f = LoadFilter::default();
        f.build(keys.iter().copied());
        assert!(keys.iter().all(|&k| f.may_hold(k)));
        let passed = (50_000..150_000u32)
            .filter(|i| f.may_hold(K4::mix(K4::order(i.wrapping_mul(2_654_435_761), 24, false, 0))))
            .count();
        assert!(passed < 25_000, "{passed} of 100000 absent keys passed");
        assert!(LoadFilter::default().may_hold(0), "no filter: every key may be there");
    }

    /// The run+delta store against a plain map, through merges, tombstones
    /// and re-announcements, with reference counts checked at the end;
    /// with and without the load filter (on for one peer throughout, for
    /// the other for the first half). Peer b sends ADD-PATH identifiers.
    #[test]
    fn store_matches_a_model() {
        store_matches_a_model_with(false);
        store_matches_a_model_with(true);
    }

    fn store_matches_a_model_with(loading: bool) {
        let mut pool = AttrPool::default();
        let mut v = View::new("v");
        let a = v.add_peer(peer("a", 3356, 10, false));
        let b = v.add_peer(peer("b", 1299, 20, false));
        v.set_loading(a, loading);
        v.set_loading(b, loading);
        let mut model: std::collections::BTreeMap<(PeerId, Prefix, Option<u32>), u32> = Default::default();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..60_000 {
            if i == 30_000 {
                v.set_loading(b, false);
            }
            let r = next();
            let peer = if r & 1 == 0 { a } else { b };
            let v6 = r & 2 != 0;
            let bits = (r >> 8) % 20_000;
            let prefix = if v6 {
                Prefix::from_bits(Family::V6, (0x2001_0db8u128 << 96) | ((bits as u128) << 64), 48)
            } else {
                Prefix::from_bits(Family::V4, (bits as u128) << 8, 24)
            };
            let asn = 64500 + ((r >> 40) % 50) as u32;
            let path_id = (peer == b).then_some(((r >> 50) % 3) as u32);
            if (r >> 4) % 3 == 0 {
                let w = ParsedUpdate {
                    withdrawn: vec![Nlri { path_id, prefix }],
                    ..Default::default()
                };
                let changed = v.apply(peer, &w, &mut pool);
                assert_eq!(changed == 1, model.remove(&(peer, prefix, path_id)).is_some());
            } else {
                let u = ParsedUpdate {
                    announced: vec![Nlri { path_id, prefix }],
                    attrs: attrs(&[asn], None, None),
                    ..Default::default()
                };
                v.apply(peer, &u, &mut pool);
                model.insert((peer, prefix, path_id), asn);
            }
        }
        for p in [a, b] {
            assert_eq!(v.prefix_count(p), model.keys().filter(|k| k.0 == p).count());
        }
        v.compact();
        // Attribute bytes: each stored route's set, counted whole.
        for p in [a, b] {
            let want: usize = model
                .keys()
                .filter(|k| k.0 == p)
                .map(|k| {
                    let r = v
                        .routes(&k.1)
                        .into_iter()
                        .find(|r| r.peer == p && r.path_id == k.2)
                        .unwrap();
                    pool.get(r.attrs).bytes()
                })
                .sum();
            assert_eq!(v.attr_bytes(p), want);
        }
        let mut seen = 0;
        v.for_each_best(&pool, &[], |prefix, r| {
            seen += 1;
            let want = model.get(&(r.peer, prefix, r.path_id)).copied();
            assert_eq!(want, pool.get(r.attrs).origin_as(), "{prefix}");
        });
        // Every route of a prefix, identifiers and all.
        for p in model.keys().map(|k| k.1).take(500) {
            let mut got: Vec<(PeerId, Option<u32>, Option<u32>)> = v
                .routes(&p)
                .iter()
                .map(|r| (r.peer, r.path_id, pool.get(r.attrs).origin_as()))
                .collect();
            got.sort();
            let want: Vec<(PeerId, Option<u32>, Option<u32>)> = model
                .iter()
                .filter(|(k, _)| k.1 == p)
                .map(|(k, asn)| (k.0, k.2, Some(*asn)))
                .collect();
            assert_eq!(got, want, "{p}");
        }
        let distinct: std::collections::BTreeSet<Prefix> = model.keys().map(|k| k.1).collect();
        assert_eq!(seen, distinct.len());
        v.remove_peer(a, &mut pool);
        v.remove_peer(b, &mut pool);
        assert!(pool.is_empty(), "every reference was released");
    }
}
