//! Full-table fixtures for benchmarks: the real DFZ prefix list with
//! origin ASes (`iptrie` 0.11.2's `bgpas.lpm`) with AS paths from
//! `petrel-synth`'s valley-free generator, as one POP's view sees it.
//!
//!   fulltable mrt POP OUT      TABLE_DUMP_V2 of POP's preferred routes
//!   fulltable updates POP OUT  the same as BGP UPDATE messages (4-octet
//!                              ASNs, prefixes sharing a path packed
//!                              together, IPv6 in MP_REACH), for feeding a
//!                              router over a session
//!
//! POP is 0..5 (ams, iad, sjc, sin, gru). Deterministic output.

use petrel_bgp_wire::mrt::{MrtPeer, MrtWriter};
use petrel_bgp_wire::{encode_update, AsPathSegment, Attributes, Nlri, Origin, SessionCtx, UpdateOut};
use petrel_synth::dfz::{FullViews, POPS};
use petrel_types::{Family, Prefix};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: fulltable mrt|updates POP OUT");
        std::process::exit(2);
    }
    let pop: usize = args[2].parse().expect("POP index 0..5");
    let full = FullViews::generate().expect("bgpas.lpm (cargo fetch the iptrie 0.11.2 dev-dependency)");
    let nh4 = Ipv4Addr::new(127, 0, 0, 1);
    let nh6: Ipv6Addr = "2001:db8::1".parse().expect("literal");
    let attrs_for = |path: &[u32]| Attributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsPathSegment::Sequence(path.to_vec())],
        next_hop: Some(nh4),
        mp_next_hop: Some(IpAddr::V6(nh6)),
        ..Default::default()
    };
    let routes: Vec<(Prefix, &Vec<u32>)> = full
        .table
        .iter()
        .filter_map(|(p, o)| full.path(pop, *o).map(|path| (*p, path)))
        .collect();
    let out = match args[1].as_str() {
        "mrt" => {
            let mut w = MrtWriter::default();
            let first = routes.first().map(|r| r.1[0]).unwrap_or(64700);
            w.peer_index(
                1_795_305_600,
                1,
                POPS[pop].0,
                &[MrtPeer {
                    bgp_id: 1,
                    address: IpAddr::V4(nh4),
                    asn: first,
                }],
            );
            for (p, path) in &routes {
                w.rib(1_795_305_600, p, &[(0, None, &attrs_for(path))]);
            }
            w.out
        }
        "updates" => {
            // Group by path, as a router packs an UPDATE per attribute set.
            let mut by_path: BTreeMap<&Vec<u32>, Vec<Prefix>> = BTreeMap::new();
            for (p, path) in &routes {
                by_path.entry(path).or_default().push(*p);
            }
            let ctx = SessionCtx {
                four_octet_as: true,
                ..Default::default()
            };
            let mut out = Vec::new();
            for (path, prefixes) in by_path {
                let a = attrs_for(path);
                for fam in [Family::V4, Family::V6] {
                    let nlri: Vec<Nlri> = prefixes
                        .iter()
                        .filter(|p| p.family() == fam)
                        .map(|p| Nlri {
                            path_id: None,
                            prefix: *p,
                        })
                        .collect();
                    // Stay well inside 4096 bytes per message.
                    for chunk in nlri.chunks(if fam == Family::V4 { 700 } else { 200 }) {
                        encode_update(
                            &UpdateOut {
                                withdrawn: &[],
                                announced: chunk,
                                attrs: &a,
                            },
                            &ctx,
                            &mut out,
                        );
                    }
                }
            }
            out
        }
        o => panic!("unknown output `{o}`"),
    };
    std::fs::write(&args[3], &out).expect("write");
    eprintln!("{} routes, {} bytes -> {}", routes.len(), out.len(), args[3]);
}
