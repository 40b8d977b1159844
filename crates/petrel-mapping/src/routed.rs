//! What the measurement loop needs of the routing views beyond the paths:
//! which BGP prefix a client is in (its map unit), which prefix covers
//! that one (where a thin unit borrows from), and which prefixes changed
//! their best AS path between two publications.
//!
//! The views' partitions keep only the path per address range, so the
//! prefix boundaries are kept here, in one more partition per family whose
//! value packs the length of the most specific prefix covering an address
//! and the length of the prefix covering that one. A prefix is then the
//! address truncated to its length: a full table costs about as much as
//! one more view, and only when the latency policy asks for BGP units.

use crate::bgp::BgpData;
use crate::table::{Partition, PartitionBuilder, NONE};
use crate::BgpPath;
use petrel_types::{Family, Prefix};
use rustc_hash::FxHashMap;

/// The prefixes of every view (their union), by where they begin and end.
#[derive(Clone, Debug, Default)]
pub struct PrefixIndex {
    parts: [Partition; 2],
    prefixes: usize,
}

const HAS_PARENT: u32 = 1 << 16;

fn pack(len: u8, parent: Option<u8>) -> u32 {
    len as u32 | parent.map_or(0, |p| (p as u32) << 8 | HAS_PARENT)
}

impl PrefixIndex {
    /// From the prefixes of every view, in any order, duplicates allowed.
    pub fn build(mut prefixes: Vec<Prefix>) -> PrefixIndex {
        prefixes.sort_unstable_by_key(|p| (p.family() == Family::V6, p.bits(), p.len()));
        prefixes.dedup();
        let mut out = PrefixIndex {
            prefixes: prefixes.len(),
            ..PrefixIndex::default()
        };
        for (i, fam) in [Family::V4, Family::V6].into_iter().enumerate() {
            let mut b = PartitionBuilder::new(fam);
            // The prefixes open around the current one, outermost first.
            let mut open: Vec<Prefix> = Vec::new();
            for p in prefixes.iter().filter(|p| p.family() == fam) {
                while open.last().is_some_and(|o| !o.contains(p)) {
                    open.pop();
                }
                b.push(*p, pack(p.len(), open.last().map(Prefix::len)));
                open.push(*p);
            }
            out.parts[i] = b.finish();
        }
        out
    }

    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.parts.iter().map(Partition::heap_bytes).sum()
    }

    fn at(&self, p: &Prefix) -> Option<(u8, Option<u8>)> {
        let part = &self.parts[(p.family() == Family::V6) as usize];
        // Not built (no index asked for): nothing known.
        if part.values.is_empty() {
            return None;
        }
        let v = part.get(p.bits());
        (v != NONE).then(|| ((v & 0xff) as u8, (v & HAS_PARENT != 0).then_some((v >> 8 & 0xff) as u8)))
    }

    /// The most specific prefix holding `client` (an address or a block).
    pub fn prefix_of(&self, client: &Prefix) -> Option<Prefix> {
        let (len, parent) = self.at(client)?;
        if len <= client.len() {
            return Some(client.truncate(len));
        }
        // A more specific prefix starts where the block does; its parent
        // may still hold the whole block.
        parent.filter(|&l| l <= client.len()).map(|l| client.truncate(l))
    }

    /// The prefix that covers `unit` and is less specific than it.
    pub fn covering(&self, unit: &Prefix) -> Option<Prefix> {
        let (len, parent) = self.at(unit)?;
        let l = if len < unit.len() { len } else { parent? };
        (l < unit.len()).then(|| unit.truncate(l))
    }

    /// Every most specific prefix, once, in address order (prefixes wholly
    /// covered by more specifics do not appear).
    pub fn iter(&self) -> impl Iterator<Item = Prefix> + '_ {
        [Family::V4, Family::V6]
            .into_iter()
            .enumerate()
            .flat_map(move |(i, fam)| {
                let part = &self.parts[i];
                let width = u32::from(fam.max_len());
                let top = u128::MAX >> (128 - width);
                let starts: Vec<u128> = part.starts().collect();
                // The prefixes around the current range that were given out: an
                // outer prefix comes back after each more specific one inside it.
                let mut open: Vec<Prefix> = Vec::new();
                let mut out = Vec::new();
                for (k, &v) in part.values.iter().enumerate() {
                    if v == NONE {
                        continue;
                    }
                    let len = (v & 0xff) as u8;
                    let end = starts.get(k + 1).map_or(top, |n| n - 1);
                    // Equal neighbours merge in a partition: a range of one
                    // length is every block of that length it spans.
                    let step = 1u128.checked_shl(width - u32::from(len)).unwrap_or(0);
                    let mut at = Prefix::from_bits(fam, starts[k], fam.max_len()).truncate(len).bits();
                    loop {
                        let p = Prefix::from_bits(fam, at, len);
                        while open.last().is_some_and(|o| !o.contains(&p)) {
                            open.pop();
                        }
                        if open.last() != Some(&p) {
                            open.push(p);
                            out.push(p);
                        }
                        match at.checked_add(step) {
                            Some(n) if step > 0 && n <= end => at = n,
                            _ => break,
                        }
                    }
                }
                out
            })
    }
}

/// A view's best path for some addresses changed between publications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathChange {
    pub view: String,
    /// The prefix, from the index of the publication that has the route
    /// (the new one, or the old one for a withdrawal), else the largest
    /// block of the changed range.
    pub prefix: Prefix,
    pub old: Option<BgpPath>,
    pub new: Option<BgpPath>,
}

/// Every change of a view's best path from `old` to `new`, at most `max`
/// (the second value counts those left out). Views new in `new`, or empty
/// in `old`, are left out: their first table is not a change of path.
pub fn path_changes(old: &BgpData, new: &BgpData, max: usize) -> (Vec<PathChange>, usize) {
    let mut out = Vec::new();
    let mut left_out = 0;
    for nv in &new.views {
        let Some(ov) = old.views.iter().find(|v| v.name == nv.name && v.routes > 0) else {
            continue;
        };
        for (i, fam) in [Family::V4, Family::V6].into_iter().enumerate() {
            // Pairs of (old, new) path ids that differ, interned so that
            // adjacent ranges of one change merge.
            let mut pairs: Vec<(u32, u32)> = Vec::new();
            let mut ids: FxHashMap<(u32, u32), u32> = FxHashMap::default();
            let same = |a: u32, b: u32| match (a, b) {
                (NONE, NONE) => true,
                (NONE, _) | (_, NONE) => false,
                (a, b) => old.paths[a as usize] == new.paths[b as usize],
            };
            let diff = Partition::combine(&[&ov.parts[i], &nv.parts[i]], |t| {
                if same(t[0], t[1]) {
                    return NONE;
                }
                *ids.entry((t[0], t[1])).or_insert_with(|| {
                    pairs.push((t[0], t[1]));
                    pairs.len() as u32 - 1
                })
            });
            let starts: Vec<u128> = diff.starts().collect();
            let mut last: Option<(Prefix, u32)> = None;
            for (k, &v) in diff.values.iter().enumerate() {
                if v == NONE {
                    continue;
                }
                let (a, b) = pairs[v as usize];
                let s = starts[k];
                let e = starts
                    .get(k + 1)
                    .map_or(u128::MAX >> (128 - fam.max_len() as u32), |n| n - 1);
                let at = Prefix::from_bits(fam, s, fam.max_len());
                let index = if b != NONE { &new.prefixes } else { &old.prefixes };
                let prefix = index
                    .prefix_of(&at)
                    .unwrap_or_else(|| at.truncate(crate::table::scope(s, s, e, fam.max_len() as u32)));
                if last == Some((prefix, v)) {
                    continue;
                }
                last = Some((prefix, v));
                if out.len() >= max {
                    left_out += 1;
                    continue;
                }
                out.push(PathChange {
                    view: nv.name.clone(),
                    prefix,
                    old: (a != NONE).then(|| old.paths[a as usize].clone()),
                    new: (b != NONE).then(|| new.paths[b as usize].clone()),
                });
            }
        }
    }
    (out, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BgpDataBuilder;
    use petrel_types::PopIdx;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_and_their_covering_prefix() {
        let ix = PrefixIndex::build(vec![
            p("10.0.0.0/8"),
            p("10.1.0.0/16"),
            p("10.1.2.0/24"),
            p("10.1.0.0/16"),
            p("2001:db8::/32"),
            // Neighbours of one length merge in the partition.
            p("20.0.0.0/24"),
            p("20.0.1.0/24"),
            p("20.0.2.0/24"),
        ]);
        assert_eq!(ix.len(), 7);
        let host = |s: &str| Prefix::host(s.parse().unwrap());
        assert_eq!(ix.prefix_of(&host("10.1.2.3")), Some(p("10.1.2.0/24")));
        assert_eq!(ix.prefix_of(&host("10.1.3.3")), Some(p("10.1.0.0/16")));
        assert_eq!(ix.prefix_of(&host("10.9.3.3")), Some(p("10.0.0.0/8")));
        assert_eq!(ix.prefix_of(&host("11.0.0.1")), None);
        assert_eq!(ix.prefix_of(&host("2001:db8::1")), Some(p("2001:db8::/32")));
        assert_eq!(ix.covering(&p("10.1.2.0/24")), Some(p("10.1.0.0/16")));
        assert_eq!(ix.covering(&p("10.1.0.0/16")), Some(p("10.0.0.0/8")));
        assert_eq!(ix.covering(&p("10.0.0.0/8")), None);
        // A fixed /24 unit inside a /16 route: the /16 covers it.
        assert_eq!(ix.covering(&p("10.1.7.0/24")), Some(p("10.1.0.0/16")));
        // A block that starts with a more specific prefix.
        assert_eq!(ix.prefix_of(&p("10.1.2.0/23")), Some(p("10.1.0.0/16")));
        let all: Vec<Prefix> = ix.iter().collect();
        assert_eq!(
            all,
            vec![
                p("10.0.0.0/8"),
                p("10.1.0.0/16"),
                p("10.1.2.0/24"),
                p("20.0.0.0/24"),
                p("20.0.1.0/24"),
                p("20.0.2.0/24"),
                p("2001:db8::/32")
            ]
        );
        assert_eq!(ix.prefix_of(&host("20.0.1.9")), Some(p("20.0.1.0/24")));
    }

    fn data(routes: &[(&str, &[u32])]) -> BgpData {
        let mut b = BgpDataBuilder::new();
        let rs: Vec<(Prefix, u32)> = routes
            .iter()
            .map(|(pre, path)| (p(pre), b.path_id(path.iter().copied(), path.len() as u32)))
            .collect();
        let prefixes = rs.iter().map(|r| r.0).collect();
        b.add_view("ams", PopIdx(0), rs);
        let mut d = b.build();
        d.prefixes = PrefixIndex::build(prefixes);
        d
    }

    #[test]
    fn changes_of_best_path_are_named_by_prefix() {
        let old = data(&[
            ("10.0.0.0/8", &[1, 2]),
            ("10.1.0.0/16", &[1, 3]),
            ("192.0.2.0/24", &[4]),
        ]);
        let new = data(&[
            ("10.0.0.0/8", &[1, 2]),
            ("10.1.0.0/16", &[5, 3]),
            ("198.51.100.0/24", &[6]),
        ]);
        let (ch, left) = path_changes(&old, &new, 10);
        assert_eq!(left, 0);
        let seen: Vec<(Prefix, Option<String>, Option<String>)> = ch
            .iter()
            .map(|c| {
                (
                    c.prefix,
                    c.old.as_ref().map(|x| x.to_string()),
                    c.new.as_ref().map(|x| x.to_string()),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (p("10.1.0.0/16"), Some("1 3".into()), Some("5 3".into())),
                (p("192.0.2.0/24"), Some("4".into()), None),
                (p("198.51.100.0/24"), None, Some("6".into())),
            ]
        );
        // No change, no record; a first table is not a change.
        assert!(path_changes(&new, &new, 10).0.is_empty());
        assert!(path_changes(&BgpData::default(), &new, 10).0.is_empty());
        // Bounded.
        let (ch, left) = path_changes(&old, &new, 1);
        assert_eq!((ch.len(), left), (1, 2));
    }
}
