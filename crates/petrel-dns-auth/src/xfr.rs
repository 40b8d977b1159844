//! Zone transfers out: AXFR (RFC 5936) and IXFR (RFC 1995) of a zone's
//! static data, over TCP, to the networks `[zone.transfer] allow` names and,
//! when it names keys, only to requests signed with one of them (TSIG, RFC
//! 8945; every response message signed in turn). What petrel makes itself
//! (the services' answers, POP names in CNAME mode, DNSSEC records) is not
//! zone data and is not transferred: secondaries carry the static records
//! while petrel answers the services.
//!
//! IXFR: a secondary whose serial is current gets the SOA alone; one whose
//! version the [`Journal`] still holds (the last [`JOURNAL_VERSIONS`] the
//! server published) gets the difference; any other gets the whole zone in
//! IXFR's AXFR-like form (RFC 1995 §4).

use petrel_director::Generation;
use petrel_dns_wire::consts::{class, flags, rcode, rtype};
use petrel_dns_wire::{name, MessageWriter, Section};
use petrel_dnssec::tsig::{self, TsigKey};
use std::net::IpAddr;

/// Versions of each zone the journal keeps.
pub const JOURNAL_VERSIONS: usize = 8;

/// One record of a zone version: owner (lower case), type, TTL, RDATA.
type Owned = (Box<[u8]>, u16, u32, Box<[u8]>);

struct Version {
    serial: u32,
    soa: Owned,
    records: std::sync::Arc<std::collections::BTreeSet<Owned>>,
}

/// The recent versions of the zones that are transferred, for incremental
/// transfers: what the server published, one version per serial.
#[derive(Default)]
pub struct Journal {
    zones: std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::collections::VecDeque<Version>>>,
}

impl Journal {
    /// Take in the zones of a generation: a new version of each
    /// transferred zone whose serial moved.
    pub fn record(&self, gen: &Generation) {
        let zones = gen.zones();
        for z in gen.config().zones.iter().filter(|z| z.transfer.is_some()) {
            let apex = name::to_lowercase(&z.origin_wire);
            let Some(zi) = zones.zone_of(&apex).filter(|&i| *zones.zone(i).apex == *apex) else {
                continue;
            };
            let Some(serial) = serial(gen, zi) else { continue };
            let mut all = self.zones.lock().unwrap_or_else(|e| e.into_inner());
            let versions = all.entry(apex.clone()).or_default();
            if versions.back().is_some_and(|v| v.serial == serial) {
                continue;
            }
            let mut soa = None;
            let mut records = std::collections::BTreeSet::new();
            for (owner, node) in zones.nodes_of(zi) {
                for set in node.rrsets.iter().filter(|s| !s.generated) {
                    for rd in &set.rdata {
                        let r: Owned = (owner.into(), set.rtype, set.ttl, rd.clone());
                        if set.rtype == rtype::SOA {
                            soa = Some(r);
                        } else {
                            records.insert(r);
                        }
                    }
                }
            }
            let Some(soa) = soa else { continue };
            versions.push_back(Version {
                serial,
                soa,
                records: std::sync::Arc::new(records),
            });
            if versions.len() > JOURNAL_VERSIONS {
                versions.pop_front();
            }
        }
    }

    /// From version `from` of a zone to its newest (which must be
    /// `to`): the old SOA, what went and what came.
    fn diff(&self, apex: &[u8], from: u32, to: u32) -> Option<(Owned, Vec<Owned>, Vec<Owned>)> {
        let all = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let versions = all.get(apex)?;
        let new = versions.back().filter(|v| v.serial == to)?;
        let old = versions.iter().find(|v| v.serial == from)?;
        let gone = old.records.difference(&new.records).cloned().collect();
        let came = new.records.difference(&old.records).cloned().collect();
        Some((old.soa.clone(), gone, came))
    }
}

/// Room left in each message for its TSIG record.
const MESSAGE_LIMIT: usize = 60_000;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// One record's place in a message: its start, type and RDATA range.
struct Rr {
    at: usize,
    rtype: u16,
    rdata: std::ops::Range<usize>,
}

fn records(b: &[u8], mut pos: usize, n: u16, out: &mut Vec<Rr>) -> Option<usize> {
    for _ in 0..n {
        let at = pos;
        pos = name::skip(b, pos)?;
        let t = be16(b, pos)?;
        let len = be16(b, pos + 8)? as usize;
        let start = pos + 10;
        b.get(start..start + len)?;
        out.push(Rr {
            at,
            rtype: t,
            rdata: start..start + len,
        });
        pos = start + len;
    }
    Some(pos)
}

/// A transfer request, parsed.
struct Request<'a> {
    id: u16,
    qname: &'a [u8],
    qtype: u16,
    /// IXFR: the secondary's serial.
    serial: Option<u32>,
    tsig_at: Option<usize>,
}

/// AXFR or IXFR, or None when `pkt` is neither (or not even a query).
fn request(pkt: &[u8]) -> Option<Request<'_>> {
    if pkt.len() < 12 || be16(pkt, 2)? & (flags::QR | flags::OPCODE_MASK) != 0 || be16(pkt, 4)? != 1 {
        return None;
    }
    let nl = name::wire_len(&pkt[12..])?;
    let qtype = be16(pkt, 12 + nl)?;
    if !matches!(qtype, rtype::AXFR | rtype::IXFR) {
        return None;
    }
    let mut rrs = Vec::new();
    let mut pos = 12 + nl + 4;
    let (an, ns, ar) = (be16(pkt, 6)?, be16(pkt, 8)?, be16(pkt, 10)?);
    pos = records(pkt, pos, an, &mut rrs)?;
    let answers = rrs.len();
    pos = records(pkt, pos, ns, &mut rrs)?;
    let authority = rrs.len();
    pos = records(pkt, pos, ar, &mut rrs)?;
    if pos != pkt.len() || answers != 0 {
        return None;
    }
    let serial = rrs[..authority]
        .iter()
        .find(|r| r.rtype == rtype::SOA)
        .and_then(|r| soa_serial(&pkt[r.rdata.clone()]));
    let last = rrs.len().checked_sub(1);
    let tsig_at = rrs
        .iter()
        .enumerate()
        .find(|(_, r)| r.rtype == tsig::TSIG)
        .map(|(i, r)| (Some(i) == last).then_some(r.at));
    Some(Request {
        id: be16(pkt, 0)?,
        qname: &pkt[12..12 + nl],
        qtype,
        serial,
        // A TSIG that is not last makes the request fail its check below.
        tsig_at: tsig_at.map(|a| a.unwrap_or(usize::MAX)),
    })
}

/// The serial of an SOA RDATA, whose names may be compressed (as in a
/// secondary's IXFR request).
fn soa_serial(rd: &[u8]) -> Option<u32> {
    let at = name::skip(rd, name::skip(rd, 0)?)?;
    Some(u32::from_be_bytes(rd.get(at..at + 4)?.try_into().ok()?))
}

/// RFC 1982: `a` is at least `b` in serial number arithmetic.
fn serial_ge(a: u32, b: u32) -> bool {
    a == b || (a.wrapping_sub(b) as i32) > 0
}

/// What a transfer request gets: its messages in order, and what to log.
pub struct Transfer {
    pub messages: Vec<Vec<u8>>,
    /// "axfr", "ixfr (current)", "ixfr (full)", or why it was refused.
    pub outcome: String,
    pub records: usize,
}

/// Answer an AXFR or IXFR query received over TCP from `client` at Unix
/// time `now`. None: not a transfer request (the caller answers it as any
/// query).
pub fn transfer(gen: &Generation, journal: &Journal, pkt: &[u8], client: IpAddr, now: u64) -> Option<Transfer> {
    let req = request(pkt)?;
    let refuse = |why: &str, rc: u16| Transfer {
        messages: vec![error_reply(pkt, &req, rc)],
        outcome: why.to_string(),
        records: 0,
    };
    let zones = gen.zones();
    let lname = name::to_lowercase(req.qname);
    let Some(zi) = zones.zone_of(&lname).filter(|&z| *zones.zone(z).apex == *lname) else {
        return Some(refuse("refused: not a zone apex here", tsig::NOTAUTH));
    };
    let config = gen.config();
    let Some(conf) = config
        .zones
        .iter()
        .find(|z| name::to_lowercase(&z.origin_wire) == lname)
        .and_then(|z| z.transfer.as_ref())
    else {
        return Some(refuse("refused: the zone has no [zone.transfer]", rcode::REFUSED));
    };
    let client = client.to_canonical();
    if !conf
        .allow
        .iter()
        .any(|p| p.contains(&petrel_types::Prefix::host(client)))
    {
        return Some(refuse("refused: the client is not in transfer.allow", rcode::REFUSED));
    }
    // TSIG: required when keys are named; checked whenever present.
    let keys: Vec<TsigKey> = conf
        .keys
        .iter()
        .filter_map(|&k| config.tsig.get(k))
        .filter_map(|t| TsigKey::new(&t.name, &t.algorithm, &t.secret).ok())
        .collect();
    let mut signer = None;
    match req.tsig_at {
        Some(at) => {
            let Some(rec) = tsig::parse(pkt, at) else {
                return Some(refuse("refused: malformed TSIG", rcode::FORMERR));
            };
            match tsig::verify(&keys, pkt, &rec, now) {
                Ok((key, mac)) => signer = Some(tsig::Signer::new(key, mac, rec.original_id)),
                Err(e) => {
                    let mut m = error_reply(pkt, &req, tsig::NOTAUTH);
                    tsig::append_error(&mut m, &rec, e.code(), now);
                    return Some(Transfer {
                        messages: vec![m],
                        outcome: format!("refused: TSIG {e:?} for key {}", name::to_text(rec.key_name)),
                        records: 0,
                    });
                }
            }
        }
        None if !keys.is_empty() => return Some(refuse("refused: no TSIG", rcode::REFUSED)),
        None => {}
    }
    let apex = zones.node_at(zones.zone(zi).apex_node);
    let soa = apex.rrset(rtype::SOA)?;
    let serial = soa_serial(&soa.rdata[0]).unwrap_or(0);
    let current = req.qtype == rtype::IXFR && req.serial.is_some_and(|s| serial_ge(s, serial));
    let soa_rr: Record<'_> = (req.qname, rtype::SOA, soa.ttl, &soa.rdata[0]);
    let mut all: Vec<Record<'_>> = vec![soa_rr];
    // IXFR from a version the journal holds: one difference sequence
    // (RFC 1995 §4): the old SOA, what went, the new SOA, what came.
    let delta = match (req.qtype, req.serial, current) {
        (rtype::IXFR, Some(from), false) => {
            // The version serving now may not be in yet (a NOTIFY can
            // bring the request first).
            journal.record(gen);
            journal.diff(&lname, from, serial)
        }
        _ => None,
    };
    if let Some((old_soa, gone, came)) = &delta {
        all.push((req.qname, rtype::SOA, old_soa.2, &old_soa.3));
        all.extend(gone.iter().map(|r| (&*r.0, r.1, r.2, &*r.3)));
        all.push(soa_rr);
        all.extend(came.iter().map(|r| (&*r.0, r.1, r.2, &*r.3)));
        all.push(soa_rr);
    } else if !current {
        for (owner, node) in zones.nodes_of(zi) {
            for set in node.rrsets.iter().filter(|s| !s.generated && s.rtype != rtype::SOA) {
                for rd in &set.rdata {
                    all.push((owner, set.rtype, set.ttl, rd));
                }
            }
        }
        all.push(soa_rr);
    }
    let records = all.len();
    let mut messages = pack(pkt, &req, &all);
    if let Some(s) = signer.as_mut() {
        for m in &mut messages {
            s.sign(m, now);
        }
    }
    let outcome = match (req.qtype, current, &delta) {
        (rtype::AXFR, _, _) => "axfr",
        (_, true, _) => "ixfr (current)",
        (_, _, Some(_)) => "ixfr (incremental)",
        _ => "ixfr (full)",
    };
    Some(Transfer {
        messages,
        outcome: outcome.into(),
        records,
    })
}

/// A record to transfer: owner, type, TTL, RDATA.
type Record<'a> = (&'a [u8], u16, u32, &'a [u8]);

/// Pack records into messages of at most [`MESSAGE_LIMIT`] bytes, the
/// question in the first only (RFC 5936 §2.2).
fn pack(pkt: &[u8], req: &Request<'_>, all: &[Record<'_>]) -> Vec<Vec<u8>> {
    let rd_flag = be16(pkt, 2).unwrap_or(0) & flags::RD;
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::new();
    let mut next = 0;
    while next < all.len() {
        let mut w = MessageWriter::new(&mut buf, MESSAGE_LIMIT);
        if out.is_empty() {
            let _ = w.question(req.qname, req.qtype, class::IN);
        }
        let first = next;
        while let Some(&(o, t, ttl, rd)) = all.get(next) {
            if w.record(Section::Answer, o, t, class::IN, ttl, rd).is_err() {
                break;
            }
            next += 1;
        }
        if next == first {
            // One record larger than a message: RDATA is at most 65,535
            // bytes, so it cannot be; skip it rather than loop.
            next += 1;
            continue;
        }
        let n = w.finish(req.id, flags::QR | flags::AA | rd_flag);
        out.push(buf[..n].to_vec());
    }
    out
}

fn error_reply(pkt: &[u8], req: &Request<'_>, rc: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    let mut w = MessageWriter::new(&mut buf, 512);
    let _ = w.question(req.qname, req.qtype, class::IN);
    let f = flags::QR | (be16(pkt, 2).unwrap_or(0) & flags::RD) | (rc & 0xf);
    let n = w.finish(req.id, f);
    buf.truncate(n);
    buf
}

/// A NOTIFY (RFC 1996) for zone `apex` with its current SOA, signed when a
/// key is given: what the primary sends a secondary when the serial moves.
pub fn notify_message(gen: &Generation, zone: u16, id: u16, key: Option<&TsigKey>, now: u64) -> Option<Vec<u8>> {
    let zones = gen.zones();
    let z = zones.zone(zone);
    let soa = zones.node_at(z.apex_node).rrset(rtype::SOA)?;
    let mut buf = vec![0u8; 1024];
    let mut w = MessageWriter::new(&mut buf, 900);
    w.question(&z.apex, rtype::SOA, class::IN).ok()?;
    w.record(Section::Answer, &z.apex, rtype::SOA, class::IN, soa.ttl, &soa.rdata[0])
        .ok()?;
    let n = w.finish(id, NOTIFY_OPCODE | flags::AA);
    buf.truncate(n);
    if let Some(k) = key {
        tsig::sign_request(&mut buf, k, now);
    }
    Some(buf)
}

/// A NOTIFY to send: the zone (index in the generation), its serial, the
/// secondaries and the key that signs it (a `[[tsig]]` index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyDue {
    pub zone: u16,
    pub origin: String,
    pub serial: u32,
    pub to: Vec<std::net::SocketAddr>,
    pub key: Option<usize>,
}

/// The serials secondaries were told of, per zone: which NOTIFYs a new
/// generation calls for (RFC 1996 §4.1: when the zone changes; at start,
/// every transferred zone's).
#[derive(Default)]
pub struct Notified {
    told: std::collections::HashMap<Vec<u8>, u32>,
}

impl Notified {
    pub fn due(&mut self, gen: &Generation) -> Vec<NotifyDue> {
        let zones = gen.zones();
        let mut out = Vec::new();
        for z in &gen.config().zones {
            let Some(t) = z.transfer.as_ref().filter(|t| !t.notify.is_empty()) else {
                continue;
            };
            let apex = name::to_lowercase(&z.origin_wire);
            let Some(zi) = zones.zone_of(&apex).filter(|&i| *zones.zone(i).apex == *apex) else {
                continue;
            };
            let Some(serial) = serial(gen, zi) else { continue };
            if self.told.insert(apex, serial) == Some(serial) {
                continue;
            }
            out.push(NotifyDue {
                zone: zi,
                origin: z.origin.clone(),
                serial,
                to: t.notify.clone(),
                key: t.notify_key,
            });
        }
        out
    }
}

/// Opcode NOTIFY in the header's flags.
const NOTIFY_OPCODE: u16 = 4 << 11;

/// The secondary's answer to NOTIFY `id`: any response with that ID and
/// opcode (its rcode is the secondary's business; it was told).
pub fn is_notify_reply(msg: &[u8], id: u16) -> bool {
    be16(msg, 0) == Some(id)
        && be16(msg, 2).is_some_and(|f| f & flags::QR != 0 && f & flags::OPCODE_MASK == NOTIFY_OPCODE)
}

/// A zone's serial now.
pub fn serial(gen: &Generation, zone: u16) -> Option<u32> {
    let zones = gen.zones();
    let soa = zones.node_at(zones.zone(zone).apex_node).rrset(rtype::SOA)?;
    soa_serial(&soa.rdata[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(serial: u32) -> Generation {
        let text = "[server]\ndns = [\"127.0.0.1:0\"]\n[[pop]]\nname = \"a\"\nipv4 = [\"192.0.2.1\"]\n\
                    [[zone]]\norigin = \"example.net.\"\nfile = \"z\"\n[zone.transfer]\nallow = [\"127.0.0.0/8\"]\n\
                    notify = [\"127.0.0.1:5399\"]\n[[zone]]\norigin = \"example.org.\"\nfile = \"o\"\n";
        let config = petrel_config::parse(std::path::Path::new("t.toml"), text).unwrap();
        let mut src = petrel_director::Sources::default();
        let zone = |s: u32| Ok(format!("@ SOA ns h {s} 2 3 4 60\n@ NS ns\nns A 192.0.2.1\n"));
        src.texts.insert("z".into(), zone(serial));
        src.texts.insert("o".into(), zone(1));
        Generation::offline(petrel_director::build(config, &src, None).unwrap(), Default::default())
    }

    #[test]
    fn notify_goes_out_at_start_and_when_the_serial_moves() {
        let mut n = Notified::default();
        let due = n.due(&generation(7));
        assert_eq!(due.len(), 1, "only the zone with notify targets: {due:?}");
        assert_eq!((due[0].origin.as_str(), due[0].serial), ("example.net.", 7));
        assert_eq!(due[0].to, ["127.0.0.1:5399".parse().unwrap()]);
        assert!(n.due(&generation(7)).is_empty(), "the same serial: told already");
        assert_eq!(n.due(&generation(8))[0].serial, 8);
    }

    #[test]
    fn the_journal_answers_the_difference_from_a_version_it_holds() {
        let j = Journal::default();
        j.record(&generation(1));
        let g2 = generation(2);
        j.record(&g2);
        let apex = name::from_text("example.net.").unwrap();
        let (old_soa, gone, came) = j.diff(&apex, 1, 2).unwrap();
        assert_eq!(soa_serial(&old_soa.3), Some(1));
        assert!(gone.is_empty() && came.is_empty(), "only the SOA changed");
        assert!(j.diff(&apex, 5, 2).is_none(), "a version it does not hold");
    }

    #[test]
    fn serials_compare_modulo_2_32() {
        assert!(serial_ge(5, 5) && serial_ge(6, 5) && !serial_ge(5, 6));
        assert!(serial_ge(1, u32::MAX), "1 follows 2^32-1 (RFC 1982)");
    }

    #[test]
    fn requests_are_parsed_with_their_serial_and_tsig() {
        // IXFR example.net with an SOA of serial 7 in authority.
        let mut q = vec![0, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
        let apex = name::from_text("example.net.").unwrap();
        q.extend_from_slice(&apex);
        q.extend_from_slice(&[0, 251, 0, 1]);
        q.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0]);
        // Both names compressed, as Knot writes them.
        let mut rd = vec![0xc0, 12, 0xc0, 12];
        rd.extend_from_slice(&7u32.to_be_bytes());
        rd.extend_from_slice(&[0; 16]);
        q.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        q.extend_from_slice(&rd);
        let r = request(&q).unwrap();
        assert_eq!((r.qtype, r.serial, r.tsig_at), (rtype::IXFR, Some(7), None));
        let key = TsigKey::new("xfr.", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0").unwrap();
        let mut signed = q.clone();
        tsig::sign_request(&mut signed, &key, 1_800_000_000);
        let r = request(&signed).unwrap();
        let rec = tsig::parse(&signed, r.tsig_at.unwrap()).unwrap();
        assert!(tsig::verify(std::slice::from_ref(&key), &signed, &rec, 1_800_000_100).is_ok());
        assert_eq!(
            tsig::verify(std::slice::from_ref(&key), &signed, &rec, 1_800_001_000).unwrap_err(),
            tsig::Refused::BadTime
        );
        let other = TsigKey::new("xfr.", "hmac-sha256", "b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcg==").unwrap();
        assert_eq!(
            tsig::verify(&[other], &signed, &rec, 1_800_000_000).unwrap_err(),
            tsig::Refused::BadSig
        );
        // Not a transfer: left to the answer path.
        let mut a = q.clone();
        a[12 + apex.len() + 1] = 1;
        assert!(request(&a).is_none());
    }
}
