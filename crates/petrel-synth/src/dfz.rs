//! The real DFZ prefix list with origin ASes that the crate `iptrie`
//! 0.11.2 ships as `benches/bgpas.lpm` (1,072,529 IPv4 + 176,388 IPv6
//! prefixes; MIT). Benchmarks and tests that list `iptrie = "=0.11.2"` as a
//! dev-dependency get it into cargo's registry; this finds it there.

use crate::{random_metros, PopPlace, Shape, World};
use petrel_types::Prefix;
use std::path::PathBuf;

/// The five POPs of the full-table benchmarks.
pub const POPS: [PopPlace; 5] = [
    ("ams", 64500, 52.37, 4.90, "EU"),
    ("iad", 64501, 38.95, -77.45, "NA"),
    ("sjc", 64502, 37.36, -121.93, "NA"),
    ("sin", 64503, 1.35, 103.82, "AS"),
    ("gru", 64504, -23.43, -46.47, "SA"),
];

/// The full table with a synthetic world around it: each POP's preferred
/// path to every origin (see [`World::stub_paths`]).
pub struct FullViews {
    pub table: Vec<(Prefix, u32)>,
    /// Distinct origin ASNs, sorted.
    pub origins: Vec<u32>,
    pub world: World,
    /// Per POP, per origin (in `origins` order).
    pub paths: Vec<Vec<Option<Vec<u32>>>>,
}

impl FullViews {
    /// `None` when `bgpas.lpm` is not in cargo's registry.
    pub fn generate() -> Option<FullViews> {
        let table = load()?;
        let mut origins: Vec<u32> = table.iter().map(|e| e.1).collect();
        origins.sort();
        origins.dedup();
        let shape = Shape {
            nets_per_access: 1,
            ..Shape::default()
        };
        let world = World::generate(random_metros(60, 3), &POPS, &shape);
        let paths = world.stub_paths(&origins);
        Some(FullViews {
            table,
            origins,
            world,
            paths,
        })
    }

    /// POP `pop`'s preferred path to the prefixes of `origin`.
    pub fn path(&self, pop: usize, origin: u32) -> Option<&Vec<u32>> {
        let i = self.origins.binary_search(&origin).ok()?;
        self.paths[pop][i].as_ref()
    }
}

pub fn path() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let src = home.join("registry").join("src");
    std::fs::read_dir(src).ok()?.flatten().find_map(|d| {
        let p = d.path().join("iptrie-0.11.2").join("benches").join("bgpas.lpm");
        p.exists().then_some(p)
    })
}

/// `(prefix, origin AS)` for every line; `None` if the file is not there.
pub fn load() -> Option<Vec<(Prefix, u32)>> {
    let text = std::fs::read_to_string(path()?).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (p, a) = l.split_once(' ')?;
                Some((p.parse().ok()?, a.trim().parse().ok()?))
            })
            .collect(),
    )
}
