//! The admin HTTP API and metrics, on a thread and runtime of their own so
//! that neither a scrape nor a reload can slow the DNS path.

use crate::bgp::board::BgpCollector;
use crate::bgp::BgpHandle;
use crate::health::{HealthBoard, HealthCollector};
use crate::metrics::{DnsCollector, DnsMetrics};
use crate::reload::{GenerationCollector, Reloader};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use petrel_api::{
    BgpSummary, ErrorBody, ExplainResult, Health, OverrideResult, PopView, Readiness, ReloadResult, RouteResult,
    Status, ViewSummary,
};
use petrel_director::{Blame, DirectorError, OverrideAction, Publisher, Reader};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the API reads and changes: each part through its own handle.
pub struct Handles {
    pub publisher: Arc<Publisher>,
    pub reloader: Arc<Reloader>,
    pub dns: Arc<DnsMetrics>,
    pub health: Arc<HealthBoard>,
    pub bgp: Option<BgpHandle>,
    pub http: Arc<crate::http::metrics::HttpMetrics>,
    pub measure: Arc<crate::measure::Measurements>,
}

struct AdminState {
    reader: Reader,
    publisher: Arc<Publisher>,
    reloader: Arc<Reloader>,
    health: Arc<HealthBoard>,
    bgp: Option<BgpHandle>,
    registry: Registry,
    /// Required for changes when set.
    token: Option<String>,
    /// Names the API answers to besides IP literals and localhost.
    hosts: Vec<String>,
    /// The latest generation's id, for streams of POP states.
    generations: tokio::sync::watch::Receiver<u64>,
    measure: Arc<crate::measure::Measurements>,
}

/// How the admin listener is reached and bounded.
pub struct Listen {
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub hosts: Vec<String>,
    pub max_connections: usize,
}

/// How long a client may take to send a request's headers, and how long
/// an idle keep-alive connection stays (hyper restarts the same timer while
/// it waits for the next request).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest any admin connection lives, whatever it does: a client that
/// stops reading a large answer cannot hold its slot longer.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

type St = State<Arc<AdminState>>;

pub fn spawn(h: Handles, listen: Listen) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(listen.addr)?;
    listener.set_nonblocking(true)?;
    let reader = h.publisher.reader();
    // Each board renders its own metrics.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(DnsCollector(h.dns)));
    let refused = Arc::new(AdminCounters::default());
    registry.register_collector(Box::new(AdminCollector(refused.clone())));
    registry.register_collector(Box::new(GenerationCollector {
        reloader: h.reloader.clone(),
        reader: reader.clone(),
    }));
    registry.register_collector(Box::new(HealthCollector(h.health.clone())));
    registry.register_collector(Box::new(crate::http::metrics::HttpCollector(h.http.clone())));
    registry.register_collector(Box::new(crate::measure::MeasureCollector(h.measure.clone())));
    if let Some(b) = &h.bgp {
        registry.register_collector(Box::new(BgpCollector(b.board.clone())));
        registry.register_collector(Box::new(crate::bgp::announce::AnycastCollector(b.anycast.clone())));
    }
    let (gen_tx, generations) = tokio::sync::watch::channel(reader.load().id);
    h.publisher.subscribe(move |g, _| {
        gen_tx.send_replace(g.id);
    });
    let state = Arc::new(AdminState {
        measure: h.measure,
        generations,
        reader,
        publisher: h.publisher,
        reloader: h.reloader,
        health: h.health,
        bgp: h.bgp,
        registry,
        token: listen.token,
        hosts: listen.hosts,
    });
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("admin runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("admin listener");
            accept_loop(listener, router(state), listen.max_connections, refused).await;
        });
    })?;
    Ok(())
}

/// Counters of the admin listener's own bounds.
#[derive(Debug, Default)]
struct AdminCounters {
    full: std::sync::atomic::AtomicU64,
    accept_errors: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct AdminCollector(Arc<AdminCounters>);

impl prometheus_client::collector::Collector for AdminCollector {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use std::sync::atomic::Ordering::Relaxed;
        for (name, help, v) in [
            (
                "petrel_admin_connections_refused",
                "Admin API connections closed at once: admin_max_connections were open",
                self.0.full.load(Relaxed),
            ),
            (
                "petrel_admin_accept_errors",
                "Failed accepts on the admin listener (e.g. no descriptor left)",
                self.0.accept_errors.load(Relaxed),
            ),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            ConstCounter::new(v).encode(me)?;
        }
        Ok(())
    }
}

/// Serve connections one task each, at most `max` at a time; each is bounded
/// by the header timeout and its lifetime. Failing accepts back off.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, max: usize, counters: Arc<AdminCounters>) {
    use std::sync::atomic::Ordering::Relaxed;
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let mut backoff = crate::quiet::AcceptBackoff::new("admin");
    let mut full_log = crate::quiet::Every::new(Duration::from_secs(10));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                counters.accept_errors.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff.failed(&e, std::time::Instant::now())).await;
                continue;
            }
        };
        backoff.accepted();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            counters.full.fetch_add(1, Relaxed);
            if let Some(n) = full_log.hit(std::time::Instant::now()) {
                tracing::warn!(
                    max,
                    suppressed = n,
                    "admin API connection limit reached; closing new connections"
                );
            }
            drop(stream);
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(permit);
        });
    }
}

/// Host and Origin checks before anything else (see `admin_guard`).
async fn guard(State(st): St, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let h = req.headers();
    if let Some(host) = h.get(header::HOST) {
        let ok = host
            .to_str()
            .is_ok_and(|v| crate::admin_guard::host_allowed(v, &st.hosts));
        if !ok {
            return error(
                StatusCode::FORBIDDEN,
                "the Host header names neither an IP address, localhost, nor one of server.admin_hosts",
            );
        }
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|v| crate::admin_guard::origin_allowed(v, &st.hosts));
        if !ok {
            return error(
                StatusCode::FORBIDDEN,
                "requests from web pages of other sites are refused",
            );
        }
    }
    next.run(req).await
}

fn unauthorized() -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "this change needs `Authorization: Bearer <admin token>`",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"petrel\""),
    );
    r
}

fn router(state: Arc<AdminState>) -> Router {
    // The operations petrel-api documents, each with its handler.
    let routes: [(&str, &str, MethodRouter<Arc<AdminState>>); 18] = [
        ("GET", "/metrics", get(metrics)),
        ("GET", "/api/v1/openapi.json", get(openapi)),
        ("GET", "/api/v1/status", get(status)),
        ("GET", "/api/v1/ready", get(ready)),
        ("POST", "/api/v1/reload", post(reload)),
        ("GET", "/api/v1/explain", get(explain)),
        ("GET", "/api/v1/pops", get(pops)),
        ("GET", "/api/v1/health", get(health)),
        ("GET", "/api/v1/bgp/summary", get(bgp_summary)),
        ("GET", "/api/v1/bgp/route", get(bgp_route)),
        ("GET", "/api/v1/anycast", get(anycast)),
        ("GET", "/api/v1/pops/stream", get(pops_stream)),
        ("POST", "/api/v1/pops/{name}/{action}", post(pop_action)),
        ("POST", "/api/v1/targets/{action}", post(target_action)),
        ("POST", "/api/v1/measure/import", post(measure_import)),
        ("GET", "/api/v1/alerts", get(alerts)),
        ("GET", "/api/v1/measure/top", get(measure_top)),
        ("GET", "/api/v1/measure/resolvers", get(measure_resolvers)),
    ];
    let mut routed: Vec<(String, String)> = routes.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    routed.sort();
    debug_assert_eq!(
        routed,
        petrel_api::operations(),
        "the router and the OpenAPI document disagree"
    );
    let mut r = Router::new();
    for (_, path, handler) in routes {
        r = r.route(path, handler);
    }
    r.fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /api/v1/openapi.json") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(ErrorBody { error: msg.into() })).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], petrel_api::openapi_json()).into_response()
}

/// The status an error of the decision core gets: by who is to blame.
fn director_error(e: &DirectorError) -> Response {
    let code = match e.blame() {
        Blame::Client if e.is_not_found() => StatusCode::NOT_FOUND,
        Blame::Client => StatusCode::BAD_REQUEST,
        Blame::Config => StatusCode::UNPROCESSABLE_ENTITY,
        Blame::Peer => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, e.to_string())
}

async fn metrics(State(st): St) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &st.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics"),
    }
}

fn pop_views(reader: &Reader) -> Vec<PopView> {
    let g = reader.load();
    g.config()
        .pops
        .iter()
        .enumerate()
        .map(|(i, p)| PopView {
            name: p.name.clone(),
            state: g.states[i],
            reason: g.reasons[i].clone(),
            configured: p.state,
            ipv4: p.ipv4.iter().map(|a| a.to_string()).collect(),
            ipv6: p.ipv6.iter().map(|a| a.to_string()).collect(),
        })
        .collect()
}

async fn status(State(st): St) -> Response {
    let g = st.reader.load();
    Json(Status {
        generation: g.id,
        generation_age_seconds: st.reloader.generation_age(),
        config: st.reloader.config_path().display().to_string(),
        zones: g.zones().apex_names(),
        services: g.services().iter().map(|s| s.name.clone()).collect(),
        pops: pop_views(&st.reader),
        last_reload: st.reloader.last(),
        state: serving_state(g.warming).into(),
        warming: warming_feeds(&st, g.warming),
    })
    .into_response()
}

fn serving_state(warming: bool) -> &'static str {
    if warming {
        "warming"
    } else {
        "serving"
    }
}

fn warming_feeds(st: &AdminState, warming: bool) -> Vec<String> {
    match (&st.bgp, warming) {
        (Some(b), true) => b.board.warming(),
        _ => Vec::new(),
    }
}

async fn ready(State(st): St) -> Response {
    let warming = st.reader.load().warming;
    let body = Json(Readiness {
        ready: !warming,
        state: serving_state(warming).into(),
        waiting: warming_feeds(&st, warming),
    });
    let code = if warming {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, body).into_response()
}

async fn reload(State(st): St, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let reloader = st.reloader.clone();
    match tokio::task::spawn_blocking(move || reloader.reload()).await {
        Ok(Ok(id)) => Json(ReloadResult {
            ok: true,
            generation: Some(id),
            errors: Vec::new(),
        })
        .into_response(),
        Ok(Err(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(ReloadResult {
                ok: false,
                generation: None,
                errors,
            }),
        )
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reload task failed"),
    }
}

#[derive(serde::Deserialize)]
struct ExplainQ {
    service: Option<String>,
    client: Option<String>,
    qtype: Option<String>,
}

async fn explain(State(st): St, Query(q): Query<ExplainQ>) -> Response {
    let (Some(service), Some(client)) = (q.service, q.client) else {
        return error(
            StatusCode::BAD_REQUEST,
            "parameters `service` and `client` are required",
        );
    };
    let r = st.reader.load().explain(&service, &client, q.qtype.as_deref());
    match r {
        Ok(mut e) => {
            // The route prefixes come from the RIB, which holds the routes.
            let routing = e
                .steps
                .iter()
                .any(|s| matches!(s.facts, petrel_api::StepFacts::Routing { .. }));
            if let (true, Some(b), Ok(c)) = (routing, &st.bgp, petrel_types::Prefix::parse_lenient(&client)) {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let msg = crate::bgp::feed::RibMsg::Route {
                    client: c,
                    view: None,
                    reply: tx,
                };
                if b.rib.send(msg).await.is_ok() {
                    if let Ok(Ok(views)) = tokio::time::timeout(std::time::Duration::from_secs(2), rx).await {
                        e.set_view_prefixes(|name| {
                            views.iter().find(|v| v.view == name).and_then(|v| v.prefix.clone())
                        });
                    }
                }
            }
            let mut text = e.to_text();
            // The answer's POPs are also reached over anycast: say how
            // their prefixes stand.
            let anycast: Vec<petrel_api::AnycastRoute> = match &st.bgp {
                Some(b) => b
                    .anycast
                    .snapshot()
                    .routes
                    .into_iter()
                    .filter(|r| e.answer.contains(&r.pop))
                    .collect(),
                None => Vec::new(),
            };
            for r in &anycast {
                text.push_str(&format!(
                    "anycast: {} ({}) to {}: {}, {}\n",
                    r.prefix, r.pop, r.neighbor, r.standing, r.why
                ));
            }
            Json(ExplainResult {
                explanation: e,
                text,
                anycast,
            })
            .into_response()
        }
        // An unknown service is a bad question here, as it always was.
        Err(e) if e.blame() == Blame::Client => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => director_error(&e),
    }
}

async fn health(State(st): St) -> Response {
    Json(Health {
        pops: pop_views(&st.reader),
        targets: st.health.statuses(),
    })
    .into_response()
}

async fn bgp_summary(State(st): St) -> Response {
    let Some(b) = &st.bgp else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "BGP is not running");
    };
    let (peers, publish) = b.board.snapshot();
    let g = st.reader.load();
    let views = g
        .built
        .bgp
        .iter()
        .flat_map(|d| d.views.iter())
        .map(|v| ViewSummary {
            name: v.name.clone(),
            routes: v.routes,
        })
        .collect();
    Json(BgpSummary {
        configured: g.config().bgp.is_some(),
        peers,
        views,
        publish,
    })
    .into_response()
}

#[derive(serde::Deserialize)]
struct RouteQ {
    addr: Option<String>,
    view: Option<String>,
}

async fn bgp_route(State(st): St, Query(q): Query<RouteQ>) -> Response {
    let Some(addr) = q.addr else {
        return error(
            StatusCode::BAD_REQUEST,
            "parameter `addr` (an address or prefix) is required",
        );
    };
    let client = match petrel_types::Prefix::parse_lenient(&addr) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("`{addr}`: {e}")),
    };
    let Some(b) = &st.bgp else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "BGP is not running");
    };
    if let Some(v) = &q.view {
        if !st.reader.load().config().pops.iter().any(|p| &p.name == v) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("no view `{v}` (views are named after POPs)"),
            );
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let msg = crate::bgp::feed::RibMsg::Route {
        client,
        view: q.view,
        reply: tx,
    };
    if b.rib.send(msg).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the RIB is not running");
    }
    match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
        Ok(Ok(views)) => Json(RouteResult {
            client: client.to_string(),
            views,
        })
        .into_response(),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "the RIB did not answer in time"),
    }
}

async fn pops(State(st): St) -> Response {
    Json(pop_views(&st.reader)).into_response()
}

/// Changes need the admin token when the config names one.
fn authorized(st: &AdminState, headers: &HeaderMap) -> bool {
    match &st.token {
        None => true,
        Some(want) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::admin_guard::bearer)
            .is_some_and(|got| constant_time_eq(got.as_bytes(), want.as_bytes())),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn apply(st: Arc<AdminState>, name: String, action: String) -> Response {
    let action: OverrideAction = match action.parse() {
        Ok(a) => a,
        Err(msg) => return error(StatusCode::NOT_FOUND, msg),
    };
    let publisher = st.publisher.clone();
    let n = name.clone();
    match tokio::task::spawn_blocking(move || set_override(&publisher, &n, action)).await {
        Ok(Ok(id)) => Json(OverrideResult {
            ok: true,
            name,
            action: format!("{action:?}"),
            generation: id,
        })
        .into_response(),
        Ok(Err(e)) => director_error(&e),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "override task failed"),
    }
}

/// An override, recorded in the state file the serving config names (if
/// any) before it takes effect.
fn set_override(p: &Publisher, name: &str, action: OverrideAction) -> Result<u64, DirectorError> {
    let file = p.load().config().server.state_file.clone();
    let id = p
        .set_override(name, action, |o| match &file {
            Some(f) => crate::sources::write_overrides(f, o),
            None => Ok(()),
        })
        .inspect_err(|e| {
            // Refused rather than applied unrecorded: a drain that a restart
            // would silently undo is worse than one the operator retries.
            tracing::error!(name, action = action.as_str(), error = %e, "operator override refused");
        })?;
    tracing::info!(name, action = action.as_str(), generation = id, "operator override");
    Ok(id)
}

async fn anycast(State(st): St) -> Response {
    match &st.bgp {
        Some(b) => Json(b.anycast.snapshot()).into_response(),
        None => Json(petrel_api::AnycastStatus::default()).into_response(),
    }
}

async fn alerts(State(st): St) -> Response {
    let names: Vec<String> = st.reader.load().config().pops.iter().map(|p| p.name.clone()).collect();
    Json(st.measure.alerts(&names)).into_response()
}

#[derive(serde::Deserialize)]
struct TopQ {
    by: Option<String>,
    pop: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

/// The warehouse and the start of the span a query asks about (`since`,
/// else `default_ms` back), or the error to answer (returned at once: its
/// size does not matter).
#[allow(clippy::result_large_err)]
fn warehouse_since(
    st: &AdminState,
    since: Option<&str>,
    default_ms: u64,
) -> Result<(Arc<crate::warehouse::Warehouse>, u64), Response> {
    if st.reader.load().config().measure.is_none() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "measurements are off: the config has no [measure] section",
        ));
    }
    let Some(w) = st.measure.warehouse().cloned() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "measurements are not stored: set measure.database or [measure.clickhouse] to keep them",
        ));
    };
    match since.map_or(Ok(default_ms), petrel_measure::sample::parse_duration_ms) {
        Ok(ms) => Ok((w, crate::measure::unix_ms().saturating_sub(ms))),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, format!("parameter `since`: {e}"))),
    }
}

async fn measure_top(State(st): St, Query(q): Query<TopQ>) -> Response {
    use crate::warehouse::TopBy;
    let (w, since) = match warehouse_since(&st, q.since.as_deref(), 3_600_000) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(by) = q.by.as_deref().and_then(TopBy::parse) else {
        return error(
            StatusCode::BAD_REQUEST,
            "parameter `by` must be one of asn, prefix, country, city, resolver, rdns",
        );
    };
    if let Some(p) = &q.pop {
        if st.reader.load().config().pop_index(p).is_none() {
            return error(StatusCode::BAD_REQUEST, format!("no POP named `{p}`"));
        }
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    match w.top(by, q.pop.clone(), since, limit).await {
        Ok((rows, from_rollups)) => Json(petrel_api::MeasureTop {
            by: by.as_str().into(),
            since_unix_ms: since,
            from_rollups,
            rows,
        })
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("warehouse: {e}")),
    }
}

#[derive(serde::Deserialize)]
struct ResolversQ {
    since: Option<String>,
    limit: Option<u32>,
}

async fn measure_resolvers(State(st): St, Query(q): Query<ResolversQ>) -> Response {
    let (w, since) = match warehouse_since(&st, q.since.as_deref(), 86_400_000) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    match w.resolvers(since, limit).await {
        Ok(resolvers) => Json(petrel_api::ResolversResult {
            since_unix_ms: since,
            resolvers,
        })
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("warehouse: {e}")),
    }
}

/// JSON lines of connection RTTs from other servers (at most 2 MiB a
/// request: axum's body limit answers 413 past it).
async fn measure_import(State(st): St, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let g = st.reader.load();
    let Some(conf) = g.config().measure.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "measurements are off: the config has no [measure] section",
        );
    };
    let m = st.measure.clone();
    let r = tokio::task::spawn_blocking(move || {
        let pops = &g.config().pops;
        m.import(&g, &conf, &body, crate::measure::unix_ms(), |name| {
            pops.iter()
                .position(|p| p.name == name)
                .map(|i| petrel_types::PopIdx(i as u16))
        })
    })
    .await;
    let (result, samples, keyed) = match r {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // Answered once stored, when there is a warehouse.
    if let Some(w) = st.measure.warehouse() {
        let rows = crate::measure::rows(&st.reader.load(), &samples, &keyed, None, st.measure.rdns());
        if let Err(e) = w.store(rows, Vec::new()).await {
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("not stored: {e}"));
        }
    }
    Json(result).into_response()
}

async fn pop_action(State(st): St, headers: HeaderMap, Path((name, action)): Path<(String, String)>) -> Response {
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    apply(st, name, action).await
}

#[derive(serde::Deserialize)]
struct TargetQ {
    name: Option<String>,
}

/// Targets are named `pop/type:address:port`; the name goes in the query.
async fn target_action(
    State(st): St,
    headers: HeaderMap,
    Path(action): Path<String>,
    Query(q): Query<TargetQ>,
) -> Response {
    if !authorized(&st, &headers) {
        return unauthorized();
    }
    let Some(name) = q.name else {
        return error(
            StatusCode::BAD_REQUEST,
            "parameter `name` (the check target) is required",
        );
    };
    if matches!(action.as_str(), "drain" | "undrain") {
        return error(
            StatusCode::BAD_REQUEST,
            "targets can be forced up or down or cleared; drain applies to POPs",
        );
    }
    apply(st, name, action).await
}

#[derive(serde::Deserialize)]
struct StreamQ {
    count: Option<u64>,
}

fn pop_states(g: &petrel_director::Generation) -> petrel_api::PopStates {
    petrel_api::PopStates {
        generation: g.id,
        pops: g
            .config()
            .pops
            .iter()
            .zip(g.states.iter())
            .map(|(p, s)| petrel_api::PopStateLine {
                name: p.name.clone(),
                state: *s,
            })
            .collect(),
    }
}

/// POP states now, then at each new generation (see petrel-api).
async fn pops_stream(State(st): St, Query(q): Query<StreamQ>) -> Response {
    let rx = st.generations.clone();
    let reader = st.reader.clone();
    let limit = q.count.unwrap_or(u64::MAX);
    let lines = futures_util::stream::unfold((rx, 0u64), move |(mut rx, n)| {
        let reader = reader.clone();
        async move {
            if n >= limit {
                return None;
            }
            if n > 0 {
                rx.changed().await.ok()?;
            }
            rx.borrow_and_update();
            let mut line = serde_json::to_vec(&pop_states(&reader.load())).ok()?;
            line.push(b'\n');
            Some((Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line)), (rx, n + 1)))
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}
