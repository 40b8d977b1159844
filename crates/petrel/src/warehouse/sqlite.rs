//! The embedded store: SQLite (WAL). A batch is one transaction; it is
//! acknowledged once committed (WAL with `synchronous = NORMAL`: durable
//! against a crash of the process; against a crash of the machine, the
//! last transactions may be lost).

use super::{Job, TopBy};
use petrel_measure::aggregate::nearest_rank;
use rusqlite::{params, Connection};
use std::path::Path;

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
  city     TEXT,
  rdns     TEXT
);
CREATE INDEX IF NOT EXISTS samples_t ON samples (t_ms);
CREATE TABLE IF NOT EXISTS samples_hourly (
  hour_ms   INTEGER NOT NULL,
  unit      TEXT    NOT NULL,
  asn       INTEGER,
  country   TEXT,
  city      TEXT,
  resolver  TEXT,
  pop       TEXT    NOT NULL,
  kind      TEXT    NOT NULL,
  samples   INTEGER NOT NULL,
  clients   INTEGER NOT NULL,
  median_us INTEGER NOT NULL,
  p90_us    INTEGER NOT NULL,
  sum_us    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_hourly_t ON samples_hourly (hour_ms);
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
    // Databases from before reverse DNS was stored lack its column.
    let has_rdns: bool = c.query_row(
        "SELECT count(*) FROM pragma_table_info('samples') WHERE name = 'rdns'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_rdns {
        c.execute_batch("ALTER TABLE samples ADD COLUMN rdns TEXT")?;
    }
    Ok(c)
}

/// The `limit` groups of (key, POP) with the most samples since
/// `since_ms`, with their client counts and exact median and p90.
pub(super) fn top(
    path: &Path,
    by: TopBy,
    pop: Option<&str>,
    since_ms: u64,
    limit: u32,
) -> Result<Vec<petrel_api::TopRow>, String> {
    let c = read_only(path)?;
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
        let q = |f: f64| nearest_rank(&v, f).map_or(0.0, |us| f64::from(us) / 1000.0);
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
pub(super) fn resolvers(path: &Path, since_ms: u64, limit: u32) -> Result<Vec<petrel_api::ResolverRow>, String> {
    let c = read_only(path)?;
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
            median_distance_km: nearest_rank(&d, 0.5),
            top_client_units: top_units,
        });
    }
    Ok(out)
}

/// Sample rows per INSERT statement: one statement per row costs more
/// than the row.
const ROWS_PER_INSERT: usize = 32;
const SAMPLE_COLUMNS: usize = 12;

fn insert_samples(rows: usize) -> String {
    let mut q = String::from(
        "INSERT INTO samples (t_ms, client, unit, pop, rtt_us, kind, beacon, resolver, asn, country, city, rdns) VALUES ",
    );
    for r in 0..rows {
        q.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..SAMPLE_COLUMNS {
            q.push_str(if c == 0 { "?" } else { ", ?" });
        }
        q.push(')');
    }
    q
}

fn write(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    let t = conn.transaction()?;
    {
        let total: usize = jobs
            .iter()
            .filter_map(|j| j.samples.as_ref())
            .map(|s| s.rows.len())
            .sum();
        let mut many = t.prepare_cached(&insert_samples(ROWS_PER_INSERT))?;
        let mut one = t.prepare_cached(&insert_samples(1))?;
        let mut bufs = super::TextBufs::default();
        // Rows fill the many-row statement; the last ones go one by one.
        let (mut written, mut bound) = (0, 0);
        for samples in jobs.iter().filter_map(|j| j.samples.as_ref()) {
            for r in &samples.rows {
                let st = if total - written >= ROWS_PER_INSERT {
                    &mut many
                } else {
                    &mut one
                };
                let s = &r.sample;
                let x = samples.text(r, &mut bufs);
                let at = bound * SAMPLE_COLUMNS;
                st.raw_bind_parameter(at + 1, s.at_ms as i64)?;
                st.raw_bind_parameter(at + 2, x.client)?;
                st.raw_bind_parameter(at + 3, x.unit)?;
                st.raw_bind_parameter(at + 4, x.pop)?;
                st.raw_bind_parameter(at + 5, s.rtt_us)?;
                st.raw_bind_parameter(at + 6, s.kind.as_str())?;
                st.raw_bind_parameter(at + 7, x.beacon)?;
                st.raw_bind_parameter(at + 8, x.resolver)?;
                st.raw_bind_parameter(at + 9, r.asn)?;
                st.raw_bind_parameter(at + 10, x.country)?;
                st.raw_bind_parameter(at + 11, x.city)?;
                st.raw_bind_parameter(at + 12, x.rdns)?;
                bound += 1;
                if total - written >= ROWS_PER_INSERT {
                    if bound == ROWS_PER_INSERT {
                        many.raw_execute()?;
                        written += bound;
                        bound = 0;
                    }
                } else {
                    one.raw_execute()?;
                    written += 1;
                    bound = 0;
                }
            }
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

pub(super) struct Sink(Connection);

impl Sink {
    pub(super) fn open(path: &Path) -> Result<Sink, String> {
        let err = |e: rusqlite::Error| format!("measure.database {}: {e}", path.display());
        let c = open(path).map_err(err)?;
        // The writer's own settings: the hot pages (the tail of the table
        // and of its time index) are rewritten by every batch, so a longer
        // WAL between checkpoints copies each back to the database fewer
        // times; a larger page cache keeps them.
        c.pragma_update(None, "wal_autocheckpoint", 10_000).map_err(err)?;
        c.pragma_update(None, "cache_size", -65_536).map_err(err)?;
        Ok(Sink(c))
    }
}

impl super::Sink for Sink {
    fn write(&mut self, jobs: &[Job]) -> Result<(), String> {
        write(&mut self.0, jobs).map_err(|e| e.to_string())
    }

    fn maintain(&mut self, now_ms: u64, raw_cutoff_ms: u64, rollup_cutoff_ms: u64) -> Result<(), String> {
        if rollup_cutoff_ms < now_ms {
            let hours = roll_up(&mut self.0, now_ms).map_err(|e| format!("roll-up: {e}"))?;
            if hours > 0 {
                tracing::info!(hours, "measurements rolled up by the hour");
            }
            self.0
                .execute(
                    "DELETE FROM samples_hourly WHERE hour_ms < ?1",
                    params![rollup_cutoff_ms as i64],
                )
                .map_err(|e| format!("samples_hourly: {e}"))?;
        }
        for table in ["samples", "path_changes", "resolvers"] {
            self.0
                .execute(
                    &format!("DELETE FROM {table} WHERE t_ms < ?1"),
                    params![raw_cutoff_ms as i64],
                )
                .map_err(|e| format!("{table}: {e}"))?;
        }
        Ok(())
    }
}

const HOUR_MS: u64 = 3_600_000;
/// Hours rolled up in one upkeep at most (the rest wait for the next).
const MAX_HOURS: usize = 24 * 7;

/// The key a roll-up groups by.
type RollupKey = (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

/// Roll every complete hour not rolled up yet into `samples_hourly`: per
/// (unit, AS, country, city, resolver, POP, kind), the samples, distinct
/// clients, exact median and p90, and the sum. Each hour is one
/// transaction. Returns the hours rolled up.
fn roll_up(c: &mut Connection, now_ms: u64) -> rusqlite::Result<usize> {
    let done: Option<i64> = c.query_row("SELECT max(hour_ms) FROM samples_hourly", [], |r| r.get(0))?;
    let mut from = done.map_or(0, |h| h as u64 + HOUR_MS);
    let until = now_ms / HOUR_MS * HOUR_MS;
    let mut hours = 0;
    while hours < MAX_HOURS {
        // The next hour with samples, skipping empty ones.
        let next: Option<i64> = c.query_row(
            "SELECT min(t_ms) FROM samples WHERE t_ms >= ?1 AND t_ms < ?2",
            params![from as i64, until as i64],
            |r| r.get(0),
        )?;
        let Some(t) = next else { break };
        let hour = t as u64 / HOUR_MS * HOUR_MS;
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "SELECT unit, asn, country, city, resolver, pop, kind, client, rtt_us FROM samples
                 WHERE t_ms >= ?1 AND t_ms < ?2
                 ORDER BY unit, asn, country, city, resolver, pop, kind, rtt_us",
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO samples_hourly (hour_ms, unit, asn, country, city, resolver, pop, kind,
                 samples, clients, median_us, p90_us, sum_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            let mut rows = st.query(params![hour as i64, (hour + HOUR_MS) as i64])?;
            let mut group: Option<RollupKey> = None;
            let mut rtts: Vec<i64> = Vec::new();
            let mut clients: std::collections::HashSet<String> = Default::default();
            let mut flush = |k: &RollupKey, rtts: &mut Vec<i64>, clients: &mut std::collections::HashSet<String>| {
                let q = |f: f64| nearest_rank(rtts, f).unwrap_or(0);
                let r = ins.execute(params![
                    hour as i64,
                    k.0,
                    k.1,
                    k.2,
                    k.3,
                    k.4,
                    k.5,
                    k.6,
                    rtts.len() as i64,
                    clients.len() as i64,
                    q(0.5),
                    q(0.9),
                    rtts.iter().sum::<i64>()
                ]);
                rtts.clear();
                clients.clear();
                r.map(|_| ())
            };
            while let Some(r) = rows.next()? {
                let k: RollupKey = (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                );
                if group.as_ref() != Some(&k) {
                    if let Some(g) = group.take() {
                        flush(&g, &mut rtts, &mut clients)?;
                    }
                    group = Some(k);
                }
                clients.insert(r.get(7)?);
                rtts.push(r.get(8)?);
            }
            if let Some(g) = group {
                flush(&g, &mut rtts, &mut clients)?;
            }
        }
        tx.commit()?;
        hours += 1;
        from = hour + HOUR_MS;
    }
    Ok(hours)
}

/// `top` over the hourly roll-ups, for spans older than the raw samples:
/// the median and p90 are the sample-weighted means of the hourly ones,
/// and clients are summed over hours (a client seen in two hours counts
/// twice).
pub(super) fn top_rollups(
    path: &Path,
    by: TopBy,
    pop: Option<&str>,
    since_ms: u64,
    limit: u32,
) -> Result<Vec<petrel_api::TopRow>, String> {
    if by == TopBy::Rdns {
        return Err("reverse DNS names are kept with the raw samples only, not in the hourly roll-ups".into());
    }
    let c = read_only(path)?;
    let col = by.column();
    let q = format!(
        "SELECT {col}, pop, sum(samples), sum(clients), 1.0 * sum(median_us * samples) / sum(samples),
         1.0 * sum(p90_us * samples) / sum(samples) FROM samples_hourly
         WHERE hour_ms >= ?1 AND {col} IS NOT NULL AND (?2 IS NULL OR pop = ?2)
         GROUP BY {col}, pop ORDER BY sum(samples) DESC, {col}, pop LIMIT ?3"
    );
    let mut st = c.prepare(&q).map_err(|e| e.to_string())?;
    let rows = st
        .query_map(params![(since_ms / HOUR_MS * HOUR_MS) as i64, pop, limit], |r| {
            let key = match by {
                TopBy::Asn => format!("AS{}", r.get::<_, i64>(0)?),
                _ => r.get::<_, String>(0)?,
            };
            Ok(petrel_api::TopRow {
                key,
                pop: r.get(1)?,
                samples: r.get::<_, i64>(2)? as u64,
                clients: r.get::<_, i64>(3)? as u64,
                median_ms: r.get::<_, f64>(4)? / 1000.0,
                p90_ms: r.get::<_, f64>(5)? / 1000.0,
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// A connection of its own for a query: WAL lets it read beside the
/// writer.
fn read_only(path: &Path) -> Result<Connection, String> {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.to_string())?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    Ok(c)
}

/// Samples taken since `since_ms`, oldest first: (time, client, POP, RTT).
pub(super) fn recent(path: &Path, since_ms: u64) -> Result<Vec<(u64, String, String, u32)>, String> {
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
