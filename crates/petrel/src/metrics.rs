//! Counters of the DNS channel and their Prometheus exposition.
//!
//! The answer path only does relaxed atomic adds on counters it finds by
//! index; each worker resolves a generation's service and POP names to
//! counters once per config ([`CountersCache`]), and labels are resolved at
//! scrape time, never per query.

use petrel_config::Config;
use petrel_director::Generation;
use petrel_dns_auth::AnswerInfo;
use petrel_dns_wire::consts::{rcode, rtype};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
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

/// Counter handles for one config, indexed like its services and POPs.
pub struct GenCounters {
    services: Vec<Arc<SvcCounters>>,
    other: Arc<SvcCounters>,
    pops: Vec<Arc<AtomicU64>>,
}

/// The DNS channel's counters, by service and POP name (they outlive
/// reloads).
#[derive(Default, Debug)]
pub struct DnsMetrics {
    services: Mutex<BTreeMap<String, Arc<SvcCounters>>>,
    pops: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    pub dropped: AtomicU64,
    pub tcp_accepted: AtomicU64,
    pub tcp_rejected: AtomicU64,
    pub tcp_source_limited: AtomicU64,
    pub tcp_evicted: AtomicU64,
    pub tcp_idle_closed: AtomicU64,
    pub tcp_write_timeouts: AtomicU64,
    pub tcp_accept_errors: AtomicU64,
    /// Response rate limiting's accounts and counts (set at start).
    pub rrl: std::sync::OnceLock<Arc<petrel_dns_auth::rrl::Table>>,
    /// dnstap out (set at start when configured), and the tap the TCP
    /// connections share.
    pub dnstap: std::sync::OnceLock<Arc<crate::dnstap_out::Hub>>,
    pub dnstap_tcp: std::sync::OnceLock<Mutex<crate::dnstap_out::Tap>>,
}

const OTHER: &str = "";

impl DnsMetrics {
    fn counters_for(&self, config: &Config) -> GenCounters {
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
            if info.decision.fallback() {
                c.fallback.fetch_add(1, Relaxed);
            }
            for p in info.decision.pops() {
                if let Some(ctr) = gc.pops.get(p.index()) {
                    ctr.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// A worker's counters for the config it last answered from: looked up
/// again (under the registry's lock) only when a reload changed the config.
pub struct CountersCache {
    config: Weak<Config>,
    counters: GenCounters,
}

impl CountersCache {
    pub fn new(metrics: &DnsMetrics, g: &Generation) -> CountersCache {
        CountersCache {
            config: Arc::downgrade(&g.built.config),
            counters: metrics.counters_for(g.config()),
        }
    }

    #[inline]
    pub fn get(&mut self, metrics: &DnsMetrics, g: &Generation) -> &GenCounters {
        if !std::ptr::eq(self.config.as_ptr(), Arc::as_ptr(&g.built.config)) {
            *self = CountersCache::new(metrics, g);
        }
        &self.counters
    }
}

/// Renders the DNS counters at scrape time.
#[derive(Debug)]
pub struct DnsCollector(pub Arc<DnsMetrics>);
fn svc_label(name: &str) -> &str {
    if name.is_empty() {
        "-"
    } else {
        name
    }
}

impl Collector for DnsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &*self.0;
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
        for (name, help, v) in [
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
                "TCP connections closed at once: the limit was reached and none was idle to make room",
                m.tcp_rejected.load(Relaxed),
            ),
            (
                "petrel_dns_tcp_source_limited",
                "TCP connections closed at once: their client address already held tcp_max_per_source",
                m.tcp_source_limited.load(Relaxed),
            ),
            (
                "petrel_dns_tcp_evicted",
                "Idle TCP connections closed to make room for a new one at the limit (RFC 7766 §6.2.3)",
                m.tcp_evicted.load(Relaxed),
            ),
            (
                "petrel_dns_tcp_write_timeouts",
                "TCP connections closed because the client did not read its answers within the idle timeout",
                m.tcp_write_timeouts.load(Relaxed),
            ),
            (
                "petrel_dns_tcp_accept_errors",
                "Failed accepts on DNS TCP listeners (e.g. no descriptor left)",
                m.tcp_accept_errors.load(Relaxed),
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
        if let Some(h) = m.dnstap.get() {
            let me = enc.encode_descriptor(
                "petrel_dnstap_connected",
                "1 while a dnstap collector is connected",
                None,
                prometheus_client::metrics::gauge::ConstGauge::new(0i64).metric_type(),
            )?;
            prometheus_client::metrics::gauge::ConstGauge::new(i64::from(h.stats.connected.load(Relaxed)))
                .encode(me)?;
            let st = &h.stats;
            counters(
                &mut enc,
                &[
                    (
                        "petrel_dnstap_messages",
                        "dnstap messages written to the collector",
                        st.sent.load(Relaxed),
                    ),
                    (
                        "petrel_dnstap_dropped",
                        "Exchanges not logged to dnstap: a DNS thread's queue was full",
                        st.dropped.load(Relaxed),
                    ),
                    (
                        "petrel_dnstap_lost",
                        "Exchanges not logged to dnstap: no collector connected, or a write failed",
                        st.lost.load(Relaxed),
                    ),
                ],
            )?;
        }
        if let Some(t) = m.rrl.get() {
            let st = &t.stats;
            for (name, help, by_kind) in [
                (
                    "petrel_dns_rrl_dropped",
                    "UDP responses not sent: their client network was over its rate ([server.rrl]), by kind",
                    &st.dropped,
                ),
                (
                    "petrel_dns_rrl_slipped",
                    "UDP responses sent truncated instead of dropped ([server.rrl] slip), by kind",
                    &st.slipped,
                ),
            ] {
                let mut me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
                for (k, v) in petrel_config::RRL_KINDS.iter().zip(by_kind) {
                    ConstCounter::new(v.load(Relaxed)).encode(me.encode_family(&[("kind", *k)])?)?;
                }
            }
            counters(
                &mut enc,
                &[(
                    "petrel_dns_rrl_evicted",
                    "Rate-limiting accounts replaced by another network's while still active (table too small)",
                    st.evicted.load(Relaxed),
                )],
            )?;
        }
        Ok(())
    }
}

/// Plain counters, each a name, its help and its value.
pub fn counters(enc: &mut DescriptorEncoder, list: &[(&str, &str, u64)]) -> Result<(), std::fmt::Error> {
    for &(name, help, v) in list {
        let c = ConstCounter::new(v);
        c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)?;
    }
    Ok(())
}
