//! What may ever be announced. Every announcement passes these checks
//! twice: when `petrel check` (or a reload) reads the config, and again in
//! the announcer before anything is sent.
//!
//! - Only prefixes inside `[bgp] owned` (RFC 7454 §6: announce only what is
//!   yours; a route leak of someone else's space is the classic accident).
//! - Nothing more specific than /24 (IPv4) or /48 (IPv6) unless configured:
//!   most networks filter longer prefixes, so they would only be announced
//!   to part of the Internet (RIPE-532; the common default in filters).
//! - Route origin validation (RFC 6811) of our own announcement against the
//!   VRPs that rpki-client or Routinator export: an Invalid announcement is
//!   dropped by most large networks (RFC 7115), so sending it black-holes
//!   the prefix there.

use petrel_types::{Asn, Family, Prefix};

/// One Validated ROA Payload: `asn` may originate `prefix` and anything
/// within it up to `max_len` (RFC 6811 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vrp {
    pub prefix: Prefix,
    pub max_len: u8,
    pub asn: Asn,
}

/// RFC 6811 §2's three outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    Valid,
    /// A VRP covers the prefix but none matches its origin and length.
    Invalid,
    /// No VRP covers the prefix.
    NotFound,
}

pub fn validate(vrps: &[Vrp], prefix: &Prefix, origin: Asn) -> Validity {
    let mut covered = false;
    for v in vrps.iter().filter(|v| v.prefix.contains(prefix)) {
        covered = true;
        // AS0 ROAs (RFC 6483 §4) never match an origin.
        if v.asn == origin && v.asn.0 != 0 && prefix.len() <= v.max_len {
            return Validity::Valid;
        }
    }
    if covered {
        Validity::Invalid
    } else {
        Validity::NotFound
    }
}

/// Read the JSON that rpki-client (`-j`) and Routinator (`--format json`)
/// write: `{"roas": [{"asn": 64496 or "AS64496", "prefix": "192.0.2.0/24",
/// "maxLength": 24, ...}, ...]}`. Errors name the entry.
pub fn parse_vrps(text: &str) -> Result<Vec<Vrp>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let roas = v
        .get("roas")
        .and_then(|r| r.as_array())
        .ok_or("no \"roas\" list (the JSON of rpki-client -j or Routinator --format json)")?;
    let mut out = Vec::with_capacity(roas.len());
    for (i, r) in roas.iter().enumerate() {
        let bad = |what: &str| format!("roas[{i}]: {what}");
        let asn = match r.get("asn") {
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(serde_json::Value::String(s)) => s
                .strip_prefix("AS")
                .or_else(|| s.strip_prefix("as"))
                .unwrap_or(s)
                .parse()
                .ok(),
            _ => None,
        }
        .ok_or_else(|| bad("\"asn\" is not an AS number"))?;
        let prefix = r
            .get("prefix")
            .and_then(|p| p.as_str())
            .ok_or_else(|| bad("no \"prefix\""))?;
        let prefix = Prefix::parse_strict(prefix).map_err(|e| bad(&format!("prefix `{prefix}`: {e}")))?;
        let max_len = match r.get("maxLength") {
            None => prefix.len(),
            Some(m) => m
                .as_u64()
                .and_then(|m| u8::try_from(m).ok())
                .filter(|&m| m >= prefix.len() && m <= prefix.family().max_len())
                .ok_or_else(|| bad("\"maxLength\" is not between the prefix length and the family's"))?,
        };
        out.push(Vrp {
            prefix,
            max_len,
            asn: Asn(asn),
        });
    }
    Ok(out)
}

/// The rules one petrel announces under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Safety {
    pub owned: Vec<Prefix>,
    pub max_len_v4: u8,
    pub max_len_v6: u8,
    /// Our AS, the origin of every announcement.
    pub origin: Asn,
    /// None: no VRP file configured, so no origin validation.
    pub vrps: Option<Vec<Vrp>>,
}

/// Why a prefix may not be announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotOwned,
    TooLong { max: u8 },
    RpkiInvalid,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotOwned => f.write_str("not inside any prefix of `bgp.owned`"),
            Refusal::TooLong { max } => write!(f, "longer than /{max}, which most networks filter"),
            Refusal::RpkiInvalid => {
                f.write_str("RPKI-invalid from our AS per the VRP file (RFC 6811): announcing it would black-hole it")
            }
        }
    }
}

impl Default for Safety {
    /// Nothing owned: nothing can be announced.
    fn default() -> Self {
        Safety {
            owned: Vec::new(),
            max_len_v4: 24,
            max_len_v6: 48,
            origin: Asn(0),
            vrps: None,
        }
    }
}

impl Safety {
    pub fn check(&self, prefix: &Prefix) -> Result<(), Refusal> {
        if !self.owned.iter().any(|o| o.contains(prefix)) {
            return Err(Refusal::NotOwned);
        }
        let max = match prefix.family() {
            Family::V4 => self.max_len_v4,
            Family::V6 => self.max_len_v6,
        };
        if prefix.len() > max {
            return Err(Refusal::TooLong { max });
        }
        if let Some(vrps) = &self.vrps {
            if validate(vrps, prefix, self.origin) == Validity::Invalid {
                return Err(Refusal::RpkiInvalid);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn origin_validation_follows_rfc6811() {
        let vrps = parse_vrps(
            r#"{"metadata": {"generated": 1}, "roas": [
                {"asn": 64500, "prefix": "192.0.2.0/23", "maxLength": 24, "ta": "ripe"},
                {"asn": "AS64501", "prefix": "198.51.100.0/24", "maxLength": 24, "ta": "arin"},
                {"asn": "AS0", "prefix": "203.0.113.0/24", "maxLength": 24, "ta": "apnic"},
                {"asn": 64500, "prefix": "2001:db8::/32", "maxLength": 48}
            ]}"#,
        )
        .unwrap();
        let me = Asn(64500);
        assert_eq!(validate(&vrps, &p("192.0.2.0/24"), me), Validity::Valid);
        assert_eq!(
            validate(&vrps, &p("192.0.2.0/25"), me),
            Validity::Invalid,
            "past maxLength"
        );
        assert_eq!(
            validate(&vrps, &p("198.51.100.0/24"), me),
            Validity::Invalid,
            "another AS's"
        );
        assert_eq!(validate(&vrps, &p("203.0.113.0/24"), me), Validity::Invalid, "AS0");
        assert_eq!(validate(&vrps, &p("2001:db8:5::/48"), me), Validity::Valid);
        assert_eq!(validate(&vrps, &p("10.0.0.0/24"), me), Validity::NotFound);
    }

    #[test]
    fn bad_vrp_files_name_the_entry() {
        assert!(parse_vrps("[]").unwrap_err().contains("no \"roas\""));
        let e = parse_vrps(r#"{"roas": [{"asn": 1, "prefix": "192.0.2.0/24", "maxLength": 24}, {"asn": "ASx", "prefix": "192.0.2.0/24"}]}"#).unwrap_err();
        assert!(e.starts_with("roas[1]: \"asn\""), "{e}");
        let e = parse_vrps(r#"{"roas": [{"asn": 1, "prefix": "192.0.2.0/24", "maxLength": 16}]}"#).unwrap_err();
        assert!(e.contains("maxLength"), "{e}");
        let e = parse_vrps(r#"{"roas": [{"asn": 1, "prefix": "192.0.2.1/24"}]}"#).unwrap_err();
        assert!(e.contains("roas[0]: prefix"), "{e}");
    }

    #[test]
    fn only_owned_short_enough_and_not_invalid_prefixes_pass() {
        let s = Safety {
            owned: vec![p("192.0.2.0/23"), p("2001:db8::/32")],
            max_len_v4: 24,
            max_len_v6: 48,
            origin: Asn(64500),
            vrps: Some(vec![Vrp {
                prefix: p("192.0.3.0/24"),
                max_len: 24,
                asn: Asn(64999),
            }]),
        };
        assert_eq!(s.check(&p("192.0.2.0/24")), Ok(()));
        assert_eq!(s.check(&p("192.0.2.0/23")), Ok(()));
        assert_eq!(s.check(&p("192.0.4.0/24")), Err(Refusal::NotOwned));
        assert_eq!(s.check(&p("192.0.2.0/25")), Err(Refusal::TooLong { max: 24 }));
        assert_eq!(s.check(&p("192.0.3.0/24")), Err(Refusal::RpkiInvalid));
        assert_eq!(s.check(&p("2001:db8:1::/48")), Ok(()));
        assert_eq!(s.check(&p("2001:db8:1::/64")), Err(Refusal::TooLong { max: 48 }));
    }
}
