//! RUM beacons and imported RTT lines: any bytes are read or refused with
//! a reason, never a panic, and what is accepted holds possible values
//! only.

#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_measure::beacon::{parse_beacon, parse_import_line};
use petrel_measure::sample::MAX_RTT_US;
use petrel_types::PopIdx;

const NOW: u64 = 1_765_000_000_000;

fn pops(name: &str) -> Option<PopIdx> {
    ["ams", "iad", "sin"].iter().position(|p| *p == name).map(|i| PopIdx(i as u16))
}

fuzz_target!(|data: &[u8]| {
    let client = "192.0.2.1".parse().unwrap();
    if let Ok(b) = parse_beacon(data, client, NOW, pops) {
        assert!(b.samples.len() <= 3, "one sample per POP at most");
        for s in &b.samples {
            assert!(s.rtt_us >= 1 && s.rtt_us <= MAX_RTT_US);
            assert_eq!(s.client, client);
        }
    }
    if let Ok(s) = parse_import_line(data, NOW, pops) {
        assert!(s.rtt_us >= 1 && s.rtt_us <= MAX_RTT_US);
        assert!(s.at_ms <= NOW + 60_000 && s.at_ms + 86_400_000 >= NOW);
    }
});
