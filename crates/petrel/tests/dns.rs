//! The real binary on loopback, queried by real clients: dig, kdig, unbound
//! (a recursive resolver sending ECS), dnsperf; plus the CLI commands.
//!
//! These tests need Debian's bind9-dnsutils, knot-dnsutils, unbound and
//! dnsperf: `scripts/test` installs them. A missing tool fails the test.

// Tests of the running binary time it from outside.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn dig_sees_different_pops_for_different_client_subnets() {
    let s = start("dig");
    for (subnet, want) in [
        ("2.16.0.0/24", "192.0.2.10"),
        ("23.1.0.0/24", "198.51.100.10"),
        ("14.1.0.0/24", "203.0.113.10"),
        ("177.1.0.0/24", "192.0.2.70"),
    ] {
        let out = dig(
            &s,
            &["www.demo.petrel.test", "A", &format!("+subnet={subnet}"), "+norec"],
        );
        assert!(
            out.contains(&format!("www.demo.petrel.test.\t30\tIN\tA\t{want}")),
            "{subnet}: {out}"
        );
        assert!(
            out.contains("flags: qr aa;"),
            "AA set, RA clear, RD echoed clear: {out}"
        );
        // The reply echoes the source prefix with the table's scope (/8 here).
        let base = subnet.split('/').next().unwrap();
        assert!(out.contains(&format!("CLIENT-SUBNET: {base}/24/8")), "{out}");
    }
    // TCP, IPv6 transport, a small buffer and no EDNS.
    let out = dig(
        &s,
        &["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+tcp", "+short"],
    );
    assert_eq!(out.trim(), "198.51.100.10");
    let port = s.port.to_string();
    let out = run(
        "dig",
        &[
            "@::1",
            "-p",
            &port,
            "www.demo.petrel.test",
            "AAAA",
            "+subnet=2a00:1::/48",
            "+short",
        ],
    );
    assert_eq!(out.trim(), "2001:db8:10::1");
    let out = dig(
        &s,
        &[
            "www.demo.petrel.test",
            "A",
            "+bufsize=512",
            "+subnet=14.1.0.0/24",
            "+short",
        ],
    );
    assert_eq!(out.trim(), "203.0.113.10");
    let out = dig(&s, &["demo.petrel.test", "SOA", "+noedns"]);
    assert!(
        out.contains("status: NOERROR") && !out.contains("OPT PSEUDOSECTION"),
        "{out}"
    );
    let out = dig(&s, &["nothere.demo.petrel.test", "A"]);
    assert!(out.contains("status: NXDOMAIN") && out.contains("IN\tSOA"), "{out}");
    let out = dig(&s, &["example.com", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    let out = dig(&s, &["demo.petrel.test", "ANY"]);
    assert!(out.contains("ANSWER: 1,"), "RFC 8482: one RRset for ANY: {out}");
    let out = dig(&s, &["docs.demo.petrel.test", "A", "+subnet=177.1.0.0/24"]);
    assert!(
        out.contains("CNAME\twww.demo.petrel.test.") && out.contains("192.0.2.70"),
        "{out}"
    );
    let out = dig(&s, &["www.demo.petrel.test", "A", "+subnet=0.0.0.0/0"]);
    assert!(out.contains("CLIENT-SUBNET: 0.0.0.0/0/0"), "{out}");
    let out = dig(&s, &["www.demo.petrel.test", "A", "+edns=1", "+noednsnegotiation"]);
    assert!(out.contains("status: BADVERS"), "{out}");
}

#[test]
fn kdig_with_ecs_and_tcp() {
    let s = start("kdig");
    let port = s.port.to_string();
    let out = run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "cdn.demo.petrel.test",
            "A",
            "+subnet=101.1.0.0/24",
            "+tcp",
        ],
    );
    assert!(out.contains("CNAME\tsin.pop.demo.petrel.test."), "{out}");
    assert!(out.contains("203.0.113.10"), "{out}");
    assert!(out.contains("CLIENT-SUBNET: 101.1.0.0/24/8"), "{out}");
    let out = run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "api.demo.petrel.test",
            "AAAA",
            "+subnet=2800::/32",
            "+short",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec!["2001:db8:20::1", "2001:db8:10::1"],
        "gru has no IPv6; the next two: {out}"
    );
}

#[test]
fn unbound_forwards_client_subnets_and_clients_get_different_pops() {
    let s = start("unbound");
    let dir = tempdir("unbound-conf");
    let port = free_port();
    let _g = unbound(&dir, &format!("127.0.0.1@{port}"), None, s.port);
    let p = port.to_string();
    let ask = |src: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new(tool("dig"))
                .args([
                    "-b",
                    src,
                    "@127.0.0.1",
                    "-p",
                    &p,
                    "+time=2",
                    "+tries=1",
                    "+short",
                    "www.demo.petrel.test",
                    "A",
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !text.is_empty() && !text.contains(";;") {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "unbound gave no answer to {src}: {text}\n{}",
                std::fs::read_to_string(dir.join("unbound.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // unbound sends each client's /24 as ECS; petrel maps 127.0.1/24 to sin
    // and 127.0.2/24 to gru, and unbound's subnet cache keeps them apart.
    assert_eq!(ask("127.0.1.5"), "203.0.113.10");
    assert_eq!(ask("127.0.2.5"), "192.0.2.70");
    assert_eq!(ask("127.0.1.9"), "203.0.113.10");
    // Without a map entry the resolver-side client address has no GeoIP
    // record: the priority order applies.
    assert_eq!(ask("127.0.3.5"), "192.0.2.10");
    let metrics = http_get(s.admin, "/metrics");
    assert!(
        metrics.contains("petrel_dns_ecs_queries_total{service=\"www.demo.petrel.test.\",ecs=\"true\"}"),
        "{metrics}"
    );
}

#[test]
fn reload_under_dnsperf_load_loses_no_query() {
    let s = start("reload");
    let cfg = s.dir.join("demo.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let qfile = s.dir.join("queries.txt");
    std::fs::write(
        &qfile,
        "www.demo.petrel.test A\ncdn.demo.petrel.test A\napi.demo.petrel.test AAAA\ndemo.petrel.test SOA\n",
    )
    .unwrap();
    let port = s.port.to_string();
    // 8 s at a bounded 3000 QPS, with an ECS option on every query
    // (family 1, /24, 23.1.0.0).
    let perf = Command::new(tool("dnsperf"))
        .args(["-s", "127.0.0.1", "-p", &port, "-d"])
        .arg(&qfile)
        .args(["-l", "8", "-Q", "3000", "-c", "4", "-t", "2", "-E", "8:00011800170100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = s.child.id().to_string();
    for i in 0..20 {
        let text = if i == 9 {
            good.replace("ttl = 30", "ttl = thirty") // rejected: the old generation keeps serving
        } else {
            good.replace("ttl = 30", &format!("ttl = {}", 30 + i))
        };
        std::fs::write(&cfg, text).unwrap();
        if i % 2 == 0 {
            Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        } else {
            let (code, body) = http(s.admin, "POST", "/api/v1/reload");
            assert_eq!(code, if i == 9 { 422 } else { 200 }, "{body}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_dnsperf_clean(&perf.wait_with_output().unwrap(), 10_000);
    let metrics = http_get(s.admin, "/metrics");
    assert!(metrics.contains("petrel_reloads_failed_total 1"), "{metrics}");
    assert!(metrics.contains("petrel_reloads_ok_total 19"), "{metrics}");
    let status = http_get(s.admin, "/api/v1/status");
    assert!(status.contains("\"ok\":true"), "the last reload was good: {status}");
    assert!(dig(&s, &["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24"]).contains("\t49\tIN\tA\t198.51.100.10"));
}

#[test]
fn check_explain_and_map_commands() {
    let s = start("cli");
    let cfg = s.dir.join("demo.toml");
    let c = cfg.to_str().unwrap();
    let (ok, out, _) = petrel(&["check", "--config", c]);
    assert!(
        ok && out.contains(": ok (4 POPs, 1 zones, 5 services, 1 BGP peers, 4 MRT dumps, 0 BMP routers, 1 anycast blocks (1 prefixes))"),
        "{out}"
    );
    // Every error at once, each with file, line and field.
    let bad = s.dir.join("bad.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("lat = 52.37", "lat = 152.37")
        .replace("name = \"sin\"", "name = \"sin\"\ncolour = \"red\"");
    std::fs::write(&bad, &text).unwrap();
    let (ok, _, err) = petrel(&["check", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:") && err.contains("unknown field `colour`"),
        "{err}"
    );
    std::fs::write(
        &bad,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("lat = 52.37", "lat = 152.37")
            .replace("answers = 2", "answers = 99"),
    )
    .unwrap();
    let (ok, _, err) = petrel(&["check", "--config", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("pop[0].lat: 152.37 is not a latitude")
            && err.contains("service[2].answers: 99 is out of range")
            && err.contains("2 error(s)"),
        "{err}"
    );
    // A broken zone file names the zone file and line.
    std::fs::write(
        s.dir.join("demo.zone"),
        std::fs::read_to_string(s.dir.join("demo.zone")).unwrap() + "bad IN A 300.1.2.3\n",
    )
    .unwrap();
    let (ok, _, err) = petrel(&["check", "--config", c]);
    assert!(!ok && err.contains("demo.zone: line 12:"), "{err}");
    // What `serve` would stumble on, file by file, in the same run: a
    // missing MRT dump, GeoIP database, admin token and health-check
    // program, and the broken zone.
    let files = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("file = \"demo-bgp-sin.mrt\"", "file = \"missing.mrt\"")
        .replace("database = \"demo-geo.mmdb\"", "database = \"missing.mmdb\"")
        .replacen("[server]", "[server]\nadmin_token_file = \"missing-token\"", 1)
        + "\n[[pop.check]]\ntype = \"exec\"\ncommand = [\"/nonexistent/probe\"]\n";
    std::fs::write(&bad, files).unwrap();
    let (ok, _, err) = petrel(&["check", "--config", bad.to_str().unwrap()]);
    assert!(!ok, "{err}");
    for want in [
        "server.admin_token_file: ",
        "missing-token: admin token file cannot read: No such file",
        "geoip.database: ",
        "missing.mmdb: cannot read: No such file",
        "bgp.mrt[2]: ",
        "missing.mrt: cannot read: No such file",
        "/nonexistent/probe`: no such file",
        "demo.zone: line 12:",
        "5 error(s)",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
    assert!(!err.contains("cannot read: cannot read"), "{err}");
    // examples/full.toml: every key, files that exist only in its comments:
    // each one is named, in one run, and nothing else is wrong with it.
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/full.toml");
    let (ok, _, err) = petrel(&["check", "--config", full.to_str().unwrap()]);
    assert!(!ok);
    for want in [
        "/etc/petrel/admin.token",
        "/etc/petrel/tls/www.pem",
        "/etc/petrel/ca.pem",
        "/usr/local/bin/check-disk",
        "GeoLite2-City.mmdb",
        "iad-rib.mrt.bz2",
        "iad-updates.mrt.gz",
        "/etc/petrel/example.net.zone",
        "/etc/petrel/clients.map",
        "/var/lib/petrel/vrps.json",
        "Kexample.net.+013+12345.key",
        "Kexample.net.+013+23456.key",
        "Kexample.net.+013+34567.key",
        "13 error(s)",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
    // A value of the wrong type, in plain words, with its key.
    std::fs::write(
        &bad,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replacen("ttl = 30", "ttl = \"30\"", 1),
    )
    .unwrap();
    let (ok, _, err) = petrel(&["check", "--config", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("service.ttl: expected a whole number, found the text \"30\""),
        "{err}"
    );

    let (ok, out, _) = petrel(&[
        "explain",
        "--config",
        c,
        "--service",
        "www.demo.petrel.test",
        "--client",
        "177.1.0.0/24",
    ]);
    assert!(!ok, "the zone is broken now, explain reports it: {out}");
    let zone = std::fs::read_to_string(s.dir.join("demo.zone"))
        .unwrap()
        .replace("bad IN A 300.1.2.3\n", "");
    std::fs::write(s.dir.join("demo.zone"), zone).unwrap();
    let (ok, out, err) = petrel(&[
        "explain",
        "--config",
        c,
        "--service",
        "www.demo.petrel.test",
        "--client",
        "177.1.0.0/24",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("gru 21 km") && out.contains("answer: gru") && out.contains("ECS scope /8"),
        "{out}"
    );
    let (ok, out, _) = petrel(&[
        "explain",
        "--config",
        c,
        "--service",
        "www.demo.petrel.test",
        "--client",
        "10.1.2.3",
        "--json",
    ]);
    assert!(ok);
    let v: serde_json_lite::Value = serde_json_lite::parse(&out);
    assert!(v.0.contains("\"answer\": [\n    \"ams\"\n  ]"), "{out}");
    let admin = s.admin.to_string();
    let (ok, out, _) = petrel(&[
        "explain",
        "--admin",
        &admin,
        "--service",
        "cdn.demo.petrel.test",
        "--client",
        "101.2.3.0/24",
    ]);
    assert!(
        ok && out.contains("continent OC -> [sin]") && out.contains("answer: sin"),
        "{out}"
    );

    // Batch map: one line in, one line out, NULL for garbage, never exits.
    let mut child = Command::new(BIN)
        .args(["map", "--config", c, "--service", "www.demo.petrel.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for (input, want) in [
        ("2.16.3.4", "ams"),
        ("not-an-ip", "NULL"),
        ("23.1.0.0/24", "iad"),
        ("2800:1::1", "gru"),
        ("", "NULL"),
        ("14.1.1.1", "sin"),
    ] {
        writeln!(stdin, "{input}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(line.trim(), want, "input `{input}`");
    }
    stdin.write_all(&[0xff, 0xfe, b'\n']).unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "NULL");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Tiny stand-in to keep the test crate free of a JSON dependency: the
/// pretty JSON text is checked as text.
mod serde_json_lite {
    pub struct Value(pub String);
    pub fn parse(s: &str) -> Value {
        assert!(s.trim_start().starts_with('{'), "not JSON: {s}");
        Value(s.to_string())
    }
}

#[test]
fn drain_changes_answers_at_once_and_survives_a_restart() {
    let s = start("drain");
    let admin = s.admin.to_string();
    let q = ["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+short"];
    assert_eq!(dig(&s, &q).trim(), "198.51.100.10");
    let (ok, _, err) = petrel(&["pop", "--admin", &admin, "drain", "iad"]);
    assert!(ok, "{err}");
    assert_eq!(dig(&s, &q).trim(), "192.0.2.10", "iad drained: next nearest is ams");
    let (ok, out, _) = petrel(&["pop", "--admin", &admin, "list"]);
    assert!(ok && out.contains("iad          drained"), "{out}");
    let (ok, _, err) = petrel(&["pop", "--admin", &admin, "drain", "nowhere"]);
    assert!(!ok && err.contains("404"), "{err}");
    // Restart: the drain is read back from the state file.
    let dir = s.dir.clone();
    let (port, adm) = (s.port, s.admin.port());
    drop(s);
    let s = spawn(dir.clone(), &dir.join("demo.toml"), port, adm);
    assert_eq!(dig(&s, &q).trim(), "192.0.2.10", "still drained after restart");
    let (ok, _, _) = petrel(&["pop", "--admin", &admin, "undrain", "iad"]);
    assert!(ok);
    assert_eq!(dig(&s, &q).trim(), "198.51.100.10");
    // All POPs of `api` drained: fallback none gives an empty NOERROR.
    for p in ["ams", "iad", "sin", "gru"] {
        petrel(&["pop", "--admin", &admin, "drain", p]);
    }
    let out = dig(&s, &["api.demo.petrel.test", "A", "+subnet=23.1.0.0/24"]);
    assert!(out.contains("status: NOERROR") && out.contains("ANSWER: 0,"), "{out}");
    let out = dig(&s, &["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+short"]);
    assert_eq!(out.lines().count(), 4, "fallback all: every candidate: {out}");
    let metrics = http_get(s.admin, "/metrics");
    assert!(
        metrics.contains("petrel_dns_fallback_answers_total{service=\"www.demo.petrel.test.\"} 1"),
        "{metrics}"
    );
}

fn tcp_query(id: u16) -> Vec<u8> {
    let mut q = vec![0, 0];
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in ["www", "demo", "petrel", "test"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let n = (q.len() - 2) as u16;
    q[..2].copy_from_slice(&n.to_be_bytes());
    q
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn read_answer(c: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    c.read_exact(&mut len)?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut msg)?;
    Ok(msg)
}

fn closed(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 2];
    matches!(c.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn tcp_pipelining_limits_eviction_and_timeouts() {
    let dir = tempdir("tcp");
    let port = free_port();
    let admin = free_port();
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("tcp_max_connections = 512", "tcp_max_connections = 2")
        .replace("tcp_max_per_source = 32", "tcp_max_per_source = 2");
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    let addr = SocketAddr::from(([127, 0, 0, 1], s.port));
    // Three queries in one write; three answers in order.
    let mut c1 = connect_from([127, 0, 0, 1], addr);
    let mut all = Vec::new();
    for id in [1u16, 2, 3] {
        all.extend(tcp_query(id));
    }
    c1.write_all(&all).unwrap();
    for id in [1u16, 2, 3] {
        let msg = read_answer(&mut c1).unwrap();
        assert_eq!(u16::from_be_bytes([msg[0], msg[1]]), id);
        assert_eq!(msg[3] & 0xf, 0, "NOERROR");
    }
    // At the limit (2), a newcomer closes the connection idle longest
    // (RFC 7766 §6.2.3) rather than being turned away.
    std::thread::sleep(Duration::from_millis(100));
    let mut c2 = connect_from([127, 0, 0, 2], addr);
    std::thread::sleep(Duration::from_millis(200));
    let mut c3 = connect_from([127, 0, 0, 3], addr);
    c3.write_all(&tcp_query(30)).unwrap();
    assert_eq!(read_answer(&mut c3).unwrap()[..2], 30u16.to_be_bytes());
    assert!(
        closed(&mut c1),
        "the longest idle connection was closed for the newcomer"
    );
    assert_eq!(metric(&s, "petrel_dns_tcp_evicted_total"), 1);
    // Both in the middle of a query: none idle, so a newcomer is refused.
    c2.write_all(&[0, 40]).unwrap();
    c3.write_all(&[0, 40]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut c4 = connect_from([127, 0, 0, 4], addr);
    assert!(closed(&mut c4), "no idle connection to make room: refused");
    assert_eq!(metric(&s, "petrel_dns_tcp_rejected_total"), 1);
    // A query half sent is bounded by the idle timeout (2 s here) too.
    let t = Instant::now();
    assert!(closed(&mut c2) && closed(&mut c3));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(100));
    // Per source: the third connection from one address is closed at once.
    let _a = connect_from([127, 0, 0, 9], addr);
    let _b = connect_from([127, 0, 0, 9], addr);
    std::thread::sleep(Duration::from_millis(100));
    let mut third = connect_from([127, 0, 0, 9], addr);
    assert!(closed(&mut third));
    assert_eq!(metric(&s, "petrel_dns_tcp_source_limited_total"), 1);
    drop((_a, _b));
    std::thread::sleep(Duration::from_millis(100));
    // A client that pipelines queries and never reads its answers: once
    // the socket buffers are full, the write times out and the slot is
    // freed for others.
    let hog = connect_from([127, 0, 0, 5], addr);
    let mut w = hog.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let burst: Vec<u8> = (0..1000u16).flat_map(tcp_query).collect();
        for _ in 0..400 {
            if w.write_all(&burst).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&s, "petrel_dns_tcp_write_timeouts_total") == 0 {
        assert!(Instant::now() < deadline, "the reader-less client kept its connection");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = hog.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    let mut c6 = connect_from([127, 0, 0, 6], addr);
    c6.write_all(&tcp_query(60)).unwrap();
    assert_eq!(read_answer(&mut c6).unwrap()[..2], 60u16.to_be_bytes());
}

#[test]
fn apache_rewritemap_prg_asks_petrel_map() {
    let dir = tempdir("apache");
    let port = free_port();
    let (dns, admin) = (free_port(), free_port());
    let cfg = write_config(&dir, dns, admin, "");
    // The running server whose POP states the map follows.
    let s = spawn(dir.clone(), &cfg, dns, admin);
    let httpd = tool("apache2");
    let mods = "/usr/lib/apache2/modules";
    let conf = format!(
        r#"ServerRoot "{d}"
ServerName localhost
Listen 127.0.0.1:{port}
LoadModule mpm_prefork_module {mods}/mod_mpm_prefork.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule rewrite_module {mods}/mod_rewrite.so
User www-data
Group www-data
PidFile "{d}/httpd.pid"
ErrorLog "{d}/error.log"
Mutex file:{d} default
DocumentRoot "{d}"
RewriteEngine on
RewriteMap pop "prg:{bin} map --config {cfg} --service www.demo.petrel.test --follow 127.0.0.1:{admin}"
RewriteRule "^/(.*)$" "http://${{pop:%{{REMOTE_ADDR}}|NULL}}.cdn.example/$1" [R=302,L]
"#,
        d = dir.display(),
        bin = BIN,
        cfg = cfg.display()
    );
    std::fs::write(dir.join("httpd.conf"), conf).unwrap();
    let _apache = Kill(
        Command::new(&httpd)
            .args(["-X", "-f"])
            .arg(dir.join("httpd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "apache did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let location = |src: &str| -> String {
        let url = format!("http://127.0.0.1:{port}/video/1.mp4");
        let out = run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "--interface",
                src,
                "-w",
                "%{http_code} %{redirect_url}",
                &url,
            ],
        );
        out.trim().to_string()
    };
    // The map's CIDR entries for 127.0.1/24 and 127.0.2/24, and the priority
    // order for a client the data knows nothing about.
    assert_eq!(location("127.0.1.5"), "302 http://sin.cdn.example/video/1.mp4");
    assert_eq!(location("127.0.2.5"), "302 http://gru.cdn.example/video/1.mp4");
    assert_eq!(location("127.0.0.1"), "302 http://ams.cdn.example/video/1.mp4");
    assert_eq!(location("127.0.1.77"), "302 http://sin.cdn.example/video/1.mp4");
    // The server drains sin: the map follows at once, and back.
    let a = s.admin.to_string();
    let (ok, _, err) = petrel(&["pop", "--admin", &a, "drain", "sin"]);
    assert!(ok, "{err}");
    let t0 = Instant::now();
    while location("127.0.1.5").contains("sin") {
        assert!(t0.elapsed() < Duration::from_secs(5), "the map still answers sin");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("the map followed the drain in {:?}", t0.elapsed());
    let (ok, _, err) = petrel(&["pop", "--admin", &a, "undrain", "sin"]);
    assert!(ok, "{err}");
    let t0 = Instant::now();
    while !location("127.0.1.5").contains("sin") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the map does not answer sin again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn wildcard_listener_replies_from_the_address_queried() {
    let dir = tempdir("wildcard");
    let port = free_port();
    let admin = free_port();
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("dns = [\"127.0.0.1:{port}\", \"[::1]:{port}\"]"),
        &format!("dns = [\"0.0.0.0:{port}\", \"[::]:{port}\"]"),
    );
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    let p = port.to_string();
    // dig rejects a reply from another address than it asked; 127.0.0.7 is
    // not the address the kernel would pick as source towards 127.0.0.1.
    for server in ["@127.0.0.7", "@127.0.0.1", "@::1"] {
        let out = run(
            "dig",
            &[
                server,
                "-p",
                &p,
                "+time=2",
                "+tries=1",
                "www.demo.petrel.test",
                "A",
                "+subnet=23.1.0.0/24",
                "+short",
            ],
        );
        assert_eq!(out.trim(), "198.51.100.10", "{server}: {out}");
    }
    drop(s);
}

#[test]
fn a_drain_during_a_slow_reload_is_published_at_once_and_kept() {
    let s = start("slowreload");
    let admin = s.admin.to_string();
    let q = ["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+short"];
    assert_eq!(dig(&s, &q).trim(), "198.51.100.10");
    // A zone that takes seconds to read and compile (300,000 records).
    let zone = s.dir.join("demo.zone");
    let mut text = std::fs::read_to_string(&zone).unwrap();
    for i in 0..300_000 {
        text.push_str(&format!("h{i} 300 IN A 192.0.2.{}\n", i % 250 + 1));
    }
    std::fs::write(&zone, &text).unwrap();
    let a = admin.clone();
    let reload = std::thread::spawn(move || petrel(&["reload", "--admin", &a]));
    std::thread::sleep(Duration::from_millis(300));
    // The drain is published while the reload compiles.
    let t = Instant::now();
    let (ok, _, err) = petrel(&["pop", "--admin", &admin, "drain", "iad"]);
    assert!(ok, "{err}");
    assert_eq!(dig(&s, &q).trim(), "192.0.2.10", "drained while the reload was running");
    assert!(
        !reload.is_finished(),
        "the reload was over before the drain ({:?})",
        t.elapsed()
    );
    // Health and status reads do not wait either.
    assert!(http_get(s.admin, "/api/v1/pops").contains("\"drained\""));
    let (ok, out, err) = reload.join().unwrap();
    assert!(ok && out.contains("\"ok\": true"), "{out}{err}");
    assert_eq!(dig(&s, &q).trim(), "192.0.2.10", "the drain survived the reload");
    let metrics = http_get(s.admin, "/metrics");
    assert!(metrics.contains("petrel_reloads_ok_total 1"), "{metrics}");
    assert_eq!(
        dig(&s, &["h299999.demo.petrel.test", "A", "+short"]).trim(),
        "192.0.2.250"
    );
}

#[test]
fn sigterm_is_honoured_during_a_slow_reload() {
    let mut s = start("termreload");
    let zone = s.dir.join("demo.zone");
    let mut text = std::fs::read_to_string(&zone).unwrap();
    for i in 0..300_000 {
        text.push_str(&format!("h{i} 300 IN A 192.0.2.{}\n", i % 250 + 1));
    }
    std::fs::write(&zone, &text).unwrap();
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(400));
    let t = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "petrel did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(
        !log.contains("config reloaded"),
        "the reload was over before SIGTERM: {log}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stopped {:?} after SIGTERM",
        t.elapsed()
    );
}

#[test]
fn files_that_are_not_regular_or_too_large_are_refused_alike_by_check_and_reload() {
    let s = start("badfiles");
    let admin = s.admin.to_string();
    let cfg = s.dir.join("demo.toml");
    let zone = s.dir.join("demo.zone");
    let good = std::fs::read_to_string(&zone).unwrap();
    let q = ["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+short"];
    type Case<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let cases: [Case; 3] = [
        (
            // Opening a FIFO for reading waits for a writer: a hung reload.
            "is a FIFO, not a regular file",
            Box::new(|| {
                std::fs::remove_file(&zone).unwrap();
                assert!(Command::new("mkfifo").arg(&zone).status().unwrap().success());
            }),
        ),
        (
            // /dev/zero never ends.
            "is a device, not a regular file",
            Box::new(|| {
                std::fs::remove_file(&zone).unwrap();
                std::os::unix::fs::symlink("/dev/zero", &zone).unwrap();
            }),
        ),
        (
            "is 2 MiB, larger than the limit of 1 MiB (server.max_file_size_mb)",
            Box::new(|| {
                std::fs::remove_file(&zone).unwrap();
                let mut big = good.clone();
                while big.len() <= 1 << 20 {
                    big.push_str("; padding padding padding padding padding padding padding padding\n");
                }
                std::fs::write(&zone, big).unwrap();
                let c = std::fs::read_to_string(&cfg).unwrap();
                std::fs::write(&cfg, c.replace("max_file_size_mb = 256 ", "max_file_size_mb = 1 ")).unwrap();
            }),
        ),
    ];
    for (want, make) in cases {
        make();
        let t = Instant::now();
        let (ok, out, err) = petrel(&["reload", "--admin", &admin]);
        assert!(!ok, "{out}");
        assert!(t.elapsed() < Duration::from_secs(5), "{want}: took {:?}", t.elapsed());
        let said = format!("{out}{err}");
        assert!(
            said.contains(want) && said.contains("demo.zone"),
            "reload: {want}: {said}"
        );
        let (ok, out, err) = petrel(&["check", "--config", cfg.to_str().unwrap()]);
        assert!(!ok, "{out}");
        assert!(err.contains(want) && err.contains("demo.zone"), "check: {want}: {err}");
        // Still serving the last good generation.
        assert_eq!(dig(&s, &q).trim(), "198.51.100.10", "{want}");
    }
    let metrics = http_get(s.admin, "/metrics");
    assert!(metrics.contains("petrel_reloads_failed_total 3"), "{metrics}");
}

/// The body of an HTTP/1.1 answer (the helpers ask for `Connection: close`;
/// axum sends a length, not chunks, for these).
fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn the_admin_api_serves_its_openapi_document_and_every_operation_answers_in_its_types() {
    let s = start("openapi");
    let (code, raw) = http(s.admin, "GET", "/api/v1/openapi.json");
    assert_eq!(code, 200);
    let served: serde_json::Value = serde_json::from_str(body_of(&raw)).unwrap();
    let built: serde_json::Value = serde_json::from_str(&petrel_api::openapi_json()).unwrap();
    assert_eq!(served, built);
    let mut called = vec![("GET".to_string(), "/api/v1/openapi.json".to_string())];
    let mut call = |method: &str, doc_path: &str, path: &str| -> (u16, String) {
        called.push((method.to_string(), doc_path.to_string()));
        let (code, raw) = http(s.admin, method, path);
        (code, body_of(&raw).to_string())
    };
    fn typed<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> T {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"))
    }
    let (code, b) = call("GET", "/api/v1/status", "/api/v1/status");
    assert_eq!(code, 200);
    let st: petrel_api::Status = typed("status", &b);
    assert_eq!(st.pops.len(), 4);
    // The demo's MRT views are in within moments of the start.
    let t0 = Instant::now();
    let (code, b) = loop {
        let (code, b) = call("GET", "/api/v1/ready", "/api/v1/ready");
        if code == 200 || t0.elapsed() > Duration::from_secs(10) {
            break (code, b);
        }
        let r: petrel_api::Readiness = typed("ready", &b);
        assert_eq!((code, r.state.as_str()), (503, "warming"), "{b}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let r: petrel_api::Readiness = typed("ready", &b);
    assert_eq!((code, r.ready), (200, true), "{b}");
    let (_, b) = call("GET", "/api/v1/status", "/api/v1/status");
    let st: petrel_api::Status = typed("status", &b);
    assert_eq!(st.state, "serving");
    let (code, b) = call("GET", "/api/v1/pops", "/api/v1/pops");
    assert_eq!(code, 200);
    let pops: Vec<petrel_api::PopView> = typed("pops", &b);
    assert_eq!(pops[1].name, "iad");
    let (code, b) = call("GET", "/api/v1/health", "/api/v1/health");
    assert_eq!(code, 200);
    let _: petrel_api::Health = typed("health", &b);
    let (code, b) = call(
        "GET",
        "/api/v1/explain",
        "/api/v1/explain?service=www.demo.petrel.test&client=23.1.0.0/24",
    );
    assert_eq!(code, 200);
    let e: petrel_api::ExplainResult = typed("explain", &b);
    assert_eq!(e.explanation.answer, ["iad"]);
    assert!(e.text.contains("answer: iad"), "{}", e.text);
    assert!(e.anycast.is_empty(), "iad announces nothing");
    // ams is also reached over anycast: the explanation says how.
    let (code, b) = call(
        "GET",
        "/api/v1/explain",
        "/api/v1/explain?service=www.demo.petrel.test&client=2.16.0.0/24",
    );
    assert_eq!(code, 200);
    let e: petrel_api::ExplainResult = typed("explain", &b);
    assert_eq!(e.explanation.answer, ["ams"]);
    assert_eq!(e.anycast.len(), 1);
    assert!(
        e.text.contains("anycast: 198.18.0.0/24 (ams) to ams-edge: announced"),
        "{}",
        e.text
    );
    let (code, b) = call("GET", "/api/v1/explain", "/api/v1/explain?service=nope&client=1.2.3.4");
    assert_eq!(code, 400);
    let err: petrel_api::ErrorBody = typed("explain error", &b);
    assert!(err.error.contains("no service `nope`"), "{}", err.error);
    let (code, b) = call("GET", "/api/v1/bgp/summary", "/api/v1/bgp/summary");
    assert_eq!(code, 200);
    let bgp: petrel_api::BgpSummary = typed("bgp summary", &b);
    assert!(bgp.configured);
    let (code, b) = call("GET", "/api/v1/bgp/route", "/api/v1/bgp/route?addr=23.1.0.1");
    assert_eq!(code, 200);
    let r: petrel_api::RouteResult = typed("bgp route", &b);
    assert_eq!(r.views.len(), 4);
    let (code, b) = call("GET", "/api/v1/anycast", "/api/v1/anycast");
    assert_eq!(code, 200);
    let a: petrel_api::AnycastStatus = typed("anycast", &b);
    // The demo's block towards its (absent) edge router.
    assert_eq!(a.routes.len(), 1);
    assert_eq!(
        (a.routes[0].prefix.as_str(), a.routes[0].standing.as_str()),
        ("198.18.0.0/24", "announced")
    );
    assert!(!a.routes[0].session_up);
    let (code, b) = call("GET", "/api/v1/pops/stream", "/api/v1/pops/stream?count=1");
    assert_eq!(code, 200);
    let p: petrel_api::PopStates = typed("pop states", &b[b.find('{').unwrap()..=b.rfind('}').unwrap()]);
    assert_eq!(p.pops.len(), 4);
    let (code, b) = call("GET", "/metrics", "/metrics");
    assert_eq!(code, 200);
    assert!(b.contains("petrel_generation_id"), "{b}");
    let (code, b) = call("POST", "/api/v1/pops/{name}/{action}", "/api/v1/pops/ams/drain");
    assert_eq!(code, 200);
    let o: petrel_api::OverrideResult = typed("drain", &b);
    assert_eq!((o.name.as_str(), o.action.as_str()), ("ams", "Drain"));
    let (code, b) = call(
        "POST",
        "/api/v1/targets/{action}",
        "/api/v1/targets/force-up?name=ams/tcp:192.0.2.1:1",
    );
    assert_eq!(code, 404, "{b}");
    let _: petrel_api::ErrorBody = typed("unknown target", &b);
    let (code, b) = call("POST", "/api/v1/reload", "/api/v1/reload");
    assert_eq!(code, 200);
    let r: petrel_api::ReloadResult = typed("reload", &b);
    assert!(r.ok && r.generation.is_some());
    let (code, b) = call("GET", "/api/v1/alerts", "/api/v1/alerts");
    assert_eq!(code, 200, "{b}");
    let a: petrel_api::AlertsResult = typed("alerts", &b);
    assert!(a.open.is_empty() && a.recent.is_empty());
    // The demo measures nothing: imports are refused with a reason.
    let (code, b) = call("POST", "/api/v1/measure/import", "/api/v1/measure/import");
    assert_eq!(code, 503, "{b}");
    let e: petrel_api::ErrorBody = typed("import without [measure]", &b);
    assert!(e.error.contains("[measure]"), "{}", e.error);
    for (path, q) in [
        ("/api/v1/measure/top", "/api/v1/measure/top?by=asn"),
        ("/api/v1/measure/resolvers", "/api/v1/measure/resolvers"),
    ] {
        let (code, b) = call("GET", path, q);
        assert_eq!(code, 503, "{b}");
        let e: petrel_api::ErrorBody = typed("warehouse without [measure]", &b);
        assert!(e.error.contains("[measure]"), "{}", e.error);
    }
    // Every documented operation was called, and nothing else answers.
    called.sort();
    called.dedup();
    assert_eq!(called, petrel_api::operations());
    let (code, raw) = http(s.admin, "GET", "/api/v2/nothing");
    assert_eq!(code, 404);
    let _: petrel_api::ErrorBody = typed("no such endpoint", body_of(&raw));
}

#[test]
fn a_truncated_mrt_dump_is_reported_alike_by_check_and_serve() {
    let dir = tempdir("mrtcut");
    let (port, admin) = (free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let mrt = dir.join("demo-bgp-ams.mrt");
    let bytes = std::fs::read(&mrt).unwrap();
    std::fs::write(&mrt, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, out, err) = petrel(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!ok, "{out}");
    // check reads every dump through, as the MRT reader would.
    assert!(out.contains("demo-bgp-iad.mrt: 89 MRT records"), "{out}");
    let said = err
        .lines()
        .find(|l| l.contains("demo-bgp-ams.mrt: MRT record at byte"))
        .unwrap_or_else(|| panic!("{err}"));
    let what = said.split_once("demo-bgp-ams.mrt: ").unwrap().1;
    assert!(what.ends_with("truncated record"), "{what}");
    // serve starts (the routes read before the cut are kept) and logs the
    // same words.
    let s = spawn(dir, &cfg, port, admin);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
        if log.contains(what) {
            break;
        }
        assert!(Instant::now() < deadline, "serve did not report `{what}`: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn udp_workers_follow_the_cores_by_default() {
    let s = start("udpworkers");
    let cores = std::thread::available_parallelism().unwrap().get();
    let workers = std::fs::read_dir(format!("/proc/{}/task", s.child.id()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|c| c.starts_with("dns-udp-"))
        .count();
    // One set per listener (127.0.0.1 and ::1; a host without IPv6 has one).
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    let listeners = log.matches("DNS listening").count();
    assert!(listeners >= 1, "{log}");
    assert_eq!(workers, cores * listeners, "{log}");
}

#[test]
fn a_bad_state_file_warns_and_an_unwritable_one_refuses_the_drain_with_a_log_line() {
    let dir = tempdir("statefile");
    let (port, admin) = (free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    // Empty, then corrupt: start-up goes on without the saved overrides.
    std::fs::write(dir.join("demo-state.json"), "{\"drained\": [\"ia").unwrap();
    let (ok, out, err) = petrel(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("demo-state.json: state file is corrupt") && err.contains("starting without the saved"),
        "{err}"
    );
    let s = spawn(dir, &cfg, port, admin);
    let q = ["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+short"];
    assert_eq!(dig(&s, &q).trim(), "198.51.100.10");
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("state file is corrupt"), "{log}");
    // The state file's directory becomes a plain file: nothing can be
    // written there (not even by root). The drain is refused and logged.
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(s.dir.join("blocked"), "a file, not a directory").unwrap();
    std::fs::write(
        &cfg,
        cfg_text.replace(
            "state_file = \"demo-state.json\"",
            "state_file = \"blocked/state.json\"",
        ),
    )
    .unwrap();
    let admin_addr = s.admin.to_string();
    let (ok, out, err) = petrel(&["reload", "--admin", &admin_addr]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = petrel(&["pop", "--admin", &admin_addr, "drain", "iad"]);
    assert!(!ok && err.contains("500"), "{err}");
    assert!(out.contains("cannot write the state file"), "{out}");
    assert_eq!(dig(&s, &q).trim(), "198.51.100.10", "not drained");
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(
        log.contains("operator override refused") && log.contains("blocked/state.json"),
        "{log}"
    );
}

#[test]
fn check_refuses_announcements_that_are_not_ours_too_long_or_rpki_invalid() {
    let dir = tempdir("anycastcheck");
    let cfg = write_config(&dir, free_port(), free_port(), "");
    std::fs::write(
        dir.join("vrps.json"),
        r#"{"metadata": {}, "roas": [{"asn": "AS64600", "prefix": "192.0.2.0/23", "maxLength": 24},
             {"asn": "AS64999", "prefix": "203.0.113.0/24", "maxLength": 24}]}"#,
    )
    .unwrap();
    let base = std::fs::read_to_string(&cfg).unwrap();
    let with = |prefixes: &str| {
        // The demo's own block (198.18.0.0/24 to ams-edge) stays.
        let base = base.replacen(
            "owned = [\"198.18.0.0/24\"]",
            "owned = [\"198.18.0.0/24\", \"192.0.2.0/23\", \"203.0.113.0/24\"]\nvrp_file = \"vrps.json\"",
            1,
        );
        let text = format!(
            "{base}\n\n[[anycast]]\nname = \"web\"\npop = \"ams\"\nprefixes = [{prefixes}]\n\n[[anycast.neighbor]]\npeer = \"ams-edge\"\ncommunities = [\"64610:100\"]\n"
        );
        let f = dir.join("anycast.toml");
        std::fs::write(&f, text).unwrap();
        petrel(&["check", "--config", f.to_str().unwrap()])
    };
    let (ok, out, err) = with("\"192.0.2.0/24\", \"192.0.3.0/24\"");
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 anycast blocks (3 prefixes)"), "{out}");
    let (ok, _, err) = with("\"198.51.100.0/24\"");
    assert!(
        !ok && err.contains("anycast.toml:") && err.contains("not inside any prefix of `bgp.owned`"),
        "{err}"
    );
    let (ok, _, err) = with("\"192.0.2.128/25\"");
    assert!(!ok && err.contains("longer than /24"), "{err}");
    let (ok, _, err) = with("\"203.0.113.0/24\"");
    assert!(
        !ok && err.contains("203.0.113.0/24 cannot be announced: RPKI-invalid"),
        "{err}"
    );
}

/// A UDP query for www.demo.petrel.test A with `id`.
fn udp_query(id: u16) -> Vec<u8> {
    tcp_query(id)[2..].to_vec()
}

#[test]
fn rate_limiting_limits_a_flooding_network_and_no_other() {
    let s = common::start_with("rrl", "[server.rrl]\nresponses_per_second = 5\nwindow = 5\nslip = 2\n");
    let port = s.port;
    // The flood: 300 queries from one address of 127.0.0.0/24, as fast as
    // the socket takes them (one source port: one worker).
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t0 = std::time::Instant::now();
    const FLOOD: usize = 300;
    for id in 0..FLOOD as u16 {
        sock.send_to(&udp_query(id), to).unwrap();
    }
    let (mut full, mut truncated) = (0usize, 0usize);
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        assert!(n >= 12);
        let tc = buf[2] & 0x02 != 0;
        let an = u16::from_be_bytes([buf[6], buf[7]]);
        if tc {
            assert_eq!(an, 0, "a truncated answer carries no records");
            truncated += 1;
        } else {
            assert!(an > 0, "a full answer");
            full += 1;
        }
    }
    let secs = t0.elapsed().as_secs() as usize;
    // Five a second, for the seconds the flood took.
    assert!(full >= 5 && full <= 5 * (secs + 2), "{full} full answers in {secs} s");
    let limited = FLOOD - full;
    // Every second limited response goes out truncated.
    assert!(
        truncated.abs_diff(limited / 2) <= 1,
        "{truncated} truncated of {limited} limited"
    );
    // Another network is answered in full, by dig.
    for _ in 0..5 {
        let out = common::dig(&s, &["-b", "127.0.1.1", "www.demo.petrel.test", "A"]);
        assert!(
            out.contains("status: NOERROR") && out.contains("ANSWER: 1") && !out.contains(" tc"),
            "{out}"
        );
    }
    assert_eq!(
        common::metric(&s, "petrel_dns_rrl_dropped_total") + common::metric(&s, "petrel_dns_rrl_slipped_total"),
        limited as u64
    );
    assert_eq!(common::metric(&s, "petrel_dns_rrl_slipped_total"), truncated as u64);
}

/// A UDP query for www.demo.petrel.test A with EDNS and a COOKIE option.
fn cookie_query(id: u16, cookie: &[u8]) -> Vec<u8> {
    let mut q = udp_query(id);
    q[11] = 1;
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&((4 + cookie.len()) as u16).to_be_bytes());
    q.extend_from_slice(&[0, 10]);
    q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(cookie);
    q
}

/// Of a reply whose OPT record carries only a COOKIE option (it ends the
/// reply): the cookie, the full (extended) rcode, and the answer count.
fn cookie_reply(r: &[u8]) -> (Vec<u8>, u16, u16) {
    let n = r.len();
    assert!(n > 12 + 39, "{r:?}");
    let opt = n - 39;
    assert_eq!(&r[opt..opt + 3], &[0, 0, 41], "an OPT record ends the reply");
    assert_eq!(
        &r[opt + 9..opt + 15],
        &[0, 28, 0, 10, 0, 24],
        "one COOKIE option of 24 bytes"
    );
    let rcode = (u16::from(r[opt + 5]) << 4) | u16::from(r[3] & 0xf);
    (r[n - 24..].to_vec(), rcode, u16::from_be_bytes([r[6], r[7]]))
}

#[test]
fn cookies_are_answered_and_a_valid_one_passes_rate_limiting() {
    let s = common::start_with(
        "cookies",
        "[server.rrl]\nresponses_per_second = 2\nwindow = 5\nslip = 0\n",
    );
    let port = s.port;
    // dig and kdig get a server cookie back with their own client cookie.
    let out = common::dig(&s, &["+cookie", "-b", "127.0.1.1", "www.demo.petrel.test", "A"]);
    let line = out
        .lines()
        .find(|l| l.contains("COOKIE:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("(good)"), "{line}");
    let sent = line.split_whitespace().nth(2).unwrap();
    assert_eq!(sent.len(), 48, "client and server cookie: {line}");
    assert_eq!(&sent[16..18], "01", "an RFC 9018 server cookie: {line}");
    // Sent back, it is accepted, and dig is answered.
    let again = common::dig(
        &s,
        &[
            &format!("+cookie={sent}"),
            "-b",
            "127.0.1.1",
            "www.demo.petrel.test",
            "A",
        ],
    );
    assert!(again.contains("status: NOERROR") && again.contains("(good)"), "{again}");
    let p = s.port.to_string();
    let k = common::run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &p,
            "-b",
            "127.0.2.1",
            "+cookie",
            "+time=2",
            "www.demo.petrel.test",
            "A",
        ],
    );
    assert!(k.contains("NOERROR"), "{k}");
    let kline = k
        .lines()
        .find(|l| l.contains("COOKIE"))
        .unwrap_or_else(|| panic!("{k}"));
    assert!(kline.split_whitespace().any(|w| w.len() == 48), "{kline}");

    // Raw: a client cookie alone brings a server cookie.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client_cookie = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
    let mut buf = [0u8; 2048];
    sock.send_to(&cookie_query(1, &client_cookie), to).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let (cookie, rcode, an) = cookie_reply(&buf[..n]);
    assert_eq!((&cookie[..8], rcode, an), (&client_cookie[..], 0, 1));
    // A tampered server cookie is answered with a fresh one.
    let mut tampered = cookie.clone();
    tampered[23] ^= 1;
    sock.send_to(&cookie_query(2, &tampered), to).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let (fresh, _, _) = cookie_reply(&buf[..n]);
    assert_ne!(fresh, tampered);
    // Forty queries with the valid cookie: all answered, over a rate of 2.
    for id in 0..40u16 {
        sock.send_to(&cookie_query(100 + id, &cookie), to).unwrap();
    }
    let mut answered = 0;
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let (_, rcode, an) = cookie_reply(&buf[..n]);
        assert_eq!((rcode, an), (0, 1));
        answered += 1;
    }
    assert_eq!(answered, 40, "a valid cookie is never rate limited");
    // The same forty without a cookie: limited.
    for id in 0..40u16 {
        sock.send_to(&udp_query(200 + id), to).unwrap();
    }
    let mut plain = 0;
    while sock.recv_from(&mut buf).is_ok() {
        plain += 1;
    }
    assert!(plain <= 6, "{plain} of 40 answered without a cookie");
}

#[test]
fn required_cookies_turn_cookieless_udp_clients_away_with_badcookie() {
    let secret = "e5e973e5a6b2a43f48e7dc849e37bfcf";
    let s = common::start_with(
        "badcookie",
        &format!("[server.cookies]\nrequire = true\nsecret = \"{secret}\"\n"),
    );
    let port = s.port;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut buf = [0u8; 2048];
    sock.send_to(&cookie_query(1, &[1, 2, 3, 4, 5, 6, 7, 8]), to).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let (cookie, rcode, an) = cookie_reply(&buf[..n]);
    assert_eq!((rcode, an), (23, 0), "BADCOOKIE, no answer");
    sock.send_to(&cookie_query(2, &cookie), to).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(cookie_reply(&buf[..n]).1, 0, "answered with the cookie it was given");
    // dig: BADCOOKIE, then with +badcookie the retry is answered; over
    // TCP, and without any cookie, clients are answered as before.
    let bad = common::dig(&s, &["+cookie", "+nobadcookie", "www.demo.petrel.test", "A"]);
    assert!(bad.contains("status: BADCOOKIE"), "{bad}");
    let ok = common::dig(&s, &["+cookie", "+badcookie", "www.demo.petrel.test", "A"]);
    assert!(ok.contains("status: NOERROR") && ok.contains("ANSWER: 1"), "{ok}");
    let tcp = common::dig(&s, &["+cookie", "+tcp", "www.demo.petrel.test", "A"]);
    assert!(tcp.contains("status: NOERROR"), "{tcp}");
    let none = common::dig(&s, &["+nocookie", "www.demo.petrel.test", "A"]);
    assert!(none.contains("status: NOERROR"), "{none}");
}

#[test]
fn dnstap_frames_reach_fstrm_capture_and_decode_to_the_queries_sent() {
    let dir = common::tempdir("dnstap");
    let sock = dir.join("tap.sock");
    let file = dir.join("tap.fstrm");
    let capture = Command::new(common::tool("fstrm_capture"))
        .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
        .arg(&sock)
        .arg("-w")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let capture = common::Kill(capture);
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "fstrm_capture did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (port, admin) = (common::free_port(), common::free_port());
    let cfg = common::write_config(
        &dir,
        port,
        admin,
        &format!(
            "[server.dnstap]\nsocket = \"{}\"\nidentity = \"ns-under-test\"\n",
            sock.display()
        ),
    );
    let s = common::spawn(dir.clone(), &cfg, port, admin);
    let t0 = Instant::now();
    while common::metric(&s, "petrel_dnstap_connected") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no dnstap connection");
        std::thread::sleep(Duration::from_millis(20));
    }
    common::dig(&s, &["www.demo.petrel.test", "A"]);
    common::dig(&s, &["api.demo.petrel.test", "AAAA"]);
    common::dig(&s, &["+tcp", "nothing-here.demo.petrel.test", "A"]);
    // Three exchanges, a query and a response each.
    let t0 = Instant::now();
    while common::metric(&s, "petrel_dnstap_messages_total") < 6 {
        assert!(t0.elapsed() < Duration::from_secs(10), "dnstap messages not written");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);
    // fstrm_capture writes its file out on SIGINT.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(capture.0.id() as i32, libc::SIGINT) };
    let mut capture = capture;
    let t0 = Instant::now();
    while capture.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "fstrm_capture did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(common::tool("dnstap-ldns"))
        .arg("-y")
        .arg("-r")
        .arg(&file)
        .output()
        .unwrap();
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{yaml}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(yaml.matches("type: AUTH_QUERY").count(), 3, "{yaml}");
    assert_eq!(yaml.matches("type: AUTH_RESPONSE").count(), 3, "{yaml}");
    assert_eq!(yaml.matches("identity: \"ns-under-test\"").count(), 6, "{yaml}");
    assert_eq!(yaml.matches("socket_protocol: TCP").count(), 2, "{yaml}");
    for q in [
        "www.demo.petrel.test.\tIN\tA",
        "api.demo.petrel.test.\tIN\tAAAA",
        "nothing-here.demo.petrel.test.\tIN\tA",
    ] {
        assert!(yaml.contains(q), "{q} in {yaml}");
    }
    assert!(yaml.contains("rcode: NXDOMAIN"), "{yaml}");
}

#[test]
fn systemd_hears_ready_reloading_and_the_watchdog() {
    let dir = common::tempdir("notify");
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let (port, admin) = (common::free_port(), common::free_port());
    let cfg = common::write_config(&dir, port, admin, "");
    let env = format!("NOTIFY_SOCKET={}", path.display());
    let s = common::spawn_under(&["env", &env, "WATCHDOG_USEC=400000"], dir, &cfg, port, admin);
    let m = common::notified(&sock, "READY=1", Duration::from_secs(20));
    let ready = m.last().unwrap();
    assert!(ready.contains(&format!("MAINPID={}", s.child.id())), "{ready}");
    assert!(ready.contains("STATUS=serving generation"), "{ready}");
    // Every half period (0.2 s) while the control runtime runs.
    common::notified(&sock, "WATCHDOG=1", Duration::from_secs(2));
    common::notified(&sock, "WATCHDOG=1", Duration::from_secs(2));
    // A reload, as `systemctl reload` (ExecReload) asks for it.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGHUP) };
    let m = common::notified(&sock, "RELOADING=1", Duration::from_secs(5));
    let r = m.last().unwrap();
    let usec: u64 = r
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("{r}"))
        .parse()
        .unwrap();
    assert!(usec > 0);
    let m = common::notified(&sock, "READY=1", Duration::from_secs(10));
    assert!(m.last().unwrap().contains("(reloaded)"), "{m:?}");
}

#[test]
fn the_unit_file_verifies_and_the_cli_writes_completions_and_man_pages() {
    let dir = common::tempdir("packaging");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/petrel.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("User=petrel"));
    assert!(unit.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"));
    // systemd-analyze checks the commands exist: point them at this build.
    if let Ok(analyze) = which("systemd-analyze") {
        let path = dir.join("petrel.service");
        std::fs::write(&path, unit.replace("/usr/bin/petrel", common::BIN)).unwrap();
        let out = Command::new(analyze)
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("petrel.service"), "{err}");
    } else {
        eprintln!("systemd-analyze is not installed: the unit file is not verified");
    }
    let (ok, bash, err) = common::petrel(&["completions", "bash"]);
    assert!(ok && bash.contains("complete -F") && bash.contains("serve"), "{err}");
    let (ok, zsh, _) = common::petrel(&["completions", "zsh"]);
    assert!(ok && zsh.contains("#compdef petrel"));
    let man = dir.join("man");
    let (ok, _, err) = common::petrel(&["man", man.to_str().unwrap()]);
    assert!(ok, "{err}");
    for page in ["petrel.1", "petrel-serve.1", "petrel-check.1", "petrel-explain.1"] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}

fn which(cmd: &str) -> Result<String, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/sbin", "/bin"])
        .map(|d| format!("{d}/{cmd}"))
        .find(|p| std::path::Path::new(p).exists())
        .ok_or(())
}

const SIGNED_ZONE: &str = "$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
ns1 IN A 192.0.2.53
static IN A 192.0.2.99
mail IN MX 10 Mx1.Example.NET.
*.wild IN A 192.0.2.77
sub IN NS ns.sub
ns.sub IN A 192.0.2.54
secure IN NS ns.secure
secure IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF
";

/// A new key pair from `petrel dnssec keygen`; its file stem.
fn keygen(dir: &std::path::Path, zone: &str, args: &[&str]) -> String {
    let d = dir.to_str().unwrap();
    let (ok, out, err) = common::petrel(&[&["dnssec", "keygen", zone, "--dir", d], args].concat());
    assert!(ok, "{err}");
    out.trim().to_string()
}

fn signed_config(port: u16, admin: u16, keys: &[&str], publish: &[&str]) -> String {
    let list = |v: &[&str]| v.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
    format!(
        r#"
[server]
dns = ["127.0.0.1:{port}"]
admin = "127.0.0.1:{admin}"

[[pop]]
name = "ams"
ipv4 = ["192.0.2.1"]
ipv6 = ["2001:db8::1"]
[[pop]]
name = "nyc"
ipv4 = ["192.0.2.2"]

[[zone]]
origin = "example.net."
file = "example.net.zone"
[zone.dnssec]
keys = [{}]
publish = [{}]

[[service]]
name = "www.example.net."
ttl = 20
policy = [{{ type = "cidr", entries = {{ "10.0.0.0/8" = ["nyc"], "127.0.0.0/24" = ["nyc"] }} }}, {{ type = "priority", pops = ["ams", "nyc"] }}]

[[service]]
name = "cdn.example.net."
cname = "{{pop}}.pops.example.net."
policy = [{{ type = "priority", pops = ["nyc", "ams"] }}]
"#,
        list(keys),
        list(publish)
    )
}

/// `delv` against petrel with the DS of `petrel dnssec ds` as its trust
/// anchor: its first lines.
fn delv(dir: &std::path::Path, port: u16, q: &[&str]) -> String {
    let p = port.to_string();
    let anchors = dir.join("anchors.conf");
    let a = anchors.to_str().unwrap();
    // Its verdict goes to stdout, failures to stderr (and a non-zero exit).
    let out = Command::new(common::tool("delv"))
        .args([&["@127.0.0.1", "-p", &p, "-a", a, "+root=example.net"], q].concat())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_anchors(dir: &std::path::Path, cfg: &std::path::Path) -> String {
    let (ok, ds, err) = common::petrel(&["dnssec", "ds", "-c", cfg.to_str().unwrap(), "example.net."]);
    assert!(ok, "{err}");
    let f: Vec<&str> = ds.split_whitespace().collect();
    assert_eq!(&f[..3], &["example.net.", "IN", "DS"], "{ds}");
    std::fs::write(
        dir.join("anchors.conf"),
        format!(
            "trust-anchors {{\n  example.net. static-ds {} {} {} \"{}\";\n}};\n",
            f[3], f[4], f[5], f[6]
        ),
    )
    .unwrap();
    ds.trim().to_string()
}

/// A UDP relay to petrel that changes 192.0.2.2 in every reply to
/// 192.0.2.66: a tampered answer.
fn tampering_relay(to: u16) -> u16 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let up = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        up.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        // Bounded: a few hundred exchanges at most.
        for _ in 0..500 {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            up.send_to(&buf[..n], ("127.0.0.1", to)).unwrap();
            let Ok(m) = up.recv(&mut buf) else { continue };
            let r = &mut buf[..m];
            if let Some(i) = r.windows(4).position(|w| w == [192, 0, 2, 2]) {
                r[i + 3] = 66;
            }
            let _ = sock.send_to(r, from);
        }
    });
    port
}

/// A query with DO and CO (RFC 9824's Compact Answers OK) for `qname` A:
/// the reply's rcode and OPT flags.
fn compact_query(port: u16, qname: &str) -> (u8, u16) {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for l in qname.trim_end_matches('.').split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0xc0, 0x00, 0, 0]);
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(&q, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).unwrap();
    let r = &buf[..n];
    let opt = r.windows(3).rposition(|w| w == [0, 0, 41]).unwrap();
    (r[3] & 0xf, u16::from_be_bytes([r[opt + 7], r[opt + 8]]))
}

/// Online signing (RFC 9824 compact denial) checked by BIND's delv and a
/// validating unbound, with the trust anchor `petrel dnssec ds` prints:
/// mapped A/AAAA (with ECS scopes), CNAME mode, static data, wildcards,
/// NODATA, names that do not exist, DS and the proof of an unsigned
/// delegation; a tampered answer is bogus; a ZSK rollover with both keys
/// published keeps every answer valid.
#[test]
fn dnssec_answers_validate_with_delv_and_unbound() {
    let dir = common::tempdir("dnssec");
    let (port, admin, uport) = (common::free_port(), common::free_port(), common::free_port());
    std::fs::write(dir.join("example.net.zone"), SIGNED_ZONE).unwrap();
    let ksk = keygen(&dir, "example.net.", &["--ksk"]);
    let zsk1 = keygen(&dir, "example.net.", &[]);
    let zsk2 = keygen(&dir, "example.net.", &[]);
    let cfg = dir.join("petrel.toml");
    std::fs::write(&cfg, signed_config(port, admin, &[&ksk, &zsk1], &[&zsk2])).unwrap();
    let (ok, _, err) = common::petrel(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(ok, "{err}");
    let s = common::spawn(dir.clone(), &cfg, port, admin);
    let ds = write_anchors(&dir, &cfg);
    let tag = |stem: &str| stem.rsplit('+').next().unwrap().trim_start_matches('0').to_string();
    let validated = |q: &[&str], want: &str| {
        let out = delv(&dir, port, q);
        assert!(out.contains("; fully validated"), "{q:?}: {out}");
        assert!(out.contains(want), "{q:?}: {out}");
        out
    };
    let denied = |q: &[&str]| {
        let out = delv(&dir, port, q);
        assert!(out.contains("; negative response, fully validated"), "{q:?}: {out}");
    };
    // delv asks from 127.0.0.1 without ECS: 127.0.0.0/24 maps to nyc.
    let out = validated(&["www.example.net", "A"], "192.0.2.2");
    assert!(
        out.contains(&format!(" {} example.net.", tag(&zsk1))),
        "signed by the ZSK: {out}"
    );
    validated(&["www.example.net", "AAAA"], "2001:db8::1");
    validated(&["cdn.example.net", "A"], "nyc.pops.example.net.");
    validated(&["static.example.net", "A"], "192.0.2.99");
    validated(&["mail.example.net", "MX"], "mx1.example.net.");
    validated(&["x.wild.example.net", "A"], "192.0.2.77");
    let keys = validated(&["example.net", "DNSKEY"], "DNSKEY");
    assert_eq!(
        keys.matches("IN\tDNSKEY").count(),
        3,
        "KSK, ZSK and the published ZSK: {keys}"
    );
    validated(&["example.net", "CDS"], &ds[ds.find("DS ").unwrap() + 3..][..5]);
    validated(&["secure.example.net", "DS"], "12345 13 2");
    denied(&["nothing.example.net", "A"]);
    denied(&["static.example.net", "TXT"]);
    denied(&["www.example.net", "TXT"]);
    denied(&["x.wild.example.net", "TXT"]);
    denied(&["sub.example.net", "DS"]);

    // ECS: the scope of a signed mapped answer is the policy's.
    let out = dig(&s, &["+dnssec", "+subnet=10.1.2.0/24", "www.example.net", "A"]);
    assert!(out.contains("CLIENT-SUBNET: 10.1.2.0/24/8"), "{out}");
    assert!(out.contains("192.0.2.2") && out.contains("RRSIG\tA 13 3 20"), "{out}");
    // A referral to an unsigned child proves it unsigned; to a signed one
    // carries the DS.
    let out = dig(&s, &["+dnssec", "a.sub.example.net", "A"]);
    assert!(
        out.contains("sub.example.net.\t60\tIN\tNSEC\tsub\\000.example.net. NS RRSIG NSEC"),
        "{out}"
    );
    let out = dig(&s, &["+dnssec", "a.secure.example.net", "A"]);
    assert!(out.contains("IN\tDS\t12345") && out.contains("RRSIG\tDS"), "{out}");
    // Compact denial: NOERROR, or NXDOMAIN with CO echoed when asked for.
    let out = dig(&s, &["+dnssec", "nothing.example.net", "A"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("NSEC\t\\000.nothing.example.net. RRSIG NSEC TYPE128"),
        "{out}"
    );
    assert_eq!(compact_query(port, "nothing.example.net"), (3, 0xc000));
    assert_eq!(compact_query(port, "static.example.net").0, 0);
    // Without DO: no DNSSEC records, NXDOMAIN as ever.
    let out = dig(&s, &["nothing.example.net", "A"]);
    assert!(out.contains("status: NXDOMAIN") && !out.contains("NSEC"), "{out}");

    // A tampered answer does not validate.
    let relay = tampering_relay(port);
    let out = delv(&dir, relay, &["www.example.net", "A"]);
    assert!(
        !out.contains("fully validated") && out.contains("resolution failed"),
        "{out}"
    );

    // unbound validates (AD), ECS on: 127.0.0.0/24 maps to nyc.
    // The unsigned child sub.example.net, served by a second petrel.
    let cdir = common::tempdir("dnssec-child");
    let (cport, cadmin) = (common::free_port(), common::free_port());
    std::fs::write(
        cdir.join("sub.zone"),
        "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.54\nhost IN A 192.0.2.55\n",
    )
    .unwrap();
    let ccfg = cdir.join("petrel.toml");
    std::fs::write(
        &ccfg,
        format!("[server]\ndns = [\"127.0.0.1:{cport}\"]\nadmin = \"127.0.0.1:{cadmin}\"\n[[pop]]\nname = \"ams\"\nipv4 = [\"192.0.2.1\"]\n[[zone]]\norigin = \"sub.example.net.\"\nfile = \"sub.zone\"\n"),
    )
    .unwrap();
    let _child = common::spawn(cdir, &ccfg, cport, cadmin);
    // A validating unbound, ECS on, the DS as its trust anchor.
    let stubs = [("example.net", port), ("sub.example.net", cport)];
    let _u = common::unbound_for(
        &dir,
        (&format!("127.0.0.1@{uport}"), None),
        "example.net",
        &stubs,
        Some(&ds),
    );
    let ask = |q: &[&str]| {
        let p = uport.to_string();
        // Not asserted: unbound may not listen yet.
        let out = Command::new(common::tool("dig"))
            .args([&["@127.0.0.1", "-p", &p, "+time=3", "+tries=2", "+dnssec"], q].concat())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let mut out = String::new();
    for _ in 0..50 {
        out = ask(&["www.example.net", "A"]);
        if out.contains("status: NOERROR") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ad = |o: &str| o.lines().any(|l| l.starts_with(";; flags:") && l.contains(" ad"));
    assert!(ad(&out) && out.contains("192.0.2.2"), "{out}");
    for q in [
        ["cdn.example.net", "A"],
        ["nothing.example.net", "A"],
        ["x.wild.example.net", "A"],
        ["www.example.net", "TXT"],
    ] {
        let o = ask(&q);
        assert!(ad(&o) && !o.contains("SERVFAIL"), "{q:?}: {o}");
    }
    // Below the unsigned delegation: the parent's proof that there is no
    // DS validates, so the child's answer is insecure (no AD), not bogus.
    let o = ask(&["host.sub.example.net", "A"]);
    assert!(
        o.contains("status: NOERROR") && o.contains("192.0.2.55") && !ad(&o),
        "{o}"
    );

    // ZSK rollover: the new ZSK was published; now it signs and the old
    // one stays published. Answers cached with the old signatures and new
    // ones alike validate.
    std::fs::write(&cfg, signed_config(port, admin, &[&ksk, &zsk2], &[&zsk1])).unwrap();
    let (ok, _, err) = common::petrel(&["reload", "--admin", &s.admin.to_string()]);
    assert!(ok, "{err}");
    let out = validated(&["static.example.net", "A"], "192.0.2.99");
    assert!(
        out.contains(&format!(" {} example.net.", tag(&zsk2))),
        "signed by the new ZSK: {out}"
    );
    validated(&["www.example.net", "AAAA"], "2001:db8::1");
    for q in [
        ["static.example.net", "A"],
        ["www.example.net", "AAAA"],
        ["www.example.net", "A"],
    ] {
        let o = ask(&q);
        assert!(ad(&o), "{q:?}: {o}");
    }

    // Ed25519: one combined key (CSK) signs everything.
    let csk = keygen(&dir, "example.net.", &["--ksk", "--algorithm", "ed25519"]);
    std::fs::write(&cfg, signed_config(port, admin, &[&csk], &[])).unwrap();
    let (ok, _, err) = common::petrel(&["reload", "--admin", &s.admin.to_string()]);
    assert!(ok, "{err}");
    write_anchors(&dir, &cfg);
    let out = validated(&["www.example.net", "A"], "192.0.2.2");
    assert!(out.contains("RRSIG\tA 15 3 20"), "{out}");
    validated(&["example.net", "DNSKEY"], "257 3 15");
    denied(&["nothing.example.net", "A"]);
}

const XFR_SECRET: &str = "3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=";

fn xfr_config(port: u16, admin: u16, knot: u16) -> String {
    format!(
        r#"
[server]
dns = ["127.0.0.1:{port}"]
admin = "127.0.0.1:{admin}"

[[tsig]]
name = "xfr."
secret = "{XFR_SECRET}"

[[pop]]
name = "ams"
ipv4 = ["192.0.2.1"]

[[zone]]
origin = "example.net."
file = "example.net.zone"
[zone.transfer]
allow = ["127.0.0.1/32"]
keys = ["xfr."]
notify = ["127.0.0.1:{knot}"]
notify_key = "xfr."

[[service]]
name = "www.example.net."
policy = [{{ type = "priority", pops = ["ams"] }}]
"#
    )
}

/// Knot DNS as a secondary of petrel: it transfers the zone's static data
/// with TSIG at start, and again when a reload changes the serial and
/// petrel sends NOTIFY; a request with the wrong key, without a key, or
/// from a network not allowed is refused.
#[test]
fn knot_secondary_transfers_with_tsig_and_follows_notify() {
    let dir = common::tempdir("xfr");
    let (port, admin, kport) = (common::free_port(), common::free_port(), common::free_port());
    // Large enough to take several messages, each signed over the last.
    let bulk: String = (0..3000)
        .map(|i| format!("h{i} IN TXT \"host {i} of the transfer, padded to take some room\"\n"))
        .collect();
    let zone = format!("{SIGNED_ZONE}{bulk}");
    std::fs::write(dir.join("example.net.zone"), &zone).unwrap();
    let cfg = dir.join("petrel.toml");
    std::fs::write(&cfg, xfr_config(port, admin, kport)).unwrap();
    let s = common::spawn(dir.clone(), &cfg, port, admin);
    let kdir = dir.join("knot");
    std::fs::create_dir_all(&kdir).unwrap();
    std::fs::write(
        kdir.join("knot.conf"),
        format!(
            r#"server:
    listen: 127.0.0.1@{kport}
    rundir: "{k}"
database:
    storage: "{k}"
log:
  - target: stderr
    any: info
key:
  - id: xfr.
    algorithm: hmac-sha256
    secret: {XFR_SECRET}
remote:
  - id: petrel
    address: 127.0.0.1@{port}
    key: xfr.
acl:
  - id: from_petrel
    address: 127.0.0.1
    key: xfr.
    action: notify
zone:
  - domain: example.net
    storage: "{k}"
    file: example.net.zone
    master: petrel
    acl: from_petrel
"#,
            k = kdir.display()
        ),
    )
    .unwrap();
    let klog = std::fs::File::create(kdir.join("knot.log")).unwrap();
    let _knot = common::Kill(
        Command::new(common::tool("knotd"))
            .args(["-c", kdir.join("knot.conf").to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(klog)
            .spawn()
            .unwrap(),
    );
    let at_knot = |name: &str| {
        let out = Command::new(common::tool("dig"))
            .args([
                "@127.0.0.1",
                "-p",
                &kport.to_string(),
                "+short",
                "+time=1",
                "+tries=1",
                name,
                "A",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let wait = |name: &str, want: &str| {
        let t0 = Instant::now();
        while at_knot(name) != want {
            let log = std::fs::read_to_string(kdir.join("knot.log")).unwrap_or_default();
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "knot never served {name} {want}: {log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait("static.example.net", "192.0.2.99");
    let txt = Command::new(common::tool("dig"))
        .args([
            "@127.0.0.1",
            "-p",
            &kport.to_string(),
            "+short",
            "h2999.example.net",
            "TXT",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&txt.stdout).contains("host 2999"));
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("outcome=axfr records=3011 messages=4"), "{log}");
    // What petrel makes (the service) is not zone data.
    assert_eq!(at_knot("www.example.net"), "");

    // A new serial: reload, NOTIFY, and Knot transfers again.
    std::fs::write(
        dir.join("example.net.zone"),
        zone.replace("hostmaster 1 ", "hostmaster 2 ") + "new IN A 192.0.2.100\n",
    )
    .unwrap();
    let (ok, _, err) = common::petrel(&["reload", "--admin", &s.admin.to_string()]);
    assert!(ok, "{err}");
    wait("new.example.net", "192.0.2.100");
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("NOTIFY answered") && log.contains("serial=2"), "{log}");
    assert!(
        log.contains("outcome=ixfr (incremental) records=5"),
        "Knot asks IXFR after NOTIFY and gets the difference: {log}"
    );

    // kdig with the key transfers; a wrong key, no key or another network do not.
    let p = port.to_string();
    let kdig = |args: &[&str]| {
        let out = Command::new(common::tool("kdig"))
            .args(
                [
                    &["@127.0.0.1", "-p", &p, "+time=2", "+retry=0"],
                    args,
                    &["example.net", "AXFR"],
                ]
                .concat(),
            )
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let good = kdig(&["-y", &format!("hmac-sha256:xfr.:{XFR_SECRET}")]);
    assert!(good.contains("new.example.net.") && good.contains("TSIG"), "{good}");
    // Delegations and their glue are zone data too.
    assert!(
        good.contains("ns.sub.example.net.") && good.contains("192.0.2.54"),
        "{good}"
    );
    assert!(!good.contains("www.example.net."), "{good}");
    let bad = kdig(&["-y", "hmac-sha256:xfr.:b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVyb3Q="]);
    assert!(bad.contains("NOTAUTH") || bad.contains("BADSIG"), "{bad}");
    assert!(!bad.contains("new.example.net.\t"), "{bad}");
    let none = kdig(&[]);
    assert!(none.contains("REFUSED"), "{none}");
    let other = kdig(&["-b", "127.0.0.2", "-y", &format!("hmac-sha256:xfr.:{XFR_SECRET}")]);
    assert!(other.contains("REFUSED"), "{other}");
}
