//! `petrel serve`: wire the generation to sockets, the admin API and signals.

use crate::health::HealthBoard;
use crate::metrics::DnsMetrics;
use crate::reload::Reloader;
use crate::{admin, dns_tcp, dns_udp, sources};
use petrel_director::Publisher;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub fn run(config: &Path) -> Result<(), String> {
    let built = sources::load(config, None).map_err(|errs| {
        let mut s = String::from("the config has errors:\n");
        for e in errs {
            s.push_str("  ");
            s.push_str(&e);
            s.push('\n');
        }
        s
    })?;
    let server = built.config.server.clone();
    let (overrides, warning) = sources::saved_overrides(&server);
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let (token, warning) = sources::admin_token(&server)?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let publisher = Arc::new(Publisher::new(built, overrides));
    let reader = publisher.reader();
    let reloader = Reloader::new(publisher.clone(), config);
    let dns_metrics = Arc::new(DnsMetrics::default());
    let health = Arc::new(HealthBoard::default());

    // The control runtime: TCP, signals, reloads. Two threads keep a slow
    // TCP client from delaying signal handling.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("control")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    {
        let _guard = rt.enter();
        crate::health::spawn(publisher.clone(), health.clone());
    }
    let bgp = crate::bgp::spawn(publisher.clone(), &rt)?;
    // Checks with `initial = "wait"` decide their POP's first state from
    // their first result; answer only after those are in.
    let waiting: Vec<(String, u64)> = reader
        .load()
        .config()
        .pops
        .iter()
        .flat_map(|p| &p.checks)
        .filter(|c| c.initial == petrel_config::Initial::Wait)
        .map(|c| (c.name.clone(), c.timeout_ms))
        .collect();
    if !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|w| w.0.clone()).collect();
        let limit = Duration::from_millis(waiting.iter().map(|w| w.1).max().unwrap_or(0) + 500);
        if !health.wait_for_first_results(&names, limit) {
            tracing::warn!("not every check with initial = \"wait\" has a result; serving anyway");
        }
    }
    // One UDP worker per core by default: with fewer, a flood from one
    // source takes a larger share of the only queue legitimate clients have.
    let udp_workers = server
        .udp_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let measurements = Arc::new(crate::measure::Measurements::default());
    // Rate limiting's accounts, sized at start (a reload can turn it on or
    // change its rates, not the table's size).
    let rrl_size = server.rrl.as_ref().map_or(1 << 16, |r| r.table_size);
    let rrl = Arc::new(petrel_dns_auth::rrl::Table::new(rrl_size, {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
    }));
    let _ = dns_metrics.rrl.set(rrl.clone());
    // dnstap is started with the process (a reload does not move it).
    if let Some(d) = &server.dnstap {
        let hub = crate::dnstap_out::Hub::start(d.clone()).map_err(|e| format!("dnstap: {e}"))?;
        let _ = dns_metrics.dnstap_tcp.set(std::sync::Mutex::new(hub.tap()));
        let _ = dns_metrics.dnstap.set(hub);
    }
    crate::rrl_log::spawn(rrl.clone());
    let mut tcp = Vec::new();
    for addr in &server.dns {
        // Bind TCP first: it fails the same way UDP would, and nothing has
        // been started for this address yet if it does.
        let l = match dns_tcp::bind(*addr).and_then(|l| {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(l)
        }) {
            Ok(l) => l,
            // A host without IPv6 (some containers) cannot bind [::1]; go on
            // with the other listeners rather than refuse to start.
            Err(e) if addr.is_ipv6() && matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)) => {
                tracing::warn!(%addr, error = %e, "IPv6 is not available here; not listening on this address");
                continue;
            }
            Err(e) => return Err(format!("cannot listen on tcp {addr}: {e}")),
        };
        dns_udp::spawn(
            reader.clone(),
            dns_metrics.clone(),
            *addr,
            udp_workers,
            measurements.clone(),
            rrl.clone(),
        )
        .map_err(|e| format!("cannot listen on udp {addr}: {e}"))?;
        tcp.push(l);
        tracing::info!(%addr, "DNS listening (UDP and TCP)");
    }
    if tcp.is_empty() {
        return Err("no DNS listener could be opened".into());
    }
    {
        // The warehouse is opened at start (a reload that adds or moves it
        // takes effect at the next restart); its recent samples rebuild the
        // aggregates.
        let g = publisher.load();
        if let Some(conf) = g.config().measure.as_ref() {
            if let Some(server) = conf.reverse_dns {
                measurements.set_rdns(crate::rdns::Rdns::start(server, rt.handle()));
            }
            if let Some(w) = crate::warehouse::Warehouse::open(conf)? {
                measurements.set_warehouse(Arc::new(w));
                let n = rt.block_on(crate::measure::restore(&measurements, conf, &g))?;
                tracing::info!(samples = n, "measurements restored");
            }
        }
    }
    crate::measure::spawn(publisher.clone(), measurements.clone(), rt.handle()).map_err(|e| e.to_string())?;
    let http_metrics = Arc::new(crate::http::metrics::HttpMetrics::default());
    // Kept until shutdown: dropping it would stop the HTTP fronts.
    let http_rt = crate::http::spawn(&publisher, http_metrics.clone(), measurements.clone())?;
    reloader.set_http(http_rt.clone());
    resign_when_due(&reader, &reloader, rt.handle());
    crate::notify::spawn(&publisher, rt.handle());
    let conns = dns_tcp::Conns::new(dns_tcp::Limits {
        max: descriptor_budget(&server),
        per_source: server.tcp_max_per_source,
        idle: Duration::from_secs(server.tcp_idle_timeout_secs),
    });
    // The versions of transferred zones, for incremental transfers.
    let journal = Arc::new(petrel_dns_auth::xfr::Journal::default());
    journal.record(&publisher.load());
    {
        // Walking a zone is not done under the publisher's lock.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        publisher.subscribe(move |g, c| {
            if c.kind == petrel_director::ChangeKind::Reload {
                let _ = tx.send(g.clone());
            }
        });
        let j = journal.clone();
        rt.spawn(async move {
            while let Some(g) = rx.recv().await {
                let j = j.clone();
                let _ = tokio::task::spawn_blocking(move || j.record(&g)).await;
            }
        });
    }
    for l in tcp {
        rt.spawn(dns_tcp::serve(
            reader.clone(),
            dns_metrics.clone(),
            l,
            conns.clone(),
            (measurements.clone(), journal.clone()),
        ));
    }
    if let Some(addr) = server.admin {
        let handles = admin::Handles {
            publisher: publisher.clone(),
            reloader: reloader.clone(),
            dns: dns_metrics.clone(),
            health: health.clone(),
            bgp: Some(bgp),
            http: http_metrics.clone(),
            measure: measurements.clone(),
        };
        let listen = admin::Listen {
            addr,
            token,
            hosts: server.admin_hosts.clone(),
            max_connections: server.admin_max_connections,
        };
        admin::spawn(handles, listen).map_err(|e| format!("cannot listen on admin {addr}: {e}"))?;
        tracing::info!(%addr, "admin API and metrics listening");
    }
    let g = reader.load();
    tracing::info!(
        generation = g.id,
        zones = g.zones().zone_count(),
        services = g.config().services.len(),
        pops = g.config().pops.len(),
        "serving"
    );
    if g.warming {
        // READY=1 waits for the routing views (or `bgp.warmup_secs`): the
        // RIB ends the warm-up with a publication.
        crate::sd_notify::starting("warming: waiting for the routing views");
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let sent = Arc::new(AtomicBool::new(false));
        let s = sent.clone();
        publisher.subscribe(move |g, _| {
            if !g.warming && !s.swap(true, Relaxed) {
                crate::sd_notify::ready(&format!("serving generation {}", g.id));
            }
        });
        // It may have ended before the subscription.
        let now = reader.load();
        if !now.warming && !sent.swap(true, Relaxed) {
            crate::sd_notify::ready(&format!("serving generation {}", now.id));
        }
    } else {
        crate::sd_notify::ready(&format!("serving generation {}", g.id));
    }
    crate::sd_notify::watchdog(rt.handle());
    drop(g);
    let result = rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    // Not awaited here: SIGTERM must be heard while a reload
                    // reads and compiles (the reloader runs one at a time).
                    let r = reloader.clone();
                    tokio::task::spawn_blocking(move || r.reload());
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("shutting down");
        Ok::<(), String>(())
    });
    // A reload still running is abandoned, not waited for: nothing it does
    // needs finishing (the served generation is swapped whole or not at all).
    rt.shutdown_timeout(Duration::from_millis(200));
    http_rt.shutdown(Duration::from_secs(5));
    result
}

/// Descriptors kept free of every connection limit, for health probes,
/// reloads, BGP sessions and MRT files.
const RESERVED_FDS: u64 = 256;

/// Raise the descriptor limit to what the host allows, and keep the DNS TCP
/// and admin connection limits within it with `RESERVED_FDS` to spare: when
/// clients hold every connection they may, probes still open sockets and
/// reloads still open files. Returns the DNS TCP connection limit to use.
fn descriptor_budget(server: &petrel_config::ServerConf) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let limit = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return server.tcp_max_connections;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    let tcp = tcp_limit_within(limit, server);
    if tcp < server.tcp_max_connections {
        tracing::warn!(
            descriptor_limit = limit,
            tcp_max_connections = server.tcp_max_connections,
            using = tcp,
            "the descriptor limit cannot hold tcp_max_connections besides the admin API and a reserve for probes and reloads; DNS TCP uses fewer"
        );
    }
    tcp
}

/// The DNS TCP connection limit that fits under `nofile` descriptors with
/// the admin API's connections, two sockets per listener and
/// `RESERVED_FDS` to spare (at least one connection).
fn tcp_limit_within(nofile: u64, server: &petrel_config::ServerConf) -> usize {
    let others = server.admin_max_connections as u64 + RESERVED_FDS + 2 * server.dns.len() as u64;
    let room = nofile.saturating_sub(others).max(1);
    (server.tcp_max_connections as u64).min(room) as usize
}

/// Signatures are made when a generation is built; past half their
/// validity a new one is built from the files (as a reload does, so zone
/// file edits on disk go in with it), well before they expire.
fn resign_when_due(reader: &petrel_director::Reader, reloader: &Arc<Reloader>, rt: &tokio::runtime::Handle) {
    let (reader, reloader) = (reader.clone(), reloader.clone());
    rt.spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(600));
        loop {
            t.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as u32);
            if reader.load().zones().signatures_due(now) {
                tracing::info!("DNSSEC signatures are past half their validity: signing again (a reload)");
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload()).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_tcp_leaves_room_for_the_admin_api_and_the_reserve() {
        let c = petrel_config::parse(
            std::path::Path::new("t.toml"),
            "[server]\ndns = [\"127.0.0.1:53\", \"[::1]:53\"]\n",
        )
        .unwrap()
        .server;
        assert_eq!((c.tcp_max_connections, c.admin_max_connections), (512, 64));
        // Plenty: the configured limit.
        assert_eq!(tcp_limit_within(65_536, &c), 512);
        // 512 descriptors: 512 - 64 - 256 - 4 = 188.
        assert_eq!(tcp_limit_within(512, &c), 188);
        // Too few for anything: one connection still.
        assert_eq!(tcp_limit_within(100, &c), 1);
    }
}
