//! A synthetic world (`petrel-synth`) in the mapping engine's terms; shared
//! by the full-view benchmark and the quality example.

use petrel_mapping::geo::GeoLocation;
use petrel_mapping::PopInfo;
use petrel_synth::World;

/// The world's POPs, each at its metro with its own ASN.
pub fn pop_infos(w: &World) -> Vec<PopInfo> {
    w.pops
        .iter()
        .map(|(_, p)| PopInfo {
            name: p.name.clone(),
            location: Some((w.metros[p.metro].lat, w.metros[p.metro].lon)),
            weight: 100,
            ipv4: vec![std::net::Ipv4Addr::new(192, 0, 2, 1)],
            ipv6: vec![std::net::Ipv6Addr::LOCALHOST],
            asns: vec![petrel_types::Asn(p.asn)],
        })
        .collect()
}

/// One GeoIP location per metro, indexed like `w.metros`.
pub fn metro_locations(w: &World) -> Vec<GeoLocation> {
    w.metros
        .iter()
        .map(|m| GeoLocation {
            lat_lon: Some((m.lat, m.lon)),
            country: Some(m.country.clone()),
            continent: Some(m.continent.clone()),
            city: Some(m.name.clone()),
        })
        .collect()
}
