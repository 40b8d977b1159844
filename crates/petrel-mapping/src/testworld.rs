//! A small deterministic world for tests and benchmarks: four POPs on four
//! continents and a synthetic GeoIP table of many /16s scattered over the
//! globe. Not real data; built to exercise the engine at a realistic size.

use crate::geo::{GeoLocation, GeoTable};
use crate::policy::PopInfo;
use petrel_types::Prefix;
use std::net::{Ipv4Addr, Ipv6Addr};

pub fn pops() -> Vec<PopInfo> {
    // Addresses 192.0.2.10, .20, ... and 2001:db8::10, ::20, ...
    let p = |i: u8, name: &str, lat, lon| PopInfo {
        name: name.into(),
        ipv4: vec![Ipv4Addr::new(192, 0, 2, 10 * (i + 1))],
        ipv6: vec![Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 * (u16::from(i) + 1))],
        location: Some((lat, lon)),
        weight: 100,
        asns: Vec::new(),
    };
    vec![
        p(0, "ams", 52.37, 4.90),
        p(1, "nyc", 40.71, -74.01),
        p(2, "sin", 1.35, 103.82),
        p(3, "syd", -33.87, 151.21),
    ]
}

/// Four places with exact, hand-checkable answers: 2/8 Paris, 3/8 Los
/// Angeles with 3.3/16 Tokyo inside it, 4/8 Melbourne; 2a01::/16 Paris and
/// 2600::/12 Los Angeles.
pub fn small_geo() -> GeoTable {
    let loc = |lat, lon, c: &str, k: &str| GeoLocation {
        lat_lon: Some((lat, lon)),
        country: Some(c.into()),
        continent: Some(k.into()),
        city: None,
    };
    let p = |s: &str| s.parse::<Prefix>().expect("literal prefix");
    GeoTable::from_entries(
        vec![
            loc(48.85, 2.35, "FR", "EU"),
            loc(34.05, -118.24, "US", "NA"),
            loc(35.68, 139.69, "JP", "AS"),
            loc(-37.8, 144.9, "AU", "OC"),
        ],
        vec![
            (p("2.0.0.0/8"), 0),
            (p("3.0.0.0/8"), 1),
            (p("3.3.0.0/16"), 2),
            (p("4.0.0.0/8"), 3),
        ],
        vec![(p("2a01::/16"), 0), (p("2600::/12"), 1)],
    )
}

/// `n` locations on a pseudo-random grid; every /16 of IPv4 (and a /32 of
/// IPv6 per location) is assigned to one, so the table is large.
pub fn geo(n: usize) -> GeoTable {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let locations: Vec<GeoLocation> = (0..n)
        .map(|_| GeoLocation {
            lat_lon: Some(((next() % 140) as f64 - 60.0, (next() % 360) as f64 - 180.0)),
            country: Some(["DE", "US", "SG", "AU", "BR", "JP"][(next() % 6) as usize].to_string()),
            continent: Some(["EU", "NA", "AS", "OC", "SA", "AS"][(next() % 6) as usize].to_string()),
            city: None,
        })
        .collect();
    let mut e4 = Vec::new();
    for hi in 1u32..224 {
        for mid in 0u32..256 {
            let a = (hi << 24) | (mid << 16);
            let len = if next() % 4 == 0 { 17 } else { 16 };
            e4.push((
                Prefix::from_bits(petrel_types::Family::V4, a as u128, len),
                (next() % n as u64) as u32,
            ));
        }
    }
    let e6 = (0..n as u128)
        .map(|i| {
            (
                Prefix::from_bits(petrel_types::Family::V6, (0x2001u128 << 112) | (i << 96), 32),
                i as u32,
            )
        })
        .collect();
    GeoTable::from_entries(locations, e4, e6)
}
