//! Paced HTTP/1.1 latency on one keep-alive connection: `count` GETs at
//! `rate` per second, each timed from the request's first byte written to
//! the response's last byte read; prints p50, p99 and p99.9 in
//! microseconds. Paced, so that what is measured is a request's own
//! latency, not the queue of a saturated core (what `bench/http` needs to
//! compare a proxy with the server behind it).
//!
//!   cargo run --release --example http_latency -- 127.0.0.1:8080 /small.txt 5000 1000

// A benchmark client times from outside.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: http_latency ADDR PATH COUNT RATE");
        std::process::exit(2);
    }
    let (addr, path) = (&args[1], &args[2]);
    let count: usize = args[3].parse().expect("COUNT");
    let rate: f64 = args[4].parse().expect("RATE");
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut lat = Vec::with_capacity(count);
    let mut next = Instant::now();
    let mut line = String::new();
    let mut body = Vec::new();
    for i in 0..count + count / 10 {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += gap;
        let t0 = Instant::now();
        w.write_all(req.as_bytes()).unwrap();
        let mut len = 0usize;
        let mut status = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap() == 0 {
                panic!("the server closed the connection after {i} requests");
            }
            if status.is_empty() {
                status = line.clone();
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        body.resize(len, 0);
        r.read_exact(&mut body).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        // The first tenth warms up (connections, caches) and is not counted.
        if i >= count / 10 {
            lat.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!("{:.0} {:.0} {:.0}", q(0.5), q(0.99), q(0.999));
}
