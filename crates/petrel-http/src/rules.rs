//! Which rule a request matches: hosts and paths, first match wins.

/// A `Host` pattern: a name (`cdn.example.net`), a wildcard for any name
/// below a domain (`*.example.net`, which does not match `example.net`
/// itself), or `*` for any host. Compared without case and without a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Exact(String),
    /// The suffix, with its leading dot: `.example.net`.
    Below(String),
}

impl HostPattern {
    /// From config text; names are stored in lower case.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let s = s.trim().to_ascii_lowercase();
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        let check = |name: &str| {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return Err(format!("`{s}` is not a host name (or `*.domain`, or `*`)"));
            }
            Ok(())
        };
        if let Some(rest) = s.strip_prefix("*.") {
            check(rest)?;
            return Ok(HostPattern::Below(format!(".{rest}")));
        }
        check(&s)?;
        Ok(HostPattern::Exact(s.trim_end_matches('.').to_string()))
    }

    /// `host` as sent (any case, maybe with a port or a trailing dot).
    pub fn matches(&self, host: &str) -> bool {
        let h = strip_port(host);
        let h = h.strip_suffix('.').unwrap_or(h);
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(n) => h.eq_ignore_ascii_case(n),
            HostPattern::Below(suffix) => {
                h.len() > suffix.len() && h[h.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// The host of a `Host` header or authority, without its port
/// (`[2001:db8::1]:8080` → `[2001:db8::1]`).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// How a rule matches the path (without the query string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Any,
    Exact(String),
    Prefix(String),
    /// Alternatives (`*.mp4|*.jpg`); `*` matches any run of characters,
    /// `/` included, and `?` any one character.
    Glob(Vec<String>),
}

impl PathMatch {
    pub fn glob(s: &str) -> Result<PathMatch, String> {
        let alts: Vec<String> = s.split('|').map(|a| a.trim().to_string()).collect();
        if alts.iter().any(|a| a.is_empty()) {
            return Err(format!("`{s}` has an empty alternative"));
        }
        Ok(PathMatch::Glob(alts))
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Glob(alts) => alts.iter().any(|g| glob(g.as_bytes(), path.as_bytes())),
        }
    }
}

/// Glob matching with `*` and `?`, in O(pattern × path) time at worst and
/// no extra space (the classic backtrack to the last star; no exponential
/// blow-up whatever the pattern). Paths are bounded by the header limit
/// and patterns are the operator's.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// What a rule does with a request it matches.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send the client to the best POP for it.
    Redirect(Redirect),
    /// Edge mode: serve from the local upstream, unless the connection is
    /// slow and another POP is better (then redirect, once).
    Edge {
        redirect: Redirect,
        rtt_threshold_ms: f64,
        marker: Marker,
    },
}

/// A redirect to the POP the decision core picks for the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Redirect {
    pub service: petrel_types::ServiceIdx,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    pub location: crate::template::Template,
}

/// How a redirected request is marked, so that it is not moved twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `name=1` added to the query string.
    Query(String),
    /// A cookie `name=1` set with the redirect for `domain`, the domain the
    /// POPs' hosts share (a cookie for the redirecting host alone would
    /// never reach the POP the client is sent to).
    Cookie { name: String, domain: String },
}

impl Marker {
    /// From config text: `query:NAME` or `cookie:NAME`; a cookie needs the
    /// domain the POPs share.
    pub fn parse(s: &str, domain: Option<&str>) -> Result<Marker, String> {
        let ok = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match s.split_once(':') {
            Some(("query", n)) if ok(n) => Ok(Marker::Query(n.to_string())),
            Some(("cookie", n)) if ok(n) => match domain {
                Some(d) if HostPattern::parse(d).is_ok_and(|p| matches!(p, HostPattern::Exact(_))) => Ok(Marker::Cookie {
                    name: n.to_string(),
                    domain: d.trim_end_matches('.').to_ascii_lowercase(),
                }),
                Some(d) => Err(format!("`{d}` is not a domain name")),
                None => Err(
                    "a cookie marker needs `marker_domain`, the domain the POPs' hosts share (or the POP a client is sent to never sees the cookie)"
                        .into(),
                ),
            },
            _ => Err(format!(
                "`{s}` is not a marker (`query:NAME` or `cookie:NAME`, NAME of letters, digits, `_` and `-`)"
            )),
        }
    }

    /// Whether a request carries the marker (its query string, its
    /// `Cookie` headers).
    pub fn present<'a>(&self, query: Option<&str>, cookies: impl IntoIterator<Item = &'a str>) -> bool {
        match self {
            Marker::Query(n) => query.is_some_and(|q| {
                q.split('&')
                    .any(|kv| kv.split_once('=').map_or(kv, |(k, _)| k) == n.as_str())
            }),
            Marker::Cookie { name, .. } => cookies.into_iter().any(|c| {
                c.split(';')
                    .any(|kv| kv.trim().split_once('=').is_some_and(|(k, _)| k == name.as_str()))
            }),
        }
    }
}

/// What a request that no rule matches gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// A fixed response (404 by default).
    Respond { status: u16, body: String },
    /// Edge mode: the local upstream.
    Upstream,
}

/// One rule: where it applies, and what it does (`A`, the caller's).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule<A> {
    pub name: String,
    /// Empty: any host.
    pub hosts: Vec<HostPattern>,
    pub path: PathMatch,
    pub action: A,
}

impl<A> Rule<A> {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(host))) && self.path.matches(path)
    }
}

/// The rule the remap API answers for `service` with: its first edge rule
/// (redirect, RTT threshold, marker), else its first redirect rule (any
/// RTT is slow, no marker).
pub fn remap_rule(
    rules: &[Rule<Action>],
    service: petrel_types::ServiceIdx,
) -> Option<(&Redirect, f64, Option<&Marker>)> {
    let edge = rules.iter().find_map(|r| match &r.action {
        Action::Edge {
            redirect,
            rtt_threshold_ms,
            marker,
        } if redirect.service == service => Some((redirect, *rtt_threshold_ms, Some(marker))),
        _ => None,
    });
    edge.or_else(|| {
        rules.iter().find_map(|r| match &r.action {
            Action::Redirect(redirect) if redirect.service == service => Some((redirect, 0.0, None)),
            _ => None,
        })
    })
}

/// The first rule that matches, with its index.
pub fn find<'a, A>(rules: &'a [Rule<A>], host: &str, path: &str) -> Option<(usize, &'a Rule<A>)> {
    rules.iter().enumerate().find(|(_, r)| r.matches(host, path))
}

/// The first rule a front serves `host` and `path` with. A front without a
/// content server (`has_upstream` false) cannot serve an edge rule's
/// "stay": its edge rules answer the remap API only, and requests pass them
/// by.
pub fn find_serving<'a>(
    rules: &'a [Rule<Action>],
    host: &str,
    path: &str,
    has_upstream: bool,
) -> Option<(usize, &'a Rule<Action>)> {
    rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(host, path) && (has_upstream || !matches!(r.action, Action::Edge { .. })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(name: &str, hosts: &[&str], path: PathMatch) -> Rule<()> {
        Rule {
            name: name.into(),
            hosts: hosts.iter().map(|h| HostPattern::parse(h).unwrap()).collect(),
            path,
            action: (),
        }
    }

    #[test]
    fn hosts_match_without_case_port_or_trailing_dot() {
        let exact = HostPattern::parse("CDN.example.net").unwrap();
        for h in ["cdn.example.net", "CDN.Example.NET:8080", "cdn.example.net."] {
            assert!(exact.matches(h), "{h}");
        }
        assert!(!exact.matches("www.cdn.example.net"));
        let below = HostPattern::parse("*.example.net").unwrap();
        assert!(below.matches("a.b.example.net:443"));
        assert!(!below.matches("example.net"), "the domain itself is not below it");
        assert!(!below.matches("badexample.net"));
        assert!(HostPattern::parse("*").unwrap().matches("anything"));
        assert!(HostPattern::parse("bad host").is_err());
        assert!(HostPattern::parse("*.").is_err());
        assert_eq!(strip_port("[2001:db8::1]:8080"), "[2001:db8::1]");
        assert_eq!(strip_port("[2001:db8::1]"), "[2001:db8::1]");
    }

    #[test]
    fn paths_match_exactly_by_prefix_or_by_glob() {
        assert!(PathMatch::Exact("/a".into()).matches("/a"));
        assert!(!PathMatch::Exact("/a".into()).matches("/a/"));
        assert!(PathMatch::Prefix("/video/".into()).matches("/video/x.mp4"));
        assert!(!PathMatch::Prefix("/video/".into()).matches("/videos"));
        let g = PathMatch::glob("*.mp4|*.jpg").unwrap();
        assert!(g.matches("/v/a.mp4") && g.matches("/x.jpg"));
        assert!(!g.matches("/index.html") && !g.matches("/a.mp4/"));
        let g = PathMatch::glob("/img/??.png").unwrap();
        assert!(g.matches("/img/ab.png") && !g.matches("/img/abc.png"));
        assert!(PathMatch::glob("*.mp4||*.jpg").is_err());
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let rules = vec![
            rule("heavy", &["cdn.example.net"], PathMatch::glob("*.mp4|*.jpg").unwrap()),
            rule("api", &["*.example.net"], PathMatch::Prefix("/api/".into())),
            rule("all", &[], PathMatch::Any),
        ];
        assert_eq!(find(&rules, "cdn.example.net", "/a.mp4").unwrap().1.name, "heavy");
        assert_eq!(find(&rules, "cdn.example.net", "/api/x").unwrap().1.name, "api");
        assert_eq!(find(&rules, "other.org", "/a.mp4").unwrap().1.name, "all");
        assert!(find(&rules[..2], "other.org", "/").is_none());
    }

    /// The glob agrees with a plain recursive matcher.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => reference(&p[1..], s) || (!s.is_empty() && reference(p, &s[1..])),
            (Some(b'?'), Some(_)) => reference(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &s[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_reference(p in "[ab*?/]{0,8}", s in "[ab/]{0,10}") {
            prop_assert_eq!(glob(p.as_bytes(), s.as_bytes()), reference(p.as_bytes(), s.as_bytes()));
        }
    }

    #[test]
    fn the_remap_api_answers_with_the_services_edge_rule_first() {
        use petrel_types::ServiceIdx;
        let redirect = |s: u16| Redirect {
            service: ServiceIdx(s),
            status: 302,
            location: crate::template::Template::parse("https://{pop}.x{path}").unwrap(),
        };
        let r = |name: &str, action: Action| Rule {
            name: name.into(),
            hosts: vec![],
            path: PathMatch::Any,
            action,
        };
        let rules = vec![
            r("redir", Action::Redirect(redirect(0))),
            r(
                "edge",
                Action::Edge {
                    redirect: redirect(0),
                    rtt_threshold_ms: 80.0,
                    marker: Marker::Query("m".into()),
                },
            ),
            r("other", Action::Redirect(redirect(1))),
        ];
        let (_, t, m) = remap_rule(&rules, ServiceIdx(0)).unwrap();
        assert_eq!((t, m.is_some()), (80.0, true), "the edge rule, though listed second");
        let (_, t, m) = remap_rule(&rules, ServiceIdx(1)).unwrap();
        assert_eq!((t, m), (0.0, None));
        assert!(remap_rule(&rules, ServiceIdx(2)).is_none());

        // Requests: an edge rule serves only a front with a content server.
        let rules = vec![
            r(
                "edge",
                Action::Edge {
                    redirect: redirect(0),
                    rtt_threshold_ms: 80.0,
                    marker: Marker::Query("m".into()),
                },
            ),
            r("redir", Action::Redirect(redirect(0))),
        ];
        assert_eq!(find_serving(&rules, "h", "/", true).map(|(i, _)| i), Some(0));
        assert_eq!(find_serving(&rules, "h", "/", false).map(|(i, _)| i), Some(1));
        assert_eq!(find_serving(&rules[..1], "h", "/", false).map(|(i, _)| i), None);
    }

    #[test]
    fn markers_in_the_query_or_a_cookie() {
        let q = Marker::parse("query:petrel", None).unwrap();
        assert!(q.present(Some("a=1&petrel=1"), []));
        assert!(q.present(Some("petrel"), []));
        assert!(!q.present(Some("xpetrel=1&petrelx=2"), []));
        assert!(!q.present(None, ["petrel=1"]));
        assert!(Marker::parse("cookie:petrel", None)
            .unwrap_err()
            .contains("marker_domain"));
        let c = Marker::parse("cookie:petrel", Some("CDN.example.net.")).unwrap();
        assert_eq!(
            c,
            Marker::Cookie {
                name: "petrel".into(),
                domain: "cdn.example.net".into()
            }
        );
        assert!(c.present(None, ["a=b; petrel=1"]));
        assert!(!c.present(Some("petrel=1"), ["a=b", "petrelx=1"]));
        assert!(Marker::parse("header:x", None).is_err());
        assert!(Marker::parse("query:", None).is_err());
        assert!(Marker::parse("query:a b", None).is_err());
        assert!(Marker::parse("cookie:a", Some("bad domain")).is_err());
    }

    #[test]
    fn a_pathological_glob_is_not_exponential() {
        let p = "*a*a*a*a*a*a*a*a*b".repeat(10);
        let s = "a".repeat(10_000);
        assert!(!glob(p.as_bytes(), s.as_bytes()));
    }
}
