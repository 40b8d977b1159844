//! The real DFZ prefix list with origin ASes that the crate `iptrie`
//! 0.11.2 ships as `benches/bgpas.lpm` (1,072,529 IPv4 + 176,388 IPv6
//! prefixes; MIT). Benchmarks and tests that list `iptrie = "=0.11.2"` as a
//! dev-dependency get it into cargo's registry; this finds it there.

use petrel_types::Prefix;
use std::path::PathBuf;

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
