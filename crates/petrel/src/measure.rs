//! The measurement loop's IO shell: samples in (imports now; beacons and
//! the HTTP fronts' connection RTTs feed the same `ingest`), aggregates per
//! map unit and POP in memory, and a recompile on a schedule that hands
//! the latency policy its input through the decision core. Decisions
//! never wait for it: a recompile is one more input, like routing views.

use petrel_config::MeasureConf;
use petrel_director::{Input, Publisher};
use petrel_measure::beacon::{parse_import, Refused};
use petrel_measure::table::{build, Alone};
use petrel_measure::{unit_of, Sample};
use petrel_types::{PopIdx, Prefix};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Alerts per (unit, POP), with the latest events.
#[derive(Default)]
struct AlertBoard {
    watches: Option<petrel_measure::alert::Alerts<(Prefix, PopIdx)>>,
    recent: std::collections::VecDeque<petrel_api::AlertEvent>,
}

/// Samples offered from request paths wait here for the ingest thread.
const QUEUE: usize = 65_536;

/// Every unit's aggregates, and what came in.
pub struct Measurements {
    units: Mutex<petrel_measure::store::Units>,
    accepted: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
    recompiles: AtomicU64,
    ranked_units: AtomicU64,
    /// Request paths never wait: a full queue drops and counts.
    queue: std::sync::mpsc::SyncSender<Sample>,
    queued: Mutex<Option<std::sync::mpsc::Receiver<Sample>>>,
    dropped: AtomicU64,
    alerts: Mutex<AlertBoard>,
    warehouse: std::sync::OnceLock<Arc<crate::warehouse::Warehouse>>,
}

impl Default for Measurements {
    fn default() -> Self {
        let (queue, rx) = std::sync::mpsc::sync_channel(QUEUE);
        Measurements {
            units: Mutex::default(),
            accepted: AtomicU64::new(0),
            refused: Default::default(),
            recompiles: AtomicU64::new(0),
            ranked_units: AtomicU64::new(0),
            queue,
            queued: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            alerts: Mutex::default(),
            warehouse: std::sync::OnceLock::new(),
        }
    }
}

impl Measurements {
    pub fn set_warehouse(&self, w: Arc<crate::warehouse::Warehouse>) {
        let _ = self.warehouse.set(w);
    }

    pub fn warehouse(&self) -> Option<&Arc<crate::warehouse::Warehouse>> {
        self.warehouse.get()
    }

    /// A sample from a request path (a connection's RTT): queued for the
    /// ingest thread, or dropped and counted when it is behind.
    pub fn offer(&self, s: Sample) {
        if self.queue.try_send(s).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    pub fn refuse(&self, why: Refused) {
        if let Some(i) = Refused::ALL.iter().position(|&r| r == why) {
            self.refused[i].fetch_add(1, Relaxed);
        }
    }

    /// Take new samples: aggregated and counted.
    pub fn ingest(&self, conf: &MeasureConf, samples: &[Sample]) {
        self.aggregate(conf, samples);
        self.accepted.fetch_add(samples.len() as u64, Relaxed);
    }

    /// Samples into their units' aggregates and the alert watches.
    fn aggregate(&self, conf: &MeasureConf, samples: &[Sample]) {
        if let Some(p) = conf.alerts {
            let mut b = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
            let w = b.watches.get_or_insert_with(|| petrel_measure::alert::Alerts::new(p));
            w.set_params(p);
            for s in samples {
                w.add((unit_of(s.client, None, conf.unit), s.pop), s.at_ms, s.rtt_us);
            }
        }
        let mut u = self.units.lock().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            u.add(s, conf.unit, conf.decay, conf.max_units);
        }
    }

    /// Import JSON lines (see `petrel_measure::beacon`): samples taken, and
    /// refusals by reason.
    pub fn import(
        &self,
        conf: &MeasureConf,
        body: &[u8],
        now_ms: u64,
        pop_of: impl Fn(&str) -> Option<PopIdx>,
    ) -> (petrel_api::ImportResult, Vec<Sample>) {
        let mut out = petrel_api::ImportResult::default();
        let (samples, refused) = parse_import(body, now_ms, pop_of);
        for why in refused {
            self.refuse(why);
            *out.refused.entry(why.label().to_string()).or_default() += 1;
        }
        self.ingest(conf, &samples);
        out.accepted = samples.len() as u64;
        (out, samples)
    }

    /// Drop what has faded away, and compile the rest into the latency
    /// policy's input.
    fn compile(&self, conf: &MeasureConf, now_ms: u64) -> petrel_mapping::LatencyData {
        let mut u = self.units.lock().unwrap_or_else(|e| e.into_inner());
        u.prune(now_ms, conf.decay);
        let data = build(&u.map, &conf.rank, conf.decay, &Alone);
        self.ranked_units.store(data.entries.len() as u64, Relaxed);
        self.recompiles.fetch_add(1, Relaxed);
        data
    }

    /// Judge every watch at `now_ms`; log what opens and closes.
    fn tick_alerts(&self, pop_names: &[String], now_ms: u64) {
        let mut b = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = b.watches.as_mut() else {
            return;
        };
        let events = w.tick(now_ms);
        for ((unit, pop), e) in events {
            let pop = pop_names.get(pop.index()).cloned().unwrap_or_default();
            let (event, baseline_ms, current_ms) = match e {
                petrel_measure::alert::Event::Opened {
                    baseline_ms,
                    current_ms,
                    ..
                } => {
                    tracing::warn!(%unit, %pop, baseline_ms, current_ms, "latency alert opened: a network got slower to a POP");
                    ("opened", baseline_ms, current_ms)
                }
                petrel_measure::alert::Event::Closed {
                    baseline_ms,
                    current_ms,
                    ..
                } => {
                    tracing::info!(%unit, %pop, baseline_ms, current_ms, "latency alert closed");
                    ("closed", baseline_ms, current_ms)
                }
            };
            b.recent.push_back(petrel_api::AlertEvent {
                at_unix_ms: now_ms,
                unit: unit.to_string(),
                pop,
                event: event.into(),
                baseline_ms,
                current_ms,
            });
            while b.recent.len() > 100 {
                b.recent.pop_front();
            }
        }
    }

    /// The alerts open now, and the latest events.
    pub fn alerts(&self, pop_names: &[String]) -> petrel_api::AlertsResult {
        use petrel_measure::alert::State;
        let b = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let mut open: Vec<petrel_api::AlertView> = b
            .watches
            .iter()
            .flat_map(|w| w.open())
            .filter_map(|((unit, pop), w)| {
                let (state, opened, baseline) = match w.state() {
                    State::Open { opened_ms, baseline_ms } => ("open", opened_ms, baseline_ms),
                    State::Recovering {
                        opened_ms, baseline_ms, ..
                    } => ("recovering", opened_ms, baseline_ms),
                    _ => return None,
                };
                Some(petrel_api::AlertView {
                    unit: unit.to_string(),
                    pop: pop_names.get(pop.index()).cloned().unwrap_or_default(),
                    state: state.into(),
                    opened_unix_ms: opened,
                    baseline_ms: baseline,
                    current_ms: w.current().summary().map_or(0.0, |s| s.median_ms),
                })
            })
            .collect();
        open.sort_by(|a, b| (&a.unit, &a.pop).cmp(&(&b.unit, &b.pop)));
        petrel_api::AlertsResult {
            open,
            recent: b.recent.iter().cloned().collect(),
        }
    }

    pub fn unit_count(&self) -> usize {
        self.units.lock().unwrap_or_else(|e| e.into_inner()).map.len()
    }
}

/// Samples as the warehouse stores them, enriched from the serving
/// generation: the origin AS of the client's route (the first view that
/// has one) and its GeoIP country and city.
pub fn rows(g: &petrel_director::Generation, samples: &[Sample], beacon: Option<&str>) -> Vec<crate::warehouse::Row> {
    let conf = g.config();
    let unit_mode = conf
        .measure
        .as_ref()
        .map_or_else(petrel_measure::UnitMode::default, |m| m.unit);
    samples
        .iter()
        .map(|s| {
            let host = Prefix::host(s.client);
            let asn = g
                .built
                .bgp
                .as_ref()
                .and_then(|b| (0..b.views.len()).find_map(|v| b.path_at(v, &host).and_then(|p| p.origin())));
            let geo = g.built.geo.as_ref().and_then(|t| t.lookup(&host)).map(|(l, _)| l);
            crate::warehouse::Row {
                sample: *s,
                pop: conf.pops.get(s.pop.index()).map(|p| p.name.clone()).unwrap_or_default(),
                unit: unit_of(s.client, None, unit_mode).to_string(),
                beacon: beacon.map(str::to_string),
                asn,
                country: geo.and_then(|l| l.country.clone()),
                city: geo.and_then(|l| l.city.clone()),
            }
        })
        .collect()
}

/// Rebuild the aggregates from the warehouse's recent samples (ten
/// half-lives back; older ones weigh nothing).
pub fn restore(m: &Measurements, conf: &MeasureConf, g: &petrel_director::Generation) -> Result<usize, String> {
    let Some(path) = &conf.database else {
        return Ok(0);
    };
    let since = unix_ms().saturating_sub(conf.decay.half_life_ms.saturating_mul(10));
    let rows = crate::warehouse::Warehouse::recent(path, since)?;
    let samples: Vec<Sample> = rows
        .into_iter()
        .filter_map(|(t, client, pop, rtt)| {
            Some(Sample {
                at_ms: t,
                client: client.parse().ok()?,
                pop: g.config().pop_index(&pop)?,
                rtt_us: rtt,
                kind: petrel_measure::Kind::Import,
                resolver: None,
            })
        })
        .collect();
    // Not counted as new samples: they were counted when they came in.
    m.aggregate(conf, &samples);
    Ok(samples.len())
}

/// Recompile on the schedule `[measure]` sets, for as long as the process
/// runs; a config without `[measure]` only waits for one that has it.
pub fn spawn(publisher: Arc<Publisher>, m: Arc<Measurements>) -> std::io::Result<()> {
    // Offered samples, in batches.
    if let Some(rx) = m.queued.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let (publisher, m) = (publisher.clone(), m.clone());
        std::thread::Builder::new().name("measure-in".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < 4096 {
                    match rx.try_recv() {
                        Ok(s) => batch.push(s),
                        Err(_) => break,
                    }
                }
                let g = publisher.load();
                if let Some(conf) = g.config().measure.clone() {
                    m.ingest(&conf, &batch);
                    if let Some(w) = m.warehouse() {
                        if !w.offer(rows(&g, &batch, None)) {
                            m.dropped.fetch_add(batch.len() as u64, Relaxed);
                        }
                    }
                }
            }
        })?;
    }
    std::thread::Builder::new().name("measure".into()).spawn(move || {
        let mut last_units = 0;
        loop {
            let conf = publisher.load().config().measure.clone();
            let Some(conf) = conf else {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            std::thread::sleep(Duration::from_secs(conf.recompile_secs));
            let now = unix_ms();
            let names: Vec<String> = publisher.load().config().pops.iter().map(|p| p.name.clone()).collect();
            m.tick_alerts(&names, now);
            let data = m.compile(&conf, now);
            // Nothing measured, before or now: nothing to publish.
            if data.entries.is_empty() && last_units == 0 {
                continue;
            }
            last_units = data.entries.len();
            let t0 = std::time::Instant::now();
            let id = publisher.set_input(Input::Latency(Arc::new(data)));
            tracing::debug!(units = last_units, generation = ?id, took_ms = t0.elapsed().as_millis() as u64, "latency recompiled");
        }
    })?;
    Ok(())
}

/// The measurement loop's counters.
pub struct MeasureCollector(pub Arc<Measurements>);

impl std::fmt::Debug for MeasureCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeasureCollector")
    }
}

impl Collector for MeasureCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let c = ConstCounter::new(m.accepted.load(Relaxed));
        c.encode(enc.encode_descriptor(
            "petrel_measure_samples",
            "Latency samples taken (imports, beacons, connection RTTs)",
            None,
            c.metric_type(),
        )?)?;
        let mut fam = enc.encode_descriptor(
            "petrel_measure_refused",
            "Beacons and import lines refused, by reason (nothing of them is kept)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (i, r) in Refused::ALL.iter().enumerate() {
            let c = ConstCounter::new(m.refused[i].load(Relaxed));
            c.encode(fam.encode_family(&[("reason", r.label())])?)?;
        }
        let c = ConstCounter::new(m.recompiles.load(Relaxed));
        c.encode(enc.encode_descriptor("petrel_measure_recompiles", "Latency recompiles", None, c.metric_type())?)?;
        let c = ConstCounter::new(m.dropped.load(Relaxed));
        c.encode(enc.encode_descriptor(
            "petrel_measure_samples_dropped",
            "Connection RTT samples dropped: the ingest queue was full",
            None,
            c.metric_type(),
        )?)?;
        let over = m.units.lock().map_or(0, |u| u.over_limit);
        let c = ConstCounter::new(over);
        c.encode(enc.encode_descriptor(
            "petrel_measure_samples_over_limit",
            "Samples of new units not tracked: measure.max_units were",
            None,
            c.metric_type(),
        )?)?;
        for (name, help, v) in [
            (
                "petrel_measure_units",
                "Map units with aggregates",
                m.unit_count() as i64,
            ),
            (
                "petrel_measure_ranked_units",
                "Units the latency policy ranks (own samples or borrowed)",
                m.ranked_units.load(Relaxed) as i64,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}
