//! Any bytes as a query: the parser must not panic, and the whole answer
//! pipeline must produce either nothing or a reply that parses and fits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_director::{build, Generation, Overrides, Sources};
use petrel_dns_auth::{answer, AnswerInfo, Client};
use std::sync::OnceLock;

const ZONE: &str = "@ SOA ns1 h 1 2 3 4 60\n@ NS ns1\nns1 A 192.0.2.1\nalias CNAME www\n*.w TXT \"x\"\nsub NS ns.sub\nns.sub A 192.0.2.2\n";

// Four POPs, the second forced down and the fourth drained; a CIDR-mapped
// service with two answers and a CNAME-mode service.
const CONFIG: &str = r#"
[server]
dns = ["127.0.0.1:0"]
[[pop]]
name = "a"
ipv4 = ["192.0.2.10"]
ipv6 = ["2001:db8::10"]
[[pop]]
name = "b"
ipv4 = ["192.0.2.20"]
ipv6 = ["2001:db8::20"]
[[pop]]
name = "c"
ipv4 = ["192.0.2.30"]
[[pop]]
name = "d"
ipv6 = ["2001:db8::40"]
[[zone]]
origin = "example.net."
file = "z"
[[service]]
name = "www.example.net."
ttl = 30
answers = 2
policy = [{ type = "cidr", entries = { "10.0.0.0/8" = ["b"] } }]
[[service]]
name = "cdn.example.net."
ttl = 30
cname = "{pop}.pop.example.net."
policy = [{ type = "priority", pops = ["c", "a", "b", "d"] }]
"#;

fn gen() -> &'static Generation {
    static G: OnceLock<Generation> = OnceLock::new();
    G.get_or_init(|| {
        let config = petrel_config::parse(std::path::Path::new("fuzz.toml"), CONFIG).unwrap();
        let mut src = Sources::default();
        src.texts.insert("z".into(), Ok(ZONE.to_string()));
        let built = build(config, &src, None).unwrap();
        let o = Overrides::default()
            .with("b", petrel_director::OverrideAction::ForceDown)
            .with("d", petrel_director::OverrideAction::Drain);
        Generation::offline(built, o)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let _ = petrel_dns_wire::parse_query(bytes);
    let mut out = [0u8; 65535];
    let mut info = AnswerInfo::default();
    for tcp in [false, true] {
        let c = Client { addr: "192.0.2.53".parse().unwrap(), tcp, now: 1_700_000_000, cookie_secret: [7; 16] };
        let n = answer(gen(), bytes, &c, 7, &mut out, &mut info);
        if !tcp {
            assert!(n <= 1232);
        }
        if n > 0 {
            assert!(n >= 12);
        }
    }
});
