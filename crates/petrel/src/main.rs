//! petrel: a network-aware global traffic director.

// The binary is where the clock is read (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod admin;
mod admin_client;
mod admin_guard;
mod bgp;
mod demo;
mod dns_cookie;
mod dns_tcp;
mod dns_udp;
mod dnssec_cmd;
mod dnstap_out;
mod health;
mod http;
mod map_follow;
mod measure;
mod memory;
mod metrics;
mod notify;
mod quiet;
mod rdns;
mod reload;
mod rrl_log;
mod sd_notify;
mod serve;
mod sources;
mod tls;
mod warehouse;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "petrel",
    version,
    about = "Network-aware global traffic director: sends every client to the POP that serves it best"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve DNS (UDP and TCP), the admin API and metrics.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config and every file it names; print all errors.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the decision for one client and why it was made.
    Explain {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Ask a running server instead of reading the config.
        #[arg(long, conflicts_with = "config")]
        admin: Option<SocketAddr>,
        #[arg(long, short)]
        service: String,
        /// Client address or prefix (ECS source), e.g. 198.51.100.7 or 2001:db8::/48.
        #[arg(long)]
        client: String,
        /// A, AAAA, or CNAME (any family); default: the client's family.
        #[arg(long)]
        qtype: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Batch map for web servers (Apache's `RewriteMap prg:`): one client per
    /// line on stdin, one answer per line on stdout. Decides from the config,
    /// the routing views of its MRT dumps (read at start; live BGP sessions
    /// and BMP are not reached) and the drains saved in its state file: it
    /// does not follow live health unless --follow names a running server,
    /// then from that server's POP states (health, drains, forced states) as
    /// they change.
    Map {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        service: String,
        /// What to print per client.
        #[arg(long, value_enum, default_value_t = MapOutput::Pop)]
        output: MapOutput,
        /// A running petrel's admin API (e.g. 127.0.0.1:8053) whose POP
        /// states to follow.
        #[arg(long)]
        follow: Option<SocketAddr>,
    },
    /// Run the demo: four POPs, a generated GeoIP database, DNS on 127.0.0.1:5300.
    Demo {
        /// Where to write the demo's config and data.
        #[arg(long, default_value = "petrel-demo")]
        dir: PathBuf,
        /// Only write the files.
        #[arg(long)]
        write_only: bool,
    },
    /// Drain, undrain or list POPs on a running server.
    Pop {
        #[command(subcommand)]
        action: PopCmd,
        #[arg(long, default_value = "127.0.0.1:8053", global = true)]
        admin: SocketAddr,
    },
    /// Health of POPs and their check targets on a running server.
    Health {
        #[arg(long, default_value = "127.0.0.1:8053")]
        admin: SocketAddr,
        #[arg(long)]
        json: bool,
    },
    /// BGP sessions and routes on a running server.
    Bgp {
        #[command(subcommand)]
        action: BgpCmd,
        #[arg(long, default_value = "127.0.0.1:8053", global = true)]
        admin: SocketAddr,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Anycast prefixes towards each BGP neighbour on a running server:
    /// announced, withdrawn, de-preferred, draining, damped or refused.
    Anycast {
        #[arg(long, default_value = "127.0.0.1:8053")]
        admin: SocketAddr,
        #[arg(long)]
        json: bool,
    },
    /// Measured latency on a running server.
    Measure {
        #[command(subcommand)]
        action: MeasureCmd,
        #[arg(long, default_value = "127.0.0.1:8053", global = true)]
        admin: SocketAddr,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print the routes of an MRT file (TABLE_DUMP_V2 or BGP4MP; plain, gzip
    /// or bzip2) one per line, in `bgpdump -m` form.
    MrtDump { file: PathBuf },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell), e.g. `petrel completions bash > /usr/share/bash-completion/completions/petrel`.
    Completions { shell: clap_complete::Shell },
    /// Write man pages (petrel.1 and one per command, petrel-serve.1 ...)
    /// into DIR.
    Man { dir: PathBuf },
    /// DNSSEC: make a zone's keys; print the DS records its parent needs.
    Dnssec {
        #[command(subcommand)]
        action: DnssecCmd,
    },
    /// Ask a running server to reload its config (like SIGHUP).
    Reload {
        #[arg(long, default_value = "127.0.0.1:8053")]
        admin: SocketAddr,
    },
    /// Compile a CSV (network,latitude,longitude,country,continent,city) into a MaxMind DB.
    Mmdb {
        #[arg(long)]
        csv: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum PopCmd {
    /// Take a POP out of new decisions (and keep it out across restarts).
    Drain { name: String },
    /// Put a drained POP back.
    Undrain { name: String },
    /// Treat a POP, or a check target (`pop/type:address:port`), as up whatever its health checks say.
    ForceUp { name: String },
    /// Treat a POP or a check target as down.
    ForceDown { name: String },
    /// Remove a force-up or force-down.
    Clear { name: String },
    /// List POPs with their state.
    List,
}

#[derive(Subcommand)]
enum DnssecCmd {
    /// Write a new key pair (BIND's `K<zone>+<alg>+<tag>.key` and
    /// `.private` files) and print its stem, for `zone.dnssec.keys`.
    Keygen {
        zone: String,
        /// ecdsa-p256 (13) or ed25519 (15).
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// A key-signing (or combined) key: the SEP flag (257), signs the
        /// DNSKEY RRset and goes to the parent as DS.
        #[arg(long)]
        ksk: bool,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print the DS records of a signed zone of the config, for its parent
    /// (and for a validating resolver's trust anchor).
    Ds {
        zone: String,
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum BgpCmd {
    /// Sessions with their state and prefix counts, and the views.
    Summary,
    /// The routes covering an address in each view (or one), best first.
    Route {
        addr: String,
        #[arg(long)]
        view: Option<String>,
    },
}

#[derive(Subcommand)]
enum MeasureCmd {
    /// The networks with the most samples per POP, from the warehouse:
    /// samples, clients, median and p90 RTT.
    Top {
        /// Group by asn, prefix (the map unit), country, city, resolver or
        /// rdns (the client's reverse DNS name).
        #[arg(long, default_value = "asn")]
        by: String,
        /// Only this POP.
        #[arg(long)]
        pop: Option<String>,
        /// How far back: 90s, 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        since: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Resolver discovery, joined: per resolver, the beacons and client
    /// networks behind it, whether it sends ECS, how far its clients are.
    Resolvers {
        /// How far back: 90s, 30m, 1h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum MapOutput {
    /// The POP's name.
    Pop,
    /// The POP's first address of the client's family (else any).
    Addr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs what it does; a command that prints its result logs
    // only what went wrong (its output is the answer: `petrel map` feeds
    // a web server).
    let daemon = matches!(cli.cmd, Cmd::Serve { .. } | Cmd::Demo { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PETREL_LOG")
                .unwrap_or_else(|_| if daemon { "info" } else { "warn" }.into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not for journald
        // or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if !matches!(cli.cmd, Cmd::Serve { .. } | Cmd::Demo { .. }) {
        // Printing commands end quietly when their reader goes away
        // (`petrel bgp summary | head`), as Unix tools do.
        // SAFETY: restoring the default disposition of one signal.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let r = match cli.cmd {
        Cmd::Serve { config } => serve::run(&config),
        Cmd::Check { config } => check(&config),
        Cmd::Explain {
            config,
            admin,
            service,
            client,
            qtype,
            json,
        } => explain_cmd(config, admin, &service, &client, qtype.as_deref(), json),
        Cmd::Map {
            config,
            service,
            output,
            follow,
        } => map(&config, &service, output, follow),
        Cmd::Demo { dir, write_only } => demo_cmd(&dir, write_only),
        Cmd::Pop { action, admin } => pop_cmd(action, admin),
        Cmd::Reload { admin } => admin_call(admin, "POST", "/api/v1/reload"),
        Cmd::Health { admin, json } => health_cmd(admin, json),
        Cmd::Bgp { action, admin, json } => bgp_cmd(action, admin, json),
        Cmd::Anycast { admin, json } => anycast_cmd(admin, json),
        Cmd::Measure { action, admin, json } => measure_cmd(action, admin, json),
        Cmd::MrtDump { file } => bgp::mrt_dump::dump(&file),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "petrel", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man { dir } => man_pages(&dir),
        Cmd::Dnssec { action } => match action {
            DnssecCmd::Keygen {
                zone,
                algorithm,
                ksk,
                dir,
            } => dnssec_cmd::keygen(&zone, &algorithm, ksk, &dir),
            DnssecCmd::Ds { zone, config } => dnssec_cmd::ds(&config, &zone),
        },
        Cmd::Mmdb { csv, out } => std::fs::read_to_string(&csv)
            .map_err(|e| format!("{}: {e}", csv.display()))
            .and_then(|t| demo::csv_to_mmdb(&t, &csv.display().to_string()))
            .and_then(|b| std::fs::write(&out, b).map_err(|e| format!("{}: {e}", out.display()))),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("petrel: {}", e.trim_end());
            ExitCode::FAILURE
        }
    }
}

/// Everything `serve` would find wrong, in one run: the config, then every
/// file it reads at start (zones, GeoIP, CIDR maps, MRT dumps, the admin
/// token, certificates, CA files, health-check programs), each error once.
fn check(config: &std::path::Path) -> Result<(), String> {
    let parsed = match sources::load_config(config) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            return Err(format!("{} error(s) in {}", errs.len(), config.display()));
        }
    };
    let mut errors: Vec<String> = Vec::new();
    let (_, state) = sources::saved_overrides(&parsed.server);
    if let Some(w) = &state {
        eprintln!("warning: {w}");
    }
    match sources::admin_token(&parsed.server) {
        Ok((_, Some(w))) => eprintln!("warning: {w}"),
        Ok((_, None)) => {}
        Err(e) => errors.push(format!("{}: server.admin_token_file: {e}", config.display())),
    }
    if !cfg!(feature = "clickhouse") {
        if let Some(ch) = parsed.measure.as_ref().and_then(|m| m.clickhouse.as_ref()) {
            errors.push(format!(
                "[measure.clickhouse] {}: this petrel was built without ClickHouse (cargo feature `clickhouse`)",
                ch.url
            ));
        }
    }
    // MRT dumps are read through, as the MRT reader would.
    for (i, m) in parsed.bgp.iter().flat_map(|b| &b.mrt).enumerate() {
        for f in std::iter::once(&m.file).chain(&m.updates) {
            // One the reader cannot open is the build's error, below.
            if sources::open_regular(f, u64::MAX).is_err() {
                continue;
            }
            match bgp::mrt_file::scan(f) {
                Ok(s) => println!(
                    "{}: {} MRT records, {} routes from {} peers{}",
                    f.display(),
                    s.records,
                    s.routes,
                    s.peers,
                    if s.unusable > 0 {
                        format!(", {} routes with unusable attributes skipped", s.unusable)
                    } else {
                        String::new()
                    }
                ),
                Err(e) => errors.push(format!("{}: bgp.mrt[{i}]: {e}", config.display())),
            }
        }
    }
    // TLS certificates and keys are loaded as the HTTP fronts would.
    for f in &parsed.http {
        if let Err(e) = http::check_certificates(f) {
            errors.push(format!("{}: http front `{}`: {e}", f.at, f.name));
        }
    }
    // Health checks: their CA files and programs, as the checker loads them.
    for c in parsed.pops.iter().flat_map(|p| &p.checks) {
        let problem = match &c.kind {
            petrel_config::CheckKind::Exec { argv } => argv.first().and_then(|prog| executable(prog).err()),
            petrel_config::CheckKind::Http { tls: Some(t), .. } => tls::connector(t).err(),
            _ => None,
        };
        if let Some(e) = problem {
            errors.push(format!("{}: health check `{}`: {e}", config.display(), c.name));
        }
    }
    // The tables: zones, GeoIP, CIDR maps.
    let src = sources::read(&parsed);
    let built = match petrel_director::build(parsed, &src, None) {
        Ok(b) => Some(b),
        Err(errs) => {
            errors.extend(errs.into_iter().map(|e| e.to_string()));
            None
        }
    };
    let Some(c) = built.filter(|_| errors.is_empty()) else {
        for e in &errors {
            eprintln!("{e}");
        }
        return Err(format!("{} error(s) in {}", errors.len(), config.display()));
    };
    let bgp = match &c.config.bgp {
        Some(b) => format!(
            ", {} BGP peers, {} MRT dumps, {} BMP routers",
            b.peers.len(),
            b.mrt.len(),
            b.bmp
                .iter()
                .map(|r| r.router)
                .collect::<std::collections::HashSet<_>>()
                .len()
        ),
        None => String::new(),
    };
    let anycast = match c.config.anycast.len() {
        0 => String::new(),
        n => format!(
            ", {n} anycast blocks ({} prefixes)",
            c.config.anycast.iter().map(|a| a.prefixes.len()).sum::<usize>()
        ),
    };
    let http = match c.config.http.len() {
        0 => String::new(),
        n => format!(
            ", {n} HTTP fronts ({} rules)",
            c.config.http.iter().map(|h| h.rules.len()).sum::<usize>()
        ),
    };
    println!(
        "{}: ok ({} POPs, {} zones, {} services{bgp}{anycast}{http})",
        config.display(),
        c.config.pops.len(),
        c.config.zones.len(),
        c.config.services.len()
    );
    Ok(())
}

/// Whether `prog` (a path, or a name looked up in PATH as exec would) is
/// a program this process may run.
fn executable(prog: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if prog.contains('/') {
        vec![PathBuf::from(prog)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(prog)).collect())
            .unwrap_or_default()
    };
    for c in &candidates {
        if let Ok(m) = std::fs::metadata(c) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(());
            }
            if prog.contains('/') {
                return Err(format!("`{prog}` is not an executable file"));
            }
        }
    }
    Err(if prog.contains('/') {
        format!("`{prog}`: no such file")
    } else {
        format!("`{prog}` is not in PATH")
    })
}

/// The compiled config with the states a restarted server would start from:
/// the overrides its state file records (health is only known to the
/// running server: ask it with --admin).
fn offline(config: &std::path::Path) -> Result<petrel_director::Generation, String> {
    // The routing views the config's MRT dumps make, as `serve` reads them.
    let views = bgp::offline::views(config)?;
    let built = sources::load(config, views).map_err(|e| e.join("\n"))?;
    let (overrides, warning) = sources::saved_overrides(&built.config.server);
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Ok(petrel_director::Generation::offline(built, overrides))
}

fn explain_cmd(
    config: Option<PathBuf>,
    admin: Option<SocketAddr>,
    service: &str,
    client: &str,
    qtype: Option<&str>,
    json: bool,
) -> Result<(), String> {
    let e: petrel_mapping::Explanation = match (config, admin) {
        (Some(c), _) => offline(&c)?
            .explain(service, client, qtype)
            .map_err(|e| e.to_string())?,
        (None, Some(a)) => {
            let mut path = format!(
                "/api/v1/explain?service={}&client={}",
                urlencode(service),
                urlencode(client)
            );
            if let Some(q) = qtype {
                path.push_str(&format!("&qtype={}", urlencode(q)));
            }
            let r: petrel_api::ExplainResult = admin_client::get(a, &path)?;
            if !json {
                print!("{}", r.text);
                return Ok(());
            }
            r.explanation
        }
        (None, None) => return Err("give --config FILE or --admin ADDR".into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&e).map_err(|e| e.to_string())?);
    } else {
        print!("{}", e.to_text());
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn map(config: &std::path::Path, service: &str, output: MapOutput, follow: Option<SocketAddr>) -> Result<(), String> {
    let mut gen = offline(config)?;
    let follower = follow.map(|admin| {
        let names = gen.config().pops.iter().map(|p| p.name.clone()).collect();
        let f = map_follow::Follower::start(admin, names, gen.states.clone());
        if !f.wait_first(std::time::Duration::from_secs(5)) {
            eprintln!(
                "petrel map: no POP states from {admin} yet; answering from the config and saved drains meanwhile"
            );
        }
        f
    });
    let mut seen = 0;
    let si = gen
        .built
        .service_index(service)
        .ok_or_else(|| format!("no service `{service}`"))?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    // Stdout is line-buffered; a buffer of our own is flushed as below.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    let mut decision = petrel_director::Decision::default();
    let mut raw = Vec::new();
    // Our own buffer, to see when no more input is waiting.
    let mut input = std::io::BufReader::with_capacity(64 << 10, stdin.lock());
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => return out.flush().map_err(|e| e.to_string()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading stdin: {e}")),
        }
        if let Some(st) = follower.as_ref().and_then(|f| f.changed(&mut seen)) {
            gen.states = st;
        }
        // Apache waits for exactly one line per request: anything that is not
        // an address answers NULL, and the map keeps going.
        let line = String::from_utf8_lossy(&raw);
        let key = line.trim();
        let answer = match petrel_types::Prefix::parse_lenient(key) {
            Ok(p) => {
                gen.decide(si, &p, None, 0, &mut decision);
                match decision.pops().first() {
                    Some(&pop) => {
                        let c = gen.pop(pop);
                        match output {
                            MapOutput::Pop => c.name.clone(),
                            MapOutput::Addr => {
                                let v4 = c.ipv4.first().map(|a| a.to_string());
                                let v6 = c.ipv6.first().map(|a| a.to_string());
                                let pick = if p.family() == petrel_types::Family::V6 {
                                    v6.or(v4)
                                } else {
                                    v4.or(v6)
                                };
                                pick.unwrap_or_else(|| "NULL".into())
                            }
                        }
                    }
                    None => "NULL".into(),
                }
            }
            Err(e) => {
                eprintln!("petrel map: {e}");
                "NULL".into()
            }
        };
        // Apache's prg: protocol waits for each answer before it sends the
        // next line: flush whenever no more input is waiting. A batch piped
        // in is answered in large writes.
        writeln!(out, "{answer}").map_err(|e| e.to_string())?;
        if input.buffer().is_empty() {
            out.flush().map_err(|e| e.to_string())?;
        }
    }
}

fn demo_cmd(dir: &std::path::Path, write_only: bool) -> Result<(), String> {
    let config = demo::write(dir)?;
    if write_only {
        println!("wrote {}", config.display());
        return Ok(());
    }
    eprintln!("{}", demo::banner(&config));
    serve::run(&config)
}

fn admin_call(admin: SocketAddr, method: &str, path: &str) -> Result<(), String> {
    let (code, body) = admin_client::call(admin, method, path)?;
    println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("the server answered HTTP {code}"))
    }
}

fn health_cmd(admin: SocketAddr, json: bool) -> Result<(), String> {
    let h: petrel_api::Health = admin_client::get(admin, "/api/v1/health")?;
    if json {
        return print_json(&h);
    }
    println!("{:<12} {:<8}", "POP", "STATE");
    for p in &h.pops {
        println!("{:<12} {:<8}", p.name, p.state.as_str());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "\n{:<36} {:<5} {:>8} {:>10}  LAST RESULT",
        "TARGET", "STATE", "FOR", "LATENCY"
    );
    for t in &h.targets {
        let since = now.saturating_sub(t.since_unix);
        let lat = t.last_latency_ms.map_or("-".to_string(), |l| format!("{l:.1} ms"));
        let last = match t.last_ok {
            None => "no result yet".to_string(),
            Some(ok) => format!("{} {}", if ok { "ok" } else { "FAIL" }, t.last_detail),
        };
        let state = match t.state {
            petrel_health::TargetState::Up => "up",
            petrel_health::TargetState::Down => "down",
        };
        println!("{:<36} {:<5} {:>7}s {:>10}  {}", t.name, state, since, lat, last);
    }
    Ok(())
}

fn measure_cmd(action: MeasureCmd, admin: SocketAddr, json: bool) -> Result<(), String> {
    let (by, pop, since, limit) = match action {
        MeasureCmd::Top { by, pop, since, limit } => (by, pop, since, limit),
        MeasureCmd::Resolvers { since, limit } => return resolvers_cmd(admin, json, &since, limit),
    };
    let mut path = format!(
        "/api/v1/measure/top?by={}&since={}&limit={limit}",
        urlencode(&by),
        urlencode(&since)
    );
    if let Some(p) = &pop {
        path.push_str(&format!("&pop={}", urlencode(p)));
    }
    let t: petrel_api::MeasureTop = admin_client::get(admin, &path)?;
    if json {
        return print_json(&t);
    }
    if t.from_rollups {
        println!(
            "(from the hourly roll-ups: medians are sample-weighted means of hourly medians, clients are per hour)"
        );
    }
    println!(
        "{:<40} {:<10} {:>9} {:>8} {:>10} {:>10}",
        t.by.to_ascii_uppercase(),
        "POP",
        "SAMPLES",
        "CLIENTS",
        "MEDIAN",
        "P90"
    );
    for r in &t.rows {
        println!(
            "{:<40} {:<10} {:>9} {:>8} {:>8.1}ms {:>8.1}ms",
            r.key, r.pop, r.samples, r.clients, r.median_ms, r.p90_ms
        );
    }
    Ok(())
}

fn resolvers_cmd(admin: SocketAddr, json: bool, since: &str, limit: u32) -> Result<(), String> {
    let path = format!("/api/v1/measure/resolvers?since={}&limit={limit}", urlencode(since));
    let r: petrel_api::ResolversResult = admin_client::get(admin, &path)?;
    if json {
        return print_json(&r);
    }
    println!(
        "{:<40} {:>10} {:>8} {:>8} {:>5} {:>9}  CLIENT NETWORKS",
        "RESOLVER", "AS", "BEACONS", "NETWORKS", "ECS", "DISTANCE"
    );
    for x in &r.resolvers {
        println!(
            "{:<40} {:>10} {:>8} {:>8} {:>4.0}% {:>9}  {}",
            x.resolver,
            x.asn.map_or_else(|| "-".to_string(), |a| a.to_string()),
            x.beacons,
            x.client_units,
            x.ecs_share * 100.0,
            x.median_distance_km
                .map_or_else(|| "-".to_string(), |d| format!("{d:.0} km")),
            x.top_client_units.join(" ")
        );
    }
    Ok(())
}

fn anycast_cmd(admin: SocketAddr, json: bool) -> Result<(), String> {
    let st: petrel_api::AnycastStatus = admin_client::get(admin, "/api/v1/anycast")?;
    if json {
        return print_json(&st);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "{:<12} {:<20} {:<14} {:<12} {:>8}  {:<40} WHY",
        "SERVICE", "PREFIX", "NEIGHBOR", "STANDING", "FOR", "SENT"
    );
    for r in &st.routes {
        let sent = match &r.attributes {
            None => "-".to_string(),
            Some(a) => {
                let mut v = vec![format!("prepend {}", a.prepend)];
                if let Some(m) = a.med {
                    v.push(format!("med {m}"));
                }
                v.extend(a.communities.iter().cloned());
                v.extend(a.large_communities.iter().cloned());
                v.join(" ")
            }
        };
        let until = r
            .until_unix
            .map_or(String::new(), |u| format!(" (for {} s more)", u.saturating_sub(now)));
        let mut notes = String::new();
        if !r.session_up {
            match &r.session_error {
                Some(e) => notes.push_str(&format!(" [session down: {e}]")),
                None => notes.push_str(" [session down]"),
            }
        }
        if let Some(n) = &r.not_sent {
            notes.push_str(&format!(" [not sent: {n}]"));
        }
        println!(
            "{:<12} {:<20} {:<14} {:<12} {:>7}s  {:<40} {}{until}{notes}",
            r.service,
            r.prefix,
            r.neighbor,
            r.standing,
            now.saturating_sub(r.since_unix),
            sent,
            r.why,
        );
    }
    println!("\n{} changes sent, {} health-driven flips", st.updates_sent, st.flips);
    Ok(())
}

fn bgp_cmd(action: BgpCmd, admin: SocketAddr, json: bool) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match action {
        BgpCmd::Summary => {
            let b: petrel_api::BgpSummary = admin_client::get(admin, "/api/v1/bgp/summary")?;
            if json {
                return print_json(&b);
            }
            println!(
                "{:<16} {:<10} {:<26} {:>10} {:<12} {:>8} {:>9} {:>8}  LAST ERROR",
                "PEER", "VIEW", "ADDRESS", "AS", "STATE", "FOR", "PREFIXES", "UPDATES"
            );
            for p in &b.peers {
                println!(
                    "{:<16} {:<10} {:<26} {:>10} {:<12} {:>7}s {:>9} {:>8}  {}",
                    p.name,
                    p.view,
                    p.address,
                    p.remote_as,
                    p.state,
                    now.saturating_sub(p.since_unix),
                    p.prefixes,
                    p.updates_received,
                    p.last_error
                );
            }
            println!();
            for v in &b.views {
                println!("view {:<10} {} best routes in the serving tables", v.name, v.routes);
            }
            println!(
                "{} publications; last: {:.1} ms after the first change, {:.1} ms to build",
                b.publish.count, b.publish.last_delay_ms, b.publish.last_build_ms
            );
        }
        BgpCmd::Route { addr, view } => {
            let mut path = format!("/api/v1/bgp/route?addr={}", urlencode(&addr));
            if let Some(v) = view {
                path.push_str(&format!("&view={}", urlencode(&v)));
            }
            let r: petrel_api::RouteResult = admin_client::get(admin, &path)?;
            if json {
                return print_json(&r);
            }
            for v in &r.views {
                match &v.prefix {
                    None => println!("view {}: no route", v.view),
                    Some(p) => {
                        println!("view {}: {p}", v.view);
                        for r in &v.routes {
                            println!(
                                "  {} from {:<14} path [{}] {} next-hop {}{}{}{}",
                                if r.best { "*>" } else { "  " },
                                r.peer,
                                r.as_path,
                                r.origin,
                                r.next_hop,
                                r.local_pref.map_or(String::new(), |l| format!(" local-pref {l}")),
                                r.med.map_or(String::new(), |m| format!(" med {m}")),
                                if r.communities.is_empty() {
                                    String::new()
                                } else {
                                    format!(" communities {}", r.communities.join(" "))
                                }
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(v).map_err(|e| e.to_string())?);
    Ok(())
}

/// POPs go in the path; check targets (which hold `/` and `:`) in the query.
fn override_call(admin: SocketAddr, name: &str, action: &str) -> Result<(), String> {
    if name.contains('/') {
        admin_call(
            admin,
            "POST",
            &format!("/api/v1/targets/{action}?name={}", urlencode(name)),
        )
    } else {
        admin_call(admin, "POST", &format!("/api/v1/pops/{}/{action}", urlencode(name)))
    }
}

fn pop_cmd(action: PopCmd, admin: SocketAddr) -> Result<(), String> {
    match action {
        PopCmd::Drain { name } => override_call(admin, &name, "drain"),
        PopCmd::Undrain { name } => override_call(admin, &name, "undrain"),
        PopCmd::ForceUp { name } => override_call(admin, &name, "force-up"),
        PopCmd::ForceDown { name } => override_call(admin, &name, "force-down"),
        PopCmd::Clear { name } => override_call(admin, &name, "clear"),
        PopCmd::List => {
            let pops: Vec<petrel_api::PopView> = admin_client::get(admin, "/api/v1/pops")?;
            for p in pops {
                println!("{:<12} {:<8} {}", p.name, p.state.as_str(), p.reason);
            }
            Ok(())
        }
    }
}

/// The man pages, from the CLI definition itself: petrel.1 and
/// petrel-COMMAND.1 for each command.
fn man_pages(dir: &std::path::Path) -> Result<(), String> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cmd = Cli::command();
    let write = |name: &str, c: clap::Command| -> Result<(), String> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(c)
            .title(name.to_ascii_uppercase())
            .render(&mut out)
            .map_err(|e| e.to_string())?;
        std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))
    };
    for sub in cmd.get_subcommands() {
        let name = format!("petrel-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
    }
    write("petrel", cmd)?;
    println!("man pages written to {}", dir.display());
    Ok(())
}
