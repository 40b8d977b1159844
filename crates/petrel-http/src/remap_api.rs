//! The remap API's request and answer, for edge servers that are not
//! petrel (nginx `auth_request`, Varnish, Envoy ext_authz):
//!
//! `GET /v1/remap?service=S&client=IP&pop=CURRENT&rtt_ms=N[&host=H&path=P]`
//!
//! - `rtt_us` may stand for `rtt_ms` (nginx's `$tcpinfo_rtt` is in µs);
//! - `marked` (non-empty, not `0`) says the request was moved once already;
//! - `reply=auth` asks for 204 (stay) or 403 (redirect) instead of JSON;
//! - without `path`, the caller's `X-Original-URI` (nginx's `$request_uri`)
//!   gives the path and query the location keeps.
//!
//! The answer is `{"action","pop","location","reason","ttl"}`, written by
//! hand: it sits on other servers' request path.

use std::borrow::Cow;
use std::net::IpAddr;

/// A query string's parameters, split once (at most 16 are kept; a
/// request with more is not one an edge server makes).
pub struct Params<'a> {
    kv: [(&'a str, &'a str); 16],
    n: usize,
}

impl<'a> Params<'a> {
    pub fn parse(query: &'a str) -> Params<'a> {
        let mut p = Params {
            kv: [("", ""); 16],
            n: 0,
        };
        for kv in query.split('&') {
            if p.n == p.kv.len() {
                break;
            }
            if !kv.is_empty() {
                p.kv[p.n] = kv.split_once('=').unwrap_or((kv, ""));
                p.n += 1;
            }
        }
        p
    }

    /// The first value of `key`, percent-decoded (borrowed when there is
    /// nothing to decode).
    pub fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        self.kv[..self.n].iter().find(|(k, _)| *k == key).map(|&(_, v)| {
            if v.bytes().any(|b| b == b'%' || b == b'+') {
                Cow::Owned(percent_decode(v))
            } else {
                Cow::Borrowed(v)
            }
        })
    }
}

/// `%XX` and `+` in a query value (a bad escape stays as it is).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a remap request asks, read and checked.
#[derive(Debug, PartialEq)]
pub struct Query<'a> {
    pub service: Cow<'a, str>,
    pub client: IpAddr,
    /// The asking server's POP, by name.
    pub pop: Option<Cow<'a, str>>,
    /// None: the caller did not measure; any POP better than `pop` wins.
    pub rtt_ms: Option<f64>,
    pub marked: bool,
    /// 204/403 for `auth_request` instead of JSON.
    pub auth_reply: bool,
    pub host: Option<Cow<'a, str>>,
    /// The path the location keeps; when given, the query is not kept.
    pub path: Option<Cow<'a, str>>,
}

impl<'a> Query<'a> {
    /// The request's parameters, or what is wrong with them, in words the
    /// caller's log can show.
    pub fn parse(query: &'a str) -> Result<Query<'a>, String> {
        let q = Params::parse(query);
        let service = q.get("service").ok_or("`service` is required")?;
        let client = q
            .get("client")
            .and_then(|c| c.parse::<IpAddr>().ok())
            .ok_or("`client` must be an IP address")?
            .to_canonical();
        let number = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
        let rtt_ms = match (q.get("rtt_ms"), q.get("rtt_us")) {
            (None, None) => None,
            (Some(v), _) => Some(number(&v).ok_or("`rtt_ms` must be a number of milliseconds")?),
            (None, Some(v)) => Some(number(&v).ok_or("`rtt_us` must be a number of microseconds")? / 1000.0),
        };
        Ok(Query {
            service,
            client,
            pop: q.get("pop"),
            rtt_ms,
            marked: q.get("marked").is_some_and(|m| !m.is_empty() && m != "0"),
            auth_reply: q.get("reply").is_some_and(|r| r == "auth"),
            host: q.get("host"),
            path: q.get("path"),
        })
    }
}

/// An `X-Original-URI` (a request target) as path and query.
pub fn split_uri(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    }
}

/// The JSON answer.
pub struct Answer<'a> {
    pub action: &'a str,
    pub pop: Option<&'a str>,
    pub location: Option<&'a str>,
    pub reason: &'a str,
    pub ttl: u32,
}

impl Answer<'_> {
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"action\":");
        json_str(out, Some(self.action));
        out.push_str(",\"pop\":");
        json_str(out, self.pop);
        out.push_str(",\"location\":");
        json_str(out, self.location);
        out.push_str(",\"reason\":");
        json_str(out, Some(self.reason));
        out.push_str(",\"ttl\":");
        let mut digits = [0u8; 10];
        let mut n = self.ttl;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or("0"));
        out.push('}');
    }
}

/// A JSON string (or null), escaped as RFC 8259 asks.
pub fn json_str(out: &mut String, s: Option<&str>) {
    let Some(s) = s else {
        out.push_str("null");
        return;
    };
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parameters_are_split_once_and_decoded_only_when_needed() {
        let q = Params::parse("service=www.example.net&client=192.0.2.1&path=%2Fa%20b&x&&");
        assert_eq!(q.get("service").as_deref(), Some("www.example.net"));
        assert!(matches!(q.get("client"), Some(Cow::Borrowed(_))));
        assert_eq!(q.get("path").as_deref(), Some("/a b"));
        assert_eq!(q.get("x").as_deref(), Some(""));
        assert_eq!(q.get("pop"), None);
        let many = "a=1&".repeat(40) + "late=1";
        assert_eq!(Params::parse(&many).get("late"), None, "16 parameters at most");
        assert_eq!(percent_decode("a+b%41%zz%4%"), "a bA%zz%4%");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn a_query_is_read_with_precise_errors() {
        let q =
            Query::parse("service=www.example.net&client=::ffff:192.0.2.1&pop=ams&rtt_us=150000&marked=1&reply=auth")
                .unwrap();
        assert_eq!(q.service, "www.example.net");
        assert_eq!(
            q.client,
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "mapped addresses are IPv4"
        );
        assert_eq!(q.pop.as_deref(), Some("ams"));
        assert_eq!(q.rtt_ms, Some(150.0));
        assert!(q.marked && q.auth_reply);
        let q = Query::parse("service=s&client=2001:db8::1&marked=0&rtt_ms=12.5").unwrap();
        assert!(!q.marked && !q.auth_reply);
        assert_eq!(q.rtt_ms, Some(12.5));
        assert_eq!(q.pop, None);
        assert_eq!(
            Query::parse("service=s&client=x&marked=").unwrap_err(),
            "`client` must be an IP address"
        );
        assert_eq!(Query::parse("client=192.0.2.1").unwrap_err(), "`service` is required");
        for bad in ["-1", "NaN", "inf", "x"] {
            assert_eq!(
                Query::parse(&format!("service=s&client=192.0.2.1&rtt_ms={bad}")).unwrap_err(),
                "`rtt_ms` must be a number of milliseconds"
            );
        }
        assert_eq!(
            Query::parse("service=s&client=192.0.2.1&rtt_us=").unwrap_err(),
            "`rtt_us` must be a number of microseconds"
        );
        assert_eq!(split_uri("/a/b?x=1&y"), ("/a/b", Some("x=1&y")));
        assert_eq!(split_uri("/a"), ("/a", None));
    }

    #[test]
    fn answers_are_json() {
        let mut s = String::new();
        Answer {
            action: "redirect",
            pop: Some("iad"),
            location: Some("https://iad.example.net/a\"b\\c\n"),
            reason: "slow",
            ttl: 30,
        }
        .write_json(&mut s);
        assert_eq!(
            s,
            r#"{"action":"redirect","pop":"iad","location":"https://iad.example.net/a\"b\\c\u000a","reason":"slow","ttl":30}"#
        );
        let mut s = String::new();
        Answer {
            action: "stay",
            pop: None,
            location: None,
            reason: "r",
            ttl: 0,
        }
        .write_json(&mut s);
        assert_eq!(
            s,
            r#"{"action":"stay","pop":null,"location":null,"reason":"r","ttl":0}"#
        );
    }

    proptest! {
        /// Any query string parses or is refused, without a panic; any
        /// text is a JSON string whose characters survive escaping.
        #[test]
        fn any_input_is_safe(query in ".{0,200}", text in "\\PC{0,40}|[\\x00-\\x1f\"\\\\]{0,10}", ttl in any::<u32>()) {
            let _ = Query::parse(&query);
            let _ = percent_decode(&query);
            let mut s = String::new();
            Answer { action: "stay", pop: Some(&text), location: None, reason: &text, ttl }.write_json(&mut s);
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            prop_assert_eq!(v["pop"].as_str(), Some(text.as_str()));
            prop_assert_eq!(v["ttl"].as_u64(), Some(u64::from(ttl)));
        }
    }
}
