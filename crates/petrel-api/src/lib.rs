//! The admin API's model: every request and response of `/api/v1`, as
//! serde types that the server fills and the CLI reads, and the OpenAPI
//! document generated from them ([`ApiDoc`], served at
//! `/api/v1/openapi.json`). Later APIs (dashboard, tenants) extend it here.
//!
//! The paths below are the contract: the server routes exactly these (a
//! debug build checks it at start) and the tests call each one.

#![forbid(unsafe_code)]

use petrel_health::TargetState;
pub use petrel_mapping::{
    ClientPlace, DecidedBy, ExplainPop, ExplainStep, Explanation, HttpUse, PopDistance, PopHops, PopLatency, PopScore,
    StepFacts, ViewPath,
};
use petrel_types::PopState;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// Every error: what went wrong, in a sentence.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A POP as the serving generation sees it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PopView {
    pub name: String,
    /// What it may be used for now.
    pub state: PopState,
    /// Why (operator, config, health); empty when up.
    pub reason: String,
    /// The state the config asks for.
    pub configured: PopState,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
}

/// How the last reload went.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReloadStatus {
    pub ok: bool,
    pub at_unix: u64,
    /// The generation serving after it.
    pub generation: u64,
    /// Errors (rejected) or warnings (accepted).
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub generation: u64,
    pub generation_age_seconds: f64,
    /// The config file served.
    pub config: String,
    pub zones: Vec<String>,
    pub services: Vec<String>,
    pub pops: Vec<PopView>,
    pub last_reload: Option<ReloadStatus>,
    /// "serving", or "warming" while the routing views load at start
    /// (`bgp.warmup_secs`).
    pub state: String,
    /// While warming: the feeds whose initial routes are not in yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warming: Vec<String>,
}

/// Whether the server answers every service from all it was configured
/// to know (for load balancers and orchestrators).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// "serving" or "warming".
    pub state: String,
    /// While warming: the feeds whose initial routes are not in yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
}

/// The answer to a reload: the new generation, or why the old one stays.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReloadResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// An operator override, applied.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OverrideResult {
    pub ok: bool,
    pub name: String,
    /// Drain, Undrain, ForceUp, ForceDown or Clear.
    pub action: String,
    pub generation: u64,
}

/// An explanation, with its text form for people.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ExplainResult {
    #[serde(flatten)]
    pub explanation: Explanation,
    pub text: String,
    /// The anycast prefixes of the POPs in the answer, towards each
    /// neighbour (the other channel those POPs are reached through).
    #[serde(default)]
    pub anycast: Vec<AnycastRoute>,
}

/// The last known state of one health-check target.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TargetStatus {
    /// `pop/type:address:port` (or `pop/exec:program`).
    pub name: String,
    pub pop: String,
    pub state: TargetState,
    /// When `state` was entered (Unix seconds).
    pub since_unix: u64,
    pub probes: u64,
    pub last_ok: Option<bool>,
    pub last_latency_ms: Option<f64>,
    pub last_detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub pops: Vec<PopView>,
    pub targets: Vec<TargetStatus>,
}

/// One line of `GET /api/v1/pops/stream`: every POP's state as of a
/// generation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PopStates {
    pub generation: u64,
    pub pops: Vec<PopStateLine>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PopStateLine {
    pub name: String,
    pub state: PopState,
}

/// How one anycast prefix stands towards one BGP neighbour.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AnycastRoute {
    /// The `[[anycast]]` block.
    pub service: String,
    /// The POP whose state drives it.
    #[serde(default)]
    pub pop: String,
    pub prefix: String,
    /// The `[[bgp.peer]]` it goes to.
    pub neighbor: String,
    /// announced, depreferred, draining, drained, withdrawn, suppressed or
    /// refused.
    pub standing: String,
    /// Since when (Unix seconds).
    pub since_unix: u64,
    /// Until when a drain's grace period or a damping suppression lasts.
    pub until_unix: Option<u64>,
    pub why: String,
    /// Whether the neighbour's session is up (it holds what it was sent).
    pub session_up: bool,
    /// Why the neighbour's session last went down (a NOTIFICATION it sent
    /// us, e.g. 3/8 for a next hop it refuses), while it is down.
    #[serde(default)]
    pub session_error: Option<String>,
    /// Why the last change could not be put on the wire to this neighbour
    /// (a family or next hop the session cannot carry).
    #[serde(default)]
    pub not_sent: Option<String>,
    /// What is (or would be) sent; none when withdrawn.
    pub attributes: Option<AnycastAttributes>,
    /// RFC 2439 figure of merit now.
    pub penalty: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AnycastAttributes {
    pub prepend: u8,
    pub med: Option<u32>,
    /// `A:B`.
    pub communities: Vec<String>,
    /// `A:B:C`.
    pub large_communities: Vec<String>,
    /// 16 hex digits.
    pub extended_communities: Vec<String>,
    /// None: the session's own address.
    pub next_hop: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AnycastStatus {
    pub routes: Vec<AnycastRoute>,
    /// UPDATE messages sent to neighbours, and health-driven changes of a
    /// prefix (after hold-down and damping).
    pub updates_sent: u64,
    pub flips: u64,
}

/// One BGP session, BMP-monitored peer, BMP router or MRT pseudo-peer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PeerStatus {
    pub name: String,
    pub view: String,
    pub address: String,
    pub remote_as: u32,
    pub local_as: u32,
    pub state: String,
    /// When `state` was entered (Unix seconds).
    pub since_unix: u64,
    /// The peer's BGP identifier and the hold time agreed, once up.
    pub router_id: Option<String>,
    pub hold_time: Option<u16>,
    /// Routes (prefix and path id) the peer has in its view.
    pub prefixes: u64,
    pub updates_received: u64,
    pub established_transitions: u64,
    /// Why the session last went down.
    pub last_error: String,
    /// RFC 7606 treat-as-withdraw and attribute-discard events.
    pub errors_7606: u64,
    /// Bytes of attributes its routes hold, each route counted whole
    /// (limited by `bgp.max_attr_mb`).
    #[serde(default)]
    pub attr_bytes: u64,
    /// ADD-PATH paths ignored for being past the per-prefix bound.
    #[serde(default)]
    pub paths_refused: u64,
}

/// Routing-view publications.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PublishStats {
    pub count: u64,
    /// First change of the last batch to its served generation.
    pub last_delay_ms: f64,
    /// Compiling the views and the tables that use them, last batch.
    pub last_build_ms: f64,
    /// Routes in the published views.
    pub routes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ViewSummary {
    pub name: String,
    /// Best routes in the serving tables.
    pub routes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BgpSummary {
    /// Whether the config has a `[bgp]` section.
    pub configured: bool,
    pub peers: Vec<PeerStatus>,
    pub views: Vec<ViewSummary>,
    pub publish: PublishStats,
}

/// One route of a view, as `bgp route` prints it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RouteLine {
    pub best: bool,
    pub peer: String,
    pub as_path: String,
    pub next_hop: String,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub origin: String,
    pub communities: Vec<String>,
    pub path_id: Option<u32>,
}

/// One view's routes for the most specific prefix covering an address.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ViewRoutes {
    pub view: String,
    /// None: no route covers the address.
    pub prefix: Option<String>,
    pub routes: Vec<RouteLine>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RouteResult {
    pub client: String,
    pub views: Vec<ViewRoutes>,
}

/// An alert: a network (a map unit, or an origin AS) got slower to a POP
/// than its baseline.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// `unit` or `asn`.
    pub by: String,
    /// The map unit (`198.51.100.0/24`) or the AS (`AS64500`).
    pub key: String,
    pub pop: String,
    /// `open`, or `recovering` (back to normal, not yet for long enough).
    pub state: String,
    /// When it opened (Unix ms).
    pub opened_unix_ms: u64,
    pub baseline_ms: f64,
    /// The recent median.
    pub current_ms: f64,
    /// Changes of the POP's best AS path towards this network in the hour
    /// before the alert opened (and since), newest last.
    pub path_changes: Vec<PathChangeView>,
}

/// A routing view's best AS path for a prefix changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PathChangeView {
    pub at_unix_ms: u64,
    pub view: String,
    pub prefix: String,
    /// Empty: there was no route.
    pub old_path: String,
    /// Empty: the route was withdrawn.
    pub new_path: String,
}

/// An alert opening or closing.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    pub at_unix_ms: u64,
    /// `unit` or `asn`.
    pub by: String,
    pub key: String,
    pub pop: String,
    /// `opened` or `closed`.
    pub event: String,
    pub baseline_ms: f64,
    pub current_ms: f64,
    /// For an opening: the path changes that preceded it.
    pub path_changes: Vec<PathChangeView>,
}

/// The alerts open now, and the latest openings and closings.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AlertsResult {
    pub open: Vec<AlertView>,
    /// The last 100 events, oldest first.
    pub recent: Vec<AlertEvent>,
}

/// The networks with the most samples since a time, per POP, from the
/// warehouse.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct MeasureTop {
    /// `asn`, `prefix` (the map unit), `country`, `city` or `resolver`.
    pub by: String,
    pub since_unix_ms: u64,
    /// From the hourly roll-ups (the span reaches past the raw samples'
    /// retention): medians and p90s are sample-weighted means of the
    /// hourly ones, and clients are counted once per hour.
    #[serde(default)]
    pub from_rollups: bool,
    /// Most samples first.
    pub rows: Vec<TopRow>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TopRow {
    /// `AS64500`, `198.51.100.0/24`, `NL`, ...
    pub key: String,
    pub pop: String,
    pub samples: u64,
    /// Distinct client addresses.
    pub clients: u64,
    pub median_ms: f64,
    pub p90_ms: f64,
}

/// Resolver discovery, joined: which clients use which resolver.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ResolversResult {
    pub since_unix_ms: u64,
    /// Most beacons first.
    pub resolvers: Vec<ResolverRow>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ResolverRow {
    pub resolver: String,
    /// The resolver's origin AS in the routing views.
    pub asn: Option<u32>,
    /// Beacons whose whoami name this resolver asked for.
    pub beacons: u64,
    /// Distinct client map units behind it.
    pub client_units: u64,
    /// Share of those queries that carried ECS (0 to 1).
    pub ecs_share: f64,
    /// Median distance between the clients and the resolver (GeoIP).
    pub median_distance_km: Option<f64>,
    /// The client units seen most, up to five.
    pub top_client_units: Vec<String>,
}

/// What an import of measurements took and refused.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    /// Samples taken.
    pub accepted: u64,
    /// Lines refused, by reason (`malformed`, `unknown_pop`,
    /// `impossible_value`, `oversized`, ...); nothing of them is kept.
    pub refused: std::collections::BTreeMap<String, u64>,
}

/// The contract: one function per operation, for the document only.
#[allow(dead_code)]
mod paths {
    use super::*;

    /// The serving generation, zones, services, POPs and the last reload.
    #[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = Status)))]
    pub fn status() {}

    /// Readiness: 200 once the routing views are in (or `bgp.warmup_secs`
    /// passed), 503 while the server warms up. Needs no token.
    #[utoipa::path(get, path = "/api/v1/ready", responses(
        (status = 200, body = Readiness, description = "serving"),
        (status = 503, body = Readiness, description = "warming: the routing views are loading"),
    ))]
    pub fn ready() {}

    /// Re-read the config (like SIGHUP); needs the admin token when set.
    #[utoipa::path(post, path = "/api/v1/reload", responses(
        (status = 200, body = ReloadResult, description = "the new generation serves"),
        (status = 422, body = ReloadResult, description = "rejected: the previous generation keeps serving"),
        (status = 401, body = ErrorBody),
    ))]
    pub fn reload() {}

    /// The decision for one client and why.
    #[utoipa::path(get, path = "/api/v1/explain",
        params(
            ("service" = String, Query, description = "a mapped service name"),
            ("client" = String, Query, description = "an address or prefix"),
            ("qtype" = Option<String>, Query, description = "A, AAAA or CNAME"),
        ),
        responses((status = 200, body = ExplainResult), (status = 400, body = ErrorBody)))]
    pub fn explain() {}

    /// POPs with their state and why.
    #[utoipa::path(get, path = "/api/v1/pops", responses((status = 200, body = Vec<PopView>)))]
    pub fn pops() {}

    /// POPs and every health-check target.
    #[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health)))]
    pub fn health() {}

    /// BGP sessions, BMP and MRT peers, views and publications.
    #[utoipa::path(get, path = "/api/v1/bgp/summary", responses(
        (status = 200, body = BgpSummary),
        (status = 503, body = ErrorBody, description = "BGP is not running"),
    ))]
    pub fn bgp_summary() {}

    /// The routes covering an address in each view (or one), best first.
    #[utoipa::path(get, path = "/api/v1/bgp/route",
        params(
            ("addr" = String, Query, description = "an address or prefix"),
            ("view" = Option<String>, Query, description = "one view (named after its POP)"),
        ),
        responses((status = 200, body = RouteResult), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
    pub fn bgp_route() {}

    /// Every anycast prefix towards every neighbour: announced, withdrawn,
    /// de-preferred, draining, damped or refused, since when and why.
    #[utoipa::path(get, path = "/api/v1/anycast", responses((status = 200, body = AnycastStatus)))]
    pub fn anycast() {}

    /// POP states as they change: one JSON line (`PopStates`) at once and
    /// one per new generation (health flips, drains, reloads), for as long
    /// as the connection lasts (the admin API closes connections after 60
    /// s; followers reconnect and get the current states first).
    #[utoipa::path(get, path = "/api/v1/pops/stream",
        params(("count" = Option<u64>, Query, description = "end after this many lines")),
        responses((status = 200, content_type = "application/x-ndjson", body = PopStates)))]
    pub fn pops_stream() {}

    /// Drain, undrain, force up or down, or clear a POP; needs the admin
    /// token when set. Survives restarts with `server.state_file`.
    #[utoipa::path(post, path = "/api/v1/pops/{name}/{action}",
        params(
            ("name" = String, Path, description = "a POP"),
            ("action" = String, Path, description = "drain, undrain, force-up, force-down or clear"),
        ),
        responses((status = 200, body = OverrideResult), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
    pub fn pop_action() {}

    /// Force a health-check target up or down, or clear that.
    #[utoipa::path(post, path = "/api/v1/targets/{action}",
        params(
            ("action" = String, Path, description = "force-up, force-down or clear"),
            ("name" = String, Query, description = "the target, `pop/type:address:port`"),
        ),
        responses((status = 200, body = OverrideResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
    pub fn target_action() {}

    /// Import connection RTTs measured by other servers, one JSON object
    /// per line: `{"time":1733560000.123,"client":"192.0.2.1","pop":"ams",
    /// "rtt_us":23400}` (`time` in Unix seconds and optional, `rtt_ms` may
    /// stand for `rtt_us`); what nginx logs with `$msec`, `$remote_addr`
    /// and `$tcpinfo_rtt`. Needs the admin token when set. Each line is
    /// taken or refused whole; the answer counts both.
    #[utoipa::path(post, path = "/api/v1/measure/import",
        request_body(content = String, content_type = "application/x-ndjson"),
        responses((status = 200, body = ImportResult), (status = 401, body = ErrorBody),
            (status = 413, body = ErrorBody), (status = 503, body = ErrorBody, description = "no [measure] section")))]
    pub fn measure_import() {}

    /// Latency alerts: the ones open now and the latest events (empty
    /// without `[measure.alerts]`).
    #[utoipa::path(get, path = "/api/v1/alerts", responses((status = 200, body = AlertsResult)))]
    pub fn alerts() {}

    /// The networks with the most samples per POP since a time, from the
    /// warehouse: sample and client counts, median and p90 RTT.
    #[utoipa::path(get, path = "/api/v1/measure/top",
        params(
            ("by" = String, Query, description = "asn, prefix, country, city, resolver or rdns"),
            ("pop" = Option<String>, Query, description = "only this POP"),
            ("since" = Option<String>, Query, description = "how far back: 90s, 30m, 1h (default), 7d"),
            ("limit" = Option<u32>, Query, description = "rows (default 20, at most 1000)"),
        ),
        responses((status = 200, body = MeasureTop), (status = 400, body = ErrorBody),
            (status = 503, body = ErrorBody, description = "no [measure] section or no warehouse")))]
    pub fn measure_top() {}

    /// Resolver discovery: per resolver, the beacons joined with it, the
    /// client networks behind it, whether it sends ECS and how far it is
    /// from its clients (from the warehouse).
    #[utoipa::path(get, path = "/api/v1/measure/resolvers",
        params(
            ("since" = Option<String>, Query, description = "how far back: 90s, 30m, 1h, 24h (default)"),
            ("limit" = Option<u32>, Query, description = "rows (default 50, at most 1000)"),
        ),
        responses((status = 200, body = ResolversResult), (status = 400, body = ErrorBody),
            (status = 503, body = ErrorBody, description = "no [measure] section or no warehouse")))]
    pub fn measure_resolvers() {}

    /// This document.
    #[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "OpenAPI 3 document")))]
    pub fn openapi() {}

    /// Prometheus metrics (OpenMetrics text).
    #[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
    pub fn metrics() {}
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "petrel admin API",
        description = "Operate a running petrel: state, explanations, overrides, BGP."
    ),
    paths(
        paths::status,
        paths::ready,
        paths::reload,
        paths::explain,
        paths::pops,
        paths::health,
        paths::bgp_summary,
        paths::bgp_route,
        paths::anycast,
        paths::pops_stream,
        paths::pop_action,
        paths::target_action,
        paths::measure_import,
        paths::alerts,
        paths::measure_top,
        paths::measure_resolvers,
        paths::openapi,
        paths::metrics,
    )
)]
pub struct ApiDoc;

/// The document as served.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the document serialises")
}

/// Every documented (method, path), e.g. `("GET", "/api/v1/status")`.
pub fn operations() -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(&openapi_json()).expect("valid JSON");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            out.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_operation_and_schema() {
        let ops = operations();
        assert_eq!(ops.len(), 18, "{ops:?}");
        assert!(ops.contains(&("POST".into(), "/api/v1/pops/{name}/{action}".into())));
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for s in [
            "Status",
            "Readiness",
            "PopView",
            "Explanation",
            "StepFacts",
            "BgpSummary",
            "TargetStatus",
            "PopState",
        ] {
            assert!(schemas.contains_key(s), "no schema {s}: {:?}", schemas.keys());
        }
    }

    #[test]
    fn responses_round_trip() {
        let r = ReloadResult {
            ok: false,
            generation: None,
            errors: vec!["x".into()],
        };
        let t = serde_json::to_string(&r).unwrap();
        assert_eq!(t, r#"{"ok":false,"errors":["x"]}"#);
        let back: ReloadResult = serde_json::from_str(&t).unwrap();
        assert_eq!(back.errors, ["x"]);
    }
}
