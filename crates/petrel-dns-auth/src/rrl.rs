//! Response rate limiting (RRL) of UDP answers, with the semantics of
//! BIND's `rate-limit` and Knot's `rrl` module: a spoofed flood must not
//! turn an authoritative server into an amplifier.
//!
//! Each response is accounted to a client network (`/24`, `/56` by
//! default) and a kind of response ([`Kind`]); answers and NODATA also to
//! the name and type asked, so that one busy resolver asking for many
//! names is not limited by its total. An account is credited
//! `per_second` each second up to `per_second`, debited one per response,
//! and may sink to `-window × per_second`: a network over its rate stays
//! limited until its debt is repaid, so a steady flood is limited for as
//! long as it lasts. A limited response is dropped, except every `slip`th
//! one, which goes out truncated (TC, no records): a real client behind a
//! spoofed network retries over TCP, which proves its address.
//!
//! Accounts live in a fixed table of atomic words (no allocation, no lock:
//! a compare-and-swap per response); two keys that meet in one slot take
//! turns (the newer replaces the older, counted as an eviction). Memory is
//! the table's size, whatever the traffic. Time is passed in (whole
//! seconds), as is the slip counter (per worker, so workers never contend
//! on it).
//!
//! Responses to a query with a valid server cookie are exempt (the cookie
//! proves the address, as BIND and Knot treat it).
//!
//! Deviations: NXDOMAIN, referrals and errors are accounted per network
//! and kind only (BIND keys NXDOMAIN by the zone and referrals by the
//! delegation: with the few zones a traffic director serves, the network
//! is the part that matters); the truncated answer carries the header and
//! question only, no OPT record.

use petrel_config::RrlConf;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The kinds of response accounted apart, as BIND tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Answer = 0,
    Nodata = 1,
    Nxdomain = 2,
    Referral = 3,
    Error = 4,
}

impl Kind {
    /// The kind of a response, from its header. None for a packet too
    /// short to be one.
    pub fn of(resp: &[u8]) -> Option<Kind> {
        if resp.len() < 12 {
            return None;
        }
        let rcode = resp[3] & 0x0f;
        let aa = resp[2] & 0x04 != 0;
        let an = u16::from_be_bytes([resp[6], resp[7]]);
        let ns = u16::from_be_bytes([resp[8], resp[9]]);
        Some(match rcode {
            0 if an > 0 => Kind::Answer,
            0 if !aa && ns > 0 => Kind::Referral,
            0 => Kind::Nodata,
            3 => Kind::Nxdomain,
            _ => Kind::Error,
        })
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Drop,
    /// Send it truncated ([`truncate`]).
    Slip,
}

/// Counts of what the limiter did, by [`Kind`].
#[derive(Debug, Default)]
pub struct Stats {
    pub dropped: [AtomicU64; 5],
    pub slipped: [AtomicU64; 5],
    /// Accounts that gave their slot to another key while still active.
    pub evicted: AtomicU64,
}

/// The accounts: one `AtomicU64` per slot, packing a key fingerprint, the
/// second of the last update and the balance.
pub struct Table {
    slots: Box<[AtomicU64]>,
    mask: u64,
    seed: u64,
    pub stats: Stats,
}

const BAL_BITS: u32 = 28;
const BIAS: i64 = 1 << (BAL_BITS - 1);
const TIME_BITS: u32 = 16;
const FP_SHIFT: u32 = BAL_BITS + TIME_BITS;

fn pack(fp: u64, sec: u32, bal: i64) -> u64 {
    let b = (bal + BIAS).clamp(0, (1 << BAL_BITS) - 1) as u64;
    (fp << FP_SHIFT) | (u64::from(sec & 0xffff) << BAL_BITS) | b
}

fn unpack(w: u64) -> (u64, u32, i64) {
    (
        w >> FP_SHIFT,
        ((w >> BAL_BITS) & 0xffff) as u32,
        (w & ((1 << BAL_BITS) - 1)) as i64 - BIAS,
    )
}

fn mix(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl Table {
    /// A table of `size` slots (rounded up to a power of two). `seed`
    /// keys the hash, so that a flood cannot aim at one slot.
    pub fn new(size: usize, seed: u64) -> Table {
        let size = size.max(2).next_power_of_two();
        Table {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            mask: size as u64 - 1,
            seed: seed | 1,
            stats: Stats::default(),
        }
    }

    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Account `resp` (a response about to go to `client` over UDP) at
    /// second `now`. `cookie` is what the query's DNS cookie was worth: a
    /// valid server cookie proves the client's address (RFC 7873 §5.3), so
    /// its responses are never limited. `slip` is the caller's counter of
    /// limited responses.
    pub fn check(
        &self,
        conf: &RrlConf,
        client: IpAddr,
        resp: &[u8],
        now: u32,
        cookie: crate::cookie::Status,
        slip: &mut u32,
    ) -> Verdict {
        if cookie == crate::cookie::Status::Valid {
            return Verdict::Send;
        }
        let Some(kind) = Kind::of(resp) else {
            return Verdict::Send;
        };
        let rate = i64::from(conf.per_second[kind.index()]);
        if rate == 0 {
            return Verdict::Send;
        }
        let client = client.to_canonical();
        let host = petrel_types::Prefix::host(client);
        if conf.exempt.iter().any(|p| p.contains(&host)) {
            return Verdict::Send;
        }
        let (net, len) = match client {
            IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, conf.ipv4_prefix_length),
            IpAddr::V6(a) => (u128::from(a), conf.ipv6_prefix_length),
        };
        let net = if len == 0 {
            0
        } else {
            net & (u128::MAX << (128 - u32::from(len)))
        };
        let mut h = mix(self.seed, (net >> 64) as u64);
        h = mix(h, net as u64);
        h = mix(h, (kind as u64) << 1 | u64::from(client.is_ipv6()));
        if matches!(kind, Kind::Answer | Kind::Nodata) {
            h = hash_question(h, resp);
        }
        let slot = &self.slots[(h & self.mask) as usize];
        let fp = (h >> FP_SHIFT) | 1; // never 0: 0 is an empty slot
                                      // The packed balance holds ±2^27: a debt deeper than that is
                                      // remembered as that (a flood over 37,000/s for an hour).
        let floor = (-(i64::from(conf.window_secs) * rate)).max(1 - BIAS);
        let mut cur = slot.load(Relaxed);
        let bal = loop {
            let (fp0, last, bal0) = unpack(cur);
            let elapsed = i64::from(now.wrapping_sub(last) & 0xffff);
            let bal = if cur == 0 || fp0 != fp {
                if cur != 0 && elapsed <= i64::from(conf.window_secs) {
                    self.stats.evicted.fetch_add(1, Relaxed);
                }
                rate
            } else if elapsed > i64::from(conf.window_secs) {
                rate
            } else {
                (bal0 + elapsed * rate).min(rate)
            };
            let bal = (bal - 1).max(floor);
            match slot.compare_exchange_weak(cur, pack(fp, now, bal), Relaxed, Relaxed) {
                Ok(_) => break bal,
                Err(seen) => cur = seen,
            }
        };
        if bal >= 0 {
            return Verdict::Send;
        }
        *slip = slip.wrapping_add(1);
        if conf.slip > 0 && slip.is_multiple_of(conf.slip) {
            self.stats.slipped[kind.index()].fetch_add(1, Relaxed);
            Verdict::Slip
        } else {
            self.stats.dropped[kind.index()].fetch_add(1, Relaxed);
            Verdict::Drop
        }
    }
}

/// Fold the question's name (case-insensitively) and type into `h`, eight
/// bytes at a time.
fn hash_question(mut h: u64, resp: &[u8]) -> u64 {
    let Some(end) = question_end(resp) else {
        return h;
    };
    let q = &resp[12..end];
    let mut words = q.chunks_exact(8);
    for w in &mut words {
        h = mix(h, lower8(u64::from_le_bytes(w.try_into().unwrap_or_default())));
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    mix(h, lower8(u64::from_le_bytes(last)))
}

/// ASCII upper case to lower case in each byte of `w` (others unchanged).
fn lower8(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low7 = w & (0x7f * ONES);
    // The high bit of each byte: set where the byte is above 'Z' (0x5a),
    // and where it is at least 'A' (0x41).
    let above_z = low7 + 0x25 * ONES;
    let from_a = low7 + 0x3f * ONES;
    let upper = (from_a ^ above_z) & !w & (0x80 * ONES);
    w | (upper >> 2)
}

/// Where the question (name, type; not the class) ends, if the packet has
/// one whole question in uncompressed form.
fn question_end(p: &[u8]) -> Option<usize> {
    if p.len() < 12 || u16::from_be_bytes([p[4], p[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    loop {
        let l = *p.get(i)? as usize;
        if l == 0 {
            i += 1;
            break;
        }
        if l & 0xc0 != 0 {
            return None;
        }
        i += 1 + l;
    }
    (i + 4 <= p.len()).then_some(i + 2)
}

/// Cut a response down to its header and question with TC set, in place;
/// the new length. A packet without one plain question keeps its header
/// only.
pub fn truncate(resp: &mut [u8], len: usize) -> usize {
    let len = len.min(resp.len());
    if len < 12 {
        return len;
    }
    let keep = question_end(&resp[..len]).map_or(12, |e| e + 2);
    resp[2] |= 0x02;
    if keep == 12 {
        resp[4..6].fill(0);
    }
    resp[6..12].fill(0);
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NONE: crate::cookie::Status = crate::cookie::Status::None;

    fn conf(rate: u32, window: u32, slip: u32) -> RrlConf {
        RrlConf {
            per_second: [rate; 5],
            window_secs: window,
            slip,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            exempt: vec!["192.0.2.128/25".parse().unwrap()],
            table_size: 1024,
        }
    }

    /// A response to `name` A with `an` answers and `rcode`.
    fn resp(name: &str, an: u16, rcode: u8, aa: bool, ns: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x80 | if aa { 0x04 } else { 0 }, rcode, 0, 1];
        p.extend_from_slice(&an.to_be_bytes());
        p.extend_from_slice(&ns.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        for l in name.split('.').filter(|l| !l.is_empty()) {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        // An answer record's worth of bytes.
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        p
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_differing_in_case_share_an_account() {
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b, b'Q', b'z', b'@', b'[', b'a', b'Z', 0xc1]);
            let want: Vec<u8> = w.to_le_bytes().iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(lower8(w).to_le_bytes().to_vec(), want, "{b:#x}");
        }
        let a = hash_question(1, &resp("WwW.Example", 1, 0, true, 0));
        assert_eq!(a, hash_question(1, &resp("www.example", 1, 0, true, 0)));
        assert_ne!(a, hash_question(1, &resp("www.examplf", 1, 0, true, 0)));
    }

    #[test]
    fn kinds_come_from_the_header() {
        assert_eq!(Kind::of(&resp("a.example", 1, 0, true, 0)), Some(Kind::Answer));
        assert_eq!(Kind::of(&resp("a.example", 0, 0, true, 1)), Some(Kind::Nodata));
        assert_eq!(Kind::of(&resp("a.example", 0, 0, false, 2)), Some(Kind::Referral));
        assert_eq!(Kind::of(&resp("a.example", 0, 3, true, 1)), Some(Kind::Nxdomain));
        assert_eq!(Kind::of(&resp("a.example", 0, 5, false, 0)), Some(Kind::Error));
        assert_eq!(Kind::of(&[0; 5]), None);
    }

    #[test]
    fn a_network_gets_its_rate_then_every_other_is_truncated() {
        let t = Table::new(1024, 7);
        let c = conf(5, 15, 2);
        let r = resp("www.example", 1, 0, true, 0);
        let mut slip = 0;
        let v: Vec<Verdict> = (0..11)
            .map(|_| t.check(&c, ip("198.51.100.7"), &r, 100, NONE, &mut slip))
            .collect();
        assert!(v[..5].iter().all(|&x| x == Verdict::Send), "{v:?}");
        assert_eq!(&v[5..9], &[Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]);
        // Another address of the same /24 shares the account.
        assert_ne!(
            t.check(&c, ip("198.51.100.200"), &r, 100, NONE, &mut slip),
            Verdict::Send
        );
        // Another network, another name, the exempt network: their own.
        assert_eq!(t.check(&c, ip("203.0.113.1"), &r, 100, NONE, &mut slip), Verdict::Send);
        let other = resp("mail.example", 1, 0, true, 0);
        assert_eq!(
            t.check(&c, ip("198.51.100.7"), &other, 100, NONE, &mut slip),
            Verdict::Send
        );
        for _ in 0..50 {
            assert_eq!(t.check(&c, ip("192.0.2.200"), &r, 100, NONE, &mut slip), Verdict::Send);
        }
        assert_eq!(t.stats.dropped[0].load(Relaxed) + t.stats.slipped[0].load(Relaxed), 7);
    }

    #[test]
    fn a_flood_stays_limited_until_its_debt_is_repaid() {
        let t = Table::new(1024, 7);
        let c = conf(10, 5, 0);
        let r = resp("www.example", 1, 0, true, 0);
        let mut slip = 0;
        let client = ip("2001:db8:1:2::9");
        // 1000 responses in one second: 10 sent, the debt sinks to the
        // floor (-50).
        let sent = (0..1000)
            .filter(|_| t.check(&c, client, &r, 10, NONE, &mut slip) == Verdict::Send)
            .count();
        assert_eq!(sent, 10);
        // Four seconds later the account is at -10: still limited.
        assert_eq!(t.check(&c, client, &r, 14, NONE, &mut slip), Verdict::Drop);
        // Two seconds later the debt is repaid.
        assert_eq!(t.check(&c, client, &r, 16, NONE, &mut slip), Verdict::Send);
        // The same /56 shares it; another /56 does not.
        assert_eq!(
            t.check(&c, ip("2001:db8:1:ff::1"), &r, 16, NONE, &mut slip),
            Verdict::Send
        );
        assert_eq!(t.check(&c, ip("2001:db8:2::1"), &r, 16, NONE, &mut slip), Verdict::Send);
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_never_limited() {
        let t = Table::new(1024, 7);
        let c = conf(20, 15, 2);
        let r = resp("www.example", 0, 3, true, 1);
        let mut slip = 0;
        for sec in 0..100 {
            for _ in 0..20 {
                assert_eq!(t.check(&c, ip("198.51.100.1"), &r, sec, NONE, &mut slip), Verdict::Send);
            }
        }
    }

    #[test]
    fn a_valid_cookie_is_never_limited_and_others_are() {
        use crate::cookie::Status;
        let t = Table::new(1024, 7);
        let c = conf(1, 15, 0);
        let r = resp("www.example", 1, 0, true, 0);
        let mut slip = 0;
        for _ in 0..50 {
            assert_eq!(
                t.check(&c, ip("198.51.100.1"), &r, 1, Status::Valid, &mut slip),
                Verdict::Send
            );
        }
        // The valid cookie's responses were not even accounted: the first
        // without one still has its rate.
        assert_eq!(
            t.check(&c, ip("198.51.100.1"), &r, 1, Status::Invalid, &mut slip),
            Verdict::Send
        );
        assert_eq!(
            t.check(&c, ip("198.51.100.1"), &r, 1, Status::ClientOnly, &mut slip),
            Verdict::Drop
        );
    }

    #[test]
    fn a_zero_rate_does_not_limit_that_kind() {
        let t = Table::new(1024, 7);
        let mut c = conf(1, 15, 2);
        c.per_second[Kind::Error.index()] = 0;
        let r = resp("x.example", 0, 5, false, 0);
        let mut slip = 0;
        for _ in 0..100 {
            assert_eq!(t.check(&c, ip("198.51.100.1"), &r, 1, NONE, &mut slip), Verdict::Send);
        }
    }

    #[test]
    fn truncation_keeps_the_header_and_question() {
        let mut r = resp("www.example", 1, 0, true, 0);
        let len = r.len();
        let n = truncate(&mut r, len);
        assert_eq!(n, 12 + 13 + 4);
        assert_eq!(r[2] & 0x02, 0x02, "TC");
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        let mut junk = vec![0u8; 20];
        junk[5] = 1;
        junk[12] = 0xc0;
        assert_eq!(truncate(&mut junk, 20), 12);
        assert_eq!(&junk[4..6], &[0, 0]);
    }

    proptest! {
        #[test]
        fn memory_is_the_table_whatever_the_traffic(
            clients in proptest::collection::vec(any::<u128>(), 1..400),
            names in proptest::collection::vec("[a-z]{1,12}", 1..8),
            secs in proptest::collection::vec(0u32..200_000, 1..20),
        ) {
            let t = Table::new(256, 3);
            let c = conf(3, 10, 2);
            let mut slip = 0;
            for (i, a) in clients.iter().enumerate() {
                let r = resp(&format!("{}.example", names[i % names.len()]), (i % 2) as u16, 0, true, 1);
                let v = t.check(&c, IpAddr::V6((*a).into()), &r, secs[i % secs.len()], NONE, &mut slip);
                prop_assert!(matches!(v, Verdict::Send | Verdict::Drop | Verdict::Slip));
            }
            prop_assert_eq!(t.size(), 256);
        }

        #[test]
        fn any_bytes_are_classified_and_truncated_without_panic(p in proptest::collection::vec(any::<u8>(), 0..80)) {
            let t = Table::new(64, 3);
            let mut slip = 0;
            let _ = t.check(&conf(1, 1, 1), IpAddr::V4([10, 0, 0, 1].into()), &p, 0, NONE, &mut slip);
            let mut q = p.clone();
            let n = truncate(&mut q, p.len());
            prop_assert!(n <= p.len());
        }
    }
}
