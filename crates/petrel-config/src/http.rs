//! `[[http]]` fronts: listeners, certificates, trusted proxies and rules.

use crate::model::{HttpCertConf, HttpConf, Pop, ServiceConf};
use crate::raw::{self, S};
use crate::validate::{pop_named, Ctx};
use petrel_http::client::{Header, Trusted};
use petrel_http::rules::{Action, Fallback, HostPattern, Marker, PathMatch, Redirect, Rule};
use petrel_http::template::Template;
use petrel_types::{Prefix, ServiceIdx};
use std::net::SocketAddr;

fn addrs(cx: &mut Ctx<'_>, v: &[S<String>], field: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (i, a) in v.iter().enumerate() {
        match a.get_ref().parse::<SocketAddr>() {
            Ok(x) => out.push(x),
            Err(_) => cx.err(
                a,
                format!("{field}[{i}]"),
                format!("`{}` is not an address:port", a.get_ref()),
            ),
        }
    }
    out
}

/// A service by its DNS name, with or without the final dot, any case.
fn service_named(cx: &mut Ctx<'_>, name: &S<String>, field: &str, services: &[ServiceConf]) -> ServiceIdx {
    let want = name.get_ref().trim_end_matches('.').to_ascii_lowercase();
    match services
        .iter()
        .position(|s| s.name.trim_end_matches('.').eq_ignore_ascii_case(&want))
    {
        Some(k) => ServiceIdx(k as u16),
        None => {
            cx.err(name, field, format!("no service named `{}`", name.get_ref()));
            ServiceIdx(0)
        }
    }
}

pub(crate) fn fronts(
    cx: &mut Ctx<'_>,
    raw: &[S<raw::Http>],
    pops: &[Pop],
    services: &[ServiceConf],
    has_rum: bool,
) -> Vec<HttpConf> {
    let mut out: Vec<HttpConf> = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let f = |k: &str| format!("http[{i}].{k}");
        let r = h.get_ref();
        if out.iter().any(|o| o.name == *r.name.get_ref()) {
            cx.err(&r.name, f("name"), format!("`{}` is defined twice", r.name.get_ref()));
        }
        let listen = addrs(cx, &r.listen, &f("listen"));
        let tls_listen = addrs(cx, &r.tls_listen, &f("tls_listen"));
        if listen.is_empty() && tls_listen.is_empty() {
            cx.err(
                &r.name,
                f("listen"),
                "an HTTP front needs `listen` or `tls_listen` addresses",
            );
        }
        let mut certificates = Vec::new();
        for (j, c) in r.certificates.iter().enumerate() {
            let c = c.get_ref();
            let mut names = Vec::new();
            for (k, n) in c.names.iter().enumerate() {
                match HostPattern::parse(n.get_ref()) {
                    Ok(p) => names.push(p),
                    Err(e) => cx.err(n, format!("{}[{k}]", f(&format!("certificates[{j}].names"))), e),
                }
            }
            if names.is_empty() {
                cx.err(
                    &c.cert,
                    f(&format!("certificates[{j}].names")),
                    "a certificate needs the SNI names it serves",
                );
            }
            certificates.push(HttpCertConf {
                cert: cx.resolve(c.cert.get_ref()),
                key: cx.resolve(c.key.get_ref()),
                names,
                at: cx.loc(c.cert.span().start),
            });
        }
        if !tls_listen.is_empty() && certificates.is_empty() {
            cx.err(
                &r.name,
                f("certificates"),
                "`tls_listen` needs at least one certificate",
            );
        }
        let mut trusted = Vec::new();
        for (j, p) in r.trusted_proxies.iter().enumerate() {
            match Prefix::parse_strict(p.get_ref()) {
                Ok(x) => trusted.push(x),
                Err(e) => cx.err(
                    p,
                    format!("{}[{j}]", f("trusted_proxies")),
                    format!("`{}`: {e}", p.get_ref()),
                ),
            }
        }
        let client_header = match r.client_header.as_ref().map(|s| s.get_ref().to_ascii_lowercase()) {
            None => Header::XForwardedFor,
            Some(s) if s == "x-forwarded-for" => Header::XForwardedFor,
            Some(s) if s == "forwarded" => Header::Forwarded,
            Some(s) => {
                let at = r.client_header.as_ref().expect("present");
                cx.err(
                    at,
                    f("client_header"),
                    format!("`{s}` is neither `x-forwarded-for` nor `forwarded`"),
                );
                Header::XForwardedFor
            }
        };
        let proxy_protocol = r.proxy_protocol.as_ref().is_some_and(|b| *b.get_ref());
        if proxy_protocol && trusted.is_empty() {
            let at = r.proxy_protocol.as_ref().expect("present");
            cx.err(
                at,
                f("proxy_protocol"),
                "the PROXY protocol is read only from `trusted_proxies`: name them",
            );
        }
        let pop = r.pop.as_ref().map(|p| pop_named(cx, p, &f("pop"), pops));
        let upstream = r.upstream.as_ref().map(|u| {
            let s = u.get_ref().trim();
            let authority = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
                cx.err(
                    u,
                    f("upstream"),
                    format!("`{s}` is not a content server (`host:port` or `http://host:port`)"),
                );
            }
            authority.to_string()
        });
        let default = match r.default.as_ref().map(|d| d.get_ref().as_str()) {
            None | Some("not-found") => Fallback::Respond {
                status: 404,
                body: "not found\n".into(),
            },
            Some("respond") => Fallback::Respond {
                status: cx.int(&r.default_status, &f("default_status"), 200, 599, 404u16),
                body: r.default_body.as_ref().map_or(String::new(), |b| b.get_ref().clone()),
            },
            Some("upstream") => {
                if upstream.is_none() {
                    let at = r.default.as_ref().expect("present");
                    cx.err(at, f("default"), "`upstream` needs `upstream = \"host:port\"`");
                }
                Fallback::Upstream
            }
            Some(other) => {
                let at = r.default.as_ref().expect("present");
                cx.err(
                    at,
                    f("default"),
                    format!("`{other}` is not one of not-found, respond, upstream"),
                );
                Fallback::Upstream
            }
        };
        // A front that only answers the remap API needs neither.
        let remap_api = r.remap_api.as_ref().is_some_and(|b| *b.get_ref());
        let rules = rules(
            cx,
            &r.rule,
            &f("rule"),
            services,
            remap_api || (pop.is_some() && upstream.is_some()),
        );
        out.push(HttpConf {
            name: r.name.get_ref().clone(),
            listen,
            tls_listen,
            certificates,
            trusted_proxies: Trusted(trusted),
            client_header,
            proxy_protocol,
            remap_api,
            pop,
            upstream,
            default,
            access_log: r.access_log.as_ref().is_some_and(|b| *b.get_ref()),
            rum: match &r.rum {
                Some(b) if *b.get_ref() && !has_rum => {
                    cx.err(b, f("rum"), "serving the RUM tag needs a [measure.rum] section");
                    false
                }
                Some(b) => *b.get_ref(),
                None => false,
            },
            max_connections: cx.int(&r.max_connections, &f("max_connections"), 1, 1_000_000, 10_000usize),
            header_timeout_secs: cx.int(&r.header_timeout_secs, &f("header_timeout_secs"), 1, 3600, 10u64),
            request_timeout_secs: cx.int(&r.request_timeout_secs, &f("request_timeout_secs"), 1, 86_400, 60u64),
            max_header_kb: cx.int(&r.max_header_kb, &f("max_header_kb"), 1, 1024, 64usize),
            max_body_mb: cx.int(&r.max_body_mb, &f("max_body_mb"), 0, 1 << 20, 64u64),
            rules,
            at: cx.loc(h.span().start),
        });
    }
    out
}

fn rules(
    cx: &mut Ctx<'_>,
    raw: &[S<raw::HttpRule>],
    field: &str,
    services: &[ServiceConf],
    edge_ready: bool,
) -> Vec<Rule<Action>> {
    let mut out = Vec::new();
    for (j, rr) in raw.iter().enumerate() {
        let f = |k: &str| format!("{field}[{j}].{k}");
        let r = rr.get_ref();
        let mut hosts = Vec::new();
        for (k, h) in r.hosts.iter().enumerate() {
            match HostPattern::parse(h.get_ref()) {
                Ok(p) => hosts.push(p),
                Err(e) => cx.err(h, format!("{}[{k}]", f("hosts")), e),
            }
        }
        let paths: Vec<(&S<String>, &str)> = [
            (r.path.as_ref(), "path"),
            (r.path_prefix.as_ref(), "path_prefix"),
            (r.path_glob.as_ref(), "path_glob"),
        ]
        .into_iter()
        .filter_map(|(v, k)| v.map(|v| (v, k)))
        .collect();
        let path = match paths.as_slice() {
            [] => PathMatch::Any,
            [(v, k)] => {
                let s = v.get_ref();
                match *k {
                    "path" => PathMatch::Exact(s.clone()),
                    "path_prefix" => PathMatch::Prefix(s.clone()),
                    _ => PathMatch::glob(s).unwrap_or_else(|e| {
                        cx.err(*v, f("path_glob"), e);
                        PathMatch::Any
                    }),
                }
            }
            [_, (v, k), ..] => {
                cx.err(*v, f(k), "a rule matches one of `path`, `path_prefix` or `path_glob`");
                PathMatch::Any
            }
        };
        if let PathMatch::Exact(p) | PathMatch::Prefix(p) = &path {
            if !p.starts_with('/') {
                let (v, k) = paths[0];
                cx.err(v, f(k), format!("`{p}` does not start with `/`"));
            }
        }
        let service = service_named(cx, &r.service, &f("service"), services);
        let status = cx.int(&r.status, &f("status"), 300, 399, 302u16);
        if ![301, 302, 303, 307, 308].contains(&status) {
            let at = r.status.as_ref().expect("out of the default's range only when given");
            cx.err(
                at,
                f("status"),
                format!("{status} is not a redirect (301, 302, 303, 307 or 308)"),
            );
        }
        let location = match Template::parse(r.location.get_ref()) {
            Ok(t) => t,
            Err(e) => {
                cx.err(&r.location, f("location"), e);
                continue;
            }
        };
        let redirect = Redirect {
            service,
            status,
            location,
        };
        let action = match r.action.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("redirect") => {
                for (v, k) in [
                    (r.rtt_threshold_ms.is_some(), "rtt_threshold_ms"),
                    (r.marker.is_some(), "marker"),
                ] {
                    if v {
                        cx.err(
                            &r.name,
                            f(k),
                            format!("`{k}` applies to `action = \"edge\"` rules only"),
                        );
                    }
                }
                Action::Redirect(redirect)
            }
            Some("edge") => {
                if !edge_ready {
                    cx.err(
                        r.action.as_ref().expect("present"),
                        f("action"),
                        "an `edge` rule needs the front's `pop` and `upstream` (or `remap_api = true` for a front that only answers the remap API)",
                    );
                }
                let rtt_threshold_ms = match &r.rtt_threshold_ms {
                    None => 80.0,
                    Some(t) if t.get_ref().is_finite() && *t.get_ref() >= 0.0 => *t.get_ref(),
                    Some(t) => {
                        cx.err(t, f("rtt_threshold_ms"), "must be a number of milliseconds, 0 or more");
                        80.0
                    }
                };
                let marker = match &r.marker {
                    None => Marker::Query("petrel_remap".into()),
                    Some(m) => Marker::parse(m.get_ref(), r.marker_domain.as_ref().map(|d| d.get_ref().as_str()))
                        .unwrap_or_else(|e| {
                            cx.err(m, f("marker"), e);
                            Marker::Query("petrel_remap".into())
                        }),
                };
                Action::Edge {
                    redirect,
                    rtt_threshold_ms,
                    marker,
                }
            }
            Some(other) => {
                cx.err(
                    r.action.as_ref().expect("present"),
                    f("action"),
                    format!("`{other}` is neither `redirect` nor `edge`"),
                );
                continue;
            }
        };
        out.push(Rule {
            name: r.name.get_ref().clone(),
            hosts,
            path,
            action,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use std::path::Path;

    const BASE: &str = r#"
[[pop]]
name = "ams"
ipv4 = ["192.0.2.1"]

[[pop]]
name = "iad"
ipv4 = ["192.0.2.2"]

[[zone]]
origin = "example.net."
file = "example.net.zone"

[[service]]
name = "www.example.net."
policy = [{ type = "default", pops = ["ams", "iad"] }]
"#;

    fn with(http: &str) -> Result<crate::Config, Vec<crate::ConfigError>> {
        parse(Path::new("/etc/petrel/petrel.toml"), &format!("{BASE}\n{http}"))
    }

    fn errors(http: &str) -> String {
        with(http)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_front_with_rules_parses() {
        let c = with(
            r#"
[[http]]
name = "edge"
listen = ["127.0.0.1:8080"]
tls_listen = ["[::1]:8443"]
certificates = [{ cert = "cdn.pem", key = "cdn.key", names = ["cdn.example.net", "*.example.net"] }]
trusted_proxies = ["10.0.0.0/8"]
client_header = "forwarded"
proxy_protocol = true
pop = "ams"
upstream = "http://127.0.0.1:8081"
default = "upstream"

[[http.rule]]
name = "video"
hosts = ["cdn.example.net"]
path_glob = "*.mp4|*.jpg"
service = "www.example.net"
status = 307
location = "https://{pop}.cdn.example.net{path}{?query}"

[[http.rule]]
name = "remap"
action = "edge"
service = "www.example.net."
location = "https://{pop}.cdn.example.net{path}{?query}"
rtt_threshold_ms = 100
marker = "cookie:moved"
marker_domain = "cdn.example.net"
"#,
        )
        .unwrap();
        let h = &c.http[0];
        assert_eq!(h.listen.len() + h.tls_listen.len(), 2);
        assert_eq!(h.certificates[0].cert, Path::new("/etc/petrel/cdn.pem"));
        assert_eq!(h.upstream.as_deref(), Some("127.0.0.1:8081"));
        assert_eq!(h.rules.len(), 2);
        assert!(h.rules[0].matches("cdn.example.net", "/a.mp4"));
        assert!(matches!(
            h.rules[1].action,
            petrel_http::rules::Action::Edge { rtt_threshold_ms, .. } if rtt_threshold_ms == 100.0
        ));
    }

    #[test]
    fn mistakes_name_the_line_and_field() {
        let e = errors(
            r#"
[[http]]
name = "x"
listen = ["127.0.0.1"]
tls_listen = ["127.0.0.1:8443"]
trusted_proxies = ["10.0.0.0/33"]
proxy_protocol = true
default = "upstream"

[[http.rule]]
name = "a"
path = "video"
path_glob = "*.mp4"
service = "nope.example.net."
status = 304
location = "https://cdn.example.net{path}"
"#,
        );
        for want in [
            "http[0].listen[0]: `127.0.0.1` is not an address:port",
            "http[0].certificates: `tls_listen` needs at least one certificate",
            "http[0].trusted_proxies[0]",
            "http[0].default: `upstream` needs",
            "http[0].rule[0].path_glob: a rule matches one of",
            "http[0].rule[0].service: no service named `nope.example.net.`",
            "http[0].rule[0].status: 304 is not a redirect",
            "http[0].rule[0].location: `https://cdn.example.net{path}` does not name the POP",
        ] {
            assert!(e.contains(want), "{want} in\n{e}");
        }
        assert!(e.contains("petrel.toml:21:11: http[0].listen[0]"), "{e}");
        let e = errors(
            "[[http]]\nname = \"x\"\nlisten = [\"127.0.0.1:80\"]\n[[http.rule]]\nname = \"e\"\naction = \"edge\"\nservice = \"www.example.net.\"\nlocation = \"/{pop}\"\nmarker = \"header:x\"\n",
        );
        assert!(
            e.contains("an `edge` rule needs the front's `pop` and `upstream`"),
            "{e}"
        );
        assert!(e.contains("is not a marker"), "{e}");
    }
}
