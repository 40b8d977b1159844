//! Full-table fixtures for benchmarks (see `benches/fixtures/full_table.rs`):
//!
//!   fulltable mrt POP OUT      TABLE_DUMP_V2 of POP's preferred routes
//!   fulltable updates POP OUT  the same as BGP UPDATE messages (4-octet
//!                              ASNs, prefixes sharing a path packed
//!                              together, IPv6 in MP_REACH), for feeding a
//!                              router over a session
//!   fulltable walked POP OUT   the same in the small UPDATEs BIRD sends
//!                              when a session comes up (about one
//!                              prefix each)
//!
//! POP is 0..5 (ams, iad, sjc, sin, gru). Deterministic output.

#[path = "../benches/fixtures/full_table.rs"]
mod full_table;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: fulltable mrt|updates|walked POP OUT");
        std::process::exit(2);
    }
    let pop: usize = args[2].parse().expect("POP index 0..5");
    let t = full_table::FullTable::generate(pop).expect("bgpas.lpm (cargo fetch the iptrie 0.11.2 dev-dependency)");
    let out = match args[1].as_str() {
        "mrt" => t.mrt(),
        "updates" => t.updates(),
        "walked" => t.updates_walked(256),
        o => panic!("unknown output `{o}`"),
    };
    std::fs::write(&args[3], &out).expect("write");
    eprintln!("{} routes, {} bytes -> {}", t.routes.len(), out.len(), args[3]);
}
