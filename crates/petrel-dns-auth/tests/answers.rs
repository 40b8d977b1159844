//! Golden scenarios for the answer pipeline: query + client + POP states ->
//! expected reply, decoded by an independent codec (hickory-proto).
//!
//! Scenario files live in `tests/golden/*.txt`; see the first file for the
//! format. Set `PETREL_BLESS=1` to print the actual replies.

mod fixture;

use fixture::QuerySpec;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use petrel_dns_auth::{answer, AnswerInfo, Client};
use petrel_dns_wire::consts::rcode;
use petrel_types::PopState;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// Counts allocations of the current thread only: tests run in parallel.
struct Counting;
thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static A: Counting = Counting;

#[test]
fn answering_does_not_allocate() {
    let data = fixture::data();
    let states = [PopState::Up, PopState::Down, PopState::Up, PopState::Up];
    let mut queries = Vec::new();
    for (name, t) in [
        ("www.example.net.", 1),
        ("cdn.example.net.", 28),
        ("alias.example.net.", 1),
        ("nope.example.net.", 1),
        ("example.net.", 2),
        ("x.wild.example.net.", 16),
    ] {
        for i in 0..50u32 {
            let mut q = QuerySpec::new(name, t);
            q.ecs = Some(format!("{}.{}.0.0/16", 1 + i % 5, i).parse().unwrap());
            queries.push(q.bytes());
        }
    }
    let mut out = vec![0u8; 65535];
    let mut info = AnswerInfo::default();
    let c = Client {
        addr: "192.0.2.53".parse().unwrap(),
        tcp: false,
        now: 0,
        cookie_secret: [0; 16],
    };
    let gen = fixture::at(&data, &states);
    answer(&gen, &queries[0], &c, 0, &mut out, &mut info);
    let before = ALLOCS.with(|a| a.get());
    let mut bytes = 0;
    for (i, q) in queries.iter().enumerate() {
        bytes += answer(&gen, q, &c, i as u64, &mut out, &mut info);
    }
    assert_eq!(ALLOCS.with(|a| a.get()) - before, 0, "the answer path allocated");
    assert!(bytes > queries.len() * 40);
}

fn qtype_num(s: &str) -> u16 {
    match s {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "AXFR" => 252,
        "ANY" => 255,
        "CAA" => 257,
        n => n.parse().expect("qtype"),
    }
}

struct Reply {
    rcode: String,
    flags: Vec<&'static str>,
    scope: String,
    edns: bool,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

fn decode(bytes: &[u8]) -> Reply {
    let f = u16::from_be_bytes([bytes[2], bytes[3]]);
    let mut flags = Vec::new();
    for (bit, n) in [
        (0x8000, "qr"),
        (0x0400, "aa"),
        (0x0200, "tc"),
        (0x0100, "rd"),
        (0x0080, "ra"),
    ] {
        if f & bit != 0 {
            flags.push(n);
        }
    }
    let mut rc = f & 0xf;
    let m = Message::from_vec(bytes).expect("reply decodes with hickory-proto");
    let mut scope = "none".to_string();
    if let Some(e) = &m.edns {
        rc |= (e.rcode_high() as u16) << 4;
        if let Some(EdnsOption::Subnet(cs)) = e.option(EdnsCode::Subnet) {
            scope = format!("{}/{} scope {}", cs.addr(), cs.source_prefix(), cs.scope_prefix());
        }
    }
    let fmt = |rs: &Vec<hickory_proto::rr::Record>| {
        rs.iter()
            .map(|r| r.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    Reply {
        rcode: rcode::name(rc).to_string(),
        flags,
        scope,
        edns: m.edns.is_some(),
        answer: fmt(&m.answers),
        authority: fmt(&m.authorities),
        additional: fmt(&m.additionals),
    }
}

#[test]
fn golden_scenarios() {
    let data = fixture::data();
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for block in text
            .split("\n\n")
            .filter(|b| b.lines().any(|l| l.starts_with("query") || l.starts_with("raw")))
        {
            let mut title = String::new();
            let mut pkt = Vec::new();
            let mut client = Client {
                addr: "192.0.2.53".parse().unwrap(),
                tcp: false,
                now: 0,
                cookie_secret: [0; 16],
            };
            let mut states = vec![PopState::Up; 4];
            let mut want_rcode = "NOERROR".to_string();
            let mut want_flags = String::new();
            let mut want_scope = "none".to_string();
            let mut want_edns = None;
            let (mut want_an, mut want_ns, mut want_ar) = (Vec::new(), Vec::new(), Vec::new());
            let mut expect_drop = false;
            for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let (k, v) = line
                    .split_once(char::is_whitespace)
                    .map_or((line, ""), |(k, v)| (k, v.trim()));
                match k {
                    "##" => title = v.to_string(),
                    _ if k.starts_with('#') => {}
                    "query" => {
                        let mut parts = v.split_whitespace();
                        let mut q = QuerySpec::new(parts.next().unwrap(), qtype_num(parts.next().unwrap()));
                        for opt in parts {
                            match opt.split_once('=') {
                                Some(("ecs", p)) => q.ecs = Some(p.parse().unwrap()),
                                Some(("bufsize", n)) => q.bufsize = n.parse().unwrap(),
                                Some(("ednsver", n)) => q.version = n.parse().unwrap(),
                                Some(("class", n)) => q.qclass = n.parse().unwrap(),
                                Some(("opcode", n)) => q.opcode = n.parse().unwrap(),
                                None if opt == "noedns" => q.edns = false,
                                None if opt == "tcp" => client.tcp = true,
                                _ => panic!("unknown query option {opt}"),
                            }
                        }
                        pkt = q.bytes();
                    }
                    "raw" => {
                        pkt = (0..v.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&v[i..i + 2], 16).unwrap())
                            .collect()
                    }
                    "client" => client.addr = v.parse().unwrap(),
                    "states" => {
                        states = v
                            .split_whitespace()
                            .map(|s| match s {
                                "up" => PopState::Up,
                                "down" => PopState::Down,
                                "drained" => PopState::Drained,
                                "degraded" => PopState::Degraded,
                                _ => panic!("state {s}"),
                            })
                            .collect()
                    }
                    "rcode" => want_rcode = v.to_string(),
                    "flags" => want_flags = v.to_string(),
                    "scope" => want_scope = v.to_string(),
                    "edns" => want_edns = Some(v == "yes"),
                    "answer" => want_an.push(v.to_string()),
                    "authority" => want_ns.push(v.to_string()),
                    "additional" => want_ar.push(v.to_string()),
                    "drop" => expect_drop = true,
                    _ => panic!("{}: unknown line `{line}`", file.display()),
                }
            }
            ran += 1;
            let mut out = vec![0u8; 65535];
            let mut info = AnswerInfo::default();
            let n = answer(&fixture::at(&data, &states), &pkt, &client, 0, &mut out, &mut info);
            if expect_drop {
                if n != 0 {
                    failures.push(format!("{title}: expected no reply"));
                }
                continue;
            }
            if n == 0 {
                failures.push(format!("{title}: no reply"));
                continue;
            }
            let r = decode(&out[..n]);
            let got_flags = r.flags.join(" ");
            if std::env::var("PETREL_BLESS").is_ok() {
                println!("## {title}\nrcode {}\nflags {}\nscope {}", r.rcode, got_flags, r.scope);
                for (k, v) in [
                    ("answer", &r.answer),
                    ("authority", &r.authority),
                    ("additional", &r.additional),
                ] {
                    for l in v {
                        println!("{k} {l}");
                    }
                }
                println!();
            }
            let mut diffs = Vec::new();
            if r.rcode != want_rcode {
                diffs.push(format!("rcode {} != {want_rcode}", r.rcode));
            }
            if got_flags != want_flags {
                diffs.push(format!("flags `{got_flags}` != `{want_flags}`"));
            }
            if r.scope != want_scope {
                diffs.push(format!("scope `{}` != `{want_scope}`", r.scope));
            }
            if want_edns.is_some_and(|e| e != r.edns) {
                diffs.push(format!("OPT in reply: {} != {want_edns:?}", r.edns));
            }
            for (k, got, want) in [
                ("answer", &r.answer, &want_an),
                ("authority", &r.authority, &want_ns),
                ("additional", &r.additional, &want_ar),
            ] {
                if got != want {
                    diffs.push(format!("{k}:\n    got  {got:?}\n    want {want:?}"));
                }
            }
            if !diffs.is_empty() {
                failures.push(format!("{}: {title}\n  {}", file.display(), diffs.join("\n  ")));
            }
        }
    }
    assert!(ran >= 30, "only {ran} scenarios ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn udp_replies_respect_the_offered_size_and_tcp_gets_everything() {
    let data = fixture::data();
    let mut out = vec![0u8; 65535];
    let mut info = AnswerInfo::default();
    let states = [PopState::Up; 4];
    let q = QuerySpec::new("big.example.net.", 16).bytes();
    let udp = Client {
        addr: "192.0.2.53".parse().unwrap(),
        tcp: false,
        now: 0,
        cookie_secret: [0; 16],
    };
    let n = answer(&fixture::at(&data, &states), &q, &udp, 0, &mut out, &mut info);
    assert!(n <= 1232);
    let mut q512 = QuerySpec::new("big.example.net.", 16);
    q512.bufsize = 512;
    let n = answer(
        &fixture::at(&data, &states),
        &q512.bytes(),
        &udp,
        0,
        &mut out,
        &mut info,
    );
    assert!(n <= 512);
    assert!(info.truncated);
    let tcp = Client { tcp: true, ..udp };
    let n = answer(
        &fixture::at(&data, &states),
        &q512.bytes(),
        &tcp,
        0,
        &mut out,
        &mut info,
    );
    assert!(n > 512 && !info.truncated);
}

proptest::proptest! {
    #[test]
    fn any_bytes_get_a_well_formed_reply_or_none(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let data = fixture::data();
        let mut out = vec![0u8; 65535];
        let mut info = AnswerInfo::default();
        let c = Client { addr: "192.0.2.53".parse().unwrap(), tcp: false, now: 0, cookie_secret: [0; 16] };
        let n = answer(&fixture::at(&data, &[PopState::Up; 4]), &bytes, &c, 0, &mut out, &mut info);
        if n > 0 {
            proptest::prop_assert!(n <= 1232);
            proptest::prop_assert!(Message::from_vec(&out[..n]).is_ok());
        }
    }
}
