//! RFC 1035 master files, read with NLnet Labs' `domain` scanner.

use crate::zone::{RecordIn, ZoneError};
use domain::base::iana::Class;
use domain::base::name::ToName;
use domain::base::rdata::ComposeRecordData;
use domain::zonefile::inplace::{Entry, Zonefile};

/// Parse a zone file's text. `origin` is the zone apex in presentation form.
/// A zone file's records, or the first problem with its line.
pub fn parse_zone_file(origin: &str, text: &str) -> Result<Vec<RecordIn>, ZoneError> {
    let mut out = Vec::new();
    parse_zone_file_with(origin, text, |r| out.push(r)).map_err(|mut e| e.remove(0))?;
    Ok(out)
}

/// [`parse_zone_file`], handing each record to `each` as it is read, so
/// that a large zone is never held twice (as records and as a zone). Every
/// bad entry is reported (up to [`MAX_ERRORS`]), each with its line: after
/// one, reading goes on at the next line, with the `$ORIGIN` and `$TTL`
/// in force and the owner an indented line inherits.
pub fn parse_zone_file_with(origin: &str, text: &str, mut each: impl FnMut(RecordIn)) -> Result<(), Vec<ZoneError>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut errs = Vec::new();
    // The line (1-based) the text being read starts at, and what goes
    // before it: the directives and owner of the lines skipped.
    let mut start = 1usize;
    let mut prefix = String::new();
    loop {
        let chunk = format!("{prefix}{}", lines.get(start - 1..).unwrap_or(&[]).join("\n"));
        // Whole lines carried (an owner carried joins the first line read).
        let carried = prefix.matches('\n').count();
        // `domain` 0.12's scanner can index out of bounds on some malformed
        // character strings (found by fuzzing, e.g. `h**( tXT"$"ddd`). A bad
        // zone file must be an error, never a crash of the server or of `check`.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scan(origin, &chunk, &mut each)));
        let msg = match r {
            Ok(Ok(())) => break,
            Ok(Err(m)) => m,
            Err(_) => {
                errs.push(ZoneError(
                    "the zone-file scanner failed on this file (check quoting, escapes and parentheses)".into(),
                ));
                break;
            }
        };
        // `line N: ...` in the chunk: where it is in the file.
        let at = msg
            .strip_prefix("line ")
            .and_then(|r| r.split_once(':'))
            .and_then(|(n, m)| n.parse::<usize>().ok().map(|n| (n, m)));
        let Some((n, rest)) = at.filter(|(n, _)| *n > carried) else {
            errs.push(ZoneError(msg));
            break;
        };
        let line = n - carried + start - 1;
        errs.push(ZoneError(format!("line {line}:{rest}")));
        if errs.len() >= MAX_ERRORS || line >= lines.len() {
            break;
        }
        start = line + 1;
        prefix = carry(&lines[..line]);
        if lines[start - 1].starts_with([' ', '\t']) {
            if let Some(owner) = last_owner(&lines[..line]) {
                prefix.push_str(owner);
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Errors reported per zone file at most.
pub const MAX_ERRORS: usize = 50;

/// The `$ORIGIN` and `$TTL` lines among `lines`, in order.
fn carry(lines: &[&str]) -> String {
    let mut p = String::new();
    for l in lines {
        let t = l.trim_start();
        let u = t.to_ascii_uppercase();
        if u.starts_with("$ORIGIN") || u.starts_with("$TTL") {
            p.push_str(t);
            p.push('\n');
        }
    }
    p
}

/// The owner the last line that names one names.
fn last_owner<'a>(lines: &[&'a str]) -> Option<&'a str> {
    lines
        .iter()
        .rev()
        .find(|l| !l.is_empty() && !l.starts_with([' ', '\t', ';', '$', '(', ')']))
        .and_then(|l| l.split_whitespace().next())
}

fn scan(origin: &str, text: &str, each: &mut dyn FnMut(RecordIn)) -> Result<(), String> {
    let origin_name: domain::base::Name<bytes::Bytes> =
        origin.parse().map_err(|e| format!("bad origin `{origin}`: {e}"))?;
    let origin_wire = origin_name.to_vec().into_octets();
    let mut zf = Zonefile::new();
    zf.extend_from_slice(text.as_bytes());
    // A final newline lets the scanner close the last entry.
    zf.extend_from_slice(b"\n");
    zf.set_origin(origin_name);
    zf.set_default_class(Class::IN);
    loop {
        match zf.next_entry() {
            Ok(None) => break,
            Ok(Some(Entry::Record(rec))) => {
                if rec.class() != Class::IN {
                    return Err(format!(
                        "record for {} has class {}; only IN is served",
                        rec.owner(),
                        rec.class()
                    ));
                }
                let owner = rec.owner().to_vec().into_octets();
                let mut rdata = Vec::new();
                rec.data()
                    .compose_rdata(&mut rdata)
                    .map_err(|_| format!("cannot encode the data of {} {}", rec.owner(), rec.rtype()))?;
                let rtype = rec.rtype().to_int();
                let rdata = fix_at_in_rdata(rtype, rdata, &origin_wire);
                each(RecordIn {
                    owner,
                    rtype,
                    ttl: rec.ttl().as_secs(),
                    rdata,
                });
            }
            Ok(Some(Entry::Include { path, .. })) => {
                return Err(format!(
                    "$INCLUDE {path} is not supported; list each zone file in the config"
                ));
            }
            // The scanner reports where it stopped, which can be past the end
            // of the bad entry; name the line the entry starts on instead.
            Err(e) => return Err(locate(text, &e.to_string())),
        }
    }
    Ok(())
}

/// `domain` reports `line:col: message`. When a bad token ends its line the
/// scanner has already moved to column 1 of the next line; name the line the
/// token was on.
fn locate(text: &str, err: &str) -> String {
    let mut it = err.splitn(3, ':');
    let (Some(l), Some(c), Some(msg)) = (it.next(), it.next(), it.next()) else {
        return err.to_string();
    };
    let (Ok(mut line), Ok(col)) = (l.trim().parse::<usize>(), c.trim().parse::<usize>()) else {
        return err.to_string();
    };
    if col <= 1 && line > 1 {
        let lines: Vec<&str> = text.lines().collect();
        line -= 1;
        while line > 1
            && lines
                .get(line - 1)
                .is_some_and(|t| t.trim().is_empty() || t.trim().starts_with(';'))
        {
            line -= 1;
        }
    }
    format!("line {line}: {}", msg.trim())
}

/// `domain` 0.12 expands `@` as an owner but reads it as a literal label
/// where a name stands in rdata (`www CNAME @`). RFC 1035 §5.1 says `@`
/// denotes the origin anywhere, so names in the rdata of the RFC 1035 types
/// and SRV that read `@.<origin>` are rewritten to `<origin>`. (A literal
/// label `\@` directly under the origin is read as the origin too.)
fn fix_at_in_rdata(rtype: u16, rdata: Vec<u8>, origin: &[u8]) -> Vec<u8> {
    use petrel_dns_wire::consts::rtype as t;
    let fix = |name: &[u8]| -> Vec<u8> {
        if name.len() == origin.len() + 2 && name.starts_with(b"\x01@") && name[2..].eq_ignore_ascii_case(origin) {
            origin.to_vec()
        } else {
            name.to_vec()
        }
    };
    let wl = |b: &[u8]| petrel_dns_wire::name::wire_len(b);
    match rtype {
        t::CNAME | t::NS | t::PTR => fix(&rdata),
        t::MX if rdata.len() > 2 => [&rdata[..2], &fix(&rdata[2..])].concat(),
        t::SRV if rdata.len() > 6 => [&rdata[..6], &fix(&rdata[6..])].concat(),
        t::SOA => match wl(&rdata).and_then(|m| wl(&rdata[m..]).map(|r| (m, r))) {
            Some((m, r)) => [fix(&rdata[..m]), fix(&rdata[m..m + r]), rdata[m + r..].to_vec()].concat(),
            None => rdata,
        },
        _ => rdata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_panics_become_errors() {
        let e = parse_zone_file("example.net.", "h**( tXT\"$\"ddd").unwrap_err();
        assert!(e.0.contains("scanner failed"), "{e}");
    }

    #[test]
    fn parses_common_types_and_reports_lines() {
        let z = "$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n  IN NS ns1\nns1 IN A 192.0.2.1\nwww CNAME @\n@ MX 10 mail\n@ TXT \"hello world\"\n_sip._udp SRV 0 5 5060 sip\n@ CAA 0 issue \"letsencrypt.org\"\n";
        let recs = parse_zone_file("example.net.", z).unwrap();
        assert_eq!(
            parse_zone_file("example.net.", "x MX 10 @\n").unwrap()[0].rdata,
            b"\x00\x0a\x07example\x03net\x00"
        );
        assert_eq!(recs.len(), 8);
        assert_eq!(recs[0].rtype, 6);
        assert_eq!(recs[0].owner, b"\x07example\x03net\x00");
        assert_eq!(recs[2].rdata, vec![192, 0, 2, 1]);
        assert_eq!(recs[3].rdata, b"\x07example\x03net\x00");
        let err = parse_zone_file("example.net.", "@ SOA ns1 h 1 2 3 4 5\nbad IN A 300.1.1.1\n").unwrap_err();
        assert!(err.0.starts_with("line 2: "), "{err}");
    }

    #[test]
    fn every_bad_entry_is_reported_with_its_line() {
        let z = "$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nbad IN A 300.1.1.1\nok IN A 192.0.2.1\n  IN TXT \"same owner\"\nworse IN MX x\n  IN A 1.2.3\n$ORIGIN sub.example.net.\nlast IN A 192.0.2.2\n";
        let mut recs = Vec::new();
        let errs = parse_zone_file_with("example.net.", z, |r| recs.push(r)).unwrap_err();
        let lines: Vec<&str> = errs.iter().map(|e| e.0.split(':').next().unwrap()).collect();
        assert_eq!(lines, ["line 4", "line 7", "line 8"], "{errs:?}");
        // The good entries after each bad one are read, with the owner and
        // $TTL they inherit and the $ORIGIN after them.
        let txt = recs.iter().find(|r| r.rtype == 16).unwrap();
        assert_eq!(txt.owner, b"\x02ok\x07example\x03net\x00");
        assert_eq!(txt.ttl, 300);
        assert!(recs.iter().any(|r| r.owner == b"\x04last\x03sub\x07example\x03net\x00"));
    }
}
