//! Compiled address tables: the address space cut into disjoint intervals,
//! each carrying one value.
//!
//! Why intervals and not a trie of overlapping prefixes: an ECS scope must
//! say for how large a prefix the answer really holds. With overlapping
//! prefixes the matched length would lie whenever a more specific entry with
//! a different answer sits inside the match. With disjoint intervals of
//! merged equal values the scope is exact: the largest CIDR block around the
//! client that fits in its interval (computed in O(1), see [`scope`]).
//!
//! Lookup is a 64 Ki-entry direct index on the top 16 bits (IPv4) followed
//! by a binary search inside one slot, so a lookup touches few cache lines
//! and never allocates.

use petrel_types::{Family, Prefix};

/// Sentinel for "no value" in partitions.
pub const NONE: u32 = u32::MAX;

/// A partition of one family's address space: sorted, disjoint, covering
/// intervals given by their start; each has a value (or [`NONE`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partition {
    starts: Starts,
    pub values: Vec<u32>,
}

/// Interval starts, 4 bytes each while every one fits (all of IPv4), 16
/// once one does not: a full IPv4 view or a GeoIP database then costs a
/// quarter of the memory for its starts. The form is canonical (wide
/// exactly when some start needs it), so equality can compare forms.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Starts {
    Narrow(Vec<u32>),
    Wide(Vec<u128>),
}

impl Default for Starts {
    fn default() -> Self {
        Starts::Narrow(Vec::new())
    }
}

impl Starts {
    fn push(&mut self, s: u128) {
        match self {
            Starts::Narrow(v) => match u32::try_from(s) {
                Ok(n) => v.push(n),
                Err(_) => {
                    let mut w: Vec<u128> = v.iter().map(|&x| x as u128).collect();
                    w.push(s);
                    *self = Starts::Wide(w);
                }
            },
            Starts::Wide(v) => v.push(s),
        }
    }

    fn get(&self, i: usize) -> Option<u128> {
        match self {
            Starts::Narrow(v) => v.get(i).map(|&x| x as u128),
            Starts::Wide(v) => v.get(i).copied(),
        }
    }

    /// Index of the interval holding `x` (the first start is 0).
    fn holding(&self, x: u128) -> usize {
        match self {
            Starts::Narrow(v) => match u32::try_from(x) {
                Ok(x) => v.partition_point(|&s| s <= x) - 1,
                Err(_) => v.len() - 1,
            },
            Starts::Wide(v) => v.partition_point(|&s| s <= x) - 1,
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            Starts::Narrow(v) => v.shrink_to_fit(),
            Starts::Wide(v) => v.shrink_to_fit(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Starts::Narrow(v) => v.capacity() * 4,
            Starts::Wide(v) => v.capacity() * 16,
        }
    }

    fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        let (n, w) = match self {
            Starts::Narrow(v) => (Some(v.iter().map(|&x| x as u128)), None),
            Starts::Wide(v) => (None, Some(v.iter().copied())),
        };
        n.into_iter().flatten().chain(w.into_iter().flatten())
    }
}

/// Builds a [`Partition`] from prefixes pushed in (address, length) order,
/// without holding them: a full routing view streams straight in.
pub struct PartitionBuilder {
    family: Family,
    out: Partition,
    /// Open prefixes: (last address, value).
    stack: Vec<(u128, u32)>,
    /// Next address not yet emitted; None once the whole space is done.
    cursor: Option<u128>,
}

impl PartitionBuilder {
    pub fn new(family: Family) -> Self {
        PartitionBuilder {
            family,
            out: Partition::default(),
            stack: Vec::new(),
            cursor: Some(0),
        }
    }

    fn close_until(&mut self, start: u128) {
        while let Some(&(end, v)) = self.stack.last() {
            if end >= start {
                break;
            }
            if let Some(c) = self.cursor {
                if c <= end {
                    self.out.push(c, v);
                    self.cursor = end.checked_add(1);
                }
            }
            self.stack.pop();
        }
    }

    /// The next prefix; callers keep (address, length) order.
    pub fn push(&mut self, p: Prefix, v: u32) {
        debug_assert_eq!(p.family(), self.family);
        let (s, e) = (p.bits(), p.last());
        self.close_until(s);
        if let Some(c) = self.cursor {
            if c < s {
                self.out.push(c, self.stack.last().map_or(NONE, |t| t.1));
                self.cursor = Some(s);
            }
        }
        self.stack.push((e, v));
    }

    pub fn finish(mut self) -> Partition {
        self.close_until(family_max(self.family));
        // Everything left on the stack ends at the top of the space.
        if let Some(c) = self.cursor {
            self.out.push(c, self.stack.last().map_or(NONE, |t| t.1));
        }
        self.out.starts.shrink_to_fit();
        self.out.values.shrink_to_fit();
        self.out
    }
}

fn family_max(f: Family) -> u128 {
    match f {
        Family::V4 => u32::MAX as u128,
        Family::V6 => u128::MAX,
    }
}

impl Partition {
    fn push(&mut self, start: u128, value: u32) {
        if self.values.last() == Some(&value) {
            return;
        }
        self.starts.push(start);
        self.values.push(value);
    }

    /// Build from possibly nested prefixes of one family: every address gets
    /// the value of the longest prefix covering it (later duplicates win).
    pub fn from_prefixes(family: Family, entries: &mut [(Prefix, u32)]) -> Partition {
        entries.sort_by_key(|(p, _)| (p.bits(), p.len()));
        let mut b = PartitionBuilder::new(family);
        for &(p, v) in entries.iter() {
            b.push(p, v);
        }
        b.finish()
    }

    /// Value at an address (slow path; for building and tests).
    pub fn get(&self, x: u128) -> u32 {
        self.values[self.starts.holding(x)]
    }

    /// The intervals' starts, in order.
    pub fn starts(&self) -> impl Iterator<Item = u128> + '_ {
        self.starts.iter()
    }

    pub fn heap_bytes(&self) -> usize {
        self.starts.heap_bytes() + self.values.capacity() * 4
    }

    /// Combine several partitions of the same family: every distinct run of
    /// value tuples becomes one interval, valued by `f(tuple)`. Adjacent
    /// intervals with equal results merge.
    pub fn combine(parts: &[&Partition], mut f: impl FnMut(&[u32]) -> u32) -> Partition {
        let mut out = Partition::default();
        let mut idx = vec![0usize; parts.len()];
        let mut tuple: Vec<u32> = parts.iter().map(|p| p.values[0]).collect();
        let mut at: u128 = 0;
        loop {
            out.push(at, f(&tuple));
            // Next boundary of any partition.
            let mut next: Option<u128> = None;
            for (k, p) in parts.iter().enumerate() {
                if let Some(s) = p.starts.get(idx[k] + 1) {
                    next = Some(next.map_or(s, |n: u128| n.min(s)));
                }
            }
            let Some(n) = next else { break };
            for (k, p) in parts.iter().enumerate() {
                if p.starts.get(idx[k] + 1) == Some(n) {
                    idx[k] += 1;
                    tuple[k] = p.values[idx[k]];
                }
            }
            at = n;
        }
        out
    }

    /// A partition with one value everywhere.
    pub fn uniform(value: u32) -> Partition {
        Partition {
            starts: Starts::Narrow(vec![0]),
            values: vec![value],
        }
    }
}

/// Length of the largest CIDR block around `x` inside `[s, e]`, for a
/// `width`-bit family. See the module comment.
#[inline]
pub fn scope(x: u128, s: u128, e: u128, width: u32) -> u8 {
    // Work left-aligned in 128 bits so one formula serves both families.
    let sh = 128 - width;
    let (x, s, e) = (x << sh, s << sh, e << sh);
    let ones_e = (e >> sh).trailing_ones().min(width);
    let tz_s = if s == 0 {
        width
    } else {
        (s >> sh).trailing_zeros().min(width)
    };
    let c = (x ^ s).leading_zeros().min(width);
    let d = (x ^ e).leading_zeros().min(width);
    let l_start = (c + 1).min(width - tz_s);
    let l_end = (d + 1).min(width - ones_e);
    l_start.max(l_end) as u8
}

/// A compiled table for one family.
#[derive(Clone, Debug)]
pub struct Table {
    family: Family,
    starts4: Vec<u32>,
    starts6: Vec<u128>,
    values: Vec<u32>,
    // IPv4 only: index[i] = interval containing (i << 16); index[65536] = last.
    index: Vec<u32>,
}

/// Result of a lookup: the value and the exact scope of its interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub value: u32,
    pub scope: u8,
}

impl Table {
    pub fn new(family: Family, part: &Partition) -> Table {
        let values = part.values.clone();
        match family {
            Family::V4 => {
                let starts4: Vec<u32> = part.starts().map(|s| s as u32).collect();
                let mut index = Vec::with_capacity(65537);
                let mut i = 0usize;
                for top in 0..=65535u32 {
                    let a = top << 16;
                    while i + 1 < starts4.len() && starts4[i + 1] <= a {
                        i += 1;
                    }
                    index.push(i as u32);
                }
                index.push((starts4.len() - 1) as u32);
                Table {
                    family,
                    starts4,
                    starts6: Vec::new(),
                    values,
                    index,
                }
            }
            Family::V6 => Table {
                family,
                starts4: Vec::new(),
                starts6: part.starts().collect(),
                values,
                index: Vec::new(),
            },
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes of heap used, for metrics and capacity planning.
    pub fn heap_bytes(&self) -> usize {
        self.starts4.len() * 4 + self.starts6.len() * 16 + self.values.len() * 4 + self.index.len() * 4
    }

    /// Look up an address given as bits of this table's family.
    #[inline]
    pub fn lookup(&self, x: u128) -> Hit {
        match self.family {
            Family::V4 => {
                let x = x as u32;
                let top = (x >> 16) as usize;
                let lo = self.index[top] as usize;
                let hi = self.index[top + 1] as usize;
                let i = lo + self.starts4[lo..=hi].partition_point(|&s| s <= x) - 1;
                let s = self.starts4[i] as u128;
                let e = self.starts4.get(i + 1).map_or(u32::MAX as u128, |&n| n as u128 - 1);
                Hit {
                    value: self.values[i],
                    scope: scope(x as u128, s, e, 32),
                }
            }
            Family::V6 => {
                let i = self.starts6.partition_point(|&s| s <= x) - 1;
                let s = self.starts6[i];
                let e = self.starts6.get(i + 1).map_or(u128::MAX, |&n| n - 1);
                Hit {
                    value: self.values[i],
                    scope: scope(x, s, e, 128),
                }
            }
        }
    }

    /// Every interval as (start, end, value), for dumps and tests.
    pub fn intervals(&self) -> impl Iterator<Item = (u128, u128, u32)> + '_ {
        let n = self.values.len();
        (0..n).map(move |i| match self.family {
            Family::V4 => {
                let e = self.starts4.get(i + 1).map_or(u32::MAX as u128, |&n| n as u128 - 1);
                (self.starts4[i] as u128, e, self.values[i])
            }
            Family::V6 => {
                let e = self.starts6.get(i + 1).map_or(u128::MAX, |&n| n - 1);
                (self.starts6[i], e, self.values[i])
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn brute_scope(x: u128, s: u128, e: u128, width: u32) -> u8 {
        for len in 0..=width {
            let m = if len == 0 {
                0
            } else {
                (u128::MAX << (128 - len)) >> (128 - width)
            };
            let full = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
            let bs = x & m;
            let be = bs | (full & !m);
            if bs >= s && be <= e {
                return len as u8;
            }
        }
        unreachable!()
    }

    #[test]
    fn nested_prefixes_partition() {
        let mut e = vec![
            (p("10.0.0.0/8"), 1),
            (p("10.1.0.0/16"), 2),
            (p("10.1.2.0/24"), 3),
            (p("192.0.2.0/24"), 4),
        ];
        let part = Partition::from_prefixes(Family::V4, &mut e);
        let t = Table::new(Family::V4, &part);
        let at = |s: &str| t.lookup(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()) as u128);
        assert_eq!(at("9.255.255.255"), Hit { value: NONE, scope: 7 });
        assert_eq!(at("10.0.0.1"), Hit { value: 1, scope: 16 });
        assert_eq!(at("10.200.0.1"), Hit { value: 1, scope: 9 });
        assert_eq!(at("10.1.0.1"), Hit { value: 2, scope: 23 });
        assert_eq!(at("10.1.2.200"), Hit { value: 3, scope: 24 });
        assert_eq!(at("10.1.3.0"), Hit { value: 2, scope: 24 });
        assert_eq!(at("192.0.2.9"), Hit { value: 4, scope: 24 });
        assert_eq!(at("255.255.255.255").value, NONE);
    }

    #[test]
    fn empty_and_root() {
        let part = Partition::from_prefixes(Family::V6, &mut []);
        assert_eq!(part, Partition::uniform(NONE));
        let t = Table::new(Family::V6, &part);
        assert_eq!(t.lookup(12345), Hit { value: NONE, scope: 0 });
        let mut e = vec![(Prefix::root(Family::V4), 7)];
        let t = Table::new(Family::V4, &Partition::from_prefixes(Family::V4, &mut e));
        assert_eq!(t.lookup(1), Hit { value: 7, scope: 0 });
    }

    #[test]
    fn combine_merges_equal_results() {
        let mut a = vec![(p("10.0.0.0/8"), 1)];
        let mut b = vec![(p("10.0.0.0/9"), 5), (p("10.128.0.0/9"), 6)];
        let pa = Partition::from_prefixes(Family::V4, &mut a);
        let pb = Partition::from_prefixes(Family::V4, &mut b);
        // Result ignores the second layer: 10/9 and 10.128/9 merge back to 10/8.
        let c = Partition::combine(&[&pa, &pb], |t| t[0]);
        assert_eq!(c, pa);
        let c2 = Partition::combine(&[&pa, &pb], |t| t[0].wrapping_add(t[1]));
        assert_eq!(c2.values.len(), 4);
    }

    proptest! {
        #[test]
        fn scope_matches_brute_force(a: u32, b: u32, x: u32) {
            let (s, e) = (a.min(b) as u128, a.max(b) as u128);
            let x = s + (x as u128 % (e - s + 1));
            prop_assert_eq!(scope(x, s, e, 32), brute_scope(x, s, e, 32));
        }

        #[test]
        fn scope_v6_matches_brute_force(a: u128, b: u128, x: u128) {
            let (s, e) = (a.min(b), a.max(b));
            let span = e - s;
            let x = if span == u128::MAX { x } else { s + x % (span + 1) };
            prop_assert_eq!(scope(x, s, e, 128), brute_scope(x, s, e, 128));
        }

        /// IPv6 partitions stay in 4-byte starts while every start fits
        /// (prefixes inside ::/96) and widen when one does not; either way
        /// `get` and the compiled table give the longest match.
        #[test]
        fn v6_partition_agrees_with_naive_longest_match(
            raw in proptest::collection::vec((any::<u128>(), any::<bool>(), 0u8..=128, 0u32..4), 0..30),
            probes in proptest::collection::vec((any::<u128>(), any::<bool>()), 1..40),
        ) {
            let addr = |a: u128, low: bool| if low { a & u32::MAX as u128 } else { a };
            let mut entries: Vec<(Prefix, u32)> = raw.iter()
                .map(|&(a, low, l, v)| {
                    let l = if low { l.max(96) } else { l };
                    (Prefix::new(std::net::Ipv6Addr::from(addr(a, low)).into(), l).unwrap(), v)
                })
                .collect();
            let naive = entries.clone();
            let part = Partition::from_prefixes(Family::V6, &mut entries);
            let t = Table::new(Family::V6, &part);
            for (x, low) in probes {
                let x = addr(x, low);
                let host = Prefix::host(std::net::Ipv6Addr::from(x).into());
                let mut best: Option<(u8, usize)> = None;
                for (i, (p, _)) in naive.iter().enumerate() {
                    if p.contains(&host) && best.is_none_or(|(l, _)| p.len() >= l) {
                        best = Some((p.len(), i));
                    }
                }
                let want = best.map_or(NONE, |(_, i)| naive[i].1);
                prop_assert_eq!(part.get(x), want);
                prop_assert_eq!(t.lookup(x).value, want);
            }
        }

        #[test]
        fn table_agrees_with_naive_longest_match(
            raw in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u32..4), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 1..50),
        ) {
            let mut entries: Vec<(Prefix, u32)> = raw.iter()
                .map(|&(a, l, v)| (Prefix::new(std::net::Ipv4Addr::from(a).into(), l).unwrap(), v))
                .collect();
            let naive = entries.clone();
            let t = Table::new(Family::V4, &Partition::from_prefixes(Family::V4, &mut entries));
            for x in probes {
                let host = Prefix::host(std::net::Ipv4Addr::from(x).into());
                // Longest match; among equal prefixes the later entry wins.
                let mut best: Option<(u8, usize)> = None;
                for (i, (p, _)) in naive.iter().enumerate() {
                    if p.contains(&host) && best.is_none_or(|(l, _)| p.len() >= l) {
                        best = Some((p.len(), i));
                    }
                }
                let want = best.map_or(NONE, |(_, i)| naive[i].1);
                let hit = t.lookup(x as u128);
                prop_assert_eq!(hit.value, want);
                // The scope block around x must hold one value everywhere.
                let blk = host.truncate(hit.scope);
                for probe in [blk.bits(), blk.last()] {
                    prop_assert_eq!(t.lookup(probe).value, hit.value);
                }
            }
        }
    }
}
