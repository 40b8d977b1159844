//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018):
//! a server cookie is Version 1, three reserved zero bytes, a timestamp
//! (seconds, serial arithmetic) and the first 8 bytes of SipHash-2-4 over
//! the client cookie, those 8 bytes and the client's address, keyed with
//! the server secret. Servers of one anycast fleet that share the secret
//! accept each other's cookies, whatever software they run.
//!
//! A cookie is valid for an hour after it was made and up to five minutes
//! before (clock skew between servers, RFC 9018 §4.3). Secrets rotate as
//! the RFC describes: cookies are made with the current one, and those
//! made with the previous one are still accepted.

use petrel_dns_wire::Cookie;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::IpAddr;

/// The secrets server cookies are made and checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secrets {
    pub current: [u8; 16],
    /// Still accepted, never used to make cookies.
    pub previous: Option<[u8; 16]>,
}

/// What a query's COOKIE option is worth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// No COOKIE option.
    #[default]
    None,
    /// A client cookie only.
    ClientOnly,
    /// A server cookie we made (or a server sharing our secret), recent.
    Valid,
    /// A server cookie that is not ours, or too old, or from the future.
    Invalid,
}

const VERSION: u8 = 1;
const MAX_AGE: u32 = 3600;
const MAX_AHEAD: u32 = 300;

/// The server cookie for `client_cookie` from `ip`, made at `now`.
pub fn server_cookie(secret: &[u8; 16], client_cookie: &[u8; 8], now: u32, ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = VERSION;
    out[4..8].copy_from_slice(&now.to_be_bytes());
    let hash = hash(secret, client_cookie, &out[..8], ip);
    out[8..].copy_from_slice(&hash);
    out
}

fn hash(secret: &[u8; 16], client_cookie: &[u8; 8], head: &[u8], ip: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client_cookie);
    h.write(head);
    match ip.to_canonical() {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    h.finish().to_le_bytes()
}

/// Judge `c`, sent from `ip`, at `now`.
pub fn check(secrets: &Secrets, c: &Cookie, ip: IpAddr, now: u32) -> Status {
    let s = c.server();
    if s.is_empty() {
        return Status::ClientOnly;
    }
    if s.len() != 16 || s[0] != VERSION || s[1..4] != [0, 0, 0] {
        return Status::Invalid;
    }
    let made = u32::from_be_bytes([s[4], s[5], s[6], s[7]]);
    // Serial arithmetic (RFC 1982): age in either direction.
    let age = now.wrapping_sub(made);
    let ahead = made.wrapping_sub(now);
    if age > MAX_AGE && ahead > MAX_AHEAD {
        return Status::Invalid;
    }
    let ours = |secret: &[u8; 16]| hash(secret, &c.client, &s[..8], ip)[..] == s[8..];
    if ours(&secrets.current) || secrets.previous.as_ref().is_some_and(ours) {
        Status::Valid
    } else {
        Status::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn secret(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    /// A COOKIE option as a query carries it.
    fn cookie(s: &str) -> Cookie {
        let data = hex(s);
        let mut q = vec![
            0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 4, 0, 0, 0, 0, 0,
        ];
        let opt_len = 4 + data.len();
        q.extend_from_slice(&(opt_len as u16).to_be_bytes());
        q.extend_from_slice(&[0, 10]);
        q.extend_from_slice(&(data.len() as u16).to_be_bytes());
        q.extend_from_slice(&data);
        petrel_dns_wire::parse_query(&q).unwrap().edns.unwrap().cookie.unwrap()
    }

    const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

    #[test]
    fn rfc9018_a1_a_new_server_cookie() {
        let sc = server_cookie(
            &secret(SECRET),
            &hex("2464c4abcf10c957").try_into().unwrap(),
            1_559_731_985,
            "198.51.100.100".parse().unwrap(),
        );
        assert_eq!(sc.to_vec(), hex("010000005cf79f111f8130c3eee29480"));
    }

    #[test]
    fn rfc9018_a2_the_cookie_comes_back_and_is_renewed() {
        let s = Secrets {
            current: secret(SECRET),
            previous: None,
        };
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let c = cookie("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
        assert_eq!(check(&s, &c, ip, 1_559_734_385), Status::Valid);
        let renewed = server_cookie(&s.current, &c.client, 1_559_734_385, ip);
        assert_eq!(renewed.to_vec(), hex("010000005cf7a871d4a564a1442aca77"));
        // From another address, or with a byte changed, it is not ours.
        assert_eq!(
            check(&s, &c, "198.51.100.101".parse().unwrap(), 1_559_734_385),
            Status::Invalid
        );
        let tampered = cookie("2464c4abcf10c957010000005cf79f111f8130c3eee29481");
        assert_eq!(check(&s, &tampered, ip, 1_559_734_385), Status::Invalid);
    }

    #[test]
    fn cookies_expire_after_an_hour_and_may_be_five_minutes_ahead() {
        let s = Secrets {
            current: secret(SECRET),
            previous: None,
        };
        let ip: IpAddr = "2001:db8::53".parse().unwrap();
        let cc = [7u8; 8];
        let made = 1_000_000;
        let sc = server_cookie(&s.current, &cc, made, ip);
        let mut opt = String::from("0707070707070707");
        for b in sc {
            opt.push_str(&format!("{b:02x}"));
        }
        let c = cookie(&opt);
        assert_eq!(check(&s, &c, ip, made + 3600), Status::Valid);
        assert_eq!(check(&s, &c, ip, made + 3601), Status::Invalid);
        assert_eq!(check(&s, &c, ip, made - 300), Status::Valid);
        assert_eq!(check(&s, &c, ip, made - 301), Status::Invalid);
    }

    #[test]
    fn the_previous_secret_is_still_accepted() {
        let old = secret(SECRET);
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let c = cookie("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
        let rotated = Secrets {
            current: [9; 16],
            previous: Some(old),
        };
        assert_eq!(check(&rotated, &c, ip, 1_559_731_990), Status::Valid);
        let forgotten = Secrets {
            current: [9; 16],
            previous: None,
        };
        assert_eq!(check(&forgotten, &c, ip, 1_559_731_990), Status::Invalid);
        assert_eq!(
            check(&forgotten, &cookie("2464c4abcf10c957"), ip, 0),
            Status::ClientOnly
        );
    }
}
