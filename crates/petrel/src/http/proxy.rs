//! The edge's reverse proxy to the POP's own content server: bodies stream
//! both ways (never buffered), status, headers and trailers pass through,
//! hop-by-hop headers stay on their hop (RFC 9110 §7.6.1), and upstream
//! connections are pooled.

use super::{handler::full, Body, ConnInfo, Shared};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use petrel_config::HttpConf;
use petrel_http::client::{to_upstream, Header};
use std::time::{Duration, Instant};

/// Headers that belong to one connection, never forwarded (RFC 9110
/// §7.6.1, and the non-standard ones proxies also drop).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

pub async fn forward(req: Request<Incoming>, conn: &ConnInfo, front: &HttpConf, shared: &Shared) -> Response<Body> {
    let Some(upstream) = &front.upstream else {
        return full(StatusCode::BAD_GATEWAY, "no upstream is configured\n");
    };
    // The body limit: a declared length over it is refused at once; a
    // body without one is cut (and the upstream request fails) when it
    // passes the limit.
    let limit = front.max_body_mb.saturating_mul(1 << 20);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return full(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, limit as usize).boxed_unsync();
    let mut req = Request::from_parts(parts, body);
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = match format!("http://{upstream}{pq}").parse() {
        Ok(u) => u,
        Err(_) => return full(StatusCode::BAD_REQUEST, "bad request target\n"),
    };
    // The URI's authority (HTTP/2, or the absolute form) wins over Host
    // (RFC 9112 §3.2.2, RFC 9113 §8.3.1), and the upstream is told the host
    // the rules matched, without userinfo.
    if let Some(v) = req.uri().authority().and_then(|a| {
        let hp = match a.port_u16() {
            Some(p) => format!("{}:{p}", a.host()),
            None => a.host().to_string(),
        };
        HeaderValue::from_str(&hp).ok()
    }) {
        req.headers_mut().insert(header::HOST, v);
    }
    let from_h2 = req.version() == hyper::Version::HTTP_2;
    *req.uri_mut() = uri;
    *req.version_mut() = hyper::Version::HTTP_11;
    let h = req.headers_mut();
    strip_hop_by_hop(h);
    // HTTP/2 may split Cookie into several fields; HTTP/1.1 wants one,
    // joined with "; " (RFC 9113 §8.2.3).
    if from_h2 && h.get_all(header::COOKIE).iter().count() > 1 {
        let joined: Vec<&str> = h
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if let Ok(v) = HeaderValue::from_str(&joined.join("; ")) {
            h.insert(header::COOKIE, v);
        }
    }
    forwarded_headers(h, conn);
    h.append(header::VIA, HeaderValue::from_static("1.1 petrel"));
    let t0 = Instant::now();
    let timeout = Duration::from_secs(front.request_timeout_secs);
    match tokio::time::timeout(timeout, shared.upstream.request(req)).await {
        Ok(Ok(resp)) => {
            shared.metrics.upstream(t0.elapsed(), true);
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .append(header::VIA, HeaderValue::from_static("1.1 petrel"));
            Response::from_parts(parts, body.boxed_unsync())
        }
        Ok(Err(e)) => {
            shared.metrics.upstream(t0.elapsed(), false);
            tracing::debug!(upstream = %upstream, error = %e, "upstream request failed");
            full(StatusCode::BAD_GATEWAY, "the content server did not answer\n")
        }
        Err(_) => {
            shared.metrics.upstream(t0.elapsed(), false);
            full(
                StatusCode::GATEWAY_TIMEOUT,
                "the content server did not answer in time\n",
            )
        }
    }
}

/// X-Forwarded-For and Forwarded for the upstream, as
/// `petrel_http::client::to_upstream` composes them.
fn forwarded_headers(h: &mut HeaderMap, conn: &ConnInfo) {
    for (name, which) in [
        ("x-forwarded-for", Header::XForwardedFor),
        ("forwarded", Header::Forwarded),
    ] {
        let prev: Vec<&str> = h.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        match to_upstream(which, &prev, conn.trusted, conn.client).and_then(|v| HeaderValue::from_str(&v).ok()) {
            Some(v) => {
                h.insert(name, v);
            }
            None => {
                h.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}
