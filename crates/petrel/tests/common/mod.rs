//! Helpers shared by the integration tests: the real binary on loopback.

#![allow(dead_code)]

pub mod netns;
pub mod routers;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_petrel");

pub fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!("`{name}` is not installed: run `sudo scripts/test` (it installs the Debian packages the tests need)");
}

pub static NEXT: AtomicU16 = AtomicU16::new(0);

/// A loopback address and port pair unique to this test run.
pub fn free_port() -> u16 {
    loop {
        let base = 20000 + (std::process::id() % 2000) as u16 * 10;
        let p = base + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "petrel-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A child process killed when the test ends, however it ends.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub admin: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's data with test ports, an extra CIDR map for the 127/8 clients
/// unbound forwards, and short TCP timeouts.
pub fn write_config(dir: &Path, port: u16, admin: u16, extra: &str) -> PathBuf {
    let out = Command::new(BIN)
        .args(["demo", "--write-only", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = std::fs::read_to_string(dir.join("demo.toml")).unwrap();
    let cfg = cfg
        .replace("dns = [\"127.0.0.1:5300\", \"[::1]:5300\"]", &format!("dns = [\"127.0.0.1:{port}\", \"[::1]:{port}\"]"))
        .replace("127.0.0.1:8053", &format!("127.0.0.1:{admin}"))
        .replace("tcp_idle_timeout_secs = 10", "tcp_idle_timeout_secs = 2")
        .replace("{ type = \"cidr\", entries = { \"10.0.0.0/8\" = [\"ams\"], \"192.168.0.0/16\" = [\"iad\", \"ams\"] } },",
                 "{ type = \"cidr\", entries = { \"10.0.0.0/8\" = [\"ams\"], \"192.168.0.0/16\" = [\"iad\", \"ams\"], \"127.0.1.0/24\" = [\"sin\"], \"127.0.2.0/24\" = [\"gru\"] } },");
    let path = dir.join("demo.toml");
    std::fs::write(&path, format!("{cfg}\n{extra}")).unwrap();
    path
}

pub fn start(tag: &str) -> Server {
    start_with(tag, "")
}

/// `start`, with `extra` appended to the config.
pub fn start_with(tag: &str, extra: &str) -> Server {
    let dir = tempdir(tag);
    let port = free_port();
    let admin = free_port();
    let cfg = write_config(&dir, port, admin, extra);
    spawn(dir, &cfg, port, admin)
}

pub fn spawn(dir: PathBuf, cfg: &Path, port: u16, admin: u16) -> Server {
    spawn_under(&[], dir, cfg, port, admin)
}

/// `spawn`, with petrel run by a wrapper command (e.g. `prlimit ...`).
pub fn spawn_under(wrapper: &[&str], dir: PathBuf, cfg: &Path, port: u16, admin: u16) -> Server {
    let s = launch(wrapper, dir, cfg, port, admin);
    wait_started(&s, || TcpStream::connect(s.admin).is_ok());
    s
}

/// `spawn` inside a network namespace; its admin API is reached from
/// inside it (`Netns::enter`, `Netns::cmd`).
pub fn spawn_in(ns: &netns::Netns, dir: PathBuf, cfg: &Path, port: u16, admin: u16) -> Server {
    let s = launch(&["ip", "netns", "exec", &ns.name], dir, cfg, port, admin);
    wait_started(&s, || ns.enter(|| TcpStream::connect(s.admin).is_ok()));
    s
}

fn launch(wrapper: &[&str], dir: PathBuf, cfg: &Path, port: u16, admin: u16) -> Server {
    let log = std::fs::File::create(dir.join("petrel.log")).unwrap();
    let mut cmd = match wrapper.split_first() {
        None => Command::new(BIN),
        Some((w, args)) => {
            let mut c = Command::new(w);
            c.args(args).arg(BIN);
            c
        }
    };
    let child = cmd
        .args(["serve", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Server {
        child,
        dir,
        port,
        admin: SocketAddr::from(([127, 0, 0, 1], admin)),
    }
}

fn wait_started(s: &Server, mut up: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !up() {
        assert!(
            Instant::now() < deadline,
            "petrel did not start: {}",
            std::fs::read_to_string(s.dir.join("petrel.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(tool(cmd)).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

pub fn dig(s: &Server, args: &[&str]) -> String {
    let port = s.port.to_string();
    let mut a = vec!["@127.0.0.1", "-p", &port, "+time=2", "+tries=2"];
    a.extend_from_slice(args);
    run("dig", &a)
}

pub fn petrel(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `petrel explain` of a running server: its text, or the error.
pub fn explain_admin(s: &Server, service: &str, client: &str) -> Result<String, String> {
    let (ok, out, err) = petrel(&[
        "explain",
        "--admin",
        &s.admin.to_string(),
        "--service",
        service,
        "--client",
        client,
    ]);
    if ok {
        Ok(out)
    } else {
        Err(err)
    }
}

pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let code = r.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, r)
}

pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let (code, body) = http(addr, "GET", path);
    assert_eq!(code, 200, "{body}");
    body
}

/// A metric's value from /metrics: the sum over its labelled series.
pub fn metric(s: &Server, name: &str) -> u64 {
    let m = http_get(s.admin, "/metrics");
    let values: Vec<f64> = m
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .collect();
    assert!(!values.is_empty(), "no {name} in {m}");
    values.iter().sum::<f64>() as u64
}

/// Check a finished dnsperf run: at least `min_sent` queries, every one
/// answered NOERROR, none lost.
pub fn assert_dnsperf_clean(out: &std::process::Output, min_sent: u64) {
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| -> u64 {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in {report}"))
    };
    let sent = field("Queries sent");
    assert!(sent >= min_sent, "{report}");
    assert_eq!(field("Queries completed"), sent, "{report}");
    assert_eq!(field("Queries lost"), 0, "{report}");
    assert!(
        report.contains(&format!("Response codes:       NOERROR {sent} (100.00%)")),
        "{report}"
    );
}

/// The zone of the two-POP configs below.
pub const TWO_POP_ZONE: &str = "$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
ns1 IN A 192.0.2.53
";

/// A config with POPs ams (AS 65010, 192.0.2.1) and nyc (AS 65020,
/// 192.0.2.2), zone example.net (file `example.net.zone`, [`TWO_POP_ZONE`])
/// and one Super Sparrow service; `server` adds to `[server]`, `body`
/// follows (BGP, anycast, checks).
pub fn two_pop_config(port: u16, admin: u16, server: &str, body: &str) -> String {
    format!(
        r#"
[server]
dns = ["127.0.0.1:{port}"]
admin = "127.0.0.1:{admin}"
{server}

[[pop]]
name = "ams"
ipv4 = ["192.0.2.1"]
asns = [65010]

[[pop]]
name = "nyc"
ipv4 = ["192.0.2.2"]
asns = [65020]

[[zone]]
origin = "example.net."
file = "example.net.zone"

[[service]]
name = "www.example.net."
ttl = 20
policy = [{{ type = "super-sparrow" }}]

{body}
"#
    )
}

/// unbound as a recursive resolver on `interface` (`address@port`), the
/// demo zone stubbed to petrel on 127.0.0.1:`petrel_port` with each
/// client's /24 sent as ECS, querying from `outgoing` when given; its
/// config and log in `dir`.
pub fn unbound(dir: &Path, interface: &str, outgoing: Option<&str>, petrel_port: u16) -> Kill {
    let stubs = [("demo.petrel.test", petrel_port)];
    unbound_for(dir, (interface, outgoing), "demo.petrel.test", &stubs, None)
}

/// unbound as above for `zone` (ECS sent for it), each of `stubs` (zone,
/// port on 127.0.0.1) stubbed to a server; validating with `trust_anchor`
/// (a DS record) when given, the zone insecure otherwise.
pub fn unbound_for(
    dir: &Path,
    (interface, outgoing): (&str, Option<&str>),
    zone: &str,
    stubs: &[(&str, u16)],
    trust_anchor: Option<&str>,
) -> Kill {
    let port = interface.rsplit_once('@').map_or("53", |(_, p)| p);
    let address = interface.split('@').next().unwrap_or(interface);
    let outgoing = outgoing.map_or(String::new(), |o| format!("    outgoing-interface: {o}\n"));
    let validation = match trust_anchor {
        Some(ds) => format!(
            "    module-config: \"subnetcache validator iterator\"\n    trust-anchor: \"{ds}\"\n    val-log-level: 2\n"
        ),
        None => format!("    module-config: \"subnetcache iterator\"\n    domain-insecure: \"{zone}\"\n"),
    };
    let stub_zones: String = stubs
        .iter()
        .map(|(z, p)| format!("stub-zone:\n    name: \"{z}\"\n    stub-addr: 127.0.0.1@{p}\n"))
        .collect();
    let conf = format!(
        r#"server:
    interface: {address}
    port: {port}
{outgoing}    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    logfile: ""
    use-syslog: no
    verbosity: 1
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
{validation}    send-client-subnet: 127.0.0.1
    client-subnet-zone: {zone}
    max-client-subnet-ipv4: 24
    qname-minimisation: no
    target-fetch-policy: "0 0 0 0 0"
    # .test is special-use (RFC 6761); unbound answers it locally unless told.
    local-zone: "test." nodefault
{stub_zones}"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("unbound.conf"), conf).unwrap();
    let log = std::fs::File::create(dir.join("unbound.log")).unwrap();
    Kill(
        Command::new(tool("unbound"))
            .args(["-d", "-c"])
            .arg(dir.join("unbound.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Listen on 127.0.0.1:`port` again after a stop: meanwhile an outgoing
/// connection (a probe) may hold the free port as its local one for a
/// moment, so the bind is retried for up to 5 s.
pub fn listen_again(port: u16) -> std::net::TcpListener {
    let t0 = Instant::now();
    loop {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && t0.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot listen on 127.0.0.1:{port}: {e}"),
        }
    }
}

/// Debian's nginx in the foreground on `dir/nginx.conf` (its pid and error
/// log in `dir`), once it listens on 127.0.0.1:`port`.
pub fn nginx(dir: &Path, port: u16) -> Kill {
    let d = dir.display().to_string();
    let k = Kill(
        Command::new(tool("nginx"))
            .args(["-p", &d, "-c", &format!("{d}/nginx.conf"), "-g"])
            .arg(format!(
                "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;"
            ))
            .spawn()
            .expect("nginx (Debian package nginx)"),
    );
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    k
}

/// Datagrams from petrel to a socket playing systemd, until one contains
/// `want` (within `limit`).
pub fn notified(sock: &std::os::unix::net::UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = m.lines().any(|l| l == want);
            got.push(m);
            if done {
                return got;
            }
        }
    }
    panic!("no {want} within {limit:?}: {got:?}");
}
