//! The HTTP fronts against curl on loopback: redirects per rule and per
//! client (HTTP/1.1, HTTP/2 in clear and over TLS chosen by SNI), who may
//! speak for the client (X-Forwarded-For, the PROXY protocol), the edge's
//! streaming proxy to its content server and its remap, and the remap API.

// Tests of the running binary time it from outside.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The demo's data (CIDR map: 127.0.1.0/24 → sin, 127.0.2.0/24 → gru;
/// GeoIP: 23.1.0.0/16 is New York → iad; anything else → ams) with the
/// given `[[http]]` blocks, `{H1}`, `{H2}`, `{H3}` replaced by free ports.
fn petrel_http(tag: &str, http: &str) -> (Server, [u16; 3]) {
    let dir = tempdir(tag);
    let ports = [free_port(), free_port(), free_port()];
    let http = http
        .replace("{H1}", &ports[0].to_string())
        .replace("{H2}", &ports[1].to_string())
        .replace("{H3}", &ports[2].to_string())
        .replace("{DIR}", &dir.display().to_string());
    let (port, admin) = (free_port(), free_port());
    let cfg = write_config(&dir, port, admin, &http);
    (spawn(dir, &cfg, port, admin), ports)
}

/// curl's `-w` output for one request, and its exit status.
fn curl(args: &[&str]) -> String {
    let out = Command::new(tool("curl"))
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

const W: &str = "%{http_code} %{http_version} %{redirect_url}";

const RULES: &str = r#"
[[http.rule]]
name = "heavy"
hosts = ["cdn.demo.petrel.test"]
path_glob = "*.mp4|*.jpg"
service = "www.demo.petrel.test."
location = "https://{pop}.cdn.demo.petrel.test{path}{?query}"
"#;

#[test]
fn redirects_follow_rules_and_the_client_behind_trusted_proxies() {
    let (s, [h1, h2, _]) = petrel_http(
        "http-redirect",
        &format!(
            r#"
[[http]]
name = "front"
listen = ["127.0.0.1:{{H1}}"]
trusted_proxies = ["127.0.0.2/32"]
remap_api = true
header_timeout_secs = 1
{RULES}
[[http]]
name = "behind-lb"
listen = ["127.0.0.1:{{H2}}"]
trusted_proxies = ["127.0.0.2/32"]
proxy_protocol = true
{RULES}"#
        ),
    );
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let host = ["-H", "Host: cdn.demo.petrel.test"];
    // A heavy object: redirected, query kept; the page itself: not.
    let out = curl(&[&host[..], &["-w", W, "-o", "/dev/null", &url(h1, "/v/a.mp4?t=1&u=2")]].concat());
    assert_eq!(out, "302 1.1 https://ams.cdn.demo.petrel.test/v/a.mp4?t=1&u=2");
    let out = curl(&[&host[..], &["-w", W, "-o", "/dev/null", &url(h1, "/index.html")]].concat());
    assert_eq!(out, "404 1.1 ");
    let out = curl(&["-w", W, "-o", "/dev/null", "-H", "Host: other.test", &url(h1, "/a.mp4")]);
    assert!(out.starts_with("404"), "another host: {out}");
    // Headers that keep caches from handing one client's redirect to another.
    let head = curl(&[&host[..], &["-D", "-", "-o", "/dev/null", &url(h1, "/a.jpg")]].concat());
    let head = head.to_ascii_lowercase();
    assert!(head.contains("cache-control: private, max-age=30"), "{head}");
    assert!(head.contains("vary: x-forwarded-for"), "{head}");
    // HTTP/2 in clear (prior knowledge).
    let out = curl(
        &[
            &host[..],
            &[
                "--http2-prior-knowledge",
                "-w",
                W,
                "-o",
                "/dev/null",
                &url(h1, "/a.jpg"),
            ],
        ]
        .concat(),
    );
    assert_eq!(out, "302 2 https://ams.cdn.demo.petrel.test/a.jpg");
    // The client's own address decides: 127.0.1.5 is sin's.
    let out = curl(
        &[
            &host[..],
            &[
                "--interface",
                "127.0.1.5",
                "-w",
                W,
                "-o",
                "/dev/null",
                &url(h1, "/a.mp4"),
            ],
        ]
        .concat(),
    );
    assert_eq!(out, "302 1.1 https://sin.cdn.demo.petrel.test/a.mp4");
    // Explain shows what the HTTP rules do for the client.
    let out = explain_admin(&s, "www.demo.petrel.test", "127.0.1.5").unwrap();
    assert!(
        out.contains("HTTP (the client's own address, any family; no ECS scope applies):")
            && out.contains("front front rule heavy (redirect): 302 https://sin.cdn.demo.petrel.test{path}  (POP sin)")
            && out.contains("front behind-lb rule heavy (redirect)"),
        "{out}"
    );
    // X-Forwarded-For from the trusted proxy is believed (New York: iad),
    // from anyone else it is not.
    let xff = ["-H", "X-Forwarded-For: 198.51.100.99, 23.1.0.1"];
    let out = curl(
        &[
            &host[..],
            &xff,
            &[
                "--interface",
                "127.0.0.2",
                "-w",
                W,
                "-o",
                "/dev/null",
                &url(h1, "/a.mp4"),
            ],
        ]
        .concat(),
    );
    assert_eq!(out, "302 1.1 https://iad.cdn.demo.petrel.test/a.mp4");
    let out = curl(&[&host[..], &xff, &["-w", W, "-o", "/dev/null", &url(h1, "/a.mp4")]].concat());
    assert_eq!(out, "302 1.1 https://ams.cdn.demo.petrel.test/a.mp4");
    // A line the trusted proxy added that is not text ends the walk there:
    // the client's own earlier line does not count.
    let mut r = b"GET /a.mp4 HTTP/1.1\r\nHost: cdn.demo.petrel.test\r\nX-Forwarded-For: 23.1.0.1\r\nX-Forwarded-For: 198.51.100.\xff\r\nConnection: close\r\n\r\n".to_vec();
    assert!(
        raw_from("127.0.0.2", h1, &r).contains("location: https://ams."),
        "non-text line"
    );
    // The absolute form's authority wins over Host (RFC 9112 §3.2.2).
    r = b"GET http://cdn.demo.petrel.test/a.mp4 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n".to_vec();
    assert!(
        raw_from("127.0.0.1", h1, &r).contains("location: https://ams.cdn"),
        "absolute form"
    );
    // Connections that send nothing, or only part of HTTP/2's preface, are
    // closed after the header timeout (1 s here).
    for first in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let t0 = std::time::Instant::now();
        let got = raw_from("127.0.0.1", h1, first);
        assert!(
            got.is_empty() && t0.elapsed() < Duration::from_secs(4),
            "{got} after {:?}",
            t0.elapsed()
        );
    }

    // The PROXY protocol, from the trusted proxy: v1 (curl's own, and one
    // naming a New York client), v2 naming a sin client.
    let out = curl(
        &[
            &host[..],
            &[
                "--haproxy-protocol",
                "--interface",
                "127.0.0.2",
                "-w",
                W,
                "-o",
                "/dev/null",
                &url(h2, "/a.mp4"),
            ],
        ]
        .concat(),
    );
    assert_eq!(
        out, "302 1.1 https://ams.cdn.demo.petrel.test/a.mp4",
        "curl names itself"
    );
    let req = b"GET /a.mp4 HTTP/1.1\r\nHost: cdn.demo.petrel.test\r\nConnection: close\r\n\r\n";
    let v1 = [b"PROXY TCP4 23.1.0.1 127.0.0.1 40000 80\r\n".as_slice(), req].concat();
    assert!(raw_from("127.0.0.2", h2, &v1).contains("location: https://iad."), "v1");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[127, 0, 1, 9, 127, 0, 0, 1, 0x9c, 0x40, 0, 80]);
    v2.extend_from_slice(req);
    assert!(raw_from("127.0.0.2", h2, &v2).contains("location: https://sin."), "v2");
    // From an untrusted peer the header is not read: not HTTP, refused.
    let r = raw_from("127.0.0.1", h2, &v1);
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // A trusted peer without the header: dropped.
    assert_eq!(raw_from("127.0.0.2", h2, req), "");
    let m = http_get(s.admin, "/metrics");
    assert!(
        m.contains("petrel_http_requests_total{front=\"front\",rule=\"heavy\",action=\"redirect\"}"),
        "{m}"
    );
    assert!(m.contains("petrel_http_proxy_header_errors_total 1"), "{m}");

    // The remap API: a slow New York client at ams goes to iad.
    let api = |q: &str| curl(&[&url(h1, &format!("/v1/remap?{q}"))]);
    let v: serde_json::Value = serde_json::from_str(&api(
        "service=www.demo.petrel.test.&client=23.1.0.1&pop=ams&rtt_ms=150&path=/a.mp4",
    ))
    .unwrap();
    assert_eq!(v["action"], "redirect", "{v}");
    assert_eq!(v["pop"], "iad", "{v}");
    assert_eq!(v["location"], "https://iad.cdn.demo.petrel.test/a.mp4", "{v}");
    let v: serde_json::Value =
        serde_json::from_str(&api("service=www.demo.petrel.test&client=23.1.0.1&pop=iad&rtt_ms=150")).unwrap();
    assert_eq!(v["action"], "stay", "{v}");
    let v: serde_json::Value = serde_json::from_str(&api("service=nope&client=1.2.3.4")).unwrap();
    assert!(v["error"].as_str().unwrap().contains("no service named"), "{v}");
    let v: serde_json::Value = serde_json::from_str(&api(
        "service=www.demo.petrel.test&client=23.1.0.1&rtt_ms=150&path=/a%0d%0aSet-Cookie:x",
    ))
    .unwrap();
    assert!(v["error"].as_str().unwrap().contains("not a valid URL"), "{v}");
}

/// One request on a raw connection from `from`; the response, or "" when
/// the connection is closed without one.
fn raw_from(from: &str, port: u16, bytes: &[u8]) -> String {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(from.parse().unwrap(), 0).into()).unwrap();
    s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut c: TcpStream = s.into();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .to_ascii_lowercase()
        .replace("http/1.1", "HTTP/1.1")
}

/// A self-signed certificate for `name`, made with openssl.
fn cert(dir: &Path, name: &str) {
    let out = Command::new(tool("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.pem")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn tls_certificates_by_sni_with_http2_and_reload() {
    let dir = tempdir("http-tls-certs");
    cert(&dir, "a.test");
    cert(&dir, "b.test");
    let (s, [h1, _, _]) = petrel_http(
        "http-tls",
        &format!(
            r#"
[[http]]
name = "tls"
tls_listen = ["127.0.0.1:{{H1}}"]
certificates = [
  {{ cert = "{d}/a.test.pem", key = "{d}/a.test.key", names = ["a.test"] }},
  {{ cert = "{d}/b.test.pem", key = "{d}/b.test.key", names = ["b.test"] }},
]

[[http.rule]]
name = "all"
service = "www.demo.petrel.test."
location = "https://{{pop}}.{{host}}{{path}}"
"#,
            d = dir.display()
        ),
    );
    let get = |name: &str, extra: &[&str]| {
        let ca = dir.join(format!("{name}.pem")).display().to_string();
        let resolve = format!("{name}:{h1}:127.0.0.1");
        let url = format!("https://{name}:{h1}/x");
        curl(
            &[
                &[
                    "--cacert",
                    ca.as_str(),
                    "--resolve",
                    resolve.as_str(),
                    "-w",
                    W,
                    "-o",
                    "/dev/null",
                ],
                extra,
                &[url.as_str()],
            ]
            .concat(),
        )
    };
    // Each name gets its own certificate (curl trusts only that one).
    assert_eq!(get("a.test", &[]), "302 2 https://ams.a.test/x");
    assert_eq!(get("b.test", &[]), "302 2 https://ams.b.test/x");
    assert_eq!(get("a.test", &["--http1.1"]), "302 1.1 https://ams.a.test/x");
    // A new certificate for a.test: served after the reload (curl trusts
    // only the new one now).
    let old = std::fs::read(dir.join("a.test.pem")).unwrap();
    cert(&dir, "a.test");
    assert_ne!(old, std::fs::read(dir.join("a.test.pem")).unwrap());
    assert!(
        get("a.test", &[]).starts_with("000"),
        "the old certificate is still served before the reload"
    );
    let (ok, _, _) = petrel(&["reload", "--admin", &s.admin.to_string()]);
    assert!(ok);
    let t0 = std::time::Instant::now();
    while get("a.test", &[]) != "302 2 https://ams.a.test/x" {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the new certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A certificate file that no longer loads: the reload is refused and
    // names the file; the old certificates keep serving.
    std::fs::write(dir.join("b.test.pem"), "not a certificate").unwrap();
    let (ok, out, err) = petrel(&["reload", "--admin", &s.admin.to_string()]);
    assert!(!ok && (out + &err).contains("b.test.pem: no certificate in the file"));
    assert_eq!(get("a.test", &[]), "302 2 https://ams.a.test/x");
    // `petrel check` reads them too, and says which file.
    let (ok, _, err) = petrel(&["check", "--config", s.dir.join("demo.toml").to_str().unwrap()]);
    assert!(!ok && err.contains("b.test.pem: no certificate in the file"), "{err}");
}

/// A content server on loopback: `/big` is 8 MiB of a known pattern,
/// `/slow` streams ten chunks 100 ms apart; every request's headers are
/// kept for the test to read.
struct Upstream {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

impl Upstream {
    fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let seen = s2.clone();
                std::thread::spawn(move || loop {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match c.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    seen.lock().unwrap().push(text.clone());
                    // Read (and count) a request body of known length.
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    if c.read_exact(&mut body).is_err() {
                        return;
                    }
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    if path.starts_with("/trailers") {
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n");
                    } else if path.starts_with("/slow") {
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: slow\r\n\r\n");
                        for i in 0..10 {
                            let chunk = format!("chunk {i}\n");
                            let _ = write!(c, "{:x}\r\n{chunk}\r\n", chunk.len());
                            let _ = c.flush();
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        let _ = c.write_all(b"0\r\n\r\n");
                    } else {
                        let body = pattern(8 << 20);
                        let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Up: big\r\nX-Got: {len}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n", body.len());
                        let _ = c.write_all(&body);
                    }
                });
            }
        });
        Upstream { port, seen }
    }
}

#[test]
fn the_edge_proxies_to_its_content_server_or_remaps_once() {
    let up = Upstream::start();
    let (s, [h1, h2, _]) = petrel_http(
        "http-edge",
        &format!(
            r#"
[[http]]
name = "edge"
listen = ["127.0.0.1:{{H1}}"]
pop = "ams"
upstream = "127.0.0.1:{up}"
default = "upstream"
max_body_mb = 1

# Any RTT is too slow here: every client not at its best POP moves.
[[http.rule]]
name = "remap"
action = "edge"
path_prefix = "/v/"
service = "www.demo.petrel.test."
location = "http://{{pop}}.cdn.demo.petrel.test{{path}}{{?query}}"
rtt_threshold_ms = 0
marker = "query:moved"

[[http]]
name = "edge-cookie"
listen = ["127.0.0.1:{{H2}}"]
pop = "ams"
upstream = "127.0.0.1:{up}"

[[http.rule]]
name = "remap"
action = "edge"
service = "www.demo.petrel.test."
location = "http://{{pop}}.cdn.demo.petrel.test{{path}}"
rtt_threshold_ms = 0
marker = "cookie:moved"
marker_domain = "cdn.demo.petrel.test"
"#,
            up = up.port
        ),
    );
    let url = |port: u16, p: &str| format!("http://127.0.0.1:{port}{p}");
    // Not matched: proxied, 8 MiB byte for byte, over HTTP/1.1 and HTTP/2.
    let dir = s.dir.clone();
    for (i, extra) in [[""; 0].as_slice(), &["--http2-prior-knowledge"]]
        .into_iter()
        .enumerate()
    {
        let f = dir.join(format!("big{i}"));
        let out = curl(
            &[
                extra,
                &[
                    "-w",
                    "%{http_code} %{http_version}",
                    "-o",
                    f.to_str().unwrap(),
                    &url(h1, "/big?x=1"),
                ],
            ]
            .concat(),
        );
        assert!(out.starts_with("200"), "{out}");
        assert!(std::fs::read(&f).unwrap() == pattern(8 << 20), "body differs");
    }
    // Request bodies go through up to the limit (1 MiB here).
    let post = dir.join("post.bin");
    std::fs::write(&post, pattern(100 << 10)).unwrap();
    let data = format!("@{}", post.display());
    let head = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--data-binary",
        &data,
        &url(h1, "/upload"),
    ])
    .to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains("x-got: 102400"),
        "{head}"
    );
    std::fs::write(&post, pattern(2 << 20)).unwrap();
    let out = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "--data-binary",
        &data,
        &url(h1, "/upload"),
    ]);
    assert_eq!(out, "413");
    // What an untrusted client says of itself does not reach the upstream,
    // and the absolute form's authority is the Host the upstream gets.
    let r = raw_from(
        "127.0.0.1",
        h1,
        b"GET http://real.example/big?spoof HTTP/1.1\r\nHost: internal.example\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{}", &r[..r.len().min(300)]);
    let seen = up.seen.lock().unwrap().last().cloned().unwrap().to_ascii_lowercase();
    assert!(seen.contains("get /big?spoof http/1.1"), "{seen}");
    assert!(
        seen.contains("host: real.example") && !seen.contains("internal.example"),
        "{seen}"
    );
    assert!(
        seen.contains("x-forwarded-for: 127.0.0.1") && !seen.contains("6.6.6.6"),
        "{seen}"
    );
    // The upstream saw the client and the path, not hop-by-hop headers.
    let seen = up.seen.lock().unwrap().join("\n---\n").to_ascii_lowercase();
    assert!(seen.contains("get /big?x=1 http/1.1"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{seen}");
    assert!(seen.contains("via: 1.1 petrel"), "{seen}");
    // Trailers pass through (to a client that takes them: TE: trailers).
    let r = raw_from(
        "127.0.0.1",
        h1,
        b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    );
    assert!(r.contains("hello") && r.contains("x-checksum: abc123"), "{r}");
    // A slow upstream streams: the first chunk arrives long before the last.
    let t0 = std::time::Instant::now();
    let mut c = TcpStream::connect(("127.0.0.1", h1)).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    let first = t0.elapsed();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.contains("x-up: slow"), "{head}");
    assert!(
        first < Duration::from_millis(700),
        "first bytes after {first:?}: buffered?"
    );
    drop(c);

    // Matched, from ams's client (127.0.0.1 → ams): ams is its best POP, so
    // served here. From sin's client: moved to sin, marked; the marked
    // request is served here whatever its RTT.
    let out = curl(&["-w", "%{http_code}", "-o", "/dev/null", &url(h1, "/v/a")]);
    assert_eq!(out, "200");
    let out = curl(&[
        "--interface",
        "127.0.1.5",
        "-w",
        W,
        "-o",
        "/dev/null",
        &url(h1, "/v/a?t=1"),
    ]);
    assert_eq!(out, "302 1.1 http://sin.cdn.demo.petrel.test/v/a?t=1&moved=1");
    let out = curl(&[
        "--interface",
        "127.0.1.5",
        "-w",
        W,
        "-o",
        "/dev/null",
        &url(h1, "/v/a?t=1&moved=1"),
    ]);
    assert_eq!(out, "200 1.1 ");
    // The cookie marker.
    let head = curl(&[
        "--interface",
        "127.0.1.5",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &url(h2, "/v/a"),
    ])
    .to_ascii_lowercase();
    assert!(
        head.contains("set-cookie: moved=1; domain=cdn.demo.petrel.test"),
        "{head}"
    );
    let out = curl(&[
        "--interface",
        "127.0.1.5",
        "-H",
        "Cookie: moved=1",
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url(h2, "/v/a"),
    ]);
    assert_eq!(out, "200");
    let m = http_get(s.admin, "/metrics");
    for want in [
        "petrel_http_requests_total{front=\"edge\",rule=\"remap\",action=\"redirect\"} 1",
        "petrel_http_requests_total{front=\"edge\",rule=\"remap\",action=\"stay\"} 2",
        "petrel_http_connection_rtt_seconds_count{front=\"edge\",rule=\"remap\",action=\"redirect\"} 1",
        "petrel_http_upstream_latency_seconds_count",
    ] {
        assert!(m.contains(want), "{want} in {m}");
    }
    // SIGTERM while a slow response streams: it completes, and nothing new
    // is accepted.
    let mut c = TcpStream::connect(("127.0.0.1", h1)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    let _ = c.read(&mut first).unwrap();
    let ok = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("chunk 9") && rest.ends_with("0\r\n\r\n"),
        "cut short: {rest}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(TcpStream::connect(("127.0.0.1", h1)).is_err(), "still accepting");
}

/// One HTTP/1.1 request on an open connection: the status line.
fn request_on(c: &mut TcpStream, path: &str) -> String {
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: cdn.demo.petrel.test\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&got).lines().next().unwrap_or("").to_string()
}

#[test]
fn listeners_and_limits_follow_reloads_without_dropping_connections() {
    let front = |name: &str, port: &str, max: usize| {
        format!("[[http]]\nname = \"{name}\"\nlisten = [\"127.0.0.1:{port}\"]\nmax_connections = {max}\n{RULES}")
    };
    let (s, [h1, h2, h3]) = petrel_http("http-reload", &front("a", "{H1}", 2));
    let cfg = s.dir.join("demo.toml");
    let url = |port: u16| format!("http://127.0.0.1:{port}/a.mp4");
    let host = "Host: cdn.demo.petrel.test";
    let get = |port: u16| curl(&["-H", host, "-w", "%{http_code}", "-o", "/dev/null", &url(port)]);
    let mut c1 = TcpStream::connect(("127.0.0.1", h1)).unwrap();
    c1.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(request_on(&mut c1, "/a.mp4"), "HTTP/1.1 302 Found");
    let mut c2 = TcpStream::connect(("127.0.0.1", h1)).unwrap();
    c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(request_on(&mut c2, "/a.mp4"), "HTTP/1.1 302 Found");
    assert_eq!(get(h1), "000", "a third connection is over the limit of 2");

    // Front a moves from h1 to h2 with room for 3; front b appears on h3.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let base = &text[..text.find("[[http]]").unwrap()];
    let next = format!(
        "{base}{}\n{}",
        front("a", &h2.to_string(), 3),
        front("b", &h3.to_string(), 1)
    );
    std::fs::write(&cfg, &next).unwrap();
    let (ok, out, err) = petrel(&["reload", "--admin", &s.admin.to_string()]);
    assert!(ok, "{out}{err}");
    assert_eq!(get(h2), "302");
    assert_eq!(get(h3), "302");
    // The connections accepted on h1 are still served; h1 takes no more.
    assert_eq!(request_on(&mut c1, "/b.jpg"), "HTTP/1.1 302 Found");
    assert!(TcpStream::connect(("127.0.0.1", h1)).is_err(), "h1 is closed");
    // The limit is 3 now, across the front's addresses: c1 and c2 and one
    // more.
    let mut c3 = TcpStream::connect(("127.0.0.1", h2)).unwrap();
    c3.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(request_on(&mut c3, "/a.mp4"), "HTTP/1.1 302 Found");
    assert_eq!(get(h2), "000", "a fourth connection is over the limit of 3");
    drop((c1, c2));
    let t0 = std::time::Instant::now();
    while get(h2) != "302" {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the closed connections' slots are not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // An address that cannot be bound (held by another socket without
    // SO_REUSEPORT) fails the reload; the old config keeps serving.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    std::fs::write(&cfg, format!("{next}\n{}", front("c", &taken_port.to_string(), 5))).unwrap();
    let (ok, out, err) = petrel(&["reload", "--admin", &s.admin.to_string()]);
    assert!(!ok, "{out}");
    assert!(
        (out.clone() + &err).contains(&format!("cannot listen on http 127.0.0.1:{taken_port}")),
        "{out}{err}"
    );
    assert_eq!(get(h3), "302");
    let st = curl(&[&format!("http://{}/api/v1/status", s.admin)]);
    assert!(st.contains("cannot listen on http"), "{st}");
}

#[test]
fn check_names_http_mistakes_by_line() {
    let dir = tempdir("http-check");
    let cfg = write_config(
        &dir,
        free_port(),
        free_port(),
        "[[http]]\nname = \"x\"\nlisten = [\"127.0.0.1:8080\"]\n\n[[http.rule]]\nname = \"r\"\nservice = \"www.demo.petrel.test.\"\nlocation = \"https://cdn.example.net{path}\"\n",
    );
    let (ok, _, err) = petrel(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("demo.toml:") && err.contains("http[0].rule[0].location") && err.contains("does not name the POP"),
        "{err}"
    );
}

/// The RTT trigger for real: petrel at POP ams in its own namespace, a
/// client namespace 120 ms away (a delaying link) and one next door. Both
/// clients' best POP is sin. The slow one is redirected there (marked);
/// its marked request, and every request of the fast one, are served by
/// ams's content server through petrel, byte for byte.
#[test]
fn a_slow_connection_is_remapped_and_a_fast_one_served_here() {
    use common::netns::{link, DelayLink, Netns};
    let mut pop = Netns::new("pop");
    let mut fast = Netns::new("fast");
    let slow = Netns::new("slow");
    link(&mut fast, &["10.9.0.2/24"], &mut pop, &["10.9.0.1/24"]);
    let _delay = DelayLink::new(&slow, "10.8.0.2/24", &pop, "10.8.0.1/24", Duration::from_millis(60));
    let up = pop.enter(Upstream::start);
    let dir = tempdir("http-rtt");
    let (port, admin, h1) = (free_port(), free_port(), free_port());
    let cfg = write_config(
        &dir,
        port,
        admin,
        &format!(
            r#"
[[http]]
name = "edge"
listen = ["0.0.0.0:{h1}"]
pop = "ams"
upstream = "127.0.0.1:{up}"

[[http.rule]]
name = "remap"
action = "edge"
path_prefix = "/v/"
service = "www.demo.petrel.test."
location = "http://{{pop}}.cdn.demo.petrel.test{{path}}{{?query}}"
rtt_threshold_ms = 50

[measure]
recompile_secs = 1
min_samples = 1
min_pops = 1
"#,
            up = up.port
        ),
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "\"127.0.1.0/24\" = [\"sin\"]",
        "\"127.0.1.0/24\" = [\"sin\"], \"10.8.0.0/16\" = [\"sin\"], \"10.9.0.0/16\" = [\"sin\"]",
    );
    std::fs::write(&cfg, text).unwrap();
    let s = spawn_in(&pop, dir.clone(), &cfg, port, admin);
    let get = |ns: &Netns, url: &str, out: &Path| {
        let o = ns
            .cmd(&tool("curl"))
            .args(["-s", "--max-time", "20", "-w", "%{http_code} %{redirect_url}", "-o"])
            .arg(out)
            .arg(url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let (f1, f2, f3) = (dir.join("fast.bin"), dir.join("slow.bin"), dir.join("slow2.bin"));
    let out = get(&fast, &format!("http://10.9.0.1:{h1}/v/big"), &f1);
    assert_eq!(out, "200 ");
    assert!(
        std::fs::read(&f1).unwrap() == pattern(8 << 20),
        "the fast client's body differs"
    );
    let out = get(&slow, &format!("http://10.8.0.1:{h1}/v/big?q=1"), &f2);
    assert_eq!(
        out,
        format!("302 http://sin.cdn.demo.petrel.test/v/big?q=1&petrel_remap=1")
    );
    // Marked: served here, however slow.
    let out = get(&slow, &format!("http://10.8.0.1:{h1}/v/big?q=1&petrel_remap=1"), &f3);
    assert_eq!(out, "200 ");
    assert!(
        std::fs::read(&f3).unwrap() == pattern(8 << 20),
        "the slow client's body differs"
    );
    // The RTTs the kernel measured, by what was done.
    let m = pop.enter(|| http_get(s.admin, "/metrics"));
    let count = |action: &str, le: &str| -> u64 {
        let key = format!("petrel_http_connection_rtt_seconds_bucket{{le=\"{le}\",front=\"edge\",rule=\"remap\",action=\"{action}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {m}"))
    };
    assert_eq!(count("redirect", "0.1"), 0, "the slow client's RTT is over 100 ms");
    assert_eq!(count("redirect", "0.2"), 1);
    assert_eq!(count("stay", "0.01"), 1, "the fast client's RTT is under 10 ms");
    assert_eq!(
        count("stay", "0.1"),
        1,
        "the slow client's marked request took over 100 ms"
    );
    assert_eq!(count("stay", "0.2"), 2);
    // Each connection's RTT is a latency sample of its client at ams: three
    // connections, two client networks.
    let t0 = std::time::Instant::now();
    loop {
        let m = pop.enter(|| http_get(s.admin, "/metrics"));
        if m.contains("petrel_measure_samples_total 3") && m.contains("petrel_measure_ranked_units 2") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}",
            m.lines()
                .filter(|l| l.contains("measure"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// nginx from Debian, configured as `examples/nginx-remap.conf` says, asks
/// petrel's remap API on every request through `auth_request`: ams's own
/// client is served by nginx, sin's client is sent to sin (marked), and
/// its marked request is served.
#[test]
fn nginx_asks_the_remap_api_through_auth_request() {
    let (s, [h1, _, _]) = petrel_http(
        "http-nginx",
        r#"
[[http]]
name = "remap"
listen = ["127.0.0.1:{H1}"]
remap_api = true

# Any RTT counts as slow here: every client not at its best POP moves.
[[http.rule]]
name = "www"
action = "edge"
service = "www.demo.petrel.test."
location = "http://{pop}.cdn.demo.petrel.test{path}{?query}"
rtt_threshold_ms = 0
marker = "query:petrel_remap"
"#,
    );
    let dir = s.dir.join("nginx");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "served by nginx at ams\n").unwrap();
    let port = free_port();
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nginx-remap.conf")).unwrap();
    let d = dir.display().to_string();
    let conf = example
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("root /var/www/html;", &format!("root {d}/www;"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{h1}"))
        .replace("service=www.example.net", "service=www.demo.petrel.test")
        .replace(
            "http {",
            &format!(
                "http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;"
            ),
        );
    assert_ne!(conf, example);
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let _nginx = nginx(&dir, port);
    let url = format!("http://127.0.0.1:{port}/index.html");
    // ams's client: served here.
    let out = curl(&["-w", " %{http_code}", &url]);
    assert_eq!(out, "served by nginx at ams\n 200");
    // sin's client: moved, marked.
    let out = curl(&[
        "--interface",
        "127.0.1.5",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("{url}?a=1&b=2"),
    ])
    .to_ascii_lowercase();
    assert!(out.starts_with("http/1.1 302"), "{out}");
    assert!(
        out.contains("location: http://sin.cdn.demo.petrel.test/index.html?a=1&b=2&petrel_remap=1"),
        "{out}"
    );
    assert!(out.contains("cache-control: private"), "{out}");
    // The marked request: served here.
    let out = curl(&[
        "--interface",
        "127.0.1.5",
        "-w",
        " %{http_code}",
        &format!("{url}?petrel_remap=1"),
    ]);
    assert_eq!(out, "served by nginx at ams\n 200");
    let m = http_get(s.admin, "/metrics");
    assert!(
        m.contains("petrel_http_requests_total{front=\"remap\",rule=\"remap-api\",action=\"remap-api\"} 3"),
        "{m}"
    );
}
