//! Policies and their evaluation for one region of the address space.
//!
//! A ranking is an ordered list of tiers; POPs in one tier are equally good
//! as far as the policies can tell. Policies run in the configured order and
//! each one refines the current tiers: inside each tier it sorts by its own
//! key and splits where keys differ (a lexicographic composition). So an
//! earlier policy decides, and a later one only breaks its ties.

use crate::bgp::{hop_distances, unreachable, BgpPath, ViewFacts};
use crate::explain::{ClientPlace, PopDistance, PopHops, PopLatency, PopScore, StepFacts, ViewPath};
use crate::geo::{distance_km, GeoLocation};
use crate::latency::LatencyUnit;
use petrel_types::{Asn, PopIdx, Prefix};
use rustc_hash::FxHashMap;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A POP as the engine and every channel see it: the one conversion of
/// the config's POP (which also carries health checks and the configured
/// state, the control plane's business).
#[derive(Clone, Debug, PartialEq)]
pub struct PopInfo {
    pub name: String,
    /// The addresses answers name; a POP without one of a family is never
    /// chosen for an answer that needs that family.
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    pub location: Option<(f64, f64)>,
    pub weight: u32,
    /// The POP's own AS numbers, for the BGP policies.
    pub asns: Vec<Asn>,
}

impl PopInfo {
    pub fn has_v4(&self) -> bool {
        !self.ipv4.is_empty()
    }

    pub fn has_v6(&self) -> bool {
        !self.ipv6.is_empty()
    }
}

/// A static map of client prefixes to ordered POP lists (Super Sparrow's
/// "network address allocations"). Lists are interned: a million-line map
/// usually names few distinct lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CidrMap {
    /// Where the map came from, for explanations.
    pub source: String,
    pub lists: Vec<Vec<PopIdx>>,
    pub entries: Vec<(Prefix, u32)>,
}

impl CidrMap {
    pub fn new(source: impl Into<String>) -> Self {
        CidrMap {
            source: source.into(),
            ..Default::default()
        }
    }

    pub fn insert(&mut self, prefix: Prefix, pops: Vec<PopIdx>) {
        let id = match self.lists.iter().position(|l| *l == pops) {
            Some(i) => i,
            None => {
                self.lists.push(pops);
                self.lists.len() - 1
            }
        };
        self.entries.push((prefix, id as u32));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// A random POP of the top tier, in proportion to weight, per query.
    Random,
    /// Weighted rendezvous hashing of the client's subnet truncated to these
    /// lengths: a client keeps its POP while other POPs come and go.
    Hash { v4_len: u8, v6_len: u8 },
}

/// One policy of a service: the config's model and the engine's.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    Cidr(CidrMap),
    /// Nearest POP by great-circle distance; distances within `band_km` of
    /// each other count as equal (0: 1 km resolution).
    GeoNearest {
        band_km: u32,
    },
    /// Country, else continent, to an ordered POP list.
    GeoMap {
        countries: FxHashMap<String, Vec<PopIdx>>,
        continents: FxHashMap<String, Vec<PopIdx>>,
    },
    /// A fixed order: listed POPs first, in list order (failover order).
    Priority(Vec<PopIdx>),
    /// Like `Priority`, but applies only while no earlier policy has ordered
    /// anything (for clients the data knows nothing about).
    Default(Vec<PopIdx>),
    /// Choose within each tier by weight; must be the last policy.
    Weighted(WeightMode),
    /// Super Sparrow: the POP closest to the client in AS hops, by each
    /// view's preferred route ([`crate::bgp`]); POPs nothing is known of
    /// rank last.
    SuperSparrow,
    /// GeoIP distance plus `hop_km` per AS hop beyond the shortest, in bands
    /// of `band_km`; POPs whose view has no route to the client rank last.
    /// AS-path length is a weak latency proxy, so it only shifts distances.
    Blended {
        band_km: u32,
        hop_km: u32,
    },
    /// The origin AS of the client's prefix (from the views) to a POP list.
    AsMap {
        source: String,
        map: FxHashMap<u32, Vec<PopIdx>>,
    },
    /// Measured latency from real users: where the client's unit has
    /// enough samples, POPs in tiers of equal measured latency
    /// ([`crate::latency`], an input like the routing views); elsewhere it
    /// passes.
    Latency,
}

impl Policy {
    pub fn kind(&self) -> &'static str {
        match self {
            Policy::Cidr(_) => "cidr",
            Policy::GeoNearest { .. } => "geo-nearest",
            Policy::GeoMap { .. } => "geo-map",
            Policy::Priority(_) => "priority",
            Policy::Default(_) => "default",
            Policy::Weighted(_) => "weighted",
            Policy::SuperSparrow => "super-sparrow",
            Policy::Blended { .. } => "blended",
            Policy::AsMap { .. } => "as-map",
            Policy::Latency => "latency",
        }
    }

    pub fn uses_geo(&self) -> bool {
        matches!(
            self,
            Policy::GeoNearest { .. } | Policy::GeoMap { .. } | Policy::Blended { .. }
        )
    }

    pub fn uses_bgp(&self) -> bool {
        matches!(
            self,
            Policy::SuperSparrow | Policy::Blended { .. } | Policy::AsMap { .. }
        )
    }

    pub fn uses_latency(&self) -> bool {
        matches!(self, Policy::Latency)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Every candidate, in rank order, ignoring state (gdnsd's and PowerDNS'
    /// behaviour: better a possibly-dead answer than none).
    #[default]
    All,
    /// An empty NOERROR answer.
    None,
    /// A designated backup set (which may lie outside the candidates, e.g. a
    /// "sorry" site): its usable POPs in order, or all of it if none is.
    Backup(Vec<PopIdx>),
}

/// What a service with BGP policies answers while `serve` waits at start
/// for its routing views: without them super-sparrow ranks every POP
/// alike (the first would get every client) and blended falls back on
/// geography alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Warming {
    /// Its policies as they rank without views (the non-BGP ones, and
    /// blended's geography).
    #[default]
    Policies,
    /// SERVFAIL (EDE "Not Ready"), so that resolvers retry elsewhere or
    /// later; HTTP answers 503.
    Servfail,
}

impl Warming {
    /// SERVFAIL when no policy but the BGP-only ones would order the POPs
    /// (weighted only spreads within tiers), its policies otherwise.
    pub fn default_for(policies: &[Policy]) -> Warming {
        let orders_without_views = policies
            .iter()
            .any(|p| !matches!(p, Policy::SuperSparrow | Policy::AsMap { .. } | Policy::Weighted(_)));
        if policies.iter().any(Policy::uses_bgp) && !orders_without_views {
            Warming::Servfail
        } else {
            Warming::Policies
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub name: String,
    pub candidates: Vec<PopIdx>,
    pub policies: Vec<Policy>,
    pub answers: u8,
    pub fallback: Fallback,
    /// Exploration: of every million answers, this many send the client's
    /// first answer to the next-best usable POP instead, so that POPs a
    /// network is not sent to still get measured (0: never).
    pub explore_ppm: u32,
    pub warming: Warming,
}

impl ServiceSpec {
    /// No answer while the routing views load (see [`Warming`]).
    pub fn withheld_while_warming(&self) -> bool {
        self.warming == Warming::Servfail && self.uses_bgp()
    }

    pub fn uses_geo(&self) -> bool {
        self.policies.iter().any(Policy::uses_geo)
    }

    pub fn uses_bgp(&self) -> bool {
        self.policies.iter().any(Policy::uses_bgp)
    }

    pub fn uses_latency(&self) -> bool {
        self.policies.iter().any(Policy::uses_latency)
    }
}

/// What is known of a region when policies are evaluated for it.
pub(crate) struct Facts<'a> {
    /// Per `Cidr` policy, in policy order: the matched list, if any.
    pub cidr: Vec<Option<(&'a [PopIdx], Option<Prefix>)>>,
    pub geo: Option<&'a GeoLocation>,
    /// The routing views (empty without BGP data) and, per view, the
    /// preferred path for the client.
    pub views: &'a [ViewFacts],
    pub paths: Vec<Option<&'a BgpPath>>,
    /// The client's unit in the measured latency, if it has one.
    pub latency: Option<(Option<Prefix>, &'a LatencyUnit)>,
}

/// One step of an explanation.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub policy: String,
    pub facts: StepFacts,
    pub detail: String,
    pub tiers: Vec<Vec<PopIdx>>,
}

pub(crate) type Tiers = Vec<Vec<PopIdx>>;

fn refine(tiers: &mut Tiers, key: impl Fn(PopIdx) -> u64) {
    let mut out = Vec::with_capacity(tiers.len());
    for tier in tiers.drain(..) {
        let mut t = tier;
        t.sort_by_key(|&p| key(p));
        let mut cur: Vec<PopIdx> = Vec::new();
        let mut cur_key = None;
        for p in t {
            let k = key(p);
            if cur_key.is_some() && cur_key != Some(k) {
                out.push(std::mem::take(&mut cur));
            }
            cur_key = Some(k);
            cur.push(p);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    *tiers = out;
}

fn position_key(list: &[PopIdx]) -> impl Fn(PopIdx) -> u64 + '_ {
    move |p| list.iter().position(|&q| q == p).map_or(u64::MAX, |i| i as u64)
}

/// Milliseconds as people read them: a decimal below 10 ms.
fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn names(pops: &[PopInfo], list: &[PopIdx]) -> String {
    list.iter()
        .map(|p| pops[p.index()].name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Evaluate the policies for one region. With `trace`, every step records
/// what it saw (as fields and as a sentence) and the tiers it left.
pub(crate) fn evaluate(
    spec: &ServiceSpec,
    pops: &[PopInfo],
    facts: &Facts<'_>,
    mut trace: Option<&mut Vec<Step>>,
) -> Tiers {
    let mut tiers: Tiers = vec![spec.candidates.clone()];
    let mut ordered = false;
    let mut cidr_i = 0;
    let tracing = trace.is_some();
    let name_list = |list: &[PopIdx]| -> Vec<String> { list.iter().map(|p| pops[p.index()].name.clone()).collect() };
    for policy in &spec.policies {
        let mut detail = String::new();
        let mut seen: Option<StepFacts> = None;
        let before = tiers.len();
        match policy {
            Policy::Cidr(map) => {
                let hit = facts.cidr.get(cidr_i).copied().flatten();
                cidr_i += 1;
                if tracing {
                    seen = Some(StepFacts::Cidr {
                        source: map.source.clone(),
                        entry: hit.and_then(|(_, p)| p).map(|p| p.to_string()),
                        pops: hit.map_or_else(Vec::new, |(l, _)| name_list(l)),
                    });
                }
                match hit {
                    Some((list, prefix)) => {
                        if tracing {
                            let at = prefix.map(|p| format!(" entry {p}")).unwrap_or_default();
                            let _ = write!(detail, "{}{at} -> [{}]", map.source, names(pops, list));
                        }
                        refine(&mut tiers, position_key(list));
                    }
                    None => {
                        if tracing {
                            let _ = write!(detail, "{}: no entry covers the client", map.source);
                        }
                    }
                }
            }
            Policy::GeoNearest { band_km } => {
                let located = facts.geo.and_then(|g| g.lat_lon.map(|ll| (g, ll)));
                let km = |client: (f64, f64), p: PopIdx| pops[p.index()].location.map(|l| distance_km(client, l));
                if tracing {
                    let mut distances: Vec<PopDistance> = spec
                        .candidates
                        .iter()
                        .map(|&p| PopDistance {
                            pop: pops[p.index()].name.clone(),
                            km: located.and_then(|(_, c)| km(c, p)).map(|d| d as u64),
                        })
                        .collect();
                    distances.sort_by_key(|d| (d.km.unwrap_or(u64::MAX), d.pop.clone()));
                    seen = Some(StepFacts::GeoNearest {
                        client: facts.geo.map(client_place),
                        band_km: *band_km,
                        distances: if located.is_some() { distances } else { Vec::new() },
                    });
                }
                match located {
                    Some((g, client)) => {
                        let band = (*band_km).max(1) as f64;
                        if tracing {
                            let _ = write!(detail, "client at {:.2},{:.2} ({}); ", client.0, client.1, place(g));
                            let mut d: Vec<(u64, &str)> = spec
                                .candidates
                                .iter()
                                .map(|&p| {
                                    (
                                        km(client, p).map_or(u64::MAX, |d| d as u64),
                                        pops[p.index()].name.as_str(),
                                    )
                                })
                                .collect();
                            d.sort();
                            let parts: Vec<String> = d
                                .iter()
                                .map(|(km, n)| {
                                    if *km == u64::MAX {
                                        format!("{n} unknown")
                                    } else {
                                        format!("{n} {km} km")
                                    }
                                })
                                .collect();
                            let _ = write!(detail, "distances {}; band {} km", parts.join(", "), band_km);
                        }
                        refine(&mut tiers, |p| km(client, p).map_or(u64::MAX, |d| (d / band) as u64));
                    }
                    None => {
                        if tracing {
                            detail.push_str(match facts.geo {
                                Some(_) => "GeoIP record has no coordinates",
                                None => "no GeoIP record for the client",
                            });
                        }
                    }
                }
            }
            Policy::GeoMap { countries, continents } => {
                let hit = facts.geo.and_then(|g| {
                    let by_country = g
                        .country
                        .as_ref()
                        .and_then(|c| countries.get(c).map(|l| (format!("country {c}"), l)));
                    by_country.or_else(|| {
                        g.continent
                            .as_ref()
                            .and_then(|c| continents.get(c).map(|l| (format!("continent {c}"), l)))
                    })
                });
                if tracing {
                    seen = Some(StepFacts::GeoMap {
                        client: facts.geo.map(client_place),
                        matched: hit.as_ref().map(|(why, _)| why.clone()),
                        pops: hit.as_ref().map_or_else(Vec::new, |(_, l)| name_list(l)),
                    });
                }
                match hit {
                    Some((why, list)) => {
                        if tracing {
                            let _ = write!(detail, "{why} -> [{}]", names(pops, list));
                        }
                        refine(&mut tiers, position_key(list));
                    }
                    None => {
                        if tracing {
                            match facts.geo {
                                Some(g) => {
                                    let _ = write!(detail, "no map entry for {}", place(g));
                                }
                                None => detail.push_str("no GeoIP record for the client"),
                            }
                        }
                    }
                }
            }
            Policy::Priority(list) => {
                if tracing {
                    let _ = write!(detail, "order [{}]", names(pops, list));
                    seen = Some(StepFacts::Order {
                        pops: name_list(list),
                        applied: true,
                    });
                }
                refine(&mut tiers, position_key(list));
            }
            Policy::Default(list) => {
                if tracing {
                    seen = Some(StepFacts::Order {
                        pops: name_list(list),
                        applied: !ordered,
                    });
                }
                if ordered {
                    if tracing {
                        detail.push_str("skipped: earlier policies already ordered the candidates");
                    }
                } else {
                    if tracing {
                        let _ = write!(detail, "nothing was known of the client; order [{}]", names(pops, list));
                    }
                    refine(&mut tiers, position_key(list));
                }
            }
            Policy::SuperSparrow => {
                let asns: Vec<&[Asn]> = pops.iter().map(|p| p.asns.as_slice()).collect();
                let mut d = Vec::new();
                hop_distances(facts.views, &asns, &facts.paths, &mut d);
                if tracing {
                    describe_paths(&mut detail, pops, facts);
                    let _ = write!(detail, "; hops {}", hop_list(pops, &spec.candidates, &d));
                    seen = Some(StepFacts::Routing {
                        views: view_paths(pops, facts),
                        hops: pop_hops(pops, &spec.candidates, &d),
                        scores: Vec::new(),
                        hop_km: None,
                        band_km: None,
                        client_located: facts.geo.and_then(|g| g.lat_lon).is_some(),
                    });
                }
                refine(&mut tiers, |p| d[p.index()].map_or(u64::MAX, u64::from));
            }
            Policy::Blended { band_km, hop_km } => {
                let asns: Vec<&[Asn]> = pops.iter().map(|p| p.asns.as_slice()).collect();
                let mut d = Vec::new();
                hop_distances(facts.views, &asns, &facts.paths, &mut d);
                let dmin = spec.candidates.iter().filter_map(|p| d[p.index()]).min();
                let client = facts.geo.and_then(|g| g.lat_lon);
                // Unknown hops cost nothing: no data is not evidence of a detour.
                let score = |p: PopIdx| -> Option<f64> {
                    if unreachable(facts.views, &facts.paths, p) {
                        return None;
                    }
                    let km = match client {
                        Some(c) => pops[p.index()].location.map_or(f64::MAX / 4.0, |l| distance_km(c, l)),
                        None => 0.0,
                    };
                    let extra = match (d[p.index()], dmin) {
                        (Some(x), Some(m)) => x - m,
                        _ => 0,
                    };
                    Some(km + f64::from(*hop_km) * f64::from(extra))
                };
                let band = f64::from((*band_km).max(1));
                if tracing {
                    describe_paths(&mut detail, pops, facts);
                    if client.is_none() {
                        detail.push_str("; no client location: hops only");
                    }
                    let mut parts: Vec<(u64, String)> = spec
                        .candidates
                        .iter()
                        .map(|&p| {
                            let n = &pops[p.index()].name;
                            match score(p) {
                                None => (u64::MAX, format!("{n} no route")),
                                Some(sc) => {
                                    let hops = d[p.index()].map_or("?".to_string(), |h| h.to_string());
                                    (sc as u64, format!("{n} {} (hops {hops})", sc as u64))
                                }
                            }
                        })
                        .collect();
                    parts.sort();
                    let v: Vec<String> = parts.into_iter().map(|x| x.1).collect();
                    let _ = write!(
                        detail,
                        "; score km + {hop_km} km per extra hop: {}; band {band_km} km",
                        v.join(", ")
                    );
                    let mut scores: Vec<PopScore> = spec
                        .candidates
                        .iter()
                        .map(|&p| PopScore {
                            pop: pops[p.index()].name.clone(),
                            score_km: score(p).map(|s| s as u64),
                            hops: d[p.index()],
                        })
                        .collect();
                    scores.sort_by_key(|s| (s.score_km.unwrap_or(u64::MAX), s.pop.clone()));
                    seen = Some(StepFacts::Routing {
                        views: view_paths(pops, facts),
                        hops: pop_hops(pops, &spec.candidates, &d),
                        scores,
                        hop_km: Some(*hop_km),
                        band_km: Some(*band_km),
                        client_located: client.is_some(),
                    });
                }
                refine(&mut tiers, |p| score(p).map_or(u64::MAX, |s| (s / band) as u64));
            }
            Policy::AsMap { source, map } => {
                let origin = facts
                    .paths
                    .iter()
                    .enumerate()
                    .find_map(|(i, p)| p.and_then(|p| p.origin().map(|o| (i, o))));
                let hit = origin.and_then(|(i, o)| map.get(&o).map(|l| (i, o, l)));
                if tracing {
                    seen = Some(StepFacts::AsMap {
                        origin: origin.map(|(_, o)| o),
                        view: origin.map(|(i, _)| facts.views[i].name.clone()),
                        pops: hit.map_or_else(Vec::new, |(_, _, l)| name_list(l)),
                    });
                }
                match hit {
                    Some((vi, o, list)) => {
                        if tracing {
                            let _ = write!(
                                detail,
                                "{source}: origin AS{o} (view {}) -> [{}]",
                                facts.views[vi].name,
                                names(pops, list)
                            );
                        }
                        refine(&mut tiers, position_key(list));
                    }
                    None => {
                        if tracing {
                            match origin {
                                Some((_, o)) => {
                                    let _ = write!(detail, "{source}: no entry for origin AS{o}");
                                }
                                None => detail.push_str("no view has a route to the client"),
                            }
                        }
                    }
                }
            }
            Policy::Latency => match facts.latency {
                Some((unit, u)) => {
                    if tracing {
                        let at = unit
                            .map(|p| format!("unit {p}"))
                            .unwrap_or_else(|| "the client's unit".into());
                        let from = u
                            .borrowed_from
                            .as_ref()
                            .map(|b| format!(" (from {b})"))
                            .unwrap_or_default();
                        let figures: Vec<String> = u
                            .measured
                            .iter()
                            .map(|m| {
                                format!(
                                    "{} {} ms ({}-{}, {:.0} samples)",
                                    pops[m.pop.index()].name,
                                    ms(m.median_ms),
                                    ms(m.low_ms),
                                    ms(m.high_ms),
                                    m.samples
                                )
                            })
                            .collect();
                        let _ = write!(detail, "{at}{from}: {}", figures.join(", "));
                        seen = Some(StepFacts::Latency {
                            unit: unit.map(|p| p.to_string()),
                            borrowed_from: u.borrowed_from.clone(),
                            pops: u
                                .measured
                                .iter()
                                .map(|m| PopLatency {
                                    pop: pops[m.pop.index()].name.clone(),
                                    median_ms: m.median_ms,
                                    low_ms: m.low_ms,
                                    high_ms: m.high_ms,
                                    samples: m.samples,
                                })
                                .collect(),
                        });
                    }
                    refine(&mut tiers, |p| u.key(p));
                }
                None => {
                    if tracing {
                        detail.push_str("not enough measurements for the client's unit");
                        seen = Some(StepFacts::Latency {
                            unit: None,
                            borrowed_from: None,
                            pops: Vec::new(),
                        });
                    }
                }
            },
            Policy::Weighted(mode) => {
                if tracing {
                    match mode {
                        WeightMode::Random => {
                            detail.push_str("random by weight within each tier, per query");
                            seen = Some(StepFacts::Weighted {
                                mode: "random".into(),
                                v4_len: None,
                                v6_len: None,
                            });
                        }
                        WeightMode::Hash { v4_len, v6_len } => {
                            let _ = write!(detail, "rendezvous hash of the client's /{v4_len} (IPv4) or /{v6_len} (IPv6) by weight within each tier");
                            seen = Some(StepFacts::Weighted {
                                mode: "hash".into(),
                                v4_len: Some(*v4_len),
                                v6_len: Some(*v6_len),
                            });
                        }
                    }
                }
            }
        }
        if tiers.len() != before {
            ordered = true;
        }
        if let (Some(t), Some(facts)) = (trace.as_deref_mut(), seen) {
            t.push(Step {
                policy: policy.kind().to_string(),
                facts,
                detail,
                tiers: tiers.clone(),
            });
        }
    }
    tiers
}

fn client_place(g: &GeoLocation) -> ClientPlace {
    ClientPlace {
        lat: g.lat_lon.map(|l| l.0),
        lon: g.lat_lon.map(|l| l.1),
        city: g.city.clone(),
        country: g.country.clone(),
        continent: g.continent.clone(),
    }
}

/// The views in configuration order (their POPs' order), not the order the
/// RIB made them in.
fn views_in_order<'a>(facts: &'a Facts<'_>) -> Vec<(&'a ViewFacts, Option<&'a BgpPath>)> {
    let mut v: Vec<_> = facts.views.iter().zip(facts.paths.iter().copied()).collect();
    v.sort_by_key(|(v, _)| v.pop);
    v
}

fn view_paths(pops: &[PopInfo], facts: &Facts<'_>) -> Vec<ViewPath> {
    views_in_order(facts)
        .into_iter()
        .map(|(v, p)| ViewPath {
            view: v.name.clone(),
            pop: pops[v.pop.index()].name.clone(),
            as_path: p.map(|p| p.asns.to_vec()),
            path_length: p.map(|p| p.len),
            prefix: None,
        })
        .collect()
}

fn pop_hops(pops: &[PopInfo], candidates: &[PopIdx], d: &[Option<u32>]) -> Vec<PopHops> {
    let mut v: Vec<PopHops> = candidates
        .iter()
        .map(|p| PopHops {
            pop: pops[p.index()].name.clone(),
            hops: d[p.index()],
        })
        .collect();
    v.sort_by_key(|h| (h.hops.unwrap_or(u32::MAX), h.pop.clone()));
    v
}

fn describe_paths(out: &mut String, pops: &[PopInfo], facts: &Facts<'_>) {
    if facts.views.is_empty() {
        out.push_str("no BGP views");
        return;
    }
    for (i, (v, p)) in views_in_order(facts).into_iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let _ = write!(out, "view {} ({}): ", v.name, pops[v.pop.index()].name);
        match p {
            Some(p) => {
                let _ = write!(out, "path {p} (length {})", p.len);
            }
            None => out.push_str("no route"),
        }
    }
}

fn hop_list(pops: &[PopInfo], candidates: &[PopIdx], d: &[Option<u32>]) -> String {
    let mut v: Vec<(u32, &str)> = candidates
        .iter()
        .map(|p| (d[p.index()].unwrap_or(u32::MAX), pops[p.index()].name.as_str()))
        .collect();
    v.sort();
    v.iter()
        .map(|(h, n)| {
            if *h == u32::MAX {
                format!("{n} unknown")
            } else {
                format!("{n} {h}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn place(g: &GeoLocation) -> String {
    let mut s = String::new();
    if let Some(c) = &g.city {
        s.push_str(c);
        s.push_str(", ");
    }
    s.push_str(g.country.as_deref().unwrap_or("??"));
    s.push('/');
    s.push_str(g.continent.as_deref().unwrap_or("??"));
    s
}

#[cfg(test)]
mod warming_tests {
    use super::*;

    #[test]
    fn services_that_only_bgp_orders_servfail_while_warming() {
        let d = Warming::default_for;
        assert_eq!(d(&[Policy::SuperSparrow]), Warming::Servfail);
        assert_eq!(
            d(&[Policy::SuperSparrow, Policy::Weighted(WeightMode::Random)]),
            Warming::Servfail
        );
        assert_eq!(
            d(&[Policy::SuperSparrow, Policy::GeoNearest { band_km: 0 }]),
            Warming::Policies
        );
        // Blended ranks by geography without views.
        assert_eq!(
            d(&[Policy::Blended {
                band_km: 0,
                hop_km: 500
            }]),
            Warming::Policies
        );
        assert_eq!(d(&[Policy::GeoNearest { band_km: 0 }]), Warming::Policies);
        assert_eq!(d(&[]), Warming::Policies);
    }
}
