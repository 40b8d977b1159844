//! Explanations: the build-side evaluation rerun for one client with a
//! trace, next to what the compiled select path answers.

use crate::compile::CompiledService;
use crate::geo::GeoTable;
use crate::policy::{evaluate, Facts, Policy, PopInfo, Step};
use crate::rank::RankOut;
use crate::table::NONE;
use petrel_types::{Family, PopIdx, PopState, Prefix};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ExplainStep {
    pub policy: String,
    /// What the step saw, as fields.
    pub facts: StepFacts,
    /// The same in a sentence, for people.
    pub detail: String,
    /// Candidate tiers after this step, best first.
    pub tiers: Vec<Vec<String>>,
}

/// What one policy saw of the client, by kind of policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepFacts {
    /// A CIDR map: the longest entry covering the client and its POP list
    /// (none: no entry covers it).
    Cidr {
        source: String,
        entry: Option<String>,
        pops: Vec<String>,
    },
    /// Distances from the client's GeoIP location (none: no record, or one
    /// without coordinates), in the band that counts as equal.
    GeoNearest {
        client: Option<ClientPlace>,
        band_km: u32,
        distances: Vec<PopDistance>,
    },
    /// The country (else continent) entry that matched, and its list.
    GeoMap {
        client: Option<ClientPlace>,
        matched: Option<String>,
        pops: Vec<String>,
    },
    /// A fixed order (`priority`; `default` applies only when nothing
    /// earlier ordered the candidates).
    Order { pops: Vec<String>, applied: bool },
    /// The routing views (in configuration order): each one's preferred
    /// route for the client, the AS hops to each POP and, for `blended`,
    /// each POP's score in km.
    Routing {
        views: Vec<ViewPath>,
        hops: Vec<PopHops>,
        scores: Vec<PopScore>,
        hop_km: Option<u32>,
        band_km: Option<u32>,
        client_located: bool,
    },
    /// The origin AS of the client's route (first view that has one) and
    /// the list it maps to.
    AsMap {
        origin: Option<u32>,
        view: Option<String>,
        pops: Vec<String>,
    },
    /// Measured latency: the client's unit, where its figures come from
    /// when borrowed, and each measured POP (none: not enough samples).
    Latency {
        unit: Option<String>,
        borrowed_from: Option<String>,
        pops: Vec<PopLatency>,
    },
    /// How a tier's members are chosen: `random` or `hash` of the client's
    /// subnet of these lengths.
    Weighted {
        mode: String,
        v4_len: Option<u8>,
        v6_len: Option<u8>,
    },
}

/// One POP's measured latency from a unit's clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PopLatency {
    pub pop: String,
    pub median_ms: f64,
    pub low_ms: f64,
    pub high_ms: f64,
    pub samples: f64,
}

/// The client's GeoIP record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ClientPlace {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PopDistance {
    pub pop: String,
    /// None: the POP has no location.
    pub km: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ViewPath {
    pub view: String,
    /// The POP whose view it is.
    pub pop: String,
    /// The preferred route's AS path, nearest AS first (none: no route).
    pub as_path: Option<Vec<u32>>,
    /// Its RFC 4271 length (an AS_SET counts as one).
    pub path_length: Option<u32>,
    /// The route's prefix, when whoever explains holds the routes (the
    /// compiled views keep paths per address range, not prefixes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PopHops {
    pub pop: String,
    /// AS hops from the POP to the client (none: unknown).
    pub hops: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PopScore {
    pub pop: String,
    /// Distance plus the hop penalty, in km (none: its view has no route).
    pub score_km: Option<u64>,
    pub hops: Option<u32>,
}

/// The step after which the answer's first POP stood in its final tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DecidedBy {
    /// 1-based, as the text numbers steps.
    pub step: usize,
    pub policy: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ExplainPop {
    pub name: String,
    pub tier: usize,
    pub state: String,
    pub verdict: String,
    /// Why the POP has its state (operator, config, health), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub service: String,
    pub client: String,
    pub steps: Vec<ExplainStep>,
    /// The compiled table's interval around the client.
    pub table_interval: String,
    pub scope: u8,
    pub candidates: Vec<ExplainPop>,
    pub answer: Vec<String>,
    pub fallback: bool,
    /// Which policy put the answer where it is (none: no policy told the
    /// candidates apart, or nothing was answered).
    pub decided_by: Option<DecidedBy>,
    /// The traced evaluation agrees with the compiled table.
    pub consistent: bool,
    /// The HTTP rules that serve the service, and what each would do for
    /// this client (filled by the decision core, which knows the config).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpUse>,
    /// Share of answers (percent) exploration sends to the next-best POP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore_percent: Option<f64>,
    /// The server is waiting at start for its routing views, and what the
    /// service answers meanwhile (filled by the decision core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warming: Option<String>,
}

/// An HTTP rule's decision for the explained client.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct HttpUse {
    pub front: String,
    pub rule: String,
    /// `redirect`, or `edge` (redirect only a slow connection).
    pub action: String,
    /// The POP the client is sent to (none: no usable POP).
    pub pop: Option<String>,
    /// The redirect's URL, `{path}` and `{host}` left as placeholders.
    pub location: Option<String>,
    pub status: u16,
    /// Edge rules: the RTT at and above which a connection is slow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_threshold_ms: Option<f64>,
}

fn tier_names(pops: &[PopInfo], t: &[Vec<PopIdx>]) -> Vec<Vec<String>> {
    t.iter()
        .map(|tier| tier.iter().map(|p| pops[p.index()].name.clone()).collect())
        .collect()
}

fn fam_idx(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl CompiledService {
    #[allow(clippy::too_many_arguments)]
    pub fn explain(
        &self,
        client: &Prefix,
        qfamily: Option<Family>,
        pops: &[PopInfo],
        states: &[PopState],
        geo: Option<&GeoTable>,
        entropy: u64,
    ) -> Explanation {
        let fi = fam_idx(client.family());
        let mut cidr = Vec::new();
        let mut ci = 0;
        for p in &self.spec.policies {
            if let Policy::Cidr(map) = p {
                let v = self.cidr_tables[ci][fi].lookup(client.bits()).value;
                ci += 1;
                cidr.push((v != NONE).then(|| {
                    // The entry itself: longest listed prefix covering the client.
                    let entry = map
                        .entries
                        .iter()
                        .filter(|(p, id)| *id == v && p.contains(client))
                        .map(|(p, _)| *p)
                        .max_by_key(|p| p.len());
                    (map.lists[v as usize].as_slice(), entry)
                }));
            }
        }
        let geo_loc = if self.spec.uses_geo() {
            geo.and_then(|g| g.lookup(client)).map(|(l, _)| l)
        } else {
            None
        };
        let (views, paths) = match &self.bgp {
            Some(b) => (
                b.views.as_slice(),
                (0..b.views.len()).map(|i| b.path_at(i, client)).collect(),
            ),
            None => (&[][..], Vec::new()),
        };
        // The table is looked up with the client's first address.
        let first = Prefix::host(client.addr());
        let facts = Facts {
            cidr,
            geo: geo_loc,
            views,
            paths,
            latency: self
                .latency
                .as_ref()
                .and_then(|l| l.unit_of(&first))
                .map(|(p, u)| (Some(p), u)),
        };
        let mut trace: Vec<Step> = Vec::new();
        let tiers = evaluate(&self.spec, pops, &facts, Some(&mut trace));

        let mut out = RankOut::default();
        self.rank(client, qfamily, states, entropy, &mut out);
        let hit = self.table(client.family()).lookup(client.bits());
        let compiled: Vec<Vec<PopIdx>> = self.rankings[hit.value as usize].tiers().map(|t| t.to_vec()).collect();
        let (s, e, _) = self
            .table(client.family())
            .intervals()
            .find(|&(s, e, _)| s <= client.bits() && client.bits() <= e)
            .expect("tables cover the address space");
        let fmt_addr = |x: u128| match client.family() {
            Family::V4 => std::net::Ipv4Addr::from(x as u32).to_string(),
            Family::V6 => std::net::Ipv6Addr::from(x).to_string(),
        };

        let chosen = out.pops();
        let mut candidates = Vec::new();
        for (ti, tier) in compiled.iter().enumerate() {
            for &p in tier {
                let m = &self.meta[p.index()];
                let state = states.get(p.index()).copied().unwrap_or(PopState::Down);
                let verdict = if chosen.contains(&p) {
                    if out.fallback {
                        "answered as fallback".to_string()
                    } else {
                        "chosen".to_string()
                    }
                } else if qfamily == Some(Family::V4) && !m.has_v4 {
                    "skipped: no IPv4 address".to_string()
                } else if qfamily == Some(Family::V6) && !m.has_v6 {
                    "skipped: no IPv6 address".to_string()
                } else if !state.is_usable() {
                    format!("skipped: {}", state.as_str())
                } else if self.weighted.is_some() && tier.iter().any(|q| chosen.contains(q)) {
                    // Another POP of the same tier won the weighted draw.
                    "not chosen by weight".to_string()
                } else {
                    "not needed: enough better candidates".to_string()
                };
                candidates.push(ExplainPop {
                    name: pops[p.index()].name.clone(),
                    tier: ti + 1,
                    state: state.as_str().to_string(),
                    verdict,
                    reason: String::new(),
                });
            }
        }
        // Refinement only splits tiers: the first step after which the
        // answer's POP stands in its final tier is the one that put it there.
        let decided_by = chosen.first().and_then(|&first| {
            let tier_of = |t: &[Vec<PopIdx>]| t.iter().find(|tier| tier.contains(&first)).cloned();
            let last = tier_of(&tiers);
            let mut prev = tier_of(std::slice::from_ref(&self.spec.candidates));
            for (i, s) in trace.iter().enumerate() {
                let now = tier_of(&s.tiers);
                if now == last {
                    return (now != prev).then(|| DecidedBy {
                        step: i + 1,
                        policy: s.policy.clone(),
                    });
                }
                prev = now;
            }
            None
        });
        Explanation {
            service: self.spec.name.clone(),
            client: client.to_string(),
            steps: trace
                .into_iter()
                .map(|s| ExplainStep {
                    policy: s.policy,
                    facts: s.facts,
                    detail: s.detail,
                    tiers: tier_names(pops, &s.tiers),
                })
                .collect(),
            table_interval: format!("{} - {}", fmt_addr(s), fmt_addr(e)),
            scope: out.scope,
            candidates,
            answer: chosen.iter().map(|p| pops[p.index()].name.clone()).collect(),
            fallback: out.fallback,
            decided_by,
            consistent: tiers == compiled,
            http: Vec::new(),
            explore_percent: (self.spec.explore_ppm > 0).then(|| f64::from(self.spec.explore_ppm) / 10_000.0),
            warming: None,
        }
    }
}

impl Explanation {
    /// Add each view's route prefix (by view name) to the routing steps.
    pub fn set_view_prefixes(&mut self, prefix_of: impl Fn(&str) -> Option<String>) {
        for st in &mut self.steps {
            if let StepFacts::Routing { views, .. } = &mut st.facts {
                for v in views {
                    v.prefix = prefix_of(&v.view);
                }
            }
        }
    }

    /// Human-readable form for the CLI.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "service {}  client {}", self.service, self.client);
        for (i, st) in self.steps.iter().enumerate() {
            let _ = writeln!(s, "  {}. {:<12} {}", i + 1, st.policy, st.detail);
            let tiers: Vec<String> = st.tiers.iter().map(|t| format!("[{}]", t.join(" "))).collect();
            let _ = writeln!(s, "     {:<12} ranking {}", "", tiers.join(" > "));
        }
        let _ = writeln!(
            s,
            "  table interval {}  ->  ECS scope /{}",
            self.table_interval, self.scope
        );
        for c in &self.candidates {
            let why = if c.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.reason)
            };
            let _ = writeln!(
                s,
                "  tier {:<2} {:<12} {:<8} {}{why}",
                c.tier, c.name, c.state, c.verdict
            );
        }
        let _ = writeln!(
            s,
            "  answer: {}{}",
            if self.answer.is_empty() {
                "(none)".to_string()
            } else {
                self.answer.join(", ")
            },
            if self.fallback {
                "  (FALLBACK: no usable candidate)"
            } else {
                ""
            }
        );
        if let Some(d) = &self.decided_by {
            let _ = writeln!(s, "  decided by step {} ({})", d.step, d.policy);
        }
        if let Some(w) = &self.warming {
            let _ = writeln!(s, "  WARMING: {w}");
        }
        if let Some(p) = self.explore_percent {
            let _ = writeln!(
                s,
                "  exploration: {p} % of answers send the first answer to the next-best usable POP"
            );
        }
        if !self.consistent {
            let _ = writeln!(s, "  WARNING: traced evaluation differs from the compiled table");
        }
        if !self.http.is_empty() {
            let _ = writeln!(
                s,
                "  HTTP (the client's own address, any family; no ECS scope applies):"
            );
        }
        for h in &self.http {
            let target = match (&h.pop, &h.location) {
                (Some(p), Some(l)) => format!("{} {l}  (POP {p})", h.status),
                _ => "503: no POP is available for this client".to_string(),
            };
            match h.rtt_threshold_ms {
                Some(t) => {
                    let _ = writeln!(
                        s,
                        "    front {} rule {} (edge): RTT >= {t} ms and this POP not among the best -> {target}; else served here",
                        h.front, h.rule
                    );
                }
                None => {
                    let _ = writeln!(s, "    front {} rule {} (redirect): {target}", h.front, h.rule);
                }
            }
        }
        s
    }
}
