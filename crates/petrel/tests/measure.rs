//! The measurement loop against a running server: latency imported through
//! the admin API changes DNS answers (dig with ECS) for the measured network
//! only, after the next recompile, and explain shows the samples.

// Tests of the running binary time it from outside.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const AMS: &str = "192.0.2.10";
const IAD: &str = "198.51.100.10";

/// The demo with the latency policy first for www, recompiling every
/// second.
fn server(tag: &str) -> Server {
    let dir = tempdir(tag);
    let (port, admin) = (free_port(), free_port());
    // Fixed /24 units: the demo's synthetic routes are /10s, which would
    // put both networks of these tests in one unit (BGP units are tested
    // with GoBGP's routes below).
    let cfg = write_config(
        &dir,
        port,
        admin,
        "[measure]\nrecompile_secs = 1\nmin_samples = 5\nunit = \"fixed\"\n",
    );
    latency_first(&cfg);
    spawn(dir, &cfg, port, admin)
}

/// The demo's www service with the latency policy before geography.
fn latency_first(cfg: &std::path::Path) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let geo = "  { type = \"geo-nearest\" },\n  { type = \"priority\", pops = [\"ams\", \"iad\", \"sin\", \"gru\"] },";
    assert!(text.contains(geo));
    let text = text.replacen(geo, &format!("  {{ type = \"latency\" }},\n{geo}"), 1);
    std::fs::write(cfg, text).unwrap();
}

fn answer(s: &Server, subnet: &str) -> String {
    dig(
        s,
        &["+short", &format!("+subnet={subnet}"), "www.demo.petrel.test", "A"],
    )
    .trim()
    .to_string()
}

/// POST a body to the admin API with curl; the response body.
fn post(s: &Server, path: &str, body: &str) -> String {
    let f = s.dir.join("import.jsonl");
    std::fs::write(&f, body).unwrap();
    let out = Command::new(tool("curl"))
        .args(["-s", "--max-time", "10", "--data-binary"])
        .arg(format!("@{}", f.display()))
        .arg(format!("http://{}{path}", s.admin))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn imported_latency_moves_the_measured_network_and_no_other() {
    let s = server("measure-policy");
    // New York (GeoIP): iad, the nearest.
    assert_eq!(answer(&s, "23.1.0.0/24"), IAD);
    assert_eq!(answer(&s, "23.1.5.0/24"), IAD);
    // 23.1.0.0/24 measures ams much faster than iad (a peering geography
    // does not know); 23.1.5.0/24 is measured at iad only (one POP is not
    // enough to rank); junk is refused and counted.
    let mut lines = String::new();
    for i in 0..20 {
        lines.push_str(&format!(
            "{{\"client\":\"23.1.0.{i}\",\"pop\":\"ams\",\"rtt_ms\":{}}}\n",
            18 + i % 5
        ));
        lines.push_str(&format!(
            "{{\"client\":\"23.1.0.{i}\",\"pop\":\"iad\",\"rtt_us\":{}}}\n",
            88_000 + i * 100
        ));
        lines.push_str(&format!(
            "{{\"client\":\"23.1.5.{i}\",\"pop\":\"iad\",\"rtt_ms\":30}}\n"
        ));
    }
    lines.push_str("not json\n{\"client\":\"23.1.0.1\",\"pop\":\"lax\",\"rtt_ms\":5}\n{\"client\":\"23.1.0.1\",\"pop\":\"ams\",\"rtt_ms\":-5}\n");
    let r: serde_json::Value = serde_json::from_str(&post(&s, "/api/v1/measure/import", &lines)).unwrap();
    assert_eq!(r["accepted"], 60, "{r}");
    assert_eq!(r["refused"]["malformed"], 1, "{r}");
    assert_eq!(r["refused"]["unknown_pop"], 1, "{r}");
    assert_eq!(r["refused"]["impossible_value"], 1, "{r}");

    // After the next recompile (every second): the measured network moves.
    let t0 = Instant::now();
    while answer(&s, "23.1.0.0/24") != AMS {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the measured network did not move"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(answer(&s, "23.1.5.0/24"), IAD, "measured at one POP only");
    assert_eq!(answer(&s, "23.1.9.0/24"), IAD, "not measured");
    // The ECS scope is the measured unit's.
    let full = dig(&s, &["+subnet=23.1.0.0/24", "www.demo.petrel.test", "A"]);
    assert!(full.contains("CLIENT-SUBNET: 23.1.0.0/24/24"), "{full}");

    let out = explain_admin(&s, "www.demo.petrel.test", "23.1.0.7").unwrap();
    assert!(out.contains("latency      unit 23.1.0.0/24: ams 20 ms"), "{out}");
    assert!(out.contains("iad 88 ms (86-90, 20 samples)"), "{out}");
    assert!(out.contains("answer: ams"), "{out}");
    let out = explain_admin(&s, "www.demo.petrel.test", "23.1.5.7").unwrap();
    assert!(out.contains("not enough measurements for the client's unit"), "{out}");

    let (_, metrics) = http(s.admin, "GET", "/metrics");
    assert!(metrics.contains("petrel_measure_samples_total 60"), "{metrics}");
    assert!(
        metrics.contains("petrel_measure_refused_total{reason=\"unknown_pop\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("petrel_measure_ranked_units 1"), "{metrics}");
    // Per POP and kind: a histogram, and the recent median.
    assert!(
        metrics.contains("petrel_measure_rtt_seconds_count{pop=\"ams\",kind=\"import\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("petrel_measure_rtt_seconds_bucket{le=\"0.02\",pop=\"ams\",kind=\"import\"} 12"),
        "{metrics}"
    );
    let median: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("petrel_measure_rtt_median_seconds{pop=\"ams\"} "))
        .expect("ams's median")
        .parse()
        .unwrap();
    assert!((median - 0.020).abs() < 0.0015, "{median}");
}

/// unbound as the browser's recursive resolver on 127.0.0.9:53, with the
/// demo zone stubbed to petrel and ECS sent to it.
fn browser_resolver(s: &Server) -> Kill {
    let k = unbound(&s.dir, "127.0.0.9@53", Some("127.0.0.9"), s.port);
    let t0 = Instant::now();
    loop {
        let out = Command::new(tool("dig"))
            .args([
                "@127.0.0.9",
                "+time=1",
                "+tries=1",
                "+short",
                "www.demo.petrel.test",
                "A",
            ])
            .output()
            .unwrap();
        if out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return k;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "unbound does not answer: {}",
            std::fs::read_to_string(s.dir.join("unbound.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Serve `dir` over HTTP on 127.0.0.1:`port` (Python's server, from
/// Debian's python3): the page that includes the tag.
struct PageServer(std::process::Child);

impl Drop for PageServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_rum_tag_measures_each_pop_from_a_real_browser() {
    let Some(chromium) = ["chromium", "chromium-browser"].iter().map(|c| tool(c)).find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        panic!("chromium is missing: scripts/test installs it (apt-get install chromium)");
    };
    let dir = tempdir("measure-rum");
    let (port, admin, front, page) = (free_port(), free_port(), free_port(), free_port());
    // Each POP's beacon object is served by its own front on its own
    // loopback address; the collector is the first front.
    let extra = format!(
        r#"
[measure]
recompile_secs = 1
min_samples = 1
database = "{db}"

[measure.rum]
url = "http://{{pop}}.rum.test:{front}/rum/o"
collector = "http://collector.rum.test:{front}/rum/beacon"
sample_percent = 100
pops = ["ams", "iad", "sin"]
whoami_url = "http://{{id}}.whoami.demo.petrel.test:{front}/rum/o"
whoami_addresses = ["127.0.0.1"]

[[http]]
name = "ams"
listen = ["127.0.0.1:{front}"]
rum = true

[[http]]
name = "iad"
listen = ["127.0.0.2:{front}"]
rum = true

[[http]]
name = "sin"
listen = ["127.0.0.3:{front}"]
rum = true
"#,
        db = dir.join("measure.db").display()
    );
    let cfg = write_config(&dir, port, admin, &extra);
    latency_first(&cfg);
    let s = spawn(dir.clone(), &cfg, port, admin);
    // The DNS side of resolver discovery, asked directly: a unique name
    // resolves (TTL 0), its parent exists, a name that is no id does not.
    let w = dig(&s, &["+noall", "+answer", "abcd1234efgh.whoami.demo.petrel.test", "A"]);
    let fields: Vec<&str> = w.split_whitespace().collect();
    assert_eq!(fields[1..], ["0", "IN", "A", "127.0.0.1"], "{w}");
    let w = dig(&s, &["whoami.demo.petrel.test", "A"]);
    assert!(w.contains("status: NOERROR") && w.contains("ANSWER: 0"), "{w}");
    let w = dig(&s, &["not_an-id.whoami.demo.petrel.test", "A"]);
    assert!(w.contains("status: NXDOMAIN"), "{w}");
    // The browser's resolver: unbound on 127.0.0.9:53, querying petrel
    // from that address with the client's /24 as ECS.
    let _unbound = browser_resolver(&s);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("index.html"),
        format!("<!doctype html><title>t</title><p>page</p><script src=\"http://collector.rum.test:{front}/rum.js\"></script>\n"),
    )
    .unwrap();
    let _page = PageServer(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &page.to_string()])
            .current_dir(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", page)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the page server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = s.dir.join("chromium-profile");
    // Chromium in a mount namespace of its own where /etc/resolv.conf names
    // unbound: the whoami name goes through a real recursive resolver. The
    // other names are mapped to loopback by host-resolver-rules.
    let resolv = s.dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.9\noptions timeout:2 attempts:3\n").unwrap();
    let out = Command::new(tool("unshare"))
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/resolv.conf && shift && exec \"$@\"")
        .arg("sh")
        .arg(&resolv)
        .arg(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--host-resolver-rules=MAP ams.rum.test 127.0.0.1, MAP collector.rum.test 127.0.0.1, MAP iad.rum.test 127.0.0.2, MAP sin.rum.test 127.0.0.3, MAP www.rum.test 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://www.rum.test:{page}/index.html"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("page"),
        "chromium did not load the page: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One beacon with three POPs measured, from 127.0.0.1: its unit is
    // 127.0.0.0/24, ranked once recompiled.
    let t0 = Instant::now();
    loop {
        let (_, metrics) = http(s.admin, "GET", "/metrics");
        if metrics.contains("petrel_measure_samples_total 3") && metrics.contains("petrel_measure_ranked_units 1") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no beacon arrived: {}\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("measure"))
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, metrics) = http(s.admin, "GET", "/metrics");
    assert!(
        !metrics.contains("petrel_measure_refused_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    // The samples are sane: each POP measured once, a loopback RTT well
    // under a second; explain shows them for the browser's unit.
    let out = explain_admin(&s, "www.demo.petrel.test", "127.0.0.1").unwrap();
    let step = out
        .lines()
        .find(|l| l.contains("latency      unit 127.0.0.0/24:"))
        .unwrap_or_else(|| panic!("{out}"));
    for pop in ["ams", "iad", "sin"] {
        let ms: f64 = step
            .split(&format!("{pop} "))
            .nth(1)
            .and_then(|r| r.split(" ms").next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{pop} not measured: {step}"));
        // Loopback: under a second, and often under a tenth of a ms.
        assert!((0.0..1000.0).contains(&ms), "{pop}: {ms} ms: {step}");
    }
    assert!(step.contains("1 samples"), "{step}");
    // The whoami join: the browser (127.0.0.1) and the resolver that asked
    // for its beacon's name (unbound, from 127.0.0.9, with ECS).
    let t0 = Instant::now();
    let r = loop {
        let (_, raw) = http(s.admin, "GET", "/api/v1/measure/resolvers?since=1h");
        let v: serde_json::Value = serde_json::from_str(&raw[raw.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        if v["resolvers"].as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no join: {v}\n{}",
            std::fs::read_to_string(s.dir.join("unbound.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let row = &r["resolvers"][0];
    assert_eq!(row["resolver"], "127.0.0.9", "{r}");
    assert_eq!(row["beacons"], 1, "{r}");
    assert_eq!(row["ecs_share"], 1.0, "{r}");
    assert_eq!(row["top_client_units"], serde_json::json!(["127.0.0.0/24"]), "{r}");
    let (ok, out, err) = petrel(&["measure", "top", "--by", "resolver", "--admin", &s.admin.to_string()]);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("127.0.0.9 ") && l.contains(" ams ")),
        "{out}"
    );
    // A beacon that is not one: refused, counted, nothing kept.
    let refused = Command::new(tool("curl"))
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            "{\"v\":1,\"m\":[{\"p\":\"ams\",\"d\":-4}]}",
        ])
        .arg(format!("http://127.0.0.1:{front}/rum/beacon"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "400");
    let (_, metrics) = http(s.admin, "GET", "/metrics");
    assert!(
        metrics.contains("petrel_measure_refused_total{reason=\"impossible_value\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("petrel_measure_samples_total 3"), "{metrics}");
}

#[test]
fn a_network_that_gets_slower_opens_alerts_and_recovery_closes_them() {
    let dir = tempdir("measure-alerts");
    let (port, admin) = (free_port(), free_port());
    let cfg = write_config(
        &dir,
        port,
        admin,
        "[measure]\nrecompile_secs = 1\nunit = \"fixed\"\n\n[measure.alerts]\nopen_after_secs = 1\nclose_after_secs = 1\ncurrent_half_life_secs = 60\nmin_current_samples = 5\n",
    );
    let s = spawn(dir, &cfg, port, admin);
    // Samples take their origin AS from the routing views: import once
    // they are in.
    let t0 = Instant::now();
    while common::http(s.admin, "GET", "/api/v1/ready").0 != 200 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the demo's views never came in");
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = unix_now();
    let lines =
        |n: u32, rtt_ms: u32, ago_s: f64| import_lines(n, rtt_ms, now - ago_s, |i| format!("23.1.0.{}", i % 200));
    let alerts = || alerts_of(&s);
    // Ten minutes of normal: 30 ms from 23.1.0.0/24 to iad.
    post(&s, "/api/v1/measure/import", &lines(200, 30, 600.0));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(alerts()["open"], serde_json::json!([]), "normal: no alert");
    // Now 120 ms: one alert, once the slowness has lasted a second.
    post(&s, "/api/v1/measure/import", &lines(60, 120, 1.0));
    let t0 = Instant::now();
    let a = loop {
        let a = alerts();
        if a["open"].as_array().is_some_and(|o| o.len() >= 2) {
            break a;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no alert opened: {a}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // One for the unit, one for its origin AS in the demo's views.
    let open = &a["open"][1];
    assert_eq!(
        (open["by"].as_str(), open["key"].as_str(), open["pop"].as_str()),
        (Some("unit"), Some("23.1.0.0/24"), Some("iad")),
        "{a}"
    );
    assert_eq!(a["open"][0]["key"], "AS4200000040", "{a}");
    assert!((open["baseline_ms"].as_f64().unwrap() - 31.0).abs() < 2.0, "{a}");
    assert!(open["current_ms"].as_f64().unwrap() > 100.0, "{a}");
    assert_eq!(a["open"].as_array().unwrap().len(), 2, "{a}");
    // Back to 30 ms: closed after a second of normal.
    post(&s, "/api/v1/measure/import", &lines(300, 30, 0.5));
    let t0 = Instant::now();
    loop {
        let a = alerts();
        if a["open"] == serde_json::json!([]) {
            let events: Vec<&str> = a["recent"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(events, ["opened", "opened", "closed", "closed"], "{a}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the alert did not close: {a}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("latency alert opened"), "{log}");
    let (_, m) = http(s.admin, "GET", "/metrics");
    assert!(m.contains("petrel_measure_alerts_opened_total 2"), "{m}");
    assert!(m.contains("petrel_measure_alerts_open{by=\"unit\"} 0"), "{m}");
}

/// POST one beacon on a keep-alive connection; the status, or None when
/// the connection broke.
fn send_beacon(c: &mut std::net::TcpStream, id: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let body = format!("{{\"v\":1,\"id\":\"{id}\",\"m\":[{{\"p\":\"ams\",\"d\":12.5}},{{\"p\":\"iad\",\"d\":80}}]}}");
    let req = format!(
        "POST /rum/beacon HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).ok()?;
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&got).split_whitespace().nth(1)?.parse().ok()
}

/// Where a durability run keeps its samples.
enum Store {
    Sqlite(std::path::PathBuf),
    /// A ClickHouse server's HTTP port.
    Clickhouse(u16),
}

impl Store {
    fn config(&self) -> String {
        match self {
            Store::Sqlite(db) => format!("database = \"{}\"\n", db.display()),
            Store::Clickhouse(port) => {
                format!("\n[measure.clickhouse]\nurl = \"http://127.0.0.1:{port}\"\ndatabase = \"petrel_test\"\n")
            }
        }
    }

    /// Samples stored per beacon id.
    fn beacons(&self) -> std::collections::HashMap<String, i64> {
        match self {
            Store::Sqlite(db) => {
                let conn = rusqlite::Connection::open(db).unwrap();
                let mut st = conn
                    .prepare("SELECT beacon, count(*) FROM samples WHERE beacon IS NOT NULL GROUP BY beacon")
                    .unwrap();
                let out = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                out
            }
            Store::Clickhouse(port) => {
                let out = Command::new(tool("curl"))
                    .args(["-sf", "--max-time", "20", "--data-binary"])
                    .arg("SELECT beacon, count() FROM petrel_test.samples WHERE isNotNull(beacon) GROUP BY beacon FORMAT TabSeparated")
                    .arg(format!("http://127.0.0.1:{port}/"))
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(b, n)| (b.to_string(), n.parse().unwrap()))
                    .collect()
            }
        }
    }
}

/// A ClickHouse server (Debian's `clickhouse-server`) of its own on
/// loopback, its data in `dir`; its HTTP port.
fn clickhouse_server(dir: &std::path::Path) -> (Kill, u16) {
    let (http_port, tcp_port) = (free_port(), free_port());
    let d = dir.join("clickhouse");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("users.xml"),
        r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#,
    )
    .unwrap();
    std::fs::write(
        d.join("config.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>104857600</mark_cache_size>
</yandex>
"#,
            d = d.display()
        ),
    )
    .unwrap();
    let server = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("clickhouse-server is missing: scripts/test installs it (apt-get install clickhouse-server)");
    let log = std::fs::File::create(d.join("server.log")).unwrap();
    let k = Kill(
        Command::new(server)
            .arg(format!("--config-file={}", d.join("config.xml").display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    while std::net::TcpStream::connect(addr).is_err() || http(addr, "GET", "/ping").0 != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "clickhouse-server did not start: {}",
            std::fs::read_to_string(d.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (k, http_port)
}

#[test]
fn every_acknowledged_beacon_survives_kill_9() {
    let dir = tempdir("measure-durable");
    let db = dir.join("measure.db");
    durability(dir, &Store::Sqlite(db));
}

#[test]
fn every_acknowledged_beacon_survives_kill_9_in_clickhouse() {
    let dir = tempdir("measure-durable-ch");
    let (_ch, port) = clickhouse_server(&dir);
    durability(dir, &Store::Clickhouse(port));
}

/// Beacons under load, petrel killed with SIGKILL: every acknowledged one
/// is in the store; restarted, petrel rebuilds its aggregates from it and
/// answers queries over it.
fn durability(dir: std::path::PathBuf, store: &Store) {
    let (port, admin, front) = (free_port(), free_port(), free_port());
    let extra = format!(
        "[measure]\nrecompile_secs = 1\n{}\n[measure.rum]\nurl = \"http://{{pop}}.rum.test/rum/o\"\n\n[[http]]\nname = \"collector\"\nlisten = [\"127.0.0.1:{front}\"]\nrum = true\n",
        store.config()
    );
    let cfg = write_config(&dir, port, admin, &extra);
    let mut s = spawn(dir.clone(), &cfg, port, admin);
    // Four clients post beacons as fast as they are answered; petrel is
    // killed (SIGKILL) in the middle.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|k| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", front)) else {
                    return acked;
                };
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                for i in 0..20_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("beacon{k}x{i:06}");
                    match send_beacon(&mut c, &id) {
                        Some(204) => acked.push(id),
                        Some(other) => panic!("beacon {id}: status {other}"),
                        None => break,
                    }
                }
                acked
            })
        })
        .collect();
    let t0 = Instant::now();
    loop {
        let (_, m) = http(s.admin, "GET", "/metrics");
        let n: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("petrel_measure_samples_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if n >= 1000 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "beacons are not coming in: {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<String> = senders.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(acked.len() >= 200, "only {} beacons acknowledged", acked.len());
    eprintln!("{} beacons acknowledged before SIGKILL", acked.len());
    // Every acknowledged beacon is in the warehouse, both of its samples.
    let stored = store.beacons();
    let missing: Vec<&String> = acked.iter().filter(|id| stored.get(*id) != Some(&2)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged beacons lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // Restarted, petrel rebuilds its aggregates from the warehouse.
    let s = spawn(dir.clone(), &cfg, port, admin);
    let (_, m) = http(s.admin, "GET", "/metrics");
    assert!(
        m.contains("petrel_measure_units 1"),
        "{}",
        m.lines()
            .filter(|l| l.contains("measure"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("measurements restored"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "no colour codes in a log that is not a terminal: {log}"
    );
    // And answers from it: every stored sample is 127.0.0.1's.
    let (ok, out, err) = petrel(&[
        "measure",
        "top",
        "--by",
        "prefix",
        "--json",
        "--admin",
        &s.admin.to_string(),
    ]);
    assert!(ok, "{err}");
    let top: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total: u64 = top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["samples"].as_u64().unwrap())
        .sum();
    let stored_samples: i64 = stored.values().sum();
    assert_eq!(total as i64, stored_samples, "{out}");
    assert_eq!(top["rows"][0]["key"], "127.0.0.0/24", "{out}");
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `n` import lines to iad from `client(i)`, a millisecond apart from
/// `from` (Unix seconds), at `rtt_ms` give or take 2.
fn import_lines(n: u32, rtt_ms: u32, from: f64, client: impl Fn(u32) -> String) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"time\":{:.3},\"client\":\"{}\",\"pop\":\"iad\",\"rtt_ms\":{}}}\n",
                from + f64::from(i) * 0.001,
                client(i),
                rtt_ms + i % 3
            )
        })
        .collect()
}

fn alerts_of(s: &Server) -> serde_json::Value {
    let (_, raw) = http(s.admin, "GET", "/api/v1/alerts");
    serde_json::from_str(&raw[raw.find("\r\n\r\n").unwrap() + 4..]).unwrap()
}

/// A webhook receiver: every request body, answered 200.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            let mut head = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
                line.clear();
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            assert!(head.starts_with("POST /hooks HTTP/1.1"), "{head}");
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// Routes from GoBGP give the clients their BGP prefix (the map unit) and
/// origin AS; a change of the best path is recorded; when that AS gets
/// slower to the POP, an alert opens for the AS and for its prefix, with
/// the path change in its context, and both go to the webhook; recovery
/// closes them.
#[test]
fn an_as_that_gets_slower_opens_an_alert_showing_the_path_change_before_it() {
    use common::routers::{gobgp_cli, gobgpd, wait_for};
    let n = 24;
    let dir = tempdir("measure-asn-alerts");
    let (port, admin, gport, api) = (free_port(), free_port(), free_port(), free_port());
    let (hook, events) = webhook_receiver();
    let db = dir.join("measure.db");
    // Clients' reverse DNS, from petrel itself: a reverse zone naming
    // every 100.70/16 address.
    std::fs::write(
        dir.join("reverse.zone"),
        "$TTL 3600\n@ IN SOA ns1.demo.petrel.test. hostmaster.demo.petrel.test. 1 7200 3600 1209600 300\n@ IN NS ns1.demo.petrel.test.\n* IN PTR client.isp.example.\n",
    )
    .unwrap();
    let cfg = write_config(
        &dir,
        port,
        admin,
        &format!(
            r#"
[[bgp.peer]]
name = "gobgp"
pop = "iad"
address = "127.{n}.0.4"
port = {gport}
asn = 4200000040
connect_retry_secs = 1

[[zone]]
origin = "70.100.in-addr.arpa."
file = "reverse.zone"

[measure]
recompile_secs = 1
database = "{db}"
reverse_dns = "127.0.0.1:{port}"

[measure.alerts]
open_after_secs = 1
close_after_secs = 1
current_half_life_secs = 60
min_current_samples = 5
webhook = "http://127.0.0.1:{hook}/hooks"
"#,
            db = db.display()
        ),
    );
    let s = spawn(dir, &cfg, port, admin);
    let _g = gobgpd(&s.dir, n, gport, api);
    gobgp_cli(
        api,
        &["global", "rib", "add", "100.70.0.0/16", "aspath", "64500", "-a", "ipv4"],
    );
    let prefixes = || -> u64 {
        let (_, raw) = http(s.admin, "GET", "/api/v1/bgp/summary");
        let v: serde_json::Value = serde_json::from_str(&raw[raw.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "gobgp")
            .and_then(|p| p["prefixes"].as_u64())
            .unwrap_or(0)
    };
    // GoBGP sends no End-of-RIB: its table is taken as whole once quiet
    // (3 s), then published within the demo's batch (1 s).
    let synced = || {
        let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
        log.lines()
            .any(|l| l.contains("initial routes received") && l.contains("gobgp"))
    };
    wait_for("GoBGP's route", Duration::from_secs(30), || prefixes() == 1 && synced());
    std::thread::sleep(Duration::from_millis(1500));
    let now = unix_now();
    let lines = |n: u32, rtt_ms: u32, ago_s: f64| {
        import_lines(n, rtt_ms, now - ago_s, |i| format!("100.70.{}.{}", i % 7, i % 200))
    };
    let alerts = || alerts_of(&s);
    post(&s, "/api/v1/measure/import", &lines(200, 30, 600.0));
    std::thread::sleep(Duration::from_millis(1500));
    // The path changes: GoBGP now reaches AS 64500 through AS 64510.
    gobgp_cli(
        api,
        &[
            "global",
            "rib",
            "add",
            "100.70.0.0/16",
            "aspath",
            "64510,64500",
            "-a",
            "ipv4",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    post(&s, "/api/v1/measure/import", &lines(60, 120, 1.0));
    let t0 = Instant::now();
    let a = loop {
        let a = alerts();
        if a["open"].as_array().is_some_and(|o| o.len() >= 2) {
            break a;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no alerts opened: {a}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let open = a["open"].as_array().unwrap();
    let keys: Vec<(&str, &str, &str)> = open
        .iter()
        .map(|o| {
            (
                o["by"].as_str().unwrap(),
                o["key"].as_str().unwrap(),
                o["pop"].as_str().unwrap(),
            )
        })
        .collect();
    // The unit is the BGP prefix, not a /24.
    assert_eq!(
        keys,
        [("asn", "AS64500", "iad"), ("unit", "100.70.0.0/16", "iad")],
        "{a}"
    );
    let change = serde_json::json!({
        "view": "iad",
        "prefix": "100.70.0.0/16",
        "old_path": "4200000040 64500",
        "new_path": "4200000040 64510 64500",
    });
    // Both contexts end with that change (the route's announcement
    // precedes it).
    for o in open {
        let ch = o["path_changes"].as_array().unwrap();
        let last = ch.last().expect("a path change in the context");
        for k in ["view", "prefix", "old_path", "new_path"] {
            assert_eq!(last[k], change[k], "{a}");
        }
    }
    // The webhook heard both openings, with their context.
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let e = events.recv_timeout(Duration::from_secs(10)).expect("webhook event");
        heard.push(e);
    }
    for e in &heard {
        assert_eq!(e["event"], "opened", "{e}");
        let ch = e["path_changes"].as_array().unwrap();
        assert_eq!(ch.last().unwrap()["new_path"], change["new_path"], "{e}");
    }
    // Recovery closes both, and the webhook hears it.
    post(&s, "/api/v1/measure/import", &lines(300, 30, 0.5));
    wait_for("the alerts to close", Duration::from_secs(10), || {
        alerts()["open"] == serde_json::json!([])
    });
    for _ in 0..2 {
        let e = events.recv_timeout(Duration::from_secs(10)).expect("webhook event");
        assert_eq!(e["event"], "closed", "{e}");
    }
    // The warehouse has the path change, and samples with their AS.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (view, prefix, old, new): (String, String, String, String) = conn
        .query_row(
            "SELECT view, prefix, old_path, new_path FROM path_changes WHERE new_path LIKE '% 64510 %'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (view.as_str(), prefix.as_str(), old.as_str(), new.as_str()),
        ("iad", "100.70.0.0/16", "4200000040 64500", "4200000040 64510 64500")
    );
    let with_as: i64 = conn
        .query_row(
            "SELECT count(*) FROM samples WHERE asn = 64500 AND unit = '100.70.0.0/16'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(with_as, 560);
    // Samples of clients seen before carry their reverse DNS name (a
    // client's first sample started its lookup): all 60 slow ones and 200
    // of the 300 after them; the baseline's and 100 new clients' not.
    let named: i64 = conn
        .query_row(
            "SELECT count(*) FROM samples WHERE rdns = 'client.isp.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(named, 260);
    // What the warehouse says by AS and by prefix.
    let admin = s.admin.to_string();
    let (ok, out, err) = petrel(&["measure", "top", "--by", "asn", "--since", "5m", "--admin", &admin]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("AS64500 "))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // The 200 baseline samples are ten minutes old: not in the last five.
    assert_eq!(&cols[..4], ["AS64500", "iad", "360", "300"], "{out}");
    let (ok, out, err) = petrel(&[
        "measure", "top", "--by", "prefix", "--pop", "iad", "--since", "2h", "--json", "--admin", &admin,
    ]);
    assert!(ok, "{err}");
    let top: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = &top["rows"][0];
    assert_eq!(
        (row["key"].as_str(), row["samples"].as_u64()),
        (Some("100.70.0.0/16"), Some(560)),
        "{out}"
    );
    assert!((row["median_ms"].as_f64().unwrap() - 31.0).abs() < 1.5, "{out}");
    let (ok, out, err) = petrel(&["measure", "top", "--by", "rdns", "--admin", &admin]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("client.isp.example ")), "{out}");
    let (ok, _, err) = petrel(&["measure", "top", "--by", "colour", "--admin", &admin]);
    assert!(
        !ok && err.contains("parameter `by` must be one of asn, prefix"),
        "{err}"
    );
}

/// Complete hours are rolled up (at start and hourly); a span that
/// reaches past the raw samples' retention is answered from the roll-ups.
#[test]
fn hourly_rollups_answer_for_spans_past_the_raw_retention() {
    let dir = tempdir("measure-rollups");
    let (port, admin) = (free_port(), free_port());
    let db = dir.join("measure.db");
    let cfg = write_config(
        &dir,
        port,
        admin,
        &format!(
            "[measure]\nunit = \"fixed\"\nretention_days = 1\ndatabase = \"{}\"\n",
            db.display()
        ),
    );
    let s = spawn(dir.clone(), &cfg, port, admin);
    let now = unix_now();
    let client = |i: u32| format!("23.1.0.{}", i % 50);
    post(
        &s,
        "/api/v1/measure/import",
        &import_lines(100, 30, now - 7200.0, client),
    );
    post(
        &s,
        "/api/v1/measure/import",
        &import_lines(50, 50, now - 10_800.0, client),
    );
    drop(s);
    // Restarted: the two past hours are rolled up.
    let s = spawn(dir.clone(), &cfg, port, admin);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (samples, clients): (i64, i64) = conn
        .query_row(
            "SELECT sum(samples), max(clients) FROM samples_hourly WHERE pop = 'iad'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((samples, clients), (150, 50));
    let admin = s.admin.to_string();
    let (ok, out, err) = petrel(&[
        "measure", "top", "--by", "prefix", "--since", "2d", "--json", "--admin", &admin,
    ]);
    assert!(ok, "{err}");
    let top: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(top["from_rollups"], true, "{out}");
    let row = &top["rows"][0];
    assert_eq!(
        (row["key"].as_str(), row["samples"].as_u64()),
        (Some("23.1.0.0/24"), Some(150)),
        "{out}"
    );
    // Sample-weighted: (100 x 31 + 50 x 51) / 150.
    assert!((row["median_ms"].as_f64().unwrap() - 37.7).abs() < 1.0, "{out}");
    // The last hour, from the raw samples: nothing.
    let (ok, out, _) = petrel(&[
        "measure", "top", "--by", "prefix", "--since", "1h", "--json", "--admin", &admin,
    ]);
    assert!(ok);
    let top: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (top["from_rollups"].as_bool(), top["rows"].as_array().map(Vec::len)),
        (Some(false), Some(0)),
        "{out}"
    );
    let (ok, _, err) = petrel(&["measure", "top", "--by", "rdns", "--since", "2d", "--admin", &admin]);
    assert!(!ok && err.contains("raw samples only"), "{err}");
}

/// nginx, configured as `examples/nginx-rtt.conf` says, logs its
/// connections' RTTs; the log as it is imports into petrel.
#[test]
fn nginx_logs_connection_rtts_that_petrel_imports() {
    let s = server("measure-nginx");
    let dir = s.dir.join("nginx");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "page\n").unwrap();
    let port = free_port();
    let example =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nginx-rtt.conf"))
            .unwrap();
    let d = dir.display().to_string();
    let conf = example
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("root /var/www/html;", &format!("root {d}/www;"))
        .replace("/var/log/nginx/rtt.jsonl", &format!("{d}/rtt.jsonl"))
        .replace(
            "http {",
            &format!("http {{\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;"),
        );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let _nginx = nginx(&dir, port);
    for _ in 0..5 {
        let out = Command::new(tool("curl"))
            .args(["-s", &format!("http://127.0.0.1:{port}/index.html")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "page\n");
    }
    let log = std::fs::read_to_string(dir.join("rtt.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 5, "{log}");
    let r: serde_json::Value = serde_json::from_str(&post(&s, "/api/v1/measure/import", &log)).unwrap();
    assert_eq!(r["accepted"], 5, "{r} from {log}");
    // The aggregating thread takes what is queued every few milliseconds.
    let mut m = String::new();
    for _ in 0..50 {
        m = http(s.admin, "GET", "/metrics").1;
        if m.contains("petrel_measure_rtt_seconds_count{pop=\"ams\",kind=\"import\"} 5") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        m.contains("petrel_measure_rtt_seconds_count{pop=\"ams\",kind=\"import\"} 5"),
        "{m}"
    );
}
