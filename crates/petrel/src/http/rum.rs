//! The RUM endpoints of a front with `rum = true`: the tag (`/rum.js`),
//! the beacon object each POP serves (`/rum/o`), and the collector
//! (`POST /rum/beacon`), whose beacons become latency samples of the
//! client that sent them.

use super::{handler::full, Body, Shared};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use petrel_director::Generation;
use petrel_measure::beacon::{parse_beacon, Refused, MAX_BEACON_BYTES};
use std::net::IpAddr;

const TIMING: header::HeaderName = header::HeaderName::from_static("timing-allow-origin");

fn cors(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    // Any page may measure and report: beacons carry no credentials, and
    // the client is the connection's, never the page's word.
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(TIMING, HeaderValue::from_static("*"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The RUM path `path` is, if it is one.
pub fn route(path: &str) -> Option<&'static str> {
    ["/rum.js", "/rum/o", "/rum/beacon"].into_iter().find(|p| *p == path)
}

/// The response for a RUM path (from [`route`]); the request back when
/// the method is not one the path takes.
pub async fn serve(
    req: Request<Incoming>,
    path: &'static str,
    client: IpAddr,
    g: &Generation,
    shared: &Shared,
) -> Result<Response<Body>, Request<Incoming>> {
    let m = req.method().clone();
    match (path, m) {
        ("/rum.js", Method::GET | Method::HEAD) => {
            let Some(tag) = g.config().measure.as_ref().and_then(|m| m.rum.as_ref()) else {
                return Ok(full(StatusCode::NOT_FOUND, "no [measure.rum] section\n"));
            };
            let mut r = full(StatusCode::OK, petrel_measure::rum::script(tag));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            Ok(r)
        }
        ("/rum/o", Method::GET | Method::HEAD) => {
            let mut r = cors(full(StatusCode::OK, "ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(r)
        }
        ("/rum/beacon", Method::OPTIONS) => {
            let mut r = cors(full(StatusCode::NO_CONTENT, ""));
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            Ok(r)
        }
        ("/rum/beacon", Method::POST) => Ok(cors(beacon(req, client, g, shared).await)),
        _ => Err(req),
    }
}

async fn beacon(req: Request<Incoming>, client: IpAddr, g: &Generation, shared: &Shared) -> Response<Body> {
    let Some(conf) = g.config().measure.as_ref() else {
        return full(StatusCode::SERVICE_UNAVAILABLE, "measurements are off\n");
    };
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BEACON_BYTES);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                shared.measure.refuse(Refused::Oversized);
                return full(StatusCode::PAYLOAD_TOO_LARGE, "beacon too large\n");
            }
            return full(StatusCode::BAD_REQUEST, "beacon body not read\n");
        }
    };
    let pops = &g.config().pops;
    let parsed = parse_beacon(&body, client, crate::measure::unix_ms(), |name| {
        pops.iter()
            .position(|p| p.name == name)
            .map(|i| petrel_types::PopIdx(i as u16))
    });
    match parsed {
        Ok(mut b) => {
            // Resolver discovery: the resolver that asked for this
            // beacon's name is the client's.
            let joined = match (&conf.whoami, b.id.as_deref()) {
                (Some(_), Some(id)) => shared.measure.whoami_take(id).map(|a| (id.to_string(), a)),
                _ => None,
            };
            if let Some((_, asked)) = &joined {
                for s in &mut b.samples {
                    s.resolver = Some(asked.resolver);
                }
            }
            let keyed = shared.measure.ingest(g, conf, &b.samples);
            // Acknowledged only once stored, when there is a warehouse.
            if let Some(w) = shared.measure.warehouse() {
                let rows = crate::measure::rows(g, &b.samples, &keyed, b.id.as_deref(), shared.measure.rdns());
                let resolvers = joined
                    .iter()
                    .map(|(id, a)| crate::measure::resolver_row(g, crate::measure::unix_ms(), id, client, a))
                    .collect();
                if let Err(e) = w.store(rows, resolvers).await {
                    return full(StatusCode::SERVICE_UNAVAILABLE, format!("beacon not stored: {e}\n"));
                }
            }
            full(StatusCode::NO_CONTENT, "")
        }
        Err(why) => {
            shared.measure.refuse(why);
            full(StatusCode::BAD_REQUEST, format!("beacon refused: {}\n", why.label()))
        }
    }
}
