//! The measurement warehouse, embedded: every sample with what it was
//! enriched with, in SQLite (WAL). One writer thread takes batches from
//! every source, writes each batch in one transaction, and only then
//! acknowledges it: a beacon is answered after the transaction that holds
//! it commits, so a beacon acknowledged is a beacon kept, even if petrel
//! is killed the next instant (WAL with `synchronous = NORMAL`: durable
//! against a crash of the process; against a crash of the machine, the
//! last transactions may be lost).

use petrel_measure::Sample;
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

/// A sample as stored. The text a beacon's samples share is shared, not
/// copied (one beacon's samples are one client's).
pub struct Row {
    pub sample: Sample,
    pub client: Arc<str>,
    pub pop: Arc<str>,
    pub unit: Arc<str>,
    /// The RUM beacon's id.
    pub beacon: Option<Arc<str>>,
    pub asn: Option<u32>,
    pub country: Option<Arc<str>>,
    pub city: Option<Arc<str>>,
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
struct Job {
    rows: Vec<Row>,
    changes: Vec<ChangeRow>,
    resolvers: Vec<ResolverRow>,
    done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// How long the writer waits for more when a batch is small.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Batches waiting for the writer; past this, sources wait (beacons) or
/// drop (connection RTTs).
const QUEUE: usize = 4096;

pub struct Warehouse {
    tx: SyncSender<Job>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS samples (
  t_ms     INTEGER NOT NULL,
  client   TEXT    NOT NULL,
  unit     TEXT    NOT NULL,
  pop      TEXT    NOT NULL,
  rtt_us   INTEGER NOT NULL,
  kind     TEXT    NOT NULL,
  beacon   TEXT,
  resolver TEXT,
  asn      INTEGER,
  country  TEXT,
  city     TEXT
);
CREATE INDEX IF NOT EXISTS samples_t ON samples (t_ms);
CREATE TABLE IF NOT EXISTS path_changes (
  t_ms     INTEGER NOT NULL,
  view     TEXT    NOT NULL,
  prefix   TEXT    NOT NULL,
  old_path TEXT    NOT NULL,
  new_path TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS path_changes_t ON path_changes (t_ms);
CREATE TABLE IF NOT EXISTS resolvers (
  t_ms         INTEGER NOT NULL,
  beacon       TEXT    NOT NULL,
  client       TEXT    NOT NULL,
  client_unit  TEXT    NOT NULL,
  client_asn   INTEGER,
  resolver     TEXT    NOT NULL,
  resolver_asn INTEGER,
  ecs          TEXT,
  distance_km  REAL
);
CREATE INDEX IF NOT EXISTS resolvers_t ON resolvers (t_ms);
";

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.execute_batch(SCHEMA)?;
    Ok(c)
}

impl Warehouse {
    /// Open (or create) the database and start its writer. Samples older
    /// than `retention_days` are deleted once an hour.
    pub fn open(path: &Path, retention_days: u32) -> Result<Warehouse, String> {
        let conn = open(path).map_err(|e| format!("measure.database {}: {e}", path.display()))?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("warehouse".into())
            .spawn(move || writer(conn, rx, retention_days))
            .map_err(|e| e.to_string())?;
        Ok(Warehouse { tx })
    }

    /// Store rows (and what the whoami join found); resolves once they
    /// are committed.
    pub async fn store(&self, rows: Vec<Row>, resolvers: Vec<ResolverRow>) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        let job = Job {
            rows,
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
    pub fn offer(&self, rows: Vec<Row>) -> bool {
        self.tx.try_send(Job { rows, ..Job::default() }).is_ok()
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
    pub fn recent(path: &Path, since_ms: u64) -> Result<Vec<(u64, String, String, u32)>, String> {
        let c = open(path).map_err(|e| e.to_string())?;
        let mut st = c
            .prepare("SELECT t_ms, client, pop, rtt_us FROM samples WHERE t_ms >= ?1 ORDER BY t_ms")
            .map_err(|e| e.to_string())?;
        let rows = st
            .query_map(params![since_ms as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? as u32,
                ))
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
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
}

impl TopBy {
    pub fn parse(s: &str) -> Option<TopBy> {
        Some(match s {
            "asn" => TopBy::Asn,
            "prefix" | "unit" => TopBy::Prefix,
            "country" => TopBy::Country,
            "city" => TopBy::City,
            "resolver" => TopBy::Resolver,
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
        }
    }

    /// The column; a fixed name, never from the request.
    fn column(self) -> &'static str {
        match self {
            TopBy::Asn => "asn",
            TopBy::Prefix => "unit",
            TopBy::Country => "country",
            TopBy::City => "city",
            TopBy::Resolver => "resolver",
        }
    }
}

/// The `limit` groups of (key, POP) with the most samples since
/// `since_ms`, with their client counts and exact median and p90.
pub fn top(
    path: &Path,
    by: TopBy,
    pop: Option<&str>,
    since_ms: u64,
    limit: u32,
) -> Result<Vec<petrel_api::TopRow>, String> {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.to_string())?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let col = by.column();
    let groups = format!(
        "SELECT {col}, pop, count(*), count(DISTINCT client) FROM samples
         WHERE t_ms >= ?1 AND {col} IS NOT NULL AND (?2 IS NULL OR pop = ?2)
         GROUP BY {col}, pop ORDER BY count(*) DESC, {col}, pop LIMIT ?3"
    );
    let mut st = c.prepare(&groups).map_err(|e| e.to_string())?;
    let found = st
        .query_map(params![since_ms as i64, pop, limit], |r| {
            let key = match by {
                TopBy::Asn => format!("AS{}", r.get::<_, i64>(0)?),
                _ => r.get::<_, String>(0)?,
            };
            Ok((
                r.get::<_, rusqlite::types::Value>(0)?,
                key,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut rtts = c
        .prepare(&format!(
            "SELECT rtt_us FROM samples WHERE t_ms >= ?1 AND {col} = ?2 AND pop = ?3 ORDER BY rtt_us"
        ))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(found.len());
    for (raw, key, pop, samples, clients) in found {
        let v: Vec<u32> = rtts
            .query_map(params![since_ms as i64, raw, pop], |r| Ok(r.get::<_, i64>(0)? as u32))
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let q = |f: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() - 1) as f64 * f).round() as usize;
            f64::from(v[i]) / 1000.0
        };
        out.push(petrel_api::TopRow {
            key,
            pop,
            samples,
            clients,
            median_ms: q(0.5),
            p90_ms: q(0.9),
        });
    }
    Ok(out)
}

/// Per resolver since `since_ms`: the beacons joined with it, the client
/// networks behind it, the share that came with ECS and the median
/// distance to its clients; most beacons first.
pub fn resolvers(path: &Path, since_ms: u64, limit: u32) -> Result<Vec<petrel_api::ResolverRow>, String> {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.to_string())?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let mut st = c
        .prepare(
            "SELECT resolver, max(resolver_asn), count(*), count(DISTINCT client_unit), count(ecs)
             FROM resolvers WHERE t_ms >= ?1 GROUP BY resolver ORDER BY count(*) DESC, resolver LIMIT ?2",
        )
        .map_err(|e| e.to_string())?;
    let found = st
        .query_map(params![since_ms as i64, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, i64>(4)? as u64,
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut dist = c
        .prepare(
            "SELECT distance_km FROM resolvers WHERE t_ms >= ?1 AND resolver = ?2 AND distance_km IS NOT NULL
             ORDER BY distance_km",
        )
        .map_err(|e| e.to_string())?;
    let mut units = c
        .prepare(
            "SELECT client_unit, count(*) FROM resolvers WHERE t_ms >= ?1 AND resolver = ?2
             GROUP BY client_unit ORDER BY count(*) DESC, client_unit LIMIT 5",
        )
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (resolver, asn, beacons, client_units, with_ecs) in found {
        let d: Vec<f64> = dist
            .query_map(params![since_ms as i64, resolver], |r| r.get(0))
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let top_units: Vec<String> = units
            .query_map(params![since_ms as i64, resolver], |r| r.get(0))
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        out.push(petrel_api::ResolverRow {
            resolver,
            asn: asn.map(|a| a as u32),
            beacons,
            client_units,
            ecs_share: with_ecs as f64 / beacons.max(1) as f64,
            median_distance_km: (!d.is_empty()).then(|| d[(d.len() - 1) / 2]),
            top_client_units: top_units,
        });
    }
    Ok(out)
}

fn write(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    let t = conn.transaction()?;
    {
        let mut st = t.prepare_cached(
            "INSERT INTO samples (t_ms, client, unit, pop, rtt_us, kind, beacon, resolver, asn, country, city)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for r in jobs.iter().flat_map(|j| &j.rows) {
            let s = &r.sample;
            st.execute(params![
                s.at_ms as i64,
                &*r.client,
                &*r.unit,
                &*r.pop,
                s.rtt_us,
                s.kind.as_str(),
                r.beacon.as_deref(),
                s.resolver.map(|a| a.to_string()),
                r.asn,
                r.country.as_deref(),
                r.city.as_deref(),
            ])?;
        }
        let mut st = t.prepare_cached(
            "INSERT INTO path_changes (t_ms, view, prefix, old_path, new_path) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for c in jobs.iter().flat_map(|j| &j.changes) {
            st.execute(params![c.at_ms as i64, c.view, c.prefix, c.old_path, c.new_path])?;
        }
        let mut st = t.prepare_cached(
            "INSERT INTO resolvers (t_ms, beacon, client, client_unit, client_asn, resolver, resolver_asn, ecs, distance_km)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for r in jobs.iter().flat_map(|j| &j.resolvers) {
            st.execute(params![
                r.at_ms as i64,
                r.beacon,
                r.client,
                r.client_unit,
                r.client_asn,
                r.resolver,
                r.resolver_asn,
                r.ecs,
                r.distance_km
            ])?;
        }
    }
    t.commit()
}

fn writer(mut conn: Connection, rx: Receiver<Job>, retention_days: u32) {
    let mut last_purge = std::time::Instant::now();
    while let Ok(first) = rx.recv() {
        // Group commit: whatever else waits goes in the same transaction.
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
        let result = write(&mut conn, &jobs).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "measurements not stored");
        }
        for j in jobs {
            if let Some(done) = j.done {
                let _ = done.send(result.clone());
            }
        }
        if last_purge.elapsed() > std::time::Duration::from_secs(3600) {
            last_purge = std::time::Instant::now();
            let cutoff = crate::measure::unix_ms().saturating_sub(u64::from(retention_days) * 86_400_000);
            for table in ["samples", "path_changes", "resolvers"] {
                if let Err(e) = conn.execute(&format!("DELETE FROM {table} WHERE t_ms < ?1"), params![cutoff as i64]) {
                    tracing::warn!(error = %e, table, "old measurements not deleted");
                }
            }
        }
    }
}
