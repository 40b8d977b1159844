use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Address family of a prefix or client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn max_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// An IP prefix whose host bits are zero.
///
/// Addresses are carried as `u128` for both families (IPv4 in the low 32
/// bits) so that table builders can be written once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    family: Family2,
    bits: u128,
    len: u8,
}

// Ordering helper: IPv4 sorts before IPv6; kept private so `Family` needs no Ord.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Family2 {
    V4,
    V6,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixError {
    BadAddress(String),
    BadLength(String),
    HostBitsSet(String),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::BadAddress(s) => write!(f, "`{s}` is not an IP address or prefix"),
            PrefixError::BadLength(s) => write!(f, "`{s}` has an invalid prefix length"),
            PrefixError::HostBitsSet(s) => {
                write!(f, "`{s}` has host bits set beyond its prefix length")
            }
        }
    }
}

impl std::error::Error for PrefixError {}

fn mask(len: u8, max: u8) -> u128 {
    if len == 0 {
        0
    } else {
        let m = u128::MAX << (128 - len as u32);
        m >> (128 - max as u32)
    }
}

impl Prefix {
    /// A prefix from an address and a length; host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let (family, bits, max) = match addr {
            IpAddr::V4(a) => (Family2::V4, u32::from(a) as u128, 32),
            IpAddr::V6(a) => (Family2::V6, u128::from(a), 128),
        };
        if len > max {
            return None;
        }
        Some(Prefix {
            family,
            bits: bits & mask(len, max),
            len,
        })
    }

    pub fn from_bits(family: Family, bits: u128, len: u8) -> Prefix {
        let f = match family {
            Family::V4 => Family2::V4,
            Family::V6 => Family2::V6,
        };
        debug_assert!(len <= family.max_len());
        Prefix {
            family: f,
            bits: bits & mask(len, family.max_len()),
            len,
        }
    }

    /// The whole address space of a family.
    pub fn root(family: Family) -> Prefix {
        Prefix::from_bits(family, 0, 0)
    }

    pub fn host(addr: IpAddr) -> Prefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix::new(addr, len).expect("host length is valid")
    }

    pub fn family(&self) -> Family {
        match self.family {
            Family2::V4 => Family::V4,
            Family2::V6 => Family::V6,
        }
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn bits(&self) -> u128 {
        self.bits
    }

    /// Last address inside the prefix, as bits.
    pub fn last(&self) -> u128 {
        let max = self.family().max_len();
        self.bits | (mask(max, max) & !mask(self.len, max))
    }

    pub fn addr(&self) -> IpAddr {
        match self.family {
            Family2::V4 => IpAddr::V4(Ipv4Addr::from(self.bits as u32)),
            Family2::V6 => IpAddr::V6(Ipv6Addr::from(self.bits)),
        }
    }

    pub fn contains(&self, other: &Prefix) -> bool {
        self.family == other.family
            && other.len >= self.len
            && other.bits & mask(self.len, self.family().max_len()) == self.bits
    }

    /// The same address truncated to a shorter length.
    pub fn truncate(&self, len: u8) -> Prefix {
        Prefix::from_bits(self.family(), self.bits, len.min(self.len))
    }

    /// Parse `addr/len` (or a bare address as a host prefix), rejecting host bits.
    pub fn parse_strict(s: &str) -> Result<Prefix, PrefixError> {
        let p = Prefix::parse_lenient(s)?;
        let (addr, _) = split(s)?;
        let raw = Prefix::host(addr);
        if raw.bits != p.bits {
            return Err(PrefixError::HostBitsSet(s.to_string()));
        }
        Ok(p)
    }

    /// Parse `addr/len` (or a bare address), clearing any host bits.
    pub fn parse_lenient(s: &str) -> Result<Prefix, PrefixError> {
        let (addr, len) = split(s)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        Prefix::new(addr, len).ok_or_else(|| PrefixError::BadLength(s.to_string()))
    }
}

fn split(s: &str) -> Result<(IpAddr, Option<u8>), PrefixError> {
    let s = s.trim();
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = IpAddr::from_str(a).map_err(|_| PrefixError::BadAddress(s.to_string()))?;
    let len = match l {
        Some(l) => Some(l.parse::<u8>().map_err(|_| PrefixError::BadLength(s.to_string()))?),
        None => None,
    };
    Ok((addr, len))
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Prefix::parse_strict(s)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.1.0.0/16");
        assert_eq!(p.last(), u32::from(Ipv4Addr::new(10, 1, 255, 255)) as u128);
        assert!("10.1.0.1/16".parse::<Prefix>().is_err());
        assert_eq!(Prefix::parse_lenient("10.1.0.1/16").unwrap(), p);
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        let v6: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(v6.contains(&"2001:db8:1::/48".parse().unwrap()));
        assert!(!p.contains(&v6));
        assert_eq!(Prefix::root(Family::V4).last(), u32::MAX as u128);
        assert_eq!(Prefix::root(Family::V6).last(), u128::MAX);
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(a: u32, len in 0u8..=32) {
            let p = Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), len).unwrap();
            let q: Prefix = p.to_string().parse().unwrap();
            proptest::prop_assert_eq!(p, q);
            proptest::prop_assert!(p.bits() <= p.last());
        }
    }
}
