//! Validated configuration: what the rest of petrel consumes.

use crate::error::Location;
use petrel_bgp_wire::bmp::RibKind;
use petrel_mapping::Policy;
use petrel_types::{Asn, PopIdx, PopState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConf {
    /// DNS listeners; each serves UDP and TCP.
    pub dns: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// UDP receive threads per listener; `None`: one per core.
    pub udp_workers: Option<usize>,
    pub max_udp_payload: u16,
    pub tcp_idle_timeout_secs: u64,
    pub tcp_max_connections: usize,
    /// Open DNS-over-TCP connections one client address may hold.
    pub tcp_max_per_source: usize,
    /// Open admin API connections (each also times out).
    pub admin_max_connections: usize,
    /// Host names the admin API answers to, besides IP literals and
    /// `localhost` (a `Host` naming anything else is refused).
    pub admin_hosts: Vec<String>,
    /// Largest file (zone, map, GeoIP database, state) read, in bytes.
    pub max_file_size: u64,
    /// Where operator overrides (drain) are kept across restarts.
    pub state_file: Option<PathBuf>,
    /// A file with the bearer token admin changes require (none: no auth;
    /// keep the admin listener on loopback then).
    pub admin_token_file: Option<PathBuf>,
    /// `[server.rrl]`: response rate limiting of UDP answers.
    pub rrl: Option<RrlConf>,
    /// `[server.cookies]`: DNS cookies (RFC 7873, RFC 9018).
    pub cookies: CookieConf,
    /// `[server.dnstap]`: every query and response to a dnstap collector.
    pub dnstap: Option<DnstapConf>,
}

impl ServerConf {
    /// Whether going from `self` to `new` takes a restart: rate limiting
    /// and cookies follow a reload (the DNS threads read them from each
    /// generation); listeners, limits and dnstap are set up at start.
    pub fn restart_needed(&self, new: &ServerConf) -> bool {
        let mut then = self.clone();
        then.rrl.clone_from(&new.rrl);
        then.cookies.clone_from(&new.cookies);
        then != *new
    }
}

/// Where dnstap frames go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnstapSink {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// `[server.dnstap]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnstapConf {
    pub sink: DnstapSink,
    /// The server's name in each message (default: the host name).
    pub identity: String,
    pub log_queries: bool,
    pub log_responses: bool,
    /// One exchange in `sample` is logged (1: all).
    pub sample: u32,
    /// Exchanges waiting for the writer, per DNS thread; past it they are
    /// dropped (counted), never waited for.
    pub queue: usize,
}

/// `[server.cookies]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieConf {
    /// Answer COOKIE options (on by default).
    pub enabled: bool,
    /// UDP queries with a client cookie but no valid server cookie get
    /// BADCOOKIE and a fresh server cookie, not an answer.
    pub require: bool,
    /// The secret server cookies are made with; None: a random one per
    /// process (then servers of a fleet do not accept each other's).
    pub secret: Option<[u8; 16]>,
    /// A former secret still accepted (rotation across a fleet).
    pub previous_secret: Option<[u8; 16]>,
}

impl Default for CookieConf {
    fn default() -> Self {
        CookieConf {
            enabled: true,
            require: false,
            secret: None,
            previous_secret: None,
        }
    }
}

/// `[server.rrl]`, with BIND's and Knot's meaning: responses to one
/// client network, of one kind (and for answers, one name and type), are
/// limited to a rate; the excess is dropped, but every `slip`th goes out
/// truncated so that a real client behind the network retries over TCP.
#[derive(Clone, Debug, PartialEq)]
pub struct RrlConf {
    /// Per second (at most 1,000,000), by kind of response, in
    /// [`RRL_KINDS`] order; 0: not limited.
    pub per_second: [u32; 5],
    /// How long (seconds) a flood's excess is remembered: a network over
    /// its rate stays limited until its account recovers.
    pub window_secs: u32,
    /// Every `slip`th limited response is sent truncated (0: none, 1: all).
    pub slip: u32,
    pub ipv4_prefix_length: u8,
    pub ipv6_prefix_length: u8,
    /// Networks never limited.
    pub exempt: Vec<petrel_types::Prefix>,
    /// Accounts kept (a power of two; a fixed table, so memory is fixed).
    pub table_size: usize,
}

/// The kinds of response rate limiting tells apart.
pub const RRL_KINDS: [&str; 5] = ["answer", "nodata", "nxdomain", "referral", "error"];

#[derive(Clone, Debug, PartialEq)]
pub struct Pop {
    pub name: String,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    pub location: Option<(f64, f64)>,
    pub asns: Vec<Asn>,
    pub weight: u32,
    pub capacity: Option<u64>,
    /// The state the config asks for at start.
    pub state: PopState,
    /// Share of `checks` that must be up for the POP to be up.
    pub up_thresh: f64,
    /// Degraded below this share of up checks (never, when None).
    pub degraded_below: Option<f64>,
    pub checks: Vec<HealthCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Tcp {
        target: SocketAddr,
    },
    Http {
        target: SocketAddr,
        method: String,
        path: String,
        host: String,
        /// Accepted status codes; empty means any 2xx or 3xx.
        expect_status: Vec<u16>,
        expect_body: Option<String>,
        max_body_bytes: usize,
        /// HTTPS when set.
        tls: Option<TlsCheck>,
    },
    /// A query over UDP.
    Dns {
        target: SocketAddr,
        qname: Vec<u8>,
        qtype: u16,
        expect_rcode: u16,
        expect_answer: Option<IpAddr>,
    },
    /// ICMP echo (unprivileged datagram socket where the kernel allows it,
    /// else raw, which needs CAP_NET_RAW).
    Icmp {
        target: IpAddr,
    },
    /// A program; exit status 0 means up.
    Exec {
        argv: Vec<String>,
    },
}

/// A check's state before its first result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initial {
    Up,
    Down,
    /// No state: the first result decides, and `serve` opens its DNS
    /// listeners only once every such check has one (bounded by its timeout).
    Wait,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsCheck {
    /// Server name sent in SNI and checked against the certificate.
    pub sni: String,
    pub verify: bool,
    /// PEM file of CAs to trust; none: the web PKI roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// `pop/type:address:port` (or `pop/exec:program`), unique, for logs,
    /// metrics and the API.
    pub name: String,
    pub kind: CheckKind,
    pub interval_ms: u64,
    /// Between probes while a change is under way (see
    /// `petrel_health::Hysteresis::changing`).
    pub fast_interval_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    pub initial: Initial,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ZoneConf {
    pub origin: String,
    pub origin_wire: Vec<u8>,
    pub file: PathBuf,
    /// Where `file` was given, for errors found inside the zone file.
    pub at: Location,
    /// Online signing, if configured.
    pub dnssec: Option<DnssecConf>,
    /// Transfers to secondaries, if configured.
    pub transfer: Option<TransferConf>,
}

/// `[zone.transfer]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferConf {
    pub allow: Vec<petrel_types::Prefix>,
    /// Indexes into `Config::tsig` a request must be signed with (any one).
    pub keys: Vec<usize>,
    pub notify: Vec<SocketAddr>,
    pub notify_key: Option<usize>,
}

/// `[[tsig]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigConf {
    pub name: String,
    pub algorithm: String,
    pub secret: String,
}

/// `[zone.dnssec]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DnssecConf {
    /// Keys that sign: file stems, each with where it was given.
    pub keys: Vec<(PathBuf, Location)>,
    /// Keys only published in DNSKEY.
    pub publish: Vec<(PathBuf, Location)>,
    pub validity_days: u32,
    pub cds: bool,
}

/// A CIDR map policy's file: its entries are merged into the policy's
/// inline ones when a generation is built (the file is read then).
#[derive(Clone, Debug, PartialEq)]
pub struct CidrFile {
    /// Index of the `Policy::Cidr` in the service's policies.
    pub policy: usize,
    pub file: PathBuf,
    /// Where the file was named, for errors found inside it.
    pub at: Location,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConf {
    pub name: String,
    pub name_wire: Vec<u8>,
    pub pops: Vec<PopIdx>,
    pub ttl: u32,
    pub degraded_ttl: u32,
    pub answers: u8,
    pub fallback: petrel_mapping::Fallback,
    /// CNAME mode: a target per POP, `{pop}` replaced by the POP's name.
    pub cname: Option<String>,
    /// In order; CIDR maps hold their inline entries here.
    pub policies: Vec<Policy>,
    pub cidr_files: Vec<CidrFile>,
    /// What the service answers while the routing views are loading.
    pub warming: petrel_mapping::Warming,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BgpConf {
    pub asn: Asn,
    pub router_id: Ipv4Addr,
    pub listen: Option<SocketAddr>,
    pub batch_ms: u64,
    /// The longest wait at start for the feeds' initial tables.
    pub warmup: std::time::Duration,
    /// Routes any one feed may hold unless its own `max_prefix` says
    /// otherwise (BMP-monitored and MRT peers always use this).
    pub max_prefix: u32,
    /// Bytes of attribute sets any one feed's routes may hold (each route
    /// counted whole).
    pub max_attr_bytes: usize,
    pub peers: Vec<BgpPeerConf>,
    pub mrt: Vec<BgpMrtConf>,
    pub bmp_listen: Option<SocketAddr>,
    pub bmp: Vec<BgpBmpConf>,
    /// What petrel may ever announce, and how (VRPs come from `vrp_file`,
    /// read with the other files; `safety.vrps` is None here).
    pub safety: petrel_anycast::safety::Safety,
    pub vrp_file: Option<(PathBuf, Location)>,
    pub damping: petrel_anycast::damping::DampingParams,
    pub hold_down: std::time::Duration,
}

impl BgpConf {
    /// Whether anything feeds the routing views (serve warms up for them).
    pub fn has_feeds(&self) -> bool {
        !self.peers.is_empty() || !self.mrt.is_empty() || !self.bmp.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BgpBmpConf {
    pub router: IpAddr,
    pub pop: PopIdx,
    /// Only these monitored peers (empty: all).
    pub peers: Vec<IpAddr>,
    /// Which of the router's RIBs to take: Adj-RIB-In before or after its
    /// import policy (RFC 7854 §2), or its Loc-RIB (RFC 9069).
    pub rib: RibKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BgpMrtConf {
    pub file: PathBuf,
    pub pop: PopIdx,
    /// Only routes from these MRT peers (empty: all).
    pub peers: Vec<IpAddr>,
    pub updates: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpPeerConf {
    pub name: String,
    pub pop: PopIdx,
    pub address: IpAddr,
    pub port: u16,
    pub asn: Asn,
    pub local_asn: Asn,
    pub local_address: Option<IpAddr>,
    pub passive: bool,
    pub hold_time: u16,
    pub connect_retry_secs: u32,
    /// TTL of outgoing packets for eBGP multihop; None: 1 (directly
    /// connected) for eBGP, 64 for iBGP.
    pub multihop: Option<u8>,
    pub ttl_security: bool,
    pub md5_password: Option<String>,
    /// Its own route limit; `BgpConf::max_prefix` when not set.
    pub max_prefix: Option<u32>,
    pub ipv4: bool,
    pub ipv6: bool,
    pub add_path: bool,
    /// The start waits for its initial routes (`bgp.warmup_secs`).
    pub warmup: bool,
}

impl BgpPeerConf {
    pub fn ibgp(&self) -> bool {
        self.asn == self.local_asn
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConf,
    pub bgp: Option<BgpConf>,
    pub geoip: Option<(PathBuf, Location)>,
    pub pops: Vec<Pop>,
    pub zones: Vec<ZoneConf>,
    pub services: Vec<ServiceConf>,
    /// `[[anycast]]` blocks, checked against `bgp.safety` (owned, lengths).
    pub anycast: Vec<petrel_anycast::Service>,
    /// `[[http]]` fronts.
    pub http: Vec<HttpConf>,
    /// `[[tsig]]` keys.
    pub tsig: Vec<TsigConf>,
    /// `[measure]`: measured latency and the latency policy.
    pub measure: Option<MeasureConf>,
}

/// `[measure]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasureConf {
    pub decay: petrel_measure::Decay,
    pub rank: petrel_measure::ranking::RankParams,
    pub unit: petrel_measure::UnitMode,
    pub recompile_secs: u64,
    pub max_units: usize,
    /// The SQLite warehouse (opened at start).
    pub database: Option<std::path::PathBuf>,
    pub retention_days: u32,
    /// Days hourly roll-ups are kept (0: none).
    pub rollup_days: u32,
    /// `[measure.rum]`: what the RUM tag is told.
    pub rum: Option<petrel_measure::rum::TagConfig>,
    /// `[measure.alerts]`.
    pub alerts: Option<petrel_measure::alert::AlertParams>,
    /// `measure.alerts.webhook`.
    pub webhook: Option<Webhook>,
    /// `measure.rum.whoami_url`: the names the DNS side answers and logs.
    pub whoami: Option<Whoami>,
    /// `measure.explore_percent`, per million answers of latency services.
    pub explore_ppm: u32,
    /// `[measure.clickhouse]`: samples go there instead of `database`.
    pub clickhouse: Option<ClickhouseConf>,
    /// `measure.reverse_dns`: the resolver asked for clients' names.
    pub reverse_dns: Option<std::net::SocketAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClickhouseConf {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
}

/// Resolver discovery's names: `<id>.<domain>`, answered with `v4`/`v6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Whoami {
    /// Lower case, wire form.
    pub domain_wire: Vec<u8>,
    pub v4: Vec<std::net::Ipv4Addr>,
    pub v6: Vec<std::net::Ipv6Addr>,
}

/// Where alert events are POSTed (plain HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// `host:port`, resolved when an event is sent.
    pub authority: String,
    pub path: String,
}

impl Config {
    pub fn pop_index(&self, name: &str) -> Option<PopIdx> {
        self.pops.iter().position(|p| p.name == name).map(|i| PopIdx(i as u16))
    }

    pub fn service(&self, name: &str) -> Option<(usize, &ServiceConf)> {
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        self.services
            .iter()
            .enumerate()
            .find(|(_, s)| s.name.trim_end_matches('.').to_ascii_lowercase() == want)
    }
}

/// An `[[http]]` front.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConf {
    pub name: String,
    pub listen: Vec<std::net::SocketAddr>,
    pub tls_listen: Vec<std::net::SocketAddr>,
    pub certificates: Vec<HttpCertConf>,
    pub trusted_proxies: petrel_http::client::Trusted,
    pub client_header: petrel_http::client::Header,
    /// Connections from trusted proxies start with a PROXY header.
    pub proxy_protocol: bool,
    /// `GET /v1/remap` on this front's listeners.
    pub remap_api: bool,
    /// Edge mode: this POP, and its content server (`host:port`).
    pub pop: Option<PopIdx>,
    pub upstream: Option<String>,
    pub default: petrel_http::rules::Fallback,
    pub access_log: bool,
    /// Serves `/rum.js`, `/rum/o` and `POST /rum/beacon`.
    pub rum: bool,
    pub max_connections: usize,
    /// For a request's headers, and for the next request on an idle
    /// HTTP/1.1 connection.
    pub header_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_header_kb: usize,
    /// The largest request body passed to the upstream (0: none).
    pub max_body_mb: u64,
    pub rules: Vec<petrel_http::rules::Rule<petrel_http::rules::Action>>,
    /// Where the block starts, for errors found later (certificates).
    pub at: Location,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpCertConf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub names: Vec<petrel_http::rules::HostPattern>,
    pub at: Location,
}
