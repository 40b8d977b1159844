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
    #[serde(default)]
    pub server: Option<S<Server>>,
    #[serde(default)]
    pub geoip: Option<S<GeoIp>>,
    #[serde(default)]
    pub pop: Vec<S<Pop>>,
    #[serde(default)]
    pub zone: Vec<S<Zone>>,
    #[serde(default)]
    pub service: Vec<S<Service>>,
    #[serde(default)]
    pub bgp: Option<S<Bgp>>,
    #[serde(default)]
    pub anycast: Vec<S<Anycast>>,
    #[serde(default)]
    pub http: Vec<S<Http>>,
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
    /// Samples lose half their weight in this time (minutes).
    pub half_life_mins: Option<S<i64>>,
    /// Effective samples a POP needs in a unit to count as measured.
    pub min_samples: Option<S<i64>>,
    /// Measured POPs a unit needs before the latency policy ranks it.
    pub min_pops: Option<S<i64>>,
    /// Medians closer than this (ms) are a tie.
    pub tie_ms: Option<S<i64>>,
    /// "bgp" (the client's BGP prefix, else the fixed lengths) or "fixed".
    pub unit: Option<S<String>>,
    pub unit_v4_len: Option<S<i64>>,
    pub unit_v6_len: Option<S<i64>>,
    /// How often aggregates are compiled into the tables (seconds).
    pub recompile_secs: Option<S<i64>>,
    /// The most units kept; past it, new units are not tracked.
    pub max_units: Option<S<i64>>,
    /// The SQLite warehouse every sample is stored in (none: memory only).
    pub database: Option<S<String>>,
    /// Days samples are kept in the warehouse (default 30).
    pub retention_days: Option<S<i64>>,
    /// Days hourly roll-ups of the samples are kept (SQLite; default 400,
    /// 0: none).
    pub rollup_days: Option<S<i64>>,
    /// A recursive resolver (`address:port`) asked for the reverse DNS of
    /// clients, stored with their samples (default: none).
    pub reverse_dns: Option<S<String>>,
    /// Share of a latency service's answers sent to the next-best POP
    /// (0-10 %; default 2 with [measure.rum], else 0).
    pub explore_percent: Option<S<i64>>,
    pub rum: Option<S<Rum>>,
    pub alerts: Option<S<Alerts>>,
    /// Store samples in ClickHouse instead of SQLite.
    pub clickhouse: Option<S<Clickhouse>>,
}

/// The ClickHouse store.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Clickhouse {
    /// Its HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: S<String>,
    /// Created if missing (default `petrel`).
    pub database: Option<S<String>>,
    pub user: Option<S<String>>,
    pub password: Option<S<String>>,
}

/// When a network getting slower to a POP opens an alert.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// How much slower than its baseline, in percent (default 30) ...
    pub margin_percent: Option<S<i64>>,
    /// ... and in milliseconds (default 10), a unit's median must be.
    pub min_increase_ms: Option<S<i64>>,
    /// For how long before an alert opens (default 300) ...
    pub open_after_secs: Option<S<i64>>,
    /// ... and how long back to normal before it closes (default 600).
    pub close_after_secs: Option<S<i64>>,
    /// How slowly the baseline forgets (default 1440) ...
    pub baseline_half_life_mins: Option<S<i64>>,
    /// ... and how fast the current median does (default 120).
    pub current_half_life_secs: Option<S<i64>>,
    /// Samples the baseline needs before anything is judged (default 50).
    pub min_baseline_samples: Option<S<i64>>,
    /// Recent samples needed to judge now (default 10).
    pub min_current_samples: Option<S<i64>>,
    /// `http://host:port/path`: every opening and closing is POSTed there
    /// as JSON.
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
    pub name: S<String>,
    #[serde(default)]
    pub listen: Vec<S<String>>,
    #[serde(default)]
    pub tls_listen: Vec<S<String>>,
    #[serde(default)]
    pub certificates: Vec<S<HttpCert>>,
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
    /// "x-forwarded-for" (default) or "forwarded".
    pub client_header: Option<S<String>>,
    pub proxy_protocol: Option<S<bool>>,
    pub remap_api: Option<S<bool>>,
    /// Edge mode: the POP this front runs at, and its content server.
    pub pop: Option<S<String>>,
    pub upstream: Option<S<String>>,
    /// "not-found" (default), "respond" (with default_status and
    /// default_body) or "upstream".
    pub default: Option<S<String>>,
    pub default_status: Option<S<i64>>,
    pub default_body: Option<S<String>>,
    pub access_log: Option<S<bool>>,
    /// Serve the RUM tag (`/rum.js`), the beacon object (`/rum/o`) and the
    /// collector (`POST /rum/beacon`).
    pub rum: Option<S<bool>>,
    pub max_connections: Option<S<i64>>,
    pub header_timeout_secs: Option<S<i64>>,
    pub request_timeout_secs: Option<S<i64>>,
    pub max_header_kb: Option<S<i64>>,
    pub max_body_mb: Option<S<i64>>,
    #[serde(default)]
    pub rule: Vec<S<HttpRule>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct HttpCert {
    pub cert: S<String>,
    pub key: S<String>,
    /// The SNI names it serves (`*.example.net` for any name below).
    pub names: Vec<S<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct HttpRule {
    pub name: S<String>,
    #[serde(default)]
    pub hosts: Vec<S<String>>,
    /// One of: the exact path, a prefix, a glob (`*.mp4|*.jpg`).
    pub path: Option<S<String>>,
    pub path_prefix: Option<S<String>>,
    pub path_glob: Option<S<String>>,
    pub service: S<String>,
    /// "redirect" (default) or "edge".
    pub action: Option<S<String>>,
    pub status: Option<S<i64>>,
    pub location: S<String>,
    pub rtt_threshold_ms: Option<S<f64>>,
    pub marker: Option<S<String>>,
    /// For `cookie:` markers: the domain the POPs' hosts share.
    pub marker_domain: Option<S<String>>,
}

/// Prefixes announced while a POP is up (see `petrel_anycast`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Anycast {
    pub name: S<String>,
    pub pop: S<String>,
    pub prefixes: Vec<S<String>>,
    /// Seconds of GRACEFUL_SHUTDOWN before a drain takes effect.
    pub drain_grace_secs: Option<S<i64>>,
    /// "withdraw" (default) or "prepend".
    pub after_drain: Option<S<String>>,
    pub after_drain_prepend: Option<S<i64>>,
    #[serde(default)]
    pub neighbor: Vec<S<AnycastNeighbor>>,
}

/// One BGP neighbour of an anycast block and what it is sent.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AnycastNeighbor {
    /// A `[[bgp.peer]]` name.
    pub peer: S<String>,
    pub prefixes: Option<Vec<S<String>>>,
    pub prepend: Option<S<i64>>,
    pub med: Option<S<i64>>,
    #[serde(default)]
    pub communities: Vec<S<String>>,
    #[serde(default)]
    pub large_communities: Vec<S<String>>,
    #[serde(default)]
    pub extended_communities: Vec<S<String>>,
    pub next_hop: Option<S<String>>,
    /// "withdraw" (default) or "depref".
    pub on_down: Option<S<String>>,
    pub down_prepend: Option<S<i64>>,
    pub down_med: Option<S<i64>>,
    pub down_communities: Option<Vec<S<String>>>,
}

/// BGP sessions that feed the POPs' routing views.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    /// Petrel's own AS (the local AS of every session unless a peer says).
    pub asn: Option<S<i64>>,
    pub router_id: Option<S<String>>,
    /// Where to accept passive sessions (address:port).
    pub listen: Option<S<String>>,
    /// Longest wait from a route change to the tables that use it.
    pub batch_ms: Option<S<i64>>,
    /// At start, the longest wait for every configured feed (sessions, BMP
    /// routers, MRT dumps) to deliver its initial table before the routing
    /// views are published without the missing ones (default 60). Until
    /// then `serve` is "warming": see `service.warming`.
    pub warmup_secs: Option<S<i64>>,
    /// Routes any one feed (session, BMP-monitored peer, MRT peer) may
    /// hold unless its own `max_prefix` says otherwise.
    pub max_prefix: Option<S<i64>>,
    /// Attribute memory any one feed may hold, in MiB.
    pub max_attr_mb: Option<S<i64>>,
    /// The only prefixes (and what they cover) petrel may ever announce.
    pub owned: Option<Vec<S<String>>>,
    pub max_announce_v4: Option<S<i64>>,
    pub max_announce_v6: Option<S<i64>>,
    /// Validated ROA payloads (rpki-client -j or Routinator JSON).
    pub vrp_file: Option<S<String>>,
    /// Least seconds between two health-driven changes of one prefix.
    pub hold_down_secs: Option<S<i64>>,
    pub damping: Option<S<Damping>>,
    #[serde(default)]
    pub peer: Vec<S<BgpPeer>>,
    #[serde(default)]
    pub mrt: Vec<S<BgpMrt>>,
    /// Where routers connect to stream BMP (RFC 7854), address:port.
    pub bmp_listen: Option<S<String>>,
    #[serde(default)]
    pub bmp: Vec<S<BgpBmp>>,
}

/// RFC 2439 parameters for our own announcements.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Damping {
    pub half_life_secs: Option<S<i64>>,
    pub penalty: Option<S<i64>>,
    pub reuse: Option<S<i64>>,
    pub suppress: Option<S<i64>>,
    pub max_suppress_secs: Option<S<i64>>,
}

/// A router streaming BMP: which of its peers feed which POP's view.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BgpBmp {
    /// The router's address (the source of its BMP connection).
    pub router: S<String>,
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
    /// Seconds between attempts to open the session.
    pub connect_retry_secs: Option<S<i64>>,
    /// eBGP multihop: the TTL of outgoing packets (default 1 for eBGP).
    pub multihop: Option<S<i64>>,
    /// GTSM (RFC 5082): send with TTL 255, accept only TTL >= 255 - hops + 1.
    pub ttl_security: Option<S<bool>>,
    /// TCP MD5 signature (RFC 2385).
    pub md5_password: Option<S<String>>,
    /// Close the session with Cease/1 (RFC 4486) above this many prefixes.
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
    pub dns: Option<Vec<S<String>>>,
    pub admin: Option<S<String>>,
    pub udp_workers: Option<S<i64>>,
    pub max_udp_payload: Option<S<i64>>,
    pub tcp_idle_timeout_secs: Option<S<i64>>,
    pub tcp_max_connections: Option<S<i64>>,
    pub state_file: Option<S<String>>,
    /// A file holding the bearer token that admin API changes require.
    pub admin_token_file: Option<S<String>>,
    pub max_file_size_mb: Option<S<i64>>,
    pub admin_max_connections: Option<S<i64>>,
    /// Names (besides IP literals and localhost) the admin API answers to.
    pub admin_hosts: Option<Vec<S<String>>>,
    pub tcp_max_per_source: Option<S<i64>>,
    pub rrl: Option<S<Rrl>>,
    pub cookies: Option<S<Cookies>>,
    pub dnstap: Option<S<Dnstap>>,
}

/// dnstap output.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Dnstap {
    /// A Unix socket path (as `fstrm_capture -u` listens on).
    pub socket: Option<S<String>>,
    /// Or a TCP `address:port`.
    pub address: Option<S<String>>,
    pub identity: Option<S<String>>,
    pub log_queries: Option<S<bool>>,
    pub log_responses: Option<S<bool>>,
    pub sample: Option<S<i64>>,
    pub queue: Option<S<i64>>,
}

/// DNS cookies.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Cookies {
    pub enabled: Option<S<bool>>,
    pub require: Option<S<bool>>,
    /// 32 hex digits.
    pub secret: Option<S<String>>,
    pub previous_secret: Option<S<String>>,
}

/// Response rate limiting (names as BIND's `rate-limit` options).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Rrl {
    pub responses_per_second: Option<S<i64>>,
    pub nodata_per_second: Option<S<i64>>,
    pub nxdomains_per_second: Option<S<i64>>,
    pub referrals_per_second: Option<S<i64>>,
    pub errors_per_second: Option<S<i64>>,
    pub window: Option<S<i64>>,
    pub slip: Option<S<i64>>,
    pub ipv4_prefix_length: Option<S<i64>>,
    pub ipv6_prefix_length: Option<S<i64>>,
    #[serde(default)]
    pub exempt: Vec<S<String>>,
    pub table_size: Option<S<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct GeoIp {
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
    /// Where the POP is (degrees), for the geographic policies.
    pub lat: Option<S<f64>>,
    pub lon: Option<S<f64>>,
    /// The POP's own AS numbers, for the BGP policies (its distance to a
    /// client's origin AS).
    #[serde(default)]
    pub asns: Vec<S<i64>>,
    /// Its share in the `weighted` policy (default 100).
    pub weight: Option<S<i64>>,
    /// What the POP can serve (requests/s or Mbit/s: the operator's unit).
    /// Accepted and kept with the POP; no policy uses it yet.
    pub capacity: Option<S<i64>>,
    /// The state at start: "up" (default), "down" or "drained".
    pub state: Option<S<String>>,
    /// Share of the POP's checks that must be up for the POP to be up.
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
    /// Between probes, and between probes while a change is under way.
    pub interval_ms: Option<S<i64>>,
    pub fast_interval_ms: Option<S<i64>>,
    /// A probe that takes longer failed.
    pub timeout_ms: Option<S<i64>>,
    /// Successes in a row that make a down target up; failures in a row
    /// that make an up target down.
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
    /// State before the first results: up (default) or down.
    pub initial: Option<S<String>>,
    /// http
    pub method: Option<S<String>>,
    pub path: Option<S<String>>,
    pub host: Option<S<String>>,
    pub expect_status: Option<Vec<S<i64>>>,
    pub expect_body: Option<S<String>>,
    pub max_body_bytes: Option<S<i64>>,
    /// dns: the name and type to ask, the rcode and (optionally) an address
    /// the answer must hold.
    pub query: Option<S<String>>,
    pub qtype: Option<S<String>>,
    pub expect_rcode: Option<S<String>>,
    pub expect_answer: Option<S<String>>,
    /// https: server name for SNI and verification (default: host, else the
    /// address), whether to verify the certificate (default true), and a
    /// PEM file of CA certificates to trust instead of the web PKI roots.
    pub sni: Option<S<String>>,
    pub verify: Option<S<bool>>,
    pub ca_file: Option<S<String>>,
    /// exec: program and arguments; exit status 0 means up.
    pub command: Option<S<Vec<S<String>>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub origin: S<String>,
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
    pub name: S<String>,
    pub pops: Option<Vec<S<String>>>,
    pub ttl: Option<S<i64>>,
    pub answers: Option<S<i64>>,
    pub fallback: Option<S<String>>,
    /// With `fallback = "backup"`: the POPs to answer when no candidate is usable.
    pub backup: Option<PopList>,
    pub cname: Option<S<String>>,
    /// TTL of answers naming a degraded POP (default: min(ttl, 5)).
    pub degraded_ttl: Option<S<i64>>,
    /// While `serve` waits for the routing views at start (`bgp.warmup_secs`),
    /// a service with BGP policies answers from its other policies
    /// ("policies") or with SERVFAIL so that resolvers retry ("servfail").
    /// Default: "servfail" when nothing but super-sparrow, as-map and
    /// weighted policies would order the POPs, "policies" otherwise.
    pub warming: Option<S<String>>,
    #[serde(default)]
    pub policy: Vec<S<Policy>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(rename = "type")]
    pub kind: S<String>,
    /// cidr: file with `prefix pop[,pop...]` lines
    pub file: Option<S<String>>,
    /// cidr: inline map prefix -> POP list
    pub entries: Option<S<PopMap>>,
    /// geo-nearest
    pub band_km: Option<S<i64>>,
    /// geo-map
    pub countries: Option<PopMap>,
    pub continents: Option<PopMap>,
    /// priority, default
    pub pops: Option<PopList>,
    /// weighted: "hash" (default) or "random"
    pub mode: Option<S<String>>,
    /// weighted, mode "hash": clients are hashed by their network of this
    /// length (default /24 and /48), so that one network keeps one POP.
    pub hash_v4_len: Option<S<i64>>,
    pub hash_v6_len: Option<S<i64>>,
    /// blended: km added per AS hop beyond the shortest
    pub hop_km: Option<S<i64>>,
}
