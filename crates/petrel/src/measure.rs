//! The measurement loop's IO shell: samples in (imports now; beacons and
//! the HTTP fronts' connection RTTs feed the same `ingest`), aggregates per
//! map unit and POP in memory, and a recompile on a schedule that hands
//! the latency policy its input through the decision core. Decisions
//! never wait for it: a recompile is one more input, like routing views.

use petrel_config::MeasureConf;
use petrel_director::Generation;
use petrel_director::{Input, Publisher};
use petrel_measure::beacon::{parse_import, Refused};
use petrel_measure::context::{Change, Changes, Watched as AlertKey};
use petrel_measure::routing::Routing;
use petrel_measure::table::build;
use petrel_measure::{Kind, Sample};
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

/// A sample's map unit and origin AS, as ingest found them.
pub type Keyed = (Prefix, Option<u32>);

/// Alerts per (unit or AS, POP), with the latest events, and what each
/// open alert's routing context was when it opened.
#[derive(Default)]
struct AlertBoard {
    watches: Option<petrel_measure::alert::Alerts<(AlertKey, PopIdx)>>,
    recent: std::collections::VecDeque<petrel_api::AlertEvent>,
    context: std::collections::HashMap<(AlertKey, PopIdx), Vec<petrel_api::PathChangeView>>,
}

/// Path changes kept in memory for alert contexts (the warehouse keeps
/// them all).
const CHANGES: usize = 20_000;
/// How far back of an alert's opening its context looks.
const CONTEXT_MS: u64 = 3_600_000;
/// At most this many changes in one alert's context.
const CONTEXT_MAX: usize = 20;

/// RTT buckets of the per-POP histograms, in seconds.
const RTT_BUCKETS_S: [f64; 14] = [
    0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0,
];

/// The per-POP medians in the metrics forget at this pace: they say what
/// the last few minutes looked like.
const METRICS_DECAY: petrel_measure::Decay = petrel_measure::Decay { half_life_ms: 300_000 };

/// Every sample of one POP and kind, for the metrics.
#[derive(Default)]
struct RttHistogram {
    buckets: [u64; RTT_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

/// Per POP (by name: reloads renumber POPs): a histogram per kind, and
/// the recent aggregate.
#[derive(Default)]
struct PopRtts {
    by_pop: std::collections::BTreeMap<String, ([RttHistogram; KINDS.len()], petrel_measure::Aggregate)>,
}

const KINDS: [Kind; 3] = [Kind::Rum, Kind::Passive, Kind::Import];

/// Samples offered from request paths wait here for the ingest thread.
const QUEUE: usize = 65_536;
/// Placed samples (a beacon's, an import's) wait here for the thread that
/// owns the aggregates; batches, so this is up to that many beacons.
const PLACED_QUEUE: usize = 65_536;

/// How often the aggregating thread takes what is queued.
const AGGREGATE_EVERY: Duration = Duration::from_millis(10);

/// Samples with their unit and AS, on their way to the aggregates.
type Placed = Vec<(Sample, Keyed)>;

/// Every unit's aggregates, and what came in.
pub struct Measurements {
    /// Locked by the aggregating thread (and the restore before it
    /// starts), never by a request path: a recompile holds it while it
    /// builds, which takes as long as a second with a million units.
    units: Mutex<petrel_measure::store::Units>,
    unit_count: AtomicU64,
    over_limit: AtomicU64,
    placed: std::sync::mpsc::SyncSender<Placed>,
    placed_rx: Mutex<Option<std::sync::mpsc::Receiver<Placed>>>,
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
    rdns: std::sync::OnceLock<Arc<crate::rdns::Rdns>>,
    changes: Mutex<Changes>,
    changes_seen: AtomicU64,
    changes_left_out: AtomicU64,
    /// Alert events for the webhook, when one is configured.
    hooks: std::sync::OnceLock<tokio::sync::mpsc::Sender<(petrel_config::Webhook, String)>>,
    hooks_failed: Arc<AtomicU64>,
    rtts: Mutex<PopRtts>,
    /// Resolver discovery: ids the DNS side saw, waiting for their beacon.
    whoami: Mutex<petrel_measure::whoami::Joins>,
    whoami_joined: AtomicU64,
    whoami_unjoined: AtomicU64,
    alerts_opened: AtomicU64,
}

/// Ids wait this long for their beacon (the tag sends it within seconds).
const WHOAMI_KEEP_MS: u64 = 120_000;
/// At most this many ids wait.
const WHOAMI_MAX: usize = 100_000;

impl Default for Measurements {
    fn default() -> Self {
        let (queue, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let (placed, placed_rx) = std::sync::mpsc::sync_channel(PLACED_QUEUE);
        Measurements {
            units: Mutex::default(),
            unit_count: AtomicU64::new(0),
            over_limit: AtomicU64::new(0),
            placed,
            placed_rx: Mutex::new(Some(placed_rx)),
            accepted: AtomicU64::new(0),
            refused: Default::default(),
            recompiles: AtomicU64::new(0),
            ranked_units: AtomicU64::new(0),
            queue,
            queued: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            alerts: Mutex::default(),
            warehouse: std::sync::OnceLock::new(),
            rdns: std::sync::OnceLock::new(),
            changes: Mutex::new(Changes::new(CHANGES)),
            changes_seen: AtomicU64::new(0),
            changes_left_out: AtomicU64::new(0),
            hooks: std::sync::OnceLock::new(),
            hooks_failed: Arc::default(),
            rtts: Mutex::default(),
            whoami: Mutex::new(petrel_measure::whoami::Joins::new(WHOAMI_MAX, WHOAMI_KEEP_MS)),
            whoami_joined: AtomicU64::new(0),
            whoami_unjoined: AtomicU64::new(0),
            alerts_opened: AtomicU64::new(0),
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

    pub fn set_rdns(&self, r: Arc<crate::rdns::Rdns>) {
        let _ = self.rdns.set(r);
    }

    pub fn rdns(&self) -> Option<&crate::rdns::Rdns> {
        self.rdns.get().map(|r| &**r)
    }

    /// The DNS side answered a resolver-discovery name to `resolver`.
    pub fn whoami_asked(&self, w: &petrel_dns_auth::WhoamiAsked, resolver: std::net::IpAddr) {
        let asked = petrel_measure::whoami::Asked {
            at_ms: unix_ms(),
            resolver: resolver.to_canonical(),
            ecs: w.ecs,
        };
        self.whoami
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(w.id(), asked);
    }

    /// The beacon of `id` came in: who asked for its name, if anyone did.
    pub fn whoami_take(&self, id: &str) -> Option<petrel_measure::whoami::Asked> {
        let found = self
            .whoami
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(id.as_bytes(), unix_ms());
        match found {
            Some(_) => self.whoami_joined.fetch_add(1, Relaxed),
            None => self.whoami_unjoined.fetch_add(1, Relaxed),
        };
        found
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

    /// Take new samples: placed (unit and AS, from the serving
    /// generation's routing views and GeoIP), counted, and queued for the
    /// aggregates; returned placed, for the warehouse's rows. No lock: a
    /// full queue drops them from the aggregates (counted), not from the
    /// warehouse.
    pub fn ingest(&self, g: &Generation, conf: &MeasureConf, samples: &[Sample]) -> Vec<Keyed> {
        let keyed = place(g, conf, samples);
        self.accepted.fetch_add(samples.len() as u64, Relaxed);
        let placed: Placed = samples.iter().copied().zip(keyed.iter().copied()).collect();
        if self.placed.try_send(placed).is_err() {
            self.dropped.fetch_add(samples.len() as u64, Relaxed);
        }
        keyed
    }

    /// Placed samples into their units' aggregates, the alert watches and
    /// the POPs' RTT metrics: the aggregating thread's work.
    fn aggregate(&self, g: &Generation, conf: &MeasureConf, placed: &[(Sample, Keyed)]) {
        if let Some(p) = conf.alerts {
            let mut b = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
            let w = b.watches.get_or_insert_with(|| petrel_measure::alert::Alerts::new(p));
            w.set_params(p);
            for (s, (unit, asn)) in placed {
                w.add((AlertKey::Unit(*unit), s.pop), s.at_ms, s.rtt_us);
                if let Some(a) = asn {
                    w.add((AlertKey::Asn(*a), s.pop), s.at_ms, s.rtt_us);
                }
            }
        }
        let mut u = self.units.lock().unwrap_or_else(|e| e.into_inner());
        for (s, (unit, _)) in placed {
            u.add(*unit, s, conf.decay, conf.max_units);
        }
        self.unit_count.store(u.map.len() as u64, Relaxed);
        self.over_limit.store(u.over_limit, Relaxed);
        drop(u);
        let mut r = self.rtts.lock().unwrap_or_else(|e| e.into_inner());
        let pops = &g.config().pops;
        for (s, _) in placed {
            let Some(pop) = pops.get(s.pop.index()) else { continue };
            // Found by borrowed name: no allocation but a POP's first.
            let e = match r.by_pop.get_mut(pop.name.as_str()) {
                Some(e) => e,
                None => r.by_pop.entry(pop.name.clone()).or_default(),
            };
            let secs = f64::from(s.rtt_us) / 1e6;
            let h = &mut e.0[KINDS.iter().position(|&k| k == s.kind).unwrap_or(0)];
            h.count += 1;
            h.sum_s += secs;
            if let Some(i) = RTT_BUCKETS_S.iter().position(|&b| secs <= b) {
                h.buckets[i] += 1;
            }
            e.1.add(s.at_ms, s.rtt_us, METRICS_DECAY);
        }
    }

    /// Import JSON lines (see `petrel_measure::beacon`): samples taken, and
    /// refusals by reason.
    pub fn import(
        &self,
        g: &Generation,
        conf: &MeasureConf,
        body: &[u8],
        now_ms: u64,
        pop_of: impl Fn(&str) -> Option<PopIdx>,
    ) -> (petrel_api::ImportResult, Vec<Sample>, Vec<Keyed>) {
        let mut out = petrel_api::ImportResult::default();
        let (samples, refused) = parse_import(body, now_ms, pop_of);
        for why in refused {
            self.refuse(why);
            *out.refused.entry(why.label().to_string()).or_default() += 1;
        }
        let keyed = self.ingest(g, conf, &samples);
        out.accepted = samples.len() as u64;
        (out, samples, keyed)
    }

    /// Drop what has faded away, and compile the rest into the latency
    /// policy's input.
    fn compile(&self, g: &Generation, conf: &MeasureConf, now_ms: u64) -> petrel_mapping::LatencyData {
        let mut u = self.units.lock().unwrap_or_else(|e| e.into_inner());
        u.prune(now_ms, conf.decay);
        self.unit_count.store(u.map.len() as u64, Relaxed);
        let routing = Routing::new(g.built.bgp.as_deref(), g.built.geo.as_deref(), conf.unit);
        let data = build(&u.map, &conf.rank, conf.decay, &routing);
        self.ranked_units.store(data.entries.len() as u64, Relaxed);
        self.recompiles.fetch_add(1, Relaxed);
        data
    }

    /// Judge every watch at `now_ms`; log what opens and closes, and
    /// hand the events to the webhook.
    fn tick_alerts(&self, pop_names: &[String], webhook: Option<&petrel_config::Webhook>, now_ms: u64) {
        let mut b = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = b.watches.as_mut() else {
            return;
        };
        let events = w.tick(now_ms);
        for ((key, pop_idx), e) in events {
            let pop = pop_names.get(pop_idx.index()).cloned().unwrap_or_default();
            let (event, baseline_ms, current_ms, context) = match e {
                petrel_measure::alert::Event::Opened {
                    baseline_ms,
                    current_ms,
                    ..
                } => {
                    self.alerts_opened.fetch_add(1, Relaxed);
                    let context = self.context(key, &pop, now_ms);
                    tracing::warn!(network = %key, %pop, baseline_ms, current_ms, path_changes = context.len(), "latency alert opened: a network got slower to a POP");
                    b.context.insert((key, pop_idx), context.clone());
                    ("opened", baseline_ms, current_ms, context)
                }
                petrel_measure::alert::Event::Closed {
                    baseline_ms,
                    current_ms,
                    ..
                } => {
                    tracing::info!(network = %key, %pop, baseline_ms, current_ms, "latency alert closed");
                    b.context.remove(&(key, pop_idx));
                    ("closed", baseline_ms, current_ms, Vec::new())
                }
            };
            let ev = petrel_api::AlertEvent {
                at_unix_ms: now_ms,
                by: key.by().into(),
                key: key.to_string(),
                pop,
                event: event.into(),
                baseline_ms,
                current_ms,
                path_changes: context,
            };
            if let (Some(hook), Some(tx)) = (webhook, self.hooks.get()) {
                let body = serde_json::to_string(&ev).unwrap_or_default();
                if tx.try_send((hook.clone(), body)).is_err() {
                    self.hooks_failed.fetch_add(1, Relaxed);
                }
            }
            b.recent.push_back(ev);
            while b.recent.len() > 100 {
                b.recent.pop_front();
            }
        }
    }

    /// The path changes of `pop`'s view that concern `key`, from an hour
    /// before `now_ms`, the latest last.
    fn context(&self, key: AlertKey, pop: &str, now_ms: u64) -> Vec<petrel_api::PathChangeView> {
        let changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        changes
            .before(key, pop, now_ms, CONTEXT_MS, CONTEXT_MAX)
            .into_iter()
            .map(|c| petrel_api::PathChangeView {
                at_unix_ms: c.at_ms,
                view: c.view.clone(),
                prefix: c.prefix.to_string(),
                old_path: c.old_path.clone(),
                new_path: c.new_path.clone(),
            })
            .collect()
    }

    /// Record the path changes between two publications of the views:
    /// kept for alert contexts, and stored.
    pub fn record_changes(&self, old: &petrel_mapping::BgpData, new: &petrel_mapping::BgpData, now_ms: u64) {
        let (found, left_out) = petrel_mapping::routed::path_changes(old, new, 100_000);
        if found.is_empty() && left_out == 0 {
            return;
        }
        self.changes_seen.fetch_add((found.len() + left_out) as u64, Relaxed);
        self.changes_left_out.fetch_add(left_out as u64, Relaxed);
        let text = |p: &Option<petrel_mapping::BgpPath>| p.as_ref().map_or_else(String::new, |p| p.to_string());
        let kept: Vec<Change> = found
            .iter()
            .map(|c| Change {
                at_ms: now_ms,
                view: c.view.clone(),
                prefix: c.prefix,
                origins: [
                    c.old.as_ref().and_then(|p| p.origin()),
                    c.new.as_ref().and_then(|p| p.origin()),
                ],
                old_path: text(&c.old),
                new_path: text(&c.new),
            })
            .collect();
        tracing::debug!(changes = kept.len(), left_out, "best paths changed");
        if let Some(w) = self.warehouse() {
            let rows = kept
                .iter()
                .map(|c| crate::warehouse::ChangeRow {
                    at_ms: now_ms,
                    view: c.view.clone(),
                    prefix: c.prefix.to_string(),
                    old_path: c.old_path.clone(),
                    new_path: c.new_path.clone(),
                })
                .collect();
            if !w.offer_changes(rows) {
                tracing::warn!("path changes not stored: the warehouse is behind");
            }
        }
        self.changes.lock().unwrap_or_else(|e| e.into_inner()).extend(kept);
    }

    /// The alerts open now, and the latest events.
    pub fn alerts(&self, pop_names: &[String]) -> petrel_api::AlertsResult {
        use petrel_measure::alert::State;
        let b = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let mut open: Vec<petrel_api::AlertView> = b
            .watches
            .iter()
            .flat_map(|w| w.open())
            .filter_map(|((key, pop), w)| {
                let (state, opened, baseline) = match w.state() {
                    State::Open { opened_ms, baseline_ms } => ("open", opened_ms, baseline_ms),
                    State::Recovering {
                        opened_ms, baseline_ms, ..
                    } => ("recovering", opened_ms, baseline_ms),
                    _ => return None,
                };
                Some(petrel_api::AlertView {
                    by: key.by().into(),
                    key: key.to_string(),
                    pop: pop_names.get(pop.index()).cloned().unwrap_or_default(),
                    state: state.into(),
                    opened_unix_ms: opened,
                    baseline_ms: baseline,
                    current_ms: w.current().summary().map_or(0.0, |s| s.median_ms),
                    path_changes: b.context.get(&(*key, *pop)).cloned().unwrap_or_default(),
                })
            })
            .collect();
        open.sort_by(|a, b| (&a.by, &a.key, &a.pop).cmp(&(&b.by, &b.key, &b.pop)));
        petrel_api::AlertsResult {
            open,
            recent: b.recent.iter().cloned().collect(),
        }
    }

    pub fn unit_count(&self) -> usize {
        self.unit_count.load(Relaxed) as usize
    }
}

/// Each sample's map unit and origin AS, from `g`'s routing views.
fn place(g: &Generation, conf: &MeasureConf, samples: &[Sample]) -> Vec<Keyed> {
    let routing = Routing::new(g.built.bgp.as_deref(), g.built.geo.as_deref(), conf.unit);
    // A beacon's samples share their client: placed once.
    let mut last: Option<(std::net::IpAddr, Keyed)> = None;
    samples
        .iter()
        .map(|s| match last {
            Some((c, k)) if c == s.client => k,
            _ => {
                let k = (
                    routing.unit(s.client),
                    routing.origin(&Prefix::host(s.client.to_canonical())),
                );
                last = Some((s.client, k));
                k
            }
        })
        .collect()
}

/// Samples as the warehouse stores them, enriched from the serving
/// generation: the map unit and origin AS of the client's route (the first
/// view that has one) and its GeoIP location.
pub fn rows(
    g: &Generation,
    samples: &[Sample],
    keyed: &[Keyed],
    beacon: Option<&str>,
    rdns: Option<&crate::rdns::Rdns>,
) -> crate::warehouse::Samples {
    let geo = g.built.geo.as_deref();
    let now = if rdns.is_some() { unix_ms() } else { 0 };
    // A beacon's samples share their client: placed once.
    let mut last: Option<(std::net::IpAddr, Option<u32>, Option<std::sync::Arc<str>>)> = None;
    let rows = samples
        .iter()
        .zip(keyed)
        .map(|(s, &(unit, asn))| {
            let (location, name) = match &last {
                Some((c, l, n)) if *c == s.client => (*l, n.clone()),
                _ => {
                    let l = geo.and_then(|t| t.locate(&Prefix::host(s.client.to_canonical())));
                    let n = rdns.and_then(|r| r.get(s.client, now));
                    last = Some((s.client, l, n.clone()));
                    (l, n)
                }
            };
            crate::warehouse::Row {
                sample: *s,
                unit,
                asn,
                location,
                rdns: name,
            }
        })
        .collect();
    crate::warehouse::Samples {
        built: g.built.clone(),
        beacon: beacon.map(str::to_string),
        rows,
    }
}

/// What the whoami join found for one beacon, as the warehouse keeps it:
/// the client and its resolver, each placed by the views and GeoIP, and
/// how far apart they are.
pub fn resolver_row(
    g: &Generation,
    at_ms: u64,
    beacon: &str,
    client: std::net::IpAddr,
    asked: &petrel_measure::whoami::Asked,
) -> crate::warehouse::ResolverRow {
    let unit_mode = g
        .config()
        .measure
        .as_ref()
        .map_or_else(petrel_measure::UnitMode::default, |m| m.unit);
    let routing = Routing::new(g.built.bgp.as_deref(), g.built.geo.as_deref(), unit_mode);
    let c = routing.place(client);
    let r = routing.place(asked.resolver);
    let at = |a: std::net::IpAddr| {
        g.built
            .geo
            .as_ref()
            .and_then(|t| t.lookup(&Prefix::host(a.to_canonical())))
            .and_then(|(l, _)| l.lat_lon)
    };
    let distance_km = match (at(client), at(asked.resolver)) {
        (Some(a), Some(b)) => Some(petrel_mapping::geo::distance_km(a, b)),
        _ => None,
    };
    crate::warehouse::ResolverRow {
        at_ms,
        beacon: beacon.to_string(),
        client: client.to_canonical().to_string(),
        client_unit: c.unit.map(|u| u.to_string()).unwrap_or_default(),
        client_asn: c.asn,
        resolver: asked.resolver.to_string(),
        resolver_asn: r.asn,
        ecs: asked.ecs.map(|p| p.to_string()),
        distance_km,
    }
}

/// Rebuild the aggregates from the warehouse's recent samples (ten
/// half-lives back; older ones weigh nothing).
pub async fn restore(m: &Measurements, conf: &MeasureConf, g: &Generation) -> Result<usize, String> {
    let Some(w) = m.warehouse() else {
        return Ok(0);
    };
    let since = unix_ms().saturating_sub(conf.decay.half_life_ms.saturating_mul(10));
    let rows = w.recent(since).await?;
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
    // The routing views are usually not loaded yet: these land in the
    // fixed-length units, which fade as new samples fill the BGP ones.
    let keyed = place(g, conf, &samples);
    let placed: Placed = samples.iter().copied().zip(keyed).collect();
    m.aggregate(g, conf, &placed);
    Ok(samples.len())
}

/// Recompile on the schedule `[measure]` sets, for as long as the process
/// runs; a config without `[measure]` only waits for one that has it.
pub fn spawn(publisher: Arc<Publisher>, m: Arc<Measurements>, rt: &tokio::runtime::Handle) -> std::io::Result<()> {
    // Alert events to the webhook: one at a time, in order, a few tries
    // each; a webhook that is down never holds the measurement loop.
    let (hook_tx, hook_rx) = tokio::sync::mpsc::channel(256);
    let _ = m.hooks.set(hook_tx);
    rt.spawn(webhook::deliver(hook_rx, m.hooks_failed.clone()));
    // Every publication of the routing views, diffed against the one
    // before: the path changes alerts show.
    let (routes_tx, routes_rx) = std::sync::mpsc::sync_channel::<Arc<petrel_mapping::BgpData>>(16);
    let last_seen: Mutex<Option<Arc<petrel_mapping::BgpData>>> = Mutex::new(None);
    publisher.subscribe(move |g, _| {
        let Some(b) = g.built.bgp.as_ref() else { return };
        if g.config().measure.is_none() {
            return;
        }
        let mut last = last_seen.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, b)) {
            return;
        }
        *last = Some(b.clone());
        // A full queue skips a publication: the next diff covers it.
        let _ = routes_tx.try_send(b.clone());
    });
    {
        let m = m.clone();
        std::thread::Builder::new()
            .name("measure-routes".into())
            .spawn(move || {
                let mut prev: Option<Arc<petrel_mapping::BgpData>> = None;
                while let Ok(mut next) = routes_rx.recv() {
                    while let Ok(newer) = routes_rx.try_recv() {
                        next = newer;
                    }
                    if let Some(p) = &prev {
                        m.record_changes(p, &next, unix_ms());
                    }
                    prev = Some(next);
                }
            })?;
    }
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
                    let keyed = m.ingest(&g, &conf, &batch);
                    if let Some(w) = m.warehouse() {
                        if !w.offer(rows(&g, &batch, &keyed, None, m.rdns())) {
                            m.dropped.fetch_add(batch.len() as u64, Relaxed);
                        }
                    }
                }
            }
        })?;
    }
    // The aggregates' owner: placed samples in as they come, and on the
    // schedule, the alerts judged and the policy's input compiled.
    let placed = m.placed_rx.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::Builder::new().name("measure".into()).spawn(move || {
        let Some(placed) = placed else { return };
        let mut last_units = 0;
        let mut next = std::time::Instant::now();
        loop {
            let conf = publisher.load().config().measure.clone();
            let Some(conf) = conf else {
                // Nothing to aggregate into: what comes in waits, or is
                // dropped (counted) when the queue fills.
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            // Polled, not woken: a sender never pays for a wake-up, and a
            // few milliseconds do not matter to a recompile.
            let now = std::time::Instant::now();
            if now < next {
                std::thread::sleep((next - now).min(AGGREGATE_EVERY));
                let g = publisher.load();
                for _ in 0..PLACED_QUEUE {
                    match placed.try_recv() {
                        Ok(batch) => m.aggregate(&g, &conf, &batch),
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                    }
                }
                continue;
            }
            next = now + Duration::from_secs(conf.recompile_secs);
            // Everything that came in before now is in what is compiled.
            let g = publisher.load();
            for _ in 0..PLACED_QUEUE {
                let Ok(more) = placed.try_recv() else { break };
                m.aggregate(&g, &conf, &more);
            }
            let now = unix_ms();
            let names: Vec<String> = g.config().pops.iter().map(|p| p.name.clone()).collect();
            m.tick_alerts(&names, conf.webhook.as_ref(), now);
            let data = m.compile(&g, &conf, now);
            drop(g);
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

mod webhook {
    //! Alert events POSTed to the operator's webhook.
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    use std::time::Duration;

    const TRIES: u32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(5);

    pub async fn deliver(
        mut rx: tokio::sync::mpsc::Receiver<(petrel_config::Webhook, String)>,
        failed: Arc<AtomicU64>,
    ) {
        while let Some((hook, body)) = rx.recv().await {
            let mut last = String::new();
            let mut ok = false;
            for attempt in 0..TRIES {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
                match tokio::time::timeout(TIMEOUT, post(&hook, &body)).await {
                    Ok(Ok(())) => {
                        ok = true;
                        break;
                    }
                    Ok(Err(e)) => last = e,
                    Err(_) => last = "timed out".into(),
                }
            }
            if !ok {
                failed.fetch_add(1, Relaxed);
                tracing::warn!(webhook = %hook.url, error = %last, "alert event not delivered");
            }
        }
    }

    async fn post(hook: &petrel_config::Webhook, body: &str) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(&hook.authority)
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::post(hook.path.as_str())
            .header(hyper::header::HOST, hook.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, concat!("petrel/", env!("CARGO_PKG_VERSION")))
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", resp.status()))
        }
    }
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
        for (name, help, v) in [
            (
                "petrel_measure_path_changes",
                "Changes of a view's best AS path seen between publications",
                m.changes_seen.load(Relaxed),
            ),
            (
                "petrel_measure_path_changes_not_recorded",
                "Path changes past the bound of one publication, counted only",
                m.changes_left_out.load(Relaxed),
            ),
            (
                "petrel_measure_whoami_joined",
                "Beacons joined with the resolver that asked for their whoami name",
                m.whoami_joined.load(Relaxed),
            ),
            (
                "petrel_measure_whoami_unjoined",
                "Beacons whose whoami name no resolver had asked for (yet)",
                m.whoami_unjoined.load(Relaxed),
            ),
            (
                "petrel_measure_webhook_failures",
                "Alert events the webhook did not take (after retries, or queue full)",
                m.hooks_failed.load(Relaxed),
            ),
        ] {
            let c = ConstCounter::new(v);
            c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        if let Some(r) = m.rdns() {
            crate::metrics::counters(
                &mut enc,
                &[
                    (
                        "petrel_measure_rdns_lookups",
                        "Reverse DNS lookups of clients",
                        r.looked_up.load(Relaxed),
                    ),
                    (
                        "petrel_measure_rdns_named",
                        "Reverse DNS lookups that gave a name",
                        r.named.load(Relaxed),
                    ),
                    (
                        "petrel_measure_rdns_skipped",
                        "Clients not looked up: the lookup queue was full",
                        r.dropped.load(Relaxed),
                    ),
                ],
            )?;
        }
        let c = ConstCounter::new(m.dropped.load(Relaxed));
        c.encode(enc.encode_descriptor(
            "petrel_measure_samples_dropped",
            "Samples dropped because a queue was full: connection RTTs lost entirely, beacons' and imports' only from the aggregates (they are stored)",
            None,
            c.metric_type(),
        )?)?;
        {
            let r = m.rtts.lock().unwrap_or_else(|e| e.into_inner());
            let mut fam = enc.encode_descriptor(
                "petrel_measure_rtt_seconds",
                "Latency samples by POP and kind (rum, passive, import)",
                None,
                prometheus_client::metrics::MetricType::Histogram,
            )?;
            for (pop, kind, h) in r
                .by_pop
                .iter()
                .flat_map(|(pop, (hs, _))| KINDS.iter().zip(hs).map(move |(k, h)| (pop, k.as_str(), h)))
                .filter(|(_, _, h)| h.count > 0)
            {
                // Per bucket, not cumulative: the encoder adds them up.
                let finite: u64 = h.buckets.iter().sum();
                let buckets: Vec<(f64, u64)> = RTT_BUCKETS_S
                    .iter()
                    .copied()
                    .zip(h.buckets)
                    .chain(std::iter::once((f64::INFINITY, h.count - finite)))
                    .collect();
                fam.encode_family(&[("pop", pop.as_str()), ("kind", kind)])?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum_s, h.count, &buckets, None)?;
            }
            for (name, help, q) in [
                (
                    "petrel_measure_rtt_median_seconds",
                    "Median latency to each POP over the last few minutes (5 min half-life)",
                    0.5,
                ),
                (
                    "petrel_measure_rtt_p90_seconds",
                    "90th percentile latency to each POP over the last few minutes (5 min half-life)",
                    0.9,
                ),
            ] {
                let mut fam = enc.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
                let now = unix_ms();
                for (pop, a) in r
                    .by_pop
                    .iter()
                    .map(|(pop, (_, a))| (pop, a))
                    .filter(|(_, a)| !a.is_faded(now, METRICS_DECAY))
                {
                    if let Some(v) = a.quantile_ms(q) {
                        ConstGauge::new(v / 1000.0).encode(fam.encode_family(&[("pop", pop.as_str())])?)?;
                    }
                }
            }
        }
        let over = m.over_limit.load(Relaxed);
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
        // Alerts open now, by what they watch.
        let (units, asns) = {
            let b = m.alerts.lock().unwrap_or_else(|e| e.into_inner());
            b.watches.as_ref().map_or((0, 0), |w| {
                w.open().fold((0, 0), |(u, a), ((k, _), _)| match k {
                    AlertKey::Unit(_) => (u + 1, a),
                    AlertKey::Asn(_) => (u, a + 1),
                })
            })
        };
        let mut fam = enc.encode_descriptor(
            "petrel_measure_alerts_open",
            "Latency alerts open (or recovering), by what they watch",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (by, n) in [("unit", units), ("asn", asns)] {
            ConstGauge::new(n).encode(fam.encode_family(&[("by", by)])?)?;
        }
        let c = ConstCounter::new(m.alerts_opened.load(Relaxed));
        c.encode(enc.encode_descriptor(
            "petrel_measure_alerts_opened",
            "Latency alerts opened",
            None,
            c.metric_type(),
        )?)?;
        Ok(())
    }
}
