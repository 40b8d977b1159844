//! Decode rates on a whole table (the real DFZ prefix list with synthetic
//! paths, see `fixtures/full_table.rs`), in routes per second:
//! - UPDATE decode as a router packs the table (one UPDATE per attribute
//!   set; budget >= 1 M prefixes/s per core);
//! - the same as a session parses it: into a batch whose storage is used
//!   again, a 64 KiB read at a time (`walked/batched`);
//! - MRT TABLE_DUMP_V2 parse of the same table (one RIB record per prefix).

#[path = "fixtures/full_table.rs"]
mod full_table;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_bgp_wire::{decode, mrt, Message, SessionCtx, UpdateBatch};
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let Some(t) = full_table::FullTable::generate(0) else {
        eprintln!("bgpas.lpm not found (cargo fetch the iptrie 0.11.2 dev-dependency); skipped");
        return;
    };
    let routes = t.routes.len() as u64;
    let updates = t.updates();
    let walked = t.updates_walked(256);
    let dump = t.mrt();
    eprintln!(
        "full table: {routes} routes; {} MB of UPDATEs, {} MB of MRT",
        updates.len() >> 20,
        dump.len() >> 20
    );
    let ctx = SessionCtx {
        four_octet_as: true,
        ..Default::default()
    };
    let mut g = c.benchmark_group("full-table");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(routes));
    for (name, updates) in [("update-decode", &updates), ("update-decode/walked", &walked)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut buf = &updates[..];
                let mut n = 0usize;
                while let Some((m, len)) = decode(buf, &ctx).expect("valid") {
                    let Message::Update(u) = m else { unreachable!() };
                    n += u.parse(&ctx).expect("valid").announced.len();
                    buf = &buf[len..];
                }
                assert_eq!(n as u64, routes);
                black_box(n)
            })
        });
    }
    g.bench_function("update-decode/walked/batched", |b| {
        let mut batch = UpdateBatch::default();
        b.iter(|| {
            let mut buf = &walked[..];
            let mut n = 0usize;
            let mut read = 0usize;
            while let Some((m, len)) = decode(buf, &ctx).expect("valid") {
                let Message::Update(u) = m else { unreachable!() };
                n += batch.parse_push(&u, &ctx).expect("valid").announced.len();
                buf = &buf[len..];
                read += len;
                if read >= 64 * 1024 {
                    batch.recycle();
                    read = 0;
                }
            }
            batch.recycle();
            assert_eq!(n as u64, routes);
            black_box(n)
        })
    });
    g.bench_function("mrt-parse", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for r in mrt::records(&dump) {
                if let mrt::Record::Rib { entries, .. } = r.expect("valid") {
                    n += entries.len();
                }
            }
            assert_eq!(n as u64, routes);
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
