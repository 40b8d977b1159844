//! What comes in from outside, checked before anything is stored:
//!
//! - RUM beacons, posted by the `/rum.js` tag (`navigator.sendBeacon`):
//!   `{"v":1,"id":"<token>","m":[{"p":"ams","d":23.4},...]}`, one entry per
//!   POP measured, `d` the RTT in milliseconds read from Resource Timing.
//!   The client is the address the beacon came from, never a field of it.
//! - Imported connection RTTs from other servers, one JSON object per
//!   line: `{"time":1733560000.123,"client":"192.0.2.1","pop":"ams",
//!   "rtt_us":23400}` (`time` in Unix seconds, optional; `rtt_ms` may
//!   stand for `rtt_us`). nginx writes exactly this with
//!   `log_format ... escape=json` and `$msec`, `$remote_addr`,
//!   `$tcpinfo_rtt`.
//!
//! A beacon or line that is malformed, oversized, names a POP that does
//! not exist or carries an impossible value is refused whole, with the
//! reason counted; nothing of it is stored.

use crate::sample::{Kind, Sample, MAX_RTT_US};
use petrel_types::PopIdx;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::IpAddr;

/// The largest beacon body taken.
pub const MAX_BEACON_BYTES: usize = 4096;
/// The most measurements one beacon may carry.
pub const MAX_ENTRIES: usize = 32;
/// The largest import line taken.
pub const MAX_LINE_BYTES: usize = 1024;

/// Why a beacon or line was refused (a metric label each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Oversized,
    Malformed,
    UnknownPop,
    Impossible,
    TooMany,
    Duplicate,
    Version,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Oversized => "oversized",
            Refused::Malformed => "malformed",
            Refused::UnknownPop => "unknown_pop",
            Refused::Impossible => "impossible_value",
            Refused::TooMany => "too_many_entries",
            Refused::Duplicate => "duplicate_pop",
            Refused::Version => "unknown_version",
        }
    }

    pub const ALL: [Refused; 7] = [
        Refused::Oversized,
        Refused::Malformed,
        Refused::UnknownPop,
        Refused::Impossible,
        Refused::TooMany,
        Refused::Duplicate,
        Refused::Version,
    ];
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBeacon<'a> {
    v: u32,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    m: Vec<RawEntry<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry<'a> {
    #[serde(borrow)]
    p: Cow<'a, str>,
    d: f64,
}

/// A beacon's measurements, and its whoami token if it has one.
#[derive(Debug, PartialEq)]
pub struct Beacon {
    pub id: Option<String>,
    pub samples: Vec<Sample>,
}

/// Whether a whoami token is one the tag makes: 8 to 40 of `[a-z0-9]`,
/// so that it is one DNS label and cannot smuggle anything into a log.
pub fn valid_token(id: &str) -> bool {
    (8..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn rtt_us(ms: f64) -> Result<u32, Refused> {
    if !ms.is_finite() || ms <= 0.0 || ms * 1000.0 > f64::from(MAX_RTT_US) {
        return Err(Refused::Impossible);
    }
    Ok((ms * 1000.0).round().max(1.0) as u32)
}

/// Read a beacon from `client` received at `now_ms`.
pub fn parse_beacon(
    body: &[u8],
    client: IpAddr,
    now_ms: u64,
    pop_of: impl Fn(&str) -> Option<PopIdx>,
) -> Result<Beacon, Refused> {
    if body.len() > MAX_BEACON_BYTES {
        return Err(Refused::Oversized);
    }
    let raw: RawBeacon = serde_json::from_slice(body).map_err(|_| Refused::Malformed)?;
    if raw.v != 1 {
        return Err(Refused::Version);
    }
    if raw.m.len() > MAX_ENTRIES {
        return Err(Refused::TooMany);
    }
    let id = match raw.id {
        Some(id) if !valid_token(&id) => return Err(Refused::Malformed),
        id => id.map(Cow::into_owned),
    };
    let mut samples: Vec<Sample> = Vec::with_capacity(raw.m.len());
    for e in &raw.m {
        let pop = pop_of(&e.p).ok_or(Refused::UnknownPop)?;
        if samples.iter().any(|s| s.pop == pop) {
            return Err(Refused::Duplicate);
        }
        samples.push(Sample {
            at_ms: now_ms,
            client: client.to_canonical(),
            pop,
            rtt_us: rtt_us(e.d)?,
            kind: Kind::Rum,
            resolver: None,
        });
    }
    Ok(Beacon { id, samples })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    #[serde(default)]
    time: Option<f64>,
    #[serde(borrow)]
    client: Cow<'a, str>,
    #[serde(borrow)]
    pop: Cow<'a, str>,
    #[serde(default)]
    rtt_us: Option<f64>,
    #[serde(default)]
    rtt_ms: Option<f64>,
}

/// The furthest from `now` an imported sample's time may be (a day back,
/// a minute ahead: clocks drift, logs are shipped late).
const PAST_MS: u64 = 24 * 3_600_000;
const FUTURE_MS: u64 = 60_000;

/// Read one imported line, received at `now_ms`.
pub fn parse_import_line(line: &[u8], now_ms: u64, pop_of: impl Fn(&str) -> Option<PopIdx>) -> Result<Sample, Refused> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Refused::Oversized);
    }
    let raw: RawLine = serde_json::from_slice(line).map_err(|_| Refused::Malformed)?;
    let client: IpAddr = raw.client.parse().map_err(|_| Refused::Malformed)?;
    let pop = pop_of(&raw.pop).ok_or(Refused::UnknownPop)?;
    let rtt_us = match (raw.rtt_us, raw.rtt_ms) {
        (Some(us), None) => rtt_us(us / 1000.0)?,
        (None, Some(ms)) => rtt_us(ms)?,
        _ => return Err(Refused::Malformed),
    };
    let at_ms = match raw.time {
        None => now_ms,
        Some(t) if t.is_finite() && t > 0.0 => {
            let ms = (t * 1000.0) as u64;
            if ms + PAST_MS < now_ms || ms > now_ms + FUTURE_MS {
                return Err(Refused::Impossible);
            }
            ms
        }
        Some(_) => return Err(Refused::Impossible),
    };
    Ok(Sample {
        at_ms,
        client: client.to_canonical(),
        pop,
        rtt_us,
        kind: Kind::Import,
        resolver: None,
    })
}

/// Read a body of import lines: the samples taken, and each refused
/// line's reason. Blank lines are skipped; `\r\n` endings are taken.
pub fn parse_import(body: &[u8], now_ms: u64, pop_of: impl Fn(&str) -> Option<PopIdx>) -> (Vec<Sample>, Vec<Refused>) {
    let (mut samples, mut refused) = (Vec::new(), Vec::new());
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_import_line(line, now_ms, &pop_of) {
            Ok(s) => samples.push(s),
            Err(why) => refused.push(why),
        }
    }
    (samples, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pops(name: &str) -> Option<PopIdx> {
        ["ams", "iad", "sin"]
            .iter()
            .position(|p| *p == name)
            .map(|i| PopIdx(i as u16))
    }

    const NOW: u64 = 1_765_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_beacon_gives_one_sample_per_pop() {
        let b = parse_beacon(
            br#"{"v":1,"id":"k3j9x0a1b2c3","m":[{"p":"ams","d":23.4},{"p":"iad","d":88}]}"#,
            ip("::ffff:198.51.100.7"),
            NOW,
            pops,
        )
        .unwrap();
        assert_eq!(b.id.as_deref(), Some("k3j9x0a1b2c3"));
        assert_eq!(b.samples.len(), 2);
        assert_eq!(b.samples[0].client, ip("198.51.100.7"));
        assert_eq!((b.samples[0].pop, b.samples[0].rtt_us), (PopIdx(0), 23_400));
        assert_eq!((b.samples[1].pop, b.samples[1].rtt_us), (PopIdx(1), 88_000));
        assert!(b.samples.iter().all(|s| s.kind == Kind::Rum && s.at_ms == NOW));
        let b = parse_beacon(br#"{"v":1,"m":[]}"#, ip("192.0.2.1"), NOW, pops).unwrap();
        assert_eq!(
            b,
            Beacon {
                id: None,
                samples: vec![]
            }
        );
    }

    #[test]
    fn bad_beacons_are_refused_whole_with_a_reason() {
        let c = ip("192.0.2.1");
        let refuse = |body: &[u8]| parse_beacon(body, c, NOW, pops).unwrap_err();
        assert_eq!(refuse(b"not json"), Refused::Malformed);
        assert_eq!(refuse(br#"{"v":1,"m":[{"p":"ams","d":"12"}]}"#), Refused::Malformed);
        assert_eq!(refuse(br#"{"v":1,"m":[],"extra":1}"#), Refused::Malformed);
        assert_eq!(refuse(br#"{"v":1,"id":"UPPER-case","m":[]}"#), Refused::Malformed);
        assert_eq!(refuse(br#"{"v":1,"id":"short","m":[]}"#), Refused::Malformed);
        assert_eq!(refuse(br#"{"v":2,"m":[]}"#), Refused::Version);
        assert_eq!(refuse(br#"{"v":1,"m":[{"p":"lax","d":12}]}"#), Refused::UnknownPop);
        assert_eq!(
            refuse(br#"{"v":1,"m":[{"p":"ams","d":12},{"p":"ams","d":13}]}"#),
            Refused::Duplicate
        );
        for d in ["0", "-3", "10000.5", "1e308"] {
            let body = format!(r#"{{"v":1,"m":[{{"p":"ams","d":12}},{{"p":"iad","d":{d}}}]}}"#);
            assert_eq!(refuse(body.as_bytes()), Refused::Impossible, "{d}");
        }
        let many = format!(r#"{{"v":1,"m":[{}]}}"#, vec![r#"{"p":"ams","d":1}"#; 33].join(","));
        assert_eq!(refuse(many.as_bytes()), Refused::TooMany);
        let big = format!(r#"{{"v":1,"id":"{}","m":[]}}"#, "a".repeat(5000));
        assert_eq!(refuse(big.as_bytes()), Refused::Oversized);
    }

    #[test]
    fn imported_lines_as_nginx_writes_them() {
        let s = parse_import_line(
            br#"{"time":1765000000.123,"client":"198.51.100.7","pop":"sin","rtt_us":23456}"#,
            NOW,
            pops,
        )
        .unwrap();
        assert_eq!(
            s,
            Sample {
                at_ms: 1_765_000_000_123,
                client: ip("198.51.100.7"),
                pop: PopIdx(2),
                rtt_us: 23_456,
                kind: Kind::Import,
                resolver: None,
            }
        );
        let s = parse_import_line(br#"{"client":"2001:db8::1","pop":"ams","rtt_ms":7.5}"#, NOW, pops).unwrap();
        assert_eq!((s.at_ms, s.rtt_us), (NOW, 7_500));
        let refuse = |l: &[u8]| parse_import_line(l, NOW, pops).unwrap_err();
        assert_eq!(refuse(br#"{"client":"x","pop":"ams","rtt_ms":7}"#), Refused::Malformed);
        assert_eq!(refuse(br#"{"client":"192.0.2.1","pop":"ams"}"#), Refused::Malformed);
        assert_eq!(
            refuse(br#"{"client":"192.0.2.1","pop":"ams","rtt_ms":7,"rtt_us":7000}"#),
            Refused::Malformed
        );
        assert_eq!(
            refuse(br#"{"client":"192.0.2.1","pop":"nyc","rtt_ms":7}"#),
            Refused::UnknownPop
        );
        assert_eq!(
            refuse(br#"{"client":"192.0.2.1","pop":"ams","rtt_us":0}"#),
            Refused::Impossible
        );
        assert_eq!(
            refuse(br#"{"time":1000,"client":"192.0.2.1","pop":"ams","rtt_ms":7}"#),
            Refused::Impossible,
            "a day late at most"
        );
        assert_eq!(
            refuse(br#"{"time":1765000090,"client":"192.0.2.1","pop":"ams","rtt_ms":7}"#),
            Refused::Impossible,
            "a minute early at most"
        );
    }

    #[test]
    fn an_import_body_is_read_line_by_line() {
        let body = b"{\"client\":\"192.0.2.1\",\"pop\":\"ams\",\"rtt_ms\":7}\r\n\n  \nnot json\n{\"client\":\"192.0.2.2\",\"pop\":\"iad\",\"rtt_us\":9000}";
        let (samples, refused) = parse_import(body, NOW, pops);
        assert_eq!(samples.iter().map(|s| s.rtt_us).collect::<Vec<_>>(), [7_000, 9_000]);
        assert_eq!(refused, [Refused::Malformed]);
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_or_refused(body in prop::collection::vec(any::<u8>(), 0..600), text in "\\PC{0,300}") {
            let _ = parse_beacon(&body, ip("192.0.2.1"), NOW, pops);
            let _ = parse_import_line(&body, NOW, pops);
            let _ = parse_beacon(text.as_bytes(), ip("192.0.2.1"), NOW, pops);
            let _ = parse_import_line(text.as_bytes(), NOW, pops);
        }

        /// Whatever a beacon says, every sample it gives is possible.
        #[test]
        fn accepted_beacons_hold_possible_values(ds in prop::collection::vec(-1e6f64..1e6, 0..3)) {
            let names = ["ams", "iad", "sin"];
            let m: Vec<String> = ds.iter().zip(names).map(|(d, p)| format!(r#"{{"p":"{p}","d":{d}}}"#)).collect();
            let body = format!(r#"{{"v":1,"m":[{}]}}"#, m.join(","));
            if let Ok(b) = parse_beacon(body.as_bytes(), ip("192.0.2.1"), NOW, pops) {
                prop_assert!(b.samples.iter().all(|s| s.rtt_us >= 1 && s.rtt_us <= MAX_RTT_US));
            }
        }
    }
}
