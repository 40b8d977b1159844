//! A full table into a view, as the RIB thread takes it from a session:
//! decoded UPDATEs applied to an empty peer, then compacted into the sorted
//! runs that publication reads. Two packings: one UPDATE per attribute set
//! (`packed`), and as BIRD sends a table when a session comes up, walking
//! it 256 prefixes at a time (`walked`: about one prefix per UPDATE).
//! Prints the route storage and attribute pool a view costs.
//!
//! Input: the real DFZ prefix list with synthetic valley-free paths
//! (`petrel-bgp-wire/benches/fixtures/full_table.rs`).

// Shared fixtures: this benchmark uses the UPDATE forms, not the MRT one.
#[allow(dead_code)]
#[path = "../../petrel-bgp-wire/benches/fixtures/full_table.rs"]
mod full_table;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use petrel_bgp_wire::{decode, Message, ParsedUpdate, SessionCtx};
use petrel_rib::{attr_hash, AttrPool, PeerInfo, View};
use std::hint::black_box;
use std::time::Duration;

fn peer(n: u32) -> PeerInfo {
    PeerInfo {
        name: format!("p{n}"),
        asn: 64500 + n,
        bgp_id: n,
        address: std::net::IpAddr::from([127, 0, 0, n as u8]),
        ibgp: false,
    }
}

fn bench(c: &mut Criterion) {
    let Some(t) = full_table::FullTable::generate(0) else {
        eprintln!("bgpas.lpm not found (cargo fetch the iptrie 0.11.2 dev-dependency); skipped");
        return;
    };
    let routes = t.routes.len() as u64;
    let ctx = SessionCtx {
        four_octet_as: true,
        ..Default::default()
    };
    let parse = |bytes: &[u8]| {
        let mut updates: Vec<ParsedUpdate> = Vec::new();
        let mut buf = bytes;
        while let Some((m, len)) = decode(buf, &ctx).expect("valid") {
            let Message::Update(u) = m else { unreachable!() };
            updates.push(u.parse(&ctx).expect("valid"));
            buf = &buf[len..];
        }
        updates
    };
    // As the RIB thread does: the session task hashes each set, and the
    // peer loads its table with the filter on.
    let hashes = |updates: &[ParsedUpdate]| -> Vec<u64> { updates.iter().map(|u| attr_hash(&u.attrs)).collect() };
    let apply = |updates: &[ParsedUpdate], hashes: &[u64], view: &mut View, pool: &mut AttrPool, id| {
        view.set_loading(id, true);
        for (u, &h) in updates.iter().zip(hashes) {
            view.apply_hashed(id, u, h, pool);
        }
        view.set_loading(id, false);
        view.compact();
    };
    let mut g = c.benchmark_group("rib");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(routes));
    for (name, updates) in [
        ("packed", parse(&t.updates())),
        ("walked", parse(&t.updates_walked(256))),
    ] {
        let hashes = hashes(&updates);
        let mut pool = AttrPool::default();
        let mut view = View::new("v");
        let id = view.add_peer(peer(1));
        apply(&updates, &hashes, &mut view, &mut pool, id);
        eprintln!(
            "{name}: {routes} routes in {} UPDATEs; {} attribute sets ({:.0} bytes each); route storage {:.1} MiB per peer",
            updates.len(),
            pool.len(),
            pool.heap_bytes() as f64 / pool.len() as f64,
            view.heap_bytes() as f64 / (1 << 20) as f64
        );
        g.bench_function(format!("full-table-ingest/{name}"), |b| {
            b.iter_batched(
                || {
                    let mut view = View::new("v");
                    let id = view.add_peer(peer(1));
                    (view, AttrPool::default(), id)
                },
                |(mut view, mut pool, id)| {
                    apply(&updates, &hashes, &mut view, &mut pool, id);
                    assert_eq!(view.route_count() as u64, routes);
                    black_box((view, pool))
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
