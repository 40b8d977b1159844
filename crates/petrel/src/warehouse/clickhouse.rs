//! The scale-out store: ClickHouse over its HTTP interface (the official
//! `clickhouse` crate, RowBinary). A batch is one INSERT per table; it is
//! acknowledged once ClickHouse has answered the INSERT, that is once the
//! rows are written to a part on its disk.
//!
//! Written to work with old servers too (Debian's 18.16): no schema
//! validation (it needs `RowBinaryWithNamesAndTypes`, which 18.16 lacks),
//! no LowCardinality, retention by `ALTER TABLE ... DELETE`.

use super::{Job, TopBy};
use clickhouse::{Client, Row};
use petrel_config::ClickhouseConf;
use serde::{Deserialize, Serialize};

/// Reads, from the request paths (the client is cheap to clone).
pub(super) struct Store {
    client: Client,
}

/// The writer's side: its own runtime on the writer thread.
pub(super) struct Sink {
    client: Client,
    rt: tokio::runtime::Runtime,
}

fn schema(db: &str) -> [String; 4] {
    // Days of data per partition: retention drops whole days cheaply.
    let engine = "ENGINE = MergeTree() PARTITION BY toYYYYMMDD(toDateTime(intDiv(t_ms, 1000))) ORDER BY t_ms";
    [
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.samples (t_ms UInt64, client String, unit String, pop String, \
             rtt_us UInt32, kind String, beacon Nullable(String), resolver Nullable(String), \
             asn Nullable(UInt32), country Nullable(String), city Nullable(String), rdns Nullable(String)) {engine}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.path_changes (t_ms UInt64, view String, prefix String, \
             old_path String, new_path String) {engine}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.resolvers (t_ms UInt64, beacon String, client String, \
             client_unit String, client_asn Nullable(UInt32), resolver String, resolver_asn Nullable(UInt32), \
             ecs Nullable(String), distance_km Nullable(Float64)) {engine}"
        ),
    ]
}

#[derive(Row, Serialize)]
struct SampleRow<'a> {
    t_ms: u64,
    client: &'a str,
    unit: &'a str,
    pop: &'a str,
    rtt_us: u32,
    kind: &'a str,
    beacon: Option<&'a str>,
    resolver: Option<&'a str>,
    asn: Option<u32>,
    country: Option<&'a str>,
    city: Option<&'a str>,
    rdns: Option<&'a str>,
}

#[derive(Row, Serialize)]
struct ChangeRow<'a> {
    t_ms: u64,
    view: &'a str,
    prefix: &'a str,
    old_path: &'a str,
    new_path: &'a str,
}

#[derive(Row, Serialize)]
struct ResolverRow<'a> {
    t_ms: u64,
    beacon: &'a str,
    client: &'a str,
    client_unit: &'a str,
    client_asn: Option<u32>,
    resolver: &'a str,
    resolver_asn: Option<u32>,
    ecs: Option<&'a str>,
    distance_km: Option<f64>,
}

fn client(c: &ClickhouseConf) -> Client {
    Client::default()
        .with_url(&c.url)
        .with_user(&c.user)
        .with_password(&c.password)
        .with_database(&c.database)
        .with_validation(false)
}

/// Connect, create the database and tables if missing.
pub(super) fn open(c: &ClickhouseConf) -> Result<(Store, Sink), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The database may not exist yet: the first statements name it.
    let admin = Client::default()
        .with_url(&c.url)
        .with_user(&c.user)
        .with_password(&c.password)
        .with_validation(false);
    rt.block_on(async {
        for q in schema(&c.database) {
            admin
                .query(&q)
                .execute()
                .await
                .map_err(|e| format!("[measure.clickhouse] {}: {e}", c.url))?;
        }
        // Tables from before reverse DNS was stored lack its column (old
        // servers have no ADD COLUMN IF NOT EXISTS).
        let has: u64 = admin
            .query("SELECT count() FROM system.columns WHERE database = ? AND table = 'samples' AND name = 'rdns'")
            .bind(c.database.as_str())
            .fetch_one()
            .await
            .map_err(|e| format!("[measure.clickhouse] {}: {e}", c.url))?;
        if has == 0 {
            admin
                .query(&format!(
                    "ALTER TABLE {}.samples ADD COLUMN rdns Nullable(String)",
                    c.database
                ))
                .execute()
                .await
                .map_err(|e| format!("[measure.clickhouse] {}: {e}", c.url))?;
        }
        Ok::<(), String>(())
    })?;
    Ok((Store { client: client(c) }, Sink { client: client(c), rt }))
}

impl super::Sink for Sink {
    fn write(&mut self, jobs: &[Job]) -> Result<(), String> {
        let c = &self.client;
        self.rt.block_on(async {
            if jobs
                .iter()
                .any(|j| j.samples.as_ref().is_some_and(|s| !s.rows.is_empty()))
            {
                let mut ins = c.insert::<SampleRow<'_>>("samples").await.map_err(|e| e.to_string())?;
                let mut bufs = super::TextBufs::default();
                for samples in jobs.iter().filter_map(|j| j.samples.as_ref()) {
                    for r in &samples.rows {
                        let s = &r.sample;
                        let x = samples.text(r, &mut bufs);
                        ins.write(&SampleRow {
                            t_ms: s.at_ms,
                            client: x.client,
                            unit: x.unit,
                            pop: x.pop,
                            rtt_us: s.rtt_us,
                            kind: s.kind.as_str(),
                            beacon: x.beacon,
                            resolver: x.resolver,
                            asn: r.asn,
                            country: x.country,
                            city: x.city,
                            rdns: x.rdns,
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    }
                }
                ins.end().await.map_err(|e| e.to_string())?;
            }
            if jobs.iter().any(|j| !j.changes.is_empty()) {
                let mut ins = c
                    .insert::<ChangeRow<'_>>("path_changes")
                    .await
                    .map_err(|e| e.to_string())?;
                for r in jobs.iter().flat_map(|j| &j.changes) {
                    ins.write(&ChangeRow {
                        t_ms: r.at_ms,
                        view: &r.view,
                        prefix: &r.prefix,
                        old_path: &r.old_path,
                        new_path: &r.new_path,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                }
                ins.end().await.map_err(|e| e.to_string())?;
            }
            if jobs.iter().any(|j| !j.resolvers.is_empty()) {
                let mut ins = c
                    .insert::<ResolverRow<'_>>("resolvers")
                    .await
                    .map_err(|e| e.to_string())?;
                for r in jobs.iter().flat_map(|j| &j.resolvers) {
                    ins.write(&ResolverRow {
                        t_ms: r.at_ms,
                        beacon: &r.beacon,
                        client: &r.client,
                        client_unit: &r.client_unit,
                        client_asn: r.client_asn,
                        resolver: &r.resolver,
                        resolver_asn: r.resolver_asn,
                        ecs: r.ecs.as_deref(),
                        distance_km: r.distance_km,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                }
                ins.end().await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }

    /// ClickHouse keeps raw samples only (for `retention_days`): it
    /// aggregates them fast enough that hourly roll-ups are not needed.
    fn maintain(&mut self, _now_ms: u64, raw_cutoff_ms: u64, _rollup_cutoff_ms: u64) -> Result<(), String> {
        let c = &self.client;
        self.rt.block_on(async {
            for table in ["samples", "path_changes", "resolvers"] {
                c.query(&format!("ALTER TABLE {table} DELETE WHERE t_ms < ?"))
                    .bind(raw_cutoff_ms)
                    .execute()
                    .await
                    .map_err(|e| format!("{table}: {e}"))?;
            }
            Ok(())
        })
    }
}

#[derive(Row, Deserialize)]
struct Recent {
    t_ms: u64,
    client: String,
    pop: String,
    rtt_us: u32,
}

#[derive(Row, Deserialize)]
struct Top {
    key: String,
    pop: String,
    samples: u64,
    clients: u64,
    median: f64,
    p90: f64,
}

#[derive(Row, Deserialize)]
struct Resolver {
    resolver: String,
    asn: Option<u32>,
    beacons: u64,
    units: u64,
    with_ecs: u64,
    distance: f64,
    with_distance: u64,
    top_units: Vec<String>,
}

impl Store {
    pub(super) async fn recent(&self, since_ms: u64) -> Result<Vec<(u64, String, String, u32)>, String> {
        let rows = self
            .client
            .query("SELECT t_ms, client, pop, rtt_us FROM samples WHERE t_ms >= ? ORDER BY t_ms")
            .bind(since_ms)
            .fetch_all::<Recent>()
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(|r| (r.t_ms, r.client, r.pop, r.rtt_us)).collect())
    }

    pub(super) async fn top(
        &self,
        by: TopBy,
        pop: Option<&str>,
        since_ms: u64,
        limit: u32,
    ) -> Result<Vec<petrel_api::TopRow>, String> {
        let col = by.column();
        let key = match by {
            TopBy::Asn => format!("concat('AS', toString(assumeNotNull({col})))"),
            _ => format!("toString(assumeNotNull({col}))"),
        };
        let q = format!(
            "SELECT {key} AS key, pop, count() AS samples, uniqExact(client) AS clients, \
             toFloat64(quantileExact(0.5)(rtt_us)) / 1000 AS median, toFloat64(quantileExact(0.9)(rtt_us)) / 1000 AS p90 \
             FROM samples WHERE t_ms >= ? AND isNotNull({col}) {} \
             GROUP BY key, pop ORDER BY samples DESC, key, pop LIMIT ?",
            if pop.is_some() { "AND pop = ?" } else { "" }
        );
        let mut query = self.client.query(&q).bind(since_ms);
        if let Some(p) = pop {
            query = query.bind(p);
        }
        let rows = query.bind(limit).fetch_all::<Top>().await.map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|r| petrel_api::TopRow {
                key: r.key,
                pop: r.pop,
                samples: r.samples,
                clients: r.clients,
                median_ms: r.median,
                p90_ms: r.p90,
            })
            .collect())
    }

    pub(super) async fn resolvers(&self, since_ms: u64, limit: u32) -> Result<Vec<petrel_api::ResolverRow>, String> {
        let rows = self
            .client
            .query(
                "SELECT resolver, max(resolver_asn) AS asn, count() AS beacons, uniqExact(client_unit) AS units, \
                 countIf(isNotNull(ecs)) AS with_ecs, \
                 toFloat64(ifNull(quantileExact(0.5)(distance_km), 0)) AS distance, count(distance_km) AS with_distance, \
                 topK(5)(client_unit) AS top_units \
                 FROM resolvers WHERE t_ms >= ? GROUP BY resolver ORDER BY beacons DESC, resolver LIMIT ?",
            )
            .bind(since_ms)
            .bind(limit)
            .fetch_all::<Resolver>()
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|r| petrel_api::ResolverRow {
                resolver: r.resolver,
                asn: r.asn,
                beacons: r.beacons,
                client_units: r.units,
                ecs_share: r.with_ecs as f64 / r.beacons.max(1) as f64,
                median_distance_km: (r.with_distance > 0).then_some(r.distance),
                top_client_units: r.top_units,
            })
            .collect())
    }
}
