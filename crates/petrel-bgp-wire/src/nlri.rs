//! NLRI: prefixes in BGP's length-prefixed encoding (RFC 4271 §4.3,
//! RFC 4760, RFC 7911 path identifiers).

use petrel_types::{Family, Prefix};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Afi {
    Ipv4 = 1,
    Ipv6 = 2,
}

impl Afi {
    pub fn from_u16(v: u16) -> Option<Afi> {
        match v {
            1 => Some(Afi::Ipv4),
            2 => Some(Afi::Ipv6),
            _ => None,
        }
    }

    pub fn family(self) -> Family {
        match self {
            Afi::Ipv4 => Family::V4,
            Afi::Ipv6 => Family::V6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Safi {
    Unicast = 1,
}

/// One prefix of an UPDATE, with its RFC 7911 path identifier if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nlri {
    pub path_id: Option<u32>,
    pub prefix: Prefix,
}

/// Parse a run of prefixes; `Err` describes why the field is malformed.
pub(crate) fn parse(mut b: &[u8], family: Family, add_path: bool, out: &mut Vec<Nlri>) -> Result<(), String> {
    let max = family.max_len();
    while !b.is_empty() {
        let path_id = if add_path {
            if b.len() < 4 {
                return Err("truncated path identifier".into());
            }
            let id = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            b = &b[4..];
            Some(id)
        } else {
            None
        };
        let Some((&len, rest)) = b.split_first() else {
            return Err("missing prefix length".into());
        };
        if len > max {
            return Err(format!("prefix length {len} exceeds {max}"));
        }
        let n = (len as usize).div_ceil(8);
        if rest.len() < n {
            return Err("truncated prefix".into());
        }
        let mut bits: u128 = 0;
        for &byte in &rest[..n] {
            bits = (bits << 8) | byte as u128;
        }
        let width = max as u32;
        if n > 0 {
            bits <<= width - 8 * n as u32;
        }
        // Trailing bits beyond the length are ignored (RFC 4271 §4.3).
        out.push(Nlri {
            path_id,
            prefix: Prefix::from_bits(family, bits, len),
        });
        b = &rest[n..];
    }
    Ok(())
}

/// Append one prefix in wire form.
pub(crate) fn write(out: &mut Vec<u8>, n: &Nlri) {
    if let Some(id) = n.path_id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    let len = n.prefix.len();
    out.push(len);
    let width = n.prefix.family().max_len() as u32;
    let bytes = (len as usize).div_ceil(8);
    let bits = n.prefix.bits();
    for i in 0..bytes {
        out.push((bits >> (width - 8 - 8 * i as u32)) as u8);
    }
}
