//! Raw file -> validated [`Config`], collecting every error.

use crate::error::{ConfigError, Location};
use crate::model::*;
use crate::raw::{self, S};
use petrel_bgp_wire::bmp::RibKind;
use petrel_dns_wire::name;
use petrel_mapping::{CidrMap, Fallback, Policy, Warming, WeightMode, MAX_ANSWERS, MAX_CANDIDATES};
use petrel_types::{Asn, PopIdx, PopState, Prefix};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub(crate) struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    pub(crate) fn loc(&self, offset: usize) -> Location {
        Location::from_offset(self.file, self.text, offset)
    }

    pub(crate) fn err<T>(&mut self, at: &S<T>, field: impl Into<String>, message: impl Into<String>) {
        let location = self.loc(at.span().start);
        self.errors.push(ConfigError {
            location,
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn int<T: TryFrom<i64>>(
        &mut self,
        v: &Option<S<i64>>,
        field: &str,
        min: i64,
        max: i64,
        default: T,
    ) -> T {
        match v {
            None => default,
            Some(s) => {
                let x = *s.get_ref();
                if x < min || x > max {
                    self.err(s, field, format!("{x} is out of range {min}..={max}"));
                    default
                } else {
                    T::try_from(x).unwrap_or(default)
                }
            }
        }
    }

    /// A `type = ...` table: look the type up in `table` (type, keys it
    /// takes) and report an unknown one.
    fn kind_fields<'t>(
        &mut self,
        kind: &S<String>,
        field: &str,
        what: &str,
        table: &'t [(&str, &'t [&str])],
    ) -> Option<&'t [&'t str]> {
        let k = kind.get_ref().as_str();
        match table.iter().find(|(t, _)| *t == k) {
            Some((_, allowed)) => Some(allowed),
            None => {
                let kinds: Vec<&str> = table.iter().map(|(t, _)| *t).collect();
                self.err(
                    kind,
                    format!("{field}.type"),
                    format!("`{k}` is not a {what}; expected one of {}", kinds.join(", ")),
                );
                None
            }
        }
    }

    /// Keys that belong to other types are mistakes, not silence: report
    /// each present key (with its offset) that `allowed` lacks. True if none.
    fn only_fields(
        &mut self,
        field: &str,
        kind: &str,
        noun: &str,
        allowed: &[&str],
        present: &[(&str, Option<usize>)],
    ) -> bool {
        let mut ok = true;
        for &(k, at) in present {
            if let (Some(off), false) = (at, allowed.contains(&k)) {
                let location = self.loc(off);
                self.errors.push(ConfigError {
                    location,
                    field: format!("{field}.{k}"),
                    message: format!("`{k}` does not apply to a `{kind}` {noun}"),
                });
                ok = false;
            }
        }
        ok
    }

    pub(crate) fn resolve(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// Parse and validate a config file's text. `file` names it in errors and
/// anchors relative paths.
/// The key of the `key = value` line at `offset`, with its table header
/// (`service.ttl`, `server.rrl.window`): what a parse error is about.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return String::new();
    };
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.contains(char::is_whitespace) {
        return String::new();
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    }
}

/// The TOML reader's words for a wrong value, in the user's: `invalid
/// type: string "30", expected i64` becomes `expected a whole number, found
/// the text "30" (write numbers without quotes)`.
fn plain_words(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.to_string();
    };
    let want = match expected.trim() {
        "i64" | "u64" | "i32" | "u32" | "u16" | "u8" | "usize" => "a whole number",
        "f64" | "f32" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" | "string" => "text in quotes",
        "a sequence" => "a list, [ ... ]",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e => e,
    };
    let (what, hint) = if let Some(v) = found.strip_prefix("string ") {
        let number = v.trim_matches('"').parse::<f64>().is_ok();
        (
            format!("the text {v}"),
            if number && want.contains("number") {
                " (write numbers without quotes)"
            } else {
                ""
            },
        )
    } else if let Some(v) = found.strip_prefix("integer ") {
        (format!("the number {}", v.trim_matches('`')), "")
    } else if let Some(v) = found.strip_prefix("floating point ") {
        (format!("the number {}", v.trim_matches('`')), "")
    } else if let Some(v) = found.strip_prefix("boolean ") {
        (v.trim_matches('`').to_string(), "")
    } else {
        (found.to_string(), "")
    };
    format!("expected {want}, found {what}{hint}")
}

/// The file's tables and keys, or every value of the wrong type and
/// unknown key in it (serde stops at the first: the line of each is blanked,
/// keeping every offset, and the text read again; up to 20). A syntax error
/// ends the search.
fn read_raw(file: &Path, text: &str) -> Result<raw::File, Vec<ConfigError>> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    let mut cur = text.to_string();
    loop {
        let e = match toml::from_str::<raw::File>(&cur) {
            Ok(r) if errors.is_empty() => return Ok(r),
            Ok(_) => return Err(errors),
            Err(e) => e,
        };
        let msg = e.message().trim().to_string();
        // A key blanked out for an earlier error is missing now: not news.
        if let Some(k) = msg.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            if blanked.iter().any(|b| b.rsplit('.').next() == Some(k)) {
                return Err(errors);
            }
        }
        let offset = e.span().map_or(0, |s| s.start);
        let field = key_at(text, offset);
        errors.push(ConfigError {
            location: Location::from_offset(file, text, offset),
            field: field.clone(),
            message: plain_words(&msg),
        });
        let recoverable =
            msg.starts_with("invalid type") || msg.starts_with("unknown field") || msg.starts_with("invalid value");
        if !recoverable || e.span().is_none() || errors.len() >= 20 {
            return Err(errors);
        }
        let start = cur[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = cur[offset..].find('\n').map_or(cur.len(), |i| offset + i);
        let line = &cur[start..end];
        // A value that goes on past its line cannot be taken out alone.
        if line.contains('[') && !line.contains(']') || line.contains('{') && !line.contains('}') {
            return Err(errors);
        }
        cur.replace_range(start..end, &" ".repeat(end - start));
        blanked.push(field);
    }
}

pub fn parse(file: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
    let raw: raw::File = read_raw(file, text)?;
    let mut cx = Ctx {
        file,
        text,
        errors: Vec::new(),
    };
    let server = server(&mut cx, raw.server.as_ref());
    let geoip = raw.geoip.as_ref().map(|g| {
        let d = &g.get_ref().database;
        (cx.resolve(d.get_ref()), cx.loc(d.span().start))
    });
    let pops = pops(&mut cx, &raw.pop);
    let tsig = tsig_keys(&mut cx, &raw.tsig);
    let zones = zones(&mut cx, &raw.zone, &tsig);
    let bgp = raw.bgp.as_ref().map(|b| bgp(&mut cx, b, &pops));
    let measure = raw
        .measure
        .as_ref()
        .map(|m| crate::measure::measure(&mut cx, m, &pops, &zones));
    let have = Have {
        measure: measure.is_some(),
        geo: geoip.is_some(),
        bgp: bgp
            .as_ref()
            .is_some_and(|b| !b.peers.is_empty() || !b.mrt.is_empty() || !b.bmp.is_empty()),
    };
    let services = services(&mut cx, &raw.service, &pops, &zones, have);
    let anycast = crate::anycast::blocks(&mut cx, &raw.anycast, &pops, bgp.as_ref());
    let has_rum = measure.as_ref().is_some_and(|m| m.rum.is_some());
    let http = crate::http::fronts(&mut cx, &raw.http, &pops, &services, has_rum);
    if cx.errors.is_empty() {
        Ok(Config {
            path: file.to_path_buf(),
            server,
            bgp,
            geoip,
            pops,
            zones,
            services,
            anycast,
            http,
            measure,
            tsig,
        })
    } else {
        Err(cx.errors)
    }
}

fn rrl(cx: &mut Ctx<'_>, r: &raw::Rrl) -> crate::model::RrlConf {
    let answers = cx.int(
        &r.responses_per_second,
        "server.rrl.responses_per_second",
        0,
        1_000_000,
        20u32,
    );
    // As in BIND, the other kinds default to the answers' rate.
    let per_second = [
        answers,
        cx.int(
            &r.nodata_per_second,
            "server.rrl.nodata_per_second",
            0,
            1_000_000,
            answers,
        ),
        cx.int(
            &r.nxdomains_per_second,
            "server.rrl.nxdomains_per_second",
            0,
            1_000_000,
            answers,
        ),
        cx.int(
            &r.referrals_per_second,
            "server.rrl.referrals_per_second",
            0,
            1_000_000,
            answers,
        ),
        cx.int(
            &r.errors_per_second,
            "server.rrl.errors_per_second",
            0,
            1_000_000,
            answers,
        ),
    ];
    let mut exempt = Vec::new();
    for (j, p) in r.exempt.iter().enumerate() {
        match Prefix::parse_strict(p.get_ref()) {
            Ok(x) => exempt.push(x),
            Err(e) => cx.err(p, format!("server.rrl.exempt[{j}]"), format!("`{}`: {e}", p.get_ref())),
        }
    }
    let table: usize = cx.int(&r.table_size, "server.rrl.table_size", 1024, 1 << 26, 1 << 19);
    crate::model::RrlConf {
        per_second,
        window_secs: cx.int(&r.window, "server.rrl.window", 1, 3600, 15u32),
        slip: cx.int(&r.slip, "server.rrl.slip", 0, 10, 2u32),
        ipv4_prefix_length: cx.int(&r.ipv4_prefix_length, "server.rrl.ipv4_prefix_length", 8, 32, 24u8),
        ipv6_prefix_length: cx.int(&r.ipv6_prefix_length, "server.rrl.ipv6_prefix_length", 16, 128, 56u8),
        exempt,
        table_size: table.next_power_of_two(),
    }
}

fn dnstap(cx: &mut Ctx<'_>, d: &S<raw::Dnstap>) -> Option<crate::model::DnstapConf> {
    let r = d.get_ref();
    let sink = match (&r.socket, &r.address) {
        (Some(p), None) => crate::model::DnstapSink::Unix(PathBuf::from(p.get_ref())),
        (None, Some(a)) => match a.get_ref().parse::<SocketAddr>() {
            Ok(sa) => crate::model::DnstapSink::Tcp(sa),
            Err(_) => {
                cx.err(
                    a,
                    "server.dnstap.address",
                    format!("`{}` is not an address:port", a.get_ref()),
                );
                return None;
            }
        },
        _ => {
            cx.err(
                d,
                "server.dnstap",
                "give either `socket` (a Unix socket path) or `address` (TCP address:port)",
            );
            return None;
        }
    };
    let identity = match &r.identity {
        Some(i) => i.get_ref().clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
    };
    Some(crate::model::DnstapConf {
        sink,
        identity,
        log_queries: r.log_queries.as_ref().is_none_or(|b| *b.get_ref()),
        log_responses: r.log_responses.as_ref().is_none_or(|b| *b.get_ref()),
        sample: cx.int(&r.sample, "server.dnstap.sample", 1, 1_000_000, 1u32),
        queue: cx.int(&r.queue, "server.dnstap.queue", 16, 1 << 20, 4096usize),
    })
}

fn server(cx: &mut Ctx<'_>, s: Option<&S<raw::Server>>) -> ServerConf {
    let mut out = ServerConf {
        dns: vec![
            "127.0.0.1:5300".parse().expect("literal"),
            "[::1]:5300".parse().expect("literal"),
        ],
        admin: Some("127.0.0.1:8053".parse().expect("literal")),
        udp_workers: None,
        max_udp_payload: 1232,
        tcp_idle_timeout_secs: 10,
        tcp_max_connections: 512,
        tcp_max_per_source: 32,
        admin_max_connections: 64,
        admin_hosts: Vec::new(),
        max_file_size: DEFAULT_MAX_FILE_MB << 20,
        state_file: None,
        admin_token_file: None,
        rrl: None,
        cookies: CookieConf::default(),
        dnstap: None,
    };
    let Some(s) = s else { return out };
    let s = s.get_ref();
    if let Some(r) = &s.rrl {
        out.rrl = Some(rrl(cx, r.get_ref()));
    }
    if let Some(d) = &s.dnstap {
        out.dnstap = dnstap(cx, d);
    }
    if let Some(c) = &s.cookies {
        let c = c.get_ref();
        let mut secret = |v: &Option<S<String>>, field: &str| {
            let v = v.as_ref()?;
            let t = v.get_ref();
            let bytes: Option<Vec<u8>> = (t.len() == 32)
                .then(|| {
                    (0..32)
                        .step_by(2)
                        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
                        .collect()
                })
                .flatten();
            match bytes.and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                Some(b) => Some(b),
                None => {
                    cx.err(
                        v,
                        field,
                        "a server secret is 32 hex digits (16 bytes; e.g. from `openssl rand -hex 16`)",
                    );
                    None
                }
            }
        };
        out.cookies = CookieConf {
            enabled: c.enabled.as_ref().is_none_or(|b| *b.get_ref()),
            require: c.require.as_ref().is_some_and(|b| *b.get_ref()),
            secret: secret(&c.secret, "server.cookies.secret"),
            previous_secret: secret(&c.previous_secret, "server.cookies.previous_secret"),
        };
        if out.cookies.previous_secret.is_some() && out.cookies.secret.is_none() {
            if let Some(v) = &c.previous_secret {
                cx.err(
                    v,
                    "server.cookies.previous_secret",
                    "needs `secret` (the one cookies are made with)",
                );
            }
        }
    }
    if let Some(list) = &s.dns {
        out.dns.clear();
        for (i, a) in list.iter().enumerate() {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(sa) => out.dns.push(sa),
                Err(_) => cx.err(
                    a,
                    format!("server.dns[{i}]"),
                    format!("`{}` is not an address:port (IPv6 as [addr]:port)", a.get_ref()),
                ),
            }
        }
    }
    if let Some(a) = &s.admin {
        if a.get_ref().is_empty() {
            out.admin = None;
        } else {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(sa) => out.admin = Some(sa),
                Err(_) => cx.err(a, "server.admin", format!("`{}` is not an address:port", a.get_ref())),
            }
        }
    }
    if s.udp_workers.is_some() {
        out.udp_workers = Some(cx.int(&s.udp_workers, "server.udp_workers", 1, 256, 1usize));
    }
    out.max_udp_payload = cx.int(&s.max_udp_payload, "server.max_udp_payload", 512, 4096, 1232u16);
    out.tcp_idle_timeout_secs = cx.int(&s.tcp_idle_timeout_secs, "server.tcp_idle_timeout_secs", 1, 3600, 10u64);
    out.tcp_max_connections = cx.int(
        &s.tcp_max_connections,
        "server.tcp_max_connections",
        1,
        1_000_000,
        512usize,
    );
    out.tcp_max_per_source = cx.int(
        &s.tcp_max_per_source,
        "server.tcp_max_per_source",
        1,
        1_000_000,
        32usize,
    );
    out.admin_max_connections = cx.int(
        &s.admin_max_connections,
        "server.admin_max_connections",
        1,
        10_000,
        64usize,
    );
    out.admin_hosts = s
        .admin_hosts
        .iter()
        .flatten()
        .map(|h| h.get_ref().trim().to_ascii_lowercase())
        .collect();
    let mb: u64 = cx.int(
        &s.max_file_size_mb,
        "server.max_file_size_mb",
        1,
        1 << 20,
        DEFAULT_MAX_FILE_MB,
    );
    out.max_file_size = mb << 20;
    out.state_file = s.state_file.as_ref().map(|f| cx.resolve(f.get_ref()));
    out.admin_token_file = s.admin_token_file.as_ref().map(|f| cx.resolve(f.get_ref()));
    // Without a token anyone who reaches the admin listener can drain POPs;
    // only loopback limits that to this host's processes (and the API
    // checks Host and Origin against web pages).
    if let (Some(a), None) = (out.admin, &out.admin_token_file) {
        if !a.ip().is_loopback() {
            let at = s
                .admin
                .as_ref()
                .expect("admin set when out.admin is not the default loopback");
            cx.err(
                at,
                "server.admin",
                format!("{a} is not a loopback address: an admin listener others can reach needs `admin_token_file`"),
            );
        }
    }
    out
}

/// Default cap on the size of any file a config names, in MiB.
const DEFAULT_MAX_FILE_MB: u64 = 256;

/// Which data sources the config provides, for policies that need them.
#[derive(Clone, Copy)]
struct Have {
    geo: bool,
    bgp: bool,
    measure: bool,
}

fn bgp(cx: &mut Ctx<'_>, b: &S<raw::Bgp>, pops: &[Pop]) -> BgpConf {
    let r = b.get_ref();
    if !r.peer.is_empty() {
        if r.asn.is_none() {
            cx.err(b, "bgp.asn", "sessions need petrel's own AS number: `asn = ...`");
        }
        if r.router_id.is_none() {
            cx.err(
                b,
                "bgp.router_id",
                "sessions need a BGP identifier: `router_id = \"a.b.c.d\"`",
            );
        }
    }
    let asn = cx.int(&r.asn, "bgp.asn", 1, u32::MAX as i64, 0u32);
    let router_id = match &r.router_id {
        None => Ipv4Addr::UNSPECIFIED,
        Some(id) => match id.get_ref().parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() => a,
            _ => {
                cx.err(id, "bgp.router_id", "not a non-zero IPv4 address (RFC 6286)");
                Ipv4Addr::UNSPECIFIED
            }
        },
    };
    let listen = r.listen.as_ref().and_then(|l| match l.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            cx.err(l, "bgp.listen", format!("`{}` is not an address:port", l.get_ref()));
            None
        }
    });
    let batch_ms = cx.int(&r.batch_ms, "bgp.batch_ms", 10, 60_000, 1000u64);
    let warmup_secs = cx.int(&r.warmup_secs, "bgp.warmup_secs", 0, 3600, 60u64);
    // A full table is about 1.25 million routes (2026); twice that per feed
    // leaves room for growth and ADD-PATH without leaving memory unbounded.
    let max_prefix = cx.int(&r.max_prefix, "bgp.max_prefix", 1, u32::MAX as i64, 4_000_000u32);
    // A full table's attributes, each route counted whole, take about
    // 150 MiB; a feed of long or unusual attributes stops well before it
    // can exhaust the host.
    let max_attr_mb: usize = cx.int(&r.max_attr_mb, "bgp.max_attr_mb", 1, 1 << 20, 512usize);
    let mut peers: Vec<BgpPeerConf> = Vec::new();
    for (i, p) in r.peer.iter().enumerate() {
        let f = |k: &str| format!("bgp.peer[{i}].{k}");
        let q = p.get_ref();
        let name = q.name.get_ref().clone();
        if name.is_empty() || name.contains(char::is_whitespace) {
            cx.err(&q.name, f("name"), "a peer name is a non-empty word");
        }
        if peers.iter().any(|o| o.name == name) {
            cx.err(&q.name, f("name"), format!("peer `{name}` is defined twice"));
        }
        let pop = pop_named(cx, &q.pop, &f("pop"), pops);
        let address = match q.address.get_ref().parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                cx.err(
                    &q.address,
                    f("address"),
                    format!("`{}` is not an IP address", q.address.get_ref()),
                );
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        };
        if peers.iter().any(|o| o.address == address) && !address.is_unspecified() {
            cx.err(
                &q.address,
                f("address"),
                format!("another peer already has address {address}"),
            );
        }
        let local_address = q
            .local_address
            .as_ref()
            .and_then(|a| match a.get_ref().parse::<IpAddr>() {
                Ok(x) if x.is_ipv4() == address.is_ipv4() => Some(x),
                Ok(_) => {
                    cx.err(a, f("local_address"), "not of the same family as the peer's address");
                    None
                }
                Err(_) => {
                    cx.err(a, f("local_address"), format!("`{}` is not an IP address", a.get_ref()));
                    None
                }
            });
        let peer_asn = cx.int(&Some(q.asn.clone()), &f("asn"), 1, u32::MAX as i64, 0u32);
        let local_asn = cx.int(&q.local_asn, &f("local_asn"), 1, u32::MAX as i64, asn);
        let hold_time = cx.int(&q.hold_time, &f("hold_time"), 0, 65_535, 90u16);
        if (1..3).contains(&hold_time) {
            if let Some(h) = &q.hold_time {
                cx.err(
                    h,
                    f("hold_time"),
                    "a hold time is 0 or at least 3 seconds (RFC 4271 §4.2)",
                );
            }
        }
        let multihop = q
            .multihop
            .as_ref()
            .map(|_| cx.int(&q.multihop, &f("multihop"), 1, 255, 1u8));
        let ttl_security = q.ttl_security.as_ref().is_some_and(|t| *t.get_ref());
        let mut ipv4 = true;
        let mut ipv6 = true;
        if let Some(list) = &q.families {
            ipv4 = false;
            ipv6 = false;
            for fam in list {
                match fam.get_ref().as_str() {
                    "ipv4" => ipv4 = true,
                    "ipv6" => ipv6 = true,
                    o => cx.err(fam, f("families"), format!("`{o}` is not one of ipv4, ipv6")),
                }
            }
            if !ipv4 && !ipv6 {
                cx.err(&q.name, f("families"), "a session needs at least one family");
            }
        }
        let md5_password = q.md5_password.as_ref().and_then(|m| {
            let pw = m.get_ref();
            // TCP_MD5SIG keys are at most 80 bytes (Linux TCP_MD5SIG_MAXKEYLEN).
            if pw.is_empty() || pw.len() > 80 {
                cx.err(m, f("md5_password"), "an MD5 password has 1 to 80 bytes");
                None
            } else {
                Some(pw.clone())
            }
        });
        peers.push(BgpPeerConf {
            name,
            pop,
            address,
            port: cx.int(&q.port, &f("port"), 1, 65_535, 179u16),
            asn: Asn(peer_asn),
            local_asn: Asn(local_asn),
            local_address,
            passive: q.passive.as_ref().is_some_and(|p| *p.get_ref()),
            hold_time,
            connect_retry_secs: cx.int(&q.connect_retry_secs, &f("connect_retry_secs"), 1, 3600, 5u32),
            multihop,
            ttl_security,
            md5_password,
            max_prefix: q
                .max_prefix
                .as_ref()
                .map(|_| cx.int(&q.max_prefix, &f("max_prefix"), 1, u32::MAX as i64, u32::MAX)),
            ipv4,
            ipv6,
            add_path: q.add_path.as_ref().is_none_or(|a| *a.get_ref()),
            warmup: q.warmup.as_ref().is_none_or(|a| *a.get_ref()),
        });
        if multihop.is_some() && ttl_security {
            cx.err(&q.name, f("ttl_security"), "use `multihop` or `ttl_security`, not both");
        }
        if peers.last().is_some_and(|x| x.passive) && listen.is_none() {
            cx.err(&q.name, f("passive"), "a passive peer needs `bgp.listen`");
        }
    }
    let mut mrt = Vec::new();
    for (i, m) in r.mrt.iter().enumerate() {
        let f = |k: &str| format!("bgp.mrt[{i}].{k}");
        let q = m.get_ref();
        let pop = pop_named(cx, &q.pop, &f("pop"), pops);
        let mut only = Vec::new();
        for a in q.peers.iter().flatten() {
            match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => only.push(ip),
                Err(_) => cx.err(a, f("peers"), format!("`{}` is not an IP address", a.get_ref())),
            }
        }
        mrt.push(BgpMrtConf {
            file: cx.resolve(q.file.get_ref()),
            pop,
            peers: only,
            updates: q.updates.iter().flatten().map(|u| cx.resolve(u.get_ref())).collect(),
        });
    }
    let bmp_listen = r
        .bmp_listen
        .as_ref()
        .and_then(|l| match l.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                cx.err(l, "bgp.bmp_listen", format!("`{}` is not an address:port", l.get_ref()));
                None
            }
        });
    let mut bmp: Vec<BgpBmpConf> = Vec::new();
    for (i, m) in r.bmp.iter().enumerate() {
        let f = |k: &str| format!("bgp.bmp[{i}].{k}");
        let q = m.get_ref();
        let pop = pop_named(cx, &q.pop, &f("pop"), pops);
        let router = match q.router.get_ref().parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                cx.err(
                    &q.router,
                    f("router"),
                    format!("`{}` is not an IP address", q.router.get_ref()),
                );
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        };
        let mut only = Vec::new();
        for a in q.peers.iter().flatten() {
            match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => only.push(ip),
                Err(_) => cx.err(a, f("peers"), format!("`{}` is not an IP address", a.get_ref())),
            }
        }
        let rib = match q.rib.as_ref().map(|r| r.get_ref().as_str()) {
            None | Some("post-policy") => RibKind::PostPolicyIn,
            Some("pre-policy") => RibKind::PrePolicyIn,
            Some("loc-rib") => RibKind::LocRib,
            Some(o) => {
                cx.err(
                    q.rib.as_ref().expect("present"),
                    f("rib"),
                    format!("`{o}` is not one of post-policy, pre-policy, loc-rib"),
                );
                RibKind::PostPolicyIn
            }
        };
        if bmp_listen.is_none() {
            cx.err(&q.router, f("router"), "a BMP router needs `bgp.bmp_listen`");
        }
        // Each monitored peer feeds one view: a second entry for the same
        // router must name other peers.
        let overlaps = |o: &BgpBmpConf| {
            o.router == router && (o.peers.is_empty() || only.is_empty() || o.peers.iter().any(|p| only.contains(p)))
        };
        if let Some(j) = bmp.iter().position(overlaps) {
            cx.err(
                &q.router,
                f("peers"),
                format!("router {router} already sends these peers to a view (bgp.bmp[{j}]); list disjoint `peers`"),
            );
        }
        bmp.push(BgpBmpConf {
            router,
            pop,
            peers: only,
            rib,
        });
    }
    let (safety, vrp_file, damping, hold_down) = crate::anycast::rules(cx, r, Asn(asn));
    BgpConf {
        asn: Asn(asn),
        router_id,
        listen,
        batch_ms,
        warmup: std::time::Duration::from_secs(warmup_secs),
        max_prefix,
        max_attr_bytes: max_attr_mb << 20,
        peers,
        mrt,
        bmp_listen,
        bmp,
        safety,
        vrp_file,
        damping,
        hold_down,
    }
}

fn pops(cx: &mut Ctx<'_>, raw: &[S<raw::Pop>]) -> Vec<Pop> {
    let mut out: Vec<Pop> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let f = |k: &str| format!("pop[{i}].{k}");
        let r = p.get_ref();
        let name = r.name.get_ref().clone();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            cx.err(
                &r.name,
                f("name"),
                format!("`{name}` must be letters, digits, `-` or `_`"),
            );
        } else if out.iter().any(|o| o.name == name) {
            cx.err(&r.name, f("name"), format!("POP `{name}` is defined twice"));
        }
        let mut ipv4 = Vec::new();
        for (j, a) in r.ipv4.iter().enumerate() {
            match a.get_ref().parse::<Ipv4Addr>() {
                Ok(x) => ipv4.push(x),
                Err(_) => cx.err(
                    a,
                    format!("pop[{i}].ipv4[{j}]"),
                    format!("`{}` is not an IPv4 address", a.get_ref()),
                ),
            }
        }
        let mut ipv6 = Vec::new();
        for (j, a) in r.ipv6.iter().enumerate() {
            match a.get_ref().parse::<Ipv6Addr>() {
                Ok(x) => ipv6.push(x),
                Err(_) => cx.err(
                    a,
                    format!("pop[{i}].ipv6[{j}]"),
                    format!("`{}` is not an IPv6 address", a.get_ref()),
                ),
            }
        }
        if r.ipv4.is_empty() && r.ipv6.is_empty() {
            cx.err(
                &r.name,
                f("ipv4"),
                format!("POP `{name}` has no address (give ipv4 and/or ipv6)"),
            );
        }
        let location = match (&r.lat, &r.lon) {
            (Some(la), Some(lo)) => {
                let (lat, lon) = (*la.get_ref(), *lo.get_ref());
                if !(-90.0..=90.0).contains(&lat) {
                    cx.err(la, f("lat"), format!("{lat} is not a latitude (-90..=90)"));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    cx.err(lo, f("lon"), format!("{lon} is not a longitude (-180..=180)"));
                }
                Some((lat, lon))
            }
            (Some(la), None) => {
                cx.err(la, f("lon"), "lat is given without lon");
                None
            }
            (None, Some(lo)) => {
                cx.err(lo, f("lat"), "lon is given without lat");
                None
            }
            (None, None) => None,
        };
        let mut asns = Vec::new();
        for (j, a) in r.asns.iter().enumerate() {
            let v = *a.get_ref();
            if (1..=u32::MAX as i64).contains(&v) {
                asns.push(Asn(v as u32));
            } else {
                cx.err(a, format!("pop[{i}].asns[{j}]"), format!("{v} is not an AS number"));
            }
        }
        let weight = cx.int(&r.weight, &f("weight"), 0, 1_000_000, 100u32);
        let capacity = r
            .capacity
            .as_ref()
            .map(|_| cx.int(&r.capacity, &f("capacity"), 0, i64::MAX, 0u64));
        let state = match &r.state {
            None => PopState::Up,
            Some(s) => match s.get_ref().as_str() {
                "up" => PopState::Up,
                "down" => PopState::Down,
                "drained" => PopState::Drained,
                other => {
                    cx.err(s, f("state"), format!("`{other}` is not one of up, down, drained"));
                    PopState::Up
                }
            },
        };
        let up_thresh = match &r.up_thresh {
            None => 0.5,
            Some(t) => {
                let v = *t.get_ref();
                if v > 0.0 && v <= 1.0 {
                    v
                } else {
                    cx.err(t, f("up_thresh"), format!("{v} is not a share in (0, 1]"));
                    0.5
                }
            }
        };
        let degraded_below = r.degraded_below.as_ref().and_then(|t| {
            let v = *t.get_ref();
            if v > up_thresh && v <= 1.0 {
                Some(v)
            } else {
                cx.err(
                    t,
                    f("degraded_below"),
                    format!("{v} must be above up_thresh ({up_thresh}) and at most 1"),
                );
                None
            }
        });
        let default_addr = ipv4
            .first()
            .map(|a| IpAddr::V4(*a))
            .or_else(|| ipv6.first().map(|a| IpAddr::V6(*a)));
        let mut checks: Vec<HealthCheck> = Vec::new();
        for (j, c) in r.check.iter().enumerate() {
            if let Some(hc) = check(cx, c, &format!("pop[{i}].check[{j}]"), &name, default_addr) {
                if checks.iter().any(|o| o.name == hc.name) {
                    cx.err(
                        c,
                        format!("pop[{i}].check[{j}]"),
                        format!("check `{}` is defined twice (give each a distinct `name`)", hc.name),
                    );
                }
                checks.push(hc);
            }
        }
        out.push(Pop {
            name,
            ipv4,
            ipv6,
            location,
            asns,
            weight,
            capacity,
            state,
            up_thresh,
            degraded_below,
            checks,
        });
    }
    if out.len() > u16::MAX as usize {
        cx.errors.push(ConfigError {
            location: cx.loc(0),
            field: "pop".into(),
            message: "too many POPs".into(),
        });
    }
    out
}

const CHECK_FIELDS: &[(&str, &[&str])] = &[
    ("tcp", &["address", "port"]),
    (
        "http",
        &[
            "address",
            "port",
            "method",
            "path",
            "host",
            "expect_status",
            "expect_body",
            "max_body_bytes",
        ],
    ),
    (
        "https",
        &[
            "address",
            "port",
            "method",
            "path",
            "host",
            "expect_status",
            "expect_body",
            "max_body_bytes",
            "sni",
            "verify",
            "ca_file",
        ],
    ),
    ("icmp", &["address"]),
    (
        "dns",
        &["address", "port", "query", "qtype", "expect_rcode", "expect_answer"],
    ),
    ("exec", &["command"]),
];

fn check(
    cx: &mut Ctx<'_>,
    c: &S<raw::Check>,
    field: &str,
    pop: &str,
    default_addr: Option<IpAddr>,
) -> Option<HealthCheck> {
    let r = c.get_ref();
    let kind = r.kind.get_ref().as_str();
    let allowed = cx.kind_fields(&r.kind, field, "check type", CHECK_FIELDS)?;
    let present: [(&str, Option<usize>); 16] = [
        ("sni", r.sni.as_ref().map(|x| x.span().start)),
        ("verify", r.verify.as_ref().map(|x| x.span().start)),
        ("ca_file", r.ca_file.as_ref().map(|x| x.span().start)),
        ("address", r.address.as_ref().map(|x| x.span().start)),
        ("port", r.port.as_ref().map(|x| x.span().start)),
        ("method", r.method.as_ref().map(|x| x.span().start)),
        ("path", r.path.as_ref().map(|x| x.span().start)),
        ("host", r.host.as_ref().map(|x| x.span().start)),
        (
            "expect_status",
            r.expect_status
                .as_ref()
                .map(|v| v.first().map_or(c.span().start, |x| x.span().start)),
        ),
        ("expect_body", r.expect_body.as_ref().map(|x| x.span().start)),
        ("max_body_bytes", r.max_body_bytes.as_ref().map(|x| x.span().start)),
        ("query", r.query.as_ref().map(|x| x.span().start)),
        ("qtype", r.qtype.as_ref().map(|x| x.span().start)),
        ("expect_rcode", r.expect_rcode.as_ref().map(|x| x.span().start)),
        ("expect_answer", r.expect_answer.as_ref().map(|x| x.span().start)),
        ("command", r.command.as_ref().map(|x| x.span().start)),
    ];
    let bad = !cx.only_fields(field, kind, "check", allowed, &present);
    let interval_ms = cx.int(&r.interval_ms, &format!("{field}.interval_ms"), 100, 3_600_000, 5000u64);
    let fast_interval_ms = cx.int(
        &r.fast_interval_ms,
        &format!("{field}.fast_interval_ms"),
        100,
        interval_ms as i64,
        interval_ms.min(1000),
    );
    let timeout_ms = cx.int(
        &r.timeout_ms,
        &format!("{field}.timeout_ms"),
        10,
        600_000,
        (interval_ms / 2).max(10),
    );
    if timeout_ms > interval_ms {
        if let Some(t) = &r.timeout_ms {
            cx.err(
                t,
                format!("{field}.timeout_ms"),
                format!("{timeout_ms} ms is longer than the interval ({interval_ms} ms)"),
            );
        }
    }
    let rise = cx.int(&r.rise, &format!("{field}.rise"), 1, 100, 2u32);
    let fall = cx.int(&r.fall, &format!("{field}.fall"), 1, 100, 3u32);
    let initial = match &r.initial {
        None => Initial::Up,
        Some(s) => match s.get_ref().as_str() {
            "up" => Initial::Up,
            "down" => Initial::Down,
            "wait" => Initial::Wait,
            o => {
                cx.err(
                    s,
                    format!("{field}.initial"),
                    format!("`{o}` is not one of up, down, wait"),
                );
                Initial::Up
            }
        },
    };

    if bad {
        return None;
    }
    // The network address of tcp, http and dns checks.
    let target = |cx: &mut Ctx<'_>, default_port: Option<u16>| -> Option<SocketAddr> {
        let addr = match &r.address {
            Some(a) => match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    cx.err(
                        a,
                        format!("{field}.address"),
                        format!("`{}` is not an IP address", a.get_ref()),
                    );
                    return None;
                }
            },
            None => match default_addr {
                Some(a) => a,
                None => {
                    cx.err(&r.kind, format!("{field}.address"), "no address to probe");
                    return None;
                }
            },
        };
        let port = match (&r.port, default_port) {
            (Some(_), _) => cx.int(&r.port, &format!("{field}.port"), 1, 65535, 0u16),
            (None, Some(p)) => p,
            (None, None) => {
                cx.err(
                    &r.kind,
                    format!("{field}.port"),
                    format!("a `{kind}` check needs `port`"),
                );
                return None;
            }
        };
        Some(SocketAddr::new(addr, port))
    };
    let (kind_v, label) = match kind {
        "tcp" => {
            let t = target(cx, None)?;
            (CheckKind::Tcp { target: t }, t.to_string())
        }
        "http" | "https" => {
            let t = target(cx, Some(if kind == "https" { 443 } else { 80 }))?;
            let method = r
                .method
                .as_ref()
                .map_or("GET".to_string(), |m| m.get_ref().to_ascii_uppercase());
            if !["GET", "HEAD", "POST", "OPTIONS"].contains(&method.as_str()) {
                if let Some(m) = &r.method {
                    cx.err(
                        m,
                        format!("{field}.method"),
                        format!("`{method}` is not one of GET, HEAD, POST, OPTIONS"),
                    );
                }
            }
            let path = r.path.as_ref().map_or("/".to_string(), |p| p.get_ref().clone());
            if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                if let Some(p) = &r.path {
                    cx.err(
                        p,
                        format!("{field}.path"),
                        "the path must start with `/` and hold no spaces or control characters",
                    );
                }
            }
            let mut expect_status = Vec::new();
            for (k, st) in r.expect_status.iter().flatten().enumerate() {
                let v = *st.get_ref();
                if (100..=599).contains(&v) {
                    expect_status.push(v as u16);
                } else {
                    cx.err(
                        st,
                        format!("{field}.expect_status[{k}]"),
                        format!("{v} is not an HTTP status"),
                    );
                }
            }
            let host = r.host.as_ref().map(|h| h.get_ref().clone()).unwrap_or_default();
            if host.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                if let Some(h) = &r.host {
                    cx.err(
                        h,
                        format!("{field}.host"),
                        "the Host header holds no spaces or control characters",
                    );
                }
            }
            let max_body_bytes = cx.int(
                &r.max_body_bytes,
                &format!("{field}.max_body_bytes"),
                0,
                16 << 20,
                64 * 1024usize,
            );
            let expect_body = r.expect_body.as_ref().map(|b| b.get_ref().clone());
            let tls = (kind == "https").then(|| crate::model::TlsCheck {
                sni: r.sni.as_ref().map(|s| s.get_ref().clone()).unwrap_or_else(|| {
                    if host.is_empty() {
                        t.ip().to_string()
                    } else {
                        host.split(':').next().unwrap_or(&host).to_string()
                    }
                }),
                verify: r.verify.as_ref().is_none_or(|v| *v.get_ref()),
                ca_file: r.ca_file.as_ref().map(|f| cx.resolve(f.get_ref())),
            });
            let kind = CheckKind::Http {
                target: t,
                method,
                path,
                host,
                expect_status,
                expect_body,
                max_body_bytes,
                tls,
            };
            (kind, t.to_string())
        }
        "dns" => {
            let t = target(cx, Some(53))?;
            let Some(q) = &r.query else {
                cx.err(
                    &r.kind,
                    format!("{field}.query"),
                    "a `dns` check needs `query` (the name to ask)",
                );
                return None;
            };
            let qname = match name::from_text(q.get_ref()) {
                Ok(n) => n,
                Err(e) => {
                    cx.err(q, format!("{field}.query"), e.to_string());
                    return None;
                }
            };
            let qtype = match r.qtype.as_ref().map_or("A", |t| t.get_ref().as_str()) {
                "A" => 1,
                "AAAA" => 28,
                "SOA" => 6,
                "NS" => 2,
                "TXT" => 16,
                other => {
                    if let Some(qt) = &r.qtype {
                        cx.err(
                            qt,
                            format!("{field}.qtype"),
                            format!("`{other}` is not one of A, AAAA, SOA, NS, TXT"),
                        );
                    }
                    1
                }
            };
            let expect_rcode = match r.expect_rcode.as_ref().map_or("NOERROR", |t| t.get_ref().as_str()) {
                "NOERROR" => 0,
                "NXDOMAIN" => 3,
                other => {
                    if let Some(rc) = &r.expect_rcode {
                        cx.err(
                            rc,
                            format!("{field}.expect_rcode"),
                            format!("`{other}` is not one of NOERROR, NXDOMAIN"),
                        );
                    }
                    0
                }
            };
            let expect_answer = match &r.expect_answer {
                None => None,
                Some(a) => match a.get_ref().parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        cx.err(
                            a,
                            format!("{field}.expect_answer"),
                            format!("`{}` is not an IP address", a.get_ref()),
                        );
                        None
                    }
                },
            };
            (
                CheckKind::Dns {
                    target: t,
                    qname,
                    qtype,
                    expect_rcode,
                    expect_answer,
                },
                t.to_string(),
            )
        }
        "icmp" => {
            let t = target(cx, Some(0))?;
            (CheckKind::Icmp { target: t.ip() }, t.ip().to_string())
        }
        "exec" => {
            let argv: Vec<String> = r
                .command
                .as_ref()
                .map(|c| c.get_ref().iter().map(|a| a.get_ref().clone()).collect())
                .unwrap_or_default();
            if argv.first().is_none_or(|p| p.is_empty()) {
                cx.err(
                    &r.kind,
                    format!("{field}.command"),
                    "an `exec` check needs `command` = [program, args...]",
                );
                return None;
            }
            let label = argv[0].clone();
            (CheckKind::Exec { argv }, label)
        }
        _ => return None,
    };
    let name = match &r.name {
        Some(n) if !n.get_ref().is_empty() && !n.get_ref().contains(char::is_whitespace) => {
            format!("{pop}/{}", n.get_ref())
        }
        Some(n) => {
            cx.err(
                n,
                format!("{field}.name"),
                "a check name must be non-empty and hold no spaces",
            );
            return None;
        }
        None => format!("{pop}/{kind}:{label}"),
    };
    Some(HealthCheck {
        name,
        kind: kind_v,
        interval_ms,
        fast_interval_ms,
        timeout_ms,
        rise,
        fall,
        initial,
    })
}

fn tsig_keys(cx: &mut Ctx<'_>, raw: &[S<raw::Tsig>]) -> Vec<TsigConf> {
    let mut out: Vec<TsigConf> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let r = t.get_ref();
        let f = |k: &str| format!("tsig[{i}].{k}");
        let name = match name::from_text(r.name.get_ref()) {
            Ok(w) => name::to_text(&name::to_lowercase(&w)),
            Err(e) => {
                cx.err(&r.name, f("name"), e.to_string());
                continue;
            }
        };
        if out.iter().any(|o| o.name == name) {
            cx.err(&r.name, f("name"), format!("key `{name}` is defined twice"));
        }
        let algorithm = r
            .algorithm
            .as_ref()
            .map_or("hmac-sha256".to_string(), |a| a.get_ref().clone());
        if let Err(e) = petrel_dnssec::tsig::TsigKey::new(&name, &algorithm, r.secret.get_ref()) {
            match (&r.algorithm, e.starts_with("algorithm")) {
                (Some(a), true) => cx.err(a, f("algorithm"), e),
                _ => cx.err(&r.secret, f("secret"), e),
            }
        }
        out.push(TsigConf {
            name,
            algorithm,
            secret: r.secret.get_ref().clone(),
        });
    }
    out
}

fn zone_transfer(cx: &mut Ctx<'_>, t: &raw::ZoneTransfer, i: usize, tsig: &[TsigConf]) -> TransferConf {
    let f = |k: &str| format!("zone[{i}].transfer.{k}");
    let mut allow = Vec::new();
    for (j, p) in t.allow.get_ref().iter().enumerate() {
        match Prefix::parse_strict(p.get_ref()) {
            Ok(x) => allow.push(x),
            Err(e) => cx.err(p, f(&format!("allow[{j}]")), format!("`{}`: {e}", p.get_ref())),
        }
    }
    let key = |cx: &mut Ctx<'_>, k: &S<String>, field: String| -> Option<usize> {
        let n = name::from_text(k.get_ref())
            .map(|w| name::to_text(&name::to_lowercase(&w)))
            .unwrap_or_default();
        let found = tsig.iter().position(|t| t.name == n);
        if found.is_none() {
            cx.err(k, field, format!("no [[tsig]] key is named `{}`", k.get_ref()));
        }
        found
    };
    let keys = t
        .keys
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(j, k)| key(cx, k, f(&format!("keys[{j}]"))))
        .collect();
    let mut notify = Vec::new();
    for (j, a) in t.notify.iter().flatten().enumerate() {
        match a.get_ref().parse::<SocketAddr>() {
            Ok(x) => notify.push(x),
            Err(_) => cx.err(
                a,
                f(&format!("notify[{j}]")),
                format!("`{}` is not an address:port", a.get_ref()),
            ),
        }
    }
    let notify_key = t.notify_key.as_ref().and_then(|k| key(cx, k, f("notify_key")));
    TransferConf {
        allow,
        keys,
        notify,
        notify_key,
    }
}

fn zones(cx: &mut Ctx<'_>, raw: &[S<raw::Zone>], tsig: &[TsigConf]) -> Vec<ZoneConf> {
    let mut out: Vec<ZoneConf> = Vec::new();
    for (i, z) in raw.iter().enumerate() {
        let r = z.get_ref();
        let origin = r.origin.get_ref();
        match name::from_text(origin) {
            Ok(w) => {
                let lw = name::to_lowercase(&w);
                if out.iter().any(|o| name::to_lowercase(&o.origin_wire) == lw) {
                    cx.err(
                        &r.origin,
                        format!("zone[{i}].origin"),
                        format!("zone `{origin}` is defined twice"),
                    );
                }
                let file = cx.resolve(r.file.get_ref());
                let at = cx.loc(r.file.span().start);
                let dnssec = r.dnssec.as_ref().map(|d| zone_dnssec(cx, d.get_ref(), i));
                let transfer = r.transfer.as_ref().map(|t| zone_transfer(cx, t.get_ref(), i, tsig));
                out.push(ZoneConf {
                    origin: name::to_text(&w),
                    origin_wire: w,
                    file,
                    at,
                    dnssec,
                    transfer,
                });
            }
            Err(e) => cx.err(&r.origin, format!("zone[{i}].origin"), e.to_string()),
        }
    }
    out
}

fn zone_dnssec(cx: &mut Ctx<'_>, d: &raw::ZoneDnssec, i: usize) -> DnssecConf {
    let f = |k: &str| format!("zone[{i}].dnssec.{k}");
    let stems = |cx: &mut Ctx<'_>, list: &[S<String>]| -> Vec<(PathBuf, Location)> {
        list.iter()
            .map(|k| {
                // A stem, or either of its files: the extension is dropped.
                let t = k.get_ref();
                let t = t
                    .strip_suffix(".key")
                    .or_else(|| t.strip_suffix(".private"))
                    .unwrap_or(t);
                (cx.resolve(t), cx.loc(k.span().start))
            })
            .collect()
    };
    let keys = stems(cx, d.keys.get_ref());
    if keys.is_empty() {
        cx.err(&d.keys, f("keys"), "a signed zone needs at least one key");
    }
    let publish = stems(cx, d.publish.as_deref().unwrap_or(&[]));
    if let Some(k) = publish.iter().find(|p| keys.iter().any(|k| k.0 == p.0)) {
        cx.err(
            &d.keys,
            f("publish"),
            format!("{} is both a signing and a published-only key", k.0.display()),
        );
    }
    DnssecConf {
        keys,
        publish,
        validity_days: cx.int(&d.validity_days, &f("validity_days"), 2, 365, 14u32),
        cds: d.cds.as_ref().is_none_or(|c| *c.get_ref()),
    }
}

/// The POP a `pop = "name"` field names (index 0 after reporting an
/// unknown one, so that validation goes on).
pub(crate) fn pop_named(cx: &mut Ctx<'_>, name: &S<String>, field: &str, pops: &[Pop]) -> PopIdx {
    match pops.iter().position(|x| x.name == *name.get_ref()) {
        Some(k) => PopIdx(k as u16),
        None => {
            cx.err(name, field, format!("no POP named `{}`", name.get_ref()));
            PopIdx(0)
        }
    }
}

fn pop_list(cx: &mut Ctx<'_>, list: &[S<String>], field: &str, pops: &[Pop], allowed: &[PopIdx]) -> Vec<PopIdx> {
    let mut out = Vec::new();
    for (j, n) in list.iter().enumerate() {
        match pops.iter().position(|p| p.name == *n.get_ref()) {
            Some(k) => {
                let idx = PopIdx(k as u16);
                if !allowed.is_empty() && !allowed.contains(&idx) {
                    cx.err(
                        n,
                        format!("{field}[{j}]"),
                        format!("POP `{}` is not a candidate of this service", n.get_ref()),
                    );
                } else if out.contains(&idx) {
                    cx.err(
                        n,
                        format!("{field}[{j}]"),
                        format!("POP `{}` is listed twice", n.get_ref()),
                    );
                } else {
                    out.push(idx);
                }
            }
            None => cx.err(n, format!("{field}[{j}]"), format!("unknown POP `{}`", n.get_ref())),
        }
    }
    out
}

fn services(
    cx: &mut Ctx<'_>,
    raw: &[S<raw::Service>],
    pops: &[Pop],
    zones: &[ZoneConf],
    have: Have,
) -> Vec<ServiceConf> {
    let mut out: Vec<ServiceConf> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let r = s.get_ref();
        let f = |k: &str| format!("service[{i}].{k}");
        let name_text = r.name.get_ref();
        let name_wire = match name::from_text(name_text) {
            Ok(w) => w,
            Err(e) => {
                cx.err(&r.name, f("name"), e.to_string());
                continue;
            }
        };
        let lw = name::to_lowercase(&name_wire);
        if !zones
            .iter()
            .any(|z| name::is_subdomain(&lw, &name::to_lowercase(&z.origin_wire)))
        {
            cx.err(
                &r.name,
                f("name"),
                format!("`{name_text}` is not inside any configured zone"),
            );
        }
        if out.iter().any(|o| name::to_lowercase(&o.name_wire) == lw) {
            cx.err(&r.name, f("name"), format!("service `{name_text}` is defined twice"));
        }
        let all: Vec<PopIdx> = (0..pops.len()).map(|k| PopIdx(k as u16)).collect();
        let cands = match &r.pops {
            Some(list) => {
                let c = pop_list(cx, list, &f("pops"), pops, &[]);
                if c.is_empty() {
                    cx.err(&r.name, f("pops"), "a service needs at least one POP");
                }
                c
            }
            None => all,
        };
        if cands.len() > MAX_CANDIDATES {
            cx.err(&r.name, f("pops"), format!("at most {MAX_CANDIDATES} POPs per service"));
        }
        let ttl = cx.int(&r.ttl, &f("ttl"), 0, 86_400, 30u32);
        let answers = cx.int(&r.answers, &f("answers"), 1, MAX_ANSWERS as i64, 1u8);
        let degraded_ttl = cx.int(&r.degraded_ttl, &f("degraded_ttl"), 0, 86_400, ttl.min(5));
        let fallback = match &r.fallback {
            None => Fallback::All,
            Some(v) => match v.get_ref().as_str() {
                "all" => Fallback::All,
                "none" => Fallback::None,
                "backup" => match &r.backup {
                    Some(list) => {
                        let set = pop_list(cx, list.get_ref(), &f("backup"), pops, &[]);
                        if set.is_empty() {
                            cx.err(list, f("backup"), "the backup set is empty");
                        }
                        Fallback::Backup(set)
                    }
                    None => {
                        cx.err(v, f("backup"), "`fallback = \"backup\"` needs `backup = [pop, ...]`");
                        Fallback::All
                    }
                },
                o => {
                    cx.err(v, f("fallback"), format!("`{o}` is not one of all, none, backup"));
                    Fallback::All
                }
            },
        };
        if let (Some(b), false) = (&r.backup, matches!(fallback, Fallback::Backup(_))) {
            cx.err(b, f("backup"), "`backup` applies only with `fallback = \"backup\"`");
        }
        let cname = r.cname.as_ref().and_then(|c| {
            let t = c.get_ref();
            if !t.contains("{pop}") {
                cx.err(c, f("cname"), "the CNAME template must contain `{pop}`");
                return None;
            }
            for p in pops {
                if let Err(e) = name::from_text(&t.replace("{pop}", &p.name)) {
                    cx.err(c, f("cname"), e.to_string());
                    return None;
                }
            }
            Some(t.clone())
        });
        let mut policies = Vec::new();
        let mut cidr_files = Vec::new();
        for (j, p) in r.policy.iter().enumerate() {
            let field = format!("service[{i}].policy[{j}]");
            if let Some((pc, file)) = policy(cx, p, &field, pops, &cands, have) {
                if let Some((file, at)) = file {
                    cidr_files.push(CidrFile {
                        policy: policies.len(),
                        file,
                        at,
                    });
                }
                if matches!(policies.last(), Some(Policy::Weighted(_))) {
                    cx.err(
                        p,
                        &field,
                        "`weighted` must be the last policy: it chooses within the tiers the others leave",
                    );
                }
                policies.push(pc);
            }
        }
        if r.policy.is_empty() && have.bgp {
            // With routing views, the default is the blend: geography first,
            // AS paths to shift it and to veto POPs without a route.
            policies.push(Policy::Blended {
                band_km: 0,
                hop_km: DEFAULT_HOP_KM,
            });
        }
        let warming = match r.warming.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None => Warming::default_for(&policies),
            Some((_, "policies")) => Warming::Policies,
            Some((_, "servfail")) => Warming::Servfail,
            Some((v, o)) => {
                cx.err(v, f("warming"), format!("`{o}` is not one of policies, servfail"));
                Warming::Policies
            }
        };
        out.push(ServiceConf {
            name: name::to_text(&name_wire),
            warming,
            degraded_ttl,
            name_wire,
            pops: cands,
            ttl,
            answers,
            fallback,
            cname,
            policies,
            cidr_files,
        });
    }
    out
}

const POLICY_FIELDS: &[(&str, &[&str])] = &[
    ("cidr", &["file", "entries"]),
    ("geo-nearest", &["band_km"]),
    ("geo-map", &["countries", "continents"]),
    ("priority", &["pops"]),
    ("default", &["pops"]),
    ("weighted", &["mode", "hash_v4_len", "hash_v6_len"]),
    ("super-sparrow", &[]),
    ("blended", &["band_km", "hop_km"]),
    ("as-map", &["entries"]),
    ("latency", &[]),
];

/// Kilometres one extra AS hop costs in the blended policy.
pub const DEFAULT_HOP_KM: u32 = 500;

fn policy(
    cx: &mut Ctx<'_>,
    p: &S<raw::Policy>,
    field: &str,
    pops: &[Pop],
    cands: &[PopIdx],
    have: Have,
) -> Option<(Policy, Option<(PathBuf, Location)>)> {
    let r = p.get_ref();
    let kind = r.kind.get_ref().as_str();
    let allowed = cx.kind_fields(&r.kind, field, "policy", POLICY_FIELDS)?;
    // Fields that belong to other policy types are mistakes, not silence.
    let present: [(&str, Option<usize>); 11] = [
        ("file", r.file.as_ref().map(|s| s.span().start)),
        ("entries", r.entries.as_ref().map(|s| s.span().start)),
        ("band_km", r.band_km.as_ref().map(|s| s.span().start)),
        ("countries", r.countries.as_ref().map(|_| p.span().start)),
        ("continents", r.continents.as_ref().map(|_| p.span().start)),
        ("pops", r.pops.as_ref().map(|s| s.span().start)),
        ("mode", r.mode.as_ref().map(|s| s.span().start)),
        ("hash_v4_len", r.hash_v4_len.as_ref().map(|s| s.span().start)),
        ("hash_v6_len", r.hash_v6_len.as_ref().map(|s| s.span().start)),
        ("hop_km", r.hop_km.as_ref().map(|s| s.span().start)),
        ("type", None),
    ];
    let bad = !cx.only_fields(field, kind, "policy", allowed, &present);
    if bad {
        return None;
    }
    if kind == "latency" && !have.measure {
        cx.err(
            &r.kind,
            format!("{field}.type"),
            "a `latency` policy needs measurements: add a [measure] section",
        );
    }
    if matches!(kind, "super-sparrow" | "blended" | "as-map") && !have.bgp {
        cx.err(
            &r.kind,
            format!("{field}.type"),
            format!("a `{kind}` policy needs routing views: [bgp] peers, MRT dumps or BMP routers"),
        );
    }
    let policy = match kind {
        "cidr" => {
            let mut entries = Vec::new();
            if let Some(map) = &r.entries {
                for (k, list) in map.get_ref() {
                    match Prefix::parse_strict(k) {
                        Ok(pfx) => {
                            let l = pop_list(cx, list.get_ref(), &format!("{field}.entries.\"{k}\""), pops, cands);
                            entries.push((pfx, l));
                        }
                        Err(e) => cx.err(list, format!("{field}.entries"), e.to_string()),
                    }
                }
            }
            if r.file.is_none() && r.entries.is_none() {
                cx.err(&r.kind, field, "a `cidr` policy needs `file` or `entries`");
            }
            let file = r
                .file
                .as_ref()
                .map(|f| (cx.resolve(f.get_ref()), cx.loc(f.span().start)));
            let mut map = CidrMap::new(
                file.as_ref()
                    .map_or_else(|| "inline map".to_string(), |(f, _)| f.display().to_string()),
            );
            for (pfx, pops) in entries {
                map.insert(pfx, pops);
            }
            return Some((Policy::Cidr(map), file));
        }
        "geo-nearest" | "geo-map" => {
            if !have.geo {
                cx.err(
                    &r.kind,
                    format!("{field}.type"),
                    format!("a `{kind}` policy needs a [geoip] database"),
                );
            }
            if kind == "geo-nearest" {
                let band_km = cx.int(&r.band_km, &format!("{field}.band_km"), 0, 20_000, 0u32);
                for &c in cands {
                    if pops[c.index()].location.is_none() {
                        cx.err(
                            &r.kind,
                            format!("{field}.type"),
                            format!(
                                "POP `{}` has no lat/lon, so geo-nearest cannot place it",
                                pops[c.index()].name
                            ),
                        );
                    }
                }
                Some(Policy::GeoNearest { band_km })
            } else {
                let mut conv =
                    |m: &Option<std::collections::BTreeMap<String, S<Vec<S<String>>>>>, what: &str, len: usize| {
                        let mut v = Vec::new();
                        for (code, list) in m.iter().flatten() {
                            if code.len() != len || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                                cx.err(
                                    list,
                                    format!("{field}.{what}"),
                                    format!("`{code}` is not a {len}-letter upper-case code"),
                                );
                            }
                            v.push((
                                code.clone(),
                                pop_list(cx, list.get_ref(), &format!("{field}.{what}.{code}"), pops, cands),
                            ));
                        }
                        v
                    };
                let countries = conv(&r.countries, "countries", 2);
                let continents = conv(&r.continents, "continents", 2);
                if countries.is_empty() && continents.is_empty() {
                    cx.err(
                        &r.kind,
                        field,
                        "a `geo-map` policy needs `countries` and/or `continents`",
                    );
                }
                Some(Policy::GeoMap {
                    countries: countries.into_iter().collect(),
                    continents: continents.into_iter().collect(),
                })
            }
        }
        "priority" | "default" => {
            let list = match &r.pops {
                Some(l) => pop_list(cx, l.get_ref(), &format!("{field}.pops"), pops, cands),
                None => {
                    cx.err(&r.kind, field, format!("a `{kind}` policy needs `pops`"));
                    Vec::new()
                }
            };
            Some(if kind == "priority" {
                Policy::Priority(list)
            } else {
                Policy::Default(list)
            })
        }
        "weighted" => {
            let mode = r.mode.as_ref().map_or("hash", |m| m.get_ref().as_str());
            match mode {
                "random" => Some(Policy::Weighted(WeightMode::Random)),
                "hash" => {
                    let v4_len = cx.int(&r.hash_v4_len, &format!("{field}.hash_v4_len"), 0, 32, 24u8);
                    let v6_len = cx.int(&r.hash_v6_len, &format!("{field}.hash_v6_len"), 0, 128, 48u8);
                    Some(Policy::Weighted(WeightMode::Hash { v4_len, v6_len }))
                }
                o => {
                    if let Some(m) = &r.mode {
                        cx.err(m, format!("{field}.mode"), format!("`{o}` is not one of hash, random"));
                    }
                    None
                }
            }
        }
        "super-sparrow" => Some(Policy::SuperSparrow),
        "latency" => Some(Policy::Latency),
        "blended" => Some(Policy::Blended {
            band_km: cx.int(&r.band_km, &format!("{field}.band_km"), 0, 20_000, 0u32),
            hop_km: cx.int(&r.hop_km, &format!("{field}.hop_km"), 0, 20_000, DEFAULT_HOP_KM),
        }),
        "as-map" => {
            let mut entries = Vec::new();
            match &r.entries {
                Some(map) => {
                    for (k, list) in map.get_ref() {
                        let asn = k.strip_prefix("AS").unwrap_or(k).parse::<u32>();
                        match asn {
                            Ok(a) => {
                                let l = pop_list(cx, list.get_ref(), &format!("{field}.entries.\"{k}\""), pops, cands);
                                entries.push((a, l));
                            }
                            Err(_) => cx.err(list, format!("{field}.entries"), format!("`{k}` is not an AS number")),
                        }
                    }
                }
                None => cx.err(&r.kind, field, "an `as-map` policy needs `entries` (ASN -> POPs)"),
            }
            Some(Policy::AsMap {
                source: "as-map".to_string(),
                map: entries.into_iter().collect(),
            })
        }
        _ => None,
    };
    policy.map(|p| (p, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
dns = ["127.0.0.1:5300"]

[geoip]
database = "geo.mmdb"

[[pop]]
name = "ams"
ipv4 = ["192.0.2.10"]
lat = 52.37
lon = 4.90

[[pop]]
name = "nyc"
ipv4 = ["192.0.2.20"]
ipv6 = ["2001:db8::20"]
lat = 40.71
lon = -74.0

[[zone]]
origin = "example.net."
file = "example.net.zone"

[[service]]
name = "www.example.net."
ttl = 20
policy = [
  { type = "cidr", entries = { "10.0.0.0/8" = ["nyc"] } },
  { type = "geo-nearest", band_km = 500 },
  { type = "weighted" },
]
"#;

    #[test]
    fn good_config() {
        let c = parse(Path::new("/etc/petrel/petrel.toml"), GOOD).unwrap();
        assert_eq!(c.pops.len(), 2);
        assert_eq!(c.zones[0].file, Path::new("/etc/petrel/example.net.zone"));
        assert_eq!(c.services[0].ttl, 20);
        assert_eq!(c.services[0].pops.len(), 2);
        assert_eq!(c.services[0].policies.len(), 3);
        assert_eq!(c.server.dns.len(), 1);
    }

    #[test]
    fn all_errors_with_lines_and_fields() {
        let bad = GOOD
            .replace("lat = 52.37", "lat = 152.37")
            .replace("ipv4 = [\"192.0.2.20\"]", "ipv4 = [\"192.0.2.300\"]")
            .replace("[\"nyc\"]", "[\"lon\"]")
            .replace("band_km = 500", "band_km = 500, pops = [\"ams\"]");
        let errs = parse(Path::new("p.toml"), &bad).unwrap_err();
        let s: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 4, "{s:#?}");
        assert!(s[0].starts_with("p.toml:11:7: pop[0].lat: 152.37"), "{}", s[0]);
        assert!(s[1].starts_with("p.toml:16:9: "), "{}", s[1]);
        assert!(s[1].contains("pop[1].ipv4[0]"), "{}", s[1]);
        assert!(s.iter().any(|e| e.contains("unknown POP `lon`")), "{s:#?}");
        assert!(
            s.iter()
                .any(|e| e.contains("`pops` does not apply to a `geo-nearest` policy")),
            "{s:#?}"
        );
    }

    #[test]
    fn health_checks() {
        let t = GOOD.replace(
            "lat = 52.37",
            "up_thresh = 1.0\ncheck = [\n  { type = \"tcp\", port = 443, interval_ms = 1000, timeout_ms = 300, rise = 1, fall = 2 },\n  { type = \"http\", path = \"/health\", expect_status = [200], expect_body = \"ok\", address = \"192.0.2.99\" },\n]\nlat = 52.37",
        );
        let c = parse(Path::new("p.toml"), &t).unwrap();
        let ams = &c.pops[0];
        assert_eq!(ams.up_thresh, 1.0);
        assert_eq!(ams.checks.len(), 2);
        assert_eq!(ams.checks[0].name, "ams/tcp:192.0.2.10:443");
        assert_eq!(
            (
                ams.checks[0].interval_ms,
                ams.checks[0].timeout_ms,
                ams.checks[0].rise,
                ams.checks[0].fall
            ),
            (1000, 300, 1, 2)
        );
        assert!(
            matches!(&ams.checks[1].kind, CheckKind::Http { target, path, expect_status, .. }
            if target.to_string() == "192.0.2.99:80" && path == "/health" && expect_status == &[200])
        );
        let bad = t
            .replace("type = \"tcp\", port = 443", "type = \"tcp\", path = \"/x\"")
            .replace("timeout_ms = 300", "timeout_ms = 3000");
        let errs = parse(Path::new("p.toml"), &bad).unwrap_err();
        let s: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            s.iter()
                .any(|e| e.contains("pop[0].check[0].path: `path` does not apply to a `tcp` check")),
            "{s:#?}"
        );
        assert!(
            s.iter()
                .any(|e| e.contains("timeout_ms: 3000 ms is longer than the interval")),
            "{s:#?}"
        );
        let exec = GOOD.replace("lat = 52.37", "check = [{ type = \"exec\", command = [\"/bin/true\"] }, { type = \"dns\", query = \"www.example.net.\", expect_answer = \"192.0.2.1\", port = 5300 }]\nlat = 52.37");
        let c = parse(Path::new("p.toml"), &exec).unwrap();
        assert_eq!(c.pops[0].checks[0].name, "ams/exec:/bin/true");
        assert!(matches!(&c.pops[0].checks[1].kind, CheckKind::Dns { target, qtype: 1, .. } if target.port() == 5300));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let errs = parse(Path::new("p.toml"), &GOOD.replace("ttl = 20", "ttl = 20\ntll = 5")).unwrap_err();
        assert_eq!(errs.len(), 1);
        let s = errs[0].to_string();
        assert!(s.starts_with("p.toml:28:1: service.tll: unknown field `tll`"), "{s}");
    }

    /// Every error of a config, as text.
    fn errors(text: &str) -> Vec<String> {
        parse(Path::new("p.toml"), text)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn has(errs: &[String], want: &str) {
        assert!(errs.iter().any(|e| e.contains(want)), "{want} in {errs:?}");
    }

    /// Every key of the config model: the fields of the file's structs
    /// (their TOML names).
    fn model_keys(raw: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let (mut in_struct, mut renamed) = (false, None);
        for l in raw.lines() {
            let t = l.trim();
            if l.starts_with("pub struct ") {
                in_struct = true;
            } else if l.starts_with('}') {
                in_struct = false;
            } else if let Some(r) = t.strip_prefix("#[serde(rename = \"") {
                renamed = r.split('"').next().map(str::to_string);
            } else if let Some(f) = t.strip_prefix("pub ").and_then(|f| f.split_once(':')).map(|(f, _)| f) {
                if in_struct {
                    keys.push(renamed.take().unwrap_or_else(|| f.to_string()));
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn signing_and_transfer_settings_name_their_field() {
        let zone = "[[zone]]\norigin = \"example.net.\"\nfile = \"example.net.zone\"\n";
        let signed = GOOD.replace(
            zone,
            &format!("{zone}[zone.dnssec]\nkeys = [\"K1.key\"]\npublish = [\"K1\"]\nvalidity_days = 1\n[zone.transfer]\nallow = [\"10.0.0.0/33\"]\nkeys = [\"nope.\"]\nnotify = [\"192.0.2.1\"]\n"),
        );
        let text = format!("{signed}[[tsig]]\nname = \"xfr.\"\nsecret = \"!!\"\n[[tsig]]\nname = \"x2.\"\nalgorithm = \"md5\"\nsecret = \"3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=\"\n");
        let e = errors(&text);
        has(&e, "zone[0].dnssec.publish: ");
        has(&e, "is both a signing and a published-only key");
        has(&e, "zone[0].dnssec.validity_days");
        has(&e, "zone[0].transfer.allow[0]: `10.0.0.0/33`");
        has(&e, "zone[0].transfer.keys[0]: no [[tsig]] key is named `nope.`");
        has(&e, "zone[0].transfer.notify[0]: `192.0.2.1` is not an address:port");
        has(&e, "tsig[0].secret: the secret is not base64");
        has(&e, "tsig[1].algorithm: algorithm `md5`");
        let ok = GOOD.replace(
            zone,
            &format!("{zone}[zone.transfer]\nallow = [\"10.0.0.0/8\"]\nkeys = [\"XFR\"]\nnotify_key = \"xfr.\"\n"),
        );
        let c = parse(
            Path::new("p.toml"),
            &format!("{ok}[[tsig]]\nname = \"xfr\"\nsecret = \"3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=\"\n"),
        )
        .unwrap();
        let t = c.zones[0].transfer.as_ref().unwrap();
        assert_eq!((t.keys.as_slice(), t.notify_key), (&[0][..], Some(0)));
        assert_eq!(c.tsig[0].name, "xfr.");
    }

    #[test]
    fn the_full_example_parses_and_holds_every_key() {
        let text = include_str!("../../../examples/full.toml");
        if let Err(e) = parse(Path::new("examples/full.toml"), text) {
            panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
        }
        let keys = model_keys(include_str!("raw.rs"));
        assert!(keys.len() > 200, "{keys:?}");
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| {
                // A commented line shows an alternative (`# [measure.clickhouse]`).
                !text.lines().map(|l| l.trim().trim_start_matches("# ")).any(|l| {
                    l.starts_with(&format!("{k} ="))
                        || l.contains(&format!("{{ {k} ="))
                        || l.contains(&format!(", {k} ="))
                        || (l.starts_with('[')
                            && l.split('#')
                                .next()
                                .unwrap_or("")
                                .trim()
                                .trim_matches(|c| c == '[' || c == ']')
                                .rsplit('.')
                                .next()
                                == Some(k))
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "keys the config takes that examples/full.toml leaves out: {missing:?}"
        );
    }

    #[test]
    fn every_wrong_type_and_unknown_key_is_reported_in_one_run() {
        let bad = GOOD
            .replacen("ttl = 20", "ttl = \"20\"", 1)
            .replacen("lat = 52.37", "lat = \"north\"", 1)
            .replacen(
                "file = \"example.net.zone\"",
                "file = \"example.net.zone\"\nfiel = 1",
                1,
            );
        let e = errors(&bad);
        assert_eq!(e.len(), 3, "{e:?}");
        has(&e, "service.ttl: expected a whole number, found the text \"20\"");
        has(&e, "pop.lat: expected a number, found the text \"north\"");
        has(&e, "unknown field `fiel`");
        // A required key with a wrong value is not reported again as missing.
        let e = errors(&GOOD.replacen("name = \"ams\"", "name = 7", 1));
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn a_wrong_type_is_said_in_plain_words_with_its_key() {
        let bad = GOOD.replacen("ttl = 20", "ttl = \"20\"", 1);
        assert_ne!(bad, GOOD);
        let e = errors(&bad);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("p.toml:"), "{e:?}");
        assert!(
            e[0].contains("service.ttl: expected a whole number, found the text \"20\" (write numbers without quotes)"),
            "{e:?}"
        );
        assert_eq!(
            plain_words("invalid type: integer `5`, expected a string"),
            "expected text in quotes, found the number 5"
        );
        assert_eq!(
            plain_words("invalid type: string \"yes\", expected a boolean"),
            "expected true or false, found the text \"yes\""
        );
        assert_eq!(plain_words("unknown field `rate`"), "unknown field `rate`");
    }

    #[test]
    fn rate_limiting_and_cookies_follow_reloads_listeners_do_not() {
        let a = parse(Path::new("p.toml"), GOOD).unwrap().server;
        let with = |extra: &str| parse(Path::new("p.toml"), &format!("{GOOD}\n{extra}")).unwrap().server;
        assert!(!a.restart_needed(&a));
        assert!(!a.restart_needed(&with("[server.rrl]\nresponses_per_second = 5\n")));
        assert!(!a.restart_needed(&with("[server.cookies]\nrequire = true\n")));
        assert!(a.restart_needed(&with("[server.dnstap]\nsocket = \"/run/t.sock\"\n")));
        let moved = parse(Path::new("p.toml"), &GOOD.replace("127.0.0.1:5300", "127.0.0.1:5301"))
            .unwrap()
            .server;
        assert!(a.restart_needed(&moved));
    }

    #[test]
    fn rate_limiting_and_cookies() {
        let c = parse(Path::new("p.toml"), GOOD).unwrap();
        assert_eq!(c.server.rrl, None);
        assert_eq!(c.server.cookies, CookieConf::default());
        let conf = format!(
            "{GOOD}\n[server.rrl]\nresponses_per_second = 10\nnxdomains_per_second = 0\nexempt = [\"192.0.2.0/24\"]\ntable_size = 5000\n\n[server.cookies]\nrequire = true\nsecret = \"e5e973e5a6b2a43f48e7dc849e37bfcf\"\n"
        );
        let c = parse(Path::new("p.toml"), &conf).unwrap();
        let r = c.server.rrl.unwrap();
        assert_eq!(r.per_second, [10, 10, 0, 10, 10]);
        assert_eq!(
            (r.window_secs, r.slip, r.ipv4_prefix_length, r.ipv6_prefix_length),
            (15, 2, 24, 56)
        );
        assert_eq!(r.table_size, 8192);
        assert_eq!(r.exempt.len(), 1);
        assert!(c.server.cookies.require);
        assert_eq!(c.server.cookies.secret.unwrap()[0], 0xe5);
        let bad = conf
            .replace("responses_per_second = 10", "responses_per_second = 10000000")
            .replace("192.0.2.0/24", "192.0.2.1/24")
            .replace("e5e973e5a6b2a43f48e7dc849e37bfcf", "e5e973")
            .replace("require = true", "require = true\nprevious_secret = \"zz\"");
        let errs = errors(&bad);
        has(&errs, "server.rrl.responses_per_second: 10000000 is out of range");
        has(&errs, "server.rrl.exempt[0]: `192.0.2.1/24`");
        has(&errs, "server.cookies.secret: a server secret is 32 hex digits");
        has(
            &errs,
            "server.cookies.previous_secret: a server secret is 32 hex digits",
        );
        assert!(errs.iter().all(|e| e.starts_with("p.toml:")), "{errs:?}");
        has(
            &errors(&format!("{GOOD}\n[server.rrl]\nrate = 5\n")),
            "unknown field `rate`",
        );
    }

    #[test]
    fn measure_section_and_the_latency_policy() {
        let geo = "  { type = \"geo-nearest\", band_km = 500 },\n";
        assert!(GOOD.contains(geo));
        let latency = GOOD.replace(geo, &format!("  {{ type = \"latency\" }},\n{geo}"));
        let errs = parse(Path::new("p.toml"), &latency).unwrap_err();
        let s = errs[0].to_string();
        assert!(
            s.contains("service[0].policy[1].type: a `latency` policy needs measurements: add a [measure] section"),
            "{s}"
        );
        assert!(s.starts_with("p.toml:"), "{s}");
        let good = format!("{latency}\n[measure]\nhalf_life_mins = 60\nmin_samples = 20\ntie_ms = 8\nunit = \"fixed\"\nunit_v4_len = 22\n");
        let c = parse(Path::new("p.toml"), &good).unwrap();
        assert!(
            matches!(c.services[0].policies[1], Policy::Latency),
            "{:?}",
            c.services[0].policies
        );
        let m = c.measure.unwrap();
        assert_eq!(m.decay.half_life_ms, 3_600_000);
        assert_eq!((m.rank.min_samples, m.rank.min_pops, m.rank.tie_ms), (20.0, 2, 8.0));
        assert_eq!(m.unit, petrel_measure::UnitMode::Fixed { v4_len: 22, v6_len: 48 });
        assert_eq!((m.recompile_secs, m.max_units), (60, 2_000_000));
        let bad = good
            .replace("unit = \"fixed\"", "unit = \"asn\"")
            .replace("tie_ms = 8", "tie_ms = -1");
        let errs = errors(&bad);
        has(&errs, "measure.unit: `asn` is not one of bgp, fixed");
        has(&errs, "measure.tie_ms: -1 is out of range");
        // The RUM tag: its settings, and fronts that serve it.
        let front = "\n[[http]]\nname = \"f\"\nlisten = [\"127.0.0.1:8080\"]\nrum = true\n";
        let errs = errors(&format!("{good}{front}"));
        has(&errs, "http[0].rum: serving the RUM tag needs a [measure.rum] section");
        let rum =
            "\n[measure.rum]\nurl = \"https://{pop}.rum.example.net/rum/o\"\nsample_percent = 5\npops = [\"ams\"]\n";
        let c = parse(Path::new("p.toml"), &format!("{good}{rum}{front}")).unwrap();
        let t = c.measure.unwrap().rum.unwrap();
        assert_eq!(
            (t.sample, t.pops.clone(), t.collector.as_str()),
            (5.0, vec!["ams".to_string()], "/rum/beacon")
        );
        assert!(c.http[0].rum);
        // Exploration: 2 % by default with RUM, none without; asked for
        // without RUM, an error.
        let c = parse(Path::new("p.toml"), &format!("{good}{rum}")).unwrap();
        assert_eq!(c.measure.unwrap().explore_ppm, 20_000);
        assert_eq!(
            parse(Path::new("p.toml"), &good).unwrap().measure.unwrap().explore_ppm,
            0
        );
        let explore = good.replace("[measure]\n", "[measure]\nexplore_percent = 3\n");
        assert!(explore.contains("explore_percent"), "{explore}");
        has(
            &errors(&explore),
            "measure.explore_percent: exploration needs a [measure.rum] section",
        );
        let bad = rum.replace("{pop}.", "").replace("[\"ams\"]", "[\"xyz\"]");
        let errs = errors(&format!("{good}{bad}"));
        has(&errs, "measure.rum.url: the beacon URL needs `{pop}`");
        has(&errs, "measure.rum.pops[0]: no POP named `xyz`");
        // Resolver discovery: a name in a zone served here.
        let who = |url: &str, addrs: &str| format!("{good}{rum}whoami_url = \"{url}\"\nwhoami_addresses = {addrs}\n");
        let c = parse(
            Path::new("p.toml"),
            &who(
                "https://{id}.whoami.Example.net:8443/rum/o",
                "[\"192.0.2.80\", \"2001:db8::80\"]",
            ),
        )
        .unwrap();
        let m = c.measure.unwrap();
        let w = m.whoami.unwrap();
        assert_eq!(w.domain_wire, b"\x06whoami\x07example\x03net\x00");
        assert_eq!((w.v4.len(), w.v6.len()), (1, 1));
        assert_eq!(
            m.rum.unwrap().whoami.as_deref(),
            Some("https://{id}.whoami.Example.net:8443/rum/o")
        );
        has(
            &errors(&who("https://whoami.example.net/rum/o", "[\"192.0.2.80\"]")),
            "measure.rum.whoami_url: `https://whoami.example.net/rum/o`: the host must be `{id}.` and a name",
        );
        has(
            &errors(&who("https://{id}.whoami.example.org/rum/o", "[\"192.0.2.80\"]")),
            "`whoami.example.org` is in none of the zones served here",
        );
        has(
            &errors(&who("https://{id}.whoami.example.net/rum/o", "[\"nope\"]")),
            "measure.rum.whoami_addresses[0]: `nope` is not an IP address",
        );
        has(
            &errors(&format!("{good}{rum}whoami_url = \"https://{{id}}.w.example.net/\"\n")),
            "measure.rum.whoami_url: needs whoami_addresses",
        );
        // Alerts.
        let alerts = "\n[measure.alerts]\nmargin_percent = 50\nopen_after_secs = 60\ncurrent_half_life_secs = 30\n";
        let c = parse(Path::new("p.toml"), &format!("{good}{alerts}")).unwrap();
        let a = c.measure.unwrap().alerts.unwrap();
        assert_eq!((a.margin, a.open_after_ms, a.close_after_ms), (0.5, 60_000, 600_000));
        assert_eq!((a.current.half_life_ms, a.baseline.half_life_ms), (30_000, 86_400_000));
        let errs = errors(&format!("{good}{}", alerts.replace("= 50", "= 0")));
        has(&errs, "measure.alerts.margin_percent: 0 is out of range");
        let rd = good.replace("[measure]\n", "[measure]\nreverse_dns = \"127.0.0.53:53\"\n");
        let c = parse(Path::new("p.toml"), &rd).unwrap();
        assert_eq!(c.measure.unwrap().reverse_dns, Some("127.0.0.53:53".parse().unwrap()));
        has(
            &errors(&rd.replace("127.0.0.53:53", "resolver")),
            "measure.reverse_dns: `resolver` is not an address:port",
        );
        // The ClickHouse store, instead of SQLite.
        let ch = "\n[measure.clickhouse]\nurl = \"http://127.0.0.1:8123/\"\n";
        let c = parse(Path::new("p.toml"), &format!("{good}{ch}")).unwrap();
        let k = c.measure.unwrap().clickhouse.unwrap();
        assert_eq!(
            (k.url.as_str(), k.database.as_str(), k.user.as_str()),
            ("http://127.0.0.1:8123", "petrel", "default")
        );
        let both = good.replace("[measure]\n", "[measure]\ndatabase = \"m.db\"\n");
        has(
            &errors(&format!("{both}{ch}")),
            "measure.database: samples go to one store",
        );
        has(
            &errors(&format!("{good}{ch}database = \"x-y\"\n")),
            "measure.clickhouse.database: `x-y`: letters, digits and `_`",
        );
        has(
            &errors(&format!("{good}{}", ch.replace("http://", "https://"))),
            "measure.clickhouse.url: `https://127.0.0.1:8123/`",
        );
        let hook = |u: &str| format!("{good}{alerts}webhook = \"{u}\"\n");
        let c = parse(Path::new("p.toml"), &hook("http://127.0.0.1:9099/hooks/petrel")).unwrap();
        let w = c.measure.unwrap().webhook.unwrap();
        assert_eq!(
            (w.authority.as_str(), w.path.as_str()),
            ("127.0.0.1:9099", "/hooks/petrel")
        );
        let c = parse(Path::new("p.toml"), &hook("http://alerts.example.net")).unwrap();
        let w = c.measure.unwrap().webhook.unwrap();
        assert_eq!((w.authority.as_str(), w.path.as_str()), ("alerts.example.net:80", "/"));
        has(
            &errors(&hook("https://alerts.example.net/")),
            "measure.alerts.webhook: `https://alerts.example.net/`: the webhook must be an http:// URL",
        );
        has(
            &errors(&hook("http://host:99999/")),
            "is not a URL of the form http://host:port/path",
        );
    }

    #[test]
    fn bgp_section() {
        let good = format!(
            "{GOOD}\n[bgp]\nasn = 64600\nrouter_id = \"192.0.2.1\"\nlisten = \"127.0.0.1:1179\"\n\n[[bgp.peer]]\nname = \"up1\"\npop = \"ams\"\naddress = \"192.0.2.9\"\nasn = 4200000001\npassive = true\nmax_prefix = 1000000\nmd5_password = \"s3cret\"\n"
        );
        let c = parse(Path::new("p.toml"), &good).unwrap();
        let b = c.bgp.unwrap();
        assert_eq!(b.peers[0].asn, Asn(4_200_000_001));
        assert_eq!(b.peers[0].local_asn, Asn(64600));
        assert_eq!(b.peers[0].max_prefix, Some(1_000_000));
        assert!(b.peers[0].passive && b.peers[0].ipv4 && b.peers[0].ipv6);
        // A service without policies gets the blend once there are views.
        let policies = "policy = [\n  { type = \"cidr\", entries = { \"10.0.0.0/8\" = [\"nyc\"] } },\n  { type = \"geo-nearest\", band_km = 500 },\n  { type = \"weighted\" },\n]\n";
        assert!(good.contains(policies));
        let c = parse(Path::new("p.toml"), &good.replace(policies, "")).unwrap();
        assert!(
            matches!(c.services[0].policies[..], [Policy::Blended { .. }]),
            "{:?}",
            c.services[0].policies
        );
        let bad = good
            .replace("pop = \"ams\"", "pop = \"xyz\"")
            .replace("asn = 4200000001", "asn = 4200000001\nhold_time = 2\nmultihop = 300")
            .replace("router_id = \"192.0.2.1\"", "router_id = \"0.0.0.0\"");
        let errs = parse(Path::new("p.toml"), &bad).unwrap_err();
        let s: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for want in [
            "bgp.peer[0].pop: no POP named `xyz`",
            "bgp.peer[0].hold_time: a hold time is 0 or at least 3",
            "bgp.peer[0].multihop: 300 is out of range",
            "bgp.router_id: not a non-zero IPv4 address",
        ] {
            assert!(s.iter().any(|e| e.contains(want)), "{want}: {s:#?}");
        }
        assert!(s.iter().all(|e| e.starts_with("p.toml:")), "{s:#?}");
        // BGP policies need views.
        let t = GOOD.replace(
            "{ type = \"geo-nearest\", band_km = 500 }",
            "{ type = \"super-sparrow\" }",
        );
        let errs = parse(Path::new("p.toml"), &t).unwrap_err();
        assert!(errs[0].to_string().contains("needs routing views"), "{errs:?}");
    }

    #[test]
    fn bgp_bmp_routers() {
        // BMP alone gives views: no AS number or identifier needed.
        let good = format!(
            "{GOOD}\n[bgp]\nbmp_listen = \"127.0.0.1:11019\"\n\n[[bgp.bmp]]\nrouter = \"192.0.2.50\"\npop = \"ams\"\npeers = [\"192.0.2.9\"]\n\n[[bgp.bmp]]\nrouter = \"192.0.2.50\"\npop = \"nyc\"\npeers = [\"2001:db8::9\"]\nrib = \"pre-policy\"\n"
        );
        let t = good.replace(
            "{ type = \"geo-nearest\", band_km = 500 }",
            "{ type = \"super-sparrow\" }",
        );
        let c = parse(Path::new("p.toml"), &t).unwrap();
        let b = c.bgp.unwrap();
        assert_eq!(b.bmp_listen, Some("127.0.0.1:11019".parse().unwrap()));
        assert_eq!(b.bmp.len(), 2);
        assert_eq!(b.bmp[0].rib, RibKind::PostPolicyIn);
        assert_eq!(b.bmp[1].rib, RibKind::PrePolicyIn);
        assert_eq!(b.bmp[1].peers, vec!["2001:db8::9".parse::<IpAddr>().unwrap()]);
        let bad = good
            .replace("bmp_listen = \"127.0.0.1:11019\"\n", "")
            .replace("rib = \"pre-policy\"", "rib = \"best\"")
            .replace("peers = [\"2001:db8::9\"]", "peers = [\"192.0.2.9\", \"nope\"]");
        let errs = parse(Path::new("p.toml"), &bad).unwrap_err();
        let s: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for want in [
            "bgp.bmp[0].router: a BMP router needs `bgp.bmp_listen`",
            "bgp.bmp[1].rib: `best` is not one of post-policy, pre-policy, loc-rib",
            "bgp.bmp[1].peers: `nope` is not an IP address",
            "bgp.bmp[1].peers: router 192.0.2.50 already sends these peers to a view (bgp.bmp[0])",
        ] {
            assert!(s.iter().any(|e| e.contains(want)), "{want}: {s:#?}");
        }
        assert!(s.iter().all(|e| e.starts_with("p.toml:")), "{s:#?}");
    }

    #[test]
    fn weighted_must_be_last_and_geo_needs_a_database() {
        let t = GOOD
            .replace("  { type = \"weighted\" },\n", "")
            .replace("{ type = \"cidr\"", "{ type = \"weighted\" },\n  { type = \"cidr\"");
        let t = t.replace("[geoip]\ndatabase = \"geo.mmdb\"\n", "");
        let errs = parse(Path::new("p.toml"), &t).unwrap_err();
        let s: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(s.iter().any(|e| e.contains("must be the last policy")), "{s:#?}");
        assert!(s.iter().any(|e| e.contains("needs a [geoip] database")), "{s:#?}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(t in ".{0,400}") {
            let _ = parse(Path::new("x.toml"), &t);
        }

        #[test]
        fn never_panics_on_mutated_configs(cut in 0usize..800, insert in "[ -~]{0,8}") {
            let mut s = GOOD.to_string();
            let at = cut.min(s.len());
            if s.is_char_boundary(at) {
                s.insert_str(at, &insert);
            }
            let _ = parse(Path::new("x.toml"), &s);
        }
    }
}
