//! `answer()` end to end in memory: parse, map with ECS, compose.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petrel_dns_auth::{answer, AnswerInfo, Client};
use petrel_types::PopState;
use std::hint::black_box;

#[path = "../tests/fixture/mod.rs"]
mod fixture;

fn bench(c: &mut Criterion) {
    let data = fixture::data();
    let gen = fixture::at(&data, &[PopState::Up; 4]);
    let client = Client {
        addr: "192.0.2.53".parse().unwrap(),
        tcp: false,
        now: 0,
        cookie_secret: [0; 16],
    };
    let mut out = vec![0u8; 4096];
    let mut info = AnswerInfo::default();
    let mut g = c.benchmark_group("answer");
    g.throughput(Throughput::Elements(1));
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "mapped A with ECS",
            (0..256u32)
                .map(|i| {
                    let mut q = fixture::QuerySpec::new("www.example.net.", 1);
                    q.ecs = Some(format!("{}.{}.{}.0/24", 2 + i % 3, i, (i * 7) % 256).parse().unwrap());
                    q.bytes()
                })
                .collect(),
        ),
        ("CNAME mode with ECS", {
            let mut q = fixture::QuerySpec::new("cdn.example.net.", 1);
            q.ecs = Some("3.3.0.0/24".parse().unwrap());
            vec![q.bytes()]
        }),
        ("static MX, no EDNS", {
            let mut q = fixture::QuerySpec::new("example.net.", 15);
            q.edns = false;
            vec![q.bytes()]
        }),
        (
            "NXDOMAIN",
            vec![fixture::QuerySpec::new("nope.example.net.", 1).bytes()],
        ),
    ];
    for (name, qs) in &cases {
        let mut i = 0usize;
        g.bench_function(*name, |b| {
            b.iter(|| {
                i = (i + 1) % qs.len();
                black_box(answer(&gen, black_box(&qs[i]), &client, i as u64, &mut out, &mut info))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
