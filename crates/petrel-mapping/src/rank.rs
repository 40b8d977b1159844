//! Select side: one lookup, one pass over the ranked tiers.

use crate::compile::CompiledService;
use crate::policy::{Fallback, WeightMode};
use petrel_types::{Family, PopIdx, PopState, Prefix};

/// Most POPs one answer can name.
pub const MAX_ANSWERS: usize = 16;
/// Most candidate POPs per service (tiers are walked once per answer).
pub const MAX_CANDIDATES: usize = 256;

/// The result of [`CompiledService::rank`]; reused across queries.
#[derive(Clone, Debug)]
pub struct RankOut {
    pops: [PopIdx; MAX_ANSWERS],
    len: usize,
    /// The ECS scope this answer holds for.
    pub scope: u8,
    /// No candidate was usable; `pops` is the service's fallback.
    pub fallback: bool,
    /// Exploration sent the first answer to the next-best POP.
    pub explored: bool,
}

impl Default for RankOut {
    fn default() -> Self {
        RankOut {
            pops: [PopIdx(0); MAX_ANSWERS],
            len: 0,
            scope: 0,
            fallback: false,
            explored: false,
        }
    }
}

impl RankOut {
    pub fn pops(&self) -> &[PopIdx] {
        &self.pops[..self.len]
    }

    fn push(&mut self, p: PopIdx) {
        if self.len < MAX_ANSWERS {
            self.pops[self.len] = p;
            self.len += 1;
        }
    }
}

/// Keeps the exploration draw independent of `weighted = random`'s.
const EXPLORE_SALT: u64 = 0x6a09_e667_f3bc_c909;

#[inline]
fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser: cheap, well distributed, stable across builds.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Weighted rendezvous score: lower wins. -ln(u)/w picks each POP with
/// probability proportional to its weight, and removing a POP only moves the
/// clients that had it.
#[inline]
fn score(seed: u64, pop: PopIdx, weight: u32) -> f64 {
    if weight == 0 {
        return f64::INFINITY;
    }
    let h = mix(seed ^ mix(pop.0 as u64 + 1));
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -u.ln() / weight as f64
}

impl CompiledService {
    /// Rank POPs for a client. `qfamily` is the address family the answer
    /// needs (None when any POP will do, e.g. CNAME answers); `states` is the
    /// generation's per-POP vector; `entropy` feeds `weighted = random`.
    #[inline]
    pub fn rank(&self, client: &Prefix, qfamily: Option<Family>, states: &[PopState], entropy: u64, out: &mut RankOut) {
        out.len = 0;
        out.fallback = false;
        out.explored = false;
        let hit = self.table(client.family()).lookup(client.bits());
        out.scope = hit.scope;
        let ranking = &self.rankings[hit.value as usize];
        let want = (self.spec.answers as usize).clamp(1, MAX_ANSWERS);
        let has_family = |p: PopIdx| {
            let m = &self.meta[p.index()];
            match qfamily {
                None => true,
                Some(Family::V4) => m.has_v4,
                Some(Family::V6) => m.has_v6,
            }
        };
        let usable = |p: PopIdx| has_family(p) && states.get(p.index()).is_some_and(|s| s.is_usable());
        let mut weighed = false;
        for tier in ranking.tiers() {
            if out.len >= want {
                break;
            }
            match self.weighted {
                None => {
                    for &p in tier {
                        if usable(p) {
                            out.push(p);
                            if out.len >= want {
                                break;
                            }
                        }
                    }
                }
                Some(mode) => {
                    let seed = match mode {
                        WeightMode::Random => entropy,
                        WeightMode::Hash { v4_len, v6_len } => {
                            let len = if client.family() == Family::V4 { v4_len } else { v6_len };
                            let k = client.truncate(len).bits();
                            mix((k >> 64) as u64 ^ mix(k as u64))
                        }
                    };
                    // Picks in ascending score, recomputing scores per pick
                    // rather than buffering them: `answers` is small and a
                    // buffer sized for the largest tier would be cleared on
                    // every query.
                    let first = out.len;
                    while out.len < want {
                        let mut best: Option<(f64, PopIdx)> = None;
                        let mut usable_n = 0;
                        for &p in tier {
                            if !usable(p) || out.pops[first..out.len].contains(&p) {
                                continue;
                            }
                            usable_n += 1;
                            let sc = score(seed, p, self.meta[p.index()].weight);
                            if best.is_none_or(|(b, _)| sc < b) {
                                best = Some((sc, p));
                            }
                        }
                        if out.len == first {
                            weighed |= usable_n > 1;
                        }
                        match best {
                            Some((_, p)) => out.push(p),
                            None => break,
                        }
                    }
                }
            }
        }
        if weighed {
            if let Some(WeightMode::Hash { v4_len, v6_len }) = self.weighted {
                let len = if client.family() == Family::V4 { v4_len } else { v6_len };
                out.scope = out.scope.max(len);
            }
        }
        if self.spec.explore_ppm > 0
            && out.len > 0
            && mix(entropy ^ EXPLORE_SALT) % 1_000_000 < u64::from(self.spec.explore_ppm)
        {
            // The next usable POP in ranking order that the answer does
            // not hold yet takes the first place.
            let chosen = &out.pops[..out.len];
            if let Some(&next) = ranking.pops.iter().find(|&&p| usable(p) && !chosen.contains(&p)) {
                out.pops[0] = next;
                out.explored = true;
            }
        }
        if out.len == 0 {
            out.fallback = true;
            match &self.spec.fallback {
                Fallback::All => {
                    for &p in ranking.pops.iter() {
                        if has_family(p) {
                            out.push(p);
                        }
                    }
                }
                Fallback::None => {}
                Fallback::Backup(set) => {
                    for &p in set {
                        if usable(p) && out.len < want {
                            out.push(p);
                        }
                    }
                    if out.len == 0 {
                        for &p in set {
                            if has_family(p) {
                                out.push(p);
                            }
                        }
                    }
                }
            }
        }
    }
}
