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
use petrel_http::rules::{self, Action, Fallback, Marker, Redirect};
use petrel_http::template::Vars;
use petrel_types::{Prefix, ServiceIdx};
use std::net::IpAddr;
use std::sync::Arc;

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

/// The request's host: the URI's authority (HTTP/2, absolute form) or the
/// Host header.
fn host_of(req: &Request<Incoming>) -> &str {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

/// The client: the TCP peer (or the PROXY header's source), or what a
/// trusted proxy's header says.
pub fn client_of(req: &Request<Incoming>, conn: &ConnInfo, front: &HttpConf) -> IpAddr {
    let name = match front.client_header {
        Header::XForwardedFor => "x-forwarded-for",
        Header::Forwarded => "forwarded",
    };
    let values = req.headers().get_all(name).iter().filter_map(|v| v.to_str().ok());
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
    match HeaderValue::from_str(&loc) {
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
    if let Ok(v) = HeaderValue::from_str(&format!("private, max-age={ttl}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static(match front.client_header {
            Header::XForwardedFor => "X-Forwarded-For",
            Header::Forwarded => "Forwarded",
        }),
    );
    if let Some(Marker::Cookie(n)) = marker {
        if let Ok(v) = HeaderValue::from_str(&format!("{n}=1; Path=/; Max-Age=300; SameSite=Lax")) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    resp
}

pub async fn handle(req: Request<Incoming>, conn: Arc<ConnInfo>, shared: Arc<Shared>) -> Response<Body> {
    let t0 = std::time::Instant::now();
    let g = shared.reader.load();
    let Some(front) = g.config().http.iter().find(|f| *f.name == *conn.front) else {
        // The front was removed by a reload; its listeners close soon.
        return full(StatusCode::SERVICE_UNAVAILABLE, "this front is no longer configured\n");
    };
    let client = client_of(&req, &conn, front);
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    if front.remap_api && path == "/v1/remap" {
        let original = req
            .headers()
            .get("x-original-uri")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let resp = remap_api(&g, front, query.as_deref(), original.as_deref());
        shared
            .metrics
            .record(&conn.front, "remap-api", Outcome::Api, None, t0.elapsed());
        return resp;
    }
    let host = host_of(&req).to_string();
    let matched = rules::find(&front.rules, &host, &path);
    let (resp, rule_name, outcome, rtt) = match matched {
        None => match &front.default {
            Fallback::Respond { status, body } => (
                full(
                    StatusCode::from_u16(status.to_owned()).unwrap_or(StatusCode::NOT_FOUND),
                    body.clone(),
                ),
                "",
                Outcome::NoMatch,
                None,
            ),
            Fallback::Upstream => {
                let r = super::proxy::forward(req, client, front, &shared).await;
                (r, "", Outcome::Proxy, None)
            }
        },
        Some((_, rule)) => match &rule.action {
            Action::Redirect(r) => {
                let d = decide(&g, r.service, client);
                match d.pops().first() {
                    Some(&pop) => (
                        redirect_response(&g, front, r, pop, d.ttl, (&host, &path, query.as_deref()), None),
                        rule.name.as_str(),
                        Outcome::Redirect,
                        None,
                    ),
                    None => (
                        full(StatusCode::SERVICE_UNAVAILABLE, "no POP is available for this client\n"),
                        rule.name.as_str(),
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
                let rtt = super::tcp_info::rtt_ms(conn.fd);
                let cookies = req
                    .headers()
                    .get_all(header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                let marked = marker.present(query.as_deref(), cookies);
                let d = decide(&g, redirect.service, client);
                let (action, reason) = remap(d.pops(), front.pop, rtt, *rtt_threshold_ms, marked);
                match action {
                    Remap::Redirect(pop) => (
                        redirect_response(
                            &g,
                            front,
                            redirect,
                            pop,
                            d.ttl,
                            (&host, &path, query.as_deref()),
                            Some(marker),
                        ),
                        rule.name.as_str(),
                        Outcome::Redirect,
                        rtt,
                    ),
                    Remap::Stay => {
                        tracing::debug!(client = %client, rtt_ms = ?rtt, reason = reason.as_str(), "edge: served here");
                        let name = rule.name.clone();
                        let r = super::proxy::forward(req, client, front, &shared).await;
                        shared
                            .metrics
                            .record(&conn.front, &name, Outcome::Stay, rtt, t0.elapsed());
                        if front.access_log {
                            access_log(&conn, client, &host, &path, r.status(), &name, "stay", rtt);
                        }
                        return r;
                    }
                }
            }
        },
    };
    shared
        .metrics
        .record(&conn.front, rule_name, outcome, rtt, t0.elapsed());
    if front.access_log {
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
    let bad = |why: String| json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": why }));
    let mut p: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        p.insert(k, percent_decode(v));
    }
    let Some(service) = p.get("service") else {
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
    let Some(client) = p.get("client").and_then(|c| c.parse::<IpAddr>().ok()) else {
        return bad("`client` must be an IP address".into());
    };
    let here = match p.get("pop") {
        None => None,
        Some(n) => match g.config().pops.iter().position(|x| x.name == *n) {
            Some(i) => Some(petrel_types::PopIdx(i as u16)),
            None => return bad(format!("no POP named `{n}`")),
        },
    };
    let rtt = match (p.get("rtt_ms"), p.get("rtt_us")) {
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
    let rule = front.rules.iter().find_map(|r| match &r.action {
        Action::Edge {
            redirect,
            rtt_threshold_ms,
            marker,
        } if redirect.service == sidx => Some((redirect, rtt_threshold_ms.to_owned(), Some(marker))),
        _ => None,
    });
    let rule = rule.or_else(|| {
        front.rules.iter().find_map(|r| match &r.action {
            Action::Redirect(redirect) if redirect.service == sidx => Some((redirect, 0.0, None)),
            _ => None,
        })
    });
    let Some((redirect, threshold, marker)) = rule else {
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
    let marked = p.get("marked").is_some_and(|m| !m.is_empty() && m != "0")
        || marker.is_some_and(|m| m.present(orig_query, std::iter::empty()));
    let (action, reason) = remap(d.pops(), here, rtt.or(Some(f64::INFINITY)), threshold, marked);
    let reason = if rtt.is_none() && reason == Reason::Slow {
        "no RTT given: the best POP for the client"
    } else {
        reason.as_str()
    };
    let (action_s, pop, location) = match action {
        Remap::Stay => ("stay", here.or(d.pops().first().copied()), None),
        Remap::Redirect(pop) => {
            let host = p.get("host").map_or("", |s| s.as_str());
            let path = p.get("path").map(|s| s.as_str()).or(orig_path).unwrap_or("/");
            let mut loc = String::new();
            let extra = match marker {
                Some(Marker::Query(n)) => Some(format!("{n}=1")),
                _ => None,
            };
            redirect.location.render(
                &Vars {
                    pop: &g.config().pops[pop.index()].name,
                    host,
                    path,
                    query: if p.contains_key("path") { None } else { orig_query },
                    extra_query: extra.as_deref(),
                },
                &mut loc,
            );
            ("redirect", Some(pop), Some(loc))
        }
    };
    let pop_name = pop.map(|p| g.config().pops[p.index()].name.clone());
    let mut resp = if p.get("reply").is_some_and(|r| r == "auth") {
        let status = if location.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NO_CONTENT
        };
        full(status, Bytes::new())
    } else {
        json(
            StatusCode::OK,
            &serde_json::json!({
                "action": action_s,
                "pop": pop_name,
                "location": location,
                "reason": reason,
                "ttl": d.ttl,
            }),
        )
    };
    let h = resp.headers_mut();
    for (k, v) in [
        ("x-petrel-action", Some(action_s)),
        ("x-petrel-pop", pop_name.as_deref()),
        ("x-petrel-location", location.as_deref()),
        ("x-petrel-reason", Some(reason)),
    ] {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(k, v);
        }
    }
    resp
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
