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
    let cfg = write_config(&dir, port, admin, "[measure]\nrecompile_secs = 1\nmin_samples = 5\n");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let geo = "  { type = \"geo-nearest\" },\n  { type = \"priority\", pops = [\"ams\", \"iad\", \"sin\", \"gru\"] },";
    assert!(text.contains(geo));
    let text = text.replacen(geo, &format!("  {{ type = \"latency\" }},\n{geo}"), 1);
    std::fs::write(&cfg, text).unwrap();
    spawn(dir, &cfg, port, admin)
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

    let (ok, out, err) = petrel(&[
        "explain",
        "--admin",
        &s.admin.to_string(),
        "--service",
        "www.demo.petrel.test",
        "--client",
        "23.1.0.7",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("latency      unit 23.1.0.0/24: ams 20 ms"), "{out}");
    assert!(out.contains("iad 88 ms (86-90, 20 samples)"), "{out}");
    assert!(out.contains("answer: ams"), "{out}");
    let (ok, out, _) = petrel(&[
        "explain",
        "--admin",
        &s.admin.to_string(),
        "--service",
        "www.demo.petrel.test",
        "--client",
        "23.1.5.7",
    ]);
    assert!(
        ok && out.contains("not enough measurements for the client's unit"),
        "{out}"
    );

    let (_, metrics) = http(s.admin, "GET", "/metrics");
    assert!(metrics.contains("petrel_measure_samples_total 60"), "{metrics}");
    assert!(
        metrics.contains("petrel_measure_refused_total{reason=\"unknown_pop\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("petrel_measure_ranked_units 1"), "{metrics}");
}
