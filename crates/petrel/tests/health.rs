//! Health checks drive answers: real TCP and HTTP services on loopback that
//! the test stops and starts, queried with dig.

// Tests of the running binary time it from outside.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP (or minimal HTTP) service the test can stop and start on one port.
struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// 0: answer 200 "ok", 1: answer 500, for the HTTP flavour.
fn serve(port: u16, http: Option<Arc<AtomicU8>>) -> Service {
    // Stopped and started again on the same port.
    let l = listen_again(port);
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    if let Some(mode) = &http {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                        let mut buf = [0u8; 2048];
                        let _ = c.read(&mut buf);
                        let resp: &[u8] = if mode.load(Ordering::Relaxed) == 0 {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        } else {
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfail"
                        };
                        let _ = c.write_all(resp);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Service {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ask until the answer is `want`; return how long it took.
fn until(s: &Server, subnet: &str, want: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let out = dig(
            s,
            &["www.demo.petrel.test", "A", &format!("+subnet={subnet}"), "+short"],
        );
        if out.trim() == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "answer for {subnet} is still `{}`, wanted {want}",
            out.trim()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tcp_and_http_checks_move_answers_within_the_detection_bound() {
    let dir = tempdir("health");
    let (port, admin) = (free_port(), free_port());
    let (tcp_port, http_port) = (free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    // ams: one TCP target; iad: one HTTP target that must say "ok".
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            "name = \"ams\"\n",
            &format!("name = \"ams\"\ncheck = [{{ type = \"tcp\", address = \"127.0.0.1\", port = {tcp_port}, interval_ms = 200, timeout_ms = 100, rise = 2, fall = 2 }}]\n"),
        )
        .replace(
            "name = \"iad\"\n",
            &format!("name = \"iad\"\ncheck = [{{ type = \"http\", address = \"127.0.0.1\", port = {http_port}, path = \"/health\", expect_body = \"ok\", interval_ms = 200, timeout_ms = 100, rise = 2, fall = 2 }}]\n"),
        );
    std::fs::write(&cfg, text).unwrap();
    let tcp = serve(tcp_port, None);
    let mode = Arc::new(AtomicU8::new(0));
    let _http = serve(http_port, Some(mode.clone()));
    let s = spawn(dir, &cfg, port, admin);
    let paris = "2.16.0.0/24";
    let new_york = "23.1.0.0/24";
    until(&s, paris, "192.0.2.10", Duration::from_secs(5));
    until(&s, new_york, "198.51.100.10", Duration::from_secs(5));

    // Detection bound: fall (2) x interval (200 ms) + timeout (100 ms) = 500 ms,
    // plus the probe period the failure may start in; 3 s leaves room for a
    // loaded CI machine.
    drop(tcp);
    let took = until(&s, paris, "198.51.100.10", Duration::from_secs(3));
    eprintln!("tcp target down -> answer moved after {took:?}");
    let tcp = serve(tcp_port, None);
    let took = until(&s, paris, "192.0.2.10", Duration::from_secs(3));
    eprintln!("tcp target back -> answer moved after {took:?}");

    mode.store(1, Ordering::Relaxed);
    let took = until(&s, new_york, "192.0.2.10", Duration::from_secs(3));
    eprintln!("http target 500 -> answer moved after {took:?}");
    let (ok, out, err) = petrel(&["health", "--admin", &s.admin.to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("iad          down"), "{out}");
    assert!(
        out.contains(&format!("iad/http:127.0.0.1:{http_port}")) && out.contains("FAIL HTTP 500"),
        "{out}"
    );
    let metrics = http_get(s.admin, "/metrics");
    assert!(
        metrics.contains(&format!(
            "petrel_health_target_up{{pop=\"iad\",target=\"iad/http:127.0.0.1:{http_port}\"}} 0"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("petrel_pop_up{pop=\"iad\",state=\"down\"} 0"),
        "{metrics}"
    );
    mode.store(0, Ordering::Relaxed);
    until(&s, new_york, "198.51.100.10", Duration::from_secs(3));
    drop(tcp);
}

/// While a change is under way, probes come at `fast_interval_ms`: with a
/// 4 s interval and fall 3, a dead target is confirmed down about 4.5 s
/// after it dies (interval + 2 fast probes + timeout), not 8 s or more.
#[test]
fn a_change_under_way_is_confirmed_at_the_fast_interval() {
    let dir = tempdir("fastinter");
    let (port, admin, svc_port) = (free_port(), free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"ams\"\n",
        &format!("name = \"ams\"\ncheck = [{{ type = \"tcp\", address = \"127.0.0.1\", port = {svc_port}, interval_ms = 4000, fast_interval_ms = 200, timeout_ms = 500, rise = 3, fall = 3 }}]\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let svc = serve(svc_port, None);
    let s = spawn(dir, &cfg, port, admin);
    let paris = "2.16.0.0/24";
    until(&s, paris, "192.0.2.10", Duration::from_secs(10));
    drop(svc);
    // At most 4000 + 2 x 200 + 500 ms; without the fast interval, at least
    // 8000 ms (two more full intervals after the first failure).
    let took = until(&s, paris, "198.51.100.10", Duration::from_secs(7));
    eprintln!("down after {took:?}");
    let _svc = serve(svc_port, None);
    // Back within an interval and two fast probes; room for a loaded host.
    let took = until(&s, paris, "192.0.2.10", Duration::from_secs(12));
    eprintln!("up after {took:?}");
}

#[test]
fn a_target_down_from_the_start_keeps_its_pop_out() {
    let dir = tempdir("health-initial");
    let (port, admin, dead) = (free_port(), free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"ams\"\n",
        &format!("name = \"ams\"\ncheck = [{{ type = \"tcp\", address = \"127.0.0.1\", port = {dead}, interval_ms = 200, timeout_ms = 100, initial = \"down\" }}]\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    // Nothing listens on `dead`: ams never comes up; Paris goes to iad.
    until(&s, "2.16.0.0/24", "198.51.100.10", Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(600));
    until(&s, "2.16.0.0/24", "198.51.100.10", Duration::from_millis(10));
}

#[test]
fn dns_icmp_and_exec_checks() {
    let dir = tempdir("health-dns-exec");
    let (port, admin) = (free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let flag = dir.join("ams-is-up");
    std::fs::write(&flag, "").unwrap();
    // sin asks petrel itself for a name that exists; gru for one that does
    // not (NXDOMAIN, so down); ams runs a program that tests a flag file.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            "name = \"sin\"\n",
            &format!("name = \"sin\"\ncheck = [{{ type = \"dns\", address = \"127.0.0.1\", port = {port}, query = \"ns1.demo.petrel.test.\", expect_answer = \"127.0.0.1\", interval_ms = 200, timeout_ms = 100, rise = 1, fall = 1 }}]\n"),
        )
        .replace(
            "name = \"gru\"\n",
            &format!("name = \"gru\"\ncheck = [{{ type = \"dns\", address = \"127.0.0.1\", port = {port}, query = \"missing.demo.petrel.test.\", interval_ms = 200, timeout_ms = 100, rise = 1, fall = 1 }}]\n"),
        )
        .replace(
            "name = \"iad\"\n",
            "name = \"iad\"\ncheck = [{ type = \"icmp\", address = \"127.0.0.1\", interval_ms = 200, timeout_ms = 150, rise = 1, fall = 1 }, { type = \"icmp\", address = \"::1\", interval_ms = 200, timeout_ms = 150 }]\n",
        )
        .replace(
            "name = \"ams\"\n",
            &format!("name = \"ams\"\ncheck = [{{ type = \"exec\", command = [\"/bin/sh\", \"-c\", \"test -e {}\"], interval_ms = 200, timeout_ms = 150, rise = 1, fall = 1 }}]\n", flag.display()),
        );
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    until(&s, "14.1.0.0/24", "203.0.113.10", Duration::from_secs(3)); // sin stays up
    until(&s, "177.1.0.0/24", "198.51.100.10", Duration::from_secs(3)); // gru down: iad
    until(&s, "2.16.0.0/24", "192.0.2.10", Duration::from_secs(3)); // ams up
    std::fs::remove_file(&flag).unwrap();
    until(&s, "2.16.0.0/24", "198.51.100.10", Duration::from_secs(3)); // ams down: iad
    let (ok, out, _) = petrel(&["health", "--admin", &s.admin.to_string()]);
    assert!(
        ok && out.contains("FAIL rcode NXDOMAIN") && out.contains("FAIL exit status: 1"),
        "{out}"
    );
}

fn petrel_with_token(token: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env("PETREL_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn operator_overrides_need_the_token_show_in_explain_and_persist() {
    let dir = tempdir("overrides");
    let (port, admin, svc_port) = (free_port(), free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let token = "s3cret-token-for-tests-only";
    std::fs::write(dir.join("admin.token"), format!("{token}\n")).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("state_file = \"demo-state.json\"", "state_file = \"demo-state.json\"\nadmin_token_file = \"admin.token\"")
        .replace(
            "name = \"ams\"\n",
            &format!("name = \"ams\"\ncheck = [{{ type = \"tcp\", address = \"127.0.0.1\", port = {svc_port}, interval_ms = 200, timeout_ms = 100, rise = 1, fall = 1 }}]\n"),
        );
    std::fs::write(&cfg, text).unwrap();
    let _svc = serve(svc_port, None);
    let s = spawn(dir.clone(), &cfg, port, admin);
    let a = s.admin.to_string();
    let paris = "2.16.0.0/24";
    until(&s, paris, "192.0.2.10", Duration::from_secs(3));

    // Changes need the token; reads do not.
    let (code, body) = http(s.admin, "POST", "/api/v1/pops/ams/force-down");
    assert_eq!(code, 401, "{body}");
    let (ok, _, err) = petrel(&["pop", "--admin", &a, "force-down", "ams"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (code, _) = http(s.admin, "GET", "/api/v1/pops");
    assert_eq!(code, 200);

    let (ok, _, err) = petrel_with_token(token, &["pop", "--admin", &a, "force-down", "ams"]);
    assert!(ok, "{err}");
    until(&s, paris, "198.51.100.10", Duration::from_millis(500));
    let (ok, out, _) = petrel(&[
        "explain",
        "--admin",
        &a,
        "--service",
        "www.demo.petrel.test",
        "--client",
        paris,
    ]);
    assert!(
        ok && out.contains("skipped: down (forced down by an operator)"),
        "{out}"
    );
    petrel_with_token(token, &["pop", "--admin", &a, "clear", "ams"]);
    until(&s, paris, "192.0.2.10", Duration::from_millis(500));

    // A target forced down takes its POP (one target of one) down with it.
    let target = format!("ams/tcp:127.0.0.1:{svc_port}");
    let (ok, _, err) = petrel_with_token(token, &["pop", "--admin", &a, "force-down", &target]);
    assert!(ok, "{err}");
    until(&s, paris, "198.51.100.10", Duration::from_secs(2));
    let (ok, out, _) = petrel(&["pop", "--admin", &a, "list"]);
    assert!(ok && out.contains("health checks: 0 of 1 targets up"), "{out}");

    // The override survives a restart.
    let adm = s.admin.port();
    drop(s);
    let s = spawn(dir, &cfg, port, adm);
    until(&s, paris, "198.51.100.10", Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    until(&s, paris, "198.51.100.10", Duration::from_millis(10));
    petrel_with_token(token, &["pop", "--admin", &a, "clear", &target]);
    until(&s, paris, "192.0.2.10", Duration::from_secs(2));
}

#[test]
fn https_checks_with_sni_custom_ca_and_verification_off() {
    let dir = tempdir("https");
    let (port, admin, tls_port) = (free_port(), free_port(), free_port());
    let openssl = tool("openssl");
    // A test CA and a leaf certificate for pop.test signed by it (webpki,
    // rightly, does not accept a CA certificate as the server's own).
    let (ca, ca_key, cert, key) = (
        dir.join("ca.pem"),
        dir.join("ca.key"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    let ext = dir.join("leaf.ext");
    std::fs::write(&ext, "subjectAltName=DNS:pop.test\nbasicConstraints=CA:FALSE\n").unwrap();
    let ossl = |args: &[&str]| {
        let out = std::process::Command::new(&openssl).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |x: &std::path::Path| x.display().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    ossl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "1",
                "-subj",
                "/CN=petrel test CA",
                "-keyout",
                &p(&ca_key),
                "-out",
                &p(&ca),
            ],
        ]
        .concat(),
    );
    let csr = p(&dir.join("leaf.csr"));
    ossl(
        &[
            &["req"][..],
            &ec,
            &["-subj", "/CN=pop.test", "-keyout", &p(&key), "-out", &csr],
        ]
        .concat(),
    );
    ossl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    let server = Kill(
        std::process::Command::new(&openssl)
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &format!("127.0.0.1:{tls_port}"),
                "-cert",
            ])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cfg = write_config(&dir, port, admin, "");
    let common =
        format!("address = \"127.0.0.1\", port = {tls_port}, interval_ms = 300, timeout_ms = 250, rise = 1, fall = 1");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"sin\"\n",
        &format!(
            "name = \"sin\"\nup_thresh = 0.6\ncheck = [\n  {{ type = \"https\", name = \"own-ca\", {common}, sni = \"pop.test\", ca_file = \"{}\" }},\n  {{ type = \"https\", name = \"web-pki\", {common}, sni = \"pop.test\", method = \"HEAD\" }},\n  {{ type = \"https\", name = \"no-verify\", {common}, verify = false, path = \"/status\" }},\n]\n",
            ca.display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    let singapore = "14.1.0.0/24";
    // Two of three targets pass (custom CA; verification off); the one that
    // trusts only the web PKI fails. 2/3 >= 0.6: sin is up.
    std::thread::sleep(Duration::from_millis(900));
    until(&s, singapore, "203.0.113.10", Duration::from_secs(3));
    let (ok, out, _) = petrel(&["health", "--admin", &s.admin.to_string()]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("sin/")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().filter(|l| l.contains("ok HTTP 200")).count() == 2, "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("FAIL TLS") && l.contains("certificate")),
        "{out}"
    );
    drop(server);
    until(&s, singapore, "192.0.2.10", Duration::from_secs(3));
}

#[test]
fn flapping_pop_under_dnsperf_load_never_answers_past_the_detection_bound() {
    let dir = tempdir("flap");
    let (port, admin, svc_port) = (free_port(), free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"ams\"\n",
        &format!("name = \"ams\"\ncheck = [{{ type = \"tcp\", address = \"127.0.0.1\", port = {svc_port}, interval_ms = 200, timeout_ms = 100, rise = 2, fall = 2 }}]\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let svc = serve(svc_port, None);
    let s = spawn(dir.clone(), &cfg, port, admin);
    let paris = "2.16.0.0/24";
    until(&s, paris, "192.0.2.10", Duration::from_secs(3));
    let qfile = dir.join("queries.txt");
    std::fs::write(&qfile, "www.demo.petrel.test A\ncdn.demo.petrel.test A\n").unwrap();
    // Bounded load: 8 s at 2000 QPS, every query with ECS 2.16.0.0/24.
    let perf = std::process::Command::new(tool("dnsperf"))
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(&qfile)
        .args(["-l", "11", "-Q", "2000", "-c", "2", "-t", "2", "-E", "8:00011800021000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // The service flaps: 1 s up, 2.5 s down, three times.
    let toggler = std::thread::spawn(move || {
        let mut downs = Vec::new();
        let mut svc = Some(svc);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(1000));
            svc = None;
            let down_at = t0.elapsed();
            std::thread::sleep(Duration::from_millis(2500));
            svc.get_or_insert_with(|| serve(svc_port, None));
            downs.push((down_at, t0.elapsed()));
        }
        drop(svc);
        downs
    });
    let mut answers = Vec::new();
    while t0.elapsed() < Duration::from_millis(10_300) {
        let at = t0.elapsed();
        let out = dig(
            &s,
            &["www.demo.petrel.test", "A", &format!("+subnet={paris}"), "+short"],
        );
        answers.push((at, t0.elapsed(), out.trim().to_string()));
    }
    let downs = toggler.join().unwrap();
    // fall (2) x interval (200 ms) + timeout (100 ms), plus one interval for
    // the probe period the failure starts in, and 500 ms for a loaded CI
    // machine running other tests at the same time.
    let bound = Duration::from_millis(2 * 200 + 100 + 200 + 500);
    let mut moved = 0;
    for (sent, _, answer) in &answers {
        for (down, up) in &downs {
            if sent > down && sent < up {
                if answer == "192.0.2.10" {
                    assert!(
                        *sent - *down <= bound,
                        "ams answered {:?} after its service went down (bound {bound:?})",
                        *sent - *down
                    );
                } else {
                    moved += 1;
                }
            }
        }
    }
    assert!(
        moved > 10,
        "answers moved away from ams while it was down ({moved} seen of {})",
        answers.len()
    );
    assert_dnsperf_clean(&perf.wait_with_output().unwrap(), 15_000);
}

#[test]
fn a_pop_with_some_targets_down_is_degraded_and_answers_with_short_ttls() {
    let dir = tempdir("degraded");
    let (port, admin, a, b) = (free_port(), free_port(), free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let check = |name: &str, p: u16| {
        format!("{{ type = \"tcp\", name = \"{name}\", address = \"127.0.0.1\", port = {p}, interval_ms = 200, timeout_ms = 100, rise = 1, fall = 1 }}")
    };
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"ams\"\n",
        &format!(
            "name = \"ams\"\nup_thresh = 0.5\ndegraded_below = 1.0\ncheck = [{}, {}]\n",
            check("a", a),
            check("b", b)
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let _sa = serve(a, None);
    let sb = serve(b, None);
    let s = spawn(dir, &cfg, port, admin);
    let ttl = |s: &Server| -> String {
        let out = dig(
            s,
            &["www.demo.petrel.test", "A", "+subnet=2.16.0.0/24", "+noall", "+answer"],
        );
        out.split_whitespace().nth(1).unwrap_or("").to_string()
    };
    until(&s, "2.16.0.0/24", "192.0.2.10", Duration::from_secs(3));
    assert_eq!(ttl(&s), "30");
    drop(sb);
    // One of two targets down: still ams (0.5 >= up_thresh), TTL min(30, 5).
    let t = Instant::now();
    while ttl(&s) != "5" {
        assert!(t.elapsed() < Duration::from_secs(3), "TTL did not drop");
        std::thread::sleep(Duration::from_millis(50));
    }
    until(&s, "2.16.0.0/24", "192.0.2.10", Duration::from_millis(10));
    let (ok, out, _) = petrel(&["pop", "--admin", &s.admin.to_string(), "list"]);
    assert!(
        ok && out.contains("ams          degraded health checks: 1 of 2 targets up"),
        "{out}"
    );
}

#[test]
fn initial_wait_answers_only_after_the_first_results() {
    let dir = tempdir("initial-wait");
    let (port, admin, dead) = (free_port(), free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    // With the default initial state (up) ams would be answered for
    // fall x interval = 3 s; with "wait" its first (failed) result counts.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"ams\"\n",
        &format!("name = \"ams\"\ncheck = [{{ type = \"tcp\", address = \"127.0.0.1\", port = {dead}, interval_ms = 1000, timeout_ms = 300, fall = 3, initial = \"wait\" }}]\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    let first = dig(&s, &["www.demo.petrel.test", "A", "+subnet=2.16.0.0/24", "+short"]);
    assert_eq!(
        first.trim(),
        "198.51.100.10",
        "the very first answer already avoids ams"
    );
}

/// A network namespace this test creates, reached over a veth pair with
/// addresses from 198.18.0.0/15 (RFC 2544, benchmarking): an ICMP target
/// whose echo replies the test can turn off (the namespace's own
/// `icmp_echo_ignore_all`) without touching the host. Removed on drop.
struct IcmpTarget {
    ns: String,
    host_if: String,
}

impl IcmpTarget {
    const HOST: &'static str = "198.18.77.1";
    const TARGET: &'static str = "198.18.77.2";

    fn create() -> IcmpTarget {
        let id = std::process::id() % 100_000;
        let t = IcmpTarget {
            ns: format!("petrel-icmp-{id}"),
            host_if: format!("pti{id}a"),
        };
        let peer_if = format!("pti{id}b");
        let host_addr = format!("{}/30", Self::HOST);
        let target_addr = format!("{}/30", Self::TARGET);
        let steps: [&[&str]; 8] = [
            &["netns", "add", &t.ns],
            &["link", "add", &t.host_if, "type", "veth", "peer", "name", &peer_if],
            &["link", "set", &peer_if, "netns", &t.ns],
            &["addr", "add", &host_addr, "dev", &t.host_if],
            &["link", "set", &t.host_if, "up"],
            &["-n", &t.ns, "addr", "add", &target_addr, "dev", &peer_if],
            &["-n", &t.ns, "link", "set", &peer_if, "up"],
            &["-n", &t.ns, "link", "set", "lo", "up"],
        ];
        for args in steps {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2)");
            assert!(
                out.status.success(),
                "ip {}: {} (the test needs root for a network namespace)",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        t
    }

    /// Whether the target answers echo requests.
    fn answer(&self, on: bool) {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "sh", "-c"])
            .arg(format!(
                "echo {} > /proc/sys/net/ipv4/icmp_echo_ignore_all",
                if on { 0 } else { 1 }
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for IcmpTarget {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .output();
    }
}

#[test]
fn icmp_checks_fail_when_echo_requests_go_unanswered() {
    let target = IcmpTarget::create();
    let dir = tempdir("health-icmp");
    let (port, admin) = (free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"ams\"\n",
        &format!(
            "name = \"ams\"\ncheck = [{{ type = \"icmp\", address = \"{}\", interval_ms = 200, timeout_ms = 150, rise = 1, fall = 2 }}]\n",
            IcmpTarget::TARGET
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    let paris = "2.16.0.0/24";
    until(&s, paris, "192.0.2.10", Duration::from_secs(3));
    // Echo requests still arrive, and go unanswered: probes time out.
    target.answer(false);
    let took = until(&s, paris, "198.51.100.10", Duration::from_secs(3));
    eprintln!("icmp target silent -> answer moved after {took:?}");
    let (ok, out, err) = petrel(&["health", "--admin", &s.admin.to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("ams          down"), "{out}");
    assert!(
        out.contains(&format!("ams/icmp:{}", IcmpTarget::TARGET)) && out.contains("FAIL"),
        "{out}"
    );
    target.answer(true);
    let took = until(&s, paris, "192.0.2.10", Duration::from_secs(3));
    eprintln!("icmp target answers again -> answer moved after {took:?}");
}

/// Raise this process's descriptor limit so that a test can hold thousands
/// of connections.
fn raise_nofile(want: u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = want.min(l.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
    assert!(
        l.rlim_cur >= want,
        "the test needs {want} descriptors, the host allows {}",
        l.rlim_max
    );
}

#[test]
fn a_descriptor_flood_leaves_probes_reloads_and_dns_over_tcp_working() {
    raise_nofile(3000);
    let dir = tempdir("fdflood");
    let (port, admin, tcp_port) = (free_port(), free_port(), free_port());
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "name = \"iad\"\n",
        &format!("name = \"iad\"\ncheck = [{{ type = \"tcp\", address = \"127.0.0.1\", port = {tcp_port}, interval_ms = 100, timeout_ms = 100, rise = 1, fall = 1 }}]\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let _target = serve(tcp_port, None);
    // 512 descriptors in all, as a small container would give.
    let s = spawn_under(&["prlimit", "--nofile=512:512"], dir, &cfg, port, admin);
    let q = ["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+short"];
    until(&s, "23.1.0.0/24", "198.51.100.10", Duration::from_secs(5));
    let refused_before = metric(&s, "petrel_admin_connections_refused_total");
    // 1,100 idle connections to the admin API and 1,100 to DNS over TCP.
    let dns = std::net::SocketAddr::from(([127, 0, 0, 1], s.port));
    let mut held = Vec::new();
    for i in 0..1100u32 {
        if let Ok(c) = std::net::TcpStream::connect(s.admin) {
            held.push(c);
        }
        // From 100 addresses, so that the per-source limit (32) is not
        // what holds them back.
        let from = std::net::SocketAddr::from(([127, 0, 3, (i % 100) as u8 + 1], 0));
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&from.into()).unwrap();
        if sock.connect(&dns.into()).is_ok() {
            held.push(sock.into());
        }
    }
    // Several probe intervals with every connection slot taken.
    std::thread::sleep(Duration::from_millis(1500));
    // The health target stays up (a probe that cannot get a descriptor
    // would not count against it either), and DNS answers as before.
    assert_eq!(
        dig(&s, &q).trim(),
        "198.51.100.10",
        "iad was marked down during the flood"
    );
    // DNS over TCP: a new client gets room (an idle connection is closed).
    let mut tq = q.to_vec();
    tq.push("+tcp");
    assert_eq!(dig(&s, &tq).trim(), "198.51.100.10");
    // A reload (SIGHUP) still opens its files.
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(1500));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        metric(&s, "petrel_reloads_ok_total"),
        1,
        "the reload failed during the flood"
    );
    assert_eq!(metric(&s, "petrel_reloads_failed_total"), 0);
    let refused = metric(&s, "petrel_admin_connections_refused_total") - refused_before;
    assert!(refused >= 1000, "only {refused} admin connections were turned away");
    assert!(metric(&s, "petrel_dns_tcp_evicted_total") >= 1);
    assert_eq!(metric(&s, "petrel_health_probes_not_made_total"), 0);
    assert_eq!(
        metric(&s, "petrel_health_pop_flips_total"),
        0,
        "a POP changed state during the flood"
    );
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    let accept_lines = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(accept_lines <= 4, "{accept_lines} accept-failure lines");
}

#[test]
fn the_admin_api_refuses_web_pages_and_asks_for_the_token_properly() {
    let dir = tempdir("adminguard");
    let (port, admin) = (free_port(), free_port());
    let token = "0123456789abcdef-token";
    std::fs::write(dir.join("token"), token).unwrap();
    let cfg = write_config(&dir, port, admin, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[server]\n", "[server]\nadmin_token_file = \"token\"\n");
    std::fs::write(&cfg, text).unwrap();
    let s = spawn(dir, &cfg, port, admin);
    let raw = |req: String| -> String {
        let mut c = std::net::TcpStream::connect(s.admin).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut r = String::new();
        c.read_to_string(&mut r).unwrap();
        r
    };
    // DNS rebinding: a page whose name now points at 127.0.0.1.
    let r = raw(format!(
        "GET /api/v1/status HTTP/1.1\r\nHost: evil.example:{admin}\r\nConnection: close\r\n\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    // CSRF: a page elsewhere posts a drain, with the token even.
    let r = raw(format!(
        "POST /api/v1/pops/iad/drain HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    // No token: 401 with the challenge (RFC 6750 §3).
    let r = raw(format!(
        "POST /api/v1/pops/iad/drain HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"petrel\""),
        "{r}"
    );
    let q = ["www.demo.petrel.test", "A", "+subnet=23.1.0.0/24", "+short"];
    assert_eq!(dig(&s, &q).trim(), "198.51.100.10", "nothing was drained");
    // The scheme is case-insensitive; localhost is a name tools use.
    let r = raw(format!(
        "POST /api/v1/pops/iad/drain HTTP/1.1\r\nHost: localhost:{admin}\r\nAuthorization: bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(dig(&s, &q).trim(), "192.0.2.10");
    // The token file is readable by others: a warning at start.
    let log = std::fs::read_to_string(s.dir.join("petrel.log")).unwrap();
    assert!(log.contains("may be read by other users"), "{log}");
    // A listener others can reach needs a token: check says so.
    let open = s.dir.join("open.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("admin_token_file = \"token\"\n", "")
        .replace(&format!("127.0.0.1:{admin}"), "0.0.0.0:8053");
    std::fs::write(&open, text).unwrap();
    let (ok, _, err) = petrel(&["check", "--config", open.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("server.admin") && err.contains("needs `admin_token_file`"),
        "{err}"
    );
}
