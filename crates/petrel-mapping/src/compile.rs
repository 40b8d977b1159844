//! Build side: policies -> per-family tables of interned rankings.

use crate::bgp::BgpData;
use crate::geo::GeoTable;
use crate::latency::LatencyData;
use crate::policy::{evaluate, Facts, Policy, PopInfo, ServiceSpec, Tiers, WeightMode};
use crate::table::{Partition, Table, NONE};
use petrel_types::{Family, PopIdx};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Ranked tiers, flattened: `pops[tier_ends[i-1]..tier_ends[i]]` is tier i.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ranking {
    pub pops: Box<[PopIdx]>,
    pub tier_ends: Box<[u16]>,
}

impl Ranking {
    fn from_tiers(t: &Tiers) -> Ranking {
        let mut pops = Vec::new();
        let mut ends = Vec::new();
        for tier in t {
            pops.extend_from_slice(tier);
            ends.push(pops.len() as u16);
        }
        Ranking {
            pops: pops.into(),
            tier_ends: ends.into(),
        }
    }

    pub fn tiers(&self) -> impl Iterator<Item = &[PopIdx]> + '_ {
        let mut start = 0usize;
        self.tier_ends.iter().map(move |&e| {
            let t = &self.pops[start..e as usize];
            start = e as usize;
            t
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PopMeta {
    pub weight: u32,
    pub has_v4: bool,
    pub has_v6: bool,
}

/// A service compiled for the select path.
#[derive(Debug)]
pub struct CompiledService {
    pub spec: ServiceSpec,
    pub(crate) v4: Table,
    pub(crate) v6: Table,
    pub(crate) rankings: Vec<Ranking>,
    /// Per `Cidr` policy: its own tables (list ids), for explanations.
    pub(crate) cidr_tables: Vec<[Table; 2]>,
    pub(crate) meta: Vec<PopMeta>,
    pub(crate) weighted: Option<WeightMode>,
    /// The routing views the tables were compiled from (BGP policies only).
    pub(crate) bgp: Option<Arc<BgpData>>,
    /// The measured latency they were compiled from (latency policy only).
    pub(crate) latency: Option<Arc<LatencyData>>,
}

impl CompiledService {
    pub fn table(&self, f: Family) -> &Table {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// Number of distinct rankings (a measure of how much the policies split
    /// the address space).
    pub fn ranking_count(&self) -> usize {
        self.rankings.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

fn family_index(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// Compile one service. `geo` is required when the service has geo policies
/// (the config layer checks that); without it they see no data.
pub fn compile(spec: ServiceSpec, pops: &[PopInfo], geo: Option<&GeoTable>) -> CompiledService {
    compile_with(spec, pops, geo, None, None)
}

/// Compile one service with routing views for its BGP policies and
/// measured latency for its latency policy; without them, those policies
/// see no data.
pub fn compile_with(
    spec: ServiceSpec,
    pops: &[PopInfo],
    geo: Option<&GeoTable>,
    bgp: Option<&Arc<BgpData>>,
    latency: Option<&Arc<LatencyData>>,
) -> CompiledService {
    let uses_geo = spec.uses_geo();
    let geo = if uses_geo { geo } else { None };
    let bgp = if spec.uses_bgp() { bgp } else { None };
    let latency = if spec.uses_latency() { latency } else { None };
    let latency_parts = latency.map(|l| {
        [
            Partition::from_prefixes(Family::V4, &mut l.entries_of(Family::V4)),
            Partition::from_prefixes(Family::V6, &mut l.entries_of(Family::V6)),
        ]
    });
    let views = bgp.map_or(&[][..], |b| b.views.as_slice());
    let mut cidr_parts: Vec<[Partition; 2]> = Vec::new();
    for p in &spec.policies {
        if let Policy::Cidr(map) = p {
            let mut e4: Vec<_> = map
                .entries
                .iter()
                .copied()
                .filter(|(p, _)| p.family() == Family::V4)
                .collect();
            let mut e6: Vec<_> = map
                .entries
                .iter()
                .copied()
                .filter(|(p, _)| p.family() == Family::V6)
                .collect();
            cidr_parts.push([
                Partition::from_prefixes(Family::V4, &mut e4),
                Partition::from_prefixes(Family::V6, &mut e6),
            ]);
        }
    }
    let cidr_maps: Vec<_> = spec
        .policies
        .iter()
        .filter_map(|p| match p {
            Policy::Cidr(m) => Some(m),
            _ => None,
        })
        .collect();

    let mut rankings: Vec<Ranking> = Vec::new();
    let mut ranking_ids: FxHashMap<Tiers, u32> = FxHashMap::default();
    let mut tables: Vec<Table> = Vec::with_capacity(2);
    for family in [Family::V4, Family::V6] {
        let fi = family_index(family);
        let mut layers: Vec<&Partition> = cidr_parts.iter().map(|p| &p[fi]).collect();
        if let Some(g) = geo {
            layers.push(g.partition(family));
        }
        let view_base = layers.len();
        for v in views {
            layers.push(v.partition(family));
        }
        let latency_layer = layers.len();
        if let Some(p) = &latency_parts {
            layers.push(&p[fi]);
        }
        let uniform = Partition::uniform(NONE);
        if layers.is_empty() {
            layers.push(&uniform);
        }
        let mut memo: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
        let combined = Partition::combine(&layers, |tuple| {
            if let Some(&id) = memo.get(tuple) {
                return id;
            }
            let facts = Facts {
                cidr: cidr_maps
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let v = tuple[i];
                        (v != NONE).then(|| (m.lists[v as usize].as_slice(), None))
                    })
                    .collect(),
                geo: geo.and_then(|g| {
                    let v = tuple[cidr_maps.len()];
                    g.locations.get(v as usize)
                }),
                views,
                paths: (0..views.len())
                    .map(|i| {
                        let v = tuple[view_base + i];
                        bgp.and_then(|b| b.paths.get(v as usize))
                    })
                    .collect(),
                latency: latency.and_then(|l| {
                    let v = *tuple.get(latency_layer)?;
                    l.units.get(v as usize).map(|u| (None, u))
                }),
            };
            let tiers = evaluate(&spec, pops, &facts, None);
            let id = *ranking_ids.entry(tiers).or_insert_with_key(|t| {
                rankings.push(Ranking::from_tiers(t));
                (rankings.len() - 1) as u32
            });
            memo.insert(tuple.to_vec(), id);
            id
        });
        tables.push(Table::new(family, &combined));
    }
    let v6 = tables.pop().expect("two families");
    let v4 = tables.pop().expect("two families");
    let cidr_tables = cidr_parts
        .iter()
        .map(|[p4, p6]| [Table::new(Family::V4, p4), Table::new(Family::V6, p6)])
        .collect();
    let meta = pops
        .iter()
        .map(|p| PopMeta {
            weight: p.weight,
            has_v4: p.has_v4(),
            has_v6: p.has_v6(),
        })
        .collect();
    let weighted = spec.policies.iter().find_map(|p| match p {
        Policy::Weighted(m) => Some(*m),
        _ => None,
    });
    CompiledService {
        spec,
        v4,
        v6,
        rankings,
        cidr_tables,
        meta,
        weighted,
        bgp: bgp.cloned(),
        latency: latency.cloned(),
    }
}
