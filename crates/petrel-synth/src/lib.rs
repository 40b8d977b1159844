//! A deterministic synthetic Internet: metros, an AS graph in tiers, client
//! prefixes, valley-free (Gao–Rexford) routes, and a latency ground truth.
//!
//! Petrel uses it where real data cannot be shipped: the demo's per-POP BGP
//! views, the mapping-quality benchmark, and full-table AS paths for
//! benchmarks. Nothing here is real; everything is reproducible from a seed.
//!
//! The model, kept small on purpose:
//! - tier-1 carriers in many metros of every continent, peering in a full
//!   mesh; regional tier-2 networks buying transit from two tier-1s and
//!   peering within their continent; access networks in one metro buying
//!   from one or two tier-2s (sometimes a tier-1);
//! - POPs, each its own AS, buying transit from 2–3 of a few global
//!   carriers and peering with some networks at their metro (an IXP);
//! - each AS prefers customer over peer over provider routes, then shorter
//!   paths, and exports only what Gao–Rexford allows;
//! - latency of POP → client: hot-potato handoffs along the POP's own best
//!   path, great-circle distance with fibre stretch, a per-hop cost and the
//!   access network's last-mile delay.

#![forbid(unsafe_code)]

use petrel_types::Prefix;

pub mod dfz;

#[derive(Clone, Debug)]
pub struct Metro {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub country: String,
    pub continent: String,
    /// Relative demand of the metro's clients.
    pub demand: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Carrier,
    Regional,
    Access,
    Pop,
}

#[derive(Clone, Debug)]
pub struct As {
    pub asn: u32,
    pub tier: Tier,
    /// Metros where the AS has routers (index into `World::metros`).
    pub metros: Vec<usize>,
    pub providers: Vec<usize>,
    pub customers: Vec<usize>,
    pub peers: Vec<usize>,
    /// Last-mile delay of an access network, ms (both ways).
    pub access_ms: f64,
}

#[derive(Clone, Debug)]
pub struct ClientNet {
    pub prefix: Prefix,
    /// Originating (access) AS, index into `World::ases`.
    pub origin: usize,
    pub metro: usize,
    pub demand: f64,
}

/// A POP to place: name, ASN, latitude, longitude, continent.
pub type PopPlace = (&'static str, u32, f64, f64, &'static str);

#[derive(Clone, Debug)]
pub struct PopSpec {
    pub name: String,
    pub asn: u32,
    pub metro: usize,
}

/// How a route was learned, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Learned {
    Customer,
    Peer,
    Provider,
}

/// One route in a POP's view: the AS path as received (neighbor first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewRoute {
    pub prefix: Prefix,
    pub path: Vec<u32>,
    pub local_pref: u32,
    /// The neighbor AS that sent it (a POP for the multihop sessions).
    pub neighbor: u32,
}

/// How the synthetic routers choose: higher LOCAL_PREF, then shorter AS
/// path, then the lowest neighbor ASN (smaller is better).
pub fn preference(local_pref: u32, path_len: usize, neighbor: u32) -> (std::cmp::Reverse<u32>, usize, u32) {
    (std::cmp::Reverse(local_pref), path_len, neighbor)
}

/// The preferred route per prefix (by [`preference`]), in prefix order.
pub fn best_per_prefix(routes: Vec<ViewRoute>) -> Vec<ViewRoute> {
    let mut best: std::collections::BTreeMap<Prefix, ViewRoute> = Default::default();
    for r in routes {
        let better = best.get(&r.prefix).is_none_or(|b| {
            preference(r.local_pref, r.path.len(), r.neighbor) < preference(b.local_pref, b.path.len(), b.neighbor)
        });
        if better {
            best.insert(r.prefix, r);
        }
    }
    best.into_values().collect()
}

pub struct World {
    pub metros: Vec<Metro>,
    pub ases: Vec<As>,
    pub nets: Vec<ClientNet>,
    /// POPs: index of the POP's AS in `ases`, and its spec.
    pub pops: Vec<(usize, PopSpec)>,
    /// Per origin AS: every AS's best route (learned how, length, next AS).
    routes: Vec<Vec<Option<(Learned, u32, usize)>>>,
    origin_slot: Vec<Option<usize>>,
}

/// A small deterministic PRNG (xorshift64*): the world must not change
/// with a dependency's version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

#[derive(Clone, Debug)]
pub struct Shape {
    pub seed: u64,
    pub carriers: usize,
    /// Of the carriers, how many the POPs buy transit from.
    pub pop_carriers: usize,
    pub regionals_per_continent: usize,
    pub access_per_metro: usize,
    /// Client prefixes per access network, and their length.
    pub nets_per_access: usize,
    pub net_len: u8,
    /// First client prefix (IPv4); nets are allocated upwards from here.
    pub first_net: u32,
    /// Instead of generated nets: these prefixes, each in a metro (split
    /// into four, spread over the metro's access networks).
    pub fixed_nets: Vec<(usize, Prefix)>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            seed: 1,
            carriers: 6,
            pop_carriers: 3,
            regionals_per_continent: 5,
            access_per_metro: 3,
            nets_per_access: 8,
            net_len: 24,
            first_net: u32::from(std::net::Ipv4Addr::new(20, 0, 0, 0)),
            fixed_nets: Vec::new(),
        }
    }
}

/// Continents with rough land boxes (lat, lat, lon, lon), a country code to
/// label metros with, and a share of metros.
const CONTINENTS: [(&str, f64, f64, f64, f64, &str, usize); 6] = [
    ("NA", 28.0, 50.0, -123.0, -72.0, "US", 5),
    ("SA", -34.0, 2.0, -72.0, -40.0, "BR", 2),
    ("EU", 38.0, 60.0, -8.0, 28.0, "DE", 5),
    ("AF", -30.0, 30.0, -8.0, 38.0, "ZA", 2),
    ("AS", 2.0, 42.0, 72.0, 138.0, "JP", 5),
    ("OC", -38.0, -14.0, 116.0, 152.0, "AU", 1),
];

/// `n` metros spread over the continents (by their share), with Zipf-like
/// demand.
pub fn random_metros(n: usize, seed: u64) -> Vec<Metro> {
    let mut rng = Rng::new(seed ^ 0x6d65_7472_6f73);
    let total: usize = CONTINENTS.iter().map(|c| c.6).sum();
    let mut out = Vec::new();
    for (k, c) in CONTINENTS.iter().enumerate() {
        let count = (n * c.6).div_ceil(total).max(1);
        for i in 0..count {
            if out.len() >= n && i > 0 {
                break;
            }
            out.push(Metro {
                name: format!("{}{}", c.0.to_lowercase(), i + 1),
                lat: rng.uniform(c.1, c.2),
                lon: rng.uniform(c.3, c.4),
                country: c.5.to_string(),
                continent: c.0.to_string(),
                demand: 1.0 / (1.0 + ((i * 7 + k) % 11) as f64),
            });
        }
    }
    out
}

impl World {
    /// Build the AS graph and the client networks, then compute routes.
    /// `pops`: name, ASN and location (each POP gets a metro of its own
    /// unless one is within 50 km).
    pub fn generate(mut metros: Vec<Metro>, pops: &[PopPlace], shape: &Shape) -> World {
        let mut rng = Rng::new(shape.seed);
        let mut pop_specs = Vec::new();
        for (name, asn, lat, lon, cont) in pops {
            let m = match metros
                .iter()
                .position(|m| distance_km((m.lat, m.lon), (*lat, *lon)) < 50.0)
            {
                Some(m) => m,
                None => {
                    metros.push(Metro {
                        name: name.to_string(),
                        lat: *lat,
                        lon: *lon,
                        country: "ZZ".into(),
                        continent: cont.to_string(),
                        demand: 0.5,
                    });
                    metros.len() - 1
                }
            };
            pop_specs.push(PopSpec {
                name: name.to_string(),
                asn: *asn,
                metro: m,
            });
        }
        let continents: Vec<String> = {
            let mut c: Vec<String> = metros.iter().map(|m| m.continent.clone()).collect();
            c.sort();
            c.dedup();
            c
        };
        let in_cont = |c: &str| -> Vec<usize> { (0..metros.len()).filter(|&i| metros[i].continent == c).collect() };
        let mut ases: Vec<As> = Vec::new();
        let new_as = |asn: u32, tier: Tier, metros: Vec<usize>| As {
            asn,
            tier,
            metros,
            providers: Vec::new(),
            customers: Vec::new(),
            peers: Vec::new(),
            access_ms: 0.0,
        };
        // Carriers: in ~60% of metros, at least one per continent.
        for i in 0..shape.carriers {
            let mut ms: Vec<usize> = (0..metros.len()).filter(|_| rng.chance(0.6)).collect();
            for c in &continents {
                let list = in_cont(c);
                if !list.iter().any(|m| ms.contains(m)) {
                    ms.push(list[rng.below(list.len())]);
                }
            }
            ms.sort();
            ases.push(new_as(64700 + i as u32, Tier::Carrier, ms));
        }
        for a in 0..shape.carriers {
            for b in a + 1..shape.carriers {
                ases[a].peers.push(b);
                ases[b].peers.push(a);
            }
        }
        let link = |ases: &mut Vec<As>, customer: usize, provider: usize| {
            if customer != provider && !ases[customer].providers.contains(&provider) {
                ases[customer].providers.push(provider);
                ases[provider].customers.push(customer);
            }
        };
        let peer = |ases: &mut Vec<As>, a: usize, b: usize| {
            if a != b
                && !ases[a].peers.contains(&b)
                && !ases[a].providers.contains(&b)
                && !ases[a].customers.contains(&b)
            {
                ases[a].peers.push(b);
                ases[b].peers.push(a);
            }
        };
        // Regionals.
        let mut regionals: Vec<(String, usize)> = Vec::new();
        let mut next_asn = 4_200_000_000u32;
        for c in &continents {
            let list = in_cont(c);
            let first = ases.len();
            for _ in 0..shape.regionals_per_continent {
                let mut ms: Vec<usize> = list.iter().copied().filter(|_| rng.chance(0.5)).collect();
                if ms.is_empty() {
                    ms.push(list[rng.below(list.len())]);
                }
                let id = ases.len();
                ases.push(new_as(next_asn, Tier::Regional, ms));
                next_asn += 1;
                let p1 = rng.below(shape.carriers);
                let mut p2 = rng.below(shape.carriers);
                if p2 == p1 {
                    p2 = (p1 + 1) % shape.carriers;
                }
                link(&mut ases, id, p1);
                link(&mut ases, id, p2);
                regionals.push((c.clone(), id));
            }
            for a in first..ases.len() {
                for b in a + 1..ases.len() {
                    if rng.chance(0.4) {
                        peer(&mut ases, a, b);
                    }
                }
            }
        }
        // Access networks and their client prefixes.
        let mut nets = Vec::new();
        let mut next_net = shape.first_net;
        let step = 1u32 << (32 - shape.net_len);
        let mut access_of: Vec<Vec<usize>> = vec![Vec::new(); metros.len()];
        for (m, metro) in metros.iter().enumerate() {
            let regs: Vec<usize> = regionals
                .iter()
                .filter(|(c, _)| *c == metro.continent)
                .map(|r| r.1)
                .collect();
            for _ in 0..shape.access_per_metro {
                let id = ases.len();
                let mut a = new_as(next_asn, Tier::Access, vec![m]);
                a.access_ms = rng.uniform(2.0, 15.0);
                ases.push(a);
                next_asn += 1;
                if !regs.is_empty() {
                    link(&mut ases, id, regs[rng.below(regs.len())]);
                    if rng.chance(0.5) {
                        link(&mut ases, id, regs[rng.below(regs.len())]);
                    }
                }
                if regs.is_empty() || rng.chance(0.3) {
                    link(&mut ases, id, rng.below(shape.carriers));
                }
                access_of[m].push(id);
                if !shape.fixed_nets.is_empty() {
                    continue;
                }
                for _ in 0..shape.nets_per_access {
                    nets.push(ClientNet {
                        prefix: Prefix::from_bits(petrel_types::Family::V4, next_net as u128, shape.net_len),
                        origin: id,
                        metro: m,
                        demand: metro.demand * rng.uniform(0.5, 1.5),
                    });
                    next_net = next_net.wrapping_add(step);
                }
            }
        }
        for &(m, p) in &shape.fixed_nets {
            let quarter = (p.len() + 2).min(p.family().max_len());
            let size = 1u128 << (p.family().max_len() - quarter);
            for k in 0..4u128 {
                let part = Prefix::from_bits(p.family(), p.bits() + k * size, quarter);
                let owners = &access_of[m];
                nets.push(ClientNet {
                    prefix: part,
                    origin: owners[(k as usize) % owners.len()],
                    metro: m,
                    demand: metros[m].demand,
                });
            }
        }
        // POPs: transit from a few global carriers, IXP peering at home.
        let mut pop_ids = Vec::new();
        for p in &pop_specs {
            let id = ases.len();
            ases.push(new_as(p.asn, Tier::Pop, vec![p.metro]));
            let n = 2 + rng.below(2);
            let few = shape.pop_carriers.min(shape.carriers).max(1);
            for k in 0..n {
                link(&mut ases, id, (rng.below(few) + k) % shape.carriers);
            }
            for other in 0..id {
                let here = ases[other].metros.contains(&p.metro);
                let chance = match ases[other].tier {
                    Tier::Access => 0.5,
                    Tier::Regional => 0.3,
                    _ => 0.0,
                };
                if here && rng.chance(chance) {
                    peer(&mut ases, id, other);
                }
            }
            pop_ids.push((id, p.clone()));
        }
        let mut w = World {
            metros,
            ases,
            nets,
            pops: pop_ids,
            routes: Vec::new(),
            origin_slot: Vec::new(),
        };
        w.compute_routes();
        w
    }

    /// Valley-free best routes towards every origin AS (and every
    /// non-POP AS, so that stubs can hang off any of them).
    fn compute_routes(&mut self) {
        let n = self.ases.len();
        self.origin_slot = vec![None; n];
        let mut origins: Vec<usize> = self.nets.iter().map(|c| c.origin).collect();
        origins.extend((0..n).filter(|&a| self.ases[a].tier != Tier::Pop));
        origins.sort();
        origins.dedup();
        for &o in &origins {
            self.origin_slot[o] = Some(self.routes.len());
            self.routes.push(self.routes_to(o));
        }
    }

    fn routes_to(&self, origin: usize) -> Vec<Option<(Learned, u32, usize)>> {
        let n = self.ases.len();
        let mut best: Vec<Option<(Learned, u32, usize)>> = vec![None; n];
        let better = |cur: Option<(Learned, u32, usize)>, cand: (Learned, u32, usize), ases: &[As]| match cur {
            None => true,
            Some(c) => (cand.0, cand.1, ases[cand.2].asn) < (c.0, c.1, ases[c.2].asn),
        };
        // Phase 1: up the customer->provider edges (customer routes).
        best[origin] = Some((Learned::Customer, 0, origin));
        let mut frontier = vec![origin];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &a in &frontier {
                let len = best[a].expect("reached").1 + 1;
                for &p in &self.ases[a].providers {
                    let cand = (Learned::Customer, len, a);
                    if better(best[p], cand, &self.ases) {
                        if best[p].is_none() {
                            next.push(p);
                        }
                        best[p] = Some(cand);
                    }
                }
            }
            next.sort();
            next.dedup();
            frontier = next;
        }
        // Phase 2: one peer hop from anything with a customer route.
        let with_customer: Vec<usize> = (0..n).filter(|&a| best[a].is_some()).collect();
        let mut peer_routes: Vec<(usize, (Learned, u32, usize))> = Vec::new();
        for &a in &with_customer {
            let len = best[a].expect("reached").1 + 1;
            for &q in &self.ases[a].peers {
                if best[q].is_none() || best[q].is_some_and(|b| b.0 == Learned::Peer) {
                    peer_routes.push((q, (Learned::Peer, len, a)));
                }
            }
        }
        for (q, cand) in peer_routes {
            if best[q].is_none_or(|b| b.0 == Learned::Peer) && better(best[q], cand, &self.ases) {
                best[q] = Some(cand);
            }
        }
        // Phase 3: down the provider->customer edges, shortest first.
        let mut order: Vec<usize> = (0..n).filter(|&a| best[a].is_some()).collect();
        order.sort_by_key(|&a| best[a].expect("reached").1);
        let mut queue: std::collections::VecDeque<usize> = order.into();
        while let Some(a) = queue.pop_front() {
            let len = best[a].expect("reached").1 + 1;
            for &c in &self.ases[a].customers {
                let cand = (Learned::Provider, len, a);
                let open = best[c].is_none_or(|b| b.0 == Learned::Provider);
                if open && better(best[c], cand, &self.ases) {
                    best[c] = Some(cand);
                    queue.push_back(c);
                }
            }
        }
        best
    }

    /// The AS path (indices, from `from` to the origin) of `from`'s best
    /// route to `origin`.
    pub fn path(&self, from: usize, origin: usize) -> Option<Vec<usize>> {
        let table = &self.routes[self.origin_slot[origin]?];
        let mut out = vec![from];
        let mut at = from;
        while at != origin {
            let (_, _, next) = table[at]?;
            out.push(next);
            at = next;
            if out.len() > 64 {
                return None;
            }
        }
        Some(out)
    }

    fn learned(&self, at: usize, origin: usize) -> Option<Learned> {
        self.routes[self.origin_slot[origin]?][at].map(|r| r.0)
    }

    /// A POP's neighbors: (AS, LOCAL_PREF by relationship, is a provider).
    fn neighbors(&self, me: usize) -> impl Iterator<Item = (usize, u32, bool)> + '_ {
        let a = &self.ases[me];
        a.providers
            .iter()
            .map(|&x| (x, 100, true))
            .chain(a.peers.iter().map(|&x| (x, 150, false)))
            .chain(a.customers.iter().map(|&x| (x, 200, false)))
    }

    /// What the POP's neighbors send it: for each, what Gao–Rexford lets
    /// it export (paths as received, neighbor first), with LOCAL_PREF by
    /// relationship (customer 200, peer 150, transit 100).
    fn neighbor_routes(&self, pop: usize) -> Vec<ViewRoute> {
        let (me, _) = self.pops[pop];
        let mut out = Vec::new();
        for (nb, lp, is_provider) in self.neighbors(me) {
            for net in &self.nets {
                let Some(path) = self.path(nb, net.origin) else {
                    continue;
                };
                // No loops; a peer or customer exports only customer routes.
                let exportable = is_provider || self.learned(nb, net.origin) == Some(Learned::Customer);
                if exportable && !path.contains(&me) {
                    out.push(ViewRoute {
                        prefix: net.prefix,
                        path: path.iter().map(|&x| self.ases[x].asn).collect(),
                        local_pref: lp,
                        neighbor: self.ases[nb].asn,
                    });
                }
            }
        }
        out
    }

    /// Everything a POP's router holds: its neighbors' routes, plus, for
    /// the Super Sparrow rule, the other POPs' best routes over multihop
    /// sessions (their AS first, LOCAL_PREF 100).
    pub fn pop_view(&self, pop: usize) -> Vec<ViewRoute> {
        let my_asn = self.ases[self.pops[pop].0].asn;
        let mut out = self.neighbor_routes(pop);
        for (other, (oid, _)) in self.pops.iter().enumerate() {
            if other == pop {
                continue;
            }
            for r in self.pop_forwarding(other) {
                let mut path = vec![self.ases[*oid].asn];
                path.extend(r.path);
                if path.contains(&my_asn) {
                    continue;
                }
                out.push(ViewRoute {
                    prefix: r.prefix,
                    path,
                    local_pref: 100,
                    neighbor: self.ases[*oid].asn,
                });
            }
        }
        out
    }

    /// The routes a POP forwards on: per prefix, its best among what its
    /// neighbors sent.
    pub fn pop_forwarding(&self, pop: usize) -> Vec<ViewRoute> {
        best_per_prefix(self.neighbor_routes(pop))
    }

    /// Round-trip time from a POP to a client network along the POP's own
    /// best path: hot-potato handoffs (each AS hands traffic over at the
    /// shared metro nearest to where it is), 1.3× fibre stretch at
    /// 200 km/ms, 0.3 ms per AS hop, plus the access network's last mile.
    /// `None` when the POP has no route.
    pub fn rtt_ms(&self, pop: usize, net: usize, forwarding: &[ViewRoute]) -> Option<f64> {
        let n = &self.nets[net];
        let r = forwarding.iter().find(|r| r.prefix == n.prefix)?;
        let (me, _) = self.pops[pop];
        let idx = |asn: u32| self.ases.iter().position(|a| a.asn == asn);
        let mut at = self.ases[me].metros[0];
        let mut prev = me;
        let mut km = 0.0;
        for &asn in &r.path {
            let next = idx(asn)?;
            let shared: Vec<usize> = self.ases[next]
                .metros
                .iter()
                .copied()
                .filter(|m| self.ases[prev].metros.contains(m))
                .collect();
            let cands = if shared.is_empty() {
                self.ases[next].metros.clone()
            } else {
                shared
            };
            let here = (self.metros[at].lat, self.metros[at].lon);
            let hop = cands
                .iter()
                .copied()
                .min_by(|&x, &y| {
                    let dx = distance_km(here, (self.metros[x].lat, self.metros[x].lon));
                    let dy = distance_km(here, (self.metros[y].lat, self.metros[y].lon));
                    dx.total_cmp(&dy)
                })
                .expect("every AS has a metro");
            km += distance_km(here, (self.metros[hop].lat, self.metros[hop].lon));
            at = hop;
            prev = next;
        }
        let here = (self.metros[at].lat, self.metros[at].lon);
        km += distance_km(here, (self.metros[n.metro].lat, self.metros[n.metro].lon));
        Some(2.0 * km * 1.3 / 200.0 + 0.3 * r.path.len() as f64 + self.ases[n.origin].access_ms)
    }

    /// AS paths for a full table whose origins are not in the graph: each
    /// origin ASN becomes a stub network with one or two providers among
    /// the access and regional networks (chosen by hash, so the same ASN
    /// always hangs off the same place). Returns, per POP and per origin
    /// (in `origins` order), the path the POP's view prefers, neighbor
    /// first: what its neighbors export to it (LOCAL_PREF by relationship)
    /// and the other POPs' best paths over multihop sessions.
    pub fn stub_paths(&self, origins: &[u32]) -> Vec<Vec<Option<Vec<u32>>>> {
        let attach: Vec<usize> = (0..self.ases.len())
            .filter(|&a| matches!(self.ases[a].tier, Tier::Access | Tier::Regional))
            .collect();
        let providers = |asn: u32| -> Vec<usize> {
            let mut h = Rng::new(u64::from(asn) ^ 0x7374_7562);
            let first = attach[h.below(attach.len())];
            let mut v = vec![first];
            if h.chance(0.4) {
                let second = attach[h.below(attach.len())];
                if second != first {
                    v.push(second);
                }
            }
            v
        };
        // Route of AS `from` to stub `asn`: best over its providers of
        // (learned type, length) of the route to that provider, plus one.
        let route = |from: usize, provs: &[usize]| -> Option<(Learned, usize, Vec<usize>)> {
            let mut best: Option<(Learned, usize, Vec<usize>)> = None;
            for &p in provs {
                let (learned, path) = if from == p {
                    (Learned::Customer, vec![p])
                } else {
                    let l = self.learned(from, p)?;
                    (l, self.path(from, p)?)
                };
                let key = (learned, path.len(), self.ases[p].asn);
                if best
                    .as_ref()
                    .is_none_or(|b| key < (b.0, b.1, self.ases[*b.2.last().expect("path")].asn))
                {
                    best = Some((learned, path.len(), path));
                }
            }
            best
        };
        let pop_count = self.pops.len();
        // Each POP's own forwarding choice per origin, then the views.
        // (LOCAL_PREF, path, neighbor ASN) per POP and origin.
        type Cand = (u32, Vec<u32>, u32);
        type Chosen = Option<(u32, Vec<u32>)>;
        let mut forwarding: Vec<Vec<Chosen>> = vec![Vec::with_capacity(origins.len()); pop_count];
        let mut candidates: Vec<Vec<Vec<Cand>>> = vec![Vec::with_capacity(origins.len()); pop_count];
        for &asn in origins {
            let provs = providers(asn);
            for (k, (me, _)) in self.pops.iter().enumerate() {
                let mut cands: Vec<Cand> = Vec::new();
                for (nb, lp, is_provider) in self.neighbors(*me) {
                    let Some((learned, _, path)) = route(nb, &provs) else {
                        continue;
                    };
                    if path.contains(me) || !(is_provider || learned == Learned::Customer) {
                        continue;
                    }
                    let mut p: Vec<u32> = path.iter().map(|&x| self.ases[x].asn).collect();
                    p.push(asn);
                    cands.push((lp, p, self.ases[nb].asn));
                }
                let best = cands
                    .iter()
                    .min_by_key(|c| preference(c.0, c.1.len(), c.2))
                    .map(|c| (c.0, c.1.clone()));
                forwarding[k].push(best);
                candidates[k].push(cands);
            }
        }
        (0..pop_count)
            .map(|k| {
                let my_asn = self.ases[self.pops[k].0].asn;
                (0..origins.len())
                    .map(|o| {
                        // The neighbors' routes and the other POPs' (multihop).
                        let multihop = forwarding
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| *j != k)
                            .filter_map(|(j, f)| {
                                let (_, p) = f[o].as_ref()?;
                                let other = self.ases[self.pops[j].0].asn;
                                let path: Vec<u32> = std::iter::once(other).chain(p.iter().copied()).collect();
                                (!p.contains(&my_asn)).then_some((100, path, other))
                            });
                        let best = candidates[k][o]
                            .iter()
                            .cloned()
                            .chain(multihop)
                            .min_by_key(|c| preference(c.0, c.1.len(), c.2));
                        best.map(|b| b.1)
                    })
                    .collect()
            })
            .collect()
    }

    /// GeoIP records for the client networks: the metro's place, except for
    /// a share `error_rate` placed in a wrong metro (as real databases err).
    pub fn geoip(&self, error_rate: f64, seed: u64) -> Vec<(Prefix, usize)> {
        let mut rng = Rng::new(seed ^ 0x0067_656f_6970);
        self.nets
            .iter()
            .map(|n| {
                let m = if rng.chance(error_rate) {
                    rng.below(self.metros.len())
                } else {
                    n.metro
                };
                (n.prefix, m)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let pops = [
            ("ams", 64500, 52.37, 4.90, "EU"),
            ("iad", 64501, 38.95, -77.45, "NA"),
            ("sin", 64502, 1.35, 103.82, "AS"),
        ];
        World::generate(random_metros(30, 7), &pops, &Shape::default())
    }

    #[test]
    fn deterministic_and_valley_free() {
        let a = world();
        let b = world();
        assert_eq!(a.ases.len(), b.ases.len());
        assert_eq!(a.pop_view(0), b.pop_view(0));
        // Every path is valley-free: once it goes down (provider->customer)
        // or across (peer), it never goes up or across again.
        for net in &a.nets {
            for from in 0..a.ases.len() {
                let Some(p) = a.path(from, net.origin) else { continue };
                let mut descending = false;
                for w in p.windows(2) {
                    let (x, y) = (w[0], w[1]);
                    let up = a.ases[x].providers.contains(&y);
                    if descending {
                        assert!(!up && !a.ases[x].peers.contains(&y), "valley in {p:?}");
                    }
                    if !up {
                        descending = true;
                    }
                }
            }
        }
    }

    #[test]
    fn every_pop_reaches_every_client_and_near_is_faster() {
        let w = world();
        let fwd: Vec<Vec<ViewRoute>> = (0..w.pops.len()).map(|p| w.pop_forwarding(p)).collect();
        let mut near_wins = 0;
        for (i, n) in w.nets.iter().enumerate() {
            let rtts: Vec<f64> = (0..w.pops.len()).map(|p| w.rtt_ms(p, i, &fwd[p]).unwrap()).collect();
            let client = (w.metros[n.metro].lat, w.metros[n.metro].lon);
            let nearest = (0..w.pops.len())
                .min_by(|&a, &b| {
                    let m = |p: usize| {
                        let pm = w.pops[p].1.metro;
                        distance_km(client, (w.metros[pm].lat, w.metros[pm].lon))
                    };
                    m(a).total_cmp(&m(b))
                })
                .unwrap();
            let fastest = (0..rtts.len()).min_by(|&a, &b| rtts[a].total_cmp(&rtts[b])).unwrap();
            near_wins += usize::from(nearest == fastest);
        }
        // Geography mostly decides latency, but not always.
        assert!(near_wins * 10 > w.nets.len() * 6, "{near_wins}/{}", w.nets.len());
        assert!(near_wins < w.nets.len(), "paths never matter?");
    }
}
