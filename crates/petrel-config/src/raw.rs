//! The file as written: serde structs that reject unknown keys and keep spans.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;
/// A spanned list of spanned POP names.
pub type PopList = S<Vec<S<String>>>;
/// Keys (prefixes, country or continent codes) to POP lists.
pub type PopMap = BTreeMap<String, PopList>;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// `[server]`: DNS listeners, the admin API, limits, rate limiting, cookies and dnstap.
    #[serde(default)]
    pub server: Option<S<Server>>,
    /// `[geoip]`: the GeoIP database that locates clients for the geographic policies.
    #[serde(default)]
    pub geoip: Option<S<GeoIp>>,
    /// `[[pop]]`: a point of presence: its addresses, location, weight and health checks.
    #[serde(default)]
    pub pop: Vec<S<Pop>>,
    /// `[[zone]]`: a zone served authoritatively from a zone file.
    #[serde(default)]
    pub zone: Vec<S<Zone>>,
    /// `[[service]]`: a name answered per client with the POPs its policies choose.
    #[serde(default)]
    pub service: Vec<S<Service>>,
    /// `[bgp]`: the BGP sessions, MRT dumps and BMP routers that feed the POPs' routing views, and
    /// the rules for announcements.
    #[serde(default)]
    pub bgp: Option<S<Bgp>>,
    /// `[[anycast]]`: prefixes announced over BGP while a POP is up.
    #[serde(default)]
    pub anycast: Vec<S<Anycast>>,
    /// `[[http]]`: an HTTP front: redirects to the chosen POP, the edge remap and the RUM tag.
    #[serde(default)]
    pub http: Vec<S<Http>>,
    /// `[measure]`: measured latency, for the `latency` policy and for alerts.
    #[serde(default)]
    pub measure: Option<S<Measure>>,
    /// Shared secrets for zone transfers and NOTIFY (TSIG, RFC 8945).
    #[serde(default)]
    pub tsig: Vec<S<Tsig>>,
}

/// `[[tsig]]`: a TSIG key, named as the secondaries name it.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Tsig {
    /// The key's name, a DNS name such as `xfr.example.net.`, the same as on the secondaries.
    pub name: S<String>,
    /// "hmac-sha256" (default) or "hmac-sha512".
    pub algorithm: Option<S<String>>,
    /// The secret in base64 (`keymgr -t NAME`, `tsig-keygen NAME`).
    pub secret: S<String>,
}

/// How measured latency becomes decisions.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Samples lose half their weight in this time, in minutes (1-43,200; default 360).
    pub half_life_mins: Option<S<i64>>,
    /// Effective samples a POP needs in a unit to count as measured (1-1,000,000; default 10).
    pub min_samples: Option<S<i64>>,
    /// Measured POPs a unit needs before the latency policy ranks it (1-1,000; default 2).
    pub min_pops: Option<S<i64>>,
    /// Medians closer than this (ms) are a tie (0-10,000; default 5).
    pub tie_ms: Option<S<i64>>,
    /// How clients are grouped into units: "bgp" (default: the most specific prefix a routing view
    /// has for the client, else the fixed lengths) or "fixed" (always the fixed lengths).
    pub unit: Option<S<String>>,
    /// Length of an IPv4 unit when no route gives one, and always with `unit = "fixed"` (8-32;
    /// default 24).
    pub unit_v4_len: Option<S<i64>>,
    /// Length of an IPv6 unit when no route gives one, and always with `unit = "fixed"` (16-128;
    /// default 48).
    pub unit_v6_len: Option<S<i64>>,
    /// How often aggregates are compiled into the tables, in seconds (1-86,400; default 60).
    pub recompile_secs: Option<S<i64>>,
    /// The most units kept; past it, new units are not tracked (1-100,000,000; default 2,000,000).
    pub max_units: Option<S<i64>>,
    /// The SQLite warehouse every sample is stored in (none: memory only).
    pub database: Option<S<String>>,
    /// Days samples are kept in the warehouse (1-3,650; default 30).
    pub retention_days: Option<S<i64>>,
    /// Days hourly roll-ups of the samples are kept (SQLite only; 0-3,650; default 400; 0: none).
    pub rollup_days: Option<S<i64>>,
    /// A recursive resolver (`address:port`) asked for the reverse DNS of
    /// clients, stored with their samples (default: none).
    pub reverse_dns: Option<S<String>>,
    /// Share of a latency service's answers sent to the next-best POP
    /// (0-10 %; default 2 with [measure.rum], else 0).
    pub explore_percent: Option<S<i64>>,
    /// `[measure.rum]`: the RUM tag, with which browsers measure their latency to each POP.
    pub rum: Option<S<Rum>>,
    /// `[measure.alerts]`: alerts when a network gets slower to a POP.
    pub alerts: Option<S<Alerts>>,
    /// `[measure.clickhouse]`: store samples in ClickHouse instead of SQLite (not together with
    /// `database`).
    pub clickhouse: Option<S<Clickhouse>>,
}

/// The ClickHouse store.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Clickhouse {
    /// ClickHouse's HTTP interface, e.g. `http://127.0.0.1:8123` (plain HTTP; https is not
    /// supported).
    pub url: S<String>,
    /// The database, created with its tables if missing: letters, digits and `_`, not starting
    /// with a digit (default `petrel`).
    pub database: Option<S<String>>,
    /// The ClickHouse user (default `default`).
    pub user: Option<S<String>>,
    /// That user's password (default: empty).
    pub password: Option<S<String>>,
}

/// When a network getting slower to a POP opens an alert.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// How far above its baseline a network's recent median must be, in percent (1-10,000; default
    /// 30).
    pub margin_percent: Option<S<i64>>,
    /// How far above its baseline the recent median must also be, in milliseconds (0-60,000;
    /// default 10).
    pub min_increase_ms: Option<S<i64>>,
    /// Seconds a slowdown must last before an alert opens (0-86,400; default 300).
    pub open_after_secs: Option<S<i64>>,
    /// Seconds back within half the margin before an alert closes (0-86,400; default 600).
    pub close_after_secs: Option<S<i64>>,
    /// Half-life of the baseline, in minutes: how slowly it forgets (1-43,200; default 1,440).
    pub baseline_half_life_mins: Option<S<i64>>,
    /// Half-life of the recent median, in seconds (1-86,400; default 120).
    pub current_half_life_secs: Option<S<i64>>,
    /// Samples the baseline needs before anything is judged (1-1,000,000; default 50).
    pub min_baseline_samples: Option<S<i64>>,
    /// Recent samples needed to judge now (1-1,000,000; default 10).
    pub min_current_samples: Option<S<i64>>,
    /// `http://host:port/path`: every opening and closing is POSTed there as JSON (plain HTTP;
    /// https is not supported).
    pub webhook: Option<S<String>>,
}

/// The RUM tag's settings.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Rum {
    /// Each POP's beacon object, `{pop}` replaced by its name.
    pub url: S<String>,
    /// Where browsers post beacons (default `/rum/beacon`, the page's own
    /// origin).
    pub collector: Option<S<String>>,
    /// Share of page views that measure, 0-100 (default 10).
    pub sample_percent: Option<S<i64>>,
    /// The POPs measured (default: all).
    pub pops: Option<PopList>,
    /// Resolver discovery: a URL whose host is `{id}.` and a name in one
    /// of the zones, e.g. `https://{id}.whoami.example.net/rum/o`.
    pub whoami_url: Option<S<String>>,
    /// What those names resolve to: where that URL is served.
    pub whoami_addresses: Option<S<Vec<S<String>>>>,
}

/// An HTTP front: listeners, who may speak for clients, and rules.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// The front's name, unique, as logs and metrics show it.
    pub name: S<String>,
    /// Addresses (`address:port`) that serve plain HTTP; a front needs these or `tls_listen`.
    #[serde(default)]
    pub listen: Vec<S<String>>,
    /// Addresses (`address:port`) that serve HTTPS with the front's `certificates`.
    #[serde(default)]
    pub tls_listen: Vec<S<String>>,
    /// `[[http.certificates]]`: the certificates `tls_listen` serves, chosen by SNI.
    #[serde(default)]
    pub certificates: Vec<S<HttpCert>>,
    /// Networks (CIDR) whose client header or PROXY header is believed about the client's address
    /// (default: none).
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
    /// The header trusted proxies name the client in: "x-forwarded-for" (default) or "forwarded"
    /// (RFC 7239).
    pub client_header: Option<S<String>>,
    /// Connections from `trusted_proxies` start with a PROXY protocol v1 or v2 header; one without
    /// it is dropped (default false).
    pub proxy_protocol: Option<S<bool>>,
    /// Also answer the remap API (`GET /v1/remap`) for other edge servers (default false).
    pub remap_api: Option<S<bool>>,
    /// Edge mode: the POP this front runs at, needed by `edge` rules.
    pub pop: Option<S<String>>,
    /// Edge mode: the content server requests are proxied to, `host:port` or `http://host:port`.
    pub upstream: Option<S<String>>,
    /// What requests no rule matches get: "not-found" (default), "respond" (with `default_status`
    /// and `default_body`) or "upstream".
    pub default: Option<S<String>>,
    /// With `default = "respond"`: the status sent (200-599; default 404).
    pub default_status: Option<S<i64>>,
    /// With `default = "respond"`: the body sent (default: empty).
    pub default_body: Option<S<String>>,
    /// Log one structured line per request (default false).
    pub access_log: Option<S<bool>>,
    /// Serve the RUM tag (`/rum.js`), the beacon object (`/rum/o`) and the collector (`POST
    /// /rum/beacon`); needs `[measure.rum]` (default false).
    pub rum: Option<S<bool>>,
    /// Connections open at once on this front; more are refused (1-1,000,000; default 10,000).
    pub max_connections: Option<S<i64>>,
    /// Seconds a client has to send a request's headers, also the idle limit between requests on a
    /// kept-alive connection (1-3,600; default 10).
    pub header_timeout_secs: Option<S<i64>>,
    /// Seconds the content server has to answer a proxied request before the client gets 504
    /// (1-86,400; default 60).
    pub request_timeout_secs: Option<S<i64>>,
    /// Largest request headers accepted, in KiB (1-1,024; default 64).
    pub max_header_kb: Option<S<i64>>,
    /// Largest request body passed to the content server, in MiB (0-1,048,576; default 64; 0:
    /// none).
    pub max_body_mb: Option<S<i64>>,
    /// `[[http.rule]]`: the rules requests are matched against; the first match wins.
    #[serde(default)]
    pub rule: Vec<S<HttpRule>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct HttpCert {
    /// A PEM file with the certificate chain.
    pub cert: S<String>,
    /// A PEM file with the certificate's private key.
    pub key: S<String>,
    /// The SNI names it serves (`*.example.net` for any name below).
    pub names: Vec<S<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct HttpRule {
    /// The rule's name, as logs and metrics show it.
    pub name: S<String>,
    /// Host names the rule matches: a name, `*.domain` for any name below the domain, or `*`
    /// (default: any host).
    #[serde(default)]
    pub hosts: Vec<S<String>>,
    /// Matches this exact path. A rule takes at most one of `path`, `path_prefix` and `path_glob`;
    /// with none, any path matches.
    pub path: Option<S<String>>,
    /// Matches paths that start with this, e.g. `/files/`.
    pub path_prefix: Option<S<String>>,
    /// Matches paths against globs separated by `|`, e.g. `*.mp4|*.jpg`; `*` matches any run of
    /// characters and `?` any one character.
    pub path_glob: Option<S<String>>,
    /// The service (its DNS name) whose choice of POP the rule follows.
    pub service: S<String>,
    /// "redirect" (default) or "edge".
    pub action: Option<S<String>>,
    /// The redirect's status: 301, 302 (default), 303, 307 or 308.
    pub status: Option<S<i64>>,
    /// Where clients are sent: a URL template starting with `https://`, `http://` or `/` that
    /// contains `{pop}` and may use `{host}`, `{path}`, `{query}` and `{?query}`.
    pub location: S<String>,
    /// Edge rules: a connection whose RTT is below this, in ms, is served locally (0 or more;
    /// default 80).
    pub rtt_threshold_ms: Option<S<f64>>,
    /// Edge rules: how a redirected request is marked so that it is never moved twice:
    /// `query:NAME` or `cookie:NAME` (default `query:petrel_remap`).
    pub marker: Option<S<String>>,
    /// For `cookie:` markers: the domain the POPs' hosts share.
    pub marker_domain: Option<S<String>>,
}

/// Prefixes announced while a POP is up (see `petrel_anycast`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Anycast {
    /// The block's name, unique, as `petrel anycast` lists it.
    pub name: S<String>,
    /// The POP whose state (health, drains) decides whether the prefixes are announced.
    pub pop: S<String>,
    /// The prefixes announced. Each must lie inside `bgp.owned`, be no longer than
    /// `bgp.max_announce_v4` or `bgp.max_announce_v6`, and not be RPKI-invalid.
    pub prefixes: Vec<S<String>>,
    /// Seconds the prefixes carry GRACEFUL_SHUTDOWN (65535:0) before a drain takes effect
    /// (0-86,400; default 60).
    pub drain_grace_secs: Option<S<i64>>,
    /// What a drain ends in: "withdraw" (default) or "prepend" (the prefixes stay announced,
    /// prepended).
    pub after_drain: Option<S<String>>,
    /// With `after_drain = "prepend"`: how many times our AS is prepended (1-16; default 3).
    pub after_drain_prepend: Option<S<i64>>,
    /// `[[anycast.neighbor]]`: the BGP peers the prefixes are announced to, and what they are
    /// sent.
    #[serde(default)]
    pub neighbor: Vec<S<AnycastNeighbor>>,
}

/// One BGP neighbour of an anycast block and what it is sent.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AnycastNeighbor {
    /// A `[[bgp.peer]]` name.
    pub peer: S<String>,
    /// Only these of the block's prefixes (default: all of them).
    pub prefixes: Option<Vec<S<String>>>,
    /// Extra times our AS is prepended to the path (0-16; default 0).
    pub prepend: Option<S<i64>>,
    /// The MED sent (0-4,294,967,295; default: none).
    pub med: Option<S<i64>>,
    /// Communities sent: `A:B` (each 0-65535), or no-export, no-advertise, no-export-subconfed,
    /// graceful-shutdown or blackhole.
    #[serde(default)]
    pub communities: Vec<S<String>>,
    /// Large communities sent, `A:B:C` (RFC 8092).
    #[serde(default)]
    pub large_communities: Vec<S<String>>,
    /// Extended communities sent: `rt:ASN:N`, `soo:ASN:N`, or `0x` and 16 hex digits.
    #[serde(default)]
    pub extended_communities: Vec<S<String>>,
    /// The next hop: "self" (default: the session's own address) or an IP address.
    pub next_hop: Option<S<String>>,
    /// What happens while the POP is down: "withdraw" (default) or "depref" (the prefixes stay
    /// announced with the `down_` attributes).
    pub on_down: Option<S<String>>,
    /// With `on_down = "depref"`: times our AS is prepended while the POP is down (0-16; default
    /// 3).
    pub down_prepend: Option<S<i64>>,
    /// With `on_down = "depref"`: the MED sent while the POP is down (default: `med`).
    pub down_med: Option<S<i64>>,
    /// With `on_down = "depref"`: the communities sent instead of `communities` while the POP is
    /// down (default: the same).
    pub down_communities: Option<Vec<S<String>>>,
}

/// BGP sessions that feed the POPs' routing views.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    /// Petrel's own AS (the local AS of every session unless a peer says).
    pub asn: Option<S<i64>>,
    /// The BGP identifier, a non-zero IPv4 address; required with `[[bgp.peer]]` sessions.
    pub router_id: Option<S<String>>,
    /// Where to accept passive sessions (address:port).
    pub listen: Option<S<String>>,
    /// Longest wait from a route change to the tables that use it, in ms (10-60,000; default
    /// 1000).
    pub batch_ms: Option<S<i64>>,
    /// At start, the longest wait for every configured feed (sessions, BMP
    /// routers, MRT dumps) to deliver its initial table before the routing
    /// views are published without the missing ones (default 60). Until
    /// then `serve` is "warming": see `service.warming`.
    pub warmup_secs: Option<S<i64>>,
    /// Routes any one feed (session, BMP-monitored peer, MRT peer) may hold unless its own
    /// `max_prefix` says otherwise (default 4,000,000).
    pub max_prefix: Option<S<i64>>,
    /// Attribute memory any one feed may hold, in MiB (1-1,048,576; default 512).
    pub max_attr_mb: Option<S<i64>>,
    /// The only prefixes (and what they cover) petrel may ever announce.
    pub owned: Option<Vec<S<String>>>,
    /// Longest IPv4 prefix that may be announced (8-32; default 24).
    pub max_announce_v4: Option<S<i64>>,
    /// Longest IPv6 prefix that may be announced (16-128; default 48).
    pub max_announce_v6: Option<S<i64>>,
    /// Validated ROA payloads (rpki-client -j or Routinator JSON); announcements they make
    /// RPKI-invalid are refused.
    pub vrp_file: Option<S<String>>,
    /// Least seconds between two health-driven changes of one prefix (0-3,600; default 5).
    pub hold_down_secs: Option<S<i64>>,
    /// `[bgp.damping]`: route-flap damping of our own announcements (RFC 2439).
    pub damping: Option<S<Damping>>,
    /// `[[bgp.peer]]`: a BGP session whose routes feed a POP's view.
    #[serde(default)]
    pub peer: Vec<S<BgpPeer>>,
    /// `[[bgp.mrt]]`: an MRT routing dump loaded into a POP's view.
    #[serde(default)]
    pub mrt: Vec<S<BgpMrt>>,
    /// Where routers connect to stream BMP (RFC 7854), address:port.
    pub bmp_listen: Option<S<String>>,
    /// `[[bgp.bmp]]`: a router streaming BMP, and the POP whose view its peers feed.
    #[serde(default)]
    pub bmp: Vec<S<BgpBmp>>,
}

/// RFC 2439 parameters for our own announcements.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Damping {
    /// Seconds in which a prefix's flap penalty halves (1-86,400; default 900).
    pub half_life_secs: Option<S<i64>>,
    /// Penalty added each time a prefix is withdrawn (1-100,000; default 1000).
    pub penalty: Option<S<i64>>,
    /// A held-back prefix is released once its penalty decays below this; must be below `suppress`
    /// (1-100,000; default 750).
    pub reuse: Option<S<i64>>,
    /// Above this penalty a prefix is held back: withdrawn, or de-preferred where the neighbour's
    /// `on_down` says so (1-100,000; default 2000).
    pub suppress: Option<S<i64>>,
    /// Longest a prefix is held back, in seconds (1-86,400; default 3600).
    pub max_suppress_secs: Option<S<i64>>,
}

/// A router streaming BMP: which of its peers feed which POP's view.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BgpBmp {
    /// The router's address (the source of its BMP connection).
    pub router: S<String>,
    /// The POP whose view the router's monitored peers feed.
    pub pop: S<String>,
    /// Only these monitored peers (addresses); default: all.
    pub peers: Option<Vec<S<String>>>,
    /// "post-policy" (default), "pre-policy" or "loc-rib".
    pub rib: Option<S<String>>,
}

/// A routing dump loaded into a POP's view.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BgpMrt {
    /// TABLE_DUMP_V2 (or TABLE_DUMP) file; plain, gzip or bzip2.
    pub file: S<String>,
    /// The POP whose view the dump's routes are loaded into.
    pub pop: S<String>,
    /// Only these MRT peers (addresses); default: all.
    pub peers: Option<Vec<S<String>>>,
    /// BGP4MP update files replayed on top, in order.
    pub updates: Option<Vec<S<String>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    /// The session's name in logs, metrics and `petrel bgp summary`.
    pub name: S<String>,
    /// The POP whose view this peer's routes belong to.
    pub pop: S<String>,
    /// The peer's address (sessions are opened to it and accepted from it).
    pub address: S<String>,
    /// Its TCP port (default 179).
    pub port: Option<S<i64>>,
    /// The peer's AS.
    pub asn: S<i64>,
    /// Our AS on this session (default `bgp.asn`); equal to `asn`: iBGP.
    pub local_asn: Option<S<i64>>,
    /// The address sessions are opened from (default: the kernel's choice).
    pub local_address: Option<S<String>>,
    /// Only accept the session, never open it (default false).
    pub passive: Option<S<bool>>,
    /// The hold time offered in OPEN, seconds (0, or 3 and more; default 90).
    pub hold_time: Option<S<i64>>,
    /// Seconds between attempts to open the session (1-3,600; default 5).
    pub connect_retry_secs: Option<S<i64>>,
    /// eBGP multihop: the TTL of outgoing packets (1-255; default 1 for eBGP).
    pub multihop: Option<S<i64>>,
    /// GTSM (RFC 5082): send with TTL 255, accept only TTL >= 255 - hops + 1.
    pub ttl_security: Option<S<bool>>,
    /// TCP MD5 signature (RFC 2385).
    pub md5_password: Option<S<String>>,
    /// Close the session with Cease/1 (RFC 4486) above this many prefixes (default:
    /// `bgp.max_prefix`).
    pub max_prefix: Option<S<i64>>,
    /// The address families negotiated: "ipv4", "ipv6" (default both).
    pub families: Option<Vec<S<String>>>,
    /// Receive several paths per prefix (ADD-PATH, RFC 7911; default true).
    pub add_path: Option<S<bool>>,
    /// Hold the start for this peer's initial routes (`bgp.warmup_secs`;
    /// default true). False for a peer that only receives announcements.
    pub warmup: Option<S<bool>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Addresses (`address:port`, IPv6 as `[addr]:port`) that serve DNS over UDP and TCP (default
    /// `127.0.0.1:5300` and `[::1]:5300`).
    pub dns: Option<Vec<S<String>>>,
    /// Address (`address:port`) of the admin API and metrics (default `127.0.0.1:8053`; "" for
    /// none). One that is not loopback needs `admin_token_file`.
    pub admin: Option<S<String>>,
    /// UDP threads per DNS address (1-256; default: one per CPU core).
    pub udp_workers: Option<S<i64>>,
    /// Largest UDP answer, in bytes (512-4,096; default 1232); an answer that does not fit is sent
    /// truncated so that the client retries over TCP.
    pub max_udp_payload: Option<S<i64>>,
    /// Seconds a DNS TCP connection may take to send a query or accept a write before it is closed
    /// (1-3,600; default 10).
    pub tcp_idle_timeout_secs: Option<S<i64>>,
    /// DNS TCP connections open at once across all listeners (1-1,000,000; default 512); at the
    /// limit the longest idle one is closed for a newcomer.
    pub tcp_max_connections: Option<S<i64>>,
    /// A file that keeps operator overrides (drains, forced states) across restarts (default:
    /// none).
    pub state_file: Option<S<String>>,
    /// A file holding the bearer token that admin API changes require.
    pub admin_token_file: Option<S<String>>,
    /// Largest file the config names (zone, CIDR map, GeoIP database, state file, admin token)
    /// that is read, in MiB (1-1,048,576; default 256).
    pub max_file_size_mb: Option<S<i64>>,
    /// Admin API connections open at once (1-10,000; default 64).
    pub admin_max_connections: Option<S<i64>>,
    /// Names (besides IP literals and localhost) the admin API answers to.
    pub admin_hosts: Option<Vec<S<String>>>,
    /// DNS TCP connections open at once from one IPv4 address or IPv6 /64 (1-1,000,000; default
    /// 32).
    pub tcp_max_per_source: Option<S<i64>>,
    /// `[server.rrl]`: response rate limiting of UDP answers (off unless present).
    pub rrl: Option<S<Rrl>>,
    /// `[server.cookies]`: DNS cookies (RFC 7873, RFC 9018).
    pub cookies: Option<S<Cookies>>,
    /// `[server.dnstap]`: a log of queries and responses sent to a dnstap collector.
    pub dnstap: Option<S<Dnstap>>,
}

/// dnstap output.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Dnstap {
    /// A Unix socket path (as `fstrm_capture -u` listens on).
    pub socket: Option<S<String>>,
    /// Or a TCP collector's `address:port`, instead of `socket`.
    pub address: Option<S<String>>,
    /// The server name written in each message (default: the host name).
    pub identity: Option<S<String>>,
    /// Log queries (default true).
    pub log_queries: Option<S<bool>>,
    /// Log responses (default true); a response carries its query too only when queries are not
    /// logged.
    pub log_responses: Option<S<bool>>,
    /// Log one exchange in this many (1-1,000,000; default 1: all).
    pub sample: Option<S<i64>>,
    /// Exchanges waiting for the collector, per DNS thread; past it, exchanges are dropped from
    /// the log, never waited for (16-1,048,576; default 4096).
    pub queue: Option<S<i64>>,
}

/// DNS cookies.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Cookies {
    /// Answer DNS cookies (default true).
    pub enabled: Option<S<bool>>,
    /// Answer UDP queries that carry a client cookie but no valid server cookie with BADCOOKIE and
    /// a fresh cookie (default false).
    pub require: Option<S<bool>>,
    /// The server secret, 32 hex digits (e.g. `openssl rand -hex 16`). The same secret on every
    /// server of a fleet lets each accept the others' cookies (default: a new one per process at
    /// start).
    pub secret: Option<S<String>>,
    /// The former `secret` (32 hex digits), still accepted while a new one spreads; needs
    /// `secret`.
    pub previous_secret: Option<S<String>>,
}

/// Response rate limiting (names as BIND's `rate-limit` options).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Rrl {
    /// Answers per second to one client network for one name and type (0-1,000,000; default 20; 0:
    /// no limit).
    pub responses_per_second: Option<S<i64>>,
    /// NODATA answers per second to one client network for one name and type (0-1,000,000;
    /// default: `responses_per_second`; 0: no limit).
    pub nodata_per_second: Option<S<i64>>,
    /// NXDOMAIN answers per second to one client network (0-1,000,000; default:
    /// `responses_per_second`; 0: no limit).
    pub nxdomains_per_second: Option<S<i64>>,
    /// Referrals per second to one client network (0-1,000,000; default: `responses_per_second`;
    /// 0: no limit).
    pub referrals_per_second: Option<S<i64>>,
    /// Error answers per second to one client network (0-1,000,000; default:
    /// `responses_per_second`; 0: no limit).
    pub errors_per_second: Option<S<i64>>,
    /// Seconds an account remembers a flood's excess, so that a steady flood stays limited
    /// (1-3,600; default 15).
    pub window: Option<S<i64>>,
    /// Every this many limited responses, one is sent truncated so that a real client retries over
    /// TCP (0-10; default 2; 0: none, 1: all).
    pub slip: Option<S<i64>>,
    /// IPv4 clients are counted by networks of this length (8-32; default 24).
    pub ipv4_prefix_length: Option<S<i64>>,
    /// IPv6 clients are counted by networks of this length (16-128; default 56).
    pub ipv6_prefix_length: Option<S<i64>>,
    /// Networks (CIDR) that are never rate limited.
    #[serde(default)]
    pub exempt: Vec<S<String>>,
    /// Accounts kept, rounded up to a power of two (1,024-67,108,864; default 524,288). Set at
    /// start: a reload does not change it.
    pub table_size: Option<S<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct GeoIp {
    /// A MaxMind DB file (e.g. GeoLite2 City) that locates clients for the geographic policies.
    pub database: S<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Pop {
    /// The POP's name in answers' explanations, drains, metrics and maps.
    pub name: S<String>,
    /// The addresses A answers name for this POP.
    #[serde(default)]
    pub ipv4: Vec<S<String>>,
    /// The addresses AAAA answers name for this POP.
    #[serde(default)]
    pub ipv6: Vec<S<String>>,
    /// The POP's latitude in degrees (-90 to 90), for the geographic policies; give it with `lon`.
    pub lat: Option<S<f64>>,
    /// The POP's longitude in degrees (-180 to 180); give it with `lat`.
    pub lon: Option<S<f64>>,
    /// The POP's own AS numbers, for the BGP policies (its distance to a
    /// client's origin AS).
    #[serde(default)]
    pub asns: Vec<S<i64>>,
    /// Its share in the `weighted` policy (0-1,000,000; default 100).
    pub weight: Option<S<i64>>,
    /// What the POP can serve (requests/s or Mbit/s: the operator's unit).
    /// Accepted and kept with the POP; no policy uses it yet.
    pub capacity: Option<S<i64>>,
    /// The state at start: "up" (default), "down" or "drained".
    pub state: Option<S<String>>,
    /// Share of the POP's checks that must be up for the POP to be up (above 0, at most 1; default
    /// 0.5).
    pub up_thresh: Option<S<f64>>,
    /// Below this share of up checks (but at or above up_thresh) the POP is
    /// degraded: it serves with the services' degraded_ttl.
    pub degraded_below: Option<S<f64>>,
    /// Health checks (`[[pop.check]]`).
    #[serde(default)]
    pub check: Vec<S<Check>>,
}

/// A health check of one target of a POP.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// "tcp" (connect), "http", "https", "dns" (a query, a checked answer),
    /// "icmp" (echo; needs CAP_NET_RAW or ping_group_range) or "exec" (a
    /// program).
    #[serde(rename = "type")]
    pub kind: S<String>,
    /// Names the target (`pop/name`) instead of `pop/type:address:port`.
    pub name: Option<S<String>>,
    /// Where to probe; default: the POP's first address.
    pub address: Option<S<String>>,
    /// The port to probe (default 80 for http, 443 for https, 53 for dns;
    /// tcp needs one).
    pub port: Option<S<i64>>,
    /// Time between probes, in ms (100-3,600,000; default 5000).
    pub interval_ms: Option<S<i64>>,
    /// Time between probes while a state change is under way, in ms (100 to `interval_ms`; default
    /// the smaller of 1000 and `interval_ms`).
    pub fast_interval_ms: Option<S<i64>>,
    /// A probe that takes longer than this, in ms, failed (10-600,000 and at most `interval_ms`;
    /// default half the interval).
    pub timeout_ms: Option<S<i64>>,
    /// Successes in a row that make a down target up (1-100; default 2).
    pub rise: Option<S<i64>>,
    /// Failures in a row that make an up target down (1-100; default 3).
    pub fall: Option<S<i64>>,
    /// State before the first result: "up" (default), "down", or "wait" (none: the first result
    /// decides, and `serve` opens its DNS listeners only once it has one).
    pub initial: Option<S<String>>,
    /// http, https: the request method: GET (default), HEAD, POST or OPTIONS.
    pub method: Option<S<String>>,
    /// http, https: the path requested, starting with `/` (default `/`).
    pub path: Option<S<String>>,
    /// http, https: the Host header sent (default: the target's address and port).
    pub host: Option<S<String>>,
    /// http, https: the statuses that count as up (default: any from 200 to 399).
    pub expect_status: Option<Vec<S<i64>>>,
    /// http, https: text the response body must contain.
    pub expect_body: Option<S<String>>,
    /// http, https: how much of the response body is read, in bytes (0-16,777,216; default
    /// 65,536).
    pub max_body_bytes: Option<S<i64>>,
    /// dns: the name asked for (required).
    pub query: Option<S<String>>,
    /// dns: the type asked for: A (default), AAAA, SOA, NS or TXT.
    pub qtype: Option<S<String>>,
    /// dns: the rcode that counts as up: NOERROR (default) or NXDOMAIN.
    pub expect_rcode: Option<S<String>>,
    /// dns: an address the answer must contain.
    pub expect_answer: Option<S<String>>,
    /// https: the server name sent in SNI and checked against the certificate (default: `host`
    /// without its port, else the address).
    pub sni: Option<S<String>>,
    /// https: verify the server's certificate (default true).
    pub verify: Option<S<bool>>,
    /// https: a PEM file of CA certificates to trust instead of the web PKI roots.
    pub ca_file: Option<S<String>>,
    /// exec: program and arguments; exit status 0 means up.
    pub command: Option<S<Vec<S<String>>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone's name, e.g. `example.net.`.
    pub origin: S<String>,
    /// The zone file (RFC 1035 format) with the zone's static records.
    pub file: S<String>,
    /// Sign the zone's answers online (DNSSEC).
    pub dnssec: Option<S<ZoneDnssec>>,
    /// Zone transfers to secondaries (AXFR, IXFR) and NOTIFY.
    pub transfer: Option<S<ZoneTransfer>>,
}

/// `[zone.transfer]`: who may transfer the zone's static data.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ZoneTransfer {
    /// Networks that may transfer (AXFR, IXFR over TCP).
    pub allow: S<Vec<S<String>>>,
    /// TSIG keys (`[[tsig]]` names) a request must be signed with; none:
    /// the networks alone decide.
    pub keys: Option<Vec<S<String>>>,
    /// Secondaries (address:port) sent a NOTIFY (RFC 1996) when a reload
    /// changes the zone's serial.
    pub notify: Option<Vec<S<String>>>,
    /// The TSIG key NOTIFY messages are signed with.
    pub notify_key: Option<S<String>>,
}

/// `[zone.dnssec]`: the keys a zone is signed with.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ZoneDnssec {
    /// Keys that sign, as BIND's file stems (`Kexample.net.+013+12345`,
    /// naming the `.key` and `.private` files). A key with the SEP flag
    /// (257) signs the DNSKEY RRset and is published as CDS and CDNSKEY;
    /// one without (256) signs the rest. A single SEP key signs everything
    /// (a CSK).
    pub keys: S<Vec<S<String>>>,
    /// Keys only published in the DNSKEY RRset (a ZSK before it signs or
    /// after it stopped, in a rollover); their `.key` file alone is read.
    pub publish: Option<Vec<S<String>>>,
    /// Days a signature is valid (default 14); signatures are made again
    /// after half of that.
    pub validity_days: Option<S<i64>>,
    /// Publish CDS and CDNSKEY for the SEP keys (RFC 7344; default true).
    pub cds: Option<S<bool>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The name answered, e.g. `www.example.net.`; it must lie inside a configured zone.
    pub name: S<String>,
    /// The candidate POPs (at most 256; default: every POP).
    pub pops: Option<Vec<S<String>>>,
    /// TTL of answers, in seconds (0-86,400; default 30).
    pub ttl: Option<S<i64>>,
    /// How many POPs an answer names (1-16; default 1).
    pub answers: Option<S<i64>>,
    /// What is answered when no candidate is usable: "all" (default: every candidate), "none" (an
    /// empty NOERROR) or "backup" (the `backup` POPs).
    pub fallback: Option<S<String>>,
    /// With `fallback = "backup"`: the POPs to answer when no candidate is usable.
    pub backup: Option<PopList>,
    /// CNAME mode: answer with a CNAME to this name, `{pop}` replaced by the chosen POP's name
    /// (e.g. `{pop}.cdn.example.net.`).
    pub cname: Option<S<String>>,
    /// TTL of answers naming a degraded POP, in seconds (0-86,400; default: min(ttl, 5)).
    pub degraded_ttl: Option<S<i64>>,
    /// While `serve` waits for the routing views at start (`bgp.warmup_secs`),
    /// a service with BGP policies answers from its other policies
    /// ("policies") or with SERVFAIL so that resolvers retry ("servfail").
    /// Default: "servfail" when nothing but super-sparrow, as-map and
    /// weighted policies would order the POPs, "policies" otherwise.
    pub warming: Option<S<String>>,
    /// The policies that rank the candidates, in order, each a table with a `type`. Without any,
    /// services use `blended` once there are routing views.
    #[serde(default)]
    pub policy: Vec<S<Policy>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy: cidr, geo-nearest, geo-map, priority, default, weighted, super-sparrow,
    /// blended, as-map or latency.
    #[serde(rename = "type")]
    pub kind: S<String>,
    /// cidr: a file of `prefix pop[,pop...]` lines.
    pub file: Option<S<String>>,
    /// cidr: prefixes to POP lists; as-map: AS numbers (`"64500"` or `"AS64500"`) to POP lists.
    pub entries: Option<S<PopMap>>,
    /// geo-nearest, blended: distances within this many km count as equal (0-20,000; default 0).
    pub band_km: Option<S<i64>>,
    /// geo-map: two-letter upper-case country codes to ordered POP lists.
    pub countries: Option<PopMap>,
    /// geo-map: two-letter upper-case continent codes to ordered POP lists, for clients whose
    /// country has no entry.
    pub continents: Option<PopMap>,
    /// priority, default: the POPs, in order.
    pub pops: Option<PopList>,
    /// weighted: "hash" (default) or "random"
    pub mode: Option<S<String>>,
    /// weighted, mode "hash": IPv4 clients are hashed by their network of this length, so that one
    /// network keeps one POP (0-32; default 24).
    pub hash_v4_len: Option<S<i64>>,
    /// weighted, mode "hash": IPv6 clients are hashed by their network of this length (0-128;
    /// default 48).
    pub hash_v6_len: Option<S<i64>>,
    /// blended: km added per AS hop beyond the shortest (0-20,000; default 500).
    pub hop_km: Option<S<i64>>,
}
