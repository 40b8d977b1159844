//! A [`Change`] as the UPDATE a neighbour is sent.

use crate::{Attrs, Change};
use petrel_bgp_wire::attrs::{FLAG_OPTIONAL, FLAG_TRANSITIVE};
use petrel_bgp_wire::{encode_update, AsPathSegment, Attributes, Nlri, Origin, SessionCtx, UnknownAttr, UpdateOut};
use petrel_types::{Asn, Family};
use std::net::IpAddr;

/// RFC 4360's EXTENDED COMMUNITIES attribute.
const EXTENDED_COMMUNITIES: u8 = 16;
/// RFC 6793's AS4_PATH.
const AS4_PATH: u8 = 17;

/// What a session negotiated that the encoding depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub ctx: SessionCtx,
    /// IPv4 and IPv6 unicast negotiated (RFC 4760).
    pub families: [bool; 2],
    /// IPv4 unicast with IPv6 next hops negotiated (RFC 8950).
    pub extended_next_hop: bool,
    /// Our address on the session: the next hop unless the policy names one.
    pub local: IpAddr,
    pub our_as: Asn,
}

/// Why a change could not be put on the wire to this session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsendable {
    /// The session did not negotiate the prefix's family.
    Family,
    /// An IPv6 prefix with no IPv6 next hop (an IPv4 session and no
    /// `next_hop` in the policy), or an IPv4 prefix with no IPv4 next hop
    /// over a session without RFC 8950's extended next hops.
    NextHop,
}

/// The UPDATE for one change, appended to `out`.
pub fn encode(change: &Change, s: &Session, out: &mut Vec<u8>) -> Result<(), Unsendable> {
    let (prefix, attrs) = match change {
        Change::Announce(p, a) => (*p, Some(a)),
        Change::Withdraw(p) => (*p, None),
    };
    let fam = prefix.family();
    if !s.families[(fam == Family::V6) as usize] {
        return Err(Unsendable::Family);
    }
    let nlri = [Nlri { path_id: None, prefix }];
    let Some(a) = attrs else {
        let empty = Attributes::default();
        encode_update(
            &UpdateOut {
                withdrawn: &nlri,
                announced: &[],
                attrs: &empty,
            },
            &s.ctx,
            out,
        );
        return Ok(());
    };
    let wire = attributes(a, fam, s)?;
    encode_update(
        &UpdateOut {
            withdrawn: &[],
            announced: &nlri,
            attrs: &wire,
        },
        &s.ctx,
        out,
    );
    Ok(())
}

fn attributes(a: &Attrs, fam: Family, s: &Session) -> Result<Attributes, Unsendable> {
    // Our AS originates; eBGP puts it first once more for each prepend.
    // Over iBGP the path starts empty (RFC 4271 §5.1.2), prepends aside.
    let n = if s.ctx.ibgp {
        a.prepend as usize
    } else {
        1 + a.prepend as usize
    };
    let as_path = if n == 0 {
        Vec::new()
    } else {
        vec![AsPathSegment::Sequence(vec![s.our_as.0; n])]
    };
    let nh = a.next_hop.unwrap_or(s.local);
    let (next_hop, mp_next_hop) = match (fam, nh) {
        (Family::V4, IpAddr::V4(v4)) => (Some(v4), None),
        (Family::V6, IpAddr::V6(v6)) => (None, Some(IpAddr::V6(v6))),
        // RFC 8950: in MP_REACH_NLRI (AFI 1, SAFI 1), no NEXT_HOP.
        (Family::V4, IpAddr::V6(v6)) if s.extended_next_hop => (None, Some(IpAddr::V6(v6))),
        _ => return Err(Unsendable::NextHop),
    };
    let mut unknown = Vec::new();
    if !a.extended_communities.is_empty() {
        unknown.push(UnknownAttr {
            flags: FLAG_OPTIONAL | FLAG_TRANSITIVE,
            code: EXTENDED_COMMUNITIES,
            value: a.extended_communities.iter().flat_map(|c| c.to_be_bytes()).collect(),
        });
    }
    // A neighbour without 4-octet AS support gets AS_TRANS in AS_PATH
    // and our real AS in AS4_PATH (RFC 6793 §4.2.2).
    if !s.ctx.four_octet_as && s.our_as.0 > 0xFFFF && n > 0 {
        let mut v = vec![2, n as u8];
        for _ in 0..n {
            v.extend_from_slice(&s.our_as.0.to_be_bytes());
        }
        unknown.push(UnknownAttr {
            flags: FLAG_OPTIONAL | FLAG_TRANSITIVE,
            code: AS4_PATH,
            value: v,
        });
    }
    Ok(Attributes {
        origin: Some(Origin::Igp),
        as_path,
        next_hop,
        med: a.med,
        local_pref: s.ctx.ibgp.then_some(100),
        communities: a.communities.clone(),
        large_communities: a.large_communities.clone(),
        mp_next_hop,
        unknown,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_bgp_wire::{decode, Message};

    fn session(local: &str) -> Session {
        Session {
            ctx: SessionCtx {
                four_octet_as: true,
                ..Default::default()
            },
            families: [true, true],
            extended_next_hop: false,
            local: local.parse().unwrap(),
            our_as: Asn(4_200_000_001),
        }
    }

    fn parse(bytes: &[u8], s: &Session) -> petrel_bgp_wire::ParsedUpdate {
        let Some((Message::Update(u), n)) = decode(bytes, &s.ctx).unwrap() else {
            panic!("not an UPDATE")
        };
        assert_eq!(n, bytes.len());
        u.parse(&s.ctx).unwrap()
    }

    #[test]
    fn announcements_decode_with_the_attributes_of_the_policy() {
        let s = session("192.0.2.1");
        let a = Attrs {
            prepend: 2,
            med: Some(10),
            communities: vec![crate::GRACEFUL_SHUTDOWN, 174 << 16 | 10],
            large_communities: vec![[4_200_000_001, 1, 2]],
            extended_communities: vec![0x0002_FBF4_0000_0064],
            next_hop: None,
        };
        let mut out = Vec::new();
        encode(
            &Change::Announce("192.0.2.0/24".parse().unwrap(), a.clone()),
            &s,
            &mut out,
        )
        .unwrap();
        let u = parse(&out, &s);
        assert_eq!(u.announced[0].prefix.to_string(), "192.0.2.0/24");
        assert_eq!(u.attrs.as_path, [AsPathSegment::Sequence(vec![4_200_000_001; 3])]);
        assert_eq!(u.attrs.next_hop, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(u.attrs.med, Some(10));
        assert_eq!(u.attrs.communities, a.communities);
        assert_eq!(u.attrs.large_communities, a.large_communities);
        assert_eq!(u.attrs.unknown[0].code, 16);
        assert_eq!(u.attrs.unknown[0].value, 0x0002_FBF4_0000_0064u64.to_be_bytes());
        // IPv6 over an IPv6 session: MP_REACH_NLRI with our address.
        let s6 = session("2001:db8::1");
        let mut out = Vec::new();
        encode(
            &Change::Announce("2001:db8:1::/48".parse().unwrap(), Attrs::default()),
            &s6,
            &mut out,
        )
        .unwrap();
        let u = parse(&out, &s6);
        assert_eq!(u.announced[0].prefix.to_string(), "2001:db8:1::/48");
        assert_eq!(u.attrs.mp_next_hop, Some("2001:db8::1".parse().unwrap()));
        // Withdrawals of both families.
        for (p, sess) in [("192.0.2.0/24", &s), ("2001:db8:1::/48", &s6)] {
            let mut out = Vec::new();
            encode(&Change::Withdraw(p.parse().unwrap()), sess, &mut out).unwrap();
            assert_eq!(parse(&out, sess).withdrawn[0].prefix.to_string(), p);
        }
    }

    #[test]
    fn what_a_session_cannot_carry_is_not_sent() {
        let mut s = session("192.0.2.1");
        let mut out = Vec::new();
        let v6 = Change::Announce("2001:db8:1::/48".parse().unwrap(), Attrs::default());
        assert_eq!(encode(&v6, &s, &mut out), Err(Unsendable::NextHop));
        let with_nh = Change::Announce(
            "2001:db8:1::/48".parse().unwrap(),
            Attrs {
                next_hop: Some("2001:db8::7".parse().unwrap()),
                ..Default::default()
            },
        );
        assert_eq!(encode(&with_nh, &s, &mut out), Ok(()));
        s.families = [true, false];
        assert_eq!(encode(&with_nh, &s, &mut Vec::new()), Err(Unsendable::Family));
    }

    #[test]
    fn ipv4_with_an_ipv6_next_hop_goes_in_mp_reach_when_negotiated() {
        let mut s = session("2001:db8::1");
        let v4 = Change::Announce("192.0.2.0/24".parse().unwrap(), Attrs::default());
        assert_eq!(encode(&v4, &s, &mut Vec::new()), Err(Unsendable::NextHop));
        s.extended_next_hop = true;
        let mut out = Vec::new();
        encode(&v4, &s, &mut out).unwrap();
        let u = parse(&out, &s);
        assert_eq!(u.announced[0].prefix.to_string(), "192.0.2.0/24");
        assert_eq!(u.attrs.next_hop, None, "no NEXT_HOP attribute");
        assert_eq!(u.attrs.mp_next_hop, Some("2001:db8::1".parse().unwrap()));
        // MP_REACH_NLRI for AFI 1, SAFI 1, a 16-octet next hop.
        let mp = out
            .windows(4)
            .position(|w| w == [0x80, 14, 25, 0])
            .expect("MP_REACH_NLRI");
        assert_eq!(&out[mp + 3..mp + 7], [0, 1, 1, 16]);
        // Withdrawn in the IPv4 withdrawn-routes field, as ever.
        let mut out = Vec::new();
        encode(&Change::Withdraw("192.0.2.0/24".parse().unwrap()), &s, &mut out).unwrap();
        assert_eq!(parse(&out, &s).withdrawn[0].prefix.to_string(), "192.0.2.0/24");
    }

    #[test]
    fn a_two_octet_neighbour_gets_as_trans_and_as4_path() {
        let mut s = session("192.0.2.1");
        s.ctx.four_octet_as = false;
        let mut out = Vec::new();
        let a = Attrs {
            prepend: 1,
            ..Default::default()
        };
        encode(&Change::Announce("192.0.2.0/24".parse().unwrap(), a), &s, &mut out).unwrap();
        // Decoded as the neighbour would: the real path comes back from
        // AS4_PATH (RFC 6793 §4.2.3).
        let u = parse(&out, &s);
        assert_eq!(u.attrs.as_path, [AsPathSegment::Sequence(vec![4_200_000_001; 2])]);
    }

    #[test]
    fn over_ibgp_the_path_starts_empty() {
        let mut s = session("192.0.2.1");
        s.ctx.ibgp = true;
        let mut out = Vec::new();
        encode(
            &Change::Announce("192.0.2.0/24".parse().unwrap(), Attrs::default()),
            &s,
            &mut out,
        )
        .unwrap();
        let u = parse(&out, &s);
        assert!(u.attrs.as_path.is_empty());
        assert_eq!(u.attrs.local_pref, Some(100));
    }
}
