//! Counters of the HTTP fronts: requests by front, rule and outcome, the
//! connections' RTT by outcome, upstream errors and latency.
//!
//! A request finds its counters in a map it reads without a lock or an
//! allocation (an `ArcSwap` of nested maps looked up by `&str`); a rule seen
//! for the first time is added under a mutex, once.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::histogram::Histogram;
use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Redirect,
    /// Edge: served here (through the upstream).
    Stay,
    /// The fallback's upstream.
    Proxy,
    /// No rule matched; the fallback's fixed response.
    NoMatch,
    /// A rule matched but no POP is usable for the client.
    NoPop,
    Api,
    /// The RUM tag, beacon object or collector.
    Rum,
}

const OUTCOMES: [Outcome; 7] = [
    Outcome::Redirect,
    Outcome::Stay,
    Outcome::Proxy,
    Outcome::NoMatch,
    Outcome::NoPop,
    Outcome::Api,
    Outcome::Rum,
];

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Redirect => "redirect",
            Outcome::Stay => "stay",
            Outcome::Proxy => "proxy",
            Outcome::NoMatch => "no-match",
            Outcome::NoPop => "no-pop",
            Outcome::Api => "remap-api",
            Outcome::Rum => "rum",
        }
    }

    fn idx(self) -> usize {
        OUTCOMES.iter().position(|&o| o == self).unwrap_or(0)
    }
}

/// Upper bounds (ms) of the RTT and latency buckets.
const BUCKETS_MS: [f64; 10] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 1000.0, 3000.0];
const NB: usize = BUCKETS_MS.len() + 1;

#[derive(Debug, Default)]
struct Hist {
    counts: [AtomicU64; NB],
    sum_us: AtomicU64,
}

impl Hist {
    fn observe(&self, ms: f64) {
        let b = BUCKETS_MS.iter().position(|&ub| ms <= ub).unwrap_or(NB - 1);
        self.counts[b].fetch_add(1, Relaxed);
        self.sum_us.fetch_add((ms * 1000.0) as u64, Relaxed);
    }

    /// Sum (seconds), count, and each bucket's own count (the encoder
    /// makes them cumulative).
    fn render(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(NB);
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Relaxed);
            total += n;
            let ub = BUCKETS_MS.get(i).map_or(f64::INFINITY, |ms| ms / 1000.0);
            buckets.push((ub, n));
        }
        (self.sum_us.load(Relaxed) as f64 / 1e6, total, buckets)
    }
}

#[derive(Debug, Default)]
struct RuleCounters {
    requests: [AtomicU64; OUTCOMES.len()],
    rtt: [Hist; OUTCOMES.len()],
}

type Map = HashMap<String, HashMap<String, Arc<RuleCounters>>>;

#[derive(Debug, Default)]
pub struct HttpMetrics {
    rules: arc_swap::ArcSwap<Map>,
    adding: Mutex<()>,
    pub upstream_errors: AtomicU64,
    upstream_latency: Hist,
    pub connections_refused: AtomicU64,
    pub proxy_header_errors: AtomicU64,
}

impl HttpMetrics {
    fn counters(&self, front: &str, rule: &str) -> Arc<RuleCounters> {
        if let Some(c) = self.rules.load().get(front).and_then(|m| m.get(rule)) {
            return c.clone();
        }
        let _g = self.adding.lock().expect("http metrics");
        let mut m: Map = (**self.rules.load()).clone();
        let c = m
            .entry(front.to_string())
            .or_default()
            .entry(rule.to_string())
            .or_default()
            .clone();
        self.rules.store(Arc::new(m));
        c
    }

    pub fn record(&self, front: &str, rule: &str, o: Outcome, rtt_ms: Option<f64>) {
        let c = self.counters(front, rule);
        c.requests[o.idx()].fetch_add(1, Relaxed);
        if let Some(r) = rtt_ms {
            c.rtt[o.idx()].observe(r);
        }
    }

    pub fn upstream(&self, took: Duration, ok: bool) {
        if ok {
            self.upstream_latency.observe(took.as_secs_f64() * 1000.0);
        } else {
            self.upstream_errors.fetch_add(1, Relaxed);
        }
    }
}

/// Renders the counters at scrape time.
#[derive(Debug)]
pub struct HttpCollector(pub Arc<HttpMetrics>);

impl Collector for HttpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let rules = m.rules.load();
        let mut me = enc.encode_descriptor(
            "petrel_http_requests",
            "HTTP requests by front, rule (empty: none matched) and outcome",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (front, rs) in rules.iter() {
            for (rule, c) in rs {
                for o in OUTCOMES {
                    let n = c.requests[o.idx()].load(Relaxed);
                    if n > 0 {
                        let labels = [
                            ("front", front.as_str()),
                            ("rule", rule.as_str()),
                            ("action", o.label()),
                        ];
                        ConstCounter::new(n).encode(me.encode_family(&labels)?)?;
                    }
                }
            }
        }
        let mut me = enc.encode_descriptor(
            "petrel_http_connection_rtt_seconds",
            "Smoothed RTT of the connection (TCP_INFO) when an edge rule decided, by action",
            None,
            Histogram::new([1.0]).metric_type(),
        )?;
        for (front, rs) in rules.iter() {
            for (rule, c) in rs {
                for o in OUTCOMES {
                    let (sum, count, buckets) = c.rtt[o.idx()].render();
                    if count > 0 {
                        let labels = [
                            ("front", front.as_str()),
                            ("rule", rule.as_str()),
                            ("action", o.label()),
                        ];
                        me.encode_family(&labels)?
                            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
                    }
                }
            }
        }
        let (sum, count, buckets) = m.upstream_latency.render();
        let mut me = enc.encode_descriptor(
            "petrel_http_upstream_latency_seconds",
            "Time to the upstream's response head",
            None,
            Histogram::new([1.0]).metric_type(),
        )?;
        me.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        for (name, help, v) in [
            (
                "petrel_http_upstream_errors",
                "Requests the upstream could not answer (connection refused, reset, timeout)",
                &m.upstream_errors,
            ),
            (
                "petrel_http_connections_refused",
                "Connections closed at once because the front's connection limit was reached",
                &m.connections_refused,
            ),
            (
                "petrel_http_proxy_header_errors",
                "Connections from trusted proxies dropped for a missing or malformed PROXY header",
                &m.proxy_header_errors,
            ),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            ConstCounter::new(v.load(Relaxed)).encode(me)?;
        }
        Ok(())
    }
}
