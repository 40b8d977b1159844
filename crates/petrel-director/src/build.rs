//! A config and the files it names -> [`Built`]: zones, the service
//! registry with compiled tables, the POP list. Pure: the caller reads the
//! files ([`needs`] says which) and hands their contents in ([`Sources`]).

use crate::error::BuildError;
use petrel_config::Config;
use petrel_dns_wire::name;
use petrel_dns_zone::{parse_zone_file_with, ZoneSet, ZoneSetBuilder};
use petrel_mapping::{compile_with, BgpData, CompiledService, GeoTable, LatencyData, Policy, PopInfo, ServiceSpec};
use petrel_types::ServiceIdx;
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file a config names, and how the caller should read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// A zone file or CIDR map: its text.
    Text(PathBuf),
    /// The GeoIP database (MaxMind DB): a [`GeoTable`] compiled from it.
    Geo(PathBuf),
    /// An MRT dump: the RIB thread reads it later; here only whether it can
    /// be opened.
    Mrt(PathBuf),
}

/// What the caller read for [`needs`]. A file missing here counts as
/// unreadable.
#[derive(Default)]
pub struct Sources {
    pub texts: FxHashMap<PathBuf, Result<String, String>>,
    pub geo: Option<Result<Arc<GeoTable>, String>>,
    pub mrt: FxHashMap<PathBuf, Result<(), String>>,
    /// Unix seconds when the files were read: signatures start from it.
    pub now: u32,
}

impl Sources {
    pub(crate) fn text(&self, p: &Path) -> Result<&str, String> {
        match self.texts.get(p) {
            Some(Ok(t)) => Ok(t),
            Some(Err(e)) => Err(e.clone()),
            None => Err("not read".into()),
        }
    }
}

/// The files a config names, in the order errors about them are reported.
pub fn needs(config: &Config) -> Vec<Need> {
    let mut v = Vec::new();
    if let Some((p, _)) = &config.geoip {
        v.push(Need::Geo(p.clone()));
    }
    for m in config.bgp.iter().flat_map(|b| b.mrt.iter()) {
        for f in std::iter::once(&m.file).chain(m.updates.iter()) {
            v.push(Need::Mrt(f.clone()));
        }
    }
    if let Some((f, _)) = config.bgp.as_ref().and_then(|b| b.vrp_file.as_ref()) {
        v.push(Need::Text(f.clone()));
    }
    for z in &config.zones {
        v.push(Need::Text(z.file.clone()));
        for (stem, _) in z.dnssec.iter().flat_map(|d| d.keys.iter()) {
            v.push(Need::Text(crate::signing::key_file(stem, "key")));
            v.push(Need::Text(crate::signing::key_file(stem, "private")));
        }
        for (stem, _) in z.dnssec.iter().flat_map(|d| d.publish.iter()) {
            v.push(Need::Text(crate::signing::key_file(stem, "key")));
        }
    }
    for s in &config.services {
        for c in &s.cidr_files {
            v.push(Need::Text(c.file.clone()));
        }
    }
    v
}

/// One mapped service: its compiled table and how its answers are given.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    /// Shared between generations: a routing change recompiles only the
    /// services that use BGP.
    pub mapping: Arc<CompiledService>,
    pub ttl: u32,
    /// TTL when an answer names a degraded POP.
    pub degraded_ttl: u32,
    /// CNAME mode: per POP (by index), the name answers point at, in wire
    /// form. None: the POPs' addresses are the answer.
    pub cname_targets: Option<Arc<[Box<[u8]>]>>,
    /// In a signed zone: the signatures of the answers it can give.
    pub sigs: Option<Arc<crate::signing::AnswerSigs>>,
}

/// What a config compiles into; shared between generations.
pub struct Built {
    pub config: Arc<Config>,
    pub zones: Arc<ZoneSet>,
    /// The service registry, indexed by [`ServiceIdx`] (configured order).
    pub services: Arc<[Service]>,
    /// The POP list, indexed by [`PopIdx`] (configured order).
    pub pops: Arc<[PopInfo]>,
    pub geo: Option<Arc<GeoTable>>,
    /// The routing views the BGP policies were compiled from.
    pub bgp: Option<Arc<BgpData>>,
    /// The measured latency the latency policies were compiled from.
    pub latency: Option<Arc<LatencyData>>,
    /// What may be announced, with the VRP file's contents (with `[bgp]`).
    pub safety: Option<Arc<petrel_anycast::safety::Safety>>,
}

impl Built {
    /// A service by name (case and a final dot do not matter).
    pub fn service_index(&self, name: &str) -> Option<ServiceIdx> {
        self.config.service(name).map(|(i, _)| ServiceIdx(i as u16))
    }

    pub fn service(&self, s: ServiceIdx) -> &Service {
        &self.services[s.index()]
    }

    /// The same config with other routing views: only services with BGP
    /// policies are recompiled, each distinct table once; zones and other
    /// services are shared.
    pub fn with_bgp(&self, bgp: Option<Arc<BgpData>>) -> Built {
        self.recompiled(bgp, self.latency.clone(), ServiceSpec::uses_bgp)
    }

    /// The same config with other measured latency: only services with a
    /// latency policy are recompiled.
    pub fn with_latency(&self, latency: Option<Arc<LatencyData>>) -> Built {
        self.recompiled(self.bgp.clone(), latency, ServiceSpec::uses_latency)
    }

    /// Measured latency names POPs by index: it fits a config with the
    /// same POP list only.
    pub fn latency_fits(&self, other: &Built) -> bool {
        self.pops.len() == other.pops.len() && self.pops.iter().zip(other.pops.iter()).all(|(a, b)| a.name == b.name)
    }

    fn recompiled(
        &self,
        bgp: Option<Arc<BgpData>>,
        latency: Option<Arc<LatencyData>>,
        affected: fn(&ServiceSpec) -> bool,
    ) -> Built {
        // Services that shared a table share the new one.
        let mut done: Vec<(*const CompiledService, Arc<CompiledService>)> = Vec::new();
        let services: Vec<Service> = self
            .services
            .iter()
            .map(|s| {
                if !affected(&s.mapping.spec) {
                    return s.clone();
                }
                let key = Arc::as_ptr(&s.mapping);
                let mapping = match done.iter().find(|(k, _)| *k == key) {
                    Some((_, m)) => m.clone(),
                    None => {
                        let m = Arc::new(compile_with(
                            s.mapping.spec.clone(),
                            &self.pops,
                            self.geo.as_deref(),
                            bgp.as_ref(),
                            latency.as_ref(),
                        ));
                        done.push((key, m.clone()));
                        m
                    }
                };
                Service { mapping, ..s.clone() }
            })
            .collect();
        Built {
            config: self.config.clone(),
            zones: self.zones.clone(),
            services: services.into(),
            pops: self.pops.clone(),
            geo: self.geo.clone(),
            bgp,
            latency,
            safety: self.safety.clone(),
        }
    }

    /// Whether routing views fit this config's POP list.
    pub fn fits(&self, bgp: &BgpData) -> bool {
        views_fit(bgp, &self.pops)
    }
}

fn views_fit(bgp: &BgpData, pops: &[PopInfo]) -> bool {
    bgp.views
        .iter()
        .all(|v| pops.get(v.pop.index()).is_some_and(|p| p.name == v.name))
}

/// The engine's model of the config's POPs.
pub fn pop_infos(config: &Config) -> Vec<PopInfo> {
    config
        .pops
        .iter()
        .map(|p| PopInfo {
            name: p.name.clone(),
            ipv4: p.ipv4.clone(),
            ipv6: p.ipv6.clone(),
            location: p.location,
            weight: p.weight,
            asns: p.asns.clone(),
        })
        .collect()
}

/// Compile a config with the files it names and the routing views there
/// are (if any). Every problem is reported, each naming its file and line.
pub fn build(config: Config, src: &Sources, bgp: Option<Arc<BgpData>>) -> Result<Built, Vec<BuildError>> {
    let mut errs: Vec<BuildError> = Vec::new();
    let geo = match &config.geoip {
        None => None,
        Some((path, at)) => match &src.geo {
            Some(Ok(g)) => Some(g.clone()),
            Some(Err(e)) => {
                errs.push(BuildError::Geo {
                    at: at.clone(),
                    file: path.clone(),
                    reason: e.clone(),
                });
                None
            }
            None => {
                errs.push(BuildError::Geo {
                    at: at.clone(),
                    file: path.clone(),
                    reason: "not read".into(),
                });
                None
            }
        },
    };
    let pops = pop_infos(&config);
    // Views carry POP indexes: only views built for these POPs apply.
    let bgp = bgp.filter(|b| views_fit(b, &pops));
    for (i, m) in config.bgp.iter().flat_map(|b| b.mrt.iter()).enumerate() {
        for f in std::iter::once(&m.file).chain(m.updates.iter()) {
            let r = src.mrt.get(f).cloned().unwrap_or_else(|| Err("not read".into()));
            if let Err(e) = r {
                errs.push(BuildError::Mrt {
                    config: config.path.clone(),
                    index: i,
                    file: f.clone(),
                    reason: e,
                });
            }
        }
    }
    let mut zb = ZoneSetBuilder::new();
    for z in &config.zones {
        let text = match src.text(&z.file) {
            Ok(t) => t,
            Err(e) => {
                errs.push(BuildError::Unreadable {
                    at: z.at.clone(),
                    field: "zone.file",
                    file: z.file.clone(),
                    reason: e,
                });
                continue;
            }
        };
        // Records go into the zone as they are read.
        let zone_errs = match zb.begin_zone(&z.origin_wire) {
            Err(zerrs) => zerrs,
            Ok(mut zone) => match parse_zone_file_with(&z.origin, text, |r| zb.add_record(&mut zone, r)) {
                Err(e) => e,
                Ok(()) => zb.finish_zone(zone).err().unwrap_or_default(),
            },
        };
        for e in zone_errs {
            errs.push(BuildError::Zone {
                file: z.file.clone(),
                at: z.at.clone(),
                error: e,
            });
        }
    }
    if !errs.is_empty() {
        // Nothing is compiled past this, but the files the rest reads are
        // still checked: one run reports every file that is wrong.
        for s in &config.services {
            let _ = with_cidr_files(&config, s, src, &mut errs);
        }
        if let Err(e) = vrps(&config, src) {
            errs.push(e);
        }
        for z in &config.zones {
            if let Some(d) = &z.dnssec {
                if let Err(e) = crate::signing::zone_keys(z, d, src) {
                    errs.extend(e);
                }
            }
        }
        return Err(errs);
    }

    let mut services: Vec<Service> = Vec::new();
    for (i, s) in config.services.iter().enumerate() {
        // Services with the same inputs (candidates, policies, answer count,
        // fallback) share one compiled table: a table from full routing
        // views takes a few hundred milliseconds to compile.
        let same = config.services[..i].iter().position(|o| same_table(o, s));
        let mapping = match same {
            Some(j) => services[j].mapping.clone(),
            None => {
                let policies = with_cidr_files(&config, s, src, &mut errs);
                let spec = ServiceSpec {
                    name: s.name.clone(),
                    candidates: s.pops.clone(),
                    policies,
                    answers: s.answers,
                    fallback: s.fallback.clone(),
                    // Only a latency policy learns from where clients go.
                    explore_ppm: if s.policies.iter().any(petrel_mapping::Policy::uses_latency) {
                        config.measure.as_ref().map_or(0, |m| m.explore_ppm)
                    } else {
                        0
                    },
                    warming: s.warming,
                };
                Arc::new(compile_with(spec, &pops, geo.as_deref(), bgp.as_ref(), None))
            }
        };
        let cname_targets = s.cname.as_ref().map(|t| {
            let mut targets = Vec::new();
            for p in &pops {
                let target = name::from_text(&t.replace("{pop}", &p.name)).expect("validated template");
                let v4: Vec<[u8; 4]> = p.ipv4.iter().map(|a| a.octets()).collect();
                let v6: Vec<[u8; 16]> = p.ipv6.iter().map(|a| a.octets()).collect();
                if let Err(e) = zb.add_synthetic(&target, s.ttl, &v4, &v6) {
                    errs.push(BuildError::Service {
                        config: None,
                        service: s.name.clone(),
                        error: e,
                    });
                }
                targets.push(target.into_boxed_slice());
            }
            targets.into()
        });
        if let Err(e) = zb.add_service(&s.name_wire, i as u16) {
            errs.push(BuildError::Service {
                config: Some(config.path.clone()),
                service: s.name.clone(),
                error: e,
            });
        }
        services.push(Service {
            name: s.name.clone(),
            mapping,
            ttl: s.ttl,
            degraded_ttl: s.degraded_ttl,
            cname_targets,
            sigs: None,
        });
    }
    // Signed zones: every name of the zone is in (services and their
    // synthetic names too); the services' answers are signed with them.
    if errs.is_empty() {
        for (zi, z) in config.zones.iter().enumerate() {
            let Some(d) = &z.dnssec else { continue };
            let keys = match crate::signing::zone_keys(z, d, src) {
                Ok(k) => k,
                Err(e) => {
                    errs.extend(e);
                    continue;
                }
            };
            for (si, svc) in services.iter_mut().enumerate() {
                let conf = &config.services[si];
                if name::is_subdomain(&name::to_lowercase(&conf.name_wire), &keys.apex) {
                    match crate::signing::answer_sigs(conf, &pops, &keys) {
                        Ok(a) => svc.sigs = Some(Arc::new(a)),
                        Err(e) => errs.push(BuildError::Service {
                            config: Some(config.path.clone()),
                            service: s_name(conf),
                            error: petrel_dns_zone::ZoneError(format!("cannot sign its answers: {e}")),
                        }),
                    }
                }
            }
            let types = |si: u16| crate::signing::service_types(&config.services[si as usize], &pops);
            if let Err(e) = zb.sign_zone(zi as u16, keys, &types) {
                errs.push(BuildError::Zone {
                    file: z.file.clone(),
                    at: z.at.clone(),
                    error: e,
                });
            }
        }
    }
    // Announcement rules with the VRPs: every anycast prefix is checked
    // again, now for origin validation.
    let mut safety = None;
    if let Some(b) = &config.bgp {
        let mut s = b.safety.clone();
        match vrps(&config, src) {
            Ok(v) => s.vrps = v,
            Err(e) => errs.push(e),
        }
        for a in &config.anycast {
            for p in &a.prefixes {
                if let Err(why) = s.check(p) {
                    errs.push(BuildError::Announcement {
                        config: config.path.clone(),
                        service: a.name.clone(),
                        prefix: *p,
                        reason: why.to_string(),
                    });
                }
            }
        }
        safety = Some(Arc::new(s));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Built {
        safety,
        config: Arc::new(config),
        zones: Arc::new(zb.build()),
        services: services.into(),
        pops: pops.into(),
        geo,
        bgp,
        latency: None,
    })
}

fn s_name(s: &petrel_config::ServiceConf) -> String {
    s.name.clone()
}

/// Whether two services compile into the same table.
fn same_table(a: &petrel_config::ServiceConf, b: &petrel_config::ServiceConf) -> bool {
    let files = |s: &petrel_config::ServiceConf| {
        s.cidr_files
            .iter()
            .map(|c| (c.policy, c.file.clone()))
            .collect::<Vec<_>>()
    };
    a.pops == b.pops
        && a.policies == b.policies
        && files(a) == files(b)
        && a.answers == b.answers
        && a.fallback == b.fallback
        && a.warming == b.warming
}

/// A service's policies with the entries of their CIDR map files merged
/// into the inline ones.
/// The VRPs of `bgp.vrp_file`, if the config names one.
fn vrps(config: &Config, src: &Sources) -> Result<Option<Vec<petrel_anycast::safety::Vrp>>, BuildError> {
    let Some((f, at)) = config.bgp.as_ref().and_then(|b| b.vrp_file.as_ref()) else {
        return Ok(None);
    };
    src.text(f)
        .and_then(petrel_anycast::safety::parse_vrps)
        .map(Some)
        .map_err(|reason| BuildError::Vrps {
            at: at.clone(),
            file: f.clone(),
            reason,
        })
}

fn with_cidr_files(
    config: &Config,
    s: &petrel_config::ServiceConf,
    src: &Sources,
    errs: &mut Vec<BuildError>,
) -> Vec<Policy> {
    let mut policies = s.policies.clone();
    for c in &s.cidr_files {
        let Some(Policy::Cidr(map)) = policies.get_mut(c.policy) else {
            continue;
        };
        let f = &c.file;
        match src.text(f) {
            Ok(text) => match petrel_config::parse_cidr_map(text, |n| config.pop_index(n)) {
                Ok(list) => {
                    for (pfx, pops) in list {
                        if let Some(bad) = pops.iter().find(|p| !s.pops.contains(p)) {
                            errs.push(BuildError::NotCandidate {
                                file: f.clone(),
                                pop: config.pops[bad.index()].name.clone(),
                                prefix: pfx,
                                service: s.name.clone(),
                            });
                        }
                        map.insert(pfx, pops);
                    }
                }
                Err(lines) => {
                    for (line, msg) in lines {
                        errs.push(BuildError::MapLine {
                            file: f.clone(),
                            line,
                            message: msg,
                        });
                    }
                }
            },
            Err(e) => errs.push(BuildError::Unreadable {
                at: c.at.clone(),
                field: "file",
                file: f.clone(),
                reason: e,
            }),
        }
    }
    policies
}
