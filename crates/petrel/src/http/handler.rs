//! One HTTP request: the remap API, a rule's redirect or edge decision,
//! or the front's fallback. Decisions come from the current generation,
//! looked up with the client's own address.

use super::{metrics::Outcome, Body, ConnInfo, Shared};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use petrel_config::HttpConf;
use petrel_director::{Decision, Generation};
use petrel_http::client::{client_address, Header};
use petrel_http::remap::{remap, Action as Remap, Reason};
use petrel_http::rules::{Action, Fallback, Marker, Redirect};
use petrel_http::template::Vars;
use petrel_types::{Prefix, ServiceIdx};
use std::net::IpAddr;
use std::sync::Arc;

/// `private, max-age=TTL`, made once per TTL and thread.
fn cache_control(ttl: u32) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<(u32, HeaderValue)> =
            const { std::cell::RefCell::new((0, HeaderValue::from_static("private, max-age=0"))) };
    }
    LAST.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != ttl {
            *c = (
                ttl,
                HeaderValue::from_str(&format!("private, max-age={ttl}")).expect("digits are a valid header"),
            );
        }
        c.1.clone()
    })
}

pub fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        http_body_util::Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = full(status, serde_json::to_vec(v).unwrap_or_default());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The request's host: the URI's authority when it has one (HTTP/2, or the
/// absolute form, which wins over Host: RFC 9112 §3.2.2, RFC 9113 §8.3.1),
/// else the Host header; without userinfo or port.
fn host_of(req: &Request<Incoming>) -> &str {
    match req.uri().authority() {
        Some(a) => a.host(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    }
}

/// The client: the TCP peer (or the PROXY header's source), or what a
/// trusted proxy's header says.
pub fn client_of(req: &Request<Incoming>, conn: &ConnInfo, front: &HttpConf) -> IpAddr {
    let name = match front.client_header {
        Header::XForwardedFor => "x-forwarded-for",
        Header::Forwarded => "forwarded",
    };
    // A line that is not text is an unreadable hop: it ends the walk
    // rather than vanish (which would let an earlier, client-written line
    // stand in for the proxy's).
    let values = req
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("unknown"));
    client_address(conn.client, &front.trusted_proxies, front.client_header, values)
}

/// Entropy for weighted policies: stable per client, so that one client
/// keeps getting the same POP.
fn entropy(client: IpAddr) -> u64 {
    let bits: u128 = match client {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    };
    (bits as u64 ^ (bits >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The decision core's POPs for `client`, best first.
fn decide(g: &Generation, service: ServiceIdx, client: IpAddr) -> Decision {
    let mut d = Decision::default();
    g.decide(service, &Prefix::host(client), None, entropy(client), &mut d);
    d
}

/// The redirect response for `pop`, with caching headers that keep one
/// client's redirect from being handed to another.
fn redirect_response(
    g: &Generation,
    front: &HttpConf,
    r: &Redirect,
    pop: petrel_types::PopIdx,
    ttl: u32,
    req_parts: (&str, &str, Option<&str>),
    marker: Option<&Marker>,
) -> Response<Body> {
    let (host, path, query) = req_parts;
    let pop_name = &g.config().pops[pop.index()].name;
    let mut extra = String::new();
    if let Some(Marker::Query(n)) = marker {
        extra = format!("{n}=1");
    }
    let mut loc = String::with_capacity(128);
    r.location.render(
        &Vars {
            pop: pop_name,
            host,
            path,
            query,
            extra_query: (!extra.is_empty()).then_some(extra.as_str()),
        },
        &mut loc,
    );
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
    let mut resp = full(status, Bytes::new());
    let h = resp.headers_mut();
    match HeaderValue::from_maybe_shared(Bytes::from(loc)) {
        Ok(v) => {
            h.insert(header::LOCATION, v);
        }
        Err(_) => {
            return full(
                StatusCode::INTERNAL_SERVER_ERROR,
                "redirect URL is not a valid header\n",
            )
        }
    }
    // The answer depends on the client's address: only the client's own
    // cache may keep it, for as long as a DNS answer would be; a cache that
    // sits behind a trusted proxy keys it by the proxy's header.
    h.insert(header::CACHE_CONTROL, cache_control(ttl));
    h.insert(
        header::VARY,
        HeaderValue::from_static(match front.client_header {
            Header::XForwardedFor => "X-Forwarded-For",
            Header::Forwarded => "Forwarded",
        }),
    );
    if let Some(Marker::Cookie { name, domain }) = marker {
        // For the POPs' shared domain, or the POP moved to never sees it.
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=1; Domain={domain}; Path=/; Max-Age=300; SameSite=Lax")) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// What a request gets, decided while its parts are borrowed.
enum Plan {
    Respond(Response<Body>, Outcome, Option<f64>),
    /// To the upstream (the fallback, or an edge rule serving here).
    Proxy(Outcome, Option<f64>),
}

pub async fn handle(req: Request<Incoming>, conn: Arc<ConnInfo>, shared: Arc<Shared>) -> Response<Body> {
    let t0 = std::time::Instant::now();
    let g = shared.reader.load();
    let Some(front) = g.config().http.iter().find(|f| *f.name == *conn.front) else {
        // The front was removed by a reload; its listeners stay until the
        // next restart and answer this.
        return full(StatusCode::SERVICE_UNAVAILABLE, "this front is no longer configured\n");
    };
    let client = client_of(&req, &conn, front);
    let (path, query) = (req.uri().path(), req.uri().query());
    if front.remap_api && path == "/v1/remap" {
        let original = req.headers().get("x-original-uri").and_then(|v| v.to_str().ok());
        let resp = remap_api(&g, front, query, original);
        shared
            .metrics
            .record(&conn.front, "remap-api", Outcome::Api, None, t0.elapsed());
        return resp;
    }
    let host = host_of(&req);
    // Edge rules of a front without a content server serve the remap API
    // only.
    let matched =
        front.rules.iter().enumerate().find(|(_, r)| {
            r.matches(host, path) && (front.upstream.is_some() || !matches!(r.action, Action::Edge { .. }))
        });
    let rule_name = matched.map_or("", |(_, r)| r.name.as_str());
    // Only the access log needs these past the point where the request
    // moves to the proxy.
    let logged = front.access_log.then(|| (host.to_string(), path.to_string()));
    let plan = match matched {
        None => match &front.default {
            Fallback::Respond { status, body } => Plan::Respond(
                full(
                    StatusCode::from_u16(status.to_owned()).unwrap_or(StatusCode::NOT_FOUND),
                    body.clone(),
                ),
                Outcome::NoMatch,
                None,
            ),
            Fallback::Upstream => Plan::Proxy(Outcome::Proxy, None),
        },
        Some((_, rule)) => match &rule.action {
            Action::Redirect(r) => {
                let d = decide(&g, r.service, client);
                match d.pops().first() {
                    Some(&pop) => Plan::Respond(
                        redirect_response(&g, front, r, pop, d.ttl, (host, path, query), None),
                        Outcome::Redirect,
                        None,
                    ),
                    None => Plan::Respond(
                        full(StatusCode::SERVICE_UNAVAILABLE, "no POP is available for this client\n"),
                        Outcome::NoPop,
                        None,
                    ),
                }
            }
            Action::Edge {
                redirect,
                rtt_threshold_ms,
                marker,
            } => {
                // TCP_INFO measures the connection to the peer: behind a
                // proxy that is the proxy's, not the client's.
                let rtt = if client == conn.client && conn.client == conn.peer.ip().to_canonical() {
                    super::tcp_info::rtt_ms(conn.fd())
                } else {
                    None
                };
                let cookies = req
                    .headers()
                    .get_all(header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                let marked = marker.present(query, cookies);
                let d = decide(&g, redirect.service, client);
                let (action, reason) = remap(d.pops(), front.pop, rtt, *rtt_threshold_ms, marked);
                match action {
                    Remap::Redirect(pop) => Plan::Respond(
                        redirect_response(&g, front, redirect, pop, d.ttl, (host, path, query), Some(marker)),
                        Outcome::Redirect,
                        rtt,
                    ),
                    Remap::Stay => {
                        tracing::debug!(client = %client, rtt_ms = ?rtt, reason = reason.as_str(), "edge: served here");
                        Plan::Proxy(Outcome::Stay, rtt)
                    }
                }
            }
        },
    };
    let (resp, outcome, rtt) = match plan {
        Plan::Respond(r, o, rtt) => (r, o, rtt),
        Plan::Proxy(o, rtt) => (super::proxy::forward(req, &conn, front, &shared).await, o, rtt),
    };
    shared
        .metrics
        .record(&conn.front, rule_name, outcome, rtt, t0.elapsed());
    if let Some((host, path)) = logged {
        access_log(
            &conn,
            client,
            &host,
            &path,
            resp.status(),
            rule_name,
            outcome.label(),
            rtt,
        );
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn access_log(
    conn: &ConnInfo,
    client: IpAddr,
    host: &str,
    path: &str,
    status: StatusCode,
    rule: &str,
    action: &str,
    rtt: Option<f64>,
) {
    tracing::info!(target: "petrel::access", front = %conn.front, peer = %conn.peer, client = %client, host,
        path, status = status.as_u16(), rule, action, rtt_ms = ?rtt, "request");
}

/// `GET /v1/remap?service=S&client=IP&pop=CURRENT&rtt_ms=N[&host=H&path=P]`:
/// the edge decision for another server's request, from the first edge rule
/// of the service (or its first redirect rule, with no RTT threshold).
/// `rtt_us` takes nginx's `$tcpinfo_rtt`; `marked` (non-empty, not `0`)
/// says the request was moved once already. The answer is JSON; with
/// `reply=auth` it is 204 (stay) or 403 (redirect) for nginx's
/// `auth_request`, and every answer carries `X-Petrel-Action`,
/// `X-Petrel-Pop`, `X-Petrel-Location` and `X-Petrel-Reason`. Without
/// `path`, an `X-Original-URI` header (what nginx's `$request_uri` holds)
/// gives the path and query the location keeps, and the marker is looked
/// for in that query.
fn remap_api(g: &Generation, front: &HttpConf, query: Option<&str>, original_uri: Option<&str>) -> Response<Body> {
    let q = Params::parse(query.unwrap_or(""));
    let bad = |why: String| json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": why }));
    let Some(service) = q.get("service") else {
        return bad("`service` is required".into());
    };
    let want = service.trim_end_matches('.');
    let Some(sidx) = g
        .config()
        .services
        .iter()
        .position(|s| s.name.trim_end_matches('.').eq_ignore_ascii_case(want))
        .map(|i| ServiceIdx(i as u16))
    else {
        return bad(format!("no service named `{service}`"));
    };
    let Some(client) = q.get("client").and_then(|c| c.parse::<IpAddr>().ok()) else {
        return bad("`client` must be an IP address".into());
    };
    let here = match q.get("pop") {
        None => None,
        Some(n) => match g.config().pops.iter().position(|x| x.name == *n) {
            Some(i) => Some(petrel_types::PopIdx(i as u16)),
            None => return bad(format!("no POP named `{n}`")),
        },
    };
    let rtt = match (q.get("rtt_ms"), q.get("rtt_us")) {
        (None, None) => None,
        (Some(v), _) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Some(x),
            _ => return bad("`rtt_ms` must be a number of milliseconds".into()),
        },
        (None, Some(v)) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Some(x / 1000.0),
            _ => return bad("`rtt_us` must be a number of microseconds".into()),
        },
    };
    let Some((redirect, threshold, marker)) = petrel_http::rules::remap_rule(&front.rules, sidx) else {
        return bad(format!("no rule of this front serves `{service}`"));
    };
    let d = decide(g, sidx, client.to_canonical());
    let (orig_path, orig_query) = match original_uri {
        Some(u) => match u.split_once('?') {
            Some((a, b)) => (Some(a), Some(b)),
            None => (Some(u), None),
        },
        None => (None, None),
    };
    let marked = q.get("marked").is_some_and(|m| !m.is_empty() && m != "0")
        || marker.is_some_and(|m| m.present(orig_query, std::iter::empty()));
    let (action, reason) = remap(d.pops(), here, rtt.or(Some(f64::INFINITY)), threshold, marked);
    let reason = if rtt.is_none() && reason == Reason::Slow {
        "no RTT given: the best POP for the client"
    } else {
        reason.as_str()
    };
    let path_param = q.get("path");
    let (action_s, pop, location) = match action {
        Remap::Stay => ("stay", here.or(d.pops().first().copied()), None),
        Remap::Redirect(pop) => {
            let host = q.get("host");
            let path = path_param.as_deref().or(orig_path).unwrap_or("/");
            let mut loc = String::with_capacity(128);
            let mut extra = String::new();
            if let Some(Marker::Query(n)) = marker {
                extra.push_str(n);
                extra.push_str("=1");
            }
            redirect.location.render(
                &Vars {
                    pop: &g.config().pops[pop.index()].name,
                    host: host.as_deref().unwrap_or(""),
                    path,
                    query: if path_param.is_some() { None } else { orig_query },
                    extra_query: (!extra.is_empty()).then_some(extra.as_str()),
                },
                &mut loc,
            );
            if HeaderValue::from_str(&loc).is_err() {
                return bad(format!("the location `{}` is not a valid URL", loc.escape_debug()));
            }
            ("redirect", Some(pop), Some(loc))
        }
    };
    let pop_name = pop.map(|p| g.config().pops[p.index()].name.as_str());
    let mut resp = if q.get("reply").is_some_and(|r| r == "auth") {
        let status = if location.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NO_CONTENT
        };
        full(status, Bytes::new())
    } else {
        // Written by hand: this answer sits on other servers' request path.
        let mut b = String::with_capacity(192);
        b.push_str("{\"action\":\"");
        b.push_str(action_s);
        b.push_str("\",\"pop\":");
        json_str(&mut b, pop_name);
        b.push_str(",\"location\":");
        json_str(&mut b, location.as_deref());
        b.push_str(",\"reason\":");
        json_str(&mut b, Some(reason));
        b.push_str(",\"ttl\":");
        b.push_str(&d.ttl.to_string());
        b.push('}');
        let mut r = full(StatusCode::OK, b);
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    let h = resp.headers_mut();
    h.insert(X_ACTION, HeaderValue::from_static(action_s));
    h.insert(X_REASON, HeaderValue::from_static(reason));
    for (k, v) in [(X_POP, pop_name), (X_LOCATION, location.as_deref())] {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(k, v);
        }
    }
    resp
}

const X_ACTION: header::HeaderName = header::HeaderName::from_static("x-petrel-action");
const X_REASON: header::HeaderName = header::HeaderName::from_static("x-petrel-reason");
const X_POP: header::HeaderName = header::HeaderName::from_static("x-petrel-pop");
const X_LOCATION: header::HeaderName = header::HeaderName::from_static("x-petrel-location");

/// A JSON string (or null), escaped as RFC 8259 asks.
fn json_str(out: &mut String, s: Option<&str>) {
    let Some(s) = s else {
        out.push_str("null");
        return;
    };
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A query string's parameters, split once (at most 16 are kept).
struct Params<'a> {
    kv: [(&'a str, &'a str); 16],
    n: usize,
}

impl<'a> Params<'a> {
    fn parse(query: &'a str) -> Params<'a> {
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
    fn get(&self, key: &str) -> Option<std::borrow::Cow<'a, str>> {
        self.kv[..self.n].iter().find(|(k, _)| *k == key).map(|&(_, v)| {
            if v.bytes().any(|b| b == b'%' || b == b'+') {
                std::borrow::Cow::Owned(percent_decode(v))
            } else {
                std::borrow::Cow::Borrowed(v)
            }
        })
    }
}

/// `%XX` and `+` in a query value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_and_json_strings() {
        let q = Params::parse("service=www.example.net&client=192.0.2.1&path=%2Fa%20b&x&&");
        assert_eq!(q.get("service").as_deref(), Some("www.example.net"));
        assert!(matches!(q.get("client"), Some(std::borrow::Cow::Borrowed(_))));
        assert_eq!(q.get("path").as_deref(), Some("/a b"));
        assert_eq!(q.get("x").as_deref(), Some(""));
        assert_eq!(q.get("pop"), None);
        let many = "a=1&".repeat(40) + "late=1";
        assert_eq!(Params::parse(&many).get("late"), None, "16 parameters at most");
        assert_eq!(percent_decode("a+b%41%zz%4"), "a bA%zz%4");
        let mut s = String::new();
        json_str(&mut s, Some("a\"b\\c\n"));
        json_str(&mut s, None);
        assert_eq!(s, r#""a\"b\\c\u000a"null"#);
        let v: serde_json::Value = serde_json::from_str(&s[..s.len() - 4]).unwrap();
        assert_eq!(v, "a\"b\\c\n");
    }
}
