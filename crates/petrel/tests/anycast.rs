//! The anycast channel against real routers, in network namespaces the
//! tests create and remove: petrel runs in "pop-a" and speaks BGP over a
//! veth link to its edge router (BIRD 2, FRR or GoBGP), as it would in a
//! POP. Nothing leaves the namespaces.
//!
//! Needs root (namespaces, veth links): `sudo scripts/test`.

// Tests of the running binary time it from outside.
#![allow(clippy::disallowed_methods)]

mod common;

use common::netns::{link, Netns};
use common::routers::*;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// Petrel in `ns` with POPs ams and nyc, AS 64600, and the given sections
/// (`[bgp]` tail, peers, anycast blocks, checks).
struct Petrel {
    s: Server,
    ns_name: String,
    cfg: std::path::PathBuf,
}

impl Petrel {
    fn start(ns: &Netns, tag: &str, body: &str) -> Petrel {
        Petrel::start_with(ns, tag, body, &[])
    }

    /// `start`, with more files (name, content) beside the config.
    fn start_with(ns: &Netns, tag: &str, body: &str, files: &[(&str, &str)]) -> Petrel {
        let dir = tempdir(tag);
        let (port, admin) = (free_port(), free_port());
        std::fs::write(dir.join("example.net.zone"), TWO_POP_ZONE).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let cfg = dir.join("petrel.toml");
        std::fs::write(&cfg, config(port, admin, body)).unwrap();
        let s = spawn_in(ns, dir, &cfg, port, admin);
        Petrel {
            s,
            ns_name: ns.name.clone(),
            cfg,
        }
    }

    /// The CLI against this server, from inside its namespace.
    fn cli(&self, args: &[&str]) -> String {
        let admin = self.s.admin.to_string();
        let out = std::process::Command::new(tool("ip"))
            .args(["netns", "exec", &self.ns_name, BIN])
            .args(args)
            .args(["--admin", &admin])
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(out.status.success(), "petrel {args:?}: {o}{e}");
        o
    }

    /// Stop (SIGKILL) and start again on the same config and state file.
    fn restart(self, ns: &Netns) -> Petrel {
        let (dir, cfg, port, admin) = (self.s.dir.clone(), self.cfg.clone(), self.s.port, self.s.admin.port());
        drop(self);
        let s = spawn_in(ns, dir, &cfg, port, admin);
        Petrel {
            s,
            ns_name: ns.name.clone(),
            cfg,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.s.dir.join("petrel.log")).unwrap()
    }

    /// Rewrite the config's variable part and reload; the reload's outcome.
    fn reload_with(&self, body: &str) -> Result<(), String> {
        let (port, admin) = (self.s.port, self.s.admin.port());
        std::fs::write(&self.cfg, config(port, admin, body)).unwrap();
        let admin = self.s.admin.to_string();
        let out = std::process::Command::new(tool("ip"))
            .args(["netns", "exec", &self.ns_name, BIN, "reload", "--admin", &admin])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            // The server's reasons (JSON on stdout), then the CLI's.
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn status(&self, ns: &Netns) -> petrel_api::AnycastStatus {
        let body = ns.enter(|| http_get(self.s.admin, "/api/v1/anycast"));
        serde_json::from_str(&body[body.find("\r\n\r\n").unwrap() + 4..]).unwrap()
    }
}

fn config(port: u16, admin: u16, body: &str) -> String {
    two_pop_config(port, admin, "state_file = \"state.json\"", body)
}

/// A TCP health check of nyc on the POP's own loopback, at 100 ms, fall 1.
fn nyc_check(port: u16) -> String {
    format!(
        r#"
[[pop.check]]
type = "tcp"
address = "127.0.0.1"
port = {port}
interval_ms = 100
timeout_ms = 100
rise = 1
fall = 1
"#
    )
}

fn sub(p: &Petrel, name: &str) -> std::path::PathBuf {
    let d = p.s.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// BIRD's per-protocol route change statistics: (updates, withdraws)
/// received and accepted since the session came up.
fn bird_imports(b: &Bird, proto: &str) -> (u64, u64) {
    let out = b.birdc(&format!("show protocols all {proto}"));
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    (field("Import updates:"), field("Import withdraws:"))
}

/// When BIRD's session `proto` last reached Established (BIRD's `show
/// protocols` "since" column): unchanged means the session was not reset.
fn bird_since(b: &Bird, proto: &str) -> String {
    let out = b.birdc(&format!("show protocols {proto}"));
    let line = out
        .lines()
        .find(|l| l.starts_with(proto))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("Established"), "{line}");
    line.split_whitespace().nth(3).unwrap().to_string()
}

/// BIRD as pop-a's edge router at 10.1.0.2, hearing petrel (10.1.0.1,
/// AS 64600) and, when `inet` is set, passing what it hears on to the
/// internet router at 10.2.0.2.
fn edge_bird(ns: &Netns, dir: &Path, inet: bool) -> Bird {
    let out = if inet {
        r#"
protocol bgp inet {
  local 10.2.0.1 as 64610;
  neighbor 10.2.0.2 as 64700;
  connect retry time 1;
  ipv4 { import none; export all; };
}"#
    } else {
        ""
    };
    Bird::start_in(
        Some(ns),
        dir,
        &format!(
            r#"
router id 10.1.0.2;
protocol device {{ scan time 1; }}
protocol bgp petrel {{
  local 10.1.0.2 as 64610;
  neighbor 10.1.0.1 as 64600;
  passive on;
  hold time 9;
  ipv4 {{ import all; export none; }};
}}
{out}
"#
        ),
    )
}

/// Pop-a (petrel) — its edge router (BIRD) — the internet (BIRD), which
/// also hears the same prefix from pop-b's router (BIRD, originating it
/// with a longer path). Petrel's health checks and drains move the
/// internet's best route between the POPs; what petrel sends shows at
/// both routers, and `petrel anycast`, the API, the metrics and the log
/// say the same.
#[test]
fn health_and_drains_move_the_internets_best_route_between_pops() {
    let mut pa = Netns::new("pop-a");
    let mut edge = Netns::new("edge-a");
    let mut inet = Netns::new("inet");
    let mut pb = Netns::new("pop-b");
    link(&mut pa, &["10.1.0.1/30"], &mut edge, &["10.1.0.2/30"]);
    link(&mut edge, &["10.2.0.1/30"], &mut inet, &["10.2.0.2/30"]);
    link(&mut pb, &["10.3.0.1/30"], &mut inet, &["10.3.0.2/30"]);
    let target_port = free_port();
    let p = Petrel::start(
        &pa,
        "anycast-inet",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "10.1.0.1"
owned = ["192.0.2.0/24"]
hold_down_secs = 0

[[bgp.peer]]
name = "edge-a"
pop = "nyc"
address = "10.1.0.2"
asn = 64610
hold_time = 9
connect_retry_secs = 1

[[anycast]]
name = "web"
pop = "nyc"
prefixes = ["192.0.2.0/24"]
drain_grace_secs = 3

[[anycast.neighbor]]
peer = "edge-a"
prepend = 1
med = 20
communities = ["64610:100"]
large_communities = ["64600:7:8"]
{}"#,
            nyc_check(target_port)
        ),
    );
    let target = pa.enter(|| Target::start(target_port));
    let edge_a = edge_bird(&edge, &sub(&p, "edge-a"), true);
    let _pop_b = Bird::start_in(
        Some(&pb),
        &sub(&p, "pop-b"),
        r#"
router id 10.3.0.1;
protocol device { scan time 1; }
protocol static s4 { ipv4; route 192.0.2.0/24 blackhole; }
filter longer { bgp_path.prepend(64620); bgp_path.prepend(64620); bgp_path.prepend(64620); accept; }
protocol bgp inet {
  local 10.3.0.1 as 64620;
  neighbor 10.3.0.2 as 64700;
  connect retry time 1;
  ipv4 { import none; export filter longer; };
}
"#,
    );
    let internet = Bird::start_in(
        Some(&inet),
        &sub(&p, "internet"),
        r#"
router id 10.2.0.2;
protocol device { scan time 1; }
protocol bgp pop_a {
  local 10.2.0.2 as 64700;
  neighbor 10.2.0.1 as 64610;
  passive on;
  ipv4 { import all; export none; };
}
protocol bgp pop_b {
  local 10.3.0.2 as 64700;
  neighbor 10.3.0.1 as 64620;
  passive on;
  ipv4 { import all; export none; };
}
"#,
    );
    // The internet's best route: the one BIRD marks primary.
    let best = || {
        let r = internet.birdc("show route 192.0.2.0/24 all primary");
        r.lines()
            .find_map(|l| l.trim().strip_prefix("BGP.as_path: "))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let (via_a, via_b) = ("64610 64600 64600", "64620 64620 64620 64620");
    wait_for("the internet to prefer pop-a (petrel)", LIMIT, || best() == via_a);
    // What petrel sent, at its edge router: the prepend, the MED, the
    // communities, and petrel's own address as the next hop.
    let r = edge_a.birdc("show route 192.0.2.0/24 all");
    for want in [
        "via 10.1.0.1",
        "BGP.as_path: 64600 64600",
        "BGP.med: 20",
        "BGP.community: (64610,100)",
        "BGP.large_community: (64600, 7, 8)",
    ] {
        assert!(r.contains(want), "{want} in {r}");
    }
    // The communities travel on to the internet.
    let r = internet.birdc("show route 192.0.2.0/24 all primary");
    assert!(r.contains("(64610,100)"), "{r}");

    // pop-a's service dies: the internet moves to pop-b; back, it returns.
    drop(target);
    wait_for("the move to pop-b", LIMIT, || best() == via_b);
    assert!(!edge_a.birdc("show route 192.0.2.0/24").contains("192.0.2.0/24"));
    let target = pa.enter(|| Target::start(target_port));
    wait_for("the return to pop-a", LIMIT, || best() == via_a);

    // Drain: GRACEFUL_SHUTDOWN first (at the edge and at the internet),
    // the withdrawal after the grace period; undrain restores.
    p.cli(&["pop", "drain", "nyc"]);
    wait_for("GRACEFUL_SHUTDOWN at the edge", LIMIT, || {
        edge_a.birdc("show route 192.0.2.0/24 all").contains("(65535,0)")
    });
    let seen = Instant::now();
    wait_for("GRACEFUL_SHUTDOWN at the internet", LIMIT, || {
        internet.birdc("show route 192.0.2.0/24 all").contains("(65535,0)")
    });
    let st = p.status(&pa);
    assert_eq!(st.routes[0].standing, "draining", "{st:?}");
    wait_for("the drain's move to pop-b", LIMIT, || best() == via_b);
    assert!(
        seen.elapsed() >= Duration::from_secs(2),
        "withdrawn {:?} after GRACEFUL_SHUTDOWN was seen (grace: 3 s)",
        seen.elapsed()
    );
    p.cli(&["pop", "undrain", "nyc"]);
    wait_for("pop-a again, without GRACEFUL_SHUTDOWN", LIMIT, || {
        best() == via_a && !internet.birdc("show route 192.0.2.0/24 all").contains("(65535,0)")
    });

    // `petrel anycast`, the API, the metrics and the log.
    let out = p.cli(&["anycast"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap_or_else(|| panic!("{out}"));
    for want in ["192.0.2.0/24", "edge-a", "announced", "64610:100"] {
        assert!(line.contains(want), "{want} in {out}");
    }
    let st = p.status(&pa);
    assert_eq!(st.routes.len(), 1);
    assert!(st.routes[0].session_up, "{st:?}");
    assert!(st.updates_sent >= 6 && st.flips >= 2, "{st:?}");
    let m = pa.enter(|| http_get(p.s.admin, "/metrics"));
    assert!(
        m.contains(
            "petrel_anycast_announced{service=\"web\",prefix=\"192.0.2.0/24\",neighbor=\"edge-a\",standing=\"announced\"} 1"
        ),
        "{m}"
    );
    let log = p.log();
    assert!(
        log.contains("anycast: announced") && log.contains("anycast: withdrawn"),
        "{log}"
    );
    drop(target);
}

/// The announcements' policy at one edge router (BIRD): a prefix that is
/// not owned, too long or RPKI-invalid is never sent (the reload that asks
/// for it is refused and the last good state keeps being announced); a
/// session reset re-announces exactly the current set; a reload that only
/// changes a community sends one UPDATE per prefix and resets nothing.
#[test]
fn policy_reloads_and_session_resets_send_exactly_the_difference() {
    let mut pa = Netns::new("pop-a");
    let mut edge = Netns::new("edge-a");
    link(&mut pa, &["10.1.0.1/30"], &mut edge, &["10.1.0.2/30"]);
    let body = |community: &str, extra_prefix: &str| {
        format!(
            r#"
[bgp]
asn = 64600
router_id = "10.1.0.1"
owned = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
vrp_file = "vrps.json"
hold_down_secs = 0

[[bgp.peer]]
name = "edge-a"
pop = "nyc"
address = "10.1.0.2"
asn = 64610
hold_time = 9
connect_retry_secs = 1

[[anycast]]
name = "web"
pop = "nyc"
prefixes = ["192.0.2.0/24", "198.51.100.0/24"{extra_prefix}]

[[anycast.neighbor]]
peer = "edge-a"
communities = ["{community}"]
"#
        )
    };
    // Valid from AS 64600: ours; 203.0.113.0/24 is another AS's.
    let vrps = r#"{"roas": [
        {"asn": "AS64600", "prefix": "192.0.2.0/24", "maxLength": 24},
        {"asn": "AS64600", "prefix": "198.51.100.0/24", "maxLength": 24},
        {"asn": "AS64999", "prefix": "203.0.113.0/24", "maxLength": 24}]}"#;
    let p = Petrel::start_with(&pa, "anycast-policy", &body("64610:100", ""), &[("vrps.json", vrps)]);
    let bird = edge_bird(&edge, &sub(&p, "edge-a"), false);
    let ours = || {
        let r = bird.birdc("show route protocol petrel");
        let mut v: Vec<String> = r
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.contains('/'))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let both = vec!["192.0.2.0/24".to_string(), "198.51.100.0/24".to_string()];
    wait_for("both prefixes at BIRD", LIMIT, || ours() == both);
    assert_eq!(bird_imports(&bird, "petrel"), (2, 0));

    // Not owned, too long, RPKI-invalid: each reload is refused, with the
    // reason; BIRD keeps exactly what it had.
    for (extra, why) in [
        (", \"100.64.0.0/24\"", "not inside any prefix of `bgp.owned`"),
        (", \"192.0.2.0/25\"", "longer than /24"),
        (", \"203.0.113.0/24\"", "RPKI-invalid"),
    ] {
        let err = p.reload_with(&body("64610:100", extra)).unwrap_err();
        assert!(err.contains(why), "{why} in {err}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ours(), both);
    assert_eq!(bird_imports(&bird, "petrel"), (2, 0));

    // A reload that only changes the community: one UPDATE per prefix,
    // no withdrawal, the session not reset.
    let since = bird_since(&bird, "petrel");
    p.reload_with(&body("64610:200", "")).unwrap();
    wait_for("the new community on both prefixes", LIMIT, || {
        bird.birdc("show route protocol petrel all")
            .matches("(64610,200)")
            .count()
            == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(bird_imports(&bird, "petrel"), (4, 0));
    assert_eq!(bird_since(&bird, "petrel"), since, "the session was reset");

    // The POP goes down (forced): both withdrawn. A session reset then
    // re-announces exactly the current set: nothing. Back up: both, and a
    // reset re-announces exactly those two.
    p.cli(&["pop", "force-down", "nyc"]);
    wait_for("both withdrawn", LIMIT, || ours().is_empty());
    bird.birdc("restart petrel");
    wait_for("the session back", LIMIT, || {
        bird.birdc("show protocols petrel").contains("Established")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(ours().is_empty());
    assert_eq!(bird_imports(&bird, "petrel"), (0, 0));
    p.cli(&["pop", "force-up", "nyc"]);
    wait_for("both again", LIMIT, || ours() == both);
    bird.birdc("restart petrel");
    wait_for("the session back", LIMIT, || {
        bird.birdc("show protocols petrel").contains("Established")
    });
    wait_for("both after the reset", LIMIT, || ours() == both);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(bird_imports(&bird, "petrel"), (2, 0));
    assert_eq!(
        bird.birdc("show route protocol petrel all")
            .matches("(64610,200)")
            .count(),
        2
    );
}

/// RFC 2439 damping of petrel's own flaps, at the default parameters
/// (1000 per withdrawal, suppress above 2000, reuse below 750, half-life
/// 15 min): a service that flaps every second for a minute costs the
/// Internet three withdrawals and two re-announcements, then nothing; the
/// prefix stays suppressed for as long as the penalty takes to decay.
#[test]
fn a_flapping_service_is_damped() {
    let mut pa = Netns::new("pop-a");
    let mut edge = Netns::new("edge-a");
    link(&mut pa, &["10.1.0.1/30"], &mut edge, &["10.1.0.2/30"]);
    let target_port = free_port();
    // The service is up before petrel starts: its first check finds it up,
    // and the flaps counted are the test's own.
    let mut target = Some(pa.enter(|| Target::start(target_port)));
    let p = Petrel::start(
        &pa,
        "anycast-damping",
        &format!(
            r#"
[bgp]
asn = 64600
router_id = "10.1.0.1"
owned = ["192.0.2.0/24"]
# No hold-down, so that every flap reaches damping.
hold_down_secs = 0

[[bgp.peer]]
name = "edge-a"
pop = "nyc"
address = "10.1.0.2"
asn = 64610
connect_retry_secs = 1

[[anycast]]
name = "web"
pop = "nyc"
prefixes = ["192.0.2.0/24"]

[[anycast.neighbor]]
peer = "edge-a"
{}"#,
            nyc_check(target_port)
        ),
    );
    let bird = edge_bird(&edge, &sub(&p, "edge-a"), false);
    wait_for("the announcement", LIMIT, || {
        bird.birdc("show route protocol petrel").contains("192.0.2.0/24")
    });
    assert_eq!(bird_imports(&bird, "petrel"), (1, 0));
    // A minute of flapping: down one second, up the next.
    let t0 = Instant::now();
    let mut downs = Vec::new();
    while t0.elapsed() < Duration::from_secs(60) {
        if target.take().is_none() {
            target = Some(pa.enter(|| Target::start(target_port)));
        } else {
            downs.push(Instant::now());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if target.is_none() {
        target = Some(pa.enter(|| Target::start(target_port)));
    }
    // Predicted: withdrawals at the first three downs, re-announcements
    // after the first two; the third withdrawal takes the penalty to about
    // 3000, over 2000. The penalty after each withdrawal is the previous
    // one decayed, plus 1000.
    let half_life = 900.0;
    let mut penalty: f64 = 0.0;
    for w in downs.windows(2).take(2) {
        penalty += 1000.0;
        penalty *= 0.5f64.powf((w[1] - w[0]).as_secs_f64() / half_life);
    }
    penalty += 1000.0;
    assert!(penalty > 2000.0, "{penalty}");
    // Allow the last health check to land.
    std::thread::sleep(Duration::from_secs(2));
    let (updates, withdraws) = bird_imports(&bird, "petrel");
    assert_eq!((updates, withdraws), (3, 3), "after {} downs", downs.len());
    assert!(!bird.birdc("show route protocol petrel").contains("192.0.2.0/24"));
    // Suppressed until the penalty decays to 750: about two half-lives
    // after the third withdrawal, whatever the health is meanwhile.
    let st = p.status(&pa);
    let r = &st.routes[0];
    assert_eq!(r.standing, "suppressed", "{st:?}");
    assert!(r.why.contains("RFC 2439"), "{st:?}");
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let since_third = downs[2].elapsed().as_secs_f64();
    let predicted = now_unix - since_third + half_life * (penalty / 750.0).log2();
    let until = r.until_unix.unwrap() as f64;
    assert!(
        (until - predicted).abs() <= 5.0,
        "suppressed until {until}, predicted {predicted} (penalty {penalty})"
    );
    let now_penalty = penalty * 0.5f64.powf(since_third / half_life);
    assert!((r.penalty - now_penalty).abs() < 20.0, "{} vs {now_penalty}", r.penalty);
    // Healthy again, but nothing is sent while suppressed.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bird_imports(&bird, "petrel"), (3, 3));
    let out = p.cli(&["anycast"]);
    assert!(out.contains("suppressed"), "{out}");
    drop(target);
}

/// FRR's bgpd as pop-a's edge router: it takes petrel's announcement with
/// petrel's own address as the next hop, the policy's prepend and
/// communities, sees the drain's GRACEFUL_SHUTDOWN and loses the route
/// after the grace period, and again after petrel restarts; undrain
/// restores it. What FRR's session cannot
/// carry (IPv6) or refuses (a martian next hop) shows in `petrel anycast`.
#[test]
fn announcements_reach_frr_as_the_edge_router() {
    let mut pa = Netns::new("pop-a");
    let mut edge = Netns::new("edge-frr");
    link(&mut pa, &["10.1.0.1/30"], &mut edge, &["10.1.0.2/30"]);
    let body = |next_hop: &str| {
        format!(
            r#"
[bgp]
asn = 64600
router_id = "10.1.0.1"
owned = ["192.0.2.0/24", "2001:db8::/32"]
hold_down_secs = 0

[[bgp.peer]]
name = "frr"
pop = "ams"
address = "10.1.0.2"
asn = 4200000030
connect_retry_secs = 1

[[anycast]]
name = "web"
pop = "ams"
prefixes = ["192.0.2.0/24", "2001:db8:1::/48"]
drain_grace_secs = 2

[[anycast.neighbor]]
peer = "frr"
prepend = 1
communities = ["64600:42"]
large_communities = ["64600:1:1"]
{next_hop}
"#
        )
    };
    let p = Petrel::start(&pa, "anycast-frr", &body(""));
    let dir = sub(&p, "frr");
    let conf = format!(
        "frr defaults traditional\nhostname petrel-anycast-frr\nlog file {log}\n!\nrouter bgp 4200000030\n bgp router-id 10.1.0.2\n no bgp ebgp-requires-policy\n neighbor 10.1.0.1 remote-as 64600\n neighbor 10.1.0.1 passive\n address-family ipv4 unicast\n  neighbor 10.1.0.1 soft-reconfiguration inbound\n exit-address-family\n!\n",
        log = dir.join("frr.log").display()
    );
    std::fs::write(dir.join("bgpd.conf"), conf).unwrap();
    let vty = dir.display().to_string();
    let _frr = bgpd_in(Some(&edge), &dir, 179, "10.1.0.2", &[]);
    let show = || {
        let out = std::process::Command::new(tool("vtysh"))
            .args([
                "--vty_socket",
                &vty,
                "-d",
                "bgpd",
                "-c",
                "show bgp ipv4 unicast 192.0.2.0/24",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    wait_for("the announcement at FRR", LIMIT, || show().contains("64600 64600"));
    let r = show();
    for want in [
        "10.1.0.1 from 10.1.0.1",
        "Community: 64600:42",
        "Large Community: 64600:1:1",
        "valid",
    ] {
        assert!(r.contains(want), "{want} in {r}");
    }
    // FRR did not take IPv6 unicast on this session: the IPv6 prefix is
    // not sent, and `petrel anycast` says why.
    let out = p.cli(&["anycast"]);
    let line = out
        .lines()
        .find(|l| l.contains("2001:db8:1::/48"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("[not sent: the session did not negotiate this family]"),
        "{out}"
    );
    p.cli(&["pop", "drain", "ams"]);
    // FRR names RFC 8326's community.
    wait_for("GRACEFUL_SHUTDOWN at FRR", LIMIT, || {
        show().contains("graceful-shutdown")
    });
    wait_for("the withdrawal at FRR", LIMIT, || !show().contains("64600 64600"));
    // The drain survives a restart: nothing is announced, not even with
    // GRACEFUL_SHUTDOWN, until undrain.
    let p = p.restart(&pa);
    wait_for("the session again", LIMIT, || {
        p.cli(&["anycast"])
            .lines()
            .any(|l| l.contains("192.0.2.0/24") && !l.contains("[session down"))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!show().contains("64600 64600"), "{}", show());
    assert!(!p.log().contains("anycast: announced"), "{}", p.log());
    assert_eq!(p.status(&pa).routes[0].standing, "drained");
    p.cli(&["pop", "undrain", "ams"]);
    wait_for("the announcement again", LIMIT, || {
        let r = show();
        r.contains("64600 64600") && !r.contains("graceful-shutdown")
    });
    // A next hop FRR refuses (a loopback address, a martian): FRR resets
    // the session with NOTIFICATION 3/8, and `petrel anycast` says so.
    p.reload_with(&body("next_hop = \"127.0.0.2\"")).unwrap();
    wait_for("the refusal in `petrel anycast`", LIMIT, || {
        let out = p.cli(&["anycast"]);
        out.contains("[session down:") && out.contains("3/8")
    });
}

/// GoBGP 3 receives petrel's announcements over an IPv6 session: the IPv6
/// prefix in MP_REACH_NLRI with petrel's own IPv6 address as the next hop,
/// one IPv4 prefix with the next hop the policy names, another with
/// petrel's IPv6 address (RFC 8950); de-preferred
/// (prepended) rather than withdrawn when the POP is forced down.
#[test]
fn ipv6_announcements_reach_gobgp() {
    let mut pa = Netns::new("pop-a");
    let mut edge = Netns::new("edge-gobgp");
    link(&mut pa, &["fd00:1::1/64"], &mut edge, &["fd00:1::2/64"]);
    let p = Petrel::start(
        &pa,
        "anycast-gobgp",
        r#"
[bgp]
asn = 64600
router_id = "10.1.0.1"
owned = ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"]
hold_down_secs = 0

[[bgp.peer]]
name = "gobgp"
pop = "ams"
address = "fd00:1::2"
asn = 4200000040
connect_retry_secs = 1

[[anycast]]
name = "v6"
pop = "ams"
prefixes = ["2001:db8:1::/48"]

[[anycast.neighbor]]
peer = "gobgp"
communities = ["65040:1"]
on_down = "depref"
down_prepend = 2

# Over an IPv6 session without extended next hops, an IPv4 prefix needs
# an IPv4 next hop named.
[[anycast]]
name = "v4"
pop = "ams"
prefixes = ["192.0.2.0/24"]

[[anycast.neighbor]]
peer = "gobgp"
next_hop = "10.9.0.1"

# ... or with petrel's IPv6 address: GoBGP negotiates RFC 8950.
[[anycast]]
name = "v4-extended"
pop = "ams"
prefixes = ["198.51.100.0/24"]

[[anycast.neighbor]]
peer = "gobgp"
"#,
    );
    let dir = sub(&p, "gobgp");
    std::fs::write(
        dir.join("gobgpd.toml"),
        r#"
[global.config]
  as = 4200000040
  router-id = "10.1.0.2"
  local-address-list = ["fd00:1::2"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "fd00:1::1"
    peer-as = 64600
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#,
    )
    .unwrap();
    let api = free_port();
    let api_host = format!("127.0.0.1:{api}");
    let _g = daemon_in(
        Some(&edge),
        &dir,
        "gobgpd.log",
        "gobgpd",
        &["-f", "gobgpd.toml", "--api-hosts", &api_host, "--pprof-disable", "-p"],
        &[],
    );
    let api = api.to_string();
    let rib = |family: &str| {
        let out = edge
            .cmd(&tool("gobgp"))
            .args(["-u", "127.0.0.1", "-p", &api, "global", "rib", "-a", family])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    wait_for("the IPv6 announcement at GoBGP", LIMIT, || {
        rib("ipv6").contains("2001:db8:1::/48")
    });
    let r = rib("ipv6");
    for want in ["fd00:1::1", "64600", "65040:1"] {
        assert!(r.contains(want), "{want} in {r}");
    }
    let r = rib("ipv4");
    assert!(r.contains("192.0.2.0/24") && r.contains("10.9.0.1"), "{r}");
    let line = r
        .lines()
        .find(|l| l.contains("198.51.100.0/24"))
        .unwrap_or_else(|| panic!("{r}"));
    assert!(line.contains("fd00:1::1"), "{r}");
    // Forced down: the IPv6 prefix stays, with our AS three times.
    p.cli(&["pop", "force-down", "ams"]);
    wait_for("the de-preferred announcement", LIMIT, || {
        rib("ipv6").contains("64600 64600 64600")
    });
}

/// Over an IPv6-only link to BIRD, the IPv4 prefix goes with petrel's IPv6
/// address as its next hop (RFC 8950, negotiated with BIRD's `extended
/// next hop`), the IPv6 prefix as usual.
#[test]
fn ipv4_over_an_ipv6_session_uses_extended_next_hops_at_bird() {
    let mut pa = Netns::new("pop-a");
    let mut edge = Netns::new("edge-a");
    link(&mut pa, &["fd00:1::1/64"], &mut edge, &["fd00:1::2/64"]);
    let p = Petrel::start(
        &pa,
        "anycast-extnh",
        r#"
[bgp]
asn = 64600
router_id = "10.1.0.1"
owned = ["192.0.2.0/24", "2001:db8::/32"]
hold_down_secs = 0

[[bgp.peer]]
name = "edge-a"
pop = "ams"
address = "fd00:1::2"
asn = 64610
connect_retry_secs = 1

[[anycast]]
name = "dual"
pop = "ams"
prefixes = ["192.0.2.0/24", "2001:db8:1::/48"]

[[anycast.neighbor]]
peer = "edge-a"
communities = ["64610:100"]
"#,
    );
    let bird = Bird::start_in(
        Some(&edge),
        &sub(&p, "edge-a"),
        r#"
router id 10.1.0.2;
protocol device { scan time 1; }
protocol bgp petrel {
  local fd00:1::2 as 64610;
  neighbor fd00:1::1 as 64600;
  passive on;
  ipv4 { extended next hop on; import all; export none; };
  ipv6 { import all; export none; };
}
"#,
    );
    wait_for("both prefixes at BIRD", LIMIT, || {
        let r = bird.birdc("show route protocol petrel");
        r.contains("192.0.2.0/24") && r.contains("2001:db8:1::/48")
    });
    let r = bird.birdc("show route 192.0.2.0/24 all");
    for want in ["via fd00:1::1", "BGP.next_hop: fd00:1::1", "BGP.community: (64610,100)"] {
        assert!(r.contains(want), "{want} in {r}");
    }
    let r = bird.birdc("show route 2001:db8:1::/48 all");
    assert!(r.contains("via fd00:1::1"), "{r}");
    assert!(!p.log().contains("not sent"), "{}", p.log());
}
