//! The embedded store: SQLite (WAL). A batch is one transaction; it is
//! acknowledged once committed (WAL with `synchronous = NORMAL`: durable
//! against a crash of the process; against a crash of the machine, the
//! last transactions may be lost).

use super::{Job, TopBy};
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
pub(super) fn resolvers(path: &Path, since_ms: u64, limit: u32) -> Result<Vec<petrel_api::ResolverRow>, String> {
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
            "INSERT INTO samples (t_ms, client, unit, pop, rtt_us, kind, beacon, resolver, asn, country, city, rdns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
                r.rdns.as_deref(),
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

pub(super) struct Sink(Connection);

impl Sink {
    pub(super) fn open(path: &Path) -> Result<Sink, String> {
        open(path)
            .map(Sink)
            .map_err(|e| format!("measure.database {}: {e}", path.display()))
    }
}

impl super::Sink for Sink {
    fn write(&mut self, jobs: &[Job]) -> Result<(), String> {
        write(&mut self.0, jobs).map_err(|e| e.to_string())
    }

    fn purge(&mut self, cutoff_ms: u64) -> Result<(), String> {
        for table in ["samples", "path_changes", "resolvers"] {
            self.0
                .execute(
                    &format!("DELETE FROM {table} WHERE t_ms < ?1"),
                    params![cutoff_ms as i64],
                )
                .map_err(|e| format!("{table}: {e}"))?;
        }
        Ok(())
    }
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
