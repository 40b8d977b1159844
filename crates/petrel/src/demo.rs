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
    for (pop, dump) in bgp_dumps()? {
        put(&format!("demo-bgp-{pop}.mrt"), &dump)?;
    }
    Ok(dir.join("demo.toml"))
}

/// The demo's POPs as the synthetic Internet places them (name, ASN,
/// latitude, longitude, continent); they match demo.toml.
const DEMO_POPS: [petrel_synth::PopPlace; 4] = [
    ("ams", 64500, 52.37, 4.90, "EU"),
    ("iad", 64501, 38.95, -77.45, "NA"),
    ("sin", 64502, 1.35, 103.82, "AS"),
    ("gru", 64503, -23.43, -46.47, "SA"),
];

/// One TABLE_DUMP_V2 file per POP: every route its neighbors (transit,
/// IXP peers, and the other POPs over multihop sessions) send it in a
/// deterministic synthetic AS graph whose client networks are the demo
/// GeoIP blocks. No real routing data.
pub fn bgp_dumps() -> Result<Vec<(String, Vec<u8>)>, String> {
    use petrel_bgp_wire::mrt::{MrtPeer, MrtWriter};
    use petrel_bgp_wire::{AsPathSegment, Attributes, Origin};
    use petrel_types::Prefix;
    let mut metros: Vec<petrel_synth::Metro> = Vec::new();
    let mut fixed = Vec::new();
    for line in DEMO_GEO_CSV.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        let (Ok(p), Ok(lat), Ok(lon)) = (f[0].parse::<Prefix>(), f[1].parse::<f64>(), f[2].parse::<f64>()) else {
            return Err(format!("demo-geo.csv: bad line `{l}`"));
        };
        let m = match metros.iter().position(|m| m.name == f[5]) {
            Some(m) => m,
            None => {
                metros.push(petrel_synth::Metro {
                    name: f[5].to_string(),
                    lat,
                    lon,
                    country: f[3].to_string(),
                    continent: f[4].to_string(),
                    demand: 1.0,
                });
                metros.len() - 1
            }
        };
        fixed.push((m, p));
    }
    let shape = petrel_synth::Shape {
        seed: 2026,
        access_per_metro: 2,
        fixed_nets: fixed,
        ..Default::default()
    };
    let world = petrel_synth::World::generate(metros, &DEMO_POPS, &shape);
    let mut out = Vec::new();
    for (k, (_, pop)) in world.pops.iter().enumerate() {
        let view = world.pop_view(k);
        // One MRT peer per neighbor AS, addressed in 198.18.0.0/15 (RFC 2544).
        let mut neighbors: Vec<u32> = view.iter().map(|r| r.neighbor).collect();
        neighbors.sort();
        neighbors.dedup();
        let addr = |i: usize| std::net::Ipv4Addr::new(198, 18, k as u8, (i + 1) as u8);
        let peers: Vec<MrtPeer> = neighbors
            .iter()
            .enumerate()
            .map(|(i, &asn)| MrtPeer {
                bgp_id: u32::from(addr(i)),
                address: addr(i).into(),
                asn,
            })
            .collect();
        let mut w = MrtWriter::default();
        let ts = 1_795_305_600;
        w.peer_index(
            ts,
            u32::from(std::net::Ipv4Addr::new(198, 18, k as u8, 0)),
            &pop.name,
            &peers,
        );
        let mut by_prefix: BTreeMap<(u8, u128, u8), Vec<(u16, Attributes)>> = BTreeMap::new();
        for r in &view {
            let i = neighbors.binary_search(&r.neighbor).expect("listed") as u16;
            let a = Attributes {
                origin: Some(Origin::Igp),
                as_path: vec![AsPathSegment::Sequence(r.path.clone())],
                next_hop: Some(addr(i as usize)),
                mp_next_hop: Some(std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0xffff,
                    k as u16,
                    0,
                    0,
                    0,
                    i + 1,
                ))),
                local_pref: Some(r.local_pref),
                ..Default::default()
            };
            let fam = u8::from(r.prefix.family() == petrel_types::Family::V6);
            by_prefix
                .entry((fam, r.prefix.bits(), r.prefix.len()))
                .or_default()
                .push((i, a));
        }
        for ((fam, bits, len), entries) in &by_prefix {
            let family = if *fam == 1 {
                petrel_types::Family::V6
            } else {
                petrel_types::Family::V4
            };
            let prefix = Prefix::from_bits(family, *bits, *len);
            let e: Vec<(u16, Option<u32>, &Attributes)> = entries.iter().map(|(i, a)| (*i, None, a)).collect();
            w.rib(ts, &prefix, &e);
        }
        out.push((pop.name.clone(), w.out));
    }
    Ok(out)
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

Routing views (one generated MRT dump per POP; synthetic routes, not real ones):
  {p} bgp summary
  {p} bgp route 1.64.0.1
  dig @127.0.0.1 -p 5300 ss.demo.petrel.test A +subnet=1.64.0.0/24 +short    # Super Sparrow: Tokyo -> ams
  dig @127.0.0.1 -p 5300 net.demo.petrel.test A +subnet=1.64.0.0/24 +short   # blended: Tokyo -> sin
  {p} explain --admin 127.0.0.1:8053 --service ss.demo.petrel.test --client 1.64.0.1

Take a POP out and back (answers change at once):
  {p} pop drain iad && dig @127.0.0.1 -p 5300 www.demo.petrel.test A +subnet=23.1.0.0/24 +short
  {p} pop undrain iad

Anycast: 198.18.0.0/24 goes to ams's edge router (a BGP speaker on 127.0.0.1:1179, AS 64610) while ams is up:
  {p} anycast
  {p} pop drain ams && {p} anycast      # GRACEFUL_SHUTDOWN for 30 s, then withdrawn
  {p} pop undrain ams
Metrics: curl http://127.0.0.1:8053/metrics      Reload: kill -HUP <pid> or {p} reload
"#
    )
}
