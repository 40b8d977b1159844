//! `petrel mrt-dump`: an MRT file as text, one route per line in the
//! `bgpdump -m` format, so that it can be compared with bgpdump's output.

use super::mrt_file::MrtFile;
use petrel_bgp_wire::mrt::{MrtPeer, Record};
use petrel_bgp_wire::{Attributes, Origin};
use std::io::Write;
use std::path::Path;

fn route_fields(a: &Attributes, v6: bool) -> String {
    let origin = match a.origin {
        Some(Origin::Igp) => "IGP",
        Some(Origin::Egp) => "EGP",
        Some(Origin::Incomplete) => "INCOMPLETE",
        None => "",
    };
    let nh = if v6 {
        a.mp_next_hop.map(|h| h.to_string()).unwrap_or_default()
    } else {
        a.next_hop.map(|h| h.to_string()).unwrap_or_default()
    };
    // bgpdump prints standard communities only, well-known ones by name.
    let comm: Vec<String> = a.community_texts().into_iter().take(a.communities.len()).collect();
    let aggr = a.aggregator.map(|(asn, ip)| format!("{asn} {ip}")).unwrap_or_default();
    format!(
        "{}|{origin}|{nh}|{}|{}|{}|{}|{aggr}|",
        a.as_path_text(),
        a.local_pref.unwrap_or(0),
        a.med.unwrap_or(0),
        comm.join(" "),
        if a.atomic_aggregate { "AG" } else { "NAG" },
    )
}

pub fn dump(path: &Path) -> Result<(), String> {
    let mut f = MrtFile::open(path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut peers: Vec<MrtPeer> = Vec::new();
    let mut skipped = 0u64;
    while let Some(rec) = f.next_record()? {
        let r = match rec {
            Record::PeerIndex { peers: p, .. } => {
                peers = p;
                Ok(())
            }
            Record::TableDump {
                timestamp,
                prefix,
                peer,
                entry,
            } => match &entry.attrs {
                Ok(a) => writeln!(
                    out,
                    "TABLE_DUMP|{timestamp}|B|{}|{}|{prefix}|{}",
                    peer.address,
                    peer.asn,
                    route_fields(a, prefix.family() == petrel_types::Family::V6)
                ),
                Err(_) => {
                    skipped += 1;
                    Ok(())
                }
            },
            Record::Rib {
                timestamp: ts,
                prefix,
                entries,
                ..
            } => {
                let mut r = Ok(());
                for e in entries {
                    let Some(peer) = peers.get(e.peer_index as usize) else {
                        return Err(format!(
                            "{}: RIB entry names peer {} of {}",
                            path.display(),
                            e.peer_index,
                            peers.len()
                        ));
                    };
                    match &e.attrs {
                        Ok(a) => {
                            r = writeln!(
                                out,
                                "TABLE_DUMP2|{ts}|B|{}|{}|{prefix}|{}",
                                peer.address,
                                peer.asn,
                                route_fields(a, prefix.family() == petrel_types::Family::V6)
                            );
                        }
                        Err(_) => skipped += 1,
                    }
                }
                r
            }
            Record::Update {
                timestamp,
                peer,
                peer_as,
                update,
            } => {
                let mut r = Ok(());
                for n in &update.withdrawn {
                    r = r.and(writeln!(out, "BGP4MP|{timestamp}|W|{peer}|{peer_as}|{}", n.prefix));
                }
                for n in &update.announced {
                    let v6 = n.prefix.family() == petrel_types::Family::V6;
                    r = r.and(writeln!(
                        out,
                        "BGP4MP|{timestamp}|A|{peer}|{peer_as}|{}|{}",
                        n.prefix,
                        route_fields(&update.attrs, v6)
                    ));
                }
                r
            }
            Record::StateChange {
                timestamp,
                peer,
                peer_as,
                old,
                new,
            } => writeln!(out, "BGP4MP|{timestamp}|STATE|{peer}|{peer_as}|{old}|{new}"),
            Record::Other { .. } => Ok(()),
        };
        if r.is_err() {
            return Ok(()); // the reader went away
        }
    }
    let _ = out.flush();
    if skipped > 0 {
        eprintln!("{skipped} entries with malformed attributes skipped (RFC 7606 treat-as-withdraw)");
    }
    Ok(())
}
