//! Health probes and the one task that owns health state.
//!
//! Each check runs in its own small task on the control runtime and sends
//! its outcomes over a bounded channel to the supervisor, which feeds them
//! to `petrel-health`'s hysteresis, keeps the status board for the API and
//! metrics, and on a POP flip publishes a new generation whose state vector
//! differs (tables are shared, nothing is recompiled). How a POP's state
//! follows from its targets is the decision core's rule
//! ([`petrel_director::state::judge_pop`]).

use petrel_api::TargetStatus;
use petrel_config::{CheckKind, HealthCheck, Initial};
use petrel_director::state::{judge_pop, target_state};
use petrel_director::{ChangeKind, Publisher};
use petrel_health::{judge, Hysteresis, Outcome, TargetState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Last known state of one check: what the API shows, and the probe
/// durations the metrics show.
#[derive(Clone, Debug)]
pub struct TargetRecord {
    pub status: TargetStatus,
    /// Probe durations: counts per bucket of [`LATENCY_BUCKETS`] (+Inf last), and the sum.
    pub latency_counts: [u64; LATENCY_BUCKETS.len() + 1],
    pub latency_sum: f64,
}

/// Upper bounds (seconds) of the probe latency histogram.
pub const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default, Debug)]
pub struct HealthBoard {
    targets: Mutex<Vec<TargetRecord>>,
    /// Probe result to published generation, for POP flips: last and worst.
    publish_last_ns: std::sync::atomic::AtomicU64,
    publish_max_ns: std::sync::atomic::AtomicU64,
    publish_count: std::sync::atomic::AtomicU64,
    /// Probes not made for want of a local resource.
    pub local_failures: std::sync::atomic::AtomicU64,
}

impl HealthBoard {
    /// Wait (bounded by `limit`) until every named target has a result.
    pub fn wait_for_first_results(&self, names: &[String], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let done = {
                let b = self.targets.lock().expect("health board");
                names
                    .iter()
                    .all(|n| b.iter().any(|t| &t.status.name == n && t.status.probes > 0))
            };
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn snapshot(&self) -> Vec<TargetRecord> {
        self.targets.lock().expect("health board").clone()
    }

    /// Every target's state, for the API.
    pub fn statuses(&self) -> Vec<TargetStatus> {
        let b = self.targets.lock().expect("health board");
        b.iter().map(|t| t.status.clone()).collect()
    }

    fn record_publish(&self, d: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let ns = d.as_nanos() as u64;
        self.publish_last_ns.store(ns, Relaxed);
        self.publish_max_ns.fetch_max(ns, Relaxed);
        self.publish_count.fetch_add(1, Relaxed);
    }

    /// (last, worst, count) of POP flips published, in seconds.
    pub fn publish_stats(&self) -> (f64, f64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.publish_last_ns.load(Relaxed) as f64 / 1e9,
            self.publish_max_ns.load(Relaxed) as f64 / 1e9,
            self.publish_count.load(Relaxed),
        )
    }
}

/// Renders the board at scrape time.
#[derive(Debug)]
pub struct HealthCollector(pub Arc<HealthBoard>);

impl Collector for HealthCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let targets = self.0.snapshot();
        let (last, worst, flips) = self.0.publish_stats();
        for (name, help, v) in [
            (
                "petrel_health_flip_publish_last_seconds",
                "From the probe result to the served generation, last POP flip",
                last,
            ),
            (
                "petrel_health_flip_publish_max_seconds",
                "From the probe result to the served generation, worst POP flip",
                worst,
            ),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstGauge::new(0f64).metric_type())?;
            ConstGauge::new(v).encode(me)?;
        }
        let me = enc.encode_descriptor(
            "petrel_health_pop_flips",
            "POP health changes published",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        ConstCounter::new(flips).encode(me)?;
        let me = enc.encode_descriptor(
            "petrel_health_probes_not_made",
            "Probes this host could not make (no descriptor, buffer or local port); targets kept their state",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        ConstCounter::new(self.0.local_failures.load(std::sync::atomic::Ordering::Relaxed)).encode(me)?;
        let mut up = enc.encode_descriptor(
            "petrel_health_target_up",
            "1 if a health-check target is up (after rise/fall hysteresis)",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for t in &targets {
            let labels = vec![("pop", t.status.pop.clone()), ("target", t.status.name.clone())];
            ConstGauge::new((t.status.state == TargetState::Up) as i64).encode(up.encode_family(&labels)?)?;
        }
        let mut lat = enc.encode_descriptor(
            "petrel_health_probe_duration_seconds",
            "Probe durations per target",
            None,
            prometheus_client::metrics::MetricType::Histogram,
        )?;
        for t in &targets {
            let labels = vec![("pop", t.status.pop.clone()), ("target", t.status.name.clone())];
            let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .copied()
                .zip(t.latency_counts.iter().copied())
                .collect();
            buckets.push((f64::INFINITY, t.latency_counts[LATENCY_BUCKETS.len()]));
            let count = t.latency_counts.iter().sum();
            lat.encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(t.latency_sum, count, &buckets, None)?;
        }
        let mut probes = enc.encode_descriptor(
            "petrel_health_probes",
            "Probes run per target since it was configured",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for t in &targets {
            let labels = vec![("pop", t.status.pop.clone()), ("target", t.status.name.clone())];
            ConstCounter::new(t.status.probes).encode(probes.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

struct Report {
    epoch: u64,
    idx: usize,
    ok: bool,
    /// The probe could not be made for want of a local resource (no
    /// descriptor, no buffer, no local port): says nothing of the target.
    local: bool,
    elapsed: Duration,
    detail: String,
    /// When the probe finished: the start of the flip-to-generation latency.
    done: Instant,
}

struct Target {
    pop: String,
    check: HealthCheck,
    hyst: Hysteresis,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Start the supervisor on the current runtime: it follows the serving
/// config (reloads restart the probes, keeping the history of unchanged
/// checks) and operator forces on targets.
pub fn spawn(publisher: Arc<Publisher>, board: Arc<HealthBoard>) {
    let reload = Arc::new(Notify::new());
    let overrides = Arc::new(Notify::new());
    let (r, o) = (reload.clone(), overrides.clone());
    publisher.subscribe(move |_, c| match c.kind {
        ChangeKind::Reload => r.notify_one(),
        ChangeKind::Overrides => o.notify_one(),
        _ => {}
    });
    tokio::spawn(supervise(publisher, board, reload, overrides));
}

async fn supervise(publisher: Arc<Publisher>, board: Arc<HealthBoard>, reload: Arc<Notify>, overrides: Arc<Notify>) {
    let start = Instant::now();
    let now_ms = move || start.elapsed().as_millis() as u64;
    let mut epoch = 0u64;
    let mut kept: HashMap<String, (HealthCheck, Hysteresis)> = HashMap::new();
    let mut local_log = crate::quiet::Every::new(Duration::from_secs(10));
    loop {
        epoch += 1;
        // Only the config is kept while probing: holding the generation
        // would keep its zones and tables alive until the next reload.
        let config = publisher.load().built.config.clone();
        let mut targets: Vec<Target> = Vec::new();
        for p in &config.pops {
            for c in &p.checks {
                // A check that did not change keeps its history across reloads.
                let hyst = match kept.remove(&c.name) {
                    Some((old, h)) if old == *c => h,
                    _ => match c.initial {
                        Initial::Up => Hysteresis::new(TargetState::Up, c.rise, c.fall, now_ms()),
                        Initial::Down => Hysteresis::new(TargetState::Down, c.rise, c.fall, now_ms()),
                        Initial::Wait => Hysteresis::pending(c.rise, c.fall, now_ms()),
                    },
                };
                targets.push(Target {
                    pop: p.name.clone(),
                    check: c.clone(),
                    hyst,
                });
            }
        }
        let thresholds: HashMap<String, (f64, Option<f64>)> = config
            .pops
            .iter()
            .map(|p| (p.name.clone(), (p.up_thresh, p.degraded_below)))
            .collect();
        // POP states from the targets' current (initial or kept) states.
        judge_all(&publisher, &targets, &thresholds);
        publish(&board, &targets);
        drop(config);

        let (tx, mut rx) = mpsc::channel::<Report>(1024);
        let tasks: Vec<JoinHandle<()>> = targets
            .iter()
            .enumerate()
            .map(|(idx, t)| tokio::spawn(probe_loop(epoch, idx, t.check.clone(), t.hyst.clone(), tx.clone())))
            .collect();
        drop(tx);
        loop {
            tokio::select! {
                r = rx.recv() => {
                    let Some(r) = r else {
                        // No checks at all (or every probe task ended): idle
                        // until the config changes, rather than rebuild in a loop.
                        reload.notified().await;
                        break;
                    };
                    if r.epoch != epoch { continue; }
                    let t = &mut targets[r.idx];
                    if r.local {
                        // Not evidence against the target: its state stays.
                        board.local_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Some(n) = local_log.hit(Instant::now()) {
                            tracing::error!(target_name = %t.check.name, detail = %r.detail, suppressed = n, "health probe not made: local resource failure; the target keeps its state");
                        }
                        update_board_local(&board, r.idx, &r.detail);
                        continue;
                    }
                    let elapsed_ms = r.elapsed.as_millis() as u64;
                    let outcome = judge(r.ok, elapsed_ms, t.check.timeout_ms);
                    let flip = t.hyst.observe(outcome, now_ms());
                    update_board(&board, r.idx, t, outcome, r.elapsed, &r.detail);
                    if let Some(f) = flip {
                        tracing::warn!(target_name = %t.check.name, to = ?f.to, after = f.after, detail = %r.detail, "health check changed state");
                        let pop = t.pop.clone();
                        let (state, why) = judge_targets(&publisher, &targets, &pop, thresholds[&pop]);
                        if let Some(id) = publisher.set_pop_health(&pop, state, &why) {
                            let publish = r.done.elapsed();
                            board.record_publish(publish);
                            tracing::warn!(pop = %pop, state = state.as_str(), generation = id, publish_us = publish.as_micros() as u64, "POP health changed");
                        }
                    }
                }
                // A force on a target changes its POP's judgement at once.
                _ = overrides.notified() => judge_all(&publisher, &targets, &thresholds),
                _ = reload.notified() => break,
            }
        }
        for t in &tasks {
            t.abort();
        }
        kept = targets
            .into_iter()
            .map(|t| (t.check.name.clone(), (t.check, t.hyst)))
            .collect();
    }
}

/// A POP's health from its targets, each as an operator forced it or as its
/// hysteresis says.
fn judge_targets(
    publisher: &Publisher,
    targets: &[Target],
    pop: &str,
    (up_thresh, degraded_below): (f64, Option<f64>),
) -> (petrel_types::PopState, String) {
    let o = publisher.overrides();
    let states = targets
        .iter()
        .filter(|t| t.pop == pop)
        .map(|t| target_state(&o, &t.check.name, t.hyst.state()));
    judge_pop(states, up_thresh, degraded_below)
}

fn judge_all(publisher: &Publisher, targets: &[Target], thresholds: &HashMap<String, (f64, Option<f64>)>) {
    for (pop, &th) in thresholds {
        let (state, why) = judge_targets(publisher, targets, pop, th);
        publisher.set_pop_health(pop, state, &why);
    }
}

fn publish(board: &HealthBoard, targets: &[Target]) {
    let now = unix_now();
    let list = targets
        .iter()
        .map(|t| TargetRecord {
            status: TargetStatus {
                name: t.check.name.clone(),
                pop: t.pop.clone(),
                state: t.hyst.state(),
                since_unix: now,
                probes: 0,
                last_ok: None,
                last_latency_ms: None,
                last_detail: String::new(),
            },
            latency_counts: [0; LATENCY_BUCKETS.len() + 1],
            latency_sum: 0.0,
        })
        .collect();
    *board.targets.lock().expect("health board") = list;
}

fn update_board_local(board: &HealthBoard, idx: usize, detail: &str) {
    let mut b = board.targets.lock().expect("health board");
    if let Some(r) = b.get_mut(idx) {
        r.status.last_detail = format!("not probed (local resource failure): {detail}");
    }
}

fn update_board(board: &HealthBoard, idx: usize, t: &Target, outcome: Outcome, elapsed: Duration, detail: &str) {
    let mut b = board.targets.lock().expect("health board");
    if let Some(r) = b.get_mut(idx) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&ub| secs <= ub)
            .unwrap_or(LATENCY_BUCKETS.len());
        r.latency_counts[bucket] += 1;
        r.latency_sum += secs;
        let s = &mut r.status;
        if s.state != t.hyst.state() {
            s.since_unix = unix_now();
        }
        s.state = t.hyst.state();
        s.probes += 1;
        s.last_ok = Some(outcome == Outcome::Ok);
        s.last_latency_ms = Some(secs * 1000.0);
        s.last_detail = detail.to_string();
    }
}

/// Probes one target for ever: every `interval_ms`, or every
/// `fast_interval_ms` while a change is under way. The loop keeps its own
/// copy of the target's hysteresis (fed the same outcomes as the
/// collector's, local errors aside) to know which.
async fn probe_loop(epoch: u64, idx: usize, check: HealthCheck, mut hyst: Hysteresis, tx: mpsc::Sender<Report>) {
    let limit = Duration::from_millis(check.timeout_ms);
    // TLS settings are built once per check, not per probe.
    let tls = match &check.kind {
        CheckKind::Http { tls: Some(t), .. } => Some(crate::tls::connector(t)),
        _ => None,
    };
    let t_start = Instant::now();
    // The first probe starts at once: probes start at boot.
    let mut next = t_start;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let t0 = Instant::now();
        let (ok, local, detail) = match tokio::time::timeout(limit, probe(&check, tls.as_ref())).await {
            Ok(Ok(d)) => (true, false, d),
            Ok(Err(ProbeErr::Target(d))) => (false, false, d),
            Ok(Err(ProbeErr::Local(d))) => (false, true, d),
            Err(_) => (false, false, format!("no answer within {} ms", check.timeout_ms)),
        };
        let elapsed = t0.elapsed();
        if !local {
            let ms = t_start.elapsed().as_millis() as u64;
            hyst.observe(judge(ok, elapsed.as_millis() as u64, check.timeout_ms), ms);
        }
        let every = if hyst.changing() {
            check.fast_interval_ms
        } else {
            check.interval_ms
        };
        // Probes start `every` apart; one that ran late is followed at once
        // by the next, without a burst to catch up.
        next = (next + Duration::from_millis(every)).max(Instant::now());
        if tx
            .send(Report {
                epoch,
                idx,
                ok,
                local,
                elapsed,
                detail,
                done: Instant::now(),
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

type Tls = Result<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>), String>;

/// Why a probe did not succeed.
enum ProbeErr {
    /// The target failed it.
    Target(String),
    /// This host could not make it (descriptors, memory, local ports).
    Local(String),
}

impl From<String> for ProbeErr {
    fn from(s: String) -> ProbeErr {
        ProbeErr::Target(s)
    }
}

/// An IO error of a probe: local exhaustion is told apart from anything the
/// target could have caused.
fn io_err(what: &str, e: std::io::Error) -> ProbeErr {
    let d = format!("{what}: {e}");
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL | libc::EAGAIN) => {
            ProbeErr::Local(d)
        }
        _ => ProbeErr::Target(d),
    }
}

/// One probe. Ok carries a short description of success, Err of failure.
/// The caller bounds it by the check's timeout.
async fn probe(check: &HealthCheck, tls: Option<&Tls>) -> Result<String, ProbeErr> {
    match &check.kind {
        CheckKind::Tcp { target } => {
            TcpStream::connect(target).await.map_err(|e| io_err("connect", e))?;
            Ok("connected".into())
        }
        CheckKind::Http {
            target,
            method,
            path,
            host,
            expect_status,
            expect_body,
            max_body_bytes,
            ..
        } => {
            let s = TcpStream::connect(target).await.map_err(|e| io_err("connect", e))?;
            let host = if host.is_empty() {
                target.to_string()
            } else {
                host.clone()
            };
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: petrel-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            );
            let cap = max_body_bytes + 16 * 1024;
            let buf = match tls {
                None => exchange(s, req.as_bytes(), cap).await?,
                Some(Err(e)) => return Err(ProbeErr::Target(e.clone())),
                Some(Ok((connector, name))) => {
                    let s = connector
                        .connect(name.clone(), s)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?;
                    exchange(s, req.as_bytes(), cap).await?
                }
            };
            let text = String::from_utf8_lossy(&buf);
            let status: u16 = text
                .strip_prefix("HTTP/1.")
                .and_then(|r| r.get(2..5))
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| "not an HTTP response".to_string())?;
            let good = if expect_status.is_empty() {
                (200..400).contains(&status)
            } else {
                expect_status.contains(&status)
            };
            if !good {
                return Err(ProbeErr::Target(format!("HTTP {status}")));
            }
            if let Some(want) = expect_body {
                let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                if !body.contains(want.as_str()) {
                    return Err(ProbeErr::Target(format!("HTTP {status}, body lacks `{want}`")));
                }
            }
            Ok(format!("HTTP {status}"))
        }
        CheckKind::Dns {
            target,
            qname,
            qtype,
            expect_rcode,
            expect_answer,
        } => {
            let bind: std::net::SocketAddr = if target.is_ipv6() {
                "[::]:0".parse().expect("literal")
            } else {
                "0.0.0.0:0".parse().expect("literal")
            };
            let sock = tokio::net::UdpSocket::bind(bind)
                .await
                .map_err(|e| io_err("socket", e))?;
            sock.connect(target).await.map_err(|e| format!("connect: {e}"))?;
            let id = (SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
                & 0xffff) as u16;
            let mut q = [0u8; 512];
            let mut w = petrel_dns_wire::MessageWriter::new(&mut q, 512);
            w.question(qname, *qtype, 1).map_err(|_| "query too long".to_string())?;
            let n = w.finish(id, 0);
            sock.send(&q[..n]).await.map_err(|e| format!("send: {e}"))?;
            let mut buf = [0u8; 4096];
            loop {
                let n = sock.recv(&mut buf).await.map_err(|e| format!("receive: {e}"))?;
                // Ignore stray datagrams; a forged reply must at least match the id.
                let Some(r) = petrel_dns_wire::summarize_reply(&buf[..n]) else {
                    continue;
                };
                if r.id != id {
                    continue;
                }
                if r.rcode != *expect_rcode {
                    return Err(ProbeErr::Target(format!(
                        "rcode {}",
                        petrel_dns_wire::consts::rcode::name(r.rcode)
                    )));
                }
                if let Some(a) = expect_answer {
                    if !r.addresses.contains(a) {
                        return Err(ProbeErr::Target(format!("answer lacks {a}")));
                    }
                }
                return Ok(format!("rcode {}", petrel_dns_wire::consts::rcode::name(r.rcode)));
            }
        }
        CheckKind::Icmp { target } => {
            let client = icmp_client(target.is_ipv6()).await?;
            let ident = surge_ping::PingIdentifier(rand_u16());
            let mut pinger = client.pinger(*target, ident).await;
            // The caller's timeout bounds the whole probe; this one only
            // makes surge-ping give up its waiter at the same time.
            pinger.timeout(Duration::from_millis(check.timeout_ms));
            let (_, rtt) = pinger
                .ping(surge_ping::PingSequence(0), &[0u8; 16])
                .await
                .map_err(|e| format!("ping: {e}"))?;
            Ok(format!("echo reply in {:.1} ms", rtt.as_secs_f64() * 1000.0))
        }
        CheckKind::Exec { argv } => {
            // kill_on_drop: when the timeout drops this future, the child dies.
            let out = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| io_err(&format!("cannot run {}", argv[0]), e))?;
            if out.status.success() {
                Ok("exit 0".into())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                let first = err.lines().next().unwrap_or("").chars().take(120).collect::<String>();
                Err(ProbeErr::Target(format!("{} {first}", out.status)))
            }
        }
    }
}

/// One ICMP socket per family, shared by every ICMP check (surge-ping
/// routes replies to the right waiter).
async fn icmp_client(v6: bool) -> Result<&'static surge_ping::Client, String> {
    static V4: tokio::sync::OnceCell<surge_ping::Client> = tokio::sync::OnceCell::const_new();
    static V6: tokio::sync::OnceCell<surge_ping::Client> = tokio::sync::OnceCell::const_new();
    let (cell, kind) = if v6 {
        (&V6, surge_ping::ICMP::V6)
    } else {
        (&V4, surge_ping::ICMP::V4)
    };
    cell.get_or_try_init(|| async {
        surge_ping::Client::new(&surge_ping::Config::builder().kind(kind).build())
            .map_err(|e| format!("ICMP socket (needs ping_group_range or CAP_NET_RAW): {e}"))
    })
    .await
}

fn rand_u16() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos()) as u16;
    seed ^ NEXT.fetch_add(0x9e37, Ordering::Relaxed)
}

/// Send a request and read the reply until the peer closes or `cap` bytes.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, req: &[u8], cap: usize) -> Result<Vec<u8>, String> {
    s.write_all(req).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while buf.len() < cap {
        match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n.min(cap - buf.len())]),
            // Servers often close TLS without close_notify; what was read counts.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod local_failure_tests {
    use super::*;

    #[test]
    fn only_this_hosts_own_exhaustion_spares_the_target() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        for n in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
            libc::EAGAIN,
        ] {
            assert!(matches!(io_err("connect", e(n)), ProbeErr::Local(_)), "{n}");
        }
        for n in [
            libc::ECONNREFUSED,
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::ECONNRESET,
        ] {
            assert!(matches!(io_err("connect", e(n)), ProbeErr::Target(_)), "{n}");
        }
        let ProbeErr::Local(d) = io_err("socket", e(libc::EMFILE)) else {
            panic!()
        };
        assert!(d.starts_with("socket: "), "{d}");
    }
}
