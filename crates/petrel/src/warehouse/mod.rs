//! The measurement warehouse: every sample with what it was enriched
//! with, the path changes of the routing views, and the resolver-discovery
//! joins. One writer thread takes batches from every source, writes each
//! batch at once (group commit), and only then acknowledges it: a beacon is
//! answered after the write that holds it is done, so a beacon
//! acknowledged is a beacon kept, even if petrel is killed the next
//! instant.
//!
//! Two stores, one at a time: SQLite (embedded, the default; `sqlite`) or
//! ClickHouse (`clickhouse`, behind the cargo feature of that name) when
//! one machine is not enough.

#[cfg(feature = "clickhouse")]
mod clickhouse;
mod sqlite;

use petrel_config::MeasureConf;
use petrel_director::Built;
use petrel_measure::Sample;
use petrel_types::Prefix;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

/// A sample as stored, before it is written out: what was found for its
/// client at ingest, as numbers and indices. The text is made by the
/// writer, from the generation the rows were placed with ([`Samples`]),
/// so that a beacon costs the collector no allocation per row.
pub struct Row {
    pub sample: Sample,
    /// The client's map unit.
    pub unit: Prefix,
    pub asn: Option<u32>,
    /// The client's GeoIP location, an index into the generation's table.
    pub location: Option<u32>,
    /// The client's reverse DNS name, when known at ingest.
    pub rdns: Option<Arc<str>>,
}

/// Rows from one source, with the generation that placed them (its POP
/// names and GeoIP locations name what the rows index) and, for a RUM
/// beacon, its id.
pub struct Samples {
    pub built: Arc<Built>,
    pub beacon: Option<String>,
    pub rows: Vec<Row>,
}

/// A row's text, as both stores write it. `buf` holds the addresses.
pub(super) struct RowText<'a> {
    pub client: &'a str,
    pub unit: &'a str,
    pub resolver: Option<&'a str>,
    pub pop: &'a str,
    pub beacon: Option<&'a str>,
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub rdns: Option<&'a str>,
}

/// Buffers reused from row to row by a writer.
#[derive(Default)]
pub(super) struct TextBufs {
    client: String,
    unit: String,
    resolver: String,
}

impl Samples {
    /// A row's text; the addresses are written out into `bufs`.
    pub(super) fn text<'a>(&'a self, r: &'a Row, bufs: &'a mut TextBufs) -> RowText<'a> {
        let s = &r.sample;
        addr_text(&mut bufs.client, s.client, None);
        addr_text(&mut bufs.unit, r.unit.addr(), Some(r.unit.len()));
        if let Some(a) = s.resolver {
            addr_text(&mut bufs.resolver, a, None);
        }
        let locations = self.built.geo.as_deref().map_or(&[][..], |g| &g.locations[..]);
        let loc = r.location.and_then(|i| locations.get(i as usize));
        RowText {
            client: &bufs.client,
            unit: &bufs.unit,
            resolver: s.resolver.map(|_| bufs.resolver.as_str()),
            pop: self.built.pops.get(s.pop.index()).map_or("", |p| p.name.as_str()),
            beacon: self.beacon.as_deref(),
            country: loc.and_then(|l| l.country.as_deref()),
            city: loc.and_then(|l| l.city.as_deref()),
            rdns: r.rdns.as_deref(),
        }
    }
}

/// An address (and prefix length) as text into `s`, as `Display` writes
/// it; IPv4 without the formatting machinery, which is most of a row's
/// cost to write out under a beacon load.
pub fn addr_text(s: &mut String, a: std::net::IpAddr, len: Option<u8>) {
    use std::fmt::Write;
    s.clear();
    match a {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if o >= 100 {
                    s.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    s.push(char::from(b'0' + o / 10 % 10));
                }
                s.push(char::from(b'0' + o % 10));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(s, "{v6}");
        }
    }
    if let Some(l) = len {
        let _ = write!(s, "/{l}");
    }
}

/// A change of a view's best AS path, as stored.
#[derive(Clone, Debug)]
pub struct ChangeRow {
    pub at_ms: u64,
    pub view: String,
    pub prefix: String,
    /// Empty: no route (an announcement, or a withdrawal).
    pub old_path: String,
    pub new_path: String,
}

/// A beacon joined with the resolver that asked for its whoami name.
#[derive(Clone, Debug)]
pub struct ResolverRow {
    pub at_ms: u64,
    pub beacon: String,
    pub client: String,
    pub client_unit: String,
    pub client_asn: Option<u32>,
    pub resolver: String,
    pub resolver_asn: Option<u32>,
    /// The ECS subnet the resolver sent, if any.
    pub ecs: Option<String>,
    /// Between the client's and the resolver's GeoIP places.
    pub distance_km: Option<f64>,
}

#[derive(Default)]
pub(super) struct Job {
    pub(super) samples: Option<Samples>,
    pub(super) changes: Vec<ChangeRow>,
    pub(super) resolvers: Vec<ResolverRow>,
    pub(super) done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// How long the writer waits for more when a batch is small.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Batches waiting for the writer; past this, sources wait (beacons) or
/// drop (connection RTTs).
const QUEUE: usize = 4096;

/// A store the writer thread writes batches to.
trait Sink: Send + 'static {
    /// Everything in `jobs`, at once; done when it is durable as the store
    /// understands it.
    fn write(&mut self, jobs: &[Job]) -> Result<(), String>;
    /// Upkeep, at start and hourly: roll up what there is to roll up, and
    /// drop raw data older than `raw_cutoff_ms` and roll-ups older than
    /// `rollup_cutoff_ms`.
    fn maintain(&mut self, now_ms: u64, raw_cutoff_ms: u64, rollup_cutoff_ms: u64) -> Result<(), String>;
}

/// How long raw samples and their hourly roll-ups are kept.
#[derive(Clone, Copy)]
struct Keep {
    raw_days: u32,
    rollup_days: u32,
}

/// Where reads go.
enum Reads {
    Sqlite(std::path::PathBuf),
    #[cfg(feature = "clickhouse")]
    Clickhouse(Box<clickhouse::Store>),
}

pub struct Warehouse {
    tx: SyncSender<Job>,
    reads: Reads,
    keep: Keep,
}

impl Warehouse {
    /// The store `[measure]` names, opened (created if needed) with its
    /// writer running; None when samples are kept in memory only.
    pub fn open(conf: &MeasureConf) -> Result<Option<Warehouse>, String> {
        if let Some(ch) = &conf.clickhouse {
            #[cfg(feature = "clickhouse")]
            {
                let (store, sink) = clickhouse::open(ch)?;
                return Ok(Some(Warehouse {
                    tx: start(sink, keep(conf))?,
                    reads: Reads::Clickhouse(Box::new(store)),
                    keep: keep(conf),
                }));
            }
            #[cfg(not(feature = "clickhouse"))]
            return Err(format!(
                "[measure.clickhouse] {}: this petrel was built without ClickHouse (cargo feature `clickhouse`)",
                ch.url
            ));
        }
        let Some(path) = &conf.database else {
            return Ok(None);
        };
        let sink = sqlite::Sink::open(path)?;
        Ok(Some(Warehouse {
            tx: start(sink, keep(conf))?,
            reads: Reads::Sqlite(path.clone()),
            keep: keep(conf),
        }))
    }

    /// Store rows (and what the whoami join found); resolves once they
    /// are written.
    pub async fn store(&self, samples: Samples, resolvers: Vec<ResolverRow>) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        let job = Job {
            samples: Some(samples),
            resolvers,
            done: Some(done),
            ..Job::default()
        };
        // A full queue makes the sender wait: beacons are acknowledged
        // only once stored, so the collector slows down instead of lying.
        // Only then does it cost a blocking thread.
        match tx.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => tokio::task::spawn_blocking(move || tx.send(job))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|_| "the warehouse writer stopped".to_string())?,
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err("the warehouse writer stopped".to_string())
            }
        }
        wait.await.map_err(|_| "the warehouse writer stopped".to_string())?
    }

    /// Store rows without waiting (connection RTTs); false when the queue
    /// is full and they were dropped.
    pub fn offer(&self, samples: Samples) -> bool {
        self.tx
            .try_send(Job {
                samples: Some(samples),
                ..Job::default()
            })
            .is_ok()
    }

    /// Record path changes without waiting; false when dropped.
    pub fn offer_changes(&self, changes: Vec<ChangeRow>) -> bool {
        self.tx
            .try_send(Job {
                changes,
                ..Job::default()
            })
            .is_ok()
    }

    /// Samples taken since `since_ms`, oldest first: (time, client, POP,
    /// RTT), to rebuild the aggregates at start.
    pub async fn recent(&self, since_ms: u64) -> Result<Vec<(u64, String, String, u32)>, String> {
        match &self.reads {
            Reads::Sqlite(p) => {
                let p = p.clone();
                blocking(move || sqlite::recent(&p, since_ms)).await
            }
            #[cfg(feature = "clickhouse")]
            Reads::Clickhouse(s) => s.recent(since_ms).await,
        }
    }

    /// The `limit` groups of (key, POP) with the most samples since
    /// `since_ms`, with their client counts and median and p90; and
    /// whether they come from the hourly roll-ups (SQLite, for a span
    /// older than the raw samples are kept).
    pub async fn top(
        &self,
        by: TopBy,
        pop: Option<String>,
        since_ms: u64,
        limit: u32,
    ) -> Result<(Vec<petrel_api::TopRow>, bool), String> {
        let raw_from = crate::measure::unix_ms().saturating_sub(u64::from(self.keep.raw_days) * 86_400_000);
        match &self.reads {
            Reads::Sqlite(p) if since_ms < raw_from && self.keep.rollup_days > 0 => {
                let p = p.clone();
                blocking(move || sqlite::top_rollups(&p, by, pop.as_deref(), since_ms, limit))
                    .await
                    .map(|r| (r, true))
            }
            Reads::Sqlite(p) => {
                let p = p.clone();
                blocking(move || sqlite::top(&p, by, pop.as_deref(), since_ms, limit))
                    .await
                    .map(|r| (r, false))
            }
            #[cfg(feature = "clickhouse")]
            Reads::Clickhouse(s) => s.top(by, pop.as_deref(), since_ms, limit).await.map(|r| (r, false)),
        }
    }

    /// Per resolver since `since_ms`: the beacons joined with it, the
    /// client networks behind it, the share with ECS, the median distance.
    pub async fn resolvers(&self, since_ms: u64, limit: u32) -> Result<Vec<petrel_api::ResolverRow>, String> {
        match &self.reads {
            Reads::Sqlite(p) => {
                let p = p.clone();
                blocking(move || sqlite::resolvers(&p, since_ms, limit)).await
            }
            #[cfg(feature = "clickhouse")]
            Reads::Clickhouse(s) => s.resolvers(since_ms, limit).await,
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string())?
}

fn keep(conf: &MeasureConf) -> Keep {
    Keep {
        raw_days: conf.retention_days,
        rollup_days: conf.rollup_days,
    }
}

fn start(sink: impl Sink, keep: Keep) -> Result<SyncSender<Job>, String> {
    let (tx, rx) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("warehouse".into())
        .spawn(move || writer(sink, rx, keep))
        .map_err(|e| e.to_string())?;
    Ok(tx)
}

fn maintain(sink: &mut impl Sink, keep: Keep) {
    let now = crate::measure::unix_ms();
    let day = 86_400_000;
    let raw = now.saturating_sub(u64::from(keep.raw_days) * day);
    let rollups = now.saturating_sub(u64::from(keep.rollup_days) * day);
    if let Err(e) = sink.maintain(now, raw, rollups) {
        tracing::warn!(error = %e, "warehouse upkeep (roll-ups, retention) failed");
    }
}

fn writer(mut sink: impl Sink, rx: Receiver<Job>, keep: Keep) {
    maintain(&mut sink, keep);
    let mut last_upkeep = std::time::Instant::now();
    while let Ok(first) = rx.recv() {
        // Group commit: whatever else waits goes in the same write.
        // When little waits, linger a moment for more: under load that
        // makes batches larger and spares a wake-up of this thread per
        // beacon; idle, it costs an acknowledgement a millisecond.
        let mut jobs = vec![first];
        for round in 0..2 {
            while jobs.len() < 1024 {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if round == 0 && jobs.len() < 64 {
                std::thread::sleep(LINGER);
            } else {
                break;
            }
        }
        let result = sink.write(&jobs);
        if let Err(e) = &result {
            tracing::error!(error = %e, "measurements not stored");
        }
        for j in jobs {
            if let Some(done) = j.done {
                let _ = done.send(result.clone());
            }
        }
        if last_upkeep.elapsed() > std::time::Duration::from_secs(3600) {
            last_upkeep = std::time::Instant::now();
            maintain(&mut sink, keep);
        }
    }
}

/// What `top` groups samples by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopBy {
    Asn,
    Prefix,
    Country,
    City,
    Resolver,
    Rdns,
}

impl TopBy {
    pub fn parse(s: &str) -> Option<TopBy> {
        Some(match s {
            "asn" => TopBy::Asn,
            "prefix" | "unit" => TopBy::Prefix,
            "country" => TopBy::Country,
            "city" => TopBy::City,
            "resolver" => TopBy::Resolver,
            "rdns" => TopBy::Rdns,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TopBy::Asn => "asn",
            TopBy::Prefix => "prefix",
            TopBy::Country => "country",
            TopBy::City => "city",
            TopBy::Resolver => "resolver",
            TopBy::Rdns => "rdns",
        }
    }

    /// The column; a fixed name, never from the request.
    pub(super) fn column(self) -> &'static str {
        match self {
            TopBy::Asn => "asn",
            TopBy::Prefix => "unit",
            TopBy::Country => "country",
            TopBy::City => "city",
            TopBy::Resolver => "resolver",
            TopBy::Rdns => "rdns",
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut s = String::from("left over");
        for a in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "23.1.0.7",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: std::net::IpAddr = a.parse().unwrap();
            super::addr_text(&mut s, ip, None);
            assert_eq!(s, ip.to_string());
            super::addr_text(&mut s, ip, Some(24));
            assert_eq!(s, format!("{ip}/24"));
        }
        let p: petrel_types::Prefix = "2001:db8::/48".parse().unwrap();
        super::addr_text(&mut s, p.addr(), Some(p.len()));
        assert_eq!(s, p.to_string());
    }
}
