//! Counters for the answer path and their Prometheus exposition.
//!
//! The answer path only does relaxed atomic adds on counters that the
//! generation hands it by index; names and labels are resolved at
//! generation build and at scrape time, never per query.

use crate::shared::Shared;
use petrel_config::Config;
use petrel_dns_auth::AnswerInfo;
use petrel_dns_wire::consts::{rcode, rtype};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

const QTYPES: [u16; 11] = [
    rtype::A,
    rtype::AAAA,
    rtype::CNAME,
    rtype::MX,
    rtype::TXT,
    rtype::SRV,
    rtype::NS,
    rtype::PTR,
    rtype::CAA,
    rtype::SOA,
    rtype::ANY,
];
const NQ: usize = QTYPES.len() + 1;
const RCODES: [u16; 7] = [
    rcode::NOERROR,
    rcode::FORMERR,
    rcode::SERVFAIL,
    rcode::NXDOMAIN,
    rcode::NOTIMP,
    rcode::REFUSED,
    rcode::BADVERS,
];
const NR: usize = RCODES.len() + 1;

fn qtype_idx(t: u16) -> usize {
    QTYPES.iter().position(|&q| q == t).unwrap_or(NQ - 1)
}

fn rcode_idx(r: u16) -> usize {
    RCODES.iter().position(|&q| q == r).unwrap_or(NR - 1)
}

#[derive(Debug)]
pub struct SvcCounters {
    queries: [[AtomicU64; NR]; NQ],
    ecs: [AtomicU64; 2],
    fallback: AtomicU64,
    truncated: AtomicU64,
}

impl Default for SvcCounters {
    fn default() -> Self {
        SvcCounters {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            ecs: Default::default(),
            fallback: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
        }
    }
}

/// Counter handles for one generation, indexed like its services and POPs.
pub struct GenCounters {
    services: Vec<Arc<SvcCounters>>,
    other: Arc<SvcCounters>,
    pops: Vec<Arc<AtomicU64>>,
}

#[derive(Default)]
pub struct Metrics {
    services: Mutex<BTreeMap<String, Arc<SvcCounters>>>,
    pops: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub dropped: AtomicU64,
    pub tcp_accepted: AtomicU64,
    pub tcp_rejected: AtomicU64,
    pub tcp_idle_closed: AtomicU64,
}

const OTHER: &str = "";

impl Metrics {
    pub fn counters_for(&self, config: &Config) -> GenCounters {
        let mut s = self.services.lock().expect("metrics lock");
        let mut get = |name: &str| s.entry(name.to_string()).or_default().clone();
        let services = config.services.iter().map(|svc| get(&svc.name)).collect();
        let other = get(OTHER);
        let mut p = self.pops.lock().expect("metrics lock");
        let pops = config
            .pops
            .iter()
            .map(|pop| p.entry(pop.name.clone()).or_default().clone())
            .collect();
        GenCounters { services, other, pops }
    }

    /// Count one answered query. Lock-free.
    #[inline]
    pub fn record(gc: &GenCounters, info: &AnswerInfo) {
        let c = match info.service {
            Some(i) => gc.services.get(i as usize).unwrap_or(&gc.other),
            None => &gc.other,
        };
        c.queries[qtype_idx(info.qtype)][rcode_idx(info.rcode)].fetch_add(1, Relaxed);
        c.ecs[info.ecs as usize].fetch_add(1, Relaxed);
        if info.truncated {
            c.truncated.fetch_add(1, Relaxed);
        }
        if info.mapped {
            if info.rank.fallback {
                c.fallback.fetch_add(1, Relaxed);
            }
            for p in info.rank.pops() {
                if let Some(ctr) = gc.pops.get(p.index()) {
                    ctr.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// Renders the counters and the generation's state at scrape time.
#[derive(Debug)]
pub struct MetricsCollector(pub Weak<Shared>);

fn svc_label(name: &str) -> &str {
    if name.is_empty() {
        "-"
    } else {
        name
    }
}

impl Collector for MetricsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(shared) = self.0.upgrade() else {
            return Ok(());
        };
        let m = &shared.metrics;
        let services: Vec<(String, Arc<SvcCounters>)> = m
            .services
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        {
            let mut me = enc.encode_descriptor(
                "petrel_dns_queries",
                "DNS queries answered, by service (- for none), qtype and rcode",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (name, c) in &services {
                for (qi, row) in c.queries.iter().enumerate() {
                    for (ri, v) in row.iter().enumerate() {
                        let n = v.load(Relaxed);
                        if n == 0 {
                            continue;
                        }
                        let qt = if qi < QTYPES.len() {
                            rtype::name(QTYPES[qi])
                        } else {
                            "other"
                        };
                        let rc = if ri < RCODES.len() {
                            rcode::name(RCODES[ri])
                        } else {
                            "other"
                        };
                        let labels = vec![
                            ("service", svc_label(name).to_string()),
                            ("qtype", qt.to_string()),
                            ("rcode", rc.to_string()),
                        ];
                        ConstCounter::new(n).encode(me.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut me = enc.encode_descriptor(
                "petrel_dns_ecs_queries",
                "DNS queries by presence of an EDNS Client Subnet option",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (name, c) in &services {
                for (i, present) in ["false", "true"].iter().enumerate() {
                    let labels = vec![("service", svc_label(name).to_string()), ("ecs", present.to_string())];
                    ConstCounter::new(c.ecs[i].load(Relaxed)).encode(me.encode_family(&labels)?)?;
                }
            }
        }
        for (metric, help, get) in [
            (
                "petrel_dns_fallback_answers",
                "Mapped answers given while no candidate POP was usable",
                (|c: &SvcCounters| c.fallback.load(Relaxed)) as fn(&SvcCounters) -> u64,
            ),
            (
                "petrel_dns_truncated_answers",
                "UDP answers sent with TC=1",
                |c: &SvcCounters| c.truncated.load(Relaxed),
            ),
        ] {
            let mut me = enc.encode_descriptor(metric, help, None, ConstCounter::new(0u64).metric_type())?;
            for (name, c) in services.iter().filter(|(n, _)| !n.is_empty()) {
                let labels = vec![("service", name.clone())];
                ConstCounter::new(get(c)).encode(me.encode_family(&labels)?)?;
            }
        }
        {
            let pops: Vec<(String, u64)> = m
                .pops
                .lock()
                .expect("metrics lock")
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Relaxed)))
                .collect();
            let mut me = enc.encode_descriptor(
                "petrel_dns_pop_answers",
                "Mapped answers naming each POP",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (name, n) in pops {
                ConstCounter::new(n).encode(me.encode_family(&vec![("pop", name)])?)?;
            }
        }
        let g = shared.gen.load();
        {
            let mut me = enc.encode_descriptor(
                "petrel_pop_up",
                "1 if a POP is usable for new decisions, by state",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?;
            for (i, p) in g.config().pops.iter().enumerate() {
                let st = g.states[i];
                let labels = vec![("pop", p.name.clone()), ("state", st.as_str().to_string())];
                ConstGauge::new(st.is_usable() as i64).encode(me.encode_family(&labels)?)?;
            }
        }
        if let Some(b) = shared.bgp.get() {
            let (peers, publish) = b.board.snapshot();
            type PeerMetric<T> = (&'static str, &'static str, fn(&crate::bgp::board::PeerStatus) -> T);
            let gauges: [PeerMetric<i64>; 2] = [
                (
                    "petrel_bgp_session_established",
                    "1 if the BGP session is Established",
                    |p| (p.state == "Established") as i64,
                ),
                ("petrel_bgp_prefixes", "Routes the peer has in its view", |p| {
                    p.prefixes as i64
                }),
            ];
            for (name, help, f) in gauges {
                let mut me = enc.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
                for p in &peers {
                    let labels = vec![("peer", p.name.clone()), ("view", p.view.clone())];
                    ConstGauge::new(f(p)).encode(me.encode_family(&labels)?)?;
                }
            }
            let counters: [PeerMetric<u64>; 3] = [
                ("petrel_bgp_updates_received", "UPDATE messages received", |p| {
                    p.updates_received
                }),
                (
                    "petrel_bgp_established_transitions",
                    "Times the session reached Established",
                    |p| p.established_transitions,
                ),
                (
                    "petrel_bgp_rfc7606_errors",
                    "Malformed attributes handled by treat-as-withdraw or attribute-discard",
                    |p| p.errors_7606,
                ),
            ];
            for (name, help, f) in counters {
                let mut me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
                for p in &peers {
                    let labels = vec![("peer", p.name.clone()), ("view", p.view.clone())];
                    ConstCounter::new(f(p)).encode(me.encode_family(&labels)?)?;
                }
            }
            let me = enc.encode_descriptor(
                "petrel_bgp_publications",
                "Routing-view batches compiled and published",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            ConstCounter::new(publish.count).encode(me)?;
            let me = enc.encode_descriptor(
                "petrel_bgp_published_routes",
                "Routes in the published routing views (what answers use)",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?;
            ConstGauge::new(publish.routes as i64).encode(me)?;
            for (name, help, v) in [
                (
                    "petrel_bgp_publish_delay_seconds",
                    "Last batch: first route change to served generation",
                    publish.last_delay_ms / 1e3,
                ),
                (
                    "petrel_bgp_publish_build_seconds",
                    "Last batch: time to compile views and tables",
                    publish.last_build_ms / 1e3,
                ),
            ] {
                let me = enc.encode_descriptor(name, help, None, ConstGauge::new(0f64).metric_type())?;
                ConstGauge::new(v).encode(me)?;
            }
        }
        {
            let targets = shared.health.snapshot();
            let (last, worst, flips) = shared.health.publish_stats();
            for (name, help, v) in [
                (
                    "petrel_health_flip_publish_last_seconds",
                    "From the probe result to the served generation, last POP flip",
                    last,
                ),
                (
                    "petrel_health_flip_publish_max_seconds",
                    "From the probe result to the served generation, worst POP flip",
                    worst,
                ),
            ] {
                let me = enc.encode_descriptor(name, help, None, ConstGauge::new(0f64).metric_type())?;
                ConstGauge::new(v).encode(me)?;
            }
            let me = enc.encode_descriptor(
                "petrel_health_pop_flips",
                "POP health changes published",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            ConstCounter::new(flips).encode(me)?;
            let mut up = enc.encode_descriptor(
                "petrel_health_target_up",
                "1 if a health-check target is up (after rise/fall hysteresis)",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?;
            for t in &targets {
                let labels = vec![("pop", t.pop.clone()), ("target", t.name.clone())];
                ConstGauge::new((t.state == petrel_health::TargetState::Up) as i64)
                    .encode(up.encode_family(&labels)?)?;
            }
            let mut lat = enc.encode_descriptor(
                "petrel_health_probe_duration_seconds",
                "Probe durations per target",
                None,
                prometheus_client::metrics::MetricType::Histogram,
            )?;
            for t in &targets {
                let labels = vec![("pop", t.pop.clone()), ("target", t.name.clone())];
                let mut buckets: Vec<(f64, u64)> = crate::health::LATENCY_BUCKETS
                    .iter()
                    .copied()
                    .zip(t.latency_counts.iter().copied())
                    .collect();
                buckets.push((f64::INFINITY, t.latency_counts[crate::health::LATENCY_BUCKETS.len()]));
                let count = t.latency_counts.iter().sum();
                lat.encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        t.latency_sum,
                        count,
                        &buckets,
                        None,
                    )?;
            }
            let mut probes = enc.encode_descriptor(
                "petrel_health_probes",
                "Probes run per target since it was configured",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for t in &targets {
                let labels = vec![("pop", t.pop.clone()), ("target", t.name.clone())];
                ConstCounter::new(t.probes).encode(probes.encode_family(&labels)?)?;
            }
        }
        for (name, help, v) in [
            (
                "petrel_reloads_ok",
                "Successful config reloads",
                m.reloads_ok.load(Relaxed),
            ),
            (
                "petrel_reloads_failed",
                "Rejected config reloads (the previous generation kept serving)",
                m.reloads_failed.load(Relaxed),
            ),
            (
                "petrel_dns_dropped",
                "Packets dropped without an answer (not a query, or too short)",
                m.dropped.load(Relaxed),
            ),
            (
                "petrel_dns_tcp_accepted",
                "TCP connections accepted",
                m.tcp_accepted.load(Relaxed),
            ),
            (
                "petrel_dns_tcp_rejected",
                "TCP connections closed at once because the connection limit was reached",
                m.tcp_rejected.load(Relaxed),
            ),
            (
                "petrel_dns_tcp_idle_closed",
                "TCP connections closed by the idle timeout",
                m.tcp_idle_closed.load(Relaxed),
            ),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            ConstCounter::new(v).encode(me)?;
        }
        let age = g.built_at.elapsed().map_or(0.0, |d| d.as_secs_f64());
        for (name, help, v) in [
            (
                "petrel_generation_age_seconds",
                "Seconds since the serving generation was built",
                age,
            ),
            ("petrel_generation_id", "Id of the serving generation", g.id as f64),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstGauge::new(0f64).metric_type())?;
            ConstGauge::new(v).encode(me)?;
        }
        Ok(())
    }
}
