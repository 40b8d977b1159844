//! BGP against real routers on loopback: BIRD 2 feeds two POP views, and
//! the DNS answers follow the routes (Super Sparrow); sessions survive peer
//! restarts, hold timers expire, max-prefix closes with Cease/1.
//!
//! Each test uses its own 127.N.0.0/16 addresses so that tests can run in
//! parallel; nothing leaves the loopback interface.

// Tests of the running binary time it from outside.
#![allow(clippy::disallowed_methods)]

mod common;

use common::routers::*;
use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A GET on the admin API, as JSON.
fn api_json(s: &Server, path: &str) -> serde_json::Value {
    let body = http_get(s.admin, path);
    serde_json::from_str(&body[body.find("\r\n\r\n").unwrap() + 4..]).unwrap()
}

fn summary(s: &Server) -> serde_json::Value {
    api_json(s, "/api/v1/bgp/summary")
}

fn peer<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no peer {name} in {v}"))
}

fn established(s: &Server, name: &str) -> bool {
    peer(&summary(s), name)["state"] == "Established"
}

fn answer(s: &Server, subnet: &str) -> String {
    dig(s, &["+short", &format!("+subnet={subnet}"), "www.example.net", "A"])
        .trim()
        .to_string()
}

/// Petrel with POPs ams (AS 65010, 192.0.2.1) and nyc (AS 65020,
/// 192.0.2.2), one Super Sparrow service, and the given [bgp] section.
fn petrel_with(tag: &str, bgp: &str) -> Server {
    let dir = tempdir(tag);
    let port = free_port();
    let admin = free_port();
    std::fs::write(dir.join("example.net.zone"), TWO_POP_ZONE).unwrap();
    let cfg = dir.join("petrel.toml");
    std::fs::write(&cfg, two_pop_config(port, admin, "", bgp)).unwrap();
    spawn(dir, &cfg, port, admin)
}

/// Two views fed by BIRD: 203.0.113.0/24 reaches ams over a 3-AS path and
/// nyc over 1 AS, 198.51.100.0/24 the other way round; one IPv6 prefix
/// with the same path both ways. ams's session is passive at petrel (BIRD
/// connects), nyc's active (petrel connects) with a 4-octet ASN.
#[test]
fn super_sparrow_answers_follow_bird_routes() {
    let n = 11;
    let listen = free_port();
    let bird_port = free_port();
    // BIRD listens for every protocol, on port 179 unless told: give each
    // instance its own ports so parallel tests do not collide.
    let spare = free_port();
    let s = petrel_with(
        "bgp-e2e",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
listen = "127.0.0.1:{listen}"
batch_ms = 200

[[bgp.peer]]
name = "ams-up"
pop = "ams"
address = "127.{n}.0.2"
asn = 65001
passive = true
hold_time = 9

[[bgp.peer]]
name = "nyc-up"
pop = "nyc"
address = "127.{n}.0.3"
port = {bird_port}
asn = 4200000002
hold_time = 9
connect_retry_secs = 1
"#
        ),
    );
    let bird = Bird::start(
        &s.dir,
        &format!(
            r#"
router id 127.{n}.0.9;
protocol device {{}}
protocol static s4a {{ ipv4; route 203.0.113.0/24 blackhole; }}
protocol static s4b {{ ipv4; route 198.51.100.0/24 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8:100::/48 blackhole; }}
filter to_ams {{
  if net = 203.0.113.0/24 then {{ bgp_path.prepend(65003); bgp_path.prepend(65004); }}
  bgp_community.add((65001,100));
  bgp_large_community.add((4200000000,1,2));
  accept;
}}
filter to_nyc {{
  if net = 198.51.100.0/24 then {{ bgp_path.prepend(65005); bgp_path.prepend(65006); }}
  accept;
}}
protocol bgp ams_up {{
  local 127.{n}.0.2 port {spare} as 65001;
  neighbor 127.0.0.1 port {listen} as 64600;
  multihop 2;
  hold time 9;
  connect retry time 1;
  ipv4 {{ import all; export filter to_ams; }};
  ipv6 {{ import all; export all; next hop address 2001:db8::2; }};
}}
protocol bgp nyc_up {{
  local 127.{n}.0.3 port {bird_port} as 4200000002;
  neighbor 127.0.0.1 as 64600;
  passive on;
  multihop 2;
  hold time 9;
  ipv4 {{ import all; export filter to_nyc; }};
  ipv6 {{ import all; export all; next hop address 2001:db8::3; }};
}}
"#
        ),
    );
    let limit = Duration::from_secs(30);
    wait_for("both sessions", limit, || {
        established(&s, "ams-up") && established(&s, "nyc-up")
    });
    // Super Sparrow: the POP whose view has the shorter path wins.
    wait_for("BGP-based answers", limit, || {
        answer(&s, "203.0.113.0/24") == "192.0.2.2" && answer(&s, "198.51.100.0/24") == "192.0.2.1"
    });
    // The ECS scope is the routed prefix's length.
    let full = dig(&s, &["+subnet=203.0.113.77/32", "www.example.net", "A"]);
    assert!(full.contains("CLIENT-SUBNET: 203.0.113.77/32/24"), "{full}");

    let sum = summary(&s);
    assert_eq!(peer(&sum, "ams-up")["prefixes"], 3, "{sum}");
    assert_eq!(peer(&sum, "nyc-up")["remote_as"], 4200000002u64, "{sum}");

    // Routes as received: attributes, communities, IPv6 next hops.
    let (ok, out, err) = petrel(&[
        "bgp",
        "route",
        "203.0.113.5",
        "--view",
        "ams",
        "--admin",
        &s.admin.to_string(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("view ams: 203.0.113.0/24"), "{out}");
    assert!(out.contains("path [65001 65004 65003]"), "{out}");
    assert!(out.contains("communities 65001:100 4200000000:1:2"), "{out}");
    assert!(!out.contains("view nyc"), "{out}");
    let (_, out, _) = petrel(&["bgp", "route", "2001:db8:100::1", "--admin", &s.admin.to_string()]);
    assert!(out.contains("view ams: 2001:db8:100::/48"), "{out}");
    assert!(out.contains("next-hop 2001:db8::3"), "{out}");
    assert!(out.contains("path [4200000002]"), "{out}");
    let (_, text, _) = petrel(&["bgp", "summary", "--admin", &s.admin.to_string()]);
    assert!(text.contains("nyc-up") && text.contains("Established"), "{text}");

    // Explanations name the paths per view.
    let (_, ex, _) = petrel(&[
        "explain",
        "--admin",
        &s.admin.to_string(),
        "-s",
        "www.example.net",
        "--client",
        "203.0.113.9",
    ]);
    assert!(ex.contains("view ams (ams): path 65001 65004 65003 (length 3)"), "{ex}");
    assert!(ex.contains("hops nyc 1, ams 3"), "{ex}");

    // Learned routes are never sent back: BIRD imports nothing from petrel.
    let proto = bird.birdc("show protocols all ams_up");
    let routes: Vec<&str> = proto
        .lines()
        .filter(|l| l.trim_start().starts_with("Routes:"))
        .collect();
    assert_eq!(routes.len(), 2, "{proto}");
    assert!(routes.iter().all(|l| l.contains(" 0 imported")), "{proto}");
    assert!(
        proto
            .lines()
            .filter(|l| l.trim_start().starts_with("Import updates:"))
            .all(|l| l.split_whitespace().skip(2).all(|x| x == "0")),
        "{proto}"
    );

    // A withdrawal at BIRD changes the answer within the batch delay: with
    // no route in either view, config order (ams) applies.
    let t0 = Instant::now();
    bird.birdc("disable s4a");
    wait_for("the withdrawal to change the answer", limit, || {
        answer(&s, "203.0.113.0/24") == "192.0.2.1"
    });
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "withdrawal took {took:?}");
    eprintln!("withdrawal at BIRD to changed answer: {took:?} (batch 200 ms)");
    bird.birdc("enable s4a");
    wait_for("the route to come back", limit, || {
        answer(&s, "203.0.113.0/24") == "192.0.2.2"
    });

    // A peer restart: the session comes back and so do its routes.
    bird.birdc("restart nyc_up");
    wait_for("nyc-up to re-establish", limit, || {
        let sum = summary(&s);
        let p = peer(&sum, "nyc-up");
        p["state"] == "Established" && p["established_transitions"].as_u64() >= Some(2) && p["prefixes"] == 3
    });
    wait_for("answers after the restart", limit, || {
        answer(&s, "203.0.113.0/24") == "192.0.2.2"
    });

    let metrics = http_get(s.admin, "/metrics");
    assert!(
        metrics.contains(r#"petrel_bgp_session_established{peer="nyc-up",view="nyc"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"petrel_bgp_prefixes{peer="ams-up",view="ams"} 3"#),
        "{metrics}"
    );
}

/// The hold timer expires when the peer stops talking (BIRD frozen with
/// SIGSTOP), and a peer that sends more than max_prefix routes is closed
/// with Cease/1 (RFC 4486), which BIRD reports.
#[test]
fn hold_timer_expiry_and_max_prefix() {
    let n = 12;
    let p1 = free_port();
    let listen = free_port();
    let spare = free_port();
    let s = petrel_with(
        "bgp-timers",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
listen = "127.0.0.1:{listen}"
batch_ms = 100

[[bgp.peer]]
name = "slow"
pop = "ams"
address = "127.{n}.0.2"
port = {p1}
asn = 65001
hold_time = 3
connect_retry_secs = 1

[[bgp.peer]]
name = "greedy"
pop = "nyc"
address = "127.{n}.0.3"
asn = 65002
max_prefix = 2
passive = true
"#
        ),
    );
    let bird = Bird::start(
        &s.dir,
        &format!(
            r#"
router id 127.{n}.0.9;
protocol device {{}}
protocol static s4 {{ ipv4; route 203.0.113.0/24 blackhole; route 198.51.100.0/24 blackhole; route 192.0.2.128/25 blackhole; }}
protocol bgp slow {{
  local 127.{n}.0.2 port {p1} as 65001;
  neighbor 127.0.0.1 as 64600;
  passive on;
  multihop 2;
  hold time 3;
  error wait time 1, 2;
  ipv4 {{ import none; export all; }};
}}
protocol bgp greedy {{
  local 127.{n}.0.3 port {spare} as 65002;
  neighbor 127.0.0.1 port {listen} as 64600;
  multihop 2;
  ipv4 {{ import none; export all; }};
}}
"#
        ),
    );
    let limit = Duration::from_secs(30);
    wait_for("the slow session", limit, || established(&s, "slow"));
    wait_for("its routes", limit, || peer(&summary(&s), "slow")["prefixes"] == 3);

    // Max prefix: three routes against a limit of two.
    wait_for("Cease/1 to reach BIRD", limit, || {
        bird.birdc("show protocols all greedy")
            .contains("Maximum number of prefixes reached")
    });
    let sum = summary(&s);
    let g = peer(&sum, "greedy");
    assert_ne!(g["state"], "Established", "{sum}");
    assert!(
        g["last_error"].as_str().unwrap().contains("more than 2 prefixes"),
        "{sum}"
    );
    assert_eq!(g["prefixes"], 0, "{sum}");

    // Freeze BIRD: the 3 s hold timer expires and the routes leave the view.
    let pid = bird.pid();
    run("kill", &["-STOP", &pid]);
    let took = wait_for("the hold timer to expire", Duration::from_secs(10), || {
        let sum = summary(&s);
        let p = peer(&sum, "slow");
        p["state"] != "Established" && p["last_error"].as_str().unwrap_or("").contains("hold timer expired")
    });
    run("kill", &["-CONT", &pid]);
    assert!(took >= Duration::from_secs(1), "expired too early: {took:?}");
    assert_eq!(peer(&summary(&s), "slow")["prefixes"], 0);
    // And the session comes back once the peer talks again.
    wait_for("the slow session to return", limit, || established(&s, "slow"));
}

fn bgp_route(s: &Server, addr: &str) -> String {
    let (ok, out, err) = petrel(&["bgp", "route", addr, "--admin", &s.admin.to_string()]);
    assert!(ok, "{err}");
    out
}

fn prefixes(s: &Server, name: &str) -> u64 {
    peer(&summary(s), name)["prefixes"].as_u64().unwrap()
}

/// ExaBGP in the foreground on `dir/exabgp.conf`, logging to `dir/exabgp.log`.
fn exabgp(dir: &Path) -> Kill {
    daemon(
        dir,
        "exabgp.log",
        "exabgp",
        &["exabgp.conf"],
        &[
            ("exabgp.daemon.user", "root"),
            ("exabgp.daemon.daemonize", "false"),
            ("exabgp.log.destination", "stdout"),
            ("exabgp.api.cli", "false"),
        ],
    )
}

/// FRR 8.4's bgpd (without zebra) with a 4-octet ASN: IPv4 and IPv6
/// routes with communities, a withdrawal, a restart of the daemon and a
/// hold timer that expires while it is frozen.
#[test]
fn frr_interop() {
    let n = 13;
    let frr_port = free_port();
    let s = petrel_with(
        "bgp-frr",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
batch_ms = 100

[[bgp.peer]]
name = "frr"
pop = "ams"
address = "127.{n}.0.4"
port = {frr_port}
asn = 4200000030
hold_time = 3
connect_retry_secs = 1
"#
        ),
    );
    let dir = s.dir.clone();
    let conf = format!(
        r#"frr defaults traditional
hostname petrel-test-frr
log file {log}
!
router bgp 4200000030
 bgp router-id 127.{n}.0.4
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 127.0.0.1 remote-as 64600
 neighbor 127.0.0.1 disable-connected-check
 neighbor 127.0.0.1 passive
 neighbor 127.0.0.1 timers 1 3
 address-family ipv4 unicast
  network 203.0.113.0/24
  network 198.51.100.0/24
  neighbor 127.0.0.1 route-map OUT out
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:200::/48
  neighbor 127.0.0.1 activate
  neighbor 127.0.0.1 route-map OUT out
 exit-address-family
!
route-map OUT permit 10
 set community 65030:7
 set large-community 4200000000:3:4
 set as-path prepend 65031
!
"#,
        log = dir.join("frr.log").display()
    );
    std::fs::write(dir.join("bgpd.conf"), conf).unwrap();
    let vty = dir.display().to_string();
    let start_frr = || bgpd(&dir, frr_port, &format!("127.{n}.0.4"), &[]);
    let mut frr = start_frr();
    let limit = Duration::from_secs(30);
    wait_for("the FRR session", limit, || established(&s, "frr"));
    wait_for("FRR's routes", limit, || prefixes(&s, "frr") == 3);
    let v4 = bgp_route(&s, "203.0.113.1");
    assert!(v4.contains("path [4200000030 65031]"), "{v4}");
    assert!(v4.contains("communities 65030:7 4200000000:3:4"), "{v4}");
    let v6 = bgp_route(&s, "2001:db8:200::1");
    assert!(v6.contains("view ams: 2001:db8:200::/48"), "{v6}");
    assert!(v6.contains("path [4200000030 65031]"), "{v6}");

    // Withdrawal.
    let vtysh = |cmds: &[&str]| {
        let mut a = vec!["--vty_socket", &vty, "-d", "bgpd"];
        for c in cmds {
            a.push("-c");
            a.push(c);
        }
        run("vtysh", &a)
    };
    vtysh(&[
        "configure terminal",
        "router bgp 4200000030",
        "address-family ipv4 unicast",
        "no network 198.51.100.0/24",
    ]);
    wait_for("FRR's withdrawal", limit, || prefixes(&s, "frr") == 2);
    assert!(bgp_route(&s, "198.51.100.1").contains("view ams: no route"));

    // Hold timer: bgpd frozen, petrel's 3 s timer expires.
    let pid = std::fs::read_to_string(dir.join("bgpd.pid"))
        .unwrap()
        .trim()
        .to_string();
    run("kill", &["-STOP", &pid]);
    wait_for("the hold timer to expire", Duration::from_secs(10), || {
        let sum = summary(&s);
        peer(&sum, "frr")["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("hold timer expired")
    });
    assert_eq!(prefixes(&s, "frr"), 0);
    run("kill", &["-CONT", &pid]);

    // Restart of the daemon: the session and the (configured) routes return.
    drop(frr);
    frr = start_frr();
    wait_for("the FRR session after a restart", limit, || {
        established(&s, "frr") && prefixes(&s, "frr") == 3
    });
    drop(frr);
}

/// GoBGP 3.10 with routes injected over its API: IPv4 and IPv6 with
/// communities, a withdrawal, and a max-prefix overrun.
#[test]
fn gobgp_interop() {
    let n = 14;
    let gport = free_port();
    let api = free_port();
    let s = petrel_with(
        "bgp-gobgp",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
batch_ms = 100

[[bgp.peer]]
name = "gobgp"
pop = "nyc"
address = "127.{n}.0.4"
port = {gport}
asn = 4200000040
max_prefix = 3
connect_retry_secs = 1
"#
        ),
    );
    let _g = gobgpd(&s.dir, n, gport, api);
    let gobgp = |args: &[&str]| gobgp_cli(api, args);
    gobgp(&[
        "global",
        "rib",
        "add",
        "203.0.113.0/24",
        "community",
        "65040:9",
        "large-community",
        "4200000000:5:6",
        "aspath",
        "65041",
        "-a",
        "ipv4",
    ]);
    gobgp(&["global", "rib", "add", "198.51.100.0/24", "-a", "ipv4"]);
    gobgp(&[
        "global",
        "rib",
        "add",
        "2001:db8:300::/48",
        "nexthop",
        "2001:db8::40",
        "-a",
        "ipv6",
    ]);
    let limit = Duration::from_secs(30);
    wait_for("GoBGP's routes", limit, || {
        established(&s, "gobgp") && prefixes(&s, "gobgp") == 3
    });
    let v4 = bgp_route(&s, "203.0.113.1");
    assert!(v4.contains("path [4200000040 65041]"), "{v4}");
    assert!(v4.contains("communities 65040:9 4200000000:5:6"), "{v4}");
    let v6 = bgp_route(&s, "2001:db8:300::1");
    assert!(v6.contains("next-hop 2001:db8::40"), "{v6}");

    gobgp(&["global", "rib", "del", "198.51.100.0/24", "-a", "ipv4"]);
    wait_for("GoBGP's withdrawal", limit, || prefixes(&s, "gobgp") == 2);

    // Two more routes: four is over the limit of three.
    gobgp(&["global", "rib", "add", "192.0.2.0/25", "-a", "ipv4"]);
    gobgp(&["global", "rib", "add", "192.0.2.128/25", "-a", "ipv4"]);
    wait_for("the max-prefix Cease", limit, || {
        let sum = summary(&s);
        let p = peer(&sum, "gobgp");
        p["state"] != "Established" && p["last_error"].as_str().unwrap_or("").contains("more than 3 prefixes")
    });
    assert_eq!(prefixes(&s, "gobgp"), 0);
    let log = std::fs::read_to_string(s.dir.join("gobgpd.log")).unwrap();
    assert!(log.contains("maximum number of prefixes reached"), "{log}");
}

/// At start, a super-sparrow service answers SERVFAIL (EDE "Not Ready")
/// until the configured peer's initial routes are in, rather than send
/// every client to the first POP; a service with other policies answers
/// from them; /api/v1/ready and sd_notify READY wait for the views.
#[test]
fn no_answer_from_empty_views_while_warming_up() {
    let n = 26;
    let gport = free_port();
    let api = free_port();
    let dir = tempdir("bgp-warmup");
    let (port, admin) = (free_port(), free_port());
    std::fs::write(dir.join("example.net.zone"), TWO_POP_ZONE).unwrap();
    let hport = free_port();
    let body = format!(
        r#"
[[service]]
name = "prio.example.net."
policy = [{{ type = "super-sparrow" }}, {{ type = "priority", pops = ["nyc", "ams"] }}]

[[http]]
name = "front"
listen = ["127.0.0.1:{hport}"]
[[http.rule]]
name = "all"
service = "www.example.net."
location = "https://{{pop}}.example.net{{path}}"

[bgp]
asn = 64600
router_id = "127.0.0.1"
batch_ms = 100
warmup_secs = 120

[[bgp.peer]]
name = "gobgp"
pop = "nyc"
address = "127.{n}.0.4"
port = {gport}
asn = 4200000040
connect_retry_secs = 6
"#
    );
    let cfg = dir.join("petrel.toml");
    std::fs::write(&cfg, two_pop_config(port, admin, "", &body)).unwrap();
    std::fs::write(
        dir.join("example.net.zone"),
        format!("{TWO_POP_ZONE}prio 60 IN TXT \"static\"\n"),
    )
    .unwrap();
    let notify = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let env = format!("NOTIFY_SOCKET={}", notify.display());
    let s = spawn_under(&["env", &env], dir, &cfg, port, admin);

    // Warming: the BGP-only service gives no answer, and says why.
    let out = dig(&s, &["+subnet=203.0.113.0/24", "www.example.net", "A"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(out.contains("EDE: 14 (Not Ready)"), "{out}");
    assert!(!out.contains("192.0.2."), "{out}");
    // The other answers from its priority list; static data is served.
    let prio = dig(&s, &["+short", "+subnet=203.0.113.0/24", "prio.example.net", "A"]);
    assert_eq!(prio.trim(), "192.0.2.2");
    let txt = dig(&s, &["+short", "prio.example.net", "TXT"]);
    assert_eq!(txt.trim(), "\"static\"");
    // HTTP redirects for it: 503 with a Retry-After (curl, from 127.0.0.1).
    let curl = |path: &str| {
        let out = Command::new(tool("curl"))
            .args([
                "-s",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{hport}{path}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let h = curl("/a");
    assert!(
        h.starts_with("HTTP/1.1 503") && h.to_ascii_lowercase().contains("retry-after: 5"),
        "{h}"
    );
    let (code, ready) = http(s.admin, "GET", "/api/v1/ready");
    assert_eq!(code, 503, "{ready}");
    assert!(
        ready.contains(r#""state":"warming""#) && ready.contains(r#""waiting":["gobgp"]"#),
        "{ready}"
    );
    assert!(api_json(&s, "/api/v1/status")["state"] == "warming");
    let e = api_json(&s, "/api/v1/explain?service=www.example.net&client=203.0.113.1");
    assert!(e["warming"].as_str().unwrap_or("").contains("SERVFAIL"), "{e}");
    // systemd hears a status, not READY=1.
    let mut buf = [0u8; 512];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(500) {
        if let Ok(k) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..k]).to_string();
            assert!(!m.contains("READY=1"), "{m}");
        }
    }

    // GoBGP comes up with its routes before petrel's next attempt.
    let _g = gobgpd(&s.dir, n, gport, api);
    gobgp_cli(
        api,
        &[
            "global",
            "rib",
            "add",
            "203.0.113.0/24",
            "aspath",
            "65020",
            "-a",
            "ipv4",
        ],
    );
    let m = notified(&sock, "READY=1", Duration::from_secs(40));
    assert!(m.last().unwrap().contains("STATUS=serving generation"), "{m:?}");
    // From the first moment it is ready, the answers use the views.
    assert_eq!(answer(&s, "203.0.113.0/24"), "192.0.2.2");
    let (code, ready) = http(s.admin, "GET", "/api/v1/ready");
    assert_eq!(code, 200, "{ready}");
    assert!(ready.contains(r#""ready":true"#), "{ready}");
    assert!(api_json(&s, "/api/v1/status")["state"] == "serving");
    // 127.0.0.1 has no route in the views: ties, the first POP.
    let h = curl("/a");
    assert!(
        h.starts_with("HTTP/1.1 302") && h.contains("https://ams.example.net/a"),
        "{h}"
    );
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("routing views in"), "{log}");
}

/// A peer that never comes up holds the start for `bgp.warmup_secs` at
/// most; then the server is ready, says which feed was missing, and the
/// services answer from what they have.
#[test]
fn the_warm_up_ends_at_its_bound() {
    let n = 27;
    let s = petrel_with(
        "bgp-warmup-bound",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
warmup_secs = 3

[[bgp.peer]]
name = "absent"
pop = "nyc"
address = "127.{n}.0.4"
port = {}
asn = 64700
connect_retry_secs = 1
"#,
            free_port()
        ),
    );
    let t0 = Instant::now();
    let (code, _) = http(s.admin, "GET", "/api/v1/ready");
    assert_eq!(code, 503);
    wait_for("the warm-up bound", Duration::from_secs(20), || {
        http(s.admin, "GET", "/api/v1/ready").0 == 200
    });
    assert!(t0.elapsed() < Duration::from_secs(10));
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(
        log.contains("bgp.warmup_secs passed") && log.contains("missing=absent"),
        "{log}"
    );
    // No views at all: super-sparrow ties every POP; the service answers.
    assert_eq!(answer(&s, "203.0.113.0/24"), "192.0.2.1");
}

/// ExaBGP announces one good route and one with a malformed COMMUNITIES
/// attribute (3 bytes): RFC 7606 treat-as-withdraw drops that route and
/// the session stays up.
#[test]
fn exabgp_malformed_attribute_is_treat_as_withdraw() {
    let n = 15;
    let listen = free_port();
    let s = petrel_with(
        "bgp-exabgp",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
listen = "127.0.0.1:{listen}"
batch_ms = 100

[[bgp.peer]]
name = "exa"
pop = "nyc"
address = "127.{n}.0.4"
asn = 65050
passive = true
"#
        ),
    );
    std::fs::write(
        s.dir.join("exabgp.conf"),
        format!(
            r#"
neighbor 127.0.0.1 {{
  router-id 127.{n}.0.4;
  local-address 127.{n}.0.4;
  local-as 65050;
  peer-as 64600;
  connect {listen};
  hold-time 9;
  family {{ ipv4 unicast; }}
  static {{
    route 203.0.113.0/24 next-hop 127.{n}.0.4 community [65050:1];
    route 198.51.100.0/24 next-hop 127.{n}.0.4 attribute [ 0x08 0xc0 0x010203 ];
  }}
}}
"#
        ),
    )
    .unwrap();
    let _e = exabgp(&s.dir);
    let limit = Duration::from_secs(30);
    wait_for("the ExaBGP session and its errors", limit, || {
        let sum = summary(&s);
        let p = peer(&sum, "exa");
        p["state"] == "Established" && p["errors_7606"].as_u64() >= Some(1)
    });
    wait_for("the good route", limit, || prefixes(&s, "exa") == 1);
    assert!(bgp_route(&s, "203.0.113.1").contains("communities 65050:1"));
    assert!(bgp_route(&s, "198.51.100.1").contains("view nyc: no route"));
    // Still up, still the first session.
    std::thread::sleep(Duration::from_secs(1));
    let sum = summary(&s);
    assert_eq!(peer(&sum, "exa")["state"], "Established", "{sum}");
    assert_eq!(peer(&sum, "exa")["established_transitions"], 1, "{sum}");
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("RFC 7606 treat-as-withdraw"), "{log}");
    let m = http_get(s.admin, "/metrics");
    assert!(
        m.contains(r#"petrel_bgp_rfc7606_errors_total{peer="exa",view="nyc"} 1"#),
        "{m}"
    );
}

/// `petrel mrt-dump` prints what bgpdump prints, line for line, for the
/// real RouteViews/RIS dumps Debian ships with python3-pyasn (TABLE_DUMP
/// of 2008, TABLE_DUMP_V2 IPv4 of 2014 and IPv6 of 2015; each cut after
/// its first megabyte, so the last record is truncated for both tools).
#[test]
fn mrt_dump_matches_bgpdump_on_real_dumps() {
    let dir = "/usr/lib/python3/dist-packages/data";
    let files = [
        "rib.20080501.0644_firstMB.bz2",
        "rib.20140523.0600_firstMB.bz2",
        "rib6.20151101.0600_firstMB.bz2",
    ];
    // Addresses and prefixes compared parsed: bgpdump does not follow
    // RFC 5952 when it shortens IPv6 zeros.
    let norm = |line: &str| -> Vec<String> {
        line.split('|')
            .map(|f| {
                if let Ok(a) = f.parse::<std::net::IpAddr>() {
                    a.to_string()
                } else if let Some((a, l)) = f.split_once('/') {
                    match a.parse::<std::net::IpAddr>() {
                        Ok(a) => format!("{a}/{l}"),
                        Err(_) => f.to_string(),
                    }
                } else {
                    f.to_string()
                }
            })
            .collect()
    };
    let mut total = 0;
    for f in files {
        let path = format!("{dir}/{f}");
        assert!(
            Path::new(&path).exists(),
            "{path} is missing: run scripts/test as root (it installs python3-pyasn)"
        );
        let ours = Command::new(BIN).args(["mrt-dump", &path]).output().unwrap();
        let err = String::from_utf8_lossy(&ours.stderr);
        assert!(err.contains("truncated") || err.contains("EOF"), "{f}: {err}");
        let theirs = Command::new(tool("bgpdump")).args(["-m", &path]).output().unwrap();
        let a: Vec<Vec<String>> = String::from_utf8_lossy(&ours.stdout).lines().map(norm).collect();
        let b: Vec<Vec<String>> = String::from_utf8_lossy(&theirs.stdout).lines().map(norm).collect();
        assert!(a.len() > 100_000, "{f}: {} routes", a.len());
        assert_eq!(a.len(), b.len(), "{f}");
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            panic!("{f}: line {i} differs:\n ours   {:?}\n bgpdump {:?}", a[i], b[i]);
        }
        total += a.len();
    }
    eprintln!("{total} routes identical to bgpdump's");
}

/// A generated route: prefix, AS path, MED, community.
type GenRoute = (String, Vec<u32>, u32, (u16, u16));

/// A small slice of the real DFZ table (iptrie 0.11.2's `bgpas.lpm`, as
/// the full-table benchmarks use it whole): `n4` consecutive IPv4 and `n6`
/// IPv6 prefixes, nested ones included, each with its real origin AS at
/// the end of a deterministic path.
fn dfz_slice_routes(n4: usize, n6: usize) -> Vec<GenRoute> {
    let table = petrel_synth::dfz::load().expect("bgpas.lpm from the iptrie 0.11.2 dev-dependency (cargo fetch)");
    let v4 = table.iter().filter(|(p, _)| p.family() == petrel_types::Family::V4);
    let v6 = table.iter().filter(|(p, _)| p.family() == petrel_types::Family::V6);
    let n = table.len();
    let slice: Vec<(petrel_types::Prefix, u32)> =
        v4.skip(n / 2).take(n4).chain(v6.skip(1000).take(n6)).copied().collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    slice
        .into_iter()
        .map(|(prefix, origin)| {
            let len = (next() % 4) as usize;
            let mut path = vec![65050];
            path.extend((0..len).map(|_| 64512 + (next() % 1000) as u32));
            if path.last() != Some(&origin) {
                path.push(origin);
            }
            (
                prefix.to_string(),
                path,
                (next() % 100) as u32,
                (65050, (next() % 1000) as u16),
            )
        })
        .collect()
}

/// The same routes (a slice of the real DFZ table) twice, from a generated
/// TABLE_DUMP_V2 file (gzip) in one view and from ExaBGP over a live
/// session in another: petrel holds identical routes in both, and the
/// same longest match for each prefix's first address.
#[test]
fn mrt_import_matches_a_live_session() {
    use petrel_bgp_wire::mrt::{MrtPeer, MrtWriter};
    use petrel_bgp_wire::{AsPathSegment, Attributes, Origin};

    let n = 16;
    let routes = dfz_slice_routes(300, 100);
    let listen = free_port();
    let peer_ip: std::net::IpAddr = format!("127.{n}.0.4").parse().unwrap();
    let s_dir = tempdir("bgp-mrt-src");
    // The dump: one peer, one entry per prefix.
    let mut w = MrtWriter::default();
    w.peer_index(
        1_700_000_000,
        1,
        "generated",
        &[MrtPeer {
            bgp_id: 1,
            address: peer_ip,
            asn: 65050,
        }],
    );
    for (p, path, med, (c1, c2)) in &routes {
        let a = Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(path.clone())],
            next_hop: Some(std::net::Ipv4Addr::new(127, n, 0, 4)),
            mp_next_hop: Some("2001:db8::4".parse().unwrap()),
            med: Some(*med),
            communities: vec![(u32::from(*c1) << 16) | u32::from(*c2)],
            ..Default::default()
        };
        w.rib(1_700_000_000, &p.parse().unwrap(), &[(0, None, &a)]);
    }
    let dump = s_dir.join("generated.mrt.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&dump).unwrap(), flate2::Compression::fast());
    gz.write_all(&w.out).unwrap();
    gz.finish().unwrap();

    let s = petrel_with(
        "bgp-mrt",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
listen = "127.0.0.1:{listen}"
batch_ms = 100

[[bgp.mrt]]
file = "{dump}"
pop = "ams"

[[bgp.peer]]
name = "exa"
pop = "nyc"
address = "{peer_ip}"
asn = 65050
passive = true
"#,
            dump = dump.display()
        ),
    );
    let mut static_routes = String::new();
    for (p, path, med, (c1, c2)) in &routes {
        let nh = if p.contains(':') {
            "2001:db8::4".to_string()
        } else {
            peer_ip.to_string()
        };
        let path: Vec<String> = path.iter().map(|a| a.to_string()).collect();
        static_routes.push_str(&format!(
            "    route {p} next-hop {nh} origin igp as-path [ {} ] med {med} community [{c1}:{c2}];\n",
            path.join(" ")
        ));
    }
    std::fs::write(
        s.dir.join("exabgp.conf"),
        format!(
            "neighbor 127.0.0.1 {{\n  router-id {peer_ip};\n  local-address {peer_ip};\n  local-as 65050;\n  peer-as 64600;\n  connect {listen};\n  family {{ ipv4 unicast; ipv6 unicast; }}\n  static {{\n{static_routes}  }}\n}}\n"
        ),
    )
    .unwrap();
    let _e = exabgp(&s.dir);
    let limit = Duration::from_secs(60);
    let mrt_peer = format!("generated.mrt.gz/{peer_ip}");
    wait_for("both sources", limit, || {
        let sum = summary(&s);
        peer(&sum, &mrt_peer)["prefixes"] == routes.len() && peer(&sum, "exa")["prefixes"] == routes.len()
    });
    let prefixes: Vec<petrel_types::Prefix> = routes.iter().map(|r| r.0.parse().unwrap()).collect();
    let nested = prefixes
        .iter()
        .filter(|p| prefixes.iter().any(|q| q != *p && q.contains(p)))
        .count();
    assert!(nested > 0, "the slice has nested prefixes, as real tables do");
    for (p, _, _, _) in routes.iter().step_by(7) {
        let addr = p.split('/').next().unwrap();
        // Nested prefixes: the most specific one holding the address.
        let host = petrel_types::Prefix::host(addr.parse().unwrap());
        let longest = prefixes
            .iter()
            .filter(|q| q.contains(&host))
            .max_by_key(|q| q.len())
            .unwrap();
        let v = api_json(&s, &format!("/api/v1/bgp/route?addr={addr}"));
        let views = v["views"].as_array().unwrap();
        let get = |name: &str| {
            let view = views.iter().find(|x| x["view"] == name).unwrap();
            assert_eq!(view["prefix"], longest.to_string().as_str(), "{v}");
            let mut r = view["routes"][0].clone();
            r["peer"] = serde_json::Value::Null;
            r
        };
        assert_eq!(get("ams"), get("nyc"), "{p}");
    }
}

/// The demo's generated per-POP dumps: Super Sparrow and blended answers
/// differ where the synthetic AS paths and geography disagree.
#[test]
fn demo_has_bgp_views() {
    let s = start("bgp-demo");
    let q = |svc: &str, subnet: &str| {
        dig(&s, &["+short", &format!("+subnet={subnet}"), svc, "A"])
            .trim()
            .to_string()
    };
    wait_for("the demo's views", Duration::from_secs(20), || {
        q("ss.demo.petrel.test", "1.64.0.0/24") == "192.0.2.10"
    });
    // Tokyo: the shortest AS path is ams's; blended keeps the nearer sin.
    assert_eq!(q("net.demo.petrel.test", "1.64.0.0/24"), "203.0.113.10");
    let sum = summary(&s);
    let views = sum["views"].as_array().unwrap();
    assert_eq!(views.len(), 4, "{sum}");
    assert!(views.iter().all(|v| v["routes"].as_u64() > Some(50)), "{sum}");
    let (_, ex, _) = petrel(&[
        "explain",
        "--admin",
        &s.admin.to_string(),
        "-s",
        "ss.demo.petrel.test",
        "--client",
        "1.64.0.1",
    ]);
    assert!(
        ex.contains("super-sparrow") && ex.contains("view sin (sin): path"),
        "{ex}"
    );
    // As JSON: each view's path as fields, in configuration order, with the
    // route's prefix from the RIB.
    let (ok, js, err) = petrel(&[
        "explain",
        "--admin",
        &s.admin.to_string(),
        "-s",
        "ss.demo.petrel.test",
        "--client",
        "1.64.0.1",
        "--json",
    ]);
    assert!(ok, "{err}");
    let e: petrel_api::Explanation = serde_json::from_str(&js).unwrap();
    let petrel_api::StepFacts::Routing { views, hops, .. } = &e.steps[0].facts else {
        panic!("{js}");
    };
    let names: Vec<&str> = views.iter().map(|v| v.view.as_str()).collect();
    assert_eq!(names, ["ams", "iad", "sin", "gru"], "{js}");
    for v in views {
        let p: petrel_types::Prefix = v.prefix.as_deref().unwrap_or_else(|| panic!("{js}")).parse().unwrap();
        assert!(p.contains(&"1.64.0.1/32".parse().unwrap()), "{js}");
        assert_eq!(v.path_length, v.as_path.as_ref().map(|p| p.len() as u32), "{js}");
    }
    assert_eq!(hops.len(), 4, "{js}");
    assert!(e.decided_by.is_some(), "{js}");

    // Offline, from the same dumps: `explain --config` and `map` read the
    // views as the server does, and answer as it does.
    let cfg = s.dir.join("demo.toml");
    let cfg = cfg.to_str().unwrap();
    let (ok, off, err) = petrel(&[
        "explain",
        "--config",
        cfg,
        "-s",
        "ss.demo.petrel.test",
        "--client",
        "1.64.0.1",
    ]);
    assert!(ok && off.contains("view sin (sin): path"), "{off}{err}");
    let answer = |t: &str| t.lines().find(|l| l.contains("answer:")).map(str::to_string);
    assert_eq!(answer(&off), answer(&ex), "offline:\n{off}\nserver:\n{ex}");
    let pop_of = |a: &str| match a {
        "192.0.2.10" => "ams",
        "198.51.100.10" => "iad",
        "203.0.113.10" => "sin",
        "192.0.2.70" => "gru",
        other => panic!("no POP has {other}"),
    };
    let clients = [
        "1.64.0.1",
        "2.16.3.4",
        "23.1.0.7",
        "41.0.0.1",
        "177.0.0.1",
        "103.5.0.1",
        "151.101.0.1",
    ];
    for svc in ["ss.demo.petrel.test", "net.demo.petrel.test"] {
        let mut child = Command::new(BIN)
            .args(["map", "--config", cfg, "--service", svc])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{}\n", clients.join("\n")).as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let offline: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let live: Vec<String> = clients
            .iter()
            .map(|c| pop_of(dig(&s, &["+short", &format!("+subnet={c}/32"), svc, "A"]).trim()).to_string())
            .collect();
        assert_eq!(
            offline, live,
            "{svc}: petrel map against the server's answers for {clients:?}"
        );
    }
}

/// FRR 8.4 streams BMP (its `bmp` module) to petrel: the post-policy
/// Adj-RIB-In of its two peers (one BIRD, two sessions) feeds one view
/// each. FRR's import policy hides a prefix from one of them, and the
/// answers follow the paths; a BGP session going down at FRR arrives as
/// Peer Down, the end of the BMP stream withdraws everything, and a
/// restarted FRR streams it all again. Then a hand-written stream checks
/// that an undecodable UPDATE drops only its peer's routes and that a
/// broken stream is closed while DNS keeps answering.
#[test]
fn bmp_from_frr_feeds_views() {
    use petrel_bgp_wire::bmp::{self, BmpWriter, InfoTlv, PeerHeader, PeerUp};
    let n = 17;
    let bmp_port = free_port();
    let frr_port = free_port();
    let (spare_a, spare_b) = (free_port(), free_port());
    // FRR connects from the loopback's primary address.
    let s = petrel_with(
        "bgp-bmp",
        &format!(
            r#"
[bgp]
batch_ms = 100
bmp_listen = "127.{n}.0.1:{bmp_port}"
# The loc-rib router below connects only late in the test.
warmup_secs = 2

[[bgp.bmp]]
router = "127.0.0.1"
pop = "ams"
peers = ["127.{n}.0.5"]

[[bgp.bmp]]
router = "127.0.0.1"
pop = "nyc"
peers = ["127.{n}.0.6"]

[[bgp.bmp]]
router = "127.{n}.0.7"
pop = "nyc"
rib = "loc-rib"
"#
        ),
    );
    let dir = s.dir.clone();
    let frr_conf = format!(
        r#"frr defaults traditional
hostname petrel-test-bmp
log file {log}
!
router bgp 65100
 bgp router-id 127.{n}.0.4
 no bgp ebgp-requires-policy
 neighbor 127.{n}.0.5 remote-as 4200000101
 neighbor 127.{n}.0.5 passive
 neighbor 127.{n}.0.5 disable-connected-check
 neighbor 127.{n}.0.6 remote-as 65102
 neighbor 127.{n}.0.6 passive
 neighbor 127.{n}.0.6 disable-connected-check
 address-family ipv4 unicast
  neighbor 127.{n}.0.5 route-map IN_A in
 exit-address-family
 address-family ipv6 unicast
  neighbor 127.{n}.0.5 activate
  neighbor 127.{n}.0.6 activate
 exit-address-family
 bmp targets petrel
  bmp monitor ipv4 unicast post-policy
  bmp monitor ipv6 unicast post-policy
  bmp connect 127.{n}.0.1 port {bmp_port} min-retry 100 max-retry 1000
 exit
!
ip prefix-list HIDE seq 5 permit 192.0.2.128/25
route-map IN_A deny 5
 match ip address prefix-list HIDE
route-map IN_A permit 10
!
"#,
        log = dir.join("frr.log").display()
    );
    std::fs::write(dir.join("bgpd.conf"), frr_conf).unwrap();
    let start_frr = || bgpd(&dir, frr_port, &format!("127.{n}.0.4"), &["-M", "bmp"]);
    let mut frr = start_frr();
    // Two BIRDs (BIRD runs one session per neighbor address): a (AS
    // 4200000101) gives 203.0.113.0/24 a long path, b (AS 65102)
    // 198.51.100.0/24. Next hops are set because FRR refuses loopback
    // ones as martians.
    let bird_for = |name: &str, local: u8, asn: u32, spare: u16, prepend_net: &str, extra: &str| {
        let sub = dir.join(format!("bird-{name}"));
        std::fs::create_dir_all(&sub).unwrap();
        Bird::start(
            &sub,
            &format!(
                r#"
router id 127.{n}.0.{local};
protocol device {{}}
protocol static s4 {{ ipv4; route 203.0.113.0/24 blackhole; route 198.51.100.0/24 blackhole; route 192.0.2.128/25 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8:300::/48 blackhole; }}
filter to_frr {{
  if net = {prepend_net} then {{ bgp_path.prepend(65201); bgp_path.prepend(65202); }}
  {extra}
  accept;
}}
protocol bgp {name} {{
  local 127.{n}.0.{local} port {spare} as {asn};
  neighbor 127.{n}.0.4 port {frr_port} as 65100;
  multihop 2;
  connect retry time 1;
  connect delay time 1;
  ipv4 {{ import none; export filter to_frr; next hop address 192.0.2.{local}; }};
  ipv6 {{ import none; export all; next hop address 2001:db8::{local}; }};
}}
"#
            ),
        )
    };
    let _bird_a = bird_for(
        "a",
        5,
        4200000101,
        spare_a,
        "203.0.113.0/24",
        "bgp_community.add((65101,7));",
    );
    let bird_b = bird_for("b", 6, 65102, spare_b, "198.51.100.0/24", "");
    let pa = format!("bmp/127.0.0.1/127.{n}.0.5");
    let pb = format!("bmp/127.0.0.1/127.{n}.0.6");
    let limit = Duration::from_secs(40);
    wait_for("both monitored peers with their routes", limit, || {
        let sum = summary(&s);
        let has = |name: &str, want: u64| {
            sum["peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name && p["state"] == "Established" && p["prefixes"] == want)
        };
        // FRR's import policy keeps 192.0.2.128/25 from a's post-policy RIB.
        has(&pa, 3) && has(&pb, 4)
    });
    let sum = summary(&s);
    assert_eq!(peer(&sum, "bmp/127.0.0.1")["state"], "Up", "{sum}");
    assert_eq!(peer(&sum, &pa)["view"], "ams", "{sum}");
    assert_eq!(peer(&sum, &pa)["remote_as"], 4200000101u64, "{sum}");
    assert_eq!(peer(&sum, &pb)["view"], "nyc", "{sum}");
    wait_for("BMP-based answers", limit, || {
        answer(&s, "203.0.113.0/24") == "192.0.2.2" && answer(&s, "198.51.100.0/24") == "192.0.2.1"
    });
    let r = bgp_route(&s, "203.0.113.1");
    assert!(r.contains("view ams: 203.0.113.0/24"), "{r}");
    assert!(r.contains("path [4200000101 65202 65201]"), "{r}");
    assert!(r.contains("view nyc: 203.0.113.0/24"), "{r}");
    assert!(r.contains("communities 65101:7"), "{r}");
    let r = bgp_route(&s, "192.0.2.129");
    assert!(
        r.contains("view ams: no route") && r.contains("view nyc: 192.0.2.128/25"),
        "{r}"
    );
    let r = bgp_route(&s, "2001:db8:300::1");
    assert!(r.contains("next-hop 2001:db8::6") && r.contains("path [65102]"), "{r}");

    // A BGP session ending at FRR is a Peer Down: b's routes leave nyc's
    // view, and 198.51.100.0/24 goes to the only view that has it.
    bird_b.birdc("disable b");
    wait_for("Peer Down for b", limit, || {
        let sum = summary(&s);
        peer(&sum, &pb)["state"] == "Down" && peer(&sum, &pb)["prefixes"] == 0
    });
    wait_for("answers without b", limit, || {
        answer(&s, "203.0.113.0/24") == "192.0.2.1"
    });
    let sum = summary(&s);
    assert!(
        peer(&sum, &pb)["last_error"].as_str().unwrap().contains("closed"),
        "{sum}"
    );
    bird_b.birdc("enable b");
    wait_for("b back", limit, || {
        let sum = summary(&s);
        peer(&sum, &pb)["state"] == "Established" && peer(&sum, &pb)["prefixes"] == 4
    });
    wait_for("answers with b", limit, || answer(&s, "203.0.113.0/24") == "192.0.2.2");

    // The stream ends (FRR stopped): what it described is withdrawn.
    drop(frr);
    wait_for("the BMP session to end", limit, || {
        let sum = summary(&s);
        peer(&sum, "bmp/127.0.0.1")["state"] == "Idle"
            && !sum["peers"].as_array().unwrap().iter().any(|p| p["name"] == pa)
    });
    wait_for("no BMP routes", limit, || {
        bgp_route(&s, "203.0.113.1").matches("no route").count() == 2
    });
    // Restarted, FRR streams everything again.
    frr = start_frr();
    wait_for("BMP after FRR's restart", limit, || {
        let sum = summary(&s);
        let ok = |name: &str, want: u64| {
            sum["peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name && p["prefixes"] == want)
        };
        ok(&pa, 3) && ok(&pb, 4)
    });
    wait_for("answers after the restart", limit, || {
        answer(&s, "203.0.113.0/24") == "192.0.2.2"
    });
    let metrics = http_get(s.admin, "/metrics");
    assert!(
        metrics.contains(&format!(r#"petrel_bgp_prefixes{{peer="{pb}",view="nyc"}} 4"#)),
        "{metrics}"
    );
    drop(frr);
    wait_for("FRR's stream to end", limit, || {
        peer(&summary(&s), "bmp/127.0.0.1")["state"] == "Idle"
    });

    // A hand-written stream from the same address.
    let peer_a = PeerHeader {
        peer_type: bmp::PEER_GLOBAL,
        flags: bmp::FLAG_POST_POLICY,
        distinguisher: 0,
        address: format!("127.{n}.0.5").parse().unwrap(),
        asn: 4200000101,
        bgp_id: 0x7f11_0005,
        timestamp: 0,
        timestamp_us: 0,
    };
    let open = |asn: u32| petrel_bgp_wire::Open {
        version: 4,
        my_as: 23456,
        hold_time: 90,
        bgp_id: 1,
        capabilities: vec![
            petrel_bgp_wire::Capability::Multiprotocol { afi: 1, safi: 1 },
            petrel_bgp_wire::Capability::FourOctetAs(asn),
        ],
    };
    let mut w = BmpWriter::default();
    w.initiation(&[InfoTlv {
        kind: bmp::INFO_SYS_NAME,
        value: b"hand".to_vec(),
    }]);
    w.peer_up(&PeerUp {
        peer: peer_a.clone(),
        local_address: format!("127.{n}.0.4").parse().unwrap(),
        local_port: 179,
        remote_port: 50000,
        sent_open: open(65100),
        received_open: open(4200000101),
        info: vec![],
    });
    let attrs = petrel_bgp_wire::Attributes {
        origin: Some(petrel_bgp_wire::Origin::Igp),
        as_path: vec![petrel_bgp_wire::AsPathSegment::Sequence(vec![4200000101, 65299])],
        next_hop: Some(format!("127.{n}.0.5").parse().unwrap()),
        ..Default::default()
    };
    let ctx = petrel_bgp_wire::SessionCtx {
        four_octet_as: true,
        ..Default::default()
    };
    let mut upd = Vec::new();
    petrel_bgp_wire::encode_update(
        &petrel_bgp_wire::UpdateOut {
            withdrawn: &[],
            announced: &[petrel_bgp_wire::Nlri {
                path_id: None,
                prefix: "203.0.113.0/24".parse().unwrap(),
            }],
            attrs: &attrs,
        },
        &ctx,
        &mut upd,
    );
    w.route_monitoring(&peer_a, &upd);
    // Pre-policy routes are not what this router's entry takes.
    let mut pre = peer_a.clone();
    pre.flags = 0;
    w.route_monitoring(&pre, &upd);
    let mut sock = std::net::TcpStream::connect(format!("127.{n}.0.1:{bmp_port}")).unwrap();
    use std::io::Write;
    sock.write_all(&w.out).unwrap();
    wait_for("the hand-written route", limit, || {
        bgp_route(&s, "203.0.113.1").contains("path [4200000101 65299]")
    });
    wait_for("its count", limit, || prefixes(&s, &pa) == 1);
    // An UPDATE cut short: the peer's routes go until its next Peer Up.
    let mut w = BmpWriter::default();
    w.route_monitoring(&peer_a, &upd[..upd.len() - 2]);
    sock.write_all(&w.out).unwrap();
    wait_for("the peer to be desynchronized", limit, || {
        let sum = summary(&s);
        peer(&sum, &pa)["state"] == "Desynchronized" && peer(&sum, &pa)["prefixes"] == 0
    });
    // A stream that is not BMP 3 is closed; DNS answers all along.
    sock.write_all(&[9, 0, 0, 0, 6, 4]).unwrap();
    wait_for("the broken stream to be closed", limit, || {
        let sum = summary(&s);
        let r = peer(&sum, "bmp/127.0.0.1");
        r["state"] == "Idle" && r["last_error"].as_str().unwrap().contains("BMP version 9")
    });
    // With no BMP route left, the fallback order (ams first) answers once
    // the batch that withdrew them is published (batch_ms).
    wait_for("answers without BMP routes", limit, || {
        answer(&s, "198.51.100.0/24") == "192.0.2.1"
    });

    // A router that streams its Loc-RIB (RFC 9069; Debian's FRR 8.4 cannot,
    // so it is written here): its selected routes feed the nyc view as
    // one peer; Adj-RIB-In routes from it are not what its entry takes.
    let loc = PeerHeader {
        peer_type: bmp::PEER_LOC_RIB,
        flags: 0,
        distinguisher: 0,
        address: "0.0.0.0".parse().unwrap(),
        asn: 65100,
        bgp_id: 0x7f11_0007,
        timestamp: 0,
        timestamp_us: 0,
    };
    let mut w = BmpWriter::default();
    w.initiation(&[InfoTlv {
        kind: bmp::INFO_SYS_NAME,
        value: b"loc".to_vec(),
    }]);
    w.peer_up(&PeerUp {
        peer: loc.clone(),
        local_address: "0.0.0.0".parse().unwrap(),
        local_port: 0,
        remote_port: 0,
        sent_open: open(65100),
        received_open: open(65100),
        // RFC 9069 §5.2: the table's name.
        info: vec![InfoTlv {
            kind: 3,
            value: b"global".to_vec(),
        }],
    });
    // The selected route as the router holds it: learned over eBGP, so
    // its path does not start with the router's own AS.
    let loc_attrs = petrel_bgp_wire::Attributes {
        as_path: vec![petrel_bgp_wire::AsPathSegment::Sequence(vec![65300, 65301])],
        ..attrs.clone()
    };
    let encode = |prefix: &str, a: &petrel_bgp_wire::Attributes| {
        let mut out = Vec::new();
        petrel_bgp_wire::encode_update(
            &petrel_bgp_wire::UpdateOut {
                withdrawn: &[],
                announced: &[petrel_bgp_wire::Nlri {
                    path_id: None,
                    prefix: prefix.parse().unwrap(),
                }],
                attrs: a,
            },
            &ctx,
            &mut out,
        );
        out
    };
    // Adj-RIB-In from the same router is not taken (sent first, so that
    // it has been handled once the Loc-RIB route shows).
    w.peer_up(&PeerUp {
        peer: peer_a.clone(),
        local_address: format!("127.{n}.0.7").parse().unwrap(),
        local_port: 179,
        remote_port: 50001,
        sent_open: open(65100),
        received_open: open(4200000101),
        info: vec![],
    });
    w.route_monitoring(&peer_a, &encode("198.20.0.0/16", &attrs));
    w.route_monitoring(&loc, &encode("198.18.0.0/15", &loc_attrs));
    let bind = |local: &str, to: &str| {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&local.parse::<std::net::SocketAddr>().unwrap().into())
            .unwrap();
        sock.connect(&to.parse::<std::net::SocketAddr>().unwrap().into())
            .unwrap();
        std::net::TcpStream::from(sock)
    };
    let to = format!("127.{n}.0.1:{bmp_port}");
    let mut sock = bind(&format!("127.{n}.0.7:0"), &to);
    sock.write_all(&w.out).unwrap();
    let lr = format!("bmp/127.{n}.0.7/loc-rib");
    wait_for("the Loc-RIB route", limit, || {
        let r = bgp_route(&s, "198.18.1.1");
        r.contains("path [65300 65301]") && r.contains(&lr)
    });
    wait_for("the Loc-RIB count", limit, || prefixes(&s, &lr) == 1);
    assert!(
        !bgp_route(&s, "198.20.0.1").contains("65299"),
        "Adj-RIB-In from a Loc-RIB router"
    );
    // The Loc-RIB instance goes away (RFC 9069 §4.6): its routes go.
    let mut w = BmpWriter::default();
    w.peer_down(&loc, &bmp::PeerDownReason::LocalSystemClosed);
    sock.write_all(&w.out).unwrap();
    wait_for("the Loc-RIB routes to go", limit, || {
        prefixes(&s, &lr) == 0 && !bgp_route(&s, "198.18.1.1").contains("65300")
    });
}

/// A session over IPv6 transport (::1) with GTSM (RFC 5082) and TCP MD5
/// (RFC 2385) on both ends, carrying IPv6 routes; then BIRD with the
/// wrong password, and BIRD without TTL security, cannot bring the session
/// up. (Recovery afterwards is left out: with GTSM a peer's FIN and RST
/// under 255 hops are dropped like the rest, so a half-open connection
/// waits for the OpenSent hold timer, 4 minutes per RFC 4271 §8.2.2.)
#[test]
fn ipv6_transport_with_gtsm_and_md5() {
    let bird_port = free_port();
    let spare = free_port();
    let s = petrel_with(
        "bgp-v6",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.1"
batch_ms = 100

[[bgp.peer]]
name = "v6"
pop = "ams"
address = "::1"
port = {bird_port}
asn = 65061
hold_time = 9
connect_retry_secs = 1
ttl_security = true
md5_password = "s3cret-key"
"#
        ),
    );
    let bird_conf = |password: &str, ttl_security: bool| {
        format!(
            r#"
router id 127.18.0.9;
protocol device {{}}
protocol static s6 {{ ipv6; route 2001:db8:600::/48 blackhole; route 2001:db8:601::/48 blackhole; }}
protocol bgp v6 {{
  local ::1 port {bird_port} as 65061;
  neighbor ::1 port {spare} as 64600;
  passive on;
  multihop 2;
  hold time 9;
  password "{password}";
  ttl security {ttl};
  ipv6 {{ import none; export all; next hop address 2001:db8::61; }};
}}
"#,
            ttl = if ttl_security { "on" } else { "off" }
        )
    };
    let bird = Bird::start(&s.dir, &bird_conf("s3cret-key", true));
    let limit = Duration::from_secs(30);
    wait_for("the IPv6 session with its routes", limit, || {
        established(&s, "v6") && prefixes(&s, "v6") == 2
    });
    let r = bgp_route(&s, "2001:db8:600::1");
    assert!(r.contains("path [65061]") && r.contains("next-hop 2001:db8::61"), "{r}");
    let proto = bird.birdc("show protocols all v6");
    assert!(proto.contains("Established"), "{proto}");

    // The wrong password: the kernel drops every segment, nothing comes up.
    let reconfigure = |conf: String| {
        std::fs::write(s.dir.join("bird.conf"), conf).unwrap();
        let out = bird.birdc("configure");
        assert!(out.contains("Reconfigured") || out.contains("Reconfiguration"), "{out}");
        bird.birdc("restart v6");
    };
    reconfigure(bird_conf("another-key", true));
    wait_for("the session to go down", limit, || !established(&s, "v6"));
    std::thread::sleep(Duration::from_secs(5));
    assert!(!established(&s, "v6"), "a session came up with the wrong MD5 key");
    assert_eq!(prefixes(&s, "v6"), 0);

    // The right password but no TTL security: BIRD sends with its
    // multihop TTL (2) and petrel's minimum TTL of 255 drops it.
    reconfigure(bird_conf("s3cret-key", false));
    std::thread::sleep(Duration::from_secs(6));
    assert!(!established(&s, "v6"), "a session came up without GTSM");
}

/// A hand-written BGP speaker on loopback: its BGP messages, one at a time.
struct RawBgp(std::net::TcpStream, Vec<u8>);

impl RawBgp {
    fn new(s: std::net::TcpStream) -> RawBgp {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawBgp(s, Vec::new())
    }

    /// Connect from `from` to `to`.
    fn connect(from: &str, to: std::net::SocketAddr) -> RawBgp {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&format!("{from}:0").parse::<std::net::SocketAddr>().unwrap().into())
            .unwrap();
        sock.connect(&to.into()).unwrap();
        RawBgp::new(sock.into())
    }

    fn send(&mut self, m: &petrel_bgp_wire::Message<'_>) {
        use std::io::Write;
        let mut b = Vec::new();
        petrel_bgp_wire::encode(m, &mut b);
        self.0.write_all(&b).unwrap();
    }

    fn open(&mut self, asn: u16, bgp_id: u32) {
        self.send(&petrel_bgp_wire::Message::Open(petrel_bgp_wire::Open {
            version: 4,
            my_as: asn,
            hold_time: 9,
            bgp_id,
            capabilities: vec![
                petrel_bgp_wire::Capability::Multiprotocol { afi: 1, safi: 1 },
                petrel_bgp_wire::Capability::FourOctetAs(asn as u32),
            ],
        }));
    }

    /// The next message's type (1 OPEN, 3 NOTIFICATION, 4 KEEPALIVE) and
    /// body.
    fn next(&mut self) -> (u8, Vec<u8>) {
        use std::io::Read;
        loop {
            if self.1.len() >= 19 {
                let len = u16::from_be_bytes([self.1[16], self.1[17]]) as usize;
                if self.1.len() >= len {
                    let m: Vec<u8> = self.1.drain(..len).collect();
                    return (m[18], m[19..].to_vec());
                }
            }
            let mut b = [0u8; 4096];
            let n = self.0.read(&mut b).expect("a message from petrel");
            assert!(n > 0, "petrel closed the connection");
            self.1.extend_from_slice(&b[..n]);
        }
    }
}

/// RFC 4271 §6.8 against a hand-written speaker: petrel (BGP Identifier
/// 127.0.0.5) has connected and sent its OPEN when the peer connects too.
/// A peer with a higher identifier keeps its own connection: petrel closes
/// its own with Cease/7 and establishes on the peer's. A peer with a lower
/// one has its connection closed with Cease/7, and petrel's stays.
#[test]
fn connection_collisions_keep_the_higher_identifier() {
    let n = 19;
    let listen = free_port();
    let peer_port = free_port();
    let lst = std::net::TcpListener::bind(format!("127.{n}.0.2:{peer_port}")).unwrap();
    let s = petrel_with(
        "bgp-collision",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.5"
listen = "127.{n}.0.1:{listen}"

[[bgp.peer]]
name = "raw"
pop = "ams"
address = "127.{n}.0.2"
port = {peer_port}
asn = 65090
hold_time = 9
connect_retry_secs = 1
"#
        ),
    );
    let petrel_addr: std::net::SocketAddr = format!("127.{n}.0.1:{listen}").parse().unwrap();
    let higher = u32::from(std::net::Ipv4Addr::new(127, 0, 0, 9));
    let lower = u32::from(std::net::Ipv4Addr::new(127, 0, 0, 1));
    let keepalive = petrel_bgp_wire::Message::Keepalive;

    // 1. The peer's identifier is higher: its connection stays.
    let mut ours = RawBgp::new(lst.accept().unwrap().0);
    assert_eq!(ours.next().0, 1, "petrel's OPEN");
    let mut theirs = RawBgp::connect(&format!("127.{n}.0.2"), petrel_addr);
    theirs.open(65090, higher);
    let (t, body) = ours.next();
    assert_eq!((t, body[0], body[1]), (3, 6, 7), "Cease/7 on petrel's connection");
    assert_eq!(theirs.next().0, 1, "petrel's OPEN on the peer's connection");
    assert_eq!(theirs.next().0, 4, "and its KEEPALIVE");
    theirs.send(&keepalive);
    wait_for("Established on the peer's connection", Duration::from_secs(10), || {
        established(&s, "raw")
    });

    // 2. The session ends; petrel connects again, and this time the peer's
    // identifier is lower: petrel's connection stays.
    drop(theirs);
    drop(ours);
    wait_for("the session to go down", Duration::from_secs(10), || {
        !established(&s, "raw")
    });
    let mut ours = RawBgp::new(lst.accept().unwrap().0);
    assert_eq!(ours.next().0, 1, "petrel's OPEN");
    let mut theirs = RawBgp::connect(&format!("127.{n}.0.2"), petrel_addr);
    theirs.open(65090, lower);
    let (t, body) = theirs.next();
    assert_eq!((t, body[0], body[1]), (3, 6, 7), "Cease/7 on the peer's connection");
    ours.open(65090, lower);
    ours.send(&keepalive);
    assert_eq!(ours.next().0, 4, "petrel's KEEPALIVE on its own connection");
    wait_for("Established on petrel's connection", Duration::from_secs(10), || {
        established(&s, "raw")
    });
    // And an Established session keeps its connection.
    let mut third = RawBgp::connect(&format!("127.{n}.0.2"), petrel_addr);
    let (t, body) = third.next();
    assert_eq!(
        (t, body[0], body[1]),
        (3, 6, 7),
        "Cease/7 on a connection to an Established session"
    );
    assert!(established(&s, "raw"));
}

/// Path attributes as a hand-written speaker with 4-octet ASNs sends them:
/// ORIGIN IGP, an AS_SEQUENCE of `path`, NEXT_HOP, and `extra` after.
fn raw_attrs(path: &[u32], extra: &[u8]) -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0];
    // AS_SEQUENCE segments of at most 255 ASNs each.
    let mut segs = Vec::new();
    for chunk in path.chunks(255) {
        segs.extend_from_slice(&[2, chunk.len() as u8]);
        for asn in chunk {
            segs.extend_from_slice(&asn.to_be_bytes());
        }
    }
    if segs.len() > 255 {
        a.extend_from_slice(&[0x50, 2]);
        a.extend_from_slice(&(segs.len() as u16).to_be_bytes());
    } else {
        a.extend_from_slice(&[0x40, 2, segs.len() as u8]);
    }
    a.extend_from_slice(&segs);
    a.extend_from_slice(&[0x40, 3, 4, 127, 0, 0, 2]);
    a.extend_from_slice(extra);
    a
}

fn raw_update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    petrel_bgp_wire::encode(
        &petrel_bgp_wire::Message::Update(petrel_bgp_wire::Update {
            withdrawn: &[],
            attributes: attrs,
            nlri,
        }),
        &mut b,
    );
    b
}

/// What one peer can do to petrel is bounded: 200,000 ADD-PATH paths for
/// one prefix (64 are kept, and routes keep flowing), 100,000 malformed
/// UPDATEs (a few log lines), routes with 1000-AS paths (the attribute
/// budget ends the session with Cease/8), and 500 connections from an
/// unknown address (counted, a line or two of log).
#[test]
fn a_peer_cannot_exhaust_petrel() {
    use std::io::Write;
    let n = 21;
    let listen = free_port();
    let s = petrel_with(
        "bgp-abuse",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "127.0.0.5"
listen = "127.{n}.0.1:{listen}"
batch_ms = 100
max_attr_mb = 8

[[bgp.peer]]
name = "raw"
pop = "ams"
address = "127.{n}.0.2"
asn = 65090
passive = true
hold_time = 90
"#
        ),
    );
    let petrel_addr: std::net::SocketAddr = format!("127.{n}.0.1:{listen}").parse().unwrap();
    let mut p = RawBgp::connect(&format!("127.{n}.0.2"), petrel_addr);
    p.send(&petrel_bgp_wire::Message::Open(petrel_bgp_wire::Open {
        version: 4,
        my_as: 65090,
        hold_time: 90,
        bgp_id: u32::from(std::net::Ipv4Addr::new(127, 0, 0, 9)),
        capabilities: vec![
            petrel_bgp_wire::Capability::Multiprotocol { afi: 1, safi: 1 },
            petrel_bgp_wire::Capability::FourOctetAs(65090),
            petrel_bgp_wire::Capability::AddPath(vec![(1, 1, 2)]),
        ],
    }));
    assert_eq!(p.next().0, 1, "petrel's OPEN");
    assert_eq!(p.next().0, 4);
    p.send(&petrel_bgp_wire::Message::Keepalive);
    wait_for("the session", Duration::from_secs(10), || established(&s, "raw"));
    // End of the initial table: an empty UPDATE (End-of-RIB).
    p.0.write_all(&raw_update(&[], &[])).unwrap();

    // 1. A path storm: 200,000 paths for 203.0.113.0/24, 500 per UPDATE.
    let attrs = raw_attrs(&[65090, 65010], &[]);
    let t0 = Instant::now();
    for k in 0..400u32 {
        let mut nlri = Vec::new();
        for j in 0..500u32 {
            nlri.extend_from_slice(&(k * 500 + j + 1).to_be_bytes());
            nlri.extend_from_slice(&[24, 203, 0, 113]);
        }
        p.0.write_all(&raw_update(&attrs, &nlri)).unwrap();
    }
    // A route sent after the storm is in the served view at once.
    let mut nlri = 1u32.to_be_bytes().to_vec();
    nlri.extend_from_slice(&[24, 198, 51, 100]);
    p.0.write_all(&raw_update(&attrs, &nlri)).unwrap();
    wait_for("the route after the storm", Duration::from_secs(30), || {
        bgp_route(&s, "198.51.100.7").contains("198.51.100.0/24")
    });
    eprintln!(
        "200,000 paths for one prefix, then a route: served after {:?}",
        t0.elapsed()
    );
    wait_for("the storm's count", Duration::from_secs(10), || {
        let sum = summary(&s);
        let raw = peer(&sum, "raw");
        raw["prefixes"] == 65 && raw["paths_refused"] == 200_000 - 64
    });
    assert_eq!(common::metric(&s, "petrel_bgp_paths_refused_total"), 200_000 - 64);

    // 2. 100,000 UPDATEs with a malformed COMMUNITIES (3 octets): each is
    // treat-as-withdraw; the log gets a line per interval, not per UPDATE.
    let bad = raw_attrs(&[65090, 65010], &[0xc0, 8, 3, 1, 2, 3]);
    let mut burst = Vec::new();
    for i in 0..100_000u32 {
        let mut nlri = 7u32.to_be_bytes().to_vec();
        nlri.extend_from_slice(&[24, 10, (i >> 8) as u8, i as u8]);
        burst.extend(raw_update(&bad, &nlri));
    }
    p.0.write_all(&burst).unwrap();
    wait_for("every malformed UPDATE counted", Duration::from_secs(60), || {
        common::metric(&s, "petrel_bgp_rfc7606_errors_total") == 100_000
    });
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    let lines = log.lines().filter(|l| l.contains("treat-as-withdraw")).count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines for 100,000 malformed UPDATEs"
    );
    assert!(established(&s, "raw"));

    // 3. Unconfigured addresses: counted, logged in aggregate.
    for _ in 0..500 {
        let c = RawBgp::connect(&format!("127.{n}.0.9"), petrel_addr);
        drop(c);
    }
    wait_for("500 unknown connections counted", Duration::from_secs(20), || {
        common::metric(&s, "petrel_bgp_unconfigured_connections_total") == 500
    });
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    let lines = log.lines().filter(|l| l.contains("not a configured peer")).count();
    assert!((1..=3).contains(&lines), "{lines} log lines for 500 connections");

    // 4. Distinct 1000-AS paths, about 4 KB of attributes a route: the
    // 8 MiB budget ends the session with Cease/8 and drops its routes.
    let mut sent = 0;
    let notification = loop {
        let path: Vec<u32> = (0..1000).map(|k| 65090 + k + sent).collect();
        let mut nlri = 9u32.to_be_bytes().to_vec();
        nlri.extend_from_slice(&[24, 11, (sent >> 8) as u8, sent as u8]);
        if p.0.write_all(&raw_update(&raw_attrs(&path, &[]), &nlri)).is_err() {
            break p.next();
        }
        sent += 1;
        assert!(sent < 20_000, "no Cease after {sent} long routes");
        if sent % 500 == 0 {
            p.0.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let ready = std::io::Read::read(&mut p.0, &mut b).is_ok();
            p.0.set_nonblocking(false).unwrap();
            if ready {
                p.1.push(b[0]);
                break p.next();
            }
        }
    };
    // KEEPALIVEs may come first.
    let mut m = notification;
    while m.0 == 4 {
        m = p.next();
    }
    assert_eq!((m.0, m.1[0], m.1[1]), (3, 6, 8), "Cease/8 (Out of Resources)");
    wait_for("the peer's routes gone", Duration::from_secs(10), || {
        peer(&summary(&s), "raw")["prefixes"] == 0
    });
    eprintln!("Cease/8 after {sent} routes with 1000-AS paths");
}
