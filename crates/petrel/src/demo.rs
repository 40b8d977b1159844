//! `petrel demo`: everything needed to see petrel answer, from data shipped
//! inside the binary. The GeoIP database is compiled here from a small CSV
//! of invented locations (no third-party data).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEMO_TOML: &str = include_str!("../../../examples/demo.toml");
pub const DEMO_ZONE: &str = include_str!("../../../examples/demo.zone");
pub const DEMO_GEO_CSV: &str = include_str!("../../../examples/demo-geo.csv");

#[derive(serde::Serialize)]
struct Loc {
    latitude: f64,
    longitude: f64,
}
#[derive(serde::Serialize)]
struct Code {
    iso_code: String,
}
#[derive(serde::Serialize)]
struct Continent {
    code: String,
}
#[derive(serde::Serialize)]
struct City {
    names: BTreeMap<String, String>,
}
#[derive(serde::Serialize)]
struct Record {
    location: Loc,
    country: Code,
    continent: Continent,
    city: City,
}

/// Compile `network,latitude,longitude,country,continent,city` lines into a
/// MaxMind DB (City layout) that any MaxMind reader understands.
pub fn csv_to_mmdb(csv: &str, source: &str) -> Result<Vec<u8>, String> {
    let mut w = mmdb_writer::Writer::builder("petrel-GeoIP-City")
        .description(&[("en", "petrel demo data: invented locations")])
        // libmaxminddb (used by gdnsd, Knot, nginx) rejects pointers in metadata.
        .metadata_pointers(mmdb_writer::MetadataPointers::Disabled)
        // A fixed, non-zero time keeps the file reproducible (libmaxminddb rejects 0).
        .build_epoch(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_305_600))
        .build();
    for (i, line) in csv.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        let bad = |what: &str| format!("{source}:{}: {what} in `{l}`", i + 1);
        if f.len() != 6 {
            return Err(bad(
                "expected 6 fields network,latitude,longitude,country,continent,city",
            ));
        }
        let net: mmdb_writer::ipnet::IpNet = f[0].parse().map_err(|_| bad("bad network"))?;
        let lat: f64 = f[1].parse().map_err(|_| bad("bad latitude"))?;
        let lon: f64 = f[2].parse().map_err(|_| bad("bad longitude"))?;
        let rec = Record {
            location: Loc {
                latitude: lat,
                longitude: lon,
            },
            country: Code {
                iso_code: f[3].to_string(),
            },
            continent: Continent { code: f[4].to_string() },
            city: City {
                names: [("en".to_string(), f[5].to_string())].into(),
            },
        };
        w.insert(net, &rec).map_err(|e| bad(&e.to_string()))?;
    }
    w.to_bytes().map_err(|e| e.to_string())
}

/// Write the demo's config, zone and GeoIP database into `dir`.
pub fn write(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let put = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    put("demo.toml", DEMO_TOML.as_bytes())?;
    put("demo.zone", DEMO_ZONE.as_bytes())?;
    put("demo-geo.mmdb", &csv_to_mmdb(DEMO_GEO_CSV, "demo-geo.csv")?)?;
    Ok(dir.join("demo.toml"))
}

pub fn banner(config: &Path) -> String {
    let c = config.display();
    // The commands name this very binary, which may not be on PATH yet.
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    let p = match (&exe, &cwd) {
        (Some(e), Some(d)) => e.strip_prefix(d).unwrap_or(e).display().to_string(),
        _ => "petrel".to_string(),
    };
    format!(
        r#"
petrel demo: authoritative for demo.petrel.test on 127.0.0.1:5300 and [::1]:5300,
admin API and metrics on http://127.0.0.1:8053. POPs: ams (Amsterdam), iad (Ashburn),
sin (Singapore), gru (Sao Paulo). The GeoIP data is invented for the demo.

Different clients, different POPs (EDNS Client Subnet):
  dig @127.0.0.1 -p 5300 www.demo.petrel.test A +subnet=2.16.0.0/24      # Paris     -> ams 192.0.2.10
  dig @127.0.0.1 -p 5300 www.demo.petrel.test A +subnet=23.1.0.0/24      # New York  -> iad 198.51.100.10
  dig @127.0.0.1 -p 5300 www.demo.petrel.test A +subnet=14.1.0.0/24      # Singapore -> sin 203.0.113.10
  dig @127.0.0.1 -p 5300 www.demo.petrel.test A +subnet=177.1.0.0/24     # Sao Paulo -> gru 192.0.2.70
  dig @127.0.0.1 -p 5300 cdn.demo.petrel.test A +subnet=101.1.0.0/24     # Sydney: CNAME sin.pop...
  dig @127.0.0.1 -p 5300 api.demo.petrel.test AAAA +subnet=2800::/32     # gru has no IPv6: 2 others

Why that answer:
  {p} explain --config {c} --service www.demo.petrel.test --client 177.1.0.0/24
  curl 'http://127.0.0.1:8053/api/v1/explain?service=www.demo.petrel.test&client=23.1.0.0/24'

Take a POP out and back (answers change at once):
  {p} pop drain iad && dig @127.0.0.1 -p 5300 www.demo.petrel.test A +subnet=23.1.0.0/24 +short
  {p} pop undrain iad
Metrics: curl http://127.0.0.1:8053/metrics      Reload: kill -HUP <pid> or {p} reload
"#
    )
}
