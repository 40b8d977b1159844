//! Any bytes as a query: the parser must not panic, and the whole answer
//! pipeline must produce either nothing or a reply that parses and fits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_dns_auth::{answer, parse_zone_file, AnswerInfo, AnswerLimits, AuthData, Client, PopAddrs, ServiceAnswer, ServiceMode, ZoneSetBuilder};
use petrel_dns_wire::name;
use petrel_mapping::{compile, testworld, CidrMap, Fallback, Policy, ServiceSpec};
use petrel_types::{PopIdx, PopState};
use std::sync::OnceLock;

const ZONE: &str = "@ SOA ns1 h 1 2 3 4 60\n@ NS ns1\nns1 A 192.0.2.1\nalias CNAME www\n*.w TXT \"x\"\nsub NS ns.sub\nns.sub A 192.0.2.2\n";

fn data() -> &'static AuthData {
    static D: OnceLock<AuthData> = OnceLock::new();
    D.get_or_init(|| {
        let pops = testworld::pops();
        let mut b = ZoneSetBuilder::new();
        b.add_zone(&name::from_text("example.net.").unwrap(), parse_zone_file("example.net.", ZONE).unwrap()).unwrap();
        let mut map = CidrMap::new("fuzz");
        map.insert("10.0.0.0/8".parse().unwrap(), vec![PopIdx(1)]);
        let spec = ServiceSpec { name: "www".into(), candidates: (0..4).map(PopIdx).collect(), policies: vec![Policy::Cidr(map)], answers: 2, fallback: Fallback::All };
        b.add_service(&name::from_text("www.example.net.").unwrap(), 0).unwrap();
        let addrs = (0..4u8).map(|i| PopAddrs { v4: vec![[192, 0, 2, i]], v6: vec![[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i]] }).collect();
        AuthData { zones: std::sync::Arc::new(b.build()), services: vec![ServiceAnswer { mapping: std::sync::Arc::new(compile(spec, &pops, None)), ttl: 30, degraded_ttl: 5, mode: ServiceMode::Address }], pops: addrs, limits: AnswerLimits::default() }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let _ = petrel_dns_wire::parse_query(bytes);
    let mut out = [0u8; 65535];
    let mut info = AnswerInfo::default();
    for tcp in [false, true] {
        let c = Client { addr: "192.0.2.53".parse().unwrap(), tcp };
        let n = answer(data(), &[PopState::Up, PopState::Down, PopState::Up, PopState::Drained], bytes, &c, 7, &mut out, &mut info);
        if !tcp {
            assert!(n <= 1232);
        }
        if n > 0 {
            assert!(n >= 12);
        }
    }
});
