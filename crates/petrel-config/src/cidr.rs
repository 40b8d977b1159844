//! Static CIDR map files: one `prefix pop[,pop...]` per line, `#` comments.
//!
//! Files may hold a million lines, so parsing is a plain loop over lines
//! with no per-line allocation beyond the POP list.

use petrel_types::{PopIdx, Prefix};

/// One map line: a prefix and its ordered POPs.
pub type MapEntry = (Prefix, Vec<PopIdx>);
/// A bad line: its number (from 1) and what is wrong.
pub type LineError = (usize, String);

/// Parse a map. `pop` resolves a POP name (None: unknown, an error).
/// Returns the entries or every bad line as (line number, message).
pub fn parse_cidr_map(text: &str, pop: impl Fn(&str) -> Option<PopIdx>) -> Result<Vec<MapEntry>, Vec<LineError>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(pfx), Some(list)) = (parts.next(), parts.next()) else {
            errs.push((i + 1, format!("expected `prefix pop[,pop...]`, found `{line}`")));
            continue;
        };
        if parts.next().is_some() {
            errs.push((
                i + 1,
                format!("trailing text after the POP list in `{line}` (POPs are separated by commas)"),
            ));
            continue;
        }
        let prefix = match Prefix::parse_strict(pfx) {
            Ok(p) => p,
            Err(e) => {
                errs.push((i + 1, e.to_string()));
                continue;
            }
        };
        let mut pops = Vec::new();
        let mut bad = false;
        for name in list.split(',').filter(|s| !s.is_empty()) {
            match pop(name) {
                Some(p) if !pops.contains(&p) => pops.push(p),
                Some(_) => {}
                None => {
                    errs.push((i + 1, format!("unknown POP `{name}`")));
                    bad = true;
                }
            }
        }
        if !bad {
            out.push((prefix, pops));
        }
        if errs.len() >= 100 {
            errs.push((i + 1, "too many errors; stopping here".into()));
            break;
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_every_bad_line() {
        let pop = |n: &str| ["ams", "nyc"].iter().position(|p| *p == n).map(|i| PopIdx(i as u16));
        let ok = parse_cidr_map("# map\n10.0.0.0/8 ams,nyc\n\n2001:db8::/32 nyc # v6\n", pop).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].1, vec![PopIdx(0), PopIdx(1)]);
        let errs = parse_cidr_map("10.0.0.1/8 ams\nfoo\n10.0.0.0/8 lon\n1.0.0.0/8 ams nyc\n", pop).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![1, 2, 3, 4]);
        assert!(errs[0].1.contains("host bits"));
        assert!(errs[2].1.contains("unknown POP `lon`"));
    }
}
