//! OPEN and its capabilities (RFC 4271 §4.2, RFC 5492, RFC 9072).

use crate::nlri::Afi;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760.
    Multiprotocol {
        afi: u16,
        safi: u8,
    },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 6793: the speaker's real AS number.
    FourOctetAs(u32),
    /// RFC 7911: (afi, safi, 1 = receive, 2 = send, 3 = both).
    AddPath(Vec<(u16, u8, u8)>),
    /// RFC 8654.
    ExtendedMessage,
    /// RFC 8950: (NLRI AFI, NLRI SAFI, next hop AFI) carried with a next
    /// hop of the other family, e.g. (1, 1, 2) for IPv4 unicast with IPv6
    /// next hops.
    ExtendedNextHop(Vec<(u16, u16, u16)>),
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

impl Capability {
    fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol { .. } => 1,
            Capability::RouteRefresh => 2,
            Capability::ExtendedMessage => 6,
            Capability::ExtendedNextHop(_) => 5,
            Capability::AddPath(_) => 69,
            Capability::FourOctetAs(_) => 65,
            Capability::Unknown { code, .. } => *code,
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(self.code());
        let mut v = Vec::new();
        match self {
            Capability::Multiprotocol { afi, safi } => {
                v.extend_from_slice(&afi.to_be_bytes());
                v.push(0);
                v.push(*safi);
            }
            Capability::RouteRefresh | Capability::ExtendedMessage => {}
            Capability::FourOctetAs(asn) => v.extend_from_slice(&asn.to_be_bytes()),
            Capability::AddPath(list) => {
                for (afi, safi, sr) in list {
                    v.extend_from_slice(&afi.to_be_bytes());
                    v.push(*safi);
                    v.push(*sr);
                }
            }
            Capability::ExtendedNextHop(list) => {
                for t in list {
                    for x in [t.0, t.1, t.2] {
                        v.extend_from_slice(&x.to_be_bytes());
                    }
                }
            }
            Capability::Unknown { value, .. } => v.extend_from_slice(value),
        }
        out.push(v.len() as u8);
        out.extend_from_slice(&v);
    }

    fn parse(code: u8, v: &[u8]) -> Option<Capability> {
        Some(match code {
            1 if v.len() == 4 => Capability::Multiprotocol {
                afi: u16::from_be_bytes([v[0], v[1]]),
                safi: v[3],
            },
            2 if v.is_empty() => Capability::RouteRefresh,
            6 if v.is_empty() => Capability::ExtendedMessage,
            65 if v.len() == 4 => Capability::FourOctetAs(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            69 if v.len().is_multiple_of(4) => Capability::AddPath(
                v.chunks_exact(4)
                    .map(|c| (u16::from_be_bytes([c[0], c[1]]), c[2], c[3]))
                    .collect(),
            ),
            5 if v.len().is_multiple_of(6) => Capability::ExtendedNextHop(
                v.chunks_exact(6)
                    .map(|c| {
                        let x = |i: usize| u16::from_be_bytes([c[i], c[i + 1]]);
                        (x(0), x(2), x(4))
                    })
                    .collect(),
            ),
            1 | 2 | 5 | 6 | 65 | 69 => return None,
            _ => Capability::Unknown {
                code,
                value: v.to_vec(),
            },
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS for 4-octet ASes).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: u32,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The peer's AS: from the 4-octet capability if present.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(self.my_as as u32)
    }

    pub fn has(&self, f: impl Fn(&Capability) -> bool) -> bool {
        self.capabilities.iter().any(f)
    }

    pub fn multiprotocol(&self, afi: Afi) -> bool {
        self.has(|c| matches!(c, Capability::Multiprotocol { afi: a, safi: 1 } if *a == afi as u16))
    }

    /// Whether the speaker will send path identifiers for this family.
    pub fn add_path_send(&self, afi: Afi) -> bool {
        self.add_path(afi, 2)
    }

    /// Whether the speaker can receive path identifiers for this family.
    pub fn add_path_receive(&self, afi: Afi) -> bool {
        self.add_path(afi, 1)
    }

    /// RFC 7911 §4: the send/receive field has bit 1 for receive, 2 for send.
    fn add_path(&self, afi: Afi, bit: u8) -> bool {
        self.capabilities.iter().any(|c| match c {
            Capability::AddPath(list) => list
                .iter()
                .any(|(a, s, sr)| *a == afi as u16 && *s == 1 && sr & bit != 0),
            _ => false,
        })
    }

    /// Whether the speaker takes IPv4 unicast routes with IPv6 next hops
    /// (RFC 8950).
    pub fn ipv4_with_ipv6_next_hops(&self) -> bool {
        self.has(|c| matches!(c, Capability::ExtendedNextHop(l) if l.contains(&(1, 1, 2))))
    }

    /// IPv4 and IPv6 unicast as this OPEN offers them: a speaker without
    /// Multiprotocol capabilities speaks IPv4 only (RFC 4760 §8).
    pub fn unicast_families(&self) -> [bool; 2] {
        let any_mp = self.has(|c| matches!(c, Capability::Multiprotocol { .. }));
        [self.multiprotocol(Afi::Ipv4) || !any_mp, self.multiprotocol(Afi::Ipv6)]
    }

    /// Parse an OPEN body (after the 19-octet header). `Err` is (subcode, why).
    pub(crate) fn parse(b: &[u8]) -> Result<Open, (u8, String)> {
        use crate::notif::*;
        if b.len() < 10 {
            return Err((0, "OPEN too short".into()));
        }
        let version = b[0];
        let my_as = u16::from_be_bytes([b[1], b[2]]);
        let hold_time = u16::from_be_bytes([b[3], b[4]]);
        let bgp_id = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        let mut opt_len = b[9] as usize;
        let mut params = &b[10..];
        // RFC 9072: extended optional parameters length.
        let extended = opt_len == 255 && params.first() == Some(&255);
        if extended {
            if params.len() < 3 {
                return Err((0, "truncated extended optional parameters".into()));
            }
            opt_len = u16::from_be_bytes([params[1], params[2]]) as usize;
            params = &params[3..];
        }
        if params.len() != opt_len {
            return Err((0, "optional parameters length does not match the message".into()));
        }
        let mut capabilities = Vec::new();
        while !params.is_empty() {
            let (t, len, hdr) = if extended {
                if params.len() < 3 {
                    return Err((0, "truncated optional parameter".into()));
                }
                (params[0], u16::from_be_bytes([params[1], params[2]]) as usize, 3)
            } else {
                if params.len() < 2 {
                    return Err((0, "truncated optional parameter".into()));
                }
                (params[0], params[1] as usize, 2)
            };
            let v = params
                .get(hdr..hdr + len)
                .ok_or((0, "optional parameter overruns".to_string()))?;
            params = &params[hdr + len..];
            if t != 2 {
                return Err((UNSUPPORTED_OPTIONAL_PARAMETER, format!("optional parameter type {t}")));
            }
            let mut c = v;
            while !c.is_empty() {
                if c.len() < 2 || c.len() < 2 + c[1] as usize {
                    return Err((0, "truncated capability".into()));
                }
                let (code, l) = (c[0], c[1] as usize);
                let cap = Capability::parse(code, &c[2..2 + l]).ok_or((0, format!("malformed capability {code}")))?;
                capabilities.push(cap);
                c = &c[2 + l..];
            }
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }
}
