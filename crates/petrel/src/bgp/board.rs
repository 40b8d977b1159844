//! Session status for `petrel bgp summary`, the API and metrics.

pub use petrel_api::{PeerStatus, PublishStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

#[derive(Default, Debug)]
pub struct BgpBoard {
    peers: Mutex<BTreeMap<String, PeerStatus>>,
    publish: Mutex<PublishStats>,
    /// Connections closed at once: BGP from an address no peer has, BMP
    /// from an address no router has.
    pub unconfigured_bgp: AtomicU64,
    pub unconfigured_bmp: AtomicU64,
    /// Failed accepts on the BGP and BMP listeners.
    pub accept_errors: AtomicU64,
    /// The feeds the warm-up at start still waits for.
    warming: Mutex<Vec<String>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl BgpBoard {
    pub fn set_warming(&self, waiting: Vec<String>) {
        *self.warming.lock().expect("bgp board") = waiting;
    }

    /// The feeds the warm-up at start still waits for.
    pub fn warming(&self) -> Vec<String> {
        self.warming.lock().expect("bgp board").clone()
    }

    pub fn add(&self, s: PeerStatus) {
        self.peers.lock().expect("bgp board").insert(s.name.clone(), s);
    }

    pub fn remove(&self, name: &str) {
        self.peers.lock().expect("bgp board").remove(name);
    }

    pub fn update(&self, name: &str, f: impl FnOnce(&mut PeerStatus)) {
        if let Some(p) = self.peers.lock().expect("bgp board").get_mut(name) {
            f(p);
        }
    }

    pub fn set_state(&self, name: &str, state: &str) {
        self.update(name, |p| {
            if p.state != state {
                p.state = state.to_string();
                p.since_unix = unix_now();
            }
        });
    }

    pub fn set_prefixes(&self, name: &str, n: u64) {
        self.update(name, |p| p.prefixes = n);
    }

    pub fn record_publish(&self, delay: Duration, build: Duration, routes: u64) {
        let mut p = self.publish.lock().expect("bgp board");
        p.count += 1;
        p.last_delay_ms = delay.as_secs_f64() * 1e3;
        p.last_build_ms = build.as_secs_f64() * 1e3;
        p.routes = routes;
    }

    pub fn snapshot(&self) -> (Vec<PeerStatus>, PublishStats) {
        let peers = self.peers.lock().expect("bgp board").values().cloned().collect();
        (peers, self.publish.lock().expect("bgp board").clone())
    }
}

/// Renders the board at scrape time.
#[derive(Debug)]
pub struct BgpCollector(pub Arc<BgpBoard>);

impl Collector for BgpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let (peers, publish) = self.0.snapshot();
            type PeerMetric<T> = (&'static str, &'static str, fn(&PeerStatus) -> T);
            let gauges: [PeerMetric<i64>; 3] = [
                (
                    "petrel_bgp_session_established",
                    "1 if the BGP session is Established",
                    |p| (p.state == "Established") as i64,
                ),
                ("petrel_bgp_prefixes", "Routes the peer has in its view", |p| {
                    p.prefixes as i64
                }),
                (
                    "petrel_bgp_attribute_bytes",
                    "Bytes of attributes the peer's routes hold, each route counted whole (bgp.max_attr_mb bounds it)",
                    |p| p.attr_bytes as i64,
                ),
            ];
            for (name, help, f) in gauges {
                let mut me = enc.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
                for p in &peers {
                    let labels = vec![("peer", p.name.clone()), ("view", p.view.clone())];
                    ConstGauge::new(f(p)).encode(me.encode_family(&labels)?)?;
                }
            }
            let counters: [PeerMetric<u64>; 4] = [
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
                (
                    "petrel_bgp_paths_refused",
                    "ADD-PATH paths ignored: the peer already had the most allowed for the prefix",
                    |p| p.paths_refused,
                ),
            ];
            for (name, help, f) in counters {
                let mut me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
                for p in &peers {
                    let labels = vec![("peer", p.name.clone()), ("view", p.view.clone())];
                    ConstCounter::new(f(p)).encode(me.encode_family(&labels)?)?;
                }
            }
            for (name, help, v) in [
                (
                    "petrel_bgp_unconfigured_connections",
                    "BGP connections closed at once: no configured peer has their address",
                    &self.0.unconfigured_bgp,
                ),
                (
                    "petrel_bmp_unconfigured_connections",
                    "BMP connections closed at once: no configured router has their address",
                    &self.0.unconfigured_bmp,
                ),
                (
                    "petrel_bgp_accept_errors",
                    "Failed accepts on the BGP and BMP listeners",
                    &self.0.accept_errors,
                ),
            ] {
                let me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
                ConstCounter::new(v.load(Relaxed)).encode(me)?;
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
        Ok(())
    }
}
