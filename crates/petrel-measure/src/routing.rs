//! What the measurement loop learns of a client from the routing views and
//! GeoIP: its BGP prefix (its map unit), the prefix covering that, its
//! origin AS and its metro. The same answers enrich the warehouse's rows,
//! key the per-AS alerts and drive the latency table's roll-ups.

use crate::sample::{unit_of, UnitMode};
use crate::table::Topology;
use petrel_mapping::{BgpData, GeoTable};
use petrel_types::Prefix;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::RefCell;
use std::net::IpAddr;

/// Prefixes by (origin AS, metro).
type Groups = FxHashMap<(u32, String), Vec<Prefix>>;

pub struct Routing<'a> {
    bgp: Option<&'a BgpData>,
    geo: Option<&'a GeoTable>,
    mode: UnitMode,
    /// The origin ASes the roll-ups asked about, and then their prefixes
    /// by metro (built once, on the first question).
    wanted: RefCell<FxHashSet<u32>>,
    by_group: RefCell<Option<Groups>>,
}

/// What a sample's client is, as the views and GeoIP see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub unit: Option<Prefix>,
    pub asn: Option<u32>,
    pub country: Option<String>,
    pub city: Option<String>,
}

impl<'a> Routing<'a> {
    pub fn new(bgp: Option<&'a BgpData>, geo: Option<&'a GeoTable>, mode: UnitMode) -> Self {
        Routing {
            bgp,
            geo,
            mode,
            wanted: RefCell::default(),
            by_group: RefCell::default(),
        }
    }

    /// The most specific prefix of the views holding `client`.
    pub fn bgp_prefix(&self, client: IpAddr) -> Option<Prefix> {
        self.bgp?.prefixes.prefix_of(&Prefix::host(client.to_canonical()))
    }

    /// The client's map unit.
    pub fn unit(&self, client: IpAddr) -> Prefix {
        let bgp = match self.mode {
            UnitMode::Bgp { .. } => self.bgp_prefix(client),
            UnitMode::Fixed { .. } => None,
        };
        unit_of(client, bgp, self.mode)
    }

    /// The origin AS of the route covering `p`: the first view that has one.
    pub fn origin(&self, p: &Prefix) -> Option<u32> {
        let b = self.bgp?;
        (0..b.views.len()).find_map(|v| b.path_at(v, p).and_then(|path| path.origin()))
    }

    /// The metro of `p` by GeoIP: "city, country" (cities only; a country
    /// is no metro).
    pub fn metro(&self, p: &Prefix) -> Option<String> {
        let (l, _) = self.geo?.lookup(p)?;
        let city = l.city.as_deref()?;
        Some(match l.country.as_deref() {
            Some(c) => format!("{city}, {c}"),
            None => city.to_string(),
        })
    }

    /// The GeoIP location of `p`, if any.
    pub fn geo_of(&self, p: &Prefix) -> Option<&'a petrel_mapping::GeoLocation> {
        self.geo?.lookup(p).map(|(l, _)| l)
    }

    /// Everything the warehouse keeps of a client.
    pub fn place(&self, client: IpAddr) -> Place {
        let host = Prefix::host(client.to_canonical());
        let geo = self.geo.and_then(|t| t.lookup(&host)).map(|(l, _)| l);
        Place {
            unit: Some(self.unit(client)),
            asn: self.origin(&host),
            country: geo.and_then(|l| l.country.clone()),
            city: geo.and_then(|l| l.city.clone()),
        }
    }

    fn index_groups(&self) -> Groups {
        let mut out = Groups::default();
        let wanted = self.wanted.borrow();
        let Some(b) = self.bgp else { return out };
        for p in b.prefixes.iter() {
            let Some(asn) = self.origin(&p).filter(|a| wanted.contains(a)) else {
                continue;
            };
            if let Some(m) = self.metro(&p) {
                out.entry((asn, m)).or_default().push(p);
            }
        }
        out
    }
}

impl Topology for Routing<'_> {
    fn covering(&self, unit: &Prefix) -> Option<Prefix> {
        self.bgp?.prefixes.covering(unit)
    }

    fn group(&self, unit: &Prefix) -> Option<(u32, String)> {
        let asn = self.origin(unit)?;
        let metro = self.metro(unit)?;
        self.wanted.borrow_mut().insert(asn);
        Some((asn, metro))
    }

    fn prefixes_of(&self, asn: u32, metro: &str) -> Vec<Prefix> {
        let mut g = self.by_group.borrow_mut();
        let index = g.get_or_insert_with(|| self.index_groups());
        index.get(&(asn, metro.to_string())).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_mapping::{BgpDataBuilder, GeoLocation};
    use petrel_types::PopIdx;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn world() -> (BgpData, GeoTable) {
        let mut b = BgpDataBuilder::new();
        let a = b.path_id([64501, 64500], 2);
        let c = b.path_id([64501, 64999], 2);
        let routes = vec![
            (p("198.51.0.0/16"), a),
            (p("198.51.100.0/24"), a),
            (p("192.0.2.0/24"), a),
            (p("203.0.113.0/24"), c),
        ];
        b.add_view("ams", PopIdx(0), routes.clone());
        b.set_prefixes(routes.iter().map(|r| r.0).collect());
        let loc = |city: &str| GeoLocation {
            lat_lon: Some((52.37, 4.9)),
            country: Some("NL".into()),
            continent: Some("EU".into()),
            city: Some(city.into()),
        };
        let geo = GeoTable::from_entries(
            vec![loc("Amsterdam"), loc("Utrecht")],
            vec![
                (p("198.51.0.0/16"), 0),
                (p("192.0.2.0/24"), 0),
                (p("203.0.113.0/24"), 1),
            ],
            vec![],
        );
        (b.build(), geo)
    }

    #[test]
    fn units_origins_and_roll_up_groups_come_from_the_views() {
        let (bgp, geo) = world();
        let r = Routing::new(Some(&bgp), Some(&geo), UnitMode::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(r.unit(ip("198.51.100.7")), p("198.51.100.0/24"));
        assert_eq!(r.unit(ip("198.51.7.7")), p("198.51.0.0/16"));
        // No route: the fixed length.
        assert_eq!(r.unit(ip("10.1.2.3")), p("10.1.2.0/24"));
        let fixed = Routing::new(Some(&bgp), Some(&geo), UnitMode::Fixed { v4_len: 24, v6_len: 48 });
        assert_eq!(fixed.unit(ip("198.51.7.7")), p("198.51.7.0/24"));
        assert_eq!(r.covering(&p("198.51.100.0/24")), Some(p("198.51.0.0/16")));
        assert_eq!(fixed.covering(&p("198.51.7.0/24")), Some(p("198.51.0.0/16")));
        let place = r.place(ip("198.51.100.7"));
        assert_eq!(place.asn, Some(64500));
        assert_eq!(place.city.as_deref(), Some("Amsterdam"));
        assert_eq!(r.group(&p("198.51.100.0/24")), Some((64500, "Amsterdam, NL".into())));
        // The AS's prefixes in that metro, not those elsewhere or of
        // another AS.
        let mut of = r.prefixes_of(64500, "Amsterdam, NL");
        of.sort();
        assert_eq!(of, vec![p("192.0.2.0/24"), p("198.51.0.0/16"), p("198.51.100.0/24")]);
        assert!(r.prefixes_of(64999, "Utrecht, NL").is_empty());
    }
}
