//! Building a [`Generation`]: the one immutable snapshot every reader uses.
//!
//! The expensive part (zone files, GeoIP walk, policy compilation) is done
//! here, off to the side, and published in one `ArcSwap::store`. A POP state
//! change builds a new generation that shares everything but the state
//! vector, so it costs microseconds.

use crate::metrics::{GenCounters, Metrics};
use petrel_config::{Config, PolicyConf};
use petrel_dns_auth::{parse_zone_file, AnswerLimits, AuthData, PopAddrs, ServiceAnswer, ServiceMode, ZoneSetBuilder};
use petrel_dns_wire::name;
use petrel_mapping::{compile_with, BgpData, CidrMap, GeoTable, Policy, PopInfo, ServiceSpec};
use petrel_types::PopState;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Operator overrides that outlive reloads (and, with a state file, restarts).
/// `forced_up`/`forced_down` name POPs or health-check targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overrides {
    #[serde(default)]
    pub drained: BTreeSet<String>,
    #[serde(default)]
    pub forced_up: BTreeSet<String>,
    #[serde(default)]
    pub forced_down: BTreeSet<String>,
}

impl Overrides {
    /// The state an operator forced on a POP or target, if any.
    pub fn forced(&self, name: &str) -> Option<bool> {
        if self.forced_down.contains(name) {
            Some(false)
        } else if self.forced_up.contains(name) {
            Some(true)
        } else {
            None
        }
    }
}

/// Everything besides the config that decides POP states.
#[derive(Clone, Debug, Default)]
pub struct PopInputs {
    pub overrides: Overrides,
    /// POPs whose health checks say down or degraded, with why.
    pub health: BTreeMap<String, (PopState, String)>,
}

/// What a config compiles into; shared between generations.
pub struct Compiled {
    pub config: Arc<Config>,
    pub auth: Arc<AuthData>,
    pub geo: Option<Arc<GeoTable>>,
    pub pop_info: Arc<Vec<PopInfo>>,
    /// The routing views the BGP policies were compiled from.
    pub bgp: Option<Arc<BgpData>>,
}

impl Compiled {
    /// The same config with new routing views: only services with BGP
    /// policies are recompiled; zones and other services are shared.
    pub fn with_bgp(&self, bgp: Arc<BgpData>) -> Compiled {
        let services = self
            .auth
            .services
            .iter()
            .map(|s| {
                if s.mapping.spec.uses_bgp() {
                    let mapping = compile_with(s.mapping.spec.clone(), &self.pop_info, self.geo.as_deref(), Some(&bgp));
                    ServiceAnswer {
                        mapping: Arc::new(mapping),
                        ..s.clone()
                    }
                } else {
                    s.clone()
                }
            })
            .collect();
        let auth = AuthData {
            zones: self.auth.zones.clone(),
            services,
            pops: self.auth.pops.clone(),
            limits: self.auth.limits,
        };
        Compiled {
            config: self.config.clone(),
            auth: Arc::new(auth),
            geo: self.geo.clone(),
            pop_info: self.pop_info.clone(),
            bgp: Some(bgp),
        }
    }
}

pub struct Generation {
    pub id: u64,
    pub compiled: Arc<Compiled>,
    pub states: Arc<[PopState]>,
    /// Why each POP has its state, for explanations and the API.
    pub reasons: Arc<[String]>,
    pub counters: Arc<GenCounters>,
    pub built_at: SystemTime,
}

impl Generation {
    pub fn new(id: u64, compiled: Arc<Compiled>, inputs: &PopInputs, metrics: &Metrics) -> Generation {
        let (states, reasons) = states_for(&compiled.config, inputs);
        let counters = Arc::new(metrics.counters_for(&compiled.config));
        Generation {
            id,
            compiled,
            states,
            reasons,
            counters,
            built_at: SystemTime::now(),
        }
    }

    /// Same compiled data, new POP states.
    pub fn with_inputs(&self, id: u64, inputs: &PopInputs) -> Generation {
        let (states, reasons) = states_for(&self.compiled.config, inputs);
        Generation {
            id,
            compiled: self.compiled.clone(),
            states,
            reasons,
            counters: self.counters.clone(),
            built_at: SystemTime::now(),
        }
    }

    /// New compiled data (same config), same POP states.
    pub fn with_compiled(&self, id: u64, compiled: Arc<Compiled>) -> Generation {
        Generation {
            id,
            compiled,
            states: self.states.clone(),
            reasons: self.reasons.clone(),
            counters: self.counters.clone(),
            built_at: SystemTime::now(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.compiled.config
    }
}

/// An operator's drain wins, then an operator's force, then the configured
/// state, then health.
pub fn states_for(config: &Config, inputs: &PopInputs) -> (Arc<[PopState]>, Arc<[String]>) {
    let o = &inputs.overrides;
    let (states, reasons): (Vec<PopState>, Vec<String>) = config
        .pops
        .iter()
        .map(|p| {
            if o.drained.contains(&p.name) {
                (PopState::Drained, "drained by an operator".to_string())
            } else if o.forced(&p.name) == Some(false) {
                (PopState::Down, "forced down by an operator".to_string())
            } else if o.forced(&p.name) == Some(true) {
                (PopState::Up, "forced up by an operator (health ignored)".to_string())
            } else if p.state != PopState::Up {
                (p.state, format!("{} in the config", p.state.as_str()))
            } else if let Some((st, why)) = inputs.health.get(&p.name) {
                (*st, format!("health checks: {why}"))
            } else {
                (PopState::Up, String::new())
            }
        })
        .unzip();
    (states.into(), reasons.into())
}

/// Read and validate a config file.
pub fn load_config(path: &Path) -> Result<Config, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    petrel_config::parse(path, &text).map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
}

/// Read a config and every file it names, and compile it (with the routing
/// views there are, if any).
pub fn load(path: &Path, bgp: Option<Arc<BgpData>>) -> Result<Compiled, Vec<String>> {
    compile_config(load_config(path)?, bgp)
}

pub fn compile_config(config: Config, bgp: Option<Arc<BgpData>>) -> Result<Compiled, Vec<String>> {
    let mut errs = Vec::new();
    let geo = match &config.geoip {
        None => None,
        Some((path, at)) => match read_geo(path) {
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                errs.push(format!("{at}: geoip.database: {}: {e}", path.display()));
                None
            }
        },
    };
    let pop_info: Vec<PopInfo> = config
        .pops
        .iter()
        .map(|p| PopInfo {
            name: p.name.clone(),
            location: p.location,
            weight: p.weight,
            has_v4: !p.ipv4.is_empty(),
            has_v6: !p.ipv6.is_empty(),
            asns: p.asns.clone(),
        })
        .collect();
    let pop_addrs: Vec<PopAddrs> = config
        .pops
        .iter()
        .map(|p| PopAddrs {
            v4: p.ipv4.iter().map(|a| a.octets()).collect(),
            v6: p.ipv6.iter().map(|a| a.octets()).collect(),
        })
        .collect();

    for (i, m) in config.bgp.iter().flat_map(|b| b.mrt.iter()).enumerate() {
        for f in std::iter::once(&m.file).chain(m.updates.iter()) {
            if let Err(e) = std::fs::File::open(f) {
                errs.push(format!(
                    "{}: bgp.mrt[{i}]: {}: cannot read: {e}",
                    config.path.display(),
                    f.display()
                ));
            }
        }
    }
    let mut zb = ZoneSetBuilder::new();
    for z in &config.zones {
        let text = match std::fs::read_to_string(&z.file) {
            Ok(t) => t,
            Err(e) => {
                errs.push(format!("{}: zone.file: {}: cannot read: {e}", z.at, z.file.display()));
                continue;
            }
        };
        match parse_zone_file(&z.origin, &text) {
            Ok(records) => {
                if let Err(zerrs) = zb.add_zone(&z.origin_wire, records) {
                    for e in zerrs {
                        errs.push(format!("{}: {e} (zone listed at {})", z.file.display(), z.at));
                    }
                }
            }
            Err(e) => errs.push(format!("{}: {e} (zone listed at {})", z.file.display(), z.at)),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }

    let mut services = Vec::new();
    for (i, s) in config.services.iter().enumerate() {
        let mut policies = Vec::new();
        for p in &s.policies {
            policies.push(match p {
                PolicyConf::Cidr { entries, file, at } => {
                    let mut map = CidrMap::new(
                        file.as_ref()
                            .map_or_else(|| "inline map".to_string(), |f| f.display().to_string()),
                    );
                    for (pfx, pops) in entries {
                        map.insert(*pfx, pops.clone());
                    }
                    if let Some(f) = file {
                        match std::fs::read_to_string(f) {
                            Ok(text) => match petrel_config::parse_cidr_map(&text, |n| config.pop_index(n)) {
                                Ok(list) => {
                                    for (pfx, pops) in list {
                                        if let Some(bad) = pops.iter().find(|p| !s.pops.contains(p)) {
                                            errs.push(format!(
                                                "{}: POP `{}` (for {pfx}) is not a candidate of service {}",
                                                f.display(),
                                                config.pops[bad.index()].name,
                                                s.name
                                            ));
                                        }
                                        map.insert(pfx, pops);
                                    }
                                }
                                Err(lines) => {
                                    for (line, msg) in lines {
                                        errs.push(format!("{}:{line}: {msg}", f.display()));
                                    }
                                }
                            },
                            Err(e) => errs.push(format!("{at}: file: {}: cannot read: {e}", f.display())),
                        }
                    }
                    Policy::Cidr(map)
                }
                PolicyConf::GeoNearest { band_km } => Policy::GeoNearest { band_km: *band_km },
                PolicyConf::GeoMap { countries, continents } => Policy::GeoMap {
                    countries: countries.iter().cloned().collect(),
                    continents: continents.iter().cloned().collect(),
                },
                PolicyConf::Priority(l) => Policy::Priority(l.clone()),
                PolicyConf::Default(l) => Policy::Default(l.clone()),
                PolicyConf::Weighted(m) => Policy::Weighted(*m),
                PolicyConf::SuperSparrow => Policy::SuperSparrow,
                PolicyConf::Blended { band_km, hop_km } => Policy::Blended {
                    band_km: *band_km,
                    hop_km: *hop_km,
                },
                PolicyConf::AsMap { entries } => Policy::AsMap {
                    source: "as-map".to_string(),
                    map: entries.iter().cloned().collect(),
                },
            });
        }
        let spec = ServiceSpec {
            name: s.name.clone(),
            candidates: s.pops.clone(),
            policies,
            answers: s.answers,
            fallback: s.fallback.clone(),
        };
        let mapping = Arc::new(compile_with(spec, &pop_info, geo.as_deref(), bgp.as_ref()));
        let mode = match &s.cname {
            None => ServiceMode::Address,
            Some(t) => {
                let mut targets = Vec::new();
                for (k, p) in config.pops.iter().enumerate() {
                    let target = name::from_text(&t.replace("{pop}", &p.name)).expect("validated template");
                    if let Err(e) = zb.add_synthetic(&target, s.ttl, &pop_addrs[k].v4, &pop_addrs[k].v6) {
                        errs.push(format!("service {}: {e}", s.name));
                    }
                    targets.push(target);
                }
                ServiceMode::Cname(targets)
            }
        };
        if let Err(e) = zb.add_service(&s.name_wire, i as u16) {
            errs.push(format!("{}: service {}: {e}", config.path.display(), s.name));
        }
        services.push(ServiceAnswer {
            degraded_ttl: s.degraded_ttl,
            mapping,
            ttl: s.ttl,
            mode,
        });
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let limits = AnswerLimits {
        max_udp: config.server.max_udp_payload,
    };
    let auth = AuthData {
        zones: Arc::new(zb.build()),
        services,
        pops: pop_addrs,
        limits,
    };
    Ok(Compiled {
        config: Arc::new(config),
        auth: Arc::new(auth),
        geo,
        pop_info: Arc::new(pop_info),
        bgp,
    })
}

fn read_geo(path: &Path) -> Result<GeoTable, String> {
    let reader = maxminddb::Reader::open_readfile(path).map_err(|e| e.to_string())?;
    GeoTable::from_reader(&reader).map_err(|e| e.to_string())
}
