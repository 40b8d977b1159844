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
use petrel_http::client::{client_address, rtt_is_the_clients, Header};
use petrel_http::remap::{remap, Action as Remap, Reason};
use petrel_http::remap_api::{split_uri, Answer, Query};
use petrel_http::rules::{Action, Fallback, Marker, Redirect};
use petrel_http::template::Vars;
use petrel_types::ServiceIdx;
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

/// The decision core's POPs for `client`, best first.
fn decide(g: &Generation, service: ServiceIdx, client: IpAddr) -> Decision {
    let mut d = Decision::default();
    g.decide_address(service, client, &mut d);
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
    let g = shared.reader.load();
    let Some(front) = g.config().http.iter().find(|f| *f.name == *conn.front) else {
        // The front was removed by a reload: its listeners are closed, and
        // a connection accepted before gets this.
        return full(StatusCode::SERVICE_UNAVAILABLE, "this front is no longer configured\n");
    };
    let client = client_of(&req, &conn, front);
    let (path, query) = (req.uri().path(), req.uri().query());
    if front.remap_api && path == "/v1/remap" {
        let original = req.headers().get("x-original-uri").and_then(|v| v.to_str().ok());
        let resp = remap_api(&g, front, query, original);
        shared.metrics.record(&conn.front, "remap-api", Outcome::Api, None);
        return resp;
    }
    let rum = if front.rum { super::rum::route(path) } else { None };
    let req = if let Some(path) = rum {
        match super::rum::serve(req, path, client, &g, &shared).await {
            Ok(resp) => {
                shared.metrics.record(&conn.front, "rum", Outcome::Rum, None);
                return resp;
            }
            Err(req) => req,
        }
    } else {
        req
    };
    let (path, query) = (req.uri().path(), req.uri().query());
    let host = host_of(&req);
    let matched = petrel_http::rules::find_serving(&front.rules, host, path, front.upstream.is_some());
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
                    None if d.withheld => {
                        // Warming up without routing views (`warming =
                        // "servfail"`): come back once they are in.
                        let mut r = full(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the server is starting: its routing views are loading\n",
                        );
                        r.headers_mut()
                            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                        Plan::Respond(r, Outcome::NoPop, None)
                    }
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
                let rtt = if rtt_is_the_clients(client, conn.client, conn.peer.ip()) {
                    super::tcp_info::rtt_ms(conn.fd())
                } else {
                    None
                };
                // The connection's RTT is a latency sample of its client at
                // this POP, once per connection (later requests on it would
                // repeat the same smoothed figure).
                if let (Some(r), Some(pop)) = (rtt, front.pop) {
                    if g.config().measure.is_some() && !conn.sampled.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        shared.measure.offer(petrel_measure::Sample {
                            at_ms: crate::measure::unix_ms(),
                            client,
                            pop,
                            rtt_us: (r * 1000.0)
                                .round()
                                .clamp(1.0, f64::from(petrel_measure::sample::MAX_RTT_US))
                                as u32,
                            kind: petrel_measure::Kind::Passive,
                            resolver: None,
                        });
                    }
                }
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
    shared.metrics.record(&conn.front, rule_name, outcome, rtt);
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

/// `GET /v1/remap?...` (see [`petrel_http::remap_api`]): the edge decision
/// for another server's request, from the service's edge rule (or its
/// redirect rule, with no RTT threshold). Every answer carries
/// `X-Petrel-Action`, `X-Petrel-Pop`, `X-Petrel-Location` and
/// `X-Petrel-Reason`, so that `auth_request` can pass them on.
fn remap_api(g: &Generation, front: &HttpConf, query: Option<&str>, original_uri: Option<&str>) -> Response<Body> {
    let bad = |why: String| json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": why }));
    let q = match Query::parse(query.unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return bad(e),
    };
    let want = q.service.trim_end_matches('.');
    let Some(sidx) = g
        .config()
        .services
        .iter()
        .position(|s| s.name.trim_end_matches('.').eq_ignore_ascii_case(want))
        .map(|i| ServiceIdx(i as u16))
    else {
        return bad(format!("no service named `{}`", q.service));
    };
    let here = match &q.pop {
        None => None,
        Some(n) => match g.config().pops.iter().position(|x| x.name == *n) {
            Some(i) => Some(petrel_types::PopIdx(i as u16)),
            None => return bad(format!("no POP named `{n}`")),
        },
    };
    let Some((redirect, threshold, marker)) = petrel_http::rules::remap_rule(&front.rules, sidx) else {
        return bad(format!("no rule of this front serves `{}`", q.service));
    };
    let d = decide(g, sidx, q.client);
    let (orig_path, orig_query) = match original_uri.map(split_uri) {
        Some((p, q)) => (Some(p), q),
        None => (None, None),
    };
    let marked = q.marked || marker.is_some_and(|m| m.present(orig_query, std::iter::empty()));
    // Without an RTT the caller asks where the client is best served.
    let (action, reason) = remap(d.pops(), here, q.rtt_ms.or(Some(f64::INFINITY)), threshold, marked);
    let reason = if q.rtt_ms.is_none() && reason == Reason::Slow {
        "no RTT given: the best POP for the client"
    } else {
        reason.as_str()
    };
    let (action_s, pop, location) = match action {
        Remap::Stay => ("stay", here.or(d.pops().first().copied()), None),
        Remap::Redirect(pop) => {
            let mut loc = String::with_capacity(128);
            let mut extra = String::new();
            if let Some(Marker::Query(n)) = marker {
                extra.push_str(n);
                extra.push_str("=1");
            }
            redirect.location.render(
                &Vars {
                    pop: &g.config().pops[pop.index()].name,
                    host: q.host.as_deref().unwrap_or(""),
                    path: q.path.as_deref().or(orig_path).unwrap_or("/"),
                    query: if q.path.is_some() { None } else { orig_query },
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
    let mut resp = if q.auth_reply {
        let status = if location.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NO_CONTENT
        };
        full(status, Bytes::new())
    } else {
        let mut b = String::with_capacity(192);
        Answer {
            action: action_s,
            pop: pop_name,
            location: location.as_deref(),
            reason,
            ttl: d.ttl,
        }
        .write_json(&mut b);
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
