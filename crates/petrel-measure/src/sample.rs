//! One latency measurement, however it came in.

use petrel_types::{Family, PopIdx, Prefix};
use std::net::IpAddr;

/// How a sample was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A browser's Resource Timing of a beacon object from a POP.
    Rum,
    /// The kernel's smoothed RTT of a connection to petrel's HTTP front.
    Passive,
    /// Another server's connection RTT, imported (nginx `$tcpinfo_rtt`).
    Import,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rum => "rum",
            Kind::Passive => "passive",
            Kind::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "rum" => Kind::Rum,
            "passive" => Kind::Passive,
            "import" => Kind::Import,
            _ => return None,
        })
    }
}

/// One measurement: `client` reached `pop` in `rtt_us`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub client: IpAddr,
    pub pop: PopIdx,
    pub rtt_us: u32,
    pub kind: Kind,
    /// The client's resolver, when the whoami join found it.
    pub resolver: Option<IpAddr>,
}

/// The longest RTT taken as real: anything slower is a stalled tab or a
/// wrong clock, not a network.
pub const MAX_RTT_US: u32 = 10_000_000;

/// How clients are grouped for the latency policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitMode {
    /// The client's BGP prefix from the routing views; where the views
    /// have none, the fixed lengths.
    Bgp { v4_len: u8, v6_len: u8 },
    /// Always the fixed lengths.
    Fixed { v4_len: u8, v6_len: u8 },
}

impl Default for UnitMode {
    fn default() -> Self {
        UnitMode::Bgp { v4_len: 24, v6_len: 48 }
    }
}

/// The map unit of `client`, given its BGP prefix if the views know one.
pub fn unit_of(client: IpAddr, bgp: Option<Prefix>, mode: UnitMode) -> Prefix {
    let client = client.to_canonical();
    let (v4, v6) = match mode {
        UnitMode::Bgp { v4_len, v6_len } => {
            if let Some(p) = bgp.filter(|p| p.contains(&Prefix::host(client))) {
                return p;
            }
            (v4_len, v6_len)
        }
        UnitMode::Fixed { v4_len, v6_len } => (v4_len, v6_len),
    };
    let host = Prefix::host(client);
    host.truncate(match host.family() {
        Family::V4 => v4.min(32),
        Family::V6 => v6.min(128),
    })
}

/// A span of time as operators write it: `90s`, `30m`, `1h`, `7d`; in ms.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 90s, 30m, 1h or 7d"))?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}` is not a duration such as 90s, 30m, 1h or 7d")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        for bad in ["", "h", "1", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn units_are_the_bgp_prefix_or_a_fixed_length() {
        let c: IpAddr = "198.51.100.77".parse().unwrap();
        let m = UnitMode::default();
        assert_eq!(unit_of(c, Some(p("198.51.96.0/20")), m), p("198.51.96.0/20"));
        assert_eq!(unit_of(c, None, m), p("198.51.100.0/24"));
        // A prefix that does not hold the client is not its unit.
        assert_eq!(unit_of(c, Some(p("203.0.113.0/24")), m), p("198.51.100.0/24"));
        let f = UnitMode::Fixed { v4_len: 22, v6_len: 56 };
        assert_eq!(unit_of(c, Some(p("198.51.96.0/20")), f), p("198.51.100.0/22"));
        let c6: IpAddr = "2001:db8:1:2:3::1".parse().unwrap();
        assert_eq!(unit_of(c6, None, m), p("2001:db8:1::/48"));
        assert_eq!(unit_of(c6, None, f), p("2001:db8:1::/56"));
        let mapped: IpAddr = "::ffff:198.51.100.77".parse().unwrap();
        assert_eq!(unit_of(mapped, None, m), p("198.51.100.0/24"));
    }
}
