//! GeoIP knowledge compiled out of a MaxMind DB.
//!
//! A lookup with a full City decode costs microseconds, so the database is
//! walked once per generation: every network with its location becomes an
//! entry of a partition, and distinct data records (shared by many networks)
//! are decoded once.

use crate::table::{Partition, Table};
use petrel_types::{Family, Prefix};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::net::IpAddr;

/// What petrel needs of one GeoIP record.
#[derive(Clone, Debug, PartialEq)]
pub struct GeoLocation {
    pub lat_lon: Option<(f64, f64)>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub city: Option<String>,
}

/// Every network of a GeoIP database, as two partitions of location ids.
#[derive(Debug)]
pub struct GeoTable {
    pub locations: Vec<GeoLocation>,
    pub v4: Partition,
    pub v6: Partition,
    table4: Table,
    table6: Table,
    pub networks: usize,
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow, default)]
    city: Option<RawNames<'a>>,
    #[serde(borrow, default)]
    country: Option<RawCode<'a>>,
    #[serde(borrow, default)]
    continent: Option<RawCode<'a>>,
    #[serde(default)]
    location: Option<RawLocation>,
}

#[derive(Deserialize)]
struct RawNames<'a> {
    #[serde(borrow, default)]
    names: Option<RawEn<'a>>,
}

#[derive(Deserialize)]
struct RawEn<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawLocation {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Debug)]
pub struct GeoError(pub String);

impl std::fmt::Display for GeoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GeoError {}

impl GeoTable {
    /// Walk a whole MaxMind DB (City or Country flavour).
    pub fn from_reader<S: AsRef<[u8]>>(reader: &maxminddb::Reader<S>) -> Result<GeoTable, GeoError> {
        let mut by_offset: FxHashMap<usize, u32> = FxHashMap::default();
        let mut locations = Vec::new();
        let mut by_value: FxHashMap<String, u32> = FxHashMap::default();
        let mut e4 = Vec::new();
        let mut e6 = Vec::new();
        let iter = reader
            .networks(Default::default())
            .map_err(|e| GeoError(format!("cannot walk the database: {e}")))?;
        for item in iter {
            let item = item.map_err(|e| GeoError(format!("corrupt database: {e}")))?;
            let Some(offset) = item.offset() else {
                continue;
            };
            let net = item.network().map_err(|e| GeoError(format!("corrupt network: {e}")))?;
            let id = match by_offset.get(&offset) {
                Some(&id) => id,
                None => {
                    let rec: RawRecord = item
                        .decode()
                        .map_err(|e| GeoError(format!("cannot decode record: {e}")))?
                        .ok_or_else(|| GeoError("record vanished".into()))?;
                    let loc = GeoLocation {
                        lat_lon: rec.location.and_then(|l| Some((l.latitude?, l.longitude?))),
                        country: rec.country.and_then(|c| c.iso_code).map(str::to_string),
                        continent: rec.continent.and_then(|c| c.code).map(str::to_string),
                        city: rec.city.and_then(|c| c.names).and_then(|n| n.en).map(str::to_string),
                    };
                    // Different records may still mean the same place.
                    let key = format!("{loc:?}");
                    let id = *by_value.entry(key).or_insert_with(|| {
                        locations.push(loc);
                        (locations.len() - 1) as u32
                    });
                    by_offset.insert(offset, id);
                    id
                }
            };
            let prefix = Prefix::new(net.ip(), net.prefix()).ok_or_else(|| GeoError(format!("bad network {net}")))?;
            match net.ip() {
                IpAddr::V4(_) => e4.push((prefix, id)),
                IpAddr::V6(_) => e6.push((prefix, id)),
            }
        }
        Ok(GeoTable::from_entries(locations, e4, e6))
    }

    /// Build from already extracted entries (tests, synthetic worlds).
    pub fn from_entries(
        locations: Vec<GeoLocation>,
        mut e4: Vec<(Prefix, u32)>,
        mut e6: Vec<(Prefix, u32)>,
    ) -> GeoTable {
        let networks = e4.len() + e6.len();
        let v4 = Partition::from_prefixes(Family::V4, &mut e4);
        let v6 = Partition::from_prefixes(Family::V6, &mut e6);
        let table4 = Table::new(Family::V4, &v4);
        let table6 = Table::new(Family::V6, &v6);
        GeoTable {
            locations,
            v4,
            v6,
            table4,
            table6,
            networks,
        }
    }

    pub fn partition(&self, f: Family) -> &Partition {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// Location of an address, with the prefix over which it holds.
    /// The index in `locations` of `client`'s location, if any.
    pub fn locate(&self, client: &Prefix) -> Option<u32> {
        let t = match client.family() {
            Family::V4 => &self.table4,
            Family::V6 => &self.table6,
        };
        let id = t.lookup(client.bits()).value;
        ((id as usize) < self.locations.len()).then_some(id)
    }

    pub fn lookup(&self, client: &Prefix) -> Option<(&GeoLocation, u8)> {
        let t = match client.family() {
            Family::V4 => &self.table4,
            Family::V6 => &self.table6,
        };
        let hit = t.lookup(client.bits());
        self.locations.get(hit.value as usize).map(|l| (l, hit.scope))
    }
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let ams = (52.37, 4.90);
        let nyc = (40.71, -74.01);
        let d = distance_km(ams, nyc);
        assert!((5800.0..5900.0).contains(&d), "{d}");
        assert_eq!(distance_km(ams, ams), 0.0);
    }

    #[test]
    fn reads_an_mmdb_written_by_an_independent_writer() {
        #[derive(serde::Serialize)]
        struct Loc {
            latitude: f64,
            longitude: f64,
        }
        #[derive(serde::Serialize)]
        struct Code {
            iso_code: &'static str,
        }
        #[derive(serde::Serialize)]
        struct Cont {
            code: &'static str,
        }
        #[derive(serde::Serialize)]
        struct Rec {
            location: Loc,
            country: Code,
            continent: Cont,
        }
        let mut w = mmdb_writer::Writer::new("Test-City");
        let rec = Rec {
            location: Loc {
                latitude: 35.68,
                longitude: 139.69,
            },
            country: Code { iso_code: "JP" },
            continent: Cont { code: "AS" },
        };
        w.insert("1.0.0.0/8".parse::<mmdb_writer::ipnet::IpNet>().unwrap(), &rec)
            .unwrap();
        w.insert("2400::/12".parse::<mmdb_writer::ipnet::IpNet>().unwrap(), &rec)
            .unwrap();
        let bytes = w.to_bytes().unwrap();
        let reader = maxminddb::Reader::from_source(bytes).unwrap();
        let g = GeoTable::from_reader(&reader).unwrap();
        assert_eq!(g.locations.len(), 1);
        let (loc, scope) = g.lookup(&"1.2.3.0/24".parse().unwrap()).unwrap();
        assert_eq!(loc.country.as_deref(), Some("JP"));
        assert_eq!(loc.continent.as_deref(), Some("AS"));
        assert_eq!(scope, 8);
        assert!(g.lookup(&"2400:1::/48".parse().unwrap()).is_some());
        assert!(g.lookup(&"8.8.8.0/24".parse().unwrap()).is_none());
    }
}
